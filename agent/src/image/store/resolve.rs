//! Resolving a tag to the digest a registry has for it, without pulling:
//! what `stack deploy --resolve-image always|changed` asks a node for
//! (dockerd's `QueryRegistry`), so every node then runs the same image.
//!
//! The registry is reached with the rules of a pull (mirrors for `docker.io`,
//! insecure registries, configured credentials, and those sent with the
//! request for the registry they name), and only the top manifest is read:
//! its digest is the image index's for a multi-platform image, the
//! manifest's otherwise — what [`LocalImage::digest`](crate::image::LocalImage)
//! records for a pull, so `repo:tag@digest` names the same content on every
//! node. The local store is not consulted: an image that only exists here
//! (`image load`) has no registry digest, which the caller reports.

use super::ImageStore;
use crate::image::PullAuth;
use crate::image::{parse_reference, ImageError};

impl ImageStore {
    /// The `sha256:…` digest `reference`'s tag has on its registry; a
    /// reference that carries a digest answers that digest without asking.
    /// Errors are a pull's (access denied, manifest unknown, unreachable).
    pub async fn resolve(
        &self,
        reference: &str,
        auth: Option<&PullAuth>,
    ) -> Result<String, ImageError> {
        let r = parse_reference(reference)?;
        if let Some(d) = &r.digest {
            return Ok(d.clone());
        }
        let target = r.target().to_string();
        let endpoints = self.registry.endpoints(&r);
        let mut last = None;
        for (i, ep) in endpoints.iter().enumerate() {
            let res = match self.registry.session(&r, ep, auth).await {
                Ok(s) => match s.manifest(&target).await {
                    Err(ImageError::NotFound { .. }) if s.repository_missing().await => {
                        Err(ImageError::AccessDenied {
                            repository: r.familiar_name(),
                        })
                    }
                    other => other.map(|(_, digest)| digest),
                },
                Err(e) => Err(e),
            };
            match res {
                Ok(digest) => return Ok(digest),
                Err(e) => {
                    if i + 1 < endpoints.len() {
                        tracing::debug!(reference = %r, endpoint = %ep.host, error = %e, "resolving on a mirror failed; trying the next endpoint");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ImageError::Storage("no registry endpoint".into())))
    }
}
