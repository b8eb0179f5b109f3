//! The gateway bridge (Docker's `docker_gwbridge`): the tasks' way out of the
//! node, and the node's local way in to them (host-mode published ports).
//!
//! ```text
//!  node namespace (the daemon's)                                   task namespace
//!  rswarm_gwbridge 172.18.0.1/16 (02:42:ac:12:00:01, MTU 1500)
//!     +-- rswg<hash> (isolated port, alias "rswarm gateway task=<id> ip=<addr>") === eth<N> 172.18.x.y/16 (02:42:ac:12:x:y)
//!                                                                                  default via 172.18.0.1
//!  net.ipv4.ip_forward = 1
//!  table ip rswarm_gw { chain postrouting { type nat hook postrouting priority 100;
//!      ip saddr 172.18.0.0/16 oifname != "rswarm_gwbridge" masquerade }
//!    chain forward { type filter hook forward priority 0;
//!      iifname "rswarm_gwbridge" oifname "rswarm_gwbridge" drop } }
//! ```
//!
//! * **One bridge per node**, in the namespace the [`Overlay`] was created
//!   in, made on the first [`Overlay::attach_gateway`]. Its MAC is set
//!   explicitly (derived from 172.18.0.1) so that it does not follow its
//!   ports as they come and go (which would leave stale ARP entries in the
//!   tasks).
//! * **Egress**: forwarding is switched on in the node's namespace and what
//!   the tasks send anywhere but back onto the bridge is masqueraded behind
//!   the node's address on the way out (table `ip rswarm_gw`, replaced
//!   atomically; see [`crate::nft`]). Nobody else's table is touched.
//! * **No inter-task traffic** over the bridge (Docker's `enable_icc=false`
//!   on `docker_gwbridge`): every task port is a bridge port with
//!   `isolated on`, so frames pass between a task and the bridge itself
//!   (172.18.0.1, the node) but never between two tasks. A task's ARP request
//!   for another task's 172.18 address reaches nobody. Tasks meet on overlay
//!   networks instead. A task able to add routes (`CAP_NET_ADMIN`) that
//!   sends to another task's address *via* 172.18.0.1 is stopped by the
//!   `forward` chain (Docker's `-i docker_gwbridge -o docker_gwbridge -j
//!   DROP`).
//! * **Addresses** are node-local: 172.18.0.2 to 172.18.255.254 (never the
//!   network, the bridge's or the broadcast address), handed out by a cursor
//!   that moves on (a freed address is not given again until the cursor comes
//!   round), one per task, freed when the task's namespace is removed. The
//!   task end's MAC is derived from its address ([`mac_for`]).
//! * **Live restore**: the address is written into the alias of the node end
//!   *before* it is put on the task end, and [`recover`] (called by
//!   [`Overlay::new`]) reads every such alias back from the node's namespace.
//!   So a restarted daemon knows every address in use (even of tasks whose
//!   namespace file is gone but whose veth is still held), hands none out
//!   twice, and [`Overlay::attach_gateway`] for an attached task returns its
//!   existing address and changes nothing.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use netlink_packet_route::link::InfoKind;
use rtnetlink::{LinkBridge, LinkUnspec};

use super::{Overlay, NODE_NS};
use crate::addr::{self, check_id, check_iface_index, mac_for, GATEWAY_VETH_PREFIX};
use crate::error::OverlayError;
use crate::links::{Link, Netlink, LOOPBACK};
use crate::{netns, nft};

/// The gateway bridge in the node's namespace (Docker's `docker_gwbridge`).
pub const GATEWAY_BRIDGE: &str = "rswarm_gwbridge";
/// The bridge's address: the tasks' default gateway, the node as the tasks
/// see it.
pub const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);
/// The gateway bridge's subnet (with [`GATEWAY_PREFIX`]).
pub const GATEWAY_SUBNET: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 0);
/// The prefix length of [`GATEWAY_SUBNET`].
pub const GATEWAY_PREFIX: u8 = 16;
/// MTU of the bridge and of the tasks' veths on it (no encapsulation here).
pub const GATEWAY_MTU: u32 = 1500;

