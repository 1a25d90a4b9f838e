// SPDX-License-Identifier: MIT

//! The analysis's heavy kernels and the fixed-point data they work on: the cost matrix's dot
//! products ([`band_dots`] over [`Features`]), DTW's accumulation ([`accumulate`] of an
//! [`Accumulation`]) and the spatial refinement's correlations ([`window_dots`] of
//! [`WindowDots`]), with the trait ([`Kernels`]) through which a backend (`compute::Gpu`)
//! computes them instead of the CPU. All three are integer arithmetic, exact in any order, so
//! every implementation gives the same numbers (and a backend that fails computes them on the
//! CPU instead). A leaf of `align`: it imports only `features` and the cancel flag; `temporal`
//! and `ncc` build on it.

use super::features::{self, Feature, Image};
use super::{Cancel, Cancelled};
use rayon::prelude::*;

/// The kernels one backend provides; the CPU's by default.
pub trait Kernels: Sync + std::fmt::Debug {
    /// As [`band_dots`].
    fn band_dots(&self, fg: &Features, bg: &Features, lo: &[usize], width: usize) -> Vec<i32> {
        band_dots(fg, bg, lo, width)
    }

    /// As [`accumulate`].
    fn accumulate(&self, a: &Accumulation, cancel: &Cancel) -> Result<Accumulated, Cancelled> {
        accumulate(a, cancel)
    }

    /// As [`window_dots`].
    fn window_dots(&self, w: &WindowDots<'_>) -> Vec<i64> {
        window_dots(w)
    }
}

/// The kernels on the CPU (rows, cells and windows in parallel where they are independent).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuKernels;

impl Kernels for CpuKernels {}

/// Fixed-point unit of feature values. A normalised feature's values lie in [-1, 1], so they
/// fit an `i16` at 2^14, and the dot product of two such features (at most about 2^28 in
/// magnitude, any partial sum included) fits an `i32`. Integer dot products are exact and do
/// not depend on summation order, so the CPU and the GPU compute the very same costs.
pub const FEATURE_ONE: f32 = 16384.0;

/// A dot product of two quantised features, back on the unit scale (an exact power of two).
pub(crate) const DOT_UNIT: f32 = 1.0 / (1u64 << 28) as f32;

/// A feature value in fixed point.
#[inline]
pub fn quantise(x: f32) -> i16 {
    (x * FEATURE_ONE).round().clamp(-32767.0, 32767.0) as i16
}

/// The dot product of two quantised features (wrapping, as the GPU's does, should malformed
/// input ever exceed the bound).
#[inline]
pub fn dot_q(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).fold(0i32, |s, (&x, &y)| {
        s.wrapping_add(i32::from(x) * i32::from(y))
    })
}

/// Feature vectors of one stream, one row per frame, in fixed point ([`FEATURE_ONE`]).
#[derive(Debug, Clone)]
pub struct Features {
    /// Row-major, `d` values per frame.
    pub q: Vec<i16>,
    pub d: usize,
    pub flat: Vec<bool>,
    pub mean: Vec<f32>,
}

impl Features {
    pub fn new(list: &[Feature]) -> Features {
        let d = list.first().map(|f| f.v.len()).unwrap_or(0);
        let mut q = vec![0i16; list.len() * d];
        for (row, f) in q.chunks_exact_mut(d.max(1)).zip(list) {
            for (a, &b) in row.iter_mut().zip(&f.v) {
                *a = quantise(b);
            }
        }
        Features {
            q,
            d,
            flat: list.iter().map(Feature::is_flat).collect(),
            mean: list.iter().map(|f| f.mean).collect(),
        }
    }

