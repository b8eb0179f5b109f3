//! The task state machine, driven in one place. A task assigned to this
//! node moves ACCEPTED → PREPARING → READY → STARTING → RUNNING and ends
//! COMPLETE (exit 0), FAILED (non-zero exit, OOM), REJECTED (could not be
//! prepared) or SHUTDOWN (the manager asked it to stop). The driver only
//! moves forward, reports every transition, and follows the desired state
//! the manager sends (RUNNING/COMPLETE to run, SHUTDOWN to stop, REMOVE to
//! clean up). A container found already running (live restore) is adopted;
//! a task whose container is gone once made, or whose container's state
//! cannot be read, fails rather than run a second container. Once a stop is
//! asked, a container not yet started never starts; a running one is
//! drained (out of its VIPs, the routing mesh and DNS) before it gets its
//! stop signal, whether the manager stops it or its health check failed.

use std::sync::Arc;
use std::time::Instant;

use rswarm_proto::types::{ContainerStatus, Task, TaskState, TaskStatus};
use tokio::sync::{mpsc, watch};

use super::health::{Check, Health, Tracker};
use super::{Controller, ExecError, Existing, Exit};

/// A status report for the manager.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    pub task_id: String,
    pub status: TaskStatus,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn state_of(task: &Task) -> i32 {
    task.status.as_ref().map(|s| s.state).unwrap_or(0)
}

fn wants_stop(task: &Task) -> bool {
    task.desired_state >= TaskState::Shutdown as i32
}

fn wants_remove(task: &Task) -> bool {
    task.desired_state >= TaskState::Remove as i32
}

/// The exit as Swarm shows it: COMPLETE for 0, FAILED otherwise with
/// Docker's "task: non-zero exit (N)".
pub(crate) fn exit_status(exit: &Exit) -> (TaskState, String, String) {
    if exit.oom_killed {
        let code = exit.code.unwrap_or(137);
        return (
            TaskState::Failed,
            "failed".into(),
            format!(
                "task: non-zero exit ({code}): OOM killed: the container exceeded its memory limit"
            ),
        );
    }
    match exit.code {
        Some(0) => (TaskState::Complete, "finished".into(), String::new()),
        Some(code) => (
            TaskState::Failed,
            "failed".into(),
            format!("task: non-zero exit ({code})"),
        ),
        None => (
            TaskState::Failed,
            "failed".into(),
            "task: the container exited while the agent was not running (exit code unknown)".into(),
        ),
    }
}

/// Docker's error for a task failed by its health check.
pub(crate) fn unhealthy_error(exit: &Exit) -> String {
    match exit.code {
        Some(code) => format!("task: non-zero exit ({code}): dockerexec: unhealthy container"),
        None => "dockerexec: unhealthy container".into(),
    }
}

struct Driver {
    ctl: Arc<dyn Controller>,
    reports: mpsc::UnboundedSender<Report>,
    task: Task,
    state: i32,
    container_status: Option<ContainerStatus>,
    /// When the current state was entered (unix ns), 0 before a report.
    since: i64,
    /// The task's health check, once it is known to run.
    check: Option<Check>,
    /// "" without a check, else "starting", "healthy" or "unhealthy".
    health: String,
    health_output: String,
    failing_streak: u32,
}

/// How a running task stopped running.
enum End {
    Exited(Result<Exit, ExecError>),
    Stop,
    Unhealthy,
}

impl Driver {
    async fn report(&mut self, state: TaskState, message: &str, err: &str) {
        if (state as i32) < self.state {
            return;
        }
        // The timestamp is the last state change's: a health report within
        // RUNNING keeps it ("Running 5 minutes ago (healthy)").
        if state as i32 != self.state || self.since == 0 {
            self.since = now_nanos();
        }
        self.state = state as i32;
        let status = TaskStatus {
            timestamp: self.since,
            state: state as i32,
            message: message.to_string(),
            err: err.to_string(),
            container_status: self.container_status.clone(),
            ports: vec![],
            health: self.health.clone(),
            health_output: self.health_output.clone(),
            health_failing_streak: i32::try_from(self.failing_streak).unwrap_or(i32::MAX),
        };
        // Never waits: a slow leader must not hold up the task's progress.
        let _ = self.reports.send(Report {
            task_id: self.task.id.clone(),
            status,
        });
    }

