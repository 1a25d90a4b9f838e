// SPDX-License-Identifier: MIT

//! The element messages `vidkompyalign` posts on the bus, as Rust types.
//!
//! Each type converts to the `gst::Structure` the element posts and back. The structures'
//! names and fields are the element's API for applications in any language (they are listed in
//! `docs/reference.md`): fields hold plain types (numbers, booleans, strings, clock times, an
//! array of structures), and reading takes the fields it knows and ignores any others.
//!
//! ```no_run
//! use gstvidkompy::messages::{Alignment, ElementMessage};
//! # fn on(msg: &gst::Message) {
//! if let Some(Ok(a)) = Alignment::from_message(msg) {
//!     println!("fg at ({}, {}) x{}", a.x, a.y, a.scale);
//! }
//! # }
//! ```

use gst::glib;
use std::fmt;
use std::str::FromStr;

/// A field that is missing or holds another type than the message's definition says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub message: &'static str,
    pub field: &'static str,
    pub why: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: field {}: {}", self.message, self.field, self.why)
    }
}

impl std::error::Error for FieldError {}

/// One kind of element message.
pub trait ElementMessage: Sized {
    /// The structure's name.
    const NAME: &'static str;

    fn to_structure(&self) -> gst::Structure;

    fn from_structure(s: &gst::StructureRef) -> Result<Self, FieldError>;

    /// This message, when `msg` is an element message of this kind; `None` for any other.
    fn from_message(msg: &gst::Message) -> Option<Result<Self, FieldError>> {
        match msg.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == Self::NAME)
                .map(Self::from_structure),
            _ => None,
        }
    }

    /// The element message posted from `src`.
    fn to_message(&self, src: &impl glib::prelude::IsA<gst::Object>) -> gst::Message {
        gst::message::Element::builder(self.to_structure())
            .src(src)
            .build()
    }
}

/// Reads the fields of one structure, naming the message in errors.
struct Reader<'a> {
    message: &'static str,
    s: &'a gst::StructureRef,
}

impl<'a> Reader<'a> {
    fn new<M: ElementMessage>(s: &'a gst::StructureRef) -> Result<Self, FieldError> {
        let r = Reader {
            message: M::NAME,
            s,
        };
        if s.name() != M::NAME {
            return Err(r.error("name", format!("the structure is named {}", s.name())));
        }
        Ok(r)
    }

    fn error(&self, field: &'static str, why: String) -> FieldError {
        FieldError {
            message: self.message,
            field,
            why,
        }
    }

