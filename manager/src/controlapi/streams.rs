//! The streaming Services calls: `service logs` and `exec`. Agents keep
//! their session with the leader, so a follower relays these calls to the
//! leader; the leader asks the agents that hold the tasks (through their
//! Subscriptions stream) and pipes what they send back. Tasks whose log
//! driver is `none` keep no logs: asking for them is refused.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rswarm_proto::control::exec_input::Frame as InFrame;
use rswarm_proto::control::exec_output::Frame as OutFrame;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::*;
use rswarm_proto::dispatcher::manager_exec_frame::Frame as ToAgent;
use rswarm_proto::dispatcher::{
    agent_exec_frame::Frame as FromAgent, agent_work::Work, AgentWork, ExecRequest,
    LogSubscription, ManagerExecFrame,
};
use rswarm_proto::types::{Node, Service, Task, TaskState};
use rswarm_raft::{Connector, Store};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::services::{resolve_service, resolve_task};
use crate::dispatcher::agents::AgentRegistry;
use crate::objects;

pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A channel to the current leader, for relaying streams.
fn leader_client(
    store: &Store,
    connector: &Arc<dyn Connector>,
) -> Result<ServicesClient<tonic::transport::Channel>, Status> {
    let (_, addr) = store
        .leader()
        .ok_or_else(|| Status::unavailable(rswarm_raft::StoreError::NoLeader.to_string()))?;
    let ch = connector
        .channel(&addr)
        .map_err(|e| Status::unavailable(format!("reaching the leader at {addr}: {e}")))?;
    Ok(ServicesClient::new(ch))
}

/// Refuses to read the logs of tasks whose log driver keeps none (`none`),
/// in Docker's words, instead of answering an empty stream.
fn readable(driver: Option<&rswarm_proto::types::Driver>) -> Result<(), Status> {
    if rswarm_proto::spec::logging::driver_name(driver) == "none" {
        return Err(Status::failed_precondition(
            "configured logging driver does not support reading",
        ));
    }
    Ok(())
}

pub(super) async fn logs(
    store: Store,
    agents: Arc<AgentRegistry>,
    connector: Arc<dyn Connector>,
    req: LogsRequest,
) -> Result<BoxStream<LogsResponse>, Status> {
    if !store.is_leader() {
        let stream = leader_client(&store, &connector)?
            .logs(req)
            .await?
            .into_inner();
        return Ok(Box::pin(stream));
    }
    let selector = req.selector.clone().unwrap_or_default();
    let mut tasks = vec![];
    for r in &selector.service_refs {
        let svc = resolve_service(&store, r)?;
        readable(
            svc.spec
                .as_ref()
                .and_then(|s| s.task.as_ref())
                .and_then(|t| t.log_driver.as_ref()),
        )?;
        tasks.extend(
            objects::list::<Task>(&store)?
                .into_iter()
                .filter(|t| t.service_id == svc.id),
        );
    }
    for r in &selector.task_refs {
        let task = resolve_task(&store, r)?;
        readable(task.spec.as_ref().and_then(|t| t.log_driver.as_ref()))?;
        tasks.push(task);
    }
    tasks.retain(|t| !t.node_id.is_empty());
    let nodes: HashMap<String, String> = objects::list::<Node>(&store)?
        .into_iter()
        .map(|n| (n.id.clone(), objects::hostname(&n).to_string()))
        .collect();
    let services: HashMap<String, String> = objects::list::<Service>(&store)?
        .into_iter()
        .map(|s| {
            (
                s.id.clone(),
                s.spec
                    .and_then(|s| s.annotations)
                    .map(|a| a.name)
                    .unwrap_or_default(),
            )
        })
        .collect();
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &tasks {
        by_node
            .entry(t.node_id.clone())
            .or_default()
            .push(t.id.clone());
    }
    let task_info: HashMap<String, (String, u64)> = tasks
        .iter()
        .map(|t| (t.id.clone(), (t.service_id.clone(), t.slot)))
        .collect();
    let sub_id = crate::objects::new_id();
    let mut rx = agents.subscribe_logs(&sub_id);
    let mut warnings = vec![];
    let mut asked = vec![];
    for (node, ids) in &by_node {
        let work = AgentWork {
            work: Some(Work::Logs(LogSubscription {
                id: sub_id.clone(),
                task_ids: ids.clone(),
                follow: req.follow,
                tail: req.tail,
                since_ns: req.since_ns,
                close: false,
            })),
        };
        if agents.send(node, work).await {
            asked.push(node.clone());
        } else {
            warnings.push(format!(
                "node {} ({node}) is not reachable: the logs of its {} task(s) are missing",
                nodes.get(node).cloned().unwrap_or_default(),
                ids.len()
            ));
        }
    }
    let (tx, out) = mpsc::channel::<Result<LogsResponse, Status>>(64);
    if !warnings.is_empty() {
        let _ = tx
            .send(Ok(LogsResponse {
                lines: vec![],
                warnings,
            }))
            .await;
    }
    let follow = req.follow;
    tokio::spawn(async move {
        let mut open = asked.len();
        while open > 0 {
            let msg = if follow {
                tokio::select! {
                    m = rx.recv() => m,
                    _ = tx.closed() => None,
                }
            } else {
                tokio::time::timeout(Duration::from_secs(30), rx.recv())
                    .await
                    .unwrap_or_default()
            };
            let Some(msg) = msg else { break };
            let lines = msg
                .entries
                .into_iter()
                .map(|e| {
                    let (service_id, slot) = task_info.get(&e.task_id).cloned().unwrap_or_default();
                    let node_id = tasks_node(&by_node, &e.task_id);
                    LogLine {
                        task_name: format!(
                            "{}.{}",
                            services.get(&service_id).cloned().unwrap_or_default(),
                            slot
                        ),
                        node_name: nodes.get(&node_id).cloned().unwrap_or_default(),
                        service_id,
                        slot,
                        node_id,
                        task_id: e.task_id,
                        timestamp: e.timestamp,
                        stream: e.stream,
                        data: e.data,
                    }
                })
                .collect::<Vec<_>>();
            if !lines.is_empty()
                && tx
                    .send(Ok(LogsResponse {
                        lines,
                        warnings: vec![],
                    }))
                    .await
                    .is_err()
            {
                break;
            }
            if msg.close {
                open -= 1;
            }
        }
        agents.unsubscribe_logs(&sub_id);
        for node in asked {
            let close = AgentWork {
                work: Some(Work::Logs(LogSubscription {
                    id: sub_id.clone(),
                    close: true,
                    ..Default::default()
                })),
            };
            agents.send(&node, close).await;
        }
    });
    Ok(Box::pin(ReceiverStream::new(out)))
}

