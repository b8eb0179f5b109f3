//! `service scale SERVICE=REPLICAS…`: checks every argument first, sets the
//! replicas (or a job's total completions) retrying on a version race the
//! spec did not cause, then waits for convergence unless `--detach`.

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
            // The service may change meanwhile without its spec changing
            // (the allocator's VIPs, a job's status): send again on the new
            // version; a spec someone else changed is a conflict.
            let mut version = service.meta.as_ref().and_then(|m| m.version);
            let mut attempts = 0;
            loop {
                let res = services
                    .update_service(UpdateServiceRequest {
                        service_ref: service.id.clone(),
                        version,
                        spec: Some(spec.clone()),
                        rollback: false,
                    })
                    .await;
                match res {
                    Ok(_) => break,
                    Err(s) if s.message().contains("out of sequence") && attempts < 5 => {
                        attempts += 1;
                        let fresh = get_service(&mut services, &service.id).await?;
                        if fresh.spec != service.spec {
                            return Err(status_error(s));
                        }
                        version = fresh.meta.as_ref().and_then(|m| m.version);
                    }
                    Err(s) => return Err(status_error(s)),
                }
            }
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
