//! Networks as cluster objects, end to end: `ingress` from `init`, `network
//! create | ls | inspect | rm | prune`, addresses and VIPs from the
//! allocator, and the refusals (overlap, in use, out of addresses).

use std::time::Duration;

use rswarm_tests::{wait_for, Cluster};

#[test]
fn networks_are_cluster_objects_with_ipam() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let image = cluster.registry().busybox();

    // `ingress` exists from init, like Swarm's.
    let ls = h1.ok(&["network", "ls"]);
    assert!(
        ls.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
        "{ls}"
    );
    assert!(
        ls.contains(" ingress ") && ls.contains("overlay   swarm"),
        "{ls}"
    );
    let ingress = h1.ok(&[
        "network",
        "inspect",
        "ingress",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}} {{.Ingress}}",
    ]);
    assert_eq!(ingress.trim(), "10.0.0.0/24 true");

    h1.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.20.0.0/24",
        "--attachable",
        "backend",
    ]);
    let err = h1.fails(&["network", "create", "--subnet", "10.20.0.0/25", "other"]);
    assert!(err.contains("overlaps"), "{err}");
    let err = h1.fails(&["network", "create", "backend"]);
    assert!(err.contains("already exists"), "{err}");
    let err = h1.fails(&["network", "create", "--subnet", "10.20.0.0/33", "bad"]);
    assert!(err.contains("invalid CIDR"), "{err}");
    // Without --subnet the network gets one from the default pool, and a VNI.
    h1.ok(&["network", "create", "auto"]);
    let auto = h1.ok(&[
        "network",
        "inspect",
        "auto",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}}",
    ]);
    assert!(
        auto.trim().starts_with("10.") && auto.trim().ends_with("/24"),
        "{auto}"
    );
    // Managers answer for networks; a worker does not.
    assert!(h2.fails(&["network", "ls"]).contains("not a swarm manager"));

    // A service on backend: a VIP, and one address per task.
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
        &image,
        "sleep",
        "3600",
    ]);
    let vip = wait_for(Duration::from_secs(30), "api's VIP", || {
        let v = h1.ok(&[
            "service",
            "inspect",
            "api",
            "--format",
            "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}",
        ]);
        let v = v.trim().to_string();
        (!v.is_empty()).then_some(v)
    });
    assert!(vip.starts_with("10.20.0."), "{vip}");
    h1.wait_running_tasks("api", 3);
    let err = h1.fails(&["network", "rm", "backend"]);
    assert!(err.contains("in use"), "{err}");

    // Out of addresses: a /29 has 6 host addresses; the gateway and crowd's VIP
    // take two, 4 tasks get the rest and 3 wait with the reason.
    h1.ok(&["network", "create", "--subnet", "10.21.0.0/29", "small"]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "crowd",
        "--network",
        "small",
        "--replicas",
        "7",
        &image,
        "sleep",
        "3600",
    ]);
    let mut last = String::new();
    rswarm_tests::try_wait_for(
        Duration::from_secs(60),
        "the tasks that fit to run and the others to say why not",
        || {
            let ps = h1.ok(&[
                "service",
                "ps",
                "crowd",
                "--no-trunc",
                "--format",
                "{{.CurrentState}}|{{.Error}}",
            ]);
            last = ps.clone();
            let running = ps.lines().filter(|l| l.starts_with("Running")).count();
            let starved = ps
                .lines()
                .filter(|l| l.contains("no free address in 10.21.0.0/29"))
                .count();
            (running == 4 && starved == 3).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}; `service ps crowd` showed:\n{last}"));

    h1.ok(&["service", "rm", "api", "crowd"]);
    wait_for(Duration::from_secs(30), "backend to be removable", || {
        h1.rswarm(&["network", "rm", "backend"])
            .success()
            .then_some(())
    });
    let pruned = h1.ok(&["network", "prune", "--force"]);
    assert!(
        pruned.contains("small") && pruned.contains("auto"),
        "{pruned}"
    );
    let ls = h1.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.trim(), "ingress");
}

