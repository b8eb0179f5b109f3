//! Chaos, end to end: 3 managers and 2 workers; rounds of `kill -9` (then a
//! restart) or a pulled cable (then healed) of a random node, while 16 clients create,
//! scale and remove services through random managers. Afterwards:
//! - every acknowledged write is there on every manager, and no service twice;
//! - every service has exactly its replicas running, each slot once;
//! - no node runs a container, keeps a bundle or a mount, and the machine keeps no
//!   cgroup, that no running task owns.
//!
//! A write whose command failed or timed out may or may not have happened; its
//! service then accepts either outcome and its client leaves it alone from then on.
//! The number of rounds is `RSWARM_CHAOS_ROUNDS` (default 30); the seed of the
//! random choices is printed and can be replayed with `RSWARM_CHAOS_SEED`.
//!
//! The cgroup check compares the machine's `rswarm` cgroups with those before the
//! cluster started, so it assumes no other rswarm cluster starts tasks at the same
//! time (cargo runs test files one after another; this file has one test).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rswarm_tests::{try_wait_for, Cluster, Host};

const CLIENTS: usize = 16;
const MANAGERS: usize = 3;
const WORKERS: usize = 2;
/// Services one client keeps at once, and the most replicas it gives one.
const SERVICES_PER_CLIENT: usize = 2;
const MAX_REPLICAS: u64 = 2;
/// A client's command is given up (and counted as unacknowledged) after this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the cluster may take to be whole again after a fault, and to converge.
const RECOVERY: Duration = Duration::from_secs(120);

