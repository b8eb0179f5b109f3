//! Rolling updates end to end on 3-host namespace clusters:
//! - `service update --force` of a 4-replica, health-checked, start-first
//!   service while a client sends HTTP requests without pause through the
//!   routing mesh: zero failed requests, every slot gets a new task ID;
//! - stop-first with parallelism 2: never more than 2 slots without a running
//!   task, as `service ps` shows it while the update runs;
//! - an update to an image whose health check fails pauses (failure action
//!   pause), `service rollback` then restores the previous spec; with failure
//!   action rollback the service rolls itself back; either way it ends on
//!   the old image with every replica running;
//! - the leader killed mid-update on a 3-manager cluster: the new leader
//!   finishes the update and no slot is updated twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rswarm_tests::lists::{tasks, wait_tasks, Task};
use rswarm_tests::{images, try_wait_for, wait_for, Cluster, Host};

/// Image pull, scheduling, runc and the first probes, on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);
/// The longest a whole rolling update may take here.
const UPDATE: Duration = Duration::from_secs(180);

/// A web server answering `GET /` with its hostname (its task ID's first 12
/// characters).
const WEB: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

/// `service inspect SERVICE` as JSON.
fn inspect(h: &Host, service: &str) -> serde_json::Value {
    let out = h.ok(&["service", "inspect", service]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v[0].clone()
}

fn update_state(h: &Host, service: &str) -> String {
    inspect(h, service)["UpdateStatus"]["State"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn image_of(h: &Host, service: &str) -> String {
    inspect(h, service)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Slot number → the running task of each slot meant to run.
fn running_slots(ts: &[Task]) -> BTreeMap<String, String> {
    ts.iter()
        .filter(|t| t.is_running())
        .map(|t| (t.name.clone(), t.id.clone()))
        .collect()
}

fn healthy_running(ts: &[Task], want: usize) -> bool {
    ts.iter()
        .filter(|t| t.is_running() && t.current.ends_with("(healthy)"))
        .count()
        == want
}

#[test]
fn a_forced_start_first_update_fails_no_request_through_the_mesh() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "4",
        "-p",
        "8080:80",
        "--stop-grace-period",
        "1s",
        "--health-cmd",
        "test -e /www/index.html",
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "2",
        "--update-order",
        "start-first",
        "--update-parallelism",
        "1",
        "--update-monitor",
        "1s",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    let before = wait_tasks(h1, "web", CONVERGE, "4 healthy tasks", |ts| {
        healthy_running(ts, 4)
    });
    let before = running_slots(&before);

    // The client: curl through host2's published port, without pause, each
    // answer or FAIL on its own line, until the file `stop` exists.
    let url = format!("http://{}:8080/", h2.addr());
    wait_for(CONVERGE, "the mesh to answer", || {
        h3.exec(&["curl", "-s", "-m", "3", &url])
            .success()
            .then_some(())
    });
    let script = format!(
        "while [ ! -e stop ]; do \
           if out=$(curl -s -m 3 {url}); then echo \"$out\"; else echo FAIL; fi; \
         done"
    );
    let client = h3.spawn_in_background(&["sh", "-c", &script]);
    wait_for(
        Duration::from_secs(20),
        "the client's first answers",
        || (client.output().lines().count() >= 20).then_some(()),
    );

    let out = h1.rswarm_timeout(&["service", "update", "--force", "web"], UPDATE);
    assert!(out.success(), "service update --force: {out:?}");

    // Some more requests after the update, then stop the client.
    let lines_after = client.output().lines().count() + 20;
    wait_for(Duration::from_secs(20), "requests after the update", || {
        (client.output().lines().count() >= lines_after).then_some(())
    });
    std::fs::write(h3.dir().join("stop"), "").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let log = client.output();
    let lines: Vec<&str> = log.lines().collect();
    let failed = lines.iter().filter(|l| **l == "FAIL").count();
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the update",
        lines.len()
    );
    assert!(lines.len() >= 60, "too few requests: {}", lines.len());

    // Every slot has a new task, and the update is completed.
    let after = running_slots(&tasks(h1, "web"));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (slot, id) in &after {
        assert_ne!(Some(id), before.get(slot), "{slot} kept its task");
    }
    assert_eq!(update_state(h1, "web"), "completed");
    // The new tasks answered through the mesh.
    let new_hosts: BTreeSet<String> = after.values().map(|id| id[..12].to_string()).collect();
    assert!(
        lines.iter().any(|l| new_hosts.contains(*l)),
        "no answer from a new task"
    );
    let pretty = h1.ok(&["service", "inspect", "--pretty", "web"]);
    assert!(pretty.contains("UpdateStatus:"), "{pretty}");
    assert!(pretty.contains("completed"), "{pretty}");
}

#[test]
fn stop_first_with_parallelism_2_never_has_more_than_2_slots_down() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    // SIGTERM is ignored: each stop takes the whole 2 s grace period, so a
    // slot is down long enough to be seen.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "slow",
        "--replicas",
        "6",
        "--stop-grace-period",
        "2s",
        "--update-parallelism",
        "2",
        "--update-monitor",
        "0s",
        &image,
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 1; done",
    ]);
    let before = wait_tasks(h1, "slow", CONVERGE, "6 running tasks", |ts| {
        ts.iter().filter(|t| t.is_running()).count() == 6
    });
    let before = running_slots(&before);

    let done = AtomicBool::new(false);
    let most_down = Mutex::new((0usize, String::new()));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let ts = tasks(h1, "slow");
                let up = running_slots(&ts).len();
                let down = 6usize.saturating_sub(up);
                let mut most = most_down.lock().unwrap();
                if down > most.0 {
                    *most = (down, format!("{ts:#?}"));
                }
            }
        });
        let out = h1.rswarm_timeout(&["service", "update", "--force", "slow"], UPDATE);
        done.store(true, Ordering::SeqCst);
        assert!(out.success(), "service update --force: {out:?}");
    });
    let (most, seen) = most_down.into_inner().unwrap();
    assert!(most <= 2, "{most} slots were down at once:\n{seen}");
    assert_eq!(most, 2, "the update never had 2 slots down at once");
    let after = running_slots(&tasks(h1, "slow"));
    assert_eq!(after.len(), 6);
    assert!(after.iter().all(|(slot, id)| before.get(slot) != Some(id)));
}

