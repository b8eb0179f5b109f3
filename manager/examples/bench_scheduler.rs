//! Scheduler throughput in a simulated cluster: a real one-manager Raft
//! store in a temp dir, 1,000 Ready nodes, services totalling 100,000
//! replicas, and the real orchestrator and scheduler loops. Prints how long
//! the orchestrator took to create the tasks, how long until every task was
//! assigned, and tasks placed per second.
//!
//! ```text
//! cargo run --release -p rswarm-manager --example bench_scheduler [-- NODES SERVICES REPLICAS]
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use rswarm_manager::{ca, objects, orchestrator, scheduler};
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
        id: ca::new_node_id(),
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
        id: ca::new_node_id(),
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes = arg(1, 1_000);
    let services = arg(2, 100);
    let replicas = arg(3, 1_000);
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
            .write(chunk.iter().map(objects::put_node).collect())
            .await?;
    }
    let _orchestrator = orchestrator::spawn(store.clone());
    let _scheduler = scheduler::spawn(store.clone());
    // Let both loops take leadership and load the (empty) task set.
    tokio::time::sleep(Duration::from_millis(600)).await;

    println!("{nodes} nodes, {services} services x {replicas} replicas = {total} tasks");
    let mut changes = store.watch();
    let start = Instant::now();
    let batch: Vec<Service> = (0..services).map(|i| service(i, replicas as u64)).collect();
    store
        .write(batch.iter().map(objects::put_service).collect())
        .await?;

    let mut created: HashSet<String> = HashSet::with_capacity(total);
    let mut assigned: HashMap<String, String> = HashMap::with_capacity(total);
    let mut created_at = None;
    let deadline = start + Duration::from_secs(600);
    while assigned.len() < total && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), changes.recv()).await {
            Err(_) => continue,
            Ok(Ok(c)) if c.kind == objects::KIND_TASK => {
                let Some(bytes) = c.value else { continue };
                let t = Task::decode(bytes.as_slice())?;
                let state = t.status.as_ref().map(|s| s.state).unwrap_or(0);
                if created.insert(t.id.clone()) && created.len() == total {
                    created_at = Some(start.elapsed());
                }
                if state == TaskState::Assigned as i32 {
                    assigned.insert(t.id, t.node_id);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Lagged(n))) => {
                // Fell behind: count from the store instead.
                eprintln!("(watch lagged by {n}; re-reading the store)");
                for t in objects::tasks(&store)? {
                    created.insert(t.id.clone());
                    if t.status.as_ref().map(|s| s.state) == Some(TaskState::Assigned as i32) {
                        assigned.insert(t.id, t.node_id);
                    }
                }
                if created.len() >= total && created_at.is_none() {
                    created_at = Some(start.elapsed());
                }
            }
            Ok(Err(RecvError::Closed)) => break,
        }
    }
    let placed_at = start.elapsed();
    let created_at = created_at.unwrap_or(placed_at);

    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for n in assigned.values() {
        *per_node.entry(n.as_str()).or_default() += 1;
    }
    let min = per_node.values().min().copied().unwrap_or(0);
    let max = per_node.values().max().copied().unwrap_or(0);
    println!(
        "tasks created by the orchestrator: {} in {:.2} s ({:.0} tasks/s)",
        created.len(),
        created_at.as_secs_f64(),
        created.len() as f64 / created_at.as_secs_f64().max(1e-9)
    );
    println!(
        "tasks assigned by the scheduler:   {} in {:.2} s from service creation",
        assigned.len(),
        placed_at.as_secs_f64()
    );
    println!(
        "placement throughput: {:.0} tasks/s end to end; spread {min}..{max} tasks per node over {} nodes",
        assigned.len() as f64 / placed_at.as_secs_f64().max(1e-9),
        per_node.len()
    );
    if assigned.len() < total {
        eprintln!("only {} of {total} tasks were placed", assigned.len());
        std::process::exit(1);
    }
    store.shutdown().await?;
    Ok(())
}
