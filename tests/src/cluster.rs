//! A cluster of test hosts, built up and torn down as a whole.
//!
//! [`Cluster::start`] makes the switch, the hosts and their daemons;
//! [`Cluster::init_swarm`] turns them into a swarm the way a user would; dropping
//! the cluster removes every trace of it (see the crate docs, "Teardown").

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::host::{Host, HostPlan};
use crate::registry::Registry;
use crate::{containers, images, mounts, network, preflight};

/// How long [`Cluster::init_swarm`] waits for every node to be Ready.
pub const SWARM_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The dispatcher heartbeat period the test swarms use, so a dead node shows as Down
/// within seconds instead of Swarm's default 5s period (and its grace).
pub const TEST_DISPATCHER_HEARTBEAT: &str = "1s";

/// Lines of each daemon's log printed when a test panics with the cluster up.
const LOG_TAIL_ON_PANIC: usize = 40;

/// N test hosts on one switch; see the crate docs. Dropping it tears everything down.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    switch_netns: String,
    dir: PathBuf,
    hosts: Vec<Host>,
    registry: Option<Registry>,
}

/// Options for a [`Cluster`]: `Cluster::builder(3).daemon_args(&["--metrics-addr",
/// "0.0.0.0:9323"]).start()`.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    hosts: usize,
    daemons: bool,
    binary: Option<PathBuf>,
    daemon_args: Vec<String>,
    registry: bool,
}

impl ClusterBuilder {
    /// Only the network: namespaces, switch, addresses; no daemon is started (for the
    /// harness's own self-test, and for tests of the network alone).
    pub fn without_daemons(mut self) -> Self {
        self.daemons = false;
        self
    }

