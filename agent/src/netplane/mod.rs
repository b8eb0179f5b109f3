//! The node's side of overlay networking: keeps the local data plane in
//! line with the leader's network state. For every network a local task is
//! on, the VXLAN segment exists and knows where every remote task lives;
//! each task with networks gets its own network namespace with one veth per
//! network, and the embedded DNS server answers at 127.0.0.11 inside it
//! with the cluster's names.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rswarm_overlay::dns::{self, DnsServer, Records, ServeHandle, ServiceRecord, TaskRecord, View};
use rswarm_overlay::{mac_for, NetworkConfig, Overlay, Peer};
use rswarm_proto::dispatcher::NetworkStateMessage;
use rswarm_proto::types::Task;
use tokio::sync::{watch, Mutex};

/// The resolv.conf of a task on overlay networks.
pub const TASK_RESOLV_CONF: &str = "nameserver 127.0.0.11\noptions ndots:0\n";

pub struct NetPlane {
    overlay: Overlay,
    dns: Arc<DnsServer>,
    node_id: String,
    state: watch::Sender<NetworkStateMessage>,
    serving: Mutex<HashMap<String, ServeHandle>>,
}

fn ip_of(cidr: &str) -> Option<Ipv4Addr> {
    cidr.split('/').next().and_then(|ip| ip.parse().ok())
}

impl NetPlane {
    pub async fn new(
        netns_dir: &Path,
        local_ip: Ipv4Addr,
        node_id: String,
    ) -> Result<Arc<NetPlane>, String> {
        let overlay = Overlay::new(netns_dir, local_ip)
            .await
            .map_err(|e| format!("overlay data plane: {e}"))?;
        let upstreams = DnsServer::read_host_resolv_conf(Path::new("/etc/resolv.conf"));
        let dns = DnsServer::new(upstreams).map_err(|e| format!("embedded DNS server: {e}"))?;
        let (state, _) = watch::channel(NetworkStateMessage::default());
        Ok(Arc::new(NetPlane {
            overlay,
            dns,
            node_id,
            state,
            serving: Mutex::new(HashMap::new()),
        }))
    }

    fn network_config(state: &NetworkStateMessage, network_id: &str) -> Option<NetworkConfig> {
        let n = state.networks.iter().find(|n| n.id == network_id)?;
        let ipam = n.ipam.first()?;
        Some(NetworkConfig {
            id: n.id.clone(),
            vni: n.vni,
            subnet: ipam.subnet.clone(),
            gateway: ipam.gateway.clone(),
            internal: n.spec.as_ref().map(|s| s.internal).unwrap_or(false),
        })
    }

    /// A new picture from the leader: peers and DNS records follow it.
    pub async fn apply(&self, msg: NetworkStateMessage) {
        // send_replace stores the state even while nobody is waiting for it.
        self.state.send_replace(msg.clone());
        let local: std::collections::HashSet<&str> = msg
            .endpoints
            .iter()
            .filter(|e| e.node_id == self.node_id)
            .map(|e| e.network_id.as_str())
            .collect();
        for net in local {
            let Some(cfg) = Self::network_config(&msg, net) else {
                continue;
            };
            if let Err(e) = self.overlay.ensure_network(&cfg).await {
                tracing::warn!(network = %net, error = %e, "setting up an overlay network");
                continue;
            }
            let peers: Vec<Peer> = msg
                .endpoints
                .iter()
                .filter(|e| e.network_id == net && e.node_id != self.node_id)
                .filter_map(|e| {
                    let ip = ip_of(&e.addr)?;
                    Some(Peer {
                        ip,
                        mac: mac_for(ip),
                        node_ip: e.node_addr.parse().ok()?,
                    })
                })
                .collect();
            if let Err(e) = self.overlay.set_peers(net, &peers).await {
                tracing::warn!(network = %net, error = %e, "updating overlay peers");
            }
        }
        let records = Records {
            services: msg
                .services
                .iter()
                .map(|s| ServiceRecord {
                    name: s.name.clone(),
                    stack: (!s.stack.is_empty()).then(|| s.stack.clone()),
                    network_id: s.network_id.clone(),
                    vip: ip_of(&s.vip),
                    aliases: s.aliases.clone(),
                })
                .collect(),
            tasks: msg
                .endpoints
                .iter()
                .filter_map(|e| {
                    Some(TaskRecord {
                        service_name: e.service_name.clone(),
                        stack: (!e.stack.is_empty()).then(|| e.stack.clone()),
                        network_id: e.network_id.clone(),
                        task_name: e.task_name.clone(),
                        addr: ip_of(&e.addr)?,
                        aliases: e.aliases.clone(),
                        healthy: e.running,
                    })
                })
                .collect(),
        };
        self.dns.set_records(records);
    }

