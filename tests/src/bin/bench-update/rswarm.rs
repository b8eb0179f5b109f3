//! bench-update's rswarm side: a one-node cluster of the `rswarm-tests` harness, the
//! image loaded with `rswarm image load`, the overlay network and the client task;
//! the store read through the daemon's Services API over its unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use hyper_util::rt::TokioIo;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{GetServiceRequest, ListTasksRequest};
use rswarm_proto::types::{update_status, Service, Task, TaskState};
use rswarm_tests::procfs::cpu_ticks_of;
use rswarm_tests::request_loop::Target;
use rswarm_tests::{Cluster, Host};
use tonic::transport::{Channel, Endpoint};

use crate::{
    netns_of, run_cases, wait_until, Case, Outcome, Side, CLIENT, CONVERGE_TIMEOUT, IMAGE_REF,
    NETWORK, PUBLISHED, REPLICAS, WEB, WEB_CMD,
};

/// One API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub fn phase(archive: &Path, cases: &[Case]) -> anyhow::Result<Vec<Option<Outcome>>> {
    let binary = product_binary()?;
    println!("rswarm binary {}", binary.display());
    let cluster = Cluster::builder(1).binary(&binary).start()?;
    cluster.init_swarm(1, 0)?;
    let host = cluster.host(1);
    let help = host.rswarm(&["service", "update", "--help"]);
    if !help.success() || !help.stdout.contains("--force") {
        bail!(
            "this rswarm has no `service update --force` (`rswarm service update --help`: {})",
            help.stderr.trim()
        );
    }
    host.try_ok(&["image", "load", "-i", &archive.display().to_string()])?;
    host.try_ok(&["network", "create", NETWORK])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let client = runtime.block_on(connect(host.socket().to_path_buf()))?;
    let side = Rswarm {
        host,
        runtime,
        client,
    };
    host.try_ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        CLIENT,
        "--network",
        NETWORK,
        IMAGE_REF,
        "sleep",
        "3600",
    ])?;
    side.wait_running(CLIENT, 1)?;
    Ok(run_cases(&side, cases))
}

struct Rswarm<'a> {
    host: &'a Host,
    runtime: tokio::runtime::Runtime,
    client: ServicesClient<Channel>,
}

impl Rswarm<'_> {
    fn tasks(&self, service: &str) -> anyhow::Result<Vec<Task>> {
        let request = ListTasksRequest {
            service_refs: vec![service.to_string()],
            ..Default::default()
        };
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(
                REQUEST_TIMEOUT,
                rswarm_proto::paging::all_tasks(&self.client, request),
            )
            .await
        });
        match answer {
            Ok(Ok(tasks)) => Ok(tasks),
            Ok(Err(status)) => bail!("ListTasks: {}", status.message()),
            Err(_) => bail!("ListTasks: no answer within {REQUEST_TIMEOUT:?}"),
        }
    }

    fn service(&self, service: &str) -> anyhow::Result<Service> {
        let mut client = self.client.clone();
        let request = GetServiceRequest {
            service_ref: service.to_string(),
        };
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT, client.get_service(request)).await
        });
        match answer {
            Ok(Ok(service)) => Ok(service.into_inner()),
            Ok(Err(status)) => bail!("GetService: {}", status.message()),
            Err(_) => bail!("GetService: no answer within {REQUEST_TIMEOUT:?}"),
        }
    }

    fn running(task: &Task) -> bool {
        task.status.as_ref().map(|s| s.state) == Some(TaskState::Running as i32)
    }

    fn wait_running(&self, service: &str, want: usize) -> anyhow::Result<()> {
        wait_until(
            CONVERGE_TIMEOUT,
            &format!("{want} running tasks of {service}"),
            || {
                let tasks = self.tasks(service)?;
                let running = tasks
                    .iter()
                    .filter(|t| t.desired_state == TaskState::Running as i32 && Self::running(t))
                    .count();
                Ok((running == want).then_some(()))
            },
        )
    }
}

