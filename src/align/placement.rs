// SPDX-License-Identifier: MIT

//! Where the fg's footprint lies in the bg.
//!
//! The footprint is the rectangle of the bg that the fg shows, after scaling the fg by `scale`
//! (footprint width / fg width). It must lie inside the bg.

use std::fmt;

/// A footprint in bg pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Left edge in the bg, px.
    pub x: u32,
    /// Top edge in the bg, px.
    pub y: u32,
    /// Footprint width, px.
    pub width: u32,
    /// Footprint height, px.
    pub height: u32,
    /// Footprint width / fg width.
    pub scale: f64,
}

/// What the user asked for: `None` means "not set".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Request {
    pub x: Option<u32>,
    pub y: Option<u32>,
    pub scale: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlacementError {
    /// A size is zero.
    Empty { fg: (u32, u32), bg: (u32, u32) },
    /// The footprint does not lie inside the bg.
    OutsideBg {
        fg: (u32, u32),
        scale: f64,
        footprint: (u32, u32),
        at: (u32, u32),
        bg: (u32, u32),
    },
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::Empty { fg, bg } => write!(
                f,
                "empty frame size: fg {}x{}, bg {}x{}",
                fg.0, fg.1, bg.0, bg.1
            ),
            PlacementError::OutsideBg {
                fg,
                scale,
                footprint,
                at,
                bg,
            } => write!(
                f,
                "the fg ({}x{}) at scale {scale} covers {}x{} px at ({}, {}), which does not fit \
                 inside the bg ({}x{}); set a smaller `scale` or other `x`/`y`",
                fg.0, fg.1, footprint.0, footprint.1, at.0, at.1, bg.0, bg.1
            ),
        }
    }
}

impl std::error::Error for PlacementError {}

/// Resolves a footprint from the request.
///
/// Unset `scale`: 1, except that when neither `x` nor `y` is set either, a fg larger than the
/// bg is shrunk to the largest scale that fits. Unset `x` / `y`: the footprint is centred on
/// that axis. The result must lie inside the bg, else [`PlacementError::OutsideBg`] names every
/// size involved.
pub fn resolve(fg: (u32, u32), bg: (u32, u32), req: Request) -> Result<Placement, PlacementError> {
    if fg.0 == 0 || fg.1 == 0 || bg.0 == 0 || bg.1 == 0 {
        return Err(PlacementError::Empty { fg, bg });
    }
    let fitted = req.scale.is_none() && req.x.is_none() && req.y.is_none();
    let scale = match req.scale {
        Some(s) => s,
        None if fitted => {
            let fit = (bg.0 as f64 / fg.0 as f64).min(bg.1 as f64 / fg.1 as f64);
            fit.min(1.0)
        }
        None => 1.0,
    };
    let mut width = ((fg.0 as f64 * scale).round() as u32).max(1);
    let mut height = ((fg.1 as f64 * scale).round() as u32).max(1);
    if fitted {
        // Rounding a fitted scale must not overflow the bg by one pixel.
        width = width.min(bg.0);
        height = height.min(bg.1);
    }
    let x = req.x.unwrap_or(bg.0.saturating_sub(width) / 2);
    let y = req.y.unwrap_or(bg.1.saturating_sub(height) / 2);
    let fits = width <= bg.0
        && height <= bg.1
        && u64::from(x) + u64::from(width) <= u64::from(bg.0)
        && u64::from(y) + u64::from(height) <= u64::from(bg.1);
    if !fits {
        return Err(PlacementError::OutsideBg {
            fg,
            scale,
            footprint: (width, height),
            at: (x, y),
            bg,
        });
    }
    Ok(Placement {
        x,
        y,
        width,
        height,
        scale,
    })
}

/// The footprint for a sub-pixel estimate: composited at the nearest pixel, kept inside the bg
/// (rounding may push it over by one pixel).
pub fn from_estimate(fg: (u32, u32), bg: (u32, u32), x: f64, y: f64, scale: f64) -> Placement {
    let width = ((fg.0 as f64 * scale).round() as u32).clamp(1, bg.0.max(1));
    let height = ((fg.1 as f64 * scale).round() as u32).clamp(1, bg.1.max(1));
    Placement {
        x: (x.round().max(0.0) as u32).min(bg.0 - width),
        y: (y.round().max(0.0) as u32).min(bg.1 - height),
        width,
        height,
        scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centred_at_scale_one_when_unset() {
        let p = resolve((100, 50), (300, 200), Request::default()).unwrap();
        assert_eq!((p.x, p.y, p.width, p.height), (100, 75, 100, 50));
        assert_eq!(p.scale, 1.0);
    }

    #[test]
    fn larger_fg_shrinks_to_fit_when_nothing_is_set() {
        let p = resolve((1920, 1080), (640, 480), Request::default()).unwrap();
        assert_eq!((p.width, p.height), (640, 360));
        assert_eq!((p.x, p.y), (0, 60));
    }

    #[test]
    fn larger_fg_with_position_but_no_scale_is_an_error_naming_sizes() {
        let req = Request {
            x: Some(0),
            y: Some(0),
            scale: None,
        };
        let err = resolve((1920, 1080), (640, 480), req).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("1920x1080") && msg.contains("640x480"),
            "{msg}"
        );
    }

    #[test]
    fn explicit_everything() {
        let req = Request {
            x: Some(10),
            y: Some(20),
            scale: Some(0.5),
        };
        let p = resolve((200, 100), (320, 240), req).unwrap();
        assert_eq!((p.x, p.y, p.width, p.height), (10, 20, 100, 50));
    }

    #[test]
    fn footprint_past_the_right_edge_is_refused() {
        let req = Request {
            x: Some(300),
            y: Some(0),
            scale: Some(1.0),
        };
        assert!(matches!(
            resolve((100, 100), (320, 240), req),
            Err(PlacementError::OutsideBg { .. })
        ));
    }

    #[test]
    fn estimates_round_to_the_nearest_pixel_inside_the_bg() {
        let p = from_estimate((100, 50), (200, 100), 99.6, 10.4, 1.0);
        assert_eq!((p.x, p.y, p.width, p.height), (100, 10, 100, 50));
        let p = from_estimate((100, 50), (200, 100), 100.6, -0.3, 1.0);
        assert_eq!((p.x, p.y), (100, 0));
    }

    #[test]
    fn empty_sizes_are_refused() {
        assert!(matches!(
            resolve((0, 10), (320, 240), Request::default()),
            Err(PlacementError::Empty { .. })
        ));
    }
}
