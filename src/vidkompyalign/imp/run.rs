// SPDX-License-Identifier: MIT

//! The run as data: what the element is doing ([`Phase`]), and the transitions between phases,
//! each of which returns the effects the element then applies with no lock held (seeks of the
//! inputs, the analysis, the output caps).
//!
//! ```text
//! Undecided ──live──────────────────────────────────────────────────────────> Live
//!     │ offline (after a flushing seek whose matches lie before: Rewinding first)
//!     v
//! Reading ──both ended──> Analysing ──fetch──> Rewinding ──> Fetching ──all in──┐
//!                             ^  │ decided                                     │
//!                             │  ├── stored ──────────────────────> Output     │
//!                             │  └── two-pass ──> Rewinding ──────> Output     │
//!                             └───────────────────────────────────────────────┘
//! ```
//!
//! A flush (an application's flushing seek) puts any phase back to `Undecided`, with the
//! position sought.

use super::offline::Fetch;
use super::render::Output;
use super::reporting::Loaded;
use super::*;
use crate::align::spatial;

#[derive(Default)]
pub(super) struct State {
    pub(super) bg: PadState,
    pub(super) fg: PadState,
    /// What the element is doing.
    pub(super) phase: Phase,
    /// The `alignment` file, read at start; or after a flushing seek the alignment made
    /// before it (`reused`).
    pub(super) loaded: Option<Loaded>,
    /// `loaded` is the alignment made before a seek: posted as it was made, not written.
    pub(super) reused: Option<(MappedBy, FootprintFrom)>,
    /// Where the analysis keeps features past the memory bound.
    pub(super) features: store::FeatureSpills,
    /// Holds a windowed or live run's frames under the memory budget.
    pub(super) holder: store::FrameHolder,
    /// When the last `vidkompy-progress` message was posted.
    pub(super) last_progress: Option<std::time::Instant>,
    /// The fg's duration, as upstream told it when the run was decided.
    pub(super) fg_duration: Option<gst::ClockTime>,
}

impl State {
    pub(super) fn live(&self) -> Option<&live::LiveRun> {
        match &self.phase {
            Phase::Live(l) => Some(l),
            _ => None,
        }
    }

    pub(super) fn live_mut(&mut self) -> Option<&mut live::LiveRun> {
        match &mut self.phase {
            Phase::Live(l) => Some(l),
            _ => None,
        }
    }

    /// The compositing plan in use: offline output's, or the live run's.
    pub(super) fn plan_mut(&mut self) -> Option<&mut Output> {
        match &mut self.phase {
            Phase::Output { output, .. } => Some(output),
            Phase::Live(l) => l.plan.as_mut(),
            _ => None,
        }
    }

    /// How the offline run reads its inputs (`None` before it is decided, and live).
    pub(super) fn pass(&self) -> Option<Pass> {
        match &self.phase {
            Phase::Reading { pass, .. }
            | Phase::Analysing { pass, .. }
            | Phase::Fetching { pass, .. }
            | Phase::Output { pass, .. } => Some(*pass),
            Phase::Rewinding { then } => match then.as_ref() {
                Phase::Reading { pass, .. }
                | Phase::Fetching { pass, .. }
                | Phase::Output { pass, .. } => Some(*pass),
                _ => None,
            },
            Phase::Undecided { .. } | Phase::Live(_) => None,
        }
    }
}

/// A seek of both inputs back to the start, under way.
pub(super) struct Rewind {
    /// One per pad: had both seeks the same, the aggregator would take the flushes for a
    /// seek of its own, stop its task and flush everything.
    pub(super) seqnums: [gst::Seqnum; 2],
    /// FLUSH_STOP of this seek seen on bg and fg.
    pub(super) flushed: [bool; 2],
    pub(super) since: std::time::Instant,
}

/// How an offline run reads its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pass {
    /// The first pass keeps thumbnails only and the inputs are read again (else every frame
    /// is stored).
    pub two_pass: bool,
    /// The inputs are read from a flushing seek's position: a report (or the alignment made
    /// before the seek) is matched by timestamp.
    pub from_seek: bool,
}

