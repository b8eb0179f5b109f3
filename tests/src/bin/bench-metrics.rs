//! `bench-metrics`: what `/metrics` costs on a node running many tasks. A
//! one-host swarm (the `rswarm-tests` harness, with its registry) runs a
//! service of `--tasks` busybox `sleep`s (default 200); then `/metrics` is
//! scraped `--scrapes` times (default 20) from the host's namespace and the
//! median and slowest scrape time, the size in bytes and the number of
//! samples are printed (also for the idle node before the service). With
//! `--cpu` (default on; `--cpu 0` skips it) the daemon's CPU time (utime +
//! stime from `/proc/<pid>/stat`) is measured over 60 s without scrapes and
//! over 60 s scraped every 5 s, as Prometheus would.
//!
//! ```text
//! cargo build --release -p rswarm
//! RSWARM_BIN=$PWD/target/release/rswarm cargo run --release -p rswarm-tests --bin bench-metrics -- --tasks 200
//! ```
//! Run it as root. `RSWARM_TEST_KEEP_DIRS=1` keeps the cluster's directory.

use std::time::{Duration, Instant};

use rswarm_tests::metrics::{scrape, Scrape};
use rswarm_tests::{load, Cluster, Host};

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

/// Scrapes `n` times; prints and returns the last scrape.
fn measure(h: &Host, what: &str, n: usize) -> Scrape {
    let mut times = Vec::with_capacity(n);
    let mut last = scrape(h);
    for _ in 0..n {
        last = scrape(h);
        times.push(last.took);
    }
    times.sort();
    println!(
        "{what}: /metrics {} bytes, {} samples; scrape median {:.1} ms, slowest {:.1} ms ({n} scrapes)",
        last.text.len(),
        last.samples.len(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    last
}

/// The daemon's CPU time so far (utime + stime), in seconds.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses): utime is the 14th field.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    ticks / hz
}

/// CPU seconds the daemon used over `window`, scraped every `every` (None: never).
fn cpu_over(h: &Host, window: Duration, every: Option<Duration>) -> f64 {
    let before = cpu_seconds(h.pid());
    let started = Instant::now();
    while started.elapsed() < window {
        match every {
            Some(every) => {
                let _ = scrape(h);
                std::thread::sleep(every.min(window.saturating_sub(started.elapsed())));
            }
            None => std::thread::sleep(window - started.elapsed().min(window)),
        }
    }
    cpu_seconds(h.pid()) - before
}

fn main() -> anyhow::Result<()> {
    let tasks = arg("--tasks", 200) as usize;
    let scrapes = arg("--scrapes", 20).max(1) as usize;
    let cpu = arg("--cpu", 1) != 0;
    println!(
        "bench-metrics: {tasks} tasks on 1 host; load average before {}",
        load::loadavg()
    );
    let cluster = Cluster::with_registry(1)?;
    cluster.init_swarm(1, 0)?;
    let h = cluster.host(1);
    measure(h, "idle manager", scrapes);
    let ramp = load::ramp(&cluster, "metrics", tasks, Duration::from_secs(900));
    match ramp.to_running {
        Some(t) => println!("all {tasks} Running after {:.1} s", t.as_secs_f64()),
        None => println!("did NOT converge: at most {} Running", ramp.most_running),
    }
    let m = measure(h, &format!("{tasks} tasks"), scrapes);
    println!(
        "rswarm_service_replicas_running for the service: {:?}",
        m.get("rswarm_service_replicas_running{service=\"metrics\",mode=\"replicated\"}")
    );
    if cpu {
        let window = Duration::from_secs(60);
        let quiet = cpu_over(h, window, None);
        let scraped = cpu_over(h, window, Some(Duration::from_secs(5)));
        println!(
            "daemon CPU over 60 s: {quiet:.2} s not scraped, {scraped:.2} s scraped every 5 s"
        );
    }
    let ids = load::container_ids(h);
    let (rm, clean) = load::remove(&cluster, "metrics", &ids, Duration::from_secs(600));
    println!(
        "service rm returned after {:.2} s; no container left after {}",
        rm.as_secs_f64(),
        clean.map_or("(timed out)".to_string(), |t| format!(
            "{:.1} s",
            t.as_secs_f64()
        ))
    );
    println!("load average after {}", load::loadavg());
    Ok(())
}
