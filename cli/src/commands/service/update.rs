//! `service update` and `service rollback`: read the service, apply the
//! edits Docker's flags mean to its spec (or ask for the previous spec),
//! send it with the spec version it was read at (so a change made meanwhile
//! is refused, not overwritten), print the name as typed, then follow the
//! update with Docker's progress display unless `--detach`. Every flag is
//! parsed and the new spec validated before the one call that changes
//! anything, so a bad flag changes nothing.

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::UpdateServiceRequest;
use rswarm_proto::types::Service;

use super::converge::{follow, Following, ProgressLost};
use super::{get_service, RollbackArgs, UpdateArgs};
use crate::client::{status_error, ClientOpts};
use crate::servicespec::edits::{self, SpecEdit};
use crate::servicespec::flags::LocalInputs;

pub(super) async fn update(opts: &ClientOpts, a: UpdateArgs) -> anyhow::Result<()> {
    a.flags.check_rollback_alone()?;
    if a.flags.rollback && a.with_registry_auth {
        anyhow::bail!("other flags may not be combined with --rollback");
    }
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let service = get_service(&mut services, &a.service).await?;
    let (request, following) = if a.flags.rollback {
        (rollback_request(&service), Following::Rollback)
    } else {
        let current = service.spec.clone().unwrap_or_default();
        let mut spec = a.flags.to_spec(&current, &LocalInputs::process())?;
        // `--with-registry-auth`: the stored credentials of the image's
        // registry go with the spec; without it the manager keeps the ones
        // sent before (none leave the client).
        if a.with_registry_auth {
            let image = spec
                .task
                .as_ref()
                .and_then(|t| t.container.as_ref())
                .map(|c| c.image.clone())
                .unwrap_or_default();
            if let Some(auth) = crate::registry_auth::registry_auth_for(&image)? {
                edits::apply(&mut spec, [SpecEdit::RegistryAuth(auth)]);
            }
        }
        let request = UpdateServiceRequest {
            service_ref: service.id.clone(),
            spec_version: service.meta.as_ref().and_then(|m| m.spec_version),
            spec: Some(spec),
            rollback: false,
        };
        (request, Following::Update)
    };
    let updated = send(&mut services, request).await?;
    let following = followed_as(&service, &updated, following);
    println!("{}", a.service);
    if a.progress.detach.unwrap_or(false) {
        return Ok(());
    }
    let mut control = ControlClient::new(channel);
    followed(
        follow(
            &mut services,
            &mut control,
            &service.id,
            a.progress.quiet,
            following,
        )
        .await,
        &a.service,
    )
}

pub(super) async fn rollback(opts: &ClientOpts, a: RollbackArgs) -> anyhow::Result<()> {
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let service = get_service(&mut services, &a.service).await?;
    let updated = send(&mut services, rollback_request(&service)).await?;
    let following = followed_as(&service, &updated, Following::Rollback);
    println!("{}", a.service);
    if a.progress.detach.unwrap_or(false) {
        return Ok(());
    }
    let mut control = ControlClient::new(channel);
    followed(
        follow(
            &mut services,
            &mut control,
            &service.id,
            a.progress.quiet,
            following,
        )
        .await,
        &a.service,
    )
}

/// Only a changed task template starts an update or rollback (the manager
/// moves the service's spec_version on, makes new tasks and sets the update
/// status); anything else converges as a scale does, whatever status an
/// earlier update left.
fn followed_as(before: &Service, after: &Service, requested: Following) -> Following {
    if after.spec_version > before.spec_version {
        requested
    } else {
        Following::Change
    }
}

/// Back to the previous spec, refused if the spec changed since it was read.
fn rollback_request(service: &Service) -> UpdateServiceRequest {
    UpdateServiceRequest {
        service_ref: service.id.clone(),
        spec_version: service.meta.as_ref().and_then(|m| m.spec_version),
        spec: None,
        rollback: true,
    }
}

/// Sends the update; answers the service as stored after it.
async fn send(
    services: &mut ServicesClient<tonic::transport::Channel>,
    request: UpdateServiceRequest,
) -> anyhow::Result<Service> {
    Ok(services
        .update_service(request)
        .await
        .map_err(status_error)?
        .into_inner())
}

/// The service was changed: losing sight of its progress is said, but is
/// not a failure of the update.
fn followed(result: anyhow::Result<()>, service: &str) -> anyhow::Result<()> {
    match result {
        Err(e) if e.is::<ProgressLost>() => {
            eprintln!("service {service} was updated, but its progress could not be followed: {e}");
            Ok(())
        }
        other => other,
    }
}
