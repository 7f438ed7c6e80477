//! The per-device summary of what arrived: counts, gaps, delays, images, passages and their
//! plates, violations per rule, and what the device says of itself.

use std::collections::BTreeMap;

use anpr_types::{Drops, Health};
use chrono::DateTime;
use rusqlite::params;

use crate::escape::Escaped;
use crate::{CentralError, DeviceStatus, RateLimited, Receiver, Refused, ReportedGap};

/// Key under which violations sent without details (older software) are counted.
pub const UNSPECIFIED_RULE: &str = "unspecified";

/// How the plates of a device's passages came out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlateCounts {
    pub read: u64,
    pub unreadable: u64,
    pub absent: u64,
}

/// Per-device summary of what arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReport {
    pub inventory: String,
    /// Events stored: passages, violations and camera gaps.
    pub events: u64,
    pub max_seq: u64,
    /// Sequence ranges `[from, to]` never received.
    pub gaps: Vec<(u64, u64)>,
    /// Sequence numbers up to this one were stored and later removed by the archive's
    /// retention (`None` when none were): they are not counted as missing.
    pub purged_upto: Option<u64>,
    pub delayed: u64,
    /// Largest delay between capture and arrival, seconds.
    pub max_delay_s: f64,
    /// Evidence images stored.
    pub images: u64,
    /// Evidence images the stored events name that have not arrived (yet).
    pub images_missing: u64,
    /// Events of kind passage.
    pub passages: u64,
    /// Plate statuses of the passages.
    pub plates: PlateCounts,
    /// Violations per rule name ([`UNSPECIFIED_RULE`] for those sent without details).
    pub violations: BTreeMap<String, u64>,
    /// Gaps in the device's live cameras (outages it recovered from), in sequence order.
    pub camera_gaps: Vec<ReportedGap>,
    /// The device's last full health message, if one arrived.
    pub health: Option<Health>,
    /// The device's latest status, from its health or from the broker's last will.
    pub status: Option<DeviceStatus>,
    /// Events refused before storage: not signed by this device's key, or arrived under its
    /// topic naming another device (never acknowledged).
    pub quarantined: Vec<Refused>,
    /// Events that broke this device's hash chain, or were other content under a stored event
    /// id or sequence number (never acknowledged).
    pub chain_breaks: Vec<Refused>,
    /// Messages of this device the rate limit dropped unread (not acknowledged: the device
    /// sends them again).
    pub rate_limited: Option<RateLimited>,
}

impl DeviceReport {
    fn new(inventory: String) -> Self {
        Self {
            inventory,
            events: 0,
            max_seq: 0,
            gaps: Vec::new(),
            purged_upto: None,
            delayed: 0,
            max_delay_s: 0.0,
            images: 0,
            images_missing: 0,
            passages: 0,
            plates: PlateCounts::default(),
            violations: BTreeMap::new(),
            camera_gaps: Vec::new(),
            health: None,
            status: None,
            quarantined: Vec::new(),
            chain_breaks: Vec::new(),
            rate_limited: None,
        }
    }

    /// What the device reported it dropped under its disk quota (zero without health).
    #[must_use]
    pub fn dropped(&self) -> Drops {
        self.health.as_ref().map(|h| h.dropped).unwrap_or_default()
    }

    /// Violations of every rule together.
    #[must_use]
    pub fn violations_total(&self) -> u64 {
        self.violations.values().sum()
    }
}

