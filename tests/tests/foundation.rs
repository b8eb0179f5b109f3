//! The cluster foundation, end to end on real multi-host clusters made of
//! network namespaces: joining, leader failover, partitions, full restarts,
//! refusals (tokens, certificates, roles) and `--force-new-cluster`.

use std::time::{Duration, Instant};

use rswarm_tests::lists::nodes;
use rswarm_tests::{wait_for, Cluster, Host};

/// The index of the host whose node is the Raft leader, as `asker` sees it.
fn leader(cluster: &Cluster, asker: &Host) -> Option<usize> {
    let out = asker.rswarm(&["node", "ls", "--format", "{{.Hostname}}|{{.ManagerStatus}}"]);
    if !out.success() {
        return None;
    }
    let name = out.stdout.lines().find_map(|l| {
        l.split_once('|')
            .filter(|(_, s)| *s == "Leader")
            .map(|(h, _)| h.to_string())
    })?;
    cluster
        .hosts()
        .iter()
        .find(|h| h.name() == name)
        .map(|h| h.index())
}

fn label_of(host: &Host, node: &str, key: &str) -> Option<String> {
    let out = host.rswarm(&[
        "node",
        "inspect",
        node,
        "--format",
        &format!("{{{{index .Spec.Labels \"{key}\"}}}}"),
    ]);
    out.success().then(|| out.stdout.trim().to_string())
}

#[test]
fn one_manager_and_two_workers_join_and_show_as_ready() {
    let cluster = Cluster::start(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let h1 = cluster.host(1);

    let table = h1.ok(&["node", "ls"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION"),
        "{table}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{table}");
    let me = rows.iter().find(|r| r.contains("host1")).unwrap();
    assert!(
        me.contains(" * ")
            && me.contains("Leader")
            && me.contains("Ready")
            && me.contains("Active"),
        "{table}"
    );

    let rows = nodes(h1);
    assert_eq!(rows.len(), 3);
    for (name, status, manager) in &rows {
        assert_eq!(status, "Ready", "{name}");
        let want = if name == "host1" { "Leader" } else { "" };
        assert_eq!(manager, want, "{name}");
    }
    let workers = h1.ok(&[
        "node",
        "ls",
        "--filter",
        "role=worker",
        "--format",
        "{{.Hostname}}",
    ]);
    let mut workers: Vec<&str> = workers.lines().collect();
    workers.sort();
    assert_eq!(workers, vec!["host2", "host3"]);
    assert_eq!(
        h1.ok(&[
            "node",
            "inspect",
            "self",
            "--format",
            "{{.ManagerStatus.Leader}}"
        ])
        .trim(),
        "true"
    );
    assert_eq!(
        h1.ok(&["node", "inspect", "host2", "--format", "{{.Spec.Role}}"])
            .trim(),
        "worker"
    );

    // A worker cannot be used to look at cluster state.
    let err = cluster.host(2).fails(&["node", "ls"]);
    assert!(err.contains("not a swarm manager"), "{err}");
    let info = cluster.host(2).ok(&["info"]);
    assert!(
        info.contains("Swarm: active") && info.contains("Is Manager: false"),
        "{info}"
    );
}

#[test]
fn leader_failover_and_catch_up() {
    let cluster = Cluster::with_registry(4).unwrap();
    cluster.init_swarm(3, 1).unwrap();
    let h1 = cluster.host(1);
    wait_for(Duration::from_secs(60), "3 reachable managers", || {
        let rows = nodes(h1);
        (rows
            .iter()
            .filter(|r| r.2 == "Leader" || r.2 == "Reachable")
            .count()
            == 3)
            .then_some(())
    });
    // A worker fails over only to managers it has heard of (from its join
    // answer or a heartbeat answer); wait until it knows all three.
    let worker = cluster.host(4);
    wait_for(
        Duration::from_secs(60),
        "the worker to know 3 managers",
        || (worker.known_managers().len() == 3).then_some(()),
    );
    let old = leader(&cluster, h1).expect("a leader");
    let survivor = cluster.hosts().iter().find(|h| h.index() != old).unwrap();
    let killed = Instant::now();
    cluster.host(old).kill();
    // How fast is bench-foundation's business; here only that it happens.
    wait_for(
        Duration::from_secs(60),
        "a write on a surviving manager after the leader died",
        || {
            survivor
                .rswarm(&[
                    "node",
                    "update",
                    "--label-add",
                    "failover=done",
                    survivor.name(),
                ])
                .success()
                .then_some(())
        },
    );
    eprintln!("failover: first write {:?} after kill -9", killed.elapsed());
    let new = wait_for(Duration::from_secs(60), "a new leader", || {
        leader(&cluster, survivor)
    });
    assert_ne!(new, old);
    // The worker's agent must follow the new leader: a task assigned to it now
    // (assignments come from the leader's dispatcher only) runs, and it is Ready.
    let image = cluster.registry().busybox();
    survivor.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "after-failover",
        "--constraint",
        "node.hostname==host4",
        &image,
        "sleep",
        "3600",
    ]);
    survivor.wait_running_tasks("after-failover", 1);
    let worker = nodes(survivor)
        .into_iter()
        .find(|r| r.0 == "host4")
        .unwrap();
    assert_eq!(
        worker.1, "Ready",
        "the worker failed over to the new leader"
    );

    cluster.host(old).start();
    wait_for(
        Duration::from_secs(60),
        "the old leader to catch up",
        || {
            (label_of(cluster.host(old), survivor.name(), "failover").as_deref() == Some("done"))
                .then_some(())
        },
    );
    wait_for(
        Duration::from_secs(60),
        "the old leader Ready and Reachable again",
        || {
            nodes(survivor)
                .iter()
                .any(|r| r.0 == cluster.host(old).name() && r.1 == "Ready" && r.2 == "Reachable")
                .then_some(())
        },
    );
}

