// SPDX-License-Identifier: MIT

//! Live mode: frames are aligned on a sliding window and output `lookahead` behind the newest fg
//! frame (the latency the element adds), instead of after both inputs ended.

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

use std::collections::VecDeque;
use std::sync::Arc;

use super::intake::{held_luma, unclipped, with_luma};
use super::render::{Output, output_pool, plane_layouts};
use super::{CAT, Phase, State, VidkompyAlign, lock};
use crate::align::Cancel;
use crate::align::analysis::{Alignment, Side};
use crate::align::features::{HeldThumb, Thumb};
use crate::align::live::{Begun, Tracker};
use crate::align::recheck::{self, REFINE_PX, REFRAME_PX, Recheck, Verdict};
use crate::align::spatial::{Estimate, Geometry};
use crate::align::{placement, timing};
use crate::messages::{
    BgLagging, ElementMessage, FootprintFrom, LookaheadRaised, MappedBy, Reanchored, Reframed,
};
use crate::report::{self, Segment};
use crate::store::{FrameHolder, FrameTimes, HeldFrame, StoreError};

/// How often, in fg running time, the footprint search is tried again while it finds nothing.
const SEARCH_RETRY: u64 = 5_000_000_000;
/// How long before the first fg frame is due its footprint search starts (about what one
/// takes on two cores at 540p).
const SEARCH_HEAD: u64 = 300_000_000;
/// How far, in fg running time, a paced run reads past the start of a re-check before it
/// waits for the re-check's result.
const PACED_RECHECK_JOIN: u64 = 1_000_000_000;
/// A re-check's fit at the footprint in use that falls no more than this below the fit it was
/// found with (and stays within [`REFINE_PX`]) confirms it without a full search.
const REFIT_MARGIN: f64 = 0.01;
/// Recent committed matches of which half matching nothing well starts a re-check.
const RECENT_MATCHES: usize = 12;
/// While the bg lags by more than the lookahead, a search on the fg frames held compares
/// moments the bg has not shown yet: the search is done on a copy of those fg frames once the
/// bg advanced this much past them, then after twice, four times... as much...
const DEFER_STEP: u64 = 250_000_000;
/// ...this many times (the last with the bg 4 s past them).
const DEFER_TRIES: u32 = 5;
/// fg frames a paced run's first footprint search waits for (besides the lookahead): a
/// second's worth can show too little motion to fix the speed and the path's start. Since the
/// refinement tells a footprint a pan step off from the right one, long 1 --windowed is 100 %
/// exact with 36, 48 or 72; evaluate --windowed, exact matches over starlight's cases (of
/// 2058): 2038 with 36 (drift +-2 % 91 %), 1981 with 48, 2015 with 72 (all but bg 30 / fg 25
/// fps and fg touching two bg edges at 100 %); vtest 2581 of 2582 with each. (Before that
/// change: 4404 with none, 4593 with 48, 4596 with 72, 4632 with 120 over both clips; long
/// 79.7 % with 48, 88 % with 72.) On inputs that can seek, the frames read while it waits are
/// kept as thumbnails only, and read again once it placed them ([`Scout`]).
const PACED_SEARCH_FRAMES: usize = 72;
/// fg frames of the scout's window among which its refinement pairs are looked for first
/// (twice as many, and so on, while they give too few confident matches): the fine stages
/// run once these and their bg frames are read again, and until then every frame read again
/// is held in full. 1080p bench pair (`examples/bench`), force-live=true, peak RSS: 717 MB
/// with 72 (the offline analysis's), 483 MB with 24, 439 MB with 12; `evaluate --windowed`
/// on both clips the same with 24 as with 72 but for one spatial error (0.05 -> 0.03 px);
/// long 1 and 5 --windowed 100 % exact, 0.20 px (0.25 with 72).
const SCOUT_PAIRS_WITHIN: usize = 24;
/// bg frames read again before the first one the scout's window needs (the path may start a
/// frame or two before the coarse alignment's first match).
const SCOUT_MARGIN: usize = 8;
/// How far (ns) the bg is read ahead of the fg at most while the first window is not placed:
/// its thumbnails (about 200 MB at 24 fps) are held under their share of `max-memory`, the rest
/// in the spill file.
const MAX_SCOUT_REACH: u64 = 600_000_000_000;
/// Temporal confidence of a paced run's footprint search above which the speed it found
/// replaces the nominal one.
const PACED_RATE_TRUST: f64 = 0.5;
/// Frame duration assumed for a stream whose caps give no framerate.
const FALLBACK_DURATION: u64 = 1_000_000_000 / 30;
/// How far a paced run reads the bg past the moment of its newest fg frame, once the path is
/// known (ns; the lookahead, if shorter).
const PACED_BG_LEAD: u64 = 250_000_000;
/// Frames a paced run renders per round at most (the rest in the next rounds): output
/// buffers come from a pool, which would otherwise grow to a whole first window's frames.
const PACED_OUT_PER_ROUND: usize = 2;
/// Slots a fg frame may lie after the previous one (three frames dropped in a row).
const MAX_SLOT_STEP: f64 = 4.0;

/// A frame of `info` (one 8-bit plane) holding `luma`, in the layout of `info`.
fn luma_frame(luma: &Thumb, info: &gst_video::VideoInfo) -> Option<gst::Buffer> {
    let stride = usize::try_from(*info.stride().first()?).ok()?;
    let (w, h) = (luma.width, luma.height);
    if (w, h) != (info.width() as usize, info.height() as usize) || stride < w {
        return None;
    }
    let mut bytes = vec![0u8; info.size()];
    for (dst, src) in bytes.chunks_mut(stride).zip(luma.data.chunks(w)) {
        dst.get_mut(..w)?.copy_from_slice(src);
    }
    Some(gst::Buffer::from_mut_slice(bytes))
}

/// Whether `pad` reached EOS with no buffer left to take.
fn ended(pad: &gst_base::AggregatorPad) -> bool {
    pad.is_eos() && !pad.has_buffer()
}

/// Whether `buffer` was acquired from `pool`.
fn from_pool(buffer: &gst::BufferRef, pool: &gst::BufferPool) -> bool {
    // SAFETY: a buffer's `pool` field is set when it is acquired and cleared when it goes
    // back to its pool, which cannot happen while the reference read here is alive.
    let of = unsafe { (*buffer.as_ptr()).pool };
    std::ptr::eq(of, pool.as_ptr())
}

/// A frame held in live mode: upstream's buffer when it comes from the pool we offered, else a
/// copy, so that upstream's buffer goes back to its pool at once (capture sources and hardware
/// decoders have fixed pools).
pub(super) struct Held {
    index: usize,
    /// fg: the frame's slot on its frame grid (its index plus frames dropped before it).
    slot: usize,
    times: FrameTimes,
    /// Running time (ns): the buffer's, else its index times the frame duration.
    rt: u64,
    /// `None` for a frame read on thumbnails only (a scout), until it is read again.
    frame: Option<HeldFrame>,
    thumb: HeldThumb,
}

/// Where the footprint search stands.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Search {
    /// Not tried yet.
    #[default]
    Pending,
    /// Found.
    Found,
    /// Found nothing: the set (or centred) footprint and the running-time mapping are used
    /// meanwhile; tried again once the fg reaches this running time.
    Retry(u64),
}

/// How a paced run on inputs that can seek reads its first window: thumbnails only, until the
/// coarse stages of the first footprint search place it; then both inputs are sought back once
/// (the bg to a little before the first frame the window needs, the fg to its start) and read
/// again with their frames, and the search's fine stages take the frames they need from there.
/// Frames the alignment needs are then at hand when they are output, and no frame read ahead
/// is held in full while the search waits.
#[derive(Default)]
enum Scout {
    /// Frames are held as they arrive (inputs that cannot seek, a live upstream, or the scout
    /// is over).
    #[default]
    Off,
    /// Thumbnails only, until the first search starts.
    Reading,
    /// The coarse stages run on a thread of their own, on a copy of the tracker.
    Begun(ScoutJob),
    /// The seek back is to be sent (with no lock held): bg from this stream time (its start
    /// where `None`).
    Seek(Rereading, Option<gst::ClockTime>),
    /// Sought back: frames are read again until those the fine stages need are in.
    Rereading(Rereading),
}

/// The coarse stages of the first search, on their thread.
struct ScoutJob {
    handle: Option<std::thread::JoinHandle<Option<Begun>>>,
    /// Its result, once the thread was joined.
    joined: Option<Option<Begun>>,
    /// The tracker they ran on (its window frozen at the start).
    tracker: Tracker,
    cancel: Arc<Cancel>,
    now: u64,
    window: Option<(usize, usize, usize)>,
    started: std::time::Instant,
}

impl Drop for ScoutJob {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What a round waits for, joined with no lock held.
pub(super) enum Wait {
    Search(Join),
    Recheck(Join),
    Scout(std::thread::JoinHandle<Option<Begun>>),
}

/// The scout's part of a search round.
enum ScoutStep {
    /// Join this thread, then come again.
    Wait(Wait),
    /// The scout is under way: no search this round.
    Busy,
    /// Go on with the search round.
    Go,
}

/// Whether the oldest committed fg frame can go out now.
enum Ready {
    Go,
    Wait,
}

/// What a scout's re-read waits for.
struct Rereading {
    /// The coarse stages' result (`None`: nothing to align found; frames are read again from
    /// the start and placed as a failed search places them).
    begun: Option<Begun>,
    tracker: Tracker,
    now: u64,
    window: Option<(usize, usize, usize)>,
    started: std::time::Instant,
}

/// fg frames kept (thumbnail and full-resolution luma) for a footprint search once the bg
/// shows their moments.
struct Deferred {
    /// (index, thumbnail, full luma as a frame of `luma_info`), consecutive indices: the
    /// lumas are held through the run's [`FrameHolder`], under the frame share of
    /// `max-memory`.
    fg: Vec<(usize, HeldThumb, HeldFrame)>,
    luma_info: gst_video::VideoInfo,
    /// Running time of each of `fg`.
    rts: Vec<u64>,
    /// Running time of the newest of them.
    newest: u64,
    /// Searches done on them so far.
    tries: u32,
}

/// Where a re-check takes the fg's full-resolution luma from: frames held (the run's, or the
/// luma planes kept for a deferred search), in the layout of their video info.
struct FgLuma(Vec<(usize, HeldFrame)>, gst_video::VideoInfo);

impl FgLuma {
    fn get(&self, i: usize) -> Option<Arc<Thumb>> {
        let (_, f) = self.0.iter().find(|(k, _)| *k == i)?;
        held_luma(f, &self.1)
    }
}

/// A search's thread, joined with no element lock held (see [`VidkompyAlign::live_step`]).
pub(super) type Join = std::thread::JoinHandle<Option<Alignment>>;

/// The footprint search running on its own thread.
struct SearchJob {
    handle: Option<Join>,
    /// Its result, once the thread was joined.
    joined: Option<Option<Alignment>>,
    cancel: Arc<Cancel>,
    /// The newest fg frame's running time when it started.
    now: u64,
    /// The tracker's window it searched: first fg and bg frames, newest bg frame.
    window: Option<(usize, usize, usize)>,
    /// fg running time at which the fg held would have spanned the lookahead (the search
    /// started early, on fewer frames): a re-check is due then.
    full_at: Option<u64>,
    /// It searched only the fg frames whose moments the bg had shown (by the lag an earlier
    /// search of the first window measured): its matches are all real, and planned.
    narrowed: bool,
    started: std::time::Instant,
}

impl Drop for SearchJob {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A footprint re-check running on its own thread.
struct RecheckJob {
    handle: Option<Join>,
    /// Its result, once the thread was joined.
    joined: Option<Option<Alignment>>,
    /// The kept fg frames it searched on (else the frames held when it started).
    deferred: Option<Deferred>,
    /// It checks a footprint found early, on fewer fg frames than the lookahead spans.
    confirm: bool,
    cancel: Arc<Cancel>,
    /// The newest fg frame's running time when it started.
    started_at: u64,
    /// Started because the recent matches got worse (else periodic).
    worse: bool,
    /// A fg stretch's own search after a caps change, on the window (fg, bg, newest bg) of
    /// the frames from the change on: its footprint replaces the one in use where it moved
    /// by more than a re-framing, and its matches are planned.
    stretch: Option<(usize, usize, usize)>,
    /// The window it searched (first fg and bg frames, newest bg frame), for the lag its
    /// matches show.
    window: Option<(usize, usize, usize)>,
}

impl Drop for RecheckJob {
    fn drop(&mut self) {
        // A flush or stop: the thread leaves its loops at once (its result is not waited for).
        self.cancel.cancel();
    }
}

/// The live alignment's state.
#[derive(Default)]
pub(super) struct LiveRun {
    tracker: Option<Tracker>,
    /// bg frames held: up to `max-offset` behind the oldest fg frame not output.
    bg: VecDeque<Held>,
    /// fg frames not committed yet.
    fg: VecDeque<Held>,
    /// fg frames committed, with their bg frame, to output.
    ready: VecDeque<(Held, usize)>,
    /// Frames received per pad (bg, fg).
    received: [usize; 2],
    search: Search,
    /// The footprint search under way.
    search_job: Option<SearchJob>,
    /// fg frames output so far.
    output: usize,
    /// Re-anchorings so far (the bg led by more than max-offset).
    reanchored: u64,
    /// The last commit re-anchored.
    reanchoring: bool,
    /// The output caps were set.
    started: bool,
    /// fg frames are being matched to the newest bg frame because theirs has not arrived
    /// (the bg lags by more than the lookahead, or stalled).
    lagging: bool,
    /// The lookahead in use (ns), once raised above the `lookahead` property (up to
    /// `max-lookahead`) because the bg lags the fg's content by more.
    raised: Option<u64>,
    /// The lookahead (and latency) to set, with no lock held (see [`VidkompyAlign::live_step`]).
    raise: Option<Raise>,
    /// A lag the lookahead cannot cover was warned about.
    lag_warned: bool,
    /// A raise was refused (the pipeline could not take the latency): the lookahead stays at
    /// most this.
    raise_cap: Option<u64>,
    /// A search measured the lag (or the first search ended without a lag to measure): the
    /// first window is no longer held for `max-lookahead` ([`LiveRun::holds_first`]).
    lag_decided: bool,
    /// The running footprint re-check, if any.
    recheck: Option<RecheckJob>,
    /// fg running time of the last footprint search or re-check start.
    checked_at: u64,
    /// Paced runs: periodic re-checks in a row that confirmed the footprint (each doubles the
    /// time to the next, up to [`recheck::RECHECK_DOUBLINGS`]).
    confirmed: u32,
    /// Times the footprint was replaced by a re-check (the fg was re-framed).
    reframed: u64,
    /// Confidence and mean match cost of the search that found the footprint in use.
    fit: Option<(f64, f64)>,
    /// fg frames kept for a search once the bg shows their moments (the bg lags).
    deferred: Option<Deferred>,
    /// The bg started lagging: keep the fg frames held for such a search.
    want_deferred: bool,
    /// The footprint was found on fewer fg frames than the lookahead spans: it is checked
    /// again once the fg held reaches this running time.
    confirm_at: Option<u64>,
    /// The first window's best search so far, not committed while the lookahead leaves time
    /// for a surer one (see [`VidkompyAlign::first_decided`]).
    first_best: Option<(SearchJob, Option<Alignment>)>,
    /// The first window is searched again once the fg reaches this running time.
    first_again_at: Option<u64>,
    /// The bg's lag behind the fg's content an earlier search of the first window measured:
    /// the next one searches only the fg frames whose moments the bg has shown.
    first_lag: Option<u64>,
    /// Searches of the first window so far.
    first_tries: u32,
    /// The next search of the first window takes the older 1/2^n of its fg frames (the newer
    /// ones may show moments a lagging bg has not shown yet): one more after each search that
    /// was not sure.
    first_halvings: u32,
    /// Downstream's last QoS: output whose running time ends before this is dropped.
    earliest: Option<u64>,
    /// fg frames processed and dropped as late (QoS statistics).
    processed: u64,
    dropped: u64,
    /// The last running-time steps between frames, per pad (bg, fg): the frame duration of a
    /// stream whose caps give no framerate (RTP, for one).
    steps: [VecDeque<u64>; 2],
    /// No upstream is live (files with `force-live`): the pads are read in the order the
    /// alignment needs (see `live_take_paced`), found footprints are waited for, and the
    /// clock forces no commitment.
    paced: bool,
    /// bg running time less fg running time of the last committed match (paced runs).
    shift: Option<i64>,
    /// bg frame of the last committed match.
    last_bg: Option<usize>,
    /// Paced runs: what the report says (written when the fg ends).
    record: Record,
    /// The compositing plan for the footprint in use, once there is one.
    pub(super) plan: Option<Output>,
    /// The newest fg frame's running time and slot.
    last_fg: Option<(u64, usize)>,
    /// The fg's timestamps do not fit a grid (two frames less than half a frame apart, or
    /// out of order): one slot per frame from there on, as the offline analysis takes such a
    /// stream.
    fg_off_grid: bool,
    /// A thumbnail could not be spilled (warned once; the rest stay in memory).
    thumb_spill_failed: bool,
    /// How the first window is read (inputs that can seek).
    scout: Scout,
    /// How far (ns) the bg is read ahead of the fg while the first window is read on
    /// thumbnails, once it was not placed within `max-offset` plus the lookahead (doubled at
    /// each try until the bg ends).
    scout_reach: Option<u64>,
    /// A paced run's fg changed caps before these frames: the frames from each on (to the
    /// next) are a stretch whose footprint is searched on its own (offline's behaviour for
    /// files) before any of them is committed; they reach the tracker once it is. Oldest
    /// first.
    stretch: VecDeque<usize>,
    /// `frames=windowed` on files that can seek (not live, no `force-live`): the offline run
    /// made on the sliding window, reported as an alignment by content, its frames as
    /// `windowed`.
    files: bool,
    /// Each pad's pool of buffers that held frames are copied into (bg, fg), with their size.
    pools: [Option<(gst::BufferPool, usize)>; 2],
    /// Upstream is to be asked to renegotiate its allocation (a RECONFIGURE event on both
    /// sink pads): the pools offered to it grew to the first window's frames, and new ones
    /// grow only to what the sliding window holds.
    renew_offered: bool,
    /// Each pad's segment when its first frame came (bg, fg): once sought back, frames read
    /// again get their running times on it, as they had the first time.
    first_segments: [Option<gst::FormattedSegment<gst::ClockTime>>; 2],
    /// The scout sought the inputs back.
    sought: bool,
    /// Since: the newest frame read again per pad (bg, fg).
    reread: [Option<usize>; 2],
    /// Since: the timestamp of the newest frame read before the seek per pad (bg, fg).
    heads: [Option<gst::ClockTime>; 2],
}

/// The alignment of a paced run, as output: for the report.
#[derive(Default)]
struct Record {
    /// Every fg frame's bg frame, in order.
    frames: Vec<report::Entry>,
    /// The footprints used, each from the fg frame it was first composited on.
    segments: Vec<Segment>,
    /// The last footprint search's or re-check's result that was used.
    alignment: Option<Alignment>,
    /// Time the footprint searches took.
    spent: std::time::Duration,
    written: bool,
}

/// A raise of the lookahead, applied with no lock held.
#[derive(Debug, Clone, Copy)]
struct Raise {
    /// The lag measured (ns).
    lag: u64,
    /// The lookahead before.
    from: u64,
    to: u64,
    fg_frame: usize,
}

/// Matches a search must place before the newest bg frame it had to measure a lag.
const LAG_MATCHES: usize = 3;
/// Lookahead kept past a lag measured (ns): the matches' frames lie around it.
const LAG_MARGIN: u64 = 250_000_000;

/// Steps kept per pad to measure a frame duration.
const STEPS: usize = 15;

/// The first live window's search is committed at once when its calibrated confidence
/// ([`crate::align::spatial::calibrated`]) is at least this: the level above which the offline
/// analysis's footprints are right on the test footage. Below it, it is searched again while
/// the lookahead leaves time (see [`VidkompyAlign::first_decided`]).
const FIRST_SURE: f64 = 0.9;
/// At most this many searches of the first window.
const FIRST_TRIES: u32 = 4;
/// A narrowed search of the first window needs at least this many fg frames whose moments the
/// bg has shown.
const NARROW_MIN: usize = 6;
/// A narrowed search that measures a lag this much longer than the one it was narrowed by is
/// done again on that lag.
const NARROW_AGAIN: u64 = 100_000_000;

impl LiveRun {
    pub(super) fn new(paced: bool, scout: bool) -> Self {
        LiveRun {
            paced,
            scout: if scout { Scout::Reading } else { Scout::Off },
            ..LiveRun::default()
        }
    }

