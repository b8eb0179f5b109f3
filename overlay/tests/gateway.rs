//! The gateway bridge and the node's legs on networks, on real namespaces:
//! a task's way out (masqueraded behind the node), tasks kept apart on the
//! bridge, internal-only tasks with no way out, the node reaching local and
//! remote tasks through its leg, and a daemon restart that keeps every
//! address. Root, `ip`, `bridge`, `nsenter` and `nft` are required; nothing
//! is skipped.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rswarm_overlay::{mac_for, Overlay, OverlayError, Peer, GATEWAY_ADDR, GATEWAY_BRIDGE};

const SHORT: Duration = Duration::from_millis(1500);
const LONG: Duration = Duration::from_secs(5);

fn sa(ip: impl Into<Ipv4Addr>, port: u16) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(ip.into()), port)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

fn peer(addr: &str, node: Ipv4Addr) -> Peer {
    let ip = ip(addr);
    Peer {
        ip,
        mac: mac_for(ip),
        node_ip: node,
    }
}

/// `ip -o link show master rswarm_gwbridge`, one line per port.
fn bridge_ports(ns: &std::path::Path) -> Vec<String> {
    in_ns(ns, "ip", &["-o", "link", "show", "master", GATEWAY_BRIDGE])
        .lines()
        .map(str::to_string)
        .collect()
}

fn nft_list(ns: &std::path::Path) -> String {
    in_ns(ns, "nft", &["list", "ruleset"])
}

/// A task address on the gateway bridge: in 172.18/16, not the network,
/// the bridge's or the broadcast address.
fn assert_task_addr(a: Ipv4Addr) {
    let o = a.octets();
    assert_eq!((o[0], o[1]), (172, 18), "{a} not in 172.18/16");
    assert!(
        ![ip("172.18.0.0"), ip("172.18.0.1"), ip("172.18.255.255")].contains(&a),
        "{a} is reserved"
    );
}

/// A node namespace and an "outside" host namespace joined by a veth `up0`
/// (198.51.100.1 on the node, .2 outside; the outside has no route to
/// 172.18/16, so only masqueraded traffic can be answered).
struct NodeWithOutside {
    host: Host,
    ov: Arc<Overlay>,
    state: StateDir,
    outside: NetNs,
    node: NetNs,
}

impl NodeWithOutside {
    fn new(tag: &str) -> NodeWithOutside {
        let base = unique(tag);
        let node = NetNs::new(&format!("{base}n"));
        let outside = NetNs::new(&format!("{base}o"));
        run(
            "ip",
            &[
                "-n",
                &node.name,
                "link",
                "add",
                "up0",
                "type",
                "veth",
                "peer",
                "name",
                "up0",
                "netns",
                &outside.name,
            ],
        );
        for (ns, cidr) in [(&node, "198.51.100.1/24"), (&outside, "198.51.100.2/24")] {
            run("ip", &["-n", &ns.name, "addr", "add", cidr, "dev", "up0"]);
            run("ip", &["-n", &ns.name, "link", "set", "up0", "up"]);
        }
        let state = StateDir::new(&format!("{base}-state"));
        let host = Host::start(&node);
        let ov = host.overlay(&state.path, ip("10.99.0.1"));
        NodeWithOutside {
            host,
            ov,
            state,
            outside,
            node,
        }
    }
}

