//! Unit tests of `template`.

use super::*;
use serde_json::json;

fn node() -> Value {
    json!({
        "ID": "k3n8s2j5d0q9x1m4v7b6c2z8a",
        "Spec": {"Labels": {"zone": "a", "disk": "ssd"}, "Role": "manager", "Availability": "active"},
        "Description": {"Hostname": "host1", "Resources": {"NanoCPUs": 4000000000_i64}},
        "ManagerStatus": {"Leader": true, "Reachability": "reachable", "Addr": "10.0.0.1:4242"},
        "Names": ["web", "api"],
        "Ratio": 0.5,
        "Nothing": null,
    })
}

fn r(format: &str) -> String {
    match render(format, &node()) {
        Ok(s) => s,
        Err(e) => panic!("{format}: {e}"),
    }
}

fn err(format: &str) -> String {
    match render(format, &node()) {
        Ok(s) => panic!("{format}: expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fields_and_nested_fields() {
    assert_eq!(r("{{.ID}}"), "k3n8s2j5d0q9x1m4v7b6c2z8a");
    assert_eq!(r("{{.Description.Hostname}}"), "host1");
    assert_eq!(
        r("{{ .Spec.Role }}/{{.Spec.Availability}}"),
        "manager/active"
    );
    assert_eq!(r("{{.ManagerStatus.Leader}}"), "true");
    assert_eq!(r("{{.Description.Resources.NanoCPUs}}"), "4000000000");
    assert_eq!(r("{{.Ratio}}"), "0.5");
    let floats = json!({"a": 1234567.5, "b": 0.00001, "c": 123456.5, "d": 3.0});
    assert_eq!(
        render("{{.a}} {{.b}} {{.c}} {{.d}}", &floats).unwrap_or_default(),
        "1.2345675e+06 1e-05 123456.5 3"
    );
}

#[test]
fn a_rows_unknown_field_fails_like_a_go_struct() {
    let known = |f: &str| f == "Declared";
    let t = Template::parse("{{.Nope}}").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.execute_row(&node(), &known, "node").map_err(|e| e.to_string()),
        Err("template parsing error: template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type node".to_string())
    );
    // Declared fields, present fields and map keys below the row stay soft.
    for (format, want) in [
        ("{{.Declared}}", "<no value>"),
        ("{{.Description.Hostname}}", "host1"),
        ("{{.Spec.Labels.none}}", "<no value>"),
        ("{{with .Spec}}{{.Nope}}{{end}}", "<no value>"),
    ] {
        let t = Template::parse(format).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.execute_row(&node(), &known, "node").ok().as_deref(),
            Some(want),
            "{format}"
        );
    }
}

#[test]
fn missing_fields_and_null_print_no_value() {
    assert_eq!(r("{{.Missing}}"), "<no value>");
    assert_eq!(r("{{.Missing.Deeper}}"), "<no value>");
    assert_eq!(r("{{.Nothing}}"), "<no value>");
    assert_eq!(r("{{json .Missing}}"), "null");
}

#[test]
fn values_print_like_go_fmt() {
    assert_eq!(r("{{.Spec.Labels}}"), "map[disk:ssd zone:a]");
    assert_eq!(r("{{.Names}}"), "[web api]");
    assert_eq!(
        render("{{.}}", &json!({"b": [1, null], "a": {"x": 1.0}})).unwrap_or_default(),
        "map[a:map[x:1] b:[1 <nil>]]"
    );
    assert_eq!(
        render("{{.}}", &json!("plain")).unwrap_or_default(),
        "plain"
    );
}

