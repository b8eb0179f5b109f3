//! Secrets and configs end to end on three hosts (host1 manages, host2 and
//! host3 work) with real runc containers: secrets created from a file and
//! from standard input, listed and inspected without their value; a service
//! reading them at /run/secrets/<target> and a config at its target path,
//! each with the uid, gid and mode asked for; the values only in memory on
//! the node running the task (its data dir holds them only on that task's
//! tmpfs; every other host's data dir and every daemon log: nowhere, the
//! manager's encrypted store included); after the worker's daemon restarts
//! the running task keeps its files and a new task there gets them again;
//! a secret in use cannot be removed, and can once its service is gone;
//! nothing stays mounted.

use std::path::Path;
use std::time::Duration;

use rswarm_tests::lists::{wait_tasks, Task};
use rswarm_tests::{wait_for, Cluster, Host};

/// Image pull, scheduling and runc on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// The values: distinctive, so a search for them finds only them.
const FILE_SECRET: &str = "s3cr3t-from-file-7d1e9a4b";
const STDIN_SECRET: &str = "s3cr3t-from-stdin-2c8e5f07";
const CONFIG: &str = "listen 8080 # app-config-5a3b";

/// The paths under `dir` (and in `log`) whose content holds `value`.
fn holders(host: &Host, dir: &Path, value: &str) -> Vec<String> {
    let out = host.exec(&[
        "grep",
        "-rlsaF",
        "-D",
        "skip",
        "--",
        value,
        &dir.display().to_string(),
    ]);
    out.stdout.lines().map(String::from).collect()
}

/// Whether the file at `path` is on a tmpfs.
fn on_tmpfs(host: &Host, path: &str) -> bool {
    host.exec_ok(&["stat", "-f", "-c", "%T", path]).trim() == "tmpfs"
}

/// Mount points under `dir` (the test process shares the daemons' mounts).
fn mounts_under(dir: &Path) -> Vec<String> {
    rswarm_tests::mounts_under(dir)
        .unwrap_or_else(|e| panic!("reading mountinfo: {e}"))
        .iter()
        .map(|m| m.display().to_string())
        .collect()
}

/// The running tasks of `service`, once there are `want`.
fn running(h1: &Host, service: &str, want: usize) -> Vec<Task> {
    wait_tasks(
        h1,
        service,
        CONVERGE,
        &format!("{want} {service} running"),
        |t| t.iter().filter(|t| t.is_running()).count() == want,
    )
    .into_iter()
    .filter(|t| t.is_running())
    .collect()
}

/// `rswarm exec TASK cat PATH`, once the task answers (right after a daemon
/// restart its node may not serve exec yet).
fn cat(h1: &Host, task: &str, path: &str) -> String {
    wait_for(CONVERGE, &format!("{path} in {task}"), || {
        let out = h1.rswarm(&["exec", task, "cat", path]);
        out.success().then_some(out.stdout)
    })
}