impl std::fmt::Display for DeviceReport {
    /// One line: counts, gaps, delays, images, passages and violations, what the device
    /// reported of itself, and its status when the broker's last will came after that. Every
    /// text that came from outside (inventory, rule and camera names, status, faults, reasons)
    /// is escaped ([`crate::escape()`]): the line holds no control character.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} events, last seq {}, missing {:?}, delayed {}, largest capture-to-arrival {:.1} s, images {} ({} missing)",
            Escaped(&self.inventory),
            self.events,
            self.max_seq,
            self.gaps,
            self.delayed,
            self.max_delay_s,
            self.images,
            self.images_missing
        )?;
        if let Some(upto) = self.purged_upto {
            write!(f, ", seq 1 to {upto} past retention and purged")?;
        }
        let p = self.plates;
        write!(
            f,
            ", passages {} (plates {} read, {} unreadable, {} absent), violations {}",
            self.passages,
            p.read,
            p.unreadable,
            p.absent,
            self.violations_total()
        )?;
        if !self.violations.is_empty() {
            let per_rule: Vec<String> = self
                .violations
                .iter()
                .map(|(rule, n)| format!("{} {n}", Escaped(rule)))
                .collect();
            write!(f, " ({})", per_rule.join(", "))?;
        }
        if !self.camera_gaps.is_empty() {
            let gaps: Vec<String> = self
                .camera_gaps
                .iter()
                .map(|g| {
                    format!(
                        "{} {} for {:.1} s, {} frames lost",
                        Escaped(&g.camera),
                        g.gap.from.format("%H:%M:%S%.3f"),
                        (g.gap.to - g.gap.from).num_milliseconds() as f64 / 1000.0,
                        g.gap.frames_lost
                    )
                })
                .collect();
            write!(f, ", camera gaps {} ({})", gaps.len(), gaps.join("; "))?;
        }
        if let Some(h) = &self.health {
            let d = h.dropped;
            write!(
                f,
                "; device says: {}, queue {} events + {} images, dropped {} passages / {} violations / {} passage images / {} violation images, clock jumps {}",
                Escaped(&h.status),
                h.queue.pending_events,
                h.queue.pending_evidence,
                d.passages,
                d.violations,
                d.passage_evidence,
                d.violation_evidence,
                h.clock_jumps
            )?;
            for fault in &h.faults {
                write!(
                    f,
                    "; FAULT {}: {}",
                    Escaped(&fault.code),
                    Escaped(&fault.message)
                )?;
            }
        }
        for (what, list) in [
            ("QUARANTINED", &self.quarantined),
            ("CHAIN BREAKS", &self.chain_breaks),
        ] {
            if list.is_empty() {
                continue;
            }
            let shown: Vec<String> = list
                .iter()
                .take(3)
                .map(|r| match r.size {
                    Some(size) if r.seq == 0 => {
                        format!("{} ({size} bytes)", Escaped(&r.reason))
                    }
                    _ => format!("seq {}: {}", r.seq, Escaped(&r.reason)),
                })
                .collect();
            write!(
                f,
                "; {what} {} (not stored, not acknowledged: {}{})",
                list.len(),
                shown.join("; "),
                if list.len() > 3 { "; ..." } else { "" }
            )?;
        }
        if let Some(r) = &self.rate_limited {
            write!(
                f,
                "; RATE-LIMITED {} messages dropped unread (not acknowledged; sent again), {} to {}",
                r.dropped,
                r.first_at.format("%Y-%m-%d %H:%M:%S UTC"),
                r.last_at.format("%Y-%m-%d %H:%M:%S UTC")
            )?;
        }
        if let Some(s) = self.status.as_ref().filter(|s| s.last_will) {
            write!(
                f,
                "; {} since {} (broker's last will)",
                Escaped(&s.status),
                s.at.format("%Y-%m-%d %H:%M:%S UTC")
            )?;
        }
        Ok(())
    }
}

