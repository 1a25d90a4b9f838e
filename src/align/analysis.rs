// SPDX-License-Identifier: MIT

//! The whole offline analysis: spatial search on thumbnails, a first temporal alignment at the
//! coarse footprint to find frame pairs that show the same moment, spatial refinement on those
//! pairs at full resolution, and the final temporal alignment at the refined footprint.

use super::features::{self, Feature, Image, Rect, Sides, Thumb, Thumbs};
use super::spatial::{self, Constraints, Estimate, FramePair, Geometry};
use super::temporal::{self, FeatureRows, Features};
use super::{Cancel, Cancelled};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// fg frames sampled for the coarse spatial search.
const FG_SAMPLES: usize = 6;
/// bg frames sampled for the coarse spatial search, at most.
const BG_SAMPLES: usize = 48;
/// Frame pairs used to refine the footprint at full resolution.
const REFINE_PAIRS: usize = 6;

/// bg frames either side of a refinement pair's first match whose luma the refinement may
/// take: the second round's match is within one of the first, is also tried one either side,
/// and may then take a neighbour of that (see [`finish`]).
const PAIR_REACH: usize = 3;
/// Largest side of the footprint feature grid.
const GRID_MAX: usize = 32;

/// The full-resolution luma of a frame, when it is at hand (bytes at factor 1).
pub type Luma<'a> = dyn Fn(Side, usize) -> Option<std::sync::Arc<Thumb>> + Sync + 'a;

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Bg,
    Fg,
}

/// What the final temporal alignment compares.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Region {
    /// The whole footprint.
    #[default]
    Footprint,
    /// A band this many bg px wide along the inside of the fg's edges where the bg shows (all
    /// four when the fg covers the bg): for a fg whose interior differs from the bg.
    Edges(f64),
}

/// The analysis's inputs: every frame's thumbnail, the sizes, what the user fixed, the nominal
/// playback speed (bg frames per fg frame) when the frame rates say one, and what to match.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub fg: &'a dyn Thumbs,
    pub bg: &'a dyn Thumbs,
    /// Where the cost matrices' dot products are computed.
    pub dots: &'a dyn super::kernels::Kernels,
    /// Where features may be kept outside memory.
    pub spills: &'a dyn temporal::Spills,
    pub geometry: Geometry,
    pub constraints: Constraints,
    pub nominal_rate: Option<f64>,
    pub region: Region,
    /// Each fg frame's slot on its frame grid, where frames were dropped (a variable frame
    /// rate, [`super::timing::slots`]): the temporal alignment steps through the slots, so
    /// that a gap of dropped frames is a gap in the bg too. `None`: one slot per frame.
    pub fg_slots: Option<&'a [usize]>,
}

/// The result.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// Footprint top-left in bg pixels (sub-pixel) and footprint width / fg width.
    pub x: f64,
    pub y: f64,
    pub scale: f64,
    /// Mean NCC of matched frame pairs at the footprint, in [-1, 1].
    pub spatial_confidence: f64,
    /// How far the footprint search's best score stands above what the same search scores for
    /// content that does not show the bg's scene, in [0, 1] ([`spatial::calibrated`]); NaN
    /// where no search was made (a footprint set by hand, a re-fit).
    pub spatial_calibrated: f64,
    /// bg frame index of every fg frame.
    pub mapping: Vec<usize>,
    /// Cost of each fg frame's match (1 - NCC of footprint features).
    pub costs: Vec<f32>,
    pub mean_cost: f64,
    /// Mean distinctiveness of the matches, in [0, 1].
    pub temporal_confidence: f64,
    /// Playback speed found (bg frames per fg frame).
    pub rate: Option<f64>,
    /// Seconds spent per stage.
    pub timings: Timings,
}

impl Alignment {
    /// Whether its footprint is trusted: the fg shows the bg's scene there. The calibrated
    /// confidence is at least [`super::MIN_CALIBRATED`]; where none was measured (a re-fit),
    /// the spatial confidence at least [`super::MIN_SPATIAL_CONFIDENCE`]. Not when NaN.
    pub fn placed(&self) -> bool {
        if self.spatial_calibrated.is_nan() {
            self.spatial_confidence >= super::MIN_SPATIAL_CONFIDENCE
        } else {
            self.spatial_calibrated >= super::MIN_CALIBRATED
        }
    }

    /// Whether its frame mapping is trusted too: placed, and a temporal confidence of at least
    /// [`super::MIN_TEMPORAL_CONFIDENCE`]. Otherwise frames are mapped by running time.
    pub fn mapped(&self) -> bool {
        self.placed() && self.temporal_confidence >= super::MIN_TEMPORAL_CONFIDENCE
    }
}

/// Seconds spent per stage of the analysis, accumulated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timings(pub Vec<(&'static str, f64)>);

impl Timings {
    /// Runs `f`, adding its time to `stage`.
    pub fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let r = f();
        let s = t.elapsed().as_secs_f64();
        match self.0.iter_mut().find(|(n, _)| *n == stage) {
            Some((_, v)) => *v += s,
            None => self.0.push((stage, s)),
        }
        r
    }
}

/// `n` indices spread evenly over `0..len`.
fn spread(len: usize, n: usize) -> Vec<usize> {
    if len == 0 || n == 0 {
        return Vec::new();
    }
    let n = n.min(len);
    (0..n).map(|k| (k * len + len / 2) / n).collect()
}

/// Score of the coarse search (mean NCC of the fg samples) above which its bg samples, spread
/// over the whole bg, are taken to have shown the fg samples' moments.
const GOOD_COARSE: f64 = 0.8;
/// bg frames the dense coarse search looks at, at most.
const DENSE_SAMPLES: usize = 1024;

/// fg samples of the dense search, all at one moment each, a common offset apart.
const DENSE_FG: usize = 4;
/// bg frames between the dense search's samples, at least (a third of a second at 24 fps:
/// the search around its result looks between them).
const DENSE_MIN_STEP: usize = 8;

