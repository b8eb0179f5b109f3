//! The session against stand-in managers over real mutual TLS on loopback:
//! the manager's own CA (`RootCa`) signs the managers' and the node's
//! certificates, and each stand-in serves the Dispatcher (answers a test
//! scripts) and the CA's renewal. What is checked is what the daemon
//! and the worker see: heartbeats, the leader channel, failover, the events.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use rcgen::{CertificateParams, KeyPair};
use rswarm_manager::ca::RootCa;
use rswarm_proto::ca::ca_server::{Ca, CaServer};
use rswarm_proto::ca::{
    GetRootCaCertificateRequest, GetRootCaCertificateResponse, IssueNodeCertificateRequest,
    IssueNodeCertificateResponse,
};
use rswarm_proto::dispatcher::dispatcher_server::{Dispatcher, DispatcherServer};
use rswarm_proto::dispatcher::{HeartbeatResponse, Manager};
use rswarm_proto::identity::cert::NodeIdentity;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::*;

/// Bounds every wait.
const PATIENCE: Duration = Duration::from_secs(15);
const CLUSTER: &str = "testcluster";

/// The cluster's CA: the manager's own (`rswarm_manager::ca::RootCa`).
struct TestCa {
    root: RootCa,
}

impl TestCa {
    fn new() -> Arc<TestCa> {
        Arc::new(TestCa {
            root: RootCa::generate(CLUSTER).expect("CA"),
        })
    }

    fn pem(&self) -> String {
        self.root.cert_pem.clone()
    }

    /// A node certificate for the key behind `csr_pem`, as the CA signs it.
    fn sign(&self, node_id: &str, role: NodeRole, csr_pem: &str) -> String {
        self.root
            .sign_node_csr(csr_pem, node_id, role, CLUSTER, Duration::from_secs(3600))
            .expect("node certificate")
    }

    fn node(&self, node_id: &str, role: NodeRole) -> tls::NodeTls {
        let key = KeyPair::generate().expect("node key");
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .expect("CSR")
            .pem()
            .expect("CSR PEM");
        tls::NodeTls {
            ca_pem: self.pem(),
            cert_pem: self.sign(node_id, role, &csr),
            key_pem: key.serialize_pem(),
        }
    }
}

/// How a stand-in answers a heartbeat: given its own address.
type Answer = Box<dyn Fn(&str) -> Result<HeartbeatResponse, Status> + Send + Sync>;

/// A manager stand-in: see the module docs.
struct FakeManager {
    addr: String,
    ca: Arc<TestCa>,
    answer: Mutex<Answer>,
    /// Every heartbeat: the caller's certificate and the request.
    beats: Mutex<Vec<(Option<NodeIdentity>, HeartbeatRequest)>>,
    /// The role renewed certificates carry.
    renew_as: Mutex<NodeRole>,
    version: watch::Sender<u64>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

#[derive(Clone)]
struct Served(Arc<FakeManager>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The answer of a leader: itself as the leader.
fn leader(addr: &str) -> Result<HeartbeatResponse, Status> {
    Ok(HeartbeatResponse {
        period_ns: Duration::from_millis(100).as_nanos() as i64,
        leader_addr: addr.into(),
        desired_role: NodeRole::Worker as i32,
        ..Default::default()
    })
}

impl FakeManager {
    async fn start(ca: &Arc<TestCa>, answer: Answer) -> Arc<FakeManager> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let manager = Arc::new(FakeManager {
            addr,
            ca: ca.clone(),
            answer: Mutex::new(answer),
            beats: Mutex::new(vec![]),
            renew_as: Mutex::new(NodeRole::Worker),
            version: watch::channel(0).0,
            stop: Mutex::new(Some(stop)),
        });
        let own = ca.node("manager", NodeRole::Manager);
        let server = tonic::transport::Server::builder()
            .tls_config(tls::server_tls_config(&own))
            .expect("server TLS")
            .add_service(DispatcherServer::new(Served(manager.clone())))
            .add_service(CaServer::new(Served(manager.clone())))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        manager
    }

    fn answer_with(&self, answer: Answer) {
        *lock(&self.answer) = answer;
    }

    /// Stops listening and closes its connections.
    fn stop(&self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
    }

    fn beats(&self) -> Vec<(Option<NodeIdentity>, HeartbeatRequest)> {
        lock(&self.beats).clone()
    }

    async fn wait_beats(&self, n: usize) {
        let mut version = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            version.borrow_and_update();
            if self.beats().len() >= n {
                return;
            }
            tokio::time::timeout_at(deadline, version.changed())
                .await
                .unwrap_or_else(|_| panic!("{} never had {n} heartbeats", self.addr))
                .expect("the stand-in lives");
        }
    }
}

