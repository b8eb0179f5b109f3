//! Load average and CPU use over a measurement window, for the benchmarks: other
//! builds may share the machine's cores, so every figure is printed with them.
//!
//! [`LoadAvg`] reads `/proc/loadavg`; [`WindowStart::now`] … [`WindowStart::end`]
//! gives a [`Window`]: the load before and after, the machine's CPU busy (from
//! `/proc/stat`, percent of one core) and the CPU seconds the measured processes
//! used (a closure returning their ticks, e.g. [`crate::procfs::cpu_ticks_of`]).

use std::time::{Duration, Instant};

use crate::procfs::clock_ticks;

/// A round waits (at most a given time) for the 1-minute load average to fall below
/// this before it starts.
pub const QUIET_LOAD: f64 = 1.5;

/// `/proc/loadavg`: 1, 5 and 15 minutes.
#[derive(Clone, Copy)]
pub struct LoadAvg(pub [f64; 3]);

impl LoadAvg {
    pub fn read() -> LoadAvg {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let mut values = [f64::NAN; 3];
        for (slot, field) in values.iter_mut().zip(text.split_whitespace()) {
            *slot = field.parse().unwrap_or(f64::NAN);
        }
        LoadAvg(values)
    }

    pub fn show(&self) -> String {
        format!("{:.2} {:.2} {:.2}", self.0[0], self.0[1], self.0[2])
    }
}

/// Waits (at most `limit`) for the 1-minute load average to fall below [`QUIET_LOAD`].
pub fn wait_for_quiet(limit: Duration) {
    let started = Instant::now();
    let mut load = LoadAvg::read();
    while load.0[0] >= QUIET_LOAD && started.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(1));
        load = LoadAvg::read();
    }
    if started.elapsed() >= Duration::from_secs(1) {
        println!(
            "(waited {:.0} s for a quieter machine: load {} now{})",
            started.elapsed().as_secs_f64(),
            load.show(),
            if load.0[0] >= QUIET_LOAD {
                " - still busy, measuring anyway"
            } else {
                ""
            }
        );
    }
}

/// Machine-wide CPU counters from `/proc/stat`: (busy ticks, all ticks).
pub fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let all: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (all.saturating_sub(idle), all)
}

pub struct WindowStart {
    at: Instant,
    load: LoadAvg,
    machine: (u64, u64),
    ours: (u64, u64),
}

impl WindowStart {
    pub fn now(ours: impl Fn() -> (u64, u64)) -> WindowStart {
        WindowStart {
            at: Instant::now(),
            load: LoadAvg::read(),
            machine: machine_ticks(),
            ours: ours(),
        }
    }

    pub fn end(self, ours: impl Fn() -> (u64, u64)) -> Window {
        let machine = machine_ticks();
        let (own, children) = ours();
        let secs = |ticks: u64| ticks as f64 / clock_ticks();
        let busy = machine.0.saturating_sub(self.machine.0);
        let all = machine.1.saturating_sub(self.machine.1);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let elapsed = self.at.elapsed().as_secs_f64();
        Window {
            load_before: self.load,
            load_after: LoadAvg::read(),
            machine_busy_pct: if all > 0 {
                100.0 * busy as f64 / all as f64 * cpus
            } else {
                f64::NAN
            },
            own_cpu_secs: secs(own.saturating_sub(self.ours.0)),
            children_cpu_secs: secs(children.saturating_sub(self.ours.1)),
            elapsed,
        }
    }
}

/// Load and CPU use over a measurement.
pub struct Window {
    pub load_before: LoadAvg,
    pub load_after: LoadAvg,
    /// Machine CPU busy, percent of one core (200% = both cores of two).
    pub machine_busy_pct: f64,
    /// CPU seconds the measured processes' own threads used.
    pub own_cpu_secs: f64,
    /// CPU seconds of the children they reaped (runc, for rswarm and the shims).
    pub children_cpu_secs: f64,
    pub elapsed: f64,
}

impl Window {
    pub fn show(&self, whose: &str) -> String {
        format!(
            "load {} before, {} after; machine CPU busy {:.0}% of a core over {:.1} s; \
             {whose} used {:.2} CPU-s (own threads {:.2}, reaped children such as runc {:.2})",
            self.load_before.show(),
            self.load_after.show(),
            self.machine_busy_pct,
            self.elapsed,
            self.own_cpu_secs + self.children_cpu_secs,
            self.own_cpu_secs,
            self.children_cpu_secs
        )
    }

    pub fn show_short(&self) -> String {
        format!(
            "load1 {:.2}->{:.2}, machine {:.0}%, ours {:.2}+{:.2} CPU-s own+children",
            self.load_before.0[0],
            self.load_after.0[0],
            self.machine_busy_pct,
            self.own_cpu_secs,
            self.children_cpu_secs
        )
    }
}
