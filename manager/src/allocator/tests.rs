//! The allocator loop against a real one-manager store: networks made by
//! the Control API, services as the Control API writes them, tasks in NEW as
//! the orchestrator makes them, task ends as agents report them, nodes as
//! they join, heartbeat and are removed.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use rswarm_proto::types::endpoint_spec::ResolutionMode;
use rswarm_proto::types::port_config::PublishMode;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    Annotations, Cluster, ContainerSpec, EndpointSpec, IpamConfig, NetworkAttachmentConfig,
    NetworkSpec, Node, NodeAvailability, NodeDescription, NodeRole, NodeSpec, NodeState,
    NodeStatus, PortConfig, ReplicatedService, Service, ServiceSpec, Task, TaskSpec, TaskState,
};
use rswarm_raft::Store;
use tokio::task::JoinHandle;

use super::ipam;
use super::network;
use crate::controlapi::{networks, services};
use crate::objects;
use crate::orchestrator::task::{self, PENDING_MESSAGE};
use crate::orchestrator::testing::{bare_store, PATIENCE};

/// The allocator under its own leader supervisor.
fn spawn_allocator(store: Store) -> JoinHandle<()> {
    crate::leader::supervise(
        store,
        vec![crate::leader::LeaderLoop::new("allocator", super::run)],
    )
}

struct Swarm {
    store: Store,
    allocator: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if let Some(a) = self.allocator.take() {
            a.abort();
        }
    }
}

impl Swarm {
    /// A swarm as `init` leaves it (cluster, ingress), with the allocator.
    async fn start() -> Swarm {
        let (store, dir) = bare_store().await;
        let pool = network::default_address_pool(&[], 0).expect("pool");
        let cluster = Cluster {
            id: "cluster".into(),
            default_address_pool: Some(pool.clone()),
            ..Default::default()
        };
        let ingress = network::ingress_network(&pool).expect("ingress");
        store
            .write(vec![objects::put(&cluster), objects::put(&ingress)])
            .await
            .expect("init");
        let allocator = Some(spawn_allocator(store.clone()));
        Swarm {
            store,
            allocator,
            _dir: dir,
        }
    }

    /// Stops the allocator and starts a fresh one (a new leader's).
    async fn restart_allocator(&mut self) {
        if let Some(a) = self.allocator.take() {
            a.abort();
            let _ = a.await;
        }
        self.allocator = Some(spawn_allocator(self.store.clone()));
    }

    async fn network(&self, name: &str, subnet: &str) -> String {
        self.create_network(name, subnet, false).await
    }

    /// Creates an ingress network, as `network create --ingress` does.
    async fn ingress(&self, subnet: &str) -> String {
        self.create_network("ingress", subnet, true).await
    }

    async fn create_network(&self, name: &str, subnet: &str, ingress: bool) -> String {
        let spec = NetworkSpec {
            ingress,
            annotations: Some(Annotations {
                name: name.into(),
                labels: Default::default(),
            }),
            ipam: if subnet.is_empty() {
                vec![]
            } else {
                vec![IpamConfig {
                    subnet: subnet.into(),
                    ..Default::default()
                }]
            },
            ..Default::default()
        };
        networks::create(&self.store, spec)
            .await
            .expect("create network")
            .id
    }

