//! The fleet's report: per device and in total, what was recorded, acknowledged, stored,
//! duplicated and lost, the images, and the capture-to-stored latency.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use crate::oracle::StoredEvent;
use crate::{DeviceRecording, FleetError};

/// Counts of one device, or of the whole fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Events the queue committed.
    pub recorded: u64,
    /// Of which violations.
    pub violations: u64,
    /// Events the queue marked delivered (its own count).
    pub acknowledged: u64,
    /// Events still undelivered in the queue after the drain.
    pub pending: u64,
    /// Recorded events the central side stored (once each, whatever its copies).
    pub stored: u64,
    /// Stored rows beyond one per event (0 when the receiver deduplicates).
    pub duplicates: u64,
    /// Recorded events the central side does not hold and the device no longer owes (its
    /// queue marked them delivered): a loss.
    pub lost: u64,
    /// Recorded events the central side does not hold and the device still has queued (the
    /// drain ended first): owed, not lost, but not delivered either.
    pub undelivered: u64,
    /// Stored rows of this device that no recording made (0 unless something forged them).
    pub unknown: u64,
    pub images_recorded: u64,
    /// Images the queue marked delivered.
    pub images_acknowledged: u64,
    /// Images stored with the sha256 recorded.
    pub images_stored: u64,
    /// Images stored with another sha256 (0: the receiver checks them).
    pub images_mismatched: u64,
    /// Appends the device could not make (its queue failed).
    pub append_errors: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.recorded += o.recorded;
        self.violations += o.violations;
        self.acknowledged += o.acknowledged;
        self.pending += o.pending;
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.lost += o.lost;
        self.undelivered += o.undelivered;
        self.unknown += o.unknown;
        self.images_recorded += o.images_recorded;
        self.images_acknowledged += o.images_acknowledged;
        self.images_stored += o.images_stored;
        self.images_mismatched += o.images_mismatched;
        self.append_errors += o.append_errors;
    }

    /// Nothing lost, nothing twice, every image stored as recorded.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.undelivered == 0
            && self.duplicates == 0
            && self.unknown == 0
            && self.images_mismatched == 0
            && self.images_stored == self.images_recorded
    }
}

/// One device's line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    pub inventory: String,
    /// The broker it was given, `host:port`.
    pub broker: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub devices: Vec<DeviceReport>,
    pub total: Counts,
    /// Seconds the fleet recorded, and the drain after it.
    pub recorded_s: f64,
    pub drain_s: f64,
    /// Events recorded per second over the recording time.
    pub recorded_per_s: f64,
    /// Events stored per second, from the first stored to the last.
    pub stored_per_s: f64,
    /// Capture-to-stored latency of the stored events, milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

impl FleetReport {
    /// Nothing lost, nothing twice, every image stored as recorded, and the queues empty.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.total.is_clean() && self.total.pending == 0
    }
}

