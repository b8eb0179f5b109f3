//! `rswarm node ls | inspect | update | promote | demote | rm`.

use clap::{Args, Subcommand};
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::{GetNodeRequest, RemoveNodeRequest, UpdateNodeRequest};
use rswarm_proto::types::{Annotations, Node, NodeRole, NodeSpec};
use tonic::transport::Channel;

use crate::client::{status_error, ClientOpts};
use crate::commands::swarm::parse_availability;
use crate::format;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List nodes in the swarm
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more nodes
    Inspect(InspectArgs),
    /// Update a node
    Update(UpdateArgs),
    /// Promote one or more nodes to manager in the swarm
    Promote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Demote one or more nodes from manager in the swarm
    Demote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Remove one or more nodes from the swarm
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// List tasks running on one or more nodes, defaults to current node
    Ps(crate::commands::task::NodePsArgs),
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    quiet: bool,
    /// Filter output based on conditions provided (role, id, name, label, node.label, membership)
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a Go template, "table TEMPLATE" or "json"
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pretty: bool,
    /// Format output using a Go template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    nodes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Availability of the node ("active"|"pause"|"drain")
    #[arg(long)]
    availability: Option<String>,
    /// Add or update a node label (key=value)
    #[arg(long = "label-add")]
    label_add: Vec<String>,
    /// Remove a node label if exists
    #[arg(long = "label-rm")]
    label_rm: Vec<String>,
    /// Role of the node ("worker"|"manager")
    #[arg(long)]
    role: Option<String>,
    node: String,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force remove a node from the swarm
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    nodes: Vec<String>,
}

struct Ctx {
    control: ControlClient<Channel>,
    self_id: String,
}

async fn ctx(opts: &ClientOpts) -> anyhow::Result<Ctx> {
    let (ch, target) = opts.connect().await?;
    let self_id = crate::commands::task::self_node_id(opts, &ch, &target).await;
    Ok(Ctx {
        control: ControlClient::new(ch),
        self_id,
    })
}

impl Ctx {
    fn resolve_self(&self, reference: &str) -> anyhow::Result<String> {
        if reference == "self" {
            if self.self_id.is_empty() {
                anyhow::bail!("\"self\" is not known here: this daemon is not part of a swarm");
            }
            return Ok(self.self_id.clone());
        }
        Ok(reference.to_string())
    }

    async fn get(&mut self, reference: &str) -> anyhow::Result<Node> {
        let node_ref = self.resolve_self(reference)?;
        Ok(self
            .control
            .get_node(GetNodeRequest { node_ref })
            .await
            .map_err(status_error)?
            .into_inner())
    }
}

pub async fn run(opts: &ClientOpts, cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Ls(a) => ls(opts, a).await,
        NodeCommand::Inspect(a) => inspect(opts, a).await,
        NodeCommand::Update(a) => update(opts, a).await,
        NodeCommand::Promote { nodes } => set_role(opts, nodes, NodeRole::Manager).await,
        NodeCommand::Demote { nodes } => set_role(opts, nodes, NodeRole::Worker).await,
        NodeCommand::Rm(a) => rm(opts, a).await,
        NodeCommand::Ps(a) => crate::commands::task::node_ps(opts, a).await,
    }
}

/// A `--filter key=value` on nodes, as Docker's `node ls` understands them.
fn matches_filters(node: &Node, filters: &[(String, String)]) -> bool {
    use std::collections::BTreeMap;
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in filters {
        by_key.entry(k.as_str()).or_default().push(v.as_str());
    }
    let hostname = node
        .description
        .as_ref()
        .map(|d| d.hostname.as_str())
        .unwrap_or("");
    let role = if node.role == NodeRole::Manager as i32 {
        "manager"
    } else {
        "worker"
    };
    let spec_labels = node
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.labels.clone())
        .unwrap_or_default();
    let engine_labels = node
        .description
        .as_ref()
        .and_then(|d| d.engine.as_ref())
        .map(|e| e.labels.clone())
        .unwrap_or_default();
    let label_match = |labels: &std::collections::HashMap<String, String>, want: &str| match want
        .split_once('=')
    {
        Some((k, v)) => labels.get(k).map(|x| x == v).unwrap_or(false),
        None => labels.contains_key(want),
    };
    by_key.iter().all(|(k, values)| {
        // Values of one key are ORed, keys are ANDed (Docker's rule).
        values.iter().any(|v| match *k {
            "id" => node.id.starts_with(v),
            "name" => hostname.starts_with(v),
            "role" => role == *v,
            "membership" => *v == "accepted",
            "node.label" => label_match(&spec_labels, v),
            "label" => label_match(&engine_labels, v),
            _ => false,
        })
    })
}

