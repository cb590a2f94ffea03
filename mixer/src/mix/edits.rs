//! What the recorder did to one stream's audio on its way into the file: where the stream was
//! anchored, every slip (samples inserted or removed to follow a sender's clock), and every
//! stretch of silence the file holds where this stream had no audio, with its cause.
//!
//! Positions are timeline frames (8 kHz samples from the start of the audio file). The log is
//! bounded: beyond the caps below entries are counted, never stored, and the totals stay exact.

use capture::Timestamp;

/// Anchors kept per stream.
const MAX_ANCHORS: usize = 16;
/// Slips kept per stream.
const MAX_SLIPS: usize = 256;
/// Gaps kept per stream.
const MAX_GAPS: usize = 100;
/// Loss gaps still open to reordered packets.
const PENDING_GAPS: usize = 8;

/// Why a stretch of a party's channel is silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapCause {
    /// Packets missing from the sequence numbers (lost in the network).
    Lost,
    /// Packets missing after callvault or the capture itself dropped packets while the call
    /// was up (queue, kernel buffer or capture limit).
    CaptureDrop,
    /// Packets that arrived after their place in the file had been written.
    Late,
    /// The sender sent nothing (no sequence numbers missing): silence suppression, a pause.
    NotSent,
    /// The sender sent nothing while the call was on hold.
    Hold,
    /// The sender sent telephone events (DTMF) or comfort noise instead of audio.
    Signal,
    /// SRTP packets that failed authentication (tampered, or keyed otherwise than the SDP
    /// said): not decoded.
    AuthFailed,
}

impl GapCause {
    /// Every cause, in the order of [`StreamEdits::silence`].
    pub const ALL: [GapCause; 7] = [
        GapCause::Lost,
        GapCause::CaptureDrop,
        GapCause::Late,
        GapCause::NotSent,
        GapCause::Hold,
        GapCause::Signal,
        GapCause::AuthFailed,
    ];

    /// Name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::Lost => "lost",
            GapCause::CaptureDrop => "capture_drop",
            GapCause::Late => "late",
            GapCause::NotSent => "not_sent",
            GapCause::Hold => "hold",
            GapCause::Signal => "signal",
            GapCause::AuthFailed => "auth_failed",
        }
    }

    fn index(self) -> usize {
        match self {
            GapCause::Lost => 0,
            GapCause::CaptureDrop => 1,
            GapCause::Late => 2,
            GapCause::NotSent => 3,
            GapCause::Hold => 4,
            GapCause::Signal => 5,
            GapCause::AuthFailed => 6,
        }
    }
}

/// Why a stream's RTP timestamps were (re-)anchored to the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnchorReason {
    /// The stream's first packets.
    Start,
    /// The timestamps jumped ahead of what the arrival times allow (a new timebase).
    TimestampJump,
    /// The timestamps went back (a sender that restarted its clock or paused without
    /// advancing it): confirmed by packets arriving at their normal pace.
    TimestampsBack,
}

impl AnchorReason {
    /// Name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            AnchorReason::Start => "start",
            AnchorReason::TimestampJump => "timestamp_jump",
            AnchorReason::TimestampsBack => "timestamps_back",
        }
    }
}

/// An RTP timestamp tied to a frame of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Capture time of the packet that set it.
    pub time: Timestamp,
    /// The RTP timestamp.
    pub rtp_ts: u32,
    /// The frame it is placed at (later timestamps follow it, plus any slips after it).
    pub frame: i64,
    /// Why.
    pub reason: AnchorReason,
    /// Frames it was moved later than its arrival asked, so as not to overlap the side's own
    /// audio or frames already written (0 normally).
    pub moved: i64,
}

/// Samples inserted into (or removed from) a stream to keep it aligned with the other party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slip {
    /// Capture time of the packet it was applied at.
    pub time: Timestamp,
    /// First frame of the inserted silence (or of the removed samples).
    pub frame: i64,
    /// Samples of silence inserted.
    pub inserted: u32,
    /// Samples removed.
    pub removed: u32,
    /// Applied where the stream was silent anyway (a gap or a talkspurt start).
    pub in_silence: bool,
}

/// A stretch of silence in a stream's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// First frame.
    pub frame: i64,
    /// Length in frames.
    pub len: i64,
    /// Why.
    pub cause: GapCause,
}

/// The edit log of one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamEdits {
    /// Anchors, the first being where the stream starts.
    pub anchors: Vec<Anchor>,
    /// Anchors not kept (beyond the cap).
    pub anchors_omitted: u32,
    /// Slips, in order.
    pub slips: Vec<Slip>,
    /// Slips not kept (beyond the cap; counted in the totals).
    pub slips_omitted: u32,
    /// Samples inserted by slips, in total.
    pub inserted: u64,
    /// Samples removed by slips, in total.
    pub removed: u64,
    /// Gaps, in the order they became final (mostly file order).
    pub gaps: Vec<Gap>,
    /// Gaps not kept (beyond the cap; counted in the totals).
    pub gaps_omitted: u32,
    /// Frames of silence per cause (index: [`GapCause::ALL`]).
    pub silence: [i64; 7],
    /// Samples that arrived too late to be placed.
    pub late_samples: u64,
    /// Loss gaps a reordered packet may still fill.
    pending: Vec<Gap>,
    /// The sender's clock rate relative to the capture clock, once measured.
    pub clock_ppm: Option<f64>,
}

