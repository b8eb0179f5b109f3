//! The loops' in-memory copy of the store: nodes, services, tasks and the
//! cluster object, loaded once when a manager becomes leader and then kept
//! current from the store's change stream, so a pass over 100,000 tasks never
//! re-reads (or re-decodes) the whole store. Shared by the orchestrators and
//! the scheduler; each loop keeps its own copy.
//!
//! Writes go through a [`Batch`]: every put or delete is applied to the view
//! at once (so the next pass does not decide the same thing again) and sent
//! to the store in chunks. A chunk the store refuses (a version conflict:
//! someone else wrote one of its tasks first) is rolled back by re-reading
//! exactly those tasks from the store; the loop then decides again.
//!
//! A [`TaskObserver`] sees every change of a task in the view (from the
//! stream, from our own batches and from roll-backs); the scheduler keeps its
//! per-node accounting that way.

use std::collections::{HashMap, HashSet};

use prost::Message;
use rswarm_proto::types::{Cluster, Meta, Node, Service, Task, Version};
use rswarm_raft::{Change, Op, Store, StoreError};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::broadcast::Receiver;

use super::{task, update};
use crate::error::ManagerError;
use crate::objects::{self, KIND_CLUSTER, KIND_NODE, KIND_SERVICE, KIND_TASK};

/// Ops per store write. Big enough that 100,000 tasks take ~100 Raft entries,
/// small enough that one conflicting task only delays a few hundred others.
pub(crate) const WRITE_CHUNK: usize = 1_000;
/// Bytes of task values per store write: a chunk of big tasks (each up to
/// a 512 KiB spec) is cut earlier, so one Raft entry stays about 1 MiB.
pub(crate) const WRITE_CHUNK_BYTES: usize = 1024 * 1024;

/// The bytes an op carries.
fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Put { value, .. } => value.len(),
        _ => 0,
    }
}

/// The next chunk of `ops`: at most [`WRITE_CHUNK`] ops and, past the
/// first, at most [`WRITE_CHUNK_BYTES`].
fn next_chunk(ops: &mut std::iter::Peekable<std::vec::IntoIter<Op>>) -> Vec<Op> {
    let mut chunk = Vec::new();
    let mut bytes = 0;
    while chunk.len() < WRITE_CHUNK {
        let Some(op) = ops.peek() else { break };
        let size = op_bytes(op);
        if !chunk.is_empty() && bytes + size > WRITE_CHUNK_BYTES {
            break;
        }
        bytes += size;
        if let Some(op) = ops.next() {
            chunk.push(op);
        }
    }
    chunk
}

/// Sees every change of a task in a view.
pub(crate) trait TaskObserver {
    fn task_changed(&mut self, old: Option<&Task>, new: Option<&Task>);
}

/// The orchestrators need no per-task bookkeeping beyond the view itself.
impl TaskObserver for () {
    fn task_changed(&mut self, _old: Option<&Task>, _new: Option<&Task>) {}
}

/// What a change did to the view, for the loop to mark as needing work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Touched {
    Node,
    Service(String),
    /// A task of this service changed.
    Task(String),
    Cluster,
}

/// The cached objects, keyed by ID.
pub(crate) struct ClusterView<O: TaskObserver> {
    pub nodes: HashMap<String, Node>,
    pub services: HashMap<String, Service>,
    pub tasks: HashMap<String, Task>,
    /// Task IDs of each service ID (also for services that no longer exist).
    pub tasks_by_service: HashMap<String, HashSet<String>>,
    pub cluster: Option<Cluster>,
    pub observer: O,
}

/// The store version an object was read at (0: never written).
pub(crate) fn version_of(meta: Option<&Meta>) -> u64 {
    meta.and_then(|m| m.version.as_ref())
        .map(|v| v.index)
        .unwrap_or(0)
}

fn stamp(meta: &mut Option<Meta>, index: u64) {
    meta.get_or_insert_with(Default::default).version = Some(Version { index });
}

