// SPDX-License-Identifier: MIT

//! What the element tells: its messages (alignment, progress, reframed), the report document and its picture, an alignment file applied.

use super::*;
use crate::align::analysis::Alignment;
use crate::align::spatial::Geometry;
use crate::align::timing;
use crate::messages::{self, ElementMessage, Frames, Progress, Reframed};
use crate::report::{self, Report, Segment};

/// A report to apply: where it came from (a path, or the alignment made before a seek), and
/// its document.
pub(super) type Loaded = (std::path::PathBuf, Report);

impl VidkompyAlign {
    /// The `alignment` file, read at start so that a missing or malformed file fails at once.
    pub(super) fn read_alignment(&self) -> Result<Option<Loaded>, gst::ErrorMessage> {
        let Some(path) = lock(&self.settings).alignment.clone() else {
            return Ok(None);
        };
        let path = std::path::PathBuf::from(path);
        let report = Report::read(&path)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{e}")))?;
        Ok(Some((path, report)))
    }

    /// After a flushing seek: the output resumes with the alignment already made (found
    /// again by timestamp), unless an `alignment` file is applied anyway.
    pub(super) fn reuse_made(&self, state: &mut State) {
        let made = lock(&self.made)
            .as_ref()
            .map(|m| (m.report.clone(), m.kind, m.from));
        if state.loaded.is_none()
            && let Some((report, kind, from)) = made
        {
            state.loaded = Some((
                std::path::PathBuf::from("(the alignment before the seek)"),
                report,
            ));
            state.reused = Some((kind, from));
        }
    }

    /// A `vidkompy-reframed` message (offline and live): the new footprint `(x, y, scale)`
    /// with its confidence, the previous one, and the fg frame where it starts.
    pub(super) fn reframed(
        new: (f64, f64, f64),
        confidence: f64,
        old: (f64, f64, f64),
        fg_frame: usize,
    ) -> Reframed {
        Reframed {
            x: new.0,
            y: new.1,
            scale: new.2,
            previous_x: old.0,
            previous_y: old.1,
            previous_scale: old.2,
            spatial_confidence: confidence,
            fg_frame: fg_frame as u64,
            fg_running_time: None,
            count: None,
        }
    }

    /// Posts `vidkompy-reframed` for a fg re-framed at a caps change, found offline.
    pub(super) fn post_reframed(&self, old: &Segment, new: &Segment) {
        let m = Self::reframed(
            (new.x, new.y, new.scale),
            new.spatial_confidence.unwrap_or(f64::NAN),
            (old.x, old.y, old.scale),
            new.from,
        );
        gst::info!(
            CAT,
            imp = self,
            "the fg was re-framed at its caps change: {m:?}"
        );
        let _ = self.obj().post_message(m.to_message(&*self.obj()));
    }

    /// Debug builds only: lets `tests/passes.rs` stand in for a long analysis. The element
    /// named by `VIDKOMPY_TEST_SLOW_ANALYSIS`, at the first analysis of the process, posts the
    /// analysis's progress and waits until it is cancelled (30 s at most, then a warning).
    #[cfg(debug_assertions)]
    pub(super) fn test_slow_analysis(&self) -> Result<(), gst::FlowError> {
        static SLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let named = std::env::var_os("VIDKOMPY_TEST_SLOW_ANALYSIS")
            .is_some_and(|v| v == self.obj().name().as_str());
        if !named || SLOWED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.post_progress(Progress::Analysis {
            elapsed: gst::ClockTime::ZERO,
        });
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.cancel.is_cancelled() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if self.cancel.is_cancelled() {
            return Err(gst::FlowError::Flushing);
        }
        gst::element_imp_warning!(
            self,
            gst::CoreError::Failed,
            ("VIDKOMPY_TEST_SLOW_ANALYSIS: the analysis was not cancelled within 30 s")
        );
        Ok(())
    }

