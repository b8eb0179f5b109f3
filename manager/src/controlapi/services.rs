//! Control calls on services and tasks: create, inspect, list, update (scale
//! and rollback included), remove; get and list tasks. Specs are validated
//! here, before anything is stored, with messages that say what is wrong
//! and where; published ports are allocated and checked for conflicts.
//! Every create rewrites one guard object at the version it read it, so a
//! name or port checked against a stale view (a follower behind, a create
//! retried while its first try still commits) never yields two services.
//! Every spec keeps the bounds of `limits` (replicas, size, list lengths).

use std::collections::HashSet;

use rswarm_proto::control::{ListTasksRequest, UpdateServiceRequest};
use rswarm_proto::types::{
    endpoint_spec::ResolutionMode, port_config::PublishMode, service_spec::Mode, Endpoint,
    EndpointSpec, Network, PortConfig, Service, ServiceSpec, Task, TaskState,
};
use rswarm_raft::{Op, Store, StoreError};

use super::spec_write::write_spec;
use crate::error::ManagerError;
use crate::objects;

/// A boxed response stream, as tonic's streaming handlers return.
pub type BoxStreamAlias<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// The id of the one service-creation guard object.
const GUARD_ID: &str = "default";
/// How often a create looks again after racing with another create.
const CREATE_ATTEMPTS: usize = 20;

/// Published ports Swarm allocates from when none is given.
const DYNAMIC_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

fn invalid(msg: impl Into<String>) -> ManagerError {
    ManagerError::InvalidArgument(msg.into())
}

/// Check a spec the way swarmkit's controlapi does, naming the field at fault.
pub fn validate(spec: &ServiceSpec) -> Result<(), ManagerError> {
    super::limits::check_spec(spec)?;
    let name = spec
        .annotations
        .as_ref()
        .map(|a| a.name.as_str())
        .unwrap_or("");
    validate_name(name)?;
    let task = spec
        .task
        .as_ref()
        .ok_or_else(|| invalid("service spec has no task template"))?;
    let container = task
        .container
        .as_ref()
        .ok_or_else(|| invalid("task template has no container spec"))?;
    if container.image.trim().is_empty() {
        return Err(invalid("ContainerSpec: image reference must be provided"));
    }
    if container.image.chars().any(char::is_whitespace) {
        return Err(invalid(format!(
            "ContainerSpec: invalid image reference \"{}\"",
            container.image
        )));
    }
    super::image_ref::check(&container.image).map_err(invalid)?;
    // A setting that would be stored and ignored is refused until it works.
    if let Some(h) = &container.healthcheck {
        if !h.test.is_empty() && h.test.first().map(String::as_str) != Some("NONE") {
            return Err(invalid(
                "health checks are not supported yet: rswarm does not run them, so the check would be ignored",
            ));
        }
    }
    match &spec.mode {
        None => return Err(invalid("service spec has no mode")),
        Some(Mode::ReplicatedJob(j)) if j.max_concurrent == 0 && j.total_completions == 0 => {}
        _ => {}
    }
    if let Some(r) = task.resources.as_ref() {
        for (what, l) in [
            ("limits", r.limits.as_ref()),
            ("reservations", r.reservations.as_ref()),
        ] {
            if let Some(l) = l {
                if l.nano_cpus < 0 || l.memory_bytes < 0 || l.pids < 0 {
                    return Err(invalid(format!(
                        "TaskSpec: resource {what} must not be negative"
                    )));
                }
                if l.nano_cpus > 0 && l.nano_cpus < 1_000_000 {
                    return Err(invalid(format!(
                        "TaskSpec: invalid cpu {what}: must be at least 0.001"
                    )));
                }
            }
        }
        if let Some(l) = r.limits.as_ref() {
            if l.memory_bytes > 0 && l.memory_bytes < 6 * 1024 * 1024 {
                return Err(invalid("TaskSpec: memory limit must be at least 6MiB"));
            }
        }
    }
    if let Some(p) = task.placement.as_ref() {
        for c in &p.constraints {
            validate_constraint(c)?;
        }
        for pref in &p.preferences {
            if !pref.spread_descriptor.starts_with("node.labels.")
                && !pref.spread_descriptor.starts_with("engine.labels.")
            {
                return Err(invalid(format!(
                    "invalid placement preference spread={}: must be node.labels.<name> or engine.labels.<name>",
                    pref.spread_descriptor
                )));
            }
        }
    }
    for m in &container.mounts {
        if m.target.is_empty() || !m.target.starts_with('/') {
            return Err(invalid(format!(
                "invalid mount config: target must be an absolute path, got {:?}",
                m.target
            )));
        }
        if m.r#type == rswarm_proto::types::mount::Type::Bind as i32 && !m.source.starts_with('/') {
            return Err(invalid(format!(
                "invalid mount config for type \"bind\": source must be an absolute path, got {:?}",
                m.source
            )));
        }
    }
    if let Some(ep) = spec.endpoint.as_ref() {
        let mut seen = HashSet::new();
        for p in &ep.ports {
            if p.target_port == 0 || p.target_port > 65535 || p.published_port > 65535 {
                return Err(invalid(format!(
                    "invalid port {}:{}",
                    p.published_port, p.target_port
                )));
            }
            if p.published_port != 0 && !seen.insert((p.published_port, p.protocol)) {
                return Err(invalid(format!(
                    "EndpointSpec: duplicate published ports provided: {}",
                    p.published_port
                )));
            }
        }
        if ep.mode == ResolutionMode::Dnsrr as i32
            && ep
                .ports
                .iter()
                .any(|p| p.publish_mode == PublishMode::Ingress as i32)
        {
            return Err(invalid(
                "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
            ));
        }
    }
    Ok(())
}

