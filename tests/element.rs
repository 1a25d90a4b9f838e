// SPDX-License-Identifier: MIT

//! Harness tests of `vidkompyalign`: pads, caps, timestamps, frame counts, EOS, compositing and
//! bad input. Offline tests feed each sink pad from its own thread (an aggregator waits for data
//! on every pad) and pull the output once both pads ended.

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use gstvidkompy::messages::{ElementMessage, Progress};
use std::sync::Once;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const MS: u64 = 1_000_000;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvidkompy::plugin_register_static().unwrap();
    });
}

/// Runs `f` on a thread and fails the test if it does not finish within `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("test thread panicked"),
    }
}

/// A frame of `caps` whose planes are filled by `fill(plane, x, y)` (x, y in plane samples;
/// for packed formats x counts bytes).
fn frame(
    caps: &gst::Caps,
    pts: Option<u64>,
    dur: Option<u64>,
    fill: impl Fn(usize, usize, usize) -> u8,
) -> gst::Buffer {
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let buf = gst::Buffer::with_size(info.size()).unwrap();
    let mut f = gst_video::VideoFrame::from_buffer_writable(buf, &info).unwrap();
    for p in 0..f.n_planes() {
        let stride = f.plane_stride()[p as usize] as usize;
        let data = f.plane_data_mut(p).unwrap();
        for (y, row) in data.chunks_mut(stride).enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                *v = fill(p as usize, x, y);
            }
        }
    }
    let mut buf = f.into_buffer();
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(pts.map(gst::ClockTime::from_nseconds));
        b.set_duration(dur.map(gst::ClockTime::from_nseconds));
    }
    buf
}

/// I420 frame with luma `y` and neutral chroma.
fn i420(caps: &gst::Caps, pts: u64, dur: u64, y: u8) -> gst::Buffer {
    frame(
        caps,
        Some(pts),
        Some(dur),
        move |p, _, _| if p == 0 { y } else { 128 },
    )
}

fn caps(s: &str) -> gst::Caps {
    init();
    s.parse().unwrap()
}

/// What one offline run produced.
struct Run {
    buffers: Vec<gst::Buffer>,
    caps: Option<gst::Caps>,
    segment: Option<gst::Segment>,
    eos: bool,
    messages: Vec<gst::Message>,
}

impl Run {
    fn errors(&self) -> Vec<String> {
        self.texts(gst::MessageType::Error)
    }

    fn warnings(&self) -> Vec<String> {
        self.texts(gst::MessageType::Warning)
    }

    fn texts(&self, t: gst::MessageType) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.type_() == t)
            .map(|m| match m.view() {
                gst::MessageView::Error(e) => format!("{} {:?}", e.error(), e.debug()),
                gst::MessageView::Warning(w) => format!("{} {:?}", w.error(), w.debug()),
                gst::MessageView::Info(i) => format!("{} {:?}", i.error(), i.debug()),
                _ => String::new(),
            })
            .collect()
    }
}

/// One element with a harness on `bg`+`src` and one on `fg`.
struct Pair {
    element: gst::Element,
    bg: Harness,
    fg: Harness,
    bus: gst::Bus,
}

impl Pair {
    fn new(props: &[(&str, &dyn ToValue)]) -> Pair {
        init();
        let element = gst::ElementFactory::make("vidkompyalign").build().unwrap();
        for (k, v) in props {
            element.set_property_from_value(k, &v.to_value());
        }
        Self::from_element(element)
    }

    fn from_element(element: gst::Element) -> Pair {
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        let mut bg = Harness::with_element(&element, Some("bg"), Some("src"));
        let mut fg = Harness::with_element(&element, Some("fg"), None);
        bg.set_live(false);
        fg.set_live(false);
        Pair {
            element,
            bg,
            fg,
            bus,
        }
    }

    /// Feeds both pads from their own threads (caps, frames, EOS), then collects the output.
    fn run(
        self,
        bg_caps: gst::Caps,
        bg: Vec<gst::Buffer>,
        fg_caps: gst::Caps,
        fg: Vec<gst::Buffer>,
    ) -> Run {
        self.run_with(
            move |h| {
                h.set_src_caps(bg_caps);
                for b in bg {
                    if h.push(b).is_err() {
                        break;
                    }
                }
                h.push_event(gst::event::Eos::new());
            },
            move |h| {
                h.set_src_caps(fg_caps);
                for b in fg {
                    if h.push(b).is_err() {
                        break;
                    }
                }
                h.push_event(gst::event::Eos::new());
            },
        )
    }

