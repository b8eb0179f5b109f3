//! Cluster events (`rswarm events`), made on every manager from its own
//! copy of the store: a recorder follows `Store::watch`, turns each change
//! into at most one event (`derive`), keeps the latest in a ring and tells
//! the open streams (`stream`, filtered by `filter`).
//!
//! Because every manager applies the same Raft log, every manager makes the
//! same events, in the same order, each carrying the log index of its
//! change: a client resumes a broken stream on any manager from the last
//! index it saw. A leader change does not interrupt a stream at all (the
//! manager keeps applying the new leader's log). An event's time is when this
//! manager applied the change.
//!
//! Kept events: the last [`RING_CAPACITY`] (Docker keeps 256), in memory
//! only. `--since` earlier than the oldest kept event, or before this
//! manager started recording (a daemon restart, a new manager), replays
//! what is kept and says, in the stream's `warning`, from when on events
//! are complete. If the recorder falls behind the store's change stream, it
//! re-reads the store and tells what changed meanwhile as events (the steps
//! in between, such as a task passing through `starting`, are then lost).

mod derive;
pub(crate) mod filter;
mod stream;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rswarm_proto::control::Event;
use rswarm_raft::{Change, Store};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub(crate) use derive::Tracker;
pub(crate) use stream::events;

/// Events kept for `--since` and for resuming streams.
pub const RING_CAPACITY: usize = 1_000;
/// Events a live stream may fall behind before it is told it missed some.
const LIVE_CAPACITY: usize = 4_096;

/// What a stream is told about the kept events when it subscribes.
pub(crate) struct Kept {
    /// The kept events, oldest first.
    pub(crate) events: Vec<Arc<Event>>,
    /// Events are complete from this time on (unix nanoseconds): when
    /// recording started, or just after the last event dropped from the ring.
    pub(crate) complete_since_ns: i64,
    /// … and from this Raft index on.
    pub(crate) complete_since_index: u64,
}

struct Ring {
    events: VecDeque<Arc<Event>>,
    complete_since_ns: i64,
    complete_since_index: u64,
}

/// One manager's recent events and its live subscribers.
pub struct EventLog {
    ring: Mutex<Ring>,
    /// `None` once the manager stopped: open streams end.
    live: Mutex<Option<broadcast::Sender<Arc<Event>>>>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(RING_CAPACITY),
                complete_since_ns: crate::objects::now_nanos(),
                complete_since_index: u64::MAX,
            }),
            live: Mutex::new(Some(broadcast::channel(LIVE_CAPACITY).0)),
        }
    }
}

impl EventLog {
    /// The kept events and a receiver of every later one (taken together,
    /// so that none falls between them); `None` once closed.
    pub(crate) fn subscribe(&self) -> Option<(Kept, broadcast::Receiver<Arc<Event>>)> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let live = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .subscribe();
        let kept = Kept {
            events: ring.events.iter().cloned().collect(),
            complete_since_ns: ring.complete_since_ns,
            complete_since_index: ring.complete_since_index,
        };
        Some((kept, live))
    }

    /// The newest `n` kept events that `keep` accepts, newest first (the
    /// dashboard's list).
    pub fn recent(&self, n: usize, keep: impl Fn(&Event) -> bool) -> Vec<Arc<Event>> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.events
            .iter()
            .rev()
            .filter(|e| keep(e))
            .take(n)
            .cloned()
            .collect()
    }

    /// Ends every open stream (the manager is stopping).
    pub fn close(&self) {
        let _ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn started(&self, index: u64) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.complete_since_index = index.saturating_add(1);
        ring.complete_since_ns = crate::objects::now_nanos();
    }

    fn push(&self, event: Event) {
        let event = Arc::new(event);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.events.len() >= RING_CAPACITY {
            if let Some(old) = ring.events.pop_front() {
                ring.complete_since_ns = old.time_nano.saturating_add(1);
                ring.complete_since_index = old.index.saturating_add(1);
            }
        }
        ring.events.push_back(event.clone());
        if let Some(live) = self.live.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = live.send(event);
        }
    }

    /// Starts recording `store`'s changes into this log; the task ends when
    /// the store does (abort it when the manager stops).
    pub fn record(self: &Arc<Self>, store: Store) -> JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move { log.run(store).await })
    }

    async fn run(&self, store: Store) {
        let mut rx = store.watch();
        let mut tracker = Tracker::default();
        let last = resync(&store, &mut tracker, 0);
        self.started(last);
        // Changes at or below this index are already in the tracker (read
        // from the store itself after falling behind).
        let mut floor = last;
        loop {
            match rx.recv().await {
                Ok(change) if change.index <= floor => {}
                Ok(change) => {
                    if let Some(e) = tracker.change(&change, crate::objects::now_nanos()) {
                        self.push(e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "events: fell behind the store; re-reading it");
                    let now = crate::objects::now_nanos();
                    let mut events = vec![];
                    let mut sink = |e: Event| events.push(e);
                    floor = floor.max(resync_into(&store, &mut tracker, now, &mut sink));
                    events.sort_by_key(|e| e.index);
                    for e in events {
                        self.push(e);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

/// Loads every object the events are about into `tracker` without telling
/// (the state recording starts from); the highest store version seen.
fn resync(store: &Store, tracker: &mut Tracker, now: i64) -> u64 {
    let mut last = 0;
    let mut sink = |e: Event| last = last.max(e.index);
    let top = resync_into(store, tracker, now, &mut sink);
    top.max(last)
}

/// Compares the store with `tracker`: every difference is given to `sink`
/// as an event (deletions at the highest version seen). Returns that version.
fn resync_into(store: &Store, tracker: &mut Tracker, now: i64, sink: &mut dyn FnMut(Event)) -> u64 {
    let mut top = 0;
    let mut present = vec![];
    for (kind, _) in derive::EVENT_KINDS {
        let objects = match store.list(kind) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(kind, error = %e, "events: reading the store");
                continue;
            }
        };
        let mut ids = std::collections::HashSet::new();
        for o in objects {
            top = top.max(o.version);
            ids.insert(o.id.clone());
            let change = Change {
                index: o.version,
                kind: o.kind,
                id: o.id,
                value: Some(o.value),
            };
            if let Some(e) = tracker.change(&change, now) {
                sink(e);
            }
        }
        present.push((*kind, ids));
    }
    for (kind, ids) in present {
        for id in tracker.ids(kind) {
            if !ids.contains(&id) {
                let change = Change {
                    index: top,
                    kind: kind.to_string(),
                    id,
                    value: None,
                };
                if let Some(e) = tracker.change(&change, now) {
                    sink(e);
                }
            }
        }
    }
    top
}
