// SPDX-License-Identifier: MIT

//! Paste and feathered blend of a footprint-sized fg image into a bg image, plane by plane, in
//! the stream's own pixel format (8-bit planar, semi-planar or packed). No GStreamer types: the
//! element describes its frames with [`PlaneLayout`], [`PlaneRef`] and [`PlaneMut`].
//!
//! The per-row work lives here; [`crate::compute`] decides how rows are scheduled.

use std::fmt;

/// Geometry of one plane relative to the full-resolution (luma) grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneLayout {
    /// log2 of the horizontal subsampling (1 for I420 chroma).
    pub x_sub: u32,
    /// log2 of the vertical subsampling.
    pub y_sub: u32,
    /// Bytes per sample group in this plane (1 for Y, 2 for NV12 UV, 4 for RGBA, 3 for RGB).
    pub bytes_per_pixel: usize,
}

impl PlaneLayout {
    /// Size of this plane for an image of `width` x `height` full-resolution pixels.
    pub fn plane_size(&self, width: u32, height: u32) -> (usize, usize) {
        (
            width.div_ceil(1 << self.x_sub) as usize,
            height.div_ceil(1 << self.y_sub) as usize,
        )
    }
}

/// One plane of a source image.
#[derive(Debug, Clone, Copy)]
pub struct PlaneRef<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// One plane of a destination image.
#[derive(Debug)]
pub struct PlaneMut<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

/// Which edges of the footprint are feathered (those where the bg shows around the fg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Edges {
    pub left: bool,
    pub right: bool,
    pub top: bool,
    pub bottom: bool,
}

/// Where and how the fg goes onto the bg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlay {
    /// Left edge of the footprint in the bg, full-resolution px.
    pub x: u32,
    pub y: u32,
    /// Footprint size, full-resolution px; the fg image has exactly this size.
    pub width: u32,
    pub height: u32,
    /// Feather width in full-resolution px (0 = hard paste).
    pub feather: u32,
    pub edges: Edges,
}

impl Overlay {
    /// An overlay feathered on every edge that does not touch the bg's border.
    pub fn new(x: u32, y: u32, width: u32, height: u32, bg: (u32, u32), feather: u32) -> Self {
        Overlay {
            x,
            y,
            width,
            height,
            feather,
            edges: Edges {
                left: x > 0,
                right: x + width < bg.0,
                top: y > 0,
                bottom: y + height < bg.1,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompositeError {
    /// The number of planes of the images and of the layout differ.
    PlaneCount {
        layout: usize,
        dst: usize,
        src: usize,
    },
    /// A plane is smaller than its geometry needs.
    PlaneTooSmall {
        which: &'static str,
        plane: usize,
        needed: usize,
        got: usize,
    },
    /// The footprint does not lie inside the bg.
    OutsideBg,
    /// The compute device failed.
    Device(String),
}

impl fmt::Display for CompositeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompositeError::PlaneCount { layout, dst, src } => write!(
                f,
                "plane count mismatch: layout {layout}, bg {dst}, fg {src}"
            ),
            CompositeError::PlaneTooSmall {
                which,
                plane,
                needed,
                got,
            } => write!(
                f,
                "{which} plane {plane} holds {got} bytes, {needed} needed"
            ),
            CompositeError::OutsideBg => f.write_str("footprint outside the bg"),
            CompositeError::Device(e) => write!(f, "compute device: {e}"),
        }
    }
}

impl std::error::Error for CompositeError {}

/// Per-plane geometry of one composite, checked against the buffers.
#[derive(Debug, Clone)]
pub struct PlaneJob {
    /// First destination row and column (in samples of this plane).
    pub row0: usize,
    pub col0: usize,
    /// Footprint size in this plane's samples.
    pub cols: usize,
    pub rows: usize,
    pub bytes_per_pixel: usize,
    /// Weight 0..=255 of the fg per column and per row; the weight of a sample is the minimum.
    pub col_alpha: Vec<u8>,
    pub row_alpha: Vec<u8>,
}

impl PlaneJob {
    /// Whether row `r` of the footprint is a plain copy.
    pub fn row_is_opaque(&self, r: usize) -> bool {
        self.row_alpha[r] == 255 && self.col_alpha.iter().all(|&a| a == 255)
    }
}

/// Weights along one axis of `len` samples: a ramp of `width` samples up from each feathered
/// end, 255 elsewhere. The outermost sample gets 255/(width+1), never 0, so the fg's edge
/// still shows.
pub fn ramp(len: usize, width: usize, start: bool, end: bool) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let mut d = usize::MAX;
            if start {
                d = d.min(i);
            }
            if end {
                d = d.min(len - 1 - i);
            }
            if width == 0 || d >= width {
                255
            } else {
                ((255 * (d + 1) + width.div_ceil(2)) / (width + 1)) as u8
            }
        })
        .collect()
}

