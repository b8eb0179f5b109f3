//! The node runtime: one per daemon. It owns the node's membership in a
//! swarm and drives the transitions between "not in a swarm", "worker" and
//! "manager": `init`, `join`, `leave`, `--force-new-cluster`, promotion and
//! demotion (which arrive as renewed certificates from the agent), and
//! resuming all of it from the data dir after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rswarm_agent::{AgentConfig, AgentEvent, AgentHandle};
use rswarm_manager::bootstrap::{self, InitParams};
use rswarm_manager::ca::RootCa;
use rswarm_manager::{objects, Manager, TlsConnector};
use rswarm_proto::ca::ca_client::CaClient;
use rswarm_proto::ca::IssueNodeCertificateRequest;
use rswarm_proto::daemon::*;
use rswarm_proto::identity::{keys, tls, token};
use rswarm_proto::raft::raft_client::RaftClient;
use rswarm_proto::raft::AddMemberRequest;
use rswarm_proto::types::{
    EngineDescription, Node, NodeAvailability, NodeDescription, NodeRole, Platform, Resources,
};
use rswarm_raft::{Store, StoreConfig};
use tokio::sync::{mpsc, Mutex};
use tonic::Status;

use super::netaddr;
use super::state::{DataDir, NodeState, PeerAddr, Role};

const ALREADY_IN_SWARM: &str =
    "This node is already part of a swarm. Use \"rswarm swarm leave\" to leave this swarm and join another one.";
const NOT_IN_SWARM: &str = "This node is not part of a swarm";

/// Daemon-wide settings the runtime needs.
#[derive(Clone)]
pub struct NodeSettings {
    pub data: DataDir,
    pub node_name: String,
    pub engine_labels: BTreeMap<String, String>,
    pub images: Arc<rswarm_agent::image::ImageStore>,
    pub runtime: Arc<rswarm_agent::runtime::Runtime>,
    /// Container id → image reference of this node's containers.
    pub images_in_use: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// The node's data encryption key (keys.rs): seals the Raft store and the
    /// TLS key on disk. `None` while the node is locked (autolock).
    pub dek: Option<rswarm_raft::DataKey>,
}

pub struct NodeRuntime {
    settings: NodeSettings,
    /// The DEK once known (at start, or after `swarm unlock`).
    dek: std::sync::Mutex<Option<rswarm_raft::DataKey>>,
    inner: Mutex<Inner>,
    events: mpsc::Sender<AgentEvent>,
}

#[derive(Default)]
struct Inner {
    state: Option<NodeState>,
    tls: Option<tls::NodeTls>,
    manager: Option<Arc<Manager>>,
    agent: Option<AgentHandle>,
    netplane: Option<Arc<rswarm_agent::netplane::NetPlane>>,
    error: Option<String>,
}

/// How a manager's store comes up.
enum StoreStart {
    /// A brand-new single-manager swarm.
    Bootstrap,
    /// Joining: ask these managers to add us to the Raft membership.
    Join(Vec<String>),
    /// Existing Raft state on disk.
    Resume,
}

/// How often a manager checks the cluster's autolock setting against its keys.
const AUTOLOCK_SYNC: Duration = Duration::from_secs(2);

/// Writes the cluster's autolock setting (and unlock key), retrying on a
/// version conflict with the managers' own writes.
async fn write_autolock(store: &Store, on: bool, key: Option<String>) -> Result<(), Status> {
    loop {
        let mut cluster = objects::cluster(store).map_err(|e| internal(e.into()))?;
        cluster
            .spec
            .get_or_insert_with(Default::default)
            .autolock_managers = on;
        cluster.unlock_key = key.clone().unwrap_or_default();
        match store.write(vec![objects::put(&cluster)]).await {
            Ok(_) => return Ok(()),
            Err(rswarm_raft::StoreError::Conflict { .. }) => continue,
            Err(e) => {
                return Err(Status::unavailable(format!(
                    "saving the autolock setting: {e}"
                )))
            }
        }
    }
}

fn internal(e: anyhow::Error) -> Status {
    Status::internal(format!("{e:#}"))
}

