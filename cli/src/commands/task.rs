//! `rswarm service ps`, `node ps` and `stack ps`: the one task listing they share
//! (Docker's columns, filters and history under ` \_ `), and the lookups it
//! needs: node names, service names, which node is "self", what time it is.

use std::collections::{HashMap, HashSet};

use clap::Args;
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{GetNodeRequest, GetServiceRequest, ListTasksRequest};
use rswarm_proto::daemon::daemon_client::DaemonClient;
use rswarm_proto::daemon::InfoRequest;
use rswarm_proto::types::{NodeState, Task, TaskState};
use tonic::transport::Channel;

use crate::client::{status_error, ClientOpts, Target};
use crate::format;
use crate::format::tasks::{task_display_name, TaskView};

/// The flags `service ps` and `node ps` share.
#[derive(Args, Debug, Clone, Default)]
pub struct TaskListArgs {
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print tasks using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Do not map IDs to Names
    #[arg(long = "no-resolve")]
    pub no_resolve: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
}

/// `service ps [OPTIONS] SERVICE [SERVICE...]`
#[derive(Args, Debug)]
pub struct ServicePsArgs {
    #[command(flatten)]
    pub list: TaskListArgs,
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

/// `node ps [OPTIONS] [NODE...]` (default: the node this daemon runs on).
#[derive(Args, Debug)]
pub struct NodePsArgs {
    #[command(flatten)]
    pub list: TaskListArgs,
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// Unix nanoseconds now.
pub fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// One `--filter` of a task listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskFilter {
    /// `id=`: task ID prefix.
    Id(String),
    /// `name=`: task name prefix (`web.1`).
    Name(String),
    /// `node=`: node ID or hostname.
    Node(String),
    /// `desired-state=running|shutdown|accepted`.
    DesiredState(TaskState),
    /// `label=key` or `label=key=value` on the task.
    Label(String, Option<String>),
}

/// Docker's `service ps` / `node ps` filters; anything else is refused
/// before a call is made.
pub fn parse_task_filters(raw: &[String]) -> anyhow::Result<Vec<TaskFilter>> {
    raw.iter()
        .map(|f| {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("bad format of filter (expected name=value): {f}")
            })?;
            Ok(match k {
                "id" => TaskFilter::Id(v.to_string()),
                "name" => TaskFilter::Name(v.to_string()),
                "node" => TaskFilter::Node(v.to_string()),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => TaskFilter::Label(lk.to_string(), Some(lv.to_string())),
                    None => TaskFilter::Label(v.to_string(), None),
                },
                "desired-state" => TaskFilter::DesiredState(match v {
                    "running" => TaskState::Running,
                    "shutdown" => TaskState::Shutdown,
                    "accepted" => TaskState::Accepted,
                    _ => anyhow::bail!(
                        "invalid filter 'desired-state={v}': must be running, shutdown or accepted"
                    ),
                }),
                _ => anyhow::bail!("invalid filter '{k}'"),
            })
        })
        .collect()
}

/// Whether a task passes the filters: values of one key are ORed, keys ANDed.
pub fn task_matches(task: &Task, filters: &[TaskFilter], view: &TaskView<'_>) -> bool {
    let kind = |f: &TaskFilter| std::mem::discriminant(f);
    let kinds: HashSet<_> = filters.iter().map(kind).collect();
    kinds.into_iter().all(|k| {
        filters.iter().filter(|f| kind(f) == k).any(|f| match f {
            TaskFilter::Id(p) => task.id.starts_with(p.as_str()),
            TaskFilter::Name(p) => task_display_name(task, view).starts_with(p.as_str()),
            TaskFilter::Node(n) => {
                task.node_id == *n || view.node_names.get(&task.node_id) == Some(n)
            }
            TaskFilter::DesiredState(s) => task.desired_state() == *s,
            TaskFilter::Label(k, v) => {
                let labels = task.annotations.as_ref().map(|a| &a.labels);
                match (labels.and_then(|l| l.get(k)), v) {
                    (Some(have), Some(want)) => have == want,
                    (Some(_), None) => true,
                    (None, _) => false,
                }
            }
        })
    })
}

