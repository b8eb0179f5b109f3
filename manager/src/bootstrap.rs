//! Creating a new swarm (`rswarm init`): the root CA, the join tokens, the
//! cluster object and the first manager's node object, written in one batch
//! to a freshly bootstrapped store.

use std::time::Duration;

use rswarm_proto::identity::token;
use rswarm_proto::types::{
    Annotations, Cluster, ClusterSpec, JoinTokens, ManagerStatus, Node, NodeAvailability,
    NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus, RootCa as RootCaObject, TlsInfo,
};
use rswarm_raft::{Op, Store};

use crate::ca::RootCa;
use crate::certificates::DEFAULT_CERT_EXPIRY;
use crate::dispatcher::DEFAULT_HEARTBEAT;
use crate::error::ManagerError;
use crate::objects;

/// What `init` asks for.
pub struct InitParams {
    pub cluster_id: String,
    pub node_id: String,
    /// The first manager's address, host:port.
    pub advertise_addr: String,
    pub description: NodeDescription,
    pub availability: NodeAvailability,
    pub heartbeat_period: Option<Duration>,
    pub cert_expiry: Option<Duration>,
    pub snapshot_interval: u64,
    /// PEM of this node's freshly signed certificate (for its expiry).
    pub node_cert_pem: String,
    /// `--default-addr-pool` (empty: 10.0.0.0/8) and its mask length (0: 24).
    pub default_addr_pool: Vec<String>,
    pub default_addr_pool_mask_length: u32,
    /// `--task-history-limit` (None: 5).
    pub task_history_limit: Option<u32>,
}

/// Write the cluster and first node objects. The store must be bootstrapped
/// and this node its leader.
pub async fn create_cluster(
    store: &Store,
    ca: &RootCa,
    p: InitParams,
) -> Result<Cluster, ManagerError> {
    let heartbeat = p.heartbeat_period.unwrap_or(DEFAULT_HEARTBEAT);
    let expiry = p.cert_expiry.unwrap_or(DEFAULT_CERT_EXPIRY);
    let pool = crate::allocator::default_address_pool(
        &p.default_addr_pool,
        p.default_addr_pool_mask_length,
    )
    .map_err(|e| ManagerError::InvalidArgument(format!("--default-addr-pool: {e}")))?;
    let ingress = crate::allocator::ingress_network(&pool)
        .map_err(|e| ManagerError::InvalidArgument(format!("ingress network: {e}")))?;
    let cluster = Cluster {
        id: p.cluster_id.clone(),
        meta: None,
        spec: Some(ClusterSpec {
            annotations: Some(Annotations {
                name: "default".into(),
                labels: Default::default(),
            }),
            heartbeat_period_ns: heartbeat.as_nanos() as i64,
            node_cert_expiry_ns: crate::certificates::check_cert_expiry(expiry)?,
            snapshot_interval: p.snapshot_interval,
            task_history_retention_limit: crate::controlapi::limits::check_task_history(
                p.task_history_limit.unwrap_or(5),
            )?,
            // `init --autolock` sets it (with the key) once the store is up.
            autolock_managers: false,
        }),
        root_ca: Some(RootCaObject {
            ca_cert_pem: ca.cert_pem.clone(),
            ca_key_pem: ca.key_pem.clone(),
            ca_cert_hash: crate::ca::ca_hash(&ca.cert_pem),
            join_tokens: Some(JoinTokens {
                worker: token::generate(&ca.cert_pem),
                manager: token::generate(&ca.cert_pem),
            }),
            ..Default::default()
        }),
        removed_nodes: vec![],
        default_address_pool: Some(pool),
        unlock_key: String::new(),
    };
    let mut description = p.description;
    description.tls_info = Some(TlsInfo {
        trust_root: ca.cert_pem.clone(),
        ..Default::default()
    });
    let node = Node {
        id: p.node_id.clone(),
        meta: None,
        spec: Some(NodeSpec {
            annotations: None,
            desired_role: NodeRole::Manager as i32,
            availability: p.availability as i32,
        }),
        description: Some(description),
        status: Some(NodeStatus {
            state: NodeState::Ready as i32,
            message: String::new(),
            addr: crate::certificates::host_of(&p.advertise_addr),
        }),
        manager_status: Some(ManagerStatus {
            raft_id: objects::raft_id_for(&p.node_id),
            addr: p.advertise_addr.clone(),
            leader: false,
            reachability: 0,
        }),
        role: NodeRole::Manager as i32,
        cert_expires_at: rswarm_proto::identity::cert::parse_cert_pem(&p.node_cert_pem)
            .map(|i| i.not_after)
            .unwrap_or(0),
        attachments: vec![],
    };
    let mut ops = vec![
        objects::put(&cluster),
        objects::put(&node),
        objects::put(&ingress),
    ];
    for op in ops.iter_mut() {
        if let Op::Put { expect_version, .. } = op {
            *expect_version = Some(0);
        }
    }
    store.write(ops).await?;
    objects::cluster(store)
}
