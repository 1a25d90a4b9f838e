// SPDX-License-Identifier: MIT

//! The `vidkompyalign` element: an Aggregator shell that stores frames, asks the alignment library
//! where and when the fg goes, and composites through the compute backend.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;
use gst_video::prelude::*;

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use super::{Device, MatchRegion};
use crate::align::analysis::{self, Alignment, Side};
use crate::align::features::{FrameView, LumaLayout, Thumb};
use crate::align::placement::{self, Request};
use crate::align::spatial::{self, Constraints, Geometry};
use crate::align::stretches::{self, StretchThumbs};
use crate::align::{Cancel, timing};
use crate::composite::{Overlay, PlaneLayout, PlaneMut, PlaneRef};
use crate::compute::{self, Compute};
use crate::messages::{self, ElementMessage, FootprintFrom, Frames, MappedBy, Progress, Reframed};
use crate::report::{self, Report, Segment};
use crate::store::{self, Budget, FrameTimes, PadStore, ThumbStore};

mod intake;
mod live;
mod offline;
mod render;
mod reporting;
mod run;

use run::{Effect, Event, Pass, Phase};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vidkompyalign",
        gst::DebugColorFlags::empty(),
        Some("vidkompy: aligned overlay of a fg video on a bg video"),
    )
});

/// Raw formats the element composites in natively: 8 bits per sample, every plane's samples on
/// one subsampling grid.
const FORMATS: &[VideoFormat] = &[
    VideoFormat::I420,
    VideoFormat::Yv12,
    VideoFormat::Nv12,
    VideoFormat::Nv21,
    VideoFormat::Y42b,
    VideoFormat::Y444,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Xrgb,
    VideoFormat::Xbgr,
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Gray8,
];

/// Largest frame side accepted, px (as GStreamer's own converters and most encoders).
const MAX_SIDE: i32 = 16384;

const DEFAULT_X: i32 = -1;
const DEFAULT_Y: i32 = -1;
const DEFAULT_SCALE: f64 = 0.0;
const DEFAULT_BLEND_WIDTH: u32 = 0;
const DEFAULT_MATCH_REGION: MatchRegion = MatchRegion::Footprint;
const DEFAULT_EDGE_WIDTH: u32 = 8;
const MAX_EDGE_WIDTH: u32 = 1024;
const MAX_COORD: i32 = 65535;
const MAX_SCALE: f64 = 16.0;
const MAX_BLEND_WIDTH: u32 = 4096;

/// `vidkompy-progress` messages are posted this often at most (and at each stage's start and
/// end).
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
const DEFAULT_TWO_PASS: bool = true;
const DEFAULT_MAX_MEMORY: u64 = 2 << 30;
/// How far behind the newest fg frame live matches are committed (the latency added), ns.
const DEFAULT_LOOKAHEAD: u64 = 1_000_000_000;
/// How far the bg may lead the fg in live mode (bg frames are held for that), ns.
const DEFAULT_MAX_OFFSET: u64 = 5_000_000_000;
/// Largest lookahead and max-offset accepted, ns.
const MAX_WINDOW: u64 = 60_000_000_000;
/// How long a rewind may take before upstream's flush is given up on.
const REWIND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// After a seek, the bg is read from this long before where the last alignment put the fg's
/// position (the analysis finds the exact match in what it reads).
const SEEK_MARGIN: u64 = 2_000_000_000;
/// At most this many points of the last alignment's line are kept for seeks.
const LINE_POINTS: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
struct Settings {
    x: i32,
    y: i32,
    scale: f64,
    blend_width: u32,
    match_region: MatchRegion,
    edge_width: u32,
    report: Option<String>,
    plot: Option<String>,
    alignment: Option<String>,
    two_pass: bool,
    max_memory: u64,
    device: Device,
    temp_dir: Option<String>,
    lookahead: u64,
    max_offset: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            x: DEFAULT_X,
            y: DEFAULT_Y,
            scale: DEFAULT_SCALE,
            blend_width: DEFAULT_BLEND_WIDTH,
            match_region: DEFAULT_MATCH_REGION,
            edge_width: DEFAULT_EDGE_WIDTH,
            report: None,
            plot: None,
            alignment: None,
            two_pass: DEFAULT_TWO_PASS,
            max_memory: DEFAULT_MAX_MEMORY,
            device: Device::Auto,
            temp_dir: None,
            lookahead: DEFAULT_LOOKAHEAD,
            max_offset: DEFAULT_MAX_OFFSET,
        }
    }
}

