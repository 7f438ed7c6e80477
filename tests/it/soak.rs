//! Soak (issue 11), ignored by default: `anpr run` on a live RTSP camera (`anpr camera-sim`
//! serving the demo clip) for `ANPR_SOAK_MINUTES` (default 20) while the camera is killed with
//! SIGKILL every ~3 minutes and comes back 20 s later on the same port, and the broker is
//! killed and restarted every ~5 minutes (both scaled down for shorter runs, at least 3 camera
//! drops and one broker restart). The device's resident memory and open file descriptors are
//! sampled every 10 s; at the end it is stopped with SIGTERM and drains.
//!
//! Passes when: the device process ran throughout; passages were recorded in every stretch the
//! camera was up; each drop was journaled and delivered as one camera gap; every event the
//! device recorded reached the receiver exactly once with no gap in its report; the median fd
//! count of the last quarter of samples is within a few of the second quarter's (after
//! warm-up) and the median RSS within 20%; no recognition worker failed (a failure loses the
//! vehicles in view). The figures are printed in a summary block before any verdict.
//!
//! ```sh
//! ANPR_SOAK_MINUTES=20 cargo test -p anpr --test it soak -- --ignored --nocapture
//! ```

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anpr_store::Store;
use anpr_testkit::Mosquitto;
use anpr_types::{Event, EventKind};
use chrono::{DateTime, Utc};

use crate::util;

/// How long the camera stays away after each kill.
const CAMERA_OUTAGE: Duration = Duration::from_secs(20);
/// How long the broker stays away after each kill.
const BROKER_OUTAGE: Duration = Duration::from_secs(5);
/// Camera drops and broker restarts at most this often (full-length runs).
const DROP_EVERY: Duration = Duration::from_mins(3);
const BROKER_EVERY: Duration = Duration::from_mins(5);
/// Nothing is scheduled this close to the end: the camera is up for the last passages.
const QUIET_END: Duration = Duration::from_secs(30);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// What the device may take to stop after SIGTERM (`--drain-timeout` plus ending tracks).
const DRAIN: Duration = Duration::from_mins(1);
const STOP_LIMIT: Duration = Duration::from_secs(90);
/// "Flat": the last quarter's median against the second quarter's.
const FD_SLACK: i64 = 4;
const RSS_GROWTH: f64 = 0.20;

/// A child process killed (SIGKILL) when dropped, so a failing soak leaves nothing running.
struct Proc(Child);

impl Proc {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}

