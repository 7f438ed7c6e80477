//! `anpr bench PATH`: recognition throughput on a video file or an image folder, for people who
//! size the hardware: frames per second, per-stage latency percentiles, CPU use and peak memory,
//! for the model set and thread count of a configuration, with a progress line.
//!
//! Frames of a video are decoded by the same GStreamer pipeline as a camera file, ahead of the
//! recognizer on their own thread (as on the device); decoding time is not counted as a stage.

use std::path::Path;
use std::time::{Duration, Instant};

use anpr_ingest::FrameSource;
use anpr_types::RgbFrame;
use anpr_vision::Recognizer;
use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Latency percentiles of one stage, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Percentiles of `v` (nearest rank); zeros for no samples.
    #[must_use]
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Self {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// What a bench run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub input: String,
    pub frames: u64,
    /// Frames that could not be decoded or processed.
    pub failed: u64,
    pub width: u32,
    pub height: u32,
    pub wall_s: f64,
    pub fps: f64,
    /// CPU time of the process over wall time (1.0 = one core busy).
    pub cpu_cores: f64,
    /// Peak resident memory of the process, MB.
    pub peak_rss_mb: f64,
    pub vehicle_ms: Percentiles,
    pub plate_detect_ms: Percentiles,
    pub plate_read_ms: Percentiles,
    pub total_ms: Percentiles,
    pub intra_threads: usize,
    pub vehicle_detector: bool,
    /// Whether the vehicle type classifier ran on the vehicles found (its time is in
    /// `vehicle_ms`).
    pub type_classifier: bool,
    /// Whether the vehicle detector ran on its own thread beside the plate stages.
    pub concurrent: bool,
    /// Frames recognised at the same time, each by a recognizer on a thread of its own.
    pub parallel_frames: usize,
    /// Every frame's figures, for the charts of the HTML report (not in the JSON).
    #[serde(skip)]
    pub samples: Samples,
}

/// Per-frame figures of a bench run, in the order frames were processed.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub vehicle_ms: Vec<f64>,
    pub plate_detect_ms: Vec<f64>,
    pub plate_read_ms: Vec<f64>,
    pub total_ms: Vec<f64>,
    /// Seconds from the start of the run at which each frame was done.
    pub done_s: Vec<f64>,
}

