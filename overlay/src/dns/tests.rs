//! End-to-end tests of the DNS server over loopback: real DNS packets over UDP
//! and TCP, a fake upstream resolver on loopback for forwarding.
//!
//! The serving address is a parameter: `RSWARM_DNS_TEST_IP` (default
//! 127.0.0.1; 127.0.0.11 works too on Linux, where all of 127/8 is local),
//! on free ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::*;

const N1: &str = "net-backend";
const N2: &str = "net-other";

fn test_ip() -> IpAddr {
    std::env::var("RSWARM_DNS_TEST_IP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, 0, last)
}

fn task(svc: &str, stack: Option<&str>, net: &str, slot: u8, healthy: bool) -> TaskRecord {
    TaskRecord {
        service_name: svc.into(),
        stack: stack.map(Into::into),
        network_id: net.into(),
        task_name: format!("{svc}.{slot}.t{slot}abc"),
        addr: ip(slot),
        aliases: vec![],
        healthy,
    }
}

fn service(name: &str, stack: Option<&str>, net: &str, vip: Option<Ipv4Addr>) -> ServiceRecord {
    ServiceRecord {
        name: name.into(),
        stack: stack.map(Into::into),
        network_id: net.into(),
        vip,
        aliases: vec![],
    }
}

/// api (VIP .100, 3 tasks, one unhealthy), db (dnsrr, 2 tasks), st_web in
/// stack `st` (VIP .101), secret on another network.
fn sample() -> Records {
    let mut api = service("api", None, N1, Some(ip(100)));
    api.aliases.push("api-alias".into());
    let mut t1 = task("api", None, N1, 1, true);
    t1.aliases.push("first".into());
    Records {
        services: vec![
            api,
            service("db", None, N1, None),
            service("st_web", Some("st"), N1, Some(ip(101))),
            service("secret", None, N2, Some(ip(102))),
        ],
        tasks: vec![
            t1,
            task("api", None, N1, 2, true),
            task("api", None, N1, 3, false),
            task("db", None, N1, 11, true),
            task("db", None, N1, 12, true),
            task("st_web", Some("st"), N1, 21, true),
            task("secret", None, N2, 31, true),
        ],
    }
}

fn view(nets: &[&str], stack: Option<&str>) -> View {
    View {
        networks: nets.iter().map(|s| s.to_string()).collect(),
        stack: stack.map(Into::into),
        upstreams: vec![],
    }
}

struct Served {
    server: Arc<DnsServer>,
    handle: ServeHandle,
}

impl Served {
    fn udp(&self) -> SocketAddr {
        self.handle.udp_addr()
    }
    fn tcp(&self) -> SocketAddr {
        self.handle.tcp_addr()
    }
}

/// Serves `records` for `view` on `bind_ip` (free ports).
fn serve_on(
    bind_ip: IpAddr,
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    records: Records,
    view: View,
) -> Served {
    let server = DnsServer::with_forward_timeout(upstreams, timeout).expect("server");
    server.set_records(records);
    let udp = std::net::UdpSocket::bind((bind_ip, 0)).expect("bind udp");
    let tcp = std::net::TcpListener::bind((bind_ip, 0)).expect("bind tcp");
    let handle = server.serve(view, udp, tcp).expect("serve");
    Served { server, handle }
}

fn serve(records: Records, view: View) -> Served {
    serve_on(test_ip(), vec![], DEFAULT_FORWARD_TIMEOUT, records, view)
}

fn query_bytes(name: &str, rtype: RecordType, id: u16) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_str(name).expect("name"), rtype));
    msg.to_vec().expect("encode")
}

/// One UDP query, real packets.
async fn udp_query(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let sock = UdpSocket::bind((server.ip(), 0))
        .await
        .expect("client bind");
    let id = 0x5a5a;
    sock.send_to(&query_bytes(name, rtype, id), server)
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("answer in time")
        .expect("recv");
    let msg = Message::from_vec(&buf[..n]).expect("decode");
    assert_eq!(msg.metadata.id, id);
    assert_eq!(msg.metadata.message_type, MessageType::Response);
    msg
}

/// One TCP query (2-byte length prefix).
async fn tcp_query(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    let q = query_bytes(name, rtype, 7);
    stream
        .write_all(&(q.len() as u16).to_be_bytes())
        .await
        .expect("write len");
    stream.write_all(&q).await.expect("write");
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len))
        .await
        .expect("answer in time")
        .expect("read len");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.expect("read");
    Message::from_vec(&buf).expect("decode")
}

