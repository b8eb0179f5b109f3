//! `/metrics` on a live 3-manager cluster: every node is scraped on its
//! `--metrics-addr` and every control-plane family (cluster view, Raft,
//! scheduler, orchestrator, dispatcher) is there with values a user can
//! check against the CLI: running replicas equal `service ls`, exactly one
//! leader across the managers, the tasks placed are counted, latency
//! histograms have observations, a pending task is blamed on its reason, a
//! crash-looping task's restarts are counted, a rolling update in progress
//! shows, and a node that stops heartbeating is counted as missed.

use std::time::Duration;

use rswarm_tests::metrics::{scrape, Scrape};
use rswarm_tests::{wait_for, Cluster, Host};

/// Image pull, scheduling and runc on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// The REPLICAS cell of `service ls` for `service`: (running, desired).
fn ls_replicas(h: &Host, service: &str) -> (f64, f64) {
    let out = h.ok(&[
        "service",
        "ls",
        "--filter",
        &format!("name={service}"),
        "--format",
        "{{.Name}} {{.Replicas}}",
    ]);
    let cell = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{service} ")))
        .unwrap_or_else(|| panic!("{service} not in service ls: {out}"));
    let (running, desired) = cell
        .split_whitespace()
        .next()
        .and_then(|c| c.split_once('/'))
        .unwrap_or_else(|| panic!("REPLICAS cell {cell:?}"));
    (
        running.parse().expect("running count"),
        desired.parse().expect("desired count"),
    )
}

