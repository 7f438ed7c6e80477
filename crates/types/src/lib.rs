//! Shared vocabulary of the appliance: boxes, plate reads, vehicle classes and the
//! versioned event record that travels from the device to the central side.
//!
//! Contract: this crate does no I/O and pulls in no runtime (no GStreamer, ONNX Runtime or
//! tokio). The JSON form of [`Event`] is the wire schema `anpr.event/1`; a field is only ever
//! added (never renamed or retyped) within a schema version, so receivers may rely on it.
//! [`sample`] makes whole, made-up events for the fleet simulator and the tests; [`geometry`]
//! holds the one check of a zone's outline that the configuration and the tracker share.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod geometry;
pub mod html;
pub mod sample;
pub mod uri;
pub use uri::{CAMERA_SCHEMES, check_camera_uri, redact_text, redact_uri};

/// Wire schema name and version carried in every event.
pub const EVENT_SCHEMA: &str = "anpr.event/1";

/// An axis-aligned box in source-frame pixels, top-left origin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    #[must_use]
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Intersection over union of two boxes; 0 when either is empty.
    #[must_use]
    pub fn iou(&self, other: &BBox) -> f32 {
        let x1 = self.x.max(other.x);
        let y1 = self.y.max(other.y);
        let x2 = (self.x + self.w).min(other.x + other.w);
        let y2 = (self.y + self.h).min(other.y + other.h);
        let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Whether the centre of `inner` lies inside this box.
    #[must_use]
    pub fn contains_centre_of(&self, inner: &BBox) -> bool {
        let cx = inner.x + inner.w / 2.0;
        let cy = inner.y + inner.h / 2.0;
        cx >= self.x && cx <= self.x + self.w && cy >= self.y && cy <= self.y + self.h
    }

    /// `[x, y, w, h]` rounded to whole pixels, the form used on the wire.
    #[must_use]
    pub fn to_wire(&self) -> [i32; 4] {
        [
            self.x.round() as i32,
            self.y.round() as i32,
            self.w.round() as i32,
            self.h.round() as i32,
        ]
    }
}

/// Vehicle type as the transport inspection counts it.
///
/// The vehicle detector (YOLOv5s on COCO's classes, `models/vehicle_detector.md`) reports
/// `car`, `motorcycle`, `bus` and `truck`, and `unknown` when it is not sure enough; the type
/// classifier run on each vehicle it finds (an ImageNet classifier,
/// `models/vehicle_types.md`) also names `van`, `tractor-trailer` and `special`, and tells
/// pickups (`car`) from lorries. Without the classifier those three are never reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum VehicleClass {
    Motorcycle,
    Car,
    Van,
    Bus,
    Truck,
    TractorTrailer,
    Special,
    Unknown,
}

impl VehicleClass {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            VehicleClass::Motorcycle => "motorcycle",
            VehicleClass::Car => "car",
            VehicleClass::Van => "van",
            VehicleClass::Bus => "bus",
            VehicleClass::Truck => "truck",
            VehicleClass::TractorTrailer => "tractor-trailer",
            VehicleClass::Special => "special",
            VehicleClass::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for VehicleClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A detected vehicle in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleDetection {
    pub class: VehicleClass,
    pub confidence: f32,
    #[serde(rename = "box")]
    pub bbox: BBox,
}

/// A plate a vehicle's track has already read the same way in several frames, where the
/// tracker expects it in the frame it is passed with: the recognizer confirms such a plate
/// from one view before it reads it from every view (`anpr_vision::Recognizer::process_known`).
#[derive(Debug, Clone, PartialEq)]
pub struct KnownPlate {
    /// Where the plate is expected, in the frame's pixels.
    pub bbox: BBox,
    /// The text the track has read, as reported (`PlateRead::text`).
    pub text: String,
}

/// A plate found and read in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateRead {
    /// Upper-case text, separators removed; empty when nothing could be read.
    pub text: String,
    /// Mean per-character confidence of the reading, 0–1.
    pub confidence: f32,
    /// Per-character confidences, same length as `text` in characters.
    pub char_confidences: Vec<f32>,
    /// Confidence of the plate detector for this box, 0–1.
    pub detection_confidence: f32,
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// Text as the reader produced it, before any grammar correction.
    pub raw_text: String,
    /// Country whose plate format the text fits (`KZ`, `RU`, `KG`, `UZ`), if exactly one does.
    pub country: Option<String>,
    /// Plate type within that country's formats, e.g. `private-2012`.
    pub plate_type: Option<String>,
    /// Region the plate names, when its format has one.
    pub region: Option<String>,
    /// Confidence of country and type, 0–1 (0: no format fits).
    pub format_confidence: f32,
    /// The reading is not sure: in `kz` mode, no plate format fits well (the text is the
    /// reader's unconstrained reading) or a character of it is below even odds even counted
    /// with its look-alikes (a character the formats needed where the reader saw none of its
    /// shape, such as the flag band taken for a letter); in generic mode, a character the
    /// reader gave less than even odds.
    #[serde(default, skip_serializing_if = "is_false")]
    pub low_confidence: bool,
}

