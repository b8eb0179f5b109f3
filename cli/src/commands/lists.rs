//! Whole lists of nodes, services and tasks for the commands: the paging
//! loop is the wire library's (`rswarm_proto::paging`); here its errors
//! become the CLI's.

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::ListTasksRequest;
use rswarm_proto::paging;
use rswarm_proto::types::{Node, Service, Task};
use tonic::transport::Channel;

use crate::client::status_error;

/// Every node.
pub async fn all_nodes(control: &mut ControlClient<Channel>) -> anyhow::Result<Vec<Node>> {
    paging::all_nodes(control).await.map_err(status_error)
}

/// Every service.
pub async fn all_services(services: &mut ServicesClient<Channel>) -> anyhow::Result<Vec<Service>> {
    paging::all_services(services).await.map_err(status_error)
}

/// Every task `request` selects (its page token is ignored).
pub async fn all_tasks(
    services: &mut ServicesClient<Channel>,
    request: ListTasksRequest,
) -> anyhow::Result<Vec<Task>> {
    paging::all_tasks(services, request)
        .await
        .map_err(status_error)
}