impl Side for Rswarm<'_> {
    fn name(&self) -> &'static str {
        "rswarm"
    }

    fn create_web(&self, case: &Case) -> anyhow::Result<()> {
        let replicas = REPLICAS.to_string();
        let published = format!("{PUBLISHED}:80");
        let mut args = vec!["service", "create", "--detach", "--replicas", &replicas];
        args.extend_from_slice(case.flags);
        args.extend_from_slice(&[
            "--network",
            NETWORK,
            "-p",
            &published,
            "--name",
            WEB,
            IMAGE_REF,
            "sh",
            "-c",
            WEB_CMD,
        ]);
        self.host.try_ok(&args)?;
        self.wait_running(WEB, REPLICAS)
    }

    fn force_update(&self) -> anyhow::Result<u64> {
        let service = self.service(WEB)?;
        Ok(service
            .spec
            .and_then(|s| s.task)
            .map_or(0, |t| t.force_update))
    }

    fn progress(&self, before: u64) -> anyhow::Result<(usize, usize)> {
        let tasks = self.tasks(WEB)?;
        let force = |t: &Task| t.spec.as_ref().map_or(0, |s| s.force_update);
        let new = tasks
            .iter()
            .filter(|t| {
                force(t) > before
                    && t.desired_state == TaskState::Running as i32
                    && Self::running(t)
            })
            .count();
        let old = tasks
            .iter()
            .filter(|t| force(t) <= before && Self::running(t))
            .count();
        Ok((new, old))
    }

    fn update_status(&self) -> anyhow::Result<(String, Option<Duration>)> {
        let service = self.service(WEB)?;
        let Some(status) = service.update_status else {
            return Ok(("(none)".into(), None));
        };
        let state = update_status::State::try_from(status.state).map_or_else(
            |_| status.state.to_string(),
            |s| s.as_str_name().to_lowercase(),
        );
        let span = (status.completed_at > status.started_at && status.started_at > 0)
            .then(|| Duration::from_nanos((status.completed_at - status.started_at) as u64));
        Ok((format!("{state} {:?}", status.message), span))
    }

    fn update_command(&self) -> (Vec<String>, Vec<(String, String)>) {
        let argv = [
            self.host.binary().display().to_string(),
            "-H".into(),
            format!("unix://{}", self.host.socket().display()),
            "service".into(),
            "update".into(),
            "--force".into(),
            WEB.into(),
        ];
        (argv.to_vec(), Vec::new())
    }

    fn remove_web(&self) -> anyhow::Result<()> {
        self.host.try_ok(&["service", "rm", WEB])?;
        // The client's container is the one left.
        wait_until(Duration::from_secs(120), "web's containers to go", || {
            let left = rswarm_tests::containers::try_list(&self.host.runc_root())?;
            Ok((left.len() <= 1).then_some(()))
        })
    }

    fn cpu(&self) -> (u64, u64) {
        cpu_ticks_of(&self.host.pid().into_iter().collect::<Vec<_>>())
    }

    fn client_netns(&self) -> anyhow::Result<PathBuf> {
        let tasks = self.tasks(CLIENT)?;
        let task = tasks
            .iter()
            .find(|t| Self::running(t))
            .context("the client task is not running")?;
        let containers = rswarm_tests::containers::try_list(&self.host.runc_root())?;
        let container = containers
            .iter()
            .find(|c| c.id.contains(&task.id) || c.bundle.contains(&task.id))
            .with_context(|| format!("no runc container for the client task {}", task.id))?;
        netns_of(container.pid)
    }

    fn mesh(&self) -> Option<(PathBuf, Target)> {
        let addr = format!("{}:{PUBLISHED}", self.host.addr()).parse().ok()?;
        Some((
            PathBuf::from(format!("/var/run/netns/{}", self.host.netns())),
            Target::Addr(addr),
        ))
    }

    fn log_tail(&self) -> String {
        format!(
            "--- {} daemon log (last 30 lines) ---\n{}",
            self.host.name(),
            self.host.daemon_log_tail(30)
        )
    }
}

/// `$RSWARM_BIN`, else the `rswarm` beside this program (same target dir and profile).
fn product_binary() -> anyhow::Result<PathBuf> {
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
async fn connect(socket: PathBuf) -> anyhow::Result<ServicesClient<Channel>> {
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
