//! End-to-end tests of encrypted overlay networks on real namespaces: two
//! hosts (as in `overlay.rs`), each with an `Overlay` and a WireGuard
//! [`Tunnel`]; a task on each side of a network talks TCP to the other while
//! a raw capture on the link between the hosts records what crosses it. An
//! encrypted network's traffic is seen only as WireGuard; a clear network's
//! is seen as VXLAN with the payload readable. Root is required.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::capture::{count_containing, count_wireguard, udp_ports, Capture};
use common::*;
use rswarm_overlay::wireguard::UAPI_DIR;
use rswarm_overlay::{
    mac_for, NetworkConfig, Overlay, Peer, PrivateKey, Tunnel, TunnelPeer, VXLAN_PORT,
    WIREGUARD_PORT,
};

const TIP_A: Ipv4Addr = Ipv4Addr::new(100, 127, 0, 1);
const TIP_B: Ipv4Addr = Ipv4Addr::new(100, 127, 0, 2);
const MARKER: &[u8] = b"RSWARM-ENCRYPTED-MARKER-51c2";
const LONG: Duration = Duration::from_secs(10);

/// Removes the UAPI sockets of the names on drop, whatever happened.
struct Names(Vec<String>);

impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(format!("{UAPI_DIR}/{n}.sock"));
        }
    }
}

fn up(host: &Host, name: &str, key: &PrivateKey, ip: Ipv4Addr) -> Tunnel {
    let (name, key) = (name.to_string(), key.clone());
    host.run(async move { Tunnel::up(&name, &key, WIREGUARD_PORT, ip).await })
        .unwrap_or_else(|e| panic!("Tunnel::up: {e}"))
}

fn set_peers(host: &Host, ov: &Arc<Overlay>, network: &str, peers: Vec<Peer>) {
    let (ov, n) = (ov.clone(), network.to_string());
    host.run(async move { ov.set_peers(&n, &peers).await })
        .unwrap_or_else(|e| panic!("set_peers: {e}"));
}

fn peer(ip: &str, node: Ipv4Addr) -> Peer {
    let ip: Ipv4Addr = ip.parse().expect("ip");
    Peer {
        ip,
        mac: mac_for(ip),
        node_ip: node,
    }
}

fn encrypted(n: &NetworkConfig, tunnel_ip: Option<Ipv4Addr>) -> NetworkConfig {
    NetworkConfig {
        encrypted_local_ip: tunnel_ip,
        ..n.clone()
    }
}

/// Send `payload` over TCP from the namespace `from` to `to_ip:port` served
/// in the namespace `to`; returns what the server received.
fn transfer(
    from: &Path,
    to: &Path,
    to_ip: Ipv4Addr,
    payload: &[u8],
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let listener = in_netns(to, || TcpListener::bind((to_ip, 0)))?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        listener.set_nonblocking(true)?;
        let start = Instant::now();
        let (mut s, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(_) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e),
            }
        };
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(timeout))?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok(got)
    });
    let sent = in_netns(from, || -> std::io::Result<()> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(payload)?;
        s.shutdown(std::net::Shutdown::Write)
    });
    let got = server.join().expect("server thread");
    sent?;
    got
}

fn marked_payload(count: usize) -> Vec<u8> {
    let mut p = Vec::new();
    for i in 0..count {
        p.extend_from_slice(MARKER);
        p.extend_from_slice(format!(" chunk {i:05} ").as_bytes());
        p.extend(std::iter::repeat_n(b'.', 1200));
    }
    p
}

/// Frames that are UDP to the VXLAN port.
fn count_vxlan(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .filter(|f| udp_ports(f).is_some_and(|(_, d)| d == VXLAN_PORT))
        .count()
}

/// Raw IPv4 packets (as read on a TUN) that are fragments.
fn count_fragments(packets: &[Vec<u8>]) -> usize {
    packets
        .iter()
        .filter(|p| p.len() >= 20 && p[0] >> 4 == 4)
        .filter(|p| {
            let frag = u16::from_be_bytes([p[6], p[7]]);
            frag & 0x2000 != 0 || frag & 0x1fff != 0
        })
        .count()
}

