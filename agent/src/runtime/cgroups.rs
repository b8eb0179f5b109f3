//! The few cgroup files the agent reads itself: a container's OOM-kill
//! count (to tell an OOM kill from any other SIGKILL), whether swap is
//! accounted, and a running container's CPU time and memory usage and limit
//! ([`Hierarchies::stats`], for the metrics; v1 `cpuacct.usage` and `memory.*_in_bytes`,
//! v2 `cpu.stat` and `memory.current`/`memory.max`). runc creates, limits and removes the cgroups; nothing here
//! writes to them. After `runc delete`, [`remove_leftovers`] removes the
//! empty cgroup directories a failed or interrupted runc left behind (on
//! v1 and hybrid hosts every controller has its own directory).
//!
//! Containers live at cgroupsPath `/rswarm/<id>` (cgroupfs driver). On cgroup
//! v2 that is `/sys/fs/cgroup/rswarm/<id>`; on v1 and hybrid hosts the memory
//! controller's hierarchy is found in /proc/self/mountinfo (usually
//! `/sys/fs/cgroup/memory/rswarm/<id>`).

use std::path::{Path, PathBuf};

/// The cgroupsPath runc gets for a container.
pub(crate) fn cgroups_path(id: &str) -> String {
    format!("/rswarm/{id}")
}

/// Whether /sys/fs/cgroup is a pure cgroup v2 hierarchy.
pub(crate) fn is_unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Mount point of the cgroup v1 memory controller, from /proc/self/mountinfo.
pub(crate) fn v1_memory_mount() -> Option<PathBuf> {
    v1_mount("memory")
}

/// Mount point of the cgroup v1 hierarchy of `controller`, from
/// /proc/self/mountinfo.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    v1_mount_in(&info, controller)
}

/// [`v1_mount`] over the text of a mountinfo file.
pub(crate) fn v1_mount_in(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split(' ');
        let fstype = r.next()?;
        let _source = r.next()?;
        let super_opts = r.next()?;
        if fstype != "cgroup" || !super_opts.split(',').any(|o| o == controller) {
            return None;
        }
        let mount_point = left.split(' ').nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

/// A running container's resource use, from its cgroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Stats {
    /// CPU time used, user and system (seconds).
    pub cpu_seconds: Option<f64>,
    /// Memory in use, without the inactive page cache (as `docker stats`).
    pub memory_bytes: Option<u64>,
    /// The memory limit; None when unlimited.
    pub memory_limit_bytes: Option<u64>,
}

/// Where the controllers the stats come from are mounted; found once per
/// scrape (mountinfo is read once, not per task).
#[derive(Clone, Debug, Default)]
pub(crate) struct Hierarchies {
    /// The v2 root, on a pure v2 host.
    unified: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    memory: Option<PathBuf>,
}

impl Hierarchies {
    /// This host's hierarchies now (v2, or v1 and hybrid hosts).
    pub(crate) fn detect() -> Hierarchies {
        if is_unified() {
            return Hierarchies {
                unified: Some(PathBuf::from("/sys/fs/cgroup")),
                ..Default::default()
            };
        }
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Hierarchies {
            unified: None,
            cpuacct: v1_mount_in(&info, "cpuacct"),
            memory: v1_mount_in(&info, "memory"),
        }
    }

