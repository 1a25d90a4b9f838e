// SPDX-License-Identifier: MIT

//! Per-frame features: small downscaled luma images ("thumbnails"), resampling of regions of
//! them, and normalised feature vectors.
//!
//! Every frame of both pads gets a thumbnail as it arrives (a few KB): the fg's footprint is only
//! known after the spatial search, so footprint features are cut from thumbnails later.

use ndarray::Array2;
use std::borrow::Cow;
use std::sync::Arc;

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

    /// Adds the luma of row `y`, summed over blocks of `bw` pixels (one sum per output
    /// column, in units of 1/[`LUMA_ONE`]), to `acc`.
    #[inline]
    fn add_row_blocks(&self, y: usize, bw: usize, acc: &mut [u64]) {
        let row = &self.data[y * self.stride..];
        match self.layout {
            LumaLayout::Luma {
                pixel_stride,
                offset,
            } => {
                for (ox, a) in acc.iter_mut().enumerate() {
                    let s: u32 = (ox * bw..ox * bw + bw)
                        .map(|x| u32::from(row[x * pixel_stride + offset]))
                        .sum();
                    *a += u64::from(s) * LUMA_ONE;
                }
            }
            LumaLayout::Rgb {
                pixel_stride,
                r,
                g,
                b,
            } => {
                for (ox, a) in acc.iter_mut().enumerate() {
                    let s: u64 = (ox * bw..ox * bw + bw)
                        .map(|x| {
                            let p = &row[x * pixel_stride..];
                            WR * u64::from(p[r]) + WG * u64::from(p[g]) + WB * u64::from(p[b])
                        })
                        .sum();
                    *a += s;
                }
            }
        }
    }
}

/// Fixed-point unit of luma sums: BT.601 weights in 1/65536 (they add up to exactly one).
const LUMA_ONE: u64 = 65536;
const WR: u64 = 19595;
const WG: u64 = 38470;
const WB: u64 = 7471;

/// The box-downscaling factor that brings `width` x `height` under [`THUMB_MAX`].
pub fn thumb_factor(width: usize, height: usize) -> usize {
    width.max(height).div_ceil(THUMB_MAX).max(1)
}

/// Luma of `view` averaged over `factor` x `factor` blocks and rounded to bytes: pixel
/// `(x, y)` of the result covers source pixels `[x·f, (x+1)·f) x [y·f, (y+1)·f)`; a partial
/// last block is dropped (at least one output pixel is kept). Integer sums throughout, so it
/// costs about one addition per source pixel. Returns `(width, height, bytes)`, or `None` when
/// the view is inconsistent.
/// Means of `bw` x `bh` blocks at steps of `f` of planar luma (at `offset` in each row),
/// `ow` x `oh` of them: rows summed into columns in `A` first (vectorises), then blocks of
/// columns; rounded as the general path of [`downscale`] rounds.
fn block_means<A>(
    view: &FrameView<'_>,
    (f, (ow, oh), (bw, bh), offset): (usize, (usize, usize), (usize, usize), usize),
) -> Vec<u8>
where
    A: Copy + Default + std::ops::AddAssign + From<u8> + Into<u64>,
{
    let n = (bw * bh) as u64;
    let mut out = Vec::with_capacity(ow * oh);
    let mut col = vec![A::default(); ow * bw];
    for oy in 0..oh {
        col.fill(A::default());
        for y in oy * f..oy * f + bh {
            let row = &view.data[y * view.stride + offset..][..ow * bw];
            for (c, &v) in col.iter_mut().zip(row) {
                *c += A::from(v);
            }
        }
        out.extend(col.chunks_exact(bw).map(|b| {
            let s: u64 = b.iter().map(|&v| v.into()).sum();
            ((2 * s + n) / (2 * n)).min(255) as u8
        }));
    }
    out
}

