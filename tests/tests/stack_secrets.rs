//! Secrets and configs of stacks end to end on a 2-host cluster (a manager
//! and a worker) with a registry the test starts. A stack `vault` makes the
//! secret `team_token` (an explicit `name:`, so not namespaced); the stack
//! `shop` has a file secret, a file config and uses `team_token` as an
//! external secret.
//!
//! - `the_stacks_objects_are_created_checked_pruned_and_removed`: missing
//!   external objects and bad files are refused before anything is created;
//!   a deploy creates the stack's secrets and configs first ("Creating
//!   secret shop_db_password"), a redeploy of the same files changes
//!   nothing, a changed secret or config file is refused with nothing
//!   changed, `--prune` removes what the file dropped, and `stack rm`
//!   removes them after the services.
//! - `services_read_their_secrets_and_configs`: the services of the stack
//!   (one task on each host) read the secret at /run/secrets/<name>, the
//!   external one at its target with its mode, and the config at its
//!   target; the external secret cannot be removed with its stack while
//!   the other stack uses it. This needs nodes that mount secrets and
//!   configs (until then the control API refuses such services).

use std::path::Path;
use std::time::Duration;

use rswarm_tests::lists::{parse_tasks, TASK_FORMAT};
use rswarm_tests::{Cluster, Host};

/// How long a deploy that waits for its services may take.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(150);

const PASSWORD: &str = "correct horse battery staple\n";
const TOKEN: &str = "t0k3n";
const APP_CONF: &str = "listen 8080\n";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.display().to_string()
}

/// The stack that owns `team_token`.
fn vault(image: &str) -> String {
    format!(
        "services:
  idle:
    image: \"{image}\"
    command: [sleep, '3600']
secrets:
  token:
    name: team_token
    file: ./token.txt
"
    )
}

/// The shop stack; `use_files` makes its service use the secrets and the
/// config (else they are only the stack's objects).
fn shop(image: &str, use_files: bool, with_config: bool) -> String {
    let mut text = format!(
        "services:
  app:
    image: \"{image}\"
    command: [sleep, '3600']
    deploy:
      mode: global
"
    );
    if use_files {
        text.push_str(
            "    secrets:
      - db_password
      - source: team_token
        target: token
        mode: 0400
",
        );
        if with_config {
            text.push_str(
                "    configs:
      - source: app_conf
        target: /etc/app.conf
",
            );
        }
    }
    text.push_str(
        "secrets:
  db_password:
    file: ./db_password.txt
  team_token:
    external: true
",
    );
    if with_config {
        text.push_str(
            "configs:
  app_conf:
    file: ./app.conf
",
        );
    }
    text
}

fn stacks(h: &Host) -> String {
    h.ok(&["stack", "ls"])
}

