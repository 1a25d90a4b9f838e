// SPDX-License-Identifier: MIT

//! Where the fg sits in the bg: offset and scale.
//!
//! Coarse: on thumbnails, the fg (resampled to each candidate footprint size) is correlated
//! with several bg frames through FFTs; since fg frame 0 need not show the moment of bg frame 0,
//! each fg sample takes its best bg frame at each offset, and the offset and scale that suit all
//! fg samples best win. Fine: on a pyramid of full-resolution frame pairs that match in time,
//! the offset and scale are refined level by level with direct NCC, then to sub-pixel precision
//! by parabola fits.

use super::features::{Image, Rect, Thumb, downscale_image, resample};
use super::kernels::{CpuKernels, Kernels};
use super::ncc::{
    self, CornerSums, Fft2, Prepared, QTemplate, Scratch, Template, TemplateSpectrum,
};
use super::{Cancel, Cancelled};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// Relative step between coarse candidate scales.
const COARSE_SCALE_STEP: f64 = 1.025;
/// Smallest footprint side on a thumbnail worth correlating.
const MIN_TEMPLATE: usize = 6;
/// Refinement stops at the pyramid level where the footprint is at most this wide (or at full
/// resolution): the sub-pixel fit there is precise to a fraction of that level's pixel, and
/// full-resolution NCC of a large footprint costs seconds.
const FINEST_WIDTH: f64 = 400.0;

/// Sizes in full-resolution pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub fg: (u32, u32),
    pub bg: (u32, u32),
}

/// What the user fixed: `None` is searched.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Constraints {
    pub x: Option<f64>,
    pub y: Option<f64>,
    pub scale: Option<f64>,
}

/// A footprint: top-left in bg pixels (sub-pixel), footprint width / fg width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub x: f64,
    pub y: f64,
    pub scale: f64,
    /// Mean NCC of the fg samples at this footprint, in [-1, 1].
    pub score: f64,
}

/// The coarse result, with which bg sample suited each fg sample best.
#[derive(Debug, Clone, PartialEq)]
pub struct Coarse {
    pub estimate: Estimate,
    /// For each fg sample: the index (into the bg samples) of its best bg sample, if any.
    pub best_bg: Vec<Option<usize>>,
}

/// A search's best score `score` calibrated against `chance`, the best score the same search
/// gives content that does not show the bg's scene (the fg samples turned upside down): the
/// share of the way from chance to a perfect match, in [0, 1]. NaN when `score` is.
pub fn calibrated(score: f64, chance: f64) -> f64 {
    if score.is_nan() {
        return f64::NAN;
    }
    // Chance below zero (anti-correlation) is no easier a bar than zero.
    let chance = if chance.is_finite() {
        chance.clamp(0.0, 0.999)
    } else {
        0.0
    };
    ((score - chance) / (1.0 - chance)).clamp(0.0, 1.0)
}

/// Candidate scales (footprint width / fg width) searched by default: a fg recorded at up to
/// twice its footprint's resolution.
pub const DEFAULT_SCALES: (f64, f64) = (0.5, 1.0);

/// The scales to try: the range, limited so that the footprint fits in the bg, `step` apart.
fn scale_grid(geo: Geometry, range: (f64, f64), fixed: Option<f64>, step: f64) -> Vec<f64> {
    if let Some(s) = fixed {
        return vec![s];
    }
    let fit = (geo.bg.0 as f64 / geo.fg.0 as f64).min(geo.bg.1 as f64 / geo.fg.1 as f64);
    let hi = range.1.min(fit);
    let lo = range.0.min(hi);
    let mut v = vec![hi];
    let mut s = hi;
    while s / step > lo {
        s /= step;
        v.push(s);
    }
    if lo < hi {
        v.push(lo);
    }
    v
}

/// The first stage of [`coarse`] keeps this many of its best scales...
const TOP_SCALES: usize = 2;
/// ...and, for each fg sample, this many of its best-matching bg samples at each of them.
const TOP_BG: usize = 8;

/// Coarse search on thumbnails. `bg` and `fg` are thumbnails of sample frames with their
/// downscale factors (full-resolution px per thumbnail px).
///
/// In two stages: on half-size thumbnails, every bg sample against every fg sample at scales
/// [`DENSE_SCALE_STEP`] apart; then on the thumbnails, only at the scales within one such step
/// of the first stage's [`TOP_SCALES`] best, [`COARSE_SCALE_STEP`] apart, and for each fg
/// sample only against its [`TOP_BG`] best bg samples there. When the half-size templates are
/// too small to correlate, in one stage at full thumbnail size ([`coarse_with`]).
pub fn coarse(
    geo: Geometry,
    bg: &[Image],
    bg_factor: f64,
    fg: &[Image],
    fg_factor: f64,
    constraints: Constraints,
    cancel: &Cancel,
) -> Result<Option<Coarse>, Cancelled> {
    let half =
        |v: &[Image]| -> Vec<Image> { v.par_iter().map(|i| downscale_image(i, 2)).collect() };
    let (bg_half, fg_half) = (half(bg), half(fg));
    let first = match Search::new(geo, &bg_half, bg_factor * 2.0, fg_factor * 2.0, constraints) {
        Some(search) => {
            let scales = scale_grid(geo, DEFAULT_SCALES, constraints.scale, DENSE_SCALE_STEP);
            let mut found = scan(&search, &fg_half, &scales, None, cancel)?;
            found.sort_by(|a, b| b.score.total_cmp(&a.score));
            found.truncate(TOP_SCALES);
            let mut candidates: Vec<Vec<usize>> = vec![Vec::new(); fg.len()];
            for b in &found {
                for (c, r) in candidates
                    .iter_mut()
                    .zip(rank_bg(&search, &fg_half, b, TOP_BG))
                {
                    c.extend(r);
                }
            }
            for c in &mut candidates {
                c.sort_unstable();
                c.dedup();
            }
            (!found.is_empty()).then_some((found, candidates))
        }
        None => None,
    };
    let Some((top, candidates)) = first else {
        return coarse_with(
            geo,
            bg,
            bg_factor,
            fg,
            fg_factor,
            constraints,
            COARSE_SCALE_STEP,
            cancel,
        );
    };
    let Some(search) = Search::new(geo, bg, bg_factor, fg_factor, constraints) else {
        return Ok(None);
    };
    cancel.check()?;
    let near = |s: f64| {
        top.iter().any(|b| {
            s <= b.scale * DENSE_SCALE_STEP * 1.001 && s >= b.scale / DENSE_SCALE_STEP / 1.001
        })
    };
    let scales: Vec<f64> = scale_grid(geo, DEFAULT_SCALES, constraints.scale, COARSE_SCALE_STEP)
        .into_iter()
        .filter(|&s| near(s))
        .collect();
    let found = scan(&search, fg, &scales, Some(&candidates), cancel)?;
    Ok(best_of(&search, found))
}

/// Relative step between the scales of [`coarse`]'s first stage and of the coarse search in
/// time.
pub const DENSE_SCALE_STEP: f64 = 1.08;

/// What both coarse searches share: the bg samples' spectra, the template size at a scale, a
/// fg sample's template and the offsets the constraints allow.
struct Search {
    geo: Geometry,
    bg_factor: f64,
    fg_factor: f64,
    constraints: Constraints,
    fft: Fft2,
    prepared: Vec<Prepared>,
    size: (usize, usize),
}

