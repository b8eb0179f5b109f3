//! The flags `service create` and `service update` both take, with the same
//! name and meaning: each sets one field (or, for `--cap-add/--cap-drop`,
//! combines with what is there). [`SharedFlags`] turns only the flags that
//! were given into `edits::SpecEdit`s, so `update` changes nothing else and
//! `create` applies them over the defaults. The health-check flags are
//! parsed here once ([`HealthFlags`]) and made into a check by each command:
//! a new one for `create`, the current one changed for `update`.

use clap::Args;
use rswarm_proto::spec::capabilities::normalize_capability;
use rswarm_proto::spec::logging::{parse_log_opt, DEFAULT_DRIVER as DEFAULT_LOG_DRIVER};
use rswarm_proto::spec::units::{
    parse_duration_ns, parse_int, parse_memory_bytes, parse_nano_cpus, parse_uint,
};
use rswarm_proto::spec::ValueError;
use rswarm_proto::types::HealthConfig;

use super::container::{check_signal, split_words};
use super::edits::{SpecEdit, UpdateField};
use super::flags::{each, opt, ratio};
use super::policy::{parse_failure_action, parse_restart_condition, parse_update_order};
use super::SpecError;

/// The flags of `service create` that `service update` takes as they are.
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct SharedFlags {
    /// Number of tasks
    #[arg(long, value_name = "uint", allow_hyphen_values = true)]
    pub replicas: Option<String>,
    /// Number of job tasks to run concurrently (default equal to --replicas)
    #[arg(long = "max-concurrent", value_name = "uint")]
    pub max_concurrent: Option<String>,
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
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
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

/// The health-check flags, parsed; `None` where not given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval_ns: Option<i64>,
    pub timeout_ns: Option<i64>,
    pub start_period_ns: Option<i64>,
    pub start_interval_ns: Option<i64>,
    pub retries: Option<i32>,
    pub disable: bool,
}

impl HealthFlags {
    /// Whether any `--health-*` flag was given.
    fn any_set(&self) -> bool {
        self.cmd.is_some()
            || self.interval_ns.is_some()
            || self.timeout_ns.is_some()
            || self.start_period_ns.is_some()
            || self.start_interval_ns.is_some()
            || self.retries.is_some()
    }

    fn conflict(&self) -> Result<(), SpecError> {
        if self.disable && self.any_set() {
            return Err(SpecError::invalid(
                "--no-healthcheck conflicts with --health-* options",
            ));
        }
        Ok(())
    }

    /// `service create`: `--health-cmd` runs with the shell (`CMD-SHELL`),
    /// `--no-healthcheck` disables the image's (`NONE`); `None`: the image's.
    pub fn for_create(&self) -> Result<Option<HealthConfig>, SpecError> {
        self.conflict()?;
        if self.disable {
            return Ok(Some(disabled()));
        }
        let any = self.cmd.is_some()
            || self.interval_ns.is_some()
            || self.timeout_ns.is_some()
            || self.start_period_ns.is_some()
            || self.start_interval_ns.is_some()
            || self.retries.is_some_and(|r| r != 0);
        if !any {
            return Ok(None);
        }
        Ok(Some(self.over(HealthConfig::default())))
    }

    /// `service update`: the current check with the given flags changed, as
    /// Docker's `updateHealthcheck` does (a `NONE` check loses its `NONE`,
    /// an empty `--health-cmd` goes back to the image's command). `None`:
    /// no health flag was given, the check stays as it is.
    pub fn for_update(
        &self,
        current: Option<&HealthConfig>,
    ) -> Result<Option<Option<HealthConfig>>, SpecError> {
        self.conflict()?;
        if self.disable {
            return Ok(Some(Some(disabled())));
        }
        if !self.any_set() {
            return Ok(None);
        }
        let mut base = current.cloned().unwrap_or_default();
        if base.test.first().is_some_and(|t| t == "NONE") {
            base.test.clear();
        }
        Ok(Some(Some(self.over(base))))
    }

    fn over(&self, mut h: HealthConfig) -> HealthConfig {
        if let Some(cmd) = &self.cmd {
            h.test = if cmd.is_empty() {
                vec![]
            } else {
                vec!["CMD-SHELL".to_string(), cmd.clone()]
            };
        }
        let set = |field: &mut i64, v: Option<i64>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut h.interval_ns, self.interval_ns);
        set(&mut h.timeout_ns, self.timeout_ns);
        set(&mut h.start_period_ns, self.start_period_ns);
        set(&mut h.start_interval_ns, self.start_interval_ns);
        if let Some(r) = self.retries {
            h.retries = r;
        }
        h
    }
}

fn disabled() -> HealthConfig {
    HealthConfig {
        test: vec!["NONE".to_string()],
        ..Default::default()
    }
}

impl SharedFlags {
    /// `--limit-*` and `--reserve-*`.
    pub fn resource_edits(&self) -> Result<Vec<SpecEdit>, SpecError> {
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
        Ok(resources
            .into_iter()
            .filter_map(|(v, edit)| v.map(edit))
            .collect())
    }

    /// `--restart-*`.
    pub fn restart_edits(&self) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
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
        Ok(edits)
    }

    /// `--entrypoint`, `--stop-signal`, `--stop-grace-period`, `--hostname`,
    /// `--workdir` and `--user`.
    pub fn process_edits(&self) -> Result<Vec<SpecEdit>, SpecError> {
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
        Ok(edits)
    }

    /// `--cap-add` and `--cap-drop`, combined with the spec's.
    pub fn capability_edit(&self) -> Result<SpecEdit, SpecError> {
        Ok(SpecEdit::Capabilities {
            add: each("--cap-add", &self.cap_add, normalize_capability)?,
            drop: each("--cap-drop", &self.cap_drop, normalize_capability)?,
        })
    }

    /// The `--health-*` and `--no-healthcheck` flags, parsed.
    pub fn health(&self) -> Result<HealthFlags, SpecError> {
        let retries = opt("--health-retries", &self.health_retries, |v| {
            let n = parse_int(v)?;
            i32::try_from(n).map_err(|_| {
                ValueError(format!(
                    "strconv.ParseInt: parsing {v:?}: value out of range"
                ))
            })
        })?;
        Ok(HealthFlags {
            cmd: self.health_cmd.clone(),
            interval_ns: opt(
                "--health-interval",
                &self.health_interval,
                parse_duration_ns,
            )?,
            timeout_ns: opt("--health-timeout", &self.health_timeout, parse_duration_ns)?,
            start_period_ns: opt(
                "--health-start-period",
                &self.health_start_period,
                parse_duration_ns,
            )?,
            start_interval_ns: opt(
                "--health-start-interval",
                &self.health_start_interval,
                parse_duration_ns,
            )?,
            retries,
            disable: self.no_healthcheck,
        })
    }

    /// `--log-driver` and `--log-opt`: the task's log driver. Options
    /// without a driver are json-file's (the default driver), not dropped as
    /// Docker drops them; driver and options are checked together by
    /// `validate()` (`rswarm_proto::spec::logging`).
    pub fn log_edits(&self) -> Result<Option<SpecEdit>, SpecError> {
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

    /// The `--update-*` (or `--rollback-*`) flags, as edits of that config.
    pub fn update_edits(&self, rollback: bool) -> Result<Vec<SpecEdit>, SpecError> {
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
