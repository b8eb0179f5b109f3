//! Pages of list answers. A list of nodes, services or tasks is cut into
//! pages of at most [`PAGE_BYTES`] encoded (always at least one object, so
//! every page makes progress), ordered by ID; the page token is the last ID
//! of the page before. No list answer can grow past a gRPC message limit
//! however many or however big the objects are (a spec is bounded by
//! `rswarm_proto::spec::bounds::MAX_SPEC_BYTES`, so one object stays far below a page).
//!
//! Objects created or removed between two pages may or may not show, as in
//! any paged API; each object shows at most once.

use prost::Message;

/// Most bytes of objects in one page (well under tonic's 4 MiB default).
pub(crate) const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// The page of `items` after `token` (empty: from the start), and the token
/// of the next page (empty: this is the last).
pub(crate) fn page<T: Message>(
    mut items: Vec<T>,
    id: impl Fn(&T) -> &str,
    token: &str,
) -> (Vec<T>, String) {
    items.retain(|t| token.is_empty() || id(t) > token);
    items.sort_by(|a, b| id(a).cmp(id(b)));
    let mut bytes = 0usize;
    let mut out = Vec::new();
    let mut rest = items.into_iter();
    for t in rest.by_ref() {
        // Each object costs its length plus a few bytes of framing.
        let cost = t.encoded_len() + 8;
        if !out.is_empty() && bytes + cost > PAGE_BYTES {
            let next = out
                .last()
                .map(|l: &T| id(l).to_string())
                .unwrap_or_default();
            return (out, next);
        }
        bytes += cost;
        out.push(t);
    }
    (out, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{Annotations, Service, ServiceSpec};

    fn svc(id: &str, label_bytes: usize) -> Service {
        Service {
            id: id.into(),
            spec: Some(ServiceSpec {
                annotations: Some(Annotations {
                    name: "x".repeat(label_bytes),
                    labels: Default::default(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn big_objects_come_in_pages_each_once() {
        // 10 services of ~700 KiB: ~7 MiB in all, over any 4 MiB message.
        let all: Vec<Service> = (0..10)
            .map(|i| svc(&format!("id{i:02}"), 700 * 1024))
            .collect();
        let mut token = String::new();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let (items, next) = page(all.clone(), |s| s.id.as_str(), &token);
            let bytes: usize = items.iter().map(|s| s.encoded_len()).sum();
            assert!(bytes <= PAGE_BYTES, "page of {bytes} bytes");
            assert!(!items.is_empty());
            seen.extend(items.into_iter().map(|s| s.id));
            pages += 1;
            if next.is_empty() {
                break;
            }
            token = next;
        }
        let want: Vec<String> = (0..10).map(|i| format!("id{i:02}")).collect();
        assert_eq!(seen, want);
        assert_eq!(pages, 5);
    }

    #[test]
    fn an_object_bigger_than_a_page_still_comes_alone() {
        let all = vec![svc("a", PAGE_BYTES + 1), svc("b", 10)];
        let (first, next) = page(all.clone(), |s| s.id.as_str(), "");
        assert_eq!((first.len(), next.as_str()), (1, "a"));
        let (second, next) = page(all, |s| s.id.as_str(), "a");
        assert_eq!((second[0].id.as_str(), next.as_str()), ("b", ""));
    }

    #[test]
    fn small_lists_are_one_page() {
        let all = vec![svc("b", 1), svc("a", 1)];
        let (items, next) = page(all, |s| s.id.as_str(), "");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].id, "a");
        assert!(next.is_empty());
    }
}
