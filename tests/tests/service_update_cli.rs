//! `service update` and `service rollback` from the command line, end to end
//! on a one-host swarm (a manager that runs tasks) with a registry started by
//! the test: an update of the image, the environment and the published ports
//! changes the spec and replaces every task (new task IDs) while Docker's
//! progress display is shown; `service inspect` shows the update status;
//! `service rollback` goes back to the previous spec; `--detach` returns at
//! once; `--force` replaces tasks with no other change; a bad flag (or one
//! that does not apply to the service) is refused in Docker's words and
//! changes nothing. A stack's changed service takes its Compose
//! `update_config`/`rollback_config` and is updated in the background
//! (`stack deploy` does not wait).
//!
//! The rolling updater and its update status belong to the manager: the
//! checks of what it writes (`UpdateStatus`, `rollback: manually requested
//! rollback`) are gathered and asserted at the end of each story, so every
//! other check still runs and shows when only those fail.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rswarm_tests::lists::{tasks, wait_tasks};
use rswarm_tests::{images, wait_for, Cluster, Host};

/// Image pull, scheduling and runc on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);
/// How long an update or rollback that waits for its tasks may take.
const FOLLOW: Duration = Duration::from_secs(150);

/// A web server answering `GET /` with `color=$COLOR` as its task saw it.
const WEB: &str =
    "mkdir -p /www && echo \"color=$COLOR\" > /www/index.html && exec httpd -f -p 80 -h /www";

/// `service inspect SERVICE` as JSON (the one service).
fn inspect(h: &Host, service: &str) -> serde_json::Value {
    let out = h.ok(&["service", "inspect", service]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v[0].clone()
}

/// The IDs of the tasks of `service` that run now.
fn running_ids(h: &Host, service: &str) -> BTreeSet<String> {
    tasks(h, service)
        .into_iter()
        .filter(|t| t.is_running())
        .map(|t| t.id)
        .collect()
}

/// Waits until `want` tasks of `service` run, none of them in `old`.
fn wait_replaced(h: &Host, service: &str, want: usize, old: &BTreeSet<String>) -> BTreeSet<String> {
    let what = format!("{want} new running {service} tasks");
    wait_tasks(h, service, CONVERGE, &what, |ts| {
        let running: Vec<_> = ts.iter().filter(|t| t.is_running()).collect();
        running.len() == want && running.iter().all(|t| !old.contains(&t.id))
    })
    .into_iter()
    .filter(|t| t.is_running())
    .map(|t| t.id)
    .collect()
}

/// One HTTP GET with curl from the host's namespace; the body, trimmed.
fn curl(h: &Host, url: &str) -> Option<String> {
    let out = h.exec_timeout(&["curl", "-s", "-m", "3", url], Duration::from_secs(10));
    out.success().then(|| out.stdout.trim().to_string())
}

/// What the manager's updater writes, checked without stopping the story:
/// every miss is kept and asserted at the end.
#[derive(Default)]
struct UpdaterChecks(Vec<String>);

impl UpdaterChecks {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }

    fn assert_all(self) {
        assert!(
            self.0.is_empty(),
            "the update status was not as expected:\n{}",
            self.0.join("\n")
        );
    }
}

