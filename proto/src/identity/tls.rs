//! Mutual TLS for every TCP connection between nodes (rustls with aws-lc-rs).
//!
//! - Servers (managers, port 2377) present their node certificate, which carries the
//!   DNS name `swarm-manager`, and ask clients for theirs. A client certificate is
//!   verified against the cluster CA when presented, but it is *optional* at the TLS
//!   layer, because a joining node has none yet: each call decides what it needs
//!   with [`peer_identity`] (the CA service lets anyone fetch the CA or present a
//!   join token; Raft and Control want a manager certificate; the dispatcher any
//!   node certificate).
//! - Clients verify the server against the cluster CA with the server name
//!   `swarm-manager` ([`connect`], [`connect_lazy`], [`manager_endpoint`]), and
//!   present their node certificate when they have one.
//! - The one exception is [`fetch_root_ca`], the first step of `join`: it cannot
//!   verify the server because it does not have the CA yet; its caller must check
//!   the CA it gets against the join token's digest before trusting it.
//!
//! A node keeps its TLS material in its data directory ([`NodeTls`]).
//! The rustls crypto provider is aws-lc-rs, installed process-wide by
//! [`install_crypto_provider`] (every function here calls it).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

use super::cert::{self, CertError, NodeIdentity};
use crate::ca::ca_client::CaClient;
use crate::ca::GetRootCaCertificateRequest;

/// The name every manager certificate carries and every client verifies.
pub const MANAGER_SERVER_NAME: &str = cert::MANAGER_OU;
/// How long to wait for the TCP connection and the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long [`connect`] and [`connect_lazy`] wait for a call's response headers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server waits for a client to finish its TLS handshake.
pub const SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS connection could not be set up or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("invalid manager address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    #[error("TLS setup for {addr}: {reason}")]
    Config { addr: String, reason: String },
    #[error("connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("fetch root CA from {addr}: {reason}")]
    FetchCa { addr: String, reason: String },
}

/// A node's TLS material: the cluster CA, its certificate and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[hidden]")
            .finish()
    }
}

impl NodeTls {
    /// The cluster root CA certificate file in a node's TLS directory.
    pub const CA_FILE: &'static str = "ca.crt";
    /// The node certificate file.
    pub const CERT_FILE: &'static str = "node.crt";
    /// The node private key file (mode 0600).
    pub const KEY_FILE: &'static str = "node.key";

    /// Reads `ca.crt`, `node.crt` and `node.key` from `dir`. A missing file gives
    /// an error of kind `NotFound` (the node has not joined yet).
    pub fn load(dir: &Path) -> io::Result<NodeTls> {
        Ok(NodeTls {
            ca_pem: read(&dir.join(Self::CA_FILE))?,
            cert_pem: read(&dir.join(Self::CERT_FILE))?,
            key_pem: read(&dir.join(Self::KEY_FILE))?,
        })
    }

    /// Writes the three files into `dir` (created if missing), each through a
    /// temporary file and a rename so a crash never leaves half a file; the key is
    /// written with mode 0600.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir).map_err(|e| context(e, "create", dir))?;
        write_atomic(&dir.join(Self::KEY_FILE), &self.key_pem, 0o600)?;
        write_atomic(&dir.join(Self::CERT_FILE), &self.cert_pem, 0o644)?;
        write_atomic(&dir.join(Self::CA_FILE), &self.ca_pem, 0o644)?;
        Ok(())
    }

    /// Who this node's certificate says it is.
    pub fn identity(&self) -> Result<NodeIdentity, CertError> {
        cert::parse_cert_pem(&self.cert_pem)
    }

    /// The certificate and key to present as a client, for [`connect`].
    pub fn client_identity(&self) -> (&str, &str) {
        (&self.cert_pem, &self.key_pem)
    }
}

fn read(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map_err(|e| context(e, "read", path))
}