#[test]
fn a_task_with_a_gateway_reaches_the_outside_masqueraded_and_an_internal_one_does_not() {
    let t = NodeWithOutside::new("g");
    let node = t.node.path();
    let front = net("front", 4301, "10.41.0.0/24", "10.41.0.1", false);
    let back = net("back", 4300, "10.40.0.0/24", "10.40.0.1", true);
    ensure(&t.host, &t.ov, &front);
    ensure(&t.host, &t.ov, &back);
    let _outside_server = Server::peer_echo(&t.outside.path(), sa(ip("198.51.100.2"), 8080));

    // A task on a normal network gets the gateway bridge as eth1.
    let web = task(&t.host, &t.ov, "web", "front", "10.41.0.2/24", 0);
    let addr = gateway(&t.host, &t.ov, "web", 1);
    assert_task_addr(addr);
    assert_eq!(t.ov.gateway_addr("web"), Some(addr));
    let routes = in_ns(&web, "ip", &["-4", "route", "show", "default"]);
    assert_eq!(
        routes.trim(),
        "default via 172.18.0.1 dev eth1 proto static",
        "{routes}"
    );
    let eth1 = in_ns(&web, "ip", &["-d", "-o", "addr", "show", "dev", "eth1"]);
    assert!(eth1.contains(&format!("{addr}/16")), "eth1: {eth1}");
    let eth1 = in_ns(&web, "ip", &["-d", "link", "show", "eth1"]);
    let o = addr.octets();
    let mac = format!("02:42:ac:12:{:02x}:{:02x}", o[2], o[3]);
    assert!(eth1.contains(&mac), "eth1 MAC {mac}: {eth1}");
    assert!(eth1.contains("mtu 1500"), "eth1: {eth1}");

    // The bridge, its port, forwarding and the NAT table in the node.
    let br = in_ns(&node, "ip", &["-d", "link", "show", GATEWAY_BRIDGE]);
    assert!(br.contains("mtu 1500"), "bridge: {br}");
    assert!(br.contains("02:42:ac:12:00:01"), "bridge MAC: {br}");
    let br_addr = in_ns(
        &node,
        "ip",
        &["-o", "-4", "addr", "show", "dev", GATEWAY_BRIDGE],
    );
    assert!(br_addr.contains("172.18.0.1/16"), "{br_addr}");
    let ports = gateway_veths(&node);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(bridge_ports(&node).len(), 1);
    let port = in_ns(&node, "bridge", &["-d", "link", "show", "dev", &ports[0]]);
    assert!(port.contains("isolated on"), "port not isolated: {port}");
    let alias = in_ns(&node, "ip", &["link", "show", &ports[0]]);
    assert!(
        alias.contains(&format!("alias rswarm gateway task=web ip={addr}")),
        "{alias}"
    );
    let fwd = in_ns(&node, "sysctl", &["-n", "net.ipv4.ip_forward"]);
    assert_eq!(fwd.trim(), "1");
    let rules = nft_list(&node);
    assert!(rules.contains("table ip rswarm_gw {"), "{rules}");
    assert!(
        rules.contains("ip saddr 172.18.0.0/16 oifname != \"rswarm_gwbridge\" masquerade"),
        "{rules}"
    );

    // Out it goes, seen as the node (masquerade).
    assert_eq!(
        fetch(&t.ov, "web", sa(ip("198.51.100.2"), 8080), LONG).expect("egress"),
        "198.51.100.1"
    );

    // (c) Only on an internal network, no gateway: no default route, no way out.
    let inner = task(&t.host, &t.ov, "inner", "back", "10.40.0.2/24", 0);
    let routes = in_ns(&inner, "ip", &["-4", "route", "show"]);
    assert!(!routes.contains("default"), "{routes}");
    assert_eq!(t.ov.gateway_addr("inner"), None);
    assert!(
        fetch(&t.ov, "inner", sa(ip("198.51.100.2"), 8080), SHORT).is_err(),
        "an internal-only task got out"
    );

    // Attaching again returns the same address and changes nothing.
    let links_before = in_ns(&node, "ip", &["-o", "link", "show"]);
    let task_before = in_ns(&web, "ip", &["-o", "addr", "show"]);
    let ruleset_before = nft_list(&node);
    assert_eq!(gateway(&t.host, &t.ov, "web", 1), addr);
    assert_eq!(in_ns(&node, "ip", &["-o", "link", "show"]), links_before);
    assert_eq!(in_ns(&web, "ip", &["-o", "addr", "show"]), task_before);
    assert_eq!(nft_list(&node), ruleset_before);

    // Removing the task frees its address and takes its veth away.
    let ov = t.ov.clone();
    t.host
        .run(async move { ov.remove_task_netns("web").await })
        .expect("remove web");
    assert!(gateway_veths(&node).is_empty());
    assert_eq!(t.ov.gateway_addr("web"), None);

    // Leaving the swarm: nothing of ours is left in the node.
    let ov = t.ov.clone();
    t.host
        .run(async move { ov.remove_everything().await })
        .expect("remove everything");
    assert_eq!(links(&node), ["lo", "up0"], "node devices left");
    assert!(!nft_list(&node).contains("rswarm"), "tables left");
    assert_eq!(std::fs::read_dir(&t.state.path).expect("read").count(), 0);
    assert!(mounts_under(&t.state.path).is_empty());
    let ov = t.ov.clone();
    t.host
        .run(async move { ov.remove_everything().await })
        .expect("remove everything twice");
}

