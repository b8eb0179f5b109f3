//! `swarm join`: admitted by a manager with a join token (the CA pinned by
//! the token's digest), this node gets its certificate and starts its agent,
//! and its manager too when the token was a manager's.

use rswarm_manager::Start;
use rswarm_proto::ca::ca_client::CaClient;
use rswarm_proto::ca::IssueNodeCertificateRequest;
use rswarm_proto::daemon::{JoinRequest, JoinResponse};
use rswarm_proto::identity::{keys, tls, token};
use rswarm_proto::types::{NodeAvailability, NodeRole};
use tonic::Status;

use super::super::netaddr;
use super::super::state::{NodeState, PeerAddr, Role};
use super::{addresses, NodeRuntime, ALREADY_IN_SWARM};

impl NodeRuntime {
    pub(crate) async fn join(&self, req: JoinRequest) -> Result<JoinResponse, Status> {
        self.dek()?;
        let mut inner = self.inner.lock().await;
        if inner.state.is_some() {
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        let parsed =
            token::parse(&req.token).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let remote = netaddr::with_port(&req.remote_addr, netaddr::DEFAULT_PORT)
            .map_err(|e| Status::invalid_argument(format!("manager address: {e}")))?;
        let (listen, advertise) = addresses(&req.listen_addr, &req.advertise_addr, || {
            netaddr::local_ip_towards(&remote)
        })?;
        let ca_pem = tls::fetch_root_ca(&remote).await.map_err(|e| {
            Status::unavailable(format!("could not reach a manager at {remote}: {e}"))
        })?;
        if !parsed.matches_ca(&ca_pem) {
            return Err(Status::invalid_argument(format!(
                "remote CA does not match fingerprint in the join token: the manager at {remote} presents a CA whose digest is {}, the token expects {}",
                token::ca_digest(&ca_pem),
                parsed.ca_digest
            )));
        }
        let (key_pem, csr_pem) =
            keys::new_key_and_csr().map_err(|e| Status::internal(e.to_string()))?;
        let channel = tls::connect(&remote, &ca_pem, None).await.map_err(|e| {
            Status::unavailable(format!("could not reach a manager at {remote}: {e}"))
        })?;
        let availability =
            NodeAvailability::try_from(req.availability).unwrap_or(NodeAvailability::Active);
        let resp = CaClient::new(channel)
            .issue_node_certificate(IssueNodeCertificateRequest {
                csr_pem,
                token: req.token.clone(),
                description: Some(self.describe()),
                advertise_addr: advertise.clone(),
                availability: availability as i32,
            })
            .await
            .map_err(|s| Status::new(s.code(), s.message().to_string()))?
            .into_inner();
        let role = NodeRole::try_from(resp.role).unwrap_or(NodeRole::Worker);
        let node_tls = tls::NodeTls {
            ca_pem: resp.ca_certificate_pem.clone(),
            cert_pem: resp.certificate_pem.clone(),
            key_pem,
        };
        let mut managers: Vec<PeerAddr> = resp
            .managers
            .iter()
            .map(|m| PeerAddr {
                node_id: m.node_id.clone(),
                addr: m.addr.clone(),
            })
            .collect();
        if !managers.iter().any(|m| m.addr == remote) {
            managers.insert(
                0,
                PeerAddr {
                    node_id: String::new(),
                    addr: remote.clone(),
                },
            );
        }
        let state = NodeState {
            node_id: resp.node_id.clone(),
            cluster_id: resp.cluster_id.clone(),
            role: if role == NodeRole::Manager {
                Role::Manager
            } else {
                Role::Worker
            },
            advertise_addr: advertise,
            listen_addr: listen,
            managers,
        };
        let result: anyhow::Result<()> = async {
            super::super::keys::save_tls(&self.settings.data.certs(), &self.dek()?, &node_tls)?;
            inner.state = Some(state.clone());
            inner.tls = Some(node_tls);
            if role == NodeRole::Manager {
                let peers = state.managers.iter().map(|m| m.addr.clone()).collect();
                self.start_manager(&mut inner, Start::Join(peers)).await?;
            }
            self.settings.data.save(&state)?;
            self.start_agent(&mut inner).await;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.teardown(&mut inner).await;
            let _ = self.settings.data.wipe();
            return Err(Status::internal(format!("join failed: {e:#}")));
        }
        tracing::info!(node = %resp.node_id, role = ?role, "joined the swarm");
        Ok(JoinResponse {
            node_id: resp.node_id,
            role: role as i32,
        })
    }
}
