// SPDX-License-Identifier: MIT

//! Where the analysis's heavy kernels run: the cost matrix's dot products
//! ([`temporal::band_dots`]), DTW's accumulation ([`temporal::accumulate`]) and the spatial
//! refinement's correlations ([`ncc::window_dots`]), on the CPU or a GPU backend
//! (`compute::Gpu`). All three are integer arithmetic, exact in any order, so every
//! implementation gives the same numbers (and a backend that fails computes them on the CPU
//! instead).

use super::ncc::{self, WindowDots};
use super::temporal::{self, Accumulated, Accumulation, Features};
use super::{Cancel, Cancelled};

/// The kernels one backend provides; the CPU's by default.
pub trait Kernels: Sync + std::fmt::Debug {
    /// As [`temporal::band_dots`].
    fn band_dots(&self, fg: &Features, bg: &Features, lo: &[usize], width: usize) -> Vec<i32> {
        temporal::band_dots(fg, bg, lo, width)
    }

    /// As [`temporal::accumulate`].
    fn accumulate(&self, a: &Accumulation, cancel: &Cancel) -> Result<Accumulated, Cancelled> {
        temporal::accumulate(a, cancel)
    }

    /// As [`ncc::window_dots`].
    fn window_dots(&self, w: &WindowDots<'_>) -> Vec<i64> {
        ncc::window_dots(w)
    }
}

/// The kernels on the CPU (rows, cells and windows in parallel where they are independent).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuKernels;

impl Kernels for CpuKernels {}
