// SPDX-License-Identifier: MIT

//! Alignment of live streams on a sliding window: frames come in one by one, only a window of
//! each stream is held, and the match of an fg frame is committed once the window holds the
//! frames after it that the caller waits for (its lookahead). Committed matches never move back
//! in the bg (the path is monotonic across windows) and do not jump when the window slides: each
//! window's dynamic time warping starts at the last committed match and is guided by the line the
//! recent matches lie on, which follows a slow drift of the delay or the speed.
//!
//! Indices are the streams' own frame numbers, counted from their first frame; the caller says
//! which frames to forget (the bg beyond its buffering, the fg once committed).

use std::collections::VecDeque;

use super::analysis::{self, Alignment, Luma, Side};
use super::features::{Feature, HeldThumb, Thumb};
use super::kernels::Kernels;
use super::spatial::{Constraints, Estimate, Geometry};
use super::temporal::{self, DtwParams, Features, Line, Priors};
use super::{Cancel, Cancelled};

/// Committed matches the guide line is fitted on (the last ones; about ten seconds at 24 fps).
const HISTORY: usize = 240;
/// Committed matches needed before the line is fitted on them rather than taken at the
/// nominal speed through the last match.
const HISTORY_MIN: usize = 12;
/// Cost of leaving the last committed match anywhere but from it (costs are 1 - NCC, at most 2).
const OFF_ANCHOR: f32 = 2.0;
/// Recent matches whose median cost sets the cost of bg frames not arrived yet.
const RECENT: usize = 48;
/// How much more than a fg frame's best real match a bg frame not arrived yet costs (less than
/// the step penalty a frame stuck on the newest bg frame pays).
const UNSEEN_MARGIN: f32 = 0.01;
/// Committed matches compared with their bg neighbours before the path is moved by a frame.
const EVIDENCE: usize = 24;
/// A search's match costing at most this is taken as shown by its content, whatever its
/// median (costs are 1 - NCC).
const PLANNED_GOOD_MIN: f32 = 0.1;
/// A search's last fg frames not taken as planned: at the window's open end, a fg frame
/// whose moment two bg frames show alike takes the first of them, whatever the frames after
/// it show (at 30 fps over 23.976, the next fg frame then needs a step of two bg frames,
/// which the path's line does not pay for). Commits align them with the frames after them
/// in view.
const PLAN_TAIL: usize = 4;

/// One fg frame's committed match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub fg: usize,
    /// The fg frame's slot on its frame grid (its index, unless frames were dropped).
    pub slot: usize,
    pub bg: usize,
    /// 1 - NCC of the footprint features (1 for a flat frame).
    pub cost: f32,
    /// How far below the window's median cost for this fg frame the match lies, in [0, 1].
    pub distinct: f32,
    /// The fg frame's match lies after the newest bg frame held (the bg lags by more than the
    /// lookahead): `bg` is that newest frame.
    pub beyond: bool,
    /// The fg frame matched no bg frame held well (all cost more than a good match): it was
    /// placed by the path's line, not by its content.
    pub unsure: bool,
}

/// What [`Tracker::commit`] decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Committed {
    pub matches: Vec<Match>,
    /// The bg frame of the last committed match is no longer held (the bg led the fg by more
    /// than it buffers): the path started again from the oldest bg frame held.
    pub reanchored: bool,
    /// The path left the last committed match forward by this many bg frames, for a window
    /// aligned afresh that fits the frames held far better (see [`ahead_and_better`]).
    pub jumped: Option<usize>,
}

/// A window aligned afresh is taken over the path from the last match when it lies at least
/// this many bg frames ahead of it at its start (a frame or so is [`Tracker::correct`]'s)...
const AHEAD_MIN: usize = 2;
/// ...over at least this many fg frames whose bg frames are held...
const AHEAD_ROWS: usize = 12;
/// ...and its matches there cost on average at most this share of the other path's.
const AHEAD_COST: f32 = 1.0 / 3.0;

/// Whether `path`'s first [`AHEAD_ROWS`] rows advance as many bg frames as `speed` (bg frames
/// per fg frame) says, within one frame and a tenth.
fn at_speed(path: &temporal::Path, speed: f64) -> bool {
    let (Some(&first), Some(&last)) = (path.bg.first(), path.bg.get(AHEAD_ROWS)) else {
        return false;
    };
    let expected = speed * AHEAD_ROWS as f64;
    ((last - first) as f64 - expected).abs() <= 1.0 + 0.1 * expected
}

/// How far ahead `free` (the window aligned afresh, over the columns of `costs`, `real` of them
/// bg frames held) starts of `anchored` (the path from the last match: its row 0 is that match,
/// at column 0), where it is to be taken: at least [`AHEAD_MIN`] frames ahead, and over the
/// rows whose bg frames both hold (at least [`AHEAD_ROWS`]) its matches cost on average at most
/// [`AHEAD_COST`] of the other's.
fn ahead_and_better(
    costs: &ndarray::Array2<f32>,
    real: usize,
    anchored: &temporal::Path,
    free: &temporal::Path,
) -> Option<usize> {
    let next = *anchored.bg.get(1)?;
    let ahead = free.bg.first()?.checked_sub(next)?;
    if ahead < AHEAD_MIN {
        return None;
    }
    let rows: Vec<usize> = (0..free.bg.len())
        .filter(|&r| free.bg[r] < real && anchored.bg.get(r + 1).is_some_and(|&j| j < real))
        .collect();
    if rows.len() < AHEAD_ROWS {
        return None;
    }
    let (mut f, mut a) = (0.0f32, 0.0f32);
    for &r in &rows {
        f += costs[(r, free.bg[r])];
        a += costs[(r, anchored.bg[r + 1])];
    }
    (f <= a * AHEAD_COST).then_some(ahead)
}

#[derive(Debug, Clone)]
struct Entry {
    index: usize,
    /// Where the frame sits on the stream's frame grid: its index plus the frames dropped
    /// before it (fg only; a bg frame's is its index).
    slot: usize,
    thumb: HeldThumb,
    feature: Option<Feature>,
}

/// A window of one stream: entries with consecutive indices.
#[derive(Debug, Default, Clone)]
struct Window(VecDeque<Entry>);

impl Window {
    fn position(&self, index: usize) -> Option<usize> {
        let first = self.0.front()?.index;
        index
            .checked_sub(first)
            .filter(|&k| k < self.0.len())
            .filter(|&k| self.0[k].index == index)
    }
}

/// Thumbnails of a window, for the offline analysis.
#[derive(Debug)]
struct Thumbs<'a>(&'a Window);

impl crate::align::features::Thumbs for Thumbs<'_> {
    fn len(&self) -> usize {
        self.0.0.len()
    }

    fn get(&self, i: usize) -> std::borrow::Cow<'_, Thumb> {
        self.0.0[i].thumb.thumb()
    }
}

/// An analysis after its coarse stages on a tracker's window ([`Tracker::begin`]).
#[derive(Debug, Clone)]
pub struct Begun {
    inner: analysis::Begun,
    /// Stream indices of the window's first fg and bg frames.
    origin: (usize, usize),
}

impl Begun {
    /// The frames whose full-resolution luma the refinement needs, by stream index.
    pub fn wanted(&self) -> analysis::Wanted {
        let w = &self.inner.wanted;
        analysis::Wanted {
            fg: w.fg.iter().map(|i| i + self.origin.0).collect(),
            bg: w.bg.iter().map(|j| j + self.origin.1).collect(),
        }
    }

    /// The bg frame (stream index) the coarse alignment matched to the window's first fg frame.
    pub fn first_match(&self) -> Option<usize> {
        self.inner.first_match().map(|j| j + self.origin.1)
    }

    /// The bg frame (stream index) the coarse alignment matched to the window's last fg frame.
    pub fn last_match(&self) -> Option<usize> {
        self.inner.last_match().map(|j| j + self.origin.1)
    }

    /// Whether the coarse stages found the fg in the bg (see [`analysis::Begun::mapped`]).
    pub fn mapped(&self) -> bool {
        self.inner.mapped()
    }

    /// The coarse stages' calibrated score and temporal confidence.
    pub fn confidences(&self) -> (f64, f64) {
        self.inner.confidences()
    }
}

