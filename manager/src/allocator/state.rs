//! The allocator's in-memory accounting: the networks and their address
//! pools, who holds each address, and which tasks wait in NEW.
//!
//! Nothing here is the source of truth. Every allocation is written into
//! the objects themselves (a task's `networks`, a service's
//! `endpoint.virtual_ips`, a node's `attachments`); this state is rebuilt
//! from them whenever a manager starts leading, and then follows them
//! change by change: [`Allocations`] is the view's [`TaskObserver`], so
//! every version of a task the view takes in (from the store's stream, from
//! the allocator's own batches, from roll-backs of refused writes) claims
//! and frees exactly the addresses that version holds. Services and nodes
//! are followed the same way through [`Allocations::account_service`] and
//! [`Allocations::account_node`].
//!
//! Each address has one owner (a task, a service or a node). When the
//! accounting is rebuilt, tasks claim first, then services, then nodes. A
//! claim of an address someone else owns is refused and logged, and a
//! release by anyone but the owner does nothing, so one inconsistent object
//! cannot make the allocator hand the same address out twice.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use prost::Message;
use rswarm_proto::types::{Meta, Network, Node, Service, Task, TaskState, Version};
use rswarm_raft::{Change, Store};

use super::ipam::{self, Cidr, Pool};
use super::network;
use crate::error::ManagerError;
use crate::objects;
use crate::orchestrator::task;
use crate::orchestrator::view::TaskObserver;

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Task(String),
    Service(String),
    /// A node's own address on the ingress network (the routing mesh's
    /// source address on that node).
    Node(String),
}

/// One address on one network.
pub(crate) type Held = (String, Ipv4Addr);

/// Why an address could not be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// The network is not (or no longer) known.
    UnknownNetwork(String),
    /// Every address of the network is taken.
    Exhausted { network: String, subnets: String },
}

impl std::fmt::Display for AllocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllocError::UnknownNetwork(id) => write!(f, "network {id} not found"),
            AllocError::Exhausted { network, subnets } => {
                write!(f, "network {network}: no free address in {subnets}")
            }
        }
    }
}

/// The pools of one network, one per subnet.
struct NetworkPools {
    pools: Vec<Pool>,
}

impl NetworkPools {
    fn of(n: &Network) -> NetworkPools {
        let mut pools = Vec::new();
        for conf in &n.ipam {
            let built = conf.subnet.parse::<Cidr>().and_then(|subnet| {
                let gateway = if conf.gateway.is_empty() {
                    None
                } else {
                    Some(ipam::parse_addr(&conf.gateway)?)
                };
                let range = if conf.ip_range.is_empty() {
                    None
                } else {
                    Some(conf.ip_range.parse::<Cidr>()?)
                };
                Pool::new(subnet, gateway, range)
            });
            match built {
                Ok(p) => pools.push(p),
                Err(e) => tracing::warn!(
                    network = %network::name(n),
                    subnet = %conf.subnet,
                    error = %e,
                    "network has an unusable IPAM configuration; no addresses from it"
                ),
            }
        }
        NetworkPools { pools }
    }

    fn pool_for(&mut self, addr: Ipv4Addr) -> Option<&mut Pool> {
        self.pools.iter_mut().find(|p| p.subnet().contains(addr))
    }
}

/// The accounting the allocator loop keeps while it leads.
#[derive(Default)]
pub(crate) struct Allocations {
    /// Known networks by ID.
    pub networks: HashMap<String, Network>,
    pools: HashMap<String, NetworkPools>,
    owners: HashMap<Held, Owner>,
    /// The addresses each service's VIPs hold, as the view has them.
    service_vips: HashMap<String, Vec<Held>>,
    /// The addresses each node's attachments hold, as the view has them.
    node_addrs: HashMap<String, Vec<Held>>,
    /// Tasks in NEW that are still wanted: the allocator's work.
    pub new_tasks: BTreeSet<String>,
    /// Something was freed (a later pass may now succeed).
    pub released: bool,
    /// A task entered NEW.
    pub arrived: bool,
    /// Services whose VIPs need a look.
    pub dirty_services: HashSet<String>,
    /// Every service needs a look (networks changed, periodic full pass).
    pub all_services: bool,
    /// Services still missing a VIP (a network was full): retried when
    /// addresses are freed.
    pub waiting_vips: HashSet<String>,
    /// Nodes whose ingress address needs a look.
    pub dirty_nodes: HashSet<String>,
    /// Every node needs a look (networks changed, periodic full pass).
    pub all_nodes: bool,
    /// Nodes left without an ingress address (the network was full):
    /// retried when addresses are freed.
    pub waiting_nodes: HashSet<String>,
    /// Something else changed that may unblock a NEW task.
    pub work: bool,
}

/// The store version an object was read at.
fn version_of(meta: Option<&Meta>) -> u64 {
    meta.and_then(|m| m.version.as_ref())
        .map(|v| v.index)
        .unwrap_or(0)
}

