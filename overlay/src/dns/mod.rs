//! The embedded DNS server tasks resolve through, at 127.0.0.11:53 (UDP and
//! TCP) inside each task's own network namespace.
//!
//! One [`DnsServer`] lives in the daemon. It holds the cluster's record table
//! (replaced whole by [`DnsServer::set_records`]) and a pool of upstream
//! resolvers (the host's `/etc/resolv.conf`). For each task the caller binds a
//! UDP socket and a TCP listener *inside the task's namespace* (see
//! [`bind_in_netns`]) and hands them to [`DnsServer::serve`] together with the
//! task's [`View`]; the sockets are then served from the daemon's tokio
//! runtime, by a handler that answers with that task's view. Forwarded queries
//! leave from the daemon's own namespace, so a loopback resolver of the host
//! (such as 127.0.0.53) works.
//!
//! Answers:
//! - `<service>`: its VIP on a network the task shares, or for `dnsrr` the
//!   addresses of its healthy tasks; `tasks.<service>`: the healthy task
//!   addresses; network aliases of services and tasks;
//!   `<service>.<slot>.<taskid>` task names; within a stack the unqualified
//!   `web` for `<stack>_web` (qualified names work from anywhere on the
//!   network); PTR for task addresses and VIPs.
//! - Case-insensitive, trailing dot or not, TTL 0 (a change is seen at the
//!   next query). AAAA (and any other type) for a cluster name: empty NOERROR.
//! - Unknown single labels, `tasks.<label>` and `<service>.<slot>.<id>`
//!   look-alikes: NXDOMAIN at once. Anything else goes to the upstreams with a
//!   short timeout (SERVFAIL when they fail, or at once when there are none)
//!   and their answer is relayed. The upstreams are the task's own (its
//!   `--dns` servers, [`View::upstreams`]) when it has some, else the host's.

mod handler;
mod table;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};
use hickory_server::Server;

use handler::{Shared, TaskHandler};
use table::Table;

/// Where tasks find the server, inside their own namespace.
pub const DNS_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 11), 53));

/// How long a forwarded query may take before the task gets SERVFAIL; well
/// under a libc client's 5 s, so the client sees the failure, not a timeout.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// Idle timeout of a TCP client connection.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Created or served outside a tokio runtime.
    #[error("the DNS server needs a tokio runtime: {0}")]
    NoRuntime(String),
    /// A socket could not be set up.
    #[error("DNS socket: {0}")]
    Io(#[from] io::Error),
    /// The upstream resolver pool could not be set up.
    #[error("DNS upstream setup: {0}")]
    Upstream(String),
    /// Binding inside a network namespace failed.
    #[error("binding the DNS sockets in namespace {path}: {source}")]
    Netns {
        /// The namespace file (`/proc/<pid>/ns/net` or `/run/netns/<name>`).
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// What one task sees: the networks it is on, the stack it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Ids of the networks the task is attached to, in attachment order (the
    /// first network on which a name has addresses answers).
    pub networks: Vec<String>,
    /// The task's `com.docker.stack.namespace`, if any.
    pub stack: Option<String>,
    /// The task's own resolvers (`--dns`): names the server does not know
    /// go there instead of the host's, as Docker's embedded server does.
    /// Empty: the host's.
    pub upstreams: Vec<SocketAddr>,
}

/// The whole record set; [`DnsServer::set_records`] replaces it at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// One entry per service per network it is attached to.
    pub services: Vec<ServiceRecord>,
    /// One entry per task per network it is attached to.
    pub tasks: Vec<TaskRecord>,
}

/// A service on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// Full service name (`<stack>_web` for a stack service).
    pub name: String,
    /// The service's `com.docker.stack.namespace`.
    pub stack: Option<String>,
    /// The network this record is on.
    pub network_id: String,
    /// The service's VIP on this network; `None` for endpoint mode dnsrr.
    pub vip: Option<Ipv4Addr>,
    /// Network aliases of the service on this network.
    pub aliases: Vec<String>,
}

/// A task on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// Full name of the task's service.
    pub service_name: String,
    /// The service's `com.docker.stack.namespace`.
    pub stack: Option<String>,
    /// The network this record is on.
    pub network_id: String,
    /// `<service>.<slot>.<taskid>` (or `<service>.<nodeid>.<taskid>` for global).
    pub task_name: String,
    /// The task's address on this network.
    pub addr: Ipv4Addr,
    /// Network aliases of the task on this network (answered while healthy).
    pub aliases: Vec<String>,
    /// Running and healthy: only these are in `tasks.<service>`, dnsrr answers
    /// and alias answers. The task's own name resolves regardless.
    pub healthy: bool,
}

/// The embedded DNS server: shared record table and upstream resolvers.
pub struct DnsServer {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
}

impl DnsServer {
    /// Creates the server on the current tokio runtime, forwarding unknown
    /// names to `upstreams` (empty: no forwarding) with
    /// [`DEFAULT_FORWARD_TIMEOUT`].
    pub fn new(upstreams: Vec<SocketAddr>) -> Result<Arc<DnsServer>, DnsError> {
        DnsServer::with_forward_timeout(upstreams, DEFAULT_FORWARD_TIMEOUT)
    }