/// Starts the simulated camera on `port` (0: any); returns it with its URL. The port of a
/// camera just killed may take a moment to be free again.
fn start_camera(clip: &Path, port: u16) -> (Proc, String) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_anpr"))
            .args(["camera-sim", "--clip"])
            .arg(clip)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if let Some(url) = line.split_whitespace().next() {
            return (Proc(child), url.to_string());
        }
        let _ = child.wait();
        assert!(
            Instant::now() < end,
            "the camera simulator does not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Resident memory of `pid` in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: u64,
    rss_kib: u64,
    fds: u64,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// First, warm (median of the second quarter), last (median of the last quarter) and max.
fn figures(samples: &[Sample], f: impl Fn(&Sample) -> u64) -> [u64; 4] {
    let n = samples.len();
    let values: Vec<u64> = samples.iter().map(f).collect();
    [
        values[0],
        median(values[n / 4..n / 2].to_vec()),
        median(values[n - n / 4..].to_vec()),
        values.iter().copied().max().unwrap(),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    KillCamera,
    StartCamera,
    KillBroker,
    StartBroker,
}

/// The schedule for a run of `total`: camera drops every `min(3 min, total / 4)`, broker
/// restarts every `min(5 min, total / 2.5)` offset by half a drop interval, none in the last
/// `QUIET_END`.
fn schedule(total: Duration) -> Vec<(Duration, Action)> {
    let drop_every = DROP_EVERY.min(total / 4);
    let broker_every = BROKER_EVERY.min(total.mul_f64(0.4));
    let mut plan = Vec::new();
    let mut at = drop_every;
    while at + CAMERA_OUTAGE + QUIET_END <= total {
        plan.push((at, Action::KillCamera));
        plan.push((at + CAMERA_OUTAGE, Action::StartCamera));
        at += drop_every;
    }
    let mut at = broker_every + drop_every / 2;
    while at + BROKER_OUTAGE + QUIET_END <= total {
        plan.push((at, Action::KillBroker));
        plan.push((at + BROKER_OUTAGE, Action::StartBroker));
        at += broker_every;
    }
    plan.sort_by_key(|p| p.0);
    plan
}

fn passages(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.kind == EventKind::Passage)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of 20 minutes by default; ANPR_SOAK_MINUTES sets it, see BENCHMARKS.md"]
async fn rtsp_drops_and_broker_restarts_for_the_soak_duration_lose_nothing_and_keep_memory_and_fds_flat()
 {
    let minutes: f64 = std::env::var("ANPR_SOAK_MINUTES")
        .ok()
        .map_or(20.0, |v| v.parse().expect("ANPR_SOAK_MINUTES is a number"));
    let total = Duration::from_secs_f64(minutes * 60.0);
    let plan = schedule(total);
    let drops = plan.iter().filter(|p| p.1 == Action::KillCamera).count();
    let broker_restarts = plan.iter().filter(|p| p.1 == Action::KillBroker).count();
    assert!(
        drops >= 3 && broker_restarts >= 1,
        "ANPR_SOAK_MINUTES={minutes} leaves {drops} camera drops and {broker_restarts} broker \
         restarts; give at least 4 minutes"
    );
    eprintln!(
        "soak: {minutes} min, {drops} camera drops ({} s each), {broker_restarts} broker restarts \
         ({} s each); schedule (s): {:?}",
        CAMERA_OUTAGE.as_secs(),
        BROKER_OUTAGE.as_secs(),
        plan.iter()
            .map(|(at, a)| (at.as_secs(), *a))
            .collect::<Vec<_>>()
    );

    let clip = util::repo().join("target/test-data/rtsp-demo.mp4");
    anpr_scene::clip::ensure_clip(&clip).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut camera, url) = start_camera(&clip, 0);
    let port: u16 = url
        .trim_start_matches("rtsp://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a loopback RTSP URL with a port: {url}"));

    let mut broker = Mosquitto::start().unwrap();
    let central_db = dir.path().join("central.sqlite");
    let central = util::Central::start(&broker, central_db.clone());
    let inv = "KZ-TEST-SOAK";
    let config = util::write_config(dir.path(), inv, &url, &broker);
    let mut text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("uri = \"{url}\"\n"),
        &format!(
            "uri = \"{url}\"\nstall_timeout_s = 2\nreconnect_min_s = 0.5\nreconnect_max_s = 2\n"
        ),
    );
    if !text.contains("[status]") {
        // Any free port: the default 8088 may be taken by another test or a real device.
        text.push_str("\n[status]\nlisten = \"127.0.0.1:0\"\n");
    }
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("device.log");
    let queue = dir.path().join("queue.sqlite");
    let device_started = Utc::now();
    let mut device = Proc(
        Command::new(env!("CARGO_BIN_EXE_anpr"))
            .args(["run", "--config"])
            .arg(&config)
            .args(["--drain-timeout", &DRAIN.as_secs().to_string()])
            .env("ANPR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = device.id();

    // Stretches in which the camera was up: (from, to).
    let mut camera_up: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut up_since = device_started;
    // Seconds since the start at which each stretch the camera was up ended (0 first).
    let mut stretch_ends: Vec<u64> = vec![0];
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut plan = plan.into_iter().peekable();
    let began = Instant::now();
    eprintln!(
        "{:>6} {:>9} {:>5} {:>9} {:>9}  (device pid {pid})",
        "t_s", "rss_MiB", "fds", "recorded", "delivered"
    );
    loop {
        let now = began.elapsed();
        if let Some(status) = device.0.try_wait().unwrap() {
            panic!(
                "the device exited at {} s ({status:?}); it must run throughout; log:\n{}",
                now.as_secs(),
                log_tail(&log)
            );
        }
        while let Some(&(at, action)) = plan.peek()
            && at <= now
        {
            plan.next();
            match action {
                Action::KillCamera => {
                    camera.kill();
                    camera_up.push((up_since, Utc::now()));
                    stretch_ends.push(now.as_secs());
                }
                Action::StartCamera => {
                    let (c, again) = start_camera(&clip, port);
                    assert_eq!(again, url, "the camera comes back on the same URL");
                    camera = c;
                    up_since = Utc::now();
                }
                Action::KillBroker => broker.kill(),
                Action::StartBroker => broker.restart().unwrap(),
            }
            eprintln!("{:>6} {action:?}", began.elapsed().as_secs());
        }
        if now >= next_sample {
            let stats = Store::open(&queue).and_then(|s| s.stats()).ok();
            let s = Sample {
                at_s: now.as_secs(),
                rss_kib: rss_kib(pid),
                fds: fds(pid),
            };
            eprintln!(
                "{:>6} {:>9.1} {:>5} {:>9} {:>9}",
                s.at_s,
                s.rss_kib as f64 / 1024.0,
                s.fds,
                stats.map_or(0, |s| s.last_seq),
                stats.map_or(0, |s| s.delivered),
            );
            samples.push(s);
            next_sample += SAMPLE_EVERY;
        }
        if now >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Stop the device as systemd would and let it drain; then stop the camera.
    let stop_at = Utc::now();
    camera_up.push((up_since, stop_at));
    stretch_ends.push(u64::MAX);
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(sent.success());
    let stop_began = Instant::now();
    let status = loop {
        if let Some(status) = device.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stop_began.elapsed() < STOP_LIMIT,
            "the device stops within {} s of SIGTERM; log:\n{}",
            STOP_LIMIT.as_secs(),
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stop_took = stop_began.elapsed();
    camera.kill();
    assert!(
        status.success(),
        "{status:?}; device log:\n{}",
        log_tail(&log)
    );
    let left = Store::open(&queue).unwrap().stats().unwrap().pending;
    if left > 0 {
        let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(3));
        uplink.drain(DRAIN).await;
    }
    central.stop().await;

    // The figures, printed before any verdict so a failing run still shows them.
    let stats = Store::open(&queue).unwrap().stats().unwrap();
    let receiver = anpr_central::Receiver::open(&central_db).unwrap();
    let events: Vec<Event> = receiver
        .events_of(inv)
        .unwrap()
        .into_iter()
        .map(|d| d.event)
        .collect();
    let all = passages(&events);
    let per_stretch: Vec<usize> = camera_up
        .iter()
        .map(|(from, to)| {
            all.iter()
                .filter(|e| e.captured_at >= *from && e.captured_at <= *to)
                .count()
        })
        .collect();
    let gaps = receiver.camera_gaps_of(inv).unwrap();
    let report = receiver.report().unwrap();
    let rss = figures(&samples, |s| s.rss_kib);
    // The step each reconnect adds, if any: the largest RSS in each stretch the camera was up.
    let rss_per_stretch: Vec<String> = stretch_ends
        .windows(2)
        .map(|w| {
            let max = samples
                .iter()
                .filter(|s| s.at_s > w[0] && s.at_s <= w[1])
                .map(|s| s.rss_kib)
                .max()
                .unwrap_or(0);
            format!("{:.0}", max as f64 / 1024.0)
        })
        .collect();
    // Recognition workers that failed (each loses the vehicles in view), as the receiver heard
    // of them, and where the device's log says they panicked.
    let mut recognition_faults: Vec<String> = receiver
        .faults(inv)
        .unwrap()
        .into_iter()
        .flat_map(|h| h.faults)
        .filter(|f| f.code == "recognition")
        .map(|f| f.message)
        .collect();
    recognition_faults.sort();
    recognition_faults.dedup();
    let device_log = std::fs::read_to_string(&log).unwrap_or_default();
    let mut panics: Vec<&str> = device_log
        .lines()
        .filter(|l| l.contains("panicked at"))
        .collect();
    panics.sort_unstable();
    panics.dedup();
    let fd = figures(&samples, |s| s.fds);
    let mib = |k: u64| k as f64 / 1024.0;
    eprintln!(
        "\n== soak summary ==\n\
         duration {minutes} min, {} samples every {} s; {drops} camera drops of {} s, \
         {broker_restarts} broker restarts of {} s\n\
         resident memory (MiB): first {:.1}, warm {:.1} (median of 2nd quarter), last {:.1} \
         (median of last quarter), max {:.1}; last/warm {:+.1}%\n\
         open fds: first {}, warm {}, last {}, max {}; last - warm {:+}\n\
         events recorded {} (passages {}, camera gaps {}), delivered {}, left after SIGTERM \
         {left} (device stopped in {:.1} s)\n\
         passages per stretch the camera was up: {per_stretch:?}; largest RSS per stretch \
         (MiB): {rss_per_stretch:?}\n\
         recognition faults: {} {recognition_faults:?}; panics in the device log: {panics:?}\n\
         receiver: {}",
        samples.len(),
        SAMPLE_EVERY.as_secs(),
        CAMERA_OUTAGE.as_secs(),
        BROKER_OUTAGE.as_secs(),
        mib(rss[0]),
        mib(rss[1]),
        mib(rss[2]),
        mib(rss[3]),
        (rss[2] as f64 / rss[1] as f64 - 1.0) * 100.0,
        fd[0],
        fd[1],
        fd[2],
        fd[3],
        fd[2] as i64 - fd[1] as i64,
        stats.last_seq,
        all.len(),
        gaps.len(),
        stats.delivered,
        stop_took.as_secs_f64(),
        recognition_faults.len(),
        report
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    );

    // Zero loss by the receiver: every sequence number 1..=last, once, no gap reported.
    util::assert_delivered_exactly(&queue, &central_db, inv);
    assert_eq!(report.len(), 1, "one device at the receiver: {report:?}");
    assert_eq!(report[0].max_seq, stats.last_seq);
    assert!(report[0].gaps.is_empty(), "{}", report[0]);
    assert!(
        per_stretch.iter().all(|&n| n > 0),
        "passages in every stretch the camera was up: {per_stretch:?}"
    );
    assert_eq!(
        gaps.len(),
        drops,
        "each camera drop journaled and delivered as one gap: {gaps:?}"
    );

    // Flat: after warm-up, the last quarter against the second.
    assert!(
        fd[2] as i64 - fd[1] as i64 <= FD_SLACK,
        "open file descriptors grow: warm {}, last {} (samples {samples:?})",
        fd[1],
        fd[2]
    );
    assert!(
        rss[2] as f64 <= rss[1] as f64 * (1.0 + RSS_GROWTH),
        "resident memory grows: warm {:.1} MiB, last {:.1} MiB (samples {samples:?})",
        mib(rss[1]),
        mib(rss[2])
    );

    assert!(
        recognition_faults.is_empty(),
        "no recognition worker fails (each failure loses the vehicles in view): \
         {recognition_faults:?}; {panics:?}"
    );
}
