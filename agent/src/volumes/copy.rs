//! Docker's copy of an image's content into a new volume: when a container
//! mounts an empty volume (and the mount does not say `volume-nocopy`), what
//! the image holds at the mount's target is copied into the volume, with its
//! modes and owners, and the volume's root takes the mode and owner of that
//! directory. Symlinks in the image are resolved inside the container's root,
//! never on the host; they are copied as links.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::{io, VolumeError};

/// Symlinks followed while resolving one path (Linux's limit).
const MAX_LINKS: usize = 40;

/// `target` (absolute, in the container) resolved inside `root`, following
/// symlinks as if `root` were `/`. None when it does not resolve.
pub(super) fn resolve_in_root(root: &Path, target: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = Path::new(target)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str().map(str::to_string),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut parts: Vec<String> = vec![];
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        let here: PathBuf = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let path = here.join(&part);
        let md = path.symlink_metadata().ok()?;
        if md.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let dest = std::fs::read_link(&path).ok()?;
            if dest.is_absolute() {
                parts.clear();
            }
            for c in dest.components().rev() {
                match c {
                    Component::Normal(s) => todo.push(s.to_str()?.to_string()),
                    Component::ParentDir => todo.push("..".into()),
                    _ => {}
                }
            }
        } else {
            parts.push(part);
        }
    }
    Some(parts.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// Copies what `rootfs` holds at `target` into the volume folder `data`,
/// if `data` is empty and `target` is a directory there. Returns whether
/// anything was copied.
pub fn copy_image_content(rootfs: &Path, target: &str, data: &Path) -> Result<bool, VolumeError> {
    let empty = std::fs::read_dir(data)
        .map_err(io(format!("reading {}", data.display())))?
        .next()
        .is_none();
    if !empty {
        return Ok(false);
    }
    let Some(src) = resolve_in_root(rootfs, target) else {
        return Ok(false);
    };
    match src.symlink_metadata() {
        Ok(md) if md.is_dir() => {
            copy_dir(&src, data)?;
            copy_owner_and_mode(&md, data)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn copy_owner_and_mode(md: &std::fs::Metadata, dest: &Path) -> Result<(), VolumeError> {
    std::os::unix::fs::lchown(dest, Some(md.uid()), Some(md.gid()))
        .map_err(io(format!("setting the owner of {}", dest.display())))?;
    if !md.file_type().is_symlink() {
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(md.mode() & 0o7777))
            .map_err(io(format!("setting the mode of {}", dest.display())))?;
    }
    Ok(())
}

/// Copies the content of the directory `src` into the existing `dest`.
fn copy_dir(src: &Path, dest: &Path) -> Result<(), VolumeError> {
    let entries = std::fs::read_dir(src).map_err(io(format!("reading {}", src.display())))?;
    for e in entries {
        let e = e.map_err(io(format!("reading {}", src.display())))?;
        let from = e.path();
        let to = dest.join(e.file_name());
        let md = from
            .symlink_metadata()
            .map_err(io(format!("reading {}", from.display())))?;
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(io(format!("creating {}", to.display())))?;
            copy_dir(&from, &to)?;
        } else if ft.is_symlink() {
            let link =
                std::fs::read_link(&from).map_err(io(format!("reading {}", from.display())))?;
            std::os::unix::fs::symlink(&link, &to)
                .map_err(io(format!("creating {}", to.display())))?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(io(format!("copying {}", from.display())))?;
        } else {
            // Devices, fifos and sockets in an image's volume path are not copied.
            continue;
        }
        copy_owner_and_mode(&md, &to)?;
    }
    Ok(())
}
