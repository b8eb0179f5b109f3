//! Unit tests of the worker's handling of containers no assignment claims.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rswarm_proto::types::Task;
use tokio::sync::watch;

use super::stop_unclaimed;
use crate::exec::{Controller, ExecError, Existing, Exit};

/// A controller whose stops take as long as the test wants: each `shutdown`
/// waits until `release` turns true. It records what it was asked.
struct SlowStops {
    release: watch::Receiver<bool>,
    stopping: watch::Sender<usize>,
    calls: Mutex<Vec<String>>,
}

impl SlowStops {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[tonic::async_trait]
impl Controller for SlowStops {
    async fn prepare(&self, _: &Task) -> Result<(), ExecError> {
        Err(ExecError::Failed("not in this test".into()))
    }
    async fn start(&self, _: &Task) -> Result<u32, ExecError> {
        Err(ExecError::Failed("not in this test".into()))
    }
    async fn wait(&self, _: &Task) -> Result<Exit, ExecError> {
        Err(ExecError::Failed("not in this test".into()))
    }
    async fn shutdown(&self, task: &Task) -> Result<(), ExecError> {
        self.stopping.send_modify(|n| *n += 1);
        let mut release = self.release.clone();
        let _ = release.wait_for(|r| *r).await;
        if let Ok(mut c) = self.calls.lock() {
            c.push(format!("stopped {}", task.id));
        }
        Ok(())
    }
    async fn remove(&self, task: &Task) -> Result<(), ExecError> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(format!("removed {}", task.id));
        }
        Ok(())
    }
    async fn inspect(&self, _: &Task) -> Result<Option<Existing>, ExecError> {
        Ok(None)
    }
}

#[tokio::test]
async fn unclaimed_containers_are_stopped_together_in_the_background() {
    let (release, release_rx) = watch::channel(false);
    let (stopping, mut stopping_rx) = watch::channel(0usize);
    let ctl = Arc::new(SlowStops {
        release: release_rx,
        stopping,
        calls: Mutex::new(Vec::new()),
    });
    let ids = ["a", "b", "c"].map(String::from);
    // Returns while every stop is still under way: nothing waits for them.
    let handles = stop_unclaimed(ctl.clone(), ids.clone());
    assert_eq!(handles.len(), 3);
    // All three are stopping at the same time, none of them done: they do
    // not queue behind one another's grace period.
    tokio::time::timeout(Duration::from_secs(10), stopping_rx.wait_for(|n| *n == 3))
        .await
        .expect("the three stops under way together")
        .expect("the controller is alive");
    assert!(ctl.calls().is_empty(), "{:?}", ctl.calls());

    release.send_replace(true);
    for h in handles {
        h.await.expect("a stop task");
    }
    let calls = ctl.calls();
    for id in &ids {
        let stopped = calls.iter().position(|c| *c == format!("stopped {id}"));
        let removed = calls.iter().position(|c| *c == format!("removed {id}"));
        assert!(
            matches!((stopped, removed), (Some(s), Some(r)) if s < r),
            "{id} is stopped, then removed: {calls:?}"
        );
    }
    assert_eq!(calls.len(), 6, "{calls:?}");
}
