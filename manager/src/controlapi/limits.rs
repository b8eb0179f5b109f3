//! The bounds the control API keeps besides a spec's own (those are
//! `rswarm_proto::spec::bounds`, checked by `spec::validate`):
//!
//! - dead tasks a slot may keep: [`MAX_TASK_HISTORY`];
//! - what an agent reports about a task: its status message and error are
//!   cut to [`MAX_STATUS_TEXT`] before they are stored (a task failing at
//!   exec with a 1 MB environment must not store a 1 MB error per restart).

use rswarm_proto::spec::bounds::MAX_LIST_ENTRIES;

use crate::error::ManagerError;

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

/// The most of a health probe's output kept (Docker's 4 KiB).
pub const MAX_HEALTH_OUTPUT: usize = 4096;

/// Bounds what a task status carries before it is stored.
pub fn bound_status(status: &mut rswarm_proto::types::TaskStatus) {
    truncate_text(&mut status.message, MAX_STATUS_TEXT);
    truncate_text(&mut status.err, MAX_STATUS_TEXT);
    status.ports.truncate(MAX_LIST_ENTRIES);
    truncate_text(&mut status.health, 64);
    truncate_text(&mut status.health_output, MAX_HEALTH_OUTPUT);
}

fn invalid(msg: String) -> ManagerError {
    ManagerError::InvalidArgument(msg)
}

/// Refuses a replica count above the spec library's limit, naming it.
pub fn check_replicas(what: &str, n: u64) -> Result<(), ManagerError> {
    rswarm_proto::spec::bounds::check_replicas(what, n).map_err(|e| invalid(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
