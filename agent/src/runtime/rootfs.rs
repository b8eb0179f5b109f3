//! A container's filesystem on the host: the overlayfs rootfs (image layers
//! as lowerdirs, an upper and work dir per container), the generated
//! /etc/hostname, /etc/hosts and /etc/resolv.conf, and resolving user and
//! group names from the image's /etc/passwd and /etc/group.
//!
//! Files of the image are read with `openat2(RESOLVE_IN_ROOT)`, so a symlink
//! in the image (`/etc/passwd -> /etc/shadow`…) cannot lead out of the rootfs.

use std::fmt::Write as _;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

use super::RuntimeError;

pub(crate) const HOSTNAME_FILE: &str = "hostname";
pub(crate) const HOSTS_FILE: &str = "hosts";
pub(crate) const RESOLV_FILE: &str = "resolv.conf";

/// Mount data is limited to a page.
const MAX_MOUNT_DATA: usize = 4000;

/// Mounts overlayfs at `target`: `layers` base first (so the last one is
/// the topmost lowerdir).
pub(crate) fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RuntimeError> {
    let mut lower = Vec::new();
    for l in layers.iter().rev() {
        let s = l.to_str().ok_or_else(|| {
            RuntimeError::InvalidConfig(format!("layer path {} is not UTF-8", l.display()))
        })?;
        if !l.is_absolute() || s.contains([',', ':', '\\']) {
            return Err(RuntimeError::InvalidConfig(format!(
                "unusable layer path {s:?} (must be absolute, without ',', ':' or '\\')"
            )));
        }
        if !l.is_dir() {
            return Err(RuntimeError::InvalidConfig(format!(
                "layer {s} is not a directory"
            )));
        }
        lower.push(s);
    }
    let (u, w) = (upper.display(), work.display());
    let data = format!(
        "lowerdir={},upperdir={u},workdir={w},index=off",
        lower.join(":")
    );
    if data.len() > MAX_MOUNT_DATA {
        return Err(RuntimeError::InvalidConfig(format!(
            "too many layers or too long layer paths for an overlay mount ({} bytes of options)",
            data.len()
        )));
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| {
        RuntimeError::io(
            format!("mounting overlay on {}", target.display()),
            e.into(),
        )
    })
}

/// Unmounts everything mounted at `target` (lazily when busy). Fine when
/// nothing is, or when it does not exist.
pub(crate) fn unmount_all(target: &Path) -> Result<(), RuntimeError> {
    for _ in 0..64 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => match umount2(target, MntFlags::MNT_DETACH) {
                Ok(()) => continue,
                Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
                Err(e) => {
                    return Err(RuntimeError::io(
                        format!("unmounting {}", target.display()),
                        e.into(),
                    ))
                }
            },
            Err(e) => {
                return Err(RuntimeError::io(
                    format!("unmounting {}", target.display()),
                    e.into(),
                ))
            }
        }
    }
    Err(RuntimeError::io(
        format!("unmounting {}", target.display()),
        std::io::Error::other("still mounted after 64 unmounts"),
    ))
}

