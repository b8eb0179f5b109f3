//! The image store: the index of references and images, blobs and unpacked
//! layers on disk (layout in the module doc of `image`), pulls with
//! coalescing; removal and garbage collection are in `store::removal`.
//!
//! Concurrency: one `std::sync::Mutex` guards the in-memory index (never held
//! across an await); the index is written to disk under it. A pull or load
//! *pins* the digests and diff-ids it is about to use before looking at the
//! disk, and garbage collection (which runs under the same mutex) spares
//! pinned content and moves what it deletes out of the way with a rename
//! before removing it, so a pull never finds a layer that is being deleted.
//! Concurrent pulls of one reference share one task (the download goes on
//! even if the caller that started it gives up); concurrent unpacks of one
//! layer by different images wait for each other instead of both working.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

mod removal;
mod resolve;

use super::auth::PullAuth;
use super::pull::{LayerRef, Registry, Session};
use super::unpack;
use super::{parse_reference, ImageRef};
use super::{sha256_hex, ImageConfig, ImageError, LocalImage, RegistryConfig};

/// Layers downloaded and unpacked at once per pull (Docker's
/// `max-concurrent-downloads` default).
const CONCURRENT_LAYERS: usize = 3;

/// What `index.json` holds.
#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct Index {
    version: u32,
    /// Normalised reference → manifest digest.
    refs: BTreeMap<String, String>,
    /// Manifest digest → image.
    images: BTreeMap<String, ImageRecord>,
    /// Diff-id → bytes of file content, for unpacked layers.
    layers: BTreeMap<String, i64>,
    /// Reference → the digest it resolved to (an index's or the manifest's).
    resolved: BTreeMap<String, String>,
}

/// One image (one manifest).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(super) struct ImageRecord {
    /// Config digest: the image ID.
    pub id: String,
    /// Image indexes this manifest was reached through.
    #[serde(default)]
    pub index_digests: Vec<String>,
    /// Diff-ids, base first.
    pub layers: Vec<String>,
    pub size: i64,
    pub created: i64,
    pub config: ImageConfig,
}

struct State {
    index: Index,
    /// Digests and diff-ids in use by pulls and loads in progress.
    pins: HashMap<String, usize>,
}

type PullFuture = Shared<BoxFuture<'static, Result<LocalImage, ImageError>>>;

/// The node's images. Open once per root with [`ImageStore::open`].
pub struct ImageStore {
    root: PathBuf,
    registry: Registry,
    me: Weak<ImageStore>,
    state: Mutex<State>,
    inflight: Mutex<HashMap<String, PullFuture>>,
    layer_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Where pulls are counted, once the daemon gives its handles.
    metrics: std::sync::OnceLock<crate::metrics::AgentMetrics>,
}

/// Unpins on drop.
pub(super) struct Pins<'a> {
    store: &'a ImageStore,
    keys: Vec<String>,
}

impl Drop for Pins<'_> {
    fn drop(&mut self) {
        let mut st = self.store.lock();
        for k in &self.keys {
            if let Some(n) = st.pins.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    st.pins.remove(k);
                }
            }
        }
    }
}

/// Removes an in-flight pull's entry when its task ends, even by panic.
struct InflightGuard {
    store: Arc<ImageStore>,
    key: String,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.store.inflight.lock() {
            m.remove(&self.key);
        }
    }
}

