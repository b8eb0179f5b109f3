//! This node's named volumes: Docker's `local` driver. A volume is a folder
//! `<data-dir>/volumes/<name>/` (0700) holding `_data` (what a container
//! mounts) and `volume.json` (0600: name, driver, labels, created-at). Made by
//! `volume create` or by a task whose mount names a volume that does not
//! exist yet (with the mount's labels); listed, inspected, removed and pruned
//! through the daemon's local Volumes API.
//!
//! A volume is in use while a container of this node (running or not) has
//! its `_data` among its bind mounts, or while a task using it is being
//! prepared ([`VolumeStore::claim`]); such a volume is not removed. Copying
//! the image's content into a new volume is `copy`.

mod copy;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

pub use copy::copy_image_content;

use crate::runtime::Runtime;

/// The only driver.
pub const LOCAL_DRIVER: &str = "local";
const DATA: &str = "_data";
const META: &str = "volume.json";

#[derive(thiserror::Error, Debug)]
pub enum VolumeError {
    #[error("{0}")]
    InvalidName(String),
    #[error("No such volume: {0}")]
    NotFound(String),
    #[error(
        "volume {0} not found (an external volume is used as it is, never created for a task)"
    )]
    ExternalMissing(String),
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let what = what.into();
    move |source| VolumeError::Io { what, source }
}

/// One volume, as `volume inspect` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// `<dir>/<name>/_data` (not stored: follows the data dir).
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

/// The volumes of this node. See the module docs.
pub struct VolumeStore {
    root: PathBuf,
    /// Held across a check-then-act (create, remove, prune, claim).
    lock: Mutex<()>,
    /// Volume name → tasks being prepared with it.
    claims: Mutex<HashMap<String, HashSet<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// A random 64-hex name, as Docker gives an unnamed volume.
pub fn random_name() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The name of a task's anonymous volume at `target`: 64 hex characters,
/// the same each time for one task and target.
pub fn anonymous_name(task_id: &str, target: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{task_id}\0{target}").as_bytes());
    d.iter().map(|x| format!("{x:02x}")).collect()
}

/// The label an anonymous volume carries (removed with its task).
pub const ANONYMOUS_LABEL: &str = "com.rswarm.volume.anonymous";

impl VolumeStore {
    /// Opens (and makes, 0700) the store at `root` (`<data-dir>/volumes`).
    pub fn open(root: &Path) -> Result<Arc<VolumeStore>, VolumeError> {
        std::fs::create_dir_all(root)
            .and_then(|()| set_mode(root, 0o700))
            .map_err(io(format!("creating {}", root.display())))?;
        Ok(Arc::new(VolumeStore {
            root: root.to_path_buf(),
            lock: Mutex::new(()),
            claims: Mutex::new(HashMap::new()),
        }))
    }

    fn check_name(name: &str) -> Result<(), VolumeError> {
        rswarm_proto::spec::mounts::check_volume_name(name)
            .map_err(|e| VolumeError::InvalidName(format!("create {name}: {e}")))
    }

