//! The call index: one SQLite file (`<data_dir>/index.sqlite`) with a row per recording, so
//! that the API can answer "the call from +44… at 10:32" without walking the archive.
//!
//! The index is derived data. Every row is made from a call record the finisher has just
//! entered into the spool ([`writer`]), and a missing, damaged or older-format index is rebuilt
//! from the record files the box still holds (the spool's `recordings/` and every local archive
//! directory, see [`Index::catch_up`]). Nothing is lost with it: the records themselves are in
//! the spool and the archive. The index only ever reads call records; it knows nothing of
//! capture, mixing or shipping.
//!
//! Writers: one thread ([`writer::IndexWriter`]). Readers: any number of read-only
//! connections ([`Reader`]), which SQLite's write-ahead log lets run beside the writer.

mod query;
mod schema;
pub mod writer;

use std::path::{Path, PathBuf};

use mixer::record::{CallRecord, StreamRecord};
use rusqlite::{Connection, OpenFlags, params};

pub use query::{Bucket, Found, Page, Reader, Search, SearchError, Stored};

/// The index file in a data directory.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("index.sqlite")
}

/// The calls of day `day` (`YYYY/MM/DD`) in the index at `path`, read-only: each one's key and
/// its record as written. For `archive verify`, which compares them with an archive.
pub fn recorded_on(path: &Path, day: &str) -> Result<Vec<(String, String)>, IndexError> {
    let sqlite = |error| IndexError::Sqlite { path: path.to_owned(), error };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
    let mut stmt = conn
        .prepare(
            "SELECT calls.key, records.json FROM calls JOIN records ON records.id = calls.id \
             WHERE calls.key >= ?1 AND calls.key < ?2 ORDER BY calls.key",
        )
        .map_err(sqlite)?;
    let (from, until) = (format!("{day}/"), format!("{day}0"));
    let rows = stmt.query_map(params![from, until], |r| Ok((r.get(0)?, r.get(1)?))).map_err(sqlite)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite)
}

/// What went wrong with the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite refused an operation.
    #[error("call index {path}: {error}")]
    Sqlite {
        /// The index file.
        path: PathBuf,
        /// SQLite's error (in the message, so not its source: a chain printed whole would name
        /// it twice).
        error: rusqlite::Error,
    },
    /// The damaged index could not be moved aside.
    #[error("call index {path}: cannot move the damaged index aside: {error}")]
    MoveAside {
        /// The index file.
        path: PathBuf,
        /// The file system's error (in the message, as above).
        error: std::io::Error,
    },
}

/// How [`Index::open`] found the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A readable index of this format.
    Existing,
    /// There was none: a new, empty one (fill it with [`Index::catch_up`]).
    Created,
    /// The file was damaged or of another format; it was moved to `moved_to` and a new, empty
    /// index created (fill it with [`Index::catch_up`]).
    Replaced {
        /// Why it was not usable.
        reason: String,
        /// Where the old file now is.
        moved_to: PathBuf,
    },
}

/// The index, opened for writing.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    conn: Connection,
}

/// One call, ready to be indexed: the searchable columns and the record's JSON.
#[derive(Debug, Clone)]
pub struct IndexedCall {
    row: Row,
    numbers: Vec<String>,
    json: String,
}

#[derive(Debug, Clone)]
struct Row {
    name: String,
    key: String,
    call_id: String,
    start_ns: i64,
    end_ns: i64,
    duration_s: f64,
    talk_s: Option<f64>,
    from_user: Option<String>,
    to_user: Option<String>,
    pai_user: Option<String>,
    state: String,
    end_reason: String,
    final_code: Option<u16>,
    codec_caller: Option<String>,
    codec_callee: Option<String>,
    mos_caller: Option<f64>,
    mos_callee: Option<f64>,
    loss_pct: Option<f64>,
    jitter_ms: Option<f64>,
    capture_complete: bool,
    audio_file: Option<String>,
    audio_duration_s: Option<f64>,
    evidence_file: Option<String>,
}

