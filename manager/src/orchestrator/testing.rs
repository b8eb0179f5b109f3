//! A one-manager swarm for the orchestrator and scheduler tests: a real
//! Raft store in a temp dir, the real loops, nodes and services written the
//! way the Control API and dispatcher write them, and a fake agent that
//! reports task states the way a test tells it to.

use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    Annotations, Cluster, ClusterSpec, ContainerSpec, ContainerStatus, Node, NodeAvailability,
    NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus, Platform, ReplicatedService,
    Resources, Service, ServiceSpec, Task, TaskSpec, TaskState,
};
use rswarm_raft::{Connector, Store, StoreConfig, StoreError};
use tokio::task::JoinHandle;

use super::task;
use crate::leader::LeaderLoop;
use crate::objects;

/// A single manager never dials anyone.
struct NoPeers;

impl Connector for NoPeers {
    fn channel(&self, addr: &str) -> Result<tonic::transport::Channel, String> {
        Err(format!("a one-manager test swarm has no peer at {addr}"))
    }
}

/// How the fake agent answers a task it holds: `Some((state, exit code))`
/// to report, `None` to leave it as it is.
pub(crate) type AgentBehaviour = Arc<dyn Fn(&Task) -> Option<(TaskState, i32)> + Send + Sync>;

/// An agent that runs what it is given and stops what it is told to stop.
pub(crate) fn obedient_agent() -> AgentBehaviour {
    Arc::new(|t: &Task| default_reaction(t))
}

/// What an obedient agent does: ASSIGNED → RUNNING (COMPLETE for jobs);
/// asked to stop while running → SHUTDOWN.
pub(crate) fn default_reaction(t: &Task) -> Option<(TaskState, i32)> {
    let state = task::state(t);
    if t.node_id.is_empty() {
        return None;
    }
    if t.desired_state >= TaskState::Shutdown as i32 {
        return (state >= TaskState::Assigned as i32 && state <= TaskState::Running as i32)
            .then_some((TaskState::Shutdown, 0));
    }
    if state == TaskState::Assigned as i32 {
        return Some(if t.desired_state == TaskState::Complete as i32 {
            (TaskState::Complete, 0)
        } else {
            (TaskState::Running, 0)
        });
    }
    None
}

/// A bootstrapped one-manager store and its temp dir, no loops.
pub(crate) async fn bare_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = StoreConfig::new(dir.path().join("raft"), 1, "127.0.0.1:1");
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.election_timeout_min = Duration::from_millis(400);
    cfg.election_timeout_max = Duration::from_millis(800);
    let store = Store::open(cfg, Arc::new(NoPeers))
        .await
        .expect("open store");
    store.bootstrap().await.expect("bootstrap");
    (store, dir)
}

pub(crate) struct TestSwarm {
    pub store: Store,
    /// What its loops measured.
    pub metrics: crate::metrics::ManagerMetrics,
    loops: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestSwarm {
    fn drop(&mut self) {
        for l in &self.loops {
            l.abort();
        }
    }
}

/// Bounds every wait in these tests.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

impl TestSwarm {
    /// A bootstrapped one-manager store with the orchestrator and scheduler
    /// running, and a cluster object keeping `history` tasks per slot.
    pub(crate) async fn start(history: u32) -> TestSwarm {
        let (store, dir) = bare_store().await;
        let cluster = Cluster {
            id: "cluster".into(),
            spec: Some(ClusterSpec {
                task_history_retention_limit: history,
                ..Default::default()
            }),
            ..Default::default()
        };
        store
            .write(vec![objects::put(&cluster)])
            .await
            .expect("write cluster");
        let metrics = crate::metrics::ManagerMetrics::default();
        let (orchestrated, scheduled) = (metrics.orchestrator.clone(), metrics.scheduler.clone());
        let loops = vec![crate::leader::supervise(
            store.clone(),
            vec![
                LeaderLoop::new("orchestrator", move |store| {
                    super::run_measured(store, orchestrated.clone())
                }),
                LeaderLoop::new("allocator", crate::allocator::run),
                LeaderLoop::new("scheduler", move |store| {
                    crate::scheduler::run_measured(store, scheduled.clone())
                }),
            ],
        )];
        TestSwarm {
            store,
            metrics,
            loops,
            _dir: dir,
        }
    }

