//! End-to-end tests of the WireGuard tunnel on real namespaces: two "nodes"
//! (network namespaces joined by a veth `ul0`, 10.98.0.1 and 10.98.0.2), a
//! [`Tunnel`] in each brought up from a thread inside that namespace, TCP
//! between the tunnel addresses, and a raw capture on the veth proving what
//! crosses the wire. On these machines (no WireGuard module) the userspace
//! device is what runs. Root is required; nothing is skipped.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::capture::{count_containing, count_wireguard, Capture};
use common::*;
use rswarm_overlay::wireguard::UAPI_DIR;
use rswarm_overlay::{
    remove_leftover, Implementation, PrivateKey, Tunnel, TunnelPeer, WIREGUARD_PORT,
};

const TIP_A: Ipv4Addr = Ipv4Addr::new(100, 127, 0, 1);
const TIP_B: Ipv4Addr = Ipv4Addr::new(100, 127, 0, 2);
const UL_A: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
const UL_B: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);
const MARKER: &[u8] = b"RSWARM-WG-MARKER-7f3a9c";

/// Two nodes joined by a veth, each with a host thread; the UAPI sockets of
/// the interface names used are removed on drop, whatever happened.
struct Nodes {
    // Drop order: hosts stop, then the namespaces go, then the sockets.
    a: Host,
    b: Host,
    ns_a: NetNs,
    ns_b: NetNs,
    names: Names,
}

struct Names(Vec<String>);

impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(format!("{UAPI_DIR}/{n}.sock"));
        }
    }
}

impl Nodes {
    fn new(tag: &str) -> Nodes {
        let base = unique(tag);
        let ns_a = NetNs::new(&format!("{base}a"));
        let ns_b = NetNs::new(&format!("{base}b"));
        run(
            "ip",
            &[
                "-n", &ns_a.name, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0",
                "netns", &ns_b.name,
            ],
        );
        for (ns, ip) in [(&ns_a, UL_A), (&ns_b, UL_B)] {
            run(
                "ip",
                &[
                    "-n",
                    &ns.name,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    "ul0",
                ],
            );
            run("ip", &["-n", &ns.name, "link", "set", "ul0", "up"]);
        }
        let id = std::process::id() % 100_000;
        let t = tag.chars().next().unwrap_or('x');
        let names = Names(vec![format!("rswgt{t}{id}a"), format!("rswgt{t}{id}b")]);
        Nodes {
            a: Host::start(&ns_a),
            b: Host::start(&ns_b),
            ns_a,
            ns_b,
            names,
        }
    }

    fn name_a(&self) -> String {
        self.names.0[0].clone()
    }

    fn name_b(&self) -> String {
        self.names.0[1].clone()
    }
}

fn up(host: &Host, name: &str, key: &PrivateKey, port: u16, ip: Ipv4Addr) -> Tunnel {
    let (name, key) = (name.to_string(), key.clone());
    host.run(async move { Tunnel::up(&name, &key, port, ip).await })
        .unwrap_or_else(|e| panic!("Tunnel::up: {e}"))
}

fn down(host: &Host, t: Tunnel) {
    host.run(async move { t.down().await })
        .unwrap_or_else(|e| panic!("Tunnel::down: {e}"));
}

fn peer(key: &PrivateKey, endpoint: Ipv4Addr, port: u16, tunnel_ip: Ipv4Addr) -> TunnelPeer {
    TunnelPeer {
        public_key: key.public_key(),
        endpoint: SocketAddr::new(endpoint.into(), port),
        tunnel_ip,
    }
}

/// Send `payload` over TCP from the namespace `from` to `to_ip` (a server in
/// the namespace `to`); returns what the server received.
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

/// `count` copies of the marker, each followed by some filler.
fn marked_payload(count: usize) -> Vec<u8> {
    let mut p = Vec::new();
    for i in 0..count {
        p.extend_from_slice(MARKER);
        p.extend_from_slice(format!(" chunk {i:05} ").as_bytes());
        p.extend(std::iter::repeat_n(b'.', 300));
    }
    p
}

