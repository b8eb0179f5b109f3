//! The registry side of a pull, over the OCI distribution API with
//! `oci-client`.
//!
//! * **Endpoints.** A `docker.io` image is tried on each `registry-mirrors`
//!   entry in order, then on Docker Hub; any other image on its own registry.
//! * **Transport.** HTTPS with certificate checks, except for insecure
//!   registries (listed `host:port`, a listed CIDR holding the host's IP
//!   literal, or a loopback IP): those are tried over HTTPS without checks,
//!   then over plain HTTP, as Docker does; the transport that answered is
//!   remembered per host. A mirror given as `http://…` is plain HTTP.
//! * **Authentication.** `GET /v2/` first (Docker's ping): it tells whether
//!   the registry is there at all, and its challenge says basic or bearer.
//!   With credentials for the host, a bearer token is requested with them, or
//!   they are sent as basic auth; without, an anonymous token if asked for.
//! * **Content.** The manifest is fetched raw (OCI and Docker schema 2, image
//!   or index/list) and parsed with `oci-spec`; for an index the entry for
//!   `linux/<this machine's arch>` is fetched. Blobs are verified against
//!   their digests by `oci-client` as they stream.
//! * **Errors** are Docker's: a missing repository or refused access is
//!   "pull access denied …", a missing tag "manifest for … not found: manifest
//!   unknown", a registry that does not answer "… unreachable: …".

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol, SizedStream};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use super::auth::PullAuth;
use super::config::{self, ParsedConfig};
use super::ImageRef;
use super::{host_arch, one_line, sha256_digest, ImageError, RegistryConfig};

const ACCEPT: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Config blobs are small; a registry sending more is broken or hostile.
const MAX_CONFIG_BYTES: usize = 32 << 20;

/// How to reach an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Https,
    Http,
    /// HTTPS without certificate checks, then plain HTTP.
    Insecure,
}

/// One place to pull from.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// `host[:port]` the requests go to.
    pub host: String,
    /// A `registry-mirrors` entry serving `docker.io`.
    pub mirror: bool,
    pub transport: Transport,
}

/// Registry clients and settings, shared by all pulls.
pub(crate) struct Registry {
    mirrors: Vec<(String, Transport)>,
    insecure: Vec<String>,
    auths: HashMap<String, (String, String)>,
    secure: Client,
    insecure_tls: Client,
    plain: Client,
    /// For insecure hosts: `true` when plain HTTP answered, `false` for HTTPS.
    plain_http: Mutex<HashMap<String, bool>>,
    /// Whether `docker.io` images may go to Docker Hub after the mirrors
    /// (tests turn it off: no traffic may leave the machine).
    pub hub_fallback: bool,
}

