//! Prints, frame by frame, what recognition finds in a video file and which vehicle track each
//! detection and plate joins, then the passages: for tuning a camera's tracking settings.
//!
//! `cargo run -p anpr-pipeline --example track_clip -- CONFIG [CAMERA]`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use anpr_ingest::FrameSource;
use anpr_track::{FrameGate, FrameObservation, VehicleTracker};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let config = args.next().unwrap_or_else(|| "config/demo.toml".into());
    let cfg = anpr_config::load(std::path::Path::new(&config))?;
    let camera = match args.next() {
        Some(id) => cfg
            .camera(&id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no camera {id}"))?,
        None => cfg.cameras[0].clone(),
    };
    let mut rec = anpr_pipeline::load_recognizer(&cfg)?;
    gstreamer::init()?;
    let mut source = FrameSource::open(
        &camera.id,
        &camera.uri,
        Some(false),
        0.0,
        Duration::from_secs(15),
    )?;
    let tcfg = anpr_pipeline::tracker_settings(&cfg, &camera);
    println!("tracker: {tcfg:?}");
    let mut gate = FrameGate::new(camera.idle_every, camera.track_every, tcfg.max_gap);
    let mut tracker = VehicleTracker::new(tcfg, anpr_pipeline::camera_scene(&camera)?);
    let every = u64::from(cfg.models.vehicle_every.max(1));
    let mut recognised = 0u64;
    let mut passages = Vec::new();
    while let Some(frame) = source.next_frame(Duration::from_secs(10))? {
        if !gate.wants(frame.index) {
            continue;
        }
        let want = recognised.is_multiple_of(every)
            || tracker.needs_vehicle(cfg.models.vehicle_class_confidence);
        recognised += 1;
        let known = tracker.known_plates(frame.index, cfg.models.known_plate_reads);
        let mut r = rec.process_known(&frame.image, want, &known)?;
        let vehicles = r.vehicles.clone();
        r.plates
            .retain(|p| anpr_pipeline::plausible_plate(p, &vehicles));
        let mut obs = FrameObservation::new(
            frame.index,
            frame.captured_at,
            (frame.image.width, frame.image.height),
        )
        .with_plates(&r.plates);
        if want {
            obs = obs.with_vehicles(&r.vehicles);
        }
        let ended = tracker.step(&obs);
        gate.saw(frame.index, r.plates.len() + tracker.vehicles_in_view());
        let a = tracker.last_assignments();
        let vehicles: Vec<String> = r
            .vehicles
            .iter()
            .zip(&a.vehicles)
            .map(|(v, t)| {
                format!(
                    "{}{:.2}@{:?}->{}",
                    v.class,
                    v.confidence,
                    v.bbox.to_wire(),
                    t.map_or("-".into(), |t| t.to_string())
                )
            })
            .collect();
        let plates: Vec<String> = r
            .plates
            .iter()
            .zip(&a.plates)
            .map(|(p, t)| {
                format!(
                    "{:?}@{:?}->{}",
                    p.text,
                    p.bbox.to_wire(),
                    t.map_or("-".into(), |t| t.to_string())
                )
            })
            .collect();
        println!(
            "frame {:4} det={} vehicles [{}] plates [{}] merged {:?}",
            frame.index,
            want,
            vehicles.join(", "),
            plates.join(", "),
            a.merged
        );
        for p in ended {
            println!(
                "  PASSAGE {} {:?} {:?} {} dir {:?} lane {:?} frames {} dwell {}",
                p.track, p.text, p.status, p.class, p.direction, p.lane, p.frames, p.dwell
            );
            passages.push(p);
        }
    }
    for p in tracker.flush() {
        println!(
            "  PASSAGE (flush) {} {:?} {:?} {} dir {:?} lane {:?} frames {} dwell {}",
            p.track, p.text, p.status, p.class, p.direction, p.lane, p.frames, p.dwell
        );
    }
    Ok(())
}
