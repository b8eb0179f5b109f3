//! What never leaves the managers in a Control answer: the registry
//! credentials a service was created with (`--with-registry-auth`). They are
//! kept in the store and sent to the nodes with the tasks (the dispatcher),
//! but every service and task the Control API returns has them removed, as
//! Docker's API never shows them.

use rswarm_proto::types::{Service, ServiceSpec, Task, TaskSpec};

fn task_spec(t: &mut TaskSpec) {
    if let Some(c) = t.container.as_mut() {
        c.pull_options = None;
    }
}

fn service_spec(s: &mut ServiceSpec) {
    if let Some(t) = s.task.as_mut() {
        task_spec(t);
    }
}

/// A service without its registry credentials (spec and previous spec).
pub fn service(mut s: Service) -> Service {
    for spec in [s.spec.as_mut(), s.previous_spec.as_mut()]
        .into_iter()
        .flatten()
    {
        service_spec(spec);
    }
    s
}

/// A task without its registry credentials.
pub fn task(mut t: Task) -> Task {
    if let Some(spec) = t.spec.as_mut() {
        task_spec(spec);
    }
    t
}

/// The credentials of `old` kept in `new` when the update brings none, as
/// Docker does: a client reads the service without them (see [`service`]),
/// so an update that does not send new ones keeps the old.
pub fn keep_registry_auth(old: &ServiceSpec, new: &mut ServiceSpec) {
    let old_auth = old
        .task
        .as_ref()
        .and_then(|t| t.container.as_ref())
        .and_then(|c| c.pull_options.clone());
    if let Some(c) = new.task.as_mut().and_then(|t| t.container.as_mut()) {
        if c.pull_options.is_none() {
            c.pull_options = old_auth;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{ContainerSpec, PullOptions};

    fn spec(auth: Option<&str>) -> ServiceSpec {
        ServiceSpec {
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "reg:5000/app:1".into(),
                    pull_options: auth.map(|a| PullOptions {
                        registry_auth: a.into(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn auth_of(s: &Option<ServiceSpec>) -> Option<String> {
        s.as_ref()
            .and_then(|s| s.task.as_ref())
            .and_then(|t| t.container.as_ref())
            .and_then(|c| c.pull_options.as_ref())
            .map(|p| p.registry_auth.clone())
    }

    #[test]
    fn answers_carry_no_credentials() {
        let s = service(Service {
            spec: Some(spec(Some("c2VjcmV0"))),
            previous_spec: Some(spec(Some("b2xk"))),
            ..Default::default()
        });
        assert_eq!(auth_of(&s.spec), None);
        assert_eq!(auth_of(&s.previous_spec), None);
        let t = task(Task {
            spec: spec(Some("c2VjcmV0")).task,
            ..Default::default()
        });
        assert_eq!(
            t.spec
                .and_then(|s| s.container)
                .and_then(|c| c.pull_options),
            None
        );
    }

    #[test]
    fn an_update_without_credentials_keeps_the_old_ones() {
        let old = spec(Some("b2xk"));
        let mut new = spec(None);
        keep_registry_auth(&old, &mut new);
        assert_eq!(auth_of(&Some(new)), Some("b2xk".into()));
        let mut newer = spec(Some("bmV3"));
        keep_registry_auth(&old, &mut newer);
        assert_eq!(auth_of(&Some(newer)), Some("bmV3".into()));
    }
}