fn client(
    protocol: ClientProtocol,
    accept_invalid_certificates: bool,
) -> Result<Client, ImageError> {
    let cfg = ClientConfig {
        protocol,
        accept_invalid_certificates,
        // We resolve indexes ourselves.
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    Client::try_from(cfg).map_err(|e| ImageError::Storage(format!("registry client: {e}")))
}

/// The key credentials are filed under: `docker.io` for Docker Hub's names,
/// else `host[:port]` without scheme or path.
pub(crate) fn auth_key(host: &str) -> String {
    let h = host
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let h = h.split('/').next().unwrap_or(h);
    match h {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        other => other.to_string(),
    }
}

/// `host` without its port (and without IPv6 brackets).
fn host_part(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Registry {
    pub(super) fn new(cfg: &RegistryConfig) -> Result<Registry, ImageError> {
        let insecure: Vec<String> = cfg
            .insecure_registries
            .iter()
            .map(|s| {
                s.trim()
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .filter(|s| !s.is_empty())
            .collect();
        let mut reg = Registry {
            mirrors: Vec::new(),
            insecure,
            auths: cfg
                .auths
                .iter()
                .map(|(k, v)| (auth_key(k), v.clone()))
                .collect(),
            secure: client(ClientProtocol::Https, false)?,
            insecure_tls: client(ClientProtocol::Https, true)?,
            plain: client(ClientProtocol::Http, false)?,
            plain_http: Mutex::new(HashMap::new()),
            hub_fallback: true,
        };
        for m in &cfg.mirrors {
            let m = m.trim();
            let (scheme, rest) = match m.split_once("://") {
                Some((s, r)) => (s.to_ascii_lowercase(), r),
                None => ("https".to_string(), m),
            };
            let host = rest.split('/').next().unwrap_or("").to_string();
            if host.is_empty() || !(scheme == "http" || scheme == "https") {
                tracing::warn!(mirror = m, "ignoring invalid registry mirror");
                continue;
            }
            let transport = if scheme == "http" {
                Transport::Http
            } else if reg.is_insecure(&host) {
                Transport::Insecure
            } else {
                Transport::Https
            };
            reg.mirrors.push((host, transport));
        }
        Ok(reg)
    }

    /// Docker's rule: listed `host:port`, or an IP in a listed CIDR or in
    /// 127.0.0.0/8 / ::1.
    pub(super) fn is_insecure(&self, host: &str) -> bool {
        if self.insecure.iter().any(|e| e == host) {
            return true;
        }
        match host_part(host).parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback() || self.insecure.iter().any(|c| in_cidr(ip, c)),
            Err(_) => false,
        }
    }

    /// Where to pull `r` from, in order.
    pub(super) fn endpoints(&self, r: &ImageRef) -> Vec<Endpoint> {
        let mut v = Vec::new();
        if r.is_docker_hub() {
            for (host, transport) in &self.mirrors {
                v.push(Endpoint {
                    host: host.clone(),
                    mirror: true,
                    transport: *transport,
                });
            }
        }
        if r.is_docker_hub() && !self.hub_fallback {
            return v;
        }
        let transport = if self.is_insecure(&r.domain) {
            Transport::Insecure
        } else {
            Transport::Https
        };
        v.push(Endpoint {
            host: r.domain.clone(),
            mirror: false,
            transport,
        });
        v
    }

    /// Pings and authenticates against an endpoint.
    /// Credentials sent with the pull (`extra`) are used only for the
    /// registry they name, before the configured ones.
    pub(super) async fn session(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        extra: Option<&PullAuth>,
    ) -> Result<Session<'_>, ImageError> {
        let sent = extra.filter(|a| a.is_for(&ep.host));
        let creds = sent
            .map(|a| (a.username.clone(), a.password.clone()))
            .or_else(|| self.auths.get(&auth_key(&ep.host)).cloned());
        // oci-client keeps the credentials and tokens of a registry in the
        // client: credentials sent with one task get clients of their own,
        // so no other pull ever uses them.
        let (secure, insecure_tls, plain) = match sent {
            Some(_) => (
                Cow::Owned(client(ClientProtocol::Https, false)?),
                Cow::Owned(client(ClientProtocol::Https, true)?),
                Cow::Owned(client(ClientProtocol::Http, false)?),
            ),
            None => (
                Cow::Borrowed(&self.secure),
                Cow::Borrowed(&self.insecure_tls),
                Cow::Borrowed(&self.plain),
            ),
        };
        let candidates: Vec<(Cow<'_, Client>, Option<bool>)> = match ep.transport {
            Transport::Https => vec![(secure, None)],
            Transport::Http => vec![(plain, None)],
            Transport::Insecure => {
                let known = self
                    .plain_http
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&ep.host).copied());
                match known {
                    Some(true) => vec![(plain, Some(true))],
                    Some(false) => vec![(insecure_tls, Some(false))],
                    None => vec![(insecure_tls, Some(false)), (plain, Some(true))],
                }
            }
        };
        let mut last = None;
        let n = candidates.len();
        for (i, (client, plain)) in candidates.into_iter().enumerate() {
            let mut s = Session {
                client,
                r: r.clone(),
                mirror: ep.mirror.then(|| ep.host.clone()),
                host: ep.host.clone(),
                auth: match &creds {
                    Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
                    None => RegistryAuth::Anonymous,
                },
                user: creds.as_ref().map(|(u, _)| u.clone()),
                bearer: false,
            };
            match s.login().await {
                Ok(()) => {
                    if let (Some(plain), Ok(mut m)) = (plain, self.plain_http.lock()) {
                        m.insert(ep.host.clone(), plain);
                    }
                    return Ok(s);
                }
                Err(e @ ImageError::Unreachable { .. }) if i + 1 < n => {
                    tracing::debug!(host = %ep.host, error = %e, "HTTPS failed, trying plain HTTP");
                    last = Some(e);
                }
                Err(e) => {
                    if let (Some(_), Ok(mut m)) = (plain, self.plain_http.lock()) {
                        m.remove(&ep.host);
                    }
                    return Err(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ImageError::Unreachable {
            reference: r.familiar(),
            registry: ep.host.clone(),
            detail: "no transport".into(),
        }))
    }
}

/// Which request failed, for error wording.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Login,
    Manifest,
    Blob,
    Tags,
}

/// An authenticated conversation with one endpoint about one repository.
pub(crate) struct Session<'a> {
    client: Cow<'a, Client>,
    r: ImageRef,
    mirror: Option<String>,
    pub host: String,
    auth: RegistryAuth,
    user: Option<String>,
    /// The registry gave us a bearer token (so a later 401 is about access,
    /// not about the password).
    bearer: bool,
}

