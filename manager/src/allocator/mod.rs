//! The allocator: gives services their VIPs and tasks their addresses, on
//! the overlay networks they are attached to, between the orchestrator
//! (which creates tasks in NEW) and the scheduler (which only places PENDING
//! tasks); and gives every node its own address on the `ingress` network.
//!
//! - `ipam`: CIDR arithmetic, subnets carved from the default pool, and the
//!   per-subnet bitmaps addresses come from;
//! - `network`: what a valid network is, how a new one gets its subnets,
//!   gateway and VNI (the Control API creates networks with it), the
//!   `ingress` network made at `init`, and attachment targets;
//! - `state`: the leader's in-memory accounting (who holds which address,
//!   which tasks wait in NEW), rebuilt from the objects.
//!
//! What the loop does:
//! - **Services** (endpoint mode `vip`, the default): one VIP per network the
//!   service is attached to (its task template's `networks`, and `ingress`
//!   when it publishes a port in ingress mode), written to
//!   `endpoint.virtual_ips`. A `dnsrr` service has none. VIPs of networks the
//!   service left, and of removed services, are freed.
//! - **Tasks** in NEW (still wanted): one address per network (the task
//!   template's networks, plus `ingress` first when its service publishes
//!   ingress ports), written to `task.networks` with the template's aliases;
//!   the task moves to PENDING, "pending task scheduling". A task without
//!   networks moves straight on. When a network is full the task stays in
//!   NEW with message and error "network backend: no free address in
//!   10.20.0.0/24" (what `service ps` shows), and is tried again when an
//!   address is freed; an unknown network gives "network X not found".
//! - **Freeing**: a task's addresses go back when it ends (COMPLETE or any
//!   later state), when it is stopped before ever being assigned, or when it
//!   is deleted. The addresses stay written on the ended task (for inspect);
//!   they are simply no longer counted.
//! - **Nodes**: while an `ingress` network exists, every node object
//!   (whatever its state) holds one address on it, written as
//!   `node.attachments` (one attachment on ingress, the address in CIDR
//!   form, no aliases), like swarmkit's node attachments and Docker's
//!   `ingress-sbox`: the routing mesh masquerades packets for a published
//!   port to it, and remote tasks answer it over VXLAN. The address is the
//!   pool's next free one, like a task's; nodes are served after the tasks
//!   of the same pass, so tasks get freed addresses first. A node that joins
//!   gets its address as soon as the change stream shows it. An attachment
//!   naming a network that is gone (ingress removed, or recreated with
//!   another subnet) is replaced by an address on the current ingress
//!   network; with no ingress network the attachments are cleared. When
//!   ingress is full, the node is left without an address (a warning is
//!   logged, nothing fails) and tried again when an address is freed. The
//!   address goes back when the node object is deleted (`node rm`).
//!
//! Only the Raft leader allocates. Every allocation lives in the objects, so
//! a manager that becomes leader rebuilds the accounting from the store
//! (tasks, then services, then nodes) before deciding anything, and never
//! hands out an address twice. Writes go in batches with version checks: a
//! refused task write is rolled back (its addresses freed) and decided again
//! from the store's copy; a refused service or node write (the dispatcher,
//! certificate renewals and `node update` write nodes too) frees its new
//! addresses, re-reads the object and decides again, so no one else's
//! fields are ever overwritten.

pub mod ipam;
pub mod network;
pub(crate) mod state;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use rswarm_proto::types::{
    Endpoint, NetworkAttachment, Node, PortConfig, Service, Task, TaskState, TaskStatus, Version,
    VirtualIp,
};
use rswarm_raft::{Change, Op, Store, StoreError};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::task::JoinHandle;

pub use self::network::{default_address_pool, ingress_network};
use self::state::{awaits_allocation, Allocations, Held, Owner};
use crate::error::ManagerError;
use crate::objects::{self, now_nanos};
use crate::orchestrator::task::PENDING_MESSAGE;
use crate::orchestrator::view::{commit, Batch, ClusterView, Drained, Touched, WRITE_CHUNK};
use crate::orchestrator::STORE_ERROR_PAUSE;

