//! Typed access to the cluster objects in the replicated store: the object
//! kinds, (de)serialisation of their protobuf messages, and the lookups the
//! Control API and loops share (node by reference, the single cluster).

use prost::Message;
use rswarm_proto::types::{Cluster, Network, Node, NodeRole, NodeState, Service, Task, Version};
use rswarm_raft::{Op, Store};

use crate::error::ManagerError;

/// Store kind of the one cluster object.
pub const KIND_CLUSTER: &str = "cluster";
/// Store kind of node objects.
pub const KIND_NODE: &str = "node";
/// Store kind of service objects.
pub const KIND_SERVICE: &str = "service";
/// Store kind of task objects.
pub const KIND_TASK: &str = "task";
/// Store kind of network objects.
pub const KIND_NETWORK: &str = "network";
/// Store kind of the guard every network create rewrites, so that two
/// concurrent creates cannot take the same name, subnet or VNI.
pub const KIND_NETWORK_GUARD: &str = "network-allocation";
/// Store kind of the guard every service create rewrites, so that two
/// creates on different managers (or one retried after a failover, whose
/// first try may still commit) cannot both take the same name or port.
pub const KIND_SERVICE_GUARD: &str = "service-creation";
/// The cluster object's id in the store (there is exactly one).
pub const CLUSTER_KEY: &str = "default";

/// Current time in unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The Raft ID of a node, derived from its node ID so every manager agrees on
/// it without storing a mapping.
pub fn raft_id_for(node_id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(node_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // Raft id 0 is reserved by convention; never produce it.
    u64::from_be_bytes(bytes).max(1)
}

/// Read the cluster object (with its store version stamped into `meta`).
pub fn cluster(store: &Store) -> Result<Cluster, ManagerError> {
    match store.get_message::<Cluster>(KIND_CLUSTER, CLUSTER_KEY)? {
        Some((version, mut c)) => {
            stamp(&mut c.meta, version);
            Ok(c)
        }
        None => Err(ManagerError::NotFound("cluster object".into())),
    }
}

/// All nodes, versions stamped.
pub fn nodes(store: &Store) -> Result<Vec<Node>, ManagerError> {
    Ok(store
        .list_messages::<Node>(KIND_NODE)?
        .into_iter()
        .map(|(version, mut n)| {
            stamp(&mut n.meta, version);
            n
        })
        .collect())
}

/// One node by full ID.
pub fn node(store: &Store, id: &str) -> Result<Option<Node>, ManagerError> {
    Ok(store
        .get_message::<Node>(KIND_NODE, id)?
        .map(|(version, mut n)| {
            stamp(&mut n.meta, version);
            n
        }))
}

/// Resolve a user's node reference as Docker does: full ID, then exact
/// hostname, then unique ID prefix.
pub fn resolve_node(store: &Store, reference: &str) -> Result<Node, ManagerError> {
    if reference.is_empty() {
        return Err(ManagerError::InvalidArgument(
            "node reference is empty".into(),
        ));
    }
    let all = nodes(store)?;
    if let Some(n) = all.iter().find(|n| n.id == reference) {
        return Ok(n.clone());
    }
    let by_name: Vec<&Node> = all.iter().filter(|n| hostname(n) == reference).collect();
    if by_name.len() == 1 {
        return Ok(by_name[0].clone());
    }
    if by_name.len() > 1 {
        return Err(ManagerError::InvalidArgument(format!(
            "node {reference} is ambiguous ({} matches)",
            by_name.len()
        )));
    }
    let by_prefix: Vec<&Node> = all.iter().filter(|n| n.id.starts_with(reference)).collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0].clone()),
        0 => Err(ManagerError::NotFound(format!(
            "node {reference} not found"
        ))),
        k => Err(ManagerError::InvalidArgument(format!(
            "node {reference} is ambiguous ({k} matches)"
        ))),
    }
}

/// The node's hostname as reported by its agent.
pub fn hostname(n: &Node) -> &str {
    n.description
        .as_ref()
        .map(|d| d.hostname.as_str())
        .unwrap_or("")
}

/// Whether the node is (or is becoming) a manager.
pub fn is_manager(n: &Node) -> bool {
    n.role == NodeRole::Manager as i32
        || n.spec.as_ref().map(|s| s.desired_role) == Some(NodeRole::Manager as i32)
}

/// Whether the node's agent is currently heartbeating.
pub fn is_ready(n: &Node) -> bool {
    n.status.as_ref().map(|s| s.state) == Some(NodeState::Ready as i32)
}

/// A put of a node, guarded by the version it was read at.
pub fn put_node(node: &Node) -> Op {
    let expect = node
        .meta
        .as_ref()
        .and_then(|m| m.version.as_ref())
        .map(|v| v.index);
    let mut stored = node.clone();
    touch(&mut stored.meta);
    Op::Put {
        kind: KIND_NODE.into(),
        id: node.id.clone(),
        value: stored.encode_to_vec(),
        expect_version: expect,
    }
}

