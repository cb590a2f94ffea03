//! Call quality as users perceive it: the ITU-T G.107 E-model (transmission rating R) and the
//! MOS derived from it, per direction, from what the network did to the packets.
//!
//! Everything except delay and packet loss keeps its G.107 default value (Table 2/G.107):
//! with all defaults the model gives R = 93.2. Packet loss enters through the effective
//! equipment impairment `Ie,eff` with the codec's `Ie` and `Bpl` from ITU-T G.113 Appendix I
//! (G.711: `Ie` = 0; `Bpl` = 4.3 without packet loss concealment, 25.1 with the G.711
//! Appendix I concealment) and the burst ratio measured from the loss pattern. Delay is not
//! observable from one tap, so a stated default is used: [`DEFAULT_ONE_WAY_DELAY_MS`] mouth
//! to ear (T = Ta, Tr = 2T), plus the measured jitter as the jitter buffer would add it.

/// Assumed one-way mouth-to-ear delay before jitter, in milliseconds: packetisation, a
/// typical LAN/WAN path and a minimal jitter buffer.
pub const DEFAULT_ONE_WAY_DELAY_MS: f64 = 100.0;

/// Packet-loss robustness `Bpl` of G.711 without concealment (G.113 Appendix I).
pub const BPL_G711: f64 = 4.3;
/// Packet-loss robustness `Bpl` of G.711 with Appendix I concealment (G.113 Appendix I).
pub const BPL_G711_PLC: f64 = 25.1;

/// Inputs of the E-model that vary per call; everything else is at its G.107 default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EModelInput {
    /// Mean one-way delay T in ms (echo path).
    pub t_ms: f64,
    /// Round-trip delay Tr in ms (listener echo).
    pub tr_ms: f64,
    /// Absolute one-way delay Ta in ms.
    pub ta_ms: f64,
    /// Equipment impairment factor of the codec.
    pub ie: f64,
    /// Packet-loss robustness factor of the codec.
    pub bpl: f64,
    /// Packet-loss probability in percent.
    pub ppl: f64,
    /// Burst ratio (1 for random loss).
    pub burst_r: f64,
}

impl Default for EModelInput {
    /// The G.107 defaults (R = 93.2).
    fn default() -> Self {
        EModelInput { t_ms: 0.0, tr_ms: 0.0, ta_ms: 0.0, ie: 0.0, bpl: 1.0, ppl: 0.0, burst_r: 1.0 }
    }
}

// G.107 Table 2 defaults.
const SLR: f64 = 8.0;
const RLR: f64 = 2.0;
const STMR: f64 = 15.0;
const LSTR: f64 = 18.0;
const DS: f64 = 3.0;
const TELR: f64 = 65.0;
const WEPL: f64 = 110.0;
const QDU: f64 = 1.0;
const NC: f64 = -70.0;
const NFOR: f64 = -64.0;
const PS: f64 = 35.0;
const PR: f64 = 35.0;
const A: f64 = 0.0;

fn lg(x: f64) -> f64 {
    x.log10()
}

