//! Waiting for a service to converge, as `create` and `scale` do: looks at
//! the service's tasks (one line per slot or node, Docker's progress
//! numbering), draws Docker's progress display, and decides when it is done,
//! failed (the task's own error), blocked or stuck.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::ListTasksRequest;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{Service, Task, TaskState};
use tonic::transport::Channel;

use super::{get_service, service_name};
use crate::commands::task::node_directory;
use crate::format::tasks::{short_id, task_state_word};
use crate::servicespec::policy::{ModeKind, DEFAULT_MONITOR_NS};

/// A call made only to follow a service's progress failed (the service
/// itself is fine).
#[derive(Debug)]
pub(super) struct ProgressLost(anyhow::Error);

impl std::fmt::Display for ProgressLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for ProgressLost {}

fn lost(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(ProgressLost(e))
}

/// How far along a task state is, Docker's numbering for the progress bar.
fn state_progress(state: TaskState) -> u32 {
    match state {
        TaskState::New => 1,
        TaskState::Pending => 3,
        TaskState::Assigned => 4,
        TaskState::Accepted => 5,
        TaskState::Preparing => 6,
        TaskState::Ready => 7,
        TaskState::Starting => 8,
        TaskState::Running => 9,
        TaskState::Complete => 10,
        _ => 0,
    }
}

/// One slot's (or node's) line in the progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProgressLine {
    pub(super) label: String,
    pub(super) state: TaskState,
    /// The task's error or the scheduler's reason, shown instead of a bar.
    reason: String,
}

/// What one look at a service's tasks shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Snapshot {
    pub(super) header: String,
    pub(super) lines: Vec<ProgressLine>,
    /// Most progress a line can show (9 for services, 10 for jobs).
    pub(super) max_progress: u32,
    pub(super) done: bool,
    is_job: bool,
    /// A task that failed or was rejected: the error to exit with.
    pub(super) failure: Option<String>,
    /// Every unfinished task waits on the scheduler with a reason.
    pub(super) blocked: bool,
    /// The first unfinished task and why, for a timeout message.
    pub(super) waiting_on: Option<String>,
}

fn task_state(t: &Task) -> TaskState {
    t.status.as_ref().map(|s| s.state()).unwrap_or_default()
}

/// A task's error or, when it has none, the message explaining its state.
fn task_reason(t: &Task) -> String {
    let Some(s) = &t.status else {
        return String::new();
    };
    if !s.err.is_empty() {
        return s.err.clone();
    }
    match s.state() {
        TaskState::Pending if !s.message.starts_with("pending task") => s.message.clone(),
        TaskState::Failed | TaskState::Rejected => {
            if !s.message.is_empty() {
                s.message.clone()
            } else {
                let code = s.container_status.as_ref().map_or(0, |c| c.exit_code);
                format!("task: non-zero exit ({code})")
            }
        }
        _ => String::new(),
    }
}

/// Newest first: by creation time, then ID.
fn newest(a: &Task, b: &Task) -> std::cmp::Ordering {
    let created = |t: &Task| t.meta.as_ref().map_or(0, |m| m.created_at);
    created(a).cmp(&created(b)).then_with(|| a.id.cmp(&b.id))
}

