//! Health checks of a running task, as Docker runs them. [`effective`]
//! merges the spec's check with the image's (`HEALTHCHECK`): the spec's test
//! wins when it has one, `["NONE"]` disables the check, each unset number
//! falls back to the image's, then to Docker's defaults (interval 30 s,
//! timeout 30 s, retries 3, start period 0, start interval 5 s). Probes run
//! every interval, except within the start period while the task is still
//! `starting`, when they run every start interval (Docker 25+,
//! [`Check::next_delay`]). [`Tracker`] is the state
//! machine of probe results: a task starts `starting`; a probe that passes
//! (exit 0) makes it `healthy` and clears the failing streak; one that fails
//! (non-zero exit, could not run, or over its timeout) adds to the streak,
//! and `retries` failures in a row make it `unhealthy`. While the task is
//! still `starting` and within its start period, failures do not count.
//! The probes themselves run inside the task's container (the controller's
//! `probe`); the task driver (`taskstate`) reports the status and fails an
//! unhealthy task.

use std::time::{Duration, Instant};

use rswarm_proto::types::HealthConfig;

use crate::image::ImageConfig;

/// Docker's defaults.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_RETRIES: u32 = 3;
pub(crate) const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
/// The most of a probe's output kept (Docker's 4 KiB).
pub(crate) const MAX_OUTPUT: usize = 4096;

/// The check a task runs: the command as it is executed in the container
/// (`CMD-SHELL` already turned into `/bin/sh -c`), and its timings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Check {
    pub args: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    /// Between probes within the start period while still starting.
    pub start_interval: Duration,
    pub retries: u32,
}

impl Check {
    /// How long to wait before the next probe, `since_start` after the
    /// container started, with the task's health `status` (Docker's
    /// `getInterval`): the start interval within the start period while
    /// the task is still starting, else the interval.
    pub(crate) fn next_delay(&self, since_start: Duration, status: Health) -> Duration {
        if since_start < self.start_period && status == Health::Starting {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// The check a task with this spec and image runs; None when it has none
/// or it is disabled (`NONE`).
pub(crate) fn effective(spec: Option<&HealthConfig>, image: &ImageConfig) -> Option<Check> {
    let spec_test = spec.map(|h| h.test.as_slice()).unwrap_or(&[]);
    let test: &[String] = if spec_test.is_empty() {
        image.healthcheck.as_deref().unwrap_or(&[])
    } else {
        spec_test
    };
    let args = match test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
        }
        _ => return None,
    };
    let pick = |spec_ns: Option<i64>, image: Option<Duration>, default: Duration| match spec_ns
        .filter(|n| *n > 0)
    {
        Some(n) => Duration::from_nanos(n as u64),
        None => image.filter(|d| !d.is_zero()).unwrap_or(default),
    };
    Some(Check {
        args,
        interval: pick(
            spec.map(|h| h.interval_ns),
            image.healthcheck_interval,
            DEFAULT_INTERVAL,
        ),
        timeout: pick(
            spec.map(|h| h.timeout_ns),
            image.healthcheck_timeout,
            DEFAULT_TIMEOUT,
        ),
        start_period: pick(
            spec.map(|h| h.start_period_ns),
            image.healthcheck_start_period,
            Duration::ZERO,
        ),
        start_interval: pick(
            spec.map(|h| h.start_interval_ns),
            image.healthcheck_start_interval,
            DEFAULT_START_INTERVAL,
        ),
        retries: match spec.map(|h| h.retries).filter(|r| *r > 0) {
            Some(r) => r as u32,
            None => image
                .healthcheck_retries
                .filter(|r| *r > 0)
                .unwrap_or(DEFAULT_RETRIES),
        },
    })
}

/// A task's health, in Docker's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// What one probe gave: its exit code (None: it ran over its timeout and
/// was killed) and its output (stdout then stderr, at most [`MAX_OUTPUT`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    pub exit_code: Option<i32>,
    pub output: String,
}

