//! What the allocator decides for one object, from its in-memory
//! accounting: a service's VIPs (one per network it is attached to, none in
//! `dnsrr` mode), a NEW task's addresses (then PENDING, or the message it
//! waits with), and a node's address on `ingress`. Addresses already held
//! are kept; new ones come from `state::Allocations`. Nothing here writes:
//! the loop (`allocator`) batches tasks, `writes` writes services and nodes.

use rswarm_proto::types::{
    Endpoint, NetworkAttachment, Node, PortConfig, Service, Task, TaskState, TaskStatus, VirtualIp,
};

use super::state::{awaits_allocation, Allocations, Held, Owner};
use super::{ipam, network, View, NO_INGRESS_MESSAGE};
use crate::orchestrator::task::PENDING_MESSAGE;
use crate::orchestrator::view::Batch;

/// The networks a service gets VIPs on: none in `dnsrr` mode; else
/// `ingress` (when it publishes ingress ports) and its template's networks.
fn vip_networks(obs: &Allocations, svc: &Service) -> Vec<String> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    if !network::wants_vips(spec.endpoint.as_ref()) {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    let ports = spec
        .endpoint
        .as_ref()
        .map(|e| e.ports.as_slice())
        .unwrap_or(&[]);
    if network::publishes_ingress(ports) {
        if let Some(ingress) = obs.ingress() {
            out.push(ingress.id.clone());
        }
    }
    for cfg in spec.task.iter().flat_map(|t| t.networks.iter()) {
        if let Some(n) = obs.resolve(&cfg.target) {
            if !out.contains(&n.id) {
                out.push(n.id.clone());
            }
        }
    }
    out
}

/// The service with its VIPs as they should be, and the addresses newly
/// allocated for it; `None` when nothing changes.
pub(super) fn plan_vips(obs: &mut Allocations, svc: &Service) -> Option<(Service, Vec<Held>)> {
    let want = vip_networks(obs, svc);
    let owner = Owner::Service(svc.id.clone());
    let current: Vec<VirtualIp> = svc
        .endpoint
        .as_ref()
        .map(|e| e.virtual_ips.clone())
        .unwrap_or_default();
    let mut vips = Vec::new();
    let mut fresh = Vec::new();
    let mut missing = false;
    for net in &want {
        let kept = current.iter().find(|v| {
            v.network_id == *net
                && ipam::parse_addr(&v.addr).is_ok_and(|ip| obs.owns(&(net.clone(), ip), &owner))
        });
        if let Some(v) = kept {
            vips.push(v.clone());
            continue;
        }
        match obs.allocate(net, &owner) {
            Ok((ip, subnet)) => {
                vips.push(VirtualIp {
                    network_id: net.clone(),
                    addr: subnet.with_addr(ip),
                });
                fresh.push((net.clone(), ip));
            }
            Err(e) => {
                tracing::warn!(service = %svc.id, error = %e, "no VIP for the service yet");
                missing = true;
            }
        }
    }
    if missing {
        obs.waiting_vips.insert(svc.id.clone());
    } else {
        obs.waiting_vips.remove(&svc.id);
    }
    if vips == current {
        return None;
    }
    let mut updated = svc.clone();
    let endpoint = updated.endpoint.get_or_insert_with(|| {
        let spec = svc.spec.as_ref().and_then(|s| s.endpoint.clone());
        Endpoint {
            ports: spec.as_ref().map(|e| e.ports.clone()).unwrap_or_default(),
            spec,
            virtual_ips: Vec::new(),
        }
    });
    endpoint.virtual_ips = vips;
    Some((updated, fresh))
}

/// The node with its ingress address as it should be, and the address newly
/// allocated for it; `None` when nothing changes.
pub(super) fn plan_node(obs: &mut Allocations, node: &Node) -> Option<(Node, Vec<Held>)> {
    let owner = Owner::Node(node.id.clone());
    let mut fresh = Vec::new();
    let mut want = Vec::new();
    match obs.ingress().map(|n| n.id.clone()) {
        None => {
            obs.waiting_nodes.remove(&node.id);
        }
        Some(net) => {
            // The address it already holds there (written by an earlier
            // leader or pass) is kept.
            let kept = node
                .attachments
                .iter()
                .filter(|a| a.network_id == net)
                .flat_map(|a| a.addresses.iter())
                .find(|a| ipam::parse_addr(a).is_ok_and(|ip| obs.owns(&(net.clone(), ip), &owner)))
                .cloned();
            let addr = match kept {
                Some(a) => Some(a),
                None => match obs.allocate(&net, &owner) {
                    Ok((ip, subnet)) => {
                        fresh.push((net.clone(), ip));
                        Some(subnet.with_addr(ip))
                    }
                    Err(e) => {
                        if obs.waiting_nodes.insert(node.id.clone()) {
                            tracing::warn!(
                                node = %node.id,
                                error = %e,
                                "the ingress network is full: the node gets no routing-mesh address until one is freed"
                            );
                        }
                        None
                    }
                },
            };
            if let Some(addr) = addr {
                obs.waiting_nodes.remove(&node.id);
                want.push(NetworkAttachment {
                    network_id: net,
                    addresses: vec![addr],
                    aliases: Vec::new(),
                });
            }
        }
    }
    if want == node.attachments {
        return None;
    }
    let mut updated = node.clone();
    updated.attachments = want;
    Some((updated, fresh))
}

