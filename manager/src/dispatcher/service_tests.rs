//! The dispatcher's gRPC services driven in process, as the agents call
//! them: heartbeats (liveness, addresses, the role a node should have, the
//! managers to fail over to, removal), the assignment stream and status
//! reports. Each test runs on a real Raft store (one manager, or a leader
//! and a follower serving Raft to each other on loopback); the caller's
//! certificate is put on the request the way the TLS layer's interceptor does.

use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::dispatcher::assignment_change::Action;
use rswarm_proto::dispatcher::assignments_message::Type as MsgType;
use rswarm_proto::dispatcher::tasks_server::Tasks;
use rswarm_proto::dispatcher::{
    AssignmentsMessage, AssignmentsRequest, TaskStatusUpdate, UpdateTaskStatusRequest,
};
use rswarm_proto::identity::cert::NodeIdentity;
use rswarm_proto::types::{Cluster, ClusterSpec, Node, NodeSpec, Task, TaskState, TaskStatus};
use rswarm_raft::{Connector, StoreConfig};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

use super::agents::AgentRegistry;
use super::tasks::TasksService;
use super::*;
use crate::orchestrator::testing::bare_store;

/// Bounds every wait.
const PATIENCE: Duration = Duration::from_secs(15);

/// A request as it reaches a handler after the interceptor checked the
/// caller's certificate.
fn from_node<T>(node_id: &str, role: NodeRole, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.extensions_mut().insert(NodeIdentity {
        node_id: node_id.into(),
        role,
        cluster_id: "cluster".into(),
        not_after: i64::MAX,
    });
    req
}

fn beat(node_id: &str, addr: &str) -> Request<HeartbeatRequest> {
    from_node(
        node_id,
        NodeRole::Worker,
        HeartbeatRequest {
            description: Some(NodeDescription {
                hostname: format!("host-{node_id}"),
                ..Default::default()
            }),
            addr: addr.into(),
        },
    )
}

