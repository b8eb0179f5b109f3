//! Batched task status reports: drivers hand in transitions, the reporter
//! keeps the latest per task and sends them to the leader every 25 ms in
//! one UpdateTaskStatus call, keeping them until the leader has them.

use std::collections::BTreeMap;
use std::time::Duration;

use rswarm_proto::dispatcher::tasks_client::TasksClient;
use rswarm_proto::dispatcher::{TaskStatusUpdate, UpdateTaskStatusRequest};
use rswarm_proto::types::TaskStatus;
use tokio::sync::{mpsc, watch};

use crate::exec::taskstate::Report;
use crate::session::LeaderChannel;

const FLUSH_EVERY: Duration = Duration::from_millis(25);

pub fn spawn(
    mut reports: mpsc::Receiver<Report>,
    leader: watch::Receiver<LeaderChannel>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending: BTreeMap<String, TaskStatus> = BTreeMap::new();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                r = reports.recv() => match r {
                    Some(r) => { pending.insert(r.task_id, r.status); }
                    None => return,
                },
                _ = tick.tick() => {
                    if pending.is_empty() {
                        continue;
                    }
                    let Some((_, channel)) = leader.borrow().clone() else { continue };
                    let updates: Vec<TaskStatusUpdate> = pending
                        .iter()
                        .map(|(id, s)| TaskStatusUpdate { task_id: id.clone(), status: Some(s.clone()) })
                        .collect();
                    let sent: Vec<(String, TaskStatus)> = pending.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    match TasksClient::new(channel).update_task_status(UpdateTaskStatusRequest { updates }).await {
                        Ok(_) => {
                            // Drop what was sent unless a newer report came meanwhile.
                            for (id, s) in sent {
                                if pending.get(&id) == Some(&s) {
                                    pending.remove(&id);
                                }
                            }
                        }
                        Err(e) => tracing::debug!(error = %e.message(), "status report failed; retrying"),
                    }
                }
            }
        }
    })
}
