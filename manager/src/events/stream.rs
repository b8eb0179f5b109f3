//! The `Events` call: checks the request, replays the kept events it asks
//! for (`since_ns`, or the point a resumed stream broke off), then follows
//! new ones until `until_ns` or until the client goes away.

use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::control::{Event, EventsRequest, EventsResponse};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::filter::Filters;
use super::{EventLog, Kept};
use crate::controlapi::BoxStream;

/// Events per replayed message.
const REPLAY_BATCH: usize = 100;

/// Docker's form of a time in messages.
fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_else(|| ns.to_string())
}

/// Where a request starts in the event sequence.
#[derive(Clone, Copy)]
struct Start {
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    resume_index: u64,
    resume_skip: u32,
}

impl Start {
    /// Whether the request replays kept events at all: as Docker, with
    /// `since` or `until` (all kept events up to it).
    fn replays(&self) -> bool {
        self.since_ns.is_some() || self.until_ns.is_some() || self.resume_index > 0
    }

    /// Whether a kept event is one the client asked for and has not seen.
    /// `seen_at_index`: how many events at the resume index went by.
    fn wants(&self, e: &Event, seen_at_index: &mut u32) -> bool {
        if self.resume_index > 0 {
            if e.index < self.resume_index {
                return false;
            }
            if e.index == self.resume_index && *seen_at_index < self.resume_skip {
                *seen_at_index += 1;
                return false;
            }
        }
        if let Some(s) = self.since_ns {
            if e.time_nano < s {
                return false;
            }
        }
        true
    }

    fn past_until(&self, e: &Event) -> bool {
        self.until_ns.is_some_and(|u| e.time_nano > u)
    }
}

/// The warning for a replay that reaches back before what is kept.
fn coverage_warning(start: &Start, kept: &Kept) -> Option<String> {
    let before_since = start.since_ns.is_some_and(|s| s < kept.complete_since_ns);
    let before_resume = start.resume_index > 0 && start.resume_index < kept.complete_since_index;
    (before_since || before_resume).then(|| {
        format!(
            "this manager has events only from {} on (it keeps the last {} in memory): earlier ones are not shown",
            rfc3339(kept.complete_since_ns),
            super::RING_CAPACITY
        )
    })
}

/// Serves one `Events` call.
pub(crate) async fn events(
    log: Arc<EventLog>,
    req: EventsRequest,
) -> Result<BoxStream<EventsResponse>, Status> {
    let filters =
        Filters::parse(&req.filters).map_err(|e| Status::invalid_argument(e.to_string()))?;
    if let (Some(s), Some(u)) = (req.since_ns, req.until_ns) {
        if s > u {
            return Err(Status::invalid_argument(format!(
                "`since` time ({}) cannot be after `until` time ({})",
                rfc3339(s),
                rfc3339(u)
            )));
        }
    }
    let start = Start {
        since_ns: req.since_ns,
        until_ns: req.until_ns,
        resume_index: req.resume_index,
        resume_skip: req.resume_skip,
    };
    let (kept, live) = log
        .subscribe()
        .ok_or_else(|| Status::unavailable("the manager is stopping: no events"))?;
    let (tx, rx) = mpsc::channel::<Result<EventsResponse, Status>>(16);
    tokio::spawn(async move {
        if send_kept(&tx, &start, &filters, &kept).await.is_err() {
            return;
        }
        let now = crate::objects::now_nanos();
        if start.until_ns.is_some_and(|u| u <= now) {
            return;
        }
        follow(&tx, &start, &filters, live).await;
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

type Tx = mpsc::Sender<Result<EventsResponse, Status>>;

async fn send(tx: &Tx, events: Vec<Event>, warning: String) -> Result<(), ()> {
    tx.send(Ok(EventsResponse { events, warning }))
        .await
        .map_err(|_| ())
}

/// The replay: the kept events the request asks for, in batches.
async fn send_kept(tx: &Tx, start: &Start, filters: &Filters, kept: &Kept) -> Result<(), ()> {
    if !start.replays() {
        return Ok(());
    }
    if let Some(w) = coverage_warning(start, kept) {
        send(tx, vec![], w).await?;
    }
    let mut seen = 0;
    let mut batch = vec![];
    for e in &kept.events {
        if start.past_until(e) {
            break;
        }
        if start.wants(e, &mut seen) && filters.matches(e) {
            batch.push(Event::clone(e));
            if batch.len() == REPLAY_BATCH {
                send(tx, std::mem::take(&mut batch), String::new()).await?;
            }
        }
    }
    if !batch.is_empty() {
        send(tx, batch, String::new()).await?;
    }
    Ok(())
}

/// The live part: new events as the recorder makes them, until `until_ns`.
async fn follow(
    tx: &Tx,
    start: &Start,
    filters: &Filters,
    mut live: broadcast::Receiver<Arc<Event>>,
) {
    let deadline = start.until_ns.map(|u| {
        let left = u.saturating_sub(crate::objects::now_nanos()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_nanos(left)
    });
    let until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(until);
    let mut seen = 0;
    loop {
        let next = tokio::select! {
            n = live.recv() => n,
            _ = &mut until => return,
            _ = tx.closed() => return,
        };
        match next {
            Ok(e) => {
                if start.past_until(&e) {
                    return;
                }
                if start.wants(&e, &mut seen)
                    && filters.matches(&e)
                    && send(tx, vec![Event::clone(&e)], String::new())
                        .await
                        .is_err()
                {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let w = format!("the event stream fell behind: {n} events were not shown");
                if send(tx, vec![], w).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                let _ = tx
                    .send(Err(Status::unavailable(
                        "the manager stopped: the event stream ended",
                    )))
                    .await;
                return;
            }
        }
    }
}
