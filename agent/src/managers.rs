//! The agent's list of managers and the order it fails over in. It keeps
//! every manager it has ever been told of (the join answer, the persisted
//! state, each heartbeat answer's weighted list), bounded in size; a manager
//! the dispatcher no longer lists keeps weight 0, so it is tried last but
//! still tried. The order to try: managers that have not failed since their
//! last success first, this node's own manager first among equals (when the
//! node is a manager), then by the weight the dispatcher gave. The session
//! (`session.rs`) asks it where to go next and tells it what answered.

use std::time::{Duration, Instant};

/// The weight of a manager the agent knows of but was not told a weight for
/// (from the join answer or the persisted state). Swarmkit's default
/// observation weight.
pub(crate) const DEFAULT_WEIGHT: i32 = 10;

/// At most this many managers are remembered; beyond it, the lowest
/// weighted that the dispatcher no longer lists are forgotten first.
pub(crate) const MAX_MANAGERS: usize = 64;

/// One manager the agent knows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub node_id: String,
    pub addr: String,
    pub weight: i32,
    /// Failures since its last success.
    failures: u32,
    last_failure: Option<Instant>,
}

/// The managers to fail over between.
#[derive(Debug, Clone, Default)]
pub(crate) struct Managers {
    peers: Vec<Peer>,
    /// This node's own manager address, when the node is a manager.
    local: Option<String>,
}

impl Managers {
    /// Start from the managers known at start (node ID, address).
    pub(crate) fn new(initial: &[(String, String)]) -> Self {
        let mut m = Managers::default();
        for (id, addr) in initial {
            m.remember(id, addr, DEFAULT_WEIGHT);
        }
        m
    }

    /// This node's own manager (Some while the node is a manager).
    pub(crate) fn set_local(&mut self, local: Option<String>) {
        if let Some(addr) = &local {
            if !self.peers.iter().any(|p| p.addr == *addr) {
                self.remember("", addr, DEFAULT_WEIGHT);
            }
        }
        self.local = local;
    }

    /// Take in the dispatcher's weighted list (node ID, address, weight).
    /// Managers it does not name are kept with weight 0. Returns whether
    /// the remembered set (IDs and addresses) changed, i.e. whether to save it.
    pub(crate) fn observe(&mut self, list: &[(String, String, i32)]) -> bool {
        if list.is_empty() {
            return false;
        }
        let before = self.all();
        for p in &mut self.peers {
            if !list.iter().any(|(_, a, _)| *a == p.addr) {
                p.weight = 0;
            }
        }
        for (id, addr, weight) in list {
            self.remember(id, addr, (*weight).max(1));
        }
        self.bound();
        self.all() != before
    }

    fn remember(&mut self, node_id: &str, addr: &str, weight: i32) {
        if addr.is_empty() {
            return;
        }
        match self.peers.iter_mut().find(|p| p.addr == addr) {
            Some(p) => {
                p.weight = weight;
                if !node_id.is_empty() {
                    p.node_id = node_id.to_string();
                }
            }
            None => self.peers.push(Peer {
                node_id: node_id.to_string(),
                addr: addr.to_string(),
                weight,
                failures: 0,
                last_failure: None,
            }),
        }
    }

    /// Forget the lowest weighted managers beyond [`MAX_MANAGERS`].
    fn bound(&mut self) {
        while self.peers.len() > MAX_MANAGERS {
            let Some(worst) = self
                .peers
                .iter()
                .enumerate()
                .filter(|(_, p)| Some(&p.addr) != self.local.as_ref())
                .min_by_key(|(_, p)| (p.weight, std::cmp::Reverse(p.failures)))
                .map(|(i, _)| i)
            else {
                return;
            };
            self.peers.remove(worst);
        }
    }

    /// Every remembered manager (node ID, address), in failover order: what
    /// the daemon persists.
    pub(crate) fn all(&self) -> Vec<(String, String)> {
        self.order()
            .into_iter()
            .map(|p| (p.node_id.clone(), p.addr.clone()))
            .collect()
    }

    /// Addresses in the order to try them.
    #[cfg(test)]
    pub(crate) fn candidates(&self) -> Vec<String> {
        self.order().into_iter().map(|p| p.addr.clone()).collect()
    }

    fn order(&self) -> Vec<&Peer> {
        let mut v: Vec<&Peer> = self.peers.iter().collect();
        v.sort_by_key(|p| {
            (
                p.failures,
                Some(&p.addr) != self.local.as_ref(),
                std::cmp::Reverse(p.weight),
                p.addr.clone(),
            )
        });
        v
    }

    /// The manager to try next.
    pub(crate) fn next(&self) -> Option<String> {
        self.order().first().map(|p| p.addr.clone())
    }

