//! Unpacking one layer into its own directory, ready to be an overlayfs
//! lowerdir.
//!
//! * Compression is found by magic bytes, not trusted from the media type:
//!   gzip (multi-member, as Go writes it), zstd (multi-frame, skippable
//!   frames skipped; pure-Rust `ruzstd`), or a plain tar. xz and bzip2 are
//!   refused by name.
//! * The uncompressed stream is hashed while it is unpacked; a layer whose
//!   sha256 is not its diff-id is thrown away.
//! * OCI whiteouts become overlayfs ones: `.wh.NAME` → a 0:0 character device
//!   `NAME`; `.wh..wh..opq` → `trusted.overlay.opaque=y` on its directory;
//!   other `.wh..wh.*` (aufs metadata) are skipped.
//! * Ownership (uid/gid from the tar), modes including setuid/setgid/sticky,
//!   mtimes (directories last, so their children do not touch them), symlinks,
//!   hardlinks to earlier entries of the same layer, xattrs from PAX
//!   `SCHILY.xattr.*` records (file capabilities), FIFOs and device nodes (a
//!   node the kernel refuses, as in a user namespace, is skipped with a
//!   warning).
//! * Nothing is ever written outside the layer: an entry path or hardlink
//!   target with `..` is refused, and symlinks met while walking to an entry's
//!   parent are resolved inside the layer directory as if it were `/` (an
//!   absolute target or a `..` past the top stays in the layer, like a
//!   chroot), which is what Docker's chrooted unpacker does.
//! * The layer is unpacked into `layers/.tmp-…`, flushed with `syncfs`, then
//!   renamed to `layers/<diff-id hex>`; if another unpack won the rename the
//!   copy is dropped. A half-unpacked layer never has its final name.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::sha256_hex;

/// A reader that hashes (sha256) and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(super) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// `sha256:<hex>` of everything read so far.
    pub(super) fn digest(&self) -> String {
        format!("sha256:{:x}", self.hasher.clone().finalize())
    }

    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Reads the rest of the stream (so the digest covers all of it).
    pub(super) fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// The compressions a layer or archive can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Looks at the first bytes of a stream.
pub(crate) fn sniff<R: BufRead>(r: &mut R) -> Result<Compression, String> {
    // fill_buf may return fewer bytes than a magic number at a buffer edge;
    // at the very start of a stream a BufReader gives up to its capacity.
    let head = r.fill_buf().map_err(|e| format!("reading: {e}"))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Err("xz compression is not supported".into())
    } else if head.starts_with(b"BZh") {
        Err("bzip2 compression is not supported".into())
    } else {
        Ok(Compression::None)
    }
}

/// The uncompressed stream of `r`, whatever its compression.
pub(crate) fn decompress<'a, R: BufRead + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>, String> {
    Ok(match sniff(&mut r)? {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(ZstdReader {
            src: r,
            dec: FrameDecoder::new(),
            in_frame: false,
        }),
    })
}

/// A zstd stream of any number of frames (`ruzstd`'s `StreamingDecoder`
/// reads one).
struct ZstdReader<R> {
    src: R,
    dec: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.src.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.dec.reset(&mut self.src) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        io::copy(
                            &mut (&mut self.src).take(u64::from(length)),
                            &mut io::sink(),
                        )?;
                        continue;
                    }
                    Err(e) => return Err(io::Error::other(format!("zstd: {e}"))),
                }
            }
            while self.dec.can_collect() == 0 && !self.dec.is_finished() {
                self.dec
                    .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::other(format!("zstd: {e}")))?;
            }
            let n = Read::read(&mut self.dec, buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.dec.is_finished() && self.dec.can_collect() == 0 {
                self.in_frame = false;
            }
        }
    }
}

