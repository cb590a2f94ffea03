//! Standard output of the commands' reports (a replay's summary, `archive list`, `status`, ...).
//!
//! A reader that goes away (`callvault archive list | head`) ends the report quietly: the rest
//! of it is not written and the command finishes and exits as it would have, instead of
//! panicking. Any other failure to write (a full disk under `> report.txt`) is said once on
//! standard error and makes the exit status 1 ([`failed`]).

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicU8, Ordering};

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(OPEN);

/// Writes `args` to standard output, unless an earlier write found it closed or failing.
pub fn write(args: fmt::Arguments) {
    if STATE.load(Ordering::Relaxed) != OPEN {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => STATE.store(CLOSED, Ordering::Relaxed),
        Err(e) => {
            STATE.store(FAILED, Ordering::Relaxed);
            eprintln!("error: cannot write to standard output: {e}");
        }
    }
}

/// Whether writing to standard output failed for another reason than its reader leaving.
pub fn failed() -> bool {
    STATE.load(Ordering::Relaxed) == FAILED
}

/// `println!` to standard output through [`write`].
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` to standard output through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};
