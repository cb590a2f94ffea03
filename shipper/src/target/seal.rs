//! Encryption at rest: a target with recipients (`encrypt_to`) stores every file of a recording
//! encrypted to them in the age format (<https://age-encryption.org/v1>), so the archive —
//! and anyone who reads the bucket — holds only ciphertext, and the recorder, which has no
//! identity, cannot read back what it archived.
//!
//! # What a sealed archive holds
//!
//! ```text
//! <base><YYYY>/<MM>/<DD>/<stamp>_<id>.wav.age     the audio, encrypted
//! <base><YYYY>/<MM>/<DD>/<stamp>_<id>.json.age    the call record, encrypted
//! ```
//!
//! The key leaves out the parties of the spool's key (`<stamp>_<from>_<to>_<id>` becomes
//! `<stamp>_<id>`, see [`sealed_key`]); the manifest line gives each object's `sha256` and
//! `size` (of the ciphertext, what the archive holds: verification needs no key) and its
//! `plain_sha256` and `plain_size` (what decryption must give back), names the recipients, and
//! of the call's summary keeps only `start` and `duration_s`. What stays visible is when calls
//! were recorded, how long and how large they are.
//!
//! # Staging
//!
//! age encrypts with a fresh random file key, so two encryptions of one file differ. A shipment
//! must be repeatable (a crash between the audio and the record, a retry after an outage, a
//! second look at what is under a key), so each file is encrypted once into the spool,
//! `sealed/<target tag>/<key>.<ext>.age` (written to a temporary name, fsynced, renamed, the
//! directory fsynced), and that file is what every attempt ships and compares. The plaintext is
//! hashed as it is encrypted and checked against the spool entry. The staged files of an entry go
//! once the target has confirmed it; [`sweep`] removes the ones a crash left behind for entries
//! no longer queued.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::read_day;
use super::{ShipError, Shipment, Target};
use crate::filesystem::StdFs;
use crate::fsutil::{create_dirs_durable, random_u64, sync_dir};
use crate::spool::{Entry, EntryFile, SpoolError};

/// The extension a sealed object adds to its file's extension.
pub const SEALED_EXT: &str = "age";

/// The spool directory that holds staged ciphertext.
const STAGING_DIR: &str = "sealed";

/// The recipients a target encrypts to.
pub struct Sealing {
    recipients: Vec<age::x25519::Recipient>,
    names: Vec<String>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing").field("recipients", &self.names).finish()
    }
}

impl Sealing {
    /// Recipients from their public keys (`age1…`, as `age-keygen` prints them); the error names
    /// the one that is not a key.
    pub fn new(recipients: &[String]) -> Result<Sealing, String> {
        if recipients.is_empty() {
            return Err("no recipients".into());
        }
        let mut parsed = Vec::with_capacity(recipients.len());
        for (i, r) in recipients.iter().enumerate() {
            let r = r.trim();
            parsed.push(r.parse::<age::x25519::Recipient>().map_err(|e| {
                format!("recipient {} ({r:?}) is not an age public key (age1…, from `age-keygen -y`): {e}", i + 1)
            })?);
        }
        Ok(Sealing { recipients: parsed, names: recipients.iter().map(|r| r.trim().to_owned()).collect() })
    }

    /// The recipients' public keys, as given.
    pub fn recipients(&self) -> &[String] {
        &self.names
    }

    /// Encrypts `input` into `output`; returns the SHA-256 and size of the plaintext read.
    fn encrypt(&self, input: impl Read, output: impl Write) -> io::Result<(String, u64)> {
        let encryptor = age::Encryptor::with_recipients(self.recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(io::Error::other)?;
        let mut sealed = encryptor.wrap_output(output)?;
        let mut hashing = HashingReader { inner: input, hasher: Sha256::new(), read: 0 };
        io::copy(&mut hashing, &mut sealed)?;
        sealed.finish()?;
        Ok((hex::encode(hashing.hasher.finalize()), hashing.read))
    }
}

/// Identities that open sealed objects (`archive get --identity`).
pub struct Unsealer {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Unsealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealer").field("identities", &self.identities.len()).finish()
    }
}

