//! The HTTP listeners (`/metrics` and `/health`; the API and dashboard): axum on a small tokio
//! runtime of its own, on its own thread, one per listener (the shipper's runtime stays for
//! uploads, and a slow client never holds up capture, mixing or shipping).
//!
//! The socket is bound first ([`bind`], before `run` drops its privileges, so errors come at
//! start), and the certificate and key are read then too ([`Security::from_config`]); the
//! server thread is started later with any [`axum::Router`] ([`HttpServer::start`]), after the
//! privilege drop, and stopped with [`HttpServer::stop`]: requests in progress finish, but a
//! download or a live event stream is cut after [`STOP_GRACE`].
//!
//! Loopback addresses need nothing more. Any other address needs HTTPS (`tls.rs`: rustls) and
//! authentication (`auth.rs`: basic-auth users with argon2 password hashes, bearer tokens),
//! or the start is refused. Once users or tokens are configured, every request but `/health`
//! authenticates, whatever the address; the handlers find who asked in the request's
//! extensions ([`auth::Who`]).

pub mod auth;
mod tls;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use tokio::sync::oneshot;

/// Why an address other than loopback is refused.
pub const UNSECURED: &str = "serving to the network needs HTTPS and authentication";

/// How long stopping waits for requests in flight.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where a listener binds, from its `[http]` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Nothing is served.
    Off,
    /// The built-in default: a port already taken is a warning.
    Default(SocketAddr),
    /// Written in the configuration or on the command line: a failure stops the start.
    Configured(SocketAddr),
}

impl Listen {
    /// From the `[http]` key `key` (already checked to be an address or "off"); `default` when
    /// unset. An address other than loopback is refused unless `http` sets up HTTPS and
    /// authentication.
    pub fn from_config(
        key: &str,
        value: Option<&str>,
        default: &str,
        http: &crate::config::Http,
    ) -> anyhow::Result<Listen> {
        let (addr, configured) = match value {
            Some("off") => return Ok(Listen::Off),
            Some(a) => (a, true),
            None => (default, false),
        };
        let addr: SocketAddr = addr.parse().with_context(|| format!("{key}: {addr:?} is not an address:port"))?;
        let secured = http.tls() && http.authenticates();
        if !(addr.ip().is_loopback() || secured) {
            bail!(
                "{key} = \"{addr}\" is not a loopback address, and {UNSECURED}: set http.tls_cert and \
                 http.tls_key, and at least one [[http.user]] or [[http.token]]; or listen on 127.0.0.1 or ::1, \
                 or set it to \"off\""
            );
        }
        Ok(if configured { Listen::Configured(addr) } else { Listen::Default(addr) })
    }
}

/// What the listeners count, for the metrics of `run`.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Requests refused for wrong credentials (a request without any is not counted: a
    /// browser's first request carries none).
    pub auth_failures: std::sync::atomic::AtomicU64,
    /// Audio and pcap downloads written to the audit log (and so served).
    pub downloads: std::sync::atomic::AtomicU64,
    /// Downloads refused because the audit log could not be written.
    pub audit_errors: std::sync::atomic::AtomicU64,
}

