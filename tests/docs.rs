// SPDX-License-Identifier: MIT

//! The element reference (`docs/reference.md`) against the element itself: every property the
//! element defines and every message field it posts is documented there, and property blurbs
//! are one short line.

mod common;

use gst::glib;
use gst::prelude::*;
use gstvidkompy::messages::{
    Alignment, BgLagging, ElementMessage, Footprint, FootprintFrom, Frames, MappedBy, Progress,
    Reanchored, Reframed, Segment,
};

fn reference() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md"),
    )
    .unwrap()
}

/// The properties `vidkompyalign` defines itself (not its base classes').
fn own_properties() -> Vec<glib::ParamSpec> {
    common::init_plugin();
    let e = gst::ElementFactory::make("vidkompyalign").build().unwrap();
    let ty = e.type_();
    e.list_properties()
        .iter()
        .filter(|p| p.owner_type() == ty)
        .cloned()
        .collect()
}

#[test]
fn every_property_is_documented_with_a_short_blurb() {
    let doc = reference();
    let props = own_properties();
    assert!(props.len() >= 16, "{} properties", props.len());
    for p in &props {
        assert!(
            doc.contains(&format!("`{}`", p.name())),
            "property {} is not in docs/reference.md",
            p.name()
        );
        let blurb = p.blurb().unwrap_or("");
        assert!(
            !blurb.is_empty() && blurb.chars().count() <= 100,
            "{}: blurb of {} characters: {blurb}",
            p.name(),
            blurb.chars().count()
        );
    }
}

#[test]
fn every_message_and_field_is_documented() {
    gst::init().unwrap();
    let doc = reference();
    let footprint = Footprint::default();
    let segment = Segment {
        fg_frame: 0,
        x: 0.0,
        y: 0.0,
        scale: 1.0,
        footprint,
        spatial_confidence: 1.0,
        mean_cost: 0.0,
    };
    let alignment = Alignment {
        x: 0.0,
        y: 0.0,
        scale: 1.0,
        footprint,
        footprint_from: FootprintFrom::Content,
        spatial_confidence: 1.0,
        spatial_calibrated: 1.0,
        temporal_confidence: 1.0,
        mean_cost: 0.0,
        first_bg_frame: 0,
        last_bg_frame: 0,
        first_bg_time: Some(gst::ClockTime::ZERO),
        fg_frames: 1,
        rate: 1.0,
        mapping: MappedBy::Content,
        frames: Frames::Stored,
        stored_bytes: 0,
        spilled_bytes: 0,
        spilled_thumbnail_bytes: 0,
        spilled_feature_bytes: 0,
        device: "cpu".into(),
        analysis_time: gst::ClockTime::ZERO,
        lookahead: Some(gst::ClockTime::ZERO),
        segments: vec![segment],
    };
    let a = alignment.to_structure();
    let seg = a.get::<gst::Array>("segments").unwrap()[0]
        .get::<gst::Structure>()
        .unwrap();
    let mut structures = vec![a, seg];
    for p in [
        Progress::Reading {
            done: 0,
            bg_frames: 0,
            total: Some(1),
        },
        Progress::Analysis {
            elapsed: gst::ClockTime::ZERO,
        },
        Progress::Fetch {
            done: 0,
            total: 0,
            frames_fetched: 0,
            frames_wanted: 0,
        },
        Progress::Output { done: 0, total: 0 },
    ] {
        assert!(doc.contains(&format!("`{}`", p.stage())), "{}", p.stage());
        structures.push(p.to_structure());
    }
    structures.push(
        Reframed {
            x: 0.0,
            y: 0.0,
            scale: 1.0,
            previous_x: 0.0,
            previous_y: 0.0,
            previous_scale: 1.0,
            spatial_confidence: 1.0,
            fg_frame: 0,
            fg_running_time: Some(gst::ClockTime::ZERO),
            count: Some(1),
        }
        .to_structure(),
    );
    structures.push(
        BgLagging {
            lagging: true,
            fg_frame: 0,
            bg_frame: 0,
        }
        .to_structure(),
    );
    structures.push(
        Reanchored {
            reanchoring: true,
            fg_frame: 0,
            bg_frame: 0,
            count: 0,
        }
        .to_structure(),
    );
    for s in &structures {
        assert!(
            doc.contains(&format!("`{}`", s.name())),
            "message {} is not in docs/reference.md",
            s.name()
        );
        for f in s.fields() {
            assert!(
                doc.contains(&format!("`{f}`")),
                "field {f} of {} is not in docs/reference.md",
                s.name()
            );
        }
    }
    let values = MappedBy::ALL
        .iter()
        .map(|v| v.as_str())
        .chain(Frames::ALL.iter().map(|v| v.as_str()))
        .chain(FootprintFrom::ALL.iter().map(|v| v.as_str()));
    for v in values {
        assert!(
            doc.contains(&format!("`{v}`")),
            "value {v} is not documented"
        );
    }
}
