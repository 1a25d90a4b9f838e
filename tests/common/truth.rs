// SPDX-License-Identifier: MIT

//! Ground-truth pairs derived from a real clip, run through the real element in a real
//! pipeline, and scored. Truth is the source frame every fg and bg frame shows; which bg frame
//! the element chose for each output frame is read back from the output itself: outside the
//! footprint the output is an exact copy of that bg frame.

use gst::glib;
use gst::prelude::*;
use gst_video::prelude::*;
use gstvidkompy::messages::{Alignment, ElementMessage};
use std::collections::HashMap;

pub struct Source {
    pub frames: Vec<gst::Buffer>,
    pub info: gst_video::VideoInfo,
}

/// The first `n` frames of a real clip, at `size` (cropped to its aspect ratio, then scaled)
/// or its own. A clip that does not decode or is too short panics (tests must not pass
/// vacuously).
pub fn load(path: &std::path::Path, size: Option<(u32, u32)>, n: usize) -> Source {
    let (frames, info) = super::decode_frames(path, 0, n, size)
        .unwrap_or_else(|e| panic!("cannot decode {}: {e}", path.display()));
    assert_eq!(frames.len(), n, "{} is too short", path.display());
    Source { frames, info }
}

/// `n` frames of a `videotestsrc` pattern (`smpte`, `checkers-8`, ...) at `size`, 24 fps.
pub fn pattern(name: &str, size: (u32, u32), n: usize) -> Source {
    let head = format!(
        "videotestsrc pattern={name} num-buffers={n} ! \
         video/x-raw,width={},height={},framerate=24/1",
        size.0, size.1
    );
    let (frames, info) = super::frames_of(&head, name, 0, n, None)
        .unwrap_or_else(|e| panic!("cannot make pattern {name}: {e}"));
    assert_eq!(frames.len(), n, "pattern {name} is too short");
    Source { frames, info }
}

