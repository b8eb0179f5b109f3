//! The dispatcher: agents' heartbeats. Runs on the leader: it records when
//! each node was last heard from, turns a node Ready on its heartbeat and
//! Down when it misses them (`heartbeat` period × `GRACE`), and tells every
//! agent the managers to fail over to and the role it should have. A
//! follower answers with the leader's address so the agent moves there.
//!
//! A node is only blamed for time the dispatcher was listening: when the
//! check itself ran late (this manager's process was too busy to run it,
//! and so perhaps to take the heartbeats that were waiting), every node's
//! clock is moved on by the stall first, so a busy manager never marks its
//! nodes Down for its own delay.

pub mod agents;
pub mod netstate;
pub mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rswarm_proto::dispatcher::dispatcher_server::Dispatcher;
use rswarm_proto::dispatcher::{HeartbeatRequest, HeartbeatResponse, Manager};
use rswarm_proto::types::{NodeDescription, NodeRole, NodeState, NodeStatus};
use rswarm_raft::{Store, StoreError};
use tonic::{Request, Response, Status};

use crate::certificates::{host_of, manager_addrs};
use crate::error::ManagerError;
use crate::{auth, objects};

/// Default heartbeat period (Swarm's: 5 s).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// Missed periods after which a node is Down.
pub const GRACE: u32 = 3;

#[derive(Clone)]
pub struct DispatcherService {
    store: Store,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    last: HashMap<String, Instant>,
    /// Whether this manager was leader at the last check; a new leader gives
    /// every node a fresh grace period.
    was_leader: bool,
    /// When the last check ran.
    last_check: Option<Instant>,
}

/// How often the manager runs [`DispatcherService::check_heartbeats`].
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

impl Seen {
    /// Credits every node with a stall of the checker beyond its usual
    /// interval (see the module docs).
    fn forgive_stall(&mut self, now: Instant) {
        if let Some(prev) = self.last_check {
            let stall = now
                .saturating_duration_since(prev)
                .saturating_sub(CHECK_EVERY);
            if !stall.is_zero() {
                for t in self.last.values_mut() {
                    *t = (*t + stall).min(now);
                }
            }
        }
        self.last_check = Some(now);
    }
}

/// The cluster's heartbeat period.
pub fn heartbeat_period(store: &Store) -> Duration {
    objects::cluster(store)
        .ok()
        .and_then(|c| c.spec)
        .map(|s| s.heartbeat_period_ns)
        .filter(|ns| *ns > 0)
        .map(|ns| Duration::from_nanos(ns as u64))
        .unwrap_or(DEFAULT_HEARTBEAT)
}