impl NodeRuntime {
    pub fn new(settings: NodeSettings) -> Arc<NodeRuntime> {
        let (tx, mut rx) = mpsc::channel(16);
        let node = Arc::new(NodeRuntime {
            dek: std::sync::Mutex::new(settings.dek.clone()),
            settings,
            inner: Mutex::new(Inner::default()),
            events: tx,
        });
        let weak = Arc::downgrade(&node);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(AUTOLOCK_SYNC).await;
                let Some(node) = weak.upgrade() else { break };
                if let Err(e) = node.sync_autolock().await {
                    tracing::error!(error = %format!("{e:#}"), "applying the cluster's autolock setting");
                }
            }
        });
        let weak = Arc::downgrade(&node);
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let Some(node) = weak.upgrade() else { break };
                if let Err(e) = node.on_agent_event(ev).await {
                    tracing::error!(error = %format!("{e:#}"), "handling agent event");
                }
            }
        });
        node
    }

    /// The DEK, or Docker's "locked" error while the node is locked.
    fn dek(&self) -> Result<rswarm_raft::DataKey, Status> {
        self.dek
            .lock()
            .ok()
            .and_then(|d| d.clone())
            .ok_or_else(|| Status::failed_precondition(super::keys::LOCKED))
    }

    fn is_locked(&self) -> bool {
        self.dek.lock().map(|d| d.is_none()).unwrap_or(true)
    }

    /// Resume the swarm membership recorded in the data dir, if any.
    pub async fn resume(&self) -> anyhow::Result<()> {
        if self.is_locked() {
            tracing::warn!("this manager is locked (autolock): waiting for `rswarm swarm unlock`");
            return Ok(());
        }
        let mut inner = self.inner.lock().await;
        let Some(state) = self.settings.data.load()? else {
            tracing::info!("not part of a swarm; waiting for `rswarm init` or `rswarm join`");
            return Ok(());
        };
        let node_tls = super::keys::load_tls(&self.settings.data.certs(), &self.dek()?)?;
        tracing::info!(node = %state.node_id, role = ?state.role, "resuming swarm membership");
        inner.state = Some(state.clone());
        inner.tls = Some(node_tls.clone());
        if state.role == Role::Manager {
            if let Err(e) = self.start_manager(&mut inner, StoreStart::Resume).await {
                inner.error = Some(format!("{e:#}"));
                return Err(e);
            }
        }
        self.start_agent(&mut inner).await;
        Ok(())
    }

    /// The Networks API if this node is a manager.
    pub async fn networks(
        &self,
    ) -> Result<rswarm_manager::controlapi::networks::NetworksApi, Status> {
        self.control().await?;
        let inner = self.inner.lock().await;
        inner
            .manager
            .as_ref()
            .map(|m| m.networks())
            .ok_or_else(|| Status::failed_precondition("This node is not a swarm manager."))
    }

    /// The Services API if this node is a manager.
    pub async fn services(&self) -> Result<rswarm_manager::controlapi::ServicesApi, Status> {
        self.control().await?;
        let inner = self.inner.lock().await;
        inner
            .manager
            .as_ref()
            .map(|m| m.services())
            .ok_or_else(|| Status::failed_precondition("This node is not a swarm manager."))
    }

    /// The Control API if this node is a manager.
    pub async fn control(&self) -> Result<rswarm_manager::ControlApi, Status> {
        self.dek()?;
        let inner = self.inner.lock().await;
        match (&inner.state, &inner.manager) {
            (_, Some(m)) => Ok(m.control()),
            (Some(_), None) => Err(Status::failed_precondition(
                "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.",
            )),
            (None, _) => Err(Status::failed_precondition(
                "This node is not a swarm manager. Use \"rswarm swarm init\" or \"rswarm swarm join\" to connect this node to swarm and try again.",
            )),
        }
    }

    fn describe(&self) -> NodeDescription {
        NodeDescription {
            hostname: self.settings.node_name.clone(),
            platform: Some(Platform {
                architecture: std::env::consts::ARCH.to_string(),
                os: std::env::consts::OS.to_string(),
            }),
            resources: Some(Resources {
                nano_cpus: std::thread::available_parallelism()
                    .map(|n| n.get() as i64)
                    .unwrap_or(1)
                    * 1_000_000_000,
                memory_bytes: total_memory(),
            }),
            engine: Some(EngineDescription {
                engine_version: rswarm_proto::VERSION.to_string(),
                labels: self.settings.engine_labels.clone().into_iter().collect(),
            }),
            tls_info: None,
        }
    }

    // ---- init -------------------------------------------------------------

    pub async fn init(&self, req: InitRequest) -> Result<InitResponse, Status> {
        self.dek()?;
        // Refused before anything is made (0: the default).
        cert_expiry(req.node_cert_expiry_ns)
            .map_err(|e| Status::invalid_argument(format!("--cert-expiry: {e}")))?;
        let mut inner = self.inner.lock().await;
        if inner.state.is_some() {
            if req.force_new_cluster {
                return self.force_new_cluster(&mut inner).await;
            }
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        let listen = if req.listen_addr.is_empty() {
            format!("0.0.0.0:{}", netaddr::DEFAULT_PORT)
        } else {
            netaddr::with_port(&req.listen_addr, netaddr::DEFAULT_PORT)
                .map_err(|e| Status::invalid_argument(format!("--listen-addr: {e}")))?
        };
        let port = netaddr::port_of(&listen);
        let advertise = if req.advertise_addr.is_empty() {
            let ip = netaddr::auto_advertise_ip()
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            format!("{ip}:{port}")
        } else {
            netaddr::with_port(&req.advertise_addr, port)
                .map_err(|e| Status::invalid_argument(format!("--advertise-addr: {e}")))?
        };
        let node_id = objects::new_id();
        let cluster_id = objects::new_id();
        let result = self
            .init_inner(
                &mut inner,
                &req,
                node_id.clone(),
                cluster_id,
                advertise.clone(),
                listen,
            )
            .await;
        let result = match result {
            Ok(token) if req.autolock => self.init_autolock(&inner).await.map(|key| (token, key)),
            Ok(token) => Ok((token, String::new())),
            Err(e) => Err(e),
        };
        match result {
            Ok((worker_token, unlock_key)) => Ok(InitResponse {
                node_id,
                worker_token,
                manager_addr: advertise,
                unlock_key,
            }),
            Err(e) => {
                self.teardown(&mut inner).await;
                if let Err(w) = self.settings.data.wipe() {
                    tracing::error!(error = %w, "cleaning up after a failed init");
                }
                Err(Status::internal(format!("init failed: {e:#}")))
            }
        }
    }

    async fn init_inner(
        &self,
        inner: &mut Inner,
        req: &InitRequest,
        node_id: String,
        cluster_id: String,
        advertise: String,
        listen: String,
    ) -> anyhow::Result<String> {
        let expiry = cert_expiry(req.node_cert_expiry_ns)?;
        let root =
            RootCa::generate(&cluster_id).map_err(|e| anyhow!("creating the root CA: {e}"))?;
        let (key_pem, csr_pem) =
            keys::new_key_and_csr().map_err(|e| anyhow!("creating the node key: {e}"))?;
        let cert_pem = root
            .sign_node_csr(
                &csr_pem,
                &node_id,
                NodeRole::Manager,
                &cluster_id,
                expiry.unwrap_or(rswarm_manager::certificates::DEFAULT_CERT_EXPIRY),
            )
            .map_err(|e| anyhow!("signing the node certificate: {e}"))?;
        let node_tls = tls::NodeTls {
            ca_pem: root.cert_pem.clone(),
            cert_pem: cert_pem.clone(),
            key_pem,
        };
        super::keys::save_tls(&self.settings.data.certs(), &self.dek()?, &node_tls)?;
        let state = NodeState {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            role: Role::Manager,
            advertise_addr: advertise.clone(),
            listen_addr: listen,
            managers: vec![PeerAddr {
                node_id: node_id.clone(),
                addr: advertise.clone(),
            }],
        };
        inner.state = Some(state.clone());
        inner.tls = Some(node_tls);
        self.start_manager(inner, StoreStart::Bootstrap).await?;
        let store = inner
            .manager
            .as_ref()
            .map(|m| m.store().clone())
            .ok_or_else(|| anyhow!("manager did not start"))?;
        let availability =
            NodeAvailability::try_from(req.availability).unwrap_or(NodeAvailability::Active);
        let cluster = bootstrap::create_cluster(
            &store,
            &root,
            InitParams {
                cluster_id,
                node_id,
                advertise_addr: advertise,
                description: self.describe(),
                availability,
                heartbeat_period: (req.heartbeat_period_ns > 0)
                    .then(|| Duration::from_nanos(req.heartbeat_period_ns as u64)),
                cert_expiry: expiry,
                snapshot_interval: req.snapshot_interval,
                node_cert_pem: cert_pem,
                default_addr_pool: req.default_addr_pool.clone(),
                default_addr_pool_mask_length: req.default_addr_pool_mask_length,
                task_history_limit: req.task_history_limit_set.then_some(req.task_history_limit),
            },
        )
        .await
        .context("creating the cluster objects")?;
        self.settings.data.save(&state)?;
        self.start_agent(inner).await;
        Ok(cluster
            .root_ca
            .and_then(|c| c.join_tokens)
            .map(|t| t.worker)
            .unwrap_or_default())
    }

    async fn force_new_cluster(&self, inner: &mut Inner) -> Result<InitResponse, Status> {
        let state = inner
            .state
            .clone()
            .ok_or_else(|| Status::failed_precondition(NOT_IN_SWARM))?;
        if state.role != Role::Manager {
            return Err(Status::failed_precondition(
                "--force-new-cluster needs a manager: this node is a worker",
            ));
        }
        tracing::warn!("forcing a new cluster from this manager's state");
        self.teardown(inner).await;
        let cfg = self.store_config(&state)?;
        // The stopped manager's tasks may still hold the store's lock for a
        // moment while they wind down.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match Store::force_new_cluster(&cfg) {
                Ok(()) => break,
                Err(e)
                    if e.to_string().contains("lock") && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(Status::internal(format!("rewriting the Raft state: {e}"))),
            }
        }
        inner.state = Some(state.clone());
        inner.tls = Some(
            super::keys::load_tls(&self.settings.data.certs(), &self.dek()?)
                .map_err(|e| Status::internal(format!("loading certificates: {e}")))?,
        );
        self.start_manager(inner, StoreStart::Resume)
            .await
            .map_err(internal)?;
        let store = inner
            .manager
            .as_ref()
            .map(|m| m.store().clone())
            .ok_or_else(|| Status::internal("manager did not start"))?;
        wait_leader(&store, Duration::from_secs(10))
            .await
            .map_err(internal)?;
        let mut st = state.clone();
        st.managers = vec![PeerAddr {
            node_id: st.node_id.clone(),
            addr: st.advertise_addr.clone(),
        }];
        self.settings.data.save(&st).map_err(internal)?;
        inner.state = Some(st.clone());
        self.start_agent(inner).await;
        let worker_token = objects::cluster(&store)
            .ok()
            .and_then(|c| c.root_ca)
            .and_then(|c| c.join_tokens)
            .map(|t| t.worker)
            .unwrap_or_default();
        Ok(InitResponse {
            node_id: st.node_id,
            worker_token,
            manager_addr: st.advertise_addr,
            unlock_key: String::new(),
        })
    }

    // ---- join -------------------------------------------------------------

    pub async fn join(&self, req: JoinRequest) -> Result<JoinResponse, Status> {
        self.dek()?;
        let mut inner = self.inner.lock().await;
        if inner.state.is_some() {
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        let parsed =
            token::parse(&req.token).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let remote = netaddr::with_port(&req.remote_addr, netaddr::DEFAULT_PORT)
            .map_err(|e| Status::invalid_argument(format!("manager address: {e}")))?;
        let listen = if req.listen_addr.is_empty() {
            format!("0.0.0.0:{}", netaddr::DEFAULT_PORT)
        } else {
            netaddr::with_port(&req.listen_addr, netaddr::DEFAULT_PORT)
                .map_err(|e| Status::invalid_argument(format!("--listen-addr: {e}")))?
        };
        let port = netaddr::port_of(&listen);
        let advertise = if req.advertise_addr.is_empty() {
            let ip = netaddr::local_ip_towards(&remote)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            format!("{ip}:{port}")
        } else {
            netaddr::with_port(&req.advertise_addr, port)
                .map_err(|e| Status::invalid_argument(format!("--advertise-addr: {e}")))?
        };
        let ca_pem = tls::fetch_root_ca(&remote).await.map_err(|e| {
            Status::unavailable(format!("could not reach a manager at {remote}: {e}"))
        })?;
        if !parsed.matches_ca(&ca_pem) {
            return Err(Status::invalid_argument(format!(
                "remote CA does not match fingerprint in the join token: the manager at {remote} presents a CA whose digest is {}, the token expects {}",
                token::ca_digest(&ca_pem),
                parsed.ca_digest
            )));
        }
        let (key_pem, csr_pem) =
            keys::new_key_and_csr().map_err(|e| Status::internal(e.to_string()))?;
        let channel = tls::connect(&remote, &ca_pem, None).await.map_err(|e| {
            Status::unavailable(format!("could not reach a manager at {remote}: {e}"))
        })?;
        let availability =
            NodeAvailability::try_from(req.availability).unwrap_or(NodeAvailability::Active);
        let resp = CaClient::new(channel)
            .issue_node_certificate(IssueNodeCertificateRequest {
                csr_pem,
                token: req.token.clone(),
                description: Some(self.describe()),
                advertise_addr: advertise.clone(),
                availability: availability as i32,
            })
            .await
            .map_err(|s| Status::new(s.code(), s.message().to_string()))?
            .into_inner();
        let role = NodeRole::try_from(resp.role).unwrap_or(NodeRole::Worker);
        let node_tls = tls::NodeTls {
            ca_pem: resp.ca_certificate_pem.clone(),
            cert_pem: resp.certificate_pem.clone(),
            key_pem,
        };
        let mut managers: Vec<PeerAddr> = resp
            .managers
            .iter()
            .map(|m| PeerAddr {
                node_id: m.node_id.clone(),
                addr: m.addr.clone(),
            })
            .collect();
        if !managers.iter().any(|m| m.addr == remote) {
            managers.insert(
                0,
                PeerAddr {
                    node_id: String::new(),
                    addr: remote.clone(),
                },
            );
        }
        let state = NodeState {
            node_id: resp.node_id.clone(),
            cluster_id: resp.cluster_id.clone(),
            role: if role == NodeRole::Manager {
                Role::Manager
            } else {
                Role::Worker
            },
            advertise_addr: advertise,
            listen_addr: listen,
            managers,
        };
        let result: anyhow::Result<()> = async {
            super::keys::save_tls(&self.settings.data.certs(), &self.dek()?, &node_tls)?;
            inner.state = Some(state.clone());
            inner.tls = Some(node_tls);
            if role == NodeRole::Manager {
                let peers = state.managers.iter().map(|m| m.addr.clone()).collect();
                self.start_manager(&mut inner, StoreStart::Join(peers))
                    .await?;
            }
            self.settings.data.save(&state)?;
            self.start_agent(&mut inner).await;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.teardown(&mut inner).await;
            let _ = self.settings.data.wipe();
            return Err(Status::internal(format!("join failed: {e:#}")));
        }
        tracing::info!(node = %resp.node_id, role = ?role, "joined the swarm");
        Ok(JoinResponse {
            node_id: resp.node_id,
            role: role as i32,
        })
    }

    // ---- leave ------------------------------------------------------------

    pub async fn leave(&self, req: LeaveRequest) -> Result<LeaveResponse, Status> {
        self.dek()?;
        let mut inner = self.inner.lock().await;
        let Some(state) = inner.state.clone() else {
            return Err(Status::failed_precondition(NOT_IN_SWARM));
        };
        if let Some(manager) = inner.manager.clone() {
            let store = manager.store().clone();
            let status = store.status();
            let me = objects::raft_id_for(&state.node_id);
            let nodes = objects::list::<Node>(&store).unwrap_or_default();
            let reachable = status
                .voters
                .iter()
                .filter(|id| {
                    **id == me
                        || status.leader == Some(**id)
                        || nodes
                            .iter()
                            .any(|n| objects::raft_id_for(&n.id) == **id && objects::is_ready(n))
                })
                .count();
            let voters = status.voters.len();
            if !req.force {
                if voters <= 1 {
                    return Err(Status::failed_precondition(
                        "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.",
                    ));
                }
                let after = reachable.saturating_sub(1);
                if after <= (voters - 1) / 2 {
                    return Err(Status::failed_precondition(format!(
                        "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves {after} managers out of {}. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.",
                        voters - 1
                    )));
                }
            }
            if voters > 1 {
                // Step out of the Raft membership first so the others keep quorum.
                if let Ok(Some(mut node)) = objects::get::<Node>(&store, &state.node_id) {
                    if let Some(mut spec) = node.spec.clone() {
                        spec.desired_role = NodeRole::Worker as i32;
                        objects::set_spec(&mut node, spec);
                    }
                    node.manager_status = None;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        store.write(vec![objects::put(&node)]),
                    )
                    .await;
                }
                match tokio::time::timeout(Duration::from_secs(10), store.remove_manager(me)).await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if !req.force => {
                        return Err(Status::unavailable(format!(
                            "could not leave the Raft membership: {e}"
                        )))
                    }
                    Ok(Err(_)) | Err(_) if req.force => {}
                    _ => {
                        return Err(Status::unavailable(
                            "could not leave the Raft membership in time",
                        ))
                    }
                }
            }
        }
        let plane = inner.netplane.clone();
        self.teardown(&mut inner).await;
        self.remove_all_containers().await;
        if let Some(p) = plane {
            p.remove_everything().await;
        }
        self.settings.data.wipe().map_err(internal)?;
        self.autolock_off_on_disk();
        inner.error = None;
        tracing::info!("left the swarm");
        Ok(LeaveResponse {})
    }

    // ---- info -------------------------------------------------------------

    pub async fn info(&self) -> InfoResponse {
        let inner = self.inner.lock().await;
        let mut out = InfoResponse {
            node_name: self.settings.node_name.clone(),
            data_dir: self.settings.data.root.display().to_string(),
            version: rswarm_proto::VERSION.to_string(),
            local_node_state: "inactive".into(),
            error: inner.error.clone().unwrap_or_default(),
            ..Default::default()
        };
        if self.is_locked() {
            out.local_node_state = "locked".into();
            out.error = super::keys::LOCKED.into();
            return out;
        }
        let Some(state) = &inner.state else {
            return out;
        };
        out.local_node_state = if inner.error.is_some() {
            "error".into()
        } else {
            "active".into()
        };
        out.node_id = state.node_id.clone();
        out.cluster_id = state.cluster_id.clone();
        out.node_addr = state.advertise_addr.clone();
        out.role = if state.role == Role::Manager {
            NodeRole::Manager as i32
        } else {
            NodeRole::Worker as i32
        };
        out.managers = state
            .managers
            .iter()
            .map(|m| ManagerPeer {
                node_id: m.node_id.clone(),
                addr: m.addr.clone(),
            })
            .collect();
        out.cert_expires_at = inner
            .tls
            .as_ref()
            .and_then(|t| t.identity().ok())
            .map(|i| i.not_after)
            .unwrap_or(0);
        if let Some(m) = &inner.manager {
            out.control_available = true;
            let store = m.store();
            let s = store.status();
            let nodes = objects::list::<Node>(store).unwrap_or_default();
            out.nodes = nodes.len() as u32;
            out.manager_count = nodes.iter().filter(|n| n.manager_status.is_some()).count() as u32;
            out.raft = Some(RaftInfo {
                raft_id: s.raft_id,
                state: s.state.clone(),
                term: s.term,
                leader_raft_id: s.leader.unwrap_or(0),
                last_log_index: s.last_log_index,
                last_applied: s.last_applied,
                snapshot_index: s.snapshot_index,
                voters: s.voters.clone(),
                learners: s.learners.clone(),
            });
            out.managers = s
                .members
                .iter()
                .map(|(id, addr)| ManagerPeer {
                    node_id: nodes
                        .iter()
                        .find(|n| objects::raft_id_for(&n.id) == *id)
                        .map(|n| n.id.clone())
                        .unwrap_or_default(),
                    addr: addr.clone(),
                })
                .collect();
        }
        out
    }

    /// The nodes this manager knows (empty on workers).
    pub async fn nodes(&self) -> Vec<rswarm_proto::types::Node> {
        let inner = self.inner.lock().await;
        inner
            .manager
            .as_ref()
            .and_then(|m| objects::list::<Node>(m.store()).ok())
            .unwrap_or_default()
    }

    // ---- shared machinery -------------------------------------------------

    /// The store's config, sealed with the DEK (never opened in clear).
    fn store_config(&self, state: &NodeState) -> Result<StoreConfig, Status> {
        let mut cfg = StoreConfig::new(
            self.settings.data.raft(),
            objects::raft_id_for(&state.node_id),
            state.advertise_addr.clone(),
        );
        cfg.data_key = Some(self.dek()?);
        Ok(cfg)
    }

    // ---- autolock ---------------------------------------------------------

    /// `init --autolock`: the cluster's first unlock key, in the cluster
    /// object and wrapping this manager's data key.
    async fn init_autolock(&self, inner: &Inner) -> anyhow::Result<String> {
        let dek = self.dek().map_err(|e| anyhow!(e.message().to_string()))?;
        let store = inner
            .manager
            .as_ref()
            .map(|m| m.store().clone())
            .ok_or_else(|| anyhow!("the manager did not start"))?;
        let key = super::keys::new_unlock_key_text()?;
        write_autolock(&store, true, Some(key.clone()))
            .await
            .map_err(|e| anyhow!(e.message().to_string()))?;
        self.apply_unlock_key(&dek, Some(&key))?;
        Ok(key)
    }

    /// A node that leaves the swarm or stops being a manager keeps its keys
    /// but not autolock: its KEK goes back on disk.
    fn autolock_off_on_disk(&self) {
        let Ok(dek) = self.dek() else { return };
        let root = &self.settings.data.root;
        if matches!(super::keys::current_unlock_key(root, &dek), Ok(Some(_))) {
            if let Err(e) = super::keys::set_autolock(root, &dek, false) {
                tracing::error!(error = %format!("{e:#}"), "turning autolock off");
            }
        }
    }

    /// `swarm unlock`: opens the DEK with the unlock key and resumes.
    pub async fn unlock(&self, key: &str) -> Result<UnlockResponse, Status> {
        if !self.is_locked() {
            return Err(Status::failed_precondition("swarm is not locked"));
        }
        let dek = super::keys::unlock(&self.settings.data.root, key)
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        if let Ok(mut d) = self.dek.lock() {
            *d = Some(dek);
        }
        tracing::info!("unlocked: resuming swarm membership");
        self.resume().await.map_err(internal)?;
        Ok(UnlockResponse {})
    }

    async fn require_manager(&self) -> Result<rswarm_raft::DataKey, Status> {
        self.control().await?;
        self.dek()
    }

    /// `swarm unlock-key [--rotate]`: the cluster's unlock key (kept in the
    /// cluster object, so every manager answers the same); `--rotate` puts a
    /// new one there, which every manager then wraps its data key with.
    pub async fn unlock_key(&self, rotate: bool) -> Result<UnlockKeyResponse, Status> {
        let dek = self.require_manager().await?;
        let store = self.manager_store().await?;
        let cluster = objects::cluster(&store).map_err(|e| internal(e.into()))?;
        let on = cluster.spec.as_ref().is_some_and(|s| s.autolock_managers);
        if !on || cluster.unlock_key.is_empty() {
            return Err(Status::failed_precondition("no unlock key is set"));
        }
        let unlock_key = if rotate {
            let key = super::keys::new_unlock_key_text().map_err(internal)?;
            write_autolock(&store, true, Some(key.clone())).await?;
            key
        } else {
            cluster.unlock_key
        };
        super::keys::set_unlock_key(&self.settings.data.root, &dek, Some(&unlock_key))
            .map_err(internal)?;
        Ok(UnlockKeyResponse { unlock_key })
    }

    /// `swarm update --autolock=true|false`: a cluster-wide setting, kept in
    /// the cluster object; this manager applies it at once, the others within
    /// [`AUTOLOCK_SYNC`].
    pub async fn update_autolock(&self, on: bool) -> Result<UnlockKeyResponse, Status> {
        let dek = self.require_manager().await?;
        let store = self.manager_store().await?;
        let cluster = objects::cluster(&store).map_err(|e| internal(e.into()))?;
        let unlock_key = match (on, cluster.unlock_key.is_empty()) {
            (true, false) => cluster.unlock_key,
            (true, true) => {
                let key = super::keys::new_unlock_key_text().map_err(internal)?;
                write_autolock(&store, true, Some(key.clone())).await?;
                key
            }
            (false, _) => {
                write_autolock(&store, false, None).await?;
                String::new()
            }
        };
        let key = (!unlock_key.is_empty()).then_some(unlock_key.as_str());
        self.apply_unlock_key(&dek, key).map_err(internal)?;
        Ok(UnlockKeyResponse { unlock_key })
    }

    /// This manager's store (it must be one).
    async fn manager_store(&self) -> Result<Store, Status> {
        let inner = self.inner.lock().await;
        inner
            .manager
            .as_ref()
            .map(|m| m.store().clone())
            .ok_or_else(|| Status::failed_precondition("this node is not a swarm manager"))
    }

    /// Wraps this node's data key the way the cluster says (`Some`: with that
    /// unlock key; `None`: autolock off), unless it already is.
    fn apply_unlock_key(
        &self,
        dek: &rswarm_raft::DataKey,
        key: Option<&str>,
    ) -> anyhow::Result<()> {
        let root = &self.settings.data.root;
        let current = super::keys::current_unlock_key(root, dek)?;
        if current.as_deref() == key {
            return Ok(());
        }
        super::keys::set_unlock_key(root, dek, key)?;
        match key {
            Some(_) => {
                tracing::info!("autolock: this manager's keys now need the cluster's unlock key")
            }
            None => {
                tracing::info!("autolock off: this manager's keys no longer need an unlock key")
            }
        }
        Ok(())
    }

    /// One pass of keeping this manager's keys in line with the cluster's
    /// autolock setting (another manager may have changed or rotated it).
    async fn sync_autolock(&self) -> anyhow::Result<()> {
        let Ok(dek) = self.dek() else { return Ok(()) };
        let store = {
            let inner = self.inner.lock().await;
            match &inner.manager {
                Some(m) => m.store().clone(),
                None => return Ok(()),
            }
        };
        let cluster = match objects::cluster(&store) {
            Ok(c) => c,
            // No cluster object yet (a manager still joining).
            Err(_) => return Ok(()),
        };
        let on = cluster.spec.as_ref().is_some_and(|s| s.autolock_managers);
        let key = (on && !cluster.unlock_key.is_empty()).then_some(cluster.unlock_key.as_str());
        self.apply_unlock_key(&dek, key)
    }

    async fn start_manager(&self, inner: &mut Inner, how: StoreStart) -> anyhow::Result<()> {
        let state = inner
            .state
            .clone()
            .ok_or_else(|| anyhow!("no swarm state"))?;
        let node_tls = inner
            .tls
            .clone()
            .ok_or_else(|| anyhow!("no certificates"))?;
        let cfg = self
            .store_config(&state)
            .map_err(|e| anyhow!(e.message().to_string()))?;
        let connector = Arc::new(TlsConnector::new(node_tls.clone()));
        let store = Store::open(cfg, connector.clone()).await.with_context(|| {
            format!(
                "opening the Raft store in {}",
                self.settings.data.raft().display()
            )
        })?;
        if let StoreStart::Bootstrap = how {
            store.bootstrap().await.context("bootstrapping Raft")?;
            wait_leader(&store, Duration::from_secs(10)).await?;
        }
        let manager = Manager::start(store.clone(), state.cluster_id.clone(), connector);
        manager
            .serve_tcp(&state.listen_addr, &node_tls)
            .await
            .with_context(|| format!("listening on {}", state.listen_addr))?;
        inner.manager = Some(manager.clone());
        if let StoreStart::Join(peers) = how {
            if let Err(e) = add_member(&node_tls, &peers, &state).await {
                manager.stop().await;
                inner.manager = None;
                return Err(e);
            }
        }
        tracing::info!(addr = %state.advertise_addr, "manager started");
        Ok(())
    }

    async fn start_agent(&self, inner: &mut Inner) {
        let (Some(state), Some(node_tls)) = (inner.state.clone(), inner.tls.clone()) else {
            return;
        };
        if let Some(a) = inner.agent.take() {
            a.stop();
        }
        // The agent puts this node's own manager first while the node is one.
        let managers: Vec<(String, String)> = state
            .managers
            .iter()
            .map(|m| (m.node_id.clone(), m.addr.clone()))
            .collect();
        let role = if state.role == Role::Manager {
            NodeRole::Manager
        } else {
            NodeRole::Worker
        };
        let cfg = AgentConfig {
            node_id: state.node_id.clone(),
            advertise_addr: state.advertise_addr.clone(),
            description: self.describe(),
            managers,
            tls: node_tls,
            role,
        };
        if inner.netplane.is_none() {
            let ip = crate::daemon::netaddr::host_ip(&state.advertise_addr);
            match ip {
                Some(ip) => match rswarm_agent::netplane::NetPlane::new(
                    &self.settings.data.root.join("netns"),
                    ip,
                    state.node_id.clone(),
                )
                .await
                {
                    Ok(p) => inner.netplane = Some(p),
                    Err(e) => {
                        tracing::error!(error = %e, "overlay networking is unavailable on this node")
                    }
                },
                None => {
                    tracing::error!(addr = %state.advertise_addr, "overlay networking needs an IPv4 advertise address")
                }
            }
        }
        let controller = rswarm_agent::exec::container::ContainerController {
            images: self.settings.images.clone(),
            runtime: self.settings.runtime.clone(),
            volumes_dir: self.settings.data.root.join("volumes"),
            node: rswarm_agent::exec::container::NodeFacts {
                node_id: state.node_id.clone(),
                hostname: self.settings.node_name.clone(),
            },
            resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            in_use: self.settings.images_in_use.clone(),
            netplane: inner.netplane.clone(),
        };
        let deps = rswarm_agent::worker::WorkerDeps {
            controller: Arc::new(controller),
            runtime: self.settings.runtime.clone(),
            netplane: inner.netplane.clone(),
        };
        inner.agent = Some(rswarm_agent::start(cfg, self.events.clone(), Some(deps)));
    }

    /// Stop the agent and the manager (if any) and forget the in-memory state.
    async fn teardown(&self, inner: &mut Inner) {
        if let Some(a) = inner.agent.take() {
            a.stop();
        }
        if let Some(m) = inner.manager.take() {
            m.stop().await;
        }
        inner.state = None;
        inner.tls = None;
        inner.netplane = None;
    }

    /// Leaving the swarm takes its tasks along: stop and remove every
    /// container (a daemon shutdown does not: its tasks keep running).
    async fn remove_all_containers(&self) {
        let rt = &self.settings.runtime;
        for id in rt.list().unwrap_or_default() {
            if let Err(e) = rt.stop(&id, "SIGTERM", Duration::from_secs(10)).await {
                tracing::warn!(container = %id, error = %e, "stopping a container on leave");
            }
            if let Err(e) = rt.remove(&id).await {
                tracing::warn!(container = %id, error = %e, "removing a container on leave");
            }
            let _ = rt.remove_logs(&id);
        }
    }

    /// Daemon shutdown: stop everything, keep the data dir.
    pub async fn shutdown(&self) {
        let mut inner = self.inner.lock().await;
        self.teardown(&mut inner).await;
    }

    async fn on_agent_event(&self, ev: AgentEvent) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        let Some(mut state) = inner.state.clone() else {
            return Ok(());
        };
        match ev {
            AgentEvent::Managers(list) => {
                state.managers = list
                    .into_iter()
                    .map(|(node_id, addr)| PeerAddr { node_id, addr })
                    .collect();
                self.settings.data.save(&state)?;
                inner.state = Some(state);
            }
            AgentEvent::Removed => {
                tracing::warn!("this node was removed from the swarm; leaving");
                let plane = inner.netplane.clone();
                self.teardown(&mut inner).await;
                self.remove_all_containers().await;
                if let Some(p) = plane {
                    p.remove_everything().await;
                }
                self.settings.data.wipe()?;
                self.autolock_off_on_disk();
                inner.error = None;
            }
            AgentEvent::Renewed {
                tls: node_tls,
                role,
            } => {
                super::keys::save_tls(&self.settings.data.certs(), &self.dek()?, &node_tls)?;
                inner.tls = Some(node_tls.clone());
                let new_role = if role == NodeRole::Manager {
                    Role::Manager
                } else {
                    Role::Worker
                };
                let old_role = state.role.clone();
                state.role = new_role.clone();
                self.settings.data.save(&state)?;
                inner.state = Some(state.clone());
                match (old_role, new_role) {
                    (Role::Worker, Role::Manager) => {
                        tracing::info!("promoted: starting the manager");
                        let peers = state.managers.iter().map(|m| m.addr.clone()).collect();
                        if let Err(e) = self
                            .start_manager(&mut inner, StoreStart::Join(peers))
                            .await
                        {
                            inner.error = Some(format!("{e:#}"));
                            tracing::error!(error = %format!("{e:#}"), "starting the manager after promotion");
                        }
                    }
                    (Role::Manager, Role::Worker) => {
                        tracing::info!("demoted: stopping the manager");
                        // Workers do not lock (as Docker's).
                        self.autolock_off_on_disk();
                        if let Some(m) = inner.manager.take() {
                            m.stop().await;
                        }
                        let raft = self.settings.data.raft();
                        if raft.exists() {
                            std::fs::remove_dir_all(&raft)
                                .with_context(|| format!("removing {}", raft.display()))?;
                        }
                    }
                    _ => {
                        if let Some(m) = &inner.manager {
                            m.connector().update(node_tls.clone());
                            m.serve_tcp(&state.listen_addr, &node_tls).await?;
                        }
                    }
                }
                if let Some(a) = &inner.agent {
                    a.set_identity(node_tls, role);
                }
            }
        }
        Ok(())
    }
}

