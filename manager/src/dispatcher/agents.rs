//! The agents connected to this (leader) manager's dispatcher, and the
//! requests in flight towards them: log subscriptions waiting for their
//! entries and exec sessions waiting for the agent to dial back.

use std::collections::HashMap;
use std::sync::Mutex;

use rswarm_proto::dispatcher::{AgentExecFrame, AgentWork, ManagerExecFrame, PublishLogsMessage};
use tokio::sync::{mpsc, oneshot};

/// An agent's side of an exec session once it has dialled in.
pub struct AgentExecStream {
    pub from_agent: tonic::Streaming<AgentExecFrame>,
    pub to_agent: mpsc::Sender<ManagerExecFrame>,
}

#[derive(Default)]
pub struct AgentRegistry {
    work: Mutex<HashMap<String, mpsc::Sender<AgentWork>>>,
    logs: Mutex<HashMap<String, mpsc::Sender<PublishLogsMessage>>>,
    execs: Mutex<HashMap<String, oneshot::Sender<AgentExecStream>>>,
}

impl AgentRegistry {
    /// An agent opened its Subscriptions stream.
    pub fn connect(&self, node_id: &str) -> mpsc::Receiver<AgentWork> {
        let (tx, rx) = mpsc::channel(64);
        if let Ok(mut w) = self.work.lock() {
            w.insert(node_id.to_string(), tx);
        }
        rx
    }

    /// Send work to a node's agent; false if it is not connected here.
    pub async fn send(&self, node_id: &str, work: AgentWork) -> bool {
        let tx = self.work.lock().ok().and_then(|w| w.get(node_id).cloned());
        match tx {
            Some(tx) => tx.send(work).await.is_ok(),
            None => false,
        }
    }

    pub fn is_connected(&self, node_id: &str) -> bool {
        self.work
            .lock()
            .ok()
            .and_then(|w| w.get(node_id).map(|tx| !tx.is_closed()))
            .unwrap_or(false)
    }

    pub fn subscribe_logs(&self, id: &str) -> mpsc::Receiver<PublishLogsMessage> {
        let (tx, rx) = mpsc::channel(256);
        if let Ok(mut l) = self.logs.lock() {
            l.insert(id.to_string(), tx);
        }
        rx
    }

    pub fn log_sink(&self, id: &str) -> Option<mpsc::Sender<PublishLogsMessage>> {
        self.logs.lock().ok().and_then(|l| l.get(id).cloned())
    }

    pub fn unsubscribe_logs(&self, id: &str) {
        if let Ok(mut l) = self.logs.lock() {
            l.remove(id);
        }
    }

    pub fn expect_exec(&self, id: &str) -> oneshot::Receiver<AgentExecStream> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut e) = self.execs.lock() {
            e.insert(id.to_string(), tx);
        }
        rx
    }

    pub fn exec_arrived(&self, id: &str) -> Option<oneshot::Sender<AgentExecStream>> {
        self.execs.lock().ok().and_then(|mut e| e.remove(id))
    }

    pub fn forget_exec(&self, id: &str) {
        if let Ok(mut e) = self.execs.lock() {
            e.remove(id);
        }
    }
}
