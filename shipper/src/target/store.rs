//! Reading and writing an archive's objects the same way whatever the target: keys, listing,
//! fetching, conditional create. The manifest writer and `archive verify` work through these
//! only, so an S3 bucket and a local directory are checked by one code path.
//!
//! Keys are the S3 object keys (`<prefix>/<site>/YYYY/MM/DD/<name>.<ext>`) for a bucket and the
//! paths under the directory (`YYYY/MM/DD/<name>.<ext>`) for a local archive. A directory's
//! listing leaves out the hidden `.part-` files of copies in progress.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::local::is_part_name;
use super::manifest::{Writer, plain_path};
use super::seal::Sealing;
use super::signing::SiteKey;
use super::{LocalDir, ShipError, Target};
use crate::filesystem::StdFs;
use crate::fsutil::{create_dirs_durable, random_u64, sync_dir};

/// What a conditional create found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object was created (and verified).
    New,
    /// An identical object was already there.
    Identical,
    /// Something else is under the key.
    Taken,
}

impl Target {
    /// The key prefix of everything this target stores: `<prefix>/<site>/` for S3 (shorter when
    /// they are empty), empty for a directory.
    pub fn base(&self) -> &str {
        match self {
            Target::LocalDir(_) => "",
            Target::S3(s3) => s3.base(),
        }
    }

    /// The site name (S3); empty for a directory.
    pub fn site(&self) -> &str {
        match self {
            Target::LocalDir(_) => "",
            Target::S3(s3) => s3.site(),
        }
    }

    /// The key prefix of day `day` (`YYYY/MM/DD`): `<base>YYYY/MM/DD/`.
    pub fn day_prefix(&self, day: &str) -> String {
        format!("{}{}/", self.base(), day.trim_matches('/'))
    }

    /// The key of file `ext` of the recording stored under `key`.
    pub fn object_key(&self, key: &str, ext: &str) -> String {
        format!("{}{key}.{ext}", self.base())
    }

    /// Where a recording stored under `key` is, for people: `s3://bucket/<base><key>` or the
    /// directory's path of it.
    pub fn recording_location(&self, key: &str) -> String {
        match self {
            Target::LocalDir(dir) => dir.dir().join(key).display().to_string(),
            Target::S3(s3) => format!("s3://{}/{}{key}", s3.bucket(), s3.base()),
        }
    }

