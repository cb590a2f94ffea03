#!/usr/bin/env bash
# Soak: real SIP+RTP calls for a long time (default ten minutes) into callvault run from the
# installed Debian package, the way the systemd unit runs it (user callvault, CAP_NET_RAW only,
# no new privileges). Not part of CI.
#
#   benches/soak.sh [SECONDS] [CALLS_PER_SECOND]      (default 600 s, 10 calls/s)
#
# sipp (Debian sip-tester) places the calls: its uac plays G.711 A-law from a pcap (the built-in
# uac_pcap scenario: about 9 s of audio and an RFC 2833 digit per call), its uas answers and
# echoes the RTP (-rtp_echo). uac and uas sit in two network namespaces joined by a veth pair;
# callvault captures on the uas end. The package is built from a release build and installed
# with dpkg into an overlay of / in a private mount namespace, so the machine is left untouched.
#
# Reports: calls placed (sipp) and recorded (callvault), kernel and queue drops, callvault's RSS
# every 10 s (it must stay flat) and its CPU. RSS includes the kernel capture ring that libpcap
# maps (capture.buffer_mib, 256 MiB), which fills as it is used; RssAnon is the process's own
# memory (heap and stacks). Samples go to $CALLVAULT_SOAK_OUT (default a
# directory under /tmp that is printed) as rss.csv, with callvault's log and summary.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
rate=${2:-10}
out="${CALLVAULT_SOAK_OUT:-$(mktemp -d /tmp/callvault-soak.XXXXXX)}"

if [ -z "${CALLVAULT_SOAK_INNER:-}" ]; then
    scripts/deps.sh soak
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/callvault-target}"
    echo "== building the release binary and the package" >&2
    cargo build --release --quiet -p callvault
    tools="${CALLVAULT_TOOLS:-/var/tmp/callvault-tools}"
    rm -f "$out"/*.deb
    "$tools/bin/cargo-deb" --no-build --quiet --output "$out/"
    export CALLVAULT_SOAK_INNER=1 CALLVAULT_SOAK_OUT="$out"
    exec unshare --mount --propagation private "$0" "$@"
fi

# From here on: a private mount namespace; its mounts vanish when the script ends.
deb=$(ls "$out"/*.deb)
root="$out/root"
ns1="cvsoak1$$"
ns2="cvsoak2$$"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$ns1" 2>/dev/null || true
    ip netns del "$ns2" 2>/dev/null || true
    umount -R -l "$root" 2>/dev/null || true
    umount -l "$out/up" 2>/dev/null || true
}
trap cleanup EXIT

echo "== installing $(basename "$deb") into an overlay root" >&2
mkdir -p "$out/up" "$root"
mount -t tmpfs tmpfs "$out/up"
mkdir "$out/up/u" "$out/up/w"
mount -t overlay overlay -o "lowerdir=/,upperdir=$out/up/u,workdir=$out/up/w,xino=on" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
cp "$deb" "$root/var/cache/callvault-soak.deb"
chroot "$root" dpkg -i /var/cache/callvault-soak.deb >/dev/null
conf="$root/etc/callvault/callvault.toml"
sed -i -e 's/^interfaces = .*/interfaces = ["svb"]/' -e 's/^heartbeat = .*/heartbeat = 10/' \
    -e 's/^retention = .*/retention = "delete"/' "$conf"

# uac (10.99.0.1) in ns1, uas (10.99.0.2) and callvault in ns2.
ip netns add "$ns1"
ip netns add "$ns2"
ip link add sva netns "$ns1" type veth peer name svb netns "$ns2"
ip -n "$ns1" addr add 10.99.0.1/24 dev sva
ip -n "$ns2" addr add 10.99.0.2/24 dev svb
for n in "$ns1" "$ns2"; do ip -n "$n" link set lo up; done
ip -n "$ns1" link set sva up
ip -n "$ns2" link set svb up

unit="$root/usr/lib/systemd/system/callvault.service"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
group=$(sed -n 's/^Group=//p' "$unit")
environment=$(sed -n 's/^Environment=//p' "$unit")
echo "== starting: $environment $exec_start (as $user, CAP_NET_RAW only)" >&2
# shellcheck disable=SC2086
ip netns exec "$ns2" chroot "$root" env $environment setpriv --reuid="$user" --regid="$group" --init-groups \
    --inh-caps=-all,+net_raw --ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw --no-new-privs \
    -- $exec_start > "$out/summary.txt" 2> "$out/callvault.log" &
