//! Pausing a recording (PCI DSS: card numbers must not be recorded). A party keys the pause
//! code (a DTMF sequence, e.g. `*1`) before reading out a card number and the resume code
//! (e.g. `*2`) after; between them both channels are written as silence.
//!
//! The pause starts where the last key of the pause code starts (its RTP telephone event's
//! timestamp, through the party's clock), and ends where the last key of the resume code
//! ends. It is applied to the timeline's ring, before anything of it is written: positions in
//! a pause never reach the disk. A pause code keyed while a position it should cover was
//! already closed (`Timeline::closed`: written, or as far as the smallest writes would have
//! written it; a key press held longer than the reorder window) starts at the first position
//! not closed, and the record says when it was asked for.
//!
//! Keys count from either party, in the order they start; other keys between two of a code
//! break it. The keys pressed while paused (a card number keyed on the phone) are left out of
//! the record's DTMF list too: the record counts them, never names them.

use capture::Timestamp;
use capture::events::{Side, event_name};

/// Longest code.
pub const MAX_CODE: usize = 8;
/// Pauses kept per call; a call paused more often stays paused from the last one kept.
pub const MAX_PAUSES: usize = 64;

/// The DTMF codes that pause and resume recording (RFC 4733 event numbers: 0-9, 10 `*`,
/// 11 `#`, 12-15 `A`-`D`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseCodes {
    /// Keys that pause.
    pub pause: Vec<u8>,
    /// Keys that resume.
    pub resume: Vec<u8>,
}

impl PauseCodes {
    /// Parses `pause` and `resume` (keys `0-9 * # A-D`, 1 to 8 each, different).
    pub fn parse(pause: &str, resume: &str) -> Result<PauseCodes, String> {
        let keys = |what: &str, s: &str| -> Result<Vec<u8>, String> {
            if s.is_empty() || s.len() > MAX_CODE {
                return Err(format!("{what} must be 1 to {MAX_CODE} DTMF keys, not {s:?}"));
            }
            s.chars()
                .map(|c| match c {
                    '0'..='9' => Ok(c as u8 - b'0'),
                    '*' => Ok(10),
                    '#' => Ok(11),
                    'A'..='D' => Ok(c as u8 - b'A' + 12),
                    'a'..='d' => Ok(c as u8 - b'a' + 12),
                    _ => Err(format!("{what} {s:?}: {c:?} is not a DTMF key (0-9 * # A-D)")),
                })
                .collect()
        };
        let codes = PauseCodes { pause: keys("pause_dtmf", pause)?, resume: keys("resume_dtmf", resume)? };
        if codes.pause == codes.resume {
            return Err("pause_dtmf and resume_dtmf must differ".into());
        }
        Ok(codes)
    }

    fn spell(keys: &[u8]) -> String {
        keys.iter().map(|&k| event_name(k)).collect()
    }
}

/// One paused span of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// First paused position (8 kHz, from the recording's start).
    pub from: i64,
    /// One past the last, once resumed.
    pub to: Option<i64>,
    /// What paused it, e.g. `dtmf *1 (caller)`.
    pub trigger: String,
    /// When it was keyed (capture time of the last key's first packet).
    pub at: Timestamp,
    /// Positions that should have been paused but were already closed when it came.
    pub closed_before: i64,
    /// What resumed it.
    pub resumed_by: Option<String>,
    /// When the resume code's last key started (capture time).
    pub resumed_at: Option<Timestamp>,
}

impl Pause {
    /// Whether a key pressed at `time` was pressed while paused (the pause code's last key
    /// included, the resume code's last key not).
    pub fn withholds(&self, time: Timestamp) -> bool {
        time >= self.at && self.resumed_at.is_none_or(|r| time < r)
    }
}

/// A call's pause state.
#[derive(Debug, Default)]
pub(crate) struct PauseState {
    /// The keys seen, latest last.
    recent: [u8; MAX_CODE],
    len: usize,
    pub(crate) pauses: Vec<Pause>,
    /// The resume code's last key started (side, RTP timestamp, its position); the pause
    /// ends where that key ends.
    resuming: Option<(Side, u32, i64)>,
}

