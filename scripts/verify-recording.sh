#!/bin/sh
# Verifies one recording of a callvault archive with standard tools only (jq, openssl,
# sha256sum): finds the manifest batch that lists it, checks the site's published public key
# against the fingerprint kept offline, the batch's signature with that key, and the SHA-256 of
# each of the recording's objects against its line in the signed batch.
#
#   scripts/verify-recording.sh ROOT BASE KEY FINGERPRINT
#
# ROOT         a directory holding the archive's objects under their keys: a local archive, or
#              what was downloaded from the bucket (the batch, its .sig, keys/ and the objects)
# BASE         the site's key prefix, "<prefix>/<site>/" ("" for a local archive)
# KEY          the recording's key, YYYY/MM/DD/<name>, as `callvault archive ls` shows it
# FINGERPRINT  the site key's fingerprint, kept offline (64 hex digits)
#
# Exit status 0 when every check passed; 1, with a line saying which check failed, otherwise.
set -eu
[ $# -eq 4 ] || { echo "usage: $0 ROOT BASE KEY FINGERPRINT" >&2; exit 2; }
root=$1 base=$2 key=$3 fingerprint=$4
fail() { echo "FAILED: $*" >&2; exit 1; }

# 1. The batch of the recording's day that lists it (its line's "key" is the recording's key).
manifests="$root/$base${key%/*}/manifest"
batch=""
for b in "$manifests"/seq-*.jsonl; do
    [ -f "$b" ] || continue
    if jq -r --arg k "$key" 'select(.key == $k) | .key' "$b" 2>/dev/null | grep -q .; then batch=$b; break; fi
done
[ -n "$batch" ] || fail "no manifest batch in $manifests lists $key"
line=$(jq -c --arg k "$key" 'select(.key == $k)' "$batch" | head -n 1)

# 2. The key that signed it: named by the batch's header (its first line), published under
#    keys/, and the one whose fingerprint is kept offline.
signer=$(head -n 1 "$batch" | jq -r '.batch.signing_key // empty')
[ -n "$signer" ] || fail "$batch is not signed (its header names no key)"
[ "$signer" = "$fingerprint" ] || fail "$batch is signed by key $signer, not by $fingerprint"
pem="$root/${base}keys/ed25519-$signer.pem"
[ -f "$pem" ] || fail "the public key $pem is not there"
published=$(openssl pkey -pubin -in "$pem" -outform DER | sha256sum | cut -d ' ' -f 1)
[ "$published" = "$fingerprint" ] || fail "$pem holds the key $published, not $fingerprint"

# 3. The batch's signature (64 raw bytes, Ed25519 over the whole batch object).
[ -f "$batch.sig" ] || fail "the signature $batch.sig is not there"
openssl pkeyutl -verify -pubin -inkey "$pem" -rawin -in "$batch" -sigfile "$batch.sig" >/dev/null \
    || fail "the signature of $batch does not verify with $pem"

# 4. Each object of the recording against the SHA-256 in its signed line.
echo "$line" | jq -r '.objects[] | "\(.sha256)  \(.key)"' | (cd "$root" && sha256sum --check --strict --quiet) \
    || fail "an object of $key does not match its SHA-256 in $batch"
echo "OK: $key as listed in $batch, signed by $fingerprint"
