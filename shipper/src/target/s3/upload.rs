//! Shipping one entry to an [`S3Target`]: choosing the key, uploading (single or multipart)
//! with conditional create and checksums, verifying, and the manifest line. The rules are in the
//! [module documentation](super).
//!
//! Requests per recording in the usual case (nothing under its key yet): one `HEAD` of the call
//! record's key, then per file a conditional `PUT` and a confirming `HEAD`, then a share of one
//! manifest batch. Each file is read and hashed once, just before its upload.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Method;
use sha2::{Digest, Sha256};

use super::client::Req;
use super::{Inner, ObjectInfo, S3Error, S3Target, hex_to_base64};
use crate::faults::CrashPoint;
use crate::spool::{Entry, EntryFile, Spool, SpoolError};
use crate::target::{Outgoing, ShipError, ShipSlot, Shipment};
use crate::target::{Target, manifest};

/// How many `~N` suffixes to try before giving up on a key.
const MAX_SUFFIX: u32 = 1000;

/// What is under an object key, compared with the file meant to go there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not looked at: the file goes by conditional create, and a `412` is looked into then.
    Unchecked,
    Free,
    Same,
    Taken,
}

/// What a conditional create did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Put {
    /// The object was created and verified.
    Created,
    /// An identical object was already there.
    Identical,
    /// Something else is under the key (or the store refused the create and holds nothing).
    Taken,
}

pub(super) async fn ship(
    t: &S3Target,
    spool: &Spool,
    entry: &Entry,
    out: &Outgoing,
    ship_slot: &ShipSlot,
) -> Result<Shipment, ShipError> {
    let faults = Arc::clone(spool.faults());
    let crashed = |e| ShipError::from(SpoolError::io("ship", spool.root(), e));
    faults.alive().map_err(crashed)?;
    let files = &out.files;
    let (mut key, mut slots, mut diverted) = first_plan(t, &out.key, files).await?;
    let inner = &t.inner;
    // A sealed recording's objects say nothing of the call.
    let call_id = entry.summary.get("call_id").and_then(|v| v.as_str()).filter(|_| !out.sealed()).map(header_safe);
    let shipment = 'plan: loop {
        let mut shipment = Shipment {
            location: format!("s3://{}/{}{key}", inner.bucket, inner.base),
            files_copied: 0,
            files_present: 0,
            bytes_copied: 0,
            diverted: diverted.clone(),
        };
        for ((file, source), &slot) in files.iter().zip(&slots) {
            if slot == Slot::Same {
                shipment.files_present += 1;
                continue;
            }
            let object_key = t.object_key(&key, &file.ext);
            let meta =
                Meta { sha256: &file.sha256, call_id: call_id.as_deref(), content_type: content_type(&file.ext) };
            let put = if file.size > inner.multipart_threshold {
                multipart(t, file, source, &object_key, &meta).await?
            } else {
                let data = read_verified(file, source).await?;
                put_verified(t, &object_key, data, file.size, &meta).await?
            };
            match put {
                Put::Created => {
                    shipment.files_copied += 1;
                    shipment.bytes_copied += file.size;
                }
                Put::Identical => shipment.files_present += 1,
                // Checked beforehand and taken since: another writer; the next attempt moves on.
                Put::Taken if slot != Slot::Unchecked => {
                    return Err(ShipError::Conflict {
                        target: t.name().to_owned(),
                        path: PathBuf::from(inner.client.resource(Some(&object_key))),
                    });
                }
                // Not checked, and the key holds other content: look at every file, as when the
                // call record is there already, and start again with what that finds.
                Put::Taken => {
                    (key, slots, diverted) = resolve_key(t, &out.key, files).await?;
                    continue 'plan;
                }
            }
            faults.hit(CrashPoint::ShipAfterUpload).map_err(crashed)?;
        }
        break shipment;
    };
    // Every object is stored and verified; what is left is waiting for the manifest batch, which
    // needs no slot of its own.
    ship_slot.release();
    faults.hit(CrashPoint::ShipBeforeManifest).map_err(crashed)?;
    let target = Target::S3(t.clone());
    let line = manifest::line(&target, entry, &key, out);
    manifest::Writer::append(&target, line).await?;
    Ok(shipment)
}

