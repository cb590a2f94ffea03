//! Who may ask: basic-auth users (argon2 password hashes in PHC form) and bearer tokens (SHA-256
//! of 256 random bits), from `[http]`.
//!
//! With no user and no token configured (allowed on loopback only), every request passes as
//! [`Who::anonymous`]. Otherwise every request but `/health` must authenticate; a failure is
//! answered 401 with a challenge for each configured method and logged with the peer's address
//! (never the secret). An argon2 verification is deliberately slow (tens of ms): a correct
//! password is remembered for [`REMEMBER`] by its SHA-256 (never in clear), so a dashboard's many
//! requests cost one verification; verifications run on the blocking pool, [`VERIFYING`] at a
//! time, so guessing cannot starve the server's thread. An unknown user name costs the same
//! verification as a known one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// How long a verified password is remembered.
const REMEMBER: Duration = Duration::from_secs(600);
/// Passwords remembered at most (then the memory starts over).
const REMEMBERED_MAX: usize = 1024;
/// Argon2 verifications running at once.
const VERIFYING: usize = 2;
/// The realm of the basic-auth challenge.
const REALM: &str = "callvault";

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No authentication is configured (loopback only).
    None,
    /// HTTP basic auth, a `[[http.user]]`.
    Basic,
    /// A bearer token, a `[[http.token]]`.
    Bearer,
}

impl Method {
    /// Name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Basic => "basic",
            Method::Bearer => "bearer",
        }
    }
}

/// Who made a request: put in every request's extensions by [`guard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The user's or token's name; `anonymous` without authentication.
    pub name: String,
    /// How it authenticated.
    pub method: Method,
    /// The peer's address.
    pub remote: Option<SocketAddr>,
}

impl Who {
    /// A request that did not (need to) authenticate.
    pub fn anonymous(remote: Option<SocketAddr>) -> Who {
        Who { name: "anonymous".into(), method: Method::None, remote }
    }
}

/// The users and tokens a listener accepts.
#[derive(Debug)]
pub struct Access {
    /// User name → argon2 PHC hash.
    users: HashMap<String, String>,
    /// SHA-256 of a token (hex) → its name.
    tokens: HashMap<String, String>,
    /// A hash verified for unknown user names, so that they take as long as known ones.
    decoy: Option<String>,
    /// SHA-256 of `user \0 password` → (user, when verified).
    remembered: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    verifying: tokio::sync::Semaphore,
    counters: Arc<super::HttpCounters>,
}

impl Access {
    /// From `[http]` (already validated); refusals are counted in `counters`.
    pub fn from_config(http: &crate::config::Http, counters: Arc<super::HttpCounters>) -> Access {
        let users: HashMap<String, String> =
            http.users.iter().map(|u| (u.name.clone(), u.password_hash.clone())).collect();
        let decoy = (!users.is_empty()).then(|| hash_password(&new_token().0));
        Access {
            users,
            tokens: http.tokens.iter().map(|t| (t.sha256.clone(), t.name.clone())).collect(),
            decoy,
            remembered: Mutex::new(HashMap::new()),
            verifying: tokio::sync::Semaphore::new(VERIFYING),
            counters,
        }
    }

    /// Whether requests must authenticate.
    pub fn required(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// Who the `Authorization` header in `headers` names, if its secret is right.
    async fn authenticate(&self, headers: &HeaderMap, remote: Option<SocketAddr>) -> Result<Who, String> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err("no credentials".into());
        };
        let value = value.to_str().map_err(|_| "an Authorization header that is not text".to_owned())?;
        let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
        let credential = credential.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let digest = hex::encode(Sha256::digest(credential.as_bytes()));
            return match self.tokens.get(&digest) {
                Some(name) => Ok(Who { name: name.clone(), method: Method::Bearer, remote }),
                None => Err("an unknown bearer token".into()),
            };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(format!("the unsupported authentication scheme {scheme:?}"));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| "basic credentials that are not base64 of user:password".to_owned())?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| "basic credentials without a ':'".to_owned())?;
        let key: [u8; 32] = Sha256::new().chain_update(user).chain_update([0]).chain_update(password).finalize().into();
        if let Some((name, at)) = self.remembered.lock().unwrap().get(&key)
            && at.elapsed() < REMEMBER
        {
            return Ok(Who { name: name.clone(), method: Method::Basic, remote });
        }
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.clone(), true),
            None => match &self.decoy {
                Some(d) => (d.clone(), false),
                None => return Err(format!("basic credentials, but no user is configured (user {user:?})")),
            },
        };
        let _permit = self.verifying.acquire().await.map_err(|_| "the server is stopping".to_owned())?;
        let password = password.to_owned();
        let right = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.unwrap_or(false);
        if !(right && known) {
            return Err(format!("a wrong password or unknown user {user:?}"));
        }
        let mut remembered = self.remembered.lock().unwrap();
        if remembered.len() >= REMEMBERED_MAX {
            remembered.clear();
        }
        remembered.insert(key, (user.to_owned(), Instant::now()));
        Ok(Who { name: user.to_owned(), method: Method::Basic, remote })
    }

    /// The 401 answer, with a challenge for each configured method.
    fn refuse(&self) -> Response {
        let mut response =
            (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "authentication required"})))
                .into_response();
        let headers = response.headers_mut();
        if !self.users.is_empty() {
            let basic = format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"");
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_str(&basic).expect("ASCII"));
        }
        if !self.tokens.is_empty() {
            let bearer = format!("Bearer realm=\"{REALM}\"");
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_str(&bearer).expect("ASCII"));
        }
        response
    }
}