#[tonic::async_trait]
impl Dispatcher for Served {
    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let caller = tls::peer_identity(&req);
        lock(&self.0.beats).push((caller, req.into_inner()));
        self.0.version.send_modify(|v| *v += 1);
        let answer = (lock(&self.0.answer))(&self.0.addr);
        answer.map(Response::new)
    }
}

#[tonic::async_trait]
impl Ca for Served {
    async fn get_root_ca_certificate(
        &self,
        _req: Request<GetRootCaCertificateRequest>,
    ) -> Result<Response<GetRootCaCertificateResponse>, Status> {
        Err(Status::unimplemented("not in these tests"))
    }

    async fn issue_node_certificate(
        &self,
        _req: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        Err(Status::unimplemented("not in these tests"))
    }

    async fn renew_node_certificate(
        &self,
        req: Request<rswarm_proto::ca::RenewNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        let caller = tls::peer_identity(&req)
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let csr_pem = req.into_inner().csr_pem;
        let role = *lock(&self.0.renew_as);
        Ok(Response::new(IssueNodeCertificateResponse {
            node_id: caller.node_id.clone(),
            certificate_pem: self.0.ca.sign(&caller.node_id, role, &csr_pem),
            role: role as i32,
            cluster_id: CLUSTER.into(),
            managers: vec![],
            ca_certificate_pem: self.0.ca.pem(),
        }))
    }
}

/// A running session: what the daemon and the worker get from it.
struct Session {
    events: mpsc::Receiver<AgentEvent>,
    leader: watch::Receiver<LeaderChannel>,
    identity: watch::Sender<(tls::NodeTls, NodeRole)>,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the session of worker node "node1" knowing `managers`.
fn session(ca: &TestCa, managers: &[&Arc<FakeManager>]) -> Session {
    let cfg = AgentConfig {
        node_id: "node1".into(),
        advertise_addr: "10.9.9.9:2377".into(),
        description: NodeDescription {
            hostname: "agent-host".into(),
            ..Default::default()
        },
        managers: managers
            .iter()
            .map(|m| (String::new(), m.addr.clone()))
            .collect(),
        tls: ca.node("node1", NodeRole::Worker),
        role: NodeRole::Worker,
    };
    let (events_tx, events) = mpsc::channel(16);
    let (identity, identity_rx) = watch::channel((cfg.tls.clone(), cfg.role));
    let (leader_tx, leader) = watch::channel::<LeaderChannel>(None);
    let task = tokio::spawn(run(cfg, events_tx, identity_rx, leader_tx));
    Session {
        events,
        leader,
        identity,
        task,
    }
}

impl Session {
    /// Waits until the worker is handed a channel to `addr`.
    async fn wait_leader(&mut self, addr: &str) {
        tokio::time::timeout(
            PATIENCE,
            self.leader
                .wait_for(|l| l.as_ref().map(|(a, _)| a.as_str()) == Some(addr)),
        )
        .await
        .unwrap_or_else(|_| panic!("the worker never got a channel to {addr}"))
        .expect("the session lives");
    }

    /// The next event that `pick` accepts (others are skipped).
    async fn event<T>(&mut self, pick: impl Fn(AgentEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("the awaited event in time")
                .expect("the session is running");
            if let Some(v) = pick(event) {
                return v;
            }
        }
    }

