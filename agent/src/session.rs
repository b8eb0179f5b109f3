//! The agent's session with the managers. It heartbeats the leader every
//! period the dispatcher asks for, goes to the leader at once when a
//! follower names it, and fails over to the next manager of its list
//! (`managers.rs`: every manager it was ever told of, its own first when the
//! node is a manager) when one stops answering or cannot name a live leader.
//! When the cluster wants this node in another role, or its certificate nears
//! expiry (`renewal.rs` says when), or the cluster's root CA changed (rotation: the certificate is not
//! from the signing CA, or the trust root is not the one the cluster wants),
//! it asks a manager to renew the certificate and hands the new one to the
//! daemon (`AgentEvent::Renewed`).

use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::ca::ca_client::CaClient;
use rswarm_proto::ca::RenewNodeCertificateRequest;
use rswarm_proto::dispatcher::dispatcher_client::DispatcherClient;
use rswarm_proto::dispatcher::HeartbeatRequest;
use rswarm_proto::identity::{keys, tls};
use rswarm_proto::types::{NodeDescription, NodeRole};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::managers::Managers;
use crate::renewal::RenewalClock;

/// What the agent needs to know to reach the cluster.
#[derive(Clone)]
pub struct AgentConfig {
    pub node_id: String,
    /// This node's address as others reach it (host or host:port).
    pub advertise_addr: String,
    pub description: NodeDescription,
    /// Managers known at start (node ID, may be empty; address host:port):
    /// the persisted list. The session adds every one it is told of.
    pub managers: Vec<(String, String)>,
    pub tls: tls::NodeTls,
    /// The role the current certificate carries.
    pub role: NodeRole,
}

/// What the agent tells the daemon.
#[derive(Debug)]
pub enum AgentEvent {
    /// The managers the agent knows of changed: every one it was ever told
    /// of (node ID, address), in failover order, for the daemon to persist.
    Managers(Vec<(String, String)>),
    /// A renewed certificate; `role` is the role it carries.
    Renewed { tls: tls::NodeTls, role: NodeRole },
    /// The cluster no longer knows this node.
    Removed,
}

/// The channel to the leader manager (address, channel), when the session
/// is talking to it; the worker's streams and reports use it.
pub type LeaderChannel = Option<(String, tonic::transport::Channel)>;

/// A running agent; dropping the handle does not stop it, `stop` does.
pub struct AgentHandle {
    task: JoinHandle<()>,
    worker: Option<JoinHandle<()>>,
    tls_tx: watch::Sender<(tls::NodeTls, NodeRole)>,
}

impl AgentHandle {
    pub fn stop(&self) {
        self.task.abort();
        if let Some(w) = &self.worker {
            w.abort();
        }
    }

    /// Use a new certificate from now on (after the daemon saved it).
    pub fn set_identity(&self, tls: tls::NodeTls, role: NodeRole) {
        let _ = self.tls_tx.send((tls, role));
    }
}

/// Start the session loop, and the worker when an executor is given.
pub(crate) fn start(
    cfg: AgentConfig,
    events: mpsc::Sender<AgentEvent>,
    worker: Option<crate::worker::WorkerDeps>,
) -> AgentHandle {
    let (tls_tx, tls_rx) = watch::channel((cfg.tls.clone(), cfg.role));
    let (leader_tx, leader_rx) = watch::channel::<LeaderChannel>(None);
    let task = tokio::spawn(run(cfg, events, tls_rx, leader_tx));
    let worker = worker.map(|deps| crate::worker::spawn(deps, leader_rx));
    AgentHandle {
        task,
        worker,
        tls_tx,
    }
}

const MIN_PERIOD: Duration = Duration::from_millis(100);
/// The pause after a manager failed to answer before the next one is tried.
const RETRY: Duration = Duration::from_millis(300);
/// The longest pause once every known manager failed in a row.
const MAX_ROUND_PAUSE: Duration = Duration::from_secs(2);

/// What one heartbeat answer tells the session to do next.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// This manager is the leader: heartbeat it again after the period.
    StayWithLeader,
    /// A follower named a leader worth going to: go there now.
    GoToLeader(String),
    /// A manager that cannot lead us to a live leader (it knows none, or
    /// names one that just failed): count it as failed and try the next.
    TryAnother,
}