    /// Debug builds only: the windowed run's [`Self::test_slow_analysis`]. Whether the first
    /// window's search of the element named by `VIDKOMPY_TEST_SLOW_ANALYSIS` waits until it is
    /// cancelled (30 s at most), at the first search of the process; then the analysis's
    /// progress is posted.
    #[cfg(debug_assertions)]
    pub(super) fn test_slow_search(&self) -> bool {
        static SLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let named = std::env::var_os("VIDKOMPY_TEST_SLOW_ANALYSIS")
            .is_some_and(|v| v == self.obj().name().as_str());
        if !named || SLOWED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        self.post_progress(Progress::Analysis {
            elapsed: gst::ClockTime::ZERO,
        });
        true
    }

    /// Posts a `vidkompy-progress` element message.
    pub(super) fn post_progress(&self, p: Progress) {
        gst::debug!(CAT, imp = self, "{p:?}");
        let _ = self.obj().post_message(p.to_message(&*self.obj()));
    }

    /// Whether a progress message is due (and marks it posted).
    pub(super) fn progress_due(state: &mut State, force: bool) -> bool {
        let due = force
            || state
                .last_progress
                .is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL);
        if due {
            state.last_progress = Some(std::time::Instant::now());
        }
        due
    }

    /// Progress of the reading stage.
    pub(super) fn reading_progress(&self, state: &mut State, force: bool) {
        if !Self::progress_due(state, force) {
            return;
        }
        let (fg, bg) = (state.fg.times.len() as u64, state.bg.times.len() as u64);
        // Upstream's duration over the fg's frame duration, when both are known.
        let total = state
            .fg_duration
            .zip(state.fg.info.as_ref().map(|i| i.fps()))
            .filter(|(_, fps)| fps.numer() > 0)
            .and_then(|(d, fps)| {
                d.nseconds()
                    .checked_mul(fps.numer() as u64)
                    .map(|n| n / (fps.denom() as u64 * 1_000_000_000))
            });
        self.post_progress(Progress::Reading {
            done: fg,
            bg_frames: bg,
            total,
        });
    }

    /// Where a footprint came from, `found` in the content or not.
    pub(super) fn footprint_from(settings: &Settings, found: bool) -> FootprintFrom {
        let c = settings.constraints();
        if c.x.is_some() && c.y.is_some() && c.scale.is_some() {
            FootprintFrom::Properties
        } else if found {
            FootprintFrom::Content
        } else {
            FootprintFrom::Fallback
        }
    }

    /// Posts the `vidkompy-alignment` element message.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn post_alignment(
        &self,
        state: &State,
        segs: &[Segment],
        a: Option<&Alignment>,
        mapping: &[usize],
        kind: MappedBy,
        from: FootprintFrom,
        elapsed: std::time::Duration,
    ) {
        let nan = f64::NAN;
        let Some(first) = segs.first() else {
            return;
        };
        let footprint = |f: &report::Footprint| messages::Footprint {
            x: f.x,
            y: f.y,
            width: f.width,
            height: f.height,
        };
        let segments = segs
            .iter()
            .map(|s| messages::Segment {
                fg_frame: s.from as u64,
                x: s.x,
                y: s.y,
                scale: s.scale,
                footprint: footprint(&s.footprint),
                spatial_confidence: s.spatial_confidence.unwrap_or(nan),
                mean_cost: s.mean_cost.unwrap_or(nan),
            })
            .collect();
        let first_bg = mapping.first().copied().unwrap_or(0);
        // The first stretch's footprint (the only one, unless the fg was re-framed).
        let m = messages::Alignment {
            x: first.x,
            y: first.y,
            scale: first.scale,
            footprint: footprint(&first.footprint),
            footprint_from: from,
            spatial_confidence: a.map_or(nan, |a| a.spatial_confidence),
            spatial_calibrated: a.map_or(nan, |a| a.spatial_calibrated),
            temporal_confidence: a.map_or(nan, |a| a.temporal_confidence),
            mean_cost: a.map_or(nan, |a| a.mean_cost),
            first_bg_frame: first_bg as u64,
            last_bg_frame: mapping.last().copied().unwrap_or(0) as u64,
            first_bg_time: Self::stream_time(&state.bg, first_bg),
            fg_frames: mapping.len() as u64,
            rate: a.and_then(|a| a.rate).unwrap_or(nan),
            mapping: kind,
            frames: match (state.live(), state.pass()) {
                (Some(l), _) if l.is_files() => Frames::Windowed,
                (Some(_), _) => Frames::Live,
                (None, Some(p)) if p.two_pass => Frames::ReadAgain,
                _ => Frames::Stored,
            },
            // Windowed and live runs: the most frame bytes held in memory at once.
            stored_bytes: match state.live() {
                Some(_) => state.holder.peak_bytes(),
                None => (state.bg.store.owned_bytes() + state.fg.store.owned_bytes()) as u64,
            },
            spilled_bytes: state.bg.store.spilled_bytes()
                + state.fg.store.spilled_bytes()
                + state.holder.spilled_bytes(),
            spilled_thumbnail_bytes: state.bg.thumbs.spilled_bytes()
                + state.fg.thumbs.spilled_bytes()
                + state.holder.spilled_thumbnail_bytes(),
            spilled_feature_bytes: state.features.spilled_bytes(),
            device: self.compute().name().to_string(),
            analysis_time: gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64),
            lookahead: state
                .live()
                .and_then(|l| l.latency_added(&super::lock(&self.settings)))
                .map(gst::ClockTime::from_nseconds),
            segments,
        };
        // A raise of the lookahead is pending: the message waits for it to be applied (or
        // refused), so that it reports the lookahead in use.
        if state.live().is_some_and(|l| l.raise_pending()) {
            *super::lock(&self.held_alignment) = Some(m);
            return;
        }
        let msg = m.to_message(&*self.obj());
        gst::info!(CAT, imp = self, "{:?}", msg.structure());
        let _ = self.obj().post_message(msg);
    }

    /// The stream time of a pad's frame `i` of the first pass (offline), where it has a
    /// timestamp.
    pub(super) fn stream_time(ps: &PadState, i: usize) -> Option<gst::ClockTime> {
        let pts = ps.times.get(i)?.pts?;
        ps.first_segment.as_ref()?.to_stream_time(pts)
    }

    /// Frame counts and sizes of both streams, as a report describes them.
    pub(super) fn streams(state: &State, geo: Geometry) -> (report::Stream, report::Stream) {
        let s = |(width, height): (u32, u32), frames| report::Stream {
            width,
            height,
            frames,
        };
        (
            s(geo.fg, state.fg.times.len()),
            s(geo.bg, state.bg.times.len()),
        )
    }

    /// Footprint and mapping from a loaded report, checked against the streams.
    pub(super) fn use_report(
        &self,
        path: &std::path::Path,
        report: &Report,
        state: &State,
        geo: Geometry,
    ) -> Result<(Vec<Segment>, Alignment), gst::FlowError> {
        let (mut fg, mut bg) = Self::streams(state, geo);
        // After a seek only part of the streams is read: the report's entries are then found
        // by the frames' timestamps. Otherwise the frame counts must fit (most files start at
        // timestamp 0: timestamps alone do not tell another file from the report's).
        let from_seek = state.pass().is_some_and(|p| p.from_seek);
        let by_pts = if from_seek && (fg.frames, bg.frames) != (report.fg.frames, report.bg.frames)
        {
            Self::report_by_pts(report, state)
        } else {
            None
        };
        if from_seek {
            gst::debug!(
                CAT,
                imp = self,
                "report entries found by timestamp: {}",
                by_pts.is_some()
            );
        }
        if by_pts.is_some() {
            (fg.frames, bg.frames) = (report.fg.frames, report.bg.frames);
            // Read from a seek, the fg may be in caps it changed to later (the report has
            // its first ones): the footprints are in bg pixels, and the fg is converted to them
            // from whatever size it has.
            (fg.width, fg.height) = (report.fg.width, report.fg.height);
        }
        report.check_fits(path, fg, bg).map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{e}"));
            gst::FlowError::Error
        })?;
        let mut segs = if report.segments.is_empty() {
            vec![Segment {
                from: 0,
                x: report.x,
                y: report.y,
                scale: report.scale,
                footprint: report.footprint,
                spatial_confidence: report.spatial_confidence,
                mean_cost: report.mean_cost,
            }]
        } else {
            report.segments.clone()
        };
        if let Some(m) = &by_pts {
            // The segments by the frames read: each read frame's entry says which it is in.
            let mut read: Vec<Segment> = Vec::new();
            let mut last = None;
            for (k, &(e, _)) in m.iter().enumerate() {
                let s = segs.partition_point(|s| s.from <= e).saturating_sub(1);
                if last != Some(s) {
                    read.push(Segment { from: k, ..segs[s] });
                    last = Some(s);
                }
            }
            segs = read;
        }
        let nan = f64::NAN;
        let alignment = Alignment {
            x: report.x,
            y: report.y,
            scale: report.scale,
            spatial_confidence: report.spatial_confidence.unwrap_or(nan),
            spatial_calibrated: report.spatial_calibrated.unwrap_or(nan),
            costs: match &by_pts {
                Some(m) => m
                    .iter()
                    .map(|&(e, _)| report.frames[e].cost.unwrap_or(f32::NAN))
                    .collect(),
                None => report
                    .frames
                    .iter()
                    .map(|e| e.cost.unwrap_or(f32::NAN))
                    .collect(),
            },
            mapping: match &by_pts {
                Some(m) => m.iter().map(|&(_, j)| j).collect(),
                None => report.frames.iter().map(|e| e.bg).collect(),
            },
            mean_cost: report.mean_cost.unwrap_or(nan),
            temporal_confidence: report.temporal_confidence.unwrap_or(nan),
            rate: None,
            timings: Default::default(),
        };
        gst::info!(CAT, imp = self, "alignment loaded from {}", path.display());
        Ok((segs, alignment))
    }

    /// For each fg frame read, its report entry and the bg frame read that has the entry's bg
    /// timestamp (the nearest later one, else the last); `None` unless every fg frame read has
    /// an entry (by timestamp, within half a frame: containers round timestamps, and a source
    /// may offset them differently after a seek) and the bg read reaches back to the first one
    /// needed.
    pub(super) fn report_by_pts(report: &Report, state: &State) -> Option<Vec<(usize, usize)>> {
        let mut entries: Vec<(u64, usize)> = report
            .frames
            .iter()
            .enumerate()
            .filter_map(|(k, e)| Some((e.fg_pts?, k)))
            .collect();
        entries.sort_unstable();
        let keys: Vec<u64> = entries.iter().map(|e| e.0).collect();
        let fg_tol = timing::half_step(&keys);
        let bg_pts: Vec<u64> = state
            .bg
            .times
            .iter()
            .map(|t| t.pts.map(|p| p.nseconds()))
            .collect::<Option<_>>()?;
        if bg_pts.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let bg_tol = timing::half_step(&bg_pts);
        let (&first, &last) = (bg_pts.first()?, bg_pts.last()?);
        let mut out = Vec::with_capacity(state.fg.times.len());
        for t in &state.fg.times {
            let at = timing::nearest(&keys, t.pts?.nseconds(), fg_tol)?;
            let k = entries.get(at)?.1;
            let b = report.frames.get(k)?.bg_pts?;
            if b.saturating_add(bg_tol) < first {
                return None;
            }
            let j = if b > last {
                bg_pts.len() - 1
            } else {
                timing::nearest(&bg_pts, b, bg_tol)
                    .unwrap_or_else(|| bg_pts.partition_point(|&p| p < b))
            };
            out.push((k, j));
        }
        (!out.is_empty()).then_some(out)
    }

    /// Writes the `report` file, when one is asked for.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_report(
        &self,
        settings: &Settings,
        state: &State,
        geo: Geometry,
        segs: &[Segment],
        a: Option<&Alignment>,
        mapping: &[usize],
        costs: Option<&[f32]>,
        kind: MappedBy,
        from: FootprintFrom,
        elapsed: std::time::Duration,
    ) -> Result<(), gst::FlowError> {
        let pts =
            |ps: &PadState, i: usize| ps.times.get(i).and_then(|t| t.pts).map(|t| t.nseconds());
        let frames = mapping
            .iter()
            .enumerate()
            .map(|(i, &j)| report::Entry {
                fg: i,
                fg_pts: pts(&state.fg, i),
                bg: j,
                bg_pts: pts(&state.bg, j),
                cost: costs
                    .and_then(|c| c.get(i).copied())
                    .filter(|c| c.is_finite()),
            })
            .collect();
        let streams = Self::streams(state, geo);
        let report = self.make_report(streams, segs, a, frames, kind, elapsed)?;
        self.write_report_files(settings, &report)?;
        // Kept for a flushing seek: the output after it reuses this alignment.
        *lock(&self.made) = Some(Made { report, kind, from });
        Ok(())
    }

    /// Writes the report (when `report` is set): the first segment's footprint, `a`'s
    /// confidences and timings, and `frames`; and its picture (when `plot` is set).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_report_of(
        &self,
        settings: &Settings,
        (fg, bg): (report::Stream, report::Stream),
        segs: &[Segment],
        a: Option<&Alignment>,
        frames: Vec<report::Entry>,
        kind: MappedBy,
        elapsed: std::time::Duration,
    ) -> Result<(), gst::FlowError> {
        if settings.report.is_none() && settings.plot.is_none() {
            return Ok(());
        }
        let report = self.make_report((fg, bg), segs, a, frames, kind, elapsed)?;
        self.write_report_files(settings, &report)
    }

    /// The report document of an alignment.
    pub(super) fn make_report(
        &self,
        (fg, bg): (report::Stream, report::Stream),
        segs: &[Segment],
        a: Option<&Alignment>,
        frames: Vec<report::Entry>,
        kind: MappedBy,
        elapsed: std::time::Duration,
    ) -> Result<Report, gst::FlowError> {
        let Some(first) = segs.first() else {
            return Err(gst::FlowError::Error);
        };
        let finite = |v: f64| v.is_finite().then_some(v);
        Ok(Report {
            version: report::VERSION,
            fg,
            bg,
            // The first stretch's footprint (the only one, unless the fg was re-framed).
            x: first.x,
            y: first.y,
            scale: first.scale,
            footprint: first.footprint,
            spatial_confidence: a.and_then(|a| finite(a.spatial_confidence)),
            spatial_calibrated: a.and_then(|a| finite(a.spatial_calibrated)),
            temporal_confidence: a.and_then(|a| finite(a.temporal_confidence)),
            mean_cost: a.and_then(|a| finite(a.mean_cost)),
            mapping: kind.to_string(),
            device: self.compute().name().to_string(),
            analysis_seconds: elapsed.as_secs_f64(),
            timings: a
                .map(|a| {
                    a.timings
                        .0
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect()
                })
                .unwrap_or_default(),
            segments: if segs.len() > 1 {
                segs.to_vec()
            } else {
                Vec::new()
            },
            frames,
        })
    }

    /// Writes `report` where `report` says, and its picture where `plot` says.
    pub(super) fn write_report_files(
        &self,
        settings: &Settings,
        report: &Report,
    ) -> Result<(), gst::FlowError> {
        if let Some(path) = settings.report.as_deref() {
            let path = std::path::Path::new(path);
            report.write(path).map_err(|e| {
                gst::element_imp_error!(self, gst::ResourceError::OpenWrite, ("{e}"));
                gst::FlowError::Error
            })?;
            gst::info!(CAT, imp = self, "report written to {}", path.display());
        }
        if let Some(path) = settings.plot.as_deref() {
            let path = std::path::Path::new(path);
            crate::plot::write_svg(report, path).map_err(|e| {
                gst::element_imp_error!(self, gst::ResourceError::OpenWrite, ("{e}"));
                gst::FlowError::Error
            })?;
            gst::info!(CAT, imp = self, "plot drawn into {}", path.display());
        }
        Ok(())
    }

    /// Posts output progress for fg frame `i` when due.
    pub(super) fn output_progress(&self, state: &mut State, i: usize, total: usize) {
        if Self::progress_due(state, i == 0 || i + 1 == total) {
            self.post_progress(Progress::Output {
                done: (i + 1) as u64,
                total: total as u64,
            });
        }
    }
}
