// SPDX-License-Identifier: MIT

//! `vidkompy`: overlays a foreground video on a background video of the same scene, aligned in
//! space and time by the `vidkompyalign` element, and encodes the result.
//!
//! ```text
//! vidkompy BG FG [-o OUT.mp4|.mov|.mkv] [--codec h264|h265|mjpeg] [--quality Q] [-q]
//!          [--plot MAP.svg] [--report FILE.json] [--alignment FILE.json]
//!          [--x X --y Y --scale S --blend-width N --match-region footprint|edges
//!           --device auto|gpu|cpu]
//! ```
//!
//! One pipeline: both files are decoded into `vidkompyalign`, which reads each once on a
//! sliding window and outputs while reading (the encoding bar; inputs it stores get a reading
//! bar first), then encoded and muxed. The
//! audio comes from a reader of its own, so the element's seeks do not touch it: the fg's audio,
//! else the bg's, shifted by the offset found (the bg's moment under the first fg frame plays
//! first) and cut at the fg's end.

use clap::{Parser, ValueEnum};
use gst::glib;
use gst::prelude::*;
use gstvidkompy::messages::{self, ElementMessage, FootprintFrom, Progress};
use gstvidkompy::{Device, MatchRegion};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "vidkompy",
    version,
    about = "Overlays a foreground video on a background video of the same scene, aligned in \
             space and time, and encodes the result"
)]
struct Args {
    /// The background video (the wider recording)
    bg: PathBuf,
    /// The foreground video (the close recording laid over the bg)
    fg: PathBuf,
    /// Output file: .mp4, .mov or .mkv [default: <bg>_overlay_<fg>.mp4]
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The fg's left edge in bg pixels [default: found]
    #[arg(long)]
    x: Option<u32>,
    /// The fg's top edge in bg pixels [default: found]
    #[arg(long)]
    y: Option<u32>,
    /// Footprint width over fg width [default: found, among 0.5 to 1.0]
    #[arg(long)]
    scale: Option<f64>,
    /// Pixels of feathering along the fg's edges where the bg shows [default: 0, hard edges]
    #[arg(long)]
    blend_width: Option<u32>,
    /// Match frames on the whole footprint, or on a band along the fg's edges (for a fg whose
    /// interior differs from the bg)
    #[arg(long, value_enum)]
    match_region: Option<MatchRegion>,
    /// Where the analysis and compositing run [default: auto, a hardware GPU if there is one]
    #[arg(long, value_enum)]
    device: Option<Device>,
    /// Write the alignment found (footprint, confidences, the whole frame mapping) as JSON here
    #[arg(long)]
    report: Option<PathBuf>,
    /// Reuse an alignment written by --report: no analysis
    #[arg(long)]
    alignment: Option<PathBuf>,
    /// Video codec
    #[arg(long, value_enum, default_value_t = Codec::H264)]
    codec: Codec,
    /// Constant quality, 0 (best) to 51 (smallest), as x264's CRF (mjpeg: JPEG quality 100-2Q)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=51))]
    quality: u32,
    /// No progress bars and no summary (errors still print)
    #[arg(short, long)]
    quiet: bool,
    /// Draw the mapping (fg time across, bg time up) and each frame's match cost into this SVG
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Codec {
    H264,
    H265,
    Mjpeg,
}

fn main() {
    // Without a session (no valid XDG_RUNTIME_DIR: root shells, CI), Mesa's device-select Vulkan
    // layer tries to reach a Wayland display while the element looks for a GPU, and
    // libwayland prints "error: XDG_RUNTIME_DIR is invalid ..." before any error of ours.
    // The layer only orders devices (the element picks its own), so it is turned off there.
    let no_session = std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|d| !Path::new(&d).is_dir());
    if no_session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: first thing in main, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("vidkompy: {e}");
        std::process::exit(1);
    }
}

/// What the discoverer says of an input.
struct Media {
    audio: bool,
    duration: Option<gst::ClockTime>,
    fps: Option<gst::Fraction>,
}

