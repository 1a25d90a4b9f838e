// SPDX-License-Identifier: MIT

//! Shared by the integration tests and the examples (included with `#[path]`): where real
//! footage lies, and small helpers to run pipelines.

#![allow(dead_code)]

use gst::prelude::*;
use std::path::{Path, PathBuf};

pub mod truth;

/// Where `.ci/install-deps` unpacks the sample clips of Debian's `opencv-doc` package, under the
/// checkout: the tests read footage from there alone, never from beside the checkout.
pub const CLIPS: &str = "target/footage/usr/share/doc/opencv-doc/examples/data";

/// Where `.ci/install-deps` puts the opencv-doc sample clip `name` (see [`opencv_clip`]).
pub fn clip_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(CLIPS).join(name)
}

/// A sample clip of Debian's opencv-doc package as `.ci/install-deps` unpacks it: `vtest.avi`
/// (static camera, pedestrians, 768x576 at 10 fps), `Megamind.avi` and `Megamind_bugy.avi`
/// (animation, 720x528 at 23.976 fps; the second with damaged frames), `tree.avi` (320x240),
/// and `box.mp4` and `cup.mp4` (hand-held objects, 640x480 at 25 fps; gunzipped from its HTML
/// docs). Panics naming the command that fetches it when it is missing: a test without its
/// footage must fail, not pass.
pub fn opencv_clip(name: &str) -> PathBuf {
    let p = clip_path(name);
    assert!(
        p.is_file(),
        "missing footage {}: run `bash .ci/install-deps` in the checkout",
        p.display()
    );
    p
}

/// The real clip most tests derive their pairs from: opencv-doc's vtest.avi (a static camera
/// over a street with pedestrians, 768x576 at 10 fps), decoded at the sizes the tests need
/// (cropped to their aspect ratio first, see [`fit_rect`]).
pub fn footage() -> PathBuf {
    opencv_clip("vtest.avi")
}

/// The largest centred rectangle (x, y, w, h) of a `w`x`h` frame with the aspect ratio of
/// `aspect`, on even coordinates and sizes (I420 crops at even lines and columns): cropping to
/// it before scaling to a size of that aspect ratio adds no borders and stretches nothing.
pub fn fit_rect((w, h): (u32, u32), aspect: (u32, u32)) -> (u32, u32, u32, u32) {
    let (aw, ah) = (u64::from(aspect.0.max(1)), u64::from(aspect.1.max(1)));
    let (fw, fh) = if u64::from(w) * ah > u64::from(h) * aw {
        ((u64::from(h) * aw / ah) as u32, h)
    } else {
        (w, (u64::from(w) * ah / aw) as u32)
    };
    let (fw, fh) = (fw & !1, fh & !1);
    (((w - fw) / 2) & !1, ((h - fh) / 2) & !1, fw, fh)
}

/// `frame` (of `info`) with the rectangle `rect` (x, y, w, h in its pixels) scaled to `out`
/// (I420), through GStreamer's video converter.
pub fn convert_rect(
    frame: &gst::Buffer,
    info: &gst_video::VideoInfo,
    rect: (u32, u32, u32, u32),
    out: &gst_video::VideoInfo,
) -> Result<gst::Buffer, String> {
    let mut config = gst_video::VideoConverterConfig::new();
    config.set_src_x(rect.0 as i32);
    config.set_src_y(rect.1 as i32);
    config.set_src_width(Some(rect.2 as i32));
    config.set_src_height(Some(rect.3 as i32));
    let conv =
        gst_video::VideoConverter::new(info, out, Some(config)).map_err(|e| e.to_string())?;
    let inf = gst_video::VideoFrame::from_buffer_readable(frame.clone(), info)
        .map_err(|_| "unreadable frame".to_string())?;
    let buf = gst::Buffer::with_size(out.size()).map_err(|e| e.to_string())?;
    let mut of = gst_video::VideoFrame::from_buffer_writable(buf, out)
        .map_err(|_| "unwritable frame".to_string())?;
    conv.frame(&inf, &mut of);
    Ok(of.into_buffer())
}

/// Runs a `gst-launch`-style description to EOS, failing with the first error's text.
pub fn run_to_eos(pipeline: &gst::Element, timeout_s: u64) -> Result<(), String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start the pipeline: {e}"))?;
    let bus = pipeline.bus().ok_or("pipeline without a bus")?;
    let res = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(timeout_s),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        None => Err(format!("no EOS within {timeout_s} s")),
        Some(m) => match m.view() {
            gst::MessageView::Error(e) => Err(format!(
                "{}: {} ({:?})",
                e.src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default(),
                e.error(),
                e.debug()
            )),
            _ => Ok(()),
        },
    };
    let _ = pipeline.set_state(gst::State::Null);
    res
}

