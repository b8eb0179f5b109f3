//! The stacks in `stack-examples/`, deployed as they are on a one-node
//! swarm, the way the quickstart does it: their image is built offline by
//! `stack-examples/busybox-image.sh` and loaded with `image load`, then each
//! Compose file is deployed unchanged with `stack deploy` and shown doing
//! what its README line says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rswarm_tests::lists::{parse_tasks, Task, TASK_FORMAT};
use rswarm_tests::{try_wait_for, Cluster, Host};

const DEPLOY_TIMEOUT: Duration = Duration::from_secs(150);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack-examples")
}

fn example(name: &str) -> String {
    examples().join(name).join("app.yml").display().to_string()
}

/// Builds the examples' image with the script the quickstart uses and loads
/// it on `h`.
fn load_image(h: &Host, dir: &Path) {
    let tar = dir.join("busybox.tar");
    let out = Command::new("bash")
        .arg(examples().join("busybox-image.sh"))
        .arg(&tar)
        .output()
        .expect("run busybox-image.sh");
    assert!(
        out.status.success(),
        "busybox-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.ok(&["image", "load", "-i", &tar.display().to_string()]);
}

fn deploy(h: &Host, file: &str, stack: &str, wait: bool) {
    let mut args = vec!["stack", "deploy", "-c", file];
    if wait {
        args.push("--detach=false");
    }
    args.push(stack);
    let out = h.rswarm_timeout(&args, DEPLOY_TIMEOUT);
    assert!(out.success(), "deploy {file}: {out}");
}

fn stack_tasks(h: &Host, stack: &str) -> Vec<Task> {
    parse_tasks(&h.ok(&["stack", "ps", stack, "--no-trunc", "--format", TASK_FORMAT]))
}

/// GET `url` from the host's own namespace, the body. (curl: Debian's
/// busybox-static wget crashes with `-T`.)
fn get(h: &Host, url: &str) -> Option<String> {
    let out = h.exec(&["curl", "-sSf", "-m", "5", url]);
    out.success().then_some(out.stdout)
}

fn wait_get(h: &Host, url: &str, want: &str) -> String {
    let mut last = None;
    try_wait_for(Duration::from_secs(60), &format!("{url} to answer"), || {
        last = get(h, url);
        last.clone().filter(|b| b.contains(want))
    })
    .unwrap_or_else(|e| {
        let ps = h.rswarm(&["node", "ps", "--no-trunc", "self"]);
        let direct = h.exec(&["curl", "-v", "-m", "5", url]);
        let nft = h.exec(&["nft", "list", "ruleset"]);
        panic!("{e}; last answer {last:?}; tasks:\n{ps}\n{direct}\n{nft}")
    })
}

#[test]
fn the_examples_deploy_as_they_are_and_do_what_they_say() {
    let cluster = Cluster::start(1).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let h = cluster.host(1);
    load_image(h, cluster.dir());

    // web-redis: two web replicas behind the mesh on 8080 count hits in
    // `redis`, which they reach by its short name.
    deploy(h, &example("web-redis"), "shop", true);
    let first = wait_get(h, "http://127.0.0.1:8080/cgi-bin/hit", "hits");
    let mut counts = Vec::new();
    let mut webs = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let body = get(h, "http://127.0.0.1:8080/cgi-bin/hit").unwrap_or_default();
        // "hello from web-1: 7 hits"
        let (who, n) = body
            .trim()
            .strip_prefix("hello from ")
            .and_then(|r| r.split_once(": "))
            .unwrap_or_else(|| panic!("unexpected page {body:?} (first: {first:?})"));
        webs.insert(who.to_string());
        let n: u64 = n
            .trim_end_matches(" hits")
            .parse()
            .unwrap_or_else(|_| panic!("no count in {body:?}"));
        counts.push(n);
    }
    assert!(
        counts.windows(2).all(|w| w[1] > w[0]),
        "the counter counts: {counts:?}"
    );
    assert_eq!(
        webs.len(),
        2,
        "the mesh reached both web replicas over 20 requests (random balancing: both are missed with p = 2^-19): {webs:?}"
    );

    // one-shot-job: `app` gets no task before all 3 completions of
    // `migrate` succeeded.
    deploy(h, &example("one-shot-job"), "batch", false);
    try_wait_for(DEPLOY_TIMEOUT, "batch_app to run", || {
        let tasks = stack_tasks(h, "batch");
        let done = tasks
            .iter()
            .filter(|t| t.name.starts_with("batch_migrate.") && t.is_complete())
            .count();
        let app: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.name.starts_with("batch_app."))
            .collect();
        assert!(
            app.is_empty() || done == 3,
            "batch_app has a task while only {done} of 3 migrations completed: {tasks:?}"
        );
        app.iter().any(|t| t.is_running()).then_some(())
    })
    .unwrap();

    // monitoring-agent: one agent on the node, on its own port 9101.
    deploy(h, &example("monitoring-agent"), "mon", true);
    let metrics = wait_get(h, "http://127.0.0.1:9101/cgi-bin/metrics", "node_load1");
    assert!(
        metrics.contains("# TYPE node_memory_available_bytes gauge"),
        "{metrics}"
    );

    // Several files merged in order, the first read from stdin (`-c -`):
    // the override's replicas and environment win, the base's command stays.
    let base = "services:\n  app:\n    image: quickstart/busybox:1\n    command: [sleep, \"3600\"]\n    environment: {A: \"1\", B: base}\n";
    let over = cluster.dir().join("override.yml");
    std::fs::write(
        &over,
        "services:\n  app:\n    environment: {B: override}\n    deploy: {replicas: 2}\n",
    )
    .unwrap();
    let script = format!(
        "printf '%s' '{base}' | {} -H unix://{} stack deploy -c - -c {} --detach=false multi",
        h.binary().display(),
        h.socket().display(),
        over.display()
    );
    let out = h.exec_timeout(&["sh", "-c", &script], DEPLOY_TIMEOUT);
    assert!(out.success(), "{out}");
    let spec = h.ok(&[
        "service",
        "inspect",
        "multi_app",
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}} {{.Spec.TaskTemplate.ContainerSpec.Env}} {{.Spec.TaskTemplate.ContainerSpec.Args}}",
    ]);
    assert_eq!(spec.trim(), "2 [A=1 B=override] [sleep 3600]");

    for stack in ["shop", "batch", "mon", "multi"] {
        h.ok(&["stack", "rm", stack]);
    }
    assert_eq!(h.ok(&["stack", "ls"]), "NAME      SERVICES\n");
}

