//! A worker that was away while the swarm moved on: its daemon killed, or its
//! cable cut. Three hosts (host1 manages, host2 and host3 work), a registry,
//! real runc containers. When the worker comes back, what it finds on the
//! machine is reconciled with the leader's assignments: containers of tasks
//! deleted meanwhile are swept with everything they had (mounts, network
//! namespace, gateway leg, nftables rules), a container that died meanwhile
//! is reported Failed and replaced, and tasks moved elsewhere are stopped
//! here, so that no slot runs twice.

use std::path::PathBuf;
use std::time::Duration;

use rswarm_tests::lists::{self, Task};
use rswarm_tests::{mounts_under, try_wait_for, wait_for, Cluster, Host};

/// How long a service may take to converge (image pull, scheduling, runc,
/// a stop grace period), with other tests running beside it on two cores.
const CONVERGE: Duration = Duration::from_secs(90);
/// How long a node may take to be seen Down, or Ready again.
const FAILOVER: Duration = Duration::from_secs(60);

/// Waits until `done(tasks of service)` within [`CONVERGE`].
fn wait_tasks(
    h1: &Host,
    service: &str,
    what: &str,
    done: impl FnMut(&[Task]) -> bool,
) -> Vec<Task> {
    lists::wait_tasks(h1, service, CONVERGE, what, done)
}

/// The IDs of the running tasks of `service`, once exactly `n` run.
fn running_ids(h1: &Host, service: &str, n: usize) -> Vec<String> {
    let tasks = wait_tasks(h1, service, &format!("{n} running {service} tasks"), |t| {
        t.iter().filter(|t| t.is_running()).count() == n
    });
    tasks
        .into_iter()
        .filter(Task::is_running)
        .map(|t| t.id)
        .collect()
}

/// Waits until `node ls` on host1 shows `host` with `status` (Ready, Down).
fn wait_node(h1: &Host, host: &Host, status: &str) {
    let want = format!("{} {status}", host.name());
    wait_for(FAILOVER, &format!("`{want}` in node ls"), || {
        h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .lines()
            .any(|l| l == want)
            .then_some(())
    });
}

/// The task IDs `node ps` lists for `host` (what the store still holds).
fn node_tasks(h1: &Host, host: &Host) -> Vec<String> {
    h1.ok(&["node", "ps", host.name(), "-q", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// What a task's container leaves on its host, seen from the machine.
#[derive(Debug, Default, PartialEq, Eq)]
struct Footprint {
    /// runc's status of the container (`running`, `stopped`...).
    container: Option<String>,
    /// The bundle directory `<data>/containers/<id>` exists.
    bundle: bool,
    /// Mount points under the data dir that belong to the task (its rootfs,
    /// its network namespace).
    mounts: Vec<PathBuf>,
    /// `<data>/netns/<id>`, the task's network namespace, exists.
    netns: bool,
    /// The task's address on the node's gateway bridge, from its veth there.
    gateway: Option<String>,
    /// Table `ip rswarm` (the service VIPs) in the task's namespace.
    vip_table: bool,
}

impl Footprint {
    fn is_gone(&self) -> bool {
        *self == Footprint::default()
    }

    /// A running task on an overlay network, with everything it needs.
    fn is_whole(&self, data: &std::path::Path, id: &str) -> bool {
        self.container.as_deref() == Some("running")
            && self.bundle
            && self
                .mounts
                .contains(&data.join("containers").join(id).join("rootfs"))
            && self.mounts.contains(&data.join("netns").join(id))
            && self.netns
            && self.gateway.is_some()
            && self.vip_table
    }
}

fn footprint(host: &Host, id: &str) -> Footprint {
    let data = host.data_dir();
    let netns = data.join("netns").join(id);
    let links = host.exec_ok(&["ip", "-o", "link", "show"]);
    let alias = format!("rswarm gateway task={id} ip=");
    let gateway = links.lines().find_map(|l| {
        let rest = &l[l.find(&alias)? + alias.len()..];
        Some(
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        )
    });
    let vip_table = netns.exists() && {
        let ns = format!("--net={}", netns.display());
        let out = host.exec(&["nsenter", &ns, "nft", "list", "table", "ip", "rswarm"]);
        out.success()
    };
    Footprint {
        container: host
            .containers()
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| c.status),
        bundle: data.join("containers").join(id).exists(),
        mounts: mounts_under(data)
            .unwrap_or_else(|err| panic!("reading the mount table: {err}"))
            .into_iter()
            .filter(|p| p.components().any(|c| c.as_os_str() == id))
            .collect(),
        netns: netns.exists(),
        gateway,
        vip_table,
    }
}

/// The routing-mesh rule of a host-mode `port` in the host's own namespace:
/// the backend addresses it forwards to (None when the port is not published).
fn host_port_backends(host: &Host, port: u16) -> Option<Vec<String>> {
    let out = host.exec(&["nft", "list", "table", "ip", "rswarm_mesh"]);
    if !out.success() {
        return None;
    }
    let rule = out
        .stdout
        .lines()
        .find(|l| l.contains(&format!("dport {port} ")) && l.contains("dnat"))?;
    let mut backends: Vec<String> = rule
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|w| w.starts_with("172.") && w.split('.').count() == 4)
        .map(str::to_string)
        .collect();
    backends.sort();
    backends.dedup();
    Some(backends)
}

/// Three hosts with a registry; host1 manages, host2 and host3 work.
fn swarm(heartbeat: Option<&str>) -> Cluster {
    let cluster = Cluster::with_registry(3).expect("three hosts and a registry");
    match heartbeat {
        Some(period) => cluster.init_swarm_with_heartbeat(1, 2, period),
        None => cluster.init_swarm(1, 2),
    }
    .expect("a swarm of one manager and two workers");
    cluster
}

/// `service create --detach` of busybox httpd on `appnet`, pinned to `node`.
fn create_on(h1: &Host, image: &str, name: &str, node: &str, extra: &[&str]) {
    let constraint = format!("node.hostname=={node}");
    let mut args = vec![
        "service",
        "create",
        "--detach",
        "--name",
        name,
        "--network",
        "appnet",
        "--constraint",
        &constraint,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, "httpd", "-f", "-p", "80"]);
    h1.ok(&args);
}

