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
    wait_for(Duration::from_secs(60), "3 running api tasks", || {
        let ps = h1.ok(&[
            "service",
            "ps",
            "api",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}",
        ]);
        (ps.lines().filter(|l| l.starts_with("Running")).count() == 3).then_some(())
    });
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
