//! The state machine on sled: the objects, the last applied log id and the last
//! membership (openraft's `RaftStateMachine`), plus building and installing
//! snapshots. Each log entry is applied as one atomic sled batch, so a restart
//! resumes where it stopped without replaying; every applied change is
//! published on the watch channel in log order.

use std::collections::HashMap;
use std::io::Cursor;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::layout::{
    decode_object, encode_object, from_json, object_key, parse_object_key, to_json, Db, DbError,
    DbResult, LAST_APPLIED_KEY, LAST_MEMBERSHIP_KEY, OBJECT_PREFIX, SNAPSHOT_DATA_KEY,
    SNAPSHOT_META_KEY,
};
use crate::types::{base64_bytes, Change, Op, Response, TypeConfig};

type NodeId = u64;
type Membership = StoredMembership<NodeId, BasicNode>;

/// The contents of a snapshot: the whole state machine at `last_applied`.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotContent {
    pub(crate) last_applied: Option<LogId<NodeId>>,
    pub(crate) last_membership: Membership,
    pub(crate) objects: Vec<SnapshotObject>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotObject {
    kind: String,
    id: String,
    version: u64,
    #[serde(with = "base64_bytes")]
    value: Vec<u8>,
}

/// The state-machine half of the store.
pub(crate) struct StateMachine {
    db: Db,
    changes: broadcast::Sender<Change>,
    metrics: crate::RaftMetrics,
}

impl StateMachine {
    pub(crate) fn new(
        db: Db,
        changes: broadcast::Sender<Change>,
        metrics: crate::RaftMetrics,
    ) -> Self {
        StateMachine {
            db,
            changes,
            metrics,
        }
    }

    fn publish(&self, changes: Vec<Change>) {
        for change in changes {
            // An error only means nobody is watching right now.
            let _ = self.changes.send(change);
        }
    }
}

// ---- Plain, blocking operations (also used offline by `force_new_cluster`). ----

pub(crate) fn read_applied(db: &Db) -> DbResult<(Option<LogId<NodeId>>, Membership)> {
    let applied = match db.sm.get(LAST_APPLIED_KEY)? {
        Some(v) => from_json(&v)?,
        None => None,
    };
    let membership = match db.sm.get(LAST_MEMBERSHIP_KEY)? {
        Some(v) => from_json(&v)?,
        None => Membership::default(),
    };
    Ok((applied, membership))
}

/// Applies one log entry atomically and returns its response and the changes it made.
///
/// A batch is checked op by op against the state as the earlier ops of the same
/// batch left it; the first failed `expect_version` rejects the whole batch.
pub(crate) fn apply_entry(db: &Db, entry: &Entry<TypeConfig>) -> DbResult<(Response, Vec<Change>)> {
    let log_id = entry.log_id;
    let index = log_id.index;
    let mut batch = sled::Batch::default();
    let mut changes = Vec::new();
    let response = match &entry.payload {
        EntryPayload::Blank => Response::Applied,
        EntryPayload::Membership(m) => {
            batch.insert(
                LAST_MEMBERSHIP_KEY,
                to_json(&Membership::new(Some(log_id), m.clone()))?,
            );
            Response::Applied
        }
        EntryPayload::Normal(request) => {
            match stage_ops(db, index, &request.ops, &mut batch, &mut changes)? {
                None => Response::Applied,
                Some(conflict) => {
                    // Rejected whole: drop the staged writes, keep only the bookkeeping.
                    batch = sled::Batch::default();
                    changes.clear();
                    conflict
                }
            }
        }
    };
    batch.insert(LAST_APPLIED_KEY, to_json(&Some(log_id))?);
    db.sm.apply_batch(batch)?;
    Ok((response, changes))
}