    /// `n` features of `d` values each, row `i` written by `f`, which returns the frame's mean
    /// and standard deviation (as [`features::normalize_into`] does); rows in parallel.
    pub fn build(n: usize, d: usize, f: impl Fn(usize, &mut [f32]) -> (f32, f32) + Sync) -> Self {
        let mut q = vec![0i16; n * d];
        let stats: Vec<(f32, f32)> = q
            .par_chunks_mut(d.max(1))
            .take(n)
            .enumerate()
            .map(|(i, row)| {
                let mut v = vec![0f32; d];
                let st = f(i, &mut v);
                for (a, &b) in row.iter_mut().zip(&v) {
                    *a = quantise(b);
                }
                st
            })
            .collect();
        Features {
            q,
            d,
            flat: stats.iter().map(|s| s.1 < features::FLAT_STD).collect(),
            mean: stats.iter().map(|s| s.0).collect(),
        }
    }

    pub fn meta(&self) -> Meta<'_> {
        Meta {
            flat: &self.flat,
            mean: &self.mean,
        }
    }

    /// The quantised feature of frame `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &[i16] {
        &self.q[i * self.d..(i + 1) * self.d]
    }

    pub fn len(&self) -> usize {
        self.flat.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flat.is_empty()
    }

    /// Every `f`-th frame.
    pub fn decimate(&self, f: usize) -> Features {
        let idx: Vec<usize> = (0..self.len()).step_by(f.max(1)).collect();
        self.select(&idx)
    }

    /// The frames `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Features {
        Features {
            q: idx.iter().flat_map(|&i| self.row(i)).copied().collect(),
            d: self.d,
            flat: idx.iter().map(|&i| self.flat[i]).collect(),
            mean: idx.iter().map(|&i| self.mean[i]).collect(),
        }
    }
}

/// What costs need of each frame besides its feature: whether it is flat, and its mean.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub flat: &'a [bool],
    pub mean: &'a [f32],
}

/// The dot products of fg row `i` with bg rows `lo[i] .. lo[i] + width` (0 past the last bg
/// row), row-major: a band of the cost matrix before [`costs_from_dots`]. The GPU path computes
/// the same numbers (`compute::Gpu::band_dots`).
pub fn band_dots(fg: &Features, bg: &Features, lo: &[usize], width: usize) -> Vec<i32> {
    let mut out = vec![0i32; lo.len() * width];
    if width == 0 {
        return out;
    }
    out.par_chunks_mut(width)
        .zip(lo)
        .enumerate()
        .for_each(|(i, (row, &l))| dots_row(fg.row(i), bg, l, row));
    out
}

/// One row of [`band_dots`], with AVX2 where the CPU has it (found at run time: the default
/// x86-64 target has only SSE2, which does a quarter of the work per instruction).
fn dots_row(a: &[i16], bg: &Features, lo: usize, row: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { dots_row_avx2(a, bg, lo, row) };
            return;
        }
    }
    dots_row_any(a, bg, lo, row);
}

#[inline(always)]
fn dots_row_any(a: &[i16], bg: &Features, lo: usize, row: &mut [i32]) {
    for (o, j) in row.iter_mut().zip(lo..bg.len()) {
        *o = dot_q(a, bg.row(j));
    }
}

/// [`dots_row_any`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots_row_avx2(a: &[i16], bg: &Features, lo: usize, row: &mut [i32]) {
    dots_row_any(a, bg, lo, row);
}

/// Fixed-point unit of DTW's costs: a cell's cost (its line penalty included) and the step
/// and jump penalties are counted in 2^-32ths (finer than an `f32` cost's own precision above
/// 10^-3, where near-identical frames differ) and accumulated as 64-bit integers, which add
/// exactly in any order, so that every backend finds the very same path. A cell costs at most
/// 2^4 (2 plus its line penalty): 2^28 rows of them fit.
pub const DTW_ONE: f64 = 4_294_967_296.0;

/// Largest cost of one cell or one penalty in fixed point.
const DTW_CELL_MAX: u64 = 1 << 36;

pub(crate) fn dtw_fixed(v: f64) -> u64 {
    // `as` saturates (and maps NaN to 0).
    (v * DTW_ONE).round().clamp(0.0, DTW_CELL_MAX as f64) as u64
}

