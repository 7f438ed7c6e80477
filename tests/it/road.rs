//! The generated road scene through the whole appliance: GStreamer decoding, the three models,
//! the vehicle tracker with its counting line and lanes, the rules with a plate list, the
//! SQLite queue, a real mosquitto broker and the reference receiver. The scene's manifest is
//! the truth every passage and violation is checked against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anpr_scene::road::{self, SceneManifest};
use anpr_store::sha256_hex;
use anpr_testkit::Mosquitto;
use anpr_types::{EventKind, PlateStatus};
use chrono::{TimeDelta, Timelike, Utc};

use crate::util;

/// The scene clip, drawn once per checkout and reused while its drawing is unchanged.
fn scene_clip() -> (PathBuf, SceneManifest) {
    let clip = util::repo().join("target/test-data/scene.mp4");
    let m = road::ensure_scene(&clip).unwrap();
    (clip, m)
}

/// Local hours `from`..`to` hours from now as a rule window `HH:MM-HH:MM`.
fn window(from_h: i64, to_h: i64, tz: chrono_tz::Tz) -> String {
    let now = Utc::now().with_timezone(&tz);
    let at = |h: i64| {
        let t = now + TimeDelta::hours(h);
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    format!("{}-{}", at(from_h), at(to_h))
}

/// A device config for the scene: its line and lanes, a plate list, and one rule of each kind,
/// plus a bus ban whose window is hours away (it must raise nothing).
pub fn write_scene_config(dir: &Path, inventory: &str, clip: &Path, broker: &Mosquitto) -> PathBuf {
    let tz = chrono_tz::Asia::Almaty;
    std::fs::write(
        dir.join("wanted.csv"),
        format!(
            "plate,reason,priority,valid_from,valid_to\n{},stolen vehicle,1,,\n{},unpaid fines,2,,\n",
            road::HOTLIST[0],
            road::HOTLIST[1]
        ),
    )
    .unwrap();
    let text = format!(
        r#"lists_dir = "lists"

[device]
inventory = "{inventory}"
profile = "stationary"
site = "scene"
coordinates = [51.1, 71.4]
time_zone = "Asia/Almaty"

[[camera]]
id = "road"
uri = "{clip}"
idle_every = 2
track_every = 2
line = [[0.0, 0.62], [1.0, 0.62]]
max_dwell_s = 5

[[camera.zone]]
name = "{lane1}"
polygon = [[0.0, 0.1667], [0.5, 0.1667], [0.5, 1.0], [0.0, 1.0]]
lane = true

[[camera.zone]]
name = "{lane2}"
polygon = [[0.5, 0.1667], [1.0, 0.1667], [1.0, 1.0], [0.5, 1.0]]
lane = true

[models]
dir = "{models}"
vehicle_every = 1
plate_candidate_confidence = 0.35
grammar = "kz"

[storage]
queue = "queue.sqlite"

[uplink]
{link}ack_timeout_s = 3.0

{security}

[[list]]
name = "wanted"
file = "wanted.csv"

[[rule]]
name = "{wanted}"
kind = "plate-list"
lists = ["wanted"]

[[rule]]
name = "{bus_ban}"
kind = "vehicle-type-ban"
classes = ["bus"]
zone = "{ban_lane}"
windows = ["{inside}"]

[[rule]]
name = "bus-ban-at-other-hours"
kind = "vehicle-type-ban"
classes = ["bus"]
zone = "{ban_lane}"
windows = ["{outside}"]

[[rule]]
name = "{no_plate}"
kind = "plate-missing"

[[rule]]
name = "{wrong_way}"
kind = "wrong-direction"
zone = "{lane2}"
allowed_direction = "towards"
"#,
        clip = clip.display(),
        models = util::models_dir().display(),
        lane1 = road::LANE_1,
        lane2 = road::LANE_2,
        ban_lane = road::BUS_BAN_LANE,
        wanted = road::RULE_WANTED,
        bus_ban = road::RULE_BUS_BAN,
        no_plate = road::RULE_NO_PLATE,
        wrong_way = road::RULE_WRONG_WAY,
        inside = window(-1, 1, tz),
        outside = window(4, 6, tz),
        link = util::Link::uplink_lines(broker, inventory),
        security = util::security_lines(dir, inventory),
    );
    let path = dir.join("device.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vehicle_of_the_road_scene_makes_one_passage_and_every_offence_one_violation_with_its_evidence()
 {
    let (clip, truth) = scene_clip();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let central = util::Central::start(&broker, dir.path().join("central.sqlite"));
    let inv = "KZ-TEST-ROAD";
    let config = write_scene_config(dir.path(), inv, &clip, &broker);
    let summary = util::run_device(&config, Duration::from_mins(1)).await;
    central.stop().await;
    assert!(
        summary.camera_errors.is_empty(),
        "{:?}",
        summary.camera_errors
    );
    assert_eq!(summary.pending, 0, "everything delivered");

    let receiver = anpr_central::Receiver::open(&dir.path().join("central.sqlite")).unwrap();
    let events = receiver.events_of(inv).unwrap();
    let passages: Vec<_> = events
        .iter()
        .map(|d| &d.event)
        .filter(|e| e.kind == EventKind::Passage)
        .collect();
    let listing: Vec<String> = passages
        .iter()
        .map(|e| {
            format!(
                "seq {} plate {:?} {} {} {:?} {:?} crossing {:?} dwell {}",
                e.seq,
                e.plate.text,
                e.plate.status.as_str(),
                e.vehicle.class,
                e.vehicle.direction,
                e.vehicle.lane,
                e.track.as_ref().and_then(|t| t.crossing_frame),
                e.track.as_ref().is_some_and(|t| t.dwell)
            )
        })
        .collect();
    assert_eq!(
        passages.len(),
        truth.vehicles.len(),
        "one passage per vehicle, no merge and no split:\n{}",
        listing.join("\n")
    );

    // Each vehicle of the truth is found once, with its lane, direction, type and capture time.
    let frame_ms = 1000 / i64::from(truth.fps);
    let mut starts = Vec::new();
    let mut crossings = Vec::new();
    for v in &truth.vehicles {
        let found: Vec<_> = passages
            .iter()
            .filter(|e| match &v.plate {
                Some(p) => e.plate.text == *p,
                None => e.plate.status != PlateStatus::Read,
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "vehicle {} ({:?}):\n{}",
            v.id,
            v.plate,
            listing.join("\n")
        );
        let e = found[0];
        if v.plate.is_none() {
            // Close enough to show a plate, and none was found on it.
            assert_eq!(
                e.plate.status,
                PlateStatus::Absent,
                "{}: {:?}",
                v.id,
                e.plate
            );
        }
        assert_eq!(
            e.vehicle.lane.as_deref(),
            Some(v.lane.id()),
            "lane of {}",
            v.id
        );
        assert_eq!(
            e.vehicle.direction.as_deref(),
            Some(match v.direction {
                road::Direction::Towards => "towards",
                road::Direction::Away => "away",
            }),
            "direction of {}",
            v.id
        );
        assert_eq!(
            e.vehicle.class.as_str(),
            v.kind.as_str(),
            "type of {}",
            v.id
        );
        let track = e.track.as_ref().unwrap();
        assert_eq!(track.dwell, v.stop.is_some(), "dwell flag of {}", v.id);
        let crossing = track.crossing_frame.unwrap();
        // One frame in `track_every` (2) is recognised, and the detector's box is not the drawn
        // one (it takes in the shadow under the wheels, or leaves out a bumper's edge): the
        // crossing is seen within a few frames of the truth: at most 4 (160 ms at 25 fps) when
        // measured, 6 allowed.
        crossings.push(format!("{} {} seen {crossing}", v.id, v.crossing_frame));
        assert!(
            crossing.abs_diff(v.crossing_frame) <= 6,
            "{} crossed at frame {}, seen at {crossing}; all: {crossings:?}",
            v.id,
            v.crossing_frame
        );
        // Capture time = stream start + the crossing frame's timestamp: the same start for all.
        starts.push(e.captured_at - TimeDelta::milliseconds(crossing as i64 * frame_ms));
    }
    eprintln!("crossing frames, truth and seen: {crossings:?}");
    let spread = *starts.iter().max().unwrap() - *starts.iter().min().unwrap();
    assert!(
        spread <= TimeDelta::milliseconds(2),
        "capture times disagree by {spread}"
    );

    // Violations: exactly those of the truth, each with its evidence, apart at the receiver.
    let violations = receiver.violations_of(inv).unwrap();
    let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in &violations {
        let d = v.detail.as_ref().unwrap();
        by_rule
            .entry(d.rule.clone())
            .or_default()
            .push(v.plate.clone());
    }
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in &truth.vehicles {
        for rule in &v.violations {
            expected
                .entry(rule.clone())
                .or_default()
                .push(v.plate.clone().unwrap_or_default());
        }
    }
    for list in by_rule.values_mut().chain(expected.values_mut()) {
        list.sort();
    }
    assert_eq!(by_rule, expected, "violations by rule (plates)");
    for v in &violations {
        let d = v.detail.as_ref().unwrap();
        let event = events
            .iter()
            .find(|x| x.event.event_id == v.event_id)
            .unwrap();
        let passage = passages.iter().find(|p| p.event_id == d.passage).unwrap();
        assert_eq!(d.passage_seq, passage.seq);
        assert_eq!(
            event.event.captured_at, passage.captured_at,
            "a violation has its passage's time"
        );
        if d.rule == road::RULE_WANTED {
            let m = d.list.as_ref().unwrap();
            assert_eq!(m.fuzzy, m.entry != v.plate, "{m:?} for {}", v.plate);
        }
        let kinds: Vec<&str> = event
            .event
            .evidence
            .iter()
            .map(|r| r.kind.as_str())
            .collect();
        assert!(
            kinds.contains(&"overview") && kinds.contains(&"overlay"),
            "{kinds:?}"
        );
        for r in &event.event.evidence {
            let bytes = receiver
                .image(v.event_id, &r.kind)
                .unwrap()
                .unwrap_or_else(|| {
                    panic!(
                        "{} image of violation {} not at the receiver",
                        r.kind, v.seq
                    )
                });
            assert_eq!(sha256_hex(&bytes), r.sha256);
        }
    }
}
