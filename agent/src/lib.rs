//! The agent: what every node runs. It starts itself from [`AgentSettings`]
//! ([`start`]):
//!
//! - `session`: the node's session with the managers — heartbeats to the
//!   leader, failover between managers (`managers`) and certificate renewal
//!   (`renewal`), which is how a promotion or demotion reaches the node;
//! - `worker`: keeps this node's tasks in line with the leader's
//!   assignments, one driver per task through the executor (`exec`), over
//!   the container runtime (`runtime`, runc) and the image store (`image`);
//!   task states go back in batches (`reporter`), and the leader's log and
//!   exec requests are served (`subscriptions`);
//! - `netplane`: the node's side of networking (overlay segments, task
//!   namespaces, service VIPs, the routing mesh, embedded DNS);
//! - `taskfiles`: the secrets and configs sent for this node's tasks, in
//!   memory only, mounted into each task on a tmpfs of its own;
//! - `volumes`: the node's named volumes (Docker's `local` driver), made
//!   for tasks and served to `rswarm volume` by the daemon;
//! - `metrics`: what the agent measures (per-task CPU, memory, network,
//!   restarts and health read at scrape time; image pulls; container start
//!   latency), registered once in the daemon's registry.

#![warn(unreachable_pub)]

pub(crate) mod exec;
pub mod image;
pub(crate) mod managers;
pub mod metrics;
pub mod netplane;
pub(crate) mod renewal;
pub(crate) mod reporter;
pub mod runtime;
pub(crate) mod session;
mod start;
pub(crate) mod subscriptions;
pub(crate) mod taskfiles;
#[cfg(test)]
mod testing;
pub mod volumes;
pub(crate) mod worker;

pub use session::{AgentConfig, AgentEvent, AgentHandle, LeaderChannel};
pub use start::{start, AgentSettings};
