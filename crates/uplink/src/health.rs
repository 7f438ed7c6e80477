//! The device's health as the uplink sees and says it: the wall clock watched against the
//! monotonic clock ([`ClockWatch`]), new drops and clock jumps in the queue raised as faults,
//! and when to publish the retained health message (at once on each connection and on every
//! change of the faults, every 10 s otherwise). No I/O: the session loop reads the queue's
//! figures through the queue thread and publishes what [`HealthState::message`] makes.

use std::time::{Duration, Instant};

use anpr_types::{ChainHead, Drops, HEALTH_SCHEMA, Health, QueueHealth};
use chrono::{DateTime, Utc};

use crate::config::UplinkConfig;
use crate::faults::FaultBoard;

/// How often health is looked at, and published at the latest.
pub(crate) const HEALTH_CHECK: Duration = Duration::from_secs(1);
pub(crate) const HEALTH_PERIOD: Duration = Duration::from_secs(10);
/// A wall-clock step larger than this (against the monotonic clock) is a clock jump.
const CLOCK_JUMP_S: f64 = 2.0;

/// Detects steps of the wall clock by comparing it with the monotonic clock (sans-IO: the
/// caller passes both readings).
#[derive(Debug, Clone)]
pub struct ClockWatch {
    last: Option<(Instant, DateTime<Utc>)>,
}

impl Default for ClockWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockWatch {
    #[must_use]
    pub fn new() -> Self {
        Self { last: None }
    }

    /// Takes a pair of readings; returns the step in seconds (positive: the wall clock jumped
    /// forward) when the wall clock moved more than 2 s away from the monotonic clock since
    /// the previous pair.
    pub fn observe(&mut self, mono: Instant, wall: DateTime<Utc>) -> Option<f64> {
        let prev = self.last.replace((mono, wall));
        let (m0, w0) = prev?;
        let mono_s = mono.duration_since(m0).as_secs_f64();
        let wall_s = (wall - w0).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        let step = wall_s - mono_s;
        (step.abs() > CLOCK_JUMP_S).then_some(step)
    }
}

/// The queue's figures for a health message, read in one request by the queue thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueSnapshot {
    pub pending_events: u64,
    pub pending_evidence: u64,
    pub bytes_used: u64,
    pub drops: Drops,
    pub clock_jumps: u64,
    /// The head of the queue's journal chain (after the clock jump journaled in the same
    /// request, if any).
    pub journal_head: Option<ChainHead>,
}

/// A step of the wall clock, to journal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ClockStep {
    pub before: DateTime<Utc>,
    pub after: DateTime<Utc>,
    pub step_s: f64,
}

/// What the uplink last knew of the device's health.
#[derive(Debug)]
pub(crate) struct HealthState {
    clock: ClockWatch,
    checked: Option<Instant>,
    /// A clock step seen and not yet journaled (kept until the queue took it).
    unrecorded: Option<ClockStep>,
    /// When health was last published on this connection.
    published: Option<Instant>,
    /// Drop counters and clock jumps as last seen; the first snapshot is the baseline (what
    /// was counted before this start is in every message but not raised again).
    seen: Option<(Drops, u64)>,
    /// The fault board's generation last published.
    faults_said: u64,
    /// Something happened that no published health message has said yet.
    unsaid: bool,
    last: Option<QueueSnapshot>,
}

impl HealthState {
    pub fn new() -> Self {
        Self {
            clock: ClockWatch::new(),
            checked: None,
            unrecorded: None,
            published: None,
            seen: None,
            faults_said: u64::MAX,
            unsaid: false,
            last: None,
        }
    }

    /// A connection came up: health goes out at the next look.
    pub fn connected(&mut self) {
        self.published = None;
        self.checked = None;
    }

    /// Whether it is time to look (once a second).
    pub fn check_due(&self, now: Instant) -> bool {
        self.checked
            .is_none_or(|at| now.saturating_duration_since(at) >= HEALTH_CHECK)
    }

