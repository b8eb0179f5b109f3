//! Compose's `depends_on`, honoured: a service whose spec names
//! dependencies gets its first tasks only once each dependency meets its
//! condition — started (every replica running), healthy (and every running
//! replica with a health check healthy) or completed successfully (a job
//! whose every completion exited 0). Swarm ignores `depends_on`; we wait.
//!
//! The gate holds only while the service has no task at all: once it has
//! started, a dependency that restarts or fails later does not stop it, as
//! in Compose. A waiting service is looked at again every [`RECHECK`].

use std::collections::BTreeSet;
use std::time::Duration;

use rswarm_proto::types::service_dependency::Condition;
use rswarm_proto::types::{Service, ServiceDependency, Task, TaskState};

use super::task::{self, job_iteration, service_name, ModeKind};
use super::view::ClusterView;

/// How often a waiting service looks at its dependencies again.
pub(crate) const RECHECK: Duration = Duration::from_millis(500);

/// Why `svc` may not get tasks yet (the first unmet dependency), or `None`
/// when it may: it has no dependencies, all are met, or it started before.
pub(crate) fn waiting_for<O: super::view::TaskObserver>(
    view: &ClusterView<O>,
    svc: &Service,
) -> Option<String> {
    let deps = svc.spec.as_ref().map(|s| s.depends_on.as_slice())?;
    if deps.is_empty() || view.service_tasks(&svc.id).next().is_some() {
        return None;
    }
    deps.iter().find_map(|d| unmet(view, d))
}

/// The reason `d` is not met yet, or `None` when it is.
fn unmet<O: super::view::TaskObserver>(
    view: &ClusterView<O>,
    d: &ServiceDependency,
) -> Option<String> {
    let Some(dep) = view
        .services
        .values()
        .find(|s| service_name(s) == d.service)
    else {
        return Some(format!("dependency {} does not exist", d.service));
    };
    let tasks: Vec<&Task> = view.service_tasks(&dep.id).collect();
    let condition = d.condition();
    let met = match condition {
        Condition::CompletedSuccessfully => completed_successfully(dep, &tasks),
        Condition::Started => all_running(dep, &tasks, false),
        Condition::Healthy => all_running(dep, &tasks, true),
    };
    (!met).then(|| {
        let what = match condition {
            Condition::Started => "to start",
            Condition::Healthy => "to be healthy",
            Condition::CompletedSuccessfully => "to complete successfully",
        };
        format!("waiting for {} {what}", d.service)
    })
}

/// Whether a running task counts as healthy: it reported "healthy", or it
/// has no health check (the agent reports "starting" with RUNNING for a task
/// that has one, and "" only when there is none).
fn healthy(t: &Task) -> bool {
    let health = t.status.as_ref().map(|s| s.health.as_str()).unwrap_or("");
    health.is_empty() || health == "healthy"
}

/// Every wanted replica of `dep` is running (and healthy when asked). A
/// job counts as started once one of its tasks of the current iteration
/// runs or has completed.
fn all_running(dep: &Service, tasks: &[&Task], need_healthy: bool) -> bool {
    let running = |t: &&&Task| {
        t.desired_state <= TaskState::Complete as i32
            && task::state(t) == TaskState::Running as i32
            && (!need_healthy || healthy(t))
    };
    match ModeKind::of(dep) {
        ModeKind::Replicated { replicas } => {
            let slots: BTreeSet<u64> = tasks.iter().filter(running).map(|t| t.slot).collect();
            slots.len() as u64 >= replicas
        }
        ModeKind::Global => {
            // Every live task runs, and there is at least one.
            let live: Vec<&&Task> = tasks
                .iter()
                .filter(|t| t.desired_state <= TaskState::Running as i32 && !task::has_ended(t))
                .collect();
            !live.is_empty() && live.iter().all(running)
        }
        ModeKind::ReplicatedJob { .. } | ModeKind::GlobalJob => {
            let iteration = job_iteration(dep);
            tasks
                .iter()
                .filter(|t| t.job_iteration == iteration)
                .any(|t| task::completed(t) || running(&t))
        }
    }
}

