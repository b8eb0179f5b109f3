//! The rules about networks that the Control API and the allocator share:
//! what a valid network spec is, how a new network gets its subnets, gateway
//! and VNI, the `ingress` network made at `init`, the cluster's default
//! address pool, and which networks a service or task is attached to.
//!
//! Choices (where Docker leaves room):
//! - only the `overlay` driver; a network name follows Swarm's rule for
//!   object names (a DNS label of letters, digits, `-` and `_`);
//! - networks without `--subnet` get the first free `/mask_length` of the
//!   cluster's default pool (`10.0.0.0/8` in `/24`s unless `init` said
//!   otherwise) that overlaps no other network;
//! - a given subnet must overlap no other network's subnet, and be between
//!   `/8` and `/30`; the gateway defaults to the subnet's first host address;
//! - VNIs come from 4097..=16777215, the lowest free one first (VXLAN IDs up
//!   to 4096 are left alone, as Docker does);
//! - an attachment target (`--network`) is a network's full ID or its name.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rswarm_proto::types::endpoint_spec::ResolutionMode;
use rswarm_proto::types::port_config::PublishMode;
use rswarm_proto::types::{
    AddressPool, Annotations, Cluster, EndpointSpec, IpamConfig, Network, NetworkSpec, PortConfig,
};

use super::ipam::{self, Cidr, Pool};
use crate::error::ManagerError;

/// The only network driver.
pub const OVERLAY_DRIVER: &str = "overlay";
/// The name of the routing-mesh network `init` creates.
pub const INGRESS_NAME: &str = "ingress";
/// The VNIs networks get.
pub const VNI_RANGE: std::ops::RangeInclusive<u32> = 4097..=16_777_215;
/// Where networks without `--subnet` get theirs, unless `init` said otherwise.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
/// The size of those subnets, unless `init` said otherwise.
pub const DEFAULT_MASK_LENGTH: u32 = 24;

fn invalid(msg: impl Into<String>) -> ManagerError {
    ManagerError::InvalidArgument(msg.into())
}

/// The network's name.
pub fn name(n: &Network) -> &str {
    n.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.as_str())
        .unwrap_or("")
}

/// Whether it is the routing-mesh network.
pub fn is_ingress(n: &Network) -> bool {
    n.spec.as_ref().is_some_and(|s| s.ingress)
}

/// Whether `target` (from `--network`) names this network: its full ID or
/// its name.
pub fn matches_target(n: &Network, target: &str) -> bool {
    !target.is_empty() && (n.id == target || name(n) == target)
}

/// The network an attachment target means: the one with that ID, else the
/// one with that name.
pub fn resolve_target<'a, I>(networks: I, target: &str) -> Option<&'a Network>
where
    I: IntoIterator<Item = &'a Network>,
    I::IntoIter: Clone,
{
    let all = networks.into_iter();
    all.clone()
        .find(|n| n.id == target)
        .or_else(|| all.clone().find(|n| name(n) == target))
}

/// The allocated subnets of a network (unparseable ones are skipped).
pub fn subnets(n: &Network) -> Vec<Cidr> {
    n.ipam
        .iter()
        .filter_map(|c| c.subnet.parse::<Cidr>().ok())
        .collect()
}

/// Whether these ports are published through the routing mesh.
pub fn publishes_ingress(ports: &[PortConfig]) -> bool {
    ports
        .iter()
        .any(|p| p.publish_mode == PublishMode::Ingress as i32)
}

/// Whether a service with this endpoint spec gets VIPs (mode `vip`, the
/// default) rather than DNS round robin.
pub fn wants_vips(spec: Option<&EndpointSpec>) -> bool {
    spec.map(|e| e.mode).unwrap_or(0) == ResolutionMode::Vip as i32
}

/// The cluster's default address pool as `init` set it (empty: Docker's
/// defaults, filled in by [`default_address_pool`]).
pub fn cluster_pool(cluster: Option<&Cluster>) -> AddressPool {
    cluster
        .and_then(|c| c.default_address_pool.clone())
        .unwrap_or_default()
}

