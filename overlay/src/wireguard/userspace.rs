//! The userspace WireGuard device: boringtun's `DeviceHandle` in this
//! process, over a `/dev/net/tun` interface, serving the cross-platform UAPI
//! on `/var/run/wireguard/<iface>.sock` (which `wireguard-control`'s
//! `Backend::Userspace` speaks).
//!
//! # Threads
//!
//! boringtun runs `n_threads` event-loop threads sharing one epoll set; with
//! `use_multi_queue` each thread has its own queue of the multi-queue TUN
//! device, so the kernel spreads flows over them. We use **2**: the machines
//! have 2 cores, and one TCP stream already has work both ways (data encrypted
//! on one thread while ACKs or the reverse stream are decrypted on the other);
//! more threads than cores only add lock and cache contention (boringtun's own
//! default of 4 was measured no faster here). `use_connected_socket` stays on:
//! after a peer's first packet its traffic gets its own connected UDP socket
//! (no per-packet route lookup or peer search).
//!
//! The device is created on a short-lived thread switched into the target
//! namespace: the TUN interface, the UDP sockets (first on a random port, then
//! `listen_port` set through the UAPI) and the event-loop threads it spawns
//! all live in that namespace, and boringtun's `sigprocmask` of SIGINT and
//! SIGTERM (for its signalfd) stays on its own threads instead of a tokio
//! worker of the caller. Dropping the handle makes every thread exit and
//! removes the socket; the TUN interface disappears with the last file
//! descriptor.
//!
//! # Reading the state back
//!
//! `wireguard-control`'s userspace reader prints a line on stdout for every
//! key it does not know (boringtun sends `own_public_key`) and reads
//! boringtun's `last_handshake_time_sec` (seconds *since* the handshake) as a
//! UNIX time; [`get`] parses the same UAPI `get=1` answer itself.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use boringtun::device::{DeviceConfig, DeviceHandle};

use super::keys::PublicKey;
use super::PeerState;
use crate::error::OverlayError;
use crate::netns;

/// Where boringtun (and wireguard-go) put their UAPI sockets.
pub const UAPI_DIR: &str = "/var/run/wireguard";

/// Event-loop threads of a device (see the module doc).
const THREADS: usize = 2;

/// The UAPI socket of interface `name`.
pub(crate) fn socket_path(name: &str) -> PathBuf {
    PathBuf::from(format!("{UAPI_DIR}/{name}.sock"))
}

/// Start a device for interface `name` in namespace `ns`.
pub(super) fn start(ns: BorrowedFd<'_>, name: &str) -> Result<DeviceHandle, OverlayError> {
    let what = || format!("start the userspace WireGuard device {name}");
    std::fs::create_dir_all(UAPI_DIR).map_err(|e| OverlayError::io(what(), e))?;
    let config = DeviceConfig {
        n_threads: THREADS,
        use_connected_socket: true,
        use_multi_queue: true,
        uapi_fd: -1,
    };
    let name = name.to_string();
    let handle = netns::run_in(ns, move || DeviceHandle::new(&name, config))
        .map_err(|e| OverlayError::io(what(), e))?
        .map_err(|e| OverlayError::WireGuard {
            context: what(),
            reason: e.to_string(),
        })?;
    Ok(handle)
}

/// Whether the UAPI socket of `name` answers.
pub(crate) fn alive(name: &str) -> bool {
    UnixStream::connect(socket_path(name)).is_ok()
}

/// Read the device's state through the UAPI (`get=1`).
pub(super) fn get(name: &str) -> Result<(Option<u16>, Vec<PeerState>), OverlayError> {
    let what = || format!("read the state of WireGuard interface {name}");
    let io = |e: std::io::Error| OverlayError::io(what(), e);
    let mut sock = UnixStream::connect(socket_path(name)).map_err(io)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    sock.write_all(b"get=1\n\n").map_err(io)?;
    let bad = |line: &str| OverlayError::WireGuard {
        context: what(),
        reason: format!("unexpected answer line {line:?}"),
    };
    let mut port = None;
    let mut peers: Vec<PeerState> = Vec::new();
    let now = SystemTime::now();
    for line in BufReader::new(sock).lines() {
        let line = line.map_err(io)?;
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad(&line));
        };
        let peer = peers.last_mut();
        match (key, peer) {
            ("errno", _) if value != "0" => {
                return Err(OverlayError::WireGuard {
                    context: what(),
                    reason: format!("the device answered errno {value}"),
                });
            }
            ("listen_port", _) => port = Some(value.parse().map_err(|_| bad(&line))?),
            ("public_key", _) => {
                let key = hex32(value).ok_or_else(|| bad(&line))?;
                peers.push(PeerState {
                    public_key: PublicKey::from_bytes(key),
                    endpoint: None,
                    allowed_ips: Vec::new(),
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                });
            }
            ("endpoint", Some(p)) => {
                p.endpoint = Some(value.parse::<SocketAddr>().map_err(|_| bad(&line))?)
            }
            ("allowed_ip", Some(p)) => {
                let (ip, len) = value.split_once('/').ok_or_else(|| bad(&line))?;
                let ip: IpAddr = ip.parse().map_err(|_| bad(&line))?;
                let len: u8 = len.parse().map_err(|_| bad(&line))?;
                p.allowed_ips.push((ip, len));
            }
            // boringtun sends the time since the handshake, not a UNIX time.
            ("last_handshake_time_sec", Some(p)) => {
                let secs: u64 = value.parse().map_err(|_| bad(&line))?;
                p.last_handshake = now.checked_sub(Duration::from_secs(secs));
            }
            ("rx_bytes", Some(p)) => p.rx_bytes = value.parse().map_err(|_| bad(&line))?,
            ("tx_bytes", Some(p)) => p.tx_bytes = value.parse().map_err(|_| bad(&line))?,
            _ => {} // own_public_key, fwmark, keepalive, nsec, protocol_version
        }
    }
    Ok((port, peers))
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
