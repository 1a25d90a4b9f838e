// SPDX-License-Identifier: MIT

//! Live accuracy and latency for several `lookahead` and `max-lookahead` values: ground-truth
//! pairs derived from a real clip, played in real time (`appsrc is-live ! clocksync` into each
//! pad), one row per lookahead, max-lookahead and relative delay.
//!
//! ```text
//! cargo run --release --example live -- [CLIP]
//! ```
//!
//! "bg leads": the fg feed starts later (a delayed copy), so each fg frame's match arrived
//! before it. "bg lags": the bg shows each moment after the fg does, so the match arrives that
//! much after the fg frame; it can be used only when the lookahead covers the lag, or
//! `max-lookahead` lets the element raise it ("lookahead used": the last `vidkompy-lookahead`
//! message's). "Late" is how long after its own running time each output frame reached the sink
//! (median and maximum).

#[path = "../tests/common/mod.rs"]
mod common;

use common::truth::{self, Case, Feed, Live};
use gst::prelude::*;
use gstvidkompy::messages::{ElementMessage, LookaheadRaised};

/// Source frames decoded (at 960x540): 7.5 s of the project's clip.
const FRAMES: usize = 180;

/// A live case over the clip's frames: the bg leads the fg by `lead` frames (negative: lags).
fn case(lead: i64, lookahead_s: f64, max_lookahead_s: f64) -> Case {
    let n = FRAMES as i64;
    let (fg_src, fg_start) = if lead >= 0 {
        // The fg starts `lead` frames late, showing the clip from its start.
        ((0..(n - lead) as usize).collect(), lead as u64)
    } else {
        // The fg starts with the bg but shows the clip `-lead` frames ahead.
        ((-lead as usize..n as usize).collect(), 0)
    };
    let mut c = Case::new((0..FRAMES).collect(), fg_src);
    c.live = Some(Live {
        fg_start: gst::ClockTime::SECOND.mul_div_floor(fg_start, 24).unwrap(),
        feed: Feed::LiveSources,
    });
    let ns = |s: f64| (s * 1e9) as u64;
    c.props
        .push(("lookahead", gst::glib::Value::from(ns(lookahead_s))));
    c.props
        .push(("max-lookahead", gst::glib::Value::from(ns(max_lookahead_s))));
    c
}

fn main() {
    gst::init().expect("GStreamer");
    gstvidkompy::plugin_register_static().expect("plugin");
    let path = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(common::footage);
    let src = truth::load(&path, Some((960, 540)), FRAMES);
    println!(
        "clip: {} ({FRAMES} frames at 960x540, 24 fps); bg 640x360, fg footprint 320x180 at \
         (200, 88) recorded at 1.5x, re-graded; fed in real time\n",
        path.display(),
    );
    println!(
        "| lookahead s | max-lookahead s | relative delay | fg frames | exact | within ±1 | max \
         dev | lookahead used s | late ms (median / max) | messages |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    // `VIDKOMPY_LIVE_ONLY=0.5` runs one lookahead; `VIDKOMPY_LIVE_MAX=0` one max-lookahead;
    // `VIDKOMPY_LIVE_LEAD=-10` one relative delay (bg frames the bg leads by).
    let env = |name: &str| -> Option<f64> { std::env::var(name).ok()?.parse().ok() };
    let only = env("VIDKOMPY_LIVE_ONLY");
    let only_max = env("VIDKOMPY_LIVE_MAX");
    let only_lead = env("VIDKOMPY_LIVE_LEAD");
    for lookahead in [0.2, 0.5, 1.0, 2.0, 3.0] {
        if only.is_some_and(|o| o != lookahead) {
            continue;
        }
        for max_lookahead in [0.0, 3.0] {
            if only_max.is_some_and(|o| o != max_lookahead) {
                continue;
            }
            for (what, lead) in [
                ("bg leads 1 s", 24),
                ("bg lags 0.4 s", -10),
                ("bg lags 1 s", -24),
                ("bg lags 2 s", -48),
            ] {
                if only_lead.is_some_and(|o| o != lead as f64) {
                    continue;
                }
                row(&src, lookahead, max_lookahead, what, lead);
            }
        }
    }
}

fn row(src: &truth::Source, lookahead: f64, max_lookahead: f64, what: &str, lead: i64) {
    let case = case(lead, lookahead, max_lookahead);
    let o = truth::run(src, &case);
    if !o.errors.is_empty() || o.alignment.is_none() {
        println!(
            "| {lookahead} | {max_lookahead} | {what} | error: {:?} | | | | | | |",
            o.errors
        );
        return;
    }
    let s = truth::score(&case, &o);
    let mut late = o.lateness_ms.clone();
    late.sort_by(f64::total_cmp);
    let median = late.get(late.len() / 2).copied().unwrap_or(f64::NAN);
    let max = late.last().copied().unwrap_or(f64::NAN);
    let mut names: Vec<String> = Vec::new();
    let mut used = lookahead;
    for m in &o.messages {
        if let Ok(r) = LookaheadRaised::from_structure(m) {
            used = r.lookahead as f64 / 1e9;
        }
        let n = m.name().to_string();
        if n != "vidkompy-alignment" && !names.contains(&n) {
            names.push(n);
        }
    }
    if !o.warnings.is_empty() {
        names.push(format!("{} warning(s)", o.warnings.len()));
    }
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "| {lookahead} | {max_lookahead} | {what} | {} | {:.1} % | {:.1} % | {} | {used:.2} | \
         {median:.0} / {max:.0} | {} |",
        s.inside,
        pct(s.exact, s.inside),
        pct(s.within_one, s.inside),
        if s.max_dev == usize::MAX {
            "-".to_string()
        } else {
            s.max_dev.to_string()
        },
        names.join(", ")
    );
}