/// Parses and runs a launch line to EOS.
pub fn launch(desc: &str, timeout_s: u64) -> Result<(), String> {
    let p = gst::parse::launch(desc).map_err(|e| format!("{desc}: {e}"))?;
    run_to_eos(&p, timeout_s)
}

/// A launch-line path, quoted.
pub fn q(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// The element `name` of a launched pipeline, as `T`.
pub fn element<T: IsA<gst::Element>>(pipeline: &gst::Element, name: &str) -> Result<T, String> {
    pipeline
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name(name))
        .and_then(|e| e.downcast::<T>().ok())
        .ok_or_else(|| format!("no {} named {name}", T::static_type().name()))
}

/// Decodes frames `skip..skip + n` of `src` (fewer if it is shorter), in I420 at full size or
/// at `size`: the largest centred part of the frame with `size`'s aspect ratio, scaled
/// ([`fit_rect`]; no borders are added).
pub fn decode_frames(
    src: &Path,
    skip: usize,
    n: usize,
    size: Option<(u32, u32)>,
) -> Result<(Vec<gst::Buffer>, gst_video::VideoInfo), String> {
    let head = format!("filesrc location={} ! decodebin", q(src));
    frames_of(&head, &src.display().to_string(), skip, n, size)
}

/// [`decode_frames`] of what the launch fragment `head` (a source, up to raw video) delivers;
/// `what` names it in errors.
pub fn frames_of(
    head: &str,
    what: &str,
    skip: usize,
    n: usize,
    size: Option<(u32, u32)>,
) -> Result<(Vec<gst::Buffer>, gst_video::VideoInfo), String> {
    let p = gst::parse::launch(&format!(
        "{head} ! videoconvert ! video/x-raw,format=I420 ! \
         appsink name=s sync=false max-buffers=4"
    ))
    .map_err(|e| e.to_string())?;
    let sink: gst_app::AppSink = element(&p, "s")?;
    p.set_state(gst::State::Playing)
        .map_err(|e| format!("cannot decode {what}: {e}"))?;
    let mut frames = Vec::with_capacity(n);
    // The decoded frames' info, and the scaled frames' with the rectangle scaled from.
    let mut infos: Option<(gst_video::VideoInfo, Option<(gst_video::VideoInfo, _)>)> = None;
    let mut index = 0;
    let res = loop {
        if frames.len() >= n {
            break Ok(());
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) else {
            break Ok(());
        };
        if infos.is_none() {
            let caps = sample.caps().ok_or("no caps")?;
            let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
            let scaled = match size {
                None => None,
                Some((w, h)) => {
                    let out = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
                        .fps(info.fps())
                        .build()
                        .map_err(|e| e.to_string())?;
                    Some((out, fit_rect((info.width(), info.height()), (w, h))))
                }
            };
            infos = Some((info, scaled));
        }
        if index >= skip
            && let Some(b) = sample.buffer_owned()
            && let Some((info, scaled)) = &infos
        {
            match scaled {
                None => frames.push(b),
                Some((out, rect)) => match convert_rect(&b, info, *rect, out) {
                    Ok(f) => frames.push(f),
                    Err(e) => break Err(e),
                },
            }
        }
        index += 1;
    };
    let _ = p.set_state(gst::State::Null);
    res?;
    let (info, scaled) = infos.ok_or_else(|| format!("no frame decoded from {what}"))?;
    Ok((frames, scaled.map_or(info, |(out, _)| out)))
}

/// Encodes `frames` (of `info`) at `fps` through `filter` (a launch fragment ending in raw
/// video) to H.264 in Matroska at `out`. Frame `i` gets the timestamp `i / fps`.
pub fn encode(
    frames: &[gst::Buffer],
    info: &gst_video::VideoInfo,
    fps: gst::Fraction,
    filter: &str,
    out: &Path,
) -> Result<(), String> {
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time ! {filter} ! x264enc speed-preset=ultrafast key-int-max=12 ! \
         matroskamux ! filesink location={}",
        q(out)
    ))
    .map_err(|e| e.to_string())?;
    let src: gst_app::AppSrc = element(&p, "src")?;
    let caps = gst_video::VideoInfo::builder(info.format(), info.width(), info.height())
        .fps(fps)
        .build()
        .and_then(|i| i.to_caps())
        .map_err(|e| e.to_string())?;
    src.set_caps(Some(&caps));
    src.set_max_bytes(4 * info.size() as u64);
    src.set_block(true);
    let at = move |i: u64| {
        gst::ClockTime::SECOND
            .mul_div_floor(i * fps.denom() as u64, fps.numer() as u64)
            .unwrap_or(gst::ClockTime::ZERO)
    };
    let frames = frames.to_vec();
    let feeder = std::thread::spawn(move || {
        for (i, f) in frames.into_iter().enumerate() {
            let mut b = f.copy();
            {
                let b = b.make_mut();
                b.set_pts(at(i as u64));
                b.set_duration(at(i as u64 + 1) - at(i as u64));
            }
            if src.push_buffer(b).is_err() {
                return;
            }
        }
        let _ = src.end_of_stream();
    });
    let res = run_to_eos(&p, 120);
    let _ = feeder.join();
    res
}