/// How often the loop checks leadership when nothing changes.
const TICK: Duration = Duration::from_millis(250);
/// Every so often every service is looked at, whether or not it changed.
const FULL_PASS_EVERY: Duration = Duration::from_secs(30);
/// Pause before redoing writes that conflicted.
const CONFLICT_PAUSE: Duration = Duration::from_millis(20);

/// The message of a task whose service publishes ingress ports when there
/// is no ingress network.
pub const NO_INGRESS_MESSAGE: &str =
    "ingress network not found: the service publishes ports in ingress mode";

/// Starts the allocator on `store`. Runs until aborted; works only while
/// this manager is the Raft leader.
pub fn spawn(store: Store) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if store.is_leader() {
                if let Err(e) = lead(&store).await {
                    // No leader any more, or the store failed: wait, then
                    // start over (if still leader) from a fresh view.
                    tracing::warn!(error = %e, "allocator stopped; starting over");
                    tokio::time::sleep(STORE_ERROR_PAUSE).await;
                }
            }
            tokio::time::sleep(TICK).await;
        }
    })
}

type View = ClusterView<Allocations>;

/// Reads everything and rebuilds the accounting: networks, then the tasks'
/// addresses (as the view loads them), then the services' VIPs, then the
/// nodes' addresses.
fn load(store: &Store) -> Result<View, ManagerError> {
    let mut view = ClusterView::load(store, Allocations::load(store)?)?;
    let mut ids: Vec<String> = view.services.keys().cloned().collect();
    ids.sort();
    for id in ids {
        account(&mut view, &id);
    }
    let mut ids: Vec<String> = view.nodes.keys().cloned().collect();
    ids.sort();
    for id in ids {
        account_node(&mut view, &id);
    }
    view.observer.all_services = true;
    view.observer.all_nodes = true;
    view.observer.work = true;
    Ok(view)
}

/// Brings the accounting of one service's VIPs in line with the view.
fn account(view: &mut View, id: &str) {
    let ClusterView {
        services, observer, ..
    } = view;
    observer.account_service(id, services.get(id));
}

/// Brings the accounting of one node's addresses in line with the view.
fn account_node(view: &mut View, id: &str) {
    let ClusterView {
        nodes, observer, ..
    } = view;
    observer.account_node(id, nodes.get(id));
}

/// Applies one change from the store's stream (networks included, which
/// the shared view does not keep).
fn apply_change(view: &mut View, c: &Change) {
    if c.kind == objects::KIND_NETWORK {
        if view.observer.network_changed(c) {
            view.observer.all_services = true;
            view.observer.all_nodes = true;
            view.observer.work = true;
        }
        return;
    }
    match view.apply(c) {
        Some(Touched::Service(id)) => {
            account(view, &id);
            view.observer.dirty_services.insert(id);
        }
        Some(Touched::Node) => {
            // Only a node change touches a node; the change names it.
            account_node(view, &c.id);
            view.observer.dirty_nodes.insert(c.id.clone());
        }
        Some(_) => view.observer.work = true,
        None => {}
    }
}

/// Applies every change already waiting.
fn drain_changes(changes: &mut Receiver<Change>, view: &mut View) -> Drained {
    loop {
        match changes.try_recv() {
            Ok(c) => apply_change(view, &c),
            Err(TryRecvError::Empty) => return Drained::CaughtUp,
            Err(TryRecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "allocator fell behind the change stream");
                return Drained::Lagged;
            }
            Err(TryRecvError::Closed) => return Drained::Closed,
        }
    }
}

