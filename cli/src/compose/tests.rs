//! The loader end to end on Compose texts: interpolation, `.env`, several
//! files, both syntaxes of every list key, the warning line, and errors
//! with their file and key path.

use std::collections::HashMap;
use std::path::Path;

use super::model::*;
use super::*;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn sources(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(name, text)| Source {
            name: name.to_string(),
            text: text.to_string(),
        })
        .collect()
}

fn load_in(
    dir: &Path,
    files: &[(&str, &str)],
    vars: &[(&str, &str)],
) -> Result<Loaded, Vec<String>> {
    load(&sources(files), dir, None, &env(vars))
}

fn ok(text: &str) -> Loaded {
    match load_in(Path::new("/nonexistent-dir"), &[("app.yml", text)], &[]) {
        Ok(l) => l,
        Err(e) => panic!("loads: {e:?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match load_in(Path::new("/nonexistent-dir"), &[("app.yml", text)], &[]) {
        Ok(_) => panic!("should fail: {text}"),
        Err(e) => e,
    }
}

#[test]
fn a_minimal_file_needs_no_version() {
    let l = ok("services:\n  web:\n    image: nginx\n");
    assert_eq!(l.project.services["web"].image, "nginx");
    assert!(l.warnings.is_empty());
}

#[test]
fn interpolation_from_the_environment_and_dotenv_with_the_environment_winning() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), "TAG=from-dotenv\nREPLICAS=3\n").expect("write .env");
    let text = "services:\n  web:\n    image: \"web:${TAG}\"\n    deploy:\n      replicas: ${REPLICAS}\n    environment:\n      HOME_DIR: $$HOME\n";
    let l = load_in(dir.path(), &[("app.yml", text)], &[]).expect("loads");
    let web = &l.project.services["web"];
    assert_eq!(web.image, "web:from-dotenv");
    assert_eq!(web.deploy.replicas, Some(3));
    assert_eq!(web.environment["HOME_DIR"], "$HOME");
    let l = load_in(dir.path(), &[("app.yml", text)], &[("TAG", "from-shell")]).expect("loads");
    assert_eq!(l.project.services["web"].image, "web:from-shell");
}

#[test]
fn an_explicit_env_file_replaces_dotenv_and_must_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("prod.env"), "TAG=prod\n").expect("write");
    let text = [("app.yml", "services: {web: {image: \"w:${TAG:-dev}\"}}")];
    let l = load(
        &sources(&text),
        dir.path(),
        Some(&dir.path().join("prod.env")),
        &env(&[]),
    )
    .expect("loads");
    assert_eq!(l.project.services["web"].image, "w:prod");
    let missing = dir.path().join("nope.env");
    let e = load(&sources(&text), dir.path(), Some(&missing), &env(&[]))
        .err()
        .expect("fails");
    assert!(e[0].starts_with(&missing.display().to_string()), "{e:?}");
}

#[test]
fn unset_variables_are_a_warning_and_required_ones_an_error() {
    let l = ok("services: {web: {image: \"w:${NOPE}\"}}");
    assert_eq!(l.project.services["web"].image, "w:");
    assert_eq!(
        l.warnings,
        vec!["The \"NOPE\" variable is not set. Defaulting to a blank string.".to_string()]
    );
    assert_eq!(
        errors("services: {web: {image: \"w:${TAG:?set TAG first}\"}}"),
        vec![
            "app.yml: services.web.image: required variable TAG is missing a value: set TAG first"
                .to_string()
        ]
    );
    assert_eq!(
        errors("services: {web: {image: \"w:${TAG\"}}"),
        vec!["app.yml: services.web.image: invalid interpolation format \"w:${TAG\" (write a literal $ as $$)".to_string()]
    );
}

#[test]
fn anchors_merge_keys_and_extension_fields() {
    let text = r#"
x-common: &common
  image: base:1
  environment:
    LEVEL: info
services:
  a:
    <<: *common
  b:
    <<: *common
    image: other:2
"#;
    let l = ok(text);
    assert_eq!(l.project.services["a"].image, "base:1");
    assert_eq!(l.project.services["a"].environment["LEVEL"], "info");
    assert_eq!(l.project.services["b"].image, "other:2");
}

