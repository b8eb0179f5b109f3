//! `stack deploy`: the files are loaded and checked whole, turned into the
//! stack's specs (`compose::to_spec`), compared with what the cluster has
//! (`diff`; the stack's existing secrets are confirmed unchanged by the
//! control API, which alone sees their values), and only then changed, one
//! call per object with Docker's line before it ("Creating secret
//! shop_db_password"; `--resolve-image` pins images to registry digests
//! first, in `resolve`). A call that fails stops the deploy; what was and
//! was not changed is said, one line each. With `--with-registry-auth` each
//! service carries the user's credentials for its image's registry
//! (`registry_auth`). With `--detach=false` the command then waits for
//! every service of the file to converge (`service create`'s wait, one
//! service after another; a service whose task template changed is
//! followed as `service update` follows it: its new tasks and its update
//! status). Without it nothing waits: a changed service rolls per its
//! update config in the background, as Docker's detached deploy does.

use rswarm_proto::control::configs_client::ConfigsClient;
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::networks_client::NetworksClient;
use rswarm_proto::control::secrets_client::SecretsClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{
    CreateConfigRequest, CreateNetworkRequest, CreateSecretRequest, CreateServiceRequest,
    ListConfigsRequest, ListNetworksRequest, ListSecretsRequest, RemoveConfigRequest,
    RemoveSecretRequest, RemoveServiceRequest, UpdateServiceRequest,
};
use rswarm_proto::types::SecretSpec;
use tonic::transport::Channel;

use super::diff::{diff, Action, Cluster};
use super::files::read_sources;
use super::resolve::{pin_images, ResolveImage};
use super::DeployArgs;
use crate::client::{status_error, ClientOpts};
use crate::commands::lists::all_services;
use crate::commands::service::{follow, Following};
use crate::compose::to_spec::StackPlan;
use crate::compose::{self, to_spec, Problems};
use crate::servicespec::edits::{self, SpecEdit};

/// The control API's services a deploy calls.
struct Clients {
    services: ServicesClient<Channel>,
    networks: NetworksClient<Channel>,
    secrets: SecretsClient<Channel>,
    configs: ConfigsClient<Channel>,
}