impl Unsealer {
    /// The identities in an age identity file (`age-keygen` output: `AGE-SECRET-KEY-1…` lines).
    /// The error never quotes the file's content.
    pub fn from_file(path: &Path) -> Result<Unsealer, String> {
        let file = age::IdentityFile::from_file(path.display().to_string())
            .map_err(|e| format!("cannot read identity file {}: {e}", path.display()))?;
        let identities = file.into_identities().map_err(|e| format!("identity file {}: {e}", path.display()))?;
        if identities.is_empty() {
            return Err(format!("identity file {} holds no identity (AGE-SECRET-KEY-1…)", path.display()));
        }
        Ok(Unsealer { identities })
    }

    /// The plaintext of a sealed object; the error says whether no identity fits or the
    /// ciphertext is damaged.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let mut plain = Vec::with_capacity(sealed.len());
        self.open_into(sealed, &mut plain).map_err(|e| e.to_string())?;
        Ok(plain)
    }

    /// Decrypts `sealed` into `out` as it is read (never holding either whole): the SHA-256
    /// (hex) and size of the plaintext written.
    pub fn open_into(&self, sealed: impl Read, out: impl Write) -> Result<(String, u64), Unsealing> {
        let decryptor = age::Decryptor::new_buffered(BufReader::new(sealed))
            .map_err(|e| Unsealing::Open(format!("not an age file: {e}")))?;
        let mut reader = decryptor
            .decrypt(self.identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| Unsealing::Open(format!("cannot decrypt: {e}")))?;
        filehash::copy_hashed(&mut reader, out).map_err(|e| match e {
            filehash::CopyError::Read(e) => Unsealing::Open(format!("the ciphertext is damaged: {e}")),
            filehash::CopyError::Write(e) => Unsealing::Write(e),
        })
    }
}

/// Why [`Unsealer::open_into`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Unsealing {
    /// No identity fits, or the ciphertext is damaged (said how).
    #[error("{0}")]
    Open(String),
    /// The plaintext could not be written.
    #[error("cannot write the plaintext: {0}")]
    Write(io::Error),
}

/// The key a sealed archive stores a recording under: the spool key without its parties,
/// `<day>/<stamp>_<from>_<to>_<id>[~N]` → `<day>/<stamp>_<id>[~N]`. A name of another shape
/// becomes `<day>/<16 hex digits of its SHA-256>`, so no part of it shows.
pub fn sealed_key(key: &str) -> String {
    let (day, name) = key.rsplit_once('/').unwrap_or(("", key));
    let parts: Vec<&str> = name.split('_').collect();
    let stamp_ok = |s: &str| s.len() == 16 && s.ends_with('Z') && s.as_bytes()[8] == b'T';
    let name = match parts.as_slice() {
        [stamp, .., id] if parts.len() >= 4 && stamp_ok(stamp) => format!("{stamp}_{id}"),
        _ => hex::encode(&Sha256::digest(name.as_bytes())[..8]),
    };
    if day.is_empty() { name } else { format!("{day}/{name}") }
}

/// A file of an entry as a sealed target ships it: the staged ciphertext (`ext` is
/// `<ext>.age`), its path, and the plaintext file it seals.
pub(crate) struct Staged {
    pub(crate) file: EntryFile,
    pub(crate) path: PathBuf,
    pub(crate) plain: EntryFile,
}

/// The staging directory of target `name` in the spool at `spool_root`.
fn staging_dir(spool_root: &Path, name: &str) -> PathBuf {
    let tag = hex::encode(&Sha256::digest(name.as_bytes())[..8]);
    spool_root.join(STAGING_DIR).join(tag)
}

