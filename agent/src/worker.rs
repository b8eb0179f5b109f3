//! The worker: keeps this node's tasks in line with the leader's
//! assignments. It holds the Assignments stream (a complete set, then
//! changes, with the secrets and configs the tasks need: those go to the
//! in-memory `taskfiles`), runs one task driver per task, adopts containers
//! that survived an agent restart, removes containers no assignment claims,
//! and serves the leader's log and exec requests for local tasks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::dispatcher::assignment_change::Action;
use rswarm_proto::dispatcher::assignments_message::Type as MsgType;
use rswarm_proto::dispatcher::tasks_client::TasksClient;
use rswarm_proto::dispatcher::{AssignmentsRequest, SubscriptionsRequest};
use rswarm_proto::types::{Task, TaskState};
use tokio::sync::{mpsc, watch, Mutex};

use crate::exec::taskstate::{self, Report};
use crate::exec::Controller;
use crate::session::LeaderChannel;
use crate::subscriptions;

/// What the worker needs besides the leader channel.
#[derive(Clone)]
pub(crate) struct WorkerDeps {
    pub controller: Arc<dyn Controller>,
    pub runtime: Arc<crate::runtime::Runtime>,
    /// Overlay networking, fed from the leader's network state.
    pub netplane: Option<Arc<crate::netplane::NetPlane>>,
    /// Where the secrets and configs of the stream go (memory only).
    pub files: Arc<crate::taskfiles::TaskFiles>,
    /// The tasks driven here, as the metrics read them.
    pub tasks: Arc<crate::metrics::TaskTable>,
}

struct Running {
    updates: watch::Sender<Task>,
}

pub(crate) fn spawn(
    deps: WorkerDeps,
    leader: watch::Receiver<LeaderChannel>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(deps, leader))
}

