//! What an event says of its clock: where each camera's capture times came from, and whether
//! the host's clock is synchronised.
//!
//! The capture threads note each camera's clock source as frames arrive (only its changes are
//! kept); an event built later, from a passage's capture moment, asks which source was in force
//! then. Whether the host clock is synchronised is read from `timedatectl show -p
//! NTPSynchronized --value` when the first camera starts and then once a minute on a thread of
//! its own, never per frame; it is `false` while unknown (no timedatectl, no systemd).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anpr_ingest::ClockSource;
use chrono::{DateTime, Utc};

/// Changes of source kept per camera (the oldest go first).
const KEPT: usize = 64;
/// How often the host's sync state is read again.
const SYNC_EVERY: Duration = Duration::from_mins(1);

type Changes = VecDeque<(DateTime<Utc>, ClockSource)>;

fn sources() -> &'static Mutex<HashMap<String, Changes>> {
    static SOURCES: OnceLock<Mutex<HashMap<String, Changes>>> = OnceLock::new();
    SOURCES.get_or_init(Mutex::default)
}

/// Notes that `camera`'s frame captured at `at` took its time from `source`.
pub(crate) fn note(camera: &str, at: DateTime<Utc>, source: ClockSource) {
    let mut all = sources().lock().unwrap_or_else(PoisonError::into_inner);
    let changes = all.entry(camera.to_string()).or_default();
    if changes.back().is_some_and(|(_, s)| *s == source) {
        return;
    }
    if changes.len() == KEPT {
        changes.pop_front();
    }
    changes.push_back((at, source));
}

/// The source of `camera`'s capture times at `at`: the latest change at or before it (the
/// first one known if `at` is older); `system` for a camera never noted.
pub(crate) fn source_at(camera: &str, at: DateTime<Utc>) -> ClockSource {
    let all = sources().lock().unwrap_or_else(PoisonError::into_inner);
    let Some(changes) = all.get(camera) else {
        return ClockSource::System;
    };
    changes
        .iter()
        .rev()
        .find(|(since, _)| *since <= at)
        .or(changes.front())
        .map_or(ClockSource::System, |(_, s)| *s)
}

const UNKNOWN: u8 = 0;
const SYNCED: u8 = 1;
const UNSYNCED: u8 = 2;

static SYNC: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Starts reading the host's sync state (once per process; later calls do nothing).
pub(crate) fn watch_sync() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("clock-sync".into())
            .spawn(|| {
                loop {
                    SYNC.store(read_sync(), Ordering::Relaxed);
                    std::thread::sleep(SYNC_EVERY);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "The host clock's sync state cannot be watched; events say unsynced.");
        }
    });
}

/// Whether the host's clock was synchronised when last read; false while unknown.
pub(crate) fn synced() -> bool {
    SYNC.load(Ordering::Relaxed) == SYNCED
}

fn read_sync() -> u8 {
    match std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .stderr(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => parse_sync(&String::from_utf8_lossy(&out.stdout)),
        _ => UNKNOWN,
    }
}

fn parse_sync(text: &str) -> u8 {
    match text.trim() {
        "yes" => SYNCED,
        "no" => UNSYNCED,
        _ => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_gets_the_source_in_force_at_its_capture_moment() {
        let cam = "clock-test-cam";
        let t0 = Utc::now();
        let s = |n: i64| t0 + chrono::Duration::seconds(n);
        assert_eq!(source_at(cam, t0), ClockSource::System, "never noted");
        note(cam, s(0), ClockSource::Pipeline);
        note(cam, s(1), ClockSource::Pipeline);
        note(cam, s(2), ClockSource::CameraNtp);
        note(cam, s(3), ClockSource::CameraNtp);
        assert_eq!(source_at(cam, s(1)), ClockSource::Pipeline);
        assert_eq!(source_at(cam, s(2)), ClockSource::CameraNtp);
        assert_eq!(source_at(cam, s(9)), ClockSource::CameraNtp);
        assert_eq!(
            source_at(cam, s(-5)),
            ClockSource::Pipeline,
            "older: the first known"
        );
        assert_eq!(source_at("another-cam", s(1)), ClockSource::System);
    }

    #[test]
    fn timedatectl_s_answer_is_read_and_anything_else_is_unknown() {
        assert_eq!(parse_sync("yes\n"), SYNCED);
        assert_eq!(parse_sync("no"), UNSYNCED);
        assert_eq!(parse_sync(""), UNKNOWN);
        assert_eq!(parse_sync("Failed to connect to bus"), UNKNOWN);
    }
}