/// The live alignment of one pair of streams. A clone shares the frames (thumbnails are
/// reference-counted): a copy to re-check the footprint on another thread.
#[derive(Debug, Clone)]
pub struct Tracker {
    geometry: Geometry,
    constraints: Constraints,
    /// bg frames per fg frame, from the frame rates, when known.
    nominal_rate: Option<f64>,
    fg: Window,
    bg: Window,
    /// The footprint features are taken at, once known, with its feature grid.
    footprint: Option<(Estimate, (usize, usize))>,
    last: Option<Match>,
    history: VecDeque<Match>,
    /// The highest bg frame committed: later matches never go below it.
    floor: usize,
    /// Per recent committed match, how much cheaper its bg neighbours (before, after) were:
    /// their cost minus the match's (negative: the neighbour matched better).
    evidence: VecDeque<[Option<f32>; 2]>,
    /// The bg ended: every bg frame there will be is held, none is still to come.
    bg_ended: bool,
    /// Matches a footprint search found for the fg frames of its window, oldest first:
    /// (fg frame, bg frame, cost). Committed as they are: the search aligned its whole window
    /// at once (with the refined footprint), which a commit's shorter window cannot better.
    planned: VecDeque<(usize, usize, f32)>,
    /// Distinctiveness given to planned matches (the search's mean).
    planned_distinct: f32,
    /// The highest cost of a planned match that its content shows (twice the lower quartile
    /// plus a margin, as commits judge theirs by the median; at least [`PLANNED_GOOD_MIN`]).
    planned_good: f32,
    /// The newest fg frame pushed: (index, slot).
    fg_pushed: Option<(usize, usize)>,
}

impl Tracker {
    pub fn new(geometry: Geometry, constraints: Constraints, nominal_rate: Option<f64>) -> Self {
        Tracker {
            geometry,
            constraints,
            nominal_rate: nominal_rate.filter(|r| r.is_finite() && *r > 0.0),
            fg: Window::default(),
            bg: Window::default(),
            footprint: None,
            last: None,
            history: VecDeque::new(),
            floor: 0,
            evidence: VecDeque::new(),
            bg_ended: false,
            planned: VecDeque::new(),
            planned_distinct: 0.0,
            planned_good: 1.0,
            fg_pushed: None,
        }
    }

    /// The indices of the first fg and bg frames held and of the newest bg frame held: where
    /// a search on this tracker's window (see [`Tracker::locate`]) counts its mapping from,
    /// and how far it saw.
    pub fn window(&self) -> Option<(usize, usize, usize)> {
        Some((
            self.fg.0.front()?.index,
            self.bg.0.front()?.index,
            self.bg.0.back()?.index,
        ))
    }

    /// Takes the matches of a search ([`Tracker::locate`] on a copy of [`Tracker::window`]
    /// `window`): the fg frames of its window not committed yet are matched as it matched
    /// them, up to the first one it matched to the newest bg frame it had (the frames after
    /// may show moments that bg frame came before: commits align those), and but for its
    /// last [`PLAN_TAIL`].
    pub fn plan(&mut self, window: (usize, usize, usize), a: &Alignment) {
        let (fg0, bg0, newest) = window;
        let keep = a.mapping.len().saturating_sub(PLAN_TAIL);
        self.planned = a
            .mapping
            .iter()
            .zip(&a.costs)
            .take(keep)
            .enumerate()
            .map(|(i, (&j, &c))| (fg0 + i, bg0 + j, c))
            .take_while(|&(_, j, _)| j < newest)
            .collect();
        self.planned_distinct = a.temporal_confidence as f32;
        let mut costs: Vec<f32> = a.costs.iter().copied().filter(|c| c.is_finite()).collect();
        costs.sort_by(f32::total_cmp);
        // The lower quartile: a window may open on black or flat frames (half of it, even).
        self.planned_good = costs
            .get(costs.len() / 4)
            .map_or(1.0, |m| (2.0 * m + 0.02).clamp(PLANNED_GOOD_MIN, 1.0));
    }

    /// Commits planned matches from the first fg frame held on, at most `n`, while their bg
    /// frames are held.
    fn commit_planned(&mut self, n: usize) -> Vec<Match> {
        let mut matches = Vec::new();
        while matches.len() < n {
            let Some((first, slot)) = self.fg.0.front().map(|e| (e.index, e.slot)) else {
                break;
            };
            while self.planned.front().is_some_and(|p| p.0 < first) {
                self.planned.pop_front();
            }
            let Some(&(fg, bg, cost)) = self.planned.front() else {
                break;
            };
            if fg != first || bg < self.floor || self.bg.position(bg).is_none() {
                self.planned.clear();
                break;
            }
            self.planned.pop_front();
            self.fg.0.pop_front();
            // A frame the search matched far worse than its typical match (a black or flat
            // one) does not guide later windows: its place came from the path, not from its
            // content.
            let unsure = !cost.is_finite() || cost > self.planned_good;
            let m = Match {
                fg,
                slot,
                bg,
                cost,
                distinct: if unsure { 0.0 } else { self.planned_distinct },
                beyond: false,
                unsure,
            };
            self.last = Some(m);
            self.floor = bg;
            self.history.push_back(m);
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
            matches.push(m);
        }
        matches
    }

    fn feature(&self, side: Side, t: &Thumb) -> Option<Feature> {
        let (e, g) = self.footprint.as_ref()?;
        let mut v = vec![0.0; g.0 * g.1];
        let (mean, std) = match side {
            Side::Fg => analysis::fg_feature_into(t, self.geometry, *g, &mut v),
            Side::Bg => analysis::bg_feature_into(t, self.geometry, e, *g, &mut v),
        };
        Some(Feature { v, mean, std })
    }

    /// Adds the next frame of a stream (indices increase by one from the first frame pushed);
    /// an fg frame on the slot after the one before it.
    pub fn push(&mut self, side: Side, index: usize, thumb: HeldThumb) {
        let slot = match (side, self.fg_pushed) {
            (Side::Fg, Some((i, s))) => s + index.saturating_sub(i),
            _ => index,
        };
        self.push_at(side, index, slot, thumb);
    }

    /// Adds the next fg frame at `slot` of its frame grid: frames were dropped before it
    /// where its slot is more than one after the previous frame's (a variable frame rate).
    /// Commits align the fg on its grid, as the offline analysis does.
    pub fn push_fg(&mut self, index: usize, slot: usize, thumb: HeldThumb) {
        self.push_at(Side::Fg, index, slot, thumb);
    }

    fn push_at(&mut self, side: Side, index: usize, slot: usize, thumb: HeldThumb) {
        let feature = self.feature(side, &thumb.thumb());
        let w = match side {
            Side::Fg => &mut self.fg,
            Side::Bg => &mut self.bg,
        };
        if w.0
            .back()
            .is_some_and(|e| e.index >= index || e.slot >= slot)
        {
            return;
        }
        if side == Side::Fg {
            self.fg_pushed = Some((index, slot));
        }
        w.0.push_back(Entry {
            index,
            slot,
            thumb,
            feature,
        });
    }

    /// The bg ended: no frame comes after those held, so fg frames can no longer match one
    /// still to come.
    pub fn end_bg(&mut self) {
        self.bg_ended = true;
    }

    /// Forgets the bg frames before `index`.
    pub fn forget_bg_before(&mut self, index: usize) {
        while self.bg.0.front().is_some_and(|e| e.index < index) {
            self.bg.0.pop_front();
        }
    }

    /// fg frames held (not committed yet).
    pub fn pending(&self) -> usize {
        self.fg.0.len()
    }

    /// The offline analysis on the frames held: the footprint (and the window's mapping, in
    /// window positions). `luma` gives the full-resolution luma of frames by their index.
    pub fn locate(
        &self,
        dots: &dyn Kernels,
        luma: &Luma<'_>,
        cancel: &Cancel,
    ) -> Result<Option<Alignment>, Cancelled> {
        self.with_input(dots, luma, |input, luma| {
            analysis::analyse(input, luma, cancel)
        })
    }