impl Settings {
    fn region(&self) -> analysis::Region {
        match self.match_region {
            MatchRegion::Footprint => analysis::Region::Footprint,
            MatchRegion::Edges => analysis::Region::Edges(f64::from(self.edge_width.max(1))),
        }
    }

    fn constraints(&self) -> Constraints {
        let r = self.request();
        Constraints {
            x: r.x.map(f64::from),
            y: r.y.map(f64::from),
            scale: r.scale,
        }
    }

    fn request(&self) -> Request {
        Request {
            x: u32::try_from(self.x).ok(),
            y: u32::try_from(self.y).ok(),
            scale: (self.scale > 0.0).then_some(self.scale),
        }
    }
}

#[derive(Debug, Default)]
struct PadState {
    caps: Option<gst::Caps>,
    info: Option<gst_video::VideoInfo>,
    /// The frames themselves, when they are stored (inputs that cannot seek).
    store: PadStore,
    /// A thumbnail of every frame, for the analysis (in memory up to a bound, then in a
    /// spill file).
    thumbs: ThumbStore,
    /// Times of every frame of the first pass.
    times: Vec<FrameTimes>,
    /// The segment of the first pass (where a rewind seeks back to).
    first_segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Frames seen in the current pass after a rewind.
    pass_frames: usize,
    /// Full-resolution luma of the frames refinement needs, fetched in a second pass.
    fetched: std::collections::BTreeMap<usize, Arc<Thumb>>,
    /// Offline, after a caps change: frames arrive in these caps and are converted to the
    /// first ones (`info`), which the analysis and the output keep.
    incoming: Option<Incoming>,
    /// Frames (first pass) at which the caps changed.
    changed_at: Vec<usize>,
}

/// Converts a pad's frames from caps that changed mid-stream to its first caps.
struct Incoming {
    info: gst_video::VideoInfo,
    converter: gst_video::VideoConverter,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A seek of both inputs back to the start, under way.
struct Rewind {
    /// One per pad: had both seeks the same, the aggregator would take the flushes for a
    /// seek of its own, stop its task and flush everything.
    seqnums: [gst::Seqnum; 2],
    /// FLUSH_STOP of this seek seen on bg and fg.
    flushed: [bool; 2],
    since: std::time::Instant,
}

/// Everything the output and the analysis need, decided once the first pass is read.
#[derive(Clone)]
struct Prep {
    caps: gst::Caps,
    info: gst_video::VideoInfo,
    settings: Settings,
    geo: Geometry,
    fg_info: gst_video::VideoInfo,
    bg_info: gst_video::VideoInfo,
    fg_times: Vec<u64>,
    bg_times: Vec<u64>,
    nominal_rate: Option<f64>,
}

/// The second pass of two-pass mode: reading again until the frames refinement needs are in.
struct Fetch {
    begun: Option<analysis::Begun>,
    /// The fg's stretches between caps changes, begun on their own.
    parts: Stretches<analysis::Begun>,
    /// What all of them want.
    wanted: analysis::Wanted,
    prep: Prep,
    started: std::time::Instant,
    /// Analysis time so far (the first pass's part).
    spent: std::time::Duration,
}

/// Analyses of the fg's stretches between caps changes (offline), each with its frames.
type Stretches<T> = Vec<(std::ops::Range<usize>, Option<T>)>;

/// Frames read again in the output pass of two-pass mode.
#[derive(Default)]
struct Streaming {
    /// The bg frame last read, with its index.
    current: Option<(usize, gst::Buffer)>,
}

/// What the output phase needs, decided once both pads reached EOS.
struct Output {
    info: gst_video::VideoInfo,
    layouts: Vec<PlaneLayout>,
    overlay: Overlay,
    /// fg frame index -> bg frame index.
    mapping: Vec<usize>,
    next: usize,
    /// Converts fg frames to the bg's format at the footprint's size, when they differ.
    converter: Option<Converter>,
    /// Later stretches of the fg with footprints of their own (a fg re-framed at a caps
    /// change), in order.
    upcoming: std::collections::VecDeque<StretchOutput>,
    /// Two-pass mode: frames come from the pads again rather than from the store.
    streaming: Option<Streaming>,
    /// Output caps and segment, until they are set.
    pending: Option<(gst::Caps, Option<gst::FormattedSegment<gst::ClockTime>>)>,
    /// Output buffers, reused once downstream releases them (a fresh 1080p frame per output
    /// costs page faults and zeroing of its memory); `None` if it could not be set up.
    pool: Option<gst::BufferPool>,
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = pool.set_active(false);
        }
    }
}

