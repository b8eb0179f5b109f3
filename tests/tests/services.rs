//! Services on real containers, end to end: three hosts (one manager, two workers)
//! made of network namespaces, a registry started by the test (Debian's
//! `docker-registry`) holding a busybox image built by the test, and tasks run by
//! runc. Each test is a user's story: create a service, look at `service ls` and
//! `service ps`, break something, watch the swarm put it right.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rswarm_tests::lists::{running_per_node, tasks, wait_tasks, Task};
use rswarm_tests::{images, wait_for, Cluster, Host};

/// How long a service may take to converge (image pull, scheduling, runc), with
/// other tests running beside it on two cores.
const CONVERGE: Duration = Duration::from_secs(90);
/// How long a node may take to be seen Down, or its tasks to be replaced.
const FAILOVER: Duration = Duration::from_secs(60);
/// How long `service create` may take when it waits for its tasks (no `--detach`).
const CREATE_TIMEOUT: Duration = Duration::from_secs(150);

/// A positive event for absence checks: the orchestrator's clock has passed a
/// restart delay of `delay` since now. Creates a service whose one task fails,
/// with that restart delay and one restart allowed, and waits until its second
/// task failed: the restart, due `delay` after the first failure (seen after
/// this call started), has been made. A restart of another slot due by then
/// would have been made too. The marker service is removed again.
fn orchestrator_passed_restart_delay(h1: &Host, image: &str, delay: &str) {
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "marker",
        "--restart-condition",
        "on-failure",
        "--restart-max-attempts",
        "1",
        "--restart-delay",
        delay,
        image,
        "sh",
        "-c",
        "exit 1",
    ]);
    wait_tasks(h1, "marker", CONVERGE, "the marker's restart", |tasks| {
        tasks
            .iter()
            .filter(|t| t.current.starts_with("Failed"))
            .count()
            == 2
    });
    h1.ok(&["service", "rm", "marker"]);
}

/// A positive event for absence checks on `host`'s agent: a task assigned to it
/// after now runs, so the agent has handled every assignment before it (its
/// restart's adoption included). The probe service is removed again, and its
/// container is gone before this returns, so it shows in no container list.
fn agent_caught_up(h1: &Host, image: &str, host: &Host) {
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "probe",
        "--constraint",
        &format!("node.hostname=={}", host.name()),
        image,
        "sleep",
        "3600",
    ]);
    h1.wait_running_tasks("probe", 1);
    let probe = h1.ok(&["service", "ps", "probe", "-q", "--no-trunc"]);
    let probe = probe.trim().to_string();
    h1.ok(&["service", "rm", "probe"]);
    wait_for(CONVERGE, "the probe's container to be removed", || {
        (!host.containers().iter().any(|c| c.id == probe)).then_some(())
    });
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(node, n)| (node.to_string(), *n))
        .collect()
}

/// Waits until the running tasks of `service` per node are exactly `expected`.
fn wait_running(host: &Host, service: &str, expected: &[(&str, usize)]) -> Vec<Task> {
    let want = counts(expected);
    wait_tasks(
        host,
        service,
        CONVERGE,
        &format!("{service} running as {want:?} per node"),
        |tasks| running_per_node(tasks) == want,
    )
}

