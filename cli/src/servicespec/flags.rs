//! The `service create` flags, named, spelled and defaulted as Docker's, and
//! their translation into a [`ServiceSpec`]. Values are taken as text and
//! parsed here (not by clap) so that every refusal is one line in Docker's
//! words (`invalid argument "64X" for "--limit-memory" flag: invalid size:
//! '64X'`) and the whole spec is refused before anything is sent.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use rswarm_proto::types::{
    Annotations, ContainerSpec, EndpointSpec, HealthConfig, NetworkAttachmentConfig, Placement,
    ResourceLimits, ResourceRequirements, ServiceSpec, TaskSpec, UpdateConfig,
};

use super::container::{
    check_signal, effective_capabilities, normalize_capability, parse_env, parse_env_file,
    parse_label, parse_sysctl, parse_ulimit, split_words,
};
use super::mounts::{parse_mount, resolve_bind_source};
use super::placement::{parse_preference, Constraint};
use super::policy::{
    check_failure_ratio, default_restart_policy, default_update_config, parse_endpoint_mode,
    parse_failure_action, parse_restart_condition, parse_update_order, service_mode, ModeKind,
};
use super::ports::parse_publish;
use super::units::{
    parse_duration_ns, parse_float, parse_int, parse_memory_bytes, parse_nano_cpus, parse_uint,
};
use super::{csv_fields, SpecError, ValueError};

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
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
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

    /// [`ServiceFlags::to_spec`] with the local inputs given.
    pub fn to_spec_with(
        &self,
        image: &str,
        args: &[String],
        local: &LocalInputs<'_>,
    ) -> Result<ServiceSpec, SpecError> {
        let kind =
            ModeKind::parse(&self.mode).map_err(|e| SpecError::flag("--mode", &self.mode, e))?;
        let replicas = opt("--replicas", &self.replicas, parse_uint)?;
        let max_concurrent = opt("--max-concurrent", &self.max_concurrent, parse_uint)?;
        let max_per_node = opt(
            "--replicas-max-per-node",
            &self.replicas_max_per_node,
            parse_uint,
        )?
        .unwrap_or(0);
        let mode = service_mode(kind, replicas, max_concurrent, max_per_node)?;

        let mut ports = Vec::new();
        for p in each("-p, --publish", &self.publish, parse_publish)? {
            ports.extend(p);
        }
        let endpoint_mode = parse_endpoint_mode(&self.endpoint_mode)
            .map_err(|e| SpecError::flag("--endpoint-mode", &self.endpoint_mode, e))?;

        let constraints = each("--constraint", &self.constraint, |c| {
            Constraint::parse(c).map(|_| c.trim().to_string())
        })?;
        let preferences = each("--placement-pref", &self.placement_pref, parse_preference)?;

        let resources = ResourceRequirements {
            limits: Some(ResourceLimits {
                nano_cpus: opt("--limit-cpu", &self.limit_cpu, parse_nano_cpus)?.unwrap_or(0),
                memory_bytes: opt("--limit-memory", &self.limit_memory, parse_memory_bytes)?
                    .unwrap_or(0),
                pids: opt("--limit-pids", &self.limit_pids, parse_int)?.unwrap_or(0),
            }),
            reservations: Some(ResourceLimits {
                nano_cpus: opt("--reserve-cpu", &self.reserve_cpu, parse_nano_cpus)?.unwrap_or(0),
                memory_bytes: opt("--reserve-memory", &self.reserve_memory, parse_memory_bytes)?
                    .unwrap_or(0),
                pids: 0,
            }),
        };

        let mut restart = default_restart_policy(kind);
        if let Some(c) = opt(
            "--restart-condition",
            &self.restart_condition,
            parse_restart_condition,
        )? {
            restart.condition = c as i32;
        }
        if let Some(d) = opt("--restart-delay", &self.restart_delay, parse_duration_ns)? {
            restart.delay_ns = d;
        }
        if let Some(n) = opt(
            "--restart-max-attempts",
            &self.restart_max_attempts,
            parse_uint,
        )? {
            restart.max_attempts = n;
        }
        if let Some(w) = opt("--restart-window", &self.restart_window, parse_duration_ns)? {
            restart.window_ns = w;
        }

        let mut env = Vec::new();
        for path in &self.env_file {
            let content = (local.read_file)(path).map_err(SpecError::Invalid)?;
            env.extend(
                parse_env_file(&content, local.env)
                    .map_err(|e| SpecError::flag("--env-file", path, e))?,
            );
        }
        env.extend(each("-e, --env", &self.env, |v| parse_env(v, local.env))?);

        let labels: HashMap<String, String> = each("-l, --label", &self.label, parse_label)?
            .into_iter()
            .collect();
        let container_labels: HashMap<String, String> =
            each("--container-label", &self.container_label, parse_label)?
                .into_iter()
                .collect();

        let mut mounts = each("--mount", &self.mount, parse_mount)?;
        for m in &mut mounts {
            resolve_bind_source(m, &local.cwd);
        }

        let command = opt("--entrypoint", &self.entrypoint, split_words)?.unwrap_or_default();
        if let Some(s) = &self.stop_signal {
            check_signal(s).map_err(|e| SpecError::flag("--stop-signal", s, e))?;
        }
        let stop_grace_period_ns = opt(
            "--stop-grace-period",
            &self.stop_grace_period,
            parse_duration_ns,
        )?
        .unwrap_or(0);

        let healthcheck = self.healthcheck()?;
        let ulimits = each("--ulimit", &self.ulimit, parse_ulimit)?;
        let sysctls: HashMap<String, String> = each("--sysctl", &self.sysctl, parse_sysctl)?
            .into_iter()
            .collect();
        let cap_add = each("--cap-add", &self.cap_add, normalize_capability)?;
        let cap_drop = each("--cap-drop", &self.cap_drop, normalize_capability)?;
        let (cap_add, cap_drop) = effective_capabilities(&cap_add, &cap_drop);
        let networks = each("--network", &self.network, parse_network)?;

        let update = self.update_config(false)?;
        let rollback = self.update_config(true)?;

        let spec = ServiceSpec {
            annotations: Some(Annotations {
                name: self.name.clone().unwrap_or_default(),
                labels,
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: image.to_string(),
                    labels: container_labels,
                    command,
                    args: args.to_vec(),
                    hostname: self.hostname.clone().unwrap_or_default(),
                    env,
                    dir: self.workdir.clone().unwrap_or_default(),
                    user: self.user.clone().unwrap_or_default(),
                    groups: self.group.clone(),
                    mounts,
                    stop_grace_period_ns,
                    stop_signal: self.stop_signal.clone().unwrap_or_default(),
                    init: self.init,
                    read_only: self.read_only,
                    healthcheck,
                    ulimits,
                    sysctls,
                    cap_add,
                    cap_drop,
                    tty: self.tty,
                    open_stdin: false,
                }),
                resources: Some(resources),
                restart: Some(restart),
                placement: Some(Placement {
                    constraints,
                    preferences,
                    max_replicas: max_per_node,
                    platforms: vec![],
                }),
                networks,
                force_update: 0,
            }),
            update: Some(update),
            rollback: Some(rollback),
            endpoint: Some(EndpointSpec {
                mode: endpoint_mode as i32,
                ports,
            }),
            mode: Some(mode),
        };
        super::validate(&spec)?;
        Ok(spec)
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
        }))
    }

    /// The first flag given that rswarm stores but does not act on yet (health
    /// checks, rolling-update and rollback settings): refused at create until
    /// it works, so no setting is silently ignored.
    pub fn not_yet_honoured(&self) -> Option<&'static str> {
        [
            ("--health-cmd", self.health_cmd.is_some()),
            ("--health-interval", self.health_interval.is_some()),
            ("--health-retries", self.health_retries.is_some()),
            ("--health-timeout", self.health_timeout.is_some()),
            ("--health-start-period", self.health_start_period.is_some()),
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

    /// The `--update-*` (or `--rollback-*`) flags over Docker's defaults.
    fn update_config(&self, rollback: bool) -> Result<UpdateConfig, SpecError> {
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
        let mut config = default_update_config();
        if let Some(p) = opt(&format!("{prefix}-parallelism"), parallelism, parse_uint)? {
            config.parallelism = p;
        }
        if let Some(d) = opt(&format!("{prefix}-delay"), delay, parse_duration_ns)? {
            config.delay_ns = d;
        }
        if let Some(a) = opt(&format!("{prefix}-failure-action"), action, |v| {
            parse_failure_action(v, rollback)
        })? {
            config.failure_action = a as i32;
        }
        if let Some(m) = opt(&format!("{prefix}-monitor"), monitor, parse_duration_ns)? {
            config.monitor_ns = m;
        }
        if let Some(r) = opt(&format!("{prefix}-max-failure-ratio"), max_ratio, ratio)? {
            config.max_failure_ratio = r;
        }
        if let Some(o) = opt(&format!("{prefix}-order"), order, parse_update_order)? {
            config.order = o as i32;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rswarm_proto::types::endpoint_spec::ResolutionMode;
    use rswarm_proto::types::mount::Type as MountType;
    use rswarm_proto::types::port_config::{Protocol, PublishMode};
    use rswarm_proto::types::restart_policy::Condition;
    use rswarm_proto::types::service_spec::Mode;
    use rswarm_proto::types::update_config::{FailureAction, UpdateOrder};
    use rswarm_proto::types::{
        GlobalService, Mount, PortConfig, ReplicatedService, RestartPolicy, Ulimit,
    };

    /// `service create`'s shape: the flags, then IMAGE [COMMAND] [ARG...].
    #[derive(Parser, Debug)]
    struct Create {
        #[command(flatten)]
        flags: ServiceFlags,
        #[arg(required = true, trailing_var_arg = true)]
        image_and_args: Vec<String>,
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn flags_not_acted_on_yet_are_named_for_refusal() {
        let given = |line: &str| {
            let argv = std::iter::once("create").chain(line.split_whitespace());
            Create::try_parse_from(argv)
                .map_err(|e| e.to_string())
                .map(|c| c.flags.not_yet_honoured())
        };
        assert_eq!(given("busybox"), Ok(None));
        assert_eq!(given("--no-healthcheck busybox"), Ok(None));
        assert_eq!(given("--health-cmd true busybox"), Ok(Some("--health-cmd")));
        assert_eq!(
            given("--update-delay 5s busybox"),
            Ok(Some("--update-delay"))
        );
        assert_eq!(
            given("--rollback-order start-first busybox"),
            Ok(Some("--rollback-order"))
        );
    }

    fn spec_from(line: &str) -> Result<ServiceSpec, String> {
        let argv = std::iter::once("create").chain(line.split_whitespace());
        let create = Create::try_parse_from(argv).map_err(|e| e.to_string())?;
        let (image, args) = create
            .image_and_args
            .split_first()
            .ok_or_else(|| "no image".to_string())?;
        let local = LocalInputs {
            env: &no_env,
            read_file: &read_local_file,
            cwd: PathBuf::from("/work"),
        };
        create
            .flags
            .to_spec_with(image, args, &local)
            .map_err(|e| e.to_string())
    }

    fn spec(line: &str) -> ServiceSpec {
        spec_from(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn err(line: &str) -> String {
        match spec_from(line) {
            Ok(s) => panic!("{line}: expected an error, got {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_issues_example_becomes_this_spec() {
        let s = spec("--name web --replicas 6 --publish 8080:80 --constraint node.role==worker --limit-memory 64M registry.local:5000/busybox:1 httpd -f -p 80");
        let expected = ServiceSpec {
            annotations: Some(Annotations {
                name: "web".into(),
                labels: HashMap::new(),
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "registry.local:5000/busybox:1".into(),
                    args: vec!["httpd".into(), "-f".into(), "-p".into(), "80".into()],
                    ..Default::default()
                }),
                resources: Some(ResourceRequirements {
                    limits: Some(ResourceLimits {
                        nano_cpus: 0,
                        memory_bytes: 64 * 1024 * 1024,
                        pids: 0,
                    }),
                    reservations: Some(ResourceLimits::default()),
                }),
                restart: Some(RestartPolicy {
                    condition: Condition::Any as i32,
                    delay_ns: 5_000_000_000,
                    max_attempts: 0,
                    window_ns: 0,
                    delay_set: true,
                }),
                placement: Some(Placement {
                    constraints: vec!["node.role==worker".into()],
                    ..Default::default()
                }),
                networks: vec![],
                force_update: 0,
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas: 6 })),
            update: Some(UpdateConfig {
                parallelism: 1,
                delay_ns: 0,
                failure_action: FailureAction::Pause as i32,
                monitor_ns: 5_000_000_000,
                max_failure_ratio: 0.0,
                order: UpdateOrder::StopFirst as i32,
            }),
            rollback: Some(default_update_config()),
            endpoint: Some(EndpointSpec {
                mode: ResolutionMode::Vip as i32,
                ports: vec![PortConfig {
                    name: String::new(),
                    protocol: Protocol::Tcp as i32,
                    target_port: 80,
                    published_port: 8080,
                    publish_mode: PublishMode::Ingress as i32,
                }],
            }),
        };
        assert_eq!(s, expected);
    }

    #[test]
    fn container_flags_fill_the_container_spec() {
        let s = spec("--name api -e A=1 -e B= -l tier=front --container-label c=1 \
             --mount type=bind,source=./data,target=/data,readonly --mount type=tmpfs,target=/t,tmpfs-size=64m \
             -w /srv -u app:app --group audio --hostname {{.Service.Name}}-{{.Task.Slot}} \
             --entrypoint /bin/sh --stop-signal SIGQUIT --stop-grace-period 30s --init --read-only -t \
             --health-cmd true --health-interval 2s --health-retries 3 --ulimit nofile=1024:2048 \
             --sysctl net.core.somaxconn=1024 --cap-add net_admin --cap-drop chown --network backend \
             busybox:1 -c true");
        let task = s.task.unwrap_or_default();
        let c = task.container.unwrap_or_default();
        assert_eq!(c.env, vec!["A=1".to_string(), "B=".into()]);
        assert_eq!(
            s.annotations
                .unwrap_or_default()
                .labels
                .get("tier")
                .map(String::as_str),
            Some("front")
        );
        assert_eq!(c.labels.get("c").map(String::as_str), Some("1"));
        assert_eq!(
            c.mounts,
            vec![
                Mount {
                    r#type: MountType::Bind as i32,
                    source: "/work/data".into(),
                    target: "/data".into(),
                    read_only: true,
                    ..Default::default()
                },
                Mount {
                    r#type: MountType::Tmpfs as i32,
                    target: "/t".into(),
                    tmpfs_size_bytes: 64 << 20,
                    ..Default::default()
                }
            ]
        );
        assert_eq!((c.dir.as_str(), c.user.as_str()), ("/srv", "app:app"));
        assert_eq!(c.groups, vec!["audio".to_string()]);
        assert_eq!(c.hostname, "{{.Service.Name}}-{{.Task.Slot}}");
        assert_eq!(c.command, vec!["/bin/sh".to_string()]);
        assert_eq!(c.args, vec!["-c".to_string(), "true".into()]);
        assert_eq!(c.stop_signal, "SIGQUIT");
        assert_eq!(c.stop_grace_period_ns, 30_000_000_000);
        assert!(c.init && c.read_only && c.tty);
        let h = c.healthcheck.unwrap_or_default();
        assert_eq!(h.test, vec!["CMD-SHELL".to_string(), "true".into()]);
        assert_eq!((h.interval_ns, h.retries), (2_000_000_000, 3));
        assert_eq!(
            c.ulimits,
            vec![Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }]
        );
        assert_eq!(
            c.sysctls.get("net.core.somaxconn").map(String::as_str),
            Some("1024")
        );
        assert_eq!(c.cap_add, vec!["CAP_NET_ADMIN".to_string()]);
        assert_eq!(c.cap_drop, vec!["CAP_CHOWN".to_string()]);
        assert_eq!(task.networks[0].target, "backend");
    }

    #[test]
    fn policy_flags() {
        let s = spec("--mode global --restart-condition on-failure --restart-delay 1s --restart-max-attempts 3 \
             --restart-window 1m --update-parallelism 2 --update-delay 10s --update-failure-action rollback \
             --update-monitor 30s --update-max-failure-ratio 0.25 --update-order start-first \
             --rollback-parallelism 0 --rollback-failure-action continue --limit-cpu 0.5 --reserve-cpu 0.25 \
             --reserve-memory 32M --limit-pids 100 --placement-pref spread=node.labels.zone \
             --endpoint-mode dnsrr -p mode=host,target=80,published=8080 busybox");
        assert_eq!(s.mode, Some(Mode::Global(GlobalService {})));
        let task = s.task.clone().unwrap_or_default();
        assert_eq!(
            task.restart,
            Some(RestartPolicy {
                condition: Condition::OnFailure as i32,
                delay_ns: 1_000_000_000,
                max_attempts: 3,
                window_ns: 60_000_000_000,
                delay_set: true,
            })
        );
        assert_eq!(
            s.update,
            Some(UpdateConfig {
                parallelism: 2,
                delay_ns: 10_000_000_000,
                failure_action: FailureAction::Rollback as i32,
                monitor_ns: 30_000_000_000,
                max_failure_ratio: 0.25,
                order: UpdateOrder::StartFirst as i32,
            })
        );
        let rollback = s.rollback.unwrap_or_default();
        assert_eq!(
            (rollback.parallelism, rollback.failure_action()),
            (0, FailureAction::Continue)
        );
        let r = task.resources.unwrap_or_default();
        assert_eq!(
            r.limits,
            Some(ResourceLimits {
                nano_cpus: 500_000_000,
                memory_bytes: 0,
                pids: 100
            })
        );
        assert_eq!(
            r.reservations,
            Some(ResourceLimits {
                nano_cpus: 250_000_000,
                memory_bytes: 32 << 20,
                pids: 0
            })
        );
        let placement = task.placement.unwrap_or_default();
        assert_eq!(
            placement.preferences[0].spread_descriptor,
            "node.labels.zone"
        );
        let endpoint = s.endpoint.unwrap_or_default();
        assert_eq!(endpoint.mode(), ResolutionMode::Dnsrr);
        assert_eq!(endpoint.ports[0].publish_mode(), PublishMode::Host);
    }

    #[test]
    fn jobs_default_to_on_failure_and_fill_completions() {
        let s = spec("--mode replicated-job --replicas 5 --max-concurrent 2 busybox true");
        assert_eq!(
            s.mode,
            Some(Mode::ReplicatedJob(rswarm_proto::types::ReplicatedJob {
                max_concurrent: 2,
                total_completions: 5
            }))
        );
        let restart = s.task.and_then(|t| t.restart).unwrap_or_default();
        assert_eq!(restart.condition(), Condition::OnFailure);
    }

    #[test]
    fn env_files_come_before_env_flags() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("app.env");
        std::fs::write(&path, "# settings\nA=from-file\nB=2\n").unwrap_or_else(|e| panic!("{e}"));
        let s = spec(&format!(
            "--env-file {} -e A=from-flag busybox",
            path.display()
        ));
        let env = s
            .task
            .and_then(|t| t.container)
            .map(|c| c.env)
            .unwrap_or_default();
        assert_eq!(
            env,
            vec![
                "A=from-file".to_string(),
                "B=2".into(),
                "A=from-flag".into()
            ]
        );
        assert_eq!(
            err("--env-file /nonexistent/app.env busybox"),
            "open /nonexistent/app.env: no such file or directory"
        );
    }

    #[test]
    fn invalid_values_name_their_flag() {
        assert_eq!(
            err("--publish abc busybox"),
            "invalid argument \"abc\" for \"-p, --publish\" flag: invalid containerPort: abc"
        );
        assert_eq!(
            err("--limit-memory 64X busybox"),
            "invalid argument \"64X\" for \"--limit-memory\" flag: invalid size: '64X'"
        );
        assert_eq!(
            err("--replicas six busybox"),
            "invalid argument \"six\" for \"--replicas\" flag: strconv.ParseUint: parsing \"six\": invalid syntax"
        );
        assert_eq!(
            err("--constraint node.role=worker busybox"),
            "invalid argument \"node.role=worker\" for \"--constraint\" flag: constraint expected one operator from ==, !="
        );
        assert_eq!(
            err("--limit-cpu lots busybox"),
            "invalid argument \"lots\" for \"--limit-cpu\" flag: failed to parse lots as a rational number"
        );
        assert_eq!(
            err("--restart-delay 5 busybox"),
            "invalid argument \"5\" for \"--restart-delay\" flag: invalid duration \"5\": missing unit (ns, us, ms, s, m, h)"
        );
        assert_eq!(
            err("--restart-condition always busybox"),
            "invalid argument \"always\" for \"--restart-condition\" flag: must be \"none\", \"on-failure\" or \"any\""
        );
        assert_eq!(
            err("--update-max-failure-ratio 2 busybox"),
            "invalid argument \"2\" for \"--update-max-failure-ratio\" flag: must be a fraction between 0 and 1"
        );
        assert_eq!(
            err("--rollback-failure-action rollback busybox"),
            "invalid argument \"rollback\" for \"--rollback-failure-action\" flag: must be \"pause\" or \"continue\""
        );
        assert_eq!(
            err("--ulimit nofile=2:1 busybox"),
            "invalid argument \"nofile=2:1\" for \"--ulimit\" flag: ulimit soft limit must be less than or equal to hard limit: 2 > 1"
        );
        assert_eq!(
            err("--mount type=bind,source=/x busybox"),
            "invalid argument \"type=bind,source=/x\" for \"--mount\" flag: target is required"
        );
        assert_eq!(
            err("--endpoint-mode rr busybox"),
            "invalid argument \"rr\" for \"--endpoint-mode\" flag: must be \"vip\" or \"dnsrr\""
        );
        assert_eq!(
            err("--stop-signal SIGNOPE busybox"),
            "invalid argument \"SIGNOPE\" for \"--stop-signal\" flag: Invalid signal: SIGNOPE"
        );
    }

    #[test]
    fn invalid_combinations_are_refused() {
        assert_eq!(
            err("--mode global --replicas 3 busybox"),
            "replicas can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            err("--max-concurrent 2 busybox"),
            "max-concurrent can only be used with replicated-job mode"
        );
        assert_eq!(
            err("--mode global --replicas-max-per-node 1 busybox"),
            "replicas-max-per-node can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            err("--no-healthcheck --health-cmd true busybox"),
            "--no-healthcheck conflicts with --health-* options"
        );
        assert_eq!(
            err("--endpoint-mode dnsrr -p 8080:80 busybox"),
            "EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
        );
        assert_eq!(
            err("-p 8080:80 -p 8080:81 busybox"),
            "EndpointSpec: duplicate published ports provided (8080)"
        );
        assert_eq!(
            err("--name web.1 busybox"),
            "invalid name \"web.1\": name must be valid as a DNS name component"
        );
        assert_eq!(
            err("--limit-memory 1M busybox"),
            "invalid memory value 1048576: Must be at least 6MiB"
        );
        assert_eq!(
            err("--limit-memory 64M --reserve-memory 128M busybox"),
            "memory reservation (128MiB) must not exceed the memory limit (64MiB)"
        );
        assert_eq!(
            err("--mount type=bind,source=/x,target=/d --mount type=volume,target=/d busybox"),
            "ContainerSpec: duplicate mount point: /d"
        );
        assert_eq!(
            err("--mode replicated-job --restart-condition any busybox"),
            "restart condition \"any\" cannot be used with jobs (a completed job would run again): use on-failure or none"
        );
        assert_eq!(
            err("Busybox"),
            "ContainerSpec: \"Busybox\" is not a valid repository/tag: invalid reference format: repository name must be lowercase"
        );
        assert_eq!(
            err("--health-interval 10us --health-cmd true busybox"),
            "Interval in Healthcheck cannot be less than 1ms"
        );
    }

    #[test]
    fn no_healthcheck_disables_the_images() {
        let s = spec("--no-healthcheck busybox");
        let h = s.task.and_then(|t| t.container).and_then(|c| c.healthcheck);
        assert_eq!(h.map(|h| h.test), Some(vec!["NONE".to_string()]));
    }

    #[test]
    fn network_long_syntax() {
        assert_eq!(
            parse_network("name=backend,alias=db,alias=pg"),
            Ok(NetworkAttachmentConfig {
                target: "backend".into(),
                aliases: vec!["db".into(), "pg".into()]
            })
        );
        assert_eq!(
            parse_network("alias=db").map_err(|e| e.to_string()),
            Err("network name/id is not specified".into())
        );
    }
}