/// A pool of output frames of `info` (`caps`), active; `None` if it cannot be configured.
fn output_pool(caps: &gst::Caps, info: &gst_video::VideoInfo) -> Option<gst::BufferPool> {
    let pool = gst_video::VideoBufferPool::new();
    let mut config = pool.config();
    config.set_params(Some(caps), u32::try_from(info.size()).ok()?, 2, 0);
    pool.set_config(config).ok()?;
    pool.set_active(true).ok()?;
    Some(pool.upcast())
}

/// The last offline alignment, as a report, with how it was made: a flushing seek reuses it.
struct Made {
    report: Report,
    kind: MappedBy,
    from: FootprintFrom,
}

/// Where fg frames go from frame `from` on.
struct StretchOutput {
    from: usize,
    overlay: Overlay,
    converter: Option<Converter>,
}

struct Converter {
    converter: gst_video::VideoConverter,
    /// Reused destination of the conversion.
    scratch: Option<gst::Buffer>,
}

#[derive(Default)]
struct State {
    bg: PadState,
    fg: PadState,
    /// What the element is doing.
    phase: Phase,
    /// The `alignment` file, read at start; or after a flushing seek the alignment made
    /// before it (`reused`).
    loaded: Option<(std::path::PathBuf, Report)>,
    /// `loaded` is the alignment made before a seek: posted as it was made, not written.
    reused: Option<(MappedBy, FootprintFrom)>,
    /// Where the analysis keeps features past the memory bound.
    features: store::FeatureSpills,
    /// When the last `vidkompy-progress` message was posted.
    last_progress: Option<std::time::Instant>,
    /// The fg's duration, as upstream told it when the run was decided.
    fg_duration: Option<gst::ClockTime>,
}

impl State {
    fn live(&self) -> Option<&live::LiveRun> {
        match &self.phase {
            Phase::Live(l) => Some(l),
            _ => None,
        }
    }

    fn live_mut(&mut self) -> Option<&mut live::LiveRun> {
        match &mut self.phase {
            Phase::Live(l) => Some(l),
            _ => None,
        }
    }

    /// The compositing plan in use: offline output's, or the live run's.
    fn plan_mut(&mut self) -> Option<&mut Output> {
        match &mut self.phase {
            Phase::Output { output, .. } => Some(output),
            Phase::Live(l) => l.plan.as_mut(),
            _ => None,
        }
    }

    /// How the offline run reads its inputs (`None` before it is decided, and live).
    fn pass(&self) -> Option<Pass> {
        match &self.phase {
            Phase::Reading { pass, .. }
            | Phase::Analysing { pass, .. }
            | Phase::Fetching { pass, .. }
            | Phase::Output { pass, .. } => Some(*pass),
            Phase::Rewinding { then } => match then.as_ref() {
                Phase::Reading { pass, .. }
                | Phase::Fetching { pass, .. }
                | Phase::Output { pass, .. } => Some(*pass),
                _ => None,
            },
            Phase::Undecided { .. } | Phase::Live(_) => None,
        }
    }
}

pub struct VidkompyAlign {
    bg_pad: gst_base::AggregatorPad,
    fg_pad: gst_base::AggregatorPad,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    cancel: Cancel,
    /// The backend chosen at start from the `device` property.
    compute: Mutex<Arc<dyn Compute>>,
    /// The last offline alignment's line, fg position -> bg position (stream times), a
    /// point per few frames: where to read the bg from after a seek. Kept across flushes.
    line: Mutex<std::collections::BTreeMap<u64, u64>>,
    /// The start of a flushing seek sent upstream, until its flush resets the state.
    seek_pending: Mutex<Option<gst::ClockTime>>,
    /// Our own seek of the inputs under way (two-pass rewinds, the bg after a seek): its own
    /// lock, taken last and held for no call, so that flush events read it while the state
    /// lock is held by the analysis.
    rewind: Mutex<Option<Rewind>>,
    /// The bg's format, for caps queries on the fg pad.
    bg_format: Mutex<Option<VideoFormat>>,
    /// The last offline alignment, kept across flushes: the output after a seek reuses it.
    made: Mutex<Option<Made>>,
}