    fn run_with(
        self,
        feed_bg: impl FnOnce(&mut Harness) + Send + 'static,
        feed_fg: impl FnOnce(&mut Harness) + Send + 'static,
    ) -> Run {
        let Pair {
            element,
            mut bg,
            mut fg,
            bus,
        } = self;
        within(30, move || {
            let tfg = thread::spawn(move || {
                feed_fg(&mut fg);
                fg
            });
            let tbg = thread::spawn(move || {
                feed_bg(&mut bg);
                bg
            });
            let fg = tfg.join().unwrap();
            let mut bg = tbg.join().unwrap();
            // The output comes once both pads ended, then EOS (also after an error): wait for
            // the EOS event; every buffer is queued before it.
            let (mut caps, mut segment, mut eos) = (None, None, false);
            while !eos {
                let Ok(ev) = bg.pull_event() else {
                    break;
                };
                match ev.view() {
                    gst::EventView::Caps(c) => caps = Some(c.caps_owned()),
                    gst::EventView::Segment(s) => segment = Some(s.segment().clone()),
                    gst::EventView::Eos(_) => eos = true,
                    _ => (),
                }
            }
            let mut buffers = Vec::new();
            while let Some(b) = bg.try_pull() {
                buffers.push(b);
            }
            let _ = element.set_state(gst::State::Null);
            drop(fg);
            let messages: Vec<gst::Message> = bus.iter().collect();
            Run {
                buffers,
                caps,
                segment,
                eos,
                messages,
            }
        })
    }
}

const BG_CAPS: &str = "video/x-raw,format=I420,width=64,height=48,framerate=10/1,\
    pixel-aspect-ratio=4/3,colorimetry=bt709,chroma-site=mpeg2,interlace-mode=progressive";
const FG_CAPS: &str = "video/x-raw,format=I420,width=16,height=12,framerate=25/1,\
    pixel-aspect-ratio=1/1,colorimetry=bt709,chroma-site=mpeg2";

/// bg frames at 10 fps whose luma is 10·(index+1); fg frames at 25 fps of luma 250.
fn standard_inputs(n_bg: u64, n_fg: u64, fg_start: u64) -> (Vec<gst::Buffer>, Vec<gst::Buffer>) {
    let bgc = caps(BG_CAPS);
    let fgc = caps(FG_CAPS);
    let bg = (0..n_bg)
        .map(|i| i420(&bgc, i * 100 * MS, 100 * MS, (10 * (i + 1)) as u8))
        .collect();
    let fg = (0..n_fg)
        .map(|i| i420(&fgc, fg_start + i * 40 * MS, 40 * MS, 250))
        .collect();
    (bg, fg)
}

fn luma_at(buf: &gst::Buffer, caps: &gst::Caps, x: usize, y: usize) -> u8 {
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let f = gst_video::VideoFrame::from_buffer_readable(buf.clone(), &info).unwrap();
    let stride = f.plane_stride()[0] as usize;
    f.plane_data(0).unwrap()[y * stride + x]
}

#[test]
fn pads_metadata_and_properties() {
    init();
    let factory = gst::ElementFactory::find("vidkompyalign").unwrap();
    assert_eq!(
        factory.metadata("klass"),
        Some("Filter/Editor/Video/Compositor")
    );
    let e = factory.create().build().unwrap();
    assert!(e.is::<gst_base::Aggregator>());
    for (name, dir) in [
        ("bg", gst::PadDirection::Sink),
        ("fg", gst::PadDirection::Sink),
        ("src", gst::PadDirection::Src),
    ] {
        let pad = e
            .static_pad(name)
            .unwrap_or_else(|| panic!("no pad {name}"));
        assert_eq!(pad.direction(), dir);
        assert_eq!(
            pad.pad_template().unwrap().presence(),
            gst::PadPresence::Always
        );
    }
    assert_eq!(e.property::<i32>("x"), -1);
    assert_eq!(e.property::<i32>("y"), -1);
    assert_eq!(e.property::<f64>("scale"), 0.0);
    assert_eq!(e.property::<u32>("blend-width"), 0);
    assert_eq!(e.property::<u32>("edge-width"), 8);
    e.set_property_from_str("match-region", "edges");
    let nick = e.property_value("match-region");
    let nick = glib::EnumValue::from_value(&nick).map(|(_, v)| v.nick());
    assert_eq!(nick, Some("edges"));
    for p in e.list_properties() {
        if [
            "x",
            "y",
            "scale",
            "blend-width",
            "match-region",
            "edge-width",
        ]
        .contains(&p.name())
        {
            assert!(p.blurb().is_some_and(|b| b.len() > 20), "{}", p.name());
        }
    }
}