    /// Runs a fake agent for every node: it polls the store and reports
    /// what `behaviour` says for each task assigned to a node.
    pub(crate) fn run_agents(&mut self, behaviour: AgentBehaviour) {
        let store = self.store.clone();
        self.loops.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let Ok(tasks) = objects::list::<Task>(&store) else {
                    continue;
                };
                let mut ops = Vec::new();
                for t in &tasks {
                    let Some((state, exit)) = behaviour(t) else {
                        continue;
                    };
                    let mut t = t.clone();
                    let status = t.status.get_or_insert_with(Default::default);
                    status.state = state as i32;
                    status.timestamp = objects::now_nanos();
                    status.message = format!("{state:?}").to_lowercase();
                    if exit != 0 {
                        status.err = format!("task: non-zero exit ({exit})");
                    }
                    status.container_status = Some(ContainerStatus {
                        exit_code: exit,
                        ..Default::default()
                    });
                    ops.push(objects::put(&t));
                }
                if !ops.is_empty() {
                    // Conflicts: the loops wrote first; look again next round.
                    let _ = store.write(ops).await;
                }
            }
        }));
    }

    /// Adds a Ready, Active node; `tweak` adjusts it before it is written.
    pub(crate) async fn add_node(&self, hostname: &str, tweak: impl FnOnce(&mut Node)) -> String {
        let mut node = Node {
            id: crate::objects::new_id(),
            spec: Some(NodeSpec {
                annotations: Some(Annotations::default()),
                desired_role: NodeRole::Worker as i32,
                availability: NodeAvailability::Active as i32,
            }),
            description: Some(NodeDescription {
                hostname: hostname.into(),
                platform: Some(Platform {
                    architecture: "x86_64".into(),
                    os: "linux".into(),
                }),
                resources: Some(Resources {
                    nano_cpus: 4_000_000_000,
                    memory_bytes: 8 << 30,
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: NodeState::Ready as i32,
                message: String::new(),
                addr: "10.0.0.1".into(),
            }),
            role: NodeRole::Worker as i32,
            ..Default::default()
        };
        tweak(&mut node);
        let id = node.id.clone();
        self.store
            .write(vec![objects::put(&node)])
            .await
            .expect("write node");
        id
    }

    /// Changes a node as the dispatcher or `node update` would.
    pub(crate) async fn update_node(&self, id: &str, change: impl Fn(&mut Node)) {
        self.retry_on_conflict(|| {
            let mut n = objects::get::<Node>(&self.store, id).ok()??;
            change(&mut n);
            Some(objects::put(&n))
        })
        .await;
    }

    pub(crate) async fn set_availability(&self, id: &str, availability: NodeAvailability) {
        self.update_node(id, |n| {
            n.spec.get_or_insert_with(Default::default).availability = availability as i32
        })
        .await;
    }

    pub(crate) async fn set_state(&self, id: &str, state: NodeState) {
        self.update_node(id, |n| {
            n.status.get_or_insert_with(Default::default).state = state as i32
        })
        .await;
    }

    /// Creates a service as the Control API does (spec_version 1).
    pub(crate) async fn create_service(
        &self,
        name: &str,
        mode: Mode,
        tweak: impl FnOnce(&mut TaskSpec),
    ) -> String {
        self.create_service_spec(name, mode, |s| {
            tweak(s.task.get_or_insert_with(Default::default))
        })
        .await
    }

    /// Like `create_service`, with `tweak` given the whole service spec.
    pub(crate) async fn create_service_spec(
        &self,
        name: &str,
        mode: Mode,
        tweak: impl FnOnce(&mut ServiceSpec),
    ) -> String {
        let mut spec = ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                labels: Default::default(),
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(mode),
            ..Default::default()
        };
        tweak(&mut spec);
        let svc = Service {
            id: crate::objects::new_id(),
            spec: Some(spec),
            spec_version: 1,
            ..Default::default()
        };
        let id = svc.id.clone();
        self.store
            .write(vec![objects::put(&svc)])
            .await
            .expect("write service");
        id
    }

    /// Changes a service as `service update` does (bumping spec_version and
    /// starting an update when the task template changes).
    pub(crate) async fn update_service(&self, id: &str, change: impl Fn(&mut ServiceSpec)) {
        self.retry_on_conflict(|| {
            let mut s = objects::get::<Service>(&self.store, id).ok()??;
            let mut spec = s.spec.clone().unwrap_or_default();
            change(&mut spec);
            if spec.task != s.spec.as_ref().and_then(|old| old.task.clone()) {
                s.spec_version += 1;
                s.update_status = Some(rswarm_proto::types::UpdateStatus {
                    state: rswarm_proto::types::update_status::State::Updating as i32,
                    started_at: objects::now_nanos(),
                    completed_at: 0,
                    message: "update in progress".into(),
                });
            }
            s.spec = Some(spec);
            Some(objects::put(&s))
        })
        .await;
    }

    pub(crate) async fn scale(&self, id: &str, replicas: u64) {
        self.update_service(id, |s| {
            s.mode = Some(Mode::Replicated(ReplicatedService { replicas }))
        })
        .await;
    }

    pub(crate) async fn remove_service(&self, id: &str) {
        self.retry_on_conflict(|| {
            let s = objects::get::<Service>(&self.store, id).ok()??;
            Some(objects::delete(objects::KIND_SERVICE, id, s.meta.as_ref()))
        })
        .await;
    }

    async fn retry_on_conflict(&self, op: impl Fn() -> Option<rswarm_raft::Op>) {
        for _ in 0..50 {
            let Some(op) = op() else {
                panic!("object to update is missing");
            };
            match self.store.write(vec![op]).await {
                Ok(_) => return,
                Err(StoreError::Conflict { .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("write failed: {e}"),
            }
        }
        panic!("write kept conflicting");
    }

    /// The service's tasks as the store has them.
    pub(crate) fn tasks(&self, service_id: &str) -> Vec<Task> {
        objects::list::<Task>(&self.store)
            .expect("list tasks")
            .into_iter()
            .filter(|t| t.service_id == service_id)
            .collect()
    }

    /// Polls `check` every 25 ms until it gives a value; panics with `what`
    /// (and the tasks of `service_id`) after `PATIENCE`.
    pub(crate) async fn wait_for<T>(
        &self,
        what: &str,
        service_id: &str,
        mut check: impl FnMut(&[Task]) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let tasks = self.tasks(service_id);
            if let Some(v) = check(&tasks) {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                let summary: Vec<String> = tasks.iter().map(describe).collect();
                panic!(
                    "timed out waiting for {what}; tasks:\n{}",
                    summary.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// One line per task, for failure messages.
pub(crate) fn describe(t: &Task) -> String {
    let status = t.status.clone().unwrap_or_default();
    format!(
        "{} slot={} node={} desired={:?} state={:?} restarts={} v{} msg={:?}",
        &t.id[..t.id.len().min(6)],
        t.slot,
        &t.node_id[..t.node_id.len().min(6)],
        TaskState::try_from(t.desired_state).unwrap_or(TaskState::New),
        TaskState::try_from(status.state).unwrap_or(TaskState::New),
        t.restart_count,
        t.spec_version,
        status.message
    )
}

/// Whether the task is ASSIGNED or further along, and not ended.
pub(crate) fn placed(t: &Task) -> bool {
    let s = task::state(t);
    !t.node_id.is_empty() && s >= TaskState::Assigned as i32 && s < TaskState::Complete as i32
}
