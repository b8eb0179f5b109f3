//! Container output: FIFOs as stdout/stderr, one reader task per container,
//! timestamped lines in `<bundle>/log.jsonl`.
//!
//! The container gets each FIFO opened `O_RDWR`: its side always counts as a
//! reader too, so a write never fails with `EPIPE`/`SIGPIPE`, even while the
//! daemon is down; then output waits in the pipe buffer (raised to 1 MiB when
//! the kernel allows, else 64 KiB) and beyond that the container blocks in
//! `write(2)` until a daemon reads again. The daemon opens the read side
//! `O_RDONLY|O_NONBLOCK` and sees end-of-file once the last process holding
//! the write side (the container's) is gone. A tty container's output is read
//! from the pty master instead (`EIO` once the terminal is gone).
//!
//! Each line becomes `{"ts":<ns since epoch>,"stream":1|2,"log":"<text>"}` in
//! `log.jsonl` (the text lossily UTF-8, like Docker's json-file; the newline
//! is kept; lines over 16 KiB are split). At 10 MiB the file is renamed
//! `log.jsonl.1` (replacing the older one) and a new one started, so a
//! container keeps at most about 20 MiB of logs. Followers get new lines
//! through a broadcast channel; a follower more than 1024 lines behind skips
//! the lines it missed.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::runc::ChildStdio;
use super::{lock, LogLine};

pub(crate) const LOG_FILE: &str = "log.jsonl";
pub(crate) const LOG_FILE_OLD: &str = "log.jsonl.1";
const STDIN_FIFO: &str = "stdin.fifo";
const STDOUT_FIFO: &str = "stdout.fifo";
const STDERR_FIFO: &str = "stderr.fifo";
/// Size at which log.jsonl is rotated.
pub(crate) const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;
/// Longest line kept whole.
const MAX_LINE: usize = 16 * 1024;
/// Pipe buffer asked for, so output survives a longer daemon downtime.
const PIPE_SIZE: i32 = 1 << 20;

pub(crate) fn is_log_file(name: &OsStr) -> bool {
    name == OsStr::new(LOG_FILE) || name == OsStr::new(LOG_FILE_OLD)
}

#[derive(Serialize, Deserialize)]
struct Record {
    ts: i64,
    stream: u8,
    log: String,
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The container's side of its stdio and the daemon's readers.
pub(crate) struct ContainerStdio {
    /// (stream, read side) for the log reader; empty for a tty container.
    pub readers: Vec<(u8, OwnedFd)>,
    /// What `runc create` passes on to the container.
    pub child: ChildStdio,
}

fn make_fifo(path: &Path) -> std::io::Result<()> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn open_fifo_reader(path: &Path) -> std::io::Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    Ok(f.into())
}

