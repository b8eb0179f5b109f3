//! Users' writes racing the managers' own writes, end to end: three hosts (one
//! manager, two workers) and a registry. Services that publish ports are created
//! and, while their tasks are being placed and started (the allocator writing VIPs
//! and ports, the orchestrator, scheduler and agents writing task status), eight
//! `service scale` and `node update --label-add` commands run at once. A user's
//! write is refused only when the spec it read was changed by someone else, so
//! every one of them succeeds on its first try, and the final state shows every
//! write. Each command owns one spec (one service or one node): two users
//! changing the same spec at once are meant to refuse one another.

use std::time::{Duration, Instant};

use rswarm_tests::lists::tasks;
use rswarm_tests::{wait_for, Cluster, Host};

/// How long the scaled services may take to converge (image pulls, runc), with
/// other tests running beside it on two cores.
const CONVERGE: Duration = Duration::from_secs(120);
/// The services scaled at once, each by one command.
const SERVICES: [&str; 5] = ["c1", "c2", "c3", "c4", "c5"];
/// Replicas each service is scaled to.
const REPLICAS: usize = 2;

/// The value of the node label `key` on `node`, as `node inspect` shows it.
fn label_of(host: &Host, node: &str, key: &str) -> String {
    host.ok(&[
        "node",
        "inspect",
        node,
        "--format",
        &format!("{{{{index .Spec.Labels \"{key}\"}}}}"),
    ])
    .trim()
    .to_string()
}

#[test]
fn concurrent_scales_and_label_adds_all_succeed_while_tasks_start() {
    let started = Instant::now();
    let cluster = Cluster::with_registry(3).expect("three hosts and a registry");
    cluster
        .init_swarm(1, 2)
        .expect("a swarm of one manager and two workers");
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();

    // Services whose ports and VIPs the allocator is still writing, and whose
    // tasks are still being placed and started, when the users' writes arrive.
    for (i, name) in SERVICES.iter().enumerate() {
        let publish = format!("{}:80", 8081 + i);
        h1.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--publish",
            &publish,
            &image,
            "sleep",
            "3600",
        ]);
    }

    let mut commands: Vec<Vec<String>> = SERVICES
        .iter()
        .map(|s| {
            ["service", "scale", "--detach", &format!("{s}={REPLICAS}")]
                .map(String::from)
                .to_vec()
        })
        .collect();
    for host in cluster.hosts() {
        commands.push(
            [
                "node",
                "update",
                "--label-add",
                &format!("rack=r{}", host.index()),
                host.name(),
            ]
            .map(String::from)
            .to_vec(),
        );
    }
    assert_eq!(commands.len(), 8);

    let began = Instant::now();
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = commands
            .iter()
            .map(|argv| {
                scope.spawn(move || {
                    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
                    (argv.join(" "), h1.rswarm(&args))
                })
            })
            .collect();
        running
            .into_iter()
            .map(|t| t.join().expect("a command thread panicked"))
            .collect()
    });
    eprintln!("8 concurrent writes answered in {:?}", began.elapsed());
    // With RSWARM_TEST_LOG=info,rswarm_manager::controlapi::spec_write=debug
    // the manager logs each write it redid after a status write raced it.
    let redone = std::fs::read_to_string(h1.log_path())
        .unwrap_or_default()
        .matches("redoing it on a fresh read")
        .count();
    eprintln!("spec writes redone by the manager after a race: {redone}");
    for (command, out) in &outputs {
        assert!(
            out.success(),
            "`rswarm {command}` failed on its first try\n{out}"
        );
    }

    // Every write shows in the final state: each service runs its replicas,
    // each node carries its label.
    for host in cluster.hosts() {
        assert_eq!(
            label_of(h1, host.name(), "rack"),
            format!("r{}", host.index())
        );
    }
    for name in SERVICES {
        wait_for(
            CONVERGE,
            &format!("{REPLICAS} running {name} tasks"),
            || {
                let running = tasks(h1, name).iter().filter(|t| t.is_running()).count();
                (running == REPLICAS).then_some(())
            },
        );
    }
    let ls = h1.ok(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
    for name in SERVICES {
        assert!(
            ls.lines()
                .any(|l| l == format!("{name} {REPLICAS}/{REPLICAS}")),
            "{ls}"
        );
    }
    eprintln!("concurrency test took {:?}", started.elapsed());
}
