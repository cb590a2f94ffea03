//! SIP message and SDP text (RFC 3261, RFC 4566).
//!
//! Each call has one dialog between the caller and the callee, no proxies. Responses copy the
//! request's Via, From, To (adding the callee's tag after the 100), Call-ID and CSeq. The ACK
//! for a 200 is a new transaction (new branch); the ACK for a non-2xx final response and the
//! CANCEL reuse the INVITE's branch. A BYE or re-INVITE uses its sender's own CSeq space (the
//! caller's goes on from the INVITE's CSeq); a re-INVITE and its ACK get new branches, and its
//! SDP keeps the sender's session id with a version that counts the sender's SDP changes.

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine as _;

use crate::mix::hash;
use crate::spec::{CallSpec, Codec, ExtraKind, MediaSecurity, SipTransport};
use crate::timeline::{Party, ReInvite, SipMsg, TcpControl, reinvites};

/// Identifiers of one dialog, hashed from the scenario seed and the call's position.
#[derive(Debug, Clone)]
pub(crate) struct DialogIds {
    from_tag: u64,
    to_tag: u64,
    invite_branch: u64,
    ack_branch: u64,
    bye_branch: u64,
    invite_cseq: u32,
    callee_cseq: u32,
    caller_sess: u64,
    callee_sess: u64,
    /// Branch of the INVITE re-sent after a challenge.
    auth_branch: u64,
    seed: u64,
    call_index: u64,
}

impl DialogIds {
    /// A further identifier of the dialog (re-INVITE branches).
    fn extra(&self, k: u64) -> u64 {
        hash(&[self.seed, 0x5e55, self.call_index, k])
    }

    pub(crate) fn new(seed: u64, call_index: usize) -> DialogIds {
        let h = |k: u64| hash(&[seed, 0x5e55, call_index as u64, k]);
        DialogIds {
            seed,
            call_index: call_index as u64,
            from_tag: h(1),
            to_tag: h(2),
            invite_branch: h(3),
            ack_branch: h(4),
            bye_branch: h(5),
            invite_cseq: 1 + (h(6) % 1000) as u32,
            callee_cseq: 1 + (h(7) % 1000) as u32,
            caller_sess: h(8) % 1_000_000_000,
            callee_sess: h(9) % 1_000_000_000,
            auth_branch: h(10),
        }
    }
}

/// The header names of one message: full or compact (RFC 3261 section 7.3.3).
struct Names {
    via: &'static str,
    from: &'static str,
    to: &'static str,
    call_id: &'static str,
    contact: &'static str,
    content_type: &'static str,
    content_length: &'static str,
}

const FULL: Names = Names {
    via: "Via",
    from: "From",
    to: "To",
    call_id: "Call-ID",
    contact: "Contact",
    content_type: "Content-Type",
    content_length: "Content-Length",
};

const COMPACT: Names =
    Names { via: "v", from: "f", to: "t", call_id: "i", contact: "m", content_type: "c", content_length: "l" };

/// Reason phrases of the status codes callgen is likely to send.
const REASONS: &[(u16, &str)] = &[
    (100, "Trying"),
    (180, "Ringing"),
    (183, "Session Progress"),
    (200, "OK"),
    (300, "Multiple Choices"),
    (301, "Moved Permanently"),
    (302, "Moved Temporarily"),
    (400, "Bad Request"),
    (401, "Unauthorized"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (407, "Proxy Authentication Required"),
    (408, "Request Timeout"),
    (480, "Temporarily Unavailable"),
    (486, "Busy Here"),
    (487, "Request Terminated"),
    (488, "Not Acceptable Here"),
    (500, "Server Internal Error"),
    (503, "Service Unavailable"),
    (600, "Busy Everywhere"),
    (603, "Decline"),
    (604, "Does Not Exist Anywhere"),
    (606, "Not Acceptable"),
];

/// Reason phrase of a status code (a generic one per class for codes not in the table).
pub(crate) fn reason(code: u16) -> &'static str {
    if let Some(&(_, phrase)) = REASONS.iter().find(|(c, _)| *c == code) {
        return phrase;
    }
    match code / 100 {
        1 => "Progress",
        2 => "Success",
        3 => "Redirection",
        4 => "Client Error",
        5 => "Server Error",
        _ => "Global Failure",
    }
}

