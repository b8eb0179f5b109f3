//! `bench-update`: `service update --force` of a 10-replica web service, rswarm side
//! by side with Docker Swarm (Debian's `docker.io`, Docker Engine 20.10) on the same
//! machine, same image, one node: how long the rolling update takes, and how many
//! requests failed while it ran.
//!
//! **The service.** 10 replicas of the busybox test image
//! ([`rswarm_tests::images::busybox`], loaded from the same `docker save` archive
//! into both, tagged `bench/busybox:1`) running `sh -c 'mkdir -p /www && hostname >
//! /www/index.html && exec httpd -f -p 80 -h /www'`: httpd is the container's PID 1
//! and has no SIGTERM handler, so a task stops only at the end of its stop grace
//! period (SIGKILL), serving until then. Two cases, each with a fresh service:
//! 1. parallelism 1, delay 0s, monitor 0s, stop grace period 1s (given as flags);
//! 2. Swarm's defaults: no `--update-*` or `--stop-grace-period` flag (parallelism 1,
//!    delay 0s, monitor 5s, stop grace 10s). `--quick` skips this case.
//!
//! **Time.** The clock starts when `service update --force web` (not detached: it
//! returns once the update has converged, Docker's CLI after its "verify" wait) is
//! invoked. Reported: when the CLI returned; when the store first showed every task
//! of the new `force_update` Running and no task of the old one Running (polled every
//! 100 ms: rswarm's `GetService`/`ListTasks`, Docker's `GET /services/web` and
//! `GET /tasks`), which does not depend on a CLI's verify wait; and the service's
//! UpdateStatus at the end with `CompletedAt − StartedAt`.
//!
//! **Failed requests.** Clients in this program send `GET /` on a new connection
//! each time, without pause, each with a 2 s deadline for the whole exchange
//! ([`rswarm_tests::request_loop`]), counting answers with status 200 and the
//! rest, from when the update is invoked until 2 s after it converged (CLI returned
//! and store converged):
//! - **overlay (both):** from inside a client task's network namespace (a service
//!   `client` running `sleep 3600` on the overlay network `benchnet`, which `web` is
//!   on too), `tasks.web` is resolved before every request through the embedded DNS
//!   at 127.0.0.11:53 (an `A` query of our own), and the request goes to one of the
//!   answers at random, so a task still in DNS after it stopped serving is hit. Docker's
//!   service uses `--endpoint-mode dnsrr`: its VIPs and routing mesh need IPVS,
//!   which this kernel lacks (see /work/shared/ENVIRONMENT.md), and host-mode
//!   published ports cannot give 10 replicas on one node the same port.
//! - **routing mesh (rswarm only):** rswarm's service publishes `-p 8080:80` (VIP
//!   endpoint mode) and a second client sends to the node's address port 8080 from
//!   the node's network namespace. Docker: n/a (no IPVS).
//!
//! rswarm runs on a one-node cluster of the `rswarm-tests` harness; Docker in a
//! `dockerd` of our own ([`rswarm_tests::dockerd`], removed afterwards on every
//! path). Every figure is printed with the load average and the machine's CPU use
//! during the update, and the CPU time the daemons used: other builds may share the
//! machine. rswarm's update runs with two clients, Docker's with one.
//!
//! ```text
//! cargo build --release -p rswarm
//! cargo run --release -p rswarm-tests --bin bench-update               # both cases
//! cargo run --release -p rswarm-tests --bin bench-update -- --quick    # case 1 only
//! ```
//! Other flags: `--skip-rswarm`, `--skip-docker`. Run it as root.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rswarm_tests::command::{self, CmdOutput};
use rswarm_tests::cpu_window::{wait_for_quiet, LoadAvg, Window, WindowStart};
use rswarm_tests::request_loop::{RequestLoop, Tally, Target};

#[path = "bench-update/docker.rs"]
mod docker;
#[path = "bench-update/rswarm.rs"]
mod rswarm;

