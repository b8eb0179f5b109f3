//! Service VIPs, embedded DNS freshness, egress and `--internal`, the ingress
//! routing mesh and host-mode ports, end to end on a 3-host namespace
//! cluster: what a user sees from inside tasks and from the hosts'
//! addresses, and what each host's data plane holds afterwards (no leftover
//! or duplicate devices and rules).

use std::collections::BTreeSet;
use std::time::Duration;

use rswarm_tests::{try_wait_for, wait_for, Cluster, Host};

/// The addresses `nslookup NAME` shows inside task `task`, on `prefix`.
fn lookup(h: &Host, task: &str, name: &str, prefix: &str) -> BTreeSet<String> {
    let out = h.rswarm(&["exec", task, "nslookup", name]);
    out.stdout
        .lines()
        .filter(|l| l.starts_with("Address") || l.contains(prefix))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with(prefix))
                .map(String::from)
        })
        .collect()
}

/// One HTTP GET from inside a task with busybox nc; the last line of the body.
fn get_in_task(h: &Host, task: &str, addr: &str, path: &str) -> Option<String> {
    let req = format!("printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {addr} 80");
    let out = h.rswarm(&["exec", task, "sh", "-c", &req]);
    let last = out.stdout.lines().last()?.trim().to_string();
    (out.success() && !last.is_empty()).then_some(last)
}

/// One HTTP GET with curl from a host's namespace; the body, trimmed.
fn curl(h: &Host, url: &str) -> Option<String> {
    let out = h.exec_timeout(&["curl", "-s", "-m", "3", url], Duration::from_secs(10));
    (out.success() && !out.stdout.trim().is_empty()).then(|| out.stdout.trim().to_string())
}

/// A server that answers `GET /` with its hostname, `GET /cgi-bin/ip` with
/// the client address it sees.
const WEB: &str = "mkdir -p /www/cgi-bin && hostname > /www/index.html && \
    printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && \
    chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www";