/// What was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Passage,
    Violation,
    /// A live camera delivered no frames for a while (see [`Event::gap`]). Its vehicle and
    /// plate are empty; it is no passage and counts as none.
    CameraGap,
    /// A line of the custody journal of a mobile unit (rule 27, annex 3): the device issued
    /// to an employee, returned, or its undelivered data copied out (see [`Event::custody`]).
    /// No camera, vehicle or plate; it is no passage and counts as none.
    Custody,
}

impl EventKind {
    /// The name on the wire: `passage`, `violation`, `camera_gap`, `custody`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Passage => "passage",
            EventKind::Violation => "violation",
            EventKind::CameraGap => "camera_gap",
            EventKind::Custody => "custody",
        }
    }
}

/// A stretch of time in which a live camera delivered no frames (the stream failed or stalled
/// and was opened again), carried by a `camera_gap` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CameraGap {
    /// Capture time of the last frame before the gap.
    pub from: DateTime<Utc>,
    /// Capture time of the first frame after it (or when the device stopped during it).
    pub to: DateTime<Utc>,
    /// Frames the camera would have delivered in between, estimated from its frame rate.
    pub frames_lost: u64,
    /// What ended the stream (the first error seen).
    pub reason: String,
}

/// Where the device's clock takes its time from, carried with every capture time.
///
/// The three GNSS fields are present only on a unit with a GNSS receiver set to serve as its
/// clock (`[gnss] use_for_clock`) once GNSS time has been compared with the host clock; other
/// events serialise without them, exactly as before they existed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClockInfo {
    /// `system` (the host clock, source unknown), `pipeline`, `camera-ntp`, or `gnss` (the
    /// host clock, compared with GNSS time within the unit's limit).
    pub source: String,
    /// Whether the source reported itself synchronised when the frame was captured.
    pub synced: bool,
    /// Milliseconds between the last comparison of GNSS time with the host clock and the
    /// event's making.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_age_ms: Option<u64>,
    /// GNSS time minus host clock time at that comparison, in milliseconds (with `reference`
    /// `fix` this includes the receiver's output delay, up to a few hundred milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<f64>,
    /// What GNSS time was compared against: `pps` (a pulse-per-second edge), `toff` (a
    /// sentence's arrival) or `fix` (a fix's arrival).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Identity of the device that produced a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeviceInfo {
    /// Inventory number of the device (rule 26): part of every record.
    pub inventory: String,
    /// `stationary` or `mobile`.
    pub profile: String,
    /// Site identifier for stationary units; empty for mobile ones.
    pub site: String,
}

/// A geographic position in WGS84 degrees.
///
/// A stationary unit's events carry its configured site: `lat` and `lon` only. A mobile
/// unit's carry its position at the capture time from its GNSS receiver, with the other
/// fields; exactly one of three cases holds: `interpolated` (between two fixes at most the
/// unit's `max_gap_s` apart; `at` is the capture time), `gap` (the fixes around the capture
/// time are further apart: the last fix before it, unchanged) or `stale` (no fix at or after
/// the capture time: the last fix, with `fix` `none` when the receiver has since lost it), or
/// none of them for a fix exactly at the capture time. The GNSS fields are absent when unset,
/// so a stationary unit's events serialise exactly as before they existed.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    /// Ground speed in km/h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_kmh: Option<f64>,
    /// Course over ground, degrees clockwise from true north, 0..360.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f64>,
    /// `3d`, `2d`, or `none` when the receiver reported losing its fix after the one given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<GnssFix>,
    /// Satellites used in the solution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellites: Option<u32>,
    /// Horizontal dilution of precision (above 5 is poor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdop: Option<f64>,
    /// GNSS time the position is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Milliseconds between the capture time and the nearest fix the position was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub interpolated: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub gap: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stale: bool,
}

