//! The benchmarks' way to the product: the `rswarm` binary beside the benchmark
//! ([`bench_binary`]) and a Services API client over a daemon's control socket
//! ([`services_client`]), for reading the store while the CLI works.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper_util::rt::TokioIo;
use rswarm_proto::control::services_client::ServicesClient;
use tonic::transport::{Channel, Endpoint};

/// `$RSWARM_BIN`, else the `rswarm` beside the running program (a benchmark binary:
/// same target dir and profile).
pub fn bench_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("RSWARM_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("RSWARM_BIN={} does not exist", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("finding this program's path")?;
    let beside = exe
        .parent()
        .map(|dir| dir.join("rswarm"))
        .context("this program has no directory")?;
    if !beside.is_file() {
        bail!(
            "no rswarm binary at {}: build it in the same profile first \
             (cargo build --release -p rswarm), or set RSWARM_BIN",
            beside.display()
        );
    }
    Ok(beside)
}

/// A Services API client over a daemon's unix socket.
pub async fn services_client(socket: PathBuf) -> anyhow::Result<ServicesClient<Channel>> {
    let shown = socket.display().to_string();
    let channel = Endpoint::try_from("http://localhost")?
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .with_context(|| format!("connecting to {shown}"))?;
    Ok(ServicesClient::new(channel))
}