/// The coarse search for long inputs whose content keeps changing, where bg samples spread
/// over the whole bg may show none of the fg samples' moments: [`DENSE_FG`] fg frames about
/// two seconds apart from the middle of the fg are searched against up to [`DENSE_SAMPLES`]
/// bg frames on half-size thumbnails, in offset, scale and time at once (every sample at the
/// same moment, at the nominal speed), which gives the bg frame the middle of the fg shows;
/// then every fg sample is searched against the bg frames around where that puts it, as
/// [`spatial::coarse`] does.
fn dense_coarse(
    input: &Input<'_>,
    fg_idx: &[usize],
    rotated: bool,
    cancel: &Cancel,
) -> Result<Option<spatial::Coarse>, Cancelled> {
    let (n, m) = (input.fg.len(), input.bg.len());
    let (Some(bg0), Some(fg0)) = (input.bg.first(), input.fg.first()) else {
        return Ok(None);
    };
    if fg_idx.is_empty() || m == 0 {
        return Ok(None);
    }
    let (bg_factor, fg_factor) = (bg0.factor as f64, fg0.factor as f64);
    let rate = input.nominal_rate.filter(|r| *r > 0.0).unwrap_or(1.0);
    let k = m.div_ceil(DENSE_SAMPLES).max(DENSE_MIN_STEP);
    let dense: Vec<usize> = (0..m).step_by(k).collect();
    // About 48 bg frames (two seconds at 24 fps) between fg samples.
    let stride = 48usize.div_ceil(k).max(1);
    let d = ((stride * k) as f64 / rate).round().max(1.0) as usize;
    let span = (DENSE_FG - 1) * d;
    if span >= n {
        return Ok(None);
    }
    let i0 = (n - span) / 2;
    let half = |t: &Thumb| features::downscale_image(&t.image(), 2);
    let bgs: Vec<Image> = dense.par_iter().map(|&j| half(&input.bg.get(j))).collect();
    let turn = |i: Image| if rotated { rotate_half_turn(&i) } else { i };
    let fgs: Vec<Image> = (0..DENSE_FG)
        .map(|r| turn(half(&input.fg.get(i0 + r * d))))
        .collect();
    cancel.check()?;
    let Some(found) = spatial::coarse_in_time(
        input.geometry,
        &bgs,
        bg_factor * 2.0,
        &fgs,
        fg_factor * 2.0,
        stride,
        input.constraints,
        spatial::DENSE_SCALE_STEP,
        cancel,
    )?
    else {
        return Ok(None);
    };
    let j0 = dense[found.t];
    let step = (k as f64 / 2.0).max(1.0);
    let mut around: Vec<usize> = fg_idx
        .iter()
        .flat_map(|&i| {
            let j = j0 as f64 + rate * (i as f64 - i0 as f64);
            (-2..=2).map(move |s| (j + s as f64 * step).round().clamp(0.0, (m - 1) as f64) as usize)
        })
        .collect();
    around.sort_unstable();
    around.dedup();
    let bgs: Vec<Image> = around.iter().map(|&j| input.bg.get(j).image()).collect();
    let fgs: Vec<Image> = fg_idx
        .iter()
        .map(|&i| turn(input.fg.get(i).image()))
        .collect();
    cancel.check()?;
    spatial::coarse(
        input.geometry,
        &bgs,
        bg_factor,
        &fgs,
        fg_factor,
        input.constraints,
        cancel,
    )
}

/// An image turned upside down (rotated by half a turn): the same content statistics in an
/// arrangement that shows no scene of the bg.
fn rotate_half_turn(i: &Image) -> Image {
    i.slice(ndarray::s![..;-1, ..;-1]).to_owned()
}

/// Thumbnails whose content has texture (standard deviation of at least
/// [`features::FLAT_STD`], from integer sums of the bytes).
fn textured(t: &Thumb) -> bool {
    let n = t.data.len().max(1) as f64;
    let (s1, s2) = t.data.iter().fold((0u64, 0u64), |(a, b), &v| {
        let v = u64::from(v);
        (a + v, b + v * v)
    });
    let mean = s1 as f64 / n;
    let var = (s2 as f64 / n - mean * mean).max(0.0);
    var.sqrt() >= f64::from(features::FLAT_STD)
}

/// Footprint feature grid for a footprint of `fw` x `fh` bg px seen at `bg_factor`.
fn grid(fw: f64, fh: f64, bg_factor: f64) -> (usize, usize) {
    let gw = ((fw / bg_factor).round() as usize).clamp(4, GRID_MAX);
    let gh = ((gw as f64 * fh / fw).round() as usize).clamp(4, GRID_MAX);
    (gw, gh)
}

/// The feature grid of the footprint `e` when bg thumbnails are at `bg_factor`.
pub fn feature_grid(geo: Geometry, e: &Estimate, bg_factor: usize) -> (usize, usize) {
    grid(
        geo.fg.0 as f64 * e.scale,
        geo.fg.1 as f64 * e.scale,
        bg_factor as f64,
    )
}

/// The footprint `e` of a bg thumbnail resampled on grid `g` and normalised into `out`
/// (`g.0 * g.1` long); returns the image's mean and standard deviation.
pub fn bg_feature_into(
    t: &Thumb,
    geo: Geometry,
    e: &Estimate,
    g: (usize, usize),
    out: &mut [f32],
) -> (f32, f32) {
    let r = Rect {
        x: e.x,
        y: e.y,
        w: geo.fg.0 as f64 * e.scale,
        h: geo.fg.1 as f64 * e.scale,
    };
    let img = features::resample_thumb(t, r.scaled(1.0 / t.factor as f64), g.0, g.1);
    features::normalize_into(&img, out)
}

/// A whole fg thumbnail resampled on grid `g` and normalised into `out`, as
/// [`bg_feature_into`].
pub fn fg_feature_into(t: &Thumb, geo: Geometry, g: (usize, usize), out: &mut [f32]) -> (f32, f32) {
    let r = Rect {
        x: 0.0,
        y: 0.0,
        w: geo.fg.0 as f64 / t.factor as f64,
        h: geo.fg.1 as f64 / t.factor as f64,
    };
    features::normalize_into(&features::resample_thumb(t, r, g.0, g.1), out)
}

/// Features of a stream: in memory, or spilled (see [`Input::spills`]).
type Rows = std::sync::Arc<dyn FeatureRows>;

fn bg_features(input: &Input<'_>, e: &Estimate, g: (usize, usize)) -> Rows {
    let (thumbs, geo) = (input.bg, input.geometry);
    temporal::build_features(thumbs.len(), g.0 * g.1, input.spills, |i, out| {
        bg_feature_into(&thumbs.get(i), geo, e, g, out)
    })
}

fn fg_features(input: &Input<'_>, g: (usize, usize)) -> Rows {
    let (thumbs, geo) = (input.fg, input.geometry);
    temporal::build_features(thumbs.len(), g.0 * g.1, input.spills, |i, out| {
        fg_feature_into(&thumbs.get(i), geo, g, out)
    })
}

