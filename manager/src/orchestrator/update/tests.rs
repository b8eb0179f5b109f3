//! Rolling updates against a real one-manager store with the real loops, a
//! fake agent, and service updates made through the Control API itself.

use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::control::UpdateServiceRequest;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_config::{FailureAction, UpdateOrder};
use rswarm_proto::types::update_status::State as UpdateState;
use rswarm_proto::types::{ReplicatedService, Service, ServiceSpec, Task, TaskState, UpdateConfig};

use super::super::task;
use super::super::testing::{default_reaction, TestSwarm};
use crate::objects;

fn replicated(replicas: u64) -> Mode {
    Mode::Replicated(ReplicatedService { replicas })
}

fn image(t: &Task) -> String {
    t.spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map(|c| c.image.clone())
        .unwrap_or_default()
}

fn config(parallelism: u64, order: UpdateOrder, action: FailureAction) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        delay_ns: 0,
        failure_action: action as i32,
        monitor_ns: Duration::from_millis(200).as_nanos() as i64,
        max_failure_ratio: 0.0,
        order: order as i32,
    }
}

/// An agent that runs what it is given, except images named `bad`: those
/// fail as soon as they are assigned.
fn agent_failing_bad_images() -> super::super::testing::AgentBehaviour {
    Arc::new(|t: &Task| {
        if image(t) == "bad" && task::state(t) == TaskState::Assigned as i32 {
            return Some((TaskState::Failed, 1));
        }
        default_reaction(t)
    })
}

fn service(swarm: &TestSwarm, id: &str) -> Service {
    objects::get::<Service>(&swarm.store, id)
        .expect("read service")
        .expect("service exists")
}

/// `service update` through the Control API: `change` edits the spec.
async fn update(swarm: &TestSwarm, id: &str, change: impl Fn(&mut ServiceSpec)) {
    let mut spec = service(swarm, id).spec.unwrap_or_default();
    change(&mut spec);
    crate::controlapi::services::update(
        &swarm.store,
        UpdateServiceRequest {
            service_ref: id.into(),
            spec_version: None,
            spec: Some(spec),
            rollback: false,
        },
    )
    .await
    .expect("service update");
}

fn set_image(spec: &mut ServiceSpec, name: &str) {
    if let Some(c) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
        c.image = name.into();
    }
}