#[test]
fn one_output_per_fg_frame_with_its_timestamps_on_the_bg_canvas() {
    let (bg, fg) = standard_inputs(10, 23, 0);
    let fg_times: Vec<_> = fg.iter().map(|b| (b.pts(), b.duration())).collect();
    let pair = Pair::new(&[("x", &4i32), ("y", &6i32), ("scale", &1.0f64)]);
    let run = pair.run(caps(BG_CAPS), bg, caps(FG_CAPS), fg);
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    assert!(run.eos);
    assert_eq!(run.buffers.len(), 23);
    let got: Vec<_> = run
        .buffers
        .iter()
        .map(|b| (b.pts(), b.duration()))
        .collect();
    assert_eq!(got, fg_times);
    // Every field of the bg's caps but the framerate, which is the fg's.
    let mut expected = caps(BG_CAPS);
    expected
        .make_mut()
        .set("framerate", gst::Fraction::new(25, 1));
    let out = run.caps.expect("output caps");
    assert!(out.is_strictly_equal(&expected), "{out} vs {expected}");
    assert!(run.buffers[0].flags().contains(gst::BufferFlags::DISCONT));
}

#[test]
fn each_fg_frame_takes_the_bg_frame_at_its_running_time() {
    // fg starts 150 ms into the bg and runs past its end (1 s).
    let (bg, fg) = standard_inputs(10, 30, 150 * MS);
    let pair = Pair::new(&[("x", &0i32), ("y", &0i32), ("scale", &1.0f64)]);
    let run = pair.run(caps(BG_CAPS), bg, caps(FG_CAPS), fg);
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let out_caps = run.caps.clone().unwrap();
    assert_eq!(run.buffers.len(), 30);
    for (i, b) in run.buffers.iter().enumerate() {
        let t = 150 + 40 * i as u64;
        let bg_index = (t / 100).min(9);
        let want = (10 * (bg_index + 1)) as u8;
        assert_eq!(
            luma_at(b, &out_caps, 40, 30),
            want,
            "fg frame {i} at {t} ms"
        );
        assert_eq!(luma_at(b, &out_caps, 3, 3), 250);
    }
}

#[test]
fn the_footprint_is_pasted_exactly_where_asked() {
    let (bg, fg) = standard_inputs(3, 3, 0);
    let pair = Pair::new(&[("x", &10i32), ("y", &6i32), ("scale", &1.0f64)]);
    let run = pair.run(caps(BG_CAPS), bg, caps(FG_CAPS), fg);
    let out_caps = run.caps.clone().unwrap();
    let b = &run.buffers[0];
    for y in 0..48 {
        for x in 0..64 {
            let inside = (10..26).contains(&x) && (6..18).contains(&y);
            let want = if inside { 250 } else { 10 };
            assert_eq!(luma_at(b, &out_caps, x, y), want, "({x}, {y})");
        }
    }
}

#[test]
fn a_fg_in_another_format_and_size_is_converted_and_scaled() {
    let bgc = caps(BG_CAPS);
    let fgc = caps("video/x-raw,format=RGBA,width=32,height=24,framerate=25/1");
    let bg: Vec<_> = (0..3)
        .map(|i| i420(&bgc, i * 100 * MS, 100 * MS, 16))
        .collect();
    // white fg
    let fg: Vec<_> = (0..5)
        .map(|i| frame(&fgc, Some(i * 40 * MS), Some(40 * MS), |_, _, _| 255))
        .collect();
    let pair = Pair::new(&[("x", &20i32), ("y", &10i32), ("scale", &0.5f64)]);
    let run = pair.run(bgc, bg, fgc, fg);
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let out_caps = run.caps.clone().unwrap();
    assert_eq!(
        out_caps
            .structure(0)
            .unwrap()
            .get::<&str>("format")
            .unwrap(),
        "I420"
    );
    assert_eq!(run.buffers.len(), 5);
    for b in &run.buffers {
        // 16x12 footprint at (20, 10): white in limited range is 235
        for y in 0..48 {
            for x in 0..64 {
                let inside = (20..36).contains(&x) && (10..22).contains(&y);
                let v = luma_at(b, &out_caps, x, y);
                if inside {
                    assert!(v >= 233, "({x}, {y}) = {v}");
                } else {
                    assert_eq!(v, 16, "({x}, {y})");
                }
            }
        }
    }
}

#[test]
fn blend_width_feathers_only_edges_where_the_bg_shows() {
    let (bg, fg) = standard_inputs(2, 2, 0);
    // Footprint touching the left border: the left edge stays hard.
    let pair = Pair::new(&[
        ("x", &0i32),
        ("y", &10i32),
        ("scale", &1.0f64),
        ("blend-width", &4u32),
    ]);
    let run = pair.run(caps(BG_CAPS), bg, caps(FG_CAPS), fg);
    let out_caps = run.caps.clone().unwrap();
    let b = &run.buffers[0];
    let row: Vec<u8> = (0..18).map(|x| luma_at(b, &out_caps, x, 16)).collect();
    assert_eq!(row[..12], [250; 12], "{row:?}");
    // right edge ramps down towards the bg (10): strictly decreasing, never reaching it
    assert!(row[12..16].windows(2).all(|w| w[0] > w[1]), "{row:?}");
    assert!(row[15] > 10 && row[15] < 100, "{row:?}");
    assert_eq!(row[16..], [10, 10]);
    // top edge ramps too
    let col: Vec<u8> = (9..14).map(|y| luma_at(b, &out_caps, 6, y)).collect();
    assert_eq!(col[0], 10);
    assert!(col[1..].windows(2).all(|w| w[0] < w[1]), "{col:?}");
    assert_eq!(luma_at(b, &out_caps, 6, 16), 250);
}

