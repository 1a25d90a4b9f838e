// SPDX-License-Identifier: MIT

//! Accuracy table: derives ground-truth pairs from a real clip (crop, scale, start offset, frame
//! rate, drift, grade, compression, trim, cuts), runs each through `vidkompyalign` in a real
//! pipeline and prints one row per case.
//!
//! ```text
//! cargo run --release --example evaluate -- [--windowed | --files [--two-pass]] [CLIP]
//! ```
//!
//! By default each pair is fed by `appsrc` (inputs that cannot seek: frames stored);
//! `--windowed` sets `force-live` (aligned on a sliding window, one pass); `--files` writes each
//! pair to losslessly encoded files read through `filesrc ! decodebin` (inputs that can seek:
//! the element's default, each read once on a sliding window; with `--two-pass`,
//! `frames=read-again`: aligned over the whole files, then read again for the output);
//! `VIDKOMPY_EVAL_ONLY=text` runs only the cases whose name contains it;
//! `VIDKOMPY_EVAL_REPORT=path` has each case write its report there.
//!
//! Truth comes from how each pair was made: every bg and fg frame shows a known source frame.
//! "Exact": the chosen bg frame shows the fg frame's source frame or an identical duplicate (only
//! fg frames whose source frame the bg has are counted). "±1": the chosen bg frame is at most one
//! frame from the bg frame showing at the fg frame's moment. "out": fg frames before the bg's
//! start or after its end (they must show its first or last frame).

#[path = "../tests/common/mod.rs"]
mod common;

use common::truth::{self, Case};
use gst::prelude::*;

/// Source frames decoded (at 960 px wide at most).
const FRAMES: usize = 150;

