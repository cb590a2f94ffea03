//! RFC 4733 §2.3 telephone-event payload (DTMF and other named events in RTP).
//!
//! ```text
//!  0                   1                   2                   3
//! |     event     |E|R| volume    |          duration             |
//! ```

use super::{ErrorKind, Layer, WireError, be16};

/// Byte ranges of the payload.
pub mod field {
    use std::ops::Range;

    /// Event code.
    pub const EVENT: usize = 0;
    /// End bit, reserved bit, volume (6 bits).
    pub const FLAGS_VOLUME: usize = 1;
    /// Duration so far, in RTP timestamp units.
    pub const DURATION: Range<usize> = 2..4;
}

/// Size of one event payload.
pub const LEN: usize = field::DURATION.end;

const FLAG_END: u8 = 0x80;
const MASK_VOLUME: u8 = 0x3f;

/// Validated fields of one telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRepr {
    /// Event code (0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`, 16 flash, ...).
    pub event: u8,
    /// End of event.
    pub end: bool,
    /// Volume in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl EventRepr {
    /// Parses the first event of a payload (redundant events after it, RFC 4733 §2.5.1.4,
    /// are not read).
    pub fn parse(p: &[u8]) -> Result<EventRepr, WireError> {
        if p.len() < LEN {
            return Err(WireError::new(Layer::Rtp, p.len(), ErrorKind::Truncated));
        }
        Ok(EventRepr {
            event: p[field::EVENT],
            end: p[field::FLAGS_VOLUME] & FLAG_END != 0,
            volume: p[field::FLAGS_VOLUME] & MASK_VOLUME,
            duration: be16(p, field::DURATION.start),
        })
    }

    /// Writes the payload (reserved bit clear).
    pub fn emit(&self) -> [u8; LEN] {
        let mut b = [0; LEN];
        b[field::EVENT] = self.event;
        b[field::FLAGS_VOLUME] = if self.end { FLAG_END } else { 0 } | (self.volume & MASK_VOLUME);
        b[field::DURATION].copy_from_slice(&self.duration.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_and_back() {
        // '#', end, reserved bit set (ignored), volume 10, duration 800.
        let b = [0x0b, 0xca, 0x03, 0x20, 0xee];
        let e = EventRepr::parse(&b).unwrap();
        assert_eq!(e, EventRepr { event: 11, end: true, volume: 10, duration: 800 });
        assert_eq!(e.emit(), [0x0b, 0x8a, 0x03, 0x20]);
        let start = EventRepr { end: false, duration: 160, ..e };
        assert_eq!(EventRepr::parse(&start.emit()), Ok(start));
    }

    #[test]
    fn short() {
        assert_eq!(EventRepr::parse(&[1, 2, 3]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(EventRepr::parse(&[]).unwrap_err().offset, 0);
    }
}
