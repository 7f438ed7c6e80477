//! Rules: a passage's facts in, violations out. Pure: no clock, no I/O.

use anpr_config::{Config, Rule, RuleKind};
use anpr_types::{ListMatch, PlateStatus, VehicleClass, ViolationInfo};
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use crate::lists::Lists;

/// What the rules look at in a passage.
#[derive(Debug, Clone, PartialEq)]
pub struct PassageFacts {
    /// Id of the camera that saw the vehicle.
    pub camera: String,
    /// Plate text as read (normalised again before lookup); empty unless `plate_status` is
    /// `read`.
    pub plate: String,
    pub plate_status: PlateStatus,
    /// The read is not sure (the event's `plate.low_confidence`: no plate format fits it
    /// well, or a character of it is doubtful): a list match on it is only to be confirmed.
    pub plate_low_confidence: bool,
    pub vehicle_class: VehicleClass,
    /// Direction of crossing the camera's line, by the camera's direction names; `None` when
    /// the vehicle did not cross it.
    pub direction: Option<String>,
    /// The lane (a zone with `lane = true`) the vehicle was in.
    pub lane: Option<String>,
    /// Names of every zone of the camera the vehicle was in during the passage.
    pub zones: Vec<String>,
    /// Capture time of the passage, UTC.
    pub captured_at: DateTime<Utc>,
}

impl PassageFacts {
    fn in_zone(&self, zone: &str) -> bool {
        self.zones.iter().any(|z| z == zone) || self.lane.as_deref() == Some(zone)
    }
}

/// One violation a rule found in a passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Name of the rule.
    pub rule: String,
    /// `plate-list`, `vehicle-type-ban`, `plate-missing` or `wrong-direction`.
    pub kind: &'static str,
    /// Human-readable reason, e.g. `wanted: stolen vehicle`.
    pub reason: String,
    /// 1 (highest) to 9.
    pub priority: u8,
    /// For plate-list rules: the entry matched, and whether only by a look-alike character.
    pub list: Option<ListMatch>,
}

impl Violation {
    /// The violation part of a violation event found in passage `passage` (`passage_seq`).
    #[must_use]
    pub fn into_info(self, passage: Uuid, passage_seq: u64) -> ViolationInfo {
        ViolationInfo {
            rule: self.rule,
            kind: self.kind.to_string(),
            reason: self.reason,
            priority: self.priority,
            passage,
            passage_seq,
            list: self.list,
        }
    }
}

/// The configured rules, ready to check passages.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    time_zone: Tz,
}

impl RuleSet {
    /// Rules as validated by the config; windows and days are read in `time_zone`.
    #[must_use]
    pub fn new(rules: Vec<Rule>, time_zone: Tz) -> Self {
        Self { rules, time_zone }
    }

    /// The rules of a loaded config, in the site's time zone.
    #[must_use]
    pub fn from_config(cfg: &Config) -> Self {
        Self::new(cfg.rules.clone(), cfg.device.time_zone)
    }

    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every violation of every rule in the passage, in rule order (a plate-list rule gives
    /// one per list that has the plate, in the order of its `lists`).
    #[must_use]
    pub fn check(&self, facts: &PassageFacts, lists: &Lists) -> Vec<Violation> {
        let local = facts.captured_at.with_timezone(&self.time_zone);
        let (time, day) = (local.time(), local.weekday());
        let mut out = Vec::new();
        for rule in &self.rules {
            let applies = rule.applies_to_camera(&facts.camera)
                && rule.zone.as_deref().is_none_or(|z| facts.in_zone(z))
                && (rule.windows.is_empty() || rule.windows.iter().any(|w| w.contains(time)))
                && (rule.days.is_empty() || rule.days.contains(&day));
            if applies {
                check_rule(rule, facts, lists, &mut out);
            }
        }
        out
    }
}

fn check_rule(rule: &Rule, facts: &PassageFacts, lists: &Lists, out: &mut Vec<Violation>) {
    let violation = |reason: String, priority: u8, list: Option<ListMatch>| Violation {
        rule: rule.name.clone(),
        kind: rule.kind.as_str(),
        reason,
        priority,
        list,
    };
    let zone = rule
        .zone
        .as_deref()
        .map(|z| format!(" in zone `{z}`"))
        .unwrap_or_default();
    match rule.kind {
        RuleKind::PlateList => {
            if facts.plate_status != PlateStatus::Read {
                return;
            }
            for name in &rule.lists {
                let Some(list) = lists.get(name) else {
                    continue;
                };
                let Some(hit) = list.lookup(&facts.plate, facts.captured_at) else {
                    continue;
                };
                let entry = hit.entry;
                let what = if entry.reason.is_empty() {
                    "listed"
                } else {
                    &entry.reason
                };
                let read = crate::normalise(&facts.plate);
                let mut doubts = Vec::new();
                if hit.fuzzy {
                    doubts.push(format!(
                        "look-alike match: read {read}, listed {}",
                        entry.plate
                    ));
                }
                if facts.plate_low_confidence {
                    doubts.push(format!("low-confidence read: {read}"));
                }
                let reason = if doubts.is_empty() {
                    format!("{name}: {what}")
                } else {
                    format!("{name}: {what}; {} (to be confirmed)", doubts.join("; "))
                };
                let mut matched = list.to_match(&hit);
                // A read the device is not sure of is not a certain match, even letter for letter.
                matched.fuzzy |= facts.plate_low_confidence;
                out.push(violation(reason, entry.priority, Some(matched)));
            }
        }
        RuleKind::VehicleTypeBan => {
            if rule.classes.contains(&facts.vehicle_class) {
                let windows: Vec<String> = rule.windows.iter().map(ToString::to_string).collect();
                let days: Vec<String> = rule
                    .days
                    .iter()
                    .map(|d| d.to_string().to_lowercase())
                    .collect();
                let mut reason = format!("{} banned{zone}", facts.vehicle_class);
                if !windows.is_empty() {
                    reason = format!("{reason} at {}", windows.join(", "));
                }
                if !days.is_empty() {
                    reason = format!("{reason} on {}", days.join(", "));
                }
                out.push(violation(reason, rule.priority, None));
            }
        }
        RuleKind::PlateMissing => {
            if rule.statuses.contains(&facts.plate_status) {
                let reason = match facts.plate_status {
                    PlateStatus::Absent => "no plate on the vehicle",
                    PlateStatus::Unreadable | PlateStatus::Read => "plate could not be read",
                };
                out.push(violation(format!("{reason}{zone}"), rule.priority, None));
            }
        }
        RuleKind::WrongDirection => {
            if let (Some(dir), Some(allowed)) = (&facts.direction, &rule.allowed_direction)
                && dir != allowed
            {
                let reason = format!("travelling `{dir}` where only `{allowed}` is allowed{zone}");
                out.push(violation(reason, rule.priority, None));
            }
        }
    }
}
