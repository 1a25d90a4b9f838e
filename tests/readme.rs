// SPDX-License-Identifier: MIT

//! Every `gst-launch-1.0` line in a `sh` block of the README and of `docs/`, run as written
//! (the real `gst-launch-1.0`, the plugin file this build made), in order, in a directory
//! holding a short pair from real footage named `bg.mp4` and `fg.mp4`: the docs cannot rot.
//! (Lines in `text` blocks, such as live RTP feeds, are shown, not run.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `gst-launch-1.0` command lines of a Markdown text's `sh` blocks, in order (continued
/// lines joined).
fn launch_lines(readme: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current: Option<String> = None;
    let mut in_sh = false;
    for line in readme.lines() {
        let t = line.trim();
        if let Some(lang) = t.strip_prefix("```") {
            in_sh = !in_sh && lang == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        match current.take() {
            Some(mut c) => {
                c.push(' ');
                c.push_str(t.trim_end_matches('\\').trim());
                if t.ends_with('\\') {
                    current = Some(c);
                } else {
                    lines.push(c);
                }
            }
            None if t.starts_with("gst-launch-1.0 ") => {
                let c = t.trim_end_matches('\\').trim().to_string();
                if t.ends_with('\\') {
                    current = Some(c);
                } else {
                    lines.push(c);
                }
            }
            None => (),
        }
    }
    lines
}

/// Where `cargo test` put this build's `libgstvidkompy.so`: beside the test binary.
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_path_buf()
}

/// Files the line writes (`location=` of a `filesink`, `report=`, `plot=`).
fn outputs(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if let Some(v) = w
            .strip_prefix("report=")
            .or_else(|| w.strip_prefix("plot="))
        {
            out.push(v.to_string());
        }
        if let Some(v) = w.strip_prefix("location=")
            && i > 0
            && words[i - 1] == "filesink"
        {
            out.push(v.to_string());
        }
    }
    out
}

/// The launch lines of the README and of `docs/*.md` (in name order).
fn documented_lines() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .iter()
        .flat_map(|f| launch_lines(&std::fs::read_to_string(f).unwrap()))
        // A build without the `gpu` feature refuses device=gpu, as documented.
        .filter(|l| cfg!(feature = "gpu") || !l.contains("device=gpu"))
        .collect()
}

#[test]
fn the_documented_launch_lines_run() {
    let lines = documented_lines();
    assert!(lines.len() >= 6, "launch lines found: {lines:#?}");
    gst::init().unwrap();
    let (dir, bg, fg) = common::small_pair("readme", 48, (12, 36));
    std::fs::rename(&bg, dir.join("bg.mp4")).unwrap();
    std::fs::rename(&fg, dir.join("fg.mp4")).unwrap();
    let registry = dir.join("registry.bin");
    for line in &lines {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let out = Command::new("timeout")
            .arg("300")
            .arg("gst-launch-1.0")
            .args(&args)
            .current_dir(&dir)
            .env("GST_PLUGIN_PATH", plugin_dir())
            .env("GST_REGISTRY", &registry)
            .output()
            .unwrap();
        let log = format!(
            "{line}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "failed: {log}");
        assert!(!log.contains("ERROR"), "{log}");
        for f in outputs(line) {
            let size = std::fs::metadata(dir.join(&f))
                .map(|m| m.len())
                .unwrap_or(0);
            assert!(size > 0, "{f} not written by: {line}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn continued_lines_are_joined() {
    let text = "x\n```sh\ngst-launch-1.0 a ! \\\n    b ! c\ngst-launch-1.0 d\n```\n\
                ```text\ngst-launch-1.0 live\n```\n";
    assert_eq!(
        launch_lines(text),
        vec!["gst-launch-1.0 a ! b ! c", "gst-launch-1.0 d"]
    );
    assert_eq!(
        outputs("gst-launch-1.0 e report=r.json plot=p.svg ! filesink location=o.mp4"),
        vec!["r.json", "p.svg", "o.mp4"]
    );
}
