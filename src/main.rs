//! The `callvault` binary.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use callvault::{cli, replay, run};

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let result = match cli.command {
        cli::Command::Replay(args) => replay::replay(args),
        cli::Command::Run(args) => run::run(args),
        cli::Command::Ship(args) => callvault::ship::ship(args),
        cli::Command::Archive(args) => callvault::archive::archive(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
