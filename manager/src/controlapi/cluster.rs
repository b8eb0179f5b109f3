//! Control calls on the cluster object: reading it (without the CA key) and
//! rotating join tokens, and `swarm update` (the task history limit, the node
//! certificate expiry, written as a spec write: `controlapi::spec_write`).

use std::time::Duration;

use rswarm_proto::control::{RotateJoinTokenRequest, UpdateClusterRequest};
use rswarm_proto::identity::token;
use rswarm_proto::types::Cluster;
use rswarm_raft::Store;

use crate::error::ManagerError;
use crate::objects;

/// The cluster object as clients may see it: the CA's private key and the
/// unlock key stripped.
pub(crate) fn get(store: &Store) -> Result<Cluster, ManagerError> {
    Ok(redact(objects::cluster(store)?))
}

pub(crate) fn redact(mut c: Cluster) -> Cluster {
    if let Some(ca) = c.root_ca.as_mut() {
        ca.ca_key_pem.clear();
        ca.rotation_ca_key_pem.clear();
    }
    c.unlock_key.clear();
    c
}

/// `swarm update`: change the settings the request marks as set (a task
/// history limit; a certificate expiry, which the next certificates issued
/// and renewed carry). Every value is checked before anything changes.
pub(crate) async fn update(
    store: &Store,
    req: UpdateClusterRequest,
) -> Result<Cluster, ManagerError> {
    if !req.task_history_limit_set && req.node_cert_expiry_ns == 0 {
        return Err(ManagerError::InvalidArgument(
            "nothing to update: give a setting such as --task-history-limit or --cert-expiry"
                .into(),
        ));
    }
    let limit = req
        .task_history_limit_set
        .then(|| super::limits::check_task_history(req.task_history_limit))
        .transpose()?;
    let cert_expiry = match req.node_cert_expiry_ns {
        0 => None,
        ns => Some(crate::certificates::check_cert_expiry(
            Duration::from_nanos(u64::try_from(ns).unwrap_or(0)),
        )?),
    };
    let cluster = super::spec_write::write_spec(
        store,
        0,
        || objects::cluster(store),
        |cluster: &mut Cluster| {
            let spec = cluster.spec.get_or_insert_with(Default::default);
            if let Some(limit) = limit {
                spec.task_history_retention_limit = limit;
            }
            if let Some(ns) = cert_expiry {
                spec.node_cert_expiry_ns = ns;
            }
            Ok(())
        },
    )
    .await?;
    Ok(redact(cluster))
}

/// Replace the worker and/or manager join token's secret; the old token stops
/// working at once.
pub(crate) async fn rotate(
    store: &Store,
    req: RotateJoinTokenRequest,
) -> Result<Cluster, ManagerError> {
    if !req.worker && !req.manager {
        return Err(ManagerError::InvalidArgument(
            "nothing to rotate: name the worker or the manager token".into(),
        ));
    }
    loop {
        let mut cluster = objects::cluster(store)?;
        let ca = cluster
            .root_ca
            .as_mut()
            .ok_or_else(|| ManagerError::Internal("cluster has no root CA".into()))?;
        let tokens = ca.join_tokens.get_or_insert_with(Default::default);
        if req.worker {
            tokens.worker = token::generate(&ca.ca_cert_pem);
        }
        if req.manager {
            tokens.manager = token::generate(&ca.ca_cert_pem);
        }
        match store.write(vec![objects::put(&cluster)]).await {
            Ok(_) => return get(store),
            Err(rswarm_raft::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