/// The default address pool for `init --default-addr-pool …
/// --default-addr-pool-mask-length …`: Docker's defaults filled in
/// (`10.0.0.0/8`, `/24`), each pool checked (IPv4 CIDR, pools not
/// overlapping, the mask length no shorter than any pool's prefix and at
/// most /30).
pub fn default_address_pool(
    pools: &[String],
    mask_length: u32,
) -> Result<AddressPool, ManagerError> {
    let pools: Vec<String> = if pools.is_empty() {
        vec![DEFAULT_POOL.to_string()]
    } else {
        pools.to_vec()
    };
    let mask_length = if mask_length == 0 {
        DEFAULT_MASK_LENGTH
    } else {
        mask_length
    };
    if mask_length > u32::from(ipam::MAX_PREFIX) || mask_length < u32::from(ipam::MIN_PREFIX) {
        return Err(invalid(format!(
            "invalid default address pool mask length {mask_length}: it must be between {} and {}",
            ipam::MIN_PREFIX,
            ipam::MAX_PREFIX
        )));
    }
    let mut parsed: Vec<Cidr> = Vec::new();
    let mut normalised = Vec::new();
    for p in &pools {
        let cidr = parse_subnet(p, "default address pool")?;
        if u32::from(cidr.prefix()) > mask_length {
            return Err(invalid(format!(
                "invalid default address pool {p}: its prefix is longer than the mask length {mask_length}"
            )));
        }
        if parsed.iter().any(|c| c.overlaps(&cidr)) {
            return Err(invalid(format!(
                "invalid default address pool {p}: it overlaps another pool"
            )));
        }
        parsed.push(cidr);
        normalised.push(cidr.to_string());
    }
    Ok(AddressPool {
        pools: normalised,
        mask_length,
    })
}

/// The `ingress` network `init` creates: the first subnet of `pool`
/// (10.0.0.0/24 with the defaults), the first VNI.
pub fn ingress_network(pool: &AddressPool) -> Result<Network, ManagerError> {
    let spec = NetworkSpec {
        annotations: Some(Annotations {
            name: INGRESS_NAME.into(),
            labels: Default::default(),
        }),
        driver: OVERLAY_DRIVER.into(),
        ingress: true,
        ..Default::default()
    };
    allocate_network(spec, &[], pool)
}

/// Validates `spec` against the networks that exist and gives the new
/// network its ID, subnets, gateways and VNI. Nothing is stored.
pub fn allocate_network(
    spec: NetworkSpec,
    existing: &[Network],
    pool: &AddressPool,
) -> Result<Network, ManagerError> {
    allocate_network_beside(spec, existing, pool, &[])
}

/// What a network's subnet must not overlap besides other networks: the
/// gateway bridge's subnet, and the nodes' own addresses (a network over a
/// host's subnet would take the route to the other hosts away from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// `rswarm_gwbridge`'s subnet on every node.
    GatewayBridge(Cidr),
    /// A node's address, and its hostname.
    Host(Ipv4Addr, String),
}

/// The gateway bridge's subnet: the overlay crate's `GATEWAY_SUBNET` /
/// `GATEWAY_PREFIX` (`rswarm_gwbridge`, 172.18.0.0/16).
pub const GATEWAY_BRIDGE_SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(172, 18, 0, 0), 16);

/// The options the overlay driver takes: none yet. `encrypted` is refused in
/// words of its own, since accepting it would promise encryption and send
/// the traffic in clear.
pub fn check_options(spec: &NetworkSpec) -> Result<(), ManagerError> {
    let mut keys: Vec<&String> = spec.options.keys().collect();
    keys.sort();
    if keys.iter().any(|k| k.as_str() == "encrypted") {
        return Err(invalid(
            "encrypted overlay networks are not supported yet (their traffic would cross the wire in clear); create the network without --opt encrypted",
        ));
    }
    if let Some(k) = keys.first() {
        return Err(invalid(format!(
            "network option \"{k}\" is not supported: the overlay driver takes no options"
        )));
    }
    Ok(())
}