impl Search {
    fn new(
        geo: Geometry,
        bg: &[Image],
        bg_factor: f64,
        fg_factor: f64,
        constraints: Constraints,
    ) -> Option<Self> {
        let (bh, bw) = bg.first()?.dim();
        let fft = Fft2::new(bh, bw);
        let prepared = bg.par_iter().map(|img| Prepared::new(&fft, img)).collect();
        Some(Search {
            geo,
            bg_factor,
            fg_factor,
            constraints,
            fft,
            prepared,
            size: (bh, bw),
        })
    }

    /// Template width and height in thumbnail px at scale `s`, if it is worth correlating and
    /// fits.
    fn template_size(&self, s: f64) -> Option<(usize, usize)> {
        let tw = (self.geo.fg.0 as f64 * s / self.bg_factor).round() as usize;
        let th = (self.geo.fg.1 as f64 * s / self.bg_factor).round() as usize;
        let (bh, bw) = self.size;
        (tw >= MIN_TEMPLATE && th >= MIN_TEMPLATE && tw <= bw && th <= bh).then_some((tw, th))
    }

    /// The whole fg sample resampled to `tw` x `th`; `None` when it is flat.
    fn template(&self, f: &Image, (tw, th): (usize, usize)) -> Option<Template> {
        let (h, w) = f.dim();
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: (self.geo.fg.0 as f64 / self.fg_factor).min(w as f64),
            h: (self.geo.fg.1 as f64 / self.fg_factor).min(h as f64),
        };
        Template::new(&resample(f, r, tw, th))
    }

    /// Whether the constraints allow offset (u, v) in thumbnail px.
    fn allowed(&self, u: usize, v: usize) -> bool {
        let at = |c: Option<f64>| c.map(|x| (x / self.bg_factor).round() as usize);
        at(self.constraints.x).is_none_or(|f| f == u)
            && at(self.constraints.y).is_none_or(|f| f == v)
    }

    /// The estimate for offset (u, v) in thumbnail px at `scale`.
    fn estimate(&self, u: usize, v: usize, scale: f64, score: f64) -> Estimate {
        let c = self.constraints;
        Estimate {
            x: c.x.unwrap_or(u as f64 * self.bg_factor),
            y: c.y.unwrap_or(v as f64 * self.bg_factor),
            scale: c.scale.unwrap_or(scale),
            score,
        }
    }
}

/// [`coarse`] in one stage: every bg sample against every fg sample at every scale, `step`
/// apart (relative).
#[allow(clippy::too_many_arguments)]
pub fn coarse_with(
    geo: Geometry,
    bg: &[Image],
    bg_factor: f64,
    fg: &[Image],
    fg_factor: f64,
    constraints: Constraints,
    step: f64,
    cancel: &Cancel,
) -> Result<Option<Coarse>, Cancelled> {
    let Some(search) = Search::new(geo, bg, bg_factor, fg_factor, constraints) else {
        return Ok(None);
    };
    cancel.check()?;
    let scales = scale_grid(geo, DEFAULT_SCALES, constraints.scale, step);
    let found = scan(&search, fg, &scales, None, cancel)?;
    Ok(best_of(&search, found))
}

/// The best candidate of one scale of a coarse search.
#[derive(Debug, Clone)]
struct Best {
    score: f64,
    scale: f64,
    /// Template size in thumbnail px.
    size: (usize, usize),
    u: usize,
    v: usize,
    /// For each fg sample, the bg sample that suited it best at (u, v).
    best_bg: Vec<Option<usize>>,
}

fn best_of(search: &Search, found: Vec<Best>) -> Option<Coarse> {
    let b = found
        .into_iter()
        .max_by(|a, b| a.score.total_cmp(&b.score))?;
    Some(Coarse {
        estimate: search.estimate(b.u, b.v, b.scale, b.score),
        best_bg: b.best_bg,
    })
}

/// The best candidate at each of `scales`: each fg sample takes its best bg sample at every
/// offset (among `candidates[fg sample]` when given, else all), and the offset with the best
/// sum over fg samples wins.
fn scan(
    search: &Search,
    fg: &[Image],
    scales: &[f64],
    candidates: Option<&[Vec<usize>]>,
    cancel: &Cancel,
) -> Result<Vec<Best>, Cancelled> {
    let (bh, bw) = search.size;
    let (fft, prepared) = (&search.fft, &search.prepared);
    let all: Vec<usize> = (0..prepared.len()).collect();
    let of = |i: usize| -> &[usize] {
        candidates
            .and_then(|c| c.get(i))
            .map_or(&all[..], Vec::as_slice)
    };
    let mut wanted = vec![false; prepared.len()];
    for i in 0..fg.len() {
        for &j in of(i) {
            if let Some(w) = wanted.get_mut(j) {
                *w = true;
            }
        }
    }
    let results: Vec<Option<Best>> = scales
        .par_iter()
        .map(|&s| {
            if cancel.is_cancelled() {
                return None;
            }
            let (tw, th) = search.template_size(s)?;
            let (mh, mw) = (bh + 1 - th, bw + 1 - tw);
            let mut total = Image::zeros((mh, mw));
            let mut arg: Vec<ndarray::Array2<u32>> = Vec::new();
            let mut used = 0usize;
            let mut scratch = Scratch::default();
            // Each bg sample's window variances at this size, shared by every fg sample.
            let inv: Vec<Option<Image>> = prepared
                .iter()
                .zip(&wanted)
                .map(|(p, &w)| w.then(|| ncc::inv_std_map(p, th, tw)))
                .collect();
            let mut m = Image::zeros((mh, mw));
            for (i, f) in fg.iter().enumerate() {
                let Some(t) = search.template(f, (tw, th)) else {
                    arg.push(ndarray::Array2::from_elem((mh, mw), u32::MAX));
                    continue;
                };
                let ts = TemplateSpectrum::new(fft, &t);
                let mut best = Image::from_elem((mh, mw), -1.0);
                let mut best_j = ndarray::Array2::from_elem((mh, mw), u32::MAX);
                for &j in of(i) {
                    let (Some(p), Some(Some(inv))) = (prepared.get(j), inv.get(j)) else {
                        continue;
                    };
                    m.fill(0.0);
                    ncc::ncc_add_fft(fft, p, &ts, inv, 1.0, &mut scratch, &mut m);
                    for ((b, bj), &v) in best.iter_mut().zip(best_j.iter_mut()).zip(m.iter()) {
                        if v > *b {
                            *b = v;
                            *bj = j as u32;
                        }
                    }
                }
                total += &best;
                arg.push(best_j);
                used += 1;
            }
            if used == 0 {
                return None;
            }
            // Constrained offsets restrict where the maximum is taken.
            let mut best: Option<(f32, usize, usize)> = None;
            for ((v, u), &sc) in total.indexed_iter() {
                if !search.allowed(u, v) {
                    continue;
                }
                if best.is_none_or(|b| sc > b.0) {
                    best = Some((sc, u, v));
                }
            }
            let (sc, u, v) = best?;
            Some(Best {
                score: f64::from(sc) / used as f64,
                scale: tw as f64 * search.bg_factor / search.geo.fg.0 as f64,
                size: (tw, th),
                u,
                v,
                best_bg: arg
                    .iter()
                    .map(|a| {
                        let j = a[(v, u)];
                        (j != u32::MAX).then_some(j as usize)
                    })
                    .collect(),
            })
        })
        .collect();
    cancel.check()?;
    Ok(results.into_iter().flatten().collect())
}