/// Encrypts every file of the recording `key` (each plaintext file with its spooled path) into
/// the [`staging_dir`] of target `name` in the spool at `spool_root` — once: a file staged
/// before is reused as it is — and returns them in the same order. Blocking.
pub(crate) fn stage(
    spool_root: &Path,
    name: &str,
    sealing: &Sealing,
    key: &str,
    files: &[(EntryFile, PathBuf)],
) -> Result<Vec<Staged>, ShipError> {
    let spool_err = |op: &'static str, p: &Path, e: io::Error| ShipError::from(SpoolError::io(op, p, e));
    let dir = staging_dir(spool_root, name);
    let mut staged = Vec::with_capacity(files.len());
    for (plain, source) in files {
        let rel = format!("{key}.{}.{SEALED_EXT}", plain.ext);
        let path = dir.join(&rel);
        let (sha256, size) = match filehash::hash_file(&path) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = path.parent().unwrap_or(&dir);
                let under = parent.strip_prefix(spool_root).unwrap_or(Path::new(""));
                create_dirs_durable(&StdFs, spool_root, under).map_err(|e| spool_err("create", parent, e))?;
                seal_file(sealing, plain, source, &path)?
            }
            Err(e) => return Err(spool_err("read", &path, e)),
        };
        let file = EntryFile {
            ext: format!("{}.{SEALED_EXT}", plain.ext),
            path: rel,
            sha256,
            size,
            entered_as: Default::default(),
        };
        staged.push(Staged { file, path, plain: plain.clone() });
    }
    Ok(staged)
}

