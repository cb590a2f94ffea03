//! Searching the index: filters, newest first, paged by a cursor (the last call's start and
//! row id), so a page costs the same however deep it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Deserializer, Serialize};

use super::{format_time, open_read_only, parse_time};

/// Calls per page when the search does not say.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// The most calls one page returns.
pub(crate) const MAX_LIMIT: u32 = 1000;

/// A search. Every filter is optional; they all apply together. It is also the API's query
/// string (`GET /api/v1/calls?number=...&since=...`): the field names are the parameters, the
/// times RFC 3339.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Search {
    /// Calls that started at or after this time (Unix ns; `since` in RFC 3339).
    #[serde(rename = "since", deserialize_with = "since")]
    pub since_ns: Option<i64>,
    /// Calls that started before this time (Unix ns; `until` in RFC 3339).
    #[serde(rename = "until", deserialize_with = "until")]
    pub until_ns: Option<i64>,
    /// A number (user part) prefix, on any side: From, To or P-Asserted-Identity.
    pub number: Option<String>,
    /// A From user prefix.
    pub from: Option<String>,
    /// A To user prefix.
    pub to: Option<String>,
    /// The record's `state`.
    pub state: Option<String>,
    /// The record's `end_reason`.
    pub end_reason: Option<String>,
    /// Calls whose worse direction's MOS is below this.
    pub mos_below: Option<f64>,
    /// Only calls whose capture was incomplete (`Some(true)`), or complete (`Some(false)`).
    pub incomplete: Option<bool>,
    /// Calls per page (at most [`MAX_LIMIT`]; 0: [`DEFAULT_LIMIT`]).
    pub limit: u32,
    /// Continue after this cursor (from the previous page's `next`).
    pub cursor: Option<String>,
}

fn since<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    time("since", d)
}

fn until<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    time("until", d)
}

/// An RFC 3339 parameter `name` as Unix ns.
fn time<'de, D: Deserializer<'de>>(name: &str, d: D) -> Result<Option<i64>, D::Error> {
    let text = String::deserialize(d)?;
    parse_time(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("{name}={text:?} is not an RFC 3339 time (e.g. 2026-12-03T10:32:00Z)"))
    })
}

/// A search the index cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A parameter is wrong (says which and why).
    #[error("{0}")]
    Invalid(String),
    /// SQLite failed.
    #[error("call index {path}: {error}")]
    Sqlite {
        /// The index file.
        path: PathBuf,
        /// SQLite's error (in the message, so not its source: a chain printed whole would name
        /// it twice).
        error: rusqlite::Error,
    },
}

/// One call in a search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// The call's id in the API (the recording's name).
    pub id: String,
    /// Archive key (without extension).
    pub key: String,
    /// SIP Call-ID.
    pub call_id: String,
    /// First INVITE (RFC 3339).
    pub start: String,
    /// End of the call (RFC 3339).
    pub end: String,
    /// `end - start`, seconds.
    pub duration_s: f64,
    /// Answered part, seconds.
    pub talk_s: Option<f64>,
    /// From user.
    pub from: Option<String>,
    /// To user.
    pub to: Option<String>,
    /// P-Asserted-Identity user.
    pub asserted_identity: Option<String>,
    /// Last dialog state.
    pub state: String,
    /// Why the call ended.
    pub end_reason: String,
    /// Final response code to the INVITE.
    pub final_code: Option<u16>,
    /// Codec per direction.
    pub codecs: Sides<Option<String>>,
    /// MOS per direction (the worst of the side's streams).
    pub mos: Sides<Option<f64>>,
    /// Worst stream's packet loss, percent.
    pub loss_pct: Option<f64>,
    /// Worst stream's jitter, ms.
    pub jitter_ms: Option<f64>,
    /// Whether the capture saw everything it needed.
    pub capture_complete: bool,
    /// Audio length, seconds, when there is audio.
    pub audio_duration_s: Option<f64>,
    /// Whether the call's own packets were kept.
    pub evidence: bool,
}

/// A value per direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sides<T> {
    /// The caller's.
    pub caller: T,
    /// The callee's.
    pub callee: T,
}

