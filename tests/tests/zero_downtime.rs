//! Tasks the manager stops take no failed request, and connections to a
//! task that is gone end instead of hanging, end to end on a 2-host
//! namespace cluster (one manager, one worker):
//!
//! - while one client loops HTTP requests through the routing mesh (from
//!   host1's namespace, through host2's published port) and another loops
//!   through the service's VIP (a task on the overlay network), `service
//!   scale web=1` from 3 and `service rm` of another service on the same
//!   network fail not one request: a stopping task leaves the VIPs, the mesh
//!   and DNS on every node before it gets its stop signal;
//! - a long-lived TCP connection through the mesh to a task that is then
//!   removed is closed (EOF or reset) within seconds;
//! - a long-lived TCP connection through the mesh to a task whose node
//!   vanished (its cable pulled: no FIN ever comes) is reset at the client's
//!   next packet once the task leaves the network state, because the
//!   conntrack entry that kept it on the vanished task is deleted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rswarm_tests::lists::wait_tasks;
use rswarm_tests::{try_wait_for, wait_for, Cluster, Host};

/// Image pull, scheduling, runc, on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// A web server answering `GET /` with its hostname (the first 12
/// characters of its task ID).
const WEB: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

/// The VIP client's loop: once `/tmp/go` exists and while it does, one
/// request through the VIP of `web` every 20 ms, each logged as the body or
/// as `FAIL` (`timeout` ends a request to a backend that is gone).
const CLIENT: &str = "while [ ! -e /tmp/go ]; do sleep 0.1; done; \
    while [ -e /tmp/go ]; do \
      if ! timeout 3 wget -q -O - http://web/ >> /tmp/log 2>/dev/null; then echo FAIL >> /tmp/log; fi; \
      sleep 0.02; \
    done; touch /tmp/done; exec sleep 3600";

/// An echo server: each connection is greeted with the task's hostname,
/// then gets back every line it sends.
const ECHO: &str = "exec nc -ll -p 7000 -e sh -c 'hostname; exec cat'";

/// One HTTP GET of `http://{addr}/` made from `h`'s namespace: the body's
/// last line, or why it failed.
fn get(h: &Host, addr: SocketAddr) -> Result<String, String> {
    let stream = h
        .in_netns(|| TcpStream::connect_timeout(&addr, Duration::from_secs(3)))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut stream = stream;
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    if !answer.starts_with("HTTP/1.") || !answer.contains(" 200 ") {
        return Err(format!("answer: {answer:?}"));
    }
    answer
        .lines()
        .last()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("no body: {answer:?}"))
}

/// The lines of `/tmp/log` in task `task`.
fn client_log(h: &Host, task: &str) -> Vec<String> {
    h.rswarm(&["exec", task, "cat", "/tmp/log"])
        .stdout
        .lines()
        .map(String::from)
        .collect()
}

fn running(h: &Host, service: &str) -> usize {
    rswarm_tests::lists::tasks(h, service)
        .iter()
        .filter(|t| t.is_running())
        .count()
}

