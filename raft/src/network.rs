//! The client side of manager-to-manager Raft traffic: openraft's
//! `RaftNetworkFactory`/`RaftNetwork` over the `Raft` gRPC service, with JSON
//! payloads (see `wire`). Channels come from the caller's `Connector`, so the
//! manager decides about mTLS; tests use plain http on loopback.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use rswarm_proto::raft::raft_client::RaftClient;
use rswarm_proto::raft::RaftRequest;
use tonic::transport::Channel;

use crate::types::TypeConfig;
use crate::wire::{
    self, AppendResult, SnapshotChunk, SnapshotResult, VoteResult, MAX_MESSAGE_BYTES,
};

/// An AppendEntries payload above this size is split (when it has more than one
/// entry): the leader gives a follower only one heartbeat interval to answer.
const APPEND_SOFT_LIMIT: usize = 4 * 1024 * 1024;

/// Gives a gRPC channel to another manager (the caller configures mTLS; tests use
/// plain http).
pub trait Connector: Send + Sync + 'static {
    /// A channel to the manager listening at `addr` (`host:port`); lazily
    /// connected is fine.
    fn channel(&self, addr: &str) -> Result<Channel, String>;

    /// Changes whenever channels made before would now be wrong (the node's
    /// certificate or trust root was renewed): cached clients are then made
    /// again. Connectors whose channels never go stale keep the default.
    fn generation(&self) -> u64 {
        0
    }
}

/// A Raft client with our message size limits.
pub(crate) fn raft_client(channel: Channel) -> RaftClient<Channel> {
    RaftClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Makes one `Peer` per replication target.
pub(crate) struct Network {
    connector: Arc<dyn Connector>,
}

impl Network {
    pub(crate) fn new(connector: Arc<dyn Connector>) -> Self {
        Network { connector }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            connector: self.connector.clone(),
            client: None,
        }
    }
}

/// The connection to one other manager.
pub(crate) struct Peer {
    target: u64,
    addr: String,
    connector: Arc<dyn Connector>,
    /// The client and the connector generation it was made in.
    client: Option<(RaftClient<Channel>, u64)>,
}

enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// Why a call did not produce an answer from the peer's Raft.
enum CallError {
    /// Could not reach the peer (openraft backs off before retrying).
    Unreachable(String),
    /// Reached it, but the exchange failed.
    Network(String),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<u64, BasicNode, E> {
        match self {
            CallError::Unreachable(m) => {
                RPCError::Unreachable(Unreachable::from(AnyError::error(m)))
            }
            CallError::Network(m) => RPCError::Network(NetworkError::from(AnyError::error(m))),
        }
    }
}

impl Peer {
    fn client(&mut self) -> Result<RaftClient<Channel>, CallError> {
        let generation = self.connector.generation();
        if let Some((client, made_in)) = &self.client {
            if *made_in == generation {
                return Ok(client.clone());
            }
        }
        let channel = self.connector.channel(&self.addr).map_err(|e| {
            CallError::Unreachable(format!("manager {} at {}: {e}", self.target, self.addr))
        })?;
        let client = raft_client(channel);
        self.client = Some((client.clone(), generation));
        Ok(client)
    }

    async fn call<Resp>(
        &mut self,
        rpc: Rpc,
        data: Vec<u8>,
        ttl: Duration,
    ) -> Result<Resp, CallError>
    where
        Resp: serde::de::DeserializeOwned,
    {
        let mut client = self.client()?;
        let mut request = tonic::Request::new(RaftRequest { data });
        request.set_timeout(ttl);
        let result = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = result
            .map_err(|status| {
                let message = format!("manager {} at {}: {}", self.target, self.addr, status.message());
                tracing::debug!(target_id = self.target, addr = %self.addr, code = ?status.code(), "raft rpc failed: {}", status.message());
                if status.code() == tonic::Code::Unavailable {
                    CallError::Unreachable(message)
                } else {
                    CallError::Network(message)
                }
            })?
            .into_inner();
        if !reply.error.is_empty() {
            return Err(CallError::Network(format!(
                "manager {} at {}: {}",
                self.target, self.addr, reply.error
            )));
        }
        wire::decode(&reply.data).map_err(CallError::Network)
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let data = wire::encode(&rpc).map_err(|e| CallError::Network(e).into_rpc())?;
        if data.len() > APPEND_SOFT_LIMIT && rpc.entries.len() > 1 {
            // openraft retries at once with fewer entries.
            let fewer = (rpc.entries.len() / 2).max(1) as u64;
            tracing::debug!(
                bytes = data.len(),
                entries = rpc.entries.len(),
                fewer,
                "append payload too large, splitting"
            );
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fewer),
            ));
        }
        let result: AppendResult = self
            .call(Rpc::AppendEntries, data, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let data = wire::encode(&SnapshotChunk::from(rpc))
            .map_err(|e| CallError::Network(e).into_rpc())?;
        let result: SnapshotResult = self
            .call(Rpc::InstallSnapshot, data, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let data = wire::encode(&rpc).map_err(|e| CallError::Network(e).into_rpc())?;
        let result: VoteResult = self
            .call(Rpc::Vote, data, option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

    use super::*;
    use crate::types::{Op, Request};

    struct NoConnector;

    impl Connector for NoConnector {
        fn channel(&self, addr: &str) -> Result<Channel, String> {
            Err(format!("no route to {addr}"))
        }
    }

    fn big_entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request {
                ops: vec![Op::Put {
                    kind: "secret".into(),
                    id: format!("s{index}"),
                    value: vec![7u8; 3 * 1024 * 1024],
                    expect_version: None,
                }],
            }),
        }
    }

    #[tokio::test]
    async fn oversized_appends_ask_openraft_for_fewer_entries() {
        let mut network = Network::new(Arc::new(NoConnector));
        let mut peer = network.new_client(2, &BasicNode::new("127.0.0.1:1")).await;
        let request = |entries| AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries,
        };
        let option = RPCOption::new(Duration::from_millis(100));

        let two = peer
            .append_entries(request(vec![big_entry(1), big_entry(2)]), option.clone())
            .await;
        match two {
            Err(RPCError::PayloadTooLarge(p)) => assert_eq!(p.entries_hint(), 1),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        // A single entry is sent whatever its size; here the peer is unreachable.
        let one = peer
            .append_entries(request(vec![big_entry(1)]), option)
            .await;
        assert!(matches!(one, Err(RPCError::Unreachable(_))), "got {one:?}");
    }
}