fn ns_path(ns: &NetNs) -> PathBuf {
    ns.path()
}

#[test]
fn tunnel_carries_traffic_encrypted_rotates_keys_and_goes_down() {
    let n = Nodes::new("e");
    let (name_a, name_b) = (n.name_a(), n.name_b());
    let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
    let ta = up(&n.a, &name_a, &ka, WIREGUARD_PORT, TIP_A);
    let tb = up(&n.b, &name_b, &kb, WIREGUARD_PORT, TIP_B);
    println!("implementation: {}", ta.implementation());
    assert_eq!(ta.name(), name_a);
    assert_eq!(ta.tunnel_ip(), TIP_A);
    if ta.implementation() == Implementation::Userspace {
        assert!(Path::new(&format!("{UAPI_DIR}/{name_a}.sock")).exists());
    }

    // The interface and routes look as designed.
    let pa = ns_path(&n.ns_a);
    let link = in_ns(&pa, "ip", &["-d", "link", "show", &name_a]);
    assert!(link.contains("mtu 1420"), "{link}");
    assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
    let addrs = in_ns(&pa, "ip", &["-4", "-o", "addr", "show", "dev", &name_a]);
    assert!(addrs.contains("100.127.0.1/32"), "{addrs}");
    let routes = in_ns(&pa, "ip", &["route", "show", "100.127.0.0/16"]);
    assert!(
        routes.contains(&format!("100.127.0.0/16 dev {name_a}")),
        "{routes}"
    );
    let all = in_ns(&pa, "ip", &["route", "show", "table", "all"]);
    assert!(
        all.lines()
            .any(|l| l.starts_with("unreachable 100.127.0.0/16 ") && l.contains("metric 4000")),
        "{all}"
    );

    // Idempotent: a second `up` changes nothing and duplicates nothing.
    let ta2 = up(&n.a, &name_a, &ka, WIREGUARD_PORT, TIP_A);
    assert_eq!(ta2.implementation(), ta.implementation());
    drop(ta2); // shares the device: it keeps running for `ta`
    assert_eq!(
        in_ns(&pa, "ip", &["route", "show", "table", "all"])
            .matches("100.127.0.0/16")
            .count(),
        2
    );

    // Without peers nothing goes through.
    let pb = ns_path(&n.ns_b);
    let r = transfer(&pa, &pb, TIP_B, b"hello", Duration::from_millis(1500));
    assert!(r.is_err(), "traffic without peers: {r:?}");

    ta.set_peers(&[peer(&kb, UL_B, WIREGUARD_PORT, TIP_B)])
        .expect("set_peers a");
    tb.set_peers(&[peer(&ka, UL_A, WIREGUARD_PORT, TIP_A)])
        .expect("set_peers b");
    let peers = ta.peers().expect("peers");
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].public_key, kb.public_key());
    assert_eq!(
        peers[0].endpoint,
        Some(SocketAddr::new(UL_B.into(), WIREGUARD_PORT))
    );
    assert_eq!(peers[0].tunnel_ip(), Some(TIP_B));
    // The same set again leaves the peer (and its session) alone.
    ta.set_peers(&[peer(&kb, UL_B, WIREGUARD_PORT, TIP_B)])
        .expect("set_peers a again");

    // A marked transfer: the marker never shows on the wire, WireGuard does.
    let cap = Capture::start(&pa, "ul0");
    let payload = marked_payload(200);
    let got = transfer(&pa, &pb, TIP_B, &payload, Duration::from_secs(10)).expect("transfer");
    let frames = cap.stop();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "payload corrupted");
    assert_eq!(count_containing(&frames, MARKER), 0, "marker seen in clear");
    let wg = count_wireguard(&frames, WIREGUARD_PORT);
    assert!(wg > 10, "only {wg} WireGuard frames of {}", frames.len());
    let pb_state = tb.peers().expect("peers b");
    assert_eq!(pb_state.len(), 1);
    assert!(pb_state[0].last_handshake.is_some(), "{pb_state:?}");
    assert!(
        pb_state[0].rx_bytes as usize > payload.len(),
        "{pb_state:?}"
    );

    // Key rotation on A: B learns the new public key; traffic flows again.
    let ka2 = PrivateKey::generate();
    ta.set_private_key(&ka2).expect("set_private_key");
    tb.set_peers(&[peer(&ka2, UL_A, WIREGUARD_PORT, TIP_A)])
        .expect("set_peers b after rotation");
    let keys: Vec<_> = tb
        .peers()
        .expect("peers")
        .into_iter()
        .map(|p| p.public_key)
        .collect();
    assert_eq!(keys, vec![ka2.public_key()]);
    let got = transfer(&pa, &pb, TIP_B, &payload, Duration::from_secs(15))
        .expect("transfer after rotation");
    assert!(got == payload);
    // And the other way round.
    let got = transfer(&pb, &pa, TIP_A, &payload, Duration::from_secs(15))
        .expect("transfer b to a after rotation");
    assert!(got == payload);

    // Down removes the interface, the socket and both routes.
    down(&n.a, ta);
    down(&n.b, tb);
    assert!(!links(&pa).contains(&name_a), "{:?}", links(&pa));
    assert!(!Path::new(&format!("{UAPI_DIR}/{name_a}.sock")).exists());
    let all = in_ns(&pa, "ip", &["route", "show", "table", "all"]);
    assert!(!all.contains("100.127."), "{all}");
    let all = in_ns(&pb, "ip", &["route", "show", "table", "all"]);
    assert!(!all.contains("100.127."), "{all}");
}

