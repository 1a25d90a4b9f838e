// SPDX-License-Identifier: MIT

//! Frame times: gaps filled, frame duration estimated, and the running-time mapping of fg frames
//! to bg frames (what the element does when content alignment is not available).

/// Tolerance when comparing times of two streams: timestamps derived from different time bases
/// round differently by a few nanoseconds.
const TIME_SLACK_NS: u64 = 1_000;

/// Median of the positive differences between consecutive times, if there is one.
pub fn estimate_frame_duration(times: &[u64]) -> Option<u64> {
    let mut diffs: Vec<u64> = times
        .windows(2)
        .filter_map(|w| w[1].checked_sub(w[0]))
        .filter(|&d| d > 0)
        .collect();
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_unstable();
    Some(diffs[diffs.len() / 2])
}

/// Times for every frame: frames without one take the previous frame's time plus `step`
/// (the first frames, before any known time, count back from the first known one, not below 0).
pub fn fill_times(times: &[Option<u64>], step: u64) -> Vec<u64> {
    let first_known = times.iter().position(|t| t.is_some());
    let mut out = Vec::with_capacity(times.len());
    let mut prev: Option<u64> = None;
    for (i, t) in times.iter().enumerate() {
        let v = match (t, prev) {
            (Some(t), _) => *t,
            (None, Some(p)) => p.saturating_add(step),
            (None, None) => match first_known.and_then(|k| times[k].map(|t| (k, t))) {
                Some((k, t)) => t.saturating_sub(step.saturating_mul((k - i) as u64)),
                None => step.saturating_mul(i as u64),
            },
        };
        out.push(v);
        prev = Some(v);
    }
    out
}

/// For each fg time, the index of the bg frame showing at that time: the last bg frame that
/// starts at or before it, clamped to the first and last bg frames. `bg` should be
/// non-decreasing; the result is always a valid index when `bg` is not empty.
pub fn map_by_time(fg: &[u64], bg: &[u64]) -> Vec<usize> {
    if bg.is_empty() {
        return Vec::new();
    }
    fg.iter()
        .map(|&t| {
            let t = t.saturating_add(TIME_SLACK_NS);
            bg.partition_point(|&b| b <= t).saturating_sub(1)
        })
        .collect()
}

/// Where each frame of a stream with timestamps `times` (ns, ascending) sits on a grid of
/// `step` ns from its first frame: its slot. `Some` only for a stream with gaps (frames dropped,
/// as phones record at a variable frame rate) whose slots strictly increase and number at most
/// four times its frames; `None` for a stream without gaps, or whose times do not fit a grid.
pub fn slots(times: &[u64], step: u64) -> Option<Vec<usize>> {
    let (&t0, _) = times.split_first()?;
    if step == 0 {
        return None;
    }
    let mut out: Vec<usize> = Vec::with_capacity(times.len());
    for &t in times {
        let s = (t.checked_sub(t0)? as f64 / step as f64).round() as usize;
        if out.last().is_some_and(|&l| s <= l) {
            return None;
        }
        out.push(s);
    }
    let gaps = out.windows(2).any(|w| w[1] - w[0] > 1);
    (gaps && *out.last()? < times.len() * 4).then_some(out)
}

/// A frame rate (numerator, denominator) for a frame duration in ns: an integer rate or an
/// NTSC rate (n·1000/1001) when one is within 0.02 %, else the nearest rate with denominator
/// 1000.
pub fn rate_from_duration(frame_ns: u64) -> (i32, i32) {
    if frame_ns == 0 {
        return (0, 1);
    }
    let fps = 1e9 / frame_ns as f64;
    let close = |r: f64| ((fps - r) / r).abs() < 2e-4;
    let n = fps.round();
    if n >= 1.0 && close(n) {
        return (n as i32, 1);
    }
    let ntsc = (fps * 1.001).round();
    if ntsc >= 1.0 && close(ntsc * 1000.0 / 1001.0) {
        return ((ntsc as i32) * 1000, 1001);
    }
    ((fps * 1000.0).round().max(1.0) as i32, 1000)
}

/// The index of the value in `sorted` (ascending) nearest to `t`, if it is at most `tol` away.
pub fn nearest(sorted: &[u64], t: u64, tol: u64) -> Option<usize> {
    let p = sorted.partition_point(|&x| x < t);
    [p.checked_sub(1), (p < sorted.len()).then_some(p)]
        .into_iter()
        .flatten()
        .min_by_key(|&i| sorted[i].abs_diff(t))
        .filter(|&i| sorted[i].abs_diff(t) <= tol)
}

/// Half the smallest positive step between consecutive values: how far a timestamp read again
/// may be from the one first read and still be the same frame (containers round timestamps,
/// and a source may offset them differently after a seek).
pub fn half_step(sorted: &[u64]) -> u64 {
    sorted
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .filter(|&d| d > 0)
        .min()
        .map_or(0, |d| d / 2)
}