/// Running runc containers on each host, by host name.
fn containers_per_host(cluster: &Cluster) -> BTreeMap<String, usize> {
    cluster
        .hosts()
        .iter()
        .map(|h| {
            let running = h
                .containers()
                .iter()
                .filter(|c| c.status == "running")
                .count();
            (h.name().to_string(), running)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Three hosts with a registry; host1 manages, host2 and host3 work.
fn swarm() -> Cluster {
    let cluster = Cluster::with_registry(3).expect("three hosts and a registry");
    cluster
        .init_swarm(1, 2)
        .expect("a swarm of one manager and two workers");
    cluster
}

/// The words of a table line split on runs of two or more spaces (so "DESIRED STATE"
/// stays one column).
fn columns(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn six_replicas_spread_two_per_node() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();

    // Without --detach, create waits until the tasks run.
    let out = h1.rswarm_timeout(
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "6",
            &image,
            "httpd",
            "-f",
            "-p",
            "80",
        ],
        CREATE_TIMEOUT,
    );
    assert!(out.success(), "{out}");

    let ls = h1.ok(&["service", "ls"]);
    let mut lines = ls.lines();
    assert_eq!(
        columns(lines.next().unwrap_or_default()),
        ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"],
        "{ls}"
    );
    let row = columns(lines.next().unwrap_or_default());
    assert_eq!(row.len(), 5, "ID NAME MODE REPLICAS IMAGE, no ports:\n{ls}");
    assert_eq!(row[1..], ["web", "replicated", "6/6", &image], "{ls}");
    assert_eq!(lines.next(), None, "{ls}");

    let ps = h1.ok(&["service", "ps", "web"]);
    let mut lines = ps.lines();
    assert_eq!(
        columns(lines.next().unwrap_or_default()),
        [
            "ID",
            "NAME",
            "IMAGE",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "ERROR",
            "PORTS"
        ],
        "{ps}"
    );
    assert_eq!(lines.count(), 6, "{ps}");
    let tasks = tasks(h1, "web");
    assert_eq!(
        running_per_node(&tasks),
        counts(&[("host1", 2), ("host2", 2), ("host3", 2)]),
        "{ps}"
    );
    let mut names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["web.1", "web.2", "web.3", "web.4", "web.5", "web.6"]
    );

    // The containers are real: two runc containers running on each host.
    assert_eq!(
        containers_per_host(&cluster),
        counts(&[("host1", 2), ("host2", 2), ("host3", 2)])
    );
    // `node ps host2` shows host2's two tasks.
    let node_ps = h1.ok(&[
        "node",
        "ps",
        "host2",
        "--format",
        "{{.Name}} {{.Node}} {{.CurrentState}}",
    ]);
    let on_host2: Vec<&str> = node_ps
        .lines()
        .filter(|l| l.contains(" host2 Running"))
        .collect();
    assert_eq!(on_host2.len(), 2, "{node_ps}");
}

#[test]
fn constraints_confine_tasks_to_matching_nodes() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();

    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "onworkers",
        "--replicas",
        "4",
        "--constraint",
        "node.role==worker",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_running(h1, "onworkers", &[("host2", 2), ("host3", 2)]);

    h1.ok(&["node", "update", "--label-add", "zone=blue", "host3"]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "blue",
        "--replicas",
        "3",
        "--constraint",
        "node.labels.zone==blue",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_running(h1, "blue", &[("host3", 3)]);
    let all = tasks(h1, "onworkers");
    assert!(all.iter().all(|t| t.node != "host1"), "{all:?}");
}

#[test]
fn a_global_service_gets_a_task_on_a_node_that_joins_later() {
    let cluster = Cluster::with_registry(3).expect("three hosts and a registry");
    cluster
        .init_swarm(1, 1)
        .expect("host1 manages, host2 works, host3 waits");
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();

    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "everywhere",
        "--mode",
        "global",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_running(h1, "everywhere", &[("host1", 1), ("host2", 1)]);

    let token = h1.ok(&["swarm", "join-token", "worker", "-q"]);
    let host3 = cluster.host(3);
    host3.ok(&[
        "join",
        "--token",
        token.trim(),
        "--advertise-addr",
        host3.addr(),
        &h1.swarm_addr(),
    ]);
    wait_running(
        h1,
        "everywhere",
        &[("host1", 1), ("host2", 1), ("host3", 1)],
    );
    let ls = h1.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}} {{.Mode}} {{.Replicas}}",
    ]);
    assert_eq!(ls.trim(), "everywhere global 3/3");
}

#[test]
fn a_dead_and_cut_off_workers_tasks_are_replaced_on_the_other_nodes() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "6",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_running(h1, "web", &[("host1", 2), ("host2", 2), ("host3", 2)]);

    let host3 = cluster.host(3);
    host3.kill();
    host3.disconnect();
    wait_for(FAILOVER, "host3 Down in `node ls`", || {
        h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .lines()
            .any(|l| l == "host3 Down")
            .then_some(())
    });
    let tasks = wait_running(h1, "web", &[("host1", 3), ("host2", 3)]);
    let still_wanted: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.node == "host3" && t.desired == "Running")
        .collect();
    assert!(
        still_wanted.is_empty(),
        "tasks on the dead node still desired Running: {still_wanted:?}"
    );
    assert_eq!(
        tasks.iter().filter(|t| t.desired == "Running").count(),
        6,
        "{tasks:?}"
    );
}