#[test]
fn leftovers_are_replaced_port_and_address_change_and_removal_is_complete() {
    let n = Nodes::new("l");
    let (name_a, name_b) = (n.name_a(), n.name_b());
    let (pa, pb) = (ns_path(&n.ns_a), ns_path(&n.ns_b));
    // A leftover: a TUN of our name and a stale socket file.
    in_ns(
        &pa,
        "ip",
        &["tuntap", "add", "name", &name_a, "mode", "tun"],
    );
    std::fs::create_dir_all(UAPI_DIR).expect("socket dir");
    std::fs::write(format!("{UAPI_DIR}/{name_a}.sock"), b"stale").expect("stale socket");
    let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
    let ta = up(&n.a, &name_a, &ka, WIREGUARD_PORT, TIP_A);
    let tb = up(&n.b, &name_b, &kb, 51999, TIP_B);
    ta.set_peers(&[peer(&kb, UL_B, 51999, TIP_B)])
        .expect("peers a");
    tb.set_peers(&[peer(&ka, UL_A, WIREGUARD_PORT, TIP_A)])
        .expect("peers b");
    let got = transfer(&pa, &pb, TIP_B, b"one", Duration::from_secs(10)).expect("transfer");
    assert_eq!(got, b"one");

    // B moves to another port and tunnel address; A follows.
    let tip_b2 = Ipv4Addr::new(100, 127, 1, 9);
    tb.set_port(51820).expect("set_port");
    let (tb, r) = n.b.run(async move {
        let r = tb.set_tunnel_ip(tip_b2).await;
        (tb, r)
    });
    r.expect("set_tunnel_ip");
    assert_eq!(tb.tunnel_ip(), tip_b2);
    ta.set_peers(&[peer(&kb, UL_B, 51820, tip_b2)])
        .expect("peers a again");
    let got = transfer(&pa, &pb, tip_b2, b"two", Duration::from_secs(10));
    if got.is_err() {
        println!("A: {:?}\nB: {:?}", ta.peers(), tb.peers());
        println!("{}", in_ns(&pb, "ip", &["addr"]));
        println!("{}", in_ns(&pb, "ip", &["route", "show", "table", "all"]));
        println!("{}", in_ns(&pa, "ip", &["route", "show", "table", "all"]));
        println!("{}", in_ns(&pb, "ss", &["-uanp"]));
    }
    let got = got.expect("transfer 2");
    assert_eq!(got, b"two");
    let addrs = in_ns(&pb, "ip", &["-4", "-o", "addr", "show", "dev", &name_b]);
    assert!(
        addrs.contains("100.127.1.9/32") && !addrs.contains("100.127.0.2"),
        "{addrs}"
    );

    // Dropping a userspace tunnel stops it; the unreachable route stays, so
    // nothing to a tunnel address leaves in clear.
    let userspace = ta.implementation() == Implementation::Userspace;
    drop(ta);
    if userspace {
        let start = Instant::now();
        while links(&pa).contains(&name_a) {
            assert!(start.elapsed() < Duration::from_secs(5), "TUN still there");
            std::thread::sleep(Duration::from_millis(50));
        }
        let all = in_ns(&pa, "ip", &["route", "show", "table", "all"]);
        assert!(all.contains("unreachable 100.127.0.0/16"), "{all}");
        let r = transfer(&pa, &pb, tip_b2, b"x", Duration::from_millis(1000));
        assert!(r.is_err(), "traffic with the tunnel gone: {r:?}");
    }
    // remove_leftover clears the rest.
    let name = name_a.clone();
    n.a.run(async move { remove_leftover(&name) })
        .expect("remove_leftover");
    let all = in_ns(&pa, "ip", &["route", "show", "table", "all"]);
    assert!(!all.contains("100.127."), "{all}");
    assert!(!Path::new(&format!("{UAPI_DIR}/{name_a}.sock")).exists());
    down(&n.b, tb);
    assert!(!links(&pb).contains(&name_b));
}