/// Reads `path`'s streams: an error names a missing file, one GStreamer cannot read, or one
/// without video.
fn probe(path: &Path) -> Result<Media, String> {
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()));
    }
    let abs = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let uri = glib::filename_to_uri(&abs, None).map_err(|e| format!("{}: {e}", path.display()))?;
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(60))
        .map_err(|e| format!("cannot inspect inputs: {e}"))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| format!("{}: not a video GStreamer can read ({e})", path.display()))?;
    let video = info.video_streams();
    let Some(v) = video.first() else {
        return Err(format!("{}: no video stream", path.display()));
    };
    let fps = v.framerate();
    Ok(Media {
        audio: !info.audio_streams().is_empty(),
        duration: info.duration(),
        fps: (fps.numer() > 0).then_some(fps),
    })
}

/// `<bg>_overlay_<fg>.mp4`, in the current directory.
fn default_output(bg: &Path, fg: &Path) -> PathBuf {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video".into())
    };
    PathBuf::from(format!("{}_overlay_{}.mp4", stem(bg), stem(fg)))
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        format!("the GStreamer element {factory} is missing (run `bash .ci/install-deps`)")
    })
}

/// The bg audio's shift, once the alignment is known: `None` while it is not, `Some(None)`
/// when the run stops before (the audio is then dropped, nothing waits).
#[derive(Default)]
struct Shift {
    at: Mutex<Option<Option<u64>>>,
    known: Condvar,
}

impl Shift {
    fn set(&self, v: Option<u64>) {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        if at.is_none() {
            *at = Some(v);
        }
        self.known.notify_all();
    }

    fn wait(&self) -> Option<u64> {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = *at {
                return v;
            }
            at = self.known.wait(at).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The audio to keep: from which file, and whether it must wait for the offset.
struct Audio {
    path: PathBuf,
    shifted: bool,
    /// Where it is cut (the fg's duration), for the bg's audio.
    end: Option<u64>,
}

/// Everything the pipeline is built from.
struct Plan<'a> {
    args: &'a Args,
    output: PathBuf,
    /// Where the element writes its report for `--plot` when `--report` names no file: a
    /// temporary file of a random name, removed when the plan is dropped.
    temp_report: Option<tempfile::TempPath>,
    audio: Option<Audio>,
}

impl Plan<'_> {
    /// Where the element writes its report, if anywhere.
    fn report(&self) -> Option<&Path> {
        self.args.report.as_deref().or(self.temp_report.as_deref())
    }
}

/// Decodes `path`'s first stream of `kind` (`video` or `audio`) and links it to `sink` when
/// it appears (a reader of its own, so that seeks on one do not reach the other).
fn read_into(
    pipeline: &gst::Pipeline,
    path: &Path,
    kind: &'static str,
    sink: gst::Pad,
) -> Result<(), String> {
    let src = make("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let decode = make("decodebin")?;
    // Any memory: plain `video/x-raw` makes decodebin 1.22 look for a decoder that gives it
    // and find none.
    let caps = gst::Caps::from_str(&format!("{kind}/x-raw(ANY)"))
        .map_err(|e| format!("caps for {kind}: {e}"))?;
    decode.set_property("caps", caps);
    decode.set_property("expose-all-streams", false);
    pipeline
        .add_many([&src, &decode])
        .map_err(|e| e.to_string())?;
    src.link(&decode).map_err(|e| e.to_string())?;
    let prefix = format!("{kind}/");
    decode.connect_pad_added(move |_, pad| {
        let fits = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| {
                c.structure(0)
                    .map(|s| s.name().starts_with(prefix.as_str()))
            })
            .unwrap_or(false);
        if fits && !sink.is_linked() {
            let _ = pad.link(&sink);
        }
    });
    Ok(())
}