/// Looks at a service's tasks the way Docker's progress display does: one
/// line per slot (replicated) or node (global), the newest task that is
/// meant to run; done when every line runs (or, for jobs, enough tasks
/// completed). `ignore` holds failed tasks from before the wait started;
/// `allow_empty` lets a global service with no eligible node count as done.
pub(super) fn snapshot(
    service: &Service,
    tasks: &[Task],
    node_names: &HashMap<String, String>,
    ignore: &HashSet<String>,
    allow_empty: bool,
) -> Snapshot {
    let name = service_name(service);
    let spec = service.spec.as_ref();
    let mode = spec.and_then(|s| s.mode.as_ref());
    let kind = ModeKind::of(mode);
    let iteration = service.job_status.as_ref().map_or(0, |j| j.job_iteration);
    let tasks: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.service_id == service.id)
        .filter(|t| !kind.is_job() || t.job_iteration == iteration)
        .collect();
    let task_label = |t: &Task| -> String {
        if t.slot != 0 {
            format!("{name}.{}", t.slot)
        } else {
            let node = node_names
                .get(&t.node_id)
                .map_or(short_id(&t.node_id), String::as_str);
            format!("{name}.{node}")
        }
    };

    let failure = tasks
        .iter()
        .filter(|t| matches!(task_state(t), TaskState::Failed | TaskState::Rejected))
        .filter(|t| !ignore.contains(&t.id))
        .max_by(|a, b| newest(a, b))
        .map(|t| {
            format!(
                "task {} ({}) {}: {}",
                task_label(t),
                short_id(&t.id),
                task_state_word(task_state(t)),
                task_reason(t)
            )
        });

    // The task each slot (or node) is meant to run now.
    let desired_limit = if kind.is_job() {
        TaskState::Complete
    } else {
        TaskState::Running
    };
    let slot_key = |t: &Task| {
        if t.slot != 0 {
            (t.slot, String::new())
        } else {
            let node = node_names.get(&t.node_id).cloned().unwrap_or_default();
            (0, format!("{node}\0{}", t.node_id))
        }
    };
    let mut current: BTreeMap<(u64, String), &Task> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.desired_state() <= desired_limit) {
        let key = slot_key(t);
        let keep = current
            .get(&key)
            .is_none_or(|old| newest(t, old) == std::cmp::Ordering::Greater);
        if keep {
            current.insert(key, t);
        }
    }
    let running = current
        .values()
        .filter(|t| task_state(t) == TaskState::Running)
        .count() as u64;
    let completed = tasks
        .iter()
        .filter(|t| task_state(t) == TaskState::Complete)
        .count() as u64;

    let (total, header, done) = match mode {
        Some(Mode::Replicated(r)) => (
            r.replicas,
            format!("overall progress: {running} out of {} tasks", r.replicas),
            running == r.replicas && current.len() as u64 == r.replicas,
        ),
        Some(Mode::ReplicatedJob(j)) => (
            j.total_completions,
            format!(
                "job progress: {completed} out of {} complete",
                j.total_completions
            ),
            completed >= j.total_completions,
        ),
        Some(Mode::GlobalJob(_)) => {
            let total = current.len() as u64;
            let finished = current
                .values()
                .filter(|t| task_state(t) == TaskState::Complete)
                .count() as u64;
            (
                total,
                format!("job progress: {finished} out of {total} complete"),
                (total > 0 || allow_empty) && finished == total,
            )
        }
        Some(Mode::Global(_)) | None => {
            let total = current.len() as u64;
            (
                total,
                format!("overall progress: {running} out of {total} tasks"),
                (total > 0 || allow_empty) && running == total,
            )
        }
    };

    // A slot whose task failed shows the failure until a new task takes over.
    let mut shown = current.clone();
    for t in tasks.iter().filter(|t| {
        matches!(task_state(t), TaskState::Failed | TaskState::Rejected) && !ignore.contains(&t.id)
    }) {
        let key = slot_key(t);
        let keep = shown
            .get(&key)
            .is_none_or(|old| old.desired_state() > desired_limit && newest(t, old).is_gt());
        if keep {
            shown.insert(key, t);
        }
    }
    let per_slot = matches!(mode, Some(Mode::Replicated(_) | Mode::ReplicatedJob(_)));
    let lines: Vec<ProgressLine> = shown
        .values()
        .enumerate()
        .map(|(i, t)| ProgressLine {
            label: if per_slot {
                format!("{}/{total}", i + 1)
            } else {
                node_names
                    .get(&t.node_id)
                    .cloned()
                    .unwrap_or_else(|| short_id(&t.node_id).to_string())
            },
            state: task_state(t),
            reason: task_reason(t),
        })
        .collect();
    let finished_state = if kind.is_job() {
        TaskState::Complete
    } else {
        TaskState::Running
    };
    let unfinished: Vec<&&Task> = current
        .values()
        .filter(|t| task_state(t) != finished_state)
        .collect();
    let blocked = !unfinished.is_empty()
        && unfinished
            .iter()
            .all(|t| task_state(t) == TaskState::Pending && !task_reason(t).is_empty());
    let waiting_on = unfinished.first().map(|t| {
        let reason = task_reason(t);
        let state = task_state_word(task_state(t));
        if reason.is_empty() {
            format!("{} is {state}", task_label(t))
        } else {
            format!("{} is {state}: {reason}", task_label(t))
        }
    });
    Snapshot {
        header,
        lines,
        max_progress: if kind.is_job() { 10 } else { 9 },
        done,
        is_job: kind.is_job(),
        failure,
        blocked,
        waiting_on,
    }
}

/// Draws progress like Docker: redrawn in place on a terminal (with bars),
/// plain lines for what changed otherwise; nothing with `--quiet`.
pub(super) struct ProgressWriter {
    pub(super) quiet: bool,
    pub(super) tty: bool,
    pub(super) drawn: usize,
    pub(super) printed: Vec<String>,
}

impl ProgressWriter {
    fn new(quiet: bool) -> ProgressWriter {
        ProgressWriter {
            quiet,
            tty: std::io::stdout().is_terminal(),
            drawn: 0,
            printed: Vec::new(),
        }
    }

    pub(super) fn render_line(&self, line: &ProgressLine, max: u32) -> String {
        let word = task_state_word(line.state);
        if !line.reason.is_empty() {
            return format!("{}: {word:<9} {}", line.label, line.reason);
        }
        if !self.tty {
            return format!("{}: {word}", line.label);
        }
        let filled = (state_progress(line.state) * 100 / max.max(1) / 2).min(50) as usize;
        format!(
            "{}: {word:<9} [{}>{}]",
            line.label,
            "=".repeat(filled),
            " ".repeat(50 - filled)
        )
    }

