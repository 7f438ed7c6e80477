//! One step of the road logic — the vehicle tracker and the rules — with 50 vehicles in view
//! and a plate list of 100,000 entries, next to one call of the plate detector on a 1280x720
//! frame measured in the same run: the road logic must stay a small share of recognition.
//!
//! Each iteration feeds one frame: 50 vehicle boxes moving down two lanes, each with a plate
//! read, so every vehicle is associated and its plate attached; every 40th frame the vehicles
//! cross the counting line and one in five leaves, so passages end and are checked against
//! the four kinds of rule (a plate list lookup among them).
//!
//! `cargo bench -p anpr-pipeline --bench road_step`. The plate-detector baseline needs `models/`
//! (run `models/fetch.sh`); without it that part is skipped with a message.

use std::hint::black_box;
use std::path::Path;

use anpr_config::{Config, RuleKind};
use anpr_rules::{ListEntry, Lists, PassageFacts, PlateList, RuleSet};
use anpr_track::{
    CountingLine, FrameObservation, Point, Polygon, Scene, VehicleTracker, VehicleTrackerConfig,
    Zone,
};
use anpr_types::{BBox, PlateRead, PlateStatus, RgbFrame, VehicleClass, VehicleDetection};
use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const VEHICLES: usize = 50;

/// 100,000 distinct plates `NNNLLLRR` from a fixed seed.
fn plates() -> Vec<String> {
    let letters = b"ABCDEFGHJKLMNPRSTUVWXYZ";
    (0..100_000u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let l = |k: u32| letters[((h >> k) % letters.len() as u64) as usize] as char;
            format!(
                "{:03}{}{}{}{:02}",
                i % 1000,
                l(10),
                l(20),
                l(30),
                1 + (i / 1000) % 20
            )
        })
        .collect()
}

fn config() -> Config {
    let text = r#"
[device]
inventory = "BENCH"
profile = "stationary"
coordinates = [51.0, 71.0]
time_zone = "Asia/Almaty"

[[camera]]
id = "cam"
uri = "x.mp4"
line = [[0.0, 0.6], [1.0, 0.6]]

[[camera.zone]]
name = "lane-1"
polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
lane = true

[[camera.zone]]
name = "lane-2"
polygon = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
lane = true

[models]

[storage]
queue = "q.sqlite"

[uplink]
broker = "mqtt://127.0.0.1:1883"

[[list]]
name = "wanted"

[[rule]]
name = "wanted"
kind = "plate-list"
lists = ["wanted"]

[[rule]]
name = "truck-ban"
kind = "vehicle-type-ban"
classes = ["truck"]
zone = "lane-2"
windows = ["07:00-10:00"]

[[rule]]
name = "no-plate"
kind = "plate-missing"

[[rule]]
name = "wrong-way"
kind = "wrong-direction"
zone = "lane-1"
allowed_direction = "towards"
"#;
    anpr_config::parse(text, Path::new("bench.toml")).expect("bench config parses")
}

fn scene() -> Scene {
    let p = Point::new;
    let zone = |name: &str, x0: f32, x1: f32| Zone {
        name: name.into(),
        polygon: Polygon::new(&[p(x0, 0.0), p(x1, 0.0), p(x1, 1.0), p(x0, 1.0)]).expect("zone"),
        lane: true,
    };
    Scene {
        line: Some(CountingLine::new(p(0.0, 0.6), p(1.0, 0.6)).expect("line")),
        zones: vec![zone("lane-1", 0.0, 0.5), zone("lane-2", 0.5, 1.0)],
    }
}

