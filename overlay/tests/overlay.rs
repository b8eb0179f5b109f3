//! End-to-end tests of the overlay data path on real namespaces: two "hosts"
//! (network namespaces joined by a veth, 10.99.0.1 and 10.99.0.2), an
//! `Overlay` per host driven from a thread inside that host's namespace, task
//! namespaces talking TCP over VXLAN. Root is required; nothing is skipped.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rswarm_overlay::{mac_for, Overlay, Peer};

const SHORT: Duration = Duration::from_millis(1500);
const LONG: Duration = Duration::from_secs(5);

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

fn peer(ip: &str, node: Ipv4Addr) -> Peer {
    let ip: Ipv4Addr = ip.parse().expect("ip");
    Peer {
        ip,
        mac: mac_for(ip),
        node_ip: node,
    }
}

fn set_peers(host: &Host, ov: &Arc<Overlay>, network: &str, peers: Vec<Peer>) {
    let (ov, n) = (ov.clone(), network.to_string());
    host.run(async move { ov.set_peers(&n, &peers).await })
        .unwrap_or_else(|e| panic!("set_peers: {e}"));
}

#[test]
fn tasks_on_two_hosts_talk_over_vxlan_only_with_peers() {
    let t = TwoHosts::new("p");
    let n1 = net("net1", 4100, "10.30.0.0/24", "10.30.0.1", false);
    ensure(&t.host_a, &t.ov_a, &n1);
    ensure(&t.host_b, &t.ov_b, &n1);
    let pa = task(&t.host_a, &t.ov_a, "taska", "net1", "10.30.0.2/24", 0);
    let pb = task(&t.host_b, &t.ov_b, "taskb", "net1", "10.30.0.3/24", 0);
    assert_eq!(pa, t.ov_a.task_netns_path("taska"));
    assert!(pa.starts_with(&t.state_a.path));

    // The devices look as designed.
    let sandbox_a = t.ov_a.network_netns_path("net1");
    let vx = in_ns(&sandbox_a, "ip", &["-d", "link", "show", "vxlan0"]);
    for want in [
        "vxlan id 4100",
        "local 10.99.0.1",
        "dstport 4789",
        "nolearning",
        "proxy",
        "master br0",
        "mtu 1450",
    ] {
        assert!(vx.contains(want), "vxlan0 lacks {want:?}: {vx}");
    }
    let br = in_ns(
        &sandbox_a,
        "ip",
        &["-o", "-4", "addr", "show", "dev", "br0"],
    );
    assert!(br.contains("10.30.0.1/24"), "br0 address: {br}");
    let eth = in_ns(&pa, "ip", &["-d", "link", "show", "eth0"]);
    assert!(eth.contains("02:42:0a:1e:00:02"), "eth0 MAC: {eth}");
    assert!(eth.contains("mtu 1450"), "eth0 MTU: {eth}");
    let addr = in_ns(&pa, "ip", &["-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("10.30.0.2/24"), "eth0 address: {addr}");
    // An overlay network gives the connected route only (the way out is
    // the gateway bridge's, tested in tests/gateway.rs).
    let routes = in_ns(&pa, "ip", &["-4", "route", "show"]);
    assert_eq!(
        routes.trim(),
        "10.30.0.0/24 dev eth0 proto kernel scope link src 10.30.0.2",
        "routes: {routes}"
    );
    // The VXLAN socket is in the host namespace, not in the sandbox.
    let host_udp = in_ns(&t.host_a.ns_path, "ss", &["-Hlun", "sport = :4789"]);
    assert!(!host_udp.trim().is_empty(), "no UDP 4789 socket in host A");
    let sandbox_udp = in_ns(&sandbox_a, "ss", &["-Hlun", "sport = :4789"]);
    assert!(
        sandbox_udp.trim().is_empty(),
        "UDP socket in the sandbox: {sandbox_udp}"
    );
    // lo is up: the DNS address can be bound.
    let dns = t
        .ov_a
        .in_task_netns("taska", || {
            std::net::UdpSocket::bind("127.0.0.11:53").map(|_| ())
        })
        .expect("enter");
    assert!(dns.is_ok(), "bind 127.0.0.11:53 in the task: {dns:?}");

    let _server = Server::start(&t.ov_b, "taskb", sa("10.30.0.3", 8080), "hello from b");
    // Sanity: the server answers inside its own namespace.
    assert_eq!(
        fetch(&t.ov_b, "taskb", sa("10.30.0.3", 8080), LONG).expect("local fetch"),
        "hello from b"
    );

    // No peers: no way across.
    let r = fetch(&t.ov_a, "taska", sa("10.30.0.3", 8080), SHORT);
    assert!(r.is_err(), "reached B without forwarding entries: {r:?}");

    // Peers from the "store": each host gets the other's task.
    set_peers(
        &t.host_a,
        &t.ov_a,
        "net1",
        vec![peer("10.30.0.3", IP_B), peer("10.30.0.2", IP_A)],
    );
    set_peers(
        &t.host_b,
        &t.ov_b,
        "net1",
        vec![peer("10.30.0.2", IP_A), peer("10.30.0.3", IP_B)],
    );
    assert_eq!(
        fetch(&t.ov_a, "taska", sa("10.30.0.3", 8080), LONG).expect("fetch over the overlay"),
        "hello from b"
    );
    // The entries are static and only the remote ones (the local peer is skipped).
    let fdb = in_ns(&sandbox_a, "bridge", &["fdb", "show", "dev", "vxlan0"]);
    let entry = fdb
        .lines()
        .find(|l| l.starts_with("02:42:0a:1e:00:03 dst 10.99.0.2"))
        .unwrap_or_else(|| panic!("no FDB entry for B's task: {fdb}"));
    assert!(entry.contains(" self permanent"), "fdb: {fdb}");
    assert!(
        !fdb.contains("02:42:0a:1e:00:02 dst"),
        "local task in fdb: {fdb}"
    );
    let neigh = in_ns(&sandbox_a, "ip", &["neigh", "show", "dev", "vxlan0"]);
    assert!(
        neigh.contains("10.30.0.3 lladdr 02:42:0a:1e:00:03 PERMANENT"),
        "neigh: {neigh}"
    );
    assert_eq!(neigh.lines().count(), 1, "neigh: {neigh}");

    // Setting the same list again changes nothing.
    set_peers(&t.host_a, &t.ov_a, "net1", vec![peer("10.30.0.3", IP_B)]);
    assert_eq!(
        in_ns(&sandbox_a, "bridge", &["fdb", "show", "dev", "vxlan0"]),
        fdb
    );

    // A peer that moved: the entry follows it (replace, not duplicate).
    set_peers(
        &t.host_a,
        &t.ov_a,
        "net1",
        vec![peer("10.30.0.3", Ipv4Addr::new(10, 99, 0, 77))],
    );
    let moved = in_ns(&sandbox_a, "bridge", &["fdb", "show", "dev", "vxlan0"]);
    assert!(moved.contains("dst 10.99.0.77"), "moved: {moved}");
    assert!(!moved.contains("dst 10.99.0.2"), "stale dst kept: {moved}");
    assert!(
        fetch(&t.ov_a, "taska", sa("10.30.0.3", 8080), SHORT).is_err(),
        "reached B through a wrong forwarding entry"
    );

    // Stale entries go: an empty list cuts the path again.
    set_peers(&t.host_a, &t.ov_a, "net1", vec![]);
    let fdb = in_ns(&sandbox_a, "bridge", &["fdb", "show", "dev", "vxlan0"]);
    assert!(!fdb.contains("dst"), "stale fdb entries: {fdb}");
    let neigh = in_ns(&sandbox_a, "ip", &["neigh", "show", "dev", "vxlan0"]);
    assert!(neigh.trim().is_empty(), "stale neighbours: {neigh}");
    assert!(
        fetch(&t.ov_a, "taska", sa("10.30.0.3", 8080), SHORT).is_err(),
        "reached B after its peer entry was removed"
    );

    // And back.
    set_peers(&t.host_a, &t.ov_a, "net1", vec![peer("10.30.0.3", IP_B)]);
    assert_eq!(
        fetch(&t.ov_a, "taska", sa("10.30.0.3", 8080), LONG)
            .expect("fetch after re-adding the peer"),
        "hello from b"
    );
    drop(pb);
}

#[test]
fn two_networks_are_isolated() {
    let t = TwoHosts::new("i");
    let n1 = net("net1", 4100, "10.30.0.0/24", "10.30.0.1", false);
    let n2 = net("net2", 4200, "10.31.0.0/24", "10.31.0.1", false);
    for n in [&n1, &n2] {
        ensure(&t.host_a, &t.ov_a, n);
        ensure(&t.host_b, &t.ov_b, n);
    }
    task(&t.host_a, &t.ov_a, "taska", "net1", "10.30.0.2/24", 0);
    task(&t.host_b, &t.ov_b, "taskb", "net1", "10.30.0.3/24", 0);
    task(&t.host_a, &t.ov_a, "taskc", "net2", "10.31.0.2/24", 0);
    task(&t.host_b, &t.ov_b, "taskd", "net2", "10.31.0.3/24", 0);
    // Each host learns the other host's task of each network.
    set_peers(&t.host_a, &t.ov_a, "net1", vec![peer("10.30.0.3", IP_B)]);
    set_peers(&t.host_a, &t.ov_a, "net2", vec![peer("10.31.0.3", IP_B)]);
    set_peers(&t.host_b, &t.ov_b, "net1", vec![peer("10.30.0.2", IP_A)]);
    set_peers(&t.host_b, &t.ov_b, "net2", vec![peer("10.31.0.2", IP_A)]);
    let _sb = Server::start(&t.ov_b, "taskb", sa("10.30.0.3", 8080), "b");
    let _sa = Server::start(&t.ov_a, "taska", sa("10.30.0.2", 8080), "a");
    let _sd = Server::start(&t.ov_b, "taskd", sa("10.31.0.3", 8080), "d");

    // Within each network, across hosts: fine.
    assert_eq!(
        fetch(&t.ov_a, "taska", sa("10.30.0.3", 8080), LONG).expect("a->b"),
        "b"
    );
    assert_eq!(
        fetch(&t.ov_a, "taskc", sa("10.31.0.3", 8080), LONG).expect("c->d"),
        "d"
    );
    // From net2 into net1: neither the remote task nor the one on the same host.
    assert!(
        fetch(&t.ov_a, "taskc", sa("10.30.0.3", 8080), SHORT).is_err(),
        "net2 reached net1 across hosts"
    );
    assert!(
        fetch(&t.ov_a, "taskc", sa("10.30.0.2", 8080), SHORT).is_err(),
        "net2 reached net1 on the same host"
    );
    // Nor the other way.
    assert!(
        fetch(&t.ov_b, "taskb", sa("10.31.0.3", 8080), SHORT).is_err(),
        "net1 reached net2"
    );
    // Separate sandboxes.
    assert!(links(&t.ov_a.network_netns_path("net1")).contains(&"vxlan0".to_string()));
    let vx2 = in_ns(
        &t.ov_a.network_netns_path("net2"),
        "ip",
        &["-d", "link", "show", "vxlan0"],
    );
    assert!(vx2.contains("vxlan id 4200"), "{vx2}");
}

#[test]
fn overlay_networks_give_no_default_route() {
    let base = unique("n");
    let ns = NetNs::new(&base);
    let state = StateDir::new(&format!("{base}-state"));
    let host = Host::start(&ns);
    let ov = host.overlay(&state.path, Ipv4Addr::new(10, 99, 0, 1));
    let internal = net("back", 4300, "10.40.0.0/24", "10.40.0.1", true);
    let public = net("front", 4301, "10.41.0.0/24", "10.41.0.1", false);
    ensure(&host, &ov, &internal);
    ensure(&host, &ov, &public);

    // Only on an internal network: no default route at all.
    let p = task(&host, &ov, "only", "back", "10.40.0.2/24", 0);
    let routes = in_ns(&p, "ip", &["-4", "route", "show"]);
    assert!(
        !routes.contains("default"),
        "internal network gave a default route: {routes}"
    );
    assert!(routes.contains("10.40.0.0/24 dev eth0"), "{routes}");

    // Internal and normal: still no default route from the overlay.
    let p = task(&host, &ov, "both", "back", "10.40.0.3/24", 0);
    let (ov2, t) = (ov.clone(), "both".to_string());
    host.run(async move { ov2.attach(&t, "front", "10.41.0.3/24", 1).await })
        .expect("attach front");
    let routes = in_ns(&p, "ip", &["-4", "route", "show", "default"]);
    assert!(routes.trim().is_empty(), "overlay default route: {routes}");

    // The gateway bridge gives it, through the next interface.
    let gw = gateway(&host, &ov, "both", 2);
    let routes = in_ns(&p, "ip", &["-4", "route", "show", "default"]);
    assert_eq!(
        routes.trim(),
        "default via 172.18.0.1 dev eth2 proto static",
        "{routes}"
    );
    assert_eq!(ov.gateway_addr("both"), Some(gw));
    assert_eq!(ov.gateway_addr("only"), None);

    // After a restart, attaching again still adds no route.
    let ov_restarted = host.overlay(&state.path, Ipv4Addr::new(10, 99, 0, 1));
    let p = {
        let ov = ov_restarted.clone();
        host.run(async move {
            let p = ov.create_task_netns("late").await?;
            ov.attach("late", "front", "10.41.0.9/24", 0).await?;
            Ok::<_, rswarm_overlay::OverlayError>(p)
        })
        .expect("attach after restart")
    };
    let routes = in_ns(&p, "ip", &["-4", "route", "show", "default"]);
    assert!(
        routes.trim().is_empty(),
        "attach after restart gave a route: {routes}"
    );
    // An address outside the subnet is refused.
    let ov2 = ov.clone();
    let err = host.run(async move { ov2.attach("late", "front", "10.99.9.9/24", 1).await });
    assert!(err.is_err(), "address outside the subnet accepted");
}

#[test]
fn idempotent_calls_and_removal_leave_nothing() {
    let t = TwoHosts::new("r");
    let n1 = net("net1", 4100, "10.30.0.0/24", "10.30.0.1", false);
    ensure(&t.host_a, &t.ov_a, &n1);
    ensure(&t.host_a, &t.ov_a, &n1);
    let p = task(&t.host_a, &t.ov_a, "taska", "net1", "10.30.0.2/24", 0);
    task(&t.host_a, &t.ov_a, "taska", "net1", "10.30.0.2/24", 0);
    let sandbox = t.ov_a.network_netns_path("net1");

    let mut sandbox_links = links(&sandbox);
    let veth = sandbox_links
        .iter()
        .find(|n| n.starts_with("veth"))
        .cloned()
        .expect("a veth in the sandbox");
    sandbox_links.retain(|n| n != &veth);
    assert_eq!(sandbox_links, ["br0", "lo", "vxlan0"], "sandbox devices");
    assert_eq!(links(&p), ["eth0", "lo"], "task devices");
    let addrs = in_ns(&p, "ip", &["-o", "-4", "addr", "show", "dev", "eth0"]);
    assert_eq!(addrs.lines().count(), 1, "addresses: {addrs}");
    let br = in_ns(&sandbox, "ip", &["-o", "-4", "addr", "show", "dev", "br0"]);
    assert_eq!(br.lines().count(), 1, "bridge addresses: {br}");
    let routes = in_ns(&p, "ip", &["-4", "route", "show", "default"]);
    assert_eq!(routes.lines().count(), 0, "default routes: {routes}");
    let master = in_ns(&sandbox, "ip", &["-o", "link", "show", "master", "br0"]);
    assert_eq!(master.lines().count(), 2, "bridge ports: {master}");
    assert_eq!(
        mounts_under(&t.state_a.path).len(),
        2,
        "one mount per namespace"
    );

    // Re-attaching with another address converges to it (no second address).
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.attach("taska", "net1", "10.30.0.9/24", 0).await })
        .expect("re-attach");
    let addrs = in_ns(&p, "ip", &["-o", "-4", "addr", "show", "dev", "eth0"]);
    assert_eq!(addrs.lines().count(), 1, "addresses: {addrs}");
    assert!(addrs.contains("10.30.0.9/24"), "{addrs}");
    assert!(in_ns(&p, "ip", &["link", "show", "eth0"]).contains("02:42:0a:1e:00:09"));
    assert_eq!(links(&sandbox).len(), 4, "sandbox devices after re-attach");

    // Removing the task leaves the sandbox with its own devices only, and no mount.
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.remove_task_netns("taska").await })
        .expect("remove task");
    assert!(!p.exists(), "task netns file left");
    assert_eq!(
        links(&sandbox),
        ["br0", "lo", "vxlan0"],
        "sandbox after task removal"
    );
    assert_eq!(
        mounts_under(&t.state_a.path).len(),
        1,
        "mounts: {:?}",
        mounts_under(&t.state_a.path)
    );
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.remove_task_netns("taska").await })
        .expect("remove task twice");

    // Removing the network leaves no device in the host and no mount.
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.remove_network("net1").await })
        .expect("remove network");
    assert!(!sandbox.exists(), "sandbox file left");
    assert!(mounts_under(&t.state_a.path).is_empty(), "mounts left");
    assert_eq!(links(&t.host_a.ns_path), ["lo", "ul0"], "host devices");
    let udp = in_ns(&t.host_a.ns_path, "ss", &["-Hlun", "sport = :4789"]);
    assert!(udp.trim().is_empty(), "VXLAN socket left: {udp}");
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.remove_network("net1").await })
        .expect("remove network twice");

    // The same VNI can be set up again at once.
    ensure(&t.host_a, &t.ov_a, &n1);
    assert!(links(&t.ov_a.network_netns_path("net1")).contains(&"vxlan0".to_string()));

    // Things that are not there are reported as such.
    let ov = t.ov_a.clone();
    let r = t
        .host_a
        .run(async move { ov.attach("ghost", "net1", "10.30.0.5/24", 0).await });
    assert!(
        matches!(r, Err(rswarm_overlay::OverlayError::NoSuchTask(_))),
        "{r:?}"
    );
    let ov = t.ov_a.clone();
    let r = t
        .host_a
        .run(async move { ov.set_peers("nonet", &[]).await });
    assert!(
        matches!(r, Err(rswarm_overlay::OverlayError::NoSuchNetwork(_))),
        "{r:?}"
    );
    assert!(t.ov_a.in_task_netns("ghost", || ()).is_err());
}