    fn draw(&mut self, snap: &Snapshot, footer: Option<&str>) {
        if self.quiet {
            return;
        }
        let mut text = vec![snap.header.clone()];
        text.extend(
            snap.lines
                .iter()
                .map(|l| self.render_line(l, snap.max_progress)),
        );
        if let Some(f) = footer {
            text.push(f.to_string());
        }
        let mut out = std::io::stdout().lock();
        if self.tty {
            if self.drawn > 0 {
                let _ = write!(out, "\x1b[{}A", self.drawn);
            }
            for t in &text {
                let _ = writeln!(out, "\x1b[2K{t}");
            }
            // Blank what is left of a longer previous drawing.
            for _ in text.len()..self.drawn {
                let _ = writeln!(out, "\x1b[2K");
            }
            self.drawn = self.drawn.max(text.len());
        } else {
            for (i, t) in text.iter().enumerate() {
                if self.printed.get(i) != Some(t) {
                    let _ = writeln!(out, "{t}");
                }
            }
            self.printed = text;
        }
        let _ = out.flush();
    }
}

/// How long nothing may change before waiting gives up.
const NO_PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);
/// How long tasks may all sit pending with the scheduler's reason.
const BLOCKED_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a global service may have no task before it counts as 0/0.
const EMPTY_GRACE: Duration = Duration::from_secs(3);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Waits until the service converges: every task running (then stable for
/// the update monitor period, Docker's "verify" step), or a job complete.
/// Fails with the task's error when one fails or is rejected, or when
/// nothing moves for too long. `existing`: failed tasks already there when
/// the wait starts (a `scale`) are history, not failures.
pub(crate) async fn wait_for_convergence(
    services: &mut ServicesClient<Channel>,
    control: &mut ControlClient<Channel>,
    service_id: &str,
    quiet: bool,
    existing: bool,
) -> anyhow::Result<()> {
    let mut writer = ProgressWriter::new(quiet);
    let (mut node_names, _) = node_directory(control).await.map_err(lost)?;
    let started = Instant::now();
    let mut ignore: Option<HashSet<String>> = if existing { None } else { Some(HashSet::new()) };
    let mut last: Option<Snapshot> = None;
    let mut last_change = Instant::now();
    let mut converged_at: Option<Instant> = None;
    loop {
        let service = get_service(services, service_id).await.map_err(lost)?;
        let name = service_name(&service).to_string();
        let tasks = crate::commands::lists::all_tasks(
            services,
            ListTasksRequest {
                service_refs: vec![service.id.clone()],
                ..Default::default()
            },
        )
        .await
        .map_err(lost)?;
        if tasks
            .iter()
            .any(|t| !t.node_id.is_empty() && !node_names.contains_key(&t.node_id))
        {
            node_names = node_directory(control).await.map_err(lost)?.0;
        }
        let ignore = ignore.get_or_insert_with(|| {
            tasks
                .iter()
                .filter(|t| matches!(task_state(t), TaskState::Failed | TaskState::Rejected))
                .map(|t| t.id.clone())
                .collect()
        });
        let snap = snapshot(
            &service,
            &tasks,
            &node_names,
            ignore,
            started.elapsed() >= EMPTY_GRACE,
        );
        if let Some(failure) = &snap.failure {
            writer.draw(&snap, None);
            anyhow::bail!("service {name} did not converge: {failure}");
        }
        if last.as_ref() != Some(&snap) {
            last_change = Instant::now();
        }
        if snap.done {
            if snap.is_job {
                writer.draw(&snap, Some("job complete"));
                return Ok(());
            }
            let monitor_ns = service
                .spec
                .as_ref()
                .and_then(|s| s.update.as_ref())
                .map_or(DEFAULT_MONITOR_NS, |u| u.monitor_ns)
                .max(0);
            let monitor = Duration::from_nanos(monitor_ns as u64);
            let since = *converged_at.get_or_insert_with(Instant::now);
            let stable_for = since.elapsed();
            if stable_for >= monitor {
                writer.draw(&snap, Some("verify: Service converged"));
                return Ok(());
            }
            let left = (monitor - stable_for).as_secs_f64().ceil() as u64;
            let footer = if writer.tty {
                format!("verify: Waiting {left} seconds to verify that tasks are stable...")
            } else {
                format!(
                    "verify: Waiting {} seconds to verify that tasks are stable...",
                    monitor.as_secs_f64().ceil() as u64
                )
            };
            writer.draw(&snap, Some(&footer));
        } else {
            converged_at = None;
            writer.draw(&snap, None);
            let limit = if snap.blocked {
                BLOCKED_TIMEOUT
            } else {
                NO_PROGRESS_TIMEOUT
            };
            if last_change.elapsed() >= limit {
                let what = snap
                    .waiting_on
                    .clone()
                    .unwrap_or_else(|| "no task was created".to_string());
                anyhow::bail!(
                    "service {name} did not converge: nothing changed for {}s: {what}",
                    limit.as_secs()
                );
            }
        }
        last = Some(snap);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