fn tasks_node(by_node: &BTreeMap<String, Vec<String>>, task_id: &str) -> String {
    by_node
        .iter()
        .find(|(_, ids)| ids.iter().any(|i| i == task_id))
        .map(|(n, _)| n.clone())
        .unwrap_or_default()
}

pub(super) async fn exec(
    store: Store,
    agents: Arc<AgentRegistry>,
    connector: Arc<dyn Connector>,
    mut inbound: tonic::Streaming<ExecInput>,
) -> Result<BoxStream<ExecOutput>, Status> {
    if !store.is_leader() {
        let mut client = leader_client(&store, &connector)?;
        let upstream = async_stream_from(inbound);
        let stream = client.exec(upstream).await?.into_inner();
        return Ok(Box::pin(stream));
    }
    let first = inbound
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("exec: no start frame"))?;
    let Some(InFrame::Start(start)) = first.frame else {
        return Err(Status::invalid_argument(
            "exec: the first frame must start the command",
        ));
    };
    if start.cmd.is_empty() {
        return Err(Status::invalid_argument("exec: no command given"));
    }
    let task = resolve_task(&store, &start.task_ref)?;
    let running = task.status.as_ref().map(|s| s.state) == Some(TaskState::Running as i32);
    if !running || task.node_id.is_empty() {
        return Err(Status::failed_precondition(format!(
            "task {} is not running (state: {})",
            start.task_ref,
            task.status
                .as_ref()
                .and_then(|s| TaskState::try_from(s.state).ok())
                .map(|s| s
                    .as_str_name()
                    .trim_start_matches("TASK_STATE_")
                    .to_lowercase())
                .unwrap_or_default()
        )));
    }
    let session = crate::objects::new_id();
    let arrival = agents.expect_exec(&session);
    let work = AgentWork {
        work: Some(Work::Exec(ExecRequest {
            id: session.clone(),
            task_id: task.id.clone(),
            cmd: start.cmd,
            env: start.env,
            user: start.user,
            workdir: start.workdir,
            tty: start.tty,
            stdin: start.stdin,
        })),
    };
    if !agents.send(&task.node_id, work).await {
        agents.forget_exec(&session);
        return Err(Status::unavailable(format!(
            "the node running task {} is not connected to the manager",
            start.task_ref
        )));
    }
    let agent = match tokio::time::timeout(Duration::from_secs(15), arrival).await {
        Ok(Ok(a)) => a,
        _ => {
            agents.forget_exec(&session);
            return Err(Status::unavailable(
                "the agent did not start the exec session in time",
            ));
        }
    };
    let (tx, out) = mpsc::channel::<Result<ExecOutput, Status>>(64);
    let to_agent = agent.to_agent.clone();
    // Client → agent: stdin.
    tokio::spawn(async move {
        while let Ok(Some(frame)) = inbound.message().await {
            let f = match frame.frame {
                Some(InFrame::Stdin(b)) => ToAgent::Stdin(b),
                Some(InFrame::StdinClosed(_)) => ToAgent::StdinClosed(true),
                _ => continue,
            };
            if to_agent
                .send(ManagerExecFrame { frame: Some(f) })
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = to_agent
            .send(ManagerExecFrame {
                frame: Some(ToAgent::StdinClosed(true)),
            })
            .await;
    });
    // Agent → client: output and the exit code.
    let mut from_agent = agent.from_agent;
    tokio::spawn(async move {
        loop {
            match from_agent.message().await {
                Ok(Some(f)) => {
                    let frame = match f.frame {
                        Some(FromAgent::Stdout(b)) => OutFrame::Stdout(b),
                        Some(FromAgent::Stderr(b)) => OutFrame::Stderr(b),
                        Some(FromAgent::ExitCode(c)) => OutFrame::ExitCode(c),
                        Some(FromAgent::Error(e)) => OutFrame::Error(e),
                        None => continue,
                    };
                    let last = matches!(frame, OutFrame::ExitCode(_) | OutFrame::Error(_));
                    if tx
                        .send(Ok(ExecOutput { frame: Some(frame) }))
                        .await
                        .is_err()
                        || last
                    {
                        break;
                    }
                }
                Ok(None) => {
                    let _ = tx
                        .send(Ok(ExecOutput {
                            frame: Some(OutFrame::Error(
                                "the agent closed the exec session".into(),
                            )),
                        }))
                        .await;
                    break;
                }
                Err(s) => {
                    let _ = tx.send(Err(s)).await;
                    break;
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(out)))
}

/// Re-send a client's inbound exec frames upstream (follower → leader).
fn async_stream_from(
    inbound: tonic::Streaming<ExecInput>,
) -> impl Stream<Item = ExecInput> + Send + 'static {
    inbound
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| futures::future::ready(r.ok()))
}
