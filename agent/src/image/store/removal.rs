//! Removing images: `image rm` (a reference, or every reference of an
//! image ID, with Docker's conflicts and `force`), `image prune`, and the
//! garbage collection both end in, which deletes blobs and layers no image
//! references any more (sparing what a pull has pinned; see the store's
//! docs).

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::PathBuf;

use super::{repository_of, short_id, ImageStore, State};
use crate::image::parse_reference;
use crate::image::{sha256_hex, unique_suffix, ImageError, LocalImage, RemoveReport};

impl ImageStore {
    /// Removes a reference (or, given an image ID, every reference to that
    /// image) and, once an image has no reference left, its content.
    ///
    /// Refused with a conflict when the last reference of an image that
    /// `in_use` says is used would go, or when an ID names an image in use or
    /// tagged in several repositories; `force` overrides both, but an image in
    /// use is then only untagged (kept dangling: its layers are under a task)
    /// until removed again by ID or pruned. Blocking (deletes files): call
    /// it from `spawn_blocking` in async code.
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &dyn Fn(&LocalImage) -> bool,
    ) -> Result<RemoveReport, ImageError> {
        enum Target {
            Ref(String),
            Id(String),
        }
        let (target, affected) = {
            let st = self.lock();
            let by_ref = parse_reference(reference)
                .ok()
                .map(|r| r.to_string())
                .filter(|k| st.index.refs.contains_key(k));
            match by_ref {
                Some(key) => {
                    let m = st
                        .index
                        .refs
                        .get(&key)
                        .cloned()
                        .ok_or_else(|| ImageError::NoSuchImage(reference.to_string()))?;
                    let affected: Vec<LocalImage> = st
                        .index
                        .images
                        .get(&m)
                        .map(|rec| self.local(&st.index, &key, &m, rec))
                        .into_iter()
                        .collect();
                    (Target::Ref(key), affected)
                }
                None => {
                    let (shown, m) = self
                        .lookup(&st, reference, true)
                        .ok_or_else(|| ImageError::NoSuchImage(reference.to_string()))?;
                    let rec = st
                        .index
                        .images
                        .get(&m)
                        .ok_or_else(|| ImageError::NoSuchImage(reference.to_string()))?;
                    let id = rec.id.clone();
                    let affected = st
                        .index
                        .images
                        .iter()
                        .filter(|(_, r)| r.id == id)
                        .map(|(mm, r)| {
                            self.local(&st.index, if *mm == m { &shown } else { "" }, mm, r)
                        })
                        .collect();
                    (Target::Id(id), affected)
                }
            }
        };
        // Called without the lock: the callback may look at the store.
        let used = affected.iter().any(in_use);

        let mut st = self.lock();
        let mut report = RemoveReport::default();
        let mut emptied: Vec<String> = Vec::new();
        match target {
            Target::Ref(key) => {
                let m = st
                    .index
                    .refs
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| ImageError::NoSuchImage(reference.to_string()))?;
                let id = st
                    .index
                    .images
                    .get(&m)
                    .map(|r| r.id.clone())
                    .unwrap_or_default();
                let other_names = st
                    .index
                    .refs
                    .iter()
                    .filter(|(k, mm)| {
                        **k != key && st.index.images.get(*mm).is_some_and(|r| r.id == id)
                    })
                    .count();
                if other_names == 0 && used && !force {
                    return Err(ImageError::Conflict(format!(
                        "unable to remove repository reference \"{reference}\" (must force) - image {} is being used by a task",
                        short_id(&id)
                    )));
                }
                st.index.refs.remove(&key);
                report.untagged.push(key);
                if !used {
                    emptied.push(m);
                }
            }
            Target::Id(id) => {
                let names: Vec<String> = st
                    .index
                    .refs
                    .iter()
                    .filter(|(_, m)| st.index.images.get(*m).is_some_and(|r| r.id == id))
                    .map(|(k, _)| k.clone())
                    .collect();
                let repos: BTreeSet<&str> = names.iter().map(|k| repository_of(k)).collect();
                if repos.len() > 1 && !force {
                    return Err(ImageError::Conflict(format!(
                        "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short_id(&id)
                    )));
                }
                if used && !force {
                    return Err(ImageError::Conflict(format!(
                        "unable to delete {} (must be forced) - image is being used by a task",
                        short_id(&id)
                    )));
                }
                for k in names {
                    st.index.refs.remove(&k);
                    report.untagged.push(k);
                }
                if !used {
                    emptied.extend(
                        st.index
                            .images
                            .iter()
                            .filter(|(_, r)| r.id == id)
                            .map(|(m, _)| m.clone()),
                    );
                }
            }
        }
        let doomed = self.delete_unreferenced(&mut st, &emptied, &mut report);
        self.persist(&st.index)?;
        drop(st);
        Self::remove_dirs(doomed);
        Ok(report)
    }

    /// Removes dangling images (no reference) that are not in use, and their
    /// content.
    pub fn prune(&self, in_use: &dyn Fn(&LocalImage) -> bool) -> Result<RemoveReport, ImageError> {
        let dangling: Vec<LocalImage> = self
            .list()
            .into_iter()
            .filter(|i| i.reference.is_empty())
            .collect();
        let unused: HashSet<String> = dangling
            .iter()
            .filter(|i| !in_use(i))
            .map(|i| i.id.clone())
            .collect();
        let mut st = self.lock();
        let referenced: HashSet<String> = st.index.refs.values().cloned().collect();
        let emptied: Vec<String> = st
            .index
            .images
            .iter()
            .filter(|(m, r)| !referenced.contains(*m) && unused.contains(&r.id))
            .map(|(m, _)| m.clone())
            .collect();
        let mut report = RemoveReport::default();
        let doomed = self.delete_unreferenced(&mut st, &emptied, &mut report);
        self.persist(&st.index)?;
        drop(st);
        Self::remove_dirs(doomed);
        Ok(report)
    }

    /// Deletes the given image records if nothing refers to them any more,
    /// then garbage-collects. Returns directories to remove after unlocking.
    fn delete_unreferenced(
        &self,
        st: &mut State,
        manifests: &[String],
        report: &mut RemoveReport,
    ) -> Vec<PathBuf> {
        for m in manifests {
            if st.index.refs.values().any(|v| v == m) {
                continue;
            }
            if let Some(rec) = st.index.images.remove(m) {
                if !st.index.images.values().any(|r| r.id == rec.id)
                    && !report.deleted.contains(&rec.id)
                {
                    report.deleted.push(rec.id);
                }
            }
        }
        let (layers, doomed) = self.gc(st);
        report.deleted.extend(layers);
        doomed
    }

    /// Deletes blobs and layers no image record or pin refers to. Layer
    /// directories are renamed to `layers/.gc-*` here (under the lock) and
    /// returned for removal. Returns (deleted diff-ids, directories).
    pub(super) fn gc(&self, st: &mut State) -> (Vec<String>, Vec<PathBuf>) {
        let mut keep: HashSet<String> = st.pins.keys().cloned().collect();
        for (m, rec) in &st.index.images {
            keep.insert(m.clone());
            keep.insert(rec.id.clone());
            keep.extend(rec.index_digests.iter().cloned());
            keep.extend(rec.layers.iter().cloned());
        }
        if let Ok(rd) = fs::read_dir(self.root.join("blobs/sha256")) {
            for e in rd.flatten() {
                let digest = format!("sha256:{}", e.file_name().to_string_lossy());
                if sha256_hex(&digest).is_some() && !keep.contains(&digest) {
                    if let Err(err) = fs::remove_file(e.path()) {
                        tracing::warn!(blob = %digest, error = %err, "could not delete blob");
                    }
                }
            }
        }
        let mut deleted = Vec::new();
        let mut doomed = Vec::new();
        if let Ok(rd) = fs::read_dir(self.layers_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let diff_id = format!("sha256:{name}");
                if sha256_hex(&diff_id).is_none() || keep.contains(&diff_id) {
                    continue;
                }
                let gone = self
                    .layers_dir()
                    .join(format!(".gc-{name}-{}", unique_suffix()));
                match fs::rename(e.path(), &gone) {
                    Ok(()) => {
                        doomed.push(gone);
                        deleted.push(diff_id);
                    }
                    Err(err) => {
                        tracing::warn!(layer = %diff_id, error = %err, "could not delete layer")
                    }
                }
            }
        }
        let layers_dir = self.layers_dir();
        st.index.layers.retain(|l, _| {
            keep.contains(l) && layers_dir.join(sha256_hex(l).unwrap_or("x")).is_dir()
        });
        (deleted, doomed)
    }

    pub(super) fn remove_dirs(dirs: Vec<PathBuf>) {
        for d in dirs {
            if let Err(e) = fs::remove_dir_all(&d) {
                tracing::warn!(dir = %d.display(), error = %e, "could not remove deleted layer");
            }
        }
    }
}