/// Frame `f` of a 3840x2160 view with `VEHICLES` vehicles on a 10x5 grid, drifting down.
fn frame_boxes(f: u64, ids: &[String]) -> (Vec<VehicleDetection>, Vec<PlateRead>) {
    let mut vehicles = Vec::with_capacity(VEHICLES);
    let mut reads = Vec::with_capacity(VEHICLES);
    for i in 0..VEHICLES {
        let (col, row) = ((i % 10) as f32, (i / 10) as f32);
        let x = 40.0 + col * 380.0;
        let y = 100.0 + row * 380.0 + (f % 40) as f32 * 2.0;
        let bbox = BBox {
            x,
            y,
            w: 240.0,
            h: 200.0,
        };
        vehicles.push(VehicleDetection {
            class: if i % 3 == 0 {
                VehicleClass::Truck
            } else {
                VehicleClass::Car
            },
            confidence: 0.8,
            bbox,
        });
        let text = ids[(f as usize / 40 * VEHICLES + i) % ids.len()].clone();
        reads.push(PlateRead {
            char_confidences: vec![0.95; text.len()],
            raw_text: text.clone(),
            text,
            confidence: 0.95,
            detection_confidence: 0.8,
            bbox: BBox {
                x: x + 80.0,
                y: y + 140.0,
                w: 80.0,
                h: 18.0,
            },
            country: None,
            plate_type: None,
            region: None,
            format_confidence: 0.0,
            low_confidence: false,
        });
    }
    (vehicles, reads)
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    assert!(cfg.rules.iter().any(|r| r.kind == RuleKind::PlateList));
    let ids = plates();
    // Updates are not benched: any central key will do.
    let central = anpr_trust::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let mut lists = Lists::new(cfg.device.time_zone, &cfg.device.inventory, central);
    lists.declare("wanted", 1);
    let entries: Vec<ListEntry> = ids
        .iter()
        .enumerate()
        .map(|(i, p)| ListEntry {
            plate: p.clone(),
            reason: "wanted".into(),
            priority: 1,
            valid_from: None,
            valid_until: None,
            line: i as u64 + 2,
        })
        .collect();
    lists.insert(PlateList::from_entries("wanted", 1, entries));
    let rules = RuleSet::from_config(&cfg);
    let t0 = Utc
        .with_ymd_and_hms(2026, 11, 30, 3, 0, 0)
        .single()
        .expect("time");
    let mut tracker = VehicleTracker::new(VehicleTrackerConfig::default(), scene());
    let mut f = 0u64;
    let mut g = c.benchmark_group("road_step_50_vehicles_100k_list");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tracker_and_rules", |b| {
        b.iter(|| {
            f += 1;
            let (vehicles, reads) = frame_boxes(f, &ids);
            let at = t0 + TimeDelta::milliseconds(f as i64 * 40);
            let obs = FrameObservation::new(f, at, (3840, 2160))
                .with_vehicles(&vehicles)
                .with_plates(&reads);
            let mut found = 0usize;
            for p in tracker.step(black_box(&obs)) {
                let facts = PassageFacts {
                    camera: "cam".into(),
                    plate: p.text.clone(),
                    plate_status: p.status,
                    plate_low_confidence: false,
                    vehicle_class: p.class,
                    direction: p.direction.clone(),
                    lane: p.lane.clone(),
                    zones: p.zones.clone(),
                    captured_at: p.captured_at(),
                };
                found += rules.check(&facts, &lists).len();
            }
            black_box(found)
        });
    });
    // The rules alone on one passage, for the share of the step they take.
    let facts = PassageFacts {
        camera: "cam".into(),
        plate: ids[77].clone(),
        plate_status: PlateStatus::Read,
        plate_low_confidence: false,
        vehicle_class: VehicleClass::Truck,
        direction: Some("away".into()),
        lane: Some("lane-1".into()),
        zones: vec!["lane-1".into()],
        captured_at: t0,
    };
    g.bench_function("rules_one_passage", |b| {
        b.iter(|| rules.check(black_box(&facts), &lists));
    });
    g.finish();

    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    if anpr_vision::init_runtime(&models.join("libonnxruntime.so")).is_err()
        || !models.join("plate_detector.onnx").is_file()
    {
        eprintln!("skipping the plate-detector baseline: run models/fetch.sh first");
        return;
    }
    let mut det =
        anpr_vision::YoloDetector::load(&models.join("plate_detector.onnx"), "plate detector", 1)
            .expect("plate detector loads");
    let frame = RgbFrame {
        width: 1280,
        height: 720,
        data: (0..1280 * 720 * 3).map(|i| (i % 251) as u8).collect(),
    };
    let mut g = c.benchmark_group("road_step_50_vehicles_100k_list");
    g.sample_size(20);
    g.bench_function("baseline_plate_detector_call_1280x720", |b| {
        b.iter(|| det.detect(black_box(&frame), 0.35).expect("runs"));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