/// The frame rate of the pairs [`make_pair`] writes (the tests count time in its frames).
pub const PAIR_FPS: i32 = 24;

/// Writes a ground-truth pair derived from the first frames of `src` into `dir`:
/// - `bg.mkv`: the clip scaled to `bg_w`x`bg_h`, `bg_frames` frames from its start;
/// - `fg.mkv`: the region of the clip that maps to the footprint (`fx`, `fy`, `fw`x`fh` in
///   bg pixels), at `fg_scale`x the footprint's resolution, re-graded brighter, `fg_frames`
///   frames from source frame `fg_skip` on.
///
/// Both re-timed to [`PAIR_FPS`], whatever the source's rate, so fg frame `i` shows bg frame
/// `fg_skip + i` at `fg_skip / 24` s.
/// Returns (bg, fg) paths.
#[allow(clippy::too_many_arguments)]
pub fn make_pair(
    src: &Path,
    dir: &Path,
    bg_size: (u32, u32),
    bg_frames: usize,
    footprint: (u32, u32, u32, u32),
    fg_scale: f64,
    fg_range: (usize, usize),
) -> Result<(PathBuf, PathBuf), String> {
    make_pair_from(
        src,
        dir,
        bg_size,
        (0, bg_frames),
        footprint,
        fg_scale,
        fg_range,
    )
}

/// As [`make_pair`], the bg starting at source frame `bg_skip`: fg frame i shows bg frame
/// `fg_skip + i - bg_skip`.
pub fn make_pair_from(
    src: &Path,
    dir: &Path,
    (bg_w, bg_h): (u32, u32),
    (bg_skip, bg_frames): (usize, usize),
    (fx, fy, fw, fh): (u32, u32, u32, u32),
    fg_scale: f64,
    (fg_skip, fg_frames): (usize, usize),
) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let (frames, info) =
        decode_frames(src, 0, (bg_skip + bg_frames).max(fg_skip + fg_frames), None)?;
    let fps = gst::Fraction::new(PAIR_FPS, 1);
    let bg = dir.join("bg.mkv");
    let fg = dir.join("fg.mkv");
    // The bg shows the largest centred part of the source with its aspect ratio, scaled: no
    // borders, no stretch, whatever the source's aspect ratio.
    let (w, h) = (info.width(), info.height());
    let (rx, ry, rw, rh) = fit_rect((w, h), (bg_w, bg_h));
    let crop = |left: u32, top: u32, cw: u32, ch: u32| {
        format!(
            "videocrop left={left} right={} top={top} bottom={} ! videoscale add-borders=false",
            w - left - cw,
            h - top - ch
        )
    };
    encode(
        &frames[bg_skip.min(frames.len())..(bg_skip + bg_frames).min(frames.len())],
        &info,
        fps,
        &format!(
            "{} ! video/x-raw,width={bg_w},height={bg_h},pixel-aspect-ratio=1/1",
            crop(rx, ry, rw, rh)
        ),
        &bg,
    )?;
    // The footprint in source pixels: that part of the source is scaled to the bg's size.
    let sx = f64::from(rw) / f64::from(bg_w);
    let sy = f64::from(rh) / f64::from(bg_h);
    let px = |v: u32, s: f64| (f64::from(v) * s).round() as u32;
    let out_w = ((fw as f64 * fg_scale).round() as u32) & !1;
    let out_h = ((fh as f64 * fg_scale).round() as u32) & !1;
    encode(
        &frames[fg_skip.min(frames.len())..(fg_skip + fg_frames).min(frames.len())],
        &info,
        fps,
        &format!(
            "{} ! video/x-raw,width={out_w},height={out_h},pixel-aspect-ratio=1/1 ! \
             videobalance brightness=0.25 ! videoconvert ! video/x-raw,format=I420",
            crop(rx + px(fx, sx), ry + px(fy, sy), px(fw, sx), px(fh, sy))
        ),
        &fg,
    )?;
    Ok((bg, fg))
}

