//! Role reconciliation on the leader: keeps Raft membership in line with
//! what nodes are asked to be. A node demoted to worker is taken out of the
//! Raft membership (its agent then renews its certificate as a worker and
//! its daemon stops the manager); every Raft member's node object carries
//! its manager status (Raft ID and address).

use rswarm_proto::types::{ManagerStatus, Node, NodeRole};
use rswarm_raft::{Store, StoreError};

use crate::error::ManagerError;
use crate::objects;

/// One pass; a no-op on followers.
pub(crate) async fn reconcile(store: &Store) -> Result<(), ManagerError> {
    if !store.is_leader() {
        return Ok(());
    }
    let status = store.status();
    for node in objects::list::<Node>(store)? {
        let raft_id = objects::raft_id_for(&node.id);
        let member = status.voters.contains(&raft_id) || status.learners.contains(&raft_id);
        let desired = node
            .spec
            .as_ref()
            .map(|s| s.desired_role)
            .unwrap_or(node.role);
        if desired == NodeRole::Worker as i32 && member {
            tracing::info!(node = %node.id, raft_id, "demoted: removing the node from the Raft membership");
            store.remove_manager(raft_id).await?;
            let Some(mut fresh) = objects::get::<Node>(store, &node.id)? else {
                continue;
            };
            fresh.manager_status = None;
            write_ignoring_conflict(store, &fresh).await?;
            // Membership changed: the next pass sees the new view.
            return Ok(());
        }
        if member {
            let addr = status
                .members
                .iter()
                .find(|(id, _)| *id == raft_id)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            let current = node.manager_status.as_ref();
            if current.map(|m| (m.raft_id, m.addr.as_str())) != Some((raft_id, addr.as_str())) {
                let mut fresh = node.clone();
                fresh.manager_status = Some(ManagerStatus {
                    raft_id,
                    addr,
                    leader: false,
                    reachability: 0,
                });
                write_ignoring_conflict(store, &fresh).await?;
            }
        }
    }
    Ok(())
}

async fn write_ignoring_conflict(
    store: &Store,
    node: &rswarm_proto::types::Node,
) -> Result<(), ManagerError> {
    match store.write(vec![objects::put(node)]).await {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
