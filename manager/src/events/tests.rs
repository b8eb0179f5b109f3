use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use rswarm_proto::control::{Event, EventActor, EventFilter, EventsRequest};
use rswarm_proto::types::{
    service_spec::Mode, Annotations, ContainerSpec, Meta, Node, NodeDescription, NodeSpec,
    NodeState, NodeStatus, ReplicatedService, Secret, SecretSpec, Service, ServiceSpec, Task,
    TaskSpec, TaskState, TaskStatus, Version,
};
use rswarm_raft::Change;
use tokio_stream::StreamExt;

use super::filter::{FilterError, Filters};
use super::*;

fn put<M: Message>(kind: &str, id: &str, index: u64, m: &M) -> Change {
    Change {
        index,
        kind: kind.into(),
        id: id.into(),
        value: Some(m.encode_to_vec()),
    }
}

fn delete(kind: &str, id: &str, index: u64) -> Change {
    Change {
        index,
        kind: kind.into(),
        id: id.into(),
        value: None,
    }
}

fn node(state: NodeState) -> Node {
    Node {
        id: "n1".into(),
        spec: Some(NodeSpec::default()),
        description: Some(NodeDescription {
            hostname: "host2".into(),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(replicas: u64, image: &str, spec_version: u64) -> Service {
    Service {
        id: "s1".into(),
        meta: Some(Meta {
            spec_version: Some(Version {
                index: spec_version,
            }),
            ..Default::default()
        }),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(state: TaskState) -> Task {
    Task {
        id: "t1".into(),
        service_id: "s1".into(),
        slot: 1,
        node_id: "n1".into(),
        service_annotations: Some(Annotations {
            name: "web".into(),
            ..Default::default()
        }),
        status: Some(TaskStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attr<'a>(e: &'a Event, k: &str) -> Option<&'a str> {
    e.actor.as_ref()?.attributes.get(k).map(|s| s.as_str())
}

#[test]
fn a_node_going_down_is_an_update_with_old_and_new_state() {
    let mut t = Tracker::default();
    let e = t
        .change(&put("node", "n1", 1, &node(NodeState::Ready)), 5)
        .unwrap();
    assert_eq!((e.r#type.as_str(), e.action.as_str()), ("node", "create"));
    assert_eq!(attr(&e, "name"), Some("host2"));
    // A heartbeat's rewrite with nothing an event tells: no event.
    assert!(t
        .change(&put("node", "n1", 2, &node(NodeState::Ready)), 6)
        .is_none());
    let e = t
        .change(&put("node", "n1", 3, &node(NodeState::Down)), 7)
        .unwrap();
    assert_eq!(e.action, "update");
    assert_eq!(attr(&e, "state.old"), Some("ready"));
    assert_eq!(attr(&e, "state.new"), Some("down"));
    assert_eq!((e.index, e.time_nano), (3, 7));
    let e = t.change(&delete("node", "n1", 4), 8).unwrap();
    assert_eq!(
        (e.action.as_str(), attr(&e, "name")),
        ("remove", Some("host2"))
    );
    assert!(t.change(&delete("node", "n1", 5), 9).is_none());
}

#[test]
fn service_updates_tell_image_and_replicas_and_skip_status_writes() {
    let mut t = Tracker::default();
    let e = t
        .change(&put("service", "s1", 1, &service(1, "a:1", 1)), 0)
        .unwrap();
    assert_eq!(
        (e.action.as_str(), attr(&e, "name")),
        ("create", Some("web"))
    );
    // An allocation (same spec version): no event.
    assert!(t
        .change(&put("service", "s1", 2, &service(1, "a:1", 1)), 0)
        .is_none());
    let e = t
        .change(&put("service", "s1", 3, &service(3, "a:2", 2)), 0)
        .unwrap();
    assert_eq!(e.action, "update");
    assert_eq!(attr(&e, "replicas.old"), Some("1"));
    assert_eq!(attr(&e, "replicas.new"), Some("3"));
    assert_eq!(attr(&e, "image.old"), Some("a:1"));
    assert_eq!(attr(&e, "image.new"), Some("a:2"));
}

#[test]
fn task_state_changes_are_docker_style_actions() {
    let mut t = Tracker::default();
    t.change(&put("node", "n1", 1, &node(NodeState::Ready)), 0);
    let e = t
        .change(&put("task", "t1", 2, &task(TaskState::Pending)), 0)
        .unwrap();
    assert_eq!(e.action, "create");
    assert_eq!(attr(&e, "name"), Some("web.1"));
    assert_eq!(attr(&e, "service.name"), Some("web"));
    assert_eq!(attr(&e, "node.name"), Some("host2"));
    let e = t
        .change(&put("task", "t1", 3, &task(TaskState::Starting)), 0)
        .unwrap();
    assert_eq!(e.action, "update");
    let e = t
        .change(&put("task", "t1", 4, &task(TaskState::Running)), 0)
        .unwrap();
    assert_eq!(e.action, "start");
    assert_eq!(attr(&e, "state.old"), Some("starting"));
    assert_eq!(attr(&e, "state.new"), Some("running"));
    // A health report (same state): no event.
    assert!(t
        .change(&put("task", "t1", 5, &task(TaskState::Running)), 0)
        .is_none());
    let mut failed = task(TaskState::Failed);
    if let Some(s) = failed.status.as_mut() {
        s.err = "x".repeat(10_000);
        s.container_status = Some(rswarm_proto::types::ContainerStatus {
            exit_code: 3,
            ..Default::default()
        });
    }
    let e = t.change(&put("task", "t1", 6, &failed), 0).unwrap();
    assert_eq!(e.action, "fail");
    assert_eq!(attr(&e, "exitCode"), Some("3"));
    assert!(
        attr(&e, "error").unwrap().len() < 300,
        "error attribute is bounded"
    );
    assert_eq!(
        t.change(&put("task", "t1", 7, &task(TaskState::Complete)), 0)
            .unwrap()
            .action,
        "die"
    );
}

#[test]
fn secrets_give_their_name_and_never_their_data() {
    let mut t = Tracker::default();
    let s = Secret {
        id: "x1".into(),
        spec: Some(SecretSpec {
            annotations: Some(Annotations {
                name: "db-pass".into(),
                ..Default::default()
            }),
            data: b"hunter2".to_vec(),
        }),
        sealed: b"sealed-bytes".to_vec(),
        ..Default::default()
    };
    let e = t.change(&put("secret", "x1", 1, &s), 0).unwrap();
    assert_eq!((e.r#type.as_str(), e.action.as_str()), ("secret", "create"));
    let attrs = &e.actor.as_ref().unwrap().attributes;
    assert_eq!(attrs.len(), 1);
    assert_eq!(attrs.get("name").map(String::as_str), Some("db-pass"));
}

fn ev(ty: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
    Event {
        r#type: ty.into(),
        action: action.into(),
        actor: Some(EventActor {
            id: id.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        }),
        time_nano: 0,
        index: 0,
    }
}

fn filters(pairs: &[(&str, &str)]) -> Result<Filters, FilterError> {
    Filters::parse(
        &pairs
            .iter()
            .map(|(k, v)| EventFilter {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect::<Vec<_>>(),
    )
}

#[test]
fn filters_of_one_key_are_alternatives_and_keys_combine() {
    let svc = ev("service", "create", "abc123", &[("name", "web")]);
    let node = ev("node", "update", "n1", &[("name", "host2")]);
    let task = ev(
        "task",
        "start",
        "t1",
        &[
            ("service.name", "web"),
            ("service.id", "abc123"),
            ("node.name", "host2"),
        ],
    );
    let f = filters(&[("type", "node")]).unwrap();
    assert!(f.matches(&node) && !f.matches(&svc) && !f.matches(&task));
    let f = filters(&[("type", "node"), ("type", "service")]).unwrap();
    assert!(f.matches(&node) && f.matches(&svc) && !f.matches(&task));
    let f = filters(&[("type", "service"), ("event", "update")]).unwrap();
    assert!(!f.matches(&svc));
    // service= by name or ID prefix, also for the service's tasks.
    let f = filters(&[("service", "ab")]).unwrap();
    assert!(f.matches(&svc) && f.matches(&task) && !f.matches(&node));
    let f = filters(&[("service", "web"), ("type", "task")]).unwrap();
    assert!(!f.matches(&svc) && f.matches(&task));
    let f = filters(&[("node", "host2"), ("event", "start")]).unwrap();
    assert!(f.matches(&task) && !f.matches(&node));
    assert!(!filters(&[("scope", "local")]).unwrap().matches(&svc));
    assert!(filters(&[]).unwrap().matches(&svc));
}

#[test]
fn bad_filters_are_refused_in_dockers_words() {
    let err = |p: &[(&str, &str)]| filters(p).unwrap_err().to_string();
    assert_eq!(err(&[("foo", "bar")]), "Invalid filter 'foo'");
    assert!(err(&[("type", "container")]).starts_with("invalid filter 'type=container'"));
    assert!(err(&[("container", "x")]).contains("not supported"));
    assert!(err(&[("service", "")]).contains("empty"));
    assert!(err(&[("service", &"x".repeat(300))]).contains("longer than"));
    let many: Vec<(&str, &str)> = (0..65).map(|_| ("type", "node")).collect();
    assert!(err(&many).contains("too many filters"));
}

fn push(log: &EventLog, n: u64, time: i64) {
    let mut e = ev("service", "create", &format!("s{n}"), &[("name", "web")]);
    e.index = n;
    e.time_nano = time;
    log.push(e);
}

#[test]
fn the_ring_keeps_the_last_events_and_says_from_when_it_is_complete() {
    let log = EventLog::default();
    log.started(0);
    for n in 1..=(RING_CAPACITY as u64 + 5) {
        push(&log, n, n as i64 * 10);
    }
    let (kept, _rx) = log.subscribe().unwrap();
    assert_eq!(kept.events.len(), RING_CAPACITY);
    assert_eq!(kept.events[0].index, 6);
    assert_eq!(kept.complete_since_index, 6);
    assert_eq!(kept.complete_since_ns, 51);
    log.close();
    assert!(log.subscribe().is_none());
}

async fn collect(log: Arc<EventLog>, req: EventsRequest) -> (Vec<u64>, Vec<String>) {
    let mut s = events(log, req).await.unwrap();
    let (mut ids, mut warnings) = (vec![], vec![]);
    while let Some(r) = s.next().await {
        let r = r.unwrap();
        ids.extend(r.events.iter().map(|e| e.index));
        if !r.warning.is_empty() {
            warnings.push(r.warning);
        }
    }
    (ids, warnings)
}

#[tokio::test]
async fn since_and_until_bound_a_past_window_and_end_the_stream() {
    let log = Arc::new(EventLog::default());
    log.started(0);
    log.ring.lock().unwrap().complete_since_ns = 1;
    let now = crate::objects::now_nanos();
    for n in 1..=5 {
        push(&log, n, now - 1_000 + n as i64 * 100);
    }
    let req = EventsRequest {
        since_ns: Some(now - 1_000 + 200),
        until_ns: Some(now - 1_000 + 400),
        ..Default::default()
    };
    let (ids, warnings) = collect(log.clone(), req).await;
    assert_eq!(ids, vec![2, 3, 4]);
    assert!(warnings.is_empty(), "{warnings:?}");
    // `until` alone: every kept event up to it, as Docker.
    let req = EventsRequest {
        until_ns: Some(now - 1_000 + 200),
        ..Default::default()
    };
    assert_eq!(collect(log.clone(), req).await.0, vec![1, 2]);
    // Resuming after the second event at index 2 skips what was seen.
    let req = EventsRequest {
        since_ns: Some(0),
        until_ns: Some(now),
        resume_index: 3,
        resume_skip: 1,
        ..Default::default()
    };
    let (ids, warnings) = collect(log.clone(), req).await;
    assert_eq!(ids, vec![4, 5]);
    assert_eq!(warnings.len(), 1, "since 0 reaches back before recording");
    let bad = EventsRequest {
        since_ns: Some(10),
        until_ns: Some(5),
        ..Default::default()
    };
    let err = events(log, bad).await.err().unwrap();
    assert!(err.message().contains("cannot be after `until` time"));
}