    /// An object's key as people find it: `s3://bucket/key` or the file's path.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Target::LocalDir(dir) => dir.dir().join(key).display().to_string(),
            Target::S3(s3) => format!("s3://{}/{key}", s3.bucket()),
        }
    }

    /// Every object whose key starts with `prefix` (which ends in `/`), in key order, with its
    /// size.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, ShipError> {
        self.list_after(prefix, None).await
    }

    /// [`Target::list`], but only the keys that sort after `after` (all with `None`).
    pub async fn list_after(&self, prefix: &str, after: Option<&str>) -> Result<Vec<(String, u64)>, ShipError> {
        match self {
            Target::S3(s3) => s3.list_after(prefix, after).await,
            Target::LocalDir(dir) => {
                let dir = dir.clone();
                let prefix = prefix.to_owned();
                let after = after.map(str::to_owned);
                blocking(&dir.clone(), move || dir.list_blocking(&prefix, after.as_deref())).await
            }
        }
    }

    /// The names directly under the base's parent level that are not years: for S3, the sites
    /// beside this target's (or under its prefix when it has no site). Empty for a directory.
    pub async fn sites(&self) -> Result<Vec<String>, ShipError> {
        match self {
            Target::LocalDir(_) => Ok(Vec::new()),
            Target::S3(s3) => s3.sites().await,
        }
    }

    /// The content of the object `key`, or `None` if there is none.
    pub async fn fetch(&self, key: &str) -> Result<Option<Vec<u8>>, ShipError> {
        match self {
            Target::S3(s3) => s3.fetch(key).await,
            Target::LocalDir(dir) => {
                let dir = dir.clone();
                let key = key.to_owned();
                blocking(&dir.clone(), move || dir.fetch_blocking(&key)).await
            }
        }
    }

    /// The SHA-256 (hex) and size of the object `key`, read as a stream (never held whole in
    /// memory, whatever its size), or `None` if there is none.
    pub async fn hash(&self, key: &str) -> Result<Option<(String, u64)>, ShipError> {
        match self {
            Target::S3(s3) => s3.hash(key).await,
            Target::LocalDir(dir) => {
                let dir = dir.clone();
                let key = key.to_owned();
                blocking(&dir.clone(), move || dir.hash_blocking(&key)).await
            }
        }
    }

    /// Copies the object `key` into `dest` (created, or emptied), hashing it on the way, and
    /// returns its SHA-256 (hex) and size; `None` if there is no such object. Never holds the
    /// object in memory; `dest` is not synced.
    pub async fn download(&self, key: &str, dest: &Path) -> Result<Option<(String, u64)>, ShipError> {
        match self {
            Target::S3(s3) => s3.download(key, dest).await,
            Target::LocalDir(dir) => {
                let (dir, key, dest) = (dir.clone(), key.to_owned(), dest.to_owned());
                blocking(&dir.clone(), move || dir.download_blocking(&key, &dest)).await
            }
        }
    }

    /// Makes what shipments published under the day `day_prefix` durable before a manifest
    /// batch names it: a directory's day is synced once for all the lines of the batch (an S3
    /// object is durable when its PUT returns).
    pub(crate) async fn settle_day(&self, day_prefix: &str) -> Result<(), ShipError> {
        match self {
            Target::S3(_) => Ok(()),
            Target::LocalDir(dir) => {
                let dir = dir.clone();
                let day = day_prefix.to_owned();
                blocking(&dir.clone(), move || dir.settle_day_blocking(&day)).await
            }
        }
    }

    /// Creates the object `key` with `body` unless something is there (S3 `If-None-Match: *`; a
    /// hard link in a directory), verified and durable when it returns [`Created::New`].
    pub(crate) async fn create(&self, key: &str, body: Vec<u8>) -> Result<Created, ShipError> {
        match self {
            Target::S3(s3) => s3.create(key, body).await,
            Target::LocalDir(dir) => {
                let dir = dir.clone();
                let key = key.to_owned();
                blocking(&dir.clone(), move || dir.create_blocking(&key, &body)).await
            }
        }
    }

    /// Signs the manifest batches this target writes from now on with `key`, and publishes its
    /// public half in the archive with the first one. Returns `false` (changing nothing) if a
    /// key was set already.
    pub fn set_signing_key(&self, key: SiteKey) -> bool {
        self.manifest_writer().set_key(key)
    }

    /// The key this target signs its manifest batches with, if any.
    pub fn signing_key(&self) -> Option<&SiteKey> {
        self.manifest_writer().key()
    }

    /// Encrypts every recording shipped from now on to `sealing`'s recipients
    /// ([`seal`](super::seal)). Returns `false` (and changes nothing) if recipients were set.
    pub fn set_sealing(&self, sealing: Sealing) -> bool {
        self.manifest_writer().set_sealing(std::sync::Arc::new(sealing))
    }

    /// The recipients this target encrypts to, if any.
    pub fn sealing(&self) -> Option<&Sealing> {
        self.manifest_writer().sealing().map(|s| &**s)
    }

    /// The manifest writer of this target.
    pub(crate) fn manifest_writer(&self) -> &Writer {
        match self {
            Target::LocalDir(dir) => dir.manifest_writer(),
            Target::S3(s3) => s3.manifest_writer(),
        }
    }
}

/// Runs `f` on the blocking thread pool.
async fn blocking<T: Send + 'static>(
    dir: &LocalDir,
    f: impl FnOnce() -> Result<T, ShipError> + Send + 'static,
) -> Result<T, ShipError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(ShipError::Internal(format!("reading archive {} did not finish: {e}", dir.dir().display()))),
    }
}

