//! The worker between a stand-in leader (`crate::testing`) and the fake
//! controller: assignment sets and changes become started, stopped and
//! removed tasks, and after an agent restart it adopts what still runs,
//! fails what vanished and removes what no task claims.

use std::path::Path;
use std::sync::Arc;

use rswarm_proto::dispatcher::assignment_change::Action;
use rswarm_proto::dispatcher::assignments_message::Type as MsgType;
use rswarm_proto::dispatcher::{AssignmentChange, AssignmentsMessage};
use rswarm_proto::types::{Task, TaskState};
use tokio::sync::watch;

use super::*;
use crate::exec::testing::{assigned, task, Fake, FakeController};
use crate::testing::FakeManager;

fn message(kind: MsgType, changes: Vec<(Action, Task)>) -> AssignmentsMessage {
    AssignmentsMessage {
        r#type: kind as i32,
        changes: changes
            .into_iter()
            .map(|(action, task)| AssignmentChange {
                action: action as i32,
                task: Some(task),
                secret: None,
                config: None,
            })
            .collect(),
    }
}

fn complete(tasks: Vec<Task>) -> AssignmentsMessage {
    message(
        MsgType::Complete,
        tasks.into_iter().map(|t| (Action::Update, t)).collect(),
    )
}

fn runc() -> std::path::PathBuf {
    [
        "/usr/sbin/runc",
        "/usr/bin/runc",
        "/usr/local/sbin/runc",
        "/usr/local/bin/runc",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
    .expect("runc is not installed: apt-get install -y runc")
}

/// A container bundle on disk, as an earlier agent left it.
fn leave_bundle(data_dir: &Path, id: &str) {
    let dir = data_dir.join("containers").join(id);
    std::fs::create_dir_all(&dir).expect("bundle dir");
    std::fs::write(dir.join("config.json"), "{}").expect("config.json");
}

/// A worker talking to a stand-in leader.
struct Rig {
    manager: Arc<FakeManager>,
    fake: Arc<FakeController>,
    leader: watch::Sender<LeaderChannel>,
    worker: tokio::task::JoinHandle<()>,
    files: Arc<crate::taskfiles::TaskFiles>,
    _dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

/// `before` prepares the data dir and the fake runtime before the worker starts.
async fn rig(before: impl FnOnce(&Path, &FakeController)) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeController::new();
    before(dir.path(), &fake);
    let runtime = crate::runtime::Runtime::new(dir.path(), runc()).expect("runtime");
    let manager = FakeManager::start().await;
    let (leader, rx) =
        watch::channel::<LeaderChannel>(Some((manager.addr.clone(), manager.channel())));
    let files = Arc::new(crate::taskfiles::TaskFiles::default());
    let deps = WorkerDeps {
        controller: fake.clone(),
        runtime,
        netplane: None,
        files: files.clone(),
        tasks: Default::default(),
    };
    let worker = spawn(deps, rx);
    Rig {
        manager,
        fake,
        leader,
        worker,
        files,
        _dir: dir,
    }
}

#[tokio::test]
async fn the_complete_set_starts_every_task_and_reports_it_running() {
    let r = rig(|_, _| {}).await;
    r.manager
        .assign(complete(vec![assigned("t1"), assigned("t2")]))
        .await;
    for id in ["t1", "t2"] {
        let status = r.manager.wait_state(id, TaskState::Running).await;
        assert_eq!(status.message, "started");
        assert!(matches!(r.fake.container(id), Some(Fake::Running { .. })));
    }
}

#[tokio::test]
async fn a_removal_stops_and_removes_the_task() {
    let r = rig(|_, _| {}).await;
    r.manager
        .assign(complete(vec![assigned("t1"), assigned("t2")]))
        .await;
    r.manager.wait_state("t1", TaskState::Running).await;
    r.manager.wait_state("t2", TaskState::Running).await;
    r.manager
        .assign(message(
            MsgType::Incremental,
            vec![(Action::Remove, assigned("t1"))],
        ))
        .await;
    r.fake.wait_call("t1", "remove").await;
    assert_eq!(r.fake.container("t1"), None);
    assert!(r.fake.calls("t1").contains(&"shutdown"));
    // The other task runs on.
    assert!(matches!(r.fake.container("t2"), Some(Fake::Running { .. })));
    assert!(!r.fake.calls("t2").contains(&"shutdown"));
}

#[tokio::test]
async fn a_desired_shutdown_stops_the_task_and_keeps_its_container() {
    let r = rig(|_, _| {}).await;
    r.manager.assign(complete(vec![assigned("t1")])).await;
    r.manager.wait_state("t1", TaskState::Running).await;
    let mut stop = task("t1", TaskState::Running, TaskState::Shutdown);
    stop.spec_version = 2;
    r.manager
        .assign(message(MsgType::Incremental, vec![(Action::Update, stop)]))
        .await;
    r.manager.wait_state("t1", TaskState::Shutdown).await;
    assert!(matches!(r.fake.container("t1"), Some(Fake::Stopped(_))));
    assert!(!r.fake.calls("t1").contains(&"remove"));
}

#[tokio::test]
async fn a_new_complete_set_unassigns_the_tasks_it_leaves_out() {
    let r = rig(|_, _| {}).await;
    r.manager
        .assign(complete(vec![assigned("t1"), assigned("t2")]))
        .await;
    r.manager.wait_state("t1", TaskState::Running).await;
    r.manager.wait_state("t2", TaskState::Running).await;
    let running = task("t2", TaskState::Running, TaskState::Running);
    r.manager.assign(complete(vec![running])).await;
    r.fake.wait_call("t1", "remove").await;
    assert_eq!(r.fake.container("t1"), None);
    assert!(matches!(r.fake.container("t2"), Some(Fake::Running { .. })));
    assert_eq!(
        r.fake
            .calls("t2")
            .iter()
            .filter(|op| **op == "start")
            .count(),
        1
    );
}

#[tokio::test]
async fn after_a_restart_containers_no_task_claims_are_removed() {
    let r = rig(|dir, fake| {
        leave_bundle(dir, "stray");
        leave_bundle(dir, "kept");
        fake.put("stray", Fake::Running { pid: 11 });
        fake.put("kept", Fake::Running { pid: 12 });
    })
    .await;
    let kept = task("kept", TaskState::Running, TaskState::Running);
    r.manager.assign(complete(vec![kept])).await;
    r.fake.wait_call("stray", "remove").await;
    assert_eq!(r.fake.container("stray"), None);
    // The claimed one is adopted as it runs: not made again, not removed.
    let status = r.manager.wait_state("kept", TaskState::Running).await;
    assert_eq!(status.container_status.expect("status").pid, 12);
    assert_eq!(r.fake.container("kept"), Some(Fake::Running { pid: 12 }));
    let calls = r.fake.calls("kept");
    for op in ["prepare", "start", "shutdown", "remove"] {
        assert!(!calls.contains(&op), "{op} of an adopted task: {calls:?}");
    }
}

#[tokio::test]
async fn after_a_restart_a_task_whose_container_vanished_fails() {
    let r = rig(|_, fake| fake.put("alive", Fake::Running { pid: 21 })).await;
    r.manager
        .assign(complete(vec![
            task("alive", TaskState::Running, TaskState::Running),
            task("vanished", TaskState::Running, TaskState::Running),
        ]))
        .await;
    let failed = r.manager.wait_state("vanished", TaskState::Failed).await;
    assert!(failed.err.contains("No such container"), "{}", failed.err);
    assert_eq!(r.fake.container("vanished"), None);
    assert!(!r.fake.calls("vanished").contains(&"start"));
    r.manager.wait_state("alive", TaskState::Running).await;
}

#[tokio::test]
async fn a_new_leader_does_not_restart_running_tasks() {
    let r = rig(|_, _| {}).await;
    r.manager.assign(complete(vec![assigned("t1")])).await;
    r.manager.wait_state("t1", TaskState::Running).await;
    // The session moves to another leader (here the same server, anew).
    r.leader
        .send(Some(("again".into(), r.manager.channel())))
        .expect("the worker listens");
    r.manager
        .wait_until("a second assignments stream", |m| m.streams() == 2)
        .await;
    r.manager
        .assign(complete(vec![task(
            "t1",
            TaskState::Running,
            TaskState::Running,
        )]))
        .await;
    // Stopping it through the new stream reaches the same driver.
    r.manager
        .assign(message(
            MsgType::Incremental,
            vec![(
                Action::Update,
                task("t1", TaskState::Running, TaskState::Shutdown),
            )],
        ))
        .await;
    r.manager.wait_state("t1", TaskState::Shutdown).await;
    let calls = r.fake.calls("t1");
    assert_eq!(
        calls.iter().filter(|op| **op == "start").count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|op| **op == "inspect").count(),
        1,
        "{calls:?}"
    );
}

