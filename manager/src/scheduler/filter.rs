//! The placement rules. Each rule is a small type that says whether it
//! applies to a task, whether a node passes it, and — when nodes fail it —
//! why, in words a user can act on ("insufficient memory on 3 nodes"). The
//! pipeline (`pipeline`) runs them in the order of [`FILTERS`] and turns the
//! failures into the pending task's message.

use rswarm_proto::types::{Node, NodeState, Platform, Task};

use super::nodeinfo::{self, HostPort, NodeInfo};
use crate::orchestrator::task as task_state;
use rswarm_proto::spec::constraints::Constraint;

/// What a task asks of a node, read once from its spec.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub service_id: String,
    pub cpu: i64,
    pub memory: i64,
    /// `Err`: a constraint that does not parse (no node satisfies it).
    pub constraints: Result<Vec<Constraint>, String>,
    pub max_replicas: u64,
    pub platforms: Vec<Platform>,
    pub host_ports: Vec<HostPort>,
    /// `spread=` descriptors, outermost first (e.g. `node.labels.zone`).
    pub spread: Vec<String>,
}

impl Request {
    pub(crate) fn of(t: &Task) -> Request {
        let placement = t.spec.as_ref().and_then(|s| s.placement.as_ref());
        let (cpu, memory) = nodeinfo::reservations(t);
        Request {
            service_id: t.service_id.clone(),
            cpu,
            memory,
            constraints: Constraint::parse_all(
                placement.map(|p| p.constraints.as_slice()).unwrap_or(&[]),
            )
            .map_err(|e| e.0),
            max_replicas: placement.map(|p| p.max_replicas).unwrap_or(0),
            platforms: placement.map(|p| p.platforms.clone()).unwrap_or_default(),
            host_ports: nodeinfo::host_ports(t),
            spread: placement
                .map(|p| {
                    p.preferences
                        .iter()
                        .map(|p| p.spread_descriptor.trim().to_string())
                        .filter(|d| !d.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A node being considered, with what it already carries.
#[derive(Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub node: &'a Node,
    pub info: &'a NodeInfo,
}

/// One placement rule.
pub(crate) trait Filter: Sync {
    /// Whether the rule applies to this task at all.
    fn enabled(&self, req: &Request) -> bool;
    /// Whether the node passes.
    fn check(&self, req: &Request, node: Candidate<'_>) -> bool;
    /// Why `nodes_failed` nodes were refused, for the task's message.
    fn explain(&self, nodes_failed: usize) -> String;
    /// The rule's name as a metric label (`rswarm_scheduler_pending_tasks`).
    fn reason(&self) -> &'static str;
}

/// "1 node" / "3 nodes".
pub(crate) fn nodes(n: usize) -> String {
    if n == 1 {
        "1 node".into()
    } else {
        format!("{n} nodes")
    }
}

/// The node is Ready (heartbeating) and Active (not paused or drained).
pub(crate) struct ReadyFilter;

impl Filter for ReadyFilter {
    fn enabled(&self, _: &Request) -> bool {
        true
    }
    fn check(&self, _: &Request, c: Candidate<'_>) -> bool {
        c.node.status.as_ref().map(|s| s.state) == Some(NodeState::Ready as i32)
            && task_state::is_active(c.node)
    }
    fn explain(&self, n: usize) -> String {
        format!("{} not available for new tasks", nodes(n))
    }
    fn reason(&self) -> &'static str {
        "node_unavailable"
    }
}

/// The node has the memory the task reserves, after its other tasks' reservations.
pub(crate) struct MemoryFilter;

impl Filter for MemoryFilter {
    fn enabled(&self, req: &Request) -> bool {
        req.memory > 0
    }
    fn check(&self, req: &Request, c: Candidate<'_>) -> bool {
        req.memory <= c.info.available_memory(c.node)
    }
    fn explain(&self, n: usize) -> String {
        format!("insufficient memory on {}", nodes(n))
    }
    fn reason(&self) -> &'static str {
        "insufficient_memory"
    }
}

/// The node has the CPU the task reserves, after its other tasks' reservations.
pub(crate) struct CpuFilter;

impl Filter for CpuFilter {
    fn enabled(&self, req: &Request) -> bool {
        req.cpu > 0
    }
    fn check(&self, req: &Request, c: Candidate<'_>) -> bool {
        req.cpu <= c.info.available_cpu(c.node)
    }
    fn explain(&self, n: usize) -> String {
        format!("insufficient CPU on {}", nodes(n))
    }
    fn reason(&self) -> &'static str {
        "insufficient_cpu"
    }
}

/// The node satisfies the placement constraints.
pub(crate) struct ConstraintFilter;

impl Filter for ConstraintFilter {
    fn enabled(&self, req: &Request) -> bool {
        !matches!(&req.constraints, Ok(c) if c.is_empty())
    }
    fn check(&self, req: &Request, c: Candidate<'_>) -> bool {
        match &req.constraints {
            Ok(constraints) => Constraint::all_match(constraints, c.node),
            Err(_) => false,
        }
    }
    fn explain(&self, n: usize) -> String {
        format!("scheduling constraints not satisfied on {}", nodes(n))
    }
    fn reason(&self) -> &'static str {
        "constraints"
    }
}

/// The node's OS and architecture are among the task's platforms.
pub(crate) struct PlatformFilter;

impl Filter for PlatformFilter {
    fn enabled(&self, req: &Request) -> bool {
        !req.platforms.is_empty()
    }
    fn check(&self, req: &Request, c: Candidate<'_>) -> bool {
        platform_supported(&req.platforms, c.node)
    }
    fn explain(&self, n: usize) -> String {
        format!("unsupported platform on {}", nodes(n))
    }
    fn reason(&self) -> &'static str {
        "platform"
    }
}

/// None of the task's host-mode published ports is taken on the node.
pub(crate) struct HostPortFilter;

impl Filter for HostPortFilter {
    fn enabled(&self, req: &Request) -> bool {
        !req.host_ports.is_empty()
    }
    fn check(&self, req: &Request, c: Candidate<'_>) -> bool {
        !req.host_ports.iter().any(|p| c.info.port_in_use(p))
    }
    fn explain(&self, n: usize) -> String {
        format!("host-mode port already in use on {}", nodes(n))
    }
    fn reason(&self) -> &'static str {
        "host_port_in_use"
    }
}

