//! The HTTP listener of `/metrics` and `/health`: axum on a small tokio runtime of its own, on
//! its own thread (the shipper's runtime stays for uploads).
//!
//! The socket is bound first ([`bind`], before `run` drops its privileges, so errors come at
//! start); the server thread is started later with any [`axum::Router`] ([`HttpServer::start`]),
//! and stopped with [`HttpServer::stop`] (graceful: requests in progress finish).

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use anyhow::{Context, bail};
use axum::Router;
use tokio::sync::oneshot;

/// Where the metrics listener binds, from `http.metrics_listen`.
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
    /// From `http.metrics_listen` (already checked to be an address or "off").
    pub fn from_config(value: Option<&str>) -> anyhow::Result<Listen> {
        let (addr, configured) = match value {
            Some("off") => return Ok(Listen::Off),
            Some(a) => (a, true),
            None => (crate::config::DEFAULT_METRICS_LISTEN, false),
        };
        let addr: SocketAddr =
            addr.parse().with_context(|| format!("http.metrics_listen: {addr:?} is not an address:port"))?;
        if !addr.ip().is_loopback() {
            bail!(
                "http.metrics_listen = \"{addr}\" is not a loopback address: serving metrics and health to the \
                 network needs TLS and authentication, which this version does not have yet; listen on \
                 127.0.0.1 or ::1 (and let Prometheus reach it through a reverse proxy or an SSH tunnel), \
                 or set it to \"off\""
            );
        }
        Ok(if configured { Listen::Configured(addr) } else { Listen::Default(addr) })
    }
}

/// Binds the listener `listen` asks for: `None` when off, or when the default address is
/// taken (logged as a warning: recording goes on without metrics).
pub fn bind(listen: &Listen) -> anyhow::Result<Option<TcpListener>> {
    let (addr, configured) = match *listen {
        Listen::Off => return Ok(None),
        Listen::Default(a) => (a, false),
        Listen::Configured(a) => (a, true),
    };
    match TcpListener::bind(addr) {
        Ok(l) => {
            l.set_nonblocking(true).context("cannot make the metrics listener non-blocking")?;
            Ok(Some(l))
        }
        Err(e) if configured => Err(e).with_context(|| {
            format!(
                "cannot listen on {addr} (http.metrics_listen) for /metrics and /health: is another program using it?"
            )
        }),
        Err(e) => {
            tracing::warn!(
                "cannot listen on the default metrics address {addr} ({e}); recording without /metrics and \
                 /health: set http.metrics_listen to a free address, or \"off\""
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
    /// Serves `router` on `listener` from a new thread with a single-threaded tokio runtime.
    pub fn start(listener: TcpListener, router: Router, name: &str) -> anyhow::Result<HttpServer> {
        let addr = listener.local_addr().context("cannot read the listener's address")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build the HTTP server's tokio runtime")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("the HTTP server on {addr} cannot use its socket: {e}");
                            return;
                        }
                    };
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                        tracing::error!("the HTTP server on {addr} failed: {e}");
                    }
                });
            })
            .context("cannot start the HTTP server thread")?;
        Ok(HttpServer { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in progress finish, and joins the thread.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_other_than_loopback_are_refused() {
        assert_eq!(Listen::from_config(Some("off")).unwrap(), Listen::Off);
        assert_eq!(Listen::from_config(None).unwrap(), Listen::Default("127.0.0.1:9750".parse().unwrap()));
        assert_eq!(Listen::from_config(Some("[::1]:1")).unwrap(), Listen::Configured("[::1]:1".parse().unwrap()));
        let e = Listen::from_config(Some("0.0.0.0:9750")).unwrap_err().to_string();
        assert!(e.contains("not a loopback address") && e.contains("TLS and authentication"), "{e}");
    }

    #[test]
    fn a_configured_address_in_use_is_an_error_the_default_a_warning() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(&Listen::Configured(addr)).unwrap_err();
        assert!(format!("{e:#}").contains(&format!("cannot listen on {addr}")), "{e:#}");
        assert!(bind(&Listen::Default(addr)).unwrap().is_none());
    }
}
