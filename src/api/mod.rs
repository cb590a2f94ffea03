//! The JSON API over the call index: search calls, read one call's record, stream its audio
//! (with HTTP Range, so a browser's `<audio>` element can seek) and its evidence pcap.
//!
//! Everything here reads: the index ([`crate::index::Reader`]) and the recording files that are
//! still on this box (the spool's `recordings/` and local archive directories). The API never
//! writes a recording, the index or the spool; the one thing it writes is the audit log
//! ([`crate::audit`]): every audio or pcap download is recorded there, with who asked, before
//! it is served, and refused if it cannot be.
//!
//! Routes (described for clients in `openapi.json`, served at `/api/v1/openapi.json`):
//! * `GET /api/v1/calls`: search (filters and paging: [`Search`] is the query string);
//! * `GET /api/v1/calls/{id}`: the call record as written;
//! * `GET /api/v1/calls/{id}/audio`, `GET /api/v1/calls/{id}/pcap`: the files.

mod remote;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mixer::{LiveCall, LiveSide};
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::audit::{AuditLog, Entry};
use crate::http::auth::Who;
use crate::index::{Reader, Search, SearchError, Stored};
use crate::pipeline::LiveBoard;

/// The API description (OpenAPI 3.1).
pub const OPENAPI: &str = include_str!("openapi.json");
/// The dashboard, built into the binary (no CDN, no separate web server).
const WEB_INDEX: &str = include_str!("web/index.html");
const WEB_APP: &str = include_str!("web/app.js");
const WEB_STYLE: &str = include_str!("web/style.css");

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// What the API reads.
#[derive(Debug)]
pub struct Api {
    reader: Reader,
    /// The calls in progress, when this process is capturing.
    live: Option<Arc<LiveBoard>>,
    /// Where recording files may be, searched in order: `<root>/<key>.<ext>`.
    roots: Vec<PathBuf>,
    /// Where downloads are recorded.
    audit: Arc<AuditLog>,
    /// The S3 archive files no longer on this box are fetched from.
    remote: Option<remote::Remote>,
    /// Downloads and audit failures are counted here.
    counters: Arc<crate::http::HttpCounters>,
}

impl Api {
    /// An API over the index at `index` and the recording files under `roots`, recording
    /// downloads in `audit`.
    pub fn new(
        index: &std::path::Path,
        roots: Vec<PathBuf>,
        live: Option<Arc<LiveBoard>>,
        audit: Arc<AuditLog>,
    ) -> Api {
        Api { reader: Reader::new(index), roots, live, audit, remote: None, counters: Arc::default() }
    }

    /// The first of the roots that holds `<key>.<ext>`.
    fn locate(&self, key: &str, ext: &str) -> Option<PathBuf> {
        self.roots.iter().map(|r| r.join(format!("{key}.{ext}"))).find(|p| p.is_file())
    }
}

/// The API's routes.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/calls", get(search))
        .route("/api/v1/active", get(active))
        .route("/api/v1/stream", get(stream))
        .route("/api/v1/active/{call_id}/pause", post(pause))
        .route("/api/v1/active/{call_id}/resume", post(resume))
        .route("/api/v1/histogram", get(histogram))
        .route("/", get(|| async { axum::response::Redirect::to("/ui/") }))
        .route("/ui/", get(|| asset("text/html; charset=utf-8", WEB_INDEX)))
        .route("/ui/app.js", get(|| asset("text/javascript; charset=utf-8", WEB_APP)))
        .route("/ui/style.css", get(|| asset("text/css; charset=utf-8", WEB_STYLE)))
        .route("/api/v1/calls/{id}", get(one))
        .route("/api/v1/calls/{id}/audio", get(audio))
        .route("/api/v1/calls/{id}/pcap", get(pcap))
        .route("/api/v1/openapi.json", get(openapi))
        .with_state(api)
}

/// An error answer: a status and `{"error": "..."}`.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<SearchError> for Failure {
    fn from(e: SearchError) -> Failure {
        match e {
            SearchError::Invalid(m) => Failure(StatusCode::BAD_REQUEST, m),
            e @ SearchError::Sqlite { .. } => {
                tracing::error!("{e}");
                Failure(StatusCode::INTERNAL_SERVER_ERROR, "the call index cannot be read (see the log)".into())
            }
        }
    }
}

async fn search(
    State(api): State<Arc<Api>>,
    query: Result<Query<Search>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let Query(search) = query.map_err(|e| Failure(StatusCode::BAD_REQUEST, e.body_text()))?;
    let page = tokio::task::spawn_blocking(move || api.reader.search(&search))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(axum::Json(page).into_response())
}

async fn stored(api: &Arc<Api>, id: String) -> Result<Stored, Failure> {
    let api = api.clone();
    let lookup = id.clone();
    tokio::task::spawn_blocking(move || api.reader.get(&lookup))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no call {id:?} in the index")))
}

async fn one(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, Failure> {
    let stored = stored(&api, id).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], stored.record).into_response())
}

