//! The Ca gRPC service: hands out the root CA certificate, signs the CSR of
//! a joining node that shows a valid join token (creating its Node object),
//! and renews the certificate of a member node with the role the cluster
//! wants it to have (how promotion and demotion reach a node).

use std::time::Duration;

use rswarm_proto::ca::ca_server::Ca;
use rswarm_proto::ca::*;
use rswarm_proto::identity::token;
use rswarm_proto::types::{
    Node, NodeAvailability, NodeRole, NodeSpec, NodeState, NodeStatus, TlsInfo,
};
use rswarm_raft::{Op, Store};
use tonic::{Request, Response, Status};

use crate::ca::rotation::{self, Signer};
use crate::error::ManagerError;
use crate::objects::new_id;
use crate::{auth, objects};

/// Default validity of node certificates (Swarm's: 90 days).
pub const DEFAULT_CERT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Shortest validity of node certificates (`--cert-expiry`): a node renews
/// between half and four fifths of the way, so a minute leaves it 12 s or
/// more (a few heartbeats) to do so before the certificate expires.
pub const MIN_CERT_EXPIRY: Duration = Duration::from_secs(60);

/// Checks a `--cert-expiry` (at `init` or `swarm update`): at least
/// [`MIN_CERT_EXPIRY`], and short enough to store in nanoseconds. Returns it
/// in nanoseconds, as the cluster spec keeps it.
pub fn check_cert_expiry(expiry: Duration) -> Result<i64, ManagerError> {
    if expiry < MIN_CERT_EXPIRY {
        return Err(ManagerError::InvalidArgument(format!(
            "certificate expiry {} is too short: it must be at least {}s",
            seconds(expiry),
            MIN_CERT_EXPIRY.as_secs()
        )));
    }
    i64::try_from(expiry.as_nanos()).map_err(|_| {
        ManagerError::InvalidArgument(format!(
            "certificate expiry {} is too long",
            seconds(expiry)
        ))
    })
}

/// A duration in seconds as a user wrote it ("30s", "0.5s").
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        let s = format!("{:.9}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[derive(Clone)]
pub struct CaService {
    store: Store,
}

impl CaService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Who signs now (the new root during a CA rotation) and the cluster.
    fn root_ca(&self) -> Result<(Signer, rswarm_proto::types::Cluster), ManagerError> {
        let cluster = objects::cluster(&self.store)?;
        Ok((rotation::signer(&cluster)?, cluster))
    }

    fn managers(&self) -> Result<Vec<ManagerAddr>, ManagerError> {
        Ok(manager_addrs(&self.store)?
            .into_iter()
            .map(|(node_id, addr)| ManagerAddr { node_id, addr })
            .collect())
    }
}

/// Node IDs and addresses of the managers, for agents to fail over between.
/// Taken from the Raft membership, which names a manager the moment it is
/// added (a node's `manager_status` is only filled in by the next role
/// reconciliation pass, so an agent joining right after a manager would not
/// hear of it); node objects' manager status fills in members whose node
/// this store cannot name.
pub fn manager_addrs(store: &Store) -> Result<Vec<(String, String)>, ManagerError> {
    let nodes = objects::list::<Node>(store)?;
    let members = store.status().members;
    let mut out: Vec<(String, String)> = Vec::new();
    for (raft_id, addr) in &members {
        if addr.is_empty() {
            continue;
        }
        let by_raft_id = nodes
            .iter()
            .find(|n| objects::raft_id_for(&n.id) == *raft_id);
        if let Some(node) = by_raft_id {
            out.push((node.id.clone(), addr.clone()));
        }
    }
    for n in nodes {
        if let Some(m) = n.manager_status {
            if !m.addr.is_empty() && !out.iter().any(|(id, _)| *id == n.id) {
                let still_member =
                    members.is_empty() || members.iter().any(|(id, _)| *id == m.raft_id);
                if still_member {
                    out.push((n.id, m.addr));
                }
            }
        }
    }
    Ok(out)
}

fn cert_validity(cluster: &rswarm_proto::types::Cluster) -> Duration {
    let ns = cluster
        .spec
        .as_ref()
        .map(|s| s.node_cert_expiry_ns)
        .unwrap_or(0);
    rswarm_proto::spec::units::nanos_or(ns, DEFAULT_CERT_EXPIRY)
}

fn expiry_of(cert_pem: &str) -> i64 {
    rswarm_proto::identity::cert::parse_cert_pem(cert_pem)
        .map(|id| id.not_after)
        .unwrap_or(0)
}

#[tonic::async_trait]
impl Ca for CaService {
    async fn get_root_ca_certificate(
        &self,
        _req: Request<GetRootCaCertificateRequest>,
    ) -> Result<Response<GetRootCaCertificateResponse>, Status> {
        let (signer, _) = self.root_ca()?;
        Ok(Response::new(GetRootCaCertificateResponse {
            certificate_pem: signer.trust_root,
        }))
    }

