//! Secrets and configs of Compose files: the objects a stack creates (names,
//! labels, data from a file, a variable or inline content), the external
//! ones it looks up, the services' references with Docker's defaults, and
//! the refusals with their exact lines.

use std::path::Path;

use super::*;
use crate::compose::to_spec::{plan, StackPlan};
use crate::compose::{load, Source};

fn plan_in(dir: &Path, text: &str, env: &[(&str, &str)]) -> Result<StackPlan, Vec<String>> {
    let sources = [Source {
        name: "app.yml".into(),
        text: text.into(),
    }];
    let environ = |k: &str| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    };
    let loaded = load(&sources, dir, None, &environ)?;
    plan(&loaded.project, "shop", "app.yml")
}

fn label(a: &Option<Annotations>, key: &str) -> Option<String> {
    a.as_ref().and_then(|a| a.labels.get(key).cloned())
}

fn file(name: &str, uid: &str, gid: &str, mode: u32) -> Option<SecretFileTarget> {
    Some(SecretFileTarget {
        name: name.into(),
        uid: uid.into(),
        gid: gid.into(),
        mode,
    })
}

#[test]
fn top_level_objects_and_service_references_become_the_stacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("db_password.txt"), "s3cret\n").expect("write");
    std::fs::create_dir(dir.path().join("conf")).expect("mkdir");
    std::fs::write(dir.path().join("conf/nginx.conf"), "worker_processes 1;\n").expect("write");
    let p = plan_in(
        dir.path(),
        "services:
  db:
    image: busybox
    secrets:
      - db_password
      - source: api_key
        target: key.txt
        uid: '100'
        gid: '101'
        mode: 0440
      - {source: shared, mode: 288}
    configs:
      - nginx
      - source: motd
        target: /etc/motd
        mode: 0o400
secrets:
  db_password:
    file: ./db_password.txt
    labels: {tier: db}
  api_key:
    environment: API_KEY
  shared:
    external: true
    name: team_token
configs:
  nginx:
    file: conf/nginx.conf
    name: nginx-v1
  motd:
    content: hello
  certs:
    external: true
",
        &[("API_KEY", "k-123")],
    )
    .unwrap_or_else(|e| panic!("converts: {}", e.join("\n")));

    let names: Vec<&str> = p
        .secrets
        .iter()
        .filter_map(|s| s.annotations.as_ref().map(|a| a.name.as_str()))
        .collect();
    assert_eq!(names, ["shop_db_password", "shop_api_key"]);
    assert_eq!(p.secrets[0].data, b"s3cret\n");
    assert_eq!(p.secrets[1].data, b"k-123");
    assert_eq!(
        label(&p.secrets[0].annotations, NAMESPACE_LABEL).as_deref(),
        Some("shop")
    );
    assert_eq!(
        label(&p.secrets[0].annotations, "tier").as_deref(),
        Some("db")
    );
    assert_eq!(p.external_secrets, ["team_token"]);
    // An explicit name is used as it is (Compose's rule).
    let names: Vec<&str> = p
        .configs
        .iter()
        .filter_map(|s| s.annotations.as_ref().map(|a| a.name.as_str()))
        .collect();
    assert_eq!(names, ["nginx-v1", "shop_motd"]);
    assert_eq!(p.configs[0].data, b"worker_processes 1;\n");
    assert_eq!(p.configs[1].data, b"hello");
    assert_eq!(
        label(&p.configs[0].annotations, NAMESPACE_LABEL).as_deref(),
        Some("shop")
    );
    assert_eq!(p.external_configs, ["certs"]);

    let c = p.services[0]
        .task
        .clone()
        .and_then(|t| t.container)
        .expect("container");
    assert_eq!(
        c.secrets,
        [
            SecretReference {
                secret_id: String::new(),
                secret_name: "shop_db_password".into(),
                file: file("db_password", "0", "0", 0o444),
            },
            SecretReference {
                secret_id: String::new(),
                secret_name: "shop_api_key".into(),
                file: file("key.txt", "100", "101", 0o440),
            },
            SecretReference {
                secret_id: String::new(),
                secret_name: "team_token".into(),
                // A YAML number is the mode itself (Docker's reading).
                file: file("shared", "0", "0", 0o440),
            },
        ]
    );
    assert_eq!(
        c.configs,
        [
            ConfigReference {
                config_id: String::new(),
                config_name: "nginx-v1".into(),
                file: file("nginx", "0", "0", 0o444),
            },
            ConfigReference {
                config_id: String::new(),
                config_name: "shop_motd".into(),
                file: file("/etc/motd", "0", "0", 0o400),
            },
        ]
    );
}