    /// Looks at the clocks; returns the clock step to journal, if one is waiting.
    pub fn look_at_clock(&mut self, mono: Instant, wall: DateTime<Utc>) -> Option<ClockStep> {
        self.checked = Some(mono);
        if let Some(step_s) = self.clock.observe(mono, wall) {
            let before = wall - chrono::Duration::microseconds((step_s * 1e6) as i64);
            tracing::warn!(step_s, "The wall clock jumped; recorded in the journal.");
            self.unrecorded = Some(ClockStep {
                before,
                after: wall,
                step_s,
            });
        }
        self.unrecorded
    }

    /// The queue journaled the clock step.
    pub fn recorded(&mut self) {
        self.unrecorded = None;
    }

    /// Takes the queue's figures: drops and clock jumps counted since the last look are
    /// raised as faults.
    pub fn observe(&mut self, snap: QueueSnapshot, faults: &FaultBoard) {
        let d = snap.drops;
        if let Some((drops, jumps)) = self.seen {
            if drops != d {
                faults.raise_latest(
                    "queue-quota",
                    &format!(
                        "disk quota reached: dropped so far {} passages, {} violations, {} passage images, {} violation images",
                        d.passages, d.violations, d.passage_evidence, d.violation_evidence
                    ),
                );
            }
            if jumps != snap.clock_jumps {
                faults.raise_latest(
                    "clock-jump",
                    &format!(
                        "the wall clock jumped ({} jumps recorded in the journal)",
                        snap.clock_jumps
                    ),
                );
            }
        }
        self.seen = Some((d, snap.clock_jumps));
        self.last = Some(snap);
    }

    /// Whether to publish now: on a new connection, when the faults changed since the last
    /// message, and every 10 s.
    pub fn should_publish(&mut self, now: Instant, connected: bool, generation: u64) -> bool {
        self.unsaid |= generation != self.faults_said;
        let due = self
            .published
            .is_none_or(|at| now.saturating_duration_since(at) >= HEALTH_PERIOD);
        connected && self.last.is_some() && (self.unsaid || due)
    }

    /// A message made at `generation` of the faults was published.
    pub fn published(&mut self, now: Instant, generation: u64) {
        self.published = Some(now);
        self.unsaid = false;
        self.faults_said = generation;
    }

    /// Whether the central side has been told everything up to `generation` of the faults
    /// on this connection.
    pub fn is_said(&self, generation: u64) -> bool {
        self.published.is_some() && !self.unsaid && self.faults_said == generation
    }

