//! How results reach the operator: aligned plain-text tables, key/value blocks and JSON.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// Rows under a header, columns padded to their widest cell, two spaces apart.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per header).
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, one line per row, no trailing spaces.
    pub fn render(&self) -> String {
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let mut widths = vec![0; self.headers.len()];
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line.iter()) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (i, (cell, width)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints [`Table::render`] on stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Prints `label  value` lines with the labels aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    for (label, value) in fields {
        println!("{label:<width$}  {value}");
    }
}

/// `2026-11-22 07:00:00Z`: short, sortable, always UTC.
pub fn time_cell(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// A time cell, or `-`.
pub fn opt_time_cell(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "-".into(), time_cell)
}

/// RFC 3339, for JSON.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// RFC 3339 or `null`, for JSON.
pub fn opt_rfc3339(at: Option<OffsetDateTime>) -> serde_json::Value {
    at.map_or(serde_json::Value::Null, |t| rfc3339(t).into())
}

/// A text cell: `-` when absent, on one line, at most `max` characters (`…` marks a cut).
pub fn cell(text: Option<&str>, max: usize) -> String {
    let Some(text) = text else {
        return "-".into();
    };
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A duration in milliseconds, in the unit that reads best (`850ms`, `2.40s`, `3.1m`).
pub fn millis_cell(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1_000.0 => format!("{ms:.0}ms"),
        Some(ms) if ms < 60_000.0 => format!("{:.2}s", ms / 1_000.0),
        Some(ms) => format!("{:.1}m", ms / 60_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn tables_align_columns_on_the_widest_cell_without_trailing_spaces() {
        let mut table = Table::new(&["ID", "STATE", "LAST ERROR"]);
        table.push(vec!["1".into(), "processed".into(), "-".into()]);
        table.push(vec!["22".into(), "dead".into(), "broker said no".into()]);
        assert_eq!(
            table.render(),
            "ID  STATE      LAST ERROR\n\
             1   processed  -\n\
             22  dead       broker said no\n"
        );
    }

    #[test]
    fn long_or_multiline_text_is_cut_to_one_line() {
        assert_eq!(cell(Some("a\nb"), 10), "a b");
        assert_eq!(cell(Some("abcdefghij"), 5), "abcd…");
        assert_eq!(cell(None, 5), "-");
    }

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(
            time_cell(datetime!(2026-11-22 08:00:05 +01:00)),
            "2026-11-22 07:00:05Z"
        );
        assert_eq!(millis_cell(Some(850.4)), "850ms");
        assert_eq!(millis_cell(Some(2_400.0)), "2.40s");
        assert_eq!(millis_cell(Some(186_000.0)), "3.1m");
        assert_eq!(millis_cell(None), "-");
    }
}
