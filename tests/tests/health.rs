//! Health checks end to end on a 2-host namespace cluster (one manager, one
//! worker): a task whose check passes is shown healthy in `service ps` and
//! `inspect` and answers through its service's VIP; a task whose check
//! starts failing is taken out of the VIP and `tasks.<service>` before it is
//! stopped (a client looping through the VIP sees no failed request), fails
//! with Docker's "unhealthy container" error and is replaced; a check
//! defined only in the image runs, and `--no-healthcheck` turns it off;
//! within the start period probes run every `--health-start-interval`.

use std::collections::BTreeSet;
use std::time::Duration;

use rswarm_tests::lists::{tasks, wait_tasks, Task};
use rswarm_tests::{images, try_wait_for, wait_for, Cluster, Host};

/// Image pull, scheduling, runc and the first probes, on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// A web server answering `GET /` with its hostname (by default the first
/// 12 characters of its task ID).
const WEB: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

/// The client's loop: once `/tmp/go` exists and while it does, one request
/// through the VIP every 50 ms, each logged as the body or as `FAIL`
/// (a request to a backend that is gone hangs: `timeout` ends it, as
/// busybox's `wget -T` crashes).
const CLIENT: &str = "while [ ! -e /tmp/go ]; do sleep 0.1; done; \
    while [ -e /tmp/go ]; do \
      if ! timeout 3 wget -q -O - http://web/ >> /tmp/log 2>/dev/null; then echo FAIL >> /tmp/log; fi; \
      sleep 0.05; \
    done; touch /tmp/done; exec sleep 3600";

/// The addresses `nslookup NAME` shows inside task `task`, on `prefix`.
fn lookup(h: &Host, task: &str, name: &str, prefix: &str) -> BTreeSet<String> {
    let out = h.rswarm(&["exec", task, "nslookup", name]);
    out.stdout
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with(prefix))
                .map(String::from)
        })
        .collect()
}

/// `rswarm inspect TASK` as JSON.
fn inspect(h: &Host, task: &str) -> serde_json::Value {
    let out = h.ok(&["inspect", task]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v[0].clone()
}

/// The task's address on its (one) network, without the prefix length.
fn task_addr(h: &Host, task: &str) -> String {
    let v = inspect(h, task);
    v["NetworksAttachments"][0]["Addresses"][0]
        .as_str()
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string()
}

fn healthy_running(ts: &[Task], want: usize) -> bool {
    ts.iter()
        .filter(|t| t.is_running() && t.current.ends_with("(healthy)"))
        .count()
        == want
}

#[test]
fn a_failing_check_takes_the_task_out_of_the_vip_before_it_is_replaced() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.31.0.0/24", "backend"]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--network",
        "backend",
        "--replicas",
        "2",
        "--stop-grace-period",
        "1s",
        "--health-cmd",
        "test ! -e /tmp/sick",
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "2",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "client",
        "--network",
        "backend",
        &image,
        "sh",
        "-c",
        CLIENT,
    ]);
    let ts = wait_tasks(h1, "web", CONVERGE, "2 healthy web tasks", |ts| {
        healthy_running(ts, 2)
    });
    h1.wait_running_tasks("client", 1);

    // Healthy: `inspect` says so, with the probe's streak; the VIP answers.
    let sick = ts
        .iter()
        .find(|t| t.name == "web.1")
        .map(|t| t.id.clone())
        .expect("web.1");
    let v = inspect(h1, &sick);
    assert_eq!(v["Status"]["State"], "running");
    assert_eq!(v["Status"]["Health"]["Status"], "healthy");
    assert_eq!(v["Status"]["Health"]["FailingStreak"], 0);
    let sick_addr = task_addr(h1, &sick);
    assert!(sick_addr.starts_with("10.31.0."), "{sick_addr}");
    let both = wait_for(CONVERGE, "tasks.web: 2 addresses", || {
        let a = lookup(h1, "client.1", "tasks.web", "10.31.0.");
        (a.len() == 2).then_some(a)
    });
    assert!(both.contains(&sick_addr), "{both:?} has {sick_addr}");

    // The client loops through the VIP while web.1 turns unhealthy.
    h1.ok(&["exec", "client.1", "touch", "/tmp/go"]);
    wait_for(
        Duration::from_secs(20),
        "the client's first answers",
        || {
            let log = h1.rswarm(&["exec", "client.1", "cat", "/tmp/log"]).stdout;
            (log.lines().count() >= 5).then_some(())
        },
    );
    h1.ok(&["exec", &sick, "touch", "/tmp/sick"]);

    // It fails as Docker fails it, and a new task takes its slot, healthy.
    let after = wait_tasks(h1, "web", CONVERGE, "web.1 failed and replaced", |ts| {
        let failed = ts
            .iter()
            .any(|t| t.id == sick && t.current.starts_with("Failed"));
        failed && healthy_running(ts, 2)
    });
    let old = after.iter().find(|t| t.id == sick).expect("the old task");
    assert!(
        old.error.starts_with("\"task: non-zero exit (")
            || old.error.starts_with("task: non-zero exit ("),
        "{old:?}"
    );
    assert!(
        old.error
            .trim_matches('"')
            .ends_with("dockerexec: unhealthy container"),
        "{old:?}"
    );
    let v = inspect(h1, &sick);
    assert_eq!(v["Status"]["State"], "failed");
    assert_eq!(v["Status"]["Health"]["Status"], "unhealthy");
    assert!(
        v["Status"]["Health"]["FailingStreak"].as_i64() >= Some(2),
        "{v}"
    );

    // Its address left `tasks.web`; the two healthy tasks are there.
    let now = wait_for(CONVERGE, "tasks.web: the 2 healthy tasks", || {
        let a = lookup(h1, "client.1", "tasks.web", "10.31.0.");
        (a.len() == 2).then_some(a)
    });
    assert!(!now.contains(&sick_addr), "{now:?} still has {sick_addr}");

    // Some more requests to the new task, then the client's log: not one
    // request failed, the sick task answered before it went unhealthy and the
    // new one answers now.
    let new_host: String = after
        .iter()
        .find(|t| t.name == "web.1" && t.is_running())
        .map(|t| t.id.chars().take(12).collect())
        .expect("the new web.1");
    let mut log = String::new();
    let answered = try_wait_for(Duration::from_secs(30), "the new task to answer", || {
        log = h1.ok(&["exec", "client.1", "cat", "/tmp/log"]);
        log.lines().any(|l| l == new_host).then_some(())
    });
    if let Err(e) = answered {
        panic!("{e}: {new_host} is not in the client's log:\n{log}");
    }
    h1.ok(&["exec", "client.1", "rm", "/tmp/go"]);
    wait_for(Duration::from_secs(20), "the client loop to stop", || {
        h1.rswarm(&["exec", "client.1", "test", "-e", "/tmp/done"])
            .success()
            .then_some(())
    });
    let log = h1.ok(&["exec", "client.1", "cat", "/tmp/log"]);
    let lines: Vec<&str> = log.lines().collect();
    let sick_host: String = sick.chars().take(12).collect();
    assert!(lines.len() >= 20, "too few requests: {log}");
    assert!(lines.contains(&sick_host.as_str()), "{log}");
    assert_eq!(
        lines.iter().filter(|l| **l == "FAIL").count(),
        0,
        "requests failed while web.1 was replaced:\n{log}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.len() == 12 && l.chars().all(|c| c.is_ascii_alphanumeric())),
        "{log}"
    );
}

