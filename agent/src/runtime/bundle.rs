//! A container's bundle on disk (the layout in the runtime's docs): creating
//! it (directories, the overlayfs rootfs, /etc files, meta.json, log pipes,
//! config.json last) and running `runc create` on it, with nothing left
//! behind on failure; the exit and pid files; removing it but its logs.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::logs::{self, LogSink};
use super::{
    blocking, cgroups, console, files, lock, rootfs, set_mode, spec, validate_id, write_private,
    ContainerConfig, ExitStatus, Runtime, RuntimeError,
};

// File names inside a bundle.
pub(super) const CONFIG: &str = "config.json";
pub(super) const ROOTFS: &str = "rootfs";
pub(super) const UPPER: &str = "upper";
pub(super) const WORK: &str = "work";
pub(super) const EMPTY_LOWER: &str = "empty";
pub(super) const META: &str = "meta.json";
pub(super) const EXIT: &str = "exit.json";
pub(super) const PID_FILE: &str = "init.pid";
pub(super) const RUNC_LOG: &str = "runc.log";

/// What live restore needs to know about a container.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) tty: bool,
    pub(super) open_stdin: bool,
    /// Absent in bundles of older daemons: the default.
    #[serde(default)]
    pub(super) log: super::LogPolicy,
}

/// The exit status recorded in the bundle, if any.
pub(super) fn read_exit_file(dir: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(dir.join(EXIT)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Records the exit status in the bundle (unless it was removed meanwhile).
pub(super) fn write_exit_file(dir: &Path, st: &ExitStatus) {
    if !dir.join(CONFIG).exists() {
        return; // removed meanwhile
    }
    if let Ok(data) = serde_json::to_vec(st) {
        if let Err(e) = std::fs::write(dir.join(EXIT), data) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot record exit status");
        }
    }
}

/// Removes a container's bundle directory but its log files. Blocking.
pub(super) fn remove_bundle(dir: &Path) -> Result<(), RuntimeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RuntimeError::io(format!("reading {}", dir.display()), e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if logs::is_log_file(&name) {
            continue;
        }
        let path = entry.path();
        let res = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        if let Err(e) = res {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(RuntimeError::io(format!("removing {}", path.display()), e));
            }
        }
    }
    Ok(())
}

/// The pid `runc` wrote to `path`.
pub(super) fn read_pid(path: &Path) -> Result<i32, RuntimeError> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| RuntimeError::io(format!("reading {}", path.display()), e))?;
    s.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| RuntimeError::Runc {
            op: "pid-file".into(),
            message: format!("bad pid file {}: {s:?}", path.display()),
        })
}

