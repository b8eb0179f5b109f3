//! In-process clusters for the store's tests: each manager is a real `Store` with
//! a tonic server on 127.0.0.1 (plain http), in its own temp data dir. Timings
//! are shortened so a test takes seconds; every wait is bounded.

mod cluster;
mod failures;
mod heal;
mod leadership;
mod snapshots;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint};

use crate::{Connector, Op, Store, StoreConfig};

/// Plain-http channels to other managers on loopback.
pub(crate) struct PlainConnector;

impl Connector for PlainConnector {
    fn channel(&self, addr: &str) -> Result<Channel, String> {
        Ok(Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy())
    }
}

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Fast timings for tests.
pub(crate) fn test_config(dir: &Path, raft_id: u64, addr: &str) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir.join(format!("manager-{raft_id}")), raft_id, addr);
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.election_timeout_min = Duration::from_millis(400);
    cfg.election_timeout_max = Duration::from_millis(800);
    cfg.write_timeout = Duration::from_secs(3);
    cfg
}

/// A running manager: its store and its gRPC server.
pub(crate) struct Node {
    pub(crate) store: Store,
    pub(crate) cfg: StoreConfig,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Node {
    /// Binds a fresh loopback port and returns the listener and its address.
    pub(crate) async fn listen() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr").to_string();
        (listener, addr)
    }

    /// Opens the store for `cfg` and serves it on `listener` (or on `cfg.addr`).
    pub(crate) async fn start(cfg: StoreConfig, listener: Option<TcpListener>) -> Node {
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(&cfg.addr)
                .await
                .expect("rebind manager address"),
        };
        let store = Store::open(cfg.clone(), Arc::new(PlainConnector))
            .await
            .expect("open store");
        let service = store.service();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "test server ended");
            }
        });
        Node {
            store,
            cfg,
            server: Some((stop, handle)),
        }
    }

    /// A new manager with a fresh data dir under `root`.
    pub(crate) async fn fresh(root: &Path, raft_id: u64, tweak: &dyn Fn(&mut StoreConfig)) -> Node {
        let (listener, addr) = Node::listen().await;
        let mut cfg = test_config(root, raft_id, &addr);
        tweak(&mut cfg);
        Node::start(cfg, Some(listener)).await
    }

    pub(crate) fn id(&self) -> u64 {
        self.cfg.raft_id
    }

    /// Shuts the store down and stops serving; gives back the config to restart with.
    pub(crate) async fn stop(mut self) -> StoreConfig {
        self.store.shutdown().await.expect("shutdown store");
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            let abort = handle.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), handle)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.cfg.clone()
    }
}

/// Polls `check` every 20ms until it holds; panics with `what` after `timeout`.
pub(crate) async fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bounds a whole test.
pub(crate) async fn bounded<F: Future<Output = ()>>(limit: Duration, test: F) {
    init_tracing();
    tokio::time::timeout(limit, test)
        .await
        .expect("test took too long");
}

/// Bootstraps manager 1 and adds managers 2 and 3 through it.
pub(crate) async fn three_managers(root: &Path, tweak: &dyn Fn(&mut StoreConfig)) -> Vec<Node> {
    let first = Node::fresh(root, 1, tweak).await;
    assert!(!first.store.is_initialized());
    first.store.bootstrap().await.expect("bootstrap");
    assert!(first.store.is_initialized());
    let mut nodes = vec![first];
    for id in [2, 3] {
        let node = Node::fresh(root, id, tweak).await;
        // Manager 3 is added through manager 2, a follower: the change is forwarded.
        nodes[nodes.len() - 1]
            .store
            .add_manager(id, node.cfg.addr.clone())
            .await
            .expect("add manager");
        nodes.push(node);
    }
    for node in &nodes {
        wait_until(
            Duration::from_secs(5),
            "every manager to see three voters",
            || node.store.status().voters == vec![1, 2, 3],
        )
        .await;
    }
    nodes
}

/// Index of the current leader in `nodes`, waiting for one to be elected.
pub(crate) async fn leader_of(nodes: &[Node], timeout: Duration) -> usize {
    let mut found = None;
    wait_until(timeout, "a leader", || {
        found = nodes.iter().position(|n| n.store.is_leader());
        found.is_some()
    })
    .await;
    found.unwrap_or_default()
}

pub(crate) fn put(kind: &str, id: &str, value: &str, expect_version: Option<u64>) -> Op {
    Op::Put {
        kind: kind.into(),
        id: id.into(),
        value: value.as_bytes().to_vec(),
        expect_version,
    }
}

/// Waits until `node` has `kind/id` at `version`.
pub(crate) async fn wait_for_version(node: &Node, kind: &str, id: &str, version: u64) {
    wait_until(
        Duration::from_secs(5),
        &format!("manager {} to apply {kind} {id} v{version}", node.id()),
        || matches!(node.store.get(kind, id), Ok(Some(o)) if o.version == version),
    )
    .await;
}
