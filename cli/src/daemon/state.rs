//! What a node remembers across restarts, under its data dir:
//! `state.json` (node ID, cluster ID, role, addresses, managers to reach) and
//! `certificates/` (CA, node certificate and key). The Raft store lives in
//! `raft/`. Leaving a swarm deletes all three.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerAddr {
    pub node_id: String,
    pub addr: String,
}

/// The node's membership in a swarm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub node_id: String,
    pub cluster_id: String,
    pub role: Role,
    /// host:port others reach this node's manager listener at.
    pub advertise_addr: String,
    /// host:port the manager listener binds.
    pub listen_addr: String,
    /// Managers to reach (for the agent's session).
    pub managers: Vec<PeerAddr>,
}

/// Paths under the data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn certs(&self) -> PathBuf {
        self.root.join("certificates")
    }
    pub fn raft(&self) -> PathBuf {
        self.root.join("raft")
    }

    pub fn load(&self) -> anyhow::Result<Option<NodeState>> {
        let p = self.state_file();
        if !p.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let st = serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        Ok(Some(st))
    }

    /// Write atomically (temp file + rename).
    pub fn save(&self, st: &NodeState) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let p = self.state_file();
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(st)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("renaming {}", p.display()))?;
        Ok(())
    }

    /// Forget the swarm: state, certificates and Raft data.
    pub fn wipe(&self) -> anyhow::Result<()> {
        for p in [self.state_file()] {
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        for d in [self.certs(), self.raft()] {
            if d.exists() {
                std::fs::remove_dir_all(&d).with_context(|| format!("removing {}", d.display()))?;
            }
        }
        Ok(())
    }
}

/// Exists so callers can check a path is a directory we may use.
pub fn ensure_dir(p: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))
}
