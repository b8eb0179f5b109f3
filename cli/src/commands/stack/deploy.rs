//! `stack deploy`: the files are loaded and checked whole, turned into the
//! stack's specs (`compose::to_spec`), compared with what the cluster has
//! (`diff`), and only then changed, one call per object with Docker's line
//! before it (`--resolve-image` pins images to registry digests first, in
//! `resolve`). A call that fails stops the deploy; what was and was not
//! changed is said, one line each. With `--detach=false` the command then
//! waits for every service of the file to converge (`service create`'s
//! wait, one service after another).

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::networks_client::NetworksClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{
    CreateNetworkRequest, CreateServiceRequest, ListNetworksRequest, RemoveServiceRequest,
    UpdateServiceRequest,
};
use tonic::transport::Channel;

use super::diff::{diff, Action};
use super::files::read_sources;
use super::resolve::{pin_images, ResolveImage};
use super::DeployArgs;
use crate::client::{status_error, ClientOpts};
use crate::commands::lists::all_services;
use crate::commands::service::wait_for_convergence;
use crate::compose::{self, to_spec, Problems};

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

    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let mut networks = NetworksClient::new(channel.clone());
    let existing = all_services(&mut services).await?;
    let nets = networks
        .list_networks(ListNetworksRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .networks;
    // `--resolve-image`: the images the services run, before comparing.
    pin_images(resolve_image, &mut plan.services, &existing, &channel).await?;
    let changes = diff(&plan, &a.stack, &existing, &nets, a.prune).map_err(Problems)?;

    let mut ids: Vec<(String, String, bool)> = Vec::new();
    for (i, action) in changes.actions.iter().enumerate() {
        println!("{}", action.announce());
        match apply(&mut services, &mut networks, action).await {
            Ok(Some(id)) => ids.push((
                id,
                action.name().to_string(),
                matches!(action, Action::UpdateService { .. }),
            )),
            Ok(None) => {}
            Err(e) => return Err(Problems(failure_report(&changes.actions, i, &e)).into()),
        }
    }
    if !a.detach.unwrap_or(true) {
        ids.extend(
            changes
                .unchanged
                .iter()
                .map(|(id, name)| (id.clone(), name.clone(), true)),
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

/// Makes one call; answers the service's ID for a created or updated one.
async fn apply(
    services: &mut ServicesClient<Channel>,
    networks: &mut NetworksClient<Channel>,
    action: &Action,
) -> anyhow::Result<Option<String>> {
    match action {
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
            Ok(Some(s.id))
        }
        Action::UpdateService {
            id,
            spec_version,
            spec,
            ..
        } => {
            // Refused if someone changed the spec since it was read.
            services
                .update_service(UpdateServiceRequest {
                    service_ref: id.clone(),
                    spec_version: *spec_version,
                    spec: Some(spec.clone()),
                    rollback: false,
                })
                .await
                .map_err(status_error)?;
            Ok(Some(id.clone()))
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

/// Waits for each service (ID, name, existed before) to converge, one after
/// another; every service that does not is reported.
async fn wait_all(
    channel: Channel,
    ids: &[(String, String, bool)],
    quiet: bool,
) -> anyhow::Result<()> {
    let mut services = ServicesClient::new(channel.clone());
    let mut control = ControlClient::new(channel);
    let mut errors = Vec::new();
    for (id, name, existed) in ids {
        if !quiet {
            println!("{name}");
        }
        if let Err(e) = wait_for_convergence(&mut services, &mut control, id, quiet, *existed).await
        {
            errors.push(format!("{e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problems(errors).into())
    }
}
