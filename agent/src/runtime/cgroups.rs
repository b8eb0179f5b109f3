//! The few cgroup files the runtime reads itself: a container's OOM-kill
//! count (to tell an OOM kill from any other SIGKILL) and whether swap is
//! accounted. runc creates, limits and removes the cgroups; nothing here
//! writes to them.
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
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split(' ');
        let fstype = r.next()?;
        let _source = r.next()?;
        let super_opts = r.next()?;
        if fstype != "cgroup" || !super_opts.split(',').any(|o| o == "memory") {
            return None;
        }
        let mount_point = left.split(' ').nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mount_point)))
    })
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
