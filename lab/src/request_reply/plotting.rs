//! The latency histogram of one or two runs as an SVG plot (plotters).

use std::path::Path;
use std::time::Duration;

use super::report::short;
use super::run::RunResult;

/// A latency histogram per run, with the deadline, as SVG.
pub(super) fn write_svg(
    path: &Path,
    runs: &[&RunResult],
    deadline: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let max_ms = runs
        .iter()
        .flat_map(|r| r.samples.iter().map(|s| s.latency))
        .max()
        .unwrap_or_default()
        .max(deadline)
        .as_secs_f64()
        * 1e3
        * 1.05;
    let bins = 100usize;
    let width = max_ms / bins as f64;
    let hist: Vec<Vec<u32>> = runs
        .iter()
        .map(|r| {
            let mut h = vec![0u32; bins];
            for s in &r.samples {
                h[((s.latency.as_secs_f64() * 1e3 / width) as usize).min(bins - 1)] += 1;
            }
            h
        })
        .collect();
    let peak = hist.iter().flatten().copied().max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("request/reply latency", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_ms, (1f64..peak as f64 * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("transactions")
        .draw()?;
    let colors = [BLUE, RED];
    for (k, (r, h)) in runs.iter().zip(&hist).enumerate() {
        let color = colors[k % colors.len()];
        chart
            .draw_series(LineSeries::new(
                h.iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(i, c)| ((i as f64 + 0.5) * width, f64::from(*c))),
                color.stroke_width(2),
            ))?
            .label(short(&r.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    let d = deadline.as_secs_f64() * 1e3;
    chart
        .draw_series(LineSeries::new(
            vec![(d, 1.0), (d, peak as f64 * 2.0)],
            BLACK.stroke_width(1),
        ))?
        .label("deadline")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
