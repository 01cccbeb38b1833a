//! The side-by-side table of the `compare` case: the request/reply loop over
//! the userspace driver (`usb`) and the kernel path (`tty`) on the same
//! emulated chip, idle and with a CPU hog per vCPU, with the ratio tty/usb.

use std::fmt::Write as _;

use crate::proto::MetricLine;

fn get<'a>(m: &'a MetricLine, key: &str) -> Option<&'a str> {
    m.values
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Formats the `compare` metrics as a table; `None` if there are none.
pub fn render(metrics: &[MetricLine]) -> Option<String> {
    let rows: Vec<&MetricLine> = metrics.iter().filter(|m| m.name == "compare").collect();
    if rows.is_empty() {
        return None;
    }
    let cols = ["p50_us", "p99_us", "p999_us", "max_us"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "==== request/reply: userspace driver (usb) vs kernel path (tty), same emulated chip"
    );
    let _ = writeln!(
        out,
        "  (QEMU is a logic model, not a timing model: no latency timer, no baud pacing)"
    );
    let _ = writeln!(
        out,
        "  {:<6} {:<5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "load", "path", "n", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "missed"
    );
    for m in &rows {
        let _ = write!(
            out,
            "  {:<6} {:<5} {:>7}",
            get(m, "load").unwrap_or("?"),
            get(m, "path").unwrap_or("?"),
            get(m, "n").unwrap_or("?")
        );
        for c in cols {
            let _ = write!(out, " {:>9}", get(m, c).unwrap_or("?"));
        }
        let _ = writeln!(out, " {:>7}", get(m, "misses").unwrap_or("?"));
    }
    for load in ["idle", "hog"] {
        let find = |path: &str| {
            rows.iter()
                .find(|m| get(m, "load") == Some(load) && get(m, "path") == Some(path))
        };
        if let (Some(usb), Some(tty)) = (find("usb"), find("tty")) {
            let _ = write!(out, "  {load:<6} ratio tty/usb:");
            for c in cols {
                let ratio = match (
                    get(usb, c).and_then(|v| v.parse::<f64>().ok()),
                    get(tty, c).and_then(|v| v.parse::<f64>().ok()),
                ) {
                    (Some(u), Some(t)) if u > 0.0 => format!("{:.2}x", t / u),
                    _ => "?".into(),
                };
                let _ = write!(out, " {}={ratio}", c.trim_end_matches("_us"));
            }
            let _ = writeln!(out);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str, load: &str, p50: u32) -> MetricLine {
        MetricLine {
            name: "compare".into(),
            values: [
                ("path", path.to_string()),
                ("load", load.into()),
                ("n", "10".into()),
                ("p50_us", p50.to_string()),
                ("p99_us", "9".into()),
                ("p999_us", "9".into()),
                ("max_us", "9".into()),
                ("misses", "0".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }
    }

    #[test]
    fn renders_rows_and_ratios() {
        let t = render(&[m("usb", "idle", 100), m("tty", "idle", 250)]).unwrap();
        assert!(t.contains("idle   ratio tty/usb: p50=2.50x"), "{t}");
        assert!(render(&[]).is_none());
    }
}