/// Largest bg step between consecutive fg frames that DTW allows, from the nominal playback
/// speed (bg frames per fg frame) when known.
pub fn max_step(nominal_rate: Option<f64>) -> usize {
    match nominal_rate {
        Some(r) if r > 0.0 => ((r * 1.25).ceil() as usize + 1).min(9),
        _ => 5,
    }
}

#[derive(Debug, Clone)]
struct Temporal {
    path: temporal::Path,
    distinct: Vec<f32>,
    rate: Option<f64>,
    medians: Vec<f32>,
}

fn temporal_at(
    input: &Input<'_>,
    e: &Estimate,
    fg_feats: &mut Option<((usize, usize), Rows)>,
    timings: &mut Timings,
    previous: Option<&Temporal>,
    cancel: &Cancel,
) -> Result<Temporal, Cancelled> {
    let geo = input.geometry;
    let bg_factor = input.bg.first().map(|t| t.factor).unwrap_or(1);
    let g = feature_grid(geo, e, bg_factor);
    if fg_feats.as_ref().is_none_or(|(gg, _)| *gg != g) {
        let f = timings.time("features", || fg_features(input, g));
        *fg_feats = Some((g, f));
    }
    let Some((_, fg)) = fg_feats.as_ref() else {
        unreachable!("set above")
    };
    cancel.check()?;
    let bg = timings.time("features", || bg_features(input, e, g));
    timings.time("temporal", || {
        temporal_of(input, fg.as_ref(), bg.as_ref(), previous, cancel)
    })
}

/// bg frames either side of the previous path that a later temporal alignment (at a refined
/// footprint) considers.
const NEAR_RADIUS: usize = 24;

/// Temporal alignment on features of both streams; near `previous` when given (an alignment
/// of the same streams at a slightly different footprint).
fn temporal_of(
    input: &Input<'_>,
    fg: &dyn FeatureRows,
    bg: &dyn FeatureRows,
    previous: Option<&Temporal>,
    cancel: &Cancel,
) -> Result<Temporal, Cancelled> {
    match input.fg_slots.filter(|s| s.len() == fg.rows()) {
        None => temporal_on(input, fg, bg, previous, cancel),
        Some(slots) => {
            // Aligned on the grid, every empty slot showing its nearest frame; read back at
            // the frames' own slots.
            let gridded = Remapped::slotted(fg, slots);
            let previous = previous.map(|p| p.at(&gridded.frames()));
            let t = temporal_on(input, &gridded, bg, previous.as_ref(), cancel)?;
            Ok(t.at(slots))
        }
    }
}

impl Temporal {
    /// This alignment's rows `rows`, in that order.
    fn at(&self, rows: &[usize]) -> Temporal {
        let pick = |v: &[f32]| rows.iter().map(|&r| v[r]).collect::<Vec<f32>>();
        Temporal {
            path: temporal::Path {
                bg: rows.iter().map(|&r| self.path.bg[r]).collect(),
                cost: pick(&self.path.cost),
            },
            distinct: pick(&self.distinct),
            rate: self.rate,
            medians: pick(&self.medians),
        }
    }
}

/// bg frames read per batch when looking for damaged ones.
const DAMAGE_BATCH: usize = 1024;

/// bg frames that differ from both neighbours far more than the neighbours differ from each
/// other (a frame damaged by lost slices, a one-frame flash): their features are not to be
/// trusted, and the temporal alignment sees them as their neighbours' mean instead.
fn damaged_bg(bg: &dyn FeatureRows) -> Vec<usize> {
    let m = bg.rows();
    let mut out = Vec::new();
    let mut from = 0;
    while from + 2 < m {
        let to = (from + DAMAGE_BATCH).min(m);
        out.extend(
            damaged_in(&bg.range(from..to))
                .into_iter()
                .map(|k| from + k),
        );
        // Overlapping by two rows: every frame is judged with both neighbours.
        from = to - 2;
    }
    out
}

/// [`damaged_bg`] among the rows of `f` (its first and last rows are not judged).
pub fn damaged_in(f: &Features) -> Vec<usize> {
    (1..f.len().saturating_sub(1))
        .filter(|&k| {
            let (prev, next) = (
                temporal::cost_at(f, k - 1, f, k),
                temporal::cost_at(f, k, f, k + 1),
            );
            let skip = temporal::cost_at(f, k - 1, f, k + 1);
            prev.min(next) > 3.0 * skip + 0.05
        })
        .collect()
}

/// Rows `damaged` of `f` ([`damaged_in`]) shown as their neighbours' mean, as the offline
/// analysis sees them.
pub fn mend_damaged(f: &mut Features, damaged: &[usize]) {
    if damaged.is_empty() {
        return;
    }
    let original = f.clone();
    let d = f.d;
    for &k in damaged {
        let (Some(a), b) = (k.checked_sub(1), k + 1) else {
            continue;
        };
        if b >= original.len() {
            continue;
        }
        mean_row(
            original.row(a),
            original.row(b),
            &mut f.q[k * d..(k + 1) * d],
        );
        f.flat[k] = original.flat[a] && original.flat[b];
        f.mean[k] = (original.mean[a] + original.mean[b]) / 2.0;
    }
}

/// The mean of two feature rows in fixed point.
fn mean_row(a: &[i16], b: &[i16], out: &mut [i16]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = ((i32::from(x) + i32::from(y)) / 2) as i16;
    }
}

/// Where a row of [`Remapped`] comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// A row of the inner rows.
    Row(usize),
    /// The mean of two inner rows.
    Mean(usize, usize),
}

/// Rows made from another's: the fg on its frame grid ([`Remapped::slotted`]), the bg with its
/// damaged frames mended ([`Remapped::repaired`]).
#[derive(Debug)]
struct Remapped<'a> {
    inner: &'a dyn FeatureRows,
    source: Vec<Source>,
    flat: Vec<bool>,
    mean: Vec<f32>,
}

impl<'a> Remapped<'a> {
    fn new(inner: &'a dyn FeatureRows, source: Vec<Source>) -> Self {
        let meta = inner.meta();
        let (flat, mean) = source
            .iter()
            .map(|s| match *s {
                Source::Row(r) => (meta.flat[r], meta.mean[r]),
                Source::Mean(a, b) => (
                    meta.flat[a] && meta.flat[b],
                    (meta.mean[a] + meta.mean[b]) / 2.0,
                ),
            })
            .unzip();
        Remapped {
            inner,
            source,
            flat,
            mean,
        }
    }

