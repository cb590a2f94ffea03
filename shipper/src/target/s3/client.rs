//! The HTTP side of the S3 target: addressing, signing, sending, TLS, bandwidth pacing, and the
//! translation of answers into [`S3Error`]s. No retries here: the shipper retries by
//! [`Disposition`](crate::Disposition).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::sigv4::{self, EMPTY_SHA256, uri_encode};
use super::{Credentials, S3Error};

/// Time to establish a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Slowest transfer rate a request is given time for, on top of the base timeout.
const MIN_RATE: u64 = 256 * 1024;

/// A signed-request client for one bucket.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    /// `scheme://host[:port]` of the store.
    endpoint: Url,
    bucket: String,
    region: String,
    path_style: bool,
    creds: Credentials,
    timeout: Duration,
    pacer: Option<Pacer>,
}

/// One request.
#[derive(Debug)]
pub(crate) struct Req<'a> {
    /// What it is for, in messages: "upload", "check", "list", ...
    pub(crate) op: &'static str,
    pub(crate) method: Method,
    /// Object key, or `None` for the bucket itself.
    pub(crate) key: Option<&'a str>,
    pub(crate) query: Vec<(String, String)>,
    /// Extra headers (lowercase names), all signed.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// SHA-256 of `body`, lowercase hex; computed when `None`.
    pub(crate) body_sha256: Option<String>,
}

impl<'a> Req<'a> {
    pub(crate) fn new(op: &'static str, method: Method, key: Option<&'a str>) -> Req<'a> {
        Req { op, method, key, query: Vec::new(), headers: Vec::new(), body: Vec::new(), body_sha256: None }
    }

    pub(crate) fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.to_owned(), v.to_owned()));
        self
    }

    pub(crate) fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_owned(), v.into()));
        self
    }

    pub(crate) fn body(mut self, body: Vec<u8>, sha256: Option<String>) -> Self {
        self.body = body;
        self.body_sha256 = sha256;
        self
    }
}

/// An answer, whatever its status.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
    /// `s3://bucket/key` of the request, for messages.
    pub(crate) resource: String,
    op: &'static str,
}

impl Resp {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// This answer as an error, with the code and message from its XML body if it has one.
    pub(crate) fn error(&self) -> S3Error {
        let parsed: Option<ErrorBody> =
            std::str::from_utf8(&self.body).ok().and_then(|text| quick_xml::de::from_str(text).ok());
        let (code, message) = parsed.map(|e| (e.code, e.message)).unwrap_or_default();
        S3Error::Status { op: self.op, resource: self.resource.clone(), status: self.status, code, message }
    }

    /// `Ok(self)` for a 2xx answer, else the error.
    pub(crate) fn ok(self) -> Result<Resp, S3Error> {
        if (200..300).contains(&self.status) { Ok(self) } else { Err(self.error()) }
    }

    /// Parses the XML body.
    pub(crate) fn xml<T: for<'de> Deserialize<'de>>(&self) -> Result<T, S3Error> {
        let text = std::str::from_utf8(&self.body).map_err(|e| self.protocol(e.to_string()))?;
        quick_xml::de::from_str(text).map_err(|e| self.protocol(format!("{e} in {}", excerpt(text))))
    }

