//! The WireGuard tunnel between nodes that carries encrypted networks.
//!
//! Each node has one WireGuard interface ([`Tunnel`]) in its own namespace:
//! a *tunnel address* from [`TUNNEL_POOL`] on it as /32, the route
//! `TUNNEL_POOL dev <iface>`, and `unreachable TUNNEL_POOL metric 4000` so
//! that, while the interface is missing, nothing addressed to a tunnel
//! address leaves the node in clear. Every other node sharing an encrypted
//! network is a peer ([`TunnelPeer`]: its public key, `<address>:<port>`,
//! allowed IP `<its tunnel address>/32`). An encrypted network's VXLAN uses
//! the tunnel addresses as its endpoints, so its packets are routed into the
//! tunnel and cross the wire only as WireGuard UDP (see `vxlan`).
//!
//! The kernel's WireGuard is used when a link of kind `wireguard` can be made;
//! otherwise boringtun's userspace device over `/dev/net/tun` runs inside
//! this process (`userspace`). Either way the device is configured through
//! `wireguard-control`. Keys: `keys`. Routes and addresses: `net`.

mod kernel;
mod keys;
mod net;
#[cfg(test)]
mod tests;
mod userspace;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, SystemTime};

use boringtun::device::DeviceHandle;
use netlink_packet_route::link::InfoKind;
use wireguard_control::{Backend, DeviceUpdate, InterfaceName, Key, PeerConfigBuilder};

use crate::error::OverlayError;
use crate::links::Netlink;
use crate::netns;

pub use keys::{PrivateKey, PublicKey};
pub use userspace::UAPI_DIR;

/// WireGuard's UDP port unless the cluster says otherwise.
pub const WIREGUARD_PORT: u16 = 51820;
/// Where nodes' tunnel addresses come from.
pub const TUNNEL_POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 127, 0, 0), 16);
/// MTU of the WireGuard interface (1500 minus WireGuard's 80 bytes over IPv6).
pub const WIREGUARD_MTU: u32 = 1420;
/// MTU of an encrypted network's devices: the tunnel's MTU minus VXLAN's 50.
pub const ENCRYPTED_OVERLAY_MTU: u32 = WIREGUARD_MTU - 50;
/// Metric of the `unreachable TUNNEL_POOL` fallback route.
pub const UNREACHABLE_METRIC: u32 = 4000;

/// Which WireGuard runs a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// The kernel's `wireguard` link.
    Kernel,
    /// boringtun in this process, over `/dev/net/tun`.
    Userspace,
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Implementation::Kernel => "kernel",
            Implementation::Userspace => "userspace",
        })
    }
}

/// Another node, as a peer of our tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPeer {
    /// Its public key.
    pub public_key: PublicKey,
    /// Its address and WireGuard port.
    pub endpoint: SocketAddr,
    /// Its tunnel address (the peer's allowed IP, as /32).
    pub tunnel_ip: Ipv4Addr,
}

/// A peer as the device has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// Its public key.
    pub public_key: PublicKey,
    /// Where its packets go (and last came from).
    pub endpoint: Option<SocketAddr>,
    /// Its allowed IPs, `(address, prefix length)`.
    pub allowed_ips: Vec<(IpAddr, u8)>,
    /// When the last handshake with it completed, if one did.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}

impl PeerState {
    /// Its tunnel address: the first IPv4 /32 allowed IP.
    pub fn tunnel_ip(&self) -> Option<Ipv4Addr> {
        self.allowed_ips.iter().find_map(|(ip, len)| match ip {
            IpAddr::V4(v4) if *len == 32 => Some(*v4),
            _ => None,
        })
    }
}

/// The node's WireGuard interface. `Send + Sync`; dropping a userspace
/// tunnel stops its device (a kernel interface stays, for a restarted
/// daemon to adopt).
pub struct Tunnel {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    iface: InterfaceName,
    /// The namespace the interface lives in.
    ns: OwnedFd,
    /// (device, inode) of that namespace, to tell namespaces apart.
    ns_id: (u64, u64),
    implementation: Implementation,
    state: Mutex<State>,
    /// The userspace device; `None` for the kernel's or once stopped.
    device: Mutex<Option<DeviceHandle>>,
}

