// SPDX-License-Identifier: MIT

//! Seekable inputs are read twice instead of stored: a first pass keeps only features, a short
//! second pass fetches the frames refinement needs, and a last pass composites. The result
//! must be exactly what storing every frame gives.

mod common;

use gst::prelude::*;
use gstvidkompy::messages::{Alignment, ElementMessage, Progress, Reframed};

fn init() {
    common::init_plugin();
}

/// A ground-truth pair of H.264 files from real footage: fg frame i shows bg frame 12 + i.
fn pair(tag: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    common::small_pair(&format!("passes-{tag}"), 48, (12, 36))
}

/// The report's fg frames (with their bg frames) not on bg frame `lead` + their own index.
fn off_path(r: &gstvidkompy::report::Report, lead: usize) -> Vec<(usize, usize)> {
    r.frames
        .iter()
        .filter(|e| e.bg != lead + e.fg)
        .map(|e| (e.fg, e.bg))
        .collect()
}

/// The launch line of a pair of files into the element (`props`) and an appsink named `s`.
fn launch(bg: &std::path::Path, fg: &std::path::Path, props: &str) -> String {
    format!(
        "vidkompyalign name=a {props} ! appsink name=s sync=false \
         filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.bg \
         filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.fg",
        common::q(bg),
        common::q(fg)
    )
}

fn run(bg: &std::path::Path, fg: &std::path::Path, props: &str) -> Result<common::Run, String> {
    common::run_collect(&launch(bg, fg, props), 120)
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
    let (dir, bg, fg) = pair("same");
    let two = run(&bg, &fg, "frames=read-again").unwrap();
    let stored = run(&bg, &fg, "frames=stored").unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let a = two.last::<Alignment>().expect("alignment message");
    let b = stored.last::<Alignment>().expect("alignment message");
    assert_eq!(a.frames.as_str(), "read-again");
    assert_eq!(a.stored_bytes, 0);
    assert_eq!(b.frames.as_str(), "stored");
    assert!(b.stored_bytes > 0);
    assert_eq!(
        (a.x, a.y, a.scale, a.temporal_confidence),
        (b.x, b.y, b.scale, b.temporal_confidence)
    );
    assert_eq!(a.mapping.as_str(), "content");
    assert_eq!(a.first_bg_frame, 12);
    assert_eq!(a.last_bg_frame, 47);
    assert_eq!(two.frames.len(), 36);
    same_frames(&two.frames, &stored.frames);
    // The fetch pass reports its progress, ending with every wanted frame fetched.
    let fetch = two
        .all::<Progress>()
        .into_iter()
        .filter_map(|p| match p {
            Progress::Fetch {
                done,
                total,
                frames_fetched,
                frames_wanted,
            } => Some((done, total, frames_fetched, frames_wanted)),
            _ => None,
        })
        .next_back()
        .expect("fetch progress");
    let (done, total, fetched, wanted) = fetch;
    assert_eq!(fetched, wanted);
    assert!(done >= total);
}

/// A fg that shows a late stretch of a longer bg (fg frame i is bg frame 60 + i, of 96): the
/// passes after the first read the bg again only from the first frame they need, with the
/// same output as storing frames.
#[test]
fn later_passes_read_the_bg_only_where_the_fg_needs_it() {
    init();
    let (dir, bg, fg) = common::small_pair("passes-late", 96, (60, 24));
    let p = gst::parse::launch(&format!(
        "vidkompyalign name=a frames=read-again ! appsink name=s sync=false \
         filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! \
         identity name=count signal-handoffs=true ! a.bg \
         filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.fg",
        common::q(&bg),
        common::q(&fg)
    ))
    .unwrap();
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = read.clone();
    common::element::<gst::Element>(&p, "count")
        .unwrap()
        .connect("handoff", false, move |_| {
            r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        });
    let frames = common::collect(&common::element(&p, "s").unwrap());
    common::run_to_eos(&p, 120).unwrap();
    let two = std::mem::take(&mut frames.lock().unwrap().0);
    let stored = run(&bg, &fg, "frames=stored").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(two.len(), 24);
    same_frames(&two, &stored.frames);
    // 96 in the first pass; then bg 60..84 (and the frames around the refinement's pairs) at
    // most twice, with some queued when a pass ends. From the start, each pass would read 60
    // frames before the first it needs.
    let read = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(read <= 96 + 2 * (24 + 8), "bg frames read: {read}");
}

#[test]
fn a_loaded_alignment_is_applied_in_two_passes() {
    init();
    let (dir, bg, fg) = pair("loaded");
    let report = dir.join("report.json");
    let first = run(&bg, &fg, &format!("report={}", common::q(&report))).unwrap();
    let again = run(&bg, &fg, &format!("alignment={}", common::q(&report))).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let a = again.last::<Alignment>().unwrap();
    assert_eq!(a.mapping.as_str(), "loaded");
    assert_eq!(a.frames.as_str(), "read-again");
    same_frames(&first.frames, &again.frames);
}

