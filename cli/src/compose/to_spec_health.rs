//! A Compose service's `healthcheck:` → the `HealthConfig` that
//! `service create`'s `--health-*` flags make (`SpecEdit::Healthcheck`),
//! its durations parsed by the same `parse_duration_ns`: `test` as a
//! string runs with the shell (`CMD-SHELL`, like `--health-cmd`), as a list
//! it is taken as written (`CMD …`, `CMD-SHELL …`, `NONE`); `disable: true`
//! is `NONE` (`--no-healthcheck`); a check without `test` keeps the
//! image's test with the timings given, `start_interval` included (probes
//! during the start period, `--health-start-interval`).

use rswarm_proto::spec::units::parse_duration_ns;
use rswarm_proto::types::HealthConfig;

use super::model::Healthcheck;

/// The health check `h` (at key path `at`) means, or every problem as
/// (key path, why).
pub(super) fn health_config(
    h: &Healthcheck,
    at: &str,
) -> Result<HealthConfig, Vec<(String, String)>> {
    let mut errors = Vec::new();
    if h.disable || h.test.first().map(String::as_str) == Some("NONE") {
        return Ok(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        });
    }
    let key = |k: &str| format!("{at}.{k}");
    if h.test.len() == 1 {
        // ["CMD"] or ["CMD-SHELL"] alone: nothing to run.
        errors.push((key("test"), format!("{} needs a command", h.test[0])));
    }
    let mut duration = |k: &str, v: &Option<String>| -> i64 {
        let Some(v) = v else { return 0 };
        match parse_duration_ns(v) {
            Ok(ns) => ns,
            Err(e) => {
                errors.push((key(k), format!("invalid value {v:?}: {e}")));
                0
            }
        }
    };
    let interval_ns = duration("interval", &h.interval);
    let timeout_ns = duration("timeout", &h.timeout);
    let start_period_ns = duration("start_period", &h.start_period);
    let start_interval_ns = duration("start_interval", &h.start_interval);
    let retries = match h.retries.map(i32::try_from) {
        None => 0,
        Some(Ok(r)) => r,
        Some(Err(_)) => {
            errors.push((
                key("retries"),
                format!("invalid value {}: too large", h.retries.unwrap_or_default()),
            ));
            0
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(HealthConfig {
        test: h.test.clone(),
        interval_ns,
        timeout_ns,
        start_period_ns,
        retries,
        start_interval_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(test: &[&str]) -> Healthcheck {
        Healthcheck {
            test: test.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_check_maps_to_the_flags_health_config() {
        let mut h = hc(&["CMD-SHELL", "wget -q -O- localhost"]);
        h.interval = Some("1m30s".into());
        h.timeout = Some("2s".into());
        h.start_period = Some("500ms".into());
        h.start_interval = Some("250ms".into());
        h.retries = Some(4);
        let c = health_config(&h, "services.web.healthcheck").expect("valid");
        assert_eq!(c.test, ["CMD-SHELL", "wget -q -O- localhost"]);
        assert_eq!(c.interval_ns, 90_000_000_000);
        assert_eq!(c.timeout_ns, 2_000_000_000);
        assert_eq!(c.start_period_ns, 500_000_000);
        assert_eq!(c.start_interval_ns, 250_000_000);
        assert_eq!(c.retries, 4);
    }

    #[test]
    fn disable_or_none_turns_the_images_check_off() {
        let mut h = hc(&[]);
        h.disable = true;
        for h in [h, hc(&["NONE"])] {
            let c = health_config(&h, "x").expect("valid");
            assert_eq!(c.test, ["NONE"]);
            assert_eq!((c.interval_ns, c.retries), (0, 0));
        }
    }

    #[test]
    fn timings_alone_keep_the_images_test() {
        let mut h = hc(&[]);
        h.interval = Some("5s".into());
        let c = health_config(&h, "x").expect("valid");
        assert!(c.test.is_empty());
        assert_eq!(c.interval_ns, 5_000_000_000);
    }

    #[test]
    fn bad_values_are_named_by_key() {
        let mut h = hc(&["CMD"]);
        h.interval = Some("soon".into());
        h.start_interval = Some("1 s".into());
        h.retries = Some(u64::MAX);
        let e = health_config(&h, "services.web.healthcheck").expect_err("invalid");
        let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "services.web.healthcheck.test",
                "services.web.healthcheck.interval",
                "services.web.healthcheck.start_interval",
                "services.web.healthcheck.retries",
            ]
        );
        assert!(e[1].1.starts_with("invalid value \"soon\""), "{}", e[1].1);
    }
}
