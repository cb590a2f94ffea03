//! Recordings to the archive: a durable local spool, verified shipping to archive targets, and
//! retries — a finished recording is never lost and never overwritten.
//!
//! * [`spool`] — where the recorder hands over finished recordings ([`Spool::enter`]); the queue
//!   of recordings not yet confirmed by every target, and crash recovery.
//! * [`target`] — archive destinations ([`Target`], [`LocalDir`] and [`S3Target`]), verification, and the
//!   classification of failures into retried and permanent.
//! * [`Shipper`] — the thread with its own tokio runtime that ships queued entries, oldest first,
//!   with bounded concurrency and backoff, and drains on shutdown.
//!
//! Architecture invariant: the shipper only reads recordings from the spool; nothing in this
//! crate knows about packets, calls or codecs. The spool does every file operation through the
//! [`filesystem::Fs`] seam (the real [`filesystem::StdFs`] by default, in tests also a simulated
//! filesystem that loses at power loss what was not fsynced); the targets use `std::fs`. Only
//! the shipper loop is async.

#![allow(clippy::disallowed_methods)] // retries, deadlines and upload dates are wall-clock matters (clippy.toml)

mod faults;
pub mod filesystem;
mod fsutil;
mod ship;
pub mod spool;
pub mod target;

#[cfg(test)]
mod tests;

pub use ship::{
    DIVERTED_KEPT, LatencyHistogram, LeftQueued, Notifier, ShipReport, ShipStats, Shipper, ShipperConfig,
    ShipperHandle, TargetStats,
};
pub use spool::{
    DiskUsage, EnteredAs, Entry, EntryFile, EntryId, NewFile, NewRecording, OwedTarget, Retention, Shipped, Spool,
    SpoolError, SpoolOptions, SweepReport,
};
pub use target::{
    Credentials, CredentialsError, Disposition, LocalDir, LockMode, ObjectInfo, ObjectLock, S3Config, S3Error,
    S3Target, ShipError, Shipment, Target,
};

/// Formats an error with its chain of causes: `outer: cause: root cause`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
