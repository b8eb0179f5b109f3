//! The container runtime: every task is an OCI bundle run by `runc`, with no
//! helper process per container, and running containers survive a restart of
//! the daemon (live restore). What callers pass and get back (container and
//! exec configs, states, exit statuses, errors) is in types.rs.
//!
//! # On disk
//!
//! ```text
//! <data-dir>/containers/<id>/   the bundle (bundle.rs creates and removes it)
//!     config.json               OCI runtime spec (spec.rs)
//!     rootfs/                   overlayfs mount: lowerdirs = image layers, upper/ + work/ per container
//!     upper/ work/
//!     hostname hosts resolv.conf  bind-mounted (writable) on /etc/… in the container
//!     stdout.fifo stderr.fifo   the container's stdout/stderr (not for tty containers)
//!     stdin.fifo                only with `open_stdin`
//!     files/                    a tmpfs with the secret and config files (files.rs)
//!     log.jsonl log.jsonl.N[.gz]  timestamped log lines, rotated per the task's log driver (logs.rs)
//!     meta.json                 what live restore needs (tty or not, the log policy)
//!     exit.json                 the exit status, once known
//!     init.pid runc.log         pid and error log of `runc create`
//! <data-dir>/runc/              runc's state root (`runc --root`)
//! ```
//!
//! # No helper process
//!
//! `runc create` is run detached: once it returns, the container's init is
//! re-parented to the daemon, which made itself a *child subreaper*
//! (`PR_SET_CHILD_SUBREAPER`). A single reaper task (reaper.rs) collects the
//! exit status with `waitid(P_PID, pid)` for the pids it was told about (never
//! `waitpid(-1)`, which would steal the status of `runc` commands that tokio
//! spawned and waits for itself). The same goes for `exec`: `runc exec
//! --detach` leaves the process to the subreaper, so the exit code of an exec
//! is the real one too.
//!
//! stdout and stderr of a container are FIFOs that the container holds open
//! read-write: the container side always has a reader, so it never gets
//! `EPIPE`/`SIGPIPE`, even while the daemon is down. The daemon reads them (one
//! tokio task per container, logs.rs) and writes timestamped lines to
//! `log.jsonl`. While the daemon is down, output stays in the pipe buffer
//! (raised to 1 MiB with `F_SETPIPE_SZ`, the usual `fs.pipe-max-size`; 64 KiB
//! where that fails); a container that writes more than that blocks in
//! `write(2)` until the daemon is back. Output of a container that exits
//! while the daemon is down is lost with the pipe.
//!
//! # Live restore
//!
//! [`Runtime::new`] on a data dir with running containers does not touch them:
//! it reopens their FIFOs and restarts their log readers, and watches their
//! exit through a pidfd. They are no longer children of this process (they
//! were re-parented to init when the old daemon went), so their exit code is
//! unknown: [`Runtime::wait`] then answers `code: None` (the OOM flag is still
//! read from the cgroup).
//!
//! A tty container's output comes from the pty master that runc hands over
//! through the console socket; the daemon holds the only copy of it, so a
//! daemon restart hangs up the terminal (the container gets `SIGHUP`) and its
//! later output is not logged. Services use tty rarely; keeping the master
//! alive would need a holder process, which this design refuses.
//!
//! # Security defaults
//!
//! As Docker's: its 14 default capabilities (`cap_add`/`cap_drop`, `ALL`
//! supported), masked and read-only `/proc` paths, a devices cgroup that denies
//! all but the standard devices, new mount/PID/UTS/IPC/network namespaces (and
//! a cgroup namespace on cgroup v2). `no_new_privileges` is off, as in Docker
//! (containerd turns it on; a setuid binary in an image must keep working).
//! Docker's default seccomp profile is not applied.

mod bundle;
pub(crate) mod cgroups;
mod console;
mod exec;
mod files;
mod init;
mod logs;
mod reaper;
mod rootfs;
mod runc;
mod spec;
mod types;

/// Sets `path`'s permission bits to exactly `mode`.
pub(crate) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes `data` to `path` (replacing it) readable by root only (0600),
/// whatever the umask: bundle files that hold a task's environment.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    set_mode(path, 0o600)?;
    f.write_all(data)
}
#[cfg(test)]
mod tests;

