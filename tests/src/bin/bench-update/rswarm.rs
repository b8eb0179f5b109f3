//! bench-update's rswarm side: a one-node cluster of the `rswarm-tests` harness, the
//! image loaded with `rswarm image load`, the overlay network and the client task;
//! the store read through the daemon's Services API over its unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{GetServiceRequest, ListTasksRequest, UpdateServiceRequest};
use rswarm_proto::types::{update_status, Service, ServiceSpec, Task, TaskState};
use rswarm_tests::control;
use rswarm_tests::procfs::cpu_ticks_of;
use rswarm_tests::request_loop::Target;
use rswarm_tests::{Cluster, Host};
use tonic::transport::Channel;

use crate::{
    netns_of, run_cases, wait_until, Case, Invocation, Outcome, Side, CLIENT, CONVERGE_TIMEOUT,
    IMAGE_REF, NETWORK, PUBLISHED, REPLICAS, WEB, WEB_CMD,
};

/// One API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub fn phase(archive: &Path, cases: &[Case]) -> anyhow::Result<Vec<Option<Outcome>>> {
    let binary = control::bench_binary()?;
    println!("rswarm binary {}", binary.display());
    let cluster = Cluster::builder(1).binary(&binary).start()?;
    cluster.init_swarm(1, 0)?;
    let host = cluster.host(1);
    let help = host.rswarm(&["service", "update", "--help"]);
    let has_update_cli = help.success() && help.stdout.contains("--force");
    if !has_update_cli {
        println!(
            "this rswarm has no `service update --force` command: the update is forced \
             through the Services API (UpdateService with task.force_update + 1), no CLI time"
        );
    }
    host.try_ok(&["image", "load", "-i", &archive.display().to_string()])?;
    host.try_ok(&["network", "create", NETWORK])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let client = runtime.block_on(control::services_client(host.socket().to_path_buf()))?;
    let side = Rswarm {
        host,
        runtime,
        client,
        has_update_cli,
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
    has_update_cli: bool,
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

    /// UpdateService with `change` applied to the spec just read.
    fn update_spec(&self, change: impl FnOnce(&mut ServiceSpec)) -> anyhow::Result<()> {
        let service = self.service(WEB)?;
        let mut spec = service.spec.context("the service has no spec")?;
        change(&mut spec);
        let request = UpdateServiceRequest {
            service_ref: service.id,
            spec_version: service.meta.and_then(|m| m.spec_version),
            spec: Some(spec),
            rollback: false,
        };
        let mut client = self.client.clone();
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT, client.update_service(request)).await
        });
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => bail!("UpdateService: {}", status.message()),
            Err(_) => bail!("UpdateService: no answer within {REQUEST_TIMEOUT:?}"),
        }
    }

    /// The case's update settings, written through the API when the CLI does not
    /// take the `--update-*` flags yet (a change outside the task template: no task
    /// is replaced).
    fn set_update_config(
        &self,
        (parallelism, delay, monitor): (u64, Duration, Duration),
    ) -> anyhow::Result<()> {
        self.update_spec(|spec| {
            let update = spec.update.get_or_insert_with(Default::default);
            update.parallelism = parallelism;
            update.delay_ns = delay.as_nanos() as i64;
            update.monitor_ns = monitor.as_nanos() as i64;
        })
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
        if self.has_update_cli {
            args.extend_from_slice(case.update_flags);
        }
        args.extend_from_slice(case.task_flags);
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
        if !self.has_update_cli {
            if let Some(update) = case.update {
                self.set_update_config(update)?;
            }
        }
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

    fn update_command(&self) -> Option<Invocation> {
        if !self.has_update_cli {
            return None;
        }
        let argv = [
            self.host.binary().display().to_string(),
            "-H".into(),
            format!("unix://{}", self.host.socket().display()),
            "service".into(),
            "update".into(),
            "--force".into(),
            WEB.into(),
        ];
        Some(Invocation {
            argv: argv.to_vec(),
            env: Vec::new(),
        })
    }

    fn update_by_api(&self) -> anyhow::Result<()> {
        self.update_spec(|spec| spec.task.get_or_insert_with(Default::default).force_update += 1)
    }

    fn remove_web(&self) -> anyhow::Result<()> {
        let out = self.host.rswarm(&["service", "rm", WEB]);
        if !out.success() && !out.stderr.contains("no such service") {
            bail!("`rswarm service rm {WEB}` failed\n{out}");
        }
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

    fn whose(&self, ip: std::net::IpAddr, before: u64) -> Option<String> {
        let tasks = self.tasks(WEB).ok()?;
        let wanted = ip.to_string();
        let task = tasks.iter().find(|t| {
            t.networks.iter().any(|n| {
                n.addresses
                    .iter()
                    .any(|a| a.split('/').next() == Some(wanted.as_str()))
            })
        })?;
        let force = task.spec.as_ref().map_or(0, |s| s.force_update);
        let status = task.status.clone().unwrap_or_default();
        Some(format!(
            "{} task {} (slot {}): state {}, desired {}, {:?}",
            if force > before { "the new" } else { "the old" },
            task.id,
            task.slot,
            TaskState::try_from(status.state).map_or("?", |s| s.as_str_name()),
            TaskState::try_from(task.desired_state).map_or("?", |s| s.as_str_name()),
            status.message
        ))
    }

    fn log_tail(&self) -> String {
        format!(
            "--- {} daemon log (last 20 lines) ---\n{}",
            self.host.name(),
            self.host.daemon_log_tail(20)
        )
    }
}
