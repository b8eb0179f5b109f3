//! The executor: what the agent does with one task. `Controller` is the
//! interface (prepare, start, wait, shutdown, remove, inspect) with the
//! container runtime behind it (`container`); `taskstate` drives a task
//! through Swarm's states with it, in one place, and runs its health
//! checks (`health`) while it runs; `resolv` writes a task's resolv.conf
//! and extra /etc/hosts entries from its spec.

pub(crate) mod container;
pub(crate) mod health;
mod probe;
pub(crate) mod resolv;
pub(crate) mod taskstate;
#[cfg(test)]
mod taskstate_tests;
#[cfg(test)]
pub(crate) mod testing;

use std::time::Duration;

use rswarm_proto::types::Task;

/// How a task's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    /// None when the process ended while the agent was not its parent.
    pub code: Option<i32>,
    pub oom_killed: bool,
}

/// What a container looks like right now, for adopting it after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    Created,
    Running { pid: u32 },
    Stopped,
}

#[derive(thiserror::Error, Debug)]
pub(crate) enum ExecError {
    /// The task cannot run here as specified (image missing, bad mount...):
    /// it is rejected, not retried on this node.
    #[error("{0}")]
    Rejected(String),
    /// Something failed while running it.
    #[error("{0}")]
    Failed(String),
}

/// The executor interface of one task kind (containers today).
#[tonic::async_trait]
pub(crate) trait Controller: Send + Sync + 'static {
    /// Pull the image and create the container, ready to start.
    async fn prepare(&self, task: &Task) -> Result<(), ExecError>;
    /// Start the prepared container; returns its PID.
    async fn start(&self, task: &Task) -> Result<u32, ExecError>;
    /// Wait until the task's process ends.
    async fn wait(&self, task: &Task) -> Result<Exit, ExecError>;
    /// Stop it: stop signal, grace period, then SIGKILL.
    async fn shutdown(&self, task: &Task) -> Result<(), ExecError>;
    /// Remove the container and what it left on disk (not its logs).
    async fn remove(&self, task: &Task) -> Result<(), ExecError>;
    /// The container of this task, if it exists (after a restart of the agent).
    async fn inspect(&self, task: &Task) -> Result<Option<Existing>, ExecError>;
    /// The health check the task runs (its spec's, else its image's); None
    /// without one. Asked once the image is on the node.
    fn health_check(&self, _task: &Task) -> Option<health::Check> {
        None
    }
    /// Runs one probe inside the task's running container, killed at
    /// `timeout`. A probe that cannot run is a failed probe.
    async fn probe(&self, _task: &Task, _args: &[String], _timeout: Duration) -> health::Probe {
        health::Probe::not_run("this executor cannot run health probes")
    }
    /// Returns once the task is no longer a backend of its services' VIPs,
    /// routing mesh and DNS (the manager asked for its stop, or was told it
    /// is unhealthy), or after a bounded wait. Called before `shutdown`.
    async fn drain(&self, _task: &Task) {}
}
