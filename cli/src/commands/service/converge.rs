//! Waiting for a service to converge, as `create`, `scale`, `update` and
//! `rollback` do: looks at the service's tasks (one line per slot or node,
//! Docker's progress numbering), draws Docker's progress display, and
//! decides when it is done, failed (the task's own error), blocked or stuck.
//! An update or rollback counts only the tasks of the service's current task
//! template (Docker's up-to-date tasks, by the manager's rule)
//! and follows the service's update status as Docker does: `rollback:
//! <message>` when a rollback starts, an error when the update or rollback
//! pauses, or when an update ends rolled back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::ListTasksRequest;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_status::State as UpdateState;
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

/// Which tasks a look counts and how its header reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct View {
    /// Only the tasks of the service's current spec (an update).
    pub(super) up_to_date: bool,
    /// The header says `rolling back update:`.
    pub(super) rolling_back: bool,
}

/// [`snapshot_view`] counting every task (`create`, `scale`).
#[cfg(test)]
pub(super) fn snapshot(
    service: &Service,
    tasks: &[Task],
    node_names: &HashMap<String, String>,
    ignore: &HashSet<String>,
    allow_empty: bool,
) -> Snapshot {
    snapshot_view(
        service,
        tasks,
        node_names,
        ignore,
        allow_empty,
        View::default(),
    )
}

/// Looks at a service's tasks the way Docker's progress display does: one
/// line per slot (replicated) or node (global), the newest task that is
/// meant to run; done when every line runs (or, for jobs, enough tasks
/// completed). `ignore` holds failed tasks from before the wait started;
/// `allow_empty` lets a global service with no eligible node count as done.
pub(super) fn snapshot_view(
    service: &Service,
    tasks: &[Task],
    node_names: &HashMap<String, String>,
    ignore: &HashSet<String>,
    allow_empty: bool,
    view: View,
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
        .filter(|t| {
            !view.up_to_date || rswarm_proto::spec::rollout::runs_current_template(t, service)
        })
        .collect();
    let progress = |running: u64, total: u64| {
        if view.rolling_back {
            format!("overall progress: rolling back update: {running} out of {total} tasks")
        } else {
            format!("overall progress: {running} out of {total} tasks")
        }
    };
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
            progress(running, r.replicas),
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
                progress(running, total),
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

    fn draw(&mut self, snap: &Snapshot, note: Option<&str>, footer: Option<&str>) {
        if self.quiet {
            return;
        }
        let mut text: Vec<String> = note.iter().map(|n| n.to_string()).collect();
        text.push(snap.header.clone());
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

/// What a wait follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Following {
    /// A new service: every failed task is a failure.
    Create,
    /// A changed service whose task template did not change (`scale`, a
    /// stack's service): failed tasks from before are history.
    Change,
    /// `service update` of the task template: up-to-date tasks and the
    /// update status.
    Update,
    /// `service rollback` (or `update --rollback`).
    Rollback,
}

/// What the service's update status means for a wait.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StatusTurn {
    /// Nothing to act on (no status, or one the wait does not follow).
    Nothing,
    /// The update (or rollback) finished: converged tasks end the wait.
    Finished,
    /// Still moving: no timeout while the updater works.
    Moving,
    /// The wait fails with this line.
    Fails(String),
}

/// Docker's reading of an update status while following `following`;
/// `note`/`rolling_back` take the `rollback: <message>` line and header.
pub(super) fn status_turn(
    service: &Service,
    following: Following,
    note: &mut Option<String>,
    rolling_back: &mut bool,
) -> StatusTurn {
    if !matches!(following, Following::Update | Following::Rollback) {
        return StatusTurn::Nothing;
    }
    let Some(u) = service.update_status.as_ref() else {
        return StatusTurn::Nothing;
    };
    match u.state() {
        UpdateState::Unknown => StatusTurn::Nothing,
        UpdateState::Updating => {
            *rolling_back = false;
            StatusTurn::Moving
        }
        UpdateState::Completed => StatusTurn::Finished,
        UpdateState::Paused => StatusTurn::Fails(format!("service update paused: {}", u.message)),
        UpdateState::RollbackStarted => {
            if note.is_none() && !u.message.is_empty() {
                *note = Some(format!("rollback: {}", u.message));
            }
            *rolling_back = true;
            StatusTurn::Moving
        }
        UpdateState::RollbackPaused => {
            StatusTurn::Fails(format!("service rollback paused: {}", u.message))
        }
        UpdateState::RollbackCompleted if following == Following::Update => {
            StatusTurn::Fails(format!("service rolled back: {}", u.message))
        }
        UpdateState::RollbackCompleted => {
            *rolling_back = true;
            StatusTurn::Finished
        }
    }
}

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
    let following = if existing {
        Following::Change
    } else {
        Following::Create
    };
    follow(services, control, service_id, quiet, following).await
}

