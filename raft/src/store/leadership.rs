//! Who leads, as this manager sees it: the Raft status, whether this
//! manager is the leader, where requests for the leader go, and waiting for
//! this manager's leadership to change (`wait_leadership`, on openraft's
//! metrics watch, so the manager's leader-only loops start and stop without
//! polling).

use std::time::Duration;

use openraft::{BasicNode, RaftMetrics, ServerState};

use super::Store;
use crate::error::StoreError;
use crate::types::RaftStatus;

/// How long `wait_leadership` trusts one metrics channel before it looks
/// again (the Raft instance is replaced when the store heals).
const RECHECK: Duration = Duration::from_secs(1);
/// Pause after a metrics channel closed (its Raft instance stopped), before
/// looking at the current instance.
const CLOSED_PAUSE: Duration = Duration::from_millis(50);

/// Where a request for the leader should go right now.
pub(super) enum Leader {
    Me,
    Remote(String),
    Unknown,
}

impl Leader {
    /// The route one metrics report gives, for the manager `raft_id`.
    fn of(m: &RaftMetrics<u64, BasicNode>, raft_id: u64) -> Leader {
        match m.current_leader {
            Some(id) if id == raft_id => {
                if m.state == ServerState::Leader {
                    Leader::Me
                } else {
                    Leader::Unknown
                }
            }
            Some(id) => match m.membership_config.membership().get_node(&id) {
                Some(node) => Leader::Remote(node.addr.clone()),
                None => Leader::Unknown,
            },
            None => Leader::Unknown,
        }
    }
}

impl Store {
    /// A point-in-time view of this manager's Raft state.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.inner.raft().metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        RaftStatus {
            raft_id: self.inner.cfg.raft_id,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            members: membership
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect(),
        }
    }

    /// Whether this manager is the Raft leader.
    pub fn is_leader(&self) -> bool {
        matches!(self.leader_route(), Leader::Me)
    }

    /// Raft id and address of the current leader, as this manager knows it.
    pub fn leader(&self) -> Option<(u64, String)> {
        let metrics = self.inner.raft().metrics();
        let m = metrics.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?;
        Some((id, node.addr.clone()))
    }

    pub(super) fn leader_route(&self) -> Leader {
        let metrics = self.inner.raft().metrics();
        let m = metrics.borrow();
        Leader::of(&m, self.inner.cfg.raft_id)
    }

    /// Waits until this manager leads (`leading` true) or does not
    /// (`leading` false), returning at once when that is already so. A store
    /// that is shut down does not lead: waiting for leadership then fails
    /// with `StoreError::Shutdown`, waiting for its loss returns.
    pub async fn wait_leadership(&self, leading: bool) -> Result<(), StoreError> {
        loop {
            let raft = self.inner.raft();
            let mut metrics = raft.metrics();
            loop {
                let now = matches!(
                    Leader::of(&metrics.borrow_and_update(), self.inner.cfg.raft_id),
                    Leader::Me
                ) && !self.inner.is_shut_down();
                if now == leading {
                    return Ok(());
                }
                if self.inner.is_shut_down() {
                    return Err(StoreError::Shutdown);
                }
                match tokio::time::timeout(RECHECK, metrics.changed()).await {
                    Ok(Ok(())) => {}
                    // This Raft instance stopped (the store is healing or
                    // shutting down): look at the current one.
                    Ok(Err(_)) => {
                        tokio::time::sleep(CLOSED_PAUSE).await;
                        break;
                    }
                    // Nothing reported for a while: the instance may have
                    // been replaced meanwhile.
                    Err(_) => break,
                }
            }
        }
    }
}
