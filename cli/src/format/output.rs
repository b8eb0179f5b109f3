//! The `--format` and `--quiet` rules every `ls` and `inspect` command shares,
//! as Docker applies them. Object modules (`nodes`, later services, tasks…)
//! turn their objects into JSON values; this module picks what to print:
//!
//! `ls`: no format (or `table`) → the command's default table; `json` → one
//! compact JSON object per line; `table …` → a table from that template with
//! derived headers; anything else → the template once per row, one line each;
//! `-q` → IDs only.
//!
//! `inspect`: no format → a JSON array indented by four spaces; `json` → the
//! array on one line; anything else → the template once per object.

use serde_json::Value;

use super::table::{HeaderNames, Table};
use super::template::Template;
use super::FormatError;

/// What a listing command contributes to `--format`: its default table and
/// the titles of its template fields.
#[derive(Debug, Clone, Copy)]
pub struct ListFormat<'a> {
    /// Docker's default format for the command, `table …`.
    pub default_table: &'a str,
    /// Column titles for the fields the rows carry.
    pub headers: HeaderNames<'a>,
    /// What a row is, for the error on a field rows do not have
    /// ("can't evaluate field Nope in type node").
    pub row_type: &'a str,
}

const TABLE_KEY: &str = "table";
const JSON_KEY: &str = "json";
const QUIET_FORMAT: &str = "{{.ID}}";
const JSON_FORMAT: &str = "{{json .}}";