fn open_fifo_rdwr(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    let _ = fcntl(f.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok(f)
}

impl ContainerStdio {
    /// Makes the FIFOs in `dir` and opens both sides.
    pub(super) fn prepare(dir: &Path, tty: bool, open_stdin: bool) -> std::io::Result<Self> {
        let null = || File::options().read(true).write(true).open("/dev/null");
        if tty {
            // runc gives a tty container the pty; its own stdio only carries
            // runc's messages, which also go to runc.log.
            return Ok(ContainerStdio {
                readers: Vec::new(),
                child: ChildStdio {
                    stdin: Stdio::from(null()?),
                    stdout: Stdio::from(null()?),
                    stderr: Stdio::from(null()?),
                },
            });
        }
        let stdin = if open_stdin {
            let p = dir.join(STDIN_FIFO);
            make_fifo(&p)?;
            // Read-write: reads block (no data ever comes) instead of EOF.
            Stdio::from(open_fifo_rdwr(&p)?)
        } else {
            Stdio::from(null()?)
        };
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for (stream, name) in [(1u8, STDOUT_FIFO), (2u8, STDERR_FIFO)] {
            let p = dir.join(name);
            make_fifo(&p)?;
            readers.push((stream, open_fifo_reader(&p)?));
            writers.push(open_fifo_rdwr(&p)?);
        }
        let stderr = writers.pop().map(Stdio::from).unwrap_or_else(Stdio::null);
        let stdout = writers.pop().map(Stdio::from).unwrap_or_else(Stdio::null);
        Ok(ContainerStdio {
            readers,
            child: ChildStdio {
                stdin,
                stdout,
                stderr,
            },
        })
    }
}

/// Live restore: the read sides of a running container's FIFOs.
pub(crate) fn reopen_fifos(dir: &Path) -> std::io::Result<Vec<(u8, OwnedFd)>> {
    Ok(vec![
        (1, open_fifo_reader(&dir.join(STDOUT_FIFO))?),
        (2, open_fifo_reader(&dir.join(STDERR_FIFO))?),
    ])
}

/// The log file of one container and its live followers.
pub(crate) struct LogSink {
    dir: PathBuf,
    inner: Mutex<SinkInner>,
}

struct SinkInner {
    file: Option<File>,
    size: u64,
    /// None once the container's output has ended.
    tx: Option<broadcast::Sender<LogLine>>,
    warned: bool,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

impl LogSink {
    pub(super) fn open(dir: &Path) -> std::io::Result<Arc<LogSink>> {
        let file = open_append(&dir.join(LOG_FILE))?;
        let size = file.metadata()?.len();
        let (tx, _) = broadcast::channel(1024);
        Ok(Arc::new(LogSink {
            dir: dir.to_path_buf(),
            inner: Mutex::new(SinkInner {
                file: Some(file),
                size,
                tx: Some(tx),
                warned: false,
            }),
        }))
    }

    fn write(&self, line: LogLine) {
        let rec = Record {
            ts: line.timestamp_ns,
            stream: line.stream,
            log: String::from_utf8_lossy(&line.data).into_owned(),
        };
        let mut bytes = match serde_json::to_vec(&rec) {
            Ok(b) => b,
            Err(_) => return,
        };
        bytes.push(b'\n');
        let mut g = lock(&self.inner);
        if g.size > 0 && g.size + bytes.len() as u64 > MAX_LOG_BYTES {
            let cur = self.dir.join(LOG_FILE);
            let res =
                std::fs::rename(&cur, self.dir.join(LOG_FILE_OLD)).and_then(|_| open_append(&cur));
            match res {
                Ok(f) => {
                    g.file = Some(f);
                    g.size = 0;
                }
                Err(e) => {
                    if !g.warned {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot rotate container log");
                        g.warned = true;
                    }
                }
            }
        }
        if let Some(f) = g.file.as_mut() {
            match f.write_all(&bytes) {
                Ok(()) => g.size += bytes.len() as u64,
                Err(e) => {
                    if !g.warned {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write container log");
                        g.warned = true;
                    }
                }
            }
        }
        if let Some(tx) = &g.tx {
            let _ = tx.send(line);
        }
    }

    /// The output has ended: followers finish.
    fn close(&self) {
        lock(&self.inner).tx = None;
    }

    /// The log files as they are now (each with the length to read up to) and,
    /// if `follow`, a subscription to the lines written after that point.
    pub(super) fn snapshot(
        &self,
        follow: bool,
    ) -> (Vec<(File, u64)>, Option<broadcast::Receiver<LogLine>>) {
        let g = lock(&self.inner);
        let files = open_log_files(&self.dir);
        let sub = if follow {
            g.tx.as_ref().map(|tx| tx.subscribe())
        } else {
            None
        };
        (files, sub)
    }
}

/// log.jsonl.1 then log.jsonl, with their current lengths.
pub(crate) fn open_log_files(dir: &Path) -> Vec<(File, u64)> {
    [LOG_FILE_OLD, LOG_FILE]
        .iter()
        .filter_map(|name| {
            let f = File::open(dir.join(name)).ok()?;
            let len = f.metadata().ok()?.len();
            Some((f, len))
        })
        .collect()
}

/// Reads the lines of `files` with a timestamp ≥ `since_ns`, keeping the
/// last `tail` (all when negative).
pub(crate) fn read_history(files: Vec<(File, u64)>, tail: i64, since_ns: i64) -> Vec<LogLine> {
    let mut out = VecDeque::new();
    if tail == 0 {
        return Vec::new();
    }
    for (f, len) in files {
        for line in BufReader::new(f.take(len)).split(b'\n') {
            let Ok(line) = line else { break };
            let Ok(rec) = serde_json::from_slice::<Record>(&line) else {
                continue;
            };
            if rec.ts < since_ns {
                continue;
            }
            out.push_back(LogLine {
                timestamp_ns: rec.ts,
                stream: rec.stream,
                data: rec.log.into_bytes(),
            });
            if tail > 0 && out.len() > tail as usize {
                out.pop_front();
            }
        }
    }
    out.into()
}

/// Sends the history, then (with a subscription) the live lines.
pub(crate) async fn serve(
    files: Vec<(File, u64)>,
    live: Option<broadcast::Receiver<LogLine>>,
    tail: i64,
    since_ns: i64,
    tx: mpsc::Sender<LogLine>,
) {
    let history = tokio::task::spawn_blocking(move || read_history(files, tail, since_ns))
        .await
        .unwrap_or_default();
    for l in history {
        if tx.send(l).await.is_err() {
            return;
        }
    }
    let Some(mut live) = live else { return };
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            r = live.recv() => match r {
                Ok(l) => {
                    if l.timestamp_ns >= since_ns && tx.send(l).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "log follower fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Starts the container's log reader: one task pumping every source into
/// the sink until all of them end.
pub(crate) fn spawn_reader(
    handle: &Handle,
    sink: Arc<LogSink>,
    sources: Vec<(u8, OwnedFd)>,
) -> JoinHandle<()> {
    handle.spawn(async move {
        let mut it = sources.into_iter();
        let (a, b) = (it.next(), it.next());
        tokio::join!(pump_opt(&sink, a), pump_opt(&sink, b));
        sink.close();
    })
}

async fn pump_opt(sink: &LogSink, src: Option<(u8, OwnedFd)>) {
    if let Some((stream, fd)) = src {
        pump(sink, stream, fd).await;
    }
}

async fn pump(sink: &LogSink, stream: u8, fd: OwnedFd) {
    if let Ok(fl) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
        );
    }
    let mut rx = match pipe::Receiver::from_owned_fd_unchecked(fd) {
        Ok(rx) => rx,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read container output");
            return;
        }
    };
    let mut buf = vec![0u8; 8 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        match rx.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                partial.extend_from_slice(&buf[..n]);
                emit_lines(sink, stream, &mut partial);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: the pty is gone.
            Err(_) => break,
        }
    }
    if !partial.is_empty() {
        sink.write(LogLine {
            timestamp_ns: now_ns(),
            stream,
            data: partial,
        });
    }
}

/// Writes the complete lines of `partial` (and over-long pieces) and keeps
/// the rest.
fn emit_lines(sink: &LogSink, stream: u8, partial: &mut Vec<u8>) {
    let ts = now_ns();
    let mut start = 0;
    while let Some(pos) = partial[start..].iter().position(|&b| b == b'\n') {
        let end = start + pos + 1;
        let mut s = start;
        while end - s > MAX_LINE {
            sink.write(LogLine {
                timestamp_ns: ts,
                stream,
                data: partial[s..s + MAX_LINE].to_vec(),
            });
            s += MAX_LINE;
        }
        sink.write(LogLine {
            timestamp_ns: ts,
            stream,
            data: partial[s..end].to_vec(),
        });
        start = end;
    }
    partial.drain(..start);
    while partial.len() >= MAX_LINE {
        let chunk: Vec<u8> = partial.drain(..MAX_LINE).collect();
        sink.write(LogLine {
            timestamp_ns: ts,
            stream,
            data: chunk,
        });
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn rotation_and_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LogSink::open(dir.path()).expect("sink");
        let big = vec![b'x'; 1000];
        let n = (MAX_LOG_BYTES / 1000) as usize + 10;
        for i in 0..n {
            sink.write(LogLine {
                timestamp_ns: i as i64,
                stream: 1,
                data: big.clone(),
            });
        }
        assert!(dir.path().join(LOG_FILE_OLD).exists());
        let size = std::fs::metadata(dir.path().join(LOG_FILE))
            .expect("log")
            .len();
        assert!(size < MAX_LOG_BYTES);
        let lines = read_history(open_log_files(dir.path()), 5, 0);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[4].timestamp_ns, n as i64 - 1);
        let since = read_history(open_log_files(dir.path()), -1, n as i64 - 3);
        assert_eq!(since.len(), 3);
    }

    #[test]
    fn line_splitting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LogSink::open(dir.path()).expect("sink");
        let mut partial = b"a\nbb\nccc".to_vec();
        emit_lines(&sink, 2, &mut partial);
        assert_eq!(partial, b"ccc");
        let mut long = vec![b'y'; MAX_LINE * 2 + 5];
        long.push(b'\n');
        emit_lines(&sink, 1, &mut long);
        assert!(long.is_empty());
        let lines = read_history(open_log_files(dir.path()), -1, 0);
        let data: Vec<Vec<u8>> = lines.iter().map(|l| l.data.clone()).collect();
        assert_eq!(data[0], b"a\n");
        assert_eq!(data[1], b"bb\n");
        assert_eq!(lines[0].stream, 2);
        assert_eq!(data[2].len(), MAX_LINE);
        assert_eq!(data[3].len(), MAX_LINE);
        assert_eq!(data[4].len(), 6);
    }
}