impl Receiver {
    /// What arrived per device, in inventory order.
    pub fn report(&self) -> Result<Vec<DeviceReport>, CentralError> {
        let mut stmt = self
            .conn
            .prepare("SELECT inventory, seq, captured_at, received_at, delayed FROM events ORDER BY inventory, seq")
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })
            .map_err(self.db())?;
        let mut out: Vec<DeviceReport> = Vec::new();
        for row in rows {
            let (inv, seq, cap, rec, delayed) = row.map_err(self.db())?;
            if out.last().is_none_or(|d| d.inventory != inv) {
                let mut d = DeviceReport::new(inv);
                d.purged_upto = self.purged_upto(&d.inventory)?;
                d.max_seq = d.purged_upto.unwrap_or(0);
                out.push(d);
            }
            let d = out.last_mut().expect("pushed above");
            if seq > d.max_seq.saturating_add(1) {
                d.gaps.push((d.max_seq + 1, seq - 1));
            }
            d.max_seq = d.max_seq.max(seq);
            d.events += 1;
            d.delayed += u64::from(delayed);
            if let (Ok(c), Ok(r)) = (
                DateTime::parse_from_rfc3339(&cap),
                DateTime::parse_from_rfc3339(&rec),
            ) {
                d.max_delay_s = d
                    .max_delay_s
                    .max((r - c).num_milliseconds() as f64 / 1000.0);
            }
        }
        for inventory in self.refused_inventories()? {
            out.push(DeviceReport::new(inventory));
        }
        out.sort_by(|a, b| a.inventory.cmp(&b.inventory));
        for d in &mut out {
            d.quarantined = self.quarantined_of(&d.inventory)?;
            d.chain_breaks = self.chain_breaks_of(&d.inventory)?;
            d.rate_limited = self.rate_limited_of(&d.inventory)?;
            self.fill_images(d)?;
            self.fill_kinds(d)?;
            d.camera_gaps = self.camera_gaps_of(&d.inventory)?;
            d.health = self.health(&d.inventory)?;
            d.status = self.status(&d.inventory)?;
        }
        Ok(out)
    }

    fn fill_images(&self, d: &mut DeviceReport) -> Result<(), CentralError> {
        let (named, stored): (i64, i64) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(json_array_length(payload, '$.evidence')), 0),
                        (SELECT COUNT(*) FROM evidence v JOIN events e ON e.event_id = v.event_id WHERE e.inventory = ?1)
                 FROM events WHERE inventory = ?1",
                params![d.inventory],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.db())?;
        d.images = stored as u64;
        d.images_missing = (named - stored).max(0) as u64;
        Ok(())
    }

    /// Passages by plate status, and violations by rule.
    fn fill_kinds(&self, d: &mut DeviceReport) -> Result<(), CentralError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT plate_status, COUNT(*) FROM events WHERE inventory = ?1 AND kind = 'passage'
                 GROUP BY plate_status",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![d.inventory], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.db())?;
        for row in rows {
            let (status, n) = row.map_err(self.db())?;
            d.passages += n;
            match status.as_str() {
                "unreadable" => d.plates.unreadable += n,
                "absent" => d.plates.absent += n,
                _ => d.plates.read += n,
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(rule, ?2), COUNT(*) FROM violations WHERE inventory = ?1 GROUP BY 1",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![d.inventory, UNSPECIFIED_RULE], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.db())?;
        for row in rows {
            let (rule, n) = row.map_err(self.db())?;
            *d.violations.entry(rule).or_default() += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use anpr_types::{EventKind, Fault, PlateStatus};
    use chrono::Utc;

    use crate::Receiver;
    use crate::db::tests::{delivery, health, violation};

    fn store_all(r: &mut Receiver, items: &[&anpr_types::Delivery]) {
        for d in items {
            r.store(d, Utc::now()).unwrap();
        }
    }

    #[test]
    fn a_camera_gap_is_listed_and_counts_as_no_passage() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let before = delivery("INV-A", 1, EventKind::Passage);
        let mut gap = delivery("INV-A", 2, EventKind::CameraGap);
        let from = gap.event.captured_at;
        gap.event.gap = Some(anpr_types::CameraGap {
            from,
            to: from + chrono::Duration::seconds(20),
            frames_lost: 499,
            reason: "no frame for 5.0 s; the stream has stalled".into(),
        });
        let after = delivery("INV-A", 3, EventKind::Passage);
        store_all(&mut r, &[&before, &gap, &after]);
        let report = &r.report().unwrap()[0];
        assert_eq!((report.events, report.passages), (3, 2));
        assert!(report.gaps.is_empty(), "no sequence gap");
        assert_eq!(report.camera_gaps.len(), 1);
        assert_eq!(report.camera_gaps[0].seq, 2);
        assert_eq!(report.camera_gaps[0].camera, "cam1");
        assert_eq!(report.camera_gaps[0].gap.frames_lost, 499);
        let line = report.to_string();
        assert!(
            line.contains("passages 2 (")
                && line.contains("camera gaps 1 (cam1 ")
                && line.contains("for 20.0 s, 499 frames lost)"),
            "{line}"
        );
        assert_eq!(r.camera_gaps_of("INV-B").unwrap(), vec![]);
    }

    #[test]
    fn the_report_counts_passages_by_plate_status_and_violations_by_rule() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let read = delivery("INV-A", 1, EventKind::Passage);
        let mut unreadable = delivery("INV-A", 2, EventKind::Passage);
        unreadable.event.plate.status = PlateStatus::Unreadable;
        let mut absent = delivery("INV-A", 3, EventKind::Passage);
        absent.event.plate.status = PlateStatus::Absent;
        let hot = violation(
            "INV-A",
            4,
            &read,
            "hotlist",
            "plate-list",
            Some(("wanted", 1, "123ABC01", false)),
        );
        let ban = violation("INV-A", 5, &read, "truck-ban", "vehicle-type-ban", None);
        let no_plate = violation("INV-A", 7, &absent, "no-plate", "plate-missing", None);
        let bare = delivery("INV-A", 8, EventKind::Violation);
        store_all(
            &mut r,
            &[
                &read,
                &unreadable,
                &absent,
                &hot,
                &ban,
                &no_plate,
                &bare,
                &hot,
            ],
        );

        let report = &r.report().unwrap()[0];
        assert_eq!((report.events, report.max_seq), (7, 8));
        assert_eq!(report.gaps, vec![(6, 6)]);
        assert_eq!(report.passages, 3);
        assert_eq!(
            (
                report.plates.read,
                report.plates.unreadable,
                report.plates.absent
            ),
            (1, 1, 1)
        );
        let per_rule: Vec<(&str, u64)> = report
            .violations
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            per_rule,
            vec![
                ("hotlist", 1),
                ("no-plate", 1),
                ("truck-ban", 1),
                ("unspecified", 1)
            ]
        );
        assert_eq!(report.violations_total(), 4);
        let line = report.to_string();
        assert!(
            line.contains(
                "passages 3 (plates 1 read, 1 unreadable, 1 absent), violations 4 (hotlist 1, no-plate 1, truck-ban 1, unspecified 1)"
            ),
            "{line}"
        );
    }

    #[test]
    fn the_report_line_keeps_its_former_text_and_adds_passages_and_violations() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let d = delivery("INV-A", 1, EventKind::Passage);
        store_all(&mut r, &[&d]);
        let mut h = health("INV-A", "online");
        h.faults.push(Fault::new("camera", "cam1 stalled"));
        r.store_health("INV-A", &serde_json::to_string(&h).unwrap(), Utc::now())
            .unwrap();
        let line = r.report().unwrap()[0].to_string();
        let delay = line
            .split("largest capture-to-arrival ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap()
            .to_string();
        assert_eq!(
            line,
            format!(
                "INV-A: 1 events, last seq 1, missing [], delayed 0, largest capture-to-arrival {delay} s, images 0 (0 missing), \
                 passages 1 (plates 1 read, 0 unreadable, 0 absent), violations 0; \
                 device says: online, queue 0 events + 0 images, dropped 0 passages / 0 violations / 0 passage images / 0 violation images, clock jumps 0; \
                 FAULT camera: cam1 stalled"
            )
        );
    }

    #[test]
    fn the_report_shows_the_last_will_beside_the_last_full_health() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        store_all(&mut r, &[&delivery("INV-A", 1, EventKind::Passage)]);
        let mut h = health("INV-A", "online");
        h.clock_jumps = 1;
        r.store_health("INV-A", &serde_json::to_string(&h).unwrap(), Utc::now())
            .unwrap();
        r.store_health("INV-A", r#"{"status":"offline"}"#, Utc::now())
            .unwrap();
        let report = &r.report().unwrap()[0];
        assert_eq!(report.health.as_ref().unwrap().clock_jumps, 1);
        let status = report.status.as_ref().unwrap();
        assert!(status.last_will && status.status == "offline");
        let line = report.to_string();
        assert!(
            line.contains("device says: online,") && line.contains("clock jumps 1"),
            "{line}"
        );
        assert!(line.ends_with("(broker's last will)"), "{line}");
        assert!(line.contains("; offline since "), "{line}");
    }
    #[test]
    fn texts_from_devices_are_escaped_in_the_report_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let evil = "X\x1b[31m\nFAKE: 0 events";
        let mut d = delivery("INV-A", 1, EventKind::Passage);
        d.event.camera = evil.into();
        d.event.kind = EventKind::CameraGap;
        d.event.gap = Some(anpr_types::CameraGap {
            from: d.event.captured_at,
            to: d.event.captured_at,
            frames_lost: 1,
            reason: evil.into(),
        });
        let v = violation("INV-A", 2, &d, evil, "plate-list", None);
        store_all(&mut r, &[&d, &v]);
        let mut h = health("INV-A", evil);
        h.faults.push(Fault::new(evil, evil));
        r.store_health("INV-A", &serde_json::to_string(&h).unwrap(), Utc::now())
            .unwrap();
        r.store_health(
            "INV-A",
            &serde_json::json!({ "status": evil }).to_string(),
            Utc::now(),
        )
        .unwrap();
        r.quarantine("INV-A", "t", &d, evil, Utc::now()).unwrap();
        r.quarantine_unread("X\x1b[2J\n", "t", None, evil, 5, Utc::now())
            .unwrap();
        let lines: Vec<String> = r
            .report()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert!(!line.contains(['\x1b', '\n']), "{line:?}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains("X\\u{1b}[31m\\nFAKE: 0 events")),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("X\\u{1b}[2J\\n: 0 events"),
            "{lines:?}"
        );
        assert!(lines[1].contains("(5 bytes)"), "{lines:?}");
    }
}