    /// The coarse stages of [`Tracker::locate`] on the frames held (thumbnails only): the
    /// footprint on thumbnails and the full-resolution frames its refinement needs, for
    /// [`Tracker::finish`] on this same tracker (a clone kept while more frames arrive).
    pub fn begin(
        &self,
        dots: &dyn Kernels,
        first: usize,
        cancel: &Cancel,
    ) -> Result<Option<Begun>, Cancelled> {
        let (Some(fg0), Some(bg0)) = (self.fg.0.front(), self.bg.0.front()) else {
            return Ok(None);
        };
        let origin = (fg0.index, bg0.index);
        let none: &Luma<'_> = &|_, _| None;
        self.with_input(dots, none, |input, _| {
            analysis::begin_within(input, first, cancel)
        })
        .map(|b| b.map(|inner| Begun { inner, origin }))
    }

    /// The fine stages of an analysis [`Tracker::begin`] started on this tracker: `luma` gives
    /// the full-resolution luma of the frames [`Begun::wanted`] names, by stream index.
    pub fn finish(
        &self,
        begun: Begun,
        dots: &dyn Kernels,
        luma: &Luma<'_>,
        cancel: &Cancel,
    ) -> Result<Option<Alignment>, Cancelled> {
        let origin = (self.fg.0.front(), self.bg.0.front());
        if origin.0.map(|e| e.index) != Some(begun.origin.0)
            || origin.1.map(|e| e.index) != Some(begun.origin.1)
        {
            return Ok(None);
        }
        self.with_input(dots, luma, |input, luma| {
            analysis::finish(input, begun.inner, luma, cancel).map(Some)
        })
    }

