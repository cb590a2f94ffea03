//! `callvault config check [FILE]` and `callvault config show`.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::{ConfigArgs, ConfigCommand, Source};
use crate::config::{self, archive_names};

/// Runs a `config` command.
pub fn config(source: &Source, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ConfigCommand::Check { file } => check(source, file.as_deref()),
        ConfigCommand::Show => {
            let config = source.load(|_| {})?;
            print!("{}", config::show(&config, &source.origin()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Checks the file (syntax, keys, types, values) and what it refers to that can be checked
/// without starting: the credentials of each S3 archive and the capture interfaces.
fn check(source: &Source, file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let source = match file {
        Some(path) => Source { path: Some(path.to_owned()), ..source.clone() },
        None => source.clone(),
    };
    let Some(path) = source.path().map(|p| p.display().to_string()) else {
        bail!("no configuration file: {} does not exist; name one: callvault config check FILE", config::DEFAULT_PATH);
    };
    let config = source.load(|_| {})?;
    let mut problems = Vec::new();
    let archives = config.archives();
    for (archive, name) in archives.iter().zip(archive_names(&archives)) {
        if archive.is_s3()
            && let Err(e) = crate::targets::credentials(archive)
        {
            problems.push(format!("archive {name:?}: {e:#}"));
        }
    }
    for iface in &config.capture.interfaces {
        if !std::path::Path::new("/sys/class/net").join(iface).exists() {
            println!("{path}: warning: capture interface {iface:?} does not exist on this machine (yet)");
        }
    }
    if problems.is_empty() {
        println!("{path}: OK");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("{path}: {p}");
        }
        Ok(ExitCode::from(1))
    }
}
