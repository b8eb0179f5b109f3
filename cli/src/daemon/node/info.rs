//! `rswarm info`: what this node is in its swarm, with the manager's own
//! part (Raft, node counts) when it is one. The node's identity gauges
//! (`super::super::metrics`) read it too.

use rswarm_proto::daemon::{InfoResponse, ManagerPeer};
use rswarm_proto::types::NodeRole;

use super::super::state::Role;
use super::NodeRuntime;

impl NodeRuntime {
    pub(crate) async fn info(&self) -> InfoResponse {
        let inner = self.inner.lock().await;
        let mut out = InfoResponse {
            node_name: self.settings.node_name.clone(),
            data_dir: self.settings.data.root.display().to_string(),
            version: rswarm_proto::VERSION.to_string(),
            local_node_state: "inactive".into(),
            error: inner.error.clone().unwrap_or_default(),
            ..Default::default()
        };
        if self.is_locked() {
            out.local_node_state = "locked".into();
            out.error = super::super::keys::LOCKED.into();
            return out;
        }
        let Some(state) = &inner.state else {
            return out;
        };
        out.local_node_state = if inner.error.is_some() {
            "error".into()
        } else {
            "active".into()
        };
        out.node_id = state.node_id.clone();
        out.cluster_id = state.cluster_id.clone();
        out.node_addr = state.advertise_addr.clone();
        out.role = if state.role == Role::Manager {
            NodeRole::Manager as i32
        } else {
            NodeRole::Worker as i32
        };
        out.managers = state
            .managers
            .iter()
            .map(|m| ManagerPeer {
                node_id: m.node_id.clone(),
                addr: m.addr.clone(),
            })
            .collect();
        out.cert_expires_at = inner
            .tls
            .as_ref()
            .and_then(|t| t.identity().ok())
            .map(|i| i.not_after)
            .unwrap_or(0);
        if let Some(m) = &inner.manager {
            m.fill_info(&mut out);
        }
        out
    }
}
