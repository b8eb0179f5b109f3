//! The client commands, one module per Docker command group.

pub mod node;
pub mod swarm;
pub mod system;