/// `init --cert-expiry` in nanoseconds (0: the default), checked.
fn cert_expiry(ns: i64) -> anyhow::Result<Option<Duration>> {
    if ns == 0 {
        return Ok(None);
    }
    let d = Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    rswarm_manager::certificates::check_cert_expiry(d)?;
    Ok(Some(d))
}

async fn wait_leader(store: &Store, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !store.is_leader() {
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow!(
                "this manager did not become the Raft leader within {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Ask the managers (in turn) to add this node to the Raft membership; the
/// call returns once this node is a voter.
async fn add_member(
    node_tls: &tls::NodeTls,
    peers: &[String],
    state: &NodeState,
) -> anyhow::Result<()> {
    let mut last = String::from("no manager to ask");
    for peer in peers.iter().filter(|p| **p != state.advertise_addr) {
        let channel = match tls::connect(
            peer,
            &node_tls.ca_pem,
            Some((&node_tls.cert_pem, &node_tls.key_pem)),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                last = format!("{peer}: {e}");
                continue;
            }
        };
        let req = AddMemberRequest {
            raft_id: objects::raft_id_for(&state.node_id),
            addr: state.advertise_addr.clone(),
            node_id: state.node_id.clone(),
        };
        let mut client = RaftClient::new(channel);
        match tokio::time::timeout(Duration::from_secs(60), client.add_member(req)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(s)) => last = format!("{peer}: {}", s.message()),
            Err(_) => last = format!("{peer}: timed out adding this node to the Raft membership"),
        }
    }
    Err(anyhow!("could not join the Raft membership: {last}"))
}

fn total_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
