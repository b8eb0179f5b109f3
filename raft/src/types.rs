//! The data that travels through Raft: the openraft type config, the batch of
//! operations a write proposes (`Request`), what applying it answers
//! (`Response`), and the objects, changes and status the store hands out.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// openraft types for rswarm: u64 node ids, `BasicNode` (the advertised address),
    /// a batch of `Op`s per log entry, snapshots held in memory.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// One change in a write batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Create or replace `kind/id`. `expect_version`: `None` = unconditional,
    /// `Some(0)` = must not exist yet, `Some(v)` = must be at version `v`.
    Put {
        kind: String,
        id: String,
        #[serde(with = "base64_bytes")]
        value: Vec<u8>,
        expect_version: Option<u64>,
    },
    /// Remove `kind/id` (a no-op if it does not exist and no version is expected).
    Delete {
        kind: String,
        id: String,
        expect_version: Option<u64>,
    },
}

impl Op {
    pub(crate) fn kind(&self) -> &str {
        match self {
            Op::Put { kind, .. } | Op::Delete { kind, .. } => kind,
        }
    }

    pub(crate) fn id(&self) -> &str {
        match self {
            Op::Put { id, .. } | Op::Delete { id, .. } => id,
        }
    }

    pub(crate) fn expect_version(&self) -> Option<u64> {
        match self {
            Op::Put { expect_version, .. } | Op::Delete { expect_version, .. } => *expect_version,
        }
    }
}

/// The application payload of one Raft log entry: a batch applied all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub ops: Vec<Op>,
}

/// What applying one log entry did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Every op was applied; objects written got version = the entry's index.
    Applied,
    /// The batch was rejected whole because of this op's expected version.
    Conflict {
        kind: String,
        id: String,
        expected: u64,
        actual: u64,
    },
}

/// A stored object, as read from this manager's copy of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub kind: String,
    pub id: String,
    /// The log index of the write that last put it.
    pub version: u64,
    pub value: Vec<u8>,
}

/// One applied change, as delivered by `Store::watch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The log index that made the change (the snapshot's last index when the
    /// change comes from installing a snapshot).
    pub index: u64,
    pub kind: String,
    pub id: String,
    /// The new value; `None` when the object was deleted.
    pub value: Option<Vec<u8>>,
}

/// A point-in-time view of this manager's Raft state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    pub raft_id: u64,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: u64,
    pub last_applied: u64,
    pub snapshot_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Every member, voter or learner, with its advertised address.
    pub members: Vec<(u64, String)>,
}

/// Serde for byte strings as base64 text, so JSON payloads stay compact.
pub(crate) mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
