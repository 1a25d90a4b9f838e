// SPDX-License-Identifier: MIT

//! The main job on a default sample: derives a bg/fg pair from a real clip, overlays the fg on
//! the bg with `vidkompyalign`, and writes `out.mp4`.
//!
//! ```text
//! cargo run --release --example demo -- [SOURCE_CLIP] [OUTPUT]
//! ```
//!
//! The pair: the bg is the clip scaled to at most 960 px wide; the fg is the middle half of the
//! scene at twice the resolution it covers in the bg, re-graded brighter so it shows, starting
//! one second later. The element finds where and when the fg belongs on its own.

#[path = "../tests/common/mod.rs"]
mod common;

use gst::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    gstvidkompy::plugin_register_static().map_err(|e| e.to_string())?;

    let mut args = std::env::args_os().skip(1);
    let src = match args.next() {
        Some(p) => PathBuf::from(p),
        None => common::footage().ok_or(
            "no sample clip found: run `bash .ci/install-deps` (it fetches Debian's opencv-doc \
             clips when ../shared/data is absent) or pass a clip",
        )?,
    };
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("out.mp4"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/demo");

    // 5 s of the clip for the bg; the fg starts 1 s later and lasts 3 s.
    let t0 = Instant::now();
    let (frames, info) = common::decode_frames(&src, 0, 1, None)?;
    drop(frames);
    let fps = info.fps();
    let per_s = if fps.numer() > 0 {
        (fps.numer() / fps.denom()).max(1) as usize
    } else {
        24
    };
    let bg_w = info.width().min(960) & !3;
    let bg_h = ((info.height() as u64 * bg_w as u64 / info.width() as u64) as u32) & !3;
    let (fx, fy, fw, fh) = (bg_w / 4, bg_h / 4, bg_w / 2, bg_h / 2);
    println!(
        "sample: {} ({}x{}); pair: bg {bg_w}x{bg_h}, {} frames; fg shows {fw}x{fh} of it at \
         ({fx}, {fy}), recorded at 2x, re-graded, starting {} frames later",
        src.display(),
        info.width(),
        info.height(),
        5 * per_s,
        per_s
    );
    let (bg, fg) = common::make_pair(
        &src,
        &dir,
        (bg_w, bg_h),
        5 * per_s,
        (fx, fy, fw, fh),
        2.0,
        (per_s, 3 * per_s),
    )?;
    println!(
        "pair written to {} in {:.1} s",
        dir.display(),
        t0.elapsed().as_secs_f64()
    );

    let desc = format!(
        "vidkompyalign name=a blend-width=8 ! videoconvert ! x264enc ! mp4mux ! \
         filesink location={} \
         filesrc location={} ! decodebin ! videoconvert ! a.bg \
         filesrc location={} ! decodebin ! videoconvert ! a.fg",
        common::q(&out),
        common::q(&bg),
        common::q(&fg)
    );
    println!("gst-launch-1.0 {desc}");
    let t1 = Instant::now();
    let pipeline = gst::parse::launch(&desc).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let result = loop {
        let Some(m) = bus.timed_pop(gst::ClockTime::from_seconds(600)) else {
            break Err("no end of stream within 600 s".to_string());
        };
        match m.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(format!("{} ({:?})", e.error(), e.debug())),
            gst::MessageView::Warning(w) => println!("warning: {}", w.error()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "vidkompy-alignment") {
                    let f = |k: &str| s.get::<f64>(k).unwrap_or(f64::NAN);
                    println!(
                        "alignment: x={:.2} y={:.2} scale={:.4} (truth: {fx} {fy} {:.4}); \
                         spatial confidence {:.3}; bg frames {}..={} (truth {}..={}); \
                         temporal confidence {:.3}; mapping by {}; analysis {:.2} s",
                        f("x"),
                        f("y"),
                        f("scale"),
                        0.5,
                        f("spatial-confidence"),
                        s.get::<u64>("first-bg-frame").unwrap_or(0),
                        s.get::<u64>("last-bg-frame").unwrap_or(0),
                        per_s,
                        4 * per_s - 1,
                        f("temporal-confidence"),
                        s.get::<&str>("mapping").unwrap_or("?"),
                        s.get::<gst::ClockTime>("analysis-time")
                            .map(|t| t.seconds_f64())
                            .unwrap_or(f64::NAN),
                    );
                }
            }
            _ => (),
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    println!(
        "wrote {} in {:.1} s",
        out.display(),
        t1.elapsed().as_secs_f64()
    );
    Ok(())
}
