//! What the finisher sees of every finished call: its record, observed once into counters
//! and histograms (end state and reason, SIP final responses, setup time, quality per
//! direction), and the recordings entered into the spool.

use mixer::record::CallRecord;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];
type Histograms = Family<Labels1, Histogram, fn() -> Histogram>;

/// MOS buckets (1 to 4.5; G.711 without loss scores about 4.4).
const MOS: [f64; 11] = [1.0, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.3, 4.4, 4.5];
/// R-factor buckets (0 to 100).
const R_FACTOR: [f64; 9] = [20.0, 40.0, 50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 93.0];
/// Packet loss as a ratio.
const LOSS: [f64; 9] = [0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];
/// Interarrival jitter in seconds.
const JITTER: [f64; 9] = [0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];
/// Setup time (INVITE to answer) in seconds.
const SETUP: [f64; 11] = [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0];

fn mos() -> Histogram {
    Histogram::new(MOS)
}
fn r_factor() -> Histogram {
    Histogram::new(R_FACTOR)
}
fn loss() -> Histogram {
    Histogram::new(LOSS)
}
fn jitter() -> Histogram {
    Histogram::new(JITTER)
}

/// Counters and histograms fed by finished calls.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    ended: Family<Labels2, Counter>,
    final_responses: Family<Labels1, Counter>,
    challenges: Family<Labels1, Counter>,
    setup: Histogram,
    incomplete: Counter,
    mos: Histograms,
    r_factor: Histograms,
    loss: Histograms,
    jitter: Histograms,
    written: Counter,
    with_audio: Counter,
    bytes: Counter,
    audio_bytes: Counter,
    failed: Counter,
    recovered: Counter,
}

impl CallMetrics {
    pub(crate) fn register(r: &mut Registry) -> CallMetrics {
        // The registry ends each help text with a period itself.
        let m = CallMetrics {
            ended: Family::default(),
            final_responses: Family::default(),
            challenges: Family::default(),
            setup: Histogram::new(SETUP),
            incomplete: Counter::default(),
            mos: Family::new_with_constructor(mos),
            r_factor: Family::new_with_constructor(r_factor),
            loss: Family::new_with_constructor(loss),
            jitter: Family::new_with_constructor(jitter),
            written: Counter::default(),
            with_audio: Counter::default(),
            bytes: Counter::default(),
            audio_bytes: Counter::default(),
            failed: Counter::default(),
            recovered: Counter::default(),
        };
        r.register(
            "callvault_calls_ended",
            "Calls ended, by last dialog state and end reason (from their call records)",
            m.ended.clone(),
        );
        r.register(
            "callvault_sip_final_responses",
            "Final responses to calls' INVITEs, by status code",
            m.final_responses.clone(),
        );
        r.register(
            "callvault_sip_auth_challenges",
            "Authentication challenges (401/407) to calls' INVITEs, by status code",
            m.challenges.clone(),
        );
        r.register(
            "callvault_call_setup_seconds",
            "Time from the first INVITE to the answer, answered calls",
            m.setup.clone(),
        );
        r.register(
            "callvault_calls_incomplete",
            "Calls whose capture was incomplete (drops, a call already up at the start, encrypted or \
             undecodable media, ...; see incomplete_reasons in the record)",
            m.incomplete.clone(),
        );
        r.register(
            "callvault_stream_mos",
            "MOS (ITU-T G.107 E-model) of calls' audio streams, by direction",
            m.mos.clone(),
        );
        r.register("callvault_stream_r_factor", "R-factor of calls' audio streams, by direction", m.r_factor.clone());
        r.register("callvault_stream_loss_ratio", "Packet loss of calls' audio streams, by direction", m.loss.clone());
        r.register(
            "callvault_stream_jitter_seconds",
            "Interarrival jitter (RFC 3550) of calls' audio streams, by direction",
            m.jitter.clone(),
        );
        r.register("callvault_recordings_written", "Recordings entered into the spool", m.written.clone());
        r.register("callvault_recordings_with_audio", "Recordings entered with an audio file", m.with_audio.clone());
        r.register(
            "callvault_recordings_bytes",
            "Bytes of the recordings entered (audio, record, evidence)",
            m.bytes.clone(),
        );
        r.register("callvault_recordings_audio_bytes", "Bytes of the audio files entered", m.audio_bytes.clone());
        r.register(
            "callvault_recordings_failed",
            "Recordings that could not be finished or entered (their files stay in the work directory)",
            m.failed.clone(),
        );
        r.register(
            "callvault_recordings_recovered",
            "Recordings recovered at start from what a crash left in the work directory",
            m.recovered.clone(),
        );
        m
    }

    /// A finished call's record, observed once.
    pub(crate) fn call(&self, record: &CallRecord) {
        self.ended.get_or_create(&[("state", record.state.clone()), ("reason", record.end_reason.clone())]).inc();
        if let Some(code) = record.final_code {
            self.final_responses.get_or_create(&[("code", code.to_string())]).inc();
        }
        for c in &record.sip.challenges {
            self.challenges.get_or_create(&[("code", c.code.to_string())]).inc();
        }
        if let Some(talk) = record.talk_s {
            self.setup.observe((record.duration_s - talk).max(0.0));
        }
        if !record.capture_complete {
            self.incomplete.inc();
        }
        for s in record.streams.iter().filter(|s| s.kind == "audio") {
            let direction = [("direction", direction(&s.side).to_owned())];
            if let Some(q) = &s.quality {
                self.mos.get_or_create(&direction).observe(q.mos);
                self.r_factor.get_or_create(&direction).observe(q.r_factor);
            }
            if s.packets > 0 {
                self.loss.get_or_create(&direction).observe(s.loss_pct / 100.0);
            }
            if let Some(j) = s.jitter_ms {
                self.jitter.get_or_create(&direction).observe(j / 1000.0);
            }
        }
    }

    /// A recording entered into the spool: its files' sizes, and its audio's if any.
    pub(crate) fn written(&self, bytes: u64, audio_bytes: Option<u64>, recovered: bool) {
        self.written.inc();
        self.bytes.inc_by(bytes);
        if let Some(a) = audio_bytes {
            self.with_audio.inc();
            self.audio_bytes.inc_by(a);
        }
        if recovered {
            self.recovered.inc();
        }
    }

    /// A recording that could not be finished or entered.
    pub(crate) fn failed(&self) {
        self.failed.inc();
    }
}

/// A stream's direction by who sent it.
fn direction(side: &str) -> &'static str {
    match side {
        "caller" => "caller_to_callee",
        "callee" => "callee_to_caller",
        _ => "unknown",
    }
}
