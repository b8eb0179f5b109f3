//! The cluster's autolock setting (`init --autolock`, `swarm update
//! --autolock`, `swarm unlock-key --rotate`): whether managers keep their
//! key-encrypting key off the disk, and the unlock key that wraps it, kept in
//! the cluster object so every manager answers the same. Wrapping this node's
//! own keys with it is the node process's part (its data dir).

use rswarm_raft::StoreError;
use tonic::Status;

use crate::error::ManagerError;
use crate::{objects, Manager};

impl Manager {
    /// The cluster's autolock setting: `Some(key)` when managers are locked
    /// with that unlock key, `None` when autolock is off (or no key is set).
    /// An error while the store has no cluster object yet (a manager still
    /// joining).
    pub fn autolock_key(&self) -> Result<Option<String>, ManagerError> {
        let cluster = objects::cluster(self.store())?;
        let on = cluster.spec.as_ref().is_some_and(|s| s.autolock_managers);
        Ok((on && !cluster.unlock_key.is_empty()).then_some(cluster.unlock_key))
    }

    /// The unlock key kept in the cluster object, if any, whether or not
    /// autolock is on.
    pub fn current_unlock_key(&self) -> Result<Option<String>, ManagerError> {
        let cluster = objects::cluster(self.store())?;
        Ok((!cluster.unlock_key.is_empty()).then_some(cluster.unlock_key))
    }

    /// Writes the cluster's autolock setting (and unlock key), retrying on a
    /// version conflict with the managers' own writes.
    pub async fn set_autolock(&self, on: bool, key: Option<String>) -> Result<(), Status> {
        let store = self.store();
        loop {
            let mut cluster =
                objects::cluster(store).map_err(|e| Status::internal(e.to_string()))?;
            cluster
                .spec
                .get_or_insert_with(Default::default)
                .autolock_managers = on;
            cluster.unlock_key = key.clone().unwrap_or_default();
            match store.write(vec![objects::put(&cluster)]).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    return Err(Status::unavailable(format!(
                        "saving the autolock setting: {e}"
                    )))
                }
            }
        }
    }
}
