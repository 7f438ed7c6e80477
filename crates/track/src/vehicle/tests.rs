use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anpr_types::{BBox, PlateRead, PlateStatus, RgbFrame, VehicleClass, VehicleDetection};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::geometry::{CountingLine, Point, Polygon, Scene, Zone};

const SIZE: (u32, u32) = (1280, 720);

fn at(i: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + TimeDelta::milliseconds(40 * i as i64)
}

fn car(x: f32, y: f32, w: f32, h: f32) -> VehicleDetection {
    VehicleDetection {
        class: VehicleClass::Car,
        confidence: 0.8,
        bbox: BBox { x, y, w, h },
    }
}

fn plate(text: &str, x: f32, y: f32, confidence: f32) -> PlateRead {
    PlateRead {
        text: text.into(),
        confidence,
        char_confidences: vec![confidence; text.chars().count()],
        detection_confidence: 0.9,
        bbox: BBox {
            x,
            y,
            w: 60.0,
            h: 15.0,
        },
        raw_text: text.into(),
        country: None,
        plate_type: None,
        region: None,
        format_confidence: 0.0,
        low_confidence: false,
    }
}

/// The plate of a car box: centred, near its bottom.
fn plate_on(text: &str, c: &VehicleDetection, confidence: f32) -> PlateRead {
    let b = c.bbox;
    plate(text, b.x + b.w / 2.0 - 30.0, b.y + b.h * 0.8, confidence)
}

fn across() -> Scene {
    Scene {
        line: Some(CountingLine::new(Point::new(0.0, 0.5), Point::new(1.0, 0.5)).expect("line")),
        zones: Vec::new(),
    }
}

fn tracker(scene: Scene) -> VehicleTracker {
    VehicleTracker::new(VehicleTrackerConfig::default(), scene)
}

/// A car 200×150 px moving down the picture `dy` px per frame from `y0`.
fn moving(i: u64, x: f32, y0: f32, dy: f32) -> VehicleDetection {
    car(x, y0 + dy * i as f32, 200.0, 150.0)
}

fn run_out(t: &mut VehicleTracker, from: u64, out: &mut Vec<VehiclePassage>) {
    for i in from..from + 40 {
        out.extend(t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&[])));
    }
}

#[test]
fn a_car_whose_plate_is_never_read_makes_one_passage_with_the_plate_absent() {
    let mut t = tracker(across());
    let mut out = Vec::new();
    for i in 0..20 {
        let v = [moving(i, 500.0, 100.0, 20.0)];
        out.extend(t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&v)));
    }
    assert!(out.is_empty(), "still in view");
    run_out(&mut t, 20, &mut out);
    assert_eq!(out.len(), 1);
    let p = &out[0];
    assert_eq!(p.status, PlateStatus::Absent, "wide enough to show a plate");
    assert!(p.text.is_empty());
    assert_eq!(p.class, VehicleClass::Car);
    assert_eq!(p.direction.as_deref(), Some("towards"));
    assert_eq!(p.frames, 20);
    assert_eq!(t.open_tracks(), 0);
}

#[test]
fn a_distant_vehicle_without_a_plate_box_is_unreadable_not_absent() {
    let mut t = tracker(Scene::default());
    for i in 0..10 {
        let v = [car(600.0, 100.0 + i as f32, 80.0, 60.0)];
        t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&v));
    }
    let out = t.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, PlateStatus::Unreadable);
    assert_eq!(out[0].direction, None, "no line, no direction");
}

#[test]
fn plate_boxes_found_but_never_read_make_the_plate_unreadable() {
    let mut t = tracker(Scene::default());
    for i in 0..10 {
        let v = [moving(i, 500.0, 100.0, 5.0)];
        let p = [plate_on("", &v[0], 0.0)];
        t.step(
            &FrameObservation::new(i, at(i), SIZE)
                .with_vehicles(&v)
                .with_plates(&p),
        );
    }
    let out = t.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, PlateStatus::Unreadable);
    assert_eq!(out[0].plate_frames, 10);
    assert!(out[0].plate.is_some(), "the best unread plate box is kept");
}

