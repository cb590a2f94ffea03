//! The index's one writer: a thread that takes calls from the finishers and commits them in
//! batches (one transaction per batch), so that indexing never holds up a finisher.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use super::{Index, IndexedCall};

/// Calls waiting to be indexed before a finisher gives up on sending (the call is then indexed
/// from its record file in the spool; it is there either way).
const QUEUE: usize = 8192;
/// Calls committed in one transaction at most.
const BATCH: usize = 512;

/// What the writer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Calls committed to the index.
    pub indexed: u64,
    /// Calls whose commit failed (logged; indexed again at the next start).
    pub failed: u64,
    /// Calls not queued because the writer was behind (indexed from the spool once it caught up).
    pub skipped: u64,
    /// Calls indexed from record files (the rebuild, or what an earlier run left unindexed).
    pub caught_up: u64,
}

/// The writer thread.
#[derive(Debug)]
pub struct IndexWriter {
    tx: Option<Sender<IndexedCall>>,
    handle: Option<JoinHandle<WriterStats>>,
}

/// Where finishers hand calls to the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ToIndex {
    tx: Sender<IndexedCall>,
    skipped: Arc<AtomicU64>,
}

impl ToIndex {
    /// Queues a call; never blocks.
    pub fn send(&self, call: IndexedCall) {
        match self.tx.try_send(call) {
            Ok(()) => {}
            Err(TrySendError::Full(c)) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(call = %c.name(), "the call index is behind; this call is indexed at the next start");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl IndexWriter {
    /// Starts the writer thread over an open index. It first indexes the record files under
    /// `catch_up` that are not indexed yet ([`Index::catch_up`]: the whole rebuild of a new
    /// index), then the calls the finishers send. Calls the finishers could not queue while it
    /// was behind are found again in `spool_records` as soon as it has caught up.
    pub fn start(
        index: Index,
        catch_up: Vec<PathBuf>,
        spool_records: PathBuf,
    ) -> std::io::Result<(IndexWriter, ToIndex)> {
        let (tx, rx) = bounded(QUEUE);
        let skipped = Arc::new(AtomicU64::new(0));
        let counted = skipped.clone();
        let handle = std::thread::Builder::new().name("index".into()).spawn(move || {
            let mut index = index;
            let mut stats = WriterStats::default();
            catch_up_into(&mut index, &catch_up, &mut stats);
            write(&mut index, &rx, &counted, &spool_records, &mut stats);
            stats.skipped = counted.load(Ordering::Relaxed);
            stats
        })?;
        Ok((IndexWriter { tx: Some(tx.clone()), handle: Some(handle) }, ToIndex { tx, skipped }))
    }

    /// Waits for every queued call to be committed (once every [`ToIndex`] is dropped).
    pub fn finish(mut self) -> WriterStats {
        drop(self.tx.take());
        self.handle.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }
}

fn catch_up_into(index: &mut Index, roots: &[PathBuf], stats: &mut WriterStats) {
    if roots.is_empty() {
        return;
    }
    match index.catch_up(roots) {
        Ok(report) => {
            stats.caught_up += report.added;
            if report.added > 0 || report.unreadable > 0 {
                tracing::info!(
                    "call index: {} recordings indexed from the record files ({} already were, {} unreadable)",
                    report.added,
                    report.seen - report.added - report.unreadable,
                    report.unreadable
                );
            }
        }
        Err(e) => tracing::error!("call index: the record files could not all be indexed: {e}"),
    }
}

fn write(
    index: &mut Index,
    rx: &Receiver<IndexedCall>,
    skipped: &AtomicU64,
    spool_records: &Path,
    stats: &mut WriterStats,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut since_optimize = 0u64;
    let mut skips_seen = 0;
    loop {
        // Calls that did not fit in the queue are in the spool: index them from there once
        // the queue is empty again.
        let skips = skipped.load(Ordering::Relaxed);
        if skips != skips_seen && rx.is_empty() {
            skips_seen = skips;
            catch_up_into(index, &[spool_records.to_owned()], stats);
        }
        let Ok(first) = rx.recv() else { break };
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        match index.insert(&batch) {
            Ok(()) => {
                stats.indexed += batch.len() as u64;
                since_optimize += batch.len() as u64;
            }
            Err(e) => {
                stats.failed += batch.len() as u64;
                tracing::error!(
                    "{} calls not indexed (they are in the spool; the next start indexes them): {e}",
                    batch.len()
                );
            }
        }
        batch.clear();
        if since_optimize >= 10_000 {
            since_optimize = 0;
            let _ = index.optimize();
        }
    }
    if skipped.load(Ordering::Relaxed) != skips_seen {
        catch_up_into(index, &[spool_records.to_owned()], stats);
    }
    let _ = index.optimize();
}