#[test]
fn a_failing_task_is_restarted_exactly_max_attempts_times() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "flaky",
        "--restart-condition",
        "on-failure",
        "--restart-max-attempts",
        "3",
        "--restart-delay",
        "1s",
        &image,
        "sh",
        "-c",
        "exit 3",
    ]);
    let failed = |t: &Task| t.current.starts_with("Failed");
    wait_tasks(h1, "flaky", CONVERGE, "4 failed tasks of flaky", |tasks| {
        tasks.iter().filter(|t| failed(t)).count() >= 4
    });
    // Past the moment a fifth attempt would have been due: no fifth attempt.
    orchestrator_passed_restart_delay(h1, &image, "1s");
    let tasks = tasks(h1, "flaky");
    assert_eq!(
        tasks.len(),
        4,
        "the first run and exactly 3 restarts: {tasks:#?}"
    );
    for task in &tasks {
        assert_eq!(task.name, "flaky.1", "{tasks:#?}");
        assert!(failed(task), "{tasks:#?}");
        assert_ne!(task.desired, "Running", "{tasks:#?}");
        assert!(task.error.contains("non-zero exit (3)"), "{tasks:#?}");
    }
    let ids: BTreeSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 4);
}

#[test]
fn a_job_runs_to_completion_and_is_not_restarted() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "once",
        "--mode",
        "replicated-job",
        "--replicas",
        "3",
        &image,
        "true",
    ]);
    let complete = |t: &Task| t.current.starts_with("Complete");
    wait_tasks(
        h1,
        "once",
        CONVERGE,
        "3 complete tasks of the job",
        |tasks| tasks.iter().filter(|t| complete(t)).count() == 3,
    );
    // Past the moment a restart (default delay 5 s) would have been due.
    orchestrator_passed_restart_delay(h1, &image, "5s");
    let tasks = tasks(h1, "once");
    assert_eq!(tasks.len(), 3, "no task was started again: {tasks:#?}");
    assert!(
        tasks.iter().all(|t| complete(t) && t.desired == "Complete"),
        "{tasks:#?}"
    );
    let ls = h1.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}} {{.Mode}} {{.Replicas}}",
    ]);
    // Docker's REPLICAS for a job: `running/desired (done/total completed)`; nothing
    // runs any more and all 3 completions are done.
    let row = ls.trim();
    assert!(
        row.starts_with("once replicated job 0/") && row.ends_with(" (3/3 completed)"),
        "{row}"
    );
}

#[test]
fn draining_a_node_moves_its_tasks_away() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "6",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_running(h1, "web", &[("host1", 2), ("host2", 2), ("host3", 2)]);

    h1.ok(&["node", "update", "--availability", "drain", "host2"]);
    wait_running(h1, "web", &[("host1", 3), ("host3", 3)]);
    wait_for(CONVERGE, "no container running on host2", || {
        let running: Vec<_> = cluster
            .host(2)
            .containers()
            .into_iter()
            .filter(|c| c.status == "running")
            .collect();
        running.is_empty().then_some(())
    });
    let nodes = h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Availability}}"]);
    assert!(nodes.lines().any(|l| l == "host2 Drain"), "{nodes}");
}

#[test]
fn a_task_over_its_memory_limit_is_killed_and_says_oom() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "hog",
        "--limit-memory",
        "32M",
        "--restart-condition",
        "none",
        &image,
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    let tasks = wait_tasks(h1, "hog", CONVERGE, "the hog task to fail", |tasks| {
        tasks.iter().any(|t| t.current.starts_with("Failed"))
    });
    let task = tasks
        .iter()
        .find(|t| t.current.starts_with("Failed"))
        .unwrap();
    assert!(task.error.to_uppercase().contains("OOM"), "{tasks:#?}");
    let table = h1.ok(&["service", "ps", "hog", "--no-trunc"]);
    assert!(table.contains(&task.error), "{table}");
}

