//! `service ls` (and `stack services`, which is `service ls` of one
//! stack's services): its `--filter`s (id, name, mode, label; Docker's OR within
//! a key, AND across keys), and fetching the tasks and down nodes that the
//! REPLICAS counts come from (the table itself is `format::services`).

use std::collections::{HashMap, HashSet};

use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::ListTasksRequest;
use rswarm_proto::types::Service;

use super::{service_name, LsArgs};
use crate::client::ClientOpts;
use crate::commands::task::node_directory;
use crate::format;
use crate::format::services::{service_counts, ServiceCounts};
use crate::servicespec::policy::ModeKind;

/// One `service ls --filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServiceFilter {
    Id(String),
    Name(String),
    Mode(ModeKind),
    Label(String, Option<String>),
}

pub(super) fn parse_service_filters(raw: &[String]) -> anyhow::Result<Vec<ServiceFilter>> {
    raw.iter()
        .map(|f| {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("bad format of filter (expected name=value): {f}")
            })?;
            Ok(match k {
                "id" => ServiceFilter::Id(v.to_string()),
                "name" => ServiceFilter::Name(v.to_string()),
                "mode" => ServiceFilter::Mode(ModeKind::parse(v).map_err(|_| {
                    anyhow::anyhow!(
                        "invalid filter 'mode={v}': must be replicated, global, replicated-job or global-job"
                    )
                })?),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => ServiceFilter::Label(lk.to_string(), Some(lv.to_string())),
                    None => ServiceFilter::Label(v.to_string(), None),
                },
                _ => anyhow::bail!("invalid filter '{k}'"),
            })
        })
        .collect()
}

/// Values of one key are ORed, keys ANDed (Docker's rule).
pub(super) fn service_matches(service: &Service, filters: &[ServiceFilter]) -> bool {
    let kind = |f: &ServiceFilter| std::mem::discriminant(f);
    let kinds: HashSet<_> = filters.iter().map(kind).collect();
    let spec = service.spec.as_ref();
    let labels = spec.and_then(|s| s.annotations.as_ref()).map(|a| &a.labels);
    kinds.into_iter().all(|k| {
        filters.iter().filter(|f| kind(f) == k).any(|f| match f {
            ServiceFilter::Id(p) => service.id.starts_with(p.as_str()),
            ServiceFilter::Name(p) => service_name(service).starts_with(p.as_str()),
            ServiceFilter::Mode(m) => ModeKind::of(spec.and_then(|s| s.mode.as_ref())) == *m,
            ServiceFilter::Label(k, v) => match (labels.and_then(|l| l.get(k)), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            },
        })
    })
}

pub(super) async fn ls(opts: &ClientOpts, a: LsArgs) -> anyhow::Result<()> {
    ls_selected(opts, a, &[], None).await
}

/// `service ls` of the services `base` selects (`stack services`: those of
/// one stack), the user's filters applied on top; `empty` is said on stderr
/// instead of the table when no service is left.
pub(crate) async fn ls_selected(
    opts: &ClientOpts,
    a: LsArgs,
    base: &[ServiceFilter],
    empty: Option<String>,
) -> anyhow::Result<()> {
    let filters = parse_service_filters(&a.filter)?;
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let mut list = crate::commands::lists::all_services(&mut services).await?;
    // Apart: one key's values are ORed, and the base must hold regardless.
    list.retain(|s| service_matches(s, base) && service_matches(s, &filters));
    if let (true, Some(note)) = (list.is_empty(), empty) {
        eprintln!("{note}");
        return Ok(());
    }
    let mut counts: HashMap<String, ServiceCounts> = HashMap::new();
    if !a.quiet && !list.is_empty() {
        let tasks =
            crate::commands::lists::all_tasks(&mut services, ListTasksRequest::default()).await?;
        let (_, down) = node_directory(&mut ControlClient::new(channel)).await?;
        counts = list
            .iter()
            .map(|s| (s.id.clone(), service_counts(s, &tasks, &down)))
            .collect();
    }
    print!(
        "{}",
        format::services::render_service_list(&list, &counts, a.format.as_deref(), a.quiet)?
    );
    Ok(())
}
