//! Images: pulls over the OCI distribution API, a content-addressed store under
//! the data dir, and layers unpacked once into directories that overlayfs
//! stacks into a task's root filesystem.
//!
//! The entry point is [`ImageStore`] (`store.rs`): [`ImageStore::pull`] always
//! asks the registry (concurrent pulls of one reference share one download),
//! [`ImageStore::ensure`] uses the local copy when there is one,
//! [`ImageStore::load`] imports `docker save` and OCI archives,
//! [`ImageStore::remove`] untags and garbage-collects, and
//! [`ImageStore::resolve`] asks a registry for a tag's digest without pulling
//! (`stack deploy --resolve-image`).
//!
//! # Where things come from
//! * [`normalize`] here — the spec library's one reference parser
//!   (`rswarm_proto::spec::reference`) with `:latest` added (`redis` is
//!   `docker.io/library/redis:latest`) and sha256 digests only.
//! * `pull.rs` — the registry side: endpoints (mirrors for `docker.io`,
//!   insecure registries over plain HTTP), authentication (anonymous, basic,
//!   or bearer tokens fetched with the configured credentials), manifests and
//!   blobs through `oci-client`, and registry errors turned into Docker's
//!   words.
//! * `config.rs` — the image configuration blob (Entrypoint, Cmd, Env, …) and
//!   the layers' diff-ids.
//! * `unpack.rs` — one layer tar (plain, gzip or zstd, found by its magic
//!   bytes) into its own directory, whiteouts turned into overlayfs ones.
//! * `archive.rs` — `docker save` (manifest.json) and OCI image-layout archives.
//!
//! # Layout under the root (`<data-dir>/images`)
//! ```text
//! index.json                 references -> manifest digest, image records, layer sizes
//!                            (written to index.json.tmp, fsynced, renamed: never half-written)
//! blobs/sha256/<hex>         manifests, image indexes and image configs, by digest
//! layers/<hex>/              one unpacked layer, named by its diff-id (the sha256 of the
//!                            uncompressed tar); shared by every image and task that uses it
//! layers/.tmp-*, blobs/.tmp-*, tmp/   work in progress; removed when the store opens
//! ```
//! A layer is unpacked into `layers/.tmp-…`, its diff-id checked, the tree
//! flushed (`syncfs`) and only then renamed to `layers/<hex>`: a directory with
//! a final name is always complete. Compressed layer blobs are not kept once
//! unpacked (as Docker's overlay2 store does), which halves the disk used; a
//! layer whose diff-id is already unpacked is not even downloaded. Each
//! directory is a self-contained overlayfs layer: whiteouts are 0:0 character
//! devices, opaque directories carry `trusted.overlay.opaque=y`, so
//! `LocalImage::layers` reversed is a ready `lowerdir=` list.
//!
//! # Choices (where Docker's behaviour is not the obvious one)
//! * Multi-platform images: the `linux/<this machine's arch>` entry is taken.
//!   [`LocalImage::digest`] is the digest the reference resolved to on the
//!   registry: the image index's for a multi-platform image (as Docker's
//!   `RepoDigests`), the manifest's otherwise, so `repo@<digest>` gives the
//!   same image again on any node.
//! * Insecure registries (`host:port` or CIDR entries, and 127.0.0.0/8 and
//!   `::1` always, as Docker does) are tried over HTTPS without certificate
//!   checks first and then over plain HTTP; what worked is remembered per host.
//!   Host names are matched as written (no DNS look-up against CIDRs).
//! * Mirrors serve `docker.io` only, are tried in order, and any failure moves
//!   on to the next one and finally to Docker Hub; the last error is reported.
//!   A mirror URL's path is ignored (`oci-client` addresses a host).
//! * `auth.rs` — credentials sent with a task (`--with-registry-auth`, used
//!   only for the registry they name, before the configured ones) and the
//!   check behind `rswarm login` ([`ImageStore::login`]).
//! * Credentials are looked up by registry host (`docker.io`,
//!   `index.docker.io` and `https://index.docker.io/v1/` are one key). They
//!   are sent as HTTP basic auth or exchanged for a bearer token, whichever
//!   the registry's challenge asks for.
//! * A dangling image (its tag moved to a newer pull, or force-removed while
//!   in use) stays, listed with an empty reference, until removed by ID or
//!   [`ImageStore::prune`]: its layers may be under a running task.
//! * One `ImageStore` per root: opening cleans up the previous process's
//!   leftovers and garbage-collects unreferenced blobs and layers.

mod archive;
mod auth;
mod config;
mod pull;
mod store;
mod unpack;

#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use auth::PullAuth;
pub use store::ImageStore;

/// Registry settings, as in Docker's `daemon.json`. `Debug` hides passwords.
#[derive(Clone, Default)]
pub struct RegistryConfig {
    /// `registry-mirrors`: URLs (`https://mirror.example`, `http://10.0.0.5:5000`)
    /// tried in order for `docker.io` images before Docker Hub itself.
    pub mirrors: Vec<String>,
    /// `insecure-registries`: `host:port` entries or CIDRs (`10.77.0.0/16`).
    /// These are tried over HTTPS without certificate verification, then over
    /// plain HTTP. Loopback registries are always insecure, as in Docker.
    pub insecure_registries: Vec<String>,
    /// Registry host (`10.77.0.2:5000`, `docker.io`) -> (user, password).
    /// Used as HTTP basic auth or to obtain a bearer token.
    pub auths: HashMap<String, (String, String)>,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: std::collections::BTreeMap<&str, &str> = self
            .auths
            .iter()
            .map(|(host, (user, _))| (host.as_str(), user.as_str()))
            .collect();
        f.debug_struct("RegistryConfig")
            .field("mirrors", &self.mirrors)
            .field("insecure_registries", &self.insecure_registries)
            .field("auths (users)", &users)
            .finish()
    }
}

