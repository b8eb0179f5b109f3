//! What the nftables rules of this node should be, computed from the
//! leader's network state and the node's own tasks: the service VIPs each
//! local task sees, and the ports this node publishes (ingress routing mesh
//! and host mode), and which backends have left for good. Pure functions;
//! `super` applies the results.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use rswarm_overlay::metrics::{BackendCounts, BackendKind};
use rswarm_overlay::nft::{Backend, Proto, PublishedPort, VipService};
use rswarm_proto::dispatcher::NetworkStateMessage;
use rswarm_proto::types::{port_config::Protocol, port_config::PublishMode, PortConfig};

use super::ip_of;

/// A task of this node with a network namespace made by the net plane.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalTask {
    /// The overlay networks it is attached to (IDs).
    pub networks: Vec<String>,
    /// Its ports published in host mode.
    pub host_ports: Vec<PortConfig>,
    /// Its address on the node's gateway bridge, if it has one.
    pub gateway: Option<Ipv4Addr>,
}

/// The ID of the ingress network in the state, if there is one.
pub(super) fn ingress_id(state: &NetworkStateMessage) -> Option<&str> {
    state
        .networks
        .iter()
        .find(|n| n.spec.as_ref().is_some_and(|s| s.ingress))
        .map(|n| n.id.as_str())
}

fn proto_of(p: &PortConfig) -> Option<Proto> {
    match Protocol::try_from(p.protocol) {
        Ok(Protocol::Tcp) => Some(Proto::Tcp),
        Ok(Protocol::Udp) => Some(Proto::Udp),
        // SCTP is not balanced (the VIP rules translate TCP and UDP).
        _ => None,
    }
}

/// Running task addresses per (service, network).
fn backends(state: &NetworkStateMessage) -> HashMap<(&str, &str), Vec<Backend>> {
    let mut out: HashMap<(&str, &str), Vec<Backend>> = HashMap::new();
    for e in state.endpoints.iter().filter(|e| e.running) {
        if let Some(ip) = ip_of(&e.addr) {
            out.entry((e.service_id.as_str(), e.network_id.as_str()))
                .or_default()
                .push(Backend { ip });
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|b| b.ip);
        v.dedup();
    }
    out
}

