//! Docker's table printer: the one place that lays out columns.
//!
//! Docker writes every table through Go's `tabwriter` with minimum width 10,
//! padding 3 and blanks as padding: a column is as wide as its widest cell plus
//! 3, and at least 10; the cell after a line's last tab is not padded.
//! [`tabwrite`] is that algorithm (including its rule that only consecutive
//! lines with the same column line up), [`Table`] builds the text from headers
//! and rows, or from a `--format 'table …'` template whose header line is
//! derived the way Docker derives it.

use serde_json::Value;

use super::output::ListFormat;
use super::template::Template;
use super::FormatError;

/// A column is never narrower than this (Go tabwriter `minwidth`).
pub const MIN_WIDTH: usize = 10;
/// Blanks after the widest cell of a column (Go tabwriter `padding`).
pub const PADDING: usize = 3;

/// A table of header cells and rows of cells, rendered like `docker … ls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and no rows yet.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it may have fewer or more cells than there are headers.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table a `--format 'table …'` template makes of `rows`: the header
    /// line is the template run in header mode (see
    /// [`Template::execute_header`]) with column titles from `headers`, each
    /// row is the template run over that row's value; tabs separate cells.
    pub fn from_template(
        template: &Template,
        list: &ListFormat<'_>,
        rows: &[Value],
    ) -> Result<Table, FormatError> {
        let headers = &list.headers;
        let title = |field: &str| headers.name(field);
        let known = |field: &str| headers.declares(field);
        let header_line = template.execute_header(&title);
        let mut table = Table {
            headers: split_cells(&header_line),
            rows: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            table.push(split_cells(&template.execute_row(
                row,
                &known,
                list.row_type,
            )?));
        }
        Ok(table)
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// The header line and one line per row, aligned, each ending in `\n`.
    pub fn render(&self) -> String {
        let mut text = self.headers.join("\t");
        text.push('\n');
        for row in &self.rows {
            text.push_str(&row.join("\t"));
            text.push('\n');
        }
        tabwrite(&text)
    }
}

fn split_cells(line: &str) -> Vec<String> {
    line.split('\t').map(str::to_string).collect()
}

/// Column titles for template fields: the names a command declares (Docker's
/// header map for that listing), and for any other field a name derived from
/// the field itself (see [`derive_header`]).
#[derive(Debug, Clone, Copy)]
pub struct HeaderNames<'a> {
    known: &'a [(&'a str, &'a str)],
}