/// Crops `rect` (source px) out of a source frame and scales it to `out`, with GStreamer's
/// converter; fades it towards black by `fade` (1 = untouched, 0 = black), optionally flips it
/// upside down and re-grades luma.
pub fn derive(
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
    let buf = super::convert_rect(&src.frames[index], &src.info, rect, &out_info).unwrap();
    let mut of = gst_video::VideoFrame::from_buffer_writable(buf, &out_info).unwrap();
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
pub fn paste_interior(
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

/// `buf` mapped for writing as an I420 frame of `size`.
fn writable_i420(
    buf: gst::Buffer,
    size: (u32, u32),
) -> gst_video::VideoFrame<gst_video::video_frame::Writable> {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, size.0, size.1)
        .build()
        .unwrap();
    gst_video::VideoFrame::from_buffer_writable(buf, &info).unwrap()
}

/// A frame of `size` damaged as a decoder shows lost slices: two bands of 16-line blocks, one
/// grey, one smeared (each block a copy of its top row), at places that `seed` picks.
pub fn damage(buf: gst::Buffer, size: (u32, u32), seed: u32) -> gst::Buffer {
    let mut f = writable_i420(buf, size);
    let rows = size.1 as usize / 16;
    let pick =
        |k: u32| ((seed.wrapping_mul(2_654_435_761) >> 7).wrapping_add(k * 7)) as usize % rows;
    let (grey, smear) = (pick(0), pick(3));
    for p in 0..3u32 {
        let sub = usize::from(p > 0);
        let stride = f.plane_stride()[p as usize] as usize;
        let w = f.comp_width(p) as usize;
        let band = 16 >> sub;
        let data = f.plane_data_mut(p).unwrap();
        for b in [grey, (grey + 1) % rows] {
            for y in b * band..(b + 1) * band {
                data[y * stride..y * stride + w].fill(128);
            }
        }
        for b in [smear, (smear + 1) % rows, (smear + 2) % rows] {
            let top = data[b * band * stride..b * band * stride + w].to_vec();
            for y in b * band..(b + 1) * band {
                data[y * stride..y * stride + w].copy_from_slice(&top);
            }
        }
    }
    f.into_buffer()
}

/// `buf` (I420 of `size`) with Gaussian-like sensor noise of standard deviation `sigma` in its
/// luma (a sum of uniform draws, from a generator seeded by `seed`: every frame its own).
pub fn noisy(buf: gst::Buffer, size: (u32, u32), sigma: f32, seed: u32) -> gst::Buffer {
    let mut f = writable_i420(buf, size);
    let mut s = seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let mut uniform = || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    // Four uniforms on [-0.5, 0.5) sum to variance 1/3.
    let k = sigma * 3f32.sqrt();
    let data = f.plane_data_mut(0).unwrap();
    for v in data.iter_mut() {
        let n = (uniform() + uniform() + uniform() + uniform()) * k;
        *v = (f32::from(*v) + n).round().clamp(0.0, 255.0) as u8;
    }
    f.into_buffer()
}

/// `buf` (I420 of `size`) with a burned-in logo (a white ring in the top-left corner) and a
/// running timestamp (a row of white and black digits' blocks along the bottom that changes
/// with frame `i`), as cameras and broadcasters burn them in.
pub fn overlaid(buf: gst::Buffer, size: (u32, u32), i: usize) -> gst::Buffer {
    let mut f = writable_i420(buf, size);
    let (w, h) = (size.0 as usize, size.1 as usize);
    let stride = f.plane_stride()[0] as usize;
    let data = f.plane_data_mut(0).unwrap();
    // The logo: a ring of radius w/20 around (w/12, h/8), 4 px thick.
    let (cx, cy, r) = (w as f32 / 12.0, h as f32 / 8.0, w as f32 / 20.0);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            if (d - r).abs() < 2.0 {
                data[y * stride + x] = 235;
            }
        }
    }
    // The timestamp: 8 digits of the frame number, each a 5x7 grid of 3 px cells, bottom left.
    let digits = format!("{:08}", i * 4 + 123);
    let (x0, y0, cell) = (w / 20, h - h / 12 - 21, 3usize);
    for (n, d) in digits.bytes().enumerate() {
        let v = u64::from(d - b'0') + 1;
        for gy in 0..7 {
            for gx in 0..5 {
                // A pattern per digit: its bits, shifted by the cell.
                let on = (v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (gy * 5 + gx)) & 1 == 1;
                for y in 0..cell {
                    for x in 0..cell {
                        let (px, py) = (x0 + n * 6 * cell + gx * cell + x, y0 + gy * cell + y);
                        if px < w && py < h {
                            data[py * stride + px] = if on { 235 } else { 16 };
                        }
                    }
                }
            }
        }
    }
    f.into_buffer()
}

