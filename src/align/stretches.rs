// SPDX-License-Identifier: MIT

//! A fg whose caps change mid-stream may have been re-framed there (another region of the
//! scene, not only another size). Offline, each stretch between changes is then analysed on
//! its own as well as with the rest, and the stretches' own footprints are kept when they fit
//! clearly better than the whole's.

use super::analysis::Alignment;
use super::features::{Thumb, Thumbs};
use std::borrow::Cow;
use std::ops::Range;

/// A stretch of another stream's thumbnails, indexed from its start.
#[derive(Debug, Clone, Copy)]
pub struct StretchThumbs<'a> {
    all: &'a dyn Thumbs,
    start: usize,
    len: usize,
}

impl<'a> StretchThumbs<'a> {
    /// Frames `range` of `all` (clamped to its length).
    pub fn new(all: &'a dyn Thumbs, range: Range<usize>) -> Self {
        let end = range.end.min(all.len());
        let start = range.start.min(end);
        StretchThumbs {
            all,
            start,
            len: end - start,
        }
    }
}

impl Thumbs for StretchThumbs<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, i: usize) -> Cow<'_, Thumb> {
        self.all.get(self.start + i)
    }
}

/// The stretches of `n` frames between the frames in `changes` (where the caps changed): none
/// when no change falls inside.
pub fn stretches(n: usize, changes: &[usize]) -> Vec<Range<usize>> {
    let mut cuts: Vec<usize> = changes
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < n)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    if cuts.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for c in cuts.into_iter().chain(std::iter::once(n)) {
        out.push(from..c);
        from = c;
    }
    out
}

/// Stretches shorter than this are not analysed on their own (too few frames to tell a
/// footprint from a chance fit); they keep the whole's.
pub const MIN_STRETCH: usize = 6;
/// At most this many stretches are analysed on their own, the longest (a stream that changes
/// resolution often, as adaptive streaming does, costs a bounded extra analysis).
pub const MAX_PARTS: usize = 8;

/// Which of `stretches` to analyse on their own: long enough, and the [`MAX_PARTS`] longest
/// (the earlier of equal ones).
pub fn worth_analysing(stretches: &[Range<usize>]) -> Vec<bool> {
    let mut order: Vec<usize> = (0..stretches.len())
        .filter(|&k| stretches[k].len() >= MIN_STRETCH)
        .collect();
    order.sort_by_key(|&k| std::cmp::Reverse(stretches[k].len()));
    let mut out = vec![false; stretches.len()];
    for k in order.into_iter().take(MAX_PARTS) {
        out[k] = true;
    }
    out
}

/// How much lower a stretch's own mean cost must be than the whole alignment's over the same
/// frames (both an absolute margin and a ratio) for its footprint to be taken: a rescaled fg
/// that shows the same region fits both about equally.
const BETTER_BY: f64 = 0.1;
const BETTER_RATIO: f64 = 0.5;

/// Whether the stretches' own alignments fit clearly better than the whole's. `whole` is
/// `None` when the whole analysis found nothing usable; `usable` says whether an alignment's
/// footprint and mapping can be trusted (the element's confidence thresholds).
pub fn prefer_stretches(
    whole: Option<&Alignment>,
    parts: &[(Range<usize>, Option<Alignment>)],
    usable: &dyn Fn(&Alignment) -> bool,
) -> bool {
    let usable_parts = || {
        parts
            .iter()
            .filter_map(|(r, a)| Some((r, a.as_ref().filter(|a| usable(a))?)))
    };
    let Some(whole) = whole.filter(|w| usable(w)) else {
        return usable_parts().next().is_some();
    };
    usable_parts().any(|(r, a)| {
        let costs: Vec<f64> = whole
            .costs
            .get(r.clone())
            .unwrap_or(&[])
            .iter()
            .filter(|c| c.is_finite())
            .map(|&c| f64::from(c))
            .collect();
        if costs.is_empty() {
            return false;
        }
        let there = costs.iter().sum::<f64>() / costs.len() as f64;
        a.mean_cost < there - BETTER_BY && a.mean_cost < there * BETTER_RATIO
    })
}