    async fn issue_node_certificate(
        &self,
        req: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        let req = req.into_inner();
        let (signer, cluster) = self.root_ca()?;
        let parsed =
            token::parse(&req.token).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !parsed.matches_ca(&signer.trust_root) {
            return Err(Status::invalid_argument(
                "the join token's CA digest does not match this swarm's root CA",
            ));
        }
        let tokens = cluster
            .root_ca
            .as_ref()
            .and_then(|c| c.join_tokens.clone())
            .unwrap_or_default();
        let role = if tokens_equal(&req.token, &tokens.manager) {
            NodeRole::Manager
        } else if tokens_equal(&req.token, &tokens.worker) {
            NodeRole::Worker
        } else {
            return Err(Status::invalid_argument(
                "A valid join token is necessary to join this cluster (the token may have been rotated)",
            ));
        };
        let node_id = new_id();
        let cert_pem = signer
            .ca
            .sign_node_csr(
                &req.csr_pem,
                &node_id,
                role,
                &cluster.id,
                cert_validity(&cluster),
            )
            .map_err(|e| ManagerError::Ca(e.to_string()))?;
        let cert_pem = signer.with_chain(cert_pem);
        let availability =
            NodeAvailability::try_from(req.availability).unwrap_or(NodeAvailability::Active);
        let mut description = req.description.unwrap_or_default();
        description.tls_info = Some(TlsInfo {
            trust_root: signer.trust_root.clone(),
            ..Default::default()
        });
        let node = Node {
            id: node_id.clone(),
            meta: None,
            spec: Some(NodeSpec {
                annotations: None,
                desired_role: role as i32,
                availability: availability as i32,
            }),
            description: Some(description),
            status: Some(NodeStatus {
                state: NodeState::Unknown as i32,
                message: "joined; waiting for the first heartbeat".into(),
                addr: host_of(&req.advertise_addr),
            }),
            manager_status: None,
            role: role as i32,
            cert_expires_at: expiry_of(&cert_pem),
            attachments: vec![],
        };
        let mut op = objects::put(&node);
        if let Op::Put { expect_version, .. } = &mut op {
            *expect_version = Some(0);
        }
        self.store
            .write(vec![op])
            .await
            .map_err(ManagerError::from)?;
        tracing::info!(node = %node_id, role = ?role, addr = %req.advertise_addr, "issued certificate to a joining node");
        Ok(Response::new(IssueNodeCertificateResponse {
            node_id,
            certificate_pem: cert_pem,
            role: role as i32,
            cluster_id: cluster.id.clone(),
            managers: self.managers()?,
            ca_certificate_pem: signer.trust_root,
        }))
    }

    async fn renew_node_certificate(
        &self,
        req: Request<RenewNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        let Some(caller) = auth::caller(&req) else {
            return Err(Status::unauthenticated(
                "renewal needs the node's current certificate",
            ));
        };
        let req = req.into_inner();
        let (signer, cluster) = self.root_ca()?;
        loop {
            let Some(mut node) = objects::get::<Node>(&self.store, &caller.node_id)? else {
                return Err(Status::not_found(format!(
                    "node {} not found",
                    caller.node_id
                )));
            };
            let role = node
                .spec
                .as_ref()
                .and_then(|s| NodeRole::try_from(s.desired_role).ok())
                .unwrap_or(NodeRole::Worker);
            let cert_pem = signer
                .ca
                .sign_node_csr(
                    &req.csr_pem,
                    &node.id,
                    role,
                    &cluster.id,
                    cert_validity(&cluster),
                )
                .map_err(|e| ManagerError::Ca(e.to_string()))?;
            let cert_pem = signer.with_chain(cert_pem);
            node.role = role as i32;
            node.cert_expires_at = expiry_of(&cert_pem);
            node.description
                .get_or_insert_with(Default::default)
                .tls_info
                .get_or_insert_with(Default::default)
                .trust_root = signer.trust_root.clone();
            match self.store.write(vec![objects::put(&node)]).await {
                Ok(_) => {}
                Err(rswarm_raft::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ManagerError::from(e).into()),
            }
            tracing::info!(node = %node.id, role = ?role, "renewed node certificate");
            return Ok(Response::new(IssueNodeCertificateResponse {
                node_id: node.id,
                certificate_pem: cert_pem,
                role: role as i32,
                cluster_id: cluster.id.clone(),
                managers: self.managers()?,
                ca_certificate_pem: signer.trust_root.clone(),
            }));
        }
    }
}

/// The host part of "host:port" (or the whole string when it has no port).
pub fn host_of(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .to_string(),
    }
}

/// Compare a presented token with a stored one in constant time.
fn tokens_equal(presented: &str, stored: &str) -> bool {
    !stored.is_empty() && token::constant_time_eq(presented.trim().as_bytes(), stored.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_expiry_under_a_minute_is_refused_in_one_line() {
        assert_eq!(
            check_cert_expiry(Duration::from_secs(60)).ok(),
            Some(60_000_000_000)
        );
        assert_eq!(
            check_cert_expiry(DEFAULT_CERT_EXPIRY).ok(),
            Some(DEFAULT_CERT_EXPIRY.as_nanos() as i64)
        );
        for (short, said) in [
            (Duration::from_secs(59), "59s"),
            (Duration::from_millis(500), "0.5s"),
            (Duration::ZERO, "0s"),
        ] {
            let err = check_cert_expiry(short).expect_err(said).to_string();
            assert_eq!(
                err,
                format!("certificate expiry {said} is too short: it must be at least 60s")
            );
        }
        let err = check_cert_expiry(Duration::MAX).expect_err("too long");
        assert!(err.to_string().contains("too long"), "{err}");
    }
}