#[test]
fn unset_placement_centres_the_fg_and_warns() {
    let (bg, fg) = standard_inputs(2, 2, 0);
    let run = Pair::new(&[]).run(caps(BG_CAPS), bg, caps(FG_CAPS), fg);
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let w = run.warnings();
    assert!(
        w.iter().any(|w| w.contains("x=24 y=18 scale=1")),
        "warnings: {w:?}"
    );
    let out_caps = run.caps.clone().unwrap();
    assert_eq!(luma_at(&run.buffers[0], &out_caps, 24, 18), 250);
    assert_eq!(luma_at(&run.buffers[0], &out_caps, 23, 18), 10);
    assert_eq!(luma_at(&run.buffers[0], &out_caps, 40, 30), 10);
}

#[test]
fn a_larger_fg_shrinks_to_fit_when_nothing_is_set() {
    let bgc = caps(BG_CAPS);
    let fgc = caps("video/x-raw,format=I420,width=128,height=64,framerate=25/1");
    let bg = vec![i420(&bgc, 0, 100 * MS, 10)];
    let fg = vec![i420(&fgc, 0, 40 * MS, 250)];
    let run = Pair::new(&[]).run(bgc, bg, fgc, fg);
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    // scale 0.5: 64x32 centred vertically at y=8
    let out_caps = run.caps.clone().unwrap();
    assert_eq!(luma_at(&run.buffers[0], &out_caps, 0, 8), 250);
    assert_eq!(luma_at(&run.buffers[0], &out_caps, 63, 39), 250);
    assert_eq!(luma_at(&run.buffers[0], &out_caps, 0, 7), 10);
    assert_eq!(luma_at(&run.buffers[0], &out_caps, 0, 40), 10);
}

#[test]
fn a_fg_larger_than_the_bg_with_a_position_but_no_scale_is_an_error_naming_sizes() {
    let bgc = caps(BG_CAPS);
    let fgc = caps("video/x-raw,format=I420,width=128,height=64,framerate=25/1");
    let bg: Vec<_> = (0..3)
        .map(|i| i420(&bgc, i * 100 * MS, 100 * MS, 10))
        .collect();
    let fg: Vec<_> = (0..3)
        .map(|i| i420(&fgc, i * 40 * MS, 40 * MS, 10))
        .collect();
    let run = Pair::new(&[("x", &0i32), ("y", &0i32)]).run(bgc, bg, fgc, fg);
    let e = run.errors();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("128x64") && e[0].contains("64x48"), "{e:?}");
    assert!(run.buffers.is_empty());
}

#[test]
fn a_pad_that_ends_without_frames_is_an_error() {
    for empty_bg in [true, false] {
        let (bg, fg) = standard_inputs(3, 3, 0);
        let (bg, fg) = if empty_bg { (vec![], fg) } else { (bg, vec![]) };
        let run = Pair::new(&[]).run(caps(BG_CAPS), bg, caps(FG_CAPS), fg);
        let e = run.errors();
        let name = if empty_bg { "Pad bg" } else { "Pad fg" };
        assert!(
            e.len() == 1 && e[0].contains(name) && e[0].contains("without any frame"),
            "{e:?}"
        );
        assert!(run.buffers.is_empty());
        assert!(
            run.eos,
            "EOS follows the error (empty bg: {empty_bg}) {:?}",
            run.messages
        );
    }
}

/// Pushes a buffer of `caps_str` into `bg`: it must be not-negotiated, with warnings
/// (returned) on the bus.
fn refused(caps_str: &'static str, size: usize) -> Vec<String> {
    init();
    let Pair {
        element,
        mut bg,
        bus,
        ..
    } = Pair::new(&[]);
    within(20, move || {
        bg.set_src_caps(caps(caps_str));
        let b = gst::Buffer::with_size(size).unwrap();
        assert_eq!(bg.push(b), Err(gst::FlowError::NotNegotiated));
        let texts: Vec<String> = bus
            .iter()
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect();
        let _ = element.set_state(gst::State::Null);
        texts
    })
}

#[test]
fn unsupported_caps_are_not_negotiated_with_a_message() {
    let texts = refused(
        "video/x-raw,format=YUY2,width=64,height=48,framerate=10/1",
        64 * 48 * 2,
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("YUY2") && t.contains("not supported")),
        "{texts:?}"
    );
}