/// The /etc/hosts of a container: localhost, the IPv6 names, the extra
/// entries, and the container's hostname on 127.0.1.1 unless an extra entry
/// names it (the network issue passes the container's address that way).
pub(crate) fn hosts_file(hostname: &str, extra: &[(String, Vec<String>)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    let mut named = false;
    for (ip, names) in extra {
        if names.is_empty() {
            continue;
        }
        named |= names.iter().any(|n| n == hostname);
        let _ = writeln!(s, "{ip}\t{}", names.join(" "));
    }
    if !named && !hostname.is_empty() {
        let _ = writeln!(s, "127.0.1.1\t{hostname}");
    }
    s
}

/// Writes hostname, hosts and resolv.conf in the bundle dir.
pub(crate) fn write_etc_files(
    dir: &Path,
    hostname: &str,
    hosts: &[(String, Vec<String>)],
    resolv: &str,
) -> Result<(), RuntimeError> {
    let files = [
        (HOSTNAME_FILE, format!("{hostname}\n")),
        (HOSTS_FILE, hosts_file(hostname, hosts)),
        (RESOLV_FILE, resolv.to_string()),
    ];
    for (name, content) in files {
        let p = dir.join(name);
        // Bind-mounted on /etc/… for whatever user the container runs as:
        // 0644 whatever the daemon's umask.
        std::fs::write(&p, content)
            .and_then(|()| super::set_mode(&p, 0o644))
            .map_err(|e| RuntimeError::io(format!("writing {}", p.display()), e))?;
    }
    Ok(())
}

/// uid, gid, supplementary gids and home of the container's process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

/// Reads `rel` (relative to the container's root) without leaving `root`.
fn read_in_root(root: &Path, rel: &str) -> Result<Option<String>, RuntimeError> {
    let dir = std::fs::File::open(root)
        .map_err(|e| RuntimeError::io(format!("opening {}", root.display()), e))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match nix::fcntl::openat2(std::os::fd::AsRawFd::as_raw_fd(&dir), rel, how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(None),
        Err(e) => {
            return Err(RuntimeError::io(
                format!("opening {rel} in the image"),
                e.into(),
            ))
        }
    };
    // SAFETY: openat2 returned a new descriptor that we now own.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut buf = Vec::new();
    f.by_ref()
        .take(16 * 1024 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| RuntimeError::io(format!("reading {rel} in the image"), e))?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn numeric(s: &str) -> Option<u32> {
    s.parse::<u32>().ok().filter(|v| *v < u32::MAX)
}

/// Resolves `user` ("", "uid", "uid:gid", "name", "name:group", "uid:group",
/// "name:gid") and the extra `groups` against the image, as Docker does: a
/// numeric uid need not exist in /etc/passwd (its gid is then 0); a name
/// must. Supplementary groups are the user's memberships in /etc/group plus
/// `groups`.
pub(crate) fn resolve_user(
    rootfs: &Path,
    user: &str,
    groups: &[String],
) -> Result<ResolvedUser, RuntimeError> {
    let passwd = parse_passwd(&read_in_root(rootfs, "etc/passwd")?.unwrap_or_default());
    let group_text = read_in_root(rootfs, "etc/group")?;
    let group = parse_group(group_text.as_deref().unwrap_or_default());
    resolve_with(&passwd, &group, user, groups)
}

fn resolve_with(
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
    user: &str,
    groups: &[String],
) -> Result<ResolvedUser, RuntimeError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = match numeric(u) {
        Some(uid) => passwd.iter().find(|p| p.uid == uid),
        None => Some(passwd.iter().find(|p| p.name == u).ok_or_else(|| {
            RuntimeError::InvalidConfig(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?),
    };
    let uid = match (numeric(u), entry) {
        (Some(uid), _) => uid,
        (None, Some(e)) => e.uid,
        (None, None) => 0,
    };
    let find_group = |g: &str| -> Result<u32, RuntimeError> {
        match numeric(g) {
            Some(gid) => Ok(gid),
            None => group
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    RuntimeError::InvalidConfig(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                }),
        }
    };
    let gid = match g {
        Some(g) if !g.is_empty() => find_group(g)?,
        _ => entry.map(|e| e.gid).unwrap_or(0),
    };
    let mut additional = Vec::new();
    if let Some(e) = entry {
        for grp in group {
            if grp.members.contains(&e.name) && grp.gid != gid && !additional.contains(&grp.gid) {
                additional.push(grp.gid);
            }
        }
    }
    for g in groups {
        let id = find_group(g)?;
        if !additional.contains(&id) {
            additional.push(id);
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    fn db() -> (Vec<PasswdEntry>, Vec<GroupEntry>) {
        (
            parse_passwd("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n# comment\nbad line\n"),
            parse_group("root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nvideo:x:44:\n"),
        )
    }

    #[test]
    fn users() {
        let (p, g) = db();
        let r = resolve_with(&p, &g, "", &[]).expect("root");
        assert_eq!((r.uid, r.gid, r.home.as_deref()), (0, 0, Some("/root")));
        let r = resolve_with(&p, &g, "app", &[]).expect("app");
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone()),
            (1000, 1000, vec![50])
        );
        let r = resolve_with(&p, &g, "1000:1000", &["video".into(), "7".into()]).expect("numeric");
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone()),
            (1000, 1000, vec![50, 44, 7])
        );
        let r = resolve_with(&p, &g, "4242", &[]).expect("unknown uid");
        assert_eq!((r.uid, r.gid, r.home), (4242, 0, None));
        let r = resolve_with(&p, &g, "app:staff", &[]).expect("name:group");
        assert_eq!((r.uid, r.gid), (1000, 50));
        assert!(resolve_with(&p, &g, "nobody", &[]).is_err());
        assert!(resolve_with(&p, &g, "app:nogroup", &[]).is_err());
    }

    #[test]
    fn hosts() {
        let h = hosts_file("web1", &[]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("127.0.1.1\tweb1\n"));
        let h = hosts_file(
            "web1",
            &[("10.0.0.5".into(), vec!["web1".into(), "web".into()])],
        );
        assert!(h.contains("10.0.0.5\tweb1 web\n"));
        assert!(!h.contains("127.0.1.1"));
    }
}