/// Replicas of the web service.
const REPLICAS: usize = 10;
/// The image both orchestrators run (loaded from the same archive).
const IMAGE_REF: &str = "bench/busybox:1";
/// The web server: PID 1, no SIGTERM handler.
const WEB_CMD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";
const WEB: &str = "web";
const CLIENT: &str = "client";
const NETWORK: &str = "benchnet";
/// rswarm's published port.
const PUBLISHED: u16 = 8080;
/// The whole of one request: DNS, connect, answer.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// From invocation to converged, at most.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(600);
/// Requests still counted after the update converged.
const TAIL: Duration = Duration::from_secs(2);
/// How long to wait after convergence for the UpdateStatus to say completed.
const STATUS_WAIT: Duration = Duration::from_secs(30);
/// How often the store is polled during the update.
const POLL: Duration = Duration::from_millis(100);
/// A new service to all replicas running, at most.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);
/// Before the update, the clients must see this many answers in a row...
const STEADY_STREAK: u64 = 50;
/// ...within this time.
const STEADY_WAIT: Duration = Duration::from_secs(60);
/// The longest wait for a quiet machine before an update.
const QUIET_WAIT: Duration = Duration::from_secs(30);

/// One way to configure the service.
struct Case {
    label: &'static str,
    /// `--update-*` flags of `service create`.
    update_flags: &'static [&'static str],
    /// The same as an UpdateConfig: (parallelism, delay, monitor); None: unset.
    update: Option<(u64, Duration, Duration)>,
    /// Other flags of `service create`.
    task_flags: &'static [&'static str],
}

const CASES: [Case; 2] = [
    Case {
        label: "parallelism 1, delay 0s, monitor 0s, stop grace 1s",
        update_flags: &[
            "--update-parallelism",
            "1",
            "--update-delay",
            "0s",
            "--update-monitor",
            "0s",
        ],
        update: Some((1, Duration::ZERO, Duration::ZERO)),
        task_flags: &["--stop-grace-period", "1s"],
    },
    Case {
        label: "Swarm's defaults (parallelism 1, delay 0s, monitor 5s, stop grace 10s)",
        update_flags: &[],
        update: None,
        task_flags: &[],
    },
];

const USAGE: &str =
    "usage: bench-update [--quick] [--skip-rswarm] [--skip-docker]  (as root; see the source docs)";

struct Settings {
    cases: usize,
    rswarm: bool,
    docker: bool,
}

impl Settings {
    fn from_args() -> anyhow::Result<Settings> {
        let mut settings = Settings {
            cases: CASES.len(),
            rswarm: true,
            docker: true,
        };
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--quick" => settings.cases = 1,
                "--skip-rswarm" => settings.rswarm = false,
                "--skip-docker" => settings.docker = false,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} ({USAGE})"),
            }
        }
        Ok(settings)
    }
}

/// What an orchestrator does for the measurement.
trait Side {
    fn name(&self) -> &'static str;
    /// Creates the `web` service with `case`'s flags and waits for all replicas.
    fn create_web(&self, case: &Case) -> anyhow::Result<()>;
    /// The service's `force_update` now.
    fn force_update(&self) -> anyhow::Result<u64>;
    /// Tasks of the service: (of a `force_update` above `before`: Running and meant
    /// to run; of `before` or older: Running).
    fn progress(&self, before: u64) -> anyhow::Result<(usize, usize)>;
    /// The service's UpdateStatus: its state and message, `CompletedAt − StartedAt`.
    fn update_status(&self) -> anyhow::Result<(String, Option<Duration>)>;
    /// The `service update --force web` command line and its environment; None
    /// when this orchestrator's CLI has no such command.
    fn update_command(&self) -> Option<Invocation>;
    /// Forces the update through the API instead (when there is no CLI command).
    fn update_by_api(&self) -> anyhow::Result<()>;
    /// Removes `web` and waits until its containers are gone.
    fn remove_web(&self) -> anyhow::Result<()>;
    /// CPU ticks of the daemon(s): (own, reaped children).
    fn cpu(&self) -> (u64, u64);
    /// The network namespace of the client task.
    fn client_netns(&self) -> anyhow::Result<PathBuf>;
    /// Where the routing-mesh client runs and sends to, if there is a mesh.
    fn mesh(&self) -> Option<(PathBuf, Target)>;
    /// Which task has (or had) address `ip`, in words, from the store.
    fn whose(&self, ip: std::net::IpAddr, before: u64) -> Option<String>;
    /// The tail of the daemon's log, for errors.
    fn log_tail(&self) -> String;
}

