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

pub(crate) fn spawn(
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

#[cfg(test)]
mod tests {
    use rswarm_proto::types::TaskState;

    use super::*;
    use crate::testing::FakeManager;

    fn report(task_id: &str, state: TaskState) -> Report {
        Report {
            task_id: task_id.into(),
            status: TaskStatus {
                state: state as i32,
                message: format!("{state:?}"),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn what_is_already_reported_goes_in_one_call_latest_state_per_task() {
        let manager = FakeManager::start().await;
        let (tx, rx) = mpsc::unbounded_channel();
        for r in [
            report("t1", TaskState::Preparing),
            report("t2", TaskState::Running),
            report("t1", TaskState::Running),
        ] {
            tx.send(r).expect("queued");
        }
        let (_leader, leader) =
            watch::channel::<LeaderChannel>(Some((manager.addr.clone(), manager.channel())));
        let reporter = spawn(rx, leader);
        manager
            .wait_until("the first batch", |m| !m.batches().is_empty())
            .await;
        assert_eq!(manager.batches()[0], ["t1", "t2"]);
        let states =
            |id: &str| -> Vec<i32> { manager.statuses(id).iter().map(|s| s.state).collect() };
        assert_eq!(states("t1"), [TaskState::Running as i32]);
        assert_eq!(states("t2"), [TaskState::Running as i32]);
        reporter.abort();
    }

    #[tokio::test]
    async fn reports_wait_for_a_leader_that_takes_them_and_are_sent_once() {
        let manager = FakeManager::start().await;
        let (tx, rx) = mpsc::unbounded_channel();
        // No leader yet, then one that refuses twice.
        let (leader_tx, leader) = watch::channel::<LeaderChannel>(None);
        let reporter = spawn(rx, leader);
        tx.send(report("t1", TaskState::Running)).expect("queued");
        manager.refuse_reports(2);
        leader_tx
            .send(Some((manager.addr.clone(), manager.channel())))
            .expect("the reporter listens");
        let running = manager.wait_state("t1", TaskState::Running).await;
        assert_eq!(running.message, "Running");
        // The next transition goes out; the one taken is not sent again.
        tx.send(report("t1", TaskState::Complete)).expect("queued");
        manager.wait_state("t1", TaskState::Complete).await;
        assert_eq!(manager.batches(), [["t1"], ["t1"]]);
        reporter.abort();
    }
}
