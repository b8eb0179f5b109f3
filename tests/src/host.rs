//! One test host: a network namespace, its cable to the switch, its `rswarm daemon`.
//!
//! A [`Host`] is what a test talks to: it runs the `rswarm` CLI against its daemon
//! ([`Host::ok`], [`Host::fails`]), runs any command inside its namespace
//! ([`Host::exec`]), kills, stops and starts its daemon, and pulls and plugs its cable
//! ([`Host::disconnect`], [`Host::heal`]). Hosts are made and torn down by
//! [`crate::Cluster`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::command::{self, CmdOutput, COMMAND_TIMEOUT};
use crate::network;

/// How long a daemon may take from spawn to accepting connections on its socket.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to exit after SIGTERM.
pub const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of daemon log shown when a command fails.
const LOG_TAIL_ON_FAILURE: usize = 30;

/// One host of a [`crate::Cluster`]; see the module docs.
#[derive(Debug)]
pub struct Host {
    index: usize,
    name: String,
    addr: String,
    netns: String,
    switch_netns: String,
    switch_port: String,
    dir: PathBuf,
    data_dir: PathBuf,
    socket: PathBuf,
    log_path: PathBuf,
    binary: Option<PathBuf>,
    daemon_args: Vec<String>,
    daemon: Mutex<Option<Child>>,
    backgrounds: AtomicUsize,
}

/// Where and how a host is made; filled in by [`crate::Cluster`].
pub(crate) struct HostPlan {
    pub index: usize,
    pub netns: String,
    pub switch_netns: String,
    pub dir: PathBuf,
    pub binary: Option<PathBuf>,
    pub daemon_args: Vec<String>,
}

impl Host {
    /// Creates the host's namespace, cable and directories (no daemon yet).
    pub(crate) fn create(plan: HostPlan) -> anyhow::Result<Host> {
        let HostPlan {
            index,
            netns,
            switch_netns,
            dir,
            binary,
            daemon_args,
        } = plan;
        let addr = network::host_addr(index);
        let host = Host {
            index,
            name: format!("host{index}"),
            addr: addr.to_string(),
            switch_port: format!("vh{index}"),
            data_dir: dir.join("data"),
            socket: dir.join("s.sock"),
            log_path: dir.join("daemon.log"),
            netns,
            switch_netns,
            dir,
            binary,
            daemon_args,
            daemon: Mutex::new(None),
            backgrounds: AtomicUsize::new(0),
        };
        std::fs::create_dir_all(&host.data_dir)
            .with_context(|| format!("creating {}", host.data_dir.display()))?;
        network::add_netns(&host.netns)?;
        network::plug(&host.switch_netns, &host.switch_port, &host.netns, addr)?;
        Ok(host)
    }

    /// `host1`, `host2`, …: also the daemon's `--node-name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 1-based index: `host(i)` of the cluster.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The host's address on the cluster network, e.g. `10.77.0.11`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The host's address with the swarm port, e.g. `10.77.0.11:2377`.
    pub fn swarm_addr(&self) -> String {
        format!("{}:2377", self.addr)
    }

    /// The name of the host's network namespace (`/var/run/netns/<netns>`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The host's own directory, holding its data dir, socket and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The daemon's `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The runc root the daemon runs its containers under: `<data-dir>/runc`.
    pub fn runc_root(&self) -> PathBuf {
        crate::containers::runc_root(&self.data_dir)
    }

    /// The containers of this host's daemon, as `runc --root <data-dir>/runc list`
    /// shows them (running or not), whether or not the daemon is alive.
    pub fn containers(&self) -> Vec<crate::Container> {
        crate::containers::try_list(&self.runc_root())
            .unwrap_or_else(|err| panic!("{}: {err:#}", self.name))
    }

    /// Runs `runc --root <data-dir>/runc ARGS` (on the machine: runc needs no
    /// network namespace).
    pub fn runc(&self, args: &[&str]) -> CmdOutput {
        crate::containers::runc(&self.runc_root(), args)
    }

    /// The daemon's `--socket`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's log: its stdout and stderr, across restarts.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The binary used for the daemon and the CLI (see [`crate::rswarm_bin`]).
    pub fn binary(&self) -> PathBuf {
        self.binary.clone().unwrap_or_else(crate::rswarm_bin)
    }

    // ----- the CLI -----