/// Allocates until this manager stops leading (Ok) or the store fails.
async fn lead(store: &Store) -> Result<(), ManagerError> {
    let mut changes = store.watch();
    let mut view = load(store)?;
    tracing::info!(
        networks = view.observer.networks.len(),
        services = view.services.len(),
        nodes = view.nodes.len(),
        waiting = view.observer.new_tasks.len(),
        "allocator: leading"
    );
    let mut last_full = Instant::now();
    loop {
        if !store.is_leader() {
            tracing::info!("allocator: no longer the leader");
            return Ok(());
        }
        if last_full.elapsed() >= FULL_PASS_EVERY {
            last_full = Instant::now();
            view.observer.all_services = true;
            view.observer.all_nodes = true;
            view.observer.work = true;
        }
        let mut stream = Drained::CaughtUp;
        let mut retry = false;
        if view.observer.has_work() {
            retry = pass(store, &mut view, &mut changes, &mut stream).await?;
        }
        if stream == Drained::CaughtUp && (retry || !view.observer.has_work()) {
            let pause = if retry { CONFLICT_PAUSE } else { TICK };
            tokio::select! {
                r = changes.recv() => match r {
                    Ok(c) => apply_change(&mut view, &c),
                    Err(RecvError::Lagged(_)) => stream = Drained::Lagged,
                    Err(RecvError::Closed) => stream = Drained::Closed,
                },
                _ = tokio::time::sleep(pause) => {}
            }
        }
        if stream == Drained::CaughtUp {
            stream = drain_changes(&mut changes, &mut view);
        }
        match stream {
            Drained::CaughtUp => {}
            Drained::Lagged => {
                tracing::debug!("allocator fell behind the change stream; reloading");
                view = load(store)?;
            }
            Drained::Closed => return Ok(()),
        }
    }
}

/// One pass: services' VIPs, then NEW tasks, then nodes' ingress addresses
/// (after the tasks, which get freed addresses first). Returns whether some
/// writes conflicted (and are to be redone); an error ends this leadership.
async fn pass(
    store: &Store,
    view: &mut View,
    changes: &mut Receiver<Change>,
    stream: &mut Drained,
) -> Result<bool, ManagerError> {
    let obs = &mut view.observer;
    let mut ids: Vec<String> = if obs.all_services {
        view.services.keys().cloned().collect()
    } else {
        obs.dirty_services.drain().collect()
    };
    let mut node_ids: Vec<String> = if obs.all_nodes {
        view.nodes.keys().cloned().collect()
    } else {
        obs.dirty_nodes.drain().collect()
    };
    if obs.released {
        ids.extend(obs.waiting_vips.iter().cloned());
        node_ids.extend(obs.waiting_nodes.iter().cloned());
    }
    obs.dirty_services.clear();
    obs.all_services = false;
    obs.dirty_nodes.clear();
    obs.all_nodes = false;
    obs.released = false;
    obs.arrived = false;
    obs.work = false;
    ids.sort();
    ids.dedup();
    node_ids.sort();
    node_ids.dedup();

    let mut updates = Vec::new();
    for id in &ids {
        let Some(svc) = view.services.get(id) else {
            view.observer.waiting_vips.remove(id);
            continue;
        };
        let svc = svc.clone();
        if let Some(update) = plan_vips(&mut view.observer, &svc) {
            updates.push(update);
        }
    }
    let mut retry = write_updates(store, view, updates).await?;

    retry |= allocate_tasks(store, view, changes, stream).await?;
    if retry {
        view.observer.work = true;
    }
    if *stream != Drained::CaughtUp {
        // The view is reloaded (every node looked at again) or the store
        // is gone: nothing more to decide from this one.
        return Ok(retry);
    }

    let mut updates = Vec::new();
    for id in &node_ids {
        let Some(node) = view.nodes.get(id) else {
            view.observer.waiting_nodes.remove(id);
            continue;
        };
        let node = node.clone();
        if let Some(update) = plan_node(&mut view.observer, &node) {
            updates.push(update);
        }
    }
    retry |= write_updates(store, view, updates).await?;
    Ok(retry)
}