fn addrs(msg: &Message) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(a)) => Some(*a),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vip_answer() {
    let s = serve(sample(), view(&[N1], None));
    let m = udp_query(s.udp(), "api", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m), vec![ip(100)]);
    assert!(m.answers.iter().all(|r| r.ttl <= 1));
    // Case-insensitive, trailing dot, service alias.
    let m = udp_query(s.udp(), "API.", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(100)]);
    let m = udp_query(s.udp(), "api-alias", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(100)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsrr_answer() {
    let s = serve(sample(), view(&[N1], None));
    let m = udp_query(s.udp(), "db", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(11), ip(12)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_lists_only_healthy_and_follows_set_records() {
    let s = serve(sample(), view(&[N1], None));
    let m = udp_query(s.udp(), "tasks.api", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(1), ip(2)]);

    // Task 2 stops: gone at the very next query.
    let mut records = sample();
    records.tasks.retain(|t| t.addr != ip(2));
    s.server.set_records(records);
    let m = udp_query(s.udp(), "tasks.api", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(1)]);

    // Task names and task aliases.
    let m = udp_query(s.udp(), "api.1.t1abc", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(1)]);
    let m = udp_query(s.udp(), "first", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(1)]);
    let m = udp_query(s.udp(), "api.2.t2abc", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_network_does_not_see_service() {
    let s = serve(sample(), view(&[N1], None));
    let m = udp_query(s.udp(), "secret", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    let m = udp_query(s.udp(), "tasks.secret", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    let s2 = serve(sample(), view(&[N2], None));
    let m = udp_query(s2.udp(), "secret", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(102)]);
    let m = udp_query(s2.udp(), "api", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_unqualified_only_in_same_stack() {
    let inside = serve(sample(), view(&[N1], Some("st")));
    let m = udp_query(inside.udp(), "web", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(101)]);
    let m = udp_query(inside.udp(), "tasks.web", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(21)]);
    let m = udp_query(inside.udp(), "st_web", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(101)]);

    let outside = serve(sample(), view(&[N1], None));
    let m = udp_query(outside.udp(), "web", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = udp_query(outside.udp(), "st_web", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(101)]);

    let other_stack = serve(sample(), view(&[N1], Some("zz")));
    let m = udp_query(other_stack.udp(), "web", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

/// A loopback UDP socket that never answers: a dead upstream.
async fn black_hole() -> (UdpSocket, SocketAddr) {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind black hole");
    let addr = sock.local_addr().expect("addr");
    (sock, addr)
}

/// A cluster name is answered by the server itself: the upstream (which would
/// answer too, but counts what it gets) never sees the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaaa_for_cluster_name_is_empty_and_not_forwarded() {
    let (up, count) = fake_upstream().await;
    let s = serve_on(
        test_ip(),
        vec![up],
        Duration::from_secs(3),
        sample(),
        view(&[N1], None),
    );
    let m = udp_query(s.udp(), "api", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_single_label_is_nxdomain_and_not_forwarded() {
    let (up, count) = fake_upstream().await;
    let s = serve_on(
        test_ip(),
        vec![up],
        Duration::from_secs(3),
        sample(),
        view(&[N1], None),
    );
    for (name, rtype) in [
        ("nope", RecordType::A),
        ("nope.", RecordType::AAAA),
        ("tasks.nope", RecordType::A),
        ("api.9.zzz", RecordType::A),
    ] {
        let m = udp_query(s.udp(), name, rtype).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{name} was forwarded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upstream_answers_servfail() {
    let s = serve(sample(), view(&[N1], None));
    let m = udp_query(s.udp(), "example.test", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_counted_by_type_result_and_source() {
    let (up, _count) = fake_upstream().await;
    let s = serve_on(
        test_ip(),
        vec![up],
        Duration::from_secs(3),
        sample(),
        view(&[N1], None),
    );
    let metrics = crate::metrics::OverlayMetrics::default();
    s.server.set_metrics(metrics.clone());
    udp_query(s.udp(), "api", RecordType::A).await;
    tcp_query(s.tcp(), "api", RecordType::A).await;
    udp_query(s.udp(), "api", RecordType::AAAA).await;
    udp_query(s.udp(), "nope", RecordType::A).await;
    udp_query(s.udp(), "example.test", RecordType::A).await;
    udp_query(s.udp(), "missing.test", RecordType::A).await;
    assert_eq!(metrics.dns_queries_counted("A", "noerror", "cluster"), 2);
    assert_eq!(metrics.dns_queries_counted("AAAA", "noerror", "cluster"), 1);
    assert_eq!(metrics.dns_queries_counted("A", "nxdomain", "cluster"), 1);
    assert_eq!(metrics.dns_queries_counted("A", "noerror", "upstream"), 1);
    assert_eq!(metrics.dns_queries_counted("A", "nxdomain", "upstream"), 1);
    assert_eq!(metrics.dns_queries_counted("A", "servfail", "upstream"), 0);
}

/// A fake upstream resolver on loopback: `example.test A` → 192.0.2.1, every
/// other name NXDOMAIN. Counts the queries it gets.
async fn fake_upstream() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind upstream");
    let addr = sock.local_addr().expect("addr");
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::response(req.metadata.id, OpCode::Query);
            resp.metadata.recursion_desired = req.metadata.recursion_desired;
            resp.metadata.recursion_available = true;
            let Some(q) = req.queries.first().cloned() else {
                continue;
            };
            let name = q.name().to_ascii().to_ascii_lowercase();
            if name == "example.test." && q.query_type() == RecordType::A {
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
                ));
            } else {
                resp.metadata.response_code = ResponseCode::NXDomain;
            }
            resp.add_query(q);
            if let Ok(bytes) = resp.to_vec() {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_to_upstream_and_relays() {
    let (up, count) = fake_upstream().await;
    let s = serve_on(
        test_ip(),
        vec![up],
        Duration::from_secs(2),
        sample(),
        view(&[N1], None),
    );
    let m = udp_query(s.udp(), "example.test", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(m.answers[0].ttl, 300, "relayed as it is");

    let m = udp_query(s.udp(), "missing.example.test", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Cluster names never reach the upstream.
    let before = count.load(std::sync::atomic::Ordering::SeqCst);
    let _ = udp_query(s.udp(), "api", RecordType::A).await;
    let _ = udp_query(s.udp(), "api", RecordType::AAAA).await;
    let _ = udp_query(s.udp(), "nope", RecordType::A).await;
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_gives_servfail_within_timeout() {
    let (_hole, dead) = black_hole().await;
    let timeout = Duration::from_millis(500);
    let s = serve_on(test_ip(), vec![dead], timeout, sample(), view(&[N1], None));
    let started = Instant::now();
    let m = udp_query(s.udp(), "example.test", RecordType::A).await;
    let took = started.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // It waited for the upstream (the answer is the timeout's, not an early
    // refusal); how close to the timeout it answers is a benchmark's business.
    assert!(
        took >= timeout,
        "answered after {took:?}, before the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_query_works() {
    let s = serve(sample(), view(&[N1], None));
    let m = tcp_query(s.tcp(), "api", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(100)]);
    let m = tcp_query(s.tcp(), "tasks.db", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip(11), ip(12)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_lookup_of_task_address() {
    let s = serve(sample(), view(&[N1], None));
    let m = udp_query(s.udp(), "1.0.20.10.in-addr.arpa", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let names: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec!["api.1.t1abc.".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_serving() {
    let s = serve(sample(), view(&[N1], None));
    let tcp = s.tcp();
    s.handle.shutdown().await.expect("shutdown");
    assert!(TcpStream::connect(tcp).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_ends_serving() {
    let s = serve(sample(), view(&[N1], None));
    let tcp = s.tcp();
    s.handle.stop();
    // The sockets close as the runtime drops the aborted tasks.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(tcp).await.is_ok() {
        assert!(Instant::now() < deadline, "still serving after stop()");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answer_truncates_over_udp_and_is_whole_over_tcp() {
    let mut records = sample();
    for n in 0..120u8 {
        let mut t = task("big", None, N1, n, true);
        t.addr = Ipv4Addr::new(10, 21, 0, n);
        records.tasks.push(t);
    }
    let s = serve(records, view(&[N1], None));
    let m = udp_query(s.udp(), "tasks.big", RecordType::A).await;
    assert!(m.metadata.truncation, "TC set over UDP without EDNS");
    assert!(m.answers.len() < 120);
    let m = tcp_query(s.tcp(), "tasks.big", RecordType::A).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_over_tcp_from_the_client() {
    let (up, _count) = fake_upstream().await;
    let s = serve_on(
        test_ip(),
        vec![up],
        Duration::from_secs(2),
        sample(),
        view(&[N1], None),
    );
    let m = tcp_query(s.tcp(), "Example.Test.", RecordType::A).await;
    assert_eq!(addrs(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
}

#[test]
fn resolv_conf_parsing() {
    let dir = std::env::temp_dir().join(format!("rswarm-dns-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("resolv.conf");
    std::fs::write(
        &path,
        "# comment\nsearch example.org\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\n\
         nameserver 127.0.0.53\nnameserver bogus\noptions edns0\n",
    )
    .expect("write");
    let got = DnsServer::read_host_resolv_conf(&path);
    assert_eq!(
        got,
        vec![
            SocketAddr::from(([127, 0, 0, 53], 53)),
            SocketAddr::new("fe80::1".parse().expect("v6"), 53),
        ]
    );
    assert!(DnsServer::read_host_resolv_conf(&dir.join("missing")).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn new_outside_a_runtime_is_an_error() {
    assert!(matches!(
        DnsServer::new(vec![]),
        Err(DnsError::NoRuntime(_))
    ));
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Panics, saying what is missing, when not root or `ip netns add` fails: the
    /// test needs both and must not pass without them (CI runs as root).
    fn create(tag: &str) -> TestNetns {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (it makes a network namespace); run it as root"
        );
        let name = format!("rswarm-dns-{tag}-{}", std::process::id());
        let run = |args: &[&str]| {
            let status = std::process::Command::new("ip").args(args).status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "`ip {}` failed ({status:?}): this test needs iproute2 and network namespaces",
                args.join(" ")
            );
        };
        run(&["netns", "add", &name]);
        let ns = TestNetns { name };
        run(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// One UDP query sent from inside the namespace, by a thread that enters it
/// (and then ends, so no runtime thread ever changes namespace).
async fn udp_query_in_netns(
    netns: std::path::PathBuf,
    server: SocketAddr,
    name: &'static str,
) -> Message {
    let thread = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let file = std::fs::File::open(&netns)?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        let sock = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        sock.send_to(&query_bytes(name, RecordType::A, 99), server)?;
        let mut buf = vec![0u8; 4096];
        let (n, _) = sock.recv_from(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    });
    let bytes = tokio::task::spawn_blocking(move || thread.join())
        .await
        .expect("join")
        .expect("client thread")
        .expect("query in netns");
    Message::from_vec(&bytes).expect("decode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_at_127_0_0_11_53_inside_a_task_namespace() {
    let ns = TestNetns::create("serve");
    let (up, _count) = fake_upstream().await;
    let server = DnsServer::with_forward_timeout(vec![up], Duration::from_secs(2)).expect("server");
    server.set_records(sample());
    let (udp, tcp) = bind_in_netns(&ns.path(), DNS_ADDR).expect("bind in netns");
    let handle = server.serve(view(&[N1], None), udp, tcp).expect("serve");
    assert_eq!(handle.udp_addr(), DNS_ADDR);

    let m = udp_query_in_netns(ns.path(), DNS_ADDR, "api").await;
    assert_eq!(addrs(&m), vec![ip(100)]);
    // Forwarded from the daemon's namespace: the upstream on the host's
    // loopback is reachable although the task's namespace has no route to it.
    let m = udp_query_in_netns(ns.path(), DNS_ADDR, "example.test").await;
    assert_eq!(addrs(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    // Nothing listens at 127.0.0.11:53 in the test's own namespace: the port
    // there is free to bind, so the server's sockets are the task namespace's.
    let outside = std::net::UdpSocket::bind(DNS_ADDR);
    assert!(
        outside.is_ok(),
        "127.0.0.11:53 is taken in the test's own namespace: {outside:?}"
    );
    drop(handle);
}

#[test]
fn handles_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<DnsServer>();
    send_sync::<ServeHandle>();
    send_sync::<Records>();
    send_sync::<View>();
}

/// A task with its own resolvers (`--dns`) has its unknown names forwarded
/// there, not to the host's; cluster names are still answered locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_with_its_own_resolvers_forwards_there() {
    let (host_up, host_count) = fake_upstream().await;
    let (task_up, task_count) = fake_upstream().await;
    let mut own = view(&[N1], None);
    own.upstreams = vec![task_up];
    let s = serve_on(
        test_ip(),
        vec![host_up],
        Duration::from_secs(2),
        sample(),
        own,
    );
    let m = udp_query(s.udp(), "example.test", RecordType::A).await;
    assert_eq!(addrs(&m), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(task_count.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(host_count.load(std::sync::atomic::Ordering::SeqCst), 0);
    let m = udp_query(s.udp(), "api", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!addrs(&m).is_empty(), "a cluster name still resolves");
    assert_eq!(task_count.load(std::sync::atomic::Ordering::SeqCst), 1);
}