/// A secret change of an assignments message.
fn secret_change(id: &str, action: Action) -> AssignmentChange {
    AssignmentChange {
        action: action as i32,
        task: None,
        secret: Some(rswarm_proto::types::Secret {
            id: id.into(),
            spec: Some(rswarm_proto::types::SecretSpec {
                annotations: None,
                data: b"v".to_vec(),
            }),
            ..Default::default()
        }),
        config: None,
    }
}

#[tokio::test]
async fn secrets_of_the_stream_are_held_until_removed() {
    let r = rig(|_, _| {}).await;
    let mut first = complete(vec![assigned("t1")]);
    first.changes.insert(0, secret_change("s1", Action::Update));
    r.manager.assign(first).await;
    r.manager.wait_state("t1", TaskState::Running).await;
    assert_eq!(r.files.counts(), (1, 0));
    r.manager
        .assign(AssignmentsMessage {
            r#type: MsgType::Incremental as i32,
            changes: vec![secret_change("s1", Action::Remove)],
        })
        .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while r.files.counts() != (0, 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the secret was not forgotten"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A later complete set (a new stream) brings its own.
    let mut again = complete(vec![assigned("t1")]);
    again.changes.insert(0, secret_change("s2", Action::Update));
    r.manager.assign(again).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while r.files.counts() != (1, 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new set was not held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
