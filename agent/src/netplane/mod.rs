//! The node's side of networking: keeps the local data plane in line with
//! the leader's network state.
//!
//! - For every network a local task is on, the VXLAN segment exists and
//!   knows where every remote task (and every remote node's own leg) lives.
//! - Each task with networks or host-mode ports gets its own network
//!   namespace: one veth per overlay network, and a leg on the node's
//!   gateway bridge (egress, host-mode ports) unless all its networks are
//!   internal. The embedded DNS server answers at 127.0.0.11 inside it.
//! - Service VIPs: nftables table `ip rswarm` in each task's namespace,
//!   balanced over the service's running tasks (`rules::task_vips`).
//! - The routing mesh: this node's own address on `ingress` (a veth into the
//!   ingress sandbox), and table `ip rswarm_mesh` in the node's namespace for
//!   every published port (`rules::node_ports`).
//! - When a task stops, what conntrack still holds for connections
//!   translated to it is deleted (`forget`); while it drains, not.
//! - Leftovers (sandboxes of networks no local task uses, namespaces no
//!   process uses any more) are swept, also after a crash (`sweep`).
//! - The metrics: the embedded DNS server counts its queries, and each
//!   time rules are synced the backends of every service's VIP and routing
//!   mesh go to `OverlayMetrics` (`rules::backend_counts`).
//!
//! Rules are applied only when they change, each table in one nftables
//! transaction, so a state message that does not touch a task's services
//! costs nothing. The mesh and the VIP tables of tasks that serve go first;
//! those of tasks that do not (starting) last, so a task that drains waits
//! only for the first part (`wait_not_backend`). The VIP tables of tasks
//! that drain are left as they are until they stop: what they send in their
//! last moments may still pick a backend that is draining too (it is still
//! reachable until it stops), and `service rm` of a hundred tasks does not
//! rewrite a hundred tables that are about to go.

mod forget;
mod rules;
mod sweep;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rswarm_overlay::dns::{self, DnsServer, Records, ServeHandle, ServiceRecord, TaskRecord, View};
use rswarm_overlay::metrics::OverlayMetrics;
use rswarm_overlay::nft::{self, PublishedPort, VipService};
use rswarm_overlay::{mac_for, NetworkConfig, Overlay, Peer};
use rswarm_proto::dispatcher::{NetworkStateMessage, NodeEndpoint};
use rswarm_proto::types::Task;
use tokio::sync::{watch, Mutex};

pub use rules::LocalTask;

/// The node's own namespace, where the routing mesh lives.
const NODE_NETNS: &str = "/proc/self/ns/net";
/// How often leftovers are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// What was last applied, so unchanged rules are not applied again.
#[derive(Default)]
struct Applied {
    vips: HashMap<String, Vec<VipService>>,
    mesh: Option<Vec<PublishedPort>>,
    /// This node's leg on ingress: (network, address), and its interface
    /// once attached.
    host_leg: Option<(String, String)>,
    ingress_iface: Option<String>,
}

pub struct NetPlane {
    overlay: Overlay,
    netns_dir: PathBuf,
    dns: Arc<DnsServer>,
    node_id: String,
    state: watch::Sender<NetworkStateMessage>,
    serving: Mutex<HashMap<String, ServeHandle>>,
    /// Tasks of this node with a namespace made here.
    local: std::sync::Mutex<HashMap<String, LocalTask>>,
    /// Serialises rule and device updates; holds what was applied.
    applied: Mutex<Applied>,
    /// Addresses of stopped tasks whose connections are to be forgotten.
    forget: tokio::sync::mpsc::UnboundedSender<Vec<Ipv4Addr>>,
    /// How many state messages were stored (counted before each is).
    generation: AtomicU64,
    /// The newest generation whose mesh and serving tasks' VIP tables are
    /// applied.
    served: watch::Sender<u64>,
    /// Local tasks draining before their stop: their own VIP tables are
    /// left as they are until they go.
    draining: std::sync::Mutex<HashSet<String>>,
    /// DNS queries and service backends are counted there.
    metrics: OverlayMetrics,
}

fn ip_of(cidr: &str) -> Option<Ipv4Addr> {
    cidr.split('/').next().and_then(|ip| ip.parse().ok())
}

