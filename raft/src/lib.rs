//! rswarm's replicated cluster store. Managers keep one store of objects
//! (`kind/id` → bytes, usually a protobuf message) consistent through Raft
//! (openraft), with the log, vote, state machine and snapshots in sled under the
//! manager's data dir, and Raft traffic over the `Raft` gRPC service.
//!
//! What it offers: atomic batched writes with optimistic version checks
//! (`Store::write`, forwarded to the leader from any manager), local reads,
//! a stream of applied changes (`Store::watch`), membership changes, status, and
//! the offline `force_new_cluster` recovery. What it does not do: authenticate
//! peers (the manager mounts `Store::service` behind its mTLS checks and gives
//! the store a `Connector` that makes authenticated channels), or know what the
//! objects mean.

mod config;
mod error;
mod forward;
pub mod metrics;
mod network;
mod service;
mod store;
mod types;
mod wire;

#[cfg(test)]
mod tests;

pub use config::StoreConfig;
pub use error::StoreError;
pub use metrics::RaftMetrics;
pub use network::Connector;
pub use store::sealed::{DataKey, SealError};
pub use store::Store;
pub use types::{Change, Object, Op, RaftStatus};
