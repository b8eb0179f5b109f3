//! `rswarm service create | inspect | logs | ls | ps | rm | scale`, with
//! Docker's flags, output and wording. `create` and `scale` wait for the
//! service to converge (Docker's progress display) unless `--detach`, and
//! fail with the tasks' own error when they cannot start. Specs are built
//! and checked by `servicespec` before anything is sent; tables and JSON
//! come from `format::services` and `format::tasks`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{
    CreateServiceRequest, GetServiceRequest, GetTaskRequest, ListTasksRequest, LogLine,
    LogSelector, LogsRequest, RemoveServiceRequest, UpdateServiceRequest,
};
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{Service, Task, TaskState};
use tonic::transport::Channel;

use super::task::{self, node_directory, now_nanos, ServicePsArgs};
use crate::client::{status_error, ClientOpts};
use crate::format;
use crate::format::services::{service_counts, ServiceCounts};
use crate::format::tasks::{short_id, task_state_word};
use crate::servicespec::policy::{ModeKind, DEFAULT_MONITOR_NS};
use crate::servicespec::units::parse_uint;
use crate::servicespec::ServiceFlags;

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Create a new service
    Create(Box<CreateArgs>),
    /// Display detailed information on one or more services
    Inspect(InspectArgs),
    /// Fetch the logs of a service or task
    Logs(LogsArgs),
    /// List services
    #[command(alias = "list")]
    Ls(LsArgs),
    /// List the tasks of one or more services
    Ps(ServicePsArgs),
    /// Remove one or more services
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Scale one or multiple replicated services
    Scale(ScaleArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: ServiceFlags,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(
        short = 'd',
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "bool"
    )]
    pub detach: Option<bool>,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        value_name = "IMAGE",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub image_and_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (id, name, mode, label)
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template, "table TEMPLATE" or "json"
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Format output using a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all", value_name = "string")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Do not include task IDs in output
    #[arg(long = "no-task-ids")]
    pub no_task_ids: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Do not map IDs to Names in output
    #[arg(long = "no-resolve")]
    pub no_resolve: bool,
    /// Do not neatly format logs
    #[arg(long)]
    pub raw: bool,
    #[arg(value_name = "SERVICE|TASK")]
    pub target: String,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(
        short = 'd',
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "bool"
    )]
    pub detach: Option<bool>,
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    pub scales: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

pub async fn run(opts: &ClientOpts, cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Create(a) => create(opts, *a).await,
        ServiceCommand::Inspect(a) => inspect(opts, a).await,
        ServiceCommand::Logs(a) => logs(opts, a).await,
        ServiceCommand::Ls(a) => ls(opts, a).await,
        ServiceCommand::Ps(a) => task::service_ps(opts, a).await,
        ServiceCommand::Rm(a) => rm(opts, a).await,
        ServiceCommand::Scale(a) => scale(opts, a).await,
    }
}

/// Prints all but the last error (one line each) and returns the last, so
/// every failure shows and the exit status is non-zero, as Docker does.
fn report_errors(mut errors: Vec<anyhow::Error>) -> anyhow::Result<()> {
    match errors.pop() {
        None => Ok(()),
        Some(last) => {
            for e in errors {
                eprintln!("{e}");
            }
            Err(last)
        }
    }
}

