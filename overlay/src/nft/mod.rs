//! Service VIPs and the ingress routing mesh as nftables rulesets (no IPVS).
//!
//! Pure data in, rules out: the caller (the agent) says which VIPs a task sees
//! and which ports a node publishes, with the healthy backends of each; this
//! module renders one nftables ruleset per namespace and applies it.
//!
//! # Tables (we never touch anyone else's)
//!
//! | table | where | what |
//! |---|---|---|
//! | `ip rswarm` | each task's namespace | [`apply_task_vips`]: service VIPs |
//! | `ip rswarm_mesh` | the node's namespace | [`apply_node_mesh`]: published ports |
//! | `ip rswarm_gw` | the node's namespace | the gateway bridge's egress NAT, applied by [`crate::Overlay::attach_gateway`] |
//! | `ip rswarm_wg` | the node's namespace | drops clear VXLAN of encrypted networks, applied by [`crate::Overlay::ensure_network`] |
//!
//! One name per purpose, so that they can live in one namespace without one
//! call wiping another's rules. [`remove_all`] deletes the four and nothing
//! else.
//!
//! The encrypted networks' guard (their VNIs; deleted when there are none):
//!
//! ```text
//! table ip rswarm_wg {
//!   chain input { type filter hook input priority -10; policy accept;
//!     udp dport 4789 @th,96,24 { 4200, 4300 } ip saddr != 100.127.0.0/16 drop
//!     udp dport 4789 @th,96,24 { 4200, 4300 } fib saddr . iif oif missing drop
//!   }
//! }
//! ```
//!
//! The gateway table is one rule (the subnet and bridge are
//! [`crate::GATEWAY_SUBNET`] and [`crate::GATEWAY_BRIDGE`]):
//!
//! ```text
//! table ip rswarm_gw {
//!   chain postrouting { type nat hook postrouting priority 100; policy accept;
//!     ip saddr 172.18.0.0/16 oifname != "rswarm_gwbridge" masquerade
//!   }
//! }
//! ```
//!
//! # Atomic replacement
//!
//! Every apply is **one** `nft -j -f -` run, hence one netfilter transaction:
//! `add table` (a no-op if it exists), `delete table`, then the whole new table
//! with its chains and rules. Either all of it is in place or, if the kernel
//! refuses anything, the old table is untouched. Packets never see a half-built
//! table. Connections already established keep their backend (conntrack holds
//! the NAT binding); only new connections use the new backend set.
//!
//! # How `nft` is run inside a namespace
//!
//! The namespace file (`/var/run/netns/NAME`, a bind mount made by
//! [`crate::Overlay`], or `/proc/PID/ns/net`) is opened by the caller, and the
//! forked child calls `setns(fd, CLONE_NEWNET)` in `pre_exec` before it
//! executes `nft`. Nothing of the calling process (none of its threads)
//! changes namespace, no `nsenter` binary is needed, and the mounts stay the
//! host's. The `nftables` crate supplies the typed JSON schema; we serialise it
//! and drive the process ourselves so that `nft`'s stderr ends up in
//! [`NftError::Nft`] (the crate's helper lets it go to our stderr).
//!
//! If `nft` is not installed every call fails with [`NftError::NftMissing`]
//! (`apt-get install nftables`).
//!
//! The functions block (a process is run and waited for, typically a few
//! milliseconds): from async code call them through
//! `tokio::task::spawn_blocking`. Calls for different namespaces may run
//! concurrently; calls for the same table should be serialised by the caller
//! (the last one applied wins).
//!
//! # Service VIPs in a task namespace ([`apply_task_vips`])
//!
//! ```text
//! table ip rswarm {
//!   chain vip_nat { type nat hook output priority -100; policy accept;
//!     ip daddr vmap { 10.50.0.100 : goto svc_10_50_0_100 }    # one lookup for any number of VIPs
//!   }
//!   chain svc_10_50_0_100 {
//!     tcp dport 80 dnat to numgen random mod 3 map { 0 : 10.50.0.11, 1 : 10.50.0.12, 2 : 10.50.0.13 }
//!   }
//!   chain vip_reject { type filter hook output priority 0; policy accept;
//!     ip daddr { 10.50.0.100, ... } meta l4proto tcp reject with tcp reset
//!     ip daddr { 10.50.0.100, ... } reject with icmp port-unreachable
//!   }
//! }
//! ```
//!
//! * The backend is chosen per connection by `numgen random mod N`; conntrack
//!   keeps the rest of the connection (and a UDP flow, until its conntrack
//!   entry expires) on that backend. The service port is the target port, so
//!   only the address is rewritten. An empty port list means every port and
//!   protocol of the VIP is translated.
//! * Anything still addressed to a VIP after the NAT chain — a VIP without
//!   backends, or a port the service does not publish — is rejected (TCP
//!   reset, ICMP port unreachable otherwise), so a client fails at once
//!   instead of timing out: TCP `connect` gets `ECONNREFUSED`; a UDP `send`
//!   itself fails with `EPERM` (the datagram is rejected before it leaves
//!   the task).
//! * Only locally generated traffic is translated (the `output` hook): a VIP
//!   is only ever used by the task's own processes. The VIP must be routable
//!   in the task's namespace before NAT (the socket looks its route up at
//!   `connect`); VIPs taken from the network's subnet, as Swarm does, are
//!   covered by the connected route of the task's interface.
//!
//! # The routing mesh on a node ([`apply_node_mesh`])
//!
//! ```text
//! table ip rswarm_mesh {
//!   chain prerouting { type nat hook prerouting priority -100; policy accept;
//!     fib daddr type local jump published           # arriving on any local address
//!   }
//!   chain output { type nat hook output priority -100; policy accept;
//!     fib daddr type local jump published           # the node itself, 127.0.0.1 included
//!   }
//!   chain published {
//!     tcp dport 8080 ct mark set ct mark | 0x02000000 dnat to numgen random mod 3 map { ... } : 80   # ingress mode
//!     ip saddr 127.0.0.0/8 tcp dport 9090 ct mark set ct mark | 0x02000000                           # host mode, from loopback
//!     tcp dport 9090 dnat to 172.18.0.5 : 80                                                          # host mode
//!   }
//!   chain postrouting { type nat hook postrouting priority 100; policy accept;
//!     ct mark & 0x02000000 == 0x02000000 masquerade
//!   }
//!   chain input_reject { type filter hook input priority 0; policy accept;
//!     tcp dport 7070 reject with tcp reset          # a published port with no backends
//!   }
//!   chain localnet_guard { type filter hook prerouting priority -300; policy accept;
//!     iifname != "lo" ip daddr 127.0.0.0/8 drop    # what route_localnet=1 would let in
//!   }
//! }
//! ```
//!
//! * **Ingress mode**: the connection is marked in conntrack with
//!   [`MESH_CT_MARK`] (OR-ed in, other bits of the mark are kept) and
//!   masqueraded on the way out, so the backend answers this node, which
//!   undoes both translations. The backend sees the node's address on the
//!   interface that leads to it.
//! * **Host mode**: DNAT to the local tasks only, no SNAT: the task sees the
//!   client's real address, and must route its replies back through this node
//!   (its default route via the node, as for any container on a local bridge).
//!   Connections made from `127.0.0.1` on the node are the exception: they
//!   cannot leave with a loopback source, so they are masqueraded too.
//! * **127.0.0.1**: locally generated packets are translated in the `output`
//!   hook, but a packet with source 127.0.0.1 may only be routed out of a
//!   non-loopback interface, and its replies accepted, when
//!   `net.ipv4.conf.<iface>.route_localnet` is 1. [`apply_node_mesh`] sets it
//!   (on `ingress_iface` if given, plus the gateway bridge when a host-mode
//!   port has local backends; otherwise on `all`) whenever a port has
//!   backends, and adds the `localnet_guard` chain that drops what that
//!   setting would otherwise let in from the network: packets arriving for
//!   127.0.0.0/8 on a non-loopback interface (the same protection kube-proxy
//!   adds). It is not reset by [`remove_all`] (we cannot know who else relies
//!   on it).
//!
//! # What the caller must provide on the node
//!
//! * `net.ipv4.ip_forward = 1` in the node's namespace: translated packets
//!   from outside are forwarded to the backends. (Not set by this module;
//!   [`crate::Overlay::attach_host`] and [`crate::Overlay::attach_gateway`]
//!   set it. A warning is logged if it is off.)
//! * A route from the node to every backend address: for ingress mode, the
//!   node's leg on the ingress network ([`crate::Overlay::attach_host`];
//!   `ingress_iface` is meant to be that interface); for host mode, the
//!   local tasks' gateway-bridge addresses, whose default route points back
//!   at the node ([`crate::Overlay::attach_gateway`]).
//! * No other firewall dropping the forwarded packets: an `accept` in our
//!   table cannot overrule a `drop` in another table's chain on the same hook
//!   (e.g. Docker's iptables `FORWARD` policy `DROP`).
//!
//! # Connections of a backend that left ([`forget_backends`])
//!
//! Taking a backend out of the rules leaves its established connections on
//! it (conntrack holds the NAT binding): that is what lets a draining task
//! finish them. Once the task is gone, the caller deletes the conntrack
//! entries whose reply source is its address, in each namespace where a VIP
//! or the mesh translated connections to it (`conntrack`): the client's
//! next packet then meets the rules afresh and gets a reset from a live
//! backend (or is refused when none is left) instead of hanging until its
//! retransmissions give up; a UDP flow moves to a live backend.
//!
//! # Left for later
//!
//! * IPv4 only (the cluster's networks are IPv4).
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

