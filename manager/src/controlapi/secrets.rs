//! Control calls on secrets: `secret create | inspect | ls | rm`. A value is
//! checked (`rswarm_proto::spec::secrets`), sealed with the cluster's secrets
//! key (`crate::secrets`) and stored sealed; no answer ever carries it, nor
//! any error. Lookup, names and the in-use rule are `stored_files`'.

use rswarm_proto::control::secrets_server::Secrets;
use rswarm_proto::control::*;
use rswarm_proto::spec::secrets::{check_spec, Kind};
use rswarm_proto::types::{Annotations, ContainerSpec, Secret, SecretSpec};
use rswarm_raft::Store;
use tonic::{Request, Response, Status};

use super::stored_files::{self, StoredFile};
use crate::error::ManagerError;
use crate::{objects, secrets};

impl StoredFile for Secret {
    const WORD: Kind = Kind::Secret;
    const NAME_KIND: &'static str = objects::KIND_SECRET_NAME;
    fn annotations(&self) -> Option<&Annotations> {
        self.spec.as_ref().and_then(|s| s.annotations.as_ref())
    }
    fn referenced(c: &ContainerSpec) -> Vec<&str> {
        c.secrets.iter().map(|r| r.secret_id.as_str()).collect()
    }
}

/// The Secrets service of one manager.
#[derive(Clone)]
pub struct SecretsApi {
    store: Store,
}

impl SecretsApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// A secret as answered: never its value, sealed or not.
fn shown(mut s: Secret) -> Secret {
    s.sealed.clear();
    if let Some(spec) = s.spec.as_mut() {
        spec.data.clear();
    }
    s
}

/// Creates a secret (or, with `reuse_if_same`, answers the one of that name
/// when its value and labels are the same).
pub(crate) async fn create(
    store: &Store,
    spec: SecretSpec,
    reuse_if_same: bool,
) -> Result<Secret, ManagerError> {
    check_spec(Kind::Secret, spec.annotations.as_ref(), &spec.data)
        .map_err(|e| ManagerError::InvalidArgument(e.0))?;
    let key = secrets::key_or_create(store).await?;
    let id = objects::new_id();
    let secret = Secret {
        id: id.clone(),
        meta: None,
        spec: Some(SecretSpec {
            annotations: spec.annotations.clone(),
            data: vec![],
        }),
        sealed: secrets::seal(&key, &id, &spec.data)?,
    };
    let same = |old: &Secret| -> Result<Option<Secret>, ManagerError> {
        if !reuse_if_same {
            return Ok(None);
        }
        let value = secrets::open(&key, &old.id, &old.sealed)?;
        let labels = old.annotations().map(|a| &a.labels);
        if value == spec.data && labels == spec.annotations.as_ref().map(|a| &a.labels) {
            Ok(Some(old.clone()))
        } else {
            Err(ManagerError::FailedPrecondition(format!(
                "secret {} exists with another value or labels: a secret cannot be updated in place; remove it first (its services too) or use a new name",
                stored_files::name(old)
            )))
        }
    };
    stored_files::create(store, secret, same).await.map(shown)
}

#[tonic::async_trait]
impl Secrets for SecretsApi {
    async fn create_secret(
        &self,
        req: Request<CreateSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        let req = req.into_inner();
        let spec = req
            .spec
            .ok_or_else(|| Status::invalid_argument("create without a secret spec"))?;
        Ok(Response::new(
            create(&self.store, spec, req.reuse_if_same).await?,
        ))
    }

    async fn get_secret(&self, req: Request<GetSecretRequest>) -> Result<Response<Secret>, Status> {
        let s = stored_files::resolve::<Secret>(&self.store, &req.into_inner().secret_ref)?;
        Ok(Response::new(shown(s)))
    }

    async fn list_secrets(
        &self,
        _req: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        let secrets = stored_files::list::<Secret>(&self.store)?
            .into_iter()
            .map(shown)
            .collect();
        Ok(Response::new(ListSecretsResponse { secrets }))
    }

    async fn remove_secret(
        &self,
        req: Request<RemoveSecretRequest>,
    ) -> Result<Response<RemoveSecretResponse>, Status> {
        stored_files::remove::<Secret>(&self.store, &req.into_inner().secret_ref).await?;
        Ok(Response::new(RemoveSecretResponse {}))
    }
}
