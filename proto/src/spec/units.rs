//! Numbers, Go durations (`5s`, `1m30s`, `2160h`), memory sizes (`64M`,
//! `1g`), decimal sizes (a log's `max-size=10m`) and CPU counts as Docker's flags read them, refused with Docker's
//! (and Go's) words so messages match what users search for; and sizes
//! written back the way Docker shows them (`6MiB`).

use std::time::Duration;

use super::ValueError;

/// Go's `strconv.ParseUint(s, 10, 64)`: digits only, no sign.
pub fn parse_uint(s: &str) -> Result<u64, ValueError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError(format!(
            "strconv.ParseUint: parsing {s:?}: invalid syntax"
        )));
    }
    s.parse().map_err(|_| {
        ValueError(format!(
            "strconv.ParseUint: parsing {s:?}: value out of range"
        ))
    })
}

/// Go's `strconv.ParseInt(s, 10, 64)`: digits with an optional sign.
pub fn parse_int(s: &str) -> Result<i64, ValueError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError(format!(
            "strconv.ParseInt: parsing {s:?}: invalid syntax"
        )));
    }
    s.parse().map_err(|_| {
        ValueError(format!(
            "strconv.ParseInt: parsing {s:?}: value out of range"
        ))
    })
}

/// Go's `strconv.ParseFloat(s, 64)` for ordinary decimal numbers.
pub fn parse_float(s: &str) -> Result<f64, ValueError> {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match s.parse::<f64>() {
        Ok(v) if plain && v.is_finite() => Ok(v),
        _ => Err(ValueError(format!(
            "strconv.ParseFloat: parsing {s:?}: invalid syntax"
        ))),
    }
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True 0 f F FALSE false False`.
pub fn parse_bool(s: &str) -> Result<bool, ValueError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ValueError(format!(
            "strconv.ParseBool: parsing {s:?}: invalid syntax"
        ))),
    }
}

/// A Go duration (`5s`, `1m30s`, `250ms`, `2160h`) as Docker's duration
/// flags take it: a bare `0`, or numbers each with a unit (`ns`, `us`, `µs`,
/// `ms`, `s`, `m`, `h`). What an int64 of nanoseconds cannot hold is refused.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let s = s.trim();
    let invalid = || ValueError(format!("invalid duration {s:?}"));
    if s.is_empty() {
        return Err(invalid());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                ValueError(format!(
                    "invalid duration {s:?}: missing unit (ns, us, ms, s, m, h)"
                ))
            })?;
        if num_end == 0 {
            return Err(invalid());
        }
        let value: f64 = rest[..num_end].parse().map_err(|_| invalid())?;
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
            _ => {
                return Err(ValueError(format!(
                    "invalid duration {s:?}: unknown unit {unit:?}"
                )))
            }
        };
        total += value * scale;
    }
    // Like Go, refuse what an int64 of nanoseconds cannot hold (about 2562047h).
    if total > i64::MAX as f64 / 1e9 {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// [`parse_duration`] in nanoseconds, the unit the spec stores.
pub fn parse_duration_ns(s: &str) -> Result<i64, ValueError> {
    let d = parse_duration(s)?;
    i64::try_from(d.as_nanos()).map_err(|_| ValueError(format!("invalid duration {s:?}: too long")))
}

/// A spec's duration in nanoseconds, or `default` when it is unset (0) or
/// negative, as Swarm reads its optional durations.
pub fn nanos_or(ns: i64, default: Duration) -> Duration {
    if ns > 0 {
        Duration::from_nanos(ns as u64)
    } else {
        default
    }
}

/// go-units' `RAMInBytes`: a number with an optional binary unit
/// (`64M`, `1.5G`, `512k`, `2gb`, `100`), any case, an optional blank
/// before the unit and an optional `i`/`b` after it. `64M` is 64 MiB.
pub fn parse_memory_bytes(s: &str) -> Result<i64, ValueError> {
    parse_size(s, 1024)
}

/// go-units' `FromHumanSize`: the same syntax as [`parse_memory_bytes`]
/// in decimal units (`10m` is 10,000,000 bytes), as Docker's json-file log
/// driver reads `max-size`.
pub fn parse_human_size(s: &str) -> Result<i64, ValueError> {
    parse_size(s, 1000)
}

/// A size with units that are powers of `base` (1024 or 1000).
fn parse_size(s: &str, base: i64) -> Result<i64, ValueError> {
    let invalid = || ValueError(format!("invalid size: '{s}'"));
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(number_end);
    // `\d+(\.\d+)*`: starts and ends with a digit, no empty part.
    if number.is_empty() || number.split('.').any(str::is_empty) {
        return Err(invalid());
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    let mut rest = unit.chars();
    let multiplier: i64 = match rest.clone().next().map(|c| c.to_ascii_lowercase()) {
        Some('k') => base,
        Some('m') => base.pow(2),
        Some('g') => base.pow(3),
        Some('t') => base.pow(4),
        Some('p') => base.pow(5),
        _ => 1,
    };
    if multiplier != 1 {
        rest.next();
    }
    let mut rest = rest.as_str();
    if let Some(r) = rest.strip_prefix(['i', 'I']) {
        rest = r;
    }
    if let Some(r) = rest.strip_prefix(['b', 'B']) {
        rest = r;
    }
    if !rest.is_empty() {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| {
        ValueError(format!(
            "strconv.ParseFloat: parsing {number:?}: invalid syntax"
        ))
    })?;
    let bytes = value * multiplier as f64;
    if bytes >= i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

/// A byte count as Docker's `HumanSize` shows it in binary units, four
/// significant digits: `6MiB`, `1.5GiB`, `100B`.
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    let whole_digits = format!("{:.0}", size.abs().trunc()).len();
    let decimals = 4usize.saturating_sub(whole_digits);
    let mut text = format!("{size:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// Docker's `NanoCPUs`: a decimal (`0.5`, `2`) or a fraction (`1/4`) of
/// CPUs, in billionths of a CPU. More than nine decimals is refused with
/// Docker's "value is too precise".
pub fn parse_nano_cpus(s: &str) -> Result<i64, ValueError> {
    let not_rational = || ValueError(format!("failed to parse {s} as a rational number"));
    let (numerator, denominator) = match s.split_once('/') {
        Some((n, d)) => {
            let n = parse_decimal(n).ok_or_else(not_rational)?;
            let d = parse_decimal(d).ok_or_else(not_rational)?;
            if d.0 == 0 {
                return Err(not_rational());
            }
            // (n.0 / n.1) / (d.0 / d.1)
            let num = n.0.checked_mul(d.1).ok_or_else(not_rational)?;
            let den = n.1.checked_mul(d.0).ok_or_else(not_rational)?;
            (num, den)
        }
        None => parse_decimal(s).ok_or_else(not_rational)?,
    };
    let (numerator, denominator) = if denominator < 0 {
        (-numerator, -denominator)
    } else {
        (numerator, denominator)
    };
    let scaled = numerator
        .checked_mul(1_000_000_000)
        .ok_or_else(not_rational)?;
    if scaled % denominator != 0 {
        return Err(ValueError::new("value is too precise"));
    }
    i64::try_from(scaled / denominator).map_err(|_| not_rational())
}

/// `[-+]digits[.digits]` as numerator and power-of-ten denominator.
fn parse_decimal(s: &str) -> Option<(i128, i128)> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !all_digits(frac_part) || body.len() > 30 {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let numerator: i128 = digits.parse().ok()?;
    let denominator = 10i128.checked_pow(u32::try_from(frac_part.len()).ok()?)?;
    Some((if negative { -numerator } else { numerator }, denominator))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: Result<T, ValueError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn human_sizes_are_decimal_like_go_units_from_human_size() {
        assert_eq!(parse_human_size("2k"), Ok(2000));
        assert_eq!(parse_human_size("10m"), Ok(10_000_000));
        assert_eq!(parse_human_size("1.5KB"), Ok(1500));
        assert_eq!(parse_human_size("100"), Ok(100));
        assert_eq!(err(parse_human_size("10x")), "invalid size: '10x'");
    }

    #[test]
    fn memory_sizes_are_dockers_ram_in_bytes() {
        assert_eq!(parse_memory_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_memory_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_memory_bytes("64MB"), Ok(64 << 20));
        assert_eq!(parse_memory_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_memory_bytes("64 mb"), Ok(64 << 20));
        assert_eq!(parse_memory_bytes("1.5G"), Ok(1_610_612_736));
        assert_eq!(parse_memory_bytes("512k"), Ok(512 * 1024));
        assert_eq!(parse_memory_bytes("100"), Ok(100));
        assert_eq!(parse_memory_bytes("100b"), Ok(100));
        assert_eq!(parse_memory_bytes("0"), Ok(0));
        assert_eq!(err(parse_memory_bytes("64X")), "invalid size: '64X'");
        assert_eq!(err(parse_memory_bytes("-1")), "invalid size: '-1'");
        assert_eq!(err(parse_memory_bytes("")), "invalid size: ''");
        assert_eq!(err(parse_memory_bytes("M")), "invalid size: 'M'");
        assert_eq!(err(parse_memory_bytes("1.M")), "invalid size: '1.M'");
        assert_eq!(err(parse_memory_bytes("64MBB")), "invalid size: '64MBB'");
    }

    #[test]
    fn cpus_are_nano_cpus() {
        assert_eq!(parse_nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_nano_cpus("1/4"), Ok(250_000_000));
        assert_eq!(parse_nano_cpus("0.000000001"), Ok(1));
        assert_eq!(
            err(parse_nano_cpus("abc")),
            "failed to parse abc as a rational number"
        );
        assert_eq!(
            err(parse_nano_cpus("1/0")),
            "failed to parse 1/0 as a rational number"
        );
        assert_eq!(err(parse_nano_cpus("0.0000000001")), "value is too precise");
        assert_eq!(err(parse_nano_cpus("1/3")), "value is too precise");
    }

    #[test]
    fn numbers_fail_with_gos_words() {
        assert_eq!(parse_uint("6"), Ok(6));
        assert_eq!(
            err(parse_uint("abc")),
            "strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            err(parse_uint("-1")),
            "strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            err(parse_uint("99999999999999999999")),
            "strconv.ParseUint: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(
            err(parse_int("1.5")),
            "strconv.ParseInt: parsing \"1.5\": invalid syntax"
        );
        assert_eq!(parse_float("0.25"), Ok(0.25));
        assert_eq!(
            err(parse_float("x")),
            "strconv.ParseFloat: parsing \"x\": invalid syntax"
        );
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn sizes_show_like_dockers_human_size() {
        assert_eq!(human_size(6 << 20), "6MiB");
        assert_eq!(human_size(4 << 20), "4MiB");
        assert_eq!(human_size(1_610_612_736), "1.5GiB");
        assert_eq!(human_size(100), "100B");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1_048_576 + 1), "1MiB");
    }

    #[test]
    fn parses_go_durations() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_secs_f64());
        assert_eq!(secs("5s"), Ok(5.0));
        assert_eq!(secs("1m30s"), Ok(90.0));
        assert_eq!(secs("250ms"), Ok(0.25));
        assert_eq!(secs("2160h"), Ok(2160.0 * 3600.0));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
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
                parse_duration(s).map_err(|e| e.to_string()).err(),
                Some(format!("invalid duration {s:?}"))
            );
        }
        assert!(parse_duration("2562047h").is_ok());
    }

    #[test]
    fn durations_are_go_durations() {
        assert_eq!(parse_duration_ns("5s"), Ok(5_000_000_000));
        assert_eq!(parse_duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration_ns("0"), Ok(0));
        assert!(err(parse_duration_ns("5")).contains("missing unit"));
        assert!(err(parse_duration_ns("5x")).contains("unknown unit"));
    }
}
