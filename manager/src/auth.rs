//! Who may call what over TCP. Every TCP call carries the caller's node
//! certificate (verified against the cluster CA by rustls); this module turns
//! it into a `NodeIdentity` and decides, in one layer in front of all the
//! manager's services (`grpc::AuthLayer`, never a check per method), whether
//! the caller may make the call. Calls over the local unix socket never pass
//! here: the socket is root's, like dockerd's.
//!
//! A certificate says what a node *was* when it was signed; the cluster says
//! what it *is*. So beyond the certificate (signed by the swarm's CA, of this
//! swarm, not of a removed node, with the role the API needs), the caller is
//! looked up in this manager's own copy of the store (a local read of the
//! applied state, no Raft round trip):
//!
//! - **Control** (Control, Services, Networks; [`Access::Manager`]): the
//!   caller's Node object must exist and both its current role and its
//!   desired role must be manager. A demoted manager is refused from the
//!   moment this manager applies the demotion, whatever certificate it still
//!   holds; a node this manager does not know is refused.
//! - **Raft** ([`Access::Raft`]): consensus traffic follows the Raft
//!   membership. A manager certificate is accepted from a node that is a Raft
//!   member in this manager's view, or whose Node object wants it to be a
//!   manager (it is being joined or promoted: its Node object is committed
//!   before it asks to be added). A manager whose store holds no cluster yet
//!   (it has just joined and is catching up from the leader) accepts any
//!   manager certificate of its swarm: it has nothing to check against, and
//!   the leader's first AppendEntries must get through. A demoted node stays
//!   accepted for Raft only while it is still a Raft member (the leader takes
//!   it out within a reconciliation pass, `roles`); refusing it earlier could
//!   stall that very membership change when the demoted node is the leader.
//! - **Node** (dispatcher, tasks, network state, certificate renewal): any
//!   certificate of this swarm not on the removed list.

use rswarm_proto::identity::cert::NodeIdentity;
use rswarm_proto::identity::tls::peer_identity;
use rswarm_proto::types::{Node, NodeRole};
use rswarm_raft::Store;
use tonic::{Request, Status};

use crate::objects;

/// What a service demands of its callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Any node of this cluster (dispatcher, certificate renewal).
    Node,
    /// A node that is a manager now, by certificate and by the store
    /// (Control, Services, Networks).
    Manager,
    /// A manager certificate of a Raft member or a manager being joined (Raft).
    Raft,
    /// No certificate needed: the handler authorises by other means (join token).
    Open,
}

/// What this manager's store says about a caller, read per call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CallerState {
    /// The cluster object is not there yet (a manager catching up after joining).
    pub store_empty: bool,
    /// The caller is on the cluster's removed-node list.
    pub removed: bool,
    /// The caller's Node object: (current role, desired role).
    pub node: Option<(NodeRole, NodeRole)>,
    /// The caller is a voter or learner in this manager's Raft membership.
    pub raft_member: bool,
}

/// Checks callers against the cluster's CA, ID, removed-node list and the
/// roles the store gives them.
#[derive(Clone)]
pub(crate) struct Auth {
    store: Store,
    cluster_id: String,
}

impl Auth {
    pub(crate) fn new(store: Store, cluster_id: String) -> Self {
        Self { store, cluster_id }
    }

    /// Authorise one call; on success the caller's identity (if any) is returned.
    pub(crate) fn check<T>(
        &self,
        req: &Request<T>,
        access: Access,
    ) -> Result<Option<NodeIdentity>, Status> {
        let identity = peer_identity(req);
        if access == Access::Open {
            return Ok(identity);
        }
        let Some(id) = identity else {
            return Err(Status::unauthenticated(
                "a client certificate signed by the swarm's CA is required for this call",
            ));
        };
        if id.cluster_id != self.cluster_id {
            return Err(Status::permission_denied(format!(
                "permission denied: certificate of node {} belongs to another swarm ({})",
                id.node_id, id.cluster_id
            )));
        }
        let state = self.caller_state(&id.node_id, access)?;
        decide(&id, access, &state)?;
        Ok(Some(id))
    }