#[test]
fn secrets_and_configs_reach_only_their_tasks_in_memory() {
    let cluster = Cluster::with_registry(3).expect("three hosts and a registry");
    cluster
        .init_swarm(1, 2)
        .expect("a swarm of one manager and two workers");
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    let image = cluster.registry().busybox();

    // From a file (outside every data dir) and from standard input.
    let file = cluster.dir().join("db_pw.txt");
    std::fs::write(&file, FILE_SECRET).expect("secret file");
    let id = h1.ok(&[
        "secret",
        "create",
        "--label",
        "env=test",
        "db_pw",
        &file.display().to_string(),
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 25, "the ID is printed: {id:?}");
    let piped = format!(
        "printf %s {STDIN_SECRET} | {} -H unix://{} secret create api_key -",
        h1.binary().display(),
        h1.socket().display()
    );
    let stdin_id = h1.exec_ok(&["sh", "-c", &piped]);
    assert_eq!(stdin_id.trim().len(), 25, "{stdin_id:?}");
    let conf = cluster.dir().join("app.conf");
    std::fs::write(&conf, CONFIG).expect("config file");
    h1.ok(&["config", "create", "app_conf", &conf.display().to_string()]);

    // Listed and inspected, never with a value.
    let ls = h1.ok(&["secret", "ls"]);
    let mut lines = ls.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(head, ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"], "{ls}");
    let names: Vec<&str> = lines.filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(names, ["api_key", "db_pw"], "{ls}");
    assert_eq!(
        h1.ok(&["secret", "ls", "-q", "--filter", "name=db"]).trim(),
        id
    );
    let inspect = h1.ok(&["secret", "inspect", "db_pw"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect is JSON");
    assert_eq!(v[0]["ID"], id.as_str(), "{inspect}");
    assert_eq!(v[0]["Spec"]["Name"], "db_pw", "{inspect}");
    assert_eq!(v[0]["Spec"]["Labels"]["env"], "test", "{inspect}");
    assert!(v[0]["Spec"].get("Data").is_none(), "{inspect}");
    let pretty = h1.ok(&["secret", "inspect", "--pretty", "api_key", "db_pw"]);
    for out in [&ls, &inspect, &pretty] {
        assert!(
            !out.contains(FILE_SECRET) && !out.contains(STDIN_SECRET),
            "{out}"
        );
    }
    assert!(
        h1.ok(&["config", "inspect", "--pretty", "app_conf"])
            .ends_with(&format!("Data:\n{CONFIG}\n")),
        "a config's data is shown"
    );

    // Bad input: one line each, nothing created.
    assert_eq!(
        h1.fails(&["secret", "create", "db_pw", &file.display().to_string()])
            .trim(),
        "Error response from daemon: secret db_pw already exists"
    );
    assert_eq!(
        h1.fails(&["secret", "create", "x", "/nonexistent"]).trim(),
        "open /nonexistent: no such file or directory"
    );
    let big = cluster.dir().join("big");
    std::fs::write(&big, vec![b'x'; 500 * 1024]).expect("big file");
    assert_eq!(
        h1.fails(&["config", "create", "big", &big.display().to_string()])
            .trim(),
        "config data must be larger than 0 and less than 500 KiB"
    );
    let configs = h1.ok(&["config", "ls"]);
    let head: Vec<&str> = configs
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(head, ["ID", "NAME", "CREATED", "UPDATED"], "{configs}");
    assert_eq!(configs.lines().count(), 2, "{configs}");

    // A secret nobody created is refused by name.
    assert_eq!(
        h1.fails(&["service", "create", "--secret", "nosuch", &image])
            .trim(),
        "Error response from daemon: secret not found: nosuch"
    );

    // A service on host2 reads them with the owner and mode asked for.
    let on_host2 = format!("node.hostname=={}", h2.name());
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "app",
        "--constraint",
        &on_host2,
        "--stop-grace-period",
        "1s",
        "--secret",
        "source=db_pw,target=db_pw,uid=1000,gid=1001,mode=0400",
        "--secret",
        "api_key",
        "--config",
        "source=app_conf,target=/etc/app.conf,mode=0440",
        &image,
        "sleep",
        "100000",
    ]);
    let tasks = running(h1, "app", 1);
    assert_eq!(tasks[0].node, h2.name());
    assert_eq!(cat(h1, "app.1", "/run/secrets/db_pw"), FILE_SECRET);
    assert_eq!(cat(h1, "app.1", "/run/secrets/api_key"), STDIN_SECRET);
    assert_eq!(cat(h1, "app.1", "/etc/app.conf"), CONFIG);
    let stat = h1.ok(&[
        "exec",
        "app.1",
        "stat",
        "-c",
        "%u %g %a",
        "/run/secrets/db_pw",
        "/run/secrets/api_key",
        "/etc/app.conf",
    ]);
    assert_eq!(stat, "1000 1001 400\n0 0 444\n0 0 440\n");
    let written = h1.rswarm(&["exec", "app.1", "sh", "-c", "echo x > /run/secrets/api_key"]);
    assert!(!written.success(), "a secret is read-only: {written}");
    let svc = h1.ok(&["service", "inspect", "app"]);
    assert!(svc.contains("\"SecretName\": \"db_pw\""), "{svc}");
    assert!(
        !svc.contains(FILE_SECRET) && !svc.contains(STDIN_SECRET),
        "{svc}"
    );

    // Where the values are: on host2 only on the task's tmpfs; nowhere on
    // the other hosts' data dirs (the manager's store is encrypted), in no
    // daemon log.
    let check_holders = |when: &str| {
        for value in [FILE_SECRET, STDIN_SECRET] {
            for h in [h1, h3] {
                assert_eq!(
                    holders(h, h.data_dir(), value),
                    Vec::<String>::new(),
                    "{when}: {} holds a copy",
                    h.name()
                );
            }
            for path in holders(h2, h2.data_dir(), value) {
                assert!(
                    path.contains("/files/") && on_tmpfs(h2, &path),
                    "{when}: {path} holds a copy off tmpfs"
                );
            }
            for h in [h1, h2, h3] {
                assert_eq!(
                    holders(h, h.log_path(), value),
                    Vec::<String>::new(),
                    "{when}: {}'s daemon log holds it",
                    h.name()
                );
            }
        }
    };
    check_holders("while running");
    // (The search does find the one copy there: the task's tmpfs.)
    assert_eq!(holders(h2, h2.data_dir(), FILE_SECRET).len(), 1);
    let files_mounts = |h: &Host| {
        mounts_under(h.data_dir())
            .into_iter()
            .filter(|m| m.ends_with("/files"))
            .count()
    };
    assert_eq!(
        (files_mounts(h1), files_mounts(h2), files_mounts(h3)),
        (0, 1, 0)
    );

    // The worker's daemon restarts: the task keeps its files (live
    // restore), and a new task there gets the values again.
    h2.restart();
    assert_eq!(cat(h1, "app.1", "/run/secrets/db_pw"), FILE_SECRET);
    h1.ok(&["service", "scale", "--detach", "app=2"]);
    running(h1, "app", 2);
    assert_eq!(cat(h1, "app.2", "/run/secrets/api_key"), STDIN_SECRET);
    check_holders("after a restart");

    // In use: refused, in Docker's words.
    assert_eq!(
        h1.fails(&["secret", "rm", "db_pw"]).trim(),
        "Error response from daemon: secret 'db_pw' is in use by the following service: app"
    );
    assert_eq!(
        h1.fails(&["config", "rm", "app_conf"]).trim(),
        "Error response from daemon: config 'app_conf' is in use by the following service: app"
    );

    // Once the service is gone: no copy, no mount, and they can go.
    h1.ok(&["service", "rm", "app"]);
    // (runc forgets a container before its mounts go.)
    wait_for(
        CONVERGE,
        "host2's containers and their mounts removed",
        || {
            let mounts = mounts_under(&h2.data_dir().join("containers"));
            (h2.containers().is_empty() && mounts.is_empty()).then_some(())
        },
    );
    for h in [h1, h2, h3] {
        assert_eq!(
            mounts_under(&h.data_dir().join("containers")),
            Vec::<String>::new()
        );
        for value in [FILE_SECRET, STDIN_SECRET] {
            assert_eq!(holders(h, h.data_dir(), value), Vec::<String>::new());
        }
    }
    assert_eq!(
        h1.ok(&["secret", "rm", "db_pw", "api_key"]),
        "db_pw\napi_key\n"
    );
    assert_eq!(h1.ok(&["config", "rm", "app_conf"]), "app_conf\n");
    assert_eq!(h1.ok(&["secret", "ls", "-q"]), "");
    assert_eq!(
        h1.fails(&["secret", "inspect", "db_pw"]).trim(),
        "Error response from daemon: secret db_pw not found"
    );
}
