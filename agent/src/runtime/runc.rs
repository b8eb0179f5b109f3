//! The `runc` command-line driver: `runc --root <root> create|start|state|
//! kill|delete|exec|list`, with runc's own error text in the errors.
//!
//! `create` and `exec --detach` hand the container their stdio directly
//! (runc's "pass-through" mode), so their error messages are taken from the
//! JSON log file given with `--log` rather than from stderr, which is the
//! container's.
//!
//! At most [`MAX_CONCURRENT_RUNC`] runc processes run at once per runtime:
//! a service of thousands of tasks would otherwise start thousands of runc
//! processes together, and the machine (and with it the daemon's heartbeats)
//! would drown in them. The others wait their turn.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde::Deserialize;
use tokio::process::Command;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::RuntimeError;

/// Paths to the runc binary and its state root.
#[derive(Debug, Clone)]
pub(crate) struct Runc {
    bin: PathBuf,
    root: PathBuf,
    /// Bounds the runc processes running at once.
    permits: Arc<Semaphore>,
}

/// How many runc processes one runtime runs at once (each costs a Go
/// runtime start, some 20-30 ms of CPU).
pub(crate) const MAX_CONCURRENT_RUNC: usize = 8;

/// `runc state` / `runc list --format json` entries.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RuncState {
    pub id: String,
    #[serde(default)]
    pub pid: i32,
    pub status: String,
}

impl RuncState {
    /// The container has a process (created, running or paused).
    pub(super) fn alive(&self) -> bool {
        self.pid > 0
            && matches!(
                self.status.as_str(),
                "created" | "creating" | "running" | "paused" | "pausing"
            )
    }
}

/// The three stdio of a process runc starts.
pub(crate) struct ChildStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

fn not_exist(msg: &str) -> bool {
    msg.contains("does not exist")
}

fn not_running(msg: &str) -> bool {
    msg.contains("not running") || msg.contains("process already finished")
}

/// The message of runc's (logrus) error output: the last `msg="…"` or JSON
/// `"msg"`, else the text itself.
pub(crate) fn error_message(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let mut last = None;
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                if v.get("level")
                    .and_then(|l| l.as_str())
                    .is_none_or(|l| l == "error" || l == "fatal")
                {
                    last = Some(m.to_string());
                }
                continue;
            }
        }
        if let Some(start) = line.find("msg=\"") {
            let rest = &line[start + 5..];
            let mut msg = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            msg.push(n);
                        }
                    }
                    '"' => break,
                    c => msg.push(c),
                }
            }
            last = Some(msg);
        }
    }
    last.unwrap_or_else(|| text.trim().to_string())
}

/// The last error in a runc `--log-format json` file.
fn log_error(path: &Path) -> Option<String> {
    let data = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&data);
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            matches!(
                v.get("level").and_then(|l| l.as_str()),
                Some("error") | Some("fatal")
            )
        })
        .filter_map(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
        .next_back()
}

/// A runc failure, without the "runc create failed: " runc itself puts in
/// front of its message (the error's own text says it once).
fn runc_failed(op: &str, message: String) -> RuntimeError {
    let message = message
        .strip_prefix(&format!("runc {op} failed: "))
        .map(str::to_string)
        .unwrap_or(message);
    RuntimeError::Runc {
        op: op.to_string(),
        message,
    }
}