    /// As [`DnsServer::new`], with the forwarding timeout given.
    pub fn with_forward_timeout(
        upstreams: Vec<SocketAddr>,
        forward_timeout: Duration,
    ) -> Result<Arc<DnsServer>, DnsError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| DnsError::NoRuntime(e.to_string()))?;
        let upstream = upstream_pool(&upstreams, forward_timeout)?;
        Ok(Arc::new(DnsServer {
            shared: Arc::new(Shared::new(upstream, forward_timeout)),
            runtime,
        }))
    }

    /// The `nameserver` lines of a resolv.conf, as port-53 addresses (IPv6
    /// zone suffixes dropped, duplicates removed). A missing or unreadable
    /// file gives none.
    pub fn read_host_resolv_conf(path: &Path) -> Vec<SocketAddr> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                continue;
            }
            let Some(addr) = words.next() else { continue };
            let addr = addr.split('%').next().unwrap_or(addr);
            if let Ok(ip) = addr.parse::<IpAddr>() {
                let sa = SocketAddr::new(ip, 53);
                if !out.contains(&sa) {
                    out.push(sa);
                }
            }
        }
        out
    }

    /// Serves already-bound sockets (bound by the caller inside the task's
    /// namespace, normally at [`DNS_ADDR`]) with the task's `view`, from the
    /// runtime the server was created on. Serving ends when the returned
    /// handle is dropped or stopped.
    pub fn serve(
        &self,
        view: View,
        udp: UdpSocket,
        tcp: TcpListener,
    ) -> Result<ServeHandle, DnsError> {
        let _guard = self.runtime.enter();
        let udp_addr = udp.local_addr()?;
        let tcp_addr = tcp.local_addr()?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let udp = tokio::net::UdpSocket::from_std(udp)?;
        let tcp = tokio::net::TcpListener::from_std(tcp)?;

        let own_upstream = upstream_pool(&view.upstreams, self.shared.forward_timeout)?;
        let mut server = Server::new(TaskHandler {
            shared: self.shared.clone(),
            view,
            own_upstream,
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, 64);
        Ok(ServeHandle {
            server: Some(server),
            udp_addr,
            tcp_addr,
        })
    }

    /// Counts every query from now on into `metrics` (the first call wins).
    pub fn set_metrics(&self, metrics: crate::metrics::OverlayMetrics) {
        let _ = self.shared.metrics.set(metrics);
    }

    /// Replaces the whole record set; the next query of every task sees it.
    pub fn set_records(&self, records: Records) {
        self.shared.set_table(Table::build(&records));
    }
}

/// A pool forwarding to `upstreams` (none when empty), each tried once
/// within `timeout`, nothing cached.
fn upstream_pool(
    upstreams: &[SocketAddr],
    timeout: Duration,
) -> Result<Option<NameServerPool<TokioRuntimeProvider>>, DnsError> {
    if upstreams.is_empty() {
        return Ok(None);
    }
    let mut options = ResolverOpts::default();
    options.timeout = timeout;
    options.attempts = 1;
    options.cache_size = 0;
    let tls = TlsConfig::new().map_err(|e| DnsError::Upstream(e.to_string()))?;
    let cx = Arc::new(PoolContext::new(options, tls));
    let configs = upstreams.iter().map(|addr| {
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
    });
    Ok(Some(NameServerPool::from_config(
        configs,
        cx,
        TokioRuntimeProvider::default(),
    )))
}

/// A served socket pair; dropping it (or [`ServeHandle::stop`]) ends serving
/// and closes the sockets.
pub struct ServeHandle {
    server: Option<Server<TaskHandler>>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
}

impl ServeHandle {
    /// The UDP address served.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The TCP address served.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Ends serving at once: the serving tasks are cancelled and the sockets
    /// close as the runtime drops them (immediately after, not synchronously).
    pub fn stop(self) {}

    /// Ends serving and waits until the sockets are closed.
    pub async fn shutdown(mut self) -> Result<(), DnsError> {
        if let Some(mut server) = self.server.take() {
            server
                .shutdown_gracefully()
                .await
                .map_err(|e| DnsError::Io(io::Error::other(e.to_string())))?;
        }
        Ok(())
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown_token().cancel();
            // Dropping the server aborts its tasks, which own the sockets.
            drop(server);
        }
    }
}

/// Binds the UDP socket and TCP listener for `addr` in the calling thread's
/// network namespace.
pub fn bind_sockets(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let udp = UdpSocket::bind(addr)?;
    let tcp = TcpListener::bind(addr)?;
    Ok((udp, tcp))
}

/// Binds the sockets for `addr` (normally [`DNS_ADDR`]) inside the network
/// namespace `netns` (`/proc/<pid>/ns/net` of the task's process, or a bind
/// mount such as `/run/netns/<name>`), from a short-lived thread that enters
/// the namespace and exits afterwards. The namespace's `lo` must be up.
pub fn bind_in_netns(netns: &Path, addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let fail = |source: io::Error| DnsError::Netns {
        path: netns.to_path_buf(),
        source,
    };
    let file = File::open(netns).map_err(fail)?;
    let joined = std::thread::Builder::new()
        .name("dns-netns-bind".into())
        .spawn(move || -> io::Result<(UdpSocket, TcpListener)> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)?;
            bind_sockets(addr)
        })
        .map_err(fail)?
        .join();
    match joined {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(fail(io::Error::other("bind thread panicked"))),
    }
}
