#!/usr/bin/env bash
# Installs the system packages callvault needs on Debian/Ubuntu, only those missing.
#   scripts/deps.sh run    libpcap (to build and run callvault)
#   scripts/deps.sh test   + tshark, tcpreplay, iproute2 (tests: live capture, cross-checks),
#                            sip-tester (sipp) and tcpdump (live test with real SIP traffic),
#                            python3-venv, openssl, curl (the S3 test server, scripts/s3-server.sh)
set -euo pipefail
want=(libpcap-dev pkg-config)
if [ "${1:-run}" = test ]; then
    want+=(tshark tcpreplay iproute2 sip-tester tcpdump python3-venv openssl curl flac)
fi
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
