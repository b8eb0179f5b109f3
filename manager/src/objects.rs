//! Typed access to the cluster objects in the replicated store: the object
//! kinds (one `Object` impl each), the generic reads and guarded writes
//! (`list`, `get`, `put`, `delete`), the spec version every object keeps in
//! its meta (`set_spec`, `spec_version`), and the lookups the Control API and
//! loops share (node by reference, the single cluster).

use prost::Message;
use rswarm_proto::types::{
    Cluster, ClusterSpec, Config, ConfigSpec, Meta, Network, NetworkSpec, Node, NodeRole, NodeSpec,
    NodeState, Secret, SecretSpec, Service, ServiceSpec, Task, TaskSpec, Version,
};
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
/// Store kind of secret objects (values sealed: see `crate::secrets`).
pub const KIND_SECRET: &str = "secret";
/// Store kind of config objects.
pub const KIND_CONFIG: &str = "config";
/// Store kind of the name guards of secrets (id: the name), written with
/// every create, so that two creates cannot take one name.
pub const KIND_SECRET_NAME: &str = "secret-name";
/// Store kind of the name guards of configs.
pub const KIND_CONFIG_NAME: &str = "config-name";
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

/// A kind of object kept in the store: a protobuf message with an ID, a
/// `Meta` (versions and timestamps) and a spec that users write.
pub trait Object: Message + Default + Clone + 'static {
    /// What users write; status and allocations live beside it.
    type Spec: PartialEq + Clone;
    /// The store kind the objects are kept under.
    const KIND: &'static str;
    /// How a put of an object never read from the store is guarded: `true`
    /// makes it a create (refused if one exists), `false` writes over
    /// whatever is stored.
    const CREATE_ONLY: bool;
    /// The object's key in the store.
    fn key(&self) -> &str;
    fn meta(&self) -> Option<&Meta>;
    fn meta_mut(&mut self) -> &mut Option<Meta>;
    fn spec(&self) -> Option<&Self::Spec>;
    fn spec_mut(&mut self) -> &mut Option<Self::Spec>;
}

macro_rules! object {
    ($ty:ty, $spec:ty, $kind:expr, create_only: $create:expr, key: |$o:ident| $key:expr) => {
        impl Object for $ty {
            type Spec = $spec;
            const KIND: &'static str = $kind;
            const CREATE_ONLY: bool = $create;
            fn key(&self) -> &str {
                let $o = self;
                $key
            }
            fn meta(&self) -> Option<&Meta> {
                self.meta.as_ref()
            }
            fn meta_mut(&mut self) -> &mut Option<Meta> {
                &mut self.meta
            }
            fn spec(&self) -> Option<&$spec> {
                self.spec.as_ref()
            }
            fn spec_mut(&mut self) -> &mut Option<$spec> {
                &mut self.spec
            }
        }
    };
}

object!(Node, NodeSpec, KIND_NODE, create_only: false, key: |n| &n.id);
object!(Cluster, ClusterSpec, KIND_CLUSTER, create_only: false, key: |_c| CLUSTER_KEY);
object!(Service, ServiceSpec, KIND_SERVICE, create_only: true, key: |s| &s.id);
object!(Task, TaskSpec, KIND_TASK, create_only: true, key: |t| &t.id);
object!(Network, NetworkSpec, KIND_NETWORK, create_only: true, key: |n| &n.id);
object!(Secret, SecretSpec, KIND_SECRET, create_only: true, key: |s| &s.id);
object!(Config, ConfigSpec, KIND_CONFIG, create_only: true, key: |c| &c.id);

/// A new object ID: 16 random bytes as 25 lowercase base-36 characters
/// (Swarm's form). Every ID (nodes, the cluster, services, tasks, networks,
/// sessions) comes from here.
pub fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    rswarm_proto::identity::token::encode_base36(&bytes, 25)
}

