//! What a node remembers across restarts, under its data dir:
//! `state.json` (node ID, cluster ID, role, addresses, managers to reach) and
//! `certificates/` (CA, node certificate and key). The Raft store lives in
//! `raft/`. Leaving a swarm deletes all three.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Manager,
    Worker,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PeerAddr {
    pub node_id: String,
    pub addr: String,
}

/// The node's membership in a swarm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeState {
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
pub(crate) struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }
    pub(crate) fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub(crate) fn certs(&self) -> PathBuf {
        self.root.join("certificates")
    }
    pub(crate) fn raft(&self) -> PathBuf {
        self.root.join("raft")
    }

    pub(crate) fn load(&self) -> anyhow::Result<Option<NodeState>> {
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
    pub(crate) fn save(&self, st: &NodeState) -> anyhow::Result<()> {
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
    pub(crate) fn wipe(&self) -> anyhow::Result<()> {
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

/// Creates the data dir if needed and makes it root's alone (0700), also when
/// it already existed with looser modes; the subtrees that hold key material,
/// tokens and the Raft store get files 0600 and directories 0700, so a data dir
/// written by an older version under umask 022 is tightened too. Everything new
/// is created under the daemon's umask 077.
pub(crate) fn secure_data_dir(p: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    set_mode(p, 0o700)?;
    for sub in ["certificates", "raft", "keys", "state.json", "rswarm.pid"] {
        tighten(&p.join(sub))?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", p.display()))
}

/// Files 0600, directories 0700, recursively; symlinks are left alone.
fn tighten(p: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    if meta.is_dir() {
        set_mode(p, 0o700)?;
        for entry in std::fs::read_dir(p).with_context(|| format!("listing {}", p.display()))? {
            let entry = entry.with_context(|| format!("listing {}", p.display()))?;
            tighten(&entry.path())?;
        }
    } else if meta.is_file() {
        set_mode(p, 0o600)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn an_existing_loose_data_dir_is_tightened() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("data");
        std::fs::create_dir_all(root.join("raft/db"))?;
        std::fs::create_dir_all(root.join("containers/x"))?;
        std::fs::write(root.join("raft/db/conf"), "x")?;
        std::fs::write(root.join("state.json"), "{}")?;
        for (p, m) in [
            (root.clone(), 0o755),
            (root.join("raft"), 0o755),
            (root.join("raft/db"), 0o755),
            (root.join("raft/db/conf"), 0o644),
            (root.join("state.json"), 0o644),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m))?;
        }
        secure_data_dir(&root)?;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("raft")), 0o700);
        assert_eq!(mode(&root.join("raft/db")), 0o700);
        assert_eq!(mode(&root.join("raft/db/conf")), 0o600);
        assert_eq!(mode(&root.join("state.json")), 0o600);
        Ok(())
    }
}