#[test]
fn update_changes_the_spec_replaces_the_tasks_and_rollback_goes_back() {
    let cluster = Cluster::with_registry(1).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let h = cluster.host(1);
    let v1 = cluster.registry().busybox();
    let v2 = cluster
        .registry()
        .push(images::busybox(), "busybox:2")
        .unwrap();
    let mut updater = UpdaterChecks::default();

    h.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "2",
        "--update-parallelism",
        "1",
        "--update-monitor",
        "1s",
        "--rollback-monitor",
        "1s",
        &v1,
        "sh",
        "-c",
        WEB,
    ]);
    h.wait_running_tasks("web", 2);
    let first = running_ids(h, "web");
    assert!(inspect(h, "web").get("UpdateStatus").is_none());

    // The update: Docker's output, then the spec and the tasks.
    let out = h.rswarm_timeout(
        &[
            "service",
            "update",
            "--image",
            &v2,
            "--env-add",
            "COLOR=blue",
            "--publish-add",
            "8080:80",
            "web",
        ],
        FOLLOW,
    );
    assert!(out.success(), "service update failed:\n{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"web"), "{out}");
    assert!(
        lines.contains(&"overall progress: 2 out of 2 tasks"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"verify: Service converged"), "{out}");

    let v = inspect(h, "web");
    let container = &v["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(container["Image"], serde_json::json!(v2));
    assert_eq!(container["Env"], serde_json::json!(["COLOR=blue"]));
    assert_eq!(v["Spec"]["EndpointSpec"]["Ports"][0]["PublishedPort"], 8080);
    assert_eq!(
        v["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"],
        serde_json::json!(v1)
    );
    let second = wait_replaced(h, "web", 2, &first);
    assert!(first.is_disjoint(&second));
    // The new tasks have the new environment, through the new port.
    let url = format!("http://{}:8080/", h.addr());
    wait_for(CONVERGE, "the published port to answer color=blue", || {
        (curl(h, &url).as_deref() == Some("color=blue")).then_some(())
    });

    let status = &v["UpdateStatus"];
    updater.check(
        status["State"] == "completed",
        format!("UpdateStatus.State after the update: {status}"),
    );
    updater.check(
        status["Message"] == "update completed",
        format!("UpdateStatus.Message after the update: {status}"),
    );
    updater.check(
        status["StartedAt"].is_string() && status["CompletedAt"].is_string(),
        format!("UpdateStatus times after the update: {status}"),
    );
    let pretty = h.ok(&["service", "inspect", "--pretty", "web"]);
    updater.check(
        pretty.contains("\nUpdateStatus:\n State:\t\tcompleted\n Started:\t")
            && pretty.contains("\n Completed:\t")
            && pretty.contains("\n Message:\tupdate completed\n"),
        format!("service inspect --pretty after the update:\n{pretty}"),
    );

    // The rollback: back to the previous spec, new tasks again.
    let out = h.rswarm_timeout(&["service", "rollback", "web"], FOLLOW);
    assert!(out.success(), "service rollback failed:\n{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"web"), "{out}");
    assert_eq!(lines.last(), Some(&"verify: Service converged"), "{out}");
    updater.check(
        lines.get(1) == Some(&"rollback: manually requested rollback"),
        format!("service rollback's second line:\n{out}"),
    );
    updater.check(
        lines.contains(&"overall progress: rolling back update: 2 out of 2 tasks"),
        format!("service rollback's progress:\n{out}"),
    );
    let v = inspect(h, "web");
    let container = &v["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(container["Image"], serde_json::json!(v1));
    assert!(container.get("Env").is_none(), "{container}");
    assert!(v["Spec"]["EndpointSpec"].get("Ports").is_none(), "{v}");
    let third = wait_replaced(h, "web", 2, &second);
    assert!(third.is_disjoint(&first) && third.is_disjoint(&second));
    wait_for(CONVERGE, "port 8080 to be unpublished", || {
        curl(h, &url).is_none().then_some(())
    });
    let status = &v["UpdateStatus"];
    updater.check(
        status["State"] == "rollback_completed",
        format!("UpdateStatus.State after the rollback: {status}"),
    );
    let pretty = h.ok(&["service", "inspect", "--pretty", "web"]);
    updater.check(
        pretty.contains("\nUpdateStatus:\n State:\t\trollback_completed\n"),
        format!("service inspect --pretty after the rollback:\n{pretty}"),
    );
    updater.assert_all();
}

#[test]
fn bad_flags_change_nothing_detach_returns_at_once_and_force_replaces() {
    let cluster = Cluster::with_registry(1).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let h = cluster.host(1);
    let image = cluster.registry().busybox();
    // A long monitor period: an update that waited would take 30 s or more.
    h.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "app",
        "--update-monitor",
        "30s",
        "-e",
        "A=1",
        &image,
        "sleep",
        "3600",
    ]);
    h.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "node-agent",
        "--mode",
        "global",
        &image,
        "sleep",
        "3600",
    ]);
    h.wait_running_tasks("app", 1);
    h.wait_running_tasks("node-agent", 1);
    let spec = inspect(h, "app")["Spec"].clone();
    let before = running_ids(h, "app");

    let refused: [(&[&str], &str); 6] = [
        (
            &["service", "update", "--limit-memory", "64X", "app"],
            "invalid argument \"64X\" for \"--limit-memory\" flag: invalid size: '64X'",
        ),
        (
            &[
                "service",
                "update",
                "--env-add",
                "B=2",
                "--publish-add",
                "80:notaport",
                "app",
            ],
            "--publish-add",
        ),
        (
            &["service", "update", "--rollback", "--image", &image, "app"],
            "other flags may not be combined with --rollback",
        ),
        (
            &[
                "service",
                "update",
                "--update-failure-action",
                "explode",
                "app",
            ],
            "invalid argument \"explode\" for \"--update-failure-action\" flag",
        ),
        (
            &["service", "update", "--replicas", "3", "node-agent"],
            "replicas can only be used with replicated or replicated-job mode",
        ),
        (
            &["service", "update", "--image", "nope", "missing"],
            "no such service: missing",
        ),
    ];
    for (args, wanted) in refused {
        let err = h.fails(args);
        assert!(
            err.contains(wanted),
            "`rswarm {}` said:\n{err}\nexpected: {wanted}",
            args.join(" ")
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // Nothing changed: the spec is the same and so are the tasks.
    assert_eq!(inspect(h, "app")["Spec"], spec);
    assert!(inspect(h, "app").get("PreviousSpec").is_none());
    assert_eq!(running_ids(h, "app"), before);
    // No previous spec: nothing to roll back to.
    let err = h.fails(&["service", "rollback", "app"]);
    assert!(err.contains("does not have a previous spec"), "{err}");

    // --detach returns at once, with the name only; --force replaces the
    // task although nothing else changed.
    let started = Instant::now();
    let out = h.ok(&["service", "update", "--detach", "--force", "app"]);
    let took = started.elapsed();
    assert_eq!(out, "app\n");
    assert!(took < Duration::from_secs(15), "--detach took {took:?}");
    let after = inspect(h, "app");
    assert_eq!(after["Spec"]["TaskTemplate"]["ForceUpdate"], 1);
    assert_eq!(
        after["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"],
        serde_json::json!(["A=1"])
    );
    wait_replaced(h, "app", 1, &before);

    // A change that is not to the task template (replicas): no new tasks
    // for the slot that runs, and the command waits only for the new one.
    let kept = running_ids(h, "app");
    let out = h.rswarm_timeout(
        &["service", "update", "--replicas", "2", "-q", "app"],
        FOLLOW,
    );
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "app\n", "--quiet shows the name only");
    let now = running_ids(h, "app");
    assert_eq!(now.len(), 2);
    assert!(kept.is_subset(&now), "{kept:?} {now:?}");
}

