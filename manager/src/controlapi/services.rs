//! Control calls on services and tasks: create, inspect, list, update (scale
//! and rollback included), remove; get and list tasks. Specs are validated
//! here, before anything is stored, by the spec library
//! (`rswarm_proto::spec`: bounds, rules, every problem in one answer, then
//! what the cluster does not run yet); published ports are allocated and
//! checked for conflicts (by the allocator's rule, `allocator::ports`) in the
//! same write.
//! Every create rewrites one guard object at the version it read it, so a
//! name or port checked against a stale view (a follower behind, a create
//! retried while its first try still commits) never yields two services.

use std::collections::HashSet;

use rswarm_proto::control::{ListTasksRequest, UpdateServiceRequest};
use rswarm_proto::types::service_dependency::Condition;
use rswarm_proto::types::update_status::State as UpdateState;
use rswarm_proto::types::{
    service_spec::Mode, Endpoint, EndpointSpec, Network, PortConfig, Service, ServiceSpec, Task,
    TaskState, UpdateStatus,
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

fn invalid(msg: impl Into<String>) -> ManagerError {
    ManagerError::InvalidArgument(msg.into())
}

/// The final word on a spec: every problem the spec library finds (the
/// same `validate` the CLI runs early), then what the cluster does not run
/// yet.
pub fn validate(spec: &ServiceSpec) -> Result<(), ManagerError> {
    rswarm_proto::spec::validate(spec).map_err(|p| invalid(p.to_string()))?;
    rswarm_proto::spec::check_supported(spec).map_err(|e| invalid(e.0))
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

/// Every service `depends_on` names exists (by name), and one waited on to
/// complete successfully is a job, so no service waits for what can never
/// happen.
fn check_dependencies(store: &Store, spec: &ServiceSpec) -> Result<(), ManagerError> {
    if spec.depends_on.is_empty() {
        return Ok(());
    }
    let all = objects::list::<Service>(store)?;
    for d in &spec.depends_on {
        let Some(dep) = all.iter().find(|s| objects::service_name(s) == d.service) else {
            return Err(ManagerError::NotFound(format!(
                "depends_on: service {} not found",
                d.service
            )));
        };
        let is_job = matches!(
            dep.spec.as_ref().and_then(|s| s.mode.as_ref()),
            Some(Mode::ReplicatedJob(_)) | Some(Mode::GlobalJob(_))
        );
        if d.condition() == Condition::CompletedSuccessfully && !is_job {
            return Err(invalid(format!(
                "depends_on: service {} is not a job, so it never completes: service_completed_successfully needs a replicated-job or global-job",
                d.service
            )));
        }
    }
    Ok(())
}

/// Resolve a service by ID, name, or unique ID prefix.
pub fn resolve_service(store: &Store, reference: &str) -> Result<Service, ManagerError> {
    let all = objects::list::<Service>(store)?;
    if let Some(s) = all.iter().find(|s| s.id == reference) {
        return Ok(s.clone());
    }
    if let Some(s) = all.iter().find(|s| objects::service_name(s) == reference) {
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

/// The ports the service publishes, by the allocator's rule
/// (`allocator::ports`), against every other service in the store.
fn allocate_ports(
    store: &Store,
    own_id: &str,
    spec: &EndpointSpec,
) -> Result<Vec<PortConfig>, ManagerError> {
    crate::allocator::ports::allocate(&objects::list::<Service>(store)?, own_id, spec)
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
    check_dependencies(store, &spec)?;
    super::stored_files::resolve_references(store, &mut spec)?;
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
            .any(|s| objects::service_name(s) == name)
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
                        objects::service_name(service)
                    ))
                })?
            } else {
                req.spec
                    .clone()
                    .ok_or_else(|| invalid("update without a spec"))?
            };
            if !req.rollback {
                super::redact::keep_registry_auth(&old, &mut new);
            }
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
            check_dependencies(store, &new)?;
            super::stored_files::resolve_references(store, &mut new)?;
            let mode_kind = |s: &ServiceSpec| std::mem::discriminant(&s.mode);
            if mode_kind(&old) != mode_kind(&new) {
                return Err(invalid("service mode change is not allowed"));
            }
            let endpoint_spec = new.endpoint.clone().unwrap_or_default();
            let ports = allocate_ports(store, &service.id, &endpoint_spec)?;
            let task_changed = new.task != old.task;
            if task_changed {
                service.spec_version += 1;
            }
            if let Some(status) = update_started(service, task_changed, req.rollback) {
                service.update_status = Some(status);
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

/// The update status a spec change starts: a rollback, an update of the
/// task template, or the resumption of a paused one (Docker resumes a paused
/// update on the next `service update`). `None`: the status stays.
fn update_started(service: &Service, task_changed: bool, rollback: bool) -> Option<UpdateStatus> {
    let now = objects::now_nanos();
    let status = |state: UpdateState, message: &str| UpdateStatus {
        state: state as i32,
        started_at: now,
        completed_at: 0,
        message: message.into(),
    };
    if rollback {
        return Some(status(
            UpdateState::RollbackStarted,
            "manually requested rollback",
        ));
    }
    let paused = service.update_status.as_ref().is_some_and(|u| {
        u.state == UpdateState::Paused as i32 || u.state == UpdateState::RollbackPaused as i32
    });
    (task_changed || paused).then(|| status(UpdateState::Updating, "update in progress"))
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
            .filter(|s| objects::service_name(s) == "web")
            .collect();
        assert_eq!(named.len(), 1, "{named:?}");
    }

    #[tokio::test]
    async fn secret_references_are_resolved_by_name_and_unknown_ones_refused() {
        use rswarm_proto::types::{SecretFileTarget, SecretReference, SecretSpec};
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let secret = super::super::secrets::create(
            &store,
            SecretSpec {
                annotations: Some(rswarm_proto::types::Annotations {
                    name: "pw".into(),
                    labels: Default::default(),
                }),
                data: b"hunter2".to_vec(),
            },
            false,
        )
        .await
        .expect("secret");
        let with = |name: &str| {
            let mut spec = web_spec();
            if let Some(c) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
                c.secrets.push(SecretReference {
                    secret_id: String::new(),
                    secret_name: name.into(),
                    file: Some(SecretFileTarget {
                        name: name.into(),
                        uid: "0".into(),
                        gid: "0".into(),
                        mode: 0o444,
                    }),
                });
            }
            spec
        };
        let e = create(&store, with("nosuch")).await.unwrap_err();
        assert!(
            matches!(&e, ManagerError::InvalidArgument(m) if m == "secret not found: nosuch"),
            "{e:?}"
        );
        let svc = create(&store, with("pw")).await.expect("service");
        let refs = svc
            .spec
            .and_then(|s| s.task)
            .and_then(|t| t.container)
            .map(|c| c.secrets)
            .unwrap_or_default();
        assert_eq!(refs[0].secret_id, secret.id);
        let e = super::super::stored_files::remove::<rswarm_proto::types::Secret>(&store, "pw")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ManagerError::InvalidArgument(m) if m == "secret 'pw' is in use by the following service: web"),
            "{e:?}"
        );
    }
}