#[test]
fn a_failing_release_pauses_then_rolls_back_or_rolls_itself_back() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let h1 = cluster.host(1);
    let good = cluster.registry().busybox();
    let bad = cluster
        .registry()
        .push_oci(images::busybox_with_failing_healthcheck(), "busybox-sick:1")
        .unwrap();
    for (name, action) in [("paused", "pause"), ("back", "rollback")] {
        h1.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--replicas",
            "3",
            "--stop-grace-period",
            "1s",
            "--update-failure-action",
            action,
            "--update-monitor",
            "2s",
            &good,
            "sleep",
            "3600",
        ]);
    }
    for name in ["paused", "back"] {
        h1.wait_running_tasks(name, 3);
    }

    // Pause: the first slot's new task turns unhealthy, nothing more changes.
    let out = h1.rswarm_timeout(&["service", "update", "--image", &bad, "paused"], UPDATE);
    assert!(!out.success(), "an update that paused must fail: {out:?}");
    assert!(
        out.stderr
            .contains("update paused due to failure or early termination of task"),
        "{out:?}"
    );
    assert_eq!(update_state(h1, "paused"), "paused");
    let ts = tasks(h1, "paused");
    let old_running = ts.iter().filter(|t| t.is_running()).count();
    assert!(old_running >= 2, "{ts:#?}");
    let touched: BTreeSet<&str> = ts
        .iter()
        .filter(|t| t.current.starts_with("Failed") || t.current.contains("unhealthy"))
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(touched.len(), 1, "only one slot was tried: {ts:#?}");

    // `service rollback` brings the previous spec back everywhere.
    let out = h1.rswarm_timeout(&["service", "rollback", "paused"], UPDATE);
    assert!(out.success(), "service rollback: {out:?}");
    assert_eq!(image_of(h1, "paused"), good);
    assert_eq!(update_state(h1, "paused"), "rollback_completed");
    wait_tasks(h1, "paused", CONVERGE, "3 running tasks", |ts| {
        ts.iter().filter(|t| t.is_running()).count() == 3
    });

    // Rollback: the service goes back on its own.
    let out = h1.rswarm_timeout(&["service", "update", "--image", &bad, "back"], UPDATE);
    assert!(
        !out.success(),
        "an update that rolled back must fail: {out:?}"
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("rolled back"), "{out:?}");
    let state = try_wait_for(CONVERGE, "the rollback to complete", || {
        (update_state(h1, "back") == "rollback_completed").then_some(())
    });
    if let Err(e) = state {
        panic!("{e}: {:?}", inspect(h1, "back")["UpdateStatus"]);
    }
    assert_eq!(image_of(h1, "back"), good);
    let ts = wait_tasks(h1, "back", CONVERGE, "3 running tasks", |ts| {
        ts.iter().filter(|t| t.is_running()).count() == 3
    });
    assert!(ts
        .iter()
        .filter(|t| t.is_running())
        .all(|t| !t.current.contains("unhealthy")));
}

#[test]
fn the_leader_killed_mid_update_does_not_stop_it_nor_update_a_slot_twice() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(3, 0).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    // The tasks stay on host2, which is not killed; each slot's update takes
    // a second of delay, so the kill lands in the middle.
    let node2 = h2.node_id();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "6",
        "--constraint",
        &format!("node.id=={node2}"),
        "--stop-grace-period",
        "1s",
        "--update-delay",
        "1s",
        "--update-monitor",
        "0s",
        &image,
        "sleep",
        "3600",
    ]);
    let before = wait_tasks(h1, "web", CONVERGE, "6 running tasks", |ts| {
        ts.iter().filter(|t| t.is_running()).count() == 6
    });
    let before_ids: BTreeSet<String> = before.iter().map(|t| t.id.clone()).collect();
    h1.ok(&["service", "update", "--detach", "--force", "web"]);
    wait_tasks(h2, "web", UPDATE, "2 slots updated", |ts| {
        ts.iter()
            .filter(|t| t.is_running() && !before_ids.contains(&t.id))
            .count()
            >= 2
    });
    h1.kill();

    let ts = wait_tasks(h2, "web", UPDATE, "every slot updated", |ts| {
        let new: Vec<&Task> = ts
            .iter()
            .filter(|t| t.is_running() && !before_ids.contains(&t.id))
            .collect();
        new.len() == 6
    });
    let done = try_wait_for(UPDATE, "the update to complete", || {
        (update_state(h2, "web") == "completed").then_some(())
    });
    if let Err(e) = done {
        panic!("{e}: {:?}", inspect(h2, "web")["UpdateStatus"]);
    }
    // No slot got more than one new task.
    let mut per_slot: BTreeMap<&str, usize> = BTreeMap::new();
    for t in ts.iter().filter(|t| !before_ids.contains(&t.id)) {
        *per_slot.entry(t.name.as_str()).or_default() += 1;
    }
    assert_eq!(per_slot.len(), 6, "{ts:#?}");
    assert!(
        per_slot.values().all(|n| *n == 1),
        "a slot was updated twice: {per_slot:?}\n{ts:#?}"
    );
    h1.start();
}
