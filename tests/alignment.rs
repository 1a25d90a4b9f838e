// SPDX-License-Identifier: MIT

//! Automatic alignment through the real element in a real pipeline, on ground-truth pairs
//! derived from real footage: the bg is the clip scaled to 640x360; the fg is a region of it
//! cropped, recorded at a higher resolution than its footprint, re-graded, re-timed. Truth is
//! the source frame every fg and bg frame shows.
//!
//! Which bg frame the element chose for each output frame is read back from the output itself:
//! outside the footprint the output is an exact copy of that bg frame.

mod common;

use gst::glib;
use gst::prelude::*;
use gst_video::prelude::*;
use std::collections::HashMap;
use std::sync::{Once, OnceLock};

const SRC_FRAMES: usize = 140;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvidkompy::plugin_register_static().unwrap();
    });
}

struct Source {
    frames: Vec<gst::Buffer>,
    info: gst_video::VideoInfo,
}

/// The first frames of a real clip, decoded once per test binary. Absent footage skips; footage
/// that does not decode fails.
fn load(path: Option<std::path::PathBuf>, size: Option<(u32, u32)>) -> Option<Source> {
    init();
    let path = path?;
    let (frames, info) = common::decode_frames(&path, 0, SRC_FRAMES, size)
        .unwrap_or_else(|e| panic!("cannot decode {}: {e}", path.display()));
    assert_eq!(frames.len(), SRC_FRAMES, "{} is too short", path.display());
    Some(Source { frames, info })
}

/// The project's clip (starlight: a person talking, steady camera) at 960x540.
fn source() -> Option<&'static Source> {
    static SOURCE: OnceLock<Option<Source>> = OnceLock::new();
    SOURCE
        .get_or_init(|| load(common::footage(), Some((960, 540))))
        .as_ref()
}

/// opencv-doc's vtest.avi (static camera, pedestrians; 768x576 at 10 fps).
fn vtest() -> Option<&'static Source> {
    static SOURCE: OnceLock<Option<Source>> = OnceLock::new();
    SOURCE
        .get_or_init(|| load(common::opencv_clip("vtest.avi"), None))
        .as_ref()
}

macro_rules! footage_or_skip {
    () => {
        footage_or_skip!(source())
    };
    ($src:expr) => {
        match $src {
            Some(s) => s,
            None => {
                eprintln!(
                    "SKIPPED: no real footage (../shared/data/starlight-1080p24.mp4 or \
                     opencv-doc's vtest.avi; run .ci/install-deps)"
                );
                return;
            }
        }
    };
}

/// Crops `rect` (source px) out of a source frame and scales it to `out`, with GStreamer's
/// converter; fades it towards black by `fade` (1 = untouched, 0 = black), optionally flips it
/// upside down and re-grades luma.
fn derive(
    src: &Source,
    index: usize,
    rect: (u32, u32, u32, u32),
    out: (u32, u32),
    fade: f32,
    grade: (f32, f32),
    flip: bool,
) -> gst::Buffer {
    let out_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, out.0, out.1)
        .fps(src.info.fps())
        .build()
        .unwrap();
    let mut config = gst_video::VideoConverterConfig::new();
    config.set_src_x(rect.0 as i32);
    config.set_src_y(rect.1 as i32);
    config.set_src_width(Some(rect.2 as i32));
    config.set_src_height(Some(rect.3 as i32));
    let conv = gst_video::VideoConverter::new(&src.info, &out_info, Some(config)).unwrap();
    let inf =
        gst_video::VideoFrame::from_buffer_readable(src.frames[index].clone(), &src.info).unwrap();
    let buf = gst::Buffer::with_size(out_info.size()).unwrap();
    let mut of = gst_video::VideoFrame::from_buffer_writable(buf, &out_info).unwrap();
    conv.frame(&inf, &mut of);
    if grade != (1.0, 0.0) || flip || fade < 1.0 {
        for p in 0..3 {
            let stride = of.plane_stride()[p as usize] as usize;
            let h = of.comp_height(p) as usize;
            let data = of.plane_data_mut(p).unwrap();
            if fade < 1.0 {
                let black = if p == 0 { 16.0 } else { 128.0 };
                for v in data.iter_mut() {
                    *v = (black + (f32::from(*v) - black) * fade).round() as u8;
                }
            }
            if p == 0 && grade != (1.0, 0.0) {
                for v in data.iter_mut() {
                    *v = (f32::from(*v) * grade.0 + grade.1)
                        .round()
                        .clamp(0.0, 255.0) as u8;
                }
            }
            if flip {
                for y in 0..h / 2 {
                    let (a, b) = data.split_at_mut((h - 1 - y) * stride);
                    a[y * stride..y * stride + stride].swap_with_slice(&mut b[..stride]);
                }
            }
        }
    }
    of.into_buffer()
}

