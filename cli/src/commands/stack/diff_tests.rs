//! What a deploy creates, updates, leaves alone and removes, on plans made
//! from Compose text by the real loader and conversion, against clusters
//! made of the services and networks a previous deploy would have left.

use std::path::Path;

use rswarm_proto::types::{Meta, Network, Service, ServiceSpec, Version};

use super::*;
use crate::commands::stack::deploy::failure_report;
use crate::compose::{load, to_spec::plan, Source};

const TWO: &str = "services:
  web:
    image: busybox
    command: [httpd, -f]
  redis:
    image: busybox
    command: [sleep, '3600']
";

fn plan_of(stack: &str, text: &str) -> StackPlan {
    let sources = [Source {
        name: "app.yml".into(),
        text: text.into(),
    }];
    let loaded = load(&sources, Path::new("/srv/app"), None, &|_| None)
        .unwrap_or_else(|e| panic!("loads: {e:?}"));
    plan(&loaded.project, stack, "app.yml").unwrap_or_else(|e| panic!("plans: {e:?}"))
}

/// The services and networks a deploy of `text` as `stack` leaves behind.
fn deployed(stack: &str, text: &str) -> (Vec<Service>, Vec<Network>) {
    let p = plan_of(stack, text);
    let services = p
        .services
        .into_iter()
        .enumerate()
        .map(|(i, spec)| stored(&format!("{stack}-svc{i}"), spec, 7))
        .collect();
    let networks = p
        .networks
        .into_iter()
        .enumerate()
        .map(|(i, spec)| Network {
            id: format!("{stack}-net{i}"),
            spec: Some(spec),
            ..Default::default()
        })
        .collect();
    (services, networks)
}

fn stored(id: &str, spec: ServiceSpec, spec_version: u64) -> Service {
    Service {
        id: id.into(),
        meta: Some(Meta {
            spec_version: Some(Version {
                index: spec_version,
            }),
            ..Default::default()
        }),
        spec: Some(spec),
        ..Default::default()
    }
}

fn announced(c: &Changes) -> Vec<String> {
    c.actions.iter().map(Action::announce).collect()
}

fn diff_ok(p: &StackPlan, services: &[Service], networks: &[Network], prune: bool) -> Changes {
    diff(p, "shop", services, networks, prune).unwrap_or_else(|e| panic!("diffs: {e:?}"))
}

#[test]
fn a_first_deploy_creates_the_network_then_every_service_in_file_order() {
    let p = plan_of("shop", TWO);
    let c = diff_ok(&p, &[], &[], false);
    assert_eq!(
        announced(&c),
        [
            "Creating network shop_default",
            "Creating service shop_web",
            "Creating service shop_redis"
        ]
    );
    assert!(c.unchanged.is_empty());
}

#[test]
fn a_redeploy_of_the_same_file_changes_nothing() {
    let (services, networks) = deployed("shop", TWO);
    let c = diff_ok(&plan_of("shop", TWO), &services, &networks, true);
    assert!(c.actions.is_empty(), "{:?}", announced(&c));
    assert_eq!(
        c.unchanged,
        [
            ("shop-svc0".to_string(), "shop_web".to_string()),
            ("shop-svc1".to_string(), "shop_redis".to_string())
        ]
    );
}