    /// Use this binary for the daemons and the CLI instead of [`crate::rswarm_bin`].
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Extra arguments for every `rswarm daemon` (after `--data-dir`, `--socket` and
    /// `--node-name`), e.g. `--config FILE`.
    pub fn daemon_args(mut self, args: &[&str]) -> Self {
        self.daemon_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// A registry for the cluster (see [`crate::registry`]): started in the switch
    /// namespace on `10.77.0.2:5000` before the daemons, holding the busybox test
    /// image as `busybox:1` ([`Registry::busybox`]), and every daemon started with
    /// `--config <cluster dir>/daemon.json` saying `{"insecure-registries":
    /// ["10.77.0.2:5000", "10.77.0.2:5001"]}`. Cannot be combined with a `--config` of your own in
    /// [`ClusterBuilder::daemon_args`].
    pub fn with_registry(mut self) -> Self {
        self.registry = true;
        self
    }

    /// Builds the cluster. On any error, what was already built is torn down.
    pub fn start(self) -> anyhow::Result<Cluster> {
        preflight::require_root_and_tools();
        if self.hosts == 0 {
            bail!("a cluster needs at least one host");
        }
        if self.daemons && self.binary.is_none() {
            preflight::rswarm_bin(); // panics now, with a clear message, if it is missing
        }
        if self.registry
            && self
                .daemon_args
                .iter()
                .any(|a| a == "--config" || a.starts_with("--config="))
        {
            bail!("with_registry writes the daemons' --config file itself; pass no --config in daemon_args");
        }
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let number = CLUSTERS.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("rsw{}c{number}", std::process::id());
        let dir = PathBuf::from("/tmp").join(&name);
        let mut cluster = Cluster {
            switch_netns: format!("{name}sw"),
            name,
            dir,
            hosts: Vec::new(),
            registry: None,
        };
        // From here on, an early return drops `cluster`, which removes what exists.
        cluster.make_dir()?;
        network::add_switch(&cluster.switch_netns)?;
        let mut daemon_args = self.daemon_args.clone();
        if self.registry {
            let image = images::busybox();
            let registry = Registry::start(&cluster.switch_netns, &cluster.dir.join("registry"))
                .with_context(|| format!("starting the registry of {}", cluster.name))?;
            let config_path = cluster.dir.join("daemon.json");
            std::fs::write(&config_path, registry.daemon_config().to_string())
                .with_context(|| format!("writing {}", config_path.display()))?;
            daemon_args.extend(["--config".to_string(), config_path.display().to_string()]);
            cluster.registry = Some(registry);
            let registry = cluster.registry.as_ref().expect("just set");
            registry.push(image, "busybox:1").with_context(|| {
                format!("pushing busybox:1 to the registry of {}", cluster.name)
            })?;
        }
        for index in 1..=self.hosts {
            let host = Host::create(HostPlan {
                index,
                netns: format!("{}h{index}", cluster.name),
                switch_netns: cluster.switch_netns.clone(),
                dir: cluster.dir.join(format!("h{index}")),
                binary: self.binary.clone(),
                daemon_args: daemon_args.clone(),
            })
            .with_context(|| format!("creating host{index} of {}", cluster.name))?;
            cluster.hosts.push(host);
        }
        if self.daemons {
            let context = || format!("starting the daemons of cluster {}", cluster.name);
            for host in &cluster.hosts {
                host.spawn_daemon().with_context(context)?;
            }
            for host in &cluster.hosts {
                host.wait_until_serving().with_context(context)?;
            }
        }
        Ok(cluster)
    }
}

impl Cluster {
    /// Options other than the defaults; see [`ClusterBuilder`].
    pub fn builder(hosts: usize) -> ClusterBuilder {
        ClusterBuilder {
            hosts,
            daemons: true,
            binary: None,
            daemon_args: Vec::new(),
            registry: false,
        }
    }

    /// `hosts` hosts with their daemons running and a registry holding the busybox
    /// test image; see [`ClusterBuilder::with_registry`]. No swarm yet.
    pub fn with_registry(hosts: usize) -> anyhow::Result<Cluster> {
        Cluster::builder(hosts).with_registry().start()
    }

    /// `hosts` hosts, each with its daemon running and serving its socket; no swarm yet
    /// (see [`Cluster::init_swarm`]).
    pub fn start(hosts: usize) -> anyhow::Result<Cluster> {
        Cluster::builder(hosts).start()
    }

    /// `hosts` hosts wired together, with no daemon running.
    pub fn network_only(hosts: usize) -> anyhow::Result<Cluster> {
        Cluster::builder(hosts).without_daemons().start()
    }

    /// Host `i`, **1-based** like the node names: `host(1)` is `host1`.
    pub fn host(&self, i: usize) -> &Host {
        match i.checked_sub(1).and_then(|at| self.hosts.get(at)) {
            Some(host) => host,
            None => panic!(
                "no host{i}: this cluster has host1..=host{}",
                self.hosts.len()
            ),
        }
    }

    /// All hosts in order; as a slice it is 0-based: `hosts()[0]` is `host1`.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// `rsw<pid>c<n>`: the prefix of the cluster's namespaces and its directory name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The switch namespace, holding bridge `br0`.
    pub fn switch_netns(&self) -> &str {
        &self.switch_netns
    }

    /// `/tmp/rsw<pid>c<n>`: the hosts' directories are `h1`, `h2`, …
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster's registry. Panics if the cluster was not started
    /// [`with_registry`](ClusterBuilder::with_registry).
    pub fn registry(&self) -> &Registry {
        self.registry.as_ref().unwrap_or_else(|| {
            panic!(
                "{} has no registry: start it with Cluster::with_registry(n) or Cluster::builder(n).with_registry()",
                self.name
            )
        })
    }

    /// Makes a swarm as a user would: `rswarm init` on host1 (advertising its address,
    /// with a short `--dispatcher-heartbeat`), then `rswarm join` with the manager
    /// token on host2..host`managers` and the worker token on the next `workers` hosts,
    /// one after the other. Waits until `rswarm node ls` on host1 shows every joined
    /// node Ready. Hosts beyond `managers + workers` stay out of the swarm.
    pub fn init_swarm(&self, managers: usize, workers: usize) -> anyhow::Result<()> {
        self.init_swarm_with(&[], managers, workers)
    }

    /// [`Cluster::init_swarm`] with another `--dispatcher-heartbeat` than
    /// [`TEST_DISPATCHER_HEARTBEAT`] (a node is Down after three missed periods):
    /// e.g. `"30s"` for a test whose node must stay Ready while its daemon is
    /// restarted.
    pub fn init_swarm_with_heartbeat(
        &self,
        managers: usize,
        workers: usize,
        heartbeat: &str,
    ) -> anyhow::Result<()> {
        self.init_swarm_with(&["--dispatcher-heartbeat", heartbeat], managers, workers)
    }

    /// [`Cluster::init_swarm`] with more flags for `rswarm init` (such as
    /// `--cert-expiry 1m`); a `--dispatcher-heartbeat` among them replaces the
    /// test default.
    pub fn init_swarm_with(
        &self,
        init_args: &[&str],
        managers: usize,
        workers: usize,
    ) -> anyhow::Result<()> {
        if managers == 0 || managers + workers > self.hosts.len() {
            bail!(
                "init_swarm({managers}, {workers}): needs at least one manager and at most {} nodes",
                self.hosts.len()
            );
        }
        let first = self.host(1);
        let mut init = vec![
            "init",
            "--advertise-addr",
            first.addr(),
            "--dispatcher-heartbeat",
            TEST_DISPATCHER_HEARTBEAT,
        ];
        if init_args.contains(&"--dispatcher-heartbeat") {
            init.truncate(init.len() - 2);
        }
        init.extend_from_slice(init_args);
        first.try_ok(&init)?;
        let manager_token = first
            .try_ok(&["swarm", "join-token", "manager", "-q"])?
            .trim()
            .to_string();
        let worker_token = first
            .try_ok(&["swarm", "join-token", "worker", "-q"])?
            .trim()
            .to_string();
        for host in &self.hosts[1..managers + workers] {
            let token = if host.index() <= managers {
                &manager_token
            } else {
                &worker_token
            };
            host.try_ok(&[
                "join",
                "--token",
                token,
                "--advertise-addr",
                host.addr(),
                &first.swarm_addr(),
            ])?;
        }

        let expected: Vec<&str> = self.hosts[..managers + workers]
            .iter()
            .map(Host::name)
            .collect();
        let mut last_seen = String::new();
        crate::try_wait_for(
            SWARM_READY_TIMEOUT,
            "every node to be Ready in `node ls` on host1",
            || {
                let out = first.rswarm(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
                last_seen = out.to_string();
                let ready: Vec<&str> = out
                    .stdout
                    .lines()
                    .filter_map(|line| line.split_once(' '))
                    .filter(|(_, status)| status.trim() == "Ready")
                    .map(|(hostname, _)| hostname)
                    .collect();
                (out.success() && expected.iter().all(|name| ready.contains(name))).then_some(())
            },
        )
        .with_context(|| format!("the last answer was:\n{last_seen}"))
    }

    fn make_dir(&self) -> anyhow::Result<()> {
        if self.dir.exists() {
            // A leftover of a dead process that had our pid (see `network::add_netns`).
            remove_dir_safely(&self.dir)?;
        }
        std::fs::create_dir(&self.dir).with_context(|| format!("creating {}", self.dir.display()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for host in &self.hosts {
            host.kill();
        }
        // The daemons' containers outlive them (live restore): kill and delete them.
        for host in &self.hosts {
            for problem in containers::remove_all(host.data_dir()) {
                eprintln!(
                    "rswarm-tests: teardown of {} on {}: {problem}",
                    self.name,
                    host.name()
                );
            }
        }
        if let Some(registry) = self.registry.take() {
            if std::thread::panicking() {
                eprintln!(
                    "--- registry of {}: last lines of {} ---\n{}",
                    self.name,
                    registry.dir().join("registry.log").display(),
                    tail_lines(&registry.log(), 15)
                );
            }
            drop(registry);
        }
        if std::thread::panicking() {
            for host in self.hosts.iter().filter(|h| h.log_path().exists()) {
                eprintln!(
                    "--- {} of {}: last {LOG_TAIL_ON_PANIC} lines of {} ---\n{}",
                    host.name(),
                    self.name,
                    host.log_path().display(),
                    host.daemon_log_tail(LOG_TAIL_ON_PANIC)
                );
            }
        }
        let namespaces = self
            .hosts
            .iter()
            .map(|h| h.netns().to_string())
            .chain([self.switch_netns.clone()]);
        for netns in namespaces {
            if network::netns_exists(&netns) {
                if let Err(err) = network::delete_netns(&netns) {
                    eprintln!("rswarm-tests: teardown of {}: {err:#}", self.name);
                }
            }
        }
        if std::env::var_os("RSWARM_TEST_KEEP_DIRS").is_some_and(|v| v == "1") {
            let stuck = mounts::unmount_all_under(&self.dir);
            eprintln!(
                "rswarm-tests: RSWARM_TEST_KEEP_DIRS=1: kept {} (mounts left: {stuck:?})",
                self.dir.display()
            );
        } else if self.dir.exists() {
            if let Err(err) = remove_dir_safely(&self.dir) {
                eprintln!("rswarm-tests: teardown of {}: {err:#}", self.name);
            }
        }
    }
}

/// Unmounts everything under `dir`, then removes it; refuses to remove anything while
/// a mount is left under it.
fn remove_dir_safely(dir: &Path) -> anyhow::Result<()> {
    let stuck = mounts::unmount_all_under(dir);
    if !stuck.is_empty() {
        bail!(
            "not removing {}: still mounted under it: {stuck:?}",
            dir.display()
        );
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
