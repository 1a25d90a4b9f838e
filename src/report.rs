// SPDX-License-Identifier: MIT

//! The result of an alignment as a document: footprint, confidences, timings and the full
//! frame mapping, (de)serialised as JSON. Written with `report`, read back with `alignment` to
//! skip the analysis.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the document's layout.
pub const VERSION: u32 = 1;

/// Size and frame count of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    pub width: u32,
    pub height: u32,
    pub frames: usize,
}

/// The footprint as composited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// A stretch of fg frames with its own footprint: a fg whose caps changed where it was
/// re-framed (offline).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The stretch's first fg frame; it lasts until the next segment's.
    pub from: usize,
    /// Sub-pixel estimate, as the report's.
    pub x: f64,
    pub y: f64,
    pub scale: f64,
    pub footprint: Footprint,
    pub spatial_confidence: Option<f64>,
    pub mean_cost: Option<f64>,
}

/// One fg frame and the bg frame it was composited over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub fg: usize,
    /// fg PTS in ns, if the buffer had one.
    pub fg_pts: Option<u64>,
    pub bg: usize,
    pub bg_pts: Option<u64>,
    /// Match cost (1 - NCC of the features); absent for running-time mappings.
    pub cost: Option<f32>,
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub fg: Stream,
    pub bg: Stream,
    /// Sub-pixel estimate: footprint top-left in bg px and footprint width / fg width.
    pub x: f64,
    pub y: f64,
    pub scale: f64,
    pub footprint: Footprint,
    pub spatial_confidence: Option<f64>,
    /// The spatial confidence calibrated against unrelated content (0 chance, 1 perfect).
    #[serde(default)]
    pub spatial_calibrated: Option<f64>,
    pub temporal_confidence: Option<f64>,
    pub mean_cost: Option<f64>,
    /// `content` or `running-time` (or `loaded`, when read from another report).
    pub mapping: String,
    /// Compute backend that ran the analysis.
    pub device: String,
    pub analysis_seconds: f64,
    /// Seconds per analysis stage (`coarse-spatial`, `features`, `temporal`, `refine`).
    #[serde(default)]
    pub timings: std::collections::BTreeMap<String, f64>,
    /// Stretches of the fg with footprints of their own, when there are several (the report's
    /// own footprint is then the first's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    pub frames: Vec<Entry>,
}

