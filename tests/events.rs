// SPDX-License-Identifier: MIT

//! Live stream events through the real element, driven by a test clock: a harness per sink pad
//! feeds frames from its own thread, a third pulls the output, and the test advances the clock
//! to each wait the aggregator schedules (its timeouts), so stalls are deterministic and no test
//! sleeps to synchronise. Frames are flat (no content to match): the element maps fg frames by
//! running time, which makes the bg frame each output was composited on checkable by its luma.

use gst::prelude::*;
use gst_check::{Harness, TestClock};
use gstvidkompy::messages::{BgLagging, ElementMessage};
use std::sync::Once;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const MS: u64 = 1_000_000;
const BG_CAPS: &str = "video/x-raw,format=I420,width=64,height=48,framerate=10/1";
const FG_CAPS: &str = "video/x-raw,format=I420,width=16,height=12,framerate=25/1";

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvidkompy::plugin_register_static().unwrap();
    });
}

/// Flat I420 frame of luma `y` at `pts` (ms).
fn flat(caps: &str, pts_ms: u64, dur_ms: u64, y: u8) -> gst::Buffer {
    let info = gst_video::VideoInfo::from_caps(&caps.parse::<gst::Caps>().unwrap()).unwrap();
    let ysize = info.offset()[1];
    let mut data = vec![128u8; info.size()];
    data[..ysize].fill(y);
    let mut buf = gst::Buffer::from_mut_slice(data);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_nseconds(pts_ms * MS));
        b.set_duration(gst::ClockTime::from_nseconds(dur_ms * MS));
    }
    buf
}

/// bg frame `i` (10 fps): luma 10·(i+1).
fn bg_frame(i: u64) -> gst::Buffer {
    flat(BG_CAPS, i * 100, 100, (10 * (i + 1)) as u8)
}

/// fg frame `i` (25 fps), luma 250.
fn fg_frame(i: u64) -> gst::Buffer {
    flat(FG_CAPS, i * 40, 40, 250)
}

/// The bg luma the output shows outside the footprint (the fg sits at 0,0).
fn bg_luma(buf: &gst::Buffer) -> u8 {
    let map = buf.map_readable().unwrap();
    map[30 * 64 + 40]
}