pub fn downscale(view: &FrameView<'_>, factor: usize) -> Option<(usize, usize, Vec<u8>)> {
    if !view.is_valid() || factor == 0 {
        return None;
    }
    if let (
        1,
        LumaLayout::Luma {
            pixel_stride: 1,
            offset,
        },
    ) = (factor, view.layout)
    {
        let (w, h) = (view.width, view.height);
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            out.extend_from_slice(&view.data[y * view.stride + offset..][..w]);
        }
        return Some((w, h, out));
    }
    let f = factor;
    let ow = (view.width / f).max(1);
    let oh = (view.height / f).max(1);
    let (bw, bh) = (f.min(view.width), f.min(view.height));
    let mut out = Vec::with_capacity(ow * oh);
    if let LumaLayout::Luma {
        pixel_stride: 1,
        offset,
    } = view.layout
    {
        // Planar luma (the usual case). Column sums of up to 257 rows fit 16 bits: twice the
        // lanes of 32-bit sums.
        let block = (f, (ow, oh), (bw, bh), offset);
        let out = if bh <= 257 {
            block_means::<u16>(view, block)
        } else {
            block_means::<u32>(view, block)
        };
        return Some((ow, oh, out));
    }
    let n = (bw * bh) as u64 * LUMA_ONE;
    let mut acc = vec![0u64; ow];
    for oy in 0..oh {
        acc.fill(0);
        for y in oy * f..oy * f + bh {
            view.add_row_blocks(y, bw, &mut acc);
        }
        out.extend(acc.iter().map(|&a| ((a + n / 2) / n).min(255) as u8));
    }
    Some((ow, oh, out))
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
    let mut out = Image::zeros((oh, ow));
    let mut col = vec![0f32; ow * bw];
    for (oy, mut orow) in out.rows_mut().into_iter().enumerate() {
        col.fill(0.0);
        for y in oy * f..oy * f + bh {
            for (c, &v) in col.iter_mut().zip(img.row(y)) {
                *c += v;
            }
        }
        for (o, b) in orow.iter_mut().zip(col.chunks_exact(bw)) {
            *o = b.iter().sum::<f32>() * norm;
        }
    }
    out
}

/// A thumbnail: a downscaled luma image stored as bytes, with its factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumb {
    pub factor: usize,
    pub width: usize,
    pub height: usize,
    pub data: Bytes,
}

/// A thumbnail's bytes, row after row: its own, or those of a frame held elsewhere (a
/// full-resolution luma plane read in place rather than copied).
#[derive(Clone)]
pub enum Bytes {
    Owned(Vec<u8>),
    Shared(Arc<dyn AsRef<[u8]> + Send + Sync>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared(s) => s.as_ref().as_ref(),
        }
    }
}

impl std::ops::DerefMut for Bytes {
    /// Shared bytes are copied first (the frame they belong to stays as it is).
    fn deref_mut(&mut self) -> &mut [u8] {
        if let Bytes::Shared(s) = self {
            *self = Bytes::Owned(s.as_ref().as_ref().to_vec());
        }
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared(_) => &mut [],
        }
    }
}

impl FromIterator<u8> for Bytes {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        Bytes::Owned(iter.into_iter().collect())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes::Owned(v)
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
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

    /// The full-resolution luma of a frame held elsewhere, read in place: `bytes` holds
    /// `width` x `height` samples, row after row (`None` when it holds another number: a
    /// thumbnail's bytes are its samples and nothing else).
    pub fn shared(
        width: usize,
        height: usize,
        bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
    ) -> Option<Thumb> {
        let n = width.checked_mul(height)?;
        ((*bytes).as_ref().len() == n).then(|| Thumb {
            factor: 1,
            width,
            height,
            data: Bytes::Shared(bytes),
        })
    }

    fn at(view: &FrameView<'_>, factor: usize) -> Option<Thumb> {
        let (width, height, data) = downscale(view, factor)?;
        Some(Thumb {
            factor,
            width,
            height,
            data: data.into(),
        })
    }

    pub fn image(&self) -> Image {
        let n = self.width * self.height;
        let v: Vec<f32> = self.data.iter().take(n).map(|&b| f32::from(b)).collect();
        Image::from_shape_vec((self.height, self.width), v).unwrap_or_else(|_| {
            Image::from_shape_fn((self.height, self.width), |(y, x)| {
                self.data
                    .get(y * self.width + x)
                    .map_or(0.0, |&b| f32::from(b))
            })
        })
    }

    /// The image downscaled by `factor`: means of `factor` x `factor` blocks, exactly as
    /// [`downscale_image`] of [`Thumb::image`] gives them (sums of bytes are exact in both),
    /// without the full-size float image.
    pub fn image_at(&self, factor: usize) -> Image {
        let f = factor.max(1);
        let (h, w) = (self.height, self.width);
        if f == 1 || self.data.len() < w * h || w == 0 || h == 0 {
            return downscale_image(&self.image(), f);
        }
        let (oh, ow) = ((h / f).max(1), (w / f).max(1));
        let (bh, bw) = (f.min(h), f.min(w));
        let norm = 1.0 / (bw * bh) as f32;
        let mut out = Image::zeros((oh, ow));
        let mut col = vec![0u32; ow * bw];
        for (oy, mut orow) in out.rows_mut().into_iter().enumerate() {
            col.fill(0);
            for y in oy * f..oy * f + bh {
                for (c, &v) in col.iter_mut().zip(&self.data[y * w..(y + 1) * w]) {
                    *c += u32::from(v);
                }
            }
            for (o, b) in orow.iter_mut().zip(col.chunks_exact(bw)) {
                *o = b.iter().sum::<u32>() as f32 * norm;
            }
        }
        out
    }

