//! The agent's and the data plane's metrics on a live 2-host cluster: a
//! service with a health check, a memory limit, a published port and a VIP
//! runs one task per host; the worker's `/metrics` shows its task's CPU,
//! memory, network, restarts and health, the image pull and container start
//! it did, the DNS queries its task made, and the service's backends in its
//! data plane. Once the service is gone, so are its task's series.

use std::time::Duration;

use rswarm_tests::{wait_for, Cluster, Host};

const CONVERGE: Duration = Duration::from_secs(60);
const LIMIT: f64 = 64.0 * 1024.0 * 1024.0;

/// A web server answering `GET /` with its hostname.
const WEB: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

/// `/metrics` of a host (its default metrics address, in its namespace).
fn scrape(h: &Host) -> String {
    h.exec_ok(&[
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/9323 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3",
    ])
}

/// The value of the sample of `name` whose labels include every `labels`
/// pair; None without one.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let (labelset, value) = if let Some(r) = rest.strip_prefix('{') {
            let (ls, v) = r.split_once('}')?;
            (ls, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            return None;
        };
        labels
            .iter()
            .all(|(k, v)| labelset.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.split_whitespace().next()?.parse().ok())
            .flatten()
    })
}

/// The running task of `service` on node `node`: (id, name).
fn task_on(h: &Host, service: &str, node: &str) -> Option<(String, String)> {
    let out = h.rswarm(&[
        "service",
        "ps",
        service,
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.ID}}|{{.Name}}|{{.Node}}|{{.CurrentState}}",
    ]);
    out.stdout.lines().find_map(|l| {
        let p: Vec<&str> = l.split('|').map(str::trim).collect();
        (p.len() == 4 && p[2] == node && p[3].starts_with("Running") && p[3].contains("(healthy)"))
            .then(|| (p[0].to_string(), p[1].to_string()))
    })
}

