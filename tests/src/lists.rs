//! What `rswarm service ps` and `node ls` list, parsed for the end-to-end tests:
//! one line per task ([`Task`]), every task of a service ([`tasks`]), a wait on
//! them ([`wait_tasks`]), running tasks per node ([`running_per_node`]), and the
//! nodes' hostname, status and manager status ([`nodes`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{try_wait_for, Host};

/// One line of `service ps` / `node ps` in [`TASK_FORMAT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    /// The task name (`web.1`), without the `\_` of history lines.
    pub name: String,
    pub node: String,
    pub desired: String,
    pub current: String,
    pub error: String,
}

impl Task {
    /// Desired Running and currently Running.
    pub fn is_running(&self) -> bool {
        self.desired == "Running" && self.current.starts_with("Running")
    }

    /// Currently Complete (a job's run that ended well).
    pub fn is_complete(&self) -> bool {
        self.current.starts_with("Complete")
    }
}

/// The `--format` the parsers here read.
pub const TASK_FORMAT: &str =
    "{{.ID}}|{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}";

/// The tasks in `service ps --format TASK_FORMAT` output.
pub fn parse_tasks(out: &str) -> Vec<Task> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut f = line.splitn(6, '|').map(str::trim);
            let mut next = || f.next().unwrap_or_default().to_string();
            Task {
                id: next(),
                name: next().trim_start_matches("\\_").trim().to_string(),
                node: next(),
                desired: next(),
                current: next(),
                error: next(),
            }
        })
        .collect()
}

/// `service ps SERVICE --no-trunc --format TASK_FORMAT`.
fn ps_args(service: &str) -> [&str; 6] {
    [
        "service",
        "ps",
        service,
        "--no-trunc",
        "--format",
        TASK_FORMAT,
    ]
}

/// Every task of `service` (history included), as `service ps --no-trunc` on
/// `host`; panics when the command fails.
pub fn tasks(host: &Host, service: &str) -> Vec<Task> {
    parse_tasks(&host.ok(&ps_args(service)))
}

/// Waits until `done(tasks of service)`, panicking with the last `service ps` seen.
pub fn wait_tasks(
    host: &Host,
    service: &str,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[Task]) -> bool,
) -> Vec<Task> {
    let mut last = String::new();
    let waited = try_wait_for(timeout, what, || {
        let out = host.rswarm(&ps_args(service));
        last = out.to_string();
        if !out.success() {
            return None;
        }
        let tasks = parse_tasks(&out.stdout);
        done(&tasks).then_some(tasks)
    });
    waited.unwrap_or_else(|err| panic!("{err}\nthe last `service ps {service}` was:\n{last}"))
}

/// Running tasks (desired Running, current Running) per node name.
pub fn running_per_node(tasks: &[Task]) -> BTreeMap<String, usize> {
    let mut per_node = BTreeMap::new();
    for task in tasks.iter().filter(|t| t.is_running()) {
        *per_node.entry(task.node.clone()).or_insert(0) += 1;
    }
    per_node
}

/// (hostname, status, manager status) of every node in `node ls` on `host`.
pub fn nodes(host: &Host) -> Vec<(String, String, String)> {
    host.ok(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}}|{{.Status}}|{{.ManagerStatus}}",
    ])
    .lines()
    .filter_map(|l| {
        let mut p = l.split('|');
        Some((
            p.next()?.to_string(),
            p.next()?.to_string(),
            p.next()?.to_string(),
        ))
    })
    .collect()
}
