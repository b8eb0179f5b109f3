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
//! × 2. With `compress`, a thread gzips the new `log.jsonl.1` into
//! `log.jsonl.1.gz` (through `log.jsonl.1.gz.tmp`); the next rotation waits
//! for it. The files are 0600 (task output may hold secrets). With
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

/// A gzipped log file being written.
const GZ_TMP: &str = ".gz.tmp";

/// `log.jsonl` (0) or a rotated `log.jsonl.N` / `log.jsonl.N.gz`: its
/// number and whether it is gzipped.
fn log_file_index(name: &OsStr) -> Option<(u32, bool)> {
    let name = name.to_str()?;
    if name == LOG_FILE {
        return Some((0, false));
    }
    let n = name.strip_prefix(LOG_FILE)?.strip_prefix('.')?;
    let (n, gz) = match n.strip_suffix(".gz") {
        Some(n) => (n, true),
        None => (n, false),
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
        return None;
    }
    Some((n.parse().ok()?, gz))
}

pub(crate) fn is_log_file(name: &OsStr) -> bool {
    log_file_index(name).is_some()
}

/// The log files in `dir`, oldest first (`log.jsonl.N[.gz]` … `log.jsonl`),
/// each with whether it is gzipped. While a file is being compressed both
/// forms may exist for a moment: the plain one is read.
fn log_file_names(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut found: Vec<((u32, bool), PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((log_file_index(&e.file_name())?, e.path())))
        .collect();
    // Newest number last; at one number the plain file (false) first.
    found.sort_by_key(|((n, gz), _)| (std::cmp::Reverse(*n), *gz));
    found.dedup_by_key(|((n, _), _)| *n);
    found.into_iter().map(|((_, gz), p)| (p, gz)).collect()
}

fn remove_if_there(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes every log file of `dir` (and half-written compressed ones).
pub(crate) fn remove_log_files(dir: &Path) -> std::io::Result<()> {
    remove_compress_leftovers(dir)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if is_log_file(&entry.file_name()) {
            remove_if_there(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes `*.gz.tmp` files a compression cut short left behind.
fn remove_compress_leftovers(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(LOG_FILE) && name.ends_with(GZ_TMP) {
            remove_if_there(&entry.path())?;
        }
    }
    Ok(())
}

/// Gzips `plain` into `<plain>.gz` (0600, through a `.gz.tmp`), then
/// removes `plain`.
fn compress_file(plain: &Path) -> std::io::Result<()> {
    let name = plain.file_name().unwrap_or_default().to_string_lossy();
    let gz = plain.with_file_name(format!("{name}.gz"));
    let tmp = plain.with_file_name(format!("{name}{GZ_TMP}"));
    let mut input = File::open(plain)?;
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)?;
    set_mode(&tmp, 0o600)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    std::io::copy(&mut input, &mut enc)?;
    enc.finish()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(plain)
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
    /// The thread gzipping the last rotated file, if any.
    compressing: Option<std::thread::JoinHandle<()>>,
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

fn rotated(dir: &Path, n: u32, gz: bool) -> PathBuf {
    if gz {
        dir.join(format!("{LOG_FILE}.{n}.gz"))
    } else {
        dir.join(format!("{LOG_FILE}.{n}"))
    }
}

impl LogSink {
    pub(super) fn open(dir: &Path, policy: LogPolicy) -> std::io::Result<Arc<LogSink>> {
        remove_compress_leftovers(dir)?;
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
                compressing: None,
            }),
        }))
    }

    /// Shifts the files by one (the oldest kept one dropped), opens a new,
    /// empty `log.jsonl` and, with `compress`, starts gzipping `log.jsonl.1`.
    fn rotate(&self, g: &mut SinkInner, max_files: u32, compress: bool) -> std::io::Result<File> {
        // The last compression ends before names shift under it.
        if let Some(t) = g.compressing.take() {
            let _ = t.join();
        }
        let cur = self.dir.join(LOG_FILE);
        if max_files <= 1 {
            std::fs::remove_file(&cur)?;
            return open_append(&cur);
        }
        let last = max_files - 1;
        for gz in [false, true] {
            remove_if_there(&rotated(&self.dir, last, gz))?;
        }
        for n in (1..last).rev() {
            for gz in [false, true] {
                match std::fs::rename(rotated(&self.dir, n, gz), rotated(&self.dir, n + 1, gz)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let first = rotated(&self.dir, 1, false);
        std::fs::rename(&cur, &first)?;
        let file = open_append(&cur)?;
        if compress {
            let dir = self.dir.clone();
            let spawned = std::thread::Builder::new()
                .name("log-compress".into())
                .spawn(move || {
                    if let Err(e) = compress_file(&first) {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot compress a rotated container log");
                    }
                });
            match spawned {
                Ok(t) => g.compressing = Some(t),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot start compressing a rotated container log")
                }
            }
        }
        Ok(file)
    }

    /// Waits for the compression under way, if any.
    #[cfg(test)]
    fn settle(&self) {
        let t = lock(&self.inner).compressing.take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }

    fn write(&self, line: LogLine) {
        let LogPolicy::Files {
            max_size,
            max_files,
            compress,
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
            match self.rotate(&mut g, max_files, compress) {
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
    ) -> (Vec<LogFile>, Option<broadcast::Receiver<LogLine>>) {
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

/// One log file opened for reading.
pub(crate) struct LogFile {
    file: File,
    /// The length to read up to (the file may grow meanwhile).
    len: u64,
    gzip: bool,
}

/// The log files, oldest first (`log.jsonl.N[.gz]` … `log.jsonl.1[.gz]`,
/// `log.jsonl`), with their current lengths.
pub(crate) fn open_log_files(dir: &Path) -> Vec<LogFile> {
    log_file_names(dir)
        .into_iter()
        .filter_map(|(p, gzip)| {
            let (file, gzip) = match File::open(&p) {
                Ok(f) => (f, gzip),
                // Compressed between listing and opening.
                Err(_) if !gzip => {
                    let name = p.file_name()?.to_string_lossy();
                    (
                        File::open(p.with_file_name(format!("{name}.gz"))).ok()?,
                        true,
                    )
                }
                Err(_) => return None,
            };
            let len = file.metadata().ok()?.len();
            Some(LogFile { file, len, gzip })
        })
        .collect()
}

/// Reads the lines of `files` with a timestamp ≥ `since_ns`, keeping the
/// last `tail` (all when negative).
pub(crate) fn read_history(files: Vec<LogFile>, tail: i64, since_ns: i64) -> Vec<LogLine> {
    let mut out = VecDeque::new();
    if tail == 0 {
        return Vec::new();
    }
    for f in files {
        let reader: Box<dyn BufRead> = if f.gzip {
            Box::new(BufReader::new(flate2::read::GzDecoder::new(f.file)))
        } else {
            Box::new(BufReader::new(f.file.take(f.len)))
        };
        for line in reader.split(b'\n') {
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
    files: Vec<LogFile>,
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
#[path = "logs_tests.rs"]
mod unit;
