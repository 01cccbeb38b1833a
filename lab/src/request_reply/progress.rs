//! The progress bar of a run (indicatif; hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `count` transactions, or a spinner for a timed run.
pub(super) fn bar(label: &str, count: Option<u64>) -> ProgressBar {
    let bar = match count {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// Every this many transactions the bar is updated (drawing is not free).
pub(super) const UPDATE_EVERY: u64 = 64;
