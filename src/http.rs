//! The HTTP listeners (`/metrics` and `/health`; the API and dashboard): axum on a small tokio
//! runtime of its own, on its own thread, one per listener (the shipper's runtime stays for
//! uploads, and a slow client never holds up capture, mixing or shipping).
//!
//! The socket is bound first ([`bind`], before `run` drops its privileges, so errors come at
//! start); the server thread is started later with any [`axum::Router`] ([`HttpServer::start`]),
//! after the privilege drop, and stopped with [`HttpServer::stop`]: requests in progress
//! finish, but a download or a live event stream is cut after [`STOP_GRACE`].

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use tokio::sync::oneshot;

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
    /// unset.
    pub fn from_config(key: &str, value: Option<&str>, default: &str) -> anyhow::Result<Listen> {
        let (addr, configured) = match value {
            Some("off") => return Ok(Listen::Off),
            Some(a) => (a, true),
            None => (default, false),
        };
        let addr: SocketAddr = addr.parse().with_context(|| format!("{key}: {addr:?} is not an address:port"))?;
        if !addr.ip().is_loopback() {
            bail!(
                "{key} = \"{addr}\" is not a loopback address: serving to the network needs TLS and \
                 authentication, which this version does not have yet; listen on 127.0.0.1 or ::1 (and reach \
                 it through a reverse proxy or an SSH tunnel), or set it to \"off\""
            );
        }
        Ok(if configured { Listen::Configured(addr) } else { Listen::Default(addr) })
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
    /// tokio runtime.
    pub fn start(listener: TcpListener, router: Router, name: &str) -> anyhow::Result<HttpServer> {
        let addr = listener.local_addr().context("cannot read the listener's address")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build the HTTP server's tokio runtime")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || runtime.block_on(serve(listener, router, addr, stopped)))
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

async fn serve(listener: TcpListener, router: Router, addr: SocketAddr, stopped: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the HTTP server on {addr} cannot use its socket: {e}");
            return;
        }
    };
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    let told = stopping.clone();
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
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
        let from = |v| Listen::from_config(KEY, v, "127.0.0.1:9750");
        assert_eq!(from(Some("off")).unwrap(), Listen::Off);
        assert_eq!(from(None).unwrap(), Listen::Default("127.0.0.1:9750".parse().unwrap()));
        assert_eq!(from(Some("[::1]:1")).unwrap(), Listen::Configured("[::1]:1".parse().unwrap()));
        let e = from(Some("0.0.0.0:9750")).unwrap_err().to_string();
        assert!(e.contains("not a loopback address") && e.contains("TLS and authentication"), "{e}");
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
