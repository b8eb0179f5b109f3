//! `bench-foundation`: the foundation figures of rswarm, measured on real clusters of
//! network-namespace hosts made by the `rswarm-tests` harness.
//!
//! 1. **Leader failover time.** A 3-manager swarm; each round finds the Raft leader
//!    (`node ls`), SIGKILLs its daemon, and on a surviving manager runs
//!    `rswarm node update --label-add round=<i> <survivor>` again and again until it
//!    succeeds. The figure is the time from the kill to that first successful write
//!    (so it includes one CLI start-up). The killed daemon is then restarted, and the
//!    next round waits until it is Ready and Reachable again. Median, min and max.
//! 2. **Raft write throughput and commit latency.** A fresh 3-manager swarm; clients
//!    call the Control API's `UpdateNode` (a label change, `spec_version: None`) over the
//!    leader's unix socket, spreading the writes over the three nodes' objects: one
//!    client issuing writes back to back, then 64 concurrent clients (one connection
//!    each). Then one client over a follower's socket, which forwards to the leader.
//!    Writes/s and the p50/p99 latency of a write.
//! 3. **Idle RSS.** A 1-manager + 1-worker swarm, left idle for a while; `VmRSS` of
//!    each daemon from `/proc/<pid>/status`.
//!
//! Run it as root, with the product built in the same profile (the `rswarm` binary
//! beside this one is used, or `$RSWARM_BIN`):
//!
//! ```text
//! cargo build --release -p rswarm
//! cargo run --release -p rswarm-tests --bin bench-foundation            # full
//! cargo run --release -p rswarm-tests --bin bench-foundation -- --quick # fewer rounds
//! ```
//!
//! Every wait has a deadline; a phase that fails prints why (with the daemons' log
//! tails where the harness gives them) and the program exits 1 after the other
//! phases. `RSWARM_TEST_KEEP_DIRS=1` keeps the clusters' directories (daemon logs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper_util::rt::TokioIo;
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::{ListNodesRequest, UpdateNodeRequest};
use rswarm_proto::types::{Node, NodeSpec};
use rswarm_tests::{try_wait_for, Cluster, Host};
use tonic::transport::{Channel, Endpoint};

/// How long one `rswarm node update` attempt may take during a failover.
const FAILOVER_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Give up on a failover round when no write succeeded this long after the kill.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause between failed write attempts during a failover.
const FAILOVER_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// How long a cluster may take to show a leader, or a restarted manager Ready and
/// Reachable.
const CLUSTER_SETTLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long to wait for the survivors to show a killed manager as down.
const DOWN_DETECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `UpdateNode` call may take in the load phases.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `UpdateNode` call, so an error storm is not a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// The concurrent clients of the second load phase.
const CONCURRENT_CLIENTS: usize = 64;
/// Distinct error messages kept per phase for the report.
const ERROR_SAMPLES: usize = 5;

/// What to run: `--quick` makes every phase shorter.
struct Settings {
    failover_rounds: usize,
    load_duration: Duration,
    idle_duration: Duration,
}

impl Settings {
    fn from_args() -> anyhow::Result<Settings> {
        let mut quick = false;
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--quick" => quick = true,
                "-h" | "--help" => {
                    println!("usage: bench-foundation [--quick]  (as root; see the source docs)");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (usage: bench-foundation [--quick])"),
            }
        }
        Ok(if quick {
            Settings {
                failover_rounds: 2,
                load_duration: Duration::from_secs(3),
                idle_duration: Duration::from_secs(10),
            }
        } else {
            Settings {
                failover_rounds: 5,
                load_duration: Duration::from_secs(10),
                idle_duration: Duration::from_secs(20),
            }
        })
    }
}

