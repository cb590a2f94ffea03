//! SIGINT and SIGTERM for the commands that record (`replay`, `run`): the first asks the
//! command to stop as it does at the end of its input; a second, of either kind, ends the
//! process at once with the shell's status for it (the spool keeps what was finished, the next
//! start recovers what was in progress, as after a crash).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

/// The shell's exit status for a command a signal ended: 128 + the signal.
pub fn exit_status(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(130)
}

/// The signal's name as the summary says it.
pub fn name(signal: i32) -> &'static str {
    if signal == SIGTERM { "SIGTERM" } else { "SIGINT" }
}

/// Installs the handlers: the first SIGINT or SIGTERM stores its number in the flag returned
/// (0 until then), a second exits at once.
pub fn install() -> anyhow::Result<Arc<AtomicUsize>> {
    let stop = Arc::new(AtomicUsize::new(0));
    let asked = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, exit_status(sig).into(), asked.clone())
            .and_then(|_| signal_hook::flag::register(sig, asked.clone()))
            .and_then(|_| signal_hook::flag::register_usize(sig, stop.clone(), sig as usize))
            .context("cannot install signal handler")?;
    }
    Ok(stop)
}
