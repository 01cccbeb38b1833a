//! Host side: one SVG latency histogram per load (and kernel and vhci
//! setting), the contenders overlaid, the deadline marked, counts on a log
//! scale so that a single late transaction stays visible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::row::{Contender, HistLine, Kernel, Load, Vhci};

/// The file an SVG for this group goes to, inside `dir`.
pub fn file_name(kernel: Kernel, vhci: Vhci, load: Load) -> String {
    match vhci {
        Vhci::Fifo50 => format!("timing-{kernel}-{load}.svg"),
        Vhci::Other => format!("timing-{kernel}-{load}-vhci-{vhci}.svg"),
    }
}

fn color(path: Contender) -> RGBColor {
    match path {
        Contender::Usb => RGBColor(0x1f, 0x77, 0xb4),
        Contender::Tty => RGBColor(0xd6, 0x27, 0x28),
        Contender::Libftdi => RGBColor(0x2c, 0xa0, 0x2c),
    }
}

/// Writes one SVG per (kernel, vhci, load) found in `hists` into `dir`;
/// returns the files written.
///
/// # Errors
/// The directory or a file could not be written.
pub fn write_svgs(
    hists: &[HistLine],
    deadline_us: u64,
    dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut groups: BTreeMap<(Kernel, Vhci, Load), Vec<&HistLine>> = BTreeMap::new();
    for h in hists {
        groups
            .entry((h.key.kernel, h.key.vhci, h.key.load))
            .or_default()
            .push(h);
    }
    let mut written = Vec::new();
    for ((kernel, vhci, load), mut lines) in groups {
        lines.sort_by_key(|h| h.key.path);
        let path = dir.join(file_name(kernel, vhci, load));
        let title = format!(
            "request/reply latency, {load}, {kernel} kernel, vhci {vhci} (guest µs, QEMU icount)"
        );
        draw(&path, &title, &lines, deadline_us).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn draw(
    path: &Path,
    title: &str,
    lines: &[&HistLine],
    deadline_us: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let top_us = lines
        .iter()
        .flat_map(|h| h.bins.iter().map(move |&(lo, _)| lo + h.bin_us))
        .max()
        .unwrap_or(0)
        .max(deadline_us)
        .saturating_mul(21)
        / 20;
    let peak = lines
        .iter()
        .flat_map(|h| h.bins.iter().map(|&(_, c)| c))
        .max()
        .unwrap_or(1)
        .max(1);
    let x_max = top_us as f64 / 1e3;
    let y_max = peak as f64 * 2.0;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, (0.8f64..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("transactions per bin")
        .draw()?;
    for h in lines {
        let c = color(h.key.path);
        let w = h.bin_us as f64 / 1e3;
        // Steps: each bin is flat across its width, empty bins drop to the floor.
        let mut points = Vec::with_capacity(h.bins.len() * 4);
        for &(lo, count) in &h.bins {
            let x0 = lo as f64 / 1e3;
            points.extend([
                (x0, 0.8),
                (x0, count as f64),
                (x0 + w, count as f64),
                (x0 + w, 0.8),
            ]);
        }
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))?
            .label(format!("{} (n={})", h.key.path, h.total()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    let d = deadline_us as f64 / 1e3;
    chart
        .draw_series(LineSeries::new(
            vec![(d, 0.8), (d, y_max)],
            BLACK.stroke_width(1),
        ))?
        .label(format!("deadline {deadline_us} µs"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::row::RowKey;
    use super::*;

    #[test]
    fn one_svg_per_load_with_every_path_in_it() {
        let key = |load, path| RowKey {
            kernel: Kernel::Stock,
            load,
            path,
            vhci: Vhci::Fifo50,
        };
        let h = |load, path, bins: Vec<(u64, u64)>| HistLine {
            key: key(load, path),
            bin_us: 50,
            bins,
        };
        let hists = vec![
            h(
                Load::RtBurst,
                Contender::Usb,
                vec![(1950, 1990), (2400, 10)],
            ),
            h(
                Load::RtBurst,
                Contender::Tty,
                vec![(1950, 1900), (3500, 47)],
            ),
            h(Load::Idle, Contender::Usb, vec![(1950, 2000)]),
        ];
        let dir = std::env::temp_dir().join(format!("timing-plot-{}", std::process::id()));
        let files = write_svgs(&hists, 3500, &dir).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["timing-stock-idle.svg", "timing-stock-rt-burst.svg"]
        );
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(
            svg.contains("usb (n=2000)") && svg.contains("tty (n=1947)"),
            "legend"
        );
        assert!(svg.contains("deadline 3500"), "deadline marked");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