fn build(
    plan: &Plan<'_>,
    shift: &Arc<Shift>,
    out_frames: &Arc<AtomicU64>,
) -> Result<gst::Pipeline, String> {
    let args = plan.args;
    let pipeline = gst::Pipeline::new();
    let align = gst::ElementFactory::make("vidkompyalign")
        .name("align")
        .build()
        .map_err(|_| "the vidkompyalign element is missing".to_string())?;
    // Values out of the property's range are an error, not a panic.
    let range = |name: &str| -> Result<(f64, f64), String> {
        let p = align
            .find_property(name)
            .ok_or_else(|| format!("vidkompyalign has no property {name}"))?;
        if let Some(p) = p.downcast_ref::<glib::ParamSpecInt>() {
            Ok((f64::from(p.minimum()), f64::from(p.maximum())))
        } else if let Some(p) = p.downcast_ref::<glib::ParamSpecUInt>() {
            Ok((f64::from(p.minimum()), f64::from(p.maximum())))
        } else if let Some(p) = p.downcast_ref::<glib::ParamSpecDouble>() {
            Ok((p.minimum(), p.maximum()))
        } else {
            Err(format!("property {name} is not a number"))
        }
    };
    let check = |name: &str, v: f64| -> Result<(), String> {
        let (lo, hi) = range(name)?;
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(format!("--{name} {v}: out of range ({lo} to {hi})"))
        }
    };
    if let Some(x) = args.x {
        check("x", f64::from(x))?;
        align.set_property("x", x as i32);
    }
    if let Some(y) = args.y {
        check("y", f64::from(y))?;
        align.set_property("y", y as i32);
    }
    if let Some(s) = args.scale {
        check("scale", s)?;
        align.set_property("scale", s);
    }
    if let Some(b) = args.blend_width {
        check("blend-width", f64::from(b))?;
        align.set_property("blend-width", b);
    }
    if let Some(m) = args.match_region {
        align.set_property("match-region", m);
    }
    if let Some(d) = args.device {
        align.set_property("device", d);
    }
    if let Some(r) = plan.report() {
        align.set_property("report", r.to_string_lossy().as_ref());
    }
    if let Some(a) = &args.alignment {
        align.set_property("alignment", a.to_string_lossy().as_ref());
    }
    pipeline.add(&align).map_err(|e| e.to_string())?;
    for (path, pad) in [(&args.bg, "bg"), (&args.fg, "fg")] {
        let convert = make("videoconvert")?;
        pipeline.add(&convert).map_err(|e| e.to_string())?;
        convert
            .link_pads(Some("src"), &align, Some(pad))
            .map_err(|e| e.to_string())?;
        let sink = convert
            .static_pad("sink")
            .ok_or("videoconvert has no sink pad")?;
        read_into(&pipeline, path, "video", sink)?;
    }

    let ext = plan
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mux = match ext.as_str() {
        "mp4" | "m4v" => make("mp4mux")?,
        "mov" => make("qtmux")?,
        "mkv" => make("matroskamux")?,
        _ => {
            return Err(format!(
                "{}: unknown container: name the output .mp4, .mov or .mkv",
                plan.output.display()
            ));
        }
    };
    let q = args.quality;
    let encoder = match args.codec {
        Codec::H264 => {
            let e = make("x264enc")?;
            e.set_property_from_str("pass", "qual");
            e.set_property("quantizer", q);
            e.set_property_from_str("speed-preset", "veryfast");
            e
        }
        Codec::H265 => {
            let e = make("x265enc")?;
            e.set_property("option-string", format!("crf={q}"));
            e.set_property_from_str("speed-preset", "veryfast");
            e
        }
        Codec::Mjpeg => {
            let e = make("jpegenc")?;
            e.set_property("quality", (100 - 2 * q as i32).clamp(1, 100));
            e
        }
    };
    let convert = make("videoconvert")?;
    let parse = match args.codec {
        Codec::H264 => Some(make("h264parse")?),
        Codec::H265 => Some(make("h265parse")?),
        Codec::Mjpeg => None,
    };
    let sink = make("filesink")?;
    sink.set_property("location", plan.output.to_string_lossy().as_ref());
    pipeline
        .add_many([&convert, &encoder, &mux, &sink])
        .map_err(|e| e.to_string())?;
    let mut chain = vec![&align, &convert, &encoder];
    if let Some(p) = &parse {
        pipeline.add(p).map_err(|e| e.to_string())?;
        chain.push(p);
    }
    chain.push(&mux);
    gst::Element::link_many(chain).map_err(|e| format!("cannot link the encoder: {e}"))?;
    mux.link(&sink).map_err(|e| e.to_string())?;
    if let Some(src) = align.static_pad("src") {
        let count = out_frames.clone();
        src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            count.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }

    if let Some(audio) = &plan.audio {
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let encoder = make("avenc_aac")?;
        // Encoded audio waits here while the element's first pass reads the video.
        let queue = make("queue")?;
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 0u64);
        pipeline
            .add_many([&convert, &resample, &encoder, &queue])
            .map_err(|e| e.to_string())?;
        gst::Element::link_many([&convert, &resample, &encoder, &queue])
            .map_err(|e| e.to_string())?;
        let mux_pad = mux
            .request_pad_simple("audio_%u")
            .ok_or("the muxer takes no audio")?;
        queue
            .static_pad("src")
            .ok_or("queue has no src pad")?
            .link(&mux_pad)
            .map_err(|e| format!("cannot link the audio: {e}"))?;
        let sink = convert
            .static_pad("sink")
            .ok_or("audioconvert has no sink pad")?;
        if audio.shifted {
            let (shift, end) = (shift.clone(), audio.end);
            // The audio's own segment, to read its buffers' stream times; downstream gets a
            // segment from 0 instead, where the shifted timestamps lie.
            let segment = Mutex::new(gst::FormattedSegment::<gst::ClockTime>::new());
            sink.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |_, info| {
                    // A buffer left out is taken and reported handled (`Drop` after
                    // gstreamer-rs took the buffer makes GStreamer 1.22 unref a null pointer).
                    let drop = |info: &mut gst::PadProbeInfo| {
                        info.data.take();
                        gst::PadProbeReturn::Handled
                    };
                    if let Some(gst::PadProbeData::Event(e)) = info.data.as_mut() {
                        if let gst::EventView::Segment(seg) = e.view()
                            && let Ok(seg) = seg.segment().clone().downcast::<gst::ClockTime>()
                        {
                            *segment.lock().unwrap_or_else(|e| e.into_inner()) = seg;
                            *e = gst::event::Segment::new(
                                &gst::FormattedSegment::<gst::ClockTime>::new(),
                            );
                        }
                        return gst::PadProbeReturn::Ok;
                    }
                    // Blocks until the offset is known (the element's analysis).
                    let Some(at) = shift.wait() else {
                        return drop(info);
                    };
                    let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let stream_time = buffer.pts().and_then(|p| {
                        segment
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .to_stream_time(p)
                    });
                    let Some(pts) = stream_time.map(|p| p.nseconds()) else {
                        return drop(info);
                    };
                    let dur = buffer.duration().map_or(0, |d| d.nseconds());
                    let t = pts.saturating_sub(at);
                    if pts + dur <= at || end.is_some_and(|e| t >= e) {
                        return drop(info);
                    }
                    buffer.make_mut().set_pts(gst::ClockTime::from_nseconds(t));
                    gst::PadProbeReturn::Ok
                },
            );
        }
        read_into(&pipeline, &audio.path, "audio", sink)?;
    }
    Ok(pipeline)
}

