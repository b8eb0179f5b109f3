//! High availability end to end: the leader's daemon dies (kill -9) while a
//! service runs, in a swarm whose other managers were promoted after joining
//! as workers. The agents must fail over to a surviving manager, the new
//! leader must not take down the tasks of live nodes, and the dead node's
//! tasks must come back on the survivors. And the leader dies while services
//! are being created and scaled: every change the CLI had acknowledged holds,
//! and no slot ends up running twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// A change the test makes while the leader dies: create a service with
/// so many replicas, or scale one.
#[derive(Debug, Clone, Copy)]
enum Change {
    Create(&'static str, u64),
    Scale(&'static str, u64),
}

/// The changes, in order; the leader is killed after the first
/// `KILL_AFTER` are acknowledged, and the changes from `RESUME_AT` on are
/// made only after it died.
const CHANGES: [Change; 11] = [
    Change::Create("a", 2),
    Change::Create("b", 1),
    Change::Scale("a", 4),
    Change::Create("c", 3),
    Change::Scale("b", 3),
    Change::Create("d", 2),
    Change::Scale("a", 1),
    Change::Scale("c", 5),
    Change::Create("e", 2),
    Change::Scale("d", 4),
    Change::Scale("b", 2),
];
const KILL_AFTER: usize = 3;
const RESUME_AT: usize = 5;

/// What a CLI call may take before it is given up and tried on another
/// manager.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// What the driver saw: calls that failed (and were tried again on the next
/// manager), and changes acknowledged after the kill.
struct Driven {
    failed_calls: Vec<String>,
    /// Creates whose retry answered "already exists": the failed call had
    /// committed them.
    committed_by_a_failed_call: Vec<String>,
    acknowledged_after_kill: usize,
}

/// Makes every change of `CHANGES` through the CLI of one of `managers`,
/// moving to the next manager whenever a call fails, until each is
/// acknowledged. A create that fails and then answers "already exists" on a
/// retry was committed by the failed call: acknowledged too.
fn drive(
    managers: &[&Host],
    image: &str,
    acknowledged: &AtomicUsize,
    killed: &AtomicBool,
) -> Result<Driven, String> {
    let mut at = 0;
    let mut driven = Driven {
        failed_calls: Vec::new(),
        committed_by_a_failed_call: Vec::new(),
        acknowledged_after_kill: 0,
    };
    for (i, change) in CHANGES.iter().enumerate() {
        if i == RESUME_AT {
            let waited = Instant::now();
            while !killed.load(Ordering::SeqCst) {
                if waited.elapsed() > CONVERGE {
                    return Err("the leader was never killed".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let replicas;
        let args: Vec<&str> = match *change {
            Change::Create(name, n) => {
                replicas = n.to_string();
                vec![
                    "service",
                    "create",
                    "--detach",
                    "--name",
                    name,
                    "--replicas",
                    &replicas,
                    image,
                    "sleep",
                    "100000",
                ]
            }
            Change::Scale(name, n) => {
                replicas = format!("{name}={n}");
                vec!["service", "scale", "--detach", &replicas]
            }
        };
        let started = Instant::now();
        let mut retried = false;
        loop {
            let host = managers[at];
            let out = host.rswarm_timeout(&args, CALL_TIMEOUT);
            let committed_before = retried
                && matches!(change, Change::Create(..))
                && out.stderr.contains("already exists");
            if out.success() {
                break;
            }
            if committed_before {
                driven
                    .committed_by_a_failed_call
                    .push(format!("{change:?}"));
                break;
            }
            driven.failed_calls.push(format!(
                "{change:?} on {}: {}",
                host.name(),
                out.stderr.trim()
            ));
            if started.elapsed() > CONVERGE {
                return Err(format!(
                    "{change:?} was never acknowledged; failed calls: {:#?}",
                    driven.failed_calls
                ));
            }
            retried = true;
            at = (at + 1) % managers.len();
            std::thread::sleep(Duration::from_millis(200));
        }
        if killed.load(Ordering::SeqCst) {
            driven.acknowledged_after_kill += 1;
        }
        acknowledged.fetch_add(1, Ordering::SeqCst);
    }
    Ok(driven)
}

/// Every task of every service `host` knows, history included, as task ID →
/// (service, slot name, desired state, current state); None if it cannot say.
fn all_tasks(
    host: &Host,
    services: &[&str],
) -> Option<HashMap<String, (String, String, String, String)>> {
    let mut out = HashMap::new();
    for service in services {
        let ps = host.rswarm(&[
            "service",
            "ps",
            service,
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.Name}}|{{.DesiredState}}|{{.CurrentState}}",
        ]);
        if !ps.success() {
            return None;
        }
        for line in ps.stdout.lines() {
            let mut p = line.split('|').map(str::trim);
            let (Some(id), Some(name), Some(desired), Some(current)) =
                (p.next(), p.next(), p.next(), p.next())
            else {
                continue;
            };
            let name = name.trim_start_matches("\\_").trim();
            out.insert(
                id.to_string(),
                (
                    service.to_string(),
                    name.to_string(),
                    desired.to_string(),
                    current.to_string(),
                ),
            );
        }
    }
    Some(out)
}

/// The running runc containers of `hosts`, as container (= task) ID → host.
fn running_containers(hosts: &[&Host]) -> BTreeMap<String, String> {
    hosts
        .iter()
        .flat_map(|h| {
            h.containers()
                .into_iter()
                .filter(|c| c.status == "running")
                .map(|c| (c.id, h.name().to_string()))
        })
        .collect()
}

/// Waits until the running containers on `hosts` are exactly the tasks of
/// `expected` meant to run (one per slot), and returns them by slot name.
fn wait_containers_match(
    asker: &[&Host],
    hosts: &[&Host],
    expected: &BTreeMap<&str, u64>,
    what: &str,
) -> BTreeMap<String, Vec<String>> {
    let services: Vec<&str> = expected.keys().copied().collect();
    let mut last = String::new();
    rswarm_tests::try_wait_for(CONVERGE, what, || {
        let tasks = asker.iter().find_map(|h| all_tasks(h, &services))?;
        let wanted: BTreeSet<&String> = tasks
            .iter()
            .filter(|(_, (_, _, d, c))| d == "Running" && c.starts_with("Running"))
            .map(|(id, _)| id)
            .collect();
        let running = running_containers(hosts);
        let mut by_slot: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, host) in &running {
            let slot = tasks
                .get(id)
                .map_or_else(|| format!("(unknown task {id})"), |t| t.1.clone());
            by_slot.entry(slot).or_default().push(host.clone());
        }
        last = format!("{by_slot:#?}");
        let ids: BTreeSet<&String> = running.keys().collect();
        let slots: usize = expected.values().map(|&n| n as usize).sum();
        (ids == wanted && by_slot.len() == slots).then_some(by_slot)
    })
    .unwrap_or_else(|err| panic!("{err}\nthe last running containers by slot: {last}"))
}

#[test]
fn services_created_and_scaled_through_a_leader_failover_converge_with_no_duplicate_slot() {
    let cluster = Cluster::with_registry(4).unwrap();
    // host1 inits, host2 and host3 join as managers, host4 as a worker.
    cluster.init_swarm(3, 1).unwrap();
    let managers: Vec<&Host> = (1..=3).map(|i| cluster.host(i)).collect();
    let manager_addrs: HashSet<String> = managers.iter().map(|h| h.swarm_addr()).collect();
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
    let leader = wait_for(Duration::from_secs(60), "a leader in node ls", || {
        let n = nodes(cluster.host(1))?;
        let name = n.iter().find(|(_, (_, m))| m == "Leader")?.0.clone();
        managers.iter().copied().find(|h| h.name() == name)
    });
    let survivors: Vec<&Host> = cluster
        .hosts()
        .iter()
        .filter(|h| h.name() != leader.name())
        .collect();
    let surviving_managers: Vec<&Host> = managers
        .iter()
        .copied()
        .filter(|h| h.name() != leader.name())
        .collect();
    let image = cluster.registry().busybox();

    let acknowledged = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let driven = std::thread::scope(|s| {
        let driver = s.spawn(|| drive(&managers, &image, &acknowledged, &killed));
        wait_for(
            CONVERGE,
            &format!("{KILL_AFTER} changes acknowledged"),
            || {
                (acknowledged.load(Ordering::SeqCst) >= KILL_AFTER || driver.is_finished())
                    .then_some(())
            },
        );
        leader.kill();
        killed.store(true, Ordering::SeqCst);
        eprintln!(
            "killed the leader {} after {} changes",
            leader.name(),
            acknowledged.load(Ordering::SeqCst)
        );
        driver.join().expect("the driver thread")
    })
    .unwrap_or_else(|err| panic!("{err}"));
    eprintln!(
        "calls that failed and were made again: {:#?}\ncommitted by a failed call: {:?}",
        driven.failed_calls, driven.committed_by_a_failed_call
    );
    assert!(
        driven.acknowledged_after_kill >= CHANGES.len() - RESUME_AT,
        "changes made after the kill: {}",
        driven.acknowledged_after_kill
    );

    // What was acknowledged: the last replica count of every service.
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for change in CHANGES {
        let (Change::Create(name, n) | Change::Scale(name, n)) = change;
        expected.insert(name, n);
    }
    let survivor_names: HashSet<&str> = survivors.iter().map(|h| h.name()).collect();
    let mut last = String::new();
    rswarm_tests::try_wait_for(
        CONVERGE,
        "every service at its last replica count, all Running on live nodes",
        || {
            let host = surviving_managers
                .iter()
                .find(|h| nodes(h).is_some_and(|n| n.values().any(|(_, m)| m == "Leader")))?;
            let mut seen = BTreeMap::new();
            for (&service, &n) in &expected {
                let rows = running_rows(host, service)?;
                let names: BTreeSet<&str> = rows.iter().map(|t| t.name.as_str()).collect();
                let slots: BTreeSet<String> = (1..=n).map(|i| format!("{service}.{i}")).collect();
                let ok = rows.len() == n as usize
                    && names == slots.iter().map(String::as_str).collect()
                    && rows.iter().all(|t| {
                        t.state.starts_with("Running") && survivor_names.contains(t.node.as_str())
                    });
                seen.insert(service, rows);
                if !ok {
                    last = format!("{seen:#?}");
                    return None;
                }
            }
            Some(())
        },
    )
    .unwrap_or_else(|err| panic!("{err}\nthe last running tasks: {last}"));
    // `service ls` agrees, and lists nothing else.
    let ls = surviving_managers
        .iter()
        .find_map(|h| {
            let out = h.rswarm(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
            out.success().then_some(out.stdout)
        })
        .expect("service ls on a surviving manager");
    let rows: BTreeSet<&str> = ls.lines().collect();
    let want: Vec<String> = expected
        .iter()
        .map(|(s, n)| format!("{s} {n}/{n}"))
        .collect();
    assert_eq!(
        rows,
        want.iter().map(String::as_str).collect(),
        "service ls: {ls}"
    );

    // On the live hosts, one running container per slot, and they are the
    // tasks `service ps` shows running.
    let by_slot = wait_containers_match(
        &surviving_managers,
        &survivors,
        &expected,
        "the live hosts' running containers to be the running tasks",
    );
    for (slot, hosts) in &by_slot {
        assert_eq!(hosts.len(), 1, "{slot} runs on {hosts:?}");
    }

    // The old leader comes back: what it still ran of slots that moved away
    // is stopped, and no slot runs twice anywhere.
    leader.start();
    let everyone: Vec<&Host> = cluster.hosts().iter().collect();
    let by_slot = wait_containers_match(
        &managers,
        &everyone,
        &expected,
        "every host's running containers to be the running tasks, the old leader back",
    );
    for (slot, hosts) in &by_slot {
        assert_eq!(hosts.len(), 1, "{slot} runs on {hosts:?}");
    }
}