/// What an appsink received: its buffers and the caps of the first sample.
pub type Collected = std::sync::Arc<std::sync::Mutex<(Vec<gst::Buffer>, Option<gst::Caps>)>>;

/// Collects every sample `sink` receives.
pub fn collect(sink: &gst_app::AppSink) -> Collected {
    let frames: Collected = Default::default();
    let f2 = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let mut g = f2.lock().map_err(|_| gst::FlowError::Error)?;
                if g.1.is_none() {
                    g.1 = sample.caps_owned();
                }
                if let Some(b) = sample.buffer_owned() {
                    g.0.push(b);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    frames
}

/// Every decoded frame of a pipeline ending in `appsink name=s`, with its caps.
pub fn collect_frames(
    desc: &str,
    timeout_s: u64,
) -> Result<(Vec<gst::Buffer>, Option<gst::Caps>), String> {
    let p = gst::parse::launch(desc).map_err(|e| format!("{desc}: {e}"))?;
    let sink: gst_app::AppSink = element(&p, "s")?;
    let frames = collect(&sink);
    run_to_eos(&p, timeout_s)?;
    let mut g = frames.lock().unwrap();
    Ok((std::mem::take(&mut g.0), g.1.take()))
}

/// What a pipeline ending in `appsink name=s` produced: frames, caps, and the element messages
/// (structures) posted on the bus, in order.
#[derive(Debug)]
pub struct Run {
    pub frames: Vec<gst::Buffer>,
    pub caps: Option<gst::Caps>,
    pub messages: Vec<gst::Structure>,
}

impl Run {
    /// The last element message named `name`.
    pub fn message(&self, name: &str) -> Option<&gst::Structure> {
        self.messages.iter().rev().find(|s| s.name() == name)
    }

    /// Every element message of type `M`, in order, read through `gstvidkompy::messages` (one
    /// that does not read fails the test).
    pub fn all<M: gstvidkompy::messages::ElementMessage>(&self) -> Vec<M> {
        self.messages
            .iter()
            .filter(|s| s.name() == M::NAME)
            .map(|s| M::from_structure(s).unwrap_or_else(|e| panic!("{e}: {s}")))
            .collect()
    }

    /// The last element message of type `M`.
    pub fn last<M: gstvidkompy::messages::ElementMessage>(&self) -> Option<M> {
        self.all().pop()
    }
}

/// Watches the `splitmuxsrc` elements of a parsed pipeline for a known GStreamer 1.22 race:
/// the part reader measures a part's length by seeking near its end, and now and then that
/// seek's segment reaches playback, so the stream starts at that time (its first frames
/// clipped away) although nothing sought. The flag is set when a `splitmuxsrc` pushes a first
/// segment (before any flush) that does not start at stream time 0: the run's input was not
/// the file, and says nothing of the element under test.
pub fn splitmux_fault(p: &gst::Element) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let fault = Arc::new(AtomicBool::new(false));
    let Some(bin) = p.downcast_ref::<gst::Bin>() else {
        return fault;
    };
    let splitmux = bin.iterate_recurse().into_iter().flatten().filter(|e| {
        e.factory()
            .is_some_and(|f| f.name().as_str() == "splitmuxsrc")
    });
    for e in splitmux {
        let fault = fault.clone();
        e.connect_pad_added(move |_, pad| {
            let fault = fault.clone();
            let flushed = AtomicBool::new(false);
            pad.add_probe(
                gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::EVENT_FLUSH,
                move |_, info| {
                    match info.event().map(|e| e.view()) {
                        Some(gst::EventView::FlushStop(_)) => {
                            flushed.store(true, Ordering::Release);
                        }
                        Some(gst::EventView::Segment(s)) if !flushed.load(Ordering::Acquire) => {
                            let time = s
                                .segment()
                                .downcast_ref::<gst::ClockTime>()
                                .and_then(|s| s.time());
                            if time.is_some_and(|t| t > gst::ClockTime::ZERO) {
                                fault.store(true, Ordering::Release);
                            }
                        }
                        _ => (),
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        });
    }
    fault
}

/// How often a run whose `splitmuxsrc` input hit the race of [`splitmux_fault`] is made again.
pub const SPLITMUX_TRIES: usize = 3;

/// Runs a launch line ending in `appsink name=s` to EOS, collecting frames and element
/// messages; the first error's text otherwise. A run whose `splitmuxsrc` started at the wrong
/// time ([`splitmux_fault`]) is made again, up to [`SPLITMUX_TRIES`] times.
pub fn run_collect(desc: &str, timeout_s: u64) -> Result<Run, String> {
    for _ in 1..SPLITMUX_TRIES {
        match run_collect_once(desc, timeout_s) {
            Err(Fault::Splitmux) => {
                eprintln!("splitmuxsrc started late (GStreamer race), running again: {desc}");
            }
            r => return r.map_err(|e| e.to_string()),
        }
    }
    run_collect_once(desc, timeout_s).map_err(|e| e.to_string())
}

/// Why [`run_collect_once`] gave no run.
enum Fault {
    Splitmux,
    Failed(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Splitmux => write!(
                f,
                "splitmuxsrc started at the wrong time in {SPLITMUX_TRIES} runs (GStreamer race)"
            ),
            Fault::Failed(e) => f.write_str(e),
        }
    }
}

impl From<String> for Fault {
    fn from(e: String) -> Self {
        Fault::Failed(e)
    }
}

impl From<&str> for Fault {
    fn from(e: &str) -> Self {
        Fault::Failed(e.to_string())
    }
}

fn run_collect_once(desc: &str, timeout_s: u64) -> Result<Run, Fault> {
    let p = gst::parse::launch(desc).map_err(|e| format!("{desc}: {e}"))?;
    let fault = splitmux_fault(&p);
    let sink: gst_app::AppSink = element(&p, "s")?;
    let frames = collect(&sink);
    p.set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start the pipeline: {e}"))?;
    let bus = p.bus().ok_or("pipeline without a bus")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_s);
    let mut messages = Vec::new();
    let res = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(m) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Warning,
                gst::MessageType::Element,
                gst::MessageType::Latency,
            ],
        ) else {
            break Err(format!("no EOS within {timeout_s} s"));
        };
        match m.view() {
            // An element's latency changed: the pipeline's is configured again.
            gst::MessageView::Latency(_) => {
                if let Some(bin) = p.downcast_ref::<gst::Bin>() {
                    let _ = bin.recalculate_latency();
                }
            }
            gst::MessageView::Error(e) => break Err(format!("{} ({:?})", e.error(), e.debug())),
            gst::MessageView::Eos(_) => break Ok(()),
            // Warnings as structures named "warning", with their text.
            gst::MessageView::Warning(w) => messages.push(
                gst::Structure::builder("warning")
                    .field("text", w.error().to_string())
                    .build(),
            ),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    messages.push(s.to_owned());
                }
            }
            _ => (),
        }
    };
    let _ = p.set_state(gst::State::Null);
    if fault.load(std::sync::atomic::Ordering::Acquire) {
        return Err(Fault::Splitmux);
    }
    res?;
    let mut g = frames.lock().map_err(|_| "poisoned")?;
    Ok(Run {
        frames: std::mem::take(&mut g.0),
        caps: g.1.take(),
        messages,
    })
}