/// A frame that a decoder clipped to the start of an accurate seek's segment (its timestamp
/// moved up to the segment's start, its duration shortened) with its own timestamp and duration
/// again (at the caps' frame rate): its span holds the position sought, and the output shows it
/// as an unseeked run does.
fn unclipped(
    mut buffer: gst::Buffer,
    segment: Option<&gst::FormattedSegment<gst::ClockTime>>,
    info: &gst_video::VideoInfo,
) -> gst::Buffer {
    let fps = info.fps();
    let (Some(pts), Some(duration), Some(start)) = (
        buffer.pts(),
        buffer.duration(),
        segment.and_then(|s| s.start()),
    ) else {
        return buffer;
    };
    if fps.numer() <= 0 || pts != start {
        return buffer;
    }
    // As decoders compute it (gst_util_uint64_scale, rounding down).
    let Some(frame) = gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64)
    else {
        return buffer;
    };
    // Shorter than a frame by more than the rounding of container timestamps.
    if duration + gst::ClockTime::MSECOND >= frame {
        return buffer;
    }
    let Some(own) = (pts + duration).checked_sub(frame) else {
        return buffer;
    };
    let b = buffer.make_mut();
    b.set_pts(own);
    b.set_duration(frame);
    buffer
}

/// Locks a mutex, taking the data even if a panicking thread poisoned it (the element never
/// panics by design; this keeps a bug from becoming a second panic across the FFI boundary).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Plane geometry of a format, for the compositing kernels.
fn plane_layouts(info: &gst_video::VideoInfo) -> Option<Vec<PlaneLayout>> {
    let fi = info.format_info();
    let (planes, w_sub, h_sub, pstride, depth) = (
        fi.plane(),
        fi.w_sub(),
        fi.h_sub(),
        fi.pixel_stride(),
        fi.depth(),
    );
    (0..fi.n_planes())
        .map(|p| {
            let comps: Vec<usize> = (0..fi.n_components() as usize)
                .filter(|&c| planes[c] == p)
                .collect();
            let c0 = *comps.first()?;
            let same = comps.iter().all(|&c| {
                w_sub[c] == w_sub[c0] && h_sub[c] == h_sub[c0] && pstride[c] == pstride[c0]
            });
            (same && depth[c0] == 8 && pstride[c0] > 0).then(|| PlaneLayout {
                x_sub: w_sub[c0],
                y_sub: h_sub[c0],
                bytes_per_pixel: pstride[c0] as usize,
            })
        })
        .collect()
}

/// How to read luma from plane 0 of frames of this format.
fn luma_layout(info: &gst_video::VideoInfo) -> Option<LumaLayout> {
    let fi = info.format_info();
    let (ps, off) = (fi.pixel_stride(), fi.poffset());
    if fi.is_rgb() {
        (fi.n_components() >= 3 && fi.plane()[..3].iter().all(|&p| p == 0)).then(|| {
            LumaLayout::Rgb {
                pixel_stride: ps[0] as usize,
                r: off[0] as usize,
                g: off[1] as usize,
                b: off[2] as usize,
            }
        })
    } else {
        (fi.plane()[0] == 0).then(|| LumaLayout::Luma {
            pixel_stride: ps[0] as usize,
            offset: off[0] as usize,
        })
    }
}

/// Runs `f` on a view of the luma of `buffer`.
fn with_luma<T>(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    f: impl FnOnce(&FrameView<'_>) -> Option<T>,
) -> Option<T> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let view = FrameView {
        data: frame.plane_data(0).ok()?,
        stride: usize::try_from(frame.plane_stride()[0]).ok()?,
        width: info.width() as usize,
        height: info.height() as usize,
        layout: luma_layout(info)?,
    };
    f(&view)
}