/// Allocates the waiting NEW tasks' addresses and writes them in one batch.
/// Returns whether some writes were refused (and are to be redone).
async fn allocate_tasks(
    store: &Store,
    view: &mut View,
    changes: &mut Receiver<Change>,
    stream: &mut Drained,
) -> Result<bool, ManagerError> {
    let mut batch = Batch::default();
    let now = now_nanos();
    let waiting: Vec<String> = view.observer.new_tasks.iter().cloned().collect();
    for id in &waiting {
        plan_task(view, &mut batch, id, now);
    }
    if batch.is_empty() {
        return Ok(false);
    }
    let writes = batch.len();
    let committed = commit(store, view, batch, |v| {
        if *stream == Drained::CaughtUp {
            *stream = drain_changes(changes, v);
        }
    })
    .await;
    tracing::debug!(
        writes,
        written = committed.written,
        rolled_back = committed.rolled_back.len(),
        "allocator pass"
    );
    let mut retry = !committed.rolled_back.is_empty();
    match committed.error {
        Some(e @ (StoreError::NoLeader | StoreError::Shutdown)) => return Err(e.into()),
        Some(e) => {
            tracing::warn!(error = %e, "allocator could not write its decisions; retrying in {STORE_ERROR_PAUSE:?}");
            tokio::time::sleep(STORE_ERROR_PAUSE).await;
            retry = true;
        }
        None => {}
    }
    Ok(retry)
}

/// The networks a service gets VIPs on: none in `dnsrr` mode; else
/// `ingress` (when it publishes ingress ports) and its template's networks.
fn vip_networks(obs: &Allocations, svc: &Service) -> Vec<String> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    if !network::wants_vips(spec.endpoint.as_ref()) {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    let ports = spec
        .endpoint
        .as_ref()
        .map(|e| e.ports.as_slice())
        .unwrap_or(&[]);
    if network::publishes_ingress(ports) {
        if let Some(ingress) = obs.ingress() {
            out.push(ingress.id.clone());
        }
    }
    for cfg in spec.task.iter().flat_map(|t| t.networks.iter()) {
        if let Some(n) = obs.resolve(&cfg.target) {
            if !out.contains(&n.id) {
                out.push(n.id.clone());
            }
        }
    }
    out
}

/// The service with its VIPs as they should be, and the addresses newly
/// allocated for it; `None` when nothing changes.
fn plan_vips(obs: &mut Allocations, svc: &Service) -> Option<(Service, Vec<Held>)> {
    let want = vip_networks(obs, svc);
    let owner = Owner::Service(svc.id.clone());
    let current: Vec<VirtualIp> = svc
        .endpoint
        .as_ref()
        .map(|e| e.virtual_ips.clone())
        .unwrap_or_default();
    let mut vips = Vec::new();
    let mut fresh = Vec::new();
    let mut missing = false;
    for net in &want {
        let kept = current.iter().find(|v| {
            v.network_id == *net
                && ipam::parse_addr(&v.addr).is_ok_and(|ip| obs.owns(&(net.clone(), ip), &owner))
        });
        if let Some(v) = kept {
            vips.push(v.clone());
            continue;
        }
        match obs.allocate(net, &owner) {
            Ok((ip, subnet)) => {
                vips.push(VirtualIp {
                    network_id: net.clone(),
                    addr: subnet.with_addr(ip),
                });
                fresh.push((net.clone(), ip));
            }
            Err(e) => {
                tracing::warn!(service = %svc.id, error = %e, "no VIP for the service yet");
                missing = true;
            }
        }
    }
    if missing {
        obs.waiting_vips.insert(svc.id.clone());
    } else {
        obs.waiting_vips.remove(&svc.id);
    }
    if vips == current {
        return None;
    }
    let mut updated = svc.clone();
    let endpoint = updated.endpoint.get_or_insert_with(|| {
        let spec = svc.spec.as_ref().and_then(|s| s.endpoint.clone());
        Endpoint {
            ports: spec.as_ref().map(|e| e.ports.clone()).unwrap_or_default(),
            spec,
            virtual_ips: Vec::new(),
        }
    });
    endpoint.virtual_ips = vips;
    Some((updated, fresh))
}