#[test]
fn tasks_on_the_gateway_bridge_reach_the_node_but_not_each_other() {
    let t = NodeWithOutside::new("b");
    let node = t.node.path();
    bare_task(&t.host, &t.ov, "t1");
    bare_task(&t.host, &t.ov, "t2");
    let a1 = gateway(&t.host, &t.ov, "t1", 0);
    let a2 = gateway(&t.host, &t.ov, "t2", 0);
    assert_task_addr(a1);
    assert_task_addr(a2);
    assert_ne!(a1, a2);
    let _s1 = Server::start(&t.ov, "t1", sa(a1, 8080), "t1");
    let _s2 = Server::start(&t.ov, "t2", sa(a2, 8080), "t2");
    let _node_server = Server::peer_echo(&node, sa(GATEWAY_ADDR, 8081));

    // Each reaches the node, which sees its own address.
    assert_eq!(
        fetch(&t.ov, "t1", sa(GATEWAY_ADDR, 8081), LONG).expect("t1 -> node"),
        a1.to_string()
    );
    assert_eq!(
        fetch(&t.ov, "t2", sa(GATEWAY_ADDR, 8081), LONG).expect("t2 -> node"),
        a2.to_string()
    );
    // The node reaches both (its local path to tasks).
    assert_eq!(
        fetch_in(&node, sa(a1, 8080), LONG).expect("node -> t1"),
        "t1"
    );
    assert_eq!(
        fetch_in(&node, sa(a2, 8080), LONG).expect("node -> t2"),
        "t2"
    );
    // Through the node, both reach the outside.
    let _outside_server = Server::peer_echo(&t.outside.path(), sa(ip("198.51.100.2"), 8080));
    for task in ["t1", "t2"] {
        assert_eq!(
            fetch(&t.ov, task, sa(ip("198.51.100.2"), 8080), LONG).expect("egress"),
            "198.51.100.1"
        );
    }
    // But not each other.
    assert!(
        fetch(&t.ov, "t1", sa(a2, 8080), SHORT).is_err(),
        "t1 reached t2 over the gateway bridge"
    );
    assert!(
        fetch(&t.ov, "t2", sa(a1, 8080), SHORT).is_err(),
        "t2 reached t1 over the gateway bridge"
    );
    // Two guards keep them apart: every task port is isolated on the bridge,
    // and the node drops what it would forward from the bridge back onto it.
    for port in &gateway_veths(&node) {
        let d = in_ns(&node, "bridge", &["-d", "link", "show", "dev", port]);
        assert!(d.contains("isolated on"), "{d}");
    }
    let rules = in_ns(&node, "nft", &["list", "table", "ip", "rswarm_gw"]);
    assert!(
        rules.contains("iifname \"rswarm_gwbridge\" oifname \"rswarm_gwbridge\" drop"),
        "{rules}"
    );

    // The bridge keeps its own MAC whatever its ports.
    let br = in_ns(&node, "ip", &["link", "show", GATEWAY_BRIDGE]);
    assert!(br.contains("02:42:ac:12:00:01"), "{br}");
    assert_eq!(bridge_ports(&node).len(), 2);
}

