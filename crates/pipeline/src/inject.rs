//! Faults made on purpose, for the tests of supervision only (feature `fault-injection`, never
//! in a shipped build): `ANPR_INJECT_RECOGNITION_PANIC=<camera>@<frame>` makes that camera's
//! recognition worker panic once, at the first recognised frame at or after that index.

use std::sync::atomic::{AtomicBool, Ordering};

static DONE: AtomicBool = AtomicBool::new(false);

/// Panics once when the environment asks for it at this camera and frame.
pub(crate) fn maybe_panic(camera: &str, frame: u64) {
    let Ok(spec) = std::env::var("ANPR_INJECT_RECOGNITION_PANIC") else {
        return;
    };
    let Some((cam, at)) = spec.split_once('@') else {
        return;
    };
    if cam == camera
        && at.parse::<u64>().is_ok_and(|at| frame >= at)
        && !DONE.swap(true, Ordering::SeqCst)
    {
        panic!("injected recognition failure on camera {camera} at frame {frame}");
    }
}
