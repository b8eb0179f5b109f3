//! How a service runs over time: its mode (replicated, global and the two
//! job modes), the restart policy, and the update and rollback config, with
//! Docker's defaults filled in so that what is stored is what `inspect` shows.

use rswarm_proto::types::endpoint_spec::ResolutionMode;
use rswarm_proto::types::restart_policy::Condition;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_config::{FailureAction, UpdateOrder};
use rswarm_proto::types::{
    GlobalJob, GlobalService, ReplicatedJob, ReplicatedService, RestartPolicy, UpdateConfig,
};

use super::{SpecError, ValueError};

/// Docker's default restart delay.
pub const DEFAULT_RESTART_DELAY_NS: i64 = 5_000_000_000;
/// Docker's default update/rollback monitor period.
pub const DEFAULT_MONITOR_NS: i64 = 5_000_000_000;

/// The four service modes, by the word `--mode` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeKind {
    Replicated,
    Global,
    ReplicatedJob,
    GlobalJob,
}

impl ModeKind {
    pub fn parse(value: &str) -> Result<ModeKind, ValueError> {
        match value {
            "replicated" => Ok(ModeKind::Replicated),
            "global" => Ok(ModeKind::Global),
            "replicated-job" => Ok(ModeKind::ReplicatedJob),
            "global-job" => Ok(ModeKind::GlobalJob),
            _ => Err(ValueError(format!(
                "unknown mode {value:?}: must be replicated, global, replicated-job or global-job"
            ))),
        }
    }

    pub fn of(mode: Option<&Mode>) -> ModeKind {
        match mode {
            Some(Mode::Global(_)) => ModeKind::Global,
            Some(Mode::ReplicatedJob(_)) => ModeKind::ReplicatedJob,
            Some(Mode::GlobalJob(_)) => ModeKind::GlobalJob,
            Some(Mode::Replicated(_)) | None => ModeKind::Replicated,
        }
    }

    pub fn is_job(self) -> bool {
        matches!(self, ModeKind::ReplicatedJob | ModeKind::GlobalJob)
    }
}

/// The service mode from `--mode`, `--replicas`, `--max-concurrent` and
/// `--replicas-max-per-node`, refusing the combinations Docker refuses (in
/// its words) and filling swarmkit's defaults: 1 replica; a replicated job
/// runs `--max-concurrent` (default: `--replicas`, else 1) tasks at a time
/// until `--replicas` (default: max-concurrent) have completed.
pub fn service_mode(
    kind: ModeKind,
    replicas: Option<u64>,
    max_concurrent: Option<u64>,
    max_replicas_per_node: u64,
) -> Result<Mode, SpecError> {
    let replicas_only =
        || SpecError::invalid("replicas can only be used with replicated or replicated-job mode");
    let max_concurrent_only =
        || SpecError::invalid("max-concurrent can only be used with replicated-job mode");
    let per_node_only = || {
        SpecError::invalid(
            "replicas-max-per-node can only be used with replicated or replicated-job mode",
        )
    };
    match kind {
        ModeKind::Replicated => {
            if max_concurrent.is_some() {
                return Err(max_concurrent_only());
            }
            Ok(Mode::Replicated(ReplicatedService {
                replicas: replicas.unwrap_or(1),
            }))
        }
        ModeKind::Global | ModeKind::GlobalJob => {
            if replicas.is_some() {
                return Err(replicas_only());
            }
            if max_replicas_per_node > 0 {
                return Err(per_node_only());
            }
            if max_concurrent.is_some() {
                return Err(max_concurrent_only());
            }
            Ok(if kind == ModeKind::Global {
                Mode::Global(GlobalService {})
            } else {
                Mode::GlobalJob(GlobalJob {})
            })
        }
        ModeKind::ReplicatedJob => {
            let concurrent = max_concurrent.or(replicas).unwrap_or(1);
            Ok(Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: concurrent,
                total_completions: replicas.unwrap_or(concurrent),
            }))
        }
    }
}

/// `none`, `on-failure` or `any`.
pub fn parse_restart_condition(value: &str) -> Result<Condition, ValueError> {
    match value {
        "none" => Ok(Condition::None),
        "on-failure" => Ok(Condition::OnFailure),
        "any" => Ok(Condition::Any),
        _ => Err(ValueError::new(
            "must be \"none\", \"on-failure\" or \"any\"",
        )),
    }
}

/// The word Docker uses for a restart condition.
pub fn restart_condition_word(c: Condition) -> &'static str {
    match c {
        Condition::None => "none",
        Condition::OnFailure => "on-failure",
        Condition::Any => "any",
    }
}

/// Docker's default restart policy for the mode: `any` for services,
/// `on-failure` for jobs (a completed job is not restarted); 5s delay.
pub fn default_restart_policy(kind: ModeKind) -> RestartPolicy {
    RestartPolicy {
        condition: if kind.is_job() {
            Condition::OnFailure as i32
        } else {
            Condition::Any as i32
        },
        delay_ns: DEFAULT_RESTART_DELAY_NS,
        max_attempts: 0,
        window_ns: 0,
        delay_set: true,
    }
}

/// `pause`, `continue` or (for updates only) `rollback`.
pub fn parse_failure_action(value: &str, rollback: bool) -> Result<FailureAction, ValueError> {
    match value {
        "pause" => Ok(FailureAction::Pause),
        "continue" => Ok(FailureAction::Continue),
        "rollback" if !rollback => Ok(FailureAction::Rollback),
        _ if rollback => Err(ValueError::new("must be \"pause\" or \"continue\"")),
        _ => Err(ValueError::new(
            "must be \"pause\", \"continue\" or \"rollback\"",
        )),
    }
}

