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
//!   which tasks wait in NEW), rebuilt from the objects;
//! - `addresses`: what one service, task or node gets (decisions only);
//! - `writes`: writing services' VIPs and nodes' addresses back;
//! - `ports`: the published-port rule (dynamic ports, ingress conflicts),
//!   which the Control API applies inside `service create` and `update`.
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
//! Only the Raft leader allocates: the leader supervisor (`crate::leader`)
//! runs [`run`] while this manager leads. Every allocation lives in the
//! objects, so a manager that becomes leader rebuilds the accounting from
//! the store (tasks, then services, then nodes) before deciding anything,
//! and never hands out an address twice. Writes go in batches with version
//! checks: a refused task write is rolled back (its addresses freed) and
//! decided again from the store's copy; a refused service or node write (the
//! dispatcher, certificate renewals and `node update` write nodes too) frees
//! its new addresses, re-reads the object and decides again, so no one
//! else's fields are ever overwritten.

mod addresses;
pub mod ipam;
pub mod network;
pub(crate) mod ports;
pub(crate) mod state;
mod writes;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use rswarm_raft::{Change, Store, StoreError};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;

use self::addresses::{plan_node, plan_task, plan_vips};
pub use self::network::{default_address_pool, ingress_network};
use self::state::Allocations;
use self::writes::write_updates;
use crate::error::ManagerError;
use crate::objects::{self, now_nanos};
use crate::orchestrator::view::{commit, Batch, ClusterView, Drained, Touched};
use crate::orchestrator::STORE_ERROR_PAUSE;

/// How often the loop wakes to look at the full pass when nothing changes.
const TICK: Duration = Duration::from_millis(250);
/// Every so often every service is looked at, whether or not it changed.
const FULL_PASS_EVERY: Duration = Duration::from_secs(30);
/// Pause before redoing writes that conflicted.
const CONFLICT_PAUSE: Duration = Duration::from_millis(20);

/// The message of a task whose service publishes ingress ports when there
/// is no ingress network.
pub const NO_INGRESS_MESSAGE: &str =
    "ingress network not found: the service publishes ports in ingress mode";

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

/// Allocates for one leadership term: runs until the leader supervisor
/// (`crate::leader`) aborts it, or the store fails under it.
pub async fn run(store: Store) -> Result<(), ManagerError> {
    let store = &store;
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
