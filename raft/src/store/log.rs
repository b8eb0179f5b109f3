//! The Raft log on sled: entries, the vote, the committed id and the purge mark
//! (openraft's `RaftLogStorage`). Appends and votes are fsynced before openraft
//! is told they are durable.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::Ordering;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use tokio::sync::mpsc;

use super::layout::{
    entry_index, entry_key, from_json, to_json, Db, DbError, DbResult, COMMITTED_KEY, ENTRY_PREFIX,
    LOG_META_PREFIX, PURGED_KEY, VOTE_KEY,
};
use crate::types::TypeConfig;

type NodeId = u64;

/// The log half of the store. Clones share the same database.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Db,
    metrics: crate::RaftMetrics,
    flusher: mpsc::UnboundedSender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    /// Must be called inside a tokio runtime: it starts the flusher task, which
    /// ends once every clone of this store is dropped.
    pub(crate) fn new(db: Db, metrics: crate::RaftMetrics) -> Self {
        let (flusher, pending) = mpsc::unbounded_channel();
        tokio::spawn(flush_appends(db.clone(), pending));
        LogStore {
            db,
            metrics,
            flusher,
        }
    }
}

/// Group commit: one fsync covers every append queued before it started, and
/// their callbacks are answered in order. Appends return as soon as their
/// entries are in sled, so openraft can keep appending while a flush runs.
async fn flush_appends(db: Db, mut pending: mpsc::UnboundedReceiver<LogFlushed<TypeConfig>>) {
    let mut batch = Vec::new();
    while let Some(first) = pending.recv().await {
        batch.push(first);
        while let Ok(next) = pending.try_recv() {
            batch.push(next);
        }
        let flushed = db.db.flush_async().await;
        if let Err(e) = &flushed {
            tracing::error!(path = %db.path.display(), error = %e, "flushing raft log failed");
        }
        for callback in batch.drain(..) {
            let result = match &flushed {
                Ok(_) => Ok(()),
                Err(e) => Err(std::io::Error::other(format!(
                    "flushing raft log at {}: {e}",
                    db.path.display()
                ))),
            };
            callback.log_io_completed(result);
        }
    }
}

// ---- Plain, blocking accessors (also used offline by `force_new_cluster`). ----

pub(crate) fn read_vote(db: &Db) -> DbResult<Option<Vote<NodeId>>> {
    db.log.get(VOTE_KEY)?.map(|v| from_json(&v)).transpose()
}

pub(crate) fn read_purged(db: &Db) -> DbResult<Option<LogId<NodeId>>> {
    db.log.get(PURGED_KEY)?.map(|v| from_json(&v)).transpose()
}

pub(crate) fn read_committed(db: &Db) -> DbResult<Option<LogId<NodeId>>> {
    db.log
        .get(COMMITTED_KEY)?
        .map(|v| from_json(&v))
        .transpose()
}

/// The last entry in the log, if any entry is present.
pub(crate) fn last_entry(db: &Db) -> DbResult<Option<Entry<TypeConfig>>> {
    match db
        .log
        .range(entry_key(0).to_vec()..vec![LOG_META_PREFIX])
        .next_back()
    {
        Some(kv) => {
            let (key, value) = kv?;
            Ok(Some(from_json(&db.unseal(&key, &value)?)?))
        }
        None => Ok(None),
    }
}

/// Entries with index in `range`, in order, stopping at the first gap.
pub(crate) fn entries(db: &Db, range: impl RangeBounds<u64>) -> DbResult<Vec<Entry<TypeConfig>>> {
    let start = match range.start_bound() {
        Bound::Included(i) => Bound::Included(entry_key(*i).to_vec()),
        Bound::Excluded(i) => Bound::Excluded(entry_key(*i).to_vec()),
        Bound::Unbounded => Bound::Included(vec![ENTRY_PREFIX]),
    };
    let end = match range.end_bound() {
        Bound::Included(i) => Bound::Included(entry_key(*i).to_vec()),
        Bound::Excluded(i) => Bound::Excluded(entry_key(*i).to_vec()),
        Bound::Unbounded => Bound::Excluded(vec![LOG_META_PREFIX]),
    };
    let mut out: Vec<Entry<TypeConfig>> = Vec::new();
    for kv in db.log.range::<Vec<u8>, _>((start, end)) {
        let (key, value) = kv?;
        let index = entry_index(&key)?;
        if let Some(prev) = out.last() {
            if prev.log_id.index + 1 != index {
                break;
            }
        }
        out.push(from_json(&db.unseal(&key, &value)?)?);
    }
    Ok(out)
}