/// One page of results, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The calls.
    pub calls: Vec<Found>,
    /// Cursor for the next page; absent on the last one.
    pub next: Option<String>,
}

/// Buckets one histogram may have.
pub(crate) const MAX_BUCKETS: i64 = 1440;

/// Calls that started in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// The bucket's start (RFC 3339).
    pub start: String,
    /// Calls that started in it.
    pub calls: u64,
    /// Of those, per state.
    pub states: BTreeMap<String, u64>,
    /// Average MOS (worse direction) of those with quality.
    pub mos_avg: Option<f64>,
}

/// One call as stored: where its files are and its record as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Archive key (without extension).
    pub key: String,
    /// The audio file's name, when there is audio.
    pub audio_file: Option<String>,
    /// The evidence pcap's name, when kept.
    pub evidence_file: Option<String>,
    /// The call record (JSON).
    pub record: String,
}

/// Read-only access for the API: a few connections, reused.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

const COLUMNS: &str = "c.id, c.name, c.key, c.call_id, c.start_ns, c.end_ns, c.duration_s, c.talk_s, c.from_user, \
    c.to_user, c.pai_user, c.state, c.end_reason, c.final_code, c.codec_caller, c.codec_callee, c.mos_caller, \
    c.mos_callee, c.loss_pct, c.jitter_ms, c.capture_complete, c.audio_duration_s, c.evidence_file";

impl Reader {
    /// A reader of the index at `path` (connections are opened on first use).
    pub fn new(path: &Path) -> Reader {
        Reader { path: path.to_owned(), idle: Mutex::new(Vec::new()) }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, SearchError> {
        let sqlite = |error| SearchError::Sqlite { path: self.path.clone(), error };
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_read_only(&self.path).map_err(sqlite)?,
        };
        let out = f(&conn).map_err(sqlite);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < 4 {
            idle.push(conn);
        }
        out
    }

    /// Runs a search.
    pub fn search(&self, search: &Search) -> Result<Page, SearchError> {
        let mut rows: Vec<(i64, i64, Found)> = Vec::new();
        let mut limit = 0;
        self.with(|conn| {
            let common = match search.number.as_deref().filter(|n| !n.is_empty()) {
                Some(n) => is_common(conn, n)?,
                None => false,
            };
            let (sql, args, l) =
                to_sql(search, common).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            limit = l;
            let mut stmt = conn.prepare_cached(&sql)?;
            rows = stmt.query_map(rusqlite::params_from_iter(args), found)?.collect::<rusqlite::Result<_>>()?;
            Ok(())
        })
        .map_err(|e| match e {
            SearchError::Sqlite { error: rusqlite::Error::ToSqlConversionFailure(inner), .. } => {
                match inner.downcast::<SearchError>() {
                    Ok(e) => *e,
                    Err(inner) => SearchError::Invalid(inner.to_string()),
                }
            }
            e => e,
        })?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|(id, start_ns, _)| format!("{start_ns}.{id}"))
        } else {
            None
        };
        Ok(Page { calls: rows.into_iter().map(|(_, _, f)| f).collect(), next })
    }

    /// One call by id, with its record.
    pub fn get(&self, id: &str) -> Result<Option<Stored>, SearchError> {
        self.with(|conn| {
            conn.prepare_cached(
                "SELECT c.key, c.audio_file, c.evidence_file, r.json FROM calls c JOIN records r ON r.id = c.id \
                 WHERE c.name = ?1",
            )?
            .query_row([id], |r| {
                Ok(Stored { key: r.get(0)?, audio_file: r.get(1)?, evidence_file: r.get(2)?, record: r.get(3)? })
            })
            .optional()
        })
    }

    /// Calls per time bucket by state, with the average MOS (worse direction) of each bucket,
    /// over `[since_ns, until_ns)`: the dashboard's "calls per minute" and "quality over time".
    pub fn histogram(&self, since_ns: i64, until_ns: i64, bucket_ns: i64) -> Result<Vec<Bucket>, SearchError> {
        if bucket_ns <= 0 || until_ns <= since_ns {
            return Err(SearchError::Invalid("the time range is empty or the bucket is not positive".into()));
        }
        let n = (until_ns - since_ns + bucket_ns - 1) / bucket_ns;
        if n > MAX_BUCKETS {
            return Err(SearchError::Invalid(format!("{n} buckets asked for; at most {MAX_BUCKETS}")));
        }
        let mut buckets: Vec<Bucket> = (0..n)
            .map(|i| Bucket {
                start: format_time(since_ns + i * bucket_ns),
                calls: 0,
                states: BTreeMap::new(),
                mos_avg: None,
            })
            .collect();
        let mut mos_sums = vec![(0.0f64, 0u64); buckets.len()];
        let rows: Vec<(i64, String, u64, Option<f64>, u64)> = self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT (start_ns - ?1) / ?3, state, count(*), sum(mos), count(mos) FROM calls \
                 WHERE start_ns >= ?1 AND start_ns < ?2 GROUP BY 1, 2",
            )?;
            stmt.query_map([since_ns, until_ns, bucket_ns], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })?;
        for (b, state, calls, mos_sum, mos_n) in rows {
            let Some(bucket) = usize::try_from(b).ok().and_then(|b| buckets.get_mut(b)) else { continue };
            bucket.calls += calls;
            *bucket.states.entry(state).or_default() += calls;
            let sums = &mut mos_sums[b as usize];
            sums.0 += mos_sum.unwrap_or(0.0);
            sums.1 += mos_n;
        }
        for (bucket, (sum, n)) in buckets.iter_mut().zip(mos_sums) {
            bucket.mos_avg = (n > 0).then(|| (sum / n as f64 * 1000.0).round() / 1000.0);
        }
        Ok(buckets)
    }

    /// Number of indexed calls.
    pub fn count(&self) -> Result<u64, SearchError> {
        self.with(|conn| conn.query_row("SELECT count(*) FROM calls", [], |r| r.get(0)))
    }
}