pub struct Case {
    pub bg_size: (u32, u32),
    /// Source frame shown by each bg frame, at `bg_fps`.
    pub bg_src: Vec<usize>,
    pub bg_fps: gst::Fraction,
    /// Footprint in bg px.
    pub footprint: (u32, u32, u32, u32),
    /// fg px per footprint px.
    pub fg_scale: f64,
    /// Source frame shown by each fg frame, at `fg_fps`.
    pub fg_src: Vec<usize>,
    pub fg_fps: gst::Fraction,
    /// The rate the fg's caps and timestamps claim, when they lie (the frames are `fg_fps`
    /// apart in content).
    pub fg_declared_fps: Option<gst::Fraction>,
    /// Encode the bg with x264 at this bitrate (kbit/s) and decode it again: compression.
    pub bg_kbps: Option<u32>,
    pub grade: (f32, f32),
    pub flip: bool,
    /// The first `.0` source frames are black, the next `.1` fade in from black.
    pub black_fade: (usize, usize),
    /// The fg's interior, all but an outer margin of `.1` fg px, shows the source frame `.0`
    /// frames later (a fg whose interior differs from the bg).
    pub interior: Option<(usize, u32)>,
    /// From fg frame `.0` on, the fg shows this footprint instead (same size): the fg feed
    /// was re-framed.
    pub reframe: Option<(usize, (u32, u32, u32, u32))>,
    /// Element properties set by hand.
    pub props: Vec<(&'static str, glib::Value)>,
    /// Fed in real time (through `clocksync`) rather than as fast as the element takes them.
    pub live: Option<Live>,
    /// Live: a second live branch in the pipeline, a live source that reports this maximum
    /// latency (the most it buffers) into a sink that syncs; the element's output syncs too, so
    /// that the pipeline's latency is the larger of the two branches' and must stay within it.
    pub side_branch: Option<gst::ClockTime>,
    /// The bg camera pans: each source frame is seen through a window that moves with it.
    pub pan: Option<Pan>,
    /// bg frames (indices) damaged as by lost slices: bands of grey and smeared blocks.
    pub bg_damaged: Vec<usize>,
    /// The fg's timestamps are its frames' capture times (source frame / `fg_fps`), not
    /// consecutive: a variable frame rate, as phones record where frames are dropped.
    pub fg_vfr: bool,
    /// Sensor noise in the fg's luma: standard deviation, in 8-bit levels.
    pub fg_noise: f32,
    /// A logo and a running timestamp burned into the fg.
    pub fg_overlay: bool,
    /// Not live: the pair is written to losslessly encoded files in this directory and read
    /// through `filesrc ! decodebin` (inputs that can seek), rather than fed by `appsrc`.
    pub files: Option<std::path::PathBuf>,
}

/// A bg seen through a window panning across the source clip: source frame `k` shows the
/// source rect of `size` at `at + k * step` (source px), scaled to the bg's size; the fg shows
/// the footprint inside that window (the fg camera pans with the bg's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pan {
    pub size: (u32, u32),
    pub at: (u32, u32),
    /// Source px per source frame; even, as crop offsets must be (see `Case::new`).
    pub step: (i32, i32),
}

impl Pan {
    /// The window source frame `k` is seen through.
    pub fn window(&self, k: usize) -> (u32, u32, u32, u32) {
        let at = |a: u32, d: i32| (i64::from(a) + i64::from(d) * k as i64).max(0) as u32;
        (
            at(self.at.0, self.step.0),
            at(self.at.1, self.step.1),
            self.size.0,
            self.size.1,
        )
    }
}

/// How a case is fed live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    /// The fg's first frame comes this long after the bg's (its timestamps start there).
    pub fg_start: gst::ClockTime,
    pub feed: Feed,
}

/// How live frames reach the element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Feed {
    /// Live sources (`appsrc is-live=true`) paced by `clocksync`.
    LiveSources,
    /// Non-live sources paced by `clocksync`, and the element's `force-live`.
    ForceLive,
    /// Live sources paced by `clocksync`, sent as RTP (raw video) over UDP on the loopback
    /// and received by `udpsrc ! rtpjitterbuffer ! rtpvrawdepay` (framerate 0/1, times of
    /// arrival).
    Rtp,
}

impl Case {
    pub fn new(bg_src: Vec<usize>, fg_src: Vec<usize>) -> Case {
        Case {
            bg_size: (640, 360),
            bg_src,
            bg_fps: gst::Fraction::new(24, 1),
            // Source-px crop offsets even: GStreamer's converter crops I420 at even lines and
            // columns, so an odd crop offset would shift the fg by one source line.
            footprint: (200, 88, 320, 180),
            fg_scale: 1.5,
            fg_src,
            fg_fps: gst::Fraction::new(24, 1),
            fg_declared_fps: None,
            bg_kbps: None,
            grade: (0.8, 30.0),
            flip: false,
            black_fade: (0, 0),
            interior: None,
            reframe: None,
            props: Vec::new(),
            live: None,
            side_branch: None,
            pan: None,
            bg_damaged: Vec::new(),
            fg_vfr: false,
            fg_noise: 0.0,
            fg_overlay: false,
            files: None,
        }
    }

    /// How far source frame `k` is faded in.
    pub fn fade(&self, k: usize) -> f32 {
        let (black, fade) = self.black_fade;
        if k < black {
            0.0
        } else if k < black + fade {
            (k - black + 1) as f32 / (fade + 1) as f32
        } else {
            1.0
        }
    }

