//! `--since` / `--until` values, read as Docker's `timetypes.GetTimestamp`
//! reads them: a Go duration before now (`10m`, `1h30m`, `-5s` for the
//! future), an RFC 3339 time with or without fraction and zone (no zone:
//! local time), a date (`2026-12-06`), or unix seconds with an optional
//! fraction (`1796531460.5`).

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};

/// Longest value looked at.
const MAX_LEN: usize = 64;

/// Docker's words for a value that is neither a time nor a duration.
fn invalid(value: &str) -> String {
    let shown: String = value.chars().take(MAX_LEN).collect();
    format!("failed to parse value as time or duration: {shown:?}")
}

/// A Go duration with an optional sign, in nanoseconds.
fn go_duration(value: &str) -> Option<i64> {
    let (sign, rest) = match value.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, value.strip_prefix('+').unwrap_or(value)),
    };
    if rest == "0" {
        return Some(0);
    }
    rswarm_proto::spec::units::parse_duration_ns(rest)
        .ok()
        .map(|d| sign * d)
}

/// Unix seconds with up to nine fractional digits.
fn unix(value: &str) -> Option<i64> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || (value.contains('.') && (!digits(frac) || frac.len() > 9)) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn local(naive: NaiveDateTime) -> Option<i64> {
    Local
        .from_local_datetime(&naive)
        .earliest()
        .and_then(|t| t.timestamp_nanos_opt())
}

/// A calendar time: RFC 3339 (zone or not, `T` or blank), or a date.
fn calendar(value: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return t.timestamp_nanos_opt();
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(value, f) {
            return local(n);
        }
    }
    for f in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(t) = DateTime::parse_from_str(value, f) {
            return t.timestamp_nanos_opt();
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return local(d.and_hms_opt(0, 0, 0)?);
    }
    None
}

/// A `--since`/`--until` value as unix nanoseconds, `now` being the
/// reference for durations.
pub(super) fn parse_timestamp(value: &str, now: i64) -> Result<i64, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_LEN {
        return Err(invalid(value));
    }
    if value != "0" {
        if let Some(d) = go_duration(value) {
            return Ok(now.saturating_sub(d));
        }
    }
    unix(value)
        .or_else(|| calendar(value))
        .ok_or_else(|| invalid(value))
}
