//! rswarm's wire protocol: the protobuf domain objects (`types`) and the gRPC
//! services between CLI, daemons and managers (`control`, `daemon`, `ca`,
//! `dispatcher`, `raft`), generated at build time from `protos/`.
//!
//! `spec` holds the rules of a service spec, once: image references, units,
//! ports, mounts, constraints, names, bounds and one `validate()`.
//!
//! `identity` holds what both sides of a connection must agree on: the join
//! token format, what a node certificate says about its holder, and the
//! rustls configurations every TCP connection between nodes uses.

#![allow(clippy::large_enum_variant)]

pub mod types {
    tonic::include_proto!("rswarm.types");
}
pub mod control {
    tonic::include_proto!("rswarm.control");
}
pub mod daemon {
    tonic::include_proto!("rswarm.daemon");
}
pub mod ca {
    tonic::include_proto!("rswarm.ca");
}
pub mod dispatcher {
    tonic::include_proto!("rswarm.dispatcher");
}
pub mod raft {
    tonic::include_proto!("rswarm.raft");
}

/// The version every rswarm binary reports (`rswarm version`, node ENGINE VERSION).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub mod identity;
pub mod paging;
pub mod spec;
