//! The store heals: when a write to this manager's disk fails (disk full, I/O
//! error), that request fails with the reason in words, reads keep working on
//! the copy that is open, and once the disk takes writes again the store reopens
//! its database and restarts Raft in-process, with no daemon restart.
//!
//! Why a rebuild, not a retry inside the log store: both libraries under the store
//! make a write error permanent for the running instance. sled 0.34 keeps the
//! first I/O error of its background writer as a "global error" and returns it
//! from every later write and flush of that `sled::Db` (it is reset only when the
//! database is opened again), so retrying an append on the same handle can never
//! succeed. openraft 0.9 treats any `StorageError` as fatal: its core stops, the
//! state becomes `Shutdown`, and every call returns `Fatal`. Retrying with backoff
//! inside `LogStore::append` would also hold the Raft core (heartbeats, votes)
//! hostage to the disk. So the repair is the one both libraries support:
//! `watch` notices that Raft stopped on its own, records why (asking sled for its
//! global error), probes the data directory with a small fsynced file until a
//! write goes through, then drops the old database handle, opens it again (sled
//! recovers to its last durable state; the log is the source of truth, and
//! entries past the applied mark are re-applied) and starts a new Raft instance
//! on it. Writes meanwhile fail at once with `StoreError::WriteFailed`.
//!
//! A write that failed this way may still be in the log if its bytes reached the
//! disk before the error, as with any Raft write that times out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::Fatal;
use openraft::ServerState;

use super::layout::Db;
use super::{start_raft, Inner};
use crate::error::StoreError;

/// First pause between probes of the disk; doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(4);
/// How much the probe writes: room for a few of sled's 512 KiB log segments,
/// so a reopened store does not fail again on its first write.
const PROBE_BYTES: usize = 2 << 20;
/// The probe file, removed after each probe.
const PROBE_FILE: &str = "write-probe";
/// A key in sled's default tree (unused by the layout) written only to ask sled
/// for its global error.
const PROBE_KEY: &[u8] = b"rswarm-write-probe";

/// Runs for the life of the store: waits for Raft to stop without `shutdown`,
/// then heals. Ends when the store is dropped or shut down.
pub(crate) async fn watch(inner: Weak<Inner>) {
    loop {
        let Some(raft) = inner.upgrade().map(|i| i.raft()) else {
            return;
        };
        let mut metrics = raft.metrics();
        let fatal = loop {
            let stopped = {
                let m = metrics.borrow();
                (m.state == ServerState::Shutdown || m.running_state.is_err())
                    .then(|| m.running_state.clone().err().unwrap_or(Fatal::Stopped))
            };
            if let Some(fatal) = stopped {
                break fatal;
            }
            match tokio::time::timeout(Duration::from_secs(5), metrics.changed()).await {
                Ok(Ok(())) | Err(_) => {}
                // The core task is gone without a last report.
                Ok(Err(_)) => break Fatal::Stopped,
            }
            if inner.strong_count() == 0 {
                return;
            }
        };
        drop(metrics);
        drop(raft);
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.shut_down.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let reason = diagnose(&strong, &fatal);
        tracing::error!(
            raft_id = strong.cfg.raft_id,
            path = %strong.cfg.data_dir.display(),
            %reason,
            error = %fatal,
            "raft stopped: this manager cannot write to its store; writes fail until the disk takes writes again"
        );
        strong.set_fault(Some(reason));
        drop(strong);
        heal(&inner).await;
    }
}

/// Probes the disk until a write goes through, then reopens the store. Returns
/// once healed, or when the store is gone or shut down.
async fn heal(inner: &Weak<Inner>) {
    let mut pause = FIRST_PAUSE;
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.shut_down.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Err(e) = probe(strong.cfg.data_dir.clone()).await {
            tracing::debug!(error = %e, "store still cannot write");
            continue;
        }
        match rebuild(&strong).await {
            Ok(()) => {
                strong.set_fault(None);
                tracing::warn!(
                    raft_id = strong.cfg.raft_id,
                    "the disk takes writes again: raft store reopened and restarted"
                );
                return;
            }
            Err(e) => tracing::warn!(error = %e, "reopening the raft store failed; will retry"),
        }
    }
}

