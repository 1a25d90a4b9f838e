// SPDX-License-Identifier: MIT

//! Unrelated content, through the real element in a real pipeline: a fg that shows nothing of
//! the bg's scene (test patterns, other real clips) falls back with a warning, however high its
//! raw spatial confidence, because the calibrated confidence measures a match against what the
//! same search scores for content that shows no scene of the bg.

mod common;

use common::truth::{self, Case, Source, run_pair};
use gstvidkompy::messages::FootprintFrom;
use std::sync::{Once, OnceLock};

const FRAMES: usize = 80;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvidkompy::plugin_register_static().unwrap();
    });
}

/// A real clip from opencv-doc, cropped to 16:9 at 960x540.
fn clip(name: &str) -> Source {
    init();
    let path = if name == "vtest.avi" {
        common::footage()
    } else {
        common::opencv_clip(name)
    };
    truth::load(&path, Some((960, 540)), FRAMES)
}

/// The project's bg clip (static camera, pedestrians).
fn vtest() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| clip("vtest.avi"))
}

fn pattern(name: &str) -> Source {
    init();
    truth::pattern(name, (960, 540), FRAMES)
}

/// Runs `fg` (its footprint region, as the real cases crop it) over `bg`: the footprint falls
/// back, with a warning, and frames are mapped by running time.
fn falls_back(bg: &Source, fg: &Source, what: &str) {
    let case = Case::new((0..FRAMES).collect(), (10..70).collect());
    let o = run_pair(bg, fg, &case);
    assert!(o.errors.is_empty(), "{what}: {:?}", o.errors);
    assert_eq!(o.outputs.len(), 60, "{what}");
    let a = o.alignment.expect("alignment message");
    eprintln!(
        "{what}: spatial confidence {:.3}, calibrated {:.3}",
        a.spatial_confidence, a.spatial_calibrated
    );
    assert_eq!(a.footprint_from, FootprintFrom::Fallback, "{what}: {a:?}");
    assert_eq!(a.mapping.as_str(), "running-time", "{what}: {a:?}");
    assert!(a.spatial_calibrated < 0.5, "{what}: {a:?}");
    assert!(
        o.warnings.iter().any(|w| w.contains("not found in the bg")),
        "{what}: {:?}",
        o.warnings
    );
}

#[test]
fn colour_bars_fall_back_though_their_raw_score_passes() {
    falls_back(vtest(), &pattern("smpte"), "smpte bars over vtest");
}

#[test]
fn a_smooth_gradient_falls_back_though_its_raw_score_passes() {
    falls_back(vtest(), &pattern("gradient"), "gradient over vtest");
}

#[test]
fn test_patterns_fall_back() {
    for p in ["circular", "pinwheel", "spokes"] {
        falls_back(vtest(), &pattern(p), p);
    }
}

#[test]
fn other_real_clips_fall_back() {
    for c in ["Megamind.avi", "box.mp4", "cup.mp4"] {
        falls_back(vtest(), &clip(c), c);
    }
    falls_back(&clip("Megamind.avi"), vtest(), "vtest over Megamind");
}
