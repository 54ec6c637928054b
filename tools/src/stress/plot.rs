//! The SVG plots of a matrix run (drawn from the median rows).

use std::path::Path;

/// End-to-end latency p50/p90/p99/p99.9 (ms) against channels, log-log.
/// `pts`: (channels, [p50, p90, p99, p99.9]); points with a missing value are left out.
pub fn plot_latency(path: &Path, pts: &[(f64, [f64; 4])]) -> Result<(), String> {
    use plotters::prelude::*;
    let pts: Vec<(f64, [f64; 4])> = pts
        .iter()
        .copied()
        .filter(|p| p.1.iter().all(|v| v.is_finite() && *v > 0.0))
        .collect();
    if pts.is_empty() {
        return Err("no latency points".into());
    }
    let xmin = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) / 1.5;
    let xmax = pts.iter().map(|p| p.0).fold(0.0, f64::max) * 1.5;
    let ymin = pts
        .iter()
        .flat_map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        / 2.0;
    let ymax = pts.iter().flat_map(|p| p.1).fold(0.0, f64::max) * 2.0;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "End-to-end latency (simulator send -> OSC received), sample mode, F=1",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin..xmax).log_scale(), (ymin..ymax).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("channels")
        .y_desc("latency (ms, log)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let names = ["p50", "p90", "p99", "p99.9"];
    let colors = [BLUE, GREEN, MAGENTA, RED];
    for (i, name) in names.iter().enumerate() {
        let c = colors[i];
        let series: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1[i])).collect();
        chart
            .draw_series(LineSeries::new(series.clone(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(series.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Delivered fraction against channels, one line per group (e.g. mode and F).
/// `groups`: (legend, [(channels, delivered)]).
pub fn plot_delivered(path: &Path, groups: &[(String, Vec<(f64, f64)>)]) -> Result<(), String> {
    use plotters::prelude::*;
    let groups: Vec<(String, Vec<(f64, f64)>)> = groups
        .iter()
        .map(|(k, pts)| {
            let pts = pts
                .iter()
                .copied()
                .filter(|p| p.0 > 0.0 && p.1.is_finite())
                .collect();
            (k.clone(), pts)
        })
        .filter(|g: &(String, Vec<(f64, f64)>)| !g.1.is_empty())
        .collect();
    if groups.is_empty() {
        return Err("no points".into());
    }
    let xs = groups.iter().flat_map(|g| g.1.iter().map(|p| p.0));
    let xmin = xs.clone().fold(f64::INFINITY, f64::min) / 1.5;
    let xmax = xs.fold(0.0, f64::max) * 1.5;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Delivered fraction (rows received / rows sent) vs channels",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin..xmax).log_scale(), -0.02f64..1.08f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("channels")
        .y_desc("delivered")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, GREEN, MAGENTA, RED, CYAN, BLACK, YELLOW];
    for (i, (key, pts)) in groups.iter().enumerate() {
        let c = colors[i % colors.len()];
        let mut pts = pts.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(key.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Stage-by-stage latency: one band per scenario, one horizontal bar per span reaching its
/// p99 (light) with its p50 drawn over it (dark), log time axis.
pub fn plot_stages(path: &Path, stats: &[super::stages::StageStat]) -> Result<(), String> {
    use super::stages::{short_name, STAGES};
    use plotters::prelude::*;
    let stats: Vec<_> = stats
        .iter()
        .filter(|t| t.p50_ms.is_finite() && t.p99_ms.is_finite() && t.p99_ms > 0.0)
        .collect();
    if stats.is_empty() {
        return Err("no stage quantiles".into());
    }
    let mut scenarios: Vec<&str> = Vec::new();
    for t in &stats {
        if !scenarios.contains(&t.scenario.as_str()) {
            scenarios.push(&t.scenario);
        }
    }
    // Slots per band: one per span plus a gap.
    let per = STAGES.len() as i32 + 1;
    let n = scenarios.len() as i32;
    let xmin = stats
        .iter()
        .map(|t| t.p50_ms.min(t.p99_ms))
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        / 2.0;
    // The bars end at 60 % of the (log) width: the legend sits in the rest.
    let top = stats.iter().map(|t| t.p99_ms).fold(0.0, f64::max) * 1.2;
    let xmax = xmin * (top / xmin).powf(1.0 / 0.6);
    let height = (120 + n * per * 9).clamp(300, 4000) as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let labels: Vec<String> = scenarios.iter().map(|s| short_name(s)).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Where the latency goes: p50 (dark) and p99 (light) per stage, medians over runs",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(190)
        .build_cartesian_2d((xmin..xmax).log_scale(), (0..n * per).into_segmented())
        .map_err(|e| e.to_string())?;
    // Band of scenario i (top to bottom) starts at slot (n - 1 - i) * per; its label sits on
    // the middle slot.
    let label_of = |v: &SegmentValue<i32>| {
        let (SegmentValue::CenterOf(v) | SegmentValue::Exact(v)) = *v else {
            return String::new();
        };
        if v.rem_euclid(per) != per / 2 {
            return String::new();
        }
        let i = n - 1 - v / per;
        labels.get(i as usize).cloned().unwrap_or_default()
    };
    chart
        .configure_mesh()
        .x_desc("latency (ms, log)")
        .x_label_formatter(&|x| format!("{x:.2}"))
        .y_labels((n * per) as usize)
        .y_label_formatter(&label_of)
        .disable_y_mesh()
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, GREEN, MAGENTA, RED, BLACK];
    for (k, (span, _)) in STAGES.iter().enumerate() {
        let c = colors[k % colors.len()];
        let slot = |sc: &str| {
            let i = scenarios.iter().position(|s| *s == sc).unwrap_or(0) as i32;
            (n - 1 - i) * per + (per - 1 - k as i32)
        };
        let mine: Vec<_> = stats.iter().filter(|t| t.span == *span).collect();
        chart
            .draw_series(mine.iter().map(|t| {
                let y = slot(&t.scenario);
                Rectangle::new(
                    [
                        (xmin, SegmentValue::Exact(y)),
                        (t.p99_ms, SegmentValue::Exact(y + 1)),
                    ],
                    c.mix(0.3).filled(),
                )
            }))
            .map_err(|e| e.to_string())?
            .label(format!("{span} (p99 light, p50 dark)"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], c.filled()));
        chart
            .draw_series(mine.iter().map(|t| {
                let y = slot(&t.scenario);
                Rectangle::new(
                    [
                        (xmin, SegmentValue::Exact(y)),
                        (t.p50_ms.max(xmin), SegmentValue::Exact(y + 1)),
                    ],
                    c.filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
