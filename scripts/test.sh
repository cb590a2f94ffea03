#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit, property, end-to-end (generated and
# real captures), live capture on a veth pair, shipping. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
# A target directory outside the clone survives fresh clones (CI) and keeps builds incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/callvault-target}"
# Tests do not read a configuration installed on this machine (/etc/callvault/callvault.toml):
# an empty file means the built-in defaults.
export CALLVAULT_CONFIG=/dev/null
# The Debian package test finds cargo-deb where scripts/deps.sh installed it.
export CALLVAULT_CARGO_DEB="${CALLVAULT_TOOLS:-/var/tmp/callvault-tools}/bin/cargo-deb"
# Tests that cannot run a part (missing tool, no privileges) say so here; listed at the end.
export CALLVAULT_SKIP_LOG="${TMPDIR:-/tmp}/callvault-skipped.$$"
: > "$CALLVAULT_SKIP_LOG"
# A real S3-compatible server on loopback for the shipper's tests, with its own state for this
# run; stopped (and its state removed) on exit. If it cannot start, its tests say they skipped.
export CALLVAULT_S3_STATE="${TMPDIR:-/tmp}/callvault-s3.$$"
cleanup() {
    scripts/s3-server.sh stop || true
    rm -rf "$CALLVAULT_S3_STATE"
    rm -f "$CALLVAULT_SKIP_LOG"
}
trap cleanup EXIT
if scripts/s3-server.sh start; then
    eval "$(scripts/s3-server.sh env)"
else
    echo "== the S3 test server did not start; its tests will be skipped" >&2
fi
# The shared corpus of real captures is read in place: beside the repository, or where
# CALLVAULT_CORPUS points (a clone elsewhere, e.g. in CI, finds the workspace's copy).
if [ -z "${CALLVAULT_CORPUS:-}" ]; then
    for d in ../shared/corpus /work/shared/corpus; do
        if [ -f "$d/expected.json" ]; then export CALLVAULT_CORPUS="$(cd "$d" && pwd)"; break; fi
    done
fi
echo "== cargo fmt" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --features crash-points --quiet -- -D warnings
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
echo "== cargo check with Rust $msrv (the workspace's rust-version)" >&2
cargo "+$msrv" check --workspace --all-targets --quiet
echo "== cargo test" >&2
# With the crash points (CALLVAULT_CRASH_AT) that tests/crash_points.rs kills the binary at;
# release builds leave them out.
cargo test --workspace --features crash-points
echo "== benchmarks, each run once (criterion's test mode)" >&2
# Not timed here (speed is measured by `cargo bench`): this only keeps every benchmark working.
CALLVAULT_BENCH_CALLS=20 CALLVAULT_BENCH_TALK=5 cargo test --workspace --features crash-points --benches --quiet
echo "== fuzz smoke" >&2
scripts/fuzz-smoke.sh
if [ -s "$CALLVAULT_SKIP_LOG" ]; then
    echo "== skipped parts:" >&2
    sort -u "$CALLVAULT_SKIP_LOG" >&2
fi
echo "== all tests passed" >&2