#[test]
fn a_service_removed_while_the_workers_daemon_is_down_is_swept_at_its_restart() {
    let cluster = swarm(None);
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.20.0.0/24", "appnet"]);
    let gone_port = ["--publish", "mode=host,target=80,published=8080"];
    let stay_port = ["--publish", "mode=host,target=80,published=8081"];
    create_on(h1, &image, "gone", "host2", &gone_port);
    create_on(h1, &image, "stay", "host2", &stay_port);
    let gone = running_ids(h1, "gone", 1).remove(0);
    let stay_before = running_ids(h1, "stay", 1).remove(0);
    let before = wait_for(CONVERGE, "gone's task whole on host2", || {
        let f = footprint(h2, &gone);
        f.is_whole(h2.data_dir(), &gone).then_some(f)
    });
    let gone_gw = before.gateway.clone().unwrap_or_default();
    wait_for(CONVERGE, "host2 publishing 8080 to gone's task", || {
        (host_port_backends(h2, 8080) == Some(vec![gone_gw.clone()])).then_some(())
    });
    assert!(
        node_tasks(h1, h2).contains(&gone),
        "node ps host2 lists gone's task"
    );

    // The daemon dies; the node goes Down; the service is removed, and with
    // the node Down its task is deleted at once: no assignment will name it.
    h2.kill();
    wait_node(h1, h2, "Down");
    h1.ok(&["service", "rm", "gone"]);
    wait_for(CONVERGE, "gone's task deleted from the store", || {
        (!node_tasks(h1, h2).contains(&gone)).then_some(())
    });
    assert_eq!(
        footprint(h2, &gone),
        before,
        "the container runs on while its daemon is down"
    );

    h2.start();
    wait_node(h1, h2, "Ready");
    // The restarted worker took its assignments: stay's replacement runs on
    // host2 (its old task was stopped with the node Down).
    let stay_after = wait_tasks(h1, "stay", "stay's replacement running", |t| {
        t.iter()
            .any(|t| t.is_running() && t.node == "host2" && t.id != stay_before)
    })
    .into_iter()
    .find(|t| t.is_running())
    .map(|t| t.id)
    .unwrap_or_default();
    let mut last = Footprint::default();
    try_wait_for(CONVERGE, "gone's container and all it had swept", || {
        last = footprint(h2, &gone);
        last.is_gone().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {last:?}\n{}", h2.daemon_log_tail(30)));
    // The twin: the same probes see stay's new task whole, and the mesh
    // table, rebuilt since the restart, forwards 8081 to it alone.
    let twin = wait_for(CONVERGE, "stay's new task whole on host2", || {
        let f = footprint(h2, &stay_after);
        f.is_whole(h2.data_dir(), &stay_after).then_some(f)
    });
    let stay_gw = twin.gateway.unwrap_or_default();
    let mut seen = None;
    try_wait_for(CONVERGE, "host2 publishing 8081 to stay's new task", || {
        seen = host_port_backends(h2, 8081);
        (seen == Some(vec![stay_gw.clone()])).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: 8081 goes to {seen:?}, stay's new task is {stay_gw}\n{}",
            h2.exec(&["nft", "list", "table", "ip", "rswarm_mesh"])
        )
    });
    assert_eq!(
        host_port_backends(h2, 8080),
        None,
        "8080 is published by no service any more"
    );
    // stay's old task, found running at the restart and stopped since, keeps
    // its stopped container (history) but no network.
    wait_tasks(h1, "stay", "stay's old task reported Shutdown", |t| {
        t.iter()
            .any(|t| t.id == stay_before && t.current.starts_with("Shutdown"))
    });
    let old_stay = footprint(h2, &stay_before);
    assert_eq!(
        (
            old_stay.container.as_deref(),
            old_stay.bundle,
            old_stay.netns,
            old_stay.gateway.as_deref()
        ),
        (Some("stopped"), true, false, None),
        "{old_stay:?}"
    );
}

#[test]
fn tasks_rescheduled_and_deleted_while_the_daemon_is_down_are_swept_at_its_restart() {
    let cluster = swarm(None);
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    // One task kept per slot: a task replaced is deleted at once.
    h1.ok(&["swarm", "update", "--task-history-limit", "1"]);
    h1.ok(&["network", "create", "--subnet", "10.20.0.0/24", "appnet"]);
    create_on(h1, &image, "web", "host2", &["--replicas", "3"]);
    let old = running_ids(h1, "web", 3);
    let before: Vec<Footprint> = old
        .iter()
        .map(|id| {
            wait_for(CONVERGE, &format!("task {id} whole on host2"), || {
                let f = footprint(h2, id);
                f.is_whole(h2.data_dir(), id).then_some(f)
            })
        })
        .collect();

    // With host2 Down, each slot gets a new task (pending: only host2 may run
    // it) and the old ones, now history beyond the limit, are deleted.
    h2.kill();
    wait_node(h1, h2, "Down");
    wait_tasks(h1, "web", "the old tasks deleted, new ones waiting", |t| {
        t.len() == 3
            && t.iter()
                .all(|t| !old.contains(&t.id) && t.desired == "Running")
    });
    for (id, f) in old.iter().zip(&before) {
        assert_eq!(
            &footprint(h2, id),
            f,
            "{id} runs on while its daemon is down"
        );
    }

    h2.start();
    wait_node(h1, h2, "Ready");
    let new = running_ids(h1, "web", 3);
    assert!(new.iter().all(|id| !old.contains(id)), "{new:?} {old:?}");
    for id in &old {
        let mut last = Footprint::default();
        try_wait_for(CONVERGE, &format!("old task {id} swept"), || {
            last = footprint(h2, id);
            last.is_gone().then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {last:?}\n{}", h2.daemon_log_tail(30)));
    }
    // The twins: the new tasks on the same host, seen by the same probes.
    for id in &new {
        let mut last = Footprint::default();
        try_wait_for(CONVERGE, &format!("new task {id} whole"), || {
            last = footprint(h2, id);
            last.is_whole(h2.data_dir(), id).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {last:?}"));
    }
    let running: Vec<String> = h2
        .containers()
        .into_iter()
        .filter(|c| c.status == "running")
        .map(|c| c.id)
        .collect();
    let mut want = new.clone();
    want.sort();
    assert_eq!(running, want, "host2 runs exactly the new tasks");
}

#[test]
fn a_container_that_exits_while_its_daemon_is_down_is_reported_failed_and_replaced() {
    // A heartbeat period long enough that host2 stays Ready while its daemon
    // is restarted (Down only after three missed periods).
    let cluster = swarm(Some("30s"));
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "victim",
        "--restart-delay",
        "1s",
        "--constraint",
        "node.hostname==host2",
        &image,
        "sleep",
        "3600",
    ]);
    let old = running_ids(h1, "victim", 1).remove(0);
    let pid = h2
        .containers()
        .into_iter()
        .find(|c| c.id == old && c.status == "running")
        .map(|c| c.pid)
        .unwrap_or_else(|| panic!("{old} runs on host2: {:?}", h2.containers()));

    h2.kill();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap_or_else(|e| panic!("kill -9 {pid}: {e}"));
    wait_for(CONVERGE, "runc to see the container stopped", || {
        h2.containers()
            .iter()
            .any(|c| c.id == old && c.status == "stopped")
            .then_some(())
    });
    h2.start();

    let tasks = wait_tasks(h1, "victim", "the task Failed and replaced", |t| {
        t.iter()
            .any(|t| t.id == old && t.current.starts_with("Failed"))
            && t.iter().any(|t| t.id != old && t.is_running())
    });
    let failed = tasks.iter().find(|t| t.id == old).cloned();
    let failed = failed.unwrap_or_else(|| panic!("{tasks:?}"));
    assert!(
        failed.error.contains("exit code unknown"),
        "the error says the exit code is unknown: {failed:?}"
    );
    assert_eq!(
        h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .lines()
            .find(|l| l.starts_with("host2 ")),
        Some("host2 Ready")
    );
    let running: Vec<&Task> = tasks.iter().filter(|t| t.is_running()).collect();
    assert_eq!(running.len(), 1, "one task runs: {tasks:?}");
    assert_eq!(running[0].node, "host2");
    let containers = h2.containers();
    let status = |id: &str| {
        containers
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.status.as_str())
    };
    assert_eq!(status(&running[0].id), Some("running"), "{containers:?}");
    assert_eq!(status(&old), Some("stopped"), "{containers:?}");
}

/// How a worker is taken away from the swarm.
#[derive(Clone, Copy)]
enum Away {
    /// Its cable is cut; the daemon keeps running.
    CutOff,
    /// Its daemon is killed (kill -9) and started again later.
    Dead,
}

/// Six replicas, two per host; host3 goes away until its tasks run on the
/// other hosts, then comes back: its stale containers stop, its old tasks
/// are reported Shutdown, and every slot runs exactly once.
fn a_worker_comes_back_after_its_tasks_moved(away: Away) {
    let cluster = swarm(None);
    let (h1, h3) = (cluster.host(1), cluster.host(3));
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
    let per_node = |tasks: &[Task], node: &str| {
        tasks
            .iter()
            .filter(|t| t.is_running() && t.node == node)
            .count()
    };
    let spread = wait_tasks(h1, "web", "two web tasks per host", |t| {
        ["host1", "host2", "host3"]
            .iter()
            .all(|n| per_node(t, n) == 2)
    });
    let stale: Vec<String> = spread
        .iter()
        .filter(|t| t.node == "host3")
        .map(|t| t.id.clone())
        .collect();

    match away {
        Away::CutOff => h3.disconnect(),
        Away::Dead => h3.kill(),
    }
    wait_node(h1, h3, "Down");
    wait_tasks(h1, "web", "web rescheduled on host1 and host2", |t| {
        per_node(t, "host1") + per_node(t, "host2") == 6
    });
    let live: Vec<String> = h3
        .containers()
        .into_iter()
        .filter(|c| c.status == "running")
        .map(|c| c.id)
        .collect();
    assert_eq!(
        live.len(),
        2,
        "host3's containers run on while it is away: {live:?}"
    );

    match away {
        Away::CutOff => h3.heal(),
        Away::Dead => h3.start(),
    }
    wait_node(h1, h3, "Ready");
    let tasks = wait_tasks(h1, "web", "host3's old tasks reported Shutdown", |t| {
        stale.iter().all(|id| {
            t.iter()
                .any(|t| &t.id == id && t.current.starts_with("Shutdown"))
        })
    });
    let mut last = String::new();
    try_wait_for(CONVERGE, "no running container on host3", || {
        let containers = h3.containers();
        last = format!("{containers:?}");
        containers
            .iter()
            .all(|c| c.status != "running")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {last}"));

    // Exactly one running task per slot, and a running container for each,
    // on the node `service ps` names.
    let meant: Vec<&Task> = tasks.iter().filter(|t| t.desired == "Running").collect();
    let mut slots: Vec<&str> = meant.iter().map(|t| t.name.as_str()).collect();
    slots.sort();
    slots.dedup();
    assert_eq!(
        (meant.len(), slots.len()),
        (6, 6),
        "one task per slot: {tasks:#?}"
    );
    assert!(meant.iter().all(|t| t.is_running()), "{tasks:#?}");
    for host in cluster.hosts() {
        let mut running: Vec<String> = host
            .containers()
            .into_iter()
            .filter(|c| c.status == "running")
            .map(|c| c.id)
            .collect();
        running.sort();
        let mut want: Vec<String> = meant
            .iter()
            .filter(|t| t.node == host.name())
            .map(|t| t.id.clone())
            .collect();
        want.sort();
        assert_eq!(running, want, "{} runs its tasks once", host.name());
    }
}

#[test]
fn a_cut_off_worker_reconnected_stops_its_stale_containers_and_no_slot_runs_twice() {
    a_worker_comes_back_after_its_tasks_moved(Away::CutOff);
}

#[test]
fn a_dead_worker_restarted_stops_its_stale_containers_and_no_slot_runs_twice() {
    a_worker_comes_back_after_its_tasks_moved(Away::Dead);
}