fn parse_filters(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|f| {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("bad format of filter (expected name=value): {f}")
            })?;
            match k {
                "id" | "name" | "role" | "membership" | "node.label" | "label" => {}
                _ => anyhow::bail!("invalid filter '{k}'"),
            }
            if k == "role" && v != "manager" && v != "worker" {
                anyhow::bail!("invalid filter 'role={v}': role must be manager or worker");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

async fn ls(opts: &ClientOpts, a: LsArgs) -> anyhow::Result<()> {
    let filters = parse_filters(&a.filter)?;
    let mut c = ctx(opts).await?;
    let mut nodes = super::lists::all_nodes(&mut c.control).await?;
    nodes.retain(|n| matches_filters(n, &filters));
    let out = format::nodes::render_node_list(&nodes, &c.self_id, a.format.as_deref(), a.quiet)?;
    print!("{out}");
    Ok(())
}

async fn inspect(opts: &ClientOpts, a: InspectArgs) -> anyhow::Result<()> {
    let mut c = ctx(opts).await?;
    let mut nodes = vec![];
    for r in &a.nodes {
        nodes.push(c.get(r).await?);
    }
    print!(
        "{}",
        format::nodes::render_node_inspect(&nodes, a.format.as_deref(), a.pretty)?
    );
    Ok(())
}

fn parse_role(s: &str) -> anyhow::Result<NodeRole> {
    match s {
        "manager" => Ok(NodeRole::Manager),
        "worker" => Ok(NodeRole::Worker),
        _ => anyhow::bail!("invalid role {s:?}: must be manager or worker"),
    }
}

async fn update(opts: &ClientOpts, a: UpdateArgs) -> anyhow::Result<()> {
    // Validate everything before touching the cluster.
    let availability = a
        .availability
        .as_deref()
        .map(parse_availability)
        .transpose()?;
    let role = a.role.as_deref().map(parse_role).transpose()?;
    let mut adds = vec![];
    for l in &a.label_add {
        let (k, v) = match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        };
        if k.is_empty() {
            anyhow::bail!("invalid label {l:?}: empty key");
        }
        adds.push((k, v));
    }
    let mut c = ctx(opts).await?;
    let node = c.get(&a.node).await?;
    let mut spec = node.spec.clone().unwrap_or_default();
    let annotations = spec.annotations.get_or_insert_with(Annotations::default);
    for k in &a.label_rm {
        if annotations.labels.remove(k).is_none() {
            anyhow::bail!("key {k} doesn't exist in node's labels");
        }
    }
    for (k, v) in adds {
        annotations.labels.insert(k, v);
    }
    if let Some(av) = availability {
        spec.availability = av as i32;
    }
    if let Some(r) = role {
        spec.desired_role = r as i32;
    }
    write_spec(&mut c, &node, spec).await?;
    println!("{}", a.node);
    Ok(())
}

/// Write `spec` over `node`'s. The manager refuses it only if someone else
/// changed the node's spec since it was read; status changes meanwhile (a
/// heartbeat, the allocator's addresses) never refuse it.
async fn write_spec(c: &mut Ctx, node: &Node, spec: NodeSpec) -> anyhow::Result<Node> {
    c.control
        .update_node(UpdateNodeRequest {
            node_ref: node.id.clone(),
            spec_version: node.meta.as_ref().and_then(|m| m.spec_version),
            spec: Some(spec),
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(status_error)
}

async fn set_role(opts: &ClientOpts, refs: Vec<String>, role: NodeRole) -> anyhow::Result<()> {
    let mut c = ctx(opts).await?;
    let mut failed = None;
    for r in refs {
        let result: anyhow::Result<()> = async {
            let node = c.get(&r).await?;
            let mut spec = node.spec.clone().unwrap_or_default();
            if spec.desired_role == role as i32 {
                match role {
                    NodeRole::Manager => println!("Node {r} is already a manager."),
                    NodeRole::Worker => println!("Node {r} is already a worker."),
                }
                return Ok(());
            }
            spec.desired_role = role as i32;
            write_spec(&mut c, &node, spec).await?;
            match role {
                NodeRole::Manager => println!("Node {r} promoted to a manager in the swarm."),
                NodeRole::Worker => println!("Manager {r} demoted in the swarm."),
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

async fn rm(opts: &ClientOpts, a: RmArgs) -> anyhow::Result<()> {
    let mut c = ctx(opts).await?;
    let mut failed = None;
    for r in a.nodes {
        let node_ref = c.resolve_self(&r)?;
        match c
            .control
            .remove_node(RemoveNodeRequest {
                node_ref,
                force: a.force,
            })
            .await
        {
            Ok(_) => println!("{r}"),
            Err(s) => {
                let e = status_error(s);
                eprintln!("{e}");
                failed = Some(e);
            }
        }
    }
    failed.map_or(Ok(()), |_| {
        anyhow::bail!("failed to remove one or more nodes")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_reject() {
        assert!(parse_filters(&["role=manager".into()]).is_ok());
        assert!(parse_filters(&["role=boss".into()]).is_err());
        assert!(parse_filters(&["colour=red".into()]).is_err());
        assert!(parse_filters(&["role".into()]).is_err());
    }

    #[test]
    fn role_filter_matches() {
        let n = Node {
            role: NodeRole::Manager as i32,
            ..Default::default()
        };
        assert!(matches_filters(&n, &[("role".into(), "manager".into())]));
        assert!(!matches_filters(&n, &[("role".into(), "worker".into())]));
        assert!(matches_filters(
            &n,
            &[
                ("role".into(), "worker".into()),
                ("role".into(), "manager".into())
            ]
        ));
    }
}
