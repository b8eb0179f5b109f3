//! Forgetting the connections of backends that have stopped: conntrack
//! entries whose reply comes from a stopped task's address are deleted in
//! the node's namespace (the routing mesh, host-mode ports) and in the
//! namespace of every local task that serves (its VIPs), so a connection the mesh or a VIP
//! carried to that task ends at the client's next packet (a reset from a
//! live backend, or a refusal) instead of hanging until it times out.
//!
//! Never while a task drains: only addresses of tasks whose process is gone
//! come here, from this node when its own task stops (`release_task`) and
//! from the network state when a task leaves it (it stays listed, not
//! serving, until it has stopped). Requests are folded for a moment and
//! done in one pass over the namespaces, so `service rm` of many local
//! tasks costs a few passes, not one per task. An address that serves
//! again by the time of the pass (reused) is left alone.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use rswarm_overlay::nft;
use tokio::sync::mpsc;

use super::{ip_of, NetPlane, NODE_NETNS};

/// Requests this close together are done in one pass.
const FOLD: Duration = Duration::from_millis(50);

/// Starts the loop that does the requests sent on the returned channel.
pub(super) fn start(plane: Weak<NetPlane>) -> mpsc::UnboundedSender<Vec<Ipv4Addr>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Ipv4Addr>>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(FOLD).await;
            let mut addrs: BTreeSet<Ipv4Addr> = first.into_iter().collect();
            while let Ok(more) = rx.try_recv() {
                addrs.extend(more);
            }
            let Some(plane) = plane.upgrade() else { return };
            let (addrs, spaces) = plane.forget_plan(addrs);
            drop(plane);
            if addrs.is_empty() {
                continue;
            }
            let shown = addrs.clone();
            let done = tokio::task::spawn_blocking(move || forget_in(&spaces, &addrs)).await;
            match done {
                Ok(n) => {
                    tracing::debug!(backends = ?shown, entries = n, "forgot the connections of stopped backends")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "forgetting the connections of stopped backends")
                }
            }
        }
    });
    tx
}

/// Deletes the entries of `addrs` in each namespace; how many went.
fn forget_in(spaces: &[PathBuf], addrs: &[Ipv4Addr]) -> usize {
    let mut total = 0;
    for ns in spaces {
        match nft::forget_backends(ns, addrs) {
            Ok(n) => total += n,
            // A task namespace removed meanwhile has nothing left to forget.
            Err(_) if !ns.exists() => {}
            Err(e) => tracing::warn!(error = %e, "forgetting the connections of stopped backends"),
        }
    }
    total
}

impl NetPlane {
    /// Asks for the connections of `addrs` (stopped tasks) to be forgotten.
    pub(super) fn forget_later(&self, addrs: Vec<Ipv4Addr>) {
        if !addrs.is_empty() {
            let _ = self.forget.send(addrs);
        }
    }

    /// Which of `addrs` to forget (not those serving again, nor a local
    /// task's gateway address) and in which namespaces.
    fn forget_plan(&self, addrs: BTreeSet<Ipv4Addr>) -> (Vec<Ipv4Addr>, Vec<PathBuf>) {
        let local = self.local_tasks();
        let (serving, clients): (BTreeSet<Ipv4Addr>, BTreeSet<String>) = {
            let state = self.state.borrow();
            let running = state.endpoints.iter().filter(|e| e.running);
            (
                running
                    .clone()
                    .filter_map(|e| ip_of(&e.addr))
                    .chain(local.values().filter_map(|t| t.gateway))
                    .collect(),
                running.map(|e| e.task_id.clone()).collect(),
            )
        };
        let addrs = addrs.into_iter().filter(|a| !serving.contains(a)).collect();
        // The VIP tables of local tasks that serve: a task that is starting
        // or stopping itself (`service rm` of many) is no client worth a
        // pass over its table.
        let mut spaces = vec![PathBuf::from(NODE_NETNS)];
        spaces.extend(
            local
                .iter()
                .filter(|(id, t)| !t.networks.is_empty() && clients.contains(id.as_str()))
                .map(|(id, _)| self.overlay.task_netns_path(id))
                .filter(|p| p.exists()),
        );
        (addrs, spaces)
    }
}
