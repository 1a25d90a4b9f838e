// SPDX-License-Identifier: MIT

//! Pad intake: caps (what each pad takes, changes mid-stream) and buffers (converted to a pad's first caps, unclipped, recorded).

use super::render::plane_layouts;
use super::*;
use crate::align::features::{FrameView, LumaLayout, Thumb};
use crate::align::timing;
use crate::store::{FrameTimes, HeldFrame};

#[derive(Debug, Default)]
pub(super) struct PadState {
    pub(super) caps: Option<gst::Caps>,
    pub(super) info: Option<gst_video::VideoInfo>,
    /// The frames themselves, when they are stored (inputs that cannot seek).
    pub(super) store: PadStore,
    /// A thumbnail of every frame, for the analysis (in memory up to a bound, then in a
    /// spill file).
    pub(super) thumbs: ThumbStore,
    /// Times of every frame of the first pass.
    pub(super) times: Vec<FrameTimes>,
    /// The segment of the first pass (where a rewind seeks back to).
    pub(super) first_segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    /// Frames seen in the current pass after a rewind.
    pub(super) pass_frames: usize,
    /// Full-resolution luma of the frames refinement needs, fetched in a second pass.
    pub(super) fetched: std::collections::BTreeMap<usize, Arc<Thumb>>,
    /// Offline, after a caps change: frames arrive in these caps and are converted to the
    /// first ones (`info`), which the analysis and the output keep.
    pub(super) incoming: Option<Incoming>,
    /// Frames (first pass) at which the caps changed.
    pub(super) changed_at: Vec<usize>,
}

/// Converts a pad's frames from caps that changed mid-stream to its first caps.
pub(super) struct Incoming {
    pub(super) info: gst_video::VideoInfo,
    pub(super) converter: gst_video::VideoConverter,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A frame that a decoder clipped to the start of an accurate seek's segment (its timestamp
/// moved up to the segment's start, its duration shortened) with its own timestamp and duration
/// again (at the caps' frame rate): its span holds the position sought, and the output shows it
/// as an unseeked run does.
pub(super) fn unclipped(
    mut buffer: gst::Buffer,
    segment: Option<&gst::FormattedSegment<gst::ClockTime>>,
    info: &gst_video::VideoInfo,
) -> gst::Buffer {
    let fps = info.fps();
    let (Some(pts), Some(duration), Some(start)) = (
        buffer.pts(),
        buffer.duration(),
        segment.and_then(|s| s.start()),
    ) else {
        return buffer;
    };
    if fps.numer() <= 0 || pts != start {
        return buffer;
    }
    // As decoders compute it (gst_util_uint64_scale, rounding down).
    let Some(frame) = gst::ClockTime::SECOND.mul_div_floor(fps.denom() as u64, fps.numer() as u64)
    else {
        return buffer;
    };
    // Shorter than a frame by more than the rounding of container timestamps.
    if duration + gst::ClockTime::MSECOND >= frame {
        return buffer;
    }
    let Some(own) = (pts + duration).checked_sub(frame) else {
        return buffer;
    };
    let b = buffer.make_mut();
    b.set_pts(own);
    b.set_duration(frame);
    buffer
}

/// How to read luma from plane 0 of frames of this format.
pub(super) fn luma_layout(info: &gst_video::VideoInfo) -> Option<LumaLayout> {
    let fi = info.format_info();
    let (ps, off) = (fi.pixel_stride(), fi.poffset());
    if fi.is_rgb() {
        (fi.n_components() >= 3 && fi.plane()[..3].iter().all(|&p| p == 0)).then(|| {
            LumaLayout::Rgb {
                pixel_stride: ps[0] as usize,
                r: off[0] as usize,
                g: off[1] as usize,
                b: off[2] as usize,
            }
        })
    } else {
        (fi.plane()[0] == 0).then(|| LumaLayout::Luma {
            pixel_stride: ps[0] as usize,
            offset: off[0] as usize,
        })
    }
}

/// Runs `f` on a view of the luma of `buffer`.
pub(super) fn with_luma<T>(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    f: impl FnOnce(&FrameView<'_>) -> Option<T>,
) -> Option<T> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let view = FrameView {
        data: frame.plane_data(0).ok()?,
        stride: usize::try_from(frame.plane_stride()[0]).ok()?,
        width: info.width() as usize,
        height: info.height() as usize,
        layout: luma_layout(info)?,
    };
    f(&view)
}

/// A held frame's luma plane, read in place by the analysis (the frame kept alive while the
/// thumbnail is): rows without padding (stride = width, one sample per pixel).
struct HeldLuma {
    frame: gst_video::VideoFrame<gst_video::video_frame::Readable>,
    len: usize,
}

impl AsRef<[u8]> for HeldLuma {
    fn as_ref(&self) -> &[u8] {
        self.frame
            .plane_data(0)
            .ok()
            .and_then(|p| p.get(..self.len))
            .unwrap_or(&[])
    }
}

/// The full-resolution luma of a held frame for the analysis: read in place where its plane has
/// no padding, else copied ([`Thumb::full`]).
pub(super) fn full_luma(buffer: &gst::Buffer, info: &gst_video::VideoInfo) -> Option<Arc<Thumb>> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let in_place = matches!(
        luma_layout(info),
        Some(LumaLayout::Luma {
            pixel_stride: 1,
            offset: 0
        })
    );
    if in_place
        && let Ok(frame) = gst_video::VideoFrame::from_buffer_readable(buffer.clone(), info)
        && usize::try_from(frame.plane_stride()[0]).ok() == Some(w)
        && let Some(t) = Thumb::shared(w, h, Arc::new(HeldLuma { frame, len: w * h }))
    {
        return Some(Arc::new(t));
    }
    with_luma(buffer, info, Thumb::full).map(Arc::new)
}

