//! HEP export: every SIP message capture parses, the RTCP of the calls it follows, and each
//! finished call's quality reports, sent as HEPv3 over UDP to a HOMER collector (heplify-server, HEPop) when `[hep]` names one.
//!
//! Data flows one way. Capture's sink ([`crate::batch::BatchSink`]) and the finishers hand
//! their items to a [`Feed`], which queues them on a bounded channel to the one exporter
//! thread; that thread encodes ([`encode`]) and sends. A live capture never waits for it: a
//! full queue drops the item (counted, `callvault_hep_dropped_total{reason="queue_full"}`);
//! replay of files waits instead, so a replay exports every message. A send that fails (no
//! collector listening, no route) is counted and logged at most once a minute; recording
//! never depends on the collector. RTP is never exported: nothing here runs per RTP packet.
//!
//! A SIP message keeps its capture time, addresses, ports and transport (UDP, or TCP for
//! messages framed out of a stream) and its bytes exactly as on the wire, with the Call-ID
//! as correlation id; RTCP is described in [`rtcp`], quality reports in [`report`].

pub mod encode;
pub mod report;
pub mod rtcp;

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use capture::Timestamp;
use capture::decode::Transport;
use capture::events::{RtcpMeta, SipSeen};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use mixer::record::CallRecord;

use crate::batch::Backpressure;
use crate::config::Hep;
use encode::{Agent, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, PROTO_QOS_REPORT, PROTO_RTCP, PROTO_SIP, Packet};

/// Items waiting for the exporter thread.
const QUEUE: usize = 8192;
/// Failed sends are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// An unresolvable collector name is looked up again at most this often.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// What the exporter did, for the metrics (read at each scrape; nothing waits on them).
#[derive(Debug, Default)]
pub struct HepCounters {
    /// SIP messages sent.
    pub sent_sip: AtomicU64,
    /// Quality reports sent.
    pub sent_reports: AtomicU64,
    /// RTCP packets sent.
    pub sent_rtcp: AtomicU64,
    /// Items dropped because the exporter's queue was full (live capture only).
    pub dropped_queue_full: AtomicU64,
    /// Packets the collector could not be sent (send error, unresolvable name).
    pub dropped_send_error: AtomicU64,
    /// Messages too long for one HEP packet over UDP.
    pub dropped_too_large: AtomicU64,
}

impl HepCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One item for the exporter.
#[derive(Debug)]
enum Item {
    /// A SIP message: `bytes` holds the Call-ID, then the message.
    Sip { time: Timestamp, src: SocketAddr, dst: SocketAddr, transport: Transport, call_id_len: usize, bytes: Vec<u8> },
    /// A finished call's record, for its quality reports.
    Report(Box<CallRecord>),
    /// A compound RTCP packet of a call.
    Rtcp { time: Timestamp, src: SocketAddr, dst: SocketAddr, call_id: Arc<str>, bytes: Vec<u8> },
}

/// The sending end: cheap to clone, one per producer thread.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: Sender<Item>,
    mode: Backpressure,
    counters: Arc<HepCounters>,
    reports: bool,
    rtcp: bool,
}

impl Feed {
    fn put(&self, item: Item) {
        match self.mode {
            // The exporter drains until every feed is gone: a send fails only if it died.
            Backpressure::Block => {
                let _ = self.tx.send(item);
            }
            Backpressure::DropMedia => match self.tx.try_send(item) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => HepCounters::add(&self.counters.dropped_queue_full, 1),
            },
        }
    }

    /// A SIP message capture parsed (SDES keys in its SDP masked, see [`mask_sdes_keys`]).
    pub fn sip(&self, seen: &SipSeen<'_>) {
        let mut bytes = Vec::with_capacity(seen.call_id.len() + seen.message.len());
        bytes.extend_from_slice(seen.call_id);
        bytes.extend_from_slice(seen.message);
        mask_sdes_keys(&mut bytes[seen.call_id.len()..]);
        self.put(Item::Sip {
            time: seen.time,
            src: seen.src,
            dst: seen.dst,
            transport: seen.transport,
            call_id_len: seen.call_id.len(),
            bytes,
        });
    }

    /// Whether RTCP is exported (`[hep] rtcp`).
    pub fn wants_rtcp(&self) -> bool {
        self.rtcp
    }

    /// A compound RTCP packet of the call `call_id`.
    pub fn rtcp(&self, meta: &RtcpMeta, call_id: &Arc<str>, packet: &[u8]) {
        if self.rtcp {
            let (time, src, dst) = (meta.time, meta.src, meta.dst);
            self.put(Item::Rtcp { time, src, dst, call_id: call_id.clone(), bytes: packet.to_vec() });
        }
    }

    /// A finished call (its quality reports are sent unless `[hep] reports = false`).
    pub fn call(&self, record: &CallRecord) {
        if self.reports && record.streams.iter().any(|s| s.kind == "audio") {
            self.put(Item::Report(Box::new(record.clone())));
        }
    }
}