#[test]
fn the_images_check_runs_and_no_healthcheck_turns_it_off() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let h1 = cluster.host(1);
    let image = cluster
        .registry()
        .push_oci(images::busybox_with_healthcheck(), "busybox-health:1")
        .unwrap();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "checked",
        "--stop-grace-period",
        "1s",
        &image,
        "sleep",
        "3600",
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "unchecked",
        "--no-healthcheck",
        &image,
        "sleep",
        "3600",
    ]);
    let ts = wait_tasks(h1, "checked", CONVERGE, "the image's check to pass", |ts| {
        healthy_running(ts, 1)
    });
    h1.wait_running_tasks("unchecked", 1);
    let checked = ts[0].id.clone();
    assert_eq!(
        inspect(h1, &checked)["Status"]["Health"]["Status"],
        "healthy"
    );

    // Without a check the task is plain Running, and nothing probes it.
    let unchecked = tasks(h1, "unchecked")[0].clone();
    assert!(
        unchecked.current.starts_with("Running") && !unchecked.current.contains('('),
        "{unchecked:?}"
    );
    assert!(inspect(h1, &unchecked.id)["Status"].get("Health").is_none());
    h1.ok(&["exec", &unchecked.id, "touch", "/tmp/sick"]);
    h1.ok(&["exec", &checked, "touch", "/tmp/sick"]);

    // The image's check fails the checked task (1 s interval, 2 retries)...
    wait_tasks(h1, "checked", CONVERGE, "the checked task to fail", |ts| {
        ts.iter().any(|t| {
            t.id == checked
                && t.current.starts_with("Failed")
                && t.error.contains("unhealthy container")
        })
    });
    // ...while the unchecked one, sick as well, runs on, the same task.
    let still = tasks(h1, "unchecked");
    assert_eq!(still.len(), 1, "{still:?}");
    assert!(
        still[0].is_running() && still[0].id == unchecked.id,
        "{still:?}"
    );
}

/// `--health-start-interval`: within the start period, while the task is
/// still starting, probes run every start interval (1 s here) rather than
/// every interval (30 s) or Docker's default start interval (5 s).
#[test]
fn probes_run_every_start_interval_during_the_start_period() {
    let cluster = Cluster::with_registry(1).unwrap();
    cluster.init_swarm(1, 0).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "slow",
        "--stop-grace-period",
        "1s",
        "--health-cmd",
        "echo probe >> /tmp/probes; test -e /tmp/ok",
        "--health-interval",
        "30s",
        "--health-start-period",
        "60s",
        "--health-start-interval",
        "1s",
        &image,
        "sleep",
        "3600",
    ]);
    let spec = h1.ok(&[
        "service",
        "inspect",
        "slow",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Healthcheck.StartInterval}}",
    ]);
    assert_eq!(spec.trim(), "1000000000");
    h1.wait_running_tasks("slow", 1);
    let task = tasks(h1, "slow")[0].id.clone();
    let probes = || {
        let out = h1.rswarm(&["exec", &task, "cat", "/tmp/probes"]);
        out.stdout.lines().count()
    };
    wait_for(CONVERGE, "the first probe", || {
        (probes() >= 1).then_some(())
    });
    let first = std::time::Instant::now();
    // Failing probes within the start period: still starting, probed again
    // every second (at 5 s apart, five would take 20 s).
    wait_for(Duration::from_secs(30), "five probes", || {
        (probes() >= 5).then_some(())
    });
    let took = first.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "four more probes took {took:?}: not every start interval"
    );
    let t = tasks(h1, "slow")[0].clone();
    assert!(t.current.contains("(health: starting)"), "{t:?}");
    // Passing now: healthy within a few seconds, not the 30 s interval.
    h1.ok(&["exec", &task, "touch", "/tmp/ok"]);
    wait_tasks(
        h1,
        "slow",
        Duration::from_secs(10),
        "the task healthy",
        |ts| healthy_running(ts, 1),
    );
}
