//! The data plane: overlay networks (VXLAN, bridges, veths), service VIPs and
//! the ingress routing mesh in nftables, and the embedded DNS server.
//!
//! # Overlay networks ([`Overlay`])
//!
//! Each overlay network is a VXLAN segment (UDP 4789, the VNI from the
//! allocator) bridged on every node that runs one of its tasks. On a node:
//!
//! ```text
//!  host namespace (the daemon's)        sandbox "1-<net>" (one per network)        task namespace (one per task)
//!  10.99.0.1  <- UDP 4789 socket  ....  vxlan0 (VNI, learning off, proxy) -+
//!                                       br0 (gateway/len, 02:42:<gw>)  <----+---- veth<hash> === eth0 (ip/len, 02:42:<ip>)
//!                                                                                               default via gateway (unless internal)
//! ```
//!
//! * **Sandbox namespace** per network, like Docker's `1-<netid>`: a Linux
//!   bridge `br0` carrying the gateway address, and `vxlan0` enslaved to it.
//!   `vxlan0` is created by a netlink request sent from the host namespace
//!   (so its UDP socket, bound to port 4789 with `local` = the node's advertise
//!   address, lives in the host namespace and uses its routes) that places the
//!   device straight into the sandbox. Networks never share a namespace, so
//!   two networks cannot reach each other (there is no routing between
//!   sandboxes, and nothing forwards between VNIs).
//! * **Task namespace** per task, created here and bind-mounted at
//!   `<state_dir>/<task-id>` ([`Overlay::task_netns_path`]) for runc to join by
//!   path; `lo` is up (127.0.0.11 for the DNS server binds there). For every
//!   network of the task, a veth pair: `eth<N>` in the task (its address, a
//!   MAC derived from it as Docker does, [`mac_for`]), the peer in the
//!   sandbox, enslaved to `br0`. The first non-internal network attached gives
//!   the default route; an internal network never does.
//! * **Remote tasks** come from the cluster store through the dispatcher
//!   (never from gossip, multicast or learning): [`Overlay::set_peers`] takes a
//!   network's full list and makes `vxlan0`'s static FDB entries (MAC -> node)
//!   and static neighbour entries (IP -> MAC, answered locally by the VXLAN ARP
//!   proxy) match it.
//! * **Crash safety**: everything lives in namespaces bind-mounted under the
//!   state directory, nothing in the host namespace but the VXLAN sockets
//!   (which go with their devices). [`Overlay::cleanup`] removes sandboxes,
//!   task namespaces and veths not in the wanted lists.
//! * **MTU** 1450 on every overlay device (1500 minus VXLAN's 50 bytes).
//!
//! One process in the host namespace drives all of this: each operation opens
//! a netlink socket *inside* the namespace it changes (a short-lived helper
//! thread `setns`es, creates the socket and exits; the socket stays bound to
//! that namespace) and drives it on the caller's tokio runtime. No thread of
//! the daemon is ever switched, and nothing shells out to `ip`. See
//! the `netns` module for the details.
//!
//! Not here yet: egress for non-internal networks (Docker's
//! `docker_gwbridge`), service VIPs, the ingress mesh, encryption.
pub mod dns;
pub mod nft;

mod addr;
mod dataplane;
mod error;
mod fdb;
mod links;
mod netns;
mod vxlan;

pub use addr::mac_for;
pub use dataplane::{NetworkConfig, Overlay, Peer};
pub use error::OverlayError;
pub use vxlan::{OVERLAY_MTU, VXLAN_PORT};
