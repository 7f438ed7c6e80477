//! Capture times of a real RTSP camera (the simulator, on loopback) against the truth: the
//! wall time at which the server stamped each frame, found by the serial number drawn into it.
//! Prints what it measured; `docs/cameras.md` quotes it.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anpr_camsim::{CameraSim, SimOptions, mark, read_truth};
use anpr_ingest::{ClockSource, FrameSource, Pulled, SourceOptions};
use gstreamer as gst;
use gstreamer::prelude::*;

/// A 640x360, 25 fps clip of 4 s with moving content.
fn write_clip(path: &std::path::Path) {
    gst::init().unwrap();
    let p = gst::parse::launch(&format!(
        "videotestsrc num-buffers=100 pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 ! x264enc ! matroskamux ! filesink location={}",
        path.display()
    ))
    .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    p.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    p.set_state(gst::State::Null).unwrap();
}

fn stats(name: &str, v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        eprintln!("{name}: no frames");
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "{name}: {} frames, error ms min {:.2} median {:.2} p99 {:.2} max {:.2}",
        v.len(),
        v[0],
        at(0.5),
        at(0.99),
        v[v.len() - 1]
    );
    (v[0], v[v.len() - 1])
}

#[test]
fn rtsp_capture_times_come_from_the_camera_s_sender_reports_within_a_few_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    write_clip(&clip);
    let truth_path = dir.path().join("truth.jsonl");
    let sim = CameraSim::start(&SimOptions {
        truth: Some(truth_path.clone()),
        mark_frames: true,
        ..SimOptions::new(&clip, 0)
    })
    .unwrap();
    let latency_ms = 200;
    let mut source = FrameSource::open_with(
        "sim",
        sim.url(),
        &SourceOptions {
            latency_ms,
            ..SourceOptions::default()
        },
    )
    .unwrap();
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        match source.pull(Duration::from_secs(5)).unwrap() {
            Pulled::Frame(f) => {
                let after_decode = chrono::Utc::now();
                let serial = mark::read(&f.image.data, f.image.width, f.image.height);
                seen.push((serial, f.captured_at, f.clock, after_decode));
            }
            Pulled::Nothing => panic!("the simulated camera stalled"),
            Pulled::End => panic!("a live stream does not end"),
        }
    }
    drop(source);
    drop(sim);
    let truth: HashMap<u64, chrono::DateTime<chrono::Utc>> = read_truth(&truth_path)
        .unwrap()
        .into_iter()
        .map(|r| (r.serial % u64::from(mark::SERIAL_MODULO), r.wall))
        .collect();
    let ms = |d: chrono::TimeDelta| d.num_microseconds().unwrap() as f64 / 1000.0;
    let (mut ntp, mut pipeline, mut decoded) = (Vec::new(), Vec::new(), Vec::new());
    let mut unmarked = 0;
    for (serial, at, clock, after_decode) in &seen {
        let Some(t) = serial.and_then(|s| truth.get(&u64::from(s))) else {
            unmarked += 1;
            continue;
        };
        decoded.push(ms(*after_decode - *t));
        match clock {
            ClockSource::CameraNtp => ntp.push(ms(*at - *t)),
            _ => pipeline.push(ms(*at - *t)),
        }
    }
    eprintln!(
        "{} frames, {unmarked} without a readable mark; latency {latency_ms} ms",
        seen.len()
    );
    let (ntp_min, ntp_max) = stats("camera-ntp", &mut ntp);
    let (pipe_min, pipe_max) = stats("pipeline", &mut pipeline);
    stats("wall clock after decoding (the old way)", &mut decoded);
    assert!(seen.len() > 100, "frames arrive: {}", seen.len());
    assert!(unmarked <= 2, "{unmarked} frames without a mark");
    assert!(
        ntp.len() > seen.len() / 2,
        "most frames carry the camera's NTP time: {} of {}",
        ntp.len(),
        seen.len()
    );
    assert!(
        ntp_min > -5.0 && ntp_max < 5.0,
        "camera-ntp within 5 ms: {ntp_min:.2}..{ntp_max:.2} ms"
    );
    assert!(
        pipe_min > -5.0 && pipe_max < 100.0,
        "pipeline within -5..100 ms: {pipe_min:.2}..{pipe_max:.2} ms"
    );
}