/// For each fg sample, its `keep` best bg samples at `b`'s scale, by their NCC at `b`'s
/// offset or one px from it (empty for a flat sample).
fn rank_bg(search: &Search, fg: &[Image], b: &Best, keep: usize) -> Vec<Vec<usize>> {
    let (tw, th) = b.size;
    let inv: Vec<Image> = search
        .prepared
        .iter()
        .map(|p| ncc::inv_std_map(p, th, tw))
        .collect();
    fg.par_iter()
        .map(|f| {
            let Some(t) = search.template(f, (tw, th)) else {
                return Vec::new();
            };
            let ts = TemplateSpectrum::new(&search.fft, &t);
            let mut scratch = Scratch::default();
            let mut scored: Vec<(f32, usize)> = search
                .prepared
                .iter()
                .zip(&inv)
                .enumerate()
                .map(|(j, (p, inv))| {
                    let mut m = Image::zeros(inv.dim());
                    ncc::ncc_add_fft(&search.fft, p, &ts, inv, 1.0, &mut scratch, &mut m);
                    let (mh, mw) = m.dim();
                    let mut near = f32::NEG_INFINITY;
                    for v in b.v.saturating_sub(1)..(b.v + 2).min(mh) {
                        for u in b.u.saturating_sub(1)..(b.u + 2).min(mw) {
                            near = near.max(m[(v, u)]);
                        }
                    }
                    (near, j)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.into_iter().take(keep).map(|(_, j)| j).collect()
        })
        .collect()
}

/// Score, scale, offset (u, v) and moment of the best candidate of one scale.
type TimedBest = (f64, f64, usize, usize, usize);

/// A footprint and the moment it was found at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InTime {
    pub estimate: Estimate,
    /// The bg sample that fg sample 0 shows.
    pub t: usize,
}

/// Coarse search over offset, scale and time at once: fg sample `r` is taken to show bg
/// sample `t + r * stride` for a common `t`, so a match must hold for every sample at the same
/// moment (matches of single frames to any of many bg frames are often chance). `bg` are
/// thumbnails of bg frames evenly spaced in time, `fg` of fg frames spaced by `stride` bg
/// samples.
#[allow(clippy::too_many_arguments)]
pub fn coarse_in_time(
    geo: Geometry,
    bg: &[Image],
    bg_factor: f64,
    fg: &[Image],
    fg_factor: f64,
    stride: usize,
    constraints: Constraints,
    step: f64,
    cancel: &Cancel,
) -> Result<Option<InTime>, Cancelled> {
    if fg.is_empty() {
        return Ok(None);
    }
    let span = (fg.len() - 1) * stride;
    if span >= bg.len() {
        return Ok(None);
    }
    let Some(search) = Search::new(geo, bg, bg_factor, fg_factor, constraints) else {
        return Ok(None);
    };
    cancel.check()?;
    let (fft, prepared) = (&search.fft, &search.prepared);
    let scales = scale_grid(geo, DEFAULT_SCALES, constraints.scale, step);
    let results: Vec<Option<TimedBest>> = scales
        .par_iter()
        .map(|&s| {
            if cancel.is_cancelled() {
                return None;
            }
            let size = search.template_size(s)?;
            let spectra: Vec<TemplateSpectrum> = fg
                .iter()
                .filter_map(|f| {
                    search
                        .template(f, size)
                        .map(|t| TemplateSpectrum::new(fft, &t))
                })
                .collect();
            if spectra.len() != fg.len() {
                return None;
            }
            let mut scratch = Scratch::default();
            let mut best: Option<TimedBest> = None;
            // The window variances of each bg sample at this template size, computed once
            // (every sample serves up to one moment per fg sample).
            let (th, tw) = (size.1, size.0);
            let inv: Vec<Image> = prepared
                .iter()
                .map(|p| ncc::inv_std_map(p, th, tw))
                .collect();
            let weight = 1.0 / spectra.len() as f32;
            let mut total = Image::zeros(inv.first()?.dim());
            for t in 0..bg.len() - span {
                total.fill(0.0);
                for (r, ts) in spectra.iter().enumerate() {
                    let k = t + r * stride;
                    ncc::ncc_add_fft(
                        fft,
                        &prepared[k],
                        ts,
                        &inv[k],
                        weight,
                        &mut scratch,
                        &mut total,
                    );
                }
                for ((v, u), &sc) in total.indexed_iter() {
                    if !search.allowed(u, v) {
                        continue;
                    }
                    let sc = f64::from(sc);
                    if best.is_none_or(|b| sc > b.0) {
                        best = Some((sc, size.0 as f64 * bg_factor / geo.fg.0 as f64, u, v, t));
                    }
                }
            }
            best
        })
        .collect();
    cancel.check()?;
    let best = results
        .into_iter()
        .flatten()
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Ok(best.map(|(score, scale, u, v, t)| InTime {
        estimate: search.estimate(u, v, scale, score),
        t,
    }))
}

/// A frame's full-resolution luma for the refinement.
#[derive(Clone)]
pub enum Frame<'a> {
    /// In memory while the pair is (read in place at each pyramid level).
    Held(Arc<Thumb>),
    /// Fetched by `fetch(key)` each time one of its pyramid levels is built, and let go
    /// after: a frame read back from disk is not kept whole while the refinement runs (the
    /// levels keep only crops). `key` names the frame within one [`LevelCache`].
    Fetched {
        key: usize,
        fetch: &'a (dyn Fn(usize) -> Option<Arc<Thumb>> + Sync),
    },
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Held(t) => write!(f, "Held({}x{})", t.width, t.height),
            Frame::Fetched { key, .. } => write!(f, "Fetched({key})"),
        }
    }
}

impl From<Arc<Thumb>> for Frame<'_> {
    fn from(t: Arc<Thumb>) -> Self {
        Frame::Held(t)
    }
}

/// A frame's key in a [`LevelCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FrameKey {
    /// A held frame's allocation (the cache keeps it alive, so the key stays unique).
    Held(usize),
    Fetched(usize),
}

impl Frame<'_> {
    fn key(&self) -> FrameKey {
        match self {
            Frame::Held(t) => FrameKey::Held(Arc::as_ptr(t) as usize),
            Frame::Fetched { key, .. } => FrameKey::Fetched(*key),
        }
    }

    /// The held frame, kept alive by the cache so that its key stays unique.
    fn keep(&self) -> Option<Arc<Thumb>> {
        match self {
            Frame::Held(t) => Some(t.clone()),
            Frame::Fetched { .. } => None,
        }
    }

    /// `f(luma)`, the luma fetched for it where it is not held (`None`: it is not at hand).
    fn with<T>(&self, f: impl FnOnce(&Thumb) -> T) -> Option<T> {
        match self {
            Frame::Held(t) => Some(f(t)),
            Frame::Fetched { key, fetch } => fetch(*key).map(|t| f(&t)),
        }
    }
}

/// A fg frame and the bg frame that shows the same moment, as full-resolution luma (shared,
/// not copied, or fetched where a level is built: see [`Frame`]).
#[derive(Debug, Clone)]
pub struct FramePair<'a> {
    pub fg: Frame<'a>,
    pub bg: Frame<'a>,
    /// Other bg frames that may show the moment instead (its neighbours): the pair scores as
    /// the best fit among `bg` and these at each candidate footprint, so that the footprint
    /// and the bg frame are found together.
    pub near: Vec<Frame<'a>>,
}