#[test]
fn the_text_is_the_weighted_consensus_and_its_best_read_keeps_its_frame() {
    let mut t = tracker(Scene::default());
    let frames: Vec<Arc<RgbFrame>> = (0..10)
        .map(|i| {
            Arc::new(RgbFrame {
                width: 2,
                height: 1,
                data: vec![i; 6],
            })
        })
        .collect();
    for i in 0..10u64 {
        let v = [moving(i, 500.0, 100.0, 5.0)];
        let (text, conf) = match i {
            3 => ("123ABO01", 0.95),
            6 => ("123ABC01", 0.97),
            _ => ("123ABC01", 0.8),
        };
        let p = [plate_on(text, &v[0], conf)];
        t.step(
            &FrameObservation::new(i, at(i), SIZE)
                .with_vehicles(&v)
                .with_plates(&p)
                .with_frame(&frames[i as usize]),
        );
    }
    let out = t.flush();
    assert_eq!(out.len(), 1);
    let p = &out[0];
    assert_eq!(p.status, PlateStatus::Read);
    assert_eq!(p.text, "123ABC01");
    assert_eq!(p.text_reads, 9);
    assert!(p.agreement > 0.85 && p.agreement < 1.0, "{}", p.agreement);
    let best = p.plate.as_ref().expect("best shot");
    assert_eq!(best.at.frame_index, 6);
    assert_eq!(best.frame.as_ref().expect("frame kept").data[0], 6);
    assert_eq!(
        p.captured.frame_index, 6,
        "no line: captured at the best shot"
    );
}

#[test]
fn two_plates_in_one_vehicle_box_give_the_vehicle_the_more_confident_and_drop_the_other() {
    let mut t = tracker(Scene::default());
    for i in 0..5u64 {
        let v = [car(400.0, 100.0, 400.0, 300.0)];
        let p = [
            plate("111AAA01", 450.0, 300.0, 0.6),
            plate("222BBB02", 650.0, 300.0, 0.9),
        ];
        t.step(
            &FrameObservation::new(i, at(i), SIZE)
                .with_vehicles(&v)
                .with_plates(&p),
        );
        let a = t.last_assignments();
        assert_eq!(a.plates[0], None, "the weaker plate is dropped");
        assert_eq!(a.plates[1], a.vehicles[0]);
    }
    let out = t.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "222BBB02");
}

#[test]
fn a_plate_in_two_nested_boxes_goes_to_the_smaller_and_the_other_plate_to_the_larger() {
    let mut t = tracker(Scene::default());
    // A car in front of a truck: the car's box lies inside the truck's.
    let v = [
        VehicleDetection {
            class: VehicleClass::Truck,
            confidence: 0.9,
            bbox: BBox {
                x: 300.0,
                y: 50.0,
                w: 600.0,
                h: 500.0,
            },
        },
        car(350.0, 300.0, 200.0, 150.0),
    ];
    let p = [
        plate("111AAA01", 420.0, 420.0, 0.9),
        plate("222BBB02", 750.0, 500.0, 0.8),
    ];
    t.step(
        &FrameObservation::new(0, at(0), SIZE)
            .with_vehicles(&v)
            .with_plates(&p),
    );
    let a = t.last_assignments();
    assert_eq!(a.plates[0], a.vehicles[1], "the car's plate to the car");
    assert_eq!(a.plates[1], a.vehicles[0], "the other plate to the truck");
}

#[test]
fn two_plates_read_while_the_detector_missed_both_cars_start_two_vehicles() {
    let mut t = tracker(Scene::default());
    let mut out = Vec::new();
    for i in 0..8u64 {
        let y = 300.0 + 10.0 * i as f32;
        // Close enough that each plate lies in the other's grown box.
        let p = [
            plate("111AAA01", 500.0, y, 0.9),
            plate("222BBB02", 580.0, y, 0.8),
        ];
        out.extend(t.step(&FrameObservation::new(i, at(i), SIZE).with_plates(&p)));
        let a = t.last_assignments();
        assert!(a.plates[0].is_some() && a.plates[1].is_some());
        assert_ne!(a.plates[0], a.plates[1], "frame {i}");
    }
    out.extend(t.flush());
    let mut texts: Vec<&str> = out.iter().map(|p| p.text.as_str()).collect();
    texts.sort_unstable();
    assert_eq!(texts, ["111AAA01", "222BBB02"]);
    assert!(out.iter().all(|p| p.vehicle.is_none()));
}

