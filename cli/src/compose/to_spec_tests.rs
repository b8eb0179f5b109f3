//! The conversion on a small corpus of Compose files: the spec fields each
//! key sets, the stack's names and labels, and the refusals with their
//! exact lines.

use std::path::Path;

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::ReplicatedService;

use super::*;
use crate::compose::{load, Source};

fn plan_of(text: &str) -> Result<StackPlan, Vec<String>> {
    let sources = [Source {
        name: "app.yml".into(),
        text: text.into(),
    }];
    let loaded = load(&sources, Path::new("/srv/app"), None, &|_| None)?;
    plan(&loaded.project, "shop", "app.yml")
}

fn ok(text: &str) -> StackPlan {
    match plan_of(text) {
        Ok(p) => p,
        Err(e) => panic!("converts: {e:?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match plan_of(text) {
        Ok(p) => panic!("should fail: {p:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_two_service_stack_gets_names_labels_and_the_default_network() {
    let p = ok("services:
  web:
    image: busybox
    command: [httpd, -f]
    ports: [\"8080:80\"]
  redis:
    image: registry:5000/redis:1
    deploy:
      replicas: 2
");
    assert_eq!(p.networks.len(), 1);
    let net = &p.networks[0];
    let a = net.annotations.clone().unwrap_or_default();
    assert_eq!(a.name, "shop_default");
    assert_eq!(
        a.labels.get(NAMESPACE_LABEL).map(String::as_str),
        Some("shop")
    );
    assert_eq!(net.driver, "overlay");
    assert!(p.external_networks.is_empty());
    let names: Vec<String> = p
        .services
        .iter()
        .map(|s| s.annotations.clone().unwrap_or_default().name)
        .collect();
    assert_eq!(names, ["shop_web", "shop_redis"]);
    let web = &p.services[0];
    let labels = web.annotations.clone().unwrap_or_default().labels;
    assert_eq!(
        labels.get(NAMESPACE_LABEL).map(String::as_str),
        Some("shop")
    );
    assert_eq!(labels.get(IMAGE_LABEL).map(String::as_str), Some("busybox"));
    let task = web.task.clone().unwrap_or_default();
    let c = task.container.clone().unwrap_or_default();
    assert_eq!(c.image, "busybox");
    assert_eq!(c.args, ["httpd", "-f"]);
    assert_eq!(task.networks.len(), 1);
    assert_eq!(task.networks[0].target, "shop_default");
    assert_eq!(task.networks[0].aliases, ["web"]);
    let ports = web.endpoint.clone().unwrap_or_default().ports;
    assert_eq!((ports[0].target_port, ports[0].published_port), (80, 8080));
    assert_eq!(
        p.services[1].mode,
        Some(Mode::Replicated(ReplicatedService { replicas: 2 }))
    );
}

#[test]
fn keys_become_the_same_fields_as_their_flags() {
    let p = ok("services:
  api:
    image: busybox
    entrypoint: [/bin/sh, -c]
    environment: {A: \"1\"}
    hostname: api-host
    user: \"1000\"
    working_dir: /app
    labels: {tier: api}
    volumes:
      - /data:/data:ro
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 64M}
    init: true
    read_only: true
    stop_grace_period: 1m30s
    stop_signal: SIGINT
    sysctls: {net.core.somaxconn: \"1024\"}
    ulimits: {nofile: {soft: 100, hard: 200}}
    cap_add: [NET_ADMIN]
    tty: true
    stdin_open: true
    networks:
      back:
        aliases: [api-alias]
    deploy:
      mode: global
      endpoint_mode: dnsrr
      labels: {svc: yes}
      placement:
        constraints: [node.role==manager]
        preferences: [{spread: node.labels.zone}]
      resources:
        limits: {cpus: \"0.5\", memory: 64M, pids: 100}
        reservations: {memory: 32M}
      restart_policy: {condition: on-failure, delay: 2s, max_attempts: 3, window: 10s}
networks:
  back:
    attachable: true
    ipam:
      config: [{subnet: 10.77.0.0/24}]
");
    assert_eq!(p.networks.len(), 1);
    let n = &p.networks[0];
    assert_eq!(n.annotations.clone().unwrap_or_default().name, "shop_back");
    assert!(n.attachable);
    assert_eq!(n.ipam[0].subnet, "10.77.0.0/24");
    let s = &p.services[0];
    assert!(matches!(s.mode, Some(Mode::Global(_))));
    let t = s.task.clone().unwrap_or_default();
    let c = t.container.clone().unwrap_or_default();
    assert_eq!(c.command, ["/bin/sh", "-c"]);
    assert_eq!(c.env, ["A=1"]);
    assert_eq!(
        (c.hostname.as_str(), c.user.as_str(), c.dir.as_str()),
        ("api-host", "1000", "/app")
    );
    assert_eq!(c.labels.get("tier").map(String::as_str), Some("api"));
    assert_eq!(c.mounts.len(), 2);
    assert_eq!(
        (c.mounts[0].source.as_str(), c.mounts[0].read_only),
        ("/data", true)
    );
    assert_eq!(c.mounts[1].tmpfs_size_bytes, 64 << 20);
    assert!(c.init && c.read_only && c.tty && c.open_stdin);
    assert_eq!(c.stop_grace_period_ns, 90_000_000_000);
    assert_eq!(c.stop_signal, "SIGINT");
    assert_eq!(
        c.sysctls.get("net.core.somaxconn").map(String::as_str),
        Some("1024")
    );
    assert_eq!((c.ulimits[0].soft, c.ulimits[0].hard), (100, 200));
    assert_eq!(c.cap_add, ["CAP_NET_ADMIN"]);
    assert_eq!(t.networks[0].target, "shop_back");
    assert_eq!(t.networks[0].aliases, ["api", "api-alias"]);
    let pl = t.placement.clone().unwrap_or_default();
    assert_eq!(pl.constraints, ["node.role==manager"]);
    assert_eq!(pl.preferences[0].spread_descriptor, "node.labels.zone");
    let r = t.resources.unwrap_or_default();
    let limits = r.limits.unwrap_or_default();
    assert_eq!(
        (limits.nano_cpus, limits.memory_bytes, limits.pids),
        (500_000_000, 64 << 20, 100)
    );
    assert_eq!(r.reservations.unwrap_or_default().memory_bytes, 32 << 20);
    let rp = t.restart.unwrap_or_default();
    assert_eq!(
        (rp.delay_ns, rp.max_attempts, rp.window_ns),
        (2_000_000_000, 3, 10_000_000_000)
    );
    let labels = s.annotations.clone().unwrap_or_default().labels;
    assert_eq!(labels.get("svc").map(String::as_str), Some("yes"));
}

#[test]
fn external_networks_are_looked_up_not_created() {
    let p = ok("services:
  web:
    image: busybox
    networks: [front]
networks:
  front:
    external: true
    name: shared-front
");
    assert!(p.networks.is_empty());
    assert_eq!(p.external_networks, ["shared-front"]);
    let t = p.services[0].task.clone().unwrap_or_default();
    assert_eq!(t.networks[0].target, "shared-front");
}

#[test]
fn what_cannot_be_honoured_yet_is_refused_with_its_key_path() {
    let e = errors(
        "services:
  web:
    image: busybox
    secrets: [pw]
    configs: [conf]
    healthcheck: {test: [CMD, true]}
    depends_on: [db]
    volumes: [data:/data]
    deploy:
      update_config: {parallelism: 2}
      resources: {reservations: {pids: 5}}
  db:
    image: busybox
secrets:
  pw: {external: true}
configs:
  conf: {content: x}
volumes:
  data: {}
",
    );
    // Secrets, configs and update_config are honoured: only the rest.
    assert_eq!(
        e,
        ["app.yml: services.web.deploy.resources.reservations: unknown key \"pids\"",]
    );
}

#[test]
fn update_and_rollback_configs_are_the_same_spec_as_their_flags() {
    use crate::servicespec::flags::tests::{no_env, Create};
    use crate::servicespec::flags::{read_local_file, LocalInputs};
    use clap::Parser;
    let p = ok("services:
  web:
    image: busybox
    deploy:
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, monitor: 1s, max_failure_ratio: 0.5, order: start-first}
      rollback_config: {parallelism: 0, order: start-first}
");
    let line = "--update-parallelism 2 --update-delay 10s --update-failure-action rollback --update-monitor 1s --update-max-failure-ratio 0.5 --update-order start-first --rollback-parallelism 0 --rollback-order start-first busybox";
    let create = Create::try_parse_from(std::iter::once("create").chain(line.split_whitespace()))
        .unwrap_or_else(|e| panic!("{e}"));
    let local = LocalInputs {
        env: &no_env,
        read_file: &read_local_file,
        cwd: Path::new("/").to_path_buf(),
    };
    let flags = create
        .flags
        .to_spec_with("busybox", &[], &local)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.services[0].update, flags.update);
    assert_eq!(p.services[0].rollback, flags.rollback);
    assert_eq!(p.services[0].update.map(|u| u.parallelism), Some(2));
    let e = errors("services:\n  web:\n    image: busybox\n    deploy:\n      rollback_config: {failure_action: rollback, delay: soon}\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(
            "app.yml: services.web.deploy.rollback_config.delay: invalid value \"soon\""
        ),
        "{e:?}"
    );
}

/// Every stack in stack-examples/ plans as it is, with the files beside it.
#[test]
fn every_stack_example_plans() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack-examples");
    let mut planned = Vec::new();
    let dirs = std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    for entry in dirs {
        let dir = entry.expect("entry").path();
        let file = dir.join("app.yml");
        if !file.is_file() {
            continue;
        }
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let sources = [Source {
            name: name.clone(),
            text,
        }];
        let loaded = load(&sources, &dir, None, &|_| None)
            .unwrap_or_else(|e| panic!("{name}: {}", e.join("\n")));
        let p = plan(&loaded.project, "example", &name)
            .unwrap_or_else(|e| panic!("{name}: {}", e.join("\n")));
        assert!(!p.services.is_empty(), "{name}");
        planned.push((
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string(),
            p,
        ));
    }
    assert!(planned.len() >= 4, "the examples: {}", planned.len());
    let (_, three) = planned
        .iter()
        .find(|(d, _)| d == "three-tier")
        .expect("the three-tier example");
    assert_eq!(three.secrets.len(), 1);
    let s = &three.secrets[0];
    assert_eq!(
        s.annotations.as_ref().map(|a| a.name.as_str()),
        Some("example_db_password")
    );
    let on_disk = std::fs::read(root.join("three-tier/db_password.txt")).expect("password file");
    assert_eq!(s.data, on_disk);
    let api = three
        .services
        .iter()
        .find(|s| {
            s.annotations
                .as_ref()
                .is_some_and(|a| a.name == "example_api")
        })
        .and_then(|s| s.task.clone())
        .and_then(|t| t.container)
        .expect("api");
    assert_eq!(api.secrets.len(), 1);
    assert_eq!(api.secrets[0].secret_name, "example_db_password");
    assert_eq!(api.secrets[0].file.as_ref().map(|f| f.mode), Some(0o400));
}

#[test]
fn bad_values_name_their_key() {
    let e = errors(
        "services:
  web:
    image: busybox
    stop_grace_period: soon
    networks: [nowhere]
    deploy:
      mode: global
      replicas: 2
      resources:
        limits: {memory: 64X}
",
    );
    assert_eq!(
        e,
        [
            "app.yml: services.web.networks.nowhere: network nowhere is not declared under the top-level networks key",
            "app.yml: services.web.deploy: replicas can only be used with replicated or replicated-job mode",
            "app.yml: services.web.deploy.resources.limits.memory: invalid value \"64X\": invalid size: '64X'",
            "app.yml: services.web.stop_grace_period: invalid value \"soon\": invalid duration \"soon\"",
        ]
    );
}

#[test]
fn a_disabled_healthcheck_is_the_flag_no_healthcheck() {
    let p = ok("services:\n  web:\n    image: busybox\n    healthcheck: {disable: true}\n");
    let c = p.services[0]
        .task
        .clone()
        .unwrap_or_default()
        .container
        .unwrap_or_default();
    assert_eq!(
        c.healthcheck.map(|h| h.test),
        Some(vec!["NONE".to_string()])
    );
}

#[test]
fn a_healthcheck_is_the_same_spec_as_the_health_flags() {
    let p = ok("services:
  web:
    image: busybox
    healthcheck:
      test: wget -q -O- localhost
      interval: 2s
      timeout: 1s
      retries: 5
      start_period: 10s
      start_interval: 1s
  api:
    image: busybox
    healthcheck:
      test: [CMD, /bin/check, --quick]
");
    let health = |i: usize| {
        p.services[i]
            .task
            .clone()
            .unwrap_or_default()
            .container
            .unwrap_or_default()
            .healthcheck
            .unwrap_or_default()
    };
    // What `--health-cmd 'wget -q -O- localhost' --health-interval 2s
    // --health-timeout 1s --health-retries 5 --health-start-period 10s
    // --health-start-interval 1s` gives.
    let expected = rswarm_proto::types::HealthConfig {
        test: vec!["CMD-SHELL".into(), "wget -q -O- localhost".into()],
        interval_ns: 2_000_000_000,
        timeout_ns: 1_000_000_000,
        start_period_ns: 10_000_000_000,
        retries: 5,
        start_interval_ns: 1_000_000_000,
    };
    assert_eq!(health(0), expected);
    assert_eq!(health(1).test, ["CMD", "/bin/check", "--quick"]);
    let e = errors(
        "services:\n  web:\n    image: busybox\n    healthcheck: {test: true, interval: often}\n",
    );
    assert_eq!(
        e,
        ["app.yml: services.web.healthcheck.interval: invalid value \"often\": invalid duration \"often\""]
    );
}

#[test]
fn a_bad_stack_name_is_refused() {
    let sources = [Source {
        name: "app.yml".into(),
        text: "services:\n  web:\n    image: busybox\n".into(),
    }];
    let loaded =
        load(&sources, Path::new("/srv"), None, &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
    let e = plan(&loaded.project, "-bad", "app.yml")
        .err()
        .unwrap_or_default();
    assert_eq!(
        e,
        ["invalid stack name \"-bad\": a stack name must be valid as a DNS name component"]
    );
}

#[test]
fn depends_on_orders_services_and_names_their_dependencies() {
    use rswarm_proto::types::service_dependency::Condition;
    let p = ok("services:
  web:
    image: busybox
    depends_on:
      api: {condition: service_healthy}
  api:
    image: busybox
    depends_on:
      migrate: {condition: service_completed_successfully}
      cache: {required: false}
  migrate:
    image: busybox
    deploy: {mode: replicated-job}
");
    let names: Vec<&str> = p
        .services
        .iter()
        .map(|s| {
            s.annotations
                .as_ref()
                .map(|a| a.name.as_str())
                .unwrap_or("")
        })
        .collect();
    assert_eq!(names, ["shop_migrate", "shop_api", "shop_web"]);
    let deps = |i: usize| -> Vec<(String, Condition)> {
        p.services[i]
            .depends_on
            .iter()
            .map(|d| (d.service.clone(), d.condition()))
            .collect()
    };
    assert_eq!(deps(0), []);
    assert_eq!(
        deps(1),
        [("shop_migrate".to_string(), Condition::CompletedSuccessfully)],
        "the optional cache that is not in the file is skipped"
    );
    assert_eq!(deps(2), [("shop_api".to_string(), Condition::Healthy)]);
}

#[test]
fn depends_on_mistakes_name_their_key() {
    let e = errors(
        "services:
  a:
    image: busybox
    depends_on:
      b: {condition: service_completed_successfully}
      ghost: {}
      c: {restart: true}
  b:
    image: busybox
  c:
    image: busybox
",
    );
    assert_eq!(
        e,
        [
            "app.yml: services.a.depends_on.b.condition: service_completed_successfully needs b to be a job (deploy.mode: replicated-job or global-job); a service that is not a job never completes",
            "app.yml: services.a.depends_on.ghost: service ghost is not defined in this file (a stack's services can only depend on each other)",
            "app.yml: services.a.depends_on.c.restart: not supported: rswarm does not restart a service when its dependency is updated",
        ]
    );
    let cycle = errors(
        "services:
  a: {image: busybox, depends_on: [b]}
  b: {image: busybox, depends_on: [c]}
  c: {image: busybox, depends_on: [a]}
",
    );
    assert_eq!(
        cycle,
        ["app.yml: services.a.depends_on: dependency cycle: a -> b -> c -> a"]
    );
}