    pub fn fg_size(&self) -> (u32, u32) {
        (
            (self.footprint.2 as f64 * self.fg_scale).round() as u32,
            (self.footprint.3 as f64 * self.fg_scale).round() as u32,
        )
    }
}

pub struct Outcome {
    pub outputs: Vec<gst::Buffer>,
    pub out_info: Option<gst_video::VideoInfo>,
    pub alignment: Option<gstvidkompy::messages::Alignment>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub bg: Vec<gst::Buffer>,
    /// Every element message posted, in order.
    pub messages: Vec<gst::Structure>,
    /// Per output buffer, how late it reached the sink (ms): the pipeline's running time then
    /// minus the buffer's running time.
    pub lateness_ms: Vec<f64>,
}

pub fn caps_for(w: u32, h: u32, fps: gst::Fraction) -> gst::Caps {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
        .fps(fps)
        .build()
        .unwrap()
        .to_caps()
        .unwrap()
}

pub fn timed(mut frames: Vec<gst::Buffer>, fps: gst::Fraction) -> Vec<gst::Buffer> {
    let at = |i: u64| {
        gst::ClockTime::SECOND
            .mul_div_floor(i * fps.denom() as u64, fps.numer() as u64)
            .unwrap()
    };
    for (i, b) in frames.iter_mut().enumerate() {
        let b = b.make_mut();
        b.set_pts(at(i as u64));
        b.set_duration(at(i as u64 + 1) - at(i as u64));
    }
    frames
}

/// Source frames shown by `n` frames at `fps` from a source at `src_fps`, starting at source
/// frame `start`: a stream re-timed to another frame rate (repeats or skips source frames).
pub fn frames_at(start: usize, n: usize, src_fps: f64, fps: f64) -> Vec<usize> {
    (0..n)
        .map(|i| start + (i as f64 * src_fps / fps + 1e-9).floor() as usize)
        .collect()
}

/// The hard cases combined (each property passes on its own; these put them together), for a
/// source at `fps`:
/// - the same frames on two time bases (bg 23.976 fps, fg 30 fps), black opening frames with a
///   fade, and damaged bg frames;
/// - a fg with frames dropped at irregular times, each at its capture time (a variable frame
///   rate, as phones record);
/// - a fg with sensor noise and a burned-in logo and timestamp.
pub fn combined_cases(fps: f64) -> Vec<(&'static str, Case)> {
    let (bg_fps, fg_fps) = (24000.0 / 1001.0, 30.0);
    let nb = (130.0 * bg_fps / fps) as usize;
    let mut time_bases = Case::new(
        frames_at(0, nb, fps, bg_fps),
        frames_at(0, (100.0 * fg_fps / fps) as usize, fps, fg_fps),
    );
    time_bases.bg_fps = rate(bg_fps);
    time_bases.fg_fps = rate(fg_fps);
    time_bases.black_fade = (12, 12);
    time_bases.bg_damaged = [0.35, 0.5, 0.62, 0.8]
        .iter()
        .map(|f| (f * nb as f64) as usize)
        .collect();
    // Dropped in runs of one to three, about one frame in six, at irregular places.
    let mut s = 12_345u32;
    let mut vfr_src = Vec::new();
    let mut k = 20;
    while k < 120 {
        vfr_src.push(k);
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        k += if (s >> 24).is_multiple_of(6) {
            2 + (s >> 16) as usize % 3
        } else {
            1
        };
    }
    let mut vfr = Case::new((0..140).collect(), vfr_src);
    vfr.fg_vfr = true;
    let mut noisy = Case::new((0..120).collect(), (20..100).collect());
    noisy.fg_noise = 8.0;
    noisy.fg_overlay = true;
    vec![
        (
            "23.976 / 30 fps, black start, damaged bg frames",
            time_bases,
        ),
        ("fg frames dropped at irregular times (VFR)", vfr),
        (
            "fg with sensor noise and a burned-in logo and timestamp",
            noisy,
        ),
    ]
}

