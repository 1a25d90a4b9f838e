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

pub use super::kernels::{
    Accumulated, Accumulation, DTW_ALONE, DTW_ONE, FEATURE_ONE, Features, Meta, accumulate,
    band_dots, dot_q, quantise,
};
use super::kernels::{CpuKernels, DOT_UNIT, Kernels, dtw_fixed};
use super::{Cancel, Cancelled};
use ndarray::{Array2, Axis};
use rayon::prelude::*;

/// Feature rows of one stream, wherever they are kept: in memory ([`Features`]), or in a
/// spill file with only each frame's [`Meta`] in memory ([`SpilledFeatures`]). Costs are
/// computed on blocks of rows fetched with [`FeatureRows::select`].
pub trait FeatureRows: Send + Sync + std::fmt::Debug {
    /// Frames.
    fn rows(&self) -> usize;
    /// Values per frame.
    fn dim(&self) -> usize;
    fn meta(&self) -> Meta<'_>;
    /// Rows `idx`, in that order, in memory.
    fn select(&self, idx: &[usize]) -> Features;
    /// All rows, when they are in memory already.
    fn in_memory(&self) -> Option<&Features> {
        None
    }
    /// Rows `r`, in memory.
    fn range(&self, r: std::ops::Range<usize>) -> Features {
        self.select(&r.collect::<Vec<_>>())
    }
}

impl FeatureRows for Features {
    fn rows(&self) -> usize {
        self.len()
    }

    fn dim(&self) -> usize {
        self.d
    }

    fn meta(&self) -> Meta<'_> {
        Features::meta(self)
    }

    fn select(&self, idx: &[usize]) -> Features {
        Features::select(self, idx)
    }

    fn in_memory(&self) -> Option<&Features> {
        Some(self)
    }
}

/// Somewhere to keep bytes outside memory (the element gives a temp file): appended in order,
/// read back at their offsets from any thread.
pub trait RowSpill: Send + Sync + std::fmt::Debug {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

/// Where an analysis may keep features: `spill(bytes)` gives a spill for features of that
/// many bytes, or `None` to keep them in memory.
pub trait Spills: Sync + std::fmt::Debug {
    fn spill(&self, bytes: usize) -> Option<Box<dyn RowSpill>>;
}

/// Every feature stays in memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemory;

impl Spills for InMemory {
    fn spill(&self, _bytes: usize) -> Option<Box<dyn RowSpill>> {
        None
    }
}

/// Feature rows in a spill file (little-endian `i16`s, row after row), each frame's [`Meta`]
/// in memory: a long input's features cost memory independent of its length. A row that
/// cannot be read back is taken as flat (the spill reports the failure to its owner).
#[derive(Debug)]
pub struct SpilledFeatures {
    d: usize,
    flat: Vec<bool>,
    mean: Vec<f32>,
    spill: Box<dyn RowSpill>,
}

/// Rows built and written at a time.
const SPILL_BLOCK: usize = 4096;

impl SpilledFeatures {
    /// [`Features::build`] into `spill`; `None` (nothing kept) if writing fails.
    pub fn build(
        n: usize,
        d: usize,
        f: &(impl Fn(usize, &mut [f32]) -> (f32, f32) + Sync),
        mut spill: Box<dyn RowSpill>,
    ) -> Option<SpilledFeatures> {
        let (mut flat, mut mean) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut bytes = Vec::new();
        for b in 0..n.div_ceil(SPILL_BLOCK) {
            let lo = b * SPILL_BLOCK;
            let block = Features::build((n - lo).min(SPILL_BLOCK), d, |i, out| f(lo + i, out));
            bytes.clear();
            bytes.extend(block.q.iter().flat_map(|v| v.to_le_bytes()));
            spill.append(&bytes).ok()?;
            flat.extend_from_slice(&block.flat);
            mean.extend_from_slice(&block.mean);
        }
        Some(SpilledFeatures {
            d,
            flat,
            mean,
            spill,
        })
    }
}

impl FeatureRows for SpilledFeatures {
    fn rows(&self) -> usize {
        self.flat.len()
    }

    fn dim(&self) -> usize {
        self.d
    }

    fn meta(&self) -> Meta<'_> {
        Meta {
            flat: &self.flat,
            mean: &self.mean,
        }
    }

    fn select(&self, idx: &[usize]) -> Features {
        let d = self.d;
        let mut q = vec![0i16; idx.len() * d];
        let mut flat: Vec<bool> = idx.iter().map(|&i| self.flat[i]).collect();
        let mut bytes = Vec::new();
        // Runs of consecutive rows are read at once.
        let mut k = 0;
        while k < idx.len() {
            let mut e = k + 1;
            while e < idx.len() && idx[e] == idx[e - 1] + 1 {
                e += 1;
            }
            bytes.resize((e - k) * d * 2, 0);
            let offset = (idx[k] * d * 2) as u64;
            match self.spill.read_at(&mut bytes, offset) {
                Ok(()) => {
                    for (v, b) in q[k * d..e * d].iter_mut().zip(bytes.chunks_exact(2)) {
                        *v = i16::from_le_bytes([b[0], b[1]]);
                    }
                }
                Err(_) => flat[k..e].iter_mut().for_each(|f| *f = true),
            }
            k = e;
        }
        Features {
            q,
            d,
            flat,
            mean: idx.iter().map(|&i| self.mean[i]).collect(),
        }
    }
}