mod conntrack;
mod exec;
mod rules;

#[cfg(test)]
mod conntrack_tests;
#[cfg(test)]
mod lab;
#[cfg(test)]
mod tests;

pub use rules::{ENCRYPTED_TABLE, GATEWAY_TABLE, MESH_CT_MARK, MESH_TABLE, VIP_TABLE};

/// A transport protocol of a VIP port or a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The name nftables uses (`tcp`, `udp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One healthy task behind a VIP or a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    /// The task's address (on the service's network, or on `ingress` for the
    /// routing mesh).
    pub ip: Ipv4Addr,
}

/// A service's VIP as a task sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipService {
    /// The virtual address (from the network's subnet, like Swarm's).
    pub vip: Ipv4Addr,
    /// The ports translated (service port = target port). Empty: all ports
    /// and protocols.
    pub ports: Vec<(Proto, u16)>,
    /// The healthy tasks. Empty: connections to the VIP are refused at once.
    pub backends: Vec<Backend>,
}

/// A port a service publishes on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedPort {
    /// TCP or UDP.
    pub proto: Proto,
    /// The port on the node's addresses.
    pub published: u16,
    /// The port of the tasks.
    pub target: u16,
    /// Ingress mode: all running tasks cluster-wide (their `ingress`
    /// addresses). Host mode: the tasks on this node only. Empty: connections
    /// are refused at once.
    pub backends: Vec<Backend>,
    /// Host mode: no SNAT, the task sees the client's address.
    pub host_mode: bool,
}

