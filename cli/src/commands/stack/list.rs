//! `stack ls`, `stack services` and `stack ps`: a stack's services are those
//! labelled with its name; `services` and `ps` are `service ls` and
//! `service ps` of them (same columns, flags and code).

use std::collections::BTreeMap;

use rswarm_proto::control::services_client::ServicesClient;

use super::diff::service_stack;
use super::{LsStacksArgs, PsArgs, ServicesArgs};
use crate::client::ClientOpts;
use crate::commands::lists::all_services;
use crate::commands::service::{ls_selected, ServiceFilter};
use crate::commands::task::{parse_task_filters, print_service_tasks};
use crate::compose::to_spec::NAMESPACE_LABEL;
use crate::format::stacks::render_stack_list;

pub(super) async fn ls(opts: &ClientOpts, a: LsStacksArgs) -> anyhow::Result<()> {
    let (channel, _) = opts.connect().await?;
    let list = all_services(&mut ServicesClient::new(channel)).await?;
    let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
    for s in &list {
        let stack = service_stack(s);
        if !stack.is_empty() {
            *stacks.entry(stack.to_string()).or_default() += 1;
        }
    }
    let stacks: Vec<(String, usize)> = stacks.into_iter().collect();
    print!("{}", render_stack_list(&stacks, a.format.as_deref())?);
    Ok(())
}

pub(super) async fn services(opts: &ClientOpts, a: ServicesArgs) -> anyhow::Result<()> {
    let base = [ServiceFilter::Label(
        NAMESPACE_LABEL.to_string(),
        Some(a.stack.clone()),
    )];
    let empty = format!("Nothing found in stack: {}", a.stack);
    ls_selected(opts, a.list, &base, Some(empty)).await
}

pub(super) async fn ps(opts: &ClientOpts, a: PsArgs) -> anyhow::Result<()> {
    let filters = parse_task_filters(&a.list.filter)?;
    let (channel, _) = opts.connect().await?;
    let list = all_services(&mut ServicesClient::new(channel.clone())).await?;
    let ids: Vec<String> = list
        .into_iter()
        .filter(|s| service_stack(s) == a.stack)
        .map(|s| s.id)
        .collect();
    if ids.is_empty() {
        // Docker's words, and its exit status.
        anyhow::bail!("nothing found in stack: {}", a.stack);
    }
    print_service_tasks(channel, ids, &filters, &a.list).await
}
