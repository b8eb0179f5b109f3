//! `rswarm secret create | ls | inspect | rm`: the cluster's secrets, with
//! Docker's flags, columns and JSON. No answer of the control API carries a
//! value, so none is ever printed.

use clap::{Args, Subcommand};
use rswarm_proto::control::secrets_client::SecretsClient;
use rswarm_proto::control::*;
use rswarm_proto::spec::secrets::Kind;
use rswarm_proto::types::SecretSpec;

use super::stored_files::{parse_filters, read_spec, report_removals};
use crate::client::{status_error, ClientOpts};
use crate::format::output::render_inspect;
use crate::format::stored_files::{inspect_json, matches, pretty, render_list_of, StoredFile};

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
    #[arg(required = true, value_name = "SECRET")]
    pub secrets: Vec<String>,
}

pub async fn run(opts: &ClientOpts, cmd: SecretCommand) -> anyhow::Result<()> {
    // Everything typed is checked before connecting.
    let spec = match &cmd {
        SecretCommand::Create(a) => {
            let (annotations, data) = read_spec(Kind::Secret, &a.name, &a.file, &a.label)?;
            Some(SecretSpec {
                annotations: Some(annotations),
                data,
            })
        }
        _ => None,
    };
    let filters = match &cmd {
        SecretCommand::Ls(a) => parse_filters(&a.filter)?,
        _ => vec![],
    };
    if let SecretCommand::Inspect(a) = &cmd {
        if a.pretty && a.format.is_some() {
            anyhow::bail!("--format is incompatible with human friendly format");
        }
    }
    let (ch, _) = opts.connect().await?;
    let mut client = SecretsClient::new(ch);
    match cmd {
        SecretCommand::Create(_) => {
            let s = client
                .create_secret(CreateSecretRequest {
                    spec,
                    reuse_if_same: false,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", s.id);
        }
        SecretCommand::Ls(a) => {
            let all: Vec<StoredFile> = client
                .list_secrets(ListSecretsRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .secrets
                .iter()
                .map(StoredFile::from)
                .filter(|o| matches(o, &filters))
                .collect();
            let now = super::task::now_nanos();
            print!(
                "{}",
                render_list_of(&all, now, true, a.format.as_deref(), a.quiet)?
            );
        }
        SecretCommand::Inspect(a) => {
            let mut found = vec![];
            for r in &a.secrets {
                let s = client
                    .get_secret(GetSecretRequest {
                        secret_ref: r.clone(),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                found.push(StoredFile::from(&s));
            }
            if a.pretty {
                print!("{}", pretty(&found, true));
            } else {
                let values: Vec<_> = found.iter().map(inspect_json).collect();
                print!("{}", render_inspect(&values, a.format.as_deref())?);
            }
        }
        SecretCommand::Rm { secrets } => {
            let mut results = vec![];
            for r in secrets {
                let res = client
                    .remove_secret(RemoveSecretRequest {
                        secret_ref: r.clone(),
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
