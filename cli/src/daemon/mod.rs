//! `rswarm daemon`: the node process. It reads its config, takes its data
//! dir and control socket, resumes any swarm membership found on disk and
//! serves the local socket until SIGTERM/SIGINT, when it stops the manager and
//! agent cleanly (their containers keep running). It only composes: the
//! manager and the agent start themselves from settings values
//! (`rswarm_manager::start`, `rswarm_agent::start`), `node/` decides when.
//! The socket serves the node's own APIs (`Daemon`, `Images`, `Volumes`); the manager's
//! client APIs go to this node's manager through
//! `rswarm_manager::grpc::RoutedLayer`, the same services its TCP listener
//! serves.

mod config;
mod dashboard;
mod images;
mod keys;
mod localapi;
mod lock;
mod metrics;
mod netaddr;
mod node;
mod state;
mod volumes;

use std::path::PathBuf;

use anyhow::{bail, Context};
use rswarm_proto::daemon::daemon_server::DaemonServer;
use rswarm_proto::daemon::images_server::ImagesServer;
use rswarm_proto::daemon::volumes_server::VolumesServer;
use tokio::net::UnixListener;

/// How long, after SIGTERM, calls still open on the control socket may
/// finish before the daemon stops anyway (a following `events` or
/// `service logs -f` never finishes on its own).
const SOCKET_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

pub(crate) use config::DaemonConfig;
pub(crate) use keys::open_node_key_file;

