#!/usr/bin/env bash
# Fuzz smoke: every cargo-fuzz target (fuzz/fuzz_targets/) first runs each input of its committed
# seed corpus (fuzz/seeds/<target>/), then fuzzes from there for a short while
# (CALLVAULT_FUZZ_SECONDS, default 10 per target). A crash or a failed assertion fails the run;
# libFuzzer's reproducer is left in fuzz/artifacts/<target>/. New inputs go to a temporary
# directory, never into the seeds. Longer runs: see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${CALLVAULT_FUZZ_SECONDS:-10}"
tools="${CALLVAULT_TOOLS:-/var/tmp/callvault-tools}"
export PATH="$tools/bin:$PATH"
# Fuzz builds use their own flags (coverage instrumentation): a target directory of their own
# keeps the workspace's builds from being invalidated.
export CARGO_TARGET_DIR="${CALLVAULT_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-/var/tmp/callvault-target}-fuzz}"
# The capture crate forbids unsafe code, so no sanitizer is needed to find memory errors: the
# smoke looks for panics, overflows (debug assertions are on) and broken caps.
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build --sanitizer none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in $(cargo fuzz list); do
    seeds="seeds/$t"
    [ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ] || { echo "fuzz target $t has no seed corpus in fuzz/$seeds" >&2; exit 1; }
    mkdir -p "$scratch/$t"
    echo "== fuzz $t: $(ls "$seeds" | wc -l) seeds, then ${secs} s" >&2
    cargo fuzz run --sanitizer none "$t" "$scratch/$t" "$seeds" -- \
        -max_total_time="$secs" -print_final_stats=0 2> "$scratch/$t.log" || {
        tail -40 "$scratch/$t.log" >&2
        echo "fuzz target $t failed (reproducer in fuzz/artifacts/$t/)" >&2
        exit 1
    }
    grep -E "^Done [0-9]+ runs" "$scratch/$t.log" | tail -1 >&2 || true
done