/// A key that started: who pressed which, its RTP timestamp, where it starts on the timeline
/// and when it was captured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) side: Side,
    pub(crate) event: u8,
    pub(crate) rtp_ts: u32,
    pub(crate) pos: i64,
    pub(crate) time: Timestamp,
}

/// What an outright pause or resume did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Paused from this position.
    Paused(i64),
    /// Resumed at this position.
    Resumed(i64),
    /// The call was in that state already (or has had [`MAX_PAUSES`] pauses).
    Unchanged,
}

/// What a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    None,
    /// Pause from this position.
    Pause(i64),
}

impl PauseState {
    pub(crate) fn paused(&self) -> bool {
        self.pauses.last().is_some_and(|p| p.to.is_none())
    }

    /// A key started (`closed`: the first position not yet closed).
    pub(crate) fn key(&mut self, codes: &PauseCodes, key: Key, closed: i64) -> Effect {
        let Key { side, event, rtp_ts, pos, time } = key;
        if self.len == MAX_CODE {
            self.recent.copy_within(1.., 0);
            self.len -= 1;
        }
        self.recent[self.len] = event;
        self.len += 1;
        let keyed = &self.recent[..self.len];
        let who = side.as_str();
        if !self.paused() && keyed.ends_with(&codes.pause) {
            self.len = 0;
            if self.pauses.len() >= MAX_PAUSES {
                return Effect::None;
            }
            let from = pos.max(closed);
            self.pauses.push(Pause {
                from,
                to: None,
                trigger: format!("dtmf {} ({who})", PauseCodes::spell(&codes.pause)),
                at: time,
                closed_before: from - pos,
                resumed_by: None,
                resumed_at: None,
            });
            return Effect::Pause(from);
        }
        if self.paused() && keyed.ends_with(&codes.resume) {
            self.len = 0;
            self.resuming = Some((side, rtp_ts, pos));
            if let Some(p) = self.pauses.last_mut() {
                p.resumed_by = Some(format!("dtmf {} ({who})", PauseCodes::spell(&codes.resume)));
                p.resumed_at = Some(time);
            }
        }
        Effect::None
    }

    /// A pause or a resume asked outright (a SIP header, the HTTP API) at position `pos`
    /// (`closed`: the first position not yet closed). Asking for the state the call is in
    /// already changes nothing.
    pub(crate) fn ask(&mut self, pause: bool, trigger: String, pos: i64, time: Timestamp, closed: i64) -> Asked {
        if pause == self.paused() {
            return Asked::Unchanged;
        }
        if pause {
            if self.pauses.len() >= MAX_PAUSES {
                return Asked::Unchanged;
            }
            self.len = 0;
            let from = pos.max(closed);
            self.pauses.push(Pause {
                from,
                to: None,
                trigger,
                at: time,
                closed_before: from - pos,
                resumed_by: None,
                resumed_at: None,
            });
            return Asked::Paused(from);
        }
        self.resuming = None;
        let Some(p) = self.pauses.last_mut() else { return Asked::Unchanged };
        // What closed while paused is silence: the pause reaches at least that far.
        let to = pos.max(closed).max(p.from);
        p.to = Some(to);
        p.resumed_by = Some(trigger);
        p.resumed_at = Some(time);
        Asked::Resumed(to)
    }

