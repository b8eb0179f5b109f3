//! Whole lists of nodes, services and tasks, read page by page from the
//! Control API (a page is at most ~2 MiB, see the manager's
//! `controlapi::paging`), so no list breaks on the size or number of its
//! objects. The clients also accept messages up to [`MAX_DECODE_BYTES`], so
//! a single big object (a spec is bounded by 512 KiB) always fits.

use anyhow::bail;
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{ListNodesRequest, ListServicesRequest, ListTasksRequest};
use rswarm_proto::types::{Node, Service, Task};
use tonic::transport::Channel;

use crate::client::status_error;

/// Largest answer a list client decodes (tonic's default is 4 MiB).
pub const MAX_DECODE_BYTES: usize = 16 * 1024 * 1024;

/// Guards against a server that hands back the same page token forever.
fn advanced(prev: &str, next: &str) -> anyhow::Result<()> {
    if !next.is_empty() && next <= prev {
        bail!("the manager returned a list page token that does not advance ({next:?})");
    }
    Ok(())
}

/// Every node.
pub async fn all_nodes(control: &mut ControlClient<Channel>) -> anyhow::Result<Vec<Node>> {
    let mut client = control.clone().max_decoding_message_size(MAX_DECODE_BYTES);
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_nodes(ListNodesRequest {
                page_token: token.clone(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        out.extend(page.nodes);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        advanced(&token, &page.next_page_token)?;
        token = page.next_page_token;
    }
}

/// Every service.
pub async fn all_services(services: &mut ServicesClient<Channel>) -> anyhow::Result<Vec<Service>> {
    let mut client = services.clone().max_decoding_message_size(MAX_DECODE_BYTES);
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_services(ListServicesRequest {
                page_token: token.clone(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        out.extend(page.services);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        advanced(&token, &page.next_page_token)?;
        token = page.next_page_token;
    }
}

/// Every task `request` selects (its page token is ignored).
pub async fn all_tasks(
    services: &mut ServicesClient<Channel>,
    request: ListTasksRequest,
) -> anyhow::Result<Vec<Task>> {
    let mut client = services.clone().max_decoding_message_size(MAX_DECODE_BYTES);
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_tasks(ListTasksRequest {
                page_token: token.clone(),
                ..request.clone()
            })
            .await
            .map_err(status_error)?
            .into_inner();
        out.extend(page.tasks);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        advanced(&token, &page.next_page_token)?;
        token = page.next_page_token;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_must_advance() {
        assert!(advanced("", "a").is_ok());
        assert!(advanced("a", "b").is_ok());
        assert!(advanced("b", "b").is_err());
        assert!(advanced("b", "a").is_err());
    }
}
