//! `callvault config check [FILE]` and `callvault config show`.

use crate::out::{out, outln};
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
            out!("{}", config::show(&config, &source.origin()));
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::HashPassword { name } => {
            let password = read_password()?;
            if password.is_empty() {
                anyhow::bail!("the password is empty");
            }
            let hash = crate::http::auth::hash_password(&password);
            outln!("[[http.user]]\nname = {}\npassword_hash = \"{hash}\"", toml_string(name));
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::NewSigningKey { file } => {
            let path = match file {
                Some(path) => path.clone(),
                None => crate::targets::signing_key_path(&source.load(|_| {})?),
            };
            let key = shipper::target::signing::SiteKey::generate(&path)?;
            eprintln!("created the signing key {} (mode 0600); its public key:", path.display());
            out!("{}", key.public_pem());
            eprintln!("fingerprint (keep it offline; `archive verify --key-fingerprint` checks against it):");
            outln!("{}", key.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::NewToken { name } => {
            let (token, sha256) = crate::http::auth::new_token();
            eprintln!("the token (give it to the client as \"Authorization: Bearer TOKEN\"; it is not kept anywhere):");
            eprintln!("{token}");
            eprintln!("add this to the configuration:");
            outln!("[[http.token]]\nname = {}\nsha256 = \"{sha256}\"", toml_string(name));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A password from the terminal (not echoed), or the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        let mut saved = None;
        if let Ok(t) = rustix::termios::tcgetattr(&stdin) {
            let mut quiet = t.clone();
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            if rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet).is_ok() {
                saved = Some(t);
            }
        }
        eprint!("password: ");
        let _ = std::io::stderr().flush();
        let read = stdin.lock().read_line(&mut line);
        if let Some(t) = saved {
            let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &t);
        }
        eprintln!();
        read?;
    } else {
        stdin.lock().read_line(&mut line)?;
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
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
            outln!("{path}: warning: capture interface {iface:?} does not exist on this machine (yet)");
        }
    }
    if problems.is_empty() {
        outln!("{path}: OK");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            outln!("{path}: {p}");
        }
        Ok(ExitCode::from(1))
    }
}
