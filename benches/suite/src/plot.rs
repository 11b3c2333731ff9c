//! The SVG chart of `--plot`: ns/page against pages per call (item 4, with
//! item 1's single call as the last point), with the floor and the peers
//! of item 1 as horizontal lines, both axes logarithmic.

use std::path::Path;

use plotters::prelude::*;

use super::error::BenchError;
use super::figure::Figure;
use super::host::fixture::PAGES;
use super::report::Report;

/// One plotted point: pages per call, median, min, max (ns/page).
type Point = (f64, f64, f64, f64);

fn points(report: &Report) -> Vec<Point> {
    let mut pts: Vec<Point> = report
        .figures
        .iter()
        .filter(|f| f.id.starts_with("sweep.batch_"))
        .filter_map(|f| f.details.get("pages_per_call").map(|b| (*b, f.ours.median, f.ours.min, f.ours.max)))
        .collect();
    if let Some(f) = find(report, "map_kernel_pages.vs_floor") {
        pts.push((PAGES as f64, f.ours.median, f.ours.min, f.ours.max));
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

fn find<'r>(report: &'r Report, id: &str) -> Option<&'r Figure> {
    report.figures.iter().find(|f| f.id == id)
}

/// Horizontal reference lines: (label, ns/page).
fn references(report: &Report) -> Vec<(String, f64)> {
    let mut refs = Vec::new();
    for (id, label) in [
        ("map_kernel_pages.vs_floor", "floor: plain stores"),
        ("map_kernel_pages.vs_x86_64", "x86_64 crate map_to per page"),
        ("map_kernel_pages.vs_host_kernel", "host Linux MAP_POPULATE"),
        ("map_kernel_pages.vs_insert_page_each", "insert_pages, one page per call"),
    ] {
        if let Some(p) = find(report, id).and_then(|f| f.peer.as_ref()) {
            refs.push((label.to_string(), p.value.median));
        }
    }
    refs
}

/// Draws the chart to `path`.
pub fn draw(report: &Report, path: &Path) -> Result<(), BenchError> {
    let out = |reason: String| BenchError::Output { path: path.display().to_string(), reason };
    let pts = points(report);
    if pts.is_empty() {
        return Err(out("no sweep figures to plot (the host suite did not run)".into()));
    }
    let refs = references(report);
    let values = pts.iter().flat_map(|p| [p.2, p.3]).chain(refs.iter().map(|r| r.1));
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let y = (lo / 2.0).max(1e-3)..hi * 2.0;
    let x = 0.7..PAGES as f64 * 1.5;

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| out(e.to_string()))?;
    let caption = format!("map-kernel-pages, 262,144 scattered pages — {}", report.machine.cpu_model);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.clone().log_scale(), y.log_scale())
        .map_err(|e| out(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("pages per call")
        .y_desc("ns per page (median, bars: min–max)")
        .draw()
        .map_err(|e| out(e.to_string()))?;

    let ours = BLUE.stroke_width(2);
    chart
        .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), ours))
        .map_err(|e| out(e.to_string()))?
        .label("ours (full pipeline)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], ours));
    chart
        .draw_series(pts.iter().map(|p| ErrorBar::new_vertical(p.0, p.2, p.1, p.3, BLUE.filled(), 6)))
        .map_err(|e| out(e.to_string()))?;
    chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, BLUE.filled()))).map_err(|e| out(e.to_string()))?;

    let colours = [GREEN, RED, MAGENTA, CYAN];
    for ((label, v), colour) in refs.iter().zip(colours) {
        let style = colour.stroke_width(1);
        chart
            .draw_series(LineSeries::new([(x.start, *v), (x.end, *v)], style))
            .map_err(|e| out(e.to_string()))?
            .label(format!("{label}: {v:.2} ns/page"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| out(e.to_string()))?;
    root.present().map_err(|e| out(e.to_string()))?;
    Ok(())
}