/// Features of `n` frames built by `f` (as [`Features::build`]): in a spill from `spills` when
/// it gives one for their size, else (or if the spill fails) in memory.
pub fn build_features(
    n: usize,
    d: usize,
    spills: &dyn Spills,
    f: impl Fn(usize, &mut [f32]) -> (f32, f32) + Sync,
) -> std::sync::Arc<dyn FeatureRows> {
    if let Some(spill) = spills.spill(n * d * 2)
        && let Some(s) = SpilledFeatures::build(n, d, &f, spill)
    {
        return std::sync::Arc::new(s);
    }
    std::sync::Arc::new(Features::build(n, d, f))
}

/// Cost of showing bg frame `j` for fg frame `i`, from the dot product of their normalised
/// features: `1 - NCC` for textured frames (0 = same image up to gain and offset, 1 = unrelated,
/// 2 = inverted). Two flat frames (black, fades) cost by how far their brightness differs; a
/// flat frame against a textured one costs 1.
#[inline]
fn cell_cost(dot: i32, fg: Meta<'_>, i: usize, bg: Meta<'_>, j: usize) -> f32 {
    match (fg.flat[i], bg.flat[j]) {
        (false, false) => (1.0 - dot as f32 * DOT_UNIT).clamp(0.0, 2.0),
        (true, true) => ((fg.mean[i] - bg.mean[j]).abs() / 64.0).min(1.0),
        _ => 1.0,
    }
}

/// The cost of one cell.
pub fn cost_at(fg: &Features, i: usize, bg: &Features, j: usize) -> f32 {
    cell_cost(dot_q(fg.row(i), bg.row(j)), fg.meta(), i, bg.meta(), j)
}

/// The costs of row `i` from its dot products with bg frames `lo..`.
pub fn costs_from_dots(fg: Meta<'_>, i: usize, bg: Meta<'_>, lo: usize, dots: &[i32]) -> Vec<f32> {
    dots.iter()
        .zip(lo..)
        .map(|(&d, j)| cell_cost(d, fg, i, bg, j))
        .collect()
}

#[cfg(test)]
/// The full cost matrix (fg x bg).
pub fn cost_matrix(fg: &Features, bg: &Features) -> Array2<f32> {
    cost_matrix_with(fg, bg, &CpuKernels)
}

/// The full cost matrix (fg x bg), its dot products from `dots`.
pub fn cost_matrix_with(fg: &Features, bg: &Features, dots: &dyn Kernels) -> Array2<f32> {
    let (n, m) = (fg.len(), bg.len());
    let d = dots.band_dots(fg, bg, &vec![0; n], m);
    let mut c = Array2::zeros((n, m));
    if m == 0 {
        return c;
    }
    c.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(d.par_chunks(m))
        .enumerate()
        .for_each(|(i, (mut row, dots))| {
            for ((j, x), &dot) in row.iter_mut().enumerate().zip(dots) {
                *x = cell_cost(dot, fg.meta(), i, bg.meta(), j);
            }
        });
    c
}

/// bg frames sampled per fg frame for the median cost of its row, at most.
pub const MEDIAN_SAMPLES: usize = 1024;

/// Rows of a band whose dot products are computed together.
const BAND_BLOCK: usize = 256;

/// bg frames sampled per fg frame for its median, at least (when there are as many).
pub const MEDIAN_SAMPLES_MIN: usize = 256;

/// Cells above which the cost matrix is not computed whole: the alignment runs on every
/// `f`-th frame of both streams first and then in a band around that path (memory and time
/// linear in the length instead of quadratic).
pub const FULL_CELLS: usize = 1 << 22;

/// Cost cells up to which [`align_features`] aligns on the whole matrix at once (about 40 s
/// of both streams at 25 fps); beyond, coarse to fine, which finds the same path at a
/// fraction of the cost.
pub const WHOLE_CELLS: usize = 1 << 20;

/// The costs DTW looks at: for every fg frame `i`, the bg frames `lo(i)..hi(i)` (a band that
/// moves forward; the whole row for short inputs), plus what distinctiveness and clamping need
/// outside the band.
#[derive(Debug, Clone, PartialEq)]
pub struct Costs {
    m: usize,
    lo: Vec<usize>,
    /// Offset of each row in `data`; `n + 1` entries.
    start: Vec<usize>,
    data: Vec<f32>,
    /// Median cost of each row over all bg frames (or [`MEDIAN_SAMPLES`] spread over them).
    median: Vec<f32>,
    /// Cost of bg frame 0 and of the last bg frame, per row.
    ends: Vec<(f32, f32)>,
}

fn median_of(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, med, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    *med
}