    /// Runs `rswarm -H unix://<socket> ARGS` inside the host's namespace. When `args`
    /// start with a host themselves (`-H`, `--host`, `--host=`), no `-H` is added, so
    /// `host2.rswarm(&["-H", "tcp://10.77.0.11:2377", "node", "ls"])` goes from host2
    /// to host1 over the cluster network.
    pub fn rswarm(&self, args: &[&str]) -> CmdOutput {
        self.rswarm_timeout(args, COMMAND_TIMEOUT)
    }

    /// [`Host::rswarm`] with a deadline other than [`COMMAND_TIMEOUT`].
    pub fn rswarm_timeout(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        // The daemon address comes before the subcommand (after it, `--host`
        // is `service create`'s add-host).
        let names_host = args
            .first()
            .is_some_and(|a| *a == "-H" || *a == "--host" || a.starts_with("--host="));
        let mut argv = vec![self.binary().display().to_string()];
        if !names_host {
            argv.push("-H".into());
            argv.push(format!("unix://{}", self.socket.display()));
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        self.exec_timeout_owned(argv, timeout)
    }

    /// Runs `rswarm ARGS` and returns its stdout, or an error that shows the command,
    /// its stdout and stderr, and the tail of this host's daemon log.
    pub fn try_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.rswarm(args);
        if !out.success() {
            bail!(
                "{}: `rswarm {}` failed\n{out}\n{}",
                self.name,
                args.join(" "),
                self.log_tail_section()
            );
        }
        Ok(out.stdout)
    }

    /// Runs `rswarm ARGS`, expects exit code 0, returns stdout. Panics otherwise,
    /// showing the command, its output and the tail of this host's daemon log.
    pub fn ok(&self, args: &[&str]) -> String {
        self.try_ok(args).unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// Runs `rswarm ARGS`, expects a non-zero exit, returns stderr. Panics when the
    /// command succeeds or is killed at its deadline.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.rswarm(args);
        if out.success() || out.timed_out {
            panic!(
                "{}: expected `rswarm {}` to fail\n{out}\n{}",
                self.name,
                args.join(" "),
                self.log_tail_section()
            );
        }
        out.stderr
    }