fn found(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, Found)> {
    Ok((
        r.get(0)?,
        r.get(4)?,
        Found {
            id: r.get(1)?,
            key: r.get(2)?,
            call_id: r.get(3)?,
            start: format_time(r.get(4)?),
            end: format_time(r.get(5)?),
            duration_s: r.get(6)?,
            talk_s: r.get(7)?,
            from: r.get(8)?,
            to: r.get(9)?,
            asserted_identity: r.get(10)?,
            state: r.get(11)?,
            end_reason: r.get(12)?,
            final_code: r.get(13)?,
            codecs: Sides { caller: r.get(14)?, callee: r.get(15)? },
            mos: Sides { caller: r.get(16)?, callee: r.get(17)? },
            loss_pct: r.get(18)?,
            jitter_ms: r.get(19)?,
            capture_complete: r.get(20)?,
            audio_duration_s: r.get(21)?,
            evidence: r.get::<_, Option<String>>(22)?.is_some(),
        },
    ))
}

/// The smallest string greater than every string that starts with `prefix`, if any.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut code = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&code) {
            code = 0xE000;
        }
        if let Some(next) = char::from_u32(code) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `column >= prefix AND column < prefix_end(prefix)`.
fn prefix_range(column: &str, prefix: &str, sql: &mut String, args: &mut Vec<Value>) {
    sql.push_str(&format!(" AND {column} >= ?"));
    args.push(Value::Text(prefix.to_owned()));
    if let Some(end) = prefix_end(prefix) {
        sql.push_str(&format!(" AND {column} < ?"));
        args.push(Value::Text(end));
    }
}

/// Numbers matching a prefix from which walking the calls newest first and checking each
/// is cheaper than collecting every match and sorting it.
#[cfg(not(test))]
const COMMON_PREFIX: i64 = 2000;
/// Small in unit tests, so that both plans run on a small index.
#[cfg(test)]
const COMMON_PREFIX: i64 = 2;

/// Whether a number prefix matches so many parties that the newest-first walk is the faster
/// plan (one range count, stopped at [`COMMON_PREFIX`]).
fn is_common(conn: &Connection, prefix: &str) -> rusqlite::Result<bool> {
    let mut sql = String::new();
    let mut args = Vec::new();
    prefix_range("number", prefix, &mut sql, &mut args);
    args.push(Value::Integer(COMMON_PREFIX));
    let n: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM (SELECT 1 FROM parties WHERE 1{sql} LIMIT ?)"))?
        .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
    Ok(n >= COMMON_PREFIX)
}