/// The first plan for the entry. The call record (the last file) is uploaded last by every
/// writer, so when nothing is under its key no complete recording holds the entry's key: every
/// file goes there by conditional create, and a `412` is looked into when it comes (one `HEAD`
/// instead of one per file). When the call record's key is taken, [`resolve_key`] checks every
/// file first.
async fn first_plan(t: &S3Target, key: &str, files: &[(EntryFile, PathBuf)]) -> Result<Plan, ShipError> {
    let Some((last, _)) = files.last() else {
        return Ok((key.to_owned(), Vec::new(), None));
    };
    let probe = t.inner.head(&t.object_key(key, &last.ext)).await.map_err(|e| t.store_err(e))?;
    if probe.is_none() {
        return Ok((key.to_owned(), vec![Slot::Unchecked; files.len()], None));
    }
    resolve_key(t, key, files).await
}

/// A plan: the key to store the entry under, per file what is there, and the object that held
/// other content under the entry's own key, if any.
type Plan = (String, Vec<Slot>, Option<String>);

/// The key to store the entry under: its own if every object is free or identical, else the
/// first free `<key>~N`; and, per file, what is there.
async fn resolve_key(t: &S3Target, key: &str, files: &[(EntryFile, PathBuf)]) -> Result<Plan, ShipError> {
    let mut first_taken = None;
    for n in 1..=MAX_SUFFIX {
        let candidate = if n == 1 { key.to_owned() } else { format!("{key}~{n}") };
        let mut slots = Vec::with_capacity(files.len());
        for (file, _) in files {
            let object_key = t.object_key(&candidate, &file.ext);
            let info = t.inner.head(&object_key).await.map_err(|e| t.store_err(e))?;
            let slot = match info {
                None => Slot::Free,
                Some(info) if info.matches(&file.sha256, file.size) => Slot::Same,
                Some(_) => Slot::Taken,
            };
            if slot == Slot::Taken {
                first_taken.get_or_insert(object_key);
                break;
            }
            slots.push(slot);
        }
        if slots.len() == files.len() {
            if let Some(taken) = &first_taken {
                tracing::error!(target_name = %t.name(), key, stored_as = %candidate, damaged = %taken,
                    "the bucket holds a different object under this key: damaged or replaced; it is left as it is, the recording is stored under the other key — run `callvault archive verify`");
            }
            let diverted = first_taken.as_deref().map(|k| t.inner.client.resource(Some(k)));
            return Ok((candidate, slots, diverted));
        }
    }
    let path = PathBuf::from(t.inner.client.resource(first_taken.as_deref()));
    Err(ShipError::Conflict { target: t.name().to_owned(), path })
}

/// Metadata of an uploaded object.
#[derive(Debug)]
pub(super) struct Meta<'a> {
    pub(super) sha256: &'a str,
    pub(super) call_id: Option<&'a str>,
    pub(super) content_type: &'static str,
}

