//! Logs on stderr for a terminal, a file or the journal: colour only when stderr is a terminal,
//! no timestamps of its own under systemd (the journal stamps each line), one JSON object per
//! line with `log.format = "json"`, and a level that a configuration reload can change.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LogFormat;

/// The installed logger; changes the level on reload.
#[derive(Debug)]
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    /// RUST_LOG was set: it wins over the configuration, also on reload.
    from_env: bool,
}

/// Installs the logger for the whole process (once).
pub fn init(level: &str, format: LogFormat) -> Logging {
    let env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = env
        .as_deref()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    let (filter, handle) = reload::Layer::new(filter);
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let output = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text if journal => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
    };
    // A second initialisation (tests that call commands in one process) keeps the first logger.
    let _ = tracing_subscriber::registry().with(filter).with(output).try_init();
    Logging { filter: handle, from_env: env.is_some() }
}

impl Logging {
    /// Applies a new level or filter (unless RUST_LOG set it). The text was checked when the
    /// configuration was loaded.
    pub fn set_level(&self, level: &str) {
        if self.from_env {
            return;
        }
        match EnvFilter::try_new(level) {
            Ok(filter) => {
                if let Err(e) = self.filter.reload(filter) {
                    tracing::warn!("cannot change the log level: {e}");
                }
            }
            Err(e) => tracing::warn!("log level {level:?} not applied: {e}"),
        }
    }
}