#[derive(Clone, Copy)]
struct State {
    tunnel_ip: Ipv4Addr,
    port: u16,
    public_key: PublicKey,
}

/// Live tunnels of this process by interface name: a second `up` of the same
/// name shares the device instead of replacing it (the UAPI socket path is
/// per name, so two devices of one name would remove each other's socket).
static LIVE: LazyLock<Mutex<HashMap<String, Weak<Inner>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn check_name(name: &str) -> Result<InterfaceName, OverlayError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !ok {
        return Err(OverlayError::invalid(
            "WireGuard interface name",
            name,
            "1 to 15 characters of [A-Za-z0-9_.-]",
        ));
    }
    name.parse::<InterfaceName>().map_err(|_| {
        OverlayError::invalid(
            "WireGuard interface name",
            name,
            "not a valid interface name",
        )
    })
}

fn check_ip(ip: Ipv4Addr) -> Result<(), OverlayError> {
    if net::in_pool(ip) {
        Ok(())
    } else {
        Err(OverlayError::invalid(
            "tunnel address",
            &ip.to_string(),
            format!("not in {}/{}", TUNNEL_POOL.0, TUNNEL_POOL.1),
        ))
    }
}

fn check_port(port: u16) -> Result<(), OverlayError> {
    if port == 0 {
        return Err(OverlayError::invalid(
            "WireGuard port",
            "0",
            "must be 1 to 65535",
        ));
    }
    Ok(())
}

fn ns_id(ns: &OwnedFd) -> Result<(u64, u64), OverlayError> {
    let file = std::fs::File::from(
        ns.try_clone()
            .map_err(|e| OverlayError::io("read the current network namespace", e))?,
    );
    let meta = file
        .metadata()
        .map_err(|e| OverlayError::io("read the current network namespace", e))?;
    Ok((meta.dev(), meta.ino()))
}

fn key(k: &[u8; 32]) -> Key {
    Key(*k)
}