#[test]
fn cleanup_removes_leftovers_of_a_crashed_instance() {
    let base = unique("c");
    let ns = NetNs::new(&base);
    let state = StateDir::new(&format!("{base}-state"));
    let host = Host::start(&ns);
    let local = Ipv4Addr::new(10, 99, 0, 1);
    let n1 = net("keepnet", 4100, "10.30.0.0/24", "10.30.0.1", false);
    let n2 = net("gonenet", 4200, "10.31.0.0/24", "10.31.0.1", false);
    let held;
    {
        // The instance that "crashes": it is dropped without removing anything.
        let ov = host.overlay(&state.path, local);
        ensure(&host, &ov, &n1);
        ensure(&host, &ov, &n2);
        task(&host, &ov, "t1", "keepnet", "10.30.0.2/24", 0);
        task(&host, &ov, "t2", "keepnet", "10.30.0.3/24", 0);
        let p3 = task(&host, &ov, "t3", "keepnet", "10.30.0.4/24", 0);
        let (ov2, t) = (ov.clone(), "t1".to_string());
        host.run(async move { ov2.attach(&t, "gonenet", "10.31.0.2/24", 1).await })
            .expect("attach t1 to gonenet");
        // t3's namespace is still held by a "process" but its mount is lost:
        // its veth stays in the sandbox with no file to find it by.
        held = std::fs::File::open(&p3).expect("hold t3");
        nix::mount::umount2(&p3, nix::mount::MntFlags::MNT_DETACH).expect("umount t3");
        std::fs::remove_file(&p3).expect("rm t3");
    }
    let sandbox1 = state.path.join("1-keepnet");
    assert_eq!(
        links(&sandbox1)
            .iter()
            .filter(|n| n.starts_with("veth"))
            .count(),
        3
    );
    assert_eq!(
        in_ns(&ns.path(), "ss", &["-Hlun", "sport = :4789"])
            .lines()
            .count(),
        1
    );

    // The restarted instance keeps keepnet and t1, removes the rest.
    let ov = host.overlay(&state.path, local);
    let keep_nets = vec!["keepnet".to_string()];
    let keep_tasks = vec!["t1".to_string()];
    let ov2 = ov.clone();
    host.run(async move { ov2.cleanup(&keep_nets, &keep_tasks).await })
        .expect("cleanup");
    let mut files: Vec<String> = std::fs::read_dir(&state.path)
        .expect("read state")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["1-keepnet", "t1"], "state dir after cleanup");
    assert_eq!(mounts_under(&state.path).len(), 2);
    let veths: Vec<String> = links(&sandbox1)
        .into_iter()
        .filter(|n| n.starts_with("veth"))
        .collect();
    assert_eq!(veths.len(), 1, "veths left in keepnet: {veths:?}");
    let alias = in_ns(&sandbox1, "ip", &["link", "show", &veths[0]]);
    assert!(alias.contains("alias rswarm task=t1"), "{alias}");
    // t1 lost its eth1 with gonenet's sandbox.
    assert_eq!(links(&state.path.join("t1")), ["eth0", "lo"]);
    drop(held);

    // Kept things still work with the new instance: idempotent re-attach.
    ensure(&host, &ov, &n1);
    task(&host, &ov, "t1", "keepnet", "10.30.0.2/24", 0);
    assert_eq!(
        links(&sandbox1)
            .iter()
            .filter(|n| n.starts_with("veth"))
            .count(),
        1
    );

    // Nothing kept: nothing left.
    let ov2 = ov.clone();
    host.run(async move { ov2.cleanup(&[], &[]).await })
        .expect("cleanup all");
    assert_eq!(std::fs::read_dir(&state.path).expect("read").count(), 0);
    assert!(mounts_under(&state.path).is_empty(), "mounts left");
    assert_eq!(links(&ns.path()), ["lo"], "host devices left");
    assert!(in_ns(&ns.path(), "ss", &["-Hlun", "sport = :4789"])
        .trim()
        .is_empty());
}