#[test]
fn a_partitioned_manager_cannot_write_and_converges_after_healing() {
    let cluster = Cluster::start(3).unwrap();
    cluster.init_swarm(3, 0).unwrap();
    let h1 = cluster.host(1);
    wait_for(Duration::from_secs(60), "3 reachable managers", || {
        (nodes(h1)
            .iter()
            .filter(|r| r.2 == "Leader" || r.2 == "Reachable")
            .count()
            == 3)
            .then_some(())
    });
    let cut = cluster.host(3);
    cut.disconnect();

    // `fails` also fails the test if the command hangs to its deadline.
    let err = cut.fails(&["node", "update", "--label-add", "side=minority", "host3"]);
    assert!(err.contains("does not have a leader"), "{err}");

    wait_for(
        Duration::from_secs(60),
        "a write on the majority side",
        || {
            h1.rswarm(&["node", "update", "--label-add", "side=majority", "host1"])
                .success()
                .then_some(())
        },
    );
    assert_eq!(
        label_of(cluster.host(2), "host1", "side").as_deref(),
        Some("majority")
    );

    cut.heal();
    wait_for(Duration::from_secs(60), "host3 to converge", || {
        (label_of(cut, "host1", "side").as_deref() == Some("majority")).then_some(())
    });
    assert_eq!(
        label_of(cut, "host3", "side").as_deref(),
        Some(""),
        "the minority write must not have happened"
    );
}

#[test]
fn the_whole_cluster_restarts_with_the_same_nodes() {
    let cluster = Cluster::start(4).unwrap();
    cluster.init_swarm(3, 1).unwrap();
    let h1 = cluster.host(1);
    let before = h1.ok(&["node", "ls", "-q"]);
    let mut before: Vec<&str> = before.lines().collect();
    before.sort();
    assert_eq!(before.len(), 4);
    for h in cluster.hosts() {
        h.kill();
    }
    for h in cluster.hosts() {
        h.start();
    }
    wait_for(
        Duration::from_secs(60),
        "all 4 nodes Ready with a leader after the restart",
        || {
            let out = cluster.host(2).rswarm(&[
                "node",
                "ls",
                "--format",
                "{{.ID}}|{{.Status}}|{{.ManagerStatus}}",
            ]);
            if !out.success() {
                return None;
            }
            let rows: Vec<Vec<&str>> = out.stdout.lines().map(|l| l.split('|').collect()).collect();
            let mut ids: Vec<&str> = rows.iter().map(|r| r[0]).collect();
            ids.sort();
            (ids == before
                && rows.iter().all(|r| r[1] == "Ready")
                && rows.iter().any(|r| r[2] == "Leader"))
            .then_some(())
        },
    );
    h1.ok(&["node", "update", "--label-add", "after=restart", "host4"]);
}