    /// The fg on its frame grid: slot `v` shows its own frame, or the nearest one for a slot
    /// whose frame was dropped (`slots`: each frame's slot, ascending).
    fn slotted(inner: &'a dyn FeatureRows, slots: &[usize]) -> Self {
        let n = slots.last().map_or(0, |&l| l + 1);
        let source = (0..n)
            .map(|v| {
                let k = slots.partition_point(|&s| s < v);
                Source::Row(match (k.checked_sub(1), slots.get(k)) {
                    (Some(a), Some(&b)) if b - v < v - slots[a] => k,
                    (Some(a), _) => a,
                    (None, _) => k,
                })
            })
            .collect();
        Self::new(inner, source)
    }

    /// The bg with its `damaged` frames ([`damaged_bg`], none first or last) shown as their
    /// neighbours' mean.
    fn repaired(inner: &'a dyn FeatureRows, damaged: &[usize]) -> Self {
        let mut source: Vec<Source> = (0..inner.rows()).map(Source::Row).collect();
        for &j in damaged {
            source[j] = Source::Mean(j - 1, j + 1);
        }
        Self::new(inner, source)
    }

    /// The inner row each row shows (the first of a mean).
    fn frames(&self) -> Vec<usize> {
        self.source
            .iter()
            .map(|s| match *s {
                Source::Row(r) | Source::Mean(r, _) => r,
            })
            .collect()
    }
}

impl FeatureRows for Remapped<'_> {
    fn rows(&self) -> usize {
        self.source.len()
    }

    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn meta(&self) -> temporal::Meta<'_> {
        temporal::Meta {
            flat: &self.flat,
            mean: &self.mean,
        }
    }

    fn select(&self, idx: &[usize]) -> Features {
        let first: Vec<usize> = idx
            .iter()
            .map(|&v| match self.source[v] {
                Source::Row(r) | Source::Mean(r, _) => r,
            })
            .collect();
        let mut f = self.inner.select(&first);
        let d = f.d;
        for (r, &v) in idx.iter().enumerate() {
            let Source::Mean(a, b) = self.source[v] else {
                continue;
            };
            let n = self.inner.select(&[a, b]);
            mean_row(n.row(0), n.row(1), &mut f.q[r * d..(r + 1) * d]);
            f.flat[r] = self.flat[v];
            f.mean[r] = self.mean[v];
        }
        f
    }
}

fn temporal_on(
    input: &Input<'_>,
    fg: &dyn FeatureRows,
    bg: &dyn FeatureRows,
    previous: Option<&Temporal>,
    cancel: &Cancel,
) -> Result<Temporal, Cancelled> {
    let damaged = damaged_bg(bg);
    let repaired = (!damaged.is_empty()).then(|| Remapped::repaired(bg, &damaged));
    let bg: &dyn FeatureRows = match &repaired {
        Some(r) => r,
        None => bg,
    };
    let max_step = max_step(input.nominal_rate);
    let temporal::Aligned {
        path,
        line,
        distinct,
        medians,
        ..
    } = match previous {
        Some(p) => temporal::align_near(
            fg,
            bg,
            &p.path.bg,
            Some(&p.medians),
            NEAR_RADIUS,
            max_step,
            temporal::Priors::default(),
            input.dots,
            cancel,
        )?,
        None => temporal::align_features(
            fg,
            bg,
            max_step,
            temporal::Priors::default(),
            input.dots,
            cancel,
        )?,
    };
    Ok(Temporal {
        path,
        distinct,
        rate: line.map(|l| l.rate),
        medians,
    })
}

/// Samples along the longer side of an edge band.
const BAND_SAMPLES: usize = 96;

/// Edge-band features of every frame of both streams, from full-resolution luma: bands `width`
/// bg px wide inside the footprint's edges where the bg shows.
fn edge_features(
    input: &Input<'_>,
    e: &Estimate,
    width: f64,
    luma: &Luma<'_>,
    cancel: &Cancel,
) -> Result<(Features, Features), Cancelled> {
    let geo = input.geometry;
    let (fw, fh) = (geo.fg.0 as f64 * e.scale, geo.fg.1 as f64 * e.scale);
    let mut sides = Sides {
        left: e.x > 0.5,
        right: e.x + fw < geo.bg.0 as f64 - 0.5,
        top: e.y > 0.5,
        bottom: e.y + fh < geo.bg.1 as f64 - 0.5,
    };
    if !sides.any() {
        sides = Sides::ALL;
    }
    let bg_rect = Rect {
        x: e.x,
        y: e.y,
        w: fw,
        h: fh,
    };
    let fg_rect = Rect {
        x: 0.0,
        y: 0.0,
        w: geo.fg.0 as f64,
        h: geo.fg.1 as f64,
    };
    let of = |side: Side, n: usize, r: Rect, w: f64| -> Result<Features, Cancelled> {
        let list: Vec<Option<Feature>> = (0..n)
            .into_par_iter()
            .map(|i| {
                if cancel.is_cancelled() {
                    return None;
                }
                luma(side, i).map(|t| {
                    features::normalize(&features::band(&t.image(), r, sides, w, BAND_SAMPLES))
                })
            })
            .collect();
        cancel.check()?;
        // A frame whose luma cannot be read counts as flat.
        let len = list.iter().flatten().map(|f| f.v.len()).next().unwrap_or(0);
        let list: Vec<Feature> = list
            .into_iter()
            .map(|f| {
                f.unwrap_or(Feature {
                    v: vec![0.0; len],
                    mean: 0.0,
                    std: 0.0,
                })
            })
            .collect();
        Ok(Features::new(&list))
    };
    let fg = of(Side::Fg, input.fg.len(), fg_rect, width / e.scale)?;
    let bg = of(Side::Bg, input.bg.len(), bg_rect, width)?;
    Ok((fg, bg))
}

/// fg frames among which the refinement pairs are chosen: the first ones only, so that a
/// second pass over a long, seekable input reads no further than this (and the bg frames they
/// match) to fetch them.
pub const REFINE_PREFIX: usize = 720;

/// The frames whose full-resolution luma the refinement needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Wanted {
    /// fg frames, ascending.
    pub fg: Vec<usize>,
    /// bg frames, ascending.
    pub bg: Vec<usize>,
}