impl Position {
    /// A fixed site's position: `lat` and `lon` only.
    #[must_use]
    pub fn fixed(lat: f64, lon: f64) -> Self {
        Self {
            lat,
            lon,
            ..Self::default()
        }
    }
}

/// Reads an `f32` that a JSON number can hold: a number beyond `f32`'s range would become
/// infinite, serialise as `null` and no longer parse, so a record carrying one is refused where
/// it is read rather than stored in a form that cannot be read back.
fn finite_f32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    let wide = f64::deserialize(deserializer)?;
    #[allow(clippy::cast_possible_truncation)]
    let narrow = wide as f32;
    if narrow.is_finite() {
        Ok(narrow)
    } else {
        Err(serde::de::Error::custom(format!(
            "{wide} is outside the range of a 32-bit confidence"
        )))
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// A GNSS receiver's fix dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum GnssFix {
    /// No fix: the receiver sees too few satellites.
    #[serde(rename = "none")]
    None,
    /// A horizontal position only.
    #[serde(rename = "2d")]
    TwoD,
    /// A horizontal position and altitude.
    #[serde(rename = "3d")]
    ThreeD,
}

/// Vehicle part of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventVehicle {
    pub class: VehicleClass,
    #[serde(deserialize_with = "finite_f32")]
    pub confidence: f32,
    #[serde(rename = "box")]
    pub bbox: Option<[i32; 4]>,
    /// Direction of travel over the camera's counting line (`towards`, `away`, or the names
    /// the camera's configuration gives them); absent when the vehicle did not cross it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The lane (configured zone) the vehicle was in when it crossed the line, or when its
    /// best shot was taken; absent when no lane contains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
}

/// Whether the plate of a passage could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlateStatus {
    /// The text is the consensus of the reads over the vehicle's track.
    #[default]
    Read,
    /// Plate boxes were found on the vehicle but none could be read (dirty, hidden, far away);
    /// or none were found on a vehicle never seen close enough to tell.
    Unreadable,
    /// The vehicle was seen close enough to read a plate, and no plate was ever found on it.
    Absent,
}

impl PlateStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PlateStatus::Read => "read",
            PlateStatus::Unreadable => "unreadable",
            PlateStatus::Absent => "absent",
        }
    }
}

/// Plate part of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventPlate {
    pub text: String,
    #[serde(deserialize_with = "finite_f32")]
    pub confidence: f32,
    #[serde(deserialize_with = "finite_f32")]
    pub detection_confidence: f32,
    #[serde(rename = "box")]
    pub bbox: [i32; 4],
    /// `KZ`, `RU`, `KG`, `UZ`, or null when the text fits no known format (or several).
    #[serde(default)]
    pub country: Option<String>,
    /// Plate type within the country's formats, e.g. `private-2012`.
    #[serde(default, rename = "type")]
    pub plate_type: Option<String>,
    /// Region the plate names, e.g. `01 Astana`.
    #[serde(default)]
    pub region: Option<String>,
    /// `read`, `unreadable` or `absent`; the text is empty unless `read`.
    #[serde(default)]
    pub status: PlateStatus,
    /// True when the read is not sure, to be checked by a person before it is relied on:
    /// under a regional plate grammar (`kz`), no plate format of it fits well (the text is the
    /// reader's unconstrained reading) or one of its characters is below even odds even
    /// counted with its look-alikes (`O`/`0`, `I`/`1`, ...: a character the formats needed
    /// where the reader saw none of that shape); in generic mode, a character the reader gave
    /// less than even odds. Absent otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub low_confidence: bool,
}

impl EventPlate {
    /// The plate of a record about no vehicle (a camera gap, a custody line): no text, no box,
    /// status `absent`.
    #[must_use]
    pub fn absent() -> Self {
        Self {
            text: String::new(),
            confidence: 0.0,
            detection_confidence: 0.0,
            bbox: [0; 4],
            country: None,
            plate_type: None,
            region: None,
            status: PlateStatus::Absent,
            low_confidence: false,
        }
    }
}

impl EventVehicle {
    /// The vehicle of a record about no vehicle (a camera gap, a custody line): class
    /// `unknown`, no box, no direction, no lane.
    #[must_use]
    pub fn none() -> Self {
        Self {
            class: VehicleClass::Unknown,
            confidence: 0.0,
            bbox: None,
            direction: None,
            lane: None,
        }
    }
}

