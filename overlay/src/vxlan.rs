//! A network's sandbox: the bridge `br0` and the VXLAN device `vxlan0` inside
//! the network's own namespace.
//!
//! `vxlan0` is created with a netlink request sent on a socket in the **host**
//! namespace that carries `IFLA_NET_NS_FD` = the sandbox: the kernel creates
//! the device in the sandbox but keeps its UDP socket (port 4789) in the
//! namespace the request came from (the VXLAN driver's "source net"), so the
//! encapsulated packets use the host's addresses and routes while the device
//! is only visible in the sandbox. This is the same end state as Docker's
//! "create in the host, then move", in one step, so a crash can never leave a
//! VXLAN device behind in the host namespace.
//!
//! For an encrypted network `local` is the node's WireGuard tunnel address
//! instead of its advertise address: the remotes in the FDB are the other
//! nodes' tunnel addresses, routed through the WireGuard interface, so the
//! network's VXLAN packets cross the wire only inside WireGuard (see
//! [`crate::wireguard`]); its devices have the MTU
//! [`crate::wireguard::ENCRYPTED_OVERLAY_MTU`] (1370) instead of 1450.
//!
//! `vxlan0` has `learning off` (forwarding entries come only from
//! [`crate::fdb`]) and `proxy on` (it answers ARP requests from the bridge out
//! of its static neighbour table, so no ARP broadcast crosses the wire: a
//! request it cannot answer is dropped). With no all-zeros FDB entry, broadcast
//! and unknown-unicast frames are not flooded to other nodes either.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::link::InfoKind;
use rtnetlink::{LinkBridge, LinkUnspec, LinkVxlan};

use crate::addr::mac_for;
use crate::error::OverlayError;
use crate::links::{Netlink, LOOPBACK};

/// The bridge in every sandbox.
pub(crate) const BRIDGE: &str = "br0";
/// The VXLAN device in every sandbox.
pub(crate) const VXLAN: &str = "vxlan0";
/// IANA's VXLAN port, as Docker uses.
pub const VXLAN_PORT: u16 = 4789;
/// MTU of the overlay devices: a 1500-byte underlay minus the 50 bytes of
/// VXLAN over IPv4 (outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8), like Docker.
pub const OVERLAY_MTU: u32 = 1450;

/// What a sandbox is built from.
pub(crate) struct SandboxSpec {
    pub(crate) network_id: String,
    pub(crate) vni: u32,
    pub(crate) gateway: Ipv4Addr,
    pub(crate) prefix: u8,
    pub(crate) internal: bool,
    /// The VXLAN source: the node's address, or for an encrypted network
    /// its tunnel address (so the packets are routed into WireGuard).
    pub(crate) local_ip: Ipv4Addr,
    /// [`OVERLAY_MTU`], or [`crate::wireguard::ENCRYPTED_OVERLAY_MTU`].
    pub(crate) mtu: u32,
}

/// The alias written on `br0`: the network, its VNI and whether it is
/// internal, for whoever reads `ip -d link` in the sandbox.
pub(crate) fn bridge_alias(spec: &SandboxSpec) -> String {
    format!(
        "rswarm network={} vni={} internal={}",
        spec.network_id, spec.vni, spec.internal as u8
    )
}

/// Make the sandbox match `spec`: `lo` up, `br0` (gateway address, MAC from
/// the gateway, the network's MTU) up, `vxlan0` (right VNI, port, local
/// address, MTU) enslaved and up. Creates what is missing, replaces a
/// `vxlan0` with other settings (a network turning encrypted or clear gets a
/// new one, with the other source address), and leaves correct devices alone.
pub(crate) async fn ensure_sandbox(
    host: &Netlink,
    sandbox: &Netlink,
    sandbox_fd: BorrowedFd<'_>,
    spec: &SandboxSpec,
) -> Result<(), OverlayError> {
    if let Some(lo) = sandbox.link(LOOPBACK).await? {
        sandbox.up(&lo).await?;
    }

    // The bridge.
    let bridge = match sandbox.link(BRIDGE).await? {
        Some(l) if l.is(InfoKind::Bridge) => l,
        other => {
            if let Some(l) = other {
                sandbox.del(l.index, BRIDGE).await?;
            }
            let msg = LinkBridge::new(BRIDGE)
                .mtu(spec.mtu)
                .address(mac_for(spec.gateway).to_vec())
                .build();
            sandbox.add(BRIDGE, msg).await?;
            sandbox.must_link(BRIDGE).await?
        }
    };
    let mac = mac_for(spec.gateway);
    if bridge.mac.as_deref() != Some(&mac[..]) {
        sandbox
            .set(
                BRIDGE,
                LinkUnspec::new_with_index(bridge.index).address(mac.to_vec()),
            )
            .await?;
    }
    let alias = bridge_alias(spec);
    if bridge.alias.as_deref() != Some(alias.as_str()) {
        sandbox
            .set(
                BRIDGE,
                LinkUnspec::new_with_index(bridge.index).alias(alias),
            )
            .await?;
    }
    sandbox
        .set_only_addr(&bridge, spec.gateway, spec.prefix)
        .await?;
    sandbox.up(&bridge).await?;

    // The VXLAN device: its settings cannot all be changed in place, so a
    // mismatching one is replaced.
    let vxlan = match sandbox.link(VXLAN).await? {
        Some(l)
            if l.is(InfoKind::Vxlan)
                && l.vni == Some(spec.vni)
                && l.vxlan_local == Some(spec.local_ip) =>
        {
            l
        }
        other => {
            if let Some(l) = other {
                sandbox.del(l.index, VXLAN).await?;
            }
            let msg = LinkVxlan::new(VXLAN, spec.vni)
                .port(VXLAN_PORT)
                .local(spec.local_ip)
                .learning(false)
                .proxy(true)
                .l2miss(false)
                .l3miss(false)
                .mtu(spec.mtu)
                .setns_by_fd(sandbox_fd.as_raw_fd())
                .build();
            host.add(
                &format!("{VXLAN} (VNI {}) for network {}", spec.vni, spec.network_id),
                msg,
            )
            .await?;
            sandbox.must_link(VXLAN).await?
        }
    };
    sandbox.set_mtu(&vxlan, spec.mtu).await?;
    // The bridge's own MTU last, once its VXLAN port has the new one.
    sandbox.set_mtu(&bridge, spec.mtu).await?;
    if vxlan.controller != Some(bridge.index) {
        sandbox
            .set(
                VXLAN,
                LinkUnspec::new_with_index(vxlan.index).controller(bridge.index),
            )
            .await?;
    }
    sandbox.up(&vxlan).await?;
    Ok(())
}
