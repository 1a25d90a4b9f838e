// SPDX-License-Identifier: MIT

//! Automatic alignment through the real element in a real pipeline, on ground-truth pairs
//! derived from real footage: the bg is the clip scaled to 640x360; the fg is a region of it
//! cropped, recorded at a higher resolution than its footprint, re-graded, re-timed. Truth is
//! the source frame every fg and bg frame shows.
//!
//! Which bg frame the element chose for each output frame is read back from the output itself:
//! outside the footprint the output is an exact copy of that bg frame.

mod common;

use common::truth::{self, Case, Outcome, Score, Source, run, run_pair, score};
use gst::prelude::*;
use std::sync::{Once, OnceLock};

const SRC_FRAMES: usize = 140;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvidkompy::plugin_register_static().unwrap();
    });
}

/// The project's test clip (opencv-doc's vtest.avi: static camera, pedestrians) cropped to 16:9
/// and scaled to 960x540.
fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        init();
        truth::load(&common::footage(), Some((960, 540)), SRC_FRAMES)
    })
}

/// The same clip whole, at its own 768x576 (10 fps).
fn vtest() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        init();
        truth::load(&common::footage(), None, SRC_FRAMES)
    })
}

/// A clip unrelated to [`source`]: opencv-doc's Megamind.avi (animation), cropped to 16:9 at
/// 960x540.
fn unrelated() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        init();
        truth::load(
            &common::opencv_clip("Megamind.avi"),
            Some((960, 540)),
            SRC_FRAMES,
        )
    })
}

/// opencv-doc's vtest.avi at 640x480, 30 s of it (300 frames), for long offsets.
fn vtest_long() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        init();
        truth::load(&common::footage(), Some((640, 480)), 300)
    })
}

fn assert_aligned(case: &Case, o: &Outcome) -> Score {
    assert_aligned_as(case, o, "content")
}

/// [`assert_aligned`], the mapping made as `mapping` says (`windowed`: `force-live` on files,
/// whose last message covers the whole run).
fn assert_aligned_as(case: &Case, o: &Outcome, mapping: &str) -> Score {
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(
        o.outputs.len(),
        case.fg_src.len(),
        "one output per fg frame"
    );
    let a = o.alignment.as_ref().expect("alignment message");
    // Confidences that mean something: above the element's thresholds on every passing case.
    assert!(a.spatial_confidence >= 0.5, "{a:?}");
    // Well above what unrelated content scores (tests/unrelated.rs: 0.25 at most).
    assert!(a.spatial_calibrated >= 0.6, "{a:?}");
    assert!(a.temporal_confidence >= 0.1, "{a:?}");
    assert_eq!(a.footprint_from.as_str(), "content", "{a:?}");
    assert_eq!(a.mapping.as_str(), mapping, "{a:?} {:?}", o.warnings);
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
    let src = source();
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
    let src = source();
    let case = Case::new((30..140).collect(), (10..90).collect());
    let sc = assert_aligned(&case, &run(src, &case));
    assert_eq!(sc.outside, 20);
}