/// The first address given to a task, and how many there are
/// (`.2` to the last address before the broadcast one).
fn range() -> (u32, u32) {
    let host_bits = 32 - u32::from(GATEWAY_PREFIX);
    let base = GATEWAY_SUBNET.to_bits();
    let size = 1u32 << host_bits;
    (base + 2, size - 3)
}

/// The node-local addresses of the gateway bridge: which task has which.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    by_task: HashMap<String, Ipv4Addr>,
    owner: HashMap<Ipv4Addr, String>,
    /// Offset (from the first address) where the next search starts.
    cursor: u32,
}

impl Pool {
    /// The task's address, if it has one.
    pub(crate) fn get(&self, task_id: &str) -> Option<Ipv4Addr> {
        self.by_task.get(task_id).copied()
    }

    /// The task's address: the one it has, or the next free one.
    pub(crate) fn take(&mut self, task_id: &str) -> Result<Ipv4Addr, OverlayError> {
        if let Some(ip) = self.get(task_id) {
            return Ok(ip);
        }
        let (first, count) = range();
        for step in 0..count {
            let offset = (self.cursor + step) % count;
            let ip = Ipv4Addr::from_bits(first + offset);
            if self.owner.contains_key(&ip) {
                continue;
            }
            self.cursor = (offset + 1) % count;
            self.by_task.insert(task_id.to_string(), ip);
            self.owner.insert(ip, task_id.to_string());
            return Ok(ip);
        }
        Err(OverlayError::GatewayFull {
            task: task_id.to_string(),
            subnet: format!("{GATEWAY_SUBNET}/{GATEWAY_PREFIX}"),
            in_use: self.owner.len(),
        })
    }

    /// Record an address found in use (after a restart). Refused (with the
    /// reason) if it is not a task address of the bridge, or is already
    /// another task's.
    pub(crate) fn record(&mut self, task_id: &str, ip: Ipv4Addr) -> Result<(), String> {
        let (first, count) = range();
        let offset = ip.to_bits().wrapping_sub(first);
        if offset >= count {
            return Err(format!(
                "{ip} is not a task address of {GATEWAY_SUBNET}/{GATEWAY_PREFIX}"
            ));
        }
        if let Some(other) = self.owner.get(&ip) {
            if other != task_id {
                return Err(format!("{ip} is already task {other}'s"));
            }
        }
        if let Some(old) = self.by_task.insert(task_id.to_string(), ip) {
            if old != ip {
                self.owner.remove(&old);
            }
        }
        self.owner.insert(ip, task_id.to_string());
        self.cursor = self.cursor.max((offset + 1) % count);
        Ok(())
    }

    /// Give the task's address back.
    pub(crate) fn free(&mut self, task_id: &str) -> Option<Ipv4Addr> {
        let ip = self.by_task.remove(task_id)?;
        self.owner.remove(&ip);
        Some(ip)
    }

    /// The tasks holding an address.
    pub(crate) fn tasks(&self) -> Vec<String> {
        self.by_task.keys().cloned().collect()
    }

    /// How many addresses are taken.
    pub(crate) fn len(&self) -> usize {
        self.by_task.len()
    }
}

/// Read back the addresses in use from the aliases of the gateway veths in
/// the node's namespace (whatever bridge they are on, so a half-finished
/// attach is counted too).
pub(super) async fn recover(node: &Netlink) -> Result<Pool, OverlayError> {
    let mut pool = Pool::default();
    for link in node.links().await? {
        let Some((task, ip)) = link.alias.as_deref().and_then(addr::alias_gateway) else {
            continue;
        };
        if check_id("task id", task).is_err() {
            tracing::warn!(device = %link.name, task, "gateway veth names an invalid task id; ignored");
            continue;
        }
        if let Err(why) = pool.record(task, ip) {
            tracing::warn!(device = %link.name, task, %ip, "gateway address not taken over: {why}");
        }
    }
    if pool.len() > 0 {
        tracing::info!(
            in_use = pool.len(),
            "gateway bridge addresses taken over from running tasks"
        );
    }
    Ok(pool)
}

