//! The cluster's secrets key and the sealing of secret values with it.
//!
//! A secret's value is never kept in the store as given: the control API
//! seals it with the cluster's secrets key (AES-256-GCM, aws-lc-rs, through
//! the same `DataKey` the Raft store's encryption at rest uses) into the
//! Secret object's `sealed` field, bound to the secret's ID, and the
//! dispatcher opens it only to send it to a node that runs a task using it.
//!
//! Where the key lives: in the replicated store as an object of its own
//! (kind [`KIND_KEYRING`], a `SecretKeyring` message), made on the first
//! secret create; never inside a Secret object and never answered by any
//! API. Every manager needs it (any one may become the leader whose
//! dispatcher hands secrets out), and the store is the only thing managers
//! share; so, as swarmkit's CA key, it rides the store, whose every record
//! is sealed on each manager's disk by that manager's data key, itself
//! wrapped by the key-encrypting key that `--autolock` keeps off the disk.
//! So on disk nothing is in clear; in the store, a Secret record (a log
//! entry, a watch event, a list answer that forgot to strip it) shows only
//! ciphertext, and the key is one record apart that only this module reads.

use prost::Message;
use rswarm_proto::types::SecretKeyring;
use rswarm_raft::{DataKey, Op, Store, StoreError};

use crate::error::ManagerError;

/// Store kind of the cluster's secrets key (one object).
pub(crate) const KIND_KEYRING: &str = "secret-keyring";
const KEYRING_ID: &str = "default";
/// How often making the key starts over after losing a race.
const ATTEMPTS: usize = 10;

/// Associated data of a sealed value: the format and the secret's ID, so a
/// value moved to another secret does not open.
fn aad(secret_id: &str) -> Vec<u8> {
    [b"rswarm secret v1:".as_slice(), secret_id.as_bytes()].concat()
}

fn key_from(message: &SecretKeyring) -> Result<DataKey, ManagerError> {
    DataKey::from_bytes(&message.key)
        .map_err(|e| ManagerError::Internal(format!("the cluster's secrets key: {e}")))
}

/// The cluster's secrets key, if one was made.
pub(crate) fn key(store: &Store) -> Result<Option<DataKey>, ManagerError> {
    store
        .get_message::<SecretKeyring>(KIND_KEYRING, KEYRING_ID)?
        .map(|(_, k)| key_from(&k))
        .transpose()
}

/// The cluster's secrets key, made (once, cluster-wide) if there is none.
pub(crate) async fn key_or_create(store: &Store) -> Result<DataKey, ManagerError> {
    for _ in 0..ATTEMPTS {
        if let Some(k) = key(store)? {
            return Ok(k);
        }
        let fresh = DataKey::generate()
            .map_err(|e| ManagerError::Internal(format!("making the secrets key: {e}")))?;
        let op = Op::Put {
            kind: KIND_KEYRING.into(),
            id: KEYRING_ID.into(),
            value: SecretKeyring {
                key: fresh.as_bytes().to_vec(),
            }
            .encode_to_vec(),
            expect_version: Some(0),
        };
        match store.write(vec![op]).await {
            Ok(_) => return Ok(fresh),
            // Another manager made it meanwhile: use theirs.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ManagerError::Internal(
        "making the secrets key kept racing with another manager; try again".into(),
    ))
}

/// Seals a secret's value for the store.
pub(crate) fn seal(key: &DataKey, secret_id: &str, value: &[u8]) -> Result<Vec<u8>, ManagerError> {
    key.seal(&aad(secret_id), value)
        .map_err(|e| ManagerError::Internal(format!("sealing secret {secret_id}: {e}")))
}

/// Opens a secret's sealed value. The error names the secret, never the value.
pub(crate) fn open(key: &DataKey, secret_id: &str, sealed: &[u8]) -> Result<Vec<u8>, ManagerError> {
    key.open(&aad(secret_id), sealed)
        .map_err(|e| ManagerError::Internal(format!("opening secret {secret_id}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_and_shows_no_clear_text() {
        let k = DataKey::generate().unwrap();
        let sealed = seal(&k, "id1", b"hunter2-password").unwrap();
        assert!(!sealed.windows(b"hunter2".len()).any(|w| w == b"hunter2"));
        assert_eq!(open(&k, "id1", &sealed).unwrap(), b"hunter2-password");
    }

    #[test]
    fn a_wrong_key_or_another_secret_does_not_open() {
        let (k, other) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());
        let sealed = seal(&k, "id1", b"value").unwrap();
        let e = open(&other, "id1", &sealed).unwrap_err().to_string();
        assert!(e.starts_with("opening secret id1:"), "{e}");
        assert!(!e.contains("value"));
        assert!(open(&k, "id2", &sealed).is_err());
    }

    #[tokio::test]
    async fn the_key_is_made_once_and_kept() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        assert!(key(&store).unwrap().is_none());
        let a = key_or_create(&store).await.unwrap();
        let b = key_or_create(&store).await.unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        let sealed = seal(&a, "s", b"v").unwrap();
        assert_eq!(
            open(&key(&store).unwrap().unwrap(), "s", &sealed).unwrap(),
            b"v"
        );
    }
}