/// A layer as the manifest lists it.
#[derive(Clone, Debug)]
pub(crate) struct LayerRef {
    pub digest: String,
    pub diff_id: String,
}

/// Everything but the layers' content.
pub(crate) struct Fetched {
    /// The image index, when the reference resolved to one: (bytes, digest).
    pub index: Option<(Vec<u8>, String)>,
    pub manifest: (Vec<u8>, String),
    pub config: (Vec<u8>, String),
    pub parsed: ParsedConfig,
    pub layers: Vec<LayerRef>,
}

impl<'a> Session<'a> {
    fn oci_ref(&self, target: &str) -> Reference {
        let mut r = if target.starts_with("sha256:") {
            Reference::with_digest(
                self.r.domain.clone(),
                self.r.path.clone(),
                target.to_string(),
            )
        } else {
            Reference::with_tag(
                self.r.domain.clone(),
                self.r.path.clone(),
                target.to_string(),
            )
        };
        if let Some(m) = &self.mirror {
            r.set_mirror_registry(m.clone());
        }
        r
    }

    async fn login(&mut self) -> Result<(), ImageError> {
        let r = self.oci_ref(self.r.target());
        match self
            .client
            .auth(&r, &self.auth, RegistryOperation::Pull)
            .await
        {
            Ok(token) => {
                self.bearer = token.is_some();
                Ok(())
            }
            Err(e) => Err(self.error(e, Phase::Login)),
        }
    }