cv=$!
pids+=("$cv")
for _ in $(seq 100); do grep -q capturing "$out/callvault.log" && break; sleep 0.1; done
grep -q capturing "$out/callvault.log" || { cat "$out/callvault.log"; exit 1; }

# sipp reads the scenario's pcaps relative to its working directory.
mkdir -p "$out/sipp/pcap"
ln -sf /usr/share/sip-tester/*.pcap "$out/sipp/pcap/"
cd "$out/sipp"
ip netns exec "$ns2" sipp -sn uas -i 10.99.0.2 -p 5060 -mi 10.99.0.2 -rtp_echo -nostdin \
    > uas.out 2>&1 &
pids+=("$!")
sleep 1
total=$((secs * rate))
echo "== $total calls at $rate/s for $secs s" >&2
ip netns exec "$ns1" sipp -sn uac_pcap 10.99.0.2:5060 -i 10.99.0.1 -p 5061 -mi 10.99.0.1 \
    -r "$rate" -m "$total" -nostdin -trace_stat -stf uac_stat.csv -fd 10 > uac.out 2>&1 &
uac=$!
pids+=("$uac")

# Sample callvault every 10 s: RSS and CPU (utime + stime of the whole process).
hz=$(getconf CLK_TCK)
echo "seconds,rss_kib,rss_anon_kib,cpu_percent" > "$out/rss.csv"
start=$(date +%s)
ticks() { awk '{print $14 + $15}' "/proc/$cv/stat"; }
last_ticks=$(ticks)
last_t=$start
first_ticks=$last_ticks
while kill -0 "$uac" 2>/dev/null; do
    sleep 10
    now=$(date +%s)
    t=$(ticks)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$cv/status")
    anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$cv/status")
    cpu=$(awk -v d=$((t - last_ticks)) -v s=$((now - last_t)) -v hz="$hz" 'BEGIN {printf "%.1f", 100 * d / hz / s}')
    echo "$((now - start)),$rss,$anon,$cpu" >> "$out/rss.csv"
    echo "  t=$((now - start))s rss=${rss} KiB anon=${anon} KiB cpu=${cpu}%" >&2
    last_ticks=$t
    last_t=$now
done
elapsed=$(( $(date +%s) - start ))
total_ticks=$(( $(ticks) - first_ticks ))
sleep 3
kill -TERM "$cv"
t0=$(date +%s.%N)
wait "$cv" || true
t1=$(date +%s.%N)

echo
echo "== soak: ${elapsed} s, $rate calls/s offered"
stat_line() { tail -1 uac_stat.csv | tr ';' '\n'; }
col() { head -1 uac_stat.csv | tr ';' '\n' | grep -nx "$1" | cut -d: -f1; }
if [ -s uac_stat.csv ]; then
    ok=$(stat_line | sed -n "$(col 'SuccessfulCall(C)')p")
    failed=$(stat_line | sed -n "$(col 'FailedCall(C)')p")
    echo "sipp: $ok calls completed, $failed failed"
fi
grep -E "packets in|kernel|shutdown|calls:|recordings:|warning|error" "$out/summary.txt" || true
echo "queue drops (heartbeats): $(grep -o 'queue_drops=[0-9]*' "$out/callvault.log" | awk -F= '{s += $2} END {print s + 0}')"
echo "kernel drops (heartbeats): $(grep -o 'kernel_drops=[0-9]*' "$out/callvault.log" | awk -F= '{s += $2} END {print s + 0}')"
awk -F, 'NR > 1 {n++; r[n] = $2; a[n] = $3; if ($2 > max) max = $2; if ($3 > amax) amax = $3}
    END {
        half = int(n / 2) + 1
        printf "RSS: first %d KiB, at half time %d KiB, last %d KiB, max %d KiB\n", r[1], r[half], r[n], max
        printf "RssAnon: first %d KiB, at half time %d KiB, last %d KiB, max %d KiB\n", a[1], a[half], a[n], amax
        printf "change over the second half: RSS %+d KiB, RssAnon %+d KiB\n", r[n] - r[half], a[n] - a[half]
    }' "$out/rss.csv"
awk -v t="$total_ticks" -v hz="$hz" -v s="$elapsed" 'BEGIN {printf "CPU: %.1f %% of one core on average\n", 100 * t / hz / s}'
awk -v a="$t0" -v b="$t1" 'BEGIN {printf "stop after SIGTERM: %.2f s\n", b - a}'
echo "samples: $out/rss.csv; log: $out/callvault.log"
