//! Measuring the recognizer away from the device, for people who evaluate it and size the
//! hardware: the library side of `anpr detect`, `anpr eval` and `anpr bench`.
//!
//! # Contract
//!
//! - Every tool runs the same [`anpr_vision::Recognizer`] the device runs, on images or a video
//!   file, with no broker and no queue; nothing is written but what the caller asks for.
//! - An image that cannot be decoded, or a frame the recognizer cannot process, is counted
//!   (and, for [`detect`], reported by name) and the rest goes on.
//! - [`eval`] scores predictions the same way whoever made them: the recognizer's, or JSON
//!   lines in the `detect` format from another pipeline such as the Python baseline, so the two
//!   are compared on the same labels and the same rules.
//! - [`bench`](mod@bench) times the recognizer only: decoding and scaling happen ahead of it
//!   on their own thread and are not counted in the stage latencies.
//!
//! # Modules
//!
//! [`detect`] (images in, one JSON line each), [`eval`] (labelled images in, scores out),
//! [`vehicle_types`] (reported vehicle types against types labelled by eye),
//! [`bench`](mod@bench) (throughput, latency percentiles, CPU and memory), [`report`] (the
//! self-contained HTML pages of `eval --html` and `bench --html`).

pub mod bench;
pub mod detect;
pub mod eval;
mod labels;
pub mod report;
pub mod vehicle_types;