fn write_atomic(path: &Path, contents: &str, mode: u32) -> io::Result<()> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(context(e, "remove", &tmp)),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| context(e, "create", &tmp))?;
    // The umask may have removed bits, never added any; make the mode exact.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| context(e, "chmod", &tmp))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| context(e, "write", &tmp))?;
    fs::rename(&tmp, path).map_err(|e| context(e, "rename into", path))
}

fn context(e: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

/// Installs aws-lc-rs as the process-wide rustls crypto provider. Idempotent; if
/// another provider was installed first, that one stays (rustls allows only one).
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if rustls::crypto::aws_lc_rs::default_provider()
            .install_default()
            .is_err()
        {
            tracing::debug!("a rustls crypto provider was already installed; keeping it");
        }
    });
}

fn provider() -> Arc<CryptoProvider> {
    install_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// The server side of a node's gRPC listener: presents the node certificate,
/// verifies client certificates against the CA when presented, and lets callers
/// without one in (authorise each call with [`peer_identity`]).
///
/// Malformed PEM in `tls` is reported by `tonic::transport::Server::tls_config`.
pub fn server_tls_config(tls: &NodeTls) -> ServerTlsConfig {
    install_crypto_provider();
    ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .client_ca_root(Certificate::from_pem(&tls.ca_pem))
        .client_auth_optional(true)
        .timeout(SERVER_HANDSHAKE_TIMEOUT)
}

/// An mTLS channel to the manager at `addr` (`host:port`), verified against the
/// cluster CA `ca_pem` with server name `swarm-manager`, presenting `client`
/// (certificate PEM, key PEM) when given. Connects now (within [`CONNECT_TIMEOUT`]);
/// calls time out after [`REQUEST_TIMEOUT`] without response headers.
pub async fn connect(
    addr: &str,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<Channel, TlsError> {
    let endpoint = manager_endpoint(addr, ca_pem, client, Some(REQUEST_TIMEOUT))?;
    endpoint.connect().await.map_err(|e| TlsError::Connect {
        addr: addr.to_string(),
        reason: explain(&e),
    })
}

/// Like [`connect`], but the channel connects on first use and reconnects after
/// failures: for long-lived peers. Must be called within a tokio runtime.
pub fn connect_lazy(
    addr: &str,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<Channel, TlsError> {
    Ok(manager_endpoint(addr, ca_pem, client, Some(REQUEST_TIMEOUT))?.connect_lazy())
}

/// The endpoint [`connect`] uses, for callers that need their own request timeout
/// (`None`: calls never time out, e.g. a dispatcher session or a log stream).
pub fn manager_endpoint(
    addr: &str,
    ca_pem: &str,
    client: Option<(&str, &str)>,
    request_timeout: Option<Duration>,
) -> Result<Endpoint, TlsError> {
    install_crypto_provider();
    let config_error = |reason: String| TlsError::Config {
        addr: addr.to_string(),
        reason,
    };
    check_pem_certs(ca_pem).map_err(|e| config_error(format!("cluster CA: {e}")))?;
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(MANAGER_SERVER_NAME)
        .timeout(CONNECT_TIMEOUT);
    if let Some((cert_pem, key_pem)) = client {
        check_pem_certs(cert_pem).map_err(|e| config_error(format!("node certificate: {e}")))?;
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| config_error(format!("node key: {e}")))?;
        tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
    }
    let endpoint = base_endpoint(addr, request_timeout)?;
    endpoint
        .tls_config(tls)
        .map_err(|e| config_error(explain(&e)))
}

/// Bootstrap for `join`: fetches the cluster's root CA certificate (PEM) from the
/// manager at `addr` over TLS **without verifying the server**, as the CA is not
/// known yet. The caller must check the result against the join token's digest
/// (`token::JoinToken::matches_ca`) before trusting it.
pub async fn fetch_root_ca(addr: &str) -> Result<String, TlsError> {
    let endpoint = base_endpoint(addr, Some(REQUEST_TIMEOUT))?
        .tls_config_with_verifier(
            ClientTlsConfig::new()
                .domain_name(MANAGER_SERVER_NAME)
                .timeout(CONNECT_TIMEOUT),
            Arc::new(UnverifiedServer(provider())),
        )
        .map_err(|e| TlsError::Config {
            addr: addr.to_string(),
            reason: explain(&e),
        })?;
    let channel = endpoint.connect().await.map_err(|e| TlsError::Connect {
        addr: addr.to_string(),
        reason: explain(&e),
    })?;
    let fetch_error = |reason: String| TlsError::FetchCa {
        addr: addr.to_string(),
        reason,
    };
    let response = CaClient::new(channel)
        .get_root_ca_certificate(GetRootCaCertificateRequest {})
        .await
        .map_err(|status| fetch_error(explain_status(&status)))?;
    let pem = response.into_inner().certificate_pem;
    check_pem_certs(&pem).map_err(|e| fetch_error(format!("the manager sent no CA: {e}")))?;
    Ok(pem)
}

/// Who is calling, from the client certificate of a call's TLS connection, which
/// the server has already verified against the cluster CA. `None` when the caller
/// presented no certificate (or the call did not come over TLS).
pub fn peer_identity<T>(req: &tonic::Request<T>) -> Option<NodeIdentity> {
    let certs = req.peer_certs()?;
    let leaf = certs.first()?;
    match cert::parse_cert_der(leaf) {
        Ok(identity) => Some(identity),
        Err(e) => {
            tracing::warn!("peer certificate is not a node certificate: {e}");
            None
        }
    }
}

fn base_endpoint(addr: &str, request_timeout: Option<Duration>) -> Result<Endpoint, TlsError> {
    let invalid = |reason: &str| TlsError::InvalidAddress {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let host_port = addr
        .strip_prefix("tcp://")
        .or_else(|| addr.strip_prefix("https://"))
        .unwrap_or(addr)
        .trim_end_matches('/');
    if host_port.is_empty() || host_port.contains("://") || host_port.contains('/') {
        return Err(invalid("expected host:port"));
    }
    let endpoint = Endpoint::from_shared(format!("https://{host_port}"))
        .map_err(|_| invalid("expected host:port"))?;
    if endpoint.uri().port_u16().is_none() {
        return Err(invalid("missing port (the manager port is usually 2377)"));
    }
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    Ok(match request_timeout {
        Some(timeout) => endpoint.timeout(timeout),
        None => endpoint,
    })
}

/// Checks that `pem` holds at least one well-formed certificate (rustls silently
/// skips unparsable ones, which would surface later as a baffling handshake error).
fn check_pem_certs(pem: &str) -> Result<(), String> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = cert.map_err(|e| e.to_string())?;
        x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
        count += 1;
    }
    if count == 0 {
        return Err("no PEM certificate found".to_string());
    }
    Ok(())
}

/// Whether a manager that trusts `ca_pem` would accept `cert_pem` as a
/// client certificate, checked here the way the manager checks it (rustls's
/// WebPKI client verifier): the manager refuses a certificate of another
/// swarm only after the handshake, where a client sees no more than a closed
/// connection, so a client checks first and can say why. The error is in
/// words ("not signed by this swarm's CA", "expired").
pub fn check_client_certificate(ca_pem: &str, cert_pem: &str) -> Result<(), String> {
    install_crypto_provider();
    let unusable = || "the CA certificate is not usable".to_string();
    let mut roots = rustls::RootCertStore::empty();
    // Every certificate of the CA file (more than one while a CA rotates).
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|_| unusable())?)
            .map_err(|_| unusable())?;
    }
    let mut chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes());
    let leaf = chain
        .next()
        .ok_or_else(|| "no certificate in the file".to_string())?
        .map_err(|_| "the file is not a PEM certificate".to_string())?;
    let intermediates: Vec<CertificateDer<'static>> = chain.filter_map(Result::ok).collect();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|_| unusable())?;
    use rustls::CertificateError as Cert;
    match verifier.verify_client_cert(&leaf, &intermediates, UnixTime::now()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature)) => {
            Err("it is not signed by this swarm's CA (a certificate of another swarm?)".into())
        }
        Err(rustls::Error::InvalidCertificate(Cert::ExpiredContext { time, not_after })) => {
            Err(format!("it expired {} ago", ago(not_after, time)))
        }
        Err(rustls::Error::InvalidCertificate(Cert::Expired)) => Err("it has expired".into()),
        Err(rustls::Error::InvalidCertificate(
            Cert::NotValidYet | Cert::NotValidYetContext { .. },
        )) => Err("it is not valid yet; check the clock".into()),
        Err(_) => Err("the manager would not accept it as a client certificate".into()),
    }
}

