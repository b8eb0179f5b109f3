//! Variable interpolation in Compose values, as Compose does it: `$VAR`,
//! `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
//! `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}` (defaults and alternatives may
//! themselves hold variables) and `$$` for a literal `$`. Only values are
//! interpolated, never keys.

/// What interpolating one string found wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// The text is not a valid interpolation (`${VAR`, `${}`, `${1A}`).
    Format,
    /// `${VAR?msg}` / `${VAR:?msg}` with VAR missing: the variable and the message.
    Required(String, String),
}

/// Interpolates `text`. `lookup` answers a variable's value (`None`: unset);
/// every variable used while unset (and without a default) is added to
/// `unset`, which Compose warns about.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<String, Problem> {
    let chars: Vec<char> = text.chars().collect();
    let (out, end) = expand(&chars, 0, lookup, unset, false)?;
    debug_assert_eq!(end, chars.len());
    Ok(out)
}

/// Expands from `i` to the end, or (inside a default) to the `}` that
/// closes it; returns the text and the index just past what was read.
fn expand(
    chars: &[char],
    mut i: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    nested: bool,
) -> Result<(String, usize), Problem> {
    let mut out = String::new();
    while i < chars.len() {
        let c = chars[i];
        if nested && c == '}' {
            return Ok((out, i));
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let (value, next) = braced(chars, i + 2, lookup, unset)?;
                out.push_str(&value);
                i = next;
            }
            Some(c) if is_name_start(*c) => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && is_name_char(chars[end]) {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                out.push_str(&value_of(&name, lookup, unset));
                i = end;
            }
            // A lone `$` (at the end, or before a character that starts no
            // name) is invalid, as in Compose.
            _ => return Err(Problem::Format),
        }
    }
    if nested {
        // A default or alternative that never met its `}`.
        return Err(Problem::Format);
    }
    Ok((out, i))
}

/// Reads `NAME[op word]}` starting just after `${`.
fn braced(
    chars: &[char],
    start: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<(String, usize), Problem> {
    let mut end = start;
    while end < chars.len() && is_name_char(chars[end]) {
        end += 1;
    }
    let name: String = chars[start..end].iter().collect();
    if name.is_empty() || !is_name_start(chars[start]) {
        return Err(Problem::Format);
    }
    let value = lookup(&name);
    match chars.get(end) {
        Some('}') => Ok((value_of(&name, lookup, unset), end + 1)),
        Some(':') | Some('-') | Some('?') | Some('+') => {
            let colon = chars[end] == ':';
            let op_at = if colon { end + 1 } else { end };
            let op = *chars.get(op_at).ok_or(Problem::Format)?;
            if !matches!(op, '-' | '?' | '+') {
                return Err(Problem::Format);
            }
            // The word is expanded lazily in Compose, but expanding it
            // always keeps errors in it visible; only its use depends on VAR.
            let mut word_unset = Vec::new();
            let (word, close) = expand(chars, op_at + 1, lookup, &mut word_unset, true)?;
            let missing = match &value {
                None => true,
                Some(v) => colon && v.is_empty(),
            };
            let result = match op {
                '-' if missing => {
                    unset.extend(word_unset);
                    word
                }
                '-' => value.unwrap_or_default(),
                '?' if missing => return Err(Problem::Required(name, word)),
                '?' => value.unwrap_or_default(),
                '+' if !missing => {
                    unset.extend(word_unset);
                    word
                }
                _ => String::new(),
            };
            Ok((result, close + 1))
        }
        _ => Err(Problem::Format),
    }
}

fn value_of(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> String {
    match lookup(name) {
        Some(v) => v,
        None => {
            if !unset.iter().any(|u| u == name) {
                unset.push(name.to_string());
            }
            String::new()
        }
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Result<String, Problem>, Vec<String>) {
        let lookup = |name: &str| match name {
            "SET" => Some("value".to_string()),
            "EMPTY" => Some(String::new()),
            "TAG" => Some("1.2".to_string()),
            _ => None,
        };
        let mut unset = Vec::new();
        let r = interpolate(text, &lookup, &mut unset);
        (r, unset)
    }

    fn ok(text: &str) -> String {
        run(text).0.expect("interpolates")
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(ok("img:$TAG"), "img:1.2");
        assert_eq!(ok("img:${TAG}-x"), "img:1.2-x");
        assert_eq!(ok("no variables"), "no variables");
        assert_eq!(ok("$SET$SET"), "valuevalue");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(ok("echo $$HOME"), "echo $HOME");
        assert_eq!(ok("$${SET}"), "${SET}");
    }

    #[test]
    fn defaults_with_and_without_colon() {
        assert_eq!(ok("${UNSET:-dflt}"), "dflt");
        assert_eq!(ok("${EMPTY:-dflt}"), "dflt");
        assert_eq!(ok("${UNSET-dflt}"), "dflt");
        assert_eq!(ok("${EMPTY-dflt}"), "");
        assert_eq!(ok("${SET:-dflt}"), "value");
        assert_eq!(ok("${UNSET:-${TAG}}"), "1.2", "nested default");
        assert_eq!(ok("${UNSET:-}"), "");
    }

    #[test]
    fn alternatives() {
        assert_eq!(ok("${SET:+alt}"), "alt");
        assert_eq!(ok("${EMPTY:+alt}"), "");
        assert_eq!(ok("${EMPTY+alt}"), "alt");
        assert_eq!(ok("${UNSET+alt}"), "");
    }

    #[test]
    fn required_variables_fail_with_their_message() {
        assert_eq!(
            run("${UNSET:?set it please}").0,
            Err(Problem::Required("UNSET".into(), "set it please".into()))
        );
        assert_eq!(
            run("${EMPTY:?}").0,
            Err(Problem::Required("EMPTY".into(), String::new()))
        );
        assert_eq!(ok("${EMPTY?must be set}"), "");
        assert_eq!(
            run("${UNSET?must be set}").0,
            Err(Problem::Required("UNSET".into(), "must be set".into()))
        );
        assert_eq!(ok("${SET:?x}"), "value");
    }

    #[test]
    fn unset_variables_are_blank_and_reported_once() {
        let (r, unset) = run("$NOPE-${NOPE}-${OTHER}");
        assert_eq!(r, Ok("--".into()));
        assert_eq!(unset, vec!["NOPE".to_string(), "OTHER".to_string()]);
        // A default that was used reports nothing unset.
        let (_, unset) = run("${NOPE:-x}");
        assert!(unset.is_empty());
    }

    #[test]
    fn malformed_interpolations_are_format_errors() {
        for bad in [
            "${SET",
            "${}",
            "${1A}",
            "$",
            "a $ b",
            "${SET:x}",
            "${SET:-abc",
        ] {
            assert_eq!(run(bad).0, Err(Problem::Format), "{bad}");
        }
    }
}
