// SPDX-License-Identifier: MIT

//! A panic inside the element becomes an element error (gstreamer-rs catches it at the FFI
//! boundary), the pipeline ends with that error instead of aborting or hanging, and it shuts
//! down cleanly. Debug builds only (the hook that panics is compiled into them alone); its own
//! test binary, because it sets an environment variable.

mod common;

#[cfg(debug_assertions)]
#[test]
fn a_panic_becomes_an_element_error() {
    gst::init().unwrap();
    gstvidkompy::plugin_register_static().unwrap();
    // SAFETY: the only test of this binary; no other thread reads the environment yet.
    unsafe { std::env::set_var("VIDKOMPY_TEST_PANIC", "panicky") };
    let e = common::launch(
        "vidkompyalign name=panicky ! fakesink \
         videotestsrc num-buffers=5 ! video/x-raw,width=64,height=48 ! panicky.bg \
         videotestsrc num-buffers=5 pattern=ball ! video/x-raw,width=32,height=24 ! panicky.fg",
        60,
    )
    .expect_err("an error, not EOS");
    assert!(e.contains("panicky"), "{e}");
    assert!(e.to_lowercase().contains("panic"), "{e}");
    // Another instance works as usual in the same process.
    common::launch(
        "vidkompyalign name=fine x=0 y=0 scale=1 ! fakesink \
         videotestsrc num-buffers=5 ! video/x-raw,width=64,height=48 ! fine.bg \
         videotestsrc num-buffers=5 pattern=ball ! video/x-raw,width=32,height=24 ! fine.fg",
        60,
    )
    .unwrap();
}