    /// Waits (up to 90 s) until `service ps SERVICE` shows exactly `want`
    /// tasks that are meant to run and are Running; panics otherwise.
    pub fn wait_running_tasks(&self, service: &str, want: usize) {
        crate::wait_for(
            Duration::from_secs(90),
            &format!("{want} running {service} tasks"),
            || {
                let ps = self.ok(&[
                    "service",
                    "ps",
                    service,
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.CurrentState}}",
                ]);
                (ps.lines().filter(|l| l.starts_with("Running")).count() == want).then_some(())
            },
        );
    }

    /// This node's ID: the `NodeID:` line of `rswarm info` (which a worker answers
    /// too), else `rswarm node inspect self --format {{.ID}}` (managers only).
    pub fn node_id(&self) -> String {
        let info = self.ok(&["info"]);
        let from_info = info
            .lines()
            .find_map(|line| line.trim().strip_prefix("NodeID:"))
            .map(str::trim)
            .filter(|id| !id.is_empty());
        match from_info {
            Some(id) => id.to_string(),
            None => self
                .ok(&["node", "inspect", "self", "--format", "{{.ID}}"])
                .trim()
                .to_string(),
        }
    }

    /// The manager addresses this node knows of to fail over between: the
    /// `Manager Addresses:` block of `rswarm info` (a worker's agent list, a
    /// manager's Raft membership).
    pub fn known_managers(&self) -> Vec<String> {
        let info = self.ok(&["info"]);
        info.lines()
            .skip_while(|l| l.trim() != "Manager Addresses:")
            .skip(1)
            .map(str::trim)
            .take_while(|l| l.parse::<std::net::SocketAddr>().is_ok())
            .map(str::to_string)
            .collect()
    }

    // ----- anything in the namespace -----

    /// Runs `nsenter --net=/var/run/netns/<netns> CMD…` (the network namespace only;
    /// mounts stay the machine's) with the [`COMMAND_TIMEOUT`] deadline.
    pub fn exec(&self, cmd: &[&str]) -> CmdOutput {
        self.exec_timeout(cmd, COMMAND_TIMEOUT)
    }

    /// [`Host::exec`] with another deadline.
    pub fn exec_timeout(&self, cmd: &[&str], timeout: Duration) -> CmdOutput {
        self.exec_timeout_owned(cmd.iter().map(|a| a.to_string()).collect(), timeout)
    }

    /// Runs CMD in the namespace, expects exit 0, returns stdout; panics otherwise.
    pub fn exec_ok(&self, cmd: &[&str]) -> String {
        let out = self.exec(cmd);
        if !out.success() {
            panic!("{}: command failed\n{out}", self.name);
        }
        out.stdout
    }

    fn exec_timeout_owned(&self, cmd: Vec<String>, timeout: Duration) -> CmdOutput {
        assert!(!cmd.is_empty(), "exec needs a program");
        let argv: Vec<String> = [
            "nsenter".to_string(),
            format!("--net=/var/run/netns/{}", self.netns),
            "--".into(),
        ]
        .into_iter()
        .chain(cmd)
        .collect();
        command::run(&argv, &[], timeout)
    }

    /// Starts CMD in the host's namespace and leaves it running (a registry, a load
    /// client, a listener); its stdout and stderr go to a file in the host's dir.
    /// Killed, with everything it started, when the [`Background`] is dropped, and in
    /// any case when the cluster is torn down.
    pub fn spawn_in_background(&self, cmd: &[&str]) -> Background {
        assert!(!cmd.is_empty(), "spawn_in_background needs a program");
        let number = self.backgrounds.fetch_add(1, Ordering::Relaxed) + 1;
        let log_path = self.dir.join(format!("background-{number}.log"));
        let log = File::create(&log_path)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", log_path.display()));
        let mut child_cmd = Command::new(cmd[0]);
        child_cmd
            .args(&cmd[1..])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file handle"))
            .stderr(log)
            .process_group(0);
        crate::spawn::enter_netns(&mut child_cmd, &self.netns);
        let argv: Vec<String> = cmd.iter().map(|a| a.to_string()).collect();
        let command = format!(
            "nsenter --net=/var/run/netns/{} {}",
            self.netns,
            command::shell_line(&[], &argv)
        );
        let child = crate::spawn::spawn_long_lived(child_cmd)
            .unwrap_or_else(|err| panic!("{}: cannot start `{command}`: {err}", self.name));
        Background {
            command,
            child: Some(child),
            log_path,
        }
    }

    /// Runs `f` on a thread inside the host's namespace (see [`network::in_netns`]).
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        network::in_netns(&self.netns, f)
    }

    /// A TCP listener on `0.0.0.0:port` inside the host's namespace.
    pub fn listen_tcp(&self, port: u16) -> TcpListener {
        network::listen_tcp(&self.netns, port)
            .unwrap_or_else(|err| panic!("{}: cannot listen on port {port}: {err}", self.name))
    }

    /// Whether a TCP connection from this host to `to` ("10.77.0.12:7000") is accepted
    /// within `timeout`.
    pub fn tcp_connects(&self, to: &str, timeout: Duration) -> bool {
        let to: SocketAddr = to
            .parse()
            .unwrap_or_else(|err| panic!("bad address {to:?}: {err}"));
        network::tcp_connects(&self.netns, to, timeout)
    }

    // ----- the cable -----

    /// Pulls the host's cable: its port on the switch goes down, so no packet passes
    /// between this host and any other (its daemon keeps running; its own address
    /// and loopback still work).
    pub fn disconnect(&self) {
        network::set_port(&self.switch_netns, &self.switch_port, false)
            .unwrap_or_else(|err| panic!("{}: disconnect: {err:#}", self.name));
    }

    /// Plugs the cable back in after [`Host::disconnect`].
    pub fn heal(&self) {
        network::set_port(&self.switch_netns, &self.switch_port, true)
            .unwrap_or_else(|err| panic!("{}: heal: {err:#}", self.name));
    }

    // ----- the daemon -----

    /// Whether the daemon process is alive (started and not exited).
    pub fn is_running(&self) -> bool {
        match self.daemon().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The daemon's pid while it was started and not yet killed or stopped.
    pub fn pid(&self) -> Option<u32> {
        self.daemon().as_ref().map(Child::id)
    }

    /// Starts the daemon (same data dir, socket and node name as ever) and waits until
    /// its socket accepts connections. Panics if it is already running, exits, or is
    /// not serving within [`DAEMON_START_TIMEOUT`].
    pub fn start(&self) {
        self.try_start().unwrap_or_else(|err| panic!("{err:#}"));
    }

    /// [`Host::start`] returning an error instead of panicking.
    pub fn try_start(&self) -> anyhow::Result<()> {
        self.spawn_daemon()?;
        self.wait_until_serving()
    }

    /// SIGKILLs the daemon and reaps it. Does nothing if it is not running, so it also
    /// cleans up after a daemon that crashed.
    pub fn kill(&self) {
        if let Some(mut child) = self.daemon().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns how it exited. Panics if
    /// it was not running, had exited on its own, or is still running after
    /// [`DAEMON_STOP_TIMEOUT`] (it is then SIGKILLed).
    pub fn stop(&self) -> ExitStatus {
        let Some(mut child) = self.daemon().take() else {
            panic!(
                "{}: stop: the daemon is not running (never started, or killed)",
                self.name
            );
        };
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{}: stop: the daemon had already exited on its own ({status})\n{}",
                self.name,
                self.log_tail_section()
            );
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + DAEMON_STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{}: the daemon was still running {:?} after SIGTERM; killed it\n{}",
                        self.name,
                        DAEMON_STOP_TIMEOUT,
                        self.log_tail_section()
                    );
                }
            }
        }
    }

    /// [`Host::stop`], then [`Host::start`].
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// The last `lines` lines of the daemon's log.
    pub fn daemon_log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|err| format!("(cannot read {}: {err})", self.log_path.display()));
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn log_tail_section(&self) -> String {
        format!(
            "--- {} daemon log (last {LOG_TAIL_ON_FAILURE} lines of {}) ---\n{}",
            self.name,
            self.log_path.display(),
            self.daemon_log_tail(LOG_TAIL_ON_FAILURE)
        )
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Child>> {
        self.daemon
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns the daemon without waiting for it to serve.
    pub(crate) fn spawn_daemon(&self) -> anyhow::Result<()> {
        let mut daemon = self.daemon();
        if let Some(child) = daemon.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                bail!(
                    "{}: start: the daemon is already running (pid {})",
                    self.name,
                    child.id()
                );
            }
        }
        let binary = self.binary();
        let rust_log =
            std::env::var("RSWARM_TEST_LOG").unwrap_or_else(|_| "info,hickory_server=warn".into());
        let mut args: Vec<String> = vec![
            "daemon".into(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--socket".into(),
            self.socket.display().to_string(),
            "--node-name".into(),
            self.name.clone(),
        ];
        args.extend(self.daemon_args.iter().cloned());

        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let by_hand: Vec<String> = [
            format!("--net=/var/run/netns/{}", self.netns),
            binary.display().to_string(),
        ]
        .into_iter()
        .chain(args.iter().cloned())
        .collect();
        writeln!(
            log,
            "=== rswarm-tests: starting {} at {}: RUST_LOG={rust_log} nsenter {} ===",
            self.name,
            unix_time(),
            command::shell_line(&[], &by_hand)
        )?;

        let mut cmd = Command::new(&binary);
        cmd.args(&args)
            .current_dir(&self.dir)
            .env("RUST_LOG", &rust_log)
            .env("RUST_BACKTRACE", "1")
            .env_remove("RSWARM_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        crate::spawn::enter_netns(&mut cmd, &self.netns);
        let child = crate::spawn::spawn_long_lived(cmd)
            .with_context(|| format!("{}: cannot start {}", self.name, binary.display()))?;
        *daemon = Some(child);
        Ok(())
    }

    /// Waits until the daemon's socket accepts a connection. A leftover socket file
    /// from a killed daemon refuses connections, so this waits for the new daemon.
    pub(crate) fn wait_until_serving(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            {
                let mut daemon = self.daemon();
                let Some(child) = daemon.as_mut() else {
                    bail!("{}: the daemon is not running", self.name);
                };
                if let Ok(Some(status)) = child.try_wait() {
                    daemon.take();
                    drop(daemon);
                    bail!(
                        "{}: the daemon exited while starting ({status})\n{}",
                        self.name,
                        self.log_tail_section()
                    );
                }
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if started.elapsed() > DAEMON_START_TIMEOUT {
                bail!(
                    "{}: the daemon is not accepting connections on {} after {:?}\n{}",
                    self.name,
                    self.socket.display(),
                    DAEMON_START_TIMEOUT,
                    self.log_tail_section()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A process left running in a host's namespace by [`Host::spawn_in_background`].
/// Dropping it kills it and everything it started (SIGKILL to its process group).
#[derive(Debug)]
pub struct Background {
    command: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Background {
    /// The command line, as it could be typed in a root shell.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Its pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// What it printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Kills it and everything it started, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unix_time() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("unix time {}.{:03}", since.as_secs(), since.subsec_millis())
}