/// Follows a service until it converges (see [`wait_for_convergence`]).
/// For an update or rollback only the tasks of the current spec count, and
/// the update status decides as Docker's display does: a pause or (for an
/// update) a rollback that completed fails the wait with its message; the
/// wait ends when the status says completed (rollback completed for a
/// rollback) and the tasks run; while the updater moves, a slow batch is not
/// "stuck"; a task's failure is the updater's to judge, not the end of the
/// wait.
pub(crate) async fn follow(
    services: &mut ServicesClient<Channel>,
    control: &mut ControlClient<Channel>,
    service_id: &str,
    quiet: bool,
    following: Following,
) -> anyhow::Result<()> {
    let mut writer = ProgressWriter::new(quiet);
    let (mut node_names, _) = node_directory(control).await.map_err(lost)?;
    let started = Instant::now();
    let mut ignore: Option<HashSet<String>> = if following == Following::Create {
        Some(HashSet::new())
    } else {
        None
    };
    let mut last: Option<Snapshot> = None;
    let mut last_change = Instant::now();
    let mut converged_at: Option<Instant> = None;
    let mut note: Option<String> = None;
    let mut rolling_back = following == Following::Rollback;
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
        let turn = status_turn(&service, following, &mut note, &mut rolling_back);
        let view = View {
            up_to_date: matches!(following, Following::Update | Following::Rollback),
            rolling_back,
        };
        let snap = snapshot_view(
            &service,
            &tasks,
            &node_names,
            ignore,
            started.elapsed() >= EMPTY_GRACE,
            view,
        );
        if let StatusTurn::Fails(message) = turn {
            writer.draw(&snap, note.as_deref(), None);
            anyhow::bail!("{message}");
        }
        // With an update status, a failed task is the updater's to judge.
        let judged_here = matches!(turn, StatusTurn::Nothing);
        if let Some(failure) = snap.failure.as_ref().filter(|_| judged_here) {
            writer.draw(&snap, note.as_deref(), None);
            anyhow::bail!("service {name} did not converge: {failure}");
        }
        if last.as_ref() != Some(&snap) {
            last_change = Instant::now();
        }
        if snap.done {
            if snap.is_job {
                writer.draw(&snap, note.as_deref(), Some("job complete"));
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
            // With an update status the updater decides when it is over (it
            // watched its own monitor period); without one, the tasks must
            // stay up for the monitor period.
            let finished = match turn {
                StatusTurn::Finished => true,
                StatusTurn::Nothing => stable_for >= monitor,
                StatusTurn::Moving | StatusTurn::Fails(_) => false,
            };
            if finished {
                writer.draw(&snap, note.as_deref(), Some("verify: Service converged"));
                return Ok(());
            }
            let left = (monitor.saturating_sub(stable_for).as_secs_f64().ceil() as u64).max(1);
            let footer = if writer.tty {
                format!("verify: Waiting {left} seconds to verify that tasks are stable...")
            } else {
                format!(
                    "verify: Waiting {} seconds to verify that tasks are stable...",
                    monitor.as_secs_f64().ceil() as u64
                )
            };
            writer.draw(&snap, note.as_deref(), Some(&footer));
        } else {
            converged_at = None;
            writer.draw(&snap, note.as_deref(), None);
            let limit = if snap.blocked {
                BLOCKED_TIMEOUT
            } else {
                NO_PROGRESS_TIMEOUT
            };
            let updater_moving = matches!(turn, StatusTurn::Moving) && !snap.blocked;
            if last_change.elapsed() >= limit && !updater_moving {
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
