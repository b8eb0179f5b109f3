//! The agent starting itself from a settings value: the node's overlay data
//! plane (made once, kept across restarts of the session), the container
//! controller over the image store and the OCI runtime, and the session with
//! the managers with its worker. Also what leaving a swarm does to this
//! node's containers and networks. The node process (the `rswarm` binary's
//! daemon) decides *when*; this module owns *how*.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rswarm_overlay::metrics::OverlayMetrics;
use tokio::sync::mpsc;

use crate::exec::container::{ContainerController, NodeFacts};
use crate::image::ImageStore;
use crate::metrics::AgentMetrics;
use crate::netplane::NetPlane;
use crate::runtime::Runtime;
use crate::session::{AgentConfig, AgentEvent, AgentHandle};
use crate::volumes::VolumeStore;
use crate::worker::WorkerDeps;

/// What the agent keeps for the life of the daemon, whatever the swarm.
pub struct AgentSettings {
    /// The node's data dir (`netns/` lives under it).
    pub data_dir: PathBuf,
    /// The node's name, given to containers as their node's hostname.
    pub hostname: String,
    pub images: Arc<ImageStore>,
    pub runtime: Arc<Runtime>,
    /// Container id → image reference of this node's containers.
    pub images_in_use: Arc<Mutex<HashMap<String, String>>>,
    /// This node's named volumes.
    pub volumes: Arc<VolumeStore>,
    /// The overlay data plane, once made (at the first start in a swarm).
    netplane: tokio::sync::Mutex<Option<Arc<NetPlane>>>,
    /// What the agent measures (see [`AgentSettings::with_metrics`]).
    metrics: AgentMetrics,
    /// What the data plane measures.
    overlay_metrics: OverlayMetrics,
}

impl AgentSettings {
    pub fn new(
        data_dir: PathBuf,
        hostname: String,
        images: Arc<ImageStore>,
        runtime: Arc<Runtime>,
        images_in_use: Arc<Mutex<HashMap<String, String>>>,
        volumes: Arc<VolumeStore>,
    ) -> Self {
        Self {
            data_dir,
            hostname,
            images,
            runtime,
            images_in_use,
            volumes,
            netplane: tokio::sync::Mutex::new(None),
            metrics: AgentMetrics::default(),
            overlay_metrics: OverlayMetrics::default(),
        }
    }

    /// Measure into these handles (registered once in the daemon's
    /// registry): the tasks, image pulls and container starts into
    /// `agent`, DNS and service backends into `overlay`.
    pub fn with_metrics(mut self, agent: AgentMetrics, overlay: OverlayMetrics) -> Self {
        self.images.set_metrics(agent.clone());
        self.metrics = agent;
        self.overlay_metrics = overlay;
        self
    }

    /// Forget the data plane (the node left the swarm or the daemon stops);
    /// the next start makes it again.
    pub async fn forget_netplane(&self) -> Option<Arc<NetPlane>> {
        self.netplane.lock().await.take()
    }

    /// Leaving the swarm takes its tasks along: stop and remove every
    /// container (a daemon shutdown does not: its tasks keep running), then
    /// the overlay networks of the data plane `plane`.
    pub async fn remove_everything(&self, plane: Option<Arc<NetPlane>>) {
        let rt = &self.runtime;
        for id in rt.list().unwrap_or_default() {
            if let Err(e) = rt.stop(&id, "SIGTERM", Duration::from_secs(10)).await {
                tracing::warn!(container = %id, error = %e, "stopping a container on leave");
            }
            if let Err(e) = rt.remove(&id).await {
                tracing::warn!(container = %id, error = %e, "removing a container on leave");
            }
            let _ = rt.remove_logs(&id);
        }
        if let Some(p) = plane {
            p.remove_everything().await;
        }
    }

    /// The overlay data plane for a node at `advertise_addr`, made on first use.
    async fn netplane(&self, node_id: &str, advertise_addr: &str) -> Option<Arc<NetPlane>> {
        let mut plane = self.netplane.lock().await;
        if plane.is_none() {
            match host_ipv4(advertise_addr) {
                Some(ip) => {
                    match NetPlane::new(
                        &self.data_dir.join("netns"),
                        ip,
                        node_id.to_string(),
                        self.overlay_metrics.clone(),
                    )
                    .await
                    {
                        Ok(p) => *plane = Some(p),
                        Err(e) => {
                            tracing::error!(error = %e, "overlay networking is unavailable on this node")
                        }
                    }
                }
                None => {
                    tracing::error!(addr = %advertise_addr, "overlay networking needs an IPv4 advertise address")
                }
            }
        }
        plane.clone()
    }
}

/// Start the agent of a node in a swarm: its session with the managers in
/// `cfg` and the worker that runs the tasks they assign. Events (new manager
/// list, renewed certificate, removal) go to `events`.
pub async fn start(
    settings: &AgentSettings,
    cfg: AgentConfig,
    events: mpsc::Sender<AgentEvent>,
) -> AgentHandle {
    let netplane = settings.netplane(&cfg.node_id, &cfg.advertise_addr).await;
    let files = Arc::new(crate::taskfiles::TaskFiles::default());
    let controller = ContainerController {
        images: settings.images.clone(),
        runtime: settings.runtime.clone(),
        volumes: settings.volumes.clone(),
        node: NodeFacts {
            node_id: cfg.node_id.clone(),
            hostname: settings.hostname.clone(),
        },
        resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        in_use: settings.images_in_use.clone(),
        netplane: netplane.clone(),
        files: files.clone(),
        metrics: settings.metrics.clone(),
    };
    let deps = WorkerDeps {
        controller: Arc::new(controller),
        runtime: settings.runtime.clone(),
        netplane,
        files,
        tasks: settings.metrics.tasks.clone(),
    };
    crate::session::start(cfg, events, Some(deps))
}

/// The IPv4 address of "ip:port" (the overlay's VTEP address).
fn host_ipv4(addr: &str) -> Option<std::net::Ipv4Addr> {
    addr.rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .parse()
        .ok()
}
