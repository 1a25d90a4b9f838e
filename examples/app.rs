// SPDX-License-Identifier: MIT

//! The pattern for application authors: embed `vidkompyalign` in a pipeline of your own, watch
//! the bus, and take the alignment from its `vidkompy-alignment` message (and the progress from
//! `vidkompy-progress`), read through `gstvidkompy::messages`.
//!
//! ```text
//! cargo run --release --example app -- BG FG
//! ```
//!
//! The composited frames go to `fakesink` here; link the element's src pad to an encoder, a
//! display or an `appsink` instead.

use gst::prelude::*;
use gstvidkompy::messages::{Alignment, ElementMessage, Progress};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bg, fg] = args.as_slice() else {
        eprintln!("usage: app BG FG");
        std::process::exit(2);
    };
    if let Err(e) = run(bg, fg) {
        eprintln!("app: {e}");
        std::process::exit(1);
    }
}

fn run(bg: &str, fg: &str) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    // An application that links the plugin's crate registers the element itself; one that
    // does not finds it through GST_PLUGIN_PATH or where meson installed it.
    gstvidkompy::plugin_register_static().map_err(|e| e.to_string())?;

    let pipeline = gst::Pipeline::new();
    let align = gst::ElementFactory::make("vidkompyalign")
        .build()
        .map_err(|e| e.to_string())?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .map_err(|e| e.to_string())?;
    pipeline
        .add_many([&align, &sink])
        .map_err(|e| e.to_string())?;
    align.link(&sink).map_err(|e| e.to_string())?;
    for (path, pad) in [(bg, "bg"), (fg, "fg")] {
        let src = gst::ElementFactory::make("filesrc")
            .property("location", path)
            .build()
            .map_err(|e| e.to_string())?;
        let decode = gst::ElementFactory::make("decodebin")
            .build()
            .map_err(|e| e.to_string())?;
        let convert = gst::ElementFactory::make("videoconvert")
            .build()
            .map_err(|e| e.to_string())?;
        pipeline
            .add_many([&src, &decode, &convert])
            .map_err(|e| e.to_string())?;
        src.link(&decode).map_err(|e| e.to_string())?;
        convert
            .link_pads(Some("src"), &align, Some(pad))
            .map_err(|e| e.to_string())?;
        // decodebin's pads appear once it knows the streams: link the video one.
        let convert = convert.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let video = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            if let Some(sink) = convert.upgrade().and_then(|c| c.static_pad("sink"))
                && video
                && !sink.is_linked()
            {
                let _ = pad.link(&sink);
            }
        });
    }

    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            break Err("the bus closed".to_string());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(format!("{} ({:?})", e.error(), e.debug())),
            // Live: the element raised its latency (`max-lookahead`): configure the pipeline's
            // again, as gst-launch does.
            gst::MessageView::Latency(_) => {
                let _ = pipeline.recalculate_latency();
            }
            gst::MessageView::Element(_) => {
                // The element's messages as Rust types (`gstvidkompy::messages`); from C or
                // Python, read the same fields of the message's structure.
                if let Some(p) = Progress::from_message(&msg) {
                    println!("progress: {p:?}");
                } else if let Some(a) = Alignment::from_message(&msg) {
                    let a = match a {
                        Ok(a) => a,
                        Err(e) => break Err(e.to_string()),
                    };
                    println!(
                        "alignment: fg at x={:.2} y={:.2} scale={:.4} (spatial confidence \
                         {:.3}, footprint from {}), bg frames {}..={}, mapping by {}",
                        a.x,
                        a.y,
                        a.scale,
                        a.spatial_confidence,
                        a.footprint_from,
                        a.first_bg_frame,
                        a.last_bg_frame,
                        a.mapping,
                    );
                }
            }
            _ => (),
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}