    /// Read what the store says about `node_id`; only what `access` needs.
    fn caller_state(&self, node_id: &str, access: Access) -> Result<CallerState, Status> {
        let unavailable =
            |e: crate::ManagerError| Status::unavailable(format!("checking the caller: {e}"));
        let mut state = CallerState::default();
        match objects::cluster(&self.store) {
            Ok(cluster) => state.removed = cluster.removed_nodes.iter().any(|n| n == node_id),
            Err(crate::ManagerError::NotFound(_)) => state.store_empty = true,
            Err(e) => return Err(unavailable(e)),
        }
        if access == Access::Node {
            return Ok(state);
        }
        state.node = objects::get::<Node>(&self.store, node_id)
            .map_err(unavailable)?
            .map(|n| {
                let role = NodeRole::try_from(n.role).unwrap_or(NodeRole::Worker);
                let desired = n
                    .spec
                    .as_ref()
                    .and_then(|s| NodeRole::try_from(s.desired_role).ok())
                    .unwrap_or(role);
                (role, desired)
            });
        if access == Access::Raft {
            let raft_id = objects::raft_id_for(node_id);
            let status = self.store.status();
            state.raft_member =
                status.voters.contains(&raft_id) || status.learners.contains(&raft_id);
        }
        Ok(state)
    }
}

/// The rule itself: may the holder of certificate `id` make a call needing
/// `access`, given what the store says about it (`state`)?
pub(crate) fn decide(id: &NodeIdentity, access: Access, state: &CallerState) -> Result<(), Status> {
    if access == Access::Open {
        return Ok(());
    }
    if state.removed {
        return Err(Status::permission_denied(format!(
            "permission denied: node {} was removed from the swarm",
            id.node_id
        )));
    }
    if access == Access::Node {
        return Ok(());
    }
    if id.role != NodeRole::Manager {
        return Err(Status::permission_denied(format!(
            "permission denied: node {} presents a worker certificate (swarm-worker); this API is for managers (swarm-manager)",
            id.node_id
        )));
    }
    let demoted = || {
        Status::permission_denied(format!(
            "permission denied: node {} is no longer a manager of this swarm (it was demoted); its manager certificate is not accepted",
            id.node_id
        ))
    };
    let unknown = || {
        Status::permission_denied(format!(
            "permission denied: node {} is not a member of this swarm",
            id.node_id
        ))
    };
    match access {
        Access::Manager => match state.node {
            Some((NodeRole::Manager, NodeRole::Manager)) => Ok(()),
            Some(_) => Err(demoted()),
            None => Err(unknown()),
        },
        Access::Raft => {
            if state.raft_member || state.store_empty {
                return Ok(());
            }
            match state.node {
                Some((_, NodeRole::Manager)) => Ok(()),
                Some(_) => Err(demoted()),
                None => Err(unknown()),
            }
        }
        Access::Node | Access::Open => Ok(()),
    }
}

