//! The agent: what every node runs. Today it is the node's session with the
//! managers (`session`): heartbeats to the leader, failover between managers,
//! and certificate renewal, which is how a promotion or demotion reaches the
//! node. Later issues add the task executor beside it.

pub mod image;
pub mod runtime;
pub mod session;

pub use session::{start, AgentConfig, AgentEvent, AgentHandle};
