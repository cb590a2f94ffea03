#!/usr/bin/env bash
# Installs the system packages callvault needs on Debian/Ubuntu, only those missing.
#   scripts/deps.sh run    libpcap, libopus, libbcg729 and libgsm (to build and run callvault)
#   scripts/deps.sh test   + tshark, tcpreplay, iproute2 (tests: live capture, cross-checks),
#                            sip-tester (sipp) and tcpdump (live test with real SIP traffic),
#                            python3-venv, openssl, curl (the S3 test server, scripts/s3-server.sh),
#                            dpkg-dev, binutils, adduser, systemd and cargo-deb (the Debian package
#                            test: build, install, systemd-analyze verify), g++ and cargo-fuzz (the
#                            fuzz smoke), prometheus (promtool: the metrics text and the alert
#                            rules' unit tests), chromium, chromium-driver and selenium (PyPI, in a
#                            venv: the dashboard's browser test), nodejs and npm with hep-js
#                            (npm, HOMER's HEP decoder: the HEP export test), gzip and zstd
#                            (compressed captures), ffmpeg and opus-tools (the reference decoders
#                            of the codec tests), pylibsrtp and cryptography (PyPI, in a venv: the
#                            SRTP cross-check), jq (the consumer's verification procedure),
#                            age (keys and a second implementation for the encrypted archive
#                            test) and duckdb (PyPI, in a venv: the README's manifest query)
#   scripts/deps.sh soak   the same, for benches/soak.sh
set -euo pipefail
mode="${1:-run}"
want=(libpcap-dev libopus-dev libbcg729-dev libgsm1-dev pkg-config)
if [ "$mode" = test ] || [ "$mode" = soak ]; then
    want+=(tshark tcpreplay iproute2 sip-tester tcpdump python3-venv openssl curl flac dpkg-dev binutils adduser systemd g++
        prometheus chromium chromium-driver gzip zstd ffmpeg opus-tools jq age)
    # Node from any source will do (NodeSource's nodejs carries npm and conflicts with Debian's).
    { command -v node && command -v npm; } >/dev/null || want+=(nodejs npm)
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
# cargo-deb builds the Debian package. It is installed once into a directory outside the clone
# that survives fresh clones (like the target directory): about 3 CPU-minutes the first time.
if [ "$mode" = test ] || [ "$mode" = soak ]; then
    tools="${CALLVAULT_TOOLS:-/var/tmp/callvault-tools}"
    if ! [ -x "$tools/bin/cargo-deb" ]; then
        echo "installing cargo-deb into $tools (once)" >&2
        cargo install --locked --quiet --root "$tools" cargo-deb --version 3.8.0
    fi
fi
# The toolchain of the workspace's rust-version: the test command checks that the code builds
# with it (the minimum is what the code uses, e.g. let-chains need 1.88, not a guess).
if [ "$mode" = test ]; then
    msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml")
    if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
        echo "installing the Rust $msrv toolchain (rust-version, once)" >&2
        rustup toolchain install "$msrv" --profile minimal >/dev/null
    fi
fi
# cargo-fuzz drives the fuzz smoke (scripts/fuzz-smoke.sh); installed the same way, once.
if [ "$mode" = test ]; then
    tools="${CALLVAULT_TOOLS:-/var/tmp/callvault-tools}"
    if ! [ -x "$tools/bin/cargo-fuzz" ]; then
        echo "installing cargo-fuzz into $tools (once)" >&2
        cargo install --locked --quiet --root "$tools" cargo-fuzz --version 0.13.2
    fi
fi
# Python tools, each from PyPI into a venv of its own under the cache, once:
#   pyvenv NAME IMPORTS PACKAGE==VERSION...
pyvenv() {
    local venv="${XDG_CACHE_HOME:-$HOME/.cache}/callvault/$1" imports="$2"
    shift 2
    if ! "$venv/bin/python" -c "import $imports" 2>/dev/null; then
        echo "installing $* into $venv (once)" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
    fi
}
if [ "$mode" = test ]; then
    # selenium drives headless Chromium in the dashboard test.
    pyvenv selenium selenium "selenium==4.27.1"
    # pylibsrtp (libsrtp) and cryptography check the generator's SRTP against implementations
    # that share no code with callvault (tests/srtp_reference.rs).
    pyvenv pylibsrtp "pylibsrtp, cryptography" "pylibsrtp==0.12.0" "cryptography==44.0.2"
    # duckdb runs the README's example query over a day of manifests and records.
    pyvenv duckdb duckdb "duckdb==1.1.3"
fi
# hep-js (HOMER's HEP encoder/decoder) decodes what the HEP export sends; from npm, once.
if [ "$mode" = test ]; then
    hepjs="${XDG_CACHE_HOME:-$HOME/.cache}/callvault/hep-js"
    if ! [ -d "$hepjs/node_modules/hep-js" ]; then
        echo "installing hep-js into $hepjs (once)" >&2
        mkdir -p "$hepjs"
        (cd "$hepjs" && npm install --silent --no-audit --no-fund --no-save hep-js@1.0.22 >/dev/null)
    fi
fi