#[test]
fn a_plate_seen_before_its_car_is_detected_stays_one_vehicle() {
    let mut t = tracker(across());
    let mut out = Vec::new();
    for i in 0..30u64 {
        let v = [moving(i, 500.0, 0.0, 15.0)];
        let p = [plate_on("777KKK07", &v[0], 0.9)];
        let obs = FrameObservation::new(i, at(i), SIZE).with_plates(&p);
        // The detector misses the car for the first 6 frames, then runs every third frame.
        let obs = if i >= 6 && i % 3 == 0 {
            obs.with_vehicles(&v)
        } else {
            obs
        };
        out.extend(t.step(&obs));
        assert_eq!(t.open_tracks(), 1, "frame {i}");
    }
    out.extend(t.flush());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "777KKK07");
    assert_eq!(out[0].class, VehicleClass::Car);
    assert_eq!(out[0].direction.as_deref(), Some("towards"));
}

#[test]
fn between_detector_runs_tracks_are_predicted_and_plates_attach_to_them() {
    let mut t = tracker(Scene::default());
    for i in 0..30u64 {
        let v = [moving(i, 500.0, 0.0, 15.0)];
        let p = [plate_on("777KKK07", &v[0], 0.9)];
        let mut obs = FrameObservation::new(i, at(i), SIZE).with_plates(&p);
        if i % 4 == 0 {
            obs = obs.with_vehicles(&v);
        }
        t.step(&obs);
        assert_eq!(t.open_tracks(), 1, "frame {i}");
        assert!(t.last_assignments().plates[0].is_some(), "frame {i}");
    }
    let out = t.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].frames, 30);
}

#[test]
fn a_car_without_a_plate_survives_frames_the_detector_does_not_look_at() {
    let mut t = tracker(Scene::default());
    let mut out = Vec::new();
    for i in 0..60u64 {
        let v = [moving(i, 500.0, 0.0, 8.0)];
        let mut obs = FrameObservation::new(i, at(i), SIZE);
        if i % 10 == 0 {
            obs = obs.with_vehicles(&v);
        }
        out.extend(t.step(&obs));
    }
    out.extend(t.flush());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].frames, 6);
}

#[test]
fn a_car_seen_once_then_only_by_its_plate_does_not_catch_the_car_behind_it() {
    // Two cars in one lane move up the picture 23 px a frame; the detector runs every third
    // frame. The leader is detected once entering at the bottom, missed at frame 3, and its
    // plate read at frame 4 (nothing yet tells where the plate sits on it, so its box stays
    // where it was first seen). From frame 6 the leader is detected far above that box, by
    // a new track; at frame 9 the follower enters right where the leader was first seen.
    let clipped = |y: f32, x: f32, w: f32, h: f32| car(x, y, w, h.min(720.0 - y));
    let leader = |i: u64| clipped(580.0 - 23.4 * i as f32, 1025.0, 189.0, 157.0);
    let follower = |i: u64| clipped(720.0 - 23.4 * (i as f32 - 6.0), 1065.0, 110.0, 77.0);
    let mut t = tracker(Scene::default());
    // Which cars (0 leader, 1 follower) fed each track.
    let mut fed: BTreeMap<TrackId, BTreeSet<usize>> = BTreeMap::new();
    for i in 0..30u64 {
        let mut cars = Vec::new();
        if i % 3 == 0 && i != 3 && i < 27 {
            cars.push((0, leader(i)));
        }
        if i % 3 == 0 && i >= 9 {
            cars.push((1, follower(i)));
        }
        let plates = if i == 4 || i == 6 {
            let b = leader(i).bbox;
            vec![plate("101KZA03", 1091.0, b.y + 118.6, 0.9)]
        } else {
            Vec::new()
        };
        let dets: Vec<VehicleDetection> = cars.iter().map(|c| c.1.clone()).collect();
        let mut obs = FrameObservation::new(i, at(i), SIZE).with_plates(&plates);
        if i % 3 == 0 {
            obs = obs.with_vehicles(&dets);
        }
        t.step(&obs);
        let a = t.last_assignments();
        for (d, id) in a.vehicles.iter().enumerate() {
            fed.entry(id.expect("every car has a track"))
                .or_default()
                .insert(cars[d].0);
        }
        for id in a.plates.iter().flatten() {
            fed.entry(*id).or_default().insert(0);
        }
    }
    for (id, cars) in &fed {
        assert_eq!(cars.len(), 1, "track {id} fed by cars {cars:?}");
    }
}