impl<O: TaskObserver> ClusterView<O> {
    /// Reads everything from the store. Subscribe to `store.watch()` before
    /// calling, so nothing written meanwhile is missed.
    pub(crate) fn load(store: &Store, observer: O) -> Result<Self, ManagerError> {
        let mut view = ClusterView::empty(observer);
        view.cluster = objects::cluster(store).ok();
        for n in objects::list::<Node>(store)? {
            view.nodes.insert(n.id.clone(), n);
        }
        for s in objects::list::<Service>(store)? {
            view.services.insert(s.id.clone(), s);
        }
        for t in objects::list::<Task>(store)? {
            view.insert_task(t);
        }
        Ok(view)
    }

    /// A view of nothing.
    pub(crate) fn empty(observer: O) -> Self {
        ClusterView {
            nodes: HashMap::new(),
            services: HashMap::new(),
            tasks: HashMap::new(),
            tasks_by_service: HashMap::new(),
            cluster: None,
            observer,
        }
    }

    /// Tasks of a service, in no particular order.
    pub(crate) fn service_tasks<'a>(
        &'a self,
        service_id: &str,
    ) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks_by_service
            .get(service_id)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.tasks.get(id))
    }

    /// The cluster's task history retention limit (Docker's default: 5).
    pub(crate) fn history_limit(&self) -> usize {
        self.cluster
            .as_ref()
            .and_then(|c| c.spec.as_ref())
            .map(|s| s.task_history_retention_limit as usize)
            .unwrap_or(5)
    }

    /// Applies one change from the store's stream. Changes older than what
    /// the view holds (our own writes already applied) are ignored.
    pub(crate) fn apply(&mut self, change: &Change) -> Option<Touched> {
        match change.kind.as_str() {
            KIND_TASK => {
                let current = self
                    .tasks
                    .get(&change.id)
                    .map(|t| version_of(t.meta.as_ref()));
                if current.is_some_and(|v| v > change.index) {
                    return None;
                }
                match &change.value {
                    Some(bytes) => {
                        let mut task = decode::<Task>(change, bytes)?;
                        stamp(&mut task.meta, change.index);
                        let matters = match self.tasks.get(&task.id) {
                            None => true,
                            Some(old) => self.change_matters(old, &task),
                        };
                        let service = task.service_id.clone();
                        self.insert_task(task);
                        matters.then_some(Touched::Task(service))
                    }
                    None => self
                        .remove_task(&change.id)
                        .map(|t| Touched::Task(t.service_id)),
                }
            }
            KIND_NODE => {
                apply_plain(&mut self.nodes, change, |n: &mut Node| &mut n.meta)?;
                Some(Touched::Node)
            }
            KIND_SERVICE => {
                apply_plain(&mut self.services, change, |s: &mut Service| &mut s.meta)?;
                Some(Touched::Service(change.id.clone()))
            }
            KIND_CLUSTER => {
                match &change.value {
                    Some(bytes) => {
                        let mut c = decode::<Cluster>(change, bytes)?;
                        stamp(&mut c.meta, change.index);
                        self.cluster = Some(c);
                    }
                    None => self.cluster = None,
                }
                Some(Touched::Cluster)
            }
            _ => None,
        }
    }

    /// Whether a task's update can change what a loop decides. An agent
    /// walking a task through ACCEPTED … RUNNING, the scheduler's assignment
    /// to a usable node, or a new pending message do not; the end of a task,
    /// a new desired state or spec, a task landing on a lost node, or (while
    /// its service is updating) a task becoming ready or no longer ready do.
    /// (Without this, every status report would reconcile the whole service.)
    fn change_matters(&self, old: &Task, new: &Task) -> bool {
        if old.desired_state != new.desired_state
            || task::has_ended(old) != task::has_ended(new)
            || old.spec_version != new.spec_version
            || old.job_iteration != new.job_iteration
            || old.slot != new.slot
            || old.service_id != new.service_id
            || (task::state(old) == rswarm_proto::types::TaskState::New as i32)
                != (task::state(new) == rswarm_proto::types::TaskState::New as i32)
        {
            return true;
        }
        // A rolling update waits for its new tasks to become ready.
        if task::serves(old) != task::serves(new)
            && self
                .services
                .get(&new.service_id)
                .is_some_and(update::is_rolling)
        {
            return true;
        }
        old.node_id != new.node_id
            && !new.node_id.is_empty()
            && (task::node_down_or_missing(self.nodes.get(&new.node_id))
                || self.nodes.get(&new.node_id).is_some_and(task::is_drained))
    }

    /// Puts a task into the view (replacing the one with its ID).
    pub(crate) fn insert_task(&mut self, task: Task) {
        if let Some(slot) = self.tasks.get_mut(&task.id) {
            let old = std::mem::replace(slot, task);
            let new = &*slot;
            self.observer.task_changed(Some(&old), Some(new));
            if old.service_id != new.service_id {
                let (id, service) = (new.id.clone(), new.service_id.clone());
                self.unindex(&old.service_id, &id);
                self.tasks_by_service.entry(service).or_default().insert(id);
            }
            return;
        }
        self.observer.task_changed(None, Some(&task));
        match self.tasks_by_service.get_mut(&task.service_id) {
            Some(ids) => {
                ids.insert(task.id.clone());
            }
            None => {
                self.tasks_by_service
                    .insert(task.service_id.clone(), HashSet::from([task.id.clone()]));
            }
        }
        self.tasks.insert(task.id.clone(), task);
    }

    /// Takes a task out of the view.
    pub(crate) fn remove_task(&mut self, id: &str) -> Option<Task> {
        let old = self.tasks.remove(id)?;
        self.unindex(&old.service_id, id);
        self.observer.task_changed(Some(&old), None);
        Some(old)
    }

    fn unindex(&mut self, service_id: &str, task_id: &str) {
        if let Some(ids) = self.tasks_by_service.get_mut(service_id) {
            ids.remove(task_id);
            if ids.is_empty() {
                self.tasks_by_service.remove(service_id);
            }
        }
    }
}

