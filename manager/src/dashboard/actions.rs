//! The dashboard's actions, each one call of the Control API's own code:
//! scale a service (as `service scale`), force-update it (as `service
//! update --force`: `force_update` + 1), roll it back (as `service
//! rollback`), and set a node's availability (as `node update
//! --availability`). Every write carries the spec version it read, so a
//! change made meanwhile by someone else refuses it instead of being lost.

use rswarm_proto::control::control_server::Control;
use rswarm_proto::control::{UpdateNodeRequest, UpdateServiceRequest};
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{NodeAvailability, Service};
use rswarm_raft::Store;
use tonic::Status;

use crate::controlapi::{limits, services, ControlApi};
use crate::objects;

fn spec_version(s: &Service) -> Option<rswarm_proto::types::Version> {
    s.meta.as_ref().and_then(|m| m.spec_version)
}

async fn write(store: &Store, req: UpdateServiceRequest) -> Result<(), Status> {
    services::update(store, req).await?;
    Ok(())
}

/// `service scale SERVICE=REPLICAS`.
pub(crate) async fn scale(store: &Store, service_ref: &str, replicas: u64) -> Result<(), Status> {
    limits::check_replicas("replicas", replicas)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let service = services::resolve_service(store, service_ref)?;
    let mut spec = service.spec.clone().unwrap_or_default();
    match spec.mode.as_mut() {
        Some(Mode::Replicated(r)) => r.replicas = replicas,
        Some(Mode::ReplicatedJob(j)) => j.total_completions = replicas,
        _ => {
            return Err(Status::invalid_argument(
                "scale can only be used with replicated or replicated-job mode",
            ))
        }
    }
    write(
        store,
        UpdateServiceRequest {
            service_ref: service.id.clone(),
            spec_version: spec_version(&service),
            spec: Some(spec),
            rollback: false,
        },
    )
    .await
}

/// `service update --force SERVICE`: the tasks are replaced even though
/// nothing else changed.
pub(crate) async fn force_update(store: &Store, service_ref: &str) -> Result<(), Status> {
    let service = services::resolve_service(store, service_ref)?;
    let mut spec = service.spec.clone().unwrap_or_default();
    let task = spec.task.get_or_insert_with(Default::default);
    task.force_update = task.force_update.wrapping_add(1);
    write(
        store,
        UpdateServiceRequest {
            service_ref: service.id.clone(),
            spec_version: spec_version(&service),
            spec: Some(spec),
            rollback: false,
        },
    )
    .await
}

/// `service rollback SERVICE`.
pub(crate) async fn rollback(store: &Store, service_ref: &str) -> Result<(), Status> {
    let service = services::resolve_service(store, service_ref)?;
    write(
        store,
        UpdateServiceRequest {
            service_ref: service.id.clone(),
            spec_version: spec_version(&service),
            spec: None,
            rollback: true,
        },
    )
    .await
}

/// The availability a user names, as `node update --availability` takes it.
pub(crate) fn parse_availability(s: &str) -> Result<NodeAvailability, Status> {
    match s {
        "active" => Ok(NodeAvailability::Active),
        "pause" => Ok(NodeAvailability::Pause),
        "drain" => Ok(NodeAvailability::Drain),
        other => Err(Status::invalid_argument(format!(
            "invalid availability {other:?}: expected active, pause or drain"
        ))),
    }
}

/// `node update --availability active|pause|drain NODE`.
pub(crate) async fn set_availability(
    store: &Store,
    node_ref: &str,
    availability: NodeAvailability,
) -> Result<(), Status> {
    let node = objects::resolve_node(store, node_ref)?;
    let mut spec = node.spec.clone().unwrap_or_default();
    spec.availability = availability as i32;
    ControlApi::new(store.clone())
        .update_node(tonic::Request::new(UpdateNodeRequest {
            node_ref: node.id.clone(),
            spec_version: node.meta.as_ref().and_then(|m| m.spec_version),
            spec: Some(spec),
        }))
        .await?;
    Ok(())
}