#[test]
fn invalid_arguments_are_refused() {
    let base = unique("v");
    let ns = NetNs::new(&base);
    let state = StateDir::new(&format!("{base}-state"));
    let host = Host::start(&ns);
    let ov = host.overlay(&state.path, Ipv4Addr::new(10, 99, 0, 1));
    for bad in [
        net("../x", 1, "10.0.0.0/24", "10.0.0.1", false),
        net("n", 0, "10.0.0.0/24", "10.0.0.1", false),
        net("n", 1 << 24, "10.0.0.0/24", "10.0.0.1", false),
        net("n", 1, "10.0.0.0", "10.0.0.1", false),
        net("n", 1, "10.0.0.0/24", "10.0.1.1", false),
    ] {
        let ov = ov.clone();
        let r = host.run(async move { ov.ensure_network(&bad).await });
        assert!(r.is_err(), "accepted a bad network");
    }
    let ov2 = ov.clone();
    let r = host.run(async move { ov2.create_task_netns("1-abc").await });
    assert!(r.is_err(), "task id with the sandbox prefix accepted");
    assert_eq!(std::fs::read_dir(&state.path).expect("read").count(), 0);
}

/// Run iperf3 from the namespace `client` to `server_ip` served from the
/// namespace `server`; returns received bits per second.
fn iperf(server: &std::path::Path, client: &std::path::Path, server_ip: &str, secs: u32) -> f64 {
    let mut srv = std::process::Command::new("nsenter")
        .arg(format!("--net={}", server.display()))
        .args(["iperf3", "-s", "-1", "-B", server_ip])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start iperf3 server (apt-get install iperf3)");
    std::thread::sleep(Duration::from_millis(300));
    let out = in_ns(
        client,
        "iperf3",
        &["-c", server_ip, "-t", &secs.to_string(), "-J"],
    );
    let _ = srv.wait();
    let at = out
        .find("\"sum_received\"")
        .expect("iperf3 JSON has sum_received");
    let rest = &out[at..];
    let key = "\"bits_per_second\":";
    let v = &rest[rest.find(key).expect("bits_per_second") + key.len()..];
    let end = v.find([',', '\n', '}']).unwrap_or(v.len());
    v[..end].trim().parse().expect("a number")
}

