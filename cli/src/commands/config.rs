//! `rswarm config create | ls | inspect | rm`: the cluster's configs, with
//! Docker's flags, columns and JSON. A config is not secret: `inspect`
//! shows its data (base64 in JSON, as text with `--pretty`), as Docker's.

use clap::{Args, Subcommand};
use rswarm_proto::control::configs_client::ConfigsClient;
use rswarm_proto::control::*;
use rswarm_proto::spec::secrets::Kind;
use rswarm_proto::types::ConfigSpec;

use super::stored_files::{parse_filters, read_spec, report_removals};
use crate::client::{status_error, ClientOpts};
use crate::format::output::render_inspect;
use crate::format::stored_files::{inspect_json, matches, pretty, render_list_of, StoredFile};

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
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template, or "json"
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
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
    // Everything typed is checked before connecting.
    let spec = match &cmd {
        ConfigCommand::Create(a) => {
            let (annotations, data) = read_spec(Kind::Config, &a.name, &a.file, &a.label)?;
            Some(ConfigSpec {
                annotations: Some(annotations),
                data,
            })
        }
        _ => None,
    };
    let filters = match &cmd {
        ConfigCommand::Ls(a) => parse_filters(&a.filter)?,
        _ => vec![],
    };
    if let ConfigCommand::Inspect(a) = &cmd {
        if a.pretty && a.format.is_some() {
            anyhow::bail!("--format is incompatible with human friendly format");
        }
    }
    let (ch, _) = opts.connect().await?;
    let mut client = ConfigsClient::new(ch);
    match cmd {
        ConfigCommand::Create(_) => {
            let s = client
                .create_config(CreateConfigRequest {
                    spec,
                    reuse_if_same: false,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", s.id);
        }
        ConfigCommand::Ls(a) => {
            let all: Vec<StoredFile> = client
                .list_configs(ListConfigsRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .configs
                .iter()
                .map(StoredFile::from)
                .filter(|o| matches(o, &filters))
                .collect();
            let now = super::task::now_nanos();
            print!(
                "{}",
                render_list_of(&all, now, false, a.format.as_deref(), a.quiet)?
            );
        }
        ConfigCommand::Inspect(a) => {
            let mut found = vec![];
            for r in &a.configs {
                let s = client
                    .get_config(GetConfigRequest {
                        config_ref: r.clone(),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                found.push(StoredFile::from(&s));
            }
            if a.pretty {
                print!("{}", pretty(&found, false));
            } else {
                let values: Vec<_> = found.iter().map(inspect_json).collect();
                print!("{}", render_inspect(&values, a.format.as_deref())?);
            }
        }
        ConfigCommand::Rm { configs } => {
            let mut results = vec![];
            for r in configs {
                let res = client
                    .remove_config(RemoveConfigRequest {
                        config_ref: r.clone(),
                    })
                    .await
                    .map(|_| ())
                    .map_err(status_error);
                results.push((r, res));
            }
            report_removals(results)?;
        }
    }
    Ok(())
}