#[test]
fn the_node_reaches_local_and_remote_tasks_through_its_leg() {
    let t = TwoHosts::new("h");
    let ingress = net("ingress", 4096, "10.0.0.0/24", "10.0.0.1", false);
    ensure(&t.host_a, &t.ov_a, &ingress);
    ensure(&t.host_b, &t.ov_b, &ingress);
    task(&t.host_a, &t.ov_a, "ta", "ingress", "10.0.0.2/24", 0);
    task(&t.host_b, &t.ov_b, "tb", "ingress", "10.0.0.3/24", 0);
    let _sa = Server::peer_echo(&t.ov_a.task_netns_path("ta"), sa(ip("10.0.0.2"), 8080));
    let _sb = Server::peer_echo(&t.ov_b.task_netns_path("tb"), sa(ip("10.0.0.3"), 8080));

    let attach = |cidr: &str| {
        let (ov, cidr) = (t.ov_a.clone(), cidr.to_string());
        t.host_a
            .run(async move { ov.attach_host("ingress", &cidr).await })
    };
    let leg = attach("10.0.0.7/24").expect("attach_host");
    assert!(leg.starts_with("rswi") && leg.len() <= 15, "{leg}");
    assert_eq!(leg, Overlay::host_leg_name("ingress"));
    let node_a = t.host_a.ns_path.clone();
    let dev = in_ns(&node_a, "ip", &["-d", "link", "show", &leg]);
    for want in ["mtu 1450", "02:42:0a:00:00:07", "state UP"] {
        assert!(dev.contains(want), "{leg} lacks {want:?}: {dev}");
    }
    let routes = in_ns(&node_a, "ip", &["-4", "route", "show", "10.0.0.0/24"]);
    assert!(
        routes.contains(&format!(
            "10.0.0.0/24 dev {leg} proto kernel scope link src 10.0.0.7"
        )),
        "{routes}"
    );
    let sandbox_a = t.ov_a.network_netns_path("ingress");
    let port = in_ns(&sandbox_a, "ip", &["-o", "link", "show", "master", "br0"]);
    assert!(port.contains("hostleg0"), "{port}");

    // The peers as the store has them: B learns A's task and A's leg.
    let (ov, peers) = (t.ov_a.clone(), vec![peer("10.0.0.3", IP_B)]);
    t.host_a
        .run(async move { ov.set_peers("ingress", &peers).await })
        .expect("peers a");
    let (ov, peers) = (
        t.ov_b.clone(),
        vec![peer("10.0.0.2", IP_A), peer("10.0.0.7", IP_A)],
    );
    t.host_b
        .run(async move { ov.set_peers("ingress", &peers).await })
        .expect("peers b");

    assert_eq!(
        fetch_in(&node_a, sa(ip("10.0.0.2"), 8080), LONG).expect("node -> local task"),
        "10.0.0.7"
    );
    assert_eq!(
        fetch_in(&node_a, sa(ip("10.0.0.3"), 8080), LONG).expect("node -> remote task"),
        "10.0.0.7"
    );

    // Same address again: nothing changes.
    let before = in_ns(&node_a, "ip", &["-o", "link", "show", &leg]);
    assert_eq!(attach("10.0.0.7/24").expect("again"), leg);
    assert_eq!(in_ns(&node_a, "ip", &["-o", "link", "show", &leg]), before);
    // A kept network keeps its leg through a sweep.
    let (ov, nets, tasks) = (
        t.ov_a.clone(),
        vec!["ingress".to_string()],
        vec!["ta".to_string()],
    );
    t.host_a
        .run(async move { ov.cleanup(&nets, &tasks).await })
        .expect("cleanup");
    assert_eq!(in_ns(&node_a, "ip", &["-o", "link", "show", &leg]), before);
    assert!(links(&sandbox_a).contains(&"hostleg0".to_string()));

    // Another address: replaced, one leg only.
    attach("10.0.0.8/24").expect("readdress");
    let legs: Vec<String> = links(&node_a)
        .into_iter()
        .filter(|n| n.starts_with("rswi"))
        .collect();
    assert_eq!(legs, std::slice::from_ref(&leg));
    let addrs = in_ns(&node_a, "ip", &["-o", "-4", "addr", "show", "dev", &leg]);
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
    assert!(addrs.contains("10.0.0.8/24"), "{addrs}");
    assert!(in_ns(&node_a, "ip", &["link", "show", &leg]).contains("02:42:0a:00:00:08"));

    // Refusals.
    assert!(matches!(
        attach("10.9.9.9/24"),
        Err(OverlayError::Invalid { .. })
    ));
    let ov = t.ov_a.clone();
    let r = t
        .host_a
        .run(async move { ov.attach_host("nonet", "10.0.0.7/24").await });
    assert!(matches!(r, Err(OverlayError::NoSuchNetwork(_))), "{r:?}");

    // Detach: both ends go, the network stays.
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.detach_host("ingress").await })
        .expect("detach");
    assert!(!links(&node_a).contains(&leg));
    assert!(!links(&sandbox_a).contains(&"hostleg0".to_string()));
    assert!(links(&sandbox_a).contains(&"br0".to_string()));
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.detach_host("ingress").await })
        .expect("detach twice");

    // The leg goes with its network.
    attach("10.0.0.7/24").expect("attach again");
    let ov = t.ov_a.clone();
    t.host_a
        .run(async move { ov.remove_network("ingress").await })
        .expect("remove network");
    assert_eq!(links(&node_a), ["lo", "ul0"], "node A devices");
}

