// SPDX-License-Identifier: MIT

//! Normalised cross-correlation (NCC) of a template against an image at every offset where it
//! fits: through 2-D FFTs (rustfft) for whole images, and directly for small search windows.
//!
//! NCC subtracts means and divides by standard deviations, so it is indifferent to a different
//! colour grade (gain and offset of luma).

use super::features::Image;
pub use super::kernels::{
    IMAGE_ONE, QTemplate, WindowDots, quantise_image, window_dot, window_dots,
};
use ndarray::Array2;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Window variances under this (sum of squared deviations per pixel, 0–255 scale) count as flat.
const FLAT_VAR: f64 = 1.0;

/// The smallest length ≥ `n` whose only prime factors are 2, 3 and 5 (fast for rustfft).
pub fn fast_len(n: usize) -> usize {
    let mut m = n.max(1);
    loop {
        let mut k = m;
        for p in [2, 3, 5] {
            while k.is_multiple_of(p) {
                k /= p;
            }
        }
        if k == 1 {
            return m;
        }
        m += 1;
    }
}

/// Forward and inverse 2-D FFTs of one padded size `p` x `q` (rows x columns).
pub struct Fft2 {
    p: usize,
    q: usize,
    row_fwd: Arc<dyn Fft<f32>>,
    col_fwd: Arc<dyn Fft<f32>>,
    row_inv: Arc<dyn Fft<f32>>,
    col_inv: Arc<dyn Fft<f32>>,
}

impl std::fmt::Debug for Fft2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fft2({}x{})", self.p, self.q)
    }
}

