//! Sans-IO reassembly of what the network splits: IP fragments ([`ip`]), TCP byte streams
//! framed into SIP messages ([`tcp`], SIP over WebSocket included) and SCTP user messages
//! ([`sctp`]).
//!
//! Both are driven by packet capture time (`now` is an argument, never read from a clock),
//! hold every byte they keep under a cap from [`crate::limits::Limits`], count every limit hit
//! and every anomaly, and never panic on what the network sends.

pub mod ip;
pub mod sctp;
pub mod tcp;