/// `a.b.c.d` or `[v6]`, as the host part of a URI or Via.
fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Who sends a message: `true` for the caller.
pub(crate) fn sent_by_caller(msg: SipMsg) -> bool {
    match msg {
        SipMsg::Invite | SipMsg::AckOk | SipMsg::AckFinal | SipMsg::Cancel => true,
        SipMsg::Provisional(_) | SipMsg::InviteOk | SipMsg::InviteFinal(_) | SipMsg::CancelOk => false,
        SipMsg::Bye(by) => by == Party::Caller,
        SipMsg::ByeOk(by) => by == Party::Callee,
        SipMsg::SessionProgress => false,
        SipMsg::ReInvite(_, by) | SipMsg::ReAck(_, by) => by == Party::Caller,
        SipMsg::ReInviteOk(_, by) => by == Party::Callee,
        SipMsg::Info(_, by) => by == Party::Caller,
        SipMsg::InfoOk(_, by) => by == Party::Callee,
        SipMsg::Tcp(c) => {
            matches!(c, TcpControl::Syn | TcpControl::HandshakeAck | TcpControl::CallerFin | TcpControl::LastAck)
        }
        SipMsg::Challenge(_) => false,
        SipMsg::ChallengedInvite | SipMsg::ChallengeAck => true,
    }
}

/// The CSeq method of a message and its status code (`None` for requests).
pub(crate) fn describe(msg: SipMsg) -> (&'static str, Option<u16>) {
    match msg {
        SipMsg::Invite => ("INVITE", None),
        SipMsg::Provisional(code) | SipMsg::InviteFinal(code) => ("INVITE", Some(code)),
        SipMsg::InviteOk => ("INVITE", Some(200)),
        SipMsg::AckOk | SipMsg::AckFinal => ("ACK", None),
        SipMsg::Cancel => ("CANCEL", None),
        SipMsg::CancelOk => ("CANCEL", Some(200)),
        SipMsg::Bye(_) => ("BYE", None),
        SipMsg::ByeOk(_) => ("BYE", Some(200)),
        SipMsg::SessionProgress => ("INVITE", Some(183)),
        SipMsg::ReInvite(..) => ("INVITE", None),
        SipMsg::ReInviteOk(..) => ("INVITE", Some(200)),
        SipMsg::ReAck(..) => ("ACK", None),
        SipMsg::Info(..) => ("INFO", None),
        SipMsg::InfoOk(..) => ("INFO", Some(200)),
        // Not SIP; never described in the truth.
        SipMsg::Tcp(_) => ("", None),
        SipMsg::ChallengedInvite => ("INVITE", None),
        SipMsg::Challenge(code) => ("INVITE", Some(code)),
        SipMsg::ChallengeAck => ("ACK", None),
    }
}