#[test]
fn tasks_the_manager_stops_take_no_failed_request() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.33.0.0/24", "backend"]);
    for (name, replicas, publish) in [("web", "3", Some("8080:80")), ("api", "2", None)] {
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--network",
            "backend",
            "--replicas",
            replicas,
            "--stop-grace-period",
            "1s",
        ];
        if let Some(p) = publish {
            args.extend(["--publish", p]);
        }
        args.extend([image.as_str(), "sh", "-c", WEB]);
        h1.ok(&args);
    }
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "client",
        "--network",
        "backend",
        &image,
        "sh",
        "-c",
        CLIENT,
    ]);
    h1.wait_running_tasks("web", 3);
    h1.wait_running_tasks("api", 2);
    h1.wait_running_tasks("client", 1);

    // Through host2's published port, from host1: every task answers.
    let mesh: SocketAddr = format!("{}:8080", h2.addr()).parse().expect("address");
    let mut seen = std::collections::BTreeSet::new();
    try_wait_for(CONVERGE, "the mesh to reach all 3 web tasks", || {
        if let Ok(body) = get(h1, mesh) {
            seen.insert(body);
        }
        (seen.len() == 3).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {seen:?}\n{}", h2.daemon_log_tail(30)));

    // Both clients loop while the manager stops tasks.
    h1.ok(&["exec", "client.1", "touch", "/tmp/go"]);
    wait_for(
        Duration::from_secs(30),
        "the VIP client's first answers",
        || (client_log(h1, "client.1").len() >= 5).then_some(()),
    );
    let stop = AtomicBool::new(false);
    let mesh_log: Mutex<Vec<(Instant, Result<String, String>)>> = Mutex::new(vec![]);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let r = get(h1, mesh);
                mesh_log.lock().expect("log").push((Instant::now(), r));
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        std::thread::sleep(Duration::from_secs(1));
        let scale = Instant::now();
        h1.ok(&["service", "scale", "--detach", "web=1"]);
        // One task runs; the two others have stopped (or are gone).
        wait_tasks(h1, "web", CONVERGE, "web scaled to 1", |ts| {
            ts.iter().filter(|t| t.is_running()).count() == 1
                && ts
                    .iter()
                    .all(|t| t.is_running() || !t.current.starts_with("Running"))
        });
        eprintln!(
            "web=1: two tasks stopped {:?} after the scale",
            scale.elapsed()
        );
        let rm = Instant::now();
        h1.ok(&["service", "rm", "api"]);
        wait_for(CONVERGE, "api's containers to go", || {
            let left = [h1, h2]
                .iter()
                .flat_map(|h| h.containers())
                .filter(|c| c.status == "running")
                .count();
            // web.1 and client.1 are left.
            (left == 2).then_some(())
        });
        eprintln!("service rm api: its tasks gone {:?} after", rm.elapsed());
        // A little more traffic to the task that is left.
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
    });
    h1.ok(&["exec", "client.1", "rm", "/tmp/go"]);
    wait_for(
        Duration::from_secs(20),
        "the VIP client's loop to stop",
        || {
            h1.rswarm(&["exec", "client.1", "test", "-e", "/tmp/done"])
                .success()
                .then_some(())
        },
    );

    let mesh_log = mesh_log.into_inner().expect("log");
    let failed: Vec<String> = mesh_log
        .iter()
        .filter_map(|(at, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("{:?}: {e}", at.duration_since(started)))
        })
        .collect();
    let bodies: std::collections::BTreeSet<&str> = mesh_log
        .iter()
        .filter_map(|(_, r)| r.as_deref().ok())
        .collect();
    eprintln!(
        "mesh client: {} requests, {} failed, answered by {bodies:?}",
        mesh_log.len(),
        failed.len()
    );
    assert!(
        mesh_log.len() >= 100,
        "too few mesh requests: {}",
        mesh_log.len()
    );
    assert!(
        bodies.len() == 3,
        "the mesh reached {bodies:?}, not all 3 tasks"
    );
    assert!(
        failed.is_empty(),
        "mesh requests failed:\n{}",
        failed.join("\n")
    );

    let vip_log = client_log(h1, "client.1");
    let vip_failed = vip_log.iter().filter(|l| *l == "FAIL").count();
    let vip_bodies: std::collections::BTreeSet<&str> = vip_log
        .iter()
        .map(String::as_str)
        .filter(|l| *l != "FAIL")
        .collect();
    eprintln!(
        "VIP client: {} requests, {vip_failed} failed, answered by {vip_bodies:?}",
        vip_log.len()
    );
    assert!(
        vip_log.len() >= 50,
        "too few VIP requests: {}",
        vip_log.len()
    );
    assert_eq!(vip_bodies.len(), 3, "the VIP reached {vip_bodies:?}");
    assert_eq!(
        vip_failed,
        0,
        "VIP requests failed:\n{}",
        vip_log.join("\n")
    );
    assert_eq!(running(h1, "web"), 1);
}

/// A connection to the echo server through `to`, opened from `h`'s
/// namespace, with its greeting (the serving task's hostname).
struct Echo {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    greeting: String,
}

impl Echo {
    fn open(h: &Host, to: SocketAddr) -> std::io::Result<Echo> {
        let stream = h.in_netns(|| TcpStream::connect_timeout(&to, Duration::from_secs(3)))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut greeting = String::new();
        reader.read_line(&mut greeting)?;
        Ok(Echo {
            stream,
            reader,
            greeting: greeting.trim().to_string(),
        })
    }

    fn echo(&mut self, line: &str) -> std::io::Result<String> {
        self.stream.write_all(format!("{line}\n").as_bytes())?;
        let mut back = String::new();
        if self.reader.read_line(&mut back)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(back.trim().to_string())
    }

    /// Sends a line every 200 ms until the connection fails (EOF, reset,
    /// a write error) or `max` passes; how long that took, and the error.
    fn until_closed(&mut self, max: Duration) -> Option<(Duration, std::io::Error)> {
        let started = Instant::now();
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .ok()?;
        while started.elapsed() < max {
            match self.echo("ping") {
                Ok(_) => std::thread::sleep(Duration::from_millis(200)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Some((started.elapsed(), e)),
            }
        }
        None
    }
}

/// A connection through `to` that landed on a task of `service` on `node`.
fn echo_on(h: &Host, to: SocketAddr, want: &str) -> Echo {
    let mut last = String::new();
    try_wait_for(
        CONVERGE,
        &format!("a connection through {to} to {want}"),
        || match Echo::open(h, to) {
            Ok(e) if e.greeting == want => Some(e),
            Ok(e) => {
                last = e.greeting.clone();
                None
            }
            Err(e) => {
                last = e.to_string();
                None
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}: last {last}"))
}

/// The 12-character hostname of the running task of `service` on `node`.
fn task_host(h: &Host, service: &str, node: &str) -> String {
    rswarm_tests::lists::tasks(h, service)
        .iter()
        .find(|t| t.is_running() && t.node == node)
        .map(|t| t.id.chars().take(12).collect())
        .unwrap_or_else(|| panic!("no running {service} task on {node}"))
}

#[test]
fn connections_to_a_task_that_is_gone_end_instead_of_hanging() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    for (name, published) in [("echo", "9000:7000"), ("held", "9001:7000")] {
        h1.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--replicas",
            "2",
            "--replicas-max-per-node",
            "1",
            "--stop-grace-period",
            "1s",
            "--publish",
            published,
            &image,
            "sh",
            "-c",
            ECHO,
        ]);
    }
    h1.wait_running_tasks("echo", 2);
    h1.wait_running_tasks("held", 2);

