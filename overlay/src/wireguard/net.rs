//! The tunnel interface's place in its namespace, over route netlink: MTU,
//! the /32 tunnel address, link up, and the two routes of the tunnel pool
//! (`TUNNEL_POOL dev <iface>` and the `unreachable TUNNEL_POOL metric 4000`
//! fallback that keeps tunnel traffic from ever leaving in clear).

use std::net::Ipv4Addr;

use netlink_packet_route::route::{RouteScope, RouteType};
use rtnetlink::{LinkUnspec, RouteMessageBuilder};

use super::{TUNNEL_POOL, UNREACHABLE_METRIC, WIREGUARD_MTU};
use crate::error::{errno, OverlayError};
use crate::links::{Link, Netlink};

/// MTU, the only address `ip/32`, up, and the pool route through the link.
pub(super) async fn configure(nl: &Netlink, link: &Link, ip: Ipv4Addr) -> Result<(), OverlayError> {
    if link.mtu != Some(WIREGUARD_MTU) {
        nl.set(
            &link.name,
            LinkUnspec::new_with_index(link.index).mtu(WIREGUARD_MTU),
        )
        .await?;
    }
    nl.set_only_addr(link, ip, 32).await?;
    nl.up(link).await?;
    pool_route(nl, link).await?;
    unreachable_route(nl).await
}

/// `TUNNEL_POOL dev <link>` (replaced if it points elsewhere).
pub(super) async fn pool_route(nl: &Netlink, link: &Link) -> Result<(), OverlayError> {
    let msg = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(TUNNEL_POOL.0, TUNNEL_POOL.1)
        .output_interface(link.index)
        .scope(RouteScope::Link)
        .build();
    nl.handle()
        .route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(|e| {
            nl.error(
                format_args!(
                    "add route {}/{} dev {}",
                    TUNNEL_POOL.0, TUNNEL_POOL.1, link.name
                ),
                e,
            )
        })
}

fn unreachable_msg() -> netlink_packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(TUNNEL_POOL.0, TUNNEL_POOL.1)
        .kind(RouteType::Unreachable)
        .priority(UNREACHABLE_METRIC)
        .build()
}

/// `unreachable TUNNEL_POOL metric 4000`.
pub(super) async fn unreachable_route(nl: &Netlink) -> Result<(), OverlayError> {
    nl.handle()
        .route()
        .add(unreachable_msg())
        .replace()
        .execute()
        .await
        .map_err(|e| {
            nl.error(
                format_args!(
                    "add route unreachable {}/{} metric {UNREACHABLE_METRIC}",
                    TUNNEL_POOL.0, TUNNEL_POOL.1
                ),
                e,
            )
        })
}

/// Remove the pool route through `index` (if the link still exists) and the
/// unreachable fallback; routes already gone are fine.
pub(super) async fn remove_routes(nl: &Netlink, index: Option<u32>) -> Result<(), OverlayError> {
    let mut msgs = vec![(unreachable_msg(), "unreachable ")];
    if let Some(index) = index {
        let dev = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(TUNNEL_POOL.0, TUNNEL_POOL.1)
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        msgs.push((dev, ""));
    }
    for (msg, kind) in msgs {
        match nl.handle().route().del(msg).execute().await {
            Ok(()) => {}
            Err(e) if matches!(errno(&e), Some(libc::ESRCH) | Some(libc::ENOENT)) => {}
            Err(e) => {
                return Err(nl.error(
                    format_args!("remove route {kind}{}/{}", TUNNEL_POOL.0, TUNNEL_POOL.1),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// Whether `ip` is in the tunnel pool.
pub(super) fn in_pool(ip: Ipv4Addr) -> bool {
    crate::addr::contains(TUNNEL_POOL.0, TUNNEL_POOL.1, ip)
}