fn sandbox_shows(path: &Path, dev: &str, wants: &[&str]) {
    let out = in_ns(path, "ip", &["-d", "link", "show", dev]);
    for want in wants {
        assert!(out.contains(want), "{dev} lacks {want:?}: {out}");
    }
}

#[test]
fn encrypted_network_crosses_the_wire_only_inside_wireguard() {
    let t = TwoHosts::new("w");
    let id = std::process::id() % 100_000;
    let names = Names(vec![format!("rswgtw{id}a"), format!("rswgtw{id}b")]);
    let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
    let ta = up(&t.host_a, &names.0[0], &ka, TIP_A);
    let tb = up(&t.host_b, &names.0[1], &kb, TIP_B);
    ta.set_peers(&[TunnelPeer {
        public_key: kb.public_key(),
        endpoint: SocketAddr::new(IP_B.into(), WIREGUARD_PORT),
        tunnel_ip: TIP_B,
    }])
    .expect("tunnel peers a");
    tb.set_peers(&[TunnelPeer {
        public_key: ka.public_key(),
        endpoint: SocketAddr::new(IP_A.into(), WIREGUARD_PORT),
        tunnel_ip: TIP_A,
    }])
    .expect("tunnel peers b");

    // An encrypted network: each node gives its own tunnel address.
    let sec = net("sec", 4200, "10.31.0.0/24", "10.31.0.1", false);
    ensure(&t.host_a, &t.ov_a, &encrypted(&sec, Some(TIP_A)));
    ensure(&t.host_b, &t.ov_b, &encrypted(&sec, Some(TIP_B)));
    let pa = task(&t.host_a, &t.ov_a, "taska", "sec", "10.31.0.2/24", 0);
    let pb = task(&t.host_b, &t.ov_b, "taskb", "sec", "10.31.0.3/24", 0);
    let leg = {
        let ov = t.ov_a.clone();
        t.host_a
            .run(async move { ov.attach_host("sec", "10.31.0.250/24").await })
            .expect("attach_host")
    };
    let sandbox_a = t.ov_a.network_netns_path("sec");
    sandbox_shows(
        &sandbox_a,
        "vxlan0",
        &["vxlan id 4200", "local 100.127.0.1", "mtu 1370"],
    );
    sandbox_shows(&sandbox_a, "br0", &["mtu 1370"]);
    sandbox_shows(&pa, "eth0", &["mtu 1370"]);
    sandbox_shows(&t.host_a.ns_path, &leg, &["mtu 1370"]);
    // Our own tunnel address among the peers is skipped.
    set_peers(
        &t.host_a,
        &t.ov_a,
        "sec",
        vec![peer("10.31.0.3", TIP_B), peer("10.31.0.9", TIP_A)],
    );
    set_peers(&t.host_b, &t.ov_b, "sec", vec![peer("10.31.0.2", TIP_A)]);
    let fdb = in_ns(&sandbox_a, "bridge", &["fdb", "show", "dev", "vxlan0"]);
    assert!(fdb.contains("dst 100.127.0.2"), "{fdb}");
    assert!(!fdb.contains("dst 100.127.0.1"), "{fdb}");

    let payload = marked_payload(100);
    let wire = Capture::start(&t.host_a.ns_path, "ul0");
    let tun = Capture::start(&t.host_a.ns_path, &names.0[0]);
    let got = transfer(&pa, &pb, "10.31.0.3".parse().unwrap(), &payload, LONG)
        .expect("task to task over the encrypted network");
    let back = transfer(&pb, &pa, "10.31.0.2".parse().unwrap(), &payload, LONG).expect("and back");
    let (frames, inner) = (wire.stop(), tun.stop());
    assert!(got == payload && back == payload, "payload corrupted");
    assert_eq!(count_containing(&frames, MARKER), 0, "marker seen in clear");
    assert_eq!(count_vxlan(&frames), 0, "VXLAN seen in clear on the wire");
    let wg = count_wireguard(&frames, WIREGUARD_PORT);
    println!(
        "encrypted network: {wg} WireGuard frames of {}",
        frames.len()
    );
    assert!(wg > 50, "only {wg} WireGuard frames of {}", frames.len());
    // Inside the tunnel: the VXLAN packets, full-sized yet never fragmented.
    assert!(
        count_containing(&inner, MARKER) > 0,
        "marker not in the tunnel"
    );
    assert_eq!(count_fragments(&inner), 0, "VXLAN fragmented in the tunnel");
    assert!(inner.iter().any(|p| p.len() == 1420), "no full-size packet");

    // A clear network between the same hosts: the marker is on the wire.
    let clr = net("clr", 4201, "10.32.0.0/24", "10.32.0.1", false);
    ensure(&t.host_a, &t.ov_a, &clr);
    ensure(&t.host_b, &t.ov_b, &clr);
    let pa2 = task(&t.host_a, &t.ov_a, "taska2", "clr", "10.32.0.2/24", 0);
    let pb2 = task(&t.host_b, &t.ov_b, "taskb2", "clr", "10.32.0.3/24", 0);
    sandbox_shows(&pa2, "eth0", &["mtu 1450"]);
    set_peers(&t.host_a, &t.ov_a, "clr", vec![peer("10.32.0.3", IP_B)]);
    set_peers(&t.host_b, &t.ov_b, "clr", vec![peer("10.32.0.2", IP_A)]);
    let wire = Capture::start(&t.host_a.ns_path, "ul0");
    let got = transfer(&pa2, &pb2, "10.32.0.3".parse().unwrap(), &payload, LONG)
        .expect("task to task over the clear network");
    let frames = wire.stop();
    assert!(got == payload);
    let (seen, vxlan) = (count_containing(&frames, MARKER), count_vxlan(&frames));
    println!("clear network: marker seen {seen} times in {vxlan} VXLAN frames");
    assert!(seen >= 50, "marker seen only {seen} times in clear");
    assert!(vxlan > 0);
    assert_eq!(count_wireguard(&frames, WIREGUARD_PORT), 0);
    drop((ta, tb));
}

