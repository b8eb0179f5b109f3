//! The `Store`: one manager's handle on the replicated object store. It starts
//! openraft over the sled backend (`store::log`, `store::state_machine`), sends
//! writes and membership changes to the leader (itself, or through `forward`),
//! answers reads from the local copy, and exposes the change stream, the Raft
//! status and who leads (`store::leadership`, with a wait for this manager's
//! leadership to change), and the gRPC service other managers call.
//!
//! Choices worth knowing:
//! - `write` retries only while nothing can have been proposed (no leader known,
//!   leader unreachable, "not the leader"). A write that reached a leader but did
//!   not commit within `write_timeout` returns `NoLeader` and may still commit later.
//! - The watch channel is bounded (65 536 changes); a receiver that falls further
//!   behind gets `RecvError::Lagged` and should re-read with `list`.
//! - Installing a snapshot publishes a put for every object in it and a delete for
//!   every object it no longer has, all with the snapshot's index.
//! - Durability: log appends and votes are fsynced before openraft counts them
//!   (appends by group commit); each entry's effect on the state machine is one
//!   atomic sled batch that rides on the next fsync. After a crash the state
//!   machine is at some earlier entry and the rest is re-applied from the log.

mod checks;
mod compaction;
mod heal;
mod layout;
mod leadership;
mod log;
mod recovery;
pub mod sealed;
mod state_machine;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use rswarm_proto::raft::raft_server::{Raft, RaftServer};
use tokio::sync::broadcast;
use tokio::time::Instant;

use self::layout::{decode_object, kind_prefix, object_key, parse_object_key, Db};
use self::leadership::Leader;
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::forward::{ForwardError, Forwarder};
use crate::network::{Connector, Network};
use crate::service::RaftService;
use crate::types::{Change, Object, Op, Request, Response, TypeConfig};
use crate::wire::{ProposeReply, MAX_MESSAGE_BYTES};
use checks::{check_member_addr, validate};

/// How many changes the watch channel buffers per receiver.
const WATCH_CAPACITY: usize = 65_536;
/// Pause between attempts to find a leader.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// One manager's replicated object store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    cfg: StoreConfig,
    connector: Arc<dyn Connector>,
    /// The running Raft instance; replaced when the store heals (see `heal`).
    raft: RwLock<openraft::Raft<TypeConfig>>,
    /// The open database; `None` only while `heal` reopens it.
    db: RwLock<Option<Db>>,
    /// Why the store cannot write right now (set by `heal` until it has healed).
    fault: Mutex<Option<String>>,
    changes: broadcast::Sender<Change>,
    forwarder: Forwarder,
    shut_down: AtomicBool,
}