    /// `addr` could not be reached or did not answer.
    pub(crate) fn failed(&mut self, addr: &str, now: Instant) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.addr == addr) {
            p.failures = p.failures.saturating_add(1);
            p.last_failure = Some(now);
        }
    }

    /// Whether every known manager failed since its last answer.
    pub(crate) fn all_failing(&self) -> bool {
        !self.peers.is_empty() && self.peers.iter().all(|p| p.failures > 0)
    }

    /// `addr` answered.
    pub(crate) fn succeeded(&mut self, addr: &str) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.addr == addr) {
            p.failures = 0;
            p.last_failure = None;
        }
    }

    /// Whether a manager named as the leader is worth going to: not when it
    /// failed within `window` (a follower that has not yet seen the election
    /// keeps naming the dead leader; going back there would lose the round).
    pub(crate) fn worth_following(&self, addr: &str, now: Instant, window: Duration) -> bool {
        match self.peers.iter().find(|p| p.addr == addr) {
            Some(p) => match p.last_failure {
                Some(t) if p.failures > 0 => now.saturating_duration_since(t) >= window,
                _ => true,
            },
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(i, a)| (i.to_string(), a.to_string()))
            .collect()
    }

    fn weighted(list: &[(&str, &str, i32)]) -> Vec<(String, String, i32)> {
        list.iter()
            .map(|(i, a, w)| (i.to_string(), a.to_string(), *w))
            .collect()
    }

    #[test]
    fn a_worker_that_joined_with_one_manager_learns_the_promoted_ones() {
        let mut m = Managers::new(&ids(&[("", "10.0.0.1:2377")]));
        assert_eq!(m.candidates(), ["10.0.0.1:2377"]);
        let changed = m.observe(&weighted(&[
            ("n1", "10.0.0.1:2377", 10),
            ("n2", "10.0.0.2:2377", 10),
            ("n3", "10.0.0.3:2377", 10),
        ]));
        assert!(changed);
        assert_eq!(m.all().len(), 3);
        // The join answer's entry got its node ID.
        assert!(m.all().contains(&("n1".into(), "10.0.0.1:2377".into())));
        // The same list again changes nothing to save.
        assert!(!m.observe(&weighted(&[
            ("n1", "10.0.0.1:2377", 10),
            ("n2", "10.0.0.2:2377", 10),
            ("n3", "10.0.0.3:2377", 10),
        ])));
    }

    #[test]
    fn the_dead_leader_goes_last_and_every_other_manager_is_tried() {
        let now = Instant::now();
        let mut m = Managers::new(&ids(&[
            ("n1", "10.0.0.1:2377"),
            ("n2", "10.0.0.2:2377"),
            ("n3", "10.0.0.3:2377"),
        ]));
        let first = m.next().unwrap();
        m.failed(&first, now);
        let second = m.next().unwrap();
        assert_ne!(second, first);
        m.failed(&second, now);
        let third = m.next().unwrap();
        assert_ne!(third, first);
        assert_ne!(third, second);
        m.failed(&third, now);
        // All failed once: the round starts again, every one still tried.
        let mut seen: Vec<String> = vec![];
        for _ in 0..3 {
            let n = m.next().unwrap();
            seen.push(n.clone());
            m.failed(&n, now);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3, "{seen:?}");
        // One answers: it is first from now on.
        m.succeeded("10.0.0.2:2377");
        assert_eq!(m.next().as_deref(), Some("10.0.0.2:2377"));
    }

    #[test]
    fn a_managers_own_agent_prefers_its_local_manager() {
        let now = Instant::now();
        let mut m = Managers::new(&ids(&[
            ("n1", "10.0.0.1:2377"),
            ("n2", "10.0.0.2:2377"),
            ("n3", "10.0.0.3:2377"),
        ]));
        m.set_local(Some("10.0.0.3:2377".into()));
        assert_eq!(m.next().as_deref(), Some("10.0.0.3:2377"));
        // Unless the local manager itself fails.
        m.failed("10.0.0.3:2377", now);
        assert_ne!(m.next().as_deref(), Some("10.0.0.3:2377"));
        // A demoted node no longer prefers it.
        m.succeeded("10.0.0.3:2377");
        m.set_local(None);
        assert_eq!(m.next().as_deref(), Some("10.0.0.1:2377"));
    }

    #[test]
    fn a_manager_is_never_forgotten_but_an_unlisted_one_comes_last() {
        let mut m = Managers::new(&[]);
        m.observe(&weighted(&[
            ("n1", "10.0.0.1:2377", 10),
            ("n2", "10.0.0.2:2377", 10),
        ]));
        // A follower whose store lags lists only n2 and a new n3.
        m.observe(&weighted(&[
            ("n2", "10.0.0.2:2377", 10),
            ("n3", "10.0.0.3:2377", 10),
        ]));
        assert_eq!(
            m.candidates(),
            ["10.0.0.2:2377", "10.0.0.3:2377", "10.0.0.1:2377"]
        );
        // An empty list (a manager that knows none) changes nothing.
        assert!(!m.observe(&[]));
        assert_eq!(m.all().len(), 3);
    }

    #[test]
    fn heavier_managers_come_first() {
        let mut m = Managers::new(&[]);
        m.observe(&weighted(&[
            ("n1", "10.0.0.1:2377", 1),
            ("n2", "10.0.0.2:2377", 10),
        ]));
        assert_eq!(m.next().as_deref(), Some("10.0.0.2:2377"));
    }

    #[test]
    fn the_list_is_bounded() {
        let mut m = Managers::new(&[]);
        m.set_local(Some("10.0.9.9:2377".into()));
        for i in 0..200 {
            m.observe(&weighted(&[(
                "",
                &format!("10.0.{}.{}:2377", i / 250, i % 250),
                5,
            )]));
        }
        assert_eq!(m.all().len(), MAX_MANAGERS);
        assert!(m.candidates().contains(&"10.0.9.9:2377".to_string()));
    }

    #[test]
    fn a_leader_that_just_failed_is_not_followed_until_the_window_passes() {
        let t0 = Instant::now();
        let window = Duration::from_secs(2);
        let mut m = Managers::new(&ids(&[("n1", "10.0.0.1:2377"), ("n2", "10.0.0.2:2377")]));
        assert!(m.worth_following("10.0.0.1:2377", t0, window));
        m.failed("10.0.0.1:2377", t0);
        assert!(!m.worth_following("10.0.0.1:2377", t0 + Duration::from_secs(1), window));
        assert!(m.worth_following("10.0.0.1:2377", t0 + Duration::from_secs(2), window));
        // A leader never heard of is followed.
        assert!(m.worth_following("10.0.0.7:2377", t0, window));
    }
}
