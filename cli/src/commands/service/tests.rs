//! Unit tests of `service`.

use std::collections::{HashMap, HashSet};

use super::converge::{
    snapshot, snapshot_view, status_turn, Following, ProgressWriter, StatusTurn, View,
};
use super::logs::{log_prefix, log_timestamp, parse_since, parse_tail, LogContext};
use super::ls::{parse_service_filters, service_matches};
use super::scale::parse_scales;
use super::*;
use clap::Parser;
use rswarm_proto::control::LogLine;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    Annotations, Meta, ReplicatedService, ServiceSpec, Task, TaskState, TaskStatus,
};

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    cmd: ServiceCommand,
}

fn parse(line: &str) -> Result<ServiceCommand, String> {
    let argv = ["service"].into_iter().chain(line.split_whitespace());
    Cli::try_parse_from(argv)
        .map(|c| c.cmd)
        .map_err(|e| e.to_string())
}

#[test]
fn flags_do_not_clash() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn create_takes_dockers_command_line() {
    let cmd = parse("create --name web --replicas 6 --publish 8080:80 --constraint node.role==worker --limit-memory 64M -d registry.local:5000/busybox:1 httpd -f -p 80")
        .unwrap_or_else(|e| panic!("{e}"));
    let ServiceCommand::Create(a) = cmd else {
        panic!("not create: {cmd:?}");
    };
    assert_eq!(a.progress.detach, Some(true));
    assert_eq!(
        a.image_and_args,
        ["registry.local:5000/busybox:1", "httpd", "-f", "-p", "80"]
    );
    let spec = a
        .flags
        .to_spec(&a.image_and_args[0], &a.image_and_args[1..])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        spec.mode,
        Some(Mode::Replicated(ReplicatedService { replicas: 6 }))
    );

    let ServiceCommand::Create(a) =
        parse("create --detach=false busybox").unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("not create");
    };
    assert_eq!(a.progress.detach, Some(false));
    assert!(parse("create --bogus busybox").is_err());
    let ServiceCommand::Create(a) =
        parse("create busybox -x --name y").unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("not create");
    };
    // As in Docker, everything after IMAGE belongs to the command.
    assert_eq!(a.image_and_args, ["busybox", "-x", "--name", "y"]);
    assert_eq!(a.flags.name, None);
    assert!(parse("create").is_err());
}

#[test]
fn scale_specifiers_are_checked_first() {
    assert_eq!(
        parse_scales(&["web=3".into(), "api=0".into()]).map_err(|e| e.to_string()),
        Ok(vec![("web".to_string(), 3), ("api".to_string(), 0)])
    );
    let err = |s: &str| {
        parse_scales(&[s.to_string()])
            .map_err(|e| e.to_string())
            .err()
    };
    assert_eq!(
        err("web"),
        Some("invalid scale specifier 'web': expected SERVICE=REPLICAS".into())
    );
    assert_eq!(
        err("web=x"),
        Some(
            "web: invalid replicas value x: strconv.ParseUint: parsing \"x\": invalid syntax"
                .into()
        )
    );
}

#[test]
fn service_filters() {
    let svc = Service {
        id: "abc".into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: "web".into(),
                labels: [("tier".to_string(), "front".to_string())].into(),
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas: 1 })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = |fs: &[&str]| {
        let raw: Vec<String> = fs.iter().map(|s| s.to_string()).collect();
        service_matches(
            &svc,
            &parse_service_filters(&raw).unwrap_or_else(|e| panic!("{e}")),
        )
    };
    assert!(m(&[
        "name=we",
        "mode=replicated",
        "label=tier=front",
        "id=ab"
    ]));
    assert!(!m(&["mode=global"]));
    assert!(m(&["mode=global", "mode=replicated"]));
    assert!(!m(&["label=tier=back"]));
    assert!(parse_service_filters(&["mode=daemon".into()]).is_err());
    assert!(parse_service_filters(&["colour=red".into()]).is_err());
}