#[test]
fn a_network_switching_between_clear_and_encrypted_converges() {
    let t = TwoHosts::new("s");
    let id = std::process::id() % 100_000;
    let names = Names(vec![format!("rswgts{id}a"), format!("rswgts{id}b")]);
    let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
    let ta = up(&t.host_a, &names.0[0], &ka, TIP_A);
    let tb = up(&t.host_b, &names.0[1], &kb, TIP_B);
    for (tun, key, ip, tip) in [(&ta, &kb, IP_B, TIP_B), (&tb, &ka, IP_A, TIP_A)] {
        tun.set_peers(&[TunnelPeer {
            public_key: key.public_key(),
            endpoint: SocketAddr::new(ip.into(), WIREGUARD_PORT),
            tunnel_ip: tip,
        }])
        .expect("tunnel peers");
    }
    let n = net("sw", 4300, "10.33.0.0/24", "10.33.0.1", false);
    let sandbox_a = t.ov_a.network_netns_path("sw");
    let (ipa, ipb): (Ipv4Addr, Ipv4Addr) =
        ("10.33.0.2".parse().unwrap(), "10.33.0.3".parse().unwrap());
    let payload = marked_payload(20);
    // clear -> encrypted -> clear; `ensure_network`, `attach` and `set_peers`
    // again with the new settings, as the agent does.
    for (mode, a, b) in [
        ("clear", None, None),
        ("encrypted", Some(TIP_A), Some(TIP_B)),
        ("clear again", None, None),
    ] {
        ensure(&t.host_a, &t.ov_a, &encrypted(&n, a));
        ensure(&t.host_b, &t.ov_b, &encrypted(&n, b));
        let pa = task(&t.host_a, &t.ov_a, "taska", "sw", "10.33.0.2/24", 0);
        let pb = task(&t.host_b, &t.ov_b, "taskb", "sw", "10.33.0.3/24", 0);
        set_peers(
            &t.host_a,
            &t.ov_a,
            "sw",
            vec![peer("10.33.0.3", b.unwrap_or(IP_B))],
        );
        set_peers(
            &t.host_b,
            &t.ov_b,
            "sw",
            vec![peer("10.33.0.2", a.unwrap_or(IP_A))],
        );
        let (local, mtu) = match a {
            Some(ip) => (ip.to_string(), "mtu 1370"),
            None => (IP_A.to_string(), "mtu 1450"),
        };
        sandbox_shows(&sandbox_a, "vxlan0", &[&format!("local {local}"), mtu]);
        sandbox_shows(&sandbox_a, "br0", &[mtu]);
        sandbox_shows(&pa, "eth0", &[mtu]);
        let wire = Capture::start(&t.host_a.ns_path, "ul0");
        let got = transfer(&pa, &pb, ipb, &payload, LONG)
            .unwrap_or_else(|e| panic!("{mode}: a to b: {e}"));
        let back = transfer(&pb, &pa, ipa, &payload, LONG)
            .unwrap_or_else(|e| panic!("{mode}: b to a: {e}"));
        let frames = wire.stop();
        assert!(
            got == payload && back == payload,
            "{mode}: payload corrupted"
        );
        let seen = count_containing(&frames, MARKER);
        if a.is_some() {
            assert_eq!(seen, 0, "{mode}: marker seen in clear");
        } else {
            assert!(seen > 0, "{mode}: marker not seen");
        }
    }
    drop((ta, tb));
}

