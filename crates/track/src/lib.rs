//! Sans-IO tracking: turns what recognition finds in each frame into one passage per vehicle.
//!
//! [`VehicleTracker`] (module [`vehicle`]) follows vehicles, with or without a readable plate,
//! and gives each passage its plate status, type, direction over the camera's counting line and
//! zones ([`geometry`]); see its module documentation for the contract. [`FrameGate`] decides
//! which frames are recognised at all. No clocks, threads or I/O: the caller passes frame
//! indices and capture times, so the same frames always give the same passages.

mod gate;
pub mod geometry;
mod text;
pub mod vehicle;

pub use gate::FrameGate;
pub use geometry::{CountingLine, Point, Polygon, PolygonError, Scene, Zone};
pub use text::edit_distance;
pub use vehicle::{
    Footprint, FrameAssignments, FrameObservation, Moment, PlateShot, TrackId, VehiclePassage,
    VehicleShot, VehicleTracker, VehicleTrackerConfig,
};
