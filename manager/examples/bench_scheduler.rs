//! Scheduler throughput in a simulated cluster: a real one-manager Raft
//! store in a temp dir, 1,000 Ready nodes, services totalling 100,000
//! replicas, and the real orchestrator and scheduler loops.
//!
//! By default the two phases are timed apart: the orchestrator alone turns
//! the services into 100,000 pending tasks, then the scheduler is started
//! and places them all. With `together` both loops run from the start and
//! the time from service creation to the last assignment is reported.
//!
//! ```text
//! cargo run --release -p rswarm-manager --example bench_scheduler [-- NODES SERVICES REPLICAS [together]]
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use rswarm_manager::leader::{supervise, LeaderLoop};
use rswarm_manager::{allocator, objects, orchestrator, scheduler};
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    Annotations, ContainerSpec, Node, NodeAvailability, NodeDescription, NodeRole, NodeSpec,
    NodeState, NodeStatus, Platform, ReplicatedService, ResourceLimits, ResourceRequirements,
    Resources, Service, ServiceSpec, Task, TaskSpec, TaskState,
};
use rswarm_raft::{Connector, Store, StoreConfig};
use tokio::sync::broadcast::error::RecvError;

struct NoPeers;

impl Connector for NoPeers {
    fn channel(&self, addr: &str) -> Result<tonic::transport::Channel, String> {
        Err(format!("no peer at {addr} in a one-manager benchmark"))
    }
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn node(i: usize) -> Node {
    Node {
        id: objects::new_id(),
        spec: Some(NodeSpec {
            annotations: Some(Annotations {
                name: String::new(),
                labels: [("zone".to_string(), format!("z{}", i % 3))].into(),
            }),
            desired_role: NodeRole::Worker as i32,
            availability: NodeAvailability::Active as i32,
        }),
        description: Some(NodeDescription {
            hostname: format!("node{i:04}"),
            platform: Some(Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            }),
            resources: Some(Resources {
                nano_cpus: 16_000_000_000,
                memory_bytes: 64 << 30,
            }),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: NodeState::Ready as i32,
            message: String::new(),
            addr: format!("10.0.{}.{}", i / 250, i % 250 + 1),
        }),
        role: NodeRole::Worker as i32,
        ..Default::default()
    }
}

fn service(i: usize, replicas: u64) -> Service {
    Service {
        id: objects::new_id(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: format!("svc{i:03}"),
                labels: Default::default(),
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "registry.local:5000/busybox:1".into(),
                    command: vec!["httpd".into(), "-f".into(), "-p".into(), "80".into()],
                    ..Default::default()
                }),
                // Small reservations, so the resource filter is exercised.
                resources: Some(ResourceRequirements {
                    limits: None,
                    reservations: Some(ResourceLimits {
                        nano_cpus: 10_000_000,
                        memory_bytes: 16 << 20,
                        pids: 0,
                    }),
                }),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas })),
            ..Default::default()
        }),
        spec_version: 1,
        ..Default::default()
    }
}

/// Counts tasks from the change stream: created, and assigned (task → node).
struct Tally {
    changes: tokio::sync::broadcast::Receiver<rswarm_raft::Change>,
    created: HashSet<String>,
    assigned: HashMap<String, String>,
}

impl Tally {
    fn new(store: &Store) -> Tally {
        Tally {
            changes: store.watch(),
            created: HashSet::new(),
            assigned: HashMap::new(),
        }
    }

    fn count(&mut self, t: Task) {
        self.created.insert(t.id.clone());
        if t.status.as_ref().map(|s| s.state) == Some(TaskState::Assigned as i32) {
            self.assigned.insert(t.id, t.node_id);
        }
    }

