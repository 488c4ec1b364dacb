//! A one-line progress bar on stderr, drawn only when stderr is a terminal (so logs and
//! scripts never see carriage returns). Dropping it ends the line.

use std::io::{IsTerminal, Write};

const WIDTH: usize = 30;

/// `\r[##########                    ] 40/120 replaying`
pub struct Progress {
    total: u64,
    label: &'static str,
    enabled: bool,
}

impl Progress {
    /// A bar towards `total`, shown only on a terminal.
    pub fn new(total: u64, label: &'static str) -> Self {
        Self {
            total,
            label,
            enabled: std::io::stderr().is_terminal() && total > 0,
        }
    }

    /// Redraws the bar at `done`.
    pub fn set(&self, done: u64) {
        if self.enabled {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{}", render(done, self.total, self.label));
            let _ = stderr.flush();
        }
    }
}

impl Drop for Progress {
    /// Ends the bar's line, so what follows (a summary, an error) starts on a fresh one.
    fn drop(&mut self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// The bar's text at `done` of `total` (a total that drifted below `done` shows full).
fn render(done: u64, total: u64, label: &str) -> String {
    let filled = if total == 0 {
        WIDTH
    } else {
        let ratio = done.min(total) as f64 / total as f64;
        (ratio * WIDTH as f64).round() as usize
    };
    format!(
        "[{}{}] {done}/{total} {label}",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion_and_never_overflows() {
        assert_eq!(
            render(0, 10, "replaying"),
            format!("[{}] 0/10 replaying", " ".repeat(30))
        );
        assert_eq!(
            render(4, 10, "replaying"),
            format!("[{}{}] 4/10 replaying", "#".repeat(12), " ".repeat(18))
        );
        assert_eq!(
            render(12, 10, "replaying"),
            format!("[{}] 12/10 replaying", "#".repeat(30))
        );
    }
}
