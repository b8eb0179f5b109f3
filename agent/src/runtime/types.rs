//! The runtime's vocabulary: what a container is made from
//! (`ContainerConfig`, its mounts, an exec), what the runtime reports
//! (state, exit status, log lines, what is kept of the output) and how it fails (`RuntimeError`).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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

    /// A failed system call or file operation, with what was being done.
    pub(super) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
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
    /// Secret and config files, on a tmpfs of the container's own and
    /// bind-mounted read-only at their targets (after `mounts`).
    pub files: Vec<ContainerFile>,
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
    /// What is kept of the container's output (logs.rs).
    pub log: LogPolicy,
}

/// What is kept of a container's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogPolicy {
    /// Lines in `log.jsonl`, rotated before it would pass `max_size` bytes;
    /// `max_files` files kept in total (`log.jsonl`, `log.jsonl.1`, …), the
    /// rotated ones gzipped with `compress` (`log.jsonl.1.gz`, …).
    Files {
        max_size: u64,
        max_files: u32,
        #[serde(default)]
        compress: bool,
    },
    /// Output read and dropped: nothing kept, nothing to read back.
    Discard,
}

impl Default for LogPolicy {
    /// 10 MiB × 2 files, uncompressed.
    fn default() -> Self {
        LogPolicy::Files {
            max_size: 10 * 1024 * 1024,
            max_files: 2,
            compress: false,
        }
    }
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

/// A secret's or config's file in a container. Its value never shows in
/// `Debug` output (only its length).
#[derive(Clone, Default)]
pub struct ContainerFile {
    /// Absolute path in the container.
    pub target: String,
    pub data: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (within 0777).
    pub mode: u32,
}

impl std::fmt::Debug for ContainerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerFile")
            .field("target", &self.target)
            .field("bytes", &self.data.len())
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
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