#[test]
fn the_bg_caps_query_does_not_force_the_fg_framerate() {
    init();
    let mut pair = Pair::new(&[]);
    // downstream wants I420
    pair.bg.set_sink_caps_str("video/x-raw,format=I420");
    pair.fg.set_src_caps(caps(FG_CAPS));
    let bg_pad = pair.element.static_pad("bg").unwrap();
    let q = bg_pad.query_caps(None);
    let bg30 = caps("video/x-raw,format=I420,width=64,height=48,framerate=30/1");
    assert!(q.can_intersect(&bg30), "{q}");
    assert!(!q.can_intersect(&caps("video/x-raw,format=NV12")), "{q}");
    assert!(bg_pad.query_accept_caps(&bg30));
    let _ = pair.element.set_state(gst::State::Null);
}

#[test]
fn a_fg_framerate_of_0_is_derived_from_timestamps() {
    let bgc = caps(BG_CAPS);
    let fgc = caps("video/x-raw,format=I420,width=16,height=12,framerate=0/1");
    let bg: Vec<_> = (0..3)
        .map(|i| i420(&bgc, i * 100 * MS, 100 * MS, 10))
        .collect();
    // 30000/1001 fps, without durations
    let fg: Vec<_> = (0..6)
        .map(|i| {
            let pts = i * 1_001_000_000 / 30;
            frame(&fgc, Some(pts), None, |_, _, _| 128)
        })
        .collect();
    let run = Pair::new(&[("x", &0i32), ("y", &0i32)]).run(bgc, bg, fgc, fg);
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let s = run.caps.unwrap();
    let fps = s
        .structure(0)
        .unwrap()
        .get::<gst::Fraction>("framerate")
        .unwrap();
    assert_eq!(fps, gst::Fraction::new(30000, 1001));
    assert_eq!(run.buffers.len(), 6);
}

#[test]
fn a_single_fg_frame_with_framerate_0_and_no_duration_is_refused_clearly() {
    let bgc = caps(BG_CAPS);
    let fgc = caps("video/x-raw,format=I420,width=16,height=12,framerate=0/1");
    let bg = vec![i420(&bgc, 0, 100 * MS, 10)];
    let fg = vec![frame(&fgc, Some(0), None, |_, _, _| 128)];
    let run = Pair::new(&[("x", &0i32), ("y", &0i32)]).run(bgc, bg, fgc, fg);
    let e = run.errors();
    assert!(e.iter().any(|e| e.contains("framerate is 0/1")), "{e:?}");
}

#[test]
fn the_output_segment_is_the_fgs() {
    let (bg, fg) = standard_inputs(5, 5, 2_000 * MS);
    let bgc = caps(BG_CAPS);
    let fgc = caps(FG_CAPS);
    let pair = Pair::new(&[("x", &0i32), ("y", &0i32)]);
    let run = pair.run_with(
        move |h| {
            h.set_src_caps(bgc);
            for b in bg {
                let _ = h.push(b);
            }
            h.push_event(gst::event::Eos::new());
        },
        move |h| {
            h.set_src_caps(fgc);
            let mut seg = gst::FormattedSegment::<gst::ClockTime>::new();
            seg.set_start(gst::ClockTime::from_mseconds(2_000));
            seg.set_base(gst::ClockTime::from_mseconds(100));
            h.push_event(gst::event::Segment::new(&seg));
            for b in fg {
                let _ = h.push(b);
            }
            h.push_event(gst::event::Eos::new());
        },
    );
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let seg = run.segment.unwrap();
    let seg = seg.downcast_ref::<gst::ClockTime>().unwrap();
    assert_eq!(seg.start(), Some(gst::ClockTime::from_mseconds(2_000)));
    assert_eq!(seg.base(), Some(gst::ClockTime::from_mseconds(100)));
    // fg running time 100 ms + i·40 ms: bg frames 1, 1, 1, 2, 2
    let out_caps = run.caps.unwrap();
    let got: Vec<u8> = run
        .buffers
        .iter()
        .map(|b| luma_at(b, &out_caps, 40, 30))
        .collect();
    assert_eq!(got, vec![20, 20, 20, 30, 30]);
}