#[test]
fn encrypted_network_needs_a_tunnel_address() {
    let state = StateDir::new(&unique("ea"));
    let ns = NetNs::new(&unique("eans"));
    let host = Host::start(&ns);
    let ov = host.overlay(&state.path, IP_A);
    let n = encrypted(
        &net("bad", 4400, "10.34.0.0/24", "10.34.0.1", false),
        Some(Ipv4Addr::new(10, 99, 0, 1)),
    );
    let e = host
        .run(async move { ov.ensure_network(&n).await })
        .expect_err("a VXLAN source outside the tunnel pool accepted")
        .to_string();
    assert!(
        e.contains("100.127.0.0/16") && e.contains("encrypted"),
        "{e}"
    );
    assert!(!state.path.join("1-bad").exists(), "sandbox made anyway");
}

/// Task-to-task TCP throughput on an encrypted network against a clear one
/// and against the hosts' own addresses over the same link: a 200 MB
/// transfer, 3 runs each, medians printed side by side. Run with
/// `cargo test -p rswarm-overlay --release --test encrypted -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_encrypted_against_clear() {
    let t = TwoHosts::new("b");
    let id = std::process::id() % 100_000;
    let names = Names(vec![format!("rswgtb{id}a"), format!("rswgtb{id}b")]);
    let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
    let ta = up(&t.host_a, &names.0[0], &ka, TIP_A);
    let tb = up(&t.host_b, &names.0[1], &kb, TIP_B);
    for (tun, key, ip, tip) in [(&ta, &kb, IP_B, TIP_B), (&tb, &ka, IP_A, TIP_A)] {
        tun.set_peers(&[TunnelPeer {
            public_key: key.public_key(),
            endpoint: SocketAddr::new(ip.into(), WIREGUARD_PORT),
            tunnel_ip: tip,
        }])
        .expect("tunnel peers");
    }
    let sec = net("sec", 4200, "10.31.0.0/24", "10.31.0.1", false);
    ensure(&t.host_a, &t.ov_a, &encrypted(&sec, Some(TIP_A)));
    ensure(&t.host_b, &t.ov_b, &encrypted(&sec, Some(TIP_B)));
    let clr = net("clr", 4201, "10.32.0.0/24", "10.32.0.1", false);
    ensure(&t.host_a, &t.ov_a, &clr);
    ensure(&t.host_b, &t.ov_b, &clr);
    let sa = task(&t.host_a, &t.ov_a, "sa", "sec", "10.31.0.2/24", 0);
    let sb = task(&t.host_b, &t.ov_b, "sb", "sec", "10.31.0.3/24", 0);
    let ca = task(&t.host_a, &t.ov_a, "ca", "clr", "10.32.0.2/24", 0);
    let cb = task(&t.host_b, &t.ov_b, "cb", "clr", "10.32.0.3/24", 0);
    set_peers(&t.host_a, &t.ov_a, "sec", vec![peer("10.31.0.3", TIP_B)]);
    set_peers(&t.host_b, &t.ov_b, "sec", vec![peer("10.31.0.2", TIP_A)]);
    set_peers(&t.host_a, &t.ov_a, "clr", vec![peer("10.32.0.3", IP_B)]);
    set_peers(&t.host_b, &t.ov_b, "clr", vec![peer("10.32.0.2", IP_A)]);
    let payload = vec![7u8; 200 << 20];
    let run = |from: &Path, to: &Path, ip: &str| {
        let ip: Ipv4Addr = ip.parse().expect("ip");
        let start = Instant::now();
        let got = transfer(from, to, ip, &payload, Duration::from_secs(120)).expect("transfer");
        assert_eq!(got.len(), payload.len());
        payload.len() as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e6
    };
    let _ = transfer(&sa, &sb, "10.31.0.3".parse().unwrap(), b"warm", LONG);
    let (mut host, mut clear, mut enc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        host.push(run(&t.host_a.ns_path, &t.host_b.ns_path, "10.99.0.2"));
        clear.push(run(&ca, &cb, "10.32.0.3"));
        enc.push(run(&sa, &sb, "10.31.0.3"));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (h, c, e) = (med(&mut host), med(&mut clear), med(&mut enc));
    println!(
        "TCP 200 MB x3, median Mbit/s: hosts {h:.0}, clear overlay {c:.0}, encrypted overlay ({}) {e:.0}; encrypted/clear {:.2}, encrypted/hosts {:.2}",
        ta.implementation(),
        e / c,
        e / h
    );
    println!("all runs: hosts {host:.0?}, clear {clear:.0?}, encrypted {enc:.0?}");
}