/// One line for an error chain. A certificate failure rustls names in its
/// own terms (`invalid peer certificate: UnknownIssuer`) is said in words
/// instead ("the manager's certificate is not signed by this swarm's CA").
pub fn explain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some((tls, hint)) = rustls_error(e).and_then(|t| Some((t, certificate_hint(t)?))) {
            // Outer links may quote rustls's text too: say it in words only.
            let raw = tls.to_string();
            parts = parts
                .into_iter()
                .map(|p| p.replace(&format!(": {raw}"), "").replace(&raw, ""))
                .filter(|p| !p.trim().is_empty())
                .collect();
            parts.push(hint);
            break;
        }
        let message = e.to_string();
        if !message.is_empty() && !parts.iter().any(|p| p.contains(&message)) {
            parts.push(message);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// The rustls error in a chain link; tokio-rustls wraps it in an `io::Error`,
/// whose `source()` skips it.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    e.downcast_ref::<io::Error>()?
        .get_ref()?
        .downcast_ref::<rustls::Error>()
}

fn certificate_hint(err: &rustls::Error) -> Option<String> {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    let hint = match err {
        Error::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature) => {
            "the manager's certificate is not signed by this swarm's CA".to_string()
        }
        Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            "the server's certificate is not a manager certificate".to_string()
        }
        Error::InvalidCertificate(Cert::ExpiredContext { time, not_after }) => format!(
            "the manager's certificate expired {} ago; check both clocks",
            ago(*not_after, *time)
        ),
        Error::InvalidCertificate(Cert::Expired) => {
            "the manager's certificate has expired; check both clocks".to_string()
        }
        Error::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => {
            "the manager's certificate is not valid yet; check both clocks".to_string()
        }
        Error::AlertReceived(Alert::CertificateExpired) => {
            "the manager refused this node's certificate because it has expired (a node that was away longer than its certificate lasts must leave and join again)".to_string()
        }
        Error::AlertReceived(
            Alert::BadCertificate | Alert::UnknownCA | Alert::CertificateUnknown | Alert::DecryptError,
        ) => "the manager refused this node's certificate; it may be from another cluster"
            .to_string(),
        Error::InvalidCertificate(_) => "the manager's certificate is not acceptable".to_string(),
        Error::AlertReceived(_) => "the manager ended the TLS handshake".to_string(),
        _ => return None,
    };
    Some(hint)
}