#[test]
fn two_cars_side_by_side_keep_their_own_tracks() {
    let mut t = tracker(Scene::default());
    let mut ids = None;
    for i in 0..25u64 {
        let v = [
            moving(i, 300.0, 0.0, 20.0),
            car(520.0, 400.0 - 12.0 * i as f32, 200.0, 150.0),
        ];
        t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&v));
        let now = t.last_assignments().vehicles.clone();
        if i >= 1 {
            assert_eq!(ids.as_ref(), Some(&now), "frame {i}");
        }
        ids = Some(now);
    }
    assert_eq!(t.flush().len(), 2);
}

#[test]
fn a_duplicate_detection_does_not_start_a_second_vehicle() {
    let mut t = tracker(Scene::default());
    for i in 0..10u64 {
        let a = moving(i, 500.0, 0.0, 10.0);
        let mut b = a.clone();
        b.bbox.x += 5.0;
        t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&[a, b]));
    }
    assert_eq!(t.open_tracks(), 1);
    assert_eq!(t.flush().len(), 1);
}

#[test]
fn a_plate_implied_track_merges_into_the_detected_vehicle_holding_its_plate() {
    let mut t = tracker(Scene::default());
    // A car detected and confirmed, moving down 20 px a frame.
    for i in 0..3u64 {
        let v = [car(100.0, 100.0 + 20.0 * i as f32, 200.0, 150.0)];
        t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&v));
    }
    let car_id = t.last_assignments().vehicles[0].expect("tracked");
    // Its plate read right of its predicted box while the detector does not run.
    for i in 3..5u64 {
        let p = [plate("555PPP05", 320.0, 200.0, 0.9)];
        t.step(&FrameObservation::new(i, at(i), SIZE).with_plates(&p));
    }
    assert_eq!(t.open_tracks(), 2, "a plate-implied track started");
    // The detector finds the car again, wider, its box holding the plate.
    let v = [car(100.0, 140.0, 300.0, 150.0)];
    let p = [plate("555PPP05", 320.0, 200.0, 0.9)];
    t.step(
        &FrameObservation::new(5, at(5), SIZE)
            .with_vehicles(&v)
            .with_plates(&p),
    );
    let a = t.last_assignments();
    assert_eq!(a.vehicles[0], Some(car_id));
    assert_eq!(a.merged.len(), 1);
    assert_eq!(a.merged[0].1, car_id);
    assert_eq!(a.plates[0], Some(car_id));
    assert_eq!(t.open_tracks(), 1);
    let out = t.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "555PPP05");
    assert_eq!(out[0].frames, 6);
}

#[test]
fn crossing_gives_the_direction_and_the_first_frame_beyond_the_line() {
    // Reference point: bottom of the box = 100 + 150 + 20 i; the line is at y = 360.
    // 250 + 20 i > 360 first at i = 6.
    let mut t = tracker(across());
    for i in 0..15u64 {
        let v = [moving(i, 500.0, 100.0, 20.0)];
        let p = [plate_on("123ABC01", &v[0], if i == 2 { 0.99 } else { 0.8 })];
        t.step(
            &FrameObservation::new(i, at(i), SIZE)
                .with_vehicles(&v)
                .with_plates(&p),
        );
    }
    let out = t.flush();
    assert_eq!(out.len(), 1);
    let p = &out[0];
    assert_eq!(p.direction.as_deref(), Some("towards"));
    assert_eq!(p.crossing_frame, Some(6));
    assert_eq!(p.captured.frame_index, 6);
    assert_eq!(p.captured_at(), at(6));
    assert_eq!(p.plate.as_ref().map(|s| s.at.frame_index), Some(2));
    assert_eq!(p.track_info().crossing_frame, Some(6));

    let mut t = tracker(Scene {
        line: across().line.map(|l| l.with_names("inbound", "outbound")),
        zones: Vec::new(),
    });
    for i in 0..15u64 {
        let v = [moving(i, 500.0, 400.0, -20.0)];
        t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&v));
    }
    let out = t.flush();
    assert_eq!(out[0].direction.as_deref(), Some("outbound"));
}

#[test]
fn a_vehicle_that_never_crosses_has_no_direction_and_is_captured_at_its_best_shot() {
    let mut t = tracker(across());
    for i in 0..10u64 {
        let v = [moving(i, 500.0, 0.0, 5.0)];
        let p = [plate_on("123ABC01", &v[0], if i == 7 { 0.99 } else { 0.8 })];
        t.step(
            &FrameObservation::new(i, at(i), SIZE)
                .with_vehicles(&v)
                .with_plates(&p),
        );
    }
    let out = t.flush();
    assert_eq!(out[0].direction, None);
    assert_eq!(out[0].crossing_frame, None);
    assert_eq!(out[0].captured.frame_index, 7);
}