fn decode<M: Message + Default>(change: &Change, bytes: &[u8]) -> Option<M> {
    match M::decode(bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(kind = %change.kind, id = %change.id, error = %e, "undecodable object in the change stream; ignored");
            None
        }
    }
}

fn apply_plain<M: Message + Default>(
    map: &mut HashMap<String, M>,
    change: &Change,
    meta: impl Fn(&mut M) -> &mut Option<Meta>,
) -> Option<()> {
    if let Some(existing) = map.get_mut(&change.id) {
        if version_of(meta(existing).as_ref()) > change.index {
            return None;
        }
    }
    match &change.value {
        Some(bytes) => {
            let mut m = decode::<M>(change, bytes)?;
            stamp(meta(&mut m), change.index);
            map.insert(change.id.clone(), m);
        }
        None => {
            map.remove(&change.id);
        }
    }
    Some(())
}

/// How draining the change stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Every waiting change is applied.
    CaughtUp,
    /// Changes were lost: the view must be reloaded from the store.
    Lagged,
    /// The store is gone.
    Closed,
}

/// Applies every change already waiting on `changes` to the view, handing
/// what each one touched to `note`.
pub(crate) fn drain<O: TaskObserver>(
    changes: &mut Receiver<Change>,
    view: &mut ClusterView<O>,
    mut note: impl FnMut(Touched),
) -> Drained {
    loop {
        match changes.try_recv() {
            Ok(c) => {
                if let Some(t) = view.apply(&c) {
                    note(t);
                }
            }
            Err(TryRecvError::Empty) => return Drained::CaughtUp,
            Err(TryRecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "a loop fell behind the change stream");
                return Drained::Lagged;
            }
            Err(TryRecvError::Closed) => return Drained::Closed,
        }
    }
}

/// Task writes decided in one pass, applied to the view as they are added.
#[derive(Default)]
pub(crate) struct Batch {
    ops: Vec<Op>,
    /// The task ID of each op.
    ids: Vec<String>,
    touched: HashSet<String>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch already writes this task.
    pub(crate) fn touches(&self, task_id: &str) -> bool {
        self.touched.contains(task_id)
    }

    /// Creates or updates `task` (guarded by the version it was read at; a
    /// task without one must be new). Returns false, and does nothing, if the
    /// batch already writes that task (a batch must not write an object
    /// twice: the second op would carry a stale version).
    pub(crate) fn put_task<O: TaskObserver>(
        &mut self,
        view: &mut ClusterView<O>,
        task: Task,
    ) -> bool {
        if !self.touched.insert(task.id.clone()) {
            return false;
        }
        self.ops.push(objects::put(&task));
        self.ids.push(task.id.clone());
        view.insert_task(task);
        true
    }