/// What the element is doing.
pub(super) enum Phase {
    /// Before the first buffers; after a flushing seek, with the fg position sought.
    Undecided { resume_at: Option<gst::ClockTime> },
    /// Offline: both inputs read to their end (frames stored, or thumbnails only).
    Reading {
        pass: Pass,
        /// The footprint was checked against the first caps of both pads (fail fast, before
        /// reading whole files).
        placement_checked: bool,
    },
    /// Offline: the analysis runs, with no element lock held; its fine stages only, on the
    /// frames fetched, where a fetch pass was made.
    Analysing {
        pass: Pass,
        fetch: Option<Box<Fetch>>,
    },
    /// Offline: our own seek of the inputs is under way (its flushes are awaited); then the
    /// phase it leads to.
    Rewinding { then: Box<Phase> },
    /// Two-pass: the inputs read again until the frames refinement needs are in.
    Fetching { pass: Pass, fetch: Box<Fetch> },
    /// Offline: every fg frame output, in order.
    Output { pass: Pass, output: Box<Output> },
    /// Live (or `force-live`): alignment on a sliding window.
    Live(Box<live::LiveRun>),
}

/// How the run goes, decided from upstream's answers before the first buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Upstream is live or `force-live` is set; `paced` when no upstream is live; `scout`
    /// when both inputs can seek (paced: the first window is read on thumbnails, then read
    /// again from where it starts); after a flushing seek, a scouting run seeks the bg to
    /// `bg_from` first where its matches lie before the fg's position.
    Live {
        paced: bool,
        scout: bool,
        files: bool,
        bg_from: Option<gst::ClockTime>,
    },
    /// Offline, two passes or stored; after a flushing seek, the bg is sought to `bg_from`
    /// first where its matches lie before the fg's position.
    Offline {
        two_pass: bool,
        bg_from: Option<gst::ClockTime>,
    },
}

/// What happened, for [`Phase::on`].
pub(super) enum Event {
    Decided(Decision),
    /// Both pads ended and every frame was taken (reading), or every frame refinement needs
    /// is in (fetching).
    AllRead,
    /// The analysis wants full-resolution frames read again.
    NeedsFrames(Box<Fetch>),
    /// The analysis (or a report) decided: the output plan.
    Planned(Box<Output>),
    /// Our own seek's flushes reached the pads.
    Rewound,
}

/// What the element does after a step, with no lock held.
#[derive(Debug)]
pub(super) enum Effect {
    /// Seek the bg to this position.
    SeekBg(gst::ClockTime),
    /// Run the analysis (what it runs on is in [`Phase::Analysing`]).
    Analyse,
    /// Seek both inputs back to their start, the bg to these frames only.
    Rewind(Option<std::ops::RangeInclusive<usize>>),
    /// Set the output caps and segment.
    StartOutput(gst::Caps, Option<gst::FormattedSegment<gst::ClockTime>>),
    /// Push an output frame.
    Push(gst::Buffer),
    /// One round of the live run (`true`: the aggregator timed out).
    Live(bool),
}

/// An event the phase does not take: a bug, reported as an element error.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Unexpected {
    pub phase: &'static str,
    pub event: &'static str,
}

impl std::fmt::Display for Unexpected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event {} in phase {}", self.event, self.phase)
    }
}

/// The smallest range that holds `frames`.
fn span(frames: &[usize]) -> Option<std::ops::RangeInclusive<usize>> {
    Some(*frames.iter().min()?..=*frames.iter().max()?)
}

impl Default for Phase {
    fn default() -> Self {
        Phase::Undecided { resume_at: None }
    }
}