/// Whether a task in this state keeps its addresses: it has not ended, and
/// it is not a task stopped before it was ever assigned.
pub(crate) fn holds_addresses(t: &Task) -> bool {
    let state = task::state(t);
    if state >= TaskState::Complete as i32 {
        return false;
    }
    !(t.desired_state >= TaskState::Shutdown as i32 && state < TaskState::Assigned as i32)
}

/// Whether the allocator has to look at this task: NEW, still wanted.
pub(crate) fn awaits_allocation(t: &Task) -> bool {
    task::state(t) == TaskState::New as i32 && task::is_wanted(t)
}

/// The addresses a task holds, by network.
pub(crate) fn task_addresses(t: &Task) -> Vec<Held> {
    if !holds_addresses(t) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for att in &t.networks {
        for a in &att.addresses {
            match ipam::parse_addr(a) {
                Ok(ip) => out.push((att.network_id.clone(), ip)),
                Err(e) => tracing::warn!(task = %t.id, error = %e, "unparseable task address"),
            }
        }
    }
    out
}

/// The addresses a service's VIPs hold, by network.
pub(crate) fn service_addresses(s: &Service) -> Vec<Held> {
    let mut out = Vec::new();
    for vip in s.endpoint.iter().flat_map(|e| e.virtual_ips.iter()) {
        match ipam::parse_addr(&vip.addr) {
            Ok(ip) => out.push((vip.network_id.clone(), ip)),
            Err(e) => tracing::warn!(service = %s.id, error = %e, "unparseable VIP"),
        }
    }
    out
}

/// The addresses a node's attachments hold, by network.
pub(crate) fn node_addresses(n: &Node) -> Vec<Held> {
    let mut out = Vec::new();
    for att in &n.attachments {
        for a in &att.addresses {
            match ipam::parse_addr(a) {
                Ok(ip) => out.push((att.network_id.clone(), ip)),
                Err(e) => tracing::warn!(node = %n.id, error = %e, "unparseable node address"),
            }
        }
    }
    out
}

impl Allocations {
    /// The networks and their pools as the store has them. Load the view
    /// (with this as its observer) right after: it claims the tasks'
    /// addresses; then account every service, then every node.
    pub(crate) fn load(store: &Store) -> Result<Allocations, ManagerError> {
        let mut a = Allocations::default();
        for n in objects::list::<Network>(store)? {
            a.put_network(n);
        }
        Ok(a)
    }

    fn put_network(&mut self, n: Network) {
        let same_ipam = self
            .networks
            .get(&n.id)
            .is_some_and(|old| old.ipam == n.ipam);
        if !same_ipam {
            self.pools.insert(n.id.clone(), NetworkPools::of(&n));
        }
        self.networks.insert(n.id.clone(), n);
    }

    /// Applies a change of a network object. Returns whether anything changed.
    pub(crate) fn network_changed(&mut self, change: &Change) -> bool {
        if let Some(known) = self.networks.get(&change.id) {
            if version_of(known.meta.as_ref()) > change.index {
                return false;
            }
        }
        match &change.value {
            Some(bytes) => match Network::decode(bytes.as_slice()) {
                Ok(mut n) => {
                    n.meta.get_or_insert_with(Default::default).version = Some(Version {
                        index: change.index,
                    });
                    n.id = change.id.clone();
                    self.put_network(n);
                    true
                }
                Err(e) => {
                    tracing::warn!(network = %change.id, error = %e, "undecodable network in the change stream; ignored");
                    false
                }
            },
            None => {
                if self.networks.remove(&change.id).is_none() {
                    return false;
                }
                self.pools.remove(&change.id);
                self.owners.retain(|(net, _), _| net != &change.id);
                true
            }
        }
    }

    /// The network an attachment target means (full ID, else name).
    pub(crate) fn resolve(&self, target: &str) -> Option<&Network> {
        network::resolve_target(self.networks.values(), target)
    }

    /// The routing-mesh network, if there is one (the lowest ID, should
    /// there ever be two).
    pub(crate) fn ingress(&self) -> Option<&Network> {
        self.networks
            .values()
            .filter(|n| network::is_ingress(n))
            .min_by(|a, b| a.id.cmp(&b.id))
    }

    /// The network's name (its ID if it is unknown).
    pub(crate) fn name_of<'a>(&'a self, network_id: &'a str) -> &'a str {
        self.networks
            .get(network_id)
            .map(network::name)
            .unwrap_or(network_id)
    }