/// The node runs fewer than `max_replicas` tasks of the service.
pub(crate) struct MaxReplicasFilter;

impl Filter for MaxReplicasFilter {
    fn enabled(&self, req: &Request) -> bool {
        req.max_replicas > 0
    }
    fn check(&self, req: &Request, c: Candidate<'_>) -> bool {
        u64::from(c.info.tasks_of(&req.service_id)) < req.max_replicas
    }
    fn explain(&self, n: usize) -> String {
        format!("max replicas per node limit exceed on {}", nodes(n))
    }
    fn reason(&self) -> &'static str {
        "max_replicas_per_node"
    }
}

/// Every rule, in the order they are checked and explained.
pub(crate) static FILTERS: &[&dyn Filter] = &[
    &ReadyFilter,
    &MemoryFilter,
    &CpuFilter,
    &ConstraintFilter,
    &PlatformFilter,
    &HostPortFilter,
    &MaxReplicasFilter,
];

/// Docker's and the kernel's names for the same architecture.
fn normalize_arch(arch: &str) -> String {
    match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64".into(),
        "aarch64" | "arm64" => "arm64".into(),
        "armv7l" | "armhf" | "arm" => "arm".into(),
        "i386" | "i686" | "386" => "386".into(),
        other => other.to_string(),
    }
}

/// Whether the node's platform is one of `platforms` (none listed: any; a
/// node that has not reported its platform is given the benefit of doubt).
pub(crate) fn platform_supported(platforms: &[Platform], node: &Node) -> bool {
    if platforms.is_empty() {
        return true;
    }
    let Some(np) = node.description.as_ref().and_then(|d| d.platform.as_ref()) else {
        return true;
    };
    if np.os.is_empty() && np.architecture.is_empty() {
        return true;
    }
    platforms.iter().any(|p| {
        (p.os.is_empty() || p.os.eq_ignore_ascii_case(&np.os))
            && (p.architecture.is_empty()
                || normalize_arch(&p.architecture) == normalize_arch(&np.architecture))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::NodeDescription;

    #[test]
    fn explanations_count_nodes_in_words() {
        assert_eq!(ReadyFilter.explain(1), "1 node not available for new tasks");
        assert_eq!(MemoryFilter.explain(3), "insufficient memory on 3 nodes");
        assert_eq!(
            MaxReplicasFilter.explain(2),
            "max replicas per node limit exceed on 2 nodes"
        );
    }

    #[test]
    fn platforms_compare_normalised() {
        let node = Node {
            description: Some(NodeDescription {
                platform: Some(Platform {
                    architecture: "x86_64".into(),
                    os: "linux".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = |os: &str, arch: &str| Platform {
            os: os.into(),
            architecture: arch.into(),
        };
        assert!(platform_supported(&[p("linux", "amd64")], &node));
        assert!(platform_supported(&[p("", "")], &node));
        assert!(!platform_supported(&[p("linux", "arm64")], &node));
        assert!(platform_supported(
            &[p("windows", ""), p("Linux", "")],
            &node
        ));
    }
}