async fn audio(State(api): State<Arc<Api>>, Path(id): Path<String>, request: Request) -> Result<Response, Failure> {
    let stored = stored(&api, id.clone()).await?;
    let file = stored.audio_file.ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("call {id:?} has no audio")))?;
    let sha256 = record_sha256(&stored.record, "audio");
    serve_file(&api, &id, &stored.key, (&file, sha256.as_deref()), "audio", request).await
}

async fn pcap(State(api): State<Arc<Api>>, Path(id): Path<String>, request: Request) -> Result<Response, Failure> {
    let stored = stored(&api, id.clone()).await?;
    let file = stored.evidence_file.ok_or_else(|| {
        Failure(StatusCode::NOT_FOUND, format!("call {id:?} has no evidence pcap (keep_pcap was off)"))
    })?;
    let sha256 = record_sha256(&stored.record, "evidence");
    serve_file(&api, &id, &stored.key, (&file, sha256.as_deref()), "evidence pcap", request).await
}

/// The SHA-256 the call record gives for its `part` (`audio` or `evidence`).
fn record_sha256(record: &str, part: &str) -> Option<String> {
    let v: Value = serde_json::from_str(record).ok()?;
    v[part]["sha256"].as_str().map(str::to_owned)
}

/// Writes the download of `what` of call `id` to the audit log; refused (503) if it cannot be.
async fn audit(api: &Api, id: &str, key: &str, what: &str, who: Who, range: Option<String>) -> Result<(), Failure> {
    let entry = Entry {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        user: who.name,
        auth: who.method.as_str(),
        remote: who.remote.map(|r| r.to_string()),
        action: if what == "audio" { "audio" } else { "pcap" },
        call: id.to_owned(),
        key: key.to_owned(),
        range,
    };
    let log = api.audit.clone();
    let written = tokio::task::spawn_blocking(move || log.record(&entry)).await;
    match written {
        Ok(Ok(())) => {
            crate::http::HttpCounters::add(&api.counters.downloads);
            Ok(())
        }
        Ok(Err(e)) => {
            crate::http::HttpCounters::add(&api.counters.audit_errors);
            tracing::error!("download of the {what} of {key} refused: {e:#}");
            Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be written (see the log): download refused".into(),
            ))
        }
        Err(e) => Err(Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("audit log writer failed: {e}"))),
    }
}

/// Streams `<key>.<ext of file>` from the first root that has it, or else from the S3 archive
/// (checked against the record's `sha256`), with Range support.
async fn serve_file(
    api: &Api,
    id: &str,
    key: &str,
    (file, sha256): (&str, Option<&str>),
    what: &str,
    request: Request,
) -> Result<Response, Failure> {
    let ext = std::path::Path::new(file).extension().and_then(|e| e.to_str()).unwrap_or_default();
    let path = match (api.locate(key, ext), &api.remote, sha256) {
        (Some(path), _, _) => path,
        (None, Some(remote), Some(sha256)) => remote.fetch(key, ext, sha256).await?,
        _ => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!(
                    "the {what} of {key} is no longer on this box (local copies are removed by retention once \
                     shipped) and no S3 archive is configured to fetch it from; fetch it with `callvault archive get \
                     {key}`"
                ),
            ));
        }
    };
    let who = request.extensions().get::<Who>().cloned().unwrap_or_else(|| Who::anonymous(None));
    let range = request.headers().get(header::RANGE).and_then(|r| r.to_str().ok()).map(str::to_owned);
    audit(api, id, key, what, who, range).await?;
    let mime = match ext {
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "pcap" => "application/vnd.tcpdump.pcap",
        _ => "application/octet-stream",
    };
    match ServeFile::new(path).oneshot(request).await {
        Ok(response) => {
            let mut response = response.into_response();
            if response.status().is_success() {
                response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            }
            Ok(response)
        }
        Err(e) => Err(Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the {what} of {key}: {e}"))),
    }
}

/// `GET /api/v1/active`: the calls in progress with each direction's quality so far.
async fn active(State(api): State<Arc<Api>>) -> Response {
    axum::Json(active_json(&api)).into_response()
}

fn active_json(api: &Api) -> Value {
    let Some(board) = &api.live else {
        return serde_json::json!({ "capturing": false, "calls": [] });
    };
    let calls: Vec<Value> = board.calls().iter().map(live_json).collect();
    serde_json::json!({ "capturing": true, "calls": calls })
}

/// `POST /api/v1/active/{call_id}/pause`: pauses the recording of a call in progress (PCI DSS)
/// from now until a resume; both channels are silence meanwhile and the record names who.
async fn pause(
    State(api): State<Arc<Api>>,
    Path(call_id): Path<String>,
    request: Request,
) -> Result<Response, Failure> {
    ask_pause(&api, call_id, true, who(&request)).await
}

/// `POST /api/v1/active/{call_id}/resume`.
async fn resume(
    State(api): State<Arc<Api>>,
    Path(call_id): Path<String>,
    request: Request,
) -> Result<Response, Failure> {
    ask_pause(&api, call_id, false, who(&request)).await
}