/// Checks the images against the layout and the overlay and computes each plane's job.
pub fn plan(
    layouts: &[PlaneLayout],
    bg_size: (u32, u32),
    dst: &[PlaneMut<'_>],
    src: &[PlaneRef<'_>],
    overlay: &Overlay,
) -> Result<Vec<PlaneJob>, CompositeError> {
    if layouts.len() != dst.len() || layouts.len() != src.len() {
        return Err(CompositeError::PlaneCount {
            layout: layouts.len(),
            dst: dst.len(),
            src: src.len(),
        });
    }
    if u64::from(overlay.x) + u64::from(overlay.width) > u64::from(bg_size.0)
        || u64::from(overlay.y) + u64::from(overlay.height) > u64::from(bg_size.1)
    {
        return Err(CompositeError::OutsideBg);
    }
    let mut jobs = Vec::with_capacity(layouts.len());
    for (p, l) in layouts.iter().enumerate() {
        let (bw, bh) = l.plane_size(bg_size.0, bg_size.1);
        let (cols, rows) = l.plane_size(overlay.width, overlay.height);
        let col0 = (overlay.x >> l.x_sub) as usize;
        let row0 = (overlay.y >> l.y_sub) as usize;
        // Subsampled planes of odd-sized or odd-placed footprints may reach one sample past the
        // bg's plane: clip there.
        let cols_in = cols.min(bw.saturating_sub(col0));
        let rows_in = rows.min(bh.saturating_sub(row0));
        let bpp = l.bytes_per_pixel;
        let need = |stride: usize, rows: usize, cols: usize| {
            if rows == 0 {
                0
            } else {
                (rows - 1) * stride + cols * bpp
            }
        };
        let d_need = need(dst[p].stride, row0 + rows_in, bw);
        if dst[p].data.len() < d_need || dst[p].stride < bw * bpp {
            return Err(CompositeError::PlaneTooSmall {
                which: "bg",
                plane: p,
                needed: d_need,
                got: dst[p].data.len(),
            });
        }
        let s_need = need(src[p].stride, rows, cols);
        if src[p].data.len() < s_need || src[p].stride < cols * bpp {
            return Err(CompositeError::PlaneTooSmall {
                which: "fg",
                plane: p,
                needed: s_need,
                got: src[p].data.len(),
            });
        }
        // The feather in this plane's samples, at least one where feathering is on.
        let on = u32::from(overlay.feather > 0);
        let fx = ((overlay.feather >> l.x_sub).max(on)) as usize;
        let fy = ((overlay.feather >> l.y_sub).max(on)) as usize;
        let e = overlay.edges;
        jobs.push(PlaneJob {
            row0,
            col0,
            cols: cols_in,
            rows: rows_in,
            bytes_per_pixel: bpp,
            col_alpha: ramp(cols, fx, e.left, e.right)[..cols_in].to_vec(),
            row_alpha: ramp(rows, fy, e.top, e.bottom)[..rows_in].to_vec(),
        });
    }
    Ok(jobs)
}

/// Blends one footprint row: `dst` and `src` hold exactly `job.cols` samples.
#[inline]
pub fn blend_row(dst: &mut [u8], src: &[u8], job: &PlaneJob, row_alpha: u8) {
    let bpp = job.bytes_per_pixel;
    for ((d, s), &ca) in dst
        .chunks_exact_mut(bpp)
        .zip(src.chunks_exact(bpp))
        .zip(&job.col_alpha)
    {
        let a = u32::from(ca.min(row_alpha));
        if a == 255 {
            d.copy_from_slice(s);
            continue;
        }
        let na = 255 - a;
        for (db, &sb) in d.iter_mut().zip(s) {
            let v = u32::from(sb) * a + u32::from(*db) * na + 128;
            *db = ((v + (v >> 8)) >> 8) as u8;
        }
    }
}

/// Composites one row `r` of the footprint: `dst_row` is the bg's whole row, `src_row` the fg's.
#[inline]
pub fn composite_row(dst_row: &mut [u8], src_row: &[u8], job: &PlaneJob, r: usize) {
    let bpp = job.bytes_per_pixel;
    let d = &mut dst_row[job.col0 * bpp..(job.col0 + job.cols) * bpp];
    let s = &src_row[..job.cols * bpp];
    if job.row_is_opaque(r) {
        d.copy_from_slice(s);
    } else {
        blend_row(d, s, job, job.row_alpha[r]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps() {
        assert_eq!(ramp(5, 0, true, true), vec![255; 5]);
        assert_eq!(ramp(6, 2, true, false), vec![85, 170, 255, 255, 255, 255]);
        assert_eq!(ramp(6, 2, true, true), vec![85, 170, 255, 255, 170, 85]);
        assert_eq!(ramp(3, 4, false, false), vec![255; 3]);
    }

    #[test]
    fn edges_touching_the_bg_border_are_not_feathered() {
        let o = Overlay::new(0, 10, 100, 50, (100, 100), 4);
        assert_eq!(
            o.edges,
            Edges {
                left: false,
                right: false,
                top: true,
                bottom: true
            }
        );
    }

    #[test]
    fn blend_is_exact_at_the_ends() {
        let job = PlaneJob {
            row0: 0,
            col0: 0,
            cols: 3,
            rows: 1,
            bytes_per_pixel: 1,
            col_alpha: vec![0, 128, 255],
            row_alpha: vec![255],
        };
        let mut d = [10u8, 0, 10];
        blend_row(&mut d, &[200, 255, 200], &job, 255);
        assert_eq!(d, [10, 128, 200]);
    }

    #[test]
    fn plan_checks_buffers() {
        let l = [PlaneLayout {
            x_sub: 0,
            y_sub: 0,
            bytes_per_pixel: 1,
        }];
        let mut bg = vec![0u8; 10 * 10];
        let fg = vec![0u8; 4 * 4];
        let o = Overlay::new(8, 0, 4, 4, (10, 10), 0);
        let dst = [PlaneMut {
            data: &mut bg,
            stride: 10,
        }];
        let src = [PlaneRef {
            data: &fg,
            stride: 4,
        }];
        assert_eq!(
            plan(&l, (10, 10), &dst, &src, &o).unwrap_err(),
            CompositeError::OutsideBg
        );
        let o = Overlay::new(6, 6, 4, 4, (10, 10), 0);
        assert!(plan(&l, (10, 10), &dst, &src, &o).is_ok());
        let short = [PlaneRef {
            data: &fg[..10],
            stride: 4,
        }];
        assert!(matches!(
            plan(&l, (10, 10), &dst, &short, &o),
            Err(CompositeError::PlaneTooSmall { which: "fg", .. })
        ));
    }
}