impl Costs {
    /// A whole matrix.
    pub fn from_matrix(c: &Array2<f32>) -> Costs {
        let (n, m) = c.dim();
        let median = c
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|row| median_of(sampled(n, m).map(|j| row[j]).collect()))
            .collect();
        Costs {
            m,
            lo: vec![0; n],
            start: (0..=n).map(|i| i * m).collect(),
            data: c.iter().copied().collect(),
            median,
            ends: (0..n)
                .map(|i| {
                    if m == 0 {
                        (1.0, 1.0)
                    } else {
                        (c[(i, 0)], c[(i, m - 1)])
                    }
                })
                .collect(),
        }
    }

    /// The costs of a band: row `i` covers bg frames `band[i].0..band[i].1`.
    pub fn banded(fg: &dyn FeatureRows, bg: &dyn FeatureRows, band: &[(usize, usize)]) -> Costs {
        Self::banded_with(fg, bg, band, &CpuKernels)
    }

    /// [`Costs::banded`] with the dot products from `dots`.
    pub fn banded_with(
        fg: &dyn FeatureRows,
        bg: &dyn FeatureRows,
        band: &[(usize, usize)],
        dots: &dyn Kernels,
    ) -> Costs {
        Self::banded_with_medians(fg, bg, band, dots, None)
    }

    /// [`Costs::banded_with`], taking each row's median cost from `medians` when it has one per
    /// fg frame (from an alignment of the same streams at a slightly different footprint,
    /// where they hardly differ) instead of sampling them again.
    pub fn banded_with_medians(
        fg: &dyn FeatureRows,
        bg: &dyn FeatureRows,
        band: &[(usize, usize)],
        dots: &dyn Kernels,
        medians: Option<&[f32]>,
    ) -> Costs {
        let (n, m) = (fg.rows(), bg.rows());
        let (fm, bm) = (fg.meta(), bg.meta());
        // bg frame 0 and the last, whose costs every row keeps.
        let ends_bg = bg.select(&[0, m.saturating_sub(1)][..m.min(2)]);
        // Every row holds at least one cell, inside the matrix.
        let band: Vec<(usize, usize)> = band
            .iter()
            .map(|&(lo, hi)| {
                if m == 0 {
                    return (0, 0);
                }
                let lo = lo.min(m.saturating_sub(1));
                (lo, hi.clamp(lo + 1, m.max(lo + 1)))
            })
            .collect();
        let band = band.as_slice();
        let mut start = Vec::with_capacity(n + 1);
        let mut at = 0;
        for &(lo, hi) in band {
            start.push(at);
            at += hi.saturating_sub(lo);
        }
        start.push(at);
        // Dot products in blocks of rows, each a rectangle as wide as its widest row from each
        // row's start (what a GPU computes in one go), of which each row keeps its own part;
        // blocks keep a few wide rows (a cut, the open ends) from widening every row.
        let mut all: Vec<(usize, Vec<i32>)> = Vec::with_capacity(n.div_ceil(BAND_BLOCK));
        let mut ends: Vec<(f32, f32)> = Vec::with_capacity(n);
        for b in 0..n.div_ceil(BAND_BLOCK) {
            let rows = b * BAND_BLOCK..((b + 1) * BAND_BLOCK).min(n);
            let width = band[rows.clone()]
                .iter()
                .map(|&(lo, hi)| hi - lo)
                .max()
                .unwrap_or(0);
            // Only the bg frames this block reaches (what a GPU uploads for it).
            let first = band[rows.clone()].iter().map(|b| b.0).min().unwrap_or(0);
            let end = band[rows.clone()]
                .iter()
                .map(|b| (b.0 + width).min(m))
                .max()
                .unwrap_or(first);
            let starts: Vec<usize> = band[rows.clone()].iter().map(|b| b.0 - first).collect();
            let part = fg.range(rows.clone());
            let near = bg.range(first..end);
            all.push((width, dots.band_dots(&part, &near, &starts, width)));
            ends.extend(rows.enumerate().map(|(k, i)| {
                if m == 0 {
                    (1.0, 1.0)
                } else {
                    let at = |e: usize| {
                        let dot = dot_q(part.row(k), ends_bg.row(e.min(ends_bg.len() - 1)));
                        cell_cost(dot, fm, i, bm, if e == 0 { 0 } else { m - 1 })
                    };
                    (at(0), at(1))
                }
            }));
        }
        let rows: Vec<Vec<f32>> = band
            .par_iter()
            .enumerate()
            .map(|(i, &(lo, hi))| {
                let (width, block) = &all[i / BAND_BLOCK];
                let k = i % BAND_BLOCK;
                let d = &block[k * width..k * width + (hi - lo)];
                costs_from_dots(fm, i, bm, lo, d)
            })
            .collect();
        let median = match medians {
            Some(v) if v.len() == n => v.to_vec(),
            _ => sampled_medians(fg, bg, dots),
        };
        let mut data = Vec::with_capacity(at);
        for row in rows {
            data.extend_from_slice(&row);
        }
        Costs {
            m,
            lo: band.iter().map(|b| b.0).collect(),
            start,
            data,
            median,
            ends,
        }
    }

    /// fg frames.
    pub fn n(&self) -> usize {
        self.lo.len()
    }

    /// bg frames.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Cells held.
    pub fn cells(&self) -> usize {
        self.data.len()
    }

    /// The first bg frame of row `i` and the row's costs from there.
    pub fn row(&self, i: usize) -> (usize, &[f32]) {
        (self.lo[i], &self.data[self.start[i]..self.start[i + 1]])
    }

    /// Rows `r` alone (fg frames `r.start..r.end` as frames `0..`).
    pub fn rows(&self, r: std::ops::Range<usize>) -> Costs {
        let base = self.start[r.start];
        Costs {
            m: self.m,
            lo: self.lo[r.clone()].to_vec(),
            start: self.start[r.start..=r.end]
                .iter()
                .map(|s| s - base)
                .collect(),
            data: self.data[base..self.start[r.end]].to_vec(),
            median: self.median[r.clone()].to_vec(),
            ends: self.ends[r].to_vec(),
        }
    }

    /// The cost of a cell: in the band, or bg frame 0 or the last; `None` elsewhere.
    pub fn get(&self, i: usize, j: usize) -> Option<f32> {
        let (lo, row) = self.row(i);
        if let Some(&c) = j.checked_sub(lo).and_then(|k| row.get(k)) {
            return Some(c);
        }
        match j {
            0 => Some(self.ends[i].0),
            j if j + 1 == self.m => Some(self.ends[i].1),
            _ => None,
        }
    }
}