/// An image in the local store, under one reference.
#[derive(Clone, Debug)]
pub struct LocalImage {
    /// Normalised reference (`docker.io/library/busybox:latest`,
    /// `10.77.0.2:5000/busybox:1`, `…@sha256:…`); empty for a dangling image.
    pub reference: String,
    /// `sha256:<config digest>`, Docker's image ID.
    pub id: String,
    /// `sha256:<digest>` the reference resolved to: the image index's for a
    /// multi-platform image, the manifest's otherwise (see the module doc).
    pub digest: String,
    /// Bytes of file content in the unpacked layers (Docker's image size).
    pub size: i64,
    /// Creation time from the image config, unix seconds (0 if absent).
    pub created: i64,
    /// Unpacked layer directories, base layer first (overlayfs lowerdirs are
    /// this list reversed).
    pub layers: Vec<PathBuf>,
    /// The runtime configuration the image carries.
    pub config: ImageConfig,
}

/// What an image says about the containers made from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub stop_signal: Option<String>,
    pub labels: HashMap<String, String>,
    /// Healthcheck test (`["CMD", …]`, `["CMD-SHELL", "…"]`, `["NONE"]`).
    pub healthcheck: Option<Vec<String>>,
    pub healthcheck_interval: Option<Duration>,
    pub healthcheck_timeout: Option<Duration>,
    pub healthcheck_start_period: Option<Duration>,
    pub healthcheck_start_interval: Option<Duration>,
    pub healthcheck_retries: Option<u32>,
    /// `ExposedPorts` keys (`80/tcp`), sorted.
    pub exposed_ports: Vec<String>,
    /// `Volumes` keys (container paths), sorted.
    pub volumes: Vec<String>,
}

/// What [`ImageStore::remove`] did, in Docker's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// References removed (normalised).
    pub untagged: Vec<String>,
    /// Image IDs and layer diff-ids whose content was deleted.
    pub deleted: Vec<String>,
}

pub(crate) use rswarm_proto::spec::reference::ImageRef;

/// Parses a reference with the spec library's one parser, adding `:latest`
/// when there is neither tag nor digest. A digest must be `sha256` (the
/// only algorithm the store keeps). The error names the image.
pub(crate) fn parse_reference(input: &str) -> Result<ImageRef, ImageError> {
    let invalid = |why: &str| {
        // The variant's own words start with "invalid reference format".
        ImageError::InvalidReference(match why {
            "invalid reference format" => format!("image \"{input}\""),
            _ => {
                let why = why
                    .strip_prefix("invalid reference format: ")
                    .unwrap_or(why);
                format!("{why} (image \"{input}\")")
            }
        })
    };
    let r = ImageRef::parse(input).map_err(|e| invalid(&e.0))?;
    if r.digest.as_deref().is_some_and(|d| sha256_hex(d).is_none()) {
        return Err(invalid("unsupported digest algorithm (only sha256)"));
    }
    Ok(r.with_default_tag())
}

/// Normalises a reference: `redis` → `docker.io/library/redis:latest`.
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    Ok(parse_reference(reference)?.to_string())
}

/// Image errors: one line, in Docker's words where Docker has them.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    /// The repository does not exist, or the registry wants credentials we
    /// do not have. `repository` is Docker's familiar name.
    #[error("pull access denied for {repository}, repository does not exist or may require 'docker login'")]
    AccessDenied { repository: String },
    /// The repository exists but has no such tag or digest.
    #[error("manifest for {reference} not found: manifest unknown")]
    NotFound { reference: String },
    /// The registry refused the configured credentials.
    #[error("pulling {reference}: unauthorized: registry {registry} refused the credentials of user '{user}' (incorrect username or password)")]
    Unauthorized {
        reference: String,
        registry: String,
        user: String,
    },
    #[error("pulling {reference}: registry {registry} unreachable: {detail}")]
    Unreachable {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { platform: String },
    /// Anything else the registry answered (server errors, digest mismatches,
    /// unsupported media types).
    #[error("pulling {reference}: {detail}")]
    Registry { reference: String, detail: String },
    /// A layer could not be unpacked.
    #[error("failed to register layer {digest}: {detail}")]
    Layer { digest: String, detail: String },
    /// A task's `--with-registry-auth` credentials could not be read.
    #[error("invalid registry credentials sent with the service: {0}")]
    BadCredentials(String),
    /// `rswarm login`: the registry refused the user name or password.
    #[error("login to {registry} failed: unauthorized: incorrect username or password")]
    LoginRefused { registry: String },
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// Removal refused (image in use, or referenced by several repositories).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid archive {path}: {detail}")]
    Archive { path: String, detail: String },
    /// The store itself (disk full, permissions, a corrupt index).
    #[error("image store: {0}")]
    Storage(String),
}

/// Keeps error details on one line.
pub(crate) fn one_line(s: impl AsRef<str>) -> String {
    let s = s.as_ref();
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !last_space && !out.is_empty() {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// The hex part of a `sha256:<64 hex>` digest, if that is what it is.
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// A suffix for temporary names, unique within this process and unlikely
/// across processes.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The OCI architecture name of this machine (`amd64`, `arm64`, …).
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        other => other,
    }
}
