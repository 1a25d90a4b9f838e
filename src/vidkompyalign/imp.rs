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
use crate::align::{Cancel, MIN_SPATIAL_CONFIDENCE, timing};
use crate::composite::{Overlay, PlaneLayout, PlaneMut, PlaneRef};
use crate::compute::{self, Compute};
use crate::messages::{self, ElementMessage, FootprintFrom, Frames, MappedBy, Progress, Reframed};
use crate::report::{self, Report, Segment};
use crate::store::{self, Budget, FrameTimes, PadStore, ThumbStore};

mod live;

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

/// Below this temporal confidence (mean distinctiveness of the matches) the content mapping is
/// not trusted and frames are mapped by running time.
const MIN_TEMPORAL_CONFIDENCE: f64 = 0.1;
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

/// How frames reach the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    /// Not decided before the first buffers.
    #[default]
    Undecided,
    /// Every frame is stored while reading (inputs that cannot seek).
    Store,
    /// The first pass keeps only features; the inputs are read again from the start.
    TwoPass,
    /// Upstream is live (or `force-live` is set): alignment on a sliding window.
    Live,
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
    /// The footprint was checked against the first caps of both pads (fail fast, before
    /// reading whole files).
    placement_checked: bool,
    /// The `alignment` file, read at start; or after a flushing seek the alignment made
    /// before it (`reused`).
    loaded: Option<(std::path::PathBuf, Report)>,
    /// `loaded` is the alignment made before a seek: posted as it was made, not written.
    reused: Option<(MappedBy, FootprintFrom)>,
    /// Where the analysis keeps features past the memory bound.
    features: store::FeatureSpills,
    /// When the last `vidkompy-progress` message was posted.
    last_progress: Option<std::time::Instant>,
    mode: Mode,
    /// The fg's duration, as upstream told it when the mode was decided.
    fg_duration: Option<gst::ClockTime>,
    /// A flushing seek to this fg position reset the state: the bg is to be read from where
    /// that position's match can be (offline modes).
    resume_at: Option<gst::ClockTime>,
    /// The streams are read from a seek's position: a loaded report is matched by timestamp.
    from_seek: bool,
    fetch: Option<Box<Fetch>>,
    output: Option<Output>,
    /// Live mode's window and queues.
    live: Option<live::LiveRun>,
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

    fn sink_caps(&self, pad: &gst_base::AggregatorPad, filter: Option<&gst::Caps>) -> gst::Caps {
        let templ = pad.pad_template_caps();
        let mut caps = if *pad == self.bg_pad {
            // The output takes every field of the bg's caps but the framerate: let downstream
            // constrain the bg, without its framerate (which is the fg's).
            let mut peer = self.obj().src_pad().peer_query_caps(None);
            {
                let peer = peer.make_mut();
                for s in peer.iter_mut() {
                    s.remove_field("framerate");
                }
            }
            let caps = templ.intersect_with_mode(&peer, gst::CapsIntersectMode::First);
            if caps.is_empty() { templ } else { caps }
        } else {
            // Any format is converted; prefer the bg's, which needs no conversion (read from a
            // lock of its own: this query may come while the analysis holds the state).
            let bg_format = *lock(&self.bg_format);
            match bg_format {
                Some(f) => {
                    let mut pref = gst_video::VideoCapsBuilder::new().format(f).build();
                    pref.merge(templ);
                    pref
                }
                None => templ,
            }
        };
        if let Some(filter) = filter {
            caps = filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First);
        }
        caps
    }

    /// Why `caps` cannot go on `pad`, in words.
    fn refusal_reason(&self, pad: &gst_base::AggregatorPad, caps: &gst::CapsRef) -> String {
        let Some(s) = caps.structure(0) else {
            return "empty caps".into();
        };
        if s.name() != "video/x-raw" {
            return format!("{} is not raw video", s.name());
        }
        if let Some(f) = caps.features(0)
            && !f.is_any()
            && f.size() > 0
            && !f.contains("memory:SystemMemory")
        {
            return format!("memory {f} is not supported, only system memory");
        }
        if let Ok(fmt) = s.get::<&str>("format") {
            let supported = FORMATS.iter().any(|f| f.to_str() == fmt);
            if !supported {
                let list: Vec<&str> = FORMATS.iter().map(|f| f.to_str().as_str()).collect();
                return format!(
                    "format {fmt} is not supported (supported: {})",
                    list.join(", ")
                );
            }
        }
        if let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height"))
            && (w > MAX_SIDE || h > MAX_SIDE)
        {
            return format!(
                "{w}x{h} is larger than {MAX_SIDE} px on a side, the largest supported"
            );
        }
        if *pad == self.bg_pad {
            "downstream does not accept these caps".into()
        } else {
            "caps outside the pad template".into()
        }
    }

    fn handle_caps(&self, pad: &gst_base::AggregatorPad, caps: gst::Caps) -> bool {
        let name = self.pad_name(pad);
        let info = match gst_video::VideoInfo::from_caps(&caps) {
            Ok(i) => i,
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Invalid caps on pad {name}: {e} ({caps})")
                );
                return false;
            }
        };
        if plane_layouts(&info).is_none() || info.width() == 0 || info.height() == 0 {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Unsupported video on pad {name}: {caps}")
            );
            return false;
        }
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return false;
        };
        let differs = |old: &gst_video::VideoInfo| {
            old.format() != info.format()
                || old.width() != info.width()
                || old.height() != info.height()
                || old.interlace_mode() != info.interlace_mode()
        };
        let changed = {
            let ps = if name == "bg" { &state.bg } else { &state.fg };
            // Against the caps frames arrive in now: after A -> B, a return to A is a change.
            let current = ps.incoming.as_ref().map(|i| &i.info).or(ps.info.as_ref());
            current.is_some_and(differs)
        };
        if changed && state.mode == Mode::Live {
            // Serialized events reach this in the source pad's task, in order with buffers:
            // the frames held came with the old caps and are output before these are stored.
            drop(guard);
            if let Err(e) = self.live_caps_change(name) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "draining for a caps change on {name}: {e:?}"
                );
                if e != gst::FlowError::Flushing {
                    return false;
                }
            }
            guard = self.state();
        }
        let Some(state) = guard.as_mut() else {
            return false;
        };
        let offline = state.mode != Mode::Live;
        let first_pass =
            lock(&self.rewind).is_none() && state.fetch.is_none() && state.output.is_none();
        let ps = if name == "bg" {
            &mut state.bg
        } else {
            &mut state.fg
        };
        let back_to_first = ps.info.as_ref().is_some_and(|first| !differs(first));
        if changed && offline && !ps.times.is_empty() && back_to_first {
            // Frames arrive in the first caps again (A -> B -> A): no conversion, and a
            // stretch of its own from here, as at any change.
            gst::info!(
                CAT,
                imp = self,
                "{name} caps back to the first ones after {} frames: {caps}",
                ps.times.len()
            );
            if first_pass {
                ps.changed_at.push(ps.times.len());
            }
        } else if changed && offline && !ps.times.is_empty() {
            // Offline the analysis and the output plan span the whole stream in its first
            // caps: later frames are converted to them.
            let Some(first) = ps.info.clone() else {
                return false;
            };
            let frames = ps.times.len();
            gst::info!(
                CAT,
                imp = self,
                "{name} caps changed after {frames} frames: {caps}"
            );
            let converter = gst_video::VideoConverter::new(&info, &first, None);
            drop(guard);
            let converter = match converter {
                Ok(c) => c,
                Err(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("Caps changed mid-stream on pad {name} to {caps}, which cannot be \
                          converted to its first caps: {e}")
                    );
                    return false;
                }
            };
            gst::element_imp_info!(
                self,
                gst::CoreError::Negotiation,
                (
                    "Caps changed on pad {name} after {frames} frames: {}x{} {:?} -> {}x{} {:?}; \
                     its frames are converted to the first caps, which the alignment and the \
                     output keep",
                    first.width(),
                    first.height(),
                    first.format(),
                    info.width(),
                    info.height(),
                    info.format()
                )
            );
            if let Some(state) = self.state().as_mut() {
                let ps = if name == "bg" {
                    &mut state.bg
                } else {
                    &mut state.fg
                };
                ps.incoming = Some(Incoming { info, converter });
                if first_pass {
                    ps.changed_at.push(frames);
                }
            }
            return true;
        }
        gst::debug!(CAT, imp = self, "{name} caps {caps}");
        if name == "bg" {
            *lock(&self.bg_format) = Some(info.format());
        }
        ps.caps = Some(caps);
        ps.info = Some(info);
        ps.incoming = None;
        true
    }

    /// The next buffer of `pad` in the pad's first caps (offline: converted when the caps
    /// changed since).
    fn pop(
        &self,
        pad: &gst_base::AggregatorPad,
        ps: &PadState,
    ) -> Result<Option<gst::Buffer>, gst::FlowError> {
        let Some(buffer) = pad.pop_buffer() else {
            return Ok(None);
        };
        let buffer = match ps.incoming.as_ref().map(|i| &i.info).or(ps.info.as_ref()) {
            Some(info) => {
                let segment = pad.segment().downcast::<gst::ClockTime>().ok();
                unclipped(buffer, segment.as_ref(), info)
            }
            None => buffer,
        };
        let (Some(inc), Some(first)) = (ps.incoming.as_ref(), ps.info.as_ref()) else {
            return Ok(Some(buffer));
        };
        let name = self.pad_name(pad);
        let fail = || {
            gst::element_imp_error!(
                self,
                gst::StreamError::Decode,
                (
                    "A frame on pad {name} does not match its caps ({:?})",
                    inc.info
                )
            );
            gst::FlowError::Error
        };
        let size = first.size();
        let mut out = gst::Buffer::with_size(size).map_err(|_| fail())?;
        {
            let out_ref = out.get_mut().ok_or_else(fail)?;
            let _ = buffer.copy_into(
                out_ref,
                gst::BufferCopyFlags::TIMESTAMPS | gst::BufferCopyFlags::FLAGS,
                ..,
            );
            let src = gst_video::VideoFrameRef::from_buffer_ref_readable(&buffer, &inc.info)
                .map_err(|_| fail())?;
            let mut dst = gst_video::VideoFrameRef::from_buffer_ref_writable(out_ref, first)
                .map_err(|_| fail())?;
            inc.converter.frame_ref(&src, &mut dst);
        }
        Ok(Some(out))
    }

    /// Takes the next buffer of `pad` into the store, if there is one.
    fn take_buffer(
        &self,
        pad: &gst_base::AggregatorPad,
        ps: &mut PadState,
        store: bool,
    ) -> Result<(), gst::FlowError> {
        let Some(buffer) = self.pop(pad, ps)? else {
            return Ok(());
        };
        let name = self.pad_name(pad);
        if ps.info.is_none() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Buffer on pad {name} before any caps")
            );
            return Err(gst::FlowError::Error);
        }
        let segment = pad.segment();
        let pts = buffer.pts();
        let segment = segment.downcast::<gst::ClockTime>().ok();
        let running_time = segment
            .as_ref()
            .and_then(|s| pts.and_then(|p| s.to_running_time(p)));
        if ps.first_segment.is_none() {
            ps.first_segment = segment;
        }
        let times = FrameTimes {
            pts,
            duration: buffer.duration(),
            running_time,
        };
        let info = ps.info.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let Some(thumb) = with_luma(&buffer, info, Thumb::new) else {
            gst::element_imp_error!(
                self,
                gst::StreamError::Decode,
                (
                    "Frame {} on pad {name} does not match its caps",
                    ps.times.len()
                )
            );
            return Err(gst::FlowError::Error);
        };
        let spilling = ps.thumbs.spill_failure().is_none();
        ps.thumbs.push(thumb);
        if spilling && let Some(why) = ps.thumbs.spill_failure() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("Thumbnails of pad {name} stay in memory: {why}")
            );
        }
        gst::trace!(
            CAT,
            imp = self,
            "{name} frame {} at {pts:?}",
            ps.times.len()
        );
        ps.times.push(times);
        if !store {
            return Ok(());
        }
        ps.store.push(buffer, info).map_err(|e| {
            if e.full {
                gst::element_imp_error!(self, gst::ResourceError::NoSpaceLeft, ("Pad {name}: {e}"));
            } else {
                gst::element_imp_error!(self, gst::ResourceError::Write, ("Pad {name}: {e}"));
            }
            gst::FlowError::Error
        })
    }

    /// Running times of a pad's frames, gaps filled; also the frame duration used.
    fn frame_times(ps: &PadState) -> (Vec<u64>, Option<u64>) {
        let rts: Vec<Option<u64>> = ps
            .times
            .iter()
            .map(|t| t.running_time.map(|t| t.nseconds()))
            .collect();
        let known: Vec<u64> = rts.iter().flatten().copied().collect();
        let nominal = ps.info.as_ref().and_then(|i| {
            let fps = i.fps();
            (fps.numer() > 0).then(|| {
                gst::ClockTime::SECOND
                    .mul_div_round(fps.denom() as u64, fps.numer() as u64)
                    .map(|t| t.nseconds())
            })?
        });
        let from_buffers = ps
            .times
            .iter()
            .find_map(|t| t.duration.map(|d| d.nseconds()).filter(|&d| d > 0));
        let step = nominal
            .or_else(|| timing::estimate_frame_duration(&known))
            .or(from_buffers);
        (timing::fill_times(&rts, step.unwrap_or(0)), step)
    }

    /// Both pads are at EOS after the first pass: output caps, sizes and frame times.
    fn prep(&self, state: &State) -> Result<Prep, gst::FlowError> {
        for (name, ps) in [("bg", &state.bg), ("fg", &state.fg)] {
            if ps.times.is_empty() {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Pad {name} reached the end of stream without any frame")
                );
                return Err(gst::FlowError::Error);
            }
        }
        let (Some(bg_caps), Some(bg_info), Some(fg_info)) = (
            state.bg.caps.clone(),
            state.bg.info.clone(),
            state.fg.info.clone(),
        ) else {
            return Err(gst::FlowError::Error);
        };

        let (fg_times, fg_step) = Self::frame_times(&state.fg);
        let (bg_times, bg_step) = Self::frame_times(&state.bg);

        let mut fps = fg_info.fps();
        if fps.numer() == 0 {
            let Some(step) = fg_step else {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "The fg's framerate is 0/1 and cannot be derived from its timestamps \
                         ({} frame(s) without usable timestamps or durations)",
                        state.fg.times.len()
                    )
                );
                return Err(gst::FlowError::Error);
            };
            let (n, d) = timing::rate_from_duration(step);
            fps = gst::Fraction::new(n, d);
            gst::info!(
                CAT,
                imp = self,
                "fg framerate 0/1: derived {n}/{d} from its timestamps"
            );
        }

        let (caps, info) = self.output_caps(bg_caps, fps)?;
        let geo = Geometry {
            fg: (fg_info.width(), fg_info.height()),
            bg: (bg_info.width(), bg_info.height()),
        };
        let nominal_rate = match (fg_step, bg_step) {
            (Some(f), Some(b)) if b > 0 => Some(f as f64 / b as f64),
            _ => None,
        };
        Ok(Prep {
            caps,
            info,
            settings: lock(&self.settings).clone(),
            geo,
            fg_info,
            bg_info,
            fg_times,
            bg_times,
            nominal_rate,
        })
    }

    /// The output caps: the bg's with the fg's framerate.
    fn output_caps(
        &self,
        bg_caps: gst::Caps,
        fps: gst::Fraction,
    ) -> Result<(gst::Caps, gst_video::VideoInfo), gst::FlowError> {
        let mut caps = bg_caps;
        caps.make_mut().set("framerate", fps);
        let info = gst_video::VideoInfo::from_caps(&caps).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Cannot build output caps {caps}: {e}")
            );
            gst::FlowError::Error
        })?;
        Ok((caps, info))
    }

    /// The analysis's input from the first pass.
    fn input<'a>(
        state: &'a State,
        prep: &Prep,
        dots: &'a dyn crate::align::kernels::Kernels,
    ) -> analysis::Input<'a> {
        analysis::Input {
            fg: &state.fg.thumbs,
            bg: &state.bg.thumbs,
            dots,
            spills: &state.features,
            geometry: prep.geo,
            constraints: prep.settings.constraints(),
            nominal_rate: prep.nominal_rate,
            region: prep.settings.region(),
        }
    }

    /// Runs `f` (part of the analysis) while another thread posts `analysis` progress.
    fn with_ticker<T>(
        &self,
        started: std::time::Instant,
        spent: std::time::Duration,
        f: impl FnOnce() -> T,
    ) -> T {
        let finished = std::sync::atomic::AtomicBool::new(false);
        let analysis_progress = || {
            let elapsed = spent + started.elapsed();
            let elapsed = gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64);
            self.post_progress(Progress::Analysis { elapsed });
        };
        analysis_progress();
        let r = std::thread::scope(|scope| {
            let ticker = scope.spawn(|| {
                let mut last = std::time::Instant::now();
                while !finished.load(std::sync::atomic::Ordering::Acquire) {
                    if last.elapsed() >= PROGRESS_INTERVAL {
                        last = std::time::Instant::now();
                        analysis_progress();
                    }
                    // Woken early when the analysis ends, so that it is not kept waiting.
                    std::thread::park_timeout(std::time::Duration::from_millis(50));
                }
            });
            let r = f();
            finished.store(true, std::sync::atomic::Ordering::Release);
            ticker.thread().unpark();
            r
        });
        analysis_progress();
        r
    }

    /// Footprint and mapping from a loaded report: the output plan.
    fn conclude_loaded(
        &self,
        state: &mut State,
        prep: Prep,
        path: &std::path::Path,
        report: &Report,
        started: std::time::Instant,
    ) -> Result<Output, gst::FlowError> {
        let (segs, alignment) = self.use_report(path, report, state, prep.geo)?;
        let mapping = alignment.mapping.clone();
        let elapsed = started.elapsed();
        if let Some((kind, from)) = state.reused {
            // The alignment made before a seek: posted as it was made; its report stands.
            self.post_alignment(
                state,
                &segs,
                Some(&alignment),
                &mapping,
                kind,
                from,
                elapsed,
            );
            return self.finish_prepare(state, prep, &segs, mapping);
        }
        self.post_alignment(
            state,
            &segs,
            Some(&alignment),
            &mapping,
            MappedBy::Loaded,
            FootprintFrom::Report,
            elapsed,
        );
        let costs = Some(alignment.costs.as_slice());
        self.write_report(
            &prep.settings,
            state,
            prep.geo,
            &segs,
            Some(&alignment),
            &mapping,
            costs,
            MappedBy::Loaded,
            FootprintFrom::Report,
            elapsed,
        )?;
        self.finish_prepare(state, prep, &segs, mapping)
    }

    /// The analysis's result (or its absence) decides footprint and mapping: the output plan.
    fn conclude(
        &self,
        state: &mut State,
        prep: Prep,
        alignment: Option<Alignment>,
        parts: Stretches<Alignment>,
        elapsed: std::time::Duration,
    ) -> Result<Output, gst::FlowError> {
        let usable = |a: &Alignment| {
            a.spatial_confidence >= MIN_SPATIAL_CONFIDENCE
                && a.temporal_confidence >= MIN_TEMPORAL_CONFIDENCE
        };
        if stretches::prefer_stretches(alignment.as_ref(), &parts, &usable) {
            return self.conclude_stretches(state, prep, alignment, parts, elapsed);
        }
        let (fg_info, bg_info, geo) = (&prep.fg_info, &prep.bg_info, prep.geo);
        let spatial_ok = alignment
            .as_ref()
            .is_some_and(|a| a.spatial_confidence >= MIN_SPATIAL_CONFIDENCE);
        let temporal_ok = spatial_ok
            && alignment
                .as_ref()
                .is_some_and(|a| a.temporal_confidence >= MIN_TEMPORAL_CONFIDENCE);
        let place = match alignment.as_ref().filter(|_| spatial_ok) {
            Some(a) => placement::from_estimate(geo.fg, geo.bg, a.x, a.y, a.scale),
            None => {
                let place = self.resolve_placement(&prep.settings, fg_info, bg_info)?;
                let hint = Self::reframe_hint(&state.fg.changed_at);
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    (
                        "The fg's content was not found in the bg (spatial confidence {:.3}): the \
                         fg ({}x{}) is placed at x={} y={} scale={:.4} ({}x{} px) and mapped by \
                         running time; set x, y and scale to place it{hint}",
                        alignment
                            .as_ref()
                            .map_or(f64::NAN, |a| a.spatial_confidence),
                        fg_info.width(),
                        fg_info.height(),
                        place.x,
                        place.y,
                        place.scale,
                        place.width,
                        place.height
                    )
                );
                place
            }
        };
        let mapping = match alignment.as_ref().filter(|_| temporal_ok) {
            Some(a) => a.mapping.clone(),
            None => {
                if spatial_ok {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Failed,
                        (
                            "fg frames could not be matched to bg frames by content (temporal \
                             confidence {:.3}): mapped by running time",
                            alignment
                                .as_ref()
                                .map_or(f64::NAN, |a| a.temporal_confidence)
                        )
                    );
                }
                timing::map_by_time(&prep.fg_times, &prep.bg_times)
            }
        };
        if let Some(a) = alignment.as_ref().filter(|_| temporal_ok) {
            self.check_fg_changes(&state.fg.changed_at, &a.costs);
        }
        let kind = if temporal_ok {
            MappedBy::Content
        } else {
            MappedBy::RunningTime
        };
        let segs = [Self::segment(0, &place, alignment.as_ref())];
        let from = Self::footprint_from(&prep.settings, spatial_ok);
        self.post_alignment(
            state,
            &segs,
            alignment.as_ref(),
            &mapping,
            kind,
            from,
            elapsed,
        );
        let costs = alignment
            .as_ref()
            .filter(|_| temporal_ok)
            .map(|a| a.costs.as_slice());
        self.write_report(
            &prep.settings,
            state,
            geo,
            &segs,
            alignment.as_ref(),
            &mapping,
            costs,
            kind,
            from,
            elapsed,
        )?;
        // The analysis is over: its thumbnails (and their spill files) can go.
        state.bg.thumbs.clear();
        state.fg.thumbs.clear();
        self.finish_prepare(state, prep, &segs, mapping)
    }

    /// A stretch of fg frames from `from` on at `place`, found by `a` (if anything).
    fn segment(from: usize, place: &placement::Placement, a: Option<&Alignment>) -> Segment {
        let finite = |v: f64| v.is_finite().then_some(v);
        Segment {
            from,
            x: a.map_or(f64::from(place.x), |a| a.x),
            y: a.map_or(f64::from(place.y), |a| a.y),
            scale: a.map_or(place.scale, |a| a.scale),
            footprint: report::Footprint {
                x: place.x,
                y: place.y,
                width: place.width,
                height: place.height,
            },
            spatial_confidence: a.and_then(|a| finite(a.spatial_confidence)),
            mean_cost: a.and_then(|a| finite(a.mean_cost)),
        }
    }

    /// Where a stretch's frames are composited.
    fn place_of(s: &Segment) -> placement::Placement {
        let f = s.footprint;
        placement::Placement {
            x: f.x,
            y: f.y,
            width: f.width,
            height: f.height,
            scale: s.scale,
        }
    }

    /// The fg's stretches between caps changes fit clearly better on their own than with the
    /// whole (the fg was re-framed at a change): each stretch takes its own footprint and
    /// mapping (the whole's where its own was not found), joined into one monotonic mapping.
    fn conclude_stretches(
        &self,
        state: &mut State,
        prep: Prep,
        whole: Option<Alignment>,
        parts: Stretches<Alignment>,
        elapsed: std::time::Duration,
    ) -> Result<Output, gst::FlowError> {
        let geo = prep.geo;
        let spatial_ok = |a: &&Alignment| a.spatial_confidence >= MIN_SPATIAL_CONFIDENCE;
        let temporal_ok =
            |a: &&Alignment| spatial_ok(a) && a.temporal_confidence >= MIN_TEMPORAL_CONFIDENCE;
        let whole_place = whole.as_ref().filter(spatial_ok);
        let whole_map = whole.as_ref().filter(temporal_ok);
        let by_time = timing::map_by_time(&prep.fg_times, &prep.bg_times);
        let mut segs: Vec<Segment> = Vec::with_capacity(parts.len());
        let mut pieces: Vec<Vec<usize>> = Vec::with_capacity(parts.len());
        let mut costs: Vec<f32> = Vec::with_capacity(by_time.len());
        let mut all_by_content = true;
        let mut all_found = true;
        let mut confidence = (0.0, 0usize);
        let mut timings: Vec<(&'static str, f64)> = Vec::new();
        for a in whole
            .iter()
            .chain(parts.iter().filter_map(|p| p.1.as_ref()))
        {
            for &(k, v) in &a.timings.0 {
                match timings.iter_mut().find(|t| t.0 == k) {
                    Some(t) => t.1 += v,
                    None => timings.push((k, v)),
                }
            }
        }
        for (r, a) in &parts {
            let own_place = a.as_ref().filter(spatial_ok);
            let own_map = a.as_ref().filter(temporal_ok);
            let found = own_place.or(whole_place);
            let place = match found {
                Some(e) => placement::from_estimate(geo.fg, geo.bg, e.x, e.y, e.scale),
                None => {
                    all_found = false;
                    let place =
                        self.resolve_placement(&prep.settings, &prep.fg_info, &prep.bg_info)?;
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Failed,
                        (
                            "The content of fg frames {}..{} (between caps changes) was not found \
                             in the bg: they are placed at x={} y={} scale={:.4} and mapped by \
                             running time",
                            r.start,
                            r.end,
                            place.x,
                            place.y,
                            place.scale
                        )
                    );
                    place
                }
            };
            let slice = |v: &[usize]| v.get(r.clone()).map(<[usize]>::to_vec);
            let (piece, piece_costs) = match (own_map, whole_map) {
                (Some(a), _) if a.mapping.len() == r.len() => (a.mapping.clone(), a.costs.clone()),
                (_, Some(w)) if slice(&w.mapping).is_some() && w.costs.len() >= r.end => (
                    slice(&w.mapping).unwrap_or_default(),
                    w.costs[r.clone()].to_vec(),
                ),
                _ => {
                    all_by_content = false;
                    (
                        slice(&by_time).unwrap_or_else(|| vec![0; r.len()]),
                        vec![f32::NAN; r.len()],
                    )
                }
            };
            let used = own_map.or(whole_map);
            if let Some(u) = used {
                confidence.0 += u.temporal_confidence * r.len() as f64;
                confidence.1 += r.len();
            }
            let mut seg = Self::segment(r.start, &place, found);
            let finite: Vec<f64> = piece_costs
                .iter()
                .filter(|c| c.is_finite())
                .map(|&c| f64::from(c))
                .collect();
            seg.mean_cost =
                (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64);
            segs.push(seg);
            pieces.push(piece);
            costs.extend(piece_costs);
        }
        let refs: Vec<&[usize]> = pieces.iter().map(Vec::as_slice).collect();
        let (mapping, held) = stretches::join(&refs);
        if held > 0 {
            gst::info!(
                CAT,
                imp = self,
                "{held} fg frame(s) held on the previous stretch's last bg frame (monotonic)"
            );
        }
        for w in segs.windows(2) {
            if w[0].footprint != w[1].footprint {
                self.post_reframed(&w[0], &w[1]);
            }
        }
        let finite: Vec<f64> = costs
            .iter()
            .filter(|c| c.is_finite())
            .map(|&c| f64::from(c))
            .collect();
        let first = segs[0];
        let joined = Alignment {
            x: first.x,
            y: first.y,
            scale: first.scale,
            spatial_confidence: segs
                .iter()
                .filter_map(|s| s.spatial_confidence)
                .min_by(f64::total_cmp)
                .unwrap_or(f64::NAN),
            mapping: mapping.clone(),
            costs: costs.clone(),
            mean_cost: if finite.is_empty() {
                f64::NAN
            } else {
                finite.iter().sum::<f64>() / finite.len() as f64
            },
            temporal_confidence: if confidence.1 > 0 {
                confidence.0 / confidence.1 as f64
            } else {
                f64::NAN
            },
            rate: None,
            timings: analysis::Timings(timings),
        };
        let kind = if all_by_content {
            MappedBy::Content
        } else {
            MappedBy::RunningTime
        };
        let from = Self::footprint_from(&prep.settings, all_found);
        self.post_alignment(state, &segs, Some(&joined), &mapping, kind, from, elapsed);
        self.write_report(
            &prep.settings,
            state,
            geo,
            &segs,
            Some(&joined),
            &mapping,
            Some(&costs),
            kind,
            from,
            elapsed,
        )?;
        state.bg.thumbs.clear();
        state.fg.thumbs.clear();
        self.finish_prepare(state, prep, &segs, mapping)
    }

    /// A `vidkompy-reframed` message (offline and live): the new footprint `(x, y, scale)`
    /// with its confidence, the previous one, and the fg frame where it starts.
    fn reframed(
        new: (f64, f64, f64),
        confidence: f64,
        old: (f64, f64, f64),
        fg_frame: usize,
    ) -> Reframed {
        Reframed {
            x: new.0,
            y: new.1,
            scale: new.2,
            previous_x: old.0,
            previous_y: old.1,
            previous_scale: old.2,
            spatial_confidence: confidence,
            fg_frame: fg_frame as u64,
            fg_running_time: None,
            count: None,
        }
    }

    /// Posts `vidkompy-reframed` for a fg re-framed at a caps change, found offline.
    fn post_reframed(&self, old: &Segment, new: &Segment) {
        let m = Self::reframed(
            (new.x, new.y, new.scale),
            new.spatial_confidence.unwrap_or(f64::NAN),
            (old.x, old.y, old.scale),
            new.from,
        );
        gst::info!(
            CAT,
            imp = self,
            "the fg was re-framed at its caps change: {m:?}"
        );
        let _ = self.obj().post_message(m.to_message(&*self.obj()));
    }

    /// Stretches of the fg between its caps changes (offline), each analysed on its own too:
    /// the fg may have been re-framed there. None when the user fixed the footprint.
    fn fg_stretches(state: &State, prep: &Prep) -> Vec<std::ops::Range<usize>> {
        let c = prep.settings.constraints();
        if c.x.is_some() && c.y.is_some() && c.scale.is_some() {
            return Vec::new();
        }
        stretches::stretches(state.fg.times.len(), &state.fg.changed_at)
    }

    /// The coarse stages, for the whole and for each stretch.
    fn begin_all(
        &self,
        state: &State,
        prep: &Prep,
        stretches: &[std::ops::Range<usize>],
    ) -> Result<(Option<analysis::Begun>, Stretches<analysis::Begun>), crate::align::Cancelled>
    {
        let backend = self.compute();
        let input = Self::input(state, prep, backend.kernels());
        let whole = analysis::begin(&input, &self.cancel)?;
        let parts = stretches
            .iter()
            .zip(stretches::worth_analysing(stretches))
            .map(|(r, worth)| {
                if !worth {
                    return Ok((r.clone(), None));
                }
                let part = StretchThumbs::new(&state.fg.thumbs, r.clone());
                let input = analysis::Input { fg: &part, ..input };
                Ok((r.clone(), analysis::begin(&input, &self.cancel)?))
            })
            .collect::<Result<_, _>>()?;
        Ok((whole, parts))
    }

    /// The fine stages, for the whole and for each stretch; `luma` as [`analysis::finish`]
    /// takes it, by frame indices of the whole.
    fn finish_all(
        &self,
        state: &State,
        prep: &Prep,
        begun: Option<analysis::Begun>,
        parts: Stretches<analysis::Begun>,
        luma: &analysis::Luma<'_>,
    ) -> Result<(Option<Alignment>, Stretches<Alignment>), crate::align::Cancelled> {
        let backend = self.compute();
        let input = Self::input(state, prep, backend.kernels());
        let whole = begun
            .map(|b| analysis::finish(&input, b, luma, &self.cancel))
            .transpose()?;
        let parts = parts
            .into_iter()
            .map(|(r, b)| {
                let part = StretchThumbs::new(&state.fg.thumbs, r.clone());
                let input = analysis::Input { fg: &part, ..input };
                let from = r.start;
                let luma = |side: Side, i: usize| match side {
                    Side::Fg => luma(side, i + from),
                    Side::Bg => luma(side, i),
                };
                let a = b
                    .map(|b| analysis::finish(&input, b, &luma, &self.cancel))
                    .transpose()?;
                Ok((r, a))
            })
            .collect::<Result<_, _>>()?;
        Ok((whole, parts))
    }

    /// Both pads are at EOS after the first pass. Store mode: the whole analysis and the
    /// output plan. Two-pass mode: the coarse analysis, then a rewind (to fetch the frames the
    /// refinement needs, or straight to output).
    fn end_of_first_pass(&self, state: &mut State) -> Result<(), gst::FlowError> {
        let prep = self.prep(state)?;
        let started = std::time::Instant::now();
        let two_pass = state.mode == Mode::TwoPass;
        if let Some((path, report)) = state.loaded.take() {
            // The alignment made before a seek, found again by timestamp; where it does not
            // cover what was read, the alignment is made again from here.
            let reuse = match state.reused {
                Some(_) if Self::report_by_pts(&report, state).is_none() => {
                    gst::info!(
                        CAT,
                        imp = self,
                        "the alignment made before the seek does not cover the frames read: \
                         aligning again"
                    );
                    state.reused = None;
                    false
                }
                _ => true,
            };
            if reuse {
                let out = self.conclude_loaded(state, prep, &path, &report, started);
                // Kept for the next flush (a seek): its entries are found by timestamp then.
                state.loaded = Some((path, report));
                let out = out?;
                state.output = Some(out);
                return Ok(());
            }
        }
        #[cfg(debug_assertions)]
        self.test_slow_analysis()?;
        let stretches = Self::fg_stretches(state, &prep);
        if !stretches.is_empty() {
            gst::info!(
                CAT,
                imp = self,
                "the fg's caps changed: its stretches {stretches:?} are analysed on their own too"
            );
        }
        if !two_pass {
            let result = self.with_ticker(started, std::time::Duration::ZERO, || {
                let luma = |side: Side, i: usize| {
                    let ps = match side {
                        Side::Bg => &state.bg,
                        Side::Fg => &state.fg,
                    };
                    // As two-pass mode fetches it, so that both give the same result.
                    let buffer = ps.store.buffer(i).ok()?;
                    with_luma(&buffer, ps.info.as_ref()?, Thumb::full).map(Arc::new)
                };
                let (begun, parts) = self.begin_all(state, &prep, &stretches)?;
                self.finish_all(state, &prep, begun, parts, &luma)
            });
            let (alignment, parts) = self.analysed(state, result)?;
            let out = self.conclude(state, prep, alignment, parts, started.elapsed())?;
            state.output = Some(out);
            return Ok(());
        }
        let begun = self.with_ticker(started, std::time::Duration::ZERO, || {
            self.begin_all(state, &prep, &stretches)
        });
        self.thumbs_read(state)?;
        self.device_fallback();
        let Ok((begun, parts)) = begun else {
            gst::debug!(CAT, imp = self, "analysis cancelled");
            return Err(gst::FlowError::Flushing);
        };
        let mut wanted = begun.as_ref().map(|b| b.wanted.clone()).unwrap_or_default();
        for (r, b) in &parts {
            if let Some(b) = b {
                wanted.add(&b.wanted, r.start);
            }
        }
        if !wanted.fg.is_empty() {
            gst::debug!(
                CAT,
                imp = self,
                "fetching fg frames {:?} and bg frames {:?} in a second pass",
                wanted.fg,
                wanted.bg
            );
            state.fetch = Some(Box::new(Fetch {
                begun,
                parts,
                wanted,
                prep,
                started: std::time::Instant::now(),
                spent: started.elapsed(),
            }));
            return Ok(());
        }
        let none = |_: Side, _: usize| None;
        let result = self.with_ticker(started, std::time::Duration::ZERO, || {
            self.finish_all(state, &prep, begun, parts, &none)
        });
        let (alignment, parts) = self.analysed(state, result)?;
        let out = self.conclude(state, prep, alignment, parts, started.elapsed())?;
        state.output = Some(out);
        Ok(())
    }

    /// The second pass of two-pass mode has all the frames refinement needs: the fine
    /// analysis and the output plan.
    fn end_of_fetch(&self, state: &mut State) -> Result<(), gst::FlowError> {
        let Some(fetch) = state.fetch.take() else {
            return Err(gst::FlowError::Error);
        };
        let Fetch {
            begun,
            parts,
            prep,
            started,
            spent,
            ..
        } = *fetch;
        gst::debug!(CAT, imp = self, "fetch pass took {:?}", started.elapsed());
        // Analysis time: the first pass's part and this one, not the reading in between.
        let started = std::time::Instant::now();
        let result = self.with_ticker(started, spent, || {
            let luma = |side: Side, i: usize| {
                let ps = match side {
                    Side::Bg => &state.bg,
                    Side::Fg => &state.fg,
                };
                ps.fetched.get(&i).cloned()
            };
            self.finish_all(state, &prep, begun, parts, &luma)
        });
        let (alignment, parts) = self.analysed(state, result)?;
        state.bg.fetched.clear();
        state.fg.fetched.clear();
        let out = self.conclude(state, prep, alignment, parts, spent + started.elapsed())?;
        state.output = Some(out);
        Ok(())
    }

    fn analysed<T: std::fmt::Debug>(
        &self,
        state: &State,
        result: Result<T, crate::align::Cancelled>,
    ) -> Result<T, gst::FlowError> {
        let result = result.map_err(|_| {
            gst::debug!(CAT, imp = self, "analysis cancelled");
            gst::FlowError::Flushing
        })?;
        self.thumbs_read(state)?;
        self.device_fallback();
        gst::info!(CAT, imp = self, "analysis: {result:?}");
        Ok(result)
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

    /// An element error if a thumbnail could not be read back from its spill file during the
    /// analysis (it was analysed as a flat frame, so the result cannot be trusted).
    fn thumbs_read(&self, state: &State) -> Result<(), gst::FlowError> {
        for (name, ps) in [("bg", &state.bg), ("fg", &state.fg)] {
            if let Some(why) = ps.thumbs.read_failure() {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("Analysis of pad {name} failed: {why}")
                );
                return Err(gst::FlowError::Error);
            }
        }
        if let Some(why) = state.features.read_failure() {
            gst::element_imp_error!(self, gst::ResourceError::Read, ("Analysis failed: {why}"));
            return Err(gst::FlowError::Error);
        }
        if let Some(why) = state.features.write_failure() {
            gst::warning!(CAT, imp = self, "features kept in memory: {why}");
        }
        Ok(())
    }

    /// The output plan once footprint and mapping are decided.
    fn finish_prepare(
        &self,
        state: &State,
        prep: Prep,
        segs: &[Segment],
        mapping: Vec<usize>,
    ) -> Result<Output, gst::FlowError> {
        let (fg_info, bg_info) = (&prep.fg_info, &prep.bg_info);
        let layouts = plane_layouts(bg_info).ok_or(gst::FlowError::NotNegotiated)?;
        let mut pieces = std::collections::VecDeque::with_capacity(segs.len());
        for seg in segs {
            let place = Self::place_of(seg);
            pieces.push_back(StretchOutput {
                from: seg.from,
                converter: self.make_converter(fg_info, bg_info, &place)?,
                overlay: Overlay::new(
                    place.x,
                    place.y,
                    place.width,
                    place.height,
                    (bg_info.width(), bg_info.height()),
                    prep.settings.blend_width,
                ),
            });
        }
        let Some(first) = pieces.pop_front() else {
            return Err(gst::FlowError::Error);
        };
        let StretchOutput {
            overlay, converter, ..
        } = first;
        gst::info!(
            CAT,
            imp = self,
            "{} fg frames over {} bg frames (bg {}..={}), footprints {:?}, converter: {}",
            mapping.len(),
            state.bg.times.len(),
            mapping.first().copied().unwrap_or(0),
            mapping.last().copied().unwrap_or(0),
            segs.iter()
                .map(|s| (s.from, s.footprint))
                .collect::<Vec<_>>(),
            converter.is_some()
        );
        // The line of an alignment reused after a seek covers only what was read: the whole
        // one stays.
        if state.reused.is_none() {
            self.record_line(state, &mapping);
        }
        let pool = output_pool(&prep.caps, &prep.info);
        Ok(Output {
            info: prep.info,
            layouts,
            overlay,
            mapping,
            next: 0,
            converter,
            upcoming: pieces,
            streaming: (state.mode == Mode::TwoPass).then(Streaming::default),
            pool,
            pending: Some((prep.caps, state.fg.first_segment.clone())),
        })
    }

    /// Debug builds only: lets `tests/passes.rs` stand in for a long analysis. The element
    /// named by `VIDKOMPY_TEST_SLOW_ANALYSIS`, at the first analysis of the process, posts the
    /// analysis's progress and waits until it is cancelled (30 s at most, then a warning).
    #[cfg(debug_assertions)]
    fn test_slow_analysis(&self) -> Result<(), gst::FlowError> {
        static SLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let named = std::env::var_os("VIDKOMPY_TEST_SLOW_ANALYSIS")
            .is_some_and(|v| v == self.obj().name().as_str());
        if !named || SLOWED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.post_progress(Progress::Analysis {
            elapsed: gst::ClockTime::ZERO,
        });
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.cancel.is_cancelled() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if self.cancel.is_cancelled() {
            return Err(gst::FlowError::Flushing);
        }
        gst::element_imp_warning!(
            self,
            gst::CoreError::Failed,
            ("VIDKOMPY_TEST_SLOW_ANALYSIS: the analysis was not cancelled within 30 s")
        );
        Ok(())
    }

    /// Posts a `vidkompy-progress` element message.
    fn post_progress(&self, p: Progress) {
        gst::debug!(CAT, imp = self, "{p:?}");
        let _ = self.obj().post_message(p.to_message(&*self.obj()));
    }

    /// Whether a progress message is due (and marks it posted).
    fn progress_due(state: &mut State, force: bool) -> bool {
        let due = force
            || state
                .last_progress
                .is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL);
        if due {
            state.last_progress = Some(std::time::Instant::now());
        }
        due
    }

    /// Progress of the reading stage.
    fn reading_progress(&self, state: &mut State, force: bool) {
        if !Self::progress_due(state, force) {
            return;
        }
        let (fg, bg) = (state.fg.times.len() as u64, state.bg.times.len() as u64);
        // Upstream's duration over the fg's frame duration, when both are known.
        let total = state
            .fg_duration
            .zip(state.fg.info.as_ref().map(|i| i.fps()))
            .filter(|(_, fps)| fps.numer() > 0)
            .and_then(|(d, fps)| {
                d.nseconds()
                    .checked_mul(fps.numer() as u64)
                    .map(|n| n / (fps.denom() as u64 * 1_000_000_000))
            });
        self.post_progress(Progress::Reading {
            done: fg,
            bg_frames: bg,
            total,
        });
    }

    /// Where a footprint came from, `found` in the content or not.
    fn footprint_from(settings: &Settings, found: bool) -> FootprintFrom {
        let c = settings.constraints();
        if c.x.is_some() && c.y.is_some() && c.scale.is_some() {
            FootprintFrom::Properties
        } else if found {
            FootprintFrom::Content
        } else {
            FootprintFrom::Fallback
        }
    }

    /// Posts the `vidkompy-alignment` element message.
    #[allow(clippy::too_many_arguments)]
    fn post_alignment(
        &self,
        state: &State,
        segs: &[Segment],
        a: Option<&Alignment>,
        mapping: &[usize],
        kind: MappedBy,
        from: FootprintFrom,
        elapsed: std::time::Duration,
    ) {
        let nan = f64::NAN;
        let Some(first) = segs.first() else {
            return;
        };
        let footprint = |f: &report::Footprint| messages::Footprint {
            x: f.x,
            y: f.y,
            width: f.width,
            height: f.height,
        };
        let segments = segs
            .iter()
            .map(|s| messages::Segment {
                fg_frame: s.from as u64,
                x: s.x,
                y: s.y,
                scale: s.scale,
                footprint: footprint(&s.footprint),
                spatial_confidence: s.spatial_confidence.unwrap_or(nan),
                mean_cost: s.mean_cost.unwrap_or(nan),
            })
            .collect();
        let first_bg = mapping.first().copied().unwrap_or(0);
        // The first stretch's footprint (the only one, unless the fg was re-framed).
        let m = messages::Alignment {
            x: first.x,
            y: first.y,
            scale: first.scale,
            footprint: footprint(&first.footprint),
            footprint_from: from,
            spatial_confidence: a.map_or(nan, |a| a.spatial_confidence),
            temporal_confidence: a.map_or(nan, |a| a.temporal_confidence),
            mean_cost: a.map_or(nan, |a| a.mean_cost),
            first_bg_frame: first_bg as u64,
            last_bg_frame: mapping.last().copied().unwrap_or(0) as u64,
            first_bg_time: Self::stream_time(&state.bg, first_bg),
            fg_frames: mapping.len() as u64,
            rate: a.and_then(|a| a.rate).unwrap_or(nan),
            mapping: kind,
            frames: match state.mode {
                Mode::TwoPass => Frames::ReadAgain,
                Mode::Live => Frames::Live,
                _ => Frames::Stored,
            },
            stored_bytes: (state.bg.store.owned_bytes() + state.fg.store.owned_bytes()) as u64,
            spilled_bytes: state.bg.store.spilled_bytes() + state.fg.store.spilled_bytes(),
            spilled_thumbnail_bytes: state.bg.thumbs.spilled_bytes()
                + state.fg.thumbs.spilled_bytes(),
            spilled_feature_bytes: state.features.spilled_bytes(),
            device: self.compute().name().to_string(),
            analysis_time: gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64),
            segments,
        };
        let msg = m.to_message(&*self.obj());
        gst::info!(CAT, imp = self, "{:?}", msg.structure());
        let _ = self.obj().post_message(msg);
    }

    /// The stream time of a pad's frame `i` of the first pass (offline), where it has a
    /// timestamp.
    fn stream_time(ps: &PadState, i: usize) -> Option<gst::ClockTime> {
        let pts = ps.times.get(i)?.pts?;
        ps.first_segment.as_ref()?.to_stream_time(pts)
    }

    /// Frame counts and sizes of both streams, as a report describes them.
    fn streams(state: &State, geo: Geometry) -> (report::Stream, report::Stream) {
        let s = |(width, height): (u32, u32), frames| report::Stream {
            width,
            height,
            frames,
        };
        (
            s(geo.fg, state.fg.times.len()),
            s(geo.bg, state.bg.times.len()),
        )
    }

    /// Footprint and mapping from a loaded report, checked against the streams.
    fn use_report(
        &self,
        path: &std::path::Path,
        report: &Report,
        state: &State,
        geo: Geometry,
    ) -> Result<(Vec<Segment>, Alignment), gst::FlowError> {
        let (mut fg, mut bg) = Self::streams(state, geo);
        // After a seek only part of the streams is read: the report's entries are then found
        // by the frames' timestamps. Otherwise the frame counts must fit (most files start at
        // timestamp 0: timestamps alone do not tell another file from the report's).
        let by_pts =
            if state.from_seek && (fg.frames, bg.frames) != (report.fg.frames, report.bg.frames) {
                Self::report_by_pts(report, state)
            } else {
                None
            };
        if state.from_seek {
            gst::debug!(
                CAT,
                imp = self,
                "report entries found by timestamp: {}",
                by_pts.is_some()
            );
        }
        if by_pts.is_some() {
            (fg.frames, bg.frames) = (report.fg.frames, report.bg.frames);
            // Read from a seek, the fg may be in caps it changed to later (the report has
            // its first ones): the footprints are in bg pixels, and the fg is converted to them
            // from whatever size it has.
            (fg.width, fg.height) = (report.fg.width, report.fg.height);
        }
        report.check_fits(path, fg, bg).map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{e}"));
            gst::FlowError::Error
        })?;
        let mut segs = if report.segments.is_empty() {
            vec![Segment {
                from: 0,
                x: report.x,
                y: report.y,
                scale: report.scale,
                footprint: report.footprint,
                spatial_confidence: report.spatial_confidence,
                mean_cost: report.mean_cost,
            }]
        } else {
            report.segments.clone()
        };
        if let Some(m) = &by_pts {
            // The segments by the frames read: each read frame's entry says which it is in.
            let mut read: Vec<Segment> = Vec::new();
            let mut last = None;
            for (k, &(e, _)) in m.iter().enumerate() {
                let s = segs.partition_point(|s| s.from <= e).saturating_sub(1);
                if last != Some(s) {
                    read.push(Segment { from: k, ..segs[s] });
                    last = Some(s);
                }
            }
            segs = read;
        }
        let nan = f64::NAN;
        let alignment = Alignment {
            x: report.x,
            y: report.y,
            scale: report.scale,
            spatial_confidence: report.spatial_confidence.unwrap_or(nan),
            costs: match &by_pts {
                Some(m) => m
                    .iter()
                    .map(|&(e, _)| report.frames[e].cost.unwrap_or(f32::NAN))
                    .collect(),
                None => report
                    .frames
                    .iter()
                    .map(|e| e.cost.unwrap_or(f32::NAN))
                    .collect(),
            },
            mapping: match &by_pts {
                Some(m) => m.iter().map(|&(_, j)| j).collect(),
                None => report.frames.iter().map(|e| e.bg).collect(),
            },
            mean_cost: report.mean_cost.unwrap_or(nan),
            temporal_confidence: report.temporal_confidence.unwrap_or(nan),
            rate: None,
            timings: Default::default(),
        };
        gst::info!(CAT, imp = self, "alignment loaded from {}", path.display());
        Ok((segs, alignment))
    }

    /// For each fg frame read, its report entry and the bg frame read that has the entry's bg
    /// timestamp (the nearest later one, else the last); `None` unless every fg frame read has
    /// an entry (by timestamp, within half a frame: containers round timestamps, and a source
    /// may offset them differently after a seek) and the bg read reaches back to the first one
    /// needed.
    fn report_by_pts(report: &Report, state: &State) -> Option<Vec<(usize, usize)>> {
        let mut entries: Vec<(u64, usize)> = report
            .frames
            .iter()
            .enumerate()
            .filter_map(|(k, e)| Some((e.fg_pts?, k)))
            .collect();
        entries.sort_unstable();
        let keys: Vec<u64> = entries.iter().map(|e| e.0).collect();
        let fg_tol = timing::half_step(&keys);
        let bg_pts: Vec<u64> = state
            .bg
            .times
            .iter()
            .map(|t| t.pts.map(|p| p.nseconds()))
            .collect::<Option<_>>()?;
        if bg_pts.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let bg_tol = timing::half_step(&bg_pts);
        let (&first, &last) = (bg_pts.first()?, bg_pts.last()?);
        let mut out = Vec::with_capacity(state.fg.times.len());
        for t in &state.fg.times {
            let at = timing::nearest(&keys, t.pts?.nseconds(), fg_tol)?;
            let k = entries.get(at)?.1;
            let b = report.frames.get(k)?.bg_pts?;
            if b.saturating_add(bg_tol) < first {
                return None;
            }
            let j = if b > last {
                bg_pts.len() - 1
            } else {
                timing::nearest(&bg_pts, b, bg_tol)
                    .unwrap_or_else(|| bg_pts.partition_point(|&p| p < b))
            };
            out.push((k, j));
        }
        (!out.is_empty()).then_some(out)
    }

    /// Writes the `report` file, when one is asked for.
    #[allow(clippy::too_many_arguments)]
    fn write_report(
        &self,
        settings: &Settings,
        state: &State,
        geo: Geometry,
        segs: &[Segment],
        a: Option<&Alignment>,
        mapping: &[usize],
        costs: Option<&[f32]>,
        kind: MappedBy,
        from: FootprintFrom,
        elapsed: std::time::Duration,
    ) -> Result<(), gst::FlowError> {
        let pts =
            |ps: &PadState, i: usize| ps.times.get(i).and_then(|t| t.pts).map(|t| t.nseconds());
        let frames = mapping
            .iter()
            .enumerate()
            .map(|(i, &j)| report::Entry {
                fg: i,
                fg_pts: pts(&state.fg, i),
                bg: j,
                bg_pts: pts(&state.bg, j),
                cost: costs
                    .and_then(|c| c.get(i).copied())
                    .filter(|c| c.is_finite()),
            })
            .collect();
        let streams = Self::streams(state, geo);
        let report = self.make_report(streams, segs, a, frames, kind, elapsed)?;
        self.write_report_files(settings, &report)?;
        // Kept for a flushing seek: the output after it reuses this alignment.
        *lock(&self.made) = Some(Made { report, kind, from });
        Ok(())
    }

    /// Writes the report (when `report` is set): the first segment's footprint, `a`'s
    /// confidences and timings, and `frames`; and its picture (when `plot` is set).
    #[allow(clippy::too_many_arguments)]
    fn write_report_of(
        &self,
        settings: &Settings,
        (fg, bg): (report::Stream, report::Stream),
        segs: &[Segment],
        a: Option<&Alignment>,
        frames: Vec<report::Entry>,
        kind: MappedBy,
        elapsed: std::time::Duration,
    ) -> Result<(), gst::FlowError> {
        if settings.report.is_none() && settings.plot.is_none() {
            return Ok(());
        }
        let report = self.make_report((fg, bg), segs, a, frames, kind, elapsed)?;
        self.write_report_files(settings, &report)
    }

    /// The report document of an alignment.
    fn make_report(
        &self,
        (fg, bg): (report::Stream, report::Stream),
        segs: &[Segment],
        a: Option<&Alignment>,
        frames: Vec<report::Entry>,
        kind: MappedBy,
        elapsed: std::time::Duration,
    ) -> Result<Report, gst::FlowError> {
        let Some(first) = segs.first() else {
            return Err(gst::FlowError::Error);
        };
        let finite = |v: f64| v.is_finite().then_some(v);
        Ok(Report {
            version: report::VERSION,
            fg,
            bg,
            // The first stretch's footprint (the only one, unless the fg was re-framed).
            x: first.x,
            y: first.y,
            scale: first.scale,
            footprint: first.footprint,
            spatial_confidence: a.and_then(|a| finite(a.spatial_confidence)),
            temporal_confidence: a.and_then(|a| finite(a.temporal_confidence)),
            mean_cost: a.and_then(|a| finite(a.mean_cost)),
            mapping: kind.to_string(),
            device: self.compute().name().to_string(),
            analysis_seconds: elapsed.as_secs_f64(),
            timings: a
                .map(|a| {
                    a.timings
                        .0
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect()
                })
                .unwrap_or_default(),
            segments: if segs.len() > 1 {
                segs.to_vec()
            } else {
                Vec::new()
            },
            frames,
        })
    }

    /// Writes `report` where `report` says, and its picture where `plot` says.
    fn write_report_files(
        &self,
        settings: &Settings,
        report: &Report,
    ) -> Result<(), gst::FlowError> {
        if let Some(path) = settings.report.as_deref() {
            let path = std::path::Path::new(path);
            report.write(path).map_err(|e| {
                gst::element_imp_error!(self, gst::ResourceError::OpenWrite, ("{e}"));
                gst::FlowError::Error
            })?;
            gst::info!(CAT, imp = self, "report written to {}", path.display());
        }
        if let Some(path) = settings.plot.as_deref() {
            let path = std::path::Path::new(path);
            crate::plot::write_svg(report, path).map_err(|e| {
                gst::element_imp_error!(self, gst::ResourceError::OpenWrite, ("{e}"));
                gst::FlowError::Error
            })?;
            gst::info!(CAT, imp = self, "plot drawn into {}", path.display());
        }
        Ok(())
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

    /// A converter from the fg to the bg's format at the footprint's size, when they differ.
    fn make_converter(
        &self,
        fg: &gst_video::VideoInfo,
        bg: &gst_video::VideoInfo,
        place: &placement::Placement,
    ) -> Result<Option<Converter>, gst::FlowError> {
        let out = gst_video::VideoInfo::builder(bg.format(), place.width, place.height)
            .fps(fg.fps())
            .par(fg.par())
            .colorimetry(&bg.colorimetry())
            .chroma_site(bg.chroma_site())
            .interlace_mode(fg.interlace_mode())
            .build()
            .map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Cannot describe the fg's footprint: {e}")
                );
                gst::FlowError::Error
            })?;
        let same = fg.format() == out.format()
            && fg.width() == out.width()
            && fg.height() == out.height()
            && fg.colorimetry() == out.colorimetry();
        if same {
            return Ok(None);
        }
        let mut config = gst_video::VideoConverterConfig::new();
        config.set_fill_border(false);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        config.set_threads(threads as u32);
        let converter = gst_video::VideoConverter::new(fg, &out, Some(config)).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                (
                    "Cannot convert the fg ({:?} {}x{}) to the bg's format ({:?} {}x{}): {e}",
                    fg.format(),
                    fg.width(),
                    fg.height(),
                    out.format(),
                    out.width(),
                    out.height()
                )
            );
            gst::FlowError::Error
        })?;
        gst::debug!(CAT, imp = self, "converting fg {fg:?} -> {out:?}");
        Ok(Some(Converter {
            converter,
            scratch: None,
        }))
    }

    /// Renders output frame `i`: the mapped bg frame with fg frame `i` composited on it.
    fn render(
        &self,
        state: &mut State,
        i: usize,
        bg_buf: gst::Buffer,
        fg_buf: gst::Buffer,
        fg_times: (Option<gst::ClockTime>, Option<gst::ClockTime>),
    ) -> Result<gst::Buffer, gst::FlowError> {
        let fail = |what: &str| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Cannot render frame {i}: {what}")
            );
            gst::FlowError::Error
        };
        let (Some(bg_info), Some(fg_info)) = (state.bg.info.clone(), state.fg.info.clone()) else {
            return Err(gst::FlowError::Error);
        };
        let Some(out) = state.output.as_mut() else {
            return Err(gst::FlowError::Error);
        };
        while out.upcoming.front().is_some_and(|p| p.from <= i) {
            if let Some(p) = out.upcoming.pop_front() {
                gst::debug!(CAT, imp = self, "fg frame {i}: footprint {:?}", p.overlay);
                out.overlay = p.overlay;
                out.converter = p.converter;
            }
        }

        let bg_frame = gst_video::VideoFrame::from_buffer_readable(bg_buf, &bg_info)
            .map_err(|_| fail("bg buffer does not match its caps"))?;
        let pooled = out.pool.as_ref().and_then(|p| p.acquire_buffer(None).ok());
        let out_buf = match pooled {
            Some(b) => b,
            None => gst::Buffer::with_size(out.info.size())
                .map_err(|_| fail("cannot allocate the output buffer"))?,
        };
        let mut out_frame = gst_video::VideoFrame::from_buffer_writable(out_buf, &out.info)
            .map_err(|_| fail("cannot map the output buffer"))?;
        bg_frame
            .copy(&mut out_frame)
            .map_err(|_| fail("cannot copy the bg frame"))?;
        drop(bg_frame);

        let fg_frame = gst_video::VideoFrame::from_buffer_readable(fg_buf, &fg_info)
            .map_err(|_| fail("fg buffer does not match its caps"))?;
        let converted = match out.converter.as_mut() {
            Some(c) => {
                let conv_info = c.converter.out_info().clone();
                let scratch = match c.scratch.take() {
                    Some(b) => b,
                    None => gst::Buffer::with_size(conv_info.size())
                        .map_err(|_| fail("cannot allocate the conversion buffer"))?,
                };
                let mut dst = gst_video::VideoFrame::from_buffer_writable(scratch, &conv_info)
                    .map_err(|_| fail("cannot map the conversion buffer"))?;
                c.converter.frame(&fg_frame, &mut dst);
                Some(dst)
            }
            None => None,
        };

        {
            let src_planes: Vec<PlaneRef> = match &converted {
                Some(f) => (0..f.n_planes())
                    .map(|p| PlaneRef {
                        data: f.plane_data(p).unwrap_or(&[]),
                        stride: f.plane_stride()[p as usize] as usize,
                    })
                    .collect(),
                None => (0..fg_frame.n_planes())
                    .map(|p| PlaneRef {
                        data: fg_frame.plane_data(p).unwrap_or(&[]),
                        stride: fg_frame.plane_stride()[p as usize] as usize,
                    })
                    .collect(),
            };
            let n = out_frame.n_planes() as usize;
            let strides: Vec<usize> = out_frame.plane_stride()[..n]
                .iter()
                .map(|&s| s as usize)
                .collect();
            let mut dst_planes: Vec<PlaneMut> = out_frame
                .planes_data_mut()
                .into_iter()
                .take(n)
                .zip(strides)
                .map(|(data, stride)| PlaneMut { data, stride })
                .collect();
            self.compute()
                .composite(
                    &out.layouts,
                    (bg_info.width(), bg_info.height()),
                    &mut dst_planes,
                    &src_planes,
                    &out.overlay,
                )
                .map_err(|e| fail(&e.to_string()))?;
        }
        if let (Some(c), Some(f)) = (out.converter.as_mut(), converted) {
            c.scratch = Some(f.into_buffer());
        }

        let mut buffer = out_frame.into_buffer();
        {
            let b = buffer.make_mut();
            b.set_pts(fg_times.0);
            b.set_duration(fg_times.1);
            if i == 0 {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        Ok(buffer)
    }

    /// Two passes when both inputs can seek (and the analysis needs no frame beyond those a
    /// second pass fetches); otherwise frames are stored.
    fn decide_mode(&self) -> Mode {
        let settings = lock(&self.settings).clone();
        // Seekable over a known range: a source that can seek but does not know where it
        // ends (videotestsrc, some live-like chains) may deliver nothing when read again.
        let seekable = |pad: &gst_base::AggregatorPad| {
            let mut q = gst::query::Seeking::new(gst::Format::Time);
            if !pad.peer_query(&mut q) {
                return false;
            }
            let (seekable, _, end) = q.result();
            seekable && end.value() > 0
        };
        let (bg, fg) = (seekable(&self.bg_pad), seekable(&self.fg_pad));
        let mode =
            if settings.two_pass && settings.match_region == MatchRegion::Footprint && bg && fg {
                Mode::TwoPass
            } else {
                Mode::Store
            };
        gst::info!(
            CAT,
            imp = self,
            "{mode:?} (two-pass {}, match-region {:?}, seekable: bg {bg}, fg {fg})",
            settings.two_pass,
            settings.match_region
        );
        mode
    }

    /// Sets the output caps and segment before the first output frame.
    fn start_output(
        &self,
        caps: gst::Caps,
        segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if let Some(seg) = segment {
            self.obj().update_segment(&seg);
        }
        let src = self.obj().src_pad().clone();
        if src.peer().is_some() && !src.peer_query_accept_caps(&caps) {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream does not accept the output caps {caps}")
            );
            return Err(gst::FlowError::Error);
        }
        gst::info!(CAT, imp = self, "output caps {caps}");
        self.obj().set_src_caps(&caps);
        Ok(gst::FlowSuccess::Ok)
    }

    /// Posts output progress for fg frame `i` when due.
    fn output_progress(&self, state: &mut State, i: usize, total: usize) {
        if Self::progress_due(state, i == 0 || i + 1 == total) {
            self.post_progress(Progress::Output {
                done: (i + 1) as u64,
                total: total as u64,
            });
        }
    }

    /// The next output frame from the store.
    fn next_stored(&self, state: &mut State) -> Result<gst::Buffer, gst::FlowError> {
        let Some(out) = state.output.as_mut() else {
            return Err(gst::FlowError::Error);
        };
        let i = out.next;
        let total = out.mapping.len();
        if i >= total {
            gst::debug!(CAT, imp = self, "all {i} fg frames output");
            return Err(gst::FlowError::Eos);
        }
        out.next += 1;
        let j = out.mapping[i];
        self.output_progress(state, i, total);
        let frames = state
            .bg
            .store
            .buffer(j)
            .and_then(|bg| Ok((bg, state.fg.store.buffer(i)?)));
        let ((bg, fg), Some(t)) = (
            frames.map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("Cannot render frame {i}: {e}")
                );
                gst::FlowError::Error
            })?,
            state.fg.times.get(i).copied(),
        ) else {
            return Err(gst::FlowError::Error);
        };
        self.render(state, i, bg, fg, (t.pts, t.duration))
    }

    /// The next output frame of two-pass mode, from the frames read again; `None` while a
    /// pad has to deliver more.
    fn next_streamed(&self, state: &mut State) -> Result<Option<gst::Buffer>, gst::FlowError> {
        let Some(out) = state.output.as_mut() else {
            return Err(gst::FlowError::Error);
        };
        let (i, total) = (out.next, out.mapping.len());
        if !self.fg_pad.has_buffer() {
            if !self.fg_pad.is_eos() {
                return Ok(None);
            }
            if i < total {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("The fg ended after {i} frames when read again; the first pass read \
                         {total}")
                );
                return Err(gst::FlowError::Error);
            }
            gst::debug!(CAT, imp = self, "all {i} fg frames output");
            return Err(gst::FlowError::Eos);
        }
        if i >= total {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("The fg has more than the {total} frames of the first pass when read again")
            );
            return Err(gst::FlowError::Error);
        }
        let j = out.mapping[i];
        let State {
            output,
            bg: bg_state,
            fg: fg_state,
            ..
        } = &mut *state;
        let Some(out) = output.as_mut() else {
            return Err(gst::FlowError::Error);
        };
        let Some(streaming) = out.streaming.as_mut() else {
            return Err(gst::FlowError::Error);
        };
        // Read the bg up to frame j; the frame before it stays the current one.
        while streaming.current.as_ref().is_none_or(|(k, _)| *k < j) {
            match self.pop(&self.bg_pad, bg_state)? {
                Some(b) => {
                    let k = self.pass_index(bg_state, &b, "bg")?;
                    streaming.current = Some((k, b));
                }
                None if self.bg_pad.is_eos() => {
                    if streaming.current.is_none() {
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Failed,
                            ("The bg delivered no frame when read again")
                        );
                        return Err(gst::FlowError::Error);
                    }
                    gst::warning!(CAT, imp = self, "bg ended before frame {j}: its last frame");
                    break;
                }
                None => return Ok(None),
            }
        }
        let Some(fg) = self.pop(&self.fg_pad, fg_state)? else {
            return Ok(None);
        };
        let k = self.pass_index(fg_state, &fg, "fg")?;
        if k != i {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Read again, the fg's frame {i} is the first pass's frame {k}")
            );
            return Err(gst::FlowError::Error);
        }
        let Some(bg) = streaming.current.as_ref().map(|(_, b)| b.clone()) else {
            return Err(gst::FlowError::Error);
        };
        out.next += 1;
        self.output_progress(state, i, total);
        let t = state.fg.times.get(i).copied().unwrap_or_default();
        self.render(state, i, bg, fg, (t.pts, t.duration)).map(Some)
    }

    /// The first pass's index of a frame read again: by its PTS where there is one (a seek
    /// need not land on the very first frame), else by counting.
    fn pass_index(
        &self,
        ps: &mut PadState,
        buffer: &gst::Buffer,
        name: &str,
    ) -> Result<usize, gst::FlowError> {
        let k = ps.pass_frames;
        let first = |i: usize| ps.times.get(i).and_then(|t| t.pts);
        let index = match buffer.pts() {
            Some(pts) if first(k).is_some() && first(k) != Some(pts) => {
                match ps.times.iter().position(|t| t.pts == Some(pts)) {
                    Some(i) => i,
                    None => {
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Failed,
                            ("Pad {name}: read again from the start, upstream delivered a \
                                 frame at {pts} that the first pass did not have")
                        );
                        return Err(gst::FlowError::Error);
                    }
                }
            }
            _ => k,
        };
        ps.pass_frames = index + 1;
        Ok(index)
    }

    /// One step of the fetch pass: the frames refinement needs are kept at full resolution.
    /// `true` once all are in (or both pads ended).
    fn fetch_step(&self, state: &mut State) -> Result<bool, gst::FlowError> {
        let State { fetch, bg, fg, .. } = &mut *state;
        let Some(fetch) = fetch.as_ref() else {
            return Err(gst::FlowError::Error);
        };
        let wanted = &fetch.wanted;
        for (pad, side, name) in [
            (&self.bg_pad, Side::Bg, "bg"),
            (&self.fg_pad, Side::Fg, "fg"),
        ] {
            let ps = match side {
                Side::Bg => &mut *bg,
                Side::Fg => &mut *fg,
            };
            let Some(buffer) = self.pop(pad, ps)? else {
                continue;
            };
            let i = self.pass_index(ps, &buffer, name)?;
            if !wanted.has(side, i) || ps.fetched.contains_key(&i) {
                continue;
            }
            let Some(luma) = ps
                .info
                .as_ref()
                .and_then(|info| with_luma(&buffer, info, Thumb::full))
            else {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Decode,
                    ("Frame {i} on pad {name} does not match its caps")
                );
                return Err(gst::FlowError::Error);
            };
            ps.fetched.insert(i, Arc::new(luma));
        }
        let complete = |ps: &PadState, w: &[usize]| w.iter().all(|i| ps.fetched.contains_key(i));
        let ended = [&self.bg_pad, &self.fg_pad]
            .iter()
            .all(|p| p.is_eos() && !p.has_buffer());
        let done = ended || (complete(bg, &wanted.bg) && complete(fg, &wanted.fg));
        // fg frames read again, of those the fetch pass reads at most.
        let total = wanted.fg.last().map_or(0, |&i| i as u64 + 1);
        let fetched = (fg.fetched.len() + bg.fetched.len()) as u64;
        let wanted_n = (wanted.fg.len() + wanted.bg.len()) as u64;
        if Self::progress_due(state, done || state.fg.pass_frames <= 1) {
            self.post_progress(Progress::Fetch {
                done: state.fg.pass_frames as u64,
                total,
                frames_fetched: fetched,
                frames_wanted: wanted_n,
            });
        }
        Ok(done)
    }

    /// The bg frames the next pass of two-pass mode needs: those the fetch wants, else those
    /// the output maps fg frames to.
    fn bg_needed(state: &State) -> Option<std::ops::RangeInclusive<usize>> {
        let frames: &[usize] = match (&state.fetch, &state.output) {
            (Some(f), _) => &f.wanted.bg,
            (None, Some(o)) => &o.mapping,
            _ => return None,
        };
        Some(*frames.iter().min()?..=*frames.iter().max()?)
    }

    /// Where to seek the bg to read its frames `needed` again: from two frames before the
    /// first one's stream time to the next one's after the last (the stop, `None` at the end). `None` when frames
    /// read again could not be told apart by their timestamps (missing or not increasing):
    /// the bg is then read from its start.
    fn bg_span(
        ps: &PadState,
        needed: std::ops::RangeInclusive<usize>,
    ) -> Option<(gst::ClockTime, Option<gst::ClockTime>)> {
        let pts = ps
            .times
            .iter()
            .map(|t| t.pts)
            .collect::<Option<Vec<gst::ClockTime>>>()?;
        if pts.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let seg = ps.first_segment.as_ref()?;
        // Two frames early: a decoder clips the frame that straddles the seek position and
        // gives it that position as its timestamp, which is the next frame's (read again, a
        // frame is known by its timestamp).
        let start = seg.to_stream_time(*pts.get(needed.start().saturating_sub(2))?)?;
        let stop = match pts.get(needed.end() + 1) {
            Some(&p) => Some(seg.to_stream_time(p)?),
            None => None,
        };
        Some((start, stop))
    }

    /// Seeks both inputs back to the start of their first segment (flushing); the bg only to
    /// the frames `bg_needed` (a fg that shows a short stretch of a long bg reads little of
    /// it again).
    fn rewind(
        &self,
        bg_needed: Option<std::ops::RangeInclusive<usize>>,
    ) -> Result<(), gst::FlowError> {
        let seqnums = [gst::Seqnum::next(), gst::Seqnum::next()];
        let segments = {
            let mut guard = self.state();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            *lock(&self.rewind) = Some(Rewind {
                seqnums,
                flushed: [false, false],
                since: std::time::Instant::now(),
            });
            state.bg.pass_frames = 0;
            state.fg.pass_frames = 0;
            let bg_span = bg_needed.and_then(|r| Self::bg_span(&state.bg, r));
            [
                (state.bg.first_segment.clone(), bg_span),
                (state.fg.first_segment.clone(), None),
            ]
        };
        for (((pad, name), (seg, span)), seqnum) in [(&self.bg_pad, "bg"), (&self.fg_pad, "fg")]
            .into_iter()
            .zip(segments)
            .zip(seqnums)
        {
            // Seek positions are stream times (where the segment's `time` says the stream
            // is at its start; most demuxers have time = start, splitmuxsrc does not).
            let seg_start = seg
                .as_ref()
                .and_then(|s| s.start().and_then(|t| s.to_stream_time(t)))
                .unwrap_or(gst::ClockTime::ZERO);
            let seg_stop = seg
                .as_ref()
                .and_then(|s| s.stop().and_then(|t| s.to_stream_time(t)));
            let (start, stop) = match span {
                Some((from, to)) => (
                    Some(from.max(seg_start)),
                    match (to, seg_stop) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                ),
                None => (Some(seg_start), seg_stop),
            };
            let event = gst::event::Seek::builder(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::SeekType::Set,
                start,
                // Set even when open (to the end): an earlier pass may have set a stop.
                gst::SeekType::Set,
                stop,
            )
            .seqnum(seqnum)
            .build();
            gst::debug!(
                CAT,
                imp = self,
                "seeking {name} back to {start:?}..{stop:?}"
            );
            if !pad.push_event(event) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Upstream of pad {name} refused to seek back to the start, although it \
                         said it could seek; set two-pass=false to store frames instead")
                );
                return Err(gst::FlowError::Error);
            }
        }
        Ok(())
    }

    /// Offline, fg frames after a caps change that kept the whole's footprint (their stretch
    /// on its own fitted no better) but match much worse than those before: a warning.
    fn check_fg_changes(&self, changed_at: &[usize], costs: &[f32]) {
        let median = |v: &[f32]| {
            let mut v: Vec<f32> = v.iter().copied().filter(|c| c.is_finite()).collect();
            v.sort_by(f32::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let mut bounds: Vec<usize> = changed_at.to_vec();
        bounds.push(costs.len());
        for w in bounds.windows(2) {
            let (k, end) = (w[0].min(costs.len()), w[1].min(costs.len()));
            let (Some(before), Some(after)) = (median(&costs[..k]), median(&costs[k..end])) else {
                continue;
            };
            if after > (3.0 * before).max(before + 0.1) {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    (
                        "The fg's frames from its caps change at frame {k} match the bg much \
                         worse (median cost {after:.3}, {before:.3} before){}",
                        Self::reframe_hint(&[k])
                    )
                );
            }
        }
    }

    /// Words for a warning when the fg's caps changed offline.
    fn reframe_hint(changed_at: &[usize]) -> String {
        if changed_at.is_empty() {
            return String::new();
        }
        let at: Vec<String> = changed_at.iter().map(|k| k.to_string()).collect();
        format!(
            ". The fg's caps changed at frame {}: its stretches between changes, analysed on \
             their own, did not fit better (the fg re-framed there to content not in the bg, \
             or stretches too short to align); align each part on its own",
            at.join(", ")
        )
    }

    /// Keeps the alignment's line (fg timestamp -> matched bg timestamp) for later seeks,
    /// replacing what an earlier alignment said of the same fg range.
    fn record_line(&self, state: &State, mapping: &[usize]) {
        // In stream time, as seeks are.
        let stream_time = |ps: &PadState, i: usize| {
            let pts = ps.times.get(i)?.pts?;
            match &ps.first_segment {
                Some(s) => s.to_stream_time(pts),
                None => Some(pts),
            }
        };
        let points: Vec<(u64, u64)> = mapping
            .iter()
            .enumerate()
            .filter_map(|(i, &b)| {
                let f = stream_time(&state.fg, i)?;
                let b = stream_time(&state.bg, b)?;
                Some((f.nseconds(), b.nseconds()))
            })
            .collect();
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return;
        };
        let mut line = lock(&self.line);
        let stale: Vec<u64> = line.range(first.0..=last.0).map(|(&k, _)| k).collect();
        for k in stale {
            line.remove(&k);
        }
        let step = points.len().div_ceil(LINE_POINTS).max(1);
        line.extend(points.iter().step_by(step).copied());
        line.insert(last.0, last.1);
        // Bounded: thin the whole line out if seeks made it grow.
        if line.len() > 4 * LINE_POINTS {
            let kept: std::collections::BTreeMap<u64, u64> =
                line.iter().step_by(2).map(|(&k, &v)| (k, v)).collect();
            *line = kept;
        }
    }

    /// Where the bg must be read from for the fg from `at` on: `SEEK_MARGIN` before the
    /// position the last alignment matched there; its start when nothing was aligned yet.
    fn bg_position_for(&self, at: gst::ClockTime) -> gst::ClockTime {
        let line = lock(&self.line);
        let t = at.nseconds();
        let matched = match line.range(..=t).next_back() {
            // The bg advances with the fg: the point before `at` bounds the match from below.
            Some((_, &b)) => Some(b),
            None => line
                .range(t..)
                .next()
                .map(|(&f, &b)| b.saturating_sub(f - t)),
        };
        gst::ClockTime::from_nseconds(matched.map_or(0, |b| b.saturating_sub(SEEK_MARGIN)))
    }

    /// Seeks the bg alone (its own seqnum), as a rewind that waits for the bg's flush only.
    fn seek_bg(&self, to: gst::ClockTime) -> Result<(), gst::FlowError> {
        let seqnum = gst::Seqnum::next();
        if self.state().is_none() {
            return Err(gst::FlowError::Flushing);
        }
        *lock(&self.rewind) = Some(Rewind {
            seqnums: [seqnum, gst::Seqnum::next()],
            flushed: [false, true],
            since: std::time::Instant::now(),
        });
        let event = gst::event::Seek::builder(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            to,
            gst::SeekType::None,
            gst::ClockTime::NONE,
        )
        .seqnum(seqnum)
        .build();
        gst::debug!(CAT, imp = self, "seeking bg to {to} for the fg's seek");
        if !self.bg_pad.push_event(event) {
            // The bg stays where the seek put it: fg frames whose match lies before are
            // matched to what there is.
            gst::element_imp_warning!(
                self,
                gst::CoreError::Seek,
                ("Upstream of pad bg refused a seek to {to}, where the fg's matches start: fg \
                  frames whose bg frame lies before the seek position are matched to later \
                  ones")
            );
            *lock(&self.rewind) = None;
        }
        Ok(())
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
            state.resume_at = sought;
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
        let live = self.state().as_ref().is_some_and(|s| s.mode == Mode::Live);
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
        // The mode is decided once, from upstream's answers (latency, seeking, duration),
        // asked with no element lock held.
        let undecided = matches!(self.state().as_ref(), Some(s) if s.mode == Mode::Undecided);
        let decided = if !undecided {
            None
        } else if self.is_live() {
            if let Some(why) = self.live_refusal() {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{why}"));
                return Err(gst::FlowError::Error);
            }
            Some((Mode::Live, None))
        } else {
            let duration = self.fg_pad.peer_query_duration::<gst::ClockTime>();
            Some((self.decide_mode(), duration))
        };
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        if let Some((mode, duration)) = decided
            && state.mode == Mode::Undecided
        {
            state.mode = mode;
            state.fg_duration = duration;
        }
        if state.mode == Mode::Live {
            drop(guard);
            return self.live_aggregate(timeout);
        }

        // A rewind under way: upstream's flush must reach both pads first.
        let mut rewind = lock(&self.rewind);
        if let Some(r) = rewind.as_ref() {
            if r.flushed != [true, true] {
                if r.since.elapsed() > REWIND_TIMEOUT {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        (
                            "Upstream did not flush within {} s of the seek back to the start \
                             (flushed: bg {}, fg {})",
                            REWIND_TIMEOUT.as_secs(),
                            r.flushed[0],
                            r.flushed[1]
                        )
                    );
                    return Err(gst::FlowError::Error);
                }
                // Upstream flushes within the seek call as a rule (our own seeks are pushed
                // from this thread, so this is rare); its FLUSH_STOP wakes the aggregator.
                gst::trace!(CAT, imp = self, "waiting for the rewind's flush");
                return Ok(gst::FlowSuccess::Ok);
            }
            *rewind = None;
        }
        drop(rewind);

        if let Some(at) = state.resume_at.take() {
            state.from_seek = true;
            // The seek put the bg at the fg's position; its match may lie before.
            let to = self.bg_position_for(at);
            if to < at {
                drop(guard);
                self.seek_bg(to)?;
                return Ok(gst::FlowSuccess::Ok);
            }
        }

        if let Some(out) = state.output.as_mut() {
            if let Some((caps, segment)) = out.pending.take() {
                drop(guard);
                return self.start_output(caps, segment);
            }
            let buffer = if out.streaming.is_some() {
                match self.next_streamed(state)? {
                    Some(b) => b,
                    None => return Ok(gst::FlowSuccess::Ok),
                }
            } else {
                self.next_stored(state)?
            };
            drop(guard);
            gst::trace!(CAT, imp = self, "output {buffer:?}");
            return self.obj().finish_buffer(buffer);
        }

        if state.fetch.is_some() {
            if !self.fetch_step(state)? {
                return Ok(gst::FlowSuccess::Ok);
            }
            self.end_of_fetch(state)?;
            let needed = Self::bg_needed(state);
            drop(guard);
            self.rewind(needed)?;
            return Ok(gst::FlowSuccess::Ok);
        }

        let store = state.mode == Mode::Store;
        self.take_buffer(&self.bg_pad, &mut state.bg, store)?;
        self.take_buffer(&self.fg_pad, &mut state.fg, store)?;
        self.reading_progress(state, false);
        if !state.placement_checked
            && let (Some(fg), Some(bg)) = (&state.fg.info, &state.bg.info)
        {
            // The footprint must fit at least at the smallest scale searched.
            let mut settings = lock(&self.settings).clone();
            if settings.scale <= 0.0 {
                settings.scale = spatial::DEFAULT_SCALES.0;
            }
            self.resolve_placement(&settings, fg, bg)?;
            state.placement_checked = true;
        }
        let done = [&self.bg_pad, &self.fg_pad]
            .iter()
            .all(|p| p.is_eos() && !p.has_buffer());
        if !done {
            return Ok(gst::FlowSuccess::Ok);
        }
        self.reading_progress(state, true);
        self.end_of_first_pass(state)?;
        if state.mode == Mode::TwoPass {
            let needed = Self::bg_needed(state);
            drop(guard);
            self.rewind(needed)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