    /// About to report RUNNING: a task with a health check is "starting"
    /// from its first RUNNING report on, so it never enters a load balancer
    /// before its first passing probe.
    fn arm_health(&mut self) {
        self.check = self.ctl.health_check(&self.task);
        if self.check.is_some() {
            self.health = Health::Starting.as_str().to_string();
        }
    }

    /// Runs the task's health probes until its process ends, the manager
    /// asks it to stop, or it turns unhealthy; health changes are reported
    /// as they happen (the state stays RUNNING).
    async fn run(&mut self, updates: &mut watch::Receiver<Task>) -> End {
        let (ctl, task, check) = (self.ctl.clone(), self.task.clone(), self.check.clone());
        let started = Instant::now();
        let mut tracker = check.as_ref().map(|c| Tracker::new(c, started));
        let wait = ctl.wait(&task);
        tokio::pin!(wait);
        let stop = wait_stop(updates);
        tokio::pin!(stop);
        loop {
            let status = tracker.as_ref().map_or(Health::Starting, Tracker::status);
            let probe = async {
                let Some(c) = &check else {
                    return std::future::pending().await;
                };
                tokio::time::sleep(c.next_delay(started.elapsed(), status)).await;
                let at = Instant::now();
                (at, ctl.probe(&task, &c.args, c.timeout).await)
            };
            tokio::select! {
                r = &mut wait => return End::Exited(r),
                _ = &mut stop => return End::Stop,
                (at, p) = probe => {
                    let Some(t) = tracker.as_mut() else { continue };
                    let streak_before = t.failing_streak();
                    let changed = t.observe(at, p.passed());
                    self.failing_streak = t.failing_streak();
                    self.health_output = p.output;
                    if changed || streak_before != self.failing_streak {
                        self.health = t.status().as_str().to_string();
                        self.report(TaskState::Running, "started", "").await;
                    }
                    if t.status() == Health::Unhealthy {
                        tracing::info!(task = %task.id, "the task is unhealthy");
                        return End::Unhealthy;
                    }
                }
            }
        }
    }

    fn note_exit(&mut self, exit: &Exit) {
        if let Some(cs) = self.container_status.as_mut() {
            cs.exit_code = exit.code.unwrap_or(-1);
            cs.oom_killed = exit.oom_killed;
        }
    }
}