/// The transmission rating factor R of G.107 (section 3).
pub fn r_factor(i: &EModelInput) -> f64 {
    let olr = SLR + RLR;
    // Basic signal-to-noise ratio, Ro (3.2).
    let nfo = NFOR + RLR;
    let pre = PR + 10.0 * lg(1.0 + 10f64.powf((10.0 - LSTR) / 10.0));
    let nor = RLR - 121.0 + pre + 0.008 * (pre - 35.0).powi(2);
    let nos = PS - SLR - DS - 100.0 + 0.004 * (PS - olr - DS - 14.0).powi(2);
    let no =
        10.0 * lg(10f64.powf(NC / 10.0) + 10f64.powf(nos / 10.0) + 10f64.powf(nor / 10.0) + 10f64.powf(nfo / 10.0));
    let ro = 15.0 - 1.5 * (SLR + no);

    // Simultaneous impairments, Is (3.3).
    let xolr = olr + 0.2 * (64.0 + no - RLR);
    let iolr = 20.0 * ((1.0 + (xolr / 8.0).powi(8)).powf(1.0 / 8.0) - xolr / 8.0);
    let stmro = -10.0 * lg(10f64.powf(-STMR / 10.0) + (-i.t_ms / 4.0).exp() * 10f64.powf(-TELR / 10.0));
    let ist = 12.0 * (1.0 + ((stmro - 13.0) / 6.0).powi(8)).powf(1.0 / 8.0)
        - 28.0 * (1.0 + ((stmro + 1.0) / 19.4).powi(35)).powf(1.0 / 35.0)
        - 13.0 * (1.0 + ((stmro - 3.0) / 33.0).powi(13)).powf(1.0 / 13.0)
        + 29.0;
    let q = 37.0 - 15.0 * lg(QDU);
    let g = 1.07 + 0.258 * q + 0.0602 * q * q;
    let z = 46.0 / 30.0 - g / 40.0;
    let y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0;
    let iq = 15.0 * lg(1.0 + 10f64.powf(y) + 10f64.powf(z));
    let is = iolr + ist + iq;

    // Delay impairments, Id (3.4).
    let terv = TELR - 40.0 * lg((1.0 + i.t_ms / 10.0) / (1.0 + i.t_ms / 150.0)) + 6.0 * (-0.3 * i.t_ms * i.t_ms).exp();
    let re = 80.0 + 2.5 * (terv - 14.0);
    let roe = -1.5 * (no - RLR);
    let idte = if i.t_ms > 0.0 {
        ((roe - re) / 2.0 + ((roe - re).powi(2) / 4.0 + 100.0).sqrt() - 1.0) * (1.0 - (-i.t_ms).exp())
    } else {
        0.0
    };
    let rle = 10.5 * (WEPL + 7.0) * (i.tr_ms + 1.0).powf(-0.25);
    let idle = (ro - rle) / 2.0 + ((ro - rle).powi(2) / 4.0 + 169.0).sqrt();
    let idd = if i.ta_ms <= 100.0 {
        0.0
    } else {
        let x = lg(i.ta_ms / 100.0) / lg(2.0);
        25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0) + 2.0)
    };
    let id = idte + idle + idd;

    // Effective equipment impairment, Ie,eff (3.5).
    let ie_eff = i.ie + (95.0 - i.ie) * i.ppl / (i.ppl / i.burst_r.max(1e-9) + i.bpl);

    ro - is - id - ie_eff + A
}

/// MOS (conversational quality estimate) from R, G.107 Annex B.
pub fn mos(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// Burst ratio of a loss pattern (G.113 Appendix I, two-state Markov model): the average
/// length of observed loss bursts divided by the average length expected for random loss at
/// the same rate. `bursts` = number of loss runs, `lost` = packets lost, `received` = packets
/// received. 1 for random loss (and when there is no loss).
pub fn burst_ratio(bursts: u64, lost: u64, received: u64) -> f64 {
    if bursts == 0 || lost == 0 || received == 0 {
        return 1.0;
    }
    // p: P(loss | previous received), q: P(received | previous lost).
    let p = bursts as f64 / received as f64;
    let q = bursts as f64 / lost as f64;
    (1.0 / (p + q)).max(0.0)
}

/// Quality of one direction of a G.711 call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// R without packet loss concealment.
    pub r: f64,
    /// MOS without packet loss concealment.
    pub mos: f64,
    /// R with G.711 Appendix I concealment.
    pub r_plc: f64,
    /// MOS with concealment.
    pub mos_plc: f64,
    /// Burst ratio used.
    pub burst_ratio: f64,
    /// One-way delay assumed (ms).
    pub delay_ms: f64,
}