impl Inner {
    /// The headers every new object gets: type, metadata, object lock.
    fn object_headers<'r>(&self, mut req: Req<'r>, meta: &Meta<'_>) -> Req<'r> {
        req = req.header("content-type", meta.content_type).header("x-amz-meta-sha256", meta.sha256);
        if let Some(call_id) = meta.call_id {
            req = req.header("x-amz-meta-call-id", call_id);
        }
        if let Some(lock) = &self.object_lock {
            let until =
                chrono::Utc::now() + chrono::Duration::from_std(lock.retention).unwrap_or(chrono::Duration::MAX / 2);
            req = req
                .header("x-amz-object-lock-mode", lock.mode.as_str())
                .header("x-amz-object-lock-retain-until-date", until.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        req
    }

    /// Checks with `HEAD` that `key` holds `size` bytes with checksum `checksum` (base64, or the
    /// multipart form `…-N`), and the configured object lock.
    async fn verify(&self, key: &str, size: u64, sha256: &str, checksum: &str) -> Result<(), S3Error> {
        let resource = self.client.resource(Some(key));
        let verify = |problem: String| S3Error::Verify { resource: resource.clone(), problem };
        let info = self.head(key).await?.ok_or_else(|| verify("no object under this key".into()))?;
        if info.size != size {
            return Err(verify(format!("{} bytes instead of {size}", info.size)));
        }
        match &info.checksum_sha256 {
            Some(sum) if sum != checksum => {
                return Err(verify(format!("SHA-256 checksum {sum} instead of {checksum}")));
            }
            Some(_) => {}
            None if info.meta_sha256.as_deref() != Some(sha256) => {
                return Err(verify("neither the expected checksum nor the expected sha256 metadata".into()));
            }
            None => {}
        }
        if let Some(lock) = &self.object_lock
            && (info.lock_mode.as_deref() != Some(lock.mode.as_str()) || info.lock_until.is_none())
        {
            return Err(S3Error::Unsupported {
                resource,
                problem: format!(
                    "the store did not apply the requested object lock ({}); create the bucket with object lock enabled, or turn object lock off",
                    lock.mode.as_str()
                ),
            });
        }
        Ok(())
    }

    /// What a conditional create that met an object found there: identical counts as stored.
    async fn existing(&self, target: &S3Target, key: &str, sha256: &str, size: u64) -> Result<Put, ShipError> {
        match self.head(key).await.map_err(|e| target.store_err(e))? {
            Some(info) if info.matches(sha256, size) => Ok(Put::Identical),
            _ => Ok(Put::Taken),
        }
    }
}

/// Uploads `data` (whose SHA-256 is `meta.sha256`) to `key` unless something is there, then
/// verifies it with a `HEAD`.
pub(super) async fn put_verified(
    t: &S3Target,
    key: &str,
    data: Vec<u8>,
    size: u64,
    meta: &Meta<'_>,
) -> Result<Put, ShipError> {
    let inner = &t.inner;
    let checksum = hex_to_base64(meta.sha256).unwrap_or_default();
    let req = Req::new("upload", Method::PUT, Some(key))
        .header("if-none-match", "*")
        .header("x-amz-checksum-sha256", checksum.clone());
    let req = inner.object_headers(req, meta).body(data, Some(meta.sha256.to_owned()));
    let resp = inner.client.send(req).await.map_err(|e| t.store_err(e))?;
    match resp.status {
        200..=299 => {}
        412 => return inner.existing(t, key, meta.sha256, size).await,
        _ => return Err(t.store_err(resp.error())),
    }
    inner.verify(key, size, meta.sha256, &checksum).await.map_err(|e| t.store_err(e))?;
    Ok(Put::Created)
}

/// Uploads a large file in parts; aborts the upload on failure.
async fn multipart(
    t: &S3Target,
    file: &EntryFile,
    source: &Path,
    key: &str,
    meta: &Meta<'_>,
) -> Result<Put, ShipError> {
    let inner = &t.inner;
    let req = Req::new("start multipart upload", Method::POST, Some(key))
        .query("uploads", "")
        .header("x-amz-checksum-algorithm", "SHA256");
    let resp = inner.client.send(inner.object_headers(req, meta)).await.and_then(|r| r.ok());
    let resp = resp.map_err(|e| t.store_err(e))?;
    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct InitiateMultipartUploadResult {
        upload_id: String,
    }
    let upload_id = resp.xml::<InitiateMultipartUploadResult>().map_err(|e| t.store_err(e))?.upload_id;
    let result = multipart_parts(t, file, source, key, &upload_id).await;
    if !matches!(result, Ok(Put::Created)) {
        let abort = Req::new("abort multipart upload", Method::DELETE, Some(key)).query("uploadId", &upload_id);
        match inner.client.send(abort).await.and_then(|r| r.ok()) {
            Ok(_) => {}
            Err(e) => tracing::warn!(target_name = %t.name(), key, error = %e,
                "cannot abort an unfinished multipart upload; a lifecycle rule should remove it"),
        }
    }
    result
}

async fn multipart_parts(
    t: &S3Target,
    file: &EntryFile,
    source: &Path,
    key: &str,
    upload_id: &str,
) -> Result<Put, ShipError> {
    let inner = &t.inner;
    let part_size = inner.part_size;
    let mut whole = Some(Sha256::new());
    let mut parts: Vec<(u32, String, String)> = Vec::new();
    let mut part_hashes: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut number = 0u32;
    while offset < file.size {
        number += 1;
        let len = part_size.min(file.size - offset);
        let (path, hasher) = (source.to_owned(), whole.take().unwrap_or_default());
        let read = tokio::task::spawn_blocking(move || read_part(&path, offset, len, hasher)).await;
        let (data, part_sha, hasher) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Err(ShipError::Source { path: source.to_owned(), source: e }),
            Err(e) => return Err(ShipError::Internal(format!("reading {}: {e}", source.display()))),
        };
        whole = Some(hasher);
        let raw = hex::decode(&part_sha).unwrap_or_default();
        part_hashes.extend_from_slice(&raw);
        let part_b64 = hex_to_base64(&part_sha).unwrap_or_default();
        let req = Req::new("upload part", Method::PUT, Some(key))
            .query("partNumber", &number.to_string())
            .query("uploadId", upload_id)
            .header("x-amz-checksum-sha256", part_b64.clone())
            .body(data, Some(part_sha));
        let resp = inner.client.send(req).await.and_then(|r| r.ok()).map_err(|e| t.store_err(e))?;
        let etag = resp
            .header("etag")
            .map(str::to_owned)
            .ok_or_else(|| t.store_err(resp.protocol("part upload answer without ETag".into())))?;
        parts.push((number, etag, part_b64));
        offset += len;
    }
    let actual = hex::encode(whole.unwrap_or_default().finalize());
    if actual != file.sha256 {
        return Err(ShipError::SourceMismatch { path: source.to_owned(), expected: file.sha256.clone(), actual });
    }
    let mut xml = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (n, etag, sum) in &parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag><ChecksumSHA256>{sum}</ChecksumSHA256></Part>",
            xml_escape(etag)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let req = Req::new("complete multipart upload", Method::POST, Some(key))
        .query("uploadId", upload_id)
        .header("if-none-match", "*")
        .header("content-type", "application/xml")
        .body(xml.into_bytes(), None);
    let resp = inner.client.send(req).await.map_err(|e| t.store_err(e))?;
    match resp.status {
        // A 200 may still carry an error document.
        200..=299 if !resp.body.windows(7).any(|w| w == b"<Error>") => {}
        200..=299 => return Err(t.store_err(resp.error())),
        412 => return inner.existing(t, key, &file.sha256, file.size).await,
        _ => return Err(t.store_err(resp.error())),
    }
    let composite =
        format!("{}-{}", hex_to_base64(&hex::encode(Sha256::digest(&part_hashes))).unwrap_or_default(), parts.len());
    let checked = inner.verify(key, file.size, &file.sha256, &composite).await;
    match checked {
        // Stores report the multipart checksum in different forms; size and metadata decide.
        Err(S3Error::Verify { .. }) => {
            let info = inner.head(key).await.map_err(|e| t.store_err(e))?;
            if !info.as_ref().is_some_and(|i| i.size == file.size && i.meta_sha256.as_deref() == Some(&file.sha256)) {
                return Err(t.store_err(checked.unwrap_err()));
            }
        }
        other => other.map_err(|e| t.store_err(e))?,
    }
    Ok(Put::Created)
}

/// Reads `len` bytes at `offset`, feeding them to `whole`; returns them with their SHA-256.
fn read_part(path: &Path, offset: u64, len: u64, mut whole: Sha256) -> std::io::Result<(Vec<u8>, String, Sha256)> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut data = vec![0u8; len as usize];
    file.read_exact(&mut data)?;
    whole.update(&data);
    let sha = hex::encode(Sha256::digest(&data));
    Ok((data, sha, whole))
}

