//! Root CA rotation (`rswarm swarm ca --rotate`), as swarmkit does it: a new
//! root key and certificate are made, every node gets a certificate from the
//! new root, and once every node presents one the old root is dropped, the
//! join tokens change (they pin the root by digest) and certificates signed
//! only by the old root stop being accepted.
//!
//! **Cross-signing, not a trust bundle.** While the rotation runs, the new root
//! is also signed by the old root (`RootCa::cross_sign`), and every node
//! certificate the new root signs is handed out followed by that cross-signed
//! certificate. Every node keeps trusting only the old root until the end, and
//! a new certificate chains up to it (leaf → cross-signed new root → old root),
//! so a node that has renewed and one that has not yet still accept each other
//! in both directions: nothing breaks in between, whatever order the nodes
//! renew in. A trust bundle (old + new roots on every node) would need every
//! node to take the bundle *before* any node presents a new certificate — a
//! second round trip across the whole cluster, with a window in which
//! servers that have not taken the bundle refuse renewed clients. At the end
//! the trust root becomes the new root alone; new certificates verify against
//! it directly, and each node fetches the new trust root on its next
//! heartbeat. New certificates keep carrying the cross-signed link after the
//! end, for the nodes that still trust only the old root until they renew
//! (see `finish`).
//!
//! Progress is measured on what nodes *present*, not on what was issued: the
//! dispatcher records the authority key identifier of the certificate each
//! node shows on its heartbeat (`TlsInfo.cert_issuer_key_id`), and the leader
//! finishes the rotation when every node's is the new root's. A node that is
//! down holds the rotation open, as in Docker.

use rswarm_proto::identity::token;
use rswarm_proto::types::{Cluster, JoinTokens, Node};
use rswarm_raft::{Store, StoreError};

use crate::ca::{ca_hash, RootCa};
use crate::controlapi::cluster::redact;
use crate::error::ManagerError;
use crate::objects;

/// Who signs node certificates now, and what nodes must trust.
pub(crate) struct Signer {
    /// The CA that signs (the new root during a rotation).
    pub ca: RootCa,
    /// Sent after each certificate it signs (the cross-signed new root during
    /// a rotation, empty otherwise).
    pub chain: String,
    /// The trust root nodes hold (the old root until the rotation ends).
    pub trust_root: String,
}

impl Signer {
    /// A signed certificate as handed to the node: leaf, then the chain.
    pub(crate) fn with_chain(&self, leaf_pem: String) -> String {
        if self.chain.is_empty() {
            leaf_pem
        } else {
            format!("{}\n{}", leaf_pem.trim_end(), self.chain)
        }
    }
}

/// Whether a root CA rotation is under way.
pub(crate) fn rotating(cluster: &Cluster) -> bool {
    cluster
        .root_ca
        .as_ref()
        .is_some_and(|ca| !ca.rotation_ca_cert_pem.is_empty())
}

/// The signer of `cluster`.
pub(crate) fn signer(cluster: &Cluster) -> Result<Signer, ManagerError> {
    let root = cluster
        .root_ca
        .as_ref()
        .ok_or_else(|| ManagerError::Internal("cluster has no root CA".into()))?;
    let trust_root = root.ca_cert_pem.clone();
    // The cross-signed certificate outlives the rotation (see `finish`).
    let chain = root.rotation_cross_signed_pem.clone();
    Ok(if rotating(cluster) {
        Signer {
            ca: RootCa {
                cert_pem: root.rotation_ca_cert_pem.clone(),
                key_pem: root.rotation_ca_key_pem.clone(),
            },
            chain,
            trust_root,
        }
    } else {
        Signer {
            ca: RootCa {
                cert_pem: root.ca_cert_pem.clone(),
                key_pem: root.ca_key_pem.clone(),
            },
            chain,
            trust_root,
        }
    })
}

/// The key identifier node certificates must carry as issuer now; `None` if
/// it cannot be told (then nobody is asked to renew for it).
pub(crate) fn signing_key_id(cluster: &Cluster) -> Option<Vec<u8>> {
    let root = cluster.root_ca.as_ref()?;
    if rotating(cluster) {
        return Some(root.rotation_key_id.clone());
    }
    RootCa {
        cert_pem: root.ca_cert_pem.clone(),
        key_pem: String::new(),
    }
    .key_id()
    .ok()
}

/// The digest of the trust root nodes must hold (as the agent computes it
/// over its `ca.crt`).
pub(crate) fn trust_root_hash(cluster: &Cluster) -> String {
    cluster
        .root_ca
        .as_ref()
        .map(|ca| token::ca_digest(ca.ca_cert_pem.trim()))
        .unwrap_or_default()
}