/// One record the device accepted: the unit of storage, delivery and acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    /// Always `anpr.event/1` ([`EVENT_SCHEMA`]).
    #[cfg_attr(feature = "schema", schemars(extend("const" = EVENT_SCHEMA)))]
    pub schema: String,
    /// Globally unique id (UUIDv7); the central side deduplicates on it.
    pub event_id: Uuid,
    /// Per-device sequence number, gap-free and increasing in acceptance order.
    pub seq: u64,
    pub device: DeviceInfo,
    pub camera: String,
    pub kind: EventKind,
    /// Capture instant of the frame the event was read from, UTC; never rewritten.
    pub captured_at: DateTime<Utc>,
    pub clock: ClockInfo,
    pub position: Option<Position>,
    pub vehicle: EventVehicle,
    pub plate: EventPlate,
    /// Frame the read came from: index within the stream and its size.
    pub frame: FrameRef,
    /// Evidence images of this event. They travel separately, after the event, on
    /// `<prefix>/<inventory>/evidence/<event_id>/<kind>`; the receiver checks each against
    /// its sha256 here. Empty in events recorded without evidence.
    #[serde(default)]
    pub evidence: Vec<EvidenceRef>,
    /// The vehicle's track: when it was first and last seen, and whether it stayed in view
    /// longer than the camera's `max_dwell`. Absent in events recorded before tracking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackInfo>,
    /// For `kind = "violation"`: which rule, why, and the passage it was found in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<ViolationInfo>,
    /// For `kind = "camera_gap"`: when the camera's frames stopped and came back, and how many
    /// were lost. Absent in every other event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<CameraGap>,
    /// For `kind = "custody"`: the custody journal's line (issue, return or export). Absent in
    /// every other event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody: Option<CustodyRecord>,
    /// Lower-case hex sha256 of the canonical form of this device's previous event (by
    /// sequence number); 64 zeros for its first. Chains the device's events, so an edit or a
    /// deletion shows (see `anpr_trust`). Absent in events recorded before signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// The device key's ed25519 signature over the canonical form (this event as JSON without
    /// `signature`), lower-case hex. Absent in events recorded before signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What a custody record says happened to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CustodyAction {
    /// Issued to an employee (annex 3, column 4).
    Issue,
    /// Returned by the employee it was issued to (column 5).
    Return,
    /// Data that could not go out live copied out as a bundle (column 6).
    Export,
}

impl CustodyAction {
    /// The name on the wire: `issue`, `return`, `export`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CustodyAction::Issue => "issue",
            CustodyAction::Return => "return",
            CustodyAction::Export => "export",
        }
    }
}

/// A line of a mobile unit's custody journal (rule 27, annex 3), carried by a `custody` event
/// and journaled on the device in the same transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CustodyRecord {
    pub action: CustodyAction,
    /// When it happened: the issue's or return's date-time as the duty officer entered it, or
    /// the copy time of an export.
    pub at: DateTime<Utc>,
    /// The employee's full name: the one the device is issued to (for a return or an export,
    /// the holder of the open issue; absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee: Option<String>,
    /// The employee's service number, with the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// For an export: what the copy holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportRecord>,
}

/// What an export (a bundle of data that could not go out live) holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExportRecord {
    /// The bundle's id (its manifest's `bundle_id`).
    pub bundle_id: Uuid,
    /// Where the bundle was written, as given to `anpr export --to`.
    pub path: String,
    /// Lower-case hex sha256 of the bundle's signed manifest.
    pub manifest_sha256: String,
    /// Events in the bundle, and evidence images.
    pub events: u64,
    pub images: u64,
    /// Lowest and highest sequence number in it (0 when empty).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Capture times of the first and last recording in it (passages, violations, camera
    /// gaps; custody records are no recordings); absent when it holds none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recordings_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recordings_to: Option<DateTime<Utc>>,
    /// Their span, whole seconds.
    pub duration_s: u64,
    /// The same span as annex 3 writes it, hours.minutes rounded to the nearest minute:
    /// `2.05` is 2 h 5 min.
    pub duration_hmin: String,
}

/// The track a passage was decided from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TrackInfo {
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Frames in which the vehicle was matched.
    pub frames: u32,
    /// Frame in which the vehicle crossed the counting line (the passage's capture frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossing_frame: Option<u64>,
    /// The vehicle stayed longer than `max_dwell`: recorded once, not again while it stays.
    #[serde(default)]
    pub dwell: bool,
}

