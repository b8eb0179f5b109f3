//! A controller for the tests of the task driver and the worker: it keeps
//! containers as states in memory (created, running, stopped), records
//! every call, and lets a test script what the runtime would do (a failed
//! pull or start, an unreadable state, a prepare that takes its time, a
//! process that exits).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rswarm_proto::types::{Task, TaskState, TaskStatus};
use tokio::sync::{watch, Semaphore};

use super::health::{Check, Probe};
use super::{Controller, ExecError, Existing, Exit};

/// Bounds every wait in these tests.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

/// A container as the fake runtime has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fake {
    Created,
    Running { pid: u32 },
    Stopped(Exit),
}

type Hook = Box<dyn Fn(&Task) + Send + Sync>;

#[derive(Default)]
struct Inner {
    /// (operation, task id) in call order.
    calls: Vec<(&'static str, String)>,
    containers: HashMap<String, Fake>,
    prepare_errors: HashMap<String, ExecErrorKind>,
    start_errors: HashMap<String, String>,
    inspect_errors: HashMap<String, String>,
    /// Prepares of these tasks wait for a permit.
    gates: HashMap<String, Arc<Semaphore>>,
    /// Runs inside prepare, just before it returns.
    on_prepare: Option<Arc<Hook>>,
    next_pid: u32,
    /// Health checks of tasks, and whether their probes pass now.
    checks: HashMap<String, Check>,
    passing: HashMap<String, bool>,
}

#[derive(Clone)]
enum ExecErrorKind {
    Rejected(String),
    Failed(String),
}

/// See the module docs.
pub(crate) struct FakeController {
    inner: Mutex<Inner>,
    /// Bumped on every change, for waiters.
    version: watch::Sender<u64>,
}

impl FakeController {
    pub(crate) fn new() -> Arc<FakeController> {
        Arc::new(FakeController {
            inner: Mutex::new(Inner {
                next_pid: 100,
                ..Default::default()
            }),
            version: watch::channel(0).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    fn record(&self, op: &'static str, task: &Task) {
        self.lock().calls.push((op, task.id.clone()));
        self.changed();
    }

    /// A container left by an earlier agent (live restore).
    pub(crate) fn put(&self, id: &str, state: Fake) {
        self.lock().containers.insert(id.into(), state);
        self.changed();
    }

    pub(crate) fn container(&self, id: &str) -> Option<Fake> {
        self.lock().containers.get(id).cloned()
    }

    /// The operations called for task `id`, in order.
    pub(crate) fn calls(&self, id: &str) -> Vec<&'static str> {
        self.lock()
            .calls
            .iter()
            .filter(|(_, t)| t == id)
            .map(|(op, _)| *op)
            .collect()
    }

    pub(crate) fn fail_prepare(&self, id: &str, message: &str, rejected: bool) {
        let kind = if rejected {
            ExecErrorKind::Rejected(message.into())
        } else {
            ExecErrorKind::Failed(message.into())
        };
        self.lock().prepare_errors.insert(id.into(), kind);
    }

    pub(crate) fn fail_start(&self, id: &str, message: &str) {
        self.lock().start_errors.insert(id.into(), message.into());
    }

    pub(crate) fn fail_inspect(&self, id: &str, message: &str) {
        self.lock().inspect_errors.insert(id.into(), message.into());
    }

    /// Prepares of `id` wait until the returned semaphore gets a permit.
    pub(crate) fn gate_prepare(&self, id: &str) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        self.lock().gates.insert(id.into(), gate.clone());
        gate
    }

    /// Runs `hook` inside every prepare, just before it returns.
    pub(crate) fn on_prepare(&self, hook: impl Fn(&Task) + Send + Sync + 'static) {
        self.lock().on_prepare = Some(Arc::new(Box::new(hook)));
    }

    /// Task `id` has `check`, whose probes pass while `passing` holds.
    pub(crate) fn set_check(&self, id: &str, check: Check, passing: bool) {
        let mut inner = self.lock();
        inner.checks.insert(id.into(), check);
        inner.passing.insert(id.into(), passing);
    }

    /// From now on the probes of `id` pass (or fail).
    pub(crate) fn set_passing(&self, id: &str, passing: bool) {
        self.lock().passing.insert(id.into(), passing);
    }

    /// The container's process ends.
    pub(crate) fn exit(&self, id: &str, code: i32, oom_killed: bool) {
        let mut inner = self.lock();
        match inner.containers.get_mut(id) {
            Some(c @ Fake::Running { .. }) => {
                *c = Fake::Stopped(Exit {
                    code: Some(code),
                    oom_killed,
                })
            }
            other => panic!("container {id} cannot exit: {other:?}"),
        }
        drop(inner);
        self.changed();
    }

    /// Waits until `check` holds; panics with `what` after [`PATIENCE`].
    pub(crate) async fn wait_until(&self, what: &str, check: impl Fn(&FakeController) -> bool) {
        let mut version = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            version.borrow_and_update();
            if check(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, version.changed())
                .await
                .is_err()
            {
                let calls = self.lock().calls.clone();
                panic!("timed out waiting for {what}; calls: {calls:?}");
            }
        }
    }

