//! The device under systemd: the shipped unit is valid and hardened; the device speaks the
//! service manager's notify protocol (ready, watchdog fed only while it makes progress,
//! stopping), tested against a real notify socket; a full disk holds passages and loses nothing.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_testkit::Mosquitto;

use crate::util;

/// `systemd-analyze`, which `deploy/setup.sh` installs with systemd.
fn systemd_analyze() -> &'static str {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "systemd-analyze is missing: run deploy/setup.sh (it installs systemd)"
    );
    "systemd-analyze"
}

#[test]
fn the_shipped_unit_is_valid_and_rated_ok_for_exposure() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(util::repo().join("deploy/systemd/anpr.service")).unwrap();
    // The unit names the installed binary; verify it against the one just built.
    let unit = unit.replace("/usr/local/bin/anpr", env!("CARGO_BIN_EXE_anpr"));
    let path = dir.path().join("anpr.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // Problems of this unit name its file; warnings about the host's other units do not.
    let ours: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("anpr.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{said}");
    let out = Command::new(systemd_analyze())
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let level: f64 = said
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for anpr.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{said}"));
    assert!(level <= 3.0, "exposure {level} (0 best, 10 worst):\n{said}");
}

/// Notify messages the device sent, with when they arrived.
fn collect(sock: &UnixDatagram, until: Instant, out: &mut Vec<(Instant, String)>) {
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        sock.set_read_timeout(Some(
            until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => out.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).to_string(),
            )),
            Err(_) => break,
        }
    }
}

fn device(config: &Path, socket: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anpr"));
    cmd.args([
        "run",
        "--config",
        config.to_str().unwrap(),
        "--drain-timeout",
        "10",
    ])
    .env("NOTIFY_SOCKET", socket)
    .env("WATCHDOG_USEC", "1500000")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

#[test]
fn the_device_says_ready_feeds_the_watchdog_and_stops_feeding_when_it_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    write_clip_with(&manifest_with(2), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let config = util::write_config(
        dir.path(),
        "KZ-TEST-WATCHDOG",
        clip.to_str().unwrap(),
        &broker,
    );
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();

    // A run that ends by itself: ready, fed, stopping, in that order.
    let mut child = device(&config, &socket).spawn().unwrap();
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_mins(2);
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        collect(
            &sock,
            Instant::now() + Duration::from_millis(200),
            &mut said,
        );
    }
    collect(
        &sock,
        Instant::now() + Duration::from_millis(300),
        &mut said,
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let first = |what: &str| said.iter().position(|(_, m)| m.lines().any(|l| l == what));
    let ready = first("READY=1").unwrap_or_else(|| panic!("no READY=1 in {said:?}"));
    let fed = first("WATCHDOG=1").unwrap_or_else(|| panic!("no WATCHDOG=1 in {said:?}"));
    let stopping = first("STOPPING=1").unwrap_or_else(|| panic!("no STOPPING=1 in {said:?}"));
    assert!(ready < fed && fed < stopping, "{said:?}");
    assert!(
        said.iter().any(|(_, m)| m.contains("STATUS=recording")),
        "a status line: {said:?}"
    );

    // A run whose recognition hangs: fed before, not fed after; systemd would restart it.
    let queue = dir.path().join("queue.sqlite");
    std::fs::remove_file(&queue).ok();
    let mut child = device(&config, &socket)
        .env("ANPR_INJECT_RECOGNITION_HANG", "cam1@20")
        .spawn()
        .unwrap();
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline
        && !said
            .iter()
            .any(|(_, m): &(Instant, String)| m.contains("STATUS=hung"))
    {
        collect(
            &sock,
            Instant::now() + Duration::from_millis(200),
            &mut said,
        );
    }
    let hung_at = said
        .iter()
        .find(|(_, m)| m.contains("STATUS=hung: recognition-cam1"))
        .map_or_else(|| panic!("the hang was not told: {said:?}"), |(at, _)| *at);
    assert!(
        said.iter()
            .any(|(at, m)| *at < hung_at && m.contains("WATCHDOG=1")),
        "fed before the hang: {said:?}"
    );
    // Three watchdog intervals without a single feed.
    let mut after = Vec::new();
    collect(
        &sock,
        Instant::now() + Duration::from_millis(4500),
        &mut after,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !after.iter().any(|(_, m)| m.contains("WATCHDOG=1")),
        "fed while hung: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_passages_and_recording_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let manifest = anpr_scene::clip::manifest();
    write_clip_with(&manifest, &clip).unwrap();
    let inv = "KZ-TEST-DISKFULL";
    let broker = Mosquitto::start().unwrap();
    let central_db = dir.path().join("central.sqlite");
    let central = util::Central::start(&broker, central_db.clone());
    let config = util::write_config(dir.path(), inv, clip.to_str().unwrap(), &broker);
    // The disk is full from the start: SQLite refuses every write of the device's recorder.
    let flag = dir.path().join("disk-is-full");
    std::fs::write(&flag, b"").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--drain-timeout",
            "20",
        ])
        .env("ANPR_INJECT_QUEUE_FULL", &flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let full_seen = util::wait_for(Duration::from_secs(90), || {
        anpr_central::Receiver::open(&central_db)
            .and_then(|r| r.faults(inv))
            .is_ok_and(|h| {
                h.iter()
                    .any(|h| h.faults.iter().any(|f| f.code == "disk-full"))
            })
    })
    .await;
    // Space returns.
    std::fs::remove_file(&flag).unwrap();
    assert!(full_seen, "the disk-full fault reached the central side");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    central.stop().await;
    assert!(status.success(), "{status:?}");
    let receiver = anpr_central::Receiver::open(&central_db).unwrap();
    let plates: Vec<String> = receiver
        .events_of(inv)
        .unwrap()
        .iter()
        .map(|d| d.event.plate.text.clone())
        .collect();
    let expected: Vec<String> = manifest.vehicles.iter().map(|v| v.plate.clone()).collect();
    assert_eq!(
        plates, expected,
        "every passage recorded, in order, none lost"
    );
    let report = receiver.report().unwrap();
    assert!(
        report[0].gaps.is_empty(),
        "no sequence gap: {:?}",
        report[0].gaps
    );
    let last = receiver.health(inv).unwrap().unwrap();
    assert!(
        !last.faults.iter().any(|f| f.code == "disk-full"),
        "cleared once space returned: {:?}",
        last.faults
    );
}
