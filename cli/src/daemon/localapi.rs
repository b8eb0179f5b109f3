//! The daemon's local socket API: the `Daemon` service (`init`, `join`,
//! `leave`, `info`) and the `Control` service, which answers only while this
//! node is a manager and otherwise says so (as dockerd does on a worker).

use std::sync::Arc;

use rswarm_proto::control::control_server::Control;
use rswarm_proto::control::networks_server::Networks;
use rswarm_proto::control::services_server::Services;
use rswarm_proto::control::*;
use rswarm_proto::daemon::daemon_server::Daemon;
use rswarm_proto::daemon::*;
use rswarm_proto::types::{Cluster, Network, Node, Service, Task};
use tonic::{Request, Response, Status, Streaming};

use super::node::NodeRuntime;

#[derive(Clone)]
pub struct LocalDaemon {
    pub node: Arc<NodeRuntime>,
}

#[tonic::async_trait]
impl Daemon for LocalDaemon {
    async fn init(&self, req: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        Ok(Response::new(self.node.init(req.into_inner()).await?))
    }
    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        Ok(Response::new(self.node.join(req.into_inner()).await?))
    }
    async fn leave(&self, req: Request<LeaveRequest>) -> Result<Response<LeaveResponse>, Status> {
        Ok(Response::new(self.node.leave(req.into_inner()).await?))
    }
    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(self.node.info().await))
    }
    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        Ok(Response::new(
            self.node.unlock(&req.into_inner().unlock_key).await?,
        ))
    }
    async fn unlock_key(
        &self,
        req: Request<UnlockKeyRequest>,
    ) -> Result<Response<UnlockKeyResponse>, Status> {
        Ok(Response::new(
            self.node.unlock_key(req.into_inner().rotate).await?,
        ))
    }
    async fn update_autolock(
        &self,
        req: Request<UpdateAutolockRequest>,
    ) -> Result<Response<UnlockKeyResponse>, Status> {
        Ok(Response::new(
            self.node.update_autolock(req.into_inner().autolock).await?,
        ))
    }
}

/// Control over the local socket: delegates to this node's manager.
#[derive(Clone)]
pub struct LocalControl {
    pub node: Arc<NodeRuntime>,
}

#[tonic::async_trait]
impl Control for LocalControl {
    async fn get_node(&self, req: Request<GetNodeRequest>) -> Result<Response<Node>, Status> {
        self.node.control().await?.get_node(req).await
    }
    async fn list_nodes(
        &self,
        req: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        self.node.control().await?.list_nodes(req).await
    }
    async fn update_node(&self, req: Request<UpdateNodeRequest>) -> Result<Response<Node>, Status> {
        self.node.control().await?.update_node(req).await
    }
    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        self.node.control().await?.remove_node(req).await
    }
    async fn get_cluster(
        &self,
        req: Request<GetClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.node.control().await?.get_cluster(req).await
    }
    async fn update_cluster(
        &self,
        req: Request<UpdateClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.node.control().await?.update_cluster(req).await
    }
    async fn rotate_join_token(
        &self,
        req: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.node.control().await?.rotate_join_token(req).await
    }
    async fn rotate_root_ca(
        &self,
        req: Request<RotateRootCaRequest>,
    ) -> Result<Response<Cluster>, Status> {
        self.node.control().await?.rotate_root_ca(req).await
    }
}

/// Services over the local socket: delegates to this node's manager.
#[derive(Clone)]
pub struct LocalServices {
    pub node: Arc<NodeRuntime>,
}

type Stream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Services for LocalServices {
    async fn create_service(
        &self,
        req: Request<CreateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.node.services().await?.create_service(req).await
    }
    async fn get_service(
        &self,
        req: Request<GetServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.node.services().await?.get_service(req).await
    }
    async fn list_services(
        &self,
        req: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        self.node.services().await?.list_services(req).await
    }
    async fn update_service(
        &self,
        req: Request<UpdateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        self.node.services().await?.update_service(req).await
    }
    async fn remove_service(
        &self,
        req: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        self.node.services().await?.remove_service(req).await
    }
    async fn get_task(&self, req: Request<GetTaskRequest>) -> Result<Response<Task>, Status> {
        self.node.services().await?.get_task(req).await
    }
    async fn list_tasks(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        self.node.services().await?.list_tasks(req).await
    }
    type LogsStream = Stream<LogsResponse>;
    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        self.node.services().await?.logs(req).await
    }
    type ExecStream = Stream<ExecOutput>;
    async fn exec(
        &self,
        req: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        self.node.services().await?.exec(req).await
    }
}

/// Networks over the local socket: delegates to this node's manager.
#[derive(Clone)]
pub struct LocalNetworks {
    pub node: Arc<NodeRuntime>,
}

#[tonic::async_trait]
impl Networks for LocalNetworks {
    async fn create_network(
        &self,
        req: Request<CreateNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        self.node.networks().await?.create_network(req).await
    }
    async fn get_network(
        &self,
        req: Request<GetNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        self.node.networks().await?.get_network(req).await
    }
    async fn list_networks(
        &self,
        req: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        self.node.networks().await?.list_networks(req).await
    }
    async fn remove_network(
        &self,
        req: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        self.node.networks().await?.remove_network(req).await
    }
    async fn prune_networks(
        &self,
        req: Request<PruneNetworksRequest>,
    ) -> Result<Response<PruneNetworksResponse>, Status> {
        self.node.networks().await?.prune_networks(req).await
    }
}