#[test]
fn restarting_a_worker_daemon_leaves_its_containers_running() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let host2 = cluster.host(2);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "keep",
        "--replicas",
        "2",
        "--constraint",
        "node.hostname==host2",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let before = wait_running(h1, "keep", &[("host2", 2)]);
    let containers_before = host2.containers();
    assert_eq!(containers_before.len(), 2, "{containers_before:?}");
    // Every check is made; what is wrong is reported all at once.
    let mut wrong = Vec::new();
    let wrote = h1.rswarm(&["exec", "keep.1", "sh", "-c", "echo kept > /tmp/kept"]);
    if !wrote.success() {
        wrong.push(format!("writing /tmp/kept in keep.1 failed:\n{wrote}"));
    }

    host2.restart();
    wait_for(FAILOVER, "host2 Ready after its restart", || {
        h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .lines()
            .any(|l| l == "host2 Ready")
            .then_some(())
    });
    // The restarted agent has handled its assignments (and would have
    // wrongly replaced what it found by now).
    agent_caught_up(h1, &image, host2);
    let after = tasks(h1, "keep");
    let summary = |tasks: &[Task]| -> Vec<(String, String, String, bool)> {
        let mut rows: Vec<_> = tasks
            .iter()
            .map(|t| (t.id.clone(), t.name.clone(), t.node.clone(), t.is_running()))
            .collect();
        rows.sort();
        rows
    };
    if summary(&after) != summary(&before) {
        wrong.push(format!(
            "tasks were replaced or restarted: before {before:#?}\nafter {after:#?}"
        ));
    }
    let containers_after = host2.containers();
    if containers_after != containers_before {
        wrong.push(format!(
            "the containers changed (same IDs and PIDs expected): before {containers_before:#?}\nafter {containers_after:#?}"
        ));
    }
    let node_ps = h1.ok(&["node", "ps", "host2", "-q", "--no-trunc"]);
    let mut listed: Vec<&str> = node_ps.lines().collect();
    let mut expected: Vec<&str> = before.iter().map(|t| t.id.as_str()).collect();
    listed.sort();
    expected.sort();
    if listed != expected {
        wrong.push(format!("node ps host2 lists {listed:?}, not {expected:?}"));
    }
    let read = h1.rswarm(&["exec", "keep.1", "cat", "/tmp/kept"]);
    if !read.success() || read.stdout.trim() != "kept" {
        wrong.push(format!("/tmp/kept is not there after the restart:\n{read}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn a_missing_image_is_rejected_with_the_registrys_answer() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().image("nope:1");
    let out = h1.rswarm_timeout(
        &["service", "create", "--name", "nope", &image],
        CREATE_TIMEOUT,
    );
    assert!(!out.success() && !out.timed_out, "{out}");
    let says_why = |text: &str| {
        let text = text.to_lowercase();
        text.contains("pull access denied") || text.contains("not found")
    };
    assert!(says_why(&out.stderr), "{out}");

    let tasks = tasks(h1, "nope");
    let rejected: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.current.starts_with("Rejected"))
        .collect();
    assert!(!rejected.is_empty(), "{tasks:#?}");
    assert!(rejected.iter().all(|t| says_why(&t.error)), "{tasks:#?}");
    assert!(
        containers_per_host(&cluster).is_empty(),
        "no container was started"
    );
}

#[test]
fn invalid_flags_and_specs_are_refused_before_anything_is_stored() {
    // Refusals need no workers: one manager.
    let cluster = Cluster::with_registry(1).expect("a host and a registry");
    cluster.init_swarm(1, 0).expect("a one-node swarm");
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();

    let refusals: &[(&[&str], &[&str])] = &[
        (&["--replicas", "-1"], &["replicas", "-1"]),
        (
            &["--mode", "global", "--replicas", "2"],
            &["replicas", "global"],
        ),
        (
            &["--constraint", "node.role=worker"],
            &["node.role=worker", "constraint"],
        ),
        (&["--publish", "8080:eighty"], &["eighty", "publish"]),
        (&["--limit-memory", "12Q"], &["12Q"]),
        (&["--restart-condition", "sometimes"], &["sometimes"]),
        (&["--mode", "sideways"], &["sideways"]),
    ];
    // Every refusal is checked; what is wrong is reported all at once.
    let mut wrong = Vec::new();
    for (flags, mentions) in refusals {
        let mut args = vec!["service", "create", "--detach", "--name", "bad"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&image, "httpd", "-f", "-p", "80"]);
        let out = h1.rswarm(&args);
        let lines: Vec<&str> = out.stderr.trim().lines().collect();
        if out.success() || out.timed_out {
            wrong.push(format!("accepted:\n{out}"));
        } else if lines.len() != 1 {
            wrong.push(format!("not a one-line error:\n{out}"));
        } else if !mentions.iter().any(|m| lines[0].contains(m)) {
            wrong.push(format!("the error names none of {mentions:?}:\n{out}"));
        }
    }
    // An unknown flag: the CLI's usual refusal, whose first line names it.
    let out = h1.rswarm(&["service", "create", "--name", "bad", "--bogus-flag", &image]);
    let first = out.stderr.lines().next().unwrap_or_default();
    if out.success() || !first.contains("--bogus-flag") {
        wrong.push(format!("an unknown flag:\n{out}"));
    }
    let stored = h1.ok(&["service", "ls", "-q"]);
    if !stored.trim().is_empty() {
        wrong.push(format!("services were stored: {stored}"));
    }
    if !cluster.host(1).containers().is_empty() {
        wrong.push("containers were started".to_string());
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn service_logs_gather_every_nodes_tasks_and_follow() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "chatty",
        "--replicas",
        "3",
        &image,
        "sh",
        "-c",
        "echo hello from $(hostname); i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done",
    ]);
    wait_running(h1, "chatty", &[("host1", 1), ("host2", 1), ("host3", 1)]);

    // Docker's prefix: `<service>.<slot>.<task id>@<node>    | <line>`.
    let prefix_node = |line: &str| -> Option<String> {
        let (prefix, _) = line.split_once(" | ")?;
        let (task, node) = prefix.trim().split_once('@')?;
        task.starts_with("chatty.").then(|| node.to_string())
    };
    let logs = wait_for(CONVERGE, "hello lines from the three nodes", || {
        let logs = h1.ok(&["service", "logs", "chatty"]);
        let nodes: BTreeSet<String> = logs
            .lines()
            .filter(|l| l.contains("| hello from "))
            .filter_map(prefix_node)
            .collect();
        (nodes.len() == 3).then_some(logs)
    });

    let tail = h1.ok(&["service", "logs", "--tail", "1", "chatty"]);
    let tails: Vec<&str> = tail.lines().filter(|l| prefix_node(l).is_some()).collect();
    assert_eq!(tails.len(), 3, "one line per task:\n{tail}");

    // -f streams lines that were not there before.
    let seen: BTreeSet<String> = h1
        .ok(&["service", "logs", "chatty"])
        .lines()
        .map(String::from)
        .collect();
    let socket = format!("unix://{}", h1.socket().display());
    let binary = h1.binary();
    let follow = h1.spawn_in_background(&[
        binary.to_str().unwrap(),
        "-H",
        &socket,
        "service",
        "logs",
        "-f",
        "chatty",
    ]);
    wait_for(
        Duration::from_secs(30),
        "a new line from `service logs -f`",
        || {
            follow
                .output()
                .lines()
                .any(|l| l.contains("| tick ") && !seen.contains(l))
                .then_some(())
        },
    );
    drop(follow);

    // host3 dies: logs still answer with what the other nodes have, naming host3.
    cluster.host(3).kill();
    let out = h1.rswarm_timeout(&["service", "logs", "chatty"], Duration::from_secs(45));
    assert!(!out.timed_out, "{out}");
    let nodes: BTreeSet<String> = out.stdout.lines().filter_map(prefix_node).collect();
    assert!(nodes.contains("host1") && nodes.contains("host2"), "{out}");
    assert!(
        out.stderr.contains("host3"),
        "a warning names the node it could not reach:\n{out}"
    );

    // Every line printed has the prefix: nothing else (no blank lines) in between.
    for printed in [&logs, &tail] {
        assert!(
            printed.lines().all(|l| prefix_node(l).is_some()),
            "lines without a task prefix:\n{printed}"
        );
    }
}

