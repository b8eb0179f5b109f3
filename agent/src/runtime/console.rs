//! runc's console socket: for a tty container or exec, runc creates the pty
//! inside the container and sends its master over a unix socket
//! (`--console-socket`) as an `SCM_RIGHTS` message; this receives it.

use std::future::Future;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::{UnixListener, UnixStream};

use super::RuntimeError;

/// A listening console socket; the file goes with it.
pub(crate) struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Binds a fresh socket in `dir` (or the temp dir when that path would
    /// be too long for a unix socket address).
    pub(super) fn bind(dir: &Path, seq: u64) -> std::io::Result<ConsoleSocket> {
        let name = format!("console-{}-{seq}.sock", std::process::id());
        let mut path = dir.join(&name);
        if path.as_os_str().len() > 100 {
            path = std::env::temp_dir().join(format!("rswarm-{name}"));
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket { listener, path })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts runc's connection and receives the pty master.
    pub(super) async fn receive(&self) -> std::io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept().await?;
        recv_fd(&stream).await
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn recv_fd(stream: &UnixStream) -> std::io::Result<OwnedFd> {
    loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || recv_fd_once(stream.as_raw_fd())) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

fn recv_fd_once(sock: RawFd) -> std::io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(list) = c {
            fds.extend(list);
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "console socket closed without a pty",
        ));
    }
    let mut owned: Vec<OwnedFd> = fds
        .into_iter()
        // SAFETY: descriptors received with SCM_RIGHTS are new and ours.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    if owned.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "console socket message without a descriptor",
        ));
    }
    Ok(owned.remove(0))
}

/// Runs `op` (a `runc create` or `runc exec` given this console socket) and
/// receives the pty master it sends.
pub(crate) async fn with_console<F>(console: &ConsoleSocket, op: F) -> Result<OwnedFd, RuntimeError>
where
    F: Future<Output = Result<(), RuntimeError>>,
{
    let recv = console.receive();
    tokio::pin!(recv);
    tokio::pin!(op);
    let mut master = None;
    let res = loop {
        tokio::select! {
            r = &mut op => break r,
            m = &mut recv, if master.is_none() => master = Some(m),
        }
    };
    res?;
    let master = match master {
        Some(m) => m,
        None => match tokio::time::timeout(Duration::from_secs(10), &mut recv).await {
            Ok(m) => m,
            Err(_) => {
                return Err(RuntimeError::Runc {
                    op: "console".into(),
                    message: "runc sent no pty master".into(),
                })
            }
        },
    };
    master.map_err(|e| RuntimeError::io("receiving the pty master", e))
}