/// `dst` with everything but an outer margin of `margin` px (even) taken from `src`.
fn paste_interior(
    dst: gst::Buffer,
    src: &gst::Buffer,
    size: (u32, u32),
    margin: u32,
) -> gst::Buffer {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, size.0, size.1)
        .build()
        .unwrap();
    let sf = gst_video::VideoFrame::from_buffer_readable(src.clone(), &info).unwrap();
    let mut df = gst_video::VideoFrame::from_buffer_writable(dst, &info).unwrap();
    for p in 0..3u32 {
        let sub = if p == 0 { 0 } else { 1 };
        let (w, h) = (df.comp_width(p) as usize, df.comp_height(p) as usize);
        let m = (margin >> sub) as usize;
        let stride = df.plane_stride()[p as usize] as usize;
        let s_data = sf.plane_data(p).unwrap().to_vec();
        let d = df.plane_data_mut(p).unwrap();
        for y in m..h - m {
            d[y * stride + m..y * stride + w - m]
                .copy_from_slice(&s_data[y * stride + m..y * stride + w - m]);
        }
    }
    df.into_buffer()
}

struct Case {
    bg_size: (u32, u32),
    /// Source frame shown by each bg frame, at `bg_fps`.
    bg_src: Vec<usize>,
    bg_fps: i32,
    /// Footprint in bg px.
    footprint: (u32, u32, u32, u32),
    /// fg px per footprint px.
    fg_scale: f64,
    /// Source frame shown by each fg frame, at `fg_fps`.
    fg_src: Vec<usize>,
    fg_fps: i32,
    grade: (f32, f32),
    flip: bool,
    /// The first `.0` source frames are black, the next `.1` fade in from black.
    black_fade: (usize, usize),
    /// The fg's interior, all but an outer margin of `.1` fg px, shows the source frame `.0`
    /// frames later (a fg whose interior differs from the bg).
    interior: Option<(usize, u32)>,
    /// Element properties set by hand.
    props: Vec<(&'static str, glib::Value)>,
}

impl Case {
    fn new(bg_src: Vec<usize>, fg_src: Vec<usize>) -> Case {
        Case {
            bg_size: (640, 360),
            bg_src,
            bg_fps: 24,
            // Source-px crop offsets even: GStreamer's converter crops I420 at even lines and
            // columns, so an odd crop offset would shift the fg by one source line.
            footprint: (200, 88, 320, 180),
            fg_scale: 1.5,
            fg_src,
            fg_fps: 24,
            grade: (0.8, 30.0),
            flip: false,
            black_fade: (0, 0),
            interior: None,
            props: Vec::new(),
        }
    }

    /// How far source frame `k` is faded in.
    fn fade(&self, k: usize) -> f32 {
        let (black, fade) = self.black_fade;
        if k < black {
            0.0
        } else if k < black + fade {
            (k - black + 1) as f32 / (fade + 1) as f32
        } else {
            1.0
        }
    }

