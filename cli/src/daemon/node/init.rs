//! `swarm init`: found a new swarm with this node as its first manager, or
//! (`--force-new-cluster`) rebuild a one-manager swarm out of this manager's
//! own Raft state.

use std::time::Duration;

use rswarm_manager::bootstrap::InitParams;
use rswarm_manager::Start;
use rswarm_proto::daemon::{InitRequest, InitResponse};
use rswarm_proto::types::NodeAvailability;
use tonic::Status;

use super::super::netaddr;
use super::super::state::{NodeState, PeerAddr, Role};
use super::{addresses, cert_expiry, internal, Inner, NodeRuntime, ALREADY_IN_SWARM, NOT_IN_SWARM};

impl NodeRuntime {
    pub(crate) async fn init(&self, req: InitRequest) -> Result<InitResponse, Status> {
        self.dek()?;
        // Refused before anything is made (0: the default).
        cert_expiry(req.node_cert_expiry_ns)
            .map_err(|e| Status::invalid_argument(format!("--cert-expiry: {e}")))?;
        let mut inner = self.inner.lock().await;
        if inner.state.is_some() {
            if req.force_new_cluster {
                return self.force_new_cluster(&mut inner).await;
            }
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        let (listen, advertise) = addresses(&req.listen_addr, &req.advertise_addr, || {
            netaddr::auto_advertise_ip()
        })?;
        let node_id = rswarm_manager::objects::new_id();
        let cluster_id = rswarm_manager::objects::new_id();
        let result = self
            .init_inner(
                &mut inner,
                &req,
                node_id.clone(),
                cluster_id,
                advertise.clone(),
                listen,
            )
            .await;
        let result = match result {
            Ok(token) if req.autolock => self.init_autolock(&inner).await.map(|key| (token, key)),
            Ok(token) => Ok((token, String::new())),
            Err(e) => Err(e),
        };
        match result {
            Ok((worker_token, unlock_key)) => Ok(InitResponse {
                node_id,
                worker_token,
                manager_addr: advertise,
                unlock_key,
            }),
            Err(e) => {
                self.teardown(&mut inner).await;
                if let Err(w) = self.settings.data.wipe() {
                    tracing::error!(error = %w, "cleaning up after a failed init");
                }
                Err(Status::internal(format!("init failed: {e:#}")))
            }
        }
    }

    async fn init_inner(
        &self,
        inner: &mut Inner,
        req: &InitRequest,
        node_id: String,
        cluster_id: String,
        advertise: String,
        listen: String,
    ) -> anyhow::Result<String> {
        let expiry = cert_expiry(req.node_cert_expiry_ns)?;
        let (root, node_tls) = rswarm_manager::found_identity(&cluster_id, &node_id, expiry)?;
        super::super::keys::save_tls(&self.settings.data.certs(), &self.dek()?, &node_tls)?;
        let state = NodeState {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            role: Role::Manager,
            advertise_addr: advertise.clone(),
            listen_addr: listen,
            managers: vec![PeerAddr {
                node_id: node_id.clone(),
                addr: advertise.clone(),
            }],
        };
        let availability =
            NodeAvailability::try_from(req.availability).unwrap_or(NodeAvailability::Active);
        let params = InitParams {
            cluster_id,
            node_id,
            advertise_addr: advertise,
            description: self.describe(),
            availability,
            heartbeat_period: (req.heartbeat_period_ns > 0)
                .then(|| Duration::from_nanos(req.heartbeat_period_ns as u64)),
            cert_expiry: expiry,
            snapshot_interval: req.snapshot_interval,
            node_cert_pem: node_tls.cert_pem.clone(),
            default_addr_pool: req.default_addr_pool.clone(),
            default_addr_pool_mask_length: req.default_addr_pool_mask_length,
            task_history_limit: req.task_history_limit_set.then_some(req.task_history_limit),
        };
        inner.state = Some(state.clone());
        inner.tls = Some(node_tls);
        self.start_manager(inner, Start::Found(Box::new((root, params))))
            .await?;
        let token = inner
            .manager
            .as_ref()
            .map(|m| m.worker_token())
            .unwrap_or_default();
        self.settings.data.save(&state)?;
        self.start_agent(inner).await;
        Ok(token)
    }

    async fn force_new_cluster(&self, inner: &mut Inner) -> Result<InitResponse, Status> {
        let state = inner
            .state
            .clone()
            .ok_or_else(|| Status::failed_precondition(NOT_IN_SWARM))?;
        if state.role != Role::Manager {
            return Err(Status::failed_precondition(
                "--force-new-cluster needs a manager: this node is a worker",
            ));
        }
        tracing::warn!("forcing a new cluster from this manager's state");
        self.teardown(inner).await;
        inner.state = Some(state.clone());
        inner.tls = Some(
            super::super::keys::load_tls(&self.settings.data.certs(), &self.dek()?)
                .map_err(|e| Status::internal(format!("loading certificates: {e}")))?,
        );
        self.start_manager(inner, Start::ForceNewCluster)
            .await
            .map_err(internal)?;
        let mut st = state.clone();
        st.managers = vec![PeerAddr {
            node_id: st.node_id.clone(),
            addr: st.advertise_addr.clone(),
        }];
        self.settings.data.save(&st).map_err(internal)?;
        inner.state = Some(st.clone());
        self.start_agent(inner).await;
        let worker_token = inner
            .manager
            .as_ref()
            .map(|m| m.worker_token())
            .unwrap_or_default();
        Ok(InitResponse {
            node_id: st.node_id,
            worker_token,
            manager_addr: st.advertise_addr,
            unlock_key: String::new(),
        })
    }
}
