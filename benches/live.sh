#!/usr/bin/env bash
# Live capture under load: replays a generated capture as fast as tcpreplay can into one end of
# a veth pair inside a network namespace made for the run, while `callvault run` captures on the
# other end; prints the rate tcpreplay reached, what the kernel dropped, and callvault's CPU:
# user + system seconds over its whole run (capture, mixing, finishing and archiving every
# call, shutdown included), per packet captured, and the G.711 calls one core would hold at
# that cost (a call at 20 ms packetisation is 100 packets/s, both directions together). The CPU
# of starting (the kernel setting up the capture buffer) is reported, not counted per packet.
# Then each kind of thread's CPU over the whole run (mixers, finishers, the capture thread...).
# On a veth pair the kernel's receive work (the copy into the capture ring) runs in the sending
# side's context and is counted in tcpreplay's CPU, not callvault's; on a real port the NIC's
# receive processing adds to the box's CPU.
#   benches/live.sh [CALLS] [TALK_SECONDS] [MULTIPLIER|topspeed]
# Needs root, iproute2 and tcpreplay (scripts/deps.sh test installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-500}
talk=${2:-20}
speed=${3:-topspeed}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/callvault-target}"
cargo build --release --quiet -p callvault -p callvault-callgen
bin="$CARGO_TARGET_DIR/release"
# The run's files under CALLVAULT_BENCH_DIR (as benches/end_to_end.sh), each run in a block
# group of its own (chattr +T): on ext4 without a journal, creating files where the last run's
# were just deleted costs the mixers' and finishers' opens a scan of the recently freed inodes.
top="${CALLVAULT_BENCH_DIR:-/var/tmp/callvault-bench}"
mkdir -p "$top"
chattr +T "$top" 2>/dev/null || true
dir=$(mktemp -d "$top/live.XXXXXX")
ns="cvlive$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
"$bin/callgen" --calls "$calls" --concurrency "$calls" --talk "$talk" --out "$dir/load.pcap"
ip netns add "$ns"
ip -n "$ns" link add cva type veth peer name cvb
ip -n "$ns" link set cva up
ip -n "$ns" link set cvb up
ip netns exec "$ns" "$bin/callvault" run --interface cvb --buffer-mib 512 --user root \
    --output "$dir/data" --archive "$dir/archive" > "$dir/run.out" 2> "$dir/run.err" &
cv=$!
# Each kind of thread's CPU over the whole run (benches/threads.py): a change to one stage shows
# there through the others' noise (the finishers' system time varies the most from run to run).
python3 benches/threads.py "$cv" > "$dir/threads" &
sampler=$!
sleep 2
if [ "$(cat /proc/$cv/comm 2>/dev/null)" != callvault ]; then
    echo "callvault did not start:" >&2; cat "$dir/run.err" >&2; exit 1
fi
# CPU ticks of a process (user + system, all its threads): fields 14 and 15 of its stat, read
# after the command name (which is in parentheses).
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# What starting took (mostly the kernel setting up the capture buffer): not per packet. The
# load starts once callvault is idle (less than 3 ticks in half a second), 20 s at most.
started=$(ticks "$cv")
for _ in $(seq 40); do
    sleep 0.5
    now=$(ticks "$cv")
    [ $((now - started)) -ge 3 ] || break
    started=$now
done
if [ "$speed" = topspeed ]; then rate=(--topspeed); else rate=(--multiplier="$speed"); fi
ip netns exec "$ns" tcpreplay --intf1=cva "${rate[@]}" "$dir/load.pcap" 2>&1 | grep -E "Actual|Rated" || true
sleep 3
loaded=$(ticks "$cv")
# The children's CPU times (the `times` builtin) before and after callvault is reaped: the
# difference is its whole run, the shutdown's finishing and shipping included.
times > "$dir/times.before"
kill -TERM "$cv"
wait "$cv" || true
times > "$dir/times.after"
wait "$sampler" || true
grep -E "packets in|kernel \(|shutdown:|calls:|recordings:" "$dir/run.out"
# The children's user and system seconds (`times` prints them on its second line as 1m2.345s).
secs() { awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); printf "%s ", t[1] * 60 + t[2] } }' "$1"; }
packets=$(sed -n 's/^callvault run: \([0-9,]*\) packets in.*/\1/p' "$dir/run.out" | tr -d ,)
awk -v before="$(secs "$dir/times.before")" -v after="$(secs "$dir/times.after")" \
    -v started="$started" -v loaded="$loaded" -v hz="$(getconf CLK_TCK)" -v packets="${packets:-0}" 'BEGIN {
    split(before, b, " "); split(after, a, " ")
    user = a[1] - b[1]; sys = a[2] - b[2]; cpu = user + sys
    printf "cpu: %.2f s (user %.2f, sys %.2f): %.2f s starting, %.2f s until the stop, %.2f s stopping; %d packets captured\n", \
        cpu, user, sys, started / hz, (loaded - started) / hz, cpu - loaded / hz, packets
    if (packets > 0 && cpu > started / hz) {
        us = (cpu - started / hz) * 1e6 / packets
        printf "cpu per packet: %.2f us; calls per core (100 packets/s per G.711 call): %.0f\n", us, 1e6 / (us * 100)
    }
}'
echo "cpu by thread (whole run; the main thread, named callvault, is the capture):"
sed 's/^/  /' "$dir/threads"