pub(crate) fn build(
    devices: &[DeviceRecording],
    stored: Vec<StoredEvent>,
    recorded_s: f64,
    drain_s: f64,
) -> Result<FleetReport, FleetError> {
    let mut by_device: HashMap<String, Vec<StoredEvent>> = HashMap::new();
    let (mut first, mut last) = (None, None);
    for s in stored {
        first = Some(
            first.map_or(s.received_at, |f: chrono::DateTime<chrono::Utc>| {
                f.min(s.received_at)
            }),
        );
        last = Some(
            last.map_or(s.received_at, |l: chrono::DateTime<chrono::Utc>| {
                l.max(s.received_at)
            }),
        );
        by_device.entry(s.inventory.clone()).or_default().push(s);
    }
    let mut latencies = Vec::new();
    let mut out = Vec::with_capacity(devices.len());
    let mut total = Counts::default();
    for d in devices {
        let counts = device_counts(
            d,
            by_device.remove(&d.inventory).unwrap_or_default(),
            &mut latencies,
        )?;
        total.add(&counts);
        out.push(DeviceReport {
            inventory: d.inventory.clone(),
            broker: d.broker.clone(),
            counts,
        });
    }
    latencies.sort_by(f64::total_cmp);
    let span = match (first, last) {
        (Some(f), Some(l)) => (l - f).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    Ok(FleetReport {
        devices: out,
        total,
        recorded_s,
        drain_s,
        recorded_per_s: total.recorded as f64 / recorded_s.max(1e-3),
        stored_per_s: if span > 0.0 {
            total.stored as f64 / span
        } else {
            0.0
        },
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p99_ms: percentile(&latencies, 0.99),
        latency_max_ms: latencies.last().copied().unwrap_or(0.0),
    })
}

/// The counts of one device: its queue read for what was acknowledged, its recordings
/// compared with the rows stored.
fn device_counts(
    d: &DeviceRecording,
    stored: Vec<StoredEvent>,
    latencies: &mut Vec<f64>,
) -> Result<Counts, FleetError> {
    let queue_err = |source| FleetError::Queue {
        inventory: d.inventory.clone(),
        source,
    };
    let store = anpr_store::Store::open(&d.queue).map_err(queue_err)?;
    let stats = store.stats().map_err(queue_err)?;
    let images_pending = store.pending_evidence_count().map_err(queue_err)?;
    let recorded = &d.recorded;
    let mut c = Counts {
        recorded: recorded.len() as u64,
        acknowledged: stats.delivered,
        pending: stats.pending,
        append_errors: d.append_errors,
        ..Counts::default()
    };
    let mut rows: HashMap<Uuid, Vec<StoredEvent>> = HashMap::new();
    for s in stored {
        rows.entry(s.event_id).or_default().push(s);
    }
    let ids: HashSet<Uuid> = recorded.iter().map(|r| r.event_id).collect();
    c.unknown = rows.keys().filter(|id| !ids.contains(id)).count() as u64;
    for r in recorded {
        if r.kind == anpr_types::EventKind::Violation {
            c.violations += 1;
        }
        c.images_recorded += r.images.len() as u64;
        let Some(copies) = rows.get(&r.event_id) else {
            if store.is_delivered(r.seq).map_err(queue_err)? == Some(false) {
                c.undelivered += 1;
            } else {
                c.lost += 1;
            }
            continue;
        };
        c.stored += 1;
        c.duplicates += copies.len() as u64 - 1;
        let row = &copies[0];
        latencies.push(
            (row.received_at - r.captured_at)
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0,
        );
        for (kind, sha) in &r.images {
            match row.images.iter().find(|i| &i.kind == kind) {
                Some(i) if &i.sha256 == sha => c.images_stored += 1,
                Some(_) => c.images_mismatched += 1,
                None => {}
            }
        }
    }
    c.images_acknowledged = c.images_recorded.saturating_sub(images_pending);
    Ok(c)
}

/// The `q` quantile of sorted `v` (nearest rank), 0 for none.
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

impl fmt::Display for FleetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.total;
        writeln!(
            f,
            "Fleet report: {} devices, recorded for {:.0} s, drained in {:.1} s",
            self.devices.len(),
            self.recorded_s,
            self.drain_s
        )?;
        writeln!(
            f,
            "  events    recorded {} ({} violations), acknowledged {}, still queued {}",
            t.recorded, t.violations, t.acknowledged, t.pending
        )?;
        writeln!(
            f,
            "  stored    {} (duplicates {}, lost {}, not delivered and still queued {}, unknown {})",
            t.stored, t.duplicates, t.lost, t.undelivered, t.unknown
        )?;
        writeln!(
            f,
            "  images    recorded {}, acknowledged {}, stored with matching sha256 {}, mismatched {}",
            t.images_recorded, t.images_acknowledged, t.images_stored, t.images_mismatched
        )?;
        writeln!(
            f,
            "  rate      {:.1} events/s recorded, {:.1} events/s stored",
            self.recorded_per_s, self.stored_per_s
        )?;
        writeln!(
            f,
            "  latency   capture to stored p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.latency_p50_ms, self.latency_p99_ms, self.latency_max_ms
        )?;
        if t.append_errors > 0 {
            writeln!(f, "  appends that failed: {}", t.append_errors)?;
        }
        let bad: Vec<&DeviceReport> = self
            .devices
            .iter()
            .filter(|d| !d.counts.is_clean() || d.counts.pending > 0)
            .collect();
        if bad.is_empty() {
            writeln!(
                f,
                "  verdict   CLEAN: zero loss, zero duplicates, every image stored"
            )?;
        } else {
            writeln!(
                f,
                "  verdict   {} device(s) not clean, the first 20:",
                bad.len()
            )?;
            for d in bad.iter().take(20) {
                let c = &d.counts;
                writeln!(
                    f,
                    "    {} ({}): recorded {}, acknowledged {}, queued {}, stored {}, lost {}, undelivered {}, duplicates {}, images {}/{}",
                    d.inventory,
                    d.broker,
                    c.recorded,
                    c.acknowledged,
                    c.pending,
                    c.stored,
                    c.lost,
                    c.undelivered,
                    c.duplicates,
                    c.images_stored,
                    c.images_recorded
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&v, 0.5) - 50.0).abs() < 1e-9);
        assert!((percentile(&v, 0.99) - 99.0).abs() < 1e-9);
        assert!(percentile(&[], 0.5).abs() < 1e-9);
    }
}