impl Inner {
    /// The current Raft instance (a cheap handle).
    pub(crate) fn raft(&self) -> openraft::Raft<TypeConfig> {
        self.raft
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The open database. Fails only in the moment `heal` reopens it and the
    /// reopening failed.
    pub(crate) fn db(&self) -> Result<Db, StoreError> {
        self.db
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or_else(|| {
                StoreError::storage(&self.cfg.data_dir, "the database is being reopened")
            })
    }

    /// Why writes fail right now, if they do.
    pub(crate) fn fault(&self) -> Option<String> {
        self.fault
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether `shutdown` was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// Where this store reports its Raft metrics.
    pub(crate) fn metrics(&self) -> &crate::RaftMetrics {
        &self.cfg.metrics
    }

    pub(crate) fn set_fault(&self, reason: Option<String>) {
        *self
            .fault
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = reason;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A store dropped without `shutdown` still stops its Raft tasks.
        if self.shut_down.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let raft = self.raft();
            runtime.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `cfg.data_dir` and starts Raft. A store
    /// with state resumes its membership and objects; a fresh one waits to be
    /// bootstrapped or added to a cluster (it serves the Raft service meanwhile).
    pub async fn open(
        cfg: StoreConfig,
        connector: Arc<dyn Connector>,
    ) -> Result<Store, StoreError> {
        let config = Arc::new(cfg.openraft_config()?);
        let path = cfg.data_dir.clone();
        let key = cfg.data_key.clone();
        let db = tokio::task::spawn_blocking(move || Db::open_sealed(&path, key))
            .await
            .map_err(|e| StoreError::storage(&cfg.data_dir, format!("opening database: {e}")))??;
        let (changes, _) = broadcast::channel(WATCH_CAPACITY);
        let raft = start_raft(&cfg, config, &connector, &db, &changes).await?;
        // Wait for the first metrics report so `status()` shows the loaded state at once.
        let mut metrics = raft.metrics();
        if tokio::time::timeout(Duration::from_secs(5), metrics.changed())
            .await
            .is_err()
        {
            tracing::warn!(
                raft_id = cfg.raft_id,
                "raft did not report its state within 5s of opening"
            );
        }
        tracing::info!(raft_id = cfg.raft_id, addr = %cfg.addr, data_dir = %cfg.data_dir.display(), "raft store open");
        let inner = Arc::new(Inner {
            forwarder: Forwarder::new(connector.clone()),
            connector,
            cfg,
            raft: RwLock::new(raft),
            db: RwLock::new(Some(db)),
            fault: Mutex::new(None),
            changes,
            shut_down: AtomicBool::new(false),
        });
        tokio::spawn(heal::watch(Arc::downgrade(&inner)));
        tokio::spawn(compaction::watch(Arc::downgrade(&inner)));
        tokio::spawn(crate::metrics::follow(Arc::downgrade(&inner)));
        Ok(Store { inner })
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Store {
        Store { inner }
    }

    /// Whether this manager has Raft state on disk (a vote, log or membership):
    /// it was bootstrapped or has joined a cluster.
    pub fn is_initialized(&self) -> bool {
        match self.inner.db().and_then(|db| {
            db.has_raft_state()
                .map_err(|e| db.err(format!("reading raft state: {e}")))
        }) {
            Ok(initialized) => initialized,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read raft state; assuming initialized");
                true
            }
        }
    }

    /// Makes a new cluster whose only voter is this manager, and waits until it leads.
    pub async fn bootstrap(&self) -> Result<(), StoreError> {
        let cfg = &self.inner.cfg;
        if self.is_initialized() {
            return Err(StoreError::AlreadyInitialized {
                path: cfg.data_dir.clone(),
            });
        }
        let members = BTreeMap::from([(cfg.raft_id, BasicNode::new(cfg.addr.clone()))]);
        match self.inner.raft().initialize(members).await {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                return Err(StoreError::AlreadyInitialized {
                    path: cfg.data_dir.clone(),
                })
            }
            Err(e) => {
                return Err(StoreError::Raft(format!(
                    "bootstrapping manager {}: {e}",
                    cfg.raft_id
                )))
            }
        }
        self.inner
            .raft()
            .wait(Some(cfg.write_timeout))
            .state(ServerState::Leader, "bootstrap: become leader")
            .await
            .map_err(|_| StoreError::NoLeader)?;
        tracing::info!(raft_id = cfg.raft_id, "bootstrapped a new raft cluster");
        Ok(())
    }

    /// Applies `ops` atomically through Raft and returns the commit's log index,
    /// which becomes the version of every object written. Forwarded to the leader
    /// when this manager is not the leader. When it returns (also with `Conflict`),
    /// this manager's own reads already reflect that log index, unless applying
    /// it locally takes longer than the rest of the write timeout.
    pub async fn write(&self, ops: Vec<Op>) -> Result<u64, StoreError> {
        validate(&ops)?;
        let req = Request { ops };
        let deadline = Instant::now() + self.inner.cfg.write_timeout;
        loop {
            if let Some(reason) = self.inner.fault() {
                return Err(StoreError::WriteFailed(reason));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(StoreError::NoLeader);
            }
            let reply = match self.leader_route() {
                Leader::Me => {
                    match tokio::time::timeout(remaining, self.propose_local(req.clone())).await {
                        Err(_) => return Err(StoreError::NoLeader),
                        Ok(reply) => Some(reply?),
                    }
                }
                Leader::Remote(addr) => {
                    match self.inner.forwarder.propose(&addr, &req, remaining).await {
                        Ok(reply) => Some(reply),
                        Err(ForwardError::Retry(why)) => {
                            tracing::debug!(%why, "write: leader not reachable, retrying");
                            None
                        }
                        Err(ForwardError::Failed(e)) => return Err(e),
                    }
                }
                Leader::Unknown => None,
            };
            match reply {
                Some(ProposeReply::Committed { index }) => {
                    self.wait_applied(index, deadline).await;
                    return Ok(index);
                }
                Some(ProposeReply::Conflict {
                    index,
                    kind,
                    id,
                    expected,
                    actual,
                }) => {
                    self.wait_applied(index, deadline).await;
                    return Err(StoreError::Conflict {
                        kind,
                        id,
                        expected,
                        actual,
                    });
                }
                Some(ProposeReply::NoQuorum) => return Err(StoreError::NoLeader),
                Some(ProposeReply::NotLeader) | None => {}
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(remaining.min(RETRY_PAUSE)).await;
        }
    }

    /// The error for a write that found Raft stopped: `Shutdown` after `shutdown`,
    /// otherwise the storage failure that stopped it, in words.
    fn write_fatal(&self, e: Fatal<u64>) -> StoreError {
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return StoreError::Shutdown;
        }
        StoreError::WriteFailed(heal::diagnose(&self.inner, &e))
    }

    /// Waits (until `deadline` at the latest) for this manager to apply `index`,
    /// so that its local reads see a write it forwarded. Best effort: the write
    /// is committed either way.
    async fn wait_applied(&self, index: u64, deadline: Instant) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let waited = self
            .inner
            .raft()
            .wait(Some(remaining))
            .applied_index_at_least(Some(index), "local apply of a forwarded write")
            .await;
        if waited.is_err() {
            tracing::debug!(index, "write committed but not yet applied on this manager");
        }
    }

    /// Proposes on this node, which must be the leader; waits for commit and apply.
    pub(crate) async fn propose_local(&self, req: Request) -> Result<ProposeReply, StoreError> {
        if let Some(reason) = self.inner.fault() {
            return Err(StoreError::WriteFailed(reason));
        }
        let started = std::time::Instant::now();
        let written = self.inner.raft().client_write(req).await;
        if written.is_ok() {
            self.inner
                .metrics()
                .proposal_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        match written {
            Ok(resp) => Ok(match resp.data {
                Response::Applied => ProposeReply::Committed {
                    index: resp.log_id.index,
                },
                Response::Conflict {
                    kind,
                    id,
                    expected,
                    actual,
                } => ProposeReply::Conflict {
                    index: resp.log_id.index,
                    kind,
                    id,
                    expected,
                    actual,
                },
            }),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Ok(ProposeReply::NotLeader)
            }
            Err(RaftError::APIError(e)) => Err(StoreError::Raft(format!("write: {e}"))),
            Err(RaftError::Fatal(e)) => Err(self.write_fatal(e)),
        }
    }

    /// The object `kind/id` in this manager's copy.
    pub fn get(&self, kind: &str, id: &str) -> Result<Option<Object>, StoreError> {
        let db = &self.inner.db()?;
        let stored = db
            .sm
            .get(object_key(kind, id))
            .map_err(|e| db.err(format!("reading {kind} {id}: {e}")))?;
        match stored {
            None => Ok(None),
            Some(stored) => {
                let key = object_key(kind, id);
                let (version, value) = decode_object(&stored)
                    .and_then(|(v, value)| Ok((v, db.unseal(&key, value)?.into_owned())))
                    .map_err(|e| db.err(format!("reading {kind} {id}: {e}")))?;
                Ok(Some(Object {
                    kind: kind.to_string(),
                    id: id.to_string(),
                    version,
                    value,
                }))
            }
        }
    }

    /// Every object of `kind` in this manager's copy, sorted by id.
    pub fn list(&self, kind: &str) -> Result<Vec<Object>, StoreError> {
        let db = &self.inner.db()?;
        let mut out = Vec::new();
        for kv in db.sm.scan_prefix(kind_prefix(kind)) {
            let (key, stored) = kv.map_err(|e| db.err(format!("listing {kind}: {e}")))?;
            let (_, id) =
                parse_object_key(&key).map_err(|e| db.err(format!("listing {kind}: {e}")))?;
            let (version, value) = decode_object(&stored)
                .and_then(|(v, value)| Ok((v, db.unseal(&key, value)?.into_owned())))
                .map_err(|e| db.err(format!("listing {kind}: {e}")))?;
            out.push(Object {
                kind: kind.to_string(),
                id,
                version,
                value,
            });
        }
        Ok(out)
    }

    /// `get`, decoded as the protobuf message `M`; gives `(version, message)`.
    pub fn get_message<M: prost::Message + Default>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<(u64, M)>, StoreError> {
        self.get(kind, id)?.map(|o| decode_message(&o)).transpose()
    }

    /// `list`, decoded as the protobuf message `M`; gives `(version, message)` by id.
    pub fn list_messages<M: prost::Message + Default>(
        &self,
        kind: &str,
    ) -> Result<Vec<(u64, M)>, StoreError> {
        self.list(kind)?.iter().map(decode_message).collect()
    }

    /// Every change applied on this manager from now on, in log order.
    pub fn watch(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    /// Adds the manager `raft_id` listening at `addr`: first as a learner, waiting
    /// until it has caught up, then as a voter. Forwarded to the leader. The new
    /// manager must already be serving the Raft service.
    pub async fn add_manager(&self, raft_id: u64, addr: String) -> Result<(), StoreError> {
        check_member_addr(&addr)?;
        let cfg = &self.inner.cfg;
        let forward_timeout = cfg.join_timeout() + cfg.write_timeout * 3;
        self.on_leader("add manager", |store| {
            let addr = addr.clone();
            async move {
                match store.leader_route() {
                    Leader::Me => store
                        .add_manager_local(raft_id, &addr)
                        .await
                        .map_err(LocalError::into_forward),
                    Leader::Remote(leader) => {
                        store
                            .inner
                            .forwarder
                            .add_member(&leader, raft_id, &addr, forward_timeout)
                            .await
                    }
                    Leader::Unknown => Err(ForwardError::Retry("no leader known".into())),
                }
            }
        })
        .await
    }

    /// Removes the manager `raft_id` from voters and learners. Forwarded to the leader.
    pub async fn remove_manager(&self, raft_id: u64) -> Result<(), StoreError> {
        let forward_timeout = self.inner.cfg.write_timeout * 3;
        self.on_leader("remove manager", |store| async move {
            match store.leader_route() {
                Leader::Me => store
                    .remove_manager_local(raft_id)
                    .await
                    .map_err(LocalError::into_forward),
                Leader::Remote(leader) => {
                    store
                        .inner
                        .forwarder
                        .remove_member(&leader, raft_id, forward_timeout)
                        .await
                }
                Leader::Unknown => Err(ForwardError::Retry("no leader known".into())),
            }
        })
        .await
    }

    /// Runs `attempt` until it does something other than ask to retry; retries
    /// stop after the write timeout.
    async fn on_leader<F, Fut>(&self, what: &str, attempt: F) -> Result<(), StoreError>
    where
        F: Fn(Store) -> Fut,
        Fut: std::future::Future<Output = Result<(), ForwardError>>,
    {
        let deadline = Instant::now() + self.inner.cfg.write_timeout;
        loop {
            match attempt(self.clone()).await {
                Ok(()) => return Ok(()),
                Err(ForwardError::Failed(e)) => return Err(e),
                Err(ForwardError::Retry(why)) => tracing::debug!(%why, "{what}: retrying"),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(StoreError::NoLeader);
            }
            tokio::time::sleep(remaining.min(RETRY_PAUSE)).await;
        }
    }

    /// Leader side of `add_manager`.
    pub(crate) async fn add_manager_local(
        &self,
        raft_id: u64,
        addr: &str,
    ) -> Result<(), LocalError> {
        check_member_addr(addr).map_err(LocalError::Failed)?;
        let raft = &self.inner.raft();
        let (is_leader, membership, membership_index) = {
            let m = raft.metrics();
            let m = m.borrow();
            (
                m.state == ServerState::Leader,
                m.membership_config.membership().clone(),
                m.membership_config.log_id().map(|l| l.index).unwrap_or(0),
            )
        };
        if !is_leader {
            return Err(LocalError::NotLeader);
        }
        let node = BasicNode::new(addr.to_string());
        let is_voter = membership.voter_ids().any(|id| id == raft_id);
        let known = membership.get_node(&raft_id).cloned();
        let mut caught_up_at = membership_index;

        if let Some(old) = &known {
            if old.addr != addr {
                tracing::info!(raft_id, old = %old.addr, new = %addr, "manager address changed");
                caught_up_at = self
                    .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(
                        raft_id,
                        node.clone(),
                    )])))
                    .await?;
            }
        }
        if is_voter {
            return Ok(());
        }
        if known.is_none() {
            tracing::info!(raft_id, %addr, "adding manager as a learner");
            caught_up_at = self
                .change_membership(ChangeMembers::AddNodes(BTreeMap::from([(raft_id, node)])))
                .await?;
        }

        let join_timeout = self.inner.cfg.join_timeout();
        let caught_up = raft
            .wait(Some(join_timeout))
            .metrics(
                |m| {
                    m.state != ServerState::Leader
                        || m.replication
                            .as_ref()
                            .and_then(|r| r.get(&raft_id).copied().flatten())
                            .is_some_and(|matched| matched.index >= caught_up_at)
                },
                "new manager caught up",
            )
            .await;
        match caught_up {
            Ok(m) if m.state != ServerState::Leader => return Err(LocalError::NotLeader),
            Ok(_) => {}
            Err(_) => {
                return Err(LocalError::Failed(StoreError::Membership(format!(
                    "manager {raft_id} at {addr} did not catch up within {join_timeout:?}; it stays a non-voting learner"
                ))))
            }
        }
        tracing::info!(raft_id, %addr, "promoting manager to voter");
        self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([raft_id])))
            .await?;
        Ok(())
    }

    /// Leader side of `remove_manager`.
    pub(crate) async fn remove_manager_local(&self, raft_id: u64) -> Result<(), LocalError> {
        let (is_leader, membership) = {
            let m = self.inner.raft().metrics();
            let m = m.borrow();
            (
                m.state == ServerState::Leader,
                m.membership_config.membership().clone(),
            )
        };
        if !is_leader {
            return Err(LocalError::NotLeader);
        }
        if membership.voter_ids().any(|id| id == raft_id) {
            tracing::info!(raft_id, "removing manager from voters");
            self.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([raft_id])))
                .await?;
        } else if membership.get_node(&raft_id).is_some() {
            tracing::info!(raft_id, "removing learner");
            self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([raft_id])))
                .await?;
        }
        Ok(())
    }

    /// Commits a membership change within the write timeout, waiting out another
    /// change in progress. Returns the log index of the change.
    async fn change_membership(
        &self,
        changes: ChangeMembers<u64, BasicNode>,
    ) -> Result<u64, LocalError> {
        let deadline = Instant::now() + self.inner.cfg.write_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let raft = self.inner.raft();
            let attempt = raft.change_membership(changes.clone(), false);
            match tokio::time::timeout(remaining, attempt).await {
                Err(_) => return Err(LocalError::Failed(StoreError::NoLeader)),
                Ok(Ok(resp)) => return Ok(resp.log_id.index),
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(p),
                )))) if Instant::now() + RETRY_PAUSE < deadline => {
                    tracing::debug!(%p, "membership change in progress, waiting");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                    return Err(LocalError::NotLeader)
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                    return Err(LocalError::Failed(StoreError::Membership(e.to_string())))
                }
                Ok(Err(RaftError::Fatal(e))) => {
                    return Err(LocalError::Failed(self.write_fatal(e)))
                }
            }
        }
    }

    /// The server side of the Raft service, for the manager to mount behind its
    /// mTLS authentication. It holds only a weak reference: once every `Store`
    /// handle is gone, its calls fail as unavailable.
    pub fn service(&self) -> RaftServer<impl Raft> {
        RaftServer::new(RaftService::new(Arc::downgrade(&self.inner)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub(crate) fn raft(&self) -> openraft::Raft<TypeConfig> {
        self.inner.raft()
    }

    pub(crate) fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Stops Raft and flushes the database. Reads keep working on the last state.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        self.inner.raft().shutdown().await.map_err(|e| {
            StoreError::Raft(format!(
                "shutting down manager {}: {e}",
                self.inner.cfg.raft_id
            ))
        })?;
        let db = self.inner.db()?;
        if self.inner.fault().is_none() {
            db.db
                .flush_async()
                .await
                .map_err(|e| db.err(format!("flushing: {e}")))?;
        }
        tracing::info!(raft_id = self.inner.cfg.raft_id, "raft store shut down");
        Ok(())
    }

    /// Offline (no store running on this data dir): rewrites the on-disk state so
    /// this manager is the only voter, keeping every object and its version. Used
    /// by `rswarm init --force-new-cluster`.
    pub fn force_new_cluster(cfg: &StoreConfig) -> Result<(), StoreError> {
        recovery::force_new_cluster(cfg)
    }

    #[cfg(test)]
    pub(crate) fn raft_metrics(&self) -> openraft::RaftMetrics<u64, BasicNode> {
        self.inner.raft().metrics().borrow().clone()
    }
}

fn decode_message<M: prost::Message + Default>(object: &Object) -> Result<(u64, M), StoreError> {
    let message = M::decode(object.value.as_slice()).map_err(|e| StoreError::Decode {
        kind: object.kind.clone(),
        id: object.id.clone(),
        message: e.to_string(),
    })?;
    Ok((object.version, message))
}

/// Starts a Raft instance on `db` (at open, and again when the store heals).
async fn start_raft(
    cfg: &StoreConfig,
    config: Arc<openraft::Config>,
    connector: &Arc<dyn Connector>,
    db: &Db,
    changes: &broadcast::Sender<Change>,
) -> Result<openraft::Raft<TypeConfig>, StoreError> {
    openraft::Raft::new(
        cfg.raft_id,
        config,
        Network::new(connector.clone()),
        log::LogStore::new(db.clone(), cfg.metrics.clone()),
        state_machine::StateMachine::new(db.clone(), changes.clone(), cfg.metrics.clone()),
    )
    .await
    .map_err(|e| StoreError::Raft(format!("starting raft for manager {}: {e}", cfg.raft_id)))
}

/// Why the leader side of a membership change did not happen here.
pub(crate) enum LocalError {
    /// This manager is not (or no longer) the leader: nothing was changed, ask the leader.
    NotLeader,
    /// It failed on the leader; retrying elsewhere will not help.
    Failed(StoreError),
}

impl LocalError {
    fn into_forward(self) -> ForwardError {
        match self {
            LocalError::NotLeader => ForwardError::Retry("this manager is not the leader".into()),
            LocalError::Failed(e) => ForwardError::Failed(e),
        }
    }
}