#[test]
fn a_secret_file_is_taken_against_the_compose_files_folder_and_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("empty.txt"), "").expect("write");
    std::fs::write(dir.path().join("big.txt"), vec![b'x'; MAX_DATA_BYTES]).expect("write");
    std::fs::write(dir.path().join("ok.txt"), vec![b'x'; MAX_DATA_BYTES - 1]).expect("write");
    let d = dir.path().display();
    let e = plan_in(
        dir.path(),
        "services:
  db:
    image: busybox
secrets:
  missing: {file: ./nope.txt}
  empty: {file: ./empty.txt}
  big: {file: big.txt}
  fine: {file: ok.txt}
",
        &[],
    )
    .expect_err("refused");
    assert_eq!(
        e,
        [
            format!("app.yml: secrets.missing.file: cannot read {d}/nope.txt: No such file or directory (os error 2)"),
            format!("app.yml: secrets.empty.file: {d}/empty.txt is empty: a secret needs at least one byte"),
            format!("app.yml: secrets.big.file: {d}/big.txt is too large: a secret must be less than 500 KiB"),
        ]
    );
}

#[test]
fn mistakes_in_secrets_and_configs_name_their_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = "x".repeat(60);
    let e = plan_in(
        dir.path(),
        &format!(
            "services:
  web:
    image: busybox
    secrets: [pw, nope]
    configs:
      - source: conf
        target: /etc/app.conf
      - source: other
        target: /etc/app.conf
secrets:
  pw: {{external: true, labels: {{a: b}}}}
  {long}: {{content: x}}
configs:
  conf: {{content: one}}
  other: {{content: two}}
  bad:
    name: -bad
    content: x
  none: {{environment: UNSET}}
"
        ),
        &[],
    )
    .expect_err("refused");
    assert_eq!(
        e,
        [
            // The loader's own check: secrets take no inline content.
            format!("app.yml: secrets.{long}: unknown key \"content\""),
            "app.yml: configs.none.environment: environment variable UNSET is not set".to_string(),
        ]
    );
    let e = plan_in(
        dir.path(),
        &format!(
            "services:
  web:
    image: busybox
    secrets: [pw, nope]
    configs:
      - source: conf
        target: /etc/app.conf
      - source: other
        target: /etc/app.conf
secrets:
  pw: {{external: true, labels: {{a: b}}}}
  {long}: {{environment: HOME}}
configs:
  conf: {{content: one}}
  other: {{content: two}}
  bad:
    name: -bad
    content: x
"
        ),
        &[("HOME", "/root")],
    )
    .expect_err("refused");
    assert_eq!(
        e,
        [
            "app.yml: secrets.pw.labels: an external secret is used as it is: it cannot have labels".to_string(),
            format!("app.yml: secrets.{long}: invalid name \"shop_{long}\": only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"),
            "app.yml: configs.bad.name: invalid name \"-bad\": only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]".to_string(),
            "app.yml: services.web.secrets[1]: secret \"nope\" is not declared under the top-level secrets key".to_string(),
        ]
    );
    // Valid references, but two files at one target: the spec's own rule.
    let e = plan_in(
        dir.path(),
        "services:
  web:
    image: busybox
    configs:
      - source: conf
        target: /etc/app.conf
      - source: other
        target: /etc/app.conf
configs:
  conf: {content: one}
  other: {content: two}
",
        &[],
    )
    .expect_err("refused");
    assert_eq!(
        e,
        ["app.yml: services.web: config \"shop_other\": target /etc/app.conf is used more than once"]
    );
}
