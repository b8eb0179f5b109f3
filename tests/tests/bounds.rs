//! Every input is bounded, end to end on a real one-host swarm with a registry:
//! replicas over the limit and specs over the size limit are refused with a
//! message naming the limit and leave nothing behind; big services (just under
//! the size limit) are created, listed and inspected without breaking any list;
//! a crash-looping task restarts after its delay, its slot keeps only the task
//! history limit, and `--restart-max-attempts` stops it.

use std::collections::BTreeSet;
use std::time::Duration;

use rswarm_tests::{try_wait_for, wait_for, Cluster, Host};

/// How long a service may take to converge with other tests beside it.
const CONVERGE: Duration = Duration::from_secs(240);
/// How long `service create` of 36 big tasks may take when it waits for
/// them (about a minute on an idle machine; every status report rewrites a
/// 500 KB task through Raft, and the machine may be shared).
const CREATE_TIMEOUT: Duration = Duration::from_secs(480);

/// `-e` flags for an environment of `total` bytes, in values of 100 KB (one
/// argument of a command line may not pass 128 KiB).
fn big_env(total: usize) -> Vec<String> {
    let mut flags = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let n = left.min(100_000);
        flags.push("-e".to_string());
        flags.push(format!("BIG{i}={}", "x".repeat(n)));
        left -= n;
        i += 1;
    }
    flags
}

fn service_names(host: &Host) -> BTreeSet<String> {
    host.ok(&["service", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// `service ps SERVICE` as (ID, desired state, current state) rows.
fn ps(host: &Host, service: &str) -> Option<Vec<(String, String, String)>> {
    let out = host.rswarm(&[
        "service",
        "ps",
        service,
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.DesiredState}}|{{.CurrentState}}",
    ]);
    if !out.success() {
        return None;
    }
    Some(
        out.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut f = l.splitn(3, '|').map(|s| s.trim().to_string());
                let mut next = || f.next().unwrap_or_default();
                (next(), next(), next())
            })
            .collect(),
    )
}

fn swarm() -> Cluster {
    let cluster = Cluster::with_registry(1).expect("start a one-host cluster with a registry");
    cluster.init_swarm(1, 0).expect("init the swarm");
    cluster
}

