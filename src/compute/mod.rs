// SPDX-License-Identifier: MIT

//! The heavy kernels behind one trait, so that a GPU implementation can stand beside the CPU one.
//! The element holds an `Arc<dyn Compute>` and never touches pixels itself.

use crate::align::kernels::Kernels;
use crate::composite::{CompositeError, Overlay, PlaneLayout, PlaneMut, PlaneRef};
use std::sync::Arc;

mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;

pub use cpu::Cpu;
#[cfg(feature = "gpu")]
pub use gpu::Gpu;

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

    /// Where this backend computes the analysis's cost-matrix dot products.
    fn kernels(&self) -> &dyn Kernels;

    /// The first failure of the device since the last call, if any (the work was then done on
    /// the CPU instead).
    fn take_failure(&self) -> Option<String> {
        None
    }
}

/// The CPU implementation, shared.
pub fn cpu() -> Arc<dyn Compute> {
    Arc::new(Cpu)
}

/// Which backend to compute on (the element's `device` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// A hardware GPU for the analysis kernels when there is one (compositing stays on the
    /// CPU: see [`Gpu::analysis_only`]), else the CPU. A software Vulkan adapter (lavapipe) is
    /// slower than the CPU path, so it is not taken.
    #[default]
    Auto,
    /// The GPU, a software adapter included; an error when there is no adapter at all.
    Gpu,
    Cpu,
}

/// The backend for `choice`, and why it was taken. An error only for [`Choice::Gpu`] with no
/// usable adapter.
pub fn backend(choice: Choice) -> Result<(Arc<dyn Compute>, String), String> {
    match choice {
        Choice::Cpu => Ok((cpu(), "device=cpu".into())),
        Choice::Gpu => gpu_backend(),
        Choice::Auto => Ok(auto_backend()),
    }
}

#[cfg(feature = "gpu")]
fn gpu_backend() -> Result<(Arc<dyn Compute>, String), String> {
    let g = Gpu::new()?;
    let why = format!("device=gpu: {} ({})", g.info().name, g.info().kind);
    Ok((Arc::new(g), why))
}

#[cfg(not(feature = "gpu"))]
fn gpu_backend() -> Result<(Arc<dyn Compute>, String), String> {
    Err(NO_GPU_FEATURE.into())
}

/// Why a build without the `gpu` feature has no GPU.
#[cfg(not(feature = "gpu"))]
pub const NO_GPU_FEATURE: &str = "this build has no GPU support (built without the `gpu` feature)";

/// Whether the machine may have a GPU: on Linux, a DRM device or an NVIDIA device node, without
/// which no hardware Vulkan driver can open one, so `auto` need not look for an adapter (that
/// loads every installed Vulkan driver, and Mesa's software one keeps tens of MB of LLVM
/// resident for the rest of the process). Elsewhere, always.
#[cfg(feature = "gpu")]
fn may_have_gpu() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let any = |dir: &str, prefixes: &[&str]| {
        std::fs::read_dir(dir).is_ok_and(|d| {
            d.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                prefixes.iter().any(|p| name.starts_with(p))
            })
        })
    };
    any("/dev/dri", &["renderD", "card"]) || any("/dev", &["nvidia"])
}

#[cfg(feature = "gpu")]
fn auto_backend() -> (Arc<dyn Compute>, String) {
    if !may_have_gpu() {
        return (
            cpu(),
            "auto: no GPU device (no /dev/dri or /dev/nvidia*), CPU".into(),
        );
    }
    match gpu::adapter() {
        Ok(info) if info.hardware => match Gpu::new() {
            Ok(g) => (
                Arc::new(g.analysis_only()),
                format!(
                    "auto: hardware GPU {} for the analysis, compositing on the CPU",
                    info.name
                ),
            ),
            Err(e) => (
                cpu(),
                format!("auto: GPU {} unusable ({e}), CPU", info.name),
            ),
        },
        Ok(info) => (
            cpu(),
            format!(
                "auto: only a software adapter ({}), CPU (faster)",
                info.name
            ),
        ),
        Err(e) => (cpu(), format!("auto: {e}, CPU")),
    }
}

#[cfg(not(feature = "gpu"))]
fn auto_backend() -> (Arc<dyn Compute>, String) {
    (cpu(), format!("auto: {NO_GPU_FEATURE}, CPU"))
}

#[cfg(all(test, feature = "gpu"))]
mod tests {
    use super::*;
    use crate::align::Cancel;
    use crate::align::temporal::{self, Accumulation, Features};

