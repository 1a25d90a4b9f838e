// SPDX-License-Identifier: MIT

//! The offline analysis alone, repeated, on a real pair: decodes both files once (thumbnails
//! of every frame, then the full-resolution luma of the frames the refinement asks for), then
//! runs the pure library analysis `RUNS` times and prints each stage's fastest time. For
//! working on the analysis's speed on a shared machine: no decoding in the timed part, and the
//! minimum of several runs is far less noisy than one pipeline run. With `--gpu`, the kernels
//! behind `Kernels` (cost dots, DTW, refinement correlations) run on the GPU.
//!
//! ```text
//! cargo run --release --example analysis -- [--gpu] [BG FG] [RUNS]
//! ```
//!
//! Without files, the 1-minute pair of `cargo run --release --example long -- 1` (generate it
//! first).

#[path = "../tests/common/mod.rs"]
mod common;

use gst::prelude::*;
use gstvidkompy::align::analysis::{self, Input, Region, Side};
use gstvidkompy::align::features::{FrameView, LumaLayout, Thumb};
use gstvidkompy::align::spatial::{Constraints, Geometry};
use gstvidkompy::align::{Cancel, temporal};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("analysis: {e}");
        std::process::exit(1);
    }
}

/// Decoded luma of one stream: size, frame duration and what `keep` made of each frame.
struct Decoded<T> {
    size: (u32, u32),
    fps: Option<f64>,
    frames: Vec<T>,
}

/// Decodes `src` to I420 and passes each frame's luma to `keep(index, view)`.
fn decode<T>(
    src: &Path,
    mut keep: impl FnMut(usize, &FrameView<'_>) -> Option<T>,
) -> Result<Decoded<T>, String> {
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! \
         appsink name=s sync=false max-buffers=8",
        common::q(src)
    ))
    .map_err(|e| e.to_string())?;
    let sink: gst_app::AppSink = common::element(&p, "s")?;
    p.set_state(gst::State::Playing)
        .map_err(|e| format!("cannot decode {}: {e}", src.display()))?;
    let (mut frames, mut info, mut index) = (Vec::new(), None, 0usize);
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        if info.is_none() {
            let caps = sample.caps().ok_or("no caps")?;
            info = Some(gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?);
        }
        let (Some(info), Some(buffer)) = (info.as_ref(), sample.buffer()) else {
            continue;
        };
        let map = buffer.map_readable().map_err(|e| e.to_string())?;
        let offset = info.offset()[0];
        let view = FrameView {
            data: map.get(offset..).ok_or("short buffer")?,
            stride: info.stride()[0] as usize,
            width: info.width() as usize,
            height: info.height() as usize,
            layout: LumaLayout::Luma {
                pixel_stride: 1,
                offset: 0,
            },
        };
        if let Some(t) = keep(index, &view) {
            frames.push(t);
        }
        index += 1;
    }
    let _ = p.set_state(gst::State::Null);
    let info = info.ok_or_else(|| format!("no frame decoded from {}", src.display()))?;
    let fps = info.fps();
    Ok(Decoded {
        size: (info.width(), info.height()),
        fps: (fps.numer() > 0).then(|| fps.numer() as f64 / fps.denom() as f64),
        frames,
    })
}