fn main() -> ExitCode {
    let settings = match Settings::from_args() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("bench-foundation: {err:#}");
            return ExitCode::from(2);
        }
    };
    let binary = match rswarm_tests::control::bench_binary() {
        Ok(binary) => binary,
        Err(err) => {
            eprintln!("bench-foundation: {err:#}");
            return ExitCode::from(2);
        }
    };
    println!("bench-foundation: rswarm binary {}", binary.display());

    let mut report = Vec::new();
    let mut failed = Vec::new();
    let phases: [(&str, PhaseFn); 3] = [
        ("leader failover", failover_phase),
        ("raft writes", writes_phase),
        ("idle RSS", rss_phase),
    ];
    for (name, phase) in phases {
        println!("\n=== {name} ===");
        let started = Instant::now();
        match phase(&binary, &settings) {
            Ok(lines) => {
                for line in &lines {
                    println!("{line}");
                }
                report.extend(lines);
            }
            Err(err) => {
                eprintln!("bench-foundation: the {name} phase failed: {err:#}");
                report.push(format!("{name}: FAILED (see above)"));
                failed.push(name);
            }
        }
        println!(
            "({name} phase took {:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }

    println!("\n=== rswarm foundation figures ===");
    for line in &report {
        println!("{line}");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench-foundation: failed phases: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// A phase: runs on its own cluster and returns the labelled lines of its figures.
type PhaseFn = fn(&Path, &Settings) -> anyhow::Result<Vec<String>>;

// ----- 1. leader failover -----

fn failover_phase(binary: &Path, settings: &Settings) -> anyhow::Result<Vec<String>> {
    let cluster = Cluster::builder(3).binary(binary).start()?;
    cluster.init_swarm(3, 0)?;
    wait_until_healthy(&cluster)?;

    let mut times = Vec::new();
    for round in 1..=settings.failover_rounds {
        let leader = cluster.host(wait_for_leader(&cluster)?);
        let survivor = cluster
            .hosts()
            .iter()
            .find(|h| h.index() != leader.index())
            .expect("a 3-host cluster has a survivor");
        let label = format!("round={round}");
        let update = ["node", "update", "--label-add", &label, survivor.name()];

        let killed_at = Instant::now();
        leader.kill();
        let mut attempts = 0;
        let mut errors = ErrorSamples::default();
        let took = loop {
            attempts += 1;
            let out = survivor.rswarm_timeout(&update, FAILOVER_ATTEMPT_TIMEOUT);
            if out.success() {
                break killed_at.elapsed();
            }
            let why = if out.timed_out {
                format!("timed out after {FAILOVER_ATTEMPT_TIMEOUT:?}")
            } else {
                out.stderr.trim().to_string()
            };
            errors.add(why);
            if killed_at.elapsed() > FAILOVER_TIMEOUT {
                bail!(
                    "round {round}: no write succeeded on {} within {FAILOVER_TIMEOUT:?} \
                     after killing leader {} ({attempts} attempts); errors: {}\n\
                     --- {} daemon log ---\n{}",
                    survivor.name(),
                    leader.name(),
                    errors.summary(),
                    survivor.name(),
                    survivor.daemon_log_tail(40)
                );
            }
            std::thread::sleep(FAILOVER_RETRY_PAUSE);
        };
        times.push(took);
        let new_leader = wait_for_leader(&cluster)
            .map(|i| cluster.host(i).name().to_string())
            .unwrap_or_else(|err| format!("? ({err})"));
        println!(
            "round {round}: killed leader {}; first write on {} succeeded after {:.3} s \
             ({attempts} attempts{}); new leader {new_leader}",
            leader.name(),
            survivor.name(),
            took.as_secs_f64(),
            if errors.is_empty() {
                String::new()
            } else {
                format!("; failed attempts said: {}", errors.summary())
            }
        );

        // Restart only once the survivors noticed the death, so that "Ready and
        // Reachable again" below is news about the restarted daemon.
        let seen_down = wait_until_seen_down(survivor, leader, killed_at, DOWN_DETECTION_TIMEOUT);
        println!(
            "round {round}: {} shows {} down (not Ready, or Unreachable) {}",
            survivor.name(),
            leader.name(),
            match seen_down {
                Some(after) => format!("{:.1} s after the kill", after.as_secs_f64()),
                None => format!("NOT within {DOWN_DETECTION_TIMEOUT:?}; restarting anyway"),
            }
        );
        let restarted_at = Instant::now();
        leader.try_start()?;
        wait_until_healthy(&cluster)?;
        println!(
            "round {round}: {} restarted; Ready and Reachable again after {:.1} s",
            leader.name(),
            restarted_at.elapsed().as_secs_f64()
        );
    }

    let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    Ok(vec![format!(
        "leader failover time (SIGKILL leader -> first successful `node update` on a \
         survivor), {} rounds, 3 managers: median {:.3} s, min {:.3} s, max {:.3} s",
        secs.len(),
        median(&secs),
        min(&secs),
        max(&secs)
    )])
}

/// One row of `node ls` as a manager sees it.
struct NodeRow {
    hostname: String,
    status: String,
    manager_status: String,
}

fn node_rows(asker: &Host) -> Option<Vec<NodeRow>> {
    let out = asker.rswarm_timeout(
        &[
            "node",
            "ls",
            "--format",
            "{{.Hostname}}|{{.Status}}|{{.ManagerStatus}}",
        ],
        Duration::from_secs(10),
    );
    if !out.success() {
        return None;
    }
    let rows = out
        .stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            Some(NodeRow {
                hostname: fields.next()?.to_string(),
                status: fields.next()?.to_string(),
                manager_status: fields.next().unwrap_or("").to_string(),
            })
        })
        .collect();
    Some(rows)
}

/// The index of the host that every running manager names as the Leader in its
/// `node ls`. (A restarted ex-leader can briefly call itself Leader from its persisted
/// vote, so one manager's answer is not enough.)
fn wait_for_leader(cluster: &Cluster) -> anyhow::Result<usize> {
    let mut last = String::new();
    try_wait_for(
        CLUSTER_SETTLE_TIMEOUT,
        "the running managers to agree on a Raft leader",
        || {
            let mut named = Vec::new();
            for asker in cluster.hosts().iter().filter(|h| h.is_running()) {
                let rows = node_rows(asker)?;
                let leader = rows.iter().find(|r| r.manager_status == "Leader")?;
                named.push((asker.name(), leader.hostname.clone()));
            }
            last = format!("{named:?}");
            let (_, first) = named.first()?;
            let host = cluster
                .hosts()
                .iter()
                .find(|h| h.name() == first && h.is_running())?;
            named
                .iter()
                .all(|(_, leader)| leader == first)
                .then_some(host.index())
        },
    )
    .with_context(|| format!("(asker, leader) pairs last seen: {last}"))
}

/// How long after `killed_at` `asker` shows `killed` as not Ready or Unreachable, if
/// it does so within `timeout` from now.
fn wait_until_seen_down(
    asker: &Host,
    killed: &Host,
    killed_at: Instant,
    timeout: Duration,
) -> Option<Duration> {
    try_wait_for(timeout, "the killed manager to show as down", || {
        let rows = node_rows(asker)?;
        let row = rows.iter().find(|r| r.hostname == killed.name())?;
        (row.status != "Ready" || row.manager_status == "Unreachable").then_some(())
    })
    .ok()
    .map(|()| killed_at.elapsed())
}

/// Waits until every host of the cluster, asked in turn, shows every host Ready and
/// Leader or Reachable, with one and the same Leader.
fn wait_until_healthy(cluster: &Cluster) -> anyhow::Result<()> {
    let mut last = String::new();
    try_wait_for(
        CLUSTER_SETTLE_TIMEOUT,
        "every manager Ready and Reachable, with one Leader all agree on",
        || {
            let mut leaders = Vec::new();
            for asker in cluster.hosts() {
                let rows = node_rows(asker)?;
                last = format!(
                    "{}: {}",
                    asker.name(),
                    rows.iter()
                        .map(|r| format!("{} {} {}", r.hostname, r.status, r.manager_status))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let all_there = cluster.hosts().iter().all(|h| {
                    rows.iter().any(|r| {
                        r.hostname == h.name()
                            && r.status == "Ready"
                            && matches!(r.manager_status.as_str(), "Leader" | "Reachable")
                    })
                });
                let mut leader = rows.iter().filter(|r| r.manager_status == "Leader");
                match (all_there, leader.next(), leader.next()) {
                    (true, Some(one), None) => leaders.push(one.hostname.clone()),
                    _ => return None,
                }
            }
            leaders.windows(2).all(|w| w[0] == w[1]).then_some(())
        },
    )
    .with_context(|| format!("last answer: {last}"))
}

// ----- 2. Raft write throughput and latency -----

fn writes_phase(binary: &Path, settings: &Settings) -> anyhow::Result<Vec<String>> {
    let cluster = Cluster::builder(3).binary(binary).start()?;
    cluster.init_swarm(3, 0)?;
    wait_until_healthy(&cluster)?;
    let leader = cluster.host(wait_for_leader(&cluster)?);
    let follower = cluster
        .hosts()
        .iter()
        .find(|h| h.index() != leader.index())
        .expect("a 3-host cluster has a follower");
    println!("leader {}, follower {}", leader.name(), follower.name());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let duration = settings.load_duration;
    let runs = [
        ("1 client, leader socket".to_string(), leader, 1),
        (
            format!("{CONCURRENT_CLIENTS} concurrent clients, leader socket"),
            leader,
            CONCURRENT_CLIENTS,
        ),
        ("1 client, follower socket (forwarded)".into(), follower, 1),
    ];
    let mut lines = Vec::new();
    for (what, host, clients) in runs {
        let socket = host.socket().to_path_buf();
        let result = runtime.block_on(async {
            let overall = duration + REQUEST_TIMEOUT * 2 + Duration::from_secs(60);
            tokio::time::timeout(overall, run_load(socket, clients, duration))
                .await
                .with_context(|| format!("{what}: the load did not end within {overall:?}"))?
        })?;
        let line = format!("raft writes, UpdateNode, {what}: {}", result.summary());
        println!("{line}");
        if !result.errors.is_empty() {
            println!("  errors seen: {}", result.errors.summary());
        }
        if result.ok == 0 {
            bail!(
                "{what}: no write succeeded; errors: {}",
                result.errors.summary()
            );
        }
        lines.push(line);
    }
    let leader_after = wait_for_leader(&cluster)?;
    if leader_after != leader.index() {
        lines.push(format!(
            "NOTE: leadership moved from {} to {} during the load",
            leader.name(),
            cluster.host(leader_after).name()
        ));
    }
    Ok(lines)
}

/// A Control API client over a daemon's unix socket.
async fn connect(socket: PathBuf) -> anyhow::Result<ControlClient<Channel>> {
    let shown = socket.display().to_string();
    let channel = Endpoint::try_from("http://localhost")?
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .with_context(|| format!("connecting to {shown}"))?;
    Ok(ControlClient::new(channel))
}

/// What one load run did.
struct LoadResult {
    clients: usize,
    ok: usize,
    elapsed: Duration,
    /// Latency of every successful write, sorted.
    latencies: Vec<Duration>,
    errors: ErrorSamples,
    /// Raft log entries committed during the run (the growth of the highest node
    /// version, which is the log index of its last write); `None` if unknown.
    log_entries: Option<u64>,
}

impl LoadResult {
    fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{:.1} writes/s, p50 {:.2} ms, p99 {:.2} ms ({} writes by {} client(s) in {:.1} s, \
             {} errors, {})",
            self.ok as f64 / self.elapsed.as_secs_f64(),
            ms(percentile(&self.latencies, 0.50)),
            ms(percentile(&self.latencies, 0.99)),
            self.ok,
            self.clients,
            self.elapsed.as_secs_f64(),
            self.errors.count,
            match self.log_entries {
                Some(entries) if self.ok > 0 => format!(
                    "~{entries} Raft log entries = {:.2} per successful write",
                    entries as f64 / self.ok as f64
                ),
                _ => "Raft log growth unknown".into(),
            }
        )
    }
}