#[test]
fn replicas_and_spec_size_over_the_limits_are_refused_and_big_services_still_list() {
    let cluster = swarm();
    let host = cluster.host(1);
    let image = cluster.registry().busybox();

    // Replicas over the limit: refused naming the limit, nothing created.
    let err = host.fails(&[
        "service",
        "create",
        "--detach",
        "--name",
        "huge",
        "--replicas",
        "1000000000",
        &image,
        "sleep",
        "3600",
    ]);
    assert!(
        err.trim()
            .ends_with("replicas 1000000000 is over the limit of 10000 per service"),
        "the refusal names the limit: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(service_names(host).is_empty(), "nothing was created");

    // Scaling over the limit is refused too, and changes nothing.
    host.ok(&[
        "service", "create", "--detach", "--name", "small", &image, "sleep", "3600",
    ]);
    let err = host.fails(&["service", "scale", "--detach", "small=10001"]);
    assert!(
        err.contains("small: replicas 10001 is over the limit of 10000 per service"),
        "{err}"
    );
    let replicas = host.ok(&[
        "service",
        "inspect",
        "small",
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ]);
    assert_eq!(replicas.trim(), "1", "scale changed nothing");
    host.ok(&["service", "rm", "small"]);

    // A ~1 MB spec: refused naming its size and the limit, nothing created.
    let mut args: Vec<String> = ["service", "create", "--detach", "--name", "toobig"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(big_env(1_000_000));
    args.extend([image.clone(), "sleep".into(), "3600".into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = host.fails(&argv);
    assert!(
        err.contains("service spec is ")
            && err.contains("bytes, over the limit of 524288 bytes (512 KiB)"),
        "{err}"
    );
    assert!(
        !service_names(host).contains("toobig"),
        "nothing was created"
    );

    // Just under the limit, one replica: created with exit 0, and the create
    // follows its task to Running (the follow-up lists work).
    let mut args: Vec<String> = ["service", "create", "--name", "big1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(big_env(500_000));
    args.extend([image.clone(), "sleep".into(), "3600".into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = host.rswarm_timeout(&argv, CREATE_TIMEOUT);
    assert!(
        out.success(),
        "create of a spec under the limit failed\n{out}"
    );
    assert!(
        !out.stderr.contains("could not be followed"),
        "create lost sight of its task\n{out}"
    );

    // 36 more replicas of such a spec: ~18 MB of tasks, more than one answer
    // may carry even with the CLI's raised 16 MiB limit, so only pages get
    // them across. A constraint no node meets keeps them pending (no
    // containers: the machine is shared); the task objects are all there.
    let mut args: Vec<String> = [
        "service",
        "create",
        "--detach",
        "--name",
        "big",
        "--replicas",
        "36",
        "--constraint",
        "node.labels.nowhere==true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(big_env(500_000));
    args.extend([image.clone(), "sleep".into(), "3600".into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    host.ok(&argv);
    let tasks = wait_for(CONVERGE, "36 tasks of big in service ps", || {
        ps(host, "big").filter(|t| t.len() == 36)
    });
    assert!(
        tasks.iter().all(|(_, desired, _)| desired == "Running"),
        "{tasks:?}"
    );
    assert_eq!(
        service_names(host),
        BTreeSet::from(["big".to_string(), "big1".to_string()]),
        "service ls works"
    );
    let ls = host.ok(&["service", "ls"]);
    assert!(ls.contains("0/36"), "service ls shows the replicas\n{ls}");
    let all = host.ok(&["service", "ps", "big", "big1", "--format", "{{.Name}}"]);
    assert_eq!(all.lines().count(), 37, "service ps of both works\n{all}");
    let node_ps = host.ok(&[
        "node",
        "ps",
        "self",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Name}}",
    ]);
    assert!(node_ps.contains("big1.1"), "node ps works\n{node_ps}");
    host.ok(&["service", "rm", "big", "big1"]);
    wait_for(CONVERGE, "the big service's tasks gone", || {
        ps(host, "big").is_none().then_some(())
    });
}

#[test]
fn a_crash_loop_backs_off_keeps_bounded_history_and_max_attempts_stop_it() {
    let cluster = swarm();
    let host = cluster.host(1);
    let image = cluster.registry().busybox();
    host.ok(&["swarm", "update", "--task-history-limit", "2"]);
    let limit = 2;

    host.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "crash",
        "--restart-delay",
        "1s",
        &image,
        "false",
    ]);
    // Watch the slot restart well past the history limit; at every look it
    // holds at most limit + 1 tasks.
    let mut seen = BTreeSet::new();
    let mut most = 0;
    let waited = try_wait_for(
        CONVERGE,
        "the crash-looping task to be restarted 6 times",
        || {
            let tasks = ps(host, "crash")?;
            most = most.max(tasks.len());
            assert!(
                tasks.len() <= limit + 1,
                "the slot holds {} tasks, over the history limit {limit} + 1: {tasks:?}",
                tasks.len()
            );
            seen.extend(tasks.into_iter().map(|(id, _, _)| id));
            (seen.len() >= limit + 5).then_some(())
        },
    );
    waited.unwrap_or_else(|e| panic!("{e}; saw {} tasks", seen.len()));
    assert!(
        most >= limit,
        "history was kept at all (at most {most} tasks seen)"
    );
    host.ok(&["service", "rm", "crash"]);

    // At most two restarts: three tasks, all failed, then nothing more.
    host.ok(&["swarm", "update", "--task-history-limit", "5"]);
    host.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "capped",
        "--restart-delay",
        "1s",
        "--restart-max-attempts",
        "2",
        &image,
        "false",
    ]);
    wait_for(
        CONVERGE,
        "three failed tasks of capped, all shut down",
        || {
            let tasks = ps(host, "capped")?;
            (tasks.len() == 3
                && tasks.iter().all(|(_, desired, current)| {
                    desired == "Shutdown" && current.starts_with("Failed")
                }))
            .then_some(())
        },
    );
    // Proof the orchestrator got past the moment a third restart would be
    // due: a service made now, with the same delay, restarts once.
    host.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "tick",
        "--restart-delay",
        "1s",
        &image,
        "false",
    ]);
    wait_for(CONVERGE, "tick restarted once", || {
        (ps(host, "tick")?.len() >= 2).then_some(())
    });
    let capped = ps(host, "capped").expect("service ps capped");
    assert_eq!(capped.len(), 3, "no restart after the second: {capped:?}");
}