/// Task network namespaces left on a host (files under `<data>/netns` that
/// are not network sandboxes).
fn task_namespaces(h: &Host) -> Vec<String> {
    let dir = h.data_dir().join("netns");
    std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| !n.starts_with("1-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Interfaces enslaved to the node's gateway bridge.
fn gateway_ports(h: &Host) -> usize {
    let out = h.exec(&["ip", "-o", "link", "show", "master", "rswarm_gwbridge"]);
    out.stdout.lines().filter(|l| !l.trim().is_empty()).count()
}

fn nft_ruleset(h: &Host) -> String {
    h.exec_ok(&["nft", "list", "ruleset"])
}

#[test]
fn vips_balance_dns_follows_tasks_and_internal_networks_have_no_way_out() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.20.0.0/24", "backend"]);
    h1.ok(&[
        "network",
        "create",
        "--subnet",
        "10.40.0.0/24",
        "--internal",
        "sealed",
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "api",
        "--network",
        "backend",
        "--replicas",
        "3",
        "--hostname",
        "api-{{.Task.Slot}}",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "client",
        "--network",
        "backend",
        "--constraint",
        "node.hostname==host3",
        &image,
        "sleep",
        "3600",
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "inside",
        "--network",
        "sealed",
        "--constraint",
        "node.hostname==host3",
        "--hostname",
        "inside-{{.Task.Slot}}",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    h1.wait_running_tasks("api", 3);
    h1.wait_running_tasks("client", 1);
    h1.wait_running_tasks("inside", 1);

    // `api` is one VIP; requests to it reach all three tasks.
    let vip = wait_for(
        Duration::from_secs(15),
        "`api` to resolve to its VIP",
        || {
            let a = lookup(h1, "client.1", "api", "10.20.0.");
            (a.len() == 1).then(|| a.into_iter().next().unwrap_or_default())
        },
    );
    let inspect = h1.ok(&[
        "service",
        "inspect",
        "api",
        "--format",
        "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}",
    ]);
    assert_eq!(inspect.trim().split('/').next(), Some(vip.as_str()));
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        if let Some(body) = get_in_task(h1, "client.1", &vip, "/") {
            seen.insert(body);
        }
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["api-1".into(), "api-2".into(), "api-3".into()]),
        "requests to the VIP {vip} reach every api task"
    );

    // tasks.api: exactly the running tasks, and a stopped one leaves it (how
    // fast is bench-network's business).
    let tasks = wait_for(Duration::from_secs(60), "tasks.api: 3 addresses", || {
        let a = lookup(h1, "client.1", "tasks.api", "10.20.0.");
        (a.len() == 3).then_some(a)
    });
    assert!(!tasks.contains(&vip));
    h1.ok(&["service", "scale", "--detach", "api=2"]);
    let after = wait_for(
        Duration::from_secs(60),
        "tasks.api: 2 addresses after `service scale api=2`",
        || {
            let a = lookup(h1, "client.1", "tasks.api", "10.20.0.");
            (a.len() == 2).then_some(a)
        },
    );
    assert!(after.is_subset(&tasks));
    // ... and the VIP balances over the two left only.
    let mut seen = BTreeSet::new();
    for _ in 0..12 {
        if let Some(body) = get_in_task(h1, "client.1", &vip, "/") {
            seen.insert(body);
        }
    }
    assert_eq!(seen.len(), 2, "after scaling to 2 the VIP reached {seen:?}");

    // Egress: a task on a normal network reaches an address outside the
    // cluster's networks (host2's own address); a task on an internal one
    // has no route out.
    let listener = h2.listen_tcp(7000);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut conn, b"pong\n");
        }
    });
    let probe = format!("busybox nc -w 2 {} 7000 </dev/null", h2.addr());
    let mut last = String::new();
    try_wait_for(
        Duration::from_secs(10),
        "client to reach host2:7000",
        || {
            let out = h1.rswarm(&["exec", "client.1", "sh", "-c", &probe]);
            last = format!("{out}");
            out.stdout.contains("pong").then_some(())
        },
    )
    .unwrap_or_else(|e| {
        let route = h1.rswarm(&["exec", "client.1", "sh", "-c", "ip addr; ip route"]);
        panic!("{e}: {last}\n{route}\n{}", nft_ruleset(cluster.host(3)))
    });
    // The negative probe runs from where a positive one succeeds: inside.1
    // reaches its own network's VIP, and the probe itself ran to its end.
    assert_eq!(
        get_in_task(h1, "inside.1", "inside", "/").as_deref(),
        Some("inside-1"),
        "inside.1 reaches the VIP of its internal network"
    );
    let out = h1.rswarm(&[
        "exec",
        "inside.1",
        "sh",
        "-c",
        &format!("{probe}; echo probe-ran"),
    ]);
    assert!(
        out.success() && out.stdout.contains("probe-ran"),
        "the egress probe did not run in inside.1: {out}"
    );
    assert!(
        !out.stdout.contains("pong"),
        "a task on an internal network got out: {out}"
    );
    let route = h1.rswarm(&["exec", "inside.1", "ip", "route"]);
    assert!(
        !route.stdout.contains("default"),
        "an internal-only task has a default route: {route}"
    );

    // Removing the services removes their namespaces, gateway legs, VIP
    // tables and the network sandboxes, on every host.
    h1.ok(&["service", "rm", "api", "client", "inside"]);
    for h in cluster.hosts() {
        let mut last = String::new();
        try_wait_for(
            Duration::from_secs(60),
            &format!("{}'s data plane to be empty", h.name()),
            || {
                let ns = task_namespaces(h);
                let gw = gateway_ports(h);
                let sandboxes: Vec<String> = std::fs::read_dir(h.data_dir().join("netns"))
                    .map(|d| {
                        d.flatten()
                            .filter_map(|e| e.file_name().to_str().map(String::from))
                            .filter(|n| n.starts_with("1-"))
                            .collect()
                    })
                    .unwrap_or_default();
                last =
                    format!("task namespaces {ns:?}, gateway ports {gw}, sandboxes {sandboxes:?}");
                // Only the ingress sandbox (the node's routing-mesh leg) may stay.
                (ns.is_empty() && gw == 0 && sandboxes.len() <= 1).then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}: {last}\n{}", h.daemon_log_tail(30)));
    }
}

