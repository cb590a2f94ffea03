//! Deterministic synthetic SIP + RTP captures with exact ground truth.
//!
//! callgen writes classic libpcap files of G.711 calls — SIP over UDP with SDP, symmetric RTP
//! both ways — and returns a [`Truth`] describing what a correct recorder must report for every
//! call. It serves the end-to-end tests (replay the file through callvault, compare each call's
//! WAV and JSON record with the truth), the benchmarks (captures of thousands of concurrent
//! calls and millions of packets, streamed with bounded memory) and the demo capture.
//!
//! ```no_run
//! use callvault_callgen::{CallSpec, Scenario, write_pcap};
//!
//! let start = 1_700_000_000_000_000_000;
//! let calls = (0..10).map(|i| CallSpec::answered(i, start + i64::from(i) * 100_000_000, 5_000));
//! let truth = write_pcap(&Scenario::new(calls.collect()), "demo.pcap".as_ref())?;
//! assert_eq!(truth.calls[0].expected_state, "completed");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Everything is a function of the [`Scenario`]: the same scenario always gives the same
//! bytes. Tests can recompute any payload with [`expected_payload`] (or the building blocks
//! [`tone_sample`], [`linear_to_ulaw`], [`linear_to_alaw`]), any nominal capture time with
//! [`timeline::rtp_nominal_ns`], and the exact send order and times of one RTP direction with
//! [`RtpSchedule`] (and the exact bytes of each of its packets with [`rtp_packet`]). The
//! [`timeline`] module documents every timing choice.
//!
//! Beyond plain calls, a scenario can put real-network situations on the wire: SIP over TCP
//! ([`SipTransport`]), IP fragmentation ([`Fragmentation`]), tunnels ([`Tunnel`]: GRE, ERSPAN,
//! VXLAN), a callee behind NAT ([`Nat`]), early media ([`EarlyMedia`]), hold, resume and media
//! moves by re-INVITE ([`MidCall`]), RFC 4733 DTMF ([`DtmfDigit`]), RTP numbering changes
//! ([`StreamChange`]), network delay variation ([`Delay`], uniform or bursty, packets kept in
//! order), sender clock drift ([`DirImpair::clock_ppm`]), network and capture stalls followed by
//! bursts ([`Stall`], [`CaptureStall`]), encrypted media announced as SDES-SRTP, DTLS-SRTP or
//! ZRTP ([`MediaSecurity`]), auth challenges answered late ([`AuthChallenge`]), non-audio media
//! lines ([`ExtraMedia`]) and a snapshot length that cuts frames ([`Scenario::snaplen`]). Left
//! at their defaults they change nothing: the bytes are those of a plain capture.
//!
//! Module map: `spec` (what to generate), `validate` (checks it), `timeline` (when each packet
//! goes out), `sip` (message text), `rtp` (what each RTP packet carries), `tone` and `g711`
//! (payloads), `frame` (link/IP/UDP headers), `net` (TCP, fragments, tunnels), `pcap` (file
//! format), `generate` (the k-way merge), `truth` (what was written), `presets` (bulk and demo
//! call sets).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod frame;
mod g711;
mod generate;
mod mix;
mod net;
mod opus;
pub mod pcap;
mod presets;
mod rtp;
mod sip;
mod spec;
pub mod timeline;
mod tone;
mod truth;
mod validate;

pub use g711::{linear_to_alaw, linear_to_ulaw};
pub use generate::{write_pcap, write_pcap_to};
pub use presets::{demo_mix, share_media_address, spread_calls};
pub use rtp::{TELEPHONE_EVENT_PT, rtp_addresses, rtp_packet, rtp_packet_clear, sdes_key};
pub use spec::{
    AuthChallenge, CallSpec, CaptureStall, Codec, Declared, Delay, DirImpair, DtmfDigit, EarlyMedia, EventStream,
    ExtraKind, ExtraMedia, FragmentOrder, Fragmentation, Hangup, Impairments, L16_PT, L16_WIDE_PT, Link, MediaSecurity,
    MidCall, Nat, OPUS_PT, Outcome, Scenario, SctpOptions, Silence, SipInfo, SipTransport, Srtp, Stall, StreamChange,
    TUNNEL_DST, TUNNEL_SRC, TcpOptions, TsPrecision, Tunnel, WsOptions,
};
/// SRTP crypto suites ([`Srtp::suite`]).
pub use srtp::Suite as SrtpSuite;
pub use timeline::{Party, RtpSchedule, RtpSend};
pub use tone::{SAMPLE_RATE, TONE_AMPLITUDE, expected_payload, samples_per_packet, tone_sample, tone_sample_16k};
pub use truth::{CallTruth, DtmfTruth, EarlyMediaTruth, HoldTruth, SipTruth, StreamTruth, Truth};
pub use validate::SpecError;
