// SPDX-License-Identifier: MIT

//! The `vidkompyalign` element: an Aggregator shell that stores frames, asks the alignment library
//! where and when the fg goes, and composites through the compute backend.
//!
//! This file holds the GObject and Aggregator glue; the run itself is data (`run::Phase`),
//! stepped in `aggregate`: under the state lock a step takes what the pads hold and moves the
//! phase on, and returns effects (`run::Effect`) that are applied once the lock is released.
//!
//! Locks, in the order they may be taken, never the other way: the aggregator's `SRC_LOCK`
//! (held around `next_time`; `latency()` and `set_latency()` take it), then `state`, then one
//! of `settings`, `compute`, `line`, `seek_pending`, `made`, `rewind` and `bg_format`, each held
//! for a read or a write only. With `state` held the element calls nothing in the base class
//! (latency, caps, segment, buffers), sends no query or event upstream, joins no thread and
//! runs no analysis or search.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;
use gst_video::prelude::*;

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use super::{Device, FramesMode, MatchRegion};
use crate::align::Cancel;
use crate::compute::{self, Compute};
use crate::messages::{FootprintFrom, MappedBy};
use crate::store::{self, Budget, PadStore, ThumbStore};

mod intake;
mod live;
mod offline;
mod render;
mod reporting;
mod run;

use intake::PadState;
use offline::Made;
use reporting::Loaded;
use run::{Phase, Rewind, State};

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
const DEFAULT_FRAMES: FramesMode = FramesMode::Windowed;
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
    frames: FramesMode,
    max_memory: u64,
    device: Device,
    temp_dir: Option<String>,
    lookahead: u64,
    max_lookahead: u64,
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
            frames: DEFAULT_FRAMES,
            max_memory: DEFAULT_MAX_MEMORY,
            device: Device::Auto,
            temp_dir: None,
            lookahead: DEFAULT_LOOKAHEAD,
            max_lookahead: 0,
            max_offset: DEFAULT_MAX_OFFSET,
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
    /// lock, taken last and held for no call, so that flush events tell our seeks' flushes
    /// apart without the state lock.
    rewind: Mutex<Option<Rewind>>,
    /// The bg's format, for caps queries on the fg pad.
    bg_format: Mutex<Option<VideoFormat>>,
    /// The last offline alignment, kept across flushes: the output after a seek reuses it.
    made: Mutex<Option<Made>>,
    /// The pool offered upstream in each sink pad's last allocation query (bg, fg). It has no
    /// maximum, so a frame from it is held as it is; any other frame is held as a copy (a
    /// capture source's or hardware decoder's pool may have only a few buffers).
    offered: Mutex<[Option<gst::BufferPool>; 2]>,
    /// A live alignment message waiting for a raise of the lookahead to be applied or refused
    /// (posted then, with the lookahead in use).
    held_alignment: Mutex<Option<crate::messages::Alignment>>,
}

/// Locks a mutex, taking the data even if a panicking thread poisoned it (the element never
/// panics by design; this keeps a bug from becoming a second panic across the FFI boundary).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        *lock(&self.held_alignment) = None;
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
    fn new_state(&self, loaded: Option<Loaded>) -> State {
        let settings = lock(&self.settings).clone();
        // Frames (held by a windowed or live run, or stored) share one budget; thumbnails and
        // features are held in memory up to a fixed bound each, so that memory does not grow
        // with the input's length (all in memory when max-memory is unlimited).
        let shares = store::Shares::of(settings.max_memory);
        let budget = Budget::new(shares.frames);
        let dir = settings.temp_dir.map(std::path::PathBuf::from);
        let pad = || PadState {
            store: PadStore::new(store::DEFAULT_MAX_REFS, budget.clone(), dir.clone()),
            thumbs: ThumbStore::new(shares.thumbs, dir.clone()),
            ..PadState::default()
        };
        State {
            bg: pad(),
            fg: pad(),
            loaded,
            // Features (about 1 KB a frame), per stream.
            features: store::FeatureSpills::new(shares.features, dir.clone()),
            holder: store::FrameHolder::new(
                budget.clone(),
                if settings.max_memory == 0 {
                    0
                } else {
                    shares.thumbs as u64
                },
                dir.clone(),
            ),
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
            offered: Mutex::new([None, None]),
            held_alignment: Mutex::new(None),
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
                glib::ParamSpecEnum::builder_with_default("frames", DEFAULT_FRAMES)
                    .nick("Frames")
                    .blurb("Offline: files read once on a sliding window, read twice, or every frame stored")
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
                glib::ParamSpecUInt64::builder("max-lookahead")
                    .nick("Maximum lookahead")
                    .blurb("Live: the most (ns) the lookahead and latency may be raised to when the bg lags; 0 = off")
                    .maximum(MAX_WINDOW)
                    .default_value(0)
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
            "frames" => s.frames = value.get().unwrap_or(DEFAULT_FRAMES),
            "max-memory" => s.max_memory = value.get().unwrap_or(DEFAULT_MAX_MEMORY),
            "device" => s.device = value.get().unwrap_or(Device::Auto),
            "temp-dir" => s.temp_dir = value.get::<Option<String>>().ok().flatten(),
            "lookahead" => s.lookahead = value.get().unwrap_or(DEFAULT_LOOKAHEAD),
            "max-lookahead" => s.max_lookahead = value.get().unwrap_or(0),
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
            "frames" => s.frames.to_value(),
            "max-memory" => s.max_memory.to_value(),
            "device" => s.device.to_value(),
            "temp-dir" => s.temp_dir.to_value(),
            "lookahead" => s.lookahead.to_value(),
            "max-lookahead" => s.max_lookahead.to_value(),
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
        let loaded = self.read_alignment()?;
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
        *lock(&self.held_alignment) = None;
        self.parent_stop()
    }

    fn flush(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.reset();
        let sought = lock(&self.seek_pending).take();
        if let Some(state) = self.state().as_mut() {
            state.phase = Phase::Undecided { resume_at: sought };
            if sought.is_some() {
                self.reuse_made(state);
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

    fn propose_allocation(
        &self,
        pad: &gst_base::AggregatorPad,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(pad, decide_query, query)?;
        let (Some(caps), _) = query.get_owned() else {
            return Ok(());
        };
        let Ok(info) = gst_video::VideoInfo::from_caps(&caps) else {
            return Ok(());
        };
        let size = u32::try_from(info.size())
            .map_err(|_| gst::loggable_error!(CAT, "frames of {caps} are too large"))?;
        // No minimum and no maximum: the window holds as many frames as it needs, and the
        // pool grows to that. No video meta either: frames come in the caps' own layout.
        let pool = gst_video::VideoBufferPool::new();
        let mut config = pool.config();
        config.set_params(Some(&caps), size, 0, 0);
        pool.set_config(config)
            .map_err(|e| gst::loggable_error!(CAT, "cannot set up a pool for {caps}: {e}"))?;
        query.add_allocation_pool(Some(&pool), size, 0, 0);
        let k = usize::from(self.pad_name(pad) == "fg");
        gst::debug!(CAT, obj = pad, "offering upstream {pool:?} for {caps}");
        lock(&self.offered)[k] = Some(pool.upcast());
        Ok(())
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
