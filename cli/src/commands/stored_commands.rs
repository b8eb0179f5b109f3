//! The four subcommands `secret` and `config` share (`create`, `ls`,
//! `inspect`, `rm`), run once for either kind: `secret.rs` and `config.rs`
//! only declare their flags and help and hand over an [`Op`]. The one place
//! the kinds differ, which gRPC service is called, is [`Client`].

use clap::Args;
use rswarm_proto::control::configs_client::ConfigsClient;
use rswarm_proto::control::secrets_client::SecretsClient;
use rswarm_proto::control::*;
use rswarm_proto::spec::secrets::Kind;
use rswarm_proto::types::{Annotations, ConfigSpec, SecretSpec};
use tonic::transport::Channel;

use super::stored_files::{parse_filters, read_spec, report_removals};
use crate::client::{status_error, ClientOpts};
use crate::format::output::render_inspect;
use crate::format::stored_files::{inspect_json, matches, pretty, render_list_of, StoredFile};

/// `ls`'s flags, the same for both kinds.
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

/// One subcommand, with its arguments, whatever the kind.
pub enum Op {
    Create {
        name: String,
        file: String,
        labels: Vec<String>,
    },
    Ls {
        quiet: bool,
        filters: Vec<String>,
        format: Option<String>,
    },
    Inspect {
        format: Option<String>,
        pretty: bool,
        refs: Vec<String>,
    },
    Rm(Vec<String>),
}

/// The control API service of one kind.
enum Client {
    Secrets(SecretsClient<Channel>),
    Configs(ConfigsClient<Channel>),
}

impl Client {
    fn new(kind: Kind, ch: Channel) -> Self {
        match kind {
            Kind::Secret => Client::Secrets(SecretsClient::new(ch)),
            Kind::Config => Client::Configs(ConfigsClient::new(ch)),
        }
    }

    async fn create(&mut self, annotations: Annotations, data: Vec<u8>) -> anyhow::Result<String> {
        let annotations = Some(annotations);
        let id = match self {
            Client::Secrets(c) => {
                let spec = Some(SecretSpec { annotations, data });
                let req = CreateSecretRequest {
                    spec,
                    reuse_if_same: false,
                };
                c.create_secret(req)
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .id
            }
            Client::Configs(c) => {
                let spec = Some(ConfigSpec { annotations, data });
                let req = CreateConfigRequest {
                    spec,
                    reuse_if_same: false,
                };
                c.create_config(req)
                    .await
                    .map_err(status_error)?
                    .into_inner()
                    .id
            }
        };
        Ok(id)
    }

    async fn list(&mut self) -> anyhow::Result<Vec<StoredFile>> {
        Ok(match self {
            Client::Secrets(c) => c
                .list_secrets(ListSecretsRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .secrets
                .iter()
                .map(StoredFile::from)
                .collect(),
            Client::Configs(c) => c
                .list_configs(ListConfigsRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .configs
                .iter()
                .map(StoredFile::from)
                .collect(),
        })
    }

    async fn get(&mut self, r: &str) -> anyhow::Result<StoredFile> {
        Ok(match self {
            Client::Secrets(c) => {
                let req = GetSecretRequest {
                    secret_ref: r.to_string(),
                };
                StoredFile::from(&c.get_secret(req).await.map_err(status_error)?.into_inner())
            }
            Client::Configs(c) => {
                let req = GetConfigRequest {
                    config_ref: r.to_string(),
                };
                StoredFile::from(&c.get_config(req).await.map_err(status_error)?.into_inner())
            }
        })
    }

    async fn remove(&mut self, r: &str) -> anyhow::Result<()> {
        match self {
            Client::Secrets(c) => {
                let req = RemoveSecretRequest {
                    secret_ref: r.to_string(),
                };
                c.remove_secret(req).await.map_err(status_error)?;
            }
            Client::Configs(c) => {
                let req = RemoveConfigRequest {
                    config_ref: r.to_string(),
                };
                c.remove_config(req).await.map_err(status_error)?;
            }
        }
        Ok(())
    }
}

/// Runs `op` for `kind`. Everything typed is checked before connecting.
pub async fn run(opts: &ClientOpts, kind: Kind, op: Op) -> anyhow::Result<()> {
    let secret = matches!(kind, Kind::Secret);
    let created = match &op {
        Op::Create { name, file, labels } => Some(read_spec(kind, name, file, labels)?),
        _ => None,
    };
    let filters = match &op {
        Op::Ls { filters, .. } => parse_filters(filters)?,
        _ => vec![],
    };
    if let Op::Inspect {
        pretty: true,
        format: Some(_),
        ..
    } = &op
    {
        anyhow::bail!("--format is incompatible with human friendly format");
    }
    let (ch, _) = opts.connect().await?;
    let mut client = Client::new(kind, ch);
    match op {
        Op::Create { .. } => {
            if let Some((annotations, data)) = created {
                println!("{}", client.create(annotations, data).await?);
            }
        }
        Op::Ls { quiet, format, .. } => {
            let all: Vec<StoredFile> = client
                .list()
                .await?
                .into_iter()
                .filter(|o| matches(o, &filters))
                .collect();
            let now = super::task::now_nanos();
            print!(
                "{}",
                render_list_of(&all, now, secret, format.as_deref(), quiet)?
            );
        }
        Op::Inspect {
            format,
            pretty: human,
            refs,
        } => {
            let mut found = vec![];
            for r in &refs {
                found.push(client.get(r).await?);
            }
            if human {
                print!("{}", pretty(&found, secret));
            } else {
                let values: Vec<_> = found.iter().map(inspect_json).collect();
                print!("{}", render_inspect(&values, format.as_deref())?);
            }
        }
        Op::Rm(refs) => {
            let mut results = vec![];
            for r in refs {
                let res = client.remove(&r).await;
                results.push((r, res));
            }
            report_removals(results)?;
        }
    }
    Ok(())
}
