//! The floor of replay: libpcap reading a capture file and nothing else (`pcap_next_ex` in a
//! loop, each packet's length summed so the loop cannot be optimised away). What
//! `benches/end_to_end.sh` divides callvault's time by, measured in the same run on the same
//! page-cached file.
//!
//!   cargo run --release -p callvault-capture --example pcap_floor -- FILE
//!
//! Prints `packets seconds packets_per_second`.
#![allow(clippy::disallowed_methods)] // benchmarks time themselves (clippy.toml)

use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: pcap_floor FILE");
        std::process::exit(2);
    };
    let mut cap = match pcap::Capture::from_file(&path) {
        Ok(cap) => cap,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let (mut packets, mut bytes) = (0u64, 0u64);
    loop {
        match cap.next_packet() {
            Ok(p) => {
                packets += 1;
                bytes += p.data.len() as u64;
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                eprintln!("{path}: packet {}: {e}", packets + 1);
                std::process::exit(1);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    println!("{packets} {secs:.3} {:.0}", packets as f64 / secs);
}
