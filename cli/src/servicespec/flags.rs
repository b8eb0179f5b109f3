//! The `service create` flags, named, spelled and defaulted as Docker's:
//! what was typed. [`ServiceFlags::edits`] turns them into `edits::SpecEdit`s
//! (what it means), and `to_spec` applies those to the defaults. Values are
//! taken as text and parsed here (not by clap) so that every refusal is one line in Docker's
//! words (`invalid argument "64X" for "--limit-memory" flag: invalid size:
//! '64X'`) and the whole spec is refused before anything is sent.

use std::path::PathBuf;

use clap::Args;
use rswarm_proto::spec::capabilities::normalize_capability;
use rswarm_proto::spec::constraints::{parse_preference, Constraint};
use rswarm_proto::spec::dns::{
    parse_dns_option, parse_dns_search, parse_dns_server, parse_extra_host,
};
use rswarm_proto::spec::logging::{parse_log_opt, DEFAULT_DRIVER as DEFAULT_LOG_DRIVER};
use rswarm_proto::spec::mounts::{parse_mount, resolve_bind_source};
use rswarm_proto::spec::ports::parse_publish;
use rswarm_proto::spec::secrets::{parse_reference, Kind};
use rswarm_proto::spec::units::{
    parse_duration_ns, parse_float, parse_int, parse_memory_bytes, parse_nano_cpus, parse_uint,
};
use rswarm_proto::spec::{csv_fields, ValueError};
use rswarm_proto::types::{
    ConfigReference, HealthConfig, NetworkAttachmentConfig, SecretReference, ServiceSpec,
};

use super::container::{
    check_signal, parse_env, parse_env_file, parse_label, parse_sysctl, parse_ulimit, split_words,
};
use super::edits::{apply, defaults, SpecEdit, UpdateField};
use super::policy::{
    check_failure_ratio, parse_endpoint_mode, parse_failure_action, parse_restart_condition,
    parse_update_order, service_mode, ModeKind,
};
use super::SpecError;

