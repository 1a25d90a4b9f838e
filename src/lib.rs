// SPDX-License-Identifier: MIT
#![allow(clippy::non_send_fields_in_send_ty)]

//! vidkompy: overlay a foreground video onto a background video of the same scene, aligned in
//! space and in time.
//!
//! The crate has three layers:
//! - [`align`]: the alignment math as a pure library (no GStreamer types);
//! - [`compute`] and [`composite`]: the heavy per-pixel kernels behind one trait;
//! - `vidkompyalign`: the GStreamer element, a thin shell that moves buffers, keeps state in a
//!   [`store`] and reports: [`messages`] on the bus, a [`report`] document, a [`plot`].

use gst::glib;

pub mod align;
pub mod composite;
pub mod compute;
pub mod messages;
pub mod plot;
pub mod report;
pub mod store;
mod vidkompyalign;

pub use vidkompyalign::{Device, MatchRegion, VidkompyAlign};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    vidkompyalign::register(plugin)
}

gst::plugin_define!(
    vidkompy,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