/// A frame rate as a fraction (NTSC rates exact).
pub fn rate(fps: f64) -> gst::Fraction {
    let ntsc = (fps * 1.001).round();
    if (fps - ntsc / 1.001).abs() < 1e-3 && (fps - fps.round()).abs() > 1e-3 {
        gst::Fraction::new(ntsc as i32 * 1000, 1001)
    } else {
        gst::Fraction::approximate_f64(fps).unwrap_or(gst::Fraction::new(24, 1))
    }
}

/// `frames` through x264 at `kbps` and back: what a heavily compressed bg looks like.
pub fn compress(
    frames: &[gst::Buffer],
    size: (u32, u32),
    fps: gst::Fraction,
    kbps: u32,
) -> Vec<gst::Buffer> {
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time ! x264enc bitrate={kbps} speed-preset=ultrafast \
         tune=zerolatency ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! \
         appsink name=s sync=false"
    ))
    .unwrap();
    let src: gst_app::AppSrc = super::element(&p, "src").unwrap();
    src.set_caps(Some(&caps_for(size.0, size.1, fps)));
    let sink: gst_app::AppSink = super::element(&p, "s").unwrap();
    let got = super::collect(&sink);
    let frames_len = frames.len();
    let frames = timed(frames.to_vec(), fps);
    let feeder = std::thread::spawn(move || {
        for f in frames {
            if src.push_buffer(f).is_err() {
                break;
            }
        }
        let _ = src.end_of_stream();
    });
    super::run_to_eos(&p, 120).unwrap();
    let _ = feeder.join();
    let out = std::mem::take(&mut got.lock().unwrap().0);
    assert_eq!(out.len(), frames_len, "the encoder kept or dropped frames");
    // Decoded copies, detached from the decoder's pool.
    out.iter().map(|b| b.copy_deep().unwrap()).collect()
}

/// Runs a case whose bg and fg both come from `src`.
pub fn run(src: &Source, case: &Case) -> Outcome {
    run_pair(src, src, case)
}

