// SPDX-License-Identifier: MIT

/**
 * element-vidkompyalign:
 *
 * Overlays a foreground video (`fg`) onto a background video (`bg`) of the same scene.
 *
 * The fg is the timeline: every fg frame is output exactly once, in order, with its own
 * timestamps and duration, on a canvas with every field of the bg's caps (size, format, pixel
 * aspect ratio, colorimetry, chroma siting, interlace mode) except the framerate, which is the
 * fg's. Each fg frame is composited over one bg frame, at the footprint given by the `x`, `y` and
 * `scale` properties, optionally with feathered edges (`blend-width`). A fg in another format,
 * size or colorimetry than the bg is converted with GstVideoConverter.
 *
 * With `x`, `y` and `scale` unset, the element finds the fg's footprint in the bg (offset and
 * scale, sub-pixel, composited at the nearest pixel) and maps every fg frame to one bg frame by
 * dynamic time warping over footprint features; set properties fix that part of the footprint.
 * When it is done it posts an element message `vidkompy-alignment` (fields `x`, `y`, `scale`,
 * `footprint-x`, `footprint-y`, `footprint-width`, `footprint-height`, `spatial-confidence`,
 * `temporal-confidence`, `mean-cost`, `first-bg-frame`, `last-bg-frame`, `fg-frames`, `rate`,
 * `mapping`, `frames` (`read-again` or `stored`), `stored-bytes`, `spilled-bytes`,
 * `spilled-thumbnail-bytes`, `spilled-feature-bytes`, `device`, `analysis-time` and `segments`,
 * an array of `segment` structures: see below). Content that does not match gives a warning,
 * the set (or centred) footprint
 * and the running-time mapping: each fg frame takes the bg frame showing at the same running
 * time.
 *
 * The element works offline: it reads both pads to EOS before it outputs. When both upstreams
 * answer the SEEKING query as seekable (files), it keeps no frame: a first pass keeps per-frame
 * features (a thumbnail of a few KB; past 8 MiB per pad in a spill file in `temp-dir`, as are
 * the analysis's feature matrices) for the analysis, a short second pass fetches the dozen
 * frames the sub-pixel refinement needs (among the fg's first 72, up to 720 if those match
 * poorly), and both inputs are then
 * sought back to the start once more and composited as they are read (in both later passes the
 * bg only from the first frame the pass needs, up to the last). Otherwise (or with
 * `two-pass=false`, or `match-region=edges`, which needs every frame at full resolution) frames
 * are stored: at most two upstream buffers per pad by reference, copies in memory up to
 * `max-memory`, the rest in a spill file in `temp-dir` that is unlinked as soon as it is
 * created. Long inputs align in linear time and memory: past 1 M cost cells, dynamic time
 * warping runs on every f-th frame first and then in a band around that path.
 *
 * Offline, caps that change mid-stream on either pad are taken: later frames are converted to
 * the pad's first caps, which the analysis and the output keep (an info message says so). The
 * fg may have been re-framed at its caps change (another region, not just another size): each
 * stretch of the fg between changes (of 6 frames or more, the 8 longest) is then also analysed
 * on its own, and when the stretches'
 * own footprints fit clearly better (mean cost under half the whole's, and 0.1 lower, over a
 * stretch), each stretch is composited at its own footprint, its mapping joined monotonically
 * to the others': `vidkompy-reframed` (`fg-frame` where it changed, `x`, `y`, `scale`,
 * `previous-*`) is posted, the `vidkompy-alignment` message lists the `segments` (array of
 * `segment` structures: `fg-frame`, footprint, confidence, mean cost) and the report has them
 * too (`alignment` applies them). The footprint is in the first caps' fg pixels; a re-framing
 * that also changes the aspect ratio is distorted by that conversion and will not be found.
 * A flushing seek on the src pad resumes
 * at the fg frame sought; the bg is then read again from 2 s before where the last alignment
 * matched that frame (from its start when nothing was aligned yet), so an fg that started
 * before the bg keeps its matches.
 *
 * When upstream is live (or `force-live` is set), the element aligns on a sliding window
 * instead: bg frames are held (as copies) up to `max-offset` behind the fg, the footprint is
 * searched on its own thread on the first window (`lookahead` of fg frames, started 0.3 s
 * before the first is due; a result under 0.98 confidence is searched again on the whole
 * window and, once the bg has shown their moments, on the same fg frames; again every 5 s while
 * nothing is found, meanwhile the set or centred footprint and the running-time mapping), and
 * each fg frame
 * is matched `lookahead` after it arrives, from the last match on (monotonic) and guided by the
 * line of the recent matches; `lookahead` is added to the reported latency. Streams without a
 * framerate (RTP) are timed by their timestamps. With `force-live` on inputs that are not live
 * (files), the pads are read one buffer at a time in the order the alignment needs (the bg at
 * most `max-offset` plus `lookahead` ahead until the footprint is found, then in step along
 * the path), searches are waited for and the clock forces nothing: one decode, output while
 * reading, and the same output every run. Messages in live mode:
 *
 * - `vidkompy-bg-lagging` (`lagging`, `fg-frame`, `bg-frame`): fg frames take the newest bg
 *   frame because theirs has not arrived (the bg shows the scene later than the fg by more than
 *   the lookahead, or it stalled); posted again with `lagging=false` when it catches up. A
 *   stalled bg does not stop the output, a stalled fg does not block the bg.
 * - `vidkompy-reframed` (`x`, `y`, `scale`, `previous-*`, `fg-frame`): the footprint, re-checked
 *   on another thread every 5 s (sooner when matches get worse), moved: the fg feed was
 *   re-framed; it is followed (a new `vidkompy-alignment` is posted too).
 * - `vidkompy-reanchored` (`reanchoring`, `fg-frame`, `bg-frame`, `count`): the bg leads by
 *   more than `max-offset` (a delay that drifted): the path starts again from the oldest bg
 *   frame held, which bounds the bg held whatever the drift. Posted with `reanchoring=true`
 *   when re-anchoring starts; while the lead keeps growing it re-anchors again at most commits;
 *   posted with `reanchoring=false` when a commit keeps its anchor again or the fg ends.
 *   `count` says how often it re-anchored so far.
 * - QoS messages for fg frames dropped because downstream's QoS said they would be late.
 *
 * Caps changes on either pad output the frames held, then negotiate the output again and search
 * the footprint again. Seeks at a rate other than 1 are refused. Not in live mode: the report
 * file (a warning; with `force-live` on files it is written when the fg ends: every fg frame's
 * bg frame as output, the footprints used as segments, `mapping` = `windowed`),
 * match-region=edges and alignment files (refused with an error).
 *
 * Progress is posted as `vidkompy-progress` element messages: `stage` (`reading`, `analysis`,
 * `fetch`, `output`), `done` and, when known, `total` (frames), `elapsed` for the analysis.
 * With `report` the alignment is also written as JSON (the whole frame mapping with PTS and
 * costs), with `plot` drawn as an SVG (the mapping against the line of constant offset, the
 * match costs below); `alignment` applies such a report without analysis.
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
 * On a GPU (`device=gpu`: any Vulkan adapter, Mesa's lavapipe included; the default `auto`
 * takes a hardware one when there is one):
 * ```text
 * gst-launch-1.0 vidkompyalign name=a device=gpu ! videoconvert ! x264enc ! mp4mux ! \
 *     filesink location=out.mp4 \
 *     filesrc location=bg.mp4 ! decodebin ! videoconvert ! a.bg \
 *     filesrc location=fg.mp4 ! decodebin ! videoconvert ! a.fg
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

/// Where the heavy kernels run.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[repr(u32)]
#[enum_type(name = "GstVidkompyDevice")]
pub enum Device {
    #[enum_value(name = "A hardware GPU when there is one, else the CPU", nick = "auto")]
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