/// A put of the cluster object, guarded by the version it was read at.
pub fn put_cluster(cluster: &Cluster) -> Op {
    let expect = cluster
        .meta
        .as_ref()
        .and_then(|m| m.version.as_ref())
        .map(|v| v.index);
    let mut stored = cluster.clone();
    touch(&mut stored.meta);
    Op::Put {
        kind: KIND_CLUSTER.into(),
        id: CLUSTER_KEY.into(),
        value: stored.encode_to_vec(),
        expect_version: expect,
    }
}

/// All services, versions stamped.
pub fn services(store: &Store) -> Result<Vec<Service>, ManagerError> {
    Ok(store
        .list_messages::<Service>(KIND_SERVICE)?
        .into_iter()
        .map(|(version, mut s)| {
            stamp(&mut s.meta, version);
            s
        })
        .collect())
}

/// One service by full ID.
pub fn service(store: &Store, id: &str) -> Result<Option<Service>, ManagerError> {
    Ok(store
        .get_message::<Service>(KIND_SERVICE, id)?
        .map(|(version, mut s)| {
            stamp(&mut s.meta, version);
            s
        }))
}

/// All tasks, versions stamped.
pub fn tasks(store: &Store) -> Result<Vec<Task>, ManagerError> {
    Ok(store
        .list_messages::<Task>(KIND_TASK)?
        .into_iter()
        .map(|(version, mut t)| {
            stamp(&mut t.meta, version);
            t
        })
        .collect())
}

/// One task by full ID.
pub fn task(store: &Store, id: &str) -> Result<Option<Task>, ManagerError> {
    Ok(store
        .get_message::<Task>(KIND_TASK, id)?
        .map(|(version, mut t)| {
            stamp(&mut t.meta, version);
            t
        }))
}

/// All networks, versions stamped.
pub fn networks(store: &Store) -> Result<Vec<Network>, ManagerError> {
    Ok(store
        .list_messages::<Network>(KIND_NETWORK)?
        .into_iter()
        .map(|(version, mut n)| {
            stamp(&mut n.meta, version);
            n
        })
        .collect())
}

/// One network by full ID.
pub fn network(store: &Store, id: &str) -> Result<Option<Network>, ManagerError> {
    Ok(store
        .get_message::<Network>(KIND_NETWORK, id)?
        .map(|(version, mut n)| {
            stamp(&mut n.meta, version);
            n
        }))
}

/// A put of a network, guarded by the version it was read at (none: must be new).
pub fn put_network(network: &Network) -> Op {
    put_versioned(KIND_NETWORK, &network.id, network.meta.as_ref(), |meta| {
        let mut stored = network.clone();
        stored.meta = meta;
        stored.encode_to_vec()
    })
}

/// A put of a service, guarded by the version it was read at (none: must be new).
pub fn put_service(service: &Service) -> Op {
    put_versioned(KIND_SERVICE, &service.id, service.meta.as_ref(), |meta| {
        let mut stored = service.clone();
        stored.meta = meta;
        stored.encode_to_vec()
    })
}

/// A put of a task, guarded by the version it was read at (none: must be new).
pub fn put_task(task: &Task) -> Op {
    put_versioned(KIND_TASK, &task.id, task.meta.as_ref(), |meta| {
        let mut stored = task.clone();
        stored.meta = meta;
        stored.encode_to_vec()
    })
}

/// Delete guarded by the version the object was read at.
pub fn delete(kind: &str, id: &str, meta: Option<&rswarm_proto::types::Meta>) -> Op {
    Op::Delete {
        kind: kind.into(),
        id: id.into(),
        expect_version: meta.and_then(|m| m.version.as_ref()).map(|v| v.index),
    }
}

fn put_versioned(
    kind: &str,
    id: &str,
    meta: Option<&rswarm_proto::types::Meta>,
    encode: impl FnOnce(Option<rswarm_proto::types::Meta>) -> Vec<u8>,
) -> Op {
    // Objects never read from the store (no version) must not exist yet.
    let expect = Some(
        meta.and_then(|m| m.version.as_ref())
            .map(|v| v.index)
            .unwrap_or(0),
    );
    let mut m = meta.cloned();
    touch(&mut m);
    Op::Put {
        kind: kind.into(),
        id: id.into(),
        value: encode(m),
        expect_version: expect,
    }
}

fn stamp(meta: &mut Option<rswarm_proto::types::Meta>, version: u64) {
    let m = meta.get_or_insert_with(Default::default);
    m.version = Some(Version { index: version });
}

/// Sets created/updated timestamps and clears the version (the store's
/// version is authoritative and is stamped on read).
fn touch(meta: &mut Option<rswarm_proto::types::Meta>) {
    let now = now_nanos();
    let m = meta.get_or_insert_with(Default::default);
    if m.created_at == 0 {
        m.created_at = now;
    }
    m.updated_at = now;
    m.version = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_ids_are_stable_and_nonzero() {
        assert_eq!(raft_id_for("abc"), raft_id_for("abc"));
        assert_ne!(raft_id_for("abc"), raft_id_for("abd"));
        assert_ne!(raft_id_for(""), 0);
    }
}
