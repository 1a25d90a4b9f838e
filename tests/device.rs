// SPDX-License-Identifier: MIT

//! The `device` property: the GPU path (wgpu on Vulkan; Mesa's lavapipe in CI: the analysis's
//! cost dot products and the compositing) gives exactly the CPU path's alignment and output,
//! the choice is reported, and `device=gpu` without any adapter fails at start with a message
//! instead of a panic (in a build without the `gpu` feature too, saying so).

mod common;

#[cfg(feature = "gpu")]
use gstvidkompy::messages::Alignment;

fn init() {
    common::init_plugin();
}

#[cfg(feature = "gpu")]
/// A ground-truth pair of H.264 files from real footage: fg frame i shows bg frame 12 + i.
fn pair(tag: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    common::small_pair(&format!("device-{tag}"), 40, (12, 28))
}

#[cfg(feature = "gpu")]
fn run(bg: &std::path::Path, fg: &std::path::Path, props: &str) -> Result<common::Run, String> {
    common::run_collect(
        &format!(
            "vidkompyalign name=a blend-width=6 {props} ! appsink name=s sync=false \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.bg \
             filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! a.fg",
            common::q(bg),
            common::q(fg)
        ),
        300,
    )
}

#[cfg(feature = "gpu")]
#[test]
fn the_gpu_composites_the_same_frames_as_the_cpu() {
    init();
    // Every machine the tests run on has one: `.ci/install-deps` installs Mesa's lavapipe.
    if let Err(e) = gstvidkompy::compute::gpu::adapter() {
        panic!("no GPU adapter ({e}): run `bash .ci/install-deps` (mesa-vulkan-drivers)");
    }
    let (dir, bg, fg) = pair("same");
    let cpu = run(&bg, &fg, "device=cpu").unwrap();
    let gpu = run(&bg, &fg, "device=gpu").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b) = (
        cpu.last::<Alignment>().unwrap(),
        gpu.last::<Alignment>().unwrap(),
    );
    // The GPU did the work: no fallback to the CPU was reported.
    let warnings: Vec<_> = gpu
        .messages
        .iter()
        .filter(|s| s.name() == "warning")
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(a.device.as_str(), "cpu");
    let name = b.device.as_str();
    assert!(name.starts_with("gpu: "), "{name}");
    assert_eq!(
        (a.x, a.y, a.scale, a.temporal_confidence),
        (b.x, b.y, b.scale, b.temporal_confidence)
    );
    assert_eq!(cpu.frames.len(), 28);
    assert_eq!(cpu.frames.len(), gpu.frames.len());
    for (i, (x, y)) in cpu.frames.iter().zip(&gpu.frames).enumerate() {
        assert_eq!(x.pts(), y.pts(), "frame {i}");
        let (mx, my) = (x.map_readable().unwrap(), y.map_readable().unwrap());
        assert!(mx.as_slice() == my.as_slice(), "frame {i} differs");
    }
}

#[test]
fn device_gpu_without_any_adapter_fails_at_start_with_a_message() {
    init();
    let dir = std::env::temp_dir().join(format!("vidkompy-device-none-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let plugins = common::plugin_copy(&dir);
    let launch = |device: &str| {
        // No Vulkan driver manifests: the loader finds no adapter at all.
        std::process::Command::new("gst-launch-1.0")
            .args([
                "-q",
                "vidkompyalign",
                "name=a",
                &format!("device={device}"),
                "!",
                "fakesink",
                "videotestsrc",
                "num-buffers=3",
                "!",
                "video/x-raw,format=I420,width=64,height=48",
                "!",
                "a.bg",
                "videotestsrc",
                "num-buffers=3",
                "pattern=ball",
                "!",
                "video/x-raw,format=I420,width=32,height=24",
                "!",
                "a.fg",
            ])
            .env("GST_PLUGIN_PATH", &plugins)
            .env("GST_REGISTRY", dir.join("registry.bin"))
            .env("VK_ICD_FILENAMES", dir.join("none.json"))
            .env("VK_DRIVER_FILES", dir.join("none.json"))
            .output()
            .unwrap()
    };
    let gpu = launch("gpu");
    let auto = launch("auto");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&gpu.stdout),
        String::from_utf8_lossy(&gpu.stderr)
    );
    // An exit code (gst-launch's "failed to set to PAUSED"), not a signal.
    assert!(matches!(gpu.status.code(), Some(c) if c != 0), "{text}");
    assert!(text.contains("device=gpu, but there is no GPU"), "{text}");
    #[cfg(feature = "gpu")]
    assert!(text.contains("no Vulkan adapter"), "{text}");
    #[cfg(not(feature = "gpu"))]
    assert!(text.contains("without the `gpu` feature"), "{text}");
    // auto falls back to the CPU.
    assert!(
        auto.status.success(),
        "{}",
        String::from_utf8_lossy(&auto.stderr)
    );
}