fn service_name(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

async fn get_service(
    services: &mut ServicesClient<Channel>,
    service_ref: &str,
) -> anyhow::Result<Service> {
    services
        .get_service(GetServiceRequest {
            service_ref: service_ref.to_string(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| match s.code() {
            tonic::Code::NotFound => anyhow::anyhow!("no such service: {service_ref}"),
            _ => status_error(s),
        })
}

// ---- create --------------------------------------------------------------

async fn create(opts: &ClientOpts, a: CreateArgs) -> anyhow::Result<()> {
    let (image, args) = a
        .image_and_args
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("\"service create\" requires at least 1 argument"))?;
    // Everything is parsed and checked before the first call.
    if let Some(flag) = a.flags.not_yet_honoured() {
        anyhow::bail!(
            "{flag} is not supported yet: rswarm does not run health checks or rolling updates yet, so the setting would be ignored"
        );
    }
    let spec = a.flags.to_spec(image, args)?;
    // The manager has the final word; refusing early avoids sending 1 MB.
    rswarm_manager::controlapi::limits::check_spec(&spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let service = services
        .create_service(CreateServiceRequest { spec: Some(spec) })
        .await
        .map_err(status_error)?
        .into_inner();
    println!("{}", service.id);
    if a.detach.unwrap_or(false) {
        return Ok(());
    }
    let mut control = ControlClient::new(channel);
    match wait_for_convergence(&mut services, &mut control, &service.id, a.quiet, false).await {
        // The service exists: losing sight of its progress is not a failure
        // of the create.
        Err(e) if e.is::<ProgressLost>() => {
            eprintln!(
                "service {} was created, but its progress could not be followed: {e}",
                service.id
            );
            Ok(())
        }
        other => other,
    }
}

/// A call made only to follow a service's progress failed (the service
/// itself is fine).
#[derive(Debug)]
struct ProgressLost(anyhow::Error);

impl std::fmt::Display for ProgressLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for ProgressLost {}

fn lost(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(ProgressLost(e))
}

// ---- convergence progress ------------------------------------------------

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
struct ProgressLine {
    label: String,
    state: TaskState,
    /// The task's error or the scheduler's reason, shown instead of a bar.
    reason: String,
}

/// What one look at a service's tasks shows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    header: String,
    lines: Vec<ProgressLine>,
    /// Most progress a line can show (9 for services, 10 for jobs).
    max_progress: u32,
    done: bool,
    is_job: bool,
    /// A task that failed or was rejected: the error to exit with.
    failure: Option<String>,
    /// Every unfinished task waits on the scheduler with a reason.
    blocked: bool,
    /// The first unfinished task and why, for a timeout message.
    waiting_on: Option<String>,
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
fn snapshot(
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
struct ProgressWriter {
    quiet: bool,
    tty: bool,
    drawn: usize,
    printed: Vec<String>,
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

    fn render_line(&self, line: &ProgressLine, max: u32) -> String {
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
async fn wait_for_convergence(
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
        let tasks = super::lists::all_tasks(
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

// ---- ls ------------------------------------------------------------------

/// One `service ls --filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServiceFilter {
    Id(String),
    Name(String),
    Mode(ModeKind),
    Label(String, Option<String>),
}

fn parse_service_filters(raw: &[String]) -> anyhow::Result<Vec<ServiceFilter>> {
    raw.iter()
        .map(|f| {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("bad format of filter (expected name=value): {f}")
            })?;
            Ok(match k {
                "id" => ServiceFilter::Id(v.to_string()),
                "name" => ServiceFilter::Name(v.to_string()),
                "mode" => ServiceFilter::Mode(ModeKind::parse(v).map_err(|_| {
                    anyhow::anyhow!(
                        "invalid filter 'mode={v}': must be replicated, global, replicated-job or global-job"
                    )
                })?),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => ServiceFilter::Label(lk.to_string(), Some(lv.to_string())),
                    None => ServiceFilter::Label(v.to_string(), None),
                },
                _ => anyhow::bail!("invalid filter '{k}'"),
            })
        })
        .collect()
}

/// Values of one key are ORed, keys ANDed (Docker's rule).
fn service_matches(service: &Service, filters: &[ServiceFilter]) -> bool {
    let kind = |f: &ServiceFilter| std::mem::discriminant(f);
    let kinds: HashSet<_> = filters.iter().map(kind).collect();
    let spec = service.spec.as_ref();
    let labels = spec.and_then(|s| s.annotations.as_ref()).map(|a| &a.labels);
    kinds.into_iter().all(|k| {
        filters.iter().filter(|f| kind(f) == k).any(|f| match f {
            ServiceFilter::Id(p) => service.id.starts_with(p.as_str()),
            ServiceFilter::Name(p) => service_name(service).starts_with(p.as_str()),
            ServiceFilter::Mode(m) => ModeKind::of(spec.and_then(|s| s.mode.as_ref())) == *m,
            ServiceFilter::Label(k, v) => match (labels.and_then(|l| l.get(k)), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            },
        })
    })
}

async fn ls(opts: &ClientOpts, a: LsArgs) -> anyhow::Result<()> {
    let filters = parse_service_filters(&a.filter)?;
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let mut list = super::lists::all_services(&mut services).await?;
    list.retain(|s| service_matches(s, &filters));
    let mut counts: HashMap<String, ServiceCounts> = HashMap::new();
    if !a.quiet && !list.is_empty() {
        let tasks = super::lists::all_tasks(&mut services, ListTasksRequest::default()).await?;
        let (_, down) = node_directory(&mut ControlClient::new(channel)).await?;
        counts = list
            .iter()
            .map(|s| (s.id.clone(), service_counts(s, &tasks, &down)))
            .collect();
    }
    print!(
        "{}",
        format::services::render_service_list(&list, &counts, a.format.as_deref(), a.quiet)?
    );
    Ok(())
}

// ---- inspect -------------------------------------------------------------

async fn inspect(opts: &ClientOpts, a: InspectArgs) -> anyhow::Result<()> {
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for r in &a.services {
        match get_service(&mut services, r).await {
            Ok(s) => found.push(s),
            Err(e) => errors.push(e),
        }
    }
    if found.is_empty() {
        // Docker still prints the empty JSON array when nothing was found.
        if a.format.as_deref().is_none_or(str::is_empty) && !a.pretty {
            println!("[]");
        }
    } else {
        print!(
            "{}",
            format::services::render_service_inspect(
                &found,
                a.format.as_deref(),
                a.pretty,
                now_nanos()
            )?
        );
    }
    report_errors(errors)
}

// ---- rm ------------------------------------------------------------------

async fn rm(opts: &ClientOpts, a: RmArgs) -> anyhow::Result<()> {
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel);
    let mut errors = Vec::new();
    for r in &a.services {
        match services
            .remove_service(RemoveServiceRequest {
                service_ref: r.clone(),
            })
            .await
        {
            Ok(_) => println!("{r}"),
            Err(s) if s.code() == tonic::Code::NotFound => {
                errors.push(anyhow::anyhow!("no such service: {r}"));
            }
            Err(s) => errors.push(status_error(s)),
        }
    }
    report_errors(errors)
}

// ---- scale ---------------------------------------------------------------

/// `SERVICE=REPLICAS` arguments, all checked before any call.
fn parse_scales(raw: &[String]) -> anyhow::Result<Vec<(String, u64)>> {
    raw.iter()
        .map(|arg| {
            let (name, n) = arg
                .split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("invalid scale specifier '{arg}': expected SERVICE=REPLICAS")
                })?;
            let n = parse_uint(n)
                .map_err(|e| anyhow::anyhow!("{name}: invalid replicas value {n}: {e}"))?;
            // The manager checks too; refusing here changes nothing at all.
            rswarm_manager::controlapi::limits::check_replicas("replicas", n)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            Ok((name.to_string(), n))
        })
        .collect()
}

async fn scale(opts: &ClientOpts, a: ScaleArgs) -> anyhow::Result<()> {
    let scales = parse_scales(&a.scales)?;
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let mut control = ControlClient::new(channel);
    let mut errors = Vec::new();
    for (name, replicas) in scales {
        let result: anyhow::Result<()> = async {
            let service = get_service(&mut services, &name).await?;
            let mut spec = service.spec.clone().unwrap_or_default();
            match spec.mode.as_mut() {
                Some(Mode::Replicated(r)) => r.replicas = replicas,
                Some(Mode::ReplicatedJob(j)) => j.total_completions = replicas,
                _ => anyhow::bail!("scale can only be used with replicated or replicated-job mode"),
            }
            // The service may change meanwhile without its spec changing
            // (the allocator's VIPs, a job's status): send again on the new
            // version; a spec someone else changed is a conflict.
            let mut version = service.meta.as_ref().and_then(|m| m.version);
            let mut attempts = 0;
            loop {
                let res = services
                    .update_service(UpdateServiceRequest {
                        service_ref: service.id.clone(),
                        version,
                        spec: Some(spec.clone()),
                        rollback: false,
                    })
                    .await;
                match res {
                    Ok(_) => break,
                    Err(s) if s.message().contains("out of sequence") && attempts < 5 => {
                        attempts += 1;
                        let fresh = get_service(&mut services, &service.id).await?;
                        if fresh.spec != service.spec {
                            return Err(status_error(s));
                        }
                        version = fresh.meta.as_ref().and_then(|m| m.version);
                    }
                    Err(s) => return Err(status_error(s)),
                }
            }
            println!("{name} scaled to {replicas}");
            if !a.detach.unwrap_or(false) {
                wait_for_convergence(&mut services, &mut control, &service.id, false, true).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            errors.push(anyhow::anyhow!("{name}: {e}"));
        }
    }
    report_errors(errors)
}

// ---- logs ----------------------------------------------------------------

/// `--tail`: "all" or a number of lines.
fn parse_tail(value: &str) -> anyhow::Result<i64> {
    if value == "all" {
        return Ok(-1);
    }
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            anyhow::anyhow!("invalid value {value:?} for --tail: a number of lines or \"all\"")
        })
}