fn cluster(period: Duration) -> Cluster {
    Cluster {
        id: "cluster".into(),
        spec: Some(ClusterSpec {
            heartbeat_period_ns: period.as_nanos() as i64,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(id: &str, state: NodeState, desired_role: NodeRole) -> Node {
    Node {
        id: id.into(),
        spec: Some(NodeSpec {
            desired_role: desired_role as i32,
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: state as i32,
            message: String::new(),
            addr: String::new(),
        }),
        role: NodeRole::Worker as i32,
        ..Default::default()
    }
}

fn task(id: &str, node_id: &str, state: TaskState) -> Task {
    Task {
        id: id.into(),
        node_id: node_id.into(),
        desired_state: TaskState::Running as i32,
        status: Some(TaskStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A one-manager store (the leader) holding a cluster object.
async fn leader_store(period: Duration) -> (Store, tempfile::TempDir) {
    let (store, dir) = bare_store().await;
    store
        .write(vec![objects::put(&cluster(period))])
        .await
        .expect("write cluster");
    assert!(store.is_leader());
    (store, dir)
}

async fn state_of(store: &Store, id: &str) -> NodeState {
    let n = objects::get::<Node>(store, id)
        .expect("read")
        .expect("node");
    NodeState::try_from(n.status.map(|s| s.state).unwrap_or(0)).unwrap_or(NodeState::Unknown)
}

async fn next_message(
    stream: &mut <TasksService as Tasks>::AssignmentsStream,
) -> AssignmentsMessage {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an assignments message in time")
        .expect("the stream is open")
        .expect("not an error")
}

/// (action, task id) of each change, sorted.
fn changes(msg: &AssignmentsMessage) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = msg
        .changes
        .iter()
        .map(|c| {
            (
                c.action,
                c.task.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Raft between in-process managers: plain HTTP on loopback.
struct Loopback;

impl Connector for Loopback {
    fn channel(&self, addr: &str) -> Result<tonic::transport::Channel, String> {
        Ok(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_millis(500))
                .connect_lazy(),
        )
    }
}

/// A manager serving Raft on loopback, its Raft ID that of node `node_id`
/// (so the manager list names it), and its address.
async fn manager(dir: &std::path::Path, node_id: &str) -> (Store, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut cfg = StoreConfig::new(dir.join(node_id), objects::raft_id_for(node_id), &addr);
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.election_timeout_min = Duration::from_millis(400);
    cfg.election_timeout_max = Duration::from_millis(800);
    let store = Store::open(cfg, Arc::new(Loopback)).await.expect("open");
    let service = store.service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (store, addr)
}

/// Two managers: a leader (node "m1") and a follower ("m2") that has
/// applied the leader's cluster object and both managers' Node objects;
/// "m2" is Down.
struct TwoManagers {
    leader: Store,
    leader_addr: String,
    follower: Store,
    follower_addr: String,
    _dir: tempfile::TempDir,
}

async fn leader_and_follower() -> TwoManagers {
    let dir = tempfile::tempdir().expect("tempdir");
    let (leader, leader_addr) = manager(dir.path(), "m1").await;
    leader.bootstrap().await.expect("bootstrap");
    let (follower, follower_addr) = manager(dir.path(), "m2").await;
    leader
        .add_manager(objects::raft_id_for("m2"), follower_addr.clone())
        .await
        .expect("add the follower");
    let mut m1 = node("m1", NodeState::Ready, NodeRole::Manager);
    m1.role = NodeRole::Manager as i32;
    let mut m2 = node("m2", NodeState::Down, NodeRole::Manager);
    m2.role = NodeRole::Manager as i32;
    leader
        .write(vec![
            objects::put(&cluster(DEFAULT_HEARTBEAT)),
            objects::put(&m1),
            objects::put(&m2),
        ])
        .await
        .expect("write");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while objects::get::<Node>(&follower, "m2")
        .ok()
        .flatten()
        .is_none()
        || follower.leader().is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follower never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(leader.is_leader() && !follower.is_leader());
    TwoManagers {
        leader,
        leader_addr,
        follower,
        follower_addr,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_heartbeat_turns_the_node_ready_and_records_its_address() {
    let (store, _dir) = leader_store(Duration::from_secs(2)).await;
    store
        .write(vec![objects::put(&node(
            "w1",
            NodeState::Down,
            NodeRole::Worker,
        ))])
        .await
        .expect("write node");
    let svc = DispatcherService::new(store.clone());
    let answer = svc
        .heartbeat(beat("w1", "10.1.2.3:4567"))
        .await
        .expect("heartbeat")
        .into_inner();
    assert!(!answer.removed);
    assert_eq!(answer.period_ns, Duration::from_secs(2).as_nanos() as i64);
    assert_eq!(answer.leader_addr, "127.0.0.1:1");
    assert_eq!(answer.desired_role, NodeRole::Worker as i32);
    let stored = objects::get::<Node>(&store, "w1")
        .expect("read")
        .expect("node");
    let status = stored.status.expect("status");
    assert_eq!(status.state, NodeState::Ready as i32);
    assert_eq!(status.addr, "10.1.2.3");
    assert_eq!(
        stored.description.map(|d| d.hostname).as_deref(),
        Some("host-w1")
    );
}

#[tokio::test]
async fn a_heartbeat_without_a_certificate_is_refused() {
    let (store, _dir) = leader_store(DEFAULT_HEARTBEAT).await;
    let svc = DispatcherService::new(store);
    let err = svc
        .heartbeat(Request::new(HeartbeatRequest::default()))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // The same call with a certificate is answered.
    svc.heartbeat(beat("unknown", "10.0.0.9:1"))
        .await
        .expect("answered");
}

#[tokio::test]
async fn the_answer_carries_the_role_the_cluster_wants() {
    let (store, _dir) = leader_store(DEFAULT_HEARTBEAT).await;
    // Promoted: its certificate still says worker, its spec says manager.
    store
        .write(vec![
            objects::put(&node("w1", NodeState::Ready, NodeRole::Manager)),
            objects::put(&node("w2", NodeState::Ready, NodeRole::Worker)),
        ])
        .await
        .expect("write nodes");
    let svc = DispatcherService::new(store);
    let promoted = svc.heartbeat(beat("w1", "10.0.0.1:1")).await.expect("hb");
    assert_eq!(promoted.into_inner().desired_role, NodeRole::Manager as i32);
    let worker = svc.heartbeat(beat("w2", "10.0.0.2:1")).await.expect("hb");
    assert_eq!(worker.into_inner().desired_role, NodeRole::Worker as i32);
}

#[tokio::test]
async fn the_leader_tells_a_node_it_does_not_know_that_it_was_removed() {
    let (store, _dir) = leader_store(DEFAULT_HEARTBEAT).await;
    store
        .write(vec![objects::put(&node(
            "w1",
            NodeState::Ready,
            NodeRole::Worker,
        ))])
        .await
        .expect("write node");
    let svc = DispatcherService::new(store);
    let gone = svc.heartbeat(beat("gone", "10.0.0.9:1")).await.expect("hb");
    assert!(gone.into_inner().removed);
    let known = svc.heartbeat(beat("w1", "10.0.0.1:1")).await.expect("hb");
    assert!(!known.into_inner().removed);
}

/// Bug: a follower whose store had not applied a node yet (it joined a
/// moment ago) told that node it was removed, and the agent left the swarm.
#[tokio::test]
async fn a_follower_never_says_a_node_was_removed() {
    let c = leader_and_follower().await;
    let on_follower = DispatcherService::new(c.follower.clone());
    let answer = on_follower
        .heartbeat(from_node(
            "newcomer",
            NodeRole::Manager,
            HeartbeatRequest {
                description: None,
                addr: "10.0.0.7:2377".into(),
            },
        ))
        .await
        .expect("heartbeat")
        .into_inner();
    assert!(!answer.removed, "a follower said the node was removed");
    assert_eq!(answer.leader_addr, c.leader_addr, "sends the agent on");
    // No change of role is asked of a node the follower cannot see.
    assert_eq!(answer.desired_role, NodeRole::Manager as i32);
    assert!(!answer.renew_certificate);
    // The leader, whose word counts, does say so.
    let on_leader = DispatcherService::new(c.leader.clone());
    let answer = on_leader
        .heartbeat(beat("newcomer", "10.0.0.7:2377"))
        .await
        .expect("heartbeat")
        .into_inner();
    assert!(answer.removed);
}

#[tokio::test]
async fn agents_get_every_manager_weighted_by_reachability() {
    let c = leader_and_follower().await;
    for store in [&c.leader, &c.follower] {
        let answer = DispatcherService::new(store.clone())
            .heartbeat(beat("m1", &c.leader_addr))
            .await
            .expect("heartbeat")
            .into_inner();
        let mut got: Vec<(String, String, i32)> = answer
            .managers
            .into_iter()
            .map(|m| (m.node_id, m.addr, m.weight))
            .collect();
        got.sort();
        // m1 leads and is Ready; m2 is Down: listed, tried last.
        assert_eq!(
            got,
            vec![
                ("m1".into(), c.leader_addr.clone(), WEIGHT_REACHABLE),
                ("m2".into(), c.follower_addr.clone(), WEIGHT_UNREACHABLE),
            ]
        );
    }
}

#[tokio::test]
async fn a_silent_node_goes_down_and_a_heartbeating_one_stays_ready() {
    // A period beyond CHECK_EVERY: a stalled test process is forgiven.
    let period = Duration::from_millis(200);
    let (store, _dir) = leader_store(period).await;
    store
        .write(vec![
            objects::put(&node("alive", NodeState::Ready, NodeRole::Worker)),
            objects::put(&node("silent", NodeState::Ready, NodeRole::Worker)),
        ])
        .await
        .expect("write nodes");
    let svc = DispatcherService::new(store.clone());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        svc.heartbeat(beat("alive", "10.0.0.1:1"))
            .await
            .expect("hb");
        svc.check_heartbeats().await.expect("check");
        if state_of(&store, "silent").await == NodeState::Down {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent node never went down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let silent = objects::get::<Node>(&store, "silent")
        .expect("read")
        .expect("node");
    assert_eq!(silent.status.expect("status").message, "heartbeat failure");
    assert_eq!(state_of(&store, "alive").await, NodeState::Ready);
    // Its next heartbeat brings it back.
    svc.heartbeat(beat("silent", "10.0.0.2:1"))
        .await
        .expect("hb");
    assert_eq!(state_of(&store, "silent").await, NodeState::Ready);
}

#[tokio::test]
async fn assignments_start_with_the_nodes_tasks_then_follow_changes() {
    let (store, _dir) = leader_store(DEFAULT_HEARTBEAT).await;
    store
        .write(vec![
            objects::put(&task("mine", "w1", TaskState::Assigned)),
            objects::put(&task("running", "w1", TaskState::Running)),
            objects::put(&task("not-yet", "w1", TaskState::Pending)),
            objects::put(&task("theirs", "w2", TaskState::Assigned)),
        ])
        .await
        .expect("write tasks");
    let svc = TasksService::new(store.clone(), Arc::new(AgentRegistry::default()));
    let mut stream = svc
        .assignments(from_node("w1", NodeRole::Worker, AssignmentsRequest {}))
        .await
        .expect("assignments")
        .into_inner();
    let first = next_message(&mut stream).await;
    assert_eq!(first.r#type, MsgType::Complete as i32);
    let update = Action::Update as i32;
    assert_eq!(
        changes(&first),
        vec![(update, "mine".into()), (update, "running".into())]
    );

    // A task placed here arrives as an update...
    store
        .write(vec![objects::put(&task("new", "w1", TaskState::Assigned))])
        .await
        .expect("write");
    let msg = next_message(&mut stream).await;
    assert_eq!(msg.r#type, MsgType::Incremental as i32);
    assert_eq!(changes(&msg), vec![(update, "new".into())]);

    // ...one moved to another node, and one deleted, as removals; another
    // node's task is not sent at all.
    let mut moved = objects::get::<Task>(&store, "mine")
        .expect("read")
        .expect("task");
    moved.node_id = "w2".into();
    let running = objects::get::<Task>(&store, "running")
        .expect("read")
        .expect("task");
    let theirs = objects::get::<Task>(&store, "theirs")
        .expect("read")
        .expect("task");
    let mut theirs_changed = theirs.clone();
    theirs_changed.desired_state = TaskState::Shutdown as i32;
    store
        .write(vec![
            objects::put(&moved),
            objects::put(&theirs_changed),
            objects::delete(objects::KIND_TASK, "running", running.meta.as_ref()),
        ])
        .await
        .expect("write");
    let remove = Action::Remove as i32;
    let mut seen = vec![];
    while seen.len() < 2 {
        let msg = next_message(&mut stream).await;
        seen.extend(changes(&msg));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![(remove, "mine".into()), (remove, "running".into())]
    );
}

#[tokio::test]
async fn assignments_need_a_certificate_and_the_leader() {
    let c = leader_and_follower().await;
    let on_leader = TasksService::new(c.leader.clone(), Arc::new(AgentRegistry::default()));
    let err = on_leader
        .assignments(Request::new(AssignmentsRequest {}))
        .await
        .err()
        .expect("refused without a certificate");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    on_leader
        .assignments(from_node("m2", NodeRole::Manager, AssignmentsRequest {}))
        .await
        .expect("the leader serves them");

    let on_follower = TasksService::new(c.follower.clone(), Arc::new(AgentRegistry::default()));
    let err = on_follower
        .assignments(from_node("m2", NodeRole::Manager, AssignmentsRequest {}))
        .await
        .err()
        .expect("a follower refuses");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains(&c.leader_addr), "{}", err.message());
    let err = on_follower
        .update_task_status(from_node(
            "m2",
            NodeRole::Manager,
            UpdateTaskStatusRequest::default(),
        ))
        .await
        .expect_err("a follower refuses reports");
    assert_eq!(err.code(), tonic::Code::Unavailable);
}

fn report(task_id: &str, state: TaskState, message: &str) -> TaskStatusUpdate {
    TaskStatusUpdate {
        task_id: task_id.into(),
        status: Some(TaskStatus {
            state: state as i32,
            message: message.into(),
            ..Default::default()
        }),
    }
}

fn stored_state(store: &Store, id: &str) -> (i32, String) {
    let t = objects::get::<Task>(store, id)
        .expect("read")
        .expect("task");
    let s = t.status.unwrap_or_default();
    (s.state, s.message)
}

#[tokio::test]
async fn status_reports_move_the_agents_own_tasks_forward_only() {
    let (store, _dir) = leader_store(DEFAULT_HEARTBEAT).await;
    store
        .write(vec![
            objects::put(&task("t1", "w1", TaskState::Assigned)),
            objects::put(&task("t2", "w1", TaskState::Running)),
            objects::put(&task("other", "w2", TaskState::Assigned)),
        ])
        .await
        .expect("write tasks");
    let svc = TasksService::new(store.clone(), Arc::new(AgentRegistry::default()));
    svc.update_task_status(from_node(
        "w1",
        NodeRole::Worker,
        UpdateTaskStatusRequest {
            updates: vec![
                report("t1", TaskState::Running, "started"),
                // Backwards: a late report of an earlier state.
                report("t2", TaskState::Preparing, "preparing"),
                // Another node's task: this agent's word does not count.
                report("other", TaskState::Failed, "not mine"),
                // A task the store does not have.
                report("ghost", TaskState::Running, "started"),
            ],
        },
    ))
    .await
    .expect("reports taken");
    assert_eq!(
        stored_state(&store, "t1"),
        (TaskState::Running as i32, "started".into())
    );
    assert_eq!(stored_state(&store, "t2").0, TaskState::Running as i32);
    assert_eq!(stored_state(&store, "other").0, TaskState::Assigned as i32);
    assert!(objects::get::<Task>(&store, "ghost")
        .expect("read")
        .is_none());

    // The owner of "other" moves it on.
    svc.update_task_status(from_node(
        "w2",
        NodeRole::Worker,
        UpdateTaskStatusRequest {
            updates: vec![report(
                "other",
                TaskState::Failed,
                "task: non-zero exit (1)",
            )],
        },
    ))
    .await
    .expect("reports taken");
    assert_eq!(
        stored_state(&store, "other"),
        (TaskState::Failed as i32, "task: non-zero exit (1)".into())
    );
}

#[tokio::test]
async fn a_follower_answers_a_known_node_and_names_the_leader_without_writing() {
    let c = leader_and_follower().await;
    let before = objects::get::<Node>(&c.follower, "m2")
        .expect("read")
        .expect("node");
    let answer = DispatcherService::new(c.follower.clone())
        .heartbeat(beat("m2", "10.0.0.2:2377"))
        .await
        .expect("heartbeat")
        .into_inner();
    assert!(!answer.removed);
    assert_eq!(answer.leader_addr, c.leader_addr);
    assert_eq!(answer.desired_role, NodeRole::Manager as i32);
    // Only the leader records liveness: the node is as it was, Down.
    let after = objects::get::<Node>(&c.leader, "m2")
        .expect("read")
        .expect("node");
    assert_eq!(after.status, before.status);
    assert_eq!(state_of(&c.follower, "m2").await, NodeState::Down);
}