/// Every network the task template attaches to exists (Docker: "network
/// nosuchnet not found"), so no task waits forever for a network.
fn check_networks(store: &Store, spec: &ServiceSpec) -> Result<(), ManagerError> {
    let wanted = spec
        .task
        .as_ref()
        .map(|t| t.networks.as_slice())
        .unwrap_or(&[]);
    if wanted.is_empty() {
        return Ok(());
    }
    let all = objects::list::<Network>(store)?;
    for n in wanted {
        if crate::allocator::network::resolve_target(&all, &n.target).is_none() {
            return Err(ManagerError::NotFound(format!(
                "network {} not found",
                n.target
            )));
        }
    }
    Ok(())
}

/// Docker's rule: a valid DNS label.
pub fn validate_name(name: &str) -> Result<(), ManagerError> {
    if name.is_empty() {
        return Err(invalid("service name must not be empty"));
    }
    let ok = name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .map(|c| c.is_ascii_alphanumeric())
            .unwrap_or(false);
    if !ok {
        return Err(invalid(format!(
            "Invalid name {name:?}: must be valid as a DNS name component"
        )));
    }
    Ok(())
}

/// `node.role==worker`, `node.labels.zone!=b`, ...
pub fn validate_constraint(c: &str) -> Result<(), ManagerError> {
    let (key, value) = if let Some((k, v)) = c.split_once("==") {
        (k, v)
    } else if let Some((k, v)) = c.split_once("!=") {
        (k, v)
    } else {
        return Err(invalid(format!(
            "invalid constraint {c:?}: expected key==value or key!=value"
        )));
    };
    let key = key.trim();
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(format!("invalid constraint {c:?}: empty value")));
    }
    let known = matches!(
        key,
        "node.id" | "node.hostname" | "node.role" | "node.platform.os" | "node.platform.arch"
    ) || (key.starts_with("node.labels.") && key.len() > "node.labels.".len())
        || (key.starts_with("engine.labels.") && key.len() > "engine.labels.".len());
    if !known {
        return Err(invalid(format!(
            "invalid constraint {c:?}: unknown key {key:?}"
        )));
    }
    if key == "node.role" && value != "manager" && value != "worker" {
        return Err(invalid(format!(
            "invalid constraint {c:?}: node.role must be manager or worker"
        )));
    }
    Ok(())
}

