//! High availability end to end: the leader's daemon dies (kill -9) while a
//! service runs, in a swarm whose other managers were promoted after joining
//! as workers. The agents must fail over to a surviving manager, the new
//! leader must not take down the tasks of live nodes, and the dead node's
//! tasks must come back on the survivors.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rswarm_tests::{wait_for, Cluster, Host};

/// How long the swarm gets to converge after the leader's death.
const CONVERGE: Duration = Duration::from_secs(90);

/// A task of `service ps` meant to run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TaskRow {
    id: String,
    /// The slot's name, e.g. `web.3`.
    name: String,
    node: String,
    state: String,
}

/// The tasks of `service` meant to run, as `host` answers; None if it cannot.
fn running_rows(host: &Host, service: &str) -> Option<Vec<TaskRow>> {
    let out = host.rswarm(&[
        "service",
        "ps",
        service,
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.ID}}|{{.Name}}|{{.Node}}|{{.CurrentState}}",
    ]);
    if !out.success() {
        return None;
    }
    Some(
        out.stdout
            .lines()
            .filter_map(|l| {
                let mut p = l.split('|');
                Some(TaskRow {
                    id: p.next()?.trim().to_string(),
                    name: p.next()?.trim().to_string(),
                    node: p.next()?.trim().to_string(),
                    state: p.next()?.trim().to_string(),
                })
            })
            .collect(),
    )
}

/// `node ls` on `host` as hostname → (status, manager status).
fn nodes(host: &Host) -> Option<HashMap<String, (String, String)>> {
    let out = host.rswarm(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}}|{{.Status}}|{{.ManagerStatus}}",
    ]);
    if !out.success() {
        return None;
    }
    Some(
        out.stdout
            .lines()
            .filter_map(|l| {
                let mut p = l.split('|');
                Some((
                    p.next()?.to_string(),
                    (p.next()?.to_string(), p.next()?.to_string()),
                ))
            })
            .collect(),
    )
}

