//! The Compose document as a plain tree (`Value`), independent of the YAML
//! library that read it: the loader interpolates, merges and reads this tree,
//! and `yaml.rs` is the only module that knows how it was parsed.

use indexmap::IndexMap;

/// One node of a Compose document. Maps keep their order (for `stack config`
/// and for reporting errors in file order).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Value>),
    Map(IndexMap<String, Value>),
}

impl Value {
    /// What a value is, in the words an error message uses.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// A scalar as the text Compose would see (numbers and booleans as
    /// written); `None` for null, lists and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// Calls `f` on every string scalar (values, not keys) with its path.
    pub fn visit_strings_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, &mut String)) {
        match self {
            Value::Str(s) => f(path, s),
            Value::Seq(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    v.visit_strings_mut(&format!("{path}[{i}]"), f);
                }
            }
            Value::Map(m) => {
                for (k, v) in m.iter_mut() {
                    v.visit_strings_mut(&join(path, k), f);
                }
            }
            _ => {}
        }
    }
}

/// `a.b` from a path and a key (a top-level key has no dot before it).
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