/// Every row's median cost over the sampled bg frames, in blocks of rows (memory bounded
/// whatever the length).
fn sampled_medians(fg: &dyn FeatureRows, bg: &dyn FeatureRows, dots: &dyn Kernels) -> Vec<f32> {
    let (n, m) = (fg.rows(), bg.rows());
    let cols: Vec<usize> = sampled(n, m).collect();
    if cols.is_empty() {
        return vec![0.0; n];
    }
    let bs = bg.select(&cols);
    let (fm, bm) = (fg.meta(), bg.meta());
    let k = cols.len();
    const BLOCK: usize = 4096;
    let mut out = Vec::with_capacity(n);
    for b in 0..n.div_ceil(BLOCK) {
        let rows = b * BLOCK..((b + 1) * BLOCK).min(n);
        let part = fg.range(rows.clone());
        let d = dots.band_dots(&part, &bs, &vec![0; rows.len()], k);
        let medians: Vec<f32> = rows
            .into_par_iter()
            .zip(d.par_chunks(k))
            .map(|(i, d)| {
                median_of(
                    d.iter()
                        .zip(&cols)
                        .map(|(&x, &j)| cell_cost(x, fm, i, bm, j))
                        .collect(),
                )
            })
            .collect();
        out.extend(medians);
    }
    out
}

