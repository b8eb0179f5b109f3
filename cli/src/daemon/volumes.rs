//! The local Volumes API (`rswarm volume create|ls|inspect|rm|prune`): this
//! node's volume store (`rswarm_agent::volumes`), like `docker volume` talks
//! to its own dockerd. Which volumes are in use comes from this node's
//! containers.

use std::collections::HashMap;
use std::sync::Arc;

use rswarm_agent::runtime::Runtime;
use rswarm_agent::volumes::{Volume, VolumeError, VolumeStore};
use rswarm_proto::daemon::volumes_server::Volumes;
use rswarm_proto::daemon::*;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub(crate) struct LocalVolumes {
    pub store: Arc<VolumeStore>,
    pub runtime: Arc<Runtime>,
}

fn info(v: Volume, users: &HashMap<String, Vec<String>>) -> VolumeInfo {
    VolumeInfo {
        used_by: users.get(&v.name).cloned().unwrap_or_default(),
        name: v.name,
        driver: v.driver,
        mountpoint: v.mountpoint.to_string_lossy().into_owned(),
        labels: v.labels.into_iter().collect(),
        scope: "local".into(),
        created_at: v.created_at,
    }
}

fn status(e: VolumeError) -> Status {
    match e {
        VolumeError::NotFound(_) => Status::not_found(e.to_string()),
        VolumeError::InvalidName(_) | VolumeError::Unsupported(_) => {
            Status::invalid_argument(e.to_string())
        }
        VolumeError::InUse { .. } | VolumeError::ExternalMissing(_) => {
            Status::failed_precondition(e.to_string())
        }
        VolumeError::Io { .. } => Status::internal(e.to_string()),
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VolumeError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)
}

#[tonic::async_trait]
impl Volumes for LocalVolumes {
    async fn volume_create(
        &self,
        req: Request<VolumeCreateRequest>,
    ) -> Result<Response<VolumeInfo>, Status> {
        let r = req.into_inner();
        let store = self.store.clone();
        let v = blocking(move || {
            let name = (!r.name.is_empty()).then_some(r.name.as_str());
            store.create(
                name,
                &r.driver,
                &r.labels.into_iter().collect(),
                &r.driver_opts.into_iter().collect(),
            )
        })
        .await?;
        Ok(Response::new(info(v, &HashMap::new())))
    }

    async fn volume_list(
        &self,
        _req: Request<VolumeListRequest>,
    ) -> Result<Response<VolumeListResponse>, Status> {
        let (store, rt) = (self.store.clone(), self.runtime.clone());
        let volumes = blocking(move || {
            let users = store.users(&rt);
            Ok(store.list()?.into_iter().map(|v| info(v, &users)).collect())
        })
        .await?;
        Ok(Response::new(VolumeListResponse { volumes }))
    }

    async fn volume_inspect(
        &self,
        req: Request<VolumeInspectRequest>,
    ) -> Result<Response<VolumeInfo>, Status> {
        let name = req.into_inner().name;
        let (store, rt) = (self.store.clone(), self.runtime.clone());
        let v = blocking(move || {
            let v = store.get(&name)?;
            Ok(info(v, &store.users(&rt)))
        })
        .await?;
        Ok(Response::new(v))
    }

    async fn volume_remove(
        &self,
        req: Request<VolumeRemoveRequest>,
    ) -> Result<Response<VolumeRemoveResponse>, Status> {
        let r = req.into_inner();
        let (store, rt) = (self.store.clone(), self.runtime.clone());
        blocking(move || store.remove(&r.name, r.force, &rt)).await?;
        Ok(Response::new(VolumeRemoveResponse {}))
    }

    async fn volume_prune(
        &self,
        _req: Request<VolumePruneRequest>,
    ) -> Result<Response<VolumePruneResponse>, Status> {
        let (store, rt) = (self.store.clone(), self.runtime.clone());
        let (deleted, reclaimed_bytes) = blocking(move || store.prune(&rt)).await?;
        Ok(Response::new(VolumePruneResponse {
            deleted,
            reclaimed_bytes,
        }))
    }
}