/// What a feeder thread is told to do next.
enum Step {
    Push(gst::Buffer),
    /// New caps mid-stream.
    Caps(&'static str),
    /// Upstream's answer to a flushing seek: flush start and stop with the seek's seqnum,
    /// then a segment from this time (ms).
    Flush(gst::Seqnum, u64),
    Eos,
    /// Tell the test this point was reached.
    Mark,
}

/// An element with a feeding harness per sink pad (each on its own thread, taking steps from a
/// channel), an output harness and the test clock.
struct Live {
    element: gst::Element,
    out: Harness,
    clock: TestClock,
    feed: [mpsc::Sender<Step>; 2],
    marks: mpsc::Receiver<usize>,
    feeders: Vec<thread::JoinHandle<()>>,
    bus: gst::Bus,
    /// Output buffers pulled so far.
    buffers: Vec<gst::Buffer>,
    eos: bool,
    /// Messages posted so far.
    messages: Vec<gst::Message>,
    /// Output caps, in order, with the number of buffers output before each.
    caps: Vec<(usize, gst::Caps)>,
    /// Buffers the src pad pushed before each flush-stop it pushed, counted on the pad itself:
    /// the output harness keeps buffers and events in separate queues, so what it holds when a
    /// flush ends says nothing about which side of the flush a buffer was pushed on.
    flushes: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Live {
    fn new(lookahead_ms: u64) -> Live {
        Self::with_caps(lookahead_ms, BG_CAPS, FG_CAPS)
    }

    fn with_caps(lookahead_ms: u64, bg_caps: &'static str, fg_caps: &'static str) -> Live {
        init();
        let element = gst::ElementFactory::make("vidkompyalign")
            .property("lookahead", lookahead_ms * MS)
            .property("x", 0i32)
            .property("y", 0i32)
            .property("scale", 1.0f64)
            .build()
            .unwrap();
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        let flushes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let pushed = std::sync::atomic::AtomicUsize::new(0);
        let f = flushes.clone();
        element.static_pad("src").unwrap().add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_FLUSH,
            move |_, info| {
                match &info.data {
                    Some(gst::PadProbeData::Buffer(_)) => {
                        pushed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::FlushStop => {
                        f.lock()
                            .unwrap()
                            .push(pushed.load(std::sync::atomic::Ordering::SeqCst));
                    }
                    _ => (),
                }
                gst::PadProbeReturn::Ok
            },
        );
        let mut out = Harness::with_element(&element, None, Some("src"));
        out.use_testclock();
        let clock = out.testclock().unwrap();
        let (mark_tx, marks) = mpsc::channel();
        let mut feeders = Vec::new();
        let feed = [("bg", bg_caps), ("fg", fg_caps)].map(|(pad, caps)| {
            let (tx, rx) = mpsc::channel::<Step>();
            let mut h = Harness::with_element(&element, Some(pad), None);
            let k = usize::from(pad == "fg");
            let mark_tx = mark_tx.clone();
            h.set_src_caps(caps.parse().unwrap());
            feeders.push(thread::spawn(move || {
                for step in rx {
                    match step {
                        Step::Push(b) => {
                            let _ = h.push(b);
                        }
                        Step::Eos => {
                            h.push_event(gst::event::Eos::new());
                        }
                        Step::Caps(c) => {
                            h.push_event(gst::event::Caps::new(&c.parse::<gst::Caps>().unwrap()));
                        }
                        Step::Flush(seqnum, from_ms) => {
                            h.push_event(gst::event::FlushStart::builder().seqnum(seqnum).build());
                            h.push_event(
                                gst::event::FlushStop::builder(true).seqnum(seqnum).build(),
                            );
                            let mut seg = gst::FormattedSegment::<gst::ClockTime>::new();
                            seg.set_start(gst::ClockTime::from_mseconds(from_ms));
                            seg.set_time(gst::ClockTime::from_mseconds(from_ms));
                            h.push_event(gst::event::Segment::builder(&seg).seqnum(seqnum).build());
                        }
                        Step::Mark => {
                            let _ = mark_tx.send(k);
                        }
                    }
                }
                drop(h);
            }));
            tx
        });
        Live {
            element,
            out,
            clock,
            feed,
            marks,
            feeders,
            bus,
            buffers: Vec::new(),
            eos: false,
            messages: Vec::new(),
            caps: Vec::new(),
            flushes,
        }
    }

    fn bg(&self, steps: impl IntoIterator<Item = Step>) {
        for s in steps {
            self.feed[0].send(s).unwrap();
        }
    }

    fn fg(&self, steps: impl IntoIterator<Item = Step>) {
        for s in steps {
            self.feed[1].send(s).unwrap();
        }
    }

    /// One round: releases the aggregator's pending clock wait (advancing the clock to it) and
    /// collects output. Whether anything happened.
    fn step(&mut self) -> bool {
        let mut progress = false;
        if let Some(id) = self.clock.peek_next_pending_id() {
            let t = id.time();
            if t > self.clock.time() {
                self.clock.set_time(t);
            }
            progress |= self.clock.process_next_clock_id().is_some();
        }
        while let Some(b) = self.out.try_pull() {
            self.buffers.push(b);
            progress = true;
        }
        self.messages.extend(self.bus.iter());
        while let Some(e) = self.out.try_pull_event() {
            match e.view() {
                gst::EventView::Eos(_) => self.eos = true,
                gst::EventView::Caps(c) => {
                    // Buffers and events come through separate queues: count buffers pushed
                    // before these caps by their size.
                    self.caps.push((self.buffers.len(), c.caps_owned()));
                }
                _ => (),
            }
        }
        if self.eos {
            // Buffers pushed after this round's pull and before the EOS it saw.
            while let Some(b) = self.out.try_pull() {
                self.buffers.push(b);
            }
        }
        progress
    }

    /// Buffers output before the last flush-stop the element pushed.
    fn before_last_flush(&self) -> usize {
        self.flushes.lock().unwrap().last().copied().unwrap_or(0)
    }

    /// Runs rounds until `done` holds; fails after 20 s (a hang).
    fn until(&mut self, what: &str, mut done: impl FnMut(&mut Live) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {} buffers out, clock at {}, errors {:?}",
                self.buffers.len(),
                self.clock.time(),
                self.errors()
            );
            if !self.step() {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Runs rounds until the feeder of pad `k` (0 bg, 1 fg) has taken every step sent so far.
    fn until_fed(&mut self, k: usize) {
        self.feed[k].send(Step::Mark).unwrap();
        let mut seen = false;
        self.until("a feeder", |s| {
            seen |= s.marks.try_iter().any(|m| m == k);
            seen
        });
    }

    fn errors(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter_map(|m| match m.view() {
                gst::MessageView::Error(e) => Some(format!("{} {:?}", e.error(), e.debug())),
                _ => None,
            })
            .collect()
    }

    /// The `lagging` field of every `vidkompy-bg-lagging` message, in order.
    fn lagging(&self) -> Vec<bool> {
        self.messages
            .iter()
            .filter_map(BgLagging::from_message)
            .map(|m| m.unwrap().lagging)
            .collect()
    }

    fn pts_ms(&self) -> Vec<u64> {
        self.buffers
            .iter()
            .map(|b| b.pts().unwrap().nseconds() / MS)
            .collect()
    }

    fn lumas(&self) -> Vec<u8> {
        self.buffers.iter().map(bg_luma).collect()
    }

    /// Output buffer sizes, in order.
    fn sizes(&self) -> Vec<usize> {
        self.buffers.iter().map(|b| b.size()).collect()
    }

    fn finish(self) {
        let Live {
            element,
            out,
            feed,
            feeders,
            ..
        } = self;
        drop(feed);
        let _ = element.set_state(gst::State::Null);
        for f in feeders {
            f.join().unwrap();
        }
        drop(out);
    }
}

/// Runs `f` on a thread and fails the test if it does not finish within `secs`.
fn within(secs: u64, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => (),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("test thread panicked"),
    }
}

/// The bg luma a fg frame at `pts_ms` shows when mapped by running time onto bg frames
/// `0..n_bg`.
fn expected_luma(pts_ms: u64, n_bg: u64) -> u8 {
    (10 * ((pts_ms / 100).min(n_bg - 1) + 1)) as u8
}

#[test]
fn live_latency_is_the_lookahead_and_output_starts_before_eos() {
    within(40, || {
        let mut t = Live::new(200);
        t.bg((0..10).map(|i| Step::Push(bg_frame(i))));
        t.fg((0..10).map(|i| Step::Push(fg_frame(i))));
        t.until("the first output", |s| !s.buffers.is_empty());
        assert!(!t.eos);
        let mut q = gst::query::Latency::new();
        assert!(t.element.static_pad("src").unwrap().query(&mut q));
        let (live, min, _) = q.result();
        assert!(live);
        assert_eq!(min, gst::ClockTime::from_mseconds(200));
        t.finish();
    });
}

#[test]
fn live_bg_stall_output_continues_with_the_last_bg_frame_then_resumes() {
    within(60, || {
        let mut t = Live::new(200);
        // bg: three frames (0..300 ms), then nothing.
        t.bg((0..3).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        // fg: 0.64 s of frames.
        t.fg((0..16).map(|i| Step::Push(fg_frame(i))));
        t.until("12 fg frames out during the bg stall", |s| {
            s.buffers.len() >= 12
        });
        assert!(!t.eos);
        let lumas = t.lumas();
        let want: Vec<u8> = (0..12).map(|i| expected_luma(i * 40, 3)).collect();
        assert_eq!(&lumas[..12], &want[..], "stalled bg: the last bg frame");
        assert_eq!(t.lagging(), vec![true], "the stall is reported");
        // The bg comes back (frames 3..10), then the fg goes on to its end.
        t.bg((3..10).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        t.bg([Step::Eos]);
        t.fg((16..25).map(|i| Step::Push(fg_frame(i))));
        t.fg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert_eq!(t.pts_ms(), (0..25).map(|i| i * 40).collect::<Vec<_>>());
        let lumas = t.lumas();
        let want: Vec<u8> = (16..25).map(|i| expected_luma(i * 40, 10)).collect();
        assert_eq!(&lumas[16..], &want[..], "alignment resumed with the bg");
        // (The bg's frames coming back one by one may lag again in between.)
        assert_eq!(
            t.lagging().last(),
            Some(&false),
            "the bg's return is reported"
        );
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        t.finish();
    });
}

#[test]
fn live_fg_stall_outputs_nothing_and_does_not_block_the_bg() {
    within(60, || {
        let mut t = Live::new(200);
        t.fg((0..3).map(|i| Step::Push(fg_frame(i))));
        // 4 s of bg while the fg stalls: every push must return.
        t.bg((0..40).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        t.until("the three fg frames", |s| s.buffers.len() >= 3);
        assert_eq!(t.buffers.len(), 3, "nothing output for a stalled fg");
        // The fg returns.
        t.fg((3..10).map(|i| Step::Push(fg_frame(i))));
        t.fg([Step::Eos]);
        t.bg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert_eq!(t.pts_ms(), (0..10).map(|i| i * 40).collect::<Vec<_>>());
        let want: Vec<u8> = (0..10).map(|i| expected_luma(i * 40, 40)).collect();
        assert_eq!(t.lumas(), want);
        assert!(t.lagging().is_empty(), "{:?}", t.lagging());
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        t.finish();
    });
}

#[test]
fn live_fg_ending_first_ends_the_stream_and_releases_the_bg() {
    within(60, || {
        let mut t = Live::new(200);
        t.bg((0..5).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        t.fg((0..10).map(|i| Step::Push(fg_frame(i))));
        t.fg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert_eq!(t.pts_ms(), (0..10).map(|i| i * 40).collect::<Vec<_>>());
        // The bg goes on: its pushes return (refused or taken), they do not block.
        t.bg((5..30).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        t.finish();
    });
}

#[test]
fn live_bg_ending_long_before_the_fg_keeps_its_last_frame() {
    within(60, || {
        let mut t = Live::new(200);
        t.bg((0..2).map(|i| Step::Push(bg_frame(i))));
        t.bg([Step::Eos]);
        t.until_fed(0);
        t.fg((0..30).map(|i| Step::Push(fg_frame(i))));
        t.fg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert_eq!(t.pts_ms(), (0..30).map(|i| i * 40).collect::<Vec<_>>());
        let want: Vec<u8> = (0..30).map(|i| expected_luma(i * 40, 2)).collect();
        assert_eq!(t.lumas(), want);
        assert!(t.lagging().is_empty(), "a bg that ended does not lag");
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        t.finish();
    });
}

/// A live pipeline (two live test sources) whose output is counted, for state changes.
struct Cycling {
    pipeline: gst::Pipeline,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Cycling {
    fn new() -> Cycling {
        init();
        let pipeline = gst::parse::launch(
            "videotestsrc is-live=true pattern=ball \
               ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! a.bg \
             videotestsrc is-live=true pattern=ball \
               ! video/x-raw,format=I420,width=64,height=48,framerate=30/1 ! a.fg \
             vidkompyalign name=a lookahead=100000000 x=8 y=8 ! fakesink name=sink sync=true",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        pipeline
            .by_name("sink")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            });
        Cycling { pipeline, count }
    }

    fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets `state` and waits for the change to complete (an error or 10 s fails).
    fn set(&self, state: gst::State) {
        let r = self.pipeline.set_state(state);
        assert!(r.is_ok(), "set_state({state:?}): {r:?}");
        let (r, cur, _) = self.pipeline.state(gst::ClockTime::from_seconds(10));
        assert!(r.is_ok(), "state change to {state:?}: {r:?}");
        assert_eq!(cur, state);
        self.assert_no_error();
    }

    /// Waits for `n` more output buffers, watching the bus for errors; a timeout says what the
    /// bus said last (QoS drops, latency, state changes), to tell a stall from dropped frames.
    fn more(&self, n: usize) {
        let target = self.count() + n;
        let bus = self.pipeline.bus().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen: std::collections::VecDeque<String> = Default::default();
        while self.count() < target {
            assert!(
                Instant::now() < deadline,
                "no output: {} of {target}; pipeline {:?}; last messages: {seen:?}",
                self.count(),
                self.pipeline.current_state()
            );
            if let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) {
                if m.type_() != gst::MessageType::Error {
                    if seen.len() == 12 {
                        seen.pop_front();
                    }
                    let from = m.src().map(|s| s.name().to_string()).unwrap_or_default();
                    seen.push_back(format!("{:?} from {from}: {:?}", m.type_(), m.structure()));
                    continue;
                }
                panic!("{m:?}");
            }
        }
    }

    fn assert_no_error(&self) {
        let bus = self.pipeline.bus().unwrap();
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("{m:?}");
        }
    }
}

#[test]
fn live_playing_paused_null_cycles_repeatedly_without_hang() {
    within(120, || {
        let p = Cycling::new();
        for _ in 0..3 {
            p.set(gst::State::Playing);
            p.more(10);
            p.set(gst::State::Paused);
            let paused_at = p.count();
            p.set(gst::State::Playing);
            p.more(10);
            assert!(p.count() > paused_at);
            p.set(gst::State::Null);
        }
        // Straight to NULL while frames flow, from a fresh start each time.
        for n in [0, 1, 5] {
            p.set(gst::State::Playing);
            p.more(n);
            p.set(gst::State::Null);
        }
    });
}

#[test]
fn live_inputs_without_framerate_or_durations_are_timed_by_their_timestamps() {
    // As rtpvrawdepay gives them: framerate 0/1 and no buffer durations.
    const BG0: &str = "video/x-raw,format=I420,width=64,height=48,framerate=0/1";
    const FG0: &str = "video/x-raw,format=I420,width=16,height=12,framerate=0/1";
    let undated = |mut b: gst::Buffer| {
        b.make_mut().set_duration(gst::ClockTime::NONE);
        b
    };
    within(60, move || {
        let mut t = Live::with_caps(200, BG0, FG0);
        t.bg((0..10).map(|i| Step::Push(undated(bg_frame(i)))));
        t.until_fed(0);
        t.bg([Step::Eos]);
        t.fg((0..25).map(|i| Step::Push(undated(fg_frame(i)))));
        t.fg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert_eq!(t.pts_ms(), (0..25).map(|i| i * 40).collect::<Vec<_>>());
        let want: Vec<u8> = (0..25).map(|i| expected_luma(i * 40, 10)).collect();
        assert_eq!(t.lumas(), want);
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        t.finish();
    });
}

#[test]
fn live_fg_caps_change_mid_stream_renegotiates_and_goes_on() {
    const FG2: &str = "video/x-raw,format=I420,width=24,height=12,framerate=25/1";
    within(60, || {
        let mut t = Live::new(200);
        t.bg((0..20).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        t.bg([Step::Eos]);
        t.fg((0..10).map(|i| Step::Push(fg_frame(i))));
        t.fg([Step::Caps(FG2)]);
        t.fg((10..20).map(|i| Step::Push(flat(FG2, i * 40, 40, 250))));
        t.fg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        assert_eq!(t.pts_ms(), (0..20).map(|i| i * 40).collect::<Vec<_>>());
        let want: Vec<u8> = (0..20).map(|i| expected_luma(i * 40, 20)).collect();
        assert_eq!(t.lumas(), want);
        // The wider fg covers more of the canvas from frame 10 on (placed at 0,0).
        let covered = |b: &gst::Buffer| {
            let m = b.map_readable().unwrap();
            m[20] == 250
        };
        assert!(t.buffers[..10].iter().all(|b| !covered(b)));
        assert!(t.buffers[10..].iter().all(covered));
        t.finish();
    });
}

#[test]
fn live_bg_caps_change_mid_stream_renegotiates_the_output() {
    const BG2: &str = "video/x-raw,format=I420,width=80,height=48,framerate=10/1";
    within(60, || {
        let mut t = Live::new(200);
        t.bg((0..5).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        t.fg((0..12).map(|i| Step::Push(fg_frame(i))));
        t.until("output on the first canvas", |s| s.buffers.len() >= 5);
        t.bg([Step::Caps(BG2)]);
        t.bg((5..12).map(|i| Step::Push(flat(BG2, i * 100, 100, (10 * (i + 1)) as u8))));
        t.until_fed(0);
        t.bg([Step::Eos]);
        t.fg((12..40).map(|i| Step::Push(fg_frame(i))));
        t.fg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        assert_eq!(t.pts_ms(), (0..40).map(|i| i * 40).collect::<Vec<_>>());
        let widths: Vec<i32> = t
            .caps
            .iter()
            .map(|(_, c)| c.structure(0).unwrap().get::<i32>("width").unwrap())
            .collect();
        assert_eq!(widths, vec![64, 80], "{:?}", t.caps);
        // Every output has the size of one canvas or the other, the new one last.
        let (small, large) = (64 * 48 * 3 / 2, 80 * 48 * 3 / 2);
        let sizes = t.sizes();
        assert!(sizes.iter().all(|&n| n == small || n == large), "{sizes:?}");
        assert_eq!(sizes.last(), Some(&large));
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
        // On the new canvas, each fg frame shows the bg frame at its running time (the first
        // one with the new caps, 500 ms, for those before it).
        for (b, t_ms) in t.buffers.iter().zip(t.pts_ms()) {
            if b.size() == large {
                let m = b.map_readable().unwrap();
                let want = expected_luma(t_ms.max(500), 12);
                assert_eq!(m[30 * 80 + 40], want, "fg frame at {t_ms} ms");
            }
        }
        t.finish();
    });
}

#[test]
fn live_late_output_is_dropped_on_downstream_qos_with_qos_messages() {
    within(60, || {
        let mut t = Live::new(200);
        t.bg((0..30).map(|i| Step::Push(bg_frame(i))));
        t.fg((0..2).map(|i| Step::Push(fg_frame(i))));
        t.until("two outputs", |s| s.buffers.len() >= 2);
        // Downstream saw the frame at 80 ms 200 ms late: frames ending before 480 ms go.
        let qos = gst::event::Qos::new(
            gst::QOSType::Underflow,
            1.0,
            200 * MS as i64,
            gst::ClockTime::from_mseconds(80),
        );
        assert!(t.out.push_upstream_event(qos));
        t.fg((2..25).map(|i| Step::Push(fg_frame(i))));
        t.fg([Step::Eos]);
        t.bg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        let kept: Vec<u64> = [0, 1].into_iter().chain(11..25).map(|i| i * 40).collect();
        assert_eq!(t.pts_ms(), kept);
        let dropped: Vec<u64> = t
            .messages
            .iter()
            .filter_map(|m| match m.view() {
                gst::MessageView::Qos(q) => Some(q.get().3.unwrap().mseconds()),
                _ => None,
            })
            .collect();
        assert_eq!(dropped, (2..11).map(|i| i * 40).collect::<Vec<_>>());
        t.finish();
    });
}

#[test]
fn a_seek_at_another_rate_is_refused_with_a_message() {
    within(60, || {
        let mut t = Live::new(200);
        t.bg((0..3).map(|i| Step::Push(bg_frame(i))));
        t.fg((0..3).map(|i| Step::Push(fg_frame(i))));
        t.until("output", |s| !s.buffers.is_empty());
        let seek = gst::event::Seek::new(
            2.0,
            gst::SeekFlags::FLUSH,
            gst::SeekType::Set,
            gst::ClockTime::ZERO,
            gst::SeekType::None,
            gst::ClockTime::NONE,
        );
        assert!(!t.out.push_upstream_event(seek));
        t.step();
        let warned = t.messages.iter().any(|m| match m.view() {
            gst::MessageView::Warning(w) => w.error().to_string().contains("rate 2"),
            _ => false,
        });
        assert!(warned, "{:?}", t.messages);
        t.finish();
    });
}

#[test]
fn live_flushing_seek_resets_and_resumes_at_the_new_position() {
    within(60, || {
        let mut t = Live::new(200);
        t.bg((0..10).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        t.fg((0..10).map(|i| Step::Push(fg_frame(i))));
        // (Pushes into a full pad block until taken: the flush must not queue behind one.)
        t.until_fed(1);
        t.until("output before the seek", |s| s.buffers.len() >= 4);
        let seek = gst::event::Seek::new(
            1.0,
            gst::SeekFlags::FLUSH,
            gst::SeekType::Set,
            gst::ClockTime::from_seconds(2),
            gst::SeekType::None,
            gst::ClockTime::NONE,
        );
        let seqnum = seek.seqnum();
        assert!(t.out.push_upstream_event(seek));
        // Upstream flushes and goes on from 2 s (its timestamps restart there; running time
        // starts at 0 again).
        t.bg([Step::Flush(seqnum, 2000)]);
        t.fg([Step::Flush(seqnum, 2000)]);
        t.until_fed(0);
        t.until_fed(1);
        let before = t.before_last_flush();
        assert!(before >= 4, "the output before the seek counted: {before}");
        t.bg((20..30).map(|i| Step::Push(bg_frame(i))));
        t.until_fed(0);
        t.bg([Step::Eos]);
        t.fg((50..60).map(|i| Step::Push(fg_frame(i))));
        t.fg([Step::Eos]);
        t.until("EOS", |s| s.eos);
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        let after: Vec<u64> = t.pts_ms()[before..].to_vec();
        assert_eq!(after, (50..60).map(|i| i * 40).collect::<Vec<_>>());
        // Each takes the bg frame at its time: 2.0..2.36 s -> bg frames 20..23.
        let lumas: Vec<u8> = t.lumas()[before..].to_vec();
        let want: Vec<u8> = (50..60)
            .map(|i| (10 * ((i * 40) / 100 + 1)) as u8)
            .collect();
        assert_eq!(lumas, want);
        t.finish();
    });
}
