//! The template functions: Go's builtins (`and`, `or`, `not`, `len`,
//! `index`, `slice`, `print`, `printf`, `println`, `eq`, `ne`, `lt`, …) with
//! a small `fmt.Sprintf`, and Docker's additions (`json`, `split`, `join`,
//! `title`, `lower`, `upper`, `pad`, `truncate`), with Go's error wording.

use serde_json::Value;

use super::gofmt::{go_number, go_print, go_type, truthy, write_go};

pub(super) const FUNCTIONS: &[&str] = &[
    // Go's builtins.
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", // Docker's additions.
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

/// Functions that print their first argument unchanged in a table header, as
/// Docker's header functions do (plus `index` and `slice`, so that
/// `{{index .Labels "k"}}` heads its column with `LABELS`).
pub(super) const HEADER_PASS_THROUGH: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "truncate", "index", "slice",
];

/// Exactly `N` arguments, as an array to destructure.
fn want_args<'a, const N: usize>(name: &str, args: &'a [Value]) -> Result<&'a [Value; N], String> {
    args.try_into().map_err(|_| {
        format!(
            "wrong number of args for {name}: want {N} got {}",
            args.len()
        )
    })
}

fn calling(name: &str, message: impl std::fmt::Display) -> String {
    format!("error calling {name}: {message}")
}

fn int_arg(name: &str, value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| calling(name, format!("expected integer; found {}", go_print(value)))),
        other => Err(calling(
            name,
            format!("expected integer; found {}", go_type(other)),
        )),
    }
}

/// Go's `fmt.Sprint`: a space between two operands when neither is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 && !args[i - 1].is_string() && !arg.is_string() {
            out.push(' ');
        }
        write_go(&mut out, arg);
    }
    out
}

fn go_sprintln(args: &[Value]) -> String {
    let mut out: String = args.iter().map(go_print).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

/// Go's `strings.Title`: upper-case each letter that follows a separator.
fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut after_separator = true;
    for c in s.chars() {
        if after_separator && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        after_separator = !(c.is_alphanumeric() || c == '_');
    }
    out
}

fn compare_eq(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Number(_), Value::Number(_)) => {
            Ok(compare_order(a, b)? == std::cmp::Ordering::Equal)
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            Err("invalid type for comparison".to_string())
        }
        _ => Err("incompatible types for comparison".to_string()),
    }
}

fn compare_order(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return Ok(x.cmp(&y));
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return Ok(x.cmp(&y));
            }
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x.partial_cmp(&y)
                .ok_or_else(|| "invalid type for comparison".to_string())
        }
        (Value::String(_), Value::Number(_)) | (Value::Number(_), Value::String(_)) => {
            Err("incompatible types for comparison".to_string())
        }
        _ => Err("invalid type for comparison".to_string()),
    }
}

fn index_value(name: &str, item: &Value, keys: &[Value]) -> Result<Value, String> {
    let mut current = item.clone();
    for key in keys {
        current = match (&current, key) {
            (Value::Object(map), Value::String(k)) => match map.get(k) {
                Some(v) => v.clone(),
                // A missing key gives the map's zero value; the maps users
                // index (labels, options) hold strings, so that is "".
                None if map.values().all(Value::is_string) => Value::String(String::new()),
                None => Value::Null,
            },
            // Like indexing a nil map[string]string in Go.
            (Value::Null, Value::String(_)) => Value::String(String::new()),
            (Value::Array(items), Value::Number(_)) => {
                let i = int_arg(name, key)?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| calling(name, format!("index out of range: {i}")))?
            }
            (Value::Object(_), other) => {
                return Err(calling(
                    name,
                    format!("value has type {}; should be string", go_type(other)),
                ))
            }
            (Value::Null, _) => return Err(calling(name, "index of untyped nil")),
            (other, _) => {
                return Err(calling(
                    name,
                    format!("can't index item of type {}", go_type(other)),
                ))
            }
        };
    }
    Ok(current)
}

