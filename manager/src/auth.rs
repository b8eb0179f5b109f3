//! Who may call what over TCP. Every TCP call carries the caller's node
//! certificate (verified against the cluster CA by rustls); this module turns
//! it into a `NodeIdentity`, refuses callers without one, from another
//! cluster, removed from this one, or with a worker certificate calling a
//! manager-only API. Calls over the local unix socket never pass here: the
//! socket is root's, like dockerd's.

use rswarm_proto::identity::cert::NodeIdentity;
use rswarm_proto::identity::tls::peer_identity;
use rswarm_proto::types::NodeRole;
use rswarm_raft::Store;
use tonic::{Request, Status};

use crate::objects;

/// What a service demands of its callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Any node of this cluster (dispatcher, certificate renewal).
    Node,
    /// Manager certificates only (Control, Raft).
    Manager,
    /// No certificate needed: the handler authorises by other means (join token).
    Open,
}

/// Checks callers against the cluster's CA, ID and removed-node list.
#[derive(Clone)]
pub struct Auth {
    store: Store,
    cluster_id: String,
}

impl Auth {
    pub fn new(store: Store, cluster_id: String) -> Self {
        Self { store, cluster_id }
    }

    /// Authorise one call; on success the caller's identity (if any) is returned.
    pub fn check<T>(
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
        if let Ok(cluster) = objects::cluster(&self.store) {
            if cluster.removed_nodes.iter().any(|n| n == &id.node_id) {
                return Err(Status::permission_denied(format!(
                    "permission denied: node {} was removed from the swarm",
                    id.node_id
                )));
            }
        }
        if access == Access::Manager && id.role != NodeRole::Manager {
            return Err(Status::permission_denied(format!(
                "permission denied: node {} presents a worker certificate (swarm-worker); this API is for managers (swarm-manager)",
                id.node_id
            )));
        }
        Ok(Some(id))
    }

    /// A tonic interceptor enforcing `access`; the identity is put into the
    /// request's extensions for handlers that need it.
    pub fn interceptor(
        &self,
        access: Access,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static
    {
        let auth = self.clone();
        move |mut req: Request<()>| {
            if let Some(id) = auth.check(&req, access)? {
                req.extensions_mut().insert(id);
            }
            Ok(req)
        }
    }
}

/// The identity an interceptor placed on the request, if any.
pub fn caller<T>(req: &Request<T>) -> Option<NodeIdentity> {
    req.extensions().get::<NodeIdentity>().cloned()
}
