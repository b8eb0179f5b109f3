//! `exec`: a process in a running container's namespaces and cgroup.
//!
//! runc runs it detached (`runc exec --detach --process <process.json>`), so
//! no runc stays behind: the process is re-parented to the daemon (the child
//! subreaper) and its real exit code comes from the reaper. Without a tty it
//! gets pipes for stdout and stderr (and stdin when asked, else /dev/null);
//! with a tty, runc creates a pty in the container and hands its master over
//! the console socket, given as [`ExecProcess::pty`] (`reader`, `writer`,
//! [`Pty::resize`]). The user, environment, working directory and
//! capabilities default to the container's (config.json); `user` is
//! resolved against the container's /etc/passwd and /etc/group.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use oci_spec::runtime::Spec;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use super::console::{with_console, ConsoleSocket};
use super::reaper::Reaped;
use super::runc::ChildStdio;
use super::{read_pid, rootfs, spec, ExecConfig, Runtime, RuntimeError, CONFIG, ROOTFS};

/// A process started by [`Runtime::exec`]. Dropping it leaves the process
/// running (it is still reaped).
#[derive(Debug)]
pub struct ExecProcess {
    /// Host pid of the process.
    pub pid: u32,
    /// Its stdin, when asked for and without a tty; drop it to close it.
    pub stdin: Option<pipe::Sender>,
    /// Its stdout and stderr, without a tty.
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    /// The terminal, with a tty.
    pub pty: Option<Pty>,
    exit: Option<oneshot::Receiver<Reaped>>,
    code: Option<i32>,
}

impl ExecProcess {
    /// Waits for the process to exit: its exit code, 128+N if killed by
    /// signal N, -1 if the exit could not be observed.
    pub async fn wait(&mut self) -> i32 {
        if let Some(c) = self.code {
            return c;
        }
        let c = match self.exit.take() {
            Some(rx) => rx.await.ok().flatten().unwrap_or(-1),
            None => -1,
        };
        self.code = Some(c);
        c
    }
}

/// The master side of an exec's terminal: read the terminal's output from
/// `reader` (it ends with an `EIO` error rather than end-of-file once the
/// process is gone), type into `writer`.
#[derive(Debug)]
pub struct Pty {
    pub reader: pipe::Receiver,
    pub writer: pipe::Sender,
    master: OwnedFd,
}

impl Pty {
    /// Sets the terminal size (the process gets SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which is valid.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let fl = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

fn null() -> std::io::Result<Stdio> {
    Ok(Stdio::from(
        std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")?,
    ))
}

pub(crate) async fn exec(
    rt: &Runtime,
    id: &str,
    p: &ExecConfig,
) -> Result<ExecProcess, RuntimeError> {
    let dir = rt.dir(id);
    let container = Spec::load(dir.join(CONFIG))
        .map_err(|e| RuntimeError::InvalidConfig(format!("reading config.json of {id}: {e}")))?;
    let user = if p.user.is_empty() {
        None
    } else {
        Some(rootfs::resolve_user(&dir.join(ROOTFS), &p.user, &[])?)
    };
    let process = spec::exec_process(&container, p, user.as_ref())?;
    let n = rt.next_seq();
    let process_file = dir.join(format!("exec-{n}.json"));
    let pid_file = dir.join(format!("exec-{n}.pid"));
    let log_file = dir.join(format!("exec-{n}.log"));
    let json = serde_json::to_vec(&process)
        .map_err(|e| RuntimeError::InvalidConfig(format!("encoding process.json: {e}")))?;
    super::write_private(&process_file, &json)
        .map_err(|e| RuntimeError::io(format!("writing {}", process_file.display()), e))?;
    let res = run(rt, id, p, &process_file, &pid_file, &log_file).await;
    for f in [&process_file, &pid_file, &log_file] {
        let _ = std::fs::remove_file(f);
    }
    res
}

async fn run(
    rt: &Runtime,
    id: &str,
    p: &ExecConfig,
    process_file: &std::path::Path,
    pid_file: &std::path::Path,
    log_file: &std::path::Path,
) -> Result<ExecProcess, RuntimeError> {
    let io = |what: &str, e: std::io::Error| RuntimeError::io(what.to_string(), e);
    let mut out = ExecProcess {
        pid: 0,
        stdin: None,
        stdout: None,
        stderr: None,
        pty: None,
        exit: None,
        code: None,
    };
    if p.tty {
        let console = ConsoleSocket::bind(rt.runc.root(), rt.next_seq())
            .map_err(|e| io("console socket", e))?;
        let stdio = ChildStdio {
            stdin: null().map_err(|e| io("opening /dev/null", e))?,
            stdout: null().map_err(|e| io("opening /dev/null", e))?,
            stderr: null().map_err(|e| io("opening /dev/null", e))?,
        };
        let master = with_console(
            &console,
            rt.runc.exec_detached(
                id,
                process_file,
                pid_file,
                log_file,
                Some(console.path()),
                stdio,
            ),
        )
        .await?;
        set_nonblocking(&master).map_err(|e| io("pty master", e))?;
        let r = master.try_clone().map_err(|e| io("pty master", e))?;
        let w = master.try_clone().map_err(|e| io("pty master", e))?;
        out.pty = Some(Pty {
            reader: pipe::Receiver::from_owned_fd_unchecked(r).map_err(|e| io("pty master", e))?,
            writer: pipe::Sender::from_owned_fd_unchecked(w).map_err(|e| io("pty master", e))?,
            master,
        });
    } else {
        let stdin = if p.stdin {
            let (r, w) = pipe().map_err(|e| io("pipe", e))?;
            out.stdin = Some(pipe::Sender::from_owned_fd(w).map_err(|e| io("pipe", e))?);
            Stdio::from(r)
        } else {
            null().map_err(|e| io("opening /dev/null", e))?
        };
        let (out_r, out_w) = pipe().map_err(|e| io("pipe", e))?;
        let (err_r, err_w) = pipe().map_err(|e| io("pipe", e))?;
        out.stdout = Some(pipe::Receiver::from_owned_fd(out_r).map_err(|e| io("pipe", e))?);
        out.stderr = Some(pipe::Receiver::from_owned_fd(err_r).map_err(|e| io("pipe", e))?);
        let stdio = ChildStdio {
            stdin,
            stdout: Stdio::from(out_w),
            stderr: Stdio::from(err_w),
        };
        rt.runc
            .exec_detached(id, process_file, pid_file, log_file, None, stdio)
            .await?;
    }
    let pid = read_pid(pid_file)?;
    out.pid = pid as u32;
    out.exit = Some(rt.reaper.register(pid));
    Ok(out)
}
