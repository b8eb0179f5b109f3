//! [`Overlay`]: the per-node data path the agent programs from what the
//! dispatcher sends (see the crate documentation for the design and the
//! diagram): network sandboxes and task namespaces here, the gateway bridge
//! in [`gateway`], the node's own legs on networks in [`host_leg`].
//!
//! Everything an `Overlay` makes is found again from the kernel by a new
//! instance on the same state directory in the same namespace (a daemon
//! restart with running tasks): sandboxes and task namespaces by their files,
//! task veths, gateway veths and host legs by their aliases.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use netlink_packet_route::link::InfoKind;
use rtnetlink::LinkUnspec;

use crate::addr::{
    self, check_id, check_iface_index, mac_for, parse_cidr, parse_ip, HOST_LEG_PEER, SANDBOX_PREFIX,
};
use crate::error::OverlayError;
use crate::fdb;
use crate::links::{Netlink, LOOPBACK};
use crate::netns;
use crate::vxlan::{self, SandboxSpec, BRIDGE, OVERLAY_MTU, VXLAN};
use crate::wireguard::{ENCRYPTED_OVERLAY_MTU, TUNNEL_POOL};

mod encrypted;
pub(crate) mod gateway;
mod host_leg;

/// How the node's own namespace is named in messages.
const NODE_NS: &str = "the node's namespace";

/// An overlay network as the node needs it (from the allocator, through the
/// dispatcher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The network's ID (used as a file name: `[A-Za-z0-9_.-]`, up to 128).
    pub id: String,
    /// The VXLAN network identifier, 1..=16777215, unique in the cluster.
    pub vni: u32,
    /// The network's subnet, `a.b.c.d/len`.
    pub subnet: String,
    /// The gateway address (`a.b.c.d`, a `/len` suffix is accepted and
    /// ignored): put on the sandbox bridge. Tasks do not route through it
    /// (their default route is the gateway bridge's, [`Overlay::attach_gateway`]).
    pub gateway: String,
    /// `--internal`: recorded on the sandbox; the agent gives a task whose
    /// networks are all internal no gateway bridge, hence no way out.
    pub internal: bool,
    /// `--opt encrypted`: the node's WireGuard tunnel address (in
    /// [`crate::TUNNEL_POOL`], on the node's [`crate::Tunnel`]), used as the
    /// VXLAN source; the network's devices get MTU
    /// [`crate::ENCRYPTED_OVERLAY_MTU`] and its [`Peer::node_ip`]s must be the
    /// other nodes' tunnel addresses. `None`: a clear network.
    pub encrypted_local_ip: Option<Ipv4Addr>,
}

/// A task of a network running on another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The task's address on the network.
    pub ip: Ipv4Addr,
    /// The task's MAC on the network (normally [`mac_for`]`(ip)`).
    pub mac: [u8; 6],
    /// The advertise address of the node the task runs on (the VXLAN
    /// remote); on an encrypted network, that node's tunnel address.
    pub node_ip: Ipv4Addr,
}

/// What `attach` and `attach_host` need to know of a network.
#[derive(Debug, Clone, Copy)]
struct NetInfo {
    gateway: Ipv4Addr,
    prefix: u8,
    /// MTU of the network's devices (1450, or 1370 when encrypted).
    mtu: u32,
}

/// The data path of one node: network sandboxes and task namespaces under
/// one state directory; VXLAN sockets, the gateway bridge and the node's legs
/// on networks in the namespace `new` was called from (the node's namespace;
/// one `Overlay` per node namespace).
///
/// All methods can be called from any thread of any tokio runtime (the async
/// ones must be polled by tokio: they drive netlink sockets on it); they are
/// serialised internally, and each is idempotent. Each call briefly blocks its
/// worker thread to spawn and join a helper thread per namespace it touches
/// (tens of microseconds) and for the occasional mount/umount.
///
/// Dropping an `Overlay` removes nothing: namespaces and devices outlive the
/// daemon so running tasks keep their network (live restore).
pub struct Overlay {
    state_dir: PathBuf,
    local_ip: Ipv4Addr,
    /// The namespace whose addresses carry VXLAN (the daemon's own).
    host_ns: OwnedFd,
    lock: tokio::sync::Mutex<()>,
    networks: std::sync::Mutex<HashMap<String, NetInfo>>,
    /// Who has which address on the gateway bridge.
    gateways: std::sync::Mutex<gateway::Pool>,
    /// Forwarding and the egress NAT were applied by this instance.
    gateway_ready: AtomicBool,
    /// The VNIs of encrypted networks, guarded in table `ip rswarm_wg`.
    encrypted: std::sync::Mutex<encrypted::Guard>,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("state_dir", &self.state_dir)
            .field("local_ip", &self.local_ip)
            .finish_non_exhaustive()
    }
}