    /// Hands `owner` a free address on the network.
    pub(crate) fn allocate(
        &mut self,
        network_id: &str,
        owner: &Owner,
    ) -> Result<(Ipv4Addr, Cidr), AllocError> {
        let Some(pools) = self.pools.get_mut(network_id) else {
            return Err(AllocError::UnknownNetwork(network_id.to_string()));
        };
        for pool in pools.pools.iter_mut() {
            if let Some(addr) = pool.allocate() {
                let subnet = pool.subnet();
                self.owners
                    .insert((network_id.to_string(), addr), owner.clone());
                return Ok((addr, subnet));
            }
        }
        let subnets: Vec<String> = pools.pools.iter().map(|p| p.subnet().to_string()).collect();
        Err(AllocError::Exhausted {
            network: self.name_of(network_id).to_string(),
            subnets: if subnets.is_empty() {
                "(no subnet)".into()
            } else {
                subnets.join(", ")
            },
        })
    }

    /// Whether `owner` holds the address.
    pub(crate) fn owns(&self, held: &Held, owner: &Owner) -> bool {
        self.owners.get(held) == Some(owner)
    }

    /// Records that `owner` holds `held` (read back from an object). True if
    /// it does now; false if someone else holds it, or it belongs to no pool.
    pub(crate) fn claim(&mut self, held: &Held, owner: &Owner) -> bool {
        match self.owners.get(held) {
            Some(o) if o == owner => return true,
            Some(other) => {
                tracing::warn!(network = %held.0, addr = %held.1, ?owner, holder = ?other, "address claimed twice; keeping the first holder");
                return false;
            }
            None => {}
        }
        let Some(pool) = self.pools.get_mut(&held.0).and_then(|p| p.pool_for(held.1)) else {
            // A network that is gone (its tasks linger in history), or an
            // address outside it: nothing to account.
            return false;
        };
        match pool.reserve(held.1) {
            Ok(()) => {
                self.owners.insert(held.clone(), owner.clone());
                true
            }
            Err(e) => {
                tracing::warn!(network = %held.0, addr = %held.1, ?owner, error = %e, "cannot account an allocated address");
                false
            }
        }
    }

    /// Gives back an address `owner` holds. Does nothing for anyone else's.
    pub(crate) fn release(&mut self, held: &Held, owner: &Owner) -> bool {
        if self.owners.get(held) != Some(owner) {
            return false;
        }
        self.owners.remove(held);
        if let Some(pool) = self.pools.get_mut(&held.0).and_then(|p| p.pool_for(held.1)) {
            pool.release(held.1);
        }
        true
    }

    /// Brings the accounting of a service's VIPs in line with `current` (the
    /// view's copy; `None`: the service is gone).
    pub(crate) fn account_service(&mut self, id: &str, current: Option<&Service>) {
        let want = current.map(service_addresses).unwrap_or_default();
        let had = self.service_vips.remove(id).unwrap_or_default();
        let owner = Owner::Service(id.to_string());
        self.swap(&had, &want, &owner);
        if !want.is_empty() {
            self.service_vips.insert(id.to_string(), want);
        }
    }

    /// Brings the accounting of a node's addresses in line with `current`
    /// (the view's copy; `None`: the node is gone).
    pub(crate) fn account_node(&mut self, id: &str, current: Option<&Node>) {
        let want = current.map(node_addresses).unwrap_or_default();
        let had = self.node_addrs.remove(id).unwrap_or_default();
        let owner = Owner::Node(id.to_string());
        self.swap(&had, &want, &owner);
        if !want.is_empty() {
            self.node_addrs.insert(id.to_string(), want);
        }
        if current.is_none() {
            self.waiting_nodes.remove(id);
        }
    }

    /// Frees what `had` holds beyond `want`, claims what `want` adds.
    fn swap(&mut self, had: &[Held], want: &[Held], owner: &Owner) {
        let keep: HashSet<&Held> = want.iter().collect();
        let old: HashSet<&Held> = had.iter().collect();
        for h in had.iter().filter(|h| !keep.contains(h)) {
            if self.release(h, owner) {
                self.released = true;
            }
        }
        for h in want.iter().filter(|h| !old.contains(h)) {
            self.claim(h, owner);
        }
    }

    /// Whether a pass has anything to do.
    pub(crate) fn has_work(&self) -> bool {
        self.work
            || self.arrived
            || self.released
            || self.all_services
            || !self.dirty_services.is_empty()
            || self.all_nodes
            || !self.dirty_nodes.is_empty()
    }
}

impl TaskObserver for Allocations {
    fn task_changed(&mut self, old: Option<&Task>, new: Option<&Task>) {
        let Some(id) = new.or(old).map(|t| t.id.clone()) else {
            return;
        };
        let had = old.map(task_addresses).unwrap_or_default();
        let want = new.map(task_addresses).unwrap_or_default();
        if had != want {
            self.swap(&had, &want, &Owner::Task(id.clone()));
        }
        match new {
            Some(t) if awaits_allocation(t) => {
                if self.new_tasks.insert(id) {
                    self.arrived = true;
                }
            }
            _ => {
                self.new_tasks.remove(&id);
            }
        }
    }
}