pub use exec::{ExecProcess, Pty};
pub use init::container_init_main;
pub use spec::{ALL_CAPS, DEFAULT_CAPS};
pub use types::{
    ContainerConfig, ContainerFile, ContainerState, ContainerStatus, ExecConfig, ExitStatus,
    LogLine, LogPolicy, MountConfig, MountKind, RuntimeError,
};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};

use bundle::{
    read_exit_file, read_pid, remove_bundle, write_exit_file, Meta, CONFIG, META, PID_FILE, ROOTFS,
};
use logs::LogSink;
use reaper::Reaper;
use runc::Runc;

/// A container this runtime watches: its exit status once known, and its log
/// reader.
struct Tracked {
    exit: Arc<watch::Sender<Option<ExitStatus>>>,
    sink: Option<Arc<LogSink>>,
    log_task: Option<JoinHandle<()>>,
}

/// The container runtime of one node. See the module docs.
pub struct Runtime {
    root: PathBuf,
    runc: Runc,
    init: Result<init::InitPlan, String>,
    handle: Handle,
    reaper: Reaper,
    tracked: Mutex<HashMap<String, Tracked>>,
    creating: Mutex<HashSet<String>>,
    /// Bounds the containers being created at once (see [`MAX_CONCURRENT_CREATES`]).
    create_turns: tokio::sync::Semaphore,
    /// Bounds the containers being removed at once (see [`MAX_CONCURRENT_REMOVES`]).
    remove_turns: tokio::sync::Semaphore,
    tasks: Mutex<Vec<AbortHandle>>,
    seq: AtomicU64,
    /// Tests: treat restored containers as not our children, as after a real restart.
    #[cfg(test)]
    assume_foreign: std::sync::atomic::AtomicBool,
}

/// Containers created at once: each mounts an overlay, writes its bundle and
/// runs `runc create`; a thousand tasks arriving together queue here instead
/// of running a thousand of those together.
pub const MAX_CONCURRENT_CREATES: usize = 4;

/// Containers removed at once (`runc delete`, unmount, bundle removal).
pub const MAX_CONCURRENT_REMOVES: usize = 8;

/// Runs blocking work (file system, mounts) without holding up the async
/// worker thread's other tasks: on a multi-thread runtime the thread hands
/// its tasks to another one first (`block_in_place`); elsewhere (a
/// current-thread runtime in a test) it just runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Container ids are used as file names and runc ids.
fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidConfig(format!(
            "invalid container id {id:?}"
        )))
    }
}

impl Runtime {
    /// Prepares `<data_dir>/containers` and `<data_dir>/runc`, makes this
    /// process a child subreaper so that exiting containers are reaped here
    /// and their exit codes seen, and re-attaches to containers already
    /// running (live restore: their log readers restart). The init binary for
    /// `init: true` is this executable. Must be called inside a tokio runtime.
    pub fn new(data_dir: &Path, runc: PathBuf) -> Result<Arc<Runtime>, RuntimeError> {
        let init = std::env::current_exe().unwrap_or_default();
        Self::with_init_binary(data_dir, runc, init)
    }

    /// As [`Runtime::new`], with the binary that serves as the container init
    /// (it must run [`container_init_main`] when called as
    /// `<binary> container-init -- args…`).
    pub fn with_init_binary(
        data_dir: &Path,
        runc: PathBuf,
        init_binary: PathBuf,
    ) -> Result<Arc<Runtime>, RuntimeError> {
        Self::build(data_dir, runc, init_binary, false)
    }