    /// The health message as of the last snapshot (none before the first one).
    pub fn message(&self, cfg: &UplinkConfig, faults: &FaultBoard, status: &str) -> Option<Health> {
        let snap = self.last.as_ref()?;
        Some(Health {
            schema: HEALTH_SCHEMA.into(),
            status: status.into(),
            inventory: cfg.topics.inventory().to_string(),
            at: Utc::now(),
            queue: QueueHealth {
                pending_events: snap.pending_events,
                pending_evidence: snap.pending_evidence,
                bytes_used: snap.bytes_used,
                quota_bytes: cfg.quota_bytes,
            },
            dropped: snap.drops,
            clock_jumps: snap.clock_jumps,
            faults: faults.active(),
            journal_head: snap.journal_head.clone(),
            models: cfg.models.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(passages: u64, jumps: u64) -> QueueSnapshot {
        QueueSnapshot {
            pending_events: 3,
            pending_evidence: 1,
            bytes_used: 4096,
            drops: Drops {
                passages,
                ..Drops::default()
            },
            clock_jumps: jumps,
            journal_head: Some(ChainHead {
                seq: jumps,
                hash: format!("{jumps:064x}"),
            }),
        }
    }

    #[test]
    fn a_wall_clock_that_follows_the_monotonic_clock_is_no_jump() {
        let mut w = ClockWatch::new();
        let (m, t) = (Instant::now(), Utc::now());
        assert_eq!(w.observe(m, t), None);
        let m1 = m + Duration::from_secs(5);
        assert_eq!(
            w.observe(m1, t + chrono::Duration::milliseconds(5_500)),
            None
        );
    }

    #[test]
    fn steps_back_and_forward_are_measured() {
        let mut w = ClockWatch::new();
        let (m, t) = (Instant::now(), Utc::now());
        w.observe(m, t);
        let step = w
            .observe(m + Duration::from_secs(1), t - chrono::Duration::hours(1))
            .unwrap();
        assert!((step + 3601.0).abs() < 0.01, "{step}");
        let t2 = t - chrono::Duration::hours(1);
        let step = w
            .observe(
                m + Duration::from_secs(2),
                t2 + chrono::Duration::seconds(61),
            )
            .unwrap();
        assert!((step - 60.0).abs() < 0.01, "{step}");
    }

    #[test]
    fn a_clock_step_waits_to_be_journaled_until_the_queue_took_it() {
        let mut h = HealthState::new();
        let (m, t) = (Instant::now(), Utc::now());
        assert_eq!(h.look_at_clock(m, t), None);
        assert!(!h.check_due(m + Duration::from_millis(500)));
        let m1 = m + HEALTH_CHECK;
        assert!(h.check_due(m1));
        let step = h
            .look_at_clock(m1, t + chrono::Duration::seconds(61))
            .unwrap();
        assert!((step.step_s - 60.0).abs() < 0.01);
        assert_eq!(step.after - step.before, chrono::Duration::seconds(60));
        let m2 = m1 + HEALTH_CHECK;
        let again = h.look_at_clock(m2, t + chrono::Duration::seconds(62));
        assert_eq!(again, Some(step), "not journaled yet: offered again");
        h.recorded();
        let m3 = m2 + HEALTH_CHECK;
        assert_eq!(h.look_at_clock(m3, t + chrono::Duration::seconds(63)), None);
    }

    #[test]
    fn drops_and_jumps_counted_before_the_start_are_reported_but_only_new_ones_raised() {
        let faults = FaultBoard::default();
        let mut h = HealthState::new();
        h.observe(snap(5, 2), &faults);
        assert!(faults.active().is_empty(), "the first look is the baseline");
        h.observe(snap(5, 2), &faults);
        assert!(faults.active().is_empty());
        h.observe(snap(6, 3), &faults);
        let codes: Vec<String> = faults.active().into_iter().map(|f| f.code).collect();
        assert_eq!(codes, ["queue-quota", "clock-jump"]);
        let cfg = UplinkConfig::for_test(std::path::Path::new("/nonexistent"), 1);
        let m = h.message(&cfg, &faults, "online").unwrap();
        assert_eq!((m.dropped.passages, m.clock_jumps), (6, 3));
        assert_eq!(m.faults.len(), 2);
        assert_eq!(
            m.journal_head,
            snap(6, 3).journal_head,
            "the last journal head read"
        );
    }

    #[test]
    fn health_goes_out_on_each_connection_on_every_fault_change_and_every_ten_seconds() {
        let faults = FaultBoard::default();
        let mut h = HealthState::new();
        let t0 = Instant::now();
        let g = faults.generation();
        assert!(
            !h.should_publish(t0, true, g),
            "nothing read from the queue yet"
        );
        h.observe(snap(0, 0), &faults);
        assert!(!h.should_publish(t0, false, g), "not while disconnected");
        assert!(h.should_publish(t0, true, g));
        h.published(t0, g);
        assert!(h.is_said(g));
        assert!(!h.should_publish(t0 + Duration::from_secs(9), true, g));
        assert!(h.should_publish(t0 + HEALTH_PERIOD, true, g), "periodic");
        h.published(t0 + HEALTH_PERIOD, g);
        faults.set("camera", "cam1", "down");
        let g1 = faults.generation();
        assert!(!h.is_said(g1));
        assert!(
            h.should_publish(t0 + HEALTH_PERIOD, true, g1),
            "a new fault at once"
        );
        h.published(t0 + HEALTH_PERIOD, g1);
        h.connected();
        assert!(!h.is_said(g1), "not said on this connection");
        assert!(
            h.should_publish(t0 + HEALTH_PERIOD, true, g1),
            "on each connection"
        );
    }
}
