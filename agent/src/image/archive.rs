//! `image load`: images from an archive file, for hosts with no registry.
//!
//! Two formats, told apart by what the archive holds:
//! * **`docker save`** — `manifest.json` (`[{"Config", "RepoTags", "Layers"}]`)
//!   with the config JSON and layer tars it names (old layouts with
//!   `<id>/layer.tar` and symlinked repeats, and Docker 25's `blobs/sha256/…`
//!   paths alike). References are the `RepoTags`; an entry without tags loads
//!   as a dangling image. The store gets a manifest of its own for such an
//!   image (OCI, layers described as they are in the archive), whose digest
//!   is the image's [`LocalImage::digest`](super::LocalImage::digest).
//! * **OCI image layout** — `oci-layout`, `index.json`, `blobs/sha256/…`.
//!   Every descriptor of `index.json` is an image; one that is an index gets
//!   its `linux/<arch>` entry. Its name is the `io.containerd.image.name`
//!   annotation, else `org.opencontainers.image.ref.name` when that is a full
//!   reference (`busybox:1`, `reg/app@sha256:…`); a bare tag (`latest`) names
//!   no repository, so such an image loads dangling.
//!
//! The archive may be plain, gzip or zstd. A plain archive is read in place
//! (one pass to index its members, then each member read by offset); a
//! compressed one is first decompressed into the store's `tmp/`. Every blob
//! is checked against its digest, every layer against its diff-id, and a
//! layer already unpacked is not unpacked again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};
use serde::Deserialize;

use super::config;
use super::pull::{
    choose_platform, manifest_kind, pair_layers, parse_image_manifest, ManifestKind,
};
use super::store::{ImageRecord, ImageStore};
use super::unpack::{self, Compression, HashingReader};
use super::{normalize, sha256_digest, sha256_hex, ImageError, LocalImage};

const MAX_JSON: u64 = 32 << 20;

enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// A symlink or hardlink, resolved to an archive path.
    Alias(String),
}