/// Unpacks a layer stream (any compression) into `layers_dir/<hex of
/// diff_id>`, checking the diff-id. Returns the bytes of file content.
/// Blocking: call it from `spawn_blocking`.
pub(crate) fn install_layer(
    layers_dir: &Path,
    diff_id: &str,
    raw: &mut dyn Read,
) -> Result<i64, String> {
    let hex = sha256_hex(diff_id).ok_or_else(|| format!("invalid diff-id {diff_id:?}"))?;
    let final_dir = layers_dir.join(hex);
    let tmp = layers_dir.join(format!(".tmp-{hex}-{}", super::unique_suffix()));
    create_dir(&tmp)?;
    let result = unpack_verified(&tmp, diff_id, raw);
    let size = match result {
        Ok(size) => size,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    match fs::rename(&tmp, &final_dir) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(libc::ENOTEMPTY)
                || e.raw_os_error() == Some(libc::EEXIST) =>
        {
            // Another unpack of the same layer finished first: same content.
            let _ = fs::remove_dir_all(&tmp);
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(format!("renaming layer into place: {e}"));
        }
    }
    sync_dir(layers_dir);
    Ok(size)
}

fn unpack_verified(tmp: &Path, diff_id: &str, raw: &mut dyn Read) -> Result<i64, String> {
    let buffered = BufReader::with_capacity(256 * 1024, raw);
    let plain = decompress(buffered)?;
    let mut hashing = HashingReader::new(plain);
    let size = extract(tmp, &mut hashing)?;
    hashing.drain().map_err(|e| format!("reading layer: {e}"))?;
    let got = hashing.digest();
    if got != diff_id {
        return Err(format!(
            "layer content does not match its diff-id: expected {diff_id}, got {got}"
        ));
    }
    let dir = fs::File::open(tmp).map_err(|e| format!("opening {}: {e}", tmp.display()))?;
    nix::unistd::syncfs(dir.as_raw_fd()).map_err(|e| format!("syncfs: {e}"))?;
    Ok(size)
}