/// The ports a task publishes: its own endpoint (copied from the service
/// when it was made), else its service's spec.
fn task_ports<'a>(t: &'a Task, svc: &'a Service) -> Vec<&'a PortConfig> {
    match t.endpoint.as_ref() {
        Some(e) => e
            .ports
            .iter()
            .chain(e.spec.iter().flat_map(|s| s.ports.iter()))
            .collect(),
        None => svc
            .spec
            .iter()
            .flat_map(|s| s.endpoint.iter())
            .flat_map(|e| e.ports.iter())
            .collect(),
    }
}

/// The networks a task is attached to, with their aliases: `ingress` first
/// when its service publishes ingress ports, then its template's networks.
/// An error is the message the task waits with.
fn task_targets(
    obs: &Allocations,
    t: &Task,
    svc: &Service,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let ports: Vec<PortConfig> = task_ports(t, svc).into_iter().cloned().collect();
    if network::publishes_ingress(&ports) {
        match obs.ingress() {
            Some(n) => out.push((n.id.clone(), Vec::new())),
            None => return Err(NO_INGRESS_MESSAGE.to_string()),
        }
    }
    for cfg in t.spec.iter().flat_map(|s| s.networks.iter()) {
        let Some(n) = obs.resolve(&cfg.target) else {
            return Err(format!("network {} not found", cfg.target));
        };
        match out.iter_mut().find(|(id, _)| *id == n.id) {
            Some((_, aliases)) => aliases.extend(cfg.aliases.iter().cloned()),
            None => out.push((n.id.clone(), cfg.aliases.clone())),
        }
    }
    Ok(out)
}

/// Allocates a NEW task's addresses and moves it to PENDING, or records why
/// it has to wait.
pub(super) fn plan_task(view: &mut View, batch: &mut Batch, id: &str, now: i64) {
    let Some(t) = view.tasks.get(id) else {
        return;
    };
    if !awaits_allocation(t) {
        return;
    }
    // A task whose service is gone is the reaper's.
    let Some(svc) = view.services.get(&t.service_id) else {
        return;
    };
    let (t, svc) = (t.clone(), svc.clone());
    let targets = match task_targets(&view.observer, &t, &svc) {
        Ok(targets) => targets,
        Err(message) => {
            set_message(view, batch, &t, &message);
            return;
        }
    };
    let owner = Owner::Task(t.id.clone());
    let mut attachments = Vec::new();
    let mut fresh: Vec<Held> = Vec::new();
    for (net, aliases) in targets {
        // An address it already holds there (written by an earlier leader)
        // is kept.
        let kept = t
            .networks
            .iter()
            .filter(|a| a.network_id == net)
            .flat_map(|a| a.addresses.iter())
            .find(|a| {
                ipam::parse_addr(a).is_ok_and(|ip| view.observer.owns(&(net.clone(), ip), &owner))
            })
            .cloned();
        let addr = match kept {
            Some(a) => a,
            None => match view.observer.allocate(&net, &owner) {
                Ok((ip, subnet)) => {
                    fresh.push((net.clone(), ip));
                    subnet.with_addr(ip)
                }
                Err(e) => {
                    for h in &fresh {
                        view.observer.release(h, &owner);
                    }
                    set_message(view, batch, &t, &e.to_string());
                    return;
                }
            },
        };
        attachments.push(NetworkAttachment {
            network_id: net,
            addresses: vec![addr],
            aliases,
        });
    }
    let mut next = t;
    next.networks = attachments;
    if let Some(vips) = svc.endpoint.as_ref().map(|e| e.virtual_ips.clone()) {
        if let Some(e) = next.endpoint.as_mut() {
            e.virtual_ips = vips;
        }
    }
    let status = next.status.get_or_insert_with(TaskStatus::default);
    status.state = TaskState::Pending as i32;
    status.message = PENDING_MESSAGE.into();
    status.err.clear();
    status.timestamp = now;
    if !batch.put_task(view, next) {
        for h in &fresh {
            view.observer.release(h, &owner);
        }
    }
}

/// Records why a NEW task waits, unless it already says so.
fn set_message(view: &mut View, batch: &mut Batch, t: &Task, message: &str) {
    if t.status
        .as_ref()
        .is_some_and(|s| s.message == message && s.err == message)
    {
        return;
    }
    let mut next = t.clone();
    let status = next.status.get_or_insert_with(TaskStatus::default);
    status.message = message.to_string();
    status.err = message.to_string();
    batch.put_task(view, next);
}
