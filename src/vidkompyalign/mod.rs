// SPDX-License-Identifier: MIT

/**
 * element-vidkompyalign:
 *
 * Overlays a foreground video (`fg`) onto a background video (`bg`) of the same scene, aligned
 * in space and time.
 *
 * The fg is the timeline: every fg frame is output exactly once, in order, with its own
 * timestamps and duration, on a canvas with the bg's caps except the framerate, which is the
 * fg's. Each fg frame is composited over one bg frame at the fg's footprint (offset and scale),
 * optionally with feathered edges (`blend-width`); a fg in another format, size or colorimetry
 * is converted with GstVideoConverter.
 *
 * With `x`, `y` and `scale` unset, the element finds the footprint in the bg (sub-pixel,
 * composited at the nearest pixel) and maps every fg frame to one bg frame by dynamic time
 * warping over footprint features; set properties fix that part of the footprint. Content that
 * does not match gives a warning, the set (or centred) footprint and the running-time mapping.
 *
 * Offline (no live upstream), inputs that can seek are read once (`frames=windowed`, the
 * default): the first window on thumbnails until it is placed, one seek back, then aligned on
 * a sliding window as live and output while reading; `frames=read-again` reads them twice
 * (aligned over the whole streams, then output). Inputs that cannot seek are read to EOS and
 * stored within `max-memory`, spilling to `temp-dir`, before output. Live (a live upstream, or
 * `force-live`) it aligns on a sliding window: bg
 * frames held up to `max-offset`, each fg frame matched `lookahead` after it arrives (added to
 * the latency); with `force-live` on files, one decode and the same output every run.
 *
 * Messages: `vidkompy-alignment` (the alignment decided), `vidkompy-progress` (stages
 * `reading`, `analysis`, `fetch`, `output`), `vidkompy-reframed` (the footprint moved),
 * `vidkompy-bg-lagging` and `vidkompy-reanchored` (live). Their fields, every property and the
 * behaviour in detail are in the project's `docs/reference.md`; Rust applications read the
 * messages through `gstvidkompy::messages`.
 *
 * ## Example launch lines
 * Offline, files:
 * ```text
 * gst-launch-1.0 vidkompyalign name=a report=align.json plot=align.svg ! videoconvert ! \
 *     x264enc ! mp4mux ! filesink location=out.mp4 \
 *     filesrc location=bg.mp4 ! decodebin ! videoconvert ! a.bg \
 *     filesrc location=fg.mp4 ! decodebin ! videoconvert ! a.fg
 * ```
 * Live, two RTP feeds (H.264), the fg shown `lookahead` (1 s) after it arrives:
 * ```text
 * gst-launch-1.0 vidkompyalign name=a lookahead=1000000000 ! videoconvert ! autovideosink \
 *     udpsrc port=5000 caps="application/x-rtp,media=video,encoding-name=H264,clock-rate=90000" ! \
 *         rtph264depay ! avdec_h264 ! videoconvert ! a.bg \
 *     udpsrc port=5002 caps="application/x-rtp,media=video,encoding-name=H264,clock-rate=90000" ! \
 *         rtph264depay ! avdec_h264 ! videoconvert ! a.fg
 * ```
 *
 * Since: plugins-rs-0.1.0
 */
use gst::glib;
use gst::prelude::*;

mod imp;

/// What frames are matched on.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[repr(u32)]
#[enum_type(name = "GstVidkompyMatchRegion")]
pub enum MatchRegion {
    #[enum_value(name = "The whole footprint", nick = "footprint")]
    Footprint = 0,
    #[enum_value(
        name = "A band along the inside of the fg's edges where the bg shows",
        nick = "edges"
    )]
    Edges = 1,
}

/// How the element gets at the frames it outputs, offline (live: held on the sliding window).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[repr(u32)]
#[enum_type(name = "GstVidkompyFrames")]
pub enum FramesMode {
    #[enum_value(
        name = "Files that can seek read once, aligned on a sliding window; others stored",
        nick = "windowed"
    )]
    Windowed = 0,
    #[enum_value(
        name = "Files that can seek read twice: aligned over the whole streams, then output",
        nick = "read-again"
    )]
    ReadAgain = 1,
    #[enum_value(name = "Every frame held (spilled past max-memory)", nick = "stored")]
    Stored = 2,
}

/// Where the heavy kernels run.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[repr(u32)]
#[enum_type(name = "GstVidkompyDevice")]
pub enum Device {
    #[enum_value(
        name = "A hardware GPU for the analysis when there is one (compositing on the CPU), else the CPU",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "The GPU (a software Vulkan adapter included); an error without one",
        nick = "gpu"
    )]
    Gpu = 1,
    #[enum_value(name = "The CPU", nick = "cpu")]
    Cpu = 2,
}

impl From<Device> for crate::compute::Choice {
    fn from(d: Device) -> Self {
        match d {
            Device::Auto => crate::compute::Choice::Auto,
            Device::Gpu => crate::compute::Choice::Gpu,
            Device::Cpu => crate::compute::Choice::Cpu,
        }
    }
}

glib::wrapper! {
    pub struct VidkompyAlign(ObjectSubclass<imp::VidkompyAlign>)
        @extends gst_base::Aggregator, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "vidkompyalign",
        gst::Rank::NONE,
        VidkompyAlign::static_type(),
    )
}
