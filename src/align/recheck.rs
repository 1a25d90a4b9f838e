// SPDX-License-Identifier: MIT

//! Live mode's footprint decisions on plain numbers: whether a search made early (on fewer fg
//! frames than the lookahead spans) is trusted, when the footprint in use is checked again, and
//! whether a re-check's result replaces it.

/// The confidence a search on fewer fg frames than the lookahead spans must reach to be used
/// (else the search waits for the whole window); a clear match scores 0.99 and more.
pub const EARLY_TRUST: f64 = 0.98;
/// How often, in fg running time (ns), a found footprint is checked again.
pub const RECHECK: u64 = 5_000_000_000;
/// The soonest (ns) a re-check follows the last one when matches got worse (a re-framed fg).
pub const RECHECK_SOON: u64 = 1_000_000_000;
/// The most times the periodic re-check's interval doubles while re-checks confirm the
/// footprint (5 s, 10 s, 20 s, then every 40 s). A file's fg is re-framed, if at all, at an edit,
/// which the matches getting worse reveal sooner than any period; the periodic re-checks only
/// guard against a footprint fitted a little off.
pub const RECHECK_DOUBLINGS: u32 = 3;
/// Share of the recent committed matches matching nothing well that counts as matches getting
/// worse.
pub const WORSE_SHARE: f64 = 0.5;
/// Bg pixels a footprint corner must move by for a re-check to replace the footprint (a
/// refined estimate: the first window may have held little of the other stream).
pub const REFINE_PX: f64 = 2.0;
/// The same for a better fit found on kept fg frames or a whole window after an early search.
pub const KEPT_REFINE_PX: f64 = 0.5;
/// Bg pixels a footprint corner must move by to count as a re-framed fg feed: message, and
/// the path aligned afresh.
pub const REFRAME_PX: f64 = 8.0;
/// Least confidence of a footprint that replaces the one in use because the matches got worse
/// (a re-framed fg fits its new footprint about as well as the old one did): fg frames held
/// while the bg has not shown their moments yet (it lags; the lag flickers under load) fit a
/// wrong footprint at 0.8 or so.
pub const REFRAME_TRUST: f64 = 0.95;

/// Whether live mode uses a search's footprint. Live searches are judged by the raw spatial
/// confidence (at least [`super::MIN_SPATIAL_CONFIDENCE`]), not the calibrated one offline
/// uses: while the bg lags by more than the lookahead, the first window compares moments the
/// bg has not shown yet and a right footprint can score near chance; live mode corrects a
/// footprint fitted that way on kept frames and re-checks, which a fallback would delay.
pub fn live_placed(a: &super::analysis::Alignment) -> bool {
    a.spatial_confidence >= super::MIN_SPATIAL_CONFIDENCE
}

/// Whether a footprint found early, at `confidence`, is used.
pub fn early_trusted(confidence: f64) -> bool {
    confidence >= EARLY_TRUST
}

/// Whether the recent matches got worse: `unsure` is the share of them that match nothing
/// well (`None` while there are too few).
pub fn matches_worse(unsure: Option<f64>) -> bool {
    unsure.is_some_and(|s| s >= WORSE_SHARE)
}

/// Whether the footprint in use is due for a re-check, `since` ns of fg running time after the
/// last one: periodically (the period doubling with each of the last `confirmed` re-checks in a
/// row that confirmed it, up to [`RECHECK_DOUBLINGS`]), soon when the matches got `worse`, and
/// when a footprint found early is to be `confirm`ed on the whole window.
pub fn recheck_due(since: u64, confirmed: u32, worse: bool, confirm: bool) -> bool {
    let every = RECHECK << confirmed.min(RECHECK_DOUBLINGS);
    since >= every || (worse && since >= RECHECK_SOON) || confirm
}

/// A re-check's result against the footprint in use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recheck {
    /// How far a corner of the footprint found lies from the one in use, bg pixels.
    pub moved: f64,
    /// The footprint found: its spatial confidence and its mean match cost.
    pub confidence: f64,
    pub mean_cost: f64,
    /// The footprint in use: its score, and the mean cost it was found with, if known.
    pub old_score: f64,
    pub old_cost: Option<f64>,
    /// The re-check ran on kept fg frames (the bg lagged) or on a whole window after an early
    /// search: a correction rather than a look for a re-framed fg.
    pub kept: bool,
    /// It was started because the matches got worse.
    pub worse: bool,
}

/// What a re-check decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The footprint in use is where the re-check found it.
    Confirmed,
    /// It moved, but the result is neither clearly better nor asked for: the one in use stays.
    Kept,
    /// The footprint found replaces the one in use; `reframed` when it moved so far that the
    /// fg was re-framed (a message, and the path aligned afresh).
    Replaced { reframed: bool },
}