impl VidkompyAlign {
    fn state(&self) -> MutexGuard<'_, Option<State>> {
        lock(&self.state)
    }

    fn pad_name(&self, pad: &gst_base::AggregatorPad) -> &'static str {
        if *pad == self.bg_pad { "bg" } else { "fg" }
    }

    /// The backend in use.
    fn compute(&self) -> Arc<dyn Compute> {
        lock(&self.compute).clone()
    }

    /// A warning if the GPU failed during the analysis (the CPU did that work instead, with
    /// the same result).
    fn device_fallback(&self) {
        if let Some(e) = self.compute().take_failure() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Failed,
                ("The GPU failed ({e}); the CPU computed instead, with the same result")
            );
        }
    }

    fn resolve_placement(
        &self,
        settings: &Settings,
        fg: &gst_video::VideoInfo,
        bg: &gst_video::VideoInfo,
    ) -> Result<placement::Placement, gst::FlowError> {
        placement::resolve(
            (fg.width(), fg.height()),
            (bg.width(), bg.height()),
            settings.request(),
        )
        .map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{e}"));
            gst::FlowError::Error
        })
    }

    /// Whether a flush event is our own rewind's; a FLUSH_STOP of it is recorded.
    fn own_flush(&self, pad: &gst_base::AggregatorPad, seqnum: gst::Seqnum, stop: bool) -> bool {
        let mut guard = lock(&self.rewind);
        let Some(r) = guard.as_mut() else {
            return false;
        };
        let k = usize::from(self.pad_name(pad) == "fg");
        if r.seqnums[k] != seqnum {
            return false;
        }
        if stop {
            r.flushed[k] = true;
        }
        true
    }

    fn reset(&self) {
        *lock(&self.rewind) = None;
        let mut guard = self.state();
        if let Some(state) = guard.as_mut() {
            // A report to reuse stays: it was read at start. So do the pads' caps: sticky,
            // they are not sent again after a flush.
            // The alignment made before a seek is taken afresh from `made` by `flush`.
            let loaded = state.loaded.take().filter(|_| state.reused.is_none());
            let caps = [
                (state.bg.caps.take(), state.bg.info.take()),
                (state.fg.caps.take(), state.fg.info.take()),
            ];
            *state = self.new_state(loaded);
            let [(bc, bi), (fc, fi)] = caps;
            (state.bg.caps, state.bg.info) = (bc, bi);
            (state.fg.caps, state.fg.info) = (fc, fi);
        }
    }

    /// A fresh state, its stores under the memory budget and temp directory of the settings.
    fn new_state(&self, loaded: Option<(std::path::PathBuf, Report)>) -> State {
        let settings = lock(&self.settings).clone();
        let budget = Budget::new(settings.max_memory);
        let dir = settings.temp_dir.map(std::path::PathBuf::from);
        // Thumbnails: in memory up to a fixed bound (or max-memory, if lower), so that memory
        // does not grow with the input's length; all in memory when max-memory is unlimited.
        let thumb_limit = match usize::try_from(settings.max_memory) {
            Ok(0) => usize::MAX,
            Ok(m) => m.min(store::THUMBS_IN_MEMORY),
            Err(_) => store::THUMBS_IN_MEMORY,
        };
        let pad = || PadState {
            store: PadStore::new(store::DEFAULT_MAX_REFS, budget.clone(), dir.clone()),
            thumbs: ThumbStore::new(thumb_limit, dir.clone()),
            ..PadState::default()
        };
        State {
            bg: pad(),
            fg: pad(),
            loaded,
            // Features (about 1 KB a frame) under the same bound, per stream.
            features: store::FeatureSpills::new(thumb_limit, dir.clone()),
            ..State::default()
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VidkompyAlign {
    const NAME: &'static str = "GstVidkompyAlign";
    type Type = super::VidkompyAlign;
    type ParentType = gst_base::Aggregator;

    fn with_class(klass: &Self::Class) -> Self {
        let pad = |name: &str| {
            let templ = klass
                .pad_template(name)
                .expect("pad templates are registered in pad_templates()");
            gst::PadBuilder::<gst_base::AggregatorPad>::from_template(&templ).build()
        };
        VidkompyAlign {
            bg_pad: pad("bg"),
            fg_pad: pad("fg"),
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            cancel: Cancel::new(),
            compute: Mutex::new(compute::cpu()),
            line: Mutex::new(Default::default()),
            seek_pending: Mutex::new(None),
            rewind: Mutex::new(None),
            bg_format: Mutex::new(None),
            made: Mutex::new(None),
        }
    }
}

impl ObjectImpl for VidkompyAlign {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        for pad in [&self.bg_pad, &self.fg_pad] {
            if let Err(e) = obj.add_pad(pad) {
                gst::error!(CAT, imp = self, "cannot add pad {}: {e}", pad.name());
            }
        }
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecInt::builder("x")
                    .nick("X")
                    .blurb("Footprint's left edge in the bg, bg pixels (-1 = search)")
                    .minimum(-1)
                    .maximum(MAX_COORD)
                    .default_value(DEFAULT_X)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("y")
                    .nick("Y")
                    .blurb("Footprint's top edge in the bg, bg pixels (-1 = search)")
                    .minimum(-1)
                    .maximum(MAX_COORD)
                    .default_value(DEFAULT_Y)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("scale")
                    .nick("Scale")
                    .blurb("Footprint width / fg width (0 = search among 0.5-1.0)")
                    .minimum(0.0)
                    .maximum(MAX_SCALE)
                    .default_value(DEFAULT_SCALE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("blend-width")
                    .nick("Blend width")
                    .blurb("Pixels of feathering along the fg's edges where the bg shows (0 = hard edges)")
                    .maximum(MAX_BLEND_WIDTH)
                    .default_value(DEFAULT_BLEND_WIDTH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("device", Device::Auto)
                    .nick("Device")
                    .blurb("Where compositing and the heavy analysis kernels run")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("match-region", DEFAULT_MATCH_REGION)
                    .nick("Match region")
                    .blurb("What frames are matched on: the whole footprint, or a band along its inner edges")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("report")
                    .nick("Report")
                    .blurb("Path of a JSON report of the alignment, written when it is decided")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("plot")
                    .nick("Plot")
                    .blurb("Path of an SVG picture of the frame mapping, drawn with the report")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("alignment")
                    .nick("Alignment")
                    .blurb("Path of a report to apply without analysis")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("two-pass")
                    .nick("Two passes")
                    .blurb("Read seekable inputs again instead of storing frames")
                    .default_value(DEFAULT_TWO_PASS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-memory")
                    .nick("Maximum memory")
                    .blurb("Bytes of frame copies and thumbnails held in memory; the rest spills (0 = unlimited)")
                    .default_value(DEFAULT_MAX_MEMORY)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("temp-dir")
                    .nick("Temp directory")
                    .blurb("Directory of spill files (unset: $TMPDIR or /tmp)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("lookahead")
                    .nick("Lookahead")
                    .blurb("Live: how long (ns) each fg frame waits for its match; the latency added")
                    .maximum(MAX_WINDOW)
                    .default_value(DEFAULT_LOOKAHEAD)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-offset")
                    .nick("Maximum offset")
                    .blurb("Live: how far (ns) the bg may lead the fg; bg frames are held that long")
                    .maximum(MAX_WINDOW)
                    .default_value(DEFAULT_MAX_OFFSET)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("force-live")
                    .nick("Force live")
                    .blurb("Align on a sliding window and output while reading, even with no live upstream")
                    .default_value(false)
                    .construct_only()
                    .build(),
                glib::ParamSpecUInt::builder("edge-width")
                    .nick("Edge width")
                    .blurb("Width in bg pixels of the band matched with match-region=edges")
                    .minimum(1)
                    .maximum(MAX_EDGE_WIDTH)
                    .default_value(DEFAULT_EDGE_WIDTH)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "x" => s.x = value.get().unwrap_or(DEFAULT_X),
            "y" => s.y = value.get().unwrap_or(DEFAULT_Y),
            "scale" => s.scale = value.get().unwrap_or(DEFAULT_SCALE),
            "blend-width" => s.blend_width = value.get().unwrap_or(DEFAULT_BLEND_WIDTH),
            "match-region" => s.match_region = value.get().unwrap_or(DEFAULT_MATCH_REGION),
            "edge-width" => s.edge_width = value.get().unwrap_or(DEFAULT_EDGE_WIDTH),
            "report" => s.report = value.get::<Option<String>>().ok().flatten(),
            "plot" => s.plot = value.get::<Option<String>>().ok().flatten(),
            "alignment" => s.alignment = value.get::<Option<String>>().ok().flatten(),
            "two-pass" => s.two_pass = value.get().unwrap_or(DEFAULT_TWO_PASS),
            "max-memory" => s.max_memory = value.get().unwrap_or(DEFAULT_MAX_MEMORY),
            "device" => s.device = value.get().unwrap_or(Device::Auto),
            "temp-dir" => s.temp_dir = value.get::<Option<String>>().ok().flatten(),
            "lookahead" => s.lookahead = value.get().unwrap_or(DEFAULT_LOOKAHEAD),
            "max-offset" => s.max_offset = value.get().unwrap_or(DEFAULT_MAX_OFFSET),
            "force-live" => {
                drop(s);
                self.obj().set_force_live(value.get().unwrap_or(false));
                return;
            }
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "settings now {s:?}");
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "x" => s.x.to_value(),
            "y" => s.y.to_value(),
            "scale" => s.scale.to_value(),
            "blend-width" => s.blend_width.to_value(),
            "match-region" => s.match_region.to_value(),
            "edge-width" => s.edge_width.to_value(),
            "report" => s.report.to_value(),
            "plot" => s.plot.to_value(),
            "alignment" => s.alignment.to_value(),
            "two-pass" => s.two_pass.to_value(),
            "max-memory" => s.max_memory.to_value(),
            "device" => s.device.to_value(),
            "temp-dir" => s.temp_dir.to_value(),
            "lookahead" => s.lookahead.to_value(),
            "max-offset" => s.max_offset.to_value(),
            "force-live" => {
                drop(s);
                self.obj().is_force_live().to_value()
            }
            // GObject only asks for the properties registered above.
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for VidkompyAlign {}

impl ElementImpl for VidkompyAlign {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "vidkompy aligned overlay",
                "Filter/Editor/Video/Compositor",
                "Overlays a foreground video on a background video of the same scene, \
                 aligned in space and time; the fg is the timeline",
                "vidkompy-gst developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .width_range(1..=MAX_SIDE)
                .height_range(1..=MAX_SIDE)
                .build();
            let templ = |name: &str, dir| {
                gst::PadTemplate::with_gtype(
                    name,
                    dir,
                    gst::PadPresence::Always,
                    &caps,
                    gst_base::AggregatorPad::static_type(),
                )
                .expect("valid pad template")
            };
            vec![
                templ("src", gst::PadDirection::Src),
                templ("bg", gst::PadDirection::Sink),
                templ("fg", gst::PadDirection::Sink),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if matches!(
            transition,
            gst::StateChange::PausedToReady | gst::StateChange::ReadyToNull
        ) {
            // Before chaining up: the base class waits for the streaming thread, which must
            // leave any long loop now.
            self.cancel.cancel();
        }
        self.parent_change_state(transition)
    }
}

impl AggregatorImpl for VidkompyAlign {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.cancel.reset();
        // A new stream: an earlier one's line and alignment say nothing of it.
        lock(&self.line).clear();
        *lock(&self.made) = None;
        *lock(&self.seek_pending) = None;
        // A report to reuse is read now, so that a missing or malformed file fails at once.
        let path = lock(&self.settings).alignment.clone();
        let loaded = match path {
            Some(p) => {
                let p = std::path::PathBuf::from(p);
                let report = Report::read(&p)
                    .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{e}")))?;
                Some((p, report))
            }
            None => None,
        };
        let device = lock(&self.settings).device;
        let (backend, why) = compute::backend(device.into()).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ("device=gpu, but there is no GPU: {e}")
            )
        })?;
        gst::info!(CAT, imp = self, "computing on {} ({why})", backend.name());
        *lock(&self.compute) = backend;
        *self.state() = Some(self.new_state(loaded));
        // Live mode outputs each fg frame `lookahead` after it arrives; the base class adds
        // this to upstream's latency (its own `latency` property keeps its meaning).
        let lookahead = gst::ClockTime::from_nseconds(lock(&self.settings).lookahead);
        self.obj().set_latency(lookahead, Some(lookahead));
        self.parent_start()
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state() = None;
        *lock(&self.rewind) = None;
        *lock(&self.bg_format) = None;
        self.parent_stop()
    }

    fn flush(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.reset();
        let sought = lock(&self.seek_pending).take();
        let made = lock(&self.made)
            .as_ref()
            .map(|m| (m.report.clone(), m.kind, m.from));
        if let Some(state) = self.state().as_mut() {
            state.phase = Phase::Undecided { resume_at: sought };
            // A seek resumes with the alignment already made (found again by timestamp),
            // unless an `alignment` file is applied anyway.
            if sought.is_some()
                && state.loaded.is_none()
                && let Some((report, kind, from)) = made
            {
                state.loaded = Some((
                    std::path::PathBuf::from("(the alignment before the seek)"),
                    report,
                ));
                state.reused = Some((kind, from));
            }
        }
        self.cancel.reset();
        self.parent_flush()
    }

    fn negotiate(&self) -> bool {
        // Output caps are known only once both pads are read; they are set by hand then.
        true
    }

    fn next_time(&self) -> Option<gst::ClockTime> {
        // Called under the base class's source lock: no `latency()` here (it takes that lock).
        let live = self.state().as_ref().is_some_and(|s| s.live().is_some());
        if live {
            self.live_next_time()
        } else {
            self.obj().simple_get_next_time()
        }
    }

    fn sink_event(&self, pad: &gst_base::AggregatorPad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) if !self.handle_caps(pad, c.caps_owned()) => return false,
            gst::EventView::FlushStart(e) if !self.own_flush(pad, e.seqnum(), false) => {
                self.cancel.cancel()
            }
            gst::EventView::FlushStop(e) => {
                self.own_flush(pad, e.seqnum(), true);
            }
            _ => (),
        }
        self.parent_sink_event(pad, event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Qos(q) => {
                self.live_qos(q);
            }
            gst::EventView::Seek(e) => {
                let (rate, ..) = e.get();
                if rate != 1.0 {
                    gst::element_imp_warning!(
                        self,
                        gst::CoreError::Seek,
                        ("Seek refused: rate {rate} (only rate 1 is supported: the fg is the \
                          timeline and each of its frames is output once, in order)")
                    );
                    return false;
                }
                let (_, flags, start_type, start, ..) = e.get();
                let flush = flags.contains(gst::SeekFlags::FLUSH);
                if flush
                    && start_type == gst::SeekType::Set
                    && let gst::GenericFormattedValue::Time(Some(at)) = start
                {
                    *lock(&self.seek_pending) = Some(at);
                }
                // The base class stops the output task before it seeks upstream, which waits
                // for `aggregate` to return: an analysis under way is cancelled first, so that
                // the seek is answered at once. The flush resets the flag.
                if flush {
                    self.cancel.cancel();
                }
                let done = self.parent_src_event(event);
                if !done {
                    *lock(&self.seek_pending) = None;
                    if flush {
                        self.cancel.reset();
                    }
                }
                return done;
            }
            _ => (),
        }
        self.parent_src_event(event)
    }

    fn src_query(&self, query: &mut gst::QueryRef) -> bool {
        // Upstream queries here run with no element lock held.
        match query.view_mut() {
            // Seekable in time where both inputs are (a flushing seek resumes at the fg frame
            // sought), over the fg's range: the fg is the timeline.
            gst::QueryViewMut::Seeking(q) if q.format() == gst::Format::Time => {
                let ask = |pad: &gst_base::AggregatorPad| {
                    let mut q = gst::query::Seeking::new(gst::Format::Time);
                    pad.peer_query(&mut q).then(|| q.result())
                };
                let (Some(fg), Some(bg)) = (ask(&self.fg_pad), ask(&self.bg_pad)) else {
                    q.set(false, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                    return true;
                };
                let (fg_seekable, start, end) = fg;
                q.set(fg_seekable && bg.0, start, end);
                true
            }
            // The fg's duration: the output has one frame per fg frame, at its times.
            gst::QueryViewMut::Duration(q) if q.format() == gst::Format::Time => {
                match self.fg_pad.peer_query_duration::<gst::ClockTime>() {
                    Some(d) => {
                        q.set(d);
                        true
                    }
                    None => false,
                }
            }
            _ => self.parent_src_query(query),
        }
    }

    fn sink_query(&self, pad: &gst_base::AggregatorPad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                let caps = self.sink_caps(pad, q.filter_owned().as_ref());
                q.set_result(&caps);
                true
            }
            gst::QueryViewMut::AcceptCaps(q) => {
                let caps = q.caps_owned();
                let ok = caps.is_subset(&self.sink_caps(pad, None));
                if !ok && caps.is_fixed() {
                    let reason = self.refusal_reason(pad, &caps);
                    let name = self.pad_name(pad);
                    gst::warning!(CAT, imp = self, "pad {name} refuses {caps}: {reason}");
                    gst::element_imp_warning!(
                        self,
                        gst::CoreError::Negotiation,
                        ("Pad {name} cannot take {caps}: {reason}")
                    );
                }
                q.set_result(ok);
                true
            }
            _ => self.parent_sink_query(pad, query),
        }
    }

    fn aggregate(&self, timeout: bool) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.cancel.is_cancelled() {
            return Err(gst::FlowError::Flushing);
        }
        // Debug builds only: lets tests/panic.rs check that a panic becomes an element error.
        #[cfg(debug_assertions)]
        if std::env::var_os("VIDKOMPY_TEST_PANIC").is_some_and(|v| v == self.obj().name().as_str())
        {
            panic!("panic requested through VIDKOMPY_TEST_PANIC");
        }
        // The run is decided once, from upstream's answers (latency, seeking, duration),
        // asked with no element lock held.
        let asked = self.ask_upstream()?;
        let effects = {
            let mut guard = self.state();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            self.step(state, asked, timeout)?
        };
        self.apply(effects)
    }
}
