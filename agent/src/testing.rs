//! A stand-in for the leader's Tasks service, for the worker's and the
//! reporter's tests: it serves on loopback (plain HTTP), hands a test the
//! sending end of every Assignments stream an agent opens, and keeps every
//! status report it is sent (or refuses them while told to).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rswarm_proto::dispatcher::tasks_server::{Tasks, TasksServer};
use rswarm_proto::dispatcher::{
    AgentExecFrame, AgentWork, AssignmentsMessage, AssignmentsRequest, ManagerExecFrame,
    PublishLogsMessage, PublishLogsResponse, SubscriptionsRequest, UpdateTaskStatusRequest,
    UpdateTaskStatusResponse,
};
use rswarm_proto::types::TaskStatus;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use crate::exec::testing::PATIENCE;

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[derive(Default)]
struct State {
    /// The sending end of each Assignments stream, in the order opened.
    streams: Vec<mpsc::Sender<Result<AssignmentsMessage, Status>>>,
    /// Every status received, per task, in order.
    statuses: HashMap<String, Vec<TaskStatus>>,
    /// Each UpdateTaskStatus call taken: its task IDs.
    batches: Vec<Vec<String>>,
}

/// See the module docs.
pub(crate) struct FakeManager {
    pub(crate) addr: String,
    state: Mutex<State>,
    /// Bumped on every change, for waiters.
    version: watch::Sender<u64>,
    /// UpdateTaskStatus calls still to refuse.
    refuse: AtomicUsize,
}

#[derive(Clone)]
struct Service(Arc<FakeManager>);

impl FakeManager {
    pub(crate) async fn start() -> Arc<FakeManager> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let manager = Arc::new(FakeManager {
            addr,
            state: Mutex::new(State::default()),
            version: watch::channel(0).0,
            refuse: AtomicUsize::new(0),
        });
        let server = tonic::transport::Server::builder()
            .add_service(TasksServer::new(Service(manager.clone())))
            .serve_with_incoming(TcpListenerStream::new(listener));
        tokio::spawn(server);
        manager
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// A channel to it, as the session hands the worker one.
    pub(crate) fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy()
    }

    /// Refuse the next `n` status reports (a leader too busy to take them).
    pub(crate) fn refuse_reports(&self, n: usize) {
        self.refuse.store(n, Ordering::SeqCst);
    }

    /// Waits until `check` holds; panics with `what` after [`PATIENCE`].
    pub(crate) async fn wait_until(&self, what: &str, check: impl Fn(&FakeManager) -> bool) {
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
                let statuses: Vec<(String, Vec<i32>)> = self
                    .lock()
                    .statuses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.iter().map(|s| s.state).collect()))
                    .collect();
                panic!("timed out waiting for {what}; statuses: {statuses:?}");
            }
        }
    }

    /// Assignments streams opened so far.
    pub(crate) fn streams(&self) -> usize {
        self.lock().streams.len()
    }

    /// Sends `msg` on the latest Assignments stream (waiting for one).
    pub(crate) async fn assign(&self, msg: AssignmentsMessage) {
        self.wait_until("an assignments stream", |m| m.streams() > 0)
            .await;
        let tx = self.lock().streams.last().cloned().expect("a stream");
        tx.send(Ok(msg)).await.expect("the worker holds its stream");
    }

    /// Every status received for `task_id`, oldest first.
    pub(crate) fn statuses(&self, task_id: &str) -> Vec<TaskStatus> {
        self.lock()
            .statuses
            .get(task_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The last status received for `task_id`.
    pub(crate) fn last(&self, task_id: &str) -> Option<TaskStatus> {
        self.statuses(task_id).last().cloned()
    }

    /// Waits until the last status of `task_id` is `state` and returns it.
    pub(crate) async fn wait_state(
        &self,
        task_id: &str,
        state: rswarm_proto::types::TaskState,
    ) -> TaskStatus {
        self.wait_until(&format!("{task_id} to be {state:?}"), |m| {
            m.last(task_id).map(|s| s.state) == Some(state as i32)
        })
        .await;
        self.last(task_id).expect("a status")
    }

    /// The task IDs of each UpdateTaskStatus call taken.
    pub(crate) fn batches(&self) -> Vec<Vec<String>> {
        self.lock().batches.clone()
    }
}

#[tonic::async_trait]
impl Tasks for Service {
    type AssignmentsStream = Stream<AssignmentsMessage>;

    async fn assignments(
        &self,
        _req: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        self.0.lock().streams.push(tx);
        self.0.changed();
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn update_task_status(
        &self,
        req: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let refused = self
            .0
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            self.0.changed();
            return Err(Status::unavailable("the leader is busy"));
        }
        let updates = req.into_inner().updates;
        let mut state = self.0.lock();
        state
            .batches
            .push(updates.iter().map(|u| u.task_id.clone()).collect());
        for u in updates {
            if let Some(s) = u.status {
                state.statuses.entry(u.task_id).or_default().push(s);
            }
        }
        drop(state);
        self.0.changed();
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    type SubscriptionsStream = Stream<AgentWork>;

    async fn subscriptions(
        &self,
        _req: Request<SubscriptionsRequest>,
    ) -> Result<Response<Self::SubscriptionsStream>, Status> {
        // Open, and never asks for anything.
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }

    async fn publish_logs(
        &self,
        _req: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        Err(Status::unimplemented("not in these tests"))
    }

    type ExecSessionStream = Stream<ManagerExecFrame>;

    async fn exec_session(
        &self,
        _req: Request<Streaming<AgentExecFrame>>,
    ) -> Result<Response<Self::ExecSessionStream>, Status> {
        Err(Status::unimplemented("not in these tests"))
    }
}
