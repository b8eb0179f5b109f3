//! The node runtime: one per daemon. It owns the node's membership in a
//! swarm and composes the manager and the agent, each of which starts itself
//! (`rswarm_manager::start`, `rswarm_agent::start`): it drives the
//! transitions between "not in a swarm", "worker" and "manager" — `init` and
//! `--force-new-cluster` (`init.rs`), `join` (`join.rs`), `leave`
//! (`leave.rs`), promotion and demotion, which arrive as renewed
//! certificates from the agent (here), autolock (`autolock.rs`) — and
//! resumes all of it from the data dir after a restart. `info.rs` answers
//! `rswarm info`.

mod autolock;
mod info;
mod init;
mod join;
mod leave;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rswarm_agent::{AgentConfig, AgentEvent, AgentHandle, AgentSettings};
use rswarm_manager::{Manager, ManagerSettings, Start};
use rswarm_proto::identity::tls;
use rswarm_proto::types::{EngineDescription, NodeDescription, NodeRole, Platform, Resources};
use tokio::sync::{mpsc, Mutex};
use tonic::Status;

use super::netaddr;
use super::state::{DataDir, NodeState, PeerAddr, Role};

const ALREADY_IN_SWARM: &str =
    "This node is already part of a swarm. Use \"rswarm swarm leave\" to leave this swarm and join another one.";
const NOT_IN_SWARM: &str = "This node is not part of a swarm";

/// Daemon-wide settings the runtime needs.
pub(crate) struct NodeSettings {
    pub data: DataDir,
    pub node_name: String,
    pub engine_labels: BTreeMap<String, String>,
    /// What the agent keeps for the life of the daemon (image store, runtime).
    pub agent: AgentSettings,
    /// The node's data encryption key (keys.rs): seals the Raft store and the
    /// TLS key on disk. `None` while the node is locked (autolock).
    pub dek: Option<rswarm_raft::DataKey>,
    /// The daemon's metric handles (`super::metrics::build`), handed to
    /// every manager this node starts.
    pub metrics: super::metrics::Handles,
}

pub(crate) struct NodeRuntime {
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
    error: Option<String>,
}

/// The addresses `init` and `join` listen on and advertise: `--listen-addr`
/// (default 0.0.0.0:2377) and `--advertise-addr` (default `auto()` on the
/// listening port), each given a port when it has none.
fn addresses(
    listen_addr: &str,
    advertise_addr: &str,
    auto: impl FnOnce() -> anyhow::Result<std::net::IpAddr>,
) -> Result<(String, String), Status> {
    let listen = if listen_addr.is_empty() {
        format!("0.0.0.0:{}", netaddr::DEFAULT_PORT)
    } else {
        netaddr::with_port(listen_addr, netaddr::DEFAULT_PORT)
            .map_err(|e| Status::invalid_argument(format!("--listen-addr: {e}")))?
    };
    let port = netaddr::port_of(&listen);
    let advertise = if advertise_addr.is_empty() {
        let ip = auto().map_err(|e| Status::invalid_argument(e.to_string()))?;
        format!("{ip}:{port}")
    } else {
        netaddr::with_port(advertise_addr, port)
            .map_err(|e| Status::invalid_argument(format!("--advertise-addr: {e}")))?
    };
    Ok((listen, advertise))
}

fn internal(e: anyhow::Error) -> Status {
    Status::internal(format!("{e:#}"))
}

impl NodeRuntime {
    pub(crate) fn new(settings: NodeSettings) -> Arc<NodeRuntime> {
        let (tx, mut rx) = mpsc::channel(16);
        let node = Arc::new(NodeRuntime {
            dek: std::sync::Mutex::new(settings.dek.clone()),
            settings,
            inner: Mutex::new(Inner::default()),
            events: tx,
        });
        autolock::spawn_sync(&node);
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
    pub(crate) async fn resume(&self) -> anyhow::Result<()> {
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
            if let Err(e) = self.start_manager(&mut inner, Start::Resume).await {
                inner.error = Some(format!("{e:#}"));
                return Err(e);
            }
        }
        self.start_agent(&mut inner).await;
        Ok(())
    }

    /// This node's manager's gRPC services, for the local socket; refused
    /// with Docker's words while the node is locked or not a manager.
    pub(crate) async fn manager_routes(&self) -> Result<tonic::service::Routes, Status> {
        Ok(self.manager().await?.routes())
    }

    /// This node's manager; refused with Docker's words while the node is
    /// locked or not a manager.
    pub(crate) async fn manager(&self) -> Result<Arc<Manager>, Status> {
        self.dek()?;
        let inner = self.inner.lock().await;
        match (&inner.state, &inner.manager) {
            (_, Some(m)) => Ok(m.clone()),
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

    /// Start this node's manager from its state and certificates.
    async fn start_manager(&self, inner: &mut Inner, how: Start) -> anyhow::Result<()> {
        let state = inner
            .state
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no swarm state"))?;
        let node_tls = inner
            .tls
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no certificates"))?;
        let manager = rswarm_manager::start(ManagerSettings {
            raft_dir: self.settings.data.raft(),
            node_id: state.node_id.clone(),
            cluster_id: state.cluster_id.clone(),
            advertise_addr: state.advertise_addr.clone(),
            listen_addr: state.listen_addr.clone(),
            tls: node_tls,
            data_key: self.dek().map_err(|e| anyhow::anyhow!("{}", e.message()))?,
            how,
            metrics: self.settings.metrics.manager.clone(),
            raft_metrics: self.settings.metrics.raft.clone(),
        })
        .await?;
        inner.manager = Some(manager);
        Ok(())
    }

    /// (Re)start this node's agent from its state and certificates.
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
        inner.agent =
            Some(rswarm_agent::start(&self.settings.agent, cfg, self.events.clone()).await);
    }

    /// Stop the agent and the manager (if any) and forget the in-memory
    /// state; the data plane, if any, is handed back (to be removed on leave).
    async fn teardown(&self, inner: &mut Inner) -> Option<Arc<rswarm_agent::netplane::NetPlane>> {
        if let Some(a) = inner.agent.take() {
            a.stop();
        }
        if let Some(m) = inner.manager.take() {
            m.stop().await;
        }
        inner.state = None;
        inner.tls = None;
        self.settings.agent.forget_netplane().await
    }

    /// Leave the swarm on this node: stop everything, remove the swarm's
    /// containers and networks, forget the swarm on disk.
    async fn forget_swarm(&self, inner: &mut Inner) -> anyhow::Result<()> {
        let plane = self.teardown(inner).await;
        self.settings.agent.remove_everything(plane).await;
        self.settings.data.wipe()?;
        self.autolock_off_on_disk();
        inner.error = None;
        Ok(())
    }

    /// Daemon shutdown: stop everything, keep the data dir.
    pub(crate) async fn shutdown(&self) {
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
                self.forget_swarm(&mut inner).await?;
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
                        if let Err(e) = self.start_manager(&mut inner, Start::Join(peers)).await {
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