/// The manager addresses `host`'s node keeps in its state file (what its
/// agent fails over to, and what survives a restart).
fn persisted_managers(host: &Host) -> Vec<String> {
    let path = host.data_dir().join("state.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return vec![];
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return vec![];
    };
    v["managers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["addr"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_leaders_death_keeps_live_tasks_and_moves_the_dead_nodes_tasks_to_promoted_managers() {
    // The operator's story of issue 17, on the test swarms' 1 s heartbeat.
    let cluster = Cluster::with_registry(4).unwrap();
    // host1 inits, host2..host4 join as workers (one manager known to each).
    cluster.init_swarm(1, 3).unwrap();
    promoted_managers_survive_the_leaders_death(&cluster);
}

#[test]
fn the_same_with_the_default_heartbeat_period() {
    // As the operator ran it: `init` and `join` with no heartbeat option
    // (5 s, so the new leader's grace is 30 s).
    let cluster = Cluster::with_registry(4).unwrap();
    let h1 = cluster.host(1);
    h1.ok(&["init", "--advertise-addr", h1.addr()]);
    let token = h1
        .ok(&["swarm", "join-token", "worker", "-q"])
        .trim()
        .to_string();
    for i in 2..=4 {
        let h = cluster.host(i);
        h.ok(&[
            "join",
            "--token",
            &token,
            "--advertise-addr",
            h.addr(),
            &h1.swarm_addr(),
        ]);
    }
    wait_for(Duration::from_secs(60), "4 Ready nodes", || {
        let n = nodes(h1)?;
        (n.len() == 4 && n.values().all(|(s, _)| s == "Ready")).then_some(())
    });
    promoted_managers_survive_the_leaders_death(&cluster);
}

/// host1 leads a swarm of 4 whose other nodes joined as workers: promote
/// host2 and host3, run 6 replicas, kill -9 host1's daemon, and check the
/// swarm converges on the survivors without replacing any of their tasks.
fn promoted_managers_survive_the_leaders_death(cluster: &Cluster) {
    let h1 = cluster.host(1);
    h1.ok(&["node", "promote", "host2", "host3"]);
    wait_for(Duration::from_secs(60), "3 reachable managers", || {
        let rows = nodes(h1)?;
        (rows
            .values()
            .filter(|(_, m)| m == "Leader" || m == "Reachable")
            .count()
            == 3)
            .then_some(())
    });
    // Every node, the worker host4 included, is told of all three managers.
    let manager_addrs: HashSet<String> = (1..=3).map(|i| cluster.host(i).swarm_addr()).collect();
    for h in cluster.hosts() {
        wait_for(
            Duration::from_secs(60),
            &format!("{} to know all three managers", h.name()),
            || {
                let known: HashSet<String> = persisted_managers(h).into_iter().collect();
                known.is_superset(&manager_addrs).then_some(())
            },
        );
    }

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
        "sleep",
        "100000",
    ]);
    h1.wait_running_tasks("web", 6);
    let before = running_rows(h1, "web").expect("service ps on host1");
    let survivors = ["host2", "host3", "host4"];
    let kept: Vec<TaskRow> = before
        .iter()
        .filter(|t| survivors.contains(&t.node.as_str()))
        .cloned()
        .collect();
    eprintln!("before the kill: {before:#?}");

    h1.kill();

    let asker = |f: &dyn Fn(&Host) -> Option<()>| -> Option<()> {
        [cluster.host(2), cluster.host(3)].into_iter().find_map(f)
    };
    wait_for(
        CONVERGE,
        "a new leader and 6 web replicas running on host2..host4",
        || {
            asker(&|h| {
                let n = nodes(h)?;
                let leader = n.iter().find(|(_, (_, m))| m == "Leader")?.0.clone();
                if leader == "host1" {
                    return None;
                }
                let rows = running_rows(h, "web")?;
                let ok = rows.len() == 6
                    && rows.iter().all(|t| {
                        t.state.starts_with("Running") && survivors.contains(&t.node.as_str())
                    });
                ok.then_some(())
            })
        },
    );
    let after = [cluster.host(2), cluster.host(3)]
        .into_iter()
        .find_map(|h| running_rows(h, "web"))
        .expect("service ps on a surviving manager");
    eprintln!("after the kill: {after:#?}");

    // No task of a live node was shut down: each is still the same task.
    for t in &kept {
        assert!(
            after.iter().any(|a| a.id == t.id && a.node == t.node),
            "task {} ({}) on {} was replaced after the leader died; now: {after:#?}",
            t.id,
            t.name,
            t.node
        );
    }
    // No slot twice.
    let slots: HashSet<&str> = after.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(slots.len(), 6, "a slot runs twice: {after:#?}");
    // The worker that joined with one manager known is Ready on the new leader.
    let n = [cluster.host(2), cluster.host(3)]
        .into_iter()
        .find_map(nodes)
        .expect("node ls on a surviving manager");
    for h in survivors {
        assert_eq!(
            n.get(h).map(|(s, _)| s.as_str()),
            Some("Ready"),
            "{h} after the leader died: {n:?}"
        );
    }

    // The worker's list survives a restart of its daemon: with the only
    // manager it joined through dead, it still finds the new leader, which
    // then gives it new work.
    let h4 = cluster.host(4);
    h4.kill();
    h4.start();
    let leader_host = [cluster.host(2), cluster.host(3)]
        .into_iter()
        .find(|h| nodes(h).is_some_and(|n| n.get(h.name()).is_some_and(|(_, m)| m == "Leader")))
        .expect("host2 or host3 leads");
    leader_host.ok(&["service", "scale", "web=9"]);
    let known: HashSet<String> = after.iter().map(|t| t.id.clone()).collect();
    wait_for(
        CONVERGE,
        "9 web replicas running, a new one on the restarted host4",
        || {
            let rows = running_rows(leader_host, "web")?;
            let running = rows.iter().filter(|t| t.state.starts_with("Running"));
            let new_on_h4 = rows.iter().any(|t| {
                t.node == "host4" && !known.contains(&t.id) && t.state.starts_with("Running")
            });
            (running.count() == 9 && new_on_h4).then_some(())
        },
    );
}
