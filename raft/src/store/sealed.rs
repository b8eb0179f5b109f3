//! Encryption at rest: the one place that turns a stored record into ciphertext
//! and back. A [`DataKey`] (AES-256-GCM, from aws-lc-rs, the backend rustls
//! already uses here) seals Raft log entries, state-machine values and the
//! snapshot before they reach sled, and opens them on the way back; the record's
//! own key is the associated data, so a sealed value moved to another key fails to
//! open as surely as a flipped bit does. The daemon uses the same type to wrap the
//! data key with a key-encrypting key and to seal the node's TLS key.
//!
//! A sealed record is `0x01 ++ nonce (12 bytes, random) ++ ciphertext ++ tag (16)`.
//! Random 96-bit nonces keep the collision chance negligible well past the number
//! of records a manager writes in its life.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// The first byte of every sealed record (the format's version).
const SEALED_V1: u8 = 0x01;
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Why a sealed record could not be opened (or a key made).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    #[error("the record is not encrypted (a store written without encryption at rest?)")]
    NotSealed,
    #[error("the record is truncated")]
    Truncated,
    #[error("the record does not decrypt with this key (wrong key, or the data was altered)")]
    Mismatch,
    #[error("a data key must be {KEY_LEN} bytes, not {0}")]
    KeyLength(usize),
    #[error("no randomness available from the operating system")]
    Random,
}

/// A 256-bit symmetric key. Cheap to clone.
#[derive(Clone)]
pub struct DataKey {
    raw: std::sync::Arc<[u8; KEY_LEN]>,
    key: std::sync::Arc<LessSafeKey>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<DataKey, SealError> {
        let mut raw = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| SealError::Random)?;
        DataKey::from_bytes(&raw)
    }

    /// The key made of exactly [`KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<DataKey, SealError> {
        let raw: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| SealError::KeyLength(bytes.len()))?;
        let unbound = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| SealError::Mismatch)?;
        Ok(DataKey {
            raw: std::sync::Arc::new(raw),
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// The key's bytes (to be wrapped by another key, never stored in clear).
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw[..]
    }

    /// Encrypts `plain`, bound to `aad` (which must be given again to open it).
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| SealError::Mismatch)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts what [`DataKey::seal`] made with the same key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = match sealed.split_first() {
            Some((&SEALED_V1, rest)) => rest,
            Some(_) => return Err(SealError::NotSealed),
            None => return Err(SealError::Truncated),
        };
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Truncated)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| SealError::Mismatch)?;
        let n = plain.len();
        body.truncate(n);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_hides_the_plaintext() -> Result<(), SealError> {
        let key = DataKey::generate()?;
        let plain = b"-----BEGIN PRIVATE KEY----- SWMTKN-1-secret";
        let sealed = key.seal(b"k1", plain)?;
        assert!(!sealed.windows(11).any(|w| w == b"PRIVATE KEY"));
        assert!(!sealed.windows(9).any(|w| w == b"SWMTKN-1-"));
        assert_eq!(key.open(b"k1", &sealed)?, plain.to_vec());
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(key.seal(b"k1", plain)?, sealed);
        let restored = DataKey::from_bytes(key.as_bytes())?;
        assert_eq!(restored.open(b"k1", &sealed)?, plain.to_vec());
        assert_eq!(key.open(b"", &key.seal(b"", b"")?)?, Vec::<u8>::new());
        Ok(())
    }

    #[test]
    fn a_wrong_key_or_another_record_key_fails() -> Result<(), SealError> {
        let key = DataKey::generate()?;
        let other = DataKey::generate()?;
        let sealed = key.seal(b"k1", b"value")?;
        assert_eq!(other.open(b"k1", &sealed), Err(SealError::Mismatch));
        assert_eq!(key.open(b"k2", &sealed), Err(SealError::Mismatch));
        Ok(())
    }

    #[test]
    fn tampering_and_plaintext_are_detected() -> Result<(), SealError> {
        let key = DataKey::generate()?;
        let sealed = key.seal(b"k", b"some value")?;
        for i in 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert_eq!(key.open(b"k", &bad), Err(SealError::Mismatch), "byte {i}");
        }
        assert_eq!(
            key.open(b"k", &sealed[..sealed.len() - 1]),
            Err(SealError::Mismatch)
        );
        assert_eq!(key.open(b"k", &sealed[..10]), Err(SealError::Truncated));
        assert_eq!(key.open(b"k", b"{\"json\":1}"), Err(SealError::NotSealed));
        assert_eq!(key.open(b"k", b""), Err(SealError::Truncated));
        assert_eq!(
            DataKey::from_bytes(&[0u8; 5]).map(|_| ()),
            Err(SealError::KeyLength(5))
        );
        Ok(())
    }
}
