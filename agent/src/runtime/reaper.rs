//! Exit codes without a shim.
//!
//! The daemon makes itself a child subreaper, so a container's init (and a
//! detached `runc exec` process) is re-parented to it when `runc` returns.
//! One reaper task waits for `SIGCHLD` and then calls
//! `waitid(P_PID, pid, WEXITED|WNOHANG)` for each pid it was told about, and
//! only those: the `runc` commands that tokio spawns are reaped by tokio, and
//! a `waitpid(-1)` here would steal their status. A pid registered after its
//! process already exited is still a zombie child, so registering triggers a
//! scan and nothing is lost.
//!
//! Processes that are not our children (after a daemon restart they were
//! re-parented to init) are watched with a pidfd (`pidfd_open`, readable
//! once the process exits); their exit code cannot be known.
//!
//! Every process the daemon spawns must be waited for by whoever spawned it:
//! an orphan of a double-forking helper would stay a zombie here.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Handle;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, Notify};
use tokio::task::AbortHandle;

use super::runc::Runc;
use super::{lock, RuntimeError};

/// Exit code of a reaped process: the code, 128+N for signal N, None if it
/// turned out not to be our child.
pub(crate) type Reaped = Option<i32>;

#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<i32, oneshot::Sender<Reaped>>>,
    kick: Notify,
}

/// The reaper task and the pids it waits for.
pub(crate) struct Reaper {
    shared: Arc<Shared>,
    task: AbortHandle,
}

impl Reaper {
    /// Makes this process a child subreaper and starts the reaper task.
    pub(super) fn start(handle: &Handle) -> Result<Reaper, RuntimeError> {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| RuntimeError::Unavailable(format!("PR_SET_CHILD_SUBREAPER: {e}")))?;
        let mut sigchld = {
            let _guard = handle.enter();
            signal(SignalKind::child())
                .map_err(|e| RuntimeError::Unavailable(format!("SIGCHLD handler: {e}")))?
        };
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = handle
            .spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        r = sigchld.recv() => if r.is_none() { break },
                        _ = s.kick.notified() => {}
                        _ = tick.tick() => {}
                    }
                    s.scan();
                }
            })
            .abort_handle();
        Ok(Reaper { shared, task })
    }

    /// Waits for the exit of `pid`, a child of this process.
    pub(super) fn register(&self, pid: i32) -> oneshot::Receiver<Reaped> {
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(pid, tx);
        self.shared.kick.notify_one();
        rx
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn scan(&self) {
        let mut pending = lock(&self.pending);
        let mut done = Vec::new();
        for &pid in pending.keys() {
            match waitid(
                Id::Pid(Pid::from_raw(pid)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
            ) {
                Ok(WaitStatus::Exited(_, code)) => done.push((pid, Some(code))),
                Ok(WaitStatus::Signaled(_, sig, _)) => done.push((pid, Some(128 + sig as i32))),
                Ok(_) => {}
                Err(Errno::ECHILD) => done.push((pid, None)),
                Err(_) => {}
            }
        }
        for (pid, code) in done {
            if let Some(tx) = pending.remove(&pid) {
                let _ = tx.send(code);
            }
        }
    }
}

/// Whether `pid` is a child of this process (without reaping it).
pub(crate) fn is_child(pid: i32) -> bool {
    waitid(
        Id::Pid(Pid::from_raw(pid)),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
    )
    .is_ok()
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain system call; a non-negative result is a new descriptor we own.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `r` is a freshly opened descriptor (pidfds are close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Resolves when the container `id`, whose init is `pid` but not our child,
/// has exited: through a pidfd, else by polling `runc state` every second.
pub(crate) async fn wait_foreign(runc: &Runc, id: &str, pid: i32) {
    let alive =
        |st: &Option<super::runc::RuncState>| matches!(st, Some(s) if s.alive() && s.pid == pid);
    if let Ok(fd) = pidfd_open(pid) {
        // The pidfd was opened before this check, so if runc still sees the
        // container with this pid, the pidfd refers to it (not a reused pid).
        match runc.state(id).await {
            Ok(st) if !alive(&st) => return,
            _ => {}
        }
        // SAFETY: the pidfd is owned by the AsyncFd and closed only with it.
        if let Ok(afd) = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            if afd.readable().await.is_ok() {
                return;
            }
        }
    }
    loop {
        match runc.state(id).await {
            Ok(st) if !alive(&st) => return,
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}
