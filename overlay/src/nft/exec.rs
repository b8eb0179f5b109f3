//! Running `nft` and touching sysctls inside a network namespace.
//!
//! `nft` is forked with `setns(fd, CLONE_NEWNET)` in `pre_exec`: only the
//! child enters the namespace. Sysctls are written by a short-lived thread
//! that `setns`es first (`/proc/sys/net` shows the namespace of the thread
//! that opens it); the caller's threads never move.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nftables::schema::Nftables;

use super::NftError;

/// The `nft` program, looked up in `PATH`.
const NFT: &str = "nft";

fn open_netns(netns: &Path) -> Result<File, NftError> {
    File::open(netns).map_err(|source| NftError::Namespace {
        path: netns.to_path_buf(),
        source,
    })
}

/// Apply `ruleset` (one transaction) in `netns`.
pub(crate) fn apply(netns: &Path, ruleset: &Nftables<'_>, what: &str) -> Result<(), NftError> {
    let json = serde_json::to_string(ruleset)?;
    tracing::debug!(netns = %netns.display(), what, "nft -j -f -: {json}");
    run(
        netns,
        &["-j", "-f", "-"],
        Some(json.as_bytes()),
        &format!("apply {what}"),
    )?;
    Ok(())
}

/// Run `nft ARGS` inside `netns`, `stdin` fed to it; its stdout on success.
pub(crate) fn run(
    netns: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
    action: &str,
) -> Result<String, NftError> {
    let ns = open_netns(netns)?;
    let ns_fd = ns.as_raw_fd();
    let mut cmd = Command::new(NFT);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the child only makes the setns(2) system
    // call (async-signal-safe) on a descriptor the parent keeps open until
    // after the spawn, and reads errno.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(NftError::NftMissing(err)),
        // Also what the pre_exec hook returns when setns(2) fails (e.g. EINVAL:
        // the file is not a network namespace).
        Err(source) => {
            return Err(NftError::Io {
                context: format!("entering {} and starting nft", netns.display()),
                source,
            })
        }
    };
    drop(ns);

    let mut out = Vec::new();
    let mut err = Vec::new();
    let stdin_pipe = child.stdin.take();
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let (write_res, read_out, read_err) = std::thread::scope(|s| {
        let writer = s.spawn(move || -> io::Result<()> {
            if let (Some(mut pipe), Some(data)) = (stdin_pipe, stdin) {
                match pipe.write_all(data) {
                    // nft stopped reading: its stderr will tell why.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                    other => other?,
                }
            }
            Ok(())
        });
        let err_reader = s.spawn(|| match stderr_pipe.as_mut() {
            Some(p) => p.read_to_end(&mut err).map(|_| ()),
            None => Ok(()),
        });
        let read_out = match stdout_pipe.as_mut() {
            Some(p) => p.read_to_end(&mut out).map(|_| ()),
            None => Ok(()),
        };
        let write_res = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("stdin writer panicked")));
        let read_err = err_reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("stderr reader panicked")));
        (write_res, read_out, read_err)
    });
    let status = child.wait().map_err(|source| NftError::Io {
        context: format!("waiting for nft ({action})"),
        source,
    })?;
    for (res, what) in [
        (write_res, "writing to nft's stdin"),
        (read_out, "reading nft's stdout"),
        (read_err, "reading nft's stderr"),
    ] {
        res.map_err(|source| NftError::Io {
            context: format!("{what} ({action})"),
            source,
        })?;
    }
    if !status.success() {
        return Err(NftError::Nft {
            action: action.to_string(),
            netns: netns.to_path_buf(),
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&err).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Run `f` on a fresh thread switched into `netns`.
fn in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> Result<io::Result<T>, NftError> {
    let ns = open_netns(netns)?;
    std::thread::scope(|s| {
        let worker = s.spawn(|| -> Result<io::Result<T>, NftError> {
            // SAFETY: setns(2) on this (scoped, short-lived) thread only; the
            // descriptor outlives the call.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(NftError::Namespace {
                    path: netns.to_path_buf(),
                    source: io::Error::last_os_error(),
                });
            }
            Ok(f())
        });
        worker.join().unwrap_or_else(|_| {
            Err(NftError::Io {
                context: "namespace thread".into(),
                source: io::Error::other("panicked"),
            })
        })
    })
}

/// Read `/proc/sys/<key>` inside `netns` (`key` like `net/ipv4/ip_forward`).
pub(crate) fn read_sysctl(netns: &Path, key: &str) -> Result<String, NftError> {
    let path = format!("/proc/sys/{key}");
    in_netns(netns, || std::fs::read_to_string(&path))?.map_err(|source| NftError::Io {
        context: format!("reading {path} in {}", netns.display()),
        source,
    })
}

/// Set `/proc/sys/<key>` to `value` inside `netns` unless it already is.
pub(crate) fn ensure_sysctl(netns: &Path, key: &str, value: &str) -> Result<(), NftError> {
    let path = format!("/proc/sys/{key}");
    in_netns(netns, || {
        if std::fs::read_to_string(&path)?.trim() != value {
            std::fs::write(&path, value)?;
        }
        Ok(())
    })?
    .map_err(|source| NftError::Io {
        context: format!("setting {path} to {value} in {}", netns.display()),
        source,
    })
}