    /// Bytes of an image (rounded, clamped to 0..=255), at factor 1.
    pub fn from_image(img: &Image) -> Thumb {
        let (height, width) = img.dim();
        Thumb {
            factor: 1,
            width,
            height,
            data: img
                .iter()
                .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
        }
    }
}

/// A thumbnail as its holder keeps it: in memory, or put away (in a file) and read back
/// whenever it is asked for.
pub trait KeptThumb: Send + Sync + std::fmt::Debug {
    /// The thumbnail (read back where it was put away).
    fn thumb(&self) -> Cow<'_, Thumb>;
}

impl KeptThumb for Thumb {
    fn thumb(&self) -> Cow<'_, Thumb> {
        Cow::Borrowed(self)
    }
}

/// A thumbnail held by a live run's window, shared by its searches.
pub type HeldThumb = Arc<dyn KeptThumb>;

/// Every frame's thumbnail of one stream, wherever they are kept (in memory, or partly in a
/// file for long inputs).
pub trait Thumbs: Sync + std::fmt::Debug {
    fn len(&self) -> usize;

    /// Thumbnail `i`, for `i < len()`.
    fn get(&self, i: usize) -> Cow<'_, Thumb>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn first(&self) -> Option<Cow<'_, Thumb>> {
        (!self.is_empty()).then(|| self.get(0))
    }
}

impl Thumbs for Vec<Thumb> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn get(&self, i: usize) -> Cow<'_, Thumb> {
        Cow::Borrowed(&self[i])
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

/// One bilinear tap along an axis: the two neighbouring samples and the weight of the second.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    f: f32,
}

/// The taps of `out` output pixels along an axis of `len` samples, `n` sub-samples per output
/// pixel, covering `[start, start + out · step)`: `n` taps per output pixel, in order.
fn taps(start: f64, step: f64, out: usize, n: usize, len: usize) -> Vec<Tap> {
    let last = (len - 1) as f64;
    (0..out)
        .flat_map(|o| {
            (0..n).map(move |j| {
                let c = start + step * (o as f64 + (j as f64 + 0.5) / n as f64);
                let c = (c - 0.5).clamp(0.0, last);
                let i0 = c.floor() as usize;
                Tap {
                    i0,
                    i1: (i0 + 1).min(len - 1),
                    f: (c - i0 as f64) as f32,
                }
            })
        })
        .collect()
}

/// Sub-samples per output pixel along an axis where one output pixel spans `step` samples.
fn subsamples(step: f64) -> usize {
    (step.ceil() as usize).clamp(1, 4)
}

/// [`resample`] on any row-major grid of samples (`width` x `height`, row stride `width`).
/// Separable: each needed source row is interpolated horizontally, then rows are blended.
fn resample_grid<T: Copy + Into<f32>>(
    data: &[T],
    width: usize,
    height: usize,
    r: Rect,
    out_w: usize,
    out_h: usize,
) -> Image {
    if width == 0 || height == 0 || out_w == 0 || out_h == 0 || data.len() < width * height {
        return Image::zeros((out_h, out_w));
    }
    let (sx, sy) = (r.w / out_w as f64, r.h / out_h as f64);
    let (nx, ny) = (subsamples(sx), subsamples(sy));
    let xt = taps(r.x, sx, out_w, nx, width);
    let yt = taps(r.y, sy, out_h, ny, height);
    let norm = 1.0 / (nx * ny) as f32;
    let across = |y: usize, out: &mut [f32]| {
        let row = &data[y * width..(y + 1) * width];
        for (o, t) in out.iter_mut().zip(xt.chunks_exact(nx)) {
            *o = t
                .iter()
                .map(|t| {
                    let (a, b): (f32, f32) = (row[t.i0].into(), row[t.i1].into());
                    a + (b - a) * t.f
                })
                .sum();
        }
    };
    // Every source row the vertical taps touch, interpolated horizontally once.
    let (lo, hi) = yt
        .iter()
        .fold((usize::MAX, 0), |(lo, hi), t| (lo.min(t.i0), hi.max(t.i1)));
    let mut rows = vec![0f32; (hi + 1 - lo) * out_w];
    for (k, r) in rows.chunks_exact_mut(out_w).enumerate() {
        across(lo + k, r);
    }
    let row_at = |y: usize| &rows[(y - lo) * out_w..(y - lo + 1) * out_w];
    let mut out = Image::zeros((out_h, out_w));
    for (oy, ts) in yt.chunks_exact(ny).enumerate() {
        let mut row = out.row_mut(oy);
        for t in ts {
            let (top, bot) = (row_at(t.i0), row_at(t.i1));
            for ((o, &a), &b) in row.iter_mut().zip(top).zip(bot) {
                *o += a + (b - a) * t.f;
            }
        }
        row.mapv_inplace(|v| v * norm);
    }
    out
}

