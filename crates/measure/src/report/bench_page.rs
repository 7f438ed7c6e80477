//! The page of `anpr bench --html`: the text report's figures, a latency histogram per stage
//! and frames per second over the run, as inline SVG drawn by `plotters`.

use std::fmt::Write;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::{escape, page};
use crate::bench::BenchReport;

/// Bars of a latency histogram.
const BINS: usize = 30;
/// Size of each chart, pixels.
const CHART: (u32, u32) = (540, 280);

/// The whole page for `report`; an error only if a chart cannot be drawn.
pub fn bench_page(report: &BenchReport) -> Result<String> {
    let mut body = String::new();
    let text = report.to_string();
    // The summary lines of the text report, as they are.
    body.push_str("<div id=\"summary\">\n");
    for line in text.lines().take(3) {
        let _ = writeln!(body, "<p>{}</p>", escape(line.trim()));
    }
    body.push_str("</div>\n<h2>Latency per stage (ms)</h2>\n<table id=\"stages\">\n<tr><th class=\"l\">stage</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>mean</th></tr>\n");
    for (name, p, _) in report.stages() {
        let _ = writeln!(
            body,
            "<tr><td class=\"l\">{name}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            p.p50, p.p90, p.p99, p.max, p.mean
        );
    }
    body.push_str("</table>\n<h2>Latency histograms</h2>\n");
    for (name, _, values) in report.stages() {
        if name == "vehicles" && !report.vehicle_detector {
            continue;
        }
        let svg = histogram_svg(&format!("{name}, ms per frame"), values)?;
        let _ = writeln!(body, "<figure class=\"histogram\">{svg}</figure>");
    }
    let _ = writeln!(
        body,
        "<h2>Frames per second over the run</h2>\n<figure id=\"fps\">{}</figure>",
        fps_svg(&report.samples.done_s, report.wall_s)?
    );
    Ok(page("anpr bench", &body))
}

fn chart_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw a chart of the bench report: {e}")
}

/// Counts of `values` in [`BINS`] equal bins from 0 to their maximum: (bin width, counts).
#[must_use]
pub(crate) fn bins(values: &[f64]) -> (f64, Vec<u32>) {
    let max = values.iter().copied().fold(0.0, f64::max);
    let width = if max > 0.0 { max / BINS as f64 } else { 1.0 };
    let mut counts = vec![0u32; BINS];
    for v in values {
        counts[((v / width) as usize).min(BINS - 1)] += 1;
    }
    (width, counts)
}

fn histogram_svg(title: &str, values: &[f64]) -> Result<String> {
    let (width, counts) = bins(values);
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..width * BINS as f64, 0u32..top + top / 10 + 1)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("ms")
            .y_desc("frames")
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(i, &c)| {
                        Rectangle::new(
                            [(i as f64 * width, 0), ((i + 1) as f64 * width, c)],
                            RGBColor(70, 110, 180).filled(),
                        )
                    }),
            )
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// Frames done per second in consecutive windows of the run, each a fortieth of it but at
/// least five frames' time on average (so a slow run is not drawn as spikes), the last one
/// ending with the run: (window middle in seconds, frames per second).
#[must_use]
pub(crate) fn fps_series(done_s: &[f64], wall_s: f64) -> Vec<(f64, f64)> {
    let per_frame = wall_s / done_s.len().max(1) as f64;
    let window = (wall_s / 40.0).max(5.0 * per_frame).max(1e-3);
    let n = ((wall_s / window).ceil() as usize).max(1);
    let mut counts = vec![0u32; n];
    for t in done_s {
        counts[((t / window) as usize).min(n - 1)] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            // The last window ends with the run.
            let from = i as f64 * window;
            let span = (wall_s - from).clamp(1e-3, window);
            (from + span / 2.0, f64::from(c) / span)
        })
        .collect()
}

fn fps_svg(done_s: &[f64], wall_s: f64) -> Result<String> {
    let series = fps_series(done_s, wall_s);
    let top = series.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (CHART.0 * 2, CHART.1)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("frames per second", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..wall_s.max(1e-3), 0.0..top * 1.1)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc("fps")
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(LineSeries::new(
                series,
                RGBColor(200, 80, 40).stroke_width(2),
            ))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Percentiles, Samples};

    #[test]
    fn latencies_fall_in_thirty_equal_bins_up_to_the_slowest() {
        let (w, c) = bins(&[0.0, 1.0, 2.9, 3.0, 30.0]);
        assert!((w - 1.0).abs() < 1e-9);
        assert_eq!(c.len(), BINS);
        assert_eq!((c[0], c[1], c[2], c[3], c[29]), (1, 1, 1, 1, 1));
        assert_eq!(c.iter().sum::<u32>(), 5);
        assert_eq!(bins(&[]).1.iter().sum::<u32>(), 0);
    }

    #[test]
    fn frames_per_second_are_counted_per_window() {
        // 400 frames in 10 s: windows of a fortieth (0.25 s, more than five frames' time).
        let mut done: Vec<f64> = (0..400).map(|i| f64::from(i) / 40.0).collect();
        let s = fps_series(&done, 10.0);
        assert_eq!(s.len(), 40);
        assert!(s.iter().all(|(_, fps)| (fps - 40.0).abs() < 1e-9), "{s:?}");
        // 8 frames in 40 s: windows of five frames' time (25 s), so two of them.
        done = vec![1.0, 2.0, 3.0, 4.0, 5.0, 30.0, 35.0, 39.0];
        let slow = fps_series(&done, 40.0);
        assert_eq!(slow.len(), 2);
        assert!((slow[0].1 - 5.0 / 25.0).abs() < 1e-9, "{slow:?}");
        assert!(
            (slow[1].1 - 3.0 / 15.0).abs() < 1e-9,
            "the last window ends at 40 s"
        );
    }

    #[test]
    fn the_page_holds_the_text_figures_and_one_chart_per_stage() {
        let t: Vec<f64> = (1..=40).map(f64::from).collect();
        let report = BenchReport {
            input: "<clip>.mp4".into(),
            frames: 40,
            failed: 0,
            width: 1280,
            height: 720,
            wall_s: 4.0,
            fps: 10.0,
            cpu_cores: 1.5,
            peak_rss_mb: 300.0,
            vehicle_ms: Percentiles::default(),
            plate_detect_ms: Percentiles::of(t.clone()),
            plate_read_ms: Percentiles::of(t.clone()),
            total_ms: Percentiles::of(t.clone()),
            intra_threads: 1,
            vehicle_detector: false,
            type_classifier: false,
            concurrent: false,
            parallel_frames: 1,
            samples: Samples {
                vehicle_ms: vec![0.0; 40],
                plate_detect_ms: t.clone(),
                plate_read_ms: t.clone(),
                total_ms: t.clone(),
                done_s: t.iter().map(|v| v / 10.0).collect(),
            },
        };
        let html = bench_page(&report).unwrap();
        assert!(html.contains("&lt;clip&gt;.mp4") && !html.contains("<clip>"));
        assert!(html.contains("10.00 fps"));
        assert_eq!(html.matches("<figure class=\"histogram\"><svg").count(), 3);
        assert!(html.contains("<figure id=\"fps\"><svg"));
        assert!(
            html.contains("<td>21.0</td>"),
            "the p50 of 1..40 ms, nearest rank"
        );
        assert!(
            !html.contains("src=\"http") && !html.contains("href=\"http"),
            "nothing to fetch"
        );
    }
}