/// Decide where to go after `addr` answered and named `leader_addr`.
fn after_answer(
    managers: &Managers,
    addr: &str,
    leader_addr: &str,
    now: tokio::time::Instant,
    window: Duration,
) -> Next {
    if leader_addr == addr {
        Next::StayWithLeader
    } else if leader_addr.is_empty()
        || !managers.worth_following(leader_addr, now.into_std(), window)
    {
        Next::TryAnother
    } else {
        Next::GoToLeader(leader_addr.to_string())
    }
}

async fn run(
    cfg: AgentConfig,
    events: mpsc::Sender<AgentEvent>,
    mut identity: watch::Receiver<(tls::NodeTls, NodeRole)>,
    leader_tx: watch::Sender<LeaderChannel>,
) {
    let cfg = Arc::new(cfg);
    let mut managers = Managers::new(&cfg.managers);
    let mut target: Option<String> = None;
    // Whether the manager being called was reached by a follower's redirect.
    let mut redirected = false;
    let mut period = Duration::from_secs(1);
    let mut channel: Option<(String, tonic::transport::Channel)> = None;
    let mut renew_failures = 0u32;
    let mut renewal = RenewalClock::default();
    loop {
        let (node_tls, role) = identity.borrow_and_update().clone();
        managers.set_local((role == NodeRole::Manager).then(|| cfg.advertise_addr.clone()));
        let Some(addr) = target.take().or_else(|| managers.next()) else {
            tracing::warn!("agent knows no manager to talk to");
            tokio::time::sleep(period).await;
            continue;
        };
        let ch = match &channel {
            Some((a, ch)) if *a == addr => ch.clone(),
            _ => match tls::connect(
                &addr,
                &node_tls.ca_pem,
                Some((&node_tls.cert_pem, &node_tls.key_pem)),
            )
            .await
            {
                Ok(ch) => {
                    channel = Some((addr.clone(), ch.clone()));
                    ch
                }
                Err(e) => {
                    redirected = false;
                    managers.failed(&addr, std::time::Instant::now());
                    tracing::warn!(manager = %addr, next = %managers.next().unwrap_or_default(), error = %e, "cannot reach manager; trying the next one");
                    channel = None;
                    leader_tx.send_if_modified(|cur| cur.take().is_some());
                    tokio::time::sleep(pause(&managers, period)).await;
                    continue;
                }
            },
        };
        let req = HeartbeatRequest {
            description: Some(cfg.description.clone()),
            addr: cfg.advertise_addr.clone(),
        };
        let started = tokio::time::Instant::now();
        let mut wait = period;
        match DispatcherClient::new(ch.clone()).heartbeat(req).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                if resp.removed {
                    let _ = events.send(AgentEvent::Removed).await;
                    return;
                }
                period = Duration::from_nanos(resp.period_ns.max(0) as u64).max(MIN_PERIOD);
                let list: Vec<(String, String, i32)> = resp
                    .managers
                    .iter()
                    .map(|m| (m.node_id.clone(), m.addr.clone(), m.weight))
                    .collect();
                if managers.observe(&list) {
                    let _ = events.send(AgentEvent::Managers(managers.all())).await;
                }
                match after_answer(&managers, &addr, &resp.leader_addr, started, period) {
                    Next::StayWithLeader => {
                        redirected = false;
                        managers.succeeded(&addr);
                        // Stay with the leader while it answers.
                        target = Some(addr.clone());
                        leader_tx.send_if_modified(|cur| {
                            if cur.as_ref().map(|(a, _)| a.as_str()) == Some(addr.as_str()) {
                                false
                            } else {
                                *cur = Some((addr.clone(), ch.clone()));
                                true
                            }
                        });
                    }
                    Next::GoToLeader(leader) => {
                        tracing::debug!(%leader, via = %addr, "following the leader");
                        leader_tx.send_if_modified(|cur| cur.take().is_some());
                        target = Some(leader);
                        // At once, unless this answer was itself reached by
                        // a redirect: managers passing the agent back and
                        // forth mid-election must not make it spin.
                        wait = if redirected { RETRY } else { Duration::ZERO };
                        redirected = true;
                    }
                    Next::TryAnother => {
                        redirected = false;
                        managers.failed(&addr, std::time::Instant::now());
                        tracing::info!(manager = %addr, leader = %resp.leader_addr, next = %managers.next().unwrap_or_default(), "this manager cannot lead to a live leader; trying the next one");
                        leader_tx.send_if_modified(|cur| cur.take().is_some());
                        wait = pause(&managers, period);
                    }
                }
                let desired = NodeRole::try_from(resp.desired_role).unwrap_or(NodeRole::Worker);
                let ca_changed = ca_changed(
                    &node_tls.ca_pem,
                    resp.renew_certificate,
                    &resp.trust_root_hash,
                );
                if desired != role || ca_changed || renewal.due(&node_tls.cert_pem) {
                    match renew(ch.clone()).await {
                        Ok((tls, role)) => {
                            renew_failures = 0;
                            let _ = events.send(AgentEvent::Renewed { tls, role }).await;
                            // Wait for the daemon to install the new identity.
                            let _ =
                                tokio::time::timeout(Duration::from_secs(10), identity.changed())
                                    .await;
                            channel = None;
                            // The worker's streams used the old certificate: hand it
                            // a channel with the new one on the next heartbeat.
                            leader_tx.send_if_modified(|cur| cur.take().is_some());
                            continue;
                        }
                        Err(e) => {
                            renew_failures += 1;
                            tracing::warn!(error = %e, attempt = renew_failures, "certificate renewal failed");
                        }
                    }
                }
            }
            Err(status) => {
                if status.code() == tonic::Code::PermissionDenied
                    && status.message().contains("removed")
                {
                    tracing::error!(error = %status.message(), "this node was removed from the swarm");
                    let _ = events.send(AgentEvent::Removed).await;
                    return;
                }
                redirected = false;
                managers.failed(&addr, std::time::Instant::now());
                tracing::warn!(manager = %addr, next = %managers.next().unwrap_or_default(), error = %status.message(), "heartbeat failed; trying the next manager");
                leader_tx.send_if_modified(|cur| cur.take().is_some());
                channel = None;
                tokio::time::sleep(pause(&managers, period)).await;
                continue;
            }
        }
        let elapsed = started.elapsed();
        tokio::select! {
            _ = tokio::time::sleep(wait.saturating_sub(elapsed)) => {}
            _ = identity.changed() => { channel = None; }
        }
    }
}

