//! The orchestrators against a real one-manager store, with the real
//! scheduler placing tasks and a fake agent reporting their states. Each test
//! tells one user story: create a service, change the swarm, see the tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rswarm_proto::types::restart_policy::Condition;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    GlobalJob, GlobalService, NodeAvailability, NodeState, ReplicatedJob, ReplicatedService,
    RestartPolicy, Task, TaskState,
};

use super::task;
use super::testing::{default_reaction, obedient_agent, placed, TestSwarm};

fn replicated(replicas: u64) -> Mode {
    Mode::Replicated(ReplicatedService { replicas })
}

fn restart(condition: Condition, delay: Duration, max_attempts: u64) -> RestartPolicy {
    RestartPolicy {
        condition: condition as i32,
        delay_ns: delay.as_nanos() as i64,
        delay_set: true,
        max_attempts,
        window_ns: 0,
    }
}

/// Running tasks per node ID.
fn per_node(tasks: &[Task]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in tasks.iter().filter(|t| placed(t) && task::is_wanted(t)) {
        *out.entry(t.node_id.clone()).or_insert(0) += 1;
    }
    out
}

fn running(tasks: &[Task]) -> Vec<&Task> {
    tasks
        .iter()
        .filter(|t| task::state(t) == TaskState::Running as i32 && task::is_wanted(t))
        .collect()
}