/// A record that cannot be indexed (its times are not RFC 3339).
#[derive(Debug, thiserror::Error)]
#[error("call record {key}: {what}")]
pub struct RecordError {
    key: String,
    what: String,
}

/// Parses an RFC 3339 time into Unix nanoseconds.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok()?.timestamp_nanos_opt()
}

/// Formats Unix nanoseconds as RFC 3339 (UTC, microseconds), the record's own format.
pub(crate) fn format_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl IndexedCall {
    /// The row for the recording stored under `key` (archive key without extension).
    pub fn from_record(key: &str, record: &CallRecord) -> Result<IndexedCall, RecordError> {
        let bad = |what: String| RecordError { key: key.to_owned(), what };
        let start_ns =
            parse_time(&record.start).ok_or_else(|| bad(format!("start {:?} is not a time", record.start)))?;
        let end_ns = parse_time(&record.end).ok_or_else(|| bad(format!("end {:?} is not a time", record.end)))?;
        let json = serde_json::to_string(record).map_err(|e| bad(e.to_string()))?;
        let worst = |side: &str, pick: fn(&StreamRecord) -> Option<f64>, max: bool| {
            record
                .streams
                .iter()
                .filter(|s| side.is_empty() || s.side == side)
                .filter_map(pick)
                .reduce(|a, b| if max { a.max(b) } else { a.min(b) })
        };
        let mos = |s: &StreamRecord| s.quality.as_ref().map(|q| q.mos);
        let mut numbers = Vec::new();
        for party in [Some(&record.from), Some(&record.to), record.asserted_identity.as_ref()].into_iter().flatten() {
            if let Some(user) = party.user.as_deref().filter(|u| !u.is_empty()) {
                numbers.push(user.to_owned());
                // "+44…" is also found by "44…".
                if let Some(bare) = user.strip_prefix('+').filter(|b| !b.is_empty()) {
                    numbers.push(bare.to_owned());
                }
            }
        }
        numbers.sort();
        numbers.dedup();
        let file_name = |f: &str| Path::new(f).file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(IndexedCall {
            row: Row {
                name: name_of(key).to_owned(),
                key: key.to_owned(),
                call_id: record.call_id.clone(),
                start_ns,
                end_ns,
                duration_s: record.duration_s,
                talk_s: record.talk_s,
                from_user: record.from.user.clone(),
                to_user: record.to.user.clone(),
                pai_user: record.asserted_identity.as_ref().and_then(|p| p.user.clone()),
                state: record.state.clone(),
                end_reason: record.end_reason.clone(),
                final_code: record.final_code,
                codec_caller: record.codecs.caller.clone(),
                codec_callee: record.codecs.callee.clone(),
                mos_caller: worst("caller", mos, false),
                mos_callee: worst("callee", mos, false),
                loss_pct: worst("", |s| Some(s.loss_pct), true),
                jitter_ms: worst("", |s| s.jitter_ms, true),
                capture_complete: record.capture_complete,
                audio_file: record.audio.as_ref().and_then(|a| file_name(&a.file)),
                audio_duration_s: record.audio.as_ref().map(|a| a.duration_s),
                evidence_file: record.evidence.as_ref().and_then(|e| file_name(&e.file)),
            },
            numbers,
            json,
        })
    }

    /// The call's id in the API: the recording's file name without extension.
    pub fn name(&self) -> &str {
        &self.row.name
    }
}

/// The last path component of an archive key: the recording's name.
pub fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

