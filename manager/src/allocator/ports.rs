//! Published ports: the allocator's rule for which ports a service
//! publishes. An ingress port with no published port gets the lowest free
//! one of the dynamic range (Swarm's 30000-32767); an ingress port another
//! service already publishes (same number and protocol) is refused with
//! "port 'N' is already in use by service 'NAME' (ID) as an ingress port".
//! Host-mode ports are kept as given (the scheduler keeps two tasks that
//! bind the same host port off one node).
//!
//! Unlike VIPs and addresses (given by the allocator's loop after a write),
//! ports are decided inside the Control API's `service create` and `update`
//! writes, against every other service in the store: a conflict is refused
//! to the user's command itself, and the create's guard object keeps two
//! concurrent creates from taking one port.

use std::collections::HashSet;

use rswarm_proto::types::port_config::PublishMode;
use rswarm_proto::types::{EndpointSpec, PortConfig, Service};

use crate::error::ManagerError;
use crate::objects;

/// Published ports Swarm allocates from when none is given.
pub(crate) const DYNAMIC_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

/// The ports the service `own_id` publishes with `spec`, given the other
/// services (`services` may include `own_id` itself, which is skipped).
pub(crate) fn allocate(
    services: &[Service],
    own_id: &str,
    spec: &EndpointSpec,
) -> Result<Vec<PortConfig>, ManagerError> {
    let mut used: HashSet<(u32, i32)> = HashSet::new();
    for s in services.iter().filter(|s| s.id != own_id) {
        let published = s
            .endpoint
            .as_ref()
            .map(|e| e.ports.as_slice())
            .unwrap_or(&[]);
        for p in published.iter().filter(|p| is_ingress(p)) {
            if p.published_port == 0 {
                continue;
            }
            used.insert((p.published_port, p.protocol));
            if spec
                .ports
                .iter()
                .any(|q| q.published_port == p.published_port && q.protocol == p.protocol)
            {
                return Err(ManagerError::InvalidArgument(format!(
                    "port '{}' is already in use by service '{}' ({}) as an ingress port",
                    p.published_port,
                    objects::service_name(s),
                    s.id
                )));
            }
        }
    }
    let mut out = Vec::with_capacity(spec.ports.len());
    for p in &spec.ports {
        let mut p = p.clone();
        if p.published_port == 0 && is_ingress(&p) {
            let port = DYNAMIC_PORTS
                .clone()
                .find(|port| !used.contains(&(*port, p.protocol)))
                .ok_or_else(|| {
                    ManagerError::InvalidArgument(
                        "no free port in the dynamic range 30000-32767".into(),
                    )
                })?;
            used.insert((port, p.protocol));
            p.published_port = port;
        }
        out.push(p);
    }
    Ok(out)
}

fn is_ingress(p: &PortConfig) -> bool {
    p.publish_mode == PublishMode::Ingress as i32
}

#[cfg(test)]
mod tests {
    use rswarm_proto::types::port_config::Protocol;
    use rswarm_proto::types::{Annotations, Endpoint, ServiceSpec};

    use super::*;

    fn port(published: u32, target: u32, protocol: Protocol, mode: PublishMode) -> PortConfig {
        PortConfig {
            published_port: published,
            target_port: target,
            protocol: protocol as i32,
            publish_mode: mode as i32,
            ..Default::default()
        }
    }

    fn service(id: &str, name: &str, ports: Vec<PortConfig>) -> Service {
        Service {
            id: id.into(),
            spec: Some(ServiceSpec {
                annotations: Some(Annotations {
                    name: name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            endpoint: Some(Endpoint {
                ports,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(ports: Vec<PortConfig>) -> EndpointSpec {
        EndpointSpec {
            ports,
            ..Default::default()
        }
    }

    #[test]
    fn an_ingress_port_another_service_publishes_is_refused_with_its_name() {
        let web = service(
            "s1",
            "web",
            vec![port(8080, 80, Protocol::Tcp, PublishMode::Ingress)],
        );
        let err = allocate(
            &[web],
            "s2",
            &spec(vec![port(8080, 8000, Protocol::Tcp, PublishMode::Ingress)]),
        )
        .expect_err("conflict");
        assert_eq!(
            err.to_string(),
            ManagerError::InvalidArgument(
                "port '8080' is already in use by service 'web' (s1) as an ingress port".into()
            )
            .to_string()
        );
    }

    #[test]
    fn the_same_number_on_another_protocol_or_the_service_itself_is_free() {
        let web = service(
            "s1",
            "web",
            vec![port(8080, 80, Protocol::Tcp, PublishMode::Ingress)],
        );
        let udp = spec(vec![port(8080, 80, Protocol::Udp, PublishMode::Ingress)]);
        assert_eq!(
            allocate(std::slice::from_ref(&web), "s2", &udp)
                .expect("udp")
                .len(),
            1
        );
        // An update of the service that publishes it keeps its port.
        let own = spec(vec![port(8080, 80, Protocol::Tcp, PublishMode::Ingress)]);
        let ports = allocate(&[web], "s1", &own).expect("own port");
        assert_eq!(ports[0].published_port, 8080);
    }

    #[test]
    fn ingress_ports_without_a_number_get_the_lowest_free_dynamic_ports() {
        let other = service(
            "s1",
            "web",
            vec![port(30000, 80, Protocol::Tcp, PublishMode::Ingress)],
        );
        let ports = allocate(
            &[other],
            "s2",
            &spec(vec![
                port(0, 80, Protocol::Tcp, PublishMode::Ingress),
                port(0, 81, Protocol::Tcp, PublishMode::Ingress),
                port(0, 53, Protocol::Udp, PublishMode::Ingress),
                port(0, 82, Protocol::Tcp, PublishMode::Host),
            ]),
        )
        .expect("allocate");
        let published: Vec<u32> = ports.iter().map(|p| p.published_port).collect();
        // 30000/tcp is taken; udp has its own numbers; host mode is left as given.
        assert_eq!(published, vec![30001, 30002, 30000, 0]);
    }

    #[test]
    fn host_mode_ports_of_other_services_do_not_conflict() {
        let host = service(
            "s1",
            "web",
            vec![port(8080, 80, Protocol::Tcp, PublishMode::Host)],
        );
        let ports = allocate(
            &[host],
            "s2",
            &spec(vec![port(8080, 80, Protocol::Tcp, PublishMode::Ingress)]),
        )
        .expect("no conflict with a host-mode port");
        assert_eq!(ports[0].published_port, 8080);
    }

    #[test]
    fn a_full_dynamic_range_is_refused() {
        let taken: Vec<PortConfig> = DYNAMIC_PORTS
            .map(|p| port(p, 80, Protocol::Tcp, PublishMode::Ingress))
            .collect();
        let err = allocate(
            &[service("s1", "big", taken)],
            "s2",
            &spec(vec![port(0, 80, Protocol::Tcp, PublishMode::Ingress)]),
        )
        .expect_err("full");
        assert!(err
            .to_string()
            .contains("no free port in the dynamic range 30000-32767"));
    }
}
