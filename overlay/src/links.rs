//! Netlink plumbing: a route-netlink connection bound to one namespace, and
//! the link, address and route operations the overlay needs (all idempotent:
//! "already there" and "already gone" are successes).
//!
//! A [`Netlink`] is opened per operation and per namespace (the socket is made
//! in the target namespace by a short-lived helper thread, see
//! [`crate::netns`]), driven on the caller's tokio runtime, and closed when
//! dropped. Nothing is cached between calls, so a restarted daemon sees exactly
//! what the kernel has.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
use netlink_packet_route::AddressFamily;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, TokioSocket};
use rtnetlink::{Handle, LinkBridgePort, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use crate::error::{errno, OverlayError};
use crate::netns;

/// The loopback device.
pub(crate) const LOOPBACK: &str = "lo";

/// A route-netlink connection whose socket lives in one network namespace.
pub(crate) struct Netlink {
    handle: Handle,
    conn: tokio::task::JoinHandle<()>,
    /// For messages: "host", "sandbox of network X", "task Y".
    pub(crate) name: String,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// What the overlay needs to know of a link.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) kind: Option<InfoKind>,
    pub(crate) controller: Option<u32>,
    pub(crate) alias: Option<String>,
    pub(crate) mac: Option<Vec<u8>>,
    pub(crate) up: bool,
    pub(crate) mtu: Option<u32>,
    pub(crate) vni: Option<u32>,
    /// For a VXLAN device: its `local` (source) address.
    pub(crate) vxlan_local: Option<Ipv4Addr>,
    /// For a bridge port: whether it is isolated (`IFLA_BRPORT_ISOLATED`).
    pub(crate) isolated: Option<bool>,
}

/// The IPv4 default route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DefaultRoute {
    pub(crate) gateway: Option<Ipv4Addr>,
    pub(crate) oif: Option<u32>,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            controller: None,
            alias: None,
            mac: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            mtu: None,
            vni: None,
            vxlan_local: None,
            isolated: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Controller(c) if *c != 0 => link.controller = Some(*c),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::Address(a) => link.mac = Some(a.clone()),
                LinkAttribute::Mtu(m) => link.mtu = Some(*m),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => link.kind = Some(k.clone()),
                            LinkInfo::Data(InfoData::Vxlan(v)) => {
                                for item in v {
                                    match item {
                                        netlink_packet_route::link::InfoVxlan::Id(id) => {
                                            link.vni = Some(*id)
                                        }
                                        netlink_packet_route::link::InfoVxlan::Local(ip) => {
                                            link.vxlan_local = Some(*ip)
                                        }
                                        _ => {}
                                    }
                                }
                            }
                            LinkInfo::PortData(InfoPortData::BridgePort(p)) => {
                                for item in p {
                                    if let InfoBridgePort::Isolated(on) = item {
                                        link.isolated = Some(*on);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    pub(crate) fn is(&self, kind: InfoKind) -> bool {
        self.kind.as_ref() == Some(&kind)
    }
}

/// Is this "no such device" (the link, or the namespace's object, is gone)?
fn is_gone(err: &rtnetlink::Error) -> bool {
    matches!(
        errno(err),
        Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH)
    )
}

impl Netlink {
    /// Open a connection whose socket is created inside the namespace `ns`.
    /// Must be called from within a tokio runtime.
    pub(crate) fn open(
        ns: BorrowedFd<'_>,
        name: impl Into<String>,
    ) -> Result<Netlink, OverlayError> {
        let name = name.into();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(OverlayError::io(
                format!("open a netlink socket in {name}"),
                std::io::Error::other("not inside a tokio runtime"),
            ));
        }
        let fd: OwnedFd = netns::run_in(ns, || -> std::io::Result<OwnedFd> {
            // SAFETY: plain socket(2); the result is checked before use.
            let raw = unsafe {
                libc::socket(
                    libc::PF_NETLINK,
                    libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    NETLINK_ROUTE as libc::c_int,
                )
            };
            if raw < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `raw` is a fresh descriptor owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(raw) })
        })
        .and_then(|r| r)
        .map_err(|e| OverlayError::io(format!("open a netlink socket in {name}"), e))?;
        // SAFETY: ownership of the descriptor moves into the socket; it is
        // already non-blocking, and we are inside a tokio runtime (every
        // caller is an async fn), which TokioSocket's registration needs.
        let socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(socket);
        let conn = tokio::spawn(conn);
        Ok(Netlink { handle, conn, name })
    }

    fn err(&self, what: impl std::fmt::Display, e: rtnetlink::Error) -> OverlayError {
        OverlayError::netlink(format!("{} in {}", what, self.name), e)
    }

    /// All links of the namespace.
    pub(crate) async fn links(&self) -> Result<Vec<Link>, OverlayError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.err("list links", e))?;
        Ok(msgs.iter().map(Link::from_message).collect())
    }

    /// The link called `name`, if there is one.
    pub(crate) async fn link(&self, name: &str) -> Result<Option<Link>, OverlayError> {
        let mut stream = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Some(Link::from_message(&msg))),
            Ok(None) => Ok(None),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(self.err(format_args!("look up link {name}"), e)),
        }
    }

    /// The link called `name`, which must exist.
    pub(crate) async fn must_link(&self, name: &str) -> Result<Link, OverlayError> {
        match self.link(name).await? {
            Some(l) => Ok(l),
            None => Err(self.err(
                format_args!("look up link {name}"),
                rtnetlink::Error::NamespaceError(format!("no link named {name}")),
            )),
        }
    }

    /// Create a link from a full message (see the builders in rtnetlink).
    pub(crate) async fn add(&self, what: &str, msg: LinkMessage) -> Result<(), OverlayError> {
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| self.err(format_args!("create {what}"), e))
    }

    /// Delete a link; a link that is already gone is fine.
    pub(crate) async fn del(&self, index: u32, what: &str) -> Result<(), OverlayError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_gone(&e) => Ok(()),
            Err(e) => Err(self.err(format_args!("delete {what}"), e)),
        }
    }

    /// Apply a change (up, controller, MTU, address, alias) to an existing link.
    pub(crate) async fn set(
        &self,
        what: &str,
        msg: LinkMessageBuilder<LinkUnspec>,
    ) -> Result<(), OverlayError> {
        self.handle
            .link()
            .set(msg.build())
            .execute()
            .await
            .map_err(|e| self.err(format_args!("configure {what}"), e))
    }

    /// Bring a link up.
    pub(crate) async fn up(&self, link: &Link) -> Result<(), OverlayError> {
        if link.up {
            return Ok(());
        }
        self.set(&link.name, LinkUnspec::new_with_index(link.index).up())
            .await
    }

    /// Give a link this MTU (nothing is done if it has it).
    pub(crate) async fn set_mtu(&self, link: &Link, mtu: u32) -> Result<(), OverlayError> {
        if link.mtu == Some(mtu) {
            return Ok(());
        }
        self.set(&link.name, LinkUnspec::new_with_index(link.index).mtu(mtu))
            .await
    }

    /// The IPv4 addresses (address, prefix length) of a link.
    pub(crate) async fn ipv4_addrs(
        &self,
        index: u32,
    ) -> Result<Vec<(Ipv4Addr, u8, AddressMessage)>, OverlayError> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.err("list addresses", e))?;
        let mut out = Vec::new();
        for msg in msgs {
            if msg.header.family != AddressFamily::Inet {
                continue;
            }
            let addr = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            let addr = addr.or_else(|| {
                msg.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(ip) = addr {
                out.push((ip, msg.header.prefix_len, msg));
            }
        }
        Ok(out)
    }

    /// Make `ip/prefix` the only IPv4 address of the link.
    pub(crate) async fn set_only_addr(
        &self,
        link: &Link,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), OverlayError> {
        let mut present = false;
        for (have, have_prefix, msg) in self.ipv4_addrs(link.index).await? {
            if have == ip && have_prefix == prefix {
                present = true;
            } else {
                match self.handle.address().del(msg).execute().await {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => {}
                    Err(e) => {
                        return Err(self.err(
                            format_args!("remove address {have}/{have_prefix} from {}", link.name),
                            e,
                        ))
                    }
                }
            }
        }
        if present {
            return Ok(());
        }
        match self
            .handle
            .address()
            .add(link.index, IpAddr::V4(ip), prefix)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(self.err(
                format_args!("add address {ip}/{prefix} to {}", link.name),
                e,
            )),
        }
    }

    /// The IPv4 default route of the main table, if any.
    pub(crate) async fn default_route(&self) -> Result<Option<DefaultRoute>, OverlayError> {
        let msgs: Vec<_> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.err("list routes", e))?;
        for msg in msgs {
            let table = msg
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(msg.header.table as u32);
            if msg.header.destination_prefix_length == 0
                && table == RouteHeader::RT_TABLE_MAIN as u32
            {
                let gateway = msg.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                    _ => None,
                });
                let oif = msg.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                });
                return Ok(Some(DefaultRoute { gateway, oif }));
            }
        }
        Ok(None)
    }

    /// Make `default via gw dev <index>` the default route: added, or
    /// replacing one with another gateway or device.
    pub(crate) async fn set_default_route(
        &self,
        gw: Ipv4Addr,
        index: u32,
    ) -> Result<(), OverlayError> {
        let want = DefaultRoute {
            gateway: Some(gw),
            oif: Some(index),
        };
        if self.default_route().await? == Some(want) {
            return Ok(());
        }
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build();
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| self.err(format_args!("set the default route via {gw}"), e))
    }

    /// Make a bridge port isolated (`bridge link set dev X isolated on`): it
    /// exchanges frames with the bridge itself and non-isolated ports only,
    /// never with another isolated port.
    pub(crate) async fn set_isolated(&self, link: &Link, on: bool) -> Result<(), OverlayError> {
        let msg = LinkBridgePort::new(link.index).isolated(on).build();
        self.handle
            .link()
            .set_port(msg)
            .execute()
            .await
            .map_err(|e| {
                self.err(
                    format_args!("set isolated {on} on bridge port {}", link.name),
                    e,
                )
            })
    }

    /// Create a veth pair: `name` here (with `mac`), `peer` in the namespace
    /// `peer_ns` (both with `mtu`). One message, so no half-made pair is left
    /// in the wrong namespace if we crash.
    /// Make sure a veth pair `name` (here, with `mac`) === `peer` (in
    /// `peer_nl`, whose namespace is `peer_ns`) exists: a pair that is there
    /// with the right MAC is kept as it is; anything else under those names
    /// is deleted and the pair made anew. Returns both ends, this side first.
    pub(crate) async fn ensure_veth_pair(
        &self,
        name: &str,
        mac: [u8; 6],
        peer_nl: &Netlink,
        peer: &str,
        peer_ns: BorrowedFd<'_>,
        mtu: u32,
    ) -> Result<(Link, Link), OverlayError> {
        let here = self.link(name).await?;
        let there = peer_nl.link(peer).await?;
        let good = matches!(
            (&here, &there),
            (Some(h), Some(t)) if h.is(InfoKind::Veth) && t.is(InfoKind::Veth)
                && h.mac.as_deref() == Some(&mac[..])
        );
        match (good, here, there) {
            (true, Some(h), Some(t)) => Ok((h, t)),
            (_, h, t) => {
                if let Some(h) = h {
                    self.del(h.index, name).await?;
                }
                if let Some(t) = t {
                    peer_nl.del(t.index, peer).await?;
                }
                self.add_veth(name, mac, peer, peer_ns, mtu).await?;
                Ok((self.must_link(name).await?, peer_nl.must_link(peer).await?))
            }
        }
    }

    pub(crate) async fn add_veth(
        &self,
        name: &str,
        mac: [u8; 6],
        peer: &str,
        peer_ns: BorrowedFd<'_>,
        mtu: u32,
    ) -> Result<(), OverlayError> {
        use std::os::fd::AsRawFd;
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .setns_by_fd(peer_ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .mtu(mtu)
            .address(mac.to_vec())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.add(&format!("veth {name} (peer {peer})"), msg).await
    }

    /// The raw handle, for the neighbour and FDB requests in [`crate::fdb`].
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Error constructor for modules using [`Netlink::handle`].
    pub(crate) fn error(&self, what: impl std::fmt::Display, e: rtnetlink::Error) -> OverlayError {
        self.err(what, e)
    }
}