/// The VIPs a task on `networks` sees: every service with a VIP on one of
/// them (not `ingress`: it is only the routing mesh's path), all ports,
/// balanced over the service's running tasks on that network.
pub(super) fn task_vips(state: &NetworkStateMessage, networks: &[String]) -> Vec<VipService> {
    let ingress = ingress_id(state);
    let backends = backends(state);
    let mut out: Vec<VipService> = state
        .services
        .iter()
        .filter(|s| networks.contains(&s.network_id) && Some(s.network_id.as_str()) != ingress)
        .filter_map(|s| {
            let vip = ip_of(&s.vip)?;
            Some(VipService {
                vip,
                ports: vec![],
                backends: backends
                    .get(&(s.service_id.as_str(), s.network_id.as_str()))
                    .cloned()
                    .unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by_key(|v| v.vip);
    out.dedup_by_key(|v| v.vip);
    out
}

/// The ports this node publishes: every ingress-mode port of every service,
/// balanced over the service's running tasks on `ingress` cluster-wide, and
/// the host-mode ports of this node's tasks, balanced over those tasks'
/// gateway addresses.
pub(super) fn node_ports(state: &NetworkStateMessage, local: &[&LocalTask]) -> Vec<PublishedPort> {
    let mut by_port: BTreeMap<(Proto, u16), PublishedPort> = BTreeMap::new();
    if let Some(ingress) = ingress_id(state) {
        let backends = backends(state);
        let mut seen = HashSet::new();
        for s in state.services.iter().filter(|s| s.network_id == ingress) {
            if !seen.insert(s.service_id.as_str()) {
                continue;
            }
            for p in &s.ports {
                if p.publish_mode != PublishMode::Ingress as i32 || p.published_port == 0 {
                    continue;
                }
                let (Some(proto), Ok(published), Ok(target)) = (
                    proto_of(p),
                    u16::try_from(p.published_port),
                    u16::try_from(p.target_port),
                ) else {
                    continue;
                };
                by_port.entry((proto, published)).or_insert(PublishedPort {
                    proto,
                    published,
                    target,
                    backends: backends
                        .get(&(s.service_id.as_str(), ingress))
                        .cloned()
                        .unwrap_or_default(),
                    host_mode: false,
                });
            }
        }
    }
    for t in local {
        let Some(gw) = t.gateway else { continue };
        for p in &t.host_ports {
            let (Some(proto), Ok(published), Ok(target)) = (
                proto_of(p),
                u16::try_from(p.published_port),
                u16::try_from(p.target_port),
            ) else {
                continue;
            };
            if published == 0 {
                continue;
            }
            let entry = by_port.entry((proto, published)).or_insert(PublishedPort {
                proto,
                published,
                target,
                backends: vec![],
                host_mode: true,
            });
            // An ingress port wins over a host port on the same number (the
            // manager refuses that combination anyway).
            if entry.host_mode && entry.target == target {
                entry.backends.push(Backend { ip: gw });
            }
        }
    }
    let mut out: Vec<PublishedPort> = by_port.into_values().collect();
    for p in &mut out {
        p.backends.sort_by_key(|b| b.ip);
        p.backends.dedup();
    }
    out
}

/// The task addresses `prev` had and `next` has not at all: their tasks
/// have stopped (a stopping task stays listed, not serving, until it has),
/// so what conntrack still holds for them can go. Nothing when `next` is
/// no real picture (no networks).
pub(super) fn gone_backends(
    prev: &NetworkStateMessage,
    next: &NetworkStateMessage,
) -> Vec<Ipv4Addr> {
    if next.networks.is_empty() {
        return vec![];
    }
    let still: HashSet<Ipv4Addr> = next
        .endpoints
        .iter()
        .filter_map(|e| ip_of(&e.addr))
        .collect();
    let mut gone: Vec<Ipv4Addr> = prev
        .endpoints
        .iter()
        .filter_map(|e| ip_of(&e.addr))
        .filter(|ip| !still.contains(ip))
        .collect();
    gone.sort();
    gone.dedup();
    gone
}

/// The backends of each service in this node's data plane, by service name:
/// `Vip` for a service with a VIP on a (non-ingress) network one of this
/// node's tasks is on (its running tasks on that network; the most over its
/// networks), `Mesh` for a service publishing a port in ingress mode (its
/// running tasks on `ingress`, cluster-wide), as [`task_vips`] and
/// [`node_ports`] balance over them.
pub(super) fn backend_counts(state: &NetworkStateMessage, local: &[&LocalTask]) -> BackendCounts {
    let ingress = ingress_id(state);
    let backends = backends(state);
    let local_nets: HashSet<&str> = local
        .iter()
        .flat_map(|t| t.networks.iter().map(String::as_str))
        .collect();
    let mut out = BackendCounts::new();
    for s in &state.services {
        let name = if s.name.is_empty() {
            s.service_id.clone()
        } else {
            s.name.clone()
        };
        let n = backends
            .get(&(s.service_id.as_str(), s.network_id.as_str()))
            .map(|b| b.len() as u64)
            .unwrap_or(0);
        let kind = if Some(s.network_id.as_str()) == ingress {
            let publishes = s
                .ports
                .iter()
                .any(|p| p.publish_mode == PublishMode::Ingress as i32 && p.published_port != 0);
            if !publishes {
                continue;
            }
            BackendKind::Mesh
        } else {
            if ip_of(&s.vip).is_none() || !local_nets.contains(s.network_id.as_str()) {
                continue;
            }
            BackendKind::Vip
        };
        let e = out.entry((name, kind)).or_insert(0);
        *e = (*e).max(n);
    }
    out
}

/// The host-mode ports of a task (from its endpoint, published ports set).
pub(super) fn host_ports(task: &rswarm_proto::types::Task) -> Vec<PortConfig> {
    task.endpoint
        .as_ref()
        .map(|e| {
            let ports = if e.ports.is_empty() {
                e.spec.as_ref().map(|s| s.ports.as_slice()).unwrap_or(&[])
            } else {
                e.ports.as_slice()
            };
            ports
                .iter()
                .filter(|p| p.publish_mode == PublishMode::Host as i32 && p.published_port != 0)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::dispatcher::{NetworkEndpoint, ServiceEndpoint};
    use rswarm_proto::types::{Network, NetworkSpec};

    fn net(id: &str, ingress: bool) -> Network {
        Network {
            id: id.into(),
            spec: Some(NetworkSpec {
                ingress,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ep(svc: &str, net: &str, addr: &str, running: bool) -> NetworkEndpoint {
        NetworkEndpoint {
            network_id: net.into(),
            service_id: svc.into(),
            addr: addr.into(),
            running,
            ..Default::default()
        }
    }

    fn port(published: u32, target: u32, mode: PublishMode) -> PortConfig {
        PortConfig {
            target_port: target,
            published_port: published,
            publish_mode: mode as i32,
            ..Default::default()
        }
    }

    fn state() -> NetworkStateMessage {
        NetworkStateMessage {
            networks: vec![net("ing", true), net("back", false)],
            endpoints: vec![
                ep("api", "back", "10.20.0.3/24", true),
                ep("api", "back", "10.20.0.4/24", true),
                ep("api", "back", "10.20.0.5/24", false),
                ep("web", "ing", "10.0.0.7/24", true),
                ep("web", "back", "10.20.0.8/24", true),
            ],
            services: vec![
                ServiceEndpoint {
                    service_id: "api".into(),
                    network_id: "back".into(),
                    vip: "10.20.0.2/24".into(),
                    ..Default::default()
                },
                ServiceEndpoint {
                    service_id: "web".into(),
                    network_id: "ing".into(),
                    vip: "10.0.0.2/24".into(),
                    ports: vec![port(8080, 80, PublishMode::Ingress)],
                    ..Default::default()
                },
                ServiceEndpoint {
                    service_id: "web".into(),
                    network_id: "back".into(),
                    vip: "10.20.0.6/24".into(),
                    ports: vec![port(8080, 80, PublishMode::Ingress)],
                    ..Default::default()
                },
                ServiceEndpoint {
                    service_id: "rr".into(),
                    network_id: "back".into(),
                    vip: String::new(),
                    ..Default::default()
                },
            ],
            node_endpoints: vec![],
        }
    }

    #[test]
    fn a_task_sees_the_vips_of_its_networks_over_running_tasks() {
        let vips = task_vips(&state(), &["back".into(), "ing".into()]);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(vips.len(), 2, "{vips:?}");
        assert_eq!(vips[0].vip, ip("10.20.0.2"));
        assert_eq!(
            vips[0].backends,
            vec![
                Backend {
                    ip: ip("10.20.0.3")
                },
                Backend {
                    ip: ip("10.20.0.4")
                }
            ]
        );
        assert_eq!(vips[1].vip, ip("10.20.0.6"));
        assert!(vips.iter().all(|v| v.ports.is_empty()));
        assert!(task_vips(&state(), &["other".into()]).is_empty());
    }

    #[test]
    fn ingress_ports_balance_over_ingress_addresses_and_host_ports_over_local_gateways() {
        let t1 = LocalTask {
            networks: vec![],
            host_ports: vec![port(9090, 90, PublishMode::Host)],
            gateway: Some("172.18.0.5".parse().unwrap()),
        };
        let t2 = LocalTask {
            gateway: Some("172.18.0.6".parse().unwrap()),
            ..t1.clone()
        };
        let no_gw = LocalTask {
            gateway: None,
            ..t1.clone()
        };
        let ports = node_ports(&state(), &[&t1, &t2, &no_gw]);
        assert_eq!(ports.len(), 2, "{ports:?}");
        assert_eq!((ports[0].published, ports[0].target), (8080, 80));
        assert!(!ports[0].host_mode);
        assert_eq!(ports[0].backends.len(), 1);
        assert_eq!(
            ports[0].backends[0].ip,
            "10.0.0.7".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!((ports[1].published, ports[1].target), (9090, 90));
        assert!(ports[1].host_mode);
        assert_eq!(ports[1].backends.len(), 2);
    }

    #[test]
    fn addresses_that_left_the_picture_are_gone_not_those_that_stopped_serving() {
        let prev = state();
        let mut next = state();
        // 10.20.0.3 stopped (gone); 10.20.0.4 stops serving (drains).
        next.endpoints.retain(|e| e.addr != "10.20.0.3/24");
        next.endpoints[0].running = false;
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(gone_backends(&prev, &next), vec![ip("10.20.0.3")]);
        assert!(gone_backends(&prev, &prev).is_empty());
        // An empty picture (no networks) is not taken to mean all are gone.
        assert!(gone_backends(&prev, &NetworkStateMessage::default()).is_empty());
        // An address on two networks, still on one: not gone.
        let mut both = state();
        both.endpoints.push(ep("api", "ing", "10.20.0.3/24", true));
        let mut one = both.clone();
        one.endpoints
            .retain(|e| !(e.addr == "10.20.0.3/24" && e.network_id == "back"));
        assert!(gone_backends(&both, &one).is_empty());
    }

    #[test]
    fn backends_per_service_vip_where_a_local_task_sees_it_and_mesh_for_ingress_ports() {
        let on_back = LocalTask {
            networks: vec!["back".into()],
            ..Default::default()
        };
        let counts = backend_counts(&state(), &[&on_back]);
        let want: BackendCounts = [
            (("api".to_string(), BackendKind::Vip), 2),
            (("web".to_string(), BackendKind::Mesh), 1),
            (("web".to_string(), BackendKind::Vip), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(counts, want);
        // No local task on `back`: no VIP there in this node's data plane.
        let counts = backend_counts(&state(), &[]);
        assert_eq!(
            counts.keys().collect::<Vec<_>>(),
            vec![&("web".to_string(), BackendKind::Mesh)]
        );
    }

    #[test]
    fn no_ingress_network_means_no_ingress_ports() {
        let mut s = state();
        s.networks.retain(|n| n.id != "ing");
        assert!(node_ports(&s, &[]).is_empty());
    }
}