/// What a violation event says beyond its passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ViolationInfo {
    /// Name of the configured rule that raised it.
    pub rule: String,
    /// Kind of rule: `plate-list`, `vehicle-type-ban`, `plate-missing`, `wrong-direction`.
    pub kind: String,
    /// Human-readable reason, e.g. `wanted: stolen vehicle`.
    pub reason: String,
    /// 1 (highest) to 9.
    pub priority: u8,
    /// Event id of the passage this violation was found in.
    pub passage: Uuid,
    /// Sequence number of that passage.
    pub passage_seq: u64,
    /// For plate-list rules: the list entry matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListMatch>,
}

/// A plate-list entry a passage matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ListMatch {
    /// Name of the list, e.g. `wanted`.
    pub name: String,
    /// Version of the list in force when the passage was checked.
    pub version: u64,
    /// The plate as listed.
    pub entry: String,
    /// True when the read differs from the listed plate by one look-alike character (O/0,
    /// B/8, I/1, ...), or when the read itself is low-confidence (the event's
    /// `plate.low_confidence`): a weaker match, to be confirmed by a person.
    pub fuzzy: bool,
}

/// A reference from an event to one of its evidence images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EvidenceRef {
    /// `overview` (the whole frame) or `plate` (the plate with a margin).
    pub kind: String,
    /// Lower-case hex sha256 of the image bytes.
    pub sha256: String,
    /// Size of the image in bytes.
    pub size: u64,
    /// MIME type, `image/jpeg`.
    pub content_type: String,
}

/// Counters of what the device had to drop to stay within its disk quota. Violations go
/// last; every drop is counted here, journaled, and raised as a fault on the health channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Drops {
    /// Passage events (metadata and images) dropped before delivery.
    pub passages: u64,
    /// Violation events dropped before delivery.
    pub violations: u64,
    /// Evidence images of passages dropped before delivery (the event itself kept).
    pub passage_evidence: u64,
    /// Evidence images of violations dropped before delivery (the event itself kept).
    pub violation_evidence: u64,
}

impl Drops {
    /// Whether anything undelivered was ever dropped.
    #[must_use]
    pub fn any(&self) -> bool {
        self.passages + self.violations + self.passage_evidence + self.violation_evidence > 0
    }
}

/// A fault the device reports on its health channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Fault {
    /// Stable code: `queue-quota`, `clock-jump`, `camera`, ...
    pub code: String,
    pub message: String,
    /// What the fault is about when a code can concern several things (the camera's id for a
    /// `camera` fault); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Since when a lasting fault (a camera down) has been present; absent for a fault that
    /// happened once (a drop, a clock jump) and stays listed for a while after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

impl Fault {
    /// A fault that happened once, about nothing in particular.
    #[must_use]
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            subject: None,
            since: None,
        }
    }
}

/// Queue part of a health message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct QueueHealth {
    /// Events not yet acknowledged by the central receiver.
    pub pending_events: u64,
    /// Evidence images not yet acknowledged.
    pub pending_evidence: u64,
    /// Bytes of the queue database in use.
    pub bytes_used: u64,
    /// The disk quota in bytes, if one is set.
    pub quota_bytes: Option<u64>,
}

/// Wire schema of the health message.
pub const HEALTH_SCHEMA: &str = "anpr.health/1";

/// The device's health, published retained on `<prefix>/<inventory>/health` when it changes
/// and at a fixed period; the broker publishes `{"status":"offline"}` as its last will.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Health {
    /// Always `anpr.health/1` ([`HEALTH_SCHEMA`]).
    #[cfg_attr(feature = "schema", schemars(extend("const" = HEALTH_SCHEMA)))]
    pub schema: String,
    /// `online` or `offline`.
    pub status: String,
    pub inventory: String,
    /// When this message was made, by the device's clock.
    pub at: DateTime<Utc>,
    pub queue: QueueHealth,
    pub dropped: Drops,
    /// Wall-clock jumps detected since the queue was created.
    pub clock_jumps: u64,
    /// Faults present now (empty when all is well).
    pub faults: Vec<Fault>,
    /// The head of the device's journal chain: the central side can tell a journal that was
    /// cut short or rewritten (absent from devices that do not chain their journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_head: Option<ChainHead>,
    /// The model files and ONNX Runtime library in use, each with the sha256 checked at load
    /// (empty from a process that runs no recognition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelHash>,
}