fn name_of(s: &Service) -> &str {
    s.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.as_str())
        .unwrap_or("")
}

/// Resolve a service by ID, name, or unique ID prefix.
pub fn resolve_service(store: &Store, reference: &str) -> Result<Service, ManagerError> {
    let all = objects::list::<Service>(store)?;
    if let Some(s) = all.iter().find(|s| s.id == reference) {
        return Ok(s.clone());
    }
    if let Some(s) = all.iter().find(|s| name_of(s) == reference) {
        return Ok(s.clone());
    }
    let by_prefix: Vec<&Service> = all
        .iter()
        .filter(|s| !reference.is_empty() && s.id.starts_with(reference))
        .collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0].clone()),
        0 => Err(ManagerError::NotFound(format!(
            "service {reference} not found"
        ))),
        n => Err(invalid(format!(
            "service {reference} is ambiguous ({n} matches)"
        ))),
    }
}

/// Give ingress ports without a published port one from the dynamic range,
/// and refuse ports another service already publishes.
fn allocate_ports(
    store: &Store,
    own_id: &str,
    spec: &EndpointSpec,
) -> Result<Vec<PortConfig>, ManagerError> {
    let services = objects::list::<Service>(store)?;
    let mut used: HashSet<(u32, i32)> = HashSet::new();
    for s in services.iter().filter(|s| s.id != own_id) {
        for p in s
            .endpoint
            .as_ref()
            .map(|e| e.ports.as_slice())
            .unwrap_or(&[])
        {
            if p.publish_mode == PublishMode::Ingress as i32 && p.published_port != 0 {
                used.insert((p.published_port, p.protocol));
            }
            if p.publish_mode == PublishMode::Ingress as i32 {
                for q in &spec.ports {
                    if q.published_port == p.published_port
                        && q.protocol == p.protocol
                        && q.published_port != 0
                    {
                        return Err(invalid(format!(
                            "port '{}' is already in use by service '{}' ({}) as an ingress port",
                            p.published_port,
                            name_of(s),
                            s.id
                        )));
                    }
                }
            }
        }
    }
    let mut out = vec![];
    for p in &spec.ports {
        let mut p = p.clone();
        if p.published_port == 0 && p.publish_mode == PublishMode::Ingress as i32 {
            let port = DYNAMIC_PORTS
                .clone()
                .find(|port| !used.contains(&(*port, p.protocol)))
                .ok_or_else(|| invalid("no free port in the dynamic range 30000-32767"))?;
            used.insert((port, p.protocol));
            p.published_port = port;
        }
        out.push(p);
    }
    Ok(out)
}

pub async fn create(store: &Store, mut spec: ServiceSpec) -> Result<Service, ManagerError> {
    if spec
        .annotations
        .as_ref()
        .map(|a| a.name.is_empty())
        .unwrap_or(true)
    {
        spec.annotations.get_or_insert_with(Default::default).name = generated_name();
    }
    validate(&spec)?;
    check_networks(store, &spec)?;
    let name = spec
        .annotations
        .as_ref()
        .map(|a| a.name.clone())
        .unwrap_or_default();
    for _ in 0..CREATE_ATTEMPTS {
        // The guard first: a create committed after this read changes it,
        // and then this create's write conflicts and looks again.
        let guard = store
            .get(objects::KIND_SERVICE_GUARD, GUARD_ID)?
            .map(|o| o.version)
            .unwrap_or(0);
        if objects::list::<Service>(store)?
            .iter()
            .any(|s| name_of(s) == name)
        {
            return Err(ManagerError::AlreadyExists(format!(
                "name conflicts with an existing object: service {name} already exists"
            )));
        }
        let id = objects::new_id();
        let endpoint_spec = spec.endpoint.clone().unwrap_or_default();
        let ports = allocate_ports(store, &id, &endpoint_spec)?;
        let service = Service {
            id: id.clone(),
            meta: None,
            spec: Some(spec.clone()),
            previous_spec: None,
            endpoint: Some(Endpoint {
                spec: Some(endpoint_spec),
                ports,
                virtual_ips: vec![],
            }),
            update_status: None,
            job_status: match spec.mode {
                Some(Mode::ReplicatedJob(_)) | Some(Mode::GlobalJob(_)) => {
                    Some(rswarm_proto::types::JobStatus {
                        job_iteration: 0,
                        last_execution: objects::now_nanos(),
                    })
                }
                _ => None,
            },
            spec_version: 1,
        };
        let ops = vec![
            objects::put(&service),
            Op::Put {
                kind: objects::KIND_SERVICE_GUARD.into(),
                id: GUARD_ID.into(),
                value: id.clone().into_bytes(),
                expect_version: Some(guard),
            },
        ];
        match store.write(ops).await {
            Ok(_) => {
                return objects::get::<Service>(store, &id)?
                    .ok_or_else(|| ManagerError::Internal("service vanished after create".into()))
            }
            // Another service was created meanwhile (the store waited until
            // this manager applied it): look again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ManagerError::Internal(
        "service create kept racing with other service creates; try again".into(),
    ))
}