    /// The lookahead in use: the `lookahead` property's, or more once raised; with
    /// `max-lookahead` (not paced), `max-lookahead` until the first search decided the lag, so
    /// that the first window spans more than the lag it may show (its output waits for that).
    fn lookahead(&self, s: &super::Settings) -> u64 {
        if self.holds_first(s) {
            return s.max_lookahead;
        }
        self.raised.map_or(s.lookahead, |r| r.max(s.lookahead))
    }

    /// The latency a live run (not paced) adds: the lookahead in use.
    pub(super) fn latency_added(&self, s: &super::Settings) -> Option<u64> {
        (!self.paced).then(|| self.lookahead(s))
    }

    /// The first window is held for `max-lookahead`, until a search decided the lag.
    fn holds_first(&self, s: &super::Settings) -> bool {
        !self.paced && !self.lag_decided && s.max_lookahead > s.lookahead
    }

    /// Running time of fg frame `i`, where the run still holds it (or kept it for `deferred`).
    fn fg_rt(&self, i: usize, deferred: Option<&Deferred>) -> Option<u64> {
        let held = self
            .ready
            .iter()
            .map(|(h, _)| h)
            .chain(self.fg.iter())
            .find(|h| h.index == i)
            .map(|h| h.rt);
        held.or_else(|| {
            let d = deferred?;
            let k = d.fg.iter().position(|f| f.0 == i)?;
            d.rts.get(k).copied()
        })
    }

    /// The first window is read on thumbnails only (nothing can be output yet).
    fn scouting(&self) -> bool {
        matches!(self.scout, Scout::Reading | Scout::Begun(_))
    }

    #[cfg(test)]
    pub(super) fn scouts(&self) -> bool {
        matches!(self.scout, Scout::Reading)
    }

    /// [`LiveRun::files`].
    pub(super) fn for_files(self, files: bool) -> Self {
        LiveRun { files, ..self }
    }

    pub(super) fn is_files(&self) -> bool {
        self.files
    }

    /// A raise of the lookahead waits to be applied with no lock held.
    pub(super) fn raise_pending(&self) -> bool {
        self.raise.is_some()
    }

    pub(super) fn is_paced(&self) -> bool {
        self.paced
    }

    /// The newest fg running time whose moment the bg has shown, where it lags by `lag` (a
    /// search's measure, good to a frame: one bg frame more is taken off, so that a frame it
    /// has not shown does not pull a still scene's matches one frame off).
    fn shown_until(&self, lag: u64, bg: Option<&gst_video::VideoInfo>) -> u64 {
        self.bg
            .back()
            .map_or(0, |h| h.rt)
            .saturating_sub(lag)
            .saturating_sub(self.duration(0, bg).unwrap_or(0))
    }

    /// The frame duration of pad `k` (0 bg, 1 fg): from its caps' framerate, else the median
    /// step between its frames' running times (once two are known), else `None`.
    fn duration(&self, k: usize, info: Option<&gst_video::VideoInfo>) -> Option<u64> {
        if let Some(d) = info.and_then(caps_duration) {
            return Some(d);
        }
        let mut steps: Vec<u64> = self.steps[k].iter().copied().collect();
        if steps.len() < 2 {
            return None;
        }
        steps.sort_unstable();
        Some(steps[steps.len() / 2])
    }
}

/// Nanoseconds of one frame at the framerate of `info`, if it gives one.
fn caps_duration(info: &gst_video::VideoInfo) -> Option<u64> {
    let f = info.fps();
    if f.numer() <= 0 || f.denom() <= 0 {
        return None;
    }
    gst::ClockTime::SECOND
        .mul_div_round(f.denom() as u64, f.numer() as u64)
        .map(|t| t.nseconds())
        .filter(|&d| d > 0)
}

impl VidkompyAlign {
    /// Whether the element runs live: upstream is live, or `force-live` is set.
    pub(super) fn is_live(&self) -> bool {
        let obj = self.obj();
        obj.is_force_live() || obj.latency().is_some()
    }

    /// Whether an upstream of either sink pad is live (asked with a latency query).
    pub(super) fn upstream_live(&self) -> bool {
        [&self.bg_pad, &self.fg_pad].iter().any(|pad| {
            let mut q = gst::query::Latency::new();
            pad.peer_query(&mut q) && q.result().0
        })
    }

    /// Why live mode cannot run with these settings, if it cannot.
    pub(super) fn live_refusal(&self) -> Option<String> {
        let s = super::lock(&self.settings).clone();
        if s.alignment.is_some() {
            return Some(
                "Live inputs cannot reuse an alignment file (alignment=...): it maps whole \
                 recordings; unset it, or feed the recordings as files"
                    .into(),
            );
        }
        if s.match_region != super::MatchRegion::Footprint {
            return Some(
                "match-region=edges is not supported with live inputs (it needs every frame \
                 at full resolution); use match-region=footprint"
                    .into(),
            );
        }
        if (s.report.is_some() || s.plot.is_some()) && self.upstream_live() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("The report file and plot are not written with live inputs: the alignment is posted \
                  as vidkompy-alignment messages instead")
            );
        }
        None
    }

    /// The running time the aggregator should wait for before calling `aggregate` even if a pad
    /// has no data (the aggregator adds the latency): the oldest fg frame not output, else the
    /// earliest frame waiting on a pad, so that a stalled fg does not block the bg. `None` while
    /// there is none: wait for data.
    pub(super) fn live_next_time(&self) -> Option<gst::ClockTime> {
        {
            let guard = self.state();
            if let Some(live) = guard.as_ref().and_then(|s| s.live()) {
                if live.paced {
                    // Not held to the clock: wait for data.
                    return None;
                }
                if !live.ready.is_empty() {
                    return Some(gst::ClockTime::ZERO);
                }
                if let Some(h) = live.fg.front() {
                    // The aggregator waits its latency past this: a first window held for the
                    // lag waits up to `max-lookahead` instead of the lookahead.
                    let s = super::lock(&self.settings);
                    let extra = if live.holds_first(&s) {
                        s.max_lookahead.saturating_sub(s.lookahead)
                    } else {
                        0
                    };
                    return Some(gst::ClockTime::from_nseconds(h.rt.saturating_add(extra)));
                }
            }
        }
        if ended(&self.fg_pad) {
            // The fg ended: EOS goes out now, whatever the bg does.
            return Some(gst::ClockTime::ZERO);
        }
        let peek = |pad: &gst_base::AggregatorPad| {
            let buffer = pad.peek_buffer()?;
            let segment = pad.segment().downcast::<gst::ClockTime>().ok()?;
            segment.to_running_time(buffer.pts()?)
        };
        match (peek(&self.fg_pad), peek(&self.bg_pad)) {
            (Some(f), Some(b)) => Some(f.min(b)),
            (f, b) => f.or(b),
        }
    }

    /// Downstream's QoS event, in live mode: frames that would reach it after `earliest` are
    /// dropped (as compositor does).
    pub(super) fn live_qos(&self, event: &gst::event::Qos) {
        let mut guard = self.state();
        let Some(live) = guard.as_mut().and_then(|s| s.live_mut()) else {
            return;
        };
        if live.paced {
            // Files: every frame goes out, however late.
            return;
        }
        let (_, _, diff, timestamp) = event.get();
        let Some(ts) = timestamp else {
            return;
        };
        // Late by `diff`: the next frames will be too; jump twice the lateness ahead.
        let earliest = if diff > 0 {
            ts.nseconds().saturating_add(2 * diff as u64)
        } else {
            ts.nseconds().saturating_sub(diff.unsigned_abs())
        };
        gst::debug!(CAT, imp = self, "QoS: diff {diff}, earliest {earliest}");
        live.earliest = Some(earliest);
    }

    /// Takes every buffer waiting on both pads into the live state, the bg's first.
    fn live_take_both(&self, state: &mut State) -> Result<(), gst::FlowError> {
        self.live_take(state, Side::Bg)?;
        self.live_take(state, Side::Fg)
    }

    /// Takes every buffer waiting on `pad` into the live state.
    fn live_take(&self, state: &mut State, side: Side) -> Result<(), gst::FlowError> {
        let pad = match side {
            Side::Bg => &self.bg_pad,
            Side::Fg => &self.fg_pad,
        };
        while let Some(buffer) = pad.pop_buffer() {
            self.live_hold(state, side, buffer)?;
        }
        Ok(())
    }

    /// Running time (ns) of the buffer waiting on `pad`, if it has one with a time: on
    /// `first`, the pad's first segment, once the scout sought back (the running time the frame
    /// had, or would have had, when first read), else on its segment.
    fn head_rt(
        pad: &gst_base::AggregatorPad,
        first: Option<&gst::FormattedSegment<gst::ClockTime>>,
    ) -> Option<u64> {
        let buffer = pad.peek_buffer()?;
        let pts = buffer.pts()?;
        match first {
            Some(s) => s.to_running_time(pts),
            None => pad
                .segment()
                .downcast::<gst::ClockTime>()
                .ok()?
                .to_running_time(pts),
        }
        .map(|t| t.nseconds())
    }

    /// While a scout's frames are read again before its fine stages ran: whether the buffer
    /// waiting on `pad` is past the newest frame read before the seek (it waits: the window
    /// the fine stages finish must not move).
    fn past_head(live: &LiveRun, pad: &gst_base::AggregatorPad, side: Side) -> bool {
        matches!(live.scout, Scout::Rereading(_)) && Self::again(live, pad, side) == Some(false)
    }

    /// Once sought back: whether the buffer waiting on `pad` is one read before the seek
    /// (`Some(true)`) or a new one (`Some(false)`); `None` before a seek, for an untimed
    /// buffer or none.
    fn again(live: &LiveRun, pad: &gst_base::AggregatorPad, side: Side) -> Option<bool> {
        let head = live.heads[usize::from(side == Side::Fg)]?;
        let waiting = pad.peek_buffer()?.pts()?;
        Some(waiting <= head)
    }