/// The stretches' mappings (each indexed from its stretch's start) as one mapping of every
/// fg frame, kept monotonic: a stretch whose first matches lie before the previous one's last
/// is held there. Also how many frames were held.
pub fn join(pieces: &[&[usize]]) -> (Vec<usize>, usize) {
    let mut out: Vec<usize> = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
    let mut held = 0;
    for p in pieces {
        for &j in *p {
            match out.last() {
                Some(&last) if j < last => {
                    held += 1;
                    out.push(last);
                }
                _ => out.push(j),
            }
        }
    }
    (out, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alignment(costs: Vec<f32>, usable: bool) -> Alignment {
        let mean = costs.iter().map(|&c| f64::from(c)).sum::<f64>() / costs.len().max(1) as f64;
        Alignment {
            x: 0.0,
            y: 0.0,
            scale: 1.0,
            spatial_confidence: if usable { 0.9 } else { 0.2 },
            spatial_calibrated: f64::NAN,
            mapping: (0..costs.len()).collect(),
            mean_cost: mean,
            costs,
            temporal_confidence: 0.5,
            rate: None,
            timings: Default::default(),
        }
    }

    fn usable(a: &Alignment) -> bool {
        a.spatial_confidence >= 0.5
    }

    #[test]
    fn stretches_between_changes() {
        assert!(stretches(10, &[]).is_empty());
        assert!(stretches(10, &[0, 10, 12]).is_empty());
        assert_eq!(stretches(10, &[6, 3, 3]), vec![0..3, 3..6, 6..10]);
    }

    #[test]
    fn only_long_enough_stretches_and_at_most_max_parts_are_analysed() {
        assert_eq!(
            worth_analysing(&[0..5, 5..11, 11..12]),
            vec![false, true, false]
        );
        let many: Vec<Range<usize>> = (0..12).map(|k| k * 10..k * 10 + 6 + k % 3).collect();
        let w = worth_analysing(&many);
        assert_eq!(w.iter().filter(|&&b| b).count(), MAX_PARTS);
        // The longest (8 frames: k % 3 == 2) all taken, then the earlier 7-frame ones.
        assert!(w[2] && w[5] && w[8] && w[11] && w[1] && w[4] && w[7] && w[10]);
    }

    #[test]
    fn a_part_reads_its_stretch() {
        let all: Vec<Thumb> = (0..5u8)
            .map(|k| Thumb {
                factor: 1,
                width: 1,
                height: 1,
                data: vec![k].into(),
            })
            .collect();
        let p = StretchThumbs::new(&all, 2..4);
        assert_eq!(p.len(), 2);
        assert_eq!(*p.get(0).data, [2]);
        assert_eq!(*p.get(1).data, [3]);
        assert_eq!(StretchThumbs::new(&all, 4..9).len(), 1);
    }

    #[test]
    fn parts_are_preferred_only_when_they_fit_clearly_better() {
        // The whole fits the first half; the second half matches poorly at its footprint.
        let mut costs = vec![0.05; 10];
        costs.extend(vec![0.6; 10]);
        let whole = alignment(costs, true);
        let good = vec![
            (0..10, Some(alignment(vec![0.05; 10], true))),
            (10..20, Some(alignment(vec![0.07; 10], true))),
        ];
        assert!(prefer_stretches(Some(&whole), &good, &usable));
        // A rescale without re-framing: the parts fit as the whole does.
        let same = alignment(vec![0.05; 20], true);
        let near = vec![
            (0..10, Some(alignment(vec![0.05; 10], true))),
            (10..20, Some(alignment(vec![0.04; 10], true))),
        ];
        assert!(!prefer_stretches(Some(&same), &near, &usable));
        // A part found with low confidence is not taken however low its costs.
        let unsure = vec![(10..20, Some(alignment(vec![0.01; 10], false)))];
        assert!(!prefer_stretches(Some(&whole), &unsure, &usable));
        // Nothing usable in the whole: any usable part wins.
        let lost = alignment(vec![0.5; 20], false);
        assert!(prefer_stretches(Some(&lost), &good, &usable));
        assert!(prefer_stretches(None, &good, &usable));
        assert!(!prefer_stretches(None, &unsure, &usable));
    }

    #[test]
    fn joined_mappings_stay_monotonic() {
        let (m, held) = join(&[&[3, 4, 5], &[4, 6, 7], &[9]]);
        assert_eq!(m, vec![3, 4, 5, 5, 6, 7, 9]);
        assert_eq!(held, 1);
    }
}
