//! Faults made on purpose, for the tests of supervision only (feature `fault-injection`, never
//! in a shipped build):
//! - `ANPR_INJECT_RECOGNITION_PANIC=<camera>@<frame>` makes that camera's recognition worker
//!   panic once, at the first recognised frame at or after that index;
//! - `ANPR_INJECT_RECOGNITION_HANG=<camera>@<frame>` makes it hang there (for the watchdog);
//! - `ANPR_INJECT_QUEUE_FULL=<file>`: while that file exists, the recognition workers' queue
//!   connections are capped at their present size, so SQLite fails their writes as on a full
//!   disk (`SQLITE_FULL`); removing the file gives the space back.

use std::sync::atomic::{AtomicBool, Ordering};

use anpr_store::Store;

static DONE: AtomicBool = AtomicBool::new(false);

/// Whether `spec` (`<camera>@<frame>`) names this camera at or before this frame.
fn at(spec: &str, camera: &str, frame: u64) -> bool {
    spec.split_once('@')
        .is_some_and(|(cam, at)| cam == camera && at.parse::<u64>().is_ok_and(|at| frame >= at))
}

/// Panics once when the environment asks for it at this camera and frame.
// The panic is the injected fault, not an assertion about the program.
#[allow(clippy::manual_assert)]
pub(crate) fn maybe_panic(camera: &str, frame: u64) {
    let Ok(spec) = std::env::var("ANPR_INJECT_RECOGNITION_PANIC") else {
        return;
    };
    if at(&spec, camera, frame) && !DONE.swap(true, Ordering::SeqCst) {
        panic!("injected recognition failure on camera {camera} at frame {frame}");
    }
}

/// Hangs for good when the environment asks for it at this camera and frame.
pub(crate) fn maybe_hang(camera: &str, frame: u64) {
    let Ok(spec) = std::env::var("ANPR_INJECT_RECOGNITION_HANG") else {
        return;
    };
    if at(&spec, camera, frame) {
        tracing::warn!(camera, frame, "Injected hang.");
        loop {
            std::thread::park();
        }
    }
}

/// Caps or uncaps this connection to the queue as the environment's flag file says.
pub(crate) fn queue_full(store: &Store) {
    let Ok(flag) = std::env::var("ANPR_INJECT_QUEUE_FULL") else {
        return;
    };
    if let Err(e) = store.cap_at_present_size(std::path::Path::new(&flag).exists()) {
        tracing::warn!(error = %e, "Injected disk-full could not be set.");
    }
}
