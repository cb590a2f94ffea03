//! `callvault serve`: the API over a data directory, without capturing — for a box that only
//! keeps the archive, or to look at what a `replay` recorded. The index is brought up to date
//! from the record files first (rebuilt when missing or damaged).

use crate::out::outln;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;

use crate::cli::Source;
use crate::http::Listen;
use crate::index::{Index, Opened};

/// `callvault serve` options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Data directory and archives (local archive directories hold the files of recordings
    /// the spool no longer has).
    #[command(flatten)]
    pub data: crate::cli::DataArgs,
    /// Listen address [default: http.api_listen, 127.0.0.1:9751]; port 0 picks a free port
    /// (the address is printed).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
}

/// Runs `callvault serve` until SIGINT/SIGTERM.
pub fn serve(source: &Source, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = source.load(|c| {
        args.data.apply(c);
        if let Some(l) = &args.listen {
            c.http.api_listen = Some(l.clone());
        }
    })?;
    crate::logging::init(&config.log.level, config.log.format);
    let data = &config.storage.data_dir;
    if !data.is_dir() {
        anyhow::bail!("no data directory {}: give the one `run` or `replay` writes to (-o DIR)", data.display());
    }
    let path = crate::index::path_in(data);
    let (mut index, opened) = Index::open(&path)?;
    let mut roots = vec![data.join("recordings")];
    if opened != Opened::Existing {
        if let Opened::Replaced { reason, moved_to } = &opened {
            tracing::warn!("the call index was not usable ({reason}); moved to {}, rebuilding", moved_to.display());
        }
        roots.extend(crate::pipeline::local_archives(&config));
    }
    let report = index.catch_up(&roots)?;
    index.optimize()?;
    let calls = index.len()?;
    drop(index);
    tracing::info!("call index {}: {calls} calls ({} added now)", path.display(), report.added);

    // Serving is all this command does: the default address taken is an error here too.
    let listen = match Listen::from_config(
        "http.api_listen",
        config.http.api_listen.as_deref(),
        crate::api::DEFAULT_LISTEN,
        &config.http,
    )? {
        Listen::Off => anyhow::bail!("http.api_listen is \"off\": give --listen ADDR:PORT"),
        Listen::Default(a) | Listen::Configured(a) => Listen::Configured(a),
    };
    let listener = crate::http::bind(&listen, "http.api_listen", "the API and dashboard")?
        .context("the API listener was not bound")?;
    let security = crate::http::Security::from_config(&config.http, Default::default())?;
    let server = crate::api::serve(&config, listener, None, None, &security)?;
    outln!("serving {calls} calls from {} on {}://{}/", data.display(), security.scheme(), server.addr());

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.stop();
    Ok(ExitCode::SUCCESS)
}