/// `--since`: an RFC 3339 time, unix seconds, or a duration before `now`.
fn parse_since(value: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    match crate::servicespec::units::parse_duration_ns(value) {
        Ok(d) => Ok(now - d),
        Err(_) => anyhow::bail!(
            "invalid value {value:?} for --since: a time (2013-01-02T13:23:37Z), unix seconds or a duration (42m)"
        ),
    }
}

/// Docker's fixed-width log timestamp: nine fractional digits.
fn log_timestamp(unix_nanos: i64) -> String {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let nanos = unix_nanos.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => format!("{}.{nanos:09}Z", t.format("%Y-%m-%dT%H:%M:%S")),
        None => String::new(),
    }
}

/// How `service logs` names the task a line came from.
struct LogContext<'a> {
    node_names: &'a HashMap<String, String>,
    /// Digits of the widest slot number, for alignment.
    padding: usize,
    no_task_ids: bool,
    no_trunc: bool,
    no_resolve: bool,
}

/// Docker's prefix: `web.1.x7k2p9q4m1n8@host2    | `, the task name padded
/// so slots of different widths line up.
fn log_prefix(line: &LogLine, service_name: &str, ctx: &LogContext<'_>) -> String {
    let mut name = if ctx.no_resolve {
        format!("{}.{}", line.service_id, line.slot)
    } else if !line.task_name.is_empty() {
        line.task_name.clone()
    } else {
        format!("{service_name}.{}", line.slot)
    };
    if !ctx.no_task_ids {
        let id = if ctx.no_trunc {
            line.task_id.as_str()
        } else {
            short_id(&line.task_id)
        };
        name = format!("{name}.{id}");
    }
    let node = if ctx.no_resolve {
        line.node_id.clone()
    } else if !line.node_name.is_empty() {
        line.node_name.clone()
    } else {
        ctx.node_names
            .get(&line.node_id)
            .cloned()
            .unwrap_or_else(|| line.node_id.clone())
    };
    let padding = ctx.padding.saturating_sub(line.slot.to_string().len());
    format!("{name}@{node}{}    | ", " ".repeat(padding))
}