    /// The resource use of cgroup `cgroup` now.
    pub(crate) fn stats(&self, cgroup: &str) -> Stats {
        let rel = cgroup.trim_start_matches('/');
        let read = |dir: Option<&PathBuf>, file: &str| -> Option<String> {
            std::fs::read_to_string(dir?.join(rel).join(file)).ok()
        };
        if let Some(root) = &self.unified {
            let dir = Some(root);
            let current = read(dir, "memory.current").and_then(|t| parse_u64(&t));
            let stat = read(dir, "memory.stat").unwrap_or_default();
            Stats {
                cpu_seconds: read(dir, "cpu.stat").and_then(|t| parse_v2_cpu_seconds(&t)),
                memory_bytes: current
                    .map(|c| c.saturating_sub(stat_field(&stat, "inactive_file").unwrap_or(0))),
                memory_limit_bytes: read(dir, "memory.max").and_then(|t| parse_limit(&t)),
            }
        } else {
            let mem = self.memory.as_ref();
            let usage = read(mem, "memory.usage_in_bytes").and_then(|t| parse_u64(&t));
            let stat = read(mem, "memory.stat").unwrap_or_default();
            Stats {
                cpu_seconds: read(self.cpuacct.as_ref(), "cpuacct.usage")
                    .and_then(|t| parse_u64(&t))
                    .map(|ns| ns as f64 / 1e9),
                memory_bytes: usage.map(|u| {
                    u.saturating_sub(stat_field(&stat, "total_inactive_file").unwrap_or(0))
                }),
                memory_limit_bytes: read(mem, "memory.limit_in_bytes")
                    .and_then(|t| parse_limit(&t)),
            }
        }
    }
}

fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// v2 `cpu.stat`: `usage_usec N` in seconds.
pub(crate) fn parse_v2_cpu_seconds(text: &str) -> Option<f64> {
    stat_field(text, "usage_usec").map(|us| us as f64 / 1e6)
}

/// A `key value` line of a stat file (`memory.stat`, `cpu.stat`).
pub(crate) fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A memory limit file: v2 `max` or v1's page-rounded `i64::MAX` (anything
/// from 2^62 up) mean no limit.
pub(crate) fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|v| *v < (1u64 << 62))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory holding the container's memory controller files.
pub(crate) fn memory_dir(cgroup: &str) -> Option<PathBuf> {
    let rel = cgroup.trim_start_matches('/');
    if is_unified() {
        Some(Path::new("/sys/fs/cgroup").join(rel))
    } else {
        Some(v1_memory_mount()?.join(rel))
    }
}

