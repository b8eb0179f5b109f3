//! What a deploy creates, updates, leaves alone and removes, on plans made
//! from Compose text by the real loader and conversion, against clusters
//! made of the services and networks a previous deploy would have left.

use std::path::Path;

use rswarm_proto::types::{Config, Meta, Network, Secret, Service, ServiceSpec, Version};

use super::*;
use crate::commands::stack::deploy::{add_registry_auth, failure_report};
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
    let cluster = Cluster {
        services,
        networks,
        ..Default::default()
    };
    diff(p, "shop", &cluster, prune).unwrap_or_else(|e| panic!("diffs: {e:?}"))
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
    let cluster = Cluster {
        services: &services,
        networks: &networks,
        ..Default::default()
    };
    let errors = match diff(&plan_of("shop", text), "shop", &cluster, true) {
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
    let cluster = Cluster {
        services: &services,
        networks: &networks,
        ..Default::default()
    };
    let errors = match diff(&plan_of("shop", &global), "shop", &cluster, false) {
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

/// A stack with a secret (from a variable), a config, and an external one
/// of each, used by both services.
const FILES: &str = "services:
  web:
    image: busybox
    command: [httpd, -f]
    secrets: [pw, {source: token, target: token.txt, mode: 0400}]
    configs: [{source: conf, target: /etc/web.conf}]
  worker:
    image: busybox
    secrets: [pw]
secrets:
  pw:
    environment: PW
  token:
    external: true
    name: team_token
configs:
  conf:
    content: 'listen 80'
  certs:
    external: true
";

fn plan_env(stack: &str, text: &str, pw: &str) -> StackPlan {
    let sources = [Source {
        name: "app.yml".into(),
        text: text.into(),
    }];
    let environ = |k: &str| (k == "PW").then(|| pw.to_string());
    let loaded = load(&sources, Path::new("/srv/app"), None, &environ)
        .unwrap_or_else(|e| panic!("loads: {e:?}"));
    plan(&loaded.project, stack, "app.yml").unwrap_or_else(|e| panic!("plans: {e:?}"))
}

fn secret(id: &str, spec: &rswarm_proto::types::SecretSpec) -> Secret {
    // Listed secrets come without their value.
    let mut spec = spec.clone();
    spec.data.clear();
    Secret {
        id: id.into(),
        spec: Some(spec),
        ..Default::default()
    }
}

fn config(id: &str, spec: &rswarm_proto::types::ConfigSpec) -> Config {
    Config {
        id: id.into(),
        spec: Some(spec.clone()),
        ..Default::default()
    }
}

fn named(name: &str) -> Option<rswarm_proto::types::Annotations> {
    Some(rswarm_proto::types::Annotations {
        name: name.into(),
        ..Default::default()
    })
}

/// What the cluster holds after a deploy of FILES as shop: the objects,
/// the external ones, and the services as the control API stored them
/// (references resolved to IDs).
fn deployed_files() -> (Vec<Service>, Vec<Network>, Vec<Secret>, Vec<Config>) {
    let p = plan_env("shop", FILES, "hunter2");
    let mut secrets = vec![secret("s-pw", &p.secrets[0])];
    secrets.push(Secret {
        id: "s-team".into(),
        spec: Some(rswarm_proto::types::SecretSpec {
            annotations: named("team_token"),
            data: vec![],
        }),
        ..Default::default()
    });
    let configs = vec![
        config("c-conf", &p.configs[0]),
        Config {
            id: "c-certs".into(),
            spec: Some(rswarm_proto::types::ConfigSpec {
                annotations: named("certs"),
                data: b"pem".to_vec(),
            }),
            ..Default::default()
        },
    ];
    let cluster = Cluster {
        secrets: &secrets,
        configs: &configs,
        ..Default::default()
    };
    let services = p
        .services
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            stored(
                &format!("shop-svc{i}"),
                super::diff_files::with_ids(spec, &cluster),
                3,
            )
        })
        .collect();
    let networks = vec![Network {
        id: "shop-net0".into(),
        spec: p.networks.first().cloned(),
        ..Default::default()
    }];
    (services, networks, secrets, configs)
}

