// SPDX-License-Identifier: MIT

//! The `vidkompy` command on a pair derived from real footage: it writes an MP4 whose video is
//! the fg laid over the bg where and when it belongs, keeps the bg's audio shifted by the
//! offset it found, draws the mapping, and fails with one clear line on bad input.

mod common;

use gst::prelude::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the command with `args` (paths and flags).
fn vidkompy(args: &[&dyn AsRef<OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidkompy"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("vidkompy runs")
}

/// [`vidkompy`], which must succeed: its stdout.
fn vidkompy_ok(args: &[&dyn AsRef<OsStr>]) -> String {
    let res = vidkompy(args);
    let stdout = text(&res.stdout);
    assert!(res.status.success(), "{stdout}\n{}", text(&res.stderr));
    stdout
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one line of an error: all of stderr.
fn error_line(out: &Output) -> String {
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {err}");
    assert!(lines[0].starts_with("vidkompy: "), "stderr: {err}");
    lines[0].to_string()
}

fn run_pipeline(desc: &str) {
    let p = gst::parse::launch(desc).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline ends");
    let _ = p.set_state(gst::State::Null);
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{desc}: {} {:?}", e.error(), e.debug());
    }
}

/// Decoded samples (F32, mono, 48 kHz) of `path`'s audio, with the first one's time.
fn audio_of(path: &Path) -> (Vec<f32>, u64) {
    let desc = format!(
        "filesrc location={} ! decodebin caps=\"audio/x-raw(ANY)\" expose-all-streams=false ! \
         audioconvert ! audioresample ! audio/x-raw,format=F32LE,channels=1,rate=48000 ! \
         appsink name=s sync=false",
        common::q(path)
    );
    let (bufs, _) = common::collect_frames(&desc, 60).unwrap();
    let first = bufs
        .first()
        .and_then(|b| b.pts())
        .map_or(0, |t| t.nseconds());
    let mut samples = Vec::new();
    for b in bufs {
        let m = b.map_readable().unwrap();
        samples.extend(
            m.as_slice()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    (samples, first)
}

/// Checks an output of the test pair: its video (read through `decode`, what follows the
/// file's source in a launch line) is 36 frames at 320x180 and its audio lasts as long as the
/// fg (`fg_s`). Returns the audio's samples.
fn checked_output(path: &Path, decode: &str, fg_s: f64) -> Vec<f32> {
    let (frames, caps) = common::collect_frames(
        &format!(
            "filesrc location={} ! {decode} ! appsink name=s sync=false",
            common::q(path)
        ),
        60,
    )
    .unwrap();
    assert_eq!(frames.len(), 36, "{}", path.display());
    let info = gst_video::VideoInfo::from_caps(&caps.unwrap()).unwrap();
    assert_eq!((info.width(), info.height()), (320, 180));
    let (samples, first) = audio_of(path);
    let secs = samples.len() as f64 / 48_000.0 + first as f64 / 1e9;
    assert!(
        (secs - fg_s).abs() < 0.1,
        "{}: {secs} s of audio for {fg_s} s of video",
        path.display()
    );
    samples
}

fn rms(s: &[f32]) -> f64 {
    (s.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

/// Copies the Matroska file `src` (H.264 video, AAC audio) to `dst` with every timestamp
/// later by `by`: a file whose streams do not start at 0.
fn remux_shifted(src: &Path, dst: &Path, by: gst::ClockTime) {
    let desc = format!(
        "filesrc location={} ! matroskademux name=d \
         d.video_0 ! queue ! h264parse name=v ! m.video_0 \
         d.audio_0 ! queue ! aacparse name=a ! m.audio_0 \
         matroskamux name=m ! filesink location={}",
        common::q(src),
        common::q(dst)
    );
    let p = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Bin>()
        .unwrap();
    for name in ["v", "a"] {
        let pad = p.by_name(name).unwrap().static_pad("src").unwrap();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = info.data.as_mut() {
                let b = b.make_mut();
                if let Some(t) = b.pts() {
                    b.set_pts(t + by);
                }
                if let Some(t) = b.dts() {
                    b.set_dts(t + by);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    p.set_state(gst::State::Playing).unwrap();
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the remux ends");
    let _ = p.set_state(gst::State::Null);
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("remux: {} {:?}", e.error(), e.debug());
    }
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_command_overlays_keeps_the_shifted_bg_audio_and_plots() {
    gst::init().unwrap();
    let src = common::footage();
    let dir = Dir(std::env::temp_dir().join(format!("vidkompy-cli-{}", std::process::id())));
    // bg 320x180, 48 frames (2 s at 24 fps); fg: the footprint 160x90 at (80, 46) at twice its
    // resolution, re-graded, 36 frames from bg frame 12 (0.5 s) on.
    let (bg_video, fg) = common::make_pair(
        &src,
        &dir.0,
        (320, 180),
        48,
        (80, 46, 160, 90),
        2.0,
        (12, 36),
    )
    .unwrap();
    let fps = {
        let (_, info) = common::decode_frames(&bg_video, 0, 1, None).unwrap();
        info.fps()
    };
    let skip_s = 12.0 * fps.denom() as f64 / fps.numer() as f64;
    let fg_s = 36.0 * fps.denom() as f64 / fps.numer() as f64;
    // The bg gets audio: silence until the fg's first moment, a tone after it. Kept shifted by
    // the offset found, the output's audio is the tone from its start.
    let bg = dir.0.join("bg-audio.mkv");
    let silent = (skip_s * 48_000.0 / 480.0).round() as u32;
    run_pipeline(&format!(
        "filesrc location={} ! matroskademux ! h264parse ! matroskamux name=m ! filesink \
         location={} \
         concat name=c ! audioconvert ! avenc_aac ! aacparse ! m. \
         audiotestsrc wave=silence samplesperbuffer=480 num-buffers={silent} ! \
         audio/x-raw,rate=48000,channels=1 ! c. \
         audiotestsrc wave=sine volume=0.5 samplesperbuffer=480 num-buffers=200 ! \
         audio/x-raw,rate=48000,channels=1 ! c.",
        common::q(&bg_video),
        common::q(&bg)
    ));

    let (out, svg, report) = (
        dir.0.join("out.mp4"),
        dir.0.join("map.svg"),
        dir.0.join("report.json"),
    );
    let stdout = vidkompy_ok(&[&bg, &fg, &"-o", &out, &"--plot", &svg, &"--report", &report]);
    // The summary: footprint, confidences, frames, stage times, the audio's source.
    for part in [
        "fg at x=",
        "confidence: spatial",
        "36 fg frames over bg frames 12..=47",
        "time: reading",
        "shifted by the offset found",
    ] {
        assert!(stdout.contains(part), "no {part:?} in:\n{stdout}");
    }

    // The report: where and when.
    let r = gstvidkompy::report::Report::read(&report).unwrap();
    assert!(
        (r.x - 80.0).abs() < 1.0 && (r.y - 46.0).abs() < 1.0,
        "{} {}",
        r.x,
        r.y
    );
    let wrong: Vec<_> = r.frames.iter().filter(|e| e.bg != e.fg + 12).collect();
    assert!(wrong.is_empty(), "{wrong:?}");

    // The video: one frame per fg frame, on the bg's canvas; the audio: as long as the fg,
    // and the tone from the start (unshifted, its first 0.5 s would be the bg's silence).
    let samples = checked_output(
        &out,
        "decodebin caps=\"video/x-raw(ANY)\" expose-all-streams=false",
        fg_s,
    );
    // Past the encoder's priming (~21 ms), in the stretch the bg had silent before the shift.
    let start = (0.05 * 48_000.0) as usize;
    let end = (0.9 * skip_s * 48_000.0) as usize;
    let early = rms(&samples[start..end.min(samples.len())]);
    assert!(
        early > 0.2,
        "rms {early:.3} in the first {:.2} s",
        0.9 * skip_s
    );

    // The picture.
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("bg time (s)"));

    // A bg whose timestamps start at 2 s (a cut, a camera's file): its audio is shifted by
    // the stream time of the bg frame under the first fg frame, not by that frame's index
    // times the frame duration (which would leave the tone 2 s late, mostly cut off).
    let late = dir.0.join("bg-late.mkv");
    remux_shifted(&bg, &late, gst::ClockTime::from_seconds(2));
    let out_late = dir.0.join("late.mp4");
    let stdout = vidkompy_ok(&[&late, &fg, &"-o", &out_late]);
    assert!(
        stdout.contains("36 fg frames over bg frames 12..=47"),
        "{stdout}"
    );
    let samples = checked_output(
        &out_late,
        "decodebin caps=\"video/x-raw(ANY)\" expose-all-streams=false",
        fg_s,
    );
    let early = rms(&samples[start..end.min(samples.len())]);
    assert!(early > 0.2, "bg from 2 s: rms {early:.3} at the start");

    // A fg with audio of its own (a tone) keeps it, unshifted; H.265 into Matroska, the
    // alignment reused from the report (no analysis).
    let fg_audio = dir.0.join("fg-audio.mkv");
    run_pipeline(&format!(
        "filesrc location={} ! matroskademux ! h264parse ! matroskamux name=m ! filesink \
         location={} \
         audiotestsrc wave=sine volume=0.5 samplesperbuffer=480 num-buffers={} ! \
         audio/x-raw,rate=48000,channels=1 ! audioconvert ! avenc_aac ! aacparse ! m.",
        common::q(&fg),
        common::q(&fg_audio),
        (fg_s * 100.0).round() as u32
    ));
    let mkv = dir.0.join("out.mkv");
    let stdout = vidkompy_ok(&[
        &bg,
        &fg_audio,
        &"-o",
        &mkv,
        &"--codec",
        &"h265",
        &"--alignment",
        &report,
    ]);
    assert!(
        stdout.contains(&format!("audio: from {}\n", fg_audio.display())),
        "{stdout}"
    );
    assert!(stdout.contains("frames mapped by loaded"), "{stdout}");
    let samples = checked_output(&mkv, "matroskademux ! h265parse ! avdec_h265", fg_s);
    assert!(rms(&samples[start..end.min(samples.len())]) > 0.2);
}

#[test]
fn bad_inputs_fail_with_one_line_and_leave_nothing() {
    gst::init().unwrap();
    let dir = Dir(std::env::temp_dir().join(format!("vidkompy-cli-bad-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let missing = dir.0.join("missing.mp4");
    let out = vidkompy(&[&missing, &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&out),
        format!("vidkompy: {}: no such file", missing.display())
    );

    let audio = dir.0.join("audio.mp4");
    run_pipeline(&format!(
        "audiotestsrc num-buffers=20 ! avenc_aac ! mp4mux ! filesink location={}",
        common::q(&audio)
    ));
    let out = vidkompy(&[&audio, &audio]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&out),
        format!("vidkompy: {}: no video stream", audio.display())
    );

    // Noise shows nothing of a scene of noise made otherwise: nothing matches.
    let (bg, fg, result) = (
        dir.0.join("bg.mkv"),
        dir.0.join("fg.mkv"),
        dir.0.join("out.mp4"),
    );
    for (path, pattern) in [(&bg, "pinwheel"), (&fg, "snow")] {
        run_pipeline(&format!(
            "videotestsrc pattern={pattern} num-buffers=24 ! \
             video/x-raw,width=320,height=180,framerate=24/1 ! x264enc ! matroskamux ! \
             filesink location={}",
            common::q(path)
        ));
    }
    let out = vidkompy(&[&bg, &fg, &"-o", &result]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        error_line(&out).starts_with("vidkompy: nothing matched"),
        "{}",
        text(&out.stderr)
    );
    assert!(!result.exists(), "a partial output was left");

    let out = vidkompy(&[&bg, &fg, &"-o", &dir.0.join("out.avi")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out).contains("unknown container"));

    let out = vidkompy(&[&bg, &fg, &"-o", &dir.0.join("no/such/dir/out.mp4")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out).ends_with("no/such/dir: no such directory"));
    let out = vidkompy(&[&bg, &fg, &"-o", &fg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(error_line(&out).ends_with("the output would overwrite an input"));
    assert!(std::fs::metadata(&fg).unwrap().len() > 0);

    // A flag out of its property's range: an error, not a panic.
    let out = vidkompy(&[&bg, &fg, &"--scale", &"100", &"-o", &result]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_line(&out),
        "vidkompy: --scale 100: out of range (0 to 16)"
    );
}
