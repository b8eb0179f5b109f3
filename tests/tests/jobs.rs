//! Jobs on real containers, end to end: services that run to completion.
//!
//! - `--mode global-job`: one task on every node that was in the swarm when the
//!   job started, each to Complete, and none on a node that joins later
//!   (swarmkit's rule: a node created after the job's last execution gets no
//!   run); `service ls` shows Docker's `running/desired (done/total completed)`.
//! - `--mode replicated-job --replicas N --max-concurrent M`: the tasks write
//!   how many of them run at that moment into a directory bind-mounted from the
//!   machine, so the cap is read from what the containers themselves saw.
//!
//! (`a_job_runs_to_completion_and_is_not_restarted` in `services.rs` covers a
//! replicated job with the default concurrency not being run again.)

use std::collections::BTreeSet;
use std::time::Duration;

use rswarm_tests::lists::{self, tasks, Task};
use rswarm_tests::{wait_for, Cluster, Host};

/// How long a job or service may take to get where it goes (image pull,
/// scheduling, runc), with other tests running beside it on two cores.
const CONVERGE: Duration = Duration::from_secs(90);

/// Waits until `done(tasks of service)` within [`CONVERGE`].
fn wait_tasks(
    host: &Host,
    service: &str,
    what: &str,
    done: impl FnMut(&[Task]) -> bool,
) -> Vec<Task> {
    lists::wait_tasks(host, service, CONVERGE, what, done)
}

/// The `service ls` row of `service` as `NAME|MODE|REPLICAS`.
fn ls_row(host: &Host, service: &str) -> String {
    let ls = host.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}}|{{.Mode}}|{{.Replicas}}",
    ]);
    ls.lines()
        .find(|l| l.starts_with(&format!("{service}|")))
        .unwrap_or_else(|| panic!("no {service} in `service ls`:\n{ls}"))
        .to_string()
}

#[test]
fn a_global_job_runs_once_on_every_node_and_not_on_a_node_that_joins_later() {
    let cluster = Cluster::with_registry(4).unwrap();
    // host1 manages, host2 and host3 work; host4 stays out for now.
    cluster.init_swarm(1, 2).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "once",
        "--mode",
        "global-job",
        &image,
        "true",
    ]);
    let first_three: BTreeSet<String> = ["host1", "host2", "host3"].map(String::from).into();
    let done = wait_tasks(h1, "once", "a complete task on host1..host3", |t| {
        let nodes: BTreeSet<String> = t
            .iter()
            .filter(|t| t.is_complete())
            .map(|t| t.node.clone())
            .collect();
        nodes == first_three
    });
    assert_eq!(done.len(), 3, "one run per node, none again: {done:#?}");
    assert!(
        done.iter().all(|t| t.desired == "Complete"),
        "nothing more is asked of them: {done:#?}"
    );
    // Docker's REPLICAS for a global job: nothing runs, nothing is still to
    // run, 3 of 3 completed.
    assert_eq!(ls_row(h1, "once"), "once|global job|0/0 (3/3 completed)");

    // host4 joins after the job started.
    let h4 = cluster.host(4);
    let token = h1
        .ok(&["swarm", "join-token", "worker", "-q"])
        .trim()
        .to_string();
    h4.ok(&[
        "join",
        "--token",
        &token,
        "--advertise-addr",
        h4.addr(),
        &h1.swarm_addr(),
    ]);
    // The positive twin: a global service made now runs on host4 too, so the
    // orchestrator has gone over every service with host4 in the swarm.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "everywhere",
        "--mode",
        "global",
        &image,
        "sleep",
        "100000",
    ]);
    let all_four: BTreeSet<String> = ["host1", "host2", "host3", "host4"]
        .map(String::from)
        .into();
    let everywhere = wait_tasks(h1, "everywhere", "the global service on all 4 nodes", |t| {
        let nodes: BTreeSet<String> = t
            .iter()
            .filter(|t| t.is_running())
            .map(|t| t.node.clone())
            .collect();
        nodes == all_four
    });

    let after = tasks(h1, "once");
    let runs = |t: &[Task]| -> BTreeSet<(String, String)> {
        t.iter().map(|t| (t.id.clone(), t.node.clone())).collect()
    };
    assert_eq!(
        runs(&after),
        runs(&done),
        "the job did not run again, nor on host4: {after:#?}"
    );
    assert!(after.iter().all(Task::is_complete), "{after:#?}");
    assert_eq!(ls_row(h1, "once"), "once|global job|0/0 (3/3 completed)");
    // host4 runs the global service's task and nothing else.
    let everywhere_ids: BTreeSet<&str> = everywhere.iter().map(|t| t.id.as_str()).collect();
    let on_h4 = h4.containers();
    assert!(
        !on_h4.is_empty() && on_h4.iter().all(|c| everywhere_ids.contains(c.id.as_str())),
        "host4's containers are the global service's only: {on_h4:#?}"
    );
}

