//! The local Images API (`rswarm image ls|pull|rm|load`, `rswarm login`'s
//! check, and the registry digest `stack deploy --resolve-image` pins):
//! this node's image store, like `docker image` talks to its own dockerd.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rswarm_agent::image::{ImageError, ImageStore, LocalImage, PullAuth};
use rswarm_proto::daemon::images_server::Images;
use rswarm_proto::daemon::*;
use rswarm_proto::spec::bounds::MAX_REGISTRY_AUTH_BYTES;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub(crate) struct LocalImages {
    pub store: Arc<ImageStore>,
    pub in_use: Arc<Mutex<HashMap<String, String>>>,
}

fn summary(i: &LocalImage) -> ImageSummary {
    ImageSummary {
        reference: i.reference.clone(),
        id: i.id.clone(),
        digest: i.digest.clone(),
        size: i.size,
        created: i.created,
    }
}

#[tonic::async_trait]
impl Images for LocalImages {
    async fn list_images(
        &self,
        _req: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        Ok(Response::new(ListImagesResponse {
            images: self.store.list().iter().map(summary).collect(),
        }))
    }

    async fn pull_image(
        &self,
        req: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let img = self
            .store
            .pull(&req.into_inner().reference)
            .await
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(PullImageResponse {
            image: Some(summary(&img)),
        }))
    }

    async fn remove_image(
        &self,
        req: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let req = req.into_inner();
        let used: Vec<String> = self
            .in_use
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let report = self
            .store
            .remove(&req.reference, req.force, &|img: &LocalImage| {
                used.contains(&img.reference)
            })
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(RemoveImageResponse {
            untagged: report.untagged,
            deleted: report.deleted,
        }))
    }

    /// `rswarm login`: checked against the registry by this node's image
    /// store, with the rules of its pulls; nothing is stored here.
    async fn registry_login(
        &self,
        req: Request<RegistryLoginRequest>,
    ) -> Result<Response<RegistryLoginResponse>, Status> {
        let req = req.into_inner();
        self.store
            .login(&req.server, &req.username, &req.password)
            .await
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(RegistryLoginResponse {
            status: "Login Succeeded".into(),
        }))
    }

    /// `stack deploy --resolve-image`: the digest the reference's tag has
    /// on its registry, asked with the rules of this node's pulls and the
    /// credentials sent (for the registry they name); nothing is pulled.
    async fn resolve_image(
        &self,
        req: Request<ResolveImageRequest>,
    ) -> Result<Response<ResolveImageResponse>, Status> {
        let req = req.into_inner();
        if req.registry_auth.len() > MAX_REGISTRY_AUTH_BYTES {
            return Err(Status::invalid_argument(format!(
                "registry credentials are {} bytes, over the limit of {MAX_REGISTRY_AUTH_BYTES}",
                req.registry_auth.len()
            )));
        }
        let auth = match req.registry_auth.as_str() {
            "" => None,
            encoded => Some(
                PullAuth::decode(encoded).map_err(|e| Status::invalid_argument(e.to_string()))?,
            ),
        };
        let digest = self
            .store
            .resolve(&req.reference, auth.as_ref())
            .await
            .map_err(|e| match e {
                ImageError::InvalidReference(_) => Status::invalid_argument(e.to_string()),
                _ => Status::failed_precondition(e.to_string()),
            })?;
        Ok(Response::new(ResolveImageResponse { digest }))
    }

    async fn load_image(
        &self,
        req: Request<LoadImageRequest>,
    ) -> Result<Response<LoadImageResponse>, Status> {
        let path = std::path::PathBuf::from(req.into_inner().path);
        let store = self.store.clone();
        let images = tokio::task::spawn_blocking(move || store.load(&path))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(LoadImageResponse {
            images: images.iter().map(summary).collect(),
        }))
    }
}
