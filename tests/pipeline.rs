// SPDX-License-Identifier: MIT

//! The built plugin file itself: it loads (gst-inspect and the registry), and it runs in a real
//! pipeline that decodes two short clips derived from real footage.

mod common;

use gst::prelude::*;
use gst_video::prelude::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

/// The directory holding the `libgstvidkompy.so` that `cargo test` built for this run: the test
/// binary's own directory, `<target>/<profile>/deps` (cargo does not copy the cdylib up to
/// `<target>/<profile>` for tests, so a file there may be stale).
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_path_buf()
}

fn plugin_file() -> PathBuf {
    plugin_dir().join(format!(
        "{}gstvidkompy{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Initialises GStreamer and loads the plugin from its file (not `plugin_register_static`).
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        let plugin = gst::Plugin::load_file(plugin_file())
            .unwrap_or_else(|e| panic!("{} does not load: {e}", plugin_file().display()));
        gst::Registry::get().add_plugin(&plugin).unwrap();
    });
}

#[test]
fn gst_inspect_loads_the_built_plugin_file() {
    let so = plugin_file();
    assert!(so.is_file(), "{} missing", so.display());
    let registry =
        std::env::temp_dir().join(format!("vidkompy-inspect-{}.bin", std::process::id()));
    let out = Command::new("gst-inspect-1.0")
        .arg(&so)
        .env("GST_REGISTRY", &registry)
        .output()
        .expect("gst-inspect-1.0 runs (package gstreamer1.0-tools)");
    let _ = std::fs::remove_file(&registry);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("vidkompyalign"), "{text}");
    // and by element name, through the plugin path (a directory holding only this file: the
    // deps directory also holds proc-macro libraries that are no plugins)
    let dir = std::env::temp_dir().join(format!("vidkompy-plugin-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(so.file_name().unwrap());
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&so, &link).unwrap();
    let out = Command::new("gst-inspect-1.0")
        .arg("vidkompyalign")
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env("GST_PLUGIN_PATH", &dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for needle in [
        "Filter/Editor/Video/Compositor",
        "blend-width",
        "SINK template: 'bg'",
        "SINK template: 'fg'",
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
}

#[test]
fn composites_two_real_clips_through_the_plugin_file() {
    init();
    let factory = gst::ElementFactory::find("vidkompyalign").unwrap();
    let loaded_from = factory.plugin().and_then(|p| p.filename()).unwrap();
    assert_eq!(loaded_from, plugin_file());

    let src = common::footage();
    let dir = std::env::temp_dir().join(format!("vidkompy-pipeline-{}", std::process::id()));
    // bg 320x180, 48 frames; fg: the footprint 160x90 at (80, 46) recorded at twice its
    // resolution, re-graded brighter, 36 frames starting at bg frame 12. H.264 both.
    let (fx, fy, fw, fh) = (80, 46, 160, 90);
    let skip = 12;
    let (bg, fg) = common::make_pair(
        &src,
        &dir,
        (320, 180),
        48,
        (fx, fy, fw, fh),
        2.0,
        (skip, 36),
    )
    .unwrap();

    let (bg_frames, bg_caps) = common::collect_frames(
        &format!(
            "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! appsink name=s sync=false",
            common::q(&bg)
        ),
        120,
    )
    .unwrap();
    let (fg_frames, fg_caps) = common::collect_frames(
        &format!(
            "filesrc location={} ! decodebin ! appsink name=s sync=false",
            common::q(&fg)
        ),
        120,
    )
    .unwrap();
    assert_eq!(bg_frames.len(), 48);
    assert_eq!(fg_frames.len(), 36);

    // No x, y or scale: the element finds where and when the fg belongs.
    let (out, out_caps) = common::collect_frames(
        &format!(
            "vidkompyalign name=a ! appsink name=s sync=false \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.bg \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGBA ! a.fg",
            common::q(&bg),
            common::q(&fg)
        ),
        120,
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // One output per fg frame, with the fg's timestamps, on the bg's canvas at the fg's rate.
    assert_eq!(out.len(), fg_frames.len());
    for (o, f) in out.iter().zip(&fg_frames) {
        assert_eq!((o.pts(), o.duration()), (f.pts(), f.duration()));
    }
    let out_caps = out_caps.unwrap();
    let out_info = gst_video::VideoInfo::from_caps(&out_caps).unwrap();
    let bg_info = gst_video::VideoInfo::from_caps(&bg_caps.unwrap()).unwrap();
    let fg_info = gst_video::VideoInfo::from_caps(&fg_caps.unwrap()).unwrap();
    assert_eq!((out_info.width(), out_info.height()), (320, 180));
    assert_eq!(out_info.format(), gst_video::VideoFormat::I420);
    assert_eq!(out_info.fps(), fg_info.fps());

    // Outside the footprint: exactly the bg frame at the same time. Inside: the fg, which is
    // the same scene re-graded brighter.
    // fg frame i shows bg frame skip + i.
    for (i, o) in out.iter().enumerate() {
        let truth = &bg_frames[skip + i];
        let of = gst_video::VideoFrame::from_buffer_readable(o.clone(), &out_info).unwrap();
        let bf = gst_video::VideoFrame::from_buffer_readable(truth.clone(), &bg_info).unwrap();
        let (os, bs) = (of.plane_stride()[0] as usize, bf.plane_stride()[0] as usize);
        let (od, bd) = (of.plane_data(0).unwrap(), bf.plane_data(0).unwrap());
        let (mut inside, mut n_in) = (0i64, 0i64);
        for y in 0..180usize {
            for x in 0..320usize {
                let (a, b) = (od[y * os + x] as i64, bd[y * bs + x] as i64);
                let is_in = (fx as usize..(fx + fw) as usize).contains(&x)
                    && (fy as usize..(fy + fh) as usize).contains(&y);
                if is_in {
                    inside += a - b;
                    n_in += 1;
                } else {
                    assert_eq!(a, b, "frame {i} ({x}, {y}) outside the footprint");
                }
            }
        }
        let mean = inside as f64 / n_in as f64;
        assert!(
            mean > 25.0,
            "frame {i}: the footprint is only {mean:.1} brighter"
        );
    }
}