    fn get<T>(&self, field: &'static str) -> Result<T, FieldError>
    where
        T: for<'b> glib::value::FromValue<'b> + 'static,
    {
        self.s
            .get::<T>(field)
            .map_err(|e| self.error(field, e.to_string()))
    }

    fn opt<T>(&self, field: &'static str) -> Result<Option<T>, FieldError>
    where
        T: for<'b> glib::value::FromValue<'b> + 'static,
    {
        if self.s.has_field(field) {
            self.get(field).map(Some)
        } else {
            Ok(None)
        }
    }

    fn parse<T: FromStr<Err = String>>(&self, field: &'static str) -> Result<T, FieldError> {
        let v: String = self.get(field)?;
        v.parse().map_err(|e| self.error(field, e))
    }

    fn footprint(&self) -> Result<Footprint, FieldError> {
        Ok(Footprint {
            x: self.get("footprint-x")?,
            y: self.get("footprint-y")?,
            width: self.get("footprint-width")?,
            height: self.get("footprint-height")?,
        })
    }
}

/// String values of a field, both ways.
macro_rules! nicks {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $nick:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $nick),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($nick => Ok($name::$variant),)+
                    _ => Err(format!("unknown value {s:?}")),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

nicks! {
    /// How fg frames were given their bg frames (`mapping`).
    MappedBy {
        /// By content, offline (dynamic time warping over the whole streams).
        Content = "content",
        /// By running time: the content did not match.
        RunningTime = "running-time",
        /// From the `alignment` file.
        Loaded = "loaded",
        /// By content, on live mode's sliding window.
        Live = "live",
        /// By content, on the sliding window of `force-live` on files (the report's value).
        Windowed = "windowed",
    }
}

nicks! {
    /// How the element got at the frames it outputs (`frames`).
    Frames {
        /// Read again from the inputs (seekable files).
        ReadAgain = "read-again",
        /// Stored while reading (inputs that cannot seek).
        Stored = "stored",
        /// Held on live mode's sliding window.
        Live = "live",
        /// Held on a sliding window, each input read once (plus the first window: files that
        /// can seek).
        Windowed = "windowed",
    }
}

nicks! {
    /// Where the footprint came from (`footprint-from`).
    FootprintFrom {
        /// Found in the frames' content.
        Content = "content",
        /// The `x`, `y` and `scale` properties, all set.
        Properties = "properties",
        /// Not found in the content: placed where the properties say, centred where unset.
        Fallback = "fallback",
        /// The `alignment` file.
        Report = "report",
    }
}

/// A footprint as composited: bg pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// A stretch of the fg with a footprint of its own (a `segment` structure of
/// [`Alignment::segments`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The fg frame where it starts.
    pub fg_frame: u64,
    pub x: f64,
    pub y: f64,
    pub scale: f64,
    pub footprint: Footprint,
    /// NaN when not measured.
    pub spatial_confidence: f64,
    /// NaN when not measured.
    pub mean_cost: f64,
}

impl Segment {
    pub const NAME: &'static str = "segment";

    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::NAME)
            .field("fg-frame", self.fg_frame)
            .field("x", self.x)
            .field("y", self.y)
            .field("scale", self.scale)
            .field("footprint-x", self.footprint.x)
            .field("footprint-y", self.footprint.y)
            .field("footprint-width", self.footprint.width)
            .field("footprint-height", self.footprint.height)
            .field("spatial-confidence", self.spatial_confidence)
            .field("mean-cost", self.mean_cost)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, FieldError> {
        let r = Reader {
            message: Alignment::NAME,
            s,
        };
        Ok(Segment {
            fg_frame: r.get("fg-frame")?,
            x: r.get("x")?,
            y: r.get("y")?,
            scale: r.get("scale")?,
            footprint: r.footprint()?,
            spatial_confidence: r.get("spatial-confidence")?,
            mean_cost: r.get("mean-cost")?,
        })
    }
}

/// `vidkompy-alignment`: the alignment decided (offline once, live at each search or re-check
/// that changes it).
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// The first stretch's footprint, sub-pixel: left, top (bg px), footprint width / fg width.
    pub x: f64,
    pub y: f64,
    pub scale: f64,
    /// The first stretch's footprint as composited.
    pub footprint: Footprint,
    pub footprint_from: FootprintFrom,
    /// Mean NCC at the footprint, −1…1 (NaN: not measured).
    pub spatial_confidence: f64,
    /// The footprint search's score calibrated against unrelated content: 0 is what content
    /// that does not show the bg's scene scores, 1 a perfect match; below 0.5 the footprint
    /// falls back (NaN: no search made).
    pub spatial_calibrated: f64,
    /// 0…1 (NaN: not measured).
    pub temporal_confidence: f64,
    pub mean_cost: f64,
    pub first_bg_frame: u64,
    pub last_bg_frame: u64,
    /// The stream time of `first_bg_frame` (offline; where the bg has timestamps).
    pub first_bg_time: Option<gst::ClockTime>,
    pub fg_frames: u64,
    /// bg frames per fg frame (NaN: not measured).
    pub rate: f64,
    pub mapping: MappedBy,
    pub frames: Frames,
    /// Frame copies held in memory and written to the spill file.
    pub stored_bytes: u64,
    pub spilled_bytes: u64,
    /// The analysis's thumbnails and features written to temp files.
    pub spilled_thumbnail_bytes: u64,
    pub spilled_feature_bytes: u64,
    /// The compute backend's name.
    pub device: String,
    pub analysis_time: gst::ClockTime,
    /// Live runs: the lookahead in use when posted, which is the latency the element adds
    /// (raised within `max-lookahead` where the bg lags); `None` otherwise.
    pub lookahead: Option<gst::ClockTime>,
    /// One per stretch of the fg with its own footprint (more than one only offline, for a fg
    /// re-framed at a caps change).
    pub segments: Vec<Segment>,
}

