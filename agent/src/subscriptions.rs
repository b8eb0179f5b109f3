//! Requests the leader sends this agent over its Subscriptions stream:
//! log subscriptions (read from the runtime's per-container logs and
//! published back in batches) and exec sessions (a process run in a local
//! task's container, its stdio piped through a stream the agent opens to
//! the leader).

use std::collections::HashMap;
use std::sync::Arc;

use rswarm_proto::dispatcher::agent_exec_frame::Frame as ToManager;
use rswarm_proto::dispatcher::agent_work::Work;
use rswarm_proto::dispatcher::manager_exec_frame::Frame as FromManager;
use rswarm_proto::dispatcher::tasks_client::TasksClient;
use rswarm_proto::dispatcher::{
    AgentExecFrame, AgentWork, ExecRequest, LogSubscription, PublishLogsMessage,
};
use rswarm_proto::types::LogEntry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::runtime::{ExecConfig, Runtime};

pub(crate) fn spawn(
    mut work: tonic::Streaming<AgentWork>,
    channel: Channel,
    runtime: Arc<Runtime>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut follows: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        while let Ok(Some(w)) = work.message().await {
            match w.work {
                Some(Work::Logs(sub)) if sub.close => {
                    if let Some(h) = follows.remove(&sub.id) {
                        h.abort();
                    }
                }
                Some(Work::Logs(sub)) => {
                    let id = sub.id.clone();
                    let h = tokio::spawn(publish_logs(sub, channel.clone(), runtime.clone()));
                    follows.insert(id, h);
                }
                Some(Work::Exec(req)) => {
                    tokio::spawn(run_exec(req, channel.clone(), runtime.clone()));
                }
                None => {}
            }
            follows.retain(|_, h| !h.is_finished());
        }
        for (_, h) in follows {
            h.abort();
        }
    })
}

async fn publish_logs(sub: LogSubscription, channel: Channel, runtime: Arc<Runtime>) {
    let (tx, rx) = mpsc::channel::<PublishLogsMessage>(64);
    let upload = tokio::spawn(async move {
        TasksClient::new(channel)
            .publish_logs(ReceiverStream::new(rx))
            .await
    });
    let (lines_tx, mut lines_rx) = mpsc::channel::<LogEntry>(1024);
    let mut readers = vec![];
    for task_id in &sub.task_ids {
        match runtime.logs(task_id, sub.tail, sub.since_ns, sub.follow) {
            Ok(mut rx) => {
                let out = lines_tx.clone();
                let task_id = task_id.clone();
                readers.push(tokio::spawn(async move {
                    while let Some(l) = rx.recv().await {
                        let e = LogEntry {
                            task_id: task_id.clone(),
                            timestamp: l.timestamp_ns,
                            stream: l.stream as i32,
                            data: l.data,
                        };
                        if out.send(e).await.is_err() {
                            break;
                        }
                    }
                }));
            }
            Err(e) => tracing::debug!(task = %task_id, error = %e, "no logs for task"),
        }
    }
    drop(lines_tx);
    // Batch what is ready into one message.
    while let Some(first) = lines_rx.recv().await {
        let mut entries = vec![first];
        while entries.len() < 256 {
            match lines_rx.try_recv() {
                Ok(e) => entries.push(e),
                Err(_) => break,
            }
        }
        if tx
            .send(PublishLogsMessage {
                subscription_id: sub.id.clone(),
                entries,
                close: false,
            })
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = tx
        .send(PublishLogsMessage {
            subscription_id: sub.id.clone(),
            entries: vec![],
            close: true,
        })
        .await;
    drop(tx);
    let _ = upload.await;
}

async fn run_exec(req: ExecRequest, channel: Channel, runtime: Arc<Runtime>) {
    let (tx, rx) = mpsc::channel::<AgentExecFrame>(64);
    let session = req.id.clone();
    let frame = |f: ToManager| AgentExecFrame {
        session_id: session.clone(),
        frame: Some(f),
    };
    if tx
        .send(AgentExecFrame {
            session_id: session.clone(),
            frame: None,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut inbound = match TasksClient::new(channel)
        .exec_session(ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => {
            tracing::warn!(error = %e.message(), "opening the exec session");
            return;
        }
    };
    let cfg = ExecConfig {
        args: req.cmd.clone(),
        env: req.env.clone(),
        user: req.user.clone(),
        cwd: req.workdir.clone(),
        tty: req.tty,
        stdin: req.stdin,
    };
    let mut proc = match runtime.exec(&req.task_id, &cfg).await {
        Ok(p) => p,
        Err(e) => {
            let message = match &e {
                // Docker's shape: `OCI runtime exec failed: exec failed:
                // unable to start container process: exec: "nosuch": …`.
                crate::runtime::RuntimeError::Runc { op, message } if op == "exec" => {
                    let message = message.strip_prefix("exec failed: ").unwrap_or(message);
                    format!("OCI runtime exec failed: exec failed: {message}")
                }
                _ => format!("exec in task {}: {e}", req.task_id),
            };
            let _ = tx.send(frame(ToManager::Error(message))).await;
            drop(tx);
            // Dropping `inbound` now would reset the call before the error
            // frame is through: wait for the manager to end it.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), async {
                while let Ok(Some(_)) = inbound.message().await {}
            })
            .await;
            return;
        }
    };
    // With a tty the pty master carries both directions.
    let (stdin, stdout, stderr) = match proc.pty.take() {
        Some(pty) => (Some(pty.writer), Some(pty.reader), None),
        None => (proc.stdin.take(), proc.stdout.take(), proc.stderr.take()),
    };
    // stdin from the manager. The inbound stream is held until the end
    // either way: dropping it would reset the whole exec call.
    let stdin_task = tokio::spawn(async move {
        let mut stdin = stdin;
        while let Ok(Some(f)) = inbound.message().await {
            match f.frame {
                Some(FromManager::Stdin(b)) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&b).await.is_err() {
                            stdin = None;
                            continue;
                        }
                        let _ = w.flush().await;
                    }
                }
                Some(FromManager::StdinClosed(_)) => stdin = None,
                None => {}
            }
        }
    });
    let mut pumps = vec![];
    for (reader, is_err) in [(stdout, false), (stderr, true)] {
        let Some(mut reader) = reader else { continue };
        let tx = tx.clone();
        let session = session.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        let f = if is_err {
                            ToManager::Stderr(data)
                        } else {
                            ToManager::Stdout(data)
                        };
                        if tx
                            .send(AgentExecFrame {
                                session_id: session.clone(),
                                frame: Some(f),
                            })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        }));
    }
    let code = proc.wait().await;
    for p in pumps {
        // A pty reader may never see EOF after the process exits; don't hang on it.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), p).await;
    }
    let last = ToManager::ExitCode(code);
    let _ = tx.send(frame(last)).await;
    drop(tx);
    // The manager ends the call once it has the exit code.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stdin_task).await;
}