/// A small xorshift generator: the test needs replayable choices, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the clients know of one service: the states it may be in (`None`: absent,
/// `Some(n)`: present with `n` replicas). One state once every write on it was
/// acknowledged; more after a write whose outcome is unknown.
#[derive(Debug, Clone)]
struct Expected {
    possible: Vec<Option<u64>>,
    /// A write on it failed: the client that owns it no longer touches it.
    uncertain: bool,
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Tally {
    acknowledged: AtomicUsize,
    unacknowledged: AtomicUsize,
}

#[test]
fn acknowledged_writes_survive_kills_and_cuts_and_nothing_leaks() {
    let rounds: usize = std::env::var("RSWARM_CHAOS_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("RSWARM_CHAOS_ROUNDS must be a number"))
        .unwrap_or(30);
    let seed: u64 = std::env::var("RSWARM_CHAOS_SEED")
        .ok()
        .map(|v| v.parse().expect("RSWARM_CHAOS_SEED must be a number"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("chaos: {rounds} rounds, RSWARM_CHAOS_SEED={seed}");

    let cgroups_before = rswarm_cgroups();
    let cluster = Cluster::with_registry(MANAGERS + WORKERS).unwrap();
    cluster.init_swarm(MANAGERS, WORKERS).unwrap();
    let image = cluster.registry().busybox();

    let expected: Mutex<BTreeMap<String, Expected>> = Mutex::new(BTreeMap::new());
    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let started = Instant::now();

    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (cluster, image, expected, tally, stop) =
                (&cluster, &image, &expected, &tally, &stop);
            let client_seed =
                seed.wrapping_add(0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(client as u64 + 1)) | 1;
            scope.spawn(move || {
                run_client(
                    client,
                    Rng(client_seed),
                    cluster,
                    image,
                    expected,
                    tally,
                    stop,
                )
            });
        }

        // Stops the clients however the rounds end (a panic included), so the scope
        // can join them.
        let _stop_clients = StopOnDrop(&stop);
        let mut rng = Rng(seed);
        for round in 1..=rounds {
            let victim = cluster.host(1 + rng.below((MANAGERS + WORKERS) as u64) as usize);
            let cut = rng.below(2) == 0;
            let outage = Duration::from_millis(1500 + rng.below(2500));
            let what = format!(
                "round {round}: {} {} for {:.1}s",
                if cut { "cable cut of" } else { "kill -9 of" },
                victim.name(),
                outage.as_secs_f64()
            );
            println!("chaos: {what}");
            if cut {
                victim.disconnect();
                std::thread::sleep(outage);
                victim.heal();
            } else {
                victim.kill();
                std::thread::sleep(outage);
                victim.start();
            }
            wait_whole(&cluster, RECOVERY);
        }
    });
    println!(
        "chaos: {rounds} rounds in {:.0}s; {} writes acknowledged, {} not",
        started.elapsed().as_secs_f64(),
        tally.acknowledged.load(Ordering::SeqCst),
        tally.unacknowledged.load(Ordering::SeqCst)
    );
    assert!(
        tally.acknowledged.load(Ordering::SeqCst) >= CLIENTS,
        "the clients got almost nothing acknowledged: the cluster did not serve during the rounds"
    );

    wait_whole(&cluster, RECOVERY);
    let expected = expected.into_inner().unwrap();
    let services = check_every_manager_agrees(&cluster, &expected);
    check_tasks_and_leftovers(&cluster, &services, &cgroups_before);
}

/// One client: creates up to [`SERVICES_PER_CLIENT`] services of its own, scales and
/// removes them, each command through a random manager, until `stop`.
fn run_client(
    client: usize,
    mut rng: Rng,
    cluster: &Cluster,
    image: &str,
    expected: &Mutex<BTreeMap<String, Expected>>,
    tally: &Tally,
    stop: &AtomicBool,
) {
    let mut mine: Vec<String> = Vec::new();
    let mut made = 0usize;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        let manager = cluster.host(1 + rng.below(MANAGERS as u64) as usize);
        let live: Vec<String> = {
            let known = expected.lock().unwrap();
            mine.iter()
                .filter(|n| {
                    let e = &known[*n];
                    !e.uncertain && e.possible != [None]
                })
                .cloned()
                .collect()
        };
        let (name, args, outcome): (String, Vec<String>, Option<u64>) =
            if live.len() < SERVICES_PER_CLIENT && rng.below(3) > 0 {
                made += 1;
                let name = format!("c{client}s{made}");
                let replicas = rng.below(MAX_REPLICAS + 1);
                expected.lock().unwrap().insert(
                    name.clone(),
                    Expected {
                        possible: vec![None],
                        uncertain: false,
                    },
                );
                mine.push(name.clone());
                let args = [
                    "service",
                    "create",
                    "--detach",
                    "--name",
                    &name,
                    "--replicas",
                    &replicas.to_string(),
                    image,
                    "sleep",
                    "3600",
                ]
                .map(String::from)
                .to_vec();
                (name, args, Some(replicas))
            } else if live.is_empty() {
                continue;
            } else {
                let name = live[rng.below(live.len() as u64) as usize].clone();
                if rng.below(4) == 0 {
                    let args = ["service", "rm", &name].map(String::from).to_vec();
                    (name, args, None)
                } else {
                    let replicas = rng.below(MAX_REPLICAS + 1);
                    let args = [
                        "service",
                        "scale",
                        "--detach",
                        &format!("{name}={replicas}"),
                    ]
                    .map(String::from)
                    .to_vec();
                    (name, args, Some(replicas))
                }
            };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = manager.rswarm_timeout(&argv, CLIENT_TIMEOUT);
        let mut known = expected.lock().unwrap();
        let entry = known.get_mut(&name).expect("every service is known");
        if out.success() {
            tally.acknowledged.fetch_add(1, Ordering::SeqCst);
            entry.possible = vec![outcome];
        } else {
            tally.unacknowledged.fetch_add(1, Ordering::SeqCst);
            entry.possible.push(outcome);
            entry.uncertain = true;
        }
    }
}

/// Waits until every daemon runs and the leader (asked through host1..3, whichever
/// answers) shows every node Ready and has a leader.
fn wait_whole(cluster: &Cluster, timeout: Duration) {
    for host in cluster.hosts() {
        if !host.is_running() {
            host.start();
        }
    }
    let mut last = String::new();
    let whole = try_wait_for(timeout, "every node Ready and a leader", || {
        cluster.hosts()[..MANAGERS].iter().find_map(|m| {
            let out = m.rswarm(&["node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}"]);
            last = out.to_string();
            let rows: Vec<&str> = out.stdout.lines().collect();
            (out.success()
                && rows.len() == MANAGERS + WORKERS
                && rows.iter().all(|r| r.starts_with("Ready"))
                && rows.iter().any(|r| r.ends_with("Leader")))
            .then_some(())
        })
    });
    if let Err(err) = whole {
        panic!("{err}; the last answer was:\n{last}");
    }
}