    /// How far footprint `a` lies from the one in use: the largest move of a corner, in bg px
    /// (`None` before one is set).
    pub fn moved(&self, a: &Alignment) -> Option<f64> {
        let old = self.footprint()?;
        let (fw, fh) = (f64::from(self.geometry.fg.0), f64::from(self.geometry.fg.1));
        let corners = |x: f64, y: f64, s: f64| [x, y, x + fw * s, y + fh * s];
        Some(
            corners(old.x, old.y, old.scale)
                .iter()
                .zip(corners(a.x, a.y, a.scale))
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max),
        )
    }

    /// [`analysis::refit`] of the footprint in use on the frames held: `None` before one is
    /// set, or when nothing aligns.
    pub fn refit(
        &self,
        dots: &dyn Kernels,
        luma: &Luma<'_>,
        cancel: &Cancel,
    ) -> Result<Option<Alignment>, Cancelled> {
        let Some(est) = self.footprint() else {
            return Ok(None);
        };
        self.with_input(dots, luma, |input, luma| {
            analysis::refit(input, est, luma, cancel)
        })
    }

    /// Runs `f` on the frames held, as an analysis input and a luma source by window index.
    fn with_input<R>(
        &self,
        dots: &dyn Kernels,
        luma: &Luma<'_>,
        f: impl FnOnce(&analysis::Input<'_>, &Luma<'_>) -> Result<Option<R>, Cancelled>,
    ) -> Result<Option<R>, Cancelled> {
        let (fg0, bg0, slot0) = match (self.fg.0.front(), self.bg.0.front()) {
            (Some(f), Some(b)) => (f.index, b.index, f.slot),
            _ => return Ok(None),
        };
        // The fg on its frame grid where frames were dropped.
        let slots: Vec<usize> = self.fg.0.iter().map(|e| e.slot - slot0).collect();
        let gaps = slots.windows(2).any(|w| w[1] > w[0] + 1);
        let input = analysis::Input {
            fg: &Thumbs(&self.fg),
            bg: &Thumbs(&self.bg),
            dots,
            spills: &temporal::InMemory,
            geometry: self.geometry,
            constraints: self.constraints,
            nominal_rate: self.nominal_rate,
            region: analysis::Region::Footprint,
            fg_slots: gaps.then_some(&slots[..]),
        };
        let by_index = |side: Side, i: usize| match side {
            Side::Fg => luma(side, fg0 + i),
            Side::Bg => luma(side, bg0 + i),
        };
        f(&input, &by_index)
    }

    /// A copy whose fg window is `frames` (consecutive indices, oldest first) instead of the
    /// frames held: to search the footprint on fg frames that were committed since.
    pub fn with_fg(&self, frames: &[(usize, HeldThumb)]) -> Tracker {
        let mut t = self.clone();
        t.fg = Window::default();
        for (i, thumb) in frames {
            t.push(Side::Fg, *i, thumb.clone());
        }
        t
    }

    /// The speed (bg frames per fg frame) found by aligning content, which guides the path until
    /// its own matches do: the streams' nominal rates can be wrong (timestamps that lie).
    pub fn set_rate(&mut self, rate: f64) {
        if rate.is_finite() && rate > 0.0 {
            self.nominal_rate = Some(rate);
        }
    }

    /// Takes features at footprint `e` from now on (those of held frames are recomputed).
    pub fn set_footprint(&mut self, e: Estimate) {
        let bg_factor = self.bg.0.front().map_or(1, |b| b.thumb.thumb().factor);
        let g = analysis::feature_grid(self.geometry, &e, bg_factor);
        self.footprint = Some((e, g));
        for side in [Side::Fg, Side::Bg] {
            let thumbs: Vec<HeldThumb> = match side {
                Side::Fg => self.fg.0.iter().map(|e| e.thumb.clone()).collect(),
                Side::Bg => self.bg.0.iter().map(|e| e.thumb.clone()).collect(),
            };
            let feats: Vec<Option<Feature>> = thumbs
                .iter()
                .map(|t| self.feature(side, &t.thumb()))
                .collect();
            let w = match side {
                Side::Fg => &mut self.fg,
                Side::Bg => &mut self.bg,
            };
            for (e, f) in w.0.iter_mut().zip(feats) {
                e.feature = f;
            }
        }
    }

    /// The line recent matches lie on, in absolute frame numbers (bg = offset + rate · fg).
    fn guide(&self) -> Option<Line> {
        let last = self.last?;
        if self.history.len() >= HISTORY_MIN {
            let h0 = self.history.front()?.slot;
            // Slots relative to the first match kept: a path over consecutive slots, a
            // dropped frame's slot weighing nothing.
            let span = self.history.back()?.slot + 1 - h0;
            let mut path: Vec<usize> = Vec::with_capacity(span);
            let mut weight: Vec<f32> = Vec::with_capacity(span);
            for m in &self.history {
                while h0 + path.len() < m.slot {
                    path.push(path.last().copied().unwrap_or(m.bg));
                    weight.push(0.0);
                }
                path.push(m.bg);
                weight.push(m.distinct);
            }
            // A path of consecutive committed fg frames (none skipped without a match).
            let contiguous = self.history.back()?.fg + 1
                == self.history.front()?.fg + self.history.len()
                && path.len() == span;
            if contiguous
                && let Some(l) = temporal::path_line(&path, &weight, temporal::CONFIDENT)
                    .filter(|l| l.rate > 0.0 && l.rate.is_finite())
            {
                return Some(Line {
                    offset: l.offset - l.rate * h0 as f64,
                    rate: l.rate,
                });
            }
        }
        let rate = self.nominal_rate.unwrap_or(1.0);
        Some(Line {
            offset: last.bg as f64 - rate * last.slot as f64,
            rate,
        })
    }

    /// Where the path's line (the one guiding the next commit) puts fg slot `slot` in the bg,
    /// in bg frames; `None` before the first commit.
    pub fn expected_bg(&self, slot: usize) -> Option<f64> {
        self.guide().map(|l| l.offset + l.rate * slot as f64)
    }

    /// Forgets the committed path (not the frames held, nor the floor below which no match
    /// goes): the next commit aligns its window afresh, as the first one. For a footprint that
    /// changed, after which the path so far says little.
    pub fn restart(&mut self) {
        self.planned.clear();
        self.last = None;
        self.history.clear();
        self.evidence.clear();
    }

    /// The footprint features are taken at, once set.
    pub fn footprint(&self) -> Option<Estimate> {
        self.footprint.map(|(e, _)| e)
    }

    /// The share of the last `n` committed matches that were unsure (matched nothing held
    /// well), once `n` were committed: a re-framed fg, a long cut, a bg showing another scene.
    pub fn unsure_share(&self, n: usize) -> Option<f32> {
        if self.history.len() < n || n == 0 {
            return None;
        }
        let unsure = self
            .history
            .iter()
            .rev()
            .take(n)
            .filter(|m| m.unsure)
            .count();
        Some(unsure as f32 / n as f32)
    }

    /// The median cost of the last `n` committed matches whose bg frame was held and matched
    /// well (`None` before any).
    fn recent_cost(&self, n: usize) -> Option<f32> {
        let mut c: Vec<f32> = (self.history.iter().rev())
            .filter(|m| !m.beyond && !m.unsure)
            .take(n)
            .map(|m| m.cost)
            .collect();
        if c.is_empty() {
            return None;
        }
        c.sort_by(f32::total_cmp);
        Some(c[c.len() / 2])
    }

    /// The cost of a good match (a little above the typical one: the recent matches' median,
    /// else that of the window's row minima), and each fg frame's best real match.
    fn good_and_minima(&self, matrix: &ndarray::Array2<f32>) -> (f32, Vec<f32>) {
        let minima: Vec<f32> = matrix
            .rows()
            .into_iter()
            .map(|r| r.iter().copied().fold(f32::INFINITY, f32::min))
            .collect();
        let typical = self.recent_cost(RECENT).or_else(|| {
            let mut c: Vec<f32> = minima.iter().copied().filter(|c| c.is_finite()).collect();
            c.sort_by(f32::total_cmp);
            c.get(c.len() / 2).copied()
        });
        let good = typical.map_or(0.5, |m| (2.0 * m + 0.02).min(1.0));
        (good, minima)
    }

    /// Commits the matches of the first `n` fg frames held, aligning all the fg frames held
    /// (those after them are the lookahead) against the bg frames held from the last committed
    /// match on. Nothing is committed before a footprint is set or while no bg frame is held.
    pub fn commit(
        &mut self,
        n: usize,
        dots: &dyn Kernels,
        cancel: &Cancel,
    ) -> Result<Committed, Cancelled> {
        let n = n.min(self.fg.0.len());
        if n == 0 || self.footprint.is_none() || self.bg.0.is_empty() {
            return Ok(Committed::default());
        }
        let planned = self.commit_planned(n);
        if !planned.is_empty() {
            return Ok(Committed {
                matches: planned,
                reanchored: false,
                jumped: None,
            });
        }
        // Columns: the bg from the last committed match on (or all held, at the start or when
        // that frame is gone).
        let anchor = self.last.and_then(|m| self.bg.position(m.bg));
        let reanchored = self.last.is_some() && anchor.is_none();
        let col0 = anchor.unwrap_or(0);
        let flat = |len: usize| Feature {
            v: vec![0.0; len],
            mean: 0.0,
            std: 0.0,
        };
        let len = self.footprint.map_or(0, |(_, g)| g.0 * g.1);
        let of = |e: &Entry| e.feature.clone().unwrap_or_else(|| flat(len));
        // Rows: the fg's slots from the one after the last committed match (or from the first
        // frame held), a dropped frame's slot showing the nearest frame held, as offline.
        let anchored = self.last.filter(|_| anchor.is_some());
        let origin = anchored.map_or(self.fg.0[0].slot, |m| m.slot + 1);
        let row_of: Vec<usize> = self
            .fg
            .0
            .iter()
            .map(|e| e.slot.saturating_sub(origin))
            .collect();
        let total = row_of.last().map_or(0, |r| r + 1);
        let mut nearest = 0;
        let fg: Vec<Feature> = (0..total)
            .map(|t| {
                while nearest + 1 < row_of.len() && row_of[nearest + 1] <= t {
                    nearest += 1;
                }
                let pick = match row_of.get(nearest + 1) {
                    Some(&next) if next - t < t.abs_diff(row_of[nearest]) => nearest + 1,
                    _ => nearest,
                };
                of(&self.fg.0[pick])
            })
            .collect();
        let bg: Vec<Feature> = self.bg.0.iter().skip(col0).map(of).collect();
        // A damaged bg frame (unlike both its neighbours while they are alike) seen as their
        // mean, as offline: a fg frame showing its moment then matches it.
        let mut bg = Features::new(&bg);
        let damaged = analysis::damaged_in(&bg);
        analysis::mend_damaged(&mut bg, &damaged);
        let matrix = temporal::cost_matrix_with(&Features::new(&fg), &bg, dots);
        cancel.check()?;
        let max_step = analysis::max_step(self.nominal_rate);
        let priors = Priors::default();
        let col_base = self.bg.0[col0].index;
        // Columns after the real ones stand for bg frames not arrived yet: fg frames whose
        // match is still to come (the lookahead, when the bg lags) go there instead of piling
        // onto the newest bg frame, which would pull the committed part of the path back. Such
        // a frame costs about a good match, and never less than the fg frame's best real match
        // plus a margin: a frame matching nothing well (a re-framed fg, a cut) does not run
        // ahead of the frames held.
        let (rows, real) = matrix.dim();
        let rate = self
            .guide()
            .or(self.nominal_rate.map(|rate| Line { offset: 0.0, rate }))
            .map_or(1.0, |l| l.rate.max(1.0));
        let extra = if self.bg_ended {
            0
        } else {
            (rows as f64 * rate).ceil() as usize + 2
        };
        let (good, minima) = self.good_and_minima(&matrix);
        let unsure: Vec<bool> = minima.iter().map(|&m| !m.is_finite() || m > good).collect();
        let mut extended = ndarray::Array2::zeros((rows, real + extra));
        extended.slice_mut(ndarray::s![.., ..real]).assign(&matrix);
        for (r, &m) in minima.iter().enumerate() {
            let unseen = if m.is_finite() {
                good.max(m + UNSEEN_MARGIN)
            } else {
                good
            };
            extended.slice_mut(ndarray::s![r, real..]).fill(unseen);
        }
        let (path, distinct, shift, jumped) = if let Some(last) = anchored {
            // Once there is a path to follow, fg frames that match nothing well follow its
            // line: their costs, noise, must not drag the path (which cannot come back) ahead.
            for (r, _) in unsure.iter().enumerate().filter(|(_, u)| **u) {
                extended.slice_mut(ndarray::s![r, ..real]).fill(minima[r]);
            }
            // A first row for the last committed match: the path must leave from it.
            let mut with_anchor = ndarray::Array2::from_elem((rows + 1, real + extra), OFF_ANCHOR);
            with_anchor[(0, 0)] = 0.0;
            with_anchor
                .slice_mut(ndarray::s![1.., ..])
                .assign(&extended);
            let costs = temporal::Costs::from_matrix(&with_anchor);
            // The guide in window coordinates: row r is slot last.slot + r.
            let guide = self.guide().map(|l| Line {
                offset: l.offset + l.rate * last.slot as f64 - col_base as f64,
                rate: l.rate,
            });
            let params = DtwParams {
                max_step: guide.map_or(max_step, |l| max_step.max(l.rate.ceil() as usize + 1)),
                guide,
                lambda: priors.lambda,
                mu: priors.mu,
                band: priors.band,
                jump: priors.jump,
            };
            let path = temporal::dtw_with(&costs, &params, dots, cancel)?;
            // The window aligned afresh, as a first one: where that path lies well ahead of
            // the one from the last match and fits the frames held far better, the path so
            // far was off (a first window on a still scene, whose every bg frame matched
            // alike, that the bg lagged) and is left forward for it.
            let free_costs = temporal::Costs::from_matrix(&extended);
            let (free, _) = temporal::align_with(&free_costs, max_step, priors, dots, cancel)?;
            // Only from a fg frame whose own match is clear: the frames of a still scene
            // match any of its bg frames, the fresh path's as much as the other. Nor where its
            // open start piles fg frames on few bg frames (a slow scene whose frames match
            // their neighbours alike): it must run at the path's speed.
            let speed = guide.map(|l| l.rate).or(self.nominal_rate).unwrap_or(1.0);
            let taken = ahead_and_better(&extended, real, &path, &free)
                .filter(|_| at_speed(&free, speed))
                .map(|ahead| (ahead, temporal::distinctiveness(&free_costs, &free)))
                .filter(|(_, d)| d.first().is_some_and(|&d| d >= temporal::CONFIDENT));
            if let Some((ahead, free_distinct)) = taken {
                self.history.clear();
                self.evidence.clear();
                (free, free_distinct, 0, Some(ahead))
            } else {
                let distinct = temporal::distinctiveness(&costs, &path);
                (path, distinct, 1, None)
            }
        } else {
            let costs = temporal::Costs::from_matrix(&extended);
            let (path, _) = temporal::align_with(&costs, max_step, priors, dots, cancel)?;
            let distinct = temporal::distinctiveness(&costs, &path);
            (path, distinct, 0, None)
        };
        let floor = self.floor;
        let mut matches = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        for (e, &r) in self.fg.0.iter().zip(&row_of).take(n) {
            let unsure = unsure.get(r).copied().unwrap_or(true);
            let k = r + shift;
            let (Some(&j), Some(&cost)) = (path.bg.get(k), path.cost.get(k)) else {
                break;
            };
            // Its bg frame has not arrived: the path left the frames held, or it stays on
            // the newest one held into the next fg frame (stuck at the edge of the window).
            let next = path.bg.get(k + 1).copied();
            let beyond = j >= real || (j + 1 == real && next.is_some_and(|nj| nj + 1 >= real));
            let m = Match {
                fg: e.index,
                slot: e.slot,
                bg: (col_base + j.min(real - 1)).max(floor),
                cost,
                // A match not seen, or not sure, does not guide later windows.
                distinct: if beyond || unsure {
                    0.0
                } else {
                    distinct.get(k).copied().unwrap_or(0.0)
                },
                beyond,
                unsure,
            };
            matches.push(m);
            rows.push(r);
        }
        for (m, &r) in matches.iter().zip(&rows) {
            self.fg.0.pop_front();
            self.last = Some(*m);
            self.floor = self.floor.max(m.bg);
            self.history.push_back(*m);
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
            let j = path.bg[r + shift];
            let neighbour = |c: Option<usize>| {
                c.filter(|&c| c < real && j < real && !unsure[r])
                    .map(|c| matrix[(r, c)] - matrix[(r, j)])
            };
            if self.evidence.len() == EVIDENCE {
                self.evidence.pop_front();
            }
            self.evidence
                .push_back([neighbour(j.checked_sub(1)), neighbour(Some(j + 1))]);
        }
        self.correct();
        Ok(Committed {
            matches,
            reanchored,
            jumped,
        })
    }

    /// Moves the path by one bg frame when that frame, rather than the one committed, matched
    /// better for nearly all of the recent matches: a path that started a frame off (a first
    /// window that held little of the other stream) would otherwise keep that offset, as each
    /// window alone holds too little evidence to pay for the step. Output stays monotonic
    /// (moving back repeats a bg frame).
    fn correct(&mut self) {
        if self.evidence.len() < EVIDENCE {
            return;
        }
        let Some(mut last) = self.last else {
            return;
        };
        for (side, d) in [(0usize, -1isize), (1, 1)] {
            let better = self
                .evidence
                .iter()
                .filter(|e| e[side].is_some_and(|v| v < 0.0))
                .count();
            if better * 5 < EVIDENCE * 4 {
                continue;
            }
            let Some(bg) = last.bg.checked_add_signed(d) else {
                continue;
            };
            if self.bg.position(bg).is_none() {
                continue;
            }
            last.bg = bg;
            self.last = Some(last);
            for m in self.history.iter_mut() {
                m.bg = m.bg.saturating_add_signed(d);
            }
            self.evidence.clear();
            return;
        }
    }

    /// Forgets the first `n` fg frames held without matching them (their output was dropped).
    pub fn skip_fg(&mut self, n: usize) {
        for _ in 0..n.min(self.fg.0.len()) {
            self.fg.0.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::kernels::CpuKernels;
    use std::sync::Arc;

    /// A textured "scene" at moment `t`: a smooth pattern that moves with `t`.
    fn scene(t: usize, w: usize, h: usize) -> Thumb {
        scene_at(t as f64, w, h)
    }

    fn scene_at(t: f64, w: usize, h: usize) -> Thumb {
        let mut data = Vec::with_capacity(w * h);
        let phase = t * 0.37;
        for y in 0..h {
            for x in 0..w {
                let v = 128.0
                    + 60.0 * ((x as f64 * 0.21 + phase).sin() * (y as f64 * 0.17 - phase).cos())
                    + 40.0 * ((x as f64 * 0.05 + y as f64 * 0.11 + 2.3 * phase).sin());
                data.push(v.clamp(0.0, 255.0) as u8);
            }
        }
        Thumb {
            factor: 1,
            width: w,
            height: h,
            data: data.into(),
        }
    }

    fn tracker() -> Tracker {
        tracker_at(1.0)
    }

    /// A tracker of 64x48 frames at a nominal `rate` bg frames per fg frame, its footprint the
    /// whole frame.
    fn tracker_at(rate: f64) -> Tracker {
        let geo = Geometry {
            fg: (64, 48),
            bg: (64, 48),
        };
        let mut t = Tracker::new(geo, Constraints::default(), Some(rate));
        t.set_footprint(Estimate {
            x: 0.0,
            y: 0.0,
            scale: 1.0,
            score: 1.0,
        });
        t
    }

    /// Feeds frames in real time: bg frame k shows moment `bg_moment(k)`, fg frame i shows
    /// moment `fg_moment(i)`; both arrive one per tick; each fg frame is committed once
    /// `lookahead` later fg frames are held; bg frames older than `keep` behind the newest are
    /// forgotten. Returns every committed match.
    fn run(
        n: usize,
        bg_moment: impl Fn(usize) -> usize,
        fg_moment: impl Fn(usize) -> usize,
        lookahead: usize,
        keep: usize,
    ) -> (Vec<Match>, bool) {
        run_at(1.0, n, bg_moment, fg_moment, lookahead, keep)
    }

    /// [`run`] on a scene moving `speed` times as fast.
    fn run_at(
        speed: f64,
        n: usize,
        bg_moment: impl Fn(usize) -> usize,
        fg_moment: impl Fn(usize) -> usize,
        lookahead: usize,
        keep: usize,
    ) -> (Vec<Match>, bool) {
        // Moments from 5000 on are something else: the scene in negative.
        let scene = |m: usize, w, h| {
            let mut t = scene_at(m as f64 * speed, w, h);
            if m >= 5000 {
                t.data.iter_mut().for_each(|v| *v = 255 - *v);
            }
            t
        };
        let mut t = tracker();
        let cancel = Cancel::new();
        let mut out = Vec::new();
        let mut reanchored = false;
        for k in 0..n {
            t.push(Side::Bg, k, Arc::new(scene(bg_moment(k), 64, 48)));
            t.push(Side::Fg, k, Arc::new(scene(fg_moment(k), 64, 48)));
            t.forget_bg_before(k.saturating_sub(keep));
            let due = t.pending().saturating_sub(lookahead);
            let c = t.commit(due, &CpuKernels, &cancel).unwrap();
            reanchored |= c.reanchored;
            out.extend(c.matches);
        }
        let c = t.commit(t.pending(), &CpuKernels, &cancel).unwrap();
        out.extend(c.matches);
        (out, reanchored)
    }

    /// A scene still for its first 40 moments, then moving slowly, the bg showing each moment
    /// 24 frames after the fg: the first commits match the still fg frames to any still bg
    /// frame, off the true line, and the path from them pays less for the slow scene's
    /// mismatch than for a step of 24 frames. The window aligned afresh lies on the true line,
    /// far ahead and far cheaper: the path leaves for it as soon as the scene moves (a frame
    /// off while the fg frames at its front are still, set right by [`Tracker::correct`]).
    #[test]
    fn a_path_off_on_a_still_opening_leaves_for_the_line_the_moving_scene_shows() {
        let moment = |m: usize| scene_at(m.saturating_sub(40) as f64 * 0.03, 64, 48);
        let mut t = tracker();
        let cancel = Cancel::new();
        let mut out: Vec<Match> = Vec::new();
        let mut jumped = Vec::new();
        for k in 0..150 {
            t.push(Side::Bg, k, Arc::new(moment(k)));
            t.push(Side::Fg, k, Arc::new(moment(k + 24)));
            let due = t.pending().saturating_sub(36);
            let c = t.commit(due, &CpuKernels, &cancel).unwrap();
            jumped.extend(c.jumped);
            out.extend(c.matches);
        }
        let off = |from: usize, by: usize| -> Vec<(usize, usize)> {
            out.iter()
                .filter(|m| m.fg >= from && m.bg.abs_diff(m.fg + 24) > by)
                .map(|m| (m.fg, m.bg))
                .collect()
        };
        assert!(monotonic(&out));
        assert!(
            !off(0, 1).is_empty(),
            "the still opening matched on the line"
        );
        assert_eq!(jumped.len(), 1, "{jumped:?}");
        // The scene moves from fg frame 16 on.
        assert!(off(16, 1).is_empty(), "{:?}", off(16, 1));
        assert!(off(40, 0).is_empty(), "{:?}", off(40, 0));
    }

    #[test]
    fn a_fg_with_dropped_frames_is_matched_on_its_frame_grid() {
        // fg frame i sits at slot `slots[i]` (runs of 1–3 frames dropped at irregular places)
        // and shows moment slot + 5; bg frame k shows moment k. Both arrive in real time, each
        // fg frame committed once 8 later fg frames are held.
        let mut slots = Vec::new();
        let mut s = 0;
        for i in 0..150 {
            slots.push(s);
            s += if i % 7 == 3 { 2 + i % 3 } else { 1 };
        }
        let mut t = tracker();
        let cancel = Cancel::new();
        let mut out = Vec::new();
        let mut next = 0;
        for k in 0..=slots[slots.len() - 1] + 5 {
            t.push(Side::Bg, k, Arc::new(scene(k, 64, 48)));
            while next < slots.len() && slots[next] + 5 <= k {
                t.push_fg(next, slots[next], Arc::new(scene(slots[next] + 5, 64, 48)));
                next += 1;
            }
            let due = t.pending().saturating_sub(8);
            out.extend(t.commit(due, &CpuKernels, &cancel).unwrap().matches);
        }
        t.end_bg();
        out.extend(t.commit(t.pending(), &CpuKernels, &cancel).unwrap().matches);
        assert_eq!(out.len(), slots.len());
        let wrong: Vec<(usize, usize, usize)> = out
            .iter()
            .filter(|m| m.slot != slots[m.fg] || m.bg != m.slot + 5)
            .map(|m| (m.fg, m.slot, m.bg))
            .collect();
        assert!(wrong.is_empty(), "(fg, slot, bg) off the grid: {wrong:?}");
    }

    /// The region (x, y, w, h) of a thumb.
    fn crop(t: &Thumb, (x, y, w, h): (usize, usize, usize, usize)) -> Thumb {
        let mut data = Vec::with_capacity(w * h);
        for r in y..y + h {
            data.extend_from_slice(&t.data[r * t.width + x..r * t.width + x + w]);
        }
        Thumb {
            factor: 1,
            width: w,
            height: h,
            data: data.into(),
        }
    }

    #[test]
    fn a_search_redone_on_earlier_fg_frames_once_the_bg_showed_them_fits_better() {
        // The fg is the bg's region (24, 16, 48, 36); it shows each moment 10 frames before
        // the bg does, and only 5 fg frames are held: no moment is in both windows.
        let geo = Geometry {
            fg: (48, 36),
            bg: (96, 72),
        };
        let mut t = Tracker::new(geo, Constraints::default(), Some(1.0));
        let bg = |k: usize| Arc::new(scene(k, 96, 72));
        let fg = |i: usize| Arc::new(crop(&scene(i + 10, 96, 72), (24, 16, 48, 36)));
        for k in 0..8 {
            t.push(Side::Bg, k, bg(k));
        }
        let held: Vec<(usize, Arc<Thumb>)> = (3..8).map(|i| (i, fg(i))).collect();
        for (i, f) in &held {
            t.push(Side::Fg, *i, f.clone());
        }
        let luma = |side: Side, i: usize| match side {
            Side::Bg => Some(bg(i)),
            Side::Fg => Some(fg(i)),
        };
        let cancel = Cancel::new();
        let early = t.locate(&CpuKernels, &luma, &cancel).unwrap().unwrap();
        // Later the bg has shown those moments (fg frames 3..8 are bg frames 13..18); the fg
        // frames held then are others, so the search takes the copy of the earlier ones.
        for k in 8..30 {
            t.push(Side::Bg, k, bg(k));
        }
        let held: Vec<(usize, HeldThumb)> =
            held.into_iter().map(|(i, f)| (i, f as HeldThumb)).collect();
        let again = t.with_fg(&held);
        let late = again.locate(&CpuKernels, &luma, &cancel).unwrap().unwrap();
        // The fit on moments both show is the better one.
        assert!(late.mean_cost < early.mean_cost, "{late:?} {early:?}");
        assert!(
            (late.x - 24.0).abs() < 0.5 && (late.y - 16.0).abs() < 0.5,
            "{late:?}"
        );
        assert_eq!(late.mapping, vec![13, 14, 15, 16, 17]);
    }

    #[test]
    fn begun_on_thumbnails_and_finished_on_the_frames_it_names_is_the_whole_search() {
        // The fg is the bg's region (24, 16, 48, 36), fg frame i (from 3 on) showing bg frame
        // i + 6: the coarse stages name the frames, and the fine stages, given only those, find
        // what the whole search finds.
        let geo = Geometry {
            fg: (48, 36),
            bg: (96, 72),
        };
        let bg = |k: usize| Arc::new(scene(k, 96, 72));
        let fg = |i: usize| Arc::new(crop(&scene(i + 6, 96, 72), (24, 16, 48, 36)));
        let mut t = Tracker::new(geo, Constraints::default(), Some(1.0));
        for k in 0..40 {
            t.push(Side::Bg, k, bg(k));
        }
        for i in 3..30 {
            t.push(Side::Fg, i, fg(i));
        }
        let cancel = Cancel::new();
        let all = |side: Side, i: usize| match side {
            Side::Bg => Some(bg(i)),
            Side::Fg => Some(fg(i)),
        };
        let whole = t.locate(&CpuKernels, &all, &cancel).unwrap().unwrap();
        let begun = t
            .begin(&CpuKernels, analysis::REFINE_PREFIX_MIN, &cancel)
            .unwrap()
            .unwrap();
        let wanted = begun.wanted();
        assert!(!wanted.fg.is_empty() && wanted.fg.iter().all(|i| (3..30).contains(i)));
        assert!(wanted.bg.iter().all(|&j| j < 40));
        assert_eq!(begun.first_match(), Some(9));
        let named = |side: Side, i: usize| wanted.has(side, i).then(|| all(side, i)).flatten();
        // More frames arrive meanwhile: the analysis finishes on the tracker it began on.
        let frozen = t.clone();
        t.push(Side::Bg, 40, bg(40));
        let split = frozen
            .finish(begun.clone(), &CpuKernels, &named, &cancel)
            .unwrap()
            .unwrap();
        assert_eq!(
            (split.x, split.y, split.scale, &split.mapping),
            (whole.x, whole.y, whole.scale, &whole.mapping)
        );
        assert!((split.x - 24.0).abs() < 0.5 && (split.y - 16.0).abs() < 0.5);
        // A tracker whose window moved on is not the one it began on.
        t.forget_bg_before(1);
        assert!(
            t.finish(begun, &CpuKernels, &named, &cancel)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_refit_confirms_the_footprint_in_use_follows_a_small_error_and_drops_at_a_wrong_one() {
        // The fg is the bg's region (24, 16, 48, 36), fg frame i showing bg frame i + 4.
        let geo = Geometry {
            fg: (48, 36),
            bg: (96, 72),
        };
        let bg = |k: usize| Arc::new(scene(k, 96, 72));
        let fg = |i: usize| Arc::new(crop(&scene(i + 4, 96, 72), (24, 16, 48, 36)));
        let luma = |side: Side, i: usize| match side {
            Side::Bg => Some(bg(i)),
            Side::Fg => Some(fg(i)),
        };
        let cancel = Cancel::new();
        let mut t = Tracker::new(geo, Constraints::default(), Some(1.0));
        for k in 0..30 {
            t.push(Side::Bg, k, bg(k));
        }
        for i in 0..20 {
            t.push(Side::Fg, i, fg(i));
        }
        assert_eq!(t.refit(&CpuKernels, &luma, &cancel).unwrap(), None);
        let at = |t: &mut Tracker, x: f64, y: f64| {
            t.set_footprint(Estimate {
                x,
                y,
                scale: 1.0,
                score: 0.99,
            });
            let a = t.refit(&CpuKernels, &luma, &cancel).unwrap().unwrap();
            (a.x, a.y, a.spatial_confidence, t.moved(&a).unwrap())
        };
        let right = at(&mut t, 24.0, 16.0);
        assert!(right.2 > 0.99 && right.3 < 0.3, "{right:?}");
        // A px off: the fit goes back to the footprint.
        let near = at(&mut t, 25.0, 15.0);
        assert!(
            (near.0 - 24.0).abs() < 0.3 && (near.1 - 16.0).abs() < 0.3 && near.3 > 0.7,
            "{near:?}"
        );
        // Far off: a refit stays near it (no search) and fits visibly worse.
        let wrong = at(&mut t, 40.0, 30.0);
        assert!(
            wrong.2 < right.2 - 0.05 && wrong.3 < 4.0,
            "{wrong:?} {right:?}"
        );
    }

    fn monotonic(m: &[Match]) -> bool {
        m.windows(2)
            .all(|w| w[1].bg >= w[0].bg && w[1].fg == w[0].fg + 1)
    }

    /// A search's matches are committed as it found them, for the fg frames of its window
    /// still held; past them (or once a planned bg frame is gone) commits align as before,
    /// from the last planned match.
    /// A search's result at the identity footprint with this mapping and these costs.
    fn searched(mapping: Vec<usize>, costs: Vec<f32>) -> Alignment {
        Alignment {
            x: 0.0,
            y: 0.0,
            scale: 1.0,
            spatial_confidence: 1.0,
            spatial_calibrated: f64::NAN,
            mapping,
            mean_cost: f64::from(costs.iter().sum::<f32>()) / costs.len().max(1) as f64,
            costs,
            temporal_confidence: 0.9,
            rate: Some(1.0),
            timings: Default::default(),
        }
    }

    #[test]
    fn a_search_s_matches_of_black_frames_do_not_guide_the_path() {
        let mut t = tracker();
        for k in 0..120 {
            t.push(Side::Bg, k, Arc::new(scene(k, 64, 48)));
        }
        for i in 0..72 {
            t.push(Side::Fg, i, Arc::new(scene(i, 64, 48)));
        }
        let window = t.window().unwrap();
        // The search's window opened on 36 black frames, squeezed onto bg frames 21..28 at a
        // poor cost; then the content, 0.8 bg frames per fg frame.
        let black = |i: usize| i < 36;
        let a = searched(
            (0..72)
                .map(|i| {
                    if black(i) {
                        21 + i * 7 / 36
                    } else {
                        29 + (i - 36) * 4 / 5
                    }
                })
                .collect(),
            (0..72)
                .map(|i| if black(i) { 0.42 } else { 0.01 })
                .collect(),
        );
        t.plan(window, &a);
        let c = t.commit(72, &CpuKernels, &Cancel::new()).unwrap();
        assert_eq!(c.matches.len(), 72 - PLAN_TAIL);
        assert!(c.matches.iter().all(|m| m.unsure == black(m.fg)));
        // The line the path follows next is the content's.
        let g = t.guide().unwrap();
        assert!((g.rate - 0.8).abs() < 0.05, "{g:?}");
    }

    /// 30 fps over 23.976 (about 24) fps of a 10 fps source: fg frame i shows moment i / 3,
    /// bg frame k moment k / 2.4, two or three bg frames alike. A search's window ends on fg
    /// frame 71, matched to the first of the bg frames showing its moment (a tie at the open
    /// end, bg frame 56 of 56 and 57); the
    /// next moment starts two bg frames on, a step the path's line does not pay for over a
    /// scene that moves little. Its last frames are aligned with the frames after them in
    /// view: every fg frame gets a bg frame showing its moment.
    #[test]
    fn a_search_s_last_matches_are_aligned_with_the_frames_after_them() {
        let mut t = tracker_at(0.8);
        let fg_moment = |i: usize| i / 3;
        let bg_moment = |k: usize| k * 10 / 24;
        // A scene that moves little from one moment to the next.
        let frame = |m: usize| Arc::new(scene_at(m as f64 * 0.25, 64, 48));
        for k in 0..120 {
            t.push(Side::Bg, k, frame(bg_moment(k)));
        }
        for i in 0..96 {
            t.push(Side::Fg, i, frame(fg_moment(i)));
        }
        let window = t.window().unwrap();
        // Each fg frame on the bg frame of its moment nearest its time, the last one on the
        // first bg frame of its moment.
        let showing = |m: usize| (0..120).filter(move |&k| bg_moment(k) == m);
        let nearest = |i: usize| {
            showing(fg_moment(i))
                .min_by(|&a, &b| {
                    let d = |k: usize| (k as f64 - i as f64 * 0.8).abs();
                    d(a).total_cmp(&d(b))
                })
                .unwrap()
        };
        let mut mapping: Vec<usize> = (0..72).map(nearest).collect();
        mapping[71] = showing(fg_moment(71)).next().unwrap();
        let a = searched(mapping, vec![0.001; 72]);
        t.plan(window, &a);
        let cancel = Cancel::new();
        let mut all = Vec::new();
        while t.pending() > 12 {
            let c = t.commit(t.pending() - 12, &CpuKernels, &cancel).unwrap();
            if c.matches.is_empty() {
                break;
            }
            all.extend(c.matches);
        }
        assert_eq!(all.len(), 84);
        let wrong: Vec<(usize, usize)> = all
            .iter()
            .filter(|m| bg_moment(m.bg) != fg_moment(m.fg))
            .map(|m| (m.fg, m.bg))
            .collect();
        assert!(wrong.is_empty(), "fg frames on another moment: {wrong:?}");
    }

    #[test]
    fn a_search_s_matches_are_committed_as_planned_then_aligned_on() {
        // A static scene: every frame looks the same, so content alone cannot place them;
        // then moments that move, bg frame k showing moment k, fg frame i moment i + 3.
        let moment = |k: usize| k.saturating_sub(20);
        let mut t = tracker();
        for k in 0..40 {
            t.push(Side::Bg, k, Arc::new(scene(moment(k), 64, 48)));
        }
        for i in 0..30 {
            t.push(Side::Fg, i, Arc::new(scene(moment(i + 3), 64, 48)));
        }
        let window = t.window().unwrap();
        assert_eq!(window, (0, 0, 39));
        // The search matched fg frames 0..12 to bg frames 3..15.
        let a = searched((3..15).collect(), vec![0.01; 12]);
        t.plan(window, &a);
        let cancel = Cancel::new();
        let c = t.commit(5, &CpuKernels, &cancel).unwrap();
        let got: Vec<(usize, usize)> = c.matches.iter().map(|m| (m.fg, m.bg)).collect();
        assert_eq!(got, (0..5).map(|i| (i, i + 3)).collect::<Vec<_>>());
        // The rest of the plan, then the frames after it aligned from its last match.
        let mut all = got;
        while t.pending() > 0 {
            let c = t.commit(t.pending(), &CpuKernels, &cancel).unwrap();
            if c.matches.is_empty() {
                break;
            }
            all.extend(c.matches.iter().map(|m| (m.fg, m.bg)));
        }
        assert_eq!(all.len(), 30);
        assert_eq!(
            all[..12],
            (0..12).map(|i| (i, i + 3)).collect::<Vec<_>>()[..]
        );
        assert!(all.windows(2).all(|w| w[0].1 <= w[1].1), "{all:?}");
        assert_eq!(all[29], (29, 32), "{all:?}");
        // A plan whose bg frames are gone is dropped: the commit aligns instead.
        let mut t = tracker();
        for k in 0..40 {
            t.push(Side::Bg, k, Arc::new(scene(k, 64, 48)));
        }
        for i in 0..10 {
            t.push(Side::Fg, i, Arc::new(scene(i + 30, 64, 48)));
        }
        t.plan((0, 0, 39), &a);
        t.forget_bg_before(20);
        let c = t.commit(10, &CpuKernels, &cancel).unwrap();
        let got: Vec<(usize, usize)> = c.matches.iter().map(|m| (m.fg, m.bg)).collect();
        assert_eq!(got, (0..10).map(|i| (i, i + 30)).collect::<Vec<_>>());
    }

    /// bg frames 60 and 120 damaged (something else altogether, in negative), each between
    /// two neighbours that are alike, in a scene that moves little: the fg frames showing
    /// their moments take them, as offline, where matching the damaged pixels would put them
    /// (and the path after them, for a while) on the next frame.
    #[test]
    fn a_damaged_bg_frame_is_matched_as_its_neighbours_mean() {
        let damaged = |k: usize| k == 60 || k == 120;
        let (m, _) = run_at(
            0.2,
            200,
            |k| if damaged(k) { 5000 + k } else { k },
            |i| i + 5,
            10,
            60,
        );
        assert_eq!(m.len(), 200);
        let wrong: Vec<(usize, usize)> = m
            .iter()
            .filter(|m| m.fg + 5 < 200 && m.bg != m.fg + 5)
            .map(|m| (m.fg, m.bg))
            .collect();
        assert!(wrong.is_empty(), "fg frames on another bg frame: {wrong:?}");
    }

    #[test]
    fn a_bg_that_leads_by_a_constant_delay_is_matched_exactly() {
        // bg frame k shows moment k; the fg shows it 20 frames later.
        let (m, re) = run(200, |k| k, |i| i.saturating_sub(20), 10, 60);
        assert_eq!(m.len(), 200);
        assert!(monotonic(&m));
        assert!(!re);
        // Once the fg shows moments the bg held (all of them here), every match is exact.
        let wrong: Vec<_> = m
            .iter()
            .filter(|x| x.fg >= 20 && x.bg != x.fg - 20)
            .collect();
        assert!(
            wrong.is_empty(),
            "{:?}",
            m.iter()
                .map(|x| (x.fg as i64 - x.bg as i64, x.unsure as u8))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_bg_that_lags_within_the_lookahead_is_matched_exactly() {
        // The fg shows moment i at frame i; the bg shows it 5 frames later.
        let (m, _) = run(150, |k| k.saturating_sub(5), |i| i, 10, 60);
        assert!(monotonic(&m));
        let exact = m.iter().filter(|x| x.bg == x.fg + 5).count();
        // The last 5 fg frames' moments never reach the bg.
        assert!(exact >= 140, "{exact} of {}", m.len());
    }

    #[test]
    fn a_slow_scene_lagging_within_the_lookahead_is_matched_and_corrected() {
        // Neighbouring moments differ little (a slow pan) and the bg shows each moment 8 frames
        // after the fg, with 10 frames of lookahead: the fg frames still waiting for their bg
        // frame must not drag the committed matches back onto older bg frames, and a path that
        // started a frame off (the first window held only 3 frames of overlap) is corrected.
        let (m, _) = run_at(0.04, 150, |k| k + 92, |i| i + 100, 10, 60);
        assert!(monotonic(&m));
        let off: Vec<i64> = m.iter().map(|x| x.bg as i64 - x.fg as i64).collect();
        let settled = (40..140).filter(|&i| off[i] == 8).count();
        assert_eq!(settled, 100, "{off:?}");
        assert!(m.iter().filter(|x| x.fg < 140).all(|x| !x.beyond));
    }

    #[test]
    fn a_bg_lagging_beyond_the_lookahead_takes_the_newest_bg_frame() {
        // The bg starts in step with the fg and falls behind, by one frame every 6, to 20
        // frames behind; only 10 are waited for. bg frame k shows moment k - d(k).
        let d = |k: usize| (k / 6).min(20);
        let (m, _) = run_at(0.15, 240, |k| k - d(k), |i| i, 10, 80);
        assert!(monotonic(&m));
        // The bg frame showing fg frame i's moment.
        let truth = |i: usize| (i..).find(|&k| k - d(k) >= i).unwrap();
        let (mut exact, mut newest, mut seen, mut beyond) = (0, 0, 0, 0);
        for x in &m {
            let t = truth(x.fg);
            if t + 1 < x.fg + 10 {
                // Its bg frame was held when it was committed.
                seen += 1;
                exact += usize::from(x.bg == t);
            } else if t > x.fg + 11 {
                beyond += 1;
                newest += usize::from(x.beyond && x.bg == x.fg + 10);
            }
        }
        assert!(exact * 10 >= seen * 9, "{exact} of {seen} exact");
        assert!(
            beyond > 100 && newest * 10 >= beyond * 9,
            "{newest} of {beyond} newest: {:?}",
            m.iter()
                .map(|x| (x.bg as i64 - x.fg as i64, x.beyond as u8))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn fg_frames_matching_nothing_follow_the_line_and_do_not_break_the_path() {
        // For 40 frames the fg shows something the bg never shows (a re-framed feed, an
        // insert): the path must go on along its line, so that it is right when the fg
        // matches again.
        let fg = |i: usize| {
            if (50..90).contains(&i) {
                i + 5000
            } else {
                i.saturating_sub(12)
            }
        };
        let (m, _) = run(160, |k| k, fg, 10, 60);
        assert!(monotonic(&m));
        let unsure = m
            .iter()
            .filter(|x| (50..90).contains(&x.fg) && x.unsure)
            .count();
        assert!(unsure >= 36, "{unsure} of 40 unsure");
        let wrong: Vec<_> = m
            .iter()
            .filter(|x| x.fg >= 90 && x.fg < 150 && x.bg + 12 != x.fg)
            .collect();
        assert!(
            wrong.is_empty(),
            "{:?}",
            m.iter()
                .map(|x| (x.fg as i64 - x.bg as i64, x.unsure as u8))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_drifting_delay_is_followed() {
        // The delay grows from 10 to 25 frames over the run (a slow speed difference).
        let delay = |k: usize| 10 + k * 15 / 400;
        let (m, re) = run(400, |k| k, |i| i.saturating_sub(delay(i)), 12, 80);
        assert!(!re);
        assert!(monotonic(&m));
        let off = m
            .iter()
            .filter(|x| x.fg > 30)
            .filter(|x| x.bg.abs_diff(x.fg - delay(x.fg)) > 1)
            .count();
        assert_eq!(off, 0);
    }

    #[test]
    fn a_bg_leading_by_more_than_it_keeps_is_reanchored_and_stays_monotonic() {
        // The fg freezes for 60 frames (its source stalled) while the bg runs on: the bg frame
        // of the last match falls out of the 30 frames kept.
        let fg = |i: usize| {
            if i < 50 {
                i
            } else if i < 110 {
                50
            } else {
                i - 60
            }
        };
        let (m, re) = run(200, |k| k, fg, 8, 30);
        assert!(re);
        assert!(monotonic(&m));
        assert_eq!(m.len(), 200);
    }

    #[test]
    fn nothing_is_committed_without_a_footprint_or_bg() {
        let geo = Geometry {
            fg: (64, 48),
            bg: (64, 48),
        };
        let mut t = Tracker::new(geo, Constraints::default(), None);
        let cancel = Cancel::new();
        t.push(Side::Fg, 0, Arc::new(scene(0, 64, 48)));
        assert!(
            t.commit(1, &CpuKernels, &cancel)
                .unwrap()
                .matches
                .is_empty()
        );
        let mut t = tracker();
        t.push(Side::Fg, 0, Arc::new(scene(0, 64, 48)));
        assert!(
            t.commit(1, &CpuKernels, &cancel)
                .unwrap()
                .matches
                .is_empty()
        );
        assert_eq!(t.pending(), 1);
    }
}