/// Runs a case whose bg comes from `src` and fg from `fg_src` (the same clip for ground truth,
/// another for unrelated content).
pub fn run_pair(src: &Source, fg_src: &Source, case: &Case) -> Outcome {
    let (sw, sh) = (src.info.width(), src.info.height());
    let bgs = case.bg_size;
    // The source rect bg frames showing source frame `k` show.
    let window = |k: usize| match case.pan {
        Some(p) => p.window(k),
        None => (0, 0, fg_src.info.width(), fg_src.info.height()),
    };
    let bg: Vec<gst::Buffer> = case
        .bg_src
        .iter()
        .map(|&k| {
            let w = case.pan.map_or((0, 0, sw, sh), |p| p.window(k));
            derive(src, k, w, bgs, case.fade(k), (1.0, 0.0), false)
        })
        .enumerate()
        .map(|(j, b)| {
            if case.bg_damaged.contains(&j) {
                damage(b, bgs, j as u32)
            } else {
                b
            }
        })
        .collect();
    let region_of = |(fx, fy, fw, fh): (u32, u32, u32, u32), k: usize| {
        let (wx, wy, ww, wh) = window(k);
        let sx = ww as f64 / bgs.0 as f64;
        let sy = wh as f64 / bgs.1 as f64;
        (
            wx + (fx as f64 * sx).round() as u32,
            wy + (fy as f64 * sy).round() as u32,
            (fw as f64 * sx).round() as u32,
            (fh as f64 * sy).round() as u32,
        )
    };
    let fg: Vec<gst::Buffer> = case
        .fg_src
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            let region = match case.reframe {
                Some((from, fp)) if i >= from => region_of(fp, k),
                _ => region_of(case.footprint, k),
            };
            let fg = |k: usize| {
                let f = case.fade(k);
                derive(fg_src, k, region, case.fg_size(), f, case.grade, case.flip)
            };
            let f = match case.interior {
                None => fg(k),
                Some((later, margin)) => {
                    let other = fg((k + later).min(fg_src.frames.len() - 1));
                    paste_interior(fg(k), &other, case.fg_size(), margin)
                }
            };
            let f = if case.fg_noise > 0.0 {
                noisy(f, case.fg_size(), case.fg_noise, i as u32)
            } else {
                f
            };
            if case.fg_overlay {
                overlaid(f, case.fg_size(), i)
            } else {
                f
            }
        })
        .collect();
    let bg = match case.bg_kbps {
        Some(kbps) => compress(&bg, bgs, case.bg_fps, kbps),
        None => bg,
    };
    let bg = timed(bg, case.bg_fps);
    let fg_fps = case.fg_declared_fps.unwrap_or(case.fg_fps);
    let mut fg = timed(fg, fg_fps);
    if case.fg_vfr {
        // Each frame at its capture time, lasting until the next one's.
        let at = |k: usize| {
            gst::ClockTime::SECOND
                .mul_div_floor(
                    (k - case.fg_src[0]) as u64 * fg_fps.denom() as u64,
                    fg_fps.numer() as u64,
                )
                .unwrap()
        };
        for (i, b) in fg.iter_mut().enumerate() {
            let end = case
                .fg_src
                .get(i + 1)
                .map_or(at(case.fg_src[i] + 1), |&k| at(k));
            let b = b.make_mut();
            b.set_pts(at(case.fg_src[i]));
            b.set_duration(end - at(case.fg_src[i]));
        }
    }
    // `force-live` can only be set at construction: in the description.
    let force_live = case
        .props
        .iter()
        .any(|(k, v)| *k == "force-live" && v.get::<bool>() == Ok(true));
    let construct = if force_live { "force-live=true" } else { "" };
    let (gw, gh) = case.fg_size();
    let files = match (&case.files, case.live) {
        (Some(dir), None) => {
            std::fs::create_dir_all(dir).unwrap();
            let (b, f) = (dir.join("bg.mkv"), dir.join("fg.mkv"));
            write_lossless(&bg, &caps_for(bgs.0, bgs.1, case.bg_fps), &b);
            write_lossless(&fg, &caps_for(gw, gh, fg_fps), &f);
            Some((b, f))
        }
        _ => None,
    };
    let desc = match case.live {
        None if files.is_some() => {
            let (b, f) = files.as_ref().unwrap();
            format!(
                "vidkompyalign name=a {construct} ! appsink name=out sync=false \
                 filesrc location=\"{}\" ! decodebin ! a.bg \
                 filesrc location=\"{}\" ! decodebin ! a.fg",
                b.display(),
                f.display()
            )
        }
        None => format!(
            "vidkompyalign name=a {construct} ! appsink name=out sync=false \
                 appsrc name=bg format=time block=true max-bytes=4000000 ! a.bg \
                 appsrc name=fg format=time block=true max-bytes=4000000 ! a.fg"
        ),
        Some(live) => {
            for b in &mut fg {
                let b = b.make_mut();
                b.set_pts(b.pts().map(|t| t + live.fg_start));
            }
            let (src, force) = match live.feed {
                Feed::ForceLive => ("appsrc", "force-live=true"),
                Feed::LiveSources | Feed::Rtp => ("appsrc is-live=true", ""),
            };
            let (fw, fh) = case.fg_size();
            let link = |name: &str, (w, h): (u32, u32)| match live.feed {
                Feed::Rtp => format!(
                    "rtpvrawpay mtu=60000 ! udpsink name={name}-tx host=127.0.0.1 sync=false \
                       async=false \
                     udpsrc name={name}-rx address=127.0.0.1 port=0 buffer-size=4000000 \
                       caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name=RAW,\
                       sampling=YCbCr-4:2:0,depth=(string)8,width=(string){w},\
                       height=(string){h},colorimetry=(string)BT601-5,payload=96\" \
                       ! rtpjitterbuffer latency=50 ! rtpvrawdepay name={name}-depay ! a.{name}"
                ),
                _ => format!("a.{name}"),
            };
            let (sync, side) = match case.side_branch {
                Some(_) => (
                    "true",
                    "appsrc name=side is-live=true format=time ! fakesink sync=true async=false",
                ),
                None => ("false", ""),
            };
            format!(
                "vidkompyalign name=a {force} ! appsink name=out sync={sync} \
                 {src} name=bg format=time block=true max-bytes=4000000 ! clocksync ! {} \
                 {src} name=fg format=time block=true max-bytes=4000000 ! clocksync ! {} {side}",
                link("bg", bgs),
                link("fg", (fw, fh)),
            )
        }
    };
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let get = |n: &str| pipeline.by_name(n).unwrap();
    for (k, v) in case.props.iter().filter(|(k, _)| *k != "force-live") {
        // Strings name enum values by nick.
        match v.get::<&str>() {
            Ok(nick) => get("a").set_property_from_str(k, nick),
            Err(_) => get("a").set_property_from_value(k, v),
        }
    }
    let appsrc = |n: &str| {
        pipeline
            .by_name(n)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
    };
    let (abg, afg) = (appsrc("bg"), appsrc("fg"));
    if let (Some(abg), Some(afg)) = (&abg, &afg) {
        abg.set_caps(Some(&caps_for(bgs.0, bgs.1, case.bg_fps)));
        afg.set_caps(Some(&caps_for(gw, gh, fg_fps)));
    }
    if let (Some(side), Some(max)) = (appsrc("side"), case.side_branch) {
        side.set_caps(Some(&caps_for(64, 64, case.bg_fps)));
        side.set_latency(gst::ClockTime::ZERO, Some(max));
    }
    let sink = get("out").downcast::<gst_app::AppSink>().unwrap();
    let collected = super::collect(&sink);
    let lateness = lateness_probe(&pipeline, &sink);
    if case.live.is_some_and(|l| l.feed == Feed::Rtp) {
        // Each receiver binds a free port when it opens (READY); its sender is pointed there.
        pipeline.set_state(gst::State::Ready).unwrap();
        for (name, frames) in [("bg", bg.len()), ("fg", fg.len())] {
            let rx = get(&format!("{name}-rx"));
            let port: i32 = rx.property("port");
            assert!(port > 0, "udpsrc bound no port");
            let tx = get(&format!("{name}-tx"));
            tx.set_property("port", port);
            rtp_end_of_stream(&tx, &rx, &get(&format!("{name}-depay")), frames);
        }
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let feed = |src: Option<gst_app::AppSrc>, frames: Vec<gst::Buffer>| {
        std::thread::spawn(move || {
            let Some(src) = src else {
                return;
            };
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
    // The side branch's source sends a small frame at each bg frame's time, then ends.
    let side_frames = bg
        .iter()
        .map(|b| {
            let mut s = gst::Buffer::from_mut_slice(vec![128u8; 64 * 64 * 3 / 2]);
            let m = s.make_mut();
            m.set_pts(b.pts());
            m.set_duration(b.duration());
            s
        })
        .collect();
    let t3 = feed(appsrc("side"), side_frames);
    let bus = pipeline.bus().unwrap();
    let (mut alignment, mut warnings, mut errors) = (None, Vec::new(), Vec::new());
    let mut messages = Vec::new();
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
            // An element's latency changed (a raised lookahead): the pipeline's is configured
            // again, as gst-launch does.
            gst::MessageView::Latency(_) => {
                let _ = pipeline.recalculate_latency();
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    messages.push(s.to_owned());
                    if s.name() == Alignment::NAME {
                        alignment = Some(
                            Alignment::from_structure(s).unwrap_or_else(|e| panic!("{e}: {s}")),
                        );
                    }
                }
            }
            _ => (),
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let _ = (t1.join(), t2.join(), t3.join());
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
        messages,
        lateness_ms: std::mem::take(&mut *lateness.lock().unwrap()),
    }
}

/// Encodes `frames` (with their timestamps) losslessly (FFV1, any frame size) into the
/// Matroska file `path`.
fn write_lossless(frames: &[gst::Buffer], caps: &gst::Caps, path: &std::path::Path) {
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time ! avenc_ffv1 ! matroskamux ! filesink location=\"{}\"",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = p
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.set_caps(Some(caps));
    // Queued (the source does not block), then encoded.
    for b in frames {
        src.push_buffer(b.clone()).unwrap();
    }
    let _ = src.end_of_stream();
    super::run_to_eos(p.upcast_ref(), 120)
        .unwrap_or_else(|e| panic!("encoding {}: {e}", path.display()));
}

/// Records how late each buffer reaches `sink` (ms), by the pipeline's clock.
fn lateness_probe(
    pipeline: &gst::Pipeline,
    sink: &gst_app::AppSink,
) -> std::sync::Arc<std::sync::Mutex<Vec<f64>>> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = out.clone();
    let p = pipeline.downgrade();
    let pad = sink.static_pad("sink").unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let (Some(p), Some(b)) = (p.upgrade(), info.buffer()) else {
            return gst::PadProbeReturn::Ok;
        };
        let now = p.current_running_time();
        let seg = pad.sticky_event::<gst::event::Segment>(0);
        let rt = seg.and_then(|s| {
            let seg = s.segment().downcast_ref::<gst::ClockTime>()?.clone();
            seg.to_running_time(b.pts()?)
        });
        if let (Some(now), Some(rt)) = (now, rt) {
            let ms = (now.nseconds() as f64 - rt.nseconds() as f64) / 1e6;
            o.lock().unwrap().push(ms);
        }
        gst::PadProbeReturn::Ok
    });
    out
}

