// SPDX-License-Identifier: MIT

//! Long inputs: 1, 5 and 10 minutes of 1080p (by default), built from real footage so that no
//! stretch repeats, aligned by the element's default (each file read once, on a sliding
//! window) and, for comparison, decoded alone. Prints wall times, the analysis time against the decoding time, each run's peak
//! memory (VmHWM; every pipeline runs in a child process of its own), the disk used and how
//! many fg frames were mapped to their true bg frame.
//!
//! ```text
//! cargo run --release --example long -- [MINUTES ...] [--store] [--two-pass] [--budget]
//!     [--excerpt] [--clip SOURCE_CLIP]
//! ```
//!
//! The pair is generated once into `target/bench-long/` (H.264 in Matroska): the bg is the
//! source clip played forwards and backwards, seen through a 1280x720 window that drifts over
//! it on two incommensurate periods (37.3 s and 23.9 s, against the clip's 15 s), scaled to
//! 1920x1080; the fg is the region of the source under the bg's footprint (960x540 at
//! (480, 270)) at 1280x720 (scale 0.75), re-graded, starting 5 s into the bg and ending 5 s
//! before it. So fg frame `i` shows bg frame `i + 120`. `--store` also runs `frames=stored`
//! (frames stored under the default max-memory, spilled past it). `--two-pass` also runs
//! `frames=read-again` (aligned over the whole files, then read again). `--budget` also runs
//! the default with `max-memory=67108864` (64 MiB: frames past its share go through a spill
//! file). `--excerpt` also
//! aligns a 10 s fg cut from the middle of the long one (a short recording of a moment of a
//! long bg), by default and, with `--two-pass`, in two passes (the later passes read only the
//! bg around it).

#[path = "../tests/common/mod.rs"]
mod common;

use gst::prelude::*;
use gstvidkompy::messages::{Alignment, ElementMessage};
use std::path::Path;
use std::time::Instant;

const FPS: i32 = 24;
const OFFSET: usize = 5 * FPS as usize;
const WINDOW: (u32, u32) = (1280, 720);
const BG: (u32, u32) = (1920, 1080);
const FG: (u32, u32) = (1280, 720);
const FOOTPRINT: (u32, u32, u32, u32) = (480, 270, 960, 540);
/// Frames of the `--excerpt` fg (10 s).
const EXCERPT: usize = 10 * FPS as usize;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = if args.first().map(String::as_str) == Some("--run") {
        child(&args[1..])
    } else {
        parent(&args)
    };
    if let Err(e) = res {
        eprintln!("long: {e}");
        std::process::exit(1);
    }
}

