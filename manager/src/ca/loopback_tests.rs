//! End-to-end checks of node identity over real TLS on loopback: a tonic server
//! configured with `server_tls_config` serves a tiny CA service whose
//! `RenewNodeCertificate` answers with whoever `peer_identity` says is calling.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rswarm_proto::ca::ca_client::CaClient;
use rswarm_proto::ca::ca_server::{Ca, CaServer};
use rswarm_proto::ca::{
    GetRootCaCertificateRequest, GetRootCaCertificateResponse, IssueNodeCertificateRequest,
    IssueNodeCertificateResponse, RenewNodeCertificateRequest,
};
use rswarm_proto::identity::tls::{self, NodeTls, TlsError};
use rswarm_proto::identity::{keys, token};
use rswarm_proto::types::NodeRole;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

use super::RootCa;
use crate::objects::new_id;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A cluster's CA, as `rswarm init` makes it.
struct Cluster {
    id: String,
    ca: RootCa,
}

impl Cluster {
    fn new() -> Cluster {
        let id = new_id();
        let ca = RootCa::generate(&id).expect("root CA");
        Cluster { id, ca }
    }

    /// A node that has joined: its own key, a certificate for `role`.
    fn node(&self, role: NodeRole) -> (String, NodeTls) {
        let (key_pem, csr_pem) = keys::new_key_and_csr().expect("key and CSR");
        let node_id = new_id();
        let cert_pem = self
            .ca
            .sign_node_csr(&csr_pem, &node_id, role, &self.id, DAY)
            .expect("sign");
        let tls = NodeTls {
            ca_pem: self.ca.cert_pem.clone(),
            cert_pem,
            key_pem,
        };
        (node_id, tls)
    }
}

/// Counts the calls that reached the service (past the TLS handshake).
#[derive(Clone)]
struct WhoAmI {
    ca_pem: String,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Ca for WhoAmI {
    async fn get_root_ca_certificate(
        &self,
        _request: Request<GetRootCaCertificateRequest>,
    ) -> Result<Response<GetRootCaCertificateResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(GetRootCaCertificateResponse {
            certificate_pem: self.ca_pem.clone(),
        }))
    }

    async fn issue_node_certificate(
        &self,
        _request: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn renew_node_certificate(
        &self,
        request: Request<RenewNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Some(caller) = tls::peer_identity(&request) else {
            return Err(Status::unauthenticated("no client certificate"));
        };
        Ok(Response::new(IssueNodeCertificateResponse {
            node_id: caller.node_id,
            role: caller.role as i32,
            cluster_id: caller.cluster_id,
            ..Default::default()
        }))
    }
}

/// Starts a manager-like TLS server on loopback with `tls` as its identity.
async fn serve(tls: &NodeTls) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr").to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = WhoAmI {
        ca_pem: tls.ca_pem.clone(),
        calls: calls.clone(),
    };
    let router = Server::builder()
        .tls_config(tls::server_tls_config(tls))
        .expect("server TLS config")
        .add_service(CaServer::new(service));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    (addr, calls)
}

async fn who_am_i(channel: Channel) -> Result<IssueNodeCertificateResponse, Status> {
    CaClient::new(channel)
        .renew_node_certificate(RenewNodeCertificateRequest::default())
        .await
        .map(Response::into_inner)
}

#[tokio::test]
async fn a_joining_node_fetches_the_ca_without_a_certificate_and_checks_it_against_the_token() {
    let cluster = Cluster::new();
    let (_, manager) = cluster.node(NodeRole::Manager);
    let (addr, _) = serve(&manager).await;
    let join_token = token::generate(&cluster.ca.cert_pem);

    let fetched = tls::fetch_root_ca(&addr).await.expect("fetch CA");
    assert_eq!(fetched, cluster.ca.cert_pem);
    let parsed = token::parse(&join_token).expect("token");
    assert!(parsed.matches_ca(&fetched));

    // A token from another cluster does not vouch for this CA.
    let other = Cluster::new();
    let foreign = token::parse(&token::generate(&other.ca.cert_pem)).expect("token");
    assert!(!foreign.matches_ca(&fetched));
}

#[tokio::test]
async fn a_node_certificate_tells_the_manager_who_is_calling() {
    let cluster = Cluster::new();
    let (_, manager) = cluster.node(NodeRole::Manager);
    let (addr, _) = serve(&manager).await;

    for role in [NodeRole::Worker, NodeRole::Manager] {
        let (node_id, node) = cluster.node(role);
        let channel = tls::connect(&addr, &node.ca_pem, Some(node.client_identity()))
            .await
            .expect("connect");
        let seen = who_am_i(channel).await.expect("call");
        assert_eq!(seen.node_id, node_id);
        assert_eq!(seen.role, role as i32);
        assert_eq!(seen.cluster_id, cluster.id);
    }

    // A lazy channel (long-lived peers) carries the identity too.
    let (node_id, node) = cluster.node(NodeRole::Worker);
    let channel =
        tls::connect_lazy(&addr, &node.ca_pem, Some(node.client_identity())).expect("lazy channel");
    assert_eq!(who_am_i(channel).await.expect("call").node_id, node_id);
}