/// `service update`, `scale` and `rollback`: write the service's spec,
/// refused only if its spec changed since the caller read the version it
/// sends (the allocator's VIPs and a job's status never refuse it).
pub async fn update(store: &Store, req: UpdateServiceRequest) -> Result<Service, ManagerError> {
    let based_on = req.spec_version.as_ref().map_or(0, |v| v.index);
    write_spec(
        store,
        based_on,
        || resolve_service(store, &req.service_ref),
        |service: &mut Service| {
            let old = service.spec.clone().unwrap_or_default();
            let mut new = if req.rollback {
                service.previous_spec.clone().ok_or_else(|| {
                    ManagerError::FailedPrecondition(format!(
                        "service {} does not have a previous spec",
                        name_of(service)
                    ))
                })?
            } else {
                req.spec
                    .clone()
                    .ok_or_else(|| invalid("update without a spec"))?
            };
            let old_name = old
                .annotations
                .as_ref()
                .map(|a| a.name.clone())
                .unwrap_or_default();
            let new_name = new
                .annotations
                .as_ref()
                .map(|a| a.name.clone())
                .unwrap_or_default();
            if new_name.is_empty() {
                new.annotations.get_or_insert_with(Default::default).name = old_name.clone();
            } else if new_name != old_name {
                return Err(invalid("renaming services is not supported"));
            }
            validate(&new)?;
            check_networks(store, &new)?;
            let mode_kind = |s: &ServiceSpec| std::mem::discriminant(&s.mode);
            if mode_kind(&old) != mode_kind(&new) {
                return Err(invalid("service mode change is not allowed"));
            }
            let endpoint_spec = new.endpoint.clone().unwrap_or_default();
            let ports = allocate_ports(store, &service.id, &endpoint_spec)?;
            if new.task != old.task {
                service.spec_version += 1;
            }
            service.previous_spec = Some(old);
            service.spec = Some(new);
            let endpoint = service.endpoint.get_or_insert_with(Default::default);
            endpoint.spec = Some(endpoint_spec);
            endpoint.ports = ports;
            Ok(())
        },
    )
    .await
}

pub async fn remove(store: &Store, reference: &str) -> Result<(), ManagerError> {
    let service = resolve_service(store, reference)?;
    store
        .write(vec![objects::delete(
            objects::KIND_SERVICE,
            &service.id,
            service.meta.as_ref(),
        )])
        .await?;
    Ok(())
}