fn slice_value(name: &str, args: &[Value]) -> Result<Value, String> {
    let Some((item, bounds)) = args.split_first() else {
        return Err(format!(
            "wrong number of args for {name}: want at least 1 got 0"
        ));
    };
    let bounds = bounds
        .iter()
        .map(|b| {
            int_arg(name, b)
                .and_then(|i| usize::try_from(i).map_err(|_| calling(name, "negative index")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let len = match item {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        other => {
            return Err(calling(
                name,
                format!("can't slice item of type {}", go_type(other)),
            ))
        }
    };
    let (lo, hi) = match bounds.as_slice() {
        [] => (0, len),
        [lo] => (*lo, len),
        [lo, hi] => (*lo, *hi),
        _ => return Err(calling(name, "too many slice indexes")),
    };
    if lo > hi || hi > len {
        return Err(calling(name, format!("index out of range: {hi}")));
    }
    match item {
        Value::String(s) => s
            .get(lo..hi)
            .map(|s| Value::String(s.to_string()))
            .ok_or_else(|| calling(name, "slice is not on a character boundary")),
        Value::Array(a) => Ok(Value::Array(a[lo..hi].to_vec())),
        _ => Ok(Value::Null),
    }
}

/// A small `fmt.Sprintf`: verbs `v s d q t f g e x X %`, flags `-+0 `, width
/// and precision.
fn go_sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            precision = Some(digits.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let number = arg.as_f64();
        let mut text = match (verb, arg) {
            ('d', Value::Number(n)) if n.as_i64().is_some() || n.as_u64().is_some() => go_number(n),
            ('f' | 'F', _) if number.is_some() => {
                format!("{:.*}", precision.unwrap_or(6), number.unwrap_or(0.0))
            }
            ('e', _) if number.is_some() => {
                let p = precision.unwrap_or(6);
                let sci = format!("{:.*e}", p, number.unwrap_or(0.0));
                match sci.split_once('e') {
                    Some((m, e)) => {
                        let e: i32 = e.parse().unwrap_or(0);
                        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                    }
                    None => sci,
                }
            }
            ('g', _) if number.is_some() => match precision {
                Some(p) => crate::format::humanize::go_format_g(number.unwrap_or(0.0), p),
                None => go_print(arg),
            },
            ('x' | 'X', Value::Number(n)) if n.as_i64().is_some() => {
                let i = n.as_i64().unwrap_or(0);
                let hex = format!("{:x}", i.unsigned_abs());
                let hex = if i < 0 { format!("-{hex}") } else { hex };
                if verb == 'X' {
                    hex.to_uppercase()
                } else {
                    hex
                }
            }
            ('x' | 'X', Value::String(s)) => {
                let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
                if verb == 'X' {
                    hex.to_uppercase()
                } else {
                    hex
                }
            }
            ('q', Value::String(s)) => format!("{s:?}"),
            ('t', Value::Bool(b)) => b.to_string(),
            ('s' | 'v', _) => {
                let text = go_print(arg);
                match precision {
                    Some(p) if verb == 's' => text.chars().take(p).collect(),
                    _ => text,
                }
            }
            _ => format!("%!{verb}({}={})", go_type(arg), go_print(arg)),
        };
        if number.is_some() && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g') && !text.starts_with('-')
        {
            if plus {
                text.insert(0, '+');
            } else if space {
                text.insert(0, ' ');
            }
        }
        let width: usize = width.parse().unwrap_or(0);
        let len = text.chars().count();
        if len < width {
            let fill = width - len;
            if minus {
                text.push_str(&" ".repeat(fill));
            } else if zero && number.is_some() {
                let sign_len = usize::from(text.starts_with(['-', '+', ' ']));
                text.insert_str(sign_len, &"0".repeat(fill));
            } else {
                text.insert_str(0, &" ".repeat(fill));
            }
        }
        out.push_str(&text);
    }
    for extra in args {
        out.push_str(&format!("%!(EXTRA {}={})", go_type(extra), go_print(extra)));
    }
    out
}

/// Calls a template function with evaluated arguments.
pub(super) fn call_function(name: &str, args: &[Value]) -> Result<Value, String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => go_print(other),
    };
    let string = |s: String| Ok(Value::String(s));
    match name {
        "not" => {
            let [a] = want_args(name, args)?;
            Ok(Value::Bool(!truthy(a)))
        }
        "len" => {
            let [a] = want_args(name, args)?;
            let n = match a {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => return Err(calling(name, "len of untyped nil")),
                other => return Err(calling(name, format!("len of type {}", go_type(other)))),
            };
            Ok(Value::from(n))
        }
        "index" => match args.split_first() {
            Some((item, keys)) => index_value(name, item, keys),
            None => Err(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            )),
        },
        "slice" => slice_value(name, args),
        "print" => string(go_sprint(args)),
        "println" => string(go_sprintln(args)),
        "printf" => match args.split_first() {
            Some((format, rest)) => string(go_sprintf(&text(format), rest)),
            None => Err(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            )),
        },
        "eq" => match args.split_first() {
            Some((first, rest)) if !rest.is_empty() => {
                for other in rest {
                    if compare_eq(first, other).map_err(|e| calling(name, e))? {
                        return Ok(Value::Bool(true));
                    }
                }
                Ok(Value::Bool(false))
            }
            _ => Err(calling(name, "missing argument for comparison")),
        },
        "ne" => {
            let [a, b] = want_args(name, args)?;
            let equal = compare_eq(a, b).map_err(|e| calling(name, e))?;
            Ok(Value::Bool(!equal))
        }
        "lt" | "le" | "gt" | "ge" => {
            let [a, b] = want_args(name, args)?;
            let order = compare_order(a, b).map_err(|e| calling(name, e))?;
            Ok(Value::Bool(match name {
                "lt" => order.is_lt(),
                "le" => order.is_le(),
                "gt" => order.is_gt(),
                _ => order.is_ge(),
            }))
        }
        "json" => {
            let [a] = want_args(name, args)?;
            serde_json::to_string(a)
                .map(Value::String)
                .map_err(|e| calling(name, e))
        }
        "split" => {
            let [a, b] = want_args(name, args)?;
            let (s, sep) = (text(a), text(b));
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Value::Array(parts))
        }
        "join" => {
            let [a, b] = want_args(name, args)?;
            let sep = text(b);
            match a {
                Value::Array(items) => {
                    string(items.iter().map(text).collect::<Vec<_>>().join(&sep))
                }
                Value::Null => string(String::new()),
                other => Err(calling(
                    name,
                    format!(
                        "wrong type for value; expected []string; got {}",
                        go_type(other)
                    ),
                )),
            }
        }
        "title" => {
            let [a] = want_args(name, args)?;
            string(go_title(&text(a)))
        }
        "lower" => {
            let [a] = want_args(name, args)?;
            string(text(a).to_lowercase())
        }
        "upper" => {
            let [a] = want_args(name, args)?;
            string(text(a).to_uppercase())
        }
        "pad" => {
            let [a, b, c] = want_args(name, args)?;
            let s = text(a);
            if s.is_empty() {
                return string(s);
            }
            let before = usize::try_from(int_arg(name, b)?).unwrap_or(0);
            let after = usize::try_from(int_arg(name, c)?).unwrap_or(0);
            string(format!("{}{s}{}", " ".repeat(before), " ".repeat(after)))
        }
        "truncate" => {
            let [a, b] = want_args(name, args)?;
            let s = text(a);
            let n = usize::try_from(int_arg(name, b)?).unwrap_or(0);
            string(s.chars().take(n).collect())
        }
        _ => Err(format!("function \"{name}\" not defined")),
    }
}