/// The last link of a hash chain: its sequence number and hash (lower-case hex sha256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

/// A file the recognition depends on, as checked at load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ModelHash {
    /// What it is: `plate_detector`, `plate_reader`, `vehicle_detector`, `vehicle_types`,
    /// `onnxruntime`.
    pub name: String,
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
}

/// Which frame an event was read from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FrameRef {
    pub index: u64,
    pub width: u32,
    pub height: u32,
}

/// The message as published: the stored event plus what is only known at send time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Delivery {
    #[serde(flatten)]
    pub event: Event,
    /// When this copy left the device, UTC.
    pub sent_at: DateTime<Utc>,
    /// True when the event could not go out live and is replayed from the queue.
    pub delayed: bool,
}

/// Acknowledgement from the central receiver: the event is stored there. The device takes it
/// only with a valid `signature` by the receiver's key over exactly its row (see
/// `anpr_trust::ack`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Ack {
    pub event_id: Uuid,
    pub seq: u64,
    /// The sha256 of the evidence image stored, when this acknowledges an image rather
    /// than the event itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Inventory number of the device whose event is acknowledged.
    #[serde(default)]
    pub inventory: String,
    /// Lower-case hex sha256 of what the receiver stored: the event's canonical form, or the
    /// image's bytes for an image's ack (then equal to `evidence`).
    #[serde(default)]
    pub sha256: String,
    /// The receiver key's ed25519 signature, lower-case hex, over
    /// `anpr-ack/1\n<inventory>\n<seq>\n<event_id>\n<sha256>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// MQTT topic layout under the versioned prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    inventory: String,
}

impl Topics {
    #[must_use]
    pub fn new(prefix: &str, inventory: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_string(),
            inventory: inventory.to_string(),
        }
    }

    /// Inventory number of the device these topics belong to.
    #[must_use]
    pub fn inventory(&self) -> &str {
        &self.inventory
    }

    /// Events from this device.
    #[must_use]
    pub fn events(&self) -> String {
        format!("{}/{}/events", self.prefix, self.inventory)
    }

    /// Acknowledgements for this device.
    #[must_use]
    pub fn ack(&self) -> String {
        format!("{}/{}/ack", self.prefix, self.inventory)
    }

    /// The root of the command topics from the central side to this device. Commands are
    /// published below it, one retained topic per subject (so the broker keeps the latest of
    /// each): [`Topics::plate_list`]. Nothing is published on the root itself.
    #[must_use]
    pub fn cmd(&self) -> String {
        format!("{}/{}/cmd", self.prefix, self.inventory)
    }

    /// Filter matching every command topic of this device (what the device subscribes to).
    #[must_use]
    pub fn cmd_filter(&self) -> String {
        format!("{}/{}/cmd/#", self.prefix, self.inventory)
    }

    /// The retained command topic of plate list `name` on this device:
    /// `<prefix>/<inventory>/cmd/plate-list/<name>`.
    #[must_use]
    pub fn plate_list(&self, name: &str) -> String {
        format!(
            "{}/{}/cmd/{}/{name}",
            self.prefix,
            self.inventory,
            Self::PLATE_LIST
        )
    }

    /// The level of the plate-list command topics under `cmd/`.
    pub const PLATE_LIST: &'static str = "plate-list";

    /// The list name in `topic` when it is one of this device's plate-list command topics
    /// ([`Topics::plate_list`]) with a non-empty name of one level; `None` for any other
    /// topic.
    #[must_use]
    pub fn plate_list_name<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let name = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?
            .strip_prefix(self.inventory.as_str())?
            .strip_prefix("/cmd/")?
            .strip_prefix(Self::PLATE_LIST)?
            .strip_prefix('/')?;
        (!name.is_empty() && !name.contains('/')).then_some(name)
    }

    /// Health of this device (retained, with a last will).
    #[must_use]
    pub fn health(&self) -> String {
        format!("{}/{}/health", self.prefix, self.inventory)
    }

    /// Topic of one evidence image of an event.
    #[must_use]
    pub fn evidence(&self, event_id: Uuid, kind: &str) -> String {
        format!(
            "{}/{}/evidence/{event_id}/{kind}",
            self.prefix, self.inventory
        )
    }

    /// Filter matching the evidence images of every device under `prefix`.
    #[must_use]
    pub fn all_evidence(prefix: &str) -> String {
        format!("{}/+/evidence/+/+", prefix.trim_end_matches('/'))
    }

    /// Filter matching the health messages of every device under `prefix`.
    #[must_use]
    pub fn all_health(prefix: &str) -> String {
        format!("{}/+/health", prefix.trim_end_matches('/'))
    }

    /// Filter matching the events of every device under `prefix`.
    #[must_use]
    pub fn all_events(prefix: &str) -> String {
        format!("{}/+/events", prefix.trim_end_matches('/'))
    }

    /// Ack topic of the device `inventory` under `prefix`.
    #[must_use]
    pub fn ack_for(prefix: &str, inventory: &str) -> String {
        format!("{}/{}/ack", prefix.trim_end_matches('/'), inventory)
    }

    /// Longest topic prefix taken, in bytes: `anpr/v1` is 7; a deployment's own prefix has
    /// room for a few levels.
    pub const MAX_PREFIX_LEN: usize = 128;

    /// Why `prefix` cannot be a topic prefix, or `None` when it can. The device (at config
    /// load) and the receiver (at start) both check it: 1 to [`Self::MAX_PREFIX_LEN`] bytes;
    /// no empty level (a leading, trailing or doubled `/`); no `+` or `#` (filter wildcards:
    /// a topic holding them cannot be published to); not starting with `$` (the broker's own
    /// topics); no control character, space or NUL (MQTT forbids NUL; the others end up in
    /// logs and the broker's ACL file).
    #[must_use]
    pub fn prefix_problem(prefix: &str) -> Option<&'static str> {
        if prefix.is_empty() {
            return Some("is empty");
        }
        if prefix.len() > Self::MAX_PREFIX_LEN {
            return Some("is longer than 128 bytes");
        }
        if prefix.starts_with('$') {
            return Some("starts with `$`, which the broker keeps for its own topics ($SYS)");
        }
        if prefix.contains(['+', '#']) {
            return Some("holds `+` or `#`, which are wildcards in MQTT topic filters");
        }
        if prefix.split('/').any(str::is_empty) {
            return Some("has an empty level (a leading, trailing or doubled `/`)");
        }
        if prefix.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Some("holds a space or a control character");
        }
        None
    }
}