/// EOS does not cross UDP: once the sender `tx` ended, the receiver `rx` is ended by hand when
/// its depayloader `depay` has output every one of the `frames` sent, or 5 s later (lost
/// datagrams then show as missing frames).
fn rtp_end_of_stream(tx: &gst::Element, rx: &gst::Element, depay: &gst::Element, frames: usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let received = Arc::new(AtomicUsize::new(0));
    let r = received.clone();
    depay
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            r.fetch_add(1, Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    let rx = rx.clone();
    tx.static_pad("sink").unwrap().add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let is_eos = info
                .event()
                .is_some_and(|e| e.type_() == gst::EventType::Eos);
            if is_eos {
                let (rx, received) = (rx.clone(), received.clone());
                std::thread::spawn(move || {
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                    while received.load(Ordering::SeqCst) < frames
                        && std::time::Instant::now() < deadline
                    {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    rx.send_event(gst::event::Eos::new());
                });
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Luma rows of a frame outside the footprint (above it, else below it).
pub fn outside_rows(
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

pub struct Score {
    pub corner_error: f64,
    /// The element's analysis time, s.
    pub analysis_s: f64,
    pub inside: usize,
    pub outside: usize,
    /// fg frames outside the bg that show its first (before) or last (after) frame.
    pub outside_ok: usize,
    pub exact: usize,
    pub within_one: usize,
    pub max_dev: usize,
    /// fg frames whose source frame the bg has, and how many of them got it exactly.
    pub present: usize,
    pub present_exact: usize,
}

pub fn score(case: &Case, o: &Outcome) -> Score {
    let a = o.alignment.as_ref().expect("a vidkompy-alignment message");
    let (x, y, s) = (a.x, a.y, a.scale);
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
        analysis_s: a.analysis_time.seconds_f64(),
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
        // The bg frame showing at the fg frame's moment, and identical duplicates of it; or
        // another bg frame made from the same source frame (a damaged copy, `bg_damaged`,
        // shows that moment too, though its pixels differ).
        let showing = case.bg_src.partition_point(|&k| k <= t) - 1;
        let truth_rows = outside_rows(&o.bg[showing], &bg_info, case.footprint);
        let same_source = chosen
            .iter()
            .any(|&j| case.bg_src.get(j) == Some(&case.bg_src[showing]));
        let exact = by_rows[&truth_rows].iter().any(|j| chosen.contains(j)) || same_source;
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