#[test]
fn bad_arguments_are_refused() {
    let n = Nodes::new("x");
    let k = PrivateKey::generate();
    let (name, key) = (n.name_a(), k.clone());
    let e =
        n.a.run(async move { Tunnel::up(&name, &key, 51820, Ipv4Addr::new(10, 1, 2, 3)).await })
            .err()
            .expect("address outside the pool accepted")
            .to_string();
    assert!(e.contains("100.127.0.0/16"), "{e}");
    let key = k.clone();
    let e =
        n.a.run(async move { Tunnel::up("much-too-long-name", &key, 51820, TIP_A).await })
            .err()
            .expect("long name accepted")
            .to_string();
    assert!(e.contains("15"), "{e}");
    assert!(!links(&ns_path(&n.ns_a))
        .iter()
        .any(|l| l.starts_with("rswgt")));
}

/// Throughput through the tunnel against the same link in clear: a 200 MB
/// TCP transfer each way round. Run with
/// `cargo test -p rswarm-overlay --release --test wireguard -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_tunnel_throughput() {
    let n = Nodes::new("b");
    let (ka, kb) = (PrivateKey::generate(), PrivateKey::generate());
    let ta = up(&n.a, &n.name_a(), &ka, WIREGUARD_PORT, TIP_A);
    let tb = up(&n.b, &n.name_b(), &kb, WIREGUARD_PORT, TIP_B);
    ta.set_peers(&[peer(&kb, UL_B, WIREGUARD_PORT, TIP_B)])
        .unwrap();
    tb.set_peers(&[peer(&ka, UL_A, WIREGUARD_PORT, TIP_A)])
        .unwrap();
    let (pa, pb) = (ns_path(&n.ns_a), ns_path(&n.ns_b));
    let payload = vec![7u8; 200 << 20];
    let mbps = |ip| {
        let start = Instant::now();
        let got = transfer(&pa, &pb, ip, &payload, Duration::from_secs(120)).expect("transfer");
        assert_eq!(got.len(), payload.len());
        payload.len() as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e6
    };
    let _warm = transfer(&pa, &pb, TIP_B, b"warm", Duration::from_secs(10));
    let clear: Vec<f64> = (0..3).map(|_| mbps(UL_B)).collect();
    let tunnel: Vec<f64> = (0..3).map(|_| mbps(TIP_B)).collect();
    println!(
        "TCP 200 MB x3 ({}): clear veth {clear:.0?} Mbit/s, WireGuard tunnel {tunnel:.0?} Mbit/s",
        ta.implementation()
    );
}