#[test]
fn exec_runs_in_the_task_wherever_it_is() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "3",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let tasks = wait_running(h1, "web", &[("host1", 1), ("host2", 1), ("host3", 1)]);

    let mut hostnames = BTreeSet::new();
    for slot in 1..=3 {
        let task = format!("web.{slot}");
        let node = &tasks.iter().find(|t| t.name == task).unwrap().node;
        let hostname = h1.ok(&["exec", &task, "hostname"]).trim().to_string();
        // The default hostname is the first 12 characters of the container's ID, as
        // runc on the task's node knows it.
        let host = cluster.hosts().iter().find(|h| h.name() == node).unwrap();
        let ids: Vec<String> = host.containers().into_iter().map(|c| c.id).collect();
        assert!(
            hostname.chars().count() == 12 && ids.iter().any(|id| id.starts_with(&hostname)),
            "{task} on {node}: hostname {hostname:?} is not the start of a container ID there: {ids:?}"
        );
        assert_eq!(
            h1.ok(&["exec", &task, "cat", "/etc/hostname"]).trim(),
            hostname
        );
        // In the task's PID namespace: its PID 1 is httpd.
        let init = h1.ok(&["exec", &task, "cat", "/proc/1/cmdline"]);
        assert!(init.contains("httpd"), "{task} on {node}: {init:?}");
        hostnames.insert(hostname);
    }
    assert_eq!(hostnames.len(), 3, "three different tasks: {hostnames:?}");

    let out = h1.rswarm(&["exec", "web.1", "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), Some(7), "{out}");
    let remote = tasks.iter().find(|t| t.node == "host3").unwrap();
    let out = h1.rswarm(&[
        "exec",
        &remote.name,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    assert_eq!(
        (out.code(), out.stdout.as_str(), out.stderr.as_str()),
        (Some(5), "out\n", "err\n"),
        "{out}"
    );
}

#[test]
fn scale_down_then_remove_leaves_no_container() {
    let cluster = swarm();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "6",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_running(h1, "web", &[("host1", 2), ("host2", 2), ("host3", 2)]);

    h1.ok(&["service", "scale", "web=3"]);
    wait_tasks(h1, "web", CONVERGE, "3 running tasks of web", |tasks| {
        running_per_node(tasks).values().sum::<usize>() == 3
    });
    wait_for(CONVERGE, "3 running containers in all", || {
        (containers_per_host(&cluster).values().sum::<usize>() == 3).then_some(())
    });
    // As in Docker, the dropped slots' tasks leave `service ps` once stopped, and
    // their containers are deleted with them.
    wait_tasks(h1, "web", CONVERGE, "only 3 tasks listed", |tasks| {
        tasks.len() == 3
    });
    wait_for(
        CONVERGE,
        "only 3 containers left, stopped ones included",
        || {
            let all: usize = cluster.hosts().iter().map(|h| h.containers().len()).sum();
            (all == 3).then_some(())
        },
    );
    let ls = h1.ok(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
    assert_eq!(
        ls.trim(),
        "web 3/3",
        "service ps:\n{}\ncontainers: {:#?}",
        h1.ok(&["service", "ps", "web"]),
        cluster
            .hosts()
            .iter()
            .map(|h| (h.name(), h.containers()))
            .collect::<Vec<_>>()
    );

    h1.ok(&["service", "rm", "web"]);
    assert_eq!(h1.ok(&["service", "ls", "-q"]).trim(), "");
    for host in cluster.hosts() {
        wait_for(
            CONVERGE,
            &format!("no container left on {}", host.name()),
            || {
                let out = host.runc(&["list", "-q"]);
                (out.success() && out.stdout.trim().is_empty()).then_some(())
            },
        );
    }
}

#[test]
fn a_loaded_image_runs_with_no_registry() {
    let cluster = Cluster::start(3).expect("three hosts, no registry");
    cluster.init_swarm(1, 2).expect("a swarm");
    let (h1, host2) = (cluster.host(1), cluster.host(2));
    let archive = cluster.dir().join("busybox.tar");
    images::busybox()
        .write_docker_archive(&archive, "loaded/busybox:1")
        .expect("a docker-save archive");

    let loaded = host2.ok(&["image", "load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("loaded/busybox:1"), "{loaded}");
    let images = host2.ok(&["image", "ls"]);
    assert!(images.contains("loaded/busybox"), "{images}");

    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "local",
        "--constraint",
        "node.hostname==host2",
        "loaded/busybox:1",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_running(h1, "local", &[("host2", 1)]);
    let running: Vec<_> = host2
        .containers()
        .into_iter()
        .filter(|c| c.status == "running")
        .collect();
    assert_eq!(running.len(), 1, "{running:?}");
    let init = h1.ok(&["exec", "local.1", "cat", "/proc/1/cmdline"]);
    assert!(init.contains("httpd"), "{init:?}");
}
