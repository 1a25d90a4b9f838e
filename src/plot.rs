// SPDX-License-Identifier: MIT

//! A picture of an alignment: the frame mapping with fg time across and bg time up, the line
//! of constant offset through its first match for reference, and each fg frame's match cost in
//! a panel below, so drift, jumps and weak stretches show at a glance. Drawn with `plotters`
//! into an SVG file; no GStreamer types.

use crate::report::Report;
use plotters::prelude::*;
use std::path::Path;

/// Size of the picture in px.
const SIZE: (u32, u32) = (960, 720);

/// Frame `i`'s time in seconds: its PTS when the report has it, else its index over `fps`.
fn seconds(pts: Option<u64>, i: usize, fps: f64) -> f64 {
    pts.map_or(i as f64 / fps, |p| p as f64 / 1e9)
}

/// Frames per second of a stream, from the PTS of its first and last mapped frames (else 25).
fn rate(times: &[(usize, Option<u64>)]) -> f64 {
    let known: Vec<(usize, u64)> = times.iter().filter_map(|&(i, p)| Some((i, p?))).collect();
    match (known.first(), known.last()) {
        (Some(a), Some(b)) if b.0 > a.0 && b.1 > a.1 => {
            (b.0 - a.0) as f64 * 1e9 / (b.1 - a.1) as f64
        }
        _ => 25.0,
    }
}

/// Draws `report`'s mapping and costs into `path` (SVG). Errors name what failed.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), String> {
    let frames = &report.frames;
    if frames.is_empty() {
        return Err("the report maps no frames".into());
    }
    let fg_fps = rate(&frames.iter().map(|e| (e.fg, e.fg_pts)).collect::<Vec<_>>());
    let bg_fps = rate(&frames.iter().map(|e| (e.bg, e.bg_pts)).collect::<Vec<_>>());
    let points: Vec<(f64, f64)> = frames
        .iter()
        .map(|e| {
            (
                seconds(e.fg_pts, e.fg, fg_fps),
                seconds(e.bg_pts, e.bg, bg_fps),
            )
        })
        .collect();
    let costs: Vec<(f64, f64)> = frames
        .iter()
        .zip(&points)
        .filter_map(|(e, p)| Some((p.0, f64::from(e.cost?))))
        .collect();
    let (x0, x1) = span(points.iter().map(|p| p.0));
    let (y0, y1) = span(points.iter().map(|p| p.1));
    // The line of constant offset through the first match.
    let offset = points[0].1 - points[0].0;
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 7 / 10);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!(
                "fg at ({:.1}, {:.1}) x{:.3} in the bg; mapping by {}",
                report.x, report.y, report.scale, report.mapping
            ),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("fg time (s)")
        .y_desc("bg time (s)")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            [(x0, x0 + offset), (x1, x1 + offset)],
            ShapeStyle::from(&BLACK.mix(0.4)).stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label(format!("constant offset {offset:+.3} s"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    chart
        .draw_series(LineSeries::new(points.iter().copied(), &BLUE))
        .map_err(|e| err(&e))?
        .label("bg frame shown under each fg frame")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;

    let c1 = costs.iter().map(|c| c.1).fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, 0.0..c1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("fg time (s)")
        .y_desc("match cost")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(costs, &RED))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The range of `v`, widened a little (and to at least a tenth of a second).
fn span(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let pad = ((hi - lo) * 0.02).max(0.05);
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Entry, Footprint, Stream};

    fn report(frames: Vec<Entry>) -> Report {
        Report {
            version: crate::report::VERSION,
            fg: Stream {
                width: 64,
                height: 48,
                frames: frames.len(),
            },
            bg: Stream {
                width: 128,
                height: 96,
                frames: 100,
            },
            x: 10.0,
            y: 20.0,
            scale: 0.5,
            footprint: Footprint {
                x: 10,
                y: 20,
                width: 32,
                height: 24,
            },
            spatial_confidence: Some(0.99),
            spatial_calibrated: Some(0.9),
            temporal_confidence: Some(0.9),
            mean_cost: Some(0.01),
            mapping: "content".into(),
            device: "cpu".into(),
            analysis_seconds: 0.1,
            timings: Default::default(),
            segments: Vec::new(),
            frames,
        }
    }

    #[test]
    fn the_mapping_and_its_costs_are_drawn_into_an_svg() {
        // fg at 25 fps shows bg frames from 1 s on, at 30 fps.
        let frames = (0..50)
            .map(|i| Entry {
                fg: i,
                fg_pts: Some(i as u64 * 40_000_000),
                bg: 30 + i * 6 / 5,
                bg_pts: Some((30 + i * 6 / 5) as u64 * 33_333_333),
                cost: Some(0.01 + (i % 7) as f32 * 0.001),
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("vidkompy-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("map.svg");
        write_svg(&report(frames), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        for text in [
            "fg time (s)",
            "bg time (s)",
            "match cost",
            "constant offset +1.000 s",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        // Two panels' series: the mapping, the offset line and the costs.
        assert!(svg.matches("<polyline").count() >= 3);
    }

    #[test]
    fn an_empty_report_is_an_error() {
        let path = std::env::temp_dir().join("vidkompy-never-written.svg");
        assert!(write_svg(&report(Vec::new()), &path).is_err());
        assert!(!path.exists());
    }
}