    /// Takes the next buffer of a paced run (no live upstream: files), in the order the
    /// alignment needs them, so that neither stream is read further ahead than
    /// it must be and the bg frames held stay few: before the footprint is found, the bg runs
    /// ahead of the fg by up to `max-offset` plus the lookahead (it may show the fg's moments
    /// that much later); then the two are read in step along the path (bg running time less
    /// the last committed match's offset). A pad that holds nothing waits, unless it ended.
    fn live_take_paced(&self, state: &mut State) -> Result<(), gst::FlowError> {
        let settings = super::lock(&self.settings).clone();
        let Some(live) = state.live() else {
            return Err(gst::FlowError::Error);
        };
        // Read again, a pad past its scouted head waits for the scout's fine stages (the
        // other pad's frames they need are before its own head).
        let held = [
            Self::past_head(live, &self.bg_pad, Side::Bg),
            Self::past_head(live, &self.fg_pad, Side::Fg),
        ];
        let has = |pad: &gst_base::AggregatorPad, k: usize| pad.has_buffer() && !held[k];
        let gone = |pad: &gst_base::AggregatorPad, k: usize| ended(pad) || held[k];
        let first = |k: usize| live.first_segments[k].as_ref().filter(|_| live.sought);
        let side = match (has(&self.bg_pad, 0), has(&self.fg_pad, 1)) {
            (true, false) if gone(&self.fg_pad, 1) => Side::Bg,
            (false, true) if gone(&self.bg_pad, 0) => Side::Fg,
            (true, true) => {
                let shift = live.shift;
                match (
                    Self::head_rt(&self.bg_pad, first(0)),
                    Self::head_rt(&self.fg_pad, first(1)),
                ) {
                    (Some(b), Some(f)) => match (
                        Self::again(live, &self.bg_pad, Side::Bg),
                        Self::again(live, &self.fg_pad, Side::Fg),
                    ) {
                        // Frames read again add nothing to the alignment (their thumbnails
                        // are in): the fg reaches its head before new bg frames are read, and
                        // the bg read again keeps to the path, not a lookahead ahead (the
                        // alignment has its lookahead already; fewer frames held in full until
                        // they go out).
                        (Some(false), Some(true)) => Side::Fg,
                        (Some(true), Some(_)) if shift.is_some() => {
                            let bg_dur = live
                                .duration(0, state.bg.info.as_ref())
                                .unwrap_or(FALLBACK_DURATION);
                            let lead = shift.unwrap_or(0).saturating_add(bg_dur as i64);
                            if (b as i64) <= (f as i64).saturating_add(lead) {
                                Side::Bg
                            } else {
                                Side::Fg
                            }
                        }
                        _ => {
                            let lead = match shift {
                                // In step along the path, the bg a little ahead of the
                                // newest fg frame's moment: the fg frames committed are a
                                // lookahead behind it, their matches well inside the bg
                                // held.
                                Some(s) => {
                                    s.saturating_add(settings.lookahead.min(PACED_BG_LEAD) as i64)
                                }
                                None => live.scout_reach.unwrap_or(
                                    settings.max_offset.saturating_add(settings.lookahead),
                                ) as i64,
                            };
                            if (b as i64) <= (f as i64).saturating_add(lead) {
                                Side::Bg
                            } else {
                                Side::Fg
                            }
                        }
                    },
                    // Untimed buffers: the fg's moments wait for the bg's.
                    _ => Side::Bg,
                }
            }
            // Nothing, or one pad waits for data.
            _ => return Ok(()),
        };
        let pad = match side {
            Side::Bg => &self.bg_pad,
            Side::Fg => &self.fg_pad,
        };
        // One buffer per round: the alignment's steps between buffers (commitments, and the
        // offset they give) do not depend on how many had arrived, so the same files give the
        // same output.
        // Converted to the pad's first caps after a caps change.
        let ps = match side {
            Side::Bg => &state.bg,
            Side::Fg => &state.fg,
        };
        match self.pop(pad, ps)? {
            Some(buffer) => self.live_hold(state, side, buffer),
            None => Ok(()),
        }
    }

