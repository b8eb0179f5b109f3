//! Starts the manager's web dashboard (`rswarm_manager::dashboard`) on
//! `--dashboard-addr`: bound once at daemon start, answering from whatever
//! manager this node runs at the time of each request (503 on a worker).
//! A configured address that cannot be bound stops the daemon; the default
//! one only warns, as the metrics listener does.

use std::sync::Arc;

use rswarm_raft::Store;
use tonic::Status;

use super::node::NodeRuntime;
use super::DEFAULT_DASHBOARD_ADDR;

struct Source(Arc<NodeRuntime>);

#[tonic::async_trait]
impl rswarm_manager::dashboard::StoreSource for Source {
    async fn store(&self) -> Result<Store, Status> {
        Ok(self.0.manager().await?.store().clone())
    }

    async fn events(&self) -> Option<Arc<rswarm_manager::events::EventLog>> {
        self.0.manager().await.ok().map(|m| m.events())
    }
}

pub(crate) async fn serve(addr: Option<String>, node: Arc<NodeRuntime>) -> anyhow::Result<()> {
    let source = Arc::new(Source(node));
    match addr {
        Some(addr) => {
            let bound = rswarm_manager::dashboard::serve(&addr, source)
                .await
                .map_err(|e| anyhow::anyhow!("{e} (set --dashboard-addr)"))?;
            tracing::info!(addr = %bound, "serving the web dashboard on managers");
        }
        None => match rswarm_manager::dashboard::serve(DEFAULT_DASHBOARD_ADDR, source).await {
            Ok(bound) => tracing::info!(addr = %bound, "serving the web dashboard on managers"),
            Err(e) => tracing::warn!(error = %e, "the dashboard is off (set --dashboard-addr)"),
        },
    }
    Ok(())
}
