//! The cluster as this manager's copy of the store shows it, computed at
//! scrape time: nodes by state and availability, managers, the leader,
//! every service's desired and running replicas (the same rule as
//! `service ls`'s REPLICAS: `rswarm_proto::spec::replicas`), tasks by
//! state and services by rolling-update state. Every manager reports it
//! from its own copy (a follower may trail the leader by a moment); a
//! worker, or a daemon whose manager is stopped, reports none of it.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_status::State as UpdateState;
use rswarm_proto::types::{Node, NodeAvailability, NodeState, Service, Task, TaskState};
use rswarm_raft::Store;

use crate::objects;

const NODE_STATES: [NodeState; 4] = [
    NodeState::Unknown,
    NodeState::Down,
    NodeState::Ready,
    NodeState::Disconnected,
];
const AVAILABILITIES: [NodeAvailability; 3] = [
    NodeAvailability::Active,
    NodeAvailability::Pause,
    NodeAvailability::Drain,
];
const TASK_STATES: [TaskState; 14] = [
    TaskState::New,
    TaskState::Pending,
    TaskState::Assigned,
    TaskState::Accepted,
    TaskState::Preparing,
    TaskState::Ready,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Complete,
    TaskState::Shutdown,
    TaskState::Failed,
    TaskState::Rejected,
    TaskState::Remove,
    TaskState::Orphaned,
];
/// The update states of a rolling update (or rollback) in progress.
const ROLLING: [UpdateState; 4] = [
    UpdateState::Updating,
    UpdateState::Paused,
    UpdateState::RollbackStarted,
    UpdateState::RollbackPaused,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    state: String,
    availability: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaderLabels {
    node_id: String,
}

/// A protobuf enum's name in a label: `NODE_STATE_READY` → `ready`.
fn word(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// A service's mode as `service ls --filter mode=` spells it.
fn mode_word(svc: &Service) -> &'static str {
    match svc.spec.as_ref().and_then(|s| s.mode.as_ref()) {
        Some(Mode::Global(_)) => "global",
        Some(Mode::ReplicatedJob(_)) => "replicated-job",
        Some(Mode::GlobalJob(_)) => "global-job",
        Some(Mode::Replicated(_)) | None => "replicated",
    }
}

/// One scrape's counts.
#[derive(Debug, Default)]
pub(crate) struct ClusterCounts {
    nodes: Family<NodeLabels, Gauge>,
    managers: Gauge,
    leader: Family<LeaderLabels, Gauge>,
    desired: Family<ServiceLabels, Gauge>,
    running: Family<ServiceLabels, Gauge>,
    tasks: Family<StateLabels, Gauge>,
    updates: Family<StateLabels, Gauge>,
}

impl ClusterCounts {
    /// Counts the store's objects; `leader_raft_id` is the Raft leader this
    /// manager knows.
    pub(crate) fn of(
        nodes: &[Node],
        services: &[Service],
        tasks: &[Task],
        leader_raft_id: Option<u64>,
    ) -> ClusterCounts {
        let c = ClusterCounts::default();
        for s in NODE_STATES {
            for a in AVAILABILITIES {
                c.nodes
                    .get_or_create(&NodeLabels {
                        state: word(s.as_str_name(), "NODE_STATE_"),
                        availability: word(a.as_str_name(), "NODE_AVAILABILITY_"),
                    })
                    .set(0);
            }
        }
        let mut down = HashSet::new();
        for n in nodes {
            let state = n
                .status
                .as_ref()
                .and_then(|s| NodeState::try_from(s.state).ok())
                .unwrap_or(NodeState::Unknown);
            if state == NodeState::Down {
                down.insert(n.id.clone());
            }
            let availability = n
                .spec
                .as_ref()
                .and_then(|s| NodeAvailability::try_from(s.availability).ok())
                .unwrap_or(NodeAvailability::Active);
            c.nodes
                .get_or_create(&NodeLabels {
                    state: word(state.as_str_name(), "NODE_STATE_"),
                    availability: word(availability.as_str_name(), "NODE_AVAILABILITY_"),
                })
                .inc();
            if objects::is_manager(n) {
                c.managers.inc();
                if leader_raft_id == Some(objects::raft_id_for(&n.id)) {
                    c.leader
                        .get_or_create(&LeaderLabels {
                            node_id: n.id.clone(),
                        })
                        .set(1);
                }
            }
        }
        for s in ROLLING {
            c.updates
                .get_or_create(&StateLabels {
                    state: word(s.as_str_name(), ""),
                })
                .set(0);
        }
        for svc in services {
            let labels = ServiceLabels {
                service: objects::service_name(svc).to_string(),
                mode: mode_word(svc).to_string(),
            };
            let counts = rswarm_proto::spec::replicas::counts(svc, tasks, &down);
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            c.desired.get_or_create(&labels).set(n(counts.desired));
            c.running.get_or_create(&labels).set(n(counts.running));
            let update = svc
                .update_status
                .as_ref()
                .and_then(|u| UpdateState::try_from(u.state).ok())
                .unwrap_or(UpdateState::Unknown);
            if ROLLING.contains(&update) {
                c.updates
                    .get_or_create(&StateLabels {
                        state: word(update.as_str_name(), ""),
                    })
                    .inc();
            }
        }
        for s in TASK_STATES {
            c.tasks
                .get_or_create(&StateLabels {
                    state: word(s.as_str_name(), "TASK_STATE_"),
                })
                .set(0);
        }
        for t in tasks {
            let state = t
                .status
                .as_ref()
                .and_then(|s| TaskState::try_from(s.state).ok())
                .unwrap_or(TaskState::New);
            c.tasks
                .get_or_create(&StateLabels {
                    state: word(state.as_str_name(), "TASK_STATE_"),
                })
                .inc();
        }
        c
    }

    pub(crate) fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let families: [(&str, &str, &dyn EncodeMetric); 7] = [
            (
                "nodes",
                "Nodes in the swarm by status and availability (every manager's own view)",
                &self.nodes,
            ),
            (
                "managers",
                "Manager nodes in the swarm (every manager's own view)",
                &self.managers,
            ),
            (
                "cluster_leader",
                "The manager this manager knows as the Raft leader (value 1)",
                &self.leader,
            ),
            (
                "service_replicas_desired",
                "Tasks a service should run, as service ls counts them (every manager's own view)",
                &self.desired,
            ),
            (
                "service_replicas_running",
                "Tasks of a service running on nodes that are not down, as service ls counts them (every manager's own view)",
                &self.running,
            ),
            (
                "tasks",
                "Tasks in the store by their current state, history included (every manager's own view)",
                &self.tasks,
            ),
            (
                "orchestrator_rolling_updates",
                "Services with a rolling update or rollback in progress, by update state (every manager's own view)",
                &self.updates,
            ),
        ];
        for (name, help, metric) in families {
            let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(m)?;
        }
        Ok(())
    }
}

/// The cluster view of the running manager's store, if any.
#[derive(Default)]
pub struct ClusterCollector {
    store: Mutex<Option<Store>>,
}

impl fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCollector").finish_non_exhaustive()
    }
}

impl ClusterCollector {
    pub(crate) fn attach(&self, store: &Store) {
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = Some(store.clone());
    }

    pub(crate) fn detach(&self) {
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn read(store: &Store) -> Result<ClusterCounts, crate::ManagerError> {
        let nodes = objects::list::<Node>(store)?;
        let services = objects::list::<Service>(store)?;
        let tasks = objects::list::<Task>(store)?;
        Ok(ClusterCounts::of(
            &nodes,
            &services,
            &tasks,
            store.status().leader,
        ))
    }
}

impl Collector for ClusterCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(store) = store else {
            return Ok(());
        };
        match Self::read(&store) {
            Ok(counts) => counts.encode(encoder),
            Err(e) => {
                tracing::warn!(error = %e, "reading the store for the cluster metrics");
                Ok(())
            }
        }
    }
}
