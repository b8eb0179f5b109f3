//! `service scale SERVICE=REPLICAS…`: checks every argument first, sets the
//! replicas (or a job's total completions) on the spec version it read (the
//! manager redoes the write itself when only status changed meanwhile), then
//! waits for convergence unless `--detach`.

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::UpdateServiceRequest;
use rswarm_proto::types::service_spec::Mode;

use super::converge::wait_for_convergence;
use super::{get_service, report_errors, ScaleArgs};
use crate::client::{status_error, ClientOpts};
use crate::servicespec::units::parse_uint;

/// `SERVICE=REPLICAS` arguments, all checked before any call.
pub(super) fn parse_scales(raw: &[String]) -> anyhow::Result<Vec<(String, u64)>> {
    raw.iter()
        .map(|arg| {
            let (name, n) = arg
                .split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("invalid scale specifier '{arg}': expected SERVICE=REPLICAS")
                })?;
            let n = parse_uint(n)
                .map_err(|e| anyhow::anyhow!("{name}: invalid replicas value {n}: {e}"))?;
            // The manager checks too; refusing here changes nothing at all.
            rswarm_manager::controlapi::limits::check_replicas("replicas", n)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            Ok((name.to_string(), n))
        })
        .collect()
}

pub(super) async fn scale(opts: &ClientOpts, a: ScaleArgs) -> anyhow::Result<()> {
    let scales = parse_scales(&a.scales)?;
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let mut control = ControlClient::new(channel);
    let mut errors = Vec::new();
    for (name, replicas) in scales {
        let result: anyhow::Result<()> = async {
            let service = get_service(&mut services, &name).await?;
            let mut spec = service.spec.clone().unwrap_or_default();
            match spec.mode.as_mut() {
                Some(Mode::Replicated(r)) => r.replicas = replicas,
                Some(Mode::ReplicatedJob(j)) => j.total_completions = replicas,
                _ => anyhow::bail!("scale can only be used with replicated or replicated-job mode"),
            }
            // Refused only if someone else changed the spec since it was
            // read; the allocator's VIPs or a job's status never refuse it.
            services
                .update_service(UpdateServiceRequest {
                    service_ref: service.id.clone(),
                    spec_version: service.meta.as_ref().and_then(|m| m.spec_version),
                    spec: Some(spec),
                    rollback: false,
                })
                .await
                .map_err(status_error)?;
            println!("{name} scaled to {replicas}");
            if !a.detach.unwrap_or(false) {
                wait_for_convergence(&mut services, &mut control, &service.id, false, true).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            errors.push(anyhow::anyhow!("{name}: {e}"));
        }
    }
    report_errors(errors)
}