/// Stages the writes of `ops` into `batch`; returns the conflict if one op's
/// expected version does not hold.
fn stage_ops(
    db: &Db,
    index: u64,
    ops: &[Op],
    batch: &mut sled::Batch,
    changes: &mut Vec<Change>,
) -> DbResult<Option<Response>> {
    // Current version of each key this batch touched (None = absent).
    let mut staged: HashMap<Vec<u8>, Option<u64>> = HashMap::new();
    for op in ops {
        let key = object_key(op.kind(), op.id());
        let current = match staged.get(&key) {
            Some(v) => *v,
            None => match db.sm.get(&key)? {
                Some(stored) => Some(decode_object(&stored)?.0),
                None => None,
            },
        };
        if let Some(expected) = op.expect_version() {
            let actual = current.unwrap_or(0);
            if actual != expected {
                return Ok(Some(Response::Conflict {
                    kind: op.kind().to_string(),
                    id: op.id().to_string(),
                    expected,
                    actual,
                }));
            }
        }
        match op {
            Op::Put {
                kind, id, value, ..
            } => {
                let sealed = db.seal(&key, value.clone())?;
                batch.insert(key.clone(), encode_object(index, &sealed));
                staged.insert(key, Some(index));
                changes.push(Change {
                    index,
                    kind: kind.clone(),
                    id: id.clone(),
                    value: Some(value.clone()),
                });
            }
            Op::Delete { kind, id, .. } => {
                if current.is_some() {
                    batch.remove(key.clone());
                    changes.push(Change {
                        index,
                        kind: kind.clone(),
                        id: id.clone(),
                        value: None,
                    });
                }
                staged.insert(key, None);
            }
        }
    }
    Ok(None)
}

/// Copies the whole state machine. Must not run concurrently with `apply_entry`
/// (sled has no point-in-time reads); the state machine worker guarantees that.
pub(crate) fn copy_state(db: &Db) -> DbResult<SnapshotContent> {
    let (last_applied, last_membership) = read_applied(db)?;
    let mut objects = Vec::new();
    for kv in db.sm.scan_prefix([OBJECT_PREFIX]) {
        let (key, stored) = kv?;
        let (kind, id) = parse_object_key(&key)?;
        let (version, value) = decode_object(&stored)?;
        let value = db.unseal(&key, value)?.into_owned();
        objects.push(SnapshotObject {
            kind,
            id,
            version,
            value,
        });
    }
    Ok(SnapshotContent {
        last_applied,
        last_membership,
        objects,
    })
}

/// Replaces the state machine with `content`, as of `meta`; returns the changes
/// (a put for every object in the snapshot, a delete for every object gone).
pub(crate) fn install_content(
    db: &Db,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    content: SnapshotContent,
) -> DbResult<Vec<Change>> {
    let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
    let mut batch = sled::Batch::default();
    let mut changes = Vec::new();
    let mut keep = std::collections::HashSet::new();
    for object in content.objects {
        let key = object_key(&object.kind, &object.id);
        let sealed = db.seal(&key, object.value.clone())?;
        batch.insert(key.clone(), encode_object(object.version, &sealed));
        keep.insert(key);
        changes.push(Change {
            index,
            kind: object.kind,
            id: object.id,
            value: Some(object.value),
        });
    }
    for kv in db.sm.scan_prefix([OBJECT_PREFIX]) {
        let (key, _) = kv?;
        if !keep.contains(key.as_ref()) {
            let (kind, id) = parse_object_key(&key)?;
            batch.remove(key);
            changes.push(Change {
                index,
                kind,
                id,
                value: None,
            });
        }
    }
    batch.insert(LAST_APPLIED_KEY, to_json(&meta.last_log_id)?);
    batch.insert(LAST_MEMBERSHIP_KEY, to_json(&meta.last_membership)?);
    db.sm.apply_batch(batch)?;
    Ok(changes)
}

pub(crate) fn save_snapshot(
    db: &Db,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: &[u8],
) -> DbResult<()> {
    let mut batch = sled::Batch::default();
    batch.insert(SNAPSHOT_META_KEY, to_json(meta)?);
    batch.insert(
        SNAPSHOT_DATA_KEY,
        db.seal(SNAPSHOT_DATA_KEY, data.to_vec())?,
    );
    db.snapshot.apply_batch(batch)?;
    Ok(())
}