    /// `rswarm login`'s proof that the credentials work: a token was given
    /// for them, or (basic auth) an authenticated `GET /v2/_catalog` is not
    /// refused. A registry without a catalog counts as accepting.
    pub(super) async fn verify_login(&self) -> Result<(), ImageError> {
        if self.bearer {
            return Ok(());
        }
        let refused = ImageError::LoginRefused {
            registry: self.host.clone(),
        };
        match self
            .client
            .catalog(&self.oci_ref("latest"), &self.auth, Some(1), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.error(e, Phase::Tags) {
                ImageError::Unauthorized { .. } | ImageError::AccessDenied { .. } => Err(refused),
                e @ ImageError::Unreachable { .. } => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// A manifest by tag or digest: (bytes, sha256 digest).
    pub(super) async fn manifest(&self, target: &str) -> Result<(Vec<u8>, String), ImageError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&self.oci_ref(target), &self.auth, ACCEPT)
            .await
            .map_err(|e| self.error(e, Phase::Manifest))?;
        // oci-client checked the body against the reference's digest and the
        // registry's header; the store keys by sha256 whatever the header's
        // algorithm.
        let digest = sha256_digest(&bytes);
        Ok((bytes.to_vec(), digest))
    }

    /// A small blob, fully read (and verified).
    async fn blob_bytes(&self, digest: &str, limit: usize) -> Result<Vec<u8>, ImageError> {
        let mut stream = self.blob_stream(digest).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| self.registry_error(format!("reading blob {digest}: {e}")))?;
            if out.len() + chunk.len() > limit {
                return Err(
                    self.registry_error(format!("blob {digest} is larger than {limit} bytes"))
                );
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// A blob as a stream; a digest mismatch shows as an error at its end.
    pub(super) async fn blob_stream(&self, digest: &str) -> Result<SizedStream, ImageError> {
        self.client
            .pull_blob_stream(&self.oci_ref(digest), digest)
            .await
            .map_err(|e| self.error(e, Phase::Blob))
    }

    /// Whether the repository exists, asked when a manifest is unknown:
    /// Distribution answers MANIFEST_UNKNOWN for a missing repository too,
    /// and Docker users expect "pull access denied" for that.
    pub(super) async fn repository_missing(&self) -> bool {
        match self
            .client
            .list_tags(&self.oci_ref("latest"), &self.auth, Some(1), None)
            .await
        {
            Ok(_) => false,
            Err(e) => matches!(self.error(e, Phase::Tags), ImageError::AccessDenied { .. }),
        }
    }

    /// Manifest (through the index if any), config, and the layer list.
    pub(super) async fn fetch(&self) -> Result<Fetched, ImageError> {
        let (bytes, digest) = match self.manifest(self.r.target()).await {
            Err(ImageError::NotFound { .. }) if self.repository_missing().await => {
                return Err(ImageError::AccessDenied {
                    repository: self.r.familiar_name(),
                })
            }
            other => other?,
        };
        let (index, manifest) = match manifest_kind(&bytes).map_err(|e| self.registry_error(e))? {
            ManifestKind::Image => (None, (bytes, digest)),
            ManifestKind::Index => {
                let idx: ImageIndex = serde_json::from_slice(&bytes)
                    .map_err(|e| self.registry_error(format!("invalid image index: {e}")))?;
                let chosen =
                    choose_platform(&idx).ok_or_else(|| ImageError::NoMatchingPlatform {
                        platform: format!("linux/{}", host_arch()),
                    })?;
                let m = self.manifest(chosen.digest().as_ref()).await?;
                if manifest_kind(&m.0).map_err(|e| self.registry_error(e))? != ManifestKind::Image {
                    return Err(self.registry_error("nested image index".to_string()));
                }
                (Some((bytes, digest)), m)
            }
        };
        let (m, layers_desc) =
            parse_image_manifest(&manifest.0).map_err(|e| self.registry_error(e))?;
        let config_digest = m.config().digest().to_string();
        let config_bytes = self.blob_bytes(&config_digest, MAX_CONFIG_BYTES).await?;
        let parsed = config::parse(&config_bytes).map_err(|e| self.registry_error(e))?;
        parsed
            .check_platform()
            .map_err(|e| self.registry_error(e))?;
        let layers = pair_layers(&layers_desc, &parsed).map_err(|e| self.registry_error(e))?;
        Ok(Fetched {
            index,
            manifest,
            config: (config_bytes, config_digest),
            parsed,
            layers,
        })
    }

    fn registry_error(&self, detail: String) -> ImageError {
        ImageError::Registry {
            reference: self.r.familiar(),
            detail: one_line(detail),
        }
    }

    fn denied(&self) -> ImageError {
        match &self.user {
            Some(user) if !self.bearer => ImageError::Unauthorized {
                reference: self.r.familiar(),
                registry: self.host.clone(),
                user: user.clone(),
            },
            _ => ImageError::AccessDenied {
                repository: self.r.familiar_name(),
            },
        }
    }

    fn not_found(&self) -> ImageError {
        ImageError::NotFound {
            reference: self.r.familiar(),
        }
    }

    fn error(&self, e: OciDistributionError, phase: Phase) -> ImageError {
        match e {
            OciDistributionError::UnauthorizedError { .. } => self.denied(),
            OciDistributionError::AuthenticationFailure(_) => match &self.user {
                Some(user) => ImageError::Unauthorized {
                    reference: self.r.familiar(),
                    registry: self.host.clone(),
                    user: user.clone(),
                },
                None => self.denied(),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let Some(first) = envelope.errors.first() else {
                    return self.registry_error("registry error without details".into());
                };
                match (&first.code, phase) {
                    (OciErrorCode::NameUnknown | OciErrorCode::Denied, _) => {
                        ImageError::AccessDenied {
                            repository: self.r.familiar_name(),
                        }
                    }
                    (OciErrorCode::Unauthorized, _) => self.denied(),
                    (OciErrorCode::ManifestUnknown | OciErrorCode::NotFound, Phase::Manifest) => {
                        self.not_found()
                    }
                    (code, _) => {
                        let code = serde_json::to_string(code).unwrap_or_default();
                        let code = code.trim_matches('"').replace('_', " ").to_lowercase();
                        self.registry_error(format!("{code}: {}", first.message))
                    }
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match (code, phase) {
                (401, _) => self.denied(),
                (403, _) => ImageError::AccessDenied {
                    repository: self.r.familiar_name(),
                },
                (404, Phase::Manifest) => self.not_found(),
                (404, Phase::Tags) => ImageError::AccessDenied {
                    repository: self.r.familiar_name(),
                },
                _ => self.registry_error(format!(
                    "received unexpected HTTP status: {code} {}",
                    message.chars().take(200).collect::<String>()
                )),
            },
            OciDistributionError::RequestError(re) => {
                let detail = error_chain(&re);
                if re.is_connect() || re.is_timeout() || phase == Phase::Login {
                    ImageError::Unreachable {
                        reference: self.r.familiar(),
                        registry: self.host.clone(),
                        detail,
                    }
                } else {
                    self.registry_error(detail)
                }
            }
            OciDistributionError::DigestError(d) => {
                self.registry_error(format!("content verification failed: {d}"))
            }
            other => self.registry_error(other.to_string()),
        }
    }
}

/// An error and its sources, on one line, without repeats.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    one_line(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestKind {
    Image,
    Index,
}

/// Whether a manifest document is an image manifest or an index.
pub(crate) fn manifest_kind(bytes: &[u8]) -> Result<ManifestKind, String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<i64>,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).map_err(|e| format!("invalid manifest: {e}"))?;
    if p.schema_version == Some(1) {
        return Err("unsupported manifest format: Docker image manifest schema 1 (deprecated); push the image again with a current client".into());
    }
    match p.media_type.as_deref() {
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE) | Some(IMAGE_MANIFEST_LIST_MEDIA_TYPE) => {
            Ok(ManifestKind::Index)
        }
        Some(OCI_IMAGE_MEDIA_TYPE) | Some(IMAGE_MANIFEST_MEDIA_TYPE) => Ok(ManifestKind::Image),
        Some(other) => Err(format!("unsupported manifest media type {other}")),
        None if p.manifests.is_some() => Ok(ManifestKind::Index),
        None if p.config.is_some() => Ok(ManifestKind::Image),
        None => Err("unrecognised manifest document".into()),
    }
}

