//! `bench-network`: the networking figures of rswarm on a 3-host namespace
//! cluster made by the `rswarm-tests` harness (host1 manager, host2 and host3
//! workers, one bridge in a switch namespace).
//!
//! Set-up: overlay network `backend` (10.20.0.0/24); service `srv` (1 task,
//! host2, on `backend`, publishing 8080->5201 and 8081->7000 in ingress mode)
//! and service `cli` (1 task, host3, on `backend`). The measuring programs run
//! *in the tasks' network namespaces* (`<data-dir>/netns/<task-id>`), so the
//! packets take exactly the tasks' data path (veth, bridge, VXLAN, nftables)
//! while the programs need not be in the test image:
//!
//! 1. **Throughput** (`iperf3`, TCP, one stream, 3 interleaved runs of
//!    `--seconds` per case, median; the server
//!    in `srv`'s namespace):
//!    - direct: `cli` -> `srv`'s `backend` address (host3 -> host2 over VXLAN);
//!    - VIP: `cli` -> `srv`'s VIP (nftables DNAT in `cli`'s namespace);
//!    - mesh: host3's namespace -> host3's own address, port 8080 (DNAT +
//!      masquerade on host3, then the `ingress` overlay to host2), against
//!      host3 -> `srv`'s `ingress` address directly;
//!    - hosts: host3 -> host2's own address (the underlay), for the overlay
//!      ratio.
//! 2. **Latency** (a Rust echo server in `srv`'s namespace on port 7000, a
//!    Rust client): 64-byte request/response round trips on one connection,
//!    and whole connections (connect, one exchange, close), p50/p99, for
//!    direct, VIP and mesh (port 8081).
//! 3. **Embedded DNS**: `dnsperf` in `cli`'s namespace against 127.0.0.11
//!    (names `srv` and `tasks.srv`), queries per second; and p50/p99 of
//!    sequential queries from a Rust client.
//! 4. **Time to resolve**: a new service `probeN` (1 task on host2, on
//!    `backend`) is created while a client in `cli`'s namespace on host3 asks
//!    for `tasks.probeN` every 2 ms; the figure is the time from the task's
//!    Running timestamp (as the agent reported it; one machine, one clock) to
//!    the first answer with an address. Median of the rounds.
//!
//! ```text
//! cargo build --release -p rswarm
//! RSWARM_BIN=target/release/rswarm cargo run --release -p rswarm-tests --bin bench-network
//! ```
//! Flags: `--seconds N` (iperf3 run length, default 5; 3 runs a case), `--rounds N` (time to
//! resolve, default 5). Installs `iperf3` and `dnsperf` with apt-get when
//! missing. Run it as root.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rswarm_tests::{wait_for, Cluster, Host};

/// iperf3 runs per throughput case.
const THROUGHPUT_ROUNDS: usize = 3;

struct Opts {
    seconds: u32,
    rounds: usize,
}

fn main() -> ExitCode {
    let mut opts = Opts {
        seconds: 5,
        rounds: 5,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = |it: &mut std::slice::Iter<String>| -> Option<usize> {
            it.next().and_then(|v| v.parse().ok())
        };
        match a.as_str() {
            "--seconds" => match value(&mut it) {
                Some(v) if v > 0 => opts.seconds = v as u32,
                _ => return usage("--seconds needs a positive number"),
            },
            "--rounds" => match value(&mut it) {
                Some(v) if v > 0 => opts.rounds = v,
                _ => return usage("--rounds needs a positive number"),
            },
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-network: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("bench-network: {msg}\nusage: bench-network [--seconds N] [--rounds N]");
    ExitCode::from(2)
}

/// Runs `f` on a thread inside the network namespace at `path`.
fn in_ns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let ns = File::open(path).with_context(|| format!("open {}", path.display()))?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            // SAFETY: setns on this thread only; `ns` outlives the call.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(anyhow::anyhow!(
                    "setns {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                ));
            }
            Ok(f())
        });
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a thread in {} panicked", path.display()))?
    })
}

/// A process started in a namespace, killed when dropped.
struct Bg(Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nsenter(path: &Path, cmd: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", path.display()))
        .arg("--")
        .args(cmd);
    c
}

fn ensure_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = ["iperf3", "dnsperf"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing {missing:?} (apt-get)");
    let ok = Command::new("sh")
        .args([
            "-c",
            &format!(
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {}",
                missing.join(" ")
            ),
        ])
        .status()?
        .success();
    if !ok {
        bail!("could not install {missing:?}");
    }
    Ok(())
}

/// The full ID of the one running task of `svc`.
fn task_id(h: &Host, svc: &str) -> String {
    wait_for(Duration::from_secs(90), &format!("{svc} running"), || {
        let out = h.ok(&[
            "service",
            "ps",
            svc,
            "--no-trunc",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.ID}} {{.CurrentState}}",
        ]);
        out.lines()
            .find(|l| l.contains(" Running"))
            .and_then(|l| l.split_whitespace().next())
            .map(String::from)
    })
}

