//! Join tokens, in Docker Swarm's format:
//! `SWMTKN-1-<CA digest>-<secret>`.
//!
//! - The CA digest is the SHA-256 of the root CA certificate PEM (the exact bytes a
//!   manager serves from `Ca.GetRootCaCertificate`), written in lowercase base 36 and
//!   zero-padded to 50 characters. A joining node fetches the CA over an unverified
//!   TLS connection and trusts it only if its digest matches the token's.
//! - The secret is 16 random bytes in lowercase base 36, zero-padded to 25
//!   characters. It authorises a manager to sign the joining node's certificate;
//!   whether the node becomes a worker or a manager depends on which of the two
//!   cluster tokens the secret matches.
//!
//! Secrets are compared in constant time. A token's `Debug` output hides the secret;
//! its `Display` output is the full token, to be shown only to whoever may join nodes.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The fixed start of every token this version understands.
pub const PREFIX: &str = "SWMTKN-1-";
/// Length of the CA digest part: 256 bits in base 36.
pub const DIGEST_LEN: usize = 50;
/// Length of the secret part: 128 bits in base 36.
pub const SECRET_LEN: usize = 25;

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Why a string is not a join token. `Display` is one line meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid join token: it must start with {PREFIX} (copy it from `rswarm swarm join-token worker` or `manager`)")]
    MissingPrefix,
    #[error("invalid join token: unsupported token version {0:?}; this rswarm understands version 1 (SWMTKN-1-...)")]
    UnsupportedVersion(String),
    #[error(
        "invalid join token: expected SWMTKN-1-<CA digest>-<secret>, found {0} part(s) after the prefix"
    )]
    WrongShape(usize),
    #[error("invalid join token: the CA digest must be {DIGEST_LEN} characters of 0-9 and a-z, found {0}")]
    BadDigest(String),
    #[error(
        "invalid join token: the secret must be {SECRET_LEN} characters of 0-9 and a-z, found {0}"
    )]
    BadSecret(String),
}

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The root CA's digest: 50 lowercase base-36 characters.
    pub ca_digest: String,
    /// The secret: 25 lowercase base-36 characters.
    pub secret: String,
}

impl JoinToken {
    /// Whether `ca_pem` is the CA this token pins (constant time).
    pub fn matches_ca(&self, ca_pem: &str) -> bool {
        constant_time_eq(self.ca_digest.as_bytes(), ca_digest(ca_pem).as_bytes())
    }

    /// Whether `other` carries the same secret as this token (constant time).
    /// Used by a manager to tell a worker token from a manager token.
    pub fn secret_matches(&self, other: &JoinToken) -> bool {
        constant_time_eq(self.secret.as_bytes(), other.secret.as_bytes())
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}-{}", self.ca_digest, self.secret)
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &self.ca_digest)
            .field("secret", &"[hidden]")
            .finish()
    }
}

impl std::str::FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The CA digest of a root CA certificate PEM: SHA-256 of its exact bytes, in
/// lowercase base 36, zero-padded to 50 characters.
pub fn ca_digest(ca_cert_pem: &str) -> String {
    let digest = Sha256::digest(ca_cert_pem.as_bytes());
    encode_base36(&digest, DIGEST_LEN)
}

/// A new token for the CA `ca_cert_pem`, with a fresh random secret.
pub fn generate(ca_cert_pem: &str) -> String {
    let mut secret = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    JoinToken {
        ca_digest: ca_digest(ca_cert_pem),
        secret: encode_base36(&secret, SECRET_LEN),
    }
    .to_string()
}

/// Parses a join token. Surrounding whitespace (a pasted newline) is ignored.
pub fn parse(s: &str) -> Result<JoinToken, TokenError> {
    let s = s.trim();
    let Some(rest) = s.strip_prefix(PREFIX) else {
        if let Some(other) = s.strip_prefix("SWMTKN-") {
            let version = other.split('-').next().unwrap_or_default();
            return Err(TokenError::UnsupportedVersion(version.to_string()));
        }
        return Err(TokenError::MissingPrefix);
    };
    let parts: Vec<&str> = rest.split('-').collect();
    let [digest, secret] = parts.as_slice() else {
        return Err(TokenError::WrongShape(parts.len()));
    };
    if !is_base36(digest, DIGEST_LEN) {
        return Err(TokenError::BadDigest(describe(digest)));
    }
    if !is_base36(secret, SECRET_LEN) {
        return Err(TokenError::BadSecret(describe(secret)));
    }
    Ok(JoinToken {
        ca_digest: (*digest).to_string(),
        secret: (*secret).to_string(),
    })
}

