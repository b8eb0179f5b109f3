//! Whole lists read page by page from the Control API (a page is at most
//! ~2 MiB, see the manager's `controlapi::paging`), so no list breaks on the
//! size or number of its objects: one loop for every list and every client
//! (the CLI, the benchmarks). The clients accept messages up to
//! [`MAX_DECODE_BYTES`], so a single big object (a spec is bounded by
//! 512 KiB) always fits.

use std::future::Future;

use tonic::transport::Channel;
use tonic::Status;

use crate::control::control_client::ControlClient;
use crate::control::services_client::ServicesClient;
use crate::control::{ListNodesRequest, ListServicesRequest, ListTasksRequest};
use crate::types::{Node, Service, Task};

/// Largest answer a list client decodes (tonic's default is 4 MiB).
pub const MAX_DECODE_BYTES: usize = 16 * 1024 * 1024;

/// Every node.
pub async fn all_nodes(control: &ControlClient<Channel>) -> Result<Vec<Node>, Status> {
    let client = control.clone().max_decoding_message_size(MAX_DECODE_BYTES);
    all_pages(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_nodes(ListNodesRequest { page_token })
                .await?
                .into_inner();
            Ok((page.nodes, page.next_page_token))
        }
    })
    .await
}

/// Every service.
pub async fn all_services(services: &ServicesClient<Channel>) -> Result<Vec<Service>, Status> {
    let client = services.clone().max_decoding_message_size(MAX_DECODE_BYTES);
    all_pages(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_services(ListServicesRequest { page_token })
                .await?
                .into_inner();
            Ok((page.services, page.next_page_token))
        }
    })
    .await
}

/// Every task `request` selects (its page token is ignored).
pub async fn all_tasks(
    services: &ServicesClient<Channel>,
    request: ListTasksRequest,
) -> Result<Vec<Task>, Status> {
    let client = services.clone().max_decoding_message_size(MAX_DECODE_BYTES);
    all_pages(|page_token| {
        let mut client = client.clone();
        let request = ListTasksRequest {
            page_token,
            ..request.clone()
        };
        async move {
            let page = client.list_tasks(request).await?.into_inner();
            Ok((page.tasks, page.next_page_token))
        }
    })
    .await
}

/// Calls `page` with each page token in turn (the first is empty) until the
/// answer's next token is empty; a token that does not advance is an error
/// (a server that hands back the same page forever).
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, Status>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), Status>>,
{
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = page(token.clone()).await?;
        out.extend(items);
        if next.is_empty() {
            return Ok(out);
        }
        advanced(&token, &next)?;
        token = next;
    }
}

fn advanced(prev: &str, next: &str) -> Result<(), Status> {
    if next <= prev {
        return Err(Status::internal(format!(
            "the manager returned a list page token that does not advance ('{next}')"
        )));
    }
    Ok(())
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

    #[tokio::test]
    async fn pages_are_read_until_the_token_is_empty_and_a_stuck_token_stops() {
        let pages = all_pages(|token| async move {
            Ok(match token.as_str() {
                "" => (vec![1, 2], "a".to_string()),
                "a" => (vec![3], "b".to_string()),
                _ => (vec![4], String::new()),
            })
        })
        .await
        .expect("pages");
        assert_eq!(pages, [1, 2, 3, 4]);
        let stuck = all_pages(|_| async { Ok((vec![1], "a".to_string())) }).await;
        assert!(stuck.is_err());
    }
}
