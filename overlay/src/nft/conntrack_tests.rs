//! [`forget_backends`] on real namespaces (root required): a connection a
//! VIP translated to a backend that then vanished without a word hangs
//! until its entry is deleted, and is reset by a live backend at the
//! client's next packet once it is; other connections are left alone.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::lab::{ns_path, Conn, Lab};
use super::*;

const T: Duration = Duration::from_secs(3);
const VIP: &str = "10.51.0.100";
const B1: &str = "10.51.0.11";
const B2: &str = "10.51.0.12";

fn vip_to(backends: &[&str]) -> VipService {
    VipService {
        vip: VIP.parse().expect("vip"),
        ports: vec![(Proto::Tcp, 80)],
        backends: backends
            .iter()
            .map(|b| Backend {
                ip: b.parse().expect("backend"),
            })
            .collect(),
    }
}

/// A client and two backends (b1, b2) on one switch, TCP servers on 80.
fn lab(tag: &str) -> (Lab, String, String) {
    let mut lab = Lab::new(tag);
    let sw = lab.switch("sw");
    let client = lab.netns("client");
    lab.plug(&sw, &client, "eth0", "10.51.0.10/24");
    let mut b1 = String::new();
    for (name, addr) in [("b1", B1), ("b2", B2)] {
        let ns = lab.netns(name);
        lab.plug(&sw, &ns, "eth0", &format!("{addr}/24"));
        lab.tcp_server(&ns, 80, name);
        if name == "b1" {
            b1 = ns;
        }
    }
    (lab, client, b1)
}

/// A connection through the VIP that landed on `backend`.
fn conn_on(client: &str, backend: &str) -> Conn {
    let to = SocketAddr::new(VIP.parse().expect("vip"), 80);
    for _ in 0..60 {
        let c = Conn::open(client, to, T).expect("connect through the VIP");
        if c.backend() == backend {
            return c;
        }
    }
    panic!("no connection reached {backend} in 60 tries");
}

#[test]
fn a_connection_to_a_vanished_backend_is_reset_once_forgotten() {
    let (lab, client, b1) = lab("ctgone");
    let path = ns_path(&client);
    apply_task_vips(&path, &[vip_to(&[B1])]).expect("apply b1");
    let mut conn = conn_on(&client, "b1");
    assert_eq!(conn.echo("hello").expect("echo"), "hello");

    // b1 leaves the VIP, then vanishes without closing anything (its
    // interface goes: no FIN, no reset ever comes from it).
    apply_task_vips(&path, &[vip_to(&[B2])]).expect("apply b2");
    lab.ip(&b1, &["link", "del", "eth0"]);

    // Without the flush the connection hangs: the next line is sent to b1.
    conn.set_read_timeout(Duration::from_millis(1500));
    let hung = conn.echo("anyone?");
    assert_eq!(
        hung.as_ref().map_err(io::Error::kind).err(),
        Some(io::ErrorKind::WouldBlock),
        "expected a hang before the flush: {hung:?}"
    );

    let b1_ip: Ipv4Addr = B1.parse().expect("b1");
    let gone = forget_backends(&path, &[b1_ip]).expect("forget b1");
    assert!(gone >= 1, "no entry deleted");

    // The unanswered segment is sent again; it now meets the rules afresh,
    // lands on b2, which knows no such connection and resets it.
    let started = Instant::now();
    conn.set_read_timeout(Duration::from_secs(10));
    let after = conn.read_line();
    let waited = started.elapsed();
    assert_eq!(
        after.as_ref().map_err(io::Error::kind).err(),
        Some(io::ErrorKind::ConnectionReset),
        "expected a reset after the flush: {after:?}"
    );
    eprintln!("reset {waited:?} after the flush");
    assert!(waited < Duration::from_secs(5), "took {waited:?}");
    // Nothing of b1 is left.
    assert_eq!(forget_backends(&path, &[b1_ip]).expect("again"), 0);
}

#[test]
fn only_the_connections_of_the_given_backends_go() {
    let (_lab, client, _) = lab("ctkeep");
    let path = ns_path(&client);
    apply_task_vips(&path, &[vip_to(&[B1, B2])]).expect("apply");
    let mut on_b2 = conn_on(&client, "b2");
    let _on_b1 = conn_on(&client, "b1");
    let gone = forget_backends(&path, &[B1.parse().expect("b1")]).expect("forget");
    assert!(gone >= 1, "no entry deleted");
    assert_eq!(on_b2.echo("still here").expect("echo"), "still here");
    assert_eq!(forget_backends(&path, &[]).expect("nothing"), 0);
}

#[test]
fn a_missing_namespace_is_an_error_naming_it() {
    let missing = std::path::Path::new("/var/run/netns/rswarm-no-such-ns");
    let err =
        forget_backends(missing, &[Ipv4Addr::new(10, 0, 0, 1)]).expect_err("a missing namespace");
    assert!(err.to_string().contains("rswarm-no-such-ns"), "{err}");
}