pub fn failure_action_word(a: FailureAction) -> &'static str {
    match a {
        FailureAction::Pause => "pause",
        FailureAction::Continue => "continue",
        FailureAction::Rollback => "rollback",
    }
}

/// `start-first` or `stop-first`.
pub fn parse_update_order(value: &str) -> Result<UpdateOrder, ValueError> {
    match value {
        "start-first" => Ok(UpdateOrder::StartFirst),
        "stop-first" => Ok(UpdateOrder::StopFirst),
        _ => Err(ValueError::new("must be \"start-first\" or \"stop-first\"")),
    }
}

pub fn update_order_word(o: UpdateOrder) -> &'static str {
    match o {
        UpdateOrder::StartFirst => "start-first",
        UpdateOrder::StopFirst => "stop-first",
    }
}

/// `vip` or `dnsrr`.
pub fn parse_endpoint_mode(value: &str) -> Result<ResolutionMode, ValueError> {
    match value {
        "vip" => Ok(ResolutionMode::Vip),
        "dnsrr" => Ok(ResolutionMode::Dnsrr),
        _ => Err(ValueError::new("must be \"vip\" or \"dnsrr\"")),
    }
}

pub fn endpoint_mode_word(m: ResolutionMode) -> &'static str {
    match m {
        ResolutionMode::Vip => "vip",
        ResolutionMode::Dnsrr => "dnsrr",
    }
}

/// Docker's default update (and rollback) config: one task at a time, no
/// delay, pause on failure, 5s monitor, no failures tolerated, stop-first.
pub fn default_update_config() -> UpdateConfig {
    UpdateConfig {
        parallelism: 1,
        delay_ns: 0,
        failure_action: FailureAction::Pause as i32,
        monitor_ns: DEFAULT_MONITOR_NS,
        max_failure_ratio: 0.0,
        order: UpdateOrder::StopFirst as i32,
    }
}

/// A `--update-max-failure-ratio` value: a fraction from 0 to 1.
pub fn check_failure_ratio(ratio: f32) -> Result<(), ValueError> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(ValueError::new("must be a fraction between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<Mode, SpecError>) -> String {
        match r {
            Ok(m) => panic!("expected an error, got {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn modes_fill_swarmkit_defaults() {
        assert_eq!(
            service_mode(ModeKind::Replicated, None, None, 0),
            Ok(Mode::Replicated(ReplicatedService { replicas: 1 }))
        );
        assert_eq!(
            service_mode(ModeKind::Replicated, Some(6), None, 2),
            Ok(Mode::Replicated(ReplicatedService { replicas: 6 }))
        );
        assert_eq!(
            service_mode(ModeKind::ReplicatedJob, None, None, 0),
            Ok(Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 1,
                total_completions: 1
            }))
        );
        assert_eq!(
            service_mode(ModeKind::ReplicatedJob, Some(5), None, 0),
            Ok(Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 5,
                total_completions: 5
            }))
        );
        assert_eq!(
            service_mode(ModeKind::ReplicatedJob, Some(5), Some(2), 0),
            Ok(Mode::ReplicatedJob(ReplicatedJob {
                max_concurrent: 2,
                total_completions: 5
            }))
        );
        assert_eq!(
            service_mode(ModeKind::Global, None, None, 0),
            Ok(Mode::Global(GlobalService {}))
        );
    }

    #[test]
    fn invalid_mode_combinations_use_dockers_words() {
        assert_eq!(
            msg(service_mode(ModeKind::Global, Some(3), None, 0)),
            "replicas can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            msg(service_mode(ModeKind::GlobalJob, Some(3), None, 0)),
            "replicas can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            msg(service_mode(ModeKind::Replicated, None, Some(2), 0)),
            "max-concurrent can only be used with replicated-job mode"
        );
        assert_eq!(
            msg(service_mode(ModeKind::GlobalJob, None, Some(2), 0)),
            "max-concurrent can only be used with replicated-job mode"
        );
        assert_eq!(
            msg(service_mode(ModeKind::Global, None, None, 2)),
            "replicas-max-per-node can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            ModeKind::parse("daemonset").map_err(|e| e.to_string()),
            Err("unknown mode \"daemonset\": must be replicated, global, replicated-job or global-job".into())
        );
    }

    #[test]
    fn enum_words_round_trip() {
        for w in ["none", "on-failure", "any"] {
            assert_eq!(
                parse_restart_condition(w).map(restart_condition_word),
                Ok(w)
            );
        }
        for w in ["pause", "continue", "rollback"] {
            assert_eq!(
                parse_failure_action(w, false).map(failure_action_word),
                Ok(w)
            );
        }
        assert_eq!(
            parse_failure_action("rollback", true).map_err(|e| e.to_string()),
            Err("must be \"pause\" or \"continue\"".into())
        );
        for w in ["start-first", "stop-first"] {
            assert_eq!(parse_update_order(w).map(update_order_word), Ok(w));
        }
        for w in ["vip", "dnsrr"] {
            assert_eq!(parse_endpoint_mode(w).map(endpoint_mode_word), Ok(w));
        }
        assert!(parse_restart_condition("always").is_err());
        assert!(check_failure_ratio(1.5).is_err());
        assert!(check_failure_ratio(0.2).is_ok());
    }
}
