//! A Docker Engine of our own beside rswarm, for the benchmarks that compare with
//! Docker Swarm on the same machine (Debian's `docker.io`, Docker Engine 20.10).
//!
//! [`DockerEngine::start`] runs `dockerd` with its own `--data-root`, `--exec-root`,
//! `-H unix://…` and `--pidfile` under `/tmp/rswbench-docker-<pid>/`, in a network
//! namespace of its own that has only `lo` (so Docker cannot send anything off the
//! machine, and its iptables rules and bridges stay out of the machine's root
//! namespace), with `DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1` (as Docker's own
//! integration tests: its agent does not try to pull an image it has). It is driven
//! with Debian's `docker` CLI ([`DockerEngine::cli`], its config in our directory) and
//! `GET`s on the Engine API ([`DockerEngine::api_get`]). Its processes (dockerd,
//! containerd, the shims) are found for CPU and memory figures
//! ([`DockerEngine::processes`], [`DockerEngine::memory`]).
//!
//! [`DockerEngine::shutdown`] (and a Drop guard, on every other path) removes every
//! service and container, leaves the swarm, stops dockerd (and with it containerd)
//! with SIGTERM, removes its mounts, directories and network namespace, and the host
//! paths it created (`/etc/docker/key.json`, `/run/docker`, `/run/containerd`,
//! `/sys/fs/cgroup/*/docker`) when they did not exist before.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rswarm_proto::types::TaskState;

use crate::command::{self, CmdOutput};
use crate::mounts::unmount_all_under;
use crate::procfs::{MemSample, Proc, Procs};

/// Debian's Docker binaries (not whatever other `docker` is first on `PATH`).
pub const DOCKERD_BIN: &str = "/usr/sbin/dockerd";
pub const DOCKER_BIN: &str = "/usr/bin/docker";
/// One CLI call (swarm init, load, service create…).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// One API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// dockerd from spawn to answering `GET /_ping`.
const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// dockerd from SIGTERM to exit (it stops its containerd on the way).
const DOCKERD_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Installs Debian's `docker.io` when [`DOCKERD_BIN`] is missing.
pub fn ensure_installed() -> anyhow::Result<()> {
    if Path::new(DOCKERD_BIN).is_file() && Path::new(DOCKER_BIN).is_file() {
        return Ok(());
    }
    println!("{DOCKERD_BIN} or {DOCKER_BIN} is missing: apt-get install -y docker.io");
    let out = command::run(
        &argv(&["apt-get", "install", "-y", "docker.io"]),
        &[("DEBIAN_FRONTEND", "noninteractive")],
        Duration::from_secs(600),
    );
    if !out.success() {
        bail!("installing docker.io failed:\n{out}");
    }
    Ok(())
}

/// Docker's task state names ranked like rswarm's `TaskState` values.
pub fn task_state_rank(state: &str) -> u32 {
    let rank = match state {
        "new" => TaskState::New,
        "pending" => TaskState::Pending,
        "assigned" => TaskState::Assigned,
        "accepted" => TaskState::Accepted,
        "preparing" => TaskState::Preparing,
        "ready" => TaskState::Ready,
        "starting" => TaskState::Starting,
        "running" => TaskState::Running,
        "complete" => TaskState::Complete,
        "shutdown" => TaskState::Shutdown,
        "failed" => TaskState::Failed,
        "rejected" => TaskState::Rejected,
        "remove" => TaskState::Remove,
        "orphaned" => TaskState::Orphaned,
        _ => TaskState::New,
    };
    rank as u32
}

/// What existed on the machine before dockerd ran, so that only what it created is
/// removed afterwards.
struct HostPaths {
    existed: HashSet<PathBuf>,
}

