//! The transport layer: frames in, UDP datagrams and SIP-over-TCP messages out.
//!
//! [`decode`] holds the stateless steps (link layer, EtherType, GRE, tunnels), [`ingress`]
//! walks a frame down with them, and [`reassembly`] puts back together what the network split
//! (IP fragments, TCP streams). Nothing here knows about calls.

pub mod decode;
pub mod ingress;
pub mod reassembly;
