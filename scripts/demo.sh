#!/usr/bin/env bash
# Builds callvault and records the bundled sample capture into ./callvault-data, shipping
# every recording to the local archive ./callvault-archive. Prints where they are.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh run
cargo build --release --quiet --bin callvault
# Where cargo put it: ./target, or the user's own target directory.
callvault="${CARGO_TARGET_DIR:-target}/release/callvault"
# The archive's manifests are signed with a key of this demo's own (created once; its public
# key and fingerprint are printed then, as `archive verify` checks against them).
[ -e ./callvault-signing.key ] || "$callvault" config new-signing-key ./callvault-signing.key
exec "$callvault" replay samples/demo.pcap --output ./callvault-data --archive ./callvault-archive \
    --signing-key ./callvault-signing.key "$@"