/// All objects of one kind, store versions stamped into their meta.
pub fn list<T: Object>(store: &Store) -> Result<Vec<T>, ManagerError> {
    Ok(store
        .list_messages::<T>(T::KIND)?
        .into_iter()
        .map(|(version, mut o)| {
            stamp(o.meta_mut(), version);
            o
        })
        .collect())
}

/// One object by its key, store version stamped into its meta.
pub fn get<T: Object>(store: &Store, key: &str) -> Result<Option<T>, ManagerError> {
    Ok(store
        .get_message::<T>(T::KIND, key)?
        .map(|(version, mut o)| {
            stamp(o.meta_mut(), version);
            o
        }))
}

/// A put of an object, guarded by the store version it was read at; one
/// never read is a create or an overwrite as its kind says (`CREATE_ONLY`).
pub fn put<T: Object>(object: &T) -> Op {
    let read = object
        .meta()
        .and_then(|m| m.version.as_ref())
        .map(|v| v.index);
    let expect = if T::CREATE_ONLY {
        Some(read.unwrap_or(0))
    } else {
        read
    };
    let mut stored = object.clone();
    touch(stored.meta_mut());
    Op::Put {
        kind: T::KIND.into(),
        id: object.key().to_string(),
        value: stored.encode_to_vec(),
        expect_version: expect,
    }
}

/// The version of an object's spec alone (0: never stamped, an object from
/// before spec versions).
pub fn spec_version<T: Object>(object: &T) -> u64 {
    object
        .meta()
        .and_then(|m| m.spec_version.as_ref())
        .map_or(0, |v| v.index)
}

/// Give an object a spec; its spec version moves on only when the spec
/// differs from the one it had. Says whether it did.
pub fn set_spec<T: Object>(object: &mut T, spec: T::Spec) -> bool {
    if object.spec() == Some(&spec) {
        return false;
    }
    bump_spec_version(object);
    *object.spec_mut() = Some(spec);
    true
}

/// Move an object's spec version on by one (its spec was changed in place).
pub fn bump_spec_version<T: Object>(object: &mut T) {
    let next = spec_version(object) + 1;
    object
        .meta_mut()
        .get_or_insert_with(Default::default)
        .spec_version = Some(Version { index: next });
}

/// Read the cluster object (with its store version stamped into `meta`).
pub fn cluster(store: &Store) -> Result<Cluster, ManagerError> {
    get::<Cluster>(store, CLUSTER_KEY)?
        .ok_or_else(|| ManagerError::NotFound("cluster object".into()))
}

/// Resolve a user's node reference as Docker does: full ID, then exact
/// hostname, then unique ID prefix.
pub fn resolve_node(store: &Store, reference: &str) -> Result<Node, ManagerError> {
    if reference.is_empty() {
        return Err(ManagerError::InvalidArgument(
            "node reference is empty".into(),
        ));
    }
    let all = list::<Node>(store)?;
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

/// Delete guarded by the version the object was read at.
pub fn delete(kind: &str, id: &str, meta: Option<&Meta>) -> Op {
    Op::Delete {
        kind: kind.into(),
        id: id.into(),
        expect_version: meta.and_then(|m| m.version.as_ref()).map(|v| v.index),
    }
}

fn stamp(meta: &mut Option<Meta>, version: u64) {
    let m = meta.get_or_insert_with(Default::default);
    m.version = Some(Version { index: version });
}

/// Sets created/updated timestamps (a new object's spec version starts at
/// one) and clears the version (the store's version is authoritative and
/// is stamped on read).
fn touch(meta: &mut Option<Meta>) {
    let now = now_nanos();
    let m = meta.get_or_insert_with(Default::default);
    if m.created_at == 0 {
        m.created_at = now;
        if m.spec_version.is_none() {
            m.spec_version = Some(Version { index: 1 });
        }
    }
    m.updated_at = now;
    m.version = None;
}

/// A service's name (empty when its spec has none).
pub(crate) fn service_name(s: &Service) -> &str {
    s.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.as_str())
        .unwrap_or("")
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

    #[test]
    fn ids_look_like_swarm_ids() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 25);
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        }
    }
}
