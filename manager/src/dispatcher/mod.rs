//! The dispatcher: agents' heartbeats. Runs on the leader: it records when
//! each node was last heard from, turns a node Ready on its heartbeat and
//! Down when it misses them (`heartbeat` period × `GRACE`; a new leader
//! first waits `ELECTION_GRACE` periods from its election, so agents have
//! time to find it), and tells every agent, in every answer, the weighted
//! list of managers to fail over to and the role it should have. A follower
//! answers with the leader's address so the agent moves there; only the
//! leader tells a node it was removed (a follower's store may not have the
//! node yet).
//!
//! The check (`check_heartbeats`) runs in the leader supervisor's
//! housekeeping loop (`crate::leader`); when this manager stops leading,
//! the supervisor has it forget the term (`forget_term`).
//!
//! A node is only blamed for time the dispatcher was listening: when the
//! check itself ran late (this manager's process was too busy to run it,
//! and so perhaps to take the heartbeats that were waiting), every node's
//! clock (and the election's) is moved on by the stall first, so a busy
//! manager never marks its nodes Down for its own delay.

pub(crate) mod agents;
mod files;
pub(crate) mod netstate;
#[cfg(test)]
mod service_tests;
pub(crate) mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rswarm_proto::dispatcher::dispatcher_server::Dispatcher;
use rswarm_proto::dispatcher::{HeartbeatRequest, HeartbeatResponse, Manager};
use rswarm_proto::types::{Node, NodeDescription, NodeRole, NodeState, NodeStatus};
use rswarm_raft::{Store, StoreError};
use tonic::{Request, Response, Status};

use crate::certificates::{host_of, manager_addrs};
use crate::error::ManagerError;
use crate::metrics::DispatcherMetrics;
use crate::{auth, objects};

/// Default heartbeat period (Swarm's: 5 s).
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// Missed periods after which a node is Down.
pub(crate) const GRACE: u32 = 3;
/// Periods a new leader waits, from its election, before it marks a node it
/// has not heard from yet Down: the agents need time to learn of the
/// election and find the new leader (swarmkit likewise gives every node a
/// grace of a heartbeat period times a factor after a leadership change).
pub(crate) const ELECTION_GRACE: u32 = 6;
/// The weight the dispatcher gives a manager whose node is Ready (or the
/// leader): swarmkit's default observation weight.
pub(crate) const WEIGHT_REACHABLE: i32 = 10;
/// The weight of a manager whose node is not Ready: still listed, tried last.
pub(crate) const WEIGHT_UNREACHABLE: i32 = 1;

#[derive(Clone)]
pub(crate) struct DispatcherService {
    store: Store,
    seen: Arc<Mutex<Seen>>,
    metrics: DispatcherMetrics,
}

/// What the failure detector remembers between passes.
#[derive(Default)]
struct Seen {
    /// When each node was last heard from during this leadership term.
    last: HashMap<String, Instant>,
    /// The Raft term this manager leads in, and when it noticed it leads.
    led: Option<(u64, Instant)>,
    /// When the last check ran.
    last_check: Option<Instant>,
}

/// How often the manager runs [`DispatcherService::check_heartbeats`].
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(500);

impl Seen {
    /// Credits every node (and the election) with a stall of the checker
    /// beyond its usual interval (see the module docs).
    fn forgive_stall(&mut self, now: Instant) {
        if let Some(prev) = self.last_check {
            let stall = now
                .saturating_duration_since(prev)
                .saturating_sub(CHECK_EVERY);
            if !stall.is_zero() {
                for t in self.last.values_mut() {
                    *t = (*t + stall).min(now);
                }
                if let Some((_, elected)) = self.led.as_mut() {
                    *elected = (*elected + stall).min(now);
                }
            }
        }
        self.last_check = Some(now);
    }

    /// Leadership is gone: the next term starts afresh.
    fn forget_term(&mut self) {
        self.led = None;
        self.last_check = None;
    }