/// An indexed tar on disk.
struct Archive {
    path: PathBuf,
    members: HashMap<String, Member>,
}

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `a/./b/../c/` → `a/c`; `None` if it climbs above the root.
fn normalize_path(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

impl Archive {
    fn index(path: &Path) -> Result<Archive, String> {
        let f = File::open(path).map_err(|e| e.to_string())?;
        let mut tar = tar::Archive::new(BufReader::new(f));
        let mut members = HashMap::new();
        for entry in tar.entries().map_err(|e| format!("reading tar: {e}"))? {
            let entry = entry.map_err(|e| format!("reading tar: {e}"))?;
            let name = entry
                .path()
                .map_err(|e| format!("reading tar: {e}"))?
                .to_string_lossy()
                .into_owned();
            let Some(name) = normalize_path(&name) else {
                continue;
            };
            let kind = entry.header().entry_type();
            let member = if kind.is_file() || kind == tar::EntryType::Continuous {
                Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name().ok().flatten() else {
                    continue;
                };
                let target = target.to_string_lossy().into_owned();
                let joined = if kind.is_symlink() && !target.starts_with('/') {
                    match name.rsplit_once('/') {
                        Some((dir, _)) => format!("{dir}/{target}"),
                        None => target,
                    }
                } else {
                    target
                };
                match normalize_path(&joined) {
                    Some(t) => Member::Alias(t),
                    None => continue,
                }
            } else {
                continue;
            };
            members.insert(name, member);
        }
        Ok(Archive {
            path: path.to_path_buf(),
            members,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    fn open(&self, name: &str) -> Result<(io::Take<File>, u64), String> {
        let mut name =
            normalize_path(name).ok_or_else(|| format!("invalid member path {name:?}"))?;
        for _ in 0..16 {
            match self.members.get(&name) {
                Some(Member::File { offset, size }) => {
                    let mut f = File::open(&self.path).map_err(|e| e.to_string())?;
                    f.seek(SeekFrom::Start(*offset))
                        .map_err(|e| e.to_string())?;
                    return Ok((f.take(*size), *size));
                }
                Some(Member::Alias(t)) => name = t.clone(),
                None => return Err(format!("{name} is missing from the archive")),
            }
        }
        Err(format!("{name}: too many levels of links"))
    }

    fn read_all(&self, name: &str, limit: u64) -> Result<Vec<u8>, String> {
        let (r, size) = self.open(name)?;
        if size > limit {
            return Err(format!("{name} is too large ({size} bytes)"));
        }
        let mut out = Vec::new();
        r.take(limit)
            .read_to_end(&mut out)
            .map_err(|e| format!("reading {name}: {e}"))?;
        Ok(out)
    }

    fn blob_name(digest: &str) -> Result<String, String> {
        sha256_hex(digest)
            .map(|h| format!("blobs/sha256/{h}"))
            .ok_or_else(|| format!("unsupported digest {digest}"))
    }

    /// A small blob of an OCI layout, checked against its digest.
    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, String> {
        let bytes = self.read_all(&Self::blob_name(digest)?, MAX_JSON)?;
        let got = sha256_digest(&bytes);
        if got != digest {
            return Err(format!("blob {digest} has digest {got}"));
        }
        Ok(bytes)
    }
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

impl ImageStore {
    /// Loads the images of a `docker save` or OCI archive (see the
    /// `archive` module doc). Blocking: call it from `spawn_blocking` in
    /// async code.
    pub fn load(&self, archive: &Path) -> Result<Vec<LocalImage>, ImageError> {
        let err = |detail: String| ImageError::Archive {
            path: archive.display().to_string(),
            detail: super::one_line(detail),
        };
        let f = File::open(archive).map_err(|e| err(e.to_string()))?;
        let mut br = BufReader::new(f);
        let compression = unpack::sniff(&mut br).map_err(err)?;
        let mut _tmp = None;
        let tar_path = if compression == Compression::None {
            archive.to_path_buf()
        } else {
            let tmp = self
                .root()
                .join("tmp")
                .join(format!("load-{}.tar", super::unique_suffix()));
            let guard = TempFile(tmp.clone());
            let mut plain = unpack::decompress(br).map_err(err)?;
            let mut out = File::create(&tmp).map_err(|e| err(format!("{}: {e}", tmp.display())))?;
            io::copy(&mut plain, &mut out).map_err(|e| err(format!("decompressing: {e}")))?;
            _tmp = Some(guard);
            tmp
        };
        // The tar reader's errors can quote the bytes it choked on: a text
        // file given by mistake would be echoed. Say what it is not instead.
        let ar = Archive::index(&tar_path).map_err(|e| {
            if e.starts_with("reading tar: ") {
                err("not a docker-save or OCI archive (not a tar file)".into())
            } else {
                err(e)
            }
        })?;
        if ar.has("manifest.json") {
            self.load_docker(&ar).map_err(|e| map_err(e, &err))
        } else if ar.has("index.json") {
            self.load_oci(&ar).map_err(|e| map_err(e, &err))
        } else {
            Err(err(
                "not a docker-save or OCI archive (neither manifest.json nor index.json in it)"
                    .into(),
            ))
        }
    }

    fn load_docker(&self, ar: &Archive) -> Result<Vec<LocalImage>, LoadError> {
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(&ar.read_all("manifest.json", MAX_JSON)?)
                .map_err(|e| format!("manifest.json: {e}"))?;
        let mut out = Vec::new();
        for e in entries {
            let config_bytes = ar.read_all(&e.config, MAX_JSON)?;
            let id = sha256_digest(&config_bytes);
            let parsed = config::parse(&config_bytes)?;
            parsed.check_platform()?;
            if parsed.diff_ids.len() != e.layers.len() {
                return Err(format!(
                    "{}: {} layers listed but the config has {} diff-ids",
                    e.config,
                    e.layers.len(),
                    parsed.diff_ids.len()
                )
                .into());
            }
            let refs = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| normalize(t))
                .collect::<Result<Vec<_>, _>>()?;
            let mut keys = vec![id.clone()];
            keys.extend(parsed.diff_ids.iter().cloned());
            let _pins = self.pin(keys);
            let mut descs = Vec::new();
            let mut size: i64 = 0;
            for (path, diff_id) in e.layers.iter().zip(&parsed.diff_ids) {
                let (member, member_size) = ar.open(path)?;
                let mut br = BufReader::new(member);
                let compression = unpack::sniff(&mut br)?;
                let media_type = match compression {
                    Compression::None => "application/vnd.oci.image.layer.v1.tar",
                    Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                    Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                };
                let present = self.layer_present(diff_id);
                let (digest, raw_size, layer_size) = match (present, compression) {
                    // Plain tar already unpacked: its digest is its diff-id.
                    (Some(s), Compression::None) => (diff_id.clone(), member_size, s),
                    _ => {
                        let mut raw = HashingReader::new(br);
                        let s = match present {
                            Some(s) => s,
                            None => {
                                let s =
                                    unpack::install_layer(&self.layers_dir(), diff_id, &mut raw)
                                        .map_err(|detail| ImageError::Layer {
                                            digest: diff_id.clone(),
                                            detail: super::one_line(detail),
                                        })?;
                                self.note_layer(diff_id, s);
                                s
                            }
                        };
                        raw.drain().map_err(|e| format!("reading {path}: {e}"))?;
                        (raw.digest(), raw.count(), s)
                    }
                };
                size = size.saturating_add(layer_size);
                descs.push(serde_json::json!({
                    "mediaType": media_type, "digest": digest, "size": raw_size,
                }));
            }
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": id, "size": config_bytes.len(),
                },
                "layers": descs,
            }))
            .map_err(|e| format!("encoding manifest: {e}"))?;
            let mdigest = sha256_digest(&manifest);
            let _pin_manifest = self.pin(vec![mdigest.clone()]);
            self.write_blob(&config_bytes, &id)?;
            self.write_blob(&manifest, &mdigest)?;
            let rec = ImageRecord {
                id,
                index_digests: Vec::new(),
                layers: parsed.diff_ids.clone(),
                size,
                created: parsed.created,
                config: parsed.config.clone(),
            };
            out.extend(self.record(&mdigest, rec, &refs, &mdigest)?);
        }
        Ok(out)
    }

    fn load_oci(&self, ar: &Archive) -> Result<Vec<LocalImage>, LoadError> {
        if ar.has("oci-layout") {
            let layout: serde_json::Value =
                serde_json::from_slice(&ar.read_all("oci-layout", MAX_JSON)?)
                    .map_err(|e| format!("oci-layout: {e}"))?;
            if layout.get("imageLayoutVersion").is_none() {
                return Err("oci-layout has no imageLayoutVersion".to_string().into());
            }
        }
        let index: ImageIndex = serde_json::from_slice(&ar.read_all("index.json", MAX_JSON)?)
            .map_err(|e| format!("index.json: {e}"))?;
        let mut out = Vec::new();
        for desc in index.manifests() {
            let refs = oci_names(desc)?;
            let top = desc.digest().to_string();
            let top_digest = top.clone();
            let top_bytes = ar.read_blob(&top)?;
            let (index_blob, manifest_digest, manifest_bytes) = match manifest_kind(&top_bytes)? {
                ManifestKind::Image => (None, top, top_bytes),
                ManifestKind::Index => {
                    let mut idx_bytes = top_bytes.clone();
                    let mut chosen = None;
                    for _ in 0..4 {
                        let idx: ImageIndex = serde_json::from_slice(&idx_bytes)
                            .map_err(|e| format!("image index: {e}"))?;
                        let d = choose_platform(&idx)
                            .ok_or_else(|| ImageError::NoMatchingPlatform {
                                platform: format!("linux/{}", super::host_arch()),
                            })?
                            .digest()
                            .to_string();
                        let b = ar.read_blob(&d)?;
                        match manifest_kind(&b)? {
                            ManifestKind::Image => {
                                chosen = Some((d, b));
                                break;
                            }
                            ManifestKind::Index => idx_bytes = b,
                        }
                    }
                    let (d, b) = chosen.ok_or("image indexes nested too deep")?;
                    (Some((top_bytes, top)), d, b)
                }
            };
            let (m, layers) = parse_image_manifest(&manifest_bytes)?;
            let config_digest = m.config().digest().to_string();
            let config_bytes = ar.read_blob(&config_digest)?;
            let parsed = config::parse(&config_bytes)?;
            parsed.check_platform()?;
            let layers = pair_layers(&layers, &parsed)?;
            let mut keys = vec![manifest_digest.clone(), config_digest.clone()];
            if let Some((_, d)) = &index_blob {
                keys.push(d.clone());
            }
            keys.extend(parsed.diff_ids.iter().cloned());
            let _pins = self.pin(keys);
            let mut size: i64 = 0;
            for l in &layers {
                let s = match self.layer_present(&l.diff_id) {
                    Some(s) => s,
                    None => {
                        let (member, _) = ar.open(&Archive::blob_name(&l.digest)?)?;
                        let mut raw = HashingReader::new(member);
                        let s = unpack::install_layer(&self.layers_dir(), &l.diff_id, &mut raw)
                            .map_err(|detail| ImageError::Layer {
                                digest: l.digest.clone(),
                                detail: super::one_line(detail),
                            })?;
                        raw.drain()
                            .map_err(|e| format!("reading {}: {e}", l.digest))?;
                        if raw.digest() != l.digest {
                            return Err(
                                format!("blob {} has digest {}", l.digest, raw.digest()).into()
                            );
                        }
                        self.note_layer(&l.diff_id, s);
                        s
                    }
                };
                size = size.saturating_add(s);
            }
            self.write_blob(&manifest_bytes, &manifest_digest)?;
            self.write_blob(&config_bytes, &config_digest)?;
            if let Some((b, d)) = &index_blob {
                self.write_blob(b, d)?;
            }
            let rec = ImageRecord {
                id: config_digest,
                index_digests: index_blob.iter().map(|(_, d)| d.clone()).collect(),
                layers: parsed.diff_ids.clone(),
                size,
                created: parsed.created,
                config: parsed.config.clone(),
            };
            out.extend(self.record(&manifest_digest, rec, &refs, &top_digest)?);
        }
        Ok(out)
    }
}

/// The references an OCI index entry names.
fn oci_names(desc: &Descriptor) -> Result<Vec<String>, ImageError> {
    let Some(ann) = desc.annotations() else {
        return Ok(Vec::new());
    };
    if let Some(name) = ann.get("io.containerd.image.name") {
        return Ok(vec![normalize(name)?]);
    }
    match ann.get("org.opencontainers.image.ref.name") {
        Some(name) if name.contains([':', '/', '@']) => Ok(vec![normalize(name)?]),
        _ => Ok(Vec::new()),
    }
}

/// Load failures: an image error as it is, or a reason about the archive.
enum LoadError {
    Image(ImageError),
    Archive(String),
}

impl From<ImageError> for LoadError {
    fn from(e: ImageError) -> Self {
        LoadError::Image(e)
    }
}

impl From<String> for LoadError {
    fn from(e: String) -> Self {
        LoadError::Archive(e)
    }
}

impl From<&str> for LoadError {
    fn from(e: &str) -> Self {
        LoadError::Archive(e.to_string())
    }
}

fn map_err(e: LoadError, archive: &dyn Fn(String) -> ImageError) -> ImageError {
    match e {
        LoadError::Image(e) => e,
        LoadError::Archive(s) => archive(s),
    }
}