/// The node with its ingress address as it should be, and the address newly
/// allocated for it; `None` when nothing changes.
fn plan_node(obs: &mut Allocations, node: &Node) -> Option<(Node, Vec<Held>)> {
    let owner = Owner::Node(node.id.clone());
    let mut fresh = Vec::new();
    let mut want = Vec::new();
    match obs.ingress().map(|n| n.id.clone()) {
        None => {
            obs.waiting_nodes.remove(&node.id);
        }
        Some(net) => {
            // The address it already holds there (written by an earlier
            // leader or pass) is kept.
            let kept = node
                .attachments
                .iter()
                .filter(|a| a.network_id == net)
                .flat_map(|a| a.addresses.iter())
                .find(|a| ipam::parse_addr(a).is_ok_and(|ip| obs.owns(&(net.clone(), ip), &owner)))
                .cloned();
            let addr = match kept {
                Some(a) => Some(a),
                None => match obs.allocate(&net, &owner) {
                    Ok((ip, subnet)) => {
                        fresh.push((net.clone(), ip));
                        Some(subnet.with_addr(ip))
                    }
                    Err(e) => {
                        if obs.waiting_nodes.insert(node.id.clone()) {
                            tracing::warn!(
                                node = %node.id,
                                error = %e,
                                "the ingress network is full: the node gets no routing-mesh address until one is freed"
                            );
                        }
                        None
                    }
                },
            };
            if let Some(addr) = addr {
                obs.waiting_nodes.remove(&node.id);
                want.push(NetworkAttachment {
                    network_id: net,
                    addresses: vec![addr],
                    aliases: Vec::new(),
                });
            }
        }
    }
    if want == node.attachments {
        return None;
    }
    let mut updated = node.clone();
    updated.attachments = want;
    Some((updated, fresh))
}

/// An object the allocator writes addresses into, other than a task: a
/// service (its VIPs) or a node (its ingress address). Both are written
/// the same way by [`write_updates`].
trait Holder: Sized {
    /// What it is, for logs.
    const WHAT: &'static str;
    /// Its store kind.
    const KIND: &'static str;
    fn id(&self) -> &str;
    fn owner(id: &str) -> Owner;
    /// The version-checked put of this copy.
    fn put(&self) -> Op;
    /// Takes the written copy (stored at `index`) into the view and
    /// accounts it.
    fn written(self, view: &mut View, index: u64);
    /// Puts the store's copy back into the view (after a refused write) and
    /// accounts it.
    fn reread(store: &Store, view: &mut View, id: &str);
    /// Has the next pass look at it again.
    fn redo(view: &mut View, id: String);
}

impl Holder for Service {
    const WHAT: &'static str = "service VIPs";
    const KIND: &'static str = objects::KIND_SERVICE;

    fn id(&self) -> &str {
        &self.id
    }

    fn owner(id: &str) -> Owner {
        Owner::Service(id.to_string())
    }

    fn put(&self) -> Op {
        objects::put(self)
    }

    fn written(mut self, view: &mut View, index: u64) {
        self.meta.get_or_insert_with(Default::default).version = Some(Version { index });
        let id = self.id.clone();
        view.services.insert(id.clone(), self);
        account(view, &id);
    }

    fn reread(store: &Store, view: &mut View, id: &str) {
        match objects::get::<Service>(store, id) {
            Ok(Some(s)) => {
                view.services.insert(id.to_string(), s);
            }
            Ok(None) => {
                view.services.remove(id);
            }
            Err(e) => {
                tracing::warn!(service = %id, error = %e, "cannot re-read a service after a refused write");
            }
        }
        account(view, id);
    }

    fn redo(view: &mut View, id: String) {
        view.observer.dirty_services.insert(id);
    }
}

impl Holder for Node {
    const WHAT: &'static str = "node ingress addresses";
    const KIND: &'static str = objects::KIND_NODE;

    fn id(&self) -> &str {
        &self.id
    }

    fn owner(id: &str) -> Owner {
        Owner::Node(id.to_string())
    }