/// The Internet checksum of an IPv4 header.
fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (20 bytes, checksum filled) for `len` bytes of payload.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let total = (20 + len) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = ip_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// A UDP header (checksum 0: none) for `len` bytes of payload.
fn udp(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h
}

/// A VXLAN packet's UDP payload: VNI `vni`, carrying an Ethernet frame with a
/// UDP datagram `from` -> `to`:`port` holding the marker.
fn vxlan_frame(vni: u32, from: Ipv4Addr, to: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0];
    p.extend_from_slice(&(vni << 8).to_be_bytes());
    p.extend_from_slice(&mac_for(to));
    p.extend_from_slice(&mac_for(from));
    p.extend_from_slice(&[0x08, 0x00]);
    let body = [&udp(40000, port, MARKER.len())[..], MARKER].concat();
    p.extend_from_slice(&ipv4(from, to, 17, body.len()));
    p.extend_from_slice(&body);
    p
}

/// Send a clear VXLAN packet from the host namespace `ns` to `node`:4789 with
/// the outer source `src` (a raw socket, so it may be spoofed).
fn inject(ns: &Path, src: Ipv4Addr, node: Ipv4Addr, vxlan: &[u8]) {
    let packet = [
        &ipv4(src, node, 17, 8 + vxlan.len())[..],
        &udp(40001, VXLAN_PORT, vxlan.len()),
        vxlan,
    ]
    .concat();
    in_netns(ns, || {
        // SAFETY: plain socket calls on a buffer we own; results checked.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let mut to: libc::sockaddr_in = std::mem::zeroed();
            to.sin_family = libc::AF_INET as u16;
            to.sin_addr.s_addr = u32::from_ne_bytes(node.octets());
            let n = libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
            libc::close(fd);
            assert_eq!(
                n as usize,
                packet.len(),
                "sendto: {}",
                std::io::Error::last_os_error()
            );
        }
    });
}