/// What the run found and how long each stage took, for the summary.
#[derive(Default)]
struct Outcome {
    alignment: Option<messages::Alignment>,
    reading: Option<Duration>,
    analysis: Option<Duration>,
    encoding: Option<Duration>,
    warnings: Vec<String>,
}

fn run(args: &Args) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    gstvidkompy::plugin_register_static().map_err(|e| e.to_string())?;
    let bg = probe(&args.bg)?;
    let fg = probe(&args.fg)?;
    if let Some(a) = &args.alignment
        && !a.is_file()
    {
        return Err(format!("{}: no such file", a.display()));
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&args.bg, &args.fg));
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    let same = |p: &Path| {
        std::fs::canonicalize(p).ok() == std::fs::canonicalize(&output).ok() && output.exists()
    };
    if same(&args.bg) || same(&args.fg) {
        return Err(format!(
            "{}: the output would overwrite an input",
            output.display()
        ));
    }
    // The plot is drawn from the element's report.
    let temp_report = match (&args.plot, &args.report) {
        (Some(_), None) => Some(
            tempfile::Builder::new()
                .prefix("vidkompy-")
                .suffix(".json")
                .tempfile()
                .map_err(|e| format!("cannot create a temporary file for the plot's data: {e}"))?
                .into_temp_path(),
        ),
        _ => None,
    };
    let audio = if fg.audio {
        Some(Audio {
            path: args.fg.clone(),
            shifted: false,
            end: None,
        })
    } else if bg.audio {
        Some(Audio {
            path: args.bg.clone(),
            shifted: true,
            end: fg.duration.map(|d| d.nseconds()),
        })
    } else {
        None
    };
    let plan = Plan {
        args,
        output,
        temp_report,
        audio,
    };
    let shift = Arc::new(Shift::default());
    let out_frames = Arc::new(AtomicU64::new(0));
    let pipeline = build(&plan, &shift, &out_frames)?;
    let result = run_pipeline(&pipeline, &plan, &bg, &fg, &shift, &out_frames);
    // Nothing may stay blocked on the offset while the pipeline stops.
    shift.set(None);
    let _ = pipeline.set_state(gst::State::Null);
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            // No half-written output is left behind.
            let _ = std::fs::remove_file(&plan.output);
            return Err(e);
        }
    };
    let plotted = match (&args.plot, plan.report()) {
        (Some(svg), Some(report)) => {
            let r = gstvidkompy::report::Report::read(report).map_err(|e| e.to_string())?;
            gstvidkompy::plot::write_svg(&r, svg)?;
            Some(svg.clone())
        }
        _ => None,
    };
    if !args.quiet {
        summary(&plan, &outcome, plotted.as_deref());
    }
    Ok(())
}