/// Drive one task until it ends and the manager no longer wants it. `updates`
/// carries new versions of the task (desired state changes); it closes when
/// the task is no longer assigned here, which removes the container.
pub(crate) async fn drive(
    ctl: Arc<dyn Controller>,
    task: Task,
    mut updates: watch::Receiver<Task>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut d = Driver {
        state: state_of(&task),
        container_status: task
            .status
            .as_ref()
            .and_then(|s| s.container_status.clone()),
        ctl,
        reports,
        task,
        since: 0,
        check: None,
        health: String::new(),
        health_output: String::new(),
        failing_streak: 0,
    };
    let id = d.task.id.clone();
    let container_id = id.clone();
    let terminal = |s: i32| s >= TaskState::Complete as i32;

    // Adopt what is already there (agent restart), else run from the start.
    let existing = d.ctl.inspect(&d.task).await;
    let found_running = matches!(existing, Ok(Some(Existing::Running { .. })));
    let mut running = false;
    if !terminal(d.state) && !wants_stop(&d.task) {
        match existing {
            Err(e) => {
                // Whether a container runs cannot be told: making another
                // one could run the task twice. It fails; the orchestrator
                // replaces it.
                tracing::warn!(task = %id, error = %e, "inspecting the task's container");
                let err = format!("cannot read the state of the task's container: {e}");
                d.report(TaskState::Failed, "failed", &err).await;
            }
            Ok(None) if d.state >= TaskState::Ready as i32 => {
                // Its container was made and is gone (deleted behind the
                // agent's back): the task is not run again under the same
                // ID; it fails, as Docker's does, and the orchestrator
                // replaces it.
                let err = format!("No such container: {container_id}");
                tracing::warn!(task = %id, "the task's container is gone");
                d.report(TaskState::Failed, "failed", &err).await;
            }
            Ok(Some(Existing::Running { pid })) => {
                d.container_status = Some(ContainerStatus {
                    container_id: container_id.clone(),
                    pid: pid as i32,
                    ..Default::default()
                });
                d.arm_health();
                d.report(TaskState::Running, "started", "").await;
                running = true;
            }
            Ok(Some(Existing::Stopped)) if d.state >= TaskState::Running as i32 => {
                let exit = d.ctl.wait(&d.task).await.unwrap_or(Exit {
                    code: None,
                    oom_killed: false,
                });
                let (state, msg, err) = exit_status(&exit);
                if let Some(cs) = d.container_status.as_mut() {
                    cs.exit_code = exit.code.unwrap_or(-1);
                    cs.oom_killed = exit.oom_killed;
                }
                d.report(state, &msg, &err).await;
            }
            Ok(existing) => {
                // Fresh (or a container left half-made): start over cleanly.
                if existing.is_some() {
                    let _ = d.ctl.remove(&d.task).await;
                }
                d.report(TaskState::Accepted, "accepted", "").await;
                d.report(TaskState::Preparing, "preparing", "").await;
                // A prepare is never dropped half-way: `runc create` would
                // go on without us and leave a `created` container behind.
                // A stop that comes meanwhile waits for it, then deletes
                // the container it made.
                let (ctl, task) = (d.ctl.clone(), d.task.clone());
                let prepare = ctl.prepare(&task);
                tokio::pin!(prepare);
                let prepared = tokio::select! {
                    r = &mut prepare => Some(r),
                    _ = wait_stop(&mut updates) => {
                        if prepare.await.is_ok() {
                            if let Err(e) = d.ctl.shutdown(&d.task).await {
                                tracing::warn!(task = %id, error = %e, "deleting a container that was not started");
                            }
                        }
                        None
                    }
                };
                // The stop may have come as the prepare ended (both ready
                // at once, and the prepare taken): once a stop is asked,
                // the container never starts.
                let prepared = match prepared {
                    Some(Ok(())) if wants_stop(&updates.borrow()) => {
                        if let Err(e) = d.ctl.shutdown(&d.task).await {
                            tracing::warn!(task = %id, error = %e, "deleting a container that was not started");
                        }
                        None
                    }
                    other => other,
                };
                match prepared {
                    None => {
                        d.report(TaskState::Shutdown, "shutdown before start", "")
                            .await;
                    }
                    Some(Err(e)) => {
                        let (state, text) = match &e {
                            ExecError::Rejected(m) => (TaskState::Rejected, m.clone()),
                            ExecError::Failed(m) => (TaskState::Rejected, m.clone()),
                        };
                        tracing::warn!(task = %id, error = %text, "task could not be prepared");
                        d.report(state, "rejected", &text).await;
                    }
                    Some(Ok(())) => {
                        d.report(TaskState::Ready, "prepared", "").await;
                        d.report(TaskState::Starting, "starting", "").await;
                        match d.ctl.start(&d.task).await {
                            Ok(pid) => {
                                d.container_status = Some(ContainerStatus {
                                    container_id: container_id.clone(),
                                    pid: pid as i32,
                                    ..Default::default()
                                });
                                d.arm_health();
                                d.report(TaskState::Running, "started", "").await;
                                running = true;
                            }
                            Err(e) => {
                                // Not left `created` (runc init waiting) until removal.
                                if let Err(e) = d.ctl.shutdown(&d.task).await {
                                    tracing::warn!(task = %id, error = %e, "deleting a container that did not start");
                                }
                                d.report(TaskState::Failed, "starting failed", &e.to_string())
                                    .await;
                            }
                        }
                    }
                }
            }
        }
    }

    if running {
        match d.run(&mut updates).await {
            End::Exited(r) => {
                let exit = r.unwrap_or(Exit {
                    code: None,
                    oom_killed: false,
                });
                let (state, msg, err) = exit_status(&exit);
                d.note_exit(&exit);
                d.report(state, &msg, &err).await;
            }
            End::Stop => {
                // Out of the VIPs, the mesh and DNS first (the manager took
                // it out when it asked for the stop), then the stop signal:
                // no new connection is sent to a task that is stopping.
                d.ctl.drain(&d.task).await;
                if let Err(e) = d.ctl.shutdown(&d.task).await {
                    tracing::warn!(task = %id, error = %e, "stopping the task");
                }
                if let Ok(exit) = d.ctl.wait(&d.task).await {
                    if let Some(cs) = d.container_status.as_mut() {
                        cs.exit_code = exit.code.unwrap_or(-1);
                    }
                }
                d.report(TaskState::Shutdown, "shutdown", "").await;
            }
            End::Unhealthy => {
                // Out of the VIPs, the mesh and DNS first (the manager has
                // the "unhealthy" report), then stopped and failed as
                // Docker fails it, so the restart policy replaces it.
                d.ctl.drain(&d.task).await;
                if let Err(e) = d.ctl.shutdown(&d.task).await {
                    tracing::warn!(task = %id, error = %e, "stopping an unhealthy task");
                }
                let exit = d.ctl.wait(&d.task).await.unwrap_or(Exit {
                    code: None,
                    oom_killed: false,
                });
                d.note_exit(&exit);
                d.report(TaskState::Failed, "unhealthy", &unhealthy_error(&exit))
                    .await;
            }
        }
    } else if wants_stop(&updates.borrow()) && !terminal(d.state) {
        let _ = d.ctl.shutdown(&d.task).await;
        d.report(TaskState::Shutdown, "shutdown", "").await;
    } else if found_running && terminal(d.state) {
        // The store has the task ended (it was given up on while this agent
        // was away) yet its container runs: it is replaced elsewhere, so it
        // stops here.
        tracing::info!(task = %id, "stopping the container of a task that has ended");
        if let Err(e) = d.ctl.shutdown(&d.task).await {
            tracing::warn!(task = %id, error = %e, "stopping the task");
        }
    }

    // Terminal: keep the stopped container (for logs and inspection) until
    // the manager removes the task or its service.
    loop {
        if wants_remove(&updates.borrow()) {
            break;
        }
        if updates.changed().await.is_err() {
            return; // the agent is stopping: leave the container as it is
        }
    }
    if let Err(e) = d.ctl.remove(&d.task).await {
        tracing::warn!(task = %id, error = %e, "removing the task's container");
    }
}

/// Resolves when the manager wants the task stopped (or removed). If the
/// agent stops meanwhile (the channel closes) it never resolves: running
/// containers are left running for the next agent to adopt.
async fn wait_stop(updates: &mut watch::Receiver<Task>) {
    loop {
        if wants_stop(&updates.borrow_and_update()) {
            return;
        }
        if updates.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_map_to_swarm_states() {
        let ok = exit_status(&Exit {
            code: Some(0),
            oom_killed: false,
        });
        assert_eq!(ok.0, TaskState::Complete);
        let bad = exit_status(&Exit {
            code: Some(3),
            oom_killed: false,
        });
        assert_eq!(
            (bad.0, bad.2.as_str()),
            (TaskState::Failed, "task: non-zero exit (3)")
        );
        let oom = exit_status(&Exit {
            code: Some(137),
            oom_killed: true,
        });
        assert!(oom.2.contains("OOM"));
        let unknown = exit_status(&Exit {
            code: None,
            oom_killed: false,
        });
        assert_eq!(unknown.0, TaskState::Failed);
    }
}
