//! Control calls on networks: `network create | inspect | ls | rm | prune`.
//!
//! A network is complete when it is created: the spec is validated and the
//! network gets its subnets, gateways and VNI right away (rules in
//! [`crate::allocator::network`]), so `network inspect` shows them at once
//! and the allocator only hands out addresses inside them. Two creates on
//! different managers cannot take the same name, subnet or VNI: each one
//! also rewrites a guard object, guarded by the version it read before
//! looking at the other networks, and starts over if someone else wrote it
//! first.
//!
//! A network is in use, and cannot be removed, while a service's task
//! template names it, while a task that is still meant to run and has not
//! stopped is attached to it (as swarmkit checks), or, for `ingress`, while a
//! service publishes a port in ingress mode. Nodes' own addresses on
//! `ingress` do not count (as in Docker): the allocator clears them, or
//! moves them to a recreated ingress network. `prune` removes every other
//! network except `ingress`. References are a full ID, a name, or a unique ID
//! prefix.

use rswarm_proto::control::networks_server::Networks;
use rswarm_proto::control::{
    CreateNetworkRequest, GetNetworkRequest, ListNetworksRequest, ListNetworksResponse,
    PruneNetworksRequest, PruneNetworksResponse, RemoveNetworkRequest, RemoveNetworkResponse,
};
use rswarm_proto::types::{Network, NetworkSpec, Node, Service, Task, TaskState};
use rswarm_raft::{Op, Store, StoreError};
use tonic::{Request, Response, Status};

use crate::allocator::network;
use crate::error::ManagerError;
use crate::objects;
use crate::orchestrator::task;

/// The guard object's ID (there is one).
const GUARD_ID: &str = "default";
/// How often a create starts over after losing a race before giving up.
const CREATE_ATTEMPTS: usize = 20;

/// The Networks service of one manager.
#[derive(Clone)]
pub struct NetworksApi {
    store: Store,
}

impl NetworksApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl Networks for NetworksApi {
    async fn create_network(
        &self,
        req: Request<CreateNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        let spec = req
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("create without a network spec"))?;
        Ok(Response::new(create(&self.store, spec).await?))
    }

    async fn get_network(
        &self,
        req: Request<GetNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        Ok(Response::new(resolve_network(
            &self.store,
            &req.into_inner().network_ref,
        )?))
    }

    async fn list_networks(
        &self,
        _req: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        Ok(Response::new(ListNetworksResponse {
            networks: list(&self.store)?,
        }))
    }

    async fn remove_network(
        &self,
        req: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        remove(&self.store, &req.into_inner().network_ref).await?;
        Ok(Response::new(RemoveNetworkResponse {}))
    }

    async fn prune_networks(
        &self,
        _req: Request<PruneNetworksRequest>,
    ) -> Result<Response<PruneNetworksResponse>, Status> {
        Ok(Response::new(PruneNetworksResponse {
            removed: prune(&self.store).await?,
        }))
    }
}

/// Creates a network: validated, with its subnets, gateways and VNI.
pub(crate) async fn create(store: &Store, spec: NetworkSpec) -> Result<Network, ManagerError> {
    for _ in 0..CREATE_ATTEMPTS {
        let guard = store
            .get(objects::KIND_NETWORK_GUARD, GUARD_ID)?
            .map(|o| o.version)
            .unwrap_or(0);
        let existing = objects::list::<Network>(store)?;
        let cluster = match objects::cluster(store) {
            Ok(c) => Some(c),
            Err(ManagerError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let pool = network::cluster_pool(cluster.as_ref());
        let reserved = reserved(store)?;
        let created = network::allocate_network_beside(spec.clone(), &existing, &pool, &reserved)?;
        let ops = vec![
            objects::put(&created),
            Op::Put {
                kind: objects::KIND_NETWORK_GUARD.into(),
                id: GUARD_ID.into(),
                value: created.id.clone().into_bytes(),
                expect_version: Some(guard),
            },
        ];
        match store.write(ops).await {
            Ok(_) => {
                return objects::get::<Network>(store, &created.id)?
                    .ok_or_else(|| ManagerError::Internal("network vanished after create".into()))
            }
            // Another network was created meanwhile: look again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ManagerError::Internal(
        "network create kept racing with other network creates; try again".into(),
    ))
}

/// What a new network's subnet must keep clear of: the gateway bridge's
/// subnet and every node's address.
fn reserved(store: &Store) -> Result<Vec<network::Reserved>, ManagerError> {
    let (gw, prefix) = network::GATEWAY_BRIDGE_SUBNET;
    let mut out = vec![network::Reserved::GatewayBridge(
        crate::allocator::ipam::Cidr::new(gw, prefix),
    )];
    for node in objects::list::<Node>(store)? {
        let addr = node.status.as_ref().map(|s| s.addr.as_str()).unwrap_or("");
        let ip = addr
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .or_else(|| addr.parse::<std::net::SocketAddrV4>().ok().map(|a| *a.ip()));
        if let Some(ip) = ip {
            let host = node
                .description
                .as_ref()
                .map(|d| d.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| node.id.clone());
            out.push(network::Reserved::Host(ip, host));
        }
    }
    Ok(out)
}

/// All networks, by name.
pub(crate) fn list(store: &Store) -> Result<Vec<Network>, ManagerError> {
    let mut all = objects::list::<Network>(store)?;
    all.sort_by(|a, b| network::name(a).cmp(network::name(b)).then(a.id.cmp(&b.id)));
    Ok(all)
}

/// Resolves a network by full ID, name, or unique ID prefix.
pub(crate) fn resolve_network(store: &Store, reference: &str) -> Result<Network, ManagerError> {
    if reference.is_empty() {
        return Err(ManagerError::InvalidArgument(
            "network reference is empty".into(),
        ));
    }
    let all = objects::list::<Network>(store)?;
    if let Some(n) = all.iter().find(|n| n.id == reference) {
        return Ok(n.clone());
    }
    if let Some(n) = all.iter().find(|n| network::name(n) == reference) {
        return Ok(n.clone());
    }
    let by_prefix: Vec<&Network> = all.iter().filter(|n| n.id.starts_with(reference)).collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0].clone()),
        0 => Err(ManagerError::NotFound(format!(
            "network {reference} not found"
        ))),
        k => Err(ManagerError::InvalidArgument(format!(
            "network {reference} is ambiguous ({k} matches found)"
        ))),
    }
}