impl<'a> HeaderNames<'a> {
    /// `known` maps template field names to titles, e.g. `("Self", "")`.
    pub const fn new(known: &'a [(&'a str, &'a str)]) -> HeaderNames<'a> {
        HeaderNames { known }
    }

    /// Whether the command declares `field` (rows may still leave it out).
    pub fn declares(&self, field: &str) -> bool {
        self.known.iter().any(|(f, _)| *f == field)
    }

    /// The title of the column showing `field`.
    pub fn name(&self, field: &str) -> String {
        self.known
            .iter()
            .find(|(f, _)| *f == field)
            .map_or_else(|| derive_header(field), |(_, title)| title.to_string())
    }
}

/// A column title made from a field name: words split where the case changes,
/// upper-cased (`ManagerStatus` → `MANAGER STATUS`, `TLSStatus` →
/// `TLS STATUS`, `NanoCPUs` → `NANO CPUS`, `ID` → `ID`).
pub fn derive_header(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut out = String::with_capacity(field.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next = chars.get(i + 1).copied();
            let next_lower = next.is_some_and(char::is_lowercase);
            // "CPUs": a lone plural "s" after an acronym stays with it.
            let plural_s = next == Some('s') && chars.get(i + 2).is_none_or(|c| !c.is_lowercase());
            let acronym_ends = prev.is_uppercase() && next_lower && !plural_s;
            if prev.is_lowercase() || prev.is_ascii_digit() || acronym_ends {
                out.push(' ');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Go's `tabwriter` with Docker's settings over `text`: cells end at a tab,
/// lines at a newline; a run of consecutive lines that all have a cell in some
/// column forms a block, and the column is as wide as the block's widest cell
/// plus [`PADDING`], at least [`MIN_WIDTH`]. Widths count characters.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, &mut widths, 0, lines.len(), &mut out);
    out
}

fn cell_width(cell: &str) -> usize {
    cell.chars().count()
}

/// Go's `tabwriter.(*Writer).format`: lays out lines `line0..line1` knowing
/// the widths of the columns left of `widths.len()`.
fn format_block(
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    mut line0: usize,
    line1: usize,
    out: &mut String,
) {
    let column = widths.len();
    // A line has a cell in `column` when a tab ends it: the last cell does not count.
    let has_column = |line: &Vec<&str>| column + 1 < line.len();
    let mut this = line0;
    while this < line1 {
        if !has_column(&lines[this]) {
            this += 1;
            continue;
        }
        write_lines(lines, widths, line0, this, out);
        line0 = this;
        let mut width = MIN_WIDTH;
        while this < line1 && has_column(&lines[this]) {
            width = width.max(cell_width(lines[this][column]) + PADDING);
            this += 1;
        }
        widths.push(width);
        format_block(lines, widths, line0, this, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, widths, line0, line1, out);
}

fn write_lines(lines: &[Vec<&str>], widths: &[usize], from: usize, to: usize, out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(to).skip(from) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(&width) = widths.get(j) {
                let fill = width.saturating_sub(cell_width(cell));
                out.extend(std::iter::repeat_n(' ', fill));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_node_ls_layout() {
        let mut table = Table::new(&[
            "ID",
            "HOSTNAME",
            "STATUS",
            "AVAILABILITY",
            "MANAGER STATUS",
            "ENGINE VERSION",
        ]);
        table.push(
            [
                "k3n8s2j5d0q9x1m4v7b6c2z8a *",
                "host1",
                "Ready",
                "Active",
                "Leader",
                "0.1.0",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            table.render(),
            "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n\
             k3n8s2j5d0q9x1m4v7b6c2z8a *   host1      Ready     Active         Leader           0.1.0\n"
        );
    }

    /// `cell` followed by blanks up to `width` characters.
    fn pad(cell: &str, width: usize) -> String {
        format!("{cell:<width$}")
    }

    #[test]
    fn columns_are_widest_cell_plus_three_and_at_least_ten() {
        let mut table = Table::new(&["A", "B", "C"]);
        table.push(vec!["x".into(), "a-much-longer-cell".into(), "last".into()]);
        // A: 1 + 3 < 10, so 10; B: 18 + 3 = 21.
        let expected = format!(
            "{}{}C\n{}{}last\n",
            pad("A", 10),
            pad("B", 21),
            pad("x", 10),
            pad("a-much-longer-cell", 21)
        );
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn last_column_is_not_padded_and_empty_cells_still_take_their_width() {
        let mut table = Table::new(&["NAME", "NOTE"]);
        table.push(vec![String::new(), String::new()]);
        assert_eq!(table.render(), format!("NAME      NOTE\n{}\n", pad("", 10)));
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new(&["HOST", "X"]);
        table.push(vec!["höst-ünïcode".into(), "1".into()]);
        // 12 characters (16 bytes) + 3.
        let expected = format!("{}X\n{}1\n", pad("HOST", 15), pad("höst-ünïcode", 15));
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn only_consecutive_lines_align_like_go_tabwriter() {
        // The line without a tab ends the first block; "x" is laid out alone.
        let expected = format!(
            "{}b\n{}c\nno tabs here\n{}y\n",
            pad("a", 17),
            pad("long-cell-here", 17),
            pad("x", 10)
        );
        assert_eq!(
            tabwrite("a\tb\nlong-cell-here\tc\nno tabs here\nx\ty\n"),
            expected
        );
    }

    #[test]
    fn header_names_known_first_then_derived() {
        let names = HeaderNames::new(&[("Self", ""), ("ID", "ID")]);
        assert_eq!(names.name("Self"), "");
        assert_eq!(names.name("ManagerStatus"), "MANAGER STATUS");
        assert_eq!(derive_header("EngineVersion"), "ENGINE VERSION");
        assert_eq!(derive_header("ID"), "ID");
        assert_eq!(derive_header("TLSStatus"), "TLS STATUS");
        assert_eq!(derive_header("NanoCPUs"), "NANO CPUS");
        assert_eq!(derive_header("Hostname"), "HOSTNAME");
        assert_eq!(derive_header("CreatedAt"), "CREATED AT");
    }

    #[test]
    fn table_from_template_derives_headers() {
        let template = Template::parse(r"{{.ID}}\t{{.Hostname}}\t{{.ManagerStatus}}")
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = [
            json!({"ID": "abc", "Hostname": "host1", "ManagerStatus": "Leader"}),
            json!({"ID": "defghi", "Hostname": "a-longer-hostname", "ManagerStatus": ""}),
        ];
        let list = ListFormat {
            default_table: "",
            headers: HeaderNames::new(&[]),
            row_type: "row",
        };
        let table = Table::from_template(&template, &list, &rows).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(table.headers(), ["ID", "HOSTNAME", "MANAGER STATUS"]);
        assert_eq!(
            table.render(),
            "ID        HOSTNAME            MANAGER STATUS\n\
             abc       host1               Leader\n\
             defghi    a-longer-hostname   \n"
        );
    }
}
