//! bench-update's Docker Swarm side: a `dockerd` of our own
//! ([`rswarm_tests::dockerd`]), a one-node swarm on 127.0.0.1, the image from
//! `docker load`, an overlay network and the client task; the store read through the
//! Engine API (`GET /services/web`, `GET /tasks`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use rswarm_tests::dockerd::{self, percent_encode, DockerEngine};
use rswarm_tests::procfs::cpu_ticks_of;
use rswarm_tests::request_loop::Target;
use serde_json::Value;

use crate::{
    netns_of, run_cases, wait_until, Case, Invocation, Outcome, Side, CLIENT, CONVERGE_TIMEOUT,
    IMAGE_REF, NETWORK, REPLICAS, WEB, WEB_CMD,
};

pub fn phase(archive: &Path, cases: &[Case]) -> anyhow::Result<Vec<Option<Outcome>>> {
    dockerd::ensure_installed()?;
    let engine = DockerEngine::start()?;
    println!(
        "dockerd running (pid {}), data under {}, in network namespace {} (lo only)",
        engine.pid(),
        engine.dir().display(),
        engine.netns()
    );
    let version = engine.cli_ok(&["version", "--format", "{{.Server.Version}}"])?;
    println!("Docker Engine {}", version.trim());
    engine.cli_ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"])?;
    engine.cli_ok(&["load", "-i", &archive.display().to_string()])?;
    engine.cli_ok(&["network", "create", "--driver", "overlay", NETWORK])?;
    engine.cli_ok(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        CLIENT,
        "--network",
        NETWORK,
        IMAGE_REF,
        "sleep",
        "3600",
    ])?;
    let side = Docker { engine };
    side.wait_running(CLIENT, 1)?;
    let outcomes = run_cases(&side, cases);
    let problems = side.engine.shutdown();
    if problems.is_empty() {
        println!("Docker stopped and cleaned up");
    } else {
        println!("Docker stopped; PROBLEMS: {}", problems.join("; "));
    }
    Ok(outcomes)
}

struct Docker {
    engine: DockerEngine,
}

impl Docker {
    fn tasks(&self, service: &str) -> anyhow::Result<Vec<Value>> {
        let filter = percent_encode(&format!(r#"{{"service":["{service}"]}}"#));
        let tasks = self.engine.api_get(&format!("/tasks?filters={filter}"))?;
        Ok(tasks.as_array().cloned().unwrap_or_default())
    }

    fn running(task: &Value) -> bool {
        task["Status"]["State"].as_str() == Some("running")
    }

    fn meant_to_run(task: &Value) -> bool {
        task["DesiredState"].as_str() == Some("running")
    }

    fn wait_running(&self, service: &str, want: usize) -> anyhow::Result<()> {
        wait_until(
            CONVERGE_TIMEOUT,
            &format!("{want} running tasks of {service}"),
            || {
                let tasks = self.tasks(service)?;
                let running = tasks
                    .iter()
                    .filter(|t| Self::meant_to_run(t) && Self::running(t))
                    .count();
                Ok((running == want).then_some(()))
            },
        )
    }

    /// Containers of `service` (running or not).
    fn containers(&self, service: &str) -> anyhow::Result<Vec<Value>> {
        let filter = percent_encode(&format!(
            r#"{{"label":["com.docker.swarm.service.name={service}"]}}"#
        ));
        let list = self
            .engine
            .api_get(&format!("/containers/json?all=1&filters={filter}"))?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }
}

/// An RFC 3339 time of the Engine API.
fn parse_time(value: &Value) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(value.as_str()?).ok()
}

impl Side for Docker {
    fn name(&self) -> &'static str {
        "Docker"
    }