/// The DTW accumulation over a band in fixed point, what a backend computes: row `i` holds bg
/// frames `lo[i]..lo[i] + (start[i + 1] - start[i])`, its cells' costs at
/// `cells[start[i]..start[i + 1]]`.
///
/// Row 0 is its cells. Every further cell adds its cost to the cheapest of its predecessors:
/// the previous row's cells `j - s` for steps `s` in `0..=max_step` (plus `pen[s]`), and with a
/// `jump` penalty, the cheapest cell before `j - max_step` (plus `jump`); the first one wins a
/// tie, the cell itself is its own predecessor when it has none (and then costs its own cost
/// plus [`DTW_ALONE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accumulation {
    pub lo: Vec<u32>,
    pub start: Vec<u32>,
    pub cells: Vec<u64>,
    /// Penalty of each step `0..=max_step`.
    pub pen: Vec<u64>,
    pub jump: Option<u64>,
}

/// What a cell without predecessors (a band that leaps ahead of the previous row's) adds to
/// its own cost: more than any path through the whole band, so that such a cell never wins
/// over a connected one.
pub const DTW_ALONE: u64 = 1 << 62;

/// The result of an [`Accumulation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accumulated {
    /// The bg frame each cell's path came from, cell by cell as `cells`.
    pub back: Vec<u32>,
    /// The last row's accumulated costs.
    pub last: Vec<u64>,
}

impl Accumulation {
    pub fn rows(&self) -> usize {
        self.lo.len()
    }

    /// Cells of row `i`.
    pub fn row(&self, i: usize) -> std::ops::Range<usize> {
        self.start[i] as usize..self.start[i + 1] as usize
    }

    /// Widest row.
    pub fn width(&self) -> usize {
        (0..self.rows())
            .map(|i| self.row(i).len())
            .max()
            .unwrap_or(0)
    }
}

/// [`Accumulation`] on the CPU. Sums saturate at `u64::MAX`, as the GPU's do.
pub fn accumulate(a: &Accumulation, cancel: &Cancel) -> Result<Accumulated, Cancelled> {
    let n = a.rows();
    let mut back = vec![0u32; a.cells.len()];
    if n == 0 {
        return Ok(Accumulated {
            back,
            last: Vec::new(),
        });
    }
    let k = a.pen.len().saturating_sub(1).max(1);
    let pen = |s: usize| a.pen.get(s).copied().unwrap_or(0);
    let mut prev: Vec<u64> = a.cells[a.row(0)].to_vec();
    for (b, j) in back[a.row(0)].iter_mut().zip(a.lo[0]..) {
        *b = j;
    }
    let mut prev_lo = a.lo[0] as usize;
    // Running minimum of the previous row, for jumps: (value, bg frame).
    let mut lead: Vec<(u64, u32)> = Vec::new();
    let mut cur: Vec<u64> = Vec::new();
    for i in 1..n {
        if i % 256 == 0 {
            cancel.check()?;
        }
        let lo = a.lo[i] as usize;
        let cells = &a.cells[a.row(i)];
        let b = &mut back[a.row(i)];
        if a.jump.is_some() {
            lead.clear();
            let mut run = (u64::MAX, 0u32);
            for (q, &v) in prev.iter().enumerate() {
                if v < run.0 {
                    run = (v, (prev_lo + q) as u32);
                }
                lead.push(run);
            }
        }
        let prev_hi = prev_lo + prev.len();
        cur.clear();
        for (q, (&c, bq)) in cells.iter().zip(b.iter_mut()).enumerate() {
            let j = lo + q;
            let (mut best, mut arg) = (DTW_ALONE, j as u32);
            let mut found = false;
            if j >= prev_lo && !prev.is_empty() {
                // Predecessors j - s in the previous row's band.
                let s_min = j.saturating_sub(prev_hi - 1);
                let s_max = k.min(j - prev_lo);
                for s in s_min..=s_max {
                    let v = prev[j - s - prev_lo].saturating_add(pen(s));
                    if !found || v < best {
                        (best, arg, found) = (v, (j - s) as u32, true);
                    }
                }
            }
            if let Some(jp) = a.jump
                && j > k + prev_lo
                && !lead.is_empty()
            {
                let (v, from) = lead[(j - k - 1 - prev_lo).min(lead.len() - 1)];
                let v = v.saturating_add(jp);
                if !found || v < best {
                    (best, arg) = (v, from);
                }
            }
            cur.push(best.saturating_add(c));
            *bq = arg;
        }
        std::mem::swap(&mut prev, &mut cur);
        prev_lo = lo;
    }
    Ok(Accumulated { back, last: prev })
}

