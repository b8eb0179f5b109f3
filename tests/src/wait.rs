//! Waiting for a cluster to reach a state, with a deadline that explains itself.

use std::time::{Duration, Instant};

/// How often [`wait_for`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Calls `f` until it returns `Some`, at most for `timeout`; panics on timeout with
/// `timed out after 12.3s waiting for {what}`.
pub fn wait_for<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    try_wait_for(timeout, what, f).unwrap_or_else(|err| panic!("{err}"))
}

/// Like [`wait_for`], but a timeout is an error instead of a panic.
pub fn try_wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = f() {
            return Ok(value);
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "timed out after {:.1}s waiting for {what}",
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_some() {
        let mut calls = 0;
        let got = wait_for(Duration::from_secs(5), "the third call", || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, 3);
    }

    #[test]
    fn says_what_it_waited_for() {
        let err = try_wait_for(Duration::from_millis(50), "godot", || None::<()>).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("timed out after 0."), "{message}");
        assert!(message.ends_with("waiting for godot"), "{message}");
    }
}