    pub(crate) fn protocol(&self, problem: String) -> S3Error {
        S3Error::Protocol { op: self.op, resource: self.resource.clone(), problem }
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

/// `<Error><Code>…</Code><Message>…</Message></Error>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Spaces the starts of requests so that the bytes sent average at most a given rate. A request
/// waits for the bytes before it; bursts are at most one request body.
#[derive(Debug)]
struct Pacer {
    bytes_per_sec: u64,
    next: Mutex<Instant>,
}

impl Pacer {
    async fn pace(&self, bytes: u64) {
        let delay = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
            start - now
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// Settings of [`Client::new`].
#[derive(Debug)]
pub(crate) struct ClientConfig<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) bucket: &'a str,
    pub(crate) region: &'a str,
    pub(crate) path_style: bool,
    pub(crate) allow_http: bool,
    pub(crate) ca_file: Option<&'a Path>,
    pub(crate) creds: Credentials,
    pub(crate) timeout: Duration,
    pub(crate) bandwidth_limit: Option<u64>,
}

impl Client {
    /// Builds the client; fails with a sentence for the operator.
    pub(crate) fn new(cfg: ClientConfig<'_>) -> Result<Client, String> {
        let endpoint = Url::parse(cfg.endpoint).map_err(|e| {
            format!("endpoint {:?} is not a URL ({e}); use e.g. https://s3.example.com:9000", cfg.endpoint)
        })?;
        match endpoint.scheme() {
            "https" => {}
            "http" if cfg.allow_http => {
                tracing::warn!(endpoint = %endpoint,
                    "plain HTTP to the object store: recordings and credentials' signatures travel unencrypted");
            }
            "http" => {
                return Err(format!(
                    "endpoint {endpoint} is plain HTTP; use https, or allow plain HTTP explicitly (--s3-allow-http)"
                ));
            }
            other => return Err(format!("endpoint {endpoint} has scheme {other:?}; use https")),
        }
        if endpoint.host_str().is_none() || endpoint.path() != "/" || endpoint.query().is_some() {
            return Err(format!("endpoint {endpoint} must be scheme://host[:port] without a path"));
        }
        let tls = tls_config(cfg.ca_file)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(!cfg.allow_http)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("callvault/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", crate::chain(&e)))?;
        Ok(Client {
            http,
            endpoint,
            bucket: cfg.bucket.to_owned(),
            region: cfg.region.to_owned(),
            path_style: cfg.path_style,
            creds: cfg.creds,
            timeout: cfg.timeout,
            pacer: cfg
                .bandwidth_limit
                .filter(|&b| b > 0)
                .map(|bytes_per_sec| Pacer { bytes_per_sec, next: Mutex::new(Instant::now()) }),
        })
    }

    /// The endpoint URL, for messages.
    pub(crate) fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// `s3://bucket/key`.
    pub(crate) fn resource(&self, key: Option<&str>) -> String {
        format!("s3://{}/{}", self.bucket, key.unwrap_or(""))
    }

    /// The URL of `key` (or of the bucket), path-style or virtual-host style.
    fn url(&self, key: Option<&str>, query: &[(String, String)]) -> Result<(Url, String), String> {
        let key_path = key.map(|k| uri_encode(k, true)).unwrap_or_default();
        let host = self.endpoint.host_str().unwrap_or_default();
        let (authority_host, path) = if self.path_style {
            (host.to_owned(), format!("/{}/{}", uri_encode(&self.bucket, false), key_path))
        } else {
            (format!("{}.{host}", self.bucket), format!("/{key_path}"))
        };
        let authority = match self.endpoint.port() {
            Some(port) => format!("{authority_host}:{port}"),
            None => authority_host,
        };
        let mut text = format!("{}://{authority}{path}", self.endpoint.scheme());
        if !query.is_empty() {
            let q: Vec<String> =
                query.iter().map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false))).collect();
            text.push('?');
            text.push_str(&q.join("&"));
        }
        let url = Url::parse(&text).map_err(|e| format!("cannot build a URL from {text:?}: {e}"))?;
        Ok((url, authority))
    }

    /// Signs and sends `req`; any status is returned as a [`Resp`], a failure to get one as an
    /// error.
    pub(crate) async fn send(&self, req: Req<'_>) -> Result<Resp, S3Error> {
        let (response, resource, op) = self.request(req, false).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.transport_error(op, &resource, &e))?.to_vec();
        Ok(Resp { status, headers, body, resource, op })
    }

    /// [`Client::send`], the body of a successful (2xx) answer handed to `sink` as it arrives
    /// instead of gathered (the [`Resp`]'s is empty); any other answer's body is gathered.
    pub(crate) async fn send_streamed(
        &self,
        req: Req<'_>,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<Resp, S3Error> {
        let (mut response, resource, op) = self.request(req, true).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let transport = |e: reqwest::Error| self.transport_error(op, &resource, &e);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if (200..300).contains(&status) {
                sink(&chunk);
            } else {
                body.extend_from_slice(&chunk);
            }
        }
        Ok(Resp { status, headers, body, resource, op })
    }

    /// Signs and sends `req`: the response, its headers read, and what names the request in
    /// errors. The whole exchange is limited in time unless its answer is `streamed`.
    pub(crate) async fn request(
        &self,
        req: Req<'_>,
        streamed: bool,
    ) -> Result<(reqwest::Response, String, &'static str), S3Error> {
        let resource = self.resource(req.key);
        let (url, host) = self.url(req.key, &req.query).map_err(|problem| S3Error::Protocol {
            op: req.op,
            resource: resource.clone(),
            problem,
        })?;
        let payload_sha256 = match req.body_sha256 {
            Some(sha) => sha,
            None if req.body.is_empty() => EMPTY_SHA256.to_owned(),
            None => hex::encode(Sha256::digest(&req.body)),
        };
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let signed = sigv4::sign(
            &sigv4::Request {
                method: req.method.as_str(),
                host: &host,
                path: url.path(),
                query: &req.query,
                headers: &req.headers,
                payload_sha256: &payload_sha256,
            },
            &self.creds,
            &self.region,
            &amz_date,
        );
        let bytes = req.body.len() as u64;
        if let Some(pacer) = &self.pacer {
            pacer.pace(bytes).await;
        }
        let mut builder = self.http.request(req.method.clone(), url);
        if !streamed {
            // A streamed answer may be gigabytes: only a stall (the client's read timeout) ends it.
            builder = builder.timeout(self.timeout + Duration::from_secs(bytes / MIN_RATE));
        }
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        for (k, v) in signed {
            builder = builder.header(k, v);
        }
        if !req.body.is_empty() || req.method == Method::PUT || req.method == Method::POST {
            builder = builder.body(req.body);
        }
        let response = builder.send().await.map_err(|e| self.transport_error(req.op, &resource, &e))?;
        Ok((response, resource, req.op))
    }

    fn transport_error(&self, op: &'static str, resource: &str, e: &reqwest::Error) -> S3Error {
        let endpoint = self.endpoint.to_string();
        match find_tls_error(e) {
            Some(reason) => S3Error::Tls { op, resource: resource.to_owned(), endpoint, reason },
            None => {
                let mut reason = crate::chain(e);
                if e.is_timeout() {
                    reason.push_str(" (timed out)");
                }
                S3Error::Transport { op, resource: resource.to_owned(), endpoint, reason }
            }
        }
    }
}

/// The rustls error somewhere in `e`'s chain of causes, as text. I/O errors wrap it (sometimes
/// twice) without exposing it as a source, so their payloads are searched too.
fn find_tls_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && let Some(found) = find_tls_error(inner)
        {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// rustls with the ring provider, trusting the system's roots and, if given, the PEM
/// certificates in `ca_file`. Certificates are always verified.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<_, _>>())
            .map_err(|e| format!("cannot read CA file {}: {e}; give a PEM file of CA certificates", path.display()))?;
        if certs.is_empty() {
            return Err(format!("CA file {} holds no PEM certificate", path.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("CA file {}: a certificate is not usable: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificates: install the system's CA bundle, or give one with --s3-ca-file".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