    /// Waits for the session to end by itself.
    async fn ended(&mut self) {
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the session ends")
            .expect("the session did not panic");
    }
}

#[tokio::test]
async fn the_session_heartbeats_the_leader_and_hands_the_worker_its_channel() {
    let ca = TestCa::new();
    let m = FakeManager::start(&ca, Box::new(leader)).await;
    let mut s = session(&ca, &[&m]);
    s.wait_leader(&m.addr).await;
    // Heartbeats go on at the period asked (100 ms).
    m.wait_beats(3).await;
    let (caller, req) = m.beats().remove(0);
    let caller = caller.expect("the node's certificate");
    assert_eq!(
        (caller.node_id.as_str(), caller.role),
        ("node1", NodeRole::Worker)
    );
    assert_eq!(req.addr, "10.9.9.9:2377");
    assert_eq!(
        req.description.map(|d| d.hostname).as_deref(),
        Some("agent-host")
    );
}

#[tokio::test]
async fn a_follower_sends_the_agent_to_the_leader() {
    let ca = TestCa::new();
    let lead = FakeManager::start(&ca, Box::new(leader)).await;
    let leader_addr = lead.addr.clone();
    let follower = FakeManager::start(&ca, Box::new(move |_| leader(&leader_addr))).await;
    // The agent only knows the follower.
    let mut s = session(&ca, &[&follower]);
    s.wait_leader(&lead.addr).await;
    lead.wait_beats(2).await;
    assert_eq!(follower.beats().len(), 1, "asked once, then sent on");
}

#[tokio::test]
async fn the_agent_fails_over_when_its_manager_goes() {
    let ca = TestCa::new();
    let first = FakeManager::start(&ca, Box::new(leader)).await;
    // The second names the first as the leader until it wins the election.
    let elected = Arc::new(Mutex::new(first.addr.clone()));
    let named = elected.clone();
    let second = FakeManager::start(&ca, Box::new(move |_| leader(&lock(&named)))).await;
    let mut s = session(&ca, &[&first, &second]);
    s.wait_leader(&first.addr).await;
    first.stop();
    *lock(&elected) = second.addr.clone();
    s.wait_leader(&second.addr).await;
    let before = second.beats().len();
    second.wait_beats(before + 2).await;
}

#[tokio::test]
async fn a_manager_that_knows_no_leader_is_passed_over() {
    let ca = TestCa::new();
    let good = FakeManager::start(&ca, Box::new(leader)).await;
    let other = good.addr.clone();
    // Mid-election: it knows no leader, only the other manager.
    let lost = FakeManager::start(
        &ca,
        Box::new(move |_| {
            let mut answer = leader("")?;
            answer.managers = vec![Manager {
                node_id: "m2".into(),
                addr: other.clone(),
                weight: 10,
            }];
            Ok(answer)
        }),
    )
    .await;
    let mut s = session(&ca, &[&lost]);
    s.wait_leader(&good.addr).await;
    good.wait_beats(2).await;
    assert!(!lost.beats().is_empty());
}

#[tokio::test]
async fn the_daemon_hears_of_every_manager_the_leader_lists() {
    let ca = TestCa::new();
    let m = FakeManager::start(&ca, Box::new(leader)).await;
    m.answer_with(Box::new(|addr| {
        let mut answer = leader(addr)?;
        answer.managers = vec![
            Manager {
                node_id: "m1".into(),
                addr: addr.into(),
                weight: 10,
            },
            Manager {
                node_id: "m2".into(),
                addr: "10.1.1.2:2377".into(),
                weight: 10,
            },
        ];
        Ok(answer)
    }));
    let mut s = session(&ca, &[&m]);
    let all = s
        .event(|e| match e {
            AgentEvent::Managers(all) if all.len() == 2 => Some(all),
            _ => None,
        })
        .await;
    assert!(all.contains(&("m1".into(), m.addr.clone())), "{all:?}");
    assert!(
        all.contains(&("m2".into(), "10.1.1.2:2377".into())),
        "{all:?}"
    );
}

#[tokio::test]
async fn a_node_the_leader_says_was_removed_leaves() {
    let ca = TestCa::new();
    // Answered as removed.
    let m = FakeManager::start(
        &ca,
        Box::new(|addr| {
            let mut answer = leader(addr)?;
            answer.removed = true;
            Ok(answer)
        }),
    )
    .await;
    let mut s = session(&ca, &[&m]);
    s.event(|e| matches!(e, AgentEvent::Removed).then_some(()))
        .await;
    s.ended().await;
    // Refused as removed by the manager's authorisation.
    let refused = FakeManager::start(
        &ca,
        Box::new(|_| {
            Err(Status::permission_denied(
                "permission denied: node node1 was removed from the swarm",
            ))
        }),
    )
    .await;
    let mut s = session(&ca, &[&refused]);
    s.event(|e| matches!(e, AgentEvent::Removed).then_some(()))
        .await;
    s.ended().await;
}

#[tokio::test]
async fn a_promoted_node_renews_its_certificate_and_calls_with_the_new_one() {
    let ca = TestCa::new();
    let m = FakeManager::start(
        &ca,
        Box::new(|addr| {
            let mut answer = leader(addr)?;
            answer.desired_role = NodeRole::Manager as i32;
            Ok(answer)
        }),
    )
    .await;
    *lock(&m.renew_as) = NodeRole::Manager;
    let mut s = session(&ca, &[&m]);
    let (renewed, role) = s
        .event(|e| match e {
            AgentEvent::Renewed { tls, role } => Some((tls, role)),
            _ => None,
        })
        .await;
    assert_eq!(role, NodeRole::Manager);
    let id = renewed.identity().expect("a node certificate");
    assert_eq!((id.node_id.as_str(), id.role), ("node1", NodeRole::Manager));
    // The daemon installs it; the next heartbeats present it.
    let before = m.beats().len();
    s.identity
        .send((renewed, NodeRole::Manager))
        .expect("the session listens");
    m.wait_beats(before + 1).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let last = m.beats().last().and_then(|(c, _)| c.clone());
        if last.map(|c| c.role) == Some(NodeRole::Manager) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never called with the new certificate"
        );
        m.wait_beats(m.beats().len() + 1).await;
    }
}
