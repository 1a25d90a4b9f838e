// SPDX-License-Identifier: MIT

//! Kernel benchmark without GStreamer: each heavy kernel on the CPU path and on the GPU path
//! (wgpu on the best Vulkan adapter, lavapipe included), on 1080p-sized data, with a check that
//! both give the same bytes. Needs only a Vulkan driver for the GPU side, so it runs on a GPU
//! machine without GStreamer's plugins.
//!
//! ```text
//! cargo run --release --example kernels -- [ITERATIONS]
//! ```

use gstvidkompy::align::ncc;
use gstvidkompy::align::temporal::{self, Features};
use gstvidkompy::composite::{Overlay, PlaneLayout, PlaneMut, PlaneRef};
use gstvidkompy::compute::{self, Compute};
use std::time::Instant;

fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as u8
        })
        .collect()
}

/// I420 planes of a `w` x `h` image, tightly packed, random content.
fn i420(w: u32, h: u32, seed: u32) -> (Vec<Vec<u8>>, Vec<usize>) {
    let layouts = layouts();
    let strides: Vec<usize> = layouts.iter().map(|l| l.plane_size(w, h).0).collect();
    let planes = layouts
        .iter()
        .zip(&strides)
        .enumerate()
        .map(|(p, (l, s))| noise(s * l.plane_size(w, h).1, seed + p as u32))
        .collect();
    (planes, strides)
}

fn layouts() -> [PlaneLayout; 3] {
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
    [y, c, c]
}