#[test]
fn the_stacks_objects_are_created_checked_pruned_and_removed() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    let dir = cluster.dir();
    write(dir, "db_password.txt", PASSWORD);
    write(dir, "token.txt", TOKEN);
    write(dir, "app.conf", APP_CONF);
    let shop_yml = write(dir, "shop.yml", &shop(&image, false, true));

    // The external secret does not exist yet: nothing is created.
    let out = h1.rswarm(&["stack", "deploy", "-c", &shop_yml, "shop"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr,
        "secret \"team_token\" is declared as external, but could not be found. You need to create the secret before the stack is deployed\n",
        "{out}"
    );
    // Bad files: every line, exit 1, nothing created.
    let bad = write(
        dir,
        "bad.yml",
        &format!(
            "services:\n  app:\n    image: \"{image}\"\n    secrets: [nope]\nsecrets:\n  gone:\n    file: ./missing.txt\n"
        ),
    );
    let out = h1.rswarm(&["stack", "deploy", "-c", &bad, "shop"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "{bad}: secrets.gone.file: cannot read {}/missing.txt: No such file or directory (os error 2)\n\
             {bad}: services.app.secrets[0]: secret \"nope\" is not declared under the top-level secrets key\n",
            dir.display()
        ),
        "{out}"
    );
    assert_eq!(stacks(h1), "NAME      SERVICES\n");

    // vault makes team_token, under the name it was given.
    let vault_yml = write(dir, "vault.yml", &vault(&image));
    let out = h1.rswarm(&["stack", "deploy", "-c", &vault_yml, "vault"]);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout,
        "Creating secret team_token\nCreating network vault_default\nCreating service vault_idle\n",
        "{out}"
    );

    // Now shop deploys: its secret and config first.
    let out = h1.rswarm(&["stack", "deploy", "-c", &shop_yml, "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout,
        "Creating secret shop_db_password\nCreating config shop_app_conf\nCreating network shop_default\nCreating service shop_app\n",
        "{out}"
    );
    // The same files again: nothing to do.
    let out = h1.rswarm(&["stack", "deploy", "-c", &shop_yml, "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "", "{out}");

    // A changed secret file: refused as Docker does, nothing changed; the
    // value is not in the error.
    write(dir, "db_password.txt", "another password\n");
    let out = h1.rswarm(&["stack", "deploy", "-c", &shop_yml, "shop"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr,
        "Error response from daemon: secret shop_db_password exists with another value or labels: a secret cannot be updated in place; remove it first (its services too) or use a new name\n",
        "{out}"
    );
    assert!(!out.stderr.contains("another password"), "{out}");
    write(dir, "db_password.txt", PASSWORD);
    // A changed config file, likewise.
    write(dir, "app.conf", "listen 9090\n");
    let out = h1.rswarm(&["stack", "deploy", "-c", &shop_yml, "shop"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr,
        "config shop_app_conf exists with another value or labels: a config cannot be updated in place; remove it first (its services too) or use a new name\n",
        "{out}"
    );
    write(dir, "app.conf", APP_CONF);
    let out = h1.rswarm(&["stack", "deploy", "-c", &shop_yml, "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "", "{out}");

    // --prune: the config the file dropped goes; without --prune it stays.
    let no_config = write(dir, "shop2.yml", &shop(&image, false, false));
    let out = h1.rswarm(&["stack", "deploy", "-c", &no_config, "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    let out = h1.rswarm(&["stack", "deploy", "-c", &no_config, "--prune", "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "Removing config shop_app_conf\n", "{out}");
    // It is gone: deploying the first file creates it again.
    let out = h1.rswarm(&["stack", "deploy", "-c", &shop_yml, "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "Creating config shop_app_conf\n", "{out}");

    // stack rm: services, then secrets, configs, networks; only the
    // stack's: team_token belongs to vault.
    let out = h1.rswarm_timeout(&["stack", "rm", "shop"], DEPLOY_TIMEOUT);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout,
        "Removing service shop_app\nRemoving secret shop_db_password\nRemoving config shop_app_conf\nRemoving network shop_default\n",
        "{out}"
    );
    assert_eq!(stacks(h1), "NAME      SERVICES\nvault     1\n");
    let out = h1.rswarm_timeout(&["stack", "rm", "vault"], DEPLOY_TIMEOUT);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout,
        "Removing service vault_idle\nRemoving secret team_token\nRemoving network vault_default\n",
        "{out}"
    );
    let out = h1.rswarm(&["stack", "rm", "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stderr, "Nothing found in stack: shop\n", "{out}");
    // team_token went with vault: shop is refused again.
    let out = h1.rswarm(&["stack", "deploy", "-c", &shop_yml, "shop"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .starts_with("secret \"team_token\" is declared as external, but could not be found"),
        "{out}"
    );
    assert_eq!(stacks(h1), "NAME      SERVICES\n");
}

/// `cat`'s output of `path` in `task`, or the failure.
fn read_in_task(h: &Host, task: &str, path: &str) -> String {
    let out = h.rswarm(&["exec", task, "cat", path]);
    assert!(out.success(), "cat {path} in {task}: {out}");
    out.stdout
}

#[test]
fn services_read_their_secrets_and_configs() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    let dir = cluster.dir();
    write(dir, "db_password.txt", PASSWORD);
    write(dir, "token.txt", TOKEN);
    write(dir, "app.conf", APP_CONF);
    let vault_yml = write(dir, "vault.yml", &vault(&image));
    h1.ok(&["stack", "deploy", "-c", &vault_yml, "vault"]);
    let shop_yml = write(dir, "shop.yml", &shop(&image, true, true));
    let out = h1.rswarm_timeout(
        &["stack", "deploy", "-c", &shop_yml, "--detach=false", "shop"],
        DEPLOY_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.starts_with(
            "Creating secret shop_db_password\nCreating config shop_app_conf\nCreating network shop_default\nCreating service shop_app\n"
        ),
        "{out}"
    );

    // One task on each host, each with the files.
    let tasks: Vec<String> = parse_tasks(&h1.ok(&[
        "stack",
        "ps",
        "shop",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        TASK_FORMAT,
    ]))
    .into_iter()
    .filter(|t| t.is_running())
    .map(|t| t.id)
    .collect();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    for task in &tasks {
        assert_eq!(read_in_task(h1, task, "/run/secrets/db_password"), PASSWORD);
        assert_eq!(read_in_task(h1, task, "/run/secrets/token"), TOKEN);
        assert_eq!(read_in_task(h1, task, "/etc/app.conf"), APP_CONF);
        let out = h1.rswarm(&["exec", task, "stat", "-c", "%a %u", "/run/secrets/token"]);
        assert_eq!(out.stdout.trim(), "400 0", "{out}");
        let out = h1.rswarm(&["exec", task, "stat", "-c", "%a", "/run/secrets/db_password"]);
        assert_eq!(out.stdout.trim(), "444", "{out}");
    }

    // vault's secret is used by shop: vault's rm says so and keeps it.
    let out = h1.rswarm_timeout(&["stack", "rm", "vault"], DEPLOY_TIMEOUT);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(
        out.stdout,
        "Removing service vault_idle\nRemoving secret team_token\nRemoving network vault_default\n",
        "{out}"
    );
    assert_eq!(
        out.stderr,
        "Failed to remove secret team_token: Error response from daemon: secret 'team_token' is in use by the following service: shop_app\n\
         failed to remove some resources from stack: vault\n",
        "{out}"
    );
    let out = h1.rswarm_timeout(&["stack", "rm", "shop", "vault"], DEPLOY_TIMEOUT);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout,
        "Removing service shop_app\nRemoving secret shop_db_password\nRemoving config shop_app_conf\nRemoving network shop_default\n\
         Removing secret team_token\n",
        "{out}"
    );
    assert_eq!(h1.ok(&["stack", "ls"]), "NAME      SERVICES\n");
}
