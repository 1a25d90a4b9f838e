// SPDX-License-Identifier: MIT

//! Which bg frame each fg frame shows: costs between footprint features, then dynamic time
//! warping (DTW) with an open begin and an open end.
//!
//! The fg is the timeline: every fg frame `i` gets one bg frame `j(i)`, with
//! `0 <= j(i) - j(i-1) <= max_step` (monotonic; bg at up to `max_step` times the fg's rate).
//! A first pass follows content alone; the line its confident matches lie on (robust slope and
//! intercept: playback speed and offset) then guides the second pass: steps other than the two
//! whole numbers around that speed pay a penalty, and so does straying from the line, softly
//! and capped. Where content decides, it wins; where it does not (static shots), the path stays
//! on the line instead of wandering. Neither prior favours one of the two step sizes, so a
//! fractional speed (drift, 24 vs 60 fps) is followed without bias.

use super::features::Feature;
use super::{Cancel, Cancelled};
use ndarray::{Array2, Axis};
use rayon::prelude::*;

/// Feature vectors of one stream, one row per frame.
#[derive(Debug, Clone)]
pub struct Features {
    pub v: Array2<f32>,
    pub flat: Vec<bool>,
    pub mean: Vec<f32>,
}

impl Features {
    pub fn new(list: &[Feature]) -> Features {
        let d = list.first().map(|f| f.v.len()).unwrap_or(0);
        let mut v = Array2::zeros((list.len(), d));
        for (mut row, f) in v.axis_iter_mut(Axis(0)).zip(list) {
            for (a, &b) in row.iter_mut().zip(&f.v) {
                *a = b;
            }
        }
        Features {
            v,
            flat: list.iter().map(Feature::is_flat).collect(),
            mean: list.iter().map(|f| f.mean).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.flat.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flat.is_empty()
    }
}

/// Cost of showing bg frame `j` for fg frame `i`: `1 - NCC` for textured frames (0 = same
/// image up to gain and offset, 1 = unrelated, 2 = inverted). Two flat frames (black, fades)
/// cost by how far their brightness differs; a flat frame against a textured one costs 1.
pub fn cost_matrix(fg: &Features, bg: &Features) -> Array2<f32> {
    let mut c = fg.v.dot(&bg.v.t());
    c.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for (j, x) in row.iter_mut().enumerate() {
                *x = match (fg.flat[i], bg.flat[j]) {
                    (false, false) => (1.0 - *x).clamp(0.0, 2.0),
                    (true, true) => ((fg.mean[i] - bg.mean[j]).abs() / 64.0).min(1.0),
                    _ => 1.0,
                };
            }
        });
    c
}

/// A line `j = offset + rate · i` in (fg frame, bg frame) space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub offset: f64,
    pub rate: f64,
}

/// DTW settings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DtwParams {
    /// Largest bg step between consecutive fg frames.
    pub max_step: usize,
    /// The guide line; `None` for content alone.
    pub guide: Option<Line>,
    /// Penalty of a step `d` whole steps outside `floor(rate)..=ceil(rate)`: `lambda · d²`.
    pub lambda: f32,
    /// Penalty of a cell `e` bg frames off the line: `mu · min(1, (e / band)²)`.
    pub mu: f32,
    pub band: f32,
    /// Penalty of a forward jump longer than `max_step` (a cut in the fg); infinite or 0 for
    /// none.
    pub jump: f32,
}

/// A monotonic path: the bg frame of every fg frame and its cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub bg: Vec<usize>,
    pub cost: Vec<f32>,
}

fn step_penalty(p: &DtwParams, step: usize) -> f32 {
    match p.guide {
        None => 0.0,
        Some(l) => {
            let (lo, hi, s) = (l.rate.floor(), l.rate.ceil(), step as f64);
            let d = if s < lo {
                lo - s
            } else if s > hi {
                s - hi
            } else {
                0.0
            };
            p.lambda * (d * d) as f32
        }
    }
}

