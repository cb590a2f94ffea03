//! An HTTP listener on its own thread with its own small tokio runtime, so that a slow client
//! never holds up capture, mixing or shipping. The address is bound before the thread starts:
//! a taken port is an error at start, said with the address.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use anyhow::Context;
use axum::Router;
use tokio::sync::oneshot;

/// How long stopping waits for requests in flight.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A running listener; stopped (after in-flight requests finish) by [`Server::stop`] or drop.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` and serves `router` on it. `what` names the listener in errors and logs.
    pub fn start(what: &str, listen: SocketAddr, router: Router) -> anyhow::Result<Server> {
        let listener =
            TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen} for the {what}"))?;
        listener.set_nonblocking(true).with_context(|| format!("cannot listen on {listen} for the {what}"))?;
        let addr = listener.local_addr().with_context(|| format!("cannot listen on {listen} for the {what}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .with_context(|| format!("cannot start the {what}'s runtime"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let name = what.to_owned();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("the {name} cannot serve on {addr}: {e}");
                            return;
                        }
                    };
                    // Stopping lets requests in flight finish, but a download or a live stream
                    // is not waited for longer than STOP_GRACE.
                    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
                    let told = stopping.clone();
                    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                        let _ = stopped.await;
                        told.notify_one();
                    });
                    tokio::select! {
                        result = std::future::IntoFuture::into_future(serve) => {
                            if let Err(e) = result {
                                tracing::error!("the {name} on {addr} stopped: {e}");
                            }
                        }
                        () = async {
                            stopping.notified().await;
                            tokio::time::sleep(STOP_GRACE).await;
                        } => tracing::warn!("the {name}: requests still running after {STOP_GRACE:?} were cut"),
                    }
                });
            })
            .with_context(|| format!("cannot start the {what}'s thread"))?;
        tracing::info!("{what} on http://{addr}/");
        Ok(Server { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on (the port chosen when the configuration said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and waits for in-flight requests.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