/// Resolve a task: full ID, unique ID prefix, or `<service>.<slot>` (the
/// slot's current task).
pub fn resolve_task(store: &Store, reference: &str) -> Result<Task, ManagerError> {
    let tasks = objects::list::<Task>(store)?;
    if let Some(t) = tasks.iter().find(|t| t.id == reference) {
        return Ok(t.clone());
    }
    if let Some((svc, slot)) = reference.rsplit_once('.') {
        if let (Ok(service), Ok(slot)) = (resolve_service(store, svc), slot.parse::<u64>()) {
            let mut candidates: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.service_id == service.id && t.slot == slot)
                .collect();
            candidates.sort_by_key(|t| {
                (
                    t.desired_state <= TaskState::Running as i32,
                    t.meta.as_ref().map(|m| m.created_at).unwrap_or(0),
                )
            });
            if let Some(t) = candidates.last() {
                return Ok((*t).clone());
            }
        }
    }
    let by_prefix: Vec<&Task> = tasks
        .iter()
        .filter(|t| !reference.is_empty() && t.id.starts_with(reference))
        .collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0].clone()),
        0 => Err(ManagerError::NotFound(format!(
            "task {reference} not found"
        ))),
        n => Err(invalid(format!(
            "task {reference} is ambiguous ({n} matches)"
        ))),
    }
}

pub fn list_tasks(store: &Store, req: &ListTasksRequest) -> Result<Vec<Task>, ManagerError> {
    let mut services = HashSet::new();
    for r in &req.service_refs {
        services.insert(resolve_service(store, r)?.id);
    }
    let mut nodes = HashSet::new();
    for r in &req.node_refs {
        nodes.insert(objects::resolve_node(store, r)?.id);
    }
    Ok(objects::list::<Task>(store)?
        .into_iter()
        .filter(|t| services.is_empty() || services.contains(&t.service_id))
        .filter(|t| nodes.is_empty() || nodes.contains(&t.node_id))
        .filter(|t| req.desired_states.is_empty() || req.desired_states.contains(&t.desired_state))
        .collect())
}

/// A Docker-style random name for unnamed services.
fn generated_name() -> String {
    const LEFT: [&str; 12] = [
        "brave", "calm", "eager", "fervent", "gallant", "happy", "jolly", "keen", "lucid", "nifty",
        "quirky", "vibrant",
    ];
    const RIGHT: [&str; 12] = [
        "babbage", "curie", "darwin", "euler", "fermi", "galileo", "hopper", "knuth", "lovelace",
        "newton", "ritchie", "turing",
    ];
    use rand::Rng;
    let mut rng = rand::thread_rng();
    format!(
        "{}_{}",
        LEFT[rng.gen_range(0..LEFT.len())],
        RIGHT[rng.gen_range(0..RIGHT.len())]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_are_checked() {
        assert!(validate_constraint("node.role==worker").is_ok());
        assert!(validate_constraint("node.labels.zone!=b").is_ok());
        assert!(validate_constraint("node.role=worker").is_err());
        assert!(validate_constraint("node.role==boss").is_err());
        assert!(validate_constraint("node.colour==red").is_err());
        assert!(validate_constraint("node.labels.==x").is_err());
    }

    fn web_spec() -> ServiceSpec {
        ServiceSpec {
            annotations: Some(rswarm_proto::types::Annotations {
                name: "web".into(),
                labels: Default::default(),
            }),
            task: Some(rswarm_proto::types::TaskSpec {
                container: Some(rswarm_proto::types::ContainerSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(rswarm_proto::types::ReplicatedService {
                replicas: 1,
            })),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn two_creates_of_one_name_at_once_make_one_service() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        // Both check the name before either write is applied.
        let (a, b) = tokio::join!(create(&store, web_spec()), create(&store, web_spec()));
        let made = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(made, 1, "one create wins: {a:?} {b:?}");
        let lost = if a.is_err() { a } else { b };
        assert!(
            matches!(&lost, Err(ManagerError::AlreadyExists(m)) if m.contains("service web already exists")),
            "{lost:?}"
        );
        let named: Vec<Service> = objects::list::<Service>(&store)
            .expect("list")
            .into_iter()
            .filter(|s| name_of(s) == "web")
            .collect();
        assert_eq!(named.len(), 1, "{named:?}");
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(validate_name("web").is_ok());
        assert!(validate_name("my_app-1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a.b").is_err());
        assert!(validate_name(&"a".repeat(64)).is_err());
    }
}
