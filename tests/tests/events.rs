//! `rswarm events` end to end on a 3-host namespace cluster (host1 manages,
//! host2 and host3 work), with a registry and real runc containers: a
//! following `events` shows a service create, its task's start and a worker
//! going down (its daemon killed), in that order; `--since`/`--until` bound
//! a past window and end the command; `--filter type=node` shows only
//! nodes; `--format json` prints Docker's message shape; bad values are
//! refused in Docker's words; a following `events` survives a restart of
//! its manager's daemon. On three managers, `events` following on a
//! follower goes on through a leader change (the leader's daemon killed).

use std::time::Duration;

use rswarm_tests::{wait_for, Cluster, Host};

/// Image pull, scheduling and runc on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);
/// How long a node may take to be seen Down.
const FAILOVER: Duration = Duration::from_secs(60);

/// Now as unix seconds with nanoseconds (a form `--since` takes).
fn unix_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// Now in RFC 3339 (the other form).
fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The first line of `lines` at or after `from` that has every one of `parts`.
fn find(lines: &[&str], from: usize, parts: &[&str]) -> Option<usize> {
    (from..lines.len()).find(|&i| parts.iter().all(|p| lines[i].contains(p)))
}

/// Waits until `host` is shown with `status` in `node ls`.
fn wait_node(h1: &Host, host: &Host, status: &str) {
    let want = format!("{} {status}", host.name());
    wait_for(FAILOVER, &format!("`{want}` in node ls"), || {
        h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .lines()
            .any(|l| l == want)
            .then_some(())
    });
}