impl Wanted {
    pub fn has(&self, side: Side, i: usize) -> bool {
        match side {
            Side::Fg => self.fg.binary_search(&i).is_ok(),
            Side::Bg => self.bg.binary_search(&i).is_ok(),
        }
    }

    /// Adds what another analysis wants, whose fg frame 0 is fg frame `fg_from` here.
    pub fn add(&mut self, other: &Wanted, fg_from: usize) {
        self.fg.extend(other.fg.iter().map(|&i| i + fg_from));
        self.bg.extend_from_slice(&other.bg);
        self.fg.sort_unstable();
        self.fg.dedup();
        self.bg.sort_unstable();
        self.bg.dedup();
    }

    pub fn is_empty(&self) -> bool {
        self.fg.is_empty() && self.bg.is_empty()
    }
}

/// An analysis after its coarse stages, waiting for full-resolution frames.
#[derive(Debug, Clone)]
pub struct Begun {
    est: Estimate,
    /// The coarse search's score calibrated against chance ([`spatial::calibrated`]); NaN
    /// for a footprint set by hand.
    calibrated: f64,
    from: f64,
    fg_feats: Option<((usize, usize), Rows)>,
    last: Temporal,
    /// The fg frames refinement uses, with the bg frame each was matched to.
    pairs: Vec<(usize, usize)>,
    pub wanted: Wanted,
    timings: Timings,
}

impl Begun {
    /// The bg frame the coarse temporal alignment matched to the first fg frame.
    pub fn first_match(&self) -> Option<usize> {
        self.last.path.bg.first().copied()
    }

    /// The bg frame the coarse temporal alignment matched to the last fg frame.
    pub fn last_match(&self) -> Option<usize> {
        self.last.path.bg.last().copied()
    }

    /// Whether the coarse stages found the fg in the bg: a footprint trusted (calibrated
    /// score at least [`super::MIN_CALIBRATED`], or set by hand) and matches distinct enough
    /// ([`super::MIN_TEMPORAL_CONFIDENCE`]), as [`Alignment::mapped`] asks of the whole.
    pub fn mapped(&self) -> bool {
        let placed = self.calibrated.is_nan() || self.calibrated >= super::MIN_CALIBRATED;
        placed && mean(&self.last.distinct) >= super::MIN_TEMPORAL_CONFIDENCE
    }

    /// The calibrated score and the temporal confidence of the coarse stages.
    pub fn confidences(&self) -> (f64, f64) {
        (self.calibrated, mean(&self.last.distinct))
    }
}

/// fg frames among which the refinement pairs are looked for first: the shorter the stretch,
/// the less a second pass over a long, seekable input reads to fetch them.
pub const REFINE_PREFIX_MIN: usize = 72;

/// In each of [`REFINE_PAIRS`] stretches of the fg's first textured frames, its best-matched
/// frame (lowest cost: the bg frame most likely shows the same moment). Among the first
/// `first` frames when they give that many confident matches; else twice as
/// many, and so on up to [`REFINE_PREFIX`] (a start that is black, flat or unmatched).
/// Only fg frames `textured` says have texture: a black fg frame matches the bg's black
/// frames far better than its typical bg frame, so it looks distinctive, yet no fit can be
/// read from it.
fn choose_pairs(
    t: &Temporal,
    first: usize,
    textured: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<(usize, usize)> {
    let all = t.path.bg.len().min(REFINE_PREFIX);
    let mut prefix = first.max(REFINE_PAIRS);
    loop {
        let n = all.min(prefix);
        let pairs = pairs_in(t, n, textured);
        let confident = pairs
            .iter()
            .filter(|p| t.distinct[p.0] >= temporal::CONFIDENT)
            .count();
        if n >= all || confident >= REFINE_PAIRS.min(n) {
            return pairs;
        }
        prefix *= 2;
    }
}

/// [`choose_pairs`] among the first `n` fg frames.
fn pairs_in(
    t: &Temporal,
    n: usize,
    textured: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<(usize, usize)> {
    // The stretches divide the textured frames among them, not the frames: a black opening
    // leaves none out.
    let usable: Vec<usize> = (0..n)
        .filter(|&i| t.distinct[i] > 0.0 && textured(i))
        .collect();
    let m = usable.len();
    let k = REFINE_PAIRS.min(m);
    (0..k)
        .filter_map(|s| {
            usable[s * m / k..(s + 1) * m / k]
                .iter()
                .copied()
                .min_by(|&a, &b| t.path.cost[a].total_cmp(&t.path.cost[b]))
                .map(|i| (i, t.path.bg[i]))
        })
        .collect()
}

/// A frame's full-resolution luma by its key in the refinement's [`spatial::LevelCache`]: fg
/// frame `i` is `2i`, bg frame `j` is `2j + 1`.
type Fetch<'a> = dyn Fn(usize) -> Option<Arc<Thumb>> + Sync + 'a;

fn frame_key(side: Side, i: usize) -> usize {
    match side {
        Side::Fg => 2 * i,
        Side::Bg => 2 * i + 1,
    }
}

fn key_frame(key: usize) -> (Side, usize) {
    let side = if key.is_multiple_of(2) {
        Side::Fg
    } else {
        Side::Bg
    };
    (side, key / 2)
}

/// The pairs' frames, fetched by `fetch` where a level is built from them (only the pairs
/// whose frames `at_hand` says are); with `near`, each pair's bg frame may also be either
/// neighbour of its match (see [`finish`]).
fn frame_pairs<'a>(
    pairs: &[(usize, usize)],
    fetch: &'a Fetch<'a>,
    at_hand: &(dyn Fn(Side, usize) -> bool + Sync),
    near: bool,
) -> Vec<FramePair<'a>> {
    let frame = |side: Side, i: usize| {
        at_hand(side, i).then_some(spatial::Frame::Fetched {
            key: frame_key(side, i),
            fetch,
        })
    };
    pairs
        .iter()
        .filter_map(|&(i, j)| {
            let near = if near {
                [j.checked_sub(1), j.checked_add(1)]
                    .into_iter()
                    .flatten()
                    .filter_map(|k| frame(Side::Bg, k))
                    .collect()
            } else {
                Vec::new()
            };
            Some(FramePair {
                fg: frame(Side::Fg, i)?,
                bg: frame(Side::Bg, j)?,
                near,
            })
        })
        .collect()
}

/// Whether frames are at hand for `luma`, each asked once (its luma fetched and let go).
struct AtHand<'a> {
    luma: &'a Luma<'a>,
    known: Mutex<HashMap<(Side, usize), bool>>,
}

