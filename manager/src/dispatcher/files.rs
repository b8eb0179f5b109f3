//! The secrets and configs a node's tasks need, as swarmkit's
//! `dispatcher/assignments.go` counts them: each assignments stream keeps
//! which of the node's tasks refer to which secret and config; after every
//! batch of task changes the difference to what the node was already sent
//! becomes changes of its own — an UPDATE (with the value: secrets are
//! opened with the cluster's secrets key only here) before the tasks that
//! use it, a REMOVE once no task there does. Only tasks not yet ended count.

use std::collections::{BTreeSet, HashMap};

use rswarm_proto::dispatcher::assignment_change::Action;
use rswarm_proto::dispatcher::AssignmentChange;
use rswarm_proto::types::{Config, Secret, SecretSpec, Task, TaskState};
use rswarm_raft::Store;

use crate::{objects, secrets};

/// One assignments stream's view of the node's secret and config needs.
#[derive(Default)]
pub(crate) struct NodeFiles {
    /// Task → (secret IDs, config IDs) it needs.
    needs: HashMap<String, (Vec<String>, Vec<String>)>,
    sent_secrets: BTreeSet<String>,
    sent_configs: BTreeSet<String>,
}

/// Whether a task on the node still needs its files: it has not ended.
fn needs_files(t: &Task) -> bool {
    t.status.as_ref().map(|s| s.state).unwrap_or(0) <= TaskState::Running as i32
}

impl NodeFiles {
    /// Starts over (a complete set is about to be sent).
    pub(crate) fn reset(&mut self) {
        *self = NodeFiles::default();
    }

    /// Notes a task the node is sent (or `None` for one it was told to drop).
    pub(crate) fn task(&mut self, id: &str, task: Option<&Task>) {
        let c = task
            .filter(|t| needs_files(t))
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.container.as_ref());
        match c {
            Some(c) if !c.secrets.is_empty() || !c.configs.is_empty() => {
                let s = c.secrets.iter().map(|r| r.secret_id.clone()).collect();
                let k = c.configs.iter().map(|r| r.config_id.clone()).collect();
                self.needs.insert(id.to_string(), (s, k));
            }
            _ => {
                self.needs.remove(id);
            }
        }
    }

    /// The changes that bring the node's secrets and configs in line with its
    /// tasks: `(before, after)` the task changes.
    pub(crate) fn changes(
        &mut self,
        store: &Store,
    ) -> (Vec<AssignmentChange>, Vec<AssignmentChange>) {
        let want_s: BTreeSet<String> = self.needs.values().flat_map(|n| n.0.clone()).collect();
        let want_c: BTreeSet<String> = self.needs.values().flat_map(|n| n.1.clone()).collect();
        let (mut before, mut after) = (vec![], vec![]);
        for id in want_s.difference(&self.sent_secrets) {
            match open_secret(store, id) {
                Ok(secret) => before.push(change(Action::Update, Some(secret), None)),
                Err(e) => {
                    tracing::warn!(secret = %id, error = %e, "a task's secret cannot be sent")
                }
            }
        }
        for id in want_c.difference(&self.sent_configs) {
            match objects::get::<Config>(store, id) {
                Ok(Some(config)) => before.push(change(Action::Update, None, Some(config))),
                Ok(None) => tracing::warn!(config = %id, "a task's config no longer exists"),
                Err(e) => {
                    tracing::warn!(config = %id, error = %e, "a task's config cannot be read")
                }
            }
        }
        for id in self.sent_secrets.difference(&want_s) {
            let s = Secret {
                id: id.clone(),
                ..Default::default()
            };
            after.push(change(Action::Remove, Some(s), None));
        }
        for id in self.sent_configs.difference(&want_c) {
            let c = Config {
                id: id.clone(),
                ..Default::default()
            };
            after.push(change(Action::Remove, None, Some(c)));
        }
        self.sent_secrets = want_s;
        self.sent_configs = want_c;
        (before, after)
    }
}

fn change(action: Action, secret: Option<Secret>, config: Option<Config>) -> AssignmentChange {
    AssignmentChange {
        action: action as i32,
        task: None,
        secret,
        config,
    }
}

/// The secret with its value in `spec.data` (for the node's session only).
fn open_secret(store: &Store, id: &str) -> Result<Secret, crate::ManagerError> {
    let s = objects::get::<Secret>(store, id)?
        .ok_or_else(|| crate::ManagerError::NotFound(format!("secret {id} no longer exists")))?;
    let key = secrets::key(store)?
        .ok_or_else(|| crate::ManagerError::Internal("the cluster has no secrets key".into()))?;
    let data = secrets::open(&key, id, &s.sealed)?;
    let spec = s.spec.clone().unwrap_or_default();
    Ok(Secret {
        id: s.id,
        meta: s.meta,
        spec: Some(SecretSpec {
            annotations: spec.annotations,
            data,
        }),
        sealed: vec![],
    })
}