/// Quality of a G.711 direction with `loss_pct` loss, the loss pattern's burst counts, and the
/// measured interarrival jitter (a jitter buffer adds about twice the jitter to the delay).
pub fn g711_quality(loss_pct: f64, bursts: u64, lost: u64, received: u64, jitter_ms: f64) -> Quality {
    let delay = DEFAULT_ONE_WAY_DELAY_MS + 2.0 * jitter_ms.max(0.0);
    let burst = burst_ratio(bursts, lost, received);
    let base = EModelInput {
        t_ms: delay,
        tr_ms: 2.0 * delay,
        ta_ms: delay,
        ppl: loss_pct.clamp(0.0, 100.0),
        burst_r: burst,
        ..EModelInput::default()
    };
    let r = r_factor(&EModelInput { bpl: BPL_G711, ..base });
    let r_plc = r_factor(&EModelInput { bpl: BPL_G711_PLC, ..base });
    Quality { r, mos: mos(r), r_plc, mos_plc: mos(r_plc), burst_ratio: burst, delay_ms: delay }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_defaults_give_the_published_93_2() {
        // G.107 §7.1 / Table 2: "the default values ... result in a rating R = 93.2".
        let r = r_factor(&EModelInput::default());
        assert!((r - 93.2).abs() < 0.05, "{r}");
        assert!((mos(r) - 4.41).abs() < 0.01, "{}", mos(r));
    }

    #[test]
    fn mos_conversion_points() {
        // Annex B: R = 100 -> 4.5, R = 50 -> 2.58, R = 0 -> 1.
        assert_eq!(mos(0.0), 1.0);
        assert_eq!(mos(-5.0), 1.0);
        assert_eq!(mos(120.0), 4.5);
        assert!((mos(100.0) - 4.5).abs() < 1e-9);
        // 1 + 1.75 + 50*(-10)*50*7e-6 = 2.575
        assert!((mos(50.0) - 2.575).abs() < 1e-9);
        // 1 + 2.8 + 80*20*20*7e-6 = 4.024
        assert!((mos(80.0) - 4.024).abs() < 1e-9);
    }

    #[test]
    fn effective_equipment_impairment_by_hand() {
        // Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl/BurstR + Bpl): G.711 without PLC, 1 % random loss:
        // 95 * 1 / (1 + 4.3) = 17.925...; with PLC: 95 / 26.1 = 3.6398...
        let base = r_factor(&EModelInput::default());
        let no_plc = r_factor(&EModelInput { ppl: 1.0, bpl: BPL_G711, ..EModelInput::default() });
        let plc = r_factor(&EModelInput { ppl: 1.0, bpl: BPL_G711_PLC, ..EModelInput::default() });
        assert!((base - no_plc - 95.0 / 5.3).abs() < 1e-9);
        assert!((base - plc - 95.0 / 26.1).abs() < 1e-9);
        // Bursty loss hurts more than random loss at the same rate.
        let bursty = r_factor(&EModelInput { ppl: 1.0, bpl: BPL_G711_PLC, burst_r: 2.0, ..EModelInput::default() });
        assert!((base - bursty - 95.0 / (0.5 + 25.1)).abs() < 1e-9);
    }

    #[test]
    fn delay_impairment_by_hand() {
        // Idd for Ta = 200 ms: X = 1, Idd = 25 * ((2)^(1/6) - 3 * (1 + 1/729)^(1/6) + 2).
        let x: f64 = 1.0;
        let idd = 25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0) + 2.0);
        let at100 = r_factor(&EModelInput { ta_ms: 100.0, ..EModelInput::default() });
        let at200 = r_factor(&EModelInput { ta_ms: 200.0, ..EModelInput::default() });
        assert!((at100 - at200 - idd).abs() < 1e-9, "{} vs {idd}", at100 - at200);
        assert!((idd - 3.044).abs() < 0.001, "{idd}");
    }

    #[test]
    fn burst_ratio_of_random_and_bursty_patterns() {
        assert_eq!(burst_ratio(0, 0, 100), 1.0);
        // Random 10 % loss: bursts ~ lost * (1 - 0.1); p = 0.1, q = 0.9 -> 1.
        assert!((burst_ratio(90, 100, 900) - 1.0).abs() < 1e-9);
        // Same loss in bursts of 5: 20 bursts: p = 20/900, q = 20/100 -> 1/(0.0222+0.2) = 4.5.
        assert!((burst_ratio(20, 100, 900) - 4.5).abs() < 1e-9);
    }

    #[test]
    fn a_clean_g711_call_rates_well_and_loss_lowers_it() {
        let clean = g711_quality(0.0, 0, 0, 1000, 0.0);
        assert!(clean.mos > 4.3 && clean.mos_plc > 4.3, "{clean:?}");
        let lossy = g711_quality(5.0, 50, 50, 950, 10.0);
        assert!(lossy.mos < clean.mos && lossy.mos < lossy.mos_plc, "{lossy:?}");
        assert!(lossy.r < 60.0, "{lossy:?}");
    }
}
