// SPDX-License-Identifier: MIT

//! Offline benchmark on a 1080p pair: the same decodes through `vidkompyalign` (automatic
//! alignment, `device=cpu`; `windowed`: one pass aligned on a sliding window (the default,
//! `frames=windowed`), `read-again`: two passes over the files, `stored`: `frames=stored`,
//! `budget`: the default with `max-memory=67108864`, `gpu`: the default with `device=gpu`,
//! when there is an adapter) and through
//! `compositor` at the known offset, all into `fakesink sync=false`.
//! Prints wall times, their ratio, the analysis time and each run's peak memory (VmHWM; every
//! pipeline runs in a child process of its own).
//!
//! ```text
//! cargo run --release --example bench -- [SOURCE_CLIP]
//! ```
//!
//! The default clip is the tests' (opencv-doc's Megamind.avi, 720x528, scaled up); pass a
//! 1080p clip for figures on real 1080p detail.

#[path = "../tests/common/mod.rs"]
mod common;

use gst::prelude::*;
use gstvidkompy::messages::{Alignment, ElementMessage};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Footprint of the fg in the 1920x1080 bg, and how the fg was recorded.
const FOOTPRINT: (u32, u32, u32, u32) = (480, 270, 960, 540);
const FG_SCALE: f64 = 1.5;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = if args.first().map(String::as_str) == Some("--run") {
        child(&args[1..])
    } else {
        parent(args.first().map(PathBuf::from))
    };
    if let Err(e) = res {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// Runs one pipeline; prints `wall_s analysis_s vmhwm_kib frames`.
fn child(args: &[String]) -> Result<(), String> {
    let [mode, bg, fg] = args else {
        return Err("usage: --run MODE BG FG".into());
    };
    gst::init().map_err(|e| e.to_string())?;
    gstvidkompy::plugin_register_static().map_err(|e| e.to_string())?;
    let (bg, fg) = (common::q(Path::new(bg)), common::q(Path::new(fg)));
    let (x, y, w, h) = FOOTPRINT;
    let desc = match mode.as_str() {
        "compositor" => format!(
            "compositor name=c sink_1::xpos={x} sink_1::ypos={y} sink_1::width={w} \
             sink_1::height={h} ! video/x-raw,format=I420 ! identity name=count ! \
             fakesink sync=false \
             filesrc location={bg} ! decodebin ! videoconvert ! c.sink_0 \
             filesrc location={fg} ! decodebin ! videoconvert ! c.sink_1"
        ),
        "read-again" | "stored" | "gpu" | "windowed" | "budget" => format!(
            "vidkompyalign name=a frames={} device={} {} ! identity name=count ! \
             fakesink sync=false \
             filesrc location={bg} ! decodebin ! videoconvert ! a.bg \
             filesrc location={fg} ! decodebin ! videoconvert ! a.fg",
            match mode.as_str() {
                "stored" => "stored",
                "read-again" => "read-again",
                _ => "windowed",
            },
            if mode == "gpu" { "gpu" } else { "cpu" },
            if mode == "budget" {
                "max-memory=67108864"
            } else {
                ""
            },
        ),
        "decode" => format!(
            "filesrc location={bg} ! decodebin ! videoconvert ! identity name=count ! \
             fakesink sync=false filesrc location={fg} ! decodebin ! videoconvert ! \
             fakesink sync=false"
        ),
        m => return Err(format!("unknown mode {m}")),
    };
    let pipeline = gst::parse::launch(&desc).map_err(|e| e.to_string())?;
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(count) = pipeline
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("count"))
    {
        let f = frames.clone();
        count.connect("handoff", false, move |_| {
            f.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        });
        count.set_property("signal-handoffs", true);
    }
    let bus = pipeline.bus().ok_or("no bus")?;
    let start = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let mut analysis = f64::NAN;
    let res = loop {
        let Some(m) = bus.timed_pop(gst::ClockTime::from_seconds(600)) else {
            break Err("timeout".to_string());
        };
        match m.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(format!("{} {:?}", e.error(), e.debug())),
            gst::MessageView::Element(_) => {
                if let Some(Ok(a)) = Alignment::from_message(&m) {
                    analysis = a.analysis_time.seconds_f64();
                    eprintln!("{a:?}");
                }
            }
            _ => (),
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let _ = pipeline.set_state(gst::State::Null);
    res?;
    println!(
        "{wall:.3} {analysis:.3} {} {}",
        common::vm_hwm_kib().unwrap_or(0),
        frames.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

fn parent(src: Option<PathBuf>) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    let src = src.unwrap_or_else(common::footage);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let (bg, fg) = (dir.join("bg.mkv"), dir.join("fg.mkv"));
    if !bg.is_file() || !fg.is_file() {
        println!("deriving a 1080p pair from {} ...", src.display());
        // bg: the clip at 1920x1080; fg: the footprint at 1.5x, 1 s later, 120 frames.
        common::make_pair(
            &src,
            &dir,
            (1920, 1080),
            181,
            FOOTPRINT,
            FG_SCALE,
            (24, 120),
        )?;
    }
    let run = |mode: &str| -> Result<(f64, f64, u64, u64), String> {
        let v = common::run_child(&[mode.as_ref(), bg.as_ref(), fg.as_ref()])?;
        let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
        Ok((at(0), at(1), at(2) as u64, at(3) as u64))
    };
    println!(
        "{:<12} {:>8} {:>10} {:>12} {:>7}",
        "pipeline", "wall s", "analysis s", "VmHWM MiB", "frames"
    );
    let mut walls = Vec::new();
    let mut peaks = Vec::new();
    let gpu = gstvidkompy::compute::gpu::adapter().ok();
    let mut modes = vec![
        "decode",
        "compositor",
        "windowed",
        "read-again",
        "stored",
        "budget",
    ];
    if gpu.is_some() {
        modes.push("gpu");
    }
    for mode in modes {
        let (wall, analysis, hwm, frames) = run(mode)?;
        println!(
            "{mode:<12} {wall:>8.2} {analysis:>10.2} {:>12.0} {frames:>7}",
            hwm as f64 / 1024.0
        );
        walls.push(wall);
        peaks.push(hwm as f64 / 1024.0);
    }
    println!(
        "vidkompyalign / compositor wall time: windowed (the default) {:.2}x, read-again {:.2}x, \
         stored {:.2}x (decode alone: {:.2}x of compositor)",
        walls[2] / walls[1],
        walls[3] / walls[1],
        walls[4] / walls[1],
        walls[0] / walls[1]
    );
    println!(
        "max-memory=64 MiB: {:.2}x compositor, peak {:.0} MiB = decode's {:.0} MiB + {:.0} MiB \
         (default: + {:.0} MiB)",
        walls[5] / walls[1],
        peaks[5],
        peaks[0],
        peaks[5] - peaks[0],
        peaks[2] - peaks[0]
    );
    if let (Some(info), Some(g)) = (gpu, walls.get(6)) {
        println!(
            "device=gpu ({}) / device=cpu, windowed: {:.2}x wall; to compositor {:.2}x",
            info.name,
            g / walls[2],
            g / walls[1]
        );
    }
    Ok(())
}