#[test]
fn a_replicated_job_runs_at_most_max_concurrent_at_once_until_n_completions() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    // Each run holds a file in running/ for 3 s and writes down, when it
    // starts and before it ends, how many files are there: how many runs
    // overlap it. Every node is on this machine, so all see the same dir.
    let share = cluster.dir().join("share");
    std::fs::create_dir_all(share.join("running")).expect("make the shared dir");
    let mount = format!("type=bind,source={},target=/share", share.display());
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "batch",
        "--mode",
        "replicated-job",
        "--replicas",
        "6",
        "--max-concurrent",
        "2",
        "--mount",
        &mount,
        &image,
        "sh",
        "-c",
        "f=$(mktemp /share/running/XXXXXX) && ls /share/running | wc -l >> /share/seen \
         && sleep 3 && ls /share/running | wc -l >> /share/seen && rm \"$f\"",
    ]);
    let mut most_running = 0;
    let done = wait_tasks(h1, "batch", "6 complete runs of the job", |t| {
        let running = t
            .iter()
            .filter(|t| t.current.starts_with("Running") && t.desired == "Complete")
            .count();
        most_running = most_running.max(running);
        assert!(running <= 2, "more than 2 runs at once: {t:#?}");
        t.iter().filter(|t| t.is_complete()).count() == 6
    });
    assert_eq!(done.len(), 6, "no run failed or ran again: {done:#?}");
    let names: BTreeSet<&str> = done.iter().map(|t| t.name.as_str()).collect();
    let slots: BTreeSet<String> = (1..=6).map(|i| format!("batch.{i}")).collect();
    assert_eq!(
        names,
        slots.iter().map(String::as_str).collect(),
        "one run per slot"
    );
    assert!(done.iter().all(|t| t.desired == "Complete"), "{done:#?}");
    assert_eq!(
        ls_row(h1, "batch"),
        "batch|replicated job|0/0 (6/6 completed)"
    );

    // What the runs saw: 2 lines each, never more than 2 at once, and at
    // least once 2 at once (the cap is used, not a one-by-one run).
    let seen = std::fs::read_to_string(share.join("seen")).expect("read what the runs saw");
    let counts: Vec<u32> = seen
        .lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("not a count: {l:?}"))
        })
        .collect();
    assert_eq!(counts.len(), 12, "6 runs, 2 lines each: {counts:?}");
    assert!(
        counts.iter().all(|&n| (1..=2).contains(&n)),
        "a run saw more than 2 at once: {counts:?}"
    );
    assert!(
        counts.contains(&2),
        "no two runs ever overlapped: {counts:?}"
    );
    // The job's containers are all gone from running (what runc still lists
    // of them has stopped), and the directory is empty again.
    wait_for(CONVERGE, "no job container running", || {
        cluster
            .hosts()
            .iter()
            .all(|h| h.containers().iter().all(|c| c.status != "running"))
            .then_some(())
    });
    let left = std::fs::read_dir(share.join("running"))
        .expect("read running/")
        .count();
    assert_eq!(left, 0, "every run removed its file");
    eprintln!("most runs at once seen by service ps: {most_running}; by the runs: {counts:?}");
}
