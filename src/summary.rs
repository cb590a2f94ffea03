//! The report printed when a replay or a live run ends.

use crate::out::outln;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use capture::source::KernelStats;
use capture::stats::CaptureStats;

use crate::pipeline::Outcome;

/// What happened to the inputs.
#[derive(Debug, Default)]
pub struct InputReport {
    /// Files named.
    pub files: usize,
    /// Files read to the end.
    pub files_read: usize,
    /// Errors (missing, corrupt, unsupported files; interface errors).
    pub errors: Vec<String>,
    /// `replay` was stopped by a signal before the end of its input: where, and by which.
    pub interrupted: Option<Interrupted>,
}

/// Where a signal stopped `replay`.
#[derive(Debug, Clone)]
pub struct Interrupted {
    /// The signal (SIGINT or SIGTERM).
    pub signal: i32,
    /// The capture file being read.
    pub file: PathBuf,
    /// Packets of that file read before the stop.
    pub packets: u64,
}

/// Everything the end-of-run report shows.
#[derive(Debug)]
pub struct Summary {
    /// `replay` or `run`.
    pub command: &'static str,
    /// Inputs.
    pub input: InputReport,
    /// Capture counters.
    pub capture: CaptureStats,
    /// Time spent reading and processing packets.
    pub capture_time: Duration,
    /// Total time including finishing and shipping.
    pub elapsed: Duration,
    /// Pipeline outcome.
    pub outcome: Outcome,
    /// Data directory.
    pub output: PathBuf,
    /// Archive targets as given (directories, s3:// URLs).
    pub archive: Vec<String>,
    /// What a live capture read, per interface.
    pub live: Option<LiveReport>,
}

