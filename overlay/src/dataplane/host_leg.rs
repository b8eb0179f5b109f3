//! The node's own leg on an overlay network (for the ingress routing mesh):
//! a veth pair from the node's namespace into the network's sandbox.
//!
//! ```text
//!  node namespace (the daemon's)                              sandbox "1-<net>"
//!  rswi<hash> 10.0.0.7/24 (02:42:0a:00:00:07, the network's MTU) === hostleg0 --(port)-- br0 -- vxlan0 ... other nodes
//!  10.0.0.0/24 dev rswi<hash>  (connected route)
//! ```
//!
//! The node end carries the node's address on the network (from the
//! allocator) and a MAC derived from it like a task's ([`mac_for`]), so other
//! nodes reach it through the same static FDB and neighbour entries as a
//! task (give it to their [`Overlay::set_peers`] with this node's address).
//! The node then reaches every task of the network, local or remote, through
//! its connected route, and the routing mesh (see [`crate::nft`]) can DNAT
//! published ports to them and masquerade behind this address. Forwarding is
//! switched on in the node's namespace (the mesh forwards).
//!
//! Both ends carry the alias `rswarm host-leg network=<id>`; the sandbox end
//! is always `hostleg0` (one leg per network). The pair goes with the network
//! ([`Overlay::remove_network`]: deleting the sandbox end deletes the node
//! end) or alone ([`Overlay::detach_host`]).

use std::os::fd::AsFd;

use netlink_packet_route::link::InfoKind;
use rtnetlink::LinkUnspec;

use super::gateway::ensure_ip_forward;
use super::{Overlay, NODE_NS};
use crate::addr::{self, check_id, mac_for, parse_cidr, HOST_LEG_PEER, HOST_LEG_PREFIX};
use crate::error::OverlayError;
use crate::links::Netlink;
use crate::netns;
use crate::vxlan::BRIDGE;

impl Overlay {
    /// The node's interface on a network made by [`Overlay::attach_host`]:
    /// `rswi` and 11 hex digits of a hash of the network ID.
    pub fn host_leg_name(network_id: &str) -> String {
        addr::host_leg_name(network_id)
    }

    /// Give the node itself an address on a network: a veth pair whose node
    /// end (returned, `rswi<hash>`) carries `ip_cidr` (e.g. `10.0.0.7/24`,
    /// the network's MTU, MAC [`mac_for`] the address, up) and whose other end is a
    /// port of the network's `br0`. The node gets a connected route to the
    /// network's subnet through it; `net.ipv4.ip_forward` is set to 1.
    ///
    /// `ensure_network` must have been called. Calling it again with the same
    /// address changes nothing; with another address the pair is replaced.
    pub async fn attach_host(
        &self,
        network_id: &str,
        ip_cidr: &str,
    ) -> Result<String, OverlayError> {
        check_id("network id", network_id)?;
        let (ip, prefix) = parse_cidr("node address", ip_cidr)?;
        let _guard = self.lock.lock().await;
        let sandbox_path = self.network_netns_path(network_id);
        if !netns::is_live(&sandbox_path) {
            return Err(OverlayError::NoSuchNetwork(network_id.to_string()));
        }
        let sandbox_fd = Self::open_ns(&sandbox_path)?;
        let sandbox = Netlink::open(
            sandbox_fd.as_fd(),
            format!("the sandbox of network {network_id}"),
        )?;
        let info = self.net_info(network_id, &sandbox).await?;
        if !addr::contains(info.gateway, info.prefix, ip) {
            return Err(OverlayError::invalid(
                "node address",
                ip_cidr,
                format!(
                    "not in the network's subnet {}/{}",
                    info.gateway, info.prefix
                ),
            ));
        }
        if ip == info.gateway {
            return Err(OverlayError::invalid(
                "node address",
                ip_cidr,
                "is the network's gateway address",
            ));
        }
        let node = Netlink::open(self.host_ns.as_fd(), NODE_NS)?;

        let name = addr::host_leg_name(network_id);
        let mac = mac_for(ip);
        let existed = node.link(&name).await?.is_some();
        let (outside, inside) = node
            .ensure_veth_pair(
                &name,
                mac,
                &sandbox,
                HOST_LEG_PEER,
                sandbox_fd.as_fd(),
                info.mtu,
            )
            .await?;
        node.set_mtu(&outside, info.mtu).await?;
        sandbox.set_mtu(&inside, info.mtu).await?;
        if !existed {
            tracing::info!(network = %network_id, device = %name, %ip, "node attached to the network");
        }
        let alias = addr::host_leg_alias(network_id);

        // The sandbox end: in the bridge, up.
        let bridge = sandbox.must_link(BRIDGE).await?;
        if inside.alias.as_deref() != Some(alias.as_str()) {
            sandbox
                .set(
                    HOST_LEG_PEER,
                    LinkUnspec::new_with_index(inside.index).alias(alias.clone()),
                )
                .await?;
        }
        if inside.controller != Some(bridge.index) {
            sandbox
                .set(
                    HOST_LEG_PEER,
                    LinkUnspec::new_with_index(inside.index).controller(bridge.index),
                )
                .await?;
        }
        sandbox.up(&inside).await?;

        // The node end: address, up.
        if outside.alias.as_deref() != Some(alias.as_str()) {
            node.set(
                &name,
                LinkUnspec::new_with_index(outside.index).alias(alias),
            )
            .await?;
        }
        node.set_only_addr(&outside, ip, prefix).await?;
        node.up(&outside).await?;
        ensure_ip_forward(self.host_ns.as_fd())?;
        Ok(name)
    }

    /// Remove the node's leg on a network (both ends). A leg that is not
    /// there is fine; the network itself is left alone.
    pub async fn detach_host(&self, network_id: &str) -> Result<(), OverlayError> {
        check_id("network id", network_id)?;
        let _guard = self.lock.lock().await;
        let node = Netlink::open(self.host_ns.as_fd(), NODE_NS)?;
        let name = addr::host_leg_name(network_id);
        if let Some(link) = node.link(&name).await? {
            if link.is(InfoKind::Veth) {
                node.del(link.index, &name).await?;
                tracing::info!(network = %network_id, device = %name, "node detached from the network");
            }
        }
        Ok(())
    }

    /// Delete the node's legs on networks not in `keep_networks` (and
    /// half-made ones that name no network).
    pub(super) async fn prune_host_legs(
        &self,
        node: &Netlink,
        keep_networks: &[String],
    ) -> Result<(), OverlayError> {
        for link in node.links().await? {
            if !link.is(InfoKind::Veth) {
                continue;
            }
            let network = link.alias.as_deref().and_then(addr::alias_host_leg);
            let ours = network.is_some()
                || (link.name.starts_with(HOST_LEG_PREFIX) && link.name.len() == 15);
            if !ours || network.is_some_and(|n| keep_networks.iter().any(|k| k == n)) {
                continue;
            }
            tracing::info!(device = %link.name, network = ?network, "removing the node's leg on a network");
            node.del(link.index, &link.name).await?;
        }
        Ok(())
    }
}