/// Parses an image manifest and checks it describes a container image.
pub(crate) fn parse_image_manifest(
    bytes: &[u8],
) -> Result<(ImageManifest, Vec<(String, u64)>), String> {
    let m: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid image manifest: {e}"))?;
    let cmt = m.config().media_type().to_string();
    if cmt != OCI_CONFIG && cmt != DOCKER_CONFIG {
        return Err(format!(
            "unsupported config media type {cmt}: not a container image"
        ));
    }
    if super::sha256_hex(m.config().digest().as_ref()).is_none() {
        return Err(format!("unsupported config digest {}", m.config().digest()));
    }
    let mut layers = Vec::new();
    for l in m.layers() {
        let mt = l.media_type().to_string();
        if !(mt.starts_with("application/vnd.oci.image.layer.")
            || mt.starts_with("application/vnd.docker.image.rootfs."))
        {
            return Err(format!("unsupported layer media type {mt}"));
        }
        let d = l.digest().to_string();
        if super::sha256_hex(&d).is_none() {
            return Err(format!("unsupported layer digest {d}"));
        }
        layers.push((d, l.size()));
    }
    Ok((m, layers))
}

/// Layers from the manifest, each with its diff-id from the config.
pub(crate) fn pair_layers(
    layers: &[(String, u64)],
    parsed: &ParsedConfig,
) -> Result<Vec<LayerRef>, String> {
    if layers.len() != parsed.diff_ids.len() {
        return Err(format!(
            "manifest lists {} layers but the image config has {} diff-ids",
            layers.len(),
            parsed.diff_ids.len()
        ));
    }
    Ok(layers
        .iter()
        .zip(&parsed.diff_ids)
        .map(|((digest, _), diff_id)| LayerRef {
            digest: digest.clone(),
            diff_id: diff_id.clone(),
        })
        .collect())
}