fn task_netns(h: &Host, id: &str) -> PathBuf {
    h.data_dir().join("netns").join(id)
}

/// The task's IPv4 address starting with `prefix`.
fn addr_in(ns: &Path, prefix: &str) -> anyhow::Result<Ipv4Addr> {
    let out = nsenter(ns, &["ip", "-4", "-o", "addr"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .filter_map(|w| w.split('/').next())
        .find(|w| w.starts_with(prefix))
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("no {prefix}* address in {}: {text}", ns.display()))
}

/// iperf3 from `client_ns` to `to:port`; receiver Gbit/s.
fn iperf(client_ns: &Path, to: &str, port: u16, secs: u32) -> anyhow::Result<f64> {
    let out = nsenter(
        client_ns,
        &[
            "iperf3",
            "-c",
            to,
            "-p",
            &port.to_string(),
            "-t",
            &secs.to_string(),
            "-J",
        ],
    )
    .output()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "iperf3 to {to}:{port}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(e) = json.get("error") {
        bail!("iperf3 to {to}:{port}: {e}");
    }
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .with_context(|| format!("iperf3 to {to}:{port}: no result"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// An echo server on 0.0.0.0:port in `ns` until `stop`.
fn echo_server(ns: PathBuf, port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let r = in_ns(&ns, || -> std::io::Result<()> {
            let l = TcpListener::bind(("0.0.0.0", port))?;
            // Blocking accept: `stop` is set, then one connection wakes it.
            for conn in l.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let _ = s.set_nodelay(true);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
            Ok(())
        });
        if let Ok(Err(e)) | Err(e) = r.map_err(std::io::Error::other) {
            eprintln!("echo server: {e}");
        }
    })
}

struct Latency {
    rtt: Vec<Duration>,
    conn: Vec<Duration>,
}

/// Round trips on one connection, and whole connections, from `ns` to `to`.
fn latency(ns: &Path, to: SocketAddr) -> anyhow::Result<Latency> {
    in_ns(ns, || -> anyhow::Result<Latency> {
        let msg = [7u8; 64];
        let mut buf = [0u8; 64];
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut rtt = Vec::with_capacity(5000);
        for i in 0..5200 {
            let t = Instant::now();
            s.write_all(&msg)?;
            s.read_exact(&mut buf)?;
            if i >= 200 {
                rtt.push(t.elapsed());
            }
        }
        drop(s);
        let mut conn = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let t = Instant::now();
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(&msg)?;
            s.read_exact(&mut buf)?;
            drop(s);
            conn.push(t.elapsed());
        }
        rtt.sort();
        conn.sort();
        Ok(Latency { rtt, conn })
    })?
}

/// A DNS query for `name` (type A) with id `id`.
fn dns_query(name: &str, id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The number of answers in a DNS response with id `id` (None if it is not one).
fn dns_answers(resp: &[u8], id: u16) -> Option<u16> {
    if resp.len() < 12 || resp[0..2] != id.to_be_bytes() {
        return None;
    }
    Some(u16::from_be_bytes([resp[6], resp[7]]))
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The Running timestamp (unix ns) of `svc`'s task, from the Services API
/// (`service ps` shows it only as "Running N seconds ago").
fn running_since(h: &Host, svc: &str) -> anyhow::Result<i64> {
    use rswarm_proto::control::services_client::ServicesClient;
    use rswarm_proto::control::ListTasksRequest;
    use rswarm_proto::types::TaskState;
    let socket = h.socket().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let channel = tonic::transport::Endpoint::try_from("http://localhost")?
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }))
            .await?;
        let mut client = ServicesClient::new(channel);
        let tasks = client
            .list_tasks(ListTasksRequest {
                service_refs: vec![svc.to_string()],
                ..Default::default()
            })
            .await?
            .into_inner()
            .tasks;
        tasks
            .iter()
            .filter_map(|t| t.status.as_ref())
            .find(|s| s.state == TaskState::Running as i32)
            .map(|s| s.timestamp)
            .context("no running task")
    })
}

