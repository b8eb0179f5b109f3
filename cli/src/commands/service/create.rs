//! `service create`: applies the edits Docker's flags mean to the defaults,
//! checks the spec, sends it, prints the new ID, then waits for the service
//! to converge unless `--detach` (losing sight of the progress does not fail
//! the create).

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::CreateServiceRequest;

use super::converge::{wait_for_convergence, ProgressLost};
use super::CreateArgs;
use crate::client::{status_error, ClientOpts};
use crate::servicespec::edits::{self, SpecEdit};

pub(super) async fn create(opts: &ClientOpts, a: CreateArgs) -> anyhow::Result<()> {
    let (image, args) = a
        .image_and_args
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("\"service create\" requires at least 1 argument"))?;
    // Everything is parsed and checked before the first call.
    // The flags' edits over the defaults, validated (bounds included) by the
    // spec library the manager also runs: refusing early avoids sending 1 MB.
    let mut spec = a.flags.to_spec(image, args)?;
    // `--with-registry-auth`: the stored credentials of the image's
    // registry go with the spec; without the flag, none leave the client.
    if a.with_registry_auth {
        if let Some(auth) = crate::registry_auth::registry_auth_for(image)? {
            edits::apply(&mut spec, [SpecEdit::RegistryAuth(auth)]);
        }
    }
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let service = services
        .create_service(CreateServiceRequest { spec: Some(spec) })
        .await
        .map_err(status_error)?
        .into_inner();
    println!("{}", service.id);
    if a.progress.detach.unwrap_or(false) {
        return Ok(());
    }
    let mut control = ControlClient::new(channel);
    match wait_for_convergence(
        &mut services,
        &mut control,
        &service.id,
        a.progress.quiet,
        false,
    )
    .await
    {
        // The service exists: losing sight of its progress is not a failure
        // of the create.
        Err(e) if e.is::<ProgressLost>() => {
            eprintln!(
                "service {} was created, but its progress could not be followed: {e}",
                service.id
            );
            Ok(())
        }
        other => other,
    }
}
