//! Values as Go prints them: `fmt`'s `%v` (`map[k:v]`, `[a b]`, `<nil>`,
//! Go's number formatting), a template action's `<no value>`, Go's
//! truthiness, and the Go type names used in error messages.

use serde_json::{Map, Number, Value};

/// A value the way Go's `fmt` prints it with `%v`: strings bare, integral
/// numbers without a decimal point, `map[k:v …]` with sorted keys, `[a b]`,
/// and `<nil>` for null.
pub(super) fn go_print(value: &Value) -> String {
    let mut out = String::new();
    write_go(&mut out, value);
    out
}

pub(super) fn write_go(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_number(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            for (i, (key, item)) in sorted_entries(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_go(out, item);
            }
            out.push(']');
        }
    }
}

fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

pub(super) fn go_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return format!("{f:.0}");
    }
    // Go's %v: shortest digits, exponent form below 1e-4 or from 1e6 up.
    let exp = f.abs().log10().floor();
    if !(-4.0..6.0).contains(&exp) {
        let sci = format!("{f:e}");
        if let Some((mantissa, exp)) = sci.split_once('e') {
            let exp: i32 = exp.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            return format!("{mantissa}e{sign}{:02}", exp.abs());
        }
    }
    f.to_string()
}

/// What an action prints for a value: like [`go_print`], but a missing or null
/// value is `<no value>`, as in Go templates.
pub(super) fn print_action(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_string(),
        other => go_print(other),
    }
}

/// Go's notion of "true" in `if`, `with`, `and`, `or`, `not`.
pub(super) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// The Go type a value would have after `json.Unmarshal`, for error messages.
pub(super) fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}