/// Flags of `rswarm daemon`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DaemonArgs {
    /// Directory for all of this node's state
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path of the control socket
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Name of this node (default: the machine's hostname)
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Address for Prometheus metrics (host:port) [default: 127.0.0.1:9323]
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Address of the web dashboard on managers (host:port) [default: 127.0.0.1:9324]
    #[arg(long, value_name = "ADDR")]
    pub dashboard_addr: Option<String>,
    /// Daemon configuration file (JSON)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub(crate) const DEFAULT_DATA_DIR: &str = "/var/lib/rswarm";
pub(crate) const DEFAULT_SOCKET: &str = "/run/rswarm/rswarm.sock";
/// Metrics listen on the node's loopback unless configured otherwise.
pub(crate) const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9323";
/// The dashboard listens on the node's loopback unless configured otherwise.
pub(crate) const DEFAULT_DASHBOARD_ADDR: &str = "127.0.0.1:9324";

pub(crate) fn run(args: DaemonArgs) -> anyhow::Result<()> {
    let cfg = match &args.config {
        Some(p) => DaemonConfig::load(p)?,
        None => {
            let default = PathBuf::from("/etc/rswarm/daemon.json");
            if default.exists() {
                DaemonConfig::load(&default)?
            } else {
                DaemonConfig::default()
            }
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| {
        format!(
            "{},h2=warn,hyper=warn,tower=warn,openraft=warn,sled=warn,hickory_server=warn",
            cfg.log_filter()
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Everything the daemon creates is root's alone unless it says otherwise
    // (container roots, /etc files and volumes set their modes explicitly).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    rswarm_proto::identity::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, cfg))
}

async fn serve(args: DaemonArgs, cfg: DaemonConfig) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .or(cfg.data_root.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let socket = args
        .socket
        .or(cfg.socket.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let node_name = match args.node_name.or(cfg.node_name.clone()) {
        Some(n) => n,
        None => nix::unistd::gethostname()
            .context("reading the hostname (set --node-name)")?
            .to_string_lossy()
            .into_owned(),
    };
    state::secure_data_dir(&data_dir)?;
    // Held until this function returns: one daemon per data dir.
    let lock = lock::lock_data_dir(&data_dir)?;
    tracing::debug!(pid_file = %lock.path.display(), "holding the data dir's lock");
    let listener = bind_socket(&socket).await?;
    let registry = rswarm_agent::image::RegistryConfig {
        mirrors: cfg.registry_mirrors.clone(),
        insecure_registries: cfg.insecure_registries.clone(),
        auths: cfg
            .registry_auths
            .iter()
            .map(|(host, a)| (host.clone(), (a.username.clone(), a.password.clone())))
            .collect(),
    };
    // A locked manager (autolock) starts without its DEK and waits for
    // `swarm unlock`.
    let dek = if keys::is_locked(&data_dir) {
        None
    } else {
        Some(keys::load_or_create_dek(&data_dir)?)
    };
    let images = rswarm_agent::image::ImageStore::open(&data_dir.join("images"), registry)
        .with_context(|| {
            format!(
                "opening the image store in {}",
                data_dir.join("images").display()
            )
        })?;
    let runtime = rswarm_agent::runtime::Runtime::new(&data_dir, cfg.runtime_path()?)
        .with_context(|| format!("starting the container runtime in {}", data_dir.display()))?;
    let images_in_use =
        std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let volumes_dir = data_dir.join("volumes");
    let volumes = rswarm_agent::volumes::VolumeStore::open(&volumes_dir)
        .with_context(|| format!("opening the volume store in {}", volumes_dir.display()))?;
    let (metrics_registry, metrics) = metrics::build();
    let settings = node::NodeSettings {
        data: state::DataDir::new(data_dir.clone()),
        node_name: node_name.clone(),
        engine_labels: cfg.engine_labels()?,
        agent: rswarm_agent::AgentSettings::new(
            data_dir.clone(),
            node_name.clone(),
            images.clone(),
            runtime.clone(),
            images_in_use.clone(),
            volumes.clone(),
        )
        .with_metrics(metrics.agent.clone(), metrics.overlay.clone()),
        dek,
        metrics: metrics.clone(),
    };
    let container_runtime = runtime;
    let runtime = node::NodeRuntime::new(settings);
    tracing::info!(version = rswarm_proto::VERSION, node = %node_name, data_dir = %data_dir.display(), socket = %socket.display(), "rswarm daemon starting");
    if let Err(e) = runtime.resume().await {
        tracing::error!(error = %format!("{e:#}"), "could not resume swarm membership; `rswarm info` shows the error");
    }
    match args.metrics_addr.or(cfg.metrics_addr.clone()) {
        Some(addr) => {
            metrics::serve(&addr, metrics_registry, metrics.node, runtime.clone()).await?;
            tracing::info!(addr = %addr, "serving Prometheus metrics on /metrics");
        }
        None => match metrics::serve(
            DEFAULT_METRICS_ADDR,
            metrics_registry,
            metrics.node,
            runtime.clone(),
        )
        .await
        {
            Ok(()) => tracing::info!(
                addr = DEFAULT_METRICS_ADDR,
                "serving Prometheus metrics on /metrics"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "metrics are off (set --metrics-addr)")
            }
        },
    }
    let dashboard_addr = args.dashboard_addr.or(cfg.dashboard_addr.clone());
    dashboard::serve(dashboard_addr, runtime.clone()).await?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let route = std::sync::Arc::new(localapi::NodeRoute {
        node: runtime.clone(),
    });
    let server = tonic::transport::Server::builder()
        .layer(rswarm_manager::grpc::RoutedLayer::new(route))
        .add_service(DaemonServer::new(localapi::LocalDaemon {
            node: runtime.clone(),
        }))
        .add_service(ImagesServer::new(images::LocalImages {
            store: images,
            in_use: images_in_use,
        }))
        .add_service(VolumesServer::new(volumes::LocalVolumes {
            store: volumes,
            runtime: container_runtime,
        }))
        .serve_with_incoming_shutdown(incoming, async {
            shutdown_signal().await;
            let _ = stopping_tx.send(());
        });
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => served.context("serving the control socket")?,
        _ = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(SOCKET_DRAIN).await;
        } => tracing::info!("calls still open on the control socket are cut"),
    }
    tracing::info!("shutting down");
    runtime.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Bind the control socket; a stale socket file left by a crashed daemon is
/// replaced, a live one is an error.
async fn bind_socket(path: &PathBuf) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            // A socket directory of our making stays traversable (0755), as
            // it was before the daemon's umask 077; the socket itself is 0660.
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                })
                .with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!(
                "another rswarm daemon is already listening on {}",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting permissions on {}", path.display()))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