#[test]
fn the_plot_property_draws_the_mapping_offline_and_windowed() {
    init();
    let (dir, bg, fg) = pair("plot");
    for props in ["frames=read-again", "", "force-live=true"] {
        let svg = dir.join("map.svg");
        let _ = std::fs::remove_file(&svg);
        run(&bg, &fg, &format!("plot={} {props}", common::q(&svg))).unwrap();
        let text = std::fs::read_to_string(&svg)
            .unwrap_or_else(|e| panic!("{props}: no plot written: {e}"));
        assert!(text.starts_with("<svg"), "{props}");
        // fg frame i shows bg frame 12 + i at 24 fps: a constant offset of 0.5 s.
        for part in ["bg time (s)", "match cost", "constant offset +0.500 s"] {
            assert!(text.contains(part), "{props}: no {part:?} in the plot");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bytes of a frame of the test pairs (320x180 I420).
const FRAME: u64 = 320 * 180 * 3 / 2;
/// The least `max-memory` the test pairs allow: twice a bg and a fg frame (half of it for
/// frames, an eighth each for thumbnails and features per pad).
const LEAST: u64 = 4 * FRAME;

/// A fresh, empty directory for one test.
fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vidkompy-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn stored_frames_past_max_memory_spill_to_disk_with_the_same_result() {
    init();
    let (dir, bg, fg) = pair("spill");
    let tmp = scratch("spill-tmp");
    let two = run(&bg, &fg, "").unwrap();
    // The least max-memory these inputs allow: two frames in memory, the others on disk.
    let spilled = run(
        &bg,
        &fg,
        &format!(
            "frames=stored max-memory={LEAST} temp-dir={}",
            common::q(&tmp)
        ),
    )
    .unwrap();
    // Half the frames fit (frames get all but an eighth each for thumbnails and features,
    // twice: 3 MB).
    let half = run(
        &bg,
        &fg,
        &format!(
            "frames=stored max-memory=6000000 temp-dir={}",
            common::q(&tmp)
        ),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(left.is_empty(), "left in temp-dir: {left:?}");

    let frame = FRAME;
    let a = spilled.last::<Alignment>().unwrap();
    assert_eq!(a.frames.as_str(), "stored");
    assert_eq!(a.stored_bytes, 2 * frame);
    // All but the two frames per pad still held by reference, and the two in memory.
    assert_eq!(a.spilled_bytes, ((48 - 2) + (36 - 2) - 2) * frame);
    let h = half.last::<Alignment>().unwrap();
    let (mem, disk) = (h.stored_bytes, h.spilled_bytes);
    assert!(mem <= 3_000_000 && mem > 3_000_000 - frame, "{mem}");
    assert_eq!(mem + disk, ((48 - 2) + (36 - 2)) * frame);
    same_frames(&two.frames, &spilled.frames);
    same_frames(&two.frames, &half.frames);
}

/// Windowed runs (the default on files, and `force-live`) hold frames under max-memory: past
/// the frame share, in a spill file whose slots are used again; the output is the same.
#[test]
fn windowed_frames_past_max_memory_spill_to_disk_with_the_same_result() {
    init();
    let (dir, bg, fg) = pair("window-spill");
    let tmp = scratch("window-spill-tmp");
    for mode in ["", "force-live=true"] {
        let free = run(&bg, &fg, mode).unwrap();
        let least = run(
            &bg,
            &fg,
            &format!("{mode} max-memory={LEAST} temp-dir={}", common::q(&tmp)),
        )
        .unwrap();
        let (a, b) = (
            free.last::<Alignment>().unwrap(),
            least.last::<Alignment>().unwrap(),
        );
        // Unbounded: a window of frames in memory, none on disk.
        assert_eq!(a.spilled_bytes, 0, "{mode}");
        assert!(
            a.stored_bytes > 4 * FRAME,
            "{mode}: {} bytes",
            a.stored_bytes
        );
        // The least budget: two frames in memory at most, the others through the disk.
        assert!(
            b.stored_bytes <= 2 * FRAME,
            "{mode}: {} bytes",
            b.stored_bytes
        );
        assert!(
            b.spilled_bytes >= 36 * FRAME,
            "{mode}: {} bytes",
            b.spilled_bytes
        );
        // Thumbnails too: three per pad in memory (a pad's share is an eighth of the budget),
        // the others held through the disk.
        assert_eq!(a.spilled_thumbnail_bytes, 0, "{mode}");
        assert!(
            b.spilled_thumbnail_bytes >= 36 * 160 * 90,
            "{mode}: {} bytes",
            b.spilled_thumbnail_bytes
        );
        assert_eq!(a.frames, b.frames);
        assert_eq!((a.x, a.y, a.scale), (b.x, b.y, b.scale), "{mode}");
        same_frames(&free.frames, &least.frames);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(left.is_empty(), "left in temp-dir: {left:?}");
}

/// A max-memory too small to hold a bg and a fg frame is an element error that names the
/// least value these inputs allow, in every mode.
#[test]
fn a_max_memory_below_one_output_s_frames_is_an_error_naming_the_least() {
    init();
    let (dir, bg, fg) = pair("too-small");
    for mode in ["", "frames=read-again", "frames=stored", "force-live=true"] {
        let e = run(&bg, &fg, &format!("{mode} max-memory={}", LEAST - 1)).expect_err("an error");
        assert!(
            e.contains(&format!("max-memory={}", LEAST - 1)),
            "{mode}: {e}"
        );
        assert!(
            e.contains(&format!("need max-memory={LEAST} or more")),
            "{mode}: {e}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn thumbnails_and_features_past_max_memory_spill_to_disk_in_two_passes_with_the_same_result() {
    init();
    let (dir, bg, fg) = pair("thumbs");
    let tmp = scratch("thumbs-tmp");
    let two = run(&bg, &fg, "frames=read-again").unwrap();
    let spilled = run(
        &bg,
        &fg,
        &format!(
            "frames=read-again max-memory={LEAST} temp-dir={}",
            common::q(&tmp)
        ),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(left.is_empty(), "left in temp-dir: {left:?}");

    let (a, b) = (
        two.last::<Alignment>().unwrap(),
        spilled.last::<Alignment>().unwrap(),
    );
    assert_eq!(a.spilled_thumbnail_bytes, 0);
    // Both streams are 320x180: thumbnails of 160x90, all on disk but the three per pad that
    // an eighth of max-memory holds.
    assert_eq!(b.spilled_thumbnail_bytes, (48 + 36 - 3 - 3) * 160 * 90);
    // Features too (every feature set of the analysis goes to a file past max-memory).
    assert_eq!(a.spilled_feature_bytes, 0);
    assert!(b.spilled_feature_bytes > 0);
    assert_eq!(b.frames.as_str(), "read-again");
    assert_eq!(b.stored_bytes, 0);
    assert_eq!(
        (a.x, a.y, a.scale, a.temporal_confidence),
        (b.x, b.y, b.scale, b.temporal_confidence)
    );
    same_frames(&two.frames, &spilled.frames);
}

#[test]
fn an_unwritable_temp_dir_is_an_element_error_naming_it() {
    init();
    let (dir, bg, fg) = pair("unwritable");
    // A directory under a regular file cannot be created or written, even by root.
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("tmp");
    let e = run(
        &bg,
        &fg,
        &format!(
            "frames=stored max-memory={LEAST} temp-dir={}",
            common::q(&bad)
        ),
    )
    .expect_err("an error");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(e.contains("cannot create a spill file"), "{e}");
    assert!(e.contains(&bad.display().to_string()), "{e}");
}

#[test]
fn a_full_disk_is_an_element_error_not_a_crash() {
    init();
    let (dir, bg, fg) = pair("full");
    let plugins = common::plugin_copy(&dir);
    let registry = dir.join("registry.bin");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let launch = format!(
        "gst-launch-1.0 -q vidkompyalign name=a frames=stored max-memory={LEAST} temp-dir={} ! \
         fakesink filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! \
         a.bg filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.fg",
        common::q(&tmp),
        common::q(&bg),
        common::q(&fg)
    );
    let env = |c: &mut std::process::Command| {
        c.env("GST_PLUGIN_PATH", &plugins)
            .env("GST_REGISTRY", &registry);
    };
    // The registry is written before the limit applies.
    let mut inspect = std::process::Command::new("gst-inspect-1.0");
    inspect.arg("vidkompyalign");
    env(&mut inspect);
    assert!(inspect.output().unwrap().status.success());
    // A 1 MiB file size limit in a child (SIGXFSZ ignored, so writes fail with EFBIG): the
    // spill file fills it after about a dozen frames.
    let mut child = std::process::Command::new("bash");
    child
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f 1024; exec {launch}"));
    env(&mut child);
    let out = child.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "killed rather than failed: {text}"
    );
    assert!(text.contains("cannot write"), "{text}");
    assert!(text.contains("spill file"), "{text}");
    assert!(text.contains("File too large"), "{text}");
}

/// opencv-doc's Megamind clip against its damaged copy (`Megamind_bugy.avi`: the same 270
/// frames, a few of them corrupt after decoding). Documented behaviour: the whole-frame
/// footprint is found, every fg frame keeps its place (the corrupt ones follow their
/// neighbours), and the report's costs single the corrupt frames out. Offline and windowed
/// (the damaged copy's timestamps put some frames 1 ns apart: no frame grid, as offline).
#[test]
fn corrupt_decoder_output_keeps_its_place_and_shows_in_the_costs() {
    init();
    let (bg, fg) = (
        common::opencv_clip("Megamind.avi"),
        common::opencv_clip("Megamind_bugy.avi"),
    );
    for props in ["frames=read-again", ""] {
        let dir = scratch("bugy");
        let report = dir.join("r.json");
        let run = run(&bg, &fg, &format!("{props} report={}", common::q(&report))).unwrap();
        let r = gstvidkompy::report::Report::read(&report).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(run.frames.len(), 270, "{props}");
        assert_eq!((r.fg.frames, r.bg.frames), (270, 270), "{props}");
        // Same framing: the footprint is the whole 720x528 bg.
        assert!(
            r.x.abs() < 0.5 && r.y.abs() < 0.5,
            "{props}: {} {}",
            r.x,
            r.y
        );
        assert!((r.scale - 1.0).abs() < 1e-3, "{props}: {}", r.scale);
        assert_eq!(r.mapping, "content", "{props}");
        let moved = off_path(&r, 0);
        assert!(moved.is_empty(), "{props}: {moved:?}");
        let bad: Vec<usize> = r
            .frames
            .iter()
            .filter(|e| e.cost.is_some_and(|c| c > 0.2))
            .map(|e| e.fg)
            .collect();
        assert!(!bad.is_empty() && bad.len() <= 10, "{props}: {bad:?}");
    }
}

/// The same clip on both pads: the footprint is exactly the whole frame (it touches every
/// border, where fewer candidate offsets fit).
#[test]
fn the_same_clip_on_both_pads_covers_the_whole_frame() {
    init();
    let clip = common::opencv_clip("Megamind.avi");
    // Windowed too: its last alignment message covers the whole run, as offline; the
    // clip's decoder stamps some pairs of frames alike, which the first window's re-read
    // tells apart by their order.
    for (props, frames, mapping) in [
        ("frames=read-again", "read-again", "content"),
        ("", "windowed", "content"),
        ("force-live=true", "live", "windowed"),
    ] {
        let run = run(&clip, &clip, props).unwrap();
        let a = run.last::<Alignment>().unwrap();
        assert_eq!(
            (a.frames.as_str(), a.mapping.as_str()),
            (frames, mapping),
            "{props}"
        );
        assert_eq!(run.frames.len(), 270, "{props}");
        let (x, y, s) = (a.x, a.y, a.scale);
        assert!(
            x.abs() < 0.5 && y.abs() < 0.5 && (s - 1.0).abs() < 1e-3,
            "{props}: {x} {y} {s}"
        );
        assert_eq!(
            (a.footprint.width, a.footprint.height),
            (720, 528),
            "{props}"
        );
        assert_eq!((a.first_bg_frame, a.last_bg_frame), (0, 269), "{props}");
        assert_eq!(a.fg_frames, 270, "{props}");
    }
}

/// The first `rows` rows of the luma plane: 40 are above the footprint (80, 46, 160, 90) of
/// the small pairs, 20 above the re-framed one at (40, 20).
fn rows_above(b: &gst::Buffer, rows: usize) -> Vec<u8> {
    let m = b.map_readable().unwrap();
    m[..320 * rows].to_vec()
}

/// Runs the pair whole, then prerolls it again, seeks to fg frame `frame` (24 fps) and checks
/// that every fg frame from there is output once, in order, over the same bg frame.
fn seek_matches_the_whole_run(
    bg: &std::path::Path,
    fg: &std::path::Path,
    props: &str,
    frame: usize,
) {
    let fg = format!("filesrc location={} ! decodebin", common::q(fg));
    seek_matches_the_whole_run_of(bg, &fg, props, frame, 0, 40);
}

/// [`seek_matches_the_whole_run`] with the fg from a launch fragment, whose timestamps after
/// the seek may differ by `tol` ns from the first run's (`splitmuxsrc` offsets its parts by
/// Matroska's millisecond timestamps differently after a seek; the element outputs the fg's
/// own timestamps); the bg frame taken is told by the first `rows` rows of the output.
fn seek_matches_the_whole_run_of(
    bg: &std::path::Path,
    fg: &str,
    props: &str,
    frame: usize,
    tol: u64,
    rows: usize,
) {
    let desc = format!(
        "vidkompyalign name=a {props} ! appsink name=s sync=false \
         filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.bg \
         {fg} ! videoconvert ! video/x-raw,format=I420 ! a.fg",
        common::q(bg),
    );
    let full = common::run_collect(&desc, 120).unwrap();
    assert!(
        full.frames.len() > frame + 12,
        "{} frames",
        full.frames.len()
    );
    let seek_run = || {
        let p = gst::parse::launch(&desc).unwrap();
        let fault = common::splitmux_fault(&p);
        let sink: gst_app::AppSink = common::element(&p, "s").unwrap();
        // Prerolled once the analysis is done and the first frame is out.
        p.set_state(gst::State::Paused).unwrap();
        let (r, _, _) = p.state(gst::ClockTime::from_seconds(120));
        assert!(r.is_ok(), "{r:?}");
        let at = gst::ClockTime::SECOND
            .mul_div_floor(frame as u64, 24)
            .unwrap();
        assert!(
            p.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, at)
                .is_ok()
        );
        let frames = common::collect(&sink);
        common::run_to_eos(&p, 120).unwrap();
        let got = std::mem::take(&mut frames.lock().unwrap().0);
        (!fault.load(std::sync::atomic::Ordering::Acquire)).then_some(got)
    };
    // A run whose splitmuxsrc started late (a GStreamer race, see `common::splitmux_fault`)
    // is made again.
    let got = (0..common::SPLITMUX_TRIES)
        .find_map(|_| seek_run())
        .expect("splitmuxsrc started at the right time in one of the runs");
    let pts: Vec<_> = got.iter().map(|b| b.pts()).collect();
    let want: Vec<_> = full.frames[frame..].iter().map(|b| b.pts()).collect();
    let same = pts.len() == want.len()
        && pts.iter().zip(&want).all(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => a.nseconds().abs_diff(b.nseconds()) <= tol,
            (a, b) => a == b,
        });
    assert!(
        same,
        "every fg frame from the one sought, once, in order: {pts:?} against {want:?}"
    );
    let differ: Vec<usize> = got
        .iter()
        .zip(&full.frames[frame..])
        .enumerate()
        .filter(|(_, (a, b))| rows_above(a, rows) != rows_above(b, rows))
        .map(|(i, _)| frame + i)
        .collect();
    assert!(
        differ.is_empty(),
        "each fg frame takes the same bg frame as without the seek; fg frames {differ:?} do not"
    );
}

/// The next element message or EOS on `bus` (`None` at EOS); an error or a warning fails the
/// test, and so does nothing within `secs`.
fn next_message(bus: &gst::Bus, secs: u64, what: &str) -> Option<gst::Message> {
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(secs),
            &[
                gst::MessageType::Element,
                gst::MessageType::Eos,
                gst::MessageType::Warning,
                gst::MessageType::Error,
            ],
        )
        .unwrap_or_else(|| panic!("{what}: nothing within {secs} s"));
    match msg.view() {
        gst::MessageView::Eos(_) => None,
        gst::MessageView::Error(e) => panic!("{what}: {} {:?}", e.error(), e.debug()),
        gst::MessageView::Warning(w) => panic!("{what}: {}", w.error()),
        _ => Some(msg),
    }
}

/// A flushing seek sent by the application while the analysis runs is answered at once: the
/// analysis is cancelled (it posts no alignment) and the run resumes at the fg frame sought,
/// aligned from there: two passes (`frames=read-again`: one alignment) and windowed (the
/// default: the first window's search cancelled; after the seek one alignment as the window
/// is placed and one for the whole run). The element named `slow` stands in for a long analysis: in debug
/// builds it waits in its first analysis (and, separately, its first windowed search) until
/// it is cancelled, 30 s at most, and warns if it was not.
#[test]
fn a_flushing_seek_during_the_analysis_cancels_it() {
    init();
    // SAFETY: no other thread of this test binary reads or writes this variable concurrently
    // in a way that matters: only an element named `slow` reacts to it.
    unsafe { std::env::set_var("VIDKOMPY_TEST_SLOW_ANALYSIS", "slow") };
    let (dir, bg, fg) = pair("seek-analysis");
    for (props, after) in [("frames=read-again", 1), ("", 2)] {
        let desc = format!(
            "vidkompyalign name=slow {props} ! appsink name=s sync=false \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! slow.bg \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! slow.fg",
            common::q(&bg),
            common::q(&fg)
        );
        let p = gst::parse::launch(&desc).unwrap();
        let sink: gst_app::AppSink = common::element(&p, "s").unwrap();
        let frames = common::collect(&sink);
        let bus = p.bus().unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let mut before = 0;
        loop {
            let msg =
                next_message(&bus, 60, "the analysis starts").expect("no EOS before the seek");
            before += usize::from(Alignment::from_message(&msg).is_some());
            if let Some(Ok(Progress::Analysis { .. })) = Progress::from_message(&msg) {
                break;
            }
        }
        // fg frame 12 of 36 (24 fps).
        let asked = std::time::Instant::now();
        assert!(
            p.seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::ClockTime::from_mseconds(500)
            )
            .is_ok(),
            "{props}"
        );
        // Answered long before the stand-in analysis's 30 s.
        assert!(
            asked.elapsed().as_secs() < 20,
            "{props}: {:?}",
            asked.elapsed()
        );
        let mut alignments = Vec::new();
        while let Some(msg) = next_message(&bus, 120, "the run after the seek") {
            if let Some(a) = Alignment::from_message(&msg) {
                alignments.push(a.unwrap());
            }
        }
        let _ = p.set_state(gst::State::Null);
        assert_eq!(
            before, 0,
            "{props}: the interrupted analysis posted an alignment"
        );
        assert_eq!(
            alignments.len(),
            after,
            "{props}: alignments after the seek"
        );
        assert_eq!(alignments.last().map(|a| a.fg_frames), Some(24), "{props}");
        let got = std::mem::take(&mut frames.lock().unwrap().0);
        assert_eq!(got.len(), 24, "{props}: fg frames 12..36");
        assert_eq!(
            got[0].pts(),
            Some(gst::ClockTime::from_mseconds(500)),
            "{props}: the first output is fg frame 12"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The src pad answers SEEKING and DURATION like a seekable stream (so players offer seeking):
/// seekable in time when both inputs are, over the fg's duration; not seekable when one input
/// cannot seek.
#[test]
fn the_src_pad_answers_seeking_and_duration_like_the_fg() {
    init();
    let (dir, bg, fg) = pair("queries");
    let (bg_frames, bg_info) = common::decode_frames(&bg, 0, 48, None).unwrap();
    // `appsrc` (a bg that cannot seek) is fed the bg's decoded frames.
    let ask = |bg_src: &str| {
        let desc = format!(
            "vidkompyalign name=a ! fakesink name=s sync=false \
             {bg_src} ! videoconvert ! video/x-raw,format=I420 ! a.bg \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.fg",
            common::q(&fg)
        );
        let p = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Bin>()
            .unwrap();
        p.set_state(gst::State::Paused).unwrap();
        if let Some(app) = p.by_name("app") {
            let app = app.downcast::<gst_app::AppSrc>().unwrap();
            app.set_caps(Some(&bg_info.to_caps().unwrap()));
            for b in &bg_frames {
                app.push_buffer(b.clone()).unwrap();
            }
            app.end_of_stream().unwrap();
        }
        let (r, ..) = p.state(gst::ClockTime::from_seconds(120));
        assert!(r.is_ok(), "{desc}: {r:?}");
        let src = p.by_name("a").unwrap().static_pad("src").unwrap();
        let mut q = gst::query::Seeking::new(gst::Format::Time);
        assert!(src.query(&mut q), "{desc}");
        let (seekable, start, end) = q.result();
        let duration = src.query_duration::<gst::ClockTime>();
        let _ = p.set_state(gst::State::Null);
        (seekable, start, end, duration)
    };
    // 36 fg frames at 24 fps.
    let fg_duration = gst::ClockTime::from_mseconds(1500);
    let near = |t: Option<gst::ClockTime>| {
        t.is_some_and(|t| t.nseconds().abs_diff(fg_duration.nseconds()) < 50_000_000)
    };
    let (seekable, start, end, duration) =
        ask(&format!("filesrc location={} ! decodebin", common::q(&bg)));
    assert!(seekable, "files: not seekable");
    assert_eq!(start.value(), 0);
    let end = match end {
        gst::GenericFormattedValue::Time(t) => t,
        other => panic!("end {other:?}"),
    };
    assert!(near(end), "seekable up to {end:?}");
    assert!(near(duration), "duration {duration:?}");
    // A bg that cannot seek: the output cannot either; its duration is still the fg's.
    let (seekable, .., duration) = ask("appsrc name=app format=time");
    assert!(!seekable, "a bg from appsrc: seekable");
    assert!(near(duration), "duration {duration:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_flushing_seek_resumes_at_the_fg_frame_sought_with_the_same_matches() {
    init();
    let (dir, bg, fg) = pair("seek");
    seek_matches_the_whole_run(&bg, &fg, "", 12);
    let _ = std::fs::remove_dir_all(dir);
}

/// The output of `desc` (ending in `appsink name=s`) after a flushing, accurate seek to `at`,
/// sent while playing, once the first frame is out; with the element messages posted after
/// the seek.
fn output_after_seek(desc: &str, at: gst::ClockTime) -> (Vec<gst::Buffer>, Vec<gst::Message>) {
    let p = gst::parse::launch(desc).unwrap();
    let sink: gst_app::AppSink = common::element(&p, "s").unwrap();
    let frames = common::collect(&sink);
    p.set_state(gst::State::Playing).unwrap();
    let started = std::time::Instant::now();
    while frames.lock().unwrap().0.is_empty() {
        assert!(started.elapsed().as_secs() < 120, "no output");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The run may have ended before the seek: its EOS is not the one to wait for.
    let bus = p.bus().unwrap();
    while bus.pop().is_some() {}
    assert!(
        p.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, at)
            .is_ok(),
        "seek to {at}"
    );
    // The flush is done when the seek returns: what arrives from here is after it.
    frames.lock().unwrap().0.clear();
    let mut messages = Vec::new();
    while let Some(msg) = next_message(&bus, 120, "the run after the seek") {
        messages.push(msg);
    }
    let _ = p.set_state(gst::State::Null);
    (std::mem::take(&mut frames.lock().unwrap().0), messages)
}

/// After a flushing seek, on a frame's timestamp or between two, the output starts at the fg
/// frame whose span holds the position, with that frame's own timestamp, and from there is
/// exactly the unseeked run's buffers: timestamps, durations, whole pictures. Offline and
/// windowed (`force-live=true` on files; offline the alignment made before the seek is
/// reused).
#[test]
fn a_seek_on_or_between_frames_resumes_exactly_like_the_unseeked_run() {
    init();
    let (dir, bg, fg) = pair("seek-between");
    for props in ["frames=read-again", "", "force-live=true"] {
        let desc = launch(&bg, &fg, props);
        let full = common::run_collect(&desc, 120).unwrap().frames;
        assert_eq!(full.len(), 36);
        // fg frame k spans [k/24, (k+1)/24) s.
        for (frame, into_ms) in [(12, 0), (12, 20), (20, 30)] {
            let start = full[frame].pts().unwrap();
            let at = start + gst::ClockTime::from_mseconds(into_ms);
            let (got, messages) = output_after_seek(&desc, at);
            let what = format!("{props:?}, seek to {at} (fg frame {frame} + {into_ms} ms)");
            let pts: Vec<_> = got.iter().map(|b| b.pts()).collect();
            let want: Vec<_> = full[frame..].iter().map(|b| b.pts()).collect();
            assert_eq!(pts, want, "{what}");
            let durations: Vec<_> = got.iter().map(|b| b.duration()).collect();
            let want: Vec<_> = full[frame..].iter().map(|b| b.duration()).collect();
            assert_eq!(durations, want, "{what}");
            let differ: Vec<usize> = got
                .iter()
                .zip(&full[frame..])
                .enumerate()
                .filter(|(_, (a, b))| {
                    a.map_readable().unwrap().as_slice() != b.map_readable().unwrap().as_slice()
                })
                .map(|(i, _)| frame + i)
                .collect();
            assert!(differ.is_empty(), "{what}: fg frames {differ:?} differ");
            if props.is_empty() {
                // Offline the alignment made before the seek is reused: no analysis runs, and
                // it is posted as it was made.
                let analysed = messages.iter().any(|m| {
                    matches!(
                        Progress::from_message(m),
                        Some(Ok(Progress::Analysis { .. }))
                    )
                });
                assert!(!analysed, "{what}: analysed again");
                let a = messages
                    .iter()
                    .filter_map(Alignment::from_message)
                    .next_back()
                    .expect("an alignment message")
                    .unwrap();
                assert_eq!(
                    (a.mapping.as_str(), a.footprint_from.as_str()),
                    ("content", "content"),
                    "{what}"
                );
                assert_eq!(a.fg_frames, (36 - frame) as u64, "{what}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The fg started recording before the bg: fg frame i shows bg frame i - 12. A seek puts
/// both pads at the same position, where the bg is 12 frames past the fg's match; the bg is
/// read again from before the match the first run found there.
#[test]
fn a_seek_finds_bg_frames_that_lie_before_the_position_sought() {
    init();
    let src = common::footage();
    let dir =
        std::env::temp_dir().join(format!("vidkompy-passes-seek-early-{}", std::process::id()));
    let (bg, fg) = common::make_pair_from(
        &src,
        &dir,
        (320, 180),
        (24, 48),
        (80, 46, 160, 90),
        2.0,
        (12, 48),
    )
    .unwrap();
    // Read twice (seekable files), once on a window (the default), and stored.
    seek_matches_the_whole_run(&bg, &fg, "frames=read-again", 24);
    seek_matches_the_whole_run(&bg, &fg, "", 24);
    seek_matches_the_whole_run(&bg, &fg, "frames=stored", 24);
    // Windowed, sought while playing (a live element does not preroll): the bg is read from
    // before where the line its commits kept puts the fg's position.
    let desc = launch(&bg, &fg, "force-live=true");
    let full = common::run_collect(&desc, 120).unwrap().frames;
    assert_eq!(full.len(), 48);
    let (got, _) = output_after_seek(&desc, full[24].pts().unwrap());
    let pts = |b: &[gst::Buffer]| b.iter().map(|b| b.pts()).collect::<Vec<_>>();
    assert_eq!(
        pts(&got),
        pts(&full[24..]),
        "windowed: every fg frame from 24"
    );
    let differ: Vec<usize> = got
        .iter()
        .zip(&full[24..])
        .enumerate()
        .filter(|(_, (a, b))| rows_above(a, 40) != rows_above(b, 40))
        .map(|(i, _)| 24 + i)
        .collect();
    assert!(
        differ.is_empty(),
        "windowed: fg frames {differ:?} take another bg frame"
    );
    // With an alignment loaded, its entries are found by timestamp after the seek. To tell
    // it from an analysis done again, it maps each fg frame one bg frame later than found.
    let report = dir.join("r.json");
    run(&bg, &fg, &format!("report={}", common::q(&report))).unwrap();
    let mut r = gstvidkompy::report::Report::read(&report).unwrap();
    let pts_of: std::collections::HashMap<usize, Option<u64>> =
        r.frames.iter().map(|e| (e.bg, e.bg_pts)).collect();
    for e in &mut r.frames {
        if let Some(&p) = pts_of.get(&(e.bg + 1)) {
            e.bg += 1;
            e.bg_pts = p;
        }
    }
    r.write(&report).unwrap();
    seek_matches_the_whole_run(&bg, &fg, &format!("alignment={}", common::q(&report)), 24);
    let _ = std::fs::remove_dir_all(dir);
}

/// Encodes frames `range` of the H.264 file `src` into `out`, scaled to `size` when given.
fn reencode(
    src: &std::path::Path,
    range: std::ops::Range<usize>,
    size: Option<(u32, u32)>,
    out: &std::path::Path,
) {
    let filter = match size {
        Some((w, h)) => format!("videoscale ! video/x-raw,width={w},height={h}"),
        None => "identity".into(),
    };
    reencode_with(src, range, &filter, out);
}

/// Encodes frames `range` of the H.264 file `src` into `out` through `filter`.
fn reencode_with(
    src: &std::path::Path,
    range: std::ops::Range<usize>,
    filter: &str,
    out: &std::path::Path,
) {
    let (frames, info) = common::decode_frames(src, 0, range.end, None).unwrap();
    common::encode(
        &frames[range],
        &info,
        gst::Fraction::new(24, 1),
        filter,
        out,
    )
    .unwrap();
}

/// A file whose video changes size mid-stream, as a camera's split recordings played as one
/// (`splitmuxsrc`, seekable): `src` frames 0..at, then the rest at `size`.
fn resized_at(
    dir: &std::path::Path,
    tag: &str,
    src: &std::path::Path,
    frames: usize,
    at: usize,
    size: (u32, u32),
) -> String {
    reencode(src, 0..at, None, &dir.join(format!("{tag}-0.mkv")));
    reencode(
        src,
        at..frames,
        Some(size),
        &dir.join(format!("{tag}-1.mkv")),
    );
    format!(
        "splitmuxsrc location={} ! decodebin",
        common::q(&dir.join(format!("{tag}-*.mkv")))
    )
}

/// Runs a launch line of the caps pair: every one of the 36 fg frames is output, without a
/// warning.
fn caps_run(desc: &str, what: &str) -> common::Run {
    let run = common::run_collect(desc, 120).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(run.frames.len(), 36, "{what}");
    let warnings: Vec<_> = run
        .messages
        .iter()
        .filter(|m| m.name() == "warning")
        .collect();
    assert!(warnings.is_empty(), "{what}: {warnings:?}");
    run
}

/// Offline, caps that change mid-stream on either pad are accepted: the frames are converted
/// to the pad's first caps, so the output keeps the bg's first size and every fg frame still
/// takes its true bg frame (fg frame i shows bg frame 12 + i), read twice, stored or windowed
/// (`force-live` on files keeps offline's behaviour).
#[test]
fn caps_changing_mid_stream_keep_the_alignment_offline() {
    init();
    let (dir, bg, fg) = pair("caps");
    let file = |p: &std::path::Path| format!("filesrc location={} ! decodebin", common::q(p));
    let fg_resized = resized_at(&dir, "fg", &fg, 36, 18, (480, 270));
    let bg_resized = resized_at(&dir, "bg", &bg, 48, 24, (480, 270));
    for (what, bg_src, fg_src) in [
        (
            "fg 320x180 -> 480x270 at fg frame 18",
            file(&bg),
            fg_resized.clone(),
        ),
        (
            "bg 320x180 -> 480x270 at bg frame 24",
            bg_resized.clone(),
            file(&fg),
        ),
    ] {
        for props in ["frames=read-again", "", "frames=stored", "force-live=true"] {
            let report = dir.join("r.json");
            let run = caps_run(
                &format!(
                    "vidkompyalign name=a report={} {props} ! appsink name=s sync=false \
                     {bg_src} ! videoconvert ! video/x-raw,format=I420 ! a.bg \
                     {fg_src} ! videoconvert ! video/x-raw,format=I420 ! a.fg",
                    common::q(&report)
                ),
                &format!("{what} {props}"),
            );
            let caps = run.caps.as_ref().unwrap().structure(0).unwrap().to_owned();
            assert_eq!(
                (caps.get::<i32>("width"), caps.get::<i32>("height")),
                (Ok(320), Ok(180)),
                "{what} {props}"
            );
            assert!(
                run.frames.iter().all(|b| b.size() == 320 * 180 * 3 / 2),
                "{what} {props}: every output frame on the first bg canvas"
            );
            let r = gstvidkompy::report::Report::read(&report).unwrap();
            let wrong = off_path(&r, 12);
            assert!(
                wrong.is_empty(),
                "{what} {props}: fg frames matched to the wrong bg frame: {wrong:?}"
            );
            assert_eq!(r.frames.len(), 36);
        }
    }
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The fg re-framed at its caps change offline: fg frames 0..at show the usual 160x90 region
/// at (80, 46) (at 2x, brighter), then, 480x270, the region of the same size at (40, 20),
/// still fg frame i on bg frame 12 + i. The stretch after the change is analysed on its own
/// and its footprint followed (a `vidkompy-reframed` message, a second segment), read twice,
/// stored and windowed (its own search before its frames are committed); for the second half,
/// and for the last 6 frames only.
#[test]
fn a_fg_re_framed_at_its_caps_change_is_followed_offline() {
    init();
    let (dir, bg, fg) = pair("reframed");
    let (bg_frames, _) = common::decode_frames(&bg, 0, 48, None).unwrap();
    // Luma of the box around both footprints, (40, 20) to (240, 136).
    let luma = |b: &gst::Buffer| {
        let m = b.map_readable().unwrap();
        (20..136)
            .flat_map(|y| m[y * 320 + 40..y * 320 + 240].to_vec())
            .collect::<Vec<u8>>()
    };
    for (tag, at) in [("half", 18), ("late", 30)] {
        let fg_src = reframed_at(&dir, tag, &bg, &fg, at);
        let report = dir.join("r.json");
        let launch = |props: &str| {
            format!(
                "vidkompyalign name=a {props} ! appsink name=s sync=false \
                 filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.bg \
                 {fg_src} ! videoconvert ! video/x-raw,format=I420 ! a.fg",
                common::q(&bg),
            )
        };
        for props in ["frames=read-again", "", "frames=stored", "force-live=true"] {
            let what = format!("re-framed at {at} {props}");
            let run = caps_run(
                &launch(&format!("report={} {props}", common::q(&report))),
                &what,
            );
            let m = run
                .last::<Reframed>()
                .unwrap_or_else(|| panic!("{what}: no vidkompy-reframed in {:?}", run.messages));
            assert_eq!(m.fg_frame, at as u64, "{what}");
            // In first-caps fg pixels (the 320x180 the fg started with): 160x90 at (40, 20).
            let (x, y, scale) = (m.x, m.y, m.scale);
            assert!(
                (x - 40.0).abs() <= 1.5 && (y - 20.0).abs() <= 1.5 && (scale - 0.5).abs() < 0.01,
                "{what}: re-framed footprint at ({x:.2}, {y:.2}) x{scale:.4}"
            );
            let (px, py) = (m.previous_x, m.previous_y);
            eprintln!(
                "{what}: footprint ({px:.2}, {py:.2}) -> ({x:.2}, {y:.2}) x{scale:.4} at fg frame \
                 {at}"
            );
            assert!(
                (px - 80.0).abs() <= 1.5 && (py - 46.0).abs() <= 1.5,
                "{what}: first footprint at ({px:.2}, {py:.2})"
            );
            let a = run.last::<Alignment>().unwrap();
            assert_eq!(a.segments.len(), 2, "{what}: {a:?}");
            let r = gstvidkompy::report::Report::read(&report).unwrap();
            assert_eq!(
                r.segments.iter().map(|s| s.from).collect::<Vec<_>>(),
                vec![0, at],
                "{what}"
            );
            let wrong = off_path(&r, 12);
            assert!(wrong.is_empty(), "{what}: wrong bg frames {wrong:?}");
            // After the change the fg shows the bg's own pixels (not re-graded): composited
            // where they belong, the output is the bg frame again, up to scaling blur. At the
            // first footprint it would be (40, 26) px off.
            for (i, out) in run.frames.iter().enumerate().skip(at) {
                let (o, b) = (luma(out), luma(&bg_frames[12 + i]));
                let diff = o
                    .iter()
                    .zip(&b)
                    .map(|(&p, &q)| f64::from(p.abs_diff(q)))
                    .sum::<f64>()
                    / o.len() as f64;
                assert!(
                    diff < 3.0,
                    "{what}: output frame {i} differs from bg by {diff:.2}"
                );
            }
            if props == "force-live=true" {
                // Windowed runs load no alignment file.
                continue;
            }
            // The report's segments, loaded, give the same output.
            let loaded = common::run_collect(
                &launch(&format!("alignment={} {props}", common::q(&report))),
                120,
            )
            .unwrap_or_else(|e| panic!("{what}, loaded: {e}"));
            same_frames(&run.frames, &loaded.frames);
            // Sought into the re-framed stretch, the loaded segments still apply (the fg's
            // caps there are not the report's first ones).
            if at == 18 {
                let props = format!("alignment={} {props}", common::q(&report));
                seek_matches_the_whole_run_of(&bg, &fg_src, &props, 20, 1_000_000, 20);
            }
        }
    }
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A fg whose caps change and change back (A -> B -> A: re-framed at frame 12, back to its
/// first framing at 24) gets a stretch at each change, each at its footprint, offline and
/// windowed.
#[test]
fn a_fg_re_framed_and_back_opens_a_stretch_at_each_change() {
    init();
    let (dir, bg, fg) = pair("reframed-back");
    reencode(&fg, 0..12, None, &dir.join("back-0.mkv"));
    reencode_with(
        &bg,
        24..36,
        "videocrop left=40 right=120 top=20 bottom=70 ! videoscale ! \
         video/x-raw,width=480,height=270",
        &dir.join("back-1.mkv"),
    );
    let (frames, info) = common::decode_frames(&fg, 0, 36, None).unwrap();
    common::encode(
        &frames[24..36],
        &info,
        gst::Fraction::new(24, 1),
        "identity",
        &dir.join("back-2.mkv"),
    )
    .unwrap();
    let fg_src = format!(
        "splitmuxsrc location={} ! decodebin",
        common::q(&dir.join("back-*.mkv"))
    );
    let report = dir.join("r.json");
    for props in ["frames=read-again", "", "frames=stored", "force-live=true"] {
        let what = format!("A -> B -> A {props}");
        let run = caps_run(
            &format!(
                "vidkompyalign name=a report={} {props} ! appsink name=s sync=false \
                 filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.bg \
                 {fg_src} ! videoconvert ! video/x-raw,format=I420 ! a.fg",
                common::q(&report),
                common::q(&bg),
            ),
            &what,
        );
        let r = gstvidkompy::report::Report::read(&report).unwrap();
        let starts: Vec<(usize, u32, u32)> = r
            .segments
            .iter()
            .map(|s| (s.from, s.footprint.x, s.footprint.y))
            .collect();
        assert_eq!(
            starts.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![0, 12, 24],
            "{what}: {starts:?}"
        );
        // The return is at the first footprint, (80, 46); the middle at (40, 20).
        for (i, at) in [(0, (80, 46)), (1, (40, 20)), (2, (80, 46))] {
            let (x, y) = (starts[i].1 as i64, starts[i].2 as i64);
            assert!(
                (x - at.0).abs() <= 1 && (y - at.1).abs() <= 1,
                "{what}: stretch {i} at ({x}, {y})"
            );
        }
        let wrong = off_path(&r, 12);
        assert!(wrong.is_empty(), "{what}: wrong bg frames {wrong:?}");
        let reframed: Vec<u64> = run.all::<Reframed>().iter().map(|r| r.fg_frame).collect();
        assert_eq!(reframed, [12, 24], "{what}");
    }
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A fg source (`splitmuxsrc`, seekable) that shows fg frames 0..at, then (480x270) the 160x90
/// region at (40, 20) of the bg from its frame 12 + at on.
fn reframed_at(
    dir: &std::path::Path,
    tag: &str,
    bg: &std::path::Path,
    fg: &std::path::Path,
    at: usize,
) -> String {
    reencode(fg, 0..at, None, &dir.join(format!("{tag}-0.mkv")));
    reencode_with(
        bg,
        12 + at..48,
        "videocrop left=40 right=120 top=20 bottom=70 ! videoscale ! \
         video/x-raw,width=480,height=270",
        &dir.join(format!("{tag}-1.mkv")),
    );
    format!(
        "splitmuxsrc location={} ! decodebin",
        common::q(&dir.join(format!("{tag}-*.mkv")))
    )
}

/// Frames counted by a buffer probe on the source pad of each `identity` named in `names`.
fn counters(
    p: &gst::Element,
    names: &[&str],
) -> Vec<std::sync::Arc<std::sync::atomic::AtomicUsize>> {
    names
        .iter()
        .map(|n| {
            let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let c = count.clone();
            common::element::<gst::Element>(p, n)
                .unwrap()
                .static_pad("src")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
            count
        })
        .collect()
}

/// The default on files (inputs that can seek, `frames=windowed`): each input is decoded
/// once, plus, after one seek back, the stretch the first window was read over on thumbnails
/// only (the bg from a little before the first frame it needs). Counted by pad probes on each
/// decoder's input (parsed, compressed frames) and output; the output is the two-pass run's
/// (`frames=read-again`), frame for frame, which, counted the same way, decodes each input
/// twice.
#[test]
fn windowed_files_are_decoded_once_and_the_first_window_again() {
    init();
    // 15 s of bg at 24 fps; fg frame i shows bg frame 24 + i, 300 frames.
    let (dir, bg, fg) = common::small_pair("passes-once", 360, (24, 300));
    let counted = |props: &str| {
        let p = gst::parse::launch(&format!(
            "vidkompyalign name=a {props} ! appsink name=s sync=false \
             filesrc location={} ! parsebin ! identity name=bg_in ! decodebin ! \
             identity name=bg_out ! videoconvert ! video/x-raw,format=I420 ! a.bg \
             filesrc location={} ! parsebin ! identity name=fg_in ! decodebin ! \
             identity name=fg_out ! videoconvert ! video/x-raw,format=I420 ! a.fg",
            common::q(&bg),
            common::q(&fg)
        ))
        .unwrap();
        let counts = counters(&p, &["bg_in", "bg_out", "fg_in", "fg_out"]);
        let frames = common::collect(&common::element(&p, "s").unwrap());
        common::run_to_eos(&p, 180).unwrap();
        let _ = p.set_state(gst::State::Null);
        let n: Vec<usize> = counts
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        (std::mem::take(&mut frames.lock().unwrap().0), n)
    };
    let (windowed, once) = counted("");
    let (offline, twice) = counted("frames=read-again");
    eprintln!("decoded (bg in, bg out, fg in, fg out): windowed {once:?}, two-pass {twice:?}");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(windowed.len(), 300);
    same_frames(&windowed, &offline);
    let [bg_in, bg_out, fg_in, fg_out] = once[..] else {
        unreachable!()
    };
    // Read once each...
    assert!(bg_out >= 360 && fg_out >= 300, "decoded: {once:?}");
    // ...and again: the fg's first window (72 frames and the 1 s lookahead at 24 fps, a GOP
    // of 12 before a seek position), the bg from 10 frames before the first one needed
    // (24) to where the first window's read stopped, at most max-offset (5 s) and the
    // lookahead past that fg stretch.
    assert!(
        fg_out <= 300 + 72 + 24 + 12,
        "fg decoded {fg_out} times for 300 frames"
    );
    assert!(
        bg_out <= 360 + (72 + 24 + 24 * 6 - 14 + 12),
        "bg decoded {bg_out} times for 360 frames"
    );
    assert!(bg_in >= bg_out && fg_in >= fg_out, "{once:?}");
    // The two-pass run decodes both inputs twice (and the first frames a third time).
    let [_, bg_twice, _, fg_twice] = twice[..] else {
        unreachable!()
    };
    assert!(
        bg_twice >= 360 + 336 && fg_twice >= 600,
        "two-pass decoded: {twice:?}"
    );
}

/// The default run on files offers upstream a pool of its own in each sink pad's allocation
/// query, with no maximum, so that it holds decoded frames as they are (upstream's own pool may
/// have a fixed number of buffers, and a frame from one is copied): a real decoder takes it and
/// decodes into it, and after the first window it is asked to renegotiate (a second query per
/// pad), so that a new pool grows only to what the sliding window holds. The run's output is
/// the two-pass run's, frame for frame.
#[test]
fn decoders_decode_into_the_pool_offered_to_them() {
    use std::sync::{Arc, Mutex};
    init();
    let (dir, bg, fg) = common::small_pair("passes-pool", 120, (12, 96));
    let run = |props: &str| {
        let p = gst::parse::launch(&format!(
            "vidkompyalign name=a {props} ! appsink name=s sync=false \
             filesrc location={} ! decodebin ! a.bg filesrc location={} ! decodebin ! a.fg",
            common::q(&bg),
            common::q(&fg)
        ))
        .unwrap();
        let a: gst::Element = common::element(&p, "a").unwrap();
        // Per pad: the pools offered (the answers to allocation queries), and how many
        // buffers came from the last one offered / from elsewhere.
        type Seen = Arc<Mutex<(Vec<usize>, usize, usize)>>;
        let seen: Vec<Seen> = ["bg", "fg"]
            .iter()
            .map(|name| {
                let seen: Seen = Arc::default();
                let pad = a.static_pad(name).unwrap();
                let s = seen.clone();
                pad.add_probe(
                    gst::PadProbeType::QUERY_DOWNSTREAM | gst::PadProbeType::PULL,
                    move |_, info| {
                        if let Some(gst::QueryView::Allocation(q)) = info.query().map(|q| q.view())
                        {
                            for (pool, _, min, max) in q.allocation_pools() {
                                assert_eq!((min, max), (0, 0), "the offered pool has no bounds");
                                if let Some(pool) = pool {
                                    s.lock().unwrap().0.push(pool.as_ptr() as usize);
                                }
                            }
                        }
                        gst::PadProbeReturn::Ok
                    },
                );
                let s = seen.clone();
                pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(b) = info.buffer() {
                        // SAFETY: the buffer is alive for the probe's call; its pool field is
                        // only read.
                        let of = unsafe { (*b.as_ptr()).pool } as usize;
                        let mut s = s.lock().unwrap();
                        if s.0.last() == Some(&of) {
                            s.1 += 1;
                        } else {
                            s.2 += 1;
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
                seen
            })
            .collect();
        let frames = common::collect(&common::element(&p, "s").unwrap());
        common::run_to_eos(&p, 120).unwrap();
        let _ = p.set_state(gst::State::Null);
        let seen: Vec<(Vec<usize>, usize, usize)> =
            seen.iter().map(|s| s.lock().unwrap().clone()).collect();
        (std::mem::take(&mut frames.lock().unwrap().0), seen)
    };
    let (windowed, seen) = run("");
    let (offline, _) = run("frames=read-again");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("per pad (pools offered, buffers from the last one, from elsewhere): {seen:?}");
    assert_eq!(windowed.len(), 96);
    same_frames(&windowed, &offline);
    for (name, (offered, ours, other)) in ["bg", "fg"].iter().zip(&seen) {
        assert!(
            offered.len() >= 2,
            "{name}: {} allocation queries answered with a pool",
            offered.len()
        );
        // Frames from a pool offered before the last one: those of the first window.
        assert!(
            *ours > 0 && *ours + *other >= 96 && *other <= *ours,
            "{name}: {ours} buffers from the pool offered last, {other} from others"
        );
    }
}

/// Windowed on files, a caps change on either pad while the first window is read on
/// thumbnails only: the element reads both inputs again from their start, holding frames as
/// they arrive, and then follows the change as offline (frames converted to the first caps, a
/// fg stretch searched on its own). Every fg frame is output once, in order, on its true bg
/// frame (fg frame i shows bg frame 12 + i).
#[test]
fn a_caps_change_in_the_first_window_windowed_reads_the_inputs_again() {
    init();
    let (dir, bg, fg) = pair("caps-windowed");
    let file = |p: &std::path::Path| format!("filesrc location={} ! decodebin", common::q(p));
    let fg_resized = resized_at(&dir, "fg", &fg, 36, 18, (480, 270));
    let bg_resized = resized_at(&dir, "bg", &bg, 48, 24, (480, 270));
    for (what, bg_src, fg_src) in [
        (
            "fg 320x180 -> 480x270 at fg frame 18",
            file(&bg),
            fg_resized,
        ),
        (
            "bg 320x180 -> 480x270 at bg frame 24",
            bg_resized,
            file(&fg),
        ),
    ] {
        let report = dir.join("r.json");
        let run = common::run_collect(
            &format!(
                "vidkompyalign name=a force-live=true report={} ! appsink name=s sync=false \
                 {bg_src} ! videoconvert ! video/x-raw,format=I420 ! a.bg \
                 {fg_src} ! videoconvert ! video/x-raw,format=I420 ! a.fg",
                common::q(&report)
            ),
            120,
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(run.frames.len(), 36, "{what}");
        let r = gstvidkompy::report::Report::read(&report).unwrap();
        let fgs: Vec<usize> = r.frames.iter().map(|e| e.fg).collect();
        assert_eq!(fgs, (0..36).collect::<Vec<_>>(), "{what}");
        let wrong = off_path(&r, 12);
        assert!(
            wrong.is_empty(),
            "{what}: fg frames on the wrong bg frame: {wrong:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Windowed on files, a fg that starts further into the bg than `max-offset` (plus the
/// lookahead): fg frame i shows bg frame 200 + i, 8.3 s in at 24 fps. The first window is read
/// on thumbnails until the bg read holds its match, and every fg frame takes its true bg
/// frame, as offline.
#[test]
fn windowed_finds_a_fg_that_starts_past_max_offset() {
    init();
    let dir = scratch("late-start");
    let (bg, fg) = common::make_pair_from(
        &common::footage(),
        &dir,
        (320, 180),
        (0, 300),
        (80, 46, 160, 90),
        2.0,
        (200, 48),
    )
    .unwrap();
    for props in ["frames=read-again", ""] {
        let report = dir.join("r.json");
        let run = run(&bg, &fg, &format!("{props} report={}", common::q(&report))).unwrap();
        assert_eq!(run.frames.len(), 48, "{props}");
        let r = gstvidkompy::report::Report::read(&report).unwrap();
        let wrong = off_path(&r, 200);
        assert!(wrong.is_empty(), "{props}: wrong bg frames {wrong:?}");
        assert!(
            (r.x - 80.0).abs() < 1.0 && (r.y - 46.0).abs() < 1.0,
            "{props}: {} {}",
            r.x,
            r.y
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
