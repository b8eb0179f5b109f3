//! Go-style durations on the command line (`5s`, `1m30s`, `250ms`, `2160h`),
//! as Docker's flags take them.

use std::time::Duration;

use anyhow::{anyhow, bail};

pub fn parse(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    if s.is_empty() {
        bail!("invalid duration \"\"");
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| anyhow!("invalid duration {s:?}: missing unit (ns, us, ms, s, m, h)"))?;
        if num_end == 0 {
            bail!("invalid duration {s:?}");
        }
        let value: f64 = rest[..num_end]
            .parse()
            .map_err(|_| anyhow!("invalid duration {s:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => bail!("invalid duration {s:?}: unknown unit {unit:?}"),
        };
        total += value * scale;
    }
    // Like Go, refuse what an int64 of nanoseconds cannot hold (about 2562047h).
    if total > i64::MAX as f64 / 1e9 {
        bail!("invalid duration {s:?}");
    }
    Duration::try_from_secs_f64(total).map_err(|_| anyhow!("invalid duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("2160h").unwrap(), Duration::from_secs(2160 * 3600));
        assert!(parse("5").is_err());
        assert!(parse("5x").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn durations_beyond_go_s_range_are_refused_not_a_panic() {
        // Found by the fuzzing harness: these used to panic in Duration::from_secs_f64.
        for s in [
            "18446744073709551616h",
            "922337203685477588547758081s",
            "2562048h",
        ] {
            assert_eq!(
                parse(s).map_err(|e| e.to_string()).err(),
                Some(format!("invalid duration {s:?}"))
            );
        }
        assert!(parse("2562047h").is_ok());
    }
}