impl Probe {
    pub(crate) fn passed(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// A probe that could not run at all (Docker counts it as failed).
    pub(crate) fn not_run(why: impl std::fmt::Display) -> Probe {
        Probe {
            exit_code: Some(-1),
            output: bounded(why.to_string()),
        }
    }

    /// A probe killed at its timeout, with Docker's message.
    pub(crate) fn timed_out(timeout: Duration) -> Probe {
        Probe {
            exit_code: None,
            output: format!("Health check exceeded timeout ({timeout:?})"),
        }
    }
}

/// Cuts a probe's output to [`MAX_OUTPUT`] bytes on a character boundary.
pub(crate) fn bounded(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The state machine of one task's probe results (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Tracker {
    status: Health,
    failing_streak: u32,
    retries: u32,
    /// Failures of probes started before this instant do not count while
    /// the task is still starting.
    grace_until: Instant,
}

impl Tracker {
    /// A task whose container started at `started`.
    pub(crate) fn new(check: &Check, started: Instant) -> Tracker {
        Tracker {
            status: Health::Starting,
            failing_streak: 0,
            retries: check.retries.max(1),
            grace_until: started + check.start_period,
        }
    }

    pub(crate) fn status(&self) -> Health {
        self.status
    }

    pub(crate) fn failing_streak(&self) -> u32 {
        self.failing_streak
    }

    /// Takes the result of a probe started at `probe_started`; true when
    /// the status changed.
    pub(crate) fn observe(&mut self, probe_started: Instant, passed: bool) -> bool {
        let before = self.status;
        if passed {
            self.failing_streak = 0;
            self.status = Health::Healthy;
        } else if self.status == Health::Starting && probe_started < self.grace_until {
            // Docker: a failure within the start period does not count.
        } else {
            self.failing_streak = self.failing_streak.saturating_add(1);
            if self.failing_streak >= self.retries {
                self.status = Health::Unhealthy;
            }
        }
        self.status != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(retries: u32, start_period: Duration) -> Check {
        Check {
            args: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period,
            start_interval: Duration::from_millis(100),
            retries,
        }
    }

    #[test]
    fn spec_wins_then_image_then_defaults() {
        let image = ImageConfig {
            healthcheck: Some(vec!["CMD".into(), "/bin/check".into(), "-q".into()]),
            healthcheck_interval: Some(Duration::from_secs(5)),
            healthcheck_retries: Some(2),
            ..Default::default()
        };
        let from_image = effective(None, &image).expect("the image's check");
        assert_eq!(from_image.args, vec!["/bin/check", "-q"]);
        assert_eq!(from_image.interval, Duration::from_secs(5));
        assert_eq!(from_image.timeout, DEFAULT_TIMEOUT);
        assert_eq!(from_image.start_period, Duration::ZERO);
        assert_eq!(from_image.start_interval, DEFAULT_START_INTERVAL);
        assert_eq!(from_image.retries, 2);

        let spec = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /ok".into()],
            timeout_ns: 2_000_000_000,
            ..Default::default()
        };
        let mixed = effective(Some(&spec), &image).expect("the spec's check");
        assert_eq!(mixed.args, vec!["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(mixed.interval, Duration::from_secs(5), "unset: the image's");
        assert_eq!(mixed.timeout, Duration::from_secs(2));
        assert_eq!(mixed.retries, 2);

        // Timings alone keep the image's test.
        let timings = HealthConfig {
            interval_ns: 1_000_000_000,
            ..Default::default()
        };
        let t = effective(Some(&timings), &image).expect("the image's test");
        assert_eq!(t.args, vec!["/bin/check", "-q"]);
        assert_eq!(t.interval, Duration::from_secs(1));

        let plain = effective(Some(&spec), &ImageConfig::default()).expect("a check");
        assert_eq!(
            (plain.interval, plain.retries),
            (DEFAULT_INTERVAL, DEFAULT_RETRIES)
        );
    }

    #[test]
    fn none_or_nothing_means_no_check() {
        let image = ImageConfig {
            healthcheck: Some(vec!["CMD".into(), "/bin/check".into()]),
            ..Default::default()
        };
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(effective(Some(&none), &image), None, "--no-healthcheck");
        assert_eq!(effective(None, &ImageConfig::default()), None);
        let image_none = ImageConfig {
            healthcheck: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        assert_eq!(effective(None, &image_none), None);
        let empty_cmd = HealthConfig {
            test: vec!["CMD".into()],
            ..Default::default()
        };
        assert_eq!(effective(Some(&empty_cmd), &ImageConfig::default()), None);
    }

    #[test]
    fn a_pass_makes_healthy_and_retries_failures_make_unhealthy() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&check(3, Duration::ZERO), t0);
        assert_eq!(t.status(), Health::Starting);
        assert!(t.observe(t0, true));
        assert_eq!(t.status(), Health::Healthy);
        assert!(!t.observe(t0, false));
        assert!(!t.observe(t0, false));
        assert_eq!((t.status(), t.failing_streak()), (Health::Healthy, 2));
        // A pass in between clears the streak.
        assert!(!t.observe(t0, true));
        assert_eq!(t.failing_streak(), 0);
        assert!(!t.observe(t0, false));
        assert!(!t.observe(t0, false));
        assert!(t.observe(t0, false), "the third failure in a row");
        assert_eq!((t.status(), t.failing_streak()), (Health::Unhealthy, 3));
        // Back to healthy on a pass, as Docker.
        assert!(t.observe(t0, true));
        assert_eq!(t.status(), Health::Healthy);
    }

    #[test]
    fn a_task_that_never_passes_goes_unhealthy_after_retries() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&check(1, Duration::ZERO), t0);
        assert!(t.observe(t0, false));
        assert_eq!(t.status(), Health::Unhealthy);
        // Retries 0 counts as 1, never "never".
        let mut zero = Tracker::new(&check(0, Duration::ZERO), t0);
        assert!(zero.observe(t0, false));
    }