/// Frames of a stream of `duration` at `fps`.
fn frames_of(m: &Media) -> Option<u64> {
    let (d, fps) = (m.duration?, m.fps?);
    Some(d.nseconds() * fps.numer() as u64 / (fps.denom() as u64 * 1_000_000_000))
}

fn run_pipeline(
    pipeline: &gst::Pipeline,
    plan: &Plan<'_>,
    bg: &Media,
    fg: &Media,
    shift: &Shift,
    out_frames: &AtomicU64,
) -> Result<Outcome, String> {
    let args = plan.args;
    let multi = MultiProgress::with_draw_target(if args.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style =
        ProgressStyle::with_template("{prefix:>9} [{bar:32}] {pos}/{len} frames {msg} (eta {eta})")
            .map_err(|e| e.to_string())?
            .progress_chars("=> ");
    let total = frames_of(fg).unwrap_or(0);
    // The first pass's bar, shown once the element says it reads one (two passes, stored).
    let reading = ProgressBar::new(total).with_style(style.clone());
    reading.set_prefix("analysis");
    let mut reading_shown = false;
    let encoding = multi.add(ProgressBar::new(total).with_style(style));
    encoding.set_prefix("encoding");

    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The element that refused says why on the bus.
        let why = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => None,
            });
        return Err(why.unwrap_or_else(|| "cannot start the pipeline".into()));
    }
    let start = Instant::now();
    let mut out = Outcome::default();
    let mut aligned_at = None;
    let bg_frame_ns = bg
        .fps
        .map(|f| 1e9 * f.denom() as f64 / f.numer() as f64)
        .unwrap_or(0.0);
    loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            if aligned_at.is_some() {
                encoding.set_position(out_frames.load(Ordering::Relaxed));
            }
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
                let detail = debug.lines().next().unwrap_or("");
                return Err(if detail.is_empty() {
                    e.error().to_string()
                } else {
                    format!("{} ({detail})", e.error())
                });
            }
            gst::MessageView::Warning(w) => out.warnings.push(w.error().to_string()),
            // The element raised its latency (live, `max-lookahead`): configure the
            // pipeline's again.
            gst::MessageView::Latency(_) => {
                let _ = pipeline.recalculate_latency();
            }
            gst::MessageView::Element(_) => {
                if let Some(Ok(p)) = Progress::from_message(&msg) {
                    match p {
                        Progress::Reading { done, total, .. } => {
                            if !reading_shown {
                                reading_shown = true;
                                multi.insert_before(&encoding, reading.clone());
                            }
                            if let Some(t) = total {
                                reading.set_length(t);
                                encoding.set_length(t);
                            }
                            reading.set_position(done);
                        }
                        Progress::Analysis { .. } => {
                            out.reading.get_or_insert(start.elapsed());
                            reading.set_message("analysing");
                        }
                        // The short pass that reads again the frames the refinement needs.
                        Progress::Fetch { .. } => {
                            reading.set_message("fetching frames to refine on")
                        }
                        Progress::Output { .. } => (),
                    }
                } else if let Some(a) = messages::Alignment::from_message(&msg) {
                    let a = a.map_err(|e| format!("the element's message: {e}"))?;
                    // The element's own decision: the fg's content was not found.
                    if a.footprint_from == FootprintFrom::Fallback {
                        return Err(format!(
                            "nothing matched: the fg was not found in the bg (calibrated \
                             spatial confidence {:.3}); give --x, --y and --scale to place it",
                            a.spatial_calibrated
                        ));
                    }
                    let analysis = Duration::from_nanos(a.analysis_time.nseconds());
                    out.analysis = Some(analysis);
                    // Reading ends where the analysis starts (its progress message), else
                    // the analysis time before now.
                    let now = start.elapsed();
                    out.reading.get_or_insert(now.saturating_sub(analysis));
                    // The bg's audio from the moment of its first matched frame on.
                    let at = a.first_bg_time.map_or_else(
                        || (a.first_bg_frame as f64 * bg_frame_ns).round() as u64,
                        |t| t.nseconds(),
                    );
                    shift.set(Some(at));
                    reading.set_length(a.fg_frames);
                    reading.set_position(a.fg_frames);
                    reading.finish_with_message("done");
                    // A windowed run posts one as its first window is placed and one for the
                    // whole run at its end: output starts at the first.
                    if a.fg_frames > encoding.length().unwrap_or(0) {
                        encoding.set_length(a.fg_frames);
                    }
                    aligned_at.get_or_insert(Instant::now());
                    out.alignment = Some(a);
                }
            }
            _ => (),
        }
    }
    encoding.set_position(out_frames.load(Ordering::Relaxed));
    encoding.finish_with_message("done");
    out.encoding = aligned_at.map(|t| t.elapsed());
    Ok(out)
}