    fn create_web(&self, case: &Case) -> anyhow::Result<()> {
        let replicas = REPLICAS.to_string();
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--replicas",
            &replicas,
        ];
        args.extend_from_slice(case.update_flags);
        args.extend_from_slice(case.task_flags);
        args.extend_from_slice(&[
            "--endpoint-mode",
            "dnsrr",
            "--network",
            NETWORK,
            "--name",
            WEB,
            IMAGE_REF,
            "sh",
            "-c",
            WEB_CMD,
        ]);
        self.engine.cli_ok(&args)?;
        self.wait_running(WEB, REPLICAS)
    }

    fn force_update(&self) -> anyhow::Result<u64> {
        let service = self.engine.api_get(&format!("/services/{WEB}"))?;
        Ok(service["Spec"]["TaskTemplate"]["ForceUpdate"]
            .as_u64()
            .unwrap_or(0))
    }

    fn progress(&self, before: u64) -> anyhow::Result<(usize, usize)> {
        let tasks = self.tasks(WEB)?;
        let force = |t: &Value| t["Spec"]["ForceUpdate"].as_u64().unwrap_or(0);
        let new = tasks
            .iter()
            .filter(|t| force(t) > before && Self::meant_to_run(t) && Self::running(t))
            .count();
        let old = tasks
            .iter()
            .filter(|t| force(t) <= before && Self::running(t))
            .count();
        Ok((new, old))
    }

    fn update_status(&self) -> anyhow::Result<(String, Option<Duration>)> {
        let service = self.engine.api_get(&format!("/services/{WEB}"))?;
        let status = &service["UpdateStatus"];
        if status.is_null() {
            return Ok(("(none)".into(), None));
        }
        let span = match (
            parse_time(&status["StartedAt"]),
            parse_time(&status["CompletedAt"]),
        ) {
            (Some(started), Some(completed)) => (completed - started).to_std().ok(),
            _ => None,
        };
        Ok((
            format!(
                "{} {:?}",
                status["State"].as_str().unwrap_or("?"),
                status["Message"].as_str().unwrap_or("")
            ),
            span,
        ))
    }

    fn update_command(&self) -> Option<Invocation> {
        let (argv, config) = self
            .engine
            .cli_command(&["service", "update", "--force", WEB]);
        Some(Invocation {
            argv,
            env: vec![("DOCKER_CONFIG".into(), config)],
        })
    }

    fn update_by_api(&self) -> anyhow::Result<()> {
        bail!("Docker's update goes through its CLI")
    }

    fn remove_web(&self) -> anyhow::Result<()> {
        let out = self
            .engine
            .cli(&["service", "rm", WEB], dockerd::CLI_TIMEOUT);
        if !out.success() && !out.stderr.contains("not found") {
            bail!("`docker service rm {WEB}` failed\n{out}");
        }
        wait_until(Duration::from_secs(120), "web's containers to go", || {
            Ok(self.containers(WEB)?.is_empty().then_some(()))
        })
    }

    fn cpu(&self) -> (u64, u64) {
        cpu_ticks_of(&self.engine.processes())
    }

    fn client_netns(&self) -> anyhow::Result<PathBuf> {
        let containers = self.containers(CLIENT)?;
        let id = containers
            .iter()
            .find(|c| c["State"].as_str() == Some("running"))
            .and_then(|c| c["Id"].as_str())
            .context("the client's container is not running")?;
        let inspect = self.engine.api_get(&format!("/containers/{id}/json"))?;
        let pid = inspect["State"]["Pid"].as_u64().unwrap_or(0);
        if pid == 0 {
            bail!("the client's container {id} has no process");
        }
        netns_of(pid as u32)
    }

    fn mesh(&self) -> Option<(PathBuf, Target)> {
        None
    }

    fn whose(&self, ip: std::net::IpAddr, before: u64) -> Option<String> {
        let tasks = self.tasks(WEB).ok()?;
        let wanted = ip.to_string();
        let task = tasks.iter().find(|t| {
            t["NetworksAttachments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|n| n["Addresses"].as_array().into_iter().flatten())
                .any(|a| a.as_str().and_then(|a| a.split('/').next()) == Some(wanted.as_str()))
        })?;
        let force = task["Spec"]["ForceUpdate"].as_u64().unwrap_or(0);
        Some(format!(
            "{} task {} (slot {}): state {}, desired {}, {:?}",
            if force > before { "the new" } else { "the old" },
            task["ID"].as_str().unwrap_or("?"),
            task["Slot"],
            task["Status"]["State"].as_str().unwrap_or("?"),
            task["DesiredState"].as_str().unwrap_or("?"),
            task["Status"]["Message"].as_str().unwrap_or("")
        ))
    }

    fn log_tail(&self) -> String {
        self.engine.log_tail(30)
    }
}