/// `dep` is a job whose current iteration finished with every completion
/// successful. A service that is not a job never completes.
fn completed_successfully(dep: &Service, tasks: &[&Task]) -> bool {
    let iteration = job_iteration(dep);
    let current: Vec<&&Task> = tasks
        .iter()
        .filter(|t| t.job_iteration == iteration)
        .collect();
    match ModeKind::of(dep) {
        ModeKind::ReplicatedJob { total, .. } => {
            let done: BTreeSet<u64> = current
                .iter()
                .filter(|t| task::completed(t))
                .map(|t| t.slot)
                .collect();
            (1..=total).all(|slot| done.contains(&slot))
        }
        ModeKind::GlobalJob => {
            // Every node's task of this iteration has ended, all with exit 0.
            let wanted: Vec<&&&Task> = current.iter().filter(|t| task::is_wanted(t)).collect();
            !wanted.is_empty() && wanted.iter().all(|t| task::completed(t))
        }
        ModeKind::Replicated { .. } | ModeKind::Global => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::service_spec::Mode;
    use rswarm_proto::types::{
        Annotations, ContainerStatus, ReplicatedJob, ReplicatedService, ServiceSpec, TaskStatus,
    };

    fn service(id: &str, mode: Mode, deps: Vec<ServiceDependency>) -> Service {
        Service {
            id: id.into(),
            spec: Some(ServiceSpec {
                annotations: Some(Annotations {
                    name: id.into(),
                    ..Default::default()
                }),
                mode: Some(mode),
                depends_on: deps,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn dep(name: &str, condition: Condition) -> ServiceDependency {
        ServiceDependency {
            service: name.into(),
            condition: condition as i32,
        }
    }

    fn task(id: &str, service: &str, slot: u64, state: TaskState, health: &str) -> Task {
        Task {
            id: id.into(),
            service_id: service.into(),
            slot,
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: state as i32,
                health: health.into(),
                container_status: Some(ContainerStatus::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn view(services: Vec<Service>, tasks: Vec<Task>) -> ClusterView<()> {
        let mut v = ClusterView::empty(());
        for s in services {
            v.services.insert(s.id.clone(), s);
        }
        for t in tasks {
            v.insert_task(t);
        }
        v
    }

    fn replicated(n: u64) -> Mode {
        Mode::Replicated(ReplicatedService { replicas: n })
    }

    #[test]
    fn a_service_without_dependencies_never_waits() {
        let web = service("web", replicated(1), vec![]);
        assert_eq!(waiting_for(&view(vec![web.clone()], vec![]), &web), None);
    }

    #[test]
    fn started_means_every_replica_running() {
        let web = service("web", replicated(1), vec![dep("db", Condition::Started)]);
        let db = service("db", replicated(2), vec![]);
        let one = vec![task("t1", "db", 1, TaskState::Running, "")];
        let v = view(vec![web.clone(), db.clone()], one.clone());
        assert_eq!(
            waiting_for(&v, &web).as_deref(),
            Some("waiting for db to start")
        );
        let mut two = one;
        two.push(task("t2", "db", 2, TaskState::Running, ""));
        assert_eq!(waiting_for(&view(vec![web.clone(), db], two), &web), None);
    }

    #[test]
    fn healthy_waits_for_a_starting_health_check() {
        let web = service("web", replicated(1), vec![dep("db", Condition::Healthy)]);
        let db = service("db", replicated(1), vec![]);
        let starting = vec![task("t1", "db", 1, TaskState::Running, "starting")];
        let v = view(vec![web.clone(), db.clone()], starting);
        assert_eq!(
            waiting_for(&v, &web).as_deref(),
            Some("waiting for db to be healthy")
        );
        let healthy = vec![task("t1", "db", 1, TaskState::Running, "healthy")];
        assert_eq!(
            waiting_for(&view(vec![web.clone(), db], healthy), &web),
            None
        );
    }

    #[test]
    fn completed_successfully_needs_every_completion_with_exit_0() {
        let web = service(
            "web",
            replicated(1),
            vec![dep("migrate", Condition::CompletedSuccessfully)],
        );
        let job = service(
            "migrate",
            Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 1,
                total_completions: 2,
            }),
            vec![],
        );
        let mut t1 = task("t1", "migrate", 1, TaskState::Complete, "");
        t1.desired_state = TaskState::Complete as i32;
        let mut t2 = task("t2", "migrate", 2, TaskState::Running, "");
        t2.desired_state = TaskState::Complete as i32;
        let v = view(vec![web.clone(), job.clone()], vec![t1.clone(), t2.clone()]);
        assert_eq!(
            waiting_for(&v, &web).as_deref(),
            Some("waiting for migrate to complete successfully")
        );
        let mut failed = t2.clone();
        failed.status.as_mut().unwrap().state = TaskState::Complete as i32;
        failed.status.as_mut().unwrap().container_status = Some(ContainerStatus {
            exit_code: 3,
            ..Default::default()
        });
        let v = view(vec![web.clone(), job.clone()], vec![t1.clone(), failed]);
        assert!(waiting_for(&v, &web).is_some(), "exit 3 is not a success");
        t2.status.as_mut().unwrap().state = TaskState::Complete as i32;
        assert_eq!(
            waiting_for(&view(vec![web.clone(), job], vec![t1, t2]), &web),
            None
        );
    }

    #[test]
    fn a_missing_dependency_is_waited_for_and_named() {
        let web = service("web", replicated(1), vec![dep("db", Condition::Started)]);
        assert_eq!(
            waiting_for(&view(vec![web.clone()], vec![]), &web).as_deref(),
            Some("dependency db does not exist")
        );
    }

    #[test]
    fn a_started_service_is_not_held_back_by_a_dependency_that_fails_later() {
        let web = service("web", replicated(1), vec![dep("db", Condition::Started)]);
        let db = service("db", replicated(1), vec![]);
        let tasks = vec![
            task("w1", "web", 1, TaskState::Running, ""),
            task("d1", "db", 1, TaskState::Failed, ""),
        ];
        assert_eq!(waiting_for(&view(vec![web.clone(), db], tasks), &web), None);
    }
}