#[test]
fn live_mode_refuses_match_region_edges_clearly() {
    init();
    let element = gst::ElementFactory::make("vidkompyalign")
        .property("force-live", true)
        .property_from_str("match-region", "edges")
        .build()
        .unwrap();
    assert!(element.property::<bool>("force-live"));
    let Pair {
        element,
        mut bg,
        mut fg,
        bus,
    } = Pair::from_element(element);
    within(30, move || {
        let (bgs, fgs) = standard_inputs(2, 2, 0);
        let fgc = caps(FG_CAPS);
        let t = thread::spawn(move || {
            fg.set_src_caps(fgc);
            for b in fgs {
                let _ = fg.push(b);
            }
            fg
        });
        bg.set_src_caps(caps(BG_CAPS));
        for b in bgs {
            let _ = bg.push(b);
        }
        let msg = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(20), &[gst::MessageType::Error])
            .expect("an error message");
        let gst::MessageView::Error(e) = msg.view() else {
            unreachable!()
        };
        assert!(
            e.error()
                .to_string()
                .contains("match-region=edges is not supported with live inputs"),
            "{e:?}"
        );
        let _ = element.set_state(gst::State::Null);
        drop(t.join());
    });
}

#[test]
fn upstream_buffers_are_released_while_reading() {
    init();
    let (bg, fg) = standard_inputs(8, 8, 0);
    let held: Vec<gst::Buffer> = bg.iter().chain(fg.iter()).cloned().collect();
    let Pair {
        element,
        bg: mut hbg,
        fg: mut hfg,
        ..
    } = Pair::new(&[("x", &0i32), ("y", &0i32)]);
    within(30, move || {
        let tf = thread::spawn(move || {
            hfg.set_src_caps(caps(FG_CAPS));
            for b in fg {
                hfg.push(b).unwrap();
            }
            hfg
        });
        hbg.set_src_caps(caps(BG_CAPS));
        for b in bg {
            hbg.push(b).unwrap();
        }
        let hfg = tf.join().unwrap();
        // No EOS yet: the element is still reading and holds the frames.
        // Give the aggregator thread the chance to take the last queued buffers.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let count = || held.iter().filter(|b| !b.is_writable()).count();
        while count() > 4 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        // at most 2 references per pad
        assert!(count() <= 4, "{} upstream buffers still held", count());
        let _ = element.set_state(gst::State::Null);
        drop((hbg, hfg));
    });
}

#[test]
fn setting_null_while_reading_returns_promptly() {
    init();
    let Pair {
        element,
        mut bg,
        fg,
        ..
    } = Pair::new(&[]);
    within(20, move || {
        // bg pushes while fg never sends anything: the pusher blocks inside the element.
        let t = thread::spawn(move || {
            bg.set_src_caps(caps(BG_CAPS));
            let c = caps(BG_CAPS);
            for i in 0..100 {
                if bg.push(i420(&c, i * 100 * MS, 100 * MS, 1)).is_err() {
                    break;
                }
            }
            bg
        });
        thread::sleep(Duration::from_millis(200));
        assert_eq!(
            element.set_state(gst::State::Null),
            Ok(gst::StateChangeSuccess::Success)
        );
        let bg = t.join().unwrap();
        drop((bg, fg));
    });
}

#[test]
fn every_format_composites_odd_sizes_at_odd_places_without_error() {
    let formats = [
        "I420", "YV12", "NV12", "NV21", "Y42B", "Y444", "RGBA", "BGRA", "ARGB", "ABGR", "RGBx",
        "BGRx", "xRGB", "xBGR", "RGB", "BGR", "GRAY8",
    ];
    for fmt in formats {
        let bgc = caps(&format!(
            "video/x-raw,format={fmt},width=33,height=25,framerate=10/1"
        ));
        let fgc = caps("video/x-raw,format=I420,width=9,height=7,framerate=10/1");
        let bg: Vec<_> = (0..2)
            .map(|i| frame(&bgc, Some(i * 100 * MS), Some(100 * MS), |_, _, _| 0))
            .collect();
        let fg: Vec<_> = (0..2)
            .map(|i| {
                frame(&fgc, Some(i * 100 * MS), Some(100 * MS), |p, _, _| {
                    if p == 0 { 235 } else { 128 }
                })
            })
            .collect();
        let pair = Pair::new(&[
            ("x", &3i32),
            ("y", &5i32),
            ("scale", &1.0f64),
            ("blend-width", &2u32),
        ]);
        let run = pair.run(bgc.clone(), bg.clone(), fgc, fg);
        assert!(run.errors().is_empty(), "{fmt}: {:?}", run.errors());
        assert_eq!(run.buffers.len(), 2, "{fmt}");
        let info = gst_video::VideoInfo::from_caps(&bgc).unwrap();
        let out = run.buffers[0].map_readable().unwrap();
        assert_eq!(out.len(), info.size(), "{fmt}");
        let bgmap = bg[0].map_readable().unwrap();
        assert_ne!(
            out.as_slice(),
            bgmap.as_slice(),
            "{fmt}: nothing composited"
        );
    }
}

