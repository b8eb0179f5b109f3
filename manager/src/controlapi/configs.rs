//! Control calls on configs: `config create | inspect | ls | rm`. A config's
//! value is not secret (Docker shows it in `config inspect`): it is checked
//! (`rswarm_proto::spec::secrets`) and stored as given. Lookup, names and the
//! in-use rule are `stored_files`'.

use rswarm_proto::control::configs_server::Configs;
use rswarm_proto::control::*;
use rswarm_proto::spec::secrets::{check_spec, Kind};
use rswarm_proto::types::{Annotations, Config, ConfigSpec, ContainerSpec};
use rswarm_raft::Store;
use tonic::{Request, Response, Status};

use super::stored_files::{self, StoredFile};
use crate::error::ManagerError;
use crate::objects;

impl StoredFile for Config {
    const WORD: Kind = Kind::Config;
    const NAME_KIND: &'static str = objects::KIND_CONFIG_NAME;
    fn annotations(&self) -> Option<&Annotations> {
        self.spec.as_ref().and_then(|s| s.annotations.as_ref())
    }
    fn referenced(c: &ContainerSpec) -> Vec<&str> {
        c.configs.iter().map(|r| r.config_id.as_str()).collect()
    }
}

/// The Configs service of one manager.
#[derive(Clone)]
pub struct ConfigsApi {
    store: Store,
}

impl ConfigsApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Creates a config (or, with `reuse_if_same`, answers the one of that name
/// when its spec is the same).
pub(crate) async fn create(
    store: &Store,
    spec: ConfigSpec,
    reuse_if_same: bool,
) -> Result<Config, ManagerError> {
    check_spec(Kind::Config, spec.annotations.as_ref(), &spec.data)
        .map_err(|e| ManagerError::InvalidArgument(e.0))?;
    let config = Config {
        id: objects::new_id(),
        meta: None,
        spec: Some(spec.clone()),
    };
    let same = |old: &Config| -> Result<Option<Config>, ManagerError> {
        if !reuse_if_same {
            return Ok(None);
        }
        if old.spec.as_ref() == Some(&spec) {
            Ok(Some(old.clone()))
        } else {
            Err(ManagerError::FailedPrecondition(format!(
                "config {} exists with another value or labels: a config cannot be updated in place; remove it first (its services too) or use a new name",
                stored_files::name(old)
            )))
        }
    };
    stored_files::create(store, config, same).await
}

#[tonic::async_trait]
impl Configs for ConfigsApi {
    async fn create_config(
        &self,
        req: Request<CreateConfigRequest>,
    ) -> Result<Response<Config>, Status> {
        let req = req.into_inner();
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("create without a config spec"))?;
        Ok(Response::new(
            create(&self.store, spec, req.reuse_if_same).await?,
        ))
    }

    async fn get_config(&self, req: Request<GetConfigRequest>) -> Result<Response<Config>, Status> {
        Ok(Response::new(stored_files::resolve::<Config>(
            &self.store,
            &req.into_inner().config_ref,
        )?))
    }

    async fn list_configs(
        &self,
        _req: Request<ListConfigsRequest>,
    ) -> Result<Response<ListConfigsResponse>, Status> {
        Ok(Response::new(ListConfigsResponse {
            configs: stored_files::list::<Config>(&self.store)?,
        }))
    }

    async fn remove_config(
        &self,
        req: Request<RemoveConfigRequest>,
    ) -> Result<Response<RemoveConfigResponse>, Status> {
        stored_files::remove::<Config>(&self.store, &req.into_inner().config_ref).await?;
        Ok(Response::new(RemoveConfigResponse {}))
    }
}