impl Tunnel {
    /// Bring up interface `name` in the calling thread's network namespace:
    /// the kernel's WireGuard if a link of kind `wireguard` can be made, else
    /// boringtun's userspace device; private key, listen port, MTU 1420,
    /// address `tunnel_ip/32`, link up, route `TUNNEL_POOL dev <name>`, and
    /// `unreachable TUNNEL_POOL metric 4000`. An existing kernel interface of
    /// that name is adopted (its peers kept) and repaired; for userspace,
    /// a leftover interface or UAPI socket of that name is replaced, and a
    /// tunnel of that name already running in this process is shared.
    /// Idempotent. On error nothing new is left behind.
    pub async fn up(
        name: &str,
        key: &PrivateKey,
        port: u16,
        tunnel_ip: Ipv4Addr,
    ) -> Result<Tunnel, OverlayError> {
        let iface = check_name(name)?;
        check_ip(tunnel_ip)?;
        check_port(port)?;
        let ns = netns::current()
            .map_err(|e| OverlayError::io("open the current network namespace", e))?;
        let id = ns_id(&ns)?;
        let running = lock(&LIVE).get(name).and_then(Weak::upgrade);
        if let Some(inner) = running {
            if inner.ns_id != id {
                return Err(OverlayError::invalid(
                    "WireGuard interface name",
                    name,
                    "a tunnel of that name already runs in another namespace of this process",
                ));
            }
            let tunnel = Tunnel { inner };
            tunnel.set_private_key(key)?;
            tunnel.set_port(port)?;
            tunnel.set_tunnel_ip(tunnel_ip).await?;
            return Ok(tunnel);
        }

        let nl = Netlink::open(ns.as_fd(), "the node's namespace")?;
        let existing = nl.link(name).await?;
        let (implementation, created) = match existing {
            Some(l) if l.is(InfoKind::Wireguard) => (Implementation::Kernel, false),
            other => {
                if let Some(l) = other {
                    // A TUN left by a device of another process, or anything
                    // else squatting on the name.
                    nl.del(l.index, name).await?;
                    wait_gone(&nl, name, Duration::from_secs(3)).await?;
                }
                match kernel::create(&nl, name).await {
                    Ok(()) => (Implementation::Kernel, true),
                    Err(e) => {
                        tracing::debug!(
                            "no kernel WireGuard for {name} ({e}); using the userspace device"
                        );
                        (Implementation::Userspace, true)
                    }
                }
            }
        };
        let device = match implementation {
            Implementation::Userspace => Some(userspace::start(ns.as_fd(), name)?),
            Implementation::Kernel => None,
        };
        let tunnel = Tunnel {
            inner: Arc::new(Inner {
                name: name.to_string(),
                iface,
                ns,
                ns_id: id,
                implementation,
                state: Mutex::new(State {
                    tunnel_ip,
                    port,
                    public_key: key.public_key(),
                }),
                device: Mutex::new(device),
            }),
        };
        let configured = async {
            tunnel.apply(
                DeviceUpdate::new()
                    .set_private_key(self::key(key.bytes()))
                    .set_listen_port(port),
                &format!("set the private key and listen port {port}"),
            )?;
            let link = nl.must_link(name).await?;
            net::configure(&nl, &link, tunnel_ip).await
        }
        .await;
        if let Err(e) = configured {
            if created {
                let _ = tunnel.stop(&nl).await;
            }
            return Err(e);
        }
        lock(&LIVE).insert(name.to_string(), Arc::downgrade(&tunnel.inner));
        Ok(tunnel)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Which WireGuard runs it.
    pub fn implementation(&self) -> Implementation {
        self.inner.implementation
    }

    /// The tunnel address on the interface.
    pub fn tunnel_ip(&self) -> Ipv4Addr {
        lock(&self.inner.state).tunnel_ip
    }

    /// The listen port.
    pub fn port(&self) -> u16 {
        lock(&self.inner.state).port
    }

    /// The public key of the private key in use.
    pub fn public_key(&self) -> PublicKey {
        lock(&self.inner.state).public_key
    }

    fn apply(&self, update: DeviceUpdate, what: &str) -> Result<(), OverlayError> {
        let inner = &self.inner;
        let context = || format!("{what} on WireGuard interface {}", inner.name);
        let result = match inner.implementation {
            Implementation::Kernel => kernel::apply(inner.ns.as_fd(), &inner.iface, update),
            Implementation::Userspace => {
                // wireguard-control would try to start wireguard-go for a
                // socket that does not answer: check ours is there first.
                if lock(&inner.device).is_none() || !userspace::alive(&inner.name) {
                    return Err(OverlayError::WireGuard {
                        context: context(),
                        reason: "the userspace device is not running".to_string(),
                    });
                }
                update.apply(&inner.iface, Backend::Userspace)
            }
        };
        result.map_err(|e| OverlayError::io(context(), e))
    }

    /// Make the device's peers exactly `peers` (each: endpoint, allowed IP
    /// `tunnel_ip/32`). Peers already configured alike are left alone (their
    /// sessions go on); others are removed, added, or replaced. A peer with
    /// our own public key or tunnel address is skipped.
    pub fn set_peers(&self, peers: &[TunnelPeer]) -> Result<(), OverlayError> {
        let own = *lock(&self.inner.state);
        let mut wanted: HashMap<PublicKey, &TunnelPeer> = HashMap::new();
        let mut ips: HashMap<Ipv4Addr, PublicKey> = HashMap::new();
        for p in peers {
            if p.public_key == own.public_key || p.tunnel_ip == own.tunnel_ip {
                continue;
            }
            check_ip(p.tunnel_ip)?;
            if wanted.insert(p.public_key, p).is_some() {
                return Err(OverlayError::invalid(
                    "WireGuard peer",
                    &p.public_key.to_base64(),
                    "listed twice",
                ));
            }
            if let Some(other) = ips.insert(p.tunnel_ip, p.public_key) {
                return Err(OverlayError::invalid(
                    "WireGuard peer tunnel address",
                    &p.tunnel_ip.to_string(),
                    format!(
                        "given to both {} and {}",
                        other.to_base64(),
                        p.public_key.to_base64()
                    ),
                ));
            }
        }
        let current = self.peers()?;
        // Two requests, removals first: boringtun carries a peer section's
        // `remove=true` over to the sections after it in one request, and
        // cannot change a peer in place (it is removed and added again).
        let mut removals = DeviceUpdate::new();
        let mut removing = 0;
        let mut additions = DeviceUpdate::new();
        let mut adding = 0;
        let userspace = self.inner.implementation == Implementation::Userspace;
        for have in &current {
            let keep = wanted.get(&have.public_key).is_some_and(|p| {
                !userspace
                    || (have.endpoint == Some(p.endpoint)
                        && have.allowed_ips == vec![(IpAddr::V4(p.tunnel_ip), 32)])
            });
            if !keep {
                removals = removals.remove_peer_by_key(&key(have.public_key.bytes()));
                removing += 1;
            }
        }
        let mut sorted: Vec<&TunnelPeer> = wanted.values().copied().collect();
        sorted.sort_by_key(|p| p.tunnel_ip);
        for p in sorted {
            let same = current.iter().any(|h| {
                h.public_key == p.public_key
                    && h.endpoint == Some(p.endpoint)
                    && h.allowed_ips == vec![(IpAddr::V4(p.tunnel_ip), 32)]
            });
            if same {
                continue;
            }
            additions = additions.add_peer(
                PeerConfigBuilder::new(&key(p.public_key.bytes()))
                    .set_endpoint(p.endpoint)
                    .replace_allowed_ips()
                    .add_allowed_ip(IpAddr::V4(p.tunnel_ip), 32),
            );
            adding += 1;
        }
        if removing > 0 {
            self.apply(removals, "remove peers")?;
        }
        if adding > 0 {
            self.apply(additions, "add peers")?;
        }
        Ok(())
    }

    /// Use a new private key (key rotation); the peers are kept.
    pub fn set_private_key(&self, new: &PrivateKey) -> Result<(), OverlayError> {
        self.apply(
            DeviceUpdate::new().set_private_key(key(new.bytes())),
            "set a new private key",
        )?;
        lock(&self.inner.state).public_key = new.public_key();
        Ok(())
    }

    /// Change the tunnel address (the interface's only address).
    pub async fn set_tunnel_ip(&self, ip: Ipv4Addr) -> Result<(), OverlayError> {
        check_ip(ip)?;
        let nl = Netlink::open(self.inner.ns.as_fd(), "the node's namespace")?;
        let link = nl.must_link(&self.inner.name).await?;
        net::configure(&nl, &link, ip).await?;
        lock(&self.inner.state).tunnel_ip = ip;
        Ok(())
    }

    /// Change the listen port (nothing is done if it is the same).
    pub fn set_port(&self, port: u16) -> Result<(), OverlayError> {
        check_port(port)?;
        if self.listen_port()? == Some(port) {
            lock(&self.inner.state).port = port;
            return Ok(());
        }
        self.apply(
            DeviceUpdate::new().set_listen_port(port),
            &format!("listen on UDP port {port} (is it in use?)"),
        )?;
        lock(&self.inner.state).port = port;
        Ok(())
    }

    fn listen_port(&self) -> Result<Option<u16>, OverlayError> {
        Ok(self.read()?.0)
    }

    /// The peers as the device has them now: keys, endpoints, allowed IPs,
    /// last handshake, bytes received and sent.
    pub fn peers(&self) -> Result<Vec<PeerState>, OverlayError> {
        Ok(self.read()?.1)
    }

    fn read(&self) -> Result<(Option<u16>, Vec<PeerState>), OverlayError> {
        let inner = &self.inner;
        match inner.implementation {
            Implementation::Userspace => userspace::get(&inner.name),
            Implementation::Kernel => {
                let dev = kernel::get(inner.ns.as_fd(), &inner.iface).map_err(|e| {
                    OverlayError::io(
                        format!("read the state of WireGuard interface {}", inner.name),
                        e,
                    )
                })?;
                let peers = dev
                    .peers
                    .into_iter()
                    .map(|p| PeerState {
                        public_key: PublicKey::from_bytes(p.config.public_key.0),
                        endpoint: p.config.endpoint,
                        allowed_ips: p
                            .config
                            .allowed_ips
                            .iter()
                            .map(|a| (a.address, a.cidr))
                            .collect(),
                        last_handshake: p.stats.last_handshake_time,
                        rx_bytes: p.stats.rx_bytes,
                        tx_bytes: p.stats.tx_bytes,
                    })
                    .collect();
                Ok((dev.listen_port, peers))
            }
        }
    }

    /// Remove the interface (kernel: delete the link; userspace: stop the
    /// device's threads, which removes its socket and interface) and both
    /// routes of the tunnel pool.
    pub async fn down(self) -> Result<(), OverlayError> {
        {
            let mut live = lock(&LIVE);
            if live
                .get(&self.inner.name)
                .is_some_and(|w| w.as_ptr() == Arc::as_ptr(&self.inner))
            {
                live.remove(&self.inner.name);
            }
        }
        let nl = Netlink::open(self.inner.ns.as_fd(), "the node's namespace")?;
        self.stop(&nl).await?;
        net::remove_routes(&nl, None).await
    }

    /// Stop the device and remove the interface.
    async fn stop(&self, nl: &Netlink) -> Result<(), OverlayError> {
        let name = &self.inner.name;
        let device = lock(&self.inner.device).take();
        if let Some(device) = device {
            drop(device); // tells every thread to exit, removes the socket
            if wait_gone(nl, name, Duration::from_secs(3)).await.is_ok() {
                return Ok(());
            }
        }
        if let Some(link) = nl.link(name).await? {
            let _ = net::remove_routes(nl, Some(link.index)).await;
            nl.del(link.index, name).await?;
        }
        if self.inner.implementation == Implementation::Userspace {
            let _ = std::fs::remove_file(userspace::socket_path(name));
        }
        Ok(())
    }
}

/// Wait until link `name` is gone (a TUN goes when its last descriptor does).
async fn wait_gone(nl: &Netlink, name: &str, limit: Duration) -> Result<(), OverlayError> {
    let start = std::time::Instant::now();
    while nl.link(name).await?.is_some() {
        if start.elapsed() > limit {
            return Err(OverlayError::WireGuard {
                context: format!("remove interface {name}"),
                reason: format!("still there after {}s", limit.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Remove what a tunnel called `name` may have left in the calling thread's
/// namespace: a tunnel of this process by that name is stopped, the
/// interface (kernel or TUN) deleted, the UAPI socket removed, and both routes
/// of the tunnel pool. For cleanup (leaving the swarm, tests); synchronous.
pub fn remove_leftover(name: &str) -> Result<(), OverlayError> {
    check_name(name)?;
    let running = lock(&LIVE).remove(name).and_then(|w| w.upgrade());
    if let Some(inner) = running {
        drop(lock(&inner.device).take());
    }
    let _ = std::fs::remove_file(userspace::socket_path(name));
    let ns =
        netns::current().map_err(|e| OverlayError::io("open the current network namespace", e))?;
    let name = name.to_string();
    // A runtime of our own on a helper thread (switched into our namespace
    // by run_in), so this works from inside a tokio runtime too.
    netns::run_in(ns.as_fd(), move || -> Result<(), OverlayError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OverlayError::io("start a runtime to remove leftovers", e))?;
        rt.block_on(async {
            let ns = netns::current()
                .map_err(|e| OverlayError::io("open the current network namespace", e))?;
            let nl = Netlink::open(ns.as_fd(), "the node's namespace")?;
            let index = nl.link(&name).await?.map(|l| l.index);
            net::remove_routes(&nl, index).await?;
            if let Some(index) = index {
                nl.del(index, &name).await?;
                wait_gone(&nl, &name, Duration::from_secs(3)).await?;
            }
            Ok(())
        })
    })
    .map_err(|e| OverlayError::io("remove a leftover WireGuard interface", e))?
}