impl LocalDir {
    fn list_blocking(&self, prefix: &str, after: Option<&str>) -> Result<Vec<(String, u64)>, ShipError> {
        let rel = prefix.trim_end_matches('/');
        if !rel.is_empty() && !plain_path(rel) {
            return Err(self.invalid_key(prefix));
        }
        let mut out = Vec::new();
        let mut stack = vec![self.dir().join(rel)];
        while let Some(dir) = stack.pop() {
            let items = match fs::read_dir(&dir) {
                Ok(items) => items,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.archive_err("list", &dir, e)),
            };
            for item in items {
                let item = item.map_err(|e| self.archive_err("list", &dir, e))?;
                let path = item.path();
                // Another writer's temporary copy, renamed or removed any moment: not an object.
                if item.file_name().to_str().is_some_and(is_part_name) {
                    continue;
                }
                // Listed before: not even inspected (a directory's type comes with its name).
                if let Some(after) = after
                    && item.file_type().is_ok_and(|t| t.is_file())
                    && path.strip_prefix(self.dir()).is_ok_and(|rel| rel.to_string_lossy().as_ref() <= after)
                {
                    continue;
                }
                let meta = match fs::symlink_metadata(&path) {
                    Ok(meta) => meta,
                    // Gone since the directory was read (another writer's rename): not there.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(self.archive_err("inspect", &path, e)),
                };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                if let Ok(rel) = path.strip_prefix(self.dir()) {
                    out.push((rel.to_string_lossy().into_owned(), meta.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// `read` of the object `key`'s file; `None` if there is none.
    fn read_object<T>(&self, key: &str, read: impl FnOnce(&Path) -> io::Result<T>) -> Result<Option<T>, ShipError> {
        if !plain_path(key) {
            return Err(self.invalid_key(key));
        }
        let path = self.dir().join(key);
        match read(&path) {
            Ok(got) => Ok(Some(got)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.archive_err("read", &path, e)),
        }
    }

    fn fetch_blocking(&self, key: &str) -> Result<Option<Vec<u8>>, ShipError> {
        self.read_object(key, |path| fs::read(path))
    }

    fn hash_blocking(&self, key: &str) -> Result<Option<(String, u64)>, ShipError> {
        self.read_object(key, filehash::hash_file)
    }

    fn download_blocking(&self, key: &str, dest: &Path) -> Result<Option<(String, u64)>, ShipError> {
        let Some(from) = self.read_object(key, |path| File::open(path))? else { return Ok(None) };
        let to = File::create(dest).map_err(|e| ShipError::Download { path: dest.to_owned(), source: e })?;
        match filehash::copy_hashed(from, to) {
            Ok(copied) => Ok(Some(copied)),
            Err(filehash::CopyError::Read(e)) => Err(self.archive_err("read", &self.dir().join(key), e)),
            Err(filehash::CopyError::Write(e)) => Err(ShipError::Download { path: dest.to_owned(), source: e }),
        }
    }

    fn create_blocking(&self, key: &str, body: &[u8]) -> Result<Created, ShipError> {
        if !plain_path(key) {
            return Err(self.invalid_key(key));
        }
        let rel = Path::new(key);
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.dir().join(parent);
        create_dirs_durable(&StdFs, self.dir(), parent).map_err(|e| self.archive_err("create directory", &dir, e))?;
        let dest = self.dir().join(rel);
        let name = rel.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.part-{:016x}", random_u64()));
        let written = File::create_new(&tmp)
            .and_then(|mut f| f.write_all(body).and_then(|()| f.sync_all()))
            .map_err(|e| self.archive_err("write", &tmp, e));
        let linked = written.and_then(|()| match fs::hard_link(&tmp, &dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.archive_err("publish", &dest, e)),
        });
        let _ = fs::remove_file(&tmp);
        if linked? {
            sync_dir(&StdFs, &dir).map_err(|e| self.archive_err("sync directory", &dir, e))?;
            return Ok(Created::New);
        }
        match fs::read(&dest) {
            Ok(there) if there == body => Ok(Created::Identical),
            Ok(_) => Ok(Created::Taken),
            Err(e) => Err(self.archive_err("read", &dest, e)),
        }
    }

    pub(super) fn invalid_key(&self, key: &str) -> ShipError {
        ShipError::Archive {
            target: self.name().to_owned(),
            op: "read",
            path: self.dir().join(key.replace("..", "_")),
            source: io::Error::new(io::ErrorKind::InvalidInput, format!("{key:?} is not a plain relative path")),
        }
    }
}