impl ElementMessage for Alignment {
    const NAME: &'static str = "vidkompy-alignment";

    fn to_structure(&self) -> gst::Structure {
        let segments = gst::Array::new(self.segments.iter().map(Segment::to_structure));
        gst::Structure::builder(Self::NAME)
            .field("x", self.x)
            .field("y", self.y)
            .field("scale", self.scale)
            .field("footprint-x", self.footprint.x)
            .field("footprint-y", self.footprint.y)
            .field("footprint-width", self.footprint.width)
            .field("footprint-height", self.footprint.height)
            .field("footprint-from", self.footprint_from.as_str())
            .field("spatial-confidence", self.spatial_confidence)
            .field("spatial-calibrated", self.spatial_calibrated)
            .field("temporal-confidence", self.temporal_confidence)
            .field("mean-cost", self.mean_cost)
            .field("first-bg-frame", self.first_bg_frame)
            .field("last-bg-frame", self.last_bg_frame)
            .field_if_some("first-bg-time", self.first_bg_time)
            .field("fg-frames", self.fg_frames)
            .field("rate", self.rate)
            .field("mapping", self.mapping.as_str())
            .field("frames", self.frames.as_str())
            .field("stored-bytes", self.stored_bytes)
            .field("spilled-bytes", self.spilled_bytes)
            .field("spilled-thumbnail-bytes", self.spilled_thumbnail_bytes)
            .field("spilled-feature-bytes", self.spilled_feature_bytes)
            .field("device", self.device.as_str())
            .field("analysis-time", self.analysis_time)
            .field_if_some("lookahead", self.lookahead)
            .field("segments", segments)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, FieldError> {
        let r = Reader::new::<Self>(s)?;
        let segments = r
            .get::<gst::Array>("segments")?
            .iter()
            .map(|v| {
                v.get::<gst::Structure>()
                    .map_err(|e| r.error("segments", e.to_string()))
                    .and_then(|s| Segment::from_structure(&s))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Alignment {
            x: r.get("x")?,
            y: r.get("y")?,
            scale: r.get("scale")?,
            footprint: r.footprint()?,
            footprint_from: r.parse("footprint-from")?,
            spatial_confidence: r.get("spatial-confidence")?,
            spatial_calibrated: r.get("spatial-calibrated")?,
            temporal_confidence: r.get("temporal-confidence")?,
            mean_cost: r.get("mean-cost")?,
            first_bg_frame: r.get("first-bg-frame")?,
            last_bg_frame: r.get("last-bg-frame")?,
            first_bg_time: r.opt("first-bg-time")?,
            fg_frames: r.get("fg-frames")?,
            rate: r.get("rate")?,
            mapping: r.parse("mapping")?,
            frames: r.parse("frames")?,
            stored_bytes: r.get("stored-bytes")?,
            spilled_bytes: r.get("spilled-bytes")?,
            spilled_thumbnail_bytes: r.get("spilled-thumbnail-bytes")?,
            spilled_feature_bytes: r.get("spilled-feature-bytes")?,
            device: r.get("device")?,
            analysis_time: r.get("analysis-time")?,
            lookahead: r.opt("lookahead")?,
            segments,
        })
    }
}

/// `vidkompy-progress`: how far the run is, per stage; posted at each stage's start and end
/// and every 0.5 s in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// fg frames read (`done`), bg frames read, and the fg's frames in all when upstream knows
    /// its duration.
    Reading {
        done: u64,
        bg_frames: u64,
        total: Option<u64>,
    },
    /// The analysis, running for `elapsed`.
    Analysis { elapsed: gst::ClockTime },
    /// Two-pass mode's short pass that reads again the frames the refinement needs: fg frames
    /// read again, how far the pass reads at most, frames fetched of those wanted.
    Fetch {
        done: u64,
        total: u64,
        frames_fetched: u64,
        frames_wanted: u64,
    },
    /// fg frames output of all.
    Output { done: u64, total: u64 },
}

impl Progress {
    /// The `stage` field's value.
    pub fn stage(&self) -> &'static str {
        match self {
            Progress::Reading { .. } => "reading",
            Progress::Analysis { .. } => "analysis",
            Progress::Fetch { .. } => "fetch",
            Progress::Output { .. } => "output",
        }
    }
}

