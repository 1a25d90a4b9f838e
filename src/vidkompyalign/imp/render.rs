// SPDX-License-Identifier: MIT

//! Output frames: the fg converted to the footprint, composited over its bg frame into a pooled buffer; output caps and segment.

use super::*;
use crate::align::placement;
use crate::composite::{Overlay, PlaneLayout, PlaneMut, PlaneRef};

/// Frames read again in the output pass of two-pass mode.
#[derive(Default)]
pub(super) struct Streaming {
    /// The bg frame last read, with its index.
    pub(super) current: Option<(usize, gst::Buffer)>,
}

/// What the output phase needs, decided once both pads reached EOS.
pub(super) struct Output {
    pub(super) info: gst_video::VideoInfo,
    pub(super) layouts: Vec<PlaneLayout>,
    pub(super) overlay: Overlay,
    /// fg frame index -> bg frame index.
    pub(super) mapping: Vec<usize>,
    pub(super) next: usize,
    /// Converts fg frames to the bg's format at the footprint's size, when they differ.
    pub(super) converter: Option<Converter>,
    /// Later stretches of the fg with footprints of their own (a fg re-framed at a caps
    /// change), in order.
    pub(super) upcoming: std::collections::VecDeque<StretchOutput>,
    /// Two-pass mode: frames come from the pads again rather than from the store.
    pub(super) streaming: Option<Streaming>,
    /// Output caps and segment, until they are set.
    pub(super) pending: Option<(gst::Caps, Option<gst::FormattedSegment<gst::ClockTime>>)>,
    /// Output buffers, reused once downstream releases them (a fresh 1080p frame per output
    /// costs page faults and zeroing of its memory); `None` if it could not be set up.
    pub(super) pool: Option<gst::BufferPool>,
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = pool.set_active(false);
        }
    }
}

/// A pool of output frames of `info` (`caps`), active; `None` if it cannot be configured.
pub(super) fn output_pool(
    caps: &gst::Caps,
    info: &gst_video::VideoInfo,
) -> Option<gst::BufferPool> {
    let pool = gst_video::VideoBufferPool::new();
    let mut config = pool.config();
    config.set_params(Some(caps), u32::try_from(info.size()).ok()?, 2, 0);
    pool.set_config(config).ok()?;
    pool.set_active(true).ok()?;
    Some(pool.upcast())
}

/// Where fg frames go from frame `from` on.
pub(super) struct StretchOutput {
    pub(super) from: usize,
    pub(super) overlay: Overlay,
    pub(super) converter: Option<Converter>,
}

pub(super) struct Converter {
    pub(super) converter: gst_video::VideoConverter,
    /// Reused destination of the conversion.
    pub(super) scratch: Option<gst::Buffer>,
}

/// Plane geometry of a format, for the compositing kernels.
pub(super) fn plane_layouts(info: &gst_video::VideoInfo) -> Option<Vec<PlaneLayout>> {
    let fi = info.format_info();
    let (planes, w_sub, h_sub, pstride, depth) = (
        fi.plane(),
        fi.w_sub(),
        fi.h_sub(),
        fi.pixel_stride(),
        fi.depth(),
    );
    (0..fi.n_planes())
        .map(|p| {
            let comps: Vec<usize> = (0..fi.n_components() as usize)
                .filter(|&c| planes[c] == p)
                .collect();
            let c0 = *comps.first()?;
            let same = comps.iter().all(|&c| {
                w_sub[c] == w_sub[c0] && h_sub[c] == h_sub[c0] && pstride[c] == pstride[c0]
            });
            (same && depth[c0] == 8 && pstride[c0] > 0).then(|| PlaneLayout {
                x_sub: w_sub[c0],
                y_sub: h_sub[c0],
                bytes_per_pixel: pstride[c0] as usize,
            })
        })
        .collect()
}