    /// The folder of the volume `name` (which must be a valid name).
    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn read(&self, name: &str) -> Result<Volume, VolumeError> {
        if rswarm_proto::spec::mounts::check_volume_name(name).is_err() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let meta = self.dir(name).join(META);
        let text = match std::fs::read(&meta) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io(format!("reading {}", meta.display()))(e)),
        };
        let mut v: Volume = serde_json::from_slice(&text).map_err(|e| VolumeError::Io {
            what: format!("reading {}", meta.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        v.mountpoint = self.dir(name).join(DATA);
        Ok(v)
    }

    /// Makes the volume; `Ok((volume, false))` when it already existed (its
    /// labels are kept, as Docker's create of an existing volume).
    fn create_locked(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(Volume, bool), VolumeError> {
        Self::check_name(name)?;
        match self.read(name) {
            Ok(v) => return Ok((v, false)),
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let dir = self.dir(name);
        let data = dir.join(DATA);
        std::fs::create_dir_all(&data)
            .and_then(|()| set_mode(&dir, 0o700))
            // `_data` is the volume's root in a container: 0755 as Docker's.
            .and_then(|()| set_mode(&data, 0o755))
            .map_err(io(format!("creating {}", data.display())))?;
        let v = Volume {
            name: name.to_string(),
            driver: LOCAL_DRIVER.to_string(),
            labels: labels.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            mountpoint: data,
        };
        let json = serde_json::to_vec_pretty(&v).map_err(|e| VolumeError::Io {
            what: "encoding volume.json".into(),
            source: std::io::Error::other(e),
        })?;
        // volume.json last: its presence marks a complete volume.
        crate::runtime::write_private(&dir.join(META), &json)
            .map_err(io(format!("writing {}", dir.join(META).display())))?;
        Ok((v, true))
    }

    /// `volume create`: `name` (or a random one) with `labels`.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: &BTreeMap<String, String>,
        driver_opts: &BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        if !driver.is_empty() && driver != LOCAL_DRIVER {
            return Err(VolumeError::Unsupported(format!(
                "create {}: volume driver {driver:?} is not supported: only \"local\" is",
                name.unwrap_or("")
            )));
        }
        if !driver_opts.is_empty() {
            return Err(VolumeError::Unsupported(format!(
                "create {}: options of the local driver (--opt) are not supported",
                name.unwrap_or("")
            )));
        }
        check_label_bounds(labels)?;
        let name = name
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .unwrap_or_else(random_name);
        let _g = lock(&self.lock);
        self.create_locked(&name, labels).map(|(v, _)| v)
    }

    /// For a task about to use `name`: the volume, made (with `labels`) if
    /// missing unless `external`; the task counts as a user until
    /// [`VolumeStore::release`]. The bool says whether it was made now.
    pub fn claim(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        external: bool,
        task: &str,
    ) -> Result<(Volume, bool), VolumeError> {
        let _g = lock(&self.lock);
        let got = if external {
            self.read(name).map(|v| (v, false)).map_err(|e| match e {
                VolumeError::NotFound(n) => VolumeError::ExternalMissing(n),
                e => e,
            })?
        } else {
            self.create_locked(name, labels)?
        };
        lock(&self.claims)
            .entry(name.to_string())
            .or_default()
            .insert(task.to_string());
        Ok(got)
    }

    /// The task's preparation is over (its container exists, or not).
    pub fn release(&self, task: &str) {
        let mut claims = lock(&self.claims);
        for set in claims.values_mut() {
            set.remove(task);
        }
        claims.retain(|_, s| !s.is_empty());
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        self.read(name)
    }

    /// Every volume, sorted by name.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let mut out = vec![];
        let entries = std::fs::read_dir(&self.root)
            .map_err(io(format!("reading {}", self.root.display())))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            match self.read(&name) {
                Ok(v) => out.push(v),
                Err(VolumeError::NotFound(_)) => {}
                Err(e) => tracing::warn!(volume = %name, error = %e, "unreadable volume"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Volume name → ids of the containers (and tasks being prepared) using it.
    pub fn users(&self, runtime: &Runtime) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for id in runtime.list().unwrap_or_default() {
            for src in runtime.bind_sources(&id) {
                if let Some(name) = self.volume_of(&src) {
                    let v = out.entry(name).or_default();
                    if !v.contains(&id) {
                        v.push(id.clone());
                    }
                }
            }
        }
        for (name, tasks) in lock(&self.claims).iter() {
            let v = out.entry(name.clone()).or_default();
            for t in tasks {
                if !v.contains(t) {
                    v.push(t.clone());
                }
            }
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    /// The volume whose `_data` is `path`.
    fn volume_of(&self, path: &Path) -> Option<String> {
        let rest = path.strip_prefix(&self.root).ok()?;
        let mut parts = rest.components();
        let name = parts.next()?.as_os_str().to_str()?.to_string();
        (parts.next()?.as_os_str() == DATA && parts.next().is_none()).then_some(name)
    }

    /// `volume rm`: refused while in use; `force` makes a missing volume no
    /// error (Docker's `-f`).
    pub fn remove(&self, name: &str, force: bool, runtime: &Runtime) -> Result<(), VolumeError> {
        let _g = lock(&self.lock);
        match self.read(name) {
            Ok(_) => {}
            Err(VolumeError::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        }
        if let Some(users) = self.users(runtime).remove(name).filter(|u| !u.is_empty()) {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                users,
            });
        }
        self.delete(name)
    }

    fn delete(&self, name: &str) -> Result<(), VolumeError> {
        let dir = self.dir(name);
        // volume.json first: a half-removed volume is no volume.
        match std::fs::remove_file(dir.join(META)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("removing volume {name}"))(e)),
        }
        std::fs::remove_dir_all(&dir).map_err(io(format!("removing volume {name}")))
    }

    /// `volume prune`: removes every volume no container uses; returns the
    /// names removed and the bytes they held.
    pub fn prune(&self, runtime: &Runtime) -> Result<(Vec<String>, u64), VolumeError> {
        let _g = lock(&self.lock);
        let users = self.users(runtime);
        let mut deleted = vec![];
        let mut bytes = 0;
        for v in self.list()? {
            if users.get(&v.name).is_some_and(|u| !u.is_empty()) {
                continue;
            }
            let size = disk_usage(&v.mountpoint);
            self.delete(&v.name)?;
            bytes += size;
            deleted.push(v.name);
        }
        Ok((deleted, bytes))
    }
}

/// A volume's labels are bounded as a spec's lists and size are.
fn check_label_bounds(labels: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    use rswarm_proto::spec::bounds::{MAX_LIST_ENTRIES, MAX_SPEC_BYTES};
    let bytes: usize = labels.iter().map(|(k, v)| k.len() + v.len()).sum();
    if labels.len() > MAX_LIST_ENTRIES || bytes > MAX_SPEC_BYTES {
        return Err(VolumeError::Unsupported(format!(
            "a volume may have at most {MAX_LIST_ENTRIES} labels of {MAX_SPEC_BYTES} bytes in all"
        )));
    }
    Ok(())
}

/// Bytes of the regular files under `dir` (symlinks not followed).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}