/// Offline, caps that change mid-stream are taken: later frames are converted to the pad's
/// first caps (an info message says so), and the output keeps the bg's first caps.
#[test]
fn a_caps_change_mid_stream_offline_is_converted_to_the_first_caps() {
    let bgc = caps(BG_CAPS);
    let bgc2 = caps(
        "video/x-raw,format=I420,width=32,height=24,framerate=10/1,pixel-aspect-ratio=4/3,\
         colorimetry=bt709,chroma-site=mpeg2,interlace-mode=progressive",
    );
    let fgc = caps(FG_CAPS);
    let fgc2 = caps("video/x-raw,format=I420,width=20,height=12,framerate=25/1");
    let run = Pair::new(&[("x", &0i32), ("y", &0i32)]).run_with(
        move |h| {
            h.set_src_caps(bgc.clone());
            for i in 0..2 {
                let _ = h.push(i420(&bgc, i * 100 * MS, 100 * MS, 10 * (i as u8 + 1)));
            }
            h.push_event(gst::event::Caps::new(&bgc2));
            let _ = h.push(i420(&bgc2, 200 * MS, 100 * MS, 30));
            h.push_event(gst::event::Eos::new());
        },
        move |h| {
            h.set_src_caps(fgc.clone());
            let _ = h.push(i420(&fgc, 0, 40 * MS, 250));
            h.push_event(gst::event::Caps::new(&fgc2));
            let _ = h.push(i420(&fgc2, 250 * MS, 40 * MS, 200));
            h.push_event(gst::event::Eos::new());
        },
    );
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let infos = run.texts(gst::MessageType::Info);
    for pad in ["bg", "fg"] {
        assert!(
            infos
                .iter()
                .any(|t| t.contains(&format!("Caps changed on pad {pad}"))),
            "{infos:?}"
        );
    }
    let out = run.caps.as_ref().unwrap().structure(0).unwrap().to_owned();
    assert_eq!(
        (out.get::<i32>("width"), out.get::<i32>("height")),
        (Ok(64), Ok(48))
    );
    assert_eq!(run.buffers.len(), 2, "every fg frame once");
    let luma = |b: &gst::Buffer, x: usize, y: usize| b.map_readable().unwrap()[y * 64 + x];
    // fg frame 0 over bg frame 0; fg frame 1 (converted from 20x12) over bg frame 2 (converted
    // from 32x24), both at the fg's first footprint.
    assert_eq!(run.buffers[0].size(), 64 * 48 * 3 / 2);
    assert_eq!(run.buffers[1].size(), 64 * 48 * 3 / 2);
    assert_eq!(
        (luma(&run.buffers[0], 2, 2), luma(&run.buffers[0], 60, 40)),
        (250, 10)
    );
    assert_eq!(
        (luma(&run.buffers[1], 2, 2), luma(&run.buffers[1], 60, 40)),
        (200, 30)
    );
}