/// Encrypts `source` (which must hash to `plain`) into `dest`, durably; returns the ciphertext's
/// SHA-256 and size.
fn seal_file(sealing: &Sealing, plain: &EntryFile, source: &Path, dest: &Path) -> Result<(String, u64), ShipError> {
    let source_err = |e| ShipError::Source { path: source.to_owned(), source: e };
    let spool_err = |op: &'static str, p: &Path, e: io::Error| ShipError::from(SpoolError::io(op, p, e));
    let input = BufReader::with_capacity(1 << 16, File::open(source).map_err(source_err)?);
    let name = dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.part-{:016x}", random_u64()));
    let result = (|| {
        let output = File::create_new(&tmp).map_err(|e| spool_err("create", &tmp, e))?;
        let mut writer = filehash::Tee::new(io::BufWriter::with_capacity(1 << 16, output));
        let (read_sha, read_size) =
            sealing.encrypt(input, &mut writer).map_err(|e| spool_err("encrypt into", &tmp, e))?;
        if read_sha != plain.sha256 || read_size != plain.size {
            return Err(ShipError::SourceMismatch {
                path: source.to_owned(),
                expected: plain.sha256.clone(),
                actual: read_sha,
            });
        }
        let (buffered, sealed) = writer.into_parts();
        let output = buffered.into_inner().map_err(|e| spool_err("write", &tmp, e.into_error()))?;
        output.sync_all().map_err(|e| spool_err("sync", &tmp, e))?;
        fs::rename(&tmp, dest).map_err(|e| spool_err("rename", dest, e))?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        sync_dir(&StdFs, dir).map_err(|e| spool_err("sync", dir, e))?;
        Ok(sealed)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A recording shipped to this sealed target before (a capture replayed again, a second
/// recorder on the same traffic): a manifest line under its sealed key (or a `~N` of it) records
/// the plaintext SHA-256 of each of its files, and the archive holds each object as that line
/// records it. Encrypting again would give other ciphertext, so instead the shipment is taken
/// as done. Costs one fetch of the call record's object when there is none (the usual case).
pub(crate) async fn already_shipped(target: &Target, entry: &Entry) -> Result<Option<Shipment>, ShipError> {
    let key = sealed_key(&entry.key);
    let record = target.object_key(&key, &format!("json.{SEALED_EXT}"));
    if entry.files.iter().any(|f| f.ext == "json") && target.fetch(&record).await?.is_none() {
        return Ok(None);
    }
    let day = key.rsplit_once('/').map_or("", |(d, _)| d);
    let tilde = format!("{key}~");
    for line in read_day(target, day).await? {
        if !(line.key == key || line.key.starts_with(&tilde)) || line.objects.len() != entry.files.len() {
            continue;
        }
        if !entry.files.iter().all(|f| line.plain_sha256(&f.ext) == Some(f.sha256.as_str())) {
            continue;
        }
        let mut intact = true;
        for o in line.objects.values() {
            let body = target.fetch(&o.key).await?;
            if !body.is_some_and(|b| b.len() as u64 == o.size && hex::encode(Sha256::digest(&b)) == o.sha256) {
                intact = false;
                break;
            }
        }
        if intact {
            return Ok(Some(Shipment {
                location: target.recording_location(&line.key),
                files_copied: 0,
                files_present: line.objects.len(),
                bytes_copied: 0,
                diverted: None,
            }));
        }
    }
    Ok(None)
}

/// Removes the staged files of `entry` for target `name` (it has been confirmed). Failures are
/// logged: a leftover only takes space until [`sweep`].
pub(crate) fn unstage(spool_root: &Path, name: &str, entry: &Entry) {
    let dir = staging_dir(spool_root, name);
    for f in &entry.files {
        let path = dir.join(format!("{}.{}.{SEALED_EXT}", entry.key, f.ext));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove a staged encrypted copy"),
        }
    }
}

/// Removes every staged file whose recording key is not in `queued` (left by a crash after its
/// target confirmed it, or by a target no longer configured). Returns how many were removed.
pub(crate) fn sweep(spool_root: &Path, queued: &std::collections::HashSet<String>) -> usize {
    let root = spool_root.join(STAGING_DIR);
    let mut removed = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(items) = fs::read_dir(&dir) else { continue };
        for item in items.flatten() {
            let path = item.path();
            if item.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
                continue;
            }
            // <root>/<tag>/<key>.<ext>.age → <key>
            let Ok(rel) = path.strip_prefix(&root) else { continue };
            let rel = rel.to_string_lossy();
            let Some((_, rel)) = rel.split_once('/') else { continue };
            let key = rel.strip_suffix(&format!(".{SEALED_EXT}")).and_then(|k| k.rsplit_once('.')).map(|(k, _)| k);
            let name = path.file_name().map(|n| n.to_string_lossy().starts_with('.')).unwrap_or(false);
            if (name || key.is_none_or(|k| !queued.contains(k))) && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_drop_the_parties() {
        assert_eq!(
            sealed_key("2024/01/01/20240101T000000Z_1000_2000_06ab8f5f24a4"),
            "2024/01/01/20240101T000000Z_06ab8f5f24a4"
        );
        assert_eq!(sealed_key("2024/01/01/20240101T000000Z_a_b_c_06ab~2"), "2024/01/01/20240101T000000Z_06ab~2");
        let odd = sealed_key("2024/01/01/alice_calls_bob");
        assert!(odd.starts_with("2024/01/01/") && !odd.contains("alice") && odd.len() == 11 + 16, "{odd}");
    }

    #[test]
    fn a_sealed_file_opens_with_its_identity_only() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let sealing = Sealing::new(&[id.to_public().to_string()]).unwrap();
        let plain = b"RIFF not really a wav".repeat(5000);
        let mut sealed = Vec::new();
        let (sha, size) = sealing.encrypt(&plain[..], &mut sealed).unwrap();
        assert_eq!((sha, size), (hex::encode(Sha256::digest(&plain)), plain.len() as u64));
        assert!(!sealed.windows(8).any(|w| w == b"RIFF not"));
        let open = |i: &age::x25519::Identity| Unsealer { identities: vec![Box::new(i.clone())] }.open(&sealed);
        assert_eq!(open(&id).unwrap(), plain);
        assert!(open(&other).unwrap_err().contains("cannot decrypt"));
        let mut damaged = sealed.clone();
        let last = damaged.len() - 20;
        damaged[last] ^= 1;
        assert!(Unsealer { identities: vec![Box::new(id.clone())] }.open(&damaged).is_err());
    }

    #[test]
    fn a_bad_recipient_is_named() {
        let err = Sealing::new(&["age1qqq".into()]).unwrap_err();
        assert!(err.contains("recipient 1") && err.contains("age1qqq"), "{err}");
        assert!(Sealing::new(&[]).is_err());
    }
}
