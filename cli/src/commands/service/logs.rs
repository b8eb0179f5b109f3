//! `service logs SERVICE|TASK`: `--tail`/`--since` parsing, Docker's
//! `web.1.x7k2p9q4m1n8@host2    | ` prefix and timestamps, and streaming the
//! lines to stdout/stderr.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{GetTaskRequest, LogLine, LogSelector, LogsRequest};
use rswarm_proto::types::service_spec::Mode;

use super::{get_service, service_name, LogsArgs};
use crate::client::{status_error, ClientOpts};
use crate::commands::task::{node_directory, now_nanos};
use crate::format::tasks::short_id;

/// `--tail`: "all" or a number of lines.
pub(super) fn parse_tail(value: &str) -> anyhow::Result<i64> {
    if value == "all" {
        return Ok(-1);
    }
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            anyhow::anyhow!("invalid value {value:?} for --tail: a number of lines or \"all\"")
        })
}

/// `--since`: an RFC 3339 time, unix seconds, or a duration before `now`.
pub(super) fn parse_since(value: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    match crate::servicespec::units::parse_duration_ns(value) {
        Ok(d) => Ok(now - d),
        Err(_) => anyhow::bail!(
            "invalid value {value:?} for --since: a time (2013-01-02T13:23:37Z), unix seconds or a duration (42m)"
        ),
    }
}

/// Docker's fixed-width log timestamp: nine fractional digits.
pub(super) fn log_timestamp(unix_nanos: i64) -> String {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let nanos = unix_nanos.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => format!("{}.{nanos:09}Z", t.format("%Y-%m-%dT%H:%M:%S")),
        None => String::new(),
    }
}

/// How `service logs` names the task a line came from.
pub(super) struct LogContext<'a> {
    pub(super) node_names: &'a HashMap<String, String>,
    /// Digits of the widest slot number, for alignment.
    pub(super) padding: usize,
    pub(super) no_task_ids: bool,
    pub(super) no_trunc: bool,
    pub(super) no_resolve: bool,
}

/// Docker's prefix: `web.1.x7k2p9q4m1n8@host2    | `, the task name padded
/// so slots of different widths line up.
pub(super) fn log_prefix(line: &LogLine, service_name: &str, ctx: &LogContext<'_>) -> String {
    let mut name = if ctx.no_resolve {
        format!("{}.{}", line.service_id, line.slot)
    } else if !line.task_name.is_empty() {
        line.task_name.clone()
    } else {
        format!("{service_name}.{}", line.slot)
    };
    if !ctx.no_task_ids {
        let id = if ctx.no_trunc {
            line.task_id.as_str()
        } else {
            short_id(&line.task_id)
        };
        name = format!("{name}.{id}");
    }
    let node = if ctx.no_resolve {
        line.node_id.clone()
    } else if !line.node_name.is_empty() {
        line.node_name.clone()
    } else {
        ctx.node_names
            .get(&line.node_id)
            .cloned()
            .unwrap_or_else(|| line.node_id.clone())
    };
    let padding = ctx.padding.saturating_sub(line.slot.to_string().len());
    format!("{name}@{node}{}    | ", " ".repeat(padding))
}

pub(super) async fn logs(opts: &ClientOpts, a: LogsArgs) -> anyhow::Result<()> {
    let tail = parse_tail(&a.tail)?;
    let since_ns = a
        .since
        .as_deref()
        .map(|s| parse_since(s, now_nanos()))
        .transpose()?
        .unwrap_or(0);
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let (selector, service_name, padding) = match get_service(&mut services, &a.target).await {
        Ok(service) => {
            let padding = match service.spec.as_ref().and_then(|s| s.mode.as_ref()) {
                Some(Mode::Replicated(r)) => r.replicas.to_string().len(),
                Some(Mode::ReplicatedJob(j)) => j.total_completions.to_string().len(),
                _ => 1,
            };
            let name = service_name(&service).to_string();
            let selector = LogSelector {
                service_refs: vec![service.id],
                task_refs: vec![],
            };
            (selector, name, padding)
        }
        Err(_) => {
            let t = services
                .get_task(GetTaskRequest {
                    task_ref: a.target.clone(),
                })
                .await
                .map_err(|s| match s.code() {
                    tonic::Code::NotFound => {
                        anyhow::anyhow!("no such task or service: {}", a.target)
                    }
                    _ => status_error(s),
                })?
                .into_inner();
            let name = t
                .service_annotations
                .as_ref()
                .map(|an| an.name.clone())
                .unwrap_or_default();
            let selector = LogSelector {
                service_refs: vec![],
                task_refs: vec![t.id],
            };
            (selector, name, t.slot.to_string().len())
        }
    };
    let (node_names, _) = node_directory(&mut ControlClient::new(channel)).await?;
    let ctx = LogContext {
        node_names: &node_names,
        padding,
        no_task_ids: a.no_task_ids,
        no_trunc: a.no_trunc,
        no_resolve: a.no_resolve,
    };
    let mut stream = services
        .logs(LogsRequest {
            selector: Some(selector),
            follow: a.follow,
            tail,
            since_ns,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut warned = HashSet::new();
    while let Some(response) = stream.message().await.map_err(status_error)? {
        for w in response.warnings {
            if warned.insert(w.clone()) {
                eprintln!("{w}");
            }
        }
        let mut stdout = std::io::stdout().lock();
        let mut stderr = std::io::stderr().lock();
        for line in &response.lines {
            let mut text = Vec::new();
            if a.timestamps {
                text.extend_from_slice(log_timestamp(line.timestamp).as_bytes());
                text.push(b' ');
            }
            if !a.raw {
                text.extend_from_slice(log_prefix(line, &service_name, &ctx).as_bytes());
            }
            // One line per entry; drop the line's own end if it kept it.
            let data = line.data.strip_suffix(b"\n").unwrap_or(&line.data);
            let data = data.strip_suffix(b"\r").unwrap_or(data);
            text.extend_from_slice(data);
            text.push(b'\n');
            let written = if line.stream == 2 {
                stderr.write_all(&text)
            } else {
                stdout.write_all(&text)
            };
            if written.is_err() {
                // The reader went away (`| head`): stop quietly.
                return Ok(());
            }
        }
        let _ = stdout.flush();
    }
    Ok(())
}
