#!/usr/bin/env bash
# Two builds of callvault, side by side: alternating replays of the same generated capture
# (A B, B A, A B, ...: each build first in half the pairs, as the second run of a pair was
# measured faster, 0.47 s of 3.6 at 1,000 calls x 60 s without steady memory), each run's
# wall and CPU by kind of thread, then the means and in how many pairs B's mixers needed less
# time than A's. A change's effect on one stage is a few per cent,
# and this machine's runs drift by ±10 % within the hour: alternating pairs see through the
# drift where single runs before and after cannot.
#
#   benches/compare.sh BIN_A BIN_B [CALLS] [PAIRS]      (default: 1000 calls, 6 pairs)
#
# BIN_A and BIN_B are `callvault` binaries (e.g. `cargo build --release` at two commits, each
# copied aside). The capture is the one `benches/end_to_end.sh` generates and keeps
# (CALLVAULT_BENCH_DIR, CALLVAULT_BENCH_TALK as there; run that script once first to make it).
# Memory is put in steady use before each run, as with CALLVAULT_BENCH_STEADY=1 there: a run
# then does not pay the host's first touch of fresh pages, which varies the most.
#
# Columns: wall_s; cpu_s (user + system, whole process); capture_s (the capture thread's CPU);
# mixers_user_s and mixers_sys_s; finish_s (the finishers' CPU); ratio (the mixers' user time
# per unit of the capture thread's CPU: the mixers' work per packet, steadier than either
# alone when the host slows both); steal_s (CPU time the host took from this machine's cores);
# others_s (CPU time the machine spent outside the recorder's process meanwhile: the kernel's
# page reclaim and writeback threads, and anything else; see benches/end_to_end.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/replay_run.sh
[ $# -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") calls="${3:-1000}" pairs="${4:-6}"
talk="${CALLVAULT_BENCH_TALK:-60}"
dir="${CALLVAULT_BENCH_DIR:-/var/tmp/callvault-bench}"
pcap="$dir/calls-$calls-$talk.pcap"
[ -s "$pcap" ] || { echo "no $pcap: run benches/end_to_end.sh $calls first" >&2; exit 2; }
[ -s "$dir/signing.key" ] || { echo "no $dir/signing.key: run benches/end_to_end.sh first" >&2; exit 2; }
ulimit -Hn 65536 2>/dev/null && ulimit -n 65536 || true
fill="$dir/steady.fill"
runs=()
trap 'remove_runs "$dir" "${runs[@]}"; rm -f "$fill"' EXIT
await_removals "$dir"
results=$(mktemp)
runs+=("$results")

# run LABEL BIN PAIR: one replay; appends a row to $results and prints it.
run() {
    local label=$1 bin=$2 pair=$3 run status steal busy wall user sys rss
    fill_memory "$fill"
    cat "$pcap" > /dev/null
    run=$(mktemp -d "$dir/run.XXXXXX")
    runs+=("$run")
    timed_replay "$bin" "$run" "$pcap" "$dir/signing.key" 1
    status=$REPLAY_STATUS steal=$REPLAY_STEAL busy=$REPLAY_BUSY
    [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || { cat "$run/summary" "$run/log" >&2; exit 1; }
    local recorded
    recorded=$(sed -n 's/.*recordings: \([0-9,]*\) written.*/\1/p' "$run/summary" | tr -d ,)
    [ "$recorded" = "$calls" ] || { echo "$label: $recorded of $calls calls recorded" >&2; cat "$run/summary" >&2; exit 1; }
    read -r wall user sys rss < "$run/time"
    # The capture thread carries the binary's name (its first 15 characters, and as
    # benches/threads.py groups threads, without a trailing number: `cv2` is `cv`).
    awk -v l="$label" -v p="$pair" -v w="$wall" -v u="$user" -v s="$sys" -v st="$steal" -v bz="$busy" -v cn="$(basename "$bin" | cut -c1-15 | sed -E 's/[-_]?[0-9]+$//')" '
        $1 == cn {cap = $5 + $8}
        $1 == "mixer" {mu = $5; ms = $8}
        $1 == "finish" {fin = $5 + $8}
        END {printf "%-3s %8.2f %8.2f %10.2f %14.2f %13.2f %9.2f %7.3f %8s %9.2f %4d\n", l, w, u + s, cap, mu, ms, fin, (cap > 0 ? mu / cap : 0), st, bz - u - s, p}
    ' "$run/threads" | tee -a "$results"
    # Emptied, not deleted, until the end (see benches/end_to_end.sh: recently deleted inodes).
    find "$run" -type f -exec truncate -s 0 {} +
}

printf '%-3s %8s %8s %10s %14s %13s %9s %7s %8s %9s %4s\n' run wall_s cpu_s capture_s mixers_user_s mixers_sys_s finish_s ratio steal_s others_s pair
for i in $(seq "$pairs"); do
    if [ $((i % 2)) -eq 1 ]; then
        run A "$a" "$i"
        run B "$b" "$i"
    else
        run B "$b" "$i"
        run A "$a" "$i"
    fi
done
awk '
    {n[$1]++; wall[$1] += $2; cpu[$1] += $3; mu[$1] += $5; ratio[$1] += $8; others[$1] += $10; r[$1, $11] = $8; p[$11] = 1}
    END {
        for (k in n) printf "%s mean: wall %.2f s, cpu %.2f s, others %.2f s, mixers user %.2f s, ratio %.3f (%d runs)\n", k, wall[k] / n[k], cpu[k] / n[k], others[k] / n[k], mu[k] / n[k], ratio[k] / n[k], n[k]
        for (i in p) {pairs++; if (r["B", i] < r["A", i]) lower++; else if (r["B", i] > r["A", i]) higher++}
        printf "B ratio lower than A in %d of %d pairs, higher in %d\n", lower, pairs, higher
    }' "$results" | sort
