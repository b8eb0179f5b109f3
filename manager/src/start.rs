//! A manager starting itself from a settings value: it opens its Raft store
//! (sealed with the node's data key), founds a new swarm, joins the managers
//! of an existing one, resumes from disk or forces a new cluster out of its
//! own state, starts its loops and serves its TCP listener. The node process
//! (the `rswarm` binary's daemon) decides *when*; this module owns *how*.
//!
//! Founding a swarm starts with [`found_identity`] (the root CA and this
//! node's first certificate, which the daemon keeps on disk), then
//! [`start`] with [`Start::Found`] writes the cluster's first objects.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::identity::{keys, tls::NodeTls};
use rswarm_proto::types::NodeRole;
use rswarm_raft::{DataKey, Store, StoreConfig};

use crate::bootstrap::{self, InitParams};
use crate::ca::RootCa;
use crate::error::ManagerError;
use crate::{membership, objects, Manager, TlsConnector};

/// How a manager's store comes up.
pub enum Start {
    /// A brand-new single-manager swarm with this CA and these first objects.
    Found(Box<(RootCa, InitParams)>),
    /// Joining: ask these managers (host:port) to add us to the Raft membership.
    Join(Vec<String>),
    /// Existing Raft state on disk.
    Resume,
    /// `init --force-new-cluster`: this manager's Raft state rewritten to a
    /// membership of one, then resumed.
    ForceNewCluster,
}

/// Everything a manager needs to start.
pub struct ManagerSettings {
    /// The Raft store's directory.
    pub raft_dir: PathBuf,
    pub node_id: String,
    pub cluster_id: String,
    /// host:port the other managers reach this one at.
    pub advertise_addr: String,
    /// host:port the TCP listener binds.
    pub listen_addr: String,
    /// This node's certificate and key.
    pub tls: NodeTls,
    /// Seals the Raft store at rest.
    pub data_key: DataKey,
    pub how: Start,
    /// Where the manager's loops and dispatcher measure (registered once
    /// per daemon: a manager may start and stop several times in its life).
    pub metrics: crate::metrics::ManagerMetrics,
    /// Where its Raft store measures.
    pub raft_metrics: rswarm_raft::RaftMetrics,
}

/// The root CA of a new swarm and this node's manager certificate from it.
pub fn found_identity(
    cluster_id: &str,
    node_id: &str,
    cert_expiry: Option<Duration>,
) -> Result<(RootCa, NodeTls), ManagerError> {
    let root = RootCa::generate(cluster_id)
        .map_err(|e| ManagerError::Ca(format!("creating the root CA: {e}")))?;
    let (key_pem, csr_pem) = keys::new_key_and_csr()
        .map_err(|e| ManagerError::Internal(format!("creating the node key: {e}")))?;
    let cert_pem = root
        .sign_node_csr(
            &csr_pem,
            node_id,
            NodeRole::Manager,
            cluster_id,
            cert_expiry.unwrap_or(crate::certificates::DEFAULT_CERT_EXPIRY),
        )
        .map_err(|e| ManagerError::Ca(format!("signing the node certificate: {e}")))?;
    let tls = NodeTls {
        ca_pem: root.cert_pem.clone(),
        cert_pem,
        key_pem,
    };
    Ok((root, tls))
}

/// Start a manager: its store, its loops and its TCP listener.
pub async fn start(s: ManagerSettings) -> Result<Arc<Manager>, ManagerError> {
    let mut cfg = StoreConfig::new(
        s.raft_dir.clone(),
        objects::raft_id_for(&s.node_id),
        s.advertise_addr.clone(),
    );
    cfg.data_key = Some(s.data_key.clone());
    cfg.metrics = s.raft_metrics.clone();
    if let Start::ForceNewCluster = s.how {
        force_new_cluster(&cfg).await?;
    }
    let connector = Arc::new(TlsConnector::new(s.tls.clone()));
    let store = Store::open(cfg, connector.clone()).await.map_err(|e| {
        ManagerError::Internal(format!(
            "opening the Raft store in {}: {e}",
            s.raft_dir.display()
        ))
    })?;
    if let Start::Found(_) = s.how {
        store
            .bootstrap()
            .await
            .map_err(|e| ManagerError::Internal(format!("bootstrapping Raft: {e}")))?;
    }
    if matches!(s.how, Start::Found(_) | Start::ForceNewCluster) {
        membership::wait_leader(&store, Duration::from_secs(10)).await?;
    }
    let manager = Manager::start(
        store.clone(),
        s.cluster_id.clone(),
        connector,
        s.metrics.clone(),
    );
    if let Err(e) = manager.serve_tcp(&s.listen_addr, &s.tls).await {
        manager.stop().await;
        return Err(ManagerError::Internal(format!(
            "listening on {}: {e}",
            s.listen_addr
        )));
    }
    let joined = match s.how {
        Start::Found(founding) => {
            let (root, params) = *founding;
            bootstrap::create_cluster(&store, &root, params)
                .await
                .map(|_| ())
                .map_err(|e| ManagerError::Internal(format!("creating the cluster objects: {e}")))
        }
        Start::Join(peers) => {
            membership::add_member(&s.tls, &peers, &s.node_id, &s.advertise_addr).await
        }
        Start::Resume | Start::ForceNewCluster => Ok(()),
    };
    if let Err(e) = joined {
        manager.stop().await;
        return Err(e);
    }
    tracing::info!(addr = %s.advertise_addr, "manager started");
    Ok(manager)
}

/// Rewrite the Raft state to a membership of this manager alone. A manager
/// stopped a moment ago may still hold the store's lock while its tasks wind
/// down.
async fn force_new_cluster(cfg: &StoreConfig) -> Result<(), ManagerError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Store::force_new_cluster(cfg) {
            Ok(()) => return Ok(()),
            Err(e) if e.to_string().contains("lock") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(ManagerError::Internal(format!(
                    "rewriting the Raft state: {e}"
                )))
            }
        }
    }
}