/// The exporter thread.
#[derive(Debug)]
pub struct Exporter {
    feed: Feed,
    thread: JoinHandle<()>,
}

impl Exporter {
    /// Starts the exporter `config` describes (`None` when `[hep]` names no collector).
    /// Reads the password file; the collector's name is resolved by the thread.
    pub fn start(config: &Hep, mode: Backpressure, counters: Arc<HepCounters>) -> anyhow::Result<Option<Exporter>> {
        let Some(collector) = config.collector.clone() else { return Ok(None) };
        let key = match &config.password_file {
            Some(path) => {
                crate::targets::check_secret_file(path).context("hep.password_file")?;
                let text = std::fs::read(path)
                    .with_context(|| format!("cannot read the HEP password file {}", path.display()))?;
                let key = text.trim_ascii().to_vec();
                if key.is_empty() {
                    anyhow::bail!("the HEP password file {} is empty", path.display());
                }
                Some(key)
            }
            None => None,
        };
        let agent = Agent { id: config.node_id, key, name: config.node_name.clone() };
        let (tx, rx) = bounded(QUEUE);
        let feed = Feed { tx, mode, counters: counters.clone(), reports: config.reports, rtcp: config.rtcp };
        let thread = std::thread::Builder::new()
            .name("hep".into())
            .spawn(move || Link::new(collector, agent, counters).run(&rx))
            .context("cannot start the HEP exporter thread")?;
        tracing::info!(
            "exporting SIP, RTCP and quality reports as HEP to {}",
            config.collector.as_deref().unwrap_or("")
        );
        Ok(Some(Exporter { feed, thread }))
    }

    /// A feed for one producer.
    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }

    /// Sends what is queued and stops, once every other feed is dropped.
    pub fn finish(self) {
        drop(self.feed);
        if self.thread.join().is_err() {
            tracing::error!("the HEP exporter thread failed");
        }
    }
}

/// The exporter thread's state: the socket, the encoding buffer, the error log's pace.
struct Link {
    collector: String,
    agent: Agent,
    counters: Arc<HepCounters>,
    socket: Option<UdpSocket>,
    last_resolve: Option<Instant>,
    buf: Vec<u8>,
    errors_unlogged: u64,
    last_log: Option<Instant>,
}

impl Link {
    fn new(collector: String, agent: Agent, counters: Arc<HepCounters>) -> Link {
        Link {
            collector,
            agent,
            counters,
            socket: None,
            last_resolve: None,
            buf: Vec::with_capacity(4096),
            errors_unlogged: 0,
            last_log: None,
        }
    }

    fn run(mut self, rx: &Receiver<Item>) {
        for item in rx {
            match item {
                Item::Sip { time, src, dst, transport, call_id_len, bytes } => {
                    let (call_id, message) = bytes.split_at(call_id_len);
                    let ip_proto = match transport {
                        Transport::Udp => IPPROTO_UDP,
                        Transport::Tcp | Transport::Ws => IPPROTO_TCP,
                        Transport::Sctp => IPPROTO_SCTP,
                    };
                    let p = Packet {
                        src,
                        dst,
                        ip_proto,
                        time,
                        proto_type: PROTO_SIP,
                        correlation_id: call_id,
                        mos: None,
                        payload: message,
                    };
                    if self.send(&p) {
                        HepCounters::add(&self.counters.sent_sip, 1);
                    }
                }
                Item::Rtcp { time, src, dst, call_id, bytes } => {
                    // A compound without a sender or receiver report has nothing HOMER shows.
                    let Some(json) = rtcp::json(&bytes) else { continue };
                    let p = Packet {
                        src,
                        dst,
                        ip_proto: IPPROTO_UDP,
                        time,
                        proto_type: PROTO_RTCP,
                        correlation_id: call_id.as_bytes(),
                        mos: None,
                        payload: json.as_bytes(),
                    };
                    if self.send(&p) {
                        HepCounters::add(&self.counters.sent_rtcp, 1);
                    }
                }
                Item::Report(record) => {
                    for r in report::reports(&record) {
                        let p = Packet {
                            src: r.src,
                            dst: r.dst,
                            ip_proto: IPPROTO_UDP,
                            time: r.time,
                            proto_type: PROTO_QOS_REPORT,
                            correlation_id: record.call_id.as_bytes(),
                            mos: r.mos,
                            payload: r.json.as_bytes(),
                        };
                        if self.send(&p) {
                            HepCounters::add(&self.counters.sent_reports, 1);
                        }
                    }
                }
            }
        }
        if self.errors_unlogged > 0 {
            tracing::warn!("{} HEP packets could not be sent to {}", self.errors_unlogged, self.collector);
        }
    }

