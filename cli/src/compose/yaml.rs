//! The one module that reads and writes YAML (serde_yaml): text into a
//! [`Value`] tree with anchors, aliases and `<<` merge keys resolved, and a
//! tree back into text for `stack config`. Swapping the YAML library means
//! changing only this file.

use indexmap::IndexMap;

use super::value::Value;

/// Parses one Compose file's text. The error says where (line and column)
/// in words, without the library's type names.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| match e.location() {
            Some(l) => format!(
                "line {} column {}: {}",
                l.line(),
                l.column(),
                strip_location(&e.to_string())
            ),
            None => e.to_string(),
        })?;
    doc.apply_merge().map_err(|e| format!("merge key: {e}"))?;
    from_yaml(doc, "")
}

/// serde_yaml appends " at line L column C" to its messages; we say where first.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn from_yaml(v: serde_yaml::Value, path: &str) -> Result<Value, String> {
    Ok(match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(f) = n.as_f64() {
                Value::Float(f)
            } else {
                Value::Str(n.to_string())
            }
        }
        serde_yaml::Value::String(s) => Value::Str(s),
        serde_yaml::Value::Sequence(items) => Value::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_yaml(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        serde_yaml::Value::Mapping(m) => {
            let mut out = IndexMap::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    serde_yaml::Value::Number(n) => n.to_string(),
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "{}: a mapping key must be a string, not {}",
                            if path.is_empty() { "(top level)" } else { path },
                            from_yaml(other, path)?.kind()
                        ))
                    }
                };
                let child = super::value::join(path, &key);
                let value = from_yaml(v, &child)?;
                out.insert(key, value);
            }
            Value::Map(out)
        }
        serde_yaml::Value::Tagged(t) => {
            return Err(format!(
                "{}: YAML tags ({}) are not supported",
                if path.is_empty() { "(top level)" } else { path },
                t.tag
            ))
        }
    })
}

/// The tree as YAML text (for `stack config`).
pub fn to_text(v: &Value) -> String {
    serde_yaml::to_string(&to_yaml(v)).unwrap_or_default()
}

fn to_yaml(v: &Value) -> serde_yaml::Value {
    match v {
        Value::Null => serde_yaml::Value::Null,
        Value::Bool(b) => serde_yaml::Value::Bool(*b),
        Value::Int(i) => serde_yaml::Value::Number((*i).into()),
        Value::Float(f) => serde_yaml::Value::Number((*f).into()),
        Value::Str(s) => serde_yaml::Value::String(s.clone()),
        Value::Seq(items) => serde_yaml::Value::Sequence(items.iter().map(to_yaml).collect()),
        Value::Map(m) => serde_yaml::Value::Mapping(
            m.iter()
                .map(|(k, v)| (serde_yaml::Value::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}