#[test]
fn several_files_merge_in_order() {
    let base = "services:\n  web:\n    image: web:1\n    environment: [A=1, B=2]\n    ports: ['8080:80']\n";
    let over = "services:\n  web:\n    image: web:2\n    environment: {B: '3'}\n    ports: ['8443:443']\n  db:\n    image: pg\n";
    let l = load_in(
        Path::new("/x"),
        &[("app.yml", base), ("prod.yml", over)],
        &[],
    )
    .expect("loads");
    let web = &l.project.services["web"];
    assert_eq!(web.image, "web:2");
    assert_eq!(web.environment.get("A").map(String::as_str), Some("1"));
    assert_eq!(web.environment.get("B").map(String::as_str), Some("3"));
    assert_eq!(web.ports.len(), 2);
    assert!(l.project.services.contains_key("db"));
}

#[test]
fn an_override_file_without_image_is_fine_and_errors_name_their_file() {
    let base = "services: {web: {image: w}}";
    let over = "services: {web: {ports: ['80:abc']}}";
    let e = load_in(
        Path::new("/x"),
        &[("app.yml", base), ("over.yml", over)],
        &[],
    )
    .err()
    .expect("fails");
    assert_eq!(
        e,
        vec!["over.yml: services.web.ports[0]: invalid port \"80:abc\"".to_string()]
    );
}

#[test]
fn ports_in_both_syntaxes_and_ranges() {
    let text = r#"
services:
  web:
    image: w
    ports:
      - 80
      - "8080:80"
      - "9090-9091:8080-8081"
      - "53:53/udp"
      - target: 443
        published: 8443
        protocol: tcp
        mode: host
"#;
    let ports = ok(text).project.services["web"].ports.clone();
    let p = |target, published: Option<u16>, protocol: &str, mode: &str| Port {
        target,
        published,
        protocol: protocol.into(),
        mode: mode.into(),
    };
    assert_eq!(
        ports,
        vec![
            p(80, None, "tcp", "ingress"),
            p(80, Some(8080), "tcp", "ingress"),
            p(8080, Some(9090), "tcp", "ingress"),
            p(8081, Some(9091), "tcp", "ingress"),
            p(53, Some(53), "udp", "ingress"),
            p(443, Some(8443), "tcp", "host"),
        ]
    );
}

#[test]
fn volumes_in_both_syntaxes_and_tmpfs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"
services:
  web:
    image: w
    volumes:
      - data:/data
      - ./conf:/etc/conf:ro
      - /cache
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 64M}
    tmpfs: /run:size=1m,mode=1777
"#;
    let l = load_in(dir.path(), &[("app.yml", text)], &[]).expect("loads");
    let v = &l.project.services["web"].volumes;
    assert_eq!(v[0].kind, MountKind::Volume);
    assert_eq!(v[0].source.as_deref(), Some("data"));
    assert_eq!(v[1].kind, MountKind::Bind);
    assert_eq!(
        v[1].source.as_deref(),
        Some(dir.path().join("conf").to_str().expect("utf-8"))
    );
    assert!(v[1].read_only);
    assert_eq!(
        (v[2].source.as_deref(), v[2].target.as_str()),
        (None, "/cache")
    );
    assert_eq!(
        (v[3].kind.clone(), v[3].tmpfs_size.as_deref()),
        (MountKind::Tmpfs, Some("64M"))
    );
    assert_eq!(
        (
            v[4].target.as_str(),
            v[4].tmpfs_size.as_deref(),
            v[4].tmpfs_mode
        ),
        ("/run", Some("1m"), Some(0o1777))
    );
}

#[test]
fn secrets_and_configs_short_and_long_with_octal_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"
services:
  api:
    image: api
    secrets:
      - db_password
      - source: api_key
        target: key.txt
        uid: "100"
        mode: 0400
    configs:
      - source: nginx
        target: /etc/nginx.conf
        mode: "0444"
secrets:
  db_password: {file: ./db.txt}
  api_key: {external: true}
configs:
  nginx: {content: "server {}"}
"#;
    let l = load_in(dir.path(), &[("app.yml", text)], &[]).expect("loads");
    let api = &l.project.services["api"];
    assert_eq!(api.secrets[0].source, "db_password");
    assert_eq!(api.secrets[1].target.as_deref(), Some("key.txt"));
    assert_eq!(api.secrets[1].mode, Some(0o400));
    assert_eq!(api.configs[0].mode, Some(0o444));
    assert_eq!(
        l.project.secrets["db_password"].file.as_deref(),
        Some(dir.path().join("db.txt").to_str().expect("utf-8"))
    );
    assert_eq!(
        l.project.secrets["api_key"].external.as_deref(),
        Some("api_key")
    );
    assert_eq!(
        l.project.configs["nginx"].content.as_deref(),
        Some("server {}")
    );
}