/// How long before `now` the time `then` was, in words ("3 minutes").
fn ago(then: UnixTime, now: UnixTime) -> String {
    let secs = now.as_secs().saturating_sub(then.as_secs());
    let (n, unit) = match secs {
        0..=119 => (secs, "second"),
        120..=7_199 => (secs / 60, "minute"),
        7_200..=172_799 => (secs / 3_600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn explain_status(status: &tonic::Status) -> String {
    let mut line = format!("{}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        let detail = explain(source);
        if !line.contains(&detail) {
            line.push_str(": ");
            line.push_str(&detail);
        }
    }
    line
}

/// Accepts any server certificate, still checking that the server holds its key.
/// Only for [`fetch_root_ca`].
#[derive(Debug)]
struct UnverifiedServer(Arc<CryptoProvider>);

impl ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeTls {
        NodeTls {
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "key".into(),
        }
    }

    #[test]
    fn saves_and_loads_with_a_private_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls_dir = dir.path().join("certificates");
        sample().save(&tls_dir).expect("save");
        assert_eq!(NodeTls::load(&tls_dir).expect("load"), sample());

        let mode = |name: &str| {
            fs::metadata(tls_dir.join(name))
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(NodeTls::KEY_FILE), 0o600);
        assert_eq!(mode(NodeTls::CERT_FILE), 0o644);

        // Saving again (renewal) replaces the files and keeps the key private.
        let renewed = NodeTls {
            key_pem: "new key".into(),
            ..sample()
        };
        renewed.save(&tls_dir).expect("save again");
        assert_eq!(NodeTls::load(&tls_dir).expect("load"), renewed);
        assert_eq!(mode(NodeTls::KEY_FILE), 0o600);
        assert!(!format!("{renewed:?}").contains("new key"));
    }

    #[test]
    fn loading_before_join_says_not_found_and_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = NodeTls::load(dir.path()).expect_err("nothing saved");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn addresses_need_a_host_and_a_port() {
        assert!(base_endpoint("10.1.0.1:2377", None).is_ok());
        assert!(base_endpoint("tcp://10.1.0.1:2377", None).is_ok());
        assert!(base_endpoint("[::1]:2377", None).is_ok());
        assert!(base_endpoint("manager-1:2377", None).is_ok());
        for bad in [
            "",
            "10.1.0.1",
            "unix:///run/x.sock",
            "10.1.0.1:2377/x",
            "a b:1",
        ] {
            let err = base_endpoint(bad, None).expect_err(bad);
            assert!(
                matches!(err, TlsError::InvalidAddress { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_garbage_ca_is_refused_before_connecting() {
        let err =
            manager_endpoint("127.0.0.1:2377", "not a cert", None, None).expect_err("garbage CA");
        assert_eq!(
            err.to_string(),
            "TLS setup for 127.0.0.1:2377: cluster CA: no PEM certificate found"
        );
    }

    #[tokio::test]
    async fn an_unreachable_manager_is_named_in_the_error() {
        // Port 1 on loopback: nothing listens there.
        let err = fetch_root_ca("127.0.0.1:1").await.expect_err("refused");
        let message = err.to_string();
        assert!(message.starts_with("connect to 127.0.0.1:1: "), "{message}");
    }

    #[test]
    fn an_expired_certificate_is_said_in_one_line_of_words() {
        use rustls::{AlertDescription, CertificateError};
        let refused = rustls::Error::AlertReceived(AlertDescription::CertificateExpired);
        let line = explain(&io::Error::other(refused));
        assert_eq!(
            line,
            "the manager refused this node's certificate because it has expired (a node that was away longer than its certificate lasts must leave and join again)"
        );
        let at = |secs| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let expired = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: at(1_000_200),
            not_after: at(1_000_000),
        });
        assert_eq!(
            explain(&expired),
            "the manager's certificate expired 3 minutes ago; check both clocks"
        );
        assert_eq!(ago(at(10), at(11)), "1 second");
        assert_eq!(ago(at(0), at(3 * 86_400)), "3 days");
        assert_eq!(ago(at(10), at(5)), "0 seconds");
        for line in [line, explain(&expired)] {
            assert!(!line.contains('\n') && !line.contains("Context"), "{line}");
        }
    }

    #[test]
    fn crypto_provider_install_is_idempotent_and_aws_lc() {
        install_crypto_provider();
        install_crypto_provider();
        let installed = CryptoProvider::get_default().expect("a provider is installed");
        let suites = |p: &CryptoProvider| -> Vec<String> {
            p.cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect()
        };
        // aws-lc-rs is the only crypto backend (see Cargo.toml): the default
        // provider is its provider, not another one installed first.
        assert_eq!(
            suites(installed),
            suites(&rustls::crypto::aws_lc_rs::default_provider())
        );
        assert!(installed.fips() == rustls::crypto::aws_lc_rs::default_provider().fips());
    }
}