async fn run(deps: WorkerDeps, mut leader: watch::Receiver<LeaderChannel>) {
    let (to_reporter, report_rx) = mpsc::unbounded_channel::<Report>();
    let _reporter = AbortOnDrop(crate::reporter::spawn(report_rx, leader.clone()));
    // Every report passes the metrics' task table on its way.
    let (report_tx, mut reports) = mpsc::unbounded_channel::<Report>();
    let table = deps.tasks.clone();
    let _tap = AbortOnDrop(tokio::spawn(async move {
        while let Some(r) = reports.recv().await {
            table.observe(&r.task_id, &r.status);
            if to_reporter.send(r).is_err() {
                return;
            }
        }
    }));
    let tasks: Arc<Mutex<HashMap<String, Running>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut first_complete_seen = false;
    loop {
        let channel = loop {
            if let Some((_, ch)) = leader.borrow_and_update().clone() {
                break ch;
            }
            if leader.changed().await.is_err() {
                return;
            }
        };
        let mut client = TasksClient::new(channel.clone());
        // Requests for logs and exec ride their own stream.
        let subs = match client.subscriptions(SubscriptionsRequest {}).await {
            Ok(s) => Some(AbortOnDrop(subscriptions::spawn(
                s.into_inner(),
                channel.clone(),
                deps.runtime.clone(),
            ))),
            Err(e) => {
                tracing::debug!(error = %e.message(), "subscriptions stream");
                None
            }
        };
        let _netstate = deps.netplane.clone().map(|plane| {
            let channel = channel.clone();
            AbortOnDrop(tokio::spawn(async move {
                let mut client =
                    rswarm_proto::dispatcher::network_state_client::NetworkStateClient::new(
                        channel,
                    );
                match client
                    .watch(rswarm_proto::dispatcher::NetworkStateRequest {})
                    .await
                {
                    Ok(s) => {
                        let mut s = s.into_inner();
                        while let Ok(Some(msg)) = s.message().await {
                            plane.apply(msg).await;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e.message(), "network state stream"),
                }
            }))
        });
        let stream = client.assignments(AssignmentsRequest {}).await;
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(e) => {
                tracing::debug!(error = %e.message(), "assignments stream");
                drop(subs);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = leader.changed() => { break; }
            };
            let msg = match msg {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e.message(), "assignments stream ended");
                    break;
                }
            };
            let mut map = tasks.lock().await;
            // Secrets and configs come before the tasks that use them.
            deps.files
                .apply(msg.r#type == MsgType::Complete as i32, &msg.changes);
            if msg.r#type == MsgType::Complete as i32 {
                let keep: HashSet<String> = msg
                    .changes
                    .iter()
                    .filter_map(|c| c.task.as_ref().map(|t| t.id.clone()))
                    .collect();
                // Tasks no longer assigned here: their drivers stop and remove them.
                let gone: Vec<String> = map
                    .keys()
                    .filter(|id| !keep.contains(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    if let Some(r) = map.remove(&id) {
                        unassign(&r);
                    }
                }
                if !first_complete_seen {
                    first_complete_seen = true;
                    remove_orphans(&deps, &keep).await;
                }
            }
            for change in msg.changes {
                let Some(task) = change.task else { continue };
                if change.action == Action::Remove as i32 {
                    if let Some(r) = map.remove(&task.id) {
                        unassign(&r);
                    }
                    continue;
                }
                match map.get(&task.id) {
                    Some(r) if !r.updates.is_closed() => {
                        deps.tasks.track(&task);
                        let _ = r.updates.send(task);
                    }
                    _ => {
                        // A task that already ended and is not to be removed needs no driver,
                        // unless its container is still there to clean up.
                        let (tx, rx) = watch::channel(task.clone());
                        map.insert(task.id.clone(), Running { updates: tx });
                        let ctl = deps.controller.clone();
                        let reports = report_tx.clone();
                        let all = tasks.clone();
                        let id = task.id.clone();
                        let table = deps.tasks.clone();
                        table.track(&task);
                        tokio::spawn(async move {
                            taskstate::drive(ctl, task, rx, reports).await;
                            table.forget(&id);
                            let mut m = all.lock().await;
                            if m.get(&id)
                                .map(|r| r.updates.receiver_count() == 0)
                                .unwrap_or(false)
                            {
                                m.remove(&id);
                            }
                        });
                    }
                }
            }
        }
        drop(subs);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Tell a driver its task is no longer assigned here: it stops and removes
/// the container. (A driver whose channel merely closes, because the agent
/// is stopping, leaves its container alone: live restore.)
fn unassign(r: &Running) {
    let mut t = r.updates.borrow().clone();
    t.desired_state = TaskState::Remove as i32;
    let _ = r.updates.send(t);
}

/// Containers on disk that no assignment claims (their tasks were deleted
/// while this agent was away) are stopped and removed, all at once and in
/// the background: each may take its whole stop grace period, and the
/// worker must go on with its assignments meanwhile.
async fn remove_orphans(deps: &WorkerDeps, assigned: &HashSet<String>) {
    let ids = match deps.runtime.list() {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "listing containers");
            return;
        }
    };
    let unclaimed = ids.into_iter().filter(|id| !assigned.contains(id));
    stop_unclaimed(deps.controller.clone(), unclaimed);
}

/// Stop and remove each container in `ids` on a task of its own; returns at
/// once with their handles.
fn stop_unclaimed(
    controller: Arc<dyn Controller>,
    ids: impl IntoIterator<Item = String>,
) -> Vec<tokio::task::JoinHandle<()>> {
    ids.into_iter()
        .map(|id| {
            tracing::info!(container = %id, "removing a container no task claims");
            let controller = controller.clone();
            tokio::spawn(async move {
                let task = Task {
                    id: id.clone(),
                    desired_state: TaskState::Remove as i32,
                    ..Default::default()
                };
                if let Err(e) = controller.shutdown(&task).await {
                    tracing::warn!(container = %id, error = %e, "stopping a container no task claims");
                }
                if let Err(e) = controller.remove(&task).await {
                    tracing::warn!(container = %id, error = %e, "removing a container no task claims");
                }
            })
        })
        .collect()
}

/// Aborts a helper task when the worker that owns it goes (the worker itself
/// is aborted when the agent stops).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod unclaimed_tests;