impl Runtime {
    /// Creates the container (bundle, overlayfs rootfs, config.json, /etc
    /// files, log pipes) and runs `runc create`; the process waits for
    /// [`Runtime::start`]. On failure nothing is left behind.
    pub async fn create(&self, cfg: &ContainerConfig) -> Result<(), RuntimeError> {
        validate_id(&cfg.id)?;
        spec::validate(cfg)?;
        let _creating = CreatingGuard::new(&self.creating, &cfg.id)?;
        let _turn = self.create_turns.acquire().await.ok();
        let dir = self.dir(&cfg.id);
        if dir.join(CONFIG).exists() || self.runc.state(&cfg.id).await?.is_some() {
            return Err(RuntimeError::AlreadyExists(cfg.id.clone()));
        }
        match self.create_inner(cfg, &dir).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.runc.delete_force(&cfg.id).await;
                self.forget(&cfg.id).await;
                blocking(|| {
                    cgroups::remove_leftovers(&cgroups::cgroups_path(&cfg.id));
                    let _ = rootfs::unmount_all(&dir.join(ROOTFS));
                    let _ = files::remove(&dir);
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "cleanup after failed create");
                    }
                });
                Err(e)
            }
        }
    }

    async fn create_inner(&self, cfg: &ContainerConfig, dir: &Path) -> Result<(), RuntimeError> {
        // Directories, the overlay mount and the bundle's files: blocking work,
        // kept off the threads that run heartbeats.
        let (stdio, sink) = blocking(|| self.write_bundle(cfg, dir))?;
        let pid_file = dir.join(PID_FILE);
        let runc_log = dir.join(RUNC_LOG);
        let mut sources: Vec<(u8, OwnedFd)> = stdio.readers;
        if cfg.tty {
            let console = console::ConsoleSocket::bind(self.runc.root(), self.next_seq())
                .map_err(|e| RuntimeError::io("console socket", e))?;
            let create = self.runc.create(
                &cfg.id,
                dir,
                &pid_file,
                &runc_log,
                Some(console.path()),
                stdio.child,
            );
            let master = console::with_console(&console, create).await?;
            sources.push((1, master));
        } else {
            self.runc
                .create(&cfg.id, dir, &pid_file, &runc_log, None, stdio.child)
                .await?;
        }
        let pid = read_pid(&pid_file)?;
        let task = logs::spawn_reader(&self.handle, sink.clone(), sources);
        self.track(&cfg.id, pid, Some(sink), Some(task));
        Ok(())
    }

    /// The bundle of a new container on disk: its directories, the overlay
    /// rootfs, /etc files, meta.json, the log pipes and log file, and
    /// config.json last. Blocking.
    fn write_bundle(
        &self,
        cfg: &ContainerConfig,
        dir: &Path,
    ) -> Result<(logs::ContainerStdio, Arc<LogSink>), RuntimeError> {
        let io = |what: &str, p: &Path, e| RuntimeError::io(format!("{what} {}", p.display()), e);
        let (rootfs_dir, upper, work) = (dir.join(ROOTFS), dir.join(UPPER), dir.join(WORK));
        for d in [dir, &rootfs_dir, &upper, &work] {
            std::fs::create_dir_all(d).map_err(|e| io("creating", d, e))?;
        }
        // The daemon runs with umask 077; the container's `/` (the overlay's
        // upper dir) must still be 0755 for a non-root process in it.
        for d in [&rootfs_dir, &upper] {
            set_mode(d, 0o755).map_err(|e| io("setting the mode of", d, e))?;
        }
        let mut layers = cfg.layers.clone();
        if layers.is_empty() {
            let empty = dir.join(EMPTY_LOWER);
            std::fs::create_dir_all(&empty).map_err(|e| io("creating", &empty, e))?;
            layers.push(empty);
        }
        rootfs::mount_overlay(&layers, &upper, &work, &rootfs_dir)?;
        let user = rootfs::resolve_user(&rootfs_dir, &cfg.user, &cfg.groups)?;
        let hostname = if cfg.hostname.is_empty() {
            cfg.id.chars().take(12).collect()
        } else {
            cfg.hostname.clone()
        };
        rootfs::write_etc_files(dir, &hostname, &cfg.hosts, &cfg.resolv_conf)?;
        files::write(dir, &cfg.files)?;
        let init = if cfg.init {
            Some(self.init.as_ref().map_err(|e| {
                RuntimeError::InvalidConfig(format!("init requested but unavailable: {e}"))
            })?)
        } else {
            None
        };
        let spec = spec::build(&spec::SpecInput {
            cfg,
            bundle: dir,
            hostname: &hostname,
            user: &user,
            init,
            unified: cgroups::is_unified(),
            swap_accounting: cgroups::swap_accounting(),
        })?;
        let json = serde_json::to_vec_pretty(&spec)
            .map_err(|e| RuntimeError::InvalidConfig(format!("encoding config.json: {e}")))?;
        let meta = serde_json::to_vec(&Meta {
            tty: cfg.tty,
            open_stdin: cfg.open_stdin,
            log: cfg.log,
        })
        .map_err(|e| RuntimeError::InvalidConfig(format!("encoding meta.json: {e}")))?;
        std::fs::write(dir.join(META), meta).map_err(|e| io("writing", &dir.join(META), e))?;

        let stdio = logs::ContainerStdio::prepare(dir, cfg.tty, cfg.open_stdin)
            .map_err(|e| io("creating log pipes in", dir, e))?;
        let sink = LogSink::open(dir, cfg.log).map_err(|e| io("opening log in", dir, e))?;
        let _ = std::fs::remove_file(dir.join(RUNC_LOG));
        // config.json last: its presence marks a complete bundle.
        // 0600 whatever the umask: it holds the task's environment.
        write_private(&dir.join(CONFIG), &json).map_err(|e| io("writing", &dir.join(CONFIG), e))?;
        Ok((stdio, sink))
    }
}

/// Keeps two concurrent `create`s of one id apart.
struct CreatingGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl<'a> CreatingGuard<'a> {
    fn new(set: &'a Mutex<HashSet<String>>, id: &str) -> Result<Self, RuntimeError> {
        if !lock(set).insert(id.to_string()) {
            return Err(RuntimeError::AlreadyExists(id.to_string()));
        }
        Ok(CreatingGuard {
            set,
            id: id.to_string(),
        })
    }
}

impl Drop for CreatingGuard<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.id);
    }
}
