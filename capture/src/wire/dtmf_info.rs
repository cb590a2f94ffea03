//! DTMF in the body of a SIP INFO request: `application/dtmf-relay` (lines `Signal=5` and
//! `Duration=160`, in any order and case) and `application/dtmf` (the signal alone). Which
//! digit a signal names (a key, or an RFC 4733 event number) is decided by the caller.

use super::sip::{parse_decimal, trim};

/// A DTMF signal carried in an INFO body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfInfo<'a> {
    /// The signal as written: a key (`5`, `*`, `A`) or an event number (`10`).
    pub signal: &'a [u8],
    /// `Duration`, in milliseconds, when given (dtmf-relay only).
    pub duration_ms: Option<u32>,
}

/// The DTMF signal of an INFO body of the given `Content-Type`, or `None` if the type is not
/// a DTMF one or the body names no signal.
pub fn parse<'a>(content_type: &'a [u8], body: &'a [u8]) -> Option<DtmfInfo<'a>> {
    let mime = trim(content_type.split(|&c| c == b';').next().unwrap_or(content_type));
    let field = |name: &[u8]| {
        body.split(|&c| c == b'\n').find_map(|line| {
            let eq = memchr::memchr(b'=', line)?;
            trim(&line[..eq]).eq_ignore_ascii_case(name).then(|| trim(&line[eq + 1..]))
        })
    };
    let (signal, duration) = if mime.eq_ignore_ascii_case(b"application/dtmf-relay") {
        (field(b"Signal")?, field(b"Duration"))
    } else if mime.eq_ignore_ascii_case(b"application/dtmf") {
        (trim(body), None)
    } else {
        return None;
    };
    let duration_ms = duration.and_then(parse_decimal).and_then(|d| u32::try_from(d).ok());
    Some(DtmfInfo { signal, duration_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_body() {
        let info = parse(b"application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n").unwrap();
        assert_eq!(info, DtmfInfo { signal: b"5", duration_ms: Some(160) });
        let info = parse(b"Application/DTMF-Relay; charset=x", b"duration = 250\r\nsignal= #\r\n").unwrap();
        assert_eq!(info, DtmfInfo { signal: b"#", duration_ms: Some(250) });
        assert_eq!(parse(b"application/dtmf-relay", b"Duration=160\r\n"), None);
    }

    #[test]
    fn dtmf_body_and_other_types() {
        assert_eq!(parse(b"application/dtmf", b" 11\r\n"), Some(DtmfInfo { signal: b"11", duration_ms: None }));
        assert_eq!(parse(b"application/sdp", b"Signal=5\r\n"), None);
        assert_eq!(parse(b"text/plain", b"5"), None);
    }
}