impl ElementMessage for Progress {
    const NAME: &'static str = "vidkompy-progress";

    fn to_structure(&self) -> gst::Structure {
        let b = gst::Structure::builder(Self::NAME).field("stage", self.stage());
        match *self {
            Progress::Reading {
                done,
                bg_frames,
                total,
            } => b
                .field("done", done)
                .field("bg-frames", bg_frames)
                .field_if_some("total", total),
            Progress::Analysis { elapsed } => b.field("elapsed", elapsed),
            Progress::Fetch {
                done,
                total,
                frames_fetched,
                frames_wanted,
            } => b
                .field("done", done)
                .field("total", total)
                .field("frames-fetched", frames_fetched)
                .field("frames-wanted", frames_wanted),
            Progress::Output { done, total } => b.field("done", done).field("total", total),
        }
        .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, FieldError> {
        let r = Reader::new::<Self>(s)?;
        let stage: String = r.get("stage")?;
        Ok(match stage.as_str() {
            "reading" => Progress::Reading {
                done: r.get("done")?,
                bg_frames: r.get("bg-frames")?,
                total: r.opt("total")?,
            },
            "analysis" => Progress::Analysis {
                elapsed: r.get("elapsed")?,
            },
            "fetch" => Progress::Fetch {
                done: r.get("done")?,
                total: r.get("total")?,
                frames_fetched: r.get("frames-fetched")?,
                frames_wanted: r.get("frames-wanted")?,
            },
            "output" => Progress::Output {
                done: r.get("done")?,
                total: r.get("total")?,
            },
            other => return Err(r.error("stage", format!("unknown value {other:?}"))),
        })
    }
}

/// `vidkompy-reframed`: the fg's footprint moved (offline at a caps change, live at a
/// re-check).
#[derive(Debug, Clone, PartialEq)]
pub struct Reframed {
    pub x: f64,
    pub y: f64,
    pub scale: f64,
    pub previous_x: f64,
    pub previous_y: f64,
    pub previous_scale: f64,
    pub spatial_confidence: f64,
    /// The fg frame where the new footprint starts.
    pub fg_frame: u64,
    /// Live: the running time of that fg frame.
    pub fg_running_time: Option<gst::ClockTime>,
    /// Live: how often the fg was re-framed so far.
    pub count: Option<u64>,
}

impl ElementMessage for Reframed {
    const NAME: &'static str = "vidkompy-reframed";

    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::NAME)
            .field("x", self.x)
            .field("y", self.y)
            .field("scale", self.scale)
            .field("previous-x", self.previous_x)
            .field("previous-y", self.previous_y)
            .field("previous-scale", self.previous_scale)
            .field("spatial-confidence", self.spatial_confidence)
            .field("fg-frame", self.fg_frame)
            .field_if_some("fg-running-time", self.fg_running_time)
            .field_if_some("count", self.count)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, FieldError> {
        let r = Reader::new::<Self>(s)?;
        Ok(Reframed {
            x: r.get("x")?,
            y: r.get("y")?,
            scale: r.get("scale")?,
            previous_x: r.get("previous-x")?,
            previous_y: r.get("previous-y")?,
            previous_scale: r.get("previous-scale")?,
            spatial_confidence: r.get("spatial-confidence")?,
            fg_frame: r.get("fg-frame")?,
            fg_running_time: r.opt("fg-running-time")?,
            count: r.opt("count")?,
        })
    }
}