/// fsyncs a directory (after a rename into it); best effort.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Unpacks a tar stream into `root` (see the module doc). Returns the bytes
/// of regular-file content.
pub(crate) fn extract<R: Read>(root: &Path, reader: R) -> Result<i64, String> {
    let mut archive = tar::Archive::new(reader);
    let mut dir_times: Vec<(PathBuf, FileTime)> = Vec::new();
    let mut size: i64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| format!("reading layer tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading layer tar: {e}"))?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| format!("reading layer tar: {e}"))?
            .into_owned();
        let comps = clean_components(&path)?;
        let Some((name, parent_comps)) = comps.split_last() else {
            // The layer's root itself ("./").
            if kind == EntryType::Directory {
                let mtime = apply_metadata(root, &mut entry, Kind::Dir)?;
                dir_times.push((root.to_path_buf(), mtime));
            }
            continue;
        };
        let name_bytes = name.as_bytes();
        if let Some(target) = name_bytes.strip_prefix(b".wh.") {
            let parent = resolve_in_root(root, parent_comps, true)?;
            if target == b".wh..opq" {
                xattr::set(&parent, "trusted.overlay.opaque", b"y")
                    .map_err(|e| format!("marking {} opaque: {e}", path.display()))?;
            } else if target.starts_with(b".wh.") {
                // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
            } else {
                if target.is_empty() || target == b"." || target == b".." {
                    return Err(format!("invalid whiteout {}", path.display()));
                }
                let p = parent.join(OsStr::from_bytes(target));
                remove_any(&p)?;
                mknod(&p, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| format!("creating whiteout {}: {e}", p.display()))?;
            }
            continue;
        }
        let parent = resolve_in_root(root, parent_comps, true)?;
        let dst = parent.join(name);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&dst) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_any(&dst)?;
                        create_dir(&dst)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(&dst)?,
                    Err(e) => return Err(format!("{}: {e}", dst.display())),
                }
                let mtime = apply_metadata(&dst, &mut entry, Kind::Dir)?;
                dir_times.push((dst, mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_any(&dst)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&dst)
                    .map_err(|e| format!("creating {}: {e}", dst.display()))?;
                let n = io::copy(&mut entry, &mut file)
                    .map_err(|e| format!("writing {}: {e}", dst.display()))?;
                file.flush()
                    .map_err(|e| format!("writing {}: {e}", dst.display()))?;
                drop(file);
                size = size.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
                apply_metadata(&dst, &mut entry, Kind::File)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| format!("reading layer tar: {e}"))?
                    .ok_or_else(|| format!("symlink {} has no target", path.display()))?
                    .into_owned();
                remove_any(&dst)?;
                std::os::unix::fs::symlink(&target, &dst)
                    .map_err(|e| format!("creating symlink {}: {e}", dst.display()))?;
                apply_metadata(&dst, &mut entry, Kind::Symlink)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| format!("reading layer tar: {e}"))?
                    .ok_or_else(|| format!("hardlink {} has no target", path.display()))?
                    .into_owned();
                let tcomps = clean_components(&target)?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(format!("hardlink {} to the layer root", path.display()));
                };
                let tdir = resolve_in_root(root, tparent, false).map_err(|e| {
                    format!(
                        "hardlink {} -> {}: target not in this layer ({e})",
                        path.display(),
                        target.display()
                    )
                })?;
                let src = tdir.join(tname);
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_dir() => {
                        return Err(format!("hardlink {} to a directory", path.display()))
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(format!(
                            "hardlink {} -> {}: target not in this layer",
                            path.display(),
                            target.display()
                        ))
                    }
                }
                if src != dst {
                    remove_any(&dst)?;
                    fs::hard_link(&src, &dst)
                        .map_err(|e| format!("creating hardlink {}: {e}", dst.display()))?;
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                remove_any(&dst)?;
                match mknod(
                    &dst,
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    makedev(major.into(), minor.into()),
                ) {
                    Ok(()) => {
                        apply_metadata(&dst, &mut entry, Kind::File)?;
                    }
                    Err(nix::errno::Errno::EPERM) => {
                        tracing::warn!(path = %path.display(), "device node not permitted here; skipped");
                    }
                    Err(e) => return Err(format!("creating {}: {e}", dst.display())),
                }
            }
            other => {
                tracing::debug!(path = %path.display(), kind = ?other, "skipping tar entry");
            }
        }
    }
    // Directories last: creating their children changed their mtimes.
    for (dir, mtime) in dir_times.iter().rev() {
        let _ = filetime::set_file_times(dir, *mtime, *mtime);
    }
    Ok(size)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

/// Owner, mode, xattrs and (except directories) mtime from the tar header.
/// Returns the mtime.
fn apply_metadata<R: Read>(
    path: &Path,
    entry: &mut tar::Entry<'_, R>,
    kind: Kind,
) -> Result<FileTime, String> {
    let h = entry.header();
    let bad = |e: io::Error| format!("{}: bad tar header: {e}", path.display());
    let uid = u32::try_from(h.uid().map_err(bad)?).map_err(|_| "uid out of range".to_string())?;
    let gid = u32::try_from(h.gid().map_err(bad)?).map_err(|_| "gid out of range".to_string())?;
    let mode = h.mode().map_err(bad)? & 0o7777;
    let mtime = FileTime::from_unix_time(i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0), 0);
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))?;
    if kind != Kind::Symlink {
        // After chown, which clears setuid/setgid.
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    }
    // After chown, which clears security.capability.
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if let Err(e) = xattr::set(path, name, ext.value_bytes()) {
                    tracing::warn!(path = %path.display(), xattr = name, error = %e, "xattr not set");
                }
            }
        }
    }
    if kind != Kind::Dir {
        filetime::set_symlink_file_times(path, mtime, mtime)
            .map_err(|e| format!("setting times on {}: {e}", path.display()))?;
    }
    Ok(mtime)
}