#[test]
fn black_frames_and_a_fade_at_the_start_of_both() {
    let src = source();
    let mut case = Case::new((0..110).collect(), (0..80).collect());
    case.black_fade = (12, 12);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_at_half_the_bg_rate() {
    let src = source();
    let mut case = Case::new((0..140).collect(), (20..140).step_by(2).collect());
    case.fg_fps = gst::Fraction::new(12, 1);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn bg_at_half_the_fg_rate() {
    let src = source();
    let mut case = Case::new((0..140).step_by(2).collect(), (30..120).collect());
    case.bg_fps = gst::Fraction::new(12, 1);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_drifting_four_percent_fast() {
    let src = source();
    let fg_src: Vec<usize> = (0..100)
        .map(|i| 25 + (i as f64 * 1.04).round() as usize)
        .collect();
    let case = Case::new((0..140).collect(), fg_src);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn unrelated_content_warns_and_falls_back_to_running_time() {
    let src = source();
    let mut case = Case::new((0..60).collect(), (0..40).collect());
    case.flip = true;
    let o = run(src, &case);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(o.outputs.len(), 40);
    let a = o.alignment.expect("alignment message");
    eprintln!("{a:?}");
    assert_eq!(a.mapping.as_str(), "running-time");
    assert_eq!(a.footprint_from.as_str(), "fallback");
    assert!(
        o.warnings.iter().any(|w| w.contains("not found in the bg")),
        "{:?}",
        o.warnings
    );
}

#[test]
fn unrelated_clips_fall_under_the_thresholds_and_warn() {
    let (bg, fg) = (source(), unrelated());
    let case = Case::new((0..80).collect(), (0..60).collect());
    let o = run_pair(bg, fg, &case);
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(o.outputs.len(), 60);
    let a = o.alignment.expect("alignment message");
    eprintln!("{a:?}");
    assert!(a.spatial_calibrated < 0.5, "{a:?}");
    assert_eq!(a.mapping.as_str(), "running-time");
    assert_eq!(a.footprint_from.as_str(), "fallback");
    assert!(
        o.warnings.iter().any(|w| w.contains("not found in the bg")),
        "{:?}",
        o.warnings
    );
}

#[test]
fn a_set_scale_is_kept_and_the_offset_searched() {
    let src = source();
    let mut case = Case::new((0..80).collect(), (20..60).collect());
    case.props = vec![("scale", (320.0f64 / 480.0).to_value())];
    let o = run(src, &case);
    assert_aligned(&case, &o);
    let a = o.alignment.unwrap();
    assert_eq!(a.scale, 320.0 / 480.0);
}

#[test]
fn a_set_footprint_overrides_the_search_and_frames_are_still_matched() {
    let src = source();
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
    assert_eq!((a.footprint.x, a.footprint.y, a.scale), (201, 87, s));
    assert_eq!(a.footprint_from.as_str(), "properties");
    // One pixel off the truth still matches content well enough to map frames by content.
    assert_eq!(a.mapping.as_str(), "content");
    let first = a.first_bg_frame;
    assert!(first.abs_diff(20) <= 1, "{a:?}");
}

#[test]
fn static_camera_with_pedestrians_later_start_and_higher_fg_rate() {
    let src = vtest();
    // bg 512x384 at 10 fps; fg a 256x192 footprint recorded at 384x288, starting 3 s later,
    // at 20 fps (every frame shown twice: duplicates in the fg).
    let mut case = Case::new((0..140).collect(), (30..120).flat_map(|k| [k, k]).collect());
    case.bg_size = (512, 384);
    case.footprint = (128, 96, 256, 192);
    case.bg_fps = gst::Fraction::new(10, 1);
    case.fg_fps = gst::Fraction::new(20, 1);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn match_region_edges_maps_a_fg_whose_interior_differs() {
    let src = source();
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
    let src = source();
    let mut case = Case::new((0..140).collect(), (10..138).step_by(4).collect());
    case.fg_fps = gst::Fraction::new(6, 1);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn bg_at_a_quarter_of_the_fg_rate() {
    let src = source();
    let mut case = Case::new((0..140).step_by(4).collect(), (20..120).collect());
    case.bg_fps = gst::Fraction::new(6, 1);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_drifting_five_percent_slow() {
    let src = source();
    let fg_src: Vec<usize> = (0..110)
        .map(|i| 15 + (i as f64 * 0.95).round() as usize)
        .collect();
    let case = Case::new((0..140).collect(), fg_src);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_at_two_and_a_half_times_the_bg_rate() {
    let src = source();
    // 24 -> 60 fps: every source frame shown two or three times in the fg.
    let mut case = Case::new(
        (0..140).collect(),
        (0..200).map(|i| 20 + i * 2 / 5).collect(),
    );
    case.fg_fps = gst::Fraction::new(60, 1);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_timestamps_that_lie_about_the_rate() {
    let src = source();
    // 24 fps content carried at 25 fps: only content tells.
    let mut case = Case::new((0..140).collect(), (20..100).collect());
    case.fg_declared_fps = Some(gst::Fraction::new(25, 1));
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_drifting_two_percent_either_way() {
    let src = source();
    for k in [1.02, 0.98] {
        let fg = (0..100)
            .map(|i| 15 + (i as f64 * k).round() as usize)
            .collect();
        let case = Case::new((0..140).collect(), fg);
        assert_aligned(&case, &run(src, &case));
    }
}

#[test]
fn heavily_compressed_bg() {
    let src = source();
    let mut case = Case::new((0..120).collect(), (20..100).collect());
    case.bg_kbps = Some(150);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_at_one_and_a_quarter_and_twice_its_footprint() {
    let src = source();
    for scale in [1.25, 2.0] {
        let mut case = Case::new((0..120).collect(), (20..100).collect());
        case.fg_scale = scale;
        assert_aligned(&case, &run(src, &case));
    }
}

#[test]
fn fg_touching_one_or_two_bg_edges() {
    let src = source();
    for footprint in [(0, 88, 320, 180), (320, 0, 320, 180)] {
        let mut case = Case::new((0..120).collect(), (20..100).collect());
        case.footprint = footprint;
        assert_aligned(&case, &run(src, &case));
    }
}

#[test]
fn a_scene_cut_in_the_fg() {
    let src = source();
    // The fg skips 30 source frames after its 40th frame.
    let case = Case::new((0..140).collect(), (10..50).chain(80..120).collect());
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn both_streams_retimed_to_other_rates() {
    let src = source();
    for (bg_fps, fg_fps) in [
        (10.0, 15.0),
        (30.0, 25.0),
        (60.0, 24.0),
        (24000.0 / 1001.0, 30.0),
    ] {
        let nb = (130.0 * bg_fps / 24.0) as usize;
        let mut case = Case::new(
            truth::frames_at(0, nb, 24.0, bg_fps),
            truth::frames_at(20, (90.0 * fg_fps / 24.0) as usize, 24.0, fg_fps),
        );
        case.bg_fps = truth::rate(bg_fps);
        case.fg_fps = truth::rate(fg_fps);
        eprintln!("bg {bg_fps} fps, fg {fg_fps} fps");
        assert_aligned(&case, &run(src, &case));
    }
}

#[test]
fn a_static_camera_retimed_to_ntsc_film_and_30_fps() {
    // Few moving pixels (pedestrians) and a rate the bg does not share: the hardest case for
    // the refinement found so far (0.9-1.0 px at this size; the evaluate example at 960x540
    // measured 1.2 px with refinement pairs among the fg's first 120 frames, 0.08 px with 240).
    let src = vtest();
    // The clip's own rate (10 fps) is the source timeline, as in the evaluate example.
    let fps = src.info.fps();
    let fps = fps.numer() as f64 / fps.denom().max(1) as f64;
    let (bg_fps, fg_fps) = (24000.0 / 1001.0, 30.0);
    let mut case = Case::new(
        truth::frames_at(0, (130.0 * bg_fps / fps) as usize, fps, bg_fps),
        truth::frames_at(20, (90.0 * fg_fps / fps) as usize, fps, fg_fps),
    );
    case.bg_fps = truth::rate(bg_fps);
    case.fg_fps = truth::rate(fg_fps);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_ending_with_the_bg() {
    let src = source();
    let case = Case::new((0..120).collect(), (40..120).collect());
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn fg_starting_twenty_seconds_into_a_static_camera_bg() {
    let src = vtest_long();
    // bg: 30 s at 10 fps, 480x360; fg: 9 s from 20 s on, a 240x180 footprint at 320x240.
    let mut case = Case::new((0..300).collect(), (200..290).collect());
    case.bg_size = (480, 360);
    case.footprint = (120, 90, 240, 180);
    case.fg_scale = 4.0 / 3.0;
    case.bg_fps = gst::Fraction::new(10, 1);
    case.fg_fps = gst::Fraction::new(10, 1);
    assert_aligned(&case, &run(src, &case));
}

#[test]
fn a_report_is_written_and_reused_without_analysis() {
    let src = source();
    let dir = std::env::temp_dir().join(format!("vidkompy-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("alignment.json");
    let path_str = path.to_str().unwrap().to_string();

    let mut case = Case::new((0..100).collect(), (30..90).collect());
    case.props = vec![("report", path_str.to_value())];
    let first = run(src, &case);
    assert_aligned(&case, &first);
    let text = std::fs::read_to_string(&path).expect("report written");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["mapping"], "content");
    assert_eq!(report["device"], "cpu");
    let frames = report["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 60);
    assert_eq!(frames[0]["bg"], 30);
    assert_eq!(frames[59]["fg"], 59);
    assert!(frames[10]["cost"].as_f64().is_some() && frames[10]["bg_pts"].as_u64().is_some());

    // Reused: the same output, no analysis.
    case.props = vec![("alignment", path_str.to_value())];
    let second = run(src, &case);
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let a = second.alignment.as_ref().unwrap();
    assert_eq!(a.mapping.as_str(), "loaded");
    assert_eq!(second.outputs.len(), first.outputs.len());
    for (x, y) in first.outputs.iter().zip(&second.outputs) {
        assert_eq!(
            x.map_readable().unwrap().as_slice(),
            y.map_readable().unwrap().as_slice()
        );
    }

    // Streams that do not fit the report: an error naming the mismatch.
    let mut other = Case::new((0..100).collect(), (30..80).collect());
    other.props = vec![("alignment", path_str.to_value())];
    let third = run(src, &other);
    assert!(
        third
            .errors
            .iter()
            .any(|e| e.contains("fg has 50 frames but the report is for 60")),
        "{:?}",
        third.errors
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bg whose camera pans (2 bg px a frame, the fg panning with it): a footprint one pan step
/// off fits the neighbouring bg frame almost as well as the right footprint fits the right one,
/// and a temporal alignment at the wrong footprint prefers that neighbour (before: 1.99 px off,
/// 9 of 100 frames exact). tests/live.rs runs the same pair windowed.
#[test]
fn a_panning_bg_is_told_from_a_footprint_a_pan_step_off() {
    let src = source();
    let mut case = Case::new((0..140).collect(), (30..130).collect());
    case.pan = Some(truth::Pan {
        size: (640, 360),
        at: (0, 0),
        step: (2, 0),
    });
    let sc = assert_aligned(&case, &run(src, &case));
    assert!(
        sc.corner_error <= 0.5,
        "spatial error {:.2} px",
        sc.corner_error
    );
}

/// One of [`truth::combined_cases`], on the project's clip.
fn combined(name: &str) -> Case {
    truth::combined_cases(10.0)
        .into_iter()
        .find(|(n, _)| n.contains(name))
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("no combined case {name}"))
}

#[test]
fn two_time_bases_with_a_black_start_and_damaged_bg_frames() {
    let case = combined("damaged bg");
    assert_aligned(&case, &run(source(), &case));
}

#[test]
fn fg_frames_dropped_at_irregular_times() {
    let case = combined("VFR");
    assert_aligned(&case, &run(source(), &case));
}

#[test]
fn fg_with_sensor_noise_and_a_burned_in_logo_and_timestamp() {
    let case = combined("sensor noise");
    assert_aligned(&case, &run(source(), &case));
}

/// The VFR case windowed (`force-live` on files, the live engine): each fg frame is placed
/// on its frame grid from its timestamps there too (before: 88.6 % exact on this clip).
#[test]
fn fg_frames_dropped_at_irregular_times_windowed() {
    let mut case = combined("VFR");
    case.props.push(("force-live", true.to_value()));
    assert_aligned_as(&case, &run(source(), &case), "windowed");
}

/// Windowed (`force-live` on files), bg at half the fg's content rate with timestamps that do
/// not agree (bg 5 fps, fg 24 fps, the same moments): once the fg ended, its last frames wait
/// until the bg was read a lookahead past where the path's line puts them. Before, the bg's
/// running time (far ahead of the fg's) made them due at once, and the fg frame showing the
/// bg's last frame took the one before.
#[test]
fn bg_at_half_the_rate_windowed_keeps_its_last_frame_for_the_fg() {
    let mut case = Case::new((0..140).step_by(2).collect(), (20..120).collect());
    case.bg_fps = gst::Fraction::new(5, 1);
    case.props.push(("force-live", true.to_value()));
    let sc = assert_aligned_as(&case, &run(source(), &case), "windowed");
    assert_eq!(
        sc.present_exact, sc.present,
        "every fg frame whose moment the bg shows on that bg frame"
    );
}
