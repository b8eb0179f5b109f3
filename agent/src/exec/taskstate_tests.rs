//! The task driver (`taskstate::drive`) against the fake controller: every
//! path through Swarm's states, what the manager is told on the way, and
//! what is done to the container (started, stopped, removed, or left
//! alone).

use std::sync::Arc;

use rswarm_proto::types::{Task, TaskState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::taskstate::{drive, Report};
use super::testing::{assigned, task, Fake, FakeController, PATIENCE};
use super::Exit;

/// One driven task: the manager's side of it.
struct Driven {
    updates: Arc<watch::Sender<Task>>,
    reports: mpsc::UnboundedReceiver<Report>,
    driver: JoinHandle<()>,
}

fn drive_task(fake: &Arc<FakeController>, task: Task) -> Driven {
    let (updates, rx) = watch::channel(task.clone());
    let (tx, reports) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(fake.clone(), task, rx, tx));
    Driven {
        updates: Arc::new(updates),
        reports,
        driver,
    }
}

impl Driven {
    async fn next(&mut self) -> Report {
        tokio::time::timeout(PATIENCE, self.reports.recv())
            .await
            .expect("a report in time")
            .expect("the driver reports")
    }

    /// The states reported up to and including `last`.
    async fn until(&mut self, last: TaskState) -> Vec<TaskState> {
        let mut seen = vec![];
        loop {
            let r = self.next().await;
            let state = TaskState::try_from(r.status.state).expect("a task state");
            seen.push(state);
            if state == last {
                return seen;
            }
            assert!(
                (state as i32) < (last as i32),
                "went past {last:?}: {seen:?}"
            );
        }
    }

    /// Reads reports until one is terminal (COMPLETE or later) and returns it.
    async fn end(&mut self) -> Report {
        loop {
            let r = self.next().await;
            if r.status.state >= TaskState::Complete as i32 {
                return r;
            }
        }
    }

    fn set_desired(&self, desired: TaskState) {
        self.updates
            .send_modify(|t| t.desired_state = desired as i32);
    }

    /// The manager removes the task; the driver removes the container and ends.
    async fn remove(self) {
        self.set_desired(TaskState::Remove);
        tokio::time::timeout(PATIENCE, self.driver)
            .await
            .expect("the driver ends after removal")
            .expect("the driver did not panic");
    }
}

const TO_RUNNING: [TaskState; 5] = [
    TaskState::Accepted,
    TaskState::Preparing,
    TaskState::Ready,
    TaskState::Starting,
    TaskState::Running,
];

#[tokio::test]
async fn a_task_runs_through_every_state_and_completes() {
    let fake = FakeController::new();
    let mut d = drive_task(&fake, assigned("t1"));
    assert_eq!(d.until(TaskState::Running).await, TO_RUNNING);
    let Some(Fake::Running { pid }) = fake.container("t1") else {
        panic!("not running: {:?}", fake.container("t1"));
    };
    fake.exit("t1", 0, false);
    let end = d.end().await;
    assert_eq!(end.task_id, "t1");
    assert_eq!(end.status.state, TaskState::Complete as i32);
    assert_eq!(end.status.message, "finished");
    assert!(end.status.err.is_empty());
    let cs = end.status.container_status.expect("container status");
    assert_eq!((cs.container_id.as_str(), cs.pid), ("t1", pid as i32));
    assert_eq!(cs.exit_code, 0);
    assert_eq!(fake.calls("t1"), ["inspect", "prepare", "start", "wait"]);
    // The stopped container stays (logs, inspection) until the task is removed.
    assert!(matches!(fake.container("t1"), Some(Fake::Stopped(_))));
    d.remove().await;
    assert_eq!(fake.container("t1"), None);
}

#[tokio::test]
async fn a_non_zero_exit_fails_the_task_with_dockers_message() {
    let fake = FakeController::new();
    let mut d = drive_task(&fake, assigned("t1"));
    d.until(TaskState::Running).await;
    fake.exit("t1", 3, false);
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Failed as i32);
    assert_eq!(end.status.err, "task: non-zero exit (3)");
    assert_eq!(end.status.container_status.expect("status").exit_code, 3);
}

#[tokio::test]
async fn an_oom_kill_says_so() {
    let fake = FakeController::new();
    let mut d = drive_task(&fake, assigned("t1"));
    d.until(TaskState::Running).await;
    fake.exit("t1", 137, true);
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Failed as i32);
    assert!(end.status.err.contains("OOM killed"), "{}", end.status.err);
    let cs = end.status.container_status.expect("status");
    assert!(cs.oom_killed);
    assert_eq!(cs.exit_code, 137);
}

