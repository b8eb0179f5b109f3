//! The dashboard's credential: one random token per cluster, kept in the
//! replicated store (kind [`KIND_TOKEN`]) so that every manager's dashboard
//! accepts the same one and a rotation made on any manager refuses the old
//! token everywhere at the next request (each check reads the store; there
//! is no cache). Like the join tokens and the secrets key, it rides the
//! store, whose records are sealed at rest on every manager's disk.
//!
//! Why stored and not derived: a token derived from a cluster key would
//! still need a stored generation counter to rotate, and could not be shown
//! again without that key; a stored random token is as strong (256 bits from
//! the OS generator) and is read by no API but `dashboard token`.
//!
//! Checks compare SHA-256 digests in constant time, so neither the token's
//! bytes nor its length leak through timing.

use rand::RngCore;
use rswarm_raft::{Op, Store, StoreError};
use sha2::{Digest, Sha256};

use crate::error::ManagerError;

/// Store kind of the dashboard token (one record).
pub const KIND_TOKEN: &str = "dashboard-token";
const TOKEN_ID: &str = "default";
/// Every token starts with this, so a user can tell it from a join token.
const PREFIX: &str = "RSWDT-";
/// A token is never longer than this (the prefix and 64 hex digits); a
/// longer credential is refused before it is hashed.
pub const MAX_TOKEN_LEN: usize = 128;
/// How often making the first token starts over after losing a race.
const ATTEMPTS: usize = 10;

fn fresh() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}")
}

/// The current token, if one was made.
pub fn current(store: &Store) -> Result<Option<String>, ManagerError> {
    let Some(obj) = store.get(KIND_TOKEN, TOKEN_ID)? else {
        return Ok(None);
    };
    String::from_utf8(obj.value)
        .map(Some)
        .map_err(|_| ManagerError::Internal("the stored dashboard token is not text".into()))
}

/// The current token, made (once, cluster-wide) if there is none; with
/// `rotate`, a new one that replaces it at once.
pub async fn get_or_rotate(store: &Store, rotate: bool) -> Result<String, ManagerError> {
    for _ in 0..ATTEMPTS {
        let existing = store.get(KIND_TOKEN, TOKEN_ID)?;
        if let (Some(obj), false) = (&existing, rotate) {
            if let Ok(t) = String::from_utf8(obj.value.clone()) {
                return Ok(t);
            }
        }
        let token = fresh();
        let op = Op::Put {
            kind: KIND_TOKEN.into(),
            id: TOKEN_ID.into(),
            value: token.clone().into_bytes(),
            expect_version: Some(existing.map_or(0, |o| o.version)),
        };
        match store.write(vec![op]).await {
            Ok(_) => return Ok(token),
            // Another manager made or rotated it meanwhile: look again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ManagerError::Internal(
        "writing the dashboard token kept racing with another manager; try again".into(),
    ))
}

/// Equality of two byte strings in time that depends on neither's content.
fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Whether `offered` is the cluster's current token. No token made yet
/// means nothing is accepted.
pub fn check(store: &Store, offered: &str) -> Result<bool, ManagerError> {
    if offered.is_empty() || offered.len() > MAX_TOKEN_LEN {
        return Ok(false);
    }
    Ok(match current(store)? {
        Some(t) => digest_eq(t.as_bytes(), offered.as_bytes()),
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_equal_only_for_equal_input() {
        assert!(digest_eq(b"RSWDT-abc", b"RSWDT-abc"));
        assert!(!digest_eq(b"RSWDT-abc", b"RSWDT-abd"));
        assert!(!digest_eq(b"RSWDT-abc", b"RSWDT-ab"));
        assert!(!digest_eq(b"", b"x"));
    }

    #[test]
    fn fresh_tokens_are_long_and_differ() {
        let (a, b) = (fresh(), fresh());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert!(a.len() <= MAX_TOKEN_LEN);
    }

    #[tokio::test]
    async fn nothing_is_accepted_before_a_token_is_made() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        assert!(!check(&store, "").unwrap());
        assert!(!check(&store, "RSWDT-00").unwrap());
    }

    #[tokio::test]
    async fn the_token_is_kept_and_a_rotation_refuses_the_old_one() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let first = get_or_rotate(&store, false).await.unwrap();
        assert_eq!(get_or_rotate(&store, false).await.unwrap(), first);
        assert!(check(&store, &first).unwrap());
        assert!(!check(&store, &first[..first.len() - 1]).unwrap());
        let second = get_or_rotate(&store, true).await.unwrap();
        assert_ne!(first, second);
        assert!(!check(&store, &first).unwrap());
        assert!(check(&store, &second).unwrap());
        assert!(!check(&store, &"x".repeat(MAX_TOKEN_LEN + 1)).unwrap());
    }
}
