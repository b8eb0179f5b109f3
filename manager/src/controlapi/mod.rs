//! The Control API: what `rswarm node …` and `rswarm swarm …` call on a
//! manager. Reads come from this manager's copy of the store; writes go
//! through Raft (forwarded to the leader by the store).

mod cluster;
mod nodes;

use rswarm_proto::control::control_server::Control;
use rswarm_proto::control::*;
use rswarm_proto::types::{Cluster, Node};
use rswarm_raft::Store;
use tonic::{Request, Response, Status};

/// The Control service of one manager.
#[derive(Clone)]
pub struct ControlApi {
    store: Store,
}

impl ControlApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl Control for ControlApi {
    async fn get_node(&self, req: Request<GetNodeRequest>) -> Result<Response<Node>, Status> {
        Ok(Response::new(nodes::get(
            &self.store,
            &req.into_inner().node_ref,
        )?))
    }

    async fn list_nodes(
        &self,
        _req: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Ok(Response::new(ListNodesResponse {
            nodes: nodes::list(&self.store)?,
        }))
    }

    async fn update_node(&self, req: Request<UpdateNodeRequest>) -> Result<Response<Node>, Status> {
        Ok(Response::new(
            nodes::update(&self.store, req.into_inner()).await?,
        ))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        nodes::remove(&self.store, req.into_inner()).await?;
        Ok(Response::new(RemoveNodeResponse {}))
    }

    async fn get_cluster(
        &self,
        _req: Request<GetClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        Ok(Response::new(cluster::get(&self.store)?))
    }

    async fn rotate_join_token(
        &self,
        req: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<Cluster>, Status> {
        Ok(Response::new(
            cluster::rotate(&self.store, req.into_inner()).await?,
        ))
    }
}