/// Removes a network nothing uses.
pub(crate) async fn remove(store: &Store, reference: &str) -> Result<(), ManagerError> {
    let n = resolve_network(store, reference)?;
    let services = objects::list::<Service>(store)?;
    let tasks = objects::list::<Task>(store)?;
    check_unused(&n, &services, &tasks)?;
    match store
        .write(vec![objects::delete(
            objects::KIND_NETWORK,
            &n.id,
            n.meta.as_ref(),
        )])
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(ManagerError::FailedPrecondition(format!(
            "network {} changed while it was being removed; try again",
            network::name(&n)
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Removes every network nothing uses, except the ingress network. Returns
/// the names of those removed.
pub(crate) async fn prune(store: &Store) -> Result<Vec<String>, ManagerError> {
    let services = objects::list::<Service>(store)?;
    let tasks = objects::list::<Task>(store)?;
    let mut removed = Vec::new();
    for n in list(store)? {
        if network::is_ingress(&n) || check_unused(&n, &services, &tasks).is_err() {
            continue;
        }
        let op = objects::delete(objects::KIND_NETWORK, &n.id, n.meta.as_ref());
        match store.write(vec![op]).await {
            Ok(_) => removed.push(network::name(&n).to_string()),
            // It changed meanwhile: leave it to the next prune.
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(removed)
}

fn service_name(s: &Service) -> &str {
    s.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.as_str())
        .unwrap_or("")
}

/// Refuses with Docker's words when something uses the network.
fn check_unused(n: &Network, services: &[Service], tasks: &[Task]) -> Result<(), ManagerError> {
    let name = network::name(n);
    let mut services: Vec<&Service> = services.iter().collect();
    services.sort_by(|a, b| service_name(a).cmp(service_name(b)));
    for s in &services {
        let attached = s
            .spec
            .iter()
            .flat_map(|spec| spec.task.iter())
            .flat_map(|t| t.networks.iter())
            .any(|cfg| network::matches_target(n, &cfg.target));
        if attached {
            return Err(ManagerError::FailedPrecondition(format!(
                "network {name} is in use by service {}",
                service_name(s)
            )));
        }
    }
    if network::is_ingress(n) {
        for s in &services {
            let ports = s
                .spec
                .as_ref()
                .and_then(|spec| spec.endpoint.as_ref())
                .map(|e| e.ports.as_slice())
                .unwrap_or(&[]);
            if network::publishes_ingress(ports) {
                return Err(ManagerError::FailedPrecondition(format!(
                    "ingress network cannot be removed because service {} depends on it",
                    service_name(s)
                )));
            }
        }
    }
    for t in tasks {
        let attached = t.networks.iter().any(|a| a.network_id == n.id);
        if attached && task::is_wanted(t) && task::state(t) <= TaskState::Running as i32 {
            let task_name = t
                .annotations
                .as_ref()
                .map(|a| format!("{}.{}", a.name, t.id))
                .unwrap_or_else(|| t.id.clone());
            return Err(ManagerError::FailedPrecondition(format!(
                "network {name} is in use by task {task_name}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rswarm_proto::types::port_config::PublishMode;
    use rswarm_proto::types::service_spec::Mode;
    use rswarm_proto::types::{
        AddressPool, Annotations, Cluster, ContainerSpec, EndpointSpec, IpamConfig,
        NetworkAttachment, NetworkAttachmentConfig, PortConfig, ReplicatedService, ServiceSpec,
        TaskSpec, TaskStatus,
    };

    use super::*;
    use crate::orchestrator::testing::bare_store;

    fn spec(name: &str, subnet: &str, gateway: &str, ip_range: &str) -> NetworkSpec {
        NetworkSpec {
            annotations: Some(Annotations {
                name: name.into(),
                labels: Default::default(),
            }),
            driver: "overlay".into(),
            ipam: if subnet.is_empty() && gateway.is_empty() && ip_range.is_empty() {
                vec![]
            } else {
                vec![IpamConfig {
                    subnet: subnet.into(),
                    gateway: gateway.into(),
                    ip_range: ip_range.into(),
                }]
            },
            ..Default::default()
        }
    }

    async fn store_with_ingress(pool: Option<AddressPool>) -> (Store, tempfile::TempDir) {
        let (store, dir) = bare_store().await;
        let cluster = Cluster {
            id: "cluster".into(),
            default_address_pool: pool.clone(),
            ..Default::default()
        };
        let ingress = network::ingress_network(&pool.unwrap_or_default()).expect("ingress");
        store
            .write(vec![objects::put(&cluster), objects::put(&ingress)])
            .await
            .expect("init");
        (store, dir)
    }

    async fn add_service(store: &Store, name: &str, networks: &[&str], ingress_port: bool) {
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
                networks: networks
                    .iter()
                    .map(|n| NetworkAttachmentConfig {
                        target: n.to_string(),
                        aliases: vec![],
                    })
                    .collect(),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas: 1 })),
            endpoint: ingress_port.then(|| EndpointSpec {
                ports: vec![PortConfig {
                    target_port: 80,
                    published_port: 8080,
                    publish_mode: PublishMode::Ingress as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        crate::controlapi::services::create(store, spec)
            .await
            .expect("create service");
    }

    fn message(r: Result<impl std::fmt::Debug, ManagerError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn create_allocates_subnets_and_unique_vnis() {
        let (store, _dir) = store_with_ingress(None).await;
        let a = create(&store, spec("a", "", "", "")).await.expect("a");
        let b = create(&store, spec("b", "", "", "")).await.expect("b");
        let c = create(&store, spec("backend", "10.20.0.0/24", "", ""))
            .await
            .expect("backend");
        assert_eq!(
            a.ipam[0].subnet, "10.0.1.0/24",
            "after ingress's 10.0.0.0/24"
        );
        assert_eq!(a.ipam[0].gateway, "10.0.1.1");
        assert_eq!(b.ipam[0].subnet, "10.0.2.0/24");
        assert_eq!(c.ipam[0].subnet, "10.20.0.0/24");
        let all = list(&store).expect("list");
        let names: Vec<&str> = all.iter().map(network::name).collect();
        assert_eq!(names, ["a", "b", "backend", "ingress"]);
        let vnis: HashSet<u32> = all.iter().map(|n| n.vni).collect();
        assert_eq!(vnis.len(), 4, "VNIs are unique: {vnis:?}");
        assert!(vnis.iter().all(|v| network::VNI_RANGE.contains(v)));
        assert!(a.meta.as_ref().and_then(|m| m.version.as_ref()).is_some());
    }

    #[tokio::test]
    async fn concurrent_creates_never_share_subnet_or_vni() {
        let (store, _dir) = store_with_ingress(None).await;
        let creates = (0..8).map(|i| {
            let store = store.clone();
            async move { create(&store, spec(&format!("n{i}"), "", "", "")).await }
        });
        let made: Vec<Network> = futures::future::join_all(creates)
            .await
            .into_iter()
            .map(|r| r.expect("create"))
            .collect();
        let subnets: HashSet<&str> = made.iter().map(|n| n.ipam[0].subnet.as_str()).collect();
        let vnis: HashSet<u32> = made.iter().map(|n| n.vni).collect();
        assert_eq!((subnets.len(), vnis.len()), (8, 8));
    }

    #[tokio::test]
    async fn the_default_pool_from_init_is_used() {
        let pool = network::default_address_pool(&["10.96.0.0/16".into()], 26).expect("pool");
        let (store, _dir) = store_with_ingress(Some(pool)).await;
        let ingress = resolve_network(&store, "ingress").expect("ingress");
        assert_eq!(ingress.ipam[0].subnet, "10.96.0.0/26");
        let n = create(&store, spec("n", "", "", "")).await.expect("n");
        assert_eq!(n.ipam[0].subnet, "10.96.0.64/26");
    }

    #[tokio::test]
    async fn bad_specs_are_refused() {
        let (store, _dir) = store_with_ingress(None).await;
        create(&store, spec("backend", "10.20.0.0/24", "", ""))
            .await
            .expect("backend");
        assert_eq!(
            message(create(&store, spec("backend", "", "", "")).await),
            "network with name backend already exists"
        );
        assert_eq!(
            message(create(&store, spec("other", "10.20.0.0/16", "", "")).await),
            "invalid pool request: Pool overlaps with other one on this address space"
        );
        assert_eq!(
            message(create(&store, spec("other", "10.0.0.128/25", "", "")).await),
            "invalid pool request: Pool overlaps with other one on this address space",
            "ingress's subnet is taken too"
        );
        assert_eq!(
            message(create(&store, spec("gw", "10.30.0.0/24", "10.30.1.1", "")).await),
            "ipam configuration: subnet 10.30.0.0/24 does not contain gateway 10.30.1.1"
        );
        assert_eq!(
            message(create(&store, spec("rng", "10.30.0.0/24", "", "10.31.0.0/25")).await),
            "ipam configuration: subnet 10.30.0.0/24 does not contain range 10.31.0.0/25"
        );
        let mut bridge = spec("br", "", "", "");
        bridge.driver = "bridge".into();
        assert!(message(create(&store, bridge).await).contains("only overlay networks"));
        assert_eq!(list(&store).expect("list").len(), 2, "nothing else stored");
    }

    #[tokio::test]
    async fn get_resolves_id_name_and_unique_prefix() {
        let (store, _dir) = store_with_ingress(None).await;
        let n = create(&store, spec("backend", "", "", ""))
            .await
            .expect("n");
        assert_eq!(resolve_network(&store, &n.id).expect("id").id, n.id);
        assert_eq!(resolve_network(&store, "backend").expect("name").id, n.id);
        assert_eq!(
            resolve_network(&store, &n.id[..6]).expect("prefix").id,
            n.id
        );
        assert_eq!(
            message(resolve_network(&store, "nope")),
            "network nope not found"
        );
    }

    #[tokio::test]
    async fn networks_in_use_are_not_removed() {
        let (store, _dir) = store_with_ingress(None).await;
        let backend = create(&store, spec("backend", "10.20.0.0/24", "", ""))
            .await
            .expect("backend");
        create(&store, spec("spare", "", "", ""))
            .await
            .expect("spare");
        add_service(&store, "web", &["backend"], true).await;
        assert_eq!(
            message(remove(&store, "backend").await),
            "network backend is in use by service web"
        );
        assert_eq!(
            message(remove(&store, "ingress").await),
            "ingress network cannot be removed because service web depends on it"
        );
        // A running task attached to a network keeps it, even without a
        // service naming it.
        let mut t = Task {
            id: crate::objects::new_id(),
            service_id: "gone".into(),
            annotations: Some(Annotations {
                name: "old.1".into(),
                labels: Default::default(),
            }),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: TaskState::Running as i32,
                ..Default::default()
            }),
            networks: vec![NetworkAttachment {
                network_id: resolve_network(&store, "spare").expect("spare").id,
                addresses: vec!["10.0.1.2/24".into()],
                aliases: vec![],
            }],
            ..Default::default()
        };
        store.write(vec![objects::put(&t)]).await.expect("task");
        assert_eq!(
            message(remove(&store, "spare").await),
            format!("network spare is in use by task old.1.{}", t.id)
        );
        assert!(prune(&store).await.expect("prune").is_empty());
        // Once the task is told to stop, the network is free.
        t = objects::get::<Task>(&store, &t.id)
            .expect("read")
            .expect("task");
        t.desired_state = TaskState::Shutdown as i32;
        store.write(vec![objects::put(&t)]).await.expect("stop");
        assert_eq!(
            prune(&store).await.expect("prune"),
            vec!["spare".to_string()]
        );

        let web = crate::controlapi::services::resolve_service(&store, "web").expect("web");
        crate::controlapi::services::remove(&store, &web.id)
            .await
            .expect("remove web");
        remove(&store, &backend.id).await.expect("remove backend");
        assert_eq!(
            message(resolve_network(&store, "backend")),
            "network backend not found"
        );
        // Prune never removes ingress; rm does when nothing publishes.
        assert!(prune(&store).await.expect("prune").is_empty());
        remove(&store, "ingress").await.expect("remove ingress");
        let mut again = spec("ingress", "10.11.0.0/24", "", "");
        again.ingress = true;
        let ingress = create(&store, again).await.expect("recreate ingress");
        assert_eq!(ingress.ipam[0].subnet, "10.11.0.0/24");
        assert!(network::is_ingress(&ingress));
        let mut third = spec("mesh", "", "", "");
        third.ingress = true;
        assert!(message(create(&store, third).await).contains("only one ingress network"));
    }
}