fn summary(plan: &Plan<'_>, out: &Outcome, plot: Option<&Path>) {
    let args = plan.args;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{} + {} -> {}",
        args.bg.display(),
        args.fg.display(),
        plan.output.display()
    );
    if let Some(a) = &out.alignment {
        let f = &a.footprint;
        println!(
            "  fg at x={:.2} y={:.2} scale={:.4}: a {}x{} footprint at ({}, {}) in the bg",
            a.x, a.y, a.scale, f.width, f.height, f.x, f.y
        );
        println!(
            "  confidence: spatial {:.3} (calibrated {:.3}), temporal {:.3}; frames mapped by {}",
            a.spatial_confidence, a.spatial_calibrated, a.temporal_confidence, a.mapping
        );
        println!(
            "  {} fg frames over bg frames {}..={}; device {}",
            a.fg_frames, a.first_bg_frame, a.last_bg_frame, a.device
        );
    }
    let secs =
        |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!(
        "  time: reading {}, analysis {}, compositing and encoding {}",
        secs(out.reading),
        secs(out.analysis),
        secs(out.encoding)
    );
    if let Some(a) = &plan.audio {
        println!(
            "  audio: from {}{}",
            a.path.display(),
            if a.shifted {
                ", shifted by the offset found"
            } else {
                ""
            }
        );
    }
    if let Some(r) = &args.report {
        println!("  report: {}", r.display());
    }
    if let Some(p) = plot {
        println!("  plot: {}", p.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_output_is_named_after_both_inputs_like_the_python_tool_s() {
        assert_eq!(
            default_output(Path::new("/videos/wide.mkv"), Path::new("close.take2.mp4")),
            PathBuf::from("wide_overlay_close.take2.mp4")
        );
    }

    #[test]
    fn flags_parse_as_documented() {
        let a = Args::try_parse_from([
            "vidkompy",
            "bg.mp4",
            "fg.mp4",
            "--x",
            "10",
            "--scale",
            "0.5",
            "--codec",
            "h265",
            "--quality",
            "30",
            "-q",
            "--match-region",
            "edges",
            "--device",
            "cpu",
        ])
        .unwrap();
        assert_eq!((a.x, a.y, a.scale), (Some(10), None, Some(0.5)));
        assert_eq!((a.codec, a.quality, a.quiet), (Codec::H265, 30, true));
        assert!(Args::try_parse_from(["vidkompy", "bg.mp4", "fg.mp4", "--quality", "52"]).is_err());
        assert!(Args::try_parse_from(["vidkompy", "bg.mp4"]).is_err());
    }
}