#[test]
fn bad_tokens_certificates_and_requests_are_refused_without_changing_anything() {
    let cluster = Cluster::start(4).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    let count = || h1.ok(&["node", "ls", "-q"]).lines().count();
    assert_eq!(count(), 2);
    let manager = h1.swarm_addr();
    let worker_token = h1
        .ok(&["swarm", "join-token", "-q", "worker"])
        .trim()
        .to_string();

    // A malformed token.
    let err = h3.fails(&["join", "--token", "SWMTKN-1-nonsense", &manager]);
    assert!(err.contains("invalid join token"), "{err}");
    // A token whose CA digest is not this swarm's.
    let secret = worker_token.rsplit('-').next().unwrap();
    let forged = format!("SWMTKN-1-{}-{secret}", "0".repeat(50));
    let err = h3.fails(&["join", "--token", &forged, &manager]);
    assert!(err.contains("CA does not match"), "{err}");
    // A rotated (old) token.
    h1.ok(&["swarm", "join-token", "--rotate", "worker"]);
    let err = h3.fails(&["join", "--token", &worker_token, &manager]);
    assert!(err.contains("valid join token is necessary"), "{err}");
    assert!(h3.ok(&["info"]).contains("Swarm: inactive"));
    assert_eq!(count(), 2);

    // No client certificate at all.
    let ca = h1.data_dir().join("certificates/ca.crt");
    let ca = ca.to_str().unwrap();
    let err = h3.fails(&[
        "-H",
        &format!("tcp://{manager}"),
        "--tlscacert",
        ca,
        "--tlscert",
        "/nonexistent",
        "--tlskey",
        "/nonexistent",
        "node",
        "ls",
    ]);
    assert!(err.contains("certificate"), "{err}");
    // A worker certificate calling a manager-only API.
    let wdir = h2.data_dir().join("certificates");
    let (wca, wcert, wkey) = (
        wdir.join("ca.crt"),
        wdir.join("node.crt"),
        wdir.join("node.key"),
    );
    let worker_tls = [
        "--tlscacert",
        wca.to_str().unwrap(),
        "--tlscert",
        wcert.to_str().unwrap(),
        "--tlskey",
        wkey.to_str().unwrap(),
    ];
    let mut args = vec!["-H", &manager as &str];
    let host_arg = format!("tcp://{manager}");
    args[1] = &host_arg;
    args.extend(worker_tls);
    args.extend(["node", "update", "--label-add", "evil=yes", "host1"]);
    let err = h2.fails(&args);
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
    // ...while the manager's own certificate works over TCP.
    let mdir = h1.data_dir().join("certificates");
    let ok = h2.ok(&[
        "-H",
        &host_arg,
        "--tlscacert",
        mdir.join("ca.crt").to_str().unwrap(),
        "--tlscert",
        mdir.join("node.crt").to_str().unwrap(),
        "--tlskey",
        mdir.join("node.key").to_str().unwrap(),
        "node",
        "ls",
        "-q",
    ]);
    assert_eq!(ok.lines().count(), 2);
    assert_eq!(label_of(h1, "host1", "evil").as_deref(), Some(""));

    // init twice, join when already in a swarm.
    let err = h1.fails(&["init", "--advertise-addr", h1.addr()]);
    assert!(err.contains("already part of a swarm"), "{err}");
    let fresh = h1
        .ok(&["swarm", "join-token", "-q", "worker"])
        .trim()
        .to_string();
    let err = h2.fails(&["join", "--token", &fresh, &manager]);
    assert!(err.contains("already part of a swarm"), "{err}");
    // Demoting the last manager.
    let err = h1.fails(&["node", "demote", "host1"]);
    assert!(err.contains("last manager"), "{err}");
    assert_eq!(
        h1.ok(&["node", "inspect", "host1", "--format", "{{.Spec.Role}}"])
            .trim(),
        "manager"
    );
    assert_eq!(count(), 2);

    // A removed node's certificate is no longer accepted.
    let err = h1.fails(&["node", "rm", "host2"]);
    assert!(err.contains("not down"), "{err}");
    h1.ok(&["node", "rm", "--force", "host2"]);
    assert_eq!(count(), 1);
    let mut args: Vec<&str> = vec!["-H", &host_arg];
    args.extend(worker_tls);
    args.extend(["swarm", "join-token", "-q", "worker"]);
    let err = h2.fails(&args);
    assert!(
        err.contains("removed") || err.to_lowercase().contains("permission denied"),
        "{err}"
    );
    wait_for(
        Duration::from_secs(60),
        "the removed node to leave by itself",
        || h2.ok(&["info"]).contains("Swarm: inactive").then_some(()),
    );
}

