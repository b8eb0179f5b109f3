//! The client side of the calls a non-leader makes to the leader on a caller's
//! behalf: a write (`Raft.Propose`) and membership changes (`AddMember`,
//! `RemoveMember`). Keeps one client per leader address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rswarm_proto::raft::raft_client::RaftClient;
use rswarm_proto::raft::{AddMemberRequest, RaftRequest, RemoveMemberRequest};
use tonic::transport::Channel;

use crate::error::StoreError;
use crate::network::{raft_client, Connector};
use crate::types::Request;
use crate::wire::{self, ProposeReply};

/// Why a forwarded call did not succeed.
pub(crate) enum ForwardError {
    /// Nothing happened on the leader (unreachable, or no longer leader): try again.
    Retry(String),
    /// The leader answered with a failure that retrying will not fix.
    Failed(StoreError),
}

pub(crate) struct Forwarder {
    connector: Arc<dyn Connector>,
    /// Per leader address: the client and the connector generation it was made in.
    clients: Mutex<HashMap<String, (RaftClient<Channel>, u64)>>,
}

impl Forwarder {
    pub(crate) fn new(connector: Arc<dyn Connector>) -> Self {
        Forwarder {
            connector,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, addr: &str) -> Result<RaftClient<Channel>, ForwardError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let generation = self.connector.generation();
        if let Some((client, made_in)) = clients.get(addr) {
            if *made_in == generation {
                return Ok(client.clone());
            }
        }
        let channel = self
            .connector
            .channel(addr)
            .map_err(|e| ForwardError::Retry(format!("leader at {addr}: {e}")))?;
        let client = raft_client(channel);
        clients.insert(addr.to_string(), (client.clone(), generation));
        Ok(client)
    }

    fn forget(&self, addr: &str) {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients.remove(addr);
    }

    /// Maps a gRPC failure: `Unavailable` means nothing happened (retry);
    /// anything else is final.
    fn status_error(&self, addr: &str, status: tonic::Status) -> ForwardError {
        match status.code() {
            tonic::Code::Unavailable => {
                self.forget(addr);
                ForwardError::Retry(format!("leader at {addr}: {}", status.message()))
            }
            tonic::Code::DeadlineExceeded => ForwardError::Failed(StoreError::NoLeader),
            tonic::Code::FailedPrecondition => {
                ForwardError::Failed(StoreError::Membership(status.message().to_string()))
            }
            _ => ForwardError::Failed(StoreError::Transport {
                addr: addr.to_string(),
                message: status.message().to_string(),
            }),
        }
    }

    /// Sends a write to the leader at `addr`.
    pub(crate) async fn propose(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<ProposeReply, ForwardError> {
        let data = wire::encode(req).map_err(|e| ForwardError::Failed(StoreError::InvalidOp(e)))?;
        let mut client = self.client(addr)?;
        let mut request = tonic::Request::new(RaftRequest { data });
        request.set_timeout(timeout);
        let reply = match tokio::time::timeout(timeout, client.propose(request)).await {
            Err(_) => return Err(ForwardError::Failed(StoreError::NoLeader)),
            Ok(Err(status)) => return Err(self.status_error(addr, status)),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        if let Some(reason) = reply.error.strip_prefix(crate::error::WRITE_FAILED) {
            // The leader could not write to its own disk.
            return Err(ForwardError::Failed(StoreError::WriteFailed(
                reason.to_string(),
            )));
        }
        if !reply.error.is_empty() {
            return Err(ForwardError::Failed(StoreError::Transport {
                addr: addr.to_string(),
                message: reply.error,
            }));
        }
        wire::decode(&reply.data).map_err(|message| {
            ForwardError::Failed(StoreError::Transport {
                addr: addr.to_string(),
                message,
            })
        })
    }

    /// Asks the leader at `addr` to add (and promote) a manager.
    pub(crate) async fn add_member(
        &self,
        addr: &str,
        raft_id: u64,
        member_addr: &str,
        timeout: Duration,
    ) -> Result<(), ForwardError> {
        let mut client = self.client(addr)?;
        let mut request = tonic::Request::new(AddMemberRequest {
            raft_id,
            addr: member_addr.to_string(),
            node_id: String::new(),
        });
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout, client.add_member(request)).await {
            Err(_) => Err(ForwardError::Failed(StoreError::Membership(format!(
                "adding manager {raft_id} at {member_addr} did not finish within {timeout:?}"
            )))),
            Ok(Err(status)) => Err(self.status_error(addr, status)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Asks the leader at `addr` to remove a manager.
    pub(crate) async fn remove_member(
        &self,
        addr: &str,
        raft_id: u64,
        timeout: Duration,
    ) -> Result<(), ForwardError> {
        let mut client = self.client(addr)?;
        let mut request = tonic::Request::new(RemoveMemberRequest { raft_id });
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout, client.remove_member(request)).await {
            Err(_) => Err(ForwardError::Failed(StoreError::NoLeader)),
            Ok(Err(status)) => Err(self.status_error(addr, status)),
            Ok(Ok(_)) => Ok(()),
        }
    }
}
