//! How Docker shows values to people: timestamps as Go prints them (RFC 3339
//! with nanoseconds in JSON, `Time.String()` in `--pretty` text), byte sizes as
//! go-units' `BytesSize`, enum words capitalised like the CLI's `PrettyPrint`,
//! and the natural ("host2" before "host10") order Docker sorts lists in.
//!
//! Pure functions over plain values; the object modules (`nodes`, …) call them.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

/// Go's zero `time.Time` in RFC 3339, what Docker shows for an unset time.
const GO_ZERO_RFC3339: &str = "0001-01-01T00:00:00Z";
/// Go's zero `time.Time` as `Time.String()` prints it.
const GO_ZERO_STRING: &str = "0001-01-01 00:00:00 +0000 UTC";

fn utc(unix_nanos: i64) -> Option<DateTime<Utc>> {
    if unix_nanos == 0 {
        return None;
    }
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let nanos = u32::try_from(unix_nanos.rem_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

/// Fraction of a second the way Go's `.999999999` layout prints it: nothing
/// when zero, otherwise a dot and the digits without trailing zeros.
fn go_fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// A unix-nanosecond timestamp as Go's `time.RFC3339Nano` in UTC, e.g.
/// `2017-05-16T22:52:44.9910662Z`, the form timestamps take in `inspect` JSON.
/// 0 means "never set" and prints Go's zero time, as Docker does.
pub fn rfc3339_nano(unix_nanos: i64) -> String {
    match utc(unix_nanos) {
        Some(t) => format!(
            "{}{}Z",
            t.format("%Y-%m-%dT%H:%M:%S"),
            go_fraction(t.timestamp_subsec_nanos())
        ),
        None => GO_ZERO_RFC3339.to_string(),
    }
}

/// A unix-nanosecond timestamp as Go's `Time.String()` in UTC, e.g.
/// `2017-05-16 22:52:44.9910662 +0000 UTC` (what `--pretty` prints, through
/// [`pretty_print`]). 0 prints Go's zero time.
pub fn go_time(unix_nanos: i64) -> String {
    match utc(unix_nanos) {
        Some(t) => format!(
            "{}{} +0000 UTC",
            t.format("%Y-%m-%d %H:%M:%S"),
            go_fraction(t.timestamp_subsec_nanos())
        ),
        None => GO_ZERO_STRING.to_string(),
    }
}

/// Docker's `PrettyPrint`: the first character upper-cased and the rest
/// lower-cased (`ready` → `Ready`, `+0000 UTC` → `+0000 utc`); a
/// one-character string is lower-cased, as Docker does.
pub fn pretty_print(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.as_str()) {
        (None, _) => String::new(),
        (Some(c), "") => c.to_lowercase().collect(),
        (Some(c), rest) => c
            .to_uppercase()
            .chain(rest.to_lowercase().chars())
            .collect(),
    }
}

/// go-units' `BytesSize`: binary units, four significant digits, no space
/// (`1.952GiB`, `512MiB`, `100B`).
pub fn bytes_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{}{}", go_format_g(size, 4), UNITS[unit])
}

/// Go's `%.<precision>g`: `precision` significant digits, trailing zeros
/// dropped, exponent form when the exponent is below -4 or at least `precision`.
pub fn go_format_g(value: f64, precision: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let precision = precision.max(1);
    // Rust's `{:.Ne}` rounds to N+1 significant digits: "7.704e0".
    let sci = format!("{:.*e}", precision - 1, value);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if exp < -4 || exp >= precision as i32 {
        let (first, rest) = digits.split_at(1);
        let rest = rest.trim_end_matches('0');
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{exp_sign}{:02}", exp.abs());
    }
    let (int_part, frac_part) = if exp >= 0 {
        let point = (exp as usize + 1).min(digits.len());
        let mut int_part = digits[..point].to_string();
        int_part.extend(std::iter::repeat_n('0', exp as usize + 1 - point));
        (int_part, digits[point..].to_string())
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        ("0".to_string(), format!("{zeros}{digits}"))
    };
    let frac_part = frac_part.trim_end_matches('0');
    if frac_part.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    }
}

/// Natural order, as Docker sorts `node ls` by hostname and `service ls` by
/// name: runs of digits compare as numbers (`host2` < `host10`), digits sort
/// before other characters, and other bytes compare as bytes.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (start_a, start_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (num_a, num_b) = (&a[start_a..i], &b[start_b..j]);
        let by_number = num_a.len().cmp(&num_b.len()).then_with(|| num_a.cmp(num_b));
        if by_number != Ordering::Equal {
            return by_number;
        }
        // Same number: fewer leading zeros first.
        if start_a != start_b {
            return start_a.cmp(&start_b);
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_nano_trims_trailing_zeros_like_go() {
        assert_eq!(
            rfc3339_nano(1_494_975_164_991_066_200),
            "2017-05-16T22:52:44.9910662Z"
        );
        assert_eq!(
            rfc3339_nano(1_494_975_164_000_000_000),
            "2017-05-16T22:52:44Z"
        );
        assert_eq!(rfc3339_nano(0), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn go_time_is_time_string_in_utc() {
        assert_eq!(
            go_time(1_494_975_164_991_066_200),
            "2017-05-16 22:52:44.9910662 +0000 UTC"
        );
        assert_eq!(
            pretty_print(&go_time(1_494_975_164_991_066_200)),
            "2017-05-16 22:52:44.9910662 +0000 utc"
        );
    }

    #[test]
    fn pretty_print_capitalises_first_and_lowers_rest() {
        assert_eq!(pretty_print("ready"), "Ready");
        assert_eq!(pretty_print("READY"), "Ready");
        assert_eq!(pretty_print(""), "");
        assert_eq!(pretty_print("X"), "x");
    }

    #[test]
    fn bytes_size_matches_go_units() {
        assert_eq!(bytes_size(100.0), "100B");
        assert_eq!(bytes_size(1024.0), "1KiB");
        assert_eq!(bytes_size(1_039_843_328.0), "991.7MiB");
        assert_eq!(bytes_size(8_272_031_744.0), "7.704GiB");
        assert_eq!(bytes_size(2_096_128.0), "1.999MiB");
        assert_eq!(bytes_size(1_048_575.0), "1024KiB");
    }

    #[test]
    fn go_format_g_switches_to_exponent_like_go() {
        assert_eq!(go_format_g(0.00001234, 4), "1.234e-05");
        assert_eq!(go_format_g(12345.0, 4), "1.234e+04");
        assert_eq!(go_format_g(0.5, 4), "0.5");
        assert_eq!(go_format_g(-2.5, 4), "-2.5");
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut hosts = vec!["host10", "host2", "host1", "alpha", "host02", "10", "9"];
        hosts.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            hosts,
            vec!["9", "10", "alpha", "host1", "host2", "host02", "host10"]
        );
    }
}
