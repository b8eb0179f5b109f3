//! `.env` and `env_file:` files: `KEY=VALUE` lines, `export KEY=VALUE`,
//! `#` comments, single-quoted (literal) and double-quoted (with `\n`, `\t`,
//! `\"`, `\\` escapes) values, and a bare `KEY` that takes its value from the
//! environment (dropped when the environment has none), as Docker reads them.

/// Reads one env file's text; `name` is said in errors ("app.env:3: ...").
/// `lookup` answers bare `KEY` lines.
pub fn parse(
    name: &str,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_end(), Some(v)),
            None => (line.trim_end(), None),
        };
        if key.is_empty() || !valid_name(key) {
            return Err(format!("{name}:{}: invalid variable name {key:?}", n + 1));
        }
        let value = match value {
            Some(v) => unquote(v).map_err(|e| format!("{name}:{}: {e}", n + 1))?,
            None => match lookup(key) {
                Some(v) => v,
                None => continue,
            },
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn valid_name(key: &str) -> bool {
    !key.chars().any(|c| c.is_whitespace() || c == '=')
}

fn unquote(v: &str) -> Result<String, String> {
    let t = v.trim();
    if let Some(rest) = t.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated single-quoted value")?;
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = t.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        loop {
            match chars.next() {
                None => return Err("unterminated double-quoted value".into()),
                Some('"') => return Ok(out),
                Some('\\') => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c) => out.push(c),
                    None => return Err("unterminated double-quoted value".into()),
                },
                Some(c) => out.push(c),
            }
        }
    }
    // Unquoted: an inline comment starts at a `#` after white space.
    let cut = t
        .char_indices()
        .find(|(i, c)| *c == '#' && *i > 0 && t[..*i].ends_with(char::is_whitespace))
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    Ok(t[..cut].trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn reads_plain_quoted_exported_and_commented_lines() {
        let text = "# a comment\n\nA=1\nexport B = two words \nC='lit $X # not comment'\nD=\"line\\nnext \\\"q\\\"\"\nE=value # comment\nF=\nG=a#b\n";
        let vars = parse(".env", text, &none).expect("parses");
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "lit $X # not comment".into()),
                ("D".into(), "line\nnext \"q\"".into()),
                ("E".into(), "value".into()),
                ("F".into(), String::new()),
                ("G".into(), "a#b".into()),
            ]
        );
    }

    #[test]
    fn a_bare_key_takes_the_environment_or_is_dropped() {
        let env = |k: &str| (k == "HOME").then(|| "/root".to_string());
        let vars = parse("e", "HOME\nNOPE\n", &env).expect("parses");
        assert_eq!(vars, vec![("HOME".into(), "/root".into())]);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        assert_eq!(
            parse("app.env", "A=1\nB C=2\n", &none),
            Err("app.env:2: invalid variable name \"B C\"".into())
        );
        assert_eq!(
            parse("app.env", "A=\"open\n", &none),
            Err("app.env:1: unterminated double-quoted value".into())
        );
    }
}
