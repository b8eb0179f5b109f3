//! What the agent measures, for the daemon's Prometheus registry.
//!
//! Per task, labels `service`, `task`, `slot` (empty for a global service's
//! task) and `node`, read at scrape time over the tasks this node runs now
//! (a task that stopped has no series any more; see `tasks`):
//! - `rswarm_task_cpu_seconds_total`: CPU time (user + system) from the
//!   task's cgroup (v1 `cpuacct`, v2 `cpu.stat`);
//! - `rswarm_task_memory_usage_bytes`, `rswarm_task_memory_limit_bytes`
//!   (the limit only when one is set): from the memory controller, usage
//!   without the inactive page cache as `docker stats` shows it;
//! - `rswarm_task_network_receive_bytes_total`,
//!   `rswarm_task_network_transmit_bytes_total`: every interface of the
//!   task's network namespace but `lo` (`/proc/<pid>/net/dev`);
//! - `rswarm_task_restarts_total`: restarts of the task's slot before it
//!   (the restart policy's count the task carries);
//! - `rswarm_task_health_status{status}`: 1 for the task's health check
//!   state (`starting`, `healthy`, `unhealthy`), 0 for the others; tasks
//!   without a check have none.
//!
//! Per node:
//! - `rswarm_image_pulls_total{result=success|failure}` and
//!   `rswarm_image_pull_duration_seconds` (one per download: concurrent
//!   pulls of one image share it);
//! - `rswarm_container_start_duration_seconds`: `runc create` plus
//!   `runc start` of a task's container.
//!
//! [`AgentMetrics::register`] puts them in a registry once per daemon; a
//! `Default` value measures into handles no registry reads.

pub(crate) mod netdev;
mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The data plane's metrics (DNS, service backends), which the agent's net
/// plane feeds; re-exported so the daemon registers them without a
/// dependency on the overlay crate.
pub use rswarm_overlay::metrics::OverlayMetrics;
pub(crate) use tasks::TaskTable;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PullLabels {
    result: String,
}

/// The agent's metric handles (cheap to clone).
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    pub(crate) tasks: Arc<TaskTable>,
    pulls: Family<PullLabels, Counter>,
    pull_seconds: Histogram,
    start_seconds: Histogram,
    /// `runc create` time of containers not started yet, by container id.
    created: Arc<Mutex<HashMap<String, Duration>>>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self {
            tasks: Arc::default(),
            pulls: Family::default(),
            // 50 ms … ~100 s.
            pull_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            // 5 ms … ~10 s.
            start_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            created: Arc::default(),
        }
    }
}

impl AgentMetrics {
    /// Makes the handles and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "image_pulls",
            "Image pulls from a registry by result (success or failure)",
            m.pulls.clone(),
        );
        registry.register_with_unit(
            "image_pull_duration",
            "Time an image pull from a registry took",
            Unit::Seconds,
            m.pull_seconds.clone(),
        );
        registry.register_with_unit(
            "container_start_duration",
            "Time a task's container took to start (runc create and runc start)",
            Unit::Seconds,
            m.start_seconds.clone(),
        );
        registry.register_collector(Box::new(m.tasks.clone()));
        m
    }

    /// One image download ended after `took`.
    pub fn image_pulled(&self, ok: bool, took: Duration) {
        let result = if ok { "success" } else { "failure" };
        self.pulls
            .get_or_create(&PullLabels {
                result: result.into(),
            })
            .inc();
        self.pull_seconds.observe(took.as_secs_f64());
    }

    /// The pulls counted with this result so far.
    pub fn image_pulls(&self, ok: bool) -> u64 {
        let result = if ok { "success" } else { "failure" };
        self.pulls
            .get(&PullLabels {
                result: result.into(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// `runc create` of container `id` took `took`.
    pub(crate) fn container_created(&self, id: &str, took: Duration) {
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the containers being prepared; a create never started
        // is dropped with the next one.
        if created.len() > 10_000 {
            created.clear();
        }
        created.insert(id.to_string(), took);
    }

    /// `runc start` of container `id` took `took`: observes create + start.
    pub(crate) fn container_started(&self, id: &str, took: Duration) {
        let create = self
            .created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .unwrap_or_default();
        self.start_seconds.observe((create + took).as_secs_f64());
    }

    /// Forget the `runc create` time of a container that will not start.
    pub(crate) fn container_gone(&self, id: &str) {
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn pulls_and_start_latency_encode_with_units() {
        let mut reg = Registry::with_prefix("rswarm");
        let m = AgentMetrics::register(&mut reg);
        m.image_pulled(true, Duration::from_millis(300));
        m.image_pulled(false, Duration::from_millis(20));
        m.container_created("c1", Duration::from_millis(30));
        m.container_started("c1", Duration::from_millis(10));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        assert!(out.contains(r#"rswarm_image_pulls_total{result="success"} 1"#));
        assert!(out.contains(r#"rswarm_image_pulls_total{result="failure"} 1"#));
        assert!(out.contains("rswarm_image_pull_duration_seconds_count 2"));
        assert!(out.contains("rswarm_container_start_duration_seconds_count 1"));
        // 40 ms: in the 0.04 bucket, not the 0.02 one.
        assert!(out.contains(r#"rswarm_container_start_duration_seconds_bucket{le="0.04"} 1"#));
        assert!(out.contains(r#"rswarm_container_start_duration_seconds_bucket{le="0.02"} 0"#));
        assert!(out.contains("# HELP rswarm_task_cpu_seconds "));
    }
}
