//! The device runtime: cameras → recognition → vehicle tracking → rules → queue → uplink.
//!
//! # Contract
//!
//! - **Start.** Everything a run needs is checked before any camera starts: ONNX Runtime and
//!   the models (one recognizer per camera), GStreamer, the queue's directory and database, and
//!   the broker's address, the plate lists (a missing list file fails the start; malformed lines
//!   are skipped and raised as `plate-list` faults), the device's signing key and the central
//!   receiver's public key (`[security]`; a missing key, or a private key others can read,
//!   fails the start). A fault there fails [`run`] with a [`StartError`] naming the file or
//!   setting and the fix; nothing is recorded.
//! - **Signed.** Every event recorded (passages, violations, camera gaps) is signed with the
//!   device key and chained to the one before in the queue (`anpr_store`, `anpr_trust`).
//! - **Threads.** Each camera gets one thread that pulls frames from its GStreamer pipeline
//!   (`capture`) and one thread that owns that camera's ONNX Runtime sessions (`recognition`),
//!   joined by a bounded channel of four frames: a live camera whose frames arrive faster than
//!   they can be processed drops frames (counted in [`DeviceCounters::frames_dropped`]); a file
//!   waits. The uplink runs on tokio.
//! - **Tracking.** Each camera's frames go through its own `anpr_track::VehicleTracker`, set up
//!   from the camera's counting line, zones and `max_dwell_s`: one passage per vehicle, with or
//!   without a readable plate, its capture time the moment it crossed the line.
//! - **Recording.** A passage is checked against the rules (`anpr_rules`) with the plate lists
//!   in force, and ends in one passage event ([`event_from_passage`]) plus one violation event
//!   per rule broken ([`violation_event`], referring to the passage), each with its evidence
//!   images ([`evidence`]; a violation also its [`overlay`]), all appended to the SQLite queue
//!   by the recognition thread in one transaction that is synced to disk before the next frame
//!   is taken (see `anpr_store`). A crash after that loses nothing: the events are sent after
//!   the restart. Only the queue's disk quota drops recorded events (violations last), and it
//!   counts and journals each one.
//! - **Commands.** Plate-list updates from the central side, each list on its own retained
//!   topic `<prefix>/<inventory>/cmd/plate-list/<name>`, are checked whole, kept in `lists_dir` and put in force for the next passage without a
//!   restart; a refused one is a `plate-list-update` fault and the list in force stays.
//! - **Faults.** A camera or link failure never stops the others. A live camera (RTSP, V4L2)
//!   that fails, stalls or freezes is raised at once as a lasting `camera` fault, opened again
//!   with jittered backoff, forever, and the fault clears when frames return; the gap is
//!   journaled and queued as a `camera_gap` event. A file that fails is a `camera` fault listed
//!   in [`Summary::camera_errors`]. A frame that cannot be recognised is skipped with a warning. A
//!   recognition worker that fails (a queue error, a panic) is raised at once as a `recognition`
//!   fault and started again with fresh model sessions after a pause (1 s, doubling up to 30 s);
//!   the vehicles it had in view are lost, the camera's frames wait for it (a live camera drops
//!   them, counted), the other cameras go on. A full disk is the lasting `disk-full` fault:
//!   passages wait in memory (`held`) and are written when space returns.
//! - **Service.** Under systemd the device says `READY=1` after the start checks, a status line
//!   every 5 s and `STOPPING=1`, and feeds the watchdog only while no capture or recognition
//!   thread is stuck in one piece of work past its limit ([`watchdog`]).
//! - **End.** When every camera has ended (files at their end; a live camera ends only when
//!   the device stops), the
//!   uplink gets [`RunOptions::drain_timeout`] to deliver what is queued. On SIGTERM or Ctrl-C
//!   the cameras stop at their next frame, the recognition threads end every open track and
//!   record its passage (up to 20 s), and the uplink gets at most 5 s more. Whatever is still
//!   queued stays in the queue for the next run.
//!
//! # Modules
//!
//! `run` (the whole run and its counters), `capture` (the capture thread: reconnection,
//! freeze detection, capture clocks, gaps), `held` (passages waiting for disk space),
//! [`status`] (each camera's live figures), [`watchdog`] (systemd notify), `recognition` (the
//! recognition thread: gate, recognizer, tracker), `record` (rules, events and evidence of a
//! passage, in one transaction), `event` (a passage and its violations as events), `view` (a
//! camera's line, zones and tracker settings), `commands` (plate-list updates), `models` (the
//! recognizer a configuration asks for), [`evidence`] (JPEG evidence images), [`overlay`] (the
//! annotated image of a violation).

mod capture;
mod commands;
mod event;
pub mod evidence;
mod gnss;
mod held;
#[cfg(feature = "fault-injection")]
mod inject;
mod models;
pub mod overlay;
pub(crate) mod recognition;
mod record;
mod run;
pub mod status;
mod view;
pub mod watchdog;

pub use event::{event_from_passage, violation_event};
pub use gnss::{GnssSlot, GnssView};
pub use models::{load_recognizer, open_recognizer, recognizer_config, verify_models};
pub use recognition::plausible_plate;
pub use run::{DeviceCounters, RunOptions, StartError, Summary, run};
pub use view::{scene as camera_scene, tracker_config as tracker_settings};