/// `vidkompy-bg-lagging` (live): fg frames take the newest bg frame because theirs has not
/// arrived (`lagging`), or the bg caught up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BgLagging {
    pub lagging: bool,
    pub fg_frame: u64,
    pub bg_frame: u64,
}

impl ElementMessage for BgLagging {
    const NAME: &'static str = "vidkompy-bg-lagging";

    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::NAME)
            .field("lagging", self.lagging)
            .field("fg-frame", self.fg_frame)
            .field("bg-frame", self.bg_frame)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, FieldError> {
        let r = Reader::new::<Self>(s)?;
        Ok(BgLagging {
            lagging: r.get("lagging")?,
            fg_frame: r.get("fg-frame")?,
            bg_frame: r.get("bg-frame")?,
        })
    }
}

/// `vidkompy-lookahead` (live): a search showed the bg lagging the fg's content by `lag` ns,
/// more than the lookahead (`previous`) covers; the lookahead, and the latency the element
/// reports, is now `lookahead` (at most `max-lookahead`, and within the maximum of the
/// pipeline's latency), with a LATENCY message posted
/// alongside. `fg-frame`: the first fg frame of the search's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookaheadRaised {
    pub lag: u64,
    pub previous: u64,
    pub lookahead: u64,
    pub fg_frame: u64,
}

impl ElementMessage for LookaheadRaised {
    const NAME: &'static str = "vidkompy-lookahead";

    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::NAME)
            .field("lag", self.lag)
            .field("previous", self.previous)
            .field("lookahead", self.lookahead)
            .field("fg-frame", self.fg_frame)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, FieldError> {
        let r = Reader::new::<Self>(s)?;
        Ok(LookaheadRaised {
            lag: r.get("lag")?,
            previous: r.get("previous")?,
            lookahead: r.get("lookahead")?,
            fg_frame: r.get("fg-frame")?,
        })
    }
}

/// `vidkompy-reanchored` (live): the bg's lead passed `max-offset` and the path starts again
/// from the oldest bg frame held (`reanchoring`), or a commit kept its anchor again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reanchored {
    pub reanchoring: bool,
    /// The match committed then.
    pub fg_frame: u64,
    pub bg_frame: u64,
    /// Re-anchorings so far.
    pub count: u64,
}