impl<'a> AtHand<'a> {
    fn new(luma: &'a Luma<'a>) -> Self {
        AtHand {
            luma,
            known: Mutex::default(),
        }
    }

    fn has(&self, side: Side, i: usize) -> bool {
        if let Some(k) = self
            .known
            .lock()
            .ok()
            .and_then(|m| m.get(&(side, i)).copied())
        {
            return k;
        }
        let k = (self.luma)(side, i).is_some();
        if let Ok(mut m) = self.known.lock() {
            m.insert((side, i), k);
        }
        k
    }
}

/// The mean of `v` (0 when empty).
fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

/// The coarse stages: spatial search on thumbnails and a temporal alignment at that
/// footprint, which chooses the frames the refinement needs. `None` when there is nothing to
/// align (no textured frames, no candidate footprint).
pub fn begin(input: &Input<'_>, cancel: &Cancel) -> Result<Option<Begun>, Cancelled> {
    begin_within(input, REFINE_PREFIX_MIN, cancel)
}

/// [`begin`], its refinement pairs looked for among the first `first` fg frames (and twice as
/// many, and so on, while they give too few confident matches).
pub fn begin_within(
    input: &Input<'_>,
    first: usize,
    cancel: &Cancel,
) -> Result<Option<Begun>, Cancelled> {
    let geo = input.geometry;
    let (Some(bg0), Some(fg0)) = (input.bg.first(), input.fg.first()) else {
        return Ok(None);
    };
    let bg_factor = bg0.factor as f64;
    let fg_factor = fg0.factor as f64;
    let c = input.constraints;
    let fixed = c.x.is_some() && c.y.is_some() && c.scale.is_some();

    // 1. Coarse spatial search on textured samples.
    let tex: Vec<usize> = (0..input.fg.len())
        .into_par_iter()
        .filter(|&i| textured(&input.fg.get(i)))
        .collect();
    let fg_idx: Vec<usize> = spread(tex.len(), FG_SAMPLES)
        .into_iter()
        .map(|k| tex[k])
        .collect();
    let bg_idx = spread(input.bg.len(), BG_SAMPLES);
    let mut timings = Timings::default();
    let (est, calibrated) = if fixed {
        let est = Estimate {
            x: c.x.unwrap_or(0.0),
            y: c.y.unwrap_or(0.0),
            scale: c.scale.unwrap_or(1.0),
            score: 0.0,
        };
        (est, f64::NAN)
    } else {
        if fg_idx.is_empty() {
            return Ok(None);
        }
        let bgs: Vec<Image> = bg_idx.iter().map(|&j| input.bg.get(j).image()).collect();
        let fgs: Vec<Image> = fg_idx.iter().map(|&i| input.fg.get(i).image()).collect();
        let sparse = input.bg.len() > BG_SAMPLES * 4;
        // The search, and the same search for the fg samples turned upside down: what content
        // that does not show the bg's scene, with the same statistics, scores at these sizes.
        let search = |fgs: &[Image], rotated: bool| {
            let first = spatial::coarse(geo, &bgs, bg_factor, fgs, fg_factor, c, cancel)?;
            if !sparse
                || first
                    .as_ref()
                    .is_some_and(|r| r.estimate.score >= GOOD_COARSE)
            {
                return Ok(first);
            }
            let dense = dense_coarse(input, &fg_idx, rotated, cancel)?;
            Ok(match (first, dense) {
                (Some(a), Some(b)) => Some(if b.estimate.score > a.estimate.score {
                    b
                } else {
                    a
                }),
                (a, b) => a.or(b),
            })
        };
        let result = timings.time("coarse-spatial", || search(&fgs, false))?;
        let Some(result) = result else {
            return Ok(None);
        };
        let rotated: Vec<Image> = fgs.iter().map(rotate_half_turn).collect();
        let null = timings.time("null-spatial", || search(&rotated, true))?;
        let chance = null.map_or(0.0, |r| r.estimate.score);
        (
            result.estimate,
            spatial::calibrated(result.estimate.score, chance),
        )
    };

    // 2. Frame pairs that show the same moment, from a temporal alignment at this footprint.
    let mut fg_feats = None;
    let last = temporal_at(input, &est, &mut fg_feats, &mut timings, None, cancel)?;
    let pairs = choose_pairs(&last, first, &|i| tex.binary_search(&i).is_ok());
    let mut wanted = Wanted {
        fg: pairs.iter().map(|p| p.0).collect(),
        bg: pairs
            .iter()
            .flat_map(|p| {
                p.1.saturating_sub(PAIR_REACH)..=(p.1 + PAIR_REACH).min(input.bg.len() - 1)
            })
            .collect(),
    };
    wanted.fg.sort_unstable();
    wanted.fg.dedup();
    wanted.bg.sort_unstable();
    wanted.bg.dedup();
    Ok(Some(Begun {
        est,
        calibrated,
        from: if fixed { 1.0 } else { bg_factor },
        fg_feats,
        last,
        pairs,
        wanted,
        timings,
    }))
}

