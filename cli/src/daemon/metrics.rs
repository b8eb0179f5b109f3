//! Prometheus metrics of the node, served on `--metrics-addr` (`/metrics`,
//! text exposition format): the node's registry, where the agent and the
//! data plane registered what they measure, and values read from the node
//! runtime at scrape time: swarm membership, Raft state, and nodes by
//! status on managers.

use std::sync::Arc;

use anyhow::Context;
use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;
use rswarm_proto::types::Node;

use super::node::NodeRuntime;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    node_id: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// The node runtime and the registry the crates registered in.
#[derive(Clone)]
struct Served {
    node: Arc<NodeRuntime>,
    registry: Arc<Registry>,
}

/// Render the node's metrics now.
pub(crate) async fn render(node: &NodeRuntime, shared: &Registry) -> String {
    let info = node.info().await;
    let nodes: Vec<Node> = node.nodes().await;
    let mut registry = Registry::with_prefix("rswarm");

    let node_info = Family::<InfoLabels, Gauge>::default();
    registry.register(
        "node_info",
        "The node's identity (value 1)",
        node_info.clone(),
    );
    let role = if info.local_node_state == "inactive" {
        ""
    } else if info.role == rswarm_proto::types::NodeRole::Manager as i32 {
        "manager"
    } else {
        "worker"
    };
    node_info
        .get_or_create(&InfoLabels {
            version: info.version.clone(),
            node_id: info.node_id.clone(),
            role: role.into(),
        })
        .set(1);

    let active = Gauge::<i64>::default();
    registry.register(
        "swarm_active",
        "1 if this node is part of a swarm",
        active.clone(),
    );
    active.set((info.local_node_state == "active") as i64);

    if let Some(raft) = &info.raft {
        let leader = Gauge::<i64>::default();
        registry.register(
            "raft_leader",
            "1 if this manager is the Raft leader",
            leader.clone(),
        );
        leader.set((raft.state == "Leader") as i64);
        let term = Gauge::<i64>::default();
        registry.register("raft_term", "Current Raft term", term.clone());
        term.set(raft.term as i64);
        let applied = Gauge::<i64>::default();
        registry.register(
            "raft_applied_index",
            "Last Raft log index applied to the store",
            applied.clone(),
        );
        applied.set(raft.last_applied as i64);
        let snapshot = Gauge::<i64>::default();
        registry.register(
            "raft_snapshot_index",
            "Raft log index of the last snapshot",
            snapshot.clone(),
        );
        snapshot.set(raft.snapshot_index as i64);
        let voters = Gauge::<i64>::default();
        registry.register(
            "raft_voters",
            "Voting members of the Raft group",
            voters.clone(),
        );
        voters.set(raft.voters.len() as i64);

        let by_state = Family::<StateLabels, Gauge>::default();
        registry.register("nodes", "Nodes in the swarm by status", by_state.clone());
        for state in ["ready", "down", "unknown", "disconnected"] {
            by_state
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(0);
        }
        for n in &nodes {
            let s = n.status.as_ref().map(|s| s.state).unwrap_or(0);
            let name = rswarm_proto::types::NodeState::try_from(s)
                .map(|s| match s {
                    rswarm_proto::types::NodeState::Ready => "ready",
                    rswarm_proto::types::NodeState::Down => "down",
                    rswarm_proto::types::NodeState::Disconnected => "disconnected",
                    rswarm_proto::types::NodeState::Unknown => "unknown",
                })
                .unwrap_or("unknown");
            by_state
                .get_or_create(&StateLabels { state: name.into() })
                .inc();
        }
    }
    let mut out = String::new();
    let encoded = encode_registry(&mut out, &registry)
        .and_then(|()| encode_registry(&mut out, shared))
        .and_then(|()| encode_eof(&mut out));
    if let Err(e) = encoded {
        tracing::error!(error = %e, "encoding metrics");
    }
    out
}

async fn handler(State(s): State<Served>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&s.node, &s.registry).await,
    )
}

/// Serve `/metrics` on `addr` until the process ends.
pub(crate) async fn serve(
    addr: &str,
    node: Arc<NodeRuntime>,
    registry: Arc<Registry>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr}"))?;
    let app = Router::new()
        .route("/metrics", get(handler))
        .with_state(Served { node, registry });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}