fn run(opts: &Opts) -> anyhow::Result<()> {
    ensure_tools()?;
    println!("building a 3-host cluster (host1 manager, host2/host3 workers)");
    let cluster = Cluster::with_registry(3)?;
    cluster.init_swarm(1, 2)?;
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.20.0.0/24", "backend"]);
    for (name, node, publish) in [("srv", "host2", true), ("cli", "host3", false)] {
        let constraint = format!("node.hostname=={node}");
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--network",
            "backend",
            "--constraint",
            &constraint,
        ];
        if publish {
            args.extend(["--publish", "8080:5201", "--publish", "8081:7000"]);
        }
        args.extend([image.as_str(), "sleep", "36000"]);
        h1.ok(&args);
    }
    let srv_ns = task_netns(h2, &task_id(h1, "srv"));
    let cli_ns = task_netns(h3, &task_id(h1, "cli"));
    let host2_ns = PathBuf::from(format!("/var/run/netns/{}", h2.netns()));
    let host3_ns = PathBuf::from(format!("/var/run/netns/{}", h3.netns()));
    let srv_backend = addr_in(&srv_ns, "10.20.0.")?;
    let srv_ingress = addr_in(&srv_ns, "10.0.0.")?;
    let vip = h1
        .ok(&[
            "service",
            "inspect",
            "srv",
            "--format",
            "{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}",
        ])
        .split_whitespace()
        .find(|a| a.starts_with("10.20.0."))
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse::<Ipv4Addr>().ok())
        .context("srv has no VIP on backend")?;
    println!(
        "srv: backend {srv_backend}, ingress {srv_ingress}, VIP {vip}; host2 {}, host3 {}",
        h2.addr(),
        h3.addr()
    );

    // 1. Throughput.
    let _srv_iperf = Bg(nsenter(&srv_ns, &["iperf3", "-s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?);
    let _host_iperf = Bg(nsenter(&host2_ns, &["iperf3", "-s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?);
    std::thread::sleep(Duration::from_millis(500));
    let s = opts.seconds;
    let (srv_b, srv_i, vip_s) = (
        srv_backend.to_string(),
        srv_ingress.to_string(),
        vip.to_string(),
    );
    let cases: [(&Path, &str, u16); 5] = [
        (&cli_ns, &srv_b, 5201),
        (&cli_ns, &vip_s, 5201),
        (&host3_ns, &srv_i, 5201),
        (&host3_ns, h3.addr(), 8080),
        (&host3_ns, h2.addr(), 5201),
    ];
    // Interleaved rounds, so a burst of other load on the machine hits
    // every case alike; the median of each.
    let mut runs: Vec<Vec<f64>> = vec![vec![]; cases.len()];
    for _ in 0..THROUGHPUT_ROUNDS {
        for (i, (ns, to, port)) in cases.iter().enumerate() {
            runs[i].push(iperf(ns, to, *port, s)?);
        }
    }
    let med: Vec<f64> = runs
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (direct, via_vip, ingress_direct, via_mesh, hosts) =
        (med[0], med[1], med[2], med[3], med[4]);
    println!(
        "\n== throughput (iperf3, 1 TCP stream, {s} s a run, median of {THROUGHPUT_ROUNDS} interleaved runs; Gbit/s) =="
    );
    println!(
        "task -> task address (host3 -> host2, overlay): {direct:.2}  [{}]",
        show(&runs[0])
    );
    println!(
        "task -> VIP:                                      {via_vip:.2}  [{}]  ratio {:.2}",
        show(&runs[1]),
        via_vip / direct
    );
    println!(
        "host3 -> task's ingress address:                 {ingress_direct:.2}  [{}]",
        show(&runs[2])
    );
    println!(
        "host3 -> host3:8080 (routing mesh):               {via_mesh:.2}  [{}]  ratio {:.2}",
        show(&runs[3]),
        via_mesh / ingress_direct
    );
    println!(
        "host3 -> host2 (the hosts' own addresses):       {hosts:.2}  [{}]",
        show(&runs[4])
    );
    println!(
        "overlay ratio (task->task / host->host):         {:.2}",
        direct / hosts
    );

    // 2. Latency.
    let stop = Arc::new(AtomicBool::new(false));
    let server = echo_server(srv_ns.clone(), 7000, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let cases = [
        (
            "task -> task address",
            cli_ns.clone(),
            SocketAddr::from((srv_backend, 7000)),
        ),
        ("task -> VIP", cli_ns.clone(), SocketAddr::from((vip, 7000))),
        (
            "host3 -> task's ingress address",
            host3_ns.clone(),
            SocketAddr::from((srv_ingress, 7000)),
        ),
        (
            "host3 -> host3:8081 (mesh)",
            host3_ns.clone(),
            SocketAddr::new(h3.addr().parse()?, 8081),
        ),
    ];
    println!(
        "\n== latency (64-byte echo; 5000 round trips on one connection; 1000 connections) =="
    );
    let mut base = None;
    for (name, ns, to) in cases {
        let l = latency(&ns, to)?;
        let (p50, p99) = (percentile(&l.rtt, 0.5), percentile(&l.rtt, 0.99));
        let (c50, c99) = (percentile(&l.conn, 0.5), percentile(&l.conn, 0.99));
        println!(
            "{name:34} rtt p50 {:7.1} us p99 {:7.1} us | connection p50 {:7.1} us p99 {:7.1} us",
            us(p50),
            us(p99),
            us(c50),
            us(c99)
        );
        match name {
            "task -> task address" | "host3 -> task's ingress address" => base = Some(p50),
            _ => {
                if let Some(b) = base {
                    println!(
                        "{:34} rtt p50 ratio (direct / this) {:.2}",
                        "",
                        us(b) / us(p50)
                    );
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = in_ns(&cli_ns, || {
        TcpStream::connect_timeout(
            &SocketAddr::from((srv_backend, 7000)),
            Duration::from_secs(2),
        )
    });
    let _ = server.join();

    // 3. DNS.
    let qfile = std::env::temp_dir().join(format!("rswarm-dnsperf-{}.txt", std::process::id()));
    std::fs::write(&qfile, "srv A\ntasks.srv A\n")?;
    let out = nsenter(
        &cli_ns,
        &[
            "dnsperf",
            "-s",
            "127.0.0.11",
            "-d",
            &qfile.display().to_string(),
            "-l",
            "10",
            "-c",
            "4",
            "-Q",
            "200000",
        ],
    )
    .output()?;
    let _ = std::fs::remove_file(&qfile);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("\n== embedded DNS (dnsperf in cli's namespace, 10 s) ==");
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with("Queries per second")
            || t.starts_with("Average Latency")
            || t.starts_with("Queries lost")
            || t.starts_with("Response codes")
        {
            println!("{t}");
        }
    }
    let lat = in_ns(&cli_ns, || -> anyhow::Result<Vec<Duration>> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.connect("127.0.0.11:53")?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = [0u8; 512];
        let mut v = Vec::with_capacity(10000);
        for i in 0..10000u16 {
            let q = dns_query(if i % 2 == 0 { "srv" } else { "tasks.srv" }, i);
            let t = Instant::now();
            sock.send(&q)?;
            loop {
                let n = sock.recv(&mut buf)?;
                if dns_answers(&buf[..n], i).is_some() {
                    break;
                }
            }
            v.push(t.elapsed());
        }
        v.sort();
        Ok(v)
    })??;
    println!(
        "sequential queries: p50 {:.1} us, p99 {:.1} us",
        us(percentile(&lat, 0.5)),
        us(percentile(&lat, 0.99))
    );

    // 4. Time from Running to resolvable on another host.
    println!("\n== time from a task's Running to its name resolving on another host ==");
    let mut times = vec![];
    for round in 1..=opts.rounds {
        let name = format!("probe{round}");
        let found = Arc::new(AtomicBool::new(false));
        let found_at = {
            let (name, ns, found) = (name.clone(), cli_ns.clone(), found.clone());
            std::thread::spawn(move || {
                in_ns(&ns, || -> anyhow::Result<i64> {
                    let sock = UdpSocket::bind("0.0.0.0:0")?;
                    sock.connect("127.0.0.11:53")?;
                    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
                    let mut buf = [0u8; 512];
                    let started = Instant::now();
                    let mut id = 0u16;
                    while started.elapsed() < Duration::from_secs(120) {
                        id = id.wrapping_add(1);
                        sock.send(&dns_query(&format!("tasks.{name}"), id))?;
                        if let Ok(n) = sock.recv(&mut buf) {
                            if dns_answers(&buf[..n], id).unwrap_or(0) > 0 {
                                found.store(true, Ordering::Relaxed);
                                return Ok(now_ns());
                            }
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    bail!("tasks.{name} never resolved")
                })?
            })
        };
        h1.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            &name,
            "--network",
            "backend",
            "--constraint",
            "node.hostname==host2",
            &image,
            "sleep",
            "36000",
        ]);
        let resolved = found_at
            .join()
            .map_err(|_| anyhow::anyhow!("resolver thread panicked"))??;
        task_id(h1, &name);
        let running = running_since(h1, &name)?;
        let ms = (resolved - running) as f64 / 1e6;
        println!("round {round}: resolved {ms:.1} ms after Running");
        times.push(ms);
        h1.ok(&["service", "rm", &name]);
    }
    times.sort_by(f64::total_cmp);
    if let Some(m) = times.get(times.len() / 2) {
        println!(
            "median {m:.1} ms (min {:.1}, max {:.1})",
            times[0],
            times[times.len() - 1]
        );
    }
    Ok(())
}
