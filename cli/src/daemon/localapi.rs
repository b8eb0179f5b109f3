//! The daemon's own API on the local socket: the `Daemon` service (`init`,
//! `join`, `leave`, `info`, autolock). The manager's client APIs reach this
//! node's manager through `rswarm_manager::grpc::RoutedLayer`, which asks
//! [`NodeRoute`] where they go.

use std::sync::Arc;

use rswarm_proto::daemon::daemon_server::Daemon;
use rswarm_proto::daemon::*;
use tonic::{Request, Response, Status};

use super::node::NodeRuntime;

#[derive(Clone)]
pub(crate) struct LocalDaemon {
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

/// The local socket's way to this node's manager.
pub(crate) struct NodeRoute {
    pub node: Arc<NodeRuntime>,
}

impl rswarm_manager::grpc::ManagerRoute for NodeRoute {
    fn manager_routes(
        &self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<tonic::service::Routes, Status>>
                + Send
                + 'static,
        >,
    > {
        let node = self.node.clone();
        Box::pin(async move { node.manager_routes().await })
    }
}
