//! `rswarm stack`: applications described in Compose files, with Docker's
//! commands, flags and wording: `config` (the merged, interpolated files,
//! without a daemon), `deploy`, `ls`, `services`, `ps` and `rm`.
//!
//! A stack is not an object of its own: it is the services, networks,
//! secrets and configs labelled `com.docker.stack.namespace=<stack>`, as
//! in Docker. This module
//! owns the command line and the dispatch; `files` reads the `-c` files,
//! `config` and `deploy` use them, `resolve` pins images to registry
//! digests (`--resolve-image`), `diff` decides what a deploy changes,
//! `list` has `ls`, `services` and `ps`, and `rm` removes a stack.

mod config;
mod deploy;
mod diff;
mod files;
mod list;
mod resolve;
mod rm;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::service::LsArgs;
use super::task::TaskListArgs;
use crate::client::ClientOpts;

#[derive(Subcommand, Debug)]
pub enum StackCommand {
    /// Outputs the final config file, after doing merges and interpolations
    Config(ConfigArgs),
    /// Deploy a new stack or update an existing stack
    #[command(alias = "up")]
    Deploy(DeployArgs),
    /// List stacks
    #[command(alias = "list")]
    Ls(LsStacksArgs),
    /// List the tasks in the stack
    Ps(PsArgs),
    /// Remove one or more stacks
    #[command(aliases = ["remove", "down"])]
    Rm(RmArgs),
    /// List the services in the stack
    Services(ServicesArgs),
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Path to a Compose file, or "-" to read from stdin (repeatable: merged in order)
    #[arg(
        short = 'c',
        long = "compose-file",
        value_name = "FILE",
        required = true
    )]
    compose_file: Vec<String>,
    /// Read variables from this file instead of the .env beside the first Compose file
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// Path to a Compose file, or "-" to read from stdin (repeatable: merged in order)
    #[arg(
        short = 'c',
        long = "compose-file",
        value_name = "FILE",
        required = true
    )]
    compose_file: Vec<String>,
    /// Read variables from this file instead of the .env beside the first Compose file
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Prune services that are no longer referenced
    #[arg(long)]
    prune: bool,
    /// Exit immediately instead of waiting for the stack services to converge (default true)
    #[arg(
        short = 'd',
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "bool"
    )]
    detach: Option<bool>,
    /// Suppress progress output
    #[arg(short, long)]
    quiet: bool,
    /// Query the registry to resolve image digest ("always", "changed", "never")
    #[arg(long, value_name = "string", default_value = "never")]
    resolve_image: String,
    /// Send registry authentication details to Swarm agents
    #[arg(long = "with-registry-auth")]
    with_registry_auth: bool,
    #[arg(value_name = "STACK")]
    stack: String,
}

#[derive(Args, Debug)]
pub struct LsStacksArgs {
    /// Format output using a Go template, "table TEMPLATE" or "json"
    #[arg(long, value_name = "string")]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServicesArgs {
    #[command(flatten)]
    list: LsArgs,
    #[arg(value_name = "STACK")]
    stack: String,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    #[command(flatten)]
    list: TaskListArgs,
    #[arg(value_name = "STACK")]
    stack: String,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[arg(required = true, value_name = "STACK")]
    stacks: Vec<String>,
}

pub async fn run(opts: &ClientOpts, cmd: StackCommand) -> anyhow::Result<()> {
    match cmd {
        StackCommand::Config(a) => config::config(a),
        StackCommand::Deploy(a) => deploy::deploy(opts, a).await,
        StackCommand::Ls(a) => list::ls(opts, a).await,
        StackCommand::Ps(a) => list::ps(opts, a).await,
        StackCommand::Rm(a) => rm::rm(opts, a).await,
        StackCommand::Services(a) => list::services(opts, a).await,
    }
}

#[cfg(test)]
mod tests;
