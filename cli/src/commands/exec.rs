//! `rswarm exec [-i] [-t] [-u USER] [-w DIR] [-e K=V] TASK CMD...`: runs a
//! command inside a running task wherever it is in the cluster, relayed by
//! the managers (the Services `Exec` stream). `-t` puts this terminal in raw
//! mode for the session (restored on every way out), `-i` forwards stdin,
//! and the command's exit code becomes this process's.

use std::io::{IsTerminal, Write};

use clap::Args;
use nix::sys::termios::{self, SetArg, Termios};
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{exec_input, exec_output, ExecInput, ExecStart};
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::{status_error, ClientOpts};
use crate::servicespec::container::parse_env;
use crate::servicespec::SpecError;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Keep STDIN open and forward it
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub workdir: Option<String>,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    pub env: Vec<String>,
    /// A task ID (or unique prefix), or SERVICE.SLOT
    #[arg(value_name = "TASK")]
    pub task: String,
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<String>,
}

/// The terminal in raw mode until dropped (then as it was).
struct RawTerminal {
    original: Termios,
}

impl RawTerminal {
    fn enable() -> anyhow::Result<RawTerminal> {
        let stdin = std::io::stdin();
        let original = termios::tcgetattr(&stdin)
            .map_err(|e| anyhow::anyhow!("reading the terminal's settings: {e}"))?;
        let mut raw = original.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)
            .map_err(|e| anyhow::anyhow!("setting the terminal to raw mode: {e}"))?;
        Ok(RawTerminal { original })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.original);
    }
}

/// Rows and columns of the terminal on stdout (0, 0 when it is not one).
fn window_size() -> (u32, u32) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct passed,
    // which lives on this stack frame for the duration of the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 {
        (u32::from(ws.ws_row), u32::from(ws.ws_col))
    } else {
        (0, 0)
    }
}

fn frame(f: exec_input::Frame) -> ExecInput {
    ExecInput { frame: Some(f) }
}

/// Forwards stdin as `stdin` frames, then `stdin_closed` at end of file.
async fn pump_stdin(tx: tokio::sync::mpsc::Sender<ExecInput>) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 8192];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(frame(exec_input::Frame::StdinClosed(true))).await;
                return;
            }
            Ok(n) => {
                if tx
                    .send(frame(exec_input::Frame::Stdin(buf[..n].to_vec())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

pub async fn run(opts: &ClientOpts, a: ExecArgs) -> anyhow::Result<()> {
    let lookup = |k: &str| std::env::var(k).ok();
    let mut env = Vec::new();
    for e in &a.env {
        env.push(parse_env(e, &lookup).map_err(|r| SpecError::flag("-e, --env", e, r))?);
    }
    let stdin_is_tty = std::io::stdin().is_terminal();
    if a.tty && a.interactive && !stdin_is_tty {
        anyhow::bail!("the input device is not a TTY");
    }
    let (rows, cols) = if a.tty { window_size() } else { (0, 0) };
    let start = ExecStart {
        task_ref: a.task.clone(),
        cmd: a.command.clone(),
        env,
        user: a.user.clone().unwrap_or_default(),
        workdir: a.workdir.clone().unwrap_or_default(),
        tty: a.tty,
        stdin: a.interactive,
        rows,
        cols,
    };

    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(frame(exec_input::Frame::Start(start)))
        .await
        .map_err(|_| anyhow::anyhow!("exec: the request stream closed before it started"))?;
    let mut output = services
        .exec(ReceiverStream::new(rx))
        .await
        .map_err(status_error)?
        .into_inner();

    let raw = if a.tty && stdin_is_tty {
        Some(RawTerminal::enable()?)
    } else {
        None
    };
    if a.interactive {
        tokio::spawn(pump_stdin(tx.clone()));
    }
    let code = relay_output(&mut output).await;
    drop(raw);
    drop(tx);
    let code = code?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code);
}

/// Copies stdout and stderr frames out as they come; returns the exit code.
async fn relay_output(
    output: &mut tonic::Streaming<rswarm_proto::control::ExecOutput>,
) -> anyhow::Result<i32> {
    while let Some(msg) = output.message().await.map_err(status_error)? {
        match msg.frame {
            Some(exec_output::Frame::Stdout(b)) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&b);
                let _ = out.flush();
            }
            Some(exec_output::Frame::Stderr(b)) => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&b);
                let _ = err.flush();
            }
            Some(exec_output::Frame::ExitCode(code)) => return Ok(code),
            // The runtime's own words say "exec failed" already.
            Some(exec_output::Frame::Error(e)) if e.starts_with("OCI runtime exec failed") => {
                anyhow::bail!("{e}")
            }
            Some(exec_output::Frame::Error(e)) => anyhow::bail!("exec failed: {e}"),
            None => {}
        }
    }
    anyhow::bail!("exec: the stream ended without the command's exit code")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        exec: ExecArgs,
    }

    #[test]
    fn takes_dockers_command_line() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "exec", "-it", "-u", "0", "-e", "A=1", "web.1", "sh", "-c", "echo hi",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let a = cli.exec;
        assert!(a.interactive && a.tty);
        assert_eq!(a.user.as_deref(), Some("0"));
        assert_eq!(a.env, vec!["A=1".to_string()]);
        assert_eq!(a.task, "web.1");
        assert_eq!(
            a.command,
            vec!["sh".to_string(), "-c".into(), "echo hi".into()]
        );
        assert!(Cli::try_parse_from(["exec", "web.1"]).is_err());
    }
}