/// Node ID → hostname, and the IDs of nodes that are down.
pub async fn node_directory(
    control: &mut ControlClient<Channel>,
) -> anyhow::Result<(HashMap<String, String>, HashSet<String>)> {
    let nodes = super::lists::all_nodes(control).await?;
    let names = nodes
        .iter()
        .map(|n| {
            let host = n.description.as_ref().map_or("", |d| d.hostname.as_str());
            (n.id.clone(), host.to_string())
        })
        .collect();
    let down = nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .is_some_and(|s| s.state() == NodeState::Down)
        })
        .map(|n| n.id.clone())
        .collect();
    Ok((names, down))
}

/// Service ID → name for the tasks that do not carry their service's name.
async fn service_directory(
    services: &mut ServicesClient<Channel>,
    tasks: &[Task],
) -> anyhow::Result<HashMap<String, String>> {
    let missing = tasks.iter().any(|t| {
        t.service_annotations
            .as_ref()
            .is_none_or(|a| a.name.is_empty())
    });
    if !missing {
        return Ok(HashMap::new());
    }
    let list = super::lists::all_services(services).await?;
    Ok(list
        .into_iter()
        .map(|s| {
            let name = s
                .spec
                .as_ref()
                .and_then(|sp| sp.annotations.as_ref())
                .map(|a| a.name.clone())
                .unwrap_or_default();
            (s.id, name)
        })
        .collect())
}

/// The ID of the node this client's daemon runs on: asked of the local
/// daemon over its socket, or read from this node's certificate over TCP.
/// Empty when not known.
pub async fn self_node_id(opts: &ClientOpts, channel: &Channel, target: &Target) -> String {
    match target {
        Target::Unix(_) => DaemonClient::new(channel.clone())
            .info(InfoRequest {})
            .await
            .map(|r| r.into_inner().node_id)
            .unwrap_or_default(),
        Target::Tcp(_) => std::fs::read_to_string(&opts.tlscert)
            .ok()
            .and_then(|pem| rswarm_proto::identity::cert::parse_cert_pem(&pem).ok())
            .map(|i| i.node_id)
            .unwrap_or_default(),
    }
}

/// Lists, filters and prints tasks; shared by `service ps` and `node ps`.
async fn print_tasks(
    channel: Channel,
    request: ListTasksRequest,
    filters: &[TaskFilter],
    args: &TaskListArgs,
) -> anyhow::Result<()> {
    let mut services = ServicesClient::new(channel.clone());
    let mut control = ControlClient::new(channel);
    let tasks = super::lists::all_tasks(&mut services, request).await?;
    let (node_names, _) = node_directory(&mut control).await?;
    let service_names = service_directory(&mut services, &tasks).await?;
    let view = TaskView {
        node_names: &node_names,
        service_names: &service_names,
        now: now_nanos(),
        no_trunc: args.no_trunc,
        no_resolve: args.no_resolve,
    };
    let tasks: Vec<Task> = tasks
        .into_iter()
        .filter(|t| task_matches(t, filters, &view))
        .collect();
    print!(
        "{}",
        format::tasks::render_task_list(&tasks, &view, args.format.as_deref(), args.quiet)?
    );
    Ok(())
}

fn desired_states(filters: &[TaskFilter]) -> Vec<i32> {
    filters
        .iter()
        .filter_map(|f| match f {
            TaskFilter::DesiredState(s) => Some(*s as i32),
            _ => None,
        })
        .collect()
}

/// `rswarm service ps`.
pub async fn service_ps(opts: &ClientOpts, a: ServicePsArgs) -> anyhow::Result<()> {
    let filters = parse_task_filters(&a.list.filter)?;
    let (channel, _) = opts.connect().await?;
    let mut services = ServicesClient::new(channel.clone());
    let mut ids = Vec::new();
    for r in &a.services {
        let service = services
            .get_service(GetServiceRequest {
                service_ref: r.clone(),
            })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => anyhow::anyhow!("no such service: {r}"),
                _ => status_error(s),
            })?
            .into_inner();
        ids.push(service.id);
    }
    print_service_tasks(channel, ids, &filters, &a.list).await
}