    // Removed: the connection through host1's mesh to echo's task on host2
    // ends (the task's own close gets through: the nodes keep their route
    // to a stopping task until it has stopped).
    let to: SocketAddr = format!("{}:9000", h1.addr()).parse().expect("address");
    let mut conn = echo_on(h1, to, &task_host(h1, "echo", "host2"));
    assert_eq!(conn.echo("hello").expect("echo"), "hello");
    let rm = Instant::now();
    h1.ok(&["service", "rm", "echo"]);
    let (after, err) = conn
        .until_closed(Duration::from_secs(30))
        .unwrap_or_else(|| {
            panic!("the connection to a removed task still answers or hangs after 30 s")
        });
    eprintln!(
        "removed: the connection ended {:?} after `service rm` ({err})",
        rm.elapsed()
    );
    assert!(after < Duration::from_secs(10), "took {after:?}");

    // Vanished: host2's cable is pulled while a connection through host1's
    // mesh is on its task. No FIN ever comes; once host2 is Down and its
    // task leaves the network state, host1 forgets the connection, and the
    // client's next line meets the mesh afresh: host1's own task resets it.
    let to: SocketAddr = format!("{}:9001", h1.addr()).parse().expect("address");
    let mut conn = echo_on(h1, to, &task_host(h1, "held", "host2"));
    assert_eq!(conn.echo("hello").expect("echo"), "hello");
    let cut = Instant::now();
    h2.disconnect();
    let closed = conn.until_closed(Duration::from_secs(45));
    let down_after = wait_for(Duration::from_secs(30), "host2 Down", || {
        let ls = h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        ls.lines().any(|l| l == "host2 Down").then(|| cut.elapsed())
    });
    h2.heal();
    let (after, err) = closed.unwrap_or_else(|| {
        panic!("the connection to host2's task still hangs 45 s after its cable was pulled (host2 Down after {down_after:?})")
    });
    eprintln!("vanished: the connection ended {after:?} after the cable was pulled, host2 Down after {down_after:?} ({err})");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionReset,
        "a reset from a live backend: {err}"
    );
    assert!(after < Duration::from_secs(20), "took {after:?}");
}

/// What the drain adds to `service rm` of 100 tasks on an overlay network
/// on one node (each task drains, all at once): the time from `service rm`
/// until no container of it runs, and until none is left. A figure, not a
/// check: `cargo test -p rswarm-tests --test zero_downtime -- --ignored
/// --nocapture` (compare binaries with `RSWARM_BIN`).
#[test]
#[ignore = "benchmark; run explicitly"]
fn bench_service_rm_of_100_tasks_on_a_network() {
    let cluster = Cluster::with_registry(1).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.34.0.0/22", "benchnet"]);
    for round in 1..=2 {
        let created = Instant::now();
        h1.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            "bench",
            "--network",
            "benchnet",
            "--replicas",
            "100",
            &image,
            "sh",
            "-c",
            WEB,
        ]);
        wait_for(Duration::from_secs(600), "100 running tasks", || {
            (running(h1, "bench") == 100).then_some(())
        });
        let up = created.elapsed();
        let rm = Instant::now();
        h1.ok(&["service", "rm", "bench"]);
        let stopped = wait_for(Duration::from_secs(300), "no running container", || {
            let (_, live) = runc_count(h1)?;
            (live == 0).then(|| rm.elapsed())
        });
        let gone = wait_for(Duration::from_secs(300), "no container", || {
            let (all, _) = runc_count(h1)?;
            (all == 0).then(|| rm.elapsed())
        });
        eprintln!(
            "round {round}: 100 tasks up in {up:?}; service rm: all stopped after {stopped:?}, all removed after {gone:?}"
        );
    }
}

/// (containers, running containers) per `runc list`; None when the list
/// failed (a container deleted while it was read).
fn runc_count(h: &Host) -> Option<(usize, usize)> {
    let out = h.runc(&["list"]);
    if !out.success() {
        return None;
    }
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let live = rows
        .iter()
        .filter(|l| l.split_whitespace().nth(2) == Some("running"))
        .count();
    Some((rows.len(), live))
}