/// Whether `node` presented a certificate from the CA signing now.
pub(crate) fn node_renewed(node: &Node, key_id: &[u8]) -> bool {
    node.description
        .as_ref()
        .and_then(|d| d.tls_info.as_ref())
        .is_some_and(|t| t.cert_issuer_key_id == key_id)
}

/// Start a rotation: a new root, cross-signed by the current one. A rotation
/// already under way is replaced by a new one (its nodes renew again).
pub(crate) async fn start(store: &Store) -> Result<Cluster, ManagerError> {
    loop {
        let mut cluster = objects::cluster(store)?;
        let root = cluster
            .root_ca
            .as_mut()
            .ok_or_else(|| ManagerError::Internal("cluster has no root CA".into()))?;
        let old = RootCa::from_pem(&root.ca_cert_pem, &root.ca_key_pem)
            .map_err(|e| ManagerError::Ca(e.to_string()))?;
        let new = RootCa::generate(&cluster.id).map_err(|e| ManagerError::Ca(e.to_string()))?;
        let cross = old
            .cross_sign(&new)
            .map_err(|e| ManagerError::Ca(e.to_string()))?;
        root.rotation_key_id = new.key_id().map_err(|e| ManagerError::Ca(e.to_string()))?;
        root.rotation_ca_cert_pem = new.cert_pem;
        root.rotation_ca_key_pem = new.key_pem;
        root.rotation_cross_signed_pem = cross;
        match store.write(vec![objects::put(&cluster)]).await {
            Ok(_) => {
                tracing::info!("root CA rotation started");
                return Ok(redact(objects::cluster(store)?));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One pass on the leader: finish the rotation once every node presents a
/// certificate from the new root. A no-op on followers and when no rotation
/// runs.
pub(crate) async fn reconcile(store: &Store) -> Result<(), ManagerError> {
    if !store.is_leader() {
        return Ok(());
    }
    let mut cluster = objects::cluster(store)?;
    if !rotating(&cluster) {
        return Ok(());
    }
    let nodes = objects::list::<Node>(store)?;
    let Some(root) = cluster.root_ca.as_mut() else {
        return Ok(());
    };
    if !nodes.iter().all(|n| node_renewed(n, &root.rotation_key_id)) {
        return Ok(());
    }
    finish(root);
    match store.write(vec![objects::put(&cluster)]).await {
        Ok(_) => {
            tracing::info!(
                nodes = nodes.len(),
                "root CA rotation finished: the old root is no longer trusted"
            );
            Ok(())
        }
        Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The new root becomes the only root; the join tokens pin it.
///
/// The cross-signed certificate stays and is still sent after new node
/// certificates: nodes take the new trust root one by one, and until a node
/// has, it trusts only the old root — a peer's certificate without the
/// cross-signed link would be refused by it, and a worker whose managers all
/// moved on could never renew. For a node that trusts the new root the link
/// is never needed (its path ends at the new root directly), so certificates
/// signed only by the old root are refused by every node that moved on. The
/// next rotation replaces it.
fn finish(root: &mut rswarm_proto::types::RootCa) {
    root.ca_cert_pem = std::mem::take(&mut root.rotation_ca_cert_pem);
    root.ca_key_pem = std::mem::take(&mut root.rotation_ca_key_pem);
    root.rotation_key_id.clear();
    root.ca_cert_hash = ca_hash(&root.ca_cert_pem);
    root.join_tokens = Some(JoinTokens {
        worker: token::generate(&root.ca_cert_pem),
        manager: token::generate(&root.ca_cert_pem),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::identity::keys;
    use rswarm_proto::types::{NodeDescription, NodeRole, TlsInfo};
    use std::time::Duration;

    fn cluster_with(root: &RootCa) -> Cluster {
        Cluster {
            id: "cluster1".into(),
            root_ca: Some(rswarm_proto::types::RootCa {
                ca_cert_pem: root.cert_pem.clone(),
                ca_key_pem: root.key_pem.clone(),
                ca_cert_hash: ca_hash(&root.cert_pem),
                join_tokens: Some(JoinTokens {
                    worker: token::generate(&root.cert_pem),
                    manager: token::generate(&root.cert_pem),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node_with_key_id(id: &str, key_id: &[u8]) -> Node {
        Node {
            id: id.into(),
            description: Some(NodeDescription {
                tls_info: Some(TlsInfo {
                    cert_issuer_key_id: key_id.to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_rotating_cluster_signs_with_the_new_root_and_chains_to_the_old() {
        let old = RootCa::generate("cluster1").expect("old");
        let new = RootCa::generate("cluster1").expect("new");
        let mut cluster = cluster_with(&old);
        let s = signer(&cluster).expect("signer");
        assert_eq!(s.ca, old);
        assert!(s.chain.is_empty());
        assert_eq!(signing_key_id(&cluster), Some(old.key_id().expect("id")));

        let root = cluster.root_ca.as_mut().expect("root");
        root.rotation_ca_cert_pem = new.cert_pem.clone();
        root.rotation_ca_key_pem = new.key_pem.clone();
        root.rotation_cross_signed_pem = old.cross_sign(&new).expect("cross");
        root.rotation_key_id = new.key_id().expect("id");
        let s = signer(&cluster).expect("signer");
        assert_eq!(s.ca, new);
        assert_eq!(s.trust_root, old.cert_pem);
        let (_key, csr) = keys::new_key_and_csr().expect("csr");
        let leaf =
            s.ca.sign_node_csr(
                &csr,
                "node1",
                NodeRole::Worker,
                "cluster1",
                Duration::from_secs(3600),
            )
            .expect("sign");
        let leaf_der = rswarm_proto::identity::cert::first_cert_der(&leaf).expect("der");
        assert_eq!(
            crate::ca::authority_key_id(&leaf_der),
            Some(new.key_id().expect("id"))
        );
        let full = s.with_chain(leaf);
        assert_eq!(full.matches("BEGIN CERTIFICATE").count(), 2);

        // Progress and the end of the rotation.
        let key_id = new.key_id().expect("id");
        assert!(node_renewed(&node_with_key_id("a", &key_id), &key_id));
        assert!(!node_renewed(
            &node_with_key_id("b", &old.key_id().expect("id")),
            &key_id
        ));
        let old_tokens = cluster
            .root_ca
            .as_ref()
            .and_then(|r| r.join_tokens.clone())
            .expect("tokens");
        let old_hash = trust_root_hash(&cluster);
        finish(cluster.root_ca.as_mut().expect("root"));
        assert!(!rotating(&cluster));
        let root = cluster.root_ca.as_ref().expect("root");
        assert_eq!(root.ca_cert_pem, new.cert_pem);
        assert_eq!(root.ca_key_pem, new.key_pem);
        assert_eq!(root.ca_cert_hash, ca_hash(&new.cert_pem));
        let tokens = root.join_tokens.clone().expect("tokens");
        assert_ne!(tokens.worker, old_tokens.worker);
        let parsed = token::parse(&tokens.manager).expect("token");
        assert!(parsed.matches_ca(&new.cert_pem));
        assert_ne!(trust_root_hash(&cluster), old_hash);
        assert_eq!(signing_key_id(&cluster), Some(key_id));
        // The link to the old root is still handed out for nodes not yet moved on.
        let s = signer(&cluster).expect("signer");
        assert_eq!(s.ca, new);
        assert_eq!(s.trust_root, new.cert_pem);
        assert!(!s.chain.is_empty());
    }

    #[tokio::test]
    async fn the_leader_finishes_only_when_every_node_presents_a_new_certificate() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let old = RootCa::generate("cluster1").expect("old");
        store
            .write(vec![
                objects::put(&cluster_with(&old)),
                objects::put(&node_with_key_id("a", &old.key_id().expect("id"))),
                objects::put(&node_with_key_id("b", &old.key_id().expect("id"))),
            ])
            .await
            .expect("write");
        let started = start(&store).await.expect("start");
        let root = started.root_ca.expect("root");
        assert!(root.rotation_ca_key_pem.is_empty(), "key redacted");
        assert!(root.ca_key_pem.is_empty(), "key redacted");
        let key_id = root.rotation_key_id.clone();
        assert_ne!(key_id, old.key_id().expect("id"));

        store
            .write(vec![objects::put(&node_with_key_id("a", &key_id))])
            .await
            .expect("a renewed");
        reconcile(&store).await.expect("pass");
        assert!(rotating(&objects::cluster(&store).expect("cluster")));

        store
            .write(vec![objects::put(&node_with_key_id("b", &key_id))])
            .await
            .expect("b renewed");
        reconcile(&store).await.expect("pass");
        let cluster = objects::cluster(&store).expect("cluster");
        assert!(!rotating(&cluster));
        assert_eq!(
            cluster.root_ca.expect("root").ca_cert_pem,
            root.rotation_ca_cert_pem
        );
    }
}