impl ElementMessage for Reanchored {
    const NAME: &'static str = "vidkompy-reanchored";

    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(Self::NAME)
            .field("reanchoring", self.reanchoring)
            .field("fg-frame", self.fg_frame)
            .field("bg-frame", self.bg_frame)
            .field("count", self.count)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, FieldError> {
        let r = Reader::new::<Self>(s)?;
        Ok(Reanchored {
            reanchoring: r.get("reanchoring")?,
            fg_frame: r.get("fg-frame")?,
            bg_frame: r.get("bg-frame")?,
            count: r.get("count")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().unwrap();
    }

    fn fields(s: &gst::Structure) -> Vec<String> {
        s.fields().map(|f| f.to_string()).collect()
    }

    fn alignment() -> Alignment {
        Alignment {
            x: 80.25,
            y: 46.0,
            scale: 0.5,
            footprint: Footprint {
                x: 80,
                y: 46,
                width: 160,
                height: 90,
            },
            footprint_from: FootprintFrom::Content,
            spatial_confidence: 0.99,
            spatial_calibrated: 0.9,
            temporal_confidence: 0.9,
            mean_cost: 0.01,
            first_bg_frame: 12,
            last_bg_frame: 47,
            first_bg_time: Some(gst::ClockTime::from_mseconds(500)),
            fg_frames: 36,
            rate: 1.0,
            mapping: MappedBy::Content,
            frames: Frames::ReadAgain,
            stored_bytes: 0,
            spilled_bytes: 0,
            spilled_thumbnail_bytes: 0,
            spilled_feature_bytes: 0,
            device: "cpu".into(),
            analysis_time: gst::ClockTime::from_mseconds(120),
            lookahead: Some(gst::ClockTime::from_mseconds(1500)),
            segments: vec![Segment {
                fg_frame: 0,
                x: 80.25,
                y: 46.0,
                scale: 0.5,
                footprint: Footprint {
                    x: 80,
                    y: 46,
                    width: 160,
                    height: 90,
                },
                spatial_confidence: 0.99,
                mean_cost: 0.01,
            }],
        }
    }

    /// The names and fields are the API of C and Python applications: pinned here.
    #[test]
    fn each_message_has_its_name_and_fields() {
        init();
        let a = alignment().to_structure();
        assert_eq!(a.name(), "vidkompy-alignment");
        assert_eq!(
            fields(&a),
            [
                "x",
                "y",
                "scale",
                "footprint-x",
                "footprint-y",
                "footprint-width",
                "footprint-height",
                "footprint-from",
                "spatial-confidence",
                "spatial-calibrated",
                "temporal-confidence",
                "mean-cost",
                "first-bg-frame",
                "last-bg-frame",
                "first-bg-time",
                "fg-frames",
                "rate",
                "mapping",
                "frames",
                "stored-bytes",
                "spilled-bytes",
                "spilled-thumbnail-bytes",
                "spilled-feature-bytes",
                "device",
                "analysis-time",
                "lookahead",
                "segments",
            ]
        );
        let segs = a.get::<gst::Array>("segments").unwrap();
        let seg = segs[0].get::<gst::Structure>().unwrap();
        assert_eq!(seg.name(), "segment");
        assert_eq!(
            fields(&seg),
            [
                "fg-frame",
                "x",
                "y",
                "scale",
                "footprint-x",
                "footprint-y",
                "footprint-width",
                "footprint-height",
                "spatial-confidence",
                "mean-cost",
            ]
        );
        let progress = [
            (
                Progress::Reading {
                    done: 1,
                    bg_frames: 2,
                    total: Some(3),
                },
                &["stage", "done", "bg-frames", "total"][..],
            ),
            (
                Progress::Analysis {
                    elapsed: gst::ClockTime::SECOND,
                },
                &["stage", "elapsed"][..],
            ),
            (
                Progress::Fetch {
                    done: 1,
                    total: 2,
                    frames_fetched: 3,
                    frames_wanted: 4,
                },
                &["stage", "done", "total", "frames-fetched", "frames-wanted"][..],
            ),
            (
                Progress::Output { done: 1, total: 2 },
                &["stage", "done", "total"][..],
            ),
        ];
        for (p, names) in progress {
            let s = p.to_structure();
            assert_eq!(s.name(), "vidkompy-progress");
            assert_eq!(fields(&s), names);
            assert_eq!(s.get::<&str>("stage"), Ok(p.stage()));
        }
        let r = Reframed {
            x: 1.0,
            y: 2.0,
            scale: 0.5,
            previous_x: 3.0,
            previous_y: 4.0,
            previous_scale: 0.6,
            spatial_confidence: 0.9,
            fg_frame: 18,
            fg_running_time: Some(gst::ClockTime::SECOND),
            count: Some(1),
        }
        .to_structure();
        assert_eq!(r.name(), "vidkompy-reframed");
        assert_eq!(
            fields(&r),
            [
                "x",
                "y",
                "scale",
                "previous-x",
                "previous-y",
                "previous-scale",
                "spatial-confidence",
                "fg-frame",
                "fg-running-time",
                "count",
            ]
        );
        let l = BgLagging {
            lagging: true,
            fg_frame: 1,
            bg_frame: 2,
        }
        .to_structure();
        assert_eq!(l.name(), "vidkompy-bg-lagging");
        assert_eq!(fields(&l), ["lagging", "fg-frame", "bg-frame"]);
        let r = LookaheadRaised {
            lag: 1,
            previous: 2,
            lookahead: 3,
            fg_frame: 4,
        };
        assert_eq!(
            LookaheadRaised::from_structure(&r.to_structure()).unwrap(),
            r
        );
        assert_eq!(
            fields(&r.to_structure()),
            ["lag", "previous", "lookahead", "fg-frame"]
        );
        let a = Reanchored {
            reanchoring: true,
            fg_frame: 1,
            bg_frame: 2,
            count: 3,
        }
        .to_structure();
        assert_eq!(a.name(), "vidkompy-reanchored");
        assert_eq!(fields(&a), ["reanchoring", "fg-frame", "bg-frame", "count"]);
        assert_eq!(
            MappedBy::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            ["content", "running-time", "loaded", "live", "windowed"]
        );
        assert_eq!(
            Frames::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            ["read-again", "stored", "live", "windowed"]
        );
        assert_eq!(
            FootprintFrom::ALL
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>(),
            ["content", "properties", "fallback", "report"]
        );
    }

    #[test]
    fn messages_read_back_what_they_wrote_and_tolerate_extra_fields() {
        init();
        let a = alignment();
        let mut s = a.to_structure();
        assert_eq!(Alignment::from_structure(&s), Ok(a.clone()));
        s.set("a-field-from-a-later-version", 1u32);
        assert_eq!(Alignment::from_structure(&s), Ok(a.clone()));
        let mut no_time = a.clone();
        no_time.first_bg_time = None;
        assert_eq!(
            Alignment::from_structure(&no_time.to_structure()),
            Ok(no_time)
        );
        for p in [
            Progress::Reading {
                done: 1,
                bg_frames: 2,
                total: None,
            },
            Progress::Analysis {
                elapsed: gst::ClockTime::SECOND,
            },
            Progress::Output { done: 1, total: 2 },
        ] {
            assert_eq!(Progress::from_structure(&p.to_structure()), Ok(p));
        }
        let r = Reanchored {
            reanchoring: false,
            fg_frame: 1,
            bg_frame: 2,
            count: 3,
        };
        assert_eq!(Reanchored::from_structure(&r.to_structure()), Ok(r));
        let l = BgLagging {
            lagging: false,
            fg_frame: 4,
            bg_frame: 5,
        };
        assert_eq!(BgLagging::from_structure(&l.to_structure()), Ok(l));
        let msg = l.to_message(&gst::Bin::new());
        assert_eq!(BgLagging::from_message(&msg), Some(Ok(l)));
        assert!(Reanchored::from_message(&msg).is_none());
    }

    #[test]
    fn a_missing_or_mistyped_field_is_named() {
        init();
        let mut s = alignment().to_structure();
        s.remove_field("device");
        let e = Alignment::from_structure(&s).unwrap_err();
        assert_eq!((e.message, e.field), ("vidkompy-alignment", "device"));
        s.set("device", "cpu");
        s.set("mapping", "guessed");
        let e = Alignment::from_structure(&s).unwrap_err();
        assert_eq!(e.field, "mapping");
        assert!(e.to_string().contains("guessed"), "{e}");
        let e = Progress::from_structure(
            &gst::Structure::builder("vidkompy-progress")
                .field("stage", "reading")
                .field("done", 1u32)
                .build(),
        )
        .unwrap_err();
        assert_eq!(e.field, "done");
    }
}