impl Runc {
    pub(super) fn new(bin: PathBuf, root: PathBuf) -> Self {
        Runc {
            bin,
            root,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_RUNC)),
        }
    }

    /// A turn to run runc (see the module docs).
    /// (None only if the semaphore were closed, which nothing does.)
    async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    fn spawn_error(&self, op: &str, e: std::io::Error) -> RuntimeError {
        RuntimeError::Runc {
            op: op.to_string(),
            message: format!("cannot run {}: {e}", self.bin.display()),
        }
    }

    async fn run(&self, op: &str, args: Vec<OsString>) -> Result<Vec<u8>, RuntimeError> {
        let _turn = self.permit().await;
        let out = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| self.spawn_error(op, e))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(runc_failed(op, error_message(&out.stderr)))
        }
    }

    /// Runs runc with pass-through stdio and `--log`; the child (and with it
    /// our copies of the stdio descriptors) is gone when this returns.
    async fn run_passthrough(
        &self,
        op: &str,
        log_file: &Path,
        args: Vec<OsString>,
        stdio: ChildStdio,
    ) -> Result<(), RuntimeError> {
        let _turn = self.permit().await;
        let mut child = {
            let mut c = Command::new(&self.bin);
            c.arg("--root")
                .arg(&self.root)
                .arg("--log")
                .arg(log_file)
                .arg("--log-format")
                .arg("json")
                .args(args)
                .stdin(stdio.stdin)
                .stdout(stdio.stdout)
                .stderr(stdio.stderr);
            c.spawn().map_err(|e| self.spawn_error(op, e))?
            // `c` and the stdio descriptors it holds are dropped here.
        };
        let status = child.wait().await.map_err(|e| self.spawn_error(op, e))?;
        if status.success() {
            Ok(())
        } else {
            Err(runc_failed(
                op,
                log_error(log_file).unwrap_or_else(|| format!("runc exited with {status}")),
            ))
        }
    }

    /// `runc create --bundle <bundle> --pid-file <pid_file> [--console-socket] <id>`.
    pub(super) async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        log_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec![
            "create".into(),
            "--bundle".into(),
            bundle.into(),
            "--pid-file".into(),
            pid_file.into(),
        ];
        if let Some(s) = console_socket {
            args.push("--console-socket".into());
            args.push(s.into());
        }
        args.push(id.into());
        self.run_passthrough("create", log_file, args, stdio).await
    }

    /// `runc exec --detach --process <process> --pid-file <pid_file> [--console-socket] <id>`.
    pub(super) async fn exec_detached(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        log_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec![
            "exec".into(),
            "--detach".into(),
            "--process".into(),
            process.into(),
            "--pid-file".into(),
            pid_file.into(),
        ];
        if let Some(s) = console_socket {
            args.push("--console-socket".into());
            args.push(s.into());
        }
        args.push(id.into());
        self.run_passthrough("exec", log_file, args, stdio).await
    }

    pub(super) async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("start", vec!["start".into(), id.into()])
            .await
            .map(|_| ())
    }

    /// Whether runc may know the container: its state directory
    /// (`<root>/<id>`) is there. False is certain (runc keeps every
    /// container it knows there), so callers skip running `runc state` for
    /// containers that were never made, which costs a process start each.
    pub(super) fn may_exist(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    /// None when runc does not know the container.
    pub(super) async fn state(&self, id: &str) -> Result<Option<RuncState>, RuntimeError> {
        if !self.may_exist(id) {
            return Ok(None);
        }
        match self.run("state", vec!["state".into(), id.into()]).await {
            Ok(out) => serde_json::from_slice(&out)
                .map(Some)
                .map_err(|e| RuntimeError::Runc {
                    op: "state".into(),
                    message: format!("unreadable output: {e}"),
                }),
            Err(RuntimeError::Runc { message, .. }) if not_exist(&message) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a signal to the container's init. A container that is no
    /// longer running gives [`RuntimeError::NotRunning`].
    pub(super) async fn kill(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        match self
            .run(
                "kill",
                vec!["kill".into(), id.into(), signal.to_string().into()],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(RuntimeError::Runc { message, .. }) if not_running(&message) => {
                Err(RuntimeError::NotRunning(id.to_string()))
            }
            Err(RuntimeError::Runc { message, .. }) if not_exist(&message) => {
                Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// `runc delete --force`: kills the container if needed and removes its
    /// cgroup and state; fine if runc does not know it.
    pub(super) async fn delete_force(&self, id: &str) -> Result<(), RuntimeError> {
        match self
            .run("delete", vec!["delete".into(), "--force".into(), id.into()])
            .await
        {
            Ok(_) => Ok(()),
            Err(RuntimeError::Runc { message, .. }) if not_exist(&message) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `runc list --format json`, blocking (used once at startup).
    pub(super) fn list_blocking(&self) -> Result<Vec<RuncState>, RuntimeError> {
        let out = std::process::Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(["list", "--format", "json"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error("list", e))?;
        if !out.status.success() {
            return Err(RuntimeError::Runc {
                op: "list".into(),
                message: error_message(&out.stderr),
            });
        }
        let list: Option<Vec<RuncState>> =
            serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::Runc {
                op: "list".into(),
                message: format!("unreadable output: {e}"),
            })?;
        Ok(list.unwrap_or_default())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn runc_failed_says_so_once() {
        let e = runc_failed(
            "create",
            "runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH".into(),
        );
        assert_eq!(
            e.to_string(),
            "runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH"
        );
        assert_eq!(
            runc_failed("kill", "x".into()).to_string(),
            "runc kill failed: x"
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(
                b"time=\"2026-01-01T00:00:00Z\" level=error msg=\"container does not exist\"\n"
            ),
            "container does not exist"
        );
        assert_eq!(
            error_message(
                b"{\"level\":\"error\",\"msg\":\"exec: \\\"x\\\": not found\",\"time\":\"t\"}\n"
            ),
            "exec: \"x\": not found"
        );
        assert_eq!(error_message(b"plain failure\n"), "plain failure");
    }
}