/// The fine stages. `luma` returns the full-resolution luma of the frames in
/// [`Begun::wanted`] (and, for [`Region::Edges`], of every frame).
pub fn finish(
    input: &Input<'_>,
    begun: Begun,
    luma: &Luma<'_>,
    cancel: &Cancel,
) -> Result<Alignment, Cancelled> {
    let geo = input.geometry;
    let Begun {
        mut est,
        calibrated,
        mut from,
        mut fg_feats,
        mut last,
        mut pairs,
        mut timings,
        ..
    } = begun;
    // 3. Refinement on the pairs at full resolution, then 4. temporal alignment at the refined
    //    footprint. Twice: pairs from the coarse footprint can be a frame apart, and motion
    //    between them biases the refinement; the second round takes the bg frame the refined
    //    alignment matches (within one frame of the first).
    // A refinement frame's luma is fetched where one of its pyramid levels is built and let
    // go after (the levels, cached for both rounds, keep crops only); whether it is at hand,
    // once.
    let fetch = |key: usize| {
        let (side, i) = key_frame(key);
        luma(side, i)
    };
    let fetch: &Fetch<'_> = &fetch;
    let at_hand = AtHand::new(luma);
    let at_hand = |side: Side, i: usize| at_hand.has(side, i);
    let mut levels = spatial::LevelCache::default();
    let fixed = {
        let c = input.constraints;
        c.x.is_some() && c.y.is_some() && c.scale.is_some()
    };
    for round in 0..2 {
        if round == 1 {
            pairs = pairs
                .iter()
                .filter_map(|&(i, j)| {
                    let k = last.path.bg[i];
                    (k.abs_diff(j) <= 1).then_some((i, k))
                })
                .collect();
        }
        // While the bg pans, a footprint off by the pan's step fits the neighbouring bg frame
        // almost as well as the right footprint fits the right frame, and a temporal alignment
        // at the wrong footprint prefers that neighbour: the two confirm each other (on a few
        // seconds of a steady pan, the fit lands px off at 0.997, or some pairs a frame off).
        // So the second round also fits the pairs shifted one bg frame either way, all
        // together, and keeps the best fit; then, where some pair's neighbour fits that
        // footprint better than its own bg frame, it refines once more letting each pair's bg
        // frame be either neighbour too (the best fit at each candidate footprint), which
        // mends pairs off in different directions. The right footprint fits the right frames
        // visibly better (0.9998 against 0.95-0.997): the scene's own motion does not follow
        // the pan.
        let shifts: &[isize] = if round == 1 && !fixed {
            &[0, -1, 1]
        } else {
            &[0]
        };
        let refine = move |frames: &[FramePair],
                           start: Estimate,
                           levels: &mut spatial::LevelCache,
                           timings: &mut Timings| {
            cancel.check()?;
            timings.time("refine", || {
                spatial::refine_cached(
                    geo,
                    frames,
                    start,
                    from,
                    input.constraints,
                    levels,
                    input.dots,
                    cancel,
                )
            })
        };
        let mut best: Option<(Estimate, Vec<(usize, usize)>)> = None;
        let mut whole = 0;
        for &d in shifts {
            let shifted: Vec<(usize, usize)> = pairs
                .iter()
                .filter_map(|&(i, j)| {
                    let k = j.checked_add_signed(d)?;
                    (k < input.bg.len()).then_some((i, k))
                })
                .collect();
            let frames = frame_pairs(&shifted, fetch, &at_hand, false);
            if d == 0 {
                whole = frames.len();
            } else if frames.is_empty() || frames.len() < whole {
                // Compared on as many pairs only.
                continue;
            }
            let e = refine(&frames, est, &mut levels, &mut timings)?;
            if best.as_ref().is_none_or(|b| e.score > b.0.score) {
                best = Some((e, shifted));
            }
        }
        if let Some((e, p)) = best {
            est = e;
            pairs = p;
        }
        let near = if shifts.len() > 1 {
            frame_pairs(&pairs, fetch, &at_hand, true)
        } else {
            Vec::new()
        };
        if spatial::near_fits_better(geo, &near, est, &mut levels, input.dots) {
            est = refine(&near, est, &mut levels, &mut timings)?;
        }
        // The first round ended with a sub-pixel fit at the finest level.
        from = 2.0 * spatial::finest_level(geo, est.scale) as f64;
        last = temporal_at(
            input,
            &est,
            &mut fg_feats,
            &mut timings,
            Some(&last),
            cancel,
        )?;
    }
    if let Region::Edges(width) = input.region {
        let (fg, bg) = timings.time("features", || {
            edge_features(input, &est, width, luma, cancel)
        })?;
        last = timings.time("temporal", || temporal_of(input, &fg, &bg, None, cancel))?;
    }
    Ok(alignment(est, calibrated, last, timings))
}

/// The result of an analysis that ended at footprint `est` with temporal alignment `last`.
fn alignment(est: Estimate, calibrated: f64, last: Temporal, timings: Timings) -> Alignment {
    Alignment {
        x: est.x,
        y: est.y,
        scale: est.scale,
        spatial_confidence: est.score,
        spatial_calibrated: calibrated,
        mean_cost: mean(&last.path.cost),
        temporal_confidence: mean(&last.distinct),
        costs: last.path.cost,
        mapping: last.path.bg,
        rate: last.rate,
        timings,
    }
}

/// A quick check of a footprint found before, `est`, on new frames: a temporal alignment at
/// it, then a fit on the best-matched pairs at the finest levels only, starting from `est`
/// (a px or two and a few scale steps around it; no coarse search, no shifted pairs). A
/// footprint that still fits as well as when it was found needs no full search: what a
/// periodic re-check tries first (a quarter of its cost). `None` when there is nothing to align.
pub fn refit(
    input: &Input<'_>,
    est: Estimate,
    luma: &Luma<'_>,
    cancel: &Cancel,
) -> Result<Option<Alignment>, Cancelled> {
    if input.bg.is_empty() || input.fg.is_empty() {
        return Ok(None);
    }
    let geo = input.geometry;
    let mut timings = Timings::default();
    let last = temporal_at(input, &est, &mut None, &mut timings, None, cancel)?;
    let fetch = |key: usize| {
        let (side, i) = key_frame(key);
        luma(side, i)
    };
    let at_hand = AtHand::new(luma);
    let frames = frame_pairs(
        &choose_pairs(&last, REFINE_PREFIX_MIN, &|i| textured(&input.fg.get(i))),
        &fetch,
        &|side, i| at_hand.has(side, i),
        false,
    );
    if frames.is_empty() {
        return Ok(None);
    }
    let from = 2.0 * spatial::finest_level(geo, est.scale) as f64;
    let e = timings.time("refine", || {
        spatial::refine_cached(
            geo,
            &frames,
            est,
            from,
            input.constraints,
            &mut spatial::LevelCache::default(),
            input.dots,
            cancel,
        )
    })?;
    // A check of a footprint found before: not searched, so not calibrated.
    Ok(Some(alignment(e, f64::NAN, last, timings)))
}