/// Runs one pipeline; prints `wall_s analysis_s vmhwm_kib frames spilled_bytes`.
fn child(args: &[String]) -> Result<(), String> {
    let [mode, bg, fg, report] = args else {
        return Err("usage: --run MODE BG FG REPORT".into());
    };
    gst::init().map_err(|e| e.to_string())?;
    gstvidkompy::plugin_register_static().map_err(|e| e.to_string())?;
    let (bg, fg, report) = (
        common::q(Path::new(bg)),
        common::q(Path::new(fg)),
        common::q(Path::new(report)),
    );
    let desc = match mode.as_str() {
        "decode" => format!(
            "filesrc location={bg} ! decodebin ! identity name=count ! fakesink sync=false \
             filesrc location={fg} ! decodebin ! fakesink sync=false"
        ),
        "aligned" | "two-pass" | "store" | "budget" => format!(
            "vidkompyalign name=a frames={} {} report={report} ! identity name=count ! \
             fakesink sync=false \
             filesrc location={bg} ! decodebin ! a.bg filesrc location={fg} ! decodebin ! a.fg",
            match mode.as_str() {
                "two-pass" => "read-again",
                "store" => "stored",
                _ => "windowed",
            },
            if mode == "budget" {
                "max-memory=67108864"
            } else {
                ""
            }
        ),
        other => return Err(format!("unknown mode {other}")),
    };
    let p = gst::parse::launch(&desc).map_err(|e| e.to_string())?;
    let count: gst::Element = common::element(&p, "count")?;
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let f2 = frames.clone();
    count.connect("handoff", false, move |_| {
        f2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        None
    });
    count.set_property("signal-handoffs", true);
    let started = Instant::now();
    p.set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start: {e}"))?;
    let bus = p.bus().ok_or("no bus")?;
    let (mut analysis, mut spilled) = (f64::NAN, 0u64);
    loop {
        let Some(m) = bus.timed_pop(gst::ClockTime::from_seconds(3600)) else {
            return Err("no EOS within an hour".into());
        };
        match m.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => return Err(format!("{} ({:?})", e.error(), e.debug())),
            gst::MessageView::Element(_) => {
                if let Some(Ok(a)) = Alignment::from_message(&m) {
                    analysis = a.analysis_time.seconds_f64();
                    // Frames, thumbnails and features written to temp files.
                    spilled = a.spilled_bytes + a.spilled_thumbnail_bytes + a.spilled_feature_bytes;
                }
            }
            _ => (),
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let _ = p.set_state(gst::State::Null);
    println!(
        "{wall:.3} {analysis:.3} {} {} {spilled}",
        common::vm_hwm_kib().unwrap_or(0),
        frames.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// One run of the child.
struct Measured {
    wall: f64,
    analysis: f64,
    peak_kib: u64,
    frames: u64,
    spilled: u64,
}

fn measure(mode: &str, bg: &Path, fg: &Path, report: &Path) -> Result<Measured, String> {
    let v = common::run_child(&[mode.as_ref(), bg.as_ref(), fg.as_ref(), report.as_ref()])?;
    let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    Ok(Measured {
        wall: at(0),
        analysis: at(1),
        peak_kib: at(2) as u64,
        frames: at(3) as u64,
        spilled: at(4) as u64,
    })
}

/// One table row: a run against the decode-only run of the same files.
fn row(
    label: &str,
    frames: &str,
    dec: &Measured,
    run: &Measured,
    report: &Path,
    offset: usize,
) -> Result<(), String> {
    let (exact, err) = score(report, offset)?;
    println!(
        "| {label} | {frames} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} % | {} | {} | {} B | {exact} | {err:.2} |",
        dec.wall,
        run.wall,
        run.wall / dec.wall,
        run.analysis,
        100.0 * run.analysis / dec.wall,
        dec.peak_kib / 1024,
        run.peak_kib / 1024,
        run.spilled,
    );
    Ok(())
}

fn parent(args: &[String]) -> Result<(), String> {
    let store = args.iter().any(|a| a == "--store");
    let two_pass = args.iter().any(|a| a == "--two-pass");
    let excerpt = args.iter().any(|a| a == "--excerpt");
    let budget = args.iter().any(|a| a == "--budget");
    let mut minutes: Vec<u32> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if minutes.is_empty() {
        minutes = vec![1, 5, 10];
    }
    gst::init().map_err(|e| e.to_string())?;
    // `--clip PATH`: the source clip (default: the tests' opencv-doc clip).
    let src = args
        .iter()
        .position(|a| a == "--clip")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(common::footage);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-long");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    println!(
        "source {}, {} cores",
        src.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| length | bg / fg frames | decode s | aligned s | ratio | analysis s | analysis / decode | peak MiB decode | peak MiB aligned | disk | exact | offset err px |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in minutes {
        let (bg, fg) = (
            dir.join(format!("bg-{m}min.mkv")),
            dir.join(format!("fg-{m}min.mkv")),
        );
        if !bg.is_file() || !fg.is_file() {
            let t = Instant::now();
            generate(&src, m, &bg, &fg)?;
            eprintln!("generated {m} min in {:.0} s", t.elapsed().as_secs_f64());
        }
        let report = dir.join(format!("report-{m}min.json"));
        let dec = measure("decode", &bg, &fg, &report)?;
        let aligned = measure("aligned", &bg, &fg, &report)?;
        let n_bg = (m as usize) * 60 * FPS as usize;
        row(
            &format!("{m} min"),
            &format!("{n_bg} / {}", aligned.frames),
            &dec,
            &aligned,
            &report,
            OFFSET,
        )?;
        for (on, mode, label) in [
            (two_pass, "two-pass", "two passes"),
            (store, "store", "frames=stored"),
            (budget, "budget", "max-memory=64 MiB"),
        ] {
            if on {
                let run = measure(mode, &bg, &fg, &report)?;
                row(
                    &format!("{m} min, {label}"),
                    "",
                    &dec,
                    &run,
                    &report,
                    OFFSET,
                )?;
            }
        }
        if excerpt {
            // fg frames from the middle on: they show bg frames from `start + OFFSET` on.
            let n_fg = n_bg - 2 * OFFSET;
            let start = n_fg / 2 - EXCERPT / 2;
            let cut = dir.join(format!("fg-{m}min-excerpt.mkv"));
            if !cut.is_file() {
                let (frames, info) = common::decode_frames(&fg, start, EXCERPT, None)?;
                let mut w = Writer::new(&cut, &info, 6000)?;
                for f in frames {
                    w.push(f)?;
                }
                w.finish()?;
            }
            let dec = measure("decode", &bg, &cut, &report)?;
            let name = format!(
                "{m} min bg, {} s fg from its middle",
                EXCERPT / FPS as usize
            );
            let aligned = measure("aligned", &bg, &cut, &report)?;
            row(
                &name,
                &format!("{n_bg} / {}", aligned.frames),
                &dec,
                &aligned,
                &report,
                start + OFFSET,
            )?;
            if two_pass {
                let two = measure("two-pass", &bg, &cut, &report)?;
                row(
                    &format!("{name}, two passes"),
                    "",
                    &dec,
                    &two,
                    &report,
                    start + OFFSET,
                )?;
            }
        }
    }
    Ok(())
}

/// Exact mappings (fg i -> bg i + `offset`) and the footprint's corner error, from a report.
fn score(report: &Path, offset: usize) -> Result<(String, f64), String> {
    let r = gstvidkompy::report::Report::read(report).map_err(|e| e.to_string())?;
    let n = r.frames.len();
    let exact = r.frames.iter().filter(|e| e.bg == e.fg + offset).count();
    let (x, y, w, _) = FOOTPRINT;
    let scale = w as f64 / FG.0 as f64;
    // Largest corner error, over every footprint used (a windowed run may change it).
    let error = |rx: f64, ry: f64, rs: f64| {
        let corner = ((rx - x as f64).powi(2) + (ry - y as f64).powi(2)).sqrt();
        let far = ((rx + FG.0 as f64 * rs - (x as f64 + FG.0 as f64 * scale)).powi(2)
            + (ry + FG.1 as f64 * rs - (y as f64 + FG.1 as f64 * scale)).powi(2))
        .sqrt();
        corner.max(far)
    };
    let mut err = error(r.x, r.y, r.scale);
    for seg in &r.segments {
        let e = error(seg.x, seg.y, seg.scale);
        eprintln!("segment from fg frame {}: error {e:.2} px", seg.from);
        err = err.max(e);
    }
    eprintln!("timings {report:?}: {:?}", r.timings);
    Ok((
        format!(
            "{:.2} % ({exact}/{n})",
            100.0 * exact as f64 / n.max(1) as f64
        ),
        err,
    ))
}

/// Where the drifting window is at bg frame `t` (even source pixels).
fn window(t: usize) -> (u32, u32) {
    let tau = std::f64::consts::TAU;
    let s = t as f64 / FPS as f64;
    let (rx, ry) = (
        (1920 - WINDOW.0) as f64 / 2.0,
        (1080 - WINDOW.1) as f64 / 2.0,
    );
    let x = rx + rx * (tau * s / 37.3).sin();
    let y = ry + ry * (tau * s / 23.9 + 1.0).sin();
    ((x as u32) & !1, (y as u32) & !1)
}

/// A streaming H.264 writer.
struct Writer {
    pipeline: gst::Element,
    src: gst_app::AppSrc,
    n: u64,
}

impl Writer {
    fn new(out: &Path, info: &gst_video::VideoInfo, kbps: u32) -> Result<Writer, String> {
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src format=time block=true ! x264enc speed-preset=ultrafast \
             key-int-max=48 bitrate={kbps} ! matroskamux ! filesink location={}",
            common::q(out)
        ))
        .map_err(|e| e.to_string())?;
        let src: gst_app::AppSrc = common::element(&pipeline, "src")?;
        src.set_caps(Some(&info.to_caps().map_err(|e| e.to_string())?));
        src.set_max_bytes(4 * info.size() as u64);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| e.to_string())?;
        Ok(Writer {
            pipeline,
            src,
            n: 0,
        })
    }

    fn push(&mut self, mut b: gst::Buffer) -> Result<(), String> {
        let at = |i: u64| {
            gst::ClockTime::SECOND
                .mul_div_floor(i, FPS as u64)
                .unwrap_or_default()
        };
        {
            let b = b.make_mut();
            b.set_pts(at(self.n));
            b.set_duration(at(self.n + 1) - at(self.n));
        }
        self.n += 1;
        self.src
            .push_buffer(b)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn finish(self) -> Result<(), String> {
        self.src.end_of_stream().map_err(|e| e.to_string())?;
        let bus = self.pipeline.bus().ok_or("no bus")?;
        let res = match bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(m) => match m.view() {
                gst::MessageView::Error(e) => Err(e.error().to_string()),
                _ => Ok(()),
            },
            None => Err("encoder did not finish".into()),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        res
    }
}

/// `src` rect of a source frame, scaled to `out`.
fn crop_scale(
    frame: &gst::Buffer,
    info: &gst_video::VideoInfo,
    (x, y, w, h): (u32, u32, u32, u32),
    out: &gst_video::VideoInfo,
) -> Result<gst::Buffer, String> {
    let config = {
        let mut c = gst_video::VideoConverterConfig::new();
        c.set_src_x(x as i32);
        c.set_src_y(y as i32);
        c.set_src_width(Some(w as i32));
        c.set_src_height(Some(h as i32));
        c.set_threads(std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        c
    };
    let conv =
        gst_video::VideoConverter::new(info, out, Some(config)).map_err(|e| e.to_string())?;
    let src = gst_video::VideoFrame::from_buffer_readable(frame.clone(), info)
        .map_err(|_| "unreadable frame")?;
    let dst = gst::Buffer::with_size(out.size()).map_err(|e| e.to_string())?;
    let mut dst =
        gst_video::VideoFrame::from_buffer_writable(dst, out).map_err(|_| "unwritable frame")?;
    conv.frame(&src, &mut dst);
    Ok(dst.into_buffer())
}

fn generate(src: &Path, minutes: u32, bg: &Path, fg: &Path) -> Result<(), String> {
    let (frames, info) = common::decode_frames(src, 0, 100_000, None)?;
    if info.width() != 1920 || info.height() != 1080 || frames.len() < 2 {
        return Err(format!(
            "the source must be 1920x1080, is {}x{}",
            info.width(),
            info.height()
        ));
    }
    let fps = gst::Fraction::new(FPS, 1);
    let vi = |(w, h): (u32, u32)| {
        gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
            .fps(fps)
            .build()
            .map_err(|e| e.to_string())
    };
    let (bg_info, fg_info) = (vi(BG)?, vi(FG)?);
    let n = minutes as usize * 60 * FPS as usize;
    let fg_range = OFFSET..n - OFFSET;
    let mut bw = Writer::new(bg, &bg_info, 8000)?;
    let mut fw = Writer::new(fg, &fg_info, 6000)?;
    let period = 2 * (frames.len() - 1);
    let (fx, fy, fwid, fhei) = FOOTPRINT;
    // bg px -> source px inside the window.
    let k = WINDOW.0 as f64 / BG.0 as f64;
    for t in 0..n {
        let p = t % period;
        let s = if p < frames.len() { p } else { period - p };
        let (wx, wy) = window(t);
        bw.push(crop_scale(
            &frames[s],
            &info,
            (wx, wy, WINDOW.0, WINDOW.1),
            &bg_info,
        )?)?;
        if fg_range.contains(&t) {
            let r = (
                wx + (fx as f64 * k) as u32,
                wy + (fy as f64 * k) as u32,
                (fwid as f64 * k) as u32,
                (fhei as f64 * k) as u32,
            );
            let mut b = crop_scale(&frames[s], &info, r, &fg_info)?;
            {
                // Re-graded: brighter, more contrast.
                let mut m = b.make_mut().map_writable().map_err(|_| "unmappable")?;
                let luma = (FG.0 * FG.1) as usize;
                for v in &mut m.as_mut_slice()[..luma] {
                    *v = (*v as f32 * 1.15 + 12.0).min(255.0) as u8;
                }
            }
            fw.push(b)?;
        }
        if t % (60 * FPS as usize) == 0 {
            eprintln!("generating {minutes} min: {} s", t / FPS as usize);
        }
    }
    bw.finish()?;
    fw.finish()
}