#[test]
fn events_show_a_service_create_a_task_start_and_a_node_going_down_in_order() {
    let cluster = Cluster::with_registry(3).expect("three hosts and a registry");
    cluster
        .init_swarm(1, 2)
        .expect("a swarm of one manager and two workers");
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    let h2_id = h2.node_id();

    let socket = format!("unix://{}", h1.socket().display());
    let binary = h1.binary().display().to_string();
    let mut follow = h1.spawn_in_background(&[&binary, "-H", &socket, "events"]);
    let since = unix_now();
    let since_rfc = rfc3339_now();
    // Let the stream open before anything happens.
    std::thread::sleep(Duration::from_secs(1));

    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--constraint",
        "node.hostname==host3",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    h1.wait_running_tasks("web", 1);
    let after_start = unix_now();
    std::thread::sleep(Duration::from_millis(200));
    h2.kill();
    wait_node(h1, h2, "Down");

    // The following stream: create, start, down, in that order.
    let (create, start, down) = wait_for(CONVERGE, "create, start and down events", || {
        let out = follow.output();
        let lines: Vec<&str> = out.lines().collect();
        let create = find(&lines, 0, &[" service create ", "(name=web)"])?;
        let start = find(&lines, create, &[" task start ", "service.name=web"])?;
        let down = find(
            &lines,
            start,
            &[" node update ", &h2_id, "state.new=down", "state.old=ready"],
        )?;
        Some((
            lines[create].to_string(),
            lines[start].to_string(),
            lines[down].to_string(),
        ))
    });
    assert!(follow.is_running(), "events follows until stopped");
    // Docker's line: a fixed-width time, then type, action, ID and attributes.
    let time = create.split(' ').next().unwrap_or_default();
    assert_eq!(
        time.len(),
        "2026-12-06T04:31:00.000000000Z".len(),
        "{create}"
    );
    assert!(time.ends_with('Z'), "{create}");
    assert!(start.contains("name=web.1"), "{start}");
    assert!(down.contains("name=host2"), "{down}");
    let until = unix_now();

    // A past window ends by itself and holds what happened in it.
    let window = h1.ok(&["events", "--since", &since, "--until", &until]);
    let lines: Vec<&str> = window.lines().collect();
    let c = find(&lines, 0, &[" service create ", "(name=web)"]).expect(&window);
    let s = find(&lines, c, &[" task start "]).expect(&window);
    find(&lines, s, &[" node update ", "state.new=down"]).expect(&window);
    // Cut before the node went down: no down event.
    let early = h1.ok(&["events", "--since", &since_rfc, "--until", &after_start]);
    assert!(early.contains(" service create "), "{early}");
    assert!(!early.contains("state.new=down"), "{early}");

    // --filter type=node: only nodes.
    let nodes = h1.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=node",
    ]);
    assert!(nodes.contains("state.new=down"), "{nodes}");
    for l in nodes.lines() {
        assert_eq!(l.split(' ').nth(1), Some("node"), "{nodes}");
    }
    // Keys combine: the start events of web's tasks only.
    let starts = h1.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "-f",
        "service=web",
        "-f",
        "event=start",
    ]);
    assert!(!starts.is_empty());
    for l in starts.lines() {
        assert!(
            l.contains(" task start ") && l.contains("service.name=web"),
            "{starts}"
        );
    }

    // --format json: one JSON message per line in Docker's shape.
    let json = h1.ok(&[
        "events", "--since", &since, "--until", &until, "--format", "json",
    ]);
    let messages: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(messages.iter().any(|m| m["Type"] == "service"
        && m["Action"] == "create"
        && m["Actor"]["Attributes"]["name"] == "web"
        && m["scope"] == "swarm"
        && m["timeNano"].is_i64()));
    let template = h1.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=service",
        "--format",
        "{{.Type}}/{{.Action}}/{{.Actor.Attributes.name}}",
    ]);
    assert_eq!(
        template.lines().next(),
        Some("service/create/web"),
        "{template}"
    );

    // Bad values, in Docker's words.
    let err = h1.fails(&["events", "--since", "yesterday"]);
    assert!(
        err.contains("failed to parse value as time or duration: \"yesterday\""),
        "{err}"
    );
    let err = h1.fails(&["events", "--filter", "colour=red"]);
    assert!(err.contains("Invalid filter 'colour'"), "{err}");
    let err = h1.fails(&["events", "--filter", "type=container"]);
    assert!(err.contains("invalid filter 'type=container'"), "{err}");
    let err = h1.fails(&["events", "--filter", "node"]);
    assert!(
        err.contains("bad format of filter (expected name=value)"),
        "{err}"
    );
    let err = h1.fails(&["events", "--since", &until, "--until", &since]);
    assert!(err.contains("cannot be after `until` time"), "{err}");

    // The manager the command talks to restarts: the command reconnects,
    // says that events of the restart may be missing, and goes on.
    h1.restart();
    h1.ok(&["service", "scale", "--detach", "web=2"]);
    wait_for(CONVERGE, "the scale's event after the restart", || {
        let out = follow.output();
        out.lines()
            .any(|l| l.contains(" service update ") && l.contains("replicas.new=2"))
            .then_some(())
    });
    let out = follow.output();
    assert!(
        out.contains("Warning: this manager has events only from"),
        "{out}"
    );
    assert!(
        follow.is_running(),
        "events goes on after the restart\n{out}"
    );
    follow.kill();
}

#[test]
fn a_following_events_on_a_follower_goes_on_through_a_leader_change() {
    let cluster = Cluster::start(3).expect("three hosts");
    cluster.init_swarm(3, 0).expect("a swarm of three managers");
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let h1_id = h1.node_id();
    let socket = format!("unix://{}", h2.socket().display());
    let binary = h2.binary().display().to_string();
    let mut follow =
        h2.spawn_in_background(&[&binary, "-H", &socket, "events", "--filter", "type=node"]);
    std::thread::sleep(Duration::from_secs(1));

    // The leader (host1, which founded the swarm) dies: host2's stream
    // tells that host1 went down, and goes on with what the new leader writes.
    h1.kill();
    wait_for(FAILOVER, "host1 going down in host2's events", || {
        follow
            .output()
            .lines()
            .any(|l| l.contains(&h1_id) && l.contains("state.new=down"))
            .then_some(())
    });
    h2.ok(&["node", "update", "--availability", "drain", "host3"]);
    wait_for(CONVERGE, "host3's drain in host2's events", || {
        follow
            .output()
            .lines()
            .any(|l| l.contains("name=host3") && l.contains("availability.new=drain"))
            .then_some(())
    });
    let out = follow.output();
    assert!(follow.is_running(), "events goes on\n{out}");
    assert!(!out.contains("Warning"), "nothing was missed\n{out}");
    for l in out.lines() {
        assert_eq!(l.split(' ').nth(1), Some("node"), "{out}");
    }
    follow.kill();
}
