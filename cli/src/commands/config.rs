//! `rswarm config create | ls | inspect | rm`: the cluster's configs, with
//! Docker's flags, columns and JSON. A config is not secret: `inspect`
//! shows its data (base64 in JSON, as text with `--pretty`), as Docker's.

use clap::{Args, Subcommand};
use rswarm_proto::spec::secrets::Kind;

use super::stored_commands::{self, LsArgs, Op};
use crate::client::ClientOpts;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Create a config from a file or STDIN as content
    Create(CreateArgs),
    /// List configs
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more configs
    Inspect(InspectArgs),
    /// Remove one or more configs
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Config labels
    #[arg(short, long, value_name = "list")]
    pub label: Vec<String>,
    #[arg(value_name = "CONFIG")]
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
    #[arg(required = true, value_name = "CONFIG")]
    pub configs: Vec<String>,
}

pub async fn run(opts: &ClientOpts, cmd: ConfigCommand) -> anyhow::Result<()> {
    let op = match cmd {
        ConfigCommand::Create(a) => Op::Create {
            name: a.name,
            file: a.file,
            labels: a.label,
        },
        ConfigCommand::Ls(a) => Op::Ls {
            quiet: a.quiet,
            filters: a.filter,
            format: a.format,
        },
        ConfigCommand::Inspect(a) => Op::Inspect {
            format: a.format,
            pretty: a.pretty,
            refs: a.configs,
        },
        ConfigCommand::Rm { configs } => Op::Rm(configs),
    };
    stored_commands::run(opts, Kind::Config, op).await
}