#[test]
fn nodes_go_down_and_come_back_promote_demote_and_leave() {
    let cluster = Cluster::start(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    let status = |name: &str| {
        nodes(h1)
            .into_iter()
            .find(|r| r.0 == name)
            .map(|r| (r.1, r.2))
    };

    h3.kill();
    wait_for(Duration::from_secs(60), "host3 Down", || {
        (status("host3")?.0 == "Down").then_some(())
    });
    h3.start();
    wait_for(Duration::from_secs(60), "host3 Ready again", || {
        (status("host3")?.0 == "Ready").then_some(())
    });

    h1.ok(&[
        "node",
        "update",
        "--availability",
        "drain",
        "--label-add",
        "zone=b",
        "host3",
    ]);
    assert_eq!(
        h1.ok(&[
            "node",
            "inspect",
            "host3",
            "--format",
            "{{.Spec.Availability}} {{.Spec.Labels.zone}}"
        ])
        .trim(),
        "drain b"
    );
    h1.ok(&["node", "update", "--label-rm", "zone", "host3"]);
    let err = h1.fails(&["node", "update", "--availability", "sleepy", "host3"]);
    assert!(err.contains("availability"), "{err}");

    h1.ok(&["node", "promote", "host2"]);
    wait_for(Duration::from_secs(60), "host2 a reachable manager", || {
        (status("host2")?.1 == "Reachable").then_some(())
    });
    assert!(
        h2.ok(&["node", "ls"]).contains("host1"),
        "a promoted node answers Control calls"
    );
    h1.ok(&["node", "demote", "host2"]);
    wait_for(Duration::from_secs(60), "host2 a worker again", || {
        (status("host2")?.1.is_empty()).then_some(())
    });
    wait_for(
        Duration::from_secs(60),
        "host2's daemon to drop its manager",
        || {
            h2.rswarm(&["node", "ls"])
                .stderr
                .contains("not a swarm manager")
                .then_some(())
        },
    );

    // The last manager refuses to leave without --force; a worker leaves.
    let err = h1.fails(&["swarm", "leave"]);
    assert!(err.contains("last manager"), "{err}");
    assert!(h3.ok(&["swarm", "leave"]).contains("Node left the swarm."));
    assert!(h3.ok(&["info"]).contains("Swarm: inactive"));
    wait_for(Duration::from_secs(60), "host3 Down after leaving", || {
        (status("host3")?.0 == "Down").then_some(())
    });
}

#[test]
fn force_new_cluster_revives_the_last_manager_with_its_data() {
    let cluster = Cluster::start(3).unwrap();
    cluster.init_swarm(3, 0).unwrap();
    let h1 = cluster.host(1);
    wait_for(Duration::from_secs(60), "3 reachable managers", || {
        (nodes(h1)
            .iter()
            .filter(|r| r.2 == "Leader" || r.2 == "Reachable")
            .count()
            == 3)
            .then_some(())
    });
    h1.ok(&["node", "update", "--label-add", "keep=me", "host1"]);
    cluster.host(2).kill();
    cluster.host(3).kill();
    let err = h1.fails(&["node", "update", "--label-add", "lost=quorum", "host1"]);
    assert!(err.contains("does not have a leader"), "{err}");

    let out = h1.ok(&["init", "--force-new-cluster"]);
    assert!(out.contains("Swarm initialized"), "{out}");
    wait_for(Duration::from_secs(60), "a writable cluster", || {
        h1.rswarm(&["node", "update", "--label-add", "after=force", "host1"])
            .success()
            .then_some(())
    });
    assert_eq!(label_of(h1, "host1", "keep").as_deref(), Some("me"));
    let info = h1.ok(&[
        "info",
        "--format",
        "{{.Swarm.Raft.State}} {{len .Swarm.Raft.Voters}}",
    ]);
    assert_eq!(info.trim(), "Leader 1");
    assert_eq!(
        h1.ok(&["node", "ls", "-q"]).lines().count(),
        3,
        "all nodes are still known"
    );
}
