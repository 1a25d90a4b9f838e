// SPDX-License-Identifier: MIT

//! The heavy kernels behind one trait, so that a GPU implementation can stand beside the CPU one.
//! The element holds an `Arc<dyn Compute>` and never touches pixels itself.

use crate::composite::{CompositeError, Overlay, PlaneLayout, PlaneMut, PlaneRef};
use std::sync::Arc;

mod cpu;

pub use cpu::Cpu;

/// The kernels an implementation provides.
pub trait Compute: Send + Sync + std::fmt::Debug {
    /// A short name for logs and reports ("cpu", later the adapter's name).
    fn name(&self) -> &str;

    /// Pastes or blends `src` (exactly the footprint's size, in the bg's pixel format) into `dst`
    /// (the bg's size) at `overlay`, plane by plane.
    fn composite(
        &self,
        layouts: &[PlaneLayout],
        bg_size: (u32, u32),
        dst: &mut [PlaneMut<'_>],
        src: &[PlaneRef<'_>],
        overlay: &Overlay,
    ) -> Result<(), CompositeError>;
}

/// The CPU implementation, shared.
pub fn cpu() -> Arc<dyn Compute> {
    Arc::new(Cpu)
}