/// The index entry for linux on this machine's architecture (a matching
/// variant preferred).
pub(crate) fn choose_platform(index: &ImageIndex) -> Option<Descriptor> {
    let arch = host_arch();
    let want_variant = match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    };
    let mut candidates = index.manifests().iter().filter(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == arch)
    });
    let first = candidates.next()?;
    let exact = std::iter::once(first).chain(candidates).find(|d| {
        let v = d.platform().as_ref().and_then(|p| p.variant().clone());
        v.is_none() || v.as_deref() == want_variant
    });
    Some(exact.unwrap_or(first).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_rules() {
        let reg = Registry::new(&RegistryConfig {
            mirrors: vec![
                "http://127.0.0.1:5001".into(),
                "https://mirror.example/path".into(),
            ],
            insecure_registries: vec![
                "10.77.0.0/16".into(),
                "reg.example:5000".into(),
                "http://other:1/".into(),
            ],
            auths: [(
                "https://index.docker.io/v1/".to_string(),
                ("u".to_string(), "p".to_string()),
            )]
            .into_iter()
            .collect(),
        })
        .unwrap();
        assert!(reg.is_insecure("10.77.0.2:5000"));
        assert!(reg.is_insecure("10.77.255.1"));
        assert!(!reg.is_insecure("10.78.0.2:5000"));
        assert!(reg.is_insecure("reg.example:5000"));
        assert!(!reg.is_insecure("reg.example:5001"));
        assert!(reg.is_insecure("other:1"));
        assert!(reg.is_insecure("127.0.0.1:5000"));
        assert!(reg.is_insecure("[::1]:5000"));
        assert!(!reg.is_insecure("localhost:5000"));
        assert!(!reg.is_insecure("docker.io"));
        assert!(reg.auths.contains_key("docker.io"));

        let hub = ImageRef::parse("busybox").unwrap();
        let eps = reg.endpoints(&hub);
        assert_eq!(eps.len(), 3);
        assert_eq!(
            (eps[0].host.as_str(), eps[0].transport),
            ("127.0.0.1:5001", Transport::Http)
        );
        assert_eq!(
            (eps[1].host.as_str(), eps[1].transport),
            ("mirror.example", Transport::Https)
        );
        assert_eq!(
            (eps[2].host.as_str(), eps[2].transport, eps[2].mirror),
            ("docker.io", Transport::Https, false)
        );
        let private = ImageRef::parse("10.77.0.2:5000/busybox:1").unwrap();
        let eps = reg.endpoints(&private);
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].transport, Transport::Insecure);
    }

    #[test]
    fn manifest_kinds() {
        assert_eq!(manifest_kind(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#), Ok(ManifestKind::Index));
        assert_eq!(
            manifest_kind(br#"{"schemaVersion":2,"manifests":[]}"#),
            Ok(ManifestKind::Index)
        );
        assert_eq!(manifest_kind(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#), Ok(ManifestKind::Image));
        assert!(manifest_kind(br#"{"schemaVersion":1,"fsLayers":[]}"#)
            .unwrap_err()
            .contains("schema 1"));
    }
}