/// [`allocate_network`], also keeping clear of `reserved`: a given subnet
/// that overlaps one is refused, and a subnet from the pool skips them.
pub fn allocate_network_beside(
    mut spec: NetworkSpec,
    existing: &[Network],
    pool: &AddressPool,
    reserved: &[Reserved],
) -> Result<Network, ManagerError> {
    check_options(&spec)?;
    let net_name = spec
        .annotations
        .as_ref()
        .map(|a| a.name.clone())
        .unwrap_or_default();
    validate_name(&net_name)?;
    if existing.iter().any(|n| name(n) == net_name) {
        return Err(ManagerError::AlreadyExists(format!(
            "network with name {net_name} already exists"
        )));
    }
    if spec.driver.is_empty() {
        spec.driver = OVERLAY_DRIVER.into();
    }
    if spec.driver != OVERLAY_DRIVER {
        return Err(invalid(format!(
            "invalid driver {:?} specified: only {OVERLAY_DRIVER} networks can be created in a swarm",
            spec.driver
        )));
    }
    if spec.ingress {
        if spec.attachable {
            return Err(invalid("ingress network cannot be attachable"));
        }
        if let Some(other) = existing.iter().find(|n| is_ingress(n)) {
            return Err(ManagerError::AlreadyExists(format!(
                "only one ingress network is allowed; ingress network ({}) is already present",
                name(other)
            )));
        }
    }
    let mut taken: Vec<Cidr> = existing.iter().flat_map(subnets).collect();
    let (pools, mask) = {
        let checked = default_address_pool(&pool.pools, pool.mask_length)?;
        let cidrs = checked
            .pools
            .iter()
            .map(|p| parse_subnet(p, "default address pool"))
            .collect::<Result<Vec<_>, _>>()?;
        (cidrs, checked.mask_length as u8)
    };
    let requested: Vec<IpamConfig> = if spec.ipam.is_empty() {
        vec![IpamConfig::default()]
    } else {
        spec.ipam.clone()
    };
    for conf in requested.iter().filter(|c| !c.subnet.is_empty()) {
        let subnet = parse_subnet(&conf.subnet, "subnet")?;
        check_reserved(&subnet, reserved)?;
    }
    // Subnets from the pool keep clear of the reserved ones too.
    let mut avoid = taken.clone();
    avoid.extend(reserved.iter().map(|r| match r {
        Reserved::GatewayBridge(c) => *c,
        Reserved::Host(ip, _) => Cidr::new(*ip, 32),
    }));
    let mut allocated = Vec::new();
    for conf in &requested {
        let conf = if conf.subnet.is_empty() {
            allocate_ipam(conf, &avoid, &pools, mask)?
        } else {
            allocate_ipam(conf, &taken, &pools, mask)?
        };
        if let Ok(subnet) = conf.subnet.parse::<Cidr>() {
            avoid.push(subnet);
            taken.push(subnet);
        }
        allocated.push(conf);
    }
    let used: HashSet<u32> = existing.iter().map(|n| n.vni).collect();
    let vni = VNI_RANGE
        .clone()
        .find(|v| !used.contains(v))
        .ok_or_else(|| invalid("no free VXLAN network identifier left"))?;
    Ok(Network {
        id: crate::objects::new_id(),
        meta: None,
        spec: Some(spec),
        ipam: allocated,
        vni,
    })
}