    fn put(&self) -> Op {
        // Guarded by the version the view read, so a newer copy (the
        // dispatcher's status, a `node update`'s spec) is never overwritten.
        // A copy without a version (never the case for one read from the
        // store) is refused rather than written blindly.
        let mut op = objects::put(self);
        if let Op::Put { expect_version, .. } = &mut op {
            expect_version.get_or_insert(0);
        }
        op
    }

    fn written(mut self, view: &mut View, index: u64) {
        self.meta.get_or_insert_with(Default::default).version = Some(Version { index });
        let id = self.id.clone();
        view.nodes.insert(id.clone(), self);
        account_node(view, &id);
    }

    fn reread(store: &Store, view: &mut View, id: &str) {
        match objects::get::<Node>(store, id) {
            Ok(Some(n)) => {
                view.nodes.insert(id.to_string(), n);
            }
            Ok(None) => {
                view.nodes.remove(id);
            }
            Err(e) => {
                tracing::warn!(node = %id, error = %e, "cannot re-read a node after a refused write");
            }
        }
        account_node(view, id);
    }

    fn redo(view: &mut View, id: String) {
        view.observer.dirty_nodes.insert(id);
    }
}

/// Writes services or nodes with new addresses, in chunks. One whose write
/// conflicts (someone else wrote it first) is re-read, its new addresses
/// freed, and left for the next pass (returns true then).
async fn write_updates<H: Holder>(
    store: &Store,
    view: &mut View,
    updates: Vec<(H, Vec<Held>)>,
) -> Result<bool, ManagerError> {
    let mut retry = false;
    let mut rest = updates.into_iter();
    loop {
        let mut chunk: Vec<(H, Vec<Held>)> = rest.by_ref().take(WRITE_CHUNK).collect();
        if chunk.is_empty() {
            return Ok(retry);
        }
        while !chunk.is_empty() {
            if !store.is_leader() {
                forget(view, chunk.into_iter().chain(rest.by_ref()));
                return Err(StoreError::NoLeader.into());
            }
            let ops = chunk.iter().map(|(h, _)| h.put()).collect();
            match store.write(ops).await {
                Ok(index) => {
                    for (h, _) in chunk.drain(..) {
                        h.written(view, index);
                    }
                }
                Err(StoreError::Conflict { kind, id, .. })
                    if kind == H::KIND && chunk.iter().any(|(h, _)| h.id() == id) =>
                {
                    tracing::debug!(%kind, %id, "write conflict; re-reading it");
                    let at = chunk.iter().position(|(h, _)| h.id() == id);
                    if let Some(at) = at {
                        let refused = chunk.remove(at);
                        forget(view, std::iter::once(refused));
                    }
                    H::reread(store, view, &id);
                    retry = true;
                }
                Err(e @ (StoreError::NoLeader | StoreError::Shutdown)) => {
                    forget(view, chunk.into_iter().chain(rest.by_ref()));
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(error = %e, what = H::WHAT, "allocator could not write addresses; retrying in {STORE_ERROR_PAUSE:?}");
                    forget(view, chunk.into_iter().chain(rest.by_ref()));
                    tokio::time::sleep(STORE_ERROR_PAUSE).await;
                    return Ok(true);
                }
            }
        }
    }
}

/// Frees the addresses allocated for updates that were not written, and has
/// the next pass look at those objects again.
fn forget<H: Holder>(view: &mut View, updates: impl Iterator<Item = (H, Vec<Held>)>) {
    for (h, fresh) in updates {
        let owner = H::owner(h.id());
        for held in &fresh {
            view.observer.release(held, &owner);
        }
        H::redo(view, h.id().to_string());
    }
}

/// The ports a task publishes: its own endpoint (copied from the service
/// when it was made), else its service's spec.
fn task_ports<'a>(t: &'a Task, svc: &'a Service) -> Vec<&'a PortConfig> {
    match t.endpoint.as_ref() {
        Some(e) => e
            .ports
            .iter()
            .chain(e.spec.iter().flat_map(|s| s.ports.iter()))
            .collect(),
        None => svc
            .spec
            .iter()
            .flat_map(|s| s.endpoint.iter())
            .flat_map(|e| e.ports.iter())
            .collect(),
    }
}