fn svc(replicas: u64) -> Service {
    Service {
        id: "s1".into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: "web".into(),
                labels: HashMap::new(),
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn t(id: &str, slot: u64, state: TaskState, created: i64, err: &str) -> Task {
    Task {
        id: id.into(),
        service_id: "s1".into(),
        slot,
        node_id: "n1".into(),
        meta: Some(Meta {
            version: None,
            created_at: created,
            updated_at: created,
            spec_version: None,
        }),
        desired_state: TaskState::Running as i32,
        status: Some(TaskStatus {
            state: state as i32,
            err: err.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn progress_counts_running_slots() {
    let names = HashMap::from([("n1".to_string(), "host1".to_string())]);
    let tasks = [
        t("a", 1, TaskState::Running, 1, ""),
        t("b", 2, TaskState::Preparing, 1, ""),
        t("c", 3, TaskState::Running, 1, ""),
    ];
    let s = snapshot(&svc(3), &tasks, &names, &HashSet::new(), false);
    assert_eq!(s.header, "overall progress: 2 out of 3 tasks");
    assert!(!s.done);
    assert_eq!(s.lines[1].label, "2/3");
    assert_eq!(s.lines[1].state, TaskState::Preparing);
    assert_eq!(s.waiting_on.as_deref(), Some("web.2 is preparing"));
    let writer = ProgressWriter {
        quiet: false,
        tty: true,
        drawn: 0,
        printed: vec![],
    };
    assert_eq!(
        writer.render_line(&s.lines[0], s.max_progress),
        format!("1/3: running   [{}>]", "=".repeat(50))
    );
    let all = [
        t("a", 1, TaskState::Running, 1, ""),
        t("b", 2, TaskState::Running, 1, ""),
        t("c", 3, TaskState::Running, 1, ""),
    ];
    assert!(snapshot(&svc(3), &all, &names, &HashSet::new(), false).done);
}

#[test]
fn a_rejected_task_is_the_failure() {
    let names = HashMap::new();
    let tasks = [
        t("a1", 1, TaskState::Rejected, 1, "pull access denied for registry.local:5000/nope, repository does not exist or may require 'docker login'"),
        t("a2", 1, TaskState::Pending, 2, ""),
    ];
    let s = snapshot(&svc(1), &tasks, &names, &HashSet::new(), false);
    assert_eq!(
        s.failure.as_deref(),
        Some("task web.1 (a1) rejected: pull access denied for registry.local:5000/nope, repository does not exist or may require 'docker login'")
    );
    assert_eq!(s.lines.len(), 1);
    assert_eq!(s.lines[0].state, TaskState::Pending);
    let only_rejected = snapshot(&svc(1), &tasks[..1], &names, &HashSet::new(), false);
    assert_eq!(only_rejected.lines[0].state, TaskState::Rejected);
    // Failures from before the wait (a scale) are history.
    let old = HashSet::from(["a1".to_string()]);
    assert_eq!(snapshot(&svc(1), &tasks, &names, &old, false).failure, None);
}

#[test]
fn pending_with_a_reason_is_blocked() {
    let names = HashMap::new();
    let mut pending = t("p", 1, TaskState::Pending, 1, "");
    if let Some(s) = pending.status.as_mut() {
        s.message = "no suitable node (insufficient memory on 3 nodes)".into();
    }
    let s = snapshot(&svc(1), &[pending], &names, &HashSet::new(), false);
    assert!(s.blocked);
    assert_eq!(
        s.waiting_on.as_deref(),
        Some("web.1 is pending: no suitable node (insufficient memory on 3 nodes)")
    );
}

#[test]
fn log_prefixes_match_docker() {
    let names = HashMap::from([("n2".to_string(), "host2".to_string())]);
    let line = LogLine {
        service_id: "s1".into(),
        task_id: "x7k2p9q4m1n8b3v6c5z0a2s4d".into(),
        node_id: "n2".into(),
        slot: 1,
        task_name: "web.1".into(),
        node_name: String::new(),
        timestamp: 1_494_975_164_991_066_200,
        stream: 1,
        data: b"hello".to_vec(),
    };
    let mut ctx = LogContext {
        node_names: &names,
        padding: 2,
        no_task_ids: false,
        no_trunc: false,
        no_resolve: false,
    };
    assert_eq!(
        log_prefix(&line, "web", &ctx),
        "web.1.x7k2p9q4m1n8@host2     | "
    );
    ctx.no_task_ids = true;
    ctx.padding = 1;
    assert_eq!(log_prefix(&line, "web", &ctx), "web.1@host2    | ");
    assert_eq!(
        log_timestamp(line.timestamp),
        "2017-05-16T22:52:44.991066200Z"
    );
    assert_eq!(parse_tail("all").map_err(|e| e.to_string()), Ok(-1));
    assert_eq!(parse_tail("10").map_err(|e| e.to_string()), Ok(10));
    assert!(parse_tail("ten").is_err());
    assert_eq!(
        parse_since("10s", 20_000_000_000).map_err(|e| e.to_string()),
        Ok(10_000_000_000)
    );
    assert_eq!(
        parse_since("2017-05-16T22:52:44Z", 0).map_err(|e| e.to_string()),
        Ok(1_494_975_164_000_000_000)
    );
}

#[test]
fn update_and_rollback_parse_as_docker_spells_them() {
    let parse = |line: &str| {
        Cli::try_parse_from(std::iter::once("service").chain(line.split_whitespace()))
            .map(|c| c.cmd)
            .map_err(|e| e.to_string())
    };
    match parse("update --image busybox:2 --env-add A=1 -d --force web") {
        Ok(ServiceCommand::Update(a)) => {
            assert_eq!(a.service, "web");
            assert_eq!(a.progress.detach, Some(true));
            assert!(a.flags.force);
            assert_eq!(a.flags.image.as_deref(), Some("busybox:2"));
        }
        other => panic!("{other:?}"),
    }
    match parse("rollback -q web") {
        Ok(ServiceCommand::Rollback(a)) => assert!(a.progress.quiet && a.progress.detach.is_none()),
        other => panic!("{other:?}"),
    }
    // Create's flags that update spells differently are not update's.
    assert!(parse("update -e A=1 web").is_err());
    assert!(parse("update --name x web").is_err());
    assert!(parse("update web other").is_err());
}

#[test]
fn an_update_counts_only_tasks_of_the_current_spec() {
    let names = HashMap::new();
    let mut service = svc(2);
    service.spec_version = 2;
    if let Some(spec) = service.spec.as_mut() {
        spec.task = Some(rswarm_proto::types::TaskSpec {
            force_update: 1,
            ..Default::default()
        });
    }
    let task = |id: &str, slot: u64, state: TaskState, version: u64| Task {
        spec_version: version,
        ..t(id, slot, state, version as i64, "")
    };
    let tasks = [
        task("old1", 1, TaskState::Running, 1),
        task("old2", 2, TaskState::Running, 1),
        task("new1", 1, TaskState::Running, 2),
    ];
    let all = snapshot(&service, &tasks, &names, &HashSet::new(), false);
    assert!(all.done, "every slot runs some task");
    let view = View {
        up_to_date: true,
        rolling_back: false,
    };
    let s = snapshot_view(&service, &tasks, &names, &HashSet::new(), false, view);
    assert_eq!(s.header, "overall progress: 1 out of 2 tasks");
    assert!(!s.done);
    let back = View {
        up_to_date: true,
        rolling_back: true,
    };
    let s = snapshot_view(&service, &tasks, &names, &HashSet::new(), false, back);
    assert_eq!(
        s.header,
        "overall progress: rolling back update: 1 out of 2 tasks"
    );
    // After a rollback, a task the update never reached runs the current
    // template again: it counts.
    let template = rswarm_proto::types::TaskSpec {
        force_update: 7,
        ..Default::default()
    };
    if let Some(spec) = service.spec.as_mut() {
        spec.task = Some(template.clone());
    }
    let mut kept = task("old2", 2, TaskState::Running, 1);
    kept.spec = Some(template);
    let tasks = [task("new1", 1, TaskState::Running, 2), kept];
    let s = snapshot_view(&service, &tasks, &names, &HashSet::new(), false, back);
    assert!(s.done, "{s:?}");
}

#[test]
fn the_update_status_decides_as_dockers_display() {
    use rswarm_proto::types::update_status::State;
    use rswarm_proto::types::UpdateStatus;
    let with = |state: State, message: &str| {
        let mut s = svc(1);
        s.update_status = Some(UpdateStatus {
            state: state as i32,
            message: message.into(),
            ..Default::default()
        });
        s
    };
    let turn = |s: &Service, f: Following| {
        let (mut note, mut back) = (None, false);
        let t = status_turn(s, f, &mut note, &mut back);
        (t, note, back)
    };
    assert_eq!(
        turn(
            &with(State::Updating, "update in progress"),
            Following::Update
        ),
        (StatusTurn::Moving, None, false)
    );
    assert_eq!(
        turn(
            &with(
                State::Paused,
                "update paused due to failure or early termination of task x"
            ),
            Following::Update
        )
        .0,
        StatusTurn::Fails(
            "service update paused: update paused due to failure or early termination of task x"
                .into()
        )
    );
    assert_eq!(
        turn(
            &with(State::RollbackStarted, "manually requested rollback"),
            Following::Rollback
        ),
        (
            StatusTurn::Moving,
            Some("rollback: manually requested rollback".into()),
            true
        )
    );
    assert_eq!(
        turn(
            &with(State::RollbackPaused, "rollback paused"),
            Following::Rollback
        )
        .0,
        StatusTurn::Fails("service rollback paused: rollback paused".into())
    );
    assert_eq!(
        turn(
            &with(State::RollbackCompleted, "rollback completed"),
            Following::Update
        )
        .0,
        StatusTurn::Fails("service rolled back: rollback completed".into())
    );
    assert_eq!(
        turn(
            &with(State::RollbackCompleted, "rollback completed"),
            Following::Rollback
        )
        .0,
        StatusTurn::Finished
    );
    assert_eq!(
        turn(
            &with(State::Completed, "update completed"),
            Following::Update
        )
        .0,
        StatusTurn::Finished
    );
    // A create or scale does not follow an earlier update's status.
    assert_eq!(
        turn(&with(State::Paused, "x"), Following::Change).0,
        StatusTurn::Nothing
    );
    assert_eq!(turn(&svc(1), Following::Update).0, StatusTurn::Nothing);
}
