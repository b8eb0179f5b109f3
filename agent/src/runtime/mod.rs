//! The container runtime: every task is an OCI bundle run by `runc`, with no
//! helper process per container, and running containers survive a restart of
//! the daemon (live restore).
//!
//! # On disk
//!
//! ```text
//! <data-dir>/containers/<id>/   the bundle
//!     config.json               OCI runtime spec (spec.rs)
//!     rootfs/                   overlayfs mount: lowerdirs = image layers, upper/ + work/ per container
//!     upper/ work/
//!     hostname hosts resolv.conf  bind-mounted (writable) on /etc/… in the container
//!     stdout.fifo stderr.fifo   the container's stdout/stderr (not for tty containers)
//!     stdin.fifo                only with `open_stdin`
//!     log.jsonl log.jsonl.1     timestamped log lines, rotated at 10 MiB (logs.rs)
//!     meta.json                 what live restore needs (tty or not)
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

mod cgroups;
mod console;
mod exec;
mod init;
mod logs;
mod reaper;
mod rootfs;
mod runc;
mod spec;

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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};

use logs::LogSink;
use reaper::Reaper;
use runc::Runc;

/// What went wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Neither the data dir nor runc knows this container.
    #[error("no such container: {0}")]
    NotFound(String),
    /// A container with this id exists already.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// The operation needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The configuration cannot be run (bad id, user, mount, capability…).
    #[error("invalid container config: {0}")]
    InvalidConfig(String),
    /// `runc` failed; `message` is its own error text.
    #[error("runc {op} failed: {message}")]
    Runc { op: String, message: String },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The runtime cannot work here (no tokio runtime, no subreaper, …).
    #[error("container runtime unavailable: {0}")]
    Unavailable(String),
}

impl RuntimeError {
    /// The container is unknown.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound(_))
    }

    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Everything needed to create a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    /// Container id (the lead uses the task id): `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 bytes.
    pub id: String,
    /// Unpacked image layers, base first (ready for overlayfs; whiteouts already converted).
    pub layers: Vec<PathBuf>,
    /// The process: argv (required), environment (`K=V`), working directory ("" = "/").
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// "", "uid", "uid:gid", "name", "name:group" (names resolved from the image's
    /// /etc/passwd and /etc/group); "" is root.
    pub user: String,
    /// Supplementary groups, names or numbers.
    pub groups: Vec<String>,
    /// "" means the first 12 characters of the id.
    pub hostname: String,
    pub mounts: Vec<MountConfig>,
    pub read_only_rootfs: bool,
    pub tty: bool,
    pub open_stdin: bool,
    /// CPU limit in billionths of a CPU (0 = unlimited).
    pub nano_cpus: i64,
    /// Memory limit in bytes, swap included (0 = unlimited).
    pub memory_bytes: i64,
    /// Maximum number of processes (0 = unlimited).
    pub pids_limit: i64,
    /// (name, soft, hard), names as in Docker: "nofile", "nproc", "core", …
    pub ulimits: Vec<(String, u64, u64)>,
    pub sysctls: HashMap<String, String>,
    /// Applied to Docker's default capability set; names with or without `CAP_`, or "ALL".
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// Run a tiny init as PID 1 (see [`container_init_main`]).
    pub init: bool,
    /// Extra /etc/hosts entries (ip, names).
    pub hosts: Vec<(String, Vec<String>)>,
    /// Contents of /etc/resolv.conf, written as given.
    pub resolv_conf: String,
    /// Network namespace to join; None = a new one with only loopback.
    pub netns: Option<PathBuf>,
    /// Stored as OCI annotations.
    pub labels: HashMap<String, String>,
}

/// The kind of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountKind {
    /// Bind mount of the host path `source`.
    #[default]
    Bind,
    /// A volume: `source` is the host directory prepared for it (bind-mounted).
    Volume,
    /// A tmpfs (`source` unused).
    Tmpfs,
}

/// One mount in a container.
#[derive(Debug, Clone, Default)]
pub struct MountConfig {
    pub kind: MountKind,
    /// Host path (bind, volume).
    pub source: PathBuf,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
    /// tmpfs size in bytes (0 = the kernel's default, half of RAM).
    pub tmpfs_size: i64,
    /// tmpfs mode (0 = 1777).
    pub tmpfs_mode: u32,
}

/// A process to run in a running container.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// Added to (and overriding) the container's environment.
    pub env: Vec<String>,
    /// "" = the container's user.
    pub user: String,
    /// "" = the container's working directory.
    pub cwd: String,
    pub tty: bool,
    pub stdin: bool,
}

/// One line of a container's output. `data` keeps its trailing newline; a
/// line longer than 16 KiB is split into several, and a last line without a
/// newline is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub timestamp_ns: i64,
    /// 1 stdout, 2 stderr (a tty container's output is all stdout).
    pub stream: u8,
    pub data: Vec<u8>,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, 128+N when killed by signal N; None when it exited while
    /// this process was not its reaper (across a daemon restart).
    pub code: Option<i32>,
    /// The kernel's OOM killer killed a process in the container's cgroup.
    pub oom_killed: bool,
}

/// runc's view of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    Created,
    Running,
    Paused,
    Stopped,
}

/// State of a container: status and host pid of its init (0 once stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerState {
    pub status: ContainerStatus,
    pub pid: u32,
}

// File names inside a bundle.
const CONFIG: &str = "config.json";
const ROOTFS: &str = "rootfs";
const UPPER: &str = "upper";
const WORK: &str = "work";
const EMPTY_LOWER: &str = "empty";
const META: &str = "meta.json";
const EXIT: &str = "exit.json";
const PID_FILE: &str = "init.pid";
const RUNC_LOG: &str = "runc.log";

/// What live restore needs to know about a container.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    tty: bool,
    open_stdin: bool,
}

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

fn read_exit_file(dir: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(dir.join(EXIT)).ok()?;
    serde_json::from_slice(&data).ok()
}

fn write_exit_file(dir: &Path, st: &ExitStatus) {
    if !dir.join(CONFIG).exists() {
        return; // removed meanwhile
    }
    if let Ok(data) = serde_json::to_vec(st) {
        if let Err(e) = std::fs::write(dir.join(EXIT), data) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot record exit status");
        }
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
                    let sink = LogSink::open(&dir)?;
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
        })
        .map_err(|e| RuntimeError::InvalidConfig(format!("encoding meta.json: {e}")))?;
        std::fs::write(dir.join(META), meta).map_err(|e| io("writing", &dir.join(META), e))?;

        let stdio = logs::ContainerStdio::prepare(dir, cfg.tty, cfg.open_stdin)
            .map_err(|e| io("creating log pipes in", dir, e))?;
        let sink = LogSink::open(dir).map_err(|e| io("opening log in", dir, e))?;
        let _ = std::fs::remove_file(dir.join(RUNC_LOG));
        // config.json last: its presence marks a complete bundle.
        // 0600 whatever the umask: it holds the task's environment.
        write_private(&dir.join(CONFIG), &json).map_err(|e| io("writing", &dir.join(CONFIG), e))?;
        Ok((stdio, sink))
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
            for f in [logs::LOG_FILE, logs::LOG_FILE_OLD] {
                match std::fs::remove_file(dir.join(f)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(RuntimeError::io(format!("removing {f}"), e)),
                }
            }
            return Ok(());
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io(format!("removing {}", dir.display()), e)),
        }
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

/// Removes a container's bundle directory but its log files. Blocking.
fn remove_bundle(dir: &Path) -> Result<(), RuntimeError> {
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

fn read_pid(path: &Path) -> Result<i32, RuntimeError> {
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