/// `--with-registry-auth`: each service gets what `auth_for` gives for its
/// image (`registry_auth::registry_auth_for`: the stored credentials of the
/// image's registry); a service whose registry has none gets nothing.
pub(super) fn add_registry_auth(
    plan: &mut StackPlan,
    auth_for: impl Fn(&str) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<()> {
    for spec in &mut plan.services {
        let image = spec
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .map(|c| c.image.clone())
            .unwrap_or_default();
        if let Some(auth) = auth_for(&image)? {
            edits::apply(spec, [SpecEdit::RegistryAuth(auth)]);
        }
    }
    Ok(())
}

pub(super) async fn deploy(opts: &ClientOpts, a: DeployArgs) -> anyhow::Result<()> {
    let resolve_image = ResolveImage::parse(&a.resolve_image)?;
    let (sources, dir) = read_sources(&a.compose_file)?;
    let environ = |k: &str| std::env::var(k).ok();
    let loaded =
        compose::load(&sources, &dir, a.env_file.as_deref(), &environ).map_err(Problems)?;
    for w in &loaded.warnings {
        // Docker leaves a blank line after the list of ignored keys.
        if w.starts_with("Ignoring unsupported options") {
            eprintln!("{w}\n");
        } else {
            eprintln!("{w}");
        }
    }
    let label: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let mut plan = to_spec::plan(&loaded.project, &a.stack, &label.join(", ")).map_err(Problems)?;
    if a.with_registry_auth {
        add_registry_auth(&mut plan, crate::registry_auth::registry_auth_for)?;
    }

    let (channel, _) = opts.connect().await?;
    let mut c = Clients {
        services: ServicesClient::new(channel.clone()),
        networks: NetworksClient::new(channel.clone()),
        secrets: SecretsClient::new(channel.clone()),
        configs: ConfigsClient::new(channel.clone()),
    };
    let existing = all_services(&mut c.services).await?;
    let nets = c
        .networks
        .list_networks(ListNetworksRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .networks;
    let secrets = c
        .secrets
        .list_secrets(ListSecretsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .secrets;
    let configs = c
        .configs
        .list_configs(ListConfigsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .configs;
    let cluster = Cluster {
        services: &existing,
        networks: &nets,
        secrets: &secrets,
        configs: &configs,
    };
    // `--resolve-image`: the images the services run, before comparing.
    pin_images(resolve_image, &mut plan.services, &existing, &channel).await?;
    let changes = diff(&plan, &a.stack, &cluster, a.prune).map_err(Problems)?;
    confirm_secrets(&mut c.secrets, &changes.confirm_secrets).await?;

    let mut ids: Vec<(String, String, Following)> = Vec::new();
    for (i, action) in changes.actions.iter().enumerate() {
        println!("{}", action.announce());
        match apply(&mut c, action).await {
            Ok(Some((id, spec_version))) => {
                // The service's spec_version moves on only when its task
                // template changed: then an update runs.
                let before = existing.iter().find(|s| s.id == id).map(|s| s.spec_version);
                let following = match before {
                    None => Following::Create,
                    Some(v) if v < spec_version => Following::Update,
                    Some(_) => Following::Change,
                };
                ids.push((id, action.name().to_string(), following));
            }
            Ok(None) => {}
            Err(e) => return Err(Problems(failure_report(&changes.actions, i, &e)).into()),
        }
    }
    if !a.detach.unwrap_or(true) {
        ids.extend(
            changes
                .unchanged
                .iter()
                .map(|(id, name)| (id.clone(), name.clone(), Following::Change)),
        );
        // The file's order, which the plan keeps.
        let order = |name: &str| {
            plan.services
                .iter()
                .position(|s| s.annotations.as_ref().is_some_and(|an| an.name == name))
        };
        ids.sort_by_key(|(_, name, _)| order(name));
        wait_all(channel, &ids, a.quiet).await?;
    }
    Ok(())
}

/// The stack's existing secrets hold what the file says: the control API
/// answers a create of the same name and value (`reuse_if_same`) with the
/// existing secret and refuses another value; nothing is created, as the
/// name is taken. Every refusal is reported before anything is changed.
async fn confirm_secrets(
    secrets: &mut SecretsClient<Channel>,
    specs: &[SecretSpec],
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for spec in specs {
        let r = secrets
            .create_secret(CreateSecretRequest {
                spec: Some(spec.clone()),
                reuse_if_same: true,
            })
            .await;
        if let Err(s) = r {
            errors.push(format!("{}", status_error(s)));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problems(errors).into())
    }
}

/// Makes one call; answers the service's ID for a created or updated one.
/// Makes one change; for a service, answers its ID and (service) spec
/// version as stored after the change.
async fn apply(c: &mut Clients, action: &Action) -> anyhow::Result<Option<(String, u64)>> {
    let (services, networks) = (&mut c.services, &mut c.networks);
    match action {
        Action::CreateSecret(spec) => {
            // The same secret created meanwhile is not an error.
            c.secrets
                .create_secret(CreateSecretRequest {
                    spec: Some(spec.clone()),
                    reuse_if_same: true,
                })
                .await
                .map_err(status_error)?;
            Ok(None)
        }
        Action::CreateConfig(spec) => {
            c.configs
                .create_config(CreateConfigRequest {
                    spec: Some(spec.clone()),
                    reuse_if_same: true,
                })
                .await
                .map_err(status_error)?;
            Ok(None)
        }
        Action::RemoveSecret { id, .. } => {
            c.secrets
                .remove_secret(RemoveSecretRequest {
                    secret_ref: id.clone(),
                })
                .await
                .map_err(status_error)?;
            Ok(None)
        }
        Action::RemoveConfig { id, .. } => {
            c.configs
                .remove_config(RemoveConfigRequest {
                    config_ref: id.clone(),
                })
                .await
                .map_err(status_error)?;
            Ok(None)
        }
        Action::RemoveService { id, .. } => {
            services
                .remove_service(RemoveServiceRequest {
                    service_ref: id.clone(),
                })
                .await
                .map_err(status_error)?;
            Ok(None)
        }
        Action::CreateNetwork(spec) => {
            networks
                .create_network(CreateNetworkRequest {
                    spec: Some(spec.clone()),
                })
                .await
                .map_err(status_error)?;
            Ok(None)
        }
        Action::CreateService(spec) => {
            let s = services
                .create_service(CreateServiceRequest {
                    spec: Some(spec.clone()),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            Ok(Some((s.id, s.spec_version)))
        }
        Action::UpdateService {
            id,
            spec_version,
            spec,
            ..
        } => {
            // Refused if someone changed the spec since it was read.
            let s = services
                .update_service(UpdateServiceRequest {
                    service_ref: id.clone(),
                    spec_version: *spec_version,
                    spec: Some(spec.clone()),
                    rollback: false,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            Ok(Some((s.id, s.spec_version)))
        }
    }
}

/// The lines a deploy that failed at `actions[failed]` prints: the error,
/// what was changed, what was not.
pub(super) fn failure_report(actions: &[Action], failed: usize, e: &anyhow::Error) -> Vec<String> {
    let (_, verb) = actions[failed].verb();
    let mut lines = vec![format!(
        "failed to {verb} {}: {e}",
        actions[failed].object()
    )];
    let done: Vec<String> = actions[..failed]
        .iter()
        .map(|a| format!("{} {}", a.verb().0, a.object()))
        .collect();
    lines.push(if done.is_empty() {
        "changed: nothing".to_string()
    } else {
        format!("changed: {}", done.join(", "))
    });
    let not_done: Vec<String> = actions[failed..]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (_, verb) = a.verb();
            if i == 0 {
                format!("{} ({verb} failed)", a.object())
            } else {
                format!("{} (not {})", a.object(), a.verb().0)
            }
        })
        .collect();
    lines.push(format!("not changed: {}", not_done.join(", ")));
    lines
}

/// Waits for each service (ID, name, what to follow) to converge, one after
/// another; every service that does not is reported.
async fn wait_all(
    channel: Channel,
    ids: &[(String, String, Following)],
    quiet: bool,
) -> anyhow::Result<()> {
    let mut services = ServicesClient::new(channel.clone());
    let mut control = ControlClient::new(channel);
    let mut errors = Vec::new();
    for (id, name, following) in ids {
        if !quiet {
            println!("{name}");
        }
        if let Err(e) = follow(&mut services, &mut control, id, quiet, *following).await {
            errors.push(format!("{e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problems(errors).into())
    }
}