#[test]
fn a_first_deploy_creates_secrets_and_configs_before_networks_and_services() {
    let p = plan_env("shop", FILES, "hunter2");
    let team = Secret {
        id: "s-team".into(),
        spec: Some(rswarm_proto::types::SecretSpec {
            annotations: named("team_token"),
            data: vec![],
        }),
        ..Default::default()
    };
    let certs = Config {
        id: "c-certs".into(),
        spec: Some(rswarm_proto::types::ConfigSpec {
            annotations: named("certs"),
            data: b"pem".to_vec(),
        }),
        ..Default::default()
    };
    let (secrets, configs) = (vec![team], vec![certs]);
    let cluster = Cluster {
        secrets: &secrets,
        configs: &configs,
        ..Default::default()
    };
    let c = diff(&p, "shop", &cluster, false).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        announced(&c),
        [
            "Creating secret shop_pw",
            "Creating config shop_conf",
            "Creating network shop_default",
            "Creating service shop_web",
            "Creating service shop_worker",
        ]
    );
    assert!(c.confirm_secrets.is_empty());
    // The created secret carries the value; the service refers to the
    // external secret by its ID, to the new one by name only.
    match &c.actions[0] {
        Action::CreateSecret(spec) => assert_eq!(spec.data, b"hunter2"),
        other => panic!("{other:?}"),
    }
    match &c.actions[3] {
        Action::CreateService(spec) => {
            let refs = &spec
                .task
                .as_ref()
                .and_then(|t| t.container.as_ref())
                .expect("container")
                .secrets;
            let ids: Vec<(&str, &str)> = refs
                .iter()
                .map(|r| (r.secret_name.as_str(), r.secret_id.as_str()))
                .collect();
            assert_eq!(ids, [("shop_pw", ""), ("team_token", "s-team")]);
        }
        other => panic!("{other:?}"),
    }
    let e = anyhow::anyhow!("Error response from daemon: no space");
    assert_eq!(
        failure_report(&c.actions, 1, &e),
        [
            "failed to create config shop_conf: Error response from daemon: no space",
            "changed: created secret shop_pw",
            "not changed: config shop_conf (create failed), network shop_default (not created), service shop_web (not created), service shop_worker (not created)",
        ]
    );
}

#[test]
fn missing_external_objects_are_refused_before_anything_is_created() {
    let p = plan_env("shop", FILES, "hunter2");
    let errors = match diff(&p, "shop", &Cluster::default(), false) {
        Ok(c) => panic!("should fail: {:?}", announced(&c)),
        Err(e) => e,
    };
    assert_eq!(
        errors,
        [
            "secret \"team_token\" is declared as external, but could not be found. You need to create the secret before the stack is deployed",
            "config \"certs\" is declared as external, but could not be found. You need to create the config before the stack is deployed",
        ]
    );
}

#[test]
fn a_redeploy_with_the_same_secrets_changes_nothing_and_asks_to_confirm_them() {
    let (services, networks, secrets, configs) = deployed_files();
    let cluster = Cluster {
        services: &services,
        networks: &networks,
        secrets: &secrets,
        configs: &configs,
    };
    let p = plan_env("shop", FILES, "hunter2");
    let c = diff(&p, "shop", &cluster, true).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(c.actions.is_empty(), "{:?}", announced(&c));
    assert_eq!(c.unchanged.len(), 2);
    // Only the control API sees a secret's value: it confirms this one.
    assert_eq!(c.confirm_secrets, [p.secrets[0].clone()]);
    // A changed secret value is the control API's to refuse; the plan is
    // the same but for the value.
    let changed = plan_env("shop", FILES, "other");
    let c = diff(&changed, "shop", &cluster, false).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(c.actions.is_empty(), "{:?}", announced(&c));
    assert_eq!(c.confirm_secrets[0].data, b"other");
}

#[test]
fn a_changed_config_or_a_name_of_another_stack_is_refused() {
    let (services, networks, mut secrets, configs) = deployed_files();
    let changed = FILES.replace("'listen 80'", "'listen 81'");
    let cluster = Cluster {
        services: &services,
        networks: &networks,
        secrets: &secrets,
        configs: &configs,
    };
    let errors = match diff(
        &plan_env("shop", &changed, "hunter2"),
        "shop",
        &cluster,
        false,
    ) {
        Ok(c) => panic!("should fail: {:?}", announced(&c)),
        Err(e) => e,
    };
    assert_eq!(
        errors,
        ["config shop_conf exists with another value or labels: a config cannot be updated in place; remove it first (its services too) or use a new name"]
    );
    // shop_pw held by a secret of no stack.
    if let Some(a) = secrets[0]
        .spec
        .as_mut()
        .and_then(|s| s.annotations.as_mut())
    {
        a.labels.clear();
    }
    let cluster = Cluster {
        services: &services,
        networks: &networks,
        secrets: &secrets,
        configs: &configs,
    };
    let errors = match diff(&plan_env("shop", FILES, "hunter2"), "shop", &cluster, false) {
        Ok(c) => panic!("should fail: {:?}", announced(&c)),
        Err(e) => e,
    };
    assert_eq!(
        errors,
        ["secret shop_pw already exists and is not part of stack shop"]
    );
}