/// A directory the archive implies but does not describe: 0755 whatever the
/// daemon's umask (077), as other tools unpack it.
fn create_dir(p: &Path) -> Result<(), String> {
    fs::create_dir(p)
        .and_then(|()| fs::set_permissions(p, fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("creating {}: {e}", p.display()))
}

/// Removes whatever is at `p` (not following a symlink); nothing there is fine.
fn remove_any(p: &Path) -> Result<(), String> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| format!("replacing {}: {e}", p.display()))
}

/// The normal components of an entry path; `..` is refused.
pub(crate) fn clean_components(path: &Path) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(format!(
                    "invalid path {}: '..' would leave the layer",
                    path.display()
                ))
            }
        }
    }
    Ok(out)
}

/// Walks `comps` from `root`, resolving symlinks as if `root` were `/`, and
/// creating missing directories when `create`. The result is a real
/// directory inside `root` with no symlink on the way.
fn resolve_in_root(root: &Path, comps: &[OsString], create: bool) -> Result<PathBuf, String> {
    let mut queue: VecDeque<OsString> = comps.iter().cloned().collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            resolved.pop();
            continue;
        }
        let mut p = root.to_path_buf();
        p.extend(&resolved);
        p.push(&c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(format!(
                        "{}: too many levels of symbolic links",
                        p.display()
                    ));
                }
                let target =
                    fs::read_link(&p).map_err(|e| format!("reading link {}: {e}", p.display()))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let parts: Vec<OsString> = target
                    .components()
                    .filter_map(|tc| match tc {
                        Component::Normal(n) => Some(n.to_os_string()),
                        Component::ParentDir => Some(OsString::from("..")),
                        _ => None,
                    })
                    .collect();
                for part in parts.into_iter().rev() {
                    queue.push_front(part);
                }
            }
            Ok(m) if m.is_dir() => resolved.push(c),
            Ok(_) => return Err(format!("{}: not a directory", p.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                create_dir(&p)?;
                resolved.push(c);
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    let mut p = root.to_path_buf();
    p.extend(&resolved);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn header(path: &str, kind: EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        h
    }

    fn raw_header(name: &[u8], link: &[u8], kind: EntryType) -> tar::Header {
        // Bypasses the tar crate's own path checks, to build hostile tars.
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o777);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        h
    }

    #[test]
    fn symlinked_parents_stay_inside_and_dotdot_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let root = tmp.path().join("layer");
        fs::create_dir(&root).unwrap();

        let mut b = tar::Builder::new(Vec::new());
        b.append(
            &raw_header(b"evil", outside.as_os_str().as_bytes(), EntryType::Symlink),
            io::empty(),
        )
        .unwrap();
        b.append(
            &header("evil/pwned", EntryType::Regular, 2, 0o644),
            &b"hi"[..],
        )
        .unwrap();
        b.append(
            &raw_header(b"up", b"../../..", EntryType::Symlink),
            io::empty(),
        )
        .unwrap();
        b.append(&header("up/x", EntryType::Regular, 1, 0o644), &b"x"[..])
            .unwrap();
        let tar = b.into_inner().unwrap();
        extract(&root, &tar[..]).unwrap();
        assert!(
            fs::read_dir(&outside).unwrap().next().is_none(),
            "wrote outside"
        );
        // The absolute symlink was followed inside the layer.
        let inside = root.join(outside.strip_prefix("/").unwrap()).join("pwned");
        assert_eq!(fs::read(inside).unwrap(), b"hi");
        assert_eq!(fs::read(root.join("x")).unwrap(), b"x");

        let mut b = tar::Builder::new(Vec::new());
        let mut h = raw_header(b"../escape", b"", EntryType::Regular);
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
        let tar = b.into_inner().unwrap();
        let root2 = tmp.path().join("layer2");
        fs::create_dir(&root2).unwrap();
        let err = extract(&root2, &tar[..]).unwrap_err();
        assert!(err.contains(".."), "{err}");
        assert!(!tmp.path().join("escape").exists());

        let mut b = tar::Builder::new(Vec::new());
        b.append(
            &raw_header(b"hl", b"../../etc/passwd", EntryType::Link),
            io::empty(),
        )
        .unwrap();
        let tar = b.into_inner().unwrap();
        let root3 = tmp.path().join("layer3");
        fs::create_dir(&root3).unwrap();
        assert!(extract(&root3, &tar[..]).is_err());
    }

    #[test]
    fn metadata_links_devices_and_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layer");
        fs::create_dir(&root).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header("bin/", EntryType::Directory, 0, 0o755);
        h.set_uid(7);
        h.set_gid(8);
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
        let mut h = header("bin/su", EntryType::Regular, 3, 0o4755);
        h.set_uid(5);
        h.set_cksum();
        b.append(&h, &b"abc"[..]).unwrap();
        let mut h = raw_header(b"bin/su2", b"bin/su", EntryType::Link);
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
        b.append(
            &raw_header(b"bin/sh", b"su", EntryType::Symlink),
            io::empty(),
        )
        .unwrap();
        let mut h = header("dev/null", EntryType::Char, 0, 0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
        b.append(&header("run/fifo", EntryType::Fifo, 0, 0o600), io::empty())
            .unwrap();
        b.append(
            &header("etc/.wh.gone", EntryType::Regular, 0, 0o600),
            io::empty(),
        )
        .unwrap();
        b.append(
            &header("var/.wh..wh..opq", EntryType::Regular, 0, 0o600),
            io::empty(),
        )
        .unwrap();
        let tar = b.into_inner().unwrap();
        let size = extract(&root, &tar[..]).unwrap();
        assert_eq!(size, 3);

        let bin = fs::metadata(root.join("bin")).unwrap();
        assert_eq!((bin.uid(), bin.gid()), (7, 8));
        assert_eq!(bin.mtime(), 1_600_000_000);
        let su = fs::metadata(root.join("bin/su")).unwrap();
        assert_eq!(su.mode() & 0o7777, 0o4755);
        assert_eq!(su.uid(), 5);
        assert_eq!(su.mtime(), 1_600_000_000);
        assert_eq!(su.nlink(), 2);
        assert_eq!(fs::metadata(root.join("bin/su2")).unwrap().ino(), su.ino());
        assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("su"));
        let null = fs::metadata(root.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
        assert!(fs::metadata(root.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        let wh = fs::symlink_metadata(root.join("etc/gone")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!root.join("etc/.wh.gone").exists());
        assert_eq!(
            xattr::get(root.join("var"), "trusted.overlay.opaque").unwrap(),
            Some(b"y".to_vec())
        );
    }

    #[test]
    fn compressions_and_diff_id_check() {
        let mut b = tar::Builder::new(Vec::new());
        b.append(&header("f", EntryType::Regular, 5, 0o644), &b"hello"[..])
            .unwrap();
        let tar = b.into_inner().unwrap();
        let diff_id = crate::image::sha256_digest(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        // Two zstd frames plus a skippable frame in between.
        let half = tar.len() / 2;
        let mut zst = ruzstd::encoding::compress_to_vec(
            &tar[..half],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        zst.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        zst.extend(ruzstd::encoding::compress_to_vec(
            &tar[half..],
            ruzstd::encoding::CompressionLevel::Fastest,
        ));
        for (name, blob) in [("plain", &tar), ("gzip", &gz), ("zstd", &zst)] {
            let tmp = tempfile::tempdir().unwrap();
            let size = install_layer(tmp.path(), &diff_id, &mut &blob[..]).unwrap();
            assert_eq!(size, 5, "{name}");
            let dir = tmp.path().join(sha256_hex(&diff_id).unwrap());
            assert_eq!(fs::read(dir.join("f")).unwrap(), b"hello", "{name}");
            // Only the final directory is left.
            assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "{name}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let wrong = crate::image::sha256_digest(b"other");
        let err = install_layer(tmp.path(), &wrong, &mut &tar[..]).unwrap_err();
        assert!(err.contains("diff-id"), "{err}");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
