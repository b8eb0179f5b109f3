//! A service of many tasks on a cluster, measured: how long it takes to run, whether
//! a node was marked Down on the way, how long `service ls` answers meanwhile, and
//! what its removal leaves behind on each host (runc containers, `created` ones,
//! cgroups, mounts). Shared by `tests/tests/load.rs` and the `bench-load` binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::containers::cgroups_named;
use crate::{Cluster, Host};

/// The line the dispatcher logs when it marks a node Down.
pub const DOWN_MARK: &str = "marking it down";

/// The runtime's message for a container that outlived its SIGKILL.
pub const STUCK_KILL: &str = "still running 30s after SIGKILL";

/// How many times `needle` occurs in the host's daemon log (0 if unreadable).
pub fn log_count(host: &Host, needle: &str) -> usize {
    std::fs::read_to_string(host.log_path())
        .map(|log| log.matches(needle).count())
        .unwrap_or(0)
}

/// What the ramp of a service looked like.
#[derive(Debug, Default)]
pub struct Ramp {
    /// From `service create` to every task Running; None if it did not converge.
    pub to_running: Option<Duration>,
    /// The most Running tasks seen.
    pub most_running: usize,
    /// Slowest `service ls` answer seen while polling.
    pub slowest_ls: Duration,
    /// Slowest `service ps` answer seen while polling.
    pub slowest_ps: Duration,
    /// Times `node ls` showed a node other than Ready while polling.
    pub not_ready_seen: usize,
    /// How many tasks the service has in all (history included) at the end.
    pub tasks_total: usize,
}

/// Creates `name` with `replicas` busybox `sleep` tasks and polls until all are
/// Running (or `timeout`). Polls `service ls`, `service ps` and `node ls` on host1.
pub fn ramp(cluster: &Cluster, name: &str, replicas: usize, timeout: Duration) -> Ramp {
    let manager = cluster.host(1);
    let image = cluster.registry().busybox();
    let replicas_arg = replicas.to_string();
    let started = Instant::now();
    manager.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        name,
        "--replicas",
        &replicas_arg,
        &image,
        "sleep",
        "86400",
    ]);
    let mut ramp = Ramp::default();
    while started.elapsed() < timeout {
        let t = Instant::now();
        let ls = manager.rswarm(&["service", "ls"]);
        ramp.slowest_ls = ramp.slowest_ls.max(t.elapsed());
        let t = Instant::now();
        let ps = manager.rswarm(&[
            "service",
            "ps",
            name,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}",
        ]);
        ramp.slowest_ps = ramp.slowest_ps.max(t.elapsed());
        let nodes = manager.rswarm(&["node", "ls", "--format", "{{.Status}}"]);
        ramp.not_ready_seen += nodes
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty() && l.trim() != "Ready")
            .count();
        let _ = ls;
        let running = ps
            .stdout
            .lines()
            .filter(|l| l.starts_with("Running"))
            .count();
        ramp.most_running = ramp.most_running.max(running);
        if running == replicas {
            ramp.to_running = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let all = manager.rswarm(&["service", "ps", name, "--format", "{{.ID}}"]);
    ramp.tasks_total = all.stdout.lines().filter(|l| !l.trim().is_empty()).count();
    ramp
}

/// What one host holds of a set of containers.
#[derive(Debug, Default, Clone)]
pub struct Leftovers {
    /// runc containers by status.
    pub runc: BTreeMap<String, usize>,
    /// Cgroup directories of the containers (any hierarchy).
    pub cgroups: Vec<PathBuf>,
    /// Mount points under the containers' bundles.
    pub mounts: Vec<PathBuf>,
}

impl Leftovers {
    pub fn containers(&self) -> usize {
        self.runc.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.containers() == 0 && self.cgroups.is_empty() && self.mounts.is_empty()
    }
}

/// The host's runc containers. `runc list` fails when a container goes while it
/// lists (its state directory vanishes under it): ask again, up to ten times.
pub fn containers(host: &Host) -> Vec<crate::Container> {
    let mut last = None;
    for _ in 0..10 {
        match crate::containers::try_list(&host.runc_root()) {
            Ok(list) => return list,
            Err(err) => last = Some(err),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let err = last.map(|e| format!("{e:#}")).unwrap_or_default();
    panic!("{}: {err}", host.name());
}

/// runc containers of the host's daemon (all of them, by status), and the cgroups and
/// mounts of the containers named in `ids`.
pub fn leftovers(host: &Host, ids: &[String]) -> Leftovers {
    let mut out = Leftovers::default();
    for c in containers(host) {
        *out.runc.entry(c.status).or_default() += 1;
    }
    for id in ids {
        out.cgroups.extend(cgroups_named(id));
    }
    let bundles = host.data_dir().join("containers");
    if let Ok(mounts) = crate::mounts::mounts_under(&bundles) {
        out.mounts = mounts
            .into_iter()
            .filter(|m| ids.iter().any(|id| m.starts_with(bundles.join(id))))
            .collect();
    }
    out
}

/// How many containers runc keeps state for in the host's runc root (its
/// `<id>/state.json` files): what `runc list` lists, without its failure when a
/// container goes while it lists.
pub fn runc_states(host: &Host) -> usize {
    std::fs::read_dir(host.runc_root())
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("state.json").exists())
                .count()
        })
        .unwrap_or(0)
}

/// The ids of the host's runc containers.
pub fn container_ids(host: &Host) -> Vec<String> {
    containers(host).into_iter().map(|c| c.id).collect()
}

/// Runs `service rm name` and waits (up to `timeout`) until no host has a runc
/// container or cgroup of `ids` left; returns the time `service rm` took and the
/// time until the hosts were clean (None if they never were).
pub fn remove(
    cluster: &Cluster,
    name: &str,
    ids: &[String],
    timeout: Duration,
) -> (Duration, Option<Duration>) {
    let started = Instant::now();
    cluster.host(1).ok(&["service", "rm", name]);
    let rm = started.elapsed();
    let clean = crate::try_wait_for(timeout, "the service's containers to go", || {
        cluster
            .hosts()
            .iter()
            .filter(|h| h.is_running())
            .all(|h| runc_states(h) == 0 && ids.iter().all(|id| cgroups_named(id).is_empty()))
            .then_some(())
    })
    .ok()
    .map(|_| started.elapsed());
    (rm, clean)
}

/// The machine's load average (1, 5, 15 minutes) as /proc/loadavg says.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