/// `net.ipv4.ip_forward = 1` in the namespace `ns` (written only if it is
/// not already).
pub(super) fn ensure_ip_forward(ns: BorrowedFd<'_>) -> Result<(), OverlayError> {
    const KEY: &str = "/proc/sys/net/ipv4/ip_forward";
    netns::run_in(ns, || -> std::io::Result<()> {
        if std::fs::read_to_string(KEY)?.trim() != "1" {
            std::fs::write(KEY, "1")?;
            tracing::info!("net.ipv4.ip_forward set to 1 in the node's namespace");
        }
        Ok(())
    })
    .and_then(|r| r)
    .map_err(|e| OverlayError::io(format!("set {KEY} to 1 in {NODE_NS}"), e))
}

impl Overlay {
    /// The gateway bridge's address pool (a poisoned lock is taken over: the
    /// pool is consistent after every single call).
    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.gateways
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connect a task to the node's gateway bridge: a veth pair with
    /// `eth<iface_index>` in the task's namespace (an address from
    /// 172.18.0.0/16 allocated on this node, MAC from the address, MTU 1500,
    /// up) and its peer (`rswg<hash of the task id>`) an isolated port of
    /// `rswarm_gwbridge`; the task's default route goes via 172.18.0.1. The
    /// bridge, forwarding and the egress NAT are set up on first use. Returns
    /// the task's address on the bridge.
    ///
    /// Calling it again (also after a daemon restart) returns the same
    /// address and changes nothing; a broken or differently named pair is
    /// rebuilt with the same address. Give it the index after the task's
    /// overlay interfaces (`eth0..`), as Docker does. `create_task_netns` must
    /// have been called.
    pub async fn attach_gateway(
        &self,
        task_id: &str,
        iface_index: usize,
    ) -> Result<Ipv4Addr, OverlayError> {
        check_id("task id", task_id)?;
        check_iface_index(iface_index)?;
        let _guard = self.lock.lock().await;
        let task_path = self.task_netns_path(task_id);
        if !netns::is_live(&task_path) {
            return Err(OverlayError::NoSuchTask(task_id.to_string()));
        }
        let task_fd = Self::open_ns(&task_path)?;
        let task = Netlink::open(task_fd.as_fd(), format!("the namespace of task {task_id}"))?;
        let node = Netlink::open(self.host_ns.as_fd(), NODE_NS)?;
        let bridge = self.ensure_gateway_bridge(&node).await?;
        let ip = self.pool().take(task_id)?;

        let eth = format!("eth{iface_index}");
        let port = addr::gateway_veth_name(task_id);
        let mac = mac_for(ip);
        let (inside, outside) = task
            .ensure_veth_pair(&eth, mac, &node, &port, self.host_ns.as_fd(), GATEWAY_MTU)
            .await?;

        // The node end: the alias records the address before the task end
        // gets it (see the module docs), then the bridge, isolated, up.
        let alias = addr::gateway_alias(task_id, ip);
        if outside.alias.as_deref() != Some(alias.as_str()) {
            node.set(
                &port,
                LinkUnspec::new_with_index(outside.index).alias(alias),
            )
            .await?;
        }
        let enslaved = outside.controller != Some(bridge.index);
        if enslaved {
            node.set(
                &port,
                LinkUnspec::new_with_index(outside.index).controller(bridge.index),
            )
            .await?;
        }
        if enslaved || outside.isolated != Some(true) {
            node.set_isolated(&outside, true).await?;
        }
        node.up(&outside).await?;

        // The task end: address, up, default route via the node.
        task.set_only_addr(&inside, ip, GATEWAY_PREFIX).await?;
        task.up(&inside).await?;
        if let Some(lo) = task.link(LOOPBACK).await? {
            task.up(&lo).await?;
        }
        task.set_default_route(GATEWAY_ADDR, inside.index).await?;
        tracing::debug!(task = %task_id, %ip, iface = %eth, "task attached to the gateway bridge");
        Ok(ip)
    }