impl DispatcherService {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            seen: Arc::new(Mutex::new(Seen::default())),
        }
    }

    fn managers(&self) -> Vec<Manager> {
        manager_addrs(&self.store)
            .unwrap_or_default()
            .into_iter()
            .map(|(node_id, addr)| Manager { node_id, addr })
            .collect()
    }

    /// One pass of failure detection; called periodically by the manager.
    pub async fn check_heartbeats(&self) -> Result<(), ManagerError> {
        let leader = self.store.is_leader();
        let period = heartbeat_period(&self.store);
        let deadline = period * GRACE;
        let now = Instant::now();
        let expired: Vec<String> = {
            let mut seen = self
                .seen
                .lock()
                .map_err(|_| ManagerError::Internal("dispatcher lock poisoned".into()))?;
            if !leader {
                seen.was_leader = false;
                seen.last_check = None;
                return Ok(());
            }
            seen.forgive_stall(now);
            if !seen.was_leader {
                // Leadership just arrived: nobody is overdue yet.
                seen.was_leader = true;
                let ids: Vec<String> = objects::nodes(&self.store)?
                    .into_iter()
                    .map(|n| n.id)
                    .collect();
                for id in ids {
                    seen.last.insert(id, now);
                }
                return Ok(());
            }
            let nodes = objects::nodes(&self.store)?;
            nodes
                .iter()
                .filter(|n| objects::is_ready(n))
                .filter(|n| match seen.last.get(&n.id) {
                    Some(t) => now.duration_since(*t) > deadline,
                    None => {
                        seen.last.insert(n.id.clone(), now);
                        false
                    }
                })
                .map(|n| n.id.clone())
                .collect()
        };
        for id in expired {
            let Some(mut node) = objects::node(&self.store, &id)? else {
                continue;
            };
            let addr = node
                .status
                .as_ref()
                .map(|s| s.addr.clone())
                .unwrap_or_default();
            node.status = Some(NodeStatus {
                state: NodeState::Down as i32,
                message: "heartbeat failure".into(),
                addr,
            });
            tracing::warn!(node = %id, "node missed its heartbeats; marking it down");
            match self.store.write(vec![objects::put_node(&node)]).await {
                Ok(_) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Dispatcher for DispatcherService {
    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let Some(caller) = auth::caller(&req) else {
            return Err(Status::unauthenticated(
                "heartbeats need a node certificate",
            ));
        };
        // Which CA key signed the certificate the node presents (root CA rotation).
        let presented_key_id = req
            .peer_certs()
            .and_then(|certs| certs.first().and_then(|c| crate::ca::authority_key_id(c)));
        let req = req.into_inner();
        let period = heartbeat_period(&self.store);
        let cluster = objects::cluster(&self.store)?;
        let signing_key_id = crate::ca::rotation::signing_key_id(&cluster);
        let renew_certificate = match (&presented_key_id, &signing_key_id) {
            (Some(presented), Some(signing)) => presented != signing,
            _ => false,
        };
        let trust_root_hash = crate::ca::rotation::trust_root_hash(&cluster);
        let leader_addr = self.store.leader().map(|(_, a)| a).unwrap_or_default();
        let node = objects::node(&self.store, &caller.node_id)?;
        let Some(mut node) = node else {
            return Ok(Response::new(HeartbeatResponse {
                period_ns: period.as_nanos() as i64,
                managers: self.managers(),
                desired_role: NodeRole::Worker as i32,
                leader_addr,
                removed: true,
                renew_certificate: false,
                trust_root_hash: String::new(),
            }));
        };
        let desired_role = node
            .spec
            .as_ref()
            .map(|s| s.desired_role)
            .unwrap_or(node.role);
        if self.store.is_leader() {
            if let Ok(mut seen) = self.seen.lock() {
                seen.last.insert(caller.node_id.clone(), Instant::now());
            }
            let addr = host_of(&req.addr);
            // The TLS info is the manager's to say, not the agent's: kept, with
            // the issuer of the certificate the node presents now.
            let mut tls_info = node
                .description
                .as_ref()
                .and_then(|old| old.tls_info.clone());
            if let Some(key_id) = presented_key_id {
                let info = tls_info.get_or_insert_with(Default::default);
                info.cert_issuer_key_id = key_id;
            }
            let description = req
                .description
                .map(|d| NodeDescription {
                    tls_info: tls_info.clone(),
                    ..d
                })
                .or_else(|| {
                    node.description.clone().map(|d| NodeDescription {
                        tls_info: tls_info.clone(),
                        ..d
                    })
                });
            let needs_write = !objects::is_ready(&node)
                || node.status.as_ref().map(|s| s.addr.as_str()) != Some(addr.as_str())
                || (description.is_some() && node.description != description);
            if needs_write {
                node.status = Some(NodeStatus {
                    state: NodeState::Ready as i32,
                    message: String::new(),
                    addr,
                });
                if description.is_some() {
                    node.description = description;
                }
                match self.store.write(vec![objects::put_node(&node)]).await {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(ManagerError::from(e).into()),
                }
            }
        }
        Ok(Response::new(HeartbeatResponse {
            period_ns: period.as_nanos() as i64,
            managers: self.managers(),
            desired_role,
            leader_addr,
            removed: false,
            renew_certificate,
            trust_root_hash,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_check_forgives_its_own_delay() {
        let t0 = Instant::now();
        let mut seen = Seen::default();
        seen.last.insert("n1".into(), t0);
        seen.forgive_stall(t0);
        // On time: nothing is credited.
        seen.forgive_stall(t0 + CHECK_EVERY);
        assert_eq!(seen.last["n1"], t0);
        // Ten seconds late: the node is credited with the stall, not blamed.
        let late = t0 + CHECK_EVERY + Duration::from_secs(10);
        seen.forgive_stall(late);
        assert_eq!(seen.last["n1"], t0 + Duration::from_secs(10));
        assert!(late.duration_since(seen.last["n1"]) < GRACE * Duration::from_secs(1));
    }
}
