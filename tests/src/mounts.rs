//! Unmounting whatever the daemons mounted under a cluster's directory.
//!
//! Daemons run in the machine's mount namespace (only their network namespace is the
//! host's), so their mounts (container root filesystems, secrets on tmpfs, bind
//! mounts) show in `/proc/self/mountinfo`. They must be gone before the directory is
//! removed: removing files through a bind mount would remove the files it shows.

use std::io;
use std::path::{Path, PathBuf};

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    Ok(found)
}

/// Lazily unmounts (`umount -l`) every mount at or below `dir`, stacked mounts
/// included. Returns the mount points that could not be unmounted.
pub(crate) fn unmount_all_under(dir: &Path) -> Vec<PathBuf> {
    for _pass in 0..8 {
        let found = match mounts_under(dir) {
            Ok(found) => found,
            Err(_) => return vec![dir.to_path_buf()],
        };
        if found.is_empty() {
            return found;
        }
        for mount_point in &found {
            let _ = nix::mount::umount2(mount_point.as_path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
    mounts_under(dir).unwrap_or_else(|_| vec![dir.to_path_buf()])
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal {
            Some(digits) => {
                out.push(
                    digits
                        .iter()
                        .fold(0u8, |n, d| n.wrapping_mul(8) + (d - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape(r"/tmp/a\040b\134c"), r"/tmp/a b\c");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