#[derive(Debug)]
pub enum ReportError {
    Io {
        path: PathBuf,
        what: &'static str,
        err: std::io::Error,
    },
    Json {
        path: PathBuf,
        err: serde_json::Error,
    },
    Invalid {
        path: PathBuf,
        why: String,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Io { path, what, err } => {
                write!(f, "cannot {what} {}: {err}", path.display())
            }
            ReportError::Json { path, err } => {
                write!(
                    f,
                    "{} is not a valid alignment report: {err}",
                    path.display()
                )
            }
            ReportError::Invalid { path, why } => {
                write!(
                    f,
                    "alignment {} does not fit the streams: {why}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for ReportError {}

impl Report {
    /// Writes the report as JSON atomically: to a temporary file beside `path`, then renamed
    /// over it, so a reader never sees half a report.
    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        let io = |what, err| ReportError::Io {
            path: path.to_path_buf(),
            what,
            err,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let write = || -> Result<(), std::io::Error> {
            // A random name, removed if anything fails; mode 0666 less the umask, as a
            // file created the plain way.
            let mut f = tempfile::Builder::new()
                .prefix(".vidkompy-report-")
                .suffix(".tmp")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .tempfile_in(dir)?;
            serde_json::to_writer_pretty(&mut f, self).map_err(std::io::Error::other)?;
            f.write_all(b"\n")?;
            f.as_file().sync_all()?;
            f.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| io("write", e))
    }

    /// Reads a report and checks that it describes a mapping it could be (a version this
    /// build reads, one entry per fg frame in order, frame indices in range).
    pub fn read(path: &Path) -> Result<Report, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|err| ReportError::Io {
            path: path.to_path_buf(),
            what: "read",
            err,
        })?;
        let r: Report = serde_json::from_str(&text).map_err(|err| ReportError::Json {
            path: path.to_path_buf(),
            err,
        })?;
        let invalid = |why: String| ReportError::Invalid {
            path: path.to_path_buf(),
            why,
        };
        if r.version != VERSION {
            return Err(invalid(format!(
                "layout version {} (this build reads {VERSION})",
                r.version
            )));
        }
        if r.frames.len() != r.fg.frames {
            return Err(invalid(format!(
                "{} entries for {} fg frames",
                r.frames.len(),
                r.fg.frames
            )));
        }
        for (i, e) in r.frames.iter().enumerate() {
            if e.fg != i || e.bg >= r.bg.frames {
                return Err(invalid(format!(
                    "entry {i} maps fg frame {} to bg frame {} of {}",
                    e.fg, e.bg, r.bg.frames
                )));
            }
        }
        Ok(r)
    }

    /// Checks the report against the streams at hand; the error names every mismatch.
    pub fn check_fits(&self, path: &Path, fg: Stream, bg: Stream) -> Result<(), ReportError> {
        let mut why = Vec::new();
        for (name, want, got) in [("fg", self.fg, fg), ("bg", self.bg, bg)] {
            if (want.width, want.height) != (got.width, got.height) {
                why.push(format!(
                    "{name} is {}x{} but the report is for {}x{}",
                    got.width, got.height, want.width, want.height
                ));
            }
            if want.frames != got.frames {
                why.push(format!(
                    "{name} has {} frames but the report is for {}",
                    got.frames, want.frames
                ));
            }
        }
        let outside = |f: Footprint| {
            u64::from(f.x) + u64::from(f.width) > u64::from(bg.width)
                || u64::from(f.y) + u64::from(f.height) > u64::from(bg.height)
                || f.width == 0
                || f.height == 0
        };
        for f in std::iter::once(self.footprint).chain(self.segments.iter().map(|s| s.footprint)) {
            if outside(f) {
                why.push(format!(
                    "footprint {}x{} at ({}, {}) is outside the bg",
                    f.width, f.height, f.x, f.y
                ));
            }
        }
        let froms: Vec<usize> = self.segments.iter().map(|s| s.from).collect();
        if !froms.is_empty()
            && (froms[0] != 0
                || froms.windows(2).any(|w| w[0] >= w[1])
                || froms.iter().any(|&f| f >= self.fg.frames))
        {
            why.push(format!(
                "segments start at fg frames {froms:?}: not ascending from 0 within {} frames",
                self.fg.frames
            ));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(ReportError::Invalid {
                path: path.to_path_buf(),
                why: why.join("; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            version: VERSION,
            fg: Stream {
                width: 160,
                height: 90,
                frames: 2,
            },
            bg: Stream {
                width: 320,
                height: 180,
                frames: 5,
            },
            x: 10.25,
            y: 20.0,
            scale: 1.0,
            footprint: Footprint {
                x: 10,
                y: 20,
                width: 160,
                height: 90,
            },
            spatial_confidence: Some(0.99),
            spatial_calibrated: Some(0.9),
            temporal_confidence: Some(0.9),
            mean_cost: Some(0.01),
            mapping: "content".into(),
            device: "cpu".into(),
            analysis_seconds: 1.5,
            timings: [("temporal".to_string(), 0.5)].into_iter().collect(),
            segments: Vec::new(),
            frames: vec![
                Entry {
                    fg: 0,
                    fg_pts: Some(0),
                    bg: 3,
                    bg_pts: Some(100),
                    cost: Some(0.01),
                },
                Entry {
                    fg: 1,
                    fg_pts: None,
                    bg: 4,
                    bg_pts: Some(140),
                    cost: None,
                },
            ],
        }
    }

    /// A path in a directory of its own per test (tests run in parallel), removed with the
    /// guard.
    struct Tmp(PathBuf);

    impl std::ops::Deref for Tmp {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    impl AsRef<Path> for Tmp {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            if let Some(d) = self.0.parent() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }

    fn tmp(name: &str) -> Tmp {
        let d =
            std::env::temp_dir().join(format!("vidkompy-mapping-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d.join(name))
    }

    #[test]
    fn round_trip() {
        let p = tmp("round.json");
        sample().write(&p).unwrap();
        assert_eq!(Report::read(&p).unwrap(), sample());
        // no temporary file left beside it
        let left: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn unwritable_unreadable_and_malformed() {
        // a path under a regular file cannot be written, even as root
        let file = tmp("plain");
        std::fs::write(&file, "x").unwrap();
        let e = sample().write(&file.join("r.json")).unwrap_err();
        assert!(e.to_string().contains("cannot write"), "{e}");
        let e = Report::read(&tmp("missing.json")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        let bad = tmp("bad.json");
        std::fs::write(&bad, "{\"version\": 1, ").unwrap();
        let e = Report::read(&bad).unwrap_err();
        assert!(
            e.to_string().contains("not a valid alignment report"),
            "{e}"
        );
        let mut r = sample();
        r.frames[1].bg = 9;
        let p = tmp("range.json");
        r.write(&p).unwrap();
        let e = Report::read(&p).unwrap_err();
        assert!(
            e.to_string()
                .contains("entry 1 maps fg frame 1 to bg frame 9"),
            "{e}"
        );
    }

    #[test]
    fn mismatched_streams_are_named() {
        let r = sample();
        let p = Path::new("a.json");
        let fg = Stream {
            width: 160,
            height: 90,
            frames: 3,
        };
        let bg = Stream {
            width: 640,
            height: 360,
            frames: 5,
        };
        let e = r.check_fits(p, fg, bg).unwrap_err().to_string();
        assert!(e.contains("fg has 3 frames but the report is for 2"), "{e}");
        assert!(
            e.contains("bg is 640x360 but the report is for 320x180"),
            "{e}"
        );
        assert!(r.check_fits(p, r.fg, r.bg).is_ok());
    }

    #[test]
    fn segments_round_trip_and_are_checked() {
        let mut r = sample();
        let seg = |from, x| Segment {
            from,
            x: f64::from(x),
            y: 20.0,
            scale: 1.0,
            footprint: Footprint {
                x,
                y: 20,
                width: 160,
                height: 90,
            },
            spatial_confidence: Some(0.9),
            mean_cost: None,
        };
        r.segments = vec![seg(0, 10), seg(1, 150)];
        let p = tmp("segments.json");
        r.write(&p).unwrap();
        assert_eq!(Report::read(&p).unwrap(), r);
        assert!(r.check_fits(&p, r.fg, r.bg).is_ok());
        // A report without segments has no such field.
        let plain = tmp("plain.json");
        sample().write(&plain).unwrap();
        assert!(
            !std::fs::read_to_string(&plain)
                .unwrap()
                .contains("segments")
        );
        r.segments[1] = seg(1, 161);
        let e = r.check_fits(&p, r.fg, r.bg).unwrap_err().to_string();
        assert!(
            e.contains("footprint 160x90 at (161, 20) is outside the bg"),
            "{e}"
        );
        r.segments = vec![seg(0, 10), seg(0, 20)];
        let e = r.check_fits(&p, r.fg, r.bg).unwrap_err().to_string();
        assert!(e.contains("segments start at fg frames [0, 0]"), "{e}");
    }
}
