//! The `callvault` binary.

use clap::Parser;

use callvault::cli::{self, Command, Source};

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // Recordings are private to the service: files 0640, directories 0750.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    let source = Source::from_cli(&cli);
    let result = match &cli.command {
        Command::Replay(args) => callvault::replay::replay(&source, args),
        Command::Run(args) => callvault::run::run(&source, args),
        Command::Ship(args) => callvault::ship::ship(&source, args),
        Command::Archive(args) => callvault::archive::archive(&source, args.clone()),
        Command::Config(args) => callvault::config_command::config(&source, args),
        Command::Status(args) => callvault::ship::status(&source, args),
        Command::Serve(args) => callvault::serve::serve(&source, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
