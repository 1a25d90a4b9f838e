// SPDX-License-Identifier: MIT

//! Seekable inputs are read twice instead of stored: a first pass keeps only features, a short
//! second pass fetches the frames refinement needs, and a last pass composites. The result
//! must be exactly what storing every frame gives.

mod common;

use std::sync::Once;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvidkompy::plugin_register_static().unwrap();
    });
}

/// A ground-truth pair of H.264 files from real footage: fg frame i shows bg frame 12 + i.
fn pair(tag: &str) -> Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
    let src = common::footage()?;
    let dir = std::env::temp_dir().join(format!("vidkompy-passes-{tag}-{}", std::process::id()));
    let (bg, fg) =
        common::make_pair(&src, &dir, (320, 180), 48, (80, 46, 160, 90), 2.0, (12, 36)).unwrap();
    Some((dir, bg, fg))
}

fn run(bg: &std::path::Path, fg: &std::path::Path, props: &str) -> Result<common::Run, String> {
    common::run_collect(
        &format!(
            "vidkompyalign name=a {props} ! appsink name=s sync=false \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.bg \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.fg",
            common::q(bg),
            common::q(fg)
        ),
        120,
    )
}

fn same_frames(a: &[gst::Buffer], b: &[gst::Buffer]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(
            (x.pts(), x.duration()),
            (y.pts(), y.duration()),
            "frame {i}"
        );
        let (mx, my) = (x.map_readable().unwrap(), y.map_readable().unwrap());
        assert!(mx.as_slice() == my.as_slice(), "frame {i} differs");
    }
}

#[test]
fn seekable_inputs_are_read_again_not_stored_with_the_same_result() {
    init();
    let Some((dir, bg, fg)) = pair("same") else {
        eprintln!("skipped: no footage");
        return;
    };
    let two = run(&bg, &fg, "").unwrap();
    let stored = run(&bg, &fg, "two-pass=false").unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let a = two
        .message("vidkompy-alignment")
        .expect("alignment message");
    let b = stored
        .message("vidkompy-alignment")
        .expect("alignment message");
    assert_eq!(a.get::<&str>("frames").unwrap(), "read-again");
    assert_eq!(a.get::<u64>("stored-bytes").unwrap(), 0);
    assert_eq!(b.get::<&str>("frames").unwrap(), "stored");
    assert!(b.get::<u64>("stored-bytes").unwrap() > 0);
    for f in ["x", "y", "scale", "temporal-confidence"] {
        assert_eq!(a.get::<f64>(f).unwrap(), b.get::<f64>(f).unwrap(), "{f}");
    }
    assert_eq!(a.get::<&str>("mapping").unwrap(), "content");
    assert_eq!(a.get::<u64>("first-bg-frame").unwrap(), 12);
    assert_eq!(a.get::<u64>("last-bg-frame").unwrap(), 47);
    assert_eq!(two.frames.len(), 36);
    same_frames(&two.frames, &stored.frames);
}

#[test]
fn a_loaded_alignment_is_applied_in_two_passes() {
    init();
    let Some((dir, bg, fg)) = pair("loaded") else {
        eprintln!("skipped: no footage");
        return;
    };
    let report = dir.join("report.json");
    let first = run(&bg, &fg, &format!("report={}", common::q(&report))).unwrap();
    let again = run(&bg, &fg, &format!("alignment={}", common::q(&report))).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let a = again.message("vidkompy-alignment").unwrap();
    assert_eq!(a.get::<&str>("mapping").unwrap(), "loaded");
    assert_eq!(a.get::<&str>("frames").unwrap(), "read-again");
    same_frames(&first.frames, &again.frames);
}
