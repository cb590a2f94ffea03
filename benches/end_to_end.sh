#!/usr/bin/env bash
# End to end, the way a user runs it: the release binary replays a generated capture of N
# concurrent G.711 calls of 60 s each (callgen; read from the page cache) into recordings (WAV +
# JSON call record), a spool and a local archive directory (copied or linked, and verified),
# and prints per size: packets, wall and CPU seconds, packets/s, peak RSS, bytes written.
#
#   benches/end_to_end.sh [CALLS...]          (default: 300 1000 5000)
#
# Environment: CALLVAULT_BENCH_DIR (default /var/tmp/callvault-bench: the captures are kept there
# between runs; each run writes into a fresh directory under it, removed afterwards, on the same
# filesystem as a production spool would be), CALLVAULT_BENCH_TALK (60 s), CALLVAULT_BENCH_ARGS
# (extra options for `callvault replay`, e.g. "--archive-copy" to copy into the archive instead
# of linking from the spool), CALLVAULT_BENCH_THREADS (set: after each size, the CPU time of
# each kind of thread: capture, mixers, finishers, writeback, shipper, and when each was last
# seen: the finishers' end after the mixers' is the finishing left once the capture is read;
# benches/threads.py),
# CALLVAULT_BENCH_RUNS (1: runs per size, one row each; this machine's runs vary by +-10 %, so
# compare ranges, not single runs). The `cached_%` column is how much of the capture was in the
# page cache when the run started (fincore): below 100 the run also read the disk. `floor_s` is
# the floor measured just before each run on the same cached file: libpcap reading it and
# nothing else (capture/examples/pcap_floor.rs); `x_floor` is callvault's wall time over it, a
# ratio that holds from one day's machine to the next better than packets/s does. Runs are
# deleted when the script ends (see the comment at the end of the loop); on ext4 without a
# journal the next invocation first waits until that is 5 minutes past (remove_runs in
# benches/replay_run.sh). `free_GiB` is the memory free when the run started: the run's
# audio takes that many fresh pages before the kernel reclaims any cache, and on a virtual
# machine a page the guest has not touched lately may cost a fault in the host on its first
# write (at 20,000 x 10 s here: 15 of 79 CPU seconds, in copy_folio_from_iter_atomic). This
# project's machines hand free memory back to their host (the balloon device's free page
# reporting, /sys/module/page_reporting: blocks of 2 MiB free for a few seconds), so a page
# the run takes from free memory costs that fault.
# `others_s` is the CPU time the machine's cores spent outside the recorder's process while it
# ran (/proc/stat: every core's user, system and interrupt time, less the recorder's own): the
# kernel's threads working for it (page reclaim by kswapd, the flushers' writeback, block I/O
# completions), which its own CPU time does not show, and whatever else ran; a change that
# moves work out of the process into the kernel's threads shows there.
# `steal_s` is the CPU time the virtual machine's host took from this machine's cores while
# the run went on (all cores, /proc/stat): above a few tenths of a second the host was busy and
# the run's wall time says more about the host than about the recorder.
# `wr_io/c`, `flush/c` and `discard/c` are the write, cache flush and discard requests the
# spool's disk completed during the run, per call recorded (/sys/class/block/DEV/stat; with
# whatever else used that disk meanwhile; `-` where the directory is on no block device): what
# a recording costs the disk besides its bytes, for sizing it. The fsyncs that make each
# recording durable (audio, call record, spool entry, and their directories) are most of them,
# and how many requests an fsync takes is the filesystem's doing (on ext4 without a journal,
# mounted with `discard`, a removed file's blocks are also discarded as it is removed).
# CALLVAULT_BENCH_STEADY=1 fills all but 2 GiB of free memory with clean page cache before each
# run (a sparse file read once, deleted at the end), as a recorder that has run for a while
# finds its memory: new audio then takes pages the kernel reclaims.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/replay_run.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/callvault-target}"
[ $# -gt 0 ] || set -- 300 1000 5000
talk="${CALLVAULT_BENCH_TALK:-60}"
dir="${CALLVAULT_BENCH_DIR:-/var/tmp/callvault-bench}"
mkdir -p "$dir"
# Each run in a block group of its own (ext2/3/4's Orlov placement for the tops of directory
# trees): on ext4 without a journal, creating a file scans the free inodes its group freed
# recently, and a run placed where the last one was just deleted (tens of thousands of files)
# spent a fifth of its CPU on that scan (5,000 calls x 10 s), which no recorder on a spool of
# its own meets.
chattr +T "$dir" 2>/dev/null || true
cargo build --release --quiet -p callvault -p callvault-callgen
cargo build --release --quiet -p callvault-capture --example pcap_floor
bin="$CARGO_TARGET_DIR/release"
# One open audio file per call in progress: as root, allow more than the largest size needs
# (the Debian package's unit sets LimitNOFILE=65536).
ulimit -Hn 65536 2>/dev/null && ulimit -n 65536 || true
# Manifests signed, as an installed recorder signs them.
[ -s "$dir/signing.key" ] || CALLVAULT_CONFIG=/dev/null "$bin/callvault" config new-signing-key "$dir/signing.key" > /dev/null
runs="${CALLVAULT_BENCH_RUNS:-1}"
sizes=()
for calls in "$@"; do for _ in $(seq "$runs"); do sizes+=("$calls"); done; done
left=${#sizes[@]}
done_runs=()
fill="$dir/steady.fill"
trap 'remove_runs "$dir" "${done_runs[@]}"; rm -f "$fill"' EXIT
await_removals "$dir"
printf '%-7s %10s %8s %8s %8s %9s %12s %10s %10s %8s %8s %8s %8s %8s %8s %8s %8s\n' calls packets wall_s cpu_s sys_s others_s packets/s rss_MiB written_MB cached_% floor_s x_floor free_GiB steal_s wr_io/c flush/c discard/c
for calls in "${sizes[@]}"; do
    left=$((left - 1))
    pcap="$dir/calls-$calls-$talk.pcap"
    [ -s "$pcap" ] || "$bin/callgen" --calls "$calls" --concurrency "$calls" --talk "$talk" --out "$pcap" >&2
    [ -z "${CALLVAULT_BENCH_STEADY:-}" ] || fill_memory "$fill"
    cat "$pcap" > /dev/null # into the page cache, as the table's runs were
    free_gib=$(awk '/^MemFree:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
    cached=$(fincore --bytes --noheadings --output RES,SIZE "$pcap" 2>/dev/null | awk '$2 > 0 {printf "%.0f", $1 * 100 / $2}')
    floor=$("$bin/examples/pcap_floor" "$pcap" | awk '{print $2}')
    run=$(mktemp -d "$dir/run.XXXXXX")
    # Where the CPU goes, with CALLVAULT_BENCH_THREADS: each thread's time until the run ends.
    threads=0
    [ -z "${CALLVAULT_BENCH_THREADS:-}" ] || threads=1
    # shellcheck disable=SC2086 # CALLVAULT_BENCH_ARGS is a list of options
    timed_replay "$bin/callvault" "$run" "$pcap" "$dir/signing.key" "$threads" ${CALLVAULT_BENCH_ARGS:-}
    status=$REPLAY_STATUS steal=$REPLAY_STEAL busy=$REPLAY_BUSY
    read -r disk_writes disk_flushes disk_discards <<< "$REPLAY_DISK"
    # Exit status 3: recorded, with a problem the summary names (e.g. audio that could not be
    # written for want of file descriptors); the numbers still stand, with that warning.
    [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || { cat "$run/summary" "$run/log" >&2; exit 1; }
    grep -h "warning:" "$run/summary" >&2 || true
    read -r wall user sys rss < "$run/time"
    packets=$(sed -n 's/.* file(s), \([0-9,]*\) packets in.*/\1/p' "$run/summary" | tr -d ,)
    recorded=$(sed -n 's/.*recordings: \([0-9,]*\) written.*/\1/p' "$run/summary" | tr -d ,)
    shipped=$(sed -n 's/.* \([0-9,]*\) shipped.*/\1/p' "$run/summary" | tr -d ,)
    [ "$recorded" = "$calls" ] && [ "$shipped" = "$calls" ] || {
        echo "$calls calls: $recorded recorded, $shipped shipped" >&2
        cat "$run/summary" >&2
        exit 1
    }
    # Bytes the run wrote: the spool's files and the archive's, counted once per inode.
    written=$(find "$run/data" "$run/archive" -type f -printf '%i %s\n' | sort -u | awk '{s += $2} END {printf "%.0f", s / 1e6}')
    awk -v c="$calls" -v p="$packets" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v b="$written" -v k="${cached:--}" -v f="$floor" -v m="$free_gib" -v st="$steal" -v bz="$busy" \
        -v dw="$disk_writes" -v df="$disk_flushes" -v dd="$disk_discards" \
        'function per(n) {return n == "-" ? "-" : sprintf("%.1f", n / c)}
        BEGIN {printf "%-7d %10d %8.2f %8.2f %8.2f %9.2f %12.0f %10.0f %10d %8s %8.2f %8.1f %8s %8s %8s %8s %8s\n", c, p, w, u + s, s, bz - u - s, p / w, r / 1024, b, k, f, w / f, m, st, per(dw), per(df), per(dd)}'
    [ -s "$run/threads" ] && cat "$run/threads"
    # The run's files are emptied, not deleted, until the last run is over: on ext4 without a
    # journal (this machine's disk), creating a file skips every inode of its block group
    # deleted in the last 60 s (300 s more while the inode table is not yet written back),
    # reading the inode table to find out. Runs that followed a deleted run 31 s later spent up
    # to 1.3 s of CPU in that scan at 1,000 calls (perf: recently_deleted, find_inode_bit), one
    # run in two, and nothing of it is the recorder's.
    find "$run" -type f -exec truncate -s 0 {} +
    done_runs+=("$run")
    # Let this run's writeback settle before the next one starts.
    [ "$left" -eq 0 ] || sleep 31
done