    /// Give a task its network namespace, interfaces and DNS; None when it is
    /// on no network. Waits briefly for the network state to name its networks.
    pub async fn prepare_task(&self, task: &Task) -> Result<Option<PathBuf>, String> {
        if task.networks.is_empty() {
            return Ok(None);
        }
        let mut rx = self.state.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let configs = loop {
            let state = rx.borrow_and_update().clone();
            let cfgs: Option<Vec<NetworkConfig>> = task
                .networks
                .iter()
                .map(|a| Self::network_config(&state, &a.network_id))
                .collect();
            if let Some(c) = cfgs {
                break c;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(format!(
                    "network state for task {} did not arrive in time",
                    task.id
                ));
            }
        };
        for cfg in &configs {
            self.overlay
                .ensure_network(cfg)
                .await
                .map_err(|e| format!("network {}: {e}", cfg.id))?;
        }
        let path = self
            .overlay
            .create_task_netns(&task.id)
            .await
            .map_err(|e| format!("task network namespace: {e}"))?;
        for (i, att) in task.networks.iter().enumerate() {
            let addr = att.addresses.first().ok_or_else(|| {
                format!(
                    "task {} has no address on network {}",
                    task.id, att.network_id
                )
            })?;
            self.overlay
                .attach(&task.id, &att.network_id, addr, i)
                .await
                .map_err(|e| format!("attaching to network {}: {e}", att.network_id))?;
        }
        self.serve_dns(task).await?;
        Ok(Some(path))
    }

    /// Serve DNS inside the task's namespace (again, after an agent restart).
    pub async fn serve_dns(&self, task: &Task) -> Result<(), String> {
        if task.networks.is_empty() {
            return Ok(());
        }
        let path = self.overlay.task_netns_path(&task.id);
        let (udp, tcp) = dns::bind_in_netns(&path, dns::DNS_ADDR)
            .map_err(|e| format!("DNS in task {}: {e}", task.id))?;
        let stack = task
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .and_then(|c| c.labels.get("com.docker.stack.namespace").cloned());
        let view = View {
            networks: task.networks.iter().map(|n| n.network_id.clone()).collect(),
            stack,
        };
        let handle = self
            .dns
            .serve(view, udp, tcp)
            .map_err(|e| format!("DNS in task {}: {e}", task.id))?;
        self.serving.lock().await.insert(task.id.clone(), handle);
        Ok(())
    }

    /// The task is gone: its DNS, interfaces and namespace go too.
    pub async fn release_task(&self, task_id: &str) {
        if let Some(h) = self.serving.lock().await.remove(task_id) {
            h.stop();
        }
        if self.overlay.task_netns_path(task_id).exists() {
            if let Err(e) = self.overlay.remove_task_netns(task_id).await {
                tracing::warn!(task = %task_id, error = %e, "removing the task's network namespace");
            }
        }
    }

    /// Leaving the swarm: every sandbox and task namespace of this node goes.
    pub async fn remove_everything(&self) {
        self.serving.lock().await.clear();
        if let Err(e) = self.overlay.cleanup(&[], &[]).await {
            tracing::warn!(error = %e, "removing overlay networks");
        }
    }

    pub fn task_netns_path(&self, task_id: &str) -> PathBuf {
        self.overlay.task_netns_path(task_id)
    }
}
