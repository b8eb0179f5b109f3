//! `bench-services`: the services figures of rswarm, side by side with Docker Swarm
//! (Debian's `docker.io`, Docker Engine 20.10) on the same machine, same image, one
//! node.
//!
//! 1. **rswarm: `service create --replicas 100` to 100/100 Running.** A one-node
//!    swarm made by the `rswarm-tests` harness (`Cluster` with one host,
//!    `init_swarm(1, 0)`). The busybox test image ([`rswarm_tests::images::busybox`])
//!    is written as a `docker save` archive tagged `bench/busybox:1` and given to the
//!    daemon with `rswarm image load -i` beforehand, so no pull is measured. Each
//!    round runs `rswarm service create --detach --replicas 100 --name bench
//!    bench/busybox:1 sleep 3600` and polls the Services API's `ListTasks` (every
//!    50 ms, over the daemon's unix socket) until 100 tasks that are meant to run are
//!    Running; the clock starts when the CLI is invoked. Then `rswarm service rm` and
//!    the time until `runc list` of the daemon's runc root is empty. Median of the
//!    rounds. A timeline shows when the first, the 50th and the 100th task reached
//!    each state (assigned, accepted, preparing, starting, running).
//! 2. **rswarm: memory per running task.** With 100 tasks running: `VmRSS` (and
//!    `Pss`, from `/proc/<pid>/smaps_rollup`) of the daemon plus every other process
//!    rswarm runs outside the containers: the daemon's descendants in its own PID
//!    namespace, and any process whose command line names its data dir (there should
//!    be none). The containers' own processes (descendants in another PID namespace:
//!    the `sleep`s) are excluded and shown apart. Reported as total/100 and as
//!    (total − idle total before the first service)/100.
//! 3. **Docker Swarm, the same measurement.** A `dockerd` of our own
//!    ([`rswarm_tests::dockerd`]: its own data root, in a network namespace with only
//!    `lo`, removed with everything it created afterwards, on every path).
//!    `docker swarm init --advertise-addr 127.0.0.1`, `docker load -i` of the same
//!    archive, then rounds of `docker service create --detach --no-resolve-image
//!    --replicas 100 --name b bench/busybox:1 sleep 3600`, polled through the Engine
//!    API (`GET /tasks`) until 100 tasks are running, and `docker service rm b` until
//!    no container of it is left. Memory: `dockerd` + `containerd` + every
//!    `containerd-shim` (and their descendants in the machine's PID namespace).
//! 4. **Scheduler throughput.** `cargo run --release -p rswarm-manager --example
//!    bench_scheduler` (1,000 simulated nodes, 100,000 tasks), its output included.
//!
//! Every figure is printed with the load average before and after, the machine's CPU
//! use during the window (of 100% per core) and the CPU time the measured daemons
//! used, because other builds may share this machine's two cores.
//!
//! ```text
//! cargo build --release -p rswarm
//! cargo run --release -p rswarm-tests --bin bench-services               # full
//! cargo run --release -p rswarm-tests --bin bench-services -- --quick    # 1 round each
//! cargo run --release -p rswarm-tests --bin bench-services -- --skip-docker
//! ```
//! Other flags: `--skip-rswarm`, `--skip-scheduler`, `--rounds N`. Run it as root.
//! `RSWARM_TEST_KEEP_DIRS=1` keeps the rswarm cluster's directory (daemon log).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::ListTasksRequest;
use rswarm_proto::types::TaskState;
use rswarm_tests::cpu_window::{wait_for_quiet, LoadAvg, Window, WindowStart};
use rswarm_tests::dockerd::{self, percent_encode, DockerEngine};
use rswarm_tests::procfs::{cpu_ticks_of, MemSample, Procs};
use rswarm_tests::{command, control};
use rswarm_tests::{images, Cluster, Host};
use tonic::transport::Channel;

/// Tasks per service.
const REPLICAS: usize = 100;
/// The image reference both orchestrators run (loaded from the same archive).
const IMAGE_REF: &str = "bench/busybox:1";
/// The rswarm service's name.
const RSWARM_SERVICE: &str = "bench";
/// The Docker service's name.
const DOCKER_SERVICE: &str = "b";
/// How long rswarm may take to get 100/100 Running.
const RSWARM_CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long Docker may take to get 100/100 running.
const DOCKER_CONVERGE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a `service rm` may take to leave no container.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(240);
/// How long to wait, after a removed service's containers are gone, for its tasks
/// to leave the store.
const TASKS_GONE_WAIT: Duration = Duration::from_secs(5);
/// How often rswarm's `ListTasks` is polled while converging.
const RSWARM_POLL: Duration = Duration::from_millis(50);
/// How often Docker's `GET /tasks` is polled while converging.
const DOCKER_POLL: Duration = Duration::from_millis(100);
/// How often the containers are counted after a `service rm`.
const REMOVE_POLL: Duration = Duration::from_millis(100);
/// One CLI call (create, rm, load, swarm init…).
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// One API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The scheduler benchmark, compilation included.
const SCHEDULER_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// What to run.
struct Settings {
    rounds: usize,
    docker_rounds: usize,
    /// Pause before a memory sample (after convergence, and when idle).
    settle: Duration,
    /// The longest a round waits for a quiet machine.
    quiet_wait: Duration,
    rswarm: bool,
    docker: bool,
    scheduler: bool,
}

