//! The manager: everything a manager node runs on top of the replicated
//! store. It starts itself from a settings value ([`start`]: founding a
//! swarm, joining one, resuming or forcing a new cluster; `membership` for
//! its own place in Raft, `autolock` for the cluster's autolock setting) and
//! serves one set of gRPC services (`grpc`: the table of what each demands)
//! on TCP behind the role check (`auth`) and on the daemon's local socket:
//! the Control API (`controlapi`; secret values sealed by `secrets`), the CA service that admits and renews
//! nodes (`certificates`, signing in `ca`), the dispatcher (`dispatcher`),
//! the first objects of a new swarm (`bootstrap`), and the leader-only loops
//! (`orchestrator`, `allocator`, `scheduler`, Raft membership following node
//! roles in `roles`) started and stopped by the leader supervisor (`leader`),
//! and on every manager the cluster events of `rswarm events` (`events`).
//!
//! Not here: the node process itself (the `rswarm` binary's `daemon`, which
//! composes this crate and the agent), and the store's consensus
//! (`rswarm-raft`).

#![warn(unreachable_pub)]

pub mod allocator;
pub(crate) mod auth;
mod autolock;
pub mod bootstrap;
pub mod ca;
pub mod certificates;
pub mod controlapi;
pub mod dashboard;
pub(crate) mod dispatcher;
mod error;
pub mod events;
pub mod grpc;
pub mod leader;
pub(crate) mod listener;
mod membership;
pub mod metrics;
pub mod objects;
pub mod orchestrator;
pub(crate) mod roles;
pub mod scheduler;
pub(crate) mod secrets;
mod start;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rswarm_proto::ca::ca_server::CaServer;
use rswarm_proto::control::configs_server::ConfigsServer;
use rswarm_proto::control::control_server::ControlServer;
use rswarm_proto::control::networks_server::NetworksServer;
use rswarm_proto::control::secrets_server::SecretsServer;
use rswarm_proto::control::services_server::ServicesServer;
use rswarm_proto::dispatcher::dispatcher_server::DispatcherServer;
use rswarm_proto::dispatcher::network_state_server::NetworkStateServer;
use rswarm_proto::dispatcher::tasks_server::TasksServer;
use rswarm_proto::identity::tls::{self, NodeTls};
use rswarm_raft::{Connector, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use controlapi::ControlApi;
pub use error::ManagerError;
pub use start::{found_identity, start, ManagerSettings, Start};

/// Dials other managers with this node's certificate (mTLS), for Raft and
/// for relaying streams to the leader. The certificate is replaced when the
/// node renews it.
pub struct TlsConnector {
    tls: std::sync::RwLock<NodeTls>,
    /// Bumped on every renewal, so that cached channels (made with the old
    /// certificate and trust root) are made again.
    generation: std::sync::atomic::AtomicU64,
}

impl TlsConnector {
    pub fn new(tls: NodeTls) -> Self {
        Self {
            tls: std::sync::RwLock::new(tls),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Use a renewed certificate for new connections, and make cached
    /// channels again (a peer that moved to a new root CA refuses the old
    /// certificate).
    pub fn update(&self, tls: NodeTls) {
        if let Ok(mut t) = self.tls.write() {
            *t = tls;
        }
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Connector for TlsConnector {
    fn channel(&self, addr: &str) -> Result<tonic::transport::Channel, String> {
        let t = self
            .tls
            .read()
            .map_err(|_| "TLS configuration lock poisoned".to_string())?;
        tls::connect_lazy(
            addr,
            &t.ca_pem,
            Some((t.cert_pem.as_str(), t.key_pem.as_str())),
        )
        .map_err(|e| e.to_string())
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The manager's gRPC server: how to stop it, its task, its connections.
type TcpServer = (
    oneshot::Sender<()>,
    JoinHandle<()>,
    Arc<listener::Connections>,
);

/// A running manager: its loops, and its TCP listener once served.
pub struct Manager {
    store: Store,
    cluster_id: String,
    connector: Arc<TlsConnector>,
    agents: Arc<dispatcher::agents::AgentRegistry>,
    dispatcher: dispatcher::DispatcherService,
    /// The leader supervisor: runs the leader-only loops while this
    /// manager leads.
    leader: JoinHandle<()>,
    /// Recent cluster events, made from this manager's store (`events`).
    events: Arc<events::EventLog>,
    /// The task recording them.
    recorder: JoinHandle<()>,
    tcp: Mutex<Option<TcpServer>>,
    metrics: metrics::ManagerMetrics,
}

impl Manager {
    /// Start the manager on an opened store: the leader supervisor (which
    /// runs the leader-only loops while this manager leads). It measures
    /// into `metrics` and shows its store's cluster view there until stopped.
    pub fn start(
        store: Store,
        cluster_id: String,
        connector: Arc<TlsConnector>,
        metrics: metrics::ManagerMetrics,
    ) -> Arc<Manager> {
        let dispatcher =
            dispatcher::DispatcherService::new(store.clone()).measured(metrics.dispatcher.clone());
        let leader = leader::supervise(
            store.clone(),
            leader::every_loop(dispatcher.clone(), metrics.clone()),
        );
        metrics.attach(&store);
        let events = Arc::new(events::EventLog::default());
        let recorder = events.record(store.clone());
        Arc::new(Manager {
            events,
            recorder,
            store,
            cluster_id,
            connector,
            agents: Arc::new(dispatcher::agents::AgentRegistry::default()),
            dispatcher,
            leader,
            tcp: Mutex::new(None),
            metrics,
        })
    }

    /// This manager's cluster events (`rswarm events`, the dashboard).
    pub fn events(&self) -> Arc<events::EventLog> {
        self.events.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn control(&self) -> ControlApi {
        ControlApi::new(self.store.clone()).with_events(self.events.clone())
    }

    pub fn networks(&self) -> controlapi::networks::NetworksApi {
        controlapi::networks::NetworksApi::new(self.store.clone())
    }

    pub fn services(&self) -> controlapi::ServicesApi {
        controlapi::ServicesApi::new(
            self.store.clone(),
            self.agents.clone(),
            self.connector.clone(),
        )
    }

    /// The manager's gRPC services, without the role check (the TCP listener
    /// puts `grpc::AuthLayer` in front; the local socket serves the client
    /// APIs of it as they are). The table of what each demands is `grpc::ACCESS`.
    pub fn routes(&self) -> tonic::service::Routes {
        let mut routes = tonic::service::Routes::builder();
        routes
            .add_service(ControlServer::new(self.control()))
            .add_service(ServicesServer::new(self.services()))
            .add_service(NetworksServer::new(self.networks()))
            .add_service(SecretsServer::new(controlapi::secrets::SecretsApi::new(
                self.store.clone(),
            )))
            .add_service(ConfigsServer::new(controlapi::configs::ConfigsApi::new(
                self.store.clone(),
            )))
            .add_service(CaServer::new(certificates::CaService::new(
                self.store.clone(),
            )))
            .add_service(DispatcherServer::new(self.dispatcher.clone()))
            .add_service(TasksServer::new(
                dispatcher::tasks::TasksService::new(self.store.clone(), self.agents.clone())
                    .measured(self.metrics.dispatcher.clone()),
            ))
            .add_service(NetworkStateServer::new(
                dispatcher::netstate::NetworkStateService::new(self.store.clone()),
            ))
            .add_service(self.store.service());
        routes.routes()
    }

    /// The connector to other managers (update it when the certificate is renewed).
    pub fn connector(&self) -> &Arc<TlsConnector> {
        &self.connector
    }

    /// Serve the manager's gRPC services (Control, Ca, Dispatcher, Raft) on
    /// `listen_addr` with mutual TLS. Replaces a previous listener's server
    /// (certificate renewal restarts it with the new certificate).
    pub async fn serve_tcp(
        &self,
        listen_addr: &str,
        node_tls: &NodeTls,
    ) -> Result<(), ManagerError> {
        self.stop_tcp();
        let listener = bind_with_retry(listen_addr).await?;
        let auth = auth::Auth::new(self.store.clone(), self.cluster_id.clone());
        let router = tonic::transport::Server::builder()
            .tls_config(tls::server_tls_config(node_tls))
            .map_err(|e| ManagerError::Internal(format!("TLS configuration: {e}")))?
            .layer(grpc::AuthLayer::new(auth))
            .add_routes(self.routes());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        // Raft's small messages must not wait for Nagle's algorithm; every
        // connection is tracked so stopping the manager can cut them all.
        let connections = Arc::new(listener::Connections::default());
        let tracker = connections.clone();
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            move |s| {
                s.map(|s| {
                    let _ = s.set_nodelay(true);
                    tracker.track(s)
                })
            },
        );
        let handle = tokio::spawn(async move {
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop_rx.await;
                })
                .await
            {
                tracing::error!(error = %e, "manager gRPC server stopped");
            }
        });
        if let Ok(mut tcp) = self.tcp.lock() {
            *tcp = Some((stop_tx, handle, connections));
        }
        Ok(())
    }

    fn stop_tcp(&self) {
        if let Ok(mut tcp) = self.tcp.lock() {
            if let Some((stop, handle, connections)) = tcp.take() {
                let _ = stop.send(());
                handle.abort();
                connections.cut_all();
            }
        }
    }

    /// Stop loops, the TCP server and the store.
    pub async fn stop(&self) {
        self.metrics.detach();
        self.leader.abort();
        self.recorder.abort();
        self.events.close();
        self.stop_tcp();
        if let Err(e) = self.store.shutdown().await {
            tracing::warn!(error = %e, "store shutdown");
        }
    }
}

/// Bind the manager listener; a restarting server may hold the port for a
/// moment, so retry briefly.
async fn bind_with_retry(addr: &str) -> Result<tokio::net::TcpListener, ManagerError> {
    let mut last = None;
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(ManagerError::Internal(format!("binding {addr}: {e}"))),
        }
    }
    Err(ManagerError::Internal(format!(
        "binding {addr}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}