#[test]
fn the_lane_and_zones_are_those_of_the_reference_point_at_the_crossing() {
    let rect = |x0: f32, x1: f32, y0: f32, y1: f32| {
        Polygon::new(&[
            Point::new(x0, y0),
            Point::new(x1, y0),
            Point::new(x1, y1),
            Point::new(x0, y1),
        ])
        .expect("rectangle")
    };
    let scene = Scene {
        line: across().line,
        zones: vec![
            Zone {
                name: "bus-stop".into(),
                polygon: rect(0.3, 0.7, 0.0, 0.4),
                lane: false,
            },
            Zone {
                name: "lane-1".into(),
                polygon: rect(0.0, 0.5, 0.0, 1.0),
                lane: true,
            },
            Zone {
                name: "lane-2".into(),
                polygon: rect(0.5, 1.0, 0.0, 1.0),
                lane: true,
            },
            Zone {
                name: "box-junction".into(),
                polygon: rect(0.3, 0.7, 0.45, 0.7),
                lane: false,
            },
        ],
    };
    let mut t = tracker(scene);
    for i in 0..15u64 {
        // Centre x = 400 + 100 = 500 → 0.39: lane 1.
        let v = [moving(i, 400.0, 100.0, 20.0)];
        t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&v));
    }
    let out = t.flush();
    assert_eq!(out[0].lane.as_deref(), Some("lane-1"));
    assert_eq!(out[0].zones, ["lane-1", "box-junction"]);
}

#[test]
fn a_vehicle_that_stays_is_recorded_once_as_dwell_and_not_again() {
    let cfg = VehicleTrackerConfig {
        max_dwell: Some(TimeDelta::seconds(10)),
        ..VehicleTrackerConfig::default()
    };
    let mut t = VehicleTracker::new(cfg, Scene::default());
    let mut out = Vec::new();
    // 40 ms a frame: 10 s is 250 frames.
    for i in 0..1000u64 {
        let v = [car(500.0, 300.0, 200.0, 150.0)];
        let p = [plate_on("123ABC01", &v[0], 0.9)];
        let passages = t.step(
            &FrameObservation::new(i, at(i), SIZE)
                .with_vehicles(&v)
                .with_plates(&p),
        );
        if !passages.is_empty() {
            assert_eq!(i, 250);
        }
        out.extend(passages);
    }
    assert_eq!(t.open_tracks(), 1, "still followed");
    out.extend(t.flush());
    run_out(&mut t, 1000, &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].dwell);
    assert!(out[0].track_info().dwell);
    assert_eq!(out[0].text, "123ABC01");
}

#[test]
fn a_glimpse_too_short_to_confirm_ends_silently() {
    let mut t = tracker(Scene::default());
    let mut out = Vec::new();
    for i in 0..2u64 {
        let v = [car(500.0, 300.0, 200.0, 150.0)];
        out.extend(t.step(&FrameObservation::new(i, at(i), SIZE).with_vehicles(&v)));
    }
    run_out(&mut t, 2, &mut out);
    assert!(out.is_empty());
    assert_eq!(t.open_tracks(), 0);
}

#[test]
fn an_unread_plate_box_outside_every_vehicle_starts_nothing() {
    let mut t = tracker(Scene::default());
    for i in 0..5u64 {
        let p = [plate("", 500.0, 300.0, 0.0), plate("AB", 800.0, 300.0, 0.9)];
        t.step(&FrameObservation::new(i, at(i), SIZE).with_plates(&p));
    }
    assert_eq!(t.open_tracks(), 0);
}

#[test]
fn the_detector_is_wanted_until_each_vehicle_has_a_known_type() {
    let mut t = tracker(Scene::default());
    assert!(!t.needs_vehicle(0.5), "nothing in view");
    let p = [plate("123ABC01", 500.0, 300.0, 0.9)];
    t.step(&FrameObservation::new(0, at(0), SIZE).with_plates(&p));
    assert!(t.needs_vehicle(0.5));
    assert_eq!(t.vehicles_in_view(), 1);
    let mut v = car(400.0, 200.0, 260.0, 160.0);
    v.confidence = 0.3;
    t.step(
        &FrameObservation::new(1, at(1), SIZE)
            .with_vehicles(std::slice::from_ref(&v))
            .with_plates(&p),
    );
    assert!(t.needs_vehicle(0.5), "not sure enough yet");
    v.confidence = 0.8;
    t.step(
        &FrameObservation::new(2, at(2), SIZE)
            .with_vehicles(std::slice::from_ref(&v))
            .with_plates(&p),
    );
    assert!(!t.needs_vehicle(0.5));
    // The detector looks and finds nothing, and no plate: not in view in that frame.
    t.step(&FrameObservation::new(3, at(3), SIZE).with_vehicles(&[]));
    assert_eq!(t.vehicles_in_view(), 0);
    // The detector does not run: the confirmed vehicle is taken as still there.
    t.step(&FrameObservation::new(4, at(4), SIZE));
    assert_eq!(t.vehicles_in_view(), 1);
}