impl Index {
    /// Opens the index at `path`, creating it when missing and replacing it (moved aside, not
    /// deleted) when it is damaged or of another format.
    pub fn open(path: &Path) -> Result<(Index, Opened), IndexError> {
        let sqlite = |error| IndexError::Sqlite { path: path.to_owned(), error };
        if !path.exists() {
            return Ok((Index::create(path)?, Opened::Created));
        }
        let reason = match Connection::open(path) {
            Ok(conn) => match check(&conn) {
                Ok(()) => {
                    configure(&conn).map_err(sqlite)?;
                    return Ok((Index { path: path.to_owned(), conn }, Opened::Existing));
                }
                Err(reason) => reason,
            },
            Err(e) => e.to_string(),
        };
        let moved_to = path.with_extension("sqlite.damaged");
        std::fs::rename(path, &moved_to).map_err(|error| IndexError::MoveAside { path: path.to_owned(), error })?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(side));
        }
        Ok((Index::create(path)?, Opened::Replaced { reason, moved_to }))
    }

    fn create(path: &Path) -> Result<Index, IndexError> {
        let sqlite = |error| IndexError::Sqlite { path: path.to_owned(), error };
        let conn = Connection::open(path).map_err(sqlite)?;
        configure(&conn).map_err(sqlite)?;
        conn.execute_batch(schema::CREATE).map_err(sqlite)?;
        conn.pragma_update(None, "user_version", schema::VERSION).map_err(sqlite)?;
        Ok(Index { path: path.to_owned(), conn })
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds calls in one transaction; a call already indexed under the same name is replaced
    /// (a recording re-entered after a crash, or found again by a catch-up).
    pub fn insert(&mut self, calls: &[IndexedCall]) -> Result<(), IndexError> {
        let path = self.path.clone();
        let sqlite = |error| IndexError::Sqlite { path: path.clone(), error };
        let tx = self.conn.transaction().map_err(sqlite)?;
        {
            let mut old = tx.prepare_cached("SELECT id FROM calls WHERE name = ?1").map_err(sqlite)?;
            let mut forget = tx.prepare_cached("DELETE FROM parties WHERE call = ?1").map_err(sqlite)?;
            let mut call = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO calls (id, name, key, call_id, start_ns, end_ns, duration_s, talk_s, \
                     from_user, to_user, pai_user, state, end_reason, final_code, codec_caller, codec_callee, \
                     mos_caller, mos_callee, mos, loss_pct, jitter_ms, capture_complete, audio_file, \
                     audio_duration_s, evidence_file) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                     ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
                )
                .map_err(sqlite)?;
            let mut record =
                tx.prepare_cached("INSERT OR REPLACE INTO records (id, json) VALUES (?1, ?2)").map_err(sqlite)?;
            let mut party = tx
                .prepare_cached("INSERT OR IGNORE INTO parties (number, start_ns, call) VALUES (?1, ?2, ?3)")
                .map_err(sqlite)?;
            for c in calls {
                let r = &c.row;
                let id: Option<i64> = old.query_row([&r.name], |row| row.get(0)).ok();
                if let Some(id) = id {
                    forget.execute([id]).map_err(sqlite)?;
                }
                let mos = match (r.mos_caller, r.mos_callee) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                call.execute(params![
                    id,
                    r.name,
                    r.key,
                    r.call_id,
                    r.start_ns,
                    r.end_ns,
                    r.duration_s,
                    r.talk_s,
                    r.from_user,
                    r.to_user,
                    r.pai_user,
                    r.state,
                    r.end_reason,
                    r.final_code,
                    r.codec_caller,
                    r.codec_callee,
                    r.mos_caller,
                    r.mos_callee,
                    mos,
                    r.loss_pct,
                    r.jitter_ms,
                    r.capture_complete,
                    r.audio_file,
                    r.audio_duration_s,
                    r.evidence_file,
                ])
                .map_err(sqlite)?;
                let id = tx.last_insert_rowid();
                record.execute(params![id, c.json]).map_err(sqlite)?;
                for number in &c.numbers {
                    party.execute(params![number, r.start_ns, id]).map_err(sqlite)?;
                }
            }
        }
        tx.commit().map_err(sqlite)
    }

    /// Whether a recording of this name is indexed.
    pub fn contains(&self, name: &str) -> Result<bool, IndexError> {
        self.conn
            .prepare_cached("SELECT 1 FROM calls WHERE name = ?1")
            .and_then(|mut s| s.exists([name]))
            .map_err(|error| IndexError::Sqlite { path: self.path.clone(), error })
    }

    /// Number of indexed calls.
    pub fn len(&self) -> Result<u64, IndexError> {
        self.conn
            .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
            .map_err(|error| IndexError::Sqlite { path: self.path.clone(), error })
    }

    /// Whether the index holds no call.
    pub fn is_empty(&self) -> Result<bool, IndexError> {
        Ok(self.len()? == 0)
    }

    /// Indexes every call record under the given directories that is not indexed yet (the
    /// rebuild of a new index, and the catch-up after a crash between a recording entering the
    /// spool and its row being committed). A directory is walked recursively; its `*.json`
    /// files that are call records are indexed under their path relative to that directory.
    pub fn catch_up(&mut self, roots: &[PathBuf]) -> Result<CatchUp, IndexError> {
        let mut report = CatchUp::default();
        let mut batch: Vec<IndexedCall> = Vec::new();
        // Names taken by this walk (the same recording in the spool and an archive).
        let mut taken = std::collections::HashSet::new();
        for root in roots {
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let Ok(kind) = entry.file_type() else { continue };
                    if kind.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let Some(key) = record_key(root, &path) else { continue };
                    report.seen += 1;
                    if taken.contains(name_of(&key)) || self.contains(name_of(&key))? {
                        continue;
                    }
                    taken.insert(name_of(&key).to_owned());
                    match read_record(&path).and_then(|r| IndexedCall::from_record(&key, &r).map_err(|e| e.to_string()))
                    {
                        Ok(call) => batch.push(call),
                        Err(e) => {
                            report.unreadable += 1;
                            tracing::warn!(file = %path.display(), "not indexed: {e}");
                        }
                    }
                    if batch.len() >= 500 {
                        report.added += batch.len() as u64;
                        self.insert(&batch)?;
                        batch.clear();
                    }
                }
            }
        }
        report.added += batch.len() as u64;
        self.insert(&batch)?;
        Ok(report)
    }

    /// Lets SQLite's planner learn the data's shape (cheap; run after large changes).
    pub fn optimize(&self) -> Result<(), IndexError> {
        self.conn
            .execute_batch("PRAGMA optimize")
            .map_err(|error| IndexError::Sqlite { path: self.path.clone(), error })
    }
}