/// Whether the cluster's CA moved on from this node's certificate or trust
/// root (a root CA rotation): the manager says the certificate is not from the
/// CA that signs now, or the trust root it wants is not the one held.
fn ca_changed(ca_pem: &str, renew_certificate: bool, trust_root_hash: &str) -> bool {
    renew_certificate
        || (!trust_root_hash.is_empty()
            && rswarm_proto::identity::token::ca_digest(ca_pem.trim()) != trust_root_hash)
}

/// The pause before the next manager is tried: short, unless every known
/// manager failed since its last answer (then up to a period, at most
/// [`MAX_ROUND_PAUSE`], so a cluster-wide outage is not hammered).
fn pause(managers: &Managers, period: Duration) -> Duration {
    if managers.all_failing() {
        period.clamp(RETRY, MAX_ROUND_PAUSE)
    } else {
        RETRY
    }
}

async fn renew(ch: tonic::transport::Channel) -> Result<(tls::NodeTls, NodeRole), String> {
    let (key_pem, csr_pem) = keys::new_key_and_csr().map_err(|e| e.to_string())?;
    let resp = CaClient::new(ch)
        .renew_node_certificate(RenewNodeCertificateRequest { csr_pem })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let role = NodeRole::try_from(resp.role).unwrap_or(NodeRole::Worker);
    Ok((
        tls::NodeTls {
            ca_pem: resp.ca_certificate_pem,
            cert_pem: resp.certificate_pem,
            key_pem,
        },
        role,
    ))
}

