//! `rswarm inspect TASK...`: Docker's low-level `inspect`, for tasks today
//! (a task ID, a unique ID prefix, or `<service>.<slot>`), in Docker's task
//! shape with the task's health (`format::task_inspect`). Services, nodes
//! and networks have their own `inspect` subcommands; `--type` other than
//! `task` is refused rather than searched.

use clap::Args;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::GetTaskRequest;

use crate::client::{status_error, ClientOpts};
use crate::format::output::render_inspect;
use crate::format::task_inspect::task_inspect_json;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    /// Return JSON for specified type (task)
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "TASK")]
    pub refs: Vec<String>,
}

pub async fn run(opts: &ClientOpts, a: InspectArgs) -> anyhow::Result<()> {
    if let Some(kind) = a.kind.as_deref().filter(|k| *k != "task") {
        anyhow::bail!(
            "\"{kind}\" is not a valid value for --type: rswarm inspect shows tasks (use `rswarm {kind} inspect`)"
        );
    }
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for r in &a.refs {
        match services
            .get_task(GetTaskRequest {
                task_ref: r.clone(),
            })
            .await
        {
            Ok(t) => found.push(task_inspect_json(&t.into_inner())),
            Err(e) => errors.push(status_error(e)),
        }
    }
    let format = a.format.as_deref().filter(|f| !f.is_empty());
    if !found.is_empty() || format.is_none() {
        print!("{}", render_inspect(&found, format)?);
    }
    match errors.pop() {
        None => Ok(()),
        Some(last) => {
            for e in errors {
                eprintln!("{e}");
            }
            Err(last)
        }
    }
}