/// The full-resolution luma of a held frame: read in place when it is in memory, else only its
/// first plane read back from the spill file (where it lies in the default layout of `info`).
pub(super) fn held_luma(frame: &HeldFrame, info: &gst_video::VideoInfo) -> Option<Arc<Thumb>> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = usize::try_from(*info.stride().first()?).ok()?;
    let offset = *info.offset().first()?;
    let Some(bytes) = frame.read_spilled(offset, stride.checked_mul(h)?) else {
        return full_luma(&frame.buffer().ok()?, info);
    };
    let bytes = bytes.ok()?;
    let layout = luma_layout(info)?;
    if stride == w
        && matches!(
            layout,
            LumaLayout::Luma {
                pixel_stride: 1,
                offset: 0
            }
        )
    {
        return Thumb::shared(w, h, Arc::new(bytes)).map(Arc::new);
    }
    let view = FrameView {
        data: &bytes,
        stride,
        width: w,
        height: h,
        layout,
    };
    Thumb::full(&view).map(Arc::new)
}

impl VidkompyAlign {
    pub(super) fn sink_caps(
        &self,
        pad: &gst_base::AggregatorPad,
        filter: Option<&gst::Caps>,
    ) -> gst::Caps {
        let templ = pad.pad_template_caps();
        let mut caps = if *pad == self.bg_pad {
            // The output takes every field of the bg's caps but the framerate: let downstream
            // constrain the bg, without its framerate (which is the fg's).
            let mut peer = self.obj().src_pad().peer_query_caps(None);
            {
                let peer = peer.make_mut();
                for s in peer.iter_mut() {
                    s.remove_field("framerate");
                }
            }
            let caps = templ.intersect_with_mode(&peer, gst::CapsIntersectMode::First);
            if caps.is_empty() { templ } else { caps }
        } else {
            // Any format is converted; prefer the bg's, which needs no conversion (read from a
            // lock of its own: this query may come while the analysis holds the state).
            let bg_format = *lock(&self.bg_format);
            match bg_format {
                Some(f) => {
                    let mut pref = gst_video::VideoCapsBuilder::new().format(f).build();
                    pref.merge(templ);
                    pref
                }
                None => templ,
            }
        };
        if let Some(filter) = filter {
            caps = filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First);
        }
        caps
    }

    /// Why `caps` cannot go on `pad`, in words.
    pub(super) fn refusal_reason(
        &self,
        pad: &gst_base::AggregatorPad,
        caps: &gst::CapsRef,
    ) -> String {
        let Some(s) = caps.structure(0) else {
            return "empty caps".into();
        };
        if s.name() != "video/x-raw" {
            return format!("{} is not raw video", s.name());
        }
        if let Some(f) = caps.features(0)
            && !f.is_any()
            && f.size() > 0
            && !f.contains("memory:SystemMemory")
        {
            return format!("memory {f} is not supported, only system memory");
        }
        if let Ok(fmt) = s.get::<&str>("format") {
            let supported = FORMATS.iter().any(|f| f.to_str() == fmt);
            if !supported {
                let list: Vec<&str> = FORMATS.iter().map(|f| f.to_str().as_str()).collect();
                return format!(
                    "format {fmt} is not supported (supported: {})",
                    list.join(", ")
                );
            }
        }
        if let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height"))
            && (w > MAX_SIDE || h > MAX_SIDE)
        {
            return format!(
                "{w}x{h} is larger than {MAX_SIDE} px on a side, the largest supported"
            );
        }
        if *pad == self.bg_pad {
            "downstream does not accept these caps".into()
        } else {
            "caps outside the pad template".into()
        }
    }

    pub(super) fn handle_caps(&self, pad: &gst_base::AggregatorPad, caps: gst::Caps) -> bool {
        let name = self.pad_name(pad);
        let info = match gst_video::VideoInfo::from_caps(&caps) {
            Ok(i) => i,
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Invalid caps on pad {name}: {e} ({caps})")
                );
                return false;
            }
        };
        if plane_layouts(&info).is_none() || info.width() == 0 || info.height() == 0 {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Unsupported video on pad {name}: {caps}")
            );
            return false;
        }
        let max_memory = lock(&self.settings).max_memory;
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return false;
        };
        // The frame share of max-memory must hold what one output needs at once: a bg and a
        // fg frame (in the caps each pad has now; this one's new ones).
        let other = if name == "bg" { &state.fg } else { &state.bg };
        let other_bytes = other
            .incoming
            .as_ref()
            .map(|i| &i.info)
            .or(other.info.as_ref())
            .map_or(0, |i| i.size() as u64);
        let needed = store::Shares::min_memory(info.size() as u64 + other_bytes);
        if max_memory > 0 && max_memory < needed {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Settings,
                (
                    "max-memory={max_memory} is too small for these inputs: a bg and a fg \
                     frame ({} bytes with {name}'s {}x{} {:?}) need max-memory={needed} or \
                     more (0 = unlimited)",
                    info.size() as u64 + other_bytes,
                    info.width(),
                    info.height(),
                    info.format()
                )
            );
            return false;
        }
        let differs = |old: &gst_video::VideoInfo| {
            old.format() != info.format()
                || old.width() != info.width()
                || old.height() != info.height()
                || old.interlace_mode() != info.interlace_mode()
        };
        let changed = {
            let ps = if name == "bg" { &state.bg } else { &state.fg };
            // Against the caps frames arrive in now: after A -> B, a return to A is a change.
            let current = ps.incoming.as_ref().map(|i| &i.info).or(ps.info.as_ref());
            current.is_some_and(differs)
        };
        // A paced run (inputs that are not live: files) keeps offline's behaviour: frames
        // converted to the pad's first caps, a fg stretch of its own from the change.
        let paced = state.live().is_some_and(|l| l.is_paced());
        if changed && paced {
            drop(guard);
            match self.scout_abandoned(name) {
                Ok(abandoned) => {
                    if !abandoned && name == "fg" {
                        self.live_stretch_from_here();
                    }
                }
                Err(e) => {
                    gst::warning!(CAT, imp = self, "caps change on {name}: {e:?}");
                    if e != gst::FlowError::Flushing {
                        return false;
                    }
                }
            }
            guard = self.state();
        } else if changed && state.live().is_some() {
            // Serialized events reach this in the source pad's task, in order with buffers:
            // the frames held came with the old caps and are output before these are stored.
            drop(guard);
            if let Err(e) = self.live_caps_change(name) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "draining for a caps change on {name}: {e:?}"
                );
                if e != gst::FlowError::Flushing {
                    return false;
                }
            }
            guard = self.state();
        }
        let Some(state) = guard.as_mut() else {
            return false;
        };
        let offline = state.live().is_none();
        // Offline, the first caps are those of the first frame recorded; paced, of the first
        // caps event.
        let converting = |ps: &PadState| (offline && !ps.times.is_empty()) || paced;
        let first_pass = lock(&self.rewind).is_none()
            && matches!(state.phase, Phase::Undecided { .. } | Phase::Reading { .. });
        let ps = if name == "bg" {
            &mut state.bg
        } else {
            &mut state.fg
        };
        let back_to_first = ps.info.as_ref().is_some_and(|first| !differs(first));
        if changed && converting(ps) && back_to_first {
            // Frames arrive in the first caps again (A -> B -> A): no conversion, and a
            // stretch of its own from here, as at any change.
            gst::info!(
                CAT,
                imp = self,
                "{name} caps back to the first ones after {} frames: {caps}",
                ps.times.len()
            );
            if first_pass {
                ps.changed_at.push(ps.times.len());
            }
        } else if changed && converting(ps) {
            // Offline the analysis and the output plan span the whole stream in its first
            // caps: later frames are converted to them.
            let Some(first) = ps.info.clone() else {
                return false;
            };
            let frames = ps.times.len();
            gst::info!(
                CAT,
                imp = self,
                "{name} caps changed after {frames} frames: {caps}"
            );
            let converter = gst_video::VideoConverter::new(&info, &first, None);
            drop(guard);
            let converter = match converter {
                Ok(c) => c,
                Err(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("Caps changed mid-stream on pad {name} to {caps}, which cannot be \
                          converted to its first caps: {e}")
                    );
                    return false;
                }
            };
            gst::element_imp_info!(
                self,
                gst::CoreError::Negotiation,
                (
                    "Caps changed on pad {name} after {frames} frames: {}x{} {:?} -> {}x{} {:?}; \
                     its frames are converted to the first caps, which the alignment and the \
                     output keep",
                    first.width(),
                    first.height(),
                    first.format(),
                    info.width(),
                    info.height(),
                    info.format()
                )
            );
            if let Some(state) = self.state().as_mut() {
                let ps = if name == "bg" {
                    &mut state.bg
                } else {
                    &mut state.fg
                };
                ps.incoming = Some(Incoming { info, converter });
                if first_pass {
                    ps.changed_at.push(frames);
                }
            }
            return true;
        }
        gst::debug!(CAT, imp = self, "{name} caps {caps}");
        if name == "bg" {
            *lock(&self.bg_format) = Some(info.format());
        }
        ps.caps = Some(caps);
        ps.info = Some(info);
        ps.incoming = None;
        true
    }

    /// The next buffer of `pad` in the pad's first caps (offline: converted when the caps
    /// changed since).
    pub(super) fn pop(
        &self,
        pad: &gst_base::AggregatorPad,
        ps: &PadState,
    ) -> Result<Option<gst::Buffer>, gst::FlowError> {
        let Some(buffer) = pad.pop_buffer() else {
            return Ok(None);
        };
        let buffer = match ps.incoming.as_ref().map(|i| &i.info).or(ps.info.as_ref()) {
            Some(info) => {
                let segment = pad.segment().downcast::<gst::ClockTime>().ok();
                unclipped(buffer, segment.as_ref(), info)
            }
            None => buffer,
        };
        let (Some(inc), Some(first)) = (ps.incoming.as_ref(), ps.info.as_ref()) else {
            return Ok(Some(buffer));
        };
        let name = self.pad_name(pad);
        let fail = || {
            gst::element_imp_error!(
                self,
                gst::StreamError::Decode,
                (
                    "A frame on pad {name} does not match its caps ({:?})",
                    inc.info
                )
            );
            gst::FlowError::Error
        };
        let size = first.size();
        let mut out = gst::Buffer::with_size(size).map_err(|_| fail())?;
        {
            let out_ref = out.get_mut().ok_or_else(fail)?;
            let _ = buffer.copy_into(
                out_ref,
                gst::BufferCopyFlags::TIMESTAMPS | gst::BufferCopyFlags::FLAGS,
                ..,
            );
            let src = gst_video::VideoFrameRef::from_buffer_ref_readable(&buffer, &inc.info)
                .map_err(|_| fail())?;
            let mut dst = gst_video::VideoFrameRef::from_buffer_ref_writable(out_ref, first)
                .map_err(|_| fail())?;
            inc.converter.frame_ref(&src, &mut dst);
        }
        Ok(Some(out))
    }

    /// Takes the next buffer of `pad` into the store, if there is one.
    pub(super) fn take_buffer(
        &self,
        pad: &gst_base::AggregatorPad,
        ps: &mut PadState,
        store: bool,
    ) -> Result<(), gst::FlowError> {
        let Some(buffer) = self.pop(pad, ps)? else {
            return Ok(());
        };
        let name = self.pad_name(pad);
        if ps.info.is_none() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Buffer on pad {name} before any caps")
            );
            return Err(gst::FlowError::Error);
        }
        let segment = pad.segment();
        let pts = buffer.pts();
        let segment = segment.downcast::<gst::ClockTime>().ok();
        let running_time = segment
            .as_ref()
            .and_then(|s| pts.and_then(|p| s.to_running_time(p)));
        if ps.first_segment.is_none() {
            ps.first_segment = segment;
        }
        let times = FrameTimes {
            pts,
            duration: buffer.duration(),
            running_time,
        };
        let info = ps.info.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let Some(thumb) = with_luma(&buffer, info, Thumb::new) else {
            gst::element_imp_error!(
                self,
                gst::StreamError::Decode,
                (
                    "Frame {} on pad {name} does not match its caps",
                    ps.times.len()
                )
            );
            return Err(gst::FlowError::Error);
        };
        let spilling = ps.thumbs.spill_failure().is_none();
        ps.thumbs.push(thumb);
        if spilling && let Some(why) = ps.thumbs.spill_failure() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("Thumbnails of pad {name} stay in memory: {why}")
            );
        }
        gst::trace!(
            CAT,
            imp = self,
            "{name} frame {} at {pts:?}",
            ps.times.len()
        );
        ps.times.push(times);
        if !store {
            return Ok(());
        }
        ps.store.push(buffer, info).map_err(|e| {
            if e.full {
                gst::element_imp_error!(self, gst::ResourceError::NoSpaceLeft, ("Pad {name}: {e}"));
            } else {
                gst::element_imp_error!(self, gst::ResourceError::Write, ("Pad {name}: {e}"));
            }
            gst::FlowError::Error
        })
    }

    /// Running times of a pad's frames, gaps filled; also the frame duration used.
    pub(super) fn frame_times(ps: &PadState) -> (Vec<u64>, Option<u64>) {
        let rts: Vec<Option<u64>> = ps
            .times
            .iter()
            .map(|t| t.running_time.map(|t| t.nseconds()))
            .collect();
        let known: Vec<u64> = rts.iter().flatten().copied().collect();
        let nominal = ps.info.as_ref().and_then(|i| {
            let fps = i.fps();
            (fps.numer() > 0).then(|| {
                gst::ClockTime::SECOND
                    .mul_div_round(fps.denom() as u64, fps.numer() as u64)
                    .map(|t| t.nseconds())
            })?
        });
        let from_buffers = ps
            .times
            .iter()
            .find_map(|t| t.duration.map(|d| d.nseconds()).filter(|&d| d > 0));
        let step = nominal
            .or_else(|| timing::estimate_frame_duration(&known))
            .or(from_buffers);
        (timing::fill_times(&rts, step.unwrap_or(0)), step)
    }
}
