//! Road scenes drawn on this machine, so that the demo and the tests need no camera and nothing
//! from outside the project: Kazakhstan plates, vehicles seen from behind, and the demo clip.
//!
//! # Contract
//!
//! - Drawing is deterministic: the same plate text, manifest and frame index give the same
//!   pixels wherever the same font is installed (DejaVu Sans Bold, Debian's fonts-dejavu-core,
//!   installed by `deploy/setup.sh`). A missing font is an error that names the package.
//! - A clip is encoded by a real GStreamer pipeline (`appsrc ! videoconvert ! x264enc !
//!   mp4mux`) into `<clip>.mp4.part`, renamed to `<clip>` once the encoder has finished, and then
//!   described by its manifest beside it (`<clip>.json`). Nothing is synced to disk: after a
//!   crash, a clip without a readable manifest, or whose manifest differs from today's drawing
//!   ([`clip::CLIP_VERSION`]), is drawn again by [`clip::ensure_clip`].
//!
//! # Modules
//!
//! `font` (the font and how it is found), `plate` (plates: [`one_row_plate`], [`two_row_plate`]
//! and the plate drawn on a vehicle), `vehicle` (a pickup truck seen from behind), `encode`
//! (frames into an H.264 MP4 file) and [`clip`] (the demo clip: its vehicles, its frames, the
//! file and its manifest).

pub mod clip;
mod encode;
mod font;
mod plate;
pub mod road;
mod vehicle;

pub use plate::{one_row_plate, two_row_plate};
