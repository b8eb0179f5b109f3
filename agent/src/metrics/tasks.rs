//! The tasks this node runs now, as the metrics see them: the worker tells
//! [`TaskTable`] when a task's driver starts ([`TaskTable::track`]), every
//! status report it sends ([`TaskTable::observe`]: state, container pid,
//! health) and when the driver ends ([`TaskTable::forget`]). At scrape time
//! the table is a `Collector`: for each task RUNNING with a pid it reads the
//! task's cgroup and network counters (see the parent module for the
//! families). Nothing is read between scrapes.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use rswarm_proto::types::{Task, TaskState, TaskStatus};

use super::netdev;
use crate::runtime::cgroups;

/// Labels of a task's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TaskLabels {
    pub service: String,
    pub task: String,
    pub slot: String,
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    service: String,
    task: String,
    slot: String,
    node: String,
    status: String,
}

#[derive(Clone, Debug)]
struct Entry {
    labels: TaskLabels,
    /// The container's cgroupsPath.
    cgroup: String,
    /// The container's init pid while RUNNING, else 0.
    pid: u32,
    /// "" without a health check.
    health: String,
    restarts: u32,
}

/// The tasks this node's worker drives now.
#[derive(Debug, Default)]
pub(crate) struct TaskTable {
    tasks: Mutex<HashMap<String, Entry>>,
}

impl TaskTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A driver for `task` started (or got a newer version of it).
    pub(crate) fn track(&self, task: &Task) {
        let labels = TaskLabels {
            service: task
                .service_annotations
                .as_ref()
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            task: task.id.clone(),
            slot: if task.slot > 0 {
                task.slot.to_string()
            } else {
                String::new()
            },
            node: task.node_id.clone(),
        };
        let cgroup = cgroups::cgroups_path(crate::exec::container::container_id(task));
        let mut tasks = self.lock();
        let e = tasks.entry(task.id.clone()).or_insert_with(|| Entry {
            labels: labels.clone(),
            cgroup: cgroup.clone(),
            pid: 0,
            health: String::new(),
            restarts: 0,
        });
        e.labels = labels;
        e.cgroup = cgroup;
        e.restarts = task.restart_count;
    }

    /// The driver of `task_id` reported `status`.
    pub(crate) fn observe(&self, task_id: &str, status: &TaskStatus) {
        let mut tasks = self.lock();
        let Some(e) = tasks.get_mut(task_id) else {
            return;
        };
        let pid = status.container_status.as_ref().map(|c| c.pid).unwrap_or(0);
        e.pid = if status.state == TaskState::Running as i32 && pid > 0 {
            pid as u32
        } else {
            0
        };
        e.health = status.health.clone();
    }

    /// The driver of `task_id` ended.
    pub(crate) fn forget(&self, task_id: &str) {
        self.lock().remove(task_id);
    }

    fn running(&self) -> Vec<Entry> {
        self.lock()
            .values()
            .filter(|e| e.pid > 0)
            .cloned()
            .collect()
    }
}

type FloatCounter = Counter<f64, AtomicU64>;

fn family<M: EncodeMetric + prometheus_client::metrics::TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    family: &Family<TaskLabels, M>,
    metric_type: MetricType,
) -> Result<(), std::fmt::Error> {
    let m = encoder.encode_descriptor(name, help, None, metric_type)?;
    family.encode(m)
}