    async fn service(&self, name: &str, nets: &[&str], endpoint: Option<EndpointSpec>) -> String {
        let spec = ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                labels: Default::default(),
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                networks: nets
                    .iter()
                    .map(|n| NetworkAttachmentConfig {
                        target: n.to_string(),
                        aliases: vec![format!("{name}-alias")],
                    })
                    .collect(),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas: 1 })),
            endpoint,
            ..Default::default()
        };
        services::create(&self.store, spec)
            .await
            .expect("create service")
            .id
    }

    fn read_service(&self, id: &str) -> Service {
        objects::get::<Service>(&self.store, id)
            .expect("read service")
            .expect("service exists")
    }

    /// Makes `n` tasks of the service in NEW, as the orchestrator does.
    async fn tasks(&self, service_id: &str, first_slot: u64, n: u64) -> Vec<String> {
        let svc = self.read_service(service_id);
        let now = objects::now_nanos();
        let mut ops = Vec::new();
        let mut ids = Vec::new();
        for slot in first_slot..first_slot + n {
            let mut t = task::new_task(&svc, slot, None, 0, now);
            if let Some(s) = t.status.as_mut() {
                s.state = TaskState::New as i32;
                s.message = "created".into();
            }
            ids.push(t.id.clone());
            ops.push(objects::put(&t));
        }
        self.store.write(ops).await.expect("write tasks");
        ids
    }

    fn task(&self, id: &str) -> Task {
        objects::get::<Task>(&self.store, id)
            .expect("read task")
            .expect("task exists")
    }

    /// Reports a task's end (state), as an agent would.
    async fn end(&self, id: &str, state: TaskState) {
        for _ in 0..50 {
            let mut t = self.task(id);
            t.status.get_or_insert_with(Default::default).state = state as i32;
            if self.store.write(vec![objects::put(&t)]).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("could not end task {id}");
    }

    async fn wait<T>(&self, what: &str, mut check: impl FnMut(&Swarm) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                let tasks: Vec<String> = objects::list::<Task>(&self.store)
                    .expect("tasks")
                    .iter()
                    .map(|t| {
                        format!(
                            "{} state={} msg={:?} nets={:?}",
                            t.id,
                            task::state(t),
                            t.status.as_ref().map(|s| s.message.clone()),
                            t.networks
                        )
                    })
                    .collect();
                panic!("timed out waiting for {what}; tasks:\n{}", tasks.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until each task is PENDING, or NEW with a message other than
    /// "created" (the allocator has looked at it).
    async fn settled(&self, ids: &[String]) -> Vec<Task> {
        self.wait("tasks to be allocated or refused", |s| {
            let tasks: Vec<Task> = ids.iter().map(|id| s.task(id)).collect();
            tasks
                .iter()
                .all(|t| {
                    let st = t.status.clone().unwrap_or_default();
                    st.state == TaskState::Pending as i32
                        || (st.state == TaskState::New as i32 && st.message != "created")
                })
                .then_some(tasks)
        })
        .await
    }

    fn vips(&self, service_id: &str) -> Vec<(String, String)> {
        self.read_service(service_id)
            .endpoint
            .map(|e| {
                e.virtual_ips
                    .into_iter()
                    .map(|v| (v.network_id, v.addr))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ingress_id(&self) -> String {
        networks::resolve_network(&self.store, "ingress")
            .expect("ingress")
            .id
    }

    /// A node as the CA writes it when the node joins: no attachments yet.
    async fn join(&self, hostname: &str) -> String {
        let node = Node {
            id: crate::objects::new_id(),
            spec: Some(NodeSpec {
                annotations: None,
                desired_role: NodeRole::Worker as i32,
                availability: NodeAvailability::Active as i32,
            }),
            description: Some(NodeDescription {
                hostname: hostname.into(),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: NodeState::Unknown as i32,
                message: "joined; waiting for the first heartbeat".into(),
                addr: "192.168.1.10".into(),
            }),
            role: NodeRole::Worker as i32,
            ..Default::default()
        };
        self.store
            .write(vec![objects::put(&node)])
            .await
            .expect("write node");
        node.id
    }

    fn node(&self, id: &str) -> Node {
        objects::get::<Node>(&self.store, id)
            .expect("read node")
            .expect("node exists")
    }

    /// A node's attachments as (network, address) pairs.
    fn node_addrs(&self, id: &str) -> Vec<(String, String)> {
        self.node(id)
            .attachments
            .into_iter()
            .flat_map(|a| {
                let net = a.network_id;
                a.addresses.into_iter().map(move |addr| (net.clone(), addr))
            })
            .collect()
    }

    /// Waits until every node has exactly one address on `network`, and
    /// returns them.
    async fn node_addrs_on(&self, nodes: &[String], network: &str) -> Vec<String> {
        self.wait("node addresses on ingress", |s| {
            let addrs: Vec<Vec<(String, String)>> = nodes.iter().map(|n| s.node_addrs(n)).collect();
            addrs
                .iter()
                .all(|a| a.len() == 1 && a[0].0 == network)
                .then(|| addrs.into_iter().map(|mut a| a.remove(0).1).collect())
        })
        .await
    }

    /// Changes a node as the dispatcher or `node update` does: read, change,
    /// write with the version read, again on conflict.
    async fn update_node(&self, id: &str, change: impl Fn(&mut Node)) {
        for _ in 0..100 {
            let mut n = self.node(id);
            change(&mut n);
            if self.store.write(vec![objects::put(&n)]).await.is_ok() {
                return;
            }
        }
        panic!("could not update node {id}");
    }

    async fn remove_node(&self, id: &str) {
        let n = self.node(id);
        self.store
            .write(vec![objects::delete(
                objects::KIND_NODE,
                id,
                n.meta.as_ref(),
            )])
            .await
            .expect("delete node");
    }
}

fn is_pending(t: &Task) -> bool {
    task::state(t) == TaskState::Pending as i32
}

fn message(t: &Task) -> (String, String) {
    let s = t.status.clone().unwrap_or_default();
    (s.message, s.err)
}

/// Every address held by live tasks, services' VIPs and nodes; panics on a
/// duplicate.
fn assert_no_duplicates(store: &Store) -> usize {
    let mut seen: HashSet<(String, Ipv4Addr)> = HashSet::new();
    let mut check = |net: &str, addr: &str, who: &str| {
        let ip = ipam::parse_addr(addr).expect("address");
        assert!(
            seen.insert((net.to_string(), ip)),
            "{addr} on {net} handed out twice (again to {who})"
        );
    };
    for t in objects::list::<Task>(store).expect("tasks") {
        if !super::state::holds_addresses(&t) {
            continue;
        }
        for a in &t.networks {
            for addr in &a.addresses {
                check(&a.network_id, addr, &t.id);
            }
        }
    }
    for s in objects::list::<Service>(store).expect("services") {
        for v in s.endpoint.iter().flat_map(|e| e.virtual_ips.iter()) {
            check(&v.network_id, &v.addr, &s.id);
        }
    }
    for n in objects::list::<Node>(store).expect("nodes") {
        for a in &n.attachments {
            for addr in &a.addresses {
                check(&a.network_id, addr, &n.id);
            }
        }
    }
    seen.len()
}

fn ingress_port() -> EndpointSpec {
    EndpointSpec {
        ports: vec![PortConfig {
            target_port: 80,
            published_port: 8080,
            publish_mode: PublishMode::Ingress as i32,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_service_gets_a_vip_and_its_tasks_distinct_addresses() {
    let swarm = Swarm::start().await;
    let backend = swarm.network("backend", "10.20.0.0/24").await;
    let api = swarm.service("api", &["backend"], None).await;
    let vip = swarm
        .wait("the VIP", |s| s.vips(&api).into_iter().next())
        .await;
    assert_eq!(vip.0, backend);
    assert_eq!(vip.1, "10.20.0.2/24", "the first address after the gateway");
    assert_eq!(swarm.vips(&api).len(), 1, "one VIP per network");

    let ids = swarm.tasks(&api, 1, 3).await;
    let tasks = swarm.settled(&ids).await;
    let mut addrs = HashSet::new();
    for t in &tasks {
        assert!(is_pending(t), "task {} not pending: {:?}", t.id, message(t));
        assert_eq!(message(t), (PENDING_MESSAGE.to_string(), String::new()));
        assert_eq!(t.networks.len(), 1);
        let att = &t.networks[0];
        assert_eq!(att.network_id, backend);
        assert_eq!(att.aliases, vec!["api-alias".to_string()]);
        assert_eq!(att.addresses.len(), 1);
        let addr = &att.addresses[0];
        assert!(
            addr.starts_with("10.20.0.") && addr.ends_with("/24"),
            "{addr}"
        );
        assert_ne!(addr, &vip.1);
        assert_ne!(addr, "10.20.0.1/24", "the gateway");
        addrs.insert(addr.clone());
        let task_vips = t.endpoint.as_ref().map(|e| e.virtual_ips.len());
        assert_eq!(task_vips, Some(1), "the task carries the service's VIP");
    }
    assert_eq!(addrs.len(), 3, "distinct addresses: {addrs:?}");
    assert_eq!(assert_no_duplicates(&swarm.store), 4);
}

#[tokio::test]
async fn tasks_without_networks_go_straight_to_pending() {
    let swarm = Swarm::start().await;
    let plain = swarm.service("plain", &[], None).await;
    let ids = swarm.tasks(&plain, 1, 2).await;
    for t in swarm.settled(&ids).await {
        assert!(is_pending(&t));
        assert!(t.networks.is_empty());
    }
    assert!(swarm.vips(&plain).is_empty());
}

#[tokio::test]
async fn a_full_network_keeps_the_extra_tasks_new_until_addresses_are_freed() {
    let swarm = Swarm::start().await;
    // A /29: .1 is the gateway, .2 … .6 are five addresses; the VIP takes one.
    swarm.network("small", "10.20.0.0/29").await;
    let svc = swarm.service("web", &["small"], None).await;
    swarm
        .wait("the VIP", |s| s.vips(&svc).into_iter().next())
        .await;
    let ids = swarm.tasks(&svc, 1, 7).await;
    let tasks = swarm.settled(&ids).await;
    let pending: Vec<&Task> = tasks.iter().filter(|t| is_pending(t)).collect();
    let waiting: Vec<&Task> = tasks.iter().filter(|t| !is_pending(t)).collect();
    assert_eq!((pending.len(), waiting.len()), (4, 3));
    let full = "network small: no free address in 10.20.0.0/29".to_string();
    for t in &waiting {
        assert_eq!(task::state(t), TaskState::New as i32);
        assert_eq!(message(t), (full.clone(), full.clone()));
        assert!(t.networks.is_empty());
    }
    assert_eq!(assert_no_duplicates(&swarm.store), 5);

    // Two tasks end: two waiting tasks get their addresses.
    let freed: HashSet<String> = pending[..2]
        .iter()
        .map(|t| t.networks[0].addresses[0].clone())
        .collect();
    swarm.end(&pending[0].id, TaskState::Shutdown).await;
    swarm.end(&pending[1].id, TaskState::Complete).await;
    let waiting_ids: Vec<String> = waiting.iter().map(|t| t.id.clone()).collect();
    let reused = swarm
        .wait("two waiting tasks to be allocated", |s| {
            let now: Vec<Task> = waiting_ids.iter().map(|id| s.task(id)).collect();
            let done: Vec<String> = now
                .iter()
                .filter(|t| is_pending(t))
                .map(|t| t.networks[0].addresses[0].clone())
                .collect();
            (done.len() == 2).then_some(done)
        })
        .await;
    assert_eq!(
        reused.into_iter().collect::<HashSet<_>>(),
        freed,
        "the freed addresses are reused"
    );
    assert_eq!(assert_no_duplicates(&swarm.store), 5);

    // A deleted task frees its address too.
    let victim = pending[2].clone();
    swarm
        .store
        .write(vec![objects::delete(
            objects::KIND_TASK,
            &victim.id,
            swarm.task(&victim.id).meta.as_ref(),
        )])
        .await
        .expect("delete task");
    swarm
        .wait("the last waiting task to be allocated", |s| {
            waiting_ids
                .iter()
                .all(|id| is_pending(&s.task(id)))
                .then_some(())
        })
        .await;
    assert_eq!(assert_no_duplicates(&swarm.store), 5);
}

#[tokio::test]
async fn a_task_on_an_unknown_network_waits_for_it() {
    let swarm = Swarm::start().await;
    // Written straight to the store: the Control API may refuse unknown
    // networks, but a network can still go between validation and allocation.
    let svc = swarm.service("late", &[], None).await;
    let mut raw = swarm.read_service(&svc);
    if let Some(t) = raw.spec.as_mut().and_then(|s| s.task.as_mut()) {
        t.networks.push(NetworkAttachmentConfig {
            target: "later".into(),
            aliases: vec![],
        });
    }
    swarm
        .store
        .write(vec![objects::put(&raw)])
        .await
        .expect("attach to a network that does not exist");
    let ids = swarm.tasks(&svc, 1, 1).await;
    let t = &swarm.settled(&ids).await[0];
    assert_eq!(task::state(t), TaskState::New as i32);
    assert_eq!(message(t).0, "network later not found");
    let later = swarm.network("later", "").await;
    let t = swarm
        .wait("the task to be allocated", |s| {
            Some(s.task(&ids[0])).filter(is_pending)
        })
        .await;
    assert_eq!(t.networks[0].network_id, later);
    swarm
        .wait("the service's VIP", |s| s.vips(&svc).into_iter().next())
        .await;
}

/// The allocator's port rule is the word at `service create`: a second
/// service publishing the same ingress port is refused, with the message
/// Docker gives, and nothing is stored.
#[tokio::test]
async fn service_create_refuses_an_ingress_port_already_published() {
    let swarm = Swarm::start().await;
    let web = swarm.service("web", &[], Some(ingress_port())).await;
    let mut spec = swarm.read_service(&web).spec.expect("spec");
    spec.annotations.get_or_insert_with(Default::default).name = "other".into();
    let err = services::create(&swarm.store, spec)
        .await
        .expect_err("port conflict");
    assert!(
        matches!(&err, crate::error::ManagerError::InvalidArgument(m)
            if *m == format!("port '8080' is already in use by service 'web' ({web}) as an ingress port")),
        "{err}"
    );
    assert_eq!(
        objects::list::<Service>(&swarm.store)
            .expect("services")
            .len(),
        1
    );
}

#[tokio::test]
async fn published_ports_put_services_and_tasks_on_ingress() {
    let swarm = Swarm::start().await;
    let ingress = swarm.ingress_id();
    let backend = swarm.network("backend", "10.20.0.0/24").await;
    let web = swarm
        .service("web", &["backend"], Some(ingress_port()))
        .await;
    let vips = swarm
        .wait("two VIPs", |s| Some(s.vips(&web)).filter(|v| v.len() == 2))
        .await;
    assert_eq!(vips[0].0, ingress, "ingress first");
    assert!(vips[0].1.starts_with("10.0.0."));
    assert_eq!(vips[1].0, backend);
    let ids = swarm.tasks(&web, 1, 2).await;
    for t in swarm.settled(&ids).await {
        assert!(is_pending(&t));
        let nets: Vec<&str> = t.networks.iter().map(|a| a.network_id.as_str()).collect();
        assert_eq!(nets, [ingress.as_str(), backend.as_str()]);
        assert!(t.networks[0].aliases.is_empty(), "no aliases on ingress");
    }
    assert_eq!(assert_no_duplicates(&swarm.store), 6);

    // Host-mode ports do not use the mesh.
    let mut host = ingress_port();
    host.ports[0].publish_mode = PublishMode::Host as i32;
    host.ports[0].published_port = 9090;
    let h = swarm.service("hostport", &[], Some(host)).await;
    let ids = swarm.tasks(&h, 1, 1).await;
    let t = &swarm.settled(&ids).await[0];
    assert!(is_pending(t) && t.networks.is_empty());
    assert!(swarm.vips(&h).is_empty());
}

#[tokio::test]
async fn dnsrr_services_get_no_vip() {
    let swarm = Swarm::start().await;
    swarm.network("backend", "").await;
    let rr = swarm
        .service(
            "rr",
            &["backend"],
            Some(EndpointSpec {
                mode: ResolutionMode::Dnsrr as i32,
                ports: vec![],
            }),
        )
        .await;
    let ids = swarm.tasks(&rr, 1, 2).await;
    for t in swarm.settled(&ids).await {
        assert!(is_pending(&t));
        assert_eq!(t.networks.len(), 1);
    }
    assert!(swarm.vips(&rr).is_empty());
}

/// A positive event for absence checks: the allocator has handled every change
/// made before this call (it handles them in order), shown by a new network and
/// a service on it getting a VIP.
async fn allocator_caught_up(swarm: &Swarm, tag: &str) {
    let net = format!("marker-net-{tag}");
    swarm.network(&net, "").await;
    let svc = swarm
        .service(&format!("marker-{tag}"), &[net.as_str()], None)
        .await;
    swarm
        .wait("the marker service's VIP", |s| {
            s.vips(&svc).into_iter().next()
        })
        .await;
}

#[tokio::test]
async fn vips_are_freed_on_detach_and_removal() {
    let swarm = Swarm::start().await;
    // A /30 has a single address: whoever holds it blocks everyone else.
    let tiny = swarm.network("tiny", "10.30.0.0/30").await;
    swarm.network("other", "").await;
    let a = swarm.service("a", &["tiny"], None).await;
    let first = swarm
        .wait("a's VIP", |s| s.vips(&a).into_iter().next())
        .await;
    assert_eq!(first, (tiny.clone(), "10.30.0.2/30".to_string()));
    let b = swarm.service("b", &["tiny"], None).await;
    allocator_caught_up(&swarm, "b").await;
    assert!(swarm.vips(&b).is_empty(), "no address left for b");

    // a moves to another network: its VIP on tiny goes to b.
    let mut svc = swarm.read_service(&a);
    let mut spec = svc.spec.clone().expect("spec");
    if let Some(t) = spec.task.as_mut() {
        t.networks[0].target = "other".into();
    }
    svc.spec = Some(spec);
    swarm
        .store
        .write(vec![objects::put(&svc)])
        .await
        .expect("update a");
    let b_vip = swarm
        .wait("b's VIP", |s| s.vips(&b).into_iter().next())
        .await;
    assert_eq!(b_vip, first);
    let a_vips = swarm
        .wait("a's VIP on other", |s| {
            Some(s.vips(&a)).filter(|v| v.len() == 1 && v[0].0 != tiny)
        })
        .await;
    assert_eq!(a_vips.len(), 1);

    // b is removed: c gets the address.
    services::remove(&swarm.store, &b).await.expect("remove b");
    let c = swarm.service("c", &["tiny"], None).await;
    let c_vip = swarm
        .wait("c's VIP", |s| s.vips(&c).into_iter().next())
        .await;
    assert_eq!(c_vip, first);
    assert_no_duplicates(&swarm.store);
}

#[tokio::test]
async fn a_new_leader_rebuilds_the_allocations_and_never_hands_out_twice() {
    let mut swarm = Swarm::start().await;
    swarm.network("backend", "10.20.0.0/28").await;
    let svc = swarm.service("api", &["backend"], None).await;
    swarm
        .wait("the VIP", |s| s.vips(&svc).into_iter().next())
        .await;
    let first = swarm.tasks(&svc, 1, 5).await;
    assert!(swarm.settled(&first).await.iter().all(is_pending));
    let held = assert_no_duplicates(&swarm.store);
    assert_eq!(held, 6);

    swarm.restart_allocator().await;
    // Another service and more tasks: a /28 has 13 addresses, 6 are taken.
    let other = swarm.service("other", &["backend"], None).await;
    swarm
        .wait("the other VIP", |s| s.vips(&other).into_iter().next())
        .await;
    let more = swarm.tasks(&svc, 6, 8).await;
    let tasks = swarm.settled(&more).await;
    assert_eq!(tasks.iter().filter(|t| is_pending(t)).count(), 6);
    assert_eq!(assert_no_duplicates(&swarm.store), 13);
    // The service VIP written by the first allocator was kept, not replaced.
    assert_eq!(swarm.vips(&svc).len(), 1);
}

/// Aborts a loop when the test ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::test]
async fn orchestrated_tasks_get_addresses_before_they_are_scheduled() {
    use crate::orchestrator::testing::{obedient_agent, placed, TestSwarm};

    let mut swarm = TestSwarm::start(5).await;
    let _allocator = AbortOnDrop(spawn_allocator(swarm.store.clone()));
    swarm.add_node("node-1", |_| {}).await;
    swarm.add_node("node-2", |_| {}).await;
    swarm.run_agents(obedient_agent());
    let spec = NetworkSpec {
        annotations: Some(Annotations {
            name: "backend".into(),
            labels: Default::default(),
        }),
        ipam: vec![IpamConfig {
            subnet: "10.20.0.0/24".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let backend = networks::create(&swarm.store, spec)
        .await
        .expect("network")
        .id;
    let api = swarm
        .create_service(
            "api",
            Mode::Replicated(ReplicatedService { replicas: 3 }),
            |t| {
                t.networks.push(NetworkAttachmentConfig {
                    target: "backend".into(),
                    aliases: vec![],
                })
            },
        )
        .await;
    let running = swarm
        .wait_for("3 placed tasks with addresses", &api, |tasks| {
            let done: Vec<Task> = tasks
                .iter()
                .filter(|t| placed(t) && t.networks.len() == 1)
                .cloned()
                .collect();
            (done.len() == 3).then_some(done)
        })
        .await;
    let addrs: HashSet<&str> = running
        .iter()
        .map(|t| t.networks[0].addresses[0].as_str())
        .collect();
    assert_eq!(addrs.len(), 3);
    assert!(running.iter().all(|t| t.networks[0].network_id == backend));
    // Scaling down and up again reuses nothing still held.
    swarm.scale(&api, 1).await;
    swarm.scale(&api, 4).await;
    swarm
        .wait_for("4 placed tasks with addresses", &api, |tasks| {
            let n = tasks
                .iter()
                .filter(|t| placed(t) && t.networks.len() == 1)
                .count();
            (n == 4).then_some(())
        })
        .await;
    assert_no_duplicates(&swarm.store);
}

#[tokio::test]
async fn every_node_gets_its_own_address_on_ingress() {
    let swarm = Swarm::start().await;
    let ingress = swarm.ingress_id();
    let web = swarm.service("web", &[], Some(ingress_port())).await;
    let vip = swarm
        .wait("the ingress VIP", |s| s.vips(&web).into_iter().next())
        .await;
    let tasks = swarm.tasks(&web, 1, 2).await;
    assert!(swarm.settled(&tasks).await.iter().all(is_pending));

    let mut nodes = Vec::new();
    for host in ["node-1", "node-2", "node-3"] {
        nodes.push(swarm.join(host).await);
    }
    let addrs = swarm.node_addrs_on(&nodes, &ingress).await;
    for (id, addr) in nodes.iter().zip(&addrs) {
        assert!(
            addr.starts_with("10.0.0.") && addr.ends_with("/24"),
            "{addr}"
        );
        assert_ne!(addr, "10.0.0.1/24", "the gateway");
        assert_ne!(addr, &vip.1, "the VIP");
        let n = swarm.node(id);
        assert!(n.attachments[0].aliases.is_empty(), "no aliases");
        let status = n.status.unwrap_or_default();
        assert_eq!(
            status.message, "joined; waiting for the first heartbeat",
            "the rest of the node is untouched"
        );
    }
    assert_eq!(addrs.iter().collect::<HashSet<_>>().len(), 3);
    assert_eq!(assert_no_duplicates(&swarm.store), 6);

    // A node that joins later gets one from the change stream: the wait
    // (PATIENCE) ends well before the next 30 s full pass.
    assert!(PATIENCE < super::FULL_PASS_EVERY);
    let late = swarm.join("node-4").await;
    swarm
        .node_addrs_on(std::slice::from_ref(&late), &ingress)
        .await;
    assert_eq!(assert_no_duplicates(&swarm.store), 7);
}

#[tokio::test]
async fn node_writes_keep_what_others_write_at_the_same_time() {
    let swarm = Swarm::start().await;
    let ingress = swarm.ingress_id();
    // Nodes join while heartbeats and `node update`s keep rewriting them:
    // the allocator's writes conflict, and it must re-read, not clobber.
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(swarm.join(&format!("busy-{i}")).await);
    }
    let beats = 40;
    for i in 0..beats {
        for id in &nodes {
            swarm
                .update_node(id, |n| {
                    let status = n.status.get_or_insert_with(Default::default);
                    status.state = NodeState::Ready as i32;
                    status.message = format!("beat {i}");
                    if i == beats / 2 {
                        n.spec.get_or_insert_with(Default::default).availability =
                            NodeAvailability::Drain as i32;
                    }
                })
                .await;
        }
    }
    swarm.node_addrs_on(&nodes, &ingress).await;
    for id in &nodes {
        let n = swarm.node(id);
        assert_eq!(
            n.status.unwrap_or_default().message,
            format!("beat {}", beats - 1)
        );
        assert_eq!(
            n.spec.unwrap_or_default().availability,
            NodeAvailability::Drain as i32
        );
    }
    // A heartbeat after the allocation keeps the attachment.
    swarm
        .update_node(&nodes[0], |n| {
            n.status.get_or_insert_with(Default::default).message = "beat again".into()
        })
        .await;
    allocator_caught_up(&swarm, "beat").await;
    assert_eq!(swarm.node_addrs(&nodes[0]).len(), 1);
    // Four node addresses, and the marker service's VIP.
    assert_eq!(assert_no_duplicates(&swarm.store), 5);
}

#[tokio::test]
async fn a_refused_node_write_frees_its_address_and_is_decided_again_from_the_store() {
    let mut swarm = Swarm::start().await;
    if let Some(a) = swarm.allocator.take() {
        a.abort();
        let _ = a.await;
    }
    let id = swarm.join("node-1").await;
    let mut view = super::load(&swarm.store).expect("load");
    // A heartbeat lands after the allocator read the node.
    swarm
        .update_node(&id, |n| {
            n.status.get_or_insert_with(Default::default).message = "beat".into()
        })
        .await;

    let owner = super::state::Owner::Node(id.clone());
    let node = view.nodes[&id].clone();
    let update = super::plan_node(&mut view.observer, &node).expect("an address");
    let held = update.1[0].clone();
    assert!(view.observer.owns(&held, &owner));
    let retry = super::write_updates(&swarm.store, &mut view, vec![update])
        .await
        .expect("write");
    assert!(retry, "the write was refused");
    assert!(!view.observer.owns(&held, &owner), "its address is freed");
    assert!(view.observer.dirty_nodes.contains(&id), "looked at again");
    assert!(swarm.node_addrs(&id).is_empty());

    // Decided again from the store's copy: the heartbeat survives.
    let node = view.nodes[&id].clone();
    assert_eq!(node.status.clone().unwrap_or_default().message, "beat");
    let update = super::plan_node(&mut view.observer, &node).expect("an address");
    let retry = super::write_updates(&swarm.store, &mut view, vec![update])
        .await
        .expect("write");
    assert!(!retry);
    let stored = swarm.node(&id);
    assert_eq!(stored.status.unwrap_or_default().message, "beat");
    assert_eq!(swarm.node_addrs(&id).len(), 1);
    assert!(
        super::plan_node(&mut view.observer, &view.nodes[&id].clone()).is_none(),
        "nothing more to do"
    );
}

#[tokio::test]
async fn a_full_ingress_leaves_a_node_waiting_until_a_deleted_node_frees_an_address() {
    let swarm = Swarm::start().await;
    networks::remove(&swarm.store, "ingress")
        .await
        .expect("remove ingress");
    // A /29: .1 is the gateway, .2 … .6 are five addresses.
    let ingress = swarm.ingress("10.40.0.0/29").await;
    let mut nodes = Vec::new();
    for i in 1..=5 {
        nodes.push(swarm.join(&format!("node-{i}")).await);
    }
    let addrs = swarm.node_addrs_on(&nodes, &ingress).await;
    let extra = swarm.join("node-6").await;
    allocator_caught_up(&swarm, "extra").await;
    assert!(
        swarm.node_addrs(&extra).is_empty(),
        "no address left for the sixth node"
    );
    let n = swarm.node(&extra);
    assert_eq!(
        n.status.unwrap_or_default().message,
        "joined; waiting for the first heartbeat",
        "nothing fails"
    );

    // The first node is removed: its address goes to the waiting one.
    swarm.remove_node(&nodes[0]).await;
    let got = swarm
        .node_addrs_on(std::slice::from_ref(&extra), &ingress)
        .await;
    assert_eq!(got[0], addrs[0], "the freed address is reused");
    // Five node addresses, and the marker service's VIP.
    assert_eq!(assert_no_duplicates(&swarm.store), 6);
}

#[tokio::test]
async fn a_new_leader_never_gives_a_nodes_address_to_a_task_or_vip() {
    let mut swarm = Swarm::start().await;
    let ingress = swarm.ingress_id();
    let mut nodes = Vec::new();
    for host in ["node-1", "node-2", "node-3"] {
        nodes.push(swarm.join(host).await);
    }
    let before = swarm.node_addrs_on(&nodes, &ingress).await;

    // A fresh allocator starts its search at the start of the subnet again:
    // only the rebuilt accounting keeps it off the nodes' addresses.
    swarm.restart_allocator().await;
    let web = swarm.service("web", &[], Some(ingress_port())).await;
    let vip = swarm
        .wait("the ingress VIP", |s| s.vips(&web).into_iter().next())
        .await;
    assert!(!before.contains(&vip.1), "{vip:?} is a node's");
    let tasks = swarm.tasks(&web, 1, 3).await;
    for t in swarm.settled(&tasks).await {
        assert!(is_pending(&t));
        assert!(!before.contains(&t.networks[0].addresses[0]));
    }
    assert_eq!(assert_no_duplicates(&swarm.store), 7);
    assert_eq!(
        swarm.node_addrs_on(&nodes, &ingress).await,
        before,
        "the nodes keep their addresses"
    );
}

#[tokio::test]
async fn node_addresses_follow_ingress_when_it_is_recreated() {
    let swarm = Swarm::start().await;
    let old = swarm.ingress_id();
    let mut nodes = Vec::new();
    for host in ["node-1", "node-2"] {
        nodes.push(swarm.join(host).await);
    }
    swarm.node_addrs_on(&nodes, &old).await;

    // Node attachments do not keep `network rm ingress` from working.
    networks::remove(&swarm.store, "ingress")
        .await
        .expect("remove ingress while nodes hold addresses on it");
    swarm
        .wait("node attachments to be cleared", |s| {
            nodes
                .iter()
                .all(|n| s.node(n).attachments.is_empty())
                .then_some(())
        })
        .await;

    let new = swarm.ingress("10.50.0.0/24").await;
    assert_ne!(new, old);
    let addrs = swarm.node_addrs_on(&nodes, &new).await;
    for a in &addrs {
        assert!(a.starts_with("10.50.0.") && a.ends_with("/24"), "{a}");
    }
    assert_eq!(addrs.iter().collect::<HashSet<_>>().len(), 2);

    // Removed and recreated before the allocator looks: the stale
    // attachment is replaced directly.
    networks::remove(&swarm.store, "ingress")
        .await
        .expect("remove ingress");
    let newer = swarm.ingress("10.60.0.0/24").await;
    let addrs = swarm.node_addrs_on(&nodes, &newer).await;
    assert!(addrs.iter().all(|a| a.starts_with("10.60.0.")), "{addrs:?}");
    assert_eq!(assert_no_duplicates(&swarm.store), 2);
}
