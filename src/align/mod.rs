// SPDX-License-Identifier: MIT

//! The alignment math as a pure library: plain numbers and slices in, numbers out, no GStreamer
//! types, so that every piece can be unit-tested on arrays.
//!
//! - [`analysis`]: the whole offline analysis, from thumbnails to footprint and mapping;
//! - [`features`]: per-frame thumbnails and normalised feature vectors;
//! - [`kernels`]: the heavy integer kernels behind one trait, for the CPU or a GPU backend;
//! - [`live`]: alignment of live streams on a sliding window, committed frame by frame;
//! - [`ncc`]: normalised cross-correlation, through FFTs or directly;
//! - [`spatial`]: the search for the fg's footprint (offset and scale);
//! - [`temporal`]: costs between footprint features and dynamic time warping;
//! - [`stretches`]: a fg whose caps change mid-stream, analysed stretch by stretch (each is
//!   reported as a `segment`);
//! - [`recheck`]: live mode's footprint decisions (early searches trusted, re-checks due, a
//!   re-check's verdict);
//! - [`placement`]: where the fg's footprint lies in the bg (offset and scale) and whether it fits;
//! - [`timing`]: frame times (gaps filled, frame duration estimated) and the running-time mapping
//!   of fg frames to bg frames.

pub mod analysis;
pub mod features;
pub mod kernels;
pub mod live;
pub mod ncc;
pub mod placement;
pub mod recheck;
pub mod spatial;
pub mod stretches;
pub mod temporal;
pub mod timing;

use std::sync::atomic::{AtomicBool, Ordering};

/// A flag that long computations poll so that a state change to NULL (or a flush) returns
/// promptly. Set by the element, read by loops in this module.
#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancelled: lets loops use `?`.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}

/// The computation was stopped through [`Cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Below this calibrated spatial confidence ([`spatial::calibrated`]: 0 is what content that
/// does not show the bg's scene scores, 1 a perfect match) the fg is taken not to show the bg's
/// scene. Real pairs in the tests measure 0.7 and more, unrelated ones 0.25 and less.
pub const MIN_CALIBRATED: f64 = 0.5;

/// Where no calibrated confidence was measured (a re-fit of a footprint found before), and for
/// live mode's searches ([`recheck::live_placed`]): below this spatial confidence (mean NCC of matched frames at the footprint) the fg is taken not
/// to show the bg's scene.
pub const MIN_SPATIAL_CONFIDENCE: f64 = 0.5;

/// Below this temporal confidence (mean distinctiveness of the matches) the content mapping is
/// not trusted and frames are mapped by running time.
pub const MIN_TEMPORAL_CONFIDENCE: f64 = 0.1;