impl StreamEdits {
    /// Records an anchor.
    pub(crate) fn anchor(&mut self, a: Anchor) {
        if self.anchors.len() < MAX_ANCHORS {
            self.anchors.push(a);
        } else {
            self.anchors_omitted += 1;
        }
    }

    /// Records a slip.
    pub(crate) fn slip(&mut self, s: Slip) {
        self.inserted += u64::from(s.inserted);
        self.removed += u64::from(s.removed);
        if self.slips.len() < MAX_SLIPS {
            self.slips.push(s);
        } else {
            self.slips_omitted += 1;
        }
    }

    /// A stretch of silence between two in-order packets. Losses stay open to reordered
    /// packets for a while; other causes are final at once.
    pub(crate) fn gap(&mut self, frame: i64, len: i64, cause: GapCause) {
        if len <= 0 {
            return;
        }
        let g = Gap { frame, len, cause };
        if matches!(cause, GapCause::Lost | GapCause::CaptureDrop | GapCause::AuthFailed) {
            if self.pending.len() >= PENDING_GAPS {
                let oldest = self.pending.remove(0);
                self.keep(oldest);
            }
            self.pending.push(g);
        } else {
            self.keep(g);
        }
    }

    /// Samples `[frame, frame + len)` were placed: they are not missing after all.
    pub(crate) fn filled(&mut self, frame: i64, len: i64) {
        if self.pending.is_empty() {
            return;
        }
        let end = frame + len;
        let mut i = 0;
        while i < self.pending.len() {
            let g = self.pending[i];
            let g_end = g.frame + g.len;
            if end <= g.frame || frame >= g_end {
                i += 1;
                continue;
            }
            let before = Gap { len: frame - g.frame, ..g };
            let after = Gap { frame: end, len: g_end - end, ..g };
            self.pending.remove(i);
            for part in [after, before] {
                if part.len > 0 {
                    self.pending.insert(i, part);
                }
            }
            i += usize::from(before.len > 0) + usize::from(after.len > 0);
        }
    }

    /// Samples `[frame, frame + len)` arrived after they had been written.
    pub(crate) fn late(&mut self, frame: i64, len: i64) {
        if len <= 0 {
            return;
        }
        self.late_samples += len as u64;
        self.filled(frame, len);
        self.keep(Gap { frame, len, cause: GapCause::Late });
    }

    fn keep(&mut self, g: Gap) {
        self.silence[g.cause.index()] += g.len;
        if let Some(last) = self.gaps.last_mut()
            && last.cause == g.cause
            && last.frame + last.len == g.frame
        {
            last.len += g.len;
            return;
        }
        if self.gaps.len() < MAX_GAPS {
            self.gaps.push(g);
        } else {
            self.gaps_omitted += 1;
        }
    }

    /// Makes every open loss gap final (the stream is over).
    pub(crate) fn close(&mut self) {
        for g in std::mem::take(&mut self.pending) {
            self.keep(g);
        }
    }

    /// Frames of silence of one cause.
    pub fn silence_of(&self, cause: GapCause) -> i64 {
        self.silence[cause.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordered_packets_fill_loss_gaps_and_late_ones_become_late_gaps() {
        let mut e = StreamEdits::default();
        // Packets 2..=4 missing (480 frames), then 3 arrives reordered, then 4 too late.
        e.gap(320, 480, GapCause::Lost);
        e.filled(480, 160);
        e.late(640, 160);
        e.close();
        assert_eq!(
            e.gaps,
            vec![
                Gap { frame: 640, len: 160, cause: GapCause::Late },
                Gap { frame: 320, len: 160, cause: GapCause::Lost },
            ]
        );
        assert_eq!(e.silence_of(GapCause::Lost), 160);
        assert_eq!(e.silence_of(GapCause::Late), 160);
        assert_eq!(e.late_samples, 160);
    }

    #[test]
    fn adjacent_gaps_of_one_cause_merge_and_caps_keep_totals() {
        let mut e = StreamEdits::default();
        e.late(0, 160);
        e.late(160, 160);
        assert_eq!(e.gaps.len(), 1);
        assert_eq!(e.gaps[0].len, 320);
        for k in 0..200 {
            e.gap(10_000 + k * 1000, 100, GapCause::NotSent);
        }
        assert_eq!(e.gaps.len(), MAX_GAPS);
        assert_eq!(e.gaps_omitted, 101);
        assert_eq!(e.silence_of(GapCause::NotSent), 200 * 100);
        for _ in 0..300 {
            e.slip(Slip { time: Timestamp(0), frame: 0, inserted: 80, removed: 0, in_silence: false });
        }
        assert_eq!(e.inserted, 300 * 80);
        assert_eq!(e.slips_omitted, 300 - MAX_SLIPS as u32);
    }

    #[test]
    fn more_open_losses_than_kept_are_made_final_oldest_first() {
        let mut e = StreamEdits::default();
        for k in 0..(PENDING_GAPS as i64 + 2) {
            e.gap(k * 1000, 160, GapCause::Lost);
        }
        assert_eq!(e.gaps.len(), 2);
        assert_eq!(e.gaps[0].frame, 0);
        e.close();
        assert_eq!(e.silence_of(GapCause::Lost), (PENDING_GAPS as i64 + 2) * 160);
    }
}