    /// The task's address on the gateway bridge, if it has one (also right
    /// after a restart, for tasks attached by the previous instance).
    pub fn gateway_addr(&self, task_id: &str) -> Option<Ipv4Addr> {
        self.pool().get(task_id)
    }

    /// Make the bridge exist as designed (address, MAC, up); on its creation
    /// and once per instance, also forwarding and the egress NAT.
    async fn ensure_gateway_bridge(&self, node: &Netlink) -> Result<Link, OverlayError> {
        let mac = mac_for(GATEWAY_ADDR);
        let mut created = false;
        let bridge = match node.link(GATEWAY_BRIDGE).await? {
            Some(l) if l.is(InfoKind::Bridge) => l,
            other => {
                if let Some(l) = other {
                    node.del(l.index, GATEWAY_BRIDGE).await?;
                }
                let msg = LinkBridge::new(GATEWAY_BRIDGE)
                    .mtu(GATEWAY_MTU)
                    .address(mac.to_vec())
                    .build();
                node.add(GATEWAY_BRIDGE, msg).await?;
                created = true;
                node.must_link(GATEWAY_BRIDGE).await?
            }
        };
        if bridge.mac.as_deref() != Some(&mac[..]) {
            node.set(
                GATEWAY_BRIDGE,
                LinkUnspec::new_with_index(bridge.index).address(mac.to_vec()),
            )
            .await?;
        }
        node.set_only_addr(&bridge, GATEWAY_ADDR, GATEWAY_PREFIX)
            .await?;
        node.up(&bridge).await?;
        if created || !self.gateway_ready.load(Ordering::SeqCst) {
            ensure_ip_forward(self.host_ns.as_fd())?;
            self.apply_gateway_nat().await?;
            self.gateway_ready.store(true, Ordering::SeqCst);
        }
        if created {
            tracing::info!(bridge = GATEWAY_BRIDGE, address = %GATEWAY_ADDR, "gateway bridge created");
        }
        Ok(bridge)
    }

