//! The kernel's WireGuard: a link of kind `wireguard` made over route
//! netlink, configured by `wireguard-control`'s `Backend::Kernel` (generic
//! netlink). Both requests are made from a thread switched into the tunnel's
//! namespace, since a netlink socket talks to the namespace it was made in.

use std::os::fd::BorrowedFd;

use netlink_packet_route::link::InfoKind;
use rtnetlink::{LinkMessageBuilder, LinkUnspec};
use wireguard_control::{Backend, Device, DeviceUpdate, InterfaceName};

use crate::error::OverlayError;
use crate::links::Netlink;
use crate::netns;

/// Try to create a link of kind `wireguard` called `name`; `Err` carries the
/// kernel's refusal (no module: "Operation not supported") for the log.
pub(super) async fn create(nl: &Netlink, name: &str) -> Result<(), OverlayError> {
    let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Wireguard)
        .name(name.to_string())
        .build();
    nl.add(&format!("WireGuard interface {name}"), msg).await
}

/// Apply a configuration change to the kernel interface.
pub(super) fn apply(
    ns: BorrowedFd<'_>,
    iface: &InterfaceName,
    update: DeviceUpdate,
) -> std::io::Result<()> {
    netns::run_in(ns, || update.apply(iface, Backend::Kernel)).and_then(|r| r)
}

/// Read the kernel interface's configuration and peer statistics.
pub(super) fn get(ns: BorrowedFd<'_>, iface: &InterfaceName) -> std::io::Result<Device> {
    netns::run_in(ns, || Device::get(iface, Backend::Kernel)).and_then(|r| r)
}
