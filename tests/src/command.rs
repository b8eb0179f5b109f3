//! One-shot commands with a deadline, and what they printed.
//!
//! Every command the harness runs for a test (the `rswarm` CLI, `ip`, anything in a
//! host's namespace) goes through [`run`]: stdin is empty, stdout and stderr are
//! captured, and a command still running at its deadline is killed with its whole
//! process group, so a hung CLI fails the test instead of hanging it. The result keeps
//! a copy-pasteable form of the command line for failure messages.

use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a one-shot command may run before it is killed and reported as timed out.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for a command's output to close after the command exited (a
/// background process it started may keep the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// What a command did: its exit status and what it printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, quoted so it can be pasted into a root shell.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command was killed at its deadline.
    pub timed_out: bool,
}

impl CmdOutput {
    /// Exited 0 within its deadline.
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// The exit code, `None` when a signal ended the command.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        if self.timed_out {
            writeln!(f, "(killed: still running after its deadline)")?;
        }
        writeln!(f, "{}", self.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Runs `argv` (program and arguments) with `env` added, waits at most `timeout`.
pub fn run(argv: &[String], env: &[(&str, &str)], timeout: Duration) -> CmdOutput {
    let command = shell_line(env, argv);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::spawn::die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => {
            return CmdOutput {
                command,
                status: ExitStatus::from_raw(127 << 8),
                stdout: String::new(),
                stderr: format!("rswarm-tests: cannot start {}: {err}", argv[0]),
                timed_out: false,
            }
        }
    };
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let stderr = collect(child.stderr.take().expect("piped stderr"));

    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                // The child leads its own process group: take everything it started.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                break child.wait().expect("wait for a killed child");
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(err) => panic!("rswarm-tests: cannot wait for `{command}`: {err}"),
        }
    };

    let output_deadline = Instant::now() + OUTPUT_GRACE;
    while !(stdout.is_finished() && stderr.is_finished()) && Instant::now() < output_deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let complete = stdout.is_finished() && stderr.is_finished();
    let mut stderr_text = stderr.text();
    if !complete {
        stderr_text.push_str(
            "\n(rswarm-tests: output may be incomplete: something the command started \
             still holds its stdout or stderr open)",
        );
    }
    CmdOutput {
        command,
        status,
        stdout: stdout.text(),
        stderr: stderr_text,
        timed_out,
    }
}

/// A pipe being read to its end on a thread of its own.
struct Collector {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: thread::JoinHandle<()>,
}

impl Collector {
    fn is_finished(&self) -> bool {
        self.reader.is_finished()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> Collector {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&bytes);
    let reader = thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
    });
    Collector { bytes, reader }
}

/// `KEY=value program 'arg with spaces'`, quoted for a POSIX shell.
pub fn shell_line(env: &[(&str, &str)], argv: &[String]) -> String {
    env.iter()
        .map(|(key, value)| format!("{key}={}", shell_quote(value)))
        .chain(argv.iter().map(|arg| shell_quote(arg)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_a_shell_would_split_or_expand() {
        let argv: Vec<String> = ["rswarm", "node", "ls", "--format", "{{.ID}} x", "it's"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            shell_line(&[("RUST_LOG", "info")], &argv),
            r"RUST_LOG=info rswarm node ls --format '{{.ID}} x' 'it'\''s'"
        );
    }

    #[test]
    fn reports_exit_code_output_and_deadline() {
        let sh = |script: &str| -> Vec<String> { vec!["bash".into(), "-c".into(), script.into()] };
        let out = run(&sh("echo out; echo err >&2; exit 3"), &[], COMMAND_TIMEOUT);
        assert_eq!(
            (out.code(), out.stdout.as_str(), out.stderr.as_str()),
            (Some(3), "out\n", "err\n")
        );
        assert!(!out.success());

        let started = Instant::now();
        let out = run(&sh("sleep 30"), &[], Duration::from_millis(300));
        assert!(out.timed_out && !out.success(), "{out}");
        assert!(started.elapsed() < Duration::from_secs(10));

        let out = run(&["/nonexistent/program".to_string()], &[], COMMAND_TIMEOUT);
        assert_eq!(out.code(), Some(127), "{out}");
    }
}
