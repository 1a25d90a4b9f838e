// SPDX-License-Identifier: MIT

//! The offline run: both pads read (frames stored, or thumbnails only and the inputs read again), the analysis, its conclusions (footprint, mapping, the fallbacks, stretches between caps changes), the fetch pass, the rewinds and the seeks of the bg.

use super::intake::with_luma;
use super::render::{Output, Streaming, StretchOutput, output_pool, plane_layouts};
use super::run::{Effect, Event};
use super::*;
use crate::align::analysis::{self, Alignment, Side};
use crate::align::features::Thumb;
use crate::align::placement::{self, Request};
use crate::align::spatial::{Constraints, Geometry};
use crate::align::stretches::{self, StretchThumbs};
use crate::align::timing;
use crate::composite::Overlay;
use crate::messages::Progress;
use crate::report::{self, Report, Segment};

/// Everything the output and the analysis need, decided once the first pass is read.
#[derive(Clone)]
pub(super) struct Prep {
    pub(super) caps: gst::Caps,
    pub(super) info: gst_video::VideoInfo,
    pub(super) settings: Settings,
    pub(super) geo: Geometry,
    pub(super) fg_info: gst_video::VideoInfo,
    pub(super) bg_info: gst_video::VideoInfo,
    pub(super) fg_times: Vec<u64>,
    pub(super) bg_times: Vec<u64>,
    pub(super) nominal_rate: Option<f64>,
    /// The fg's frames' slots on their grid, where frames were dropped.
    pub(super) fg_slots: Option<Vec<usize>>,
}

/// The second pass of two-pass mode: reading again until the frames refinement needs are in.
pub(super) struct Fetch {
    pub(super) begun: Option<analysis::Begun>,
    /// The fg's stretches between caps changes, begun on their own.
    pub(super) parts: Stretches<analysis::Begun>,
    /// What all of them want.
    pub(super) wanted: analysis::Wanted,
    pub(super) prep: Prep,
    pub(super) started: std::time::Instant,
    /// Analysis time so far (the first pass's part).
    pub(super) spent: std::time::Duration,
}

/// Analyses of the fg's stretches between caps changes (offline), each with its frames.
pub(super) type Stretches<T> = Vec<(std::ops::Range<usize>, Option<T>)>;

/// The last offline alignment, as a report, with how it was made: a flushing seek reuses it.
pub(super) struct Made {
    pub(super) report: Report,
    pub(super) kind: MappedBy,
    pub(super) from: FootprintFrom,
}

impl Settings {
    pub(super) fn region(&self) -> analysis::Region {
        match self.match_region {
            MatchRegion::Footprint => analysis::Region::Footprint,
            MatchRegion::Edges => analysis::Region::Edges(f64::from(self.edge_width.max(1))),
        }
    }

    pub(super) fn constraints(&self) -> Constraints {
        let r = self.request();
        Constraints {
            x: r.x.map(f64::from),
            y: r.y.map(f64::from),
            scale: r.scale,
        }
    }

    pub(super) fn request(&self) -> Request {
        Request {
            x: u32::try_from(self.x).ok(),
            y: u32::try_from(self.y).ok(),
            scale: (self.scale > 0.0).then_some(self.scale),
        }
    }
}

/// A pad's segment, where known.
pub(super) type PadSegment = Option<gst::FormattedSegment<gst::ClockTime>>;
/// A span of stream time: start, and stop (`None`: to the end).
pub(super) type Span = (gst::ClockTime, Option<gst::ClockTime>);

impl VidkompyAlign {
    pub(super) fn resolve_placement(
        &self,
        settings: &Settings,
        fg: &gst_video::VideoInfo,
        bg: &gst_video::VideoInfo,
    ) -> Result<placement::Placement, gst::FlowError> {
        placement::resolve(
            (fg.width(), fg.height()),
            (bg.width(), bg.height()),
            settings.request(),
        )
        .map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{e}"));
            gst::FlowError::Error
        })
    }
}

/// What the analysis decided, for [`VidkompyAlign::settle`].
struct Decided<'a> {
    segs: &'a [Segment],
    alignment: Option<&'a Alignment>,
    costs: Option<&'a [f32]>,
    kind: MappedBy,
    from: FootprintFrom,
    elapsed: std::time::Duration,
}

/// What the analysis runs on, taken out of the state while it runs with no lock held.
pub(super) struct Material {
    pub(super) bg: PadMaterial,
    pub(super) fg: PadMaterial,
    pub(super) features: store::FeatureSpills,
}

/// A pad's part of [`Material`].
pub(super) struct PadMaterial {
    pub(super) thumbs: ThumbStore,
    /// Frames stored (store mode: refinement's full-resolution luma comes from there).
    pub(super) store: PadStore,
    /// Frames fetched in two-pass mode's second pass.
    pub(super) fetched: std::collections::BTreeMap<usize, Arc<Thumb>>,
    pub(super) info: Option<gst_video::VideoInfo>,
}

impl Material {
    fn take(state: &mut State) -> Self {
        let pad = |ps: &mut PadState| PadMaterial {
            thumbs: std::mem::take(&mut ps.thumbs),
            store: std::mem::take(&mut ps.store),
            fetched: std::mem::take(&mut ps.fetched),
            info: ps.info.clone(),
        };
        Material {
            bg: pad(&mut state.bg),
            fg: pad(&mut state.fg),
            features: std::mem::take(&mut state.features),
        }
    }

    fn restore(self, state: &mut State) {
        for (ps, m) in [(&mut state.bg, self.bg), (&mut state.fg, self.fg)] {
            ps.thumbs = m.thumbs;
            ps.store = m.store;
            ps.fetched = m.fetched;
        }
        state.features = self.features;
    }

    fn side(&self, side: Side) -> &PadMaterial {
        match side {
            Side::Bg => &self.bg,
            Side::Fg => &self.fg,
        }
    }
}

/// What the analysis runs.
enum Job {
    /// On the first pass's thumbnails (and stored frames).
    First {
        prep: Box<Prep>,
        stretches: Vec<std::ops::Range<usize>>,
        two_pass: bool,
    },
    /// The fine stages, on the frames the fetch pass read.
    Fine(Box<Fetch>),
}

