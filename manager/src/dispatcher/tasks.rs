//! The Tasks service on the leader: each agent's task assignments as a
//! stream (a complete set first, then incremental changes taken from the
//! store's change stream, with the secrets and configs those tasks need:
//! `files`), the agents' batched status reports written back,
//! and the channel by which the leader asks an agent for logs or an exec.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use rswarm_proto::dispatcher::assignment_change::Action;
use rswarm_proto::dispatcher::assignments_message::Type as MsgType;
use rswarm_proto::dispatcher::tasks_server::Tasks;
use rswarm_proto::dispatcher::*;
use rswarm_proto::types::{Task, TaskState};
use rswarm_raft::{Store, StoreError};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::agents::{AgentExecStream, AgentRegistry};
use super::files::NodeFiles;
use crate::controlapi::services::BoxStreamAlias;
use crate::error::ManagerError;
use crate::metrics::{AssignmentKind, DispatcherMetrics};
use crate::{auth, objects};

#[derive(Clone)]
pub(crate) struct TasksService {
    store: Store,
    agents: Arc<AgentRegistry>,
    metrics: DispatcherMetrics,
}

impl TasksService {
    pub(crate) fn new(store: Store, agents: Arc<AgentRegistry>) -> Self {
        Self {
            store,
            agents,
            metrics: DispatcherMetrics::default(),
        }
    }

    /// This service measuring sessions and messages into `metrics`.
    pub(crate) fn measured(mut self, metrics: DispatcherMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn not_leader(&self) -> Status {
        let leader = self.store.leader().map(|(_, a)| a).unwrap_or_default();
        Status::unavailable(format!(
            "this manager is not the leader; the leader is at {leader}"
        ))
    }
}

/// Tasks the agent of `node_id` must know about: assigned to it by the scheduler.
fn is_for(task: &Task, node_id: &str) -> bool {
    task.node_id == node_id
        && task.status.as_ref().map(|s| s.state).unwrap_or(0) >= TaskState::Assigned as i32
}

fn complete_set(store: &Store, node_id: &str) -> Result<Vec<Task>, ManagerError> {
    Ok(objects::list::<Task>(store)?
        .into_iter()
        .filter(|t| is_for(t, node_id))
        .collect())
}

fn update(task: Task) -> AssignmentChange {
    AssignmentChange {
        action: Action::Update as i32,
        task: Some(task),
        secret: None,
        config: None,
    }
}

fn remove(task: Task) -> AssignmentChange {
    AssignmentChange {
        action: Action::Remove as i32,
        task: Some(task),
        secret: None,
        config: None,
    }
}

/// A complete set of the node's tasks, with the secrets and configs they
/// need first.
fn complete_message(store: &Store, all: Vec<Task>, files: &mut NodeFiles) -> AssignmentsMessage {
    files.reset();
    for t in &all {
        files.task(&t.id, Some(t));
    }
    let (mut changes, _) = files.changes(store);
    changes.extend(all.into_iter().map(update));
    AssignmentsMessage {
        r#type: MsgType::Complete as i32,
        changes,
    }
}

#[tonic::async_trait]
impl Tasks for TasksService {
    type AssignmentsStream = BoxStreamAlias<AssignmentsMessage>;