#[cfg(test)]
mod loopback_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_changed_root_ca_asks_for_renewal() {
        let held = rswarm_proto::identity::token::ca_digest(PEM.trim());
        // Nothing changed (an old manager sends no digest either).
        assert!(!ca_changed(PEM, false, &held));
        assert!(!ca_changed(PEM, false, ""));
        // The certificate is not from the signing CA.
        assert!(ca_changed(PEM, true, &held));
        // The trust root the cluster wants is another one.
        let other = rswarm_proto::identity::token::ca_digest("other");
        assert!(ca_changed(PEM, false, &other));
        // Trailing whitespace in the file does not count as a change.
        assert!(!ca_changed(&format!("{PEM}\n\n"), false, &held));
    }

    fn managers() -> Managers {
        Managers::new(&[
            ("n1".into(), "10.0.0.1:2377".into()),
            ("n2".into(), "10.0.0.2:2377".into()),
            ("n3".into(), "10.0.0.3:2377".into()),
        ])
    }

    #[test]
    fn the_leader_keeps_the_agent() {
        let now = tokio::time::Instant::now();
        let m = managers();
        let w = Duration::from_secs(1);
        assert_eq!(
            after_answer(&m, "10.0.0.2:2377", "10.0.0.2:2377", now, w),
            Next::StayWithLeader
        );
    }

    #[test]
    fn a_follower_sends_the_agent_to_a_live_leader_at_once() {
        let now = tokio::time::Instant::now();
        let m = managers();
        let w = Duration::from_secs(1);
        assert_eq!(
            after_answer(&m, "10.0.0.2:2377", "10.0.0.3:2377", now, w),
            Next::GoToLeader("10.0.0.3:2377".into())
        );
    }

    #[test]
    fn a_follower_naming_the_dead_leader_or_none_is_passed_over() {
        let now = tokio::time::Instant::now();
        let mut m = managers();
        let w = Duration::from_secs(1);
        m.failed("10.0.0.1:2377", now.into_std());
        assert_eq!(
            after_answer(&m, "10.0.0.2:2377", "10.0.0.1:2377", now, w),
            Next::TryAnother
        );
        assert_eq!(
            after_answer(&m, "10.0.0.2:2377", "", now, w),
            Next::TryAnother
        );
    }

    #[test]
    fn after_the_leader_dies_the_agent_reaches_the_new_one() {
        // host1 (the leader) is dead; host2 has not seen the election yet and
        // names host1; host3 won it. Drive the session's choices by hand.
        let now = tokio::time::Instant::now();
        let w = Duration::from_secs(1);
        let mut m = managers();
        let leader_now = |addr: &str| match addr {
            "10.0.0.2:2377" => Some("10.0.0.1:2377"),
            "10.0.0.3:2377" => Some("10.0.0.3:2377"),
            _ => None, // host1 does not answer
        };
        let mut target: Option<String> = Some("10.0.0.1:2377".into());
        for _ in 0..6 {
            let addr = target.take().or_else(|| m.next()).unwrap();
            let Some(leader) = leader_now(&addr) else {
                m.failed(&addr, now.into_std());
                continue;
            };
            match after_answer(&m, &addr, leader, now, w) {
                Next::StayWithLeader => {
                    assert_eq!(addr, "10.0.0.3:2377");
                    return;
                }
                Next::GoToLeader(l) => target = Some(l),
                Next::TryAnother => m.failed(&addr, now.into_std()),
            }
        }
        panic!(
            "the agent never reached the new leader: {:?}",
            m.candidates()
        );
    }

    #[test]
    fn a_lone_failure_waits_briefly_and_a_whole_round_waits_longer() {
        let now = std::time::Instant::now();
        let mut m = managers();
        m.failed("10.0.0.1:2377", now);
        assert_eq!(pause(&m, Duration::from_secs(5)), RETRY);
        m.failed("10.0.0.2:2377", now);
        m.failed("10.0.0.3:2377", now);
        assert_eq!(pause(&m, Duration::from_secs(5)), MAX_ROUND_PAUSE);
        assert_eq!(pause(&m, Duration::from_secs(1)), Duration::from_secs(1));
    }
}
