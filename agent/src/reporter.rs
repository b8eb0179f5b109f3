//! Batched task status reports: drivers hand in transitions, the reporter
//! keeps the latest per task and sends them to the leader every 25 ms in
//! one UpdateTaskStatus call, keeping them until the leader has them.
//! Drivers never wait for it (the channel is unbounded; it holds at most a
//! few transitions per task): when the leader is slow to take a batch, the
//! tasks go on starting and their latest states go in the next batch.

use std::collections::BTreeMap;
use std::time::Duration;

use rswarm_proto::dispatcher::tasks_client::TasksClient;
use rswarm_proto::dispatcher::{TaskStatusUpdate, UpdateTaskStatusRequest};
use rswarm_proto::types::TaskStatus;
use tokio::sync::{mpsc, watch};

use crate::exec::taskstate::Report;
use crate::session::LeaderChannel;

const FLUSH_EVERY: Duration = Duration::from_millis(25);

/// Updates per UpdateTaskStatus call (one store write on the leader); more
/// wait for the next call.
const MAX_BATCH: usize = 500;

pub fn spawn(
    mut reports: mpsc::UnboundedReceiver<Report>,
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
                    // Everything already reported goes in this batch, latest state per task.
                    while let Ok(r) = reports.try_recv() {
                        pending.insert(r.task_id, r.status);
                    }
                    if pending.is_empty() {
                        continue;
                    }
                    let Some((_, channel)) = leader.borrow().clone() else { continue };
                    let sent: Vec<(String, TaskStatus)> = pending
                        .iter()
                        .take(MAX_BATCH)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let updates: Vec<TaskStatusUpdate> = sent
                        .iter()
                        .map(|(id, s)| TaskStatusUpdate { task_id: id.clone(), status: Some(s.clone()) })
                        .collect();
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