/// What went wrong while rendering or applying a ruleset.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The `nft` program could not be executed (not installed?).
    #[error("cannot run `nft` (is nftables installed? apt-get install nftables): {0}")]
    NftMissing(#[source] std::io::Error),
    /// The namespace file could not be opened or entered.
    #[error("network namespace {path}: {source}")]
    Namespace {
        /// The namespace file given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Some other system call (a pipe, a sysctl) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `nft` ran and refused the request.
    #[error("nft {action} in {netns} failed ({status}): {stderr}")]
    Nft {
        /// What was asked ("apply table rswarm", "list ruleset", ...).
        action: String,
        /// The namespace file.
        netns: PathBuf,
        /// The exit status, as text.
        status: String,
        /// What `nft` printed on stderr.
        stderr: String,
    },
    /// The input is inconsistent (two services with one VIP, a port used
    /// twice, port 0, a bad interface name).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which input.
        what: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The ruleset could not be serialised.
    #[error("serialising the ruleset: {0}")]
    Json(#[from] serde_json::Error),
}

/// Inside a task's namespace: DNAT each VIP (TCP and UDP) to one of its
/// healthy backends, chosen with `numgen random mod N` (conntrack keeps a
/// connection on its backend); a VIP with no backends, or a port it does not
/// serve, is refused (TCP reset, ICMP port unreachable). Replaces table
/// `ip rswarm` atomically; an empty `services` removes it.
pub fn apply_task_vips(netns: &Path, services: &[VipService]) -> Result<(), NftError> {
    let ruleset = rules::task_vips(services)?;
    exec::apply(netns, &ruleset, VIP_TABLE)
}

/// The routing mesh in the node's own namespace (e.g. `/proc/self/ns/net`):
/// each published port, on any local address (127.0.0.1 included), is
/// translated to its backends; ingress mode masquerades so replies come back
/// through this node, host mode keeps the client's address. Replaces table
/// `ip rswarm_mesh` atomically; empty `ports` removes it.
///
/// `ingress_iface` is the interface through which the node reaches the
/// ingress network; `route_localnet` (needed for 127.0.0.1) is enabled on it
/// (and on the gateway bridge when a host-mode port has local backends),
/// or on `all` when `None`. See the module docs for what the caller provides
/// (forwarding, routes).
pub fn apply_node_mesh(
    netns: &Path,
    ports: &[PublishedPort],
    ingress_iface: Option<&str>,
) -> Result<(), NftError> {
    let ruleset = rules::node_mesh(ports, ingress_iface)?;
    if ports.iter().any(|p| !p.backends.is_empty()) {
        let mut ifaces = vec![ingress_iface.unwrap_or("all")];
        if ingress_iface.is_some() && rules::host_mode_backends(ports) {
            ifaces.push(crate::GATEWAY_BRIDGE);
        }
        for iface in ifaces {
            let key = format!("net/ipv4/conf/{iface}/route_localnet");
            exec::ensure_sysctl(netns, &key, "1")?;
        }
        match exec::read_sysctl(netns, "net/ipv4/ip_forward") {
            Ok(v) if v.trim() == "1" => {}
            Ok(_) => tracing::warn!(
                netns = %netns.display(),
                "net.ipv4.ip_forward is 0: published ports will not reach other hosts"
            ),
            Err(err) => tracing::warn!(netns = %netns.display(), "cannot read ip_forward: {err}"),
        }
    }
    exec::apply(netns, &ruleset, MESH_TABLE)
}

/// Deletes, in the namespace at `netns`, the conntrack entries of
/// connections translated to one of `backends` (their reply source), so
/// that a connection to a backend that is gone ends at the client's next
/// packet instead of hanging. Call it once the backends' tasks have stopped,
/// not while they drain. Returns how many entries went.
pub fn forget_backends(netns: &Path, backends: &[Ipv4Addr]) -> Result<usize, NftError> {
    conntrack::forget(netns, backends)
}

/// Delete our tables (`ip rswarm`, `ip rswarm_mesh`, `ip rswarm_gw`,
/// `ip rswarm_wg`) from the namespace, in one transaction; missing tables are
/// fine. Nobody else's rules are touched.
pub fn remove_all(netns: &Path) -> Result<(), NftError> {
    let ruleset = rules::remove_tables(&[VIP_TABLE, MESH_TABLE, GATEWAY_TABLE, ENCRYPTED_TABLE]);
    exec::apply(netns, &ruleset, "remove rswarm tables")
}

/// The gateway bridge's egress NAT in the node's namespace: replaces table
/// `ip rswarm_gw` atomically with `ip saddr SUBNET oifname != BRIDGE
/// masquerade` in `postrouting`.
pub(crate) fn apply_gateway_nat(
    netns: &Path,
    subnet: Ipv4Addr,
    prefix: u8,
    bridge: &str,
) -> Result<(), NftError> {
    let ruleset = rules::gateway_nat(subnet, prefix, bridge)?;
    exec::apply(netns, &ruleset, GATEWAY_TABLE)
}

/// Delete table `ip rswarm_gw` (a missing one is fine).
pub(crate) fn remove_gateway_nat(netns: &Path) -> Result<(), NftError> {
    exec::apply(
        netns,
        &rules::remove_tables(&[GATEWAY_TABLE]),
        "remove table rswarm_gw",
    )
}

/// The guard of encrypted networks in the node's namespace: replaces table
/// `ip rswarm_wg` so that VXLAN packets with one of `vnis` are dropped unless
/// they came out of the WireGuard tunnel; with no VNIs the table is deleted.
pub(crate) fn apply_encrypted_guard(
    netns: &Path,
    vnis: &std::collections::BTreeSet<u32>,
) -> Result<(), NftError> {
    let ruleset = rules::encrypted_guard(vnis, crate::VXLAN_PORT, crate::TUNNEL_POOL);
    exec::apply(netns, &ruleset, ENCRYPTED_TABLE)
}

/// The JSON `nft -j -f -` is given by [`apply_task_vips`] (for logs and
/// debugging).
pub fn task_vips_json(services: &[VipService]) -> Result<String, NftError> {
    Ok(serde_json::to_string(&rules::task_vips(services)?)?)
}

/// The JSON `nft -j -f -` is given by [`apply_node_mesh`] (for logs and
/// debugging).
pub fn node_mesh_json(
    ports: &[PublishedPort],
    ingress_iface: Option<&str>,
) -> Result<String, NftError> {
    Ok(serde_json::to_string(&rules::node_mesh(
        ports,
        ingress_iface,
    )?)?)
}

/// `nft list ruleset` in the namespace, as text (everyone's tables).
pub fn list_ruleset(netns: &Path) -> Result<String, NftError> {
    exec::run(netns, &["list", "ruleset"], None, "list ruleset")
}