/// What the analysis found.
#[derive(Debug)]
enum Outcome {
    /// Coarse stages done; refinement wants these frames at full resolution.
    Begun(
        Option<analysis::Begun>,
        Stretches<analysis::Begun>,
        analysis::Wanted,
    ),
    Done(Option<Alignment>, Stretches<Alignment>),
}

impl VidkompyAlign {
    /// Both pads are at EOS after the first pass: output caps, sizes and frame times.
    pub(super) fn prep(&self, state: &State) -> Result<Prep, gst::FlowError> {
        for (name, ps) in [("bg", &state.bg), ("fg", &state.fg)] {
            if ps.times.is_empty() {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Pad {name} reached the end of stream without any frame")
                );
                return Err(gst::FlowError::Error);
            }
        }
        let (Some(bg_caps), Some(bg_info), Some(fg_info)) = (
            state.bg.caps.clone(),
            state.bg.info.clone(),
            state.fg.info.clone(),
        ) else {
            return Err(gst::FlowError::Error);
        };

        let (fg_times, fg_step) = Self::frame_times(&state.fg);
        let (bg_times, bg_step) = Self::frame_times(&state.bg);

        let mut fps = fg_info.fps();
        if fps.numer() == 0 {
            let Some(step) = fg_step else {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "The fg's framerate is 0/1 and cannot be derived from its timestamps \
                         ({} frame(s) without usable timestamps or durations)",
                        state.fg.times.len()
                    )
                );
                return Err(gst::FlowError::Error);
            };
            let (n, d) = timing::rate_from_duration(step);
            fps = gst::Fraction::new(n, d);
            gst::info!(
                CAT,
                imp = self,
                "fg framerate 0/1: derived {n}/{d} from its timestamps"
            );
        }

        let (caps, info) = self.output_caps(bg_caps, fps)?;
        let geo = Geometry {
            fg: (fg_info.width(), fg_info.height()),
            bg: (bg_info.width(), bg_info.height()),
        };
        // A fg with frames dropped (a variable frame rate): each frame's slot on its grid.
        let fg_slots = fg_step.and_then(|step| timing::slots(&fg_times, step));
        if let Some(s) = &fg_slots {
            gst::info!(
                CAT,
                imp = self,
                "the fg's timestamps skip frames: {} frames over {} slots",
                s.len(),
                s.last().map_or(0, |l| l + 1)
            );
        }
        let nominal_rate = match (fg_step, bg_step) {
            (Some(f), Some(b)) if b > 0 => Some(f as f64 / b as f64),
            _ => None,
        };
        Ok(Prep {
            caps,
            info,
            settings: lock(&self.settings).clone(),
            geo,
            fg_info,
            bg_info,
            fg_times,
            bg_times,
            nominal_rate,
            fg_slots,
        })
    }

    /// The output caps: the bg's with the fg's framerate.
    pub(super) fn output_caps(
        &self,
        bg_caps: gst::Caps,
        fps: gst::Fraction,
    ) -> Result<(gst::Caps, gst_video::VideoInfo), gst::FlowError> {
        let mut caps = bg_caps;
        caps.make_mut().set("framerate", fps);
        let info = gst_video::VideoInfo::from_caps(&caps).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Cannot build output caps {caps}: {e}")
            );
            gst::FlowError::Error
        })?;
        Ok((caps, info))
    }

    /// The analysis's input from the first pass.
    fn input<'a>(
        m: &'a Material,
        prep: &'a Prep,
        dots: &'a dyn crate::align::kernels::Kernels,
    ) -> analysis::Input<'a> {
        analysis::Input {
            fg: &m.fg.thumbs,
            bg: &m.bg.thumbs,
            dots,
            spills: &m.features,
            geometry: prep.geo,
            constraints: prep.settings.constraints(),
            nominal_rate: prep.nominal_rate,
            region: prep.settings.region(),
            fg_slots: prep.fg_slots.as_deref(),
        }
    }

    /// Runs `f` (part of the analysis) while another thread posts `analysis` progress.
    pub(super) fn with_ticker<T>(
        &self,
        started: std::time::Instant,
        spent: std::time::Duration,
        f: impl FnOnce() -> T,
    ) -> T {
        let finished = std::sync::atomic::AtomicBool::new(false);
        let analysis_progress = || {
            let elapsed = spent + started.elapsed();
            let elapsed = gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64);
            self.post_progress(Progress::Analysis { elapsed });
        };
        analysis_progress();
        let r = std::thread::scope(|scope| {
            let ticker = scope.spawn(|| {
                let mut last = std::time::Instant::now();
                while !finished.load(std::sync::atomic::Ordering::Acquire) {
                    if last.elapsed() >= PROGRESS_INTERVAL {
                        last = std::time::Instant::now();
                        analysis_progress();
                    }
                    // Woken early when the analysis ends, so that it is not kept waiting.
                    std::thread::park_timeout(std::time::Duration::from_millis(50));
                }
            });
            let r = f();
            finished.store(true, std::sync::atomic::Ordering::Release);
            ticker.thread().unpark();
            r
        });
        analysis_progress();
        r
    }

    /// Footprint and mapping from a loaded report: the output plan.
    pub(super) fn conclude_loaded(
        &self,
        state: &mut State,
        prep: Prep,
        path: &std::path::Path,
        report: &Report,
        started: std::time::Instant,
    ) -> Result<Output, gst::FlowError> {
        let (segs, alignment) = self.use_report(path, report, state, prep.geo)?;
        let mapping = alignment.mapping.clone();
        let elapsed = started.elapsed();
        if let Some((kind, from)) = state.reused {
            // The alignment made before a seek: posted as it was made; its report stands.
            self.post_alignment(
                state,
                &segs,
                Some(&alignment),
                &mapping,
                kind,
                from,
                elapsed,
            );
            return self.finish_prepare(state, prep, &segs, mapping);
        }
        self.post_alignment(
            state,
            &segs,
            Some(&alignment),
            &mapping,
            MappedBy::Loaded,
            FootprintFrom::Report,
            elapsed,
        );
        let costs = Some(alignment.costs.as_slice());
        self.write_report(
            &prep.settings,
            state,
            prep.geo,
            &segs,
            Some(&alignment),
            &mapping,
            costs,
            MappedBy::Loaded,
            FootprintFrom::Report,
            elapsed,
        )?;
        self.finish_prepare(state, prep, &segs, mapping)
    }

    /// The analysis's result (or its absence) decides footprint and mapping: the output plan.
    pub(super) fn conclude(
        &self,
        state: &mut State,
        prep: Prep,
        alignment: Option<Alignment>,
        parts: Stretches<Alignment>,
        elapsed: std::time::Duration,
    ) -> Result<Output, gst::FlowError> {
        let usable = |a: &Alignment| a.mapped();
        if stretches::prefer_stretches(alignment.as_ref(), &parts, &usable) {
            return self.conclude_stretches(state, prep, alignment, parts, elapsed);
        }
        let (fg_info, bg_info, geo) = (&prep.fg_info, &prep.bg_info, prep.geo);
        let spatial_ok = alignment.as_ref().is_some_and(Alignment::placed);
        let temporal_ok = alignment.as_ref().is_some_and(Alignment::mapped);
        let place = match alignment.as_ref().filter(|_| spatial_ok) {
            Some(a) => placement::from_estimate(geo.fg, geo.bg, a.x, a.y, a.scale),
            None => {
                let place = self.resolve_placement(&prep.settings, fg_info, bg_info)?;
                let hint = Self::reframe_hint(&state.fg.changed_at);
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    (
                        "The fg's content was not found in the bg (calibrated spatial confidence \
                         {:.3}, below {}): the fg ({}x{}) is placed at x={} y={} scale={:.4} \
                         ({}x{} px) and mapped by running time; set x, y and scale to place \
                         it{hint}",
                        alignment
                            .as_ref()
                            .map_or(f64::NAN, |a| a.spatial_calibrated),
                        crate::align::MIN_CALIBRATED,
                        fg_info.width(),
                        fg_info.height(),
                        place.x,
                        place.y,
                        place.scale,
                        place.width,
                        place.height
                    )
                );
                place
            }
        };
        let mapping = match alignment.as_ref().filter(|_| temporal_ok) {
            Some(a) => a.mapping.clone(),
            None => {
                if spatial_ok {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Failed,
                        (
                            "fg frames could not be matched to bg frames by content (temporal \
                             confidence {:.3}): mapped by running time",
                            alignment
                                .as_ref()
                                .map_or(f64::NAN, |a| a.temporal_confidence)
                        )
                    );
                }
                timing::map_by_time(&prep.fg_times, &prep.bg_times)
            }
        };
        if let Some(a) = alignment.as_ref().filter(|_| temporal_ok) {
            self.check_fg_changes(&state.fg.changed_at, &a.costs);
        }
        let kind = if temporal_ok {
            MappedBy::Content
        } else {
            MappedBy::RunningTime
        };
        let segs = [Self::segment(0, &place, alignment.as_ref())];
        let from = Self::footprint_from(&prep.settings, spatial_ok);
        let costs = alignment
            .as_ref()
            .filter(|_| temporal_ok)
            .map(|a| a.costs.as_slice());
        let decided = Decided {
            segs: &segs,
            alignment: alignment.as_ref(),
            costs,
            kind,
            from,
            elapsed,
        };
        self.settle(state, prep, decided, mapping)
    }

    /// The analysis decided: posts the alignment, writes the report, lets the analysis's
    /// thumbnails (and their spill files) go, and plans the output.
    fn settle(
        &self,
        state: &mut State,
        prep: Prep,
        d: Decided<'_>,
        mapping: Vec<usize>,
    ) -> Result<Output, gst::FlowError> {
        self.post_alignment(
            state,
            d.segs,
            d.alignment,
            &mapping,
            d.kind,
            d.from,
            d.elapsed,
        );
        self.write_report(
            &prep.settings,
            state,
            prep.geo,
            d.segs,
            d.alignment,
            &mapping,
            d.costs,
            d.kind,
            d.from,
            d.elapsed,
        )?;
        state.bg.thumbs.clear();
        state.fg.thumbs.clear();
        self.finish_prepare(state, prep, d.segs, mapping)
    }

    /// A stretch of fg frames from `from` on at `place`, found by `a` (if anything).
    pub(super) fn segment(
        from: usize,
        place: &placement::Placement,
        a: Option<&Alignment>,
    ) -> Segment {
        let finite = |v: f64| v.is_finite().then_some(v);
        Segment {
            from,
            x: a.map_or(f64::from(place.x), |a| a.x),
            y: a.map_or(f64::from(place.y), |a| a.y),
            scale: a.map_or(place.scale, |a| a.scale),
            footprint: report::Footprint {
                x: place.x,
                y: place.y,
                width: place.width,
                height: place.height,
            },
            spatial_confidence: a.and_then(|a| finite(a.spatial_confidence)),
            mean_cost: a.and_then(|a| finite(a.mean_cost)),
        }
    }

    /// Where a stretch's frames are composited.
    pub(super) fn place_of(s: &Segment) -> placement::Placement {
        let f = s.footprint;
        placement::Placement {
            x: f.x,
            y: f.y,
            width: f.width,
            height: f.height,
            scale: s.scale,
        }
    }

    /// The fg's stretches between caps changes fit clearly better on their own than with the
    /// whole (the fg was re-framed at a change): each stretch takes its own footprint and
    /// mapping (the whole's where its own was not found), joined into one monotonic mapping.
    pub(super) fn conclude_stretches(
        &self,
        state: &mut State,
        prep: Prep,
        whole: Option<Alignment>,
        parts: Stretches<Alignment>,
        elapsed: std::time::Duration,
    ) -> Result<Output, gst::FlowError> {
        let geo = prep.geo;
        let spatial_ok = |a: &&Alignment| a.placed();
        let temporal_ok = |a: &&Alignment| a.mapped();
        let whole_place = whole.as_ref().filter(spatial_ok);
        let whole_map = whole.as_ref().filter(temporal_ok);
        let by_time = timing::map_by_time(&prep.fg_times, &prep.bg_times);
        let mut segs: Vec<Segment> = Vec::with_capacity(parts.len());
        let mut pieces: Vec<Vec<usize>> = Vec::with_capacity(parts.len());
        let mut costs: Vec<f32> = Vec::with_capacity(by_time.len());
        let mut all_by_content = true;
        let mut all_found = true;
        let mut confidence = (0.0, 0usize);
        let mut timings: Vec<(&'static str, f64)> = Vec::new();
        for a in whole
            .iter()
            .chain(parts.iter().filter_map(|p| p.1.as_ref()))
        {
            for &(k, v) in &a.timings.0 {
                match timings.iter_mut().find(|t| t.0 == k) {
                    Some(t) => t.1 += v,
                    None => timings.push((k, v)),
                }
            }
        }
        // The least calibrated confidence of the footprints used.
        let mut calibrated = f64::INFINITY;
        for (r, a) in &parts {
            let own_place = a.as_ref().filter(spatial_ok);
            let own_map = a.as_ref().filter(temporal_ok);
            let found = own_place.or(whole_place);
            if let Some(e) = found {
                calibrated = calibrated.min(e.spatial_calibrated);
            }
            let place = match found {
                Some(e) => placement::from_estimate(geo.fg, geo.bg, e.x, e.y, e.scale),
                None => {
                    all_found = false;
                    let place =
                        self.resolve_placement(&prep.settings, &prep.fg_info, &prep.bg_info)?;
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Failed,
                        (
                            "The content of fg frames {}..{} (between caps changes) was not found \
                             in the bg: they are placed at x={} y={} scale={:.4} and mapped by \
                             running time",
                            r.start,
                            r.end,
                            place.x,
                            place.y,
                            place.scale
                        )
                    );
                    place
                }
            };
            let slice = |v: &[usize]| v.get(r.clone()).map(<[usize]>::to_vec);
            let (piece, piece_costs) = match (own_map, whole_map) {
                (Some(a), _) if a.mapping.len() == r.len() => (a.mapping.clone(), a.costs.clone()),
                (_, Some(w)) if slice(&w.mapping).is_some() && w.costs.len() >= r.end => (
                    slice(&w.mapping).unwrap_or_default(),
                    w.costs[r.clone()].to_vec(),
                ),
                _ => {
                    all_by_content = false;
                    (
                        slice(&by_time).unwrap_or_else(|| vec![0; r.len()]),
                        vec![f32::NAN; r.len()],
                    )
                }
            };
            let used = own_map.or(whole_map);
            if let Some(u) = used {
                confidence.0 += u.temporal_confidence * r.len() as f64;
                confidence.1 += r.len();
            }
            let mut seg = Self::segment(r.start, &place, found);
            let finite: Vec<f64> = piece_costs
                .iter()
                .filter(|c| c.is_finite())
                .map(|&c| f64::from(c))
                .collect();
            seg.mean_cost =
                (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64);
            segs.push(seg);
            pieces.push(piece);
            costs.extend(piece_costs);
        }
        let refs: Vec<&[usize]> = pieces.iter().map(Vec::as_slice).collect();
        let (mapping, held) = stretches::join(&refs);
        if held > 0 {
            gst::info!(
                CAT,
                imp = self,
                "{held} fg frame(s) held on the previous stretch's last bg frame (monotonic)"
            );
        }
        for w in segs.windows(2) {
            if w[0].footprint != w[1].footprint {
                self.post_reframed(&w[0], &w[1]);
            }
        }
        let finite: Vec<f64> = costs
            .iter()
            .filter(|c| c.is_finite())
            .map(|&c| f64::from(c))
            .collect();
        let first = segs[0];
        let joined = Alignment {
            x: first.x,
            y: first.y,
            scale: first.scale,
            spatial_confidence: segs
                .iter()
                .filter_map(|s| s.spatial_confidence)
                .min_by(f64::total_cmp)
                .unwrap_or(f64::NAN),
            spatial_calibrated: if calibrated.is_finite() {
                calibrated
            } else {
                f64::NAN
            },
            mapping: mapping.clone(),
            costs: costs.clone(),
            mean_cost: if finite.is_empty() {
                f64::NAN
            } else {
                finite.iter().sum::<f64>() / finite.len() as f64
            },
            temporal_confidence: if confidence.1 > 0 {
                confidence.0 / confidence.1 as f64
            } else {
                f64::NAN
            },
            rate: None,
            timings: analysis::Timings(timings),
        };
        let kind = if all_by_content {
            MappedBy::Content
        } else {
            MappedBy::RunningTime
        };
        let from = Self::footprint_from(&prep.settings, all_found);
        let decided = Decided {
            segs: &segs,
            alignment: Some(&joined),
            costs: Some(&costs),
            kind,
            from,
            elapsed,
        };
        self.settle(state, prep, decided, mapping)
    }

    /// Stretches of the fg between its caps changes (offline), each analysed on its own too:
    /// the fg may have been re-framed there. None when the user fixed the footprint.
    pub(super) fn fg_stretches(state: &State, prep: &Prep) -> Vec<std::ops::Range<usize>> {
        let c = prep.settings.constraints();
        if c.x.is_some() && c.y.is_some() && c.scale.is_some() {
            return Vec::new();
        }
        stretches::stretches(state.fg.times.len(), &state.fg.changed_at)
    }

    /// The coarse stages, for the whole and for each stretch.
    fn begin_all(
        &self,
        m: &Material,
        prep: &Prep,
        stretches: &[std::ops::Range<usize>],
    ) -> Result<(Option<analysis::Begun>, Stretches<analysis::Begun>), crate::align::Cancelled>
    {
        let backend = self.compute();
        let input = Self::input(m, prep, backend.kernels());
        let whole = analysis::begin(&input, &self.cancel)?;
        let parts = stretches
            .iter()
            .zip(stretches::worth_analysing(stretches))
            .map(|(r, worth)| {
                if !worth {
                    return Ok((r.clone(), None));
                }
                let part = StretchThumbs::new(&m.fg.thumbs, r.clone());
                let input = analysis::Input {
                    fg: &part,
                    fg_slots: None,
                    ..input
                };
                Ok((r.clone(), analysis::begin(&input, &self.cancel)?))
            })
            .collect::<Result<_, _>>()?;
        Ok((whole, parts))
    }

    /// The fine stages, for the whole and for each stretch; `luma` as [`analysis::finish`]
    /// takes it, by frame indices of the whole.
    fn finish_all(
        &self,
        m: &Material,
        prep: &Prep,
        begun: Option<analysis::Begun>,
        parts: Stretches<analysis::Begun>,
        luma: &analysis::Luma<'_>,
    ) -> Result<(Option<Alignment>, Stretches<Alignment>), crate::align::Cancelled> {
        let backend = self.compute();
        let input = Self::input(m, prep, backend.kernels());
        let whole = begun
            .map(|b| analysis::finish(&input, b, luma, &self.cancel))
            .transpose()?;
        let parts = parts
            .into_iter()
            .map(|(r, b)| {
                let part = StretchThumbs::new(&m.fg.thumbs, r.clone());
                let input = analysis::Input {
                    fg: &part,
                    fg_slots: None,
                    ..input
                };
                let from = r.start;
                let luma = |side: Side, i: usize| match side {
                    Side::Fg => luma(side, i + from),
                    Side::Bg => luma(side, i),
                };
                let a = b
                    .map(|b| analysis::finish(&input, b, &luma, &self.cancel))
                    .transpose()?;
                Ok((r, a))
            })
            .collect::<Result<_, _>>()?;
        Ok((whole, parts))
    }

    /// A report to reuse (an `alignment` file, or the alignment made before a seek) decides the
    /// footprint and mapping: the output plan. `None` where there is none, or where the
    /// alignment made before a seek does not cover the frames read (aligned again then).
    fn reuse_loaded(
        &self,
        state: &mut State,
        prep: &Prep,
        started: std::time::Instant,
    ) -> Result<Option<Output>, gst::FlowError> {
        let Some((path, report)) = state.loaded.take() else {
            return Ok(None);
        };
        if state.reused.is_some() && Self::report_by_pts(&report, state).is_none() {
            gst::info!(
                CAT,
                imp = self,
                "the alignment made before the seek does not cover the frames read: aligning \
                 again"
            );
            state.reused = None;
            return Ok(None);
        }
        let out = self.conclude_loaded(state, prep.clone(), &path, &report, started);
        // Kept for the next flush (a seek): its entries are found by timestamp then.
        state.loaded = Some((path, report));
        out.map(Some)
    }

    /// The analysis of what was read: the whole, or (two-pass) its coarse stages, after which
    /// the frames refinement needs are fetched, then its fine stages. It runs with no element
    /// lock held, on what it needs taken out of the state; a flush cancels it at once.
    pub(super) fn analyse(&self) -> Result<Vec<Effect>, gst::FlowError> {
        let started = std::time::Instant::now();
        let (job, material) = {
            let mut guard = self.state();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            let Phase::Analysing { pass, fetch } = &mut state.phase else {
                return Err(gst::FlowError::Flushing);
            };
            let (two_pass, fetch) = (pass.two_pass, fetch.take());
            let job = match fetch {
                Some(fetch) => Job::Fine(fetch),
                None => {
                    let prep = self.prep(state)?;
                    if let Some(out) = self.reuse_loaded(state, &prep, started)? {
                        return self.transition(state, Event::Planned(Box::new(out)));
                    }
                    let stretches = Self::fg_stretches(state, &prep);
                    if !stretches.is_empty() {
                        gst::info!(
                            CAT,
                            imp = self,
                            "the fg's caps changed: its stretches {stretches:?} are analysed on \
                             their own too"
                        );
                    }
                    Job::First {
                        prep: Box::new(prep),
                        stretches,
                        two_pass,
                    }
                }
            };
            (job, Material::take(state))
        };
        #[cfg(debug_assertions)]
        self.test_slow_analysis()?;
        // No element lock held from here.
        let (prep, spent, result) = match job {
            Job::First {
                prep,
                stretches,
                two_pass,
            } => {
                let zero = std::time::Duration::ZERO;
                let result = self.with_ticker(started, zero, || {
                    self.first_analysis(&material, &prep, &stretches, two_pass)
                });
                (*prep, zero, result)
            }
            Job::Fine(fetch) => {
                let Fetch {
                    begun,
                    parts,
                    prep,
                    started: fetching,
                    spent,
                    ..
                } = *fetch;
                gst::debug!(CAT, imp = self, "fetch pass took {:?}", fetching.elapsed());
                // Analysis time: the first pass's part and this one, not the reading between.
                let result = self.with_ticker(started, spent, || {
                    let luma = |side: Side, i: usize| material.side(side).fetched.get(&i).cloned();
                    self.finish_all(&material, &prep, begun, parts, &luma)
                        .map(|(a, p)| Outcome::Done(a, p))
                });
                (prep, spent, result)
            }
        };
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        if !matches!(state.phase, Phase::Analysing { .. }) {
            gst::debug!(
                CAT,
                imp = self,
                "a flush started the run again during the analysis"
            );
            return Err(gst::FlowError::Flushing);
        }
        material.restore(state);
        let result = self.analysed(state, result)?;
        state.bg.fetched.clear();
        state.fg.fetched.clear();
        match result {
            Outcome::Begun(begun, parts, wanted) => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "fetching fg frames {:?} and bg frames {:?} in a second pass",
                    wanted.fg,
                    wanted.bg
                );
                let fetch = Fetch {
                    begun,
                    parts,
                    wanted,
                    prep,
                    started: std::time::Instant::now(),
                    spent: started.elapsed(),
                };
                self.transition(state, Event::NeedsFrames(Box::new(fetch)))
            }
            Outcome::Done(alignment, parts) => {
                let elapsed = spent + started.elapsed();
                let out = self.conclude(state, prep, alignment, parts, elapsed)?;
                self.transition(state, Event::Planned(Box::new(out)))
            }
        }
    }

    /// The analysis of the first pass: all of it where frames are stored; in two-pass mode its
    /// coarse stages, and the fine ones too where they need no frame read again.
    fn first_analysis(
        &self,
        material: &Material,
        prep: &Prep,
        stretches: &[std::ops::Range<usize>],
        two_pass: bool,
    ) -> Result<Outcome, crate::align::Cancelled> {
        let (begun, parts) = self.begin_all(material, prep, stretches)?;
        if !two_pass {
            let luma = |side: Side, i: usize| {
                let m = material.side(side);
                // As two-pass mode fetches it, so that both give the same result.
                let buffer = m.store.buffer(i).ok()?;
                with_luma(&buffer, m.info.as_ref()?, Thumb::full).map(Arc::new)
            };
            let (a, p) = self.finish_all(material, prep, begun, parts, &luma)?;
            return Ok(Outcome::Done(a, p));
        }
        let mut wanted = begun.as_ref().map(|b| b.wanted.clone()).unwrap_or_default();
        for (r, b) in &parts {
            if let Some(b) = b {
                wanted.add(&b.wanted, r.start);
            }
        }
        if !wanted.fg.is_empty() {
            return Ok(Outcome::Begun(begun, parts, wanted));
        }
        let none = |_: Side, _: usize| None;
        let (a, p) = self.finish_all(material, prep, begun, parts, &none)?;
        Ok(Outcome::Done(a, p))
    }

    pub(super) fn analysed<T: std::fmt::Debug>(
        &self,
        state: &State,
        result: Result<T, crate::align::Cancelled>,
    ) -> Result<T, gst::FlowError> {
        let result = result.map_err(|_| {
            gst::debug!(CAT, imp = self, "analysis cancelled");
            gst::FlowError::Flushing
        })?;
        self.thumbs_read(state)?;
        self.device_fallback();
        gst::info!(CAT, imp = self, "analysis: {result:?}");
        Ok(result)
    }

    /// An element error if a thumbnail could not be read back from its spill file during the
    /// analysis (it was analysed as a flat frame, so the result cannot be trusted).
    pub(super) fn thumbs_read(&self, state: &State) -> Result<(), gst::FlowError> {
        for (name, ps) in [("bg", &state.bg), ("fg", &state.fg)] {
            if let Some(why) = ps.thumbs.read_failure() {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("Analysis of pad {name} failed: {why}")
                );
                return Err(gst::FlowError::Error);
            }
        }
        if let Some(why) = state.features.read_failure() {
            gst::element_imp_error!(self, gst::ResourceError::Read, ("Analysis failed: {why}"));
            return Err(gst::FlowError::Error);
        }
        if let Some(why) = state.features.write_failure() {
            gst::warning!(CAT, imp = self, "features kept in memory: {why}");
        }
        Ok(())
    }

    /// The output plan once footprint and mapping are decided.
    pub(super) fn finish_prepare(
        &self,
        state: &State,
        prep: Prep,
        segs: &[Segment],
        mapping: Vec<usize>,
    ) -> Result<Output, gst::FlowError> {
        let (fg_info, bg_info) = (&prep.fg_info, &prep.bg_info);
        let layouts = plane_layouts(bg_info).ok_or(gst::FlowError::NotNegotiated)?;
        let mut pieces = std::collections::VecDeque::with_capacity(segs.len());
        for seg in segs {
            let place = Self::place_of(seg);
            pieces.push_back(StretchOutput {
                from: seg.from,
                converter: self.make_converter(fg_info, bg_info, &place)?,
                overlay: Overlay::new(
                    place.x,
                    place.y,
                    place.width,
                    place.height,
                    (bg_info.width(), bg_info.height()),
                    prep.settings.blend_width,
                ),
            });
        }
        let Some(first) = pieces.pop_front() else {
            return Err(gst::FlowError::Error);
        };
        let StretchOutput {
            overlay, converter, ..
        } = first;
        gst::info!(
            CAT,
            imp = self,
            "{} fg frames over {} bg frames (bg {}..={}), footprints {:?}, converter: {}",
            mapping.len(),
            state.bg.times.len(),
            mapping.first().copied().unwrap_or(0),
            mapping.last().copied().unwrap_or(0),
            segs.iter()
                .map(|s| (s.from, s.footprint))
                .collect::<Vec<_>>(),
            converter.is_some()
        );
        // The line of an alignment reused after a seek covers only what was read: the whole
        // one stays.
        if state.reused.is_none() {
            self.record_line(state, &mapping);
        }
        let pool = output_pool(&prep.caps, &prep.info);
        Ok(Output {
            info: prep.info,
            layouts,
            overlay,
            mapping,
            next: 0,
            converter,
            upcoming: pieces,
            streaming: state
                .pass()
                .is_some_and(|p| p.two_pass)
                .then(Streaming::default),
            pool,
            pending: Some((prep.caps, state.fg.first_segment.clone())),
        })
    }

    /// Whether a pad's upstream can seek in time over a known range: a source that can seek
    /// but does not know where it ends (videotestsrc, some live-like chains) may deliver
    /// nothing when read again.
    fn seekable(pad: &gst_base::AggregatorPad) -> bool {
        let mut q = gst::query::Seeking::new(gst::Format::Time);
        if !pad.peer_query(&mut q) {
            return false;
        }
        let (seekable, _, end) = q.result();
        seekable && end.value() > 0
    }

    /// Whether both inputs can seek (see [`Self::seekable`]).
    pub(super) fn both_seekable(&self) -> bool {
        Self::seekable(&self.bg_pad) && Self::seekable(&self.fg_pad)
    }

    /// Two passes when both inputs can seek (and the analysis needs no frame beyond those a
    /// second pass fetches); otherwise frames are stored.
    pub(super) fn decide_two_pass(&self) -> bool {
        let settings = lock(&self.settings).clone();
        let seekable = Self::seekable;
        let (bg, fg) = (seekable(&self.bg_pad), seekable(&self.fg_pad));
        // Two passes where asked for, and for a loaded alignment unless frames are to be
        // stored (files that can seek are otherwise read once, on the sliding window).
        let asked = match settings.frames {
            FramesMode::ReadAgain => true,
            FramesMode::Windowed => settings.alignment.is_some(),
            FramesMode::Stored => false,
        };
        let two_pass = asked && settings.match_region == MatchRegion::Footprint && bg && fg;
        gst::info!(
            CAT,
            imp = self,
            "offline, {} (frames {:?}, match-region {:?}, seekable: bg {bg}, fg {fg})",
            if two_pass {
                "two passes"
            } else {
                "frames stored"
            },
            settings.frames,
            settings.match_region
        );
        two_pass
    }

    /// The first pass's index of a frame read again: by its PTS where there is one (a seek
    /// need not land on the very first frame), else by counting.
    pub(super) fn pass_index(
        &self,
        ps: &mut PadState,
        buffer: &gst::Buffer,
        name: &str,
    ) -> Result<usize, gst::FlowError> {
        let k = ps.pass_frames;
        let first = |i: usize| ps.times.get(i).and_then(|t| t.pts);
        let index = match buffer.pts() {
            Some(pts) if first(k).is_some() && first(k) != Some(pts) => {
                match ps.times.iter().position(|t| t.pts == Some(pts)) {
                    Some(i) => i,
                    None => {
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Failed,
                            ("Pad {name}: read again from the start, upstream delivered a \
                                 frame at {pts} that the first pass did not have")
                        );
                        return Err(gst::FlowError::Error);
                    }
                }
            }
            _ => k,
        };
        ps.pass_frames = index + 1;
        Ok(index)
    }

    /// One step of the fetch pass: the frames refinement needs are kept at full resolution.
    /// `true` once all are in (or both pads ended).
    pub(super) fn fetch_step(&self, state: &mut State) -> Result<bool, gst::FlowError> {
        let State { phase, bg, fg, .. } = &mut *state;
        let Phase::Fetching { fetch, .. } = phase else {
            return Err(gst::FlowError::Error);
        };
        let wanted = &fetch.wanted;
        for (pad, side, name) in [
            (&self.bg_pad, Side::Bg, "bg"),
            (&self.fg_pad, Side::Fg, "fg"),
        ] {
            let ps = match side {
                Side::Bg => &mut *bg,
                Side::Fg => &mut *fg,
            };
            let Some(buffer) = self.pop(pad, ps)? else {
                continue;
            };
            let i = self.pass_index(ps, &buffer, name)?;
            if !wanted.has(side, i) || ps.fetched.contains_key(&i) {
                continue;
            }
            let Some(luma) = ps
                .info
                .as_ref()
                .and_then(|info| with_luma(&buffer, info, Thumb::full))
            else {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Decode,
                    ("Frame {i} on pad {name} does not match its caps")
                );
                return Err(gst::FlowError::Error);
            };
            ps.fetched.insert(i, Arc::new(luma));
        }
        let complete = |ps: &PadState, w: &[usize]| w.iter().all(|i| ps.fetched.contains_key(i));
        let ended = [&self.bg_pad, &self.fg_pad]
            .iter()
            .all(|p| p.is_eos() && !p.has_buffer());
        let done = ended || (complete(bg, &wanted.bg) && complete(fg, &wanted.fg));
        // fg frames read again, of those the fetch pass reads at most.
        let total = wanted.fg.last().map_or(0, |&i| i as u64 + 1);
        let fetched = (fg.fetched.len() + bg.fetched.len()) as u64;
        let wanted_n = (wanted.fg.len() + wanted.bg.len()) as u64;
        if Self::progress_due(state, done || state.fg.pass_frames <= 1) {
            self.post_progress(Progress::Fetch {
                done: state.fg.pass_frames as u64,
                total,
                frames_fetched: fetched,
                frames_wanted: wanted_n,
            });
        }
        Ok(done)
    }

    /// Where to seek the bg to read its frames `needed` again: from two frames before the
    /// first one's stream time to the next one's after the last (the stop, `None` at the end). `None` when frames
    /// read again could not be told apart by their timestamps (missing or not increasing):
    /// the bg is then read from its start.
    pub(super) fn bg_span(ps: &PadState, needed: std::ops::RangeInclusive<usize>) -> Option<Span> {
        let pts = ps
            .times
            .iter()
            .map(|t| t.pts)
            .collect::<Option<Vec<gst::ClockTime>>>()?;
        if pts.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let seg = ps.first_segment.as_ref()?;
        // Two frames early: a decoder clips the frame that straddles the seek position and
        // gives it that position as its timestamp, which is the next frame's (read again, a
        // frame is known by its timestamp).
        let start = seg.to_stream_time(*pts.get(needed.start().saturating_sub(2))?)?;
        let stop = match pts.get(needed.end() + 1) {
            Some(&p) => Some(seg.to_stream_time(p)?),
            None => None,
        };
        Some((start, stop))
    }

    /// Seeks both inputs back to the start of their first segment (flushing); the bg only to
    /// the frames `bg_needed` (a fg that shows a short stretch of a long bg reads little of
    /// it again).
    pub(super) fn rewind(
        &self,
        bg_needed: Option<std::ops::RangeInclusive<usize>>,
    ) -> Result<(), gst::FlowError> {
        let segments = {
            let mut guard = self.state();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            state.bg.pass_frames = 0;
            state.fg.pass_frames = 0;
            let bg_span = bg_needed.and_then(|r| Self::bg_span(&state.bg, r));
            [
                (state.bg.first_segment.clone(), bg_span),
                (state.fg.first_segment.clone(), None),
            ]
        };
        self.seek_back(segments)
    }

    /// Seeks both inputs (flushing, each its own seqnum, recorded as our own rewind): each to
    /// the stream-time span given (start, stop; `None` at the end) within its `segment`, else
    /// to the segment's start.
    pub(super) fn seek_back(
        &self,
        segments: [(PadSegment, Option<Span>); 2],
    ) -> Result<(), gst::FlowError> {
        let seqnums = [gst::Seqnum::next(), gst::Seqnum::next()];
        *lock(&self.rewind) = Some(Rewind {
            seqnums,
            flushed: [false, false],
            since: std::time::Instant::now(),
        });
        for (((pad, name), (seg, span)), seqnum) in [(&self.bg_pad, "bg"), (&self.fg_pad, "fg")]
            .into_iter()
            .zip(segments)
            .zip(seqnums)
        {
            // Seek positions are stream times (where the segment's `time` says the stream
            // is at its start; most demuxers have time = start, splitmuxsrc does not).
            let seg_start = seg
                .as_ref()
                .and_then(|s| s.start().and_then(|t| s.to_stream_time(t)))
                .unwrap_or(gst::ClockTime::ZERO);
            let seg_stop = seg
                .as_ref()
                .and_then(|s| s.stop().and_then(|t| s.to_stream_time(t)));
            let (start, stop) = match span {
                Some((from, to)) => (
                    Some(from.max(seg_start)),
                    match (to, seg_stop) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                ),
                None => (Some(seg_start), seg_stop),
            };
            let event = gst::event::Seek::builder(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::SeekType::Set,
                start,
                // Set even when open (to the end): an earlier pass may have set a stop.
                gst::SeekType::Set,
                stop,
            )
            .seqnum(seqnum)
            .build();
            gst::debug!(
                CAT,
                imp = self,
                "seeking {name} back to {start:?}..{stop:?}"
            );
            if !pad.push_event(event) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Upstream of pad {name} refused to seek back to the start, although it \
                         said it could seek; set two-pass=false to store frames instead")
                );
                return Err(gst::FlowError::Error);
            }
        }
        Ok(())
    }

    /// Offline, fg frames after a caps change that kept the whole's footprint (their stretch
    /// on its own fitted no better) but match much worse than those before: a warning.
    pub(super) fn check_fg_changes(&self, changed_at: &[usize], costs: &[f32]) {
        let median = |v: &[f32]| {
            let mut v: Vec<f32> = v.iter().copied().filter(|c| c.is_finite()).collect();
            v.sort_by(f32::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let mut bounds: Vec<usize> = changed_at.to_vec();
        bounds.push(costs.len());
        for w in bounds.windows(2) {
            let (k, end) = (w[0].min(costs.len()), w[1].min(costs.len()));
            let (Some(before), Some(after)) = (median(&costs[..k]), median(&costs[k..end])) else {
                continue;
            };
            if after > (3.0 * before).max(before + 0.1) {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    (
                        "The fg's frames from its caps change at frame {k} match the bg much \
                         worse (median cost {after:.3}, {before:.3} before){}",
                        Self::reframe_hint(&[k])
                    )
                );
            }
        }
    }

    /// Words for a warning when the fg's caps changed offline.
    pub(super) fn reframe_hint(changed_at: &[usize]) -> String {
        if changed_at.is_empty() {
            return String::new();
        }
        let at: Vec<String> = changed_at.iter().map(|k| k.to_string()).collect();
        format!(
            ". The fg's caps changed at frame {}: its stretches between changes, analysed on \
             their own, did not fit better (the fg re-framed there to content not in the bg, \
             or stretches too short to align); align each part on its own",
            at.join(", ")
        )
    }

    /// Keeps the alignment's line (fg timestamp -> matched bg timestamp) for later seeks,
    /// replacing what an earlier alignment said of the same fg range.
    pub(super) fn record_line(&self, state: &State, mapping: &[usize]) {
        // In stream time, as seeks are.
        let stream_time = |ps: &PadState, i: usize| {
            let pts = ps.times.get(i)?.pts?;
            match &ps.first_segment {
                Some(s) => s.to_stream_time(pts),
                None => Some(pts),
            }
        };
        let points: Vec<(u64, u64)> = mapping
            .iter()
            .enumerate()
            .filter_map(|(i, &b)| {
                let f = stream_time(&state.fg, i)?;
                let b = stream_time(&state.bg, b)?;
                Some((f.nseconds(), b.nseconds()))
            })
            .collect();
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return;
        };
        let mut line = lock(&self.line);
        let stale: Vec<u64> = line.range(first.0..=last.0).map(|(&k, _)| k).collect();
        for k in stale {
            line.remove(&k);
        }
        let step = points.len().div_ceil(LINE_POINTS).max(1);
        line.extend(points.iter().step_by(step).copied());
        line.insert(last.0, last.1);
        // Bounded: thin the whole line out if seeks made it grow.
        if line.len() > 4 * LINE_POINTS {
            let kept: std::collections::BTreeMap<u64, u64> =
                line.iter().step_by(2).map(|(&k, &v)| (k, v)).collect();
            *line = kept;
        }
    }

    /// One point of the line a windowed run keeps as it commits: fg and bg stream times,
    /// ns (the points past it, from before a seek, are dropped).
    pub(super) fn line_point(&self, fg: u64, bg: u64) {
        let mut line = lock(&self.line);
        // Called at each commit: no allocation when nothing lies past it.
        while let Some(k) = line.range(fg..).next().map(|(&k, _)| k) {
            line.remove(&k);
        }
        line.insert(fg, bg);
        if line.len() > 4 * LINE_POINTS {
            let kept: std::collections::BTreeMap<u64, u64> =
                line.iter().step_by(2).map(|(&k, &v)| (k, v)).collect();
            *line = kept;
        }
    }

    /// Where the bg must be read from for the fg from `at` on: `SEEK_MARGIN` before the
    /// position the last alignment matched there; its start when nothing was aligned yet.
    pub(super) fn bg_position_for(&self, at: gst::ClockTime) -> gst::ClockTime {
        let line = lock(&self.line);
        let t = at.nseconds();
        let matched = match line.range(..=t).next_back() {
            // The bg advances with the fg: the point before `at` bounds the match from below.
            Some((_, &b)) => Some(b),
            None => line
                .range(t..)
                .next()
                .map(|(&f, &b)| b.saturating_sub(f - t)),
        };
        gst::ClockTime::from_nseconds(matched.map_or(0, |b| b.saturating_sub(SEEK_MARGIN)))
    }

    /// Seeks the bg alone (its own seqnum), as a rewind that waits for the bg's flush only.
    pub(super) fn seek_bg(&self, to: gst::ClockTime) -> Result<(), gst::FlowError> {
        let seqnum = gst::Seqnum::next();
        if self.state().is_none() {
            return Err(gst::FlowError::Flushing);
        }
        *lock(&self.rewind) = Some(Rewind {
            seqnums: [seqnum, gst::Seqnum::next()],
            flushed: [false, true],
            since: std::time::Instant::now(),
        });
        let event = gst::event::Seek::builder(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            to,
            gst::SeekType::None,
            gst::ClockTime::NONE,
        )
        .seqnum(seqnum)
        .build();
        gst::debug!(CAT, imp = self, "seeking bg to {to} for the fg's seek");
        if !self.bg_pad.push_event(event) {
            // The bg stays where the seek put it: fg frames whose match lies before are
            // matched to what there is.
            gst::element_imp_warning!(
                self,
                gst::CoreError::Seek,
                ("Upstream of pad bg refused a seek to {to}, where the fg's matches start: fg \
                  frames whose bg frame lies before the seek position are matched to later \
                  ones")
            );
            *lock(&self.rewind) = None;
        }
        Ok(())
    }
}
