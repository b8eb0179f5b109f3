//! Network namespaces: creating them as bind-mounted files, removing them,
//! and running code inside one without disturbing the caller.
//!
//! # How a namespace is made persistent
//!
//! A helper thread calls `unshare(CLONE_NEWNET)` (only that thread moves),
//! bind-mounts `/proc/thread-self/ns/net` onto an empty file (the same thing
//! `ip netns add` does under `/run/netns`), and exits. The mount keeps the
//! namespace alive; anything that can open a path (runc's
//! `linux.namespaces[].path`, `nsenter --net=PATH`, `setns(2)`) can join it. A
//! namespace file is "live" when `statfs` reports `NSFS_MAGIC` for it; after a
//! reboot the empty file stays behind and is simply replaced.
//!
//! # How the daemon drives devices in other namespaces
//!
//! A netlink socket belongs to the namespace of the thread that created it, for
//! its whole life. [`run_in`] switches a *fresh, short-lived* thread into the
//! target namespace with `setns(2)`, runs a closure there and joins it; the
//! daemon's own threads (including tokio's workers) never change namespace.
//! [`crate::links::Netlink::open`] uses it to create a netlink socket in a
//! sandbox or task namespace and then drives that socket from the caller's
//! async runtime, so one process in the host namespace programs any number of
//! namespaces concurrently.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Open the network namespace of the calling thread (not of the process:
/// `/proc/thread-self`, so a daemon thread that was switched on purpose, as the
/// tests do, is honoured).
pub(crate) fn current() -> io::Result<OwnedFd> {
    open("/proc/thread-self/ns/net".as_ref())
}

/// Open a namespace file (a bind mount made by [`create_at`], or `/proc/PID/ns/net`).
pub(crate) fn open(path: &Path) -> io::Result<OwnedFd> {
    let file = OpenOptions::new().read(true).open(path)?;
    Ok(OwnedFd::from(file))
}

/// Whether `path` is a live namespace bind mount.
pub(crate) fn is_live(path: &Path) -> bool {
    match nix::sys::statfs::statfs(path) {
        Ok(st) => st.filesystem_type() == nix::sys::statfs::NSFS_MAGIC,
        Err(_) => false,
    }
}

/// Run `f` on a new thread switched into the network namespace `ns`, and wait
/// for it. The tokio runtime of the caller (if any) is entered on that thread,
/// so `f` may create tokio sockets with `from_std`.
pub(crate) fn run_in<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let rt = tokio::runtime::Handle::try_current().ok();
    std::thread::scope(|s| {
        let worker = s.spawn(move || -> io::Result<T> {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            let _guard = rt.as_ref().map(|h| h.enter());
            Ok(f())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Create a new network namespace and bind-mount it at `path` (an empty file
/// is created if needed). If `path` already holds a live namespace, nothing is
/// done. Returns whether a namespace was created.
pub(crate) fn create_at(path: &Path) -> io::Result<bool> {
    if is_live(path) {
        return Ok(false);
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let result = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result.map(|()| true)
}

/// Unmount a namespace file and delete it. Missing or already unmounted files
/// are fine. The namespace itself goes away once no process, mount or open fd
/// refers to it any more.
pub(crate) fn remove_at(path: &Path) -> io::Result<()> {
    // Lazy unmount: an fd someone still holds keeps working, the path goes.
    while is_live(path) {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => break,
            Err(e) => return Err(e.into()),
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