#[test]
fn published_ports_answer_on_every_node_and_host_mode_keeps_the_client_address() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));
    let image = cluster.registry().busybox();
    // web on host1 and host2 only: host3 has no task of it.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "2",
        "--replicas-max-per-node",
        "1",
        "--constraint",
        "node.hostname!=host3",
        "--publish",
        "8080:80",
        "--hostname",
        "web-{{.Task.Slot}}",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    // edge publishes in host mode on host2 only.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "edge",
        "--publish",
        "mode=host,target=80,published=8081",
        "--constraint",
        "node.hostname==host2",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    // A port already published by another service is refused at create.
    let err = h1.fails(&[
        "service",
        "create",
        "--detach",
        "--name",
        "clash",
        "--publish",
        "8080:80",
        &image,
        "sleep",
        "1",
    ]);
    assert!(err.contains("already in use"), "{err}");
    h1.wait_running_tasks("web", 2);
    h1.wait_running_tasks("edge", 1);

    // The routing mesh: every node's address answers, host3 included, and
    // requests through one node are balanced over both tasks.
    for (client, target) in [(h1, h3), (h2, h1), (h3, h2), (h1, h1)] {
        let url = format!("http://{}:8080/", target.addr());
        let mut last = String::new();
        try_wait_for(
            Duration::from_secs(20),
            &format!("{url} from {}", client.name()),
            || {
                let body = curl(client, &url);
                last = format!("{body:?}");
                body.filter(|b| b.starts_with("web-")).map(|_| ())
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {last}\n{}\n{}",
                nft_ruleset(target),
                target.daemon_log_tail(30)
            )
        });
    }
    let via_host3 = format!("http://{}:8080/", h3.addr());
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        if let Some(b) = curl(h1, &via_host3) {
            seen.insert(b);
        }
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["web-1".into(), "web-2".into()]),
        "the mesh on host3 balances over both tasks"
    );
    // 127.0.0.1 of a node answers too.
    let local = wait_for(Duration::from_secs(10), "127.0.0.1:8080 on host3", || {
        curl(h3, "http://127.0.0.1:8080/")
    });
    assert!(local.starts_with("web-"), "{local}");

    // Host mode: only host2 answers, and the task sees the client's address.
    let seen_addr = wait_for(Duration::from_secs(20), "host2:8081 to answer", || {
        curl(h3, &format!("http://{}:8081/cgi-bin/ip", h2.addr()))
    });
    // busybox httpd listens on IPv6 too: an IPv4 client shows as mapped
    // ("[::ffff:10.77.0.13]").
    let seen_addr = seen_addr
        .trim_start_matches('[')
        .trim_start_matches("::ffff:")
        .trim_end_matches(']');
    assert_eq!(
        seen_addr,
        h3.addr(),
        "a host-mode task sees the client's own address"
    );
    assert_eq!(curl(h3, &format!("http://{}:8081/", h1.addr())), None);
    assert_eq!(curl(h1, &format!("http://{}:8081/", h3.addr())), None);

    // kill -9 host2's daemon and start it again: the tasks keep running and
    // nothing is doubled.
    let before_ports = gateway_ports(h2);
    let rules_before = nft_ruleset(h2);
    assert!(
        before_ports >= 2,
        "web and edge each have a gateway leg on host2"
    );
    h2.kill();
    h2.start();
    wait_for(Duration::from_secs(60), "host2 back Ready", || {
        let ls = h1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        ls.lines().any(|l| l == "host2 Ready").then_some(())
    });
    // Past the point where a doubled leg or table would show: the restarted
    // daemon has applied the state and swept once (the log says so).
    wait_for(
        Duration::from_secs(60),
        "host2's first sweep since the restart",
        || {
            let log = std::fs::read_to_string(h2.log_path()).unwrap_or_default();
            let since_restart = log.rsplit("rswarm-tests: starting host2").next()?;
            since_restart
                .contains("net plane: first sweep since start done")
                .then_some(())
        },
    );
    assert_eq!(
        gateway_ports(h2),
        before_ports,
        "gateway legs after a restart"
    );
    let rules = nft_ruleset(h2);
    assert_eq!(
        rules.matches("table ip rswarm_mesh").count(),
        1,
        "one mesh table on host2 after a restart:\n{rules}"
    );
    assert_eq!(
        rules.matches("dport 8080").count(),
        rules_before.matches("dport 8080").count(),
        "the same port rules on host2 after a restart:\n{rules}"
    );
    let legs = h2.exec_ok(&["ip", "-o", "link"]);
    assert_eq!(
        legs.lines().filter(|l| l.contains("rswi")).count(),
        1,
        "one ingress leg on host2:\n{legs}"
    );
    let body = wait_for(
        Duration::from_secs(20),
        "host2:8080 after the restart",
        || curl(h3, &format!("http://{}:8080/", h2.addr())),
    );
    assert!(body.starts_with("web-"), "{body}");
    let seen_addr = wait_for(
        Duration::from_secs(20),
        "host2:8081 after the restart",
        || curl(h3, &format!("http://{}:8081/cgi-bin/ip", h2.addr())),
    );
    assert!(seen_addr.contains(h3.addr()), "{seen_addr}");

    // Removing the services removes their rules and legs everywhere.
    h1.ok(&["service", "rm", "web", "edge"]);
    for h in cluster.hosts() {
        let mut last = String::new();
        try_wait_for(
            Duration::from_secs(60),
            &format!("{}'s published ports to go", h.name()),
            || {
                let rules = nft_ruleset(h);
                let gone = !rules.contains("dport 8080") && !rules.contains("dport 8081");
                last = rules;
                (gone && gateway_ports(h) == 0 && task_namespaces(h).is_empty()).then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}:\n{last}"));
        assert_eq!(curl(h1, &format!("http://{}:8080/", h.addr())), None);
    }

    // `ingress` recreated with another subnet: every node moves its leg to
    // it and published ports answer through it.
    h1.ok(&["network", "rm", "ingress"]);
    h1.ok(&[
        "network",
        "create",
        "--ingress",
        "--subnet",
        "10.11.0.0/24",
        "mesh2",
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web2",
        "--publish",
        "8090:80",
        "--constraint",
        "node.hostname==host1",
        "--hostname",
        "web2-{{.Task.Slot}}",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    h1.wait_running_tasks("web2", 1);
    for h in cluster.hosts() {
        let url = format!("http://{}:8090/", h.addr());
        let body = wait_for(
            Duration::from_secs(30),
            &format!("{url} from host3"),
            || curl(h3, &url),
        );
        assert_eq!(body, "web2-1", "{url}");
        let legs = h.exec_ok(&["ip", "-o", "-4", "addr"]);
        assert!(
            legs.lines()
                .any(|l| l.contains("rswi") && l.contains(" 10.11.0.")),
            "{}: no leg on the new ingress:\n{legs}",
            h.name()
        );
    }
}