/// The lag (ns, bg running time less fg running time) a search's matches show, from
/// `(cost, lag)` of each match: the median lag over the matches that fit (a cost at most twice
/// the best one's plus 0.02, the tracker's bound for a good match; at least the best `min`),
/// or `None` where there are fewer than `min` matches.
///
/// A window that holds fg frames whose moments the bg has not shown yet matches them, at a
/// higher cost, to whatever bg frames look most like them (on a still scene, the few it did
/// show): their lags are too short, and on such a window they can be half of the matches.
/// Where every match fits alike (a still scene throughout), all of them count.
pub fn match_lag(matches: &mut [(f32, i64)], min: usize) -> Option<i64> {
    if matches.len() < min.max(1) {
        return None;
    }
    matches.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let bound = 2.0 * matches[0].0 + 0.02;
    let n = matches.iter().take_while(|m| m.0 <= bound).count().max(min);
    let fit = &mut matches[..n.max(1)];
    fit.sort_unstable_by_key(|m| m.1);
    Some(fit[fit.len() / 2].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_lag_is_the_median_of_the_matches_that_fit() {
        // A bg 24 frames behind: 10 fg frames it showed fit at the noise floor; the 14 after
        // them, whose moments it has not shown, sit on its newest frames, costing more and
        // more.
        let mut m: Vec<(f32, i64)> = (0..10)
            .map(|i| (0.001 + i as f32 * 1e-4, 24))
            .chain((10..24).map(|i| (0.05 * (i - 9) as f32, 33 - i)))
            .collect();
        assert_eq!(match_lag(&mut m, 3), Some(24));
        // All fit alike: the median of all.
        let mut still: Vec<(f32, i64)> = (0..9).map(|i| (0.001, i)).collect();
        assert_eq!(match_lag(&mut still, 3), Some(4));
        // None fits but the best: the best `min`'s median.
        let mut spread: Vec<(f32, i64)> = (0..9).map(|i| (0.1 * (i + 1) as f32, i)).collect();
        assert_eq!(match_lag(&mut spread, 3), Some(1));
        // Too few.
        assert_eq!(match_lag(&mut [(0.0, 1), (0.0, 2)], 3), None);
    }

    #[test]
    fn slots_place_a_variable_frame_rate_on_its_grid() {
        let ms = |v: &[u64]| v.iter().map(|&m| m * 1_000_000).collect::<Vec<u64>>();
        // Frames 2 and 5..=6 dropped (a 40 ms grid, timestamps a little off it).
        assert_eq!(
            slots(&ms(&[0, 40, 121, 160, 279, 320]), 40_000_000),
            Some(vec![0, 1, 3, 4, 7, 8])
        );
        // No gap, or times off any grid: nothing to place.
        assert_eq!(slots(&ms(&[0, 40, 80, 120]), 40_000_000), None);
        assert_eq!(slots(&ms(&[0, 40, 50, 120]), 40_000_000), None);
        assert_eq!(slots(&ms(&[0, 40, 4000]), 40_000_000), None);
        assert_eq!(slots(&[], 40_000_000), None);
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn duration_is_the_median_step() {
        let t = [0, 40 * MS, 80 * MS, 200 * MS, 240 * MS];
        assert_eq!(estimate_frame_duration(&t), Some(40 * MS));
        assert_eq!(estimate_frame_duration(&[5]), None);
        assert_eq!(estimate_frame_duration(&[5, 5]), None);
    }

    #[test]
    fn gaps_are_filled_forward_and_backward() {
        let t = [None, None, Some(100), None, Some(300)];
        assert_eq!(fill_times(&t, 40), vec![20, 60, 100, 140, 300]);
        assert_eq!(fill_times(&[None, None], 10), vec![0, 10]);
    }

    #[test]
    fn fg_frames_take_the_bg_frame_showing_at_their_time() {
        // bg at 10 fps, fg at 25 fps starting 150 ms later.
        let bg: Vec<u64> = (0..10).map(|i| i * 100 * MS).collect();
        let fg: Vec<u64> = (0..30).map(|i| 150 * MS + i * 40 * MS).collect();
        let m = map_by_time(&fg, &bg);
        assert_eq!(&m[..6], &[1, 1, 2, 2, 3, 3]);
        // past the bg's end: its last frame
        assert_eq!(*m.last().unwrap(), 9);
    }

    #[test]
    fn before_the_bg_starts_takes_its_first_frame() {
        let bg = [500 * MS, 600 * MS];
        assert_eq!(map_by_time(&[0, 550 * MS], &bg), vec![0, 0]);
        assert!(map_by_time(&[0], &[]).is_empty());
    }

    #[test]
    fn rounding_differences_between_time_bases_do_not_shift_frames() {
        // 24 fps in two rounding conventions
        let bg: Vec<u64> = (0..48)
            .map(|i| (i * 1_000_000_000u64).div_ceil(24))
            .collect();
        let fg: Vec<u64> = (0..48).map(|i| i * 1_000_000_000u64 / 24).collect();
        let m = map_by_time(&fg, &bg);
        assert!(m.iter().enumerate().all(|(i, &b)| b == i));
    }

    #[test]
    fn rates() {
        assert_eq!(rate_from_duration(40 * MS), (25, 1));
        assert_eq!(rate_from_duration(33_366_667), (30000, 1001));
        assert_eq!(rate_from_duration(41_708_333), (24000, 1001));
        assert_eq!(rate_from_duration(16_666_667), (60, 1));
        assert_eq!(rate_from_duration(0), (0, 1));
        assert_eq!(rate_from_duration(37 * MS), (27027, 1000));
    }

    #[test]
    fn nearest_timestamp_within_a_tolerance() {
        let v = [0, 41_666_666, 83_333_333, 125_000_000];
        assert_eq!(half_step(&v), 20_833_333);
        assert_eq!(nearest(&v, 83_000_000, 1_000_000), Some(2));
        assert_eq!(nearest(&v, 84_000_000, 1_000_000), Some(2));
        assert_eq!(nearest(&v, 60_000_000, 1_000_000), None);
        assert_eq!(nearest(&v, 200_000_000, 100_000_000), Some(3));
        assert_eq!(nearest(&[], 5, 10), None);
    }
}