/// Encodes `bytes` (a big-endian number) in lowercase base 36, left-padded with
/// `'0'` to at least `width` characters. This is how Swarm writes token parts and
/// object IDs (16 random bytes padded to 25 characters).
pub fn encode_base36(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::new();
    while number.iter().any(|&b| b != 0) {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let current = (remainder << 8) | u32::from(*byte);
            *byte = (current / 36) as u8;
            remainder = current % 36;
        }
        digits.push(BASE36[remainder as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn is_base36(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Describes a bad token part without echoing a possibly secret value in full.
fn describe(part: &str) -> String {
    let count = part.chars().count();
    match part
        .chars()
        .find(|c| !(c.is_ascii_digit() || c.is_ascii_lowercase()))
    {
        Some(c) => format!("{count} characters including {c:?}"),
        None => format!("{count} characters"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn generated_token_parses_back_and_pins_its_ca() {
        let token = generate(CA);
        assert!(token.starts_with(PREFIX));
        assert_eq!(token.len(), PREFIX.len() + DIGEST_LEN + 1 + SECRET_LEN);

        let parsed = parse(&token).expect("generated token parses");
        assert_eq!(parsed.ca_digest, ca_digest(CA));
        assert_eq!(parsed.ca_digest.len(), DIGEST_LEN);
        assert_eq!(parsed.secret.len(), SECRET_LEN);
        assert_eq!(parsed.to_string(), token);
        assert!(parsed.matches_ca(CA));
        assert!(parse(&format!("  {token}\n")).is_ok(), "pasted whitespace");
    }

    #[test]
    fn digest_mismatch_is_detected() {
        let parsed = parse(&generate(CA)).expect("parses");
        let other_ca = CA.replace("MIIB", "MIIC");
        assert!(!parsed.matches_ca(&other_ca));
        assert_ne!(ca_digest(CA), ca_digest(&other_ca));
    }

    #[test]
    fn rotated_tokens_share_the_digest_but_not_the_secret() {
        let a = parse(&generate(CA)).expect("parses");
        let b = parse(&generate(CA)).expect("parses");
        assert_eq!(a.ca_digest, b.ca_digest);
        assert!(!a.secret_matches(&b));
        assert!(a.secret_matches(&a.clone()));
    }

    #[test]
    fn debug_hides_the_secret() {
        let parsed = parse(&generate(CA)).expect("parses");
        let debug = format!("{parsed:?}");
        assert!(!debug.contains(&parsed.secret));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let good = generate(CA);
        let t = parse(&good).expect("parses");
        let d = &t.ca_digest;
        let s = &t.secret;

        let cases = [
            (String::new(), TokenError::MissingPrefix),
            (
                format!("SWMTKN-{d}-{s}"),
                TokenError::UnsupportedVersion(d.clone()),
            ),
            (
                format!("SWMTKN-2-{d}-{s}"),
                TokenError::UnsupportedVersion("2".into()),
            ),
            (format!("XXMTKN-1-{d}-{s}"), TokenError::MissingPrefix),
            (format!("swmtkn-1-{d}-{s}"), TokenError::MissingPrefix),
            (format!("SWMTKN-1-{d}"), TokenError::WrongShape(1)),
            (format!("SWMTKN-1-{d}-{s}-x"), TokenError::WrongShape(3)),
            (
                format!("SWMTKN-1-{}-{s}", &d[1..]),
                TokenError::BadDigest("49 characters".into()),
            ),
            (
                format!("SWMTKN-1-{d}0-{s}"),
                TokenError::BadDigest("51 characters".into()),
            ),
            (
                format!("SWMTKN-1-{}-{s}", d.to_uppercase()),
                TokenError::BadDigest(describe(&d.to_uppercase())),
            ),
            (
                format!("SWMTKN-1-{d}-{}", &s[1..]),
                TokenError::BadSecret("24 characters".into()),
            ),
            (
                format!("SWMTKN-1-{d}-{s}z"),
                TokenError::BadSecret("26 characters".into()),
            ),
            (
                format!("SWMTKN-1-{d}-{}!", &s[1..]),
                TokenError::BadSecret("25 characters including '!'".into()),
            ),
            (
                format!("SWMTKN-1-{d}-{}é", &s[2..]),
                TokenError::BadSecret("24 characters including 'é'".into()),
            ),
        ];
        for (input, expected) in cases {
            let err = parse(&input).expect_err(&input);
            assert_eq!(err, expected, "{input}");
            let message = err.to_string();
            assert!(message.starts_with("invalid join token: "), "{message}");
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains(s.as_str()), "secret echoed: {message}");
        }
    }

    #[test]
    fn base36_matches_known_values_and_pads() {
        assert_eq!(encode_base36(&[], 3), "000");
        assert_eq!(encode_base36(&[0, 0], 0), "");
        assert_eq!(encode_base36(&[35], 1), "z");
        assert_eq!(encode_base36(&[36], 1), "10");
        assert_eq!(encode_base36(&[0x01, 0x00], 4), "0074"); // 256 = 7*36 + 4
        assert_eq!(encode_base36(&[0xff; 16], 25), "f5lxx1zz5pnorynqglhzmsp33");
        assert_eq!(encode_base36(&[0xff; 32], 0).len(), DIGEST_LEN);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