/// The whole analysis when every frame's luma is at hand. `None` when there is nothing to
/// align.
pub fn analyse(
    input: &Input<'_>,
    luma: &Luma<'_>,
    cancel: &Cancel,
) -> Result<Option<Alignment>, Cancelled> {
    match begin(input, cancel)? {
        Some(b) => finish(input, b, luma, cancel).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod verdict_tests {
    use super::*;

    fn with(spatial: f64, temporal: f64) -> Alignment {
        Alignment {
            x: 0.0,
            y: 0.0,
            scale: 1.0,
            spatial_confidence: spatial,
            spatial_calibrated: f64::NAN,
            mapping: Vec::new(),
            costs: Vec::new(),
            mean_cost: 0.0,
            temporal_confidence: temporal,
            rate: None,
            timings: Timings::default(),
        }
    }

    #[test]
    fn footprint_and_mapping_are_trusted_at_the_thresholds_and_not_on_nan() {
        assert!(with(0.5, 0.1).placed() && with(0.5, 0.1).mapped());
        assert!(!with(0.499, 0.9).placed() && !with(0.499, 0.9).mapped());
        // A footprint without a mapping: frames by running time.
        assert!(with(0.9, 0.099).placed() && !with(0.9, 0.099).mapped());
        assert!(!with(f64::NAN, 0.9).placed());
        assert!(with(0.9, f64::NAN).placed() && !with(0.9, f64::NAN).mapped());
    }

    #[test]
    fn a_calibrated_confidence_decides_where_there_is_one() {
        let calibrated = |raw: f64, c: f64| Alignment {
            spatial_calibrated: c,
            ..with(raw, 0.9)
        };
        // Colour bars over a real bg: a raw score that passes, at chance's level.
        assert!(!calibrated(0.699, 0.08).placed());
        // Sensor noise lowers the raw score of a real match, not its distance from chance.
        assert!(calibrated(0.45, 0.7).placed());
        assert!(calibrated(0.99, 0.5).placed() && !calibrated(0.99, 0.499).placed());
    }

    #[test]
    fn calibration_measures_the_way_from_chance_to_a_perfect_match() {
        assert_eq!(spatial::calibrated(1.0, 0.4), 1.0);
        assert!((spatial::calibrated(0.7, 0.4) - 0.5).abs() < 1e-12);
        // At or below chance: 0; chance below zero is no lower a bar than zero.
        assert_eq!(spatial::calibrated(0.3, 0.4), 0.0);
        assert!((spatial::calibrated(0.6, -0.3) - 0.6).abs() < 1e-12);
        assert!((spatial::calibrated(0.6, f64::NAN) - 0.6).abs() < 1e-12);
        assert!(spatial::calibrated(f64::NAN, 0.4).is_nan());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thumbs(n: usize, w: usize, h: usize, seed: u32) -> Vec<Thumb> {
        let mut s = seed;
        (0..n)
            .map(|_| Thumb {
                factor: 1,
                width: w,
                height: h,
                data: (0..w * h)
                    .map(|_| {
                        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        (s >> 24) as u8
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn a_bg_frame_unlike_both_its_neighbours_is_seen_as_their_mean() {
        // A slowly changing picture, frame 5 damaged (another pattern altogether).
        let rows = Features::build(10, 64, |i, out| {
            for (c, v) in out.iter_mut().enumerate() {
                *v = if i == 5 {
                    ((c * 7919) % 13) as f32 - 6.0
                } else {
                    (c as f32 * 0.3 + i as f32 * 0.05).sin()
                };
            }
            let mean = out.iter().sum::<f32>() / out.len() as f32;
            out.iter_mut().for_each(|v| *v -= mean);
            let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
            out.iter_mut().for_each(|v| *v /= norm);
            (100.0, 20.0)
        });
        assert_eq!(damaged_bg(&rows), [5]);
        let r = Remapped::repaired(&rows, &[5]);
        let fixed = r.select(&[4, 5, 6]);
        // Close to both neighbours now, as a frame between them would be.
        assert!(temporal::cost_at(&fixed, 1, &fixed, 0) < 0.01);
        assert!(temporal::cost_at(&fixed, 1, &fixed, 2) < 0.01);
        // A fade or a steady change is no damage.
        let steady = Features::build(10, 64, |i, out| {
            for (c, v) in out.iter_mut().enumerate() {
                *v = (c as f32 * 0.3 + i as f32 * 0.3).sin();
            }
            let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
            out.iter_mut().for_each(|v| *v /= norm);
            (100.0, 20.0)
        });
        assert!(damaged_bg(&steady).is_empty());
    }

    #[test]
    fn dropped_frames_leave_slots_that_show_the_nearest_frame() {
        let rows = Features::build(6, 4, |i, out| {
            out.fill(i as f32);
            (i as f32, 1.0)
        });
        let g = Remapped::slotted(&rows, &[0, 1, 3, 4, 7, 8]);
        assert_eq!(g.frames(), [0, 1, 1, 2, 3, 3, 4, 4, 5]);
        assert_eq!(g.rows(), 9);
        let t = Temporal {
            path: temporal::Path {
                bg: (10..19).collect(),
                cost: (0..9).map(|c| c as f32).collect(),
            },
            distinct: vec![0.5; 9],
            rate: Some(1.0),
            medians: vec![0.2; 9],
        };
        // Read back at the frames' own slots: a gap in the fg is a gap in the bg.
        let back = t.at(&[0, 1, 3, 4, 7, 8]);
        assert_eq!(back.path.bg, [10, 11, 13, 14, 17, 18]);
        assert_eq!(back.path.cost, [0.0, 1.0, 3.0, 4.0, 7.0, 8.0]);
    }

    #[test]
    fn a_cancelled_analysis_stops() {
        let (fg, bg) = (thumbs(20, 40, 30, 1), thumbs(30, 80, 60, 2));
        let input = Input {
            fg: &fg,
            bg: &bg,
            dots: &crate::align::kernels::CpuKernels,
            spills: &temporal::InMemory,
            geometry: Geometry {
                fg: (40, 30),
                bg: (80, 60),
            },
            constraints: Constraints::default(),
            nominal_rate: None,
            region: Region::Footprint,
            fg_slots: None,
        };
        let cancel = Cancel::new();
        cancel.cancel();
        let luma = |_: Side, _: usize| None;
        assert_eq!(analyse(&input, &luma, &cancel), Err(Cancelled));
    }

    #[test]
    fn wanted_frames_of_a_stretch_are_added_at_its_place() {
        let mut w = Wanted {
            fg: vec![1, 5],
            bg: vec![2, 3],
        };
        w.add(
            &Wanted {
                fg: vec![0, 2],
                bg: vec![3, 9],
            },
            4,
        );
        assert_eq!(w.fg, vec![1, 4, 5, 6]);
        assert_eq!(w.bg, vec![2, 3, 9]);
        assert!(!w.is_empty() && Wanted::default().is_empty());
    }

    #[test]
    fn spread_indices() {
        assert_eq!(spread(10, 3), vec![1, 5, 8]);
        assert_eq!(spread(2, 5), vec![0, 1]);
        assert!(spread(0, 3).is_empty());
    }
}