const USAGE: &str = "usage: bench-services [--quick] [--rounds N] [--skip-rswarm] [--skip-docker] \
                     [--skip-scheduler]  (as root; see the source docs)";

impl Settings {
    fn from_args() -> anyhow::Result<Settings> {
        let mut quick = false;
        let mut rounds = None;
        let (mut rswarm, mut docker, mut scheduler) = (true, true, true);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--skip-rswarm" => rswarm = false,
                "--skip-docker" => docker = false,
                "--skip-scheduler" => scheduler = false,
                "--rounds" => {
                    let n: usize = args
                        .next()
                        .context("--rounds needs a number")?
                        .parse()
                        .context("--rounds needs a number")?;
                    if n == 0 {
                        bail!("--rounds must be at least 1");
                    }
                    rounds = Some(n);
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} ({USAGE})"),
            }
        }
        let default_rounds = if quick { 1 } else { 3 };
        Ok(Settings {
            rounds: rounds.unwrap_or(default_rounds),
            docker_rounds: rounds.unwrap_or(default_rounds),
            settle: Duration::from_secs(if quick { 2 } else { 5 }),
            quiet_wait: Duration::from_secs(if quick { 10 } else { 60 }),
            rswarm,
            docker,
            scheduler,
        })
    }
}

fn main() -> ExitCode {
    let settings = match Settings::from_args() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("bench-services: {err:#}");
            return ExitCode::from(2);
        }
    };
    let binary = if settings.rswarm {
        match control::bench_binary() {
            Ok(binary) => Some(binary),
            Err(err) => {
                eprintln!("bench-services: {err:#}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    if let Some(binary) = &binary {
        println!("bench-services: rswarm binary {}", binary.display());
    }
    println!(
        "bench-services: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        LoadAvg::read().show()
    );

    let mut failed = Vec::new();
    let archive = if settings.rswarm || settings.docker {
        match image_archive() {
            Ok(archive) => Some(archive),
            Err(err) => {
                eprintln!("bench-services: cannot make the image archive: {err:#}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    let mut rswarm = None;
    if let (Some(binary), Some(archive)) = (&binary, &archive) {
        println!("\n=== rswarm: service create --replicas {REPLICAS}, memory per task ===");
        let started = Instant::now();
        match rswarm_phase(binary, archive, &settings) {
            Ok(figures) => rswarm = Some(figures),
            Err(err) => {
                eprintln!("bench-services: the rswarm phase failed: {err:#}");
                failed.push("rswarm");
            }
        }
        println!(
            "(rswarm phase took {:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }

    let mut docker = None;
    if let (true, Some(archive)) = (settings.docker, &archive) {
        println!("\n=== Docker Swarm: service create --replicas {REPLICAS}, memory per task ===");
        let started = Instant::now();
        match docker_phase(archive, &settings) {
            Ok(figures) => docker = Some(figures),
            Err(err) => {
                eprintln!("bench-services: the Docker phase failed: {err:#}");
                failed.push("docker");
            }
        }
        println!(
            "(Docker phase took {:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }

    let mut scheduler = None;
    if settings.scheduler {
        println!("\n=== scheduler throughput (manager/examples/bench_scheduler.rs) ===");
        let started = Instant::now();
        match scheduler_phase() {
            Ok(lines) => scheduler = Some(lines),
            Err(err) => {
                eprintln!("bench-services: the scheduler phase failed: {err:#}");
                failed.push("scheduler");
            }
        }
        println!(
            "(scheduler phase took {:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }

    print_summary(
        &settings,
        rswarm.as_ref(),
        docker.as_ref(),
        scheduler.as_deref(),
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench-services: failed phases: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// The busybox test image as a `docker save` archive tagged [`IMAGE_REF`], in this
/// process's images directory (removed at exit).
fn image_archive() -> anyhow::Result<PathBuf> {
    let image = images::busybox();
    let path = images::images_dir().join("bench-busybox.tar");
    image.write_docker_archive(&path, IMAGE_REF)?;
    Ok(path)
}

// ----- what a phase measures -----

/// One create/remove round.
struct Round {
    /// CLI invoked → 100/100 running.
    converge: Duration,
    /// How long the create CLI itself took.
    cli: Duration,
    timeline: Timeline,
    create_window: Window,
    /// Memory with the 100 tasks running.
    memory: MemSample,
    /// `service rm` invoked → no container left.
    remove: Duration,
    remove_window: Window,
}

/// The figures of one orchestrator.
struct Figures {
    rounds: Vec<Round>,
    /// Before the first service.
    idle: MemSample,
    /// After the last `service rm`.
    idle_after: Option<MemSample>,
}

impl Figures {
    fn converge_median(&self) -> f64 {
        median(&self.secs(|r| r.converge))
    }

    fn remove_median(&self) -> f64 {
        median(&self.secs(|r| r.remove))
    }

    fn secs(&self, f: impl Fn(&Round) -> Duration) -> Vec<f64> {
        self.rounds.iter().map(|r| f(r).as_secs_f64()).collect()
    }

    /// The memory sample of the round with the median convergence time's
    /// neighbourhood is no better than the last one: the last round's, which has seen
    /// the most allocator churn.
    fn running_memory(&self) -> Option<&MemSample> {
        self.rounds.last().map(|r| &r.memory)
    }

    fn print_rounds(&self, who: &str) {
        let secs = self.secs(|r| r.converge);
        println!(
            "{who}: create --replicas {REPLICAS} -> {REPLICAS}/{REPLICAS} running: median {:.2} s \
             (min {:.2}, max {:.2}; rounds: {})",
            median(&secs),
            min(&secs),
            max(&secs),
            secs.iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let secs = self.secs(|r| r.remove);
        println!(
            "{who}: service rm -> 0 containers: median {:.2} s (min {:.2}, max {:.2})",
            median(&secs),
            min(&secs),
            max(&secs)
        );
    }
}

// ----- 1 and 2: rswarm -----

fn rswarm_phase(binary: &Path, archive: &Path, settings: &Settings) -> anyhow::Result<Figures> {
    let cluster = Cluster::builder(1).binary(binary).start()?;
    cluster.init_swarm(1, 0)?;
    let host = cluster.host(1);
    let archive_arg = archive.display().to_string();
    let started = Instant::now();
    let loaded = host.try_ok(&["image", "load", "-i", &archive_arg])?;
    println!(
        "image load: {} ({:.2} s)",
        loaded.trim(),
        started.elapsed().as_secs_f64()
    );
    let listed = host.try_ok(&["image", "ls"])?;
    if !listed.contains("bench/busybox") {
        bail!("`rswarm image ls` does not show bench/busybox after the load:\n{listed}");
    }
    let daemon = host.pid().context("the daemon is not running")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let mut client = runtime.block_on(control::services_client(host.socket().to_path_buf()))?;

    std::thread::sleep(settings.settle);
    let idle = rswarm_memory(host)?;
    println!("idle, before any service: {}", idle.show());

    let mut rounds = Vec::new();
    for round in 1..=settings.rounds {
        wait_for_quiet(settings.quiet_wait);
        println!("round {round}: service create at {} (UTC)", utc_now());
        let cpu_of_daemon = || cpu_ticks_of(&[daemon]);
        let window = WindowStart::now(cpu_of_daemon);
        let started = Instant::now();
        let out = host.rswarm_timeout(
            &[
                "service",
                "create",
                "--detach",
                "--replicas",
                &REPLICAS.to_string(),
                "--name",
                RSWARM_SERVICE,
                IMAGE_REF,
                "sleep",
                "3600",
            ],
            CLI_TIMEOUT,
        );
        let cli = started.elapsed();
        if !out.success() {
            bail!(
                "round {round}: service create failed\n{out}\n{}",
                log_tail(host)
            );
        }
        let service_id = out
            .stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .context("service create printed no ID")?
            .to_string();
        let runc_root = host.runc_root();
        let bundles = host.data_dir().join("containers");
        let mut timeline = Timeline::default();
        let mut failures = Failures::default();
        let mut last;
        let converge = loop {
            let elapsed = started.elapsed();
            let request = ListTasksRequest {
                service_refs: vec![service_id.clone()],
                ..Default::default()
            };
            timeline.observe_containers(elapsed, count_dirs(&bundles), count_dirs(&runc_root));
            let answer = runtime.block_on(async {
                tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    rswarm_proto::paging::all_tasks(&client, request),
                )
                .await
            });
            timeline.poll_took(elapsed, started.elapsed() - elapsed);
            match answer {
                Ok(Ok(tasks)) => {
                    let mut ranks = Vec::new();
                    for task in &tasks {
                        let status = task.status.clone().unwrap_or_default();
                        if task.desired_state == TaskState::Running as i32 {
                            ranks.push(status.state as u32);
                        }
                        if status.state == TaskState::Failed as i32
                            || status.state == TaskState::Rejected as i32
                        {
                            failures.add(&task.id, &format!("{} {}", status.message, status.err));
                        }
                    }
                    timeline.observe(elapsed, &ranks);
                    last = format!(
                        "{} tasks, {} meant to run, {} running",
                        tasks.len(),
                        ranks.len(),
                        count_at_least(&ranks, RUNNING)
                    );
                    if count_at_least(&ranks, RUNNING) >= REPLICAS {
                        break elapsed;
                    }
                }
                Ok(Err(status)) => last = format!("ListTasks: {status}"),
                Err(_) => last = format!("ListTasks: no answer within {REQUEST_TIMEOUT:?}"),
            }
            if started.elapsed() > RSWARM_CONVERGE_TIMEOUT {
                bail!(
                    "round {round}: not {REPLICAS}/{REPLICAS} running after \
                     {RSWARM_CONVERGE_TIMEOUT:?}; last: {last}; {}\n{}",
                    failures.show(),
                    log_tail(host)
                );
            }
            std::thread::sleep(RSWARM_POLL);
        };
        let create_window = window.end(cpu_of_daemon);
        let running = rswarm_tests::containers::try_list(&host.runc_root())
            .map(|list| list.iter().filter(|c| c.status == "running").count())
            .unwrap_or(0);
        println!(
            "round {round}: {REPLICAS}/{REPLICAS} running after {:.3} s (the create CLI took \
             {:.3} s; `runc list` shows {running} running); {}\n  timeline: {}\n  {}{}",
            converge.as_secs_f64(),
            cli.as_secs_f64(),
            create_window.show("daemon (+ reaped children)"),
            timeline.show(),
            failures.show(),
            if running == REPLICAS {
                String::new()
            } else {
                format!("\n  WARNING: runc list shows {running} running containers, not {REPLICAS}")
            }
        );

        std::thread::sleep(settings.settle);
        let memory = rswarm_memory(host)?;
        println!("  with {REPLICAS} tasks running: {}", memory.show());

        println!("  service rm at {} (UTC)", utc_now());
        let window = WindowStart::now(cpu_of_daemon);
        let started = Instant::now();
        let out = host.rswarm_timeout(&["service", "rm", &service_id], CLI_TIMEOUT);
        if !out.success() {
            bail!(
                "round {round}: service rm failed\n{out}\n{}",
                log_tail(host)
            );
        }
        let mut left;
        let remove = loop {
            // A container's runc state directory goes with `runc delete`; counting
            // them does not race with the deletions as `runc list` does.
            left = count_dirs(&runc_root);
            if left == 0 {
                break started.elapsed();
            }
            if started.elapsed() > REMOVE_TIMEOUT {
                bail!(
                    "round {round}: {left} containers still there {REMOVE_TIMEOUT:?} after \
                     service rm\n{}",
                    log_tail(host)
                );
            }
            std::thread::sleep(REMOVE_POLL);
        };
        let remove_window = window.end(cpu_of_daemon);
        println!(
            "  service rm -> 0 containers after {:.3} s; {}",
            remove.as_secs_f64(),
            remove_window.show("daemon (+ reaped children)")
        );
        // Swarm deletes a removed service's tasks from the store: does rswarm?
        let left_in_store = |client: &mut ServicesClient<Channel>| -> Option<usize> {
            runtime
                .block_on(async {
                    tokio::time::timeout(
                        REQUEST_TIMEOUT,
                        client.list_tasks(ListTasksRequest::default()),
                    )
                    .await
                })
                .ok()?
                .ok()
                .map(|answer| answer.into_inner().tasks.len())
        };
        let waited = Instant::now();
        let mut tasks_left = left_in_store(&mut client);
        while tasks_left != Some(0) && waited.elapsed() < TASKS_GONE_WAIT {
            std::thread::sleep(Duration::from_millis(200));
            tasks_left = left_in_store(&mut client);
        }
        println!(
            "  tasks still in the store (ListTasks, all services) {:.1} s after the last \
             container went: {}",
            waited.elapsed().as_secs_f64(),
            tasks_left.map_or("? (ListTasks failed)".into(), |n| n.to_string())
        );
        rounds.push(Round {
            converge,
            cli,
            timeline,
            create_window,
            memory,
            remove,
            remove_window,
        });
    }
    std::thread::sleep(settings.settle);
    let idle_after = rswarm_memory(host)?;
    println!(
        "idle again, after the last service rm: {}",
        idle_after.show()
    );
    let figures = Figures {
        rounds,
        idle,
        idle_after: Some(idle_after),
    };
    figures.print_rounds("rswarm");
    Ok(figures)
}

fn log_tail(host: &Host) -> String {
    format!(
        "--- {} daemon log (last 40 lines) ---\n{}",
        host.name(),
        host.daemon_log_tail(40)
    )
}

/// The daemon's memory and that of every process rswarm runs beside it (there should
/// be none), the containers' processes apart.
fn rswarm_memory(host: &Host) -> anyhow::Result<MemSample> {
    let daemon = host.pid().context("the daemon is not running")?;
    let procs = Procs::read();
    let me = procs
        .get(daemon)
        .with_context(|| format!("no /proc/{daemon}"))?;
    let mut sample = MemSample::default();
    sample.add("rswarm daemon", me);
    let descendants = procs.descendants(daemon);
    for pid in &descendants {
        let Some(p) = procs.get(*pid) else { continue };
        if p.pidns == me.pidns {
            sample.add(&format!("rswarm helper `{}`", p.comm), p);
        } else {
            sample.add_container(p);
        }
    }
    // Anything else that names the data dir (a runc or shim that escaped the tree).
    let data_dir = host.data_dir().display().to_string();
    for p in procs.all() {
        if p.pid != daemon
            && !descendants.contains(&p.pid)
            && p.pid != std::process::id()
            && p.cmdline.contains(&data_dir)
        {
            sample.add(&format!("outside the daemon's tree `{}`", p.comm), p);
        }
    }
    Ok(sample)
}

// ----- 3. Docker Swarm -----

fn docker_phase(archive: &Path, settings: &Settings) -> anyhow::Result<Figures> {
    dockerd::ensure_installed()?;
    let engine = DockerEngine::start()?;
    println!(
        "dockerd running (pid {}), data under {}, in network namespace {} (lo only)",
        engine.pid(),
        engine.dir().display(),
        engine.netns()
    );
    engine.cli_ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"])?;
    let started = Instant::now();
    let loaded = engine.cli_ok(&["load", "-i", &archive.display().to_string()])?;
    println!(
        "docker load: {} ({:.2} s)",
        loaded.trim(),
        started.elapsed().as_secs_f64()
    );
    engine.cli_ok(&["image", "inspect", "--format", "{{.Id}}", IMAGE_REF])?;

    std::thread::sleep(settings.settle);
    let idle = engine.memory()?;
    println!(
        "idle, swarm initialised, before any service: {}",
        idle.show()
    );

    let mut rounds = Vec::new();
    for round in 1..=settings.docker_rounds {
        wait_for_quiet(settings.quiet_wait);
        println!("round {round}: service create at {} (UTC)", utc_now());
        let cpu_of_docker = || cpu_ticks_of(&engine.processes());
        let window = WindowStart::now(cpu_of_docker);
        let started = Instant::now();
        engine.cli_ok(&[
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--replicas",
            &REPLICAS.to_string(),
            "--name",
            DOCKER_SERVICE,
            IMAGE_REF,
            "sleep",
            "3600",
        ])?;
        let cli = started.elapsed();
        let mut timeline = Timeline::default();
        let mut failures = Failures::default();
        let mut last;
        let tasks_path = format!(
            "/tasks?filters={}",
            percent_encode(&format!(r#"{{"service":["{DOCKER_SERVICE}"]}}"#))
        );
        let converge = loop {
            let elapsed = started.elapsed();
            let answer = engine.api_get(&tasks_path);
            timeline.poll_took(elapsed, started.elapsed() - elapsed);
            match answer {
                Ok(tasks) => {
                    let tasks = tasks.as_array().cloned().unwrap_or_default();
                    let mut ranks = Vec::new();
                    for task in &tasks {
                        let state = task["Status"]["State"].as_str().unwrap_or("");
                        let rank = dockerd::task_state_rank(state);
                        if task["DesiredState"].as_str() == Some("running") {
                            ranks.push(rank);
                        }
                        if matches!(state, "failed" | "rejected") {
                            failures.add(
                                task["ID"].as_str().unwrap_or("?"),
                                &format!(
                                    "{} {}",
                                    task["Status"]["Message"].as_str().unwrap_or(""),
                                    task["Status"]["Err"].as_str().unwrap_or("")
                                ),
                            );
                        }
                    }
                    timeline.observe(elapsed, &ranks);
                    last = format!(
                        "{} tasks, {} meant to run, {} running",
                        tasks.len(),
                        ranks.len(),
                        count_at_least(&ranks, RUNNING)
                    );
                    if count_at_least(&ranks, RUNNING) >= REPLICAS {
                        break elapsed;
                    }
                }
                Err(err) => last = format!("{err:#}"),
            }
            if started.elapsed() > DOCKER_CONVERGE_TIMEOUT {
                bail!(
                    "round {round}: not {REPLICAS}/{REPLICAS} running after \
                     {DOCKER_CONVERGE_TIMEOUT:?}; last: {last}; {}\n{}",
                    failures.show(),
                    engine.log_tail(30)
                );
            }
            std::thread::sleep(DOCKER_POLL);
        };
        let create_window = window.end(cpu_of_docker);
        println!(
            "round {round}: {REPLICAS}/{REPLICAS} running after {:.3} s (the create CLI took \
             {:.3} s); {}\n  timeline: {}\n  {}",
            converge.as_secs_f64(),
            cli.as_secs_f64(),
            create_window.show("dockerd + containerd + shims (+ reaped children)"),
            timeline.show(),
            failures.show()
        );

        std::thread::sleep(settings.settle);
        let memory = engine.memory()?;
        println!("  with {REPLICAS} tasks running: {}", memory.show());

        println!("  service rm at {} (UTC)", utc_now());
        let window = WindowStart::now(cpu_of_docker);
        let started = Instant::now();
        engine.cli_ok(&["service", "rm", DOCKER_SERVICE])?;
        let containers_path = format!(
            "/containers/json?all=1&filters={}",
            percent_encode(&format!(
                r#"{{"label":["com.docker.swarm.service.name={DOCKER_SERVICE}"]}}"#
            ))
        );
        let mut left;
        let remove = loop {
            match engine.api_get(&containers_path) {
                Ok(list) if list.as_array().is_some_and(|l| l.is_empty()) => {
                    break started.elapsed()
                }
                Ok(list) => left = list.as_array().map_or(0, Vec::len).to_string(),
                Err(err) => left = format!("{err:#}"),
            }
            if started.elapsed() > REMOVE_TIMEOUT {
                bail!(
                    "round {round}: containers still there {REMOVE_TIMEOUT:?} after service rm \
                     ({left})\n{}",
                    engine.log_tail(30)
                );
            }
            std::thread::sleep(REMOVE_POLL);
        };
        let remove_window = window.end(cpu_of_docker);
        println!(
            "  service rm -> 0 containers after {:.3} s; {}",
            remove.as_secs_f64(),
            remove_window.show("dockerd + containerd (the shims that exited are not counted)")
        );
        rounds.push(Round {
            converge,
            cli,
            timeline,
            create_window,
            memory,
            remove,
            remove_window,
        });
    }
    std::thread::sleep(settings.settle);
    let idle_after = engine.memory()?;
    println!(
        "idle again, after the last service rm: {}",
        idle_after.show()
    );
    let figures = Figures {
        rounds,
        idle,
        idle_after: Some(idle_after),
    };
    figures.print_rounds("Docker Swarm");
    let stopped = Instant::now();
    let problems = engine.shutdown();
    println!(
        "Docker stopped and cleaned up in {:.1} s{}",
        stopped.elapsed().as_secs_f64(),
        if problems.is_empty() {
            String::new()
        } else {
            format!("; PROBLEMS: {}", problems.join("; "))
        }
    );
    Ok(figures)
}

// ----- 4. scheduler throughput -----

fn scheduler_phase() -> anyhow::Result<Vec<String>> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the tests crate has no parent directory")?;
    let example = workspace.join("manager/examples/bench_scheduler.rs");
    if !example.is_file() {
        bail!(
            "{} is missing: no scheduler benchmark to run",
            example.display()
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = workspace.join("Cargo.toml").display().to_string();
    let before = LoadAvg::read();
    let started = Instant::now();
    let out = command::run(
        &argv(&[
            &cargo,
            "run",
            "--quiet",
            "--release",
            "--manifest-path",
            &manifest,
            "-p",
            "rswarm-manager",
            "--example",
            "bench_scheduler",
        ]),
        &[],
        SCHEDULER_TIMEOUT,
    );
    let after = LoadAvg::read();
    for line in out.stdout.lines() {
        println!("  | {line}");
    }
    if !out.success() {
        bail!(
            "the scheduler benchmark failed or did not finish within {SCHEDULER_TIMEOUT:?}\n{out}"
        );
    }
    println!(
        "(cargo run, compilation included, took {:.0} s; load {} before, {} after)",
        started.elapsed().as_secs_f64(),
        before.show(),
        after.show()
    );
    let mut lines: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    lines.push(format!("(load {} after)", after.show()));
    Ok(lines)
}

// ----- the summary -----

fn print_summary(
    settings: &Settings,
    rswarm: Option<&Figures>,
    docker: Option<&Figures>,
    scheduler: Option<&[String]>,
) {
    println!("\n=== summary: rswarm vs Docker Swarm (one node, {REPLICAS} replicas of {IMAGE_REF} `sleep 3600`) ===");
    let show = |value: Option<f64>, unit: &str| match value {
        Some(v) => format!("{v:.2} {unit}"),
        None => "n/a".to_string(),
    };
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(o), Some(t)) if o > 0.0 => format!("Docker/rswarm = {:.1}x", t / o),
        _ => "-".to_string(),
    };
    let row = |what: &str, ours: Option<f64>, theirs: Option<f64>, unit: &str, target: &str| {
        println!(
            "{what:<48} rswarm {:>12}   Docker {:>12}   {:<22} {target}",
            show(ours, unit),
            show(theirs, unit),
            ratio(ours, theirs)
        );
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let per_task = |f: Option<&Figures>, pss: bool, minus_idle: bool| -> Option<f64> {
        let f = f?;
        let running = f.running_memory()?;
        let total = |m: &MemSample| if pss { m.total_pss() } else { m.total_rss() };
        let kib = if minus_idle {
            total(running).saturating_sub(total(&f.idle))
        } else {
            total(running)
        };
        Some(mib(kib) / REPLICAS as f64)
    };
    row(
        &format!("create -> {REPLICAS}/{REPLICAS} running (median)"),
        rswarm.map(Figures::converge_median),
        docker.map(Figures::converge_median),
        "s",
        "(target < 3 s)",
    );
    row(
        "service rm -> 0 containers (median)",
        rswarm.map(Figures::remove_median),
        docker.map(Figures::remove_median),
        "s",
        "(10 s stop grace: `sleep` as PID 1 ignores SIGTERM)",
    );
    row(
        "memory per task: total RSS / 100",
        per_task(rswarm, false, false),
        per_task(docker, false, false),
        "MiB",
        "(target < 1 MB)",
    );
    row(
        "memory per task: (RSS with 100 - idle) / 100",
        per_task(rswarm, false, true),
        per_task(docker, false, true),
        "MiB",
        "",
    );
    row(
        "memory per task: (PSS with 100 - idle) / 100",
        per_task(rswarm, true, true),
        per_task(docker, true, true),
        "MiB",
        "(shared pages counted once)",
    );
    let idle = |f: Option<&Figures>| f.map(|f| mib(f.idle.total_rss()));
    row(
        "idle RSS before the service (daemon(s))",
        idle(rswarm),
        idle(docker),
        "MiB",
        "",
    );
    let with = |f: Option<&Figures>| {
        f.and_then(|f| f.running_memory())
            .map(|m| mib(m.total_rss()))
    };
    row(
        "RSS with 100 tasks running (daemon(s) + helpers)",
        with(rswarm),
        with(docker),
        "MiB",
        "",
    );
    for (who, figures) in [("rswarm", rswarm), ("Docker", docker)] {
        let Some(f) = figures else { continue };
        println!("{who}, each round:");
        for (i, r) in f.rounds.iter().enumerate() {
            println!(
                "  round {}: {:.2} s to {REPLICAS}/{REPLICAS} running (CLI {:.2} s) [{}]; rm {:.2} s [{}]; \
                 RSS with {REPLICAS}: {:.1} MiB",
                i + 1,
                r.converge.as_secs_f64(),
                r.cli.as_secs_f64(),
                r.create_window.show_short(),
                r.remove.as_secs_f64(),
                r.remove_window.show_short(),
                mib(r.memory.total_rss())
            );
            println!("           timeline: {}", r.timeline.show());
        }
        if let Some(after) = &f.idle_after {
            println!(
                "  idle RSS: {:.1} MiB before the first service, {:.1} MiB after the last rm",
                mib(f.idle.total_rss()),
                mib(after.total_rss())
            );
        }
    }
    match scheduler {
        Some(lines) => {
            println!("scheduler throughput (bench_scheduler, simulated cluster):");
            for line in lines {
                println!("  {line}");
            }
        }
        None if settings.scheduler => println!("scheduler throughput: FAILED (see above)"),
        None => println!("scheduler throughput: skipped"),
    }
    if rswarm.is_none() && settings.rswarm {
        println!("rswarm: FAILED (see above)");
    }
    if docker.is_none() && settings.docker {
        println!("Docker: FAILED (see above)");
    }
}

// ----- task state timelines -----

const RUNNING: u32 = TaskState::Running as u32;

/// The states a timeline follows, in order.
const STAGES: [(TaskState, &str); 5] = [
    (TaskState::Assigned, "assigned"),
    (TaskState::Accepted, "accepted"),
    (TaskState::Preparing, "preparing"),
    (TaskState::Starting, "starting"),
    (TaskState::Running, "running"),
];

/// Tasks (meant to run) that are at `stage` or later but not past Running.
fn count_at_least(ranks: &[u32], stage: u32) -> usize {
    ranks
        .iter()
        .filter(|&&r| r >= stage && r <= RUNNING)
        .count()
}

/// When the first, the 50th and the 100th task reached each stage, as polled; how
/// long the polls took (a slow answer is a daemon too busy to answer); and, for
/// rswarm, when the containers appeared in runc's state directory (which shows the
/// runtime's progress apart from the status reports).
#[derive(Default)]
struct Timeline {
    /// Per stage: [first, half, all].
    reached: [[Option<Duration>; 3]; STAGES.len()],
    /// Bundle directories made by the runtime: [first, half, all].
    bundles: [Option<Duration>; 3],
    /// Containers with runc state: [first, half, all].
    containers: [Option<Duration>; 3],
    follows_containers: bool,
    polls: usize,
    slowest_poll: Duration,
    /// When the slowest poll was sent.
    slowest_poll_at: Duration,
}

impl Timeline {
    fn observe(&mut self, at: Duration, ranks: &[u32]) {
        for (i, (stage, _)) in STAGES.iter().enumerate() {
            let n = count_at_least(ranks, *stage as u32);
            mark(&mut self.reached[i], n, at);
        }
    }

    /// `bundles` bundle directories and `containers` runc state directories exist.
    fn observe_containers(&mut self, at: Duration, bundles: usize, containers: usize) {
        self.follows_containers = true;
        mark(&mut self.bundles, bundles, at);
        mark(&mut self.containers, containers, at);
    }

    /// A poll sent at `sent` (since the start) answered after `took`.
    fn poll_took(&mut self, sent: Duration, took: Duration) {
        self.polls += 1;
        if took > self.slowest_poll {
            self.slowest_poll = took;
            self.slowest_poll_at = sent;
        }
    }

    fn show(&self) -> String {
        let s = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64()));
        let mut stages: Vec<String> = STAGES
            .iter()
            .zip(&self.reached)
            .map(|((_, name), [first, half, all])| {
                format!("{name} {}/{}/{}", s(*first), s(*half), s(*all))
            })
            .collect();
        if self.follows_containers {
            for (name, [first, half, all]) in [
                ("bundle dirs", self.bundles),
                ("runc state dirs", self.containers),
            ] {
                stages.push(format!("{name} {}/{}/{}", s(first), s(half), s(all)));
            }
        }
        format!(
            "s to 1st/{}th/{}th task at state: {} ({} polls, slowest answer {:.0} ms, sent at {:.2} s)",
            REPLICAS / 2,
            REPLICAS,
            stages.join(", "),
            self.polls,
            self.slowest_poll.as_secs_f64() * 1000.0,
            self.slowest_poll_at.as_secs_f64()
        )
    }
}

/// Records `at` in `slots` ([first, half, all]) once `n` reaches each.
fn mark(slots: &mut [Option<Duration>; 3], n: usize, at: Duration) {
    for (slot, needed) in slots.iter_mut().zip([1, REPLICAS / 2, REPLICAS]) {
        if n >= needed && slot.is_none() {
            *slot = Some(at);
        }
    }
}

/// Failed or rejected tasks seen while converging.
#[derive(Default)]
struct Failures {
    ids: HashSet<String>,
    sample: Option<String>,
}

impl Failures {
    fn add(&mut self, id: &str, why: &str) {
        if self.ids.insert(id.to_string()) && self.sample.is_none() {
            self.sample = Some(why.trim().to_string());
        }
    }

    fn show(&self) -> String {
        match &self.sample {
            None => "no task failed".into(),
            Some(why) => format!(
                "{} tasks failed or were rejected, e.g. {why:?}",
                self.ids.len()
            ),
        }
    }
}

// ----- small helpers -----

/// Subdirectories of `dir` (none when it does not exist).
fn count_dirs(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .count()
    })
}

/// The wall-clock time as the daemons log it (UTC, `HH:MM:SS.mmm`), to find a
/// round in their logs.
fn utc_now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
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