impl Phase {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Phase::Undecided { .. } => "undecided",
            Phase::Reading { .. } => "reading",
            Phase::Analysing { .. } => "analysing",
            Phase::Rewinding { .. } => "rewinding",
            Phase::Fetching { .. } => "fetching",
            Phase::Output { .. } => "output",
            Phase::Live(_) => "live",
        }
    }

    /// The transition on `event`: the next phase and the effects to apply.
    pub(super) fn on(self, event: Event) -> Result<(Phase, Vec<Effect>), Unexpected> {
        let phase = self.name();
        let unexpected = |event: &'static str| Err(Unexpected { phase, event });
        Ok(match (self, event) {
            (
                Phase::Undecided { .. },
                Event::Decided(Decision::Live {
                    paced,
                    scout,
                    files,
                    bg_from,
                }),
            ) => {
                let run = live::LiveRun::new(paced, scout && paced).for_files(files && paced);
                let live = Phase::Live(Box::new(run));
                match bg_from.filter(|_| scout && paced) {
                    Some(to) => (
                        Phase::Rewinding {
                            then: Box::new(live),
                        },
                        vec![Effect::SeekBg(to)],
                    ),
                    None => (live, Vec::new()),
                }
            }
            (
                Phase::Undecided { resume_at },
                Event::Decided(Decision::Offline { two_pass, bg_from }),
            ) => {
                let reading = Phase::Reading {
                    pass: Pass {
                        two_pass,
                        from_seek: resume_at.is_some(),
                    },
                    placement_checked: false,
                };
                match bg_from {
                    Some(to) => (
                        Phase::Rewinding {
                            then: Box::new(reading),
                        },
                        vec![Effect::SeekBg(to)],
                    ),
                    None => (reading, Vec::new()),
                }
            }
            (Phase::Reading { pass, .. }, Event::AllRead) => (
                Phase::Analysing { pass, fetch: None },
                vec![Effect::Analyse],
            ),
            (Phase::Analysing { pass, .. }, Event::NeedsFrames(fetch)) if pass.two_pass => {
                let bg = span(&fetch.wanted.bg);
                let then = Box::new(Phase::Fetching { pass, fetch });
                (Phase::Rewinding { then }, vec![Effect::Rewind(bg)])
            }
            (Phase::Analysing { pass, .. }, Event::Planned(output)) => {
                let bg = span(&output.mapping);
                let output = Phase::Output { pass, output };
                if pass.two_pass {
                    let then = Box::new(output);
                    (Phase::Rewinding { then }, vec![Effect::Rewind(bg)])
                } else {
                    (output, Vec::new())
                }
            }
            (Phase::Fetching { pass, fetch }, Event::AllRead) => (
                Phase::Analysing {
                    pass,
                    fetch: Some(fetch),
                },
                vec![Effect::Analyse],
            ),
            (Phase::Rewinding { then }, Event::Rewound) => (*then, Vec::new()),
            (_, Event::Decided(_)) => return unexpected("decided"),
            (_, Event::AllRead) => return unexpected("all-read"),
            (_, Event::NeedsFrames(_)) => return unexpected("needs-frames"),
            (_, Event::Planned(_)) => return unexpected("output-planned"),
            (_, Event::Rewound) => return unexpected("rewound"),
        })
    }
}

/// What upstream answered before the first buffers, asked with no element lock held.
pub(super) enum Asked {
    Live {
        paced: bool,
        scout: bool,
        /// Not live and no `force-live`: files that can seek, read once on the sliding
        /// window (the offline default).
        files: bool,
    },
    Offline {
        two_pass: bool,
        /// The fg's duration.
        duration: Option<gst::ClockTime>,
    },
}