/// What a `--format` value asks for.
enum Layout<'f> {
    Table(&'f str),
    Lines(&'f str),
}

/// Docker's reading of a list command's `--format`: `-q` prints IDs only, a
/// `table` prefix makes a table of the rest, `json` is `{{json .}}`; spaces
/// around the template are dropped.
fn list_layout<'f>(format: Option<&'f str>, quiet: bool, list: &ListFormat<'f>) -> Layout<'f> {
    if quiet {
        return Layout::Lines(QUIET_FORMAT);
    }
    let format = format
        .filter(|f| !f.is_empty())
        .unwrap_or(list.default_table);
    if format == JSON_KEY {
        return Layout::Lines(JSON_FORMAT);
    }
    match format.strip_prefix(TABLE_KEY) {
        Some(rest) if rest.trim_matches(' ').is_empty() => {
            let default = list
                .default_table
                .strip_prefix(TABLE_KEY)
                .unwrap_or(list.default_table);
            Layout::Table(default.trim_matches(' '))
        }
        Some(rest) => Layout::Table(rest.trim_matches(' ')),
        None => Layout::Lines(format.trim_matches(' ')),
    }
}

/// Renders the rows of an `ls` command (already in display order) for
/// `--format` / `--quiet`. The result ends with a newline unless it is empty.
pub fn render_list(
    rows: &[Value],
    format: Option<&str>,
    quiet: bool,
    list: &ListFormat<'_>,
) -> Result<String, FormatError> {
    match list_layout(format, quiet, list) {
        Layout::Table(source) => {
            let template = Template::parse(source)?;
            Ok(Table::from_template(&template, list, rows)?.render())
        }
        Layout::Lines(source) => {
            let template = Template::parse(source)?;
            let mut out = String::new();
            let known = |f: &str| list.headers.declares(f);
            for row in rows {
                out.push_str(&template.execute_row(row, &known, list.row_type)?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// Renders objects for an `inspect` command (in the order they were asked
/// for) for `--format`.
pub fn render_inspect(objects: &[Value], format: Option<&str>) -> Result<String, FormatError> {
    match format.filter(|f| !f.is_empty()) {
        None => Ok(format!("{}\n", indented_json(objects))),
        Some(JSON_KEY) => {
            let array = Value::Array(objects.to_vec());
            Ok(format!("{}\n", go_html_escape(&array.to_string())))
        }
        Some(source) => {
            let template = Template::parse(source)?;
            let mut out = String::new();
            for object in objects {
                out.push_str(&template.execute(object)?);
                out.push('\n');
            }
            if out.is_empty() {
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// A JSON array indented by four spaces, as `docker inspect` prints it (Go's
/// `json.MarshalIndent`, including its escaping of `<`, `>` and `&`).
fn indented_json(objects: &[Value]) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if objects.serialize(&mut serializer).is_err() {
        // Serialising a `Value` into memory cannot fail; fall back to compact.
        return go_html_escape(&Value::Array(objects.to_vec()).to_string());
    }
    go_html_escape(&String::from_utf8_lossy(&buf))
}

/// Go's `encoding/json` escapes these inside strings; they never occur in
/// JSON text outside a string, so replacing them in the text is safe.
fn go_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIST: ListFormat<'static> = ListFormat {
        default_table: "table {{.ID}}\t{{.Name}}",
        headers: HeaderNames::new(&[("ID", "ID"), ("Name", "NAME")]),
        row_type: "row",
    };

    fn rows() -> Vec<Value> {
        vec![
            json!({"ID": "id1", "Name": "alpha", "Count": 1}),
            json!({"ID": "id2", "Name": "beta", "Count": 2}),
        ]
    }

    fn list(format: Option<&str>, quiet: bool) -> String {
        render_list(&rows(), format, quiet, &LIST).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn default_and_bare_table_use_the_default_table() {
        let expected = "ID        NAME\nid1       alpha\nid2       beta\n";
        assert_eq!(list(None, false), expected);
        assert_eq!(list(Some(""), false), expected);
        assert_eq!(list(Some("table"), false), expected);
    }

    #[test]
    fn table_prefix_makes_a_table_with_derived_headers() {
        assert_eq!(
            list(Some(r"table {{.Name}}\t{{.Count}}"), false),
            "NAME      COUNT\nalpha     1\nbeta      2\n"
        );
    }

    #[test]
    fn table_with_no_rows_prints_the_header_only() {
        let out = render_list(&[], None, false, &LIST).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "ID        NAME\n");
    }

    #[test]
    fn json_prints_one_compact_object_per_line() {
        assert_eq!(
            list(Some("json"), false),
            "{\"ID\":\"id1\",\"Name\":\"alpha\",\"Count\":1}\n{\"ID\":\"id2\",\"Name\":\"beta\",\"Count\":2}\n"
        );
    }

    #[test]
    fn other_formats_print_the_template_per_row() {
        assert_eq!(
            list(Some("{{.Name}}: {{.Count}}"), false),
            "alpha: 1\nbeta: 2\n"
        );
        assert_eq!(list(Some("  {{.Name}}  "), false), "alpha\nbeta\n");
        let none =
            render_list(&[], Some("{{.Name}}"), false, &LIST).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none, "");
    }

    #[test]
    fn quiet_prints_ids_only() {
        assert_eq!(list(None, true), "id1\nid2\n");
        assert_eq!(list(Some("{{.Name}}"), true), "id1\nid2\n");
    }

    #[test]
    fn bad_format_is_an_error() {
        let err = render_list(&rows(), Some("{{nope .ID}}"), false, &LIST);
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("template parsing error: template: :1: function \"nope\" not defined".to_string())
        );
    }

    #[test]
    fn inspect_defaults_to_an_indented_json_array() {
        let objects = [json!({"ID": "id1", "Spec": {"Labels": {}, "Name": "<x>"}})];
        assert_eq!(
            render_inspect(&objects, None),
            Ok("[\n    {\n        \"ID\": \"id1\",\n        \"Spec\": {\n            \"Labels\": {},\n            \"Name\": \"\\u003cx\\u003e\"\n        }\n    }\n]\n".to_string())
        );
        assert_eq!(render_inspect(&[], None), Ok("[]\n".to_string()));
    }

    #[test]
    fn inspect_json_is_one_line() {
        let objects = [json!({"ID": "id1"}), json!({"ID": "id2"})];
        assert_eq!(
            render_inspect(&objects, Some("json")),
            Ok("[{\"ID\":\"id1\"},{\"ID\":\"id2\"}]\n".to_string())
        );
    }

    #[test]
    fn inspect_template_runs_per_object() {
        let objects = [json!({"ID": "id1"}), json!({"ID": "id2"})];
        assert_eq!(
            render_inspect(&objects, Some("{{.ID}}")),
            Ok("id1\nid2\n".to_string())
        );
        assert_eq!(render_inspect(&[], Some("{{.ID}}")), Ok("\n".to_string()));
    }
}