#[test]
fn commands_split_like_a_shell_and_lists_stay() {
    let l = ok("services: {a: {image: i, command: \"sh -c 'echo hi'\", entrypoint: [\"/bin/x\", \"y z\"]}}");
    let a = &l.project.services["a"];
    assert_eq!(
        a.command,
        Some(vec!["sh".into(), "-c".into(), "echo hi".into()])
    );
    assert_eq!(a.entrypoint, Some(vec!["/bin/x".into(), "y z".into()]));
}

#[test]
fn env_file_entries_come_first_and_environment_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("web.env"), "A=from-file\nB=from-file\n").expect("write");
    let text = "services: {web: {image: w, env_file: web.env, environment: {B: inline}}}";
    let l = load_in(dir.path(), &[("app.yml", text)], &[]).expect("loads");
    let e = &l.project.services["web"].environment;
    assert_eq!((e["A"].as_str(), e["B"].as_str()), ("from-file", "inline"));
    let e = errors("services: {web: {image: w, env_file: missing.env}}");
    assert!(
        e[0].starts_with(
            "app.yml: services.web.env_file: cannot read /nonexistent-dir/missing.env"
        ),
        "{e:?}"
    );
}

#[test]
fn deploy_keys_are_read() {
    let text = r#"
services:
  web:
    image: w
    deploy:
      mode: replicated
      replicas: 2
      endpoint_mode: dnsrr
      labels: [tier=front]
      placement:
        constraints: [node.role==worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 1
      resources:
        limits: {cpus: '0.5', memory: 64M, pids: 100}
        reservations: {cpus: '0.1', memory: 16M}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 1m30s}
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, monitor: 5s, max_failure_ratio: 0.1, order: start-first}
      rollback_config: {parallelism: 0, order: stop-first}
"#;
    let d = ok(text).project.services["web"].deploy.clone();
    assert_eq!(d.mode.as_deref(), Some("replicated"));
    assert_eq!(d.replicas, Some(2));
    assert_eq!(d.endpoint_mode.as_deref(), Some("dnsrr"));
    assert_eq!(d.labels["tier"], "front");
    assert_eq!(d.constraints, vec!["node.role==worker".to_string()]);
    assert_eq!(d.preferences, vec!["node.labels.zone".to_string()]);
    assert_eq!(d.max_replicas_per_node, Some(1));
    assert_eq!(d.limits.memory.as_deref(), Some("64M"));
    assert_eq!(d.limits.pids, Some(100));
    assert_eq!(d.reservations.cpus.as_deref(), Some("0.1"));
    let rp = d.restart_policy.expect("restart policy");
    assert_eq!(
        (
            rp.condition.as_deref(),
            rp.max_attempts,
            rp.window.as_deref()
        ),
        (Some("on-failure"), Some(3), Some("1m30s"))
    );
    let u = d.update_config.expect("update config");
    assert_eq!(
        (
            u.parallelism,
            u.failure_action.as_deref(),
            u.max_failure_ratio,
            u.order.as_deref()
        ),
        (Some(2), Some("rollback"), Some(0.1), Some("start-first"))
    );
    assert_eq!(d.rollback_config.expect("rollback").parallelism, Some(0));
}

#[test]
fn compose_restart_becomes_a_restart_policy_unless_deploy_has_one() {
    let l = ok("services: {a: {image: i, restart: \"on-failure:4\"}}");
    let rp = l.project.services["a"]
        .deploy
        .restart_policy
        .clone()
        .expect("policy");
    assert_eq!(
        (rp.condition.as_deref(), rp.max_attempts),
        (Some("on-failure"), Some(4))
    );
    let l = ok(
        "services: {a: {image: i, restart: always, deploy: {restart_policy: {condition: none}}}}",
    );
    assert_eq!(
        l.project.services["a"]
            .deploy
            .restart_policy
            .clone()
            .expect("policy")
            .condition
            .as_deref(),
        Some("none")
    );
    assert_eq!(
        l.warnings,
        vec!["Ignoring unsupported options: restart".to_string()]
    );
}

