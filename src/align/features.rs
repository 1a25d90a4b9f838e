// SPDX-License-Identifier: MIT

//! Per-frame features: small downscaled luma images ("thumbnails"), resampling of regions of
//! them, and normalised feature vectors.
//!
//! Every frame of both pads gets a thumbnail as it arrives (a few KB): the fg's footprint is only
//! known after the spatial search, so footprint features are cut from thumbnails later.

use ndarray::Array2;

/// A grey image, `(height, width)`, values on the 0–255 scale.
pub type Image = Array2<f32>;

/// Thumbnails are at most this many pixels on their longer side.
pub const THUMB_MAX: usize = 160;

/// How luma is read from one plane of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LumaLayout {
    /// A luma (or grey) sample every `pixel_stride` bytes, starting at byte `offset`.
    Luma { pixel_stride: usize, offset: usize },
    /// Packed RGB: bytes of R, G and B at these offsets in each `pixel_stride`-byte pixel.
    Rgb {
        pixel_stride: usize,
        r: usize,
        g: usize,
        b: usize,
    },
}

/// One plane of a frame to read luma from.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
    pub layout: LumaLayout,
}

impl FrameView<'_> {
    /// Whether the plane holds `width` x `height` pixels of this layout.
    pub fn is_valid(&self) -> bool {
        let ps = match self.layout {
            LumaLayout::Luma { pixel_stride, .. } | LumaLayout::Rgb { pixel_stride, .. } => {
                pixel_stride
            }
        };
        let last = match self.layout {
            LumaLayout::Luma { offset, .. } => offset,
            LumaLayout::Rgb { r, g, b, .. } => r.max(g).max(b),
        };
        self.width > 0
            && self.height > 0
            && ps > 0
            && last < ps
            && self.stride >= self.width * ps
            && self.data.len() >= (self.height - 1) * self.stride + self.width * ps
    }

    #[inline]
    fn row_luma(&self, y: usize, out: &mut [f32]) {
        let row = &self.data[y * self.stride..];
        match self.layout {
            LumaLayout::Luma {
                pixel_stride,
                offset,
            } => {
                for (x, o) in out.iter_mut().enumerate() {
                    *o = f32::from(row[x * pixel_stride + offset]);
                }
            }
            LumaLayout::Rgb {
                pixel_stride,
                r,
                g,
                b,
            } => {
                for (x, o) in out.iter_mut().enumerate() {
                    let p = &row[x * pixel_stride..];
                    *o =
                        0.299 * f32::from(p[r]) + 0.587 * f32::from(p[g]) + 0.114 * f32::from(p[b]);
                }
            }
        }
    }
}

/// The box-downscaling factor that brings `width` x `height` under [`THUMB_MAX`].
pub fn thumb_factor(width: usize, height: usize) -> usize {
    width.max(height).div_ceil(THUMB_MAX).max(1)
}

/// Luma of `view` averaged over `factor` x `factor` blocks: pixel `(x, y)` of the result covers
/// source pixels `[x·f, (x+1)·f) x [y·f, (y+1)·f)`; a partial last block is dropped (at least
/// one output pixel is kept). Returns `None` when the view is inconsistent.
pub fn downscale(view: &FrameView<'_>, factor: usize) -> Option<Image> {
    if !view.is_valid() || factor == 0 {
        return None;
    }
    let f = factor;
    let ow = (view.width / f).max(1);
    let oh = (view.height / f).max(1);
    let (bw, bh) = (f.min(view.width), f.min(view.height));
    let mut out = Image::zeros((oh, ow));
    let mut line = vec![0f32; ow * bw];
    let norm = 1.0 / (bw * bh) as f32;
    for oy in 0..oh {
        let mut acc = vec![0f32; ow];
        for y in oy * f..oy * f + bh {
            view.row_luma(y, &mut line);
            for (ox, a) in acc.iter_mut().enumerate() {
                *a += line[ox * bw..ox * bw + bw].iter().sum::<f32>();
            }
        }
        for (ox, a) in acc.into_iter().enumerate() {
            out[(oy, ox)] = a * norm;
        }
    }
    Some(out)
}

/// An image averaged over `factor` x `factor` blocks (partial last blocks dropped, at least one
/// pixel kept); a copy when `factor` is 1.
pub fn downscale_image(img: &Image, factor: usize) -> Image {
    let f = factor.max(1);
    if f == 1 {
        return img.clone();
    }
    let (h, w) = img.dim();
    let (oh, ow) = ((h / f).max(1), (w / f).max(1));
    let (bh, bw) = (f.min(h), f.min(w));
    let norm = 1.0 / (bw * bh) as f32;
    Image::from_shape_fn((oh, ow), |(oy, ox)| {
        img.slice(ndarray::s![oy * f..oy * f + bh, ox * f..ox * f + bw])
            .sum()
            * norm
    })
}