/// The bg frames sampled for a row's median among `m`, with `n` rows: all when there are few;
/// at most [`MEDIAN_SAMPLES`]; fewer (down to [`MEDIAN_SAMPLES_MIN`]) when the samples of all
/// rows would exceed [`FULL_CELLS`], so that the medians' cost grows linearly with length.
fn sampled(n: usize, m: usize) -> impl Iterator<Item = usize> {
    let budget = (FULL_CELLS / n.max(1)).clamp(MEDIAN_SAMPLES_MIN, MEDIAN_SAMPLES);
    let k = m.min(budget);
    (0..k).map(move |s| (s * m + m / 2) / k.max(1))
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

/// The fixed-point accumulation of DTW with `p` over `cost`.
pub fn accumulation(cost: &Costs, p: &DtwParams) -> Accumulation {
    let n = cost.n();
    let k = p.max_step.max(1);
    let jump = (p.jump > 0.0 && p.jump.is_finite()).then(|| dtw_fixed(f64::from(p.jump)));
    let mut cells = Vec::with_capacity(cost.cells());
    for i in 0..n {
        let (lo, row) = cost.row(i);
        cells.extend(
            row.iter()
                .zip(lo..)
                .map(|(&c, j)| dtw_fixed(f64::from(c) + line_penalty(p, i, j))),
        );
    }
    // Bands and frame counts are far below 2^32 (a frame index is a u32 in reports too).
    Accumulation {
        lo: cost.lo.iter().map(|&l| l as u32).collect(),
        start: cost.start.iter().map(|&s| s as u32).collect(),
        cells,
        pen: (0..=k)
            .map(|s| dtw_fixed(f64::from(step_penalty(p, s))))
            .collect(),
        jump,
    }
}

#[cfg(test)]
/// The cheapest monotonic path through `cost` with an open begin and end, within its band,
/// accumulated on the CPU.
pub fn dtw(cost: &Costs, p: &DtwParams, cancel: &Cancel) -> Result<Path, Cancelled> {
    dtw_with(cost, p, &CpuKernels, cancel)
}

/// [`dtw`], accumulated by `kernels` (every backend finds the same path).
pub fn dtw_with(
    cost: &Costs,
    p: &DtwParams,
    kernels: &dyn Kernels,
    cancel: &Cancel,
) -> Result<Path, Cancelled> {
    let n = cost.n();
    if n == 0 || cost.m() == 0 || cost.cells() == 0 {
        return Ok(Path {
            bg: Vec::new(),
            cost: Vec::new(),
        });
    }
    let acc = kernels.accumulate(&accumulation(cost, p), cancel)?;
    let (last_lo, _) = cost.row(n - 1);
    // The first cheapest end.
    let mut j = last_lo
        + (0..acc.last.len())
            .min_by_key(|&q| (acc.last[q], q))
            .unwrap_or(0);
    let mut bg = vec![0usize; n];
    for i in (0..n).rev() {
        // An unreachable cell (a band that leaps ahead) points at itself: stay in the band.
        let (lo, row) = cost.row(i);
        let q = j.saturating_sub(lo).min(row.len().saturating_sub(1));
        bg[i] = lo + q;
        j = acc
            .back
            .get(cost.start[i] + q)
            .map_or(lo + q, |&b| b as usize);
    }
    let cost = bg
        .iter()
        .enumerate()
        .map(|(i, &j)| cost.get(i, j).unwrap_or(1.0))
        .collect();
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
pub fn distinctiveness(cost: &Costs, path: &Path) -> Vec<f32> {
    cost.median
        .iter()
        .zip(&path.cost)
        .map(|(&med, &c)| {
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

#[cfg(test)]
/// Two-pass alignment: content alone, then guided by the line the first pass's confident
/// matches lie on. Returns the path and the line (playback speed and offset) found.
pub fn align(
    cost: &Costs,
    max_step: usize,
    priors: Priors,
    cancel: &Cancel,
) -> Result<(Path, Option<Line>), Cancelled> {
    align_with(cost, max_step, priors, &CpuKernels, cancel)
}

/// [`align`], DTW accumulated by `kernels`.
pub fn align_with(
    cost: &Costs,
    max_step: usize,
    priors: Priors,
    kernels: &dyn Kernels,
    cancel: &Cancel,
) -> Result<(Path, Option<Line>), Cancelled> {
    let first = dtw_with(
        cost,
        &DtwParams {
            max_step,
            jump: priors.jump,
            ..Default::default()
        },
        kernels,
        cancel,
    )?;
    let line = path_line(&first.bg, &distinctiveness(cost, &first), CONFIDENT);
    let Some(mut l) = line.filter(|l| l.rate > 0.0) else {
        return Ok((first, line));
    };
    // DTW on `c` guided by `l`, with the priors.
    let guided_on = |c: &Costs, l: Line| {
        dtw_with(
            c,
            &DtwParams {
                max_step: max_step.max(l.rate.ceil() as usize + 1),
                guide: Some(l),
                lambda: priors.lambda,
                mu: priors.mu,
                band: priors.band,
                jump: priors.jump,
            },
            kernels,
            cancel,
        )
    };
    let guided = |l: Line| guided_on(cost, l);
    let mut path = guided(l)?;
    // The first pass wanders where content does not decide, and so does a line fitted to it;
    // a line refitted to the guided path is truer and guides a last pass.
    if let Some(l2) = path_line(&path.bg, &distinctiveness(cost, &path), CONFIDENT)
        .filter(|l2| l2.rate > 0.0 && *l2 != l)
    {
        l = l2;
        path = guided(l)?;
    }
    realign_inside(&mut path, cost, &l, guided_on)?;
    let distinct = distinctiveness(cost, &path);
    clamp_outside(&mut path, cost, &l, &distinct);
    Ok((path, Some(l)))
}

/// The fg frames `line` places inside the bg, aligned again on their own (by `guided`, with the
/// line moved to their first frame), where some fg frames lie before the bg's first frame or
/// after its last. Those show moments the bg lacks, so their costs cannot say where the frames
/// inside start: left in, near-identical frames of a static scene carry the path past the bg
/// frames the first frames inside show, and a monotonic path cannot come back to them. The
/// frames outside then keep their match only as far as the path stays monotonic (the rest take
/// the end frame, as [`clamp_outside`] gives them).
fn realign_inside(
    path: &mut Path,
    cost: &Costs,
    line: &Line,
    guided: impl Fn(&Costs, Line) -> Result<Path, Cancelled>,
) -> Result<(), Cancelled> {
    let (n, m) = (cost.n(), cost.m());
    let at = |i: usize| line.offset + line.rate * i as f64;
    let i0 = (0..n).find(|&i| at(i) >= -0.5).unwrap_or(n);
    let i1 = (i0..n).find(|&i| at(i) > m as f64 - 0.5).unwrap_or(n);
    if (i0 == 0 && i1 == n) || i1 - i0 < 2 || m == 0 {
        return Ok(());
    }
    let inner = guided(
        &cost.rows(i0..i1),
        Line {
            offset: at(i0),
            rate: line.rate,
        },
    )?;
    path.bg[i0..i1].copy_from_slice(&inner.bg);
    path.cost[i0..i1].copy_from_slice(&inner.cost);
    for i in (0..i0).rev() {
        if path.bg[i] > path.bg[i + 1] {
            path.bg[i] = path.bg[i + 1];
            path.cost[i] = cost.get(i, path.bg[i]).unwrap_or(1.0);
        }
    }
    for i in i1..n {
        if path.bg[i] < path.bg[i - 1] {
            path.bg[i] = path.bg[i - 1];
            path.cost[i] = cost.get(i, path.bg[i]).unwrap_or(1.0);
        }
    }
    Ok(())
}

/// The result of [`align_features`].
#[derive(Debug, Clone, PartialEq)]
pub struct Aligned {
    pub path: Path,
    /// Playback speed and offset found.
    pub line: Option<Line>,
    /// Distinctiveness of every fg frame's match.
    pub distinct: Vec<f32>,
    /// Cost cells held by the finest alignment (memory: 8 bytes each).
    pub cells: usize,
    /// Frames taken per step by the coarse alignment (1: the whole matrix at once).
    pub decimation: usize,
    /// Every fg frame's median cost (what its match's distinctiveness is measured against).
    pub medians: Vec<f32>,
}

/// Aligns two feature sequences. Up to [`WHOLE_CELLS`] cells, on the whole cost matrix;
/// beyond, on every `f`-th frame of both first (recursively; `f` at least 2, and enough that
/// the coarse matrix has at most [`FULL_CELLS`] cells), and then in a band of `3f + 16` bg
/// frames either side of that path, so that memory and time grow linearly.
pub fn align_features(
    fg: &dyn FeatureRows,
    bg: &dyn FeatureRows,
    max_step: usize,
    priors: Priors,
    dots: &dyn Kernels,
    cancel: &Cancel,
) -> Result<Aligned, Cancelled> {
    align_within(fg, bg, WHOLE_CELLS, max_step, priors, dots, cancel)
}

/// [`align_features`], on the whole matrix up to `whole` cells.
fn align_within(
    fg: &dyn FeatureRows,
    bg: &dyn FeatureRows,
    whole: usize,
    max_step: usize,
    priors: Priors,
    dots: &dyn Kernels,
    cancel: &Cancel,
) -> Result<Aligned, Cancelled> {
    let (n, m) = (fg.rows(), bg.rows());
    if n.saturating_mul(m) <= whole {
        fn all(f: &dyn FeatureRows) -> std::borrow::Cow<'_, Features> {
            match f.in_memory() {
                Some(x) => std::borrow::Cow::Borrowed(x),
                None => std::borrow::Cow::Owned(f.range(0..f.rows())),
            }
        }
        return align_costs(
            &Costs::from_matrix(&cost_matrix_with(&all(fg), &all(bg), dots)),
            1,
            max_step,
            priors,
            dots,
            cancel,
        );
    }
    let f = ((n as f64 * m as f64 / FULL_CELLS as f64).sqrt().ceil() as usize).max(2);
    let every = |len: usize| (0..len).step_by(f).collect::<Vec<_>>();
    let (fd, bd) = (fg.select(&every(n)), bg.select(&every(m)));
    let coarse = align_within(&fd, &bd, FULL_CELLS, max_step, priors, dots, cancel)?;
    cancel.check()?;
    let band = band_around(&coarse.path.bg, coarse.line, f, n, m, 3 * f + 16);
    align_costs(
        &Costs::banded_with(fg, bg, &band, dots),
        f,
        max_step,
        priors,
        dots,
        cancel,
    )
}

/// Aligns two feature sequences within `radius` bg frames of a path found before (for the
/// same streams at a slightly different footprint): time and memory linear in length. The
/// previous alignment's median costs are reused when given (one per fg frame).
#[allow(clippy::too_many_arguments)]
pub fn align_near(
    fg: &dyn FeatureRows,
    bg: &dyn FeatureRows,
    previous: &[usize],
    medians: Option<&[f32]>,
    radius: usize,
    max_step: usize,
    priors: Priors,
    dots: &dyn Kernels,
    cancel: &Cancel,
) -> Result<Aligned, Cancelled> {
    let band = band_around(previous, None, 1, fg.rows(), bg.rows(), radius);
    let costs = Costs::banded_with_medians(fg, bg, &band, dots, medians);
    align_costs(&costs, 1, max_step, priors, dots, cancel)
}

fn align_costs(
    costs: &Costs,
    decimation: usize,
    max_step: usize,
    priors: Priors,
    dots: &dyn Kernels,
    cancel: &Cancel,
) -> Result<Aligned, Cancelled> {
    cancel.check()?;
    let (path, line) = align_with(costs, max_step, priors, dots, cancel)?;
    let distinct = distinctiveness(costs, &path);
    Ok(Aligned {
        path,
        line,
        distinct,
        cells: costs.cells(),
        decimation,
        medians: costs.median.clone(),
    })
}

/// A band `radius` bg frames either side of a path found on every `f`-th frame, for `n` fg
/// frames over `m` bg frames; moving forward only.
pub fn band_around(
    coarse: &[usize],
    line: Option<Line>,
    f: usize,
    n: usize,
    m: usize,
    radius: usize,
) -> Vec<(usize, usize)> {
    let last = coarse.len().saturating_sub(1);
    let rate = line.map_or(1.0, |l| l.rate);
    let mut band: Vec<(usize, usize)> = (0..n)
        .map(|i| {
            let a = i / f.max(1);
            let t = (i % f.max(1)) as f64 / f.max(1) as f64;
            let centre = match (coarse.get(a), coarse.get(a + 1)) {
                (Some(&p), Some(&q)) => f as f64 * (p as f64 + t * (q as f64 - p as f64)),
                _ => {
                    let p = coarse.get(last).copied().unwrap_or(0);
                    f as f64 * p as f64 + rate * (i as f64 - (f * last) as f64)
                }
            };
            let c = (centre.round().max(0.0) as usize).min(m.saturating_sub(1));
            (c.saturating_sub(radius), (c + radius + 1).min(m))
        })
        .collect();
    for i in 1..band.len() {
        band[i].0 = band[i].0.max(band[i - 1].0);
        band[i].1 = band[i].1.max(band[i - 1].1);
    }
    band
}

/// fg frames that the line places before the bg's first frame or after its last, and whose
/// match is not distinctive, show no bg frame at all: they take the first or the last bg frame
/// (content cannot say which frame they are, and without this the path would spend them on
/// arbitrary early or late frames). A distinctive match stays: the fg may have a cut.
pub fn clamp_outside(path: &mut Path, cost: &Costs, line: &Line, distinct: &[f32]) {
    let m = cost.m();
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
        path.cost[i] = cost.get(i, clamped).unwrap_or(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::features::Feature;

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
        let (p, line) = align(&Costs::from_matrix(&c), 5, Priors::default(), &cancel).unwrap();
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
        let (p, _) = align(&Costs::from_matrix(&c), 4, Priors::default(), &cancel).unwrap();
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
        let (p, _) = align(&Costs::from_matrix(&c), 4, Priors::default(), &cancel).unwrap();
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
        let (p, _) = align(&Costs::from_matrix(&c), 4, Priors::default(), &cancel).unwrap();
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
        // Equal textured features cost 0 up to the fixed point's resolution (values in steps
        // of 2^-14: a 2-value feature's squared norm comes out 4.9e-5 short of one).
        assert!(c[(1, 2)].abs() < 1e-4, "{}", c[(1, 2)]);
        assert!(c[(1, 0)] == 1.0 && c[(0, 0)] == 0.0);
    }

    #[test]
    fn unrelated_costs_are_not_distinctive() {
        let cancel = Cancel::new();
        let c = Array2::from_shape_fn((30, 30), |(i, j)| {
            0.9 + 0.01 * ((i * 7 + j * 13) % 5) as f32
        });
        let (p, _) = align(&Costs::from_matrix(&c), 4, Priors::default(), &cancel).unwrap();
        let d = distinctiveness(&Costs::from_matrix(&c), &p);
        let mean = d.iter().sum::<f32>() / d.len() as f32;
        assert!(mean < 0.05, "{mean}");
        let good = synthetic(30, 60, |i| i + 5);
        let (p, _) = align(&Costs::from_matrix(&good), 4, Priors::default(), &cancel).unwrap();
        let d = distinctiveness(&Costs::from_matrix(&good), &p);
        assert!(d.iter().sum::<f32>() / 30.0 > 0.5);
    }

    /// Features of a long non-repeating "video": a random walk in feature space, so that
    /// neighbouring frames look alike and distant ones do not.
    fn walk(len: usize, d: usize, seed: u32) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut rnd = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut w = vec![0f32; d];
        (0..len)
            .map(|_| {
                for x in w.iter_mut() {
                    *x = 0.9 * *x + rnd();
                }
                w.clone()
            })
            .collect()
    }

    fn feats(rows: &[Vec<f32>], noise: f32, seed: u32) -> Features {
        let mut s = seed;
        let list: Vec<Feature> = rows
            .iter()
            .map(|r| {
                let mut v: Vec<f32> = r
                    .iter()
                    .map(|&x| {
                        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        x + noise * ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
                    })
                    .collect();
                let mean = v.iter().sum::<f32>() / v.len() as f32;
                v.iter_mut().for_each(|x| *x -= mean);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                Feature {
                    v,
                    mean: 100.0,
                    std: 20.0,
                }
            })
            .collect();
        Features::new(&list)
    }

    #[test]
    fn long_inputs_align_in_a_band_like_the_whole_matrix() {
        let cancel = Cancel::new();
        // 3000 fg frames over 3400 bg frames, starting at bg frame 250: 10.2 M cells.
        let scene = walk(3400, 48, 7);
        let bg = feats(&scene, 0.3, 1);
        let truth = |i: usize| 250 + i;
        let fg_rows: Vec<Vec<f32>> = (0..3000).map(|i| scene[truth(i)].clone()).collect();
        let fg = feats(&fg_rows, 0.3, 2);
        let banded = align_features(&fg, &bg, 5, Priors::default(), &CpuKernels, &cancel).unwrap();
        assert!(banded.decimation >= 2, "{}", banded.decimation);
        assert!(banded.cells * 10 < 3000 * 3400, "{} cells", banded.cells);
        let full = Costs::from_matrix(&cost_matrix(&fg, &bg));
        let (whole, _) = align(&full, 5, Priors::default(), &cancel).unwrap();
        let wrong: Vec<usize> = (0..3000)
            .filter(|&i| banded.path.bg[i] != truth(i))
            .collect();
        assert!(
            wrong.is_empty(),
            "{} wrong: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(20)]
        );
        assert!(
            banded.path.bg == whole.bg,
            "the band's path differs from the whole matrix's"
        );
        // The same medians, up to float summation order.
        let d = distinctiveness(&full, &whole);
        let worst = d
            .iter()
            .zip(&banded.distinct)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{worst}");
    }

    /// Bytes in memory, as a spill; reads fail when `broken`.
    #[derive(Debug, Default)]
    struct MemSpill {
        data: Vec<u8>,
        broken: bool,
    }

    impl RowSpill for MemSpill {
        fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.data.extend_from_slice(bytes);
            Ok(())
        }

        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
            let o = offset as usize;
            match self.data.get(o..o + buf.len()) {
                Some(src) if !self.broken => {
                    buf.copy_from_slice(src);
                    Ok(())
                }
                _ => Err(std::io::Error::other("unreadable")),
            }
        }
    }

    /// The same features, built into a spill.
    fn spilled(f: &Features, broken: bool) -> SpilledFeatures {
        let build = |i: usize, out: &mut [f32]| {
            for (o, &q) in out.iter_mut().zip(f.row(i)) {
                *o = f32::from(q) / FEATURE_ONE;
            }
            (f.mean[i], if f.flat[i] { 0.0 } else { 100.0 })
        };
        let spill = Box::new(MemSpill {
            broken,
            ..MemSpill::default()
        });
        SpilledFeatures::build(f.len(), f.d, &build, spill).unwrap()
    }

    #[test]
    fn spilled_features_align_exactly_as_features_in_memory() {
        let cancel = Cancel::new();
        // Long enough for the banded path, with a cut and another rate.
        let scene = walk(3000, 48, 5);
        let bg = feats(&scene, 0.3, 6);
        let truth = |i: usize| 50 + 2 * i + if i < 500 { 0 } else { 200 };
        let fg_rows: Vec<Vec<f32>> = (0..1100).map(|i| scene[truth(i)].clone()).collect();
        let mut fg = feats(&fg_rows, 0.3, 7);
        fg.flat[10] = true;
        let (sfg, sbg) = (spilled(&fg, false), spilled(&bg, false));
        assert_eq!(sfg.range(0..fg.len()).q, fg.q);
        assert_eq!(
            sbg.select(&[7, 3, 4, 2999]).q,
            bg.select(&[7, 3, 4, 2999]).q
        );
        let a = align_features(&fg, &bg, 5, Priors::default(), &CpuKernels, &cancel).unwrap();
        let b = align_features(&sfg, &sbg, 5, Priors::default(), &CpuKernels, &cancel).unwrap();
        assert!(a.decimation >= 2, "{}", a.decimation);
        assert_eq!(a, b);
        let near = |f: &dyn FeatureRows, g: &dyn FeatureRows| {
            align_near(
                f,
                g,
                &a.path.bg,
                None,
                8,
                5,
                Priors::default(),
                &CpuKernels,
                &cancel,
            )
            .unwrap()
        };
        assert_eq!(near(&fg, &bg), near(&sfg, &sbg));
        // Rows that cannot be read back are flat frames.
        let broken = spilled(&fg, true);
        assert!(broken.select(&[0, 1, 2]).flat.iter().all(|&f| f));
    }

    #[test]
    fn long_inputs_at_another_rate_with_a_cut() {
        let cancel = Cancel::new();
        // bg at 2.5x the fg's rate; the fg skips 300 bg frames at fg frame 1500.
        let scene = walk(9000, 48, 11);
        let bg = feats(&scene, 0.3, 3);
        let truth = |i: usize| {
            let j = 100 + (i as f64 * 2.5).round() as usize;
            if i < 1500 { j } else { j + 300 }
        };
        let fg_rows: Vec<Vec<f32>> = (0..3200).map(|i| scene[truth(i)].clone()).collect();
        let fg = feats(&fg_rows, 0.3, 4);
        let a = align_features(&fg, &bg, 5, Priors::default(), &CpuKernels, &cancel).unwrap();
        assert!(a.decimation >= 3, "{}", a.decimation);
        assert!(a.cells * 50 < 3200 * 9000, "{} cells", a.cells);
        let wrong: Vec<usize> = (0..3200)
            .filter(|&i| a.path.bg[i].abs_diff(truth(i)) > 0)
            .collect();
        assert!(
            wrong.len() <= 3,
            "{} wrong: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(20)]
        );
        assert!(a.path.bg.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn a_band_moves_forward_and_stays_in_the_matrix() {
        let b = band_around(&[0, 3, 2, 9], None, 4, 20, 30, 3);
        assert_eq!(b.len(), 20);
        assert!(b.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1));
        assert!(b.iter().all(|&(lo, hi)| lo < hi && hi <= 30));
        // fg 0 at bg 0, fg 4 at bg 12, fg 6 halfway between bg 12 and 8 (kept monotonic).
        assert_eq!(b[0], (0, 4));
        assert_eq!(b[4], (9, 16));
        assert_eq!(b[6], (9, 16));
    }
}