    fn fg_size(&self) -> (u32, u32) {
        (
            (self.footprint.2 as f64 * self.fg_scale).round() as u32,
            (self.footprint.3 as f64 * self.fg_scale).round() as u32,
        )
    }
}

struct Outcome {
    outputs: Vec<gst::Buffer>,
    out_info: Option<gst_video::VideoInfo>,
    alignment: Option<gst::Structure>,
    warnings: Vec<String>,
    errors: Vec<String>,
    bg: Vec<gst::Buffer>,
}

fn caps_for(w: u32, h: u32, fps: i32) -> gst::Caps {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
        .fps(gst::Fraction::new(fps, 1))
        .build()
        .unwrap()
        .to_caps()
        .unwrap()
}

fn timed(mut frames: Vec<gst::Buffer>, fps: i32) -> Vec<gst::Buffer> {
    let at = |i: u64| gst::ClockTime::SECOND.mul_div_floor(i, fps as u64).unwrap();
    for (i, b) in frames.iter_mut().enumerate() {
        let b = b.make_mut();
        b.set_pts(at(i as u64));
        b.set_duration(at(i as u64 + 1) - at(i as u64));
    }
    frames
}

fn run(src: &Source, case: &Case) -> Outcome {
    let (sw, sh) = (src.info.width(), src.info.height());
    let bgs = case.bg_size;
    let sx = sw as f64 / bgs.0 as f64;
    let sy = sh as f64 / bgs.1 as f64;
    let bg: Vec<gst::Buffer> = case
        .bg_src
        .iter()
        .map(|&k| derive(src, k, (0, 0, sw, sh), bgs, case.fade(k), (1.0, 0.0), false))
        .collect();
    let (fx, fy, fw, fh) = case.footprint;
    let region = (
        (fx as f64 * sx).round() as u32,
        (fy as f64 * sy).round() as u32,
        (fw as f64 * sx).round() as u32,
        (fh as f64 * sy).round() as u32,
    );
    let fg: Vec<gst::Buffer> = case
        .fg_src
        .iter()
        .map(|&k| {
            let fg = |k: usize| {
                let f = case.fade(k);
                derive(src, k, region, case.fg_size(), f, case.grade, case.flip)
            };
            match case.interior {
                None => fg(k),
                Some((later, margin)) => {
                    let other = fg((k + later).min(src.frames.len() - 1));
                    paste_interior(fg(k), &other, case.fg_size(), margin)
                }
            }
        })
        .collect();
    let bg = timed(bg, case.bg_fps);
    let fg = timed(fg, case.fg_fps);

    let pipeline = gst::parse::launch(
        "vidkompyalign name=a ! appsink name=out sync=false \
         appsrc name=bg format=time block=true max-bytes=4000000 ! a.bg \
         appsrc name=fg format=time block=true max-bytes=4000000 ! a.fg",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let get = |n: &str| pipeline.by_name(n).unwrap();
    for (k, v) in &case.props {
        // Strings name enum values by nick.
        match v.get::<&str>() {
            Ok(nick) => get("a").set_property_from_str(k, nick),
            Err(_) => get("a").set_property_from_value(k, v),
        }
    }
    let appsrc = |n: &str| get(n).downcast::<gst_app::AppSrc>().unwrap();
    let (abg, afg) = (appsrc("bg"), appsrc("fg"));
    abg.set_caps(Some(&caps_for(bgs.0, bgs.1, case.bg_fps)));
    let (gw, gh) = case.fg_size();
    afg.set_caps(Some(&caps_for(gw, gh, case.fg_fps)));
    let sink = get("out").downcast::<gst_app::AppSink>().unwrap();
    let collected = common::collect(&sink);
    pipeline.set_state(gst::State::Playing).unwrap();
    let feed = |src: gst_app::AppSrc, frames: Vec<gst::Buffer>| {
        std::thread::spawn(move || {
            for b in frames {
                if src.push_buffer(b).is_err() {
                    break;
                }
            }
            let _ = src.end_of_stream();
        })
    };
    let t1 = feed(abg, bg.clone());
    let t2 = feed(afg, fg);
    let bus = pipeline.bus().unwrap();
    let (mut alignment, mut warnings, mut errors) = (None, Vec::new(), Vec::new());
    loop {
        let Some(m) = bus.timed_pop(gst::ClockTime::from_seconds(120)) else {
            errors.push("timeout".to_string());
            break;
        };
        match m.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                errors.push(format!("{} {:?}", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "vidkompy-alignment") {
                    alignment = Some(s.to_owned());
                }
            }
            _ => (),
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let _ = (t1.join(), t2.join());
    let mut g = collected.lock().unwrap();
    Outcome {
        outputs: std::mem::take(&mut g.0),
        out_info: g
            .1
            .take()
            .and_then(|c| gst_video::VideoInfo::from_caps(&c).ok()),
        alignment,
        warnings,
        errors,
        bg,
    }
}

/// Luma rows of a frame outside the footprint (above it, else below it).
fn outside_rows(
    buf: &gst::Buffer,
    info: &gst_video::VideoInfo,
    fp: (u32, u32, u32, u32),
) -> Vec<u8> {
    let f = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), info).unwrap();
    let stride = f.plane_stride()[0] as usize;
    let data = f.plane_data(0).unwrap();
    let w = info.width() as usize;
    let rows: Vec<usize> = if fp.1 >= 8 {
        (0..fp.1 as usize - 4).collect()
    } else {
        ((fp.1 + fp.3) as usize + 4..info.height() as usize).collect()
    };
    rows.iter()
        .flat_map(|&y| data[y * stride..y * stride + w].iter().copied())
        .collect()
}

struct Score {
    corner_error: f64,
    inside: usize,
    outside: usize,
    /// fg frames outside the bg that show its first (before) or last (after) frame.
    outside_ok: usize,
    exact: usize,
    within_one: usize,
    max_dev: usize,
    /// fg frames whose source frame the bg has, and how many of them got it exactly.
    present: usize,
    present_exact: usize,
}

fn score(case: &Case, o: &Outcome) -> Score {
    let a = o.alignment.as_ref().expect("a vidkompy-alignment message");
    let (x, y, s) = (
        a.get::<f64>("x").unwrap(),
        a.get::<f64>("y").unwrap(),
        a.get::<f64>("scale").unwrap(),
    );
    let (fx, fy, fw, fh) = case.footprint;
    let (gw, gh) = case.fg_size();
    let corner_error = [
        (x - fx as f64).abs(),
        (y - fy as f64).abs(),
        (x + gw as f64 * s - (fx + fw) as f64).abs(),
        (y + gh as f64 * s - (fy + fh) as f64).abs(),
    ]
    .into_iter()
    .fold(0.0, f64::max);

    let info = o.out_info.as_ref().expect("output caps");
    let bs = case.bg_size;
    let bg_info = gst_video::VideoInfo::from_caps(&caps_for(bs.0, bs.1, case.bg_fps)).unwrap();
    let mut by_rows: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (j, b) in o.bg.iter().enumerate() {
        by_rows
            .entry(outside_rows(b, &bg_info, case.footprint))
            .or_default()
            .push(j);
    }
    let (first, last) = (case.bg_src[0], case.bg_src[case.bg_src.len() - 1]);
    let mut sc = Score {
        corner_error,
        inside: 0,
        outside: 0,
        outside_ok: 0,
        exact: 0,
        within_one: 0,
        max_dev: 0,
        present: 0,
        present_exact: 0,
    };
    for (i, out) in o.outputs.iter().enumerate() {
        let t = case.fg_src[i];
        // An output that shows no bg frame outside the true footprint counts as wrong.
        let none = Vec::new();
        let chosen = by_rows
            .get(&outside_rows(out, info, case.footprint))
            .unwrap_or(&none);
        if t < first || t > last {
            sc.outside += 1;
            let end = if t < first { 0 } else { o.bg.len() - 1 };
            sc.outside_ok += usize::from(chosen.contains(&end));
            continue;
        }
        sc.inside += 1;
        // The bg frame showing at the fg frame's moment, and identical duplicates of it.
        let showing = case.bg_src.partition_point(|&k| k <= t) - 1;
        let truth_rows = outside_rows(&o.bg[showing], &bg_info, case.footprint);
        let exact = by_rows[&truth_rows].iter().any(|j| chosen.contains(j));
        let dev = chosen
            .iter()
            .map(|&j| j.abs_diff(showing))
            .min()
            .unwrap_or(usize::MAX);
        if !exact {
            eprintln!("  fg {i} shows source {t}: bg {chosen:?}, truth bg {showing}");
        }
        sc.exact += usize::from(exact);
        sc.within_one += usize::from(exact || dev <= 1);
        sc.max_dev = sc.max_dev.max(if exact { 0 } else { dev });
        if case.bg_src.contains(&t) {
            sc.present += 1;
            sc.present_exact += usize::from(exact);
        }
    }
    eprintln!(
        "x={x:.2} y={y:.2} scale={s:.4} corner error {corner_error:.2} px; {} in ({} exact, {} \
         within ±1, max dev {}), {} out; present {}/{} exact; {:?}",
        sc.inside, sc.exact, sc.within_one, sc.max_dev, sc.outside, sc.present_exact, sc.present, a
    );
    sc
}

fn assert_aligned(case: &Case, o: &Outcome) -> Score {
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(
        o.outputs.len(),
        case.fg_src.len(),
        "one output per fg frame"
    );
    let a = o.alignment.as_ref().expect("alignment message");
    assert_eq!(
        a.get::<&str>("mapping").unwrap(),
        "content",
        "{a:?} {:?}",
        o.warnings
    );
    let sc = score(case, o);
    assert!(
        sc.corner_error <= 1.0,
        "spatial error {:.2} px",
        sc.corner_error
    );
    assert_eq!(
        sc.within_one, sc.inside,
        "every fg frame within ±1 bg frame"
    );
    assert_eq!(
        sc.outside_ok, sc.outside,
        "fg frames outside the bg take its first or last frame"
    );
    assert!(
        sc.present_exact as f64 >= 0.98 * sc.present as f64,
        "{}/{} exact",
        sc.present_exact,
        sc.present
    );
    sc
}

#[test]
fn later_start_crop_higher_resolution_and_regrade() {
    let src = footage_or_skip!();
    let case = Case::new((0..120).collect(), (40..130).collect());
    let o = run(src, &case);
    let sc = assert_aligned(&case, &o);
    assert_eq!(
        sc.outside, 10,
        "fg frames past the bg's end are counted apart"
    );
}

#[test]
fn fg_starting_before_the_bg() {
    let src = footage_or_skip!();
    let case = Case::new((30..140).collect(), (10..90).collect());
    let sc = assert_aligned(&case, &run(src, &case));
    assert_eq!(sc.outside, 20);
}

#[test]
fn black_frames_and_a_fade_at_the_start_of_both() {
    let src = footage_or_skip!();
    let mut case = Case::new((0..110).collect(), (0..80).collect());
    case.black_fade = (12, 12);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_at_half_the_bg_rate() {
    let src = footage_or_skip!();
    let mut case = Case::new((0..140).collect(), (20..140).step_by(2).collect());
    case.fg_fps = 12;
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn bg_at_half_the_fg_rate() {
    let src = footage_or_skip!();
    let mut case = Case::new((0..140).step_by(2).collect(), (30..120).collect());
    case.bg_fps = 12;
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_drifting_four_percent_fast() {
    let src = footage_or_skip!();
    let fg_src: Vec<usize> = (0..100)
        .map(|i| 25 + (i as f64 * 1.04).round() as usize)
        .collect();
    let case = Case::new((0..140).collect(), fg_src);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn unrelated_content_warns_and_falls_back_to_running_time() {
    let src = footage_or_skip!();
    let mut case = Case::new((0..60).collect(), (0..40).collect());
    case.flip = true;
    let o = run(src, &case);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(o.outputs.len(), 40);
    let a = o.alignment.expect("alignment message");
    eprintln!("{a:?}");
    assert_eq!(a.get::<&str>("mapping").unwrap(), "running-time");
    assert!(
        o.warnings.iter().any(|w| w.contains("not found in the bg")),
        "{:?}",
        o.warnings
    );
}

#[test]
fn a_set_scale_is_kept_and_the_offset_searched() {
    let src = footage_or_skip!();
    let mut case = Case::new((0..80).collect(), (20..60).collect());
    case.props = vec![("scale", (320.0f64 / 480.0).to_value())];
    let o = run(src, &case);
    assert_aligned(&case, &o);
    let a = o.alignment.unwrap();
    assert_eq!(a.get::<f64>("scale").unwrap(), 320.0 / 480.0);
}

#[test]
fn a_set_footprint_overrides_the_search_and_frames_are_still_matched() {
    let src = footage_or_skip!();
    let mut case = Case::new((0..80).collect(), (20..60).collect());
    let s = 320.0f64 / 480.0;
    case.props = vec![
        ("x", 201i32.to_value()),
        ("y", 87i32.to_value()),
        ("scale", s.to_value()),
    ];
    let o = run(src, &case);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    let a = o.alignment.unwrap();
    assert_eq!(
        (
            a.get::<u32>("footprint-x").unwrap(),
            a.get::<u32>("footprint-y").unwrap(),
            a.get::<f64>("scale").unwrap()
        ),
        (201, 87, s)
    );
    // One pixel off the truth still matches content well enough to map frames by content.
    assert_eq!(a.get::<&str>("mapping").unwrap(), "content");
    let first = a.get::<u64>("first-bg-frame").unwrap();
    assert!(first.abs_diff(20) <= 1, "{a:?}");
}

#[test]
fn static_camera_with_pedestrians_later_start_and_higher_fg_rate() {
    let src = footage_or_skip!(vtest());
    // bg 512x384 at 10 fps; fg a 256x192 footprint recorded at 384x288, starting 3 s later,
    // at 20 fps (every frame shown twice: duplicates in the fg).
    let mut case = Case::new((0..140).collect(), (30..120).flat_map(|k| [k, k]).collect());
    case.bg_size = (512, 384);
    case.footprint = (128, 96, 256, 192);
    case.bg_fps = 10;
    case.fg_fps = 20;
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn match_region_edges_maps_a_fg_whose_interior_differs() {
    let src = footage_or_skip!();
    // The fg's interior (all but its outer 24 px, 16 bg px) shows the scene 40 frames later.
    let mut case = Case::new((0..100).collect(), (20..80).collect());
    case.interior = Some((40, 24));
    case.props = vec![
        ("match-region", "edges".to_value()),
        ("edge-width", 8u32.to_value()),
    ];
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_at_a_quarter_of_the_bg_rate() {
    let src = footage_or_skip!();
    let mut case = Case::new((0..140).collect(), (10..138).step_by(4).collect());
    case.fg_fps = 6;
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn bg_at_a_quarter_of_the_fg_rate() {
    let src = footage_or_skip!();
    let mut case = Case::new((0..140).step_by(4).collect(), (20..120).collect());
    case.bg_fps = 6;
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_drifting_five_percent_slow() {
    let src = footage_or_skip!();
    let fg_src: Vec<usize> = (0..110)
        .map(|i| 15 + (i as f64 * 0.95).round() as usize)
        .collect();
    let case = Case::new((0..140).collect(), fg_src);
    assert_aligned(&case, &run(src, &case));
}