/// The SQL of a search; `common` (see [`is_common`]) picks how a number prefix is matched.
fn to_sql(s: &Search, common: bool) -> Result<(String, Vec<Value>, u32), SearchError> {
    let limit = match s.limit {
        0 => DEFAULT_LIMIT,
        n if n > MAX_LIMIT => return Err(SearchError::Invalid(format!("limit {n} is above the most, {MAX_LIMIT}"))),
        n => n,
    };
    let mut sql = format!("SELECT {COLUMNS} FROM calls c WHERE 1");
    let mut args = Vec::new();
    if let Some(t) = s.since_ns {
        sql.push_str(" AND c.start_ns >= ?");
        args.push(Value::Integer(t));
    }
    if let Some(t) = s.until_ns {
        sql.push_str(" AND c.start_ns < ?");
        args.push(Value::Integer(t));
    }
    if let Some(n) = s.number.as_deref().filter(|n| !n.is_empty()) {
        if common {
            // Each call's own columns, as `parties` holds them: the user, and the user
            // without its leading '+'.
            let plus = format!("+{n}");
            let mut any = Vec::new();
            for column in ["c.from_user", "c.to_user", "c.pai_user"] {
                for p in [n, plus.as_str()] {
                    let mut one = String::new();
                    prefix_range(column, p, &mut one, &mut args);
                    any.push(format!("(1{one})"));
                }
            }
            sql.push_str(&format!(" AND ({})", any.join(" OR ")));
        } else {
            let mut sub = String::new();
            prefix_range("number", n, &mut sub, &mut args);
            sql.push_str(&format!(" AND c.id IN (SELECT call FROM parties WHERE 1{sub})"));
        }
    }
    if let Some(n) = s.from.as_deref().filter(|n| !n.is_empty()) {
        prefix_range("c.from_user", n, &mut sql, &mut args);
    }
    if let Some(n) = s.to.as_deref().filter(|n| !n.is_empty()) {
        prefix_range("c.to_user", n, &mut sql, &mut args);
    }
    if let Some(v) = &s.state {
        sql.push_str(" AND c.state = ?");
        args.push(Value::Text(v.clone()));
    }
    if let Some(v) = &s.end_reason {
        sql.push_str(" AND c.end_reason = ?");
        args.push(Value::Text(v.clone()));
    }
    if let Some(m) = s.mos_below {
        if !m.is_finite() {
            return Err(SearchError::Invalid("mos_below must be a number".into()));
        }
        sql.push_str(" AND c.mos < ?");
        args.push(Value::Real(m));
    }
    match s.incomplete {
        Some(true) => sql.push_str(" AND c.capture_complete = 0"),
        Some(false) => sql.push_str(" AND c.capture_complete = 1"),
        None => {}
    }
    if let Some(cursor) = &s.cursor {
        let bad = || SearchError::Invalid(format!("cursor {cursor:?} is not one this server gave"));
        let (start, id) = cursor.split_once('.').ok_or_else(bad)?;
        let start: i64 = start.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        sql.push_str(" AND (c.start_ns < ? OR (c.start_ns = ? AND c.id < ?))");
        args.extend([Value::Integer(start), Value::Integer(start), Value::Integer(id)]);
    }
    sql.push_str(" ORDER BY c.start_ns DESC, c.id DESC LIMIT ?");
    args.push(Value::Integer(i64::from(limit) + 1));
    Ok((sql, args, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_string() {
        assert_eq!(prefix_end("+44").as_deref(), Some("+45"));
        assert_eq!(prefix_end("12").as_deref(), Some("13"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }

    #[test]
    fn bad_cursor_and_limit_are_refused() {
        let s = Search { cursor: Some("x".into()), ..Search::default() };
        assert!(matches!(to_sql(&s, false), Err(SearchError::Invalid(m)) if m.contains("cursor")));
        let s = Search { limit: MAX_LIMIT + 1, ..Search::default() };
        assert!(matches!(to_sql(&s, false), Err(SearchError::Invalid(m)) if m.contains("limit")));
    }
}