    /// Follows the stream until `done` holds (or ten minutes pass).
    async fn until(
        &mut self,
        store: &Store,
        done: impl Fn(&Tally) -> bool,
    ) -> Result<Duration, Box<dyn std::error::Error>> {
        let start = Instant::now();
        while !done(self) && start.elapsed() < Duration::from_secs(600) {
            match tokio::time::timeout(Duration::from_secs(1), self.changes.recv()).await {
                Err(_) => continue,
                Ok(Ok(c)) if c.kind == objects::KIND_TASK => {
                    if let Some(bytes) = c.value {
                        self.count(Task::decode(bytes.as_slice())?);
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => {
                    for t in objects::list::<Task>(store)? {
                        self.count(t);
                    }
                }
                Ok(Err(RecvError::Closed)) => break,
            }
        }
        Ok(start.elapsed())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes = arg(1, 1_000);
    let services = arg(2, 100);
    let replicas = arg(3, 1_000);
    let together = std::env::args().nth(4).as_deref() == Some("together");
    let total = services * replicas;

    let dir = tempfile::tempdir()?;
    let store = Store::open(
        StoreConfig::new(dir.path().join("raft"), 1, "127.0.0.1:1"),
        Arc::new(NoPeers),
    )
    .await?;
    store.bootstrap().await?;
    let all_nodes: Vec<Node> = (0..nodes).map(node).collect();
    for chunk in all_nodes.chunks(500) {
        store
            .write(chunk.iter().map(objects::put).collect())
            .await?;
    }
    println!("{nodes} nodes, {services} services x {replicas} replicas = {total} tasks");

    let _orchestrator = supervise(
        store.clone(),
        vec![LeaderLoop::new("orchestrator", orchestrator::run)],
    );
    // NEW -> PENDING (tasks without networks move straight on).
    let _allocator = supervise(
        store.clone(),
        vec![LeaderLoop::new("allocator", allocator::run)],
    );
    let mut scheduler = together.then(|| run_scheduler(&store));
    // Let the loops take leadership and load the (empty) task set.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut tally = Tally::new(&store);
    let batch: Vec<Service> = (0..services).map(|i| service(i, replicas as u64)).collect();
    let start = Instant::now();
    store
        .write(batch.iter().map(objects::put).collect())
        .await?;
    let created = tally.until(&store, |t| t.created.len() >= total).await?;
    println!(
        "orchestrator: {} tasks created in {:.2} s ({:.0} tasks/s)",
        tally.created.len(),
        created.as_secs_f64(),
        tally.created.len() as f64 / created.as_secs_f64().max(1e-9)
    );
    if scheduler.is_none() {
        scheduler = Some(run_scheduler(&store));
    }
    let placing = tally.until(&store, |t| t.assigned.len() >= total).await?;
    let placed = tally.assigned.len();
    if together {
        let end_to_end = start.elapsed();
        println!(
            "scheduler (running alongside): all {placed} assigned {:.2} s after the services were created ({:.0} tasks/s end to end)",
            end_to_end.as_secs_f64(),
            placed as f64 / end_to_end.as_secs_f64().max(1e-9)
        );
    } else {
        println!(
            "scheduler: {placed} pending tasks placed in {:.2} s ({:.0} tasks placed/s, store writes included)",
            placing.as_secs_f64(),
            placed as f64 / placing.as_secs_f64().max(1e-9)
        );
    }
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for n in tally.assigned.values() {
        *per_node.entry(n.as_str()).or_default() += 1;
    }
    println!(
        "spread: {}..{} tasks per node over {} nodes",
        per_node.values().min().copied().unwrap_or(0),
        per_node.values().max().copied().unwrap_or(0),
        per_node.len()
    );
    if placed < total {
        eprintln!("only {placed} of {total} tasks were placed");
        std::process::exit(1);
    }
    if let Some(s) = scheduler {
        s.abort();
    }
    store.shutdown().await?;
    Ok(())
}

/// The scheduler alone under its own supervisor (started late in one mode).
fn run_scheduler(store: &Store) -> tokio::task::JoinHandle<()> {
    supervise(
        store.clone(),
        vec![LeaderLoop::new("scheduler", scheduler::run)],
    )
}