    fn build(
        data_dir: &Path,
        runc: PathBuf,
        init_binary: PathBuf,
        assume_foreign: bool,
    ) -> Result<Arc<Runtime>, RuntimeError> {
        let handle = Handle::try_current()
            .map_err(|_| RuntimeError::Unavailable("not inside a tokio runtime".into()))?;
        let root = data_dir.join("containers");
        let runc_root = data_dir.join("runc");
        for d in [&root, &runc_root] {
            std::fs::create_dir_all(d)
                .map_err(|e| RuntimeError::io(format!("creating {}", d.display()), e))?;
        }
        let reaper = Reaper::start(&handle)?;
        let init = init::InitPlan::for_binary(&init_binary);
        if let Err(e) = &init {
            tracing::debug!(error = %e, "container init unavailable");
        }
        let _ = assume_foreign;
        let rt = Arc::new(Runtime {
            root,
            runc: Runc::new(runc, runc_root),
            init,
            handle,
            reaper,
            tracked: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashSet::new()),
            create_turns: tokio::sync::Semaphore::new(MAX_CONCURRENT_CREATES),
            remove_turns: tokio::sync::Semaphore::new(MAX_CONCURRENT_REMOVES),
            tasks: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            #[cfg(test)]
            assume_foreign: std::sync::atomic::AtomicBool::new(assume_foreign),
        });
        rt.restore();
        Ok(rt)
    }

    /// Live restore: watch containers that are still alive and restart their
    /// log readers. Touches neither their processes nor their mounts.
    fn restore(&self) {
        let states = match self.runc.list_blocking() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "live restore: cannot list containers");
                return;
            }
        };
        for st in states {
            if !st.alive() || validate_id(&st.id).is_err() {
                continue;
            }
            let dir = self.dir(&st.id);
            if !dir.join(CONFIG).exists() {
                continue;
            }
            let meta: Meta = std::fs::read(dir.join(META))
                .ok()
                .and_then(|d| serde_json::from_slice(&d).ok())
                .unwrap_or_default();
            let (sink, log_task) = if meta.tty {
                tracing::warn!(id = %st.id, "live restore: the terminal of a tty container was lost with the previous daemon; its output is no longer logged");
                (None, None)
            } else {
                match logs::reopen_fifos(&dir).and_then(|fds| {
                    let sink = LogSink::open(&dir, meta.log)?;
                    Ok((sink, fds))
                }) {
                    Ok((sink, fds)) => {
                        let task = logs::spawn_reader(&self.handle, sink.clone(), fds);
                        (Some(sink), Some(task))
                    }
                    Err(e) => {
                        tracing::warn!(id = %st.id, error = %e, "live restore: cannot reopen the log pipes");
                        (None, None)
                    }
                }
            };
            self.track(&st.id, st.pid, sink, log_task);
            tracing::info!(id = %st.id, pid = st.pid, "live restore: re-attached to running container");
        }
    }

    /// Starts watching the exit of a container whose init has host pid `pid`.
    fn track(
        &self,
        id: &str,
        pid: i32,
        sink: Option<Arc<LogSink>>,
        log_task: Option<JoinHandle<()>>,
    ) -> Arc<watch::Sender<Option<ExitStatus>>> {
        let (tx, _) = watch::channel(None);
        let tx = Arc::new(tx);
        let dir = self.dir(id);
        let watcher = if self.is_own_child(pid) {
            let rx = self.reaper.register(pid);
            let (id, tx) = (id.to_string(), tx.clone());
            self.handle.spawn(async move {
                let code = rx.await.unwrap_or(None);
                finish(&id, &dir, code, &tx);
            })
        } else {
            let (id, tx, runc) = (id.to_string(), tx.clone(), self.runc.clone());
            self.handle.spawn(async move {
                reaper::wait_foreign(&runc, &id, pid).await;
                finish(&id, &dir, None, &tx);
            })
        };
        if let Some(t) = &log_task {
            self.keep_task(t.abort_handle());
        }
        self.keep_task(watcher.abort_handle());
        lock(&self.tracked).insert(
            id.to_string(),
            Tracked {
                exit: tx.clone(),
                sink,
                log_task,
            },
        );
        tx
    }

    fn is_own_child(&self, pid: i32) -> bool {
        #[cfg(test)]
        if self
            .assume_foreign
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return false;
        }
        reaper::is_child(pid)
    }

    fn keep_task(&self, h: AbortHandle) {
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts a created container; returns the host pid of its process.
    pub async fn start(&self, id: &str) -> Result<u32, RuntimeError> {
        validate_id(id)?;
        if !self.runc.may_exist(id) {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        // `runc start` itself refuses a container that is not `created`.
        self.runc.start(id).await?;
        let pid = read_pid(&self.dir(id).join(PID_FILE))?;
        Ok(pid as u32)
    }

    /// runc's state of the container.
    pub async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        validate_id(id)?;
        let st = self
            .runc
            .state(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        let status = match st.status.as_str() {
            "created" | "creating" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "paused" | "pausing" => ContainerStatus::Paused,
            _ => ContainerStatus::Stopped,
        };
        let pid = if status == ContainerStatus::Stopped {
            0
        } else {
            st.pid.max(0) as u32
        };
        Ok(ContainerState { status, pid })
    }

    /// Resolves when the container's process has exited: its exit code (None
    /// if it exited while this process was not its reaper, e.g. across a
    /// daemon restart) and whether the kernel OOM-killed it (from the
    /// cgroup's memory events: v1 `memory.oom_control`, v2 `memory.events`,
    /// read before the cgroup goes).
    pub async fn wait(&self, id: &str) -> Result<ExitStatus, RuntimeError> {
        validate_id(id)?;
        let existing = lock(&self.tracked).get(id).map(|t| t.exit.subscribe());
        let mut rx = match existing {
            Some(rx) => rx,
            None => {
                let dir = self.dir(id);
                if let Some(st) = read_exit_file(&dir) {
                    return Ok(st);
                }
                match self.runc.state(id).await? {
                    None => return Err(RuntimeError::NotFound(id.to_string())),
                    Some(s) if s.alive() => {
                        // Not watched yet (e.g. re-created state): watch it now.
                        let existing = lock(&self.tracked).get(id).map(|t| t.exit.subscribe());
                        match existing {
                            Some(rx) => rx,
                            None => self.track(id, s.pid, None, None).subscribe(),
                        }
                    }
                    Some(_) => {
                        let st = ExitStatus {
                            code: None,
                            oom_killed: cgroups::oom_killed(&cgroups::cgroups_path(id)),
                        };
                        write_exit_file(&dir, &st);
                        return Ok(st);
                    }
                }
            }
        };
        let st = rx
            .wait_for(|v| v.is_some())
            .await
            .map_err(|_| RuntimeError::Unavailable("runtime shut down".into()))?;
        (*st).ok_or_else(|| RuntimeError::Unavailable("runtime shut down".into()))
    }

    /// Sends `signal` ("SIGTERM", "TERM" or "15"), waits up to `grace` for
    /// the container to exit, then sends SIGKILL and waits for the exit.
    /// Stopping a container that is not running is fine.
    pub async fn stop(&self, id: &str, signal: &str, grace: Duration) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let sig = spec::parse_signal(signal)?;
        if self.exited(id) {
            return Ok(());
        }
        let st = self.state(id).await?;
        match st.status {
            ContainerStatus::Stopped => return Ok(()),
            // Its process never ran the task's program and takes no signal
            // (`runc init` waits for `runc start`): delete it.
            ContainerStatus::Created => {
                let _turn = self.remove_turns.acquire().await.ok();
                return self.runc.delete_force(id).await;
            }
            ContainerStatus::Running | ContainerStatus::Paused => {}
        }
        if let Err(e) = self.runc.kill(id, sig).await {
            if self.state(id).await?.status != ContainerStatus::Stopped {
                return Err(e);
            }
        }
        if tokio::time::timeout(grace, self.wait(id)).await.is_ok() {
            return Ok(());
        }
        tracing::info!(
            id,
            ?grace,
            "container did not stop in time; sending SIGKILL"
        );
        if let Err(e) = self.runc.kill(id, libc::SIGKILL).await {
            if self.state(id).await?.status != ContainerStatus::Stopped {
                return Err(e);
            }
        }
        match tokio::time::timeout(Duration::from_secs(30), self.wait(id)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(RuntimeError::Runc {
                op: "kill".into(),
                message: format!("container {id} still running 30s after SIGKILL"),
            }),
        }
    }

    /// `runc delete --force` (kills it if still running), unmounts the rootfs
    /// and removes the bundle, keeping the log files until
    /// [`Runtime::remove_logs`]. Removing an unknown container is fine.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let _turn = self.remove_turns.acquire().await.ok();
        self.runc.delete_force(id).await?;
        self.forget(id).await;
        let dir = self.dir(id);
        blocking(|| {
            // runc removes the cgroup of every hierarchy it knows of; what a
            // killed or failed runc left behind goes here.
            cgroups::remove_leftovers(&cgroups::cgroups_path(id));
            rootfs::unmount_all(&dir.join(ROOTFS))?;
            files::remove(&dir)?;
            remove_bundle(&dir)
        })
    }

    /// Whether the container's exit is already known (no need to ask runc).
    fn exited(&self, id: &str) -> bool {
        lock(&self.tracked)
            .get(id)
            .is_some_and(|t| t.exit.borrow().is_some())
    }

    /// Stops watching a container (after `runc delete`): its log reader ends.
    async fn forget(&self, id: &str) {
        let tracked = lock(&self.tracked).remove(id);
        if let Some(mut t) = tracked {
            if let Some(task) = t.log_task.take() {
                let abort = task.abort_handle();
                // The reader ends by itself once the last writer is gone.
                if tokio::time::timeout(Duration::from_secs(2), task)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            }
        }
    }

    /// Deletes the log files (and what is left of the container's directory).
    pub fn remove_logs(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let dir = self.dir(id);
        if dir.join(CONFIG).exists() {
            // Still a container: only the logs go.
            return logs::remove_log_files(&dir).map_err(|e| {
                RuntimeError::io(format!("removing the logs in {}", dir.display()), e)
            });
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io(format!("removing {}", dir.display()), e)),
        }
    }

    /// The container's root file system as the host sees it (the overlay
    /// mount of a created container).
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.dir(id).join(ROOTFS)
    }

    /// The host paths bind-mounted into the container, from its config.json
    /// (empty when it has none or it cannot be read): how volumes in use are
    /// found, whether the container runs or not.
    pub fn bind_sources(&self, id: &str) -> Vec<PathBuf> {
        let Ok(text) = std::fs::read(self.dir(id).join(CONFIG)) else {
            return vec![];
        };
        let Ok(spec) = serde_json::from_slice::<oci_spec::runtime::Spec>(&text) else {
            return vec![];
        };
        spec.mounts()
            .iter()
            .flatten()
            .filter(|m| m.typ().as_deref() == Some("bind"))
            .filter_map(|m| m.source().clone())
            .collect()
    }

    /// Ids of the containers known on disk (a bundle with config.json) or to
    /// runc, sorted: what to reconcile after a restart.
    pub fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let mut ids = BTreeSet::new();
        let read = |p: &Path| {
            std::fs::read_dir(p)
                .map_err(|e| RuntimeError::io(format!("reading {}", p.display()), e))
        };
        for entry in read(&self.root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_id(&name).is_ok() && entry.path().join(CONFIG).exists() {
                ids.insert(name);
            }
        }
        for entry in read(self.runc.root())?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_id(&name).is_ok() && entry.path().join("state.json").exists() {
                ids.insert(name);
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Runs a process in the container's namespaces and cgroup (`runc exec`).
    /// Without a tty, the [`ExecProcess`] has stdout and stderr pipes (and
    /// stdin when asked); with a tty, a pty master.
    pub async fn exec(&self, id: &str, p: &ExecConfig) -> Result<ExecProcess, RuntimeError> {
        validate_id(id)?;
        match self.runc.state(id).await? {
            None => return Err(RuntimeError::NotFound(id.to_string())),
            Some(s) if s.status != "running" => {
                return Err(RuntimeError::NotRunning(id.to_string()))
            }
            Some(_) => {}
        }
        exec::exec(self, id, p).await
    }

    /// Log lines of a container: the last `tail` (-1 = all) with a timestamp
    /// at or after `since_ns`, then, if `follow`, new ones until the
    /// container's output ends or the receiver is dropped.
    pub fn logs(
        &self,
        id: &str,
        tail: i64,
        since_ns: i64,
        follow: bool,
    ) -> Result<mpsc::Receiver<LogLine>, RuntimeError> {
        validate_id(id)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        let sink = lock(&self.tracked).get(id).and_then(|t| t.sink.clone());
        let (files, live) = match sink {
            Some(s) => s.snapshot(follow),
            None => (logs::open_log_files(&dir), None),
        };
        let (tx, rx) = mpsc::channel(256);
        let task = self
            .handle
            .spawn(logs::serve(files, live, tail, since_ns, tx));
        self.keep_task(task.abort_handle());
        Ok(rx)
    }
}

/// Records the exit of a container and tells the waiters.
fn finish(id: &str, dir: &Path, code: Option<i32>, tx: &watch::Sender<Option<ExitStatus>>) {
    let st = ExitStatus {
        code,
        oom_killed: cgroups::oom_killed(&cgroups::cgroups_path(id)),
    };
    write_exit_file(dir, &st);
    tracing::debug!(id, ?st, "container exited");
    tx.send_replace(Some(st));
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        for (_, t) in lock(&self.tracked).drain() {
            if let Some(task) = t.log_task {
                task.abort();
            }
        }
    }
}