/// Whether a re-check's footprint replaces the one in use.
pub fn verdict(r: &Recheck) -> Verdict {
    // On kept frames or a full window, a better fit than the footprint in use had also counts:
    // that one may have been fitted on moments the bg had not shown yet. Not for a move as far
    // as a re-framing's: kept frames the bg had not quite shown yet when the re-check ran fit
    // a wrong footprint 15 to 35 px away at 0.8 to 0.96, below a right one's confidence, and
    // the one in use must then be the less sure to be replaced.
    let lower_cost = r.old_cost.is_some_and(|cost| r.mean_cost < cost);
    let better = r.confidence > r.old_score || (r.kept && lower_cost && r.moved <= REFRAME_PX);
    // A better fit on kept frames or a full window replaces smaller moves too: the one in use
    // may be a couple of pixels off.
    let least = if r.kept { KEPT_REFINE_PX } else { REFINE_PX };
    let worse = r.worse && r.confidence >= REFRAME_TRUST;
    if r.moved <= least {
        return Verdict::Confirmed;
    }
    if !(worse || better) {
        return Verdict::Kept;
    }
    Verdict::Replaced {
        // A correction (kept frames, a full window) is not reported as a re-framing.
        reframed: r.moved > REFRAME_PX && !r.kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn re_checks_come_every_five_seconds_doubling_while_they_confirm() {
        assert!(!recheck_due(5 * S - 1, 0, false, false));
        assert!(recheck_due(5 * S, 0, false, false));
        assert!(!recheck_due(9 * S, 1, false, false));
        assert!(recheck_due(10 * S, 1, false, false));
        assert!(recheck_due(20 * S, 2, false, false));
        // The period stops growing at 40 s.
        assert!(!recheck_due(39 * S, 7, false, false));
        assert!(recheck_due(40 * S, 7, false, false));
    }

    #[test]
    fn worse_matches_bring_a_re_check_after_a_second_and_a_confirmation_at_once() {
        assert!(!matches_worse(None));
        assert!(!matches_worse(Some(0.49)));
        assert!(matches_worse(Some(0.5)));
        assert!(!recheck_due(S - 1, 3, true, false));
        assert!(recheck_due(S, 3, true, false));
        assert!(recheck_due(0, 3, false, true));
    }

    #[test]
    fn live_searches_are_judged_by_the_raw_confidence() {
        let a = |raw: f64, calibrated: f64| crate::align::analysis::Alignment {
            x: 0.0,
            y: 0.0,
            scale: 1.0,
            spatial_confidence: raw,
            spatial_calibrated: calibrated,
            mapping: Vec::new(),
            costs: Vec::new(),
            mean_cost: 0.0,
            temporal_confidence: 0.5,
            rate: None,
            timings: Default::default(),
        };
        // A first window while the bg lags: near chance, but the right region to correct.
        assert!(live_placed(&a(0.585, 0.1)));
        assert!(!a(0.585, 0.1).placed());
        assert!(!live_placed(&a(0.45, 0.9)));
    }

    #[test]
    fn early_searches_are_trusted_only_when_clear() {
        assert!(early_trusted(0.99));
        assert!(early_trusted(EARLY_TRUST));
        assert!(!early_trusted(0.97));
        assert!(!early_trusted(f64::NAN));
    }

    fn recheck(moved: f64, confidence: f64) -> Recheck {
        Recheck {
            moved,
            confidence,
            mean_cost: 0.2,
            old_score: 0.99,
            old_cost: Some(0.1),
            kept: false,
            worse: false,
        }
    }

    #[test]
    fn a_re_check_that_finds_the_footprint_where_it_was_confirms_it() {
        assert_eq!(verdict(&recheck(1.5, 0.995)), Verdict::Confirmed);
        // On kept frames the bar is half a pixel.
        let kept = Recheck {
            kept: true,
            ..recheck(1.5, 0.995)
        };
        assert_eq!(verdict(&kept), Verdict::Replaced { reframed: false });
        assert_eq!(verdict(&Recheck { moved: 0.4, ..kept }), Verdict::Confirmed);
    }

    #[test]
    fn a_moved_footprint_replaces_the_one_in_use_only_when_better_or_asked_for() {
        // Less confident than the one in use, matches not worse: kept.
        assert_eq!(verdict(&recheck(12.0, 0.98)), Verdict::Kept);
        // More confident: replaced, and far enough to be a re-framing.
        assert_eq!(
            verdict(&recheck(12.0, 0.995)),
            Verdict::Replaced { reframed: true }
        );
        assert_eq!(
            verdict(&recheck(4.0, 0.995)),
            Verdict::Replaced { reframed: false }
        );
        // Started by worse matches: replaced when confident enough, even if below the old score.
        let worse = Recheck {
            worse: true,
            ..recheck(30.0, 0.96)
        };
        assert_eq!(verdict(&worse), Verdict::Replaced { reframed: true });
        let unsure = Recheck {
            confidence: 0.9,
            ..worse
        };
        assert_eq!(verdict(&unsure), Verdict::Kept);
        // On kept frames a lower match cost counts as better for a refinement (a move short
        // of a re-framing's), at any confidence; that is a correction, not a re-framing.
        let kept = Recheck {
            kept: true,
            mean_cost: 0.05,
            ..recheck(5.0, 0.8)
        };
        assert_eq!(verdict(&kept), Verdict::Replaced { reframed: false });
        assert_eq!(
            verdict(&Recheck {
                old_cost: None,
                ..kept
            }),
            Verdict::Kept
        );
        // A move as far as a re-framing's at a lower confidence than the one in use: kept,
        // however low its cost (0.98 and 0.8 both).
        let far = Recheck {
            moved: 30.0,
            ..kept
        };
        assert_eq!(verdict(&far), Verdict::Kept);
        assert_eq!(
            verdict(&Recheck {
                confidence: 0.98,
                ..far
            }),
            Verdict::Kept
        );
        // More confident than the one in use (a first window fitted at chance): replaced
        // however far it moved, and still not called a re-framing.
        assert_eq!(
            verdict(&Recheck {
                old_score: 0.6,
                ..far
            }),
            Verdict::Replaced { reframed: false }
        );
    }
}