/// three-tier: front → api → db, where api and db read the database
/// password from the stack's secret at /run/secrets/db_password (needs
/// nodes that mount secrets), each tier started once the one below is
/// healthy.
#[test]
fn the_three_tier_example_reads_its_password_from_the_secret() {
    let cluster = Cluster::start(1).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let h = cluster.host(1);
    load_image(h, cluster.dir());

    let out = h.rswarm_timeout(
        &[
            "stack",
            "deploy",
            "-c",
            &example("three-tier"),
            "--detach=false",
            "shop3",
        ],
        DEPLOY_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.starts_with(
            "Creating secret shop3_db_password\nCreating network shop3_default\nCreating service shop3_db\nCreating service shop3_api\nCreating service shop3_front\n"
        ),
        "{out}"
    );
    let body = wait_get(
        h,
        "http://127.0.0.1:8081/cgi-bin/index",
        "front -> api -> db",
    );
    assert_eq!(body.trim(), "front -> api -> db: rows: 42", "{body}");
    // The same file again changes nothing.
    let out = h.rswarm(&["stack", "deploy", "-c", &example("three-tier"), "shop3"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    let out = h.rswarm_timeout(&["stack", "rm", "shop3"], DEPLOY_TIMEOUT);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout,
        "Removing service shop3_api\nRemoving service shop3_db\nRemoving service shop3_front\nRemoving secret shop3_db_password\nRemoving network shop3_default\n",
        "{out}"
    );
}