#[test]
fn json_function() {
    assert_eq!(r("{{json .Spec.Labels}}"), r#"{"zone":"a","disk":"ssd"}"#);
    assert_eq!(r("{{json .Names}}"), r#"["web","api"]"#);
    assert_eq!(
        render("{{json .}}", &json!({"A": "<b>&"})).unwrap_or_default(),
        r#"{"A":"<b>&"}"#
    );
}

#[test]
fn index_function() {
    assert_eq!(r(r#"{{index .Spec.Labels "zone"}}"#), "a");
    assert_eq!(r(r#"{{index .Spec.Labels "absent"}}"#), "");
    assert_eq!(r(r#"{{index .Names 1}}"#), "api");
    assert_eq!(r(r#"{{index .Missing "k"}}"#), "");
}

#[test]
fn string_functions() {
    assert_eq!(r("{{upper .Spec.Role}}"), "MANAGER");
    assert_eq!(r("{{lower \"MiXeD\"}}"), "mixed");
    assert_eq!(r("{{title \"hello big-world\"}}"), "Hello Big-World");
    assert_eq!(r(r#"{{join .Names ","}}"#), "web,api");
    assert_eq!(r(r#"{{join (split "a:b:c" ":") "-"}}"#), "a-b-c");
    assert_eq!(r(r#"{{truncate .ID 5}}"#), "k3n8s");
    assert_eq!(r(r#"[{{pad "x" 1 2}}][{{pad "" 1 2}}]"#), "[ x  ][]");
    assert_eq!(
        r("{{len .Names}} {{len .ID}} {{len .Spec.Labels}}"),
        "2 25 2"
    );
    assert_eq!(r("{{println .Spec.Role}}"), "manager\n");
    assert_eq!(r(r#"{{print "a" 1 2 "b"}}"#), "a1 2b");
    assert_eq!(
        r(r#"{{printf "%-8s|%5.1f|%03d|%q" .Spec.Role .Ratio 7 "x"}}"#),
        "manager |  0.5|007|\"x\""
    );
}

#[test]
fn pipelines_and_parentheses() {
    assert_eq!(r("{{.Spec.Role | upper}}"), "MANAGER");
    assert_eq!(r(r#"{{.Spec.Role | printf "%s!"}}"#), "manager!");
    assert_eq!(r(r#"{{(index .Names 0) | upper}}"#), "WEB");
    assert_eq!(r("{{(.Spec).Role}}"), "manager");
}

#[test]
fn range_over_lists_and_maps() {
    assert_eq!(r("{{range .Names}}<{{.}}>{{end}}"), "<web><api>");
    assert_eq!(
        r("{{range $i, $n := .Names}}{{$i}}={{$n}} {{end}}"),
        "0=web 1=api "
    );
    assert_eq!(
        r("{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}};{{end}}"),
        "disk=ssd;zone=a;"
    );
    assert_eq!(r("{{range .Spec.Labels}}{{.}} {{end}}"), "ssd a ");
    assert_eq!(r("{{range .Missing}}x{{else}}empty{{end}}"), "empty");
    assert_eq!(
        r("{{range $v := .Names}}{{$v}}{{len $.ID}} {{end}}"),
        "web25 api25 "
    );
}

#[test]
fn if_else_and_comparisons() {
    assert_eq!(r("{{if .ManagerStatus.Leader}}L{{else}}F{{end}}"), "L");
    assert_eq!(r("{{if .Missing}}yes{{else}}no{{end}}"), "no");
    assert_eq!(
        r(r#"{{if eq .Spec.Role "worker"}}W{{else if eq .Spec.Role "manager"}}M{{else}}?{{end}}"#),
        "M"
    );
    assert_eq!(
        r(r#"{{if eq .Spec.Role "a" "b" "manager"}}any{{end}}"#),
        "any"
    );
    assert_eq!(r(r#"{{if ne .Spec.Role "worker"}}ne{{end}}"#), "ne");
    assert_eq!(r(r#"{{if and .ID (not .Missing)}}both{{end}}"#), "both");
    assert_eq!(r(r#"{{or .Missing "fallback"}}"#), "fallback");
    assert_eq!(r(r#"{{if gt (len .Names) 1}}many{{end}}"#), "many");
    assert_eq!(r(r#"{{with .Spec}}{{.Role}}{{end}}"#), "manager");
    assert_eq!(r(r#"{{with .Missing}}x{{else}}none{{end}}"#), "none");
}

#[test]
fn variables() {
    assert_eq!(r("{{$r := .Spec.Role}}{{$r}}-{{$r}}"), "manager-manager");
    assert_eq!(r("{{$x := 1}}{{$x = 2}}{{$x}}"), "2");
    assert_eq!(r("{{$.ID | len}}"), "25");
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(r("a  {{- .Spec.Role -}}  \n b"), "amanagerb");
    assert_eq!(r("a {{/* a comment */}} b"), "a  b");
    assert_eq!(r("a {{- /* trimmed */ -}} b"), "ab");
    assert_eq!(r("{{-3}}"), "-3");
}

#[test]
fn backslash_escapes_in_text_become_tabs_and_newlines() {
    assert_eq!(
        r(r"{{.ID}}\t{{.Spec.Role}}\n"),
        "k3n8s2j5d0q9x1m4v7b6c2z8a\tmanager\n"
    );
    assert_eq!(r(r#"{{join .Names "\t"}}"#), "web\tapi");
}

#[test]
fn string_literals() {
    assert_eq!(r(r#"{{"quoted \"x\""}}"#), "quoted \"x\"");
    assert_eq!(r("{{`raw \\n`}}"), "raw \\n");
    assert_eq!(r("{{1.5}} {{0x10}} {{true}} {{'a'}}"), "1.5 16 true 97");
}

#[test]
fn parse_errors_read_like_docker() {
    assert_eq!(
        err("{{foo .ID}}"),
        "template parsing error: template: :1: function \"foo\" not defined"
    );
    assert_eq!(
        err("{{.ID"),
        "template parsing error: template: :1: unclosed action"
    );
    assert_eq!(
        err("{{if .ID}}x"),
        "template parsing error: template: :1: unexpected EOF"
    );
    assert_eq!(
        err("x{{end}}"),
        "template parsing error: template: :1: unexpected {{end}}"
    );
    assert_eq!(
        err("a\n{{$x}}"),
        "template parsing error: template: :2: undefined variable \"$x\""
    );
    assert_eq!(
        err("{{}}"),
        "template parsing error: template: :1: missing value for command"
    );
    assert_eq!(
        err("{{.ID !}}"),
        "template parsing error: template: :1: bad character U+0021 '!'"
    );
    assert_eq!(
        err(r#"{{"open}}"#),
        "template parsing error: template: :1: unterminated quoted string"
    );
}

#[test]
fn execution_errors_name_the_node() {
    assert_eq!(
        err("{{.ID.Short}}"),
        "template parsing error: template: :1:2: executing \"\" at <.ID.Short>: can't evaluate field Short in type string"
    );
    assert_eq!(
        err("x {{upper .ID .ID}}"),
        "template parsing error: template: :1:4: executing \"\" at <upper>: wrong number of args for upper: want 1 got 2"
    );
    assert_eq!(
        err(r#"{{if eq .ID 1}}{{end}}"#),
        "template parsing error: template: :1:5: executing \"\" at <eq>: error calling eq: incompatible types for comparison"
    );
    assert_eq!(
        err("{{range .ID}}{{end}}"),
        "template parsing error: template: :1:8: executing \"\" at <.ID>: range can't iterate over k3n8s2j5d0q9x1m4v7b6c2z8a"
    );
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // Found by the fuzzing harness: these overflowed the stack.
    let parens = format!("{{{{{}1{}}}}}", "(".repeat(5000), ")".repeat(5000));
    let blocks = format!("{}{}", "{{if 1}}".repeat(5000), "{{end}}".repeat(5000));
    for format in [parens, blocks] {
        let e = Template::parse(&format).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.ends_with("max expression depth exceeded")),
            "{e:?}"
        );
    }
    let ok = format!("{}{}", "{{if 1}}".repeat(50), "{{end}}".repeat(50));
    assert!(Template::parse(&ok).is_ok());
}

#[test]
fn parse_once_execute_many() {
    let tmpl = Template::parse("{{.Name}}:{{.N}}").unwrap_or_else(|e| panic!("{e}"));
    let a = tmpl.execute(&json!({"Name": "a", "N": 1}));
    let b = tmpl.execute(&json!({"Name": "b", "N": 2}));
    assert_eq!((a, b), (Ok("a:1".to_string()), Ok("b:2".to_string())));
}

#[test]
fn header_mode_prints_column_names() {
    let tmpl = Template::parse(
        r#"{{.ID}} {{if .Self}}*{{else}} {{end}}\t{{upper .Spec.Name}}\t{{json .Labels}}\t{{pad .Hostname 1 1}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let header = |field: &str| match field {
        "Self" => String::new(),
        other => other.to_uppercase(),
    };
    assert_eq!(
        tmpl.execute_header(&header),
        "ID  \tNAME\tLABELS\t HOSTNAME "
    );
}

#[test]
fn malformed_templates_are_errors_not_panics() {
    let inputs = [
        "{{",
        "{{-",
        "{{- ",
        "{{.",
        "{{$",
        "{{\"",
        "{{'",
        "{{'\\",
        "{{`",
        "{{(",
        "{{)",
        "{{|",
        "{{ -}}",
        "{{/*",
        "{{/* */",
        "{{1e}}",
        "{{-}}",
        "{{.A.}}",
        "{{$.}}",
        "é{{.}}é",
        "{{index}}",
        "{{printf \"%\"}}",
        "{{printf \"%5\"}}",
        "{{printf \"%.\"}}",
        "{{slice \"héllo\" 1 2}}",
        "{{0x}}",
        "{{'ab'}}",
        "{{\"\\x\"}}",
        "{{\"\\u12\"}}",
        "{{else}}",
        "{{end}}",
        "{{if}}",
        "{{range $a, $b, $c := .}}{{end}}",
        "{{$x := }}",
        "{{with $x := .ID}}{{$x}}{{end}}{{$x}}",
        "{{if .ID}}{{else}}{{else}}{{end}}",
        "{{(.ID}}",
        "{{.ID)}}",
        "{{define \"x\"}}{{end}}",
        "{{len 1 2}}",
        "{{.ID | .ID}}",
        "{{json}}",
        "{{pad .ID -1 -1}}",
        "{{truncate .ID -3}}",
        "{{index .Names -1}}",
        "{{range 3}}{{end}}",
        "{{slice .Names 2 1}}",
        "{{$x = 1}}",
        "{{ 1 | 2 }}",
    ];
    for input in inputs {
        // Any outcome is fine as long as it is an answer, not a panic.
        let _ = render(input, &node());
    }
    assert!(render("{{/* x */}}", &node()).is_ok());
}
