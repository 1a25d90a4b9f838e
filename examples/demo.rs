// SPDX-License-Identifier: MIT

//! The main job on a default sample: derives a bg/fg pair from a real clip, overlays the fg on
//! the bg with the `vidkompy` command, and writes `out.mp4` and a picture of the alignment,
//! `out.svg`.
//!
//! ```text
//! cargo build --release && cargo run --release --example demo -- [SOURCE_CLIP] [OUTPUT]
//! ```
//!
//! The pair: the bg is the clip scaled to at most 960 px wide; the fg is the middle half of the
//! scene at twice the resolution it covers in the bg, re-graded brighter so it shows, starting
//! one second later. The element finds where and when the fg belongs on its own.

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
        None => Some(common::clip_path("vtest.avi"))
            .filter(|p| p.is_file())
            .ok_or(
                "no sample clip: run `bash .ci/install-deps` (it fetches Debian's opencv-doc \
                 clips into target/footage) or pass a clip",
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
    // The pair is re-timed to 24 fps.
    let per_s = common::PAIR_FPS as usize;
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

    // The main job: the `vidkompy` command (built beside this example by `cargo build
    // --release`), with a picture of the alignment and its report.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let vidkompy = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|release| release.join("vidkompy"))
        .filter(|p| p.is_file())
        .ok_or("the vidkompy command is not built: run `cargo build --release` first")?;
    let (plot, report) = (out.with_extension("svg"), dir.join("report.json"));
    println!(
        "{} {} {} -o {} --blend-width 8 --plot {} --report {}",
        vidkompy.display(),
        bg.display(),
        fg.display(),
        out.display(),
        plot.display(),
        report.display()
    );
    let t1 = Instant::now();
    let status = std::process::Command::new(&vidkompy)
        .args([&bg, &fg])
        .arg("-o")
        .arg(&out)
        .args(["--blend-width", "8", "--plot"])
        .arg(&plot)
        .arg("--report")
        .arg(&report)
        .status()
        .map_err(|e| format!("{}: {e}", vidkompy.display()))?;
    if !status.success() {
        return Err(format!("vidkompy failed ({status})"));
    }
    let r = gstvidkompy::report::Report::read(&report).map_err(|e| e.to_string())?;
    let (first, last) = (
        r.frames.first().map_or(0, |e| e.bg),
        r.frames.last().map_or(0, |e| e.bg),
    );
    println!(
        "found x={:.2} y={:.2} scale={:.4}, bg frames {first}..={last}; truth {fx} {fy} 0.5000, \
         bg frames {}..={}",
        r.x,
        r.y,
        r.scale,
        per_s,
        4 * per_s - 1
    );
    println!(
        "wrote {} and {} in {:.1} s",
        out.display(),
        plot.display(),
        t1.elapsed().as_secs_f64()
    );
    Ok(())
}
