//! Registry credentials that come with a task (a service created with
//! `--with-registry-auth`) and `rswarm login`'s check of credentials.
//!
//! * [`PullAuth`] is Docker's `X-Registry-Auth`: base64url (padded or not)
//!   of the JSON `{"username", "password", "serveraddress"}`, the form the
//!   CLI puts in a spec's `PullOptions.registry_auth`. The credentials are
//!   used only for the registry they name (`serveraddress`, compared as
//!   `pull::auth_key`), never sent to another one; they win over the daemon
//!   config's `auths` for that registry. `Debug` hides the password.
//! * [`ImageStore::login`](super::ImageStore::login) is dockerd's side of
//!   `docker login`: the registry is reached with the rules of a pull
//!   (insecure registries tried over HTTPS without checks, then plain HTTP),
//!   the credentials are exchanged for a token when the registry asks for
//!   one, or checked with an authenticated request (`GET /v2/_catalog?n=1`)
//!   when it asks for basic auth, since a basic challenge alone proves
//!   nothing. Nothing is stored.

use base64::Engine as _;
use serde::Deserialize;

use super::ImageError;

/// Credentials for one registry, sent with one pull.
#[derive(Clone, PartialEq, Eq)]
pub struct PullAuth {
    /// `host[:port]` (or a URL) of the registry they are for.
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for PullAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Encoded {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "serveraddress")]
    server_address: String,
}

impl PullAuth {
    /// Decodes a spec's `registry_auth`. The error never repeats the value.
    pub fn decode(encoded: &str) -> Result<PullAuth, ImageError> {
        let bad = |why: &str| ImageError::BadCredentials(why.to_string());
        let trimmed = encoded.trim().trim_end_matches('=');
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| bad("not base64"))?;
        let e: Encoded = serde_json::from_slice(&bytes).map_err(|_| bad("not JSON"))?;
        if e.server_address.is_empty() || e.username.is_empty() {
            return Err(bad("no server address or user name"));
        }
        Ok(PullAuth {
            server: e.server_address,
            username: e.username,
            password: e.password,
        })
    }

    /// Whether these credentials are for the registry at `host`.
    pub(crate) fn is_for(&self, host: &str) -> bool {
        super::pull::auth_key(&self.server) == super::pull::auth_key(host)
    }

    /// A key for sharing in-flight pulls: pulls with other credentials do
    /// not share one download (nor its refusal).
    pub(crate) fn pull_key(&self) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for part in [&self.server, &self.username, &self.password] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        format!("{:x}", h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    #[test]
    fn docker_registry_auth_decodes() {
        let a = PullAuth::decode(&encode(
            r#"{"username":"alice","password":"s3cret","serveraddress":"10.77.0.2:5001"}"#,
        ))
        .unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.password, "s3cret");
        assert!(a.is_for("10.77.0.2:5001"));
        assert!(!a.is_for("10.77.0.2:5000"));
        assert!(!format!("{a:?}").contains("s3cret"));
        let hub = PullAuth::decode(&encode(
            r#"{"username":"bob","password":"x","serveraddress":"https://index.docker.io/v1/"}"#,
        ))
        .unwrap();
        assert!(hub.is_for("docker.io"));
    }

    #[test]
    fn garbage_is_refused_without_echoing_it() {
        for bad in ["%%%", &encode("not json"), &encode(r#"{"password":"p"}"#)] {
            let e = PullAuth::decode(bad).unwrap_err().to_string();
            assert!(e.contains("invalid registry credentials"), "{e}");
            assert!(!e.contains("p\""), "{e}");
        }
    }
}
