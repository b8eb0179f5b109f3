//! Which task network namespaces are still in use: a namespace some process
//! lives in (the task's container) must survive a daemon restart; one no
//! process uses any more is a leftover of a task removed while the daemon
//! was down (or crashed mid-removal).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The (device, inode) of every network namespace some process is in.
pub(super) fn namespaces_in_use() -> HashSet<(u64, u64)> {
    let mut out = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // The metadata of the magic link is the namespace itself.
        if let Ok(m) = std::fs::metadata(p.path().join("ns/net")) {
            out.insert((m.dev(), m.ino()));
        }
    }
    out
}

/// True when a process is in the namespace bound at `path`.
pub(super) fn in_use(path: &Path, used: &HashSet<(u64, u64)>) -> bool {
    std::fs::metadata(path)
        .map(|m| used.contains(&(m.dev(), m.ino())))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_namespace_is_in_use_and_a_plain_file_is_not() {
        let used = namespaces_in_use();
        assert!(in_use(Path::new("/proc/self/ns/net"), &used));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"").unwrap();
        assert!(!in_use(&f, &used));
        assert!(!in_use(&dir.path().join("missing"), &used));
    }
}