/// `clients` clients, each on its own connection to `socket`, issue `UpdateNode`
/// label changes back to back for `duration`, spread over every node object.
async fn run_load(
    socket: PathBuf,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let mut lister = connect(socket.clone()).await?;
    let nodes = tokio::time::timeout(
        REQUEST_TIMEOUT,
        lister.list_nodes(ListNodesRequest::default()),
    )
    .await
    .context("ListNodes timed out")?
    .context("ListNodes")?
    .into_inner()
    .nodes;
    let index_before = max_version(&nodes);
    // Each node's current spec: a write changes only its `bench` label.
    let targets: Arc<Vec<(String, NodeSpec)>> = Arc::new(
        nodes
            .into_iter()
            .map(|n| (n.id, n.spec.unwrap_or_default()))
            .collect(),
    );
    if targets.is_empty() {
        bail!("ListNodes returned no nodes");
    }
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(connect(socket.clone()).await?);
    }

    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (client_no, mut client) in connections.into_iter().enumerate() {
        let targets = Arc::clone(&targets);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = ErrorSamples::default();
            let mut seq = 0usize;
            while Instant::now() < deadline {
                let (id, base) = &targets[(client_no + seq) % targets.len()];
                let mut spec = base.clone();
                spec.annotations
                    .get_or_insert_with(Default::default)
                    .labels
                    .insert("bench".into(), format!("c{client_no}-{seq}"));
                let request = UpdateNodeRequest {
                    node_ref: id.clone(),
                    spec_version: None,
                    spec: Some(spec),
                };
                seq += 1;
                let sent = Instant::now();
                match tokio::time::timeout(REQUEST_TIMEOUT, client.update_node(request)).await {
                    Ok(Ok(_)) => latencies.push(sent.elapsed()),
                    Ok(Err(status)) => {
                        errors.add(format!("{:?}: {}", status.code(), status.message()));
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                    Err(_) => errors.add(format!("no answer within {REQUEST_TIMEOUT:?}")),
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = ErrorSamples::default();
    while let Some(joined) = tasks.join_next().await {
        let (mine, my_errors) = joined.context("a load client panicked")?;
        latencies.extend(mine);
        errors.merge(my_errors);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let index_after = tokio::time::timeout(
        REQUEST_TIMEOUT,
        lister.list_nodes(ListNodesRequest::default()),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|answer| max_version(&answer.into_inner().nodes));
    Ok(LoadResult {
        clients,
        ok: latencies.len(),
        elapsed,
        latencies,
        errors,
        log_entries: index_after.map(|after| after.saturating_sub(index_before)),
    })
}

/// The highest object version among `nodes`: the log index of the latest node write.
fn max_version(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .filter_map(|n| n.meta.as_ref()?.version.as_ref())
        .map(|v| v.index)
        .max()
        .unwrap_or(0)
}

// ----- 3. idle RSS -----

fn rss_phase(binary: &Path, settings: &Settings) -> anyhow::Result<Vec<String>> {
    let cluster = Cluster::builder(2).binary(binary).start()?;
    cluster.init_swarm(1, 1)?;
    println!(
        "swarm up (host1 manager, host2 worker); idle for {} s",
        settings.idle_duration.as_secs()
    );
    std::thread::sleep(settings.idle_duration);
    let mut lines = Vec::new();
    for (role, host) in [("manager", cluster.host(1)), ("worker", cluster.host(2))] {
        if !host.is_running() {
            bail!(
                "the {role} daemon on {} is not running\n{}",
                host.name(),
                host.daemon_log_tail(40)
            );
        }
        let pid = host.pid().context("no daemon pid")?;
        let status = read_proc_status(pid)?;
        let kib = |key: &str| -> anyhow::Result<f64> {
            let value = status
                .get(key)
                .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
            let number = value.trim_end_matches("kB").trim();
            number
                .parse::<f64>()
                .with_context(|| format!("{key}: {value:?}"))
        };
        let mib = |k: f64| k / 1024.0;
        lines.push(format!(
            "idle RSS of the {role} daemon ({} s idle): VmRSS {:.1} MiB (peak VmHWM {:.1} MiB, \
             {} threads)",
            settings.idle_duration.as_secs(),
            mib(kib("VmRSS")?),
            mib(kib("VmHWM")?),
            status.get("Threads").map(String::as_str).unwrap_or("?")
        ));
    }
    Ok(lines)
}

/// `/proc/<pid>/status` as key → value.
fn read_proc_status(pid: u32) -> anyhow::Result<HashMap<String, String>> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_string(), value.trim().to_string()))
        .collect())
}

// ----- small helpers -----

/// A count of errors and the first few distinct messages.
#[derive(Default)]
struct ErrorSamples {
    count: usize,
    samples: Vec<(String, usize)>,
}

impl ErrorSamples {
    fn add(&mut self, message: String) {
        self.add_n(message, 1);
    }

    fn add_n(&mut self, message: String, n: usize) {
        self.count += n;
        if let Some(seen) = self.samples.iter_mut().find(|(m, _)| *m == message) {
            seen.1 += n;
        } else if self.samples.len() < ERROR_SAMPLES {
            self.samples.push((message, n));
        }
    }

    fn merge(&mut self, other: ErrorSamples) {
        let listed: usize = other.samples.iter().map(|(_, n)| n).sum();
        for (message, n) in other.samples {
            self.add_n(message, n);
        }
        self.count += other.count - listed;
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn summary(&self) -> String {
        if self.count == 0 {
            return "none".into();
        }
        self.samples
            .iter()
            .map(|(message, n)| format!("{n}x {:?}", message.replace('\n', " / ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Nearest-rank percentile of sorted durations (zero when there are none).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}
