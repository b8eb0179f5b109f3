//! The server side of the `Raft` gRPC service: hands AppendEntries, Vote and
//! InstallSnapshot to openraft, and answers forwarded writes and membership
//! changes when this manager is the leader. Authentication (mTLS, manager role)
//! is the mounting manager's job.

use std::sync::Weak;

use rswarm_proto::raft::raft_server::Raft;
use rswarm_proto::raft::{
    AddMemberRequest, MemberReply, RaftReply, RaftRequest, RemoveMemberRequest,
};
use tonic::{Request, Response, Status};

use crate::error::StoreError;
use crate::store::{Inner, LocalError, Store};
use crate::wire::{self, AppendResult, ProposeReply, SnapshotChunk, SnapshotResult, VoteResult};

pub(crate) struct RaftService {
    store: Weak<Inner>,
}

impl RaftService {
    pub(crate) fn new(store: Weak<Inner>) -> Self {
        RaftService { store }
    }

    fn store(&self) -> Result<Store, Status> {
        self.store
            .upgrade()
            .map(Store::from_inner)
            .ok_or_else(|| Status::unavailable("this manager's raft store is shut down"))
    }
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftReply>, Status> {
    Ok(Response::new(match wire::encode(value) {
        Ok(data) => RaftReply {
            data,
            error: String::new(),
        },
        Err(error) => RaftReply {
            data: Vec::new(),
            error,
        },
    }))
}

fn failure(error: String) -> Result<Response<RaftReply>, Status> {
    Ok(Response::new(RaftReply {
        data: Vec::new(),
        error,
    }))
}

/// The status a membership failure on this node travels as: `Unavailable` tells
/// the caller nothing happened and it may retry with the real leader.
fn member_status(e: LocalError) -> Status {
    match e {
        LocalError::NotLeader => Status::unavailable("this manager is not the raft leader"),
        LocalError::Failed(StoreError::NoLeader) => {
            Status::deadline_exceeded(StoreError::NoLeader.to_string())
        }
        LocalError::Failed(StoreError::Shutdown) => {
            Status::unavailable(StoreError::Shutdown.to_string())
        }
        LocalError::Failed(StoreError::Membership(m)) => Status::failed_precondition(m),
        LocalError::Failed(e) => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let store = self.store()?;
        let rpc = match wire::decode(&request.into_inner().data) {
            Ok(rpc) => rpc,
            Err(e) => return failure(e),
        };
        let result: AppendResult = store.raft().append_entries(rpc).await;
        reply(&result)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let store = self.store()?;
        let rpc = match wire::decode(&request.into_inner().data) {
            Ok(rpc) => rpc,
            Err(e) => return failure(e),
        };
        let result: VoteResult = store.raft().vote(rpc).await;
        reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let store = self.store()?;
        let chunk: SnapshotChunk = match wire::decode(&request.into_inner().data) {
            Ok(chunk) => chunk,
            Err(e) => return failure(e),
        };
        let result: SnapshotResult = store.raft().install_snapshot(chunk.into()).await;
        reply(&result)
    }

    async fn propose(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let store = self.store()?;
        let req = match wire::decode(&request.into_inner().data) {
            Ok(req) => req,
            Err(e) => return failure(e),
        };
        let timeout = store.config().write_timeout;
        match tokio::time::timeout(timeout, store.propose_local(req)).await {
            Err(_) => reply(&ProposeReply::NoQuorum),
            Ok(Ok(answer)) => reply(&answer),
            Ok(Err(StoreError::Shutdown)) => Err(Status::unavailable(
                "this manager's raft store is shut down",
            )),
            Ok(Err(e)) => failure(e.to_string()),
        }
    }

    async fn add_member(
        &self,
        request: Request<AddMemberRequest>,
    ) -> Result<Response<MemberReply>, Status> {
        let store = self.store()?;
        let req = request.into_inner();
        store
            .add_manager_local(req.raft_id, &req.addr)
            .await
            .map_err(member_status)?;
        Ok(Response::new(MemberReply {}))
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<MemberReply>, Status> {
        let store = self.store()?;
        store
            .remove_manager_local(request.into_inner().raft_id)
            .await
            .map_err(member_status)?;
        Ok(Response::new(MemberReply {}))
    }
}