struct Level {
    f: usize,
    /// The pairs' bg frames and their `near` ones, in pair order.
    bg: Vec<BgLevel>,
    /// The pair each of `bg` belongs to.
    owner: Vec<u32>,
    fg: Vec<Arc<Image>>,
}

/// Pyramid levels of full-resolution frames, built once for all the refinements of an
/// analysis (the second refinement reuses most of the first's frames), by frame
/// ([`Frame`]'s key) and level.
#[derive(Default)]
pub struct LevelCache {
    /// One crop per bg frame and level: a crop that holds the one asked for serves it (window
    /// sums are exact, so the results do not depend on the crop), else the two crops' union
    /// replaces it.
    bg: HashMap<(FrameKey, usize), CachedCrop>,
    fg: Cached<Image>,
}

/// A bg frame at one level, cropped to where a search's templates can land: the window sums
/// at the corners of the windows it can score ([`ncc::CornerSums`]) and its values in fixed
/// point ([`ncc::quantise_image`]). The sums are exact (level values are multiples of a power
/// of two's inverse), so a crop's window sums equal the whole frame's.
struct BgCrop {
    /// The whole level's size (height, width).
    full: (usize, usize),
    /// The crop's top-left corner (x, y) and size (height, width), in level px.
    origin: (usize, usize),
    dims: (usize, usize),
    sums: CornerSums,
    q: Vec<i16>,
}

type BgLevel = Arc<BgCrop>;

/// Where a search at one level can place templates, in level px: the prefix-sum columns `x`
/// and rows `y` (sorted) at which the windows it can score have their corners. The crop spans
/// the first to the last of each, clamped to the frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Crop {
    x: Vec<i64>,
    y: Vec<i64>,
}

/// Whether sorted `big` holds every element of sorted `small`.
fn holds_all(big: &[i64], small: &[i64]) -> bool {
    small.iter().all(|p| big.binary_search(p).is_ok())
}