#[tokio::test]
async fn a_task_that_cannot_be_prepared_is_rejected_with_the_reason() {
    let fake = FakeController::new();
    fake.fail_prepare("t1", "pull access denied for nosuch/image", true);
    let mut d = drive_task(&fake, assigned("t1"));
    let states = d.until(TaskState::Rejected).await;
    assert_eq!(
        states,
        [
            TaskState::Accepted,
            TaskState::Preparing,
            TaskState::Rejected
        ]
    );
    // The reason is in the last report, and nothing was started.
    fake.fail_prepare("t2", "mount source missing", false);
    let mut d2 = drive_task(&fake, assigned("t2"));
    let end = d2.end().await;
    assert_eq!(end.status.state, TaskState::Rejected as i32);
    assert_eq!(end.status.err, "mount source missing");
    assert!(!fake.calls("t1").contains(&"start"));
    assert!(!fake.calls("t2").contains(&"start"));
}

#[tokio::test]
async fn a_start_failure_fails_the_task_and_deletes_its_container() {
    let fake = FakeController::new();
    fake.fail_start("t1", "exec: \"nosuch\": executable file not found");
    let mut d = drive_task(&fake, assigned("t1"));
    let states = d.until(TaskState::Failed).await;
    assert_eq!(states.last(), Some(&TaskState::Failed));
    assert!(!states.contains(&TaskState::Running), "{states:?}");
    // Not left `created` until the task is removed.
    assert_eq!(
        fake.calls("t1"),
        ["inspect", "prepare", "start", "shutdown"]
    );
    assert_eq!(fake.container("t1"), None);
}

#[tokio::test]
async fn the_failure_message_of_a_start_reaches_the_manager() {
    let fake = FakeController::new();
    fake.fail_start("t1", "exec: \"nosuch\": executable file not found");
    let mut d = drive_task(&fake, assigned("t1"));
    let end = d.end().await;
    assert_eq!(end.status.message, "starting failed");
    assert_eq!(
        end.status.err,
        "exec: \"nosuch\": executable file not found"
    );
}

#[tokio::test]
async fn a_running_task_asked_to_stop_shuts_down_and_keeps_its_container() {
    let fake = FakeController::new();
    let mut d = drive_task(&fake, assigned("t1"));
    d.until(TaskState::Running).await;
    d.set_desired(TaskState::Shutdown);
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Shutdown as i32);
    assert_eq!(end.status.message, "shutdown");
    assert_eq!(end.status.container_status.expect("status").exit_code, 143);
    assert!(matches!(fake.container("t1"), Some(Fake::Stopped(_))));
    assert!(!fake.calls("t1").contains(&"remove"));
    d.remove().await;
    assert_eq!(fake.calls("t1").last(), Some(&"remove"));
    assert_eq!(fake.container("t1"), None);
}

#[tokio::test]
async fn a_task_stopped_before_it_was_started_never_runs() {
    let fake = FakeController::new();
    let mut d = drive_task(&fake, task("t1", TaskState::Assigned, TaskState::Shutdown));
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Shutdown as i32);
    assert!(!fake.calls("t1").contains(&"prepare"));
    assert!(!fake.calls("t1").contains(&"start"));
}

#[tokio::test]
async fn a_stop_during_prepare_waits_for_it_then_deletes_the_container() {
    let fake = FakeController::new();
    let gate = fake.gate_prepare("t1");
    let mut d = drive_task(&fake, assigned("t1"));
    assert_eq!(
        d.until(TaskState::Preparing).await,
        [TaskState::Accepted, TaskState::Preparing]
    );
    fake.wait_call("t1", "prepare").await;
    d.set_desired(TaskState::Shutdown);
    // The prepare is not dropped half-way: it finishes, then the container goes.
    gate.add_permits(1);
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Shutdown as i32);
    assert_eq!(end.status.message, "shutdown before start");
    assert_eq!(fake.calls("t1"), ["inspect", "prepare", "shutdown"]);
    assert_eq!(fake.container("t1"), None);
}

/// Bug: a stop that came as the prepare ended could still start the container.
#[tokio::test]
async fn a_stop_as_the_prepare_ends_never_starts_the_container() {
    let fake = FakeController::new();
    for i in 0..20 {
        let id = format!("t{i}");
        let d = drive_task(&fake, assigned(&id));
        // The stop arrives while prepare returns: both are ready at once.
        let updates = d.updates.clone();
        fake.on_prepare(move |_| {
            updates.send_modify(|t| t.desired_state = TaskState::Shutdown as i32)
        });
        let mut d = d;
        let end = d.end().await;
        assert_eq!(end.status.state, TaskState::Shutdown as i32, "task {id}");
        assert!(
            !fake.calls(&id).contains(&"start"),
            "task {id} was started after its stop: {:?}",
            fake.calls(&id)
        );
        assert_eq!(fake.container(&id), None, "task {id}");
    }
}