/// Everything `service create` takes besides IMAGE, COMMAND and ARGs.
#[derive(Args, Debug, Clone, Default)]
pub struct ServiceFlags {
    /// Service name
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Service mode ("replicated", "global", "replicated-job", "global-job")
    #[arg(long, value_name = "string", default_value = "replicated")]
    pub mode: String,
    /// Number of tasks
    #[arg(long, value_name = "uint", allow_hyphen_values = true)]
    pub replicas: Option<String>,
    /// Number of job tasks to run concurrently (default equal to --replicas)
    #[arg(long = "max-concurrent", value_name = "uint")]
    pub max_concurrent: Option<String>,
    /// Publish a port as a node port
    #[arg(short = 'p', long, value_name = "port")]
    pub publish: Vec<String>,
    /// Endpoint mode (vip or dnsrr)
    #[arg(long = "endpoint-mode", value_name = "string", default_value = "vip")]
    pub endpoint_mode: String,
    /// Network attachments
    #[arg(long, value_name = "network")]
    pub network: Vec<String>,
    /// Placement constraints
    #[arg(long, value_name = "list")]
    pub constraint: Vec<String>,
    /// Add a placement preference
    #[arg(long = "placement-pref", value_name = "pref")]
    pub placement_pref: Vec<String>,
    /// Maximum number of tasks per node (default 0 = unlimited)
    #[arg(long = "replicas-max-per-node", value_name = "uint")]
    pub replicas_max_per_node: Option<String>,
    /// Limit CPUs
    #[arg(long = "limit-cpu", value_name = "decimal")]
    pub limit_cpu: Option<String>,
    /// Limit Memory
    #[arg(long = "limit-memory", value_name = "bytes")]
    pub limit_memory: Option<String>,
    /// Limit maximum number of processes (default 0 = unlimited)
    #[arg(long = "limit-pids", value_name = "int")]
    pub limit_pids: Option<String>,
    /// Reserve CPUs
    #[arg(long = "reserve-cpu", value_name = "decimal")]
    pub reserve_cpu: Option<String>,
    /// Reserve Memory
    #[arg(long = "reserve-memory", value_name = "bytes")]
    pub reserve_memory: Option<String>,
    /// Restart when condition is met ("none", "on-failure", "any") (default "any")
    #[arg(long = "restart-condition", value_name = "string")]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h) (default 5s)
    #[arg(long = "restart-delay", value_name = "duration")]
    pub restart_delay: Option<String>,
    /// Maximum number of restarts before giving up
    #[arg(long = "restart-max-attempts", value_name = "uint")]
    pub restart_max_attempts: Option<String>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h)
    #[arg(long = "restart-window", value_name = "duration")]
    pub restart_window: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long, value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Service labels
    #[arg(short = 'l', long, value_name = "list")]
    pub label: Vec<String>,
    /// Container labels
    #[arg(long = "container-label", value_name = "list")]
    pub container_label: Vec<String>,
    /// Attach a filesystem mount to the service
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Specify secrets to expose to the service
    #[arg(long, value_name = "secret")]
    pub secret: Vec<String>,
    /// Specify configurations to expose to the service
    #[arg(long, value_name = "config")]
    pub config: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Set one or more supplementary user groups for the container
    #[arg(long, value_name = "list")]
    pub group: Vec<String>,
    /// Container hostname
    #[arg(long, value_name = "string")]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "command")]
    pub entrypoint: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h) (default 10s)
    #[arg(long = "stop-grace-period", value_name = "duration")]
    pub stop_grace_period: Option<String>,
    /// Use an init inside each service container to forward signals and reap processes
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval", value_name = "duration")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "int")]
    pub health_retries: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout", value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)
    #[arg(long = "health-start-period", value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long = "health-start-interval", value_name = "duration")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set one or more custom host-to-IP mappings (host:ip)
    #[arg(long = "host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Sysctl options
    #[arg(long, value_name = "list")]
    pub sysctl: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Maximum number of tasks updated simultaneously (0 to update all at once) (default 1)
    #[arg(long = "update-parallelism", value_name = "uint")]
    pub update_parallelism: Option<String>,
    /// Delay between updates (ns|us|ms|s|m|h) (default 0s)
    #[arg(long = "update-delay", value_name = "duration")]
    pub update_delay: Option<String>,
    /// Action on update failure ("pause", "continue", "rollback") (default "pause")
    #[arg(long = "update-failure-action", value_name = "string")]
    pub update_failure_action: Option<String>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h) (default 5s)
    #[arg(long = "update-monitor", value_name = "duration")]
    pub update_monitor: Option<String>,
    /// Failure rate to tolerate during an update (default 0)
    #[arg(long = "update-max-failure-ratio", value_name = "float")]
    pub update_max_failure_ratio: Option<String>,
    /// Update order ("start-first", "stop-first") (default "stop-first")
    #[arg(long = "update-order", value_name = "string")]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once) (default 1)
    #[arg(long = "rollback-parallelism", value_name = "uint")]
    pub rollback_parallelism: Option<String>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h) (default 0s)
    #[arg(long = "rollback-delay", value_name = "duration")]
    pub rollback_delay: Option<String>,
    /// Action on rollback failure ("pause", "continue") (default "pause")
    #[arg(long = "rollback-failure-action", value_name = "string")]
    pub rollback_failure_action: Option<String>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h) (default 5s)
    #[arg(long = "rollback-monitor", value_name = "duration")]
    pub rollback_monitor: Option<String>,
    /// Failure rate to tolerate during a rollback (default 0)
    #[arg(long = "rollback-max-failure-ratio", value_name = "float")]
    pub rollback_max_failure_ratio: Option<String>,
    /// Rollback order ("start-first", "stop-first") (default "stop-first")
    #[arg(long = "rollback-order", value_name = "string")]
    pub rollback_order: Option<String>,
    /// Logging driver for service ("json-file", "local", "none")
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Logging driver options (max-size, max-file)
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
}

/// Where the flags' local inputs come from: the environment (bare `-e KEY`),
/// files (`--env-file`) and the directory relative bind sources start from.
pub struct LocalInputs<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub read_file: &'a dyn Fn(&str) -> Result<String, String>,
    pub cwd: PathBuf,
}

impl LocalInputs<'_> {
    /// This process's environment, files and working directory.
    pub fn process() -> LocalInputs<'static> {
        LocalInputs {
            env: &process_env,
            read_file: &read_local_file,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }
}

fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Reads a local file, failing with Go's `open PATH: reason` line.
pub fn read_local_file(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("open {path}: {reason}")
    })
}

/// Parses an optional flag value with `parse`, naming the flag on failure.
fn opt<T>(
    flag: &str,
    value: &Option<String>,
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Option<T>, SpecError> {
    value
        .as_deref()
        .map(|v| parse(v).map_err(|e| SpecError::flag(flag, v, e)))
        .transpose()
}

/// Parses every value of a repeated flag with `parse`.
fn each<T>(
    flag: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Vec<T>, SpecError> {
    values
        .iter()
        .map(|v| parse(v).map_err(|e| SpecError::flag(flag, v, e)))
        .collect()
}

fn ratio(value: &str) -> Result<f32, ValueError> {
    let r = parse_float(value)? as f32;
    check_failure_ratio(r)?;
    Ok(r)
}

/// One `--network` value: a name, or `name=…,alias=…` (Docker's long form).
pub fn parse_network(value: &str) -> Result<NetworkAttachmentConfig, ValueError> {
    if !value.contains('=') {
        if value.is_empty() {
            return Err(ValueError::new("network name/id is not specified"));
        }
        return Ok(NetworkAttachmentConfig {
            target: value.to_string(),
            aliases: vec![],
        });
    }
    let mut attachment = NetworkAttachmentConfig::default();
    for field in csv_fields(value)? {
        let (key, val) = field
            .split_once('=')
            .ok_or_else(|| ValueError(format!("invalid field {field}")))?;
        match key.to_ascii_lowercase().as_str() {
            "name" => attachment.target = val.to_string(),
            "alias" => attachment.aliases.push(val.to_string()),
            "driver-opt" => {
                return Err(ValueError::new(
                    "network driver options are not supported by rswarm",
                ))
            }
            other => return Err(ValueError(format!("invalid field key {other}"))),
        }
    }
    if attachment.target.is_empty() {
        return Err(ValueError::new("network name/id is not specified"));
    }
    Ok(attachment)
}

impl ServiceFlags {
    /// The spec for `service create [flags] IMAGE [COMMAND] [ARG...]`, from
    /// this process's environment and files, validated.
    pub fn to_spec(&self, image: &str, args: &[String]) -> Result<ServiceSpec, SpecError> {
        self.to_spec_with(image, args, &LocalInputs::process())
    }

    /// [`ServiceFlags::to_spec`] with the local inputs given: the flags'
    /// edits applied to the defaults of their mode, then validated.
    pub fn to_spec_with(
        &self,
        image: &str,
        args: &[String],
        local: &LocalInputs<'_>,
    ) -> Result<ServiceSpec, SpecError> {
        let kind =
            ModeKind::parse(&self.mode).map_err(|e| SpecError::flag("--mode", &self.mode, e))?;
        let mut spec = defaults(kind);
        let mut edits = vec![
            SpecEdit::Image(image.to_string()),
            SpecEdit::Args(args.to_vec()),
        ];
        edits.extend(self.edits(kind, local)?);
        apply(&mut spec, edits);
        rswarm_proto::spec::validate(&spec).map_err(|p| SpecError::Invalid(p.to_string()))?;
        Ok(spec)
    }

    /// What the flags mean, as edits: every value parsed, the first that
    /// does not parse refused naming its flag.
    pub fn edits(
        &self,
        kind: ModeKind,
        local: &LocalInputs<'_>,
    ) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
        if let Some(name) = &self.name {
            edits.push(SpecEdit::Name(name.clone()));
        }
        let replicas = opt("--replicas", &self.replicas, parse_uint)?;
        let max_concurrent = opt("--max-concurrent", &self.max_concurrent, parse_uint)?;
        let max_per_node = opt(
            "--replicas-max-per-node",
            &self.replicas_max_per_node,
            parse_uint,
        )?
        .unwrap_or(0);
        edits.push(SpecEdit::Mode(service_mode(
            kind,
            replicas,
            max_concurrent,
            max_per_node,
        )?));
        edits.push(SpecEdit::MaxReplicasPerNode(max_per_node));

        for p in each("-p, --publish", &self.publish, parse_publish)? {
            edits.extend(p.into_iter().map(SpecEdit::Publish));
        }
        edits.push(SpecEdit::EndpointMode(
            parse_endpoint_mode(&self.endpoint_mode)
                .map_err(|e| SpecError::flag("--endpoint-mode", &self.endpoint_mode, e))?,
        ));
        edits.extend(each("--constraint", &self.constraint, |c| {
            Constraint::parse(c).map(|_| SpecEdit::Constraint(c.trim().to_string()))
        })?);
        edits.extend(
            each("--placement-pref", &self.placement_pref, parse_preference)?
                .into_iter()
                .map(SpecEdit::Preference),
        );

        let resources = [
            (
                opt("--limit-cpu", &self.limit_cpu, parse_nano_cpus)?,
                SpecEdit::LimitNanoCpus as fn(i64) -> SpecEdit,
            ),
            (
                opt("--limit-memory", &self.limit_memory, parse_memory_bytes)?,
                SpecEdit::LimitMemoryBytes,
            ),
            (
                opt("--limit-pids", &self.limit_pids, parse_int)?,
                SpecEdit::LimitPids,
            ),
            (
                opt("--reserve-cpu", &self.reserve_cpu, parse_nano_cpus)?,
                SpecEdit::ReserveNanoCpus,
            ),
            (
                opt("--reserve-memory", &self.reserve_memory, parse_memory_bytes)?,
                SpecEdit::ReserveMemoryBytes,
            ),
        ];
        edits.extend(resources.into_iter().filter_map(|(v, edit)| v.map(edit)));
        if let Some(c) = opt(
            "--restart-condition",
            &self.restart_condition,
            parse_restart_condition,
        )? {
            edits.push(SpecEdit::RestartCondition(c));
        }
        if let Some(d) = opt("--restart-delay", &self.restart_delay, parse_duration_ns)? {
            edits.push(SpecEdit::RestartDelayNs(d));
        }
        if let Some(n) = opt(
            "--restart-max-attempts",
            &self.restart_max_attempts,
            parse_uint,
        )? {
            edits.push(SpecEdit::RestartMaxAttempts(n));
        }
        if let Some(w) = opt("--restart-window", &self.restart_window, parse_duration_ns)? {
            edits.push(SpecEdit::RestartWindowNs(w));
        }

        for path in &self.env_file {
            let content = (local.read_file)(path).map_err(SpecError::Invalid)?;
            edits.push(SpecEdit::Env(
                parse_env_file(&content, local.env)
                    .map_err(|e| SpecError::flag("--env-file", path, e))?,
            ));
        }
        edits.push(SpecEdit::Env(each("-e, --env", &self.env, |v| {
            parse_env(v, local.env)
        })?));
        for (k, v) in each("-l, --label", &self.label, parse_label)? {
            edits.push(SpecEdit::Label(k, v));
        }
        for (k, v) in each("--container-label", &self.container_label, parse_label)? {
            edits.push(SpecEdit::ContainerLabel(k, v));
        }
        for mut m in each("--mount", &self.mount, parse_mount)? {
            resolve_bind_source(&mut m, &local.cwd);
            edits.push(SpecEdit::Mount(m));
        }
        edits.extend(self.file_edits()?);
        edits.extend(self.container_edits()?);
        edits.extend(
            each("--network", &self.network, parse_network)?
                .into_iter()
                .map(SpecEdit::Network),
        );
        edits.extend(self.update_edits(false)?);
        edits.extend(self.update_edits(true)?);
        edits.extend(self.log_edits()?);
        Ok(edits)
    }

    /// `--secret` and `--config`, by name (the control API resolves them).
    fn file_edits(&self) -> Result<Vec<SpecEdit>, SpecError> {
        let secrets = each("--secret", &self.secret, |v| {
            parse_reference(Kind::Secret, v)
        })?;
        let configs = each("--config", &self.config, |v| {
            parse_reference(Kind::Config, v)
        })?;
        let secrets = secrets.into_iter().map(|(name, file)| {
            SpecEdit::Secret(SecretReference {
                secret_id: String::new(),
                secret_name: name,
                file: Some(file),
            })
        });
        let configs = configs.into_iter().map(|(name, file)| {
            SpecEdit::Config(ConfigReference {
                config_id: String::new(),
                config_name: name,
                file: Some(file),
            })
        });
        Ok(secrets.chain(configs).collect())
    }

    /// `--log-driver` and `--log-opt`: the task's log driver. Options
    /// without a driver are json-file's (the default driver), not dropped as
    /// Docker drops them; driver and options are checked together by
    /// `validate()` (`rswarm_proto::spec::logging`).
    fn log_edits(&self) -> Result<Option<SpecEdit>, SpecError> {
        if self.log_driver.is_none() && self.log_opt.is_empty() {
            return Ok(None);
        }
        let options = each("--log-opt", &self.log_opt, parse_log_opt)?;
        let name = self
            .log_driver
            .clone()
            .unwrap_or_else(|| DEFAULT_LOG_DRIVER.to_string());
        Ok(Some(SpecEdit::LogDriver { name, options }))
    }

    /// The container's settings besides env, labels and mounts.
    fn container_edits(&self) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
        if let Some(words) = opt("--entrypoint", &self.entrypoint, split_words)? {
            edits.push(SpecEdit::Command(words));
        }
        if let Some(s) = &self.stop_signal {
            check_signal(s).map_err(|e| SpecError::flag("--stop-signal", s, e))?;
            edits.push(SpecEdit::StopSignal(s.clone()));
        }
        if let Some(n) = opt(
            "--stop-grace-period",
            &self.stop_grace_period,
            parse_duration_ns,
        )? {
            edits.push(SpecEdit::StopGracePeriodNs(n));
        }
        let texts = [
            (&self.hostname, SpecEdit::Hostname as fn(String) -> SpecEdit),
            (&self.workdir, SpecEdit::Workdir),
            (&self.user, SpecEdit::User),
        ];
        edits.extend(
            texts
                .into_iter()
                .filter_map(|(v, edit)| v.clone().map(edit)),
        );
        if !self.group.is_empty() {
            edits.push(SpecEdit::Groups(self.group.clone()));
        }
        edits.push(SpecEdit::Init(self.init));
        edits.push(SpecEdit::ReadOnly(self.read_only));
        edits.push(SpecEdit::Tty(self.tty));
        edits.push(SpecEdit::Healthcheck(self.healthcheck()?));
        edits.extend(
            each("--ulimit", &self.ulimit, parse_ulimit)?
                .into_iter()
                .map(SpecEdit::Ulimit),
        );
        edits.extend(
            each("--dns", &self.dns, parse_dns_server)?
                .into_iter()
                .map(SpecEdit::DnsServer),
        );
        edits.extend(
            each("--dns-search", &self.dns_search, parse_dns_search)?
                .into_iter()
                .map(SpecEdit::DnsSearch),
        );
        edits.extend(
            each("--dns-option", &self.dns_option, parse_dns_option)?
                .into_iter()
                .map(SpecEdit::DnsOption),
        );
        edits.extend(
            each("--host", &self.add_host, parse_extra_host)?
                .into_iter()
                .map(SpecEdit::Host),
        );
        for (k, v) in each("--sysctl", &self.sysctl, parse_sysctl)? {
            edits.push(SpecEdit::Sysctl(k, v));
        }
        edits.push(SpecEdit::Capabilities {
            add: each("--cap-add", &self.cap_add, normalize_capability)?,
            drop: each("--cap-drop", &self.cap_drop, normalize_capability)?,
        });
        Ok(edits)
    }

    /// Docker's healthcheck flags: `--health-cmd` runs with the shell
    /// (`CMD-SHELL`), `--no-healthcheck` disables the image's (`NONE`) and
    /// cannot be combined with the others.
    fn healthcheck(&self) -> Result<Option<HealthConfig>, SpecError> {
        let interval = opt(
            "--health-interval",
            &self.health_interval,
            parse_duration_ns,
        )?;
        let timeout = opt("--health-timeout", &self.health_timeout, parse_duration_ns)?;
        let start_period = opt(
            "--health-start-period",
            &self.health_start_period,
            parse_duration_ns,
        )?;
        let start_interval = opt(
            "--health-start-interval",
            &self.health_start_interval,
            parse_duration_ns,
        )?;
        let retries = opt("--health-retries", &self.health_retries, |v| {
            let n = parse_int(v)?;
            i32::try_from(n).map_err(|_| {
                ValueError(format!(
                    "strconv.ParseInt: parsing {v:?}: value out of range"
                ))
            })
        })?;
        let any = self.health_cmd.is_some()
            || interval.is_some()
            || timeout.is_some()
            || start_period.is_some()
            || start_interval.is_some()
            || retries.is_some_and(|r| r != 0);
        if self.no_healthcheck {
            if any {
                return Err(SpecError::invalid(
                    "--no-healthcheck conflicts with --health-* options",
                ));
            }
            return Ok(Some(HealthConfig {
                test: vec!["NONE".to_string()],
                ..Default::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        Ok(Some(HealthConfig {
            test: self
                .health_cmd
                .iter()
                .flat_map(|c| ["CMD-SHELL".to_string(), c.clone()])
                .collect(),
            interval_ns: interval.unwrap_or(0),
            timeout_ns: timeout.unwrap_or(0),
            start_period_ns: start_period.unwrap_or(0),
            retries: retries.unwrap_or(0),
            start_interval_ns: start_interval.unwrap_or(0),
        }))
    }

    /// The first flag given that rswarm stores but does not act on yet
    /// (rolling-update and rollback settings): refused at create until it
    /// works, so no setting is silently ignored.
    pub fn not_yet_honoured(&self) -> Option<&'static str> {
        [
            ("--update-parallelism", self.update_parallelism.is_some()),
            ("--update-delay", self.update_delay.is_some()),
            (
                "--update-failure-action",
                self.update_failure_action.is_some(),
            ),
            ("--update-monitor", self.update_monitor.is_some()),
            (
                "--update-max-failure-ratio",
                self.update_max_failure_ratio.is_some(),
            ),
            ("--update-order", self.update_order.is_some()),
            (
                "--rollback-parallelism",
                self.rollback_parallelism.is_some(),
            ),
            ("--rollback-delay", self.rollback_delay.is_some()),
            (
                "--rollback-failure-action",
                self.rollback_failure_action.is_some(),
            ),
            ("--rollback-monitor", self.rollback_monitor.is_some()),
            (
                "--rollback-max-failure-ratio",
                self.rollback_max_failure_ratio.is_some(),
            ),
            ("--rollback-order", self.rollback_order.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }

    /// The `--update-*` (or `--rollback-*`) flags, as edits of that config.
    fn update_edits(&self, rollback: bool) -> Result<Vec<SpecEdit>, SpecError> {
        let (prefix, parallelism, delay, action, monitor, max_ratio, order) = if rollback {
            (
                "--rollback",
                &self.rollback_parallelism,
                &self.rollback_delay,
                &self.rollback_failure_action,
                &self.rollback_monitor,
                &self.rollback_max_failure_ratio,
                &self.rollback_order,
            )
        } else {
            (
                "--update",
                &self.update_parallelism,
                &self.update_delay,
                &self.update_failure_action,
                &self.update_monitor,
                &self.update_max_failure_ratio,
                &self.update_order,
            )
        };
        let flag = |name: &str| format!("{prefix}-{name}");
        let fields = [
            opt(&flag("parallelism"), parallelism, parse_uint)?.map(UpdateField::Parallelism),
            opt(&flag("delay"), delay, parse_duration_ns)?.map(UpdateField::DelayNs),
            opt(&flag("failure-action"), action, |v| {
                parse_failure_action(v, rollback)
            })?
            .map(UpdateField::FailureAction),
            opt(&flag("monitor"), monitor, parse_duration_ns)?.map(UpdateField::MonitorNs),
            opt(&flag("max-failure-ratio"), max_ratio, ratio)?.map(UpdateField::MaxFailureRatio),
            opt(&flag("order"), order, parse_update_order)?.map(UpdateField::Order),
        ];
        let edit = if rollback {
            SpecEdit::Rollback
        } else {
            SpecEdit::Update
        };
        Ok(fields.into_iter().flatten().map(edit).collect())
    }
}

#[cfg(test)]
pub(super) mod tests;
