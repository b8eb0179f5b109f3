//! The errors a caller of the store can see, each saying what failed and where.

use std::path::PathBuf;

/// How a `WriteFailed` message starts; a forwarded write's failure is recognised by it.
pub(crate) const WRITE_FAILED: &str = "the manager could not write to its store: ";

/// Everything that can go wrong with the replicated store.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// No leader could be reached within the write timeout (too few managers online,
    /// or this manager is cut off from them). A write that timed out after reaching a
    /// leader may still commit later.
    #[error("The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.")]
    NoLeader,

    /// An `expect_version` in the batch did not match; nothing of the batch was applied.
    #[error("update out of sequence: {kind} {id} is at version {actual}, not {expected}")]
    Conflict {
        kind: String,
        id: String,
        expected: u64,
        actual: u64,
    },

    /// Reading or writing the on-disk state failed.
    #[error("raft storage at {}: {message}", path.display())]
    Storage { path: PathBuf, message: String },

    /// A stored object is not the protobuf message the caller asked for.
    #[error("stored {kind} {id} cannot be decoded: {message}")]
    Decode {
        kind: String,
        id: String,
        message: String,
    },

    /// This manager could not write to its own disk (disk full, I/O error). The
    /// write failed; reads keep working, and writes work again once the store has
    /// healed (see `store::heal`). The reason is in words, e.g. "no space left on device".
    #[error("the manager could not write to its store: {0}")]
    WriteFailed(String),

    /// The batch itself is malformed (for example an empty kind).
    #[error("invalid store operation: {0}")]
    InvalidOp(String),

    /// `bootstrap` on a manager that already has Raft state.
    #[error("this manager already has raft state at {} (it is part of a swarm); it cannot bootstrap a new one", path.display())]
    AlreadyInitialized { path: PathBuf },

    /// A membership change was refused or did not finish.
    #[error("manager membership change failed: {0}")]
    Membership(String),

    /// Talking to another manager failed in a way that retrying does not fix.
    #[error("raft transport to {addr}: {message}")]
    Transport { addr: String, message: String },

    /// openraft itself failed (a fatal storage error, or a panic in its tasks).
    #[error("raft: {0}")]
    Raft(String),

    /// The timing settings are not usable.
    #[error("invalid raft config: {0}")]
    Config(String),

    /// The store was shut down.
    #[error("the raft store is shut down")]
    Shutdown,
}

impl StoreError {
    pub(crate) fn storage(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        StoreError::Storage {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_failure_reads_as_one_sentence_with_the_reason() {
        let e = StoreError::WriteFailed("no space left on device".into());
        assert_eq!(
            e.to_string(),
            "the manager could not write to its store: no space left on device"
        );
        assert!(e.to_string().starts_with(WRITE_FAILED));
    }
}
