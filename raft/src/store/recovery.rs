//! `force_new_cluster`: the offline rewrite that turns one surviving manager's
//! data directory into a single-voter cluster, keeping every object and version.
//!
//! openraft refuses `initialize()` on a node that has state, so the rewrite is
//! done on disk while no store is running:
//! 1. every entry still in the log after the last applied one is applied (a new
//!    sole leader would commit them anyway);
//! 2. a membership entry naming only this manager is written at the next index,
//!    with term = highest term seen + 1, and applied;
//! 3. the log is emptied except for that entry (the earlier ones count as purged),
//!    the vote becomes (that term, this manager), committed = that entry;
//! 4. the stored snapshot is dropped; openraft rebuilds one at start.
//!
//! On the next open the manager is the only voter, elects itself and can write;
//! later writes get higher indices than any object already stored.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};

use super::layout::Db;
use super::{log, state_machine};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::types::TypeConfig;

pub(crate) fn force_new_cluster(cfg: &StoreConfig) -> Result<(), StoreError> {
    let db = Db::open_sealed(&cfg.data_dir, cfg.data_key.clone())?;
    let fail =
        |what: &str, e: &dyn std::fmt::Display| db.err(format!("force-new-cluster: {what}: {e}"));

    let (mut applied, _) =
        state_machine::read_applied(&db).map_err(|e| fail("reading state machine", &e))?;
    let vote = log::read_vote(&db).map_err(|e| fail("reading vote", &e))?;
    let pending = log::entries(&db, applied.map(|l| l.index + 1).unwrap_or(0)..)
        .map_err(|e| fail("reading log", &e))?;

    let mut highest_term = vote.map(|v| v.leader_id.term).unwrap_or(0);
    if let Some(a) = applied {
        highest_term = highest_term.max(a.leader_id.term);
    }
    for entry in &pending {
        if Some(entry.log_id) <= applied {
            continue;
        }
        state_machine::apply_entry(&db, entry).map_err(|e| fail("applying log entry", &e))?;
        applied = Some(entry.log_id);
        highest_term = highest_term.max(entry.log_id.leader_id.term);
    }

    let term = highest_term + 1;
    let index = applied.map(|l| l.index + 1).unwrap_or(0);
    let log_id = LogId::new(CommittedLeaderId::new(term, cfg.raft_id), index);
    let membership = Membership::new(
        vec![BTreeSet::from([cfg.raft_id])],
        BTreeMap::from([(cfg.raft_id, BasicNode::new(cfg.addr.clone()))]),
    );
    let entry: Entry<TypeConfig> = Entry {
        log_id,
        payload: EntryPayload::Membership(membership),
    };

    state_machine::apply_entry(&db, &entry).map_err(|e| fail("applying new membership", &e))?;
    log::reset(&db, applied, &entry, &Vote::new(term, cfg.raft_id), &log_id)
        .map_err(|e| fail("rewriting log", &e))?;
    state_machine::clear_snapshot(&db).map_err(|e| fail("dropping old snapshot", &e))?;
    db.db.flush().map_err(|e| fail("flushing", &e))?;

    tracing::warn!(
        raft_id = cfg.raft_id,
        addr = %cfg.addr,
        term,
        index,
        "forced a new single-manager cluster from the local raft state"
    );
    Ok(())
}