impl NetPlane {
    pub async fn new(
        netns_dir: &Path,
        local_ip: Ipv4Addr,
        node_id: String,
        metrics: OverlayMetrics,
    ) -> Result<Arc<NetPlane>, String> {
        let overlay = Overlay::new(netns_dir, local_ip)
            .await
            .map_err(|e| format!("overlay data plane: {e}"))?;
        let upstreams = DnsServer::read_host_resolv_conf(Path::new("/etc/resolv.conf"));
        let dns = DnsServer::new(upstreams).map_err(|e| format!("embedded DNS server: {e}"))?;
        dns.set_metrics(metrics.clone());
        let (state, _) = watch::channel(NetworkStateMessage::default());
        let plane = Arc::new_cyclic(|me| NetPlane {
            overlay,
            netns_dir: netns_dir.to_path_buf(),
            dns,
            node_id,
            state,
            serving: Mutex::new(HashMap::new()),
            local: std::sync::Mutex::new(HashMap::new()),
            applied: Mutex::new(Applied::default()),
            forget: forget::start(me.clone()),
            generation: AtomicU64::new(0),
            served: watch::channel(0).0,
            draining: std::sync::Mutex::new(HashSet::new()),
            metrics,
        });
        // Leftovers are swept on a timer, whether or not new state arrives
        // (the last task of a network went, and nothing else changed).
        let weak = Arc::downgrade(&plane);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut swept = false;
            loop {
                tick.tick().await;
                let Some(plane) = weak.upgrade() else { return };
                if plane.has_state() {
                    plane.sweep().await;
                    if !swept {
                        // Once per start: what was adopted is settled (tests wait for it).
                        tracing::info!("net plane: first sweep since start done");
                        swept = true;
                    }
                }
            }
        });
        Ok(plane)
    }

    /// True once a state message from the leader has been applied.
    fn has_state(&self) -> bool {
        let s = self.state.borrow();
        !s.networks.is_empty()
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
            // Encrypted networks are wired by the agent's WireGuard part.
            encrypted_local_ip: None,
        })
    }

    fn local_tasks(&self) -> HashMap<String, LocalTask> {
        self.local.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The remote peers of a network: other nodes' tasks and node legs.
    fn peers(&self, msg: &NetworkStateMessage, net: &str) -> Vec<Peer> {
        let tasks = msg
            .endpoints
            .iter()
            .filter(|e| e.network_id == net && e.node_id != self.node_id)
            .map(|e| (e.addr.as_str(), e.node_addr.as_str()));
        let nodes = msg
            .node_endpoints
            .iter()
            .filter(|e| e.network_id == net && e.node_id != self.node_id)
            .map(|e| (e.addr.as_str(), e.node_addr.as_str()));
        tasks
            .chain(nodes)
            .filter_map(|(addr, node)| {
                let ip = ip_of(addr)?;
                Some(Peer {
                    ip,
                    mac: mac_for(ip),
                    node_ip: node.parse().ok()?,
                })
            })
            .collect()
    }

    /// Returns once the leader's latest picture no longer has task `task_id`
    /// as a running backend (the rules and DNS that follow it are applied
    /// with it), or after `max`.
    pub async fn wait_not_backend(&self, task_id: &str, max: Duration) {
        if let Ok(mut d) = self.draining.lock() {
            d.insert(task_id.to_string());
        }
        let mut rx = self.state.subscribe();
        let gone = async {
            loop {
                let backend = rx
                    .borrow_and_update()
                    .endpoints
                    .iter()
                    .any(|e| e.task_id == task_id && e.running);
                if !backend || rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let deadline = tokio::time::Instant::now() + max;
        if tokio::time::timeout_at(deadline, gone).await.is_err() {
            tracing::warn!(task = %task_id, "still a backend of its services after {max:?}");
            return;
        }
        // `apply` stores the picture before it applies it: wait until the
        // rules that send traffic to tasks (the mesh, the VIP tables of the
        // tasks that serve) follow it.
        let seen = self.generation.load(Ordering::SeqCst);
        let mut served = self.served.subscribe();
        if tokio::time::timeout_at(deadline, served.wait_for(|g| *g >= seen))
            .await
            .is_err()
        {
            tracing::warn!(task = %task_id, "the rules were not applied within {max:?}");
        }
    }

    /// A new picture from the leader: devices, peers, DNS records and rules
    /// follow it.
    pub async fn apply(&self, msg: NetworkStateMessage) {
        // Tasks that left the picture have stopped: their connections go.
        let gone = rules::gone_backends(&self.state.borrow(), &msg);
        self.forget_later(gone);
        // Counted before stored: whoever sees this message sees its number.
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        // send_replace stores the state even while nobody is waiting for it.
        self.state.send_replace(msg.clone());
        let mut applied = self.applied.lock().await;
        let local = self.local_tasks();
        for net in &self.wanted_networks(&msg, &local) {
            let Some(cfg) = Self::network_config(&msg, net) else {
                continue;
            };
            if let Err(e) = self.overlay.ensure_network(&cfg).await {
                tracing::warn!(network = %net, error = %e, "setting up an overlay network");
                continue;
            }
            if let Err(e) = self.overlay.set_peers(net, &self.peers(&msg, net)).await {
                tracing::warn!(network = %net, error = %e, "updating overlay peers");
            }
        }
        // This node's own leg on ingress: the routing mesh's way in.
        let leg = self
            .my_leg(&msg)
            .map(|l| (l.network_id.clone(), l.addr.clone()));
        applied.ingress_iface = None;
        if let Some((net, addr)) = &leg {
            match self.overlay.attach_host(net, addr).await {
                Ok(iface) => applied.ingress_iface = Some(iface),
                Err(e) => {
                    tracing::warn!(network = %net, error = %e, "attaching the node to ingress")
                }
            }
        } else if let Some((net, _)) = &applied.host_leg {
            if let Err(e) = self.overlay.detach_host(net).await {
                tracing::warn!(network = %net, error = %e, "detaching the node from ingress");
            }
        }
        applied.host_leg = leg;

        self.dns.set_records(Self::records(&msg));
        self.sync_rules(&mut applied, &msg, &local, generation)
            .await;
    }

    /// This node's own address on `ingress`, if it has one.
    fn my_leg<'a>(&self, msg: &'a NetworkStateMessage) -> Option<&'a NodeEndpoint> {
        let ingress = rules::ingress_id(msg)?;
        msg.node_endpoints
            .iter()
            .find(|e| e.node_id == self.node_id && e.network_id == ingress)
    }

    /// The networks this node needs: those of its tasks (in the state, or
    /// registered here) and `ingress` when it has a leg there.
    fn wanted_networks(
        &self,
        msg: &NetworkStateMessage,
        local: &HashMap<String, LocalTask>,
    ) -> HashSet<String> {
        let mut wanted: HashSet<String> = msg
            .endpoints
            .iter()
            .filter(|e| e.node_id == self.node_id)
            .map(|e| e.network_id.clone())
            .collect();
        wanted.extend(local.values().flat_map(|t| t.networks.iter().cloned()));
        if let Some(leg) = self.my_leg(msg) {
            wanted.insert(leg.network_id.clone());
        }
        wanted
    }

    fn records(msg: &NetworkStateMessage) -> Records {
        Records {
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
        }
    }

    /// Apply the VIP and published-port rules that changed: the mesh and
    /// the VIP tables of local tasks that serve, then (`served` says so)
    /// those of the others.
    async fn sync_rules(
        &self,
        applied: &mut Applied,
        msg: &NetworkStateMessage,
        local: &HashMap<String, LocalTask>,
        generation: u64,
    ) {
        self.sync_mesh(applied, msg, local).await;
        applied.vips.retain(|id, _| local.contains_key(id));
        let serving: HashSet<&str> = msg
            .endpoints
            .iter()
            .filter(|e| e.running && e.node_id == self.node_id)
            .map(|e| e.task_id.as_str())
            .collect();
        let draining = self.draining.lock().map(|d| d.clone()).unwrap_or_default();
        let (first, last): (HashMap<_, _>, HashMap<_, _>) = local
            .iter()
            .filter(|(id, _)| !draining.contains(id.as_str()))
            .partition(|(id, _)| serving.contains(id.as_str()));
        self.sync_vips(applied, msg, first).await;
        self.served.send_if_modified(|g| {
            let newer = generation > *g;
            *g = (*g).max(generation);
            newer
        });
        self.sync_vips(applied, msg, last).await;
        let tasks: Vec<&LocalTask> = local.values().collect();
        self.metrics
            .set_backends(rules::backend_counts(msg, &tasks));
    }

    /// The rules again, after a local task came or went (its devices and
    /// the peers come with the network state).
    async fn refresh_rules(&self) {
        // Read before the state: the number may be older than the state
        // read, never newer.
        let generation = self.generation.load(Ordering::SeqCst);
        let msg = self.state.borrow().clone();
        let local = self.local_tasks();
        let mut applied = self.applied.lock().await;
        self.sync_rules(&mut applied, &msg, &local, generation)
            .await;
    }

    /// Apply the VIP tables of the tasks of `local` whose VIP set changed.
    async fn sync_vips(
        &self,
        applied: &mut Applied,
        msg: &NetworkStateMessage,
        local: HashMap<&String, &LocalTask>,
    ) {
        let mut work = vec![];
        for (id, t) in local {
            if t.networks.is_empty() {
                continue;
            }
            let want = rules::task_vips(msg, &t.networks);
            if applied.vips.get(id.as_str()) != Some(&want) {
                work.push(((*id).clone(), self.overlay.task_netns_path(id), want));
            }
        }
        if work.is_empty() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            work.into_iter()
                // A task released meanwhile: its namespace is gone with it.
                .filter(|(_, path, _)| path.exists())
                .filter_map(
                    |(id, path, want)| match nft::apply_task_vips(&path, &want) {
                        Ok(()) => Some((id, want)),
                        Err(e) => {
                            tracing::warn!(task = %id, error = %e, "applying service VIPs");
                            None
                        }
                    },
                )
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        applied.vips.extend(done);
    }

    /// Apply the node's published ports when they changed.
    async fn sync_mesh(
        &self,
        applied: &mut Applied,
        msg: &NetworkStateMessage,
        local: &HashMap<String, LocalTask>,
    ) {
        let tasks: Vec<&LocalTask> = local.values().collect();
        let want = rules::node_ports(msg, &tasks);
        if applied.mesh.as_ref() == Some(&want) {
            return;
        }
        // Forwarding to the backends was switched on with the ingress leg
        // and the gateway bridge (the overlay does it).
        let ports = want.clone();
        let ingress_iface = applied.ingress_iface.clone();
        let res = tokio::task::spawn_blocking(move || {
            nft::apply_node_mesh(Path::new(NODE_NETNS), &ports, ingress_iface.as_deref())
        })
        .await;
        match res {
            Ok(Ok(())) => applied.mesh = Some(want),
            Ok(Err(e)) => tracing::warn!(error = %e, "applying the routing mesh"),
            Err(e) => tracing::warn!(error = %e, "applying the routing mesh"),
        }
    }

    /// Remove sandboxes of networks nothing here uses and task namespaces
    /// that are neither registered nor used by any process.
    async fn sweep(&self) {
        let msg = self.state.borrow().clone();
        // Held so no apply builds while the sweep decides.
        let _applied = self.applied.lock().await;
        let local = self.local_tasks();
        let wanted = self.wanted_networks(&msg, &local);
        let used = sweep::namespaces_in_use();
        let mut keep_tasks: Vec<String> = local.keys().cloned().collect();
        if let Ok(entries) = std::fs::read_dir(&self.netns_dir) {
            for e in entries.flatten() {
                if let Some(name) = e.file_name().to_str() {
                    if sweep::in_use(&e.path(), &used) && !keep_tasks.iter().any(|k| k == name) {
                        keep_tasks.push(name.to_string());
                    }
                }
            }
        }
        let keep_networks: Vec<String> = wanted.iter().cloned().collect();
        if let Err(e) = self.overlay.cleanup(&keep_networks, &keep_tasks).await {
            tracing::warn!(error = %e, "sweeping leftover network devices");
        }
    }

    /// Give a task its network namespace, interfaces, VIPs and DNS; None
    /// when it is on no network and publishes no host-mode port. Waits
    /// briefly for the network state to name its networks.
    pub async fn prepare_task(&self, task: &Task) -> Result<Option<PathBuf>, String> {
        let host_ports = rules::host_ports(task);
        if task.networks.is_empty() && host_ports.is_empty() {
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
        // Registered first, so a sweep never takes what is being built.
        let mut entry = LocalTask {
            networks: task.networks.iter().map(|n| n.network_id.clone()).collect(),
            host_ports,
            gateway: None,
        };
        self.register(&task.id, entry.clone());
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
        // The gateway bridge: a way out and the host-mode path in, for any
        // task that is not only on internal networks.
        let needs_gateway = configs.iter().any(|c| !c.internal) || !entry.host_ports.is_empty();
        if needs_gateway {
            let gw = self
                .overlay
                .attach_gateway(&task.id, task.networks.len())
                .await
                .map_err(|e| format!("attaching to the gateway bridge: {e}"))?;
            entry.gateway = Some(gw);
            self.register(&task.id, entry);
        }
        self.serve_dns(task).await?;
        self.refresh_rules().await;
        Ok(Some(path))
    }

    fn register(&self, task_id: &str, entry: LocalTask) {
        if let Ok(mut m) = self.local.lock() {
            m.insert(task_id.to_string(), entry);
        }
    }

    /// A running task found after an agent restart: registered again, its
    /// DNS served again; its devices and rules are still in place.
    pub async fn restore_task(&self, task: &Task) -> Result<(), String> {
        let host_ports = rules::host_ports(task);
        if task.networks.is_empty() && host_ports.is_empty() {
            return Ok(());
        }
        let entry = LocalTask {
            networks: task.networks.iter().map(|n| n.network_id.clone()).collect(),
            host_ports,
            gateway: self.overlay.gateway_addr(&task.id),
        };
        self.register(&task.id, entry);
        self.serve_dns(task).await?;
        self.refresh_rules().await;
        Ok(())
    }

    /// Serve DNS inside the task's namespace.
    async fn serve_dns(&self, task: &Task) -> Result<(), String> {
        if task.networks.is_empty() {
            return Ok(());
        }
        let path = self.overlay.task_netns_path(&task.id);
        let (udp, tcp) = dns::bind_in_netns(&path, dns::DNS_ADDR)
            .map_err(|e| format!("DNS in task {}: {e}", task.id))?;
        let container = task.spec.as_ref().and_then(|s| s.container.as_ref());
        let stack = container.and_then(|c| c.labels.get("com.docker.stack.namespace").cloned());
        let view = View {
            networks: task.networks.iter().map(|n| n.network_id.clone()).collect(),
            stack,
            // `--dns`: the embedded server stays the task's nameserver and
            // forwards what it does not know to these.
            upstreams: crate::exec::resolv::task_upstreams(container),
        };
        let handle = self
            .dns
            .serve(view, udp, tcp)
            .map_err(|e| format!("DNS in task {}: {e}", task.id))?;
        if let Some(old) = self.serving.lock().await.insert(task.id.clone(), handle) {
            old.stop();
        }
        Ok(())
    }

    /// The task is gone: its DNS, interfaces, rules and namespace go too.
    /// Its process has ended, so what conntrack holds for connections to
    /// its addresses goes too (on this node at once; the others do it when
    /// it leaves the network state).
    pub async fn release_task(&self, task_id: &str) {
        let entry = self.local.lock().ok().and_then(|mut m| m.remove(task_id));
        if let Ok(mut d) = self.draining.lock() {
            d.remove(task_id);
        }
        let known = entry.is_some();
        let mut addrs: Vec<Ipv4Addr> = self
            .state
            .borrow()
            .endpoints
            .iter()
            .filter(|e| e.task_id == task_id)
            .filter_map(|e| ip_of(&e.addr))
            .collect();
        addrs.extend(entry.and_then(|t| t.gateway));
        if let Some(h) = self.serving.lock().await.remove(task_id) {
            h.stop();
        }
        if self.overlay.task_netns_path(task_id).exists() {
            if let Err(e) = self.overlay.remove_task_netns(task_id).await {
                tracing::warn!(task = %task_id, error = %e, "removing the task's network namespace");
            }
        }
        if known {
            self.refresh_rules().await;
            self.forget_later(addrs);
        }
    }

    /// Leaving the swarm: every sandbox, task namespace, gateway and rule of
    /// this node goes.
    pub async fn remove_everything(&self) {
        let mut applied = self.applied.lock().await;
        // No state: the periodic sweep has nothing to rebuild.
        self.state.send_replace(NetworkStateMessage::default());
        self.serving.lock().await.clear();
        if let Ok(mut m) = self.local.lock() {
            m.clear();
        }
        if let Err(e) = self.overlay.cleanup(&[], &[]).await {
            tracing::warn!(error = %e, "removing overlay networks");
        }
        if let Err(e) = self.overlay.remove_everything().await {
            tracing::warn!(error = %e, "removing the gateway bridge");
        }
        let res = tokio::task::spawn_blocking(|| nft::remove_all(Path::new(NODE_NETNS))).await;
        if let Ok(Err(e)) = res {
            tracing::warn!(error = %e, "removing the routing mesh rules");
        }
        *applied = Applied::default();
    }

    pub fn task_netns_path(&self, task_id: &str) -> PathBuf {
        self.overlay.task_netns_path(task_id)
    }
}
