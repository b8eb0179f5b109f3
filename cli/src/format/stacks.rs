//! Stacks in Docker's shapes: the `stack ls` rows (NAME, SERVICES), sorted
//! by name the way Docker sorts them (natural order).

use serde_json::{json, Value};

use super::humanize::natural_cmp;
use super::output::{render_list, ListFormat};
use super::table::HeaderNames;
use super::FormatError;

pub const STACK_LS: ListFormat<'static> = ListFormat {
    default_table: "table {{.Name}}\t{{.Services}}",
    headers: HeaderNames::new(&[("Name", "NAME"), ("Services", "SERVICES")]),
    row_type: "stack",
};

/// `stack ls` for stacks given as (name, number of services), any order.
pub fn render_stack_list(
    stacks: &[(String, usize)],
    format: Option<&str>,
) -> Result<String, FormatError> {
    let mut sorted: Vec<&(String, usize)> = stacks.iter().collect();
    sorted.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    let rows: Vec<Value> = sorted
        .iter()
        .map(|(name, n)| json!({"Name": name, "Services": n.to_string()}))
        .collect();
    render_list(&rows, format, false, &STACK_LS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_list_sorted_with_dockers_columns() {
        let stacks = vec![("shop10".to_string(), 1), ("shop2".to_string(), 3)];
        let out = render_stack_list(&stacks, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "NAME      SERVICES\nshop2     3\nshop10    1\n");
        assert_eq!(
            render_stack_list(&[], None).unwrap_or_else(|e| panic!("{e}")),
            "NAME      SERVICES\n"
        );
        assert_eq!(
            render_stack_list(&stacks, Some("{{.Name}}:{{.Services}}"))
                .unwrap_or_else(|e| panic!("{e}")),
            "shop2:3\nshop10:1\n"
        );
    }
}