    /// Holds one buffer of `side` in the live state: a copy, its thumbnail and times.
    fn live_hold(
        &self,
        state: &mut State,
        side: Side,
        buffer: gst::Buffer,
    ) -> Result<(), gst::FlowError> {
        let (pad, name) = match side {
            Side::Bg => (&self.bg_pad, "bg"),
            Side::Fg => (&self.fg_pad, "fg"),
        };
        let ps = match side {
            Side::Bg => &state.bg,
            Side::Fg => &state.fg,
        };
        let Some(info) = ps.info.clone() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Buffer on pad {name} before any caps")
            );
            return Err(gst::FlowError::Error);
        };
        let k = usize::from(side == Side::Fg);
        let index = state.live().map_or(0, |l| l.received[k]);
        let segment = pad.segment().downcast::<gst::ClockTime>().ok();
        let buffer = unclipped(buffer, segment.as_ref(), &info);
        if side == Side::Fg && state.fg.first_segment.is_none() {
            state.fg.first_segment = segment.clone();
        }
        let holder = &mut state.holder;
        let Phase::Live(live) = &mut state.phase else {
            return Err(gst::FlowError::Error);
        };
        if live.first_segments[k].is_none() {
            live.first_segments[k] = segment.clone();
        }
        let pts = buffer.pts();
        // Only a frame at or before the newest read before the seek can be one read again
        // (new frames skip the look-up).
        let again = pts.is_none_or(|p| live.heads[k].is_some_and(|h| p <= h));
        if live.sought && again && self.reread_hold(holder, live, side, pts, &buffer, &info)? {
            return Ok(());
        }
        // Once sought back, times on the first segment, as the frames before had them.
        let rt_segment = if live.sought {
            live.first_segments[k].as_ref()
        } else {
            segment.as_ref()
        };
        let running_time = rt_segment.and_then(|s| pts.and_then(|p| s.to_running_time(p)));
        let times = FrameTimes {
            pts,
            duration: buffer.duration(),
            running_time,
        };
        let rt = running_time.map_or(
            index as u64 * live.duration(k, Some(&info)).unwrap_or(FALLBACK_DURATION),
            |t| t.nseconds(),
        );
        let last = match side {
            Side::Bg => live.bg.back(),
            Side::Fg => live.fg.back().or(live.ready.back().map(|(h, _)| h)),
        };
        if let Some(step) = last.and_then(|l| rt.checked_sub(l.rt)).filter(|&d| d > 0) {
            let steps = &mut live.steps[k];
            if steps.len() == STEPS {
                steps.pop_front();
            }
            steps.push_back(step);
        }
        let Some(thumb) = with_luma(&buffer, &info, Thumb::new) else {
            gst::element_imp_error!(
                self,
                gst::StreamError::Decode,
                ("Frame {index} on pad {name} does not match its caps")
            );
            return Err(gst::FlowError::Error);
        };
        // A copy: upstream's buffer goes back to its pool now. A scout keeps none (untimed
        // frames excepted: they could not be told apart when read again).
        let frame = if live.scouting() && pts.is_some() {
            None
        } else {
            Some(self.hold_frame(holder, &mut live.pools, &buffer, &info, index, name)?)
        };
        // In memory under the pad's thumbnail share, else in the spill file (a scout reads
        // the bg far ahead on thumbnails).
        let thumb: HeldThumb = match holder.hold_thumb(k, thumb) {
            Ok(t) => t,
            Err((thumb, e)) => {
                if !live.thumb_spill_failed {
                    live.thumb_spill_failed = true;
                    gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Write,
                        ("Thumbnails past max-memory are kept in memory: {e}")
                    );
                }
                Arc::new(thumb)
            }
        };
        // A fg frame's slot: as many frame durations after the previous one as its running
        // time says (frames dropped, a variable frame rate), at least one.
        let slot = match (side, live.last_fg) {
            (Side::Bg, _) => index,
            (Side::Fg, None) => index,
            (Side::Fg, Some((prev_rt, prev_slot))) => {
                let step = live.duration(1, Some(&info)).filter(|&d| d > 0);
                // Less than half a frame after the one before (or not after it): the same
                // slot, which no grid has.
                let same_slot =
                    rt <= prev_rt || step.is_some_and(|d| rt.saturating_sub(prev_rt) < d / 2);
                if running_time.is_some() && same_slot && !live.fg_off_grid {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "fg frame {index} is stamped less than half a frame after the one \
                         before: its timestamps do not fit a grid, one slot per frame from here"
                    );
                    live.fg_off_grid = true;
                }
                let steps = match (running_time, step) {
                    _ if live.fg_off_grid => 1.0,
                    (Some(_), Some(d)) => (rt.saturating_sub(prev_rt) as f64 / d as f64).round(),
                    _ => 1.0,
                };
                prev_slot + steps.clamp(1.0, MAX_SLOT_STEP) as usize
            }
        };
        if side == Side::Fg {
            if live.last_fg.is_some_and(|(_, s)| slot > s + 1) {
                gst::debug!(
                    CAT,
                    imp = self,
                    "fg frame {index} at slot {slot}: {} frame(s) dropped before it",
                    slot - live.last_fg.map_or(0, |(_, s)| s) - 1
                );
            }
            live.last_fg = Some((rt, slot));
        }
        let in_stretch = side == Side::Fg && !live.stretch.is_empty();
        if let Some(t) = live.tracker.as_mut().filter(|_| !in_stretch) {
            match side {
                Side::Fg => t.push_fg(index, slot, thumb.clone()),
                Side::Bg => t.push(side, index, thumb.clone()),
            }
        }
        let held = Held {
            index,
            slot,
            times,
            rt,
            frame,
            thumb,
        };
        live.received[k] += 1;
        gst::trace!(CAT, imp = self, "live {name} frame {index} at {rt}");
        match side {
            Side::Bg => live.bg.push_back(held),
            Side::Fg => live.fg.push_back(held),
        }
        Ok(())
    }

    /// Deactivates the held copies' pools: buffers out now are freed when released, and the
    /// next copies start new pools.
    fn fresh_pools(pools: &mut [Option<(gst::BufferPool, usize)>; 2]) {
        for p in pools.iter_mut() {
            if let Some((old, _)) = p.take() {
                let _ = old.set_active(false);
            }
        }
    }

    /// Frame `index` of pad `name` to hold: upstream's buffer itself when it comes from the
    /// pool offered to upstream (which has no maximum), else a copy, so that upstream's buffer
    /// goes back to its pool at once; the copy goes into a buffer of the pad's own pool
    /// (`pools`, by pad), whose memory is used again once a held frame goes out (fresh memory
    /// for each copy costs more in page faults than the copy itself). Held through `holder`:
    /// in memory within max-memory's share for frames, else in its spill file.
    fn hold_frame(
        &self,
        holder: &mut FrameHolder,
        pools: &mut [Option<(gst::BufferPool, usize)>; 2],
        buffer: &gst::Buffer,
        info: &gst_video::VideoInfo,
        index: usize,
        name: &str,
    ) -> Result<HeldFrame, gst::FlowError> {
        let buffer = self.own_frame(pools, buffer, index, name)?;
        holder
            .hold(buffer, info)
            .map_err(|e| self.frame_store_error(&e, index, name))
    }

    /// A frame that cannot be held or read back: an element error that says why.
    fn frame_store_error(&self, e: &StoreError, index: usize, name: &str) -> gst::FlowError {
        gst::element_imp_error!(
            self,
            gst::ResourceError::Write,
            ("Cannot hold frame {index} of pad {name}: {e}")
        );
        gst::FlowError::Error
    }

    /// Frame `index` of pad `name` as a buffer to hold: upstream's own or a copy (see
    /// [`VidkompyAlign::hold_frame`]).
    fn own_frame(
        &self,
        pools: &mut [Option<(gst::BufferPool, usize)>; 2],
        buffer: &gst::Buffer,
        index: usize,
        name: &str,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let fail = || {
            gst::error!(CAT, "cannot copy frame {index} of pad {name}");
            gst::FlowError::Error
        };
        let k = usize::from(name == "fg");
        if lock(&self.offered)[k]
            .as_ref()
            .is_some_and(|p| from_pool(buffer, p))
        {
            return Ok(buffer.clone());
        }
        let size = buffer.size();
        if pools[k].as_ref().is_none_or(|(_, s)| *s != size) {
            if let Some((old, _)) = pools[k].take() {
                let _ = old.set_active(false);
            }
            let pool = gst::BufferPool::new();
            let mut config = pool.config();
            config.set_params(None, u32::try_from(size).map_err(|_| fail())?, 0, 0);
            pool.set_config(config).map_err(|_| fail())?;
            pool.set_active(true).map_err(|_| fail())?;
            pools[k] = Some((pool, size));
        }
        let (pool, _) = pools[k].as_ref().ok_or_else(fail)?;
        let mut out = pool.acquire_buffer(None).map_err(|_| fail())?;
        {
            let out_ref = out.get_mut().ok_or_else(fail)?;
            buffer
                .copy_into(
                    out_ref,
                    gst::BufferCopyFlags::FLAGS
                        | gst::BufferCopyFlags::TIMESTAMPS
                        | gst::BufferCopyFlags::META,
                    ..,
                )
                .map_err(|_| fail())?;
            let src = buffer.map_readable().map_err(|_| fail())?;
            let mut dst = out_ref.map_writable().map_err(|_| fail())?;
            dst.copy_from_slice(&src);
        }
        Ok(out)
    }

    /// A frame read again after the scout's seek back: its buffer goes to the frame held for
    /// it (known by its timestamp; untimed, by counting from the start). `true` when it was
    /// such a frame (or one from before the frames needed, dropped); `false` for a frame
    /// after those read before, which is held as new.
    fn reread_hold(
        &self,
        holder: &mut FrameHolder,
        live: &mut LiveRun,
        side: Side,
        pts: Option<gst::ClockTime>,
        buffer: &gst::Buffer,
        info: &gst_video::VideoInfo,
    ) -> Result<bool, gst::FlowError> {
        let k = usize::from(side == Side::Fg);
        let name = if k == 0 { "bg" } else { "fg" };
        let LiveRun {
            bg,
            fg,
            ready,
            reread,
            pools,
            ..
        } = live;
        let mut held: Vec<&mut Held> = match side {
            Side::Bg => bg.iter_mut().collect(),
            Side::Fg => ready
                .iter_mut()
                .map(|(h, _)| h)
                .chain(fg.iter_mut())
                .collect(),
        };
        let newest = held.last().and_then(|h| h.times.pts);
        let found = match pts {
            // Frames read again come in the order read before: after the last one found
            // (decoders may stamp two frames alike).
            Some(p) => held
                .iter_mut()
                .find(|h| h.times.pts == Some(p) && reread[k].is_none_or(|r| h.index > r)),
            None => {
                let i = reread[k].map_or(0, |i| i + 1);
                held.iter_mut().find(|h| h.index == i)
            }
        };
        if let Some(h) = found {
            if h.frame.is_none() {
                h.frame = Some(self.hold_frame(holder, pools, buffer, info, h.index, name)?);
            }
            reread[k] = Some(h.index);
            return Ok(true);
        }
        match (pts, newest) {
            // After every frame read before: a new one.
            (Some(p), n) if n.is_none_or(|n| p > n) => Ok(false),
            (None, _)
                if held
                    .last()
                    .is_none_or(|h| reread[k].is_some_and(|r| r >= h.index)) =>
            {
                Ok(false)
            }
            _ => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "{name} frame at {pts:?} read again: not needed, dropped"
                );
                Ok(true)
            }
        }
    }

    /// Whether the oldest committed fg frame can go out: its buffer and its bg frame's are in
    /// (or the bg frame will not come again: the nearest later one is used). A fg frame read
    /// before the seek that did not come again is an error.
    fn reread_ready(&self, live: &LiveRun) -> Result<Ready, gst::FlowError> {
        let Some((fg, j)) = live.ready.front() else {
            return Ok(Ready::Go);
        };
        if fg.frame.is_none() {
            if live.reread[1].is_some_and(|r| r >= fg.index) || ended(&self.fg_pad) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    (
                        "fg frame {} (at {:?}) did not come again after the seek back to the \
                         start: upstream delivers other frames when read again",
                        fg.index,
                        fg.times.pts
                    )
                );
                return Err(gst::FlowError::Error);
            }
            return Ok(Ready::Wait);
        }
        let to_come = live.bg.iter().find(|b| b.index >= *j).is_some_and(|b| {
            b.frame.is_none()
                && !ended(&self.bg_pad)
                && live.sought
                && live.reread[0].is_none_or(|r| r < b.index)
        });
        Ok(if to_come { Ready::Wait } else { Ready::Go })
    }

    /// Creates the tracker once both pads have caps.
    fn live_tracker(&self, state: &mut State) {
        let (Some(fg), Some(bg)) = (state.fg.info.as_ref(), state.bg.info.as_ref()) else {
            return;
        };
        let Phase::Live(live) = &mut state.phase else {
            return;
        };
        if live.tracker.is_some() {
            return;
        }
        let geo = Geometry {
            fg: (fg.width(), fg.height()),
            bg: (bg.width(), bg.height()),
        };
        // A stream without framerate: its frame duration is measured on its first frames.
        // (A pad that ended keeps the fallback.)
        let ended = |pad: &gst_base::AggregatorPad| pad.is_eos().then_some(FALLBACK_DURATION);
        let (Some(fg_dur), Some(bg_dur)) = (
            live.duration(1, Some(fg)).or_else(|| ended(&self.fg_pad)),
            live.duration(0, Some(bg)).or_else(|| ended(&self.bg_pad)),
        ) else {
            return;
        };
        let rate = fg_dur as f64 / bg_dur.max(1) as f64;
        let constraints = super::lock(&self.settings).constraints();
        let mut t = Tracker::new(geo, constraints, Some(rate));
        for h in &live.bg {
            t.push(Side::Bg, h.index, h.thumb.clone());
        }
        for h in &live.fg {
            t.push_fg(h.index, h.slot, h.thumb.clone());
        }
        live.tracker = Some(t);
    }

    /// Posts `vidkompy-reanchored`: re-anchoring started (`reanchoring`) or stopped, at the
    /// match (fg frame, bg frame) committed then, after `count` re-anchorings so far.
    fn post_reanchored(&self, reanchoring: bool, at: Option<(usize, usize)>, count: u64) {
        let m = Reanchored {
            reanchoring,
            fg_frame: at.map_or(0, |m| m.0 as u64),
            bg_frame: at.map_or(0, |m| m.1 as u64),
            count,
        };
        if reanchoring {
            gst::warning!(CAT, imp = self, "{m:?}");
        } else {
            gst::info!(CAT, imp = self, "{m:?}");
        }
        let _ = self.obj().post_message(m.to_message(&*self.obj()));
    }

    /// Forgets bg frames more than `max-offset` (plus the lookahead) behind the oldest fg frame
    /// not output, keeping the newest; at most that span's worth of frames at the bg's rate.
    fn live_evict(&self, state: &mut State) {
        let settings = super::lock(&self.settings).clone();
        let Phase::Live(live) = &mut state.phase else {
            return;
        };
        let bg_dur = live
            .duration(0, state.bg.info.as_ref())
            .unwrap_or(FALLBACK_DURATION);
        let span = settings
            .max_offset
            .saturating_add(live.lookahead(&settings));
        // Paced runs need no count: the bg is read at most max-offset plus the lookahead ahead.
        let cap = if live.paced {
            usize::MAX
        } else {
            (span / bg_dur.max(1)) as usize + 4
        };
        let oldest_fg = live
            .ready
            .front()
            .map(|(h, _)| h.rt)
            .or(live.fg.front().map(|h| h.rt));
        // Paced: the path never goes back, so no bg frame before the last committed match is
        // matched again (the bg read ahead while the footprint was searched for goes then);
        // and the path, not the running times (which may drift apart, or lie), says which bg
        // frames are old.
        let floor = live.last_bg.filter(|_| live.paced);
        let keep_from = oldest_fg
            .filter(|_| floor.is_none())
            .map(|t| t.saturating_sub(settings.max_offset));
        let old =
            |h: &Held| keep_from.is_some_and(|k| h.rt < k) || floor.is_some_and(|f| h.index < f);
        // The tracker matches only frames within max-offset, even while older ones stay held
        // for committed matches waiting for output: a lead that grows past max-offset
        // re-anchors instead of holding ever more bg.
        let n = live.bg.len();
        let usable = live
            .bg
            .iter()
            .enumerate()
            .position(|(k, h)| !(old(h) || n - k > cap))
            .unwrap_or(n)
            .min(n.saturating_sub(1));
        let usable_from = live.bg.get(usable).map(|h| h.index);
        while live.bg.len() > 1 {
            let Some(front) = live.bg.front() else {
                break;
            };
            // The bg frame of a committed match waiting for output stays.
            let needed = live.ready.iter().any(|(_, j)| *j <= front.index);
            if needed || !(old(front) || live.bg.len() > cap) {
                break;
            }
            live.bg.pop_front();
        }
        if let (Some(t), Some(from)) = (live.tracker.as_mut(), usable_from) {
            t.forget_bg_before(from);
        }
    }

    /// fg frames due for commitment: those `lookahead` behind the newest frame held (a frame
    /// early, so that the output is on time; once the fg ended, behind the newest bg frame, so
    /// that its last frames still get their lookahead of bg), all of them once both ended,
    /// and on a timeout those whose output is due by the clock and the aggregator's `latency`
    /// (at least the oldest).
    fn live_due(&self, state: &State, timeout: bool, latency: Option<gst::ClockTime>) -> usize {
        let Some(live) = state.live() else {
            return 0;
        };
        let n = live.fg.len();
        if n == 0 {
            return 0;
        }
        let fg_ended = ended(&self.fg_pad);
        // A fg stretch after a caps change waits for its own footprint: the frames before it
        // are all there is of theirs (the first search needs wait for no more).
        let before = live
            .stretch
            .front()
            .map(|&at| live.fg.iter().take_while(|h| h.index < at).count());
        if fg_ended && (ended(&self.bg_pad) || live.bg.is_empty()) {
            return before.unwrap_or(n);
        }
        if let Some(b) = before
            && (b == 0 || live.search == Search::Pending)
        {
            return b;
        }
        if live.paced && live.search == Search::Pending && !fg_ended && n < PACED_SEARCH_FRAMES {
            // A paced run's first search waits for enough fg frames to show the scene.
            return 0;
        }
        let (lookahead, holds_first) = {
            let settings = super::lock(&self.settings);
            (live.lookahead(&settings), live.holds_first(&settings))
        };
        let dur = live
            .duration(1, state.fg.info.as_ref())
            .unwrap_or(FALLBACK_DURATION);
        let mut newest = live.fg.back().map_or(0, |h| h.rt);
        // Paced, once the fg ended: its last frames wait until the bg was read a lookahead
        // past where the path's line puts the last one (the streams' times may lie, or run at
        // other rates than their content), as the other frames waited for theirs.
        let bg_short = fg_ended && live.paced && !ended(&self.bg_pad) && {
            let bg_dur = live
                .duration(0, state.bg.info.as_ref())
                .unwrap_or(FALLBACK_DURATION);
            let ahead = lookahead as f64 / bg_dur.max(1) as f64;
            let last = live.fg.back().map(|h| h.slot);
            let expected = last.and_then(|s| live.tracker.as_ref()?.expected_bg(s));
            match (expected, live.bg.back()) {
                (Some(e), Some(b)) => (b.index as f64) < e + ahead,
                _ => false,
            }
        };
        if fg_ended && !bg_short {
            newest = newest.max(live.bg.back().map_or(0, |h| h.rt));
        }
        let mut due = live
            .fg
            .iter()
            .take_while(|h| h.rt.saturating_add(lookahead) <= newest.saturating_add(dur))
            .count();
        if let Some(b) = before {
            due = due.min(b);
        }
        if timeout {
            let obj = self.obj();
            let now = obj
                .clock()
                .map(|c| c.time())
                .zip(obj.base_time())
                .map(|(t, b)| t.saturating_sub(b).nseconds());
            // While the first window is held for the lag, by the lookahead in use (more than
            // the latency reported until the lag is decided).
            let latency = match latency {
                Some(l) if !holds_first => l.nseconds(),
                _ => lookahead,
            };
            let late = now.map_or(1, |now| {
                live.fg
                    .iter()
                    .take_while(|h| h.rt.saturating_add(latency) <= now)
                    .count()
            });
            // At least the oldest, unless the first window is held for the lag.
            due = due.max(if holds_first { late } else { late.max(1) });
        }
        due.min(n)
    }

    /// The footprint search on the frames held, when due: once, when the fg held nearly spans
    /// the lookahead, then (while it finds nothing) every [`SEARCH_RETRY`] of fg running time.
    ///
    /// The search runs on its own thread, so that input keeps flowing; it starts
    /// [`SEARCH_HEAD`] before the first fg frame is due, and frames due by the clock
    /// (`timeout`) or a `drain` wait for the rest of it.
    fn live_search(
        &self,
        state: &mut State,
        due: usize,
        timeout: bool,
        drain: bool,
    ) -> Result<Option<Wait>, gst::FlowError> {
        let infos = [state.bg.info.clone(), state.fg.info.clone()];
        let Phase::Live(live) = &mut state.phase else {
            return Err(gst::FlowError::Error);
        };
        match self.scout_step(live, &infos)? {
            ScoutStep::Wait(w) => return Ok(Some(w)),
            ScoutStep::Busy => return Ok(None),
            ScoutStep::Go => (),
        }
        if let Some(job) = live.search_job.as_ref() {
            let finished = job.handle.as_ref().is_none_or(|h| h.is_finished());
            // Frames due by the clock wait for the rest of it (late rather than misplaced), as
            // do those due in a paced run.
            let paced = live.paced;
            if !(finished || drain || ((timeout || paced) && due > 0)) {
                return Ok(None);
            }
            let Some(mut job) = live.search_job.take() else {
                return Ok(None);
            };
            let alignment = match (job.joined.take(), job.handle.take()) {
                (Some(a), _) => a,
                // Joined by the caller, with no lock held; then this is called again.
                (None, Some(h)) => {
                    live.search_job = Some(job);
                    return Ok(Some(Wait::Search(h)));
                }
                (None, None) => None,
            };
            self.device_fallback();
            let (job, alignment) = if live.search == Search::Pending && !paced {
                match self.first_decided(live, job, alignment, due, drain, infos[0].as_ref()) {
                    Some(decided) => decided,
                    // Searched again, now or later.
                    None => return self.live_search(state, due, timeout, drain),
                }
            } else {
                (job, alignment)
            };
            self.live_searched(state, alignment, &job)?;
            if let Some(live) = state.live_mut()
                && live.search == Search::Found
            {
                live.confirm_at = job.full_at;
            }
            return Ok(None);
        }
        let now = live.fg.back().map_or(0, |h| h.rt);
        // The first search starts before the first frame is due, so that its result is in
        // by then: once the fg held spans the lookahead less the time a search takes (at least
        // half the lookahead).
        let lookahead = live.lookahead(&super::lock(&self.settings));
        let start = lookahead.saturating_sub(SEARCH_HEAD).max(lookahead / 2);
        let span = now.saturating_sub(live.fg.front().map_or(now, |h| h.rt));
        let try_now = match live.search {
            Search::Found => false,
            // Searched again, with more frames, once the fg reaches this running time (the
            // frames due meanwhile wait for it).
            Search::Pending if live.first_again_at.is_some() => {
                drain || live.first_again_at.is_some_and(|t| now >= t)
            }
            // A paced run waits for its frames: the search starts on the whole window.
            Search::Pending => due > 0 || (span >= start && !live.paced),
            Search::Retry(after) => due > 0 && now >= after,
        };
        let Some(tracker) = live.tracker.as_ref() else {
            return Ok(None);
        };
        if !try_now || live.bg.is_empty() {
            return Ok(None);
        }
        let (Some(fg_info), Some(bg_info)) = (state.fg.info.clone(), state.bg.info.clone()) else {
            return Err(gst::FlowError::Error);
        };
        let frames = |held: &VecDeque<Held>| -> Vec<(usize, HeldFrame)> {
            held.iter()
                .filter_map(|h| Some((h.index, h.frame.clone()?)))
                .collect()
        };
        let cancel = Arc::new(Cancel::new());
        let window = tracker.window();
        if matches!(live.scout, Scout::Reading) {
            // Thumbnails only so far: the coarse stages now, the fine ones on frames read
            // again.
            let backend = self.compute();
            let copy = tracker.clone();
            let c = cancel.clone();
            #[cfg(debug_assertions)]
            let slow = self.test_slow_search();
            let handle = self.spawn_named("scout", move || {
                #[cfg(debug_assertions)]
                if slow {
                    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    while !c.is_cancelled() && std::time::Instant::now() < until {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
                copy.begin(backend.kernels(), SCOUT_PAIRS_WITHIN, &c)
                    .ok()
                    .flatten()
            })?;
            live.scout = Scout::Begun(ScoutJob {
                handle: Some(handle),
                joined: None,
                tracker: tracker.clone(),
                cancel,
                now,
                window,
                started: std::time::Instant::now(),
            });
            // Joined at once: nothing is output before the window is placed.
            return self.live_search(state, due, timeout, drain);
        }
        // A first window held for the lag, or searched again after a search that was not
        // sure: searched on its older half (quarter, ...) of fg frames, whose moments the bg
        // has shown where it lags by less than that part's distance to the newest fg frame
        // (the newer ones may show moments it has not shown yet, which would pull the search
        // off).
        let settings = super::lock(&self.settings).clone();
        // A first window whose earlier search measured the bg lagging: searched on the fg
        // frames whose moments the bg has shown.
        let shown = live
            .first_lag
            .filter(|_| live.search == Search::Pending)
            .map(|lag| live.shown_until(lag, infos[0].as_ref()));
        let narrowed = shown.is_some();
        let halvings = live.first_halvings + u32::from(live.holds_first(&settings));
        let (tracker, fg_held, window) = if shown.is_some() || halvings > 0 {
            let first = live.fg.front().map_or(now, |h| h.rt);
            let until = shown.unwrap_or_else(|| first.saturating_add(span >> halvings.min(8)));
            let older: Vec<&Held> = live.fg.iter().take_while(|h| h.rt <= until).collect();
            let thumbs: Vec<(usize, HeldThumb)> =
                older.iter().map(|h| (h.index, h.thumb.clone())).collect();
            let held = older
                .iter()
                .filter_map(|h| Some((h.index, h.frame.clone()?)))
                .collect();
            let copy = tracker.with_fg(&thumbs);
            let window = copy.window();
            (copy, held, window)
        } else {
            (tracker.clone(), frames(&live.fg), window)
        };
        let handle = self.spawn_locate(
            "search",
            tracker,
            (frames(&live.bg), bg_info),
            FgLuma(fg_held, fg_info),
            false,
            cancel.clone(),
        )?;
        // Started early (no frame due yet): checked again on the whole window.
        let full_at =
            (due == 0 && live.first_tries == 0).then(|| now + lookahead.saturating_sub(span));
        live.search_job = Some(SearchJob {
            handle: Some(handle),
            joined: None,
            cancel,
            now,
            window,
            full_at,
            narrowed,
            started: std::time::Instant::now(),
        });
        if drain {
            // Nothing more comes before the frames held go out: wait for it.
            return self.live_search(state, due, timeout, drain);
        }
        Ok(None)
    }

    /// The first window's search `job` ended with `alignment`, before anything was output (a
    /// live run, not paced). Returns the search to commit: the surest so far. Or `None` where
    /// the window is searched again first (now or at [`LiveRun::first_again_at`]):
    ///
    /// - Its matches show the bg lagging the fg's content, so that part of the window's fg
    ///   frames show moments the bg has not shown yet: those pull the footprint and the matches
    ///   off (on a slow or still scene most of all). Searched again on the other fg frames
    ///   alone, at once where at least [`NARROW_MIN`] of them are held, else once they are and
    ///   the lookahead leaves time.
    /// - Its calibrated confidence is below [`FIRST_SURE`] and the lookahead leaves time
    ///   before the first frame is due: searched again a quarter of the lookahead later (one
    ///   found early, before the window spanned the lookahead: once the first frame is due),
    ///   on the older half of the fg frames held then ([`LiveRun::first_halvings`]), up to
    ///   [`FIRST_TRIES`] searches. One that fits at chance level (not placed) is searched again
    ///   at once even where frames are due.
    /// - Its lag ([`VidkompyAlign::search_lag`]) is measured only where its mapping is trusted.
    ///
    /// A search started while frames are due makes them wait for it: the output stalls at the
    /// start rather than showing frames misplaced.
    fn first_decided(
        &self,
        live: &mut LiveRun,
        job: SearchJob,
        alignment: Option<Alignment>,
        due: usize,
        drain: bool,
        bg_info: Option<&gst_video::VideoInfo>,
    ) -> Option<(SearchJob, Option<Alignment>)> {
        live.first_tries += 1;
        live.first_again_at = None;
        // How sure a search is; one on the fg frames the bg has shown counts over one on the
        // whole window where it placed the fg (its pairs show the same moments).
        let sureness = |a: &Option<Alignment>, narrowed: bool| {
            a.as_ref()
                .filter(|a| recheck::live_placed(a))
                .map_or(-1.0, |a| {
                    let c = if a.spatial_calibrated.is_nan() {
                        a.spatial_confidence
                    } else {
                        a.spatial_calibrated
                    };
                    c + if narrowed && a.placed() { 1.0 } else { 0.0 }
                })
        };
        // Measured on a search whose matches are trusted (one on a window the bg has shown
        // nothing of yet matches at random, and would narrow the next one on a random lag).
        let lag = alignment
            .as_ref()
            .filter(|a| recheck::live_placed(a) && a.mapped())
            .zip(job.window)
            .and_then(|(a, w)| Self::search_lag(live, a, w, None));
        if let Some(a) = &alignment {
            gst::trace!(
                CAT,
                imp = self,
                "first window search {} (window {:?}, confidence {:.3}, calibrated {:.3}, \
                 temporal {:.3}): mapping {:?}, costs {:?}",
                live.first_tries,
                job.window,
                a.spatial_confidence,
                a.spatial_calibrated,
                a.temporal_confidence,
                a.mapping,
                a.costs
                    .iter()
                    .map(|c| (c * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>()
            );
        }
        let newest_narrowed = job.narrowed;
        // A search takes about as long as the last one did.
        let took = (job.started.elapsed().as_nanos() as u64).max(SEARCH_HEAD / 2);
        let (job, alignment) = match live.first_best.take() {
            Some((best, a)) if sureness(&a, best.narrowed) > sureness(&alignment, job.narrowed) => {
                (best, a)
            }
            _ => (job, alignment),
        };
        let lookahead = live.lookahead(&super::lock(&self.settings));
        let now = live.fg.back().map_or(0, |h| h.rt);
        let due_at = live
            .fg
            .front()
            .map_or(now, |h| h.rt)
            .saturating_add(lookahead);
        let time_at = |t: u64| due == 0 && t.saturating_add(took) < due_at;
        // Nothing more comes while draining: the surest so far is committed.
        let tries_left = !drain && live.first_tries < FIRST_TRIES;
        // Narrowed on the lag the newest search measured; again where a narrowed search
        // measured more (it still held frames the bg had not shown).
        let narrow = |lag: u64| match live.first_lag {
            None => !drain,
            Some(used) => tries_left && newest_narrowed && lag > used.saturating_add(NARROW_AGAIN),
        };
        if let Some(lag) = lag.filter(|&l| narrow(l)) {
            let until = live.shown_until(lag, bg_info);
            let shown = live.fg.iter().take_while(|h| h.rt <= until).count();
            // A fifth of the window or more not shown yet.
            if (live.fg.len() - shown) * 5 >= live.fg.len() {
                let enough_at = live.fg.get(NARROW_MIN - 1).map(|h| {
                    h.rt.saturating_add(lag)
                        .saturating_add(live.duration(0, bg_info).unwrap_or(0))
                });
                let again = if shown >= NARROW_MIN {
                    Some(now)
                } else {
                    enough_at.filter(|&t| time_at(t))
                };
                if let Some(t) = again {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "first window: the bg lags {lag} ns; searched again on the fg frames it \
                         showed ({shown} now) at fg time {t}"
                    );
                    live.first_lag = Some(lag);
                    live.first_again_at = Some(t);
                    live.first_best = Some((job, alignment));
                    return None;
                }
            }
        }
        // One found early (before the window spanned the lookahead) needs a clear match too.
        let clear = job.full_at.is_none()
            || alignment
                .as_ref()
                .is_some_and(|a| recheck::early_trusted(a.spatial_confidence));
        let sure = clear && sureness(&alignment, false) >= FIRST_SURE;
        // Later, on more frames; an early search's at the latest once the first frame is due.
        let later = now.saturating_add(lookahead / 4);
        // The surest search so far fits at chance level (the bg has not shown the window's
        // moments yet, on a bg lagging by about the lookahead): searched again at once on the
        // frames held (the bg read on meanwhile) even where frames are due, which wait for it;
        // the output stalls at the start rather than shows them misplaced. At once, not at a
        // later fg time: a fg that stalls then must not hold the frames back.
        let chance = alignment.as_ref().is_some_and(|a| !a.placed());
        let again = if time_at(later) {
            Some(later)
        } else {
            job.full_at
                .filter(|_| live.first_tries == 1)
                .map(|_| due_at.max(now))
                .or_else(|| chance.then_some(now))
        };
        gst::debug!(
            CAT,
            imp = self,
            "first window search {}: lag {lag:?}, sure {sure}, again {again:?}",
            live.first_tries
        );
        if !sure
            && tries_left
            && let Some(again) = again
        {
            gst::debug!(
                CAT,
                imp = self,
                "first window not placed surely ({:?}): searched again at fg time {again}",
                alignment
                    .as_ref()
                    .map(|a| (a.x, a.y, a.scale, a.spatial_calibrated))
            );
            live.first_again_at = Some(again);
            // On the older half of the frames of the last search (while no lag was
            // measured to narrow it by), if they are enough.
            if live.first_lag.is_none() && live.fg.len() >> (live.first_halvings + 1) >= NARROW_MIN
            {
                live.first_halvings += 1;
            }
            live.first_best = Some((job, alignment));
            return None;
        }
        Some((job, alignment))
    }

    /// Where the first window was not placed in the bg read so far (the bg has not ended):
    /// how far to read the bg ahead of the fg before the next try, twice as far as this
    /// time. Not placed: nothing found, no trusted footprint or distinct matches, the
    /// window's fg frames matched to a stretch of bg faster than a quarter of the nominal
    /// rate (the path stuck where the fg's moments are not), or its last frames matched
    /// within a lookahead of the newest bg frame read (the match may go on past it).
    fn scout_further(
        &self,
        live: &LiveRun,
        begun: Option<&Begun>,
        infos: &[Option<gst_video::VideoInfo>; 2],
    ) -> Option<u64> {
        let settings = super::lock(&self.settings).clone();
        let reach = live
            .scout_reach
            .unwrap_or(settings.max_offset.saturating_add(settings.lookahead));
        let bg_dur = live
            .duration(0, infos[0].as_ref())
            .unwrap_or(FALLBACK_DURATION);
        let fg_dur = live
            .duration(1, infos[1].as_ref())
            .unwrap_or(FALLBACK_DURATION);
        let rate = fg_dur as f64 / bg_dur.max(1) as f64;
        let fg_frames = live.fg.len();
        let newest_bg = live.bg.back().map_or(0, |h| h.index);
        let ahead = (settings.lookahead / bg_dur.max(1)) as usize;
        let why = match begun {
            None => Some("nothing found".to_string()),
            Some(b) if !b.mapped() => Some(format!(
                "not found (calibrated {:.2}, temporal confidence {:.2})",
                b.confidences().0,
                b.confidences().1
            )),
            Some(b) => match (b.first_match(), b.last_match()) {
                (Some(first), Some(last)) => {
                    let span = (last.saturating_sub(first) + 1) as f64;
                    if span * 4.0 < fg_frames as f64 * rate {
                        Some(format!(
                            "{fg_frames} fg frames matched to bg frames {first}..={last}"
                        ))
                    } else if last + ahead >= newest_bg {
                        Some(format!(
                            "the match reaches bg frame {last}, newest read {newest_bg}"
                        ))
                    } else {
                        None
                    }
                }
                _ => Some("no path".into()),
            },
        }?;
        if reach >= MAX_SCOUT_REACH {
            gst::info!(
                CAT,
                imp = self,
                "scout: the first window is not placed within {} s of bg ({why})",
                reach / 1_000_000_000
            );
            return None;
        }
        let further = reach.saturating_mul(2).min(MAX_SCOUT_REACH);
        gst::info!(
            CAT,
            imp = self,
            "scout: the first window is not placed in the bg read so far ({why}); reading the \
             bg {:.1} s ahead of the fg",
            further as f64 / 1e9
        );
        Some(further)
    }

    /// The scout's part of a search round: the coarse stages joined (then the seek back is
    /// due), or, once the frames they named were read again, the fine stages started as the
    /// first search.
    fn scout_step(
        &self,
        live: &mut LiveRun,
        infos: &[Option<gst_video::VideoInfo>; 2],
    ) -> Result<ScoutStep, gst::FlowError> {
        let bg_ended = ended(&self.bg_pad);
        match &mut live.scout {
            // Read further: the next try once the bg is that far ahead (or ended).
            Scout::Reading
                if live.scout_reach.is_some_and(|reach| {
                    let newest = |h: &VecDeque<Held>| h.back().map_or(0, |h| h.rt);
                    !bg_ended && newest(&live.bg) <= newest(&live.fg).saturating_add(reach)
                }) =>
            {
                Ok(ScoutStep::Busy)
            }
            Scout::Off | Scout::Reading => Ok(ScoutStep::Go),
            Scout::Seek(..) => Ok(ScoutStep::Busy),
            Scout::Begun(job) => {
                let begun = match (job.joined.take(), job.handle.take()) {
                    (Some(b), _) => b,
                    (None, Some(h)) => return Ok(ScoutStep::Wait(Wait::Scout(h))),
                    (None, None) => None,
                };
                let reread = Rereading {
                    begun,
                    tracker: job.tracker.clone(),
                    now: job.now,
                    window: job.window,
                    started: job.started,
                };
                if !bg_ended
                    && let Some(reach) = self.scout_further(live, reread.begun.as_ref(), infos)
                {
                    live.scout_reach = Some(reach);
                    live.scout = Scout::Reading;
                    return Ok(ScoutStep::Busy);
                }
                let bg_from = self.scout_seek(live, reread.begun.as_ref());
                gst::debug!(
                    CAT,
                    imp = self,
                    "scout: window placed in {:?} on thumbnails ({}); reading again, the bg from \
                     {bg_from:?}",
                    reread.started.elapsed(),
                    match &reread.begun {
                        Some(b) => format!("frames wanted {:?}", b.wanted()),
                        None => "nothing found".into(),
                    }
                );
                live.scout = Scout::Seek(reread, bg_from);
                Ok(ScoutStep::Busy)
            }
            Scout::Rereading(r) => {
                let wanted = r.begun.as_ref().map(|b| b.wanted()).unwrap_or_default();
                let in_or_past = |side: Side, i: usize| {
                    let (held, k, pad) = match side {
                        Side::Bg => (&live.bg, 0, &self.bg_pad),
                        Side::Fg => (&live.fg, 1, &self.fg_pad),
                    };
                    held.iter().find(|h| h.index == i).is_none_or(|h| {
                        h.frame.is_some() || live.reread[k].is_some_and(|r| r >= i) || ended(pad)
                    })
                };
                let complete = wanted.bg.iter().all(|&j| in_or_past(Side::Bg, j))
                    && wanted.fg.iter().all(|&i| in_or_past(Side::Fg, i));
                if !complete {
                    return Ok(ScoutStep::Busy);
                }
                let Scout::Rereading(r) = std::mem::take(&mut live.scout) else {
                    return Ok(ScoutStep::Go);
                };
                let frames = |held: &VecDeque<Held>, w: &[usize]| -> Vec<(usize, HeldFrame)> {
                    held.iter()
                        .filter(|h| w.binary_search(&h.index).is_ok())
                        .filter_map(|h| Some((h.index, h.frame.clone()?)))
                        .collect()
                };
                let (bg, fg) = (frames(&live.bg, &wanted.bg), frames(&live.fg, &wanted.fg));
                // The frames read so far (a first window's, more than the run holds later)
                // go back to no pool: frames from here on come from pools that grow only to
                // what the sliding window holds.
                Self::fresh_pools(&mut live.pools);
                live.renew_offered = true;
                gst::debug!(
                    CAT,
                    imp = self,
                    "scout: frames read again, {} of {} wanted in (read again up to bg {:?}, fg \
                     {:?})",
                    bg.len() + fg.len(),
                    wanted.bg.len() + wanted.fg.len(),
                    live.reread[0],
                    live.reread[1]
                );
                let [Some(bg_info), Some(fg_info)] = infos.clone() else {
                    return Err(gst::FlowError::Error);
                };
                let backend = self.compute();
                let cancel = Arc::new(Cancel::new());
                let c = cancel.clone();
                let (tracker, begun) = (r.tracker, r.begun);
                let handle = self.spawn_named("search", move || {
                    let luma = |side: Side, i: usize| {
                        let (held, info) = match side {
                            Side::Bg => (&bg, &bg_info),
                            Side::Fg => (&fg, &fg_info),
                        };
                        let (_, f) = held.iter().find(|(k, _)| *k == i)?;
                        held_luma(f, info)
                    };
                    tracker
                        .finish(begun?, backend.kernels(), &luma, &c)
                        .ok()
                        .flatten()
                })?;
                live.search_job = Some(SearchJob {
                    handle: Some(handle),
                    joined: None,
                    cancel,
                    now: r.now,
                    window: r.window,
                    full_at: None,
                    narrowed: false,
                    started: r.started,
                });
                Ok(ScoutStep::Go)
            }
        }
    }

    /// Where the scout's seek takes the bg: a little before the first frame the window needs
    /// (the coarse alignment's match of its first fg frame, or an earlier frame the fine
    /// stages want), as a stream time; `None` (its start) when nothing was found or its frames
    /// are untimed. Sets the pacing's offset along the coarse path meanwhile.
    fn scout_seek(&self, live: &mut LiveRun, begun: Option<&Begun>) -> Option<gst::ClockTime> {
        let begun = begun?;
        let first = begun.first_match()?;
        let wanted = begun.wanted();
        let from = wanted.bg.first().map_or(first, |&j| j.min(first));
        let fg0 = live.fg.front()?;
        if let Some(b) = live.bg.iter().find(|b| b.index == first) {
            live.shift = Some(b.rt as i64 - fg0.rt as i64);
        }
        if live.bg.iter().any(|b| b.times.pts.is_none()) {
            return None;
        }
        let target = from.saturating_sub(SCOUT_MARGIN);
        let at = live.bg.iter().find(|b| b.index >= target)?;
        // Two frames early: a decoder clips the frame straddling the position (`unclipped`
        // gives it its own timestamp back).
        let at = live
            .bg
            .iter()
            .rev()
            .find(|b| b.index + 2 <= at.index)
            .unwrap_or(at);
        let seg = live.first_segments[0].as_ref()?;
        seg.to_stream_time(at.times.pts?)
    }

    /// Sends the scout's seek back, if one is due (with no lock held).
    fn scout_rewind(&self) -> Result<(), gst::FlowError> {
        let segments = {
            let mut guard = self.state();
            let Some(live) = guard.as_mut().and_then(State::live_mut) else {
                return Ok(());
            };
            if !matches!(live.scout, Scout::Seek(..)) {
                return Ok(());
            }
            let Scout::Seek(r, bg_from) = std::mem::take(&mut live.scout) else {
                return Ok(());
            };
            live.scout = Scout::Rereading(r);
            live.sought = true;
            live.heads = [
                live.bg.back().and_then(|h| h.times.pts),
                live.fg.back().and_then(|h| h.times.pts),
            ];
            [
                (live.first_segments[0].clone(), bg_from.map(|t| (t, None))),
                (live.first_segments[1].clone(), None),
            ]
        };
        self.seek_back(segments)
    }

    /// Asks upstream of both sink pads to renegotiate its allocation once the first window's
    /// frames are let go: a decoder then takes a new pool from us and drops the old one, whose
    /// buffers (as many as the first window held) are freed as they come back.
    fn renew_offered(&self) {
        let renew = {
            let mut guard = self.state();
            guard
                .as_mut()
                .and_then(State::live_mut)
                .is_some_and(|l| std::mem::take(&mut l.renew_offered))
        };
        if renew {
            for pad in [&self.bg_pad, &self.fg_pad] {
                let _ = pad.push_event(gst::event::Reconfigure::new());
            }
        }
    }

    /// Runs `f` on a thread of its own, `vidkompy-<what>`; an element error where none starts.
    fn spawn_named<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<T>, gst::FlowError> {
        std::thread::Builder::new()
            .name(format!("vidkompy-{what}"))
            .spawn(f)
            .map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Thread,
                    ("Cannot start the footprint {what} thread: {e}")
                );
                gst::FlowError::Error
            })
    }

    /// Waits for a search's thread, unless a flushing seek (or a flush, or a stop) comes first:
    /// then the round ends at once (`Flushing`), the thread left to see its job's cancel flag,
    /// which the new run's state drops. `None` for a thread that panicked.
    ///
    /// With `take_input` (a live run, not paced, not draining) the frames that come meanwhile are taken every
    /// few milliseconds, so that the pads' queues (two buffers each in a live aggregator) never
    /// block upstream: a live source blocked for the length of a search (a second or more on 2
    /// busy cores) drops frames or sends them late, and the bg frames then missing when the
    /// frames due are committed make them take the newest bg frame held.
    fn join_unless_flushing<T>(
        &self,
        h: std::thread::JoinHandle<T>,
        take_input: bool,
    ) -> Result<Option<T>, gst::FlowError> {
        while !h.is_finished() {
            if self.cancel.is_cancelled() {
                return Err(gst::FlowError::Flushing);
            }
            if take_input {
                let mut guard = self.state();
                let Some(state) = guard.as_mut() else {
                    return Err(gst::FlowError::Flushing);
                };
                if state.live().is_some() {
                    self.live_take_both(state)?;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(if take_input {
                4
            } else {
                1
            }));
        }
        Ok(h.join().ok())
    }

    /// Searches the footprint on a thread of its own (`vidkompy-<what>`): `tracker`'s
    /// thumbnails, full-resolution luma from the bg frames held and from `fg`.
    fn spawn_locate(
        &self,
        what: &str,
        tracker: Tracker,
        (bg, bg_info): (Vec<(usize, HeldFrame)>, gst_video::VideoInfo),
        fg: FgLuma,
        refit_first: bool,
        cancel: Arc<Cancel>,
    ) -> Result<std::thread::JoinHandle<Option<Alignment>>, gst::FlowError> {
        let backend = self.compute();
        let element = self.obj().downgrade();
        self.spawn_named(what, move || {
            let luma = |side: Side, i: usize| match side {
                Side::Bg => {
                    let (_, f) = bg.iter().find(|(k, _)| *k == i)?;
                    held_luma(f, &bg_info)
                }
                Side::Fg => fg.get(i),
            };
            // A footprint that still fits as well as when found, where it was: no full
            // search (80 ms against 310 ms for a search on the long example's window).
            let started = std::time::Instant::now();
            if refit_first
                && let Some(old) = tracker.footprint()
                && let Ok(Some(a)) = tracker.refit(backend.kernels(), &luma, &cancel)
            {
                let moved = tracker.moved(&a).unwrap_or(f64::INFINITY);
                let kept = a.spatial_confidence >= old.score - REFIT_MARGIN && moved <= REFINE_PX;
                if let Some(e) = element.upgrade() {
                    gst::debug!(
                        CAT,
                        obj = e,
                        "footprint refit in {:?}: confidence {:.4} (found at {:.4}), moved \
                             {moved:.2} px{}",
                        started.elapsed(),
                        a.spatial_confidence,
                        old.score,
                        if kept { "" } else { ": full search" }
                    );
                }
                if kept {
                    return Some(a);
                }
            }
            tracker
                .locate(backend.kernels(), &luma, &cancel)
                .ok()
                .flatten()
        })
    }

    /// Applies the result of a footprint search `job`.
    fn live_searched(
        &self,
        state: &mut State,
        alignment: Option<Alignment>,
        job: &SearchJob,
    ) -> Result<(), gst::FlowError> {
        let (now, elapsed) = (job.now, job.started.elapsed());
        let (Some(fg_info), Some(bg_info)) = (state.fg.info.clone(), state.bg.info.clone()) else {
            return Err(gst::FlowError::Error);
        };
        let found = alignment.as_ref().filter(|a| recheck::live_placed(a));
        let settings = super::lock(&self.settings).clone();
        // The first window was held for `max-lookahead`: it spans the lag.
        let held_first = state.live().is_some_and(|l| l.holds_first(&settings));
        if let (Some(window), Some(live), Some(a)) = (job.window, state.live_mut(), found) {
            self.check_lag(live, a, window, None);
        }
        // The first window held for the lag is over, whatever the search found.
        if let Some(live) = state.live_mut() {
            live.lag_decided = true;
        }
        gst::info!(
            CAT,
            imp = self,
            "live footprint search in {elapsed:?} (narrowed: {}): {:?}",
            job.narrowed,
            alignment.as_ref().map(|a| (
                a.x,
                a.y,
                a.scale,
                a.spatial_confidence,
                a.spatial_calibrated
            ))
        );
        let place = match found {
            Some(a) => {
                let est = Estimate {
                    x: a.x,
                    y: a.y,
                    scale: a.scale,
                    score: a.spatial_confidence,
                };
                let geo = (
                    (fg_info.width(), fg_info.height()),
                    (bg_info.width(), bg_info.height()),
                );
                let place = placement::from_estimate(geo.0, geo.1, a.x, a.y, a.scale);
                if let Some(live) = state.live_mut() {
                    if let Some(t) = live.tracker.as_mut() {
                        t.set_footprint(est);
                        // Paced (files): the window's fg frames go where the search matched
                        // them. Not live: a bg lagging by most of the lookahead leaves the
                        // window's last fg frames matched to frames the bg had not shown yet
                        // (live example, 0.4 s lag, 0.5 s lookahead: within +-1 100 -> 87.6 %).
                        // A first window held for the lag spans it, and a narrowed one
                        // shows only moments the bg has shown: their fg frames go where the
                        // search matched them too (those matched before the newest bg frame
                        // it had).
                        if (live.paced || held_first || job.narrowed)
                            && let Some(window) = job.window
                        {
                            t.plan(window, a);
                        }
                        // Paced (files): the speed the window's content shows guides the path
                        // rather than the nominal rates (timestamps and framerates can lie).
                        if live.paced
                            && a.temporal_confidence >= PACED_RATE_TRUST
                            && let Some(rate) = a.rate
                        {
                            t.set_rate(rate);
                        }
                    }
                    live.search = Search::Found;
                    live.checked_at = now;
                    live.fit = Some((a.spatial_confidence, a.mean_cost));
                    // Not a clear match: the bg may show the fg's moments later than the window
                    // reaches; the same fg frames are searched again once it has.
                    live.want_deferred |= !recheck::early_trusted(a.spatial_confidence);
                }
                place
            }
            None => {
                let place = self.resolve_placement(&settings, &fg_info, &bg_info)?;
                let first = state.live().is_some_and(|l| l.search == Search::Pending);
                if first {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Failed,
                        (
                            "The fg's content was not found in the bg's first {} frames \
                             (spatial confidence {:.3}): the fg is placed at x={} y={} \
                             scale={:.4} and mapped by running time; searching again every \
                             {} s. If the bg shows the scene later than the fg by more than \
                             the lookahead, raise lookahead",
                            state.live().map_or(0, |l| l.bg.len()),
                            alignment
                                .as_ref()
                                .map_or(f64::NAN, |a| a.spatial_confidence),
                            place.x,
                            place.y,
                            place.scale,
                            SEARCH_RETRY / 1_000_000_000
                        )
                    );
                }
                if let Some(live) = state.live_mut() {
                    live.search = Search::Retry(now.saturating_add(SEARCH_RETRY));
                }
                place
            }
        };
        let window: Vec<usize> = alignment
            .as_ref()
            .filter(|_| found.is_some())
            .map(|a| a.mapping.clone())
            .unwrap_or_default();
        let files = state.live().is_some_and(|l| l.files);
        let kind = match (found.is_some(), files) {
            (true, true) => MappedBy::Content,
            (true, false) => MappedBy::Live,
            (false, _) => MappedBy::RunningTime,
        };
        let segs = [Self::segment(0, &place, found)];
        let from = Self::footprint_from(&settings, found.is_some());
        self.post_alignment(state, &segs, found, &window, kind, from, elapsed);
        Self::live_record(state, &segs[0], found, elapsed);
        let keep = state.live().and_then(|l| l.plan.as_ref()).is_some_and(|o| {
            let ov = &o.overlay;
            (ov.x, ov.y, ov.width, ov.height) == (place.x, place.y, place.width, place.height)
        });
        if !keep {
            let plan = self.live_output(state, place)?;
            if let Some(l) = state.live_mut() {
                l.plan = Some(plan);
            }
        }
        Ok(())
    }

    /// Re-checks a found footprint on another thread: every [`recheck::RECHECK`] of fg running time, and
    /// sooner when the recent matches cost much more than before (the fg feed was re-framed,
    /// so the features no longer compare the same pixels). A footprint moved by more than
    /// [`REFINE_PX`] is followed (features, compositing, a new `vidkompy-alignment`); by more
    /// than [`REFRAME_PX`], also a `vidkompy-reframed` message and a fresh path.
    fn live_recheck(&self, state: &mut State) -> Result<Option<Join>, gst::FlowError> {
        let finished = state.live_mut().and_then(|l| {
            // A paced run takes the result at a point of its own input, not whenever the
            // thread happens to finish: the same files give the same output.
            let newest = l.fg.back().map_or(0, |h| h.rt);
            let done = |j: &RecheckJob| {
                if j.stretch.is_some() {
                    // Its frames wait for it.
                    true
                } else if l.paced {
                    newest >= j.started_at.saturating_add(PACED_RECHECK_JOIN)
                } else {
                    j.handle.as_ref().is_none_or(|h| h.is_finished())
                }
            };
            l.recheck
                .as_ref()
                .is_some_and(done)
                .then(|| l.recheck.take())
                .flatten()
        });
        if let Some(mut job) = finished {
            let result = match (job.joined.take(), job.handle.take()) {
                (Some(r), _) => r,
                // Joined by the caller, with no lock held; then this is called again.
                (None, Some(h)) => {
                    if let Some(l) = state.live_mut() {
                        l.recheck = Some(job);
                    }
                    return Ok(Some(h));
                }
                (None, None) => None,
            };
            let stretch = job.stretch.map(|w| (w, result.clone()));
            self.live_reframe(state, result, &job)?;
            if let Some((window, result)) = stretch
                && let Some(live) = state.live_mut()
            {
                self.end_stretch(live);
                // Its frames go where its search matched them (on a fresh path if it was
                // re-framed).
                if let (Some(a), Some(t)) =
                    (result.filter(recheck::live_placed), live.tracker.as_mut())
                {
                    t.plan(window, &a);
                }
            }
            // Kept frames are searched again after each step of the bg, a bounded number of
            // times: the first searches may come before the bg showed their moments.
            if let Some(d) = job.deferred.take()
                && d.tries < DEFER_TRIES
                && let Some(live) = state.live_mut()
                && live.deferred.is_none()
            {
                live.deferred = Some(d);
            }
        }
        let (Some(fg_info), Some(bg_info)) = (state.fg.info.clone(), state.bg.info.clone()) else {
            return Ok(None);
        };
        let Phase::Live(live) = &mut state.phase else {
            return Ok(None);
        };
        if live.search != Search::Found || live.recheck.is_some() || live.tracker.is_none() {
            return Ok(None);
        }
        let now = live.fg.back().map_or(0, |h| h.rt);
        let since = now.saturating_sub(live.checked_at);
        let worse = recheck::matches_worse(
            live.tracker
                .as_ref()
                .and_then(|t| t.unsure_share(RECENT_MATCHES))
                .map(f64::from),
        );
        let confirm = live.confirm_at.is_some_and(|t| now >= t);
        let periodic = recheck::recheck_due(since, live.confirmed, worse, confirm);
        // While the bg lags, the fg frames held show moments it has not shown yet: keep them
        // and search once it has.
        if (live.want_deferred || (periodic && live.lagging)) && live.deferred.is_none() {
            live.want_deferred = false;
            live.checked_at = now;
            let Ok(luma_info) = gst_video::VideoInfo::builder(
                gst_video::VideoFormat::Gray8,
                fg_info.width(),
                fg_info.height(),
            )
            .build() else {
                return Ok(None);
            };
            let holder = &mut state.holder;
            let fg = live
                .fg
                .iter()
                .filter_map(|h| {
                    // A copy of its luma plane (the frame is let go), read back alone when
                    // spilled, held under the budget.
                    let full = held_luma(h.frame.as_ref()?, &fg_info)?;
                    let kept =
                        luma_frame(&full, &luma_info).and_then(|b| holder.hold(b, &luma_info).ok());
                    if kept.is_none() {
                        gst::debug!(CAT, imp = self, "fg frame {}'s luma not kept", h.index);
                    }
                    Some((h.rt, (h.index, h.thumb.clone(), kept?)))
                })
                .collect::<Vec<_>>();
            let (rts, fg) = fg.into_iter().unzip();
            live.deferred = Some(Deferred {
                fg,
                rts,
                luma_info,
                newest: now,
                tries: 0,
            });
            return Ok(None);
        }
        let newest_bg = live.bg.back().map_or(0, |h| h.rt);
        let deferred_due = live
            .deferred
            .as_ref()
            .is_some_and(|d| newest_bg >= d.newest.saturating_add(DEFER_STEP << d.tries.min(16)));
        if !deferred_due && !periodic {
            return Ok(None);
        }
        let Some(tracker) = live.tracker.as_ref() else {
            return Ok(None);
        };
        let bg: Vec<(usize, HeldFrame)> = live
            .bg
            .iter()
            .filter_map(|h| Some((h.index, h.frame.clone()?)))
            .collect();
        let (tracker, fg, deferred) = if deferred_due {
            let Some(mut d) = live.deferred.take() else {
                return Ok(None);
            };
            d.tries += 1;
            let thumbs: Vec<(usize, HeldThumb)> =
                d.fg.iter().map(|(i, t, _)| (*i, t.clone())).collect();
            let lumas: Vec<(usize, HeldFrame)> =
                d.fg.iter().map(|(i, _, l)| (*i, l.clone())).collect();
            let luma = FgLuma(lumas, d.luma_info.clone());
            (tracker.with_fg(&thumbs), luma, Some(d))
        } else {
            live.checked_at = now;
            live.confirm_at = None;
            let held = live
                .fg
                .iter()
                .filter_map(|h| Some((h.index, h.frame.clone()?)))
                .collect();
            (tracker.clone(), FgLuma(held, fg_info), None)
        };
        let window = tracker.window();
        let cancel = Arc::new(Cancel::new());
        gst::debug!(
            CAT,
            imp = self,
            "footprint re-check at fg time {now} (worse: {worse}, on kept frames: {})",
            deferred.as_ref().map_or(0, |d| d.tries)
        );
        // Periodic and worse-match re-checks try the footprint in use first; kept frames and a
        // full window after an early search look for a better one.
        let refit_first = deferred.is_none() && !confirm;
        let handle = self.spawn_locate(
            "recheck",
            tracker,
            (bg, bg_info),
            fg,
            refit_first,
            cancel.clone(),
        )?;
        live.recheck = Some(RecheckJob {
            handle: Some(handle),
            joined: None,
            confirm: confirm && deferred.is_none(),
            deferred,
            cancel,
            started_at: now,
            worse,
            stretch: None,
            window,
        });
        Ok(None)
    }

    /// A paced run's fg changed caps before its next frame: the frames from it on are a
    /// stretch of their own (see [`LiveRun::stretch`]).
    pub(super) fn live_stretch_from_here(&self) {
        let mut guard = self.state();
        // Caps before the run's first fg frame (read again from the start) open nothing.
        if let Some(live) = guard.as_mut().and_then(State::live_mut)
            && live.received[1] > 0
        {
            let at = live.received[1];
            gst::info!(
                CAT,
                imp = self,
                "fg caps changed before frame {at}: its footprint is searched from there"
            );
            live.stretch.push_back(at);
        }
    }

    /// Starts a fg stretch's own search (after a caps change) once every frame before it was
    /// output and its frames span the lookahead (or the fg ended): as a re-check, joined at
    /// once.
    fn live_stretch(&self, state: &mut State) -> Result<(), gst::FlowError> {
        let settings = super::lock(&self.settings).clone();
        let (Some(fg_info), Some(bg_info)) = (state.fg.info.clone(), state.bg.info.clone()) else {
            return Ok(());
        };
        let fg_ended = ended(&self.fg_pad);
        let Phase::Live(live) = &mut state.phase else {
            return Ok(());
        };
        let Some(&at) = live.stretch.front() else {
            return Ok(());
        };
        if live.recheck.is_some()
            || !live.ready.is_empty()
            || live.fg.front().is_some_and(|h| h.index < at)
        {
            return Ok(());
        }
        // Its frames: up to the next change.
        let next = live.stretch.get(1).copied();
        let mine: Vec<&Held> = live
            .fg
            .iter()
            .take_while(|h| next.is_none_or(|n| h.index < n))
            .collect();
        let span = match (mine.first(), mine.last()) {
            (Some(a), Some(b)) => b.rt.saturating_sub(a.rt),
            _ => 0,
        };
        if !(fg_ended || next.is_some() || span >= settings.lookahead) {
            return Ok(());
        }
        let Some(tracker) = live.tracker.as_ref().filter(|_| !mine.is_empty()) else {
            // Nothing after the change (or nothing aligned yet): the frames go on as they are.
            self.end_stretch(live);
            return Ok(());
        };
        let thumbs: Vec<(usize, HeldThumb)> =
            mine.iter().map(|h| (h.index, h.thumb.clone())).collect();
        let copy = tracker.with_fg(&thumbs);
        let Some(window) = copy.window() else {
            // No bg frame to search it on: the frames go on as they are.
            self.end_stretch(live);
            return Ok(());
        };
        let bg: Vec<(usize, HeldFrame)> = live
            .bg
            .iter()
            .filter_map(|h| Some((h.index, h.frame.clone()?)))
            .collect();
        let held = mine
            .iter()
            .filter_map(|h| Some((h.index, h.frame.clone()?)))
            .collect();
        let now = live.fg.back().map_or(0, |h| h.rt);
        gst::debug!(
            CAT,
            imp = self,
            "fg stretch from frame {at}: footprint search on {} frames",
            mine.len()
        );
        let cancel = Arc::new(Cancel::new());
        let handle = self.spawn_locate(
            "stretch",
            copy,
            (bg, bg_info),
            FgLuma(held, fg_info),
            false,
            cancel.clone(),
        )?;
        live.recheck = Some(RecheckJob {
            handle: Some(handle),
            joined: None,
            deferred: None,
            confirm: false,
            cancel,
            started_at: now,
            worse: false,
            stretch: Some(window),
            window: Some(window),
        });
        Ok(())
    }

    /// The stretch's frames reach the tracker (they waited for its footprint), and the run
    /// goes on.
    fn end_stretch(&self, live: &mut LiveRun) {
        live.stretch.pop_front();
        let next = live.stretch.front().copied();
        if let Some(t) = live.tracker.as_mut() {
            for h in live
                .fg
                .iter()
                .take_while(|h| next.is_none_or(|n| h.index < n))
            {
                t.push_fg(h.index, h.slot, h.thumb.clone());
            }
        }
    }

    /// The lag (ns) a placed search's matches show: how much later the bg shows the fg's
    /// moments ([`timing::match_lag`]: the median over the matches that fit).
    /// Taken over the fg frames of its `window` (first fg and bg frames, newest bg frame)
    /// matched to a bg frame before the newest it had (a match to the newest one bounds the lag
    /// from below only) whose running times the run still knows; `None` where fewer than
    /// [`LAG_MATCHES`] are.
    fn search_lag(
        live: &LiveRun,
        a: &Alignment,
        window: (usize, usize, usize),
        deferred: Option<&Deferred>,
    ) -> Option<u64> {
        let (fg0, bg0, newest) = window;
        let mut lags: Vec<(f32, i64)> = a
            .mapping
            .iter()
            .enumerate()
            .filter(|&(_, &j)| bg0 + j < newest)
            .filter_map(|(i, &j)| {
                let b = live.bg.iter().find(|h| h.index == bg0 + j)?.rt;
                let f = live.fg_rt(fg0 + i, deferred)?;
                let cost = a.costs.get(i).copied().unwrap_or(f32::INFINITY);
                Some((cost, b as i64 - f as i64))
            })
            .collect();
        timing::match_lag(&mut lags, LAG_MATCHES).map(|l| l.max(0) as u64)
    }

    /// A live run whose search shows the bg lagging the fg's content by more than the
    /// lookahead (less half of [`LAG_MARGIN`]): the lookahead is raised to cover the lag plus the
    /// margin, up to `max-lookahead` (applied with no lock held: [`VidkompyAlign::apply_raise`]);
    /// where it cannot cover it, a warning names the lag and the lookahead that would.
    fn check_lag(
        &self,
        live: &mut LiveRun,
        a: &Alignment,
        window: (usize, usize, usize),
        deferred: Option<&Deferred>,
    ) {
        if live.paced {
            return;
        }
        let Some(lag) = Self::search_lag(live, a, window, deferred) else {
            return;
        };
        let settings = super::lock(&self.settings).clone();
        // The first window held for the lag is over: from here the lookahead is the
        // property's, raised where the lag asks for more.
        live.lag_decided = true;
        let current = live
            .raised
            .map_or(settings.lookahead, |r| r.max(settings.lookahead));
        let needed = lag.saturating_add(LAG_MARGIN);
        gst::debug!(
            CAT,
            imp = self,
            "search shows the bg {lag} ns behind the fg (lookahead {current})"
        );
        // Within the lookahead by half the margin or more: covered.
        if lag.saturating_add(LAG_MARGIN / 2) <= current {
            return;
        }
        let to = needed
            .min(settings.max_lookahead)
            .min(live.raise_cap.unwrap_or(u64::MAX));
        if to > current {
            live.raised = Some(to);
            live.raise = Some(Raise {
                lag,
                from: current,
                to,
                fg_frame: window.0,
            });
        }
        if to < needed && !live.lag_warned {
            live.lag_warned = true;
            let s = |ns: u64| ns as f64 / 1e9;
            gst::element_imp_warning!(
                self,
                gst::StreamError::Failed,
                (
                    "The bg shows the fg's moments {:.2} s after the fg, more than the lookahead \
                     ({:.2} s): fg frames take the newest bg frame. lookahead={} (or max-lookahead \
                     as much) would cover it",
                    s(lag),
                    s(to.max(current)),
                    needed
                )
            );
        }
    }

    /// The latency of the whole pipeline the element is in, as its top-level bin answers a
    /// latency query (every sink's, upstream of it): whether it is live, its minimum and its
    /// maximum. `None` where there is no bin or it does not answer.
    fn pipeline_latency(&self) -> Option<(bool, gst::ClockTime, Option<gst::ClockTime>)> {
        let mut top = self.obj().parent()?;
        while let Some(p) = top.parent() {
            top = p;
        }
        let top = top.downcast::<gst::Element>().ok()?;
        let mut q = gst::query::Latency::new();
        top.query(&mut q).then(|| q.result())
    }

    /// Raises the lookahead, and with it the latency reported (a LATENCY message, for the
    /// application to configure the pipeline's latency again), then posts the alignment
    /// message held for it. Where the pipeline could not configure its latency with it (the
    /// element's latency would pass the maximum of the pipeline's latency query: a live branch
    /// buffers less), the raise is refused with a warning, and no later raise goes past the
    /// lookahead kept.
    fn apply_raise(&self, r: Raise) {
        let s = |ns: u64| ns as f64 / 1e9;
        // The element's latency once raised: what it reports now, plus the raise. Checked
        // before it is set, so that the pipeline never configures a latency it cannot take.
        let mut q = gst::query::Latency::new();
        let own = self
            .obj()
            .src_pad()
            .query(&mut q)
            .then(|| q.result().1 + gst::ClockTime::from_nseconds(r.to.saturating_sub(r.from)));
        let pipeline = self.pipeline_latency();
        gst::debug!(
            CAT,
            imp = self,
            "lookahead {} -> {}: the element's latency would be {own:?}; the pipeline's \
             (live, min, max): {pipeline:?}",
            r.from,
            r.to
        );
        let impossible = match (own, pipeline) {
            (Some(min), Some((true, _, Some(max)))) if min > max => Some((min, max)),
            _ => None,
        };
        if let Some((min, max)) = impossible {
            if let Some(live) = self.state().as_mut().and_then(State::live_mut) {
                live.raised = Some(r.from);
                live.raise_cap = Some(r.from);
                // The lag stays uncovered: the warning below names it.
                live.lag_warned = true;
            }
            gst::element_imp_warning!(
                self,
                gst::CoreError::Clock,
                (
                    "The bg lags the fg's content by {:.2} s, but a lookahead of {:.2} s is more \
                     latency than the pipeline can take (its latency would be {:.2} s, its \
                     maximum {:.2} s: a live branch buffers less): the lookahead stays {:.2} s, \
                     and fg frames take the newest bg frame",
                    s(r.lag),
                    s(r.to),
                    s(min.nseconds()),
                    s(max.nseconds()),
                    s(r.from)
                )
            );
            self.post_held_alignment(r.from);
            return;
        }
        let to = gst::ClockTime::from_nseconds(r.to);
        self.obj().set_latency(to, Some(to));
        gst::info!(
            CAT,
            imp = self,
            "the bg lags the fg's content by {} ns: lookahead {} -> {} ns",
            r.lag,
            r.from,
            r.to
        );
        let m = LookaheadRaised {
            lag: r.lag,
            previous: r.from,
            lookahead: r.to,
            fg_frame: r.fg_frame as u64,
        };
        let _ = self.obj().post_message(m.to_message(&*self.obj()));
        self.post_held_alignment(r.to);
    }

    /// Posts the alignment message held while a raise of the lookahead was pending (see
    /// [`VidkompyAlign::post_alignment`]), with the lookahead in use.
    fn post_held_alignment(&self, lookahead: u64) {
        let Some(mut m) = super::lock(&self.held_alignment).take() else {
            return;
        };
        m.lookahead = Some(gst::ClockTime::from_nseconds(lookahead));
        let msg = m.to_message(&*self.obj());
        gst::info!(CAT, imp = self, "{:?}", msg.structure());
        let _ = self.obj().post_message(msg);
    }

    /// Applies a re-check's result: a confident footprint that moved replaces the old one when
    /// the matches got worse, or when it is more confident than the old one (a periodic
    /// re-check on a window holding less of the other stream does not undo a better estimate).
    fn live_reframe(
        &self,
        state: &mut State,
        result: Option<Alignment>,
        job: &RecheckJob,
    ) -> Result<(), gst::FlowError> {
        let started_at = job.started_at;
        let Some(a) = result.filter(recheck::live_placed) else {
            gst::debug!(
                CAT,
                imp = self,
                "footprint re-check found nothing confident"
            );
            return Ok(());
        };
        if let (Some(window), Some(live)) = (job.window, state.live_mut()) {
            self.check_lag(live, &a, window, job.deferred.as_ref());
        }
        let (Some(fg_info), Some(bg_info)) = (state.fg.info.clone(), state.bg.info.clone()) else {
            return Ok(());
        };
        let Some((old, moved)) = state
            .live()
            .and_then(|l| l.tracker.as_ref())
            .and_then(|t| Some((t.footprint()?, t.moved(&a)?)))
        else {
            return Ok(());
        };
        gst::debug!(
            CAT,
            imp = self,
            "footprint re-check: x={:.2} y={:.2} scale={:.4} (confidence {:.3}), moved {moved:.2} px",
            a.x,
            a.y,
            a.scale,
            a.spatial_confidence
        );
        let fit = state.live().and_then(|l| l.fit);
        let kept = job.deferred.is_some() || job.confirm;
        let verdict = if job.stretch.is_some() {
            // A stretch of its own: re-framed where its footprint moved that far.
            if moved > REFRAME_PX {
                Verdict::Replaced { reframed: true }
            } else {
                Verdict::Confirmed
            }
        } else {
            recheck::verdict(&Recheck {
                moved,
                confidence: a.spatial_confidence,
                mean_cost: a.mean_cost,
                old_score: old.score,
                old_cost: fit.map(|(_, cost)| cost),
                kept,
                worse: job.worse,
            })
        };
        if let Some(l) = state.live_mut().filter(|l| l.paced) {
            l.confirmed = if verdict == Verdict::Confirmed {
                l.confirmed + 1
            } else {
                0
            };
        }
        let Verdict::Replaced { reframed } = verdict else {
            return Ok(());
        };
        let est = Estimate {
            x: a.x,
            y: a.y,
            scale: a.scale,
            score: a.spatial_confidence,
        };
        let place = placement::from_estimate(
            (fg_info.width(), fg_info.height()),
            (bg_info.width(), bg_info.height()),
            a.x,
            a.y,
            a.scale,
        );
        let fg_frame = {
            let Phase::Live(live) = &mut state.phase else {
                return Ok(());
            };
            if let Some(t) = live.tracker.as_mut() {
                t.set_footprint(est);
                if moved > REFRAME_PX {
                    // The matches since the re-framing (or the wrong fit) compared other
                    // pixels: align afresh.
                    t.restart();
                }
            }
            live.reframed += u64::from(reframed);
            live.fit = Some((a.spatial_confidence, a.mean_cost));
            live.fg.front().map_or(live.received[1], |h| h.index)
        };
        let plan = self.live_output(state, place)?;
        if let Some(l) = state.live_mut() {
            l.plan = Some(plan);
        }
        Self::live_record(
            state,
            &Self::segment(0, &place, Some(&a)),
            Some(&a),
            Default::default(),
        );
        self.post_alignment(
            state,
            &[Self::segment(0, &place, Some(&a))],
            Some(&a),
            &a.mapping,
            if state.live().is_some_and(|l| l.files) {
                MappedBy::Content
            } else {
                MappedBy::Live
            },
            FootprintFrom::Content,
            Default::default(),
        );
        if !reframed {
            gst::info!(
                CAT,
                imp = self,
                "footprint refined by {moved:.2} px (on kept fg frames: {kept})"
            );
            return Ok(());
        }
        let m = Reframed {
            fg_running_time: Some(gst::ClockTime::from_nseconds(started_at)),
            count: Some(state.live().map_or(0, |l| l.reframed)),
            ..Self::reframed(
                (a.x, a.y, a.scale),
                a.spatial_confidence,
                (old.x, old.y, old.scale),
                fg_frame,
            )
        };
        gst::warning!(CAT, imp = self, "the fg was re-framed: {m:?}");
        let _ = self.obj().post_message(m.to_message(&*self.obj()));
        Ok(())
    }

    /// The output plan for a footprint.
    /// Paced runs: `seg` is composited from the next fg frame output on (the frames committed
    /// and not output yet included).
    fn live_record(
        state: &mut State,
        seg: &Segment,
        a: Option<&Alignment>,
        elapsed: std::time::Duration,
    ) {
        let Some(live) = state.live_mut().filter(|l| l.paced) else {
            return;
        };
        let r = &mut live.record;
        r.spent += elapsed;
        if a.is_some() {
            r.alignment = a.cloned();
        }
        let seg = Segment {
            from: live.output,
            ..*seg
        };
        if r.segments.last().is_some_and(|l| l.from == seg.from) {
            r.segments.pop();
        }
        r.segments.push(seg);
    }

    /// Paced runs, once the fg ended (every frame output): posts the alignment of the whole
    /// run (every fg frame's bg frame, like an offline run's), and writes the `report`.
    fn live_finish(&self, state: &mut State) -> Result<(), gst::FlowError> {
        let settings = super::lock(&self.settings).clone();
        let size = |info: Option<&gst_video::VideoInfo>| info.map(|i| (i.width(), i.height()));
        let (Some(fg), Some(bg)) = (size(state.fg.info.as_ref()), size(state.bg.info.as_ref()))
        else {
            return Ok(());
        };
        let Some(live) = state.live_mut().filter(|l| l.paced && !l.record.written) else {
            return Ok(());
        };
        let r = std::mem::take(&mut live.record);
        live.record.written = true;
        let stream = |(width, height), frames| report::Stream {
            width,
            height,
            frames,
        };
        let kind = if live.search == Search::Found && live.files {
            MappedBy::Content
        } else if live.search == Search::Found {
            MappedBy::Windowed
        } else {
            MappedBy::RunningTime
        };
        let received = live.received;
        let mapping: Vec<usize> = r.frames.iter().map(|e| e.bg).collect();
        let from = Self::footprint_from(&settings, r.alignment.is_some());
        self.post_alignment(
            state,
            &r.segments,
            r.alignment.as_ref(),
            &mapping,
            kind,
            from,
            r.spent,
        );
        self.write_report_of(
            &settings,
            (stream(fg, received[1]), stream(bg, received[0])),
            &r.segments,
            r.alignment.as_ref(),
            r.frames,
            kind,
            r.spent,
        )
    }

    fn live_output(
        &self,
        state: &State,
        place: placement::Placement,
    ) -> Result<Output, gst::FlowError> {
        let (Some(fg_info), Some(bg_info), Some(bg_caps)) = (
            state.fg.info.clone(),
            state.bg.info.clone(),
            state.bg.caps.clone(),
        ) else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let (caps, info) = self.output_caps(bg_caps, fg_info.fps())?;
        let layouts = plane_layouts(&bg_info).ok_or(gst::FlowError::NotNegotiated)?;
        let converter = self.make_converter(&fg_info, &bg_info, &place)?;
        let blend = super::lock(&self.settings).blend_width;
        let overlay = crate::composite::Overlay::new(
            place.x,
            place.y,
            place.width,
            place.height,
            (bg_info.width(), bg_info.height()),
            blend,
        );
        let pool = output_pool(&caps, &info);
        let started = state.live().is_some_and(|l| l.started);
        Ok(Output {
            info,
            layouts,
            overlay,
            mapping: Vec::new(),
            next: 0,
            converter,
            upcoming: Default::default(),
            streaming: None,
            pending: (!started).then(|| (caps, state.fg.first_segment.clone())),
            pool,
        })
    }

    /// Commits the due fg frames: by content once the footprint is found, else by running
    /// time (the newest bg frame at or before the fg frame's running time).
    fn live_commit(&self, state: &mut State, due: usize) -> Result<(), gst::FlowError> {
        if due == 0 {
            return Ok(());
        }
        let backend = self.compute();
        let Phase::Live(live) = &mut state.phase else {
            return Err(gst::FlowError::Error);
        };
        if live.bg.is_empty() {
            if ended(&self.bg_pad) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Pad bg reached the end of stream without any frame")
                );
                return Err(gst::FlowError::Error);
            }
            // Nothing to composite on yet: the fg frames wait (bounded by the pad's queue).
            return Ok(());
        }
        let bg_ended = ended(&self.bg_pad);
        let matches: Vec<(usize, bool, Option<f32>)> = if live.search == Search::Found {
            let Some(t) = live.tracker.as_mut() else {
                return Err(gst::FlowError::Error);
            };
            if bg_ended {
                t.end_bg();
            }
            let c = t
                .commit(due, backend.kernels(), &self.cancel)
                .map_err(|_| gst::FlowError::Flushing)?;
            if c.reanchored {
                live.reanchored += 1;
            }
            if let (Some(ahead), Some(m)) = (c.jumped, c.matches.first()) {
                gst::debug!(
                    CAT,
                    imp = self,
                    "the window aligned afresh fits far better {ahead} bg frames ahead: fg frame \
                     {} takes bg frame {}",
                    m.fg,
                    m.bg
                );
            }
            // One message when re-anchoring starts and one when it stops (a commit keeps its
            // anchor again): a lead that keeps growing re-anchors at every commit in between
            // (`count` says how many times so far).
            if (c.reanchored || !c.matches.is_empty()) && c.reanchored != live.reanchoring {
                live.reanchoring = c.reanchored;
                let m = c.matches.first().map(|m| (m.fg, m.bg));
                self.post_reanchored(c.reanchored, m, live.reanchored);
            }
            c.matches
                .iter()
                .map(|m| (m.bg, m.beyond, Some(m.cost)))
                .collect()
        } else {
            if let Some(t) = live.tracker.as_mut() {
                t.skip_fg(due);
            }
            let floor = live.ready.back().map(|(_, j)| *j);
            let bg_dur = live
                .duration(0, state.bg.info.as_ref())
                .unwrap_or(FALLBACK_DURATION);
            let newest = live.bg.back().map_or(0, |b| b.rt.saturating_add(bg_dur));
            live.fg
                .iter()
                .take(due)
                .map(|h| {
                    let j = live
                        .bg
                        .iter()
                        .rev()
                        .find(|b| b.rt <= h.rt)
                        .or(live.bg.front())
                        .map_or(0, |b| b.index);
                    (floor.map_or(j, |f| j.max(f)), newest <= h.rt, None)
                })
                .collect()
        };
        for (j, beyond, cost) in matches {
            let Some(h) = live.fg.pop_front() else {
                break;
            };
            let lagging = beyond && !bg_ended;
            if lagging != live.lagging {
                live.lagging = lagging;
                live.want_deferred |= lagging;
                let m = BgLagging {
                    lagging,
                    fg_frame: h.index as u64,
                    bg_frame: j as u64,
                };
                if lagging {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "the bg lags by more than the lookahead: fg frame {} takes the newest \
                         bg frame, {j}",
                        h.index
                    );
                } else {
                    gst::info!(CAT, imp = self, "the bg caught up at fg frame {}", h.index);
                }
                let _ = self.obj().post_message(m.to_message(&*self.obj()));
            }
            let bg = live.bg.iter().find(|b| b.index == j);
            if let Some(b) = bg {
                live.shift = Some(b.rt as i64 - h.rt as i64);
            }
            if live.paced {
                live.record.frames.push(report::Entry {
                    fg: h.index,
                    fg_pts: h.times.pts.map(|t| t.nseconds()),
                    bg: j,
                    bg_pts: bg.and_then(|b| b.times.pts).map(|t| t.nseconds()),
                    cost: cost.filter(|c| c.is_finite()),
                });
            }
            live.last_bg = Some(j);
            live.ready.push_back((h, j));
        }
        // A paced run keeps the line a seek reads the bg from (as offline runs do).
        let last = state
            .live()
            .filter(|l| l.paced)
            .and_then(|l| l.record.frames.last());
        let stream = |ps: &super::PadState, pts: Option<u64>| {
            ps.first_segment
                .as_ref()?
                .to_stream_time(gst::ClockTime::from_nseconds(pts?))
        };
        if let Some(e) = last
            && let (Some(f), Some(b)) = (stream(&state.fg, e.fg_pts), stream(&state.bg, e.bg_pts))
        {
            self.line_point(f.nseconds(), b.nseconds());
        }
        Ok(())
    }

    /// One call of `aggregate` in live mode.
    pub(super) fn live_aggregate(&self, timeout: bool) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.live_step(timeout, false)
    }

    /// Caps change on a pad in live mode: every fg frame held is committed and output now
    /// (with the caps it came with), then the alignment starts again as at the start: output
    /// caps negotiated anew, footprint searched again. Called before the new caps are stored.
    pub(super) fn live_caps_change(&self, pad: &str) -> Result<(), gst::FlowError> {
        if self.scout_abandoned(pad)? {
            return Ok(());
        }
        gst::info!(
            CAT,
            imp = self,
            "caps change on pad {pad}: draining, then starting over"
        );
        self.live_step(false, true)?;
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(old) = state.live_mut().map(std::mem::take) else {
            return Ok(());
        };
        let mut run = LiveRun {
            output: old.output,
            lagging: old.lagging,
            // The lag the run measured holds across the change (as the latency reported
            // does): the first window after it is not held for it again.
            raised: old.raised,
            lag_decided: old.lag_decided,
            lag_warned: old.lag_warned,
            raise_cap: old.raise_cap,
            received: old.received,
            paced: old.paced,
            record: old.record,
            ..LiveRun::default()
        };
        if pad == "fg" {
            // The bg frames held are still good.
            run.bg = old.bg;
            run.steps[0] = old.steps[0].clone();
        } else {
            run.steps[1] = old.steps[1].clone();
        }
        if let Some(l) = state.live_mut() {
            *l = run;
        }
        Ok(())
    }

    /// A caps change while the scout's frames are not all held again (they cannot be output
    /// now): the run starts over from the inputs' start, with frames held as they arrive.
    /// `true` when it did.
    pub(super) fn scout_abandoned(&self, pad: &str) -> Result<bool, gst::FlowError> {
        let segments = {
            let mut guard = self.state();
            let Some(live) = guard.as_mut().and_then(State::live_mut) else {
                return Ok(false);
            };
            if matches!(live.scout, Scout::Off) {
                return Ok(false);
            }
            gst::info!(
                CAT,
                imp = self,
                "caps change on pad {pad} before the first window was read again: reading both \
                 inputs again from their start"
            );
            let segments = [
                (live.first_segments[0].clone(), None),
                (live.first_segments[1].clone(), None),
            ];
            *live = LiveRun::new(live.paced, false);
            segments
        };
        self.seek_back(segments)?;
        Ok(true)
    }

    /// One round of live work: takes the frames waiting (unless draining), commits those due
    /// (all of them when draining) and outputs them.
    fn live_step(&self, timeout: bool, drain: bool) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut out: Vec<gst::Buffer> = Vec::new();
        let mut caps_to_set = None;
        let raise;
        // Asked with no element lock held: the aggregator's latency takes its SRC_LOCK (under
        // which `next_time` takes the state lock).
        let latency = if timeout { self.obj().latency() } else { None };
        // The scout's seek back: nothing is read before its flushes came.
        if !self.rewound()? {
            return Ok(gst::FlowSuccess::Ok);
        }
        {
            let mut guard = self.state();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            if state.live().is_none() {
                // A flush made a new state since: the run is decided again next round.
                return Ok(gst::FlowSuccess::Ok);
            }
            let paced = state.live().is_some_and(|l| l.paced);
            // A paced run is not held to the clock.
            let timeout = timeout && !paced;
            if !drain {
                if paced {
                    self.live_take_paced(state)?;
                } else {
                    self.live_take_both(state)?;
                }
            }
            self.live_tracker(state);
            // A thumbnail read back as flat: the alignment cannot be trusted.
            if let Some(why) = state.holder.read_failure() {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("Alignment failed: {why}")
                );
                return Err(gst::FlowError::Error);
            }
            let mut due = if drain {
                state.live().map_or(0, |l| l.fg.len())
            } else {
                self.live_due(state, timeout, latency)
            };
            // The search's and the re-check's threads are joined with no lock held: the
            // result is stored in the job, and the step goes on from there.
            let mut search = true;
            let mut waited = false;
            loop {
                let Some(state) = guard.as_mut() else {
                    return Err(gst::FlowError::Flushing);
                };
                if state.live().is_none() {
                    // A flush started the run again while a thread was joined.
                    return Ok(gst::FlowSuccess::Ok);
                }
                let mut wait = None;
                if search {
                    wait = self.live_search(state, due, timeout, drain)?;
                    search = wait.is_some();
                }
                if wait.is_none() {
                    self.live_stretch(state)?;
                    wait = self.live_recheck(state)?.map(Wait::Recheck);
                }
                let Some(wait) = wait else {
                    break;
                };
                drop(guard);
                waited = true;
                match wait {
                    Wait::Scout(h) => {
                        let begun = self.join_unless_flushing(h, false)?.flatten();
                        guard = self.state();
                        if let Some(l) = guard.as_mut().and_then(State::live_mut)
                            && let Scout::Begun(job) = &mut l.scout
                        {
                            job.joined = Some(begun);
                        }
                    }
                    Wait::Search(h) | Wait::Recheck(h) => {
                        // Not while draining: the frames waiting then may be of new caps.
                        let result = self.join_unless_flushing(h, !paced && !drain)?.flatten();
                        guard = self.state();
                        if let Some(l) = guard.as_mut().and_then(State::live_mut) {
                            match (search, l.search_job.as_mut(), l.recheck.as_mut()) {
                                (true, Some(job), _) => job.joined = Some(result),
                                (false, _, Some(job)) => job.joined = Some(result),
                                _ => (),
                            }
                        }
                    }
                }
            }
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            if waited && !drain && !paced {
                // The frames that came while a search ran, and a lookahead it raised, decide
                // what is due: frames due by the count made before it would be matched on
                // the bg held before it and, where it raised the lookahead, a lag's worth of
                // bg frames short.
                self.live_take_both(state)?;
                self.live_tracker(state);
                due = self.live_due(state, timeout, latency);
            }
            if state.live().is_some_and(|l| l.plan.is_some()) {
                self.live_commit(state, due)?;
            }
            self.live_evict(state);
            if let Some(o) = state.plan_mut()
                && let Some(p) = o.pending.take()
            {
                caps_to_set = Some(p);
                if let Some(l) = state.live_mut() {
                    l.started = true;
                }
            }
            while let Phase::Live(live) = &mut state.phase {
                if live.paced && out.len() >= PACED_OUT_PER_ROUND {
                    break;
                }
                // A scout's frames go out once read again (their bg frame too).
                match self.reread_ready(live)? {
                    Ready::Go => (),
                    Ready::Wait => break,
                }
                // A paced run keeps its newest committed frame back until the next one is
                // committed (or the fg ended): the next match tells whether this bg frame is
                // used again, and if not the output is composited on it in place. Not while a
                // fg stretch waits for every frame before it to go out.
                let fg_done = ended(&self.fg_pad) && live.fg.is_empty();
                if live.paced
                    && !drain
                    && live.ready.len() < 2
                    && !fg_done
                    && live.stretch.is_empty()
                {
                    break;
                }
                let Some((fg, j)) = live.ready.pop_front() else {
                    break;
                };
                let dur = fg.times.duration.map_or(0, |d| d.nseconds());
                live.processed += 1;
                if live.earliest.is_some_and(|e| fg.rt.saturating_add(dur) < e) {
                    // Late for downstream: dropped, and said so.
                    live.dropped += 1;
                    let stream_time = state
                        .fg
                        .first_segment
                        .as_ref()
                        .and_then(|s| fg.times.pts.and_then(|p| s.to_stream_time(p)));
                    let msg = gst::message::Qos::builder(true)
                        .running_time(gst::ClockTime::from_nseconds(fg.rt))
                        .stream_time(stream_time)
                        .timestamp(fg.times.pts)
                        .duration(fg.times.duration)
                        .stats(
                            gst::format::Buffers::from_u64(live.processed),
                            gst::format::Buffers::from_u64(live.dropped),
                        )
                        .src(&*self.obj())
                        .build();
                    gst::debug!(CAT, imp = self, "dropping late fg frame {}", fg.index);
                    let _ = self.obj().post_message(msg);
                    continue;
                }
                let i = live.output;
                live.output += 1;
                // The bg frame matched, else the nearest held (it cannot be older than the
                // oldest held, which eviction keeps for committed matches).
                let has = |b: &Held| b.frame.is_some();
                let Some(k) = live
                    .bg
                    .iter()
                    .position(|b| has(b) && b.index >= j)
                    .or(live.bg.iter().rposition(has))
                else {
                    return Err(gst::FlowError::Error);
                };
                // Its last use in a paced run (whose path never goes back): the next output's
                // bg frame is held, and lies after it. The frame is then let go, so that the
                // output is composited on it in place.
                let last_use = live.paced
                    && live.ready.front().is_some_and(|&(_, next)| {
                        next > live.bg[k].index && live.bg.iter().any(|b| has(b) && b.index >= next)
                    });
                let bg_index = live.bg[k].index;
                let bg = if last_use {
                    live.bg[k].frame.take().map(HeldFrame::into_buffer)
                } else {
                    live.bg[k].frame.as_ref().map(HeldFrame::buffer)
                };
                let Some(bg) = bg else {
                    return Err(gst::FlowError::Error);
                };
                let bg = bg.map_err(|e| self.frame_store_error(&e, bg_index, "bg"))?;
                let times = (fg.times.pts, fg.times.duration);
                let Some(fg_frame) = fg.frame else {
                    return Err(gst::FlowError::Error);
                };
                let fg_buffer = fg_frame
                    .into_buffer()
                    .map_err(|e| self.frame_store_error(&e, fg.index, "fg"))?;
                let buffer = self.render(state, i, bg, fg_buffer, times)?;
                out.push(buffer);
            }
            if drain {
                let left = state.live().map_or(0, |l| l.fg.len());
                if left > 0 {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Failed,
                        ("{left} fg frames received before a caps change could not be \
                          output: no bg frame had arrived")
                    );
                }
            }
            raise = state.live_mut().and_then(|l| l.raise.take());
            let finished = !drain
                && ended(&self.fg_pad)
                && state
                    .live()
                    .is_none_or(|l| l.fg.is_empty() && l.ready.is_empty());
            if finished && out.is_empty() && caps_to_set.is_none() {
                // Re-anchoring stops with the fg.
                if let Some(live) = state.live_mut().filter(|l| l.reanchoring) {
                    live.reanchoring = false;
                    let last = live.last_bg.map(|j| (live.output.saturating_sub(1), j));
                    self.post_reanchored(false, last, live.reanchored);
                }
                self.live_finish(state)?;
                gst::debug!(CAT, imp = self, "fg ended: all frames output");
                return Err(gst::FlowError::Eos);
            }
        }
        self.scout_rewind()?;
        self.renew_offered();
        if let Some(r) = raise {
            self.apply_raise(r);
        }
        if let Some((caps, segment)) = caps_to_set {
            self.start_output(caps, segment)?;
        }
        for b in out {
            gst::trace!(CAT, imp = self, "output {b:?}");
            self.obj().finish_buffer(b)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