    /// Random bytes.
    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect()
    }

    fn layout(x_sub: u32, y_sub: u32, bytes_per_pixel: usize) -> PlaneLayout {
        PlaneLayout {
            x_sub,
            y_sub,
            bytes_per_pixel,
        }
    }

    /// The GPU backend; `None` (the test skips, saying so) only when there is no adapter at
    /// all. An adapter whose device or kernels cannot be made fails the test.
    fn gpu_or_skip() -> Option<Gpu> {
        if let Err(e) = gpu::adapter() {
            eprintln!("skipped: no GPU adapter ({e})");
            return None;
        }
        match Gpu::new() {
            Ok(g) => Some(g),
            Err(e) => panic!("there is an adapter, but no GPU backend: {e}"),
        }
    }

    /// Composites one random case on `backend`; returns the bg planes.
    fn composite_case(
        backend: &dyn Compute,
        layouts: &[PlaneLayout],
        bg: (u32, u32),
        o: &Overlay,
        seed: u32,
    ) -> Vec<Vec<u8>> {
        // Strides with padding (as video frames have), not multiples of 4.
        let dst_strides: Vec<usize> = layouts
            .iter()
            .map(|l| l.plane_size(bg.0, bg.1).0 * l.bytes_per_pixel + 3)
            .collect();
        let src_strides: Vec<usize> = layouts
            .iter()
            .map(|l| l.plane_size(o.width, o.height).0 * l.bytes_per_pixel + 5)
            .collect();
        let mut dst: Vec<Vec<u8>> = layouts
            .iter()
            .zip(&dst_strides)
            .enumerate()
            .map(|(p, (l, s))| noise(s * l.plane_size(bg.0, bg.1).1, seed + p as u32))
            .collect();
        let src: Vec<Vec<u8>> = layouts
            .iter()
            .zip(&src_strides)
            .enumerate()
            .map(|(p, (l, s))| noise(s * l.plane_size(o.width, o.height).1, seed + 10 + p as u32))
            .collect();
        let mut d: Vec<PlaneMut> = dst
            .iter_mut()
            .zip(&dst_strides)
            .map(|(data, &stride)| PlaneMut { data, stride })
            .collect();
        let s: Vec<PlaneRef> = src
            .iter()
            .zip(&src_strides)
            .map(|(data, &stride)| PlaneRef { data, stride })
            .collect();
        backend.composite(layouts, bg, &mut d, &s, o).unwrap();
        dst
    }

    #[test]
    fn gpu_composites_exactly_like_the_cpu() {
        let Some(gpu) = gpu_or_skip() else {
            return;
        };
        eprintln!("GPU: {:?}", gpu.info());
        let i420 = [layout(0, 0, 1), layout(1, 1, 1), layout(1, 1, 1)];
        let nv12 = [layout(0, 0, 1), layout(1, 1, 2)];
        let rgba = [layout(0, 0, 4)];
        let rgb = [layout(0, 0, 3)];
        let cases: [(&[PlaneLayout], (u32, u32), Overlay); 6] = [
            (&i420, (97, 61), Overlay::new(13, 7, 41, 29, (97, 61), 0)),
            (&i420, (97, 61), Overlay::new(13, 7, 41, 29, (97, 61), 6)),
            (&i420, (64, 48), Overlay::new(0, 0, 64, 48, (64, 48), 4)),
            (&nv12, (90, 50), Overlay::new(31, 5, 59, 45, (90, 50), 5)),
            (&rgba, (40, 30), Overlay::new(3, 2, 17, 11, (40, 30), 3)),
            (&rgb, (41, 33), Overlay::new(1, 9, 39, 23, (41, 33), 2)),
        ];
        for (k, (layouts, bg, o)) in cases.iter().enumerate() {
            let want = composite_case(&Cpu, layouts, *bg, o, k as u32);
            let got = composite_case(&gpu, layouts, *bg, o, k as u32);
            assert!(want == got, "case {k}: GPU and CPU composites differ");
        }
        assert!(
            gpu.device_planes() > 0,
            "nothing was composited on the device"
        );
    }

    /// `device=auto`'s backend on a hardware GPU: the analysis kernels there, compositing on
    /// the CPU (no device round trip per frame).
    #[test]
    fn an_analysis_only_gpu_composites_on_the_cpu() {
        let Some(gpu) = gpu_or_skip() else {
            return;
        };
        let gpu = gpu.analysis_only();
        assert!(gpu.name().contains("compositing on cpu"), "{}", gpu.name());
        let i420 = [layout(0, 0, 1), layout(1, 1, 1), layout(1, 1, 1)];
        let o = Overlay::new(13, 7, 41, 29, (97, 61), 6);
        let want = composite_case(&Cpu, &i420, (97, 61), &o, 1);
        let got = composite_case(&gpu, &i420, (97, 61), &o, 1);
        assert!(want == got, "composites differ");
        assert_eq!(gpu.device_planes(), 0, "composited on the device");
        let (fg, bg) = (
            random_features(40, 33, 700, 3),
            random_features(60, 33, 700, 4),
        );
        let lo: Vec<usize> = (0..40).map(|i| i.min(59)).collect();
        assert_eq!(
            gpu.kernels().band_dots(&fg, &bg, &lo, 20),
            temporal::band_dots(&fg, &bg, &lo, 20)
        );
    }

    /// Features with random values in [-range, range], quantised as they are.
    fn random_features(n: usize, d: usize, range: i32, seed: u32) -> Features {
        let mut s = seed;
        let q = (0..n * d)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as i32 % (2 * range + 1) - range) as i16
            })
            .collect();
        Features {
            q,
            d,
            flat: vec![false; n],
            mean: vec![100.0; n],
        }
    }

    #[test]
    fn gpu_dot_products_equal_the_cpu_s_bit_for_bit() {
        let Some(gpu) = gpu_or_skip() else {
            return;
        };
        // Unit-norm-sized values, an odd feature length, bands that run past the last bg row;
        // then values at the i16 limits, whose sums wrap on both sides alike.
        for (range, d) in [(700, 577), (32767, 64)] {
            let (fg, bg) = (
                random_features(300, d, range, 1),
                random_features(500, d, range, 2),
            );
            let lo: Vec<usize> = (0..300).map(|i| (i * 3 / 2).min(499)).collect();
            let want = temporal::band_dots(&fg, &bg, &lo, 70);
            let got = gpu.band_dots(&fg, &bg, &lo, 70).unwrap();
            assert_eq!(want.len(), got.len());
            let bad = want.iter().zip(&got).filter(|(a, b)| a != b).count();
            assert_eq!(
                bad,
                0,
                "{bad} of {} dot products differ (range {range})",
                want.len()
            );
            assert!(want.iter().any(|&v| v != 0));
        }
    }

    /// A random DTW band: rows of 1..=width cells whose starts move forward by 0..3 bg frames,
    /// now and then leaping past the previous row (unreachable cells); costs of `levels`
    /// values (few: many ties) up to 2, a few far higher.
    fn random_accumulation(
        n: usize,
        width: usize,
        seed: u32,
        jump: bool,
        levels: u32,
        pen: [u64; 5],
    ) -> Accumulation {
        let mut s = seed;
        let mut next = |m: u32| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) % m
        };
        let (mut lo, mut start, mut cells) = (Vec::new(), vec![0u32], Vec::new());
        let mut l = 0u32;
        for _ in 0..n {
            l += if next(50) == 0 {
                width as u32 + 5
            } else {
                next(3)
            };
            let len = 1 + next(width as u32);
            lo.push(l);
            for _ in 0..len {
                cells.push(match next(400) {
                    // Far over any real cost, and close to where sums saturate.
                    0 => 1 << 40,
                    1 => u64::MAX - 7,
                    _ => u64::from(next(levels)) * ((2u64 << 32) / u64::from(levels)),
                });
            }
            start.push(cells.len() as u32);
        }
        Accumulation {
            lo,
            start,
            cells,
            pen: pen.to_vec(),
            jump: jump.then_some(1 << 31),
        }
    }

    #[test]
    fn gpu_dtw_accumulation_equals_the_cpu_s_bit_for_bit() {
        let Some(gpu) = gpu_or_skip() else {
            return;
        };
        let cancel = Cancel::new();
        // Wider rows than a workgroup, jumps or not, ties, and (the last) more rows than one
        // dispatch takes, so that the last row is carried from one dispatch to the next.
        let pen = [3000u64, 0, 0, 2000, 8000].map(|v| v << 16);
        // Steps dearer than a jump: jumps win, through running minima full of ties.
        let dear = [1u64 << 32; 5];
        let cases = [
            (300, 700, 1, true, 1 << 16, pen),
            (300, 40, 2, false, 1 << 16, pen),
            (300, 40, 3, true, 4, pen),
            (300, 700, 5, true, 4, pen),
            (100, 700, 6, true, 1, dear),
            (2600, 24, 4, true, 8, pen),
        ];
        for (n, width, seed, jump, levels, pen) in cases {
            let a = random_accumulation(n, width, seed, jump, levels, pen);
            let want = temporal::accumulate(&a, &cancel).unwrap();
            let got = gpu.accumulate(&a, &cancel).unwrap();
            assert_eq!(want.last, got.last, "case {seed}: last rows differ");
            let bad = want
                .back
                .iter()
                .zip(&got.back)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                bad,
                0,
                "case {seed}: {bad} of {} back-pointers differ",
                a.cells.len()
            );
            // Not a trivial case: paths come from elsewhere than straight above.
            assert!(want.back.iter().zip(0..).any(|(&b, q)| b != a.lo[0] + q));
        }
    }

    #[test]
    fn gpu_window_correlations_equal_the_cpu_s_bit_for_bit() {
        use crate::align::features::Image;
        use crate::align::ncc::{self, QTemplate, Template, WindowDots};
        let Some(gpu) = gpu_or_skip() else {
            return;
        };
        let mut s = 11u32;
        let mut next = |m: u32| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) % m
        };
        // Images at the top of the fixed-point range (2040) and templates wide enough that a
        // row's sum comes close to the i32 limit; odd widths. The big template's own image
        // and its negative give totals past 2^32 of both signs.
        let source = Image::from_shape_fn((300, 800), |_| {
            if next(3) == 0 {
                255.0
            } else {
                next(256) as f32
            }
        });
        let own: Vec<i16> = ncc::quantise_image(&source);
        let negative: Vec<i16> = own.iter().map(|&v| 2040 - v).collect();
        let sizes = [(901, 333), (57, 31), (800, 300), (800, 300)];
        let mut images: Vec<(Vec<i16>, usize)> = sizes[..2]
            .iter()
            .map(|&(w, h)| {
                let q = (0..w * h)
                    .map(|_| {
                        if next(4) == 0 {
                            2040
                        } else {
                            next(2041) as i16
                        }
                    })
                    .collect();
                (q, w)
            })
            .collect();
        images.push((own, 800));
        images.push((negative, 800));
        let template = |img: &Image| QTemplate::new(&Template::new(img).unwrap()).unwrap();
        let small = |w: usize, h: usize, next: &mut dyn FnMut(u32) -> u32| {
            template(&Image::from_shape_fn((h, w), |_| next(256) as f32))
        };
        let templates = [
            template(&source),
            small(37, 21, &mut next),
            small(9, 5, &mut next),
        ];
        let mut jobs = vec![[0, 2, 0, 0], [0, 3, 0, 0]];
        for (ti, t) in templates.iter().enumerate() {
            for (ii, &(w, h)) in sizes.iter().enumerate().take(2) {
                if t.w > w || t.h > h {
                    continue;
                }
                for _ in 0..20 {
                    let u = next((w - t.w + 1) as u32);
                    let v = next((h - t.h + 1) as u32);
                    jobs.push([ti as u32, ii as u32, u, v]);
                }
            }
        }
        let w = WindowDots {
            images: images.iter().map(|(q, w)| (&q[..], *w)).collect(),
            templates: templates.iter().collect(),
            jobs,
        };
        let want = ncc::window_dots(&w);
        let got = gpu.window_dots(&w).unwrap();
        assert_eq!(want, got);
        // The big template's sums need more than 32 bits, of both signs.
        assert!(want[0] > i64::from(u32::MAX), "{}", want[0]);
        assert!(want[1] < -i64::from(u32::MAX), "{}", want[1]);
        // A window outside its image is refused, not read out of bounds.
        let mut bad = w.clone();
        bad.jobs.push([2, 1, 50, 0]);
        assert!(gpu.window_dots(&bad).is_err());
    }
}

#[cfg(test)]
mod backend_tests {
    use super::*;

    #[test]
    fn the_cpu_backend_never_needs_an_adapter() {
        let (b, why) = backend(Choice::Cpu).unwrap();
        assert_eq!(b.name(), "cpu");
        assert_eq!(why, "device=cpu");
        // auto takes the CPU unless the adapter is a hardware GPU, and looks for none where
        // the machine has no GPU device.
        let (b, why) = backend(Choice::Auto).unwrap();
        #[cfg(feature = "gpu")]
        if !may_have_gpu() {
            assert_eq!(b.name(), "cpu", "{why}");
            assert!(why.contains("no GPU device"), "{why}");
        }
        #[cfg(feature = "gpu")]
        match gpu::adapter() {
            Ok(info) if info.hardware => assert!(b.name().starts_with("gpu"), "{why}"),
            _ => assert_eq!(b.name(), "cpu", "{why}"),
        }
        #[cfg(not(feature = "gpu"))]
        {
            assert_eq!(b.name(), "cpu", "{why}");
            assert!(backend(Choice::Gpu).unwrap_err().contains("`gpu` feature"));
        }
    }
}