    /// Waits until `op` was called for task `id`.
    pub(crate) async fn wait_call(&self, id: &str, op: &'static str) {
        self.wait_until(&format!("{op} of {id}"), |f| f.calls(id).contains(&op))
            .await;
    }
}

fn no_such(id: &str) -> ExecError {
    ExecError::Failed(format!("no such container: {id}"))
}

#[tonic::async_trait]
impl Controller for FakeController {
    async fn prepare(&self, task: &Task) -> Result<(), ExecError> {
        self.record("prepare", task);
        let gate = self.lock().gates.get(&task.id).cloned();
        if let Some(gate) = gate {
            let _ = gate.acquire().await;
        }
        let hook = self.lock().on_prepare.clone();
        if let Some(hook) = hook {
            hook(task);
        }
        let mut inner = self.lock();
        match inner.prepare_errors.get(&task.id).cloned() {
            Some(ExecErrorKind::Rejected(m)) => return Err(ExecError::Rejected(m)),
            Some(ExecErrorKind::Failed(m)) => return Err(ExecError::Failed(m)),
            None => {}
        }
        if inner.containers.contains_key(&task.id) {
            return Err(ExecError::Rejected(format!(
                "container {} already exists",
                task.id
            )));
        }
        inner.containers.insert(task.id.clone(), Fake::Created);
        drop(inner);
        self.changed();
        Ok(())
    }

    async fn start(&self, task: &Task) -> Result<u32, ExecError> {
        self.record("start", task);
        let mut inner = self.lock();
        if let Some(m) = inner.start_errors.get(&task.id) {
            return Err(ExecError::Failed(m.clone()));
        }
        inner.next_pid += 1;
        let pid = inner.next_pid;
        match inner.containers.get_mut(&task.id) {
            Some(c @ Fake::Created) => *c = Fake::Running { pid },
            Some(other) => {
                return Err(ExecError::Failed(format!(
                    "container {} is not created but {other:?}",
                    task.id
                )))
            }
            None => return Err(no_such(&task.id)),
        }
        drop(inner);
        self.changed();
        Ok(pid)
    }

    async fn wait(&self, task: &Task) -> Result<Exit, ExecError> {
        self.record("wait", task);
        let mut version = self.version.subscribe();
        loop {
            version.borrow_and_update();
            match self.container(&task.id) {
                Some(Fake::Stopped(exit)) => return Ok(exit),
                Some(_) => {}
                None => return Err(no_such(&task.id)),
            }
            if version.changed().await.is_err() {
                return Err(no_such(&task.id));
            }
        }
    }

    /// As the runtime: a created container is deleted, a running one
    /// stopped (SIGTERM's 143), a stopped one left; an unknown one is an
    /// error.
    async fn shutdown(&self, task: &Task) -> Result<(), ExecError> {
        self.record("shutdown", task);
        let mut inner = self.lock();
        match inner.containers.get(&task.id).cloned() {
            Some(Fake::Created) => {
                inner.containers.remove(&task.id);
            }
            Some(Fake::Running { .. }) => {
                inner.containers.insert(
                    task.id.clone(),
                    Fake::Stopped(Exit {
                        code: Some(143),
                        oom_killed: false,
                    }),
                );
            }
            Some(Fake::Stopped(_)) => {}
            None => return Err(no_such(&task.id)),
        }
        drop(inner);
        self.changed();
        Ok(())
    }

    async fn remove(&self, task: &Task) -> Result<(), ExecError> {
        self.record("remove", task);
        self.lock().containers.remove(&task.id);
        self.changed();
        Ok(())
    }

    async fn inspect(&self, task: &Task) -> Result<Option<Existing>, ExecError> {
        self.record("inspect", task);
        let inner = self.lock();
        if let Some(m) = inner.inspect_errors.get(&task.id) {
            return Err(ExecError::Failed(m.clone()));
        }
        Ok(inner.containers.get(&task.id).map(|c| match c {
            Fake::Created => Existing::Created,
            Fake::Running { pid } => Existing::Running { pid: *pid },
            Fake::Stopped(_) => Existing::Stopped,
        }))
    }

    fn health_check(&self, task: &Task) -> Option<Check> {
        self.lock().checks.get(&task.id).cloned()
    }

    async fn probe(&self, task: &Task, _args: &[String], _timeout: Duration) -> Probe {
        self.record("probe", task);
        let passing = self.lock().passing.get(&task.id).copied().unwrap_or(false);
        Probe {
            exit_code: Some(if passing { 0 } else { 1 }),
            output: if passing { "ok\n" } else { "down\n" }.into(),
        }
    }

    async fn drain(&self, task: &Task) {
        self.record("drain", task);
    }
}

/// A task in `state`, wanted in `desired`.
pub(crate) fn task(id: &str, state: TaskState, desired: TaskState) -> Task {
    Task {
        id: id.into(),
        desired_state: desired as i32,
        status: Some(TaskStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A task just assigned to this node, wanted Running.
pub(crate) fn assigned(id: &str) -> Task {
    task(id, TaskState::Assigned, TaskState::Running)
}
