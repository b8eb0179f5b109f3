//! Reaching a daemon: the local unix socket by default, `-H unix:///path`,
//! or `-H tcp://host:2377` with this node's certificate (mutual TLS), also
//! from `RSWARM_HOST`. A daemon that does not answer gives one line naming
//! the address tried.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use hyper_util::rt::TokioIo;
use rswarm_proto::identity::tls;
use tonic::transport::{Channel, Endpoint};

use crate::daemon::DEFAULT_SOCKET;

/// Where and how to connect, from the global flags.
#[derive(Clone, Debug)]
pub struct ClientOpts {
    pub host: Option<String>,
    pub tlscacert: PathBuf,
    pub tlscert: PathBuf,
    pub tlskey: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl Target {
    pub fn parse(s: &str) -> anyhow::Result<Target> {
        if s.trim().is_empty() {
            bail!("invalid host '': expected unix:///path or tcp://host:port");
        }
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                bail!("invalid host '{s}': unix:// needs a socket path");
            }
            return Ok(Target::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            if a.is_empty() {
                bail!("invalid host '{s}': tcp:// needs host:port");
            }
            let a = if a.contains(':') {
                a.to_string()
            } else {
                format!("{a}:2377")
            };
            return Ok(Target::Tcp(a));
        }
        bail!("invalid host '{s}': expected unix:///path or tcp://host:port")
    }

    pub fn display(&self) -> String {
        match self {
            Target::Unix(p) => format!("unix://{}", p.display()),
            Target::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

impl ClientOpts {
    pub fn target(&self) -> anyhow::Result<Target> {
        match &self.host {
            Some(h) => Target::parse(h),
            None => Ok(Target::Unix(PathBuf::from(DEFAULT_SOCKET))),
        }
    }

    /// Connect to the daemon (or remote manager).
    pub async fn connect(&self) -> anyhow::Result<(Channel, Target)> {
        let target = self.target()?;
        let channel = match &target {
            Target::Unix(path) => {
                let path = path.clone();
                let shown = target.display();
                Endpoint::try_from("http://localhost")?
                    .connect_with_connector(tower::service_fn(move |_| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }))
                    .await
                    .map_err(|_| {
                        anyhow!("Cannot connect to the rswarm daemon at {shown}. Is `rswarm daemon` running?")
                    })?
            }
            Target::Tcp(addr) => {
                let ca = std::fs::read_to_string(&self.tlscacert).with_context(|| {
                    format!(
                        "reading the CA certificate {} (set --tlscacert)",
                        self.tlscacert.display()
                    )
                })?;
                let cert = std::fs::read_to_string(&self.tlscert).ok();
                let key = match std::fs::read_to_string(&self.tlskey) {
                    Ok(k) => Some(crate::daemon::open_node_key_file(&self.tlskey, k)?),
                    Err(_) => None,
                };
                let client = match (&cert, &key) {
                    (Some(c), Some(k)) => Some((c.as_str(), k.as_str())),
                    _ => None,
                };
                if let Some((c, _)) = client {
                    tls::check_client_certificate(&ca, c).map_err(|why| {
                        anyhow!(
                            "Cannot connect to the rswarm manager at {}: the client certificate {} will be refused: {why}",
                            target.display(),
                            self.tlscert.display()
                        )
                    })?;
                }
                tls::connect(addr, &ca, client).await.map_err(|e| {
                    anyhow!(
                        "Cannot connect to the rswarm manager at {}: {e}",
                        target.display()
                    )
                })?
            }
        };
        Ok((channel, target))
    }
}

/// Turn a gRPC error into the one line a user sees.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    let msg = s.message().trim();
    match s.code() {
        _ if msg.contains("transport error")
            || (s.code() == tonic::Code::Unavailable && msg.is_empty()) =>
        {
            // Say what failed underneath ("transport error" alone does not):
            // a refused certificate, a reset connection, …
            let why = std::error::Error::source(&s)
                .map(tls::explain)
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| msg.to_string());
            anyhow!("Error response from daemon: the daemon is unreachable: {why}")
        }
        // A manager's TCP port serves the control API only: node-local
        // calls (`info`, `image …`, `exec`) need the node's own socket.
        tonic::Code::Unimplemented => anyhow!(
            "Error response from daemon: this command is not served on a manager's tcp:// port; run it on the node itself (its local socket)"
        ),
        _ if msg.is_empty() => anyhow!(
            "Error response from daemon: the call failed ({}) without a message",
            s.code()
        ),
        _ => anyhow!("Error response from daemon: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            Target::parse("unix:///x/s.sock").unwrap(),
            Target::Unix("/x/s.sock".into())
        );
        assert_eq!(
            Target::parse("tcp://10.0.0.1").unwrap(),
            Target::Tcp("10.0.0.1:2377".into())
        );
        assert_eq!(
            Target::parse("tcp://10.0.0.1:4000").unwrap(),
            Target::Tcp("10.0.0.1:4000".into())
        );
        assert!(Target::parse("http://x").is_err());
        assert!(Target::parse("unix://").is_err());
        assert_eq!(
            Target::parse("").map_err(|e| e.to_string()),
            Err("invalid host '': expected unix:///path or tcp://host:port".to_string())
        );
    }
}