    /// A key ended after `duration` positions: the resume position, when it was the resume
    /// code's last key.
    pub(crate) fn key_end(&mut self, side: Side, rtp_ts: u32, duration: i64) -> Option<i64> {
        let (s, ts, pos) = self.resuming?;
        if s != side || ts != rtp_ts {
            return None;
        }
        self.resuming = None;
        let p = self.pauses.last_mut()?;
        let to = (pos + duration).max(p.from);
        p.to = Some(to);
        Some(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_and_bad_ones_are_refused() {
        let c = PauseCodes::parse("*1", "#A").unwrap();
        assert_eq!((c.pause, c.resume), (vec![10, 1], vec![11, 12]));
        assert!(PauseCodes::parse("*1", "*1").unwrap_err().contains("differ"));
        assert!(PauseCodes::parse("*x", "#").unwrap_err().contains("'x'"));
        assert!(PauseCodes::parse("", "#").is_err());
        assert!(PauseCodes::parse("123456789", "#").is_err());
    }

    #[test]
    fn asking_pauses_and_resumes_once_each_and_never_reaches_into_what_was_written() {
        let mut s = PauseState::default();
        let t = Timestamp(0);
        assert_eq!(s.ask(false, "api".into(), 100, t, 0), Asked::Unchanged, "not paused");
        assert_eq!(s.ask(true, "header".into(), 800, t, 1000), Asked::Paused(1000));
        assert_eq!(s.pauses[0].closed_before, 200);
        assert_eq!(s.ask(true, "again".into(), 900, t, 1000), Asked::Unchanged);
        // Resumed at a position already written (as silence): the pause ends where writing is.
        assert_eq!(s.ask(false, "api".into(), 1200, t, 1500), Asked::Resumed(1500));
        let p = &s.pauses[0];
        assert_eq!((p.from, p.to, p.trigger.as_str()), (1000, Some(1500), "header"));
        assert_eq!(p.resumed_by.as_deref(), Some("api"));
        assert_eq!(s.ask(true, "h".into(), 2000, t, 1500), Asked::Paused(2000));
        assert_eq!(s.ask(false, "h".into(), 2400, t, 1500), Asked::Resumed(2400));
        assert!(!s.paused());
    }

    #[test]
    fn a_code_pauses_from_its_last_key_and_the_resume_code_ends_it_after_its_last_key() {
        let codes = PauseCodes::parse("*1", "*2").unwrap();
        let mut s = PauseState::default();
        let t = Timestamp(0);
        // "1" alone does nothing; "*" then "1" pauses at the "1".
        assert_eq!(
            s.key(&codes, Key { side: Side::Caller, event: 1, rtp_ts: 100, pos: 800, time: t }, 0),
            Effect::None
        );
        assert_eq!(
            s.key(&codes, Key { side: Side::Caller, event: 10, rtp_ts: 200, pos: 1600, time: t }, 0),
            Effect::None
        );
        assert_eq!(
            s.key(&codes, Key { side: Side::Caller, event: 1, rtp_ts: 300, pos: 2400, time: t }, 0),
            Effect::Pause(2400)
        );
        assert!(s.paused());
        // Keys of the card number, then the resume code: "2" ends 800 positions later.
        for (k, d) in [4u8, 1, 1, 1, 10].iter().enumerate() {
            s.key(
                &codes,
                Key { side: Side::Callee, event: *d, rtp_ts: 400 + k as u32, pos: 3000 + k as i64, time: t },
                0,
            );
        }
        assert_eq!(
            s.key(&codes, Key { side: Side::Callee, event: 2, rtp_ts: 500, pos: 4000, time: t }, 0),
            Effect::None
        );
        assert_eq!(s.key_end(Side::Caller, 500, 800), None, "another party's key");
        assert_eq!(s.key_end(Side::Callee, 500, 800), Some(4800));
        assert!(!s.paused());
        let p = &s.pauses[0];
        assert_eq!((p.from, p.to), (2400, Some(4800)));
        assert_eq!(p.trigger, "dtmf *1 (caller)");
        assert_eq!(p.resumed_by.as_deref(), Some("dtmf *2 (callee)"));
        // A pause keyed after its place was written starts at the first position not written.
        assert_eq!(
            s.key(&codes, Key { side: Side::Caller, event: 10, rtp_ts: 600, pos: 5000, time: t }, 0),
            Effect::None
        );
        assert_eq!(
            s.key(&codes, Key { side: Side::Caller, event: 1, rtp_ts: 700, pos: 5100, time: t }, 5300),
            Effect::Pause(5300)
        );
        assert_eq!(s.pauses[1].closed_before, 200);
    }
}
