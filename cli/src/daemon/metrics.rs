//! The daemon's Prometheus metrics: ONE registry (prefix `rswarm`) made at
//! startup by [`build`], the one place where every crate registers its
//! handles (`register(&mut registry)`), served on `--metrics-addr`
//! (`/metrics`, text exposition format) by [`serve`].
//!
//! The crates measure where the work is done and get their handles through
//! their settings (the manager's and Raft's in `NodeSettings`, given to
//! every manager the node starts). The daemon itself only owns the node's
//! identity gauges (`rswarm_node_info`, `rswarm_swarm_active`), set from the
//! node runtime at each scrape.

use std::sync::Arc;

use anyhow::Context;
use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::{family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;
use rswarm_proto::daemon::InfoResponse;

use super::node::NodeRuntime;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    node_id: String,
    role: String,
}

/// The node's own gauges, set from `info()` at scrape time.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeGauges {
    info: Family<InfoLabels, Gauge>,
    active: Gauge,
}

impl NodeGauges {
    fn register(registry: &mut Registry) -> Self {
        let g = NodeGauges::default();
        registry.register("node_info", "The node's identity (value 1)", g.info.clone());
        registry.register(
            "swarm_active",
            "1 if this node is part of a swarm",
            g.active.clone(),
        );
        g
    }

    /// Show what `info` says about the node.
    fn set(&self, info: &InfoResponse) {
        let role = if info.local_node_state == "inactive" {
            ""
        } else if info.role == rswarm_proto::types::NodeRole::Manager as i32 {
            "manager"
        } else {
            "worker"
        };
        self.info.clear();
        self.info
            .get_or_create(&InfoLabels {
                version: info.version.clone(),
                node_id: info.node_id.clone(),
                role: role.into(),
            })
            .set(1);
        self.active.set((info.local_node_state == "active") as i64);
    }
}

/// Every crate's metric handles, registered once for the daemon's life.
#[derive(Clone, Debug)]
pub(crate) struct Handles {
    pub node: NodeGauges,
    pub manager: rswarm_manager::metrics::ManagerMetrics,
    pub raft: rswarm_raft::RaftMetrics,
    pub agent: rswarm_agent::metrics::AgentMetrics,
    pub overlay: rswarm_agent::metrics::OverlayMetrics,
}

/// The daemon's registry and the handles registered in it: the one place
/// where a crate's metrics join the registry.
pub(crate) fn build() -> (Registry, Handles) {
    let mut registry = Registry::with_prefix("rswarm");
    let handles = Handles {
        node: NodeGauges::register(&mut registry),
        manager: rswarm_manager::metrics::ManagerMetrics::register(&mut registry),
        raft: rswarm_raft::RaftMetrics::register(&mut registry),
        agent: rswarm_agent::metrics::AgentMetrics::register(&mut registry),
        overlay: rswarm_agent::metrics::OverlayMetrics::register(&mut registry),
    };
    (registry, handles)
}

/// What the `/metrics` handler needs.
struct Served {
    registry: Registry,
    node_gauges: NodeGauges,
    node: Arc<NodeRuntime>,
}

/// Render the registry now.
fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = encode(&mut out, registry) {
        tracing::error!(error = %e, "encoding metrics");
    }
    out
}

async fn handler(State(s): State<Arc<Served>>) -> impl IntoResponse {
    s.node_gauges.set(&s.node.info().await);
    // The cluster view reads the store: off the async workers.
    let served = s.clone();
    let body = tokio::task::spawn_blocking(move || render(&served.registry))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// Serve `registry` on `addr` (`/metrics`) until the process ends.
pub(crate) async fn serve(
    addr: &str,
    registry: Registry,
    node_gauges: NodeGauges,
    node: Arc<NodeRuntime>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr}"))?;
    let app = Router::new()
        .route("/metrics", get(handler))
        .with_state(Arc::new(Served {
            registry,
            node_gauges,
            node,
        }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_registry_carries_the_node_manager_and_raft_families() {
        let (registry, handles) = build();
        handles.node.set(&InfoResponse {
            version: "1.2.3".into(),
            node_id: "n1".into(),
            local_node_state: "active".into(),
            role: rswarm_proto::types::NodeRole::Manager as i32,
            ..Default::default()
        });
        let out = render(&registry);
        for line in [
            "rswarm_node_info{version=\"1.2.3\",node_id=\"n1\",role=\"manager\"} 1",
            "rswarm_swarm_active 1",
            "# TYPE rswarm_raft_term gauge",
            "# TYPE rswarm_scheduler_tasks_scheduled counter",
            "# TYPE rswarm_dispatcher_sessions gauge",
        ] {
            assert!(out.contains(line), "missing {line:?} in:\n{out}");
        }
        handles.node.set(&InfoResponse {
            version: "1.2.3".into(),
            local_node_state: "inactive".into(),
            ..Default::default()
        });
        let out = render(&registry);
        assert!(out.contains("rswarm_swarm_active 0"), "{out}");
        assert!(
            !out.contains("node_id=\"n1\""),
            "the old identity is gone:\n{out}"
        );
    }
}
