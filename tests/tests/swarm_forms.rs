//! A swarm forms the way a user makes one: `init` on the first host prints the join
//! command, the user runs it on the other hosts, and `node ls` shows them all Ready.

use std::collections::BTreeSet;
use std::time::Duration;

use rswarm_tests::{wait_for, Cluster};

#[test]
fn three_hosts_become_a_swarm_with_the_join_command_that_init_prints() {
    let cluster = Cluster::start(3).expect("three hosts with their daemons");
    let (host1, host2, host3) = (cluster.host(1), cluster.host(2), cluster.host(3));

    let init = host1.ok(&[
        "init",
        "--advertise-addr",
        host1.addr(),
        "--dispatcher-heartbeat",
        "1s",
    ]);
    let join = init
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("rswarm join --token SWMTKN-1-"))
        .unwrap_or_else(|| panic!("`init` printed no worker join command:\n{init}"));
    assert!(join.ends_with(&host1.swarm_addr()), "{join}");

    // The user pastes that line on host2 and host3.
    let join_args: Vec<&str> = join.split_whitespace().skip(1).collect();
    host2.ok(&join_args);
    host3.ok(&join_args);

    let nodes = wait_for(
        Duration::from_secs(30),
        "three Ready nodes in `node ls`",
        || {
            let nodes = host1.ok(&["node", "ls"]);
            (nodes.matches("Ready").count() == 3).then_some(nodes)
        },
    );
    for host in cluster.hosts() {
        assert!(
            nodes.contains(host.name()),
            "{} missing from:\n{nodes}",
            host.name()
        );
    }
    let ids: BTreeSet<String> = cluster.hosts().iter().map(|h| h.node_id()).collect();
    assert_eq!(ids.len(), 3, "node IDs are not distinct: {ids:?}");
}