#[test]
fn a_nodes_metrics_show_its_tasks_pulls_starts_dns_and_backends() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.41.0.0/24", "backend"]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--network",
        "backend",
        "--replicas",
        "2",
        "--replicas-max-per-node",
        "1",
        "--limit-memory",
        "64m",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "--publish",
        "8080:80",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    let (task, name) = wait_for(CONVERGE, "a healthy web task on host2", || {
        task_on(h1, "web", "host2")
    });
    wait_for(CONVERGE, "a healthy web task on host1", || {
        task_on(h1, "web", "host1")
    });
    let node = h2.node_id();
    let l = [
        ("service", "web"),
        ("task", task.as_str()),
        ("node", node.as_str()),
    ];

    // Health, restarts, memory and the limit, read at scrape time.
    let m = wait_for(CONVERGE, "host2's task healthy in its metrics", || {
        let m = scrape(h2);
        let mut healthy = l.to_vec();
        healthy.push(("status", "healthy"));
        (sample(&m, "rswarm_task_health_status", &healthy) == Some(1.0)).then_some(m)
    });
    let slot = name.rsplit('.').next().unwrap_or_default().to_string();
    let mut with_slot = l.to_vec();
    with_slot.push(("slot", slot.as_str()));
    assert_eq!(
        sample(&m, "rswarm_task_restarts_total", &with_slot),
        Some(0.0),
        "{m}"
    );
    let mut unhealthy = l.to_vec();
    unhealthy.push(("status", "unhealthy"));
    assert_eq!(
        sample(&m, "rswarm_task_health_status", &unhealthy),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "rswarm_task_memory_limit_bytes", &l),
        Some(LIMIT),
        "{m}"
    );
    let mem = sample(&m, "rswarm_task_memory_usage_bytes", &l).expect("memory usage");
    assert!(mem > 0.0 && mem <= LIMIT, "memory usage {mem}");

    // Pulls and starts this node did.
    assert!(
        sample(&m, "rswarm_image_pulls_total", &[("result", "success")]).unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(sample(&m, "rswarm_image_pull_duration_seconds_count", &[]).unwrap_or(0.0) >= 1.0);
    let starts = sample(&m, "rswarm_container_start_duration_seconds_count", &[]).unwrap_or(0.0);
    assert!(starts >= 1.0, "{m}");
    let start_sum = sample(&m, "rswarm_container_start_duration_seconds_sum", &[]).unwrap_or(0.0);
    assert!(
        start_sum > 0.0 && start_sum < 30.0 * starts,
        "start time {start_sum}"
    );

    // Backends in host2's data plane: both tasks behind the mesh and the VIP
    // once the network state saying both serve has arrived (the agent knows
    // its own task healthy before the managers' picture says so).
    let mesh = [("service", "web"), ("kind", "mesh")];
    let vip = [("service", "web"), ("kind", "vip")];
    let m = wait_for(CONVERGE, "both tasks behind the mesh on host2", || {
        let m = scrape(h2);
        (sample(&m, "rswarm_service_backends", &mesh) == Some(2.0)).then_some(m)
    });
    assert_eq!(
        sample(&m, "rswarm_service_backends", &vip),
        Some(2.0),
        "{m}"
    );

    // CPU grows with work done in the task.
    let cpu0 = sample(&m, "rswarm_task_cpu_seconds_total", &l).expect("cpu");
    h1.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done",
    ]);
    let m = scrape(h2);
    let cpu1 = sample(&m, "rswarm_task_cpu_seconds_total", &l).expect("cpu");
    assert!(cpu1 > cpu0 && cpu1 > 0.0, "cpu {cpu0} -> {cpu1}");

    // Network bytes grow with requests to the task (through host2's own
    // address: the mesh spreads them over both tasks, so several go).
    let rx0 = sample(&m, "rswarm_task_network_receive_bytes_total", &l).expect("rx");
    let tx0 = sample(&m, "rswarm_task_network_transmit_bytes_total", &l).expect("tx");
    let url = format!("http://{}:8080/", h2.addr());
    for _ in 0..20 {
        h1.exec_timeout(&["curl", "-s", "-m", "3", &url], Duration::from_secs(10));
    }
    let m = scrape(h2);
    let rx1 = sample(&m, "rswarm_task_network_receive_bytes_total", &l).expect("rx");
    let tx1 = sample(&m, "rswarm_task_network_transmit_bytes_total", &l).expect("tx");
    assert!(
        rx1 > rx0 && tx1 > tx0,
        "rx {rx0} -> {rx1}, tx {tx0} -> {tx1}"
    );

    // DNS queries of the task are counted by host2's embedded server.
    let a = [("type", "A"), ("result", "noerror"), ("source", "cluster")];
    let q0 = sample(&m, "rswarm_dns_queries_total", &a).unwrap_or(0.0);
    let out = h1.ok(&["exec", &name, "nslookup", "web"]);
    assert!(
        out.contains("Name:\tweb") && out.contains("Address: 10."),
        "{out}"
    );
    let m = scrape(h2);
    let q1 = sample(&m, "rswarm_dns_queries_total", &a).unwrap_or(0.0);
    assert!(q1 > q0, "dns queries {q0} -> {q1}\n{m}");
    let answers = [("type", "A"), ("source", "cluster")];
    assert!(sample(&m, "rswarm_dns_answers_total", &answers).unwrap_or(0.0) >= 1.0);
    // Each family carries HELP text.
    for family in [
        "rswarm_task_cpu_seconds",
        "rswarm_task_memory_usage_bytes",
        "rswarm_task_memory_limit_bytes",
        "rswarm_task_network_receive_bytes",
        "rswarm_task_network_transmit_bytes",
        "rswarm_task_restarts",
        "rswarm_task_health_status",
        "rswarm_image_pulls",
        "rswarm_image_pull_duration_seconds",
        "rswarm_container_start_duration_seconds",
        "rswarm_dns_queries",
        "rswarm_dns_answers",
        "rswarm_service_backends",
    ] {
        assert!(
            m.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }

    // The service gone, its task's series and backends go too.
    h1.ok(&["service", "rm", "web"]);
    wait_for(CONVERGE, "host2's metrics without the removed task", || {
        let m = scrape(h2);
        (!m.contains(&format!("task=\"{task}\""))
            && sample(&m, "rswarm_service_backends", &[("service", "web")]).is_none())
        .then_some(())
    });
}
