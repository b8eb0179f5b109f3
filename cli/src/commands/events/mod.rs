//! `rswarm events`: the cluster's changes as Docker's `docker events` shows
//! a swarm's (services, nodes, tasks, networks, secrets, configs), from the
//! manager this client talks to. `--since`/`--until` are read here
//! (`time`), `--filter` is checked for its `key=value` form here and for its
//! keys and values by the manager, and each event is printed by `render`.
//!
//! A broken stream: events are made by every manager from its own copy of
//! the store, so a leader change does not break it. Only losing the manager
//! this client talks to does (its daemon stopped, the node was demoted).
//! The client only knows that one address (the local socket or `-H`), so it
//! retries it for [`RECONNECT_FOR`] (a daemon restart) and resumes after the
//! last event it printed, the manager replaying what it kept meanwhile;
//! past that, it ends with an error naming the time of the last event
//! shown, so the user can resume with `--since`.

mod render;
mod time;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::{EventFilter, EventsRequest};

use crate::client::{status_error, ClientOpts};
use crate::commands::task::now_nanos;
use render::Output;

/// How long a lost stream is retried before the command gives up.
const RECONNECT_FOR: Duration = Duration::from_secs(30);
/// Most `--filter` flags.
const MAX_FILTERS: usize = 64;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template:
    /// 'json': Print in JSON format;
    /// 'TEMPLATE': Print output using the given Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
}

/// `--filter key=value` as Docker's `filters.ParseFlag` reads it.
fn parse_filters(flags: &[String]) -> anyhow::Result<Vec<EventFilter>> {
    if flags.len() > MAX_FILTERS {
        anyhow::bail!("too many filters ({}): at most {MAX_FILTERS}", flags.len());
    }
    flags
        .iter()
        .map(|f| {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
            Ok(EventFilter {
                key: k.trim().to_ascii_lowercase(),
                value: v.trim().to_string(),
            })
        })
        .collect()
}

/// The request, from the flags.
fn request(a: &EventsArgs, now: i64) -> anyhow::Result<EventsRequest> {
    let since_ns = a
        .since
        .as_deref()
        .map(|s| time::parse_timestamp(s, now))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let until_ns = a
        .until
        .as_deref()
        .map(|s| time::parse_timestamp(s, now))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    Ok(EventsRequest {
        since_ns,
        until_ns,
        filters: parse_filters(&a.filter)?,
        resume_index: 0,
        resume_skip: 0,
    })
}

/// Where the stream got to: the last event shown.
#[derive(Default)]
struct Position {
    index: u64,
    at_index: u32,
    time_nano: i64,
}

impl Position {
    fn saw(&mut self, index: u64, time_nano: i64) {
        if index == self.index {
            self.at_index += 1;
        } else {
            self.index = index;
            self.at_index = 1;
        }
        self.time_nano = time_nano;
    }
}

/// Whether a failed stream is worth retrying (the manager went away) rather
/// than an answer (a bad filter, not a manager).
fn retryable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

pub async fn run(opts: &ClientOpts, a: EventsArgs) -> anyhow::Result<()> {
    let output = Output::parse(a.format.as_deref())?;
    let mut req = request(&a, now_nanos())?;
    let mut pos = Position::default();
    let mut lost_at: Option<tokio::time::Instant> = None;
    let mut last_error = String::new();
    let stdout = std::io::stdout();
    loop {
        if let Some(t) = lost_at {
            if t.elapsed() > RECONNECT_FOR {
                let since = if pos.time_nano > 0 {
                    format!(
                        "; the last event shown was at {} (resume with --since)",
                        render::fixed_time(pos.time_nano)
                    )
                } else {
                    String::new()
                };
                anyhow::bail!("the event stream ended: {last_error}{since}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let channel = match opts.connect().await {
            Ok((c, _)) => c,
            Err(e) if lost_at.is_some() => {
                last_error = e.to_string();
                continue;
            }
            Err(e) => return Err(e),
        };
        if pos.index > 0 {
            req.resume_index = pos.index;
            req.resume_skip = pos.at_index;
        }
        let mut stream = match ControlClient::new(channel).events(req.clone()).await {
            Ok(s) => s.into_inner(),
            Err(s) if lost_at.is_some() && retryable(&s) => {
                last_error = status_error(s).to_string();
                continue;
            }
            Err(s) => return Err(status_error(s)),
        };
        loop {
            match stream.message().await {
                Ok(Some(r)) => {
                    if !r.warning.is_empty() {
                        eprintln!("Warning: {}", r.warning);
                    }
                    let mut out = stdout.lock();
                    for e in &r.events {
                        out.write_all(output.render(e)?.as_bytes())?;
                        pos.saw(e.index, e.time_nano);
                    }
                    out.flush()?;
                }
                Ok(None) => return Ok(()),
                Err(s) if retryable(&s) => {
                    last_error = status_error(s).to_string();
                    lost_at = Some(tokio::time::Instant::now());
                    if pos.index == 0 && req.since_ns.is_none() {
                        req.since_ns = Some(now_nanos());
                    }
                    // The replay of a resumed stream covers `--since`.
                    break;
                }
                Err(s) => return Err(status_error(s)),
            }
        }
    }
}