#[tokio::test]
async fn a_container_that_outlived_the_agent_is_adopted() {
    let fake = FakeController::new();
    fake.put("t1", Fake::Running { pid: 4242 });
    let mut d = drive_task(&fake, task("t1", TaskState::Running, TaskState::Running));
    let r = d.next().await;
    assert_eq!(r.status.state, TaskState::Running as i32);
    assert_eq!(r.status.container_status.expect("status").pid, 4242);
    fake.exit("t1", 0, false);
    assert_eq!(d.end().await.status.state, TaskState::Complete as i32);
    assert!(!fake.calls("t1").contains(&"prepare"));
    assert!(!fake.calls("t1").contains(&"start"));
}

#[tokio::test]
async fn a_container_that_exited_while_the_agent_was_away_reports_its_exit() {
    let fake = FakeController::new();
    fake.put(
        "t1",
        Fake::Stopped(Exit {
            code: Some(2),
            oom_killed: false,
        }),
    );
    let mut d = drive_task(&fake, task("t1", TaskState::Running, TaskState::Running));
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Failed as i32);
    assert_eq!(end.status.err, "task: non-zero exit (2)");
    assert!(!fake.calls("t1").contains(&"start"));
}

#[tokio::test]
async fn a_half_made_container_is_made_again_and_reports_only_move_forward() {
    let fake = FakeController::new();
    fake.put("t1", Fake::Created);
    // The manager last heard PREPARING.
    let mut d = drive_task(&fake, task("t1", TaskState::Preparing, TaskState::Running));
    assert_eq!(
        d.until(TaskState::Running).await,
        [
            TaskState::Preparing,
            TaskState::Ready,
            TaskState::Starting,
            TaskState::Running
        ]
    );
    assert_eq!(
        fake.calls("t1"),
        ["inspect", "remove", "prepare", "start", "wait"]
    );
}

/// Bug: the container of a running task was deleted behind the agent's
/// back, and the agent made and started a new one under the same task.
#[tokio::test]
async fn a_task_whose_container_vanished_fails() {
    let fake = FakeController::new();
    let mut d = drive_task(&fake, task("t1", TaskState::Running, TaskState::Running));
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Failed as i32);
    assert!(
        end.status.err.contains("No such container"),
        "{}",
        end.status.err
    );
    assert_eq!(fake.calls("t1"), ["inspect"]);
    // A task that never got that far is simply started.
    let mut fresh = drive_task(&fake, assigned("t2"));
    fresh.until(TaskState::Running).await;
}

/// Bug: when the container's state could not be read, the agent made a
/// second container for the task.
#[tokio::test]
async fn a_task_whose_container_cannot_be_read_fails() {
    let fake = FakeController::new();
    fake.put("t1", Fake::Running { pid: 7 });
    fake.fail_inspect(
        "t1",
        "runc state failed: state.json: unexpected end of input",
    );
    let mut d = drive_task(&fake, task("t1", TaskState::Running, TaskState::Running));
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Failed as i32);
    assert!(end.status.err.contains("state.json"), "{}", end.status.err);
    assert_eq!(fake.calls("t1"), ["inspect"]);
    // The same for a task that was only assigned.
    fake.fail_inspect("t2", "runc state timed out");
    let mut d2 = drive_task(&fake, assigned("t2"));
    assert_eq!(d2.end().await.status.state, TaskState::Failed as i32);
    assert_eq!(fake.calls("t2"), ["inspect"]);
}

#[tokio::test]
async fn an_ended_task_is_not_run_again_and_is_cleaned_up_on_removal() {
    let fake = FakeController::new();
    fake.put(
        "t1",
        Fake::Stopped(Exit {
            code: Some(0),
            oom_killed: false,
        }),
    );
    let d = drive_task(&fake, task("t1", TaskState::Complete, TaskState::Running));
    fake.wait_call("t1", "inspect").await;
    d.remove().await;
    assert_eq!(fake.calls("t1"), ["inspect", "remove"]);
    assert_eq!(fake.container("t1"), None);
}

#[tokio::test]
async fn the_running_container_of_a_task_given_up_on_while_away_is_stopped() {
    let fake = FakeController::new();
    fake.put("t1", Fake::Running { pid: 4242 });
    let d = drive_task(&fake, task("t1", TaskState::Orphaned, TaskState::Shutdown));
    fake.wait_call("t1", "shutdown").await;
    assert!(!fake.calls("t1").contains(&"start"));
    d.remove().await;
    assert_eq!(fake.calls("t1"), ["inspect", "shutdown", "remove"]);
    assert_eq!(fake.container("t1"), None);
}