/// Removes every entry with index >= `from`.
fn remove_from(db: &Db, from: u64, batch: &mut sled::Batch) -> DbResult<()> {
    for kv in db
        .log
        .range(entry_key(from).to_vec()..vec![LOG_META_PREFIX])
    {
        let (key, _) = kv?;
        batch.remove(key);
    }
    Ok(())
}

/// Removes every entry with index <= `upto`.
fn remove_upto(db: &Db, upto: u64, batch: &mut sled::Batch) -> DbResult<()> {
    for kv in db
        .log
        .range(entry_key(0).to_vec()..=entry_key(upto).to_vec())
    {
        let (key, _) = kv?;
        batch.remove(key);
    }
    Ok(())
}

/// Offline rewrite used by `force_new_cluster`: drop every entry, mark `purged`
/// as purged, then hold only `entry`, with the given vote and committed id.
pub(crate) fn reset(
    db: &Db,
    purged: Option<LogId<NodeId>>,
    entry: &Entry<TypeConfig>,
    vote: &Vote<NodeId>,
    committed: &LogId<NodeId>,
) -> DbResult<()> {
    let mut batch = sled::Batch::default();
    remove_from(db, 0, &mut batch)?;
    match purged {
        Some(p) => batch.insert(PURGED_KEY, to_json(&p)?),
        None => batch.remove(PURGED_KEY),
    }
    let key = entry_key(entry.log_id.index);
    batch.insert(&key[..], db.seal(&key, to_json(entry)?)?);
    batch.insert(VOTE_KEY, to_json(vote)?);
    batch.insert(COMMITTED_KEY, to_json(committed)?);
    db.log.apply_batch(batch)?;
    Ok(())
}

fn read_err(e: DbError) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

fn write_err(e: DbError) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        entries(&self.db, range).map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id = read_purged(&self.db).map_err(read_err)?;
        let last = last_entry(&self.db)
            .map_err(read_err)?
            .map(|e| *e.get_log_id());
        let last_log_id = match last {
            Some(l) if Some(l) > last_purged_log_id => Some(l),
            _ => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let write = |e: DbError| -> StorageError<NodeId> {
            StorageIOError::write_vote(AnyError::error(e.to_string())).into()
        };
        self.db
            .log
            .insert(VOTE_KEY, to_json(vote).map_err(write)?)
            .map_err(|e| write(e.into()))?;
        self.db
            .db
            .flush_async()
            .await
            .map_err(|e| write(e.into()))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        read_vote(&self.db)
            .map_err(|e| StorageIOError::read_vote(AnyError::error(e.to_string())).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        if let Some(c) = committed {
            self.metrics
                .commit_index
                .set(i64::try_from(c.index).unwrap_or(i64::MAX));
        }
        let result = match committed {
            Some(c) => {
                to_json(&c).and_then(|v| Ok(self.db.log.insert(COMMITTED_KEY, v).map(|_| ())?))
            }
            None => self
                .db
                .log
                .remove(COMMITTED_KEY)
                .map(|_| ())
                .map_err(DbError::from),
        };
        result.map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        read_committed(&self.db).map_err(read_err)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut bytes = 0u64;
        for entry in entries {
            let key = entry_key(entry.log_id.index);
            let value = to_json(&entry)
                .and_then(|v| self.db.seal(&key, v))
                .map_err(write_err)?;
            bytes += value.len() as u64;
            batch.insert(&key[..], value);
        }
        self.db
            .log
            .apply_batch(batch)
            .map_err(|e| write_err(e.into()))?;
        self.db.appended_bytes.fetch_add(bytes, Ordering::Relaxed);
        // The flusher answers the callback once the entries are on disk.
        if let Err(mpsc::error::SendError(callback)) = self.flusher.send(callback) {
            let message = format!(
                "raft log flusher for {} has stopped",
                self.db.path.display()
            );
            callback.log_io_completed(Err(std::io::Error::other(message.clone())));
            return Err(write_err(DbError::Corrupt(message)));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "truncating raft log");
        let mut batch = sled::Batch::default();
        remove_from(&self.db, log_id.index, &mut batch).map_err(write_err)?;
        self.db
            .log
            .apply_batch(batch)
            .map_err(|e| write_err(e.into()))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "purging raft log");
        let mut batch = sled::Batch::default();
        batch.insert(PURGED_KEY, to_json(&log_id).map_err(write_err)?);
        remove_upto(&self.db, log_id.index, &mut batch).map_err(write_err)?;
        self.db
            .log
            .apply_batch(batch)
            .map_err(|e| write_err(e.into()))?;
        Ok(())
    }
}
