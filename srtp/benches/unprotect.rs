//! Cost of verifying and decrypting SRTP per suite: one 20 ms G.711 packet (160 bytes of
//! payload), the way the mixer does it (rollover estimate, tag check, decryption into a reused
//! buffer). `cargo bench -p callvault-srtp`; one second of one party's audio is 50 packets.

use callvault_srtp as srtp;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn srtp_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_unprotect_20ms_g711");
    group.throughput(Throughput::Elements(1));
    for suite in srtp::Suite::ALL {
        let master = srtp::MasterKey::new(&vec![0x3c; suite.master_len()]).unwrap();
        let ctx = srtp::Context::new(suite, &master, 0).unwrap();
        let mut plain = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78];
        plain.extend((0..160u8).map(|i| i.wrapping_mul(7)));
        let mut wire = Vec::new();
        ctx.protect_rtp(&plain, 0, &mut wire).unwrap();
        let mut out = vec![0u8; 2048];
        group.bench_function(suite.name(), |b| {
            b.iter(|| {
                // A fresh stream each time: the same packet is its first, so it always authenticates.
                let mut roc = srtp::Rollover::new();
                ctx.unprotect_rtp(std::hint::black_box(&wire), &mut roc, &mut out).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, srtp_bench);
criterion_main!(benches);