#[test]
fn a_restarted_daemon_keeps_gateway_addresses_and_gives_fresh_ones() {
    let t = NodeWithOutside::new("r");
    let node = t.node.path();
    for task in ["t1", "t2", "t3"] {
        bare_task(&t.host, &t.ov, task);
    }
    let a1 = gateway(&t.host, &t.ov, "t1", 0);
    let a2 = gateway(&t.host, &t.ov, "t2", 0);
    let a3 = gateway(&t.host, &t.ov, "t3", 0);
    // t3's namespace is still held by a "process" but its file is gone: its
    // veth and address stay in use.
    let p3 = t.ov.task_netns_path("t3");
    let held = std::fs::File::open(&p3).expect("hold t3");
    nix::mount::umount2(&p3, nix::mount::MntFlags::MNT_DETACH).expect("umount t3");
    std::fs::remove_file(&p3).expect("rm t3");
    let _outside_server = Server::peer_echo(&t.outside.path(), sa(ip("198.51.100.2"), 8080));

    // The daemon restarts (live restore): a new Overlay on the same state.
    let ov = t.host.overlay(&t.state.path, ip("10.99.0.1"));
    assert_eq!(ov.gateway_addr("t1"), Some(a1));
    assert_eq!(ov.gateway_addr("t2"), Some(a2));
    assert_eq!(ov.gateway_addr("t3"), Some(a3));
    let links_before = in_ns(&node, "ip", &["-o", "link", "show"]);
    assert_eq!(gateway(&t.host, &ov, "t1", 0), a1);
    assert_eq!(gateway(&t.host, &ov, "t2", 0), a2);
    assert_eq!(
        in_ns(&node, "ip", &["-o", "link", "show"]),
        links_before,
        "re-attaching after a restart changed devices"
    );
    let rules = nft_list(&node);
    assert_eq!(rules.matches("masquerade").count(), 1, "{rules}");

    // A new task gets an address nobody has.
    bare_task(&t.host, &ov, "t4");
    let a4 = gateway(&t.host, &ov, "t4", 0);
    assert_task_addr(a4);
    assert!(![a1, a2, a3].contains(&a4), "{a4} handed out twice");
    assert_eq!(gateway_veths(&node).len(), 4);
    assert_eq!(bridge_ports(&node).len(), 4);
    // Old and new tasks both get out.
    for task in ["t1", "t4"] {
        assert_eq!(
            fetch(&ov, task, sa(ip("198.51.100.2"), 8080), LONG).expect("egress"),
            "198.51.100.1"
        );
    }

    // The sweep with the tasks that should exist drops t3's leftovers.
    let (ov2, keep) = (
        ov.clone(),
        vec!["t1".to_string(), "t2".to_string(), "t4".to_string()],
    );
    t.host
        .run(async move { ov2.cleanup(&[], &keep).await })
        .expect("cleanup");
    assert_eq!(ov.gateway_addr("t3"), None);
    assert_eq!(gateway_veths(&node).len(), 3);
    drop(held);

    // A second restart sees the same three.
    let ov = t.host.overlay(&t.state.path, ip("10.99.0.1"));
    assert_eq!(
        [
            ov.gateway_addr("t1"),
            ov.gateway_addr("t2"),
            ov.gateway_addr("t4")
        ],
        [Some(a1), Some(a2), Some(a4)]
    );
    assert_eq!(ov.gateway_addr("t3"), None);
}

#[test]
fn gateway_refusals() {
    let t = NodeWithOutside::new("x");
    let ov = t.ov.clone();
    let r = t
        .host
        .run(async move { ov.attach_gateway("ghost", 0).await });
    assert!(matches!(r, Err(OverlayError::NoSuchTask(_))), "{r:?}");
    let ov = t.ov.clone();
    let r = t
        .host
        .run(async move { ov.attach_gateway("../x", 0).await });
    assert!(matches!(r, Err(OverlayError::Invalid { .. })), "{r:?}");
    bare_task(&t.host, &t.ov, "t1");
    let ov = t.ov.clone();
    let r = t
        .host
        .run(async move { ov.attach_gateway("t1", 10_000).await });
    assert!(matches!(r, Err(OverlayError::Invalid { .. })), "{r:?}");
    // Nothing was made for the refused calls.
    assert!(!links(&t.node.path()).contains(&GATEWAY_BRIDGE.to_string()));
}
