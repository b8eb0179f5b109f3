//! A container's secret and config files on the host: one tmpfs per
//! container at `<bundle>/files` (memory only, never the disk under the data
//! dir), filled before `runc create` with one file per [`ContainerFile`]
//! (`files/<n>`, its uid, gid and mode), then remounted read-only. Each
//! file is bind-mounted read-only at its target in the container (spec.rs);
//! the container keeps its bind mounts whatever happens to the host's view,
//! and the tmpfs stays mounted across a restart of the daemon (live
//! restore). Removing the container unmounts it, and with it the values.
//! Docker does the same (`containers/<id>/mounts/secrets`, a tmpfs).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::{rootfs, set_mode, ContainerFile, RuntimeError};

/// The tmpfs inside a bundle.
pub(super) const FILES: &str = "files";

/// A page: the tmpfs's allowance per file and for its root.
const PAGE: usize = 4096;

/// Where file `n` of a container sits on the host.
pub(super) fn source(bundle: &Path, n: usize) -> PathBuf {
    bundle.join(FILES).join(n.to_string())
}

fn flags() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

/// Mounts the tmpfs of a container's files in `bundle` and writes them into
/// it, read-only once written. Nothing to do without files. Blocking.
pub(super) fn write(bundle: &Path, files: &[ContainerFile]) -> Result<(), RuntimeError> {
    if files.is_empty() {
        return Ok(());
    }
    let dir = bundle.join(FILES);
    let io = |what: &str, p: &Path, e| RuntimeError::io(format!("{what} {}", p.display()), e);
    std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    let size: usize = files
        .iter()
        .map(|f| f.data.len().div_ceil(PAGE) * PAGE + PAGE)
        .sum::<usize>()
        + PAGE;
    let data = format!("mode=0700,size={size},nr_inodes={}", files.len() + 16);
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        flags(),
        Some(data.as_str()),
    )
    .map_err(|e| io("mounting a tmpfs on", &dir, e.into()))?;
    let filled = fill(bundle, files).and_then(|()| {
        mount(
            None::<&str>,
            &dir,
            None::<&str>,
            flags() | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            Some(data.as_str()),
        )
        .map_err(|e| io("making read-only the tmpfs on", &dir, e.into()))
    });
    if let Err(e) = filled {
        let _ = remove(bundle);
        return Err(e);
    }
    Ok(())
}

fn fill(bundle: &Path, files: &[ContainerFile]) -> Result<(), RuntimeError> {
    for (n, f) in files.iter().enumerate() {
        let path = source(bundle, n);
        let io = |what: &str, e| RuntimeError::io(format!("{what} {}", path.display()), e);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("creating", e))?;
        out.write_all(&f.data).map_err(|e| io("writing", e))?;
        drop(out);
        std::os::unix::fs::chown(&path, Some(f.uid), Some(f.gid))
            .map_err(|e| io("setting the owner of", e))?;
        set_mode(&path, f.mode & 0o777).map_err(|e| io("setting the mode of", e))?;
    }
    Ok(())
}

/// Unmounts a container's files tmpfs (fine when there is none). Blocking.
pub(super) fn remove(bundle: &Path) -> Result<(), RuntimeError> {
    let dir = bundle.join(FILES);
    rootfs::unmount_all(&dir)?;
    match std::fs::remove_dir(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io(format!("removing {}", dir.display()), e)),
    }
}
