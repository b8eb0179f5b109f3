//! The agent: what every node runs. It starts itself from [`AgentSettings`]
//! ([`start`]): the node's session with the managers (`session`: heartbeats
//! to the leader, failover between managers, certificate renewal, which is
//! how a promotion or demotion reaches the node), the worker that reconciles
//! assigned tasks (`worker`, `exec`), the image store (`image`), the OCI
//! runtime (`runtime`) and the overlay data plane (`netplane`).

pub mod exec;
pub mod image;
pub mod managers;
pub mod netplane;
pub mod renewal;
pub mod reporter;
pub mod runtime;
pub mod session;
mod start;
pub mod subscriptions;
#[cfg(test)]
mod testing;
pub mod worker;

pub use session::{AgentConfig, AgentEvent, AgentHandle, LeaderChannel};
pub use start::{start, AgentSettings};
