//! `rswarm service create | inspect | logs | ls | ps | rm | rollback |
//! scale | update`, with Docker's flags, output and wording. `create`,
//! `scale`, `update` and `rollback` wait for the service to converge
//! (Docker's progress display) unless `--detach`, and fail with the tasks'
//! own error (or the update's pause or rollback) when they cannot. Specs are built
//! and checked by `servicespec` before anything is sent; tables and JSON
//! come from `format::services` and `format::tasks`.
//!
//! This module owns the command line (the subcommands and their flags), the
//! dispatch, the lookups the subcommands share, and the one-call `inspect`
//! and `rm`; the rest live in `create`, `scale`, `update` (with
//! `rollback`), `converge` (waiting for a service to converge), `ls` and
//! `logs`; `ps` is in `commands::task`.

mod converge;
mod create;
mod logs;
mod ls;
mod scale;
mod update;

use clap::{Args, Subcommand};
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{GetServiceRequest, RemoveServiceRequest};
use rswarm_proto::types::Service;
use tonic::transport::Channel;

use super::task::{self, now_nanos, ServicePsArgs};
use crate::client::{status_error, ClientOpts};
use crate::format;
use crate::servicespec::update::UpdateFlags;
use crate::servicespec::ServiceFlags;

pub(crate) use converge::{follow, Following};
pub(crate) use ls::{ls_selected, ServiceFilter};

use create::create;
use logs::logs;
use ls::ls;
use scale::scale;
use update::{rollback, update};

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Create a new service
    Create(Box<CreateArgs>),
    /// Display detailed information on one or more services
    Inspect(InspectArgs),
    /// Fetch the logs of a service or task
    Logs(LogsArgs),
    /// List services
    #[command(alias = "list")]
    Ls(LsArgs),
    /// List the tasks of one or more services
    Ps(ServicePsArgs),
    /// Remove one or more services
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Revert changes to a service's configuration
    Rollback(RollbackArgs),
    /// Scale one or multiple replicated services
    Scale(ScaleArgs),
    /// Update a service
    Update(Box<UpdateArgs>),
}

/// `-d/--detach[=bool]` and `-q/--quiet`: whether and how a command that
/// changes a service follows it until it converges (create, update,
/// rollback).
#[derive(Args, Debug)]
pub struct ProgressArgs {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(
        short = 'd',
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "bool"
    )]
    pub detach: Option<bool>,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub flags: UpdateFlags,
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Send registry authentication details to swarm agents
    #[arg(long = "with-registry-auth")]
    pub with_registry_auth: bool,
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: ServiceFlags,
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Send registry authentication details to swarm agents
    #[arg(long = "with-registry-auth")]
    pub with_registry_auth: bool,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        value_name = "IMAGE",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub image_and_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (id, name, mode, label)
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template, "table TEMPLATE" or "json"
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Format output using a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all", value_name = "string")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Do not include task IDs in output
    #[arg(long = "no-task-ids")]
    pub no_task_ids: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Do not map IDs to Names in output
    #[arg(long = "no-resolve")]
    pub no_resolve: bool,
    /// Do not neatly format logs
    #[arg(long)]
    pub raw: bool,
    #[arg(value_name = "SERVICE|TASK")]
    pub target: String,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(
        short = 'd',
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "bool"
    )]
    pub detach: Option<bool>,
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    pub scales: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

pub async fn run(opts: &ClientOpts, cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Create(a) => create(opts, *a).await,
        ServiceCommand::Inspect(a) => inspect(opts, a).await,
        ServiceCommand::Logs(a) => logs(opts, a).await,
        ServiceCommand::Ls(a) => ls(opts, a).await,
        ServiceCommand::Ps(a) => task::service_ps(opts, a).await,
        ServiceCommand::Rm(a) => rm(opts, a).await,
        ServiceCommand::Rollback(a) => rollback(opts, a).await,
        ServiceCommand::Scale(a) => scale(opts, a).await,
        ServiceCommand::Update(a) => update(opts, *a).await,
    }
}

/// Prints all but the last error (one line each) and returns the last, so
/// every failure shows and the exit status is non-zero, as Docker does.
fn report_errors(mut errors: Vec<anyhow::Error>) -> anyhow::Result<()> {
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

fn service_name(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

async fn get_service(
    services: &mut ServicesClient<Channel>,
    service_ref: &str,
) -> anyhow::Result<Service> {
    services
        .get_service(GetServiceRequest {
            service_ref: service_ref.to_string(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| match s.code() {
            tonic::Code::NotFound => anyhow::anyhow!("no such service: {service_ref}"),
            _ => status_error(s),
        })
}

// ---- inspect -------------------------------------------------------------

async fn inspect(opts: &ClientOpts, a: InspectArgs) -> anyhow::Result<()> {
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for r in &a.services {
        match get_service(&mut services, r).await {
            Ok(s) => found.push(s),
            Err(e) => errors.push(e),
        }
    }
    if found.is_empty() {
        // Docker still prints the empty JSON array when nothing was found.
        if a.format.as_deref().is_none_or(str::is_empty) && !a.pretty {
            println!("[]");
        }
    } else {
        print!(
            "{}",
            format::services::render_service_inspect(
                &found,
                a.format.as_deref(),
                a.pretty,
                now_nanos()
            )?
        );
    }
    report_errors(errors)
}

// ---- rm ------------------------------------------------------------------

async fn rm(opts: &ClientOpts, a: RmArgs) -> anyhow::Result<()> {
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel);
    let mut errors = Vec::new();
    for r in &a.services {
        match services
            .remove_service(RemoveServiceRequest {
                service_ref: r.clone(),
            })
            .await
        {
            Ok(_) => println!("{r}"),
            Err(s) if s.code() == tonic::Code::NotFound => {
                errors.push(anyhow::anyhow!("no such service: {r}"));
            }
            Err(s) => errors.push(status_error(s)),
        }
    }
    report_errors(errors)
}

#[cfg(test)]
mod tests;