impl VidkompyAlign {
    /// Upstream's answers that decide the run, while it is undecided: asked with no element
    /// lock held (the latency takes the aggregator's SRC_LOCK; the rest are queries).
    pub(super) fn ask_upstream(&self) -> Result<Option<Asked>, gst::FlowError> {
        let undecided = self
            .state()
            .as_ref()
            .is_some_and(|s| matches!(s.phase, Phase::Undecided { .. }));
        if !undecided {
            return Ok(None);
        }
        if self.is_live() {
            if let Some(why) = self.live_refusal() {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{why}"));
                return Err(gst::FlowError::Error);
            }
            let paced = !self.upstream_live();
            // `force-live` on inputs that are not live: the aggregator's timeout can come
            // before upstream is linked and answers queries; decide once both pads have a
            // frame (or ended), so that whether they can seek is known.
            let ready = |p: &gst_base::AggregatorPad| p.has_buffer() || p.is_eos();
            if paced && !(ready(&self.bg_pad) && ready(&self.fg_pad)) {
                return Ok(None);
            }
            return Ok(Some(Asked::Live {
                paced,
                scout: paced && self.both_seekable(),
                files: false,
            }));
        }
        // `frames=windowed`: files that can seek are read once, aligned on a sliding window
        // (a loaded alignment is read twice; match-region=edges stores frames).
        let settings = super::lock(&self.settings).clone();
        if settings.frames == super::FramesMode::Windowed
            && settings.alignment.is_none()
            && settings.match_region == super::MatchRegion::Footprint
            && self.both_seekable()
        {
            return Ok(Some(Asked::Live {
                paced: true,
                scout: true,
                files: true,
            }));
        }
        let duration = self.fg_pad.peer_query_duration::<gst::ClockTime>();
        Ok(Some(Asked::Offline {
            two_pass: self.decide_two_pass(),
            duration,
        }))
    }

    /// The phase's transition on `event`; an event the phase does not take is an element
    /// error (a bug).
    pub(super) fn transition(
        &self,
        state: &mut State,
        event: Event,
    ) -> Result<Vec<Effect>, gst::FlowError> {
        let phase = std::mem::take(&mut state.phase);
        let from = phase.name();
        match phase.on(event) {
            Ok((next, effects)) => {
                gst::debug!(CAT, imp = self, "{from} -> {}: {effects:?}", next.name());
                state.phase = next;
                Ok(effects)
            }
            Err(e) => {
                gst::element_imp_error!(self, gst::CoreError::Failed, ("Internal error: {e}"));
                Err(gst::FlowError::Error)
            }
        }
    }

    /// One step of the run under the state lock: takes what the pads hold, moves the phase on,
    /// and returns what to do with no lock held.
    pub(super) fn step(
        &self,
        state: &mut State,
        mut asked: Option<Asked>,
        timeout: bool,
    ) -> Result<Vec<Effect>, gst::FlowError> {
        loop {
            match &mut state.phase {
                Phase::Undecided { resume_at } => {
                    // A flush made a new state after upstream was asked: ask again next round.
                    let Some(asked) = asked.take() else {
                        return Ok(Vec::new());
                    };
                    let resume_at = *resume_at;
                    // The seek put the bg at the fg's position; its match may lie before.
                    let bg_from = || {
                        resume_at
                            .map(|at| (self.bg_position_for(at), at))
                            .filter(|(to, at)| to < at)
                            .map(|(to, _)| to)
                    };
                    let decision = match asked {
                        Asked::Live {
                            paced,
                            scout,
                            files,
                        } => {
                            gst::info!(
                                CAT,
                                imp = self,
                                "{} (paced: {paced}, first window on thumbnails: {scout})",
                                if files {
                                    "frames=windowed on files that can seek: each read once, \
                                     on a sliding window"
                                } else {
                                    "live mode"
                                }
                            );
                            Decision::Live {
                                paced,
                                scout,
                                files,
                                bg_from: if scout { bg_from() } else { None },
                            }
                        }
                        Asked::Offline { two_pass, duration } => {
                            state.fg_duration = duration;
                            Decision::Offline {
                                two_pass,
                                bg_from: bg_from(),
                            }
                        }
                    };
                    let effects = self.transition(state, Event::Decided(decision))?;
                    if !effects.is_empty() {
                        return Ok(effects);
                    }
                }
                Phase::Live(_) => return Ok(vec![Effect::Live(timeout)]),
                Phase::Rewinding { .. } => {
                    if !self.rewound()? {
                        return Ok(Vec::new());
                    }
                    self.transition(state, Event::Rewound)?;
                }
                Phase::Reading {
                    pass,
                    placement_checked,
                } => {
                    let (pass, checked) = (*pass, *placement_checked);
                    if !self.read_step(state, pass, checked)? {
                        return Ok(Vec::new());
                    }
                    return self.transition(state, Event::AllRead);
                }
                Phase::Fetching { .. } => {
                    if !self.fetch_step(state)? {
                        return Ok(Vec::new());
                    }
                    return self.transition(state, Event::AllRead);
                }
                Phase::Output { output, .. } => {
                    if let Some((caps, segment)) = output.pending.take() {
                        return Ok(vec![Effect::StartOutput(caps, segment)]);
                    }
                    let buffer = if output.streaming.is_some() {
                        match self.next_streamed(state)? {
                            Some(b) => b,
                            None => return Ok(Vec::new()),
                        }
                    } else {
                        self.next_stored(state)?
                    };
                    return Ok(vec![Effect::Push(buffer)]);
                }
                // The analysis runs in this thread, as an effect: not seen here.
                Phase::Analysing { .. } => return Ok(Vec::new()),
            }
        }
    }