/// A thumbnail: a downscaled luma image stored as bytes, with its factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumb {
    pub factor: usize,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Thumb {
    /// A thumbnail at most [`THUMB_MAX`] px on its longer side.
    pub fn new(view: &FrameView<'_>) -> Option<Thumb> {
        Self::at(view, thumb_factor(view.width, view.height))
    }

    /// The full-resolution luma (8 bits per sample, as the frame has it).
    pub fn full(view: &FrameView<'_>) -> Option<Thumb> {
        Self::at(view, 1)
    }

    fn at(view: &FrameView<'_>, factor: usize) -> Option<Thumb> {
        let img = downscale(view, factor)?;
        let (h, w) = img.dim();
        Some(Thumb {
            factor,
            width: w,
            height: h,
            data: img
                .iter()
                .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
        })
    }

    pub fn image(&self) -> Image {
        Image::from_shape_fn((self.height, self.width), |(y, x)| {
            f32::from(self.data[y * self.width + x])
        })
    }
}

/// A rectangle in continuous pixel coordinates: pixel `i` covers `[i, i+1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn scaled(&self, by: f64) -> Rect {
        Rect {
            x: self.x * by,
            y: self.y * by,
            w: self.w * by,
            h: self.h * by,
        }
    }
}

#[inline]
fn bilinear(img: &Image, x: f64, y: f64) -> f32 {
    let (h, w) = img.dim();
    let x = (x - 0.5).clamp(0.0, (w - 1) as f64);
    let y = (y - 0.5).clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let top = img[(y0, x0)] * (1.0 - fx) + img[(y0, x1)] * fx;
    let bot = img[(y1, x0)] * (1.0 - fx) + img[(y1, x1)] * fx;
    top * (1.0 - fy) + bot * fy
}

/// Resamples the region `r` of `img` to `out_w` x `out_h` pixels: bilinear samples, several
/// per output pixel when shrinking (a box prefilter), so that detail does not alias.
pub fn resample(img: &Image, r: Rect, out_w: usize, out_h: usize) -> Image {
    let sx = r.w / out_w as f64;
    let sy = r.h / out_h as f64;
    let nx = (sx.ceil() as usize).clamp(1, 4);
    let ny = (sy.ceil() as usize).clamp(1, 4);
    let norm = 1.0 / (nx * ny) as f32;
    Image::from_shape_fn((out_h, out_w), |(oy, ox)| {
        let mut acc = 0.0;
        for j in 0..ny {
            let y = r.y + sy * (oy as f64 + (j as f64 + 0.5) / ny as f64);
            for i in 0..nx {
                let x = r.x + sx * (ox as f64 + (i as f64 + 0.5) / nx as f64);
                acc += bilinear(img, x, y);
            }
        }
        acc * norm
    })
}

/// Which sides of a rectangle (a band along the inside of each is sampled by [`band`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sides {
    pub left: bool,
    pub right: bool,
    pub top: bool,
    pub bottom: bool,
}

impl Sides {
    pub const ALL: Sides = Sides {
        left: true,
        right: true,
        top: true,
        bottom: true,
    };

    pub fn any(&self) -> bool {
        self.left || self.right || self.top || self.bottom
    }
}

/// Bands `width` px wide along the inside of the chosen sides of `r`, each resampled to
/// `along` samples lengthwise (scaled by the side's length relative to the longer side, at
/// least 4) and 2 across, concatenated into one row.
pub fn band(img: &Image, r: Rect, sides: Sides, width: f64, along: usize) -> Image {
    let w = width.min(r.w / 2.0).min(r.h / 2.0).max(0.5);
    let long = r.w.max(r.h);
    let n = |len: f64| ((along as f64 * len / long).round() as usize).max(4);
    let mut parts: Vec<Image> = Vec::new();
    if sides.top {
        parts.push(resample(img, Rect { h: w, ..r }, n(r.w), 2));
    }
    if sides.bottom {
        let b = Rect {
            y: r.y + r.h - w,
            h: w,
            ..r
        };
        parts.push(resample(img, b, n(r.w), 2));
    }
    if sides.left {
        parts.push(resample(img, Rect { w, ..r }, 2, n(r.h)));
    }
    if sides.right {
        let b = Rect {
            x: r.x + r.w - w,
            w,
            ..r
        };
        parts.push(resample(img, b, 2, n(r.h)));
    }
    let v: Vec<f32> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let len = v.len();
    Image::from_shape_vec((1, len), v).unwrap_or_else(|_| Image::zeros((1, 0)))
}

/// Standard deviation (0–255 scale) under which a frame counts as flat (black, fades, a wall):
/// its zero-mean feature is undefined.
pub const FLAT_STD: f32 = 1.5;

/// A feature vector: zero mean and unit norm, or all zeros when flat; with the image's mean and
/// standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub v: Vec<f32>,
    pub mean: f32,
    pub std: f32,
}