    /// Run `f` with the path of the node's namespace on the blocking pool
    /// (`nft` is a process to wait for).
    pub(super) async fn in_node_ns_blocking<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce(&std::path::Path) -> Result<T, nft::NftError> + Send + 'static,
    ) -> Result<T, OverlayError> {
        let fd = self
            .host_ns
            .try_clone()
            .map_err(|e| OverlayError::io(format!("{what}: duplicate the namespace fd"), e))?;
        let res = tokio::task::spawn_blocking(move || {
            let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            let res = f(&path);
            drop(fd);
            res
        })
        .await
        .map_err(|e| OverlayError::io(what.to_string(), std::io::Error::other(e)))?;
        res.map_err(|e| OverlayError::nft(format!("{what} in {NODE_NS}"), e))
    }

    async fn apply_gateway_nat(&self) -> Result<(), OverlayError> {
        self.in_node_ns_blocking("apply the gateway bridge's egress NAT", |path| {
            nft::apply_gateway_nat(path, GATEWAY_SUBNET, GATEWAY_PREFIX, GATEWAY_BRIDGE)
        })
        .await
    }

    /// Delete the task's veth on the gateway bridge (if it is still there,
    /// e.g. its namespace is held by a process but its file is gone) and free
    /// its address.
    pub(super) async fn release_gateway(
        &self,
        node: &Netlink,
        task_id: &str,
    ) -> Result<(), OverlayError> {
        let port = addr::gateway_veth_name(task_id);
        if let Some(link) = node.link(&port).await? {
            let owner = link.alias.as_deref().and_then(addr::alias_gateway);
            if link.is(InfoKind::Veth) && owner.is_none_or(|(t, _)| t == task_id) {
                node.del(link.index, &port).await?;
            }
        }
        if let Some(ip) = self.pool().free(task_id) {
            tracing::debug!(task = %task_id, %ip, "gateway address freed");
        }
        Ok(())
    }

    /// Delete the gateway veths of tasks not in `keep_tasks` (and half-made
    /// ones that name no task), and free the addresses of tasks not kept.
    pub(super) async fn prune_gateways(
        &self,
        node: &Netlink,
        keep_tasks: &[String],
    ) -> Result<(), OverlayError> {
        let kept = |t: &str| keep_tasks.iter().any(|k| k == t);
        for link in node.links().await? {
            if !link.is(InfoKind::Veth) {
                continue;
            }
            let owner = link.alias.as_deref().and_then(addr::alias_gateway);
            let ours = owner.is_some()
                || (link.name.starts_with(GATEWAY_VETH_PREFIX) && link.name.len() == 15);
            if !ours || owner.is_some_and(|(t, _)| kept(t)) {
                continue;
            }
            tracing::info!(device = %link.name, task = ?owner.map(|(t, _)| t), "removing leftover gateway veth");
            node.del(link.index, &link.name).await?;
        }
        let mut pool = self.pool();
        for task in pool.tasks() {
            if !kept(&task) {
                pool.free(&task);
            }
        }
        Ok(())
    }

    /// Delete the gateway bridge (and any task veth left on it) and table
    /// `ip rswarm_gw`, and forget every address. `ip_forward` is left as it
    /// is (others may rely on it).
    pub(super) async fn remove_gateway_bridge(&self, node: &Netlink) -> Result<(), OverlayError> {
        self.prune_gateways(node, &[]).await?;
        if let Some(bridge) = node.link(GATEWAY_BRIDGE).await? {
            node.del(bridge.index, GATEWAY_BRIDGE).await?;
            tracing::info!(bridge = GATEWAY_BRIDGE, "gateway bridge removed");
        }
        self.in_node_ns_blocking("remove table ip rswarm_gw", nft::remove_gateway_nat)
            .await?;
        self.gateway_ready.store(false, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn addresses_skip_network_gateway_and_broadcast() {
        let (first, count) = range();
        assert_eq!(Ipv4Addr::from_bits(first), ip("172.18.0.2"));
        assert_eq!(Ipv4Addr::from_bits(first + count - 1), ip("172.18.255.254"));
        let mut pool = Pool::default();
        assert_eq!(pool.take("a").expect("a"), ip("172.18.0.2"));
        assert_eq!(pool.take("b").expect("b"), ip("172.18.0.3"));
        assert_eq!(pool.take("a").expect("a again"), ip("172.18.0.2"));
        assert!(pool.record("x", ip("172.18.0.1")).is_err());
        assert!(pool.record("x", ip("172.18.0.0")).is_err());
        assert!(pool.record("x", ip("172.18.255.255")).is_err());
        assert!(pool.record("x", ip("10.0.0.2")).is_err());
        assert!(pool.record("x", ip("172.18.0.3")).is_err(), "b's address");
    }

    #[test]
    fn freed_addresses_come_back_only_after_a_full_round() {
        let mut pool = Pool::default();
        let a = pool.take("a").expect("a");
        assert_eq!(pool.free("a"), Some(a));
        assert_eq!(pool.free("a"), None);
        let b = pool.take("b").expect("b");
        assert_ne!(a, b, "a freed address is not handed out again at once");
        assert_eq!(pool.get("a"), None);
        assert_eq!(pool.get("b"), Some(b));
    }

    #[test]
    fn recorded_addresses_are_never_handed_out() {
        let mut pool = Pool::default();
        pool.record("old1", ip("172.18.0.2")).expect("old1");
        pool.record("old2", ip("172.18.0.7")).expect("old2");
        pool.record("old2", ip("172.18.0.7")).expect("old2 twice");
        let fresh = pool.take("new").expect("new");
        assert_eq!(fresh, ip("172.18.0.8"), "after the highest in use");
        assert_eq!(pool.take("old2").expect("old2"), ip("172.18.0.7"));
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn a_full_pool_says_so() {
        let mut pool = Pool::default();
        let (_, count) = range();
        for i in 0..count {
            pool.take(&format!("t{i}")).expect("room");
        }
        let err = pool.take("one-more").expect_err("full");
        assert!(
            matches!(err, OverlayError::GatewayFull { in_use, .. } if in_use == count as usize),
            "{err}"
        );
        pool.free("t7");
        assert_eq!(pool.take("one-more").expect("freed"), ip("172.18.0.9"));
    }
}