/// Writes the text of `msg` for the call `spec` into `out` (cleared first).
pub(crate) fn render(spec: &CallSpec, ids: &DialogIds, msg: SipMsg, out: &mut String) {
    let n = if spec.compact_headers { &COMPACT } else { &FULL };
    let caller = host(spec.caller_ip);
    let callee = host(spec.callee_ip);
    let proto = match spec.sip_transport {
        SipTransport::Udp => "UDP",
        SipTransport::Tcp(_) => "TCP",
        SipTransport::WebSocket(_) => "WS",
        SipTransport::Sctp(_) => "SCTP",
    };
    let caller_via = format!("SIP/2.0/{proto} {caller}:{};branch=z9hG4bK", spec.caller_sip_port);
    let callee_via = format!("SIP/2.0/{proto} {callee}:{};branch=z9hG4bK", spec.callee_sip_port);
    let re = reinvites(spec);
    let sent_by = |p: Party| crate::timeline::requests_sent(spec, p);
    let display = spec.from_display.as_deref().map(|d| format!("\"{d}\" ")).unwrap_or_default();
    let from_caller = format!("{display}<sip:{}@{caller}>;tag={:08x}", spec.from_user, ids.from_tag as u32);
    let to_uri = format!("<sip:{}@{callee}>", spec.to_user);
    let to_tagged = format!("{to_uri};tag={:010x}", ids.to_tag >> 24);
    let callee_target = format!("sip:{}@{callee}:{}", spec.to_user, spec.callee_sip_port);
    let caller_target = format!("sip:{}@{caller}:{}", spec.from_user, spec.caller_sip_port);
    // After a challenge the dialog goes on from the re-sent INVITE: its branch and CSeq.
    let first_invite = format!("{caller_via}{:016x}", ids.invite_branch);
    let authed =
        spec.auth.is_some() && !matches!(msg, SipMsg::ChallengedInvite | SipMsg::Challenge(_) | SipMsg::ChallengeAck);
    let (invite_via, cseq) = if authed {
        (format!("{caller_via}{:016x}", ids.auth_branch), ids.invite_cseq + 1)
    } else {
        (first_invite.clone(), ids.invite_cseq)
    };

    let mut body = String::new();
    out.clear();
    // Start line and the headers every message has, in the usual order.
    let (start, via, from, to, cseq_line) = match msg {
        SipMsg::Invite | SipMsg::ChallengedInvite => {
            body = sdp(spec, Party::Caller, ids.caller_sess, 0, spec.caller_rtp_port, "sendrecv", None);
            (format!("INVITE {callee_target} SIP/2.0"), invite_via, from_caller, to_uri, format!("{cseq} INVITE"))
        }
        SipMsg::Challenge(code) => {
            (status(code), first_invite, from_caller, to_tagged, format!("{} INVITE", ids.invite_cseq))
        }
        SipMsg::ChallengeAck => (
            format!("ACK {callee_target} SIP/2.0"),
            first_invite,
            from_caller,
            to_tagged,
            format!("{} ACK", ids.invite_cseq),
        ),
        SipMsg::Provisional(code) | SipMsg::InviteFinal(code) => {
            let to = if code == 100 { to_uri } else { to_tagged };
            (status(code), invite_via, from_caller, to, format!("{cseq} INVITE"))
        }
        SipMsg::InviteOk | SipMsg::SessionProgress => {
            body = sdp(spec, Party::Callee, ids.callee_sess, 0, spec.callee_rtp_port, "sendrecv", None);
            let code = if msg == SipMsg::InviteOk { 200 } else { 183 };
            (status(code), invite_via, from_caller, to_tagged, format!("{cseq} INVITE"))
        }
        SipMsg::ReInvite(i, by) | SipMsg::ReInviteOk(i, by) | SipMsg::ReAck(i, by) => {
            let r: &ReInvite = &re[usize::from(i)];
            let (target, via, from, to, number) = match by {
                Party::Caller => (&callee_target, &caller_via, &from_caller, &to_tagged, cseq + r.cseq_step),
                Party::Callee => (&caller_target, &callee_via, &to_tagged, &from_caller, ids.callee_cseq + r.cseq_step),
            };
            let branch = ids.extra(if matches!(msg, SipMsg::ReAck(..)) { 200 } else { 100 } + u64::from(i));
            let via = format!("{via}{branch:016x}");
            let (sess, answer_sess) = match by {
                Party::Caller => (ids.caller_sess, ids.callee_sess),
                Party::Callee => (ids.callee_sess, ids.caller_sess),
            };
            match msg {
                SipMsg::ReInvite(..) => {
                    body = sdp(spec, by, sess, r.offer_version, r.offer_port, r.offer_dir, Some(r.offer_codec));
                    (format!("INVITE {target} SIP/2.0"), via, from.clone(), to.clone(), format!("{number} INVITE"))
                }
                SipMsg::ReInviteOk(..) => {
                    let other = match by {
                        Party::Caller => Party::Callee,
                        Party::Callee => Party::Caller,
                    };
                    body = sdp(
                        spec,
                        other,
                        answer_sess,
                        r.answer_version,
                        r.answer_port,
                        r.answer_dir,
                        Some(r.answer_codec),
                    );
                    (status(200), via, from.clone(), to.clone(), format!("{number} INVITE"))
                }
                _ => (format!("ACK {target} SIP/2.0"), via, from.clone(), to.clone(), format!("{number} ACK")),
            }
        }
        SipMsg::Info(i, by) | SipMsg::InfoOk(i, by) => {
            let step = crate::timeline::info_cseq_step(spec, usize::from(i));
            let (target, via, from, to, number) = match by {
                Party::Caller => (&callee_target, &caller_via, &from_caller, &to_tagged, cseq + step),
                Party::Callee => (&caller_target, &callee_via, &to_tagged, &from_caller, ids.callee_cseq + step),
            };
            let via = format!("{via}{:016x}", ids.extra(400 + u64::from(i)));
            let start = match msg {
                SipMsg::Info(..) => format!("INFO {target} SIP/2.0"),
                _ => status(200),
            };
            (start, via, from.clone(), to.clone(), format!("{number} INFO"))
        }
        // Not SIP: nothing to render.
        SipMsg::Tcp(_) => return,
        SipMsg::AckOk => (
            format!("ACK {callee_target} SIP/2.0"),
            format!("{caller_via}{:016x}", ids.ack_branch),
            from_caller,
            to_tagged,
            format!("{cseq} ACK"),
        ),
        SipMsg::AckFinal => {
            (format!("ACK {callee_target} SIP/2.0"), invite_via, from_caller, to_tagged, format!("{cseq} ACK"))
        }
        SipMsg::Cancel => {
            (format!("CANCEL {callee_target} SIP/2.0"), invite_via, from_caller, to_uri, format!("{cseq} CANCEL"))
        }
        SipMsg::CancelOk => (status(200), invite_via, from_caller, to_tagged, format!("{cseq} CANCEL")),
        SipMsg::Bye(by) | SipMsg::ByeOk(by) => {
            let request = matches!(msg, SipMsg::Bye(_));
            let (start_line, via, from, to, number) = match by {
                Party::Caller => (
                    format!("BYE {callee_target} SIP/2.0"),
                    format!("{caller_via}{:016x}", ids.bye_branch),
                    from_caller,
                    to_tagged,
                    cseq + 1 + sent_by(Party::Caller),
                ),
                Party::Callee => (
                    format!("BYE {caller_target} SIP/2.0"),
                    format!("{callee_via}{:016x}", ids.bye_branch),
                    to_tagged,
                    from_caller,
                    ids.callee_cseq + sent_by(Party::Callee),
                ),
            };
            let start_line = if request { start_line } else { status(200) };
            (start_line, via, from, to, format!("{number} BYE"))
        }
    };
    let is_request = !start.starts_with("SIP/2.0 ");

    // Writing to a String cannot fail.
    let _ = write!(out, "{start}\r\n{}: {via}\r\n", n.via);
    if is_request {
        out.push_str("Max-Forwards: 70\r\n");
    }
    let _ =
        write!(out, "{}: {from}\r\n{}: {to}\r\n{}: {}\r\nCSeq: {cseq_line}\r\n", n.from, n.to, n.call_id, spec.call_id);
    // Contact on dialog-forming and target-refresh messages.
    match msg {
        SipMsg::Invite
        | SipMsg::ChallengedInvite
        | SipMsg::ReInvite(_, Party::Caller)
        | SipMsg::ReInviteOk(_, Party::Callee) => {
            let _ = write!(out, "{}: <{caller_target}>\r\n", n.contact);
        }
        SipMsg::Provisional(180)
        | SipMsg::InviteOk
        | SipMsg::SessionProgress
        | SipMsg::ReInvite(_, Party::Callee)
        | SipMsg::ReInviteOk(_, Party::Caller) => {
            let _ = write!(out, "{}: <{callee_target}>\r\n", n.contact);
        }
        _ => {}
    }
    let invite = matches!(msg, SipMsg::Invite | SipMsg::ChallengedInvite);
    if invite && let Some(pai) = &spec.pai {
        let _ = write!(out, "P-Asserted-Identity: {pai}\r\n");
    }
    if let (SipMsg::Invite, Some(auth)) = (msg, spec.auth) {
        let name = if auth.code == 407 { "Proxy-Authorization" } else { "Authorization" };
        let _ = write!(
            out,
            "{name}: Digest username=\"{}\", realm=\"callvault.test\", nonce=\"{:016x}\", \
             uri=\"{callee_target}\", response=\"{:032x}\", algorithm=MD5\r\n",
            spec.from_user,
            ids.extra(300),
            u128::from(ids.extra(301)) << 64 | u128::from(ids.extra(302))
        );
    }
    if let SipMsg::Challenge(code) = msg {
        let name = if code == 407 { "Proxy-Authenticate" } else { "WWW-Authenticate" };
        let _ = write!(
            out,
            "{name}: Digest realm=\"callvault.test\", nonce=\"{:016x}\", algorithm=MD5\r\n",
            ids.extra(300)
        );
    }
    if matches!(msg, SipMsg::Invite | SipMsg::ChallengedInvite | SipMsg::InviteOk) {
        out.push_str("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n");
        out.push_str(if invite { "User-Agent: callvault-callgen\r\n" } else { "Server: callvault-callgen\r\n" });
        let _ = write!(out, "{}: application/sdp\r\n", n.content_type);
    } else if !body.is_empty() {
        let _ = write!(out, "{}: application/sdp\r\n", n.content_type);
    }
    if let SipMsg::Info(i, _) = msg {
        let info = &spec.infos[usize::from(i)];
        if let Some((name, value)) = &info.header {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if let Some((key, ms)) = info.dtmf {
            body = format!("Signal={key}\r\nDuration={ms}\r\n");
            let _ = write!(out, "{}: application/dtmf-relay\r\n", n.content_type);
        }
    }
    if invite && spec.invite_padding > 0 {
        padding(spec.invite_padding, out);
    }
    let _ = write!(out, "{}: {}\r\n\r\n{body}", n.content_length, body.len());
}

fn status(code: u16) -> String {
    format!("SIP/2.0 {code} {}", reason(code))
}

/// Padding header lines of [`CallSpec::invite_padding`]: `ceil(bytes / 100)` lines of exactly
/// 100 bytes, `X-Padding-NNN: ` and 82 letters.
fn padding(bytes: u32, out: &mut String) {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    for i in 0..bytes.div_ceil(100) {
        let _ = write!(out, "X-Padding-{:03}: ", i % 1000);
        out.extend((0..82).map(|j| char::from(LETTERS[(i as usize + j) % LETTERS.len()])));
        out.push_str("\r\n");
    }
}

/// An SDP of `party` (the offer of the caller, the answer of the callee, or a re-offer): its
/// address, `port`, `o=` version `session + version` and direction attribute `direction`; the
/// call's encryption and extra media lines when it has them.
fn sdp(
    spec: &CallSpec,
    party: Party,
    session: u64,
    version: u64,
    port: u16,
    direction: &str,
    codec: Option<Codec>,
) -> String {
    let ip = match party {
        Party::Caller => spec.caller_ip,
        Party::Callee => spec.callee_ip,
    };
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let declared = match party {
        Party::Caller => spec.caller_declares,
        Party::Callee => spec.callee_declares,
    };
    let (declared_codec, events) = declared.map_or((spec.codec_of(party), true), |d| (d.codec, d.telephone_event));
    // A re-INVITE's SDP offers the codec of the moment (changed by `MidCall::ChangeCodec`).
    let codec = match codec {
        Some(c) if c != spec.codec_of(party) => c,
        _ => declared_codec,
    };
    let pt = codec.payload_type();
    let o_version = session + version;
    let (formats, event_lines) =
        if events { (" 101", "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n") } else { ("", "") };
    let offer = party == Party::Caller;
    let key = |k: u64| hash(&[session, 0x5ec, k]);
    let (proto, session_attrs, media_attrs) = match spec.media_security {
        None => ("RTP/AVP", String::new(), String::new()),
        Some(MediaSecurity::Sdes) if spec.srtp.is_some() => {
            let s = spec.srtp.expect("checked");
            let line = |tag: u32, suite: srtp::Suite, which: u64| {
                let key = crate::rtp::sdes_key(spec, party, suite, which);
                let inline = base64::engine::general_purpose::STANDARD.encode(key.expose_secret());
                format!("a=crypto:{tag} {suite} inline:{inline}\r\n")
            };
            let lines = match (offer, s.offer_two) {
                (true, true) => {
                    let decoy = if s.suite == srtp::Suite::AesCm128Sha1_80 {
                        srtp::Suite::AeadAes256Gcm
                    } else {
                        srtp::Suite::AesCm128Sha1_80
                    };
                    line(1, decoy, 1) + &line(2, s.suite, 0)
                }
                (false, true) => line(2, s.suite, 0),
                (_, false) => line(1, s.suite, 0),
            };
            ("RTP/SAVP", String::new(), lines)
        }
        Some(MediaSecurity::Sdes) => {
            let bytes: Vec<u8> = (0..30).map(|i| (key(i / 8) >> (8 * (i % 8))) as u8).collect();
            let inline = base64::engine::general_purpose::STANDARD.encode(bytes);
            ("RTP/SAVP", String::new(), format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{inline}\r\n"))
        }
        Some(MediaSecurity::Dtls) => {
            let fp: Vec<String> = (0..32).map(|i| format!("{:02X}", (key(i / 8) >> (8 * (i % 8))) as u8)).collect();
            let setup = if offer { "actpass" } else { "active" };
            ("UDP/TLS/RTP/SAVPF", format!("a=fingerprint:sha-256 {}\r\n", fp.join(":")), format!("a=setup:{setup}\r\n"))
        }
        Some(MediaSecurity::Zrtp) => {
            let h: String = (0..4).map(|i| format!("{:016x}", key(i))).collect();
            ("RTP/AVP", String::new(), format!("a=zrtp-hash:1.10 {h}\r\n"))
        }
    };
    let (rtpmap, fmtp) = codec.rtpmap();
    let fmtp = fmtp.map_or_else(String::new, |f| format!("a=fmtp:{pt} {f}\r\n"));
    let mut out = format!(
        "v=0\r\n\
         o=- {session} {o_version} IN {family} {ip}\r\n\
         s=-\r\n\
         c=IN {family} {ip}\r\n\
         t=0 0\r\n\
         {session_attrs}\
         m=audio {port} {proto} {pt}{formats}\r\n\
         a=rtpmap:{pt} {rtpmap}\r\n\
         {fmtp}\
         {event_lines}\
         a=ptime:{}\r\n\
         {media_attrs}\
         a={direction}\r\n",
        spec.ptime_ms
    );
    for x in &spec.extra_media {
        let port = if offer { x.caller_port } else { x.callee_port };
        let _ = match x.kind {
            ExtraKind::Video => write!(out, "m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"),
            ExtraKind::T38 => write!(out, "m=image {port} udptl t38\r\na=T38FaxVersion:0\r\n"),
            ExtraKind::Bfcp => write!(out, "m=application {port} UDP/BFCP *\r\na=floorctrl:c-s\r\n"),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Codec;

    fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.split("\r\n").find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    #[test]
    fn invite_has_exact_content_length_and_sdp() {
        let mut c = CallSpec::answered(4, 0, 100);
        c.codec = Codec::Pcma;
        c.pai = Some("\"Alice\" <sip:+15551234@example.com>".into());
        let ids = DialogIds::new(1, 0);
        let mut s = String::new();
        render(&c, &ids, SipMsg::Invite, &mut s);
        assert!(s.starts_with("INVITE sip:2004@10.2.0.5:5060 SIP/2.0\r\n"), "{s}");
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        let len: usize = header(head, "Content-Length").unwrap().parse().unwrap();
        assert_eq!(len, body.len());
        assert!(body.contains("m=audio 10008 RTP/AVP 8 101\r\n"));
        assert!(body.contains("a=rtpmap:8 PCMA/8000\r\n"));
        assert!(body.contains("c=IN IP4 10.1.0.5\r\n"));
        assert!(header(head, "Via").unwrap().contains(";branch=z9hG4bK"));
        assert_eq!(header(head, "From").unwrap().split(";tag=").count(), 2);
        assert_eq!(header(head, "P-Asserted-Identity"), Some("\"Alice\" <sip:+15551234@example.com>"));
    }

    #[test]
    fn opus_and_l16_are_offered_on_dynamic_payload_types_at_their_rates() {
        let mut c = CallSpec::answered(4, 0, 100);
        c.codec = Codec::Opus;
        let mut s = String::new();
        render(&c, &DialogIds::new(1, 0), SipMsg::Invite, &mut s);
        let body = s.split_once("\r\n\r\n").unwrap().1;
        assert!(
            body.contains(
                "m=audio 10008 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n"
            )
        );
        for (codec, line) in [
            (Codec::L16, "a=rtpmap:96 L16/8000\r\na=rtpmap:101"),
            (Codec::L16Wide, "a=rtpmap:97 L16/16000\r\na=rtpmap:101"),
        ] {
            c.codec = codec;
            let mut s = String::new();
            render(&c, &DialogIds::new(1, 0), SipMsg::Invite, &mut s);
            assert!(s.contains(line), "{s}");
        }
    }

    #[test]
    fn responses_copy_the_request_and_tag_to() {
        let c = CallSpec::answered(0, 0, 100);
        let ids = DialogIds::new(0, 0);
        let (mut inv, mut trying, mut ok) = (String::new(), String::new(), String::new());
        render(&c, &ids, SipMsg::Invite, &mut inv);
        render(&c, &ids, SipMsg::Provisional(100), &mut trying);
        render(&c, &ids, SipMsg::InviteOk, &mut ok);
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            assert_eq!(header(&inv, name), header(&ok, name), "{name}");
            assert_eq!(header(&inv, name), header(&trying, name), "{name}");
        }
        assert!(!header(&trying, "To").unwrap().contains("tag="));
        assert!(header(&ok, "To").unwrap().contains(";tag="));
        assert!(ok.contains("m=audio 30000 RTP/AVP 0 101\r\n"));
    }

    #[test]
    fn acks_and_callee_bye() {
        let c = CallSpec::answered(0, 0, 100);
        let ids = DialogIds::new(0, 0);
        let [mut inv, mut ack_ok, mut ack_fin, mut bye] = [(); 4].map(|_| String::new());
        render(&c, &ids, SipMsg::Invite, &mut inv);
        render(&c, &ids, SipMsg::AckOk, &mut ack_ok);
        render(&c, &ids, SipMsg::AckFinal, &mut ack_fin);
        render(&c, &ids, SipMsg::Bye(Party::Callee), &mut bye);
        assert_ne!(header(&inv, "Via"), header(&ack_ok, "Via"));
        assert_eq!(header(&inv, "Via"), header(&ack_fin, "Via"));
        assert!(bye.starts_with("BYE sip:1000@10.1.0.1:5060 SIP/2.0\r\n"));
        assert!(header(&bye, "Via").unwrap().starts_with("SIP/2.0/UDP 10.2.0.1:5060;"));
        assert_eq!(header(&bye, "To"), header(&inv, "From"));
    }

    #[test]
    fn challenged_invite_and_the_retry() {
        let mut c = CallSpec::answered(0, 0, 100);
        c.auth = Some(crate::spec::AuthChallenge { code: 407, retry_ms: 32_000 });
        let ids = DialogIds::new(0, 0);
        let [mut first, mut challenge, mut ack, mut retry, mut ok] = [(); 5].map(|_| String::new());
        render(&c, &ids, SipMsg::ChallengedInvite, &mut first);
        render(&c, &ids, SipMsg::Challenge(407), &mut challenge);
        render(&c, &ids, SipMsg::ChallengeAck, &mut ack);
        render(&c, &ids, SipMsg::Invite, &mut retry);
        render(&c, &ids, SipMsg::InviteOk, &mut ok);
        assert!(challenge.starts_with("SIP/2.0 407 Proxy Authentication Required\r\n"));
        assert!(header(&challenge, "Proxy-Authenticate").unwrap().starts_with("Digest realm="));
        for m in [&challenge, &ack] {
            assert_eq!(header(&first, "Via"), header(m, "Via"));
            assert_eq!(
                header(&first, "CSeq").map(|c| c.split(' ').next()),
                header(m, "CSeq").map(|c| c.split(' ').next())
            );
        }
        assert_ne!(header(&first, "Via"), header(&retry, "Via"), "a new transaction");
        assert_eq!(header(&first, "From"), header(&retry, "From"), "same From tag");
        assert_eq!(header(&first, "Call-ID"), header(&retry, "Call-ID"));
        let seq = |m: &str| header(m, "CSeq").unwrap().split(' ').next().unwrap().parse::<u32>().unwrap();
        assert_eq!(seq(&retry), seq(&first) + 1);
        assert!(header(&retry, "Proxy-Authorization").is_some());
        assert!(header(&first, "Proxy-Authorization").is_none());
        assert_eq!(header(&ok, "Via"), header(&retry, "Via"), "the answer is to the retry");
    }

    #[test]
    fn encrypted_and_extra_media_in_the_sdp() {
        use crate::spec::{ExtraKind, ExtraMedia, MediaSecurity};
        let ids = DialogIds::new(0, 0);
        let mut c = CallSpec::answered(0, 0, 100);
        let mut s = String::new();
        c.media_security = Some(MediaSecurity::Sdes);
        render(&c, &ids, SipMsg::Invite, &mut s);
        assert!(s.contains("m=audio 10000 RTP/SAVP 0 101\r\n"), "{s}");
        let crypto = s.split("\r\n").find(|l| l.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")).unwrap();
        assert_eq!(crypto.len(), "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:".len() + 40, "30 key bytes in base64");
        c.media_security = Some(MediaSecurity::Dtls);
        render(&c, &ids, SipMsg::InviteOk, &mut s);
        assert!(s.contains("m=audio 30000 UDP/TLS/RTP/SAVPF 0 101\r\n"), "{s}");
        assert!(s.contains("a=setup:active\r\n") && s.contains("\r\na=fingerprint:sha-256 "), "{s}");
        c.media_security = Some(MediaSecurity::Zrtp);
        c.extra_media = vec![
            ExtraMedia { kind: ExtraKind::Video, caller_port: 10_100, callee_port: 30_100, packets: 1 },
            ExtraMedia { kind: ExtraKind::T38, caller_port: 10_200, callee_port: 30_200, packets: 1 },
        ];
        render(&c, &ids, SipMsg::Invite, &mut s);
        assert!(s.contains("m=audio 10000 RTP/AVP 0 101\r\n") && s.contains("a=zrtp-hash:1.10 "), "{s}");
        assert!(s.contains("m=video 10100 RTP/AVP 96\r\n") && s.contains("m=image 10200 udptl t38\r\n"), "{s}");
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        assert_eq!(header(head, "Content-Length").unwrap().parse::<usize>().unwrap(), body.len());
    }

    #[test]
    fn compact_and_ipv6() {
        let mut c = CallSpec::answered(0, 0, 100).into_ipv6();
        c.compact_headers = true;
        let ids = DialogIds::new(0, 0);
        let mut s = String::new();
        render(&c, &ids, SipMsg::Invite, &mut s);
        for name in ["v", "f", "t", "i", "m", "c", "l"] {
            assert!(header(&s, name).is_some(), "missing {name}: {s}");
        }
        assert!(header(&s, "Via").is_none());
        assert!(s.starts_with("INVITE sip:2000@[fd00::a:2:0:1]:5060 SIP/2.0"));
        assert!(s.contains("c=IN IP6 fd00::a:1:0:1\r\n"));
    }
}