/// What [`Index::catch_up`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Call record files seen.
    pub seen: u64,
    /// Records newly indexed.
    pub added: u64,
    /// Record files that could not be read or parsed (logged).
    pub unreadable: u64,
}

/// The archive key of a record file: its path under `root` without `.json`, when it looks like
/// a recording (`…/<name>.json`, not a hidden or partial file).
fn record_key(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?.to_str()?;
    let key = rel.strip_suffix(".json")?;
    let name = name_of(key);
    if name.is_empty() || name.starts_with('.') || name.ends_with(".partial") {
        return None;
    }
    Some(key.to_owned())
}

fn read_record(path: &Path) -> Result<CallRecord, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| format!("not a call record: {e}"))
}

/// Settings every connection uses: write-ahead log (readers beside the writer), and a write
/// lost at power loss is acceptable — the index is derived, and catch-up restores it.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")
}

/// Why an existing file is not a usable index, if it is not.
fn check(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| e.to_string())?;
    if version != schema::VERSION {
        return Err(format!("index format {version}, this version reads {}", schema::VERSION));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('calls', 'records', 'parties')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if tables != 3 {
        return Err("tables are missing".into());
    }
    // Reading the first and last rows touches the b-trees' root and edge pages.
    conn.query_row("SELECT count(*) FROM (SELECT id FROM calls ORDER BY start_ns DESC LIMIT 1)", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// Opens a read-only connection (for [`Reader`]).
fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