#[test]
fn a_frame_not_after_the_previous_one_is_ignored() {
    let mut t = tracker(Scene::default());
    let v = [car(500.0, 300.0, 200.0, 150.0)];
    t.step(&FrameObservation::new(5, at(5), SIZE).with_vehicles(&v));
    t.step(&FrameObservation::new(5, at(5), SIZE).with_vehicles(&v));
    t.step(&FrameObservation::new(3, at(3), SIZE).with_vehicles(&v));
    assert_eq!(t.last_assignments().vehicles, [None]);
    t.step(&FrameObservation::new(6, at(6), SIZE).with_vehicles(&v));
    assert!(
        t.flush().is_empty(),
        "two frames taken: not confirmed (min_hits = 3)"
    );
}

#[test]
fn the_vote_holds_a_bounded_number_of_texts_and_frames() {
    let mut t = tracker(Scene::default());
    let frame = Arc::new(RgbFrame {
        width: 1,
        height: 1,
        data: vec![0; 3],
    });
    for i in 0..500u64 {
        let v = [car(500.0, 300.0, 200.0, 150.0)];
        // Every frame a different misread, every fifth the true text.
        let text = if i % 5 == 0 {
            "123ABC01".to_string()
        } else {
            format!("{i:08}")
        };
        let p = [plate_on(&text, &v[0], 0.5)];
        t.step(
            &FrameObservation::new(i, at(i), SIZE)
                .with_vehicles(&v)
                .with_plates(&p)
                .with_frame(&frame),
        );
        let f = t.footprint();
        assert!(f.texts <= 8, "{f:?}");
        assert!(f.frames <= FRAMES_PER_TRACK, "{f:?}");
    }
    assert!(Arc::strong_count(&frame) <= 1 + FRAMES_PER_TRACK);
    let out = t.flush();
    assert_eq!(out[0].text, "123ABC01");
}

#[test]
fn a_plate_read_alike_in_enough_frames_is_known_where_its_motion_puts_it_next() {
    let mut t = tracker(Scene::default());
    let step = |t: &mut VehicleTracker, i: u64, text: &str| {
        let v = [moving(i, 500.0, 100.0, 10.0)];
        let p = [plate_on(text, &v[0], 0.9)];
        t.step(
            &FrameObservation::new(i, at(i), SIZE)
                .with_vehicles(&v)
                .with_plates(&p),
        );
    };
    step(&mut t, 0, "ABC123");
    step(&mut t, 1, "ABC123");
    assert!(t.known_plates(2, 3).is_empty(), "two reads are not three");
    step(&mut t, 2, "ABC123");
    let known = t.known_plates(5, 3);
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].text, "ABC123");
    // Moving 10 px a frame: expected three frames on from where it was last seen.
    let expected = plate_on("", &moving(5, 500.0, 100.0, 10.0), 0.0).bbox;
    assert!(known[0].bbox.iou(&expected) > 0.9, "{:?}", known[0].bbox);
    assert!(t.known_plates(5, 0).is_empty(), "0 turns it off");
    assert!(t.known_plates(3, 4).is_empty());
    // Other texts with more weight than it between them: no longer known.
    for i in 3..7 {
        step(&mut t, i, if i % 2 == 0 { "ABC128" } else { "A8C123" });
    }
    assert!(
        t.known_plates(7, 3).is_empty(),
        "the track's reads disagree"
    );
    // Not seen for longer than its track may stay open unmatched: not known.
    let mut t = tracker(Scene::default());
    for i in 0..3 {
        step(&mut t, i, "ABC123");
    }
    let gap = t.config().max_gap;
    assert_eq!(t.known_plates(2 + gap, 3).len(), 1);
    assert!(t.known_plates(3 + gap, 3).is_empty());
}