/// The networks a task is attached to, with their aliases: `ingress` first
/// when its service publishes ingress ports, then its template's networks.
/// An error is the message the task waits with.
fn task_targets(
    obs: &Allocations,
    t: &Task,
    svc: &Service,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let ports: Vec<PortConfig> = task_ports(t, svc).into_iter().cloned().collect();
    if network::publishes_ingress(&ports) {
        match obs.ingress() {
            Some(n) => out.push((n.id.clone(), Vec::new())),
            None => return Err(NO_INGRESS_MESSAGE.to_string()),
        }
    }
    for cfg in t.spec.iter().flat_map(|s| s.networks.iter()) {
        let Some(n) = obs.resolve(&cfg.target) else {
            return Err(format!("network {} not found", cfg.target));
        };
        match out.iter_mut().find(|(id, _)| *id == n.id) {
            Some((_, aliases)) => aliases.extend(cfg.aliases.iter().cloned()),
            None => out.push((n.id.clone(), cfg.aliases.clone())),
        }
    }
    Ok(out)
}

/// Allocates a NEW task's addresses and moves it to PENDING, or records why
/// it has to wait.
fn plan_task(view: &mut View, batch: &mut Batch, id: &str, now: i64) {
    let Some(t) = view.tasks.get(id) else {
        return;
    };
    if !awaits_allocation(t) {
        return;
    }
    // A task whose service is gone is the reaper's.
    let Some(svc) = view.services.get(&t.service_id) else {
        return;
    };
    let (t, svc) = (t.clone(), svc.clone());
    let targets = match task_targets(&view.observer, &t, &svc) {
        Ok(targets) => targets,
        Err(message) => {
            set_message(view, batch, &t, &message);
            return;
        }
    };
    let owner = Owner::Task(t.id.clone());
    let mut attachments = Vec::new();
    let mut fresh: Vec<Held> = Vec::new();
    for (net, aliases) in targets {
        // An address it already holds there (written by an earlier leader)
        // is kept.
        let kept = t
            .networks
            .iter()
            .filter(|a| a.network_id == net)
            .flat_map(|a| a.addresses.iter())
            .find(|a| {
                ipam::parse_addr(a).is_ok_and(|ip| view.observer.owns(&(net.clone(), ip), &owner))
            })
            .cloned();
        let addr = match kept {
            Some(a) => a,
            None => match view.observer.allocate(&net, &owner) {
                Ok((ip, subnet)) => {
                    fresh.push((net.clone(), ip));
                    subnet.with_addr(ip)
                }
                Err(e) => {
                    for h in &fresh {
                        view.observer.release(h, &owner);
                    }
                    set_message(view, batch, &t, &e.to_string());
                    return;
                }
            },
        };
        attachments.push(NetworkAttachment {
            network_id: net,
            addresses: vec![addr],
            aliases,
        });
    }
    let mut next = t;
    next.networks = attachments;
    if let Some(vips) = svc.endpoint.as_ref().map(|e| e.virtual_ips.clone()) {
        if let Some(e) = next.endpoint.as_mut() {
            e.virtual_ips = vips;
        }
    }
    let status = next.status.get_or_insert_with(TaskStatus::default);
    status.state = TaskState::Pending as i32;
    status.message = PENDING_MESSAGE.into();
    status.err.clear();
    status.timestamp = now;
    if !batch.put_task(view, next) {
        for h in &fresh {
            view.observer.release(h, &owner);
        }
    }
}

/// Records why a NEW task waits, unless it already says so.
fn set_message(view: &mut View, batch: &mut Batch, t: &Task, message: &str) {
    if t.status
        .as_ref()
        .is_some_and(|s| s.message == message && s.err == message)
    {
        return;
    }
    let mut next = t.clone();
    let status = next.status.get_or_insert_with(TaskStatus::default);
    status.message = message.to_string();
    status.err = message.to_string();
    batch.put_task(view, next);
}