/// The identity the auth layer placed on the request, if any.
pub(crate) fn caller<T>(req: &Request<T>) -> Option<NodeIdentity> {
    req.extensions().get::<NodeIdentity>().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{Cluster, Node, NodeSpec};

    fn cert(role: NodeRole) -> NodeIdentity {
        NodeIdentity {
            node_id: "node1".into(),
            role,
            cluster_id: "cluster".into(),
            not_after: i64::MAX,
        }
    }

    fn known(role: NodeRole, desired: NodeRole) -> CallerState {
        CallerState {
            node: Some((role, desired)),
            ..Default::default()
        }
    }

    fn denied(r: Result<(), Status>) -> String {
        let status = r.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        status.message().to_string()
    }

    use NodeRole::{Manager, Worker};

    #[test]
    fn a_current_manager_may_call_everything() {
        let state = known(Manager, Manager);
        for access in [Access::Manager, Access::Raft, Access::Node, Access::Open] {
            decide(&cert(Manager), access, &state).expect("allowed");
        }
    }

    #[test]
    fn a_demoted_manager_is_refused_control_at_once() {
        // Desired role worker: the demotion is committed, the certificate not yet renewed.
        let err = denied(decide(
            &cert(Manager),
            Access::Manager,
            &known(Manager, Worker),
        ));
        assert!(err.contains("no longer a manager"), "{err}");
        // Renewed in the store, old certificate presented.
        let err = denied(decide(
            &cert(Manager),
            Access::Manager,
            &known(Worker, Worker),
        ));
        assert!(err.contains("demoted"), "{err}");
        // It stays a node of the swarm.
        decide(&cert(Manager), Access::Node, &known(Worker, Worker)).expect("node");
    }

    #[test]
    fn a_promoted_worker_needs_its_manager_certificate_and_role() {
        // Promotion committed, not yet renewed: the worker certificate is refused.
        let err = denied(decide(
            &cert(Worker),
            Access::Manager,
            &known(Worker, Manager),
        ));
        assert!(err.contains("worker certificate"), "{err}");
        // Renewed: role and certificate both say manager.
        decide(&cert(Manager), Access::Manager, &known(Manager, Manager)).expect("manager");
        // Being joined to Raft with its new certificate before the store's role caught up.
        decide(&cert(Manager), Access::Raft, &known(Worker, Manager)).expect("raft");
    }

    #[test]
    fn unknown_and_removed_nodes_are_refused() {
        let unknown = CallerState::default();
        let err = denied(decide(&cert(Manager), Access::Manager, &unknown));
        assert!(err.contains("not a member"), "{err}");
        let err = denied(decide(&cert(Manager), Access::Raft, &unknown));
        assert!(err.contains("not a member"), "{err}");
        let removed = CallerState {
            removed: true,
            raft_member: true,
            ..known(Manager, Manager)
        };
        for access in [Access::Manager, Access::Raft, Access::Node] {
            let err = denied(decide(&cert(Manager), access, &removed));
            assert!(err.contains("removed"), "{err}");
        }
    }

    #[test]
    fn raft_follows_the_membership_and_lets_a_new_manager_catch_up() {
        // A Raft member whose Node object this manager has not applied yet.
        let member = CallerState {
            raft_member: true,
            ..Default::default()
        };
        decide(&cert(Manager), Access::Raft, &member).expect("member");
        // A demoted node still in the membership (the leader takes it out next).
        let leaving = CallerState {
            raft_member: true,
            ..known(Manager, Worker)
        };
        decide(&cert(Manager), Access::Raft, &leaving).expect("still a member");
        // ...and once it is out of the membership it is refused.
        let err = denied(decide(
            &cert(Manager),
            Access::Raft,
            &known(Manager, Worker),
        ));
        assert!(err.contains("demoted"), "{err}");
        // A just-joined manager with an empty store lets the leader in...
        let empty = CallerState {
            store_empty: true,
            ..Default::default()
        };
        decide(&cert(Manager), Access::Raft, &empty).expect("catching up");
        // ...but never Control calls, and never a worker certificate.
        denied(decide(&cert(Manager), Access::Manager, &empty));
        denied(decide(&cert(Worker), Access::Raft, &empty));
    }

    #[tokio::test]
    async fn caller_state_is_read_from_the_store() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let auth = Auth::new(store.clone(), "cluster".into());
        let empty = auth.caller_state("node1", Access::Raft).expect("state");
        assert!(empty.store_empty && empty.node.is_none() && !empty.raft_member);

        let cluster = Cluster {
            id: "cluster".into(),
            removed_nodes: vec!["gone".into()],
            ..Default::default()
        };
        let node = |id: &str, role: NodeRole, desired: NodeRole| Node {
            id: id.into(),
            role: role as i32,
            spec: Some(NodeSpec {
                desired_role: desired as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        store
            .write(vec![
                objects::put(&cluster),
                objects::put(&node("node1", Manager, Worker)),
            ])
            .await
            .expect("write");
        let state = auth.caller_state("node1", Access::Manager).expect("state");
        assert_eq!(state, known(Manager, Worker));
        let err = denied(decide(&cert(Manager), Access::Manager, &state));
        assert!(err.contains("demoted"), "{err}");
        assert!(
            auth.caller_state("gone", Access::Node)
                .expect("state")
                .removed
        );
        // The bare store's own Raft ID is 1; no node ID hashes to it here, so
        // node1 is not a member.
        assert!(
            !auth
                .caller_state("node1", Access::Raft)
                .expect("state")
                .raft_member
        );
    }
}