#[inline]
fn line_penalty(p: &DtwParams, i: usize, j: usize) -> f64 {
    match p.guide {
        None => 0.0,
        Some(l) => {
            let e = (j as f64 - l.offset - l.rate * i as f64) / f64::from(p.band.max(1e-3));
            f64::from(p.mu) * (e * e).min(1.0)
        }
    }
}

/// The cheapest monotonic path through `cost` (fg x bg) with an open begin and end.
pub fn dtw(cost: &Array2<f32>, p: &DtwParams, cancel: &Cancel) -> Result<Path, Cancelled> {
    let (n, m) = cost.dim();
    if n == 0 || m == 0 {
        return Ok(Path {
            bg: Vec::new(),
            cost: Vec::new(),
        });
    }
    let k = p.max_step.max(1);
    let pen: Vec<f32> = (0..=k).map(|s| step_penalty(p, s)).collect();
    let jump = (p.jump > 0.0 && p.jump.is_finite()).then_some(f64::from(p.jump));
    // The bg frame each cell came from.
    let mut back = vec![0u32; n * m];
    // Running minimum of the previous row, for jumps: (value, column).
    let mut lead = vec![(f64::INFINITY, 0u32); m];
    let mut prev: Vec<f64> = cost
        .row(0)
        .iter()
        .enumerate()
        .map(|(j, &c)| f64::from(c) + line_penalty(p, 0, j))
        .collect();
    let mut cur = vec![0f64; m];
    for i in 1..n {
        if i % 256 == 0 {
            cancel.check()?;
        }
        let row = cost.row(i);
        let b = &mut back[i * m..(i + 1) * m];
        if jump.is_some() {
            let mut run = (f64::INFINITY, 0u32);
            for (j, l) in lead.iter_mut().enumerate() {
                if prev[j] < run.0 {
                    run = (prev[j], j as u32);
                }
                *l = run;
            }
        }
        for j in 0..m {
            let (mut best, mut arg) = (f64::INFINITY, j as u32);
            for s in 0..=k.min(j) {
                let v = prev[j - s] + f64::from(pen[s]);
                if v < best {
                    best = v;
                    arg = (j - s) as u32;
                }
            }
            if let Some(jp) = jump
                && j > k
            {
                let (v, from) = lead[j - k - 1];
                if v + jp < best {
                    best = v + jp;
                    arg = from;
                }
            }
            cur[j] = best + f64::from(row[j]) + line_penalty(p, i, j);
            b[j] = arg;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let mut j = (0..m)
        .min_by(|&a, &b| prev[a].total_cmp(&prev[b]))
        .unwrap_or(0);
    let mut bg = vec![0usize; n];
    for i in (0..n).rev() {
        bg[i] = j;
        j = back[i * m + j] as usize;
    }
    let cost = bg.iter().enumerate().map(|(i, &j)| cost[(i, j)]).collect();
    Ok(Path { bg, cost })
}

/// The playback speed a path shows (bg frames per fg frame), from the frames whose match is
/// distinctive (`weight` ≥ `min_weight`; all frames when too few are): the median slope between
/// such frames at least a quarter of their span apart, robust to stretches where the path
/// wanders. Within 0.5 % of a whole number, that number.
pub fn path_rate(path: &[usize], weight: &[f32], min_weight: f32) -> Option<f64> {
    let mut pts: Vec<usize> = (0..path.len())
        .filter(|&i| weight.get(i).is_some_and(|&w| w >= min_weight))
        .collect();
    if pts.len() < 4 {
        pts = (0..path.len()).collect();
    }
    if pts.len() < 2 {
        return None;
    }
    let span = pts[pts.len() - 1] - pts[0];
    let gap = (span / 4).max(1);
    let mut slopes: Vec<f64> = Vec::new();
    for (a, &i) in pts.iter().enumerate() {
        let b = a + pts[a..].partition_point(|&k| k < i + gap);
        if let Some(&k) = pts.get(b) {
            slopes.push((path[k] as f64 - path[i] as f64) / (k - i) as f64);
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let r = slopes[slopes.len() / 2];
    let whole = r.round();
    Some(if whole > 0.0 && (r - whole).abs() <= 0.005 * whole {
        whole
    } else {
        r
    })
}

/// Per-frame distinctiveness of the chosen bg frame: how far below the row's median cost it
/// lies, relative to that median, in [0, 1]. Unrelated content scores near 0.
pub fn distinctiveness(cost: &Array2<f32>, path: &Path) -> Vec<f32> {
    cost.axis_iter(Axis(0))
        .into_par_iter()
        .zip(path.cost.par_iter())
        .map(|(row, &c)| {
            let mut r: Vec<f32> = row.to_vec();
            let mid = r.len() / 2;
            let (_, med, _) = r.select_nth_unstable_by(mid, f32::total_cmp);
            let med = *med;
            if med <= 1e-6 {
                0.0
            } else {
                ((med - c) / med).clamp(0.0, 1.0)
            }
        })
        .collect()
}

/// Distinctiveness above which a frame's match counts as confident.
pub const CONFIDENT: f32 = 0.3;

/// Weights of the second pass's priors, in cost units (1 - NCC per frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priors {
    /// For a forward jump (a cut in the fg), in both passes.
    pub jump: f32,
    /// Per whole step outside the speed found, squared.
    pub lambda: f32,
    /// For straying from the line, at most.
    pub mu: f32,
    /// bg frames off the line at which the line penalty reaches `mu`.
    pub band: f32,
}

impl Default for Priors {
    fn default() -> Self {
        Priors {
            jump: 0.5,
            lambda: 0.05,
            mu: 0.02,
            band: 4.0,
        }
    }
}

/// The line the confident matches of a path lie on: [`path_rate`] for the slope, the median
/// offset of those matches for the intercept.
pub fn path_line(path: &[usize], weight: &[f32], min_weight: f32) -> Option<Line> {
    let rate = path_rate(path, weight, min_weight)?;
    let mut pts: Vec<usize> = (0..path.len())
        .filter(|&i| weight.get(i).is_some_and(|&w| w >= min_weight))
        .collect();
    if pts.len() < 4 {
        pts = (0..path.len()).collect();
    }
    let mut offs: Vec<f64> = pts
        .iter()
        .map(|&i| path[i] as f64 - rate * i as f64)
        .collect();
    offs.sort_by(f64::total_cmp);
    let rough = Line {
        offset: offs[offs.len() / 2],
        rate,
    };
    // The median slope is quantised (whole bg frames over the gap): refine by least squares
    // over the points near the rough line.
    let inliers: Vec<(f64, f64)> = pts
        .iter()
        .map(|&i| (i as f64, path[i] as f64))
        .filter(|&(x, y)| (y - rough.offset - rough.rate * x).abs() <= 2.0)
        .collect();
    let n = inliers.len() as f64;
    if n < 4.0 {
        return Some(rough);
    }
    let (mx, my) = (
        inliers.iter().map(|p| p.0).sum::<f64>() / n,
        inliers.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = inliers.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = inliers.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return Some(rough);
    }
    let rate = sxy / sxx;
    let whole = rate.round();
    let rate = if whole > 0.0 && (rate - whole).abs() <= 0.005 * whole {
        whole
    } else {
        rate
    };
    Some(Line {
        offset: my - rate * mx,
        rate,
    })
}

/// Two-pass alignment: content alone, then guided by the line the first pass's confident
/// matches lie on. Returns the path and the line (playback speed and offset) found.
pub fn align(
    cost: &Array2<f32>,
    max_step: usize,
    priors: Priors,
    cancel: &Cancel,
) -> Result<(Path, Option<Line>), Cancelled> {
    let first = dtw(
        cost,
        &DtwParams {
            max_step,
            jump: priors.jump,
            ..Default::default()
        },
        cancel,
    )?;
    let line = path_line(&first.bg, &distinctiveness(cost, &first), CONFIDENT);
    let Some(mut l) = line.filter(|l| l.rate > 0.0) else {
        return Ok((first, line));
    };
    let guided = |l: Line| {
        dtw(
            cost,
            &DtwParams {
                max_step: max_step.max(l.rate.ceil() as usize + 1),
                guide: Some(l),
                lambda: priors.lambda,
                mu: priors.mu,
                band: priors.band,
                jump: priors.jump,
            },
            cancel,
        )
    };
    let mut path = guided(l)?;
    // The first pass wanders where content does not decide, and so does a line fitted to it;
    // a line refitted to the guided path is truer and guides a last pass.
    if let Some(l2) = path_line(&path.bg, &distinctiveness(cost, &path), CONFIDENT)
        .filter(|l2| l2.rate > 0.0 && *l2 != l)
    {
        l = l2;
        path = guided(l)?;
    }
    let distinct = distinctiveness(cost, &path);
    clamp_outside(&mut path, cost, &l, &distinct);
    Ok((path, Some(l)))
}

/// fg frames that the line places before the bg's first frame or after its last, and whose
/// match is not distinctive, show no bg frame at all: they take the first or the last bg frame
/// (content cannot say which frame they are, and without this the path would spend them on
/// arbitrary early or late frames). A distinctive match stays: the fg may have a cut.
pub fn clamp_outside(path: &mut Path, cost: &Array2<f32>, line: &Line, distinct: &[f32]) {
    let m = cost.ncols();
    if m == 0 {
        return;
    }
    for (i, j) in path.bg.iter_mut().enumerate() {
        if distinct.get(i).is_some_and(|&d| d >= CONFIDENT) {
            continue;
        }
        let at = line.offset + line.rate * i as f64;
        let clamped = if at < -0.5 {
            0
        } else if at > m as f64 - 0.5 {
            m - 1
        } else {
            continue;
        };
        *j = clamped;
        path.cost[i] = cost[(i, clamped)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cost matrix whose cheapest cells follow `truth`, with noise elsewhere.
    fn synthetic(n: usize, m: usize, truth: impl Fn(usize) -> usize) -> Array2<f32> {
        let mut s = 12345u32;
        Array2::from_shape_fn((n, m), |(i, j)| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (s >> 8) as f32 / (1u32 << 24) as f32 * 0.2;
            let d = (j as f32 - truth(i) as f32).abs();
            (d * 0.15).min(0.8) + noise * 0.3
        })
    }

    #[test]
    fn follows_an_offset_and_a_faster_bg() {
        let cancel = Cancel::new();
        // bg 2.5x the fg's rate, fg starting at bg frame 40
        let truth = |i: usize| 40 + (i as f64 * 2.5).round() as usize;
        let c = synthetic(60, 250, truth);
        let (p, line) = align(&c, 5, Priors::default(), &cancel).unwrap();
        assert!((line.unwrap().rate - 2.5).abs() < 0.1, "{line:?}");
        for (i, &j) in p.bg.iter().enumerate() {
            assert!(
                (j as i64 - truth(i) as i64).abs() <= 1,
                "fg {i}: {j} vs {}",
                truth(i)
            );
        }
        assert!(p.bg.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn fg_frames_before_the_bg_starts_take_its_first_frame() {
        let cancel = Cancel::new();
        // fg frame i shows bg frame i - 15: the first 15 fg frames precede the bg.
        let truth = |i: usize| i as i64 - 15;
        let mut s = 99u32;
        let c = Array2::from_shape_fn((60, 50), |(i, j)| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (s >> 8) as f32 / (1u32 << 24) as f32 * 0.3;
            if truth(i) < 0 {
                0.5 + noise
            } else {
                ((j as f32 - truth(i) as f32).abs() * 0.15).min(0.8) + noise * 0.1
            }
        });
        let (p, _) = align(&c, 4, Priors::default(), &cancel).unwrap();
        for (i, &j) in p.bg.iter().enumerate() {
            let want = truth(i).max(0) as usize;
            assert!(
                j.abs_diff(want) <= usize::from(truth(i) >= 0),
                "fg {i}: {j} {:?}",
                p.bg
            );
        }
        assert!(p.bg[..15].iter().all(|&j| j == 0), "{:?}", p.bg);
    }

    #[test]
    fn fitted_lines_are_not_quantised() {
        // 5 % slow: whole-frame steps over any gap quantise the slope.
        let path: Vec<usize> = (0..110)
            .map(|i| 15 + (i as f64 * 0.95).round() as usize)
            .collect();
        let l = path_line(&path, &[1.0; 110], CONFIDENT).unwrap();
        assert!((l.rate - 0.95).abs() < 0.002, "{l:?}");
        assert!((l.offset - 15.0).abs() < 0.3, "{l:?}");
        let same: Vec<usize> = (0..50).map(|i| 7 + i).collect();
        let l = path_line(&same, &[1.0; 50], CONFIDENT).unwrap();
        assert_eq!((l.rate, l.offset), (1.0, 7.0));
    }

    #[test]
    fn a_cut_in_the_fg_is_a_jump() {
        let cancel = Cancel::new();
        // fg frames 0..30 show bg 10..40, frames 30..60 show bg 80..110.
        let truth = |i: usize| if i < 30 { 10 + i } else { 50 + i };
        let c = synthetic(60, 130, truth);
        let (p, _) = align(&c, 4, Priors::default(), &cancel).unwrap();
        let wrong: Vec<usize> = (0..60).filter(|&i| p.bg[i] != truth(i)).collect();
        assert!(wrong.is_empty(), "{wrong:?} {:?}", p.bg);
    }

    #[test]
    fn flat_costs_keep_a_steady_pace() {
        let cancel = Cancel::new();
        // content decides only at the ends; in between every cell costs the same
        let n = 50;
        let mut c = Array2::from_elem((n, 80), 0.5f32);
        for i in [0, 1, 2, n - 3, n - 2, n - 1] {
            c[(i, 10 + i)] = 0.0;
        }
        let (p, _) = align(&c, 4, Priors::default(), &cancel).unwrap();
        for (i, &j) in p.bg.iter().enumerate() {
            assert_eq!(j, 10 + i, "{:?}", p.bg);
        }
    }

    #[test]
    fn flat_frames_match_by_brightness() {
        let f = |v: Vec<f32>, mean: f32, std: f32| Feature { v, mean, std };
        let fg = Features::new(&[f(vec![0.0, 0.0], 16.0, 0.0), f(vec![0.6, 0.8], 100.0, 30.0)]);
        let bg = Features::new(&[
            f(vec![0.0, 0.0], 16.0, 0.5),
            f(vec![0.0, 0.0], 200.0, 0.0),
            f(vec![0.6, 0.8], 90.0, 20.0),
        ]);
        let c = cost_matrix(&fg, &bg);
        assert_eq!(c[(0, 0)], 0.0);
        assert_eq!(c[(0, 1)], 1.0);
        assert_eq!(c[(0, 2)], 1.0);
        assert!(c[(1, 2)].abs() < 1e-6);
    }

    #[test]
    fn unrelated_costs_are_not_distinctive() {
        let cancel = Cancel::new();
        let c = Array2::from_shape_fn((30, 30), |(i, j)| {
            0.9 + 0.01 * ((i * 7 + j * 13) % 5) as f32
        });
        let (p, _) = align(&c, 4, Priors::default(), &cancel).unwrap();
        let d = distinctiveness(&c, &p);
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        assert!(mean < 0.05, "{mean}");
        let good = synthetic(30, 60, |i| i + 5);
        let (p, _) = align(&good, 4, Priors::default(), &cancel).unwrap();
        let d = distinctiveness(&good, &p);
        assert!(d.iter().sum::<f32>() / 30.0 > 0.5);
    }
}