fn storage(what: impl std::fmt::Display, e: impl std::fmt::Display) -> ImageError {
    ImageError::Storage(super::one_line(format!("{what}: {e}")))
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// `repo` of `repo:tag` / `repo@digest`.
fn repository_of(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match no_digest[slash..].rfind(':') {
        Some(i) => &no_digest[..slash + i],
        None => no_digest,
    }
}

/// Bytes of regular-file content under `dir` (used only when a layer's size
/// was not recorded).
fn dir_size(dir: &Path) -> i64 {
    let mut total: i64 = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total = total.saturating_add(i64::try_from(m.len()).unwrap_or(0));
            }
        }
    }
    total
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root` (`<data-dir>/images`):
    /// removes leftovers of interrupted work, drops images whose content is
    /// gone, and garbage-collects unreferenced blobs and layers.
    pub fn open(root: &Path, cfg: RegistryConfig) -> Result<Arc<ImageStore>, ImageError> {
        Self::open_inner(root, cfg, true)
    }

    /// A store that never falls back to Docker Hub (tests: no traffic may
    /// leave the machine).
    #[cfg(test)]
    pub(super) fn open_without_hub(
        root: &Path,
        cfg: RegistryConfig,
    ) -> Result<Arc<ImageStore>, ImageError> {
        Self::open_inner(root, cfg, false)
    }

    fn open_inner(
        root: &Path,
        cfg: RegistryConfig,
        hub_fallback: bool,
    ) -> Result<Arc<ImageStore>, ImageError> {
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| storage(p.display(), e))?;
        }
        Self::clean_leftovers(root);
        let index_path = root.join("index.json");
        let index: Index = match fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ImageError::Storage(format!(
                    "{} is corrupt ({e}); move it aside to start with an empty store",
                    index_path.display()
                ))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(storage(index_path.display(), e)),
        };
        let mut registry = Registry::new(&cfg)?;
        registry.hub_fallback = hub_fallback;
        let store = Arc::new_cyclic(|me| ImageStore {
            root: root.to_path_buf(),
            registry,
            me: me.clone(),
            state: Mutex::new(State {
                index,
                pins: HashMap::new(),
            }),
            inflight: Mutex::new(HashMap::new()),
            layer_locks: Mutex::new(HashMap::new()),
            metrics: std::sync::OnceLock::new(),
        });
        {
            let mut st = store.lock();
            store.drop_incomplete(&mut st);
            let (_, doomed) = store.gc(&mut st);
            store.persist(&st.index)?;
            drop(st);
            Self::remove_dirs(doomed);
        }
        Ok(store)
    }

    fn clean_leftovers(root: &Path) {
        for (dir, prefixes) in [
            (root.join("layers"), &[".tmp-", ".gc-"][..]),
            (root.join("blobs"), &[".tmp-"][..]),
            (root.join("tmp"), &[""][..]),
        ] {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if prefixes.iter().any(|p| name.starts_with(p)) {
                    let p = e.path();
                    let _ = if p.is_dir() && !p.is_symlink() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                }
            }
        }
    }

    /// Forgets images whose manifest, config or layers are missing on disk
    /// (so `ensure` pulls them again).
    fn drop_incomplete(&self, st: &mut State) {
        let broken: Vec<String> = st
            .index
            .images
            .iter()
            .filter(|(m, rec)| {
                !self.blob_path(m).is_file()
                    || !self.blob_path(&rec.id).is_file()
                    || rec.layers.iter().any(|l| !self.layer_path(l).is_dir())
            })
            .map(|(m, _)| m.clone())
            .collect();
        for m in broken {
            tracing::warn!(manifest = %m, "image content missing on disk; forgetting it");
            st.index.images.remove(&m);
            st.index.refs.retain(|_, v| *v != m);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the index as consistent as
        // any single step leaves it; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(sha256_hex(digest).unwrap_or("invalid"))
    }

    fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.layers_dir()
            .join(sha256_hex(diff_id).unwrap_or("invalid"))
    }

    /// Pins digests/diff-ids against garbage collection until dropped.
    pub(super) fn pin(&self, keys: Vec<String>) -> Pins<'_> {
        let mut st = self.lock();
        for k in &keys {
            *st.pins.entry(k.clone()).or_insert(0) += 1;
        }
        Pins { store: self, keys }
    }

    /// Stores a blob under its digest (verified), atomically.
    pub(super) fn write_blob(&self, bytes: &[u8], digest: &str) -> Result<(), ImageError> {
        let got = super::sha256_digest(bytes);
        if got != digest {
            return Err(ImageError::Storage(format!(
                "blob digest mismatch: expected {digest}, got {got}"
            )));
        }
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        let tmp = self.root.join("blobs").join(format!(
            ".tmp-{}-{}",
            sha256_hex(digest).unwrap_or("x"),
            super::unique_suffix()
        ));
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(storage(format!("writing blob {digest}"), e));
        }
        unpack::sync_dir(&self.root.join("blobs/sha256"));
        Ok(())
    }

    fn persist(&self, index: &Index) -> Result<(), ImageError> {
        let mut index = index.clone();
        index.version = 1;
        let refs = index.refs.clone();
        index.resolved.retain(|k, _| refs.contains_key(k));
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| storage("encoding index", e))?;
        let path = self.root.join("index.json");
        let tmp = self.root.join("index.json.tmp");
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| storage(path.display(), e))?;
        unpack::sync_dir(&self.root);
        Ok(())
    }

    /// The size of an unpacked layer, if it is there.
    pub(super) fn layer_present(&self, diff_id: &str) -> Option<i64> {
        let p = self.layer_path(diff_id);
        if !p.is_dir() {
            return None;
        }
        if let Some(size) = self.lock().index.layers.get(diff_id) {
            return Some(*size);
        }
        let size = dir_size(&p);
        self.lock().index.layers.insert(diff_id.to_string(), size);
        Some(size)
    }

    /// Notes an unpacked layer's size (persisted with the next index write).
    pub(super) fn note_layer(&self, diff_id: &str, size: i64) {
        self.lock().index.layers.insert(diff_id.to_string(), size);
    }

    fn local(&self, idx: &Index, reference: &str, manifest: &str, rec: &ImageRecord) -> LocalImage {
        let digest = match parse_reference(reference).ok().and_then(|r| r.digest) {
            Some(d) => d,
            None => idx
                .resolved
                .get(reference)
                .cloned()
                .unwrap_or_else(|| manifest.to_string()),
        };
        LocalImage {
            reference: reference.to_string(),
            id: rec.id.clone(),
            digest,
            size: rec.size,
            created: rec.created,
            layers: rec.layers.iter().map(|l| self.layer_path(l)).collect(),
            config: rec.config.clone(),
        }
    }

    /// (reference to show, manifest digest) for a reference, a digest
    /// reference matching stored content, or (with `ids`) an image ID or
    /// unique ID prefix.
    fn lookup(&self, st: &State, input: &str, ids: bool) -> Option<(String, String)> {
        if let Ok(r) = parse_reference(input) {
            let key = r.to_string();
            if let Some(m) = st.index.refs.get(&key) {
                return Some((key, m.clone()));
            }
            if let Some(d) = &r.digest {
                if let Some((m, _)) = st
                    .index
                    .images
                    .iter()
                    .find(|(m, rec)| *m == d || rec.index_digests.contains(d))
                {
                    return Some((key, m.clone()));
                }
            }
        }
        if !ids {
            return None;
        }
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        if hex.is_empty()
            || hex.len() > 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let ids: BTreeSet<&str> = st
            .index
            .images
            .values()
            .filter(|rec| rec.id.trim_start_matches("sha256:").starts_with(hex))
            .map(|rec| rec.id.as_str())
            .collect();
        let [id] = ids.into_iter().collect::<Vec<_>>()[..] else {
            return None;
        };
        // Prefer a tagged record of that image.
        for (k, m) in &st.index.refs {
            if st.index.images.get(m).is_some_and(|rec| rec.id == id) {
                return Some((k.clone(), m.clone()));
            }
        }
        st.index
            .images
            .iter()
            .find(|(_, rec)| rec.id == id)
            .map(|(m, _)| (String::new(), m.clone()))
    }

    /// The local image for a reference (or image ID), if present.
    pub fn get(&self, reference: &str) -> Option<LocalImage> {
        let st = self.lock();
        let (key, m) = self.lookup(&st, reference, true)?;
        let rec = st.index.images.get(&m)?;
        Some(self.local(&st.index, &key, &m, rec))
    }

    /// All images: one entry per reference, plus dangling images (empty
    /// reference). Sorted by reference.
    pub fn list(&self) -> Vec<LocalImage> {
        let st = self.lock();
        let mut out: Vec<LocalImage> = st
            .index
            .refs
            .iter()
            .filter_map(|(k, m)| {
                st.index
                    .images
                    .get(m)
                    .map(|rec| self.local(&st.index, k, m, rec))
            })
            .collect();
        let referenced: HashSet<&String> = st.index.refs.values().collect();
        for (m, rec) in &st.index.images {
            if !referenced.contains(m) {
                out.push(self.local(&st.index, "", m, rec));
            }
        }
        out
    }

    /// The local copy if there is one (a digest reference matches any stored
    /// image with that manifest or index digest; a tag is used as it is, not
    /// checked against the registry), else [`ImageStore::pull`].
    pub async fn ensure(&self, reference: &str) -> Result<LocalImage, ImageError> {
        self.ensure_with(reference, None).await
    }

    /// [`ImageStore::ensure`] with credentials sent with the task (see
    /// [`PullAuth`]) for the pull, if one is needed.
    pub async fn ensure_with(
        &self,
        reference: &str,
        auth: Option<&PullAuth>,
    ) -> Result<LocalImage, ImageError> {
        let r = parse_reference(reference)?;
        {
            let mut st = self.lock();
            if let Some((key, m)) = self.lookup(&st, reference, false) {
                if let Some(rec) = st.index.images.get(&m).cloned() {
                    if !st.index.refs.contains_key(&key) {
                        // A digest reference found by content: name it.
                        st.index.refs.insert(key.clone(), m.clone());
                        self.persist(&st.index)?;
                    }
                    return Ok(self.local(&st.index, &key, &m, &rec));
                }
            }
        }
        self.pull_with(&r.to_string(), auth).await
    }

    /// Counts every download from now on into `metrics` (the first call wins).
    pub fn set_metrics(&self, metrics: crate::metrics::AgentMetrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Pulls from the registry (always asking it, even for a tag present
    /// locally). Concurrent pulls of one reference share one download.
    pub async fn pull(&self, reference: &str) -> Result<LocalImage, ImageError> {
        self.pull_with(reference, None).await
    }

    /// [`ImageStore::pull`] with credentials sent with the task; pulls with
    /// other credentials do not share a download.
    pub async fn pull_with(
        &self,
        reference: &str,
        auth: Option<&PullAuth>,
    ) -> Result<LocalImage, ImageError> {
        let r = parse_reference(reference)?;
        let key = match auth {
            Some(a) => format!("{r}\0{}", a.pull_key()),
            None => r.to_string(),
        };
        let auth = auth.cloned();
        let fut = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let this = self
                        .me
                        .upgrade()
                        .ok_or_else(|| ImageError::Storage("image store is closed".into()))?;
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let shared: PullFuture = rx
                        .map(|res| {
                            res.unwrap_or_else(|_| {
                                Err(ImageError::Storage(
                                    "pull task ended without a result".into(),
                                ))
                            })
                        })
                        .boxed()
                        .shared();
                    inflight.insert(key.clone(), shared.clone());
                    let guard = InflightGuard {
                        store: this.clone(),
                        key: key.clone(),
                    };
                    tokio::spawn(async move {
                        let began = std::time::Instant::now();
                        let res = this.pull_endpoints(&r, auth.as_ref()).await;
                        if let Some(m) = this.metrics.get() {
                            m.image_pulled(res.is_ok(), began.elapsed());
                        }
                        drop(guard);
                        let _ = tx.send(res);
                    });
                    shared
                }
            }
        };
        fut.await
    }

    /// `rswarm login`: checks `username` and `password` against the
    /// registry at `server` (see the `auth` module); nothing is kept.
    pub async fn login(
        &self,
        server: &str,
        username: &str,
        password: &str,
    ) -> Result<(), ImageError> {
        let host = super::pull::auth_key(server);
        // Any repository: the check is about the registry.
        let probe = if host == "docker.io" {
            "docker.io/library/hello-world:latest".to_string()
        } else {
            format!("{host}/rswarm-login:latest")
        };
        let r = parse_reference(&probe)?;
        let auth = PullAuth {
            server: host.clone(),
            username: username.to_string(),
            password: password.to_string(),
        };
        let refused = |e: ImageError| match e {
            ImageError::Unauthorized { .. } | ImageError::AccessDenied { .. } => {
                ImageError::LoginRefused {
                    registry: host.clone(),
                }
            }
            other => other,
        };
        let endpoint = self
            .registry
            .endpoints(&r)
            .into_iter()
            .rfind(|ep| !ep.mirror)
            .ok_or_else(|| ImageError::Storage("no registry endpoint".into()))?;
        let session = self
            .registry
            .session(&r, &endpoint, Some(&auth))
            .await
            .map_err(refused)?;
        session.verify_login().await
    }

    async fn pull_endpoints(
        &self,
        r: &ImageRef,
        auth: Option<&PullAuth>,
    ) -> Result<LocalImage, ImageError> {
        let endpoints = self.registry.endpoints(r);
        let mut last = None;
        for (i, ep) in endpoints.iter().enumerate() {
            let res = match self.registry.session(r, ep, auth).await {
                Ok(s) => self.pull_via(r, &s).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(img) => return Ok(img),
                Err(e) => {
                    if i + 1 < endpoints.len() {
                        tracing::warn!(reference = %r, endpoint = %ep.host, error = %e, "pull from mirror failed; trying the next endpoint");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ImageError::Storage("no registry endpoint".into())))
    }

    async fn pull_via(&self, r: &ImageRef, s: &Session<'_>) -> Result<LocalImage, ImageError> {
        let f = s.fetch().await?;
        let mut keys = vec![f.manifest.1.clone(), f.config.1.clone()];
        if let Some((_, d)) = &f.index {
            keys.push(d.clone());
        }
        keys.extend(f.layers.iter().map(|l| l.diff_id.clone()));
        let _pins = self.pin(keys);
        let mut blobs = vec![f.manifest.clone(), f.config.clone()];
        blobs.extend(f.index.clone());
        self.blocking(move |store| {
            blobs
                .iter()
                .try_for_each(|(bytes, digest)| store.write_blob(bytes, digest))
        })
        .await??;
        let sizes: Vec<i64> = futures::stream::iter(f.layers.iter().cloned())
            .map(|l| self.ensure_layer(s, l))
            .buffered(CONCURRENT_LAYERS)
            .try_collect()
            .await?;
        let rec = ImageRecord {
            id: f.config.1.clone(),
            index_digests: f.index.iter().map(|(_, d)| d.clone()).collect(),
            layers: f.parsed.diff_ids.clone(),
            size: sizes.iter().sum(),
            created: f.parsed.created,
            config: f.parsed.config.clone(),
        };
        let resolved = f.index.as_ref().map_or(&f.manifest.1, |(_, d)| d).clone();
        let manifest = f.manifest.1.clone();
        let reference = r.to_string();
        let mut images = self
            .blocking(move |store| store.record(&manifest, rec, &[reference], &resolved))
            .await??;
        images
            .pop()
            .ok_or_else(|| ImageError::Storage("image not recorded".into()))
    }

    /// Runs blocking store work (fsyncs) off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ImageStore) -> T + Send + 'static,
    ) -> Result<T, ImageError> {
        let this = self
            .me
            .upgrade()
            .ok_or_else(|| ImageError::Storage("image store is closed".into()))?;
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| storage("store task", e))
    }

    /// Makes sure a layer is unpacked, downloading it if not.
    async fn ensure_layer(&self, s: &Session<'_>, l: LayerRef) -> Result<i64, ImageError> {
        if let Some(size) = self.layer_present(&l.diff_id) {
            return Ok(size);
        }
        let lock = {
            let mut locks = self.layer_locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(l.diff_id.clone()).or_default().clone()
        };
        let result = async {
            let _held = lock.lock().await;
            if let Some(size) = self.layer_present(&l.diff_id) {
                return Ok(size);
            }
            let stream = s.blob_stream(&l.digest).await?;
            let reader =
                tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
            let layers_dir = self.layers_dir();
            let diff_id = l.diff_id.clone();
            let size = tokio::task::spawn_blocking(move || {
                let mut reader = reader;
                unpack::install_layer(&layers_dir, &diff_id, &mut reader)
            })
            .await
            .map_err(|e| storage("unpack task", e))?
            .map_err(|detail| ImageError::Layer {
                digest: l.digest.clone(),
                detail: super::one_line(detail),
            })?;
            self.note_layer(&l.diff_id, size);
            Ok(size)
        }
        .await;
        let mut locks = self.layer_locks.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&l.diff_id);
        }
        result
    }

    /// Records an image under `refs`, which resolved to digest `resolved`
    /// (its blobs and layers are in place and pinned), and returns it under
    /// each reference (or once, untagged).
    pub(super) fn record(
        &self,
        manifest: &str,
        mut rec: ImageRecord,
        refs: &[String],
        resolved: &str,
    ) -> Result<Vec<LocalImage>, ImageError> {
        let mut st = self.lock();
        if let Some(old) = st.index.images.get(manifest) {
            for d in &old.index_digests {
                if !rec.index_digests.contains(d) {
                    rec.index_digests.push(d.clone());
                }
            }
        }
        for l in &rec.layers {
            if !st.index.layers.contains_key(l) {
                st.index
                    .layers
                    .insert(l.clone(), dir_size(&self.layer_path(l)));
            }
        }
        st.index.images.insert(manifest.to_string(), rec.clone());
        for k in refs {
            st.index.refs.insert(k.clone(), manifest.to_string());
            st.index.resolved.insert(k.clone(), resolved.to_string());
        }
        self.persist(&st.index)?;
        let mut out: Vec<LocalImage> = refs
            .iter()
            .map(|k| self.local(&st.index, k, manifest, &rec))
            .collect();
        if out.is_empty() {
            let existing = st
                .index
                .refs
                .iter()
                .find(|(_, m)| *m == manifest)
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            out.push(self.local(&st.index, &existing, manifest, &rec));
        }
        Ok(out)
    }
}