/// The services a manager lists, as name → (running, desired).
fn services_on(manager: &Host) -> Option<BTreeMap<String, (u64, u64)>> {
    let out = manager.rswarm(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
    if !out.success() {
        return None;
    }
    let mut seen = BTreeMap::new();
    for line in out.stdout.lines() {
        let (name, replicas) = line.split_once(' ')?;
        let (running, desired) = replicas.split_once('/')?;
        let desired = desired.split_whitespace().next()?;
        let previous = seen.insert(
            name.to_string(),
            (running.parse().ok()?, desired.parse().ok()?),
        );
        assert!(
            previous.is_none(),
            "{}: service {name} is listed twice:\n{}",
            manager.name(),
            out.stdout
        );
    }
    Some(seen)
}

/// Waits until every manager lists the same services, each in a state the clients
/// allow and with all its replicas running; returns name → replicas.
fn check_every_manager_agrees(
    cluster: &Cluster,
    expected: &BTreeMap<String, Expected>,
) -> BTreeMap<String, u64> {
    let mut last = String::new();
    let agreed = try_wait_for(
        RECOVERY,
        "every manager to list the expected services, converged",
        || {
            let lists: Vec<BTreeMap<String, (u64, u64)>> = cluster.hosts()[..MANAGERS]
                .iter()
                .map(services_on)
                .collect::<Option<_>>()?;
            last = format!("{lists:#?}");
            if lists.iter().any(|l| l != &lists[0]) {
                return None;
            }
            let list = &lists[0];
            let unknown: Vec<&String> =
                list.keys().filter(|n| !expected.contains_key(*n)).collect();
            assert!(unknown.is_empty(), "services nobody created: {unknown:?}");
            for (name, want) in expected {
                let state = list.get(name).map(|(_, desired)| *desired);
                if !want.possible.contains(&state) {
                    return None;
                }
            }
            list.values()
                .all(|(running, desired)| running == desired)
                .then(|| list.iter().map(|(n, (_, d))| (n.clone(), *d)).collect())
        },
    );
    match agreed {
        Ok(services) => services,
        Err(err) => {
            let lost: Vec<String> = expected
                .iter()
                .filter(|(_, e)| !e.uncertain)
                .map(|(n, e)| format!("{n}: {:?}", e.possible))
                .collect();
            panic!("{err}\nacknowledged states: {lost:?}\nthe managers' last lists:\n{last}")
        }
    }
}

/// Every running task once per slot; on every host exactly the running tasks'
/// containers, bundles and mounts; no new cgroup beyond those containers.
fn check_tasks_and_leftovers(
    cluster: &Cluster,
    services: &BTreeMap<String, u64>,
    cgroups_before: &BTreeSet<String>,
) {
    let leader = cluster.host(
        1 + (0..MANAGERS)
            .find(|i| {
                cluster
                    .host(i + 1)
                    .rswarm(&["node", "ls", "--format", "{{.Self}} {{.ManagerStatus}}"])
                    .stdout
                    .lines()
                    .any(|l| l == "true Leader")
            })
            .unwrap_or(0),
    );
    let (mut running, mut owned) =
        tasks_by_host(leader, services).unwrap_or_else(|e| panic!("{e}"));

    // The store may still move on (a task history pruned, a task replaced):
    // each look compares a host with the tasks the leader lists at that time.
    for host in cluster.hosts() {
        let mut last = String::new();
        let mut first = true;
        let settled = try_wait_for(
            RECOVERY,
            "only the tasks' containers, bundles and mounts",
            || {
                if !std::mem::take(&mut first) {
                    match tasks_by_host(leader, services) {
                        Ok(now) => (running, owned) = now,
                        Err(e) => {
                            last = e;
                            return None;
                        }
                    }
                }
                let want = running.get(host.name()).cloned().unwrap_or_default();
                let tasks = owned.get(host.name()).cloned().unwrap_or_default();
                let containers = host.containers();
                let live: BTreeSet<String> = containers
                    .iter()
                    .filter(|c| c.status != "stopped")
                    .map(|c| c.id.clone())
                    .collect();
                let all: BTreeSet<String> = containers.iter().map(|c| c.id.clone()).collect();
                let bundles = dir_names(&host.data_dir().join("containers"));
                let mounts = mounted_ids(host.data_dir());
                // What is wrong first (CI shows only the start of a long message).
                let not_running: Vec<_> = want.difference(&live).collect();
                let extra_live: Vec<_> = live.difference(&want).collect();
                let foreign: Vec<_> = all
                    .iter()
                    .chain(&bundles)
                    .chain(&mounts)
                    .filter(|id| !tasks.contains(*id))
                    .collect();
                last = format!(
                    "meant to run, not running {not_running:?}; running, not meant to \
                     {extra_live:?}; containers, bundles or mounts of no task {foreign:?}\n\
                     containers {containers:?}\nbundles {bundles:?}\nmounts {mounts:?}\n\
                     tasks meant to run {want:?}\nall tasks {tasks:?}"
                );
                (live == want
                    && all.is_subset(&tasks)
                    && bundles.is_subset(&tasks)
                    && mounts.is_subset(&tasks))
                .then_some(())
            },
        );
        if let Err(err) = settled {
            panic!("{}: {last}\n({err})", host.name());
        }
    }

    // A stopped container of a task in the history keeps its cgroup until it
    // is deleted: the cgroups allowed are those of the containers that are
    // there (each checked above to belong to a task).
    let containers: BTreeSet<String> = cluster
        .hosts()
        .iter()
        .flat_map(|h| h.containers().into_iter().map(|c| c.id))
        .collect();
    let mut leaked: Vec<String> = Vec::new();
    let clean = try_wait_for(RECOVERY, "no cgroup that no running task owns", || {
        leaked = rswarm_cgroups()
            .difference(cgroups_before)
            .filter(|id| !containers.contains(*id))
            .cloned()
            .collect();
        leaked.is_empty().then_some(())
    });
    if let Err(err) = clean {
        panic!("{err}: leaked cgroups {leaked:?}");
    }
}

/// Host name → IDs of the tasks meant to run there, and of every task there
/// (history included: a stopped task keeps its container, as in Docker), as
/// the leader lists them now; an error when a slot runs twice, a service has
/// not its replicas meant to run, or one of them is not running.
#[allow(clippy::type_complexity)]
fn tasks_by_host(
    leader: &Host,
    services: &BTreeMap<String, u64>,
) -> Result<
    (
        BTreeMap<String, BTreeSet<String>>,
        BTreeMap<String, BTreeSet<String>>,
    ),
    String,
> {
    let mut running: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut owned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, replicas) in services {
        let ps = leader.ok(&[
            "service",
            "ps",
            name,
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}}",
        ]);
        let rows: Vec<Vec<&str>> = ps.lines().map(|l| l.split(' ').collect()).collect();
        let meant: Vec<&Vec<&str>> = rows.iter().filter(|r| r[3] == "Running").collect();
        let slots: BTreeSet<&str> = meant
            .iter()
            .map(|r| r[1].trim_start_matches("\\_"))
            .collect();
        if slots.len() != meant.len() {
            return Err(format!("{name}: a slot runs twice:\n{ps}"));
        }
        if meant.len() as u64 != *replicas {
            return Err(format!(
                "{name}: {} tasks meant to run, not {replicas}:\n{ps}",
                meant.len()
            ));
        }
        for row in &rows {
            if row[3] == "Running" {
                if row[4] != "Running" {
                    return Err(format!("{name}: not running:\n{ps}"));
                }
                running
                    .entry(row[2].to_string())
                    .or_default()
                    .insert(row[0].to_string());
            }
            owned
                .entry(row[2].to_string())
                .or_default()
                .insert(row[0].to_string());
        }
    }

    Ok((running, owned))
}

/// The names of the entries of a directory (none if it does not exist).
fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The container IDs with a mount under `<data_dir>/containers/<id>/`.
fn mounted_ids(data_dir: &Path) -> BTreeSet<String> {
    let base = data_dir.join("containers");
    rswarm_tests::mounts_under(&base)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            p.strip_prefix(&base)
                .ok()?
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
        })
        .collect()
}

/// The names of every cgroup directly below an `rswarm` cgroup of any hierarchy
/// (`/sys/fs/cgroup/rswarm/<id>`, `/sys/fs/cgroup/<controller>/rswarm/<id>`).
fn rswarm_cgroups() -> BTreeSet<String> {
    let base = Path::new("/sys/fs/cgroup");
    let mut parents = vec![base.join("rswarm")];
    parents.extend(
        dir_names(base)
            .into_iter()
            .map(|c| base.join(c).join("rswarm")),
    );
    parents
        .iter()
        .filter_map(|p| std::fs::read_dir(p).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