/// How many processes the OOM killer killed in this cgroup (v2
/// `memory.events`, v1 `memory.oom_control`, both `oom_kill N`); None when
/// the cgroup is gone or the kernel does not say.
pub(crate) fn oom_kill_count(cgroup: &str) -> Option<u64> {
    let dir = memory_dir(cgroup)?;
    let file = if is_unified() {
        dir.join("memory.events")
    } else {
        dir.join("memory.oom_control")
    };
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == "oom_kill" {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Whether the OOM killer struck in the container's cgroup.
pub(crate) fn oom_killed(cgroup: &str) -> bool {
    oom_kill_count(cgroup).unwrap_or(0) > 0
}

/// Whether memory+swap can be limited (v1 needs swap accounting:
/// `memory.memsw.limit_in_bytes`; v2 runc handles a missing `memory.swap.max`).
pub(crate) fn swap_accounting() -> bool {
    if is_unified() {
        return true;
    }
    v1_memory_mount()
        .map(|m| m.join("memory.memsw.limit_in_bytes").exists())
        .unwrap_or(false)
}

/// Removes the (empty) directories of cgroup `cgroup` left in any hierarchy
/// under /sys/fs/cgroup: `<controller>/<cgroup>` on v1 and hybrid hosts
/// (the v2 `unified` one included), `<cgroup>` on v2. A directory that
/// still holds processes cannot go (EBUSY) and is reported. Blocking.
pub(crate) fn remove_leftovers(cgroup: &str) {
    remove_leftovers_under(Path::new("/sys/fs/cgroup"), cgroup)
}

fn remove_leftovers_under(base: &Path, cgroup: &str) {
    let rel = cgroup.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c == ".") {
        return;
    }
    let mut candidates = vec![base.join(rel)];
    if let Ok(entries) = std::fs::read_dir(base) {
        candidates.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path().join(rel)),
        );
    }
    for dir in candidates.into_iter().filter(|d| d.is_dir()) {
        let mut dirs = vec![];
        collect_dirs(&dir, &mut dirs);
        // Children before their parents.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            match std::fs::remove_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(cgroup = %d.display(), error = %e, "cannot remove a container's cgroup");
                }
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn v1_controller_mounts_are_found_in_mountinfo() {
        let info = "\
24 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
25 24 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
28 24 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 24 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,memory
";
        assert_eq!(
            v1_mount_in(info, "cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            v1_mount_in(info, "memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        // The cgroup2 mount is not a v1 controller, and `cpu` is not `cpuset`.
        assert_eq!(v1_mount_in(info, "cpuset"), None);
    }

    #[test]
    fn v2_cpu_stat_and_memory_stat_fields() {
        let cpu = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n";
        assert_eq!(parse_v2_cpu_seconds(cpu), Some(1.5));
        assert_eq!(parse_v2_cpu_seconds("user_usec 3\n"), None);
        let mem = "anon 1024\nfile 4096\ninactive_file 2048\ntotal_inactive_file 99\n";
        assert_eq!(stat_field(mem, "inactive_file"), Some(2048));
        assert_eq!(stat_field(mem, "total_inactive_file"), Some(99));
        assert_eq!(stat_field(mem, "inactive"), None);
    }

    fn fixture(files: &[(&str, &str)]) -> PathBuf {
        let base = std::env::temp_dir().join(format!(
            "rswarm-cgstats-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&base);
        for (path, text) in files {
            let p = base.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        base
    }

    #[test]
    fn stats_from_v1_and_v2_files() {
        let v2 = fixture(&[
            (
                "rswarm/c1/cpu.stat",
                "usage_usec 2500000\nuser_usec 2000000\n",
            ),
            ("rswarm/c1/memory.current", "10485760\n"),
            (
                "rswarm/c1/memory.stat",
                "anon 8388608\ninactive_file 1048576\n",
            ),
            ("rswarm/c1/memory.max", "67108864\n"),
        ]);
        let h = Hierarchies {
            unified: Some(v2.clone()),
            ..Default::default()
        };
        assert_eq!(
            h.stats("/rswarm/c1"),
            Stats {
                cpu_seconds: Some(2.5),
                memory_bytes: Some(10485760 - 1048576),
                memory_limit_bytes: Some(64 << 20),
            }
        );
        // A container gone: nothing.
        assert_eq!(h.stats("/rswarm/gone"), Stats::default());
        std::fs::remove_dir_all(v2).unwrap();

        let v1 = fixture(&[
            ("cpu,cpuacct/rswarm/c1/cpuacct.usage", "1500000000\n"),
            ("memory/rswarm/c1/memory.usage_in_bytes", "4194304\n"),
            (
                "memory/rswarm/c1/memory.stat",
                "cache 0\ntotal_inactive_file 4096\n",
            ),
            (
                "memory/rswarm/c1/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        let h = Hierarchies {
            unified: None,
            cpuacct: Some(v1.join("cpu,cpuacct")),
            memory: Some(v1.join("memory")),
        };
        assert_eq!(
            h.stats("/rswarm/c1"),
            Stats {
                cpu_seconds: Some(1.5),
                memory_bytes: Some(4194304 - 4096),
                memory_limit_bytes: None,
            }
        );
        std::fs::remove_dir_all(v1).unwrap();
    }

    #[test]
    fn memory_limits_v1_and_v2_with_no_limit_as_none() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("67108864\n"), Some(64 << 20));
        // v1 without a limit: i64::MAX rounded down to a page.
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn leftovers_go_in_every_hierarchy_and_nothing_else() {
        // Plain directories stand in for cgroupfs (where files vanish with rmdir).
        let base = std::env::temp_dir().join(format!("rswarm-cg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for d in [
            "memory/rswarm/c1",
            "pids/rswarm/c1/sub",
            "unified/rswarm/c1",
            "rswarm/c1",
            "memory/rswarm/c2",
        ] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        remove_leftovers_under(&base, "/rswarm/c1");
        for gone in [
            "memory/rswarm/c1",
            "pids/rswarm/c1",
            "unified/rswarm/c1",
            "rswarm/c1",
        ] {
            assert!(!base.join(gone).exists(), "{gone} is still there");
        }
        assert!(base.join("memory/rswarm/c2").is_dir());
        assert!(base.join("memory/rswarm").is_dir());
        remove_leftovers_under(&base, "/rswarm/../memory");
        assert!(base.join("memory/rswarm/c2").is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