pub(crate) fn load_snapshot(db: &Db) -> DbResult<Option<Snapshot<TypeConfig>>> {
    let meta = match db.snapshot.get(SNAPSHOT_META_KEY)? {
        Some(m) => from_json::<SnapshotMeta<NodeId, BasicNode>>(&m)?,
        None => return Ok(None),
    };
    let data = db
        .snapshot
        .get(SNAPSHOT_DATA_KEY)?
        .ok_or_else(|| DbError::Corrupt("snapshot meta without data".into()))?;
    let data = db.unseal(SNAPSHOT_DATA_KEY, &data)?.into_owned();
    Ok(Some(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    }))
}

pub(crate) fn clear_snapshot(db: &Db) -> DbResult<()> {
    db.snapshot.clear()?;
    Ok(())
}

fn sm_read_err(e: DbError) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::error(e.to_string())).into()
}

fn snapshot_err(
    meta: Option<&SnapshotMeta<NodeId, BasicNode>>,
    e: DbError,
) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(meta.map(|m| m.signature()), AnyError::error(e.to_string()))
        .into()
}

/// Builds a snapshot from a copy taken when the builder was made.
pub(crate) struct SnapshotBuilder {
    db: Db,
    metrics: crate::RaftMetrics,
    content: Result<SnapshotContent, String>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let content = match &self.content {
            Ok(c) => c,
            Err(e) => return Err(sm_read_err(DbError::Corrupt(e.clone()))),
        };
        let last = content.last_applied;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let snapshot_id = match last {
            Some(l) => format!(
                "{}-{}-{}-{nanos}",
                l.leader_id.term, l.leader_id.node_id, l.index
            ),
            None => format!("empty-{nanos}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: content.last_membership.clone(),
            snapshot_id,
        };
        let data = to_json(content).map_err(|e| snapshot_err(Some(&meta), e))?;
        save_snapshot(&self.db, &meta, &data).map_err(|e| snapshot_err(Some(&meta), e))?;
        self.metrics.snapshot(data.len());
        tracing::info!(snapshot = %meta, objects = content.objects.len(), bytes = data.len(), "built raft snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        read_applied(&self.db).map_err(sm_read_err)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let started = std::time::Instant::now();
            let (response, changes) = apply_entry(&self.db, &entry).map_err(|e| {
                StorageError::from(StorageIOError::apply(
                    entry.log_id,
                    AnyError::error(e.to_string()),
                ))
            })?;
            if let Response::Conflict {
                kind,
                id,
                expected,
                actual,
            } = &response
            {
                tracing::debug!(index = entry.log_id.index, %kind, %id, expected, actual, "write batch rejected");
            }
            self.metrics
                .apply_seconds
                .observe(started.elapsed().as_secs_f64());
            self.publish(changes);
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            metrics: self.metrics.clone(),
            content: copy_state(&self.db).map_err(|e| e.to_string()),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let content: SnapshotContent = from_json(&data).map_err(|e| snapshot_err(Some(meta), e))?;
        let changes =
            install_content(&self.db, meta, content).map_err(|e| snapshot_err(Some(meta), e))?;
        save_snapshot(&self.db, meta, &data).map_err(|e| snapshot_err(Some(meta), e))?;
        self.db
            .db
            .flush_async()
            .await
            .map_err(|e| snapshot_err(Some(meta), e.into()))?;
        self.metrics.snapshot(data.len());
        tracing::info!(snapshot = %meta, changes = changes.len(), "installed raft snapshot");
        self.publish(changes);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        load_snapshot(&self.db).map_err(|e| snapshot_err(None, e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use super::*;
    use crate::types::Request;

    fn entry(index: u64, ops: Vec<Op>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request { ops }),
        }
    }

    fn put(id: &str, value: &str, expect_version: Option<u64>) -> Op {
        Op::Put {
            kind: "service".into(),
            id: id.into(),
            value: value.as_bytes().to_vec(),
            expect_version,
        }
    }

    fn version_of(db: &Db, id: &str) -> Option<u64> {
        let stored = db.sm.get(object_key("service", id)).ok().flatten()?;
        decode_object(&stored).ok().map(|(v, _)| v)
    }

    #[test]
    fn with_a_data_key_values_and_snapshots_are_sealed_on_disk(
    ) -> Result<(), Box<dyn std::error::Error>> {
        use crate::store::sealed::DataKey;
        let dir = tempfile::tempdir()?;
        let key = DataKey::generate()?;
        let db = Db::open_sealed(dir.path(), Some(key.clone()))?;
        let secret = "SWMTKN-1-very-secret";
        apply_entry(&db, &entry(1, vec![put("a", secret, None)]))?;
        let raw = db.sm.get(object_key("service", "a"))?.ok_or("no record")?;
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert_eq!(version_of(&db, "a"), Some(1));
        let content = copy_state(&db)?;
        assert_eq!(content.objects[0].value, secret.as_bytes());
        let meta = SnapshotMeta {
            last_log_id: content.last_applied,
            last_membership: content.last_membership.clone(),
            snapshot_id: "s".into(),
        };
        let data = to_json(&content)?;
        save_snapshot(&db, &meta, &data)?;
        let raw = db.snapshot.get(SNAPSHOT_DATA_KEY)?.ok_or("no snapshot")?;
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
        let loaded = load_snapshot(&db)?.ok_or("no snapshot")?;
        assert_eq!(loaded.snapshot.into_inner(), data);
        drop(db);
        // Another key reads nothing.
        let other = Db::open_sealed(dir.path(), Some(DataKey::generate()?))?;
        assert!(matches!(copy_state(&other), Err(DbError::Sealed(_))));
        Ok(())
    }

    #[test]
    fn a_conflicting_batch_changes_nothing_but_still_advances_applied(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = Db::open(dir.path())?;

        let (r, changes) = apply_entry(&db, &entry(1, vec![put("a", "1", Some(0))]))?;
        assert_eq!(r, Response::Applied);
        assert_eq!(changes.len(), 1);
        assert_eq!(version_of(&db, "a"), Some(1));

        // Second op expects "a" to be new: the whole batch, including "b", is rejected.
        let (r, changes) = apply_entry(
            &db,
            &entry(2, vec![put("b", "1", None), put("a", "2", Some(0))]),
        )?;
        assert_eq!(
            r,
            Response::Conflict {
                kind: "service".into(),
                id: "a".into(),
                expected: 0,
                actual: 1
            }
        );
        assert!(changes.is_empty());
        assert_eq!(version_of(&db, "b"), None);
        assert_eq!(read_applied(&db)?.0.map(|l| l.index), Some(2));

        // Ops see the earlier ops of their own batch.
        let (r, _) = apply_entry(
            &db,
            &entry(
                3,
                vec![
                    put("a", "3", Some(1)),
                    put("a", "4", Some(3)),
                    Op::Delete {
                        kind: "service".into(),
                        id: "a".into(),
                        expect_version: Some(3),
                    },
                ],
            ),
        )?;
        assert_eq!(r, Response::Applied);
        assert_eq!(version_of(&db, "a"), None);
        Ok(())
    }

    #[test]
    fn snapshot_content_round_trips_and_install_reports_differences(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let source = Db::open(&dir.path().join("a"))?;
        let target = Db::open(&dir.path().join("b"))?;
        apply_entry(
            &source,
            &entry(1, vec![put("a", "1", None), put("b", "2", None)]),
        )?;
        apply_entry(&target, &entry(1, vec![put("stale", "x", None)]))?;

        let content = copy_state(&source)?;
        let data = to_json(&content)?;
        let meta = SnapshotMeta {
            last_log_id: content.last_applied,
            last_membership: content.last_membership.clone(),
            snapshot_id: "t".into(),
        };
        let changes = install_content(&target, &meta, from_json(&data)?)?;
        assert_eq!(changes.iter().filter(|c| c.value.is_some()).count(), 2);
        assert_eq!(changes.iter().filter(|c| c.value.is_none()).count(), 1);
        assert_eq!(version_of(&target, "a"), Some(1));
        assert_eq!(version_of(&target, "stale"), None);
        Ok(())
    }
}
