//! What the benchmarks read of processes in `/proc`: command lines, PID namespaces,
//! CPU ticks, the parent tree ([`Procs`]), and resident memory ([`MemSample`]: RSS
//! and PSS per kind of process, the containers' processes counted apart).

use std::collections::{HashMap, HashSet};

/// What this program reads of one process.
#[derive(Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: String,
    /// The inode of `/proc/<pid>/ns/pid`.
    pub pidns: Option<u64>,
    /// utime + stime.
    pub own_ticks: u64,
    /// cutime + cstime: reaped children.
    pub children_ticks: u64,
}

pub fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .and_then(|link| {
            let text = link.to_string_lossy().into_owned();
            text.trim_start_matches("pid:[")
                .trim_end_matches(']')
                .parse()
                .ok()
        });
    Some(Proc {
        pid,
        ppid: field(1) as u32,
        comm,
        cmdline,
        pidns,
        // Fields 14-17 of stat; `rest` starts at field 3.
        own_ticks: field(11) + field(12),
        children_ticks: field(13) + field(14),
    })
}

/// A snapshot of every process.
pub struct Procs {
    by_pid: HashMap<u32, Proc>,
    children: HashMap<u32, Vec<u32>>,
}

impl Procs {
    pub fn read() -> Procs {
        let mut by_pid = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                if let Some(p) = read_proc(pid) {
                    by_pid.insert(pid, p);
                }
            }
        }
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in by_pid.values() {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        Procs { by_pid, children }
    }

    pub fn get(&self, pid: u32) -> Option<&Proc> {
        self.by_pid.get(&pid)
    }

    pub fn all(&self) -> impl Iterator<Item = &Proc> {
        self.by_pid.values()
    }

    pub fn descendants(&self, pid: u32) -> HashSet<u32> {
        let mut found = HashSet::new();
        let mut todo = vec![pid];
        while let Some(next) = todo.pop() {
            for child in self.children.get(&next).into_iter().flatten() {
                if found.insert(*child) {
                    todo.push(*child);
                }
            }
        }
        found
    }
}

/// (Rss, Pss) of a process in KiB, from `/proc/<pid>/smaps_rollup` (Rss from
/// `status`'s VmRSS when there is no rollup).
pub fn rss_pss_kib(pid: u32) -> (u64, u64) {
    let value = |text: &str, key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = value(&rollup, "Rss:")
        .or_else(|| value(&status, "VmRSS:"))
        .unwrap_or(0);
    let pss = value(&rollup, "Pss:").unwrap_or(rss);
    (rss, pss)
}

/// Memory of an orchestrator's processes by kind, the containers' apart.
#[derive(Default)]
pub struct MemSample {
    /// label -> (processes, Rss KiB, Pss KiB)
    parts: Vec<(String, usize, u64, u64)>,
    containers: usize,
    container_rss_kib: u64,
}

impl MemSample {
    pub fn add(&mut self, label: &str, p: &Proc) {
        let (rss, pss) = rss_pss_kib(p.pid);
        match self.parts.iter_mut().find(|(l, ..)| l == label) {
            Some(part) => {
                part.1 += 1;
                part.2 += rss;
                part.3 += pss;
            }
            None => self.parts.push((label.to_string(), 1, rss, pss)),
        }
    }

    pub fn add_container(&mut self, p: &Proc) {
        self.containers += 1;
        self.container_rss_kib += rss_pss_kib(p.pid).0;
    }

    pub fn total_rss(&self) -> u64 {
        self.parts.iter().map(|p| p.2).sum()
    }

    pub fn total_pss(&self) -> u64 {
        self.parts.iter().map(|p| p.3).sum()
    }

    pub fn show(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(label, n, rss, pss)| {
                format!(
                    "{label} x{n}: RSS {:.1} MiB (PSS {:.1})",
                    mib(*rss),
                    mib(*pss)
                )
            })
            .collect();
        format!(
            "total RSS {:.1} MiB, PSS {:.1} MiB = {}; excluded: {} container processes, RSS {:.1} MiB",
            mib(self.total_rss()),
            mib(self.total_pss()),
            parts.join(", "),
            self.containers,
            mib(self.container_rss_kib)
        )
    }
}

/// CPU ticks of `pids`: (their own threads', their reaped children's).
pub fn cpu_ticks_of(pids: &[u32]) -> (u64, u64) {
    pids.iter()
        .filter_map(|pid| read_proc(*pid))
        .fold((0, 0), |(own, children), p| {
            (own + p.own_ticks, children + p.children_ticks)
        })
}

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}