    /// Applies a step's effects, with no element lock held.
    pub(super) fn apply(&self, effects: Vec<Effect>) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut queue = std::collections::VecDeque::from(effects);
        let mut flow = gst::FlowSuccess::Ok;
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::SeekBg(to) => self.seek_bg(to)?,
                Effect::Analyse => queue.extend(self.analyse()?),
                Effect::Rewind(bg) => self.rewind(bg)?,
                Effect::StartOutput(caps, segment) => flow = self.start_output(caps, segment)?,
                Effect::Push(buffer) => {
                    gst::trace!(CAT, imp = self, "output {buffer:?}");
                    flow = self.obj().finish_buffer(buffer)?;
                }
                Effect::Live(timeout) => flow = self.live_aggregate(timeout)?,
            }
        }
        Ok(flow)
    }

    /// Whether our own seek's flushes reached the pads (its record is then dropped). Upstream
    /// flushes within the seek call as a rule; otherwise its FLUSH_STOP wakes the aggregator.
    pub(super) fn rewound(&self) -> Result<bool, gst::FlowError> {
        let mut rewind = lock(&self.rewind);
        if let Some(r) = rewind.as_ref()
            && r.flushed != [true, true]
        {
            if r.since.elapsed() > REWIND_TIMEOUT {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    (
                        "Upstream did not flush within {} s of the seek back to the start \
                         (flushed: bg {}, fg {})",
                        REWIND_TIMEOUT.as_secs(),
                        r.flushed[0],
                        r.flushed[1]
                    )
                );
                return Err(gst::FlowError::Error);
            }
            gst::trace!(CAT, imp = self, "waiting for the rewind's flush");
            return Ok(false);
        }
        *rewind = None;
        Ok(true)
    }

    /// One step of reading the first pass: `true` once both pads ended and every frame is
    /// taken.
    fn read_step(
        &self,
        state: &mut State,
        pass: Pass,
        placement_checked: bool,
    ) -> Result<bool, gst::FlowError> {
        let store = !pass.two_pass;
        self.take_buffer(&self.bg_pad, &mut state.bg, store)?;
        self.take_buffer(&self.fg_pad, &mut state.fg, store)?;
        self.reading_progress(state, false);
        if !placement_checked && let (Some(fg), Some(bg)) = (&state.fg.info, &state.bg.info) {
            // The footprint must fit at least at the smallest scale searched.
            let mut settings = lock(&self.settings).clone();
            if settings.scale <= 0.0 {
                settings.scale = spatial::DEFAULT_SCALES.0;
            }
            self.resolve_placement(&settings, fg, bg)?;
            if let Phase::Reading {
                placement_checked, ..
            } = &mut state.phase
            {
                *placement_checked = true;
            }
        }
        let done = [&self.bg_pad, &self.fg_pad]
            .iter()
            .all(|p| p.is_eos() && !p.has_buffer());
        if done {
            self.reading_progress(state, true);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    //! The transitions on plain data: no pads, no pipeline.

    use super::super::offline::Prep;
    use super::super::render::plane_layouts;
    use super::*;
    use crate::align::analysis;
    use crate::align::spatial::Geometry;
    use crate::composite::Overlay;

    fn info() -> gst_video::VideoInfo {
        gst::init().expect("GStreamer initialises");
        gst_video::VideoInfo::builder(VideoFormat::I420, 64, 48)
            .build()
            .expect("valid video info")
    }

    fn output(mapping: Vec<usize>) -> Box<Output> {
        let info = info();
        Box::new(Output {
            layouts: plane_layouts(&info).expect("I420 has plane layouts"),
            info,
            overlay: Overlay::new(0, 0, 32, 24, (64, 48), 0),
            mapping,
            next: 0,
            converter: None,
            upcoming: Default::default(),
            streaming: None,
            pending: None,
            pool: None,
        })
    }

    fn fetch(bg: Vec<usize>) -> Box<Fetch> {
        let info = info();
        Box::new(Fetch {
            begun: None,
            parts: Vec::new(),
            wanted: analysis::Wanted { fg: vec![0], bg },
            prep: Prep {
                caps: info.to_caps().expect("caps of a valid info"),
                info: info.clone(),
                settings: Settings::default(),
                geo: Geometry {
                    fg: (32, 24),
                    bg: (64, 48),
                },
                fg_info: info.clone(),
                bg_info: info,
                fg_times: Vec::new(),
                bg_times: Vec::new(),
                nominal_rate: None,
                fg_slots: None,
            },
            started: std::time::Instant::now(),
            spent: std::time::Duration::ZERO,
        })
    }

    fn offline(two_pass: bool, bg_from: Option<gst::ClockTime>) -> Event {
        Event::Decided(Decision::Offline { two_pass, bg_from })
    }

    /// The transition, which must be taken.
    fn on(phase: Phase, event: Event) -> (Phase, Vec<Effect>) {
        let from = phase.name();
        phase
            .on(event)
            .unwrap_or_else(|e| panic!("{from} refused an event: {e}"))
    }

    #[test]
    fn live_is_decided_once_with_its_pacing() {
        let (phase, effects) = on(
            Phase::default(),
            Event::Decided(Decision::Live {
                paced: true,
                scout: true,
                files: false,
                bg_from: None,
            }),
        );
        assert!(effects.is_empty());
        let Phase::Live(run) = &phase else {
            panic!("not live: {}", phase.name());
        };
        assert!(run.is_paced() && run.scouts());
        let e = phase
            .on(offline(true, None))
            .err()
            .expect("a live run is not decided again");
        assert_eq!(e.phase, "live");
    }

    #[test]
    fn stored_frames_are_read_analysed_and_output() {
        let (phase, effects) = on(Phase::default(), offline(false, None));
        assert!(effects.is_empty());
        let pass = Pass {
            two_pass: false,
            from_seek: false,
        };
        assert!(matches!(phase, Phase::Reading { pass: p, placement_checked: false } if p == pass));
        let (phase, effects) = on(phase, Event::AllRead);
        assert!(matches!(phase, Phase::Analysing { fetch: None, .. }));
        assert!(matches!(effects[..], [Effect::Analyse]));
        // Stored frames need no second pass: nothing is fetched, the output starts at once.
        assert!(phase.on(Event::NeedsFrames(fetch(vec![1]))).is_err());
        let (phase, _) = on(Phase::default(), offline(false, None));
        let (phase, _) = on(phase, Event::AllRead);
        let (phase, effects) = on(phase, Event::Planned(output(vec![0, 1, 1, 2])));
        assert!(effects.is_empty());
        assert!(matches!(&phase, Phase::Output { output, .. } if output.mapping == [0, 1, 1, 2]));
    }

    #[test]
    fn two_passes_fetch_then_read_again_the_bg_frames_they_need() {
        let (phase, _) = on(Phase::default(), offline(true, None));
        let (phase, _) = on(phase, Event::AllRead);
        // The refinement wants bg frames 2..=8: both inputs go back, the bg to those only.
        let (phase, effects) = on(phase, Event::NeedsFrames(fetch(vec![5, 2, 8])));
        assert!(matches!(&effects[..], [Effect::Rewind(Some(r))] if *r == (2..=8)));
        assert!(
            matches!(&phase, Phase::Rewinding { then } if matches!(**then, Phase::Fetching { .. }))
        );
        // Nothing moves on until the seek's flushes are in.
        let (phase, effects) = on(phase, Event::Rewound);
        assert!(effects.is_empty());
        let Phase::Fetching { .. } = &phase else {
            panic!("not fetching: {}", phase.name());
        };
        let (phase, effects) = on(phase, Event::AllRead);
        assert!(
            matches!(&phase, Phase::Analysing { fetch: Some(f), .. } if f.wanted.bg == [5, 2, 8])
        );
        assert!(matches!(effects[..], [Effect::Analyse]));
        let (phase, effects) = on(phase, Event::Planned(output(vec![10, 11, 13, 20])));
        assert!(matches!(&effects[..], [Effect::Rewind(Some(r))] if *r == (10..=20)));
        let (phase, effects) = on(phase, Event::Rewound);
        assert!(effects.is_empty());
        assert!(matches!(&phase, Phase::Output { pass, .. } if pass.two_pass && !pass.from_seek));
    }

    #[test]
    fn a_seek_reads_the_bg_from_before_the_position_sought() {
        let at = gst::ClockTime::from_seconds(10);
        let to = gst::ClockTime::from_seconds(7);
        let undecided = Phase::Undecided {
            resume_at: Some(at),
        };
        let (phase, effects) = on(undecided, offline(false, Some(to)));
        assert!(matches!(effects[..], [Effect::SeekBg(t)] if t == to));
        let (phase, _) = on(phase, Event::Rewound);
        assert!(matches!(phase, Phase::Reading { pass, .. } if pass.from_seek && !pass.two_pass));
        // Where the matches do not lie before the position, reading starts at once.
        let undecided = Phase::Undecided {
            resume_at: Some(at),
        };
        let (phase, effects) = on(undecided, offline(true, None));
        assert!(effects.is_empty());
        assert!(matches!(phase, Phase::Reading { pass, .. } if pass.from_seek && pass.two_pass));
        // A windowed run on files seeks its bg first too; a live one cannot.
        for (paced, scout, sought) in [(true, true, true), (false, false, false)] {
            let undecided = Phase::Undecided {
                resume_at: Some(at),
            };
            let decided = Event::Decided(Decision::Live {
                paced,
                scout,
                files: false,
                bg_from: Some(to),
            });
            let (phase, effects) = on(undecided, decided);
            if sought {
                assert!(matches!(effects[..], [Effect::SeekBg(t)] if t == to));
                let (phase, _) = on(phase, Event::Rewound);
                assert!(matches!(phase, Phase::Live(_)));
            } else {
                assert!(effects.is_empty());
                assert!(matches!(phase, Phase::Live(_)));
            }
        }
    }

    #[test]
    fn events_a_phase_does_not_take_are_refused_with_both_names() {
        let (reading, _) = on(Phase::default(), offline(true, None));
        let e = reading.on(Event::Rewound).err().expect("refused");
        assert_eq!(
            e,
            Unexpected {
                phase: "reading",
                event: "rewound"
            }
        );
        let out = Phase::Output {
            pass: Pass {
                two_pass: false,
                from_seek: false,
            },
            output: output(vec![0]),
        };
        let e = out.on(Event::AllRead).err().expect("refused");
        assert_eq!(e.to_string(), "event all-read in phase output");
        let e = Phase::default().on(Event::AllRead).err().expect("refused");
        assert_eq!(e.phase, "undecided");
        let e = Phase::default()
            .on(Event::Planned(output(vec![0])))
            .err()
            .expect("refused");
        assert_eq!(e.event, "output-planned");
    }
}