/// What a live capture read.
#[derive(Debug, Clone, Default)]
pub struct LiveReport {
    /// Per interface: name, kernel counters when capture stopped, frames read.
    pub interfaces: Vec<(String, KernelStats, u64)>,
    /// Frames the shutdown drain read (captured before the stop, not yet read then).
    pub drained: u64,
    /// Frames the kernel had accepted but that could not be read before the drain's deadline.
    pub unread: u64,
    /// Frames of several interfaces handed on out of capture-time order
    /// (`LiveCapture::merged_late`).
    pub merged_late: u64,
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Summary {
    /// Prints the report on stdout.
    pub fn print(&self) {
        let c = &self.capture;
        let secs = self.capture_time.as_secs_f64().max(1e-9);
        let files = if self.command == "replay" {
            format!("{} of {} file(s), ", self.input.files_read, self.input.files)
        } else {
            String::new()
        };
        outln!(
            "callvault {}: {}{} packets in {:.2} s ({} packets/s)",
            self.command,
            files,
            thousands(c.frames),
            secs,
            thousands((c.frames as f64 / secs) as u64)
        );
        let i = &c.ingress;
        let tunnelled = i.tunnels_total();
        outln!(
            "  packets: {} SIP ({} over TCP), {} RTP, {} RTCP; {} malformed, {} truncated; {} datagrams from fragments, {} in tunnels; {} other",
            thousands(c.sip_messages),
            thousands(i.tcp.sip_messages),
            thousands(c.rtp_packets),
            thousands(c.rtcp_packets),
            thousands(c.malformed_total()),
            thousands(c.ingress.truncated),
            thousands(i.defrag.reassembled),
            thousands(tunnelled),
            thousands(c.ingress.not_ip + c.ingress.other_ip + c.udp_unmatched + c.media_not_rtp)
        );
        if c.media_before_sdp > 0 {
            outln!(
                "  {} media packets came before the SDP or the other party's first packet showed their address: kept until then, recorded",
                thousands(c.media_before_sdp)
            );
        }
        if c.media_hold_evicted > 0 {
            outln!(
                "  warning: {} packets that looked like media to no announced address were let go before 500 ms to \
                 make room ([limits] max_held_media): an SDP seen just after them could not claim them",
                thousands(c.media_hold_evicted)
            );
        }
        if let Some(w) = self.truncation_warning() {
            outln!("  warning: {w}");
        }
        let shed =
            i.defrag.shed_table_full + i.defrag.shed_bytes + i.tcp.connections_shed + i.tcp.buffer_full + c.calls_shed;
        if shed > 0 {
            outln!(
                "  warning: limits reached: {} calls, {} fragment reassemblies, {} TCP connections or buffers (see the counters)",
                thousands(c.calls_shed),
                thousands(i.defrag.shed_table_full + i.defrag.shed_bytes),
                thousands(i.tcp.connections_shed + i.tcp.buffer_full)
            );
        }
        if c.sip_bad_pause_header > 0 {
            outln!(
                "  warning: {} SIP requests carried the pause header with a value that neither pauses (pause, on, \
                 true, yes, 1) nor resumes (resume, off, false, no, 0): ignored",
                thousands(c.sip_bad_pause_header)
            );
        }
        if c.media_ambiguous > 0 {
            outln!(
                "  warning: {} media packets to addresses several calls use did not say which call they belong to: \
                 recorded in none (the records of the calls using those addresses name them)",
                thousands(c.media_ambiguous)
            );
        }
        if let Some(live) = &self.live {
            for (name, k, read) in &live.interfaces {
                outln!(
                    "  kernel ({name}): {} received, {} dropped by the capture buffer, {} by the interface; {} read",
                    thousands(k.received),
                    thousands(k.dropped),
                    thousands(k.if_dropped),
                    thousands(*read)
                );
            }
            outln!(
                "  shutdown: {} packets captured before the stop were read after it, {} could not be read in time",
                thousands(live.drained),
                thousands(live.unread)
            );
            if live.merged_late > 0 {
                outln!(
                    "  warning: {} packets came from their interface after packets captured later on another \
                     had been handed on (their block took longer than the {} ms merge hold), and were handled \
                     out of capture-time order",
                    thousands(live.merged_late),
                    capture::source::MERGE_HOLD.as_millis()
                );
            }
        }
        let states: Vec<String> = self.outcome.finish.states.iter().map(|(k, v)| format!("{k} {v}")).collect();
        outln!(
            "  calls: {} ({}){}",
            thousands(c.calls_started),
            if states.is_empty() { "none".into() } else { states.join(", ") },
            if c.calls_shed > 0 {
                format!(", {} not followed (call limit reached)", c.calls_shed)
            } else {
                String::new()
            }
        );
        let f = &self.outcome.finish;
        let s = &self.outcome.ship;
        outln!(
            "  recordings: {} written ({} with audio, {:.1} MB), {} shipped, {} queued{}",
            thousands(f.entered),
            thousands(f.with_audio),
            f.audio_bytes as f64 / 1e6,
            thousands(s.stats.shipped_recordings),
            thousands(s.left_queued.len() as u64),
            if f.failed > 0 {
                format!(", {} FAILED (files kept in the work directory)", f.failed)
            } else {
                String::new()
            }
        );
        if self.outcome.dropped_rtp > 0 {
            outln!(
                "  warning: {} RTP packets dropped because recording fell behind capture",
                thousands(self.outcome.dropped_rtp)
            );
        }
        if self.outcome.internal_error {
            outln!(
                "  error: a recording thread failed (see the log); recordings in progress are in the work directory"
            );
        }
        let m = &self.outcome.mixer;
        if m.late_packets + m.slips + m.encrypted_packets > 0 {
            outln!(
                "  audio: {} packets arrived too late to be placed, {} drift slips, {} encrypted packets not recorded \
                 (each record says which party and where)",
                thousands(m.late_packets),
                thousands(m.slips),
                thousands(m.encrypted_packets)
            );
        }
        if m.srtp_decrypted + m.srtp_auth_failures > 0 {
            outln!(
                "  srtp: {} packets decrypted with SDES keys, {} failed authentication and were not decoded \
                 (each record says which stream)",
                thousands(m.srtp_decrypted),
                thousands(m.srtp_auth_failures)
            );
        }
        if m.write_errors > 0 {
            outln!(
                "  warning: {} recordings are missing audio that could not be written (see the log)",
                m.write_errors
            );
        }
        let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        outln!("  local copies: {}", abs(&self.output.join("recordings")).display());
        for a in &self.archive {
            let shown = if a.starts_with("s3://") { a.clone() } else { abs(&PathBuf::from(a)).display().to_string() };
            outln!("  archive:      {shown}");
        }
        if let Some(age) = s.stats.oldest_unshipped_age_secs.filter(|_| !s.left_queued.is_empty()) {
            outln!("  oldest unshipped recording: {age} s old");
        }
        if s.stats.disk_pressure {
            outln!(
                "  warning: the disk is {}% full (above the high watermark); unshipped recordings are kept",
                s.stats.disk_used_percent.unwrap_or(100)
            );
        }
        if !f.keys.is_empty() && f.entered <= crate::pipeline::KEYS_KEPT as u64 {
            for k in &f.keys {
                outln!("    {k}");
            }
        }
        outln!("  elapsed: {:.2} s", self.elapsed.as_secs_f64());
        if let Some(i) = &self.input.interrupted {
            outln!(
                "  interrupted ({}) after {} packets of {}: the rest of the input was not read; the calls in progress \
                 were ended there (end_reason \"shutdown\"), recorded and shipped like the others",
                crate::stop::name(i.signal),
                thousands(i.packets),
                i.file.display()
            );
        }
        for e in &self.input.errors {
            outln!("  error: {e}");
        }
        if let Some(text) = diverted_error(&s.stats) {
            outln!("  error: {text}");
        }
        for e in &s.errors {
            outln!("  shipping error: {e}");
        }
    }

    /// Most packets were cut short by the capture's snapshot length: what that cost and what
    /// to do (`None` when it is not so).
    pub fn truncation_warning(&self) -> Option<String> {
        let c = &self.capture;
        if c.frames == 0 || c.ingress.truncated * 2 <= c.frames {
            return None;
        }
        let mut cost = Vec::new();
        if c.truncated_sip > 0 {
            cost.push(format!(
                "{} SIP messages cut at {} bytes: calls cannot be followed",
                thousands(c.truncated_sip),
                c.largest_frame
            ));
        }
        if c.truncated_rtp > 0 {
            cost.push(format!("{} RTP packets cut: their audio is incomplete", thousands(c.truncated_rtp)));
        }
        if cost.is_empty() {
            cost.push("calls and their media cannot be followed".into());
        }
        Some(format!(
            "{} of {} packets were cut short by the capture's snapshot length ({} bytes kept per packet): {}; \
             capture with a larger snapshot length (tcpdump -s 0)",
            thousands(c.ingress.truncated),
            thousands(c.frames),
            c.largest_frame,
            cost.join("; ")
        ))
    }

    /// 128 + the signal when a signal stopped `replay` before the end of its input (130 for
    /// SIGINT), else 0 when everything was read and shipped, 2 when an input failed, 3 when recordings are
    /// left queued or could not be written or the archive held damaged files, 4 when the input was incomplete (most packets cut
    /// short by the capture's snapshot length). A live run that stops on a signal is not failed
    /// by recordings left queued: they are safe in the spool and ship at the next start.
    pub fn exit_code(&self) -> ExitCode {
        let queued = !self.outcome.ship.left_queued.is_empty() && self.live.is_none();
        if let Some(i) = &self.input.interrupted {
            ExitCode::from(crate::stop::exit_status(i.signal))
        } else if !self.input.errors.is_empty() {
            ExitCode::from(2)
        } else if self.outcome.internal_error
            || queued
            || self.outcome.finish.failed > 0
            || self.outcome.mixer.write_errors > 0
            || self.outcome.ship.stats.diverted > 0
        {
            ExitCode::from(3)
        } else if self.truncation_warning().is_some() {
            ExitCode::from(4)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// The error line when shipping found archive files that differ from the recordings meant to be
/// under their names (damaged or replaced), naming them.
pub fn diverted_error(stats: &shipper::ShipStats) -> Option<String> {
    if stats.diverted == 0 {
        return None;
    }
    let more = stats.diverted.saturating_sub(stats.diverted_files.len() as u64);
    Some(format!(
        "{} recording(s) found a different file under their name in the archive (damaged or replaced): {}{}; each recording is kept under <key>~N beside it — run `callvault archive verify`",
        stats.diverted,
        stats.diverted_files.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    ))
}