/// Refuses a subnet over the gateway bridge's or a node's address.
fn check_reserved(subnet: &Cidr, reserved: &[Reserved]) -> Result<(), ManagerError> {
    for r in reserved {
        match r {
            Reserved::GatewayBridge(c) if c.overlaps(subnet) => {
                return Err(invalid(format!(
                    "invalid subnet {subnet}: it overlaps {c}, the subnet of the rswarm_gwbridge gateway bridge on every node"
                )));
            }
            Reserved::Host(ip, host) if subnet.contains(*ip) => {
                return Err(invalid(format!(
                    "invalid subnet {subnet}: it overlaps the network of node {host}, whose address is {ip}"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// One requested IPAM configuration, checked and completed.
fn allocate_ipam(
    conf: &IpamConfig,
    taken: &[Cidr],
    pools: &[Cidr],
    mask: u8,
) -> Result<IpamConfig, ManagerError> {
    if conf.subnet.is_empty() {
        if !conf.gateway.is_empty() || !conf.ip_range.is_empty() {
            return Err(invalid(
                "every ip-range or gateway must have a corresponding subnet",
            ));
        }
        let subnet = pools
            .iter()
            .find_map(|p| ipam::carve(p, mask, taken))
            .ok_or_else(|| {
                invalid("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
            })?;
        return Ok(IpamConfig {
            subnet: subnet.to_string(),
            gateway: ipam::default_gateway(&subnet).to_string(),
            ip_range: String::new(),
        });
    }
    let subnet = parse_subnet(&conf.subnet, "subnet")?;
    if taken.iter().any(|t| t.overlaps(&subnet)) {
        return Err(invalid(
            "invalid pool request: Pool overlaps with other one on this address space",
        ));
    }
    let gateway = if conf.gateway.is_empty() {
        None
    } else {
        Some(conf.gateway.trim().parse::<Ipv4Addr>().map_err(|_| {
            invalid(format!(
                "ipam configuration: invalid gateway {}",
                conf.gateway
            ))
        })?)
    };
    let range = if conf.ip_range.is_empty() {
        None
    } else {
        Some(parse_subnet(&conf.ip_range, "ip-range")?)
    };
    // Building the pool checks sizes, the gateway and the range.
    let pool = Pool::new(subnet, gateway, range).map_err(|e| invalid(e.to_string()))?;
    Ok(IpamConfig {
        subnet: subnet.to_string(),
        gateway: pool.gateway().to_string(),
        ip_range: range.map(|r| r.to_string()).unwrap_or_default(),
    })
}

fn parse_subnet(s: &str, what: &str) -> Result<Cidr, ManagerError> {
    if s.contains(':') {
        return Err(invalid(format!(
            "invalid {what} {s}: IPv6 is not supported"
        )));
    }
    s.parse::<Cidr>().map_err(|_| {
        invalid(format!(
            "invalid {what} {s}: expected an IPv4 CIDR like 10.20.0.0/24"
        ))
    })
}

/// Swarm's rule for object names: a DNS label (the spec library's rule).
pub fn validate_name(name: &str) -> Result<(), ManagerError> {
    if name.is_empty() {
        return Err(invalid("network name must be provided"));
    }
    if !rswarm_proto::spec::names::is_dns_component(name) {
        return Err(invalid(format!(
            "invalid network name {name:?}: must be valid as a DNS name component"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, subnets: &[(&str, &str, &str)]) -> NetworkSpec {
        NetworkSpec {
            annotations: Some(Annotations {
                name: name.into(),
                labels: Default::default(),
            }),
            ipam: subnets
                .iter()
                .map(|(s, g, r)| IpamConfig {
                    subnet: s.to_string(),
                    gateway: g.to_string(),
                    ip_range: r.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn default_pool() -> AddressPool {
        default_address_pool(&[], 0).expect("default pool")
    }

    fn err(r: Result<Network, ManagerError>) -> String {
        match r {
            Ok(n) => panic!("expected an error, got {n:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn options_and_reserved_subnets_are_refused() {
        let pool = default_pool();
        for value in ["", "true", "1"] {
            let mut s = spec("secret", &[]);
            s.options.insert("encrypted".into(), value.into());
            let e = err(allocate_network(s, &[], &pool));
            assert!(
                e.starts_with("encrypted overlay networks are not supported yet"),
                "{e}"
            );
        }
        let mut s = spec("mtu", &[]);
        s.options
            .insert("com.docker.network.driver.mtu".into(), "1400".into());
        assert_eq!(
            err(allocate_network(s, &[], &pool)),
            "network option \"com.docker.network.driver.mtu\" is not supported: the overlay driver takes no options"
        );
        let (gw, prefix) = GATEWAY_BRIDGE_SUBNET;
        let reserved = [
            Reserved::GatewayBridge(Cidr::new(gw, prefix)),
            Reserved::Host(Ipv4Addr::new(10, 0, 0, 11), "host1".into()),
        ];
        let beside = |subnet: &str| {
            let subnets = [(subnet, "", "")];
            let s = spec("n", if subnet.is_empty() { &[] } else { &subnets });
            allocate_network_beside(s, &[], &pool, &reserved)
        };
        assert_eq!(
            err(beside("172.18.5.0/24")),
            "invalid subnet 172.18.5.0/24: it overlaps 172.18.0.0/16, the subnet of the rswarm_gwbridge gateway bridge on every node"
        );
        assert_eq!(
            err(beside("10.0.0.0/24")),
            "invalid subnet 10.0.0.0/24: it overlaps the network of node host1, whose address is 10.0.0.11"
        );
        // From the pool, the host's /24 is skipped.
        let n = beside("").expect("pool subnet");
        assert_eq!(n.ipam[0].subnet, "10.0.1.0/24");
        assert!(beside("172.19.0.0/16").is_ok());
    }

    #[test]
    fn ingress_takes_the_first_subnet_and_vni() {
        let ingress = ingress_network(&default_pool()).expect("ingress");
        assert_eq!(name(&ingress), "ingress");
        assert!(is_ingress(&ingress));
        assert_eq!(ingress.ipam[0].subnet, "10.0.0.0/24");
        assert_eq!(ingress.ipam[0].gateway, "10.0.0.1");
        assert_eq!(ingress.vni, 4097);
        assert_eq!(
            ingress.spec.as_ref().map(|s| s.driver.as_str()),
            Some("overlay")
        );
        let custom = default_address_pool(&["10.20.0.0/16".into()], 26).expect("pool");
        let ingress = ingress_network(&custom).expect("ingress");
        assert_eq!(ingress.ipam[0].subnet, "10.20.0.0/26");
    }

    #[test]
    fn default_pools_are_checked() {
        assert_eq!(
            default_pool(),
            AddressPool {
                pools: vec!["10.0.0.0/8".into()],
                mask_length: 24
            }
        );
        assert!(default_address_pool(&["10.0.0.0/8".into()], 7).is_err());
        assert!(default_address_pool(&["10.0.0.0/16".into()], 12).is_err());
        assert!(default_address_pool(&["10.0.0.0/8".into(), "10.1.0.0/16".into()], 24).is_err());
        assert!(default_address_pool(&["fd00::/8".into()], 24).is_err());
        assert!(default_address_pool(&["10.0.0.0/8".into()], 31).is_err());
    }

    #[test]
    fn new_networks_get_free_subnets_and_unique_vnis() {
        let pool = default_pool();
        let mut existing = vec![ingress_network(&pool).expect("ingress")];
        for i in 1..=3 {
            let n = allocate_network(spec(&format!("net{i}"), &[]), &existing, &pool)
                .expect("allocate");
            assert_eq!(n.ipam[0].subnet, format!("10.0.{i}.0/24"));
            assert_eq!(n.vni, 4097 + i);
            existing.push(n);
        }
        // A given subnet inside the default pool is skipped by later carving.
        let given = allocate_network(spec("given", &[("10.0.4.0/24", "", "")]), &existing, &pool)
            .expect("given");
        existing.push(given);
        let next = allocate_network(spec("next", &[]), &existing, &pool).expect("next");
        assert_eq!(next.ipam[0].subnet, "10.0.5.0/24");
    }

    #[test]
    fn specs_are_validated_with_dockers_words() {
        let pool = default_pool();
        let existing = vec![
            ingress_network(&pool).expect("ingress"),
            allocate_network(spec("backend", &[("10.20.0.0/24", "", "")]), &[], &pool)
                .expect("backend"),
        ];
        assert_eq!(
            err(allocate_network(spec("backend", &[]), &existing, &pool)),
            "network with name backend already exists"
        );
        assert_eq!(
            err(allocate_network(
                spec("other", &[("10.20.0.128/25", "", "")]),
                &existing,
                &pool
            )),
            "invalid pool request: Pool overlaps with other one on this address space"
        );
        assert_eq!(
            err(allocate_network(
                spec("two", &[("10.30.0.0/24", "", ""), ("10.30.0.0/16", "", "")]),
                &existing,
                &pool
            )),
            "invalid pool request: Pool overlaps with other one on this address space"
        );
        assert_eq!(
            err(allocate_network(
                spec("gw", &[("10.30.0.0/24", "10.31.0.1", "")]),
                &existing,
                &pool
            )),
            "ipam configuration: subnet 10.30.0.0/24 does not contain gateway 10.31.0.1"
        );
        assert_eq!(
            err(allocate_network(
                spec("range", &[("10.30.0.0/24", "", "10.30.1.0/28")]),
                &existing,
                &pool
            )),
            "ipam configuration: subnet 10.30.0.0/24 does not contain range 10.30.1.0/28"
        );
        assert_eq!(
            err(allocate_network(
                spec("nosubnet", &[("", "10.30.0.1", "")]),
                &existing,
                &pool
            )),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert!(err(allocate_network(
            spec("v6", &[("fd00::/64", "", "")]),
            &existing,
            &pool
        ))
        .contains("IPv6"));
        assert!(err(allocate_network(
            spec("tiny", &[("10.30.0.0/31", "", "")]),
            &existing,
            &pool
        ))
        .contains("/30"));
        assert!(err(allocate_network(spec("a/b", &[]), &existing, &pool)).contains("DNS name"));
        assert_eq!(
            err(allocate_network(spec("", &[]), &existing, &pool)),
            "network name must be provided"
        );
        let mut bridge = spec("br", &[]);
        bridge.driver = "bridge".into();
        assert!(err(allocate_network(bridge, &existing, &pool)).contains("only overlay"));
        let mut second = spec("ingress2", &[]);
        second.ingress = true;
        assert!(err(allocate_network(second, &existing, &pool)).contains("only one ingress"));
        let mut attachable = spec("ingress2", &[]);
        attachable.ingress = true;
        attachable.attachable = true;
        assert_eq!(
            err(allocate_network(attachable, &[], &pool)),
            "ingress network cannot be attachable"
        );
        let ok = allocate_network(
            spec(
                "ranged",
                &[("10.30.0.5/24", "10.30.0.254", "10.30.0.128/25")],
            ),
            &existing,
            &pool,
        )
        .expect("valid");
        assert_eq!(
            ok.ipam,
            vec![IpamConfig {
                subnet: "10.30.0.0/24".into(),
                gateway: "10.30.0.254".into(),
                ip_range: "10.30.0.128/25".into()
            }]
        );
    }

    #[test]
    fn targets_resolve_by_id_then_name() {
        let pool = default_pool();
        let a = allocate_network(spec("a", &[]), &[], &pool).expect("a");
        let mut b = allocate_network(spec("b", &[]), std::slice::from_ref(&a), &pool).expect("b");
        // A network named like another's ID: the ID wins.
        b.spec
            .as_mut()
            .and_then(|s| s.annotations.as_mut())
            .expect("annotations")
            .name = a.id.clone();
        let all = [a.clone(), b.clone()];
        assert_eq!(resolve_target(&all, &a.id).map(|n| &n.id), Some(&a.id));
        assert_eq!(resolve_target(&all, "a").map(|n| &n.id), Some(&a.id));
        assert_eq!(resolve_target(&all, &b.id).map(|n| &n.id), Some(&b.id));
        assert!(resolve_target(&all, "c").is_none());
        assert!(matches_target(&a, "a") && !matches_target(&a, ""));
    }
}