fn quick_check(retries: u32) -> super::health::Check {
    super::health::Check {
        args: vec!["true".into()],
        interval: std::time::Duration::from_millis(10),
        timeout: std::time::Duration::from_secs(1),
        start_period: std::time::Duration::ZERO,
        start_interval: std::time::Duration::from_millis(10),
        retries,
    }
}

#[tokio::test]
async fn a_checked_task_runs_starting_then_healthy() {
    let fake = FakeController::new();
    fake.set_check("t1", quick_check(3), true);
    let mut d = drive_task(&fake, assigned("t1"));
    d.until(TaskState::Running).await;
    // RUNNING is first reported "starting": not a backend before a pass.
    let healthy = d.next().await;
    assert_eq!(healthy.status.state, TaskState::Running as i32);
    assert_eq!(healthy.status.health, "healthy");
    assert_eq!(healthy.status.health_output, "ok\n");
    assert_eq!(healthy.status.health_failing_streak, 0);
    d.set_desired(TaskState::Shutdown);
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Shutdown as i32);
    let calls = fake.calls("t1");
    let at = |op| calls.iter().position(|c| *c == op).expect(op);
    assert!(at("drain") < at("shutdown"), "{calls:?}");
}

#[tokio::test]
async fn a_task_the_manager_stops_is_drained_before_its_stop_signal() {
    for desired in [TaskState::Shutdown, TaskState::Remove] {
        let fake = FakeController::new();
        let mut d = drive_task(&fake, assigned("t1"));
        d.until(TaskState::Running).await;
        d.set_desired(desired);
        let end = d.end().await;
        assert_eq!(end.status.state, TaskState::Shutdown as i32);
        let calls = fake.calls("t1");
        let at = |op| calls.iter().position(|c| *c == op).expect(op);
        assert_eq!(
            calls.iter().filter(|c| **c == "drain").count(),
            1,
            "{calls:?}"
        );
        assert!(at("drain") < at("shutdown"), "{desired:?}: {calls:?}");
    }
}

#[tokio::test]
async fn a_task_stopped_before_it_started_is_not_drained() {
    let fake = FakeController::new();
    let mut t = assigned("t1");
    t.desired_state = TaskState::Shutdown as i32;
    let mut d = drive_task(&fake, t);
    assert_eq!(d.end().await.status.state, TaskState::Shutdown as i32);
    assert!(!fake.calls("t1").contains(&"drain"));
}

#[tokio::test]
async fn the_first_running_report_of_a_checked_task_says_starting() {
    let fake = FakeController::new();
    fake.set_check("t1", quick_check(3), false);
    let (updates, rx) = watch::channel(assigned("t1"));
    let (tx, mut reports) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(fake.clone(), assigned("t1"), rx, tx));
    loop {
        let r = reports.recv().await.expect("a report");
        if r.status.state == TaskState::Running as i32 {
            assert_eq!(r.status.health, "starting");
            break;
        }
        assert!(r.status.health.is_empty(), "no health before RUNNING");
    }
    updates.send_modify(|t| t.desired_state = TaskState::Remove as i32);
    let _ = tokio::time::timeout(PATIENCE, driver).await;
}

#[tokio::test]
async fn an_unhealthy_task_is_drained_stopped_and_failed_like_docker() {
    let fake = FakeController::new();
    fake.set_check("t1", quick_check(2), true);
    let mut d = drive_task(&fake, assigned("t1"));
    d.until(TaskState::Running).await;
    assert_eq!(d.next().await.status.health, "healthy");
    fake.set_passing("t1", false);
    // One failure is reported (the streak), the second makes it unhealthy.
    let first = d.next().await;
    assert_eq!(
        (
            first.status.health.as_str(),
            first.status.health_failing_streak
        ),
        ("healthy", 1)
    );
    let unhealthy = d.next().await;
    assert_eq!(unhealthy.status.state, TaskState::Running as i32);
    assert_eq!(unhealthy.status.health, "unhealthy");
    assert_eq!(unhealthy.status.health_output, "down\n");
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Failed as i32);
    assert_eq!(
        end.status.err,
        "task: non-zero exit (143): dockerexec: unhealthy container"
    );
    assert_eq!(end.status.health, "unhealthy");
    let calls = fake.calls("t1");
    let at = |op| calls.iter().position(|c| *c == op).expect(op);
    assert!(
        at("drain") < at("shutdown"),
        "drained before stopped: {calls:?}"
    );
}

#[tokio::test]
async fn a_task_that_exits_while_checked_ends_as_usual() {
    let fake = FakeController::new();
    fake.set_check("t1", quick_check(3), false);
    let mut d = drive_task(&fake, assigned("t1"));
    d.until(TaskState::Running).await;
    fake.exit("t1", 0, false);
    let end = d.end().await;
    assert_eq!(end.status.state, TaskState::Complete as i32);
}