    #[test]
    fn failures_within_the_start_period_do_not_count_while_starting() {
        let t0 = Instant::now();
        let period = Duration::from_secs(10);
        let mut t = Tracker::new(&check(2, period), t0);
        for s in 1..=5 {
            assert!(!t.observe(t0 + Duration::from_secs(s), false));
        }
        assert_eq!((t.status(), t.failing_streak()), (Health::Starting, 0));
        // After the period they count.
        let late = t0 + Duration::from_secs(11);
        assert!(!t.observe(late, false));
        assert!(t.observe(late, false));
        assert_eq!(t.status(), Health::Unhealthy);

        // Once healthy, failures count even within the period.
        let mut h = Tracker::new(&check(2, period), t0);
        assert!(h.observe(t0, true));
        assert!(!h.observe(t0 + Duration::from_secs(1), false));
        assert!(h.observe(t0 + Duration::from_secs(2), false));
        assert_eq!(h.status(), Health::Unhealthy);
    }

    #[test]
    fn start_interval_comes_from_the_spec_then_the_image() {
        let image = ImageConfig {
            healthcheck: Some(vec!["CMD".into(), "/bin/check".into()]),
            healthcheck_start_interval: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let c = effective(None, &image).expect("a check");
        assert_eq!(c.start_interval, Duration::from_secs(2));
        let spec = HealthConfig {
            start_interval_ns: 1_000_000_000,
            ..Default::default()
        };
        let c = effective(Some(&spec), &image).expect("a check");
        assert_eq!(c.start_interval, Duration::from_secs(1));
    }

    #[test]
    fn probes_run_every_start_interval_within_the_start_period_while_starting() {
        let c = Check {
            args: vec!["true".into()],
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(20),
            start_interval: Duration::from_secs(1),
            retries: 3,
        };
        let s = Duration::from_secs;
        assert_eq!(c.next_delay(Duration::ZERO, Health::Starting), s(1));
        assert_eq!(c.next_delay(s(19), Health::Starting), s(1));
        // After the period, or once healthy (or unhealthy): the interval.
        assert_eq!(c.next_delay(s(20), Health::Starting), s(30));
        assert_eq!(c.next_delay(s(5), Health::Healthy), s(30));
        assert_eq!(c.next_delay(s(5), Health::Unhealthy), s(30));
        // No start period: the interval from the first probe on.
        let plain = Check {
            start_period: Duration::ZERO,
            ..c
        };
        assert_eq!(plain.next_delay(Duration::ZERO, Health::Starting), s(30));
    }

    #[test]
    fn a_timeout_is_a_failure_and_output_is_bounded() {
        let p = Probe::timed_out(Duration::from_secs(1));
        assert!(!p.passed());
        assert_eq!(p.output, "Health check exceeded timeout (1s)");
        assert!(!Probe::not_run("no such file").passed());
        let long = "é".repeat(MAX_OUTPUT);
        let cut = bounded(long);
        assert!(cut.len() <= MAX_OUTPUT && cut.len() > MAX_OUTPUT - 2);
    }
}
