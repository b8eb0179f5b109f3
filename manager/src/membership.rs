//! This manager's own place in the Raft membership: waiting to lead a new
//! store, asking the other managers to add it on join or promotion, and
//! stepping out (with Docker's quorum warnings) when its node leaves the
//! swarm. The membership of *other* nodes follows their roles in `roles`.

use std::time::Duration;

use rswarm_proto::identity::tls::{self, NodeTls};
use rswarm_proto::raft::raft_client::RaftClient;
use rswarm_proto::raft::AddMemberRequest;
use rswarm_proto::types::{Node, NodeRole};
use rswarm_raft::Store;
use tonic::Status;

use crate::error::ManagerError;
use crate::{objects, Manager};

/// Wait until this manager leads `store` (a store of one just bootstrapped).
pub(crate) async fn wait_leader(store: &Store, timeout: Duration) -> Result<(), ManagerError> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !store.is_leader() {
        if tokio::time::Instant::now() > deadline {
            return Err(ManagerError::Internal(format!(
                "this manager did not become the Raft leader within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Ask the managers (in turn) to add this node to the Raft membership; the
/// call returns once this node is a voter.
pub(crate) async fn add_member(
    node_tls: &NodeTls,
    peers: &[String],
    node_id: &str,
    advertise_addr: &str,
) -> Result<(), ManagerError> {
    let mut last = String::from("no manager to ask");
    for peer in peers.iter().filter(|p| *p != advertise_addr) {
        let channel = match tls::connect(
            peer,
            &node_tls.ca_pem,
            Some((&node_tls.cert_pem, &node_tls.key_pem)),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                last = format!("{peer}: {e}");
                continue;
            }
        };
        let req = AddMemberRequest {
            raft_id: objects::raft_id_for(node_id),
            addr: advertise_addr.to_string(),
            node_id: node_id.to_string(),
        };
        let mut client = RaftClient::new(channel);
        match tokio::time::timeout(Duration::from_secs(60), client.add_member(req)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(s)) => last = format!("{peer}: {}", s.message()),
            Err(_) => last = format!("{peer}: timed out adding this node to the Raft membership"),
        }
    }
    Err(ManagerError::Internal(format!(
        "could not join the Raft membership: {last}"
    )))
}

impl Manager {
    /// `swarm leave` on a manager: refuse (unless `force`) when this is the
    /// last manager or leaving would cost the swarm its quorum; otherwise
    /// step out of the Raft membership so the others keep quorum.
    pub async fn leave_membership(&self, node_id: &str, force: bool) -> Result<(), Status> {
        let store = self.store();
        let status = store.status();
        let me = objects::raft_id_for(node_id);
        let nodes = objects::list::<Node>(store).unwrap_or_default();
        let reachable = status
            .voters
            .iter()
            .filter(|id| {
                **id == me
                    || status.leader == Some(**id)
                    || nodes
                        .iter()
                        .any(|n| objects::raft_id_for(&n.id) == **id && objects::is_ready(n))
            })
            .count();
        let voters = status.voters.len();
        if !force {
            if voters <= 1 {
                return Err(Status::failed_precondition(
                    "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.",
                ));
            }
            let after = reachable.saturating_sub(1);
            if after <= (voters - 1) / 2 {
                return Err(Status::failed_precondition(format!(
                    "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves {after} managers out of {}. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.",
                    voters - 1
                )));
            }
        }
        if voters <= 1 {
            return Ok(());
        }
        // Step out of the Raft membership first so the others keep quorum.
        if let Ok(Some(mut node)) = objects::get::<Node>(store, node_id) {
            if let Some(mut spec) = node.spec.clone() {
                spec.desired_role = NodeRole::Worker as i32;
                objects::set_spec(&mut node, spec);
            }
            node.manager_status = None;
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                store.write(vec![objects::put(&node)]),
            )
            .await;
        }
        match tokio::time::timeout(Duration::from_secs(10), store.remove_manager(me)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if !force => Err(Status::unavailable(format!(
                "could not leave the Raft membership: {e}"
            ))),
            Ok(Err(_)) | Err(_) if force => Ok(()),
            _ => Err(Status::unavailable(
                "could not leave the Raft membership in time",
            )),
        }
    }
}

impl Manager {
    /// The manager's part of `rswarm info`: the Raft state and membership,
    /// and the node counts of the swarm.
    pub fn fill_info(&self, out: &mut rswarm_proto::daemon::InfoResponse) {
        use rswarm_proto::daemon::{ManagerPeer, RaftInfo};
        let store = self.store();
        let s = store.status();
        let nodes = objects::list::<Node>(store).unwrap_or_default();
        out.control_available = true;
        out.nodes = nodes.len() as u32;
        out.manager_count = nodes.iter().filter(|n| n.manager_status.is_some()).count() as u32;
        out.raft = Some(RaftInfo {
            raft_id: s.raft_id,
            state: s.state.clone(),
            term: s.term,
            leader_raft_id: s.leader.unwrap_or(0),
            last_log_index: s.last_log_index,
            last_applied: s.last_applied,
            snapshot_index: s.snapshot_index,
            voters: s.voters.clone(),
            learners: s.learners.clone(),
        });
        out.managers = s
            .members
            .iter()
            .map(|(id, addr)| ManagerPeer {
                node_id: nodes
                    .iter()
                    .find(|n| objects::raft_id_for(&n.id) == *id)
                    .map(|n| n.id.clone())
                    .unwrap_or_default(),
                addr: addr.clone(),
            })
            .collect();
    }

    /// The nodes of the swarm, as this manager's store has them.
    pub fn nodes(&self) -> Vec<rswarm_proto::types::Node> {
        objects::list::<Node>(self.store()).unwrap_or_default()
    }

    /// The swarm's worker join token.
    pub fn worker_token(&self) -> String {
        objects::cluster(self.store())
            .ok()
            .and_then(|c| c.root_ca)
            .and_then(|c| c.join_tokens)
            .map(|t| t.worker)
            .unwrap_or_default()
    }
}