    /// Note this pass's leadership: a new term (or leadership regained)
    /// starts afresh, forgetting what an earlier term heard.
    fn lead(&mut self, term: u64, now: Instant) {
        if self.led.map(|(t, _)| t) != Some(term) {
            self.led = Some((term, now));
            self.last.clear();
        }
    }

    /// The Ready nodes (ID) that are overdue at `now`: not heard from for
    /// `period × GRACE`, counting from the election for nodes not heard from
    /// since, and never before `period × ELECTION_GRACE` after it.
    fn overdue<'a>(
        &self,
        ready: impl IntoIterator<Item = &'a str>,
        period: Duration,
        now: Instant,
    ) -> Vec<String> {
        let Some((_, elected)) = self.led else {
            return vec![];
        };
        if now.saturating_duration_since(elected) < period * ELECTION_GRACE {
            return vec![];
        }
        ready
            .into_iter()
            .filter(|id| {
                let last = self.last.get(*id).copied().unwrap_or(elected);
                now.saturating_duration_since(last) > period * GRACE
            })
            .map(str::to_string)
            .collect()
    }
}

/// The cluster's heartbeat period.
pub(crate) fn heartbeat_period(store: &Store) -> Duration {
    objects::cluster(store)
        .ok()
        .and_then(|c| c.spec)
        .map(|s| s.heartbeat_period_ns)
        .filter(|ns| *ns > 0)
        .map(|ns| Duration::from_nanos(ns as u64))
        .unwrap_or(DEFAULT_HEARTBEAT)
}

/// The managers for agents to fail over between, weighted: a manager whose
/// node is Ready, or the leader, above one that is not.
pub(crate) fn weighted_managers(store: &Store) -> Vec<Manager> {
    let leader = store.leader().map(|(_, a)| a);
    let nodes = objects::list::<Node>(store).unwrap_or_default();
    manager_addrs(store)
        .unwrap_or_default()
        .into_iter()
        .map(|(node_id, addr)| {
            let ready = nodes
                .iter()
                .find(|n| n.id == node_id)
                .is_some_and(objects::is_ready);
            let weight = if ready || leader.as_deref() == Some(addr.as_str()) {
                WEIGHT_REACHABLE
            } else {
                WEIGHT_UNREACHABLE
            };
            Manager {
                node_id,
                addr,
                weight,
            }
        })
        .collect()
}

impl DispatcherService {
    pub(crate) fn new(store: Store) -> Self {
        Self {
            store,
            seen: Arc::new(Mutex::new(Seen::default())),
            metrics: DispatcherMetrics::default(),
        }
    }

