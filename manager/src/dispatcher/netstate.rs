//! The network state agents need for their data plane: every overlay
//! network, every task endpoint (address, node, whether it serves: running
//! and, with a health check, healthy; `listed` says which tasks are in it)
//! and every
//! service VIP with its published ports, and every node's own addresses
//! (its `ingress` address, for the routing mesh). Sent whole on connect and
//! again after each change (changes within 25 ms are folded into one
//! message). The leader serves it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rswarm_proto::dispatcher::network_state_server::NetworkState;
use rswarm_proto::dispatcher::{
    NetworkEndpoint, NetworkStateMessage, NetworkStateRequest, NodeEndpoint, ServiceEndpoint,
};
use rswarm_proto::types::{
    endpoint_spec::ResolutionMode, Network, Node, NodeState, Service, Task, TaskState,
};
use rswarm_raft::Store;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::controlapi::services::BoxStreamAlias;
use crate::error::ManagerError;
use crate::{auth, objects};

const STACK_LABEL: &str = "com.docker.stack.namespace";
/// Changes this close together go out as one message.
const FOLD: Duration = Duration::from_millis(25);

/// A task is a backend of its VIPs, the routing mesh and `tasks.<service>`
/// while it serves (the orchestrator's rule, one home for both).
pub(crate) use crate::orchestrator::task::serves;

/// Whether a task's endpoints are in the picture (`None`: not at all) and
/// whether it serves. A task the manager asked to stop (desired state past
/// RUNNING) serves no more from that moment, so every node takes it out of
/// its VIPs, mesh and DNS before the task's agent sends it its stop signal
/// (the agent waits for that, `drain`). Its endpoints stay listed until it
/// reports that it has stopped, or its node is no longer up: the nodes keep
/// their route to it for the connections it is finishing, and its leaving
/// the picture tells them when to drop what conntrack still holds for it.
pub(crate) fn listed(t: &Task, node_up: bool) -> Option<bool> {
    if t.node_id.is_empty() || t.networks.is_empty() {
        return None;
    }
    let state = t.status.as_ref().map(|s| s.state).unwrap_or(0);
    if state > TaskState::Running as i32 {
        return None;
    }
    if t.desired_state > TaskState::Running as i32 {
        let started = state == TaskState::Running as i32;
        return (started && node_up).then_some(false);
    }
    Some(serves(t))
}

#[derive(Clone)]
pub(crate) struct NetworkStateService {
    store: Store,
}

