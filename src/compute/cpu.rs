// SPDX-License-Identifier: MIT

//! The CPU implementation of [`Compute`]: rows in parallel with rayon.

use super::Compute;
use crate::align::kernels::{CpuKernels, Kernels};
use crate::composite::{self, CompositeError, Overlay, PlaneLayout, PlaneMut, PlaneRef};
use rayon::prelude::*;

/// Rows per rayon task: small enough to spread a 1080p footprint over the cores, large enough
/// to keep scheduling costs negligible.
const ROWS_PER_TASK: usize = 32;

#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu;

impl Compute for Cpu {
    fn name(&self) -> &str {
        "cpu"
    }

    fn kernels(&self) -> &dyn Kernels {
        &CpuKernels
    }

    fn composite(
        &self,
        layouts: &[PlaneLayout],
        bg_size: (u32, u32),
        dst: &mut [PlaneMut<'_>],
        src: &[PlaneRef<'_>],
        overlay: &Overlay,
    ) -> Result<(), CompositeError> {
        let jobs = composite::plan(layouts, bg_size, dst, src, overlay)?;
        for ((job, d), s) in jobs.iter().zip(dst.iter_mut()).zip(src) {
            plane(job, d, s);
        }
        Ok(())
    }
}

/// Composites one planned plane, rows in parallel.
pub(super) fn plane(job: &composite::PlaneJob, d: &mut PlaneMut<'_>, s: &PlaneRef<'_>) {
    if job.rows == 0 || job.cols == 0 {
        return;
    }
    let (ds, ss) = (d.stride, s.stride);
    let rows = &mut d.data[job.row0 * ds..];
    rows.par_chunks_mut(ds)
        .take(job.rows)
        .zip(s.data.par_chunks(ss))
        .enumerate()
        .with_min_len(ROWS_PER_TASK)
        .for_each(|(r, (drow, srow))| composite::composite_row(drow, srow, job, r));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_i420() -> Vec<PlaneLayout> {
        let y = PlaneLayout {
            x_sub: 0,
            y_sub: 0,
            bytes_per_pixel: 1,
        };
        let c = PlaneLayout {
            x_sub: 1,
            y_sub: 1,
            bytes_per_pixel: 1,
        };
        vec![y, c, c]
    }

    #[test]
    fn i420_paste_hits_exactly_the_footprint() {
        let l = layout_i420();
        let (bw, bh) = (64u32, 48u32);
        let (fw, fh) = (20u32, 10u32);
        let mut bg: Vec<Vec<u8>> = l
            .iter()
            .map(|p| {
                let (w, h) = p.plane_size(bw, bh);
                vec![16u8; w * h]
            })
            .collect();
        let fg: Vec<Vec<u8>> = l
            .iter()
            .map(|p| {
                let (w, h) = p.plane_size(fw, fh);
                vec![200u8; w * h]
            })
            .collect();
        let strides_bg: Vec<usize> = l.iter().map(|p| p.plane_size(bw, bh).0).collect();
        let strides_fg: Vec<usize> = l.iter().map(|p| p.plane_size(fw, fh).0).collect();
        let mut dst: Vec<PlaneMut> = bg
            .iter_mut()
            .zip(&strides_bg)
            .map(|(d, &s)| PlaneMut { data: d, stride: s })
            .collect();
        let src: Vec<PlaneRef> = fg
            .iter()
            .zip(&strides_fg)
            .map(|(d, &s)| PlaneRef { data: d, stride: s })
            .collect();
        let o = Overlay::new(10, 6, fw, fh, (bw, bh), 0);
        Cpu.composite(&l, (bw, bh), &mut dst, &src, &o).unwrap();
        for y in 0..bh as usize {
            for x in 0..bw as usize {
                let inside = (10..30).contains(&x) && (6..16).contains(&y);
                assert_eq!(bg[0][y * 64 + x], if inside { 200 } else { 16 }, "{x},{y}");
            }
        }
        for y in 0..24usize {
            for x in 0..32usize {
                let inside = (5..15).contains(&x) && (3..8).contains(&y);
                assert_eq!(bg[1][y * 32 + x], if inside { 200 } else { 16 });
            }
        }
    }

    #[test]
    fn feathered_rgba_ramps_on_inner_edges_only() {
        let l = [PlaneLayout {
            x_sub: 0,
            y_sub: 0,
            bytes_per_pixel: 4,
        }];
        let (bw, bh) = (16u32, 8u32);
        let mut bg = vec![0u8; 16 * 8 * 4];
        let fg = vec![255u8; 8 * 8 * 4];
        let o = Overlay::new(0, 0, 8, 8, (bw, bh), 2);
        let mut dst = [PlaneMut {
            data: &mut bg,
            stride: 64,
        }];
        let src = [PlaneRef {
            data: &fg,
            stride: 32,
        }];
        Cpu.composite(&l, (bw, bh), &mut dst, &src, &o).unwrap();
        let row: Vec<u8> = (0..10).map(|x| bg[4 * 16 * 4 + x * 4]).collect();
        // left, top and bottom touch the border: full; right ramps down to 85.
        assert_eq!(row, vec![255, 255, 255, 255, 255, 255, 170, 85, 0, 0]);
        assert_eq!(bg[0], 255);
    }
}