fn cases(fps: f64) -> Vec<(&'static str, Case)> {
    let f = |r: f64| gst::Fraction::approximate_f64(r).unwrap_or(gst::Fraction::new(24, 1));
    let per = |s: f64| (s * fps).round() as usize;
    let mut v: Vec<(&'static str, Case)> = Vec::new();
    let mut add = |name, case| v.push((name, case));
    add(
        "same start, fg shorter",
        Case::new((0..120).collect(), (0..80).collect()),
    );
    add(
        "fg 2 s later",
        Case::new((0..120).collect(), (per(2.0)..per(2.0) + 70).collect()),
    );
    add(
        "fg ends after the bg",
        Case::new((0..100).collect(), (40..130).collect()),
    );
    add(
        "fg starts before the bg",
        Case::new((30..140).collect(), (10..90).collect()),
    );
    let mut c = Case::new((0..140).collect(), (10..138).step_by(2).collect());
    c.fg_fps = f(fps / 2.0);
    add("fg at half the rate", c);
    let mut c = Case::new((0..140).collect(), (10..138).step_by(4).collect());
    c.fg_fps = f(fps / 4.0);
    add("fg at a quarter of the rate", c);
    let mut c = Case::new((0..140).step_by(2).collect(), (20..120).collect());
    c.bg_fps = f(fps / 2.0);
    add("bg at half the rate", c);
    let mut c = Case::new(
        (0..140).collect(),
        (0..200).map(|i| 20 + i * 2 / 5).collect(),
    );
    c.fg_fps = f(fps * 2.5);
    add("fg at 2.5x the rate (24 -> 60)", c);
    // Both streams re-timed from the source's rate (repeating or skipping its frames).
    for (name, bg_fps, fg_fps) in [
        ("bg 10 fps, fg 15 fps", 10.0, 15.0),
        ("bg 30 fps, fg 25 fps", 30.0, 25.0),
        ("bg 60 fps, fg 24 fps", 60.0, 24.0),
        ("bg 23.976 fps, fg 30 fps", 24000.0 / 1001.0, 30.0),
    ] {
        let nb = (130.0 * bg_fps / fps) as usize;
        let mut c = Case::new(
            truth::frames_at(0, nb, fps, bg_fps),
            truth::frames_at(20, (90.0 * fg_fps / fps) as usize, fps, fg_fps),
        );
        c.bg_fps = truth::rate(bg_fps);
        c.fg_fps = truth::rate(fg_fps);
        add(name, c);
    }
    add(
        "fg ends with the bg",
        Case::new((0..120).collect(), (40..120).collect()),
    );
    let mut c = Case::new((0..140).collect(), (20..100).collect());
    c.fg_declared_fps = Some(f(fps * 25.0 / 24.0));
    add("fg timestamps lie (claim 25/24 of the rate)", c);
    for (name, k) in [
        ("drift +2 %", 1.02),
        ("drift -2 %", 0.98),
        ("drift +5 %", 1.05),
        ("drift -5 %", 0.95),
    ] {
        let fg = (0..100)
            .map(|i| 15 + (i as f64 * k).round() as usize)
            .collect();
        add(name, Case::new((0..140).collect(), fg));
    }
    let mut c = Case::new((0..120).collect(), (20..100).collect());
    c.bg_kbps = Some(150);
    add("bg heavily compressed (150 kbit/s)", c);
    let mut c = Case::new((0..110).collect(), (0..80).collect());
    c.black_fade = (12, 12);
    add("black frames and a fade at the start", c);
    let mut c = Case::new((0..120).collect(), (20..100).collect());
    c.fg_scale = 1.25;
    add("fg at 1.25x its footprint", c);
    let mut c = Case::new((0..120).collect(), (20..100).collect());
    c.fg_scale = 2.0;
    add("fg at 2x its footprint", c);
    let mut c = Case::new((0..120).collect(), (20..100).collect());
    c.footprint = (0, 88, 320, 180);
    add("fg touching one bg edge", c);
    let mut c = Case::new((0..120).collect(), (20..100).collect());
    c.footprint = (320, 0, 320, 180);
    add("fg touching two bg edges", c);
    let mut c = Case::new((0..140).collect(), (10..50).chain(80..120).collect());
    c.grade = (0.9, 10.0);
    add("scene cut in the fg (skips 30 frames)", c);
    let mut c = Case::new((0..100).collect(), (20..80).collect());
    c.interior = Some((40, 24));
    c.props = vec![("match-region", "edges".to_value())];
    add("fg interior differs, match-region=edges", c);
    v.extend(truth::combined_cases(fps));
    v
}

fn main() {
    gst::init().expect("GStreamer");
    gstvidkompy::plugin_register_static().expect("plugin");
    let path = std::env::args_os()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with("--"))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(common::footage);
    let src = truth::load(&path, Some((960, 540)), FRAMES);
    let fps = src.info.fps();
    let fps = if fps.numer() > 0 {
        fps.numer() as f64 / fps.denom() as f64
    } else {
        24.0
    };
    println!(
        "clip: {} ({} frames at 960x540, {fps:.3} fps); bg 640x360, fg footprint 320x180 at \
         (200, 88) recorded at 1.5x, re-graded, unless the case says otherwise\n",
        path.display(),
        FRAMES
    );
    println!(
        "| case | spatial error px | calibrated | exact | within ±1 | max dev | out / in | \
         analysis s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // `--windowed`: aligned on a sliding window in one pass (`force-live` on inputs that are
    // not live).
    let windowed = std::env::args().any(|a| a == "--windowed");
    // `--files`: each pair is written to losslessly encoded files and read through `filesrc !
    // decodebin` (inputs that can seek); else fed by `appsrc`.
    let files = std::env::args().any(|a| a == "--files");
    // `--two-pass` (with `--files`): `frames=read-again`.
    let two_pass = std::env::args().any(|a| a == "--two-pass");
    // `VIDKOMPY_EVAL_ONLY=text` runs the cases whose name contains it.
    let only = std::env::var("VIDKOMPY_EVAL_ONLY").ok();
    for (name, mut case) in cases(fps) {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        // `VIDKOMPY_EVAL_REPORT=path` writes each case's report there (the last case's stays).
        if let Ok(r) = std::env::var("VIDKOMPY_EVAL_REPORT") {
            case.props.push(("report", r.to_value()));
        }
        if windowed && !files {
            case.props.push(("force-live", true.to_value()));
        }
        if files && two_pass {
            case.props.push(("frames", "read-again".to_value()));
        }
        if files {
            case.files = Some(
                std::env::temp_dir().join(format!("vidkompy-evaluate-{}", std::process::id())),
            );
        }
        let o = truth::run(&src, &case);
        if let Some(dir) = &case.files {
            let _ = std::fs::remove_dir_all(dir);
        }
        if !o.errors.is_empty() || o.alignment.is_none() {
            println!("| {name} | error: {:?} | | | | | | |", o.errors);
            continue;
        }
        let s = truth::score(&case, &o);
        let pct = |a: usize, b: usize| {
            if b == 0 {
                100.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        let calibrated = o
            .alignment
            .as_ref()
            .map_or(f64::NAN, |a| a.spatial_calibrated);
        println!(
            "| {name} | {:.2} | {calibrated:.2} | {:.1} % ({}/{}) | {:.1} % | {} | {} / {} | \
             {:.2} |",
            s.corner_error,
            pct(s.present_exact, s.present),
            s.present_exact,
            s.present,
            pct(s.within_one, s.inside),
            s.max_dev,
            s.outside,
            s.inside,
            s.analysis_s
        );
    }
}