    /// Encodes and sends one packet; whether it went out.
    fn send(&mut self, p: &Packet<'_>) -> bool {
        if let Err(e) = encode::encode(&self.agent, p, &mut self.buf) {
            HepCounters::add(&self.counters.dropped_too_large, 1);
            tracing::warn!("not exported to HEP: {e}");
            return false;
        }
        let result = self.connect().and_then(|()| match &self.socket {
            Some(socket) => socket.send(&self.buf).map(drop),
            None => Err(std::io::Error::other("not connected")),
        });
        match result {
            Ok(()) => true,
            Err(e) => {
                HepCounters::add(&self.counters.dropped_send_error, 1);
                self.errors_unlogged += 1;
                if self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    tracing::warn!(
                        "cannot send HEP to {} ({} packets not sent since the last report): {e}",
                        self.collector,
                        self.errors_unlogged
                    );
                    self.errors_unlogged = 0;
                    self.last_log = Some(Instant::now());
                }
                false
            }
        }
    }

    /// Connects the socket to the collector, resolving its name when needed.
    fn connect(&mut self) -> std::io::Result<()> {
        if self.socket.is_none() {
            if self.last_resolve.is_some_and(|t| t.elapsed() < RESOLVE_EVERY) {
                return Err(std::io::Error::other("the collector's address is not resolved yet"));
            }
            self.last_resolve = Some(Instant::now());
            let addr = self
                .collector
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("the collector's name has no address"))?;
            let local: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
            let socket = UdpSocket::bind(local)?;
            socket.connect(addr)?;
            self.socket = Some(socket);
        }
        Ok(())
    }
}

/// Replaces the key of every `inline:` key parameter (RFC 4568 `a=crypto`) in a SIP message
/// with `*` of the same length (lengths and framing stay as they were): SRTP keys never leave
/// callvault in an export.
pub fn mask_sdes_keys(message: &mut [u8]) {
    const INLINE: &[u8] = b"inline:";
    let mut at = 0;
    while let Some(i) = message[at..].windows(INLINE.len()).position(|w| w == INLINE) {
        let start = at + i + INLINE.len();
        let len =
            message[start..].iter().take_while(|c| !matches!(c, b'|' | b' ' | b';' | b'\r' | b'\n' | b'\t')).count();
        message[start..start + len].fill(b'*');
        at = start + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> SipSeen<'static> {
        SipSeen {
            time: Timestamp(0),
            src: "10.0.0.1:5060".parse().unwrap(),
            dst: "10.0.0.2:5060".parse().unwrap(),
            transport: Transport::Udp,
            call_id: b"c",
            message: b"OPTIONS sip:x SIP/2.0\r\n\r\n",
        }
    }

    #[test]
    fn sdes_keys_are_masked_and_the_message_keeps_its_length() {
        let mut m =
            b"v=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n\
a=crypto:2 AEAD_AES_128_GCM inline:AAEC;inline:BBB KDR=0\r\n"
                .to_vec();
        let len = m.len();
        mask_sdes_keys(&mut m);
        assert_eq!(m.len(), len);
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("inline:****************************************|2^20|1:4\r\n"), "{text}");
        assert!(text.contains("inline:****;inline:*** KDR=0"), "{text}");
    }

    #[test]
    fn a_live_feed_drops_what_a_full_queue_cannot_take_and_counts_it() {
        let (tx, rx) = bounded(2);
        let counters = Arc::new(HepCounters::default());
        let feed = Feed { tx, mode: Backpressure::DropMedia, counters: counters.clone(), reports: true, rtcp: true };
        for _ in 0..5 {
            feed.sip(&seen());
        }
        assert_eq!((rx.len(), HepCounters::get(&counters.dropped_queue_full)), (2, 3));
        // Nobody listening any more (the exporter is gone): not a queue drop.
        drop(rx);
        feed.sip(&seen());
        assert_eq!(HepCounters::get(&counters.dropped_queue_full), 3);
    }

    #[test]
    fn the_password_file_must_be_private_and_not_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let config = |path: &std::path::Path| Hep {
            collector: Some("127.0.0.1:9".into()),
            password_file: Some(path.to_owned()),
            ..Hep::default()
        };
        std::fs::write(&path, "k\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let counters = Arc::new(HepCounters::default());
        let err = Exporter::start(&config(&path), Backpressure::Block, counters.clone()).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("hep.password_file") && text.contains("0644"), "{text}");
        std::fs::write(&path, " \n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Exporter::start(&config(&path), Backpressure::Block, counters.clone()).unwrap_err();
        assert!(format!("{err:#}").contains("is empty"), "{err:#}");
        std::fs::write(&path, "k\n").unwrap();
        Exporter::start(&config(&path), Backpressure::Block, counters).unwrap().unwrap().finish();
    }
}