#[test]
fn prune_removes_the_stacks_secrets_and_configs_the_file_dropped_after_the_services() {
    let (services, networks, mut secrets, mut configs) = deployed_files();
    // Another stack's secret, which nothing here may touch.
    let blog = plan_env(
        "blog",
        "services:\n  db:\n    image: busybox\nsecrets:\n  pw:\n    environment: PW\n",
        "x",
    );
    secrets.push(secret("s-blog", &blog.secrets[0]));
    configs.push(config(
        "c-old",
        &rswarm_proto::types::ConfigSpec {
            annotations: Some(rswarm_proto::types::Annotations {
                name: "shop_old".into(),
                labels: [(NAMESPACE_LABEL.to_string(), "shop".to_string())].into(),
            }),
            data: b"x".to_vec(),
        },
    ));
    let cluster = Cluster {
        services: &services,
        networks: &networks,
        secrets: &secrets,
        configs: &configs,
    };
    // The file without worker, without the secret: web no longer uses it.
    let text = "services:
  web:
    image: busybox
    command: [httpd, -f]
    secrets: [{source: token, target: token.txt, mode: 0400}]
    configs: [{source: conf, target: /etc/web.conf}]
secrets:
  token:
    external: true
    name: team_token
configs:
  conf:
    content: 'listen 80'
  certs:
    external: true
";
    let p = plan_env("shop", text, "hunter2");
    let c = diff(&p, "shop", &cluster, true).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        announced(&c),
        [
            "Removing service shop_worker",
            "Updating service shop_web (id: shop-svc0)",
            "Removing secret shop_pw",
            "Removing config shop_old",
        ]
    );
    let c = diff(&p, "shop", &cluster, false).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(announced(&c), ["Updating service shop_web (id: shop-svc0)"]);
}

#[test]
fn registry_credentials_go_with_every_service_but_do_not_make_a_change() {
    let (services, networks) = deployed("shop", TWO);
    let mut p = plan_of("shop", TWO);
    let asked = std::cell::RefCell::new(Vec::new());
    add_registry_auth(&mut p, |image| {
        asked.borrow_mut().push(image.to_string());
        Ok(Some(format!("auth-for-{image}")))
    })
    .expect("adds");
    assert_eq!(*asked.borrow(), ["busybox", "busybox"]);
    for s in &p.services {
        let auth = s
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .and_then(|c| c.pull_options.as_ref())
            .map(|o| o.registry_auth.as_str());
        assert_eq!(auth, Some("auth-for-busybox"));
    }
    // Stored services are answered without credentials: not a change.
    let c = diff_ok(&p, &services, &networks, false);
    assert!(c.actions.is_empty(), "{:?}", announced(&c));
    // A changed service is updated with them; a registry without
    // credentials gives none, and a failing lookup stops the deploy.
    let mut edited = plan_of("shop", &TWO.replace("3600", "7200"));
    add_registry_auth(&mut edited, |_| Ok(None)).expect("adds");
    assert!(edited.services.iter().all(|s| s
        .task
        .as_ref()
        .and_then(|t| t.container.as_ref())
        .is_some_and(|c| c.pull_options.is_none())));
    add_registry_auth(&mut edited, |i| Ok(Some(format!("a-{i}")))).expect("adds");
    let c = diff_ok(&edited, &services, &networks, false);
    match &c.actions[..] {
        [Action::UpdateService { spec, .. }] => assert_eq!(
            spec.task
                .as_ref()
                .and_then(|t| t.container.as_ref())
                .and_then(|c| c.pull_options.as_ref())
                .map(|o| o.registry_auth.as_str()),
            Some("a-busybox")
        ),
        other => panic!("{other:?}"),
    }
    let e = add_registry_auth(&mut edited, |_| {
        anyhow::bail!("config.json is not a JSON object")
    })
    .expect_err("fails");
    assert_eq!(e.to_string(), "config.json is not a JSON object");
}
