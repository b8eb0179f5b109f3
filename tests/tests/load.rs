//! Load does not cause faults: a service of 300 busybox `sleep` tasks on two hosts
//! (host1 the manager, host2 a worker; both run tasks), made by the harness with its
//! registry. While a few hundred containers are created at once, no node may be
//! marked Down (the daemons' heartbeats must not starve behind container work), the
//! service must converge with no task rescheduled, and after `service rm` neither
//! host may keep a runc container (`created` or any other), a cgroup or a mount of
//! the service's tasks.

use std::time::Duration;

use rswarm_tests::load::{self, DOWN_MARK, STUCK_KILL};
use rswarm_tests::Cluster;

/// Tasks in the service: enough that both hosts create containers for minutes on
/// this 2-core machine.
const TASKS: usize = 300;
/// Generous: other tests share the machine's two cores.
const CONVERGE: Duration = Duration::from_secs(900);
const REMOVE: Duration = Duration::from_secs(600);

#[test]
fn hundreds_of_tasks_converge_without_a_node_going_down_and_leave_nothing_behind() {
    let cluster = Cluster::with_registry(2).unwrap();
    cluster.init_swarm(1, 1).unwrap();
    let (host1, host2) = (cluster.host(1), cluster.host(2));

    let ramp = load::ramp(&cluster, "load", TASKS, CONVERGE);
    let took = ramp.to_running.unwrap_or_else(|| {
        panic!(
            "{TASKS} tasks did not converge within {CONVERGE:?} (at most {} Running); {ramp:?}",
            ramp.most_running
        )
    });
    eprintln!("{TASKS} tasks Running after {took:.1?}; {ramp:?}");

    // Converged: the ramp is over, so what the dispatcher did during it is final.
    assert_eq!(
        load::log_count(host1, DOWN_MARK),
        0,
        "the dispatcher marked a node Down during the ramp:\n{}",
        host1.daemon_log_tail(40)
    );
    assert_eq!(ramp.not_ready_seen, 0, "node ls showed a node not Ready");
    assert_eq!(
        ramp.tasks_total, TASKS,
        "tasks were rescheduled during the ramp"
    );
    let node_ls = host1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
    assert_eq!(
        node_ls.lines().filter(|l| l.ends_with(" Ready")).count(),
        2,
        "{node_ls}"
    );

    // Every task's container is running; none is left `created`.
    let mut ids = vec![];
    for h in [host1, host2] {
        let l = load::leftovers(h, &[]);
        assert_eq!(l.runc.get("created"), None, "{}: {:?}", h.name(), l.runc);
        ids.extend(load::container_ids(h));
    }
    assert_eq!(ids.len(), TASKS, "runc containers on both hosts");
    assert!(
        ids.len() > TASKS / 4 && load::container_ids(host2).len() > TASKS / 4,
        "both hosts run tasks"
    );

    let (rm, clean) = load::remove(&cluster, "load", &ids, REMOVE);
    let clean = clean.unwrap_or_else(|| {
        panic!(
            "containers or cgroups still there {REMOVE:?} after service rm: {:?} / {:?}",
            load::leftovers(host1, &ids),
            load::leftovers(host2, &ids)
        )
    });
    eprintln!("service rm took {rm:.1?}; hosts clean after {clean:.1?}");
    for h in [host1, host2] {
        let l = load::leftovers(h, &ids);
        assert!(l.is_empty(), "{} after service rm: {l:?}", h.name());
        assert_eq!(load::log_count(h, STUCK_KILL), 0, "{}", h.name());
    }
    assert!(host1.ok(&["service", "ls", "-q"]).trim().is_empty());
}