#[test]
fn an_alignment_file_that_cannot_be_read_fails_at_start_naming_it() {
    init();
    let dir = std::env::temp_dir().join(format!("vidkompy-el-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("malformed.json");
    std::fs::write(&bad, "{ not json").unwrap();
    for (path, needle) in [
        (dir.join("missing.json"), "cannot read"),
        (bad.clone(), "not a valid alignment report"),
    ] {
        let e = gst::ElementFactory::make("vidkompyalign")
            .property("alignment", path.to_str().unwrap())
            .build()
            .unwrap();
        let bus = gst::Bus::new();
        e.set_bus(Some(&bus));
        assert!(e.set_state(gst::State::Paused).is_err());
        let msg = bus
            .iter()
            .find(|m| m.type_() == gst::MessageType::Error)
            .expect("an error message");
        let gst::MessageView::Error(err) = msg.view() else {
            unreachable!()
        };
        let text = err.error().to_string();
        assert!(
            text.contains(needle) && text.contains(path.to_str().unwrap()),
            "{text}"
        );
        let _ = e.set_state(gst::State::Null);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_report_path_that_cannot_be_written_is_an_error_naming_it() {
    // Under a regular file: unwritable even as root.
    let file = std::env::temp_dir().join(format!("vidkompy-plain-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    let report = file.join("report.json");
    let (bg, fg) = standard_inputs(3, 3, 0);
    let run = Pair::new(&[
        ("x", &0i32),
        ("y", &0i32),
        ("report", &report.to_str().unwrap()),
    ])
    .run(caps(BG_CAPS), bg, caps(FG_CAPS), fg);
    let e = run.errors();
    assert!(
        e.iter()
            .any(|e| e.contains("cannot write") && e.contains("report.json")),
        "{e:?}"
    );
    assert!(run.buffers.is_empty());
    let _ = std::fs::remove_file(&file);
}

#[test]
fn progress_is_reported_for_every_stage() {
    let (bg, fg) = standard_inputs(10, 23, 0);
    let run = Pair::new(&[]).run(caps(BG_CAPS), bg, caps(FG_CAPS), fg);
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    let progress: Vec<Progress> = run
        .messages
        .iter()
        .filter_map(Progress::from_message)
        .map(|p| p.unwrap())
        .collect::<Vec<_>>();
    let stage = |name: &str| -> Vec<Progress> {
        progress
            .iter()
            .filter(|p| p.stage() == name)
            .copied()
            .collect()
    };
    let reading: Vec<(u64, u64)> = stage("reading")
        .iter()
        .filter_map(|p| match *p {
            Progress::Reading {
                done, bg_frames, ..
            } => Some((done, bg_frames)),
            _ => None,
        })
        .collect();
    assert!(reading.len() >= 2, "{progress:?}");
    assert_eq!(reading.last(), Some(&(23, 10)));
    let done: Vec<u64> = reading.iter().map(|r| r.0).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert!(stage("analysis").len() >= 2, "{progress:?}");
    let output = stage("output");
    assert!(output.len() >= 2, "{progress:?}");
    assert_eq!(
        output.last(),
        Some(&Progress::Output {
            done: 23,
            total: 23
        })
    );
}

#[test]
fn bad_input_matrix_ends_cleanly() {
    // Each: no panic, no hang; either output for every fg frame or a clear error.
    let c = |s: &str| caps(s);
    // 1-pixel frames
    {
        let (bgc, fgc) = (
            c("video/x-raw,format=I420,width=1,height=1,framerate=10/1"),
            c("video/x-raw,format=RGBA,width=1,height=1,framerate=10/1"),
        );
        let bg = (0..3)
            .map(|i| i420(&bgc, i * 100 * MS, 100 * MS, 50))
            .collect();
        let fg = (0..4)
            .map(|i| frame(&fgc, Some(i * 100 * MS), Some(100 * MS), |_, _, _| 200))
            .collect();
        let run = Pair::new(&[]).run(bgc, bg, fgc, fg);
        assert!(run.errors().is_empty(), "{:?}", run.errors());
        assert_eq!(run.buffers.len(), 4);
    }
    // buffers without timestamps, and timestamps going backwards
    for pts in [
        vec![None, None, None, None],
        vec![Some(300 * MS), Some(100 * MS), Some(200 * MS), Some(0)],
    ] {
        let (bgc, fgc) = (c(BG_CAPS), c(FG_CAPS));
        let bg = (0..5)
            .map(|i| i420(&bgc, i * 100 * MS, 100 * MS, 10))
            .collect();
        let fg = pts
            .iter()
            .map(|&p| frame(&fgc, p, None, |p, _, _| if p == 0 { 250 } else { 128 }))
            .collect();
        let run = Pair::new(&[]).run(bgc, bg, fgc, fg);
        assert!(run.errors().is_empty(), "{pts:?}: {:?}", run.errors());
        let got: Vec<_> = run
            .buffers
            .iter()
            .map(|b| b.pts().map(|t| t.nseconds()))
            .collect();
        assert_eq!(got, pts, "the fg's own timestamps, in order");
    }
    // a single fg frame
    {
        let (bgc, fgc) = (c(BG_CAPS), c(FG_CAPS));
        let bg = (0..5)
            .map(|i| i420(&bgc, i * 100 * MS, 100 * MS, 10))
            .collect();
        let fg = vec![i420(&fgc, 0, 40 * MS, 250)];
        let run = Pair::new(&[]).run(bgc, bg, fgc, fg);
        assert!(run.errors().is_empty(), "{:?}", run.errors());
        assert_eq!(run.buffers.len(), 1);
    }
    // an interlaced bg under a progressive fg: the output keeps the bg's interlace mode
    {
        let bgc = c("video/x-raw,format=I420,width=64,height=48,framerate=10/1,\
                     interlace-mode=interleaved");
        let fgc = c(FG_CAPS);
        let bg = (0..3)
            .map(|i| i420(&bgc, i * 100 * MS, 100 * MS, 10))
            .collect();
        let fg = (0..3)
            .map(|i| i420(&fgc, i * 40 * MS, 40 * MS, 250))
            .collect();
        let run = Pair::new(&[]).run(bgc, bg, fgc, fg);
        assert!(run.errors().is_empty(), "{:?}", run.errors());
        assert_eq!(run.buffers.len(), 3);
        let s = run.caps.unwrap();
        assert_eq!(
            s.structure(0)
                .unwrap()
                .get::<&str>("interlace-mode")
                .unwrap(),
            "interleaved"
        );
    }
}

#[test]
fn frames_over_16384_pixels_are_not_negotiated_with_a_message() {
    let texts = refused(
        "video/x-raw,format=GRAY8,width=20000,height=8,framerate=10/1",
        20000 * 8,
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("20000x8") && t.contains("16384")),
        "{texts:?}"
    );
}
