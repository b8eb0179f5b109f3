//! Control calls on nodes: get, list, update (availability, labels, role) and
//! remove. Answers are decorated with the live Raft view (who leads, which
//! managers are reachable); refusals say why in words a user can act on.

use rswarm_proto::control::{RemoveNodeRequest, UpdateNodeRequest};
use rswarm_proto::types::{Node, NodeRole, Reachability};
use rswarm_raft::{Store, StoreError};

use super::spec_write::write_spec;
use crate::error::ManagerError;
use crate::objects;

pub(super) fn get(store: &Store, reference: &str) -> Result<Node, ManagerError> {
    let node = objects::resolve_node(store, reference)?;
    Ok(decorate(store, node))
}

pub(super) fn list(store: &Store) -> Result<Vec<Node>, ManagerError> {
    Ok(objects::list::<Node>(store)?
        .into_iter()
        .map(|n| decorate(store, n))
        .collect())
}

/// Fill in `manager_status.leader` and `reachability` from this manager's
/// Raft view; they change too often to be stored.
pub(super) fn decorate(store: &Store, mut node: Node) -> Node {
    let status = store.status();
    let ready = objects::is_ready(&node);
    if let Some(ms) = node.manager_status.as_mut() {
        let member = status.voters.contains(&ms.raft_id) || status.learners.contains(&ms.raft_id);
        ms.leader = status.leader == Some(ms.raft_id);
        ms.reachability = if ms.leader || (member && ready) {
            Reachability::Reachable as i32
        } else {
            Reachability::Unreachable as i32
        };
    }
    node
}

/// `node update` (and promote, demote): write the node's spec, refused only
/// if its spec changed since the caller read the version it sends.
pub(super) async fn update(store: &Store, req: UpdateNodeRequest) -> Result<Node, ManagerError> {
    let Some(spec) = req.spec else {
        return Err(ManagerError::InvalidArgument(
            "node update without a spec".into(),
        ));
    };
    let based_on = req.spec_version.as_ref().map_or(0, |v| v.index);
    let node = write_spec(
        store,
        based_on,
        || objects::resolve_node(store, &req.node_ref),
        |node: &mut Node| {
            let old_role = node
                .spec
                .as_ref()
                .map(|s| s.desired_role)
                .unwrap_or(node.role);
            if old_role == NodeRole::Manager as i32 && spec.desired_role == NodeRole::Worker as i32
            {
                check_demotion(store, node)?;
            }
            node.spec = Some(spec.clone());
            Ok(())
        },
    )
    .await?;
    Ok(decorate(store, node))
}

/// Refuse a demotion that would leave the swarm without managers or without
/// a Raft quorum.
fn check_demotion(store: &Store, node: &Node) -> Result<(), ManagerError> {
    let nodes = objects::list::<Node>(store)?;
    let managers = nodes
        .iter()
        .filter(|n| n.spec.as_ref().map(|s| s.desired_role) == Some(NodeRole::Manager as i32))
        .count();
    if managers <= 1 {
        return Err(ManagerError::FailedPrecondition(format!(
            "node {} is the last manager of the swarm and cannot be demoted; promote another node first",
            node.id
        )));
    }
    let status = store.status();
    let raft_id = objects::raft_id_for(&node.id);
    if status.voters.contains(&raft_id) {
        let reachable_after = nodes
            .iter()
            .filter(|n| n.id != node.id)
            .filter(|n| status.voters.contains(&objects::raft_id_for(&n.id)))
            .filter(|n| objects::is_ready(n) || status.leader == Some(objects::raft_id_for(&n.id)))
            .count();
        let voters_after = status.voters.len() - 1;
        if reachable_after <= voters_after / 2 {
            return Err(ManagerError::FailedPrecondition(format!(
                "can't demote node {}: it would result in a loss of quorum ({} of {} remaining managers reachable)",
                node.id, reachable_after, voters_after
            )));
        }
    }
    Ok(())
}

pub(super) async fn remove(store: &Store, req: RemoveNodeRequest) -> Result<(), ManagerError> {
    let node = objects::resolve_node(store, &req.node_ref)?;
    let raft_id = objects::raft_id_for(&node.id);
    let status = store.status();
    if objects::is_manager(&node)
        || status.voters.contains(&raft_id)
        || status.learners.contains(&raft_id)
    {
        return Err(ManagerError::FailedPrecondition(format!(
            "node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal",
            node.id
        )));
    }
    if objects::is_ready(&node) && !req.force {
        return Err(ManagerError::FailedPrecondition(format!(
            "node {} is not down and can't be removed",
            node.id
        )));
    }
    loop {
        let mut cluster = objects::cluster(store)?;
        if !cluster.removed_nodes.contains(&node.id) {
            cluster.removed_nodes.push(node.id.clone());
        }
        let ops = vec![
            objects::put(&cluster),
            rswarm_raft::Op::Delete {
                kind: objects::KIND_NODE.into(),
                id: node.id.clone(),
                expect_version: None,
            },
        ];
        match store.write(ops).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
