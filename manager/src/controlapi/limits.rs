//! The bounds every service spec must keep, checked by the Control API before
//! anything is stored (the final word; the CLI checks the same early):
//!
//! - replicas per service (and a replicated job's concurrency and total
//!   completions): [`MAX_REPLICAS`];
//! - the encoded spec: [`MAX_SPEC_BYTES`];
//! - the lists inside a spec (environment, labels, args, mounts, ports, ...):
//!   [`MAX_LIST_ENTRIES`], mounts [`MAX_MOUNTS`];
//! - what an agent reports about a task: its status message and error are
//!   cut to [`MAX_STATUS_TEXT`] before they are stored (a task failing at
//!   exec with a 1 MB environment must not store a 1 MB error per restart).
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

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::ServiceSpec;

use crate::error::ManagerError;

/// Most replicas one service may have.
pub const MAX_REPLICAS: u64 = 10_000;
/// Most bytes a service spec may take, protobuf-encoded.
pub const MAX_SPEC_BYTES: usize = 512 * 1024;
/// Most entries in any list or map of a spec (environment, labels, args, ...).
pub const MAX_LIST_ENTRIES: usize = 1_000;
/// Most mounts of one container.
pub const MAX_MOUNTS: usize = 100;

/// Most dead tasks a slot may keep (`--task-history-limit`).
pub const MAX_TASK_HISTORY: u32 = 100;

/// Refuses a task history limit above [`MAX_TASK_HISTORY`]; returns it.
pub fn check_task_history(n: u32) -> Result<u32, ManagerError> {
    if n > MAX_TASK_HISTORY {
        return Err(invalid(format!(
            "task history limit {n} is over the limit of {MAX_TASK_HISTORY}"
        )));
    }
    Ok(n)
}

/// Most bytes of a task's stored status message or error.
pub const MAX_STATUS_TEXT: usize = 4 * 1024;

/// Cuts `s` to at most `max` bytes (on a character boundary), marking the
/// cut with "…".
pub fn truncate_text(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    const MARK: &str = "…";
    let mut end = max.saturating_sub(MARK.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(MARK);
}

/// Bounds what a task status carries before it is stored.
pub fn bound_status(status: &mut rswarm_proto::types::TaskStatus) {
    truncate_text(&mut status.message, MAX_STATUS_TEXT);
    truncate_text(&mut status.err, MAX_STATUS_TEXT);
    status.ports.truncate(MAX_LIST_ENTRIES);
    truncate_text(&mut status.health, 64);
}

fn invalid(msg: String) -> ManagerError {
    ManagerError::InvalidArgument(msg)
}

/// Refuses a replica count above [`MAX_REPLICAS`], naming the limit.
pub fn check_replicas(what: &str, n: u64) -> Result<(), ManagerError> {
    if n > MAX_REPLICAS {
        return Err(invalid(format!(
            "{what} {n} is over the limit of {MAX_REPLICAS} per service"
        )));
    }
    Ok(())
}

/// Checks every bound of a spec; the message names the limit broken.
pub fn check_spec(spec: &ServiceSpec) -> Result<(), ManagerError> {
    use prost::Message;
    let size = spec.encoded_len();
    if size > MAX_SPEC_BYTES {
        return Err(invalid(format!(
            "service spec is {size} bytes, over the limit of {MAX_SPEC_BYTES} bytes (512 KiB)"
        )));
    }
    match &spec.mode {
        Some(Mode::Replicated(r)) => check_replicas("replicas", r.replicas)?,
        Some(Mode::ReplicatedJob(j)) => {
            check_replicas("max concurrent", j.max_concurrent)?;
            check_replicas("total completions", j.total_completions)?;
        }
        _ => {}
    }
    let mut lists: Vec<(&str, usize, usize)> = Vec::new();
    if let Some(a) = spec.annotations.as_ref() {
        lists.push(("service labels", a.labels.len(), MAX_LIST_ENTRIES));
    }
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
            ]);
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
            return Err(invalid(format!(
                "service spec has {n} {what}, over the limit of {max}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{ContainerSpec, Mount, ReplicatedService, TaskSpec};

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

    fn message(r: Result<(), ManagerError>) -> String {
        match r {
            Ok(()) => String::new(),
            Err(ManagerError::InvalidArgument(m)) => m,
            Err(e) => panic!("not an invalid argument: {e}"),
        }
    }

    #[test]
    fn replicas_above_the_limit_are_refused_naming_it() {
        assert_eq!(message(check_spec(&spec(MAX_REPLICAS, vec![]))), "");
        assert_eq!(
            message(check_spec(&spec(1_000_000_000, vec![]))),
            "replicas 1000000000 is over the limit of 10000 per service"
        );
    }

    #[test]
    fn a_spec_over_512_kib_is_refused_naming_its_size() {
        let big = vec![format!("BIG={}", "x".repeat(MAX_SPEC_BYTES))];
        let m = message(check_spec(&spec(1, big)));
        assert!(
            m.starts_with("service spec is ")
                && m.ends_with("over the limit of 524288 bytes (512 KiB)"),
            "{m}"
        );
        let under = vec![format!("BIG={}", "x".repeat(MAX_SPEC_BYTES - 1024))];
        assert_eq!(message(check_spec(&spec(1, under))), "");
    }

    #[test]
    fn status_texts_are_cut_on_a_character_boundary() {
        let mut st = rswarm_proto::types::TaskStatus {
            err: format!("exec failed: {}", "é".repeat(600_000)),
            message: "started".into(),
            ..Default::default()
        };
        bound_status(&mut st);
        assert!(st.err.len() <= MAX_STATUS_TEXT, "{}", st.err.len());
        assert!(st.err.starts_with("exec failed: é") && st.err.ends_with('…'));
        assert_eq!(st.message, "started");
    }

    #[test]
    fn lists_are_bounded() {
        let env = (0..=MAX_LIST_ENTRIES).map(|i| format!("V{i}=1")).collect();
        assert_eq!(
            message(check_spec(&spec(1, env))),
            "service spec has 1001 environment variables, over the limit of 1000"
        );
        let mut s = spec(1, vec![]);
        if let Some(c) = s.task.as_mut().and_then(|t| t.container.as_mut()) {
            c.mounts = vec![Mount::default(); MAX_MOUNTS + 1];
        }
        assert_eq!(
            message(check_spec(&s)),
            "service spec has 101 mounts, over the limit of 100"
        );
    }
}