#[test]
fn every_control_plane_family_is_on_every_node_with_sane_values() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(3, 0).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    let create = |args: &[&str]| {
        let mut all = vec!["service", "create", "--detach"];
        all.extend_from_slice(args);
        h1.ok(&all);
    };
    create(&["--name", "web", "--replicas", "3", &image, "sleep", "3600"]);
    create(&[
        "--name", "agent", "--mode", "global", &image, "sleep", "3600",
    ]);
    // Never placeable: counted as pending for its constraint.
    create(&[
        "--name",
        "nowhere",
        "--constraint",
        "node.labels.zone==mars",
        &image,
        "sleep",
        "3600",
    ]);
    // Fails at once and is restarted by its policy, again and again.
    create(&[
        "--name",
        "crash",
        "--restart-condition",
        "on-failure",
        "--restart-delay",
        "0s",
        &image,
        "sh",
        "-c",
        "exit 3",
    ]);
    h1.wait_running_tasks("web", 3);
    h1.wait_running_tasks("agent", 3);

    // Raft: exactly one leader, every manager on the same term, the
    // indexes moving, the latency histograms observed.
    let leader = wait_for(CONVERGE, "one Raft leader in /metrics", || {
        let leaders: Vec<usize> = cluster
            .hosts()
            .iter()
            .filter(|h| scrape(h).get("rswarm_raft_leader") == Some(1.0))
            .map(|h| h.index())
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    });
    let lh = cluster.host(leader);
    let leader_id = lh.node_id();
    let scrapes: Vec<Scrape> = cluster.hosts().iter().map(scrape).collect();
    let term = scrapes[0].value("rswarm_raft_term");
    assert!(term >= 1.0, "term {term}");
    for (h, m) in cluster.hosts().iter().zip(&scrapes) {
        let who = h.name();
        assert_eq!(m.value("rswarm_swarm_active"), 1.0, "{who}");
        assert_eq!(m.family("rswarm_node_info").len(), 1, "{who}");
        assert!(m.text.contains("role=\"manager\""), "{who}:\n{}", m.text);
        assert_eq!(
            m.value("rswarm_raft_term"),
            term,
            "{who}: every manager on one term"
        );
        assert_eq!(m.value("rswarm_raft_voters"), 3.0, "{who}");
        let commit = m.value("rswarm_raft_commit_index");
        let applied = m.value("rswarm_raft_applied_index");
        assert!(
            applied >= 10.0 && commit >= 10.0,
            "{who}: commit {commit}, applied {applied}"
        );
        assert!(m.value("rswarm_raft_leader_changes_total") >= 1.0, "{who}");
        assert!(
            m.value("rswarm_raft_apply_duration_seconds_count") > 0.0,
            "{who}"
        );
        assert!(m.get("rswarm_raft_snapshots_total").is_some(), "{who}");
        assert!(m.get("rswarm_raft_snapshot_size_bytes").is_some(), "{who}");
        for family in [
            "rswarm_raft_term",
            "rswarm_raft_commit_index",
            "rswarm_raft_proposal_duration_seconds",
            "rswarm_nodes",
            "rswarm_service_replicas_running",
            "rswarm_scheduler_tasks_scheduled",
            "rswarm_dispatcher_sessions",
        ] {
            assert!(m.has_help(family), "{who}: no HELP for {family}");
        }
        // The cluster view, from each manager's own copy of the store.
        assert_eq!(
            m.value("rswarm_nodes{state=\"ready\",availability=\"active\"}"),
            3.0,
            "{who}"
        );
        assert_eq!(m.value("rswarm_managers"), 3.0, "{who}");
        assert_eq!(
            m.family("rswarm_cluster_leader"),
            vec![(
                format!("rswarm_cluster_leader{{node_id=\"{leader_id}\"}}").as_str(),
                1.0
            )],
            "{who}"
        );
    }
    let lm = &scrapes[leader - 1];
    assert!(lm.value("rswarm_raft_proposal_duration_seconds_count") > 0.0);
    assert!(lm.value("rswarm_raft_proposal_duration_seconds_sum") > 0.0);

    // Replicas as `service ls` counts them, on every manager.
    for service in ["web", "agent"] {
        let mode = if service == "web" {
            "replicated"
        } else {
            "global"
        };
        let labels = format!("{{service=\"{service}\",mode=\"{mode}\"}}");
        wait_for(CONVERGE, &format!("{service} replicas in /metrics"), || {
            let (running, desired) = ls_replicas(h1, service);
            cluster
                .hosts()
                .iter()
                .map(scrape)
                .all(|m| {
                    m.get(&format!("rswarm_service_replicas_running{labels}")) == Some(running)
                        && m.get(&format!("rswarm_service_replicas_desired{labels}"))
                            == Some(desired)
                })
                .then_some(())
        });
    }
    let m = scrape(lh);
    assert_eq!(
        m.value("rswarm_service_replicas_desired{service=\"nowhere\",mode=\"replicated\"}"),
        1.0
    );
    assert_eq!(
        m.value("rswarm_service_replicas_running{service=\"nowhere\",mode=\"replicated\"}"),
        0.0
    );
    assert!(
        m.value("rswarm_tasks{state=\"running\"}") >= 6.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.family("rswarm_tasks").len(),
        14,
        "every task state listed"
    );

    // Scheduler, orchestrator and dispatcher, measured on the leader.
    assert!(
        m.value("rswarm_scheduler_tasks_scheduled_total") >= 6.0,
        "{}",
        m.text
    );
    assert!(m.value("rswarm_scheduler_scheduling_latency_seconds_count") >= 6.0);
    assert_eq!(
        m.value("rswarm_scheduler_pending_tasks{reason=\"constraints\"}"),
        1.0,
        "{}",
        m.text
    );
    wait_for(CONVERGE, "crash restarts counted", || {
        (scrape(lh).value("rswarm_orchestrator_restarts_total") >= 2.0).then_some(())
    });
    assert_eq!(m.value("rswarm_dispatcher_sessions"), 3.0, "one per agent");
    assert!(m.value("rswarm_dispatcher_assignment_messages_total{type=\"complete\"}") >= 3.0);
    assert!(m.value("rswarm_dispatcher_assignment_messages_total{type=\"incremental\"}") >= 1.0);
    assert_eq!(m.value("rswarm_dispatcher_heartbeats_missed_total"), 0.0);
    for s in &scrapes {
        if s.get("rswarm_raft_leader") == Some(0.0) {
            assert_eq!(
                s.value("rswarm_dispatcher_sessions"),
                0.0,
                "followers hold no session"
            );
        }
    }

    // A rolling update in progress shows until it completes.
    assert_eq!(
        m.value("rswarm_orchestrator_rolling_updates{state=\"updating\"}"),
        0.0
    );
    h1.ok(&[
        "service",
        "update",
        "--detach",
        "--force",
        "--update-parallelism",
        "1",
        "--update-delay",
        "20s",
        "web",
    ]);
    wait_for(CONVERGE, "the update counted as updating", || {
        (scrape(lh).get("rswarm_orchestrator_rolling_updates{state=\"updating\"}") == Some(1.0))
            .then_some(())
    });

    // A node that stops heartbeating is counted as missed.
    let gone = cluster
        .hosts()
        .iter()
        .find(|h| h.index() != leader)
        .expect("a follower");
    gone.stop();
    wait_for(CONVERGE, "a missed heartbeat counted", || {
        let m = scrape(lh);
        (m.get("rswarm_dispatcher_heartbeats_missed_total") == Some(1.0)
            && m.get("rswarm_nodes{state=\"down\",availability=\"active\"}") == Some(1.0))
        .then_some(())
    });

    // How long a scrape of the leader takes here, for the report.
    let m = scrape(lh);
    eprintln!(
        "leader /metrics: {} bytes, {} samples, {:?}",
        m.text.len(),
        m.samples.len(),
        m.took
    );
}
