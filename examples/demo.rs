// SPDX-License-Identifier: MIT

//! The main job on a default sample: derives a bg/fg pair from a real clip, overlays the fg on
//! the bg with `vidkompyalign`, and writes `out.mp4`.
//!
//! ```text
//! cargo run --release --example demo -- [SOURCE_CLIP] [OUTPUT]
//! ```
//!
//! The pair: the bg is the clip scaled to at most 960 px wide; the fg is the middle half of the
//! scene at 1.5x the resolution it covers in the bg, re-graded brighter so it shows.

#[path = "../tests/common/mod.rs"]
mod common;

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

    // 4 s of the clip, at most.
    let t0 = Instant::now();
    let (frames, info) = common::decode_frames(&src, 0, 1, None)?;
    drop(frames);
    let fps = info.fps();
    let n = if fps.numer() > 0 {
        (4 * fps.numer() / fps.denom()).max(1) as usize
    } else {
        96
    };
    let bg_w = info.width().min(960) & !1;
    let bg_h = ((info.height() as u64 * bg_w as u64 / info.width() as u64) as u32) & !1;
    let (fx, fy, fw, fh) = (bg_w / 4, bg_h / 4, bg_w / 2, bg_h / 2);
    println!(
        "sample: {} ({}x{}); pair: bg {bg_w}x{bg_h}, fg covers {fw}x{fh} at ({fx}, {fy}), \
         recorded at 1.5x",
        src.display(),
        info.width(),
        info.height()
    );
    let (bg, fg) = common::make_pair(&src, &dir, (bg_w, bg_h), n, (fx, fy, fw, fh), 1.5, n)?;
    println!(
        "pair written to {} in {:.1} s",
        dir.display(),
        t0.elapsed().as_secs_f64()
    );

    let fg_w = ((fw as f64 * 1.5).round() as u32) & !1;
    let scale = fw as f64 / fg_w as f64;
    let desc = format!(
        "vidkompyalign name=a x={fx} y={fy} scale={scale} blend-width=8 ! videoconvert ! \
         x264enc ! mp4mux ! filesink location={} \
         filesrc location={} ! decodebin ! videoconvert ! a.bg \
         filesrc location={} ! decodebin ! videoconvert ! a.fg",
        common::q(&out),
        common::q(&bg),
        common::q(&fg)
    );
    println!("gst-launch-1.0 {desc}");
    let t1 = Instant::now();
    common::launch(&desc, 600)?;
    println!(
        "wrote {} in {:.1} s",
        out.display(),
        t1.elapsed().as_secs_f64()
    );
    Ok(())
}