/// The tasks of these services (IDs), as `service ps` lists them; `stack
/// ps` too.
pub async fn print_service_tasks(
    channel: Channel,
    service_ids: Vec<String>,
    filters: &[TaskFilter],
    args: &TaskListArgs,
) -> anyhow::Result<()> {
    let request = ListTasksRequest {
        service_refs: service_ids,
        node_refs: vec![],
        desired_states: desired_states(filters),
        page_token: String::new(),
    };
    print_tasks(channel, request, filters, args).await
}

/// `rswarm node ps`.
pub async fn node_ps(opts: &ClientOpts, a: NodePsArgs) -> anyhow::Result<()> {
    let filters = parse_task_filters(&a.list.filter)?;
    let (channel, target) = opts.connect().await?;
    let refs = if a.nodes.is_empty() {
        vec!["self".to_string()]
    } else {
        a.nodes.clone()
    };
    let mut control = ControlClient::new(channel.clone());
    let mut ids = Vec::new();
    for r in &refs {
        let node_ref = if r == "self" {
            let id = self_node_id(opts, &channel, &target).await;
            if id.is_empty() {
                anyhow::bail!("\"self\" is not known here: this daemon is not part of a swarm");
            }
            id
        } else {
            r.clone()
        };
        let node = control
            .get_node(GetNodeRequest { node_ref })
            .await
            .map_err(status_error)?
            .into_inner();
        ids.push(node.id);
    }
    let request = ListTasksRequest {
        service_refs: vec![],
        node_refs: ids,
        desired_states: desired_states(&filters),
        page_token: String::new(),
    };
    print_tasks(channel, request, &filters, &a.list).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{Annotations, TaskStatus};

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        ps: NodePsArgs,
    }

    #[test]
    fn node_ps_takes_dockers_flags() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "ps",
            "--no-trunc",
            "-q",
            "-f",
            "desired-state=running",
            "host2",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(cli.ps.list.no_trunc && cli.ps.list.quiet);
        assert_eq!(cli.ps.nodes, vec!["host2".to_string()]);
    }

    #[test]
    fn filters_parse_and_reject_like_docker() {
        assert_eq!(
            parse_task_filters(&["desired-state=running".into(), "node=host2".into()])
                .map_err(|e| e.to_string()),
            Ok(vec![
                TaskFilter::DesiredState(TaskState::Running),
                TaskFilter::Node("host2".into())
            ])
        );
        let err = |f: &str| {
            parse_task_filters(&[f.to_string()])
                .map_err(|e| e.to_string())
                .err()
        };
        assert_eq!(err("colour=red"), Some("invalid filter 'colour'".into()));
        assert_eq!(
            err("desired-state=done"),
            Some(
                "invalid filter 'desired-state=done': must be running, shutdown or accepted".into()
            )
        );
        assert_eq!(
            err("node"),
            Some("bad format of filter (expected name=value): node".into())
        );
    }

    #[test]
    fn filters_match_tasks() {
        let names: HashMap<String, String> = [("n2".to_string(), "host2".to_string())].into();
        let services = HashMap::new();
        let view = TaskView {
            node_names: &names,
            service_names: &services,
            now: 0,
            no_trunc: false,
            no_resolve: false,
        };
        let task = Task {
            id: "abc123".into(),
            slot: 1,
            node_id: "n2".into(),
            service_annotations: Some(Annotations {
                name: "web".into(),
                labels: HashMap::new(),
            }),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus::default()),
            ..Default::default()
        };
        let m = |fs: &[&str]| {
            let raw: Vec<String> = fs.iter().map(|s| s.to_string()).collect();
            let filters = parse_task_filters(&raw).unwrap_or_else(|e| panic!("{e}"));
            task_matches(&task, &filters, &view)
        };
        assert!(m(&[]));
        assert!(m(&["node=host2"]));
        assert!(m(&["node=n2", "name=web.1"]));
        assert!(!m(&["node=host1"]));
        assert!(m(&["node=host1", "node=host2"]));
        assert!(m(&["desired-state=running", "id=abc"]));
        assert!(!m(&["desired-state=shutdown"]));
        assert!(!m(&["label=tier"]));
    }
}