/// A command line to run on another thread.
struct Invocation {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

/// Requests during an update.
struct Requests {
    ok: u64,
    failed: u64,
    /// The failures' reasons with counts.
    reasons: Vec<(String, usize)>,
    /// The first failures: seconds after the update was invoked, address, reason.
    first: Vec<(f64, Option<SocketAddr>, String)>,
    /// Distinct answers (task hostnames) over the whole run.
    answered_by: usize,
    /// Addresses in the last DNS answer (None: no DNS).
    last_resolved: Option<usize>,
}

impl Requests {
    fn between(before: (u64, u64), tally: &Tally, from: Instant, to: Instant) -> Requests {
        let failures = tally.failures_between(from, to);
        Requests {
            ok: tally.ok.saturating_sub(before.0),
            failed: tally.failed.saturating_sub(before.1),
            reasons: Tally::reasons(&failures),
            first: failures
                .iter()
                .take(5)
                .map(|f| ((f.at - from).as_secs_f64(), f.to, f.reason.clone()))
                .collect(),
            answered_by: tally.bodies.len(),
            last_resolved: (!tally.last_resolved.is_empty()).then_some(tally.last_resolved.len()),
        }
    }

    fn show(&self) -> String {
        let mut text = format!(
            "{} failed of {} ({} answered; answers came from {} tasks over the run{})",
            self.failed,
            self.ok + self.failed,
            self.ok,
            self.answered_by,
            self.last_resolved.map_or(String::new(), |n| format!(
                "; the last DNS answer had {n} addresses"
            ))
        );
        if !self.reasons.is_empty() {
            let reasons: Vec<String> = self
                .reasons
                .iter()
                .map(|(r, n)| format!("{n}x {r}"))
                .collect();
            let first: Vec<String> = self
                .first
                .iter()
                .map(|(at, to, r)| {
                    let to = to.map_or(String::new(), |to| format!("{to} "));
                    format!("+{at:.2} s {to}{r}")
                })
                .collect();
            text += &format!(
                "\n      reasons: {}\n      first: {}",
                reasons.join("; "),
                first.join("; ")
            );
        }
        text
    }
}

/// The figures of one update.
struct Outcome {
    /// None: no CLI command, the update went through the API.
    cli: Option<Duration>,
    cli_ok: bool,
    converged: Option<Duration>,
    status: String,
    status_span: Option<Duration>,
    window: Window,
    overlay: Requests,
    mesh: Option<Requests>,
}

fn main() -> ExitCode {
    let settings = match Settings::from_args() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("bench-update: {err:#}");
            return ExitCode::from(2);
        }
    };
    println!(
        "bench-update: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        LoadAvg::read().show()
    );
    let archive = match image_archive() {
        Ok(archive) => archive,
        Err(err) => {
            eprintln!("bench-update: cannot make the image archive: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let cases = &CASES[..settings.cases];
    let mut failed = Vec::new();
    let mut results: Vec<(&str, Vec<Option<Outcome>>)> = Vec::new();
    for (name, wanted) in [("rswarm", settings.rswarm), ("Docker", settings.docker)] {
        if !wanted {
            continue;
        }
        println!("\n=== {name}: service update --force, {REPLICAS} replicas ===");
        let started = Instant::now();
        let outcomes = match name {
            "rswarm" => rswarm::phase(&archive, cases),
            _ => docker::phase(&archive, cases),
        };
        match outcomes {
            Ok(outcomes) => {
                if outcomes.iter().any(Option::is_none) {
                    failed.push(name);
                }
                results.push((name, outcomes));
            }
            Err(err) => {
                eprintln!("bench-update: the {name} phase failed: {err:#}");
                failed.push(name);
            }
        }
        println!(
            "({name} phase took {:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    print_summary(cases, &results);
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench-update: failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// The busybox test image as a `docker save` archive tagged [`IMAGE_REF`].
fn image_archive() -> anyhow::Result<PathBuf> {
    let path = rswarm_tests::images::images_dir().join("bench-busybox.tar");
    rswarm_tests::images::busybox().write_docker_archive(&path, IMAGE_REF)?;
    Ok(path)
}

/// Every case on one side: an outcome per case (None when it failed, said why).
fn run_cases(side: &dyn Side, cases: &[Case]) -> Vec<Option<Outcome>> {
    let mut outcomes = Vec::new();
    for case in cases {
        println!("\n--- {}: {} ---", side.name(), case.label);
        let outcome = measure(side, case);
        if let Err(err) = side.remove_web() {
            eprintln!(
                "bench-update: {}: removing the service: {err:#}",
                side.name()
            );
        }
        match outcome {
            Ok(outcome) => outcomes.push(Some(outcome)),
            Err(err) => {
                let err = format!("{err:#}");
                // The harness's errors carry the daemon log's tail already.
                let tail = if err.contains("daemon log") {
                    String::new()
                } else {
                    side.log_tail()
                };
                eprintln!(
                    "bench-update: {}: {}: {err}\n{tail}",
                    side.name(),
                    case.label
                );
                outcomes.push(None);
            }
        }
    }
    outcomes
}

/// One update of a fresh service while the clients run.
fn measure(side: &dyn Side, case: &Case) -> anyhow::Result<Outcome> {
    let created = Instant::now();
    side.create_web(case)?;
    println!(
        "{REPLICAS}/{REPLICAS} running {:.1} s after service create",
        created.elapsed().as_secs_f64()
    );
    let overlay = RequestLoop::start(
        &side.client_netns()?,
        Target::Resolve {
            server: "127.0.0.11:53".parse().context("the DNS address")?,
            name: format!("tasks.{WEB}"),
            port: 80,
        },
        REQUEST_DEADLINE,
    )?;
    let mesh = match side.mesh() {
        Some((netns, target)) => Some(RequestLoop::start(&netns, target, REQUEST_DEADLINE)?),
        None => None,
    };
    for client in std::iter::once(&overlay).chain(mesh.as_ref()) {
        if !client.wait_steady(STEADY_STREAK, STEADY_WAIT) {
            bail!(
                "{}: not {STEADY_STREAK} answers in a row within {STEADY_WAIT:?} before the \
                 update: {}",
                client.target().show(),
                Requests::between((0, 0), &client.tally(), created, Instant::now()).show()
            );
        }
    }
    wait_for_quiet(QUIET_WAIT);
    let before = side.force_update()?;
    let counts_before = (overlay.counts(), mesh.as_ref().map(RequestLoop::counts));
    let command = side.update_command();
    println!(
        "service update --force at {} (UTC); clients: {} and {}",
        utc_now(),
        overlay.target().show(),
        mesh.as_ref()
            .map_or("no mesh".into(), |m| m.target().show())
    );
    let window = WindowStart::now(|| side.cpu());
    let started = Instant::now();
    let cli = match command {
        Some(Invocation { argv, env }) => Some(std::thread::spawn(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let out = command::run(&argv, &env, UPDATE_TIMEOUT);
            (out, Instant::now())
        })),
        None => {
            side.update_by_api()?;
            None
        }
    };
    let mut converged = None;
    let mut last = String::from("not polled yet");
    while converged.is_none() && started.elapsed() < UPDATE_TIMEOUT {
        match side.progress(before) {
            Ok((new, old)) => {
                last = format!("{new} new tasks running, {old} old ones running");
                if new >= REPLICAS && old == 0 {
                    converged = Some(started.elapsed());
                }
            }
            Err(err) => last = format!("{err:#}"),
        }
        std::thread::sleep(POLL);
    }
    let cli: Option<(CmdOutput, Instant)> = match cli {
        Some(thread) => Some(
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("the update CLI's thread panicked"))?,
        ),
        None => None,
    };
    let cli_ok = cli.as_ref().is_some_and(|(out, _)| out.success());
    let cli_time = cli.as_ref().map(|(_, done)| *done - started);
    let window = window.end(|| side.cpu());
    std::thread::sleep(TAIL);
    let end = Instant::now();
    let overlay = Requests::between(counts_before.0, &overlay.stop(), started, end);
    let mesh = match (mesh, counts_before.1) {
        (Some(m), Some(before)) => Some(Requests::between(before, &m.stop(), started, end)),
        _ => None,
    };
    // The updater may still be in its last batch's monitor period.
    let waited = Instant::now();
    let (status, status_span) = loop {
        let (status, span) = side.update_status()?;
        if span.is_some() || waited.elapsed() > STATUS_WAIT {
            break (status, span);
        }
        std::thread::sleep(POLL);
    };
    println!(
        "CLI: {}; store converged after {}; UpdateStatus {status} \
         (completed - started: {})\n  {}\n  requests, overlay ({REQUEST_DEADLINE:?} deadline): {}",
        match (&cli, cli_time) {
            (Some((out, _)), Some(time)) if out.success() =>
                format!("returned after {:.2} s (exit 0)", time.as_secs_f64()),
            (Some((out, _)), _) => format!("FAILED: {}", out.stderr.trim()),
            _ => "none (no `service update` command: forced through the API)".to_string(),
        },
        converged.map_or(format!("- (not within {UPDATE_TIMEOUT:?}: {last})"), |d| {
            format!("{:.2} s", d.as_secs_f64())
        }),
        status_span.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        window.show(&format!("{} daemon(s)", side.name())),
        overlay.show()
    );
    if let Some(mesh) = &mesh {
        println!("  requests, routing mesh: {}", mesh.show());
    }
    let failed_at: BTreeSet<IpAddr> = std::iter::once(&overlay)
        .chain(mesh.as_ref())
        .flat_map(|r| r.first.iter().filter_map(|(_, to, _)| to.map(|to| to.ip())))
        .collect();
    for ip in failed_at {
        if let Some(whose) = side.whose(ip, before) {
            println!("  {ip} is {whose}");
        }
    }
    if let Some((out, _)) = cli.as_ref().filter(|(out, _)| !out.success()) {
        println!("  the CLI's output:\n{out}");
    }
    Ok(Outcome {
        cli: cli_time,
        cli_ok,
        converged,
        status,
        status_span,
        window,
        overlay,
        mesh,
    })
}

fn print_summary(cases: &[Case], results: &[(&str, Vec<Option<Outcome>>)]) {
    println!(
        "\n=== summary: service update --force, {REPLICAS} replicas of {IMAGE_REF} (httpd as PID 1), \
         one node ==="
    );
    let get = |who: &str, i: usize| -> Option<&Outcome> {
        results
            .iter()
            .find(|(name, _)| *name == who)
            .and_then(|(_, outcomes)| outcomes.get(i))
            .and_then(Option::as_ref)
    };
    let secs =
        |d: Option<Duration>| d.map_or("n/a".into(), |d| format!("{:.2} s", d.as_secs_f64()));
    let reqs = |r: Option<&Requests>| {
        r.map_or("n/a".into(), |r| {
            format!("{} failed / {}", r.failed, r.ok + r.failed)
        })
    };
    for (i, case) in cases.iter().enumerate() {
        let (ours, theirs) = (get("rswarm", i), get("Docker", i));
        println!("{}:", case.label);
        let row = |what: &str, a: String, b: String| {
            println!("  {what:<44} rswarm {a:>20}   Docker {b:>20}");
        };
        row(
            "CLI `service update --force` returned",
            secs(ours.filter(|o| o.cli_ok).and_then(|o| o.cli)),
            secs(theirs.filter(|o| o.cli_ok).and_then(|o| o.cli)),
        );
        row(
            "store: all new tasks running, no old one",
            secs(ours.and_then(|o| o.converged)),
            secs(theirs.and_then(|o| o.converged)),
        );
        row(
            "UpdateStatus CompletedAt - StartedAt",
            secs(ours.and_then(|o| o.status_span)),
            secs(theirs.and_then(|o| o.status_span)),
        );
        row(
            "failed requests, overlay (tasks.web DNS)",
            reqs(ours.map(|o| &o.overlay)),
            reqs(theirs.map(|o| &o.overlay)),
        );
        row(
            "failed requests, routing mesh :8080",
            reqs(ours.and_then(|o| o.mesh.as_ref())),
            if theirs.is_some() {
                "n/a (no IPVS)".into()
            } else {
                "n/a".into()
            },
        );
        for (who, outcome) in [("rswarm", ours), ("Docker", theirs)] {
            if let Some(o) = outcome {
                println!(
                    "  {who}: UpdateStatus {}; {}",
                    o.status,
                    o.window.show_short()
                );
            }
        }
    }
    for (who, outcomes) in results {
        if outcomes.iter().any(Option::is_none) {
            println!("{who}: some cases FAILED (see above)");
        }
    }
}

/// The wall-clock time as the daemons log it (UTC, `HH:MM:SS.mmm`).
fn utc_now() -> String {
    chrono::Utc::now().format("%H:%M:%S%.3fZ").to_string()
}

/// Waits until `ready` gives Some (polled every 200 ms), at most `limit`.
fn wait_until<T>(
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        match ready() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last = format!(" (last: {err:#})"),
        }
        if started.elapsed() > limit {
            bail!("{what}: not within {limit:?}{last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `/proc/<pid>/ns/net`.
fn netns_of(pid: u32) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
    if !Path::new(&path).exists() {
        bail!("no process {pid}");
    }
    Ok(path)
}