impl NetworkStateService {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Compute the current picture from the store.
pub(crate) fn snapshot(store: &Store) -> Result<NetworkStateMessage, ManagerError> {
    let networks = objects::list::<Network>(store)?;
    let node_list = objects::list::<Node>(store)?;
    let mut node_endpoints = vec![];
    for n in &node_list {
        let node_addr = n
            .status
            .as_ref()
            .map(|s| s.addr.clone())
            .unwrap_or_default();
        for att in &n.attachments {
            for addr in &att.addresses {
                node_endpoints.push(NodeEndpoint {
                    node_id: n.id.clone(),
                    node_addr: node_addr.clone(),
                    network_id: att.network_id.clone(),
                    addr: addr.clone(),
                });
            }
        }
    }
    let up: HashSet<&str> = node_list
        .iter()
        .filter(|n| n.status.as_ref().map(|s| s.state) == Some(NodeState::Ready as i32))
        .map(|n| n.id.as_str())
        .collect();
    let nodes: HashMap<String, String> = node_list
        .iter()
        .cloned()
        .map(|n| (n.id.clone(), n.status.map(|s| s.addr).unwrap_or_default()))
        .collect();
    let services = objects::list::<Service>(store)?;
    let names: HashMap<String, (String, String)> = services
        .iter()
        .map(|s| {
            let a = s
                .spec
                .as_ref()
                .and_then(|s| s.annotations.clone())
                .unwrap_or_default();
            let stack = a.labels.get(STACK_LABEL).cloned().unwrap_or_default();
            (s.id.clone(), (a.name, stack))
        })
        .collect();
    let mut endpoints = vec![];
    for t in objects::list::<Task>(store)? {
        let Some(running) = listed(&t, up.contains(t.node_id.as_str())) else {
            continue;
        };
        let (service_name, stack) = names.get(&t.service_id).cloned().unwrap_or_default();
        for att in &t.networks {
            for addr in &att.addresses {
                endpoints.push(NetworkEndpoint {
                    network_id: att.network_id.clone(),
                    task_id: t.id.clone(),
                    service_id: t.service_id.clone(),
                    service_name: service_name.clone(),
                    task_name: format!("{service_name}.{}.{}", t.slot, t.id),
                    addr: addr.clone(),
                    node_id: t.node_id.clone(),
                    node_addr: nodes.get(&t.node_id).cloned().unwrap_or_default(),
                    running,
                    aliases: att.aliases.clone(),
                    stack: stack.clone(),
                });
            }
        }
    }
    let mut svc_out = vec![];
    for s in &services {
        let (name, stack) = names.get(&s.id).cloned().unwrap_or_default();
        let ports = s
            .endpoint
            .as_ref()
            .map(|e| e.ports.clone())
            .unwrap_or_default();
        let dnsrr = s
            .spec
            .as_ref()
            .and_then(|sp| sp.endpoint.as_ref())
            .map(|e| e.mode == ResolutionMode::Dnsrr as i32)
            .unwrap_or(false);
        let aliases: HashMap<String, Vec<String>> = s
            .spec
            .as_ref()
            .and_then(|sp| sp.task.as_ref())
            .map(|t| {
                t.networks
                    .iter()
                    .map(|n| (n.target.clone(), n.aliases.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let alias_for = |net: &str| -> Vec<String> {
            let name = networks
                .iter()
                .find(|n| n.id == net)
                .and_then(|n| {
                    n.spec
                        .as_ref()
                        .and_then(|s| s.annotations.as_ref())
                        .map(|a| a.name.clone())
                })
                .unwrap_or_default();
            aliases
                .get(net)
                .or_else(|| aliases.get(&name))
                .cloned()
                .unwrap_or_default()
        };
        if dnsrr {
            let mut nets: Vec<String> = endpoints
                .iter()
                .filter(|e| e.service_id == s.id)
                .map(|e| e.network_id.clone())
                .collect();
            nets.sort();
            nets.dedup();
            for n in nets {
                svc_out.push(ServiceEndpoint {
                    service_id: s.id.clone(),
                    name: name.clone(),
                    aliases: alias_for(&n),
                    network_id: n,
                    vip: String::new(),
                    stack: stack.clone(),
                    ports: ports.clone(),
                });
            }
        } else {
            for vip in s
                .endpoint
                .as_ref()
                .map(|e| e.virtual_ips.as_slice())
                .unwrap_or(&[])
            {
                svc_out.push(ServiceEndpoint {
                    service_id: s.id.clone(),
                    name: name.clone(),
                    network_id: vip.network_id.clone(),
                    vip: vip.addr.clone(),
                    aliases: alias_for(&vip.network_id),
                    stack: stack.clone(),
                    ports: ports.clone(),
                });
            }
        }
    }
    Ok(NetworkStateMessage {
        networks,
        endpoints,
        services: svc_out,
        node_endpoints,
    })
}

#[tonic::async_trait]
impl NetworkState for NetworkStateService {
    type WatchStream = BoxStreamAlias<NetworkStateMessage>;

    async fn watch(
        &self,
        req: Request<NetworkStateRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        auth::caller(&req)
            .ok_or_else(|| Status::unauthenticated("network state needs a node certificate"))?;
        let store = self.store.clone();
        let mut changes = store.watch();
        let (tx, rx) = mpsc::channel::<Result<NetworkStateMessage, Status>>(4);
        tokio::spawn(async move {
            let mut last: Option<NetworkStateMessage> = None;
            loop {
                match snapshot(&store) {
                    Ok(now) => {
                        if last.as_ref() != Some(&now) {
                            if tx.send(Ok(now.clone())).await.is_err() {
                                return;
                            }
                            last = Some(now);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "network state snapshot"),
                }
                // Wait for a relevant change, then fold a burst into one message.
                loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        c = changes.recv() => match c {
                            Ok(c) if matches!(c.kind.as_str(), "task" | "service" | "network" | "node") => break,
                            Ok(_) => continue,
                            Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        _ = tokio::time::sleep(Duration::from_secs(5)) => break,
                    }
                }
                tokio::time::sleep(FOLD).await;
                while changes.try_recv().is_ok() {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::TaskStatus;

    fn task(state: TaskState, health: &str) -> Task {
        Task {
            status: Some(TaskStatus {
                state: state as i32,
                health: health.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_running_tasks_that_are_healthy_or_unchecked_serve() {
        assert!(serves(&task(TaskState::Running, "")));
        assert!(serves(&task(TaskState::Running, "healthy")));
        assert!(!serves(&task(TaskState::Running, "starting")));
        assert!(!serves(&task(TaskState::Running, "unhealthy")));
        assert!(!serves(&task(TaskState::Starting, "")));
        assert!(!serves(&task(TaskState::Failed, "unhealthy")));
        assert!(!serves(&Task::default()));
    }

    fn placed(state: TaskState, desired: TaskState) -> Task {
        Task {
            node_id: "n1".into(),
            networks: vec![rswarm_proto::types::NetworkAttachment {
                network_id: "net".into(),
                addresses: vec!["10.0.0.5/24".into()],
                aliases: vec![],
            }],
            desired_state: desired as i32,
            ..task(state, "")
        }
    }

    #[test]
    fn a_task_asked_to_stop_serves_no_more_but_stays_listed_until_it_stopped() {
        use TaskState::*;
        assert_eq!(listed(&placed(Running, Running), true), Some(true));
        assert_eq!(listed(&placed(Starting, Running), true), Some(false));
        // Draining: out of the load balancers, still reachable.
        assert_eq!(listed(&placed(Running, Shutdown), true), Some(false));
        assert_eq!(listed(&placed(Running, Remove), true), Some(false));
        // Stopped, or never started, or its node is gone: not listed.
        assert_eq!(listed(&placed(Shutdown, Shutdown), true), None);
        assert_eq!(listed(&placed(Starting, Shutdown), true), None);
        assert_eq!(listed(&placed(Running, Shutdown), false), None);
        assert_eq!(listed(&placed(Complete, Running), true), None);
        // A task on a node that is down but still wanted stays as it was.
        assert_eq!(listed(&placed(Running, Running), false), Some(true));
        let mut unplaced = placed(Running, Running);
        unplaced.node_id.clear();
        assert_eq!(listed(&unplaced, true), None);
    }
}
