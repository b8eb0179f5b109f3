//! Container output: FIFOs as stdout/stderr, one reader task per container,
//! timestamped lines in `<bundle>/log.jsonl` kept as the container's
//! [`LogPolicy`] says.
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
//! is kept; lines over 16 KiB are split). Before a line would take the file
//! past the policy's `max_size`, the files shift (`log.jsonl.N-2` becomes
//! `log.jsonl.N-1`, the oldest dropped, …, `log.jsonl` becomes
//! `log.jsonl.1`) and a new `log.jsonl` starts, so `max_files` files are kept
//! in total (with one file, it starts over empty); the default keeps 10 MiB
//! × 2. The files are 0600 (task output may hold secrets). With
//! [`LogPolicy::Discard`] the output is still read (the container never
//! blocks on a full pipe) and dropped. History is read oldest file first.
//! Followers get new lines through a broadcast channel; a follower more than
//! 1024 lines behind skips the lines it missed.

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
use super::{lock, set_mode, LogLine, LogPolicy};

pub(crate) const LOG_FILE: &str = "log.jsonl";
const STDIN_FIFO: &str = "stdin.fifo";
const STDOUT_FIFO: &str = "stdout.fifo";
const STDERR_FIFO: &str = "stderr.fifo";
/// Longest line kept whole.
const MAX_LINE: usize = 16 * 1024;
/// Pipe buffer asked for, so output survives a longer daemon downtime.
const PIPE_SIZE: i32 = 1 << 20;

/// `log.jsonl` (0) or a rotated `log.jsonl.N`: its number.
fn log_file_index(name: &OsStr) -> Option<u32> {
    let name = name.to_str()?;
    if name == LOG_FILE {
        return Some(0);
    }
    let n = name.strip_prefix(LOG_FILE)?.strip_prefix('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
        return None;
    }
    n.parse().ok()
}

pub(crate) fn is_log_file(name: &OsStr) -> bool {
    log_file_index(name).is_some()
}