#[tokio::test]
async fn a_caller_without_a_certificate_gets_in_but_is_anonymous() {
    let cluster = Cluster::new();
    let (_, manager) = cluster.node(NodeRole::Manager);
    let (addr, _) = serve(&manager).await;

    let channel = tls::connect(&addr, &cluster.ca.cert_pem, None)
        .await
        .expect("connect without a client certificate");
    let status = who_am_i(channel).await.expect_err("anonymous");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn a_certificate_from_another_cluster_is_refused_during_the_handshake() {
    let cluster = Cluster::new();
    let (_, manager) = cluster.node(NodeRole::Manager);
    let (addr, calls) = serve(&manager).await;

    let intruder_cluster = Cluster::new();
    let (_, intruder) = intruder_cluster.node(NodeRole::Manager);
    // The intruder trusts our CA (it could fetch it) but its own certificate is
    // signed by another CA. With TLS 1.3 the server's refusal may only surface on
    // the first call, so try both steps.
    let outcome = async {
        let channel = tls::connect(
            &addr,
            &cluster.ca.cert_pem,
            Some(intruder.client_identity()),
        )
        .await
        .map_err(|e| e.to_string())?;
        who_am_i(channel).await.map_err(|s| s.to_string())
    }
    .await;
    let err = outcome.expect_err("foreign client certificate refused");
    assert!(
        err.contains("UnknownCA") || err.contains("the manager refused this node's certificate"),
        "refused by a TLS alert: {err}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the call must not reach the service: {err}"
    );
    // A client can tell before it dials, and say why.
    assert_eq!(
        tls::check_client_certificate(&cluster.ca.cert_pem, &intruder.cert_pem),
        Err("it is not signed by this swarm's CA (a certificate of another swarm?)".to_string())
    );
    assert_eq!(
        tls::check_client_certificate(&cluster.ca.cert_pem, &manager.cert_pem),
        Ok(())
    );
}

#[tokio::test]
async fn a_manager_with_a_certificate_from_another_ca_is_refused() {
    let ours = Cluster::new();
    let (_, node) = ours.node(NodeRole::Worker);

    let impostor_cluster = Cluster::new();
    let (_, impostor) = impostor_cluster.node(NodeRole::Manager);
    let (addr, calls) = serve(&impostor).await;

    let err = tls::connect(&addr, &node.ca_pem, Some(node.client_identity()))
        .await
        .expect_err("server from another CA");
    let TlsError::Connect {
        addr: named,
        reason,
    } = &err
    else {
        panic!("expected a connect error, got {err:?}");
    };
    assert_eq!(named, &addr);
    assert!(reason.contains("not signed by this swarm's CA"), "{err}");
    assert!(!reason.contains("UnknownIssuer"), "{err}");
    assert!(err.to_string().starts_with(&format!("connect to {addr}: ")));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_worker_certificate_cannot_serve_as_a_manager() {
    let cluster = Cluster::new();
    let (_, worker) = cluster.node(NodeRole::Worker);
    let (addr, _) = serve(&worker).await;
    let (_, node) = cluster.node(NodeRole::Worker);

    let err = tls::connect(&addr, &node.ca_pem, Some(node.client_identity()))
        .await
        .expect_err("a worker certificate lacks the swarm-manager name");
    assert!(
        err.to_string().contains("not a manager certificate"),
        "{err}"
    );
}

/// During a root CA rotation a node certificate signed by the new root and
/// sent with the new root cross-signed by the old one is accepted, in both
/// directions, by nodes that still trust only the old root; after the
/// rotation a certificate signed only by the old root is refused.
#[tokio::test]
async fn cross_signed_certificates_bridge_a_root_rotation() {
    let cluster = Cluster::new();
    let new_root = RootCa::generate(&cluster.id).expect("new root");
    let cross = cluster.ca.cross_sign(&new_root).expect("cross-sign");
    let rotated = |role| {
        let (key_pem, csr_pem) = keys::new_key_and_csr().expect("key and CSR");
        let leaf = new_root
            .sign_node_csr(&csr_pem, &new_id(), role, &cluster.id, DAY)
            .expect("sign");
        NodeTls {
            ca_pem: cluster.ca.cert_pem.clone(),
            cert_pem: format!("{}\n{}", leaf.trim_end(), cross),
            key_pem,
        }
    };
    // A renewed manager, an old-root-only client.
    let (addr, _) = serve(&rotated(NodeRole::Manager)).await;
    let (_, old_node) = cluster.node(NodeRole::Worker);
    let channel = tls::connect(&addr, &old_node.ca_pem, Some(old_node.client_identity()))
        .await
        .expect("an old-root client accepts the renewed manager");
    who_am_i(channel).await.expect("call");
    // A manager not yet renewed, a renewed client.
    let (_, old_manager) = cluster.node(NodeRole::Manager);
    let (addr, _) = serve(&old_manager).await;
    let renewed = rotated(NodeRole::Worker);
    let channel = tls::connect(&addr, &renewed.ca_pem, Some(renewed.client_identity()))
        .await
        .expect("connect");
    who_am_i(channel)
        .await
        .expect("the old-root manager accepts the renewed client");

    // After the rotation: trust only the new root.
    let mut finished = rotated(NodeRole::Manager);
    finished.ca_pem = new_root.cert_pem.clone();
    let (addr, calls) = serve(&finished).await;
    let mut renewed = rotated(NodeRole::Worker);
    renewed.ca_pem = new_root.cert_pem.clone();
    let channel = tls::connect(&addr, &renewed.ca_pem, Some(renewed.client_identity()))
        .await
        .expect("connect");
    who_am_i(channel).await.expect("a renewed node is accepted");
    let before = calls.load(Ordering::SeqCst);
    let outcome = async {
        let channel = tls::connect(&addr, &new_root.cert_pem, Some(old_node.client_identity()))
            .await
            .map_err(|e| e.to_string())?;
        who_am_i(channel).await.map_err(|s| s.to_string())
    }
    .await;
    assert!(outcome.is_err(), "an old-root certificate is refused");
    assert_eq!(calls.load(Ordering::SeqCst), before);
}