/// Whether a datagram holding the marker reaches `ip:port` in the namespace
/// `task` while `send` runs.
fn reaches(task: &Path, ip: Ipv4Addr, port: u16, send: impl FnOnce()) -> bool {
    let sock = in_netns(task, || std::net::UdpSocket::bind((ip, port))).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(800)))
        .expect("timeout");
    send();
    let mut buf = [0u8; 2048];
    matches!(sock.recv(&mut buf), Ok(n) if buf[..n] == *MARKER)
}

#[test]
fn clear_vxlan_cannot_be_injected_into_an_encrypted_network() {
    let t = TwoHosts::new("i");
    let id = std::process::id() % 100_000;
    let names = Names(vec![format!("rswgti{id}a"), format!("rswgti{id}b")]);
    let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
    let ta = up(&t.host_a, &names.0[0], &ka, TIP_A);
    let tb = up(&t.host_b, &names.0[1], &kb, TIP_B);
    for (tun, key, ip, tip) in [(&ta, &kb, IP_B, TIP_B), (&tb, &ka, IP_A, TIP_A)] {
        tun.set_peers(&[TunnelPeer {
            public_key: key.public_key(),
            endpoint: SocketAddr::new(ip.into(), WIREGUARD_PORT),
            tunnel_ip: tip,
        }])
        .expect("tunnel peers");
    }
    let sec = net("sec", 4200, "10.31.0.0/24", "10.31.0.1", false);
    let clr = net("clr", 4201, "10.32.0.0/24", "10.32.0.1", false);
    ensure(&t.host_a, &t.ov_a, &encrypted(&sec, Some(TIP_A)));
    ensure(&t.host_b, &t.ov_b, &encrypted(&sec, Some(TIP_B)));
    ensure(&t.host_a, &t.ov_a, &clr);
    let pa = task(&t.host_a, &t.ov_a, "taska", "sec", "10.31.0.2/24", 0);
    let pb = task(&t.host_b, &t.ov_b, "taskb", "sec", "10.31.0.3/24", 0);
    let pc = task(&t.host_a, &t.ov_a, "taskc", "clr", "10.32.0.2/24", 0);
    set_peers(&t.host_a, &t.ov_a, "sec", vec![peer("10.31.0.3", TIP_B)]);
    set_peers(&t.host_b, &t.ov_b, "sec", vec![peer("10.31.0.2", TIP_A)]);
    let table = in_ns(
        &t.host_a.ns_path,
        "nft",
        &["list", "table", "ip", "rswarm_wg"],
    );
    // nft prints the VNIs in hex: 4200 = 0x1068, 4201 = 0x1069.
    assert!(
        table.contains("0x1068") && !table.contains("0x1069"),
        "{table}"
    );

    let (sec_a, sec_b) = ("10.31.0.2".parse().unwrap(), "10.31.0.3".parse().unwrap());
    let (clr_a, clr_b) = ("10.32.0.2".parse().unwrap(), "10.32.0.9".parse().unwrap());
    let host_b = t.host_b.ns_path.clone();
    // The injection works at all: a clear network takes it, from the node's
    // own address and from a spoofed tunnel address.
    for src in [IP_B, TIP_B] {
        assert!(
            reaches(&pc, clr_a, 9999, || inject(
                &host_b,
                src,
                IP_A,
                &vxlan_frame(4201, clr_b, clr_a, 9999)
            )),
            "clear network did not take the injected frame from {src}"
        );
    }
    // The encrypted network does not, from either source.
    for src in [IP_B, TIP_B] {
        assert!(
            !reaches(&pa, sec_a, 9999, || inject(
                &host_b,
                src,
                IP_A,
                &vxlan_frame(4200, sec_b, sec_a, 9999)
            )),
            "clear VXLAN from {src} injected into the encrypted network"
        );
    }
    // While its real traffic, out of the tunnel, still flows.
    let got = transfer(&pb, &pa, sec_a, MARKER, LONG).expect("traffic through the tunnel");
    assert_eq!(got, MARKER);

    // Removing the encrypted network removes the guard.
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.remove_network("sec").await })
        .expect("remove_network");
    let rules = in_ns(&t.host_a.ns_path, "nft", &["list", "ruleset"]);
    assert!(!rules.contains("rswarm_wg"), "{rules}");
    drop((ta, tb));
}