async fn logs(opts: &ClientOpts, a: LogsArgs) -> anyhow::Result<()> {
    let tail = parse_tail(&a.tail)?;
    let since_ns = a
        .since
        .as_deref()
        .map(|s| parse_since(s, now_nanos()))
        .transpose()?
        .unwrap_or(0);
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let (selector, service_name, padding) = match get_service(&mut services, &a.target).await {
        Ok(service) => {
            let padding = match service.spec.as_ref().and_then(|s| s.mode.as_ref()) {
                Some(Mode::Replicated(r)) => r.replicas.to_string().len(),
                Some(Mode::ReplicatedJob(j)) => j.total_completions.to_string().len(),
                _ => 1,
            };
            let name = service_name(&service).to_string();
            let selector = LogSelector {
                service_refs: vec![service.id],
                task_refs: vec![],
            };
            (selector, name, padding)
        }
        Err(_) => {
            let t = services
                .get_task(GetTaskRequest {
                    task_ref: a.target.clone(),
                })
                .await
                .map_err(|s| match s.code() {
                    tonic::Code::NotFound => {
                        anyhow::anyhow!("no such task or service: {}", a.target)
                    }
                    _ => status_error(s),
                })?
                .into_inner();
            let name = t
                .service_annotations
                .as_ref()
                .map(|an| an.name.clone())
                .unwrap_or_default();
            let selector = LogSelector {
                service_refs: vec![],
                task_refs: vec![t.id],
            };
            (selector, name, t.slot.to_string().len())
        }
    };
    let (node_names, _) = node_directory(&mut ControlClient::new(channel)).await?;
    let ctx = LogContext {
        node_names: &node_names,
        padding,
        no_task_ids: a.no_task_ids,
        no_trunc: a.no_trunc,
        no_resolve: a.no_resolve,
    };
    let mut stream = services
        .logs(LogsRequest {
            selector: Some(selector),
            follow: a.follow,
            tail,
            since_ns,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut warned = HashSet::new();
    while let Some(response) = stream.message().await.map_err(status_error)? {
        for w in response.warnings {
            if warned.insert(w.clone()) {
                eprintln!("{w}");
            }
        }
        let mut stdout = std::io::stdout().lock();
        let mut stderr = std::io::stderr().lock();
        for line in &response.lines {
            let mut text = Vec::new();
            if a.timestamps {
                text.extend_from_slice(log_timestamp(line.timestamp).as_bytes());
                text.push(b' ');
            }
            if !a.raw {
                text.extend_from_slice(log_prefix(line, &service_name, &ctx).as_bytes());
            }
            // One line per entry; drop the line's own end if it kept it.
            let data = line.data.strip_suffix(b"\n").unwrap_or(&line.data);
            let data = data.strip_suffix(b"\r").unwrap_or(data);
            text.extend_from_slice(data);
            text.push(b'\n');
            let written = if line.stream == 2 {
                stderr.write_all(&text)
            } else {
                stdout.write_all(&text)
            };
            if written.is_err() {
                // The reader went away (`| head`): stop quietly.
                return Ok(());
            }
        }
        let _ = stdout.flush();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