/// Writes and fsyncs `PROBE_BYTES` in `dir`, then removes the file.
async fn probe(dir: PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        let path = dir.join(PROBE_FILE);
        let written = write_probe(&path);
        let _ = std::fs::remove_file(&path);
        written
    })
    .await
    .map_err(std::io::Error::other)?
}

fn write_probe(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(&vec![0u8; PROBE_BYTES])?;
    file.sync_all()
}

/// Stops what is left of the old Raft instance, reopens the database and starts
/// a new instance on it.
async fn rebuild(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let old = inner.raft();
    if let Err(e) = old.shutdown().await {
        tracing::debug!(error = %e, "old raft instance ended with an error");
    }
    drop(old);
    let reopening = inner.clone();
    let db = tokio::task::spawn_blocking(move || reopen(&reopening))
        .await
        .map_err(|e| StoreError::storage(&inner.cfg.data_dir, format!("reopening: {e}")))??;
    let config = Arc::new(inner.cfg.openraft_config()?);
    let raft = start_raft(&inner.cfg, config, &inner.connector, &db, &inner.changes).await?;
    *inner
        .raft
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = raft;
    Ok(())
}

/// Swaps the database handle for a freshly opened one. Readers wait on the lock
/// meanwhile (sled allows one open handle per directory, so the old one must go
/// first); `Db::open` waits for handles still held by ending tasks to be dropped.
fn reopen(inner: &Inner) -> Result<Db, StoreError> {
    let mut slot = inner
        .db
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    drop(slot.take());
    let db = Db::open_sealed(&inner.cfg.data_dir, inner.cfg.data_key.clone())?;
    *slot = Some(db.clone());
    Ok(db)
}

/// Why Raft stopped, in words for an error message ("no space left on device").
pub(crate) fn diagnose(inner: &Inner, fatal: &Fatal<u64>) -> String {
    if let Some(reason) = inner.fault() {
        return reason;
    }
    // sled answers every write with its first I/O error once it has one.
    if let Ok(db) = inner.db() {
        if let Err(e) = db.db.insert(PROBE_KEY, &[]) {
            return describe_sled(&e);
        }
    }
    match fatal {
        Fatal::StorageError(_) => "a storage error (the daemon log has the details)".into(),
        Fatal::Panicked => {
            "its raft worker stopped unexpectedly (the daemon log has the details)".into()
        }
        Fatal::Stopped => "its raft worker stopped (the daemon log has the details)".into(),
    }
}

fn describe_sled(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => describe_io(io),
        sled::Error::Corruption { .. } => "its database is corrupt".into(),
        other => lower_first(&other.to_string()),
    }
}

/// An I/O error in words, without Rust's debug formatting: sled hands back its
/// stored error as `Os { code: 28, kind: StorageFull, message: "…" }` text.
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull => return "no space left on device".into(),
        ErrorKind::QuotaExceeded => return "disk quota exceeded".into(),
        ErrorKind::ReadOnlyFilesystem => return "read-only file system".into(),
        ErrorKind::PermissionDenied => return "permission denied".into(),
        _ => {}
    }
    let text = match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => e.to_string(),
    };
    let text = match text.split("message: \"").nth(1) {
        Some(rest) => rest.split('"').next().unwrap_or(rest).to_string(),
        None => text,
    };
    let text = match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    lower_first(&text)
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_words_also_after_sled_copies_them() {
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(describe_io(&full), "no space left on device");
        // sled's `Clone` keeps the kind and turns the rest into debug text.
        let copied = std::io::Error::new(full.kind(), format!("{full:?}"));
        assert_eq!(describe_io(&copied), "no space left on device");
        let eio = std::io::Error::from_raw_os_error(5);
        let copied = std::io::Error::new(eio.kind(), format!("{eio:?}"));
        assert_eq!(describe_io(&eio), "input/output error");
        assert_eq!(describe_io(&copied), "input/output error");
        assert_eq!(
            describe_sled(&sled::Error::Io(std::io::Error::from_raw_os_error(30))),
            "read-only file system"
        );
    }
}
