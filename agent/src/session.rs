//! The agent's session with the managers. It heartbeats the leader every
//! period the dispatcher asks for, follows the leader's address when a
//! follower names it, and moves down the list of managers when one stops
//! answering. When the cluster wants this node in another role, or its
//! certificate nears expiry, or the cluster's root CA changed (rotation: the
//! certificate is not from the signing CA, or the trust root is not the one
//! the cluster wants), it asks a manager to renew the certificate and hands
//! the new one to the daemon (`AgentEvent::Renewed`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rswarm_proto::ca::ca_client::CaClient;
use rswarm_proto::ca::RenewNodeCertificateRequest;
use rswarm_proto::dispatcher::dispatcher_client::DispatcherClient;
use rswarm_proto::dispatcher::HeartbeatRequest;
use rswarm_proto::identity::{cert, keys, tls};
use rswarm_proto::types::{NodeDescription, NodeRole};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What the agent needs to know to reach the cluster.
#[derive(Clone)]
pub struct AgentConfig {
    pub node_id: String,
    /// This node's address as others reach it (host or host:port).
    pub advertise_addr: String,
    pub description: NodeDescription,
    /// Manager addresses (host:port) to try, in order.
    pub managers: Vec<String>,
    pub tls: tls::NodeTls,
    /// The role the current certificate carries.
    pub role: NodeRole,
}

/// What the agent tells the daemon.
#[derive(Debug)]
pub enum AgentEvent {
    /// The managers' addresses changed (node ID, address).
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
pub fn start(
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

async fn run(
    cfg: AgentConfig,
    events: mpsc::Sender<AgentEvent>,
    mut identity: watch::Receiver<(tls::NodeTls, NodeRole)>,
    leader_tx: watch::Sender<LeaderChannel>,
) {
    let cfg = Arc::new(cfg);
    let mut managers: Vec<String> = cfg.managers.clone();
    let mut known: Vec<(String, String)> = vec![];
    let mut current = 0usize;
    let mut preferred: Option<String> = None;
    let mut period = Duration::from_secs(1);
    let mut channel: Option<(String, tonic::transport::Channel)> = None;
    let mut renew_failures = 0u32;
    loop {
        let (node_tls, role) = identity.borrow_and_update().clone();
        if managers.is_empty() {
            tracing::warn!("agent knows no manager to talk to");
            tokio::time::sleep(period).await;
            continue;
        }
        let addr = preferred
            .clone()
            .unwrap_or_else(|| managers[current % managers.len()].clone());
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
                    tracing::warn!(manager = %addr, error = %e, "cannot reach manager; trying the next one");
                    preferred = None;
                    current = current.wrapping_add(1);
                    channel = None;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
            },
        };
        let req = HeartbeatRequest {
            description: Some(cfg.description.clone()),
            addr: cfg.advertise_addr.clone(),
        };
        let started = tokio::time::Instant::now();
        match DispatcherClient::new(ch.clone()).heartbeat(req).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                if resp.removed {
                    let _ = events.send(AgentEvent::Removed).await;
                    return;
                }
                period = Duration::from_nanos(resp.period_ns.max(0) as u64).max(MIN_PERIOD);
                let list: Vec<(String, String)> = resp
                    .managers
                    .iter()
                    .map(|m| (m.node_id.clone(), m.addr.clone()))
                    .collect();
                if !list.is_empty() && list != known {
                    known = list.clone();
                    managers = list.iter().map(|(_, a)| a.clone()).collect();
                    let _ = events.send(AgentEvent::Managers(list)).await;
                }
                if resp.leader_addr == addr {
                    leader_tx.send_if_modified(|cur| {
                        if cur.as_ref().map(|(a, _)| a.as_str()) == Some(addr.as_str()) {
                            false
                        } else {
                            *cur = Some((addr.clone(), ch.clone()));
                            true
                        }
                    });
                } else {
                    leader_tx.send_if_modified(|cur| cur.take().is_some());
                }
                preferred = if !resp.leader_addr.is_empty() && resp.leader_addr != addr {
                    tracing::debug!(leader = %resp.leader_addr, "following the leader");
                    Some(resp.leader_addr.clone())
                } else if resp.leader_addr.is_empty() {
                    // A manager without a leader: keep moving until one has one.
                    current = current.wrapping_add(1);
                    None
                } else {
                    Some(addr.clone())
                };
                let desired = NodeRole::try_from(resp.desired_role).unwrap_or(NodeRole::Worker);
                let ca_changed = ca_changed(
                    &node_tls.ca_pem,
                    resp.renew_certificate,
                    &resp.trust_root_hash,
                );
                if desired != role || ca_changed || needs_renewal(&node_tls.cert_pem) {
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
                tracing::warn!(manager = %addr, error = %status.message(), "heartbeat failed; trying the next manager");
                leader_tx.send_if_modified(|cur| cur.take().is_some());
                preferred = None;
                current = current.wrapping_add(1);
                channel = None;
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        }
        let elapsed = started.elapsed();
        tokio::select! {
            _ = tokio::time::sleep(period.saturating_sub(elapsed)) => {}
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

/// Renew when less than a third of the certificate's validity is left.
fn needs_renewal(cert_pem: &str) -> bool {
    let Ok(id) = cert::parse_cert_pem(cert_pem) else {
        return false;
    };
    let Some(not_before) = not_before(cert_pem) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let validity = id.not_after - not_before;
    validity > 0 && id.not_after - now < validity / 3
}

fn not_before(cert_pem: &str) -> Option<i64> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.validity().not_before.timestamp())
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
}
