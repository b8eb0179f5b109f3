//! What travels inside the opaque `bytes data` of the Raft gRPC service: JSON
//! encodings of openraft's requests and results, the snapshot chunk, and the
//! answer to a forwarded write. The client side (`network`, `forward`) and the
//! server side (`service`) both speak through these definitions.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteResponse,
};
use openraft::{BasicNode, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};

use crate::types::{base64_bytes, TypeConfig};

/// Largest gRPC message either side accepts: a full AppendEntries batch or a
/// snapshot chunk, JSON encoded, with plenty of room.
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

pub(crate) type AppendResult = Result<AppendEntriesResponse<u64>, RaftError<u64>>;
pub(crate) type VoteResult = Result<VoteResponse<u64>, RaftError<u64>>;
pub(crate) type SnapshotResult =
    Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>;

/// One chunk of a snapshot (openraft's `InstallSnapshotRequest`, with the bytes
/// as base64 rather than a JSON array of numbers).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotChunk {
    vote: Vote<u64>,
    meta: SnapshotMeta<u64, BasicNode>,
    offset: u64,
    #[serde(with = "base64_bytes")]
    data: Vec<u8>,
    done: bool,
}

impl From<InstallSnapshotRequest<TypeConfig>> for SnapshotChunk {
    fn from(r: InstallSnapshotRequest<TypeConfig>) -> Self {
        SnapshotChunk {
            vote: r.vote,
            meta: r.meta,
            offset: r.offset,
            data: r.data,
            done: r.done,
        }
    }
}

impl From<SnapshotChunk> for InstallSnapshotRequest<TypeConfig> {
    fn from(c: SnapshotChunk) -> Self {
        InstallSnapshotRequest {
            vote: c.vote,
            meta: c.meta,
            offset: c.offset,
            data: c.data,
            done: c.done,
        }
    }
}

/// The leader's answer to a forwarded write (`Raft.Propose`). A failure that is
/// none of these travels in `RaftReply.error`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ProposeReply {
    /// Committed and applied at this index.
    Committed { index: u64 },
    /// Committed at `index`, but rejected whole by a version check.
    Conflict {
        index: u64,
        kind: String,
        id: String,
        expected: u64,
        actual: u64,
    },
    /// The receiver is not the leader; nothing was proposed, try the leader.
    NotLeader,
    /// Proposed, but not committed within the leader's write timeout (no quorum).
    /// It may still commit later.
    NoQuorum,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("encoding raft message: {e}"))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("decoding raft message: {e}"))
}