impl HttpCounters {
    /// One more.
    pub fn add(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The value of one counter.
    pub fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What every listener of a process shares: HTTPS (when configured), who may ask, and the
/// counters.
#[derive(Debug, Clone)]
pub struct Security {
    tls: Option<Arc<rustls::ServerConfig>>,
    access: Arc<auth::Access>,
    counters: Arc<HttpCounters>,
}

impl Security {
    /// Reads the certificate and key (call it before privileges are dropped: the key may be
    /// readable by root only) and the users and tokens of `[http]`; what happens is counted in
    /// `counters`.
    pub fn from_config(http: &crate::config::Http, counters: Arc<HttpCounters>) -> anyhow::Result<Security> {
        let tls = match (&http.tls_cert, &http.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            _ => None,
        };
        Ok(Security { tls, access: Arc::new(auth::Access::from_config(http, counters.clone())), counters })
    }

    /// The listeners' counters.
    pub fn counters(&self) -> Arc<HttpCounters> {
        self.counters.clone()
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// Binds the listener `listen` asks for (`key` and `what` name it in messages): `None` when
/// off, or when the default address is taken (logged as a warning: recording goes on).
pub fn bind(listen: &Listen, key: &str, what: &str) -> anyhow::Result<Option<TcpListener>> {
    let (addr, configured) = match *listen {
        Listen::Off => return Ok(None),
        Listen::Default(a) => (a, false),
        Listen::Configured(a) => (a, true),
    };
    match TcpListener::bind(addr) {
        Ok(l) => {
            l.set_nonblocking(true).with_context(|| format!("cannot make the {what} listener non-blocking"))?;
            Ok(Some(l))
        }
        Err(e) if configured => {
            Err(e).with_context(|| format!("cannot listen on {addr} ({key}) for {what}: is another program using it?"))
        }
        Err(e) => {
            tracing::warn!(
                "cannot listen on the default address {addr} for {what} ({e}); going on without: set {key} to \
                 a free address, or \"off\""
            );
            Ok(None)
        }
    }
}

/// A running HTTP server thread.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `router` on `listener` from a new thread (named `name`) with a single-threaded
    /// tokio runtime, over HTTPS and behind authentication when `security` says so.
    pub fn start(listener: TcpListener, router: Router, name: &str, security: &Security) -> anyhow::Result<HttpServer> {
        let addr = listener.local_addr().context("cannot read the listener's address")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build the HTTP server's tokio runtime")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = auth::guard(router, security.access.clone());
        let tls = security.tls.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || runtime.block_on(serve(listener, router, addr, tls, stopped)))
            .context("cannot start the HTTP server thread")?;
        Ok(HttpServer { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address served (the port chosen when the configuration said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in progress finish (at most [`STOP_GRACE`]), and joins
    /// the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn serve(
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the HTTP server on {addr} cannot use its socket: {e}");
            return;
        }
    };
    match tls {
        Some(config) => serve_on(tls::TlsListener::new(listener, config, addr), router, addr, stopped).await,
        None => serve_on(listener, router, addr, stopped).await,
    }
}

async fn serve_on<L>(listener: L, router: Router, addr: SocketAddr, stopped: oneshot::Receiver<()>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    let told = stopping.clone();
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    // Tapped (with nothing) for axum's connect info of any listener whose address is a SocketAddr.
    let listener = axum::serve::ListenerExt::tap_io(listener, |_| ());
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stopped.await;
        told.notify_one();
    });
    tokio::select! {
        result = std::future::IntoFuture::into_future(serve) => {
            if let Err(e) = result {
                tracing::error!("the HTTP server on {addr} failed: {e}");
            }
        }
        () = async {
            stopping.notified().await;
            tokio::time::sleep(STOP_GRACE).await;
        } => tracing::warn!("the HTTP server on {addr}: requests still running after {STOP_GRACE:?} were cut"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "http.metrics_listen";

    #[test]
    fn addresses_other_than_loopback_are_refused() {
        let open = crate::config::Http::default();
        let from = |v| Listen::from_config(KEY, v, "127.0.0.1:9750", &open);
        assert_eq!(from(Some("off")).unwrap(), Listen::Off);
        assert_eq!(from(None).unwrap(), Listen::Default("127.0.0.1:9750".parse().unwrap()));
        assert_eq!(from(Some("[::1]:1")).unwrap(), Listen::Configured("[::1]:1".parse().unwrap()));
        let e = from(Some("0.0.0.0:9750")).unwrap_err().to_string();
        assert!(e.contains("not a loopback address") && e.contains(UNSECURED), "{e}");
        // HTTPS and a user: any address.
        let secured = crate::config::Http {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            users: vec![crate::config::HttpUser { name: "a".into(), password_hash: "h".into() }],
            ..crate::config::Http::default()
        };
        let any = Listen::from_config(KEY, Some("0.0.0.0:9750"), "127.0.0.1:9750", &secured).unwrap();
        assert_eq!(any, Listen::Configured("0.0.0.0:9750".parse().unwrap()));
        // Authentication without HTTPS is not enough.
        let clear = crate::config::Http { tls_key: None, ..secured };
        assert!(Listen::from_config(KEY, Some("0.0.0.0:9750"), "127.0.0.1:9750", &clear).is_err());
    }

    #[test]
    fn a_configured_address_in_use_is_an_error_the_default_a_warning() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(&Listen::Configured(addr), KEY, "/metrics").unwrap_err();
        assert!(format!("{e:#}").contains(&format!("cannot listen on {addr}")), "{e:#}");
        assert!(bind(&Listen::Default(addr), KEY, "/metrics").unwrap().is_none());
    }
}
