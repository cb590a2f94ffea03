//! The counters that already exist as stage snapshots (capture, mixers, shipper, disk),
//! exported at scrape time from the [`Board`]'s latest copy instead of being counted twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use capture::wire::Layer;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use shipper::LatencyHistogram;

use super::board::Board;

/// Encodes one metric family: a descriptor, then each labelled sample.
struct Family<'a, 'e> {
    encoder: &'a mut DescriptorEncoder<'e>,
}

impl<'e> Family<'_, 'e> {
    fn counter<L: EncodeLabelSet>(&mut self, name: &str, help: &str, samples: &[(L, u64)]) -> std::fmt::Result {
        let mut metric = self.encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, v) in samples {
            ConstCounter::new(*v).encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn gauge<L: EncodeLabelSet>(&mut self, name: &str, help: &str, samples: &[(L, f64)]) -> std::fmt::Result {
        let mut metric = self.encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in samples {
            ConstGauge::new(*v).encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn counter1(&mut self, name: &str, help: &str, v: u64) -> std::fmt::Result {
        self.counter::<[(&str, &str); 0]>(name, help, &[([], v)])
    }

    fn gauge1(&mut self, name: &str, help: &str, v: f64) -> std::fmt::Result {
        self.gauge::<[(&str, &str); 0]>(name, help, &[([], v)])
    }
}

/// Reads the board at each scrape.
#[derive(Debug)]
pub(crate) struct Snapshots {
    pub(crate) board: Arc<Board>,
    /// The data directory, whose filesystem the disk metrics describe.
    pub(crate) data_dir: PathBuf,
    /// `storage.high_watermark`, percent in use.
    pub(crate) high_watermark: u8,
}

impl Collector for Snapshots {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut f = Family { encoder: &mut encoder };
        self.capture(&mut f)?;
        self.mixer(&mut f)?;
        self.ship(&mut f)?;
        self.hep(&mut f)?;
        self.http(&mut f)?;
        self.disk(&mut f)
    }
}

impl Snapshots {
    fn capture(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let view = self.board.capture().unwrap_or_default();
        let c = &view.stats;
        let udp_sip = c.sip_messages.saturating_sub(c.ingress.tcp.sip_messages);
        let other = c.frames.saturating_sub(udp_sip + c.rtp_packets + c.rtcp_packets);
        f.counter(
            "callvault_capture_packets",
            "Packets by kind: SIP messages (UDP datagrams and messages framed out of TCP), RTP and RTCP \
             of calls, and other frames.",
            &[
                ([("kind", "sip")], c.sip_messages),
                ([("kind", "rtp")], c.rtp_packets),
                ([("kind", "rtcp")], c.rtcp_packets),
                ([("kind", "other")], other),
            ],
        )?;
        f.counter(
            "callvault_capture_bytes",
            "Bytes by kind: SIP messages, RTP and RTCP UDP payloads; \"frames\" is every captured byte.",
            &[
                ([("kind", "sip")], c.sip_bytes),
                ([("kind", "rtp")], c.rtp_bytes),
                ([("kind", "rtcp")], c.rtcp_bytes),
                ([("kind", "frames")], c.bytes),
            ],
        )?;
        f.counter1("callvault_capture_frames", "Frames handed to the capture engine.", c.frames)?;
        let malformed: Vec<_> = Layer::ALL.iter().map(|&l| ([("layer", l.name())], c.malformed(l))).collect();
        f.counter("callvault_capture_malformed", "Frames or messages that failed to parse, by layer.", &malformed)?;
        f.counter(
            "callvault_capture_truncated",
            "Packets cut short by the snapshot length: datagrams, SIP messages, RTP packets, TCP segments.",
            &[
                ([("kind", "datagram")], c.ingress.truncated),
                ([("kind", "sip")], c.truncated_sip),
                ([("kind", "rtp")], c.truncated_rtp),
                ([("kind", "tcp")], c.ingress.tcp_truncated),
            ],
        )?;
        f.counter(
            "callvault_capture_sip_ignored",
            "SIP messages not acted on, by reason: no Call-ID, not a call's dialog (REGISTER, OPTIONS, ...), \
             in-dialog requests of calls whose INVITE was not seen, messages no state of their call fits, and \
             requests whose pause header's value neither pauses nor resumes.",
            &[
                ([("reason", "without_call_id")], c.sip_without_call_id),
                ([("reason", "not_call")], c.sip_not_call),
                ([("reason", "unknown_dialog")], c.sip_unknown_dialog),
                ([("reason", "out_of_state")], c.sip_out_of_state),
                ([("reason", "bad_pause_header")], c.sip_bad_pause_header),
            ],
        )?;
        let d = &c.ingress.defrag;
        let t = &c.ingress.tcp;
        let (w, sc) = (&t.ws, &c.ingress.sctp);
        f.counter(
            "callvault_capture_sip_transport_messages",
            "SIP messages framed out of streams, by transport: TCP, WebSocket (RFC 7118), SCTP (RFC 4168).",
            &[
                ([("transport", "tcp")], t.sip_messages.saturating_sub(w.messages)),
                ([("transport", "ws")], w.messages),
                ([("transport", "sctp")], sc.sip_messages),
            ],
        )?;
        f.counter(
            "callvault_capture_websocket_anomalies",
            "SIP over WebSocket frames or handshakes that break RFC 6455, by kind (skipped, or the direction lost).",
            &[
                ([("kind", "bad_handshake")], w.bad_handshakes),
                ([("kind", "reserved_bits")], w.reserved_bits),
                ([("kind", "unknown_opcode")], w.unknown_opcode),
                ([("kind", "bad_control")], w.bad_control),
                ([("kind", "too_large")], w.too_large),
                ([("kind", "bad_length")], w.bad_length),
                ([("kind", "fragment_error")], w.fragment_errors),
                ([("kind", "direction_lost")], w.lost),
            ],
        )?;
        f.counter(
            "callvault_capture_sctp_anomalies",
            "SIP over SCTP problems, by kind: unreadable chunks, messages missing a fragment, too large, \
             shed by a cap, retransmitted chunks, wrong CRC32c (used anyway: checksum offload).",
            &[
                ([("kind", "malformed")], sc.malformed),
                ([("kind", "incomplete")], sc.incomplete),
                ([("kind", "too_large")], sc.too_large),
                ([("kind", "shed")], sc.shed),
                ([("kind", "retransmission")], sc.retransmissions),
                ([("kind", "checksum_mismatch")], sc.checksum_mismatch),
            ],
        )?;
        f.counter1(
            "callvault_capture_tls_handshakes",
            "TLS ClientHellos to SIP-over-TLS or wss:// ports (5061, 443, 7443, 8089, 10443): signalling that cannot be read.",
            t.tls_handshakes,
        )?;
        f.counter(
            "callvault_capture_shed",
            "Work shed because a limit ([limits]) was reached, by limit.",
            &[
                ([("limit", "max_calls")], c.calls_shed),
                ([("limit", "max_media_per_call")], c.media_retired),
                ([("limit", "max_media_flows_per_call")], c.media_flows_evicted),
                ([("limit", "max_sip_message")], c.sip_oversized),
                ([("limit", "max_frag_reassemblies")], d.shed_table_full),
                ([("limit", "max_frag_bytes")], d.shed_bytes),
                ([("limit", "frag_pieces")], d.too_many_pieces),
                ([("limit", "max_tcp_connections")], t.connections_shed),
                ([("limit", "max_tcp_buffer")], t.buffer_full),
                ([("limit", "max_tunnel_depth")], c.ingress.tunnel_too_deep),
                ([("limit", "max_held_media")], c.media_hold_evicted),
            ],
        )?;
        let per_iface = |pick: fn(&capture::source::KernelStats) -> u64| -> Vec<([(&str, String); 1], u64)> {
            view.interfaces.iter().map(|i| ([("interface", i.name.clone())], pick(&i.kernel))).collect()
        };
        let each_iface = |pick: fn(&crate::link::InterfaceView) -> f64| -> Vec<([(&str, String); 1], f64)> {
            view.interfaces.iter().map(|i| ([("interface", i.name.clone())], pick(i))).collect()
        };
        f.gauge(
            "callvault_capture_interface_up",
            "Whether the interface's link is up (1) or not (0: nothing on it can be recorded), per interface.",
            &each_iface(|i| if i.link.is_up() { 1.0 } else { 0.0 }),
        )?;
        f.gauge(
            "callvault_capture_interface_last_packet_timestamp_seconds",
            "When the interface last brought packets (Unix time, to the second; 0: none since the start), \
             per interface.",
            &each_iface(|i| {
                i.last_packet
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0.0, |d| d.as_secs() as f64)
            }),
        )?;
        f.counter(
            "callvault_capture_kernel_received_packets",
            "Packets the kernel accepted for capture, per interface.",
            &per_iface(|k| k.received),
        )?;
        f.counter(
            "callvault_capture_kernel_dropped_packets",
            "Packets the kernel dropped because the capture buffer was full, per interface.",
            &per_iface(|k| k.dropped),
        )?;
        f.counter(
            "callvault_capture_interface_dropped_packets",
            "Packets the interface or its driver dropped, per interface.",
            &per_iface(|k| k.if_dropped),
        )?;
        f.counter1(
            "callvault_capture_queue_dropped_rtp_packets",
            "RTP packets dropped because the mixers fell behind (live capture).",
            view.queue_dropped_rtp,
        )?;
        f.counter1(
            "callvault_capture_merged_late_packets",
            "Packets of several interfaces handed on out of capture-time order: their interface handed \
             them over later than the merge holds packets (a machine too busy to read in time).",
            view.merged_late,
        )?;
        f.counter1(
            "callvault_capture_media_before_sdp_packets",
            "Media packets captured before the SDP (or the other party's first packet, symmetric RTP) \
             showed their address: kept until then (500 ms at most), then recorded.",
            c.media_before_sdp,
        )?;
        f.gauge1("callvault_calls_active", "Calls being followed now.", view.open_calls as f64)?;
        f.counter1("callvault_calls_started", "Calls started (INVITEs that began a call).", c.calls_started)?;
        Ok(())
    }

    fn mixer(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let m = self.board.mixers();
        f.counter1(
            "callvault_audio_reserve_hits",
            "Calls whose audio was not started or was stopped because less than storage.min_free_mb was free.",
            m.reserve_hits,
        )?;
        f.counter1(
            "callvault_recording_write_errors",
            "Calls whose audio could not be written in full (disk full, I/O error).",
            m.write_errors,
        )?;
        f.counter(
            "callvault_mixer_packets",
            "RTP packets at the mixers by outcome: mixed into the timeline or not.",
            &[
                ([("outcome", "received")], m.rtp_packets),
                ([("outcome", "duplicate")], m.duplicates),
                ([("outcome", "late")], m.late_packets),
                ([("outcome", "encrypted")], m.encrypted_packets),
                ([("outcome", "undecodable")], m.undecodable_packets),
                ([("outcome", "signal")], m.signal_packets),
            ],
        )?;
        f.counter(
            "callvault_mixer_srtp_packets",
            "SRTP and SRTCP packets of parties keyed by SDES: decrypted, or failed authentication (not decoded).",
            &[
                ([("kind", "rtp"), ("outcome", "decrypted")], m.srtp_decrypted),
                ([("kind", "rtp"), ("outcome", "auth_failed")], m.srtp_auth_failures),
                ([("kind", "rtcp"), ("outcome", "decrypted")], m.srtcp_decrypted),
                ([("kind", "rtcp"), ("outcome", "auth_failed")], m.srtcp_auth_failures),
            ],
        )?;
        f.counter1(
            "callvault_mixer_slips",
            "Silence insertions that kept the parties aligned (clock drift).",
            m.slips,
        )?;
        f.gauge1(
            "callvault_audio_files_open",
            "Audio files of calls in progress open now (at most the limit; the rest open per write).",
            mixer::mix::openfiles::open_now() as f64,
        )?;
        f.counter1(
            "callvault_audio_file_reopens",
            "Times an audio file closed between writes (more calls than the open-files limit) was opened again.",
            mixer::mix::openfiles::reopened(),
        )?;
        f.counter1(
            "callvault_audio_writebacks",
            "Times the writeback of a growing audio file was started before the call's end.",
            mixer::mix::openfiles::writebacks(),
        )?;
        let g = self.board.finish_gauges();
        f.gauge1(
            "callvault_finish_queue_recordings",
            "Ended calls whose recording waits for a finisher (fsync, hash, call record, spool).",
            g.waiting.load(Ordering::Relaxed) as f64,
        )?;
        f.gauge(
            "callvault_finishers_busy",
            "Finishers at work: the regular ones, and the reserve, called in while 1,024 recordings or more wait.",
            &[
                ([("role", "regular")], g.busy[0].load(Ordering::Relaxed) as f64),
                ([("role", "reserve")], g.busy[1].load(Ordering::Relaxed) as f64),
            ],
        )
    }

    fn ship(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let s = self.board.ship().unwrap_or_default();
        f.gauge1(
            "callvault_spool_queued_entries",
            "Recordings in the spool's queue (owed to any target).",
            s.queued as f64,
        )?;
        f.gauge1(
            "callvault_spool_oldest_unshipped_age_seconds",
            "Age of the oldest queued recording (0 when the queue is empty).",
            s.oldest_unshipped_age_secs.unwrap_or(0) as f64,
        )?;
        f.counter1(
            "callvault_spool_completed_recordings",
            "Recordings every target confirmed, removed from the queue.",
            s.shipped_recordings,
        )?;
        f.counter1(
            "callvault_spool_retention_deleted_files",
            "Local files deleted by the retention policy.",
            s.retention_deleted_files,
        )?;
        type Label = [(&'static str, String); 1];
        let per_target = |pick: &dyn Fn(&shipper::TargetStats) -> u64| -> Vec<(Label, u64)> {
            s.targets.iter().map(|(name, t)| ([("target", name.clone())], pick(t))).collect()
        };
        let as_f64 = |v: Vec<(Label, u64)>| v.into_iter().map(|(l, v)| (l, v as f64)).collect::<Vec<_>>();
        f.gauge(
            "callvault_ship_queued_recordings",
            "Queued recordings a target has not confirmed yet.",
            &as_f64(per_target(&|t| t.queued)),
        )?;
        f.gauge(
            "callvault_ship_queued_bytes",
            "Size of the queued recordings a target has not confirmed yet.",
            &as_f64(per_target(&|t| t.queued_bytes)),
        )?;
        let now = std::time::SystemTime::now();
        let ages: Vec<(Label, f64)> = s
            .targets
            .iter()
            .map(|(name, t)| {
                let age = t.oldest_unshipped.map_or(0, |o| now.duration_since(o).unwrap_or_default().as_secs());
                ([("target", name.clone())], age as f64)
            })
            .collect();
        f.gauge(
            "callvault_ship_oldest_unshipped_age_seconds",
            "Age of the oldest recording a target has not confirmed (0 when none).",
            &ages,
        )?;
        f.counter(
            "callvault_ship_shipped_recordings",
            "Recordings a target confirmed (stored and verified, or found already there).",
            &per_target(&|t| t.shipped_recordings),
        )?;
        f.counter("callvault_ship_shipped_bytes", "Bytes written to a target.", &per_target(&|t| t.shipped_bytes))?;
        f.counter(
            "callvault_ship_diverted_recordings",
            "Recordings stored under <key>~N because the archive held other content under their key (a damaged or replaced file).",
            &per_target(&|t| t.diverted),
        )?;
        let by_kind = |pick: &dyn Fn(&shipper::TargetStats) -> &std::collections::BTreeMap<&'static str, u64>| {
            s.targets
                .iter()
                .flat_map(|(name, t)| {
                    pick(t).iter().map(move |(kind, n)| ([("target", name.clone()), ("kind", (*kind).to_owned())], *n))
                })
                .collect::<Vec<_>>()
        };
        f.counter(
            "callvault_ship_retries",
            "Shipping failures that will be retried, by target and kind.",
            &by_kind(&|t| &t.retries),
        )?;
        f.counter(
            "callvault_ship_permanent_errors",
            "Shipping failures that stopped a target until a restart or reload, by target and kind.",
            &by_kind(&|t| &t.permanent_errors),
        )?;
        let mut metric = f.encoder.encode_descriptor(
            "callvault_ship_upload_seconds",
            "Time from the start of a shipment to a target to its confirmation in the spool.",
            None,
            MetricType::Histogram,
        )?;
        for (name, t) in &s.targets {
            let labels = [("target", name.as_str())];
            encode_latency(&t.latency, &mut metric.encode_family(&labels)?)?;
        }
        f.gauge1(
            "callvault_disk_above_high_watermark",
            "1 while the data directory's filesystem is above storage.high_watermark (checked every 30 s).",
            if s.disk_pressure { 1.0 } else { 0.0 },
        )
    }

    /// The HTTP listeners' counters (`run`).
    fn http(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let Some(h) = self.board.http() else { return Ok(()) };
        let get = crate::http::HttpCounters::get;
        f.counter1(
            "callvault_http_auth_failures",
            "Requests to the API or metrics listeners refused for wrong credentials (a wrong password, \
             an unknown user or token).",
            get(&h.auth_failures),
        )?;
        f.counter1(
            "callvault_api_downloads",
            "Audio and pcap downloads served by the API, each written to the audit log first.",
            get(&h.downloads),
        )?;
        f.counter1(
            "callvault_api_audit_errors",
            "Downloads refused because the audit log could not be written.",
            get(&h.audit_errors),
        )
    }

    /// The HEP exporter's counters, when `[hep]` is on.
    fn hep(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        let Some(h) = self.board.hep() else { return Ok(()) };
        let get = crate::hep::HepCounters::get;
        f.counter(
            "callvault_hep_sent",
            "HEP packets sent to the collector: SIP messages, RTCP and per-stream quality reports.",
            &[
                ([("kind", "sip")], get(&h.sent_sip)),
                ([("kind", "rtcp")], get(&h.sent_rtcp)),
                ([("kind", "report")], get(&h.sent_reports)),
            ],
        )?;
        f.counter(
            "callvault_hep_dropped",
            "HEP packets not sent: the exporter's queue was full (live capture), the send failed \
             (collector unreachable, name not resolved), or the message was too long for a HEP packet.",
            &[
                ([("reason", "queue_full")], get(&h.dropped_queue_full)),
                ([("reason", "send_error")], get(&h.dropped_send_error)),
                ([("reason", "too_large")], get(&h.dropped_too_large)),
            ],
        )
    }

    fn disk(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
        f.gauge1(
            "callvault_disk_high_watermark_ratio",
            "storage.high_watermark as a ratio of the filesystem in use.",
            f64::from(self.high_watermark) / 100.0,
        )?;
        // Read at the scrape: free space changes between the shipper's checks.
        let Ok(st) = rustix::fs::statvfs(&self.data_dir) else {
            return Ok(());
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let size = st.f_blocks.saturating_mul(st.f_frsize);
        let used = st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(st.f_frsize);
        f.gauge1(
            "callvault_disk_free_bytes",
            "Bytes free for callvault on the data directory's filesystem.",
            free as f64,
        )?;
        f.gauge1("callvault_disk_size_bytes", "Size of the data directory's filesystem.", size as f64)?;
        // As df computes it: used / (used + available).
        let ratio = if used + free == 0 { 0.0 } else { free as f64 / (used + free) as f64 };
        f.gauge1(
            "callvault_disk_free_ratio",
            "Share of the data directory's filesystem free for callvault (1 - df's use%).",
            ratio,
        )
    }
}

fn encode_latency(
    h: &LatencyHistogram,
    metric: &mut prometheus_client::encoding::MetricEncoder<'_>,
) -> std::fmt::Result {
    let mut buckets: Vec<(f64, u64)> = LatencyHistogram::BOUNDS.iter().copied().zip(h.counts.iter().copied()).collect();
    buckets.push((f64::INFINITY, h.counts[LatencyHistogram::BOUNDS.len()]));
    metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum_micros as f64 / 1e6,
        h.count(),
        &buckets,
        None,
    )
}