/// Composites a 960x540 footprint into a 1920x1080 bg `iters` times; returns seconds per
/// frame and the last result.
fn composite(
    backend: &dyn Compute,
    feather: u32,
    iters: usize,
) -> Result<(f64, Vec<Vec<u8>>), String> {
    let bg_size = (1920, 1080);
    let o = Overlay::new(480, 270, 960, 540, bg_size, feather);
    let (bg, bg_strides) = i420(bg_size.0, bg_size.1, 1);
    let (fg, fg_strides) = i420(o.width, o.height, 7);
    let src: Vec<PlaneRef> = fg
        .iter()
        .zip(&fg_strides)
        .map(|(d, &stride)| PlaneRef { data: d, stride })
        .collect();
    let mut out = bg.clone();
    let mut best = f64::INFINITY;
    for _ in 0..iters {
        out.clone_from(&bg);
        let mut dst: Vec<PlaneMut> = out
            .iter_mut()
            .zip(&bg_strides)
            .map(|(d, &stride)| PlaneMut { data: d, stride })
            .collect();
        let t = Instant::now();
        backend
            .composite(&layouts(), bg_size, &mut dst, &src, &o)
            .map_err(|e| e.to_string())?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((best, out))
}

/// Random quantised features (values of a unit-norm 576-d feature: about ±700 / 16384).
fn features(n: usize, d: usize, seed: u32) -> Features {
    let q = noise(n * d, seed)
        .into_iter()
        .map(|b| (i16::from(b) - 128) * 5)
        .collect();
    Features {
        q,
        d,
        flat: vec![false; n],
        mean: vec![100.0; n],
    }
}

/// Best time of `iters` runs of `f`, and its last result.
fn best<T>(iters: usize, mut f: impl FnMut() -> Result<T, String>) -> Result<(f64, T), String> {
    let mut t_best = f64::INFINITY;
    let mut last = None;
    for _ in 0..iters {
        let t = Instant::now();
        let r = f()?;
        t_best = t_best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    last.map(|r| (t_best, r))
        .ok_or_else(|| "no run".to_string())
}

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    println!(
        "{} cores; best of {iters} runs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let cpu = compute::cpu();
    let gpu: Option<compute::Gpu> = match compute::Gpu::new() {
        Ok(g) => {
            let i = g.info();
            println!("GPU: {} ({}, {})", i.name, i.kind, i.driver);
            Some(g)
        }
        Err(e) => {
            println!("GPU: none ({e})");
            None
        }
    };
    println!("| kernel | CPU ms | GPU ms | GPU / CPU | same bytes |");
    println!("|---|---|---|---|---|");
    for (label, feather) in [
        ("composite I420 1080p, paste 960x540", 0),
        ("composite I420 1080p, feather 16 px", 16),
    ] {
        let c = composite(cpu.as_ref(), feather, iters);
        let g = gpu.as_ref().map(|g| composite(g, feather, iters));
        print_row(label, c, g);
    }
    // Cost-matrix dot products (576-d features, as a 1080p footprint gives): a whole matrix
    // of a short pair, and the band DTW looks at on 10 minutes of 24 fps.
    for (label, n, m, width) in [
        ("cost dots, whole 1200 x 1440 matrix", 1200, 1440, 1440),
        ("cost dots, 14160 rows x 64-frame band", 14160, 14400, 64),
    ] {
        let (fg, bg) = (features(n, 576, 3), features(m, 576, 4));
        let lo: Vec<usize> = (0..n)
            .map(|i| {
                if width >= m {
                    0
                } else {
                    (i + 120).min(m - width)
                }
            })
            .collect();
        let runs = iters.min(5);
        let c = best(runs, || Ok(temporal::band_dots(&fg, &bg, &lo, width)));
        let g = gpu
            .as_ref()
            .map(|g| best(runs, || g.band_dots(&fg, &bg, &lo, width)));
        print_row(label, c, g);
    }
    // DTW accumulation over the same shapes (max step 4, jumps allowed).
    let cancel = gstvidkompy::align::Cancel::new();
    for (label, n, m, width) in [
        (
            "DTW accumulation, whole 1200 x 1440 matrix",
            1200,
            1440,
            1440,
        ),
        (
            "DTW accumulation, 14160 rows x 64-frame band",
            14160,
            14400,
            64,
        ),
    ] {
        let a = accumulation(n, m, width);
        let runs = iters.min(5);
        let c = best(runs, || {
            temporal::accumulate(&a, &cancel).map_err(|e| e.to_string())
        });
        let g = gpu
            .as_ref()
            .map(|g| best(runs, || g.accumulate(&a, &cancel)));
        print_row(label, c, g);
    }
    // The spatial refinement's correlations at its finest level for the 1080p bench pair: a
    // 480x270 template per pair against its 960x540 bg level, 6 pairs, 5 x 5 offsets at 5
    // scales (the window of one search step).
    let (images, templates) = refinement_level(6, (960, 540), (480, 270));
    let mut jobs = Vec::new();
    for k in 0..5u32 {
        for p in 0..6u32 {
            for v in 0..5 {
                for u in 0..5 {
                    jobs.push([p, p, 238 + u + k, 133 + v]);
                }
            }
        }
    }
    let w = ncc::WindowDots {
        images: images.iter().map(|q| (&q[..], 960)).collect(),
        templates: templates.iter().collect(),
        jobs,
    };
    let runs = iters.min(5);
    let c = best(runs, || Ok(ncc::window_dots(&w)));
    let g = gpu.as_ref().map(|g| best(runs, || g.window_dots(&w)));
    print_row("refinement NCC, 750 windows of 480x270 in 960x540", c, g);
}

/// `n` random bg level images of `size` in fixed point and a template of `t` for each.
fn refinement_level(
    n: usize,
    size: (usize, usize),
    t: (usize, usize),
) -> (Vec<Vec<i16>>, Vec<ncc::QTemplate>) {
    let images = (0..n)
        .map(|p| {
            noise(size.0 * size.1, 20 + p as u32)
                .into_iter()
                .map(|b| i16::from(b) * 8)
                .collect()
        })
        .collect();
    let templates = (0..n)
        .map(|p| {
            let bytes = noise(t.0 * t.1, 40 + p as u32);
            let img =
                ndarray::Array2::from_shape_fn((t.1, t.0), |(y, x)| f32::from(bytes[y * t.0 + x]));
            ncc::Template::new(&img)
                .and_then(|t| ncc::QTemplate::new(&t))
                .expect("a random template is not flat")
        })
        .collect();
    (images, templates)
}

/// A DTW band of random costs (up to 2) over `n` fg and `m` bg frames, rows `width` wide
/// along the diagonal.
fn accumulation(n: usize, m: usize, width: usize) -> temporal::Accumulation {
    let width = width.min(m);
    let lo: Vec<u32> = (0..n).map(|i| (i + 120).min(m - width) as u32).collect();
    let cells = noise(n * width * 4, 9)
        .chunks_exact(4)
        .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])) << 1)
        .collect();
    temporal::Accumulation {
        lo,
        start: (0..=n).map(|i| (i * width) as u32).collect(),
        cells,
        pen: [0u64, 0, 0, 1 << 28, 1 << 30].to_vec(),
        jump: Some(1 << 31),
    }
}

/// One table row: CPU and GPU times and whether both gave the same result.
fn print_row<T: PartialEq>(
    label: &str,
    c: Result<(f64, T), String>,
    g: Option<Result<(f64, T), String>>,
) {
    match (c, g) {
        (Ok((tc, oc)), Some(Ok((tg, og)))) => println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {} |",
            tc * 1e3,
            tg * 1e3,
            tg / tc,
            oc == og
        ),
        (Ok((tc, _)), None) => println!("| {label} | {:.2} | - | - | - |", tc * 1e3),
        (c, g) => println!(
            "| {label} | failed: {:?} {:?} |",
            c.err(),
            g.map(|g| g.err())
        ),
    }
}
