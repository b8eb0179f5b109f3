//! Remote tasks of a network: static VXLAN forwarding entries and static
//! neighbour entries on `vxlan0`, reconciled from a full list.
//!
//! For every remote task (IP, MAC, node):
//! * an FDB entry on `vxlan0`, `MAC dst NODE self permanent` (what
//!   `bridge fdb add` makes): frames for that MAC are encapsulated to that node;
//! * a neighbour entry on `vxlan0`, `IP lladdr MAC nud permanent`: with the
//!   device's ARP proxy on, an ARP request from a local task for that IP is
//!   answered by the local `vxlan0` and never leaves the node.
//!
//! [`sync`] reads what the kernel has, adds the missing entries, replaces the
//! changed ones (a task's MAC moved to another node) and deletes the stale
//! ones, so it can be called with the dispatcher's full list after every
//! change and after a restart. Entries whose node is the local node are
//! ignored: local tasks are reached over the bridge.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::AddressFamily;

use crate::error::{errno, OverlayError};
use crate::links::Netlink;

/// A remote task as the kernel tables need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) ip: Ipv4Addr,
    pub(crate) mac: [u8; 6],
    pub(crate) node_ip: Ipv4Addr,
}

fn mac_of(msg: &NeighbourMessage) -> Option<[u8; 6]> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
            let mut m = [0u8; 6];
            m.copy_from_slice(l);
            Some(m)
        }
        _ => None,
    })
}

/// The destination of an entry: the IP of a neighbour, the remote node of a
/// VXLAN FDB entry (in an `AF_BRIDGE` message the address is not decoded by
/// family, so four raw bytes are an IPv4 address).
fn dst_of(msg: &NeighbourMessage) -> Option<Ipv4Addr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
            Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        _ => None,
    })
}

/// The VXLAN FDB entries of `vxlan`: MAC -> remote node addresses.
async fn fdb_entries(nl: &Netlink, vxlan: u32) -> Result<Vec<NeighbourMessage>, OverlayError> {
    let msgs: Vec<NeighbourMessage> = nl
        .handle()
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl.error("list FDB entries", e))?;
    Ok(msgs
        .into_iter()
        .filter(|m| {
            m.header.ifindex == vxlan
                && m.header.flags.contains(NeighbourFlags::Own)
                && !m.header.flags.contains(NeighbourFlags::Controller)
                && dst_of(m).is_some()
        })
        .collect())
}

/// The IPv4 neighbour entries of `vxlan`.
async fn neigh_entries(nl: &Netlink, vxlan: u32) -> Result<Vec<NeighbourMessage>, OverlayError> {
    let msgs: Vec<NeighbourMessage> = nl
        .handle()
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet)
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl.error("list neighbours", e))?;
    Ok(msgs
        .into_iter()
        .filter(|m| m.header.ifindex == vxlan)
        .collect())
}

fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn del_entry(
    nl: &Netlink,
    dumped: NeighbourMessage,
    what: String,
) -> Result<(), OverlayError> {
    // Only the keys: header, destination and (for FDB entries) the MAC.
    let mut msg = NeighbourMessage::default();
    msg.header = dumped.header;
    msg.attributes = dumped
        .attributes
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                NeighbourAttribute::Destination(_) | NeighbourAttribute::LinkLayerAddress(_)
            )
        })
        .collect();
    match nl.handle().neighbours().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if matches!(errno(&e), Some(libc::ENOENT) | Some(libc::ENODEV)) => Ok(()),
        Err(e) => Err(nl.error(format_args!("delete {what}"), e)),
    }
}

/// Make the FDB and neighbour entries of `vxlan` (an ifindex in the sandbox
/// reached by `nl`) exactly `want`.
pub(crate) async fn sync(nl: &Netlink, vxlan: u32, want: &[Entry]) -> Result<(), OverlayError> {
    // Desired state; when the list names an IP or MAC twice the last one wins.
    let want_fdb: BTreeMap<[u8; 6], Ipv4Addr> = want.iter().map(|e| (e.mac, e.node_ip)).collect();
    let want_neigh: BTreeMap<Ipv4Addr, [u8; 6]> = want.iter().map(|e| (e.ip, e.mac)).collect();

    // FDB: MAC -> node.
    let mut have_fdb: BTreeMap<[u8; 6], BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for msg in fdb_entries(nl, vxlan).await? {
        let (Some(mac), Some(dst)) = (mac_of(&msg), dst_of(&msg)) else {
            continue;
        };
        let keep = want_fdb.get(&mac) == Some(&dst);
        if keep && msg.header.state == NeighbourState::Permanent {
            have_fdb.entry(mac).or_default().insert(dst);
        } else {
            del_entry(nl, msg, format!("FDB entry {} dst {dst}", fmt_mac(&mac))).await?;
        }
    }
    for (mac, node) in &want_fdb {
        if have_fdb.get(mac).is_some_and(|s| s.contains(node)) {
            continue;
        }
        nl.handle()
            .neighbours()
            .add_bridge(vxlan, mac)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .destination(IpAddr::V4(*node))
            .replace()
            .execute()
            .await
            .map_err(|e| nl.error(format_args!("add FDB entry {} dst {node}", fmt_mac(mac)), e))?;
    }

    // Neighbours: IP -> MAC.
    let mut have_neigh: BTreeMap<Ipv4Addr, [u8; 6]> = BTreeMap::new();
    for msg in neigh_entries(nl, vxlan).await? {
        let Some(ip) = dst_of(&msg) else { continue };
        let mac = mac_of(&msg);
        if mac.is_some()
            && want_neigh.get(&ip) == mac.as_ref()
            && msg.header.state == NeighbourState::Permanent
        {
            if let Some(mac) = mac {
                have_neigh.insert(ip, mac);
            }
        } else {
            del_entry(nl, msg, format!("neighbour {ip}")).await?;
        }
    }
    for (ip, mac) in &want_neigh {
        if have_neigh.get(ip) == Some(mac) {
            continue;
        }
        nl.handle()
            .neighbours()
            .add(vxlan, IpAddr::V4(*ip))
            .link_layer_address(mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                nl.error(
                    format_args!("add neighbour {ip} lladdr {}", fmt_mac(mac)),
                    e,
                )
            })?;
    }
    Ok(())
}