fn run() -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // --gpu: the analysis's kernels on the GPU (any adapter, lavapipe included).
    let gpu = match args.iter().position(|a| a == "--gpu") {
        Some(at) => {
            args.remove(at);
            let g = gstvidkompy::compute::Gpu::new()?;
            println!("kernels on the GPU: {}", g.info().name);
            Some(g)
        }
        None => None,
    };
    let (bg, fg, runs) = match args.as_slice() {
        [bg, fg, rest @ ..] => (
            PathBuf::from(bg),
            PathBuf::from(fg),
            rest.first().and_then(|r| r.parse().ok()).unwrap_or(5usize),
        ),
        rest => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-long");
            (
                dir.join("bg-1min.mkv"),
                dir.join("fg-1min.mkv"),
                rest.first().and_then(|r| r.parse().ok()).unwrap_or(5usize),
            )
        }
    };
    for f in [&bg, &fg] {
        if !f.exists() {
            return Err(format!(
                "{} does not exist (cargo run --release --example long -- 1 makes it)",
                f.display()
            ));
        }
    }
    let t = Instant::now();
    let bgd = decode(&bg, |_, v| Thumb::new(v))?;
    let fgd = decode(&fg, |_, v| Thumb::new(v))?;
    println!(
        "decoded thumbnails of {} bg and {} fg frames in {:.1} s",
        bgd.frames.len(),
        fgd.frames.len(),
        t.elapsed().as_secs_f64()
    );
    let geometry = Geometry {
        fg: fgd.size,
        bg: bgd.size,
    };
    let nominal_rate = match (fgd.fps, bgd.fps) {
        (Some(f), Some(b)) => Some(b / f),
        _ => None,
    };
    let input = Input {
        fg: &fgd.frames,
        bg: &bgd.frames,
        dots: match &gpu {
            Some(g) => g,
            None => &gstvidkompy::align::kernels::CpuKernels,
        },
        spills: &temporal::InMemory,
        geometry,
        constraints: Constraints::default(),
        nominal_rate,
        region: Region::Footprint,
        fg_slots: None,
    };
    let cancel = Cancel::new();
    let begun = analysis::begin(&input, &cancel)
        .map_err(|e| e.to_string())?
        .ok_or("nothing to align")?;
    // The frames refinement asks for (the second round's are within one frame of the first's).
    let widen = |v: &[usize]| -> Vec<usize> {
        let mut w: Vec<usize> = v
            .iter()
            .flat_map(|&i| i.saturating_sub(1)..=i + 1)
            .collect();
        w.sort_unstable();
        w.dedup();
        w
    };
    let (want_bg, want_fg) = (widen(&begun.wanted.bg), widen(&begun.wanted.fg));
    let full = |want: &[usize]| {
        let want = want.to_vec();
        move |i: usize, v: &FrameView<'_>| {
            want.binary_search(&i)
                .ok()
                .and_then(|_| Thumb::full(v).map(|t| (i, Arc::new(t))))
        }
    };
    let bg_full: BTreeMap<usize, Arc<Thumb>> =
        decode(&bg, full(&want_bg))?.frames.into_iter().collect();
    let fg_full: BTreeMap<usize, Arc<Thumb>> =
        decode(&fg, full(&want_fg))?.frames.into_iter().collect();
    let luma = |side: Side, i: usize| match side {
        Side::Bg => bg_full.get(&i).cloned(),
        Side::Fg => fg_full.get(&i).cloned(),
    };
    let mut best: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut best_total = f64::INFINITY;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let a = analysis::analyse(&input, &luma, &cancel)
            .map_err(|e| e.to_string())?
            .ok_or("nothing to align")?;
        best_total = best_total.min(t.elapsed().as_secs_f64());
        for (stage, s) in &a.timings.0 {
            let e = best.entry(stage).or_insert(f64::INFINITY);
            *e = e.min(*s);
        }
        last = Some(a);
    }
    let a = last.ok_or("no run")?;
    println!(
        "{} x {} frames, {runs} runs: fastest analysis {:.3} s; fastest per stage: {}",
        input.fg.len(),
        input.bg.len(),
        best_total,
        best.iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(e) = gpu.as_ref().and_then(|g| {
        use gstvidkompy::compute::Compute;
        g.take_failure()
    }) {
        println!("the GPU failed, that work ran on the CPU: {e}");
    }
    println!(
        "x {:.2} y {:.2} scale {:.4} spatial {:.4} temporal {:.4}; fg 0 -> bg {}",
        a.x,
        a.y,
        a.scale,
        a.spatial_confidence,
        a.temporal_confidence,
        a.mapping.first().copied().unwrap_or(0)
    );
    Ok(())
}
