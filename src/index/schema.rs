//! The index's tables. The index is derived data: every row comes from a call record that the
//! spool or a local archive holds, so a schema change bumps [`VERSION`] and the index is rebuilt
//! rather than migrated.

/// `PRAGMA user_version` of an index this build can read.
pub(super) const VERSION: i64 = 1;

/// Creates the tables of an empty index.
///
/// * `calls`: one row per recording, the columns the search filters on; `name` is the
///   recording's file name without extension (what the API calls the call's id).
/// * `records`: the call record as written, apart so that a scan of `calls` stays small.
/// * `parties`: one row per distinct number of a call (From, To, P-Asserted-Identity user part),
///   so a number prefix is a range scan whichever side it was on.
pub(super) const CREATE: &str = "
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    call_id TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    talk_s REAL,
    from_user TEXT,
    to_user TEXT,
    pai_user TEXT,
    state TEXT NOT NULL,
    end_reason TEXT NOT NULL,
    final_code INTEGER,
    codec_caller TEXT,
    codec_callee TEXT,
    mos_caller REAL,
    mos_callee REAL,
    mos REAL,
    loss_pct REAL,
    jitter_ms REAL,
    capture_complete INTEGER NOT NULL,
    audio_file TEXT,
    audio_duration_s REAL,
    evidence_file TEXT
);
CREATE INDEX calls_start ON calls (start_ns);
CREATE INDEX calls_mos ON calls (mos) WHERE mos IS NOT NULL;
CREATE INDEX calls_incomplete ON calls (start_ns) WHERE capture_complete = 0;
CREATE INDEX calls_reason ON calls (end_reason, start_ns);
CREATE INDEX calls_state ON calls (state, start_ns);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    json TEXT NOT NULL
);
CREATE TABLE parties (
    number TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    call INTEGER NOT NULL,
    PRIMARY KEY (number, start_ns, call)
) WITHOUT ROWID;
";
