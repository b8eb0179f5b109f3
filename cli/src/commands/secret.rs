//! `rswarm secret create | ls | inspect | rm`: the cluster's secrets, with
//! Docker's flags, columns and JSON. No answer of the control API carries a
//! value, so none is ever printed.

use clap::{Args, Subcommand};
use rswarm_proto::spec::secrets::Kind;

use super::stored_commands::{self, LsArgs, Op};
use crate::client::ClientOpts;

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Create a secret from a file or STDIN as content
    Create(CreateArgs),
    /// List secrets
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more secrets
    Inspect(InspectArgs),
    /// Remove one or more secrets
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "SECRET")]
        secrets: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Secret labels
    #[arg(short, long, value_name = "list")]
    pub label: Vec<String>,
    #[arg(value_name = "SECRET")]
    pub name: String,
    /// A file, or - for standard input
    #[arg(value_name = "file|-")]
    pub file: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template, or "json"
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    #[arg(required = true, value_name = "SECRET")]
    pub secrets: Vec<String>,
}

pub async fn run(opts: &ClientOpts, cmd: SecretCommand) -> anyhow::Result<()> {
    let op = match cmd {
        SecretCommand::Create(a) => Op::Create {
            name: a.name,
            file: a.file,
            labels: a.label,
        },
        SecretCommand::Ls(a) => Op::Ls {
            quiet: a.quiet,
            filters: a.filter,
            format: a.format,
        },
        SecretCommand::Inspect(a) => Op::Inspect {
            format: a.format,
            pretty: a.pretty,
            refs: a.secrets,
        },
        SecretCommand::Rm { secrets } => Op::Rm(secrets),
    };
    stored_commands::run(opts, Kind::Secret, op).await
}
