//! The on-disk layout: one sled database per manager with three trees, and the
//! key and value encodings inside them. Everything that touches sled directly
//! goes through the names defined here.
//!
//! - `raft_log`: log entries under `0x00 ++ index (big endian)`, JSON encoded; and
//!   the log's bookkeeping under `0x01 ++ name` (`vote`, `committed`, `last_purged`).
//!   Entries and bookkeeping share a tree so a purge is one atomic batch.
//! - `state_machine`: objects under `o ++ kind ++ 0x00 ++ id`, valued
//!   `version (8 bytes, big endian) ++ value`; and `m/last_applied`,
//!   `m/last_membership` (JSON). One entry's effects are one atomic batch.
//! - `snapshot`: the last snapshot built or installed (`meta` JSON, `data` bytes).
//!
//! With a data key (encryption at rest, `sealed.rs`), log entries, object values
//! and the snapshot's data are stored sealed, bound to their sled key; the
//! bookkeeping (vote, committed, purge mark, applied index, membership) and the
//! object versions stay in clear.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sealed::{DataKey, SealError};
use crate::error::StoreError;

pub(crate) const LOG_TREE: &str = "raft_log";
pub(crate) const SM_TREE: &str = "state_machine";
pub(crate) const SNAPSHOT_TREE: &str = "snapshot";

pub(crate) const ENTRY_PREFIX: u8 = 0x00;
pub(crate) const LOG_META_PREFIX: u8 = 0x01;
pub(crate) const VOTE_KEY: &[u8] = b"\x01vote";
pub(crate) const COMMITTED_KEY: &[u8] = b"\x01committed";
pub(crate) const PURGED_KEY: &[u8] = b"\x01last_purged";

pub(crate) const OBJECT_PREFIX: u8 = b'o';
pub(crate) const LAST_APPLIED_KEY: &[u8] = b"m/last_applied";
pub(crate) const LAST_MEMBERSHIP_KEY: &[u8] = b"m/last_membership";

pub(crate) const SNAPSHOT_META_KEY: &[u8] = b"meta";
pub(crate) const SNAPSHOT_DATA_KEY: &[u8] = b"data";

/// How long `open` keeps retrying while another handle (for example a store that
/// is still shutting down in this process) holds the database lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// A failure inside the storage layer, before it is given a path or an openraft subject.
#[derive(thiserror::Error, Debug)]
pub(crate) enum DbError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("encrypted record: {0}")]
    Sealed(#[from] SealError),
}

pub(crate) type DbResult<T> = Result<T, DbError>;

/// The open database and its trees. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) db: sled::Db,
    pub(crate) log: sled::Tree,
    pub(crate) sm: sled::Tree,
    pub(crate) snapshot: sled::Tree,
    pub(crate) path: PathBuf,
    /// The data key records are sealed with; `None` stores them in clear.
    pub(crate) key: Option<DataKey>,
    /// Bytes of log entries appended through this handle since `compaction` last
    /// compacted the log (shared by clones).
    pub(crate) appended_bytes: Arc<AtomicU64>,
}

impl Db {
    /// Opens (creating if needed) the database in `path`, waiting a little if
    /// another handle in this process still holds its lock. Blocking.
    #[cfg(test)]
    pub(crate) fn open(path: &Path) -> Result<Db, StoreError> {
        Db::open_sealed(path, None)
    }

