//! Node identity: what both ends of a connection between nodes agree on.
//!
//! - [`token`]: the Swarm-style join token (`SWMTKN-1-<CA digest>-<secret>`) that
//!   pins the cluster CA and authorises a node to get a certificate.
//! - [`cert`]: what a node certificate says about its holder (node ID, role,
//!   cluster ID, expiry).
//! - [`keys`]: a node's private key and the certificate signing request it sends
//!   when joining or renewing; the key never leaves the node.
//! - [`tls`]: the mutual-TLS configuration of every TCP connection between nodes
//!   (server, client, the unverified bootstrap used by `join`, and who is calling).
//!
//! Creating the root CA and signing certificates is the manager's business
//! (`rswarm_manager::ca`); this module only holds what a worker needs too.

pub mod cert;
pub mod keys;
pub mod tls;
pub mod token;

pub use cert::{CertError, NodeIdentity};
pub use tls::{NodeTls, TlsError};
pub use token::{JoinToken, TokenError};
