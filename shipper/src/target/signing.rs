//! The site's signing key: Ed25519 (RFC 8032), the private key a PKCS#8 PEM file closed to
//! everyone but its owner, the public key published to the archive as a SubjectPublicKeyInfo PEM
//! (what `openssl pkeyutl -verify -pubin -rawin` reads).
//!
//! A key is named by its fingerprint: the lowercase hex SHA-256 of its public key's DER
//! SubjectPublicKeyInfo (44 bytes), which anyone can recompute with
//! `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum`. Its published object is
//! `<base>keys/ed25519-<fingerprint>.pem`; each manifest batch names the fingerprint of the key
//! that signed it, so a site can rotate its key (batches keep naming the old one, both stay
//! published). A signature is the 64 raw bytes of the Ed25519 signature over the whole batch
//! object, stored as `<batch>.sig`.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The directory of published public keys, under an archive's base.
pub const KEYS_DIR: &str = "keys/";

/// The key of the published public key with `fingerprint`, under an archive's `base`.
pub fn key_object(base: &str, fingerprint: &str) -> String {
    format!("{base}{KEYS_DIR}ed25519-{fingerprint}.pem")
}

/// The fingerprint named by a published key object's key, if it is one.
pub fn fingerprint_of_object(object: &str) -> Option<&str> {
    let name = object.rsplit('/').next()?;
    let fp = name.strip_prefix("ed25519-")?.strip_suffix(".pem")?;
    crate::fsutil::is_sha256_hex(fp).then_some(fp)
}

/// The key of the signature object of batch `batch`.
pub fn signature_object(batch: &str) -> String {
    format!("{batch}.sig")
}

/// Why a signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error(
        "cannot read the signing key {path}: {error}; check the path (`callvault config new-signing-key` creates one)"
    )]
    Read {
        /// The key file.
        path: PathBuf,
        /// The operating system's error (in the message, so not its source: a chain printed
        /// whole would name it twice).
        error: io::Error,
    },
    /// The file is open to others than its owner, or owned by someone else.
    #[error("signing key {path}: {problem}")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The file holds no Ed25519 private key.
    #[error(
        "signing key {path} is not an Ed25519 private key in PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\"): {problem}"
    )]
    Format {
        /// The key file.
        path: PathBuf,
        /// What the decoder said.
        problem: String,
    },
    /// A new key cannot be written.
    #[error("cannot create the signing key {path}: {error}")]
    Create {
        /// The key file.
        path: PathBuf,
        /// The operating system's error (in the message, so not its source: a chain printed
        /// whole would name it twice).
        error: io::Error,
    },
}

/// A site's signing key, loaded.
#[derive(Clone)]
pub struct SiteKey {
    key: SigningKey,
    fingerprint: String,
    public_pem: String,
}

impl std::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteKey").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl SiteKey {
    fn from_key(key: SigningKey) -> SiteKey {
        let public = key.verifying_key();
        let der = public.to_public_key_der().expect("an Ed25519 public key always encodes");
        let fingerprint = hex::encode(Sha256::digest(der.as_bytes()));
        let public_pem = public.to_public_key_pem(LineEnding::LF).expect("an Ed25519 public key always encodes");
        SiteKey { key, fingerprint, public_pem }
    }

    /// Loads the private key at `path`: a regular file owned by root or this process's user,
    /// with no permission for its group or others (0600 or 0400).
    pub fn load(path: &Path) -> Result<SiteKey, KeyError> {
        let read = |error| KeyError::Read { path: path.to_owned(), error };
        let meta = fs::metadata(path).map_err(read)?;
        let bad = |problem: String| KeyError::Permissions { path: path.to_owned(), problem };
        if !meta.is_file() {
            return Err(bad("is not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "has mode {mode:04o}: a private key must be closed to its group and others; chmod 0600 it"
            )));
        }
        let uid = rustix::process::geteuid().as_raw();
        if meta.uid() != 0 && meta.uid() != uid {
            return Err(bad(format!(
                "is owned by uid {}, neither root nor this process's user (uid {uid}); chown it to the user callvault runs as",
                meta.uid()
            )));
        }
        let text = fs::read_to_string(path).map_err(read)?;
        let key = SigningKey::from_pkcs8_pem(&text)
            .map_err(|e| KeyError::Format { path: path.to_owned(), problem: e.to_string() })?;
        Ok(SiteKey::from_key(key))
    }

    /// Creates a new key at `path` (mode 0600; never replaces an existing file).
    pub fn generate(path: &Path) -> Result<SiteKey, KeyError> {
        let create = |error| KeyError::Create { path: path.to_owned(), error };
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| create(io::Error::other(e.to_string())))?;
        let key = SigningKey::from_bytes(&seed);
        let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| create(io::Error::other(e.to_string())))?;
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(create)?;
        file.write_all(pem.as_bytes()).and_then(|()| file.sync_all()).map_err(create)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(create)?;
        }
        Ok(SiteKey::from_key(key))
    }

    /// The public key's fingerprint (hex SHA-256 of its DER SubjectPublicKeyInfo).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public key as a SubjectPublicKeyInfo PEM.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The 64-byte Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }
}

/// A published public key, checked against the fingerprint it is published under.
#[derive(Debug, Clone)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo PEM and checks it hashes to `fingerprint`; the error says
    /// what is wrong.
    pub fn parse(pem: &[u8], fingerprint: &str) -> Result<PublicKey, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "not a PEM text".to_owned())?;
        let key = VerifyingKey::from_public_key_pem(text)
            .map_err(|e| format!("not an Ed25519 public key in SubjectPublicKeyInfo PEM: {e}"))?;
        let der = key.to_public_key_der().map_err(|e| e.to_string())?;
        let actual = hex::encode(Sha256::digest(der.as_bytes()));
        if actual != fingerprint {
            return Err(format!("holds the key with fingerprint {actual}, not {fingerprint}"));
        }
        Ok(PublicKey(key))
    }

    /// Whether `signature` (64 raw bytes) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|s| self.0.verify(message, &s).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_loads_signs_and_verifies_under_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let key = SiteKey::generate(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(SiteKey::generate(&path), Err(KeyError::Create { .. })), "never replaced");
        let loaded = SiteKey::load(&path).unwrap();
        assert_eq!(loaded.fingerprint(), key.fingerprint());
        let public = PublicKey::parse(key.public_pem().as_bytes(), key.fingerprint()).unwrap();
        let sig = loaded.sign(b"batch");
        assert_eq!(sig.len(), 64);
        assert!(public.verifies(b"batch", &sig));
        assert!(!public.verifies(b"batcH", &sig));
        assert!(!public.verifies(b"batch", &sig[..63]));
        // Another key under this fingerprint is refused.
        let other = SiteKey::generate(&dir.path().join("other.key")).unwrap();
        let err = PublicKey::parse(other.public_pem().as_bytes(), key.fingerprint()).unwrap_err();
        assert!(err.contains(other.fingerprint()), "{err}");
        assert_eq!(fingerprint_of_object(&key_object("p/s/", key.fingerprint())), Some(key.fingerprint()));
    }

    #[test]
    fn a_key_open_to_others_or_not_a_key_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        SiteKey::generate(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = SiteKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("0640") && err.contains("chmod 0600"), "{err}");
        let junk = dir.path().join("junk.key");
        fs::write(&junk, "not a key").unwrap();
        fs::set_permissions(&junk, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(SiteKey::load(&junk), Err(KeyError::Format { .. })));
        let err = SiteKey::load(&dir.path().join("absent.key")).unwrap_err().to_string();
        assert!(err.contains("absent.key") && err.contains("new-signing-key"), "{err}");
    }
}