impl VidkompyAlign {
    /// A converter from the fg to the bg's format at the footprint's size, when they differ.
    pub(super) fn make_converter(
        &self,
        fg: &gst_video::VideoInfo,
        bg: &gst_video::VideoInfo,
        place: &placement::Placement,
    ) -> Result<Option<Converter>, gst::FlowError> {
        let out = gst_video::VideoInfo::builder(bg.format(), place.width, place.height)
            .fps(fg.fps())
            .par(fg.par())
            .colorimetry(&bg.colorimetry())
            .chroma_site(bg.chroma_site())
            .interlace_mode(fg.interlace_mode())
            .build()
            .map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Cannot describe the fg's footprint: {e}")
                );
                gst::FlowError::Error
            })?;
        let same = fg.format() == out.format()
            && fg.width() == out.width()
            && fg.height() == out.height()
            && fg.colorimetry() == out.colorimetry();
        if same {
            return Ok(None);
        }
        let mut config = gst_video::VideoConverterConfig::new();
        config.set_fill_border(false);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        config.set_threads(threads as u32);
        let converter = gst_video::VideoConverter::new(fg, &out, Some(config)).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                (
                    "Cannot convert the fg ({:?} {}x{}) to the bg's format ({:?} {}x{}): {e}",
                    fg.format(),
                    fg.width(),
                    fg.height(),
                    out.format(),
                    out.width(),
                    out.height()
                )
            );
            gst::FlowError::Error
        })?;
        gst::debug!(CAT, imp = self, "converting fg {fg:?} -> {out:?}");
        Ok(Some(Converter {
            converter,
            scratch: None,
        }))
    }

    /// Renders output frame `i`: the mapped bg frame with fg frame `i` composited on it.
    pub(super) fn render(
        &self,
        state: &mut State,
        i: usize,
        bg_buf: gst::Buffer,
        fg_buf: gst::Buffer,
        fg_times: (Option<gst::ClockTime>, Option<gst::ClockTime>),
    ) -> Result<gst::Buffer, gst::FlowError> {
        let fail = |what: &str| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Cannot render frame {i}: {what}")
            );
            gst::FlowError::Error
        };
        let (Some(bg_info), Some(fg_info)) = (state.bg.info.clone(), state.fg.info.clone()) else {
            return Err(gst::FlowError::Error);
        };
        let Some(out) = state.plan_mut() else {
            return Err(gst::FlowError::Error);
        };
        while out.upcoming.front().is_some_and(|p| p.from <= i) {
            if let Some(p) = out.upcoming.pop_front() {
                gst::debug!(CAT, imp = self, "fg frame {i}: footprint {:?}", p.overlay);
                out.overlay = p.overlay;
                out.converter = p.converter;
            }
        }

        // A bg frame no one else holds, in the output's own layout, is composited on in place;
        // any other is copied into an output buffer first.
        let in_place = bg_buf.is_writable()
            && bg_buf.meta::<gst_video::VideoMeta>().is_none()
            && bg_buf.size() == out.info.size()
            && (bg_info.format(), bg_info.width(), bg_info.height())
                == (out.info.format(), out.info.width(), out.info.height());
        let mut out_frame = if in_place {
            let mut b = bg_buf;
            {
                let b = b.make_mut();
                b.foreach_meta_mut(|_| {
                    std::ops::ControlFlow::Continue(gst::buffer::BufferMetaForeachAction::Remove)
                });
                b.unset_flags(b.flags());
                b.set_dts(None);
                b.set_offset(gst::format::Buffers::OFFSET_NONE);
                b.set_offset_end(gst::format::Buffers::OFFSET_NONE);
            }
            gst_video::VideoFrame::from_buffer_writable(b, &out.info)
                .map_err(|_| fail("cannot map the bg frame to composite on"))?
        } else {
            let bg_frame = gst_video::VideoFrame::from_buffer_readable(bg_buf, &bg_info)
                .map_err(|_| fail("bg buffer does not match its caps"))?;
            let pooled = out.pool.as_ref().and_then(|p| p.acquire_buffer(None).ok());
            let out_buf = match pooled {
                Some(b) => b,
                None => gst::Buffer::with_size(out.info.size())
                    .map_err(|_| fail("cannot allocate the output buffer"))?,
            };
            let mut out_frame = gst_video::VideoFrame::from_buffer_writable(out_buf, &out.info)
                .map_err(|_| fail("cannot map the output buffer"))?;
            bg_frame
                .copy(&mut out_frame)
                .map_err(|_| fail("cannot copy the bg frame"))?;
            out_frame
        };

        let fg_frame = gst_video::VideoFrame::from_buffer_readable(fg_buf, &fg_info)
            .map_err(|_| fail("fg buffer does not match its caps"))?;
        let converted = match out.converter.as_mut() {
            Some(c) => {
                let conv_info = c.converter.out_info().clone();
                let scratch = match c.scratch.take() {
                    Some(b) => b,
                    None => gst::Buffer::with_size(conv_info.size())
                        .map_err(|_| fail("cannot allocate the conversion buffer"))?,
                };
                let mut dst = gst_video::VideoFrame::from_buffer_writable(scratch, &conv_info)
                    .map_err(|_| fail("cannot map the conversion buffer"))?;
                c.converter.frame(&fg_frame, &mut dst);
                Some(dst)
            }
            None => None,
        };

        {
            let src_planes: Vec<PlaneRef> = match &converted {
                Some(f) => (0..f.n_planes())
                    .map(|p| PlaneRef {
                        data: f.plane_data(p).unwrap_or(&[]),
                        stride: f.plane_stride()[p as usize] as usize,
                    })
                    .collect(),
                None => (0..fg_frame.n_planes())
                    .map(|p| PlaneRef {
                        data: fg_frame.plane_data(p).unwrap_or(&[]),
                        stride: fg_frame.plane_stride()[p as usize] as usize,
                    })
                    .collect(),
            };
            let n = out_frame.n_planes() as usize;
            let strides: Vec<usize> = out_frame.plane_stride()[..n]
                .iter()
                .map(|&s| s as usize)
                .collect();
            let mut dst_planes: Vec<PlaneMut> = out_frame
                .planes_data_mut()
                .into_iter()
                .take(n)
                .zip(strides)
                .map(|(data, stride)| PlaneMut { data, stride })
                .collect();
            self.compute()
                .composite(
                    &out.layouts,
                    (bg_info.width(), bg_info.height()),
                    &mut dst_planes,
                    &src_planes,
                    &out.overlay,
                )
                .map_err(|e| fail(&e.to_string()))?;
        }
        if let (Some(c), Some(f)) = (out.converter.as_mut(), converted) {
            c.scratch = Some(f.into_buffer());
        }

        let mut buffer = out_frame.into_buffer();
        {
            let b = buffer.make_mut();
            b.set_pts(fg_times.0);
            b.set_duration(fg_times.1);
            if i == 0 {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        Ok(buffer)
    }

    /// Sets the output caps and segment before the first output frame.
    pub(super) fn start_output(
        &self,
        caps: gst::Caps,
        segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if let Some(seg) = segment {
            self.obj().update_segment(&seg);
        }
        let src = self.obj().src_pad().clone();
        if src.peer().is_some() && !src.peer_query_accept_caps(&caps) {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream does not accept the output caps {caps}")
            );
            return Err(gst::FlowError::Error);
        }
        gst::info!(CAT, imp = self, "output caps {caps}");
        self.obj().set_src_caps(&caps);
        Ok(gst::FlowSuccess::Ok)
    }

    /// The next output frame from the store.
    pub(super) fn next_stored(&self, state: &mut State) -> Result<gst::Buffer, gst::FlowError> {
        let Some(out) = state.plan_mut() else {
            return Err(gst::FlowError::Error);
        };
        let i = out.next;
        let total = out.mapping.len();
        if i >= total {
            gst::debug!(CAT, imp = self, "all {i} fg frames output");
            return Err(gst::FlowError::Eos);
        }
        out.next += 1;
        let j = out.mapping[i];
        self.output_progress(state, i, total);
        let frames = state
            .bg
            .store
            .buffer(j)
            .and_then(|bg| Ok((bg, state.fg.store.buffer(i)?)));
        let ((bg, fg), Some(t)) = (
            frames.map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("Cannot render frame {i}: {e}")
                );
                gst::FlowError::Error
            })?,
            state.fg.times.get(i).copied(),
        ) else {
            return Err(gst::FlowError::Error);
        };
        self.render(state, i, bg, fg, (t.pts, t.duration))
    }

    /// The next output frame of two-pass mode, from the frames read again; `None` while a
    /// pad has to deliver more.
    pub(super) fn next_streamed(
        &self,
        state: &mut State,
    ) -> Result<Option<gst::Buffer>, gst::FlowError> {
        let Some(out) = state.plan_mut() else {
            return Err(gst::FlowError::Error);
        };
        let (i, total) = (out.next, out.mapping.len());
        if !self.fg_pad.has_buffer() {
            if !self.fg_pad.is_eos() {
                return Ok(None);
            }
            if i < total {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("The fg ended after {i} frames when read again; the first pass read \
                         {total}")
                );
                return Err(gst::FlowError::Error);
            }
            gst::debug!(CAT, imp = self, "all {i} fg frames output");
            return Err(gst::FlowError::Eos);
        }
        if i >= total {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("The fg has more than the {total} frames of the first pass when read again")
            );
            return Err(gst::FlowError::Error);
        }
        let j = out.mapping[i];
        let State {
            phase,
            bg: bg_state,
            fg: fg_state,
            ..
        } = &mut *state;
        let Phase::Output { output: out, .. } = phase else {
            return Err(gst::FlowError::Error);
        };
        let Some(streaming) = out.streaming.as_mut() else {
            return Err(gst::FlowError::Error);
        };
        // Read the bg up to frame j; the frame before it stays the current one.
        while streaming.current.as_ref().is_none_or(|(k, _)| *k < j) {
            match self.pop(&self.bg_pad, bg_state)? {
                Some(b) => {
                    let k = self.pass_index(bg_state, &b, "bg")?;
                    streaming.current = Some((k, b));
                }
                None if self.bg_pad.is_eos() => {
                    if streaming.current.is_none() {
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Failed,
                            ("The bg delivered no frame when read again")
                        );
                        return Err(gst::FlowError::Error);
                    }
                    gst::warning!(CAT, imp = self, "bg ended before frame {j}: its last frame");
                    break;
                }
                None => return Ok(None),
            }
        }
        let Some(fg) = self.pop(&self.fg_pad, fg_state)? else {
            return Ok(None);
        };
        let k = self.pass_index(fg_state, &fg, "fg")?;
        if k != i {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Read again, the fg's frame {i} is the first pass's frame {k}")
            );
            return Err(gst::FlowError::Error);
        }
        let Some(bg) = streaming.current.as_ref().map(|(_, b)| b.clone()) else {
            return Err(gst::FlowError::Error);
        };
        out.next += 1;
        self.output_progress(state, i, total);
        let t = state.fg.times.get(i).copied().unwrap_or_default();
        self.render(state, i, bg, fg, (t.pts, t.duration)).map(Some)
    }
}