/// Resamples the region `r` of `img` to `out_w` x `out_h` pixels: bilinear samples, several
/// per output pixel when shrinking (a box prefilter), so that detail does not alias.
pub fn resample(img: &Image, r: Rect, out_w: usize, out_h: usize) -> Image {
    let (h, w) = img.dim();
    match img.as_slice() {
        Some(data) => resample_grid(data, w, h, r, out_w, out_h),
        None => {
            let data: Vec<f32> = img.iter().copied().collect();
            resample_grid(&data, w, h, r, out_w, out_h)
        }
    }
}

/// [`resample`] straight from a thumbnail's bytes; `r` in thumbnail pixels.
pub fn resample_thumb(t: &Thumb, r: Rect, out_w: usize, out_h: usize) -> Image {
    resample_grid(&t.data, t.width, t.height, r, out_w, out_h)
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
    let mut v = vec![0.0; img.len()];
    let (mean, std) = normalize_into(img, &mut v);
    Feature { v, mean, std }
}

/// [`normalize`] into `out` (as long as the image); returns the image's mean and standard
/// deviation.
pub fn normalize_into(img: &Image, out: &mut [f32]) -> (f32, f32) {
    let n = img.len().max(1) as f32;
    let mean = img.sum() / n;
    let var = img.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let std = var.sqrt();
    if std < FLAT_STD {
        out.fill(0.0);
    } else {
        let k = 1.0 / (std * n.sqrt());
        for (o, &v) in out.iter_mut().zip(img.iter()) {
            *o = (v - mean) * k;
        }
    }
    (mean, std)
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
    fn image_at_is_downscale_image_of_image_exactly() {
        let mut s = 7u32;
        for (w, h) in [(37, 23), (64, 48), (5, 3)] {
            let t = Thumb {
                factor: 1,
                width: w,
                height: h,
                data: (0..w * h)
                    .map(|_| {
                        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        (s >> 24) as u8
                    })
                    .collect(),
            };
            for f in [1, 2, 3, 4, 8] {
                assert_eq!(
                    t.image_at(f),
                    downscale_image(&t.image(), f),
                    "{w}x{h} by {f}"
                );
            }
            assert_eq!(Thumb::from_image(&t.image()), t);
        }
    }

    #[test]
    fn downscale_averages_blocks() {
        let data: Vec<u8> = (0..16).map(|i| i as u8).collect();
        let (w, h, img) = downscale(&ramp_view(&data, 4, 4), 2).unwrap();
        assert_eq!((w, h), (2, 2));
        // (0 + 1 + 4 + 5) / 4 = 2.5 rounds up; (10 + 11 + 14 + 15) / 4 = 12.5 too.
        assert_eq!(img, vec![3, 5, 11, 13]);
        let stride2: Vec<u8> = data.iter().flat_map(|&v| [v, 0]).collect();
        let v = FrameView {
            stride: 8,
            layout: LumaLayout::Luma {
                pixel_stride: 2,
                offset: 0,
            },
            ..ramp_view(&stride2, 4, 4)
        };
        assert_eq!(downscale(&v, 2).unwrap().2, img);
        // The planar fast path and the general one agree on odd sizes and odd block areas.
        let mut r = 11u32;
        let data: Vec<u8> = (0..37 * 29)
            .map(|_| {
                r = r.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (r >> 24) as u8
            })
            .collect();
        let stride2: Vec<u8> = data.iter().flat_map(|&v| [7, v]).collect();
        for f in [1, 3, 4, 7] {
            let general = FrameView {
                stride: 74,
                layout: LumaLayout::Luma {
                    pixel_stride: 2,
                    offset: 1,
                },
                ..ramp_view(&stride2, 37, 29)
            };
            assert_eq!(
                downscale(&ramp_view(&data, 37, 29), f),
                downscale(&general, f),
                "factor {f}"
            );
        }
    }

    /// White frames, blocks of 257 rows (the most whose column sums fit 16 bits) and of 258
    /// (summed in 32 bits): the planar path gives the general path's means.
    #[test]
    fn planar_block_sums_do_not_overflow() {
        let (w, h) = (520, 520);
        let data = vec![255u8; w * h];
        let stride2: Vec<u8> = data.iter().flat_map(|&v| [7, v]).collect();
        for f in [257, 258] {
            let general = FrameView {
                stride: 2 * w,
                layout: LumaLayout::Luma {
                    pixel_stride: 2,
                    offset: 1,
                },
                ..ramp_view(&stride2, w, h)
            };
            let planar = downscale(&ramp_view(&data, w, h), f);
            assert_eq!(planar, downscale(&general, f), "factor {f}");
            assert_eq!(planar, Some((2, 2, vec![255; 4])), "factor {f}");
        }
    }

    /// Luma read in place is the luma copied; another number of bytes is refused; writing to shared
    /// bytes writes to a copy.
    #[test]
    fn shared_luma_reads_as_a_copy_does() {
        let data: Vec<u8> = (0..37 * 29).map(|i| (i * 7 % 251) as u8).collect();
        let copied = Thumb::full(&ramp_view(&data, 37, 29)).unwrap();
        let owner = Arc::new(data.clone());
        let mut shared = Thumb::shared(37, 29, owner.clone()).unwrap();
        assert_eq!(shared, copied);
        assert_eq!(shared.image(), copied.image());
        assert!(Thumb::shared(37, 30, owner.clone()).is_none());
        assert!(Thumb::shared(36, 29, owner.clone()).is_none());
        shared.data[0] = 255;
        assert_eq!(owner[0], data[0]);
        assert_eq!(shared.data[0], 255);
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
        let (_, _, img) = downscale(&v, 1).unwrap();
        // 0.299 · 255 = 76.2; 0.587 · 255 = 149.7
        assert_eq!(img, vec![76, 150]);
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

    /// The definition [`resample`] implements separably: the mean of bilinear samples.
    fn resample_pointwise(img: &Image, r: Rect, out_w: usize, out_h: usize) -> Image {
        let (h, w) = img.dim();
        let at = |x: f64, y: f64| {
            let x = (x - 0.5).clamp(0.0, (w - 1) as f64);
            let y = (y - 0.5).clamp(0.0, (h - 1) as f64);
            let (x0, y0) = (x.floor() as usize, y.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
            let top = img[(y0, x0)] * (1.0 - fx) + img[(y0, x1)] * fx;
            let bot = img[(y1, x0)] * (1.0 - fx) + img[(y1, x1)] * fx;
            top * (1.0 - fy) + bot * fy
        };
        let (sx, sy) = (r.w / out_w as f64, r.h / out_h as f64);
        let (nx, ny) = (subsamples(sx), subsamples(sy));
        Image::from_shape_fn((out_h, out_w), |(oy, ox)| {
            let mut acc = 0.0;
            for j in 0..ny {
                let y = r.y + sy * (oy as f64 + (j as f64 + 0.5) / ny as f64);
                for i in 0..nx {
                    acc += at(r.x + sx * (ox as f64 + (i as f64 + 0.5) / nx as f64), y);
                }
            }
            acc / (nx * ny) as f32
        })
    }

    #[test]
    fn separable_resampling_matches_pointwise_bilinear() {
        let mut s = 7u32;
        let img = Image::from_shape_fn((37, 53), |_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as f32
        });
        let bytes = Thumb {
            factor: 1,
            width: 53,
            height: 37,
            data: img.iter().map(|&v| v as u8).collect(),
        };
        let rects = [
            (0.0, 0.0, 53.0, 37.0, 53, 37),
            (3.3, 2.7, 40.1, 22.9, 16, 9),
            (-2.0, 30.0, 20.0, 12.0, 31, 7),
            (10.5, 4.25, 7.0, 5.0, 32, 20),
            (0.0, 0.0, 53.0, 37.0, 4, 4),
        ];
        for &(x, y, w, h, ow, oh) in &rects {
            let r = Rect { x, y, w, h };
            let want = resample_pointwise(&img, r, ow, oh);
            for got in [resample(&img, r, ow, oh), resample_thumb(&bytes, r, ow, oh)] {
                assert_eq!(got.dim(), want.dim());
                let err = got
                    .iter()
                    .zip(want.iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err < 1e-3, "{r:?} -> {ow}x{oh}: {err}");
            }
        }
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
