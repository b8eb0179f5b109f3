//! One health probe in a running container: the check's command is run in
//! the container's namespaces and cgroup the way `rswarm exec` runs a
//! command (the runtime's `exec`, no tty, no stdin, the container's user,
//! environment and working directory), its stdout and stderr collected (at
//! most 4 KiB kept), and killed with SIGKILL when it runs over its timeout.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::health::{bounded, Probe, MAX_OUTPUT};
use crate::runtime::{ExecConfig, Runtime};

/// Runs `args` in container `id`; see the module docs.
pub(crate) async fn run(rt: &Runtime, id: &str, args: &[String], timeout: Duration) -> Probe {
    let cfg = ExecConfig {
        args: args.to_vec(),
        env: vec![],
        user: String::new(),
        cwd: String::new(),
        tty: false,
        stdin: false,
    };
    let started = tokio::time::Instant::now();
    let mut p = match tokio::time::timeout(timeout, rt.exec(id, &cfg)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Probe::not_run(e),
        Err(_) => return Probe::timed_out(timeout),
    };
    let pid = p.pid;
    let (stdout, stderr) = (p.stdout.take(), p.stderr.take());
    let left = timeout.saturating_sub(started.elapsed());
    let done = tokio::time::timeout(left, async {
        let (out, err, code) = tokio::join!(read_bounded(stdout), read_bounded(stderr), p.wait());
        let mut output = out;
        output.extend_from_slice(&err);
        (code, output)
    })
    .await;
    match done {
        Ok((code, output)) => Probe {
            exit_code: Some(code),
            output: bounded(String::from_utf8_lossy(&output).into_owned()),
        },
        Err(_) => {
            kill(pid);
            Probe::timed_out(timeout)
        }
    }
}

/// Reads a stream to its end, keeping at most [`MAX_OUTPUT`] bytes (the
/// rest is read and dropped, so the probe never blocks on a full pipe).
async fn read_bounded<R: AsyncRead + Unpin>(r: Option<R>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut r) = r else { return kept };
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

fn kill(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if pid <= 1 {
        return;
    }
    if let Err(e) = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        tracing::debug!(pid, error = %e, "killing a health probe past its timeout");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_is_read_whole_but_kept_bounded() {
        let data = vec![b'x'; MAX_OUTPUT * 3];
        let kept = read_bounded(Some(&data[..])).await;
        assert_eq!(kept.len(), MAX_OUTPUT);
        assert!(read_bounded::<&[u8]>(None).await.is_empty());
    }
}
