//! A Compose service's `deploy.update_config` and `deploy.rollback_config`
//! → the same `SpecEdit::Update`/`SpecEdit::Rollback` fields that
//! `service create`'s `--update-*`/`--rollback-*` flags make, each value
//! parsed by the same parser (durations, failure action, order, ratio).
//! Keys not given keep Swarm's defaults (parallelism 1, delay 0, monitor
//! 5s, failure_action pause, order stop-first); a rollback cannot have
//! `failure_action: rollback`.

use rswarm_proto::spec::units::parse_duration_ns;

use super::model::UpdateConfig;
use crate::servicespec::edits::{SpecEdit, UpdateField};
use crate::servicespec::policy::{check_failure_ratio, parse_failure_action, parse_update_order};

/// The edits `u` (at key path `at`; `rollback` for `rollback_config`)
/// means, or every problem as (key path, why).
pub(super) fn update_edits(
    u: &UpdateConfig,
    at: &str,
    rollback: bool,
) -> Result<Vec<SpecEdit>, Vec<(String, String)>> {
    let mut fields = Vec::new();
    let mut errors = Vec::new();
    let key = |k: &str| format!("{at}.{k}");
    if let Some(p) = u.parallelism {
        fields.push(UpdateField::Parallelism(p));
    }
    let mut duration = |k: &str, v: &Option<String>, field: fn(i64) -> UpdateField| {
        if let Some(v) = v {
            match parse_duration_ns(v) {
                Ok(ns) => fields.push(field(ns)),
                Err(e) => errors.push((key(k), format!("invalid value {v:?}: {e}"))),
            }
        }
    };
    duration("delay", &u.delay, UpdateField::DelayNs);
    duration("monitor", &u.monitor, UpdateField::MonitorNs);
    if let Some(v) = &u.failure_action {
        match parse_failure_action(v, rollback) {
            Ok(a) => fields.push(UpdateField::FailureAction(a)),
            Err(e) => errors.push((key("failure_action"), format!("invalid value {v:?}: {e}"))),
        }
    }
    if let Some(r) = u.max_failure_ratio {
        let r = r as f32;
        match check_failure_ratio(r) {
            Ok(()) => fields.push(UpdateField::MaxFailureRatio(r)),
            Err(e) => errors.push((key("max_failure_ratio"), e.to_string())),
        }
    }
    if let Some(v) = &u.order {
        match parse_update_order(v) {
            Ok(o) => fields.push(UpdateField::Order(o)),
            Err(e) => errors.push((key("order"), format!("invalid value {v:?}: {e}"))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let edit = if rollback {
        SpecEdit::Rollback
    } else {
        SpecEdit::Update
    };
    Ok(fields.into_iter().map(edit).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::update_config::{FailureAction, UpdateOrder};

    #[test]
    fn every_key_becomes_its_field() {
        let u = UpdateConfig {
            parallelism: Some(2),
            delay: Some("10s".into()),
            failure_action: Some("rollback".into()),
            monitor: Some("1m".into()),
            max_failure_ratio: Some(0.25),
            order: Some("start-first".into()),
        };
        assert_eq!(
            update_edits(&u, "services.web.deploy.update_config", false),
            Ok(vec![
                SpecEdit::Update(UpdateField::Parallelism(2)),
                SpecEdit::Update(UpdateField::DelayNs(10_000_000_000)),
                SpecEdit::Update(UpdateField::MonitorNs(60_000_000_000)),
                SpecEdit::Update(UpdateField::FailureAction(FailureAction::Rollback)),
                SpecEdit::Update(UpdateField::MaxFailureRatio(0.25)),
                SpecEdit::Update(UpdateField::Order(UpdateOrder::StartFirst)),
            ])
        );
    }

    #[test]
    fn bad_values_are_named_by_key() {
        let u = UpdateConfig {
            delay: Some("soon".into()),
            failure_action: Some("rollback".into()),
            ..Default::default()
        };
        let errors =
            update_edits(&u, "services.web.deploy.rollback_config", true).expect_err("refused");
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "services.web.deploy.rollback_config.delay",
                "services.web.deploy.rollback_config.failure_action"
            ]
        );
    }
}
