//! Audio and pcaps no longer on this box: once retention removed the local copies, the API
//! fetches the file from the first S3 archive of the configuration, checks it against the
//! SHA-256 its call record gives, and serves it (with HTTP Range) from a cache in the data
//! directory (`<data_dir>/cache/<key>.<ext>`, at most [`CACHE_MAX`] bytes, the least recently
//! fetched removed first). A copy that does not match its record is never served: the answer
//! is 502 and the mismatch is logged as an error.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use shipper::{S3Target, Target};

use super::Failure;

/// Bytes the cache of fetched files may hold.
pub(super) const CACHE_MAX: u64 = 1 << 30;

/// The S3 archive files are fetched from.
#[derive(Debug)]
pub(crate) struct Remote {
    target: S3Target,
    cache: PathBuf,
    /// One fetch at a time (a file asked for twice is fetched once).
    fetching: tokio::sync::Mutex<()>,
}

impl Remote {
    /// The first S3 archive of `config`, if any (a target that cannot be built is logged and
    /// left out: local files are still served).
    pub(crate) fn from_config(config: &crate::config::Config) -> Option<Remote> {
        let archives = config.archives();
        let names = crate::config::archive_names(&archives);
        let (archive, name) = archives.iter().zip(&names).find(|(a, _)| a.is_s3())?;
        match crate::targets::build_target(archive, name) {
            Ok(Target::S3(target)) => {
                Some(Remote { target, cache: config.storage.data_dir.join("cache"), fetching: Default::default() })
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!("the API cannot fetch from the archive {name:?}: {e:#}");
                None
            }
        }
    }

    /// `<key>.<ext>` in the cache, fetched and checked against `sha256` if it is not there yet.
    pub(crate) async fn fetch(&self, key: &str, ext: &str, sha256: &str) -> Result<PathBuf, Failure> {
        let path = self.cache.join(format!("{key}.{ext}"));
        if path.is_file() {
            return Ok(path);
        }
        let _one = self.fetching.lock().await;
        if path.is_file() {
            return Ok(path);
        }
        let object = self.target.object_key(key, ext);
        let place = format!("s3://{}/{object}", self.target.bucket());
        let bad_gateway = |what: String| {
            tracing::error!("{what}");
            Failure(StatusCode::BAD_GATEWAY, what)
        };
        match self.target.head(&object).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Failure(
                    StatusCode::NOT_FOUND,
                    format!("{key}.{ext} is no longer on this box, and the archive has no {place}"),
                ));
            }
            Err(e) => return Err(bad_gateway(format!("cannot reach the archive for {place}: {e}"))),
        }
        let cannot_cache = |e: std::io::Error| {
            Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot cache {key}.{ext} in {}: {e}", self.cache.display()),
            )
        };
        std::fs::create_dir_all(path.parent().expect("under the cache")).map_err(cannot_cache)?;
        // Copied to a temporary name as it arrives, hashed on the way; renamed once it checks out.
        let tmp = path.with_extension(format!("{ext}.part"));
        let fetched = self.target.download(&object, &tmp).await;
        let checked = match fetched {
            Ok(Some((got, size))) if got == sha256 => std::fs::rename(&tmp, &path).map(|()| size).map_err(cannot_cache),
            Ok(Some((got, _))) => Err(bad_gateway(format!(
                "the archive's copy {place} does not match its call record (SHA-256 {got}, the record says \
                 {sha256}): not served"
            ))),
            Ok(None) => Err(bad_gateway(format!("{place} went away while it was fetched"))),
            Err(e) => Err(bad_gateway(format!("cannot fetch {place}: {e}"))),
        };
        if checked.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        let size = checked?;
        tracing::info!("fetched {place} ({size} bytes, SHA-256 checked) for the API");
        prune(&self.cache, CACHE_MAX, &path);
        Ok(path)
    }
}

/// Removes the least recently written files under `dir` until at most `max` bytes are left,
/// never `keep` (the file just fetched, to be served, larger than `max` as it may be).
fn prune(dir: &Path, max: u64, keep: &Path) {
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut total: u64 = files.iter().map(|(_, size, _)| size).sum();
    files.sort_by_key(|(_, _, modified)| *modified);
    for (path, size, _) in files {
        if total <= max {
            break;
        }
        if path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= size;
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            walk(&e.path(), out);
        } else {
            out.push((e.path(), meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_newest_files_within_its_size() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in ["a/1.wav", "b/2.wav", "b/3.wav"].iter().enumerate() {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, vec![0u8; 100]).unwrap();
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
        }
        prune(dir.path(), 250, &dir.path().join("b/3.wav"));
        assert!(!dir.path().join("a/1.wav").exists());
        assert!(dir.path().join("b/2.wav").exists() && dir.path().join("b/3.wav").exists());
        // The file just fetched stays, whatever its size: the older ones go.
        let big = dir.path().join("c/4.wav");
        std::fs::create_dir_all(big.parent().unwrap()).unwrap();
        std::fs::write(&big, vec![0u8; 400]).unwrap();
        std::fs::File::options().write(true).open(&big).unwrap().set_modified(std::time::UNIX_EPOCH).unwrap();
        prune(dir.path(), 250, &big);
        assert!(big.exists());
        assert!(!dir.path().join("b/2.wav").exists() && !dir.path().join("b/3.wav").exists());
    }
}