#[test]
fn tasks_on_different_hosts_reach_each_other_by_name_over_the_overlay() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.20.0.0/24", "backend"]);
    h1.ok(&["network", "create", "--subnet", "10.30.0.0/24", "other"]);
    // api on host2, answering its own hostname; the client on host3.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "api",
        "--network",
        "backend",
        "--endpoint-mode",
        "dnsrr",
        "--replicas",
        "2",
        "--constraint",
        "node.hostname==host2",
        "--hostname",
        "api-{{.Task.Slot}}",
        &image,
        "sh",
        "-c",
        "hostname > /var/www/index.html && exec httpd -f -p 80 -h /var/www",
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
        "stranger",
        "--network",
        "other",
        "--constraint",
        "node.hostname==host3",
        &image,
        "sleep",
        "3600",
    ]);
    for (svc, want) in [("api", 2), ("client", 1), ("stranger", 1)] {
        h1.wait_running_tasks(svc, want);
    }
    // tasks.api lists both api tasks' addresses, from another host.
    let lookup = wait_for(
        Duration::from_secs(15),
        "tasks.api to resolve to 2 addresses",
        || {
            let out = h1.rswarm(&["exec", "client.1", "nslookup", "tasks.api"]);
            let addrs = out
                .stdout
                .lines()
                .filter(|l| l.contains("10.20.0."))
                .count();
            (out.success() && addrs == 2).then_some(out.stdout)
        },
    );
    assert!(lookup.contains("10.20.0."), "{lookup}");
    // ...and HTTP to what the name resolves to reaches the api tasks on host2.
    // (The test image's busybox is glibc-static: its getaddrinfo cannot use
    // DNS without NSS libraries, so `wget http://api/` resolves nothing there;
    // busybox's nslookup has its own resolver and shows what a task sees.)
    let api = wait_for(Duration::from_secs(15), "`api` to resolve", || {
        let out = h1.rswarm(&["exec", "client.1", "nslookup", "api"]);
        let addrs: Vec<String> = out
            .stdout
            .lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("10.20.0."))
                    .map(String::from)
            })
            .collect();
        (addrs.len() == 2).then_some(addrs)
    });
    let mut hostnames = vec![];
    for addr in &api {
        let mut last = String::new();
        let body = rswarm_tests::try_wait_for(
            Duration::from_secs(15),
            &format!("http://{addr}/ to answer"),
            || {
                let req =
                    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {addr} 80");
                let out = h1.rswarm(&["exec", "client.1", "sh", "-c", &req]);
                last = out.to_string();
                let body = out
                    .stdout
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                (out.success() && body.starts_with("api-")).then_some(body)
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{last}"));
        hostnames.push(body.trim().to_string());
    }
    hostnames.sort();
    assert_eq!(
        hostnames,
        vec!["api-1", "api-2"],
        "both api tasks answer across the overlay"
    );
    // A task on another network cannot resolve or reach it, although the same
    // probes from the same task work for its own network's names and tasks.
    wait_for(
        Duration::from_secs(60),
        "`stranger` to resolve in stranger.1",
        || {
            let out = h1.rswarm(&["exec", "stranger.1", "nslookup", "stranger"]);
            let addr = out
                .stdout
                .lines()
                .skip_while(|l| !l.starts_with("Name:"))
                .find_map(|l| {
                    l.split_whitespace()
                        .find(|w| w.parse::<std::net::Ipv4Addr>().is_ok())
                        .map(String::from)
                });
            (out.success()).then_some(addr).flatten()
        },
    );
    let out = h1.rswarm(&["exec", "stranger.1", "nslookup", "api"]);
    assert!(
        out.stdout.contains("Server:"),
        "nslookup did not run in stranger.1: {out}"
    );
    assert!(!out.stdout.contains("10.20.0."), "{out}");
    let addr = lookup
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("10.20.0.")))
        .next()
        .unwrap()
        .to_string();
    // The positive twin: the same probe from stranger.1 reaches an address it
    // may reach (a listener on host2's own address, through the gateway).
    let listener = cluster.host(2).listen_tcp(7001);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut conn, b"pong\n");
        }
    });
    let twin = format!("busybox nc -w 2 {} 7001 </dev/null", cluster.host(2).addr());
    wait_for(
        Duration::from_secs(60),
        "stranger.1 to reach host2:7001",
        || {
            let out = h1.rswarm(&["exec", "stranger.1", "sh", "-c", &twin]);
            out.stdout.contains("pong").then_some(())
        },
    );
    let req =
        format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 {addr} 80; echo probe-ran");
    let out = h1.rswarm(&["exec", "stranger.1", "sh", "-c", &req]);
    assert!(
        out.success() && out.stdout.contains("probe-ran"),
        "the probe did not run in stranger.1: {out}"
    );
    assert!(
        !out.stdout.contains("api-"),
        "a task on `other` reached {addr}: {out}"
    );
}