fn transpose(src: &[Complex32], rows: usize, cols: usize, dst: &mut [Complex32]) {
    const B: usize = 32;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

impl Fft2 {
    /// Plans FFTs large enough for images up to `h` x `w`.
    pub fn new(h: usize, w: usize) -> Fft2 {
        let (p, q) = (fast_len(h), fast_len(w));
        let mut planner = FftPlanner::<f32>::new();
        Fft2 {
            p,
            q,
            row_fwd: planner.plan_fft_forward(q),
            col_fwd: planner.plan_fft_forward(p),
            row_inv: planner.plan_fft_inverse(q),
            col_inv: planner.plan_fft_inverse(p),
        }
    }

    pub fn size(&self) -> (usize, usize) {
        (self.p, self.q)
    }

    /// The spectrum of `img` zero-padded to the plan's size (stored transposed: the layout only
    /// matters to [`Fft2::inverse`]).
    pub fn forward(&self, img: &Image) -> Vec<Complex32> {
        let (h, w) = img.dim();
        let (p, q) = (self.p, self.q);
        let mut buf = vec![Complex32::new(0.0, 0.0); p * q];
        for y in 0..h.min(p) {
            for x in 0..w.min(q) {
                buf[y * q + x].re = img[(y, x)];
            }
        }
        self.row_fwd.process(&mut buf);
        let mut t = vec![Complex32::new(0.0, 0.0); p * q];
        transpose(&buf, p, q, &mut t);
        self.col_fwd.process(&mut t);
        t
    }

    /// The real part of the inverse transform of a spectrum from [`Fft2::forward`], scaled so
    /// that `inverse(forward(x)) == x`; `(p, q)` row-major.
    pub fn inverse(&self, spec: &mut [Complex32], out: &mut Vec<f32>) {
        let (p, q) = (self.p, self.q);
        self.col_inv.process(spec);
        let mut t = vec![Complex32::new(0.0, 0.0); p * q];
        transpose(spec, q, p, &mut t);
        self.row_inv.process(&mut t);
        let k = 1.0 / (p * q) as f32;
        out.clear();
        out.extend(t.iter().map(|c| c.re * k));
    }
}

/// The sum over the `th` x `tw` window at `(v, u)` of the image whose prefix sums are `a`.
#[inline]
fn box_sum(a: &Array2<f64>, v: usize, u: usize, th: usize, tw: usize) -> f64 {
    a[(v + th, u + tw)] - a[(v, u + tw)] - a[(v + th, u)] + a[(v, u)]
}

/// Prefix sums of an image and of its squares, `(h+1, w+1)`, for window statistics.
#[derive(Debug, Clone)]
pub struct Integral {
    sum: Array2<f64>,
    sum2: Array2<f64>,
}

impl Integral {
    pub fn new(img: &Image) -> Integral {
        let (h, w) = img.dim();
        let mut sum = Array2::<f64>::zeros((h + 1, w + 1));
        let mut sum2 = Array2::<f64>::zeros((h + 1, w + 1));
        for y in 0..h {
            let (mut rs, mut rs2) = (0f64, 0f64);
            for x in 0..w {
                let v = f64::from(img[(y, x)]);
                rs += v;
                rs2 += v * v;
                sum[(y + 1, x + 1)] = sum[(y, x + 1)] + rs;
                sum2[(y + 1, x + 1)] = sum2[(y, x + 1)] + rs2;
            }
        }
        Integral { sum, sum2 }
    }

    /// Sum of the window at `(v, u)` of `th` x `tw`.
    #[inline]
    pub fn window_sum(&self, v: usize, u: usize, th: usize, tw: usize) -> f64 {
        box_sum(&self.sum, v, u, th, tw)
    }

    /// Sum of squared deviations from the mean over the window at `(v, u)` of `th` x `tw`.
    #[inline]
    pub fn window_var(&self, v: usize, u: usize, th: usize, tw: usize) -> f64 {
        let n = (th * tw) as f64;
        let s1 = self.window_sum(v, u, th, tw);
        (box_sum(&self.sum2, v, u, th, tw) - s1 * s1 / n).max(0.0)
    }
}

/// Window sums of an image and of its squares, for [`ncc_from_dot`].
pub trait WindowStats {
    /// The sums over the `th` x `tw` window at `(v, u)`; `None` where they are not kept.
    fn sums(&self, v: usize, u: usize, th: usize, tw: usize) -> Option<(f64, f64)>;
}

impl WindowStats for Integral {
    fn sums(&self, v: usize, u: usize, th: usize, tw: usize) -> Option<(f64, f64)> {
        let (h, w) = self.sum.dim();
        (v + th < h && u + tw < w).then(|| {
            (
                box_sum(&self.sum, v, u, th, tw),
                box_sum(&self.sum2, v, u, th, tw),
            )
        })
    }
}

/// The prefix sums of an [`Integral`], kept only at some rows and columns (prefix positions,
/// `0..=h` and `0..=w`): enough for the windows whose corners all lie there, in a fraction of
/// the memory. The sums are the same numbers an [`Integral`] holds.
#[derive(Debug, Clone)]
pub struct CornerSums {
    /// Index of each prefix row (column) among those kept, `u32::MAX` where not kept.
    row_at: Vec<u32>,
    col_at: Vec<u32>,
    cols: usize,
    sum: Vec<f64>,
    sum2: Vec<f64>,
}

impl CornerSums {
    /// The prefix sums of `img` at `rows` and `cols` (positions past the image are ignored).
    pub fn new(img: &Image, rows: &[usize], cols: &[usize]) -> CornerSums {
        let (h, w) = img.dim();
        let index = |kept: &[usize], n: usize| {
            let mut at = vec![u32::MAX; n + 1];
            let mut k = 0u32;
            for &p in kept {
                if p <= n && at[p] == u32::MAX {
                    at[p] = k;
                    k += 1;
                }
            }
            (at, k as usize)
        };
        let (row_at, nrows) = index(rows, h);
        let (col_at, ncols) = index(cols, w);
        let mut sum = vec![0f64; nrows * ncols];
        let mut sum2 = vec![0f64; nrows * ncols];
        // Column sums of the row prefixes so far: row `y` of an Integral, one row at a time
        // (the same additions in the same order, so the same numbers).
        let mut acc = vec![0f64; w + 1];
        let mut acc2 = vec![0f64; w + 1];
        let mut keep = |r: usize, acc: &[f64], acc2: &[f64]| {
            let i = row_at[r];
            if i == u32::MAX {
                return;
            }
            for (c, &j) in col_at.iter().enumerate() {
                if j != u32::MAX {
                    let k = i as usize * ncols + j as usize;
                    sum[k] = acc[c];
                    sum2[k] = acc2[c];
                }
            }
        };
        keep(0, &acc, &acc2);
        for (y, row) in img.rows().into_iter().enumerate() {
            let (mut rs, mut rs2) = (0f64, 0f64);
            for (x, &v) in row.iter().enumerate() {
                let v = f64::from(v);
                rs += v;
                rs2 += v * v;
                acc[x + 1] += rs;
                acc2[x + 1] += rs2;
            }
            keep(y + 1, &acc, &acc2);
        }
        CornerSums {
            row_at,
            col_at,
            cols: ncols,
            sum,
            sum2,
        }
    }

    fn at(&self, r: usize, c: usize) -> Option<usize> {
        let i = *self.row_at.get(r)?;
        let j = *self.col_at.get(c)?;
        (i != u32::MAX && j != u32::MAX).then_some(i as usize * self.cols + j as usize)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * (self.row_at.len() + self.col_at.len()) + 16 * self.sum.len()
    }
}

impl WindowStats for CornerSums {
    fn sums(&self, v: usize, u: usize, th: usize, tw: usize) -> Option<(f64, f64)> {
        let (a, b) = (self.at(v, u)?, self.at(v, u + tw)?);
        let (c, d) = (self.at(v + th, u)?, self.at(v + th, u + tw)?);
        Some((
            self.sum[d] - self.sum[b] - self.sum[c] + self.sum[a],
            self.sum2[d] - self.sum2[b] - self.sum2[c] + self.sum2[a],
        ))
    }
}

/// A template made zero-mean, with its norm; `None` when it is flat.
#[derive(Debug, Clone)]
pub struct Template {
    pub img: Image,
    pub norm: f64,
}

impl Template {
    pub fn new(img: &Image) -> Option<Template> {
        let n = img.len() as f64;
        let mean = img.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let img = img.mapv(|v| (f64::from(v) - mean) as f32);
        let norm = img
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        (norm * norm / n > FLAT_VAR).then_some(Template { img, norm })
    }
}

/// An image prepared for FFT correlation: spectrum and window statistics.
pub struct Prepared {
    pub h: usize,
    pub w: usize,
    pub spec: Vec<Complex32>,
    pub integral: Integral,
}

impl Prepared {
    pub fn new(fft: &Fft2, img: &Image) -> Prepared {
        let (h, w) = img.dim();
        Prepared {
            h,
            w,
            spec: fft.forward(img),
            integral: Integral::new(img),
        }
    }
}

/// A template's spectrum, for [`ncc_map_fft`].
pub struct TemplateSpectrum {
    pub spec: Vec<Complex32>,
    pub h: usize,
    pub w: usize,
    pub norm: f64,
}

impl TemplateSpectrum {
    pub fn new(fft: &Fft2, t: &Template) -> TemplateSpectrum {
        let (h, w) = t.img.dim();
        TemplateSpectrum {
            spec: fft.forward(&t.img),
            h,
            w,
            norm: t.norm,
        }
    }
}

/// Reusable buffers of [`ncc_map_fft`].
#[derive(Default)]
pub struct Scratch {
    spec: Vec<Complex32>,
    corr: Vec<f32>,
}

/// NCC of a template at every offset of the prepared image where it fits: an
/// `(h - th + 1, w - tw + 1)` map in [-1, 1].
pub fn ncc_map_fft(
    fft: &Fft2,
    img: &Prepared,
    t: &TemplateSpectrum,
    scratch: &mut Scratch,
) -> Array2<f32> {
    let inv = inv_std_map(img, t.h, t.w);
    let mut map = Array2::zeros(inv.dim());
    ncc_add_fft(fft, img, t, &inv, 1.0, scratch, &mut map);
    map
}

/// `1 / sqrt(variance)` of every `th` x `tw` window of a prepared image (0 where the window is
/// flat): the part of the NCC that depends on the image and the template's size only, to be
/// shared by every template of that size ([`ncc_add_fft`]).
pub fn inv_std_map(img: &Prepared, th: usize, tw: usize) -> Array2<f32> {
    let (mh, mw) = (img.h + 1 - th, img.w + 1 - tw);
    Array2::from_shape_fn((mh, mw), |(v, u)| {
        let var = img.integral.window_var(v, u, th, tw);
        if var <= FLAT_VAR * (th * tw) as f64 {
            0.0
        } else {
            (1.0 / var.sqrt()) as f32
        }
    })
}

/// Adds `weight` x the NCC map of `t` on `img` (as [`ncc_map_fft`] computes it) to `acc`,
/// with the image's [`inv_std_map`] for the template's size.
pub fn ncc_add_fft(
    fft: &Fft2,
    img: &Prepared,
    t: &TemplateSpectrum,
    inv_std: &Array2<f32>,
    weight: f32,
    scratch: &mut Scratch,
    acc: &mut Array2<f32>,
) {
    let (_, q) = fft.size();
    scratch.spec.clear();
    scratch
        .spec
        .extend(img.spec.iter().zip(&t.spec).map(|(a, b)| a * b.conj()));
    fft.inverse(&mut scratch.spec, &mut scratch.corr);
    let k = (f64::from(weight) / t.norm) as f32;
    for ((a, inv), corr) in acc
        .rows_mut()
        .into_iter()
        .zip(inv_std.rows())
        .zip(scratch.corr.chunks(q))
    {
        for ((a, &i), &c) in a.into_iter().zip(inv).zip(corr) {
            *a += c * i * k;
        }
    }
}

impl QTemplate {
    pub fn new(t: &Template) -> Option<QTemplate> {
        let (h, w) = t.img.dim();
        let peak = t.img.iter().fold(0f32, |m, &v| m.max(v.abs()));
        if w == 0 || h == 0 || peak <= 0.0 {
            return None;
        }
        let limit = ((i32::MAX as usize) / (2040 * w)).min(2047) as f64;
        let k = limit / f64::from(peak);
        let q: Vec<i16> = t
            .img
            .iter()
            .map(|&v| (f64::from(v) * k).round().clamp(-limit, limit) as i16)
            .collect();
        let sum = q.iter().map(|&v| i64::from(v)).sum();
        let norm = q.iter().map(|&v| i64::from(v) * i64::from(v)).sum::<i64>() as f64;
        Some(QTemplate {
            q,
            w,
            h,
            sum,
            norm: norm.sqrt(),
        })
    }
}

/// NCC of `t` at `(v, u)` of an image with `integral` from its [`window_dot`] `dot`: exact
/// integers in, the same number out on every backend.
pub fn ncc_from_dot(dot: i64, t: &QTemplate, stats: &impl WindowStats, v: usize, u: usize) -> f64 {
    let (th, tw) = (t.h, t.w);
    let Some((s1, s2)) = stats.sums(v, u, th, tw) else {
        debug_assert!(false, "no window sums at ({v}, {u}) for {tw}x{th}");
        return 0.0;
    };
    let n = (th * tw) as f64;
    let var = (s2 - s1 * s1 / n).max(0.0);
    if var <= FLAT_VAR * n {
        return 0.0;
    }
    let mean = s1 / n;
    // sum of t·(img - mean), img = value / IMAGE_ONE.
    let num = dot as f64 / IMAGE_ONE - mean * t.sum as f64;
    num / (t.norm * var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corner_sums_are_the_integral_s_at_the_corners_kept() {
        // Level values: multiples of 1/4, as a 2x2 box mean of bytes gives.
        let img = Image::from_shape_fn((37, 53), |(y, x)| ((y * 131 + x * 71) % 1021) as f32 / 4.0);
        let full = Integral::new(&img);
        let rows: Vec<usize> = (3..9).chain(20..30).chain([37, 40]).collect();
        let cols: Vec<usize> = (0..5).chain(40..54).collect();
        let kept = CornerSums::new(&img, &rows, &cols);
        let mut checked = 0;
        for v in 0..37 {
            for u in 0..53 {
                for (th, tw) in [(17, 40), (20, 36), (1, 1)] {
                    let has = |r: usize, c: usize| {
                        r <= 37 && c <= 53 && rows.contains(&r) && cols.contains(&c)
                    };
                    let all = has(v, u) && has(v + th, u + tw) && has(v, u + tw) && has(v + th, u);
                    match kept.sums(v, u, th, tw) {
                        Some(s) => {
                            assert!(all, "({v}, {u}) {th}x{tw} has a corner not kept");
                            assert_eq!(Some(s), full.sums(v, u, th, tw));
                            checked += 1;
                        }
                        None => assert!(!all, "({v}, {u}) {th}x{tw}"),
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
        assert!(kept.bytes() * 5 < 16 * 38 * 54, "{} bytes", kept.bytes());
    }

    /// Dot product in eight independent lanes, so that the compiler vectorises it.
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut lanes = [0f32; 8];
        let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = ac
            .remainder()
            .iter()
            .zip(bc.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ac.zip(bc) {
            for k in 0..8 {
                lanes[k] += x[k] * y[k];
            }
        }
        lanes.iter().sum::<f32>() + tail
    }

    /// NCC of `t` placed at `(v, u)` of `img`, computed directly in floats: the reference the
    /// FFT path and the fixed-point one ([`ncc_from_dot`]) are checked against.
    fn ncc_at(img: &Image, integral: &Integral, t: &Template, v: usize, u: usize) -> f64 {
        let (th, tw) = t.img.dim();
        let var = integral.window_var(v, u, th, tw);
        if var <= FLAT_VAR * (th * tw) as f64 {
            return 0.0;
        }
        let mut acc = 0f64;
        for y in 0..th {
            let trow = t.img.row(y);
            let irow = img.row(v + y);
            let (ts, is) = (
                trow.as_slice().unwrap_or(&[]),
                irow.as_slice().map(|s| &s[u..u + tw]).unwrap_or(&[]),
            );
            acc += f64::from(dot(ts, is));
        }
        acc / (t.norm * var.sqrt())
    }

    fn texture(h: usize, w: usize, seed: u32) -> Image {
        let mut s = seed;
        Image::from_shape_fn((h, w), |_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as f32
        })
    }

    #[test]
    fn fixed_point_ncc_agrees_with_the_float_one_and_finds_the_template() {
        // A smooth image with fractional values (as a pyramid level's box averages are).
        let img = texture(60, 70, 3).mapv(|v| v * 0.7 + 0.375);
        let integral = Integral::new(&img);
        let q = quantise_image(&img);
        let region = img.slice(ndarray::s![20..44, 30..62]).to_owned();
        let t = Template::new(&region.mapv(|v| 0.5 * v + 40.0)).unwrap();
        let qt = QTemplate::new(&t).unwrap();
        let (mut best, mut at, mut worst) = (f64::MIN, (0, 0), 0f64);
        for v in 0..=60 - qt.h {
            for u in 0..=70 - qt.w {
                let fixed = ncc_from_dot(window_dot(&q, 70, &qt, v, u), &qt, &integral, v, u);
                let float = ncc_at(&img, &integral, &t, v, u);
                worst = worst.max((fixed - float).abs());
                if fixed > best {
                    (best, at) = (fixed, (v, u));
                }
            }
        }
        assert_eq!(at, (20, 30));
        assert!((best - 1.0).abs() < 1e-3, "{best}");
        assert!(worst < 2e-3, "fixed and float NCC differ by {worst}");
        // Indifferent to the image's offset, although the quantised template's sum is not
        // exactly 0 (the window's mean corrects for it).
        assert_ne!(qt.sum, 0);
        let dim = img.mapv(|v| v * 0.5);
        let bright = dim.mapv(|v| v + 100.0);
        let ncc = |img: &Image, v: usize, u: usize| {
            let q = quantise_image(img);
            ncc_from_dot(
                window_dot(&q, 70, &qt, v, u),
                &qt,
                &Integral::new(img),
                v,
                u,
            )
        };
        for (v, u) in [(20, 30), (3, 11), (30, 1)] {
            let (a, b) = (ncc(&dim, v, u), ncc(&bright, v, u));
            assert!((a - b).abs() < 1e-6, "at ({v}, {u}): {a} and {b}");
        }
    }

    #[test]
    fn dot_products() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![2.0f32; 19];
        assert_eq!(dot(&a, &b), 2.0 * (0..19).sum::<i32>() as f32);
        assert_eq!(dot(&a[..3], &b), 6.0);
    }

    #[test]
    fn fast_lengths() {
        assert_eq!(fast_len(90), 90);
        assert_eq!(fast_len(91), 96);
        assert_eq!(fast_len(7), 8);
    }

    #[test]
    fn fft_round_trip() {
        let img = texture(10, 13, 1);
        let fft = Fft2::new(10, 13);
        let mut spec = fft.forward(&img);
        let mut out = Vec::new();
        fft.inverse(&mut spec, &mut out);
        let q = fft.size().1;
        for y in 0..10 {
            for x in 0..13 {
                assert!((out[y * q + x] - img[(y, x)]).abs() < 1e-2);
            }
        }
    }

    #[test]
    fn fft_and_direct_ncc_agree_and_find_the_template() {
        let img = texture(40, 50, 7);
        // template: a region, re-graded
        let region = img.slice(ndarray::s![12..24, 20..36]).to_owned();
        let t = Template::new(&region.mapv(|v| 0.5 * v + 40.0)).unwrap();
        let fft = Fft2::new(40, 50);
        let prep = Prepared::new(&fft, &img);
        let ts = TemplateSpectrum::new(&fft, &t);
        let map = ncc_map_fft(&fft, &prep, &ts, &mut Scratch::default());
        let (mut best, mut at) = (f32::MIN, (0, 0));
        for ((v, u), &s) in map.indexed_iter() {
            if s > best {
                best = s;
                at = (v, u);
            }
        }
        assert_eq!(at, (12, 20));
        assert!((best - 1.0).abs() < 1e-3, "{best}");
        let direct = ncc_at(&img, &prep.integral, &t, 5, 9);
        assert!((direct - f64::from(map[(5, 9)])).abs() < 1e-3);
    }
}