/// The sorted union of sorted `a` and `b`.
fn merged(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut v: Vec<i64> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Crop {
    /// Whether `self` holds `other`.
    fn holds(&self, other: &Crop) -> bool {
        holds_all(&self.x, &other.x) && holds_all(&self.y, &other.y)
    }

    /// The smallest crop that holds both.
    fn union(&self, other: &Crop) -> Crop {
        Crop {
            x: merged(&self.x, &other.x),
            y: merged(&self.y, &other.y),
        }
    }

    /// The crop that holds every template from `tmin` to `tmax` (width, height) level px
    /// placed at offsets within `reach` of `center`.
    fn around(center: (i64, i64), reach: (i64, i64), tmin: (i64, i64), tmax: (i64, i64)) -> Crop {
        let axis = |c: i64, r: i64, lo: i64, hi: i64| {
            merged(
                &(c - r..=c + r).collect::<Vec<_>>(),
                &(c - r + lo..=c + r + hi).collect::<Vec<_>>(),
            )
        };
        Crop {
            x: axis(center.0, reach.0, tmin.0, tmax.0),
            y: axis(center.1, reach.1, tmin.1, tmax.1),
        }
    }

    /// The bg frame `t` at level `f`, cropped.
    fn level(&self, t: &Thumb, f: usize) -> BgCrop {
        let img = t.image_at(f);
        let (h, w) = img.dim();
        let inside = |v: &[i64], n: usize| -> Vec<usize> {
            v.iter()
                .filter(|&&p| (0..=n as i64).contains(&p))
                .map(|&p| p as usize)
                .collect()
        };
        let (xs, ys) = (inside(&self.x, w), inside(&self.y, h));
        let span = |v: &[usize]| {
            (
                v.first().copied().unwrap_or(0),
                v.last().copied().unwrap_or(0),
            )
        };
        let (x, y) = (span(&xs), span(&ys));
        let sub = img.slice(ndarray::s![y.0..y.1, x.0..x.1]).to_owned();
        let from = |v: &[usize], o: usize| v.iter().map(|p| p - o).collect::<Vec<_>>();
        BgCrop {
            full: (h, w),
            origin: (x.0, y.0),
            dims: sub.dim(),
            sums: CornerSums::new(&sub, &from(&ys, y.0), &from(&xs, x.0)),
            q: ncc::quantise_image(&sub),
        }
    }
}

/// A bg frame's crop at one level (with the held frame kept alive).
type CachedCrop = (Option<Arc<Thumb>>, Crop, BgLevel);

/// Frames cached at one level, by frame key and level (with the held frame kept alive).
type Cached<T> = HashMap<(FrameKey, usize), (Option<Arc<Thumb>>, Arc<T>)>;

/// `frames` at level `f` from `cache`, building the missing ones (in parallel) with `build`;
/// `None` where a frame is not at hand.
fn cached<T: Send + Sync>(
    cache: &mut Cached<T>,
    frames: &[&Frame<'_>],
    f: usize,
    build: impl Fn(&Thumb) -> T + Sync,
) -> Vec<Option<Arc<T>>> {
    let mut missing: Vec<&Frame<'_>> = frames
        .iter()
        .copied()
        .filter(|t| !cache.contains_key(&(t.key(), f)))
        .collect();
    missing.dedup_by_key(|t| t.key());
    let built: Vec<_> = missing
        .par_iter()
        .filter_map(|&t| Some((t.key(), t.keep(), Arc::new(t.with(&build)?))))
        .collect();
    for (k, t, l) in built {
        cache.insert((k, f), (t, l));
    }
    frames
        .iter()
        .map(|t| cache.get(&(t.key(), f)).map(|e| e.1.clone()))
        .collect()
}

impl LevelCache {
    /// `frames` at level `f`, each cropped to `crop` or more, building the missing ones (in
    /// parallel); `None` where a frame is not at hand.
    fn bg_level(&mut self, frames: &[&Frame<'_>], f: usize, crop: Crop) -> Vec<Option<BgLevel>> {
        let mut todo: Vec<(&Frame<'_>, Crop)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &t in frames {
            if !seen.insert(t.key()) {
                continue;
            }
            match self.bg.get(&(t.key(), f)) {
                Some((_, held, _)) if held.holds(&crop) => (),
                Some((_, held, _)) => todo.push((t, held.union(&crop))),
                None => todo.push((t, crop.clone())),
            }
        }
        let built: Vec<_> = todo
            .into_par_iter()
            .filter_map(|(t, c)| {
                let l = Arc::new(t.with(|luma| c.level(luma, f))?);
                Some((t.key(), t.keep(), c, l))
            })
            .collect();
        for (k, t, c, l) in built {
            self.bg.insert((k, f), (t, c, l));
        }
        frames
            .iter()
            .map(|t| self.bg.get(&(t.key(), f)).map(|e| e.2.clone()))
            .collect()
    }

    /// The pairs' frames at level `f`, the bg frames cropped to `crop`: only the pairs whose
    /// fg and bg frames are at hand, and of their `near` frames those at hand.
    fn level(&mut self, pairs: &[FramePair<'_>], f: usize, crop: Crop) -> Level {
        let bg: Vec<&Frame<'_>> = pairs
            .iter()
            .flat_map(|p| std::iter::once(&p.bg).chain(&p.near))
            .collect();
        let fg: Vec<&Frame<'_>> = pairs.iter().map(|p| &p.fg).collect();
        let bg = self.bg_level(&bg, f, crop);
        let fg = cached(&mut self.fg, &fg, f, |t| t.image_at(f));
        // A pair counts where its fg and own bg frame are at hand; its frames are renumbered
        // to the pairs kept.
        let mut level = Level {
            f,
            bg: Vec::new(),
            owner: Vec::new(),
            fg: Vec::new(),
        };
        let mut first = 0;
        for (i, p) in pairs.iter().enumerate() {
            let n = 1 + p.near.len();
            let mine = &bg[first..first + n];
            first += n;
            let (Some(fg), Some(Some(own))) = (&fg[i], mine.first()) else {
                continue;
            };
            let k = level.fg.len() as u32;
            level.fg.push(fg.clone());
            level.bg.push(own.clone());
            level.owner.push(k);
            for b in mine[1..].iter().flatten() {
                level.bg.push(b.clone());
                level.owner.push(k);
            }
        }
        level
    }
}

/// The fg samples resampled to the template of one candidate scale: its size in level px.
type Templates = Option<(usize, usize, Vec<Option<QTemplate>>)>;

/// Scores of one level's candidates (scale step `k`, offset `(u, v)` in level px), each
/// computed once however often the search window moves over it: mean NCC over the pairs.
struct Scores<'a> {
    level: &'a Level,
    kernels: &'a dyn Kernels,
    geo: Geometry,
    /// The scale at step 0 and the relative change per step.
    origin: f64,
    step: f64,
    templates: HashMap<i64, Templates>,
    known: HashMap<(i64, i64, i64), Option<f64>>,
}

impl Scores<'_> {
    fn scale(&self, k: i64) -> f64 {
        self.origin * (1.0 + k as f64 * self.step)
    }

    fn templates_for(&self, k: i64) -> Templates {
        let (f, scale) = (self.level.f as f64, self.scale(k));
        let tw = (self.geo.fg.0 as f64 * scale / f).floor() as usize;
        let th = (self.geo.fg.1 as f64 * scale / f).floor() as usize;
        let (bh, bw) = self.level.bg.first()?.full;
        if tw < 2 || th < 2 || tw > bw || th > bh {
            return None;
        }
        // The template covers tw x th level px of the bg: tw·f/scale fg px.
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: tw as f64 / scale,
            h: th as f64 / scale,
        };
        let list = self
            .level
            .fg
            .iter()
            .map(|fg| Template::new(&resample(fg, r, tw, th)).and_then(|t| QTemplate::new(&t)))
            .collect();
        Some((tw, th, list))
    }

    /// The scores of `cands`: for each, the mean NCC over the pairs whose template is not flat
    /// (`None` where none is or the template does not fit), a pair's NCC being its best over
    /// its bg frame and the `near` ones.
    fn scores(&self, cands: &[(i64, i64, i64)]) -> Vec<Option<f64>> {
        self.frame_nccs(cands)
            .into_iter()
            .map(|fits| {
                let per_pair = self.per_pair(&fits);
                let sum: f64 = per_pair.iter().map(|&(_, best)| best).sum();
                (!per_pair.is_empty()).then(|| sum / per_pair.len() as f64)
            })
            .collect()
    }

    /// Per pair in `fits` (one candidate's [`Scores::frame_nccs`]), the NCC of its own bg frame
    /// and the best over it and its `near` ones. A pair's entries come together, its own frame
    /// first.
    fn per_pair(&self, fits: &[(u32, f64)]) -> Vec<(f64, f64)> {
        let mut out: Vec<(u32, f64, f64)> = Vec::new();
        for &(b, c) in fits {
            let p = self.level.owner[b as usize];
            match out.last_mut() {
                Some((q, _, best)) if *q == p => *best = best.max(c),
                _ => out.push((p, c, c)),
            }
        }
        out.into_iter().map(|(_, own, best)| (own, best)).collect()
    }

    /// For each of `cands`, the NCC of each bg frame of the level (pairs' frames and their
    /// `near` ones, in order) with its pair's template, where the template is not flat and
    /// fits, from correlations computed by the kernels in one batch.
    fn frame_nccs(&self, cands: &[(i64, i64, i64)]) -> Vec<Vec<(u32, f64)>> {
        let bg = &self.level.bg;
        let Some((bh, bw)) = bg.first().map(|b| b.full) else {
            return vec![Vec::new(); cands.len()];
        };
        let mut w = ncc::WindowDots {
            images: bg.iter().map(|b| (&b.q[..], b.dims.1)).collect(),
            ..Default::default()
        };
        // Template index of each (scale step, pair).
        let mut index: HashMap<(i64, usize), u32> = HashMap::new();
        // Jobs of each candidate: (first job, jobs).
        let mut spans = Vec::with_capacity(cands.len());
        for &(k, u, v) in cands {
            let Some((tw, th, list)) = self.templates.get(&k).and_then(Option::as_ref) else {
                spans.push((0, 0));
                continue;
            };
            if u < 0 || v < 0 || u as usize + tw > bw || v as usize + th > bh {
                spans.push((0, 0));
                continue;
            }
            let first = w.jobs.len();
            for (b, &p) in self.level.owner.iter().enumerate() {
                let Some(t) = &list[p as usize] else { continue };
                // In the frame's crop, which holds every candidate of the search.
                let c = &bg[b];
                let at = (u as usize)
                    .checked_sub(c.origin.0)
                    .zip((v as usize).checked_sub(c.origin.1))
                    .filter(|&(cu, cv)| cu + tw <= c.dims.1 && cv + th <= c.dims.0);
                debug_assert!(
                    at.is_some(),
                    "candidate ({u}, {v}) outside the level's crop"
                );
                let Some((cu, cv)) = at else { continue };
                let ti = *index.entry((k, p as usize)).or_insert_with(|| {
                    w.templates.push(t);
                    (w.templates.len() - 1) as u32
                });
                w.jobs.push([ti, b as u32, cu as u32, cv as u32]);
            }
            spans.push((first, w.jobs.len() - first));
        }
        let dots = self.kernels.window_dots(&w);
        spans
            .iter()
            .map(|&(first, n)| {
                (first..first + n)
                    .map(|j| {
                        let [t, b, u, v] = w.jobs[j];
                        let t = w.templates[t as usize];
                        let sums = &bg[b as usize].sums;
                        let c = ncc::ncc_from_dot(dots[j], t, sums, v as usize, u as usize);
                        (b, c)
                    })
                    .collect()
            })
            .collect()
    }

    /// The candidates of a window: steps `ks`, offsets within `r` of `center`.
    fn window(ks: &[i64], center: (i64, i64), r: (i64, i64)) -> Vec<(i64, i64, i64)> {
        let mut out = Vec::new();
        for &k in ks {
            for dv in -r.1..=r.1 {
                for du in -r.0..=r.0 {
                    out.push((k, center.0 + du, center.1 + dv));
                }
            }
        }
        out
    }

    /// Scores the candidates not scored yet (in parallel) and returns the best of them all.
    fn best(&mut self, ks: &[i64], cands: &[(i64, i64, i64)]) -> Option<(f64, i64, i64, i64)> {
        let new_ks: Vec<i64> = ks
            .iter()
            .copied()
            .filter(|k| !self.templates.contains_key(k))
            .collect();
        let built: Vec<(i64, Templates)> = new_ks
            .par_iter()
            .map(|&k| (k, self.templates_for(k)))
            .collect();
        self.templates.extend(built);
        let todo: Vec<(i64, i64, i64)> = cands
            .iter()
            .copied()
            .filter(|c| !self.known.contains_key(c))
            .collect();
        let scored = self.scores(&todo);
        self.known.extend(todo.into_iter().zip(scored));
        cands
            .iter()
            .filter_map(|&(k, u, v)| {
                self.known
                    .get(&(k, u, v))
                    .copied()
                    .flatten()
                    .map(|sc| (sc, k, u, v))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    fn get(&self, k: i64, u: i64, v: i64) -> Option<f64> {
        self.known.get(&(k, u, v)).copied().flatten()
    }
}

/// Searches per refinement level, at most (the first and re-centred ones).
const MAX_CLIMBS: usize = 6;

/// Vertex offset of the parabola through (-1, a), (0, b), (1, c), clamped to ±0.5.
fn parabola(a: f64, b: f64, c: f64) -> f64 {
    let d = a - 2.0 * b + c;
    if d >= 0.0 {
        return 0.0;
    }
    (0.5 * (a - c) / d).clamp(-0.5, 0.5)
}

/// Refines a coarse estimate on full-resolution frame pairs, coarse to fine, to sub-pixel
/// precision. `from_factor` is the resolution (full px per px) the estimate is accurate to.
pub fn refine(
    geo: Geometry,
    pairs: &[FramePair],
    start: Estimate,
    from_factor: f64,
    constraints: Constraints,
    cancel: &Cancel,
) -> Result<Estimate, Cancelled> {
    refine_cached(
        geo,
        pairs,
        start,
        from_factor,
        constraints,
        &mut LevelCache::default(),
        &CpuKernels,
        cancel,
    )
}

/// The finest pyramid level (full px per level px) [`refine`] goes down to for a footprint
/// at `scale`: the level where it is at most [`FINEST_WIDTH`] wide, or full resolution.
pub fn finest_level(geo: Geometry, scale: f64) -> usize {
    let mut finest = 1usize;
    while geo.fg.0 as f64 * scale / (finest * 2) as f64 >= FINEST_WIDTH && finest < 1 << 16 {
        finest *= 2;
    }
    finest
}

/// Whether some pair's bg frame fits the footprint `est` worse than one of its `near` frames
/// does (at the finest level, at the offset nearest `est`): then a refinement with the `near`
/// frames may find a better fit than one without them.
pub fn near_fits_better(
    geo: Geometry,
    pairs: &[FramePair],
    est: Estimate,
    cache: &mut LevelCache,
    kernels: &dyn Kernels,
) -> bool {
    if pairs.iter().all(|p| p.near.is_empty()) {
        return false;
    }
    let f = finest_level(geo, est.scale);
    let at = (
        0,
        (est.x / f as f64).round() as i64,
        (est.y / f as f64).round() as i64,
    );
    // The one candidate: the template at `est`, at that offset.
    let tw = (geo.fg.0 as f64 * est.scale / f as f64).floor() as i64;
    let th = (geo.fg.1 as f64 * est.scale / f as f64).floor() as i64;
    let crop = Crop::around((at.1, at.2), (0, 0), (tw, th), (tw, th));
    let level = cache.level(pairs, f, crop);
    let mut scores = Scores {
        level: &level,
        kernels,
        geo,
        origin: est.scale,
        step: 0.0,
        templates: HashMap::new(),
        known: HashMap::new(),
    };
    scores.templates.insert(0, scores.templates_for(0));
    let fits = scores.frame_nccs(&[at]).pop().unwrap_or_default();
    scores.per_pair(&fits).iter().any(|&(own, best)| best > own)
}

/// [`refine`], with the pyramid levels of the frames kept in `cache` for later refinements,
/// the correlations computed by `kernels`.
#[allow(clippy::too_many_arguments)]
pub fn refine_cached(
    geo: Geometry,
    pairs: &[FramePair],
    start: Estimate,
    from_factor: f64,
    constraints: Constraints,
    cache: &mut LevelCache,
    kernels: &dyn Kernels,
    cancel: &Cancel,
) -> Result<Estimate, Cancelled> {
    if pairs.is_empty() {
        return Ok(start);
    }
    let finest = finest_level(geo, start.scale);
    let mut levels_f = Vec::new();
    let mut f = finest;
    while (f * 2) as f64 <= from_factor / 2.0 {
        f *= 2;
    }
    while f >= finest {
        levels_f.push(f);
        f /= 2;
    }
    let fixed = (constraints.x.is_some(), constraints.y.is_some());
    let mut est = start;
    let mut prev_f = from_factor;
    for &f in &levels_f {
        cancel.check()?;
        // Search radius: the previous level's uncertainty (half a px either way after its
        // sub-step search) in this level's px; hill climbing goes further where the best
        // candidate lies on the window's edge.
        let radius = (prev_f / f as f64 / 2.0).ceil() as i64;
        let fw = geo.fg.0 as f64 * est.scale;
        // One step changes the footprint width by one level px.
        let step = f as f64 / fw;
        let n_steps = if constraints.scale.is_some() {
            0
        } else {
            (prev_f / f as f64).ceil() as i64
        };
        let mut center = (
            (est.x / f as f64).round() as i64,
            (est.y / f as f64).round() as i64,
        );
        let r = (
            if fixed.0 { 0 } else { radius },
            if fixed.1 { 0 } else { radius },
        );
        // The bg frames cropped to every candidate the search can score: at most
        // MAX_CLIMBS windows, each re-centred within `r` and `n_steps` of the last.
        let climbs = MAX_CLIMBS as i64;
        let largest = est.scale * (1.0 + (climbs * n_steps) as f64 * step);
        let smallest = est.scale * (1.0 - (climbs * n_steps) as f64 * step);
        let size = |scale: f64, d: i64| {
            (
                (geo.fg.0 as f64 * scale / f as f64).floor() as i64 + d,
                (geo.fg.1 as f64 * scale / f as f64).floor() as i64 + d,
            )
        };
        let crop = Crop::around(
            center,
            (climbs * r.0, climbs * r.1),
            size(smallest, -1),
            size(largest, 1),
        );
        let level = cache.level(pairs, f, crop);
        let mut scores = Scores {
            level: &level,
            kernels,
            geo,
            origin: est.scale,
            step,
            templates: HashMap::new(),
            known: HashMap::new(),
        };
        let mut kc = 0i64;
        // Hill climbing: while the best candidate lies on the window's edge (the estimate was
        // further off than expected, e.g. a footprint that touches the bg's border, where
        // fewer offsets fit), search again around it; candidates already scored are not
        // scored again.
        let mut climbs = 0;
        let (ks, cands, best) = loop {
            let ks: Vec<i64> = (kc - n_steps..=kc + n_steps).collect();
            let cands = Scores::window(&ks, center, r);
            let best = scores.best(&ks, &cands);
            let on_edge = best.is_some_and(|(_, k, u, v)| {
                (r.0 > 0 && (u - center.0).abs() == r.0)
                    || (r.1 > 0 && (v - center.1).abs() == r.1)
                    || (n_steps > 0 && (k - kc).abs() == n_steps)
            });
            climbs += 1;
            match best {
                Some((_, k, u, v)) if on_edge && climbs < MAX_CLIMBS => {
                    cancel.check()?;
                    center = (u, v);
                    kc = k;
                }
                _ => break (ks, cands, best),
            }
        };
        let Some((score, k, u, v)) = best else {
            break;
        };
        let s = scores.scale(k);
        let mut x = constraints.x.unwrap_or((u * f as i64) as f64);
        let mut y = constraints.y.unwrap_or((v * f as i64) as f64);
        let mut scale = s;
        if f == finest {
            // Sub-pixel: parabolas through the neighbours of the best offset and scale.
            let at = |du: i64, dv: i64| scores.get(k, u + du, v + dv);
            if !fixed.0
                && let (Some(a), Some(c)) = (at(-1, 0), at(1, 0))
            {
                x += parabola(a, score, c) * f as f64;
            }
            if !fixed.1
                && let (Some(a), Some(c)) = (at(0, -1), at(0, 1))
            {
                y += parabola(a, score, c) * f as f64;
            }
            // The best offset of a neighbouring scale, within the final window.
            let best_of = |kk: i64| {
                if !ks.contains(&kk) {
                    return None;
                }
                cands
                    .iter()
                    .filter(|c| c.0 == kk)
                    .filter_map(|&(k2, u2, v2)| scores.get(k2, u2, v2))
                    .max_by(|a, b| a.total_cmp(b))
            };
            if let (Some(a), Some(c)) = (best_of(k - 1), best_of(k + 1)) {
                scale = s * (1.0 + parabola(a, score, c) * step);
            }
        }
        est = Estimate { x, y, scale, score };
        prev_f = f as f64;
    }
    Ok(est)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::features::Rect;

    /// A smooth random texture, like a natural image.
    fn scene(h: usize, w: usize, seed: u32) -> Image {
        let mut s = seed;
        let noise = Image::from_shape_fn((h / 8 + 2, w / 8 + 2), |_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as f32
        });
        resample(
            &noise,
            Rect {
                x: 0.0,
                y: 0.0,
                w: (w / 8 + 2) as f64,
                h: (h / 8 + 2) as f64,
            },
            w,
            h,
        )
    }

    #[test]
    fn finds_a_scaled_regraded_footprint_to_a_pixel() {
        let cancel = Cancel::new();
        let bg = scene(270, 480, 3);
        // footprint 200x120 at (131.0, 57.0), fg recorded at 1.6x: 320x192
        let (fx, fy, fw, fh) = (131.0, 57.0, 200.0, 120.0);
        let fg = resample(
            &bg,
            Rect {
                x: fx,
                y: fy,
                w: fw,
                h: fh,
            },
            320,
            192,
        )
        .mapv(|v| 0.7 * v + 20.0);
        let geo = Geometry {
            fg: (320, 192),
            bg: (480, 270),
        };
        let bf = 3.0;
        let bg_t = vec![
            scene(90, 160, 9),
            downscale_image(&bg, 3),
            scene(90, 160, 11),
        ];
        let fg_t = vec![downscale_image(&fg, 2)];
        let c = coarse(geo, &bg_t, bf, &fg_t, 2.0, Constraints::default(), &cancel)
            .unwrap()
            .unwrap();
        assert_eq!(c.best_bg, vec![Some(1)]);
        assert!((c.estimate.x - fx).abs() <= 2.0 * bf, "{:?}", c.estimate);
        let pairs = vec![FramePair {
            fg: Arc::new(Thumb::from_image(&fg)).into(),
            bg: Arc::new(Thumb::from_image(&bg)).into(),
            near: Vec::new(),
        }];
        let e = refine(geo, &pairs, c.estimate, bf, Constraints::default(), &cancel).unwrap();
        let corners = [
            (e.x - fx).abs(),
            (e.y - fy).abs(),
            (e.x + 320.0 * e.scale - fx - fw).abs(),
            (e.y + 192.0 * e.scale - fy - fh).abs(),
        ];
        assert!(corners.iter().all(|&d| d <= 1.0), "{e:?} {corners:?}");
        assert!(e.score > 0.95, "{e:?}");
    }

    /// Refinements from different starts share one crop per bg frame and level: a later one
    /// whose crop lies outside the cached one widens it, and every result is the one a fresh
    /// cache gives (window sums do not depend on the crop).
    /// A 480x270 bg and a re-graded 320x192 fg of its 200x120 footprint at (131, 57).
    fn footprint_pair() -> (Image, Image, (f64, f64, f64, f64), Geometry) {
        let bg = scene(270, 480, 5);
        let (fx, fy, fw, fh) = (131.0, 57.0, 200.0, 120.0);
        let r = Rect {
            x: fx,
            y: fy,
            w: fw,
            h: fh,
        };
        let fg = resample(&bg, r, 320, 192).mapv(|v| 0.8 * v + 10.0);
        let geo = Geometry {
            fg: (320, 192),
            bg: (480, 270),
        };
        (bg, fg, (fx, fy, fw, fh), geo)
    }

    #[test]
    fn refinements_share_one_crop_per_frame_and_level() {
        let cancel = Cancel::new();
        let (bg, fg, (fx, fy, fw, _), geo) = footprint_pair();
        let pairs = vec![FramePair {
            fg: Arc::new(Thumb::from_image(&fg)).into(),
            bg: Arc::new(Thumb::from_image(&bg)).into(),
            near: Vec::new(),
        }];
        let start = |dx: f64, dy: f64| Estimate {
            x: fx + dx,
            y: fy + dy,
            scale: fw / 320.0,
            score: 0.0,
        };
        let c = Constraints::default();
        let mut cache = LevelCache::default();
        for (dx, dy) in [(3.0, -2.0), (-9.0, 7.0), (0.0, 0.0)] {
            let shared = refine_cached(
                geo,
                &pairs,
                start(dx, dy),
                4.0,
                c,
                &mut cache,
                &CpuKernels,
                &cancel,
            )
            .unwrap();
            let fresh = refine(geo, &pairs, start(dx, dy), 4.0, c, &cancel).unwrap();
            assert_eq!(
                (shared.x, shared.y, shared.scale, shared.score),
                (fresh.x, fresh.y, fresh.scale, fresh.score)
            );
            assert!(
                (shared.x - fx).abs() <= 1.0 && (shared.y - fy).abs() <= 1.0,
                "{shared:?}"
            );
            // One bg frame at the levels a refinement from 4 visits (2 and 1).
            assert_eq!(
                cache.bg.len(),
                2,
                "{:?}",
                cache.bg.keys().collect::<Vec<_>>()
            );
        }
    }

    /// Frames fetched where their levels are built give the result held frames give; the
    /// cache keeps none of them whole (only their crops), and a pair whose frame cannot be
    /// fetched is left out.
    #[test]
    fn fetched_frames_fit_as_held_ones_and_are_let_go() {
        let cancel = Cancel::new();
        let (bg, fg, (fx, fy, fw, _), geo) = footprint_pair();
        let fg = Arc::new(Thumb::from_image(&fg));
        let other = Arc::new(Thumb::from_image(&scene(192, 320, 9)));
        let bg = Arc::new(Thumb::from_image(&bg));
        let start = Estimate {
            x: fx + 3.0,
            y: fy - 2.0,
            scale: fw / 320.0,
            score: 0.0,
        };
        let c = Constraints::default();
        let held = vec![FramePair {
            fg: fg.clone().into(),
            bg: bg.clone().into(),
            near: Vec::new(),
        }];
        let want = refine(geo, &held, start, 4.0, c, &cancel).unwrap();
        drop(held);
        // Keys 0 and 1: the pair; 2: a fg frame that matches nothing, whose bg (3) is gone.
        let fetches = std::sync::atomic::AtomicUsize::new(0);
        let fetch = |k: usize| {
            fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match k {
                0 => Some(fg.clone()),
                1 => Some(bg.clone()),
                2 => Some(other.clone()),
                _ => None,
            }
        };
        let frame = |key| Frame::Fetched { key, fetch: &fetch };
        let pairs = vec![
            FramePair {
                fg: frame(2),
                bg: frame(3),
                near: Vec::new(),
            },
            FramePair {
                fg: frame(0),
                bg: frame(1),
                near: Vec::new(),
            },
        ];
        let mut cache = LevelCache::default();
        let got =
            refine_cached(geo, &pairs, start, 4.0, c, &mut cache, &CpuKernels, &cancel).unwrap();
        assert_eq!(
            (got.x, got.y, got.scale, got.score),
            (want.x, want.y, want.scale, want.score)
        );
        assert!(fetches.into_inner() >= 4, "fetched at each level");
        assert_eq!(Arc::strong_count(&fg), 1, "the fg is not kept");
        assert_eq!(Arc::strong_count(&bg), 1, "the bg is not kept");
        assert!(cache.bg.values().all(|e| e.0.is_none()));
    }

    /// A camera panning 3 px a frame over a wide scene in which an object moves on its own:
    /// pairs whose bg frame is one off (in either direction) fit a footprint off by the pan;
    /// with their neighbours as `near` frames the refinement finds the footprint and the right
    /// frames together.
    #[test]
    fn pairs_a_frame_off_in_a_pan_are_mended_by_their_near_frames() {
        let cancel = Cancel::new();
        let world = scene(270, 640, 5);
        let moment = |k: usize| -> Image {
            let mut img = world.slice(ndarray::s![.., 3 * k..3 * k + 480]).to_owned();
            // An object moving down 4 px a frame, whatever the camera does.
            for y in 40 + 4 * k..64 + 4 * k {
                for x in 250..274 {
                    img[[y, x]] = 255.0 - img[[y, x]];
                }
            }
            img
        };
        let (fx, fy, fw, fh) = (131.0, 57.0, 200.0, 120.0);
        let fg = |k: usize| {
            let r = Rect {
                x: fx,
                y: fy,
                w: fw,
                h: fh,
            };
            resample(&moment(k), r, 320, 192).mapv(|v| 0.7 * v + 20.0)
        };
        let geo = Geometry {
            fg: (320, 192),
            bg: (480, 270),
        };
        let thumb = |img: Image| Arc::new(Thumb::from_image(&img));
        // fg moments 6, 9, 12 paired with bg frames 7, 8 and 13.
        let pairs = |near: bool| -> Vec<FramePair> {
            [(6, 7), (9, 8), (12, 13)]
                .into_iter()
                .map(|(i, j)| FramePair {
                    fg: thumb(fg(i)).into(),
                    bg: thumb(moment(j)).into(),
                    near: if near {
                        vec![thumb(moment(j - 1)).into(), thumb(moment(j + 1)).into()]
                    } else {
                        Vec::new()
                    },
                })
                .collect()
        };
        let start = Estimate {
            x: fx + 2.0,
            y: fy - 1.0,
            scale: fw / 320.0 * 1.01,
            score: 0.0,
        };
        let off = |e: &Estimate| {
            [
                (e.x - fx).abs(),
                (e.y - fy).abs(),
                (e.x + 320.0 * e.scale - fx - fw).abs(),
                (e.y + 192.0 * e.scale - fy - fh).abs(),
            ]
            .into_iter()
            .fold(0.0, f64::max)
        };
        let plain = refine(
            geo,
            &pairs(false),
            start,
            4.0,
            Constraints::default(),
            &cancel,
        )
        .unwrap();
        let mut cache = LevelCache::default();
        assert!(
            near_fits_better(geo, &pairs(true), plain, &mut cache, &CpuKernels),
            "a neighbour fits better than some pair's own frame at {plain:?}"
        );
        let near = refine(
            geo,
            &pairs(true),
            start,
            4.0,
            Constraints::default(),
            &cancel,
        )
        .unwrap();
        assert!(off(&near) <= 0.5, "{near:?}, {} px off", off(&near));
        assert!(
            near.score > plain.score + 0.01,
            "{near:?} against {plain:?}"
        );
        // Without them: 1.4 px off at 0.82 (here); with them: 0.002 px at 0.999.
    }

    #[test]
    fn a_fg_with_the_bg_s_framing_covers_it_whole() {
        let cancel = Cancel::new();
        // The same view recorded at 1.5x: the footprint is the whole bg, touching every border.
        let bg = scene(240, 320, 5);
        let full = Rect {
            x: 0.0,
            y: 0.0,
            w: 320.0,
            h: 240.0,
        };
        let fg = resample(&bg, full, 480, 360).mapv(|v| 0.8 * v + 25.0);
        let geo = Geometry {
            fg: (480, 360),
            bg: (320, 240),
        };
        let bf = 2.0;
        let bg_t = vec![downscale_image(&bg, 2)];
        let fg_t = vec![downscale_image(&fg, 3)];
        let c = coarse(geo, &bg_t, bf, &fg_t, 3.0, Constraints::default(), &cancel)
            .unwrap()
            .unwrap();
        let pairs = vec![FramePair {
            fg: Arc::new(Thumb::from_image(&fg)).into(),
            bg: Arc::new(Thumb::from_image(&bg)).into(),
            near: Vec::new(),
        }];
        let e = refine(geo, &pairs, c.estimate, bf, Constraints::default(), &cancel).unwrap();
        let far = (
            (e.x + 480.0 * e.scale - 320.0).abs(),
            (e.y + 360.0 * e.scale - 240.0).abs(),
        );
        assert!(
            e.x.abs() <= 0.25 && e.y.abs() <= 0.25,
            "{e:?} from {:?}",
            c.estimate
        );
        assert!(far.0 <= 0.5 && far.1 <= 0.5, "{e:?} {far:?}");
    }

    #[test]
    fn a_search_in_time_finds_the_moment_every_sample_shows() {
        let cancel = Cancel::new();
        // 40 bg frames, each a different scene; fg samples show bg frames 17, 20, 23 (stride
        // 3) through a footprint of 64x36 at (40, 20), recorded at 1.5x.
        let bg: Vec<Image> = (0..40).map(|j| scene(90, 160, 100 + j)).collect();
        let r = Rect {
            x: 40.0,
            y: 20.0,
            w: 64.0,
            h: 36.0,
        };
        let fg: Vec<Image> = [17, 20, 23]
            .iter()
            .map(|&j| resample(&bg[j], r, 96, 54).mapv(|v| 0.9 * v + 10.0))
            .collect();
        let geo = Geometry {
            fg: (96, 54),
            bg: (160, 90),
        };
        let found = coarse_in_time(
            geo,
            &bg,
            1.0,
            &fg,
            1.0,
            3,
            Constraints::default(),
            1.025,
            &cancel,
        )
        .unwrap()
        .unwrap();
        assert_eq!(found.t, 17, "{found:?}");
        let e = found.estimate;
        assert!(
            (e.x - 40.0).abs() <= 1.0 && (e.y - 20.0).abs() <= 1.0,
            "{e:?}"
        );
        assert!((e.scale * 96.0 - 64.0).abs() <= 2.0, "{e:?}");
    }
}