/// The log files in `dir`, oldest first (`log.jsonl.N` … `log.jsonl`).
fn log_file_names(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((log_file_index(&e.file_name())?, e.path())))
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Removes every log file of `dir`.
pub(crate) fn remove_log_files(dir: &Path) -> std::io::Result<()> {
    for p in log_file_names(dir) {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

/// The log files of one container and its live followers.
pub(crate) struct LogSink {
    dir: PathBuf,
    policy: LogPolicy,
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
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    // Exactly 0600, also for a file an older daemon made 0640.
    set_mode(path, 0o600)?;
    Ok(f)
}

fn rotated(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{LOG_FILE}.{n}"))
}

impl LogSink {
    pub(super) fn open(dir: &Path, policy: LogPolicy) -> std::io::Result<Arc<LogSink>> {
        let (file, size) = match policy {
            LogPolicy::Files { .. } => {
                let file = open_append(&dir.join(LOG_FILE))?;
                let size = file.metadata()?.len();
                (Some(file), size)
            }
            LogPolicy::Discard => (None, 0),
        };
        let (tx, _) = broadcast::channel(1024);
        Ok(Arc::new(LogSink {
            dir: dir.to_path_buf(),
            policy,
            inner: Mutex::new(SinkInner {
                file,
                size,
                tx: Some(tx),
                warned: false,
            }),
        }))
    }

    /// Shifts the files by one (the oldest kept one dropped) and opens a new,
    /// empty `log.jsonl`.
    fn rotate(&self, max_files: u32) -> std::io::Result<File> {
        let cur = self.dir.join(LOG_FILE);
        if max_files <= 1 {
            std::fs::remove_file(&cur)?;
            return open_append(&cur);
        }
        match std::fs::remove_file(rotated(&self.dir, max_files - 1)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for n in (1..max_files - 1).rev() {
            match std::fs::rename(rotated(&self.dir, n), rotated(&self.dir, n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(&cur, rotated(&self.dir, 1))?;
        open_append(&cur)
    }

    fn write(&self, line: LogLine) {
        let LogPolicy::Files {
            max_size,
            max_files,
        } = self.policy
        else {
            // Discard: read (so the container never blocks) and dropped.
            return;
        };
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
        if g.size > 0 && g.size + bytes.len() as u64 > max_size {
            match self.rotate(max_files) {
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
        // Under the lock: no rotation between listing and opening.
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

/// The log files, oldest first (`log.jsonl.N` … `log.jsonl.1`, `log.jsonl`),
/// with their current lengths.
pub(crate) fn open_log_files(dir: &Path) -> Vec<(File, u64)> {
    log_file_names(dir)
        .into_iter()
        .filter_map(|p| {
            let f = File::open(p).ok()?;
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

    fn line(i: i64, data: &[u8]) -> LogLine {
        LogLine {
            timestamp_ns: i,
            stream: 1,
            data: data.to_vec(),
        }
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn default_rotation_keeps_two_files_of_10_mib() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LogSink::open(dir.path(), LogPolicy::default()).expect("sink");
        let big = vec![b'x'; 1000];
        let max = 10 * 1024 * 1024;
        let n = (max / 1000) as usize + 10;
        for i in 0..n {
            sink.write(line(i as i64, &big));
        }
        assert!(dir.path().join("log.jsonl.1").exists());
        assert!(!dir.path().join("log.jsonl.2").exists());
        let size = std::fs::metadata(dir.path().join(LOG_FILE))
            .expect("log")
            .len();
        assert!(size < max);
        let lines = read_history(open_log_files(dir.path()), 5, 0);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[4].timestamp_ns, n as i64 - 1);
        let since = read_history(open_log_files(dir.path()), -1, n as i64 - 3);
        assert_eq!(since.len(), 3);
    }

    #[test]
    fn small_max_size_keeps_max_files_the_oldest_dropped_and_reads_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = LogPolicy::Files {
            max_size: 2000,
            max_files: 3,
        };
        let sink = LogSink::open(dir.path(), policy).expect("sink");
        let n = 500;
        for i in 0..n {
            sink.write(line(i, format!("line {i:05}\n").as_bytes()));
        }
        let names: Vec<String> = log_file_names(dir.path())
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["log.jsonl.2", "log.jsonl.1", "log.jsonl"]);
        for p in log_file_names(dir.path()) {
            let len = std::fs::metadata(&p).expect("meta").len();
            assert!(len <= 2000, "{} is {len} bytes", p.display());
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        // Everything kept reads back oldest first, ending with the newest line,
        // with no gap: the oldest lines were dropped, never the middle ones.
        let lines = read_history(open_log_files(dir.path()), -1, 0);
        assert!(
            lines.len() < n as usize && lines.len() > 50,
            "{}",
            lines.len()
        );
        let first = lines[0].timestamp_ns;
        assert!(first > 0);
        for (k, l) in lines.iter().enumerate() {
            assert_eq!(l.timestamp_ns, first + k as i64);
            assert_eq!(l.data, format!("line {:05}\n", l.timestamp_ns).into_bytes());
        }
        assert_eq!(lines.last().map(|l| l.timestamp_ns), Some(n - 1));
        // The tail spans files too.
        let tail = read_history(open_log_files(dir.path()), 100, 0);
        assert_eq!(tail.len(), 100);
        assert_eq!(tail[0].timestamp_ns, n - 100);
        remove_log_files(dir.path()).expect("remove");
        assert!(log_file_names(dir.path()).is_empty());
    }

    #[test]
    fn one_file_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = LogPolicy::Files {
            max_size: 1024,
            max_files: 1,
        };
        let sink = LogSink::open(dir.path(), policy).expect("sink");
        for i in 0..100 {
            sink.write(line(i, b"0123456789\n"));
        }
        assert_eq!(log_file_names(dir.path()).len(), 1);
        let lines = read_history(open_log_files(dir.path()), -1, 0);
        assert_eq!(lines.last().map(|l| l.timestamp_ns), Some(99));
        assert!(lines.len() < 100);
    }

    #[test]
    fn discard_keeps_nothing_and_drains_the_pipe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LogSink::open(dir.path(), LogPolicy::Discard).expect("sink");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let reader = spawn_reader(rt.handle(), sink, vec![(1, r)]);
        // Far more than a pipe holds: a writer would block forever if the
        // output were not read.
        let writer = std::thread::spawn(move || {
            let mut f = File::from(w);
            let chunk = vec![b'y'; 64 * 1024];
            for _ in 0..64 {
                f.write_all(&chunk).expect("write");
            }
        });
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(20), reader)
                .await
                .expect("reader ends once the writer is gone")
                .expect("join");
        });
        writer.join().expect("writer");
        assert!(log_file_names(dir.path()).is_empty());
        assert!(read_history(open_log_files(dir.path()), -1, 0).is_empty());
    }

    #[test]
    fn only_log_files_are_log_files() {
        for name in ["log.jsonl", "log.jsonl.1", "log.jsonl.42"] {
            assert!(is_log_file(OsStr::new(name)), "{name}");
        }
        for name in [
            "log.jsonl.",
            "log.jsonl.01",
            "log.jsonl.x",
            "log.json",
            "meta.json",
        ] {
            assert!(!is_log_file(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn line_splitting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LogSink::open(dir.path(), LogPolicy::default()).expect("sink");
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