impl BenchReport {
    /// The stages as the text table lists them: name, percentiles, per-frame times.
    #[must_use]
    pub fn stages(&self) -> [(&'static str, &Percentiles, &[f64]); 4] {
        [
            ("vehicles", &self.vehicle_ms, &self.samples.vehicle_ms),
            (
                "plate detect",
                &self.plate_detect_ms,
                &self.samples.plate_detect_ms,
            ),
            (
                "plate read",
                &self.plate_read_ms,
                &self.samples.plate_read_ms,
            ),
            ("total", &self.total_ms, &self.samples.total_ms),
        ]
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "bench: {} — {} frames of {}x{} ({} failed) in {:.1} s: {:.2} fps",
            self.input, self.frames, self.width, self.height, self.failed, self.wall_s, self.fps
        )?;
        writeln!(
            f,
            "  models: plate detector, plate reader{}; {} intra-op thread(s) per session{}{}",
            match (self.vehicle_detector, self.type_classifier) {
                (true, true) => ", vehicle detector and type classifier",
                (true, false) => ", vehicle detector",
                (false, _) => "",
            },
            self.intra_threads,
            if self.concurrent && self.vehicle_detector {
                "; vehicle detector on its own thread"
            } else {
                "; stages one after the other"
            },
            if self.parallel_frames > 1 {
                format!(
                    "; {} frames at a time, each by its own recognizer",
                    self.parallel_frames
                )
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "  CPU {:.2} cores on average, peak memory {:.0} MB",
            self.cpu_cores, self.peak_rss_mb
        )?;
        writeln!(
            f,
            "  {:<14} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "stage (ms)", "p50", "p90", "p99", "max", "mean"
        )?;
        for (name, p, _) in self.stages() {
            writeln!(
                f,
                "  {name:<14} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                p.p50, p.p90, p.p99, p.max, p.mean
            )?;
        }
        Ok(())
    }
}

/// CPU seconds used by this process so far (user + system), from /proc.
fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (USER_HZ, 100 on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// Peak resident memory of this process, MB, from /proc.
#[must_use]
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `frame` scaled to `width` pixels wide (antialiased, aspect ratio kept); as it is when it
/// already has that width.
#[must_use]
pub fn scale_to_width(frame: RgbFrame, width: u32) -> RgbFrame {
    if frame.width == width || frame.width == 0 {
        return frame;
    }
    let height =
        ((u64::from(frame.height) * u64::from(width) / u64::from(frame.width)).max(1)) as u32;
    let data = anpr_vision::resize::resample(
        &frame,
        (0, 0, frame.width as usize, frame.height as usize),
        width as usize,
        height as usize,
    )
    .into_iter()
    .map(|v| v.round().clamp(0.0, 255.0) as u8)
    .collect();
    RgbFrame {
        width,
        height,
        data,
    }
}

/// Benchmarks the recognizers on a video file or an image folder; `limit` stops after that
/// many frames, `width` scales every frame to that width first (outside the timings, as a
/// camera of that resolution would deliver it). Each of `recs` recognises frames on a thread of
/// its own, taking the next frame when it is free (`anpr bench --parallel-frames`, as the
/// device's `[models] parallel_frames`). A progress line goes to stderr every 2 s.
pub fn run(
    recs: &mut [Recognizer],
    input: &Path,
    limit: Option<u64>,
    width: Option<u32>,
    intra_threads: usize,
    concurrent: bool,
) -> Result<BenchReport> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RgbFrame, String>>(4);
    let total_hint: Option<u64>;
    let producer = if input.is_dir() {
        let images = crate::detect::collect_images(&[input.to_path_buf()]);
        if images.is_empty() {
            bail!("{} holds no images (jpg, jpeg, png)", input.display());
        }
        total_hint = Some(images.len() as u64);
        std::thread::spawn(move || {
            for p in images {
                let item = crate::detect::load_rgb(&p).map(|f| match width {
                    Some(w) => scale_to_width(f, w),
                    None => f,
                });
                if tx.send(item).is_err() {
                    break;
                }
            }
        })
    } else {
        if !input.is_file() {
            bail!(
                "{} is neither a video file nor a folder of images",
                input.display()
            );
        }
        total_hint = None;
        let uri = input.display().to_string();
        let mut source =
            FrameSource::open("bench", &uri, Some(false), 0.0, Duration::from_secs(15))
                .with_context(|| format!("cannot open {} as a video", input.display()))?;
        std::thread::spawn(move || {
            loop {
                let item = match source.next_frame(Duration::from_secs(10)) {
                    Ok(Some(f)) => Ok(match width {
                        Some(w) => scale_to_width(f.image, w),
                        None => f.image,
                    }),
                    Ok(None) => break,
                    Err(e) => Err(e.to_string()),
                };
                let stop = item.is_err();
                if tx.send(item).is_err() || stop {
                    break;
                }
            }
        })
    };
    let total = limit.map_or(total_hint, |l| Some(total_hint.map_or(l, |t| t.min(l))));
    let mut samples = Samples::default();
    let (mut frames, mut failed, mut size) = (0u64, 0u64, (0, 0));
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut shown = Instant::now();
    let has_vehicle_detector = recs.iter().any(Recognizer::has_vehicle_detector);
    let has_type_classifier = recs.iter().any(Recognizer::has_type_classifier);
    let parallel_frames = recs.len();
    // The frames still to take (all of the input without a limit), shared by the workers.
    let input_frames = std::sync::Mutex::new((rx, limit.unwrap_or(u64::MAX)));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for rec in recs.iter_mut() {
            let (input_frames, done_tx) = (&input_frames, done_tx.clone());
            scope.spawn(move || {
                loop {
                    let item = {
                        let mut taken = input_frames
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if taken.1 == 0 {
                            break;
                        }
                        taken.1 -= 1;
                        match taken.0.recv() {
                            Ok(item) => item,
                            Err(_) => break,
                        }
                    };
                    let outcome = item.and_then(|frame| {
                        let t = Instant::now();
                        let size = (frame.width, frame.height);
                        rec.process(&frame)
                            .map(|r| (r, t.elapsed(), size))
                            .map_err(|e| e.to_string())
                    });
                    if done_tx.send(outcome).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        for outcome in &done_rx {
            let Ok((r, took, frame_size)) = outcome else {
                failed += 1;
                continue;
            };
            size = frame_size;
            samples.total_ms.push(took.as_secs_f64() * 1000.0);
            samples.done_s.push(start.elapsed().as_secs_f64());
            samples.vehicle_ms.push(r.timings.vehicle_ms);
            samples.plate_detect_ms.push(r.timings.plate_detect_ms);
            samples.plate_read_ms.push(r.timings.plate_read_ms);
            frames += 1;
            if shown.elapsed() >= Duration::from_secs(2) {
                shown = Instant::now();
                let done = frames + failed;
                let of = total.map_or_else(String::new, |t| format!("/{t}"));
                eprintln!(
                    "bench: frame {done}{of}, {:.2} fps, last frame {:.0} ms",
                    frames as f64 / start.elapsed().as_secs_f64(),
                    samples.total_ms.last().copied().unwrap_or(0.0)
                );
            }
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    drop(input_frames);
    let _ = producer.join();
    if frames == 0 {
        bail!("no frame of {} could be processed", input.display());
    }
    Ok(BenchReport {
        input: input.display().to_string(),
        frames,
        failed,
        width: size.0,
        height: size.1,
        wall_s: wall,
        fps: frames as f64 / wall,
        cpu_cores: cpu / wall,
        peak_rss_mb: peak_rss_mb(),
        vehicle_ms: Percentiles::of(samples.vehicle_ms.clone()),
        plate_detect_ms: Percentiles::of(samples.plate_detect_ms.clone()),
        plate_read_ms: Percentiles::of(samples.plate_read_ms.clone()),
        total_ms: Percentiles::of(samples.total_ms.clone()),
        intra_threads,
        vehicle_detector: has_vehicle_detector,
        type_classifier: has_type_classifier,
        concurrent,
        parallel_frames,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert!((p.p50 - 51.0).abs() < 1e-9, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 1e-9, "{p:?}");
        assert!((p.max - 100.0).abs() < 1e-9);
        assert!((p.mean - 50.5).abs() < 1e-9);
        assert!((Percentiles::of(Vec::new()).max).abs() < 1e-9);
    }

    #[test]
    fn frames_are_scaled_to_the_asked_width_keeping_their_aspect_ratio() {
        let frame = RgbFrame {
            width: 1280,
            height: 720,
            data: vec![100; 1280 * 720 * 3],
        };
        let small = scale_to_width(frame.clone(), 640);
        assert_eq!((small.width, small.height), (640, 360));
        assert_eq!(small.data.len(), 640 * 360 * 3);
        assert!(
            small.data.iter().all(|&v| v == 100),
            "a flat frame stays flat"
        );
        let same = scale_to_width(frame, 1280);
        assert_eq!((same.width, same.height), (1280, 720));
    }

    #[test]
    fn this_process_has_a_peak_memory_and_cpu_time() {
        assert!(peak_rss_mb() > 1.0);
        let t = cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds() >= t);
    }
}
