// SPDX-License-Identifier: MIT

//! The footage the tests stand on: only what `.ci/install-deps` fetches into the checkout, and
//! ground-truth pairs that keep their truth whatever the source's aspect ratio.

mod common;

use gst_video::prelude::*;
use std::path::{Path, PathBuf};

/// Luma of `rect` (x, y, w, h) of an I420 frame, as numbers.
fn luma(buf: &gst::Buffer, info: &gst_video::VideoInfo, rect: (u32, u32, u32, u32)) -> Vec<f64> {
    let f = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), info).unwrap();
    let stride = f.plane_stride()[0] as usize;
    let data = f.plane_data(0).unwrap();
    let (x, y, w, h) = (
        rect.0 as usize,
        rect.1 as usize,
        rect.2 as usize,
        rect.3 as usize,
    );
    (y..y + h)
        .flat_map(|r| data[r * stride + x..r * stride + x + w].iter())
        .map(|&v| f64::from(v))
        .collect()
}

/// Normalised cross-correlation of two equally long sample vectors (1: the same up to gain
/// and offset).
fn ncc(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt().max(1e-9)
}

/// Makes a pair from `src` with a bg of `bg_size` and checks it against its truth: every fg
/// frame, scaled down to its footprint, matches the footprint of the bg frame it shows (fg
/// frame i shows bg frame 6 + i) far better than the same region a few pixels off or the bg
/// frame 3 frames away.
fn check_pair(src: &Path, dir: &Path, bg_size: (u32, u32), footprint: (u32, u32, u32, u32)) {
    let (bg, fg) = common::make_pair(src, dir, bg_size, 24, footprint, 2.0, (6, 12))
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let (bgs, bg_info) = common::decode_frames(&bg, 0, 24, None).unwrap();
    assert_eq!((bg_info.width(), bg_info.height()), bg_size);
    let (fw, fh) = (footprint.2, footprint.3);
    // The fg at the footprint's size: cropping to that aspect ratio takes it whole.
    let (fgs, fg_info) = common::decode_frames(&fg, 0, 12, Some((fw, fh))).unwrap();
    assert_eq!((bgs.len(), fgs.len()), (24, 12));
    let at = |dx: i32| ((footprint.0 as i32 + dx) as u32, footprint.1, fw, fh);
    for (i, f) in fgs.iter().enumerate() {
        let fl = luma(f, &fg_info, (0, 0, fw, fh));
        let truth = ncc(&fl, &luma(&bgs[6 + i], &bg_info, at(0)));
        let shifted = ncc(&fl, &luma(&bgs[6 + i], &bg_info, at(6)));
        let other = ncc(&fl, &luma(&bgs[(6 + i + 3) % 24], &bg_info, at(0)));
        assert!(
            truth > 0.95 && truth > shifted + 0.05 && truth > other,
            "{} with a {}x{} bg, fg frame {i}: correlation {truth:.3} at the truth, \
             {shifted:.3} 6 px off, {other:.3} 3 frames off",
            src.display(),
            bg_size.0,
            bg_size.1
        );
    }
}

#[test]
fn made_pairs_keep_their_truth_for_4_3_and_16_9_sources() {
    common::init_plugin();
    let dir = std::env::temp_dir().join(format!("vidkompy-footage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A 16:9 source derived from a 4:3 clip.
    let (frames, info) =
        common::decode_frames(&common::footage(), 0, 40, Some((640, 360))).unwrap();
    let wide = dir.join("wide.mkv");
    common::encode(
        &frames,
        &info,
        gst::Fraction::new(24, 1),
        "videoconvert",
        &wide,
    )
    .unwrap();
    let vtest = common::opencv_clip("vtest.avi");
    // 16:9 bgs of the 4:3 clip (cropped top and bottom) and of the 16:9 one (whole); 4:3 bgs
    // of the 16:9 clip (cropped at the sides) and of the 4:3 one (whole).
    for (src, bg, tag) in [
        (&vtest, (320, 180), "a"),
        (&wide, (320, 180), "b"),
        (&wide, (240, 180), "c"),
        (&vtest, (240, 180), "d"),
    ] {
        let footprint = (bg.0 / 4, bg.1 / 4, bg.0 / 2, bg.1 / 2);
        check_pair(src, &dir.join(tag), bg, footprint);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every file under these folders of the checkout.
fn files(root: &Path, dirs: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = dirs.iter().map(|d| root.join(d)).collect();
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else {
            out.push(p);
        }
    }
    out
}

/// CI's checkout has a `shared` folder beside it that a user's clone lacks: nothing the tests,
/// the examples, the element, the scripts or the README run may default to it.
#[test]
fn nothing_reads_beside_the_checkout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = files(root, &["tests", "examples", "src", ".ci"]);
    paths.extend(["README.md", "meson.build", "build.rs"].map(|f| root.join(f)));
    // Spelled in two pieces so that this file does not match itself.
    let beside = ["..", "/shared"].concat();
    let found: Vec<String> = paths
        .iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(beside.as_str()))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(found.len() < paths.len() && paths.len() > 20, "{paths:?}");
    assert!(found.is_empty(), "{beside} named in {found:?}");
}
