//! The bounds every service spec must keep, checked by [`super::validate`]
//! (so by the CLI early and by the control API as the final word):
//!
//! - replicas per service (and a replicated job's concurrency and total
//!   completions): [`MAX_REPLICAS`];
//! - the encoded spec: [`MAX_SPEC_BYTES`];
//! - the lists inside a spec (environment, labels, args, mounts, ports, ...):
//!   [`MAX_LIST_ENTRIES`], mounts 100;
//! - a task's log files (`max-size`, `max-file`): in [`super::logging`].
//!
//! Why these numbers: these machines have 2 cores and ~23 GiB, and the
//! largest service measured on them is ~2,000 tasks on 2 nodes. 10,000
//! replicas leaves room for five times that on a bigger cluster while
//! keeping one service's tasks (a few KiB each for a usual spec) to tens of
//! MiB in every manager's store and memory. 512 KiB is far above any real
//! spec (Docker's own API caps a request body for a service at a few MiB)
//! and keeps a task (which carries its service's task spec) and a service
//! (which carries its spec and the previous one) well inside one page of a
//! list answer and one Raft entry.

use prost::Message;

use crate::types::service_spec::Mode;
use crate::types::ServiceSpec;

use super::ValueError;

/// Most replicas one service may have.
pub const MAX_REPLICAS: u64 = 10_000;
/// Most bytes a service spec may take, protobuf-encoded.
pub const MAX_SPEC_BYTES: usize = 512 * 1024;
/// Most entries in any list or map of a spec (environment, labels, args, ...).
pub const MAX_LIST_ENTRIES: usize = 1_000;
/// Most bytes of the registry credentials sent with a spec (base64 JSON of
/// a user name, a password or token, and a server address).
pub const MAX_REGISTRY_AUTH_BYTES: usize = 16 * 1024;
/// Most mounts of one container.
const MAX_MOUNTS: usize = 100;

/// Refuses a replica count above [`MAX_REPLICAS`], naming the limit.
pub fn check_replicas(what: &str, n: u64) -> Result<(), ValueError> {
    if n > MAX_REPLICAS {
        return Err(ValueError(format!(
            "{what} {n} is over the limit of {MAX_REPLICAS} per service"
        )));
    }
    Ok(())
}

/// Every bound `spec` breaks, each message naming the limit.
pub(super) fn problems(spec: &ServiceSpec) -> Vec<String> {
    let mut out = Vec::new();
    let size = spec.encoded_len();
    if size > MAX_SPEC_BYTES {
        out.push(format!(
            "service spec is {size} bytes, over the limit of {MAX_SPEC_BYTES} bytes (512 KiB)"
        ));
    }
    let replicas = match &spec.mode {
        Some(Mode::Replicated(r)) => vec![("replicas", r.replicas)],
        Some(Mode::ReplicatedJob(j)) => vec![
            ("max concurrent", j.max_concurrent),
            ("total completions", j.total_completions),
        ],
        _ => vec![],
    };
    for (what, n) in replicas {
        if let Err(e) = check_replicas(what, n) {
            out.push(e.0);
        }
    }
    let mut lists: Vec<(&str, usize, usize)> = Vec::new();
    if let Some(a) = spec.annotations.as_ref() {
        lists.push(("service labels", a.labels.len(), MAX_LIST_ENTRIES));
    }
    lists.push(("dependencies", spec.depends_on.len(), MAX_LIST_ENTRIES));
    if let Some(task) = spec.task.as_ref() {
        if let Some(c) = task.container.as_ref() {
            lists.extend([
                ("environment variables", c.env.len(), MAX_LIST_ENTRIES),
                ("container labels", c.labels.len(), MAX_LIST_ENTRIES),
                ("command words", c.command.len(), MAX_LIST_ENTRIES),
                ("args", c.args.len(), MAX_LIST_ENTRIES),
                ("groups", c.groups.len(), MAX_LIST_ENTRIES),
                ("mounts", c.mounts.len(), MAX_MOUNTS),
                ("ulimits", c.ulimits.len(), MAX_LIST_ENTRIES),
                ("sysctls", c.sysctls.len(), MAX_LIST_ENTRIES),
                ("added capabilities", c.cap_add.len(), MAX_LIST_ENTRIES),
                ("dropped capabilities", c.cap_drop.len(), MAX_LIST_ENTRIES),
                ("host entries", c.hosts.len(), MAX_LIST_ENTRIES),
            ]);
            let auth = c.pull_options.as_ref().map_or(0, |p| p.registry_auth.len());
            if auth > MAX_REGISTRY_AUTH_BYTES {
                out.push(format!(
                    "registry credentials are {auth} bytes, over the limit of {MAX_REGISTRY_AUTH_BYTES}"
                ));
            }
        }
        if let Some(p) = task.placement.as_ref() {
            lists.push((
                "placement constraints",
                p.constraints.len(),
                MAX_LIST_ENTRIES,
            ));
            lists.push((
                "placement preferences",
                p.preferences.len(),
                MAX_LIST_ENTRIES,
            ));
        }
        lists.push(("networks", task.networks.len(), MAX_LIST_ENTRIES));
    }
    if let Some(e) = spec.endpoint.as_ref() {
        lists.push(("published ports", e.ports.len(), MAX_LIST_ENTRIES));
    }
    for (what, n, max) in lists {
        if n > max {
            out.push(format!(
                "service spec has {n} {what}, over the limit of {max}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ContainerSpec, Mount, ReplicatedService, TaskSpec};

    fn spec(replicas: u64, env: Vec<String>) -> ServiceSpec {
        ServiceSpec {
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox".into(),
                    env,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas })),
            ..Default::default()
        }
    }

    fn message(spec: &ServiceSpec) -> String {
        problems(spec).join("; ")
    }

    #[test]
    fn replicas_above_the_limit_are_refused_naming_it() {
        assert_eq!(message(&spec(MAX_REPLICAS, vec![])), "");
        assert_eq!(
            message(&spec(1_000_000_000, vec![])),
            "replicas 1000000000 is over the limit of 10000 per service"
        );
    }

    #[test]
    fn a_spec_over_512_kib_is_refused_naming_its_size() {
        let big = vec![format!("BIG={}", "x".repeat(MAX_SPEC_BYTES))];
        let m = message(&spec(1, big));
        assert!(
            m.starts_with("service spec is ")
                && m.ends_with("over the limit of 524288 bytes (512 KiB)"),
            "{m}"
        );
        let under = vec![format!("BIG={}", "x".repeat(MAX_SPEC_BYTES - 1024))];
        assert_eq!(message(&spec(1, under)), "");
    }

    #[test]
    fn lists_are_bounded() {
        let env = (0..=MAX_LIST_ENTRIES).map(|i| format!("V{i}=1")).collect();
        assert_eq!(
            message(&spec(1, env)),
            "service spec has 1001 environment variables, over the limit of 1000"
        );
        let mut s = spec(1, vec![]);
        if let Some(c) = s.task.as_mut().and_then(|t| t.container.as_mut()) {
            c.mounts = vec![Mount::default(); MAX_MOUNTS + 1];
        }
        assert_eq!(
            message(&s),
            "service spec has 101 mounts, over the limit of 100"
        );
    }
}
