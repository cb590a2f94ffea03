#!/usr/bin/env bash
# Live capture under load: replays a generated capture as fast as tcpreplay can into one end of
# a veth pair inside a network namespace made for the run, while `callvault run` captures on the
# other end; prints the rate tcpreplay reached and what the kernel dropped.
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
dir=$(mktemp -d /tmp/callvault-live.XXXXXX)
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
sleep 2
if [ "$speed" = topspeed ]; then rate=(--topspeed); else rate=(--multiplier="$speed"); fi
ip netns exec "$ns" tcpreplay --intf1=cva "${rate[@]}" "$dir/load.pcap" 2>&1 | grep -E "Actual|Rated" || true
sleep 3
kill -TERM "$cv"
wait "$cv" || true
grep -E "packets in|kernel \(|shutdown:|calls:|recordings:" "$dir/run.out"
