//! The agent: what every node runs. Today it is the node's session with the
//! managers (`session`): heartbeats to the leader, failover between managers,
//! and certificate renewal, which is how a promotion or demotion reaches the
//! node. Later issues add the task executor beside it.

pub mod exec;
pub mod image;
pub mod managers;
pub mod netplane;
pub mod renewal;
pub mod reporter;
pub mod runtime;
pub mod session;
pub mod subscriptions;
#[cfg(test)]
mod testing;
pub mod worker;

pub use session::{start, AgentConfig, AgentEvent, AgentHandle, LeaderChannel};