async fn wait_state(swarm: &TestSwarm, id: &str, want: UpdateState) -> Service {
    let deadline = tokio::time::Instant::now() + super::super::testing::PATIENCE;
    loop {
        let svc = service(swarm, id);
        if super::update_state(&svc) == want {
            return svc;
        }
        if tokio::time::Instant::now() >= deadline {
            let tasks: Vec<String> = swarm
                .tasks(id)
                .iter()
                .map(super::super::testing::describe)
                .collect();
            panic!(
                "timed out waiting for update state {want:?}; status {:?}\n{}",
                svc.update_status,
                tasks.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn running_images(tasks: &[Task]) -> Vec<String> {
    let mut v: Vec<String> = tasks
        .iter()
        .filter(|t| task::state(t) == TaskState::Running as i32 && task::is_wanted(t))
        .map(image)
        .collect();
    v.sort();
    v
}

fn status_time(t: &Task) -> i64 {
    t.status.as_ref().map(|s| s.timestamp).unwrap_or(0)
}

/// Starts a swarm with one node and a 3-replica service of `busybox:1`
/// running, with the given update config.
async fn three_running(cfg: UpdateConfig) -> (TestSwarm, String) {
    let mut swarm = TestSwarm::start(10).await;
    swarm.run_agents(agent_failing_bad_images());
    swarm.add_node("host1", |_| {}).await;
    let id = swarm
        .create_service_spec("web", replicated(3), |s| {
            set_image(s, "busybox:1");
            s.update = Some(cfg);
            s.rollback = Some(UpdateConfig {
                failure_action: FailureAction::Pause as i32,
                ..cfg
            });
        })
        .await;
    swarm
        .wait_for("3 running tasks", &id, |t| {
            (running_images(t).len() == 3).then_some(())
        })
        .await;
    (swarm, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_first_updates_one_slot_at_a_time_and_completes() {
    let (swarm, id) = three_running(config(1, UpdateOrder::StopFirst, FailureAction::Pause)).await;
    update(&swarm, &id, |s| set_image(s, "busybox:2")).await;
    assert_eq!(
        super::update_state(&service(&swarm, &id)),
        UpdateState::Updating
    );
    let svc = wait_state(&swarm, &id, UpdateState::Completed).await;
    let status = svc.update_status.clone().unwrap_or_default();
    assert_eq!(status.message, "update completed");
    assert!(status.completed_at >= status.started_at && status.started_at > 0);
    let tasks = swarm.tasks(&id);
    assert_eq!(running_images(&tasks), vec!["busybox:2"; 3]);

    // Each slot's old task stopped before its successor was made, and each
    // new task was made only once the previous one ran: one slot at a time.
    let mut new: Vec<&Task> = tasks.iter().filter(|t| image(t) == "busybox:2").collect();
    new.sort_by_key(|t| task::created_at(t));
    assert_eq!(new.len(), 3, "no slot updated twice");
    for pair in new.windows(2) {
        assert!(
            task::created_at(pair[1]) >= status_time(pair[0]),
            "slot {} started before slot {} ran",
            pair[1].slot,
            pair[0].slot
        );
    }
    for n in &new {
        let old = tasks
            .iter()
            .find(|t| t.slot == n.slot && image(t) == "busybox:1")
            .expect("the slot's old task is kept in the history");
        assert_eq!(task::state(old), TaskState::Shutdown as i32);
        assert!(status_time(old) <= task::created_at(n), "slot {}", n.slot);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_first_stops_the_old_task_only_once_the_new_one_runs() {
    let (swarm, id) = three_running(config(1, UpdateOrder::StartFirst, FailureAction::Pause)).await;
    update(&swarm, &id, |s| set_image(s, "busybox:2")).await;
    wait_state(&swarm, &id, UpdateState::Completed).await;
    let tasks = swarm.tasks(&id);
    assert_eq!(running_images(&tasks), vec!["busybox:2"; 3]);
    for n in tasks.iter().filter(|t| image(t) == "busybox:2") {
        let old = tasks
            .iter()
            .find(|t| t.slot == n.slot && image(t) == "busybox:1")
            .expect("old task in history");
        assert!(
            task::created_at(n) < status_time(old),
            "slot {}: the new task was made after the old one stopped",
            n.slot
        );
        assert!(
            status_time(n) <= status_time(old),
            "slot {}: the old task stopped before the new one ran",
            n.slot
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_replaces_every_task_with_a_new_id_in_the_same_slots() {
    let (swarm, id) = three_running(config(0, UpdateOrder::StopFirst, FailureAction::Pause)).await;
    let before: Vec<(u64, String)> = {
        let mut v: Vec<_> = swarm
            .tasks(&id)
            .iter()
            .map(|t| (t.slot, t.id.clone()))
            .collect();
        v.sort();
        v
    };
    update(&swarm, &id, |s| {
        if let Some(t) = s.task.as_mut() {
            t.force_update += 1;
        }
    })
    .await;
    wait_state(&swarm, &id, UpdateState::Completed).await;
    let tasks = swarm.tasks(&id);
    let mut after: Vec<(u64, String)> = tasks
        .iter()
        .filter(|t| task::state(t) == TaskState::Running as i32 && task::is_wanted(t))
        .map(|t| (t.slot, t.id.clone()))
        .collect();
    after.sort();
    assert_eq!(
        after.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for ((_, old), (_, new)) in before.iter().zip(&after) {
        assert_ne!(old, new);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_update_pauses_after_its_first_task() {
    let (swarm, id) = three_running(config(1, UpdateOrder::StopFirst, FailureAction::Pause)).await;
    update(&swarm, &id, |s| set_image(s, "bad")).await;
    let svc = wait_state(&swarm, &id, UpdateState::Paused).await;
    let message = svc.update_status.unwrap_or_default().message;
    assert!(
        message.starts_with("update paused due to failure or early termination of task "),
        "{message}"
    );
    // Nothing more is updated: two slots keep their old task running.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks = swarm.tasks(&id);
    let old_running = running_images(&tasks)
        .iter()
        .filter(|i| *i == "busybox:1")
        .count();
    assert_eq!(old_running, 2, "{:?}", running_images(&tasks));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_update_rolls_back_to_the_old_image() {
    let (swarm, id) =
        three_running(config(1, UpdateOrder::StopFirst, FailureAction::Rollback)).await;
    update(&swarm, &id, |s| set_image(s, "bad")).await;
    let svc = wait_state(&swarm, &id, UpdateState::RollbackCompleted).await;
    assert_eq!(
        svc.spec
            .as_ref()
            .and_then(|s| s.task.as_ref())
            .and_then(|t| t.container.as_ref())
            .map(|c| c.image.as_str()),
        Some("busybox:1")
    );
    assert_eq!(
        svc.update_status.unwrap_or_default().message,
        "rollback completed"
    );
    let tasks = swarm.tasks(&id);
    assert_eq!(running_images(&tasks), vec!["busybox:1"; 3]);
    // The two slots never updated kept their tasks.
    let bad = tasks.iter().filter(|t| image(t) == "bad").count();
    assert!(bad >= 1);
    let slots_with_bad: std::collections::BTreeSet<u64> = tasks
        .iter()
        .filter(|t| image(t) == "bad")
        .map(|t| t.slot)
        .collect();
    assert_eq!(slots_with_bad.len(), 1, "only the first slot was tried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_rollback_restores_the_previous_spec() {
    let (swarm, id) = three_running(config(0, UpdateOrder::StartFirst, FailureAction::Pause)).await;
    update(&swarm, &id, |s| set_image(s, "busybox:2")).await;
    wait_state(&swarm, &id, UpdateState::Completed).await;
    crate::controlapi::services::update(
        &swarm.store,
        UpdateServiceRequest {
            service_ref: id.clone(),
            spec_version: None,
            spec: None,
            rollback: true,
        },
    )
    .await
    .expect("rollback");
    let svc = wait_state(&swarm, &id, UpdateState::RollbackCompleted).await;
    assert_eq!(
        svc.update_status.map(|u| u.message).unwrap_or_default(),
        "rollback completed"
    );
    assert_eq!(running_images(&swarm.tasks(&id)), vec!["busybox:1"; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_update_resumes_with_the_next_update() {
    let (swarm, id) = three_running(config(1, UpdateOrder::StopFirst, FailureAction::Pause)).await;
    update(&swarm, &id, |s| set_image(s, "bad")).await;
    wait_state(&swarm, &id, UpdateState::Paused).await;
    update(&swarm, &id, |s| set_image(s, "busybox:3")).await;
    wait_state(&swarm, &id, UpdateState::Completed).await;
    assert_eq!(running_images(&swarm.tasks(&id)), vec!["busybox:3"; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_two_updates_two_slots_then_keeps_the_delay() {
    let (swarm, id) = three_running(UpdateConfig {
        delay_ns: Duration::from_millis(300).as_nanos() as i64,
        ..config(2, UpdateOrder::StopFirst, FailureAction::Pause)
    })
    .await;
    update(&swarm, &id, |s| set_image(s, "busybox:2")).await;
    wait_state(&swarm, &id, UpdateState::Completed).await;
    let tasks = swarm.tasks(&id);
    let mut new: Vec<&Task> = tasks.iter().filter(|t| image(t) == "busybox:2").collect();
    new.sort_by_key(|t| task::created_at(t));
    assert_eq!(new.len(), 3);
    // The third slot waited for the delay after the first two ran.
    let first_two_ran = status_time(new[0]).max(status_time(new[1]));
    assert!(
        task::created_at(new[2]) >= first_two_ran + 300_000_000,
        "the delay was not kept"
    );
}