impl Overlay {
    /// Set up the data path rooted at `state_dir` (e.g. `<data-dir>/netns`,
    /// created if missing) for a node whose advertise address is `local_ip`.
    ///
    /// The **calling thread's** network namespace becomes the node's
    /// namespace: VXLAN sockets, the gateway bridge and the node's legs live
    /// there. Nothing is created or removed; the gateway addresses in use are
    /// read back from the gateway veths found there (a restart with running
    /// tasks keeps them, see [`Overlay::attach_gateway`]). Call
    /// [`Overlay::cleanup`] once the wanted state is known.
    pub async fn new(state_dir: &Path, local_ip: Ipv4Addr) -> Result<Overlay, OverlayError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| OverlayError::io(format!("create {}", state_dir.display()), e))?;
        let host_ns = netns::current()
            .map_err(|e| OverlayError::io("open the network namespace of the calling thread", e))?;
        let pool = {
            let node = Netlink::open(host_ns.as_fd(), NODE_NS)?;
            gateway::recover(&node).await?
        };
        Ok(Overlay {
            state_dir: state_dir.to_path_buf(),
            local_ip,
            host_ns,
            lock: tokio::sync::Mutex::new(()),
            networks: std::sync::Mutex::new(HashMap::new()),
            gateways: std::sync::Mutex::new(pool),
            gateway_ready: AtomicBool::new(false),
            encrypted: std::sync::Mutex::new(encrypted::Guard::default()),
        })
    }

    /// The node's advertise address (the VXLAN source).
    pub fn local_ip(&self) -> Ipv4Addr {
        self.local_ip
    }

    /// Where a task's network namespace is bind-mounted (give it to runc as
    /// the `network` namespace path).
    pub fn task_netns_path(&self, task_id: &str) -> PathBuf {
        self.state_dir.join(task_id)
    }

    /// Where a network's sandbox namespace is bind-mounted
    /// (`<state_dir>/1-<network id>`): the place for rules that belong to the
    /// network on this node (the ingress routing mesh).
    pub fn network_netns_path(&self, network_id: &str) -> PathBuf {
        self.state_dir.join(format!("{SANDBOX_PREFIX}{network_id}"))
    }

    fn remember(&self, id: &str, info: NetInfo) {
        if let Ok(mut map) = self.networks.lock() {
            map.insert(id.to_string(), info);
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut map) = self.networks.lock() {
            map.remove(id);
        }
    }

    fn remembered(&self, id: &str) -> Option<NetInfo> {
        self.networks.lock().ok().and_then(|m| m.get(id).copied())
    }

    fn open_ns(path: &Path) -> Result<OwnedFd, OverlayError> {
        netns::open(path).map_err(|e| OverlayError::io(format!("open {}", path.display()), e))
    }

    /// Create (or repair) the network's sandbox: namespace, `br0` with the
    /// gateway address, `vxlan0` with the VNI. Calling it again with the same
    /// config changes nothing; with another VNI or gateway it converges.
    pub async fn ensure_network(&self, net: &NetworkConfig) -> Result<(), OverlayError> {
        check_id("network id", &net.id)?;
        if net.vni == 0 || net.vni > 0x00ff_ffff {
            return Err(OverlayError::invalid(
                "VNI",
                &net.vni.to_string(),
                "must be 1..=16777215",
            ));
        }
        let (subnet, prefix) = parse_cidr("subnet", &net.subnet)?;
        let gateway = parse_ip("gateway", &net.gateway)?;
        if !addr::contains(subnet, prefix, gateway) {
            return Err(OverlayError::invalid(
                "gateway",
                &net.gateway,
                format!("not in {}", net.subnet),
            ));
        }
        if let Some(ip) = net.encrypted_local_ip {
            if !addr::contains(TUNNEL_POOL.0, TUNNEL_POOL.1, ip) {
                return Err(OverlayError::invalid(
                    "tunnel address",
                    &ip.to_string(),
                    format!(
                        "network {} is encrypted: its VXLAN source must be the node's tunnel address, in {}/{}",
                        net.id, TUNNEL_POOL.0, TUNNEL_POOL.1
                    ),
                ));
            }
        }
        let mtu = match net.encrypted_local_ip {
            Some(_) => ENCRYPTED_OVERLAY_MTU,
            None => OVERLAY_MTU,
        };
        let _guard = self.lock.lock().await;
        let path = self.network_netns_path(&net.id);
        let created = netns::create_at(&path).map_err(|e| {
            OverlayError::io(
                format!("create the sandbox namespace {}", path.display()),
                e,
            )
        })?;
        let sandbox_fd = Self::open_ns(&path)?;
        let host = Netlink::open(self.host_ns.as_fd(), "the host namespace")?;
        let sandbox = Netlink::open(
            sandbox_fd.as_fd(),
            format!("the sandbox of network {}", net.id),
        )?;
        let spec = SandboxSpec {
            network_id: net.id.clone(),
            vni: net.vni,
            gateway,
            prefix,
            internal: net.internal,
            local_ip: net.encrypted_local_ip.unwrap_or(self.local_ip),
            mtu,
        };
        // An encrypted VNI is guarded before its vxlan0 exists; a network
        // turning clear loses the guard first.
        self.guard_encrypted(&net.id, net.encrypted_local_ip.map(|_| net.vni))
            .await?;
        vxlan::ensure_sandbox(&host, &sandbox, sandbox_fd.as_fd(), &spec).await?;
        self.remember(
            &net.id,
            NetInfo {
                gateway,
                prefix,
                mtu,
            },
        );
        if created {
            tracing::info!(network = %net.id, vni = net.vni, subnet = %net.subnet, "overlay network sandbox created");
        }
        Ok(())
    }

    /// Delete a network's sandbox: every task veth in it (the task ends go
    /// with them), the node's leg on it (both ends), `vxlan0` (closing its UDP
    /// socket at once), `br0`, and the namespace. A network that is not there
    /// is fine.
    pub async fn remove_network(&self, network_id: &str) -> Result<(), OverlayError> {
        check_id("network id", network_id)?;
        let _guard = self.lock.lock().await;
        self.remove_network_locked(network_id).await
    }

    async fn remove_network_locked(&self, network_id: &str) -> Result<(), OverlayError> {
        let path = self.network_netns_path(network_id);
        if netns::is_live(&path) {
            let fd = Self::open_ns(&path)?;
            let nl = Netlink::open(fd.as_fd(), format!("the sandbox of network {network_id}"))?;
            let links = nl.links().await?;
            // Ports first, then the bridge.
            for link in links
                .iter()
                .filter(|l| l.name != BRIDGE && l.name != LOOPBACK)
            {
                nl.del(link.index, &link.name).await?;
            }
            for link in links.iter().filter(|l| l.name == BRIDGE) {
                nl.del(link.index, &link.name).await?;
            }
            tracing::info!(network = %network_id, "overlay network sandbox removed");
        }
        netns::remove_at(&path)
            .map_err(|e| OverlayError::io(format!("remove {}", path.display()), e))?;
        self.forget(network_id);
        self.guard_encrypted(network_id, None).await
    }

    /// Create a task's network namespace (with `lo` up, so 127.0.0.11 and any
    /// 127/8 address can be bound in it) and return its path for runc. An
    /// existing one is kept.
    pub async fn create_task_netns(&self, task_id: &str) -> Result<PathBuf, OverlayError> {
        check_id("task id", task_id)?;
        let _guard = self.lock.lock().await;
        let path = self.task_netns_path(task_id);
        netns::create_at(&path).map_err(|e| {
            OverlayError::io(
                format!(
                    "create the namespace of task {task_id} at {}",
                    path.display()
                ),
                e,
            )
        })?;
        let fd = Self::open_ns(&path)?;
        let nl = Netlink::open(fd.as_fd(), format!("the namespace of task {task_id}"))?;
        let lo = nl.must_link(LOOPBACK).await?;
        nl.up(&lo).await?;
        Ok(path)
    }

    /// What `attach` needs of a network: from `ensure_network`, or, after a
    /// restart, read back from the sandbox's bridge.
    async fn net_info(&self, network_id: &str, sandbox: &Netlink) -> Result<NetInfo, OverlayError> {
        if let Some(info) = self.remembered(network_id) {
            return Ok(info);
        }
        let bridge = sandbox
            .link(BRIDGE)
            .await?
            .ok_or_else(|| OverlayError::NoSuchNetwork(network_id.to_string()))?;
        let (gateway, prefix, _) = sandbox
            .ipv4_addrs(bridge.index)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| OverlayError::NoSuchNetwork(network_id.to_string()))?;
        let info = NetInfo {
            gateway,
            prefix,
            mtu: bridge.mtu.unwrap_or(OVERLAY_MTU),
        };
        self.remember(network_id, info);
        Ok(info)
    }

    /// Connect a task to a network: a veth pair with `eth<iface_index>` (MAC
    /// from the address, the address `ip_cidr`, the network's MTU: 1450, or
    /// 1370 when encrypted; up) in the task's
    /// namespace and its peer enslaved to the sandbox's `br0`. The task gets
    /// the connected route to the network's subnet and nothing else: no
    /// default route, whatever the network (a task's way out is the gateway
    /// bridge, [`Overlay::attach_gateway`]; a task on internal networks only
    /// has none). `ensure_network` and `create_task_netns` must have been
    /// called. Calling it again changes nothing.
    pub async fn attach(
        &self,
        task_id: &str,
        network_id: &str,
        ip_cidr: &str,
        iface_index: usize,
    ) -> Result<(), OverlayError> {
        check_id("task id", task_id)?;
        check_id("network id", network_id)?;
        let (ip, prefix) = parse_cidr("task address", ip_cidr)?;
        check_iface_index(iface_index)?;
        let _guard = self.lock.lock().await;
        let task_path = self.task_netns_path(task_id);
        if !netns::is_live(&task_path) {
            return Err(OverlayError::NoSuchTask(task_id.to_string()));
        }
        let sandbox_path = self.network_netns_path(network_id);
        if !netns::is_live(&sandbox_path) {
            return Err(OverlayError::NoSuchNetwork(network_id.to_string()));
        }
        let task_fd = Self::open_ns(&task_path)?;
        let sandbox_fd = Self::open_ns(&sandbox_path)?;
        let task = Netlink::open(task_fd.as_fd(), format!("the namespace of task {task_id}"))?;
        let sandbox = Netlink::open(
            sandbox_fd.as_fd(),
            format!("the sandbox of network {network_id}"),
        )?;
        let info = self.net_info(network_id, &sandbox).await?;
        if !addr::contains(info.gateway, info.prefix, ip) {
            return Err(OverlayError::invalid(
                "task address",
                ip_cidr,
                format!(
                    "not in the network's subnet {}/{}",
                    info.gateway, info.prefix
                ),
            ));
        }

        let eth = format!("eth{iface_index}");
        let peer = addr::sandbox_veth_name(task_id);
        let mac = mac_for(ip);
        let (inside, outside) = task
            .ensure_veth_pair(&eth, mac, &sandbox, &peer, sandbox_fd.as_fd(), info.mtu)
            .await?;
        task.set_mtu(&inside, info.mtu).await?;
        sandbox.set_mtu(&outside, info.mtu).await?;

        // The sandbox end: named after the task, in the bridge, up.
        let bridge = sandbox.must_link(BRIDGE).await?;
        let alias = addr::veth_alias(task_id);
        if outside.alias.as_deref() != Some(alias.as_str()) {
            sandbox
                .set(
                    &peer,
                    LinkUnspec::new_with_index(outside.index).alias(alias),
                )
                .await?;
        }
        if outside.controller != Some(bridge.index) {
            sandbox
                .set(
                    &peer,
                    LinkUnspec::new_with_index(outside.index).controller(bridge.index),
                )
                .await?;
        }
        sandbox.up(&outside).await?;

        // The task end: address, up.
        task.set_only_addr(&inside, ip, prefix).await?;
        task.up(&inside).await?;
        if let Some(lo) = task.link(LOOPBACK).await? {
            task.up(&lo).await?;
        }
        tracing::debug!(task = %task_id, network = %network_id, %ip, iface = %eth, "task attached");
        Ok(())
    }

    /// Delete a task's namespace: its veths first (which removes their
    /// sandbox and gateway-bridge ends at once, even if a process still holds
    /// the namespace), then the mount and the file; its gateway address is
    /// freed. A task that is not there is fine.
    pub async fn remove_task_netns(&self, task_id: &str) -> Result<(), OverlayError> {
        check_id("task id", task_id)?;
        let _guard = self.lock.lock().await;
        self.remove_task_locked(task_id).await
    }

    async fn remove_task_locked(&self, task_id: &str) -> Result<(), OverlayError> {
        let path = self.task_netns_path(task_id);
        if netns::is_live(&path) {
            let fd = Self::open_ns(&path)?;
            let nl = Netlink::open(fd.as_fd(), format!("the namespace of task {task_id}"))?;
            for link in nl.links().await? {
                if link.is(InfoKind::Veth) {
                    nl.del(link.index, &link.name).await?;
                }
            }
        }
        netns::remove_at(&path)
            .map_err(|e| OverlayError::io(format!("remove {}", path.display()), e))?;
        let node = Netlink::open(self.host_ns.as_fd(), NODE_NS)?;
        self.release_gateway(&node, task_id).await
    }

    /// Set the remote tasks of a network from the full list: static FDB
    /// entries (MAC -> node) and neighbour entries (IP -> MAC) on `vxlan0`;
    /// missing ones are added, stale ones deleted. Peers on this node
    /// (`node_ip` = the local address, or the VXLAN source of the network:
    /// our tunnel address on an encrypted network) are skipped.
    pub async fn set_peers(&self, network_id: &str, peers: &[Peer]) -> Result<(), OverlayError> {
        check_id("network id", network_id)?;
        let _guard = self.lock.lock().await;
        let path = self.network_netns_path(network_id);
        if !netns::is_live(&path) {
            return Err(OverlayError::NoSuchNetwork(network_id.to_string()));
        }
        let fd = Self::open_ns(&path)?;
        let nl = Netlink::open(fd.as_fd(), format!("the sandbox of network {network_id}"))?;
        let vxlan = nl
            .link(VXLAN)
            .await?
            .ok_or_else(|| OverlayError::NoSuchNetwork(network_id.to_string()))?;
        let want: Vec<fdb::Entry> = peers
            .iter()
            .filter(|p| p.node_ip != self.local_ip && Some(p.node_ip) != vxlan.vxlan_local)
            .map(|p| fdb::Entry {
                ip: p.ip,
                mac: p.mac,
                node_ip: p.node_ip,
            })
            .collect();
        fdb::sync(&nl, vxlan.index, &want).await
    }

    /// Remove what a previous run left behind: sandboxes of networks not in
    /// `keep_networks` (with the node's legs on them), namespaces of tasks not
    /// in `keep_tasks`, in the kept sandboxes the veths of tasks not in
    /// `keep_tasks`, and in the node's namespace the gateway veths (and
    /// addresses) of tasks not in `keep_tasks`. Call it once at start-up with
    /// what the dispatcher says should exist (and whenever the agent wants a
    /// sweep). The gateway bridge itself stays ([`Overlay::remove_everything`]
    /// removes it).
    pub async fn cleanup(
        &self,
        keep_networks: &[String],
        keep_tasks: &[String],
    ) -> Result<(), OverlayError> {
        let _guard = self.lock.lock().await;
        self.cleanup_locked(keep_networks, keep_tasks).await
    }

    /// Leaving the swarm: everything [`Overlay::cleanup`] removes with empty
    /// lists (every sandbox, task namespace and leg), then the gateway bridge
    /// and table `ip rswarm_gw`. Forwarding is left on. The other nftables
    /// tables (VIPs, mesh) are the caller's: [`crate::nft::remove_all`].
    pub async fn remove_everything(&self) -> Result<(), OverlayError> {
        let _guard = self.lock.lock().await;
        let mut first_error = self.cleanup_locked(&[], &[]).await.err();
        let node = Netlink::open(self.host_ns.as_fd(), NODE_NS)?;
        if let Err(e) = self.prune_host_legs(&node, &[]).await {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.remove_gateway_bridge(&node).await {
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn cleanup_locked(
        &self,
        keep_networks: &[String],
        keep_tasks: &[String],
    ) -> Result<(), OverlayError> {
        let entries = std::fs::read_dir(&self.state_dir)
            .map_err(|e| OverlayError::io(format!("read {}", self.state_dir.display()), e))?;
        let mut networks = Vec::new();
        let mut tasks = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| OverlayError::io(format!("read {}", self.state_dir.display()), e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(true) {
                continue;
            }
            match name.strip_prefix(SANDBOX_PREFIX) {
                Some(net) if check_id("network id", net).is_ok() => networks.push(net.to_string()),
                Some(_) => {}
                None if check_id("task id", &name).is_ok() => tasks.push(name),
                None => {}
            }
        }
        let mut first_error = None;
        for net in &networks {
            if keep_networks.contains(net) {
                continue;
            }
            tracing::info!(network = %net, "removing leftover overlay network sandbox");
            if let Err(e) = self.remove_network_locked(net).await {
                tracing::warn!(network = %net, error = %e, "cannot remove leftover sandbox");
                first_error.get_or_insert(e);
            }
        }
        for task in &tasks {
            if keep_tasks.contains(task) {
                continue;
            }
            tracing::info!(task = %task, "removing leftover task network namespace");
            if let Err(e) = self.remove_task_locked(task).await {
                tracing::warn!(task = %task, error = %e, "cannot remove leftover task namespace");
                first_error.get_or_insert(e);
            }
        }
        for net in networks.iter().filter(|n| keep_networks.contains(n)) {
            if let Err(e) = self.prune_sandbox_veths(net, keep_tasks).await {
                tracing::warn!(network = %net, error = %e, "cannot prune veths of leftover tasks");
                first_error.get_or_insert(e);
            }
        }
        match Netlink::open(self.host_ns.as_fd(), NODE_NS) {
            Ok(node) => {
                if let Err(e) = self.prune_gateways(&node, keep_tasks).await {
                    tracing::warn!(error = %e, "cannot prune gateway veths of leftover tasks");
                    first_error.get_or_insert(e);
                }
                if let Err(e) = self.prune_host_legs(&node, keep_networks).await {
                    tracing::warn!(error = %e, "cannot prune the node's legs on leftover networks");
                    first_error.get_or_insert(e);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Delete the veths in a sandbox that belong to tasks not in `keep_tasks`
    /// (the node's leg, `hostleg0`, is not a task's and stays).
    async fn prune_sandbox_veths(
        &self,
        network_id: &str,
        keep_tasks: &[String],
    ) -> Result<(), OverlayError> {
        let path = self.network_netns_path(network_id);
        if !netns::is_live(&path) {
            return Ok(());
        }
        let fd = Self::open_ns(&path)?;
        let nl = Netlink::open(fd.as_fd(), format!("the sandbox of network {network_id}"))?;
        for link in nl.links().await? {
            if !link.is(InfoKind::Veth) || link.name == HOST_LEG_PEER {
                continue;
            }
            let owner = link.alias.as_deref().and_then(addr::alias_task);
            if owner.is_some_and(|t| keep_tasks.iter().any(|k| k == t)) {
                continue;
            }
            tracing::info!(network = %network_id, device = %link.name, task = ?owner, "removing leftover task veth");
            nl.del(link.index, &link.name).await?;
        }
        Ok(())
    }

    /// Run `f` on a thread switched into the task's network namespace and
    /// return its result: sockets it creates (the DNS server's at
    /// 127.0.0.11, a netlink or nftables socket) stay in that namespace. The
    /// caller's thread never changes namespace; `f` runs on a short-lived
    /// helper thread that has the caller's tokio runtime entered, so it may
    /// turn std sockets into tokio ones (`from_std`, after
    /// `set_nonblocking(true)`). It blocks the caller until `f` returns.
    pub fn in_task_netns<T: Send>(
        &self,
        task_id: &str,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, OverlayError> {
        check_id("task id", task_id)?;
        let path = self.task_netns_path(task_id);
        if !netns::is_live(&path) {
            return Err(OverlayError::NoSuchTask(task_id.to_string()));
        }
        let fd = Self::open_ns(&path)?;
        netns::run_in(fd.as_fd(), f)
            .map_err(|e| OverlayError::io(format!("enter the namespace of task {task_id}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The agent spawns these on a multi-threaded runtime: every future must
    /// be `Send` (checked at compile time; never polled).
    #[allow(dead_code)]
    async fn futures_are_send(ov: &Overlay, net: &NetworkConfig) {
        assert_send(&Overlay::new(
            Path::new("/nonexistent"),
            Ipv4Addr::LOCALHOST,
        ));
        assert_send(&ov.ensure_network(net));
        assert_send(&ov.remove_network("n"));
        assert_send(&ov.create_task_netns("t"));
        assert_send(&ov.attach("t", "n", "10.0.0.2/24", 0));
        assert_send(&ov.remove_task_netns("t"));
        assert_send(&ov.set_peers("n", &[]));
        assert_send(&ov.cleanup(&[], &[]));
        assert_send(&ov.attach_gateway("t", 1));
        assert_send(&ov.attach_host("n", "10.0.0.7/24"));
        assert_send(&ov.detach_host("n"));
        assert_send(&ov.remove_everything());
    }

    #[test]
    fn overlay_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Overlay>();
        check::<OverlayError>();
    }
}