/// Reads a spooled file whole and checks it against its entry.
async fn read_verified(file: &EntryFile, source: &Path) -> Result<Vec<u8>, ShipError> {
    let path = source.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        let data = std::fs::read(&path)?;
        let sha = hex::encode(Sha256::digest(&data));
        Ok::<_, std::io::Error>((data, sha))
    })
    .await;
    let (data, actual) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return Err(ShipError::Source { path: source.to_owned(), source: e }),
        Err(e) => return Err(ShipError::Internal(format!("reading {}: {e}", source.display()))),
    };
    if actual != file.sha256 || data.len() as u64 != file.size {
        return Err(ShipError::SourceMismatch { path: source.to_owned(), expected: file.sha256.clone(), actual });
    }
    Ok(data)
}

/// `Content-Type` of a recording file by its extension.
pub(super) fn content_type(ext: &str) -> &'static str {
    match ext {
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "json" => "application/json",
        "jsonl" => "application/x-ndjson",
        "pcap" => "application/vnd.tcpdump.pcap",
        _ => "application/octet-stream",
    }
}

/// A header value made of visible ASCII only (others become `_`).
fn header_safe(value: &str) -> String {
    value.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl ObjectInfo {
    /// Whether the object is locked.
    pub fn is_locked(&self) -> bool {
        self.lock_mode.is_some()
    }
}
