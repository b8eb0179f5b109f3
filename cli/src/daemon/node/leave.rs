//! `swarm leave`: a manager first steps out of the Raft membership (with
//! Docker's quorum warnings, `rswarm_manager`'s), then the node stops its
//! agent, removes the swarm's containers and networks and forgets the swarm.

use rswarm_proto::daemon::{LeaveRequest, LeaveResponse};
use tonic::Status;

use super::{internal, NodeRuntime, NOT_IN_SWARM};

impl NodeRuntime {
    pub(crate) async fn leave(&self, req: LeaveRequest) -> Result<LeaveResponse, Status> {
        self.dek()?;
        let mut inner = self.inner.lock().await;
        let Some(state) = inner.state.clone() else {
            return Err(Status::failed_precondition(NOT_IN_SWARM));
        };
        if let Some(manager) = inner.manager.clone() {
            manager.leave_membership(&state.node_id, req.force).await?;
        }
        self.forget_swarm(&mut inner).await.map_err(internal)?;
        tracing::info!("left the swarm");
        Ok(LeaveResponse {})
    }
}
