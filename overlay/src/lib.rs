//! The data plane: overlay networks (VXLAN, bridges, veths), the gateway
//! bridge (the tasks' egress), the node's legs on networks, service VIPs and
//! the ingress routing mesh in nftables, and the embedded DNS server.
//!
//! # On one node ([`Overlay`])
//!
//! Each overlay network is a VXLAN segment (UDP 4789, the VNI from the
//! allocator) bridged on every node that runs one of its tasks. A task with
//! a way out (the agent gives one unless all its networks are internal) also
//! has a leg on the node's gateway bridge. On a node:
//!
//! ```text
//!  node namespace (the daemon's)              sandbox "1-<net>" (one per network)      task namespace (one per task)
//!  10.99.0.1 <- UDP 4789 socket ............  vxlan0 (VNI, learning off, proxy) --+
//!                                             br0 (gateway/len, 02:42:<gw>) <-----+--- veth<hash> ===== eth0 (ip/len, 02:42:<ip>)
//!  rswi<hash> (node's ip/len) =============== hostleg0 (port of br0)
//!    (attach_host: the routing mesh's way in)
//!  rswarm_gwbridge 172.18.0.1/16 <-- rswg<hash> (isolated port) ======================== eth1 (172.18.x.y/16)
//!  ip_forward=1; table ip rswarm_gw masquerades                                          default via 172.18.0.1
//!    172.18/16 leaving by another interface
//! ```
//!
//! * **Sandbox namespace** per network, like Docker's `1-<netid>`: a Linux
//!   bridge `br0` carrying the gateway address, and `vxlan0` enslaved to it.
//!   `vxlan0` is created by a netlink request sent from the node's namespace
//!   (so its UDP socket, bound to port 4789 with `local` = the node's
//!   advertise address, lives in the node's namespace and uses its routes)
//!   that places the device straight into the sandbox. Networks never share a
//!   namespace, so two networks cannot reach each other (there is no routing
//!   between sandboxes, and nothing forwards between VNIs).
//! * **Task namespace** per task, created here and bind-mounted at
//!   `<state_dir>/<task-id>` ([`Overlay::task_netns_path`]) for runc to join by
//!   path; `lo` is up (127.0.0.11 for the DNS server binds there). For every
//!   network of the task, a veth pair: `eth<N>` in the task (its address, a
//!   MAC derived from it as Docker does, [`mac_for`]), the peer in the
//!   sandbox, enslaved to `br0`. An overlay network gives only the connected
//!   route to its subnet, never a default route.
//! * **Gateway bridge** ([`Overlay::attach_gateway`], Docker's
//!   `docker_gwbridge`): `rswarm_gwbridge` ([`GATEWAY_BRIDGE`], 172.18.0.1/16)
//!   in the node's namespace; each task gets `eth<N>` with a node-local
//!   address from 172.18.0.0/16 and its default route via 172.18.0.1. What
//!   tasks send out is masqueraded behind the node's address (table
//!   `ip rswarm_gw`); tasks cannot reach each other over the bridge (isolated
//!   ports); the node reaches them at their 172.18 addresses (host-mode
//!   published ports). A task attached only to internal networks is not
//!   given a gateway: no default route, no way out. The addresses in use are
//!   read back on a restart.
//! * **The node's leg on a network** ([`Overlay::attach_host`]): a veth from
//!   the node's namespace (`rswi<hash>`, the node's address on the network,
//!   e.g. its `ingress` address) into the sandbox's `br0`, so the node itself
//!   reaches every task of the network, local or remote, and the routing mesh
//!   can send published ports to them.
//! * **Remote tasks** come from the cluster store through the dispatcher
//!   (never from gossip, multicast or learning): [`Overlay::set_peers`] takes a
//!   network's full list (tasks and other nodes' legs) and makes `vxlan0`'s
//!   static FDB entries (MAC -> node) and static neighbour entries (IP -> MAC,
//!   answered locally by the VXLAN ARP proxy) match it.
//! * **Crash safety and live restore**: sandboxes and task namespaces are
//!   bind-mounted under the state directory; what lives in the node's
//!   namespace (VXLAN sockets, the gateway bridge, gateway veths, legs) is
//!   named and aliased so a new [`Overlay`] finds it. [`Overlay::cleanup`]
//!   removes sandboxes, task namespaces, veths and legs not in the wanted
//!   lists; [`Overlay::remove_everything`] removes all of it, the gateway
//!   bridge and its table included (leaving the swarm).
//! * **MTU** 1450 on every overlay device (1500 minus VXLAN's 50 bytes), 1500
//!   on the gateway bridge; 1370 on an encrypted network's devices.
//!
//! One process in the node's namespace drives all of this: each operation
//! opens a netlink socket *inside* the namespace it changes (a short-lived
//! helper thread `setns`es, creates the socket and exits; the socket stays
//! bound to that namespace) and drives it on the caller's tokio runtime. No
//! thread of the daemon is ever switched, and nothing shells out to `ip`
//! (`nft` is run for rulesets). See the `netns` module for the details.
//!
//! # Service VIPs and the routing mesh ([`nft`])
//!
//! nftables rulesets, no IPVS: per task, table `ip rswarm` DNATs each
//! service VIP to a healthy backend; per node, table `ip rswarm_mesh`
//! publishes ports on every local address (ingress mode through the node's
//! leg on `ingress`, host mode to local tasks' gateway addresses).
//!
//! # DNS ([`dns`])
//!
//! The embedded server at 127.0.0.11 inside each task's namespace.
//!
//! # Encrypted networks ([`wireguard`])
//!
//! VXLAN over WireGuard: each node has one WireGuard interface ([`Tunnel`],
//! `rswg…`, kernel or boringtun's userspace device in this process) with a
//! tunnel address from [`TUNNEL_POOL`] (100.127.0.0/16), routed through it,
//! with an `unreachable` fallback so nothing to a tunnel address leaves in
//! clear. An encrypted network ([`NetworkConfig::encrypted_local_ip`]) uses
//! the tunnel addresses as its VXLAN endpoints, so its packets cross the wire
//! only as WireGuard UDP (port [`WIREGUARD_PORT`]), and its devices have MTU
//! [`ENCRYPTED_OVERLAY_MTU`] (1420 - 50). Clear networks are untouched.
//!
//! ```text
//!  sandbox "1-<net>"                           node namespace
//!  vxlan0 (local 100.127.0.1, MTU 1370) ---->  UDP 4789 100.127.0.1 -> 100.127.0.2
//!                                              route 100.127.0.0/16 dev rswg… (MTU 1420)
//!                                              rswg… = WireGuard: UDP 51820 10.99.0.1 -> 10.99.0.2
//! ```
pub mod dns;
pub mod metrics;
pub mod nft;

mod addr;
mod dataplane;
mod error;
mod fdb;
mod links;
mod netns;
mod vxlan;
pub mod wireguard;

pub use addr::mac_for;
pub use dataplane::gateway::{
    GATEWAY_ADDR, GATEWAY_BRIDGE, GATEWAY_MTU, GATEWAY_PREFIX, GATEWAY_SUBNET,
};
pub use dataplane::{NetworkConfig, Overlay, Peer};
pub use error::OverlayError;
pub use vxlan::{OVERLAY_MTU, VXLAN_PORT};
pub use wireguard::{
    remove_leftover, Implementation, PeerState, PrivateKey, PublicKey, Tunnel, TunnelPeer,
    ENCRYPTED_OVERLAY_MTU, TUNNEL_POOL, WIREGUARD_MTU, WIREGUARD_PORT,
};
