//! The network state agents need for their data plane: every overlay
//! network, every task endpoint (address, node, whether it serves: running
//! and, with a health check, healthy) and every
//! service VIP with its published ports, and every node's own addresses
//! (its `ingress` address, for the routing mesh). Sent whole on connect and
//! again after each change (changes within 25 ms are folded into one
//! message). The leader serves it.

use std::collections::HashMap;
use std::time::Duration;

use rswarm_proto::dispatcher::network_state_server::NetworkState;
use rswarm_proto::dispatcher::{
    NetworkEndpoint, NetworkStateMessage, NetworkStateRequest, NodeEndpoint, ServiceEndpoint,
};
use rswarm_proto::types::{endpoint_spec::ResolutionMode, Network, Node, Service, Task, TaskState};
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
/// while it is RUNNING and, when it has a health check, healthy: not while
/// it is still "starting", nor once it is "unhealthy" (Docker's rule).
pub(crate) fn serves(t: &Task) -> bool {
    t.status.as_ref().is_some_and(|s| {
        s.state == TaskState::Running as i32 && (s.health.is_empty() || s.health == "healthy")
    })
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
    let nodes: HashMap<String, String> = node_list
        .into_iter()
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
        if t.node_id.is_empty()
            || t.networks.is_empty()
            || t.desired_state > TaskState::Running as i32
        {
            continue;
        }
        let state = t.status.as_ref().map(|s| s.state).unwrap_or(0);
        if state > TaskState::Running as i32 {
            continue;
        }
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
                    running: serves(&t),
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
}