    /// This dispatcher counting missed heartbeats into `metrics`.
    pub(crate) fn measured(mut self, metrics: DispatcherMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn managers(&self) -> Vec<Manager> {
        weighted_managers(&self.store)
    }

    /// One pass of failure detection; called periodically by the manager.
    pub(crate) async fn check_heartbeats(&self) -> Result<(), ManagerError> {
        let period = heartbeat_period(&self.store);
        let now = Instant::now();
        let expired: Vec<String> = {
            let mut seen = self
                .seen
                .lock()
                .map_err(|_| ManagerError::Internal("dispatcher lock poisoned".into()))?;
            if !self.store.is_leader() {
                seen.forget_term();
                return Ok(());
            }
            seen.forgive_stall(now);
            seen.lead(self.store.status().term, now);
            let nodes = objects::list::<Node>(&self.store)?;
            seen.overdue(
                nodes
                    .iter()
                    .filter(|n| objects::is_ready(n))
                    .map(|n| n.id.as_str()),
                period,
                now,
            )
        };
        for id in expired {
            let Some(mut node) = objects::get::<Node>(&self.store, &id)? else {
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
            match self.store.write(vec![objects::put(&node)]).await {
                Ok(_) => {
                    self.metrics.heartbeats_missed.inc();
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// This manager stopped leading (the leader supervisor stopped the
    /// check): forget the term, so a later one starts afresh.
    pub(crate) fn forget_term(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.forget_term();
        }
    }

    /// A heartbeat from `node_id` reached this manager while it leads.
    fn heard(&self, node_id: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            let now = Instant::now();
            if self.store.is_leader() {
                seen.lead(self.store.status().term, now);
            }
            seen.last.insert(node_id.to_string(), now);
        }
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
        let node = objects::get::<Node>(&self.store, &caller.node_id)?;
        let Some(mut node) = node else {
            if !self.store.is_leader() {
                // A follower's copy of the store may lag (the node joined a
                // moment ago): only the leader may say a node is gone. Send
                // the agent there, asking no change of role of it.
                return Ok(Response::new(HeartbeatResponse {
                    period_ns: period.as_nanos() as i64,
                    managers: self.managers(),
                    desired_role: caller.role as i32,
                    leader_addr,
                    removed: false,
                    renew_certificate: false,
                    trust_root_hash: String::new(),
                }));
            }
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
            self.heard(&caller.node_id);
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
                match self.store.write(vec![objects::put(&node)]).await {
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
        // Ten seconds after the last check instead of CHECK_EVERY: the node is
        // credited with the stall (the time beyond the usual interval).
        let late = t0 + CHECK_EVERY + Duration::from_secs(10);
        seen.forgive_stall(late);
        assert_eq!(seen.last["n1"], t0 + Duration::from_secs(10) - CHECK_EVERY);
        assert!(late.duration_since(seen.last["n1"]) < GRACE * Duration::from_secs(1));
    }

    const PERIOD: Duration = Duration::from_secs(1);

    fn at(t0: Instant, secs: f64) -> Instant {
        t0 + Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_new_leader_marks_nobody_down_within_the_election_grace() {
        let t0 = Instant::now();
        let mut seen = Seen::default();
        seen.lead(2, t0);
        let nodes = ["leader", "worker", "dead"];
        // Past the normal grace (3 periods) but within the election grace:
        // agents are still finding the new leader.
        assert!(seen.overdue(nodes, PERIOD, at(t0, 5.9)).is_empty());
        // Two agents found it; the third node never comes.
        seen.last.insert("leader".into(), at(t0, 4.0));
        seen.last.insert("worker".into(), at(t0, 5.0));
        assert_eq!(seen.overdue(nodes, PERIOD, at(t0, 6.0)), ["dead"]);
        // Later, the ones heard from go Down only after their own grace.
        assert_eq!(seen.overdue(nodes, PERIOD, at(t0, 7.5)), ["leader", "dead"]);
    }

    #[test]
    fn heartbeats_heard_in_an_earlier_term_do_not_count() {
        let t0 = Instant::now();
        let mut seen = Seen::default();
        seen.lead(2, t0);
        seen.last.insert("worker".into(), t0);
        // Leadership lost and won again (term 4) long after: the worker's
        // old heartbeat must not make it overdue at once.
        let t1 = at(t0, 100.0);
        seen.lead(4, t1);
        assert!(seen.overdue(["worker"], PERIOD, at(t1, 5.0)).is_empty());
        assert_eq!(seen.overdue(["worker"], PERIOD, at(t1, 6.5)), ["worker"]);
        // The same term again keeps what it heard.
        seen.last.insert("worker".into(), at(t1, 6.6));
        seen.lead(4, at(t1, 6.7));
        assert!(seen.overdue(["worker"], PERIOD, at(t1, 7.0)).is_empty());
    }

    #[test]
    fn a_follower_marks_nobody_down() {
        let seen = Seen::default();
        assert!(seen
            .overdue(
                ["a", "b"],
                PERIOD,
                Instant::now() + Duration::from_secs(3600)
            )
            .is_empty());
    }

    #[test]
    fn the_grace_scales_with_the_heartbeat_period() {
        let t0 = Instant::now();
        let mut seen = Seen::default();
        seen.lead(7, t0);
        let five = Duration::from_secs(5);
        assert!(seen.overdue(["w"], five, at(t0, 29.0)).is_empty());
        assert_eq!(seen.overdue(["w"], five, at(t0, 30.0)), ["w"]);
    }
}