#[test]
fn keys_swarm_ignores_are_one_warning_line_and_unknown_keys_errors() {
    let l = ok("services: {web: {image: w, build: ., links: [db], x-note: hi}, db: {image: d, container_name: db1}}");
    assert_eq!(
        l.warnings,
        vec!["Ignoring unsupported options: build, links, container_name".to_string()]
    );
    assert_eq!(
        errors("services: {web: {image: w, imagee: x}}\nvolumez: {}\n"),
        vec![
            "app.yml: (top level): unknown key \"volumez\"".to_string(),
            "app.yml: services.web: unknown key \"imagee\"".to_string(),
        ]
    );
}

#[test]
fn every_error_in_a_file_is_reported_with_its_path() {
    let text = r#"
services:
  web:
    ports: ["80:abc", {published: 8080}]
    deploy:
      replicas: many
      mode: sometimes
    healthcheck: {test: [RUN, x]}
    volumes: ["data:relative"]
  db:
    image: pg
    depends_on: {web: {condition: service_ready}}
secrets:
  s: {}
"#;
    assert_eq!(
        errors(text),
        vec![
            "app.yml: services.web: missing image (rswarm deploys images; build is not supported)",
            "app.yml: services.web.healthcheck.test: must start with CMD, CMD-SHELL or NONE, not \"RUN\"",
            "app.yml: services.web.ports[0]: invalid port \"80:abc\"",
            "app.yml: services.web.ports[1]: missing target",
            "app.yml: services.web.volumes[0]: invalid mount target \"relative\": must be an absolute path",
            "app.yml: services.web.deploy.mode: invalid value \"sometimes\" (expected one of: replicated, global, replicated-job, global-job)",
            "app.yml: services.web.deploy.replicas: must be a whole number ≥ 0, not \"many\"",
            "app.yml: services.db.depends_on.web.condition: invalid value \"service_ready\" (expected one of: service_started, service_healthy, service_completed_successfully)",
            "app.yml: secrets.s: a secret needs one of file, environment, or external",
        ]
    );
}

#[test]
fn yaml_syntax_errors_say_the_line() {
    let e = errors("services:\n  web:\n    image: [unclosed\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("app.yml: line "), "{e:?}");
    assert!(!e[0].contains("Error("), "{e:?}");
}

#[test]
fn depends_on_short_and_long() {
    let l = ok("services: {a: {image: i, depends_on: [b]}, b: {image: i, depends_on: {c: {condition: service_healthy}}}, c: {image: i}}");
    assert_eq!(
        l.project.services["a"].depends_on["b"].condition,
        "service_started"
    );
    assert_eq!(
        l.project.services["b"].depends_on["c"].condition,
        "service_healthy"
    );
}

#[test]
fn networks_with_aliases_and_top_level_objects() {
    let text = r#"
services:
  web: {image: w, networks: {front: {aliases: [www]}, back: }}
networks:
  front:
    driver: overlay
    attachable: true
    ipam: {config: [{subnet: 10.20.0.0/24}]}
  back: {external: true, name: shared-back}
volumes:
  data: {labels: {a: b}}
"#;
    let p = ok(text).project;
    assert_eq!(
        p.services["web"].networks["front"].aliases,
        vec!["www".to_string()]
    );
    assert!(p.networks["front"].attachable);
    assert_eq!(p.networks["front"].subnets[0].subnet, "10.20.0.0/24");
    assert_eq!(p.networks["back"].external.as_deref(), Some("shared-back"));
    assert_eq!(p.volumes["data"].labels["a"], "b");
}

#[test]
fn config_output_is_the_long_form_and_loads_back_the_same() {
    let text = r#"
services:
  web:
    image: w
    ports: ["8080:80"]
    volumes: ["data:/data:ro"]
    secrets: [s]
    environment: [A=1]
    deploy: {replicas: 2, placement: {constraints: [node.role==worker]}}
secrets:
  s: {external: true}
"#;
    let first = ok(text).project;
    let printed = to_yaml(&first);
    assert!(printed.contains("target: 80"), "{printed}");
    assert!(printed.contains("published: 8080"), "{printed}");
    let again = ok(&printed).project;
    assert_eq!(first, again);
}