/// A stack whose one service has Compose's update and rollback configs;
/// `value` is its `V` environment variable.
fn stack_file(image: &str, value: &str) -> String {
    format!(
        "services:
  web:
    image: {image}
    command: [sleep, \"3600\"]
    environment:
      V: \"{value}\"
    deploy:
      replicas: 2
      update_config: {{parallelism: 1, delay: 1s, monitor: 2s, order: start-first, failure_action: rollback, max_failure_ratio: 0.5}}
      rollback_config: {{parallelism: 2, order: stop-first}}
"
    )
}

#[test]
fn a_changed_stack_service_rolls_per_its_update_config_in_the_background() {
    let cluster = Cluster::with_registry(1).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let h = cluster.host(1);
    let image = cluster.registry().busybox();
    let file = cluster.dir().join("app.yml");
    let path = file.display().to_string();
    std::fs::write(&file, stack_file(&image, "1")).unwrap();
    h.ok(&["stack", "deploy", "-c", &path, "shop"]);
    h.wait_running_tasks("shop_web", 2);
    let v = inspect(h, "shop_web");
    assert_eq!(
        v["Spec"]["UpdateConfig"],
        serde_json::json!({
            "Parallelism": 1,
            "Delay": 1_000_000_000u64,
            "FailureAction": "rollback",
            "Monitor": 2_000_000_000u64,
            "MaxFailureRatio": 0.5,
            "Order": "start-first"
        })
    );
    assert_eq!(v["Spec"]["RollbackConfig"]["Parallelism"], 2);
    assert_eq!(v["Spec"]["RollbackConfig"]["Order"], "stop-first");
    let first = running_ids(h, "shop_web");

    // The changed file: the deploy returns without waiting for the update
    // (Docker's stack deploy is detached), the update runs on.
    std::fs::write(&file, stack_file(&image, "2")).unwrap();
    let started = Instant::now();
    let out = h.ok(&["stack", "deploy", "-c", &path, "shop"]);
    let took = started.elapsed();
    assert!(out.contains("Updating service shop_web"), "{out}");
    assert!(!out.contains("overall progress"), "{out}");
    assert!(took < Duration::from_secs(15), "stack deploy took {took:?}");
    let v = inspect(h, "shop_web");
    assert_eq!(
        v["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"],
        serde_json::json!(["V=2"])
    );
    wait_replaced(h, "shop_web", 2, &first);
    let mut updater = UpdaterChecks::default();
    let completed = rswarm_tests::try_wait_for(CONVERGE, "the update to complete", || {
        (inspect(h, "shop_web")["UpdateStatus"]["State"] == "completed").then_some(())
    });
    if let Err(e) = completed {
        updater.check(false, format!("UpdateStatus of shop_web: {e:#}"));
    }
    updater.assert_all();
}
