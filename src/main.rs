//! The `callvault` binary.

use clap::Parser;

use callvault::cli::{self, Command, Source};

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // Recordings are private to the service: files 0640, directories 0750.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    // Every call in progress holds its audio file open: take all the open files the hard limit
    // allows (the soft limit is often 1024). A call that still finds none is recorded without
    // audio, logged and counted.
    raise_open_files_limit();
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
        // The report was not all written (a full disk under `> report.txt`): said on stderr.
        Ok(_) if callvault::out::failed() => std::process::ExitCode::from(1),
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Raises the soft limit of open files to the hard limit, and keeps the audio files of calls
/// in progress open only up to what it leaves besides a reserve (see
/// [`mixer::mix::openfiles`]).
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut now = limit.current;
    if limit.current < limit.maximum {
        // Failing leaves the limit as it was: nothing else to do.
        if setrlimit(Resource::Nofile, rustix::process::Rlimit { current: limit.maximum, ..limit }).is_ok() {
            now = limit.maximum;
        }
    }
    if let Some(n) = now {
        mixer::mix::openfiles::set_limit(mixer::mix::openfiles::limit_for(n));
    }
}
