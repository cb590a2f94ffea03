#!/usr/bin/env bash
# Builds callvault and records the bundled sample capture into ./callvault-data, shipping
# every recording to the local archive ./callvault-archive. Prints where they are.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh run
cargo build --release --quiet --bin callvault
exec ./target/release/callvault replay samples/demo.pcap --output ./callvault-data --archive ./callvault-archive "$@"
