//! The standard `process_` metrics, read from `/proc/self` at each scrape, and the build
//! information.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The process collector: start time, CPU, memory, file descriptors.
#[derive(Debug)]
pub(crate) struct Process {
    /// Unix time the process started, in seconds.
    pub(crate) start_time: f64,
}

/// What `/proc/self` says.
#[derive(Debug, Default, PartialEq)]
struct ProcStat {
    cpu_seconds: f64,
    virtual_bytes: u64,
    resident_bytes: u64,
}

/// Parses `/proc/self/stat`: utime and stime (fields 14, 15) in clock ticks, vsize (23) in
/// bytes and rss (24) in pages. The command name (field 2) may hold spaces and parentheses:
/// the fields are counted after its last ')'.
fn parse_stat(text: &str, ticks_per_second: u64, page_size: u64) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = field(14)? + field(15)?;
    Some(ProcStat {
        cpu_seconds: ticks as f64 / ticks_per_second.max(1) as f64,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
    })
}

/// The soft limit of open files from `/proc/self/limits`.
fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, v: f64| -> std::fmt::Result {
            ConstGauge::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        let mut info = encoder.encode_descriptor(
            "callvault_build",
            "Build information: the version, always 1.",
            None,
            MetricType::Info,
        )?;
        info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch.",
            self.start_time,
        )?;
        let ticks = rustix::param::clock_ticks_per_second();
        let page = rustix::param::page_size() as u64;
        if let Some(st) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|t| parse_stat(&t, ticks, page)) {
            ConstCounter::new(st.cpu_seconds).encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds.",
                None,
                MetricType::Counter,
            )?)?;
            gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory size.", st.resident_bytes as f64)?;
            gauge(&mut encoder, "process_virtual_memory_bytes", "Virtual memory size.", st.virtual_bytes as f64)?;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            gauge(&mut encoder, "process_open_fds", "Open file descriptors.", dir.count() as f64)?;
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits").ok().and_then(|t| parse_max_fds(&t)) {
            gauge(&mut encoder, "process_max_fds", "Limit of open file descriptors.", max as f64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis; utime 250, stime 50 ticks at 100 Hz,
        // vsize 1,000,000 bytes, rss 300 pages of 4 KiB.
        let text = "1234 (call vault)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 \
                    777 1000000 300 18446744073709551615";
        let st = parse_stat(text, 100, 4096).unwrap();
        assert_eq!(st, ProcStat { cpu_seconds: 3.0, virtual_bytes: 1_000_000, resident_bytes: 300 * 4096 });
        assert_eq!(parse_stat("garbage", 100, 4096), None);
    }

    #[test]
    fn max_open_files_is_the_soft_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(text), Some(1024));
    }
}