/// This process's peak resident memory (VmHWM) in KiB, on Linux.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs this executable again as `EXE --run ARGS...` (a benchmark's child, so that each
/// pipeline's peak memory is its own) and parses the numbers it prints on stdout (NaN where a
/// field is not a number).
pub fn run_child(args: &[&std::ffi::OsStr]) -> Result<Vec<f64>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .arg("--run")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{:?}: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|s| s.parse::<f64>().unwrap_or(f64::NAN))
        .collect())
}

/// The plugin file cargo built for this test run, alone in a directory (for gst-launch).
pub fn plugin_copy(dir: &std::path::Path) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let name = format!(
        "{}gstvidkompy{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(exe.parent().unwrap().join(&name), plugins.join(&name)).unwrap();
    plugins
}

/// GStreamer initialised and this crate's plugin registered, once per process.
pub fn init_plugin() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvidkompy::plugin_register_static().unwrap();
    });
}

/// A small ground-truth pair of H.264 files from real footage, in a directory of its own
/// (`vidkompy-<tag>-<pid>`): a 320x180 bg of `bg_frames` frames and a fg of the 160x90 region
/// at (80, 46) recorded at 2x, `fg.1` frames long, starting at bg frame `fg.0` (fg frame i shows
/// bg frame `fg.0 + i`).
pub fn small_pair(tag: &str, bg_frames: usize, fg: (usize, usize)) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("vidkompy-{tag}-{}", std::process::id()));
    let (bg, fg) = make_pair(
        &footage(),
        &dir,
        (320, 180),
        bg_frames,
        (80, 46, 160, 90),
        2.0,
        fg,
    )
    .unwrap_or_else(|e| panic!("cannot make the {tag} pair: {e}"));
    (dir, bg, fg)
}