impl HostPaths {
    /// Paths outside our directory that dockerd 20.10 and its containerd create.
    fn candidates() -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = [
            "/etc/docker/key.json",
            "/etc/docker",
            "/run/docker",
            "/run/containerd",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            paths.extend(entries.flatten().map(|e| e.path().join("docker")));
        }
        paths
    }

    fn snapshot() -> HostPaths {
        HostPaths {
            existed: HostPaths::candidates()
                .into_iter()
                .filter(|p| p.exists())
                .collect(),
        }
    }
}

/// A dockerd of our own; see the module docs. Dropping it stops and removes it all.
pub struct DockerEngine {
    dir: PathBuf,
    netns: String,
    socket: PathBuf,
    exec_root: PathBuf,
    cli_config: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    host_paths: HostPaths,
    netns_made: bool,
    shut_down: bool,
}

impl DockerEngine {
    /// Starts dockerd (see the module docs) and waits until it answers `GET /_ping`.
    pub fn start() -> anyhow::Result<DockerEngine> {
        let pid = std::process::id();
        let dir = PathBuf::from(format!("/tmp/rswbench-docker-{pid}"));
        let mut engine = DockerEngine {
            socket: dir.join("docker.sock"),
            exec_root: dir.join("exec"),
            cli_config: dir.join("cli"),
            log_path: dir.join("dockerd.log"),
            netns: format!("rswbench{pid}d"),
            dir,
            child: None,
            host_paths: HostPaths::snapshot(),
            netns_made: false,
            shut_down: false,
        };
        // From here on, an early return drops `engine`, which removes what exists.
        if engine.dir.exists() {
            bail!(
                "{} exists already (a leftover of a dead process with our pid?)",
                engine.dir.display()
            );
        }
        for sub in ["data", "exec", "cli"] {
            std::fs::create_dir_all(engine.dir.join(sub))
                .with_context(|| format!("creating {}", engine.dir.join(sub).display()))?;
        }
        let config = engine.dir.join("daemon.json");
        std::fs::write(&config, "{}\n")?;
        run_ok(&["ip", "netns", "add", &engine.netns])?;
        engine.netns_made = true;
        run_ok(&["ip", "-n", &engine.netns, "link", "set", "lo", "up"])?;

        let log = File::create(&engine.log_path)
            .with_context(|| format!("creating {}", engine.log_path.display()))?;
        let mut cmd = Command::new(DOCKERD_BIN);
        cmd.arg("--data-root")
            .arg(engine.dir.join("data"))
            .arg("--exec-root")
            .arg(&engine.exec_root)
            .arg("-H")
            .arg(format!("unix://{}", engine.socket.display()))
            .arg("--pidfile")
            .arg(engine.dir.join("docker.pid"))
            .arg("--config-file")
            .arg(&config)
            .current_dir(&engine.dir)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        crate::spawn::enter_netns(&mut cmd, &engine.netns);
        engine.child = Some(
            crate::spawn::spawn_long_lived(cmd)
                .with_context(|| format!("starting {DOCKERD_BIN}"))?,
        );
        let started = Instant::now();
        loop {
            if let Ok(answer) = engine.request("/_ping") {
                if answer.0 == 200 {
                    break;
                }
            }
            if let Some(Ok(Some(status))) = engine.child.as_mut().map(Child::try_wait) {
                bail!(
                    "dockerd exited while starting ({status})\n{}",
                    engine.log_tail(30)
                );
            }
            if started.elapsed() > DOCKERD_START_TIMEOUT {
                bail!(
                    "dockerd does not answer GET /_ping after {DOCKERD_START_TIMEOUT:?}\n{}",
                    engine.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(engine)
    }

    /// Our directory: data root, exec root, socket, CLI config, `dockerd.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network namespace dockerd runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// dockerd's PID (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Runs `docker -H unix://… ARGS` (Debian's CLI, its config in our directory).
    pub fn cli(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        let (argv, config) = self.cli_command(args);
        command::run(&argv, &[("DOCKER_CONFIG", &config)], timeout)
    }

    /// What [`DockerEngine::cli`] runs: the command line and `DOCKER_CONFIG`'s value
    /// (for running it on another thread).
    pub fn cli_command(&self, args: &[&str]) -> (Vec<String>, String) {
        let host = format!("unix://{}", self.socket.display());
        let mut all = vec![DOCKER_BIN, "-H", &host];
        all.extend_from_slice(args);
        (argv(&all), self.cli_config.display().to_string())
    }

    pub fn cli_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.cli(args, CLI_TIMEOUT);
        if !out.success() {
            bail!(
                "`docker {}` failed\n{out}\n{}",
                args.join(" "),
                self.log_tail(20)
            );
        }
        Ok(out.stdout)
    }

    /// `GET path` on the Engine API: (status, body).
    pub fn request(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = UnixStream::connect(&self.socket)
            .with_context(|| format!("connecting to {}", self.socket.display()))?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        // HTTP/1.0: the answer is not chunked and ends when the connection closes.
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("GET {path}: not an HTTP answer: {text:.200}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// `GET path` answered 200 with JSON.
    pub fn api_get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.request(path)?;
        if status != 200 {
            bail!("GET {path}: {status}: {body:.300}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON: {body:.300}"))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "--- {} (last {lines} lines) ---\n{}",
            self.log_path.display(),
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }

    /// Is `p` a process of this engine outside the containers: dockerd, or anything
    /// whose command line names our directory (containerd, the shims)?
    fn owns(&self, p: &Proc) -> bool {
        p.pid == self.pid() || p.cmdline.contains(&*self.dir.to_string_lossy())
    }

    /// dockerd, containerd, the shims and their descendants in the machine's PID
    /// namespace.
    pub fn processes(&self) -> Vec<u32> {
        let procs = Procs::read();
        let Some(dockerd) = procs.get(self.pid()) else {
            return Vec::new();
        };
        let mut pids = Vec::new();
        for p in procs.all().filter(|p| self.owns(p)) {
            pids.push(p.pid);
            for pid in procs.descendants(p.pid) {
                if procs.get(pid).is_some_and(|d| d.pidns == dockerd.pidns) {
                    pids.push(pid);
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    pub fn memory(&self) -> anyhow::Result<MemSample> {
        let procs = Procs::read();
        let dockerd = procs.get(self.pid()).context("dockerd is not running")?;
        let mut sample = MemSample::default();
        let mut seen = HashSet::new();
        for p in procs.all().filter(|p| self.owns(p)) {
            for pid in std::iter::once(p.pid).chain(procs.descendants(p.pid)) {
                if !seen.insert(pid) {
                    continue;
                }
                let Some(d) = procs.get(pid) else { continue };
                if d.pidns == dockerd.pidns {
                    sample.add(&d.comm, d);
                } else {
                    sample.add_container(d);
                }
            }
        }
        Ok(sample)
    }

    /// Removes every service and container, leaves the swarm, stops dockerd (which
    /// stops its containerd), kills what is left of ours, unmounts and removes our
    /// directory, the network namespace and the host paths dockerd created. Returns
    /// what went wrong.
    pub fn shutdown(mut self) -> Vec<String> {
        self.shut_down = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if running {
            let out = self.cli(&["service", "ls", "-q"], CLI_TIMEOUT);
            let services: Vec<String> = out.stdout.split_whitespace().map(String::from).collect();
            if !services.is_empty() {
                let mut args = vec!["service", "rm"];
                args.extend(services.iter().map(String::as_str));
                let _ = self.cli(&args, CLI_TIMEOUT);
            }
            let out = self.cli(&["ps", "-aq"], CLI_TIMEOUT);
            let containers: Vec<String> = out.stdout.split_whitespace().map(String::from).collect();
            if !containers.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(containers.iter().map(String::as_str));
                let out = self.cli(&args, Duration::from_secs(300));
                if !out.success() {
                    problems.push(format!("docker rm -f failed: {}", out.stderr.trim()));
                }
            }
            let out = self.cli(&["swarm", "leave", "--force"], CLI_TIMEOUT);
            if !out.success() && !out.stderr.contains("not part of a swarm") {
                problems.push(format!("docker swarm leave failed: {}", out.stderr.trim()));
            }
        }
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + DOCKERD_STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        problems.push(format!(
                            "dockerd did not exit within {DOCKERD_STOP_TIMEOUT:?} of SIGTERM: killed"
                        ));
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        // containerd exits after dockerd; shims with their containers would stay.
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut killed = false;
        loop {
            let left: Vec<Proc> = Procs::read()
                .all()
                .filter(|p| self.owns(p))
                .cloned()
                .collect();
            if left.is_empty() {
                break;
            }
            let names = left
                .iter()
                .map(|p| format!("{} {}", p.pid, p.comm))
                .collect::<Vec<_>>()
                .join(", ");
            if killed {
                problems.push(format!("processes left after SIGKILL: {names}"));
                break;
            }
            if Instant::now() > deadline {
                problems.push(format!("killing what dockerd left running: {names}"));
                for p in &left {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p.pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                killed = true;
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Cgroups Docker made (only where there was no `docker` cgroup before).
        for path in HostPaths::candidates() {
            if path.starts_with("/sys/fs/cgroup")
                && path.is_dir()
                && !self.host_paths.existed.contains(&path)
            {
                if let Err(err) = remove_cgroup_tree(&path) {
                    problems.push(format!("{}: {err}", path.display()));
                }
            }
        }
        let stuck = unmount_all_under(&self.dir);
        if !stuck.is_empty() {
            problems.push(format!("still mounted, so not removed: {stuck:?}"));
        } else if self.dir.exists() {
            if let Err(err) = std::fs::remove_dir_all(&self.dir) {
                problems.push(format!("removing {}: {err}", self.dir.display()));
            }
        }
        if self.netns_made {
            let out = command::run(
                &argv(&["ip", "netns", "del", &self.netns]),
                &[],
                CLI_TIMEOUT,
            );
            if !out.success() {
                problems.push(format!(
                    "ip netns del {}: {}",
                    self.netns,
                    out.stderr.trim()
                ));
            }
            self.netns_made = false;
        }
        for path in ["/etc/docker/key.json", "/run/docker", "/run/containerd"] {
            let path = Path::new(path);
            if path.exists() && !self.host_paths.existed.contains(path) {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                };
                if let Err(err) = removed {
                    problems.push(format!("removing {}: {err}", path.display()));
                }
            }
        }
        let etc_docker = Path::new("/etc/docker");
        if etc_docker.is_dir() && !self.host_paths.existed.contains(etc_docker) {
            let _ = std::fs::remove_dir(etc_docker); // only if empty
        }
        problems
    }
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        if !self.shut_down {
            for problem in self.teardown() {
                eprintln!("Docker teardown: {problem}");
            }
        }
    }
}

/// Kills every process in `cgroup` and below, then removes the directories, deepest
/// first.
fn remove_cgroup_tree(cgroup: &Path) -> std::io::Result<()> {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        out.push(dir.to_path_buf());
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    collect(&entry.path(), out);
                }
            }
        }
    }
    let mut dirs = Vec::new();
    collect(cgroup, &mut dirs);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut alive = false;
        for dir in &dirs {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                alive = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !alive || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for dir in &dirs {
        for _attempt in 0..50 {
            match std::fs::remove_dir(dir) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
    }
    match dirs.iter().find(|d| d.exists()) {
        Some(stuck) => Err(std::io::Error::other(format!(
            "{} cannot be removed",
            stuck.display()
        ))),
        None => Ok(()),
    }
}

/// Percent-encodes everything but unreserved characters (for a query value).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn run_ok(args: &[&str]) -> anyhow::Result<String> {
    let out = command::run(&argv(args), &[], CLI_TIMEOUT);
    if !out.success() {
        bail!("command failed:\n{out}");
    }
    Ok(out.stdout)
}