    async fn assignments(
        &self,
        req: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let caller = auth::caller(&req)
            .ok_or_else(|| Status::unauthenticated("assignments need a node certificate"))?;
        if !self.store.is_leader() {
            return Err(self.not_leader());
        }
        let node = caller.node_id;
        let store = self.store.clone();
        let mut watch = store.watch();
        let initial = complete_set(&store, &node)?;
        let (tx, rx) = mpsc::channel::<Result<AssignmentsMessage, Status>>(16);
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let _session = metrics.session();
            let mut known: HashSet<String> = initial.iter().map(|t| t.id.clone()).collect();
            let mut files = NodeFiles::default();
            let first = complete_message(&store, initial, &mut files);
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            metrics.sent(AssignmentKind::Complete);
            let mut leadership = tokio::time::interval(Duration::from_secs(1));
            loop {
                let mut changes = vec![];
                let mut resync = false;
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = leadership.tick() => {
                        if !store.is_leader() {
                            let _ = tx.send(Err(Status::unavailable("leadership lost; reconnect to the new leader"))).await;
                            return;
                        }
                        continue;
                    }
                    c = watch.recv() => match c {
                        Ok(c) => changes.push(c),
                        Err(broadcast::error::RecvError::Lagged(_)) => resync = true,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
                // Take whatever else is already queued: one message per burst.
                loop {
                    match watch.try_recv() {
                        Ok(c) => changes.push(c),
                        Err(broadcast::error::TryRecvError::Lagged(_)) => resync = true,
                        Err(_) => break,
                    }
                }
                let msg = if resync {
                    match complete_set(&store, &node) {
                        Ok(all) => {
                            known = all.iter().map(|t| t.id.clone()).collect();
                            complete_message(&store, all, &mut files)
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.into())).await;
                            return;
                        }
                    }
                } else {
                    let mut out = vec![];
                    for c in changes.into_iter().filter(|c| c.kind == objects::KIND_TASK) {
                        match c.value.as_deref().map(Task::decode) {
                            Some(Ok(mut t)) => {
                                if is_for(&t, &node) {
                                    let m = t.meta.get_or_insert_with(Default::default);
                                    m.version =
                                        Some(rswarm_proto::types::Version { index: c.index });
                                    known.insert(t.id.clone());
                                    files.task(&t.id, Some(&t));
                                    out.push(update(t));
                                } else if known.remove(&t.id) {
                                    files.task(&t.id, None);
                                    out.push(remove(t));
                                }
                            }
                            Some(Err(_)) => {}
                            None => {
                                if known.remove(&c.id) {
                                    files.task(&c.id, None);
                                    out.push(remove(Task {
                                        id: c.id.clone(),
                                        ..Default::default()
                                    }));
                                }
                            }
                        }
                    }
                    if out.is_empty() {
                        continue;
                    }
                    let (mut changes, after) = files.changes(&store);
                    changes.extend(out);
                    changes.extend(after);
                    AssignmentsMessage {
                        r#type: MsgType::Incremental as i32,
                        changes,
                    }
                };
                let kind = if resync {
                    AssignmentKind::Complete
                } else {
                    AssignmentKind::Incremental
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
                metrics.sent(kind);
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn update_task_status(
        &self,
        req: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let caller = auth::caller(&req)
            .ok_or_else(|| Status::unauthenticated("status reports need a node certificate"))?;
        if !self.store.is_leader() {
            return Err(self.not_leader());
        }
        let updates = req.into_inner().updates;
        for _attempt in 0..10 {
            let mut ops = vec![];
            for u in &updates {
                let Some(mut status) = u.status.clone() else {
                    continue;
                };
                crate::controlapi::limits::bound_status(&mut status);
                let Some(mut task) = objects::get::<Task>(&self.store, &u.task_id)? else {
                    continue;
                };
                if task.node_id != caller.node_id {
                    continue; // reassigned meanwhile; this agent's word no longer counts
                }
                let current = task.status.as_ref().map(|s| s.state).unwrap_or(0);
                if status.state < current || (status == task.status.clone().unwrap_or_default()) {
                    continue;
                }
                task.status = Some(status);
                ops.push(objects::put(&task));
            }
            if ops.is_empty() {
                break;
            }
            match self.store.write(ops).await {
                Ok(_) => break,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ManagerError::from(e).into()),
            }
        }
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    type SubscriptionsStream = BoxStreamAlias<AgentWork>;

    async fn subscriptions(
        &self,
        req: Request<SubscriptionsRequest>,
    ) -> Result<Response<Self::SubscriptionsStream>, Status> {
        let caller = auth::caller(&req)
            .ok_or_else(|| Status::unauthenticated("subscriptions need a node certificate"))?;
        if !self.store.is_leader() {
            return Err(self.not_leader());
        }
        let rx = self.agents.connect(&caller.node_id);
        let stream = tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn publish_logs(
        &self,
        req: Request<Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let mut inbound = req.into_inner();
        while let Some(msg) = inbound.message().await? {
            if let Some(sink) = self.agents.log_sink(&msg.subscription_id) {
                let _ = sink.send(msg).await;
            }
        }
        Ok(Response::new(PublishLogsResponse {}))
    }

    type ExecSessionStream = BoxStreamAlias<ManagerExecFrame>;

    async fn exec_session(
        &self,
        req: Request<Streaming<AgentExecFrame>>,
    ) -> Result<Response<Self::ExecSessionStream>, Status> {
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("exec session without a first frame"))?;
        let waiter = self
            .agents
            .exec_arrived(&first.session_id)
            .ok_or_else(|| Status::not_found(format!("no exec session {}", first.session_id)))?;
        let (tx, rx) = mpsc::channel::<ManagerExecFrame>(64);
        let _ = waiter.send(AgentExecStream {
            from_agent: inbound,
            to_agent: tx,
        });
        let stream = tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}