    /// Deletes a task (guarded by the version it was read at).
    pub(crate) fn delete_task<O: TaskObserver>(
        &mut self,
        view: &mut ClusterView<O>,
        id: &str,
    ) -> bool {
        let Some(meta) = view.tasks.get(id).map(|t| t.meta) else {
            return false;
        };
        if !self.touched.insert(id.to_string()) {
            return false;
        }
        self.ops.push(objects::delete(KIND_TASK, id, meta.as_ref()));
        self.ids.push(id.to_string());
        view.remove_task(id);
        true
    }
}

/// How a batch fared.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// Ops the store applied.
    pub written: usize,
    /// Tasks whose write did not happen; the view holds the store's copy again.
    pub rolled_back: Vec<String>,
    /// The first error other than a version conflict (no leader, shut down).
    pub error: Option<StoreError>,
}

/// Writes a batch in chunks. Successful chunks stamp the new version on
/// their tasks in the view; failed ones are rolled back by re-reading their
/// tasks. After an error other than a conflict, or once this manager is no
/// longer the leader, the rest is not attempted.
/// `between_chunks` runs after every chunk: the loop drains its change
/// stream there, so a long batch does not let the stream overflow. (Safe:
/// a change to a task of a chunk not yet written makes that chunk conflict
/// and roll back; changes older than a written chunk are ignored.)
pub(crate) async fn commit<O: TaskObserver>(
    store: &Store,
    view: &mut ClusterView<O>,
    batch: Batch,
    mut between_chunks: impl FnMut(&mut ClusterView<O>),
) -> Committed {
    let mut out = Committed::default();
    let Batch { ops, ids, .. } = batch;
    let mut ops = ops.into_iter().peekable();
    let mut ids = ids.into_iter();
    loop {
        let chunk_ops: Vec<Op> = next_chunk(&mut ops);
        if chunk_ops.is_empty() {
            break;
        }
        let chunk_ids: Vec<String> = ids.by_ref().take(chunk_ops.len()).collect();
        if out.error.is_none() && !store.is_leader() {
            // Another manager leads now: it decides from here (a write would
            // be forwarded to it and could duplicate its own decisions).
            out.error = Some(StoreError::NoLeader);
        }
        if out.error.is_some() {
            out.rolled_back.extend(chunk_ids);
            continue;
        }
        let n = chunk_ops.len();
        match store.write(chunk_ops).await {
            Ok(index) => {
                out.written += n;
                for id in &chunk_ids {
                    if let Some(t) = view.tasks.get_mut(id) {
                        stamp(&mut t.meta, index);
                    }
                }
            }
            Err(StoreError::Conflict { kind, id, .. }) => {
                tracing::debug!(%kind, %id, tasks = n, "write conflict; re-reading those tasks");
                out.rolled_back.extend(chunk_ids);
            }
            Err(e) => {
                out.rolled_back.extend(chunk_ids);
                out.error = Some(e);
            }
        }
        between_chunks(view);
    }
    for id in &out.rolled_back {
        match objects::get::<Task>(store, id) {
            Ok(Some(t)) => view.insert_task(t),
            Ok(None) => {
                view.remove_task(id);
            }
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "cannot re-read a task after a failed write");
                view.remove_task(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: &str, id: &str, index: u64, value: Option<Vec<u8>>) -> Change {
        Change {
            index,
            kind: kind.into(),
            id: id.into(),
            value,
        }
    }

    fn empty_view() -> ClusterView<()> {
        ClusterView {
            nodes: HashMap::new(),
            services: HashMap::new(),
            tasks: HashMap::new(),
            tasks_by_service: HashMap::new(),
            cluster: None,
            observer: (),
        }
    }

    #[test]
    fn chunks_are_bounded_in_ops_and_bytes() {
        let put = |bytes: usize| Op::Put {
            kind: KIND_TASK.into(),
            id: "t".into(),
            value: vec![0; bytes],
            expect_version: None,
        };
        // Ten 300 KiB tasks: three per ~1 MiB chunk.
        let mut ops = vec![put(300 * 1024); 10].into_iter().peekable();
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let c = next_chunk(&mut ops);
            (!c.is_empty()).then_some(c.len())
        })
        .collect();
        assert_eq!(sizes, vec![3, 3, 3, 1]);
        // A task bigger than a chunk still goes, alone.
        let mut ops = vec![put(WRITE_CHUNK_BYTES + 1), put(1)]
            .into_iter()
            .peekable();
        assert_eq!(next_chunk(&mut ops).len(), 1);
        assert_eq!(next_chunk(&mut ops).len(), 1);
        // Small tasks: WRITE_CHUNK per chunk.
        let mut ops = vec![put(10); WRITE_CHUNK + 5].into_iter().peekable();
        assert_eq!(next_chunk(&mut ops).len(), WRITE_CHUNK);
        assert_eq!(next_chunk(&mut ops).len(), 5);
    }

    #[test]
    fn stale_changes_do_not_overwrite_newer_tasks() {
        let mut view = empty_view();
        let t = |slot| Task {
            id: "t1".into(),
            service_id: "s1".into(),
            slot,
            ..Default::default()
        };
        view.apply(&change(KIND_TASK, "t1", 10, Some(t(2).encode_to_vec())));
        assert_eq!(
            view.apply(&change(KIND_TASK, "t1", 9, Some(t(1).encode_to_vec()))),
            None
        );
        assert_eq!(view.tasks["t1"].slot, 2);
        assert_eq!(view.service_tasks("s1").count(), 1);
        view.apply(&change(KIND_TASK, "t1", 11, None));
        assert!(view.tasks.is_empty());
        assert!(view.tasks_by_service.is_empty());
    }

    #[tokio::test]
    async fn a_conflicting_chunk_is_rolled_back_to_the_stores_copy() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let task = |id: &str, slot| Task {
            id: id.into(),
            service_id: "s1".into(),
            slot,
            ..Default::default()
        };
        store
            .write(vec![objects::put(&task("t1", 1))])
            .await
            .expect("create t1");
        let mut view = ClusterView::load(&store, ()).expect("load");
        // Someone else changes t1 after the view read it.
        let mut theirs = view.tasks["t1"].clone();
        theirs.slot = 7;
        store
            .write(vec![objects::put(&theirs)])
            .await
            .expect("their write");

        let mut batch = Batch::default();
        let mut mine = view.tasks["t1"].clone();
        mine.slot = 2;
        assert!(batch.put_task(&mut view, mine.clone()));
        assert!(
            !batch.put_task(&mut view, mine),
            "a task is written once per batch"
        );
        assert!(batch.put_task(&mut view, task("t2", 3)));
        assert_eq!(view.tasks["t1"].slot, 2, "applied to the view at once");

        let mut chunks = 0;
        let done = commit(&store, &mut view, batch, |_| chunks += 1).await;
        assert_eq!(chunks, 1);
        assert_eq!(done.written, 0);
        assert!(done.error.is_none());
        assert_eq!(done.rolled_back.len(), 2);
        assert_eq!(view.tasks["t1"].slot, 7, "the store's copy is back");
        assert!(!view.tasks.contains_key("t2"), "the create did not happen");

        let mut batch = Batch::default();
        let mut again = view.tasks["t1"].clone();
        again.slot = 2;
        batch.put_task(&mut view, again);
        let done = commit(&store, &mut view, batch, |_| {}).await;
        assert_eq!((done.written, done.rolled_back.len()), (1, 0));
        let stored = objects::get::<Task>(&store, "t1")
            .expect("read")
            .expect("exists");
        assert_eq!(stored.slot, 2);
        assert_eq!(
            version_of(view.tasks["t1"].meta.as_ref()),
            version_of(stored.meta.as_ref()),
            "the view carries the new version"
        );
    }

    #[test]
    fn garbage_in_the_stream_is_ignored() {
        let mut view = empty_view();
        assert_eq!(
            view.apply(&change(KIND_TASK, "t1", 3, Some(vec![0xff, 0xff, 0xff]))),
            None
        );
        assert!(view.tasks.is_empty());
    }
}