/// Fixed-point unit of an image's values in [`WindowDots`]: 1/8 of a grey level (at most 2040,
/// an `i16`).
pub const IMAGE_ONE: f64 = 8.0;

/// An image's values in fixed point ([`IMAGE_ONE`]), row-major.
pub fn quantise_image(img: &Image) -> Vec<i16> {
    img.iter()
        .map(|&v| (f64::from(v) * IMAGE_ONE).round().clamp(0.0, 2040.0) as i16)
        .collect()
}

/// A template in fixed point: its zero-mean values scaled so that the largest is at most
/// 2047 and a row's products with a [`quantise_image`] image fit an `i32` (so that sums are
/// exact, in any order, on any backend).
#[derive(Debug, Clone)]
pub struct QTemplate {
    pub q: Vec<i16>,
    pub w: usize,
    pub h: usize,
    /// Sum of `q` (small but not 0 after rounding).
    pub sum: i64,
    /// Euclidean norm of `q`.
    pub norm: f64,
}

/// The sum of products of `t` with the window of `img` (`img_w` wide, [`quantise_image`]) at
/// `(v, u)`: each row's in an `i32` (it fits, see [`QTemplate`]), rows summed in an `i64`.
pub fn window_dot(img: &[i16], img_w: usize, t: &QTemplate, v: usize, u: usize) -> i64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { window_dot_avx2(img, img_w, t, v, u) };
        }
    }
    window_dot_any(img, img_w, t, v, u)
}

/// [`window_dot_any`] compiled for AVX2 (the default x86-64 target has only SSE2, which does
/// half the work per instruction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn window_dot_avx2(img: &[i16], img_w: usize, t: &QTemplate, v: usize, u: usize) -> i64 {
    window_dot_any(img, img_w, t, v, u)
}

#[inline(always)]
fn window_dot_any(img: &[i16], img_w: usize, t: &QTemplate, v: usize, u: usize) -> i64 {
    t.q.chunks_exact(t.w.max(1))
        .enumerate()
        .map(|(y, trow)| {
            let at = (v + y) * img_w + u;
            img.get(at..at + t.w)
                .map_or(0, |irow| i64::from(dot_q(trow, irow)))
        })
        .sum()
}

/// A batch of [`window_dot`]s, what a backend computes: job `[t, i, u, v]` is template
/// `templates[t]` at `(v, u)` of image `images[i]` (values and width); every window lies
/// inside its image.
#[derive(Debug, Clone, Default)]
pub struct WindowDots<'a> {
    pub images: Vec<(&'a [i16], usize)>,
    pub templates: Vec<&'a QTemplate>,
    pub jobs: Vec<[u32; 4]>,
}

impl WindowDots<'_> {
    /// Whether every job's template and image exist and its window lies inside the image.
    pub fn is_valid(&self) -> bool {
        self.jobs.iter().all(|&[t, i, u, v]| {
            match (self.templates.get(t as usize), self.images.get(i as usize)) {
                (Some(t), Some(&(img, w))) => {
                    w > 0
                        && u as usize + t.w <= w
                        && (v as usize + t.h) * w <= img.len()
                        && t.q.len() == t.w * t.h
                }
                _ => false,
            }
        })
    }
}

/// [`WindowDots`] on the CPU, jobs in parallel (0 for an invalid job).
pub fn window_dots(w: &WindowDots<'_>) -> Vec<i64> {
    w.jobs
        .par_iter()
        .map(
            |&[t, i, u, v]| match (w.templates.get(t as usize), w.images.get(i as usize)) {
                (Some(t), Some(&(img, width))) => window_dot(img, width, t, v as usize, u as usize),
                _ => 0,
            },
        )
        .collect()
}
