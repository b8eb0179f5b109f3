//! Choosing nodes for a group of identical tasks (one service, one spec)
//! among the nodes that passed the filters.
//!
//! Placement preferences come first: with `spread=node.labels.zone` the
//! nodes are split by their zone label (nodes without it form one more
//! group, as in Docker) and the tasks are dealt out so that every zone ends
//! up with as even a share of the service's tasks as possible; several
//! preferences nest. Within the innermost group each task goes to the node
//! with the fewest tasks of this service, then the fewest tasks overall (a
//! heap of nodes, so a group of N tasks on M nodes costs O(N log M)). After
//! each assignment the node is checked again — its memory, CPU, host ports or
//! max-replicas allowance may be used up — and only then offered again.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use super::filter::{Candidate, Request};
use super::pipeline::Pipeline;
use super::Scheduler;
use rswarm_proto::spec::constraints::Key;

/// Shares of `n` new tasks for groups already holding `counts`, evening
/// them out: each task goes to the group with the fewest so far (ties: the
/// first). Closed groups get nothing.
pub(crate) fn water_fill(counts: &[u64], open: &[bool], n: usize) -> Vec<usize> {
    let mut shares = vec![0usize; counts.len()];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = counts
        .iter()
        .enumerate()
        .filter(|(i, _)| open.get(*i).copied().unwrap_or(false))
        .map(|(i, c)| Reverse((*c, i)))
        .collect();
    for _ in 0..n {
        let Some(Reverse((c, i))) = heap.pop() else {
            break;
        };
        shares[i] += 1;
        heap.push(Reverse((c + 1, i)));
    }
    shares
}

impl Scheduler {
    /// Places up to `want` tasks from the front of `queue` on `nodes`,
    /// honouring the spread preferences `prefs`. Returns how many it placed.
    pub(super) fn place_on_subtree(
        &mut self,
        req: &Request,
        pipeline: &Pipeline<'_>,
        queue: &mut VecDeque<String>,
        nodes: Vec<String>,
        prefs: &[String],
        want: usize,
    ) -> usize {
        if want == 0 || queue.is_empty() || nodes.is_empty() {
            return 0;
        }
        let Some((pref, inner)) = prefs.split_first() else {
            return self.place_on_nodes(req, pipeline, queue, nodes, want);
        };
        let Ok(key) = Key::parse(pref.strip_prefix("spread=").unwrap_or(pref)) else {
            // The Control API refuses unknown descriptors; ignore it here.
            return self.place_on_subtree(req, pipeline, queue, nodes, inner, want);
        };
        let mut by_value: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in nodes {
            let value = self
                .view
                .nodes
                .get(&id)
                .map(|n| key.value_of(n))
                .unwrap_or_default();
            by_value.entry(value).or_default().push(id);
        }
        let branches: Vec<Vec<String>> = by_value.into_values().collect();
        let mut counts: Vec<u64> = branches
            .iter()
            .map(|b| {
                b.iter()
                    .map(|id| u64::from(self.info(id).tasks_of(&req.service_id)))
                    .sum()
            })
            .collect();
        let mut open = vec![true; branches.len()];
        let mut placed = 0;
        while placed < want && !queue.is_empty() && open.iter().any(|o| *o) {
            let shares = water_fill(&counts, &open, want - placed);
            let mut progress = false;
            for (i, share) in shares.into_iter().enumerate() {
                if share == 0 {
                    continue;
                }
                let p =
                    self.place_on_subtree(req, pipeline, queue, branches[i].clone(), inner, share);
                counts[i] += p as u64;
                placed += p;
                progress |= p > 0;
                if p < share {
                    open[i] = false;
                }
            }
            if !progress {
                break;
            }
        }
        placed
    }

    /// The innermost level: fewest tasks of the service, then fewest tasks.
    fn place_on_nodes(
        &mut self,
        req: &Request,
        pipeline: &Pipeline<'_>,
        queue: &mut VecDeque<String>,
        nodes: Vec<String>,
        want: usize,
    ) -> usize {
        let mut heap: BinaryHeap<Reverse<(u32, u32, String)>> = nodes
            .into_iter()
            .map(|id| {
                let info = self.info(&id);
                Reverse((info.tasks_of(&req.service_id), info.active_tasks, id))
            })
            .collect();
        let mut placed = 0;
        while placed < want {
            let Some(Reverse((_, _, node_id))) = heap.pop() else {
                break;
            };
            let Some(task_id) = queue.pop_front() else {
                break;
            };
            self.assign(&task_id, &node_id);
            placed += 1;
            let still_fits = self.view.nodes.get(&node_id).is_some_and(|node| {
                pipeline.passes(Candidate {
                    node,
                    info: self.info(&node_id),
                })
            });
            if still_fits {
                let info = self.info(&node_id);
                heap.push(Reverse((
                    info.tasks_of(&req.service_id),
                    info.active_tasks,
                    node_id,
                )));
            }
        }
        placed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn water_fill_evens_out_groups() {
        assert_eq!(water_fill(&[0, 0, 0], &[true; 3], 6), vec![2, 2, 2]);
        assert_eq!(water_fill(&[4, 0, 1], &[true; 3], 5), vec![0, 3, 2]);
        assert_eq!(water_fill(&[0, 0], &[false, true], 3), vec![0, 3]);
        assert_eq!(water_fill(&[0, 0], &[false, false], 3), vec![0, 0]);
    }
}