impl Collector for TaskTable {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cpu = Family::<TaskLabels, FloatCounter>::default();
        let mem = Family::<TaskLabels, Gauge>::default();
        let limit = Family::<TaskLabels, Gauge>::default();
        let rx = Family::<TaskLabels, Counter>::default();
        let tx = Family::<TaskLabels, Counter>::default();
        let restarts = Family::<TaskLabels, Counter>::default();
        let health = Family::<HealthLabels, Gauge>::default();
        let running = self.running();
        let hierarchies = if running.is_empty() {
            cgroups::Hierarchies::default()
        } else {
            cgroups::Hierarchies::detect()
        };
        for e in running {
            let stats = hierarchies.stats(&e.cgroup);
            let l = &e.labels;
            if let Some(s) = stats.cpu_seconds {
                cpu.get_or_create(l).inc_by(s);
            }
            if let Some(b) = stats.memory_bytes {
                mem.get_or_create(l)
                    .set(i64::try_from(b).unwrap_or(i64::MAX));
            }
            if let Some(b) = stats.memory_limit_bytes {
                limit
                    .get_or_create(l)
                    .set(i64::try_from(b).unwrap_or(i64::MAX));
            }
            if let Some(n) = netdev::read(e.pid) {
                rx.get_or_create(l).inc_by(n.rx);
                tx.get_or_create(l).inc_by(n.tx);
            }
            restarts.get_or_create(l).inc_by(u64::from(e.restarts));
            if !e.health.is_empty() {
                for status in ["starting", "healthy", "unhealthy"] {
                    health
                        .get_or_create(&HealthLabels {
                            service: l.service.clone(),
                            task: l.task.clone(),
                            slot: l.slot.clone(),
                            node: l.node.clone(),
                            status: status.into(),
                        })
                        .set((e.health == status) as i64);
                }
            }
        }
        family(
            &mut encoder,
            "task_cpu_seconds",
            "CPU time (user and system) a running task used, from its cgroup",
            &cpu,
            MetricType::Counter,
        )?;
        family(
            &mut encoder,
            "task_memory_usage_bytes",
            "Memory a running task uses, without the inactive page cache",
            &mem,
            MetricType::Gauge,
        )?;
        family(
            &mut encoder,
            "task_memory_limit_bytes",
            "Memory limit of a running task (tasks without a limit have no series)",
            &limit,
            MetricType::Gauge,
        )?;
        family(
            &mut encoder,
            "task_network_receive_bytes",
            "Bytes a running task received, every interface of its network namespace but lo",
            &rx,
            MetricType::Counter,
        )?;
        family(
            &mut encoder,
            "task_network_transmit_bytes",
            "Bytes a running task sent, every interface of its network namespace but lo",
            &tx,
            MetricType::Counter,
        )?;
        family(
            &mut encoder,
            "task_restarts",
            "Restarts of a running task's slot before this task (restart policy)",
            &restarts,
            MetricType::Counter,
        )?;
        let m = encoder.encode_descriptor(
            "task_health_status",
            "Health check state of a running task: 1 for its status (starting, healthy, unhealthy), 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        health.encode(m)
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use rswarm_proto::types::{Annotations, ContainerStatus};

    fn task(id: &str, slot: u64) -> Task {
        Task {
            id: id.into(),
            slot,
            node_id: "n1".into(),
            service_annotations: Some(Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            restart_count: 2,
            ..Default::default()
        }
    }

    fn status(state: TaskState, pid: i32, health: &str) -> TaskStatus {
        TaskStatus {
            state: state as i32,
            container_status: Some(ContainerStatus {
                pid,
                ..Default::default()
            }),
            health: health.into(),
            ..Default::default()
        }
    }

    fn scrape(table: TaskTable) -> String {
        let mut reg = prometheus_client::registry::Registry::with_prefix("rswarm");
        reg.register_collector(Box::new(table));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        out
    }

    #[test]
    fn only_running_tasks_have_series_with_their_labels_health_and_restarts() {
        let table = TaskTable::default();
        table.track(&task("t1", 3));
        table.track(&task("t2", 1));
        table.track(&task("t3", 0));
        // This test process stands in for t1's container (its own /proc/net/dev).
        table.observe(
            "t1",
            &status(TaskState::Running, std::process::id() as i32, "healthy"),
        );
        table.observe("t2", &status(TaskState::Starting, 0, ""));
        table.observe(
            "t3",
            &status(TaskState::Running, std::process::id() as i32, ""),
        );
        table.observe("unknown", &status(TaskState::Running, 1, ""));
        table.forget("t3");
        let out = scrape(table);
        let l = r#"service="web",task="t1",slot="3",node="n1""#;
        assert!(
            out.contains(&format!("rswarm_task_restarts_total{{{l}}} 2")),
            "{out}"
        );
        assert!(out.contains(&format!(
            "rswarm_task_health_status{{{l},status=\"healthy\"}} 1"
        )));
        assert!(out.contains(&format!(
            "rswarm_task_health_status{{{l},status=\"unhealthy\"}} 0"
        )));
        assert!(out.contains(&format!("rswarm_task_network_receive_bytes_total{{{l}}} ")));
        assert!(!out.contains(r#"task="t2""#), "not running: {out}");
        assert!(!out.contains(r#"task="t3""#), "forgotten: {out}");
        assert!(out.contains("# HELP rswarm_task_memory_usage_bytes "));
    }

    #[test]
    fn a_task_that_stops_running_loses_its_series() {
        let table = TaskTable::default();
        table.track(&task("t1", 1));
        table.observe(
            "t1",
            &status(TaskState::Running, std::process::id() as i32, ""),
        );
        table.observe(
            "t1",
            &status(TaskState::Complete, std::process::id() as i32, ""),
        );
        let out = scrape(table);
        assert!(!out.contains(r#"task="t1""#), "{out}");
    }
}
