//! Autolock on this node: `init --autolock`, `swarm unlock`, `swarm
//! unlock-key [--rotate]`, `swarm update --autolock`, and the loop that
//! keeps this manager's key wrapping (`keys.rs`) in line with the cluster's
//! setting (`rswarm_manager`'s autolock), which another manager may change.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use rswarm_proto::daemon::{UnlockKeyResponse, UnlockResponse};
use tonic::Status;

use super::super::keys;
use super::{internal, Inner, NodeRuntime};

/// How often a manager checks the cluster's autolock setting against its keys.
const AUTOLOCK_SYNC: Duration = Duration::from_secs(2);

/// Keep `node`'s keys in line with the cluster's autolock setting while it lives.
pub(super) fn spawn_sync(node: &Arc<NodeRuntime>) {
    let weak = Arc::downgrade(node);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(AUTOLOCK_SYNC).await;
            let Some(node) = weak.upgrade() else { break };
            if let Err(e) = node.sync_autolock().await {
                tracing::error!(error = %format!("{e:#}"), "applying the cluster's autolock setting");
            }
        }
    });
}

impl NodeRuntime {
    /// `init --autolock`: the cluster's first unlock key, in the cluster
    /// object and wrapping this manager's data key.
    pub(super) async fn init_autolock(&self, inner: &Inner) -> anyhow::Result<String> {
        let dek = self.dek().map_err(|e| anyhow!(e.message().to_string()))?;
        let manager = inner
            .manager
            .clone()
            .ok_or_else(|| anyhow!("the manager did not start"))?;
        let key = keys::new_unlock_key_text()?;
        manager
            .set_autolock(true, Some(key.clone()))
            .await
            .map_err(|e| anyhow!(e.message().to_string()))?;
        self.apply_unlock_key(&dek, Some(&key))?;
        Ok(key)
    }

    /// A node that leaves the swarm or stops being a manager keeps its keys
    /// but not autolock: its KEK goes back on disk.
    pub(super) fn autolock_off_on_disk(&self) {
        let Ok(dek) = self.dek() else { return };
        let root = &self.settings.data.root;
        if matches!(keys::current_unlock_key(root, &dek), Ok(Some(_))) {
            if let Err(e) = keys::set_autolock(root, &dek, false) {
                tracing::error!(error = %format!("{e:#}"), "turning autolock off");
            }
        }
    }

    /// `swarm unlock`: opens the DEK with the unlock key and resumes.
    pub(crate) async fn unlock(&self, key: &str) -> Result<UnlockResponse, Status> {
        if !self.is_locked() {
            return Err(Status::failed_precondition("swarm is not locked"));
        }
        let dek = keys::unlock(&self.settings.data.root, key)
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        if let Ok(mut d) = self.dek.lock() {
            *d = Some(dek);
        }
        tracing::info!("unlocked: resuming swarm membership");
        self.resume().await.map_err(internal)?;
        Ok(UnlockResponse {})
    }

    /// `swarm unlock-key [--rotate]`: the cluster's unlock key (kept in the
    /// cluster object, so every manager answers the same); `--rotate` puts a
    /// new one there, which every manager then wraps its data key with.
    pub(crate) async fn unlock_key(&self, rotate: bool) -> Result<UnlockKeyResponse, Status> {
        let manager = self.manager().await?;
        let dek = self.dek()?;
        let current = manager
            .autolock_key()
            .map_err(|e| internal(anyhow!("{e}")))?;
        let Some(current) = current else {
            return Err(Status::failed_precondition("no unlock key is set"));
        };
        let unlock_key = if rotate {
            let key = keys::new_unlock_key_text().map_err(internal)?;
            manager.set_autolock(true, Some(key.clone())).await?;
            key
        } else {
            current
        };
        keys::set_unlock_key(&self.settings.data.root, &dek, Some(&unlock_key))
            .map_err(internal)?;
        Ok(UnlockKeyResponse { unlock_key })
    }

    /// `swarm update --autolock=true|false`: a cluster-wide setting, kept in
    /// the cluster object; this manager applies it at once, the others within
    /// [`AUTOLOCK_SYNC`].
    pub(crate) async fn update_autolock(&self, on: bool) -> Result<UnlockKeyResponse, Status> {
        let manager = self.manager().await?;
        let dek = self.dek()?;
        let current = manager
            .current_unlock_key()
            .map_err(|e| internal(anyhow!("{e}")))?;
        let unlock_key = match (on, current) {
            (true, Some(key)) => key,
            (true, None) => {
                let key = keys::new_unlock_key_text().map_err(internal)?;
                manager.set_autolock(true, Some(key.clone())).await?;
                key
            }
            (false, _) => {
                manager.set_autolock(false, None).await?;
                String::new()
            }
        };
        let key = (!unlock_key.is_empty()).then_some(unlock_key.as_str());
        self.apply_unlock_key(&dek, key).map_err(internal)?;
        Ok(UnlockKeyResponse { unlock_key })
    }

    /// Wraps this node's data key the way the cluster says (`Some`: with that
    /// unlock key; `None`: autolock off), unless it already is.
    fn apply_unlock_key(
        &self,
        dek: &rswarm_raft::DataKey,
        key: Option<&str>,
    ) -> anyhow::Result<()> {
        let root = &self.settings.data.root;
        let current = keys::current_unlock_key(root, dek)?;
        if current.as_deref() == key {
            return Ok(());
        }
        keys::set_unlock_key(root, dek, key)?;
        match key {
            Some(_) => {
                tracing::info!("autolock: this manager's keys now need the cluster's unlock key")
            }
            None => {
                tracing::info!("autolock off: this manager's keys no longer need an unlock key")
            }
        }
        Ok(())
    }

    /// One pass of keeping this manager's keys in line with the cluster's
    /// autolock setting (another manager may have changed or rotated it).
    async fn sync_autolock(&self) -> anyhow::Result<()> {
        let Ok(dek) = self.dek() else { return Ok(()) };
        let manager = {
            let inner = self.inner.lock().await;
            match &inner.manager {
                Some(m) => m.clone(),
                None => return Ok(()),
            }
        };
        match manager.autolock_key() {
            Ok(key) => self.apply_unlock_key(&dek, key.as_deref()),
            // No cluster object yet (a manager still joining).
            Err(_) => Ok(()),
        }
    }
}