impl Feature {
    pub fn is_flat(&self) -> bool {
        self.std < FLAT_STD
    }
}

pub fn normalize(img: &Image) -> Feature {
    let n = img.len().max(1) as f32;
    let mean = img.sum() / n;
    let var = img.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let std = var.sqrt();
    let v = if std < FLAT_STD {
        vec![0.0; img.len()]
    } else {
        let k = 1.0 / (std * n.sqrt());
        img.iter().map(|&v| (v - mean) * k).collect()
    };
    Feature { v, mean, std }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp_view(data: &[u8], w: usize, h: usize) -> FrameView<'_> {
        FrameView {
            data,
            stride: w,
            width: w,
            height: h,
            layout: LumaLayout::Luma {
                pixel_stride: 1,
                offset: 0,
            },
        }
    }

    #[test]
    fn downscale_averages_blocks() {
        let data: Vec<u8> = (0..16).map(|i| i as u8).collect();
        let img = downscale(&ramp_view(&data, 4, 4), 2).unwrap();
        assert_eq!(img.dim(), (2, 2));
        assert_eq!(img[(0, 0)], (1 + 4 + 5) as f32 / 4.0);
        assert_eq!(img[(1, 1)], (10 + 11 + 14 + 15) as f32 / 4.0);
    }

    #[test]
    fn rgb_luma_and_invalid_views() {
        let px = [255u8, 0, 0, 0, 0, 255, 0, 0];
        let v = FrameView {
            data: &px,
            stride: 8,
            width: 2,
            height: 1,
            layout: LumaLayout::Rgb {
                pixel_stride: 4,
                r: 0,
                g: 1,
                b: 2,
            },
        };
        let img = downscale(&v, 1).unwrap();
        assert!((img[(0, 0)] - 76.245).abs() < 0.01);
        assert!((img[(0, 1)] - 149.685).abs() < 0.01);
        let bad = FrameView { stride: 4, ..v };
        assert!(downscale(&bad, 1).is_none());
    }

    #[test]
    fn thumbnails_stay_small() {
        assert_eq!(thumb_factor(1920, 1080), 12);
        assert_eq!(thumb_factor(100, 50), 1);
        let data = vec![7u8; 1920 * 1080];
        let t = Thumb::new(&ramp_view(&data, 1920, 1080)).unwrap();
        assert_eq!((t.width, t.height), (160, 90));
        assert!(t.data.iter().all(|&v| v == 7));
    }

    #[test]
    fn resample_identity_and_region() {
        let img = Image::from_shape_fn((8, 8), |(y, x)| (y * 8 + x) as f32);
        let same = resample(
            &img,
            Rect {
                x: 0.0,
                y: 0.0,
                w: 8.0,
                h: 8.0,
            },
            8,
            8,
        );
        assert!(
            same.iter()
                .zip(img.iter())
                .all(|(a, b)| (a - b).abs() < 1e-4)
        );
        let part = resample(
            &img,
            Rect {
                x: 2.0,
                y: 4.0,
                w: 2.0,
                h: 2.0,
            },
            2,
            2,
        );
        assert_eq!(part[(0, 0)], 34.0);
        assert_eq!(part[(1, 1)], 43.0);
    }

    #[test]
    fn bands_sample_only_the_chosen_sides() {
        // 20x10 image: 200 inside, 0 on the outermost 2 px on the left
        let img = Image::from_shape_fn((10, 20), |(_, x)| if x < 2 { 0.0 } else { 200.0 });
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 20.0,
            h: 10.0,
        };
        let left = Sides {
            left: true,
            ..Default::default()
        };
        let b = band(&img, r, left, 2.0, 8);
        assert_eq!(b.dim(), (1, 8));
        assert!(b.iter().all(|&v| v < 1.0), "{b:?}");
        let top = Sides {
            top: true,
            ..Default::default()
        };
        let b = band(&img, r, top, 2.0, 8);
        assert_eq!(b.dim(), (1, 16));
        assert!(b[(0, 0)] < 100.0, "{b:?}");
        assert_eq!(b[(0, 7)], 200.0);
    }

    #[test]
    fn normalized_features_ignore_gain_and_offset() {
        let a = Image::from_shape_fn((4, 4), |(y, x)| (y * 4 + x) as f32);
        let b = a.mapv(|v| 2.0 * v + 30.0);
        let (fa, fb) = (normalize(&a), normalize(&b));
        let dot: f32 = fa.v.iter().zip(&fb.v).map(|(x, y)| x * y).sum();
        assert!((dot - 1.0).abs() < 1e-5);
        let flat = normalize(&Image::from_elem((4, 4), 16.0));
        assert!(flat.is_flat() && flat.v.iter().all(|&v| v == 0.0));
    }
}