    /// [`Db::open`] with records sealed by `key` (in clear with `None`).
    pub(crate) fn open_sealed(path: &Path, key: Option<DataKey>) -> Result<Db, StoreError> {
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError::storage(path, format!("cannot create directory: {e}")))?;
        let started = Instant::now();
        let db = loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) && started.elapsed() < LOCK_WAIT => {
                    tracing::debug!(path = %path.display(), "raft storage is locked, waiting");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(StoreError::storage(
                        path,
                        format!("cannot open database (is another rswarm daemon using it?): {e}"),
                    ))
                }
            }
        };
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| StoreError::storage(path, format!("cannot open tree {name}: {e}")))
        };
        Ok(Db {
            log: tree(LOG_TREE)?,
            sm: tree(SM_TREE)?,
            snapshot: tree(SNAPSHOT_TREE)?,
            db,
            path: path.to_path_buf(),
            key,
            appended_bytes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The stored form of `plain` under sled key `aad`: sealed when the store
    /// has a data key.
    pub(crate) fn seal(&self, aad: &[u8], plain: Vec<u8>) -> DbResult<Vec<u8>> {
        match &self.key {
            Some(k) => Ok(k.seal(aad, &plain)?),
            None => Ok(plain),
        }
    }

    /// The clear form of a record stored under sled key `aad`.
    pub(crate) fn unseal<'a>(
        &self,
        aad: &[u8],
        stored: &'a [u8],
    ) -> DbResult<std::borrow::Cow<'a, [u8]>> {
        match &self.key {
            Some(k) => Ok(std::borrow::Cow::Owned(k.open(aad, stored)?)),
            None => Ok(std::borrow::Cow::Borrowed(stored)),
        }
    }

    /// Whether any Raft state exists: a vote, a log entry, a purge mark or an
    /// applied membership.
    pub(crate) fn has_raft_state(&self) -> DbResult<bool> {
        if self.log.get(VOTE_KEY)?.is_some() || self.log.get(PURGED_KEY)?.is_some() {
            return Ok(true);
        }
        if self
            .log
            .scan_prefix([ENTRY_PREFIX])
            .next()
            .transpose()?
            .is_some()
        {
            return Ok(true);
        }
        Ok(self.sm.get(LAST_MEMBERSHIP_KEY)?.is_some())
    }

    pub(crate) fn err(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::storage(&self.path, message)
    }
}

fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

pub(crate) fn entry_key(index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = ENTRY_PREFIX;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

pub(crate) fn entry_index(key: &[u8]) -> DbResult<u64> {
    let bytes: [u8; 8] = key
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DbError::Corrupt(format!("log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

pub(crate) fn kind_prefix(kind: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.len() + 2);
    key.push(OBJECT_PREFIX);
    key.extend_from_slice(kind.as_bytes());
    key.push(0);
    key
}

pub(crate) fn object_key(kind: &str, id: &str) -> Vec<u8> {
    let mut key = kind_prefix(kind);
    key.extend_from_slice(id.as_bytes());
    key
}

/// `(kind, id)` of an object key.
pub(crate) fn parse_object_key(key: &[u8]) -> DbResult<(String, String)> {
    let rest = key
        .strip_prefix(&[OBJECT_PREFIX])
        .ok_or_else(|| DbError::Corrupt("object key without prefix".into()))?;
    let split = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| DbError::Corrupt("object key without kind separator".into()))?;
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|e| DbError::Corrupt(format!("object key: {e}")))
    };
    Ok((text(&rest[..split])?, text(&rest[split + 1..])?))
}

pub(crate) fn encode_object(version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// `(version, value)` of a stored object.
pub(crate) fn decode_object(stored: &[u8]) -> DbResult<(u64, &[u8])> {
    if stored.len() < 8 {
        return Err(DbError::Corrupt(format!(
            "object record of {} bytes",
            stored.len()
        )));
    }
    let (version, value) = stored.split_at(8);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(version);
    Ok((u64::from_be_bytes(bytes), value))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> DbResult<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> DbResult<T> {
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_round_trip_and_sort_by_id_within_a_kind() {
        let key = object_key("service", "web");
        assert_eq!(
            parse_object_key(&key).ok(),
            Some(("service".into(), "web".into()))
        );
        assert!(object_key("service", "a") < object_key("service", "b"));
        assert!(key.starts_with(&kind_prefix("service")));
        assert!(!object_key("services", "x").starts_with(&kind_prefix("service")));
    }

    #[test]
    fn entry_keys_sort_by_index() {
        assert!(entry_key(9) < entry_key(10));
        assert!(entry_key(u64::MAX)[0] < LOG_META_PREFIX);
        assert_eq!(entry_index(&entry_key(42)).ok(), Some(42));
    }
}
