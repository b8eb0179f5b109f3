//! The manager's TCP listener. Every accepted connection is tracked so that
//! stopping the manager (demotion, leaving, `--force-new-cluster`) cuts them
//! all: a connection left open would keep the old services, and with them
//! the Raft store and its files, alive for as long as the peer stays.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The open connections of one listener.
#[derive(Default)]
pub(crate) struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, RawFd>>,
}

impl Connections {
    /// Track an accepted connection.
    pub(crate) fn track(self: &Arc<Self>, stream: TcpStream) -> TrackedStream {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, stream.as_raw_fd());
        }
        TrackedStream {
            inner: stream,
            id,
            owner: self.clone(),
        }
    }

    /// Shut every open connection down (both directions): pending reads end,
    /// the server drops the connection and what it held.
    pub(crate) fn cut_all(&self) {
        if let Ok(open) = self.open.lock() {
            for fd in open.values() {
                // SAFETY: the fd belongs to a live TrackedStream: it is removed
                // from this map (under this lock) before its socket is closed.
                unsafe {
                    libc::shutdown(*fd, libc::SHUT_RDWR);
                }
            }
        }
    }
}

/// An accepted connection that unregisters itself when dropped.
pub(crate) struct TrackedStream {
    inner: TcpStream,
    id: u64,
    owner: Arc<Connections>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        // Runs before `inner` is dropped (and its fd closed).
        if let Ok(mut open) = self.owner.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Connected for TrackedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