/// Overlay throughput between two tasks on two hosts, against the hosts' own
/// addresses over the same link. Needs iperf3. Run with
/// `cargo test -p rswarm-overlay --release --test overlay -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_overlay_throughput() {
    let t = TwoHosts::new("b");
    let n1 = net("net1", 4100, "10.30.0.0/24", "10.30.0.1", false);
    ensure(&t.host_a, &t.ov_a, &n1);
    ensure(&t.host_b, &t.ov_b, &n1);
    let pa = task(&t.host_a, &t.ov_a, "taska", "net1", "10.30.0.2/24", 0);
    let pb = task(&t.host_b, &t.ov_b, "taskb", "net1", "10.30.0.3/24", 0);
    set_peers(&t.host_a, &t.ov_a, "net1", vec![peer("10.30.0.3", IP_B)]);
    set_peers(&t.host_b, &t.ov_b, "net1", vec![peer("10.30.0.2", IP_A)]);
    let secs = 5;
    let mut host = Vec::new();
    let mut overlay = Vec::new();
    for _ in 0..3 {
        host.push(iperf(
            &t.host_b.ns_path,
            &t.host_a.ns_path,
            "10.99.0.2",
            secs,
        ));
        overlay.push(iperf(&pb, &pa, "10.30.0.3", secs));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (h, o) = (med(&mut host), med(&mut overlay));
    println!(
        "iperf3 TCP, {secs}s x3, median: hosts {:.2} Gbit/s, overlay tasks {:.2} Gbit/s, ratio {:.2}",
        h / 1e9,
        o / 1e9,
        o / h
    );
    println!("all runs: hosts {host:?}, overlay {overlay:?}");
}
