//! The manager's one set of gRPC services and the two ways in front of it.
//!
//! [`ACCESS`] is the one table of what the manager serves and what each
//! service demands of its callers; `Manager::routes` builds the services
//! themselves. Both listeners serve those same routes:
//!
//! - TCP 2377 puts [`AuthLayer`] in front: every call is checked by
//!   [`crate::auth`] for the access its service needs (one layer for all
//!   services, never a check per method), and the caller's identity is put in
//!   the request's extensions for the handlers.
//! - The daemon's local unix socket puts [`RoutedLayer`] in front of its own
//!   services (the `Daemon` and `Images` APIs): a call to a client-facing
//!   manager service ([`Access::Manager`]) goes to this node's manager when it
//!   has one, and otherwise gets the node's own answer (not a manager, locked,
//!   not in a swarm). The socket is root's, like dockerd's, so no certificate
//!   is asked there; the manager-to-manager and agent services are not
//!   offered on it.
//!
//! Adding an API to the manager means one `add_service` line in
//! `Manager::routes` and one line in [`ACCESS`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rswarm_proto::{ca, control, dispatcher, raft};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::service::Routes;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

use crate::auth::{Access, Auth};

/// Every service the manager serves and what it demands of callers over TCP.
/// `None` for the Ca service: open without a certificate (the join token
/// authorises), [`Access::Node`] with one (renewal).
const ACCESS: &[(&str, Option<Access>)] = &[
    (control::control_server::SERVICE_NAME, Some(Access::Manager)),
    (
        control::services_server::SERVICE_NAME,
        Some(Access::Manager),
    ),
    (
        control::networks_server::SERVICE_NAME,
        Some(Access::Manager),
    ),
    (control::secrets_server::SERVICE_NAME, Some(Access::Manager)),
    (control::configs_server::SERVICE_NAME, Some(Access::Manager)),
    (ca::ca_server::SERVICE_NAME, None),
    (
        dispatcher::dispatcher_server::SERVICE_NAME,
        Some(Access::Node),
    ),
    (dispatcher::tasks_server::SERVICE_NAME, Some(Access::Node)),
    (
        dispatcher::network_state_server::SERVICE_NAME,
        Some(Access::Node),
    ),
    (raft::raft_server::SERVICE_NAME, Some(Access::Raft)),
];

/// The service part of a gRPC path (`/pkg.Service/Method`).
fn service_of(path: &str) -> &str {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

/// What the manager serves at `path`, if anything: the access it needs.
fn access_of(path: &str) -> Option<Option<Access>> {
    let service = service_of(path);
    ACCESS
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, a)| *a)
}

/// Whether `path` is a client-facing manager API (offered on the local socket).
fn is_client_api(path: &str) -> bool {
    access_of(path) == Some(Some(Access::Manager))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type Answer = Result<http::Response<Body>, Infallible>;

/// The role check in front of the manager's TCP services.
#[derive(Clone)]
pub(crate) struct AuthLayer {
    auth: Auth,
}

impl AuthLayer {
    pub(crate) fn new(auth: Auth) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authorized<S>;
    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized {
            auth: self.auth.clone(),
            inner,
        }
    }
}

/// A service behind [`AuthLayer`].
#[derive(Clone)]
pub(crate) struct Authorized<S> {
    auth: Auth,
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for Authorized<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let mut probe = tonic::Request::new(());
        if let Some(info) = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .cloned()
        {
            probe.extensions_mut().insert(info);
        }
        let access = match access_of(req.uri().path()) {
            Some(Some(access)) => access,
            // Ca: renewal is the only call that needs a certificate; the
            // others pass with whatever identity the caller has (if any).
            Some(None) if probe.peer_certs().is_some() => Access::Node,
            Some(None) => Access::Open,
            None => {
                let status = Status::unimplemented(format!(
                    "this manager does not serve {}",
                    service_of(req.uri().path())
                ));
                return Box::pin(async move { Ok(status.into_http()) });
            }
        };
        match self.auth.check(&probe, access) {
            Ok(identity) => {
                if let Some(id) = identity {
                    req.extensions_mut().insert(id);
                }
                let fut = self.inner.call(req);
                Box::pin(fut)
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

/// Where a local call to a manager API goes: this node's manager's routes,
/// or the node's reason why it has none.
pub trait ManagerRoute: Send + Sync + 'static {
    fn manager_routes(&self) -> BoxFuture<Result<Routes, Status>>;
}

/// Sends the client-facing manager APIs on the local socket to
/// [`ManagerRoute`]; everything else to the socket's own services.
#[derive(Clone)]
pub struct RoutedLayer {
    route: Arc<dyn ManagerRoute>,
}

impl RoutedLayer {
    pub fn new(route: Arc<dyn ManagerRoute>) -> Self {
        Self { route }
    }
}

impl<S> tower::Layer<S> for RoutedLayer {
    type Service = Routed<S>;
    fn layer(&self, inner: S) -> Routed<S> {
        Routed {
            route: self.route.clone(),
            inner,
        }
    }
}

/// A local service behind [`RoutedLayer`].
#[derive(Clone)]
pub struct Routed<S> {
    route: Arc<dyn ManagerRoute>,
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for Routed<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if !is_client_api(req.uri().path()) {
            return Box::pin(self.inner.call(req));
        }
        let lookup = self.route.manager_routes();
        Box::pin(async move {
            match lookup.await {
                Ok(mut routes) => tower::Service::call(&mut routes, req).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_says_what_is_served_and_offered_locally() {
        assert!(is_client_api("/rswarm.control.Control/ListNodes"));
        assert!(is_client_api("/rswarm.control.Services/Logs"));
        assert!(is_client_api("/rswarm.control.Networks/CreateNetwork"));
        assert!(!is_client_api("/rswarm.raft.Raft/AppendEntries"));
        assert!(!is_client_api("/rswarm.daemon.Daemon/Info"));
        assert_eq!(
            access_of("/rswarm.dispatcher.Dispatcher/Session"),
            Some(Some(Access::Node))
        );
        assert_eq!(access_of("/rswarm.ca.Ca/IssueNodeCertificate"), Some(None));
        assert_eq!(access_of("/rswarm.daemon.Images/ListImages"), None);
    }
}