/// A decoded video frame in packed RGB, 8 bits per channel, rows without padding.
#[derive(Debug, Clone)]
pub struct RgbFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// Pixel at (x, y) as `[r, g, b]`; the caller keeps x and y in bounds.
    #[must_use]
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one_and_of_disjoint_is_zero() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let b = BBox {
            x: 20.0,
            y: 20.0,
            w: 5.0,
            h: 5.0,
        };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert!(a.iou(&b).abs() < 1e-6);
    }

    #[test]
    fn vehicle_class_serialises_in_kebab_case() {
        let s = serde_json::to_string(&VehicleClass::TractorTrailer).unwrap();
        assert_eq!(s, "\"tractor-trailer\"");
    }

    /// An event as software before `camera_gap` wrote it.
    const OLD_PASSAGE: &str = r#"{"schema":"anpr.event/1","event_id":"01a22a28-1c6d-76c4-9042-0daaead2d583",
        "seq":5,"device":{"inventory":"INV","profile":"stationary","site":"s"},"camera":"cam",
        "kind":"passage","captured_at":"2026-11-30T01:52:55.616417376Z",
        "clock":{"source":"system","synced":false},"position":null,
        "vehicle":{"class":"truck","confidence":0.9,"box":[1,2,3,4]},
        "plate":{"text":"777KZA02","confidence":0.9,"detection_confidence":0.5,"box":[1,2,3,4]},
        "frame":{"index":168,"width":1280,"height":720}}"#;

    #[test]
    fn a_confidence_beyond_f32_is_refused_rather_than_read_as_infinite() {
        for (field, huge) in [
            (
                "\"confidence\":0.9,\"box\":[1,2,3,4]}",
                "\"confidence\":1e39,\"box\":[1,2,3,4]}",
            ),
            (
                "\"detection_confidence\":0.5",
                "\"detection_confidence\":-1e39",
            ),
        ] {
            let text = OLD_PASSAGE.replacen(field, huge, 1);
            assert_ne!(text, OLD_PASSAGE, "the sample holds {field}");
            let err = serde_json::from_str::<Event>(&text)
                .unwrap_err()
                .to_string();
            assert!(err.contains("outside the range"), "{err}");
        }
        let event: Event = serde_json::from_str(OLD_PASSAGE).unwrap();
        let again: Event = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn an_event_written_before_camera_gaps_still_parses_and_a_gap_round_trips() {
        let old: Event = serde_json::from_str(OLD_PASSAGE).unwrap();
        assert_eq!(old.kind, EventKind::Passage);
        assert!(old.gap.is_none());
        assert!(
            !serde_json::to_string(&old).unwrap().contains("\"gap\""),
            "no gap key on other events"
        );
        let gap = Event {
            kind: EventKind::CameraGap,
            gap: Some(CameraGap {
                from: old.captured_at,
                to: old.captured_at + chrono::Duration::seconds(20),
                frames_lost: 499,
                reason: "no frame for 5 s".into(),
            }),
            ..old
        };
        let text = serde_json::to_string(&gap).unwrap();
        assert!(text.contains("\"kind\":\"camera_gap\""), "{text}");
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), gap);
        assert_eq!(EventKind::CameraGap.as_str(), "camera_gap");
    }

    #[test]
    fn a_fixed_position_and_a_plain_clock_serialise_as_before_the_gnss_fields() {
        let old: Event = serde_json::from_str(OLD_PASSAGE).unwrap();
        let fixed = Event {
            position: Some(Position::fixed(51.1, 71.4)),
            ..old
        };
        let text = serde_json::to_string(&fixed).unwrap();
        assert!(
            text.contains(
                r#""clock":{"source":"system","synced":false},"position":{"lat":51.1,"lon":71.4},"#
            ),
            "{text}"
        );
        let mobile = Position {
            fix: Some(GnssFix::ThreeD),
            age_ms: Some(250),
            interpolated: true,
            ..Position::fixed(51.1, 71.4)
        };
        let text = serde_json::to_string(&mobile).unwrap();
        assert_eq!(
            text,
            r#"{"lat":51.1,"lon":71.4,"fix":"3d","age_ms":250,"interpolated":true}"#
        );
        assert_eq!(serde_json::from_str::<Position>(&text).unwrap(), mobile);
    }

    #[test]
    fn a_plate_read_surely_serialises_as_before_the_low_confidence_flag() {
        let old: Event = serde_json::from_str(OLD_PASSAGE).unwrap();
        assert!(!old.plate.low_confidence, "absent means not flagged");
        let text = serde_json::to_string(&old.plate).unwrap();
        assert_eq!(
            text,
            r#"{"text":"777KZA02","confidence":0.9,"detection_confidence":0.5,"box":[1,2,3,4],"country":null,"type":null,"region":null,"status":"read"}"#
        );
        let flagged = EventPlate {
            low_confidence: true,
            ..old.plate
        };
        let text = serde_json::to_string(&flagged).unwrap();
        assert!(
            text.ends_with(r#""status":"read","low_confidence":true}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<EventPlate>(&text).unwrap(), flagged);
    }

    #[test]
    fn topics_live_under_the_versioned_prefix() {
        let t = Topics::new("anpr/v1/", "INV-7");
        assert_eq!(t.events(), "anpr/v1/INV-7/events");
        assert_eq!(t.ack(), "anpr/v1/INV-7/ack");
        assert_eq!(Topics::all_events("anpr/v1"), "anpr/v1/+/events");
    }

    #[test]
    fn each_plate_list_has_its_own_command_topic_under_the_devices_cmd_filter() {
        let t = Topics::new("anpr/v1/", "INV-7");
        assert_eq!(t.cmd_filter(), "anpr/v1/INV-7/cmd/#");
        let wanted = t.plate_list("wanted");
        assert_eq!(wanted, "anpr/v1/INV-7/cmd/plate-list/wanted");
        assert!(wanted.starts_with(&format!("{}/", t.cmd())));
        assert_eq!(t.plate_list_name(&wanted), Some("wanted"));
        for other in [
            "anpr/v1/INV-7/cmd",
            "anpr/v1/INV-7/cmd/plate-list",
            "anpr/v1/INV-7/cmd/plate-list/",
            "anpr/v1/INV-7/cmd/plate-list/a/b",
            "anpr/v1/INV-7/cmd/other/wanted",
            "anpr/v1/INV-8/cmd/plate-list/wanted",
            "anpr/v1/INV-77/cmd/plate-list/wanted",
            "anpr/v2/INV-7/cmd/plate-list/wanted",
        ] {
            assert_eq!(t.plate_list_name(other), None, "{other}");
        }
    }
}