/// `router` with every request authenticated by `access` (but `/health`), and its [`Who`] in
/// the request's extensions.
pub fn guard(router: axum::Router, access: Arc<Access>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(access, check))
}

async fn check(State(access): State<Arc<Access>>, mut request: Request, next: Next) -> Response {
    let remote = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let who = if !access.required() || request.uri().path() == "/health" {
        Who::anonymous(remote)
    } else {
        match access.authenticate(request.headers(), remote).await {
            Ok(who) => who,
            Err(why) => {
                let peer = remote.map_or_else(|| "an unknown peer".to_owned(), |r| r.to_string());
                let path = request.uri().path();
                // A browser's first request carries no credentials: that is not worth a warning.
                if request.headers().contains_key(header::AUTHORIZATION) {
                    super::HttpCounters::add(&access.counters.auth_failures);
                    tracing::warn!("HTTP authentication failed: {why}, from {peer} for {path}");
                } else {
                    tracing::debug!("HTTP request without credentials from {peer} for {path}");
                }
                return access.refuse();
            }
        }
    };
    request.extensions_mut().insert(who);
    next.run(request).await
}

/// Whether `hash` is an argon2 hash in PHC form; the reason if not.
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("is not a password hash in PHC form ({e})"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!("uses {}, not argon2", parsed.algorithm));
    }
    Ok(())
}

/// The argon2id hash (PHC form, default parameters, a random salt) of `password`.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters").to_string()
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A new bearer token (256 random bits, base64url) and its SHA-256 (hex) for the configuration.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    (token, digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Http, HttpToken, HttpUser};

    fn access() -> (Access, String) {
        let (token, sha256) = new_token();
        let http = Http {
            users: vec![HttpUser { name: "alice".into(), password_hash: hash_password("s3cret") }],
            tokens: vec![HttpToken { name: "prometheus".into(), sha256 }],
            ..Http::default()
        };
        (Access::from_config(&http, Arc::default()), token)
    }

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        auth(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
    }

    #[tokio::test]
    async fn users_and_tokens_are_checked() {
        let (access, token) = access();
        assert!(access.required());
        let who = access.authenticate(&basic("alice", "s3cret"), None).await.unwrap();
        assert_eq!((who.name.as_str(), who.method), ("alice", Method::Basic));
        // Remembered, and still right.
        assert_eq!(access.authenticate(&basic("alice", "s3cret"), None).await.unwrap().name, "alice");
        assert!(access.authenticate(&basic("alice", "s3cret "), None).await.is_err());
        assert!(access.authenticate(&basic("bob", "s3cret"), None).await.is_err());
        assert!(access.authenticate(&basic("alice", ""), None).await.is_err());
        let who = access.authenticate(&auth(&format!("Bearer {token}")), None).await.unwrap();
        assert_eq!((who.name.as_str(), who.method), ("prometheus", Method::Bearer));
        assert!(access.authenticate(&auth(&format!("Bearer {token}x")), None).await.is_err());
        assert!(access.authenticate(&auth("Digest x"), None).await.is_err());
        assert!(access.authenticate(&HeaderMap::new(), None).await.is_err());
        let challenges: Vec<_> = access.refuse().headers().get_all(header::WWW_AUTHENTICATE).iter().cloned().collect();
        assert_eq!(challenges.len(), 2);
    }

    #[tokio::test]
    async fn the_guard_refuses_counts_and_lets_through() {
        use tower::ServiceExt;
        let (access, token) = access();
        let access = Arc::new(access);
        let app = guard(
            axum::Router::new()
                .route("/x", axum::routing::get(|w: axum::Extension<Who>| async move { w.0.name }))
                .route("/health", axum::routing::get(|| async { "ok" })),
            access.clone(),
        );
        let ask = |path: &str, auth: Option<String>| {
            let mut r = axum::http::Request::builder().uri(path);
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            app.clone().oneshot(r.body(axum::body::Body::empty()).unwrap())
        };
        assert_eq!(ask("/x", None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ask("/x", Some("Bearer wrong".into())).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ask("/health", None).await.unwrap().status(), StatusCode::OK);
        let ok = ask("/x", Some(format!("Bearer {token}"))).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let body = axum::body::to_bytes(ok.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"prometheus");
        // Only the wrong credentials count, not the request without any.
        assert_eq!(super::super::HttpCounters::get(&access.counters.auth_failures), 1);
    }

    #[test]
    fn password_hashes_are_argon2_in_phc_form() {
        let hash = hash_password("pw");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        check_password_hash(&hash).unwrap();
        assert!(verify_password("pw", &hash) && !verify_password("pW", &hash));
        assert!(check_password_hash("plain").is_err());
        let e = check_password_hash("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").unwrap_err();
        assert!(e.contains("not argon2"), "{e}");
    }
}
