//! Runs a task's applicable filters over nodes, and explains a task that no
//! node can take: each refused node is blamed on the first rule it fails,
//! and the counts become Docker's message, e.g. "no suitable node (1 node
//! not available for new tasks; max replicas per node limit exceed on 2
//! nodes)".

use super::filter::{Candidate, Filter, Request, FILTERS};

/// The filters that apply to one request.
pub(crate) struct Pipeline<'r> {
    req: &'r Request,
    filters: Vec<&'static dyn Filter>,
}

impl<'r> Pipeline<'r> {
    pub(crate) fn new(req: &'r Request) -> Pipeline<'r> {
        Pipeline {
            req,
            filters: FILTERS.iter().copied().filter(|f| f.enabled(req)).collect(),
        }
    }

    /// The index of the first filter the node fails.
    fn first_failure(&self, c: Candidate<'_>) -> Option<usize> {
        self.filters.iter().position(|f| !f.check(self.req, c))
    }

    /// Whether the node passes every filter.
    pub(crate) fn passes(&self, c: Candidate<'_>) -> bool {
        self.first_failure(c).is_none()
    }

    /// The metric label of why none of `candidates` can take the task: the
    /// rule that refused the most of them (the first in order on a tie),
    /// `no_nodes` without candidates.
    pub(crate) fn reason<'a>(
        &self,
        candidates: impl Iterator<Item = Candidate<'a>>,
    ) -> &'static str {
        let mut failures = vec![0usize; self.filters.len()];
        let mut any = false;
        for c in candidates {
            any = true;
            if let Some(i) = self.first_failure(c) {
                failures[i] += 1;
            }
        }
        if !any {
            return "no_nodes";
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, n) in failures.iter().enumerate() {
            if *n > 0 && best.is_none_or(|(_, m)| *n > m) {
                best = Some((i, *n));
            }
        }
        best.map_or("no_suitable_node", |(i, _)| self.filters[i].reason())
    }

    /// The pending message for a task none of `candidates` can take.
    pub(crate) fn explain<'a>(&self, candidates: impl Iterator<Item = Candidate<'a>>) -> String {
        let mut failures = vec![0usize; self.filters.len()];
        for c in candidates {
            if let Some(i) = self.first_failure(c) {
                failures[i] += 1;
            }
        }
        let reasons: Vec<String> = self
            .filters
            .iter()
            .zip(&failures)
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| f.explain(*n))
            .collect();
        if reasons.is_empty() {
            "no suitable node".into()
        } else {
            format!("no suitable node ({})", reasons.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::nodeinfo::NodeInfo;
    use rswarm_proto::types::{
        Node, NodeAvailability, NodeSpec, NodeState, NodeStatus, Placement, Task, TaskSpec,
    };

    fn node(state: NodeState, availability: NodeAvailability) -> Node {
        Node {
            spec: Some(NodeSpec {
                availability: availability as i32,
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: state as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn refusals_are_blamed_on_the_first_failing_rule_in_order() {
        let task = Task {
            service_id: "s".into(),
            spec: Some(TaskSpec {
                placement: Some(Placement {
                    max_replicas: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = Request::of(&task);
        let pipeline = Pipeline::new(&req);
        let ready = node(NodeState::Ready, NodeAvailability::Active);
        let drained = node(NodeState::Ready, NodeAvailability::Drain);
        let full = NodeInfo {
            service_tasks: [("s".to_string(), 1)].into(),
            active_tasks: 1,
            ..Default::default()
        };
        let empty = NodeInfo::default();
        let candidates = [
            Candidate {
                node: &drained,
                info: &empty,
            },
            Candidate {
                node: &ready,
                info: &full,
            },
            Candidate {
                node: &ready,
                info: &full,
            },
        ];
        assert!(!pipeline.passes(candidates[1]));
        assert!(pipeline.passes(Candidate {
            node: &ready,
            info: &empty
        }));
        assert_eq!(
            pipeline.explain(candidates.into_iter()),
            "no suitable node (1 node not available for new tasks; max replicas per node limit exceed on 2 nodes)"
        );
        assert_eq!(pipeline.explain(std::iter::empty()), "no suitable node");
        assert_eq!(
            pipeline.reason(candidates.into_iter()),
            "max_replicas_per_node",
            "two nodes refused for max replicas outweigh one drained"
        );
        assert_eq!(
            pipeline.reason(candidates[..1].iter().copied()),
            "node_unavailable"
        );
        assert_eq!(pipeline.reason(std::iter::empty()), "no_nodes");
    }
}
