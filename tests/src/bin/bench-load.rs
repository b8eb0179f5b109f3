//! `bench-load`: a service of many busybox `sleep` tasks on a 2-host cluster (host1
//! manager, host2 worker, both running tasks) made by the `rswarm-tests` harness,
//! with its registry (one pull per host). It prints:
//!
//! - the time from `service create` to every task Running (or the most Running seen
//!   when it does not converge within `--timeout` seconds), and how many tasks the
//!   service has in all (more than `--tasks` means tasks were rescheduled);
//! - whether a node was marked Down during the ramp: `node ls` polled every ~0.5 s,
//!   and the dispatcher's "marking it down" lines in host1's daemon log;
//! - the slowest `service ls` and `service ps` answers while polling;
//! - `runc list` states on each host with every task running;
//! - the time `service rm` takes, and until no runc container or cgroup of the tasks
//!   is left; then what is left on each host (runc containers by state, cgroups under
//!   `/sys/fs/cgroup/*/rswarm`, mounts under the bundles) and how many
//!   "still running 30s after SIGKILL" the daemons logged;
//! - the load average before and after and the daemons' peak RSS.
//!
//! ```text
//! cargo build -p rswarm
//! cargo run -p rswarm-tests --bin bench-load -- --tasks 2000 [--timeout 1800]
//! ```
//! Run it as root. `RSWARM_TEST_KEEP_DIRS=1` keeps the cluster's directory.

use std::time::Duration;

use rswarm_tests::load::{self, DOWN_MARK, STUCK_KILL};
use rswarm_tests::Cluster;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} wants a number, got {v:?}"))
        })
        .unwrap_or(default)
}

fn rss_kib(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let tasks = arg("--tasks", 2000) as usize;
    let timeout = Duration::from_secs(arg("--timeout", 1800));
    println!(
        "bench-load: {tasks} tasks on 2 hosts; load average before {}",
        load::loadavg()
    );
    let cluster = Cluster::with_registry(2)?;
    cluster.init_swarm(1, 1)?;
    let ramp = load::ramp(&cluster, "load", tasks, timeout);
    match ramp.to_running {
        Some(t) => println!("all {tasks} Running after {:.1} s", t.as_secs_f64()),
        None => println!(
            "did NOT converge within {:.0} s: at most {} of {tasks} Running",
            timeout.as_secs_f64(),
            ramp.most_running
        ),
    }
    println!(
        "tasks in the service (history included): {} ({} rescheduled)",
        ramp.tasks_total,
        ramp.tasks_total.saturating_sub(tasks)
    );
    println!(
        "node ls showed a node not Ready {} times; host1 logged {:?} {} times",
        ramp.not_ready_seen,
        DOWN_MARK,
        load::log_count(cluster.host(1), DOWN_MARK)
    );
    println!(
        "slowest service ls {:.2} s, slowest service ps {:.2} s",
        ramp.slowest_ls.as_secs_f64(),
        ramp.slowest_ps.as_secs_f64()
    );
    let mut ids = vec![];
    for h in cluster.hosts() {
        let l = load::leftovers(h, &[]);
        println!("{} runc containers while running: {:?}", h.name(), l.runc);
        ids.extend(load::container_ids(h));
    }
    let peak: Vec<u64> = cluster
        .hosts()
        .iter()
        .map(|h| rss_kib(h.pid()) / 1024)
        .collect();
    println!("daemons' peak RSS (MiB): {peak:?}");
    let (rm, clean) = load::remove(&cluster, "load", &ids, timeout);
    println!("service rm returned after {:.1} s", rm.as_secs_f64());
    match clean {
        Some(t) => println!("no container or cgroup left after {:.1} s", t.as_secs_f64()),
        None => println!(
            "containers or cgroups still there after {:.0} s",
            timeout.as_secs_f64()
        ),
    }
    for h in cluster.hosts() {
        let l = load::leftovers(h, &ids);
        println!(
            "{} after rm: runc {:?}, {} cgroups, {} mounts, {:?} logged {} times",
            h.name(),
            l.runc,
            l.cgroups.len(),
            l.mounts.len(),
            STUCK_KILL,
            load::log_count(h, STUCK_KILL)
        );
        for c in l.cgroups.iter().take(5) {
            println!("  cgroup left: {}", c.display());
        }
    }
    println!("load average after {}", load::loadavg());
    Ok(())
}