fn who(request: &Request) -> Who {
    request.extensions().get::<Who>().cloned().unwrap_or_else(|| Who::anonymous(None))
}

async fn ask_pause(api: &Api, call_id: String, pause: bool, who: Who) -> Result<Response, Failure> {
    let Some(board) = api.live.clone() else {
        return Err(Failure(
            StatusCode::CONFLICT,
            "this process does not capture (callvault serve): pause calls on the `callvault run` API".into(),
        ));
    };
    let verb = if pause { "pause" } else { "resume" };
    let trigger = match who.remote {
        Some(remote) => format!("api: {verb} by {} from {}", who.name, remote.ip()),
        None => format!("api: {verb} by {}", who.name),
    };
    let id = call_id.clone();
    let asked = tokio::task::spawn_blocking(move || board.ask_pause(&id, pause, &trigger))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("the request failed: {e}")))?;
    match asked {
        Ok(answer) => {
            tracing::info!(call_id = %call_id, user = %who.name, changed = answer.changed, "recording {verb} asked through the API");
            Ok(axum::Json(serde_json::json!({
                "call_id": call_id, "paused": answer.paused, "changed": answer.changed, "pauses": answer.pauses,
            }))
            .into_response())
        }
        Err(e @ crate::pipeline::PauseError::NoSuchCall(_)) => Err(Failure(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ crate::pipeline::PauseError::Timeout(_)) => {
            Err(Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
    }
}

/// `GET /api/v1/stream`: server-sent events; an `active` event (as `/api/v1/active`) every
/// second, for the dashboard to update without reloading.
async fn stream(
    State(api): State<Arc<Api>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let events = futures_util::stream::unfold((api, true), |(api, first)| async move {
        if !first {
            tokio::time::sleep(LiveBoard::EVERY).await;
        }
        let event = Event::default().event("active").json_data(active_json(&api)).unwrap_or_default();
        Some((Ok(event), (api, false)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// `GET /api/v1/histogram` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistogramQuery {
    since: String,
    until: Option<String>,
    bucket_s: Option<i64>,
}

/// `GET /api/v1/histogram`: calls per bucket (default a minute) by state, with the average MOS.
async fn histogram(
    State(api): State<Arc<Api>>,
    query: Result<Query<HistogramQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let Query(q) = query.map_err(|e| Failure(StatusCode::BAD_REQUEST, e.body_text()))?;
    let time = |name: &str, t: &str| {
        crate::index::parse_time(t)
            .ok_or_else(|| Failure(StatusCode::BAD_REQUEST, format!("{name}={t:?} is not an RFC 3339 time")))
    };
    let since = time("since", &q.since)?;
    let until = match &q.until {
        Some(t) => time("until", t)?,
        None => wall_clock_ns(),
    };
    let bucket = q.bucket_s.unwrap_or(60).saturating_mul(1_000_000_000);
    let buckets = tokio::task::spawn_blocking(move || api.reader.histogram(since, until, bucket))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(axum::Json(serde_json::json!({ "buckets": buckets })).into_response())
}

fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn live_json(c: &LiveCall) -> Value {
    let side = |s: &LiveSide| {
        serde_json::json!({
            "codec": s.codec, "packets": s.packets, "lost": s.lost, "loss_pct": round(s.loss_pct),
            "jitter_ms": round(s.jitter_ms), "mos": s.mos.map(round),
        })
    };
    let last = c.sides.iter().filter_map(|s| s.last).max();
    serde_json::json!({
        "call_id": c.call_id,
        "start": crate::index::format_time(c.start.0),
        "from": c.from,
        "to": c.to,
        "media_s": last.map(|l| round((l.0 - c.start.0) as f64 / 1e9)),
        "paused": c.paused,
        "caller": side(&c.sides[0]),
        "callee": side(&c.sides[1]),
    })
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI).into_response()
}

/// Where the API listens when the configuration does not say.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9751";

/// Serves the API and dashboard on `listener` (from [`crate::http::bind`]), over the index in
/// the data directory and the recording files of the spool and the local archives, with
/// `more` routes beside them (`run` adds `/health`), as `security` says (HTTPS, who may ask).
/// Downloads are recorded in the data directory's audit log.
pub fn serve(
    config: &crate::config::Config,
    listener: std::net::TcpListener,
    live: Option<Arc<LiveBoard>>,
    more: Option<Router>,
    security: &crate::http::Security,
) -> anyhow::Result<crate::http::HttpServer> {
    let data = &config.storage.data_dir;
    let mut roots = vec![data.join("recordings")];
    roots.extend(crate::pipeline::local_archives(config));
    let audit = Arc::new(AuditLog::open(data)?);
    let mut api = Api::new(&crate::index::path_in(data), roots, live, audit);
    api.remote = remote::Remote::from_config(config);
    api.counters = security.counters();
    let api = Arc::new(api);
    let routes = match more {
        Some(more) => router(api).merge(more),
        None => router(api),
    };
    let server = crate::http::HttpServer::start(listener, routes, "http-api", security)?;
    tracing::info!("API on {}://{}/", security.scheme(), server.addr());
    Ok(server)
}