#[test]
fn only_the_changed_service_is_updated_on_the_version_it_was_read_at() {
    let (services, networks) = deployed("shop", TWO);
    let edited = TWO.replace("[sleep, '3600']", "[sleep, '7200']");
    let p = plan_of("shop", &edited);
    let c = diff_ok(&p, &services, &networks, false);
    assert_eq!(
        announced(&c),
        ["Updating service shop_redis (id: shop-svc1)"]
    );
    match &c.actions[0] {
        Action::UpdateService {
            spec_version, spec, ..
        } => {
            assert_eq!(*spec_version, Some(Version { index: 7 }));
            assert_eq!(spec, &p.services[1]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.unchanged,
        [("shop-svc0".to_string(), "shop_web".to_string())]
    );
}

#[test]
fn prune_removes_the_stacks_services_the_file_dropped_and_nothing_else() {
    let (mut services, networks) = deployed("shop", TWO);
    // Another stack's service and a plain one, neither in this file.
    let (other, _) = deployed("blog", "services:\n  db:\n    image: busybox\n");
    services.extend(other);
    let plain = ServiceSpec {
        annotations: Some(rswarm_proto::types::Annotations {
            name: "plain".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    services.push(stored("plain-id", plain, 1));
    let only_web = "services:\n  web:\n    image: busybox\n    command: [httpd, -f]\n";
    let p = plan_of("shop", only_web);
    let c = diff_ok(&p, &services, &networks, true);
    assert_eq!(announced(&c), ["Removing service shop_redis"]);
    // Without --prune the dropped service stays.
    let c = diff_ok(&p, &services, &networks, false);
    assert!(c.actions.is_empty(), "{:?}", announced(&c));
}

#[test]
fn a_new_service_is_created_beside_the_existing_ones() {
    let (services, networks) = deployed("shop", TWO);
    let more = format!("{TWO}  worker:\n    image: busybox\n");
    let c = diff_ok(&plan_of("shop", &more), &services, &networks, false);
    assert_eq!(announced(&c), ["Creating service shop_worker"]);
}

#[test]
fn refusals_are_all_collected_before_anything_is_changed() {
    let (mut services, mut networks) = deployed("blog", "services:\n  web:\n    image: busybox\n");
    // Names the shop stack would take, owned by another stack or by none.
    for s in &mut services {
        if let Some(a) = s.spec.as_mut().and_then(|sp| sp.annotations.as_mut()) {
            a.name = "shop_web".into();
        }
    }
    for n in &mut networks {
        if let Some(a) = n.spec.as_mut().and_then(|sp| sp.annotations.as_mut()) {
            a.labels.clear();
            a.name = "shop_default".into();
        }
    }
    let text = "services:
  web:
    image: busybox
    networks: [default, outside]
networks:
  outside:
    external: true
";
    let errors = match diff(&plan_of("shop", text), "shop", &services, &networks, true) {
        Ok(c) => panic!("should fail: {:?}", announced(&c)),
        Err(e) => e,
    };
    assert_eq!(
        errors,
        [
            "network \"outside\" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed",
            "network shop_default already exists and is not part of stack shop",
            "service shop_web already exists and is not part of stack shop",
        ]
    );
}

#[test]
fn an_external_network_that_exists_is_used_not_created() {
    let text = "services:
  web:
    image: busybox
    networks: [outside]
networks:
  outside:
    external: true
";
    let outside = Network {
        id: "n1".into(),
        spec: Some(rswarm_proto::types::NetworkSpec {
            annotations: Some(rswarm_proto::types::Annotations {
                name: "outside".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c = diff_ok(&plan_of("shop", text), &[], &[outside], false);
    assert_eq!(announced(&c), ["Creating service shop_web"]);
}

#[test]
fn a_mode_change_is_refused_up_front() {
    let (services, networks) = deployed("shop", TWO);
    let global = TWO.replace(
        "[sleep, '3600']",
        "[sleep, '3600']\n    deploy:\n      mode: global",
    );
    let errors = match diff(
        &plan_of("shop", &global),
        "shop",
        &services,
        &networks,
        false,
    ) {
        Ok(c) => panic!("should fail: {:?}", announced(&c)),
        Err(e) => e,
    };
    assert_eq!(
        errors,
        ["service shop_redis runs in replicated mode and the file asks for global: a service's mode cannot change; remove the service (stack rm, or --prune after renaming it) and deploy again"]
    );
}

#[test]
fn a_deploy_that_fails_halfway_says_what_was_and_was_not_changed() {
    let (services, networks) = deployed("shop", TWO);
    let edited = format!(
        "{}  worker:\n    image: busybox\n",
        TWO.replace("[httpd, -f]", "[httpd, -f, -p, '81']")
    );
    let c = diff_ok(&plan_of("shop", &edited), &services, &networks, false);
    assert_eq!(c.actions.len(), 2);
    let e = anyhow::anyhow!("Error response from daemon: no space");
    assert_eq!(
        failure_report(&c.actions, 1, &e),
        [
            "failed to create service shop_worker: Error response from daemon: no space",
            "changed: updated service shop_web",
            "not changed: service shop_worker (create failed)",
        ]
    );
    assert_eq!(
        failure_report(&c.actions, 0, &e),
        [
            "failed to update service shop_web: Error response from daemon: no space",
            "changed: nothing",
            "not changed: service shop_web (update failed), service shop_worker (not created)",
        ]
    );
}