/// A positive event for absence checks: the orchestrator has handled every
/// change made before this call (it handles them in order), shown by a new
/// one-replica service getting its task running. The agent must let it run.
async fn orchestrator_caught_up(swarm: &TestSwarm, tag: &str) {
    let marker = swarm
        .create_service(&format!("marker-{tag}"), replicated(1), |_| {})
        .await;
    swarm
        .wait_for("the marker task to run", &marker, |t| {
            (running(t).len() == 1).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_has_its_tasks_replaced_on_the_other_nodes() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    let nodes = [
        swarm.add_node("host1", |_| {}).await,
        swarm.add_node("host2", |_| {}).await,
        swarm.add_node("host3", |_| {}).await,
    ];
    let svc = swarm
        .create_service("web", replicated(6), |t| {
            t.restart = Some(restart(Condition::Any, Duration::ZERO, 0))
        })
        .await;
    swarm
        .wait_for("6 running tasks", &svc, |t| {
            (running(t).len() == 6).then_some(())
        })
        .await;

    swarm.set_state(&nodes[2], NodeState::Down).await;
    let tasks = swarm
        .wait_for("6 running tasks on host1 and host2", &svc, |t| {
            let on_live_nodes = running(t).iter().filter(|t| t.node_id != nodes[2]).count();
            (on_live_nodes == 6).then(|| t.to_vec())
        })
        .await;
    let on_down: Vec<&Task> = tasks.iter().filter(|t| t.node_id == nodes[2]).collect();
    assert_eq!(on_down.len(), 2, "host3 had two tasks");
    for t in on_down {
        assert_eq!(
            t.desired_state,
            TaskState::Shutdown as i32,
            "host3's agent is told to stop them when it returns"
        );
    }
    // Node loss is not a failure of the task: the replacement keeps the count.
    assert!(tasks.iter().all(|t| t.restart_count == 0));
    assert_eq!(
        swarm.metrics.orchestrator.restarts.get(),
        0,
        "refilling a lost node's slots is no restart"
    );
    let slots: BTreeSet<u64> = running(&tasks).iter().map(|t| t.slot).collect();
    assert_eq!(slots, (1..=6).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_with_max_attempts_3_restarts_exactly_three_times() {
    let mut swarm = TestSwarm::start(10).await;
    // Every task fails as soon as it is placed.
    swarm.run_agents(Arc::new(|t: &Task| {
        if t.desired_state <= TaskState::Running as i32
            && task::state(t) == TaskState::Assigned as i32
        {
            Some((TaskState::Failed, 1))
        } else {
            None
        }
    }));
    swarm.add_node("host1", |_| {}).await;
    let svc = swarm
        .create_service("crash", replicated(1), |t| {
            t.restart = Some(restart(Condition::OnFailure, Duration::from_millis(50), 3))
        })
        .await;
    swarm
        .wait_for("four failed tasks", &svc, |t| {
            (t.iter()
                .filter(|t| task::state(t) == TaskState::Failed as i32)
                .count()
                == 4)
                .then_some(())
        })
        .await;
    // Past the moment a fifth start would have been due: a marker service with
    // the same delay and one restart allowed (its tasks fail too) has restarted.
    let marker = swarm
        .create_service("marker", replicated(1), |t| {
            t.restart = Some(restart(Condition::OnFailure, Duration::from_millis(50), 1))
        })
        .await;
    swarm
        .wait_for("the marker's restart to fail too", &marker, |t| {
            (t.iter()
                .filter(|t| task::state(t) == TaskState::Failed as i32)
                .count()
                == 2)
                .then_some(())
        })
        .await;
    let tasks = swarm.tasks(&svc);
    let counts: BTreeSet<u32> = tasks.iter().map(|t| t.restart_count).collect();
    assert_eq!(tasks.len(), 4, "one task and exactly three restarts");
    assert_eq!(counts, BTreeSet::from([0, 1, 2, 3]));
    assert_eq!(
        swarm.metrics.orchestrator.restarts.get(),
        4,
        "three restarts of crash, one of the marker"
    );
    assert!(tasks.iter().all(|t| t.slot == 1));
    assert!(
        tasks
            .iter()
            .all(|t| t.desired_state == TaskState::Shutdown as i32),
        "failed tasks are marked shut down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restart_delay_is_honoured() {
    let mut swarm = TestSwarm::start(5).await;
    // The first task exits with 3; its replacement runs.
    swarm.run_agents(Arc::new(|t: &Task| {
        if t.restart_count == 0
            && t.desired_state <= TaskState::Running as i32
            && task::state(t) == TaskState::Assigned as i32
        {
            Some((TaskState::Failed, 3))
        } else {
            default_reaction(t)
        }
    }));
    swarm.add_node("host1", |_| {}).await;
    let delay = Duration::from_millis(1_500);
    let svc = swarm
        .create_service("slow", replicated(1), |t| {
            t.restart = Some(restart(Condition::Any, delay, 0))
        })
        .await;
    let failed_at = swarm
        .wait_for("the first task to fail", &svc, |t| {
            t.iter()
                .find(|t| task::state(t) == TaskState::Failed as i32)
                .map(|_| Instant::now())
        })
        .await;
    let replacement = swarm
        .wait_for("the replacement to run", &svc, |t| {
            t.iter()
                .find(|t| t.restart_count == 1 && task::state(t) == TaskState::Running as i32)
                .cloned()
        })
        .await;
    let waited = failed_at.elapsed();
    // Not before the delay (the measurement starts after the failure was
    // committed, so a little less is fine); how soon after is a benchmark's.
    assert!(
        waited >= delay - Duration::from_millis(100),
        "restarted after {waited:?}, before the {delay:?} delay"
    );
    assert_eq!(replacement.slot, 1);
    let tasks = swarm.tasks(&svc);
    assert_eq!(tasks.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_job_completes_and_is_not_restarted() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    swarm.add_node("host1", |_| {}).await;
    swarm.add_node("host2", |_| {}).await;
    let svc = swarm
        .create_service(
            "batch",
            Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 2,
                total_completions: 3,
            }),
            |_| {},
        )
        .await;
    swarm
        .wait_for("three completions", &svc, |t| {
            (t.iter().filter(|t| task::completed(t)).count() == 3).then_some(())
        })
        .await;
    orchestrator_caught_up(&swarm, "job").await;
    let tasks = swarm.tasks(&svc);
    assert_eq!(tasks.len(), 3, "no task after the job finished");
    let slots: BTreeSet<u64> = tasks.iter().map(|t| t.slot).collect();
    assert_eq!(slots, BTreeSet::from([1, 2, 3]));
    assert!(tasks
        .iter()
        .all(|t| t.desired_state == TaskState::Complete as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_task_is_retried_then_the_job_finishes() {
    let mut swarm = TestSwarm::start(5).await;
    // Slot 2's first attempt fails.
    swarm.run_agents(Arc::new(|t: &Task| {
        if t.slot == 2 && t.restart_count == 0 && task::state(t) == TaskState::Assigned as i32 {
            Some((TaskState::Failed, 1))
        } else {
            default_reaction(t)
        }
    }));
    swarm.add_node("host1", |_| {}).await;
    let svc = swarm
        .create_service(
            "batch",
            Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 1,
                total_completions: 3,
            }),
            |t| t.restart = Some(restart(Condition::OnFailure, Duration::ZERO, 0)),
        )
        .await;
    swarm
        .wait_for("three completions", &svc, |t| {
            (t.iter().filter(|t| task::completed(t)).count() == 3).then_some(())
        })
        .await;
    orchestrator_caught_up(&swarm, "retried").await;
    let tasks = swarm.tasks(&svc);
    assert_eq!(tasks.len(), 4, "three completions and one failure");
    let retried: Vec<&Task> = tasks.iter().filter(|t| t.slot == 2).collect();
    assert_eq!(retried.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_job_runs_once_per_node_and_not_on_a_node_that_joins_later() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    let a = swarm.add_node("host1", |_| {}).await;
    let b = swarm.add_node("host2", |_| {}).await;
    let job = swarm
        .create_service("once", Mode::GlobalJob(GlobalJob {}), |_| {})
        .await;
    swarm
        .wait_for("one completion on host1 and on host2", &job, |t| {
            let done: Vec<&str> = t
                .iter()
                .filter(|t| task::completed(t))
                .map(|t| t.node_id.as_str())
                .collect();
            (done.len() == 2 && BTreeSet::from_iter(done) == BTreeSet::from([&*a, &*b]))
                .then_some(())
        })
        .await;

    let late = swarm.add_node("host3", |_| {}).await;
    // The positive twin: a global service made now does run on the late
    // node, so the orchestrator has passed over the swarm with it in.
    let follower = swarm
        .create_service("follower", Mode::Global(GlobalService {}), |_| {})
        .await;
    swarm
        .wait_for("the global service on the late node", &follower, |t| {
            running(t).iter().any(|t| t.node_id == late).then_some(())
        })
        .await;
    orchestrator_caught_up(&swarm, "late").await;

    let tasks = swarm.tasks(&job);
    assert_eq!(tasks.len(), 2, "one task per node that was there, no rerun");
    assert!(
        tasks.iter().all(|t| t.node_id != late),
        "no task on the node that joined after the job started"
    );
    assert!(tasks
        .iter()
        .all(|t| task::completed(t) && t.desired_state == TaskState::Complete as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_moves_tasks_off_a_node() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    let a = swarm.add_node("host1", |_| {}).await;
    let b = swarm.add_node("host2", |_| {}).await;
    let c = swarm.add_node("host3", |_| {}).await;
    let svc = swarm.create_service("web", replicated(3), |_| {}).await;
    swarm
        .wait_for("3 running tasks", &svc, |t| {
            (running(t).len() == 3).then_some(())
        })
        .await;

    swarm.set_availability(&a, NodeAvailability::Drain).await;
    let tasks = swarm
        .wait_for("3 running tasks off host1, host1's stopped", &svc, |t| {
            let moved = running(t).iter().all(|t| t.node_id != a) && running(t).len() == 3;
            let stopped = t
                .iter()
                .filter(|t| t.node_id == a)
                .all(|t| task::state(t) == TaskState::Shutdown as i32);
            (moved && stopped).then(|| t.to_vec())
        })
        .await;
    let on: HashMap<String, usize> = per_node(&tasks).into_iter().collect();
    assert_eq!(
        on.get(&b).copied().unwrap_or(0) + on.get(&c).copied().unwrap_or(0),
        3
    );
    assert!(on.get(&b).copied().unwrap_or(0) >= 1 && on.get(&c).copied().unwrap_or(0) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_down_stops_the_highest_slots() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    swarm.add_node("host1", |_| {}).await;
    let svc = swarm.create_service("web", replicated(5), |_| {}).await;
    swarm
        .wait_for("5 running tasks", &svc, |t| {
            (running(t).len() == 5).then_some(())
        })
        .await;
    let before: BTreeSet<String> = swarm.tasks(&svc).iter().map(|t| t.id.clone()).collect();
    swarm.scale(&svc, 2).await;
    // As in swarmkit, the dropped slots' tasks are asked to reach REMOVE and are
    // deleted once the agent has stopped them: `service ps` no longer lists them.
    let tasks = swarm
        .wait_for("slots 3-5 stopped and deleted", &svc, |t| {
            let slots: BTreeSet<u64> = t.iter().map(|t| t.slot).collect();
            (slots == BTreeSet::from([1, 2])).then(|| t.to_vec())
        })
        .await;
    let live: BTreeSet<u64> = running(&tasks).iter().map(|t| t.slot).collect();
    assert_eq!(live, BTreeSet::from([1, 2]));
    assert!(
        tasks.iter().all(|t| before.contains(&t.id)),
        "slots 1-2 kept their tasks"
    );
    // Stopped by the user: not restarted.
    orchestrator_caught_up(&swarm, "scaled").await;
    assert_eq!(swarm.tasks(&svc).len(), 2);
    // Scaling up again refills the slots at once.
    swarm.scale(&svc, 4).await;
    swarm
        .wait_for("4 running tasks", &svc, |t| {
            (running(t).len() == 4).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_service_follows_the_nodes() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    let a = swarm.add_node("host1", |_| {}).await;
    let b = swarm.add_node("host2", |_| {}).await;
    let drained = swarm
        .add_node("host3", |n| {
            if let Some(s) = n.spec.as_mut() {
                s.availability = NodeAvailability::Drain as i32
            }
        })
        .await;
    let svc = swarm
        .create_service("agent", Mode::Global(GlobalService {}), |_| {})
        .await;
    swarm
        .wait_for("a task on host1 and host2", &svc, |t| {
            let nodes: BTreeSet<String> = running(t).iter().map(|t| t.node_id.clone()).collect();
            (nodes == BTreeSet::from([a.clone(), b.clone()])).then_some(())
        })
        .await;

    let late = swarm.add_node("host4", |_| {}).await;
    let tasks = swarm
        .wait_for("a task on the node that joined later", &svc, |t| {
            running(t)
                .iter()
                .any(|t| t.node_id == late)
                .then(|| t.to_vec())
        })
        .await;
    assert!(
        tasks.iter().all(|t| t.node_id != drained),
        "none on the drained node"
    );
    let names: BTreeSet<String> = tasks
        .iter()
        .filter_map(|t| t.annotations.as_ref().map(|a| a.name.clone()))
        .collect();
    assert!(names.contains(&format!("agent.{late}")));

    swarm.set_availability(&a, NodeAvailability::Drain).await;
    swarm
        .wait_for("host1's task shut down and not replaced", &svc, |t| {
            let on_a: Vec<&Task> = t.iter().filter(|t| t.node_id == a).collect();
            (on_a.len() == 1 && task::state(on_a[0]) == TaskState::Shutdown as i32).then_some(())
        })
        .await;
    orchestrator_caught_up(&swarm, "drained").await;
    assert_eq!(running(&swarm.tasks(&svc)).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_history_is_kept_to_the_limit() {
    let mut swarm = TestSwarm::start(3).await;
    // Tasks fail until the slot's sixth restart, which keeps running.
    swarm.run_agents(Arc::new(|t: &Task| {
        if t.restart_count < 6
            && t.desired_state <= TaskState::Running as i32
            && task::state(t) == TaskState::Assigned as i32
        {
            Some((TaskState::Failed, 1))
        } else {
            default_reaction(t)
        }
    }));
    swarm.add_node("host1", |_| {}).await;
    let svc = swarm
        .create_service("flaky", replicated(1), |t| {
            t.restart = Some(restart(Condition::Any, Duration::ZERO, 0))
        })
        .await;
    let tasks = swarm
        .wait_for(
            "the sixth restart running and history trimmed to 3",
            &svc,
            |t| {
                let settled = running(t).iter().any(|t| t.restart_count == 6) && t.len() == 3;
                settled.then(|| t.to_vec())
            },
        )
        .await;
    let counts: BTreeSet<u32> = tasks.iter().map(|t| t.restart_count).collect();
    assert_eq!(
        counts,
        BTreeSet::from([4, 5, 6]),
        "the oldest tasks were deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_service_leaves_no_tasks() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    swarm.add_node("host1", |_| {}).await;
    let svc = swarm.create_service("web", replicated(3), |_| {}).await;
    swarm
        .wait_for("3 running tasks", &svc, |t| {
            (running(t).len() == 3).then_some(())
        })
        .await;
    swarm.remove_service(&svc).await;
    swarm
        .wait_for("every task deleted", &svc, |t| t.is_empty().then_some(()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_service_replaces_its_tasks() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    swarm.add_node("host1", |_| {}).await;
    let svc = swarm.create_service("web", replicated(2), |_| {}).await;
    swarm
        .wait_for("2 running tasks", &svc, |t| {
            (running(t).len() == 2).then_some(())
        })
        .await;
    swarm
        .update_service(&svc, |s| {
            if let Some(c) = s.task.as_mut().and_then(|t| t.container.as_mut()) {
                c.image = "busybox:2".into();
            }
        })
        .await;
    let tasks = swarm
        .wait_for("2 running tasks of spec version 2", &svc, |t| {
            let new = running(t).iter().filter(|t| t.spec_version == 2).count();
            (new == 2 && running(t).len() == 2).then(|| t.to_vec())
        })
        .await;
    let image = |t: &Task| {
        t.spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .map(|c| c.image.clone())
    };
    assert!(running(&tasks)
        .iter()
        .all(|t| image(t).as_deref() == Some("busybox:2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_keeps_its_tasks_but_gets_no_new_ones() {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    let a = swarm.add_node("host1", |_| {}).await;
    let b = swarm.add_node("host2", |_| {}).await;
    let svc = swarm.create_service("web", replicated(2), |_| {}).await;
    swarm
        .wait_for("2 running tasks", &svc, |t| {
            (running(t).len() == 2).then_some(())
        })
        .await;
    swarm.set_availability(&a, NodeAvailability::Pause).await;
    swarm.scale(&svc, 4).await;
    let tasks = swarm
        .wait_for("4 running tasks", &svc, |t| {
            (running(t).len() == 4).then(|| t.to_vec())
        })
        .await;
    let on = per_node(&tasks);
    assert_eq!(on.get(&a).copied(), Some(1), "host1 keeps its task: {on:?}");
    assert_eq!(
        on.get(&b).copied(),
        Some(3),
        "new tasks all went to host2: {on:?}"
    );
    assert_eq!(swarm.tasks(&svc).len(), 4, "nothing was moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billion_replicas_come_in_batches_and_removal_stops_them() {
    let swarm = TestSwarm::start(5).await;
    // No node: the tasks stay unplaced, so only the orchestrator works.
    let huge = swarm
        .create_service("huge", replicated(1_000_000_000), |_| {})
        .await;
    // Several batches went in: the loop keeps coming back on its own.
    swarm
        .wait_for("three batches of tasks", &huge, |t| {
            (t.len() >= 3 * super::plan::MAX_CREATES_PER_SERVICE).then_some(())
        })
        .await;
    swarm.remove_service(&huge).await;
    swarm
        .wait_for("the removed service's tasks gone", &huge, |t| {
            t.is_empty().then_some(())
        })
        .await;
    // Proof that the loop made passes after the removal: a new service
    // gets its task, and the removed one still has none.
    let small = swarm.create_service("small", replicated(1), |_| {}).await;
    swarm
        .wait_for("the new service's task", &small, |t| {
            (t.len() == 1).then_some(())
        })
        .await;
    assert!(swarm.tasks(&huge).is_empty(), "tasks created after removal");
}

#[test]
fn one_pass_plans_at_most_a_batch_per_service() {
    use super::restart::{Clock, RestartSupervisor};
    use super::view::ClusterView;
    use rswarm_proto::types::{Service, ServiceSpec};
    let view = ClusterView::<()> {
        nodes: HashMap::new(),
        services: HashMap::new(),
        tasks: HashMap::new(),
        tasks_by_service: HashMap::new(),
        cluster: None,
        observer: (),
    };
    let svc = Service {
        id: "s".into(),
        spec: Some(ServiceSpec {
            mode: Some(replicated(1_000_000_000)),
            ..Default::default()
        }),
        spec_version: 1,
        ..Default::default()
    };
    let mut plan = super::plan::Plan::default();
    let clock = Clock::now();
    super::replicated::reconcile(
        &view,
        &svc,
        1_000_000_000,
        &mut RestartSupervisor::default(),
        clock,
        &mut plan,
    );
    assert_eq!(plan.puts.len(), super::plan::MAX_CREATES_PER_SERVICE);
    assert_eq!(plan.wake_at, Some(clock.instant), "comes back at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_billion_replicas_down_stops_the_creation() {
    let swarm = TestSwarm::start(5).await;
    let huge = swarm
        .create_service("huge", replicated(1_000_000_000), |_| {})
        .await;
    swarm
        .wait_for("two batches of tasks", &huge, |t| {
            (t.len() >= 2 * super::plan::MAX_CREATES_PER_SERVICE).then_some(())
        })
        .await;
    swarm.scale(&huge, 2).await;
    let after = swarm
        .wait_for("two wanted tasks left", &huge, |t| {
            let wanted = t.iter().filter(|t| task::is_wanted(t)).count();
            (wanted == 2).then_some(t.len())
        })
        .await;
    // Proof that the loop made passes after the scale: a new service gets
    // its task, and the scaled-down one has no more tasks than before.
    let small = swarm.create_service("small", replicated(1), |_| {}).await;
    swarm
        .wait_for("the new service's task", &small, |t| {
            (t.len() == 1).then_some(())
        })
        .await;
    let tasks = swarm.tasks(&huge);
    assert!(
        tasks.len() <= after,
        "{} tasks, {after} before",
        tasks.len()
    );
    assert_eq!(tasks.iter().filter(|t| task::is_wanted(t)).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_waits_for_the_job_it_depends_on_to_complete() {
    use rswarm_proto::types::service_dependency::Condition as Needs;
    use rswarm_proto::types::ServiceDependency;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut swarm = TestSwarm::start(5).await;
    let release = Arc::new(AtomicBool::new(false));
    let released = release.clone();
    // The job's task runs until the test releases it, then completes.
    swarm.run_agents(Arc::new(move |t: &Task| {
        let job = t.desired_state == TaskState::Complete as i32;
        if job && task::state(t) == TaskState::Running as i32 && released.load(Ordering::SeqCst) {
            return Some((TaskState::Complete, 0));
        }
        default_reaction(t).map(|(s, e)| {
            if job && s == TaskState::Complete {
                (TaskState::Running, 0)
            } else {
                (s, e)
            }
        })
    }));
    swarm.add_node("host1", |_| {}).await;
    let job = swarm
        .create_service(
            "migrate",
            Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 1,
                total_completions: 1,
            }),
            |t| t.restart = Some(restart(Condition::None, Duration::ZERO, 0)),
        )
        .await;
    let web = swarm
        .create_service_spec("web", replicated(2), |s| {
            s.depends_on = vec![ServiceDependency {
                service: "migrate".into(),
                condition: Needs::CompletedSuccessfully as i32,
            }]
        })
        .await;
    swarm
        .wait_for("the job's task to run", &job, |t| {
            (running(t).len() == 1).then_some(())
        })
        .await;
    orchestrator_caught_up(&swarm, "before").await;
    assert!(
        swarm.tasks(&web).is_empty(),
        "web has tasks before its dependency completed: {:?}",
        swarm.tasks(&web)
    );

    release.store(true, Ordering::SeqCst);
    let done_at = swarm
        .wait_for("the job to complete", &job, |t| {
            t.iter()
                .find(|t| task::completed(t))
                .and_then(|t| t.status.as_ref().map(|s| s.timestamp))
        })
        .await;
    let tasks = swarm
        .wait_for("web's 2 tasks to run", &web, |t| {
            (running(t).len() == 2).then(|| t.to_vec())
        })
        .await;
    for t in &tasks {
        assert!(
            task::created_at(t) >= done_at,
            "web's task was created before the job completed"
        );
    }
}
