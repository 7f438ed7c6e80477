//! `[[list]]`, `lists_dir` and `[[rule]]`: the plate lists the device knows, and the rules that
//! turn a passage into violations. Rules are checked here against the cameras, zones and lists
//! they name; the list files themselves are read by the rules crate when the device starts.

use std::path::PathBuf;

use anpr_types::{PlateStatus, VehicleClass};
use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::camera::{Camera, is_name};
use crate::error::{Checker, ConfigError};

/// Priority of a violation when nothing more specific gives one: 1 (highest) to 9.
pub const DEFAULT_PRIORITY: u8 = 5;

/// A plate list the device checks passages against.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// Name rules use and the central side sends updates under, e.g. `wanted`; letters,
    /// digits, '-' and '_' (it becomes a file name in `lists_dir`).
    pub name: String,
    /// CSV file the list starts from (relative to the config file), with the header
    /// `plate,reason,priority,valid_from,valid_to`. Optional: without it the list is empty
    /// until the central side sends one. A newer list received from the central side and
    /// kept in `lists_dir` takes its place.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Priority of the entries whose line leaves `priority` empty, 1 (highest) to 9.
    #[serde(default = "default_priority")]
    pub priority: u8,
}

/// What a rule looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    /// The plate is on one of the named lists (exactly, or but for one look-alike character).
    PlateList,
    /// The vehicle is of a class banned in the zone (optionally only in some hours and days).
    VehicleTypeBan,
    /// The vehicle carries no plate, or one that could not be read.
    PlateMissing,
    /// The vehicle crossed the counting line against the allowed direction.
    WrongDirection,
}

impl RuleKind {
    /// The kind as written in the config and carried in violation events.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::PlateList => "plate-list",
            RuleKind::VehicleTypeBan => "vehicle-type-ban",
            RuleKind::PlateMissing => "plate-missing",
            RuleKind::WrongDirection => "wrong-direction",
        }
    }
}

impl std::fmt::Display for RuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A daily time window in the site's local time, written `"07:00-10:00"`. A window whose end
/// is before its start runs over midnight (`"22:00-06:00"`); `24:00` may end a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeWindow {
    /// First minute inside the window.
    pub start: NaiveTime,
    /// First minute after the window.
    pub end: NaiveTime,
}

impl TimeWindow {
    /// Whether the local time `t` falls inside the window.
    #[must_use]
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl std::str::FromStr for TimeWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let fix = "write it as \"HH:MM-HH:MM\" in the site's local time, e.g. \"07:00-10:00\" or \"22:00-06:00\" over midnight";
        let time = |t: &str| {
            let t = t.trim();
            if t == "24:00" {
                return Some(NaiveTime::MIN);
            }
            NaiveTime::parse_from_str(t, "%H:%M").ok()
        };
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("time window `{s}` does not parse; {fix}"))?;
        let (Some(start), Some(end)) = (time(a), time(b)) else {
            return Err(format!("time window `{s}` does not parse; {fix}"));
        };
        if a.trim() == "24:00" {
            return Err(format!(
                "time window `{s}` starts at 24:00; start it at 00:00"
            ));
        }
        if start == end {
            return Err(format!(
                "time window `{s}` is empty (it starts where it ends); to apply all day leave out `windows`"
            ));
        }
        Ok(TimeWindow { start, end })
    }
}

impl TryFrom<String> for TimeWindow {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let end = if self.end == NaiveTime::MIN {
            "24:00".to_string()
        } else {
            self.end.format("%H:%M").to_string()
        };
        write!(f, "{}-{end}", self.start.format("%H:%M"))
    }
}

/// Parses a weekday name: `mon` or `monday`, any case.
fn weekday(s: &str) -> Option<Weekday> {
    let s = s.trim().to_ascii_lowercase();
    let all = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    all.into_iter()
        .zip(full)
        .find(|(_, name)| s == *name || (s.len() == 3 && name.starts_with(s.as_str())))
        .map(|(d, _)| d)
}

/// Parses day names and ranges (`"mon-fri"`, `"sat"`, `"fri-mon"` over the weekend) into a
/// sorted set of weekdays.
pub(crate) fn parse_days(items: &[String]) -> Result<Vec<Weekday>, String> {
    let mut days: Vec<Weekday> = Vec::new();
    for item in items {
        let bad = || {
            format!(
                "`{item}` is not a day; use mon, tue, wed, thu, fri, sat, sun or a range such as \"mon-fri\""
            )
        };
        let (first, last) = item.split_once('-').unwrap_or((item, item));
        let (first, last) = (
            weekday(first).ok_or_else(bad)?,
            weekday(last).ok_or_else(bad)?,
        );
        let mut d = first;
        loop {
            if !days.contains(&d) {
                days.push(d);
            }
            if d == last {
                break;
            }
            d = d.succ();
        }
    }
    days.sort_by_key(Weekday::num_days_from_monday);
    Ok(days)
}

fn deserialize_days<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    parse_days(&items).map_err(D::Error::custom)
}

/// A rule: what turns a passage into a violation, where and when.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Name of the rule, unique; carried in every violation it raises.
    pub name: String,
    /// `plate-list`, `vehicle-type-ban`, `plate-missing` or `wrong-direction`.
    pub kind: RuleKind,
    /// Ids of the cameras the rule applies to; empty (default): all cameras.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Name of a `[[camera.zone]]`: the rule applies only to vehicles seen in it. Default: the
    /// whole image.
    #[serde(default)]
    pub zone: Option<String>,
    /// For `plate-list`: the `[[list]]` names to check the plate against (at least one).
    #[serde(default)]
    pub lists: Vec<String>,
    /// For `vehicle-type-ban`: the banned classes (`motorcycle`, `car`, `van`, `bus`,
    /// `truck`, `tractor-trailer`, `special`).
    #[serde(default)]
    pub classes: Vec<VehicleClass>,
    /// Local times of day the rule applies, e.g. `["07:00-10:00", "17:00-20:00"]`; empty
    /// (default): all day. Needs `[device] time_zone`.
    #[serde(default)]
    pub windows: Vec<TimeWindow>,
    /// Local weekdays the rule applies, e.g. `["mon-fri"]` or `["sat", "sun"]`; empty
    /// (default): every day. The day is that of the capture time. Needs `[device] time_zone`.
    #[serde(default, deserialize_with = "deserialize_days")]
    pub days: Vec<Weekday>,
    /// For `wrong-direction`: the one direction allowed, one of the camera's `directions`.
    #[serde(default)]
    pub allowed_direction: Option<String>,
    /// For `plate-missing`: `absent` and/or `unreadable`. Default: both.
    #[serde(default = "default_statuses")]
    pub statuses: Vec<PlateStatus>,
    /// Priority of the violations raised, 1 (highest) to 9; default 5. Not for `plate-list`
    /// rules, whose priority comes from the list entry (or the list's `priority`).
    #[serde(default = "default_priority")]
    pub priority: u8,
}

impl Rule {
    /// Whether the rule applies to passages of camera `id`.
    #[must_use]
    pub fn applies_to_camera(&self, id: &str) -> bool {
        self.cameras.is_empty() || self.cameras.iter().any(|c| c == id)
    }
}

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

fn default_statuses() -> Vec<PlateStatus> {
    vec![PlateStatus::Absent, PlateStatus::Unreadable]
}

pub(crate) fn validate_lists(lists: &[ListConfig], c: &Checker<'_>) -> Result<(), ConfigError> {
    for (i, list) in lists.iter().enumerate() {
        if !is_name(&list.name) {
            return Err(c.invalid(
                &format!("list[{i}].name"),
                "every list needs a name of letters, digits, '-' or '_' (it becomes a file name in lists_dir)",
            ));
        }
        if lists[..i].iter().any(|o| o.name == list.name) {
            return Err(c.invalid(
                &format!("list[{i}].name"),
                format!(
                    "a list named `{}` is already declared; give each [[list]] its own name",
                    list.name
                ),
            ));
        }
        if !(1..=9).contains(&list.priority) {
            return Err(c.invalid(
                &format!("list[{i}].priority"),
                "must be between 1 (highest) and 9",
            ));
        }
    }
    Ok(())
}

/// The keys only one kind of rule takes, and that kind.
const KIND_KEYS: [(&str, RuleKind); 4] = [
    ("lists", RuleKind::PlateList),
    ("classes", RuleKind::VehicleTypeBan),
    ("statuses", RuleKind::PlateMissing),
    ("allowed_direction", RuleKind::WrongDirection),
];

pub(crate) fn validate_rules(
    rules: &[Rule],
    cameras: &[Camera],
    lists: &[ListConfig],
    c: &Checker<'_>,
) -> Result<(), ConfigError> {
    let camera_ids = || {
        cameras
            .iter()
            .map(|c| format!("`{}`", c.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, rule) in rules.iter().enumerate() {
        let key = |k: &str| format!("rule[{i}].{k}");
        if rule.name.trim().is_empty() {
            return Err(c.invalid(
                &key("name"),
                "every rule needs a name (it is carried in its violations)",
            ));
        }
        if rules[..i].iter().any(|o| o.name == rule.name) {
            return Err(c.invalid(
                &key("name"),
                format!(
                    "a rule named `{}` is already defined; give each [[rule]] its own name",
                    rule.name
                ),
            ));
        }
        for (k, kind) in KIND_KEYS {
            if kind != rule.kind && c.given(&key(k)) {
                return Err(c.invalid(
                    &key(k),
                    format!(
                        "`{k}` belongs to `{kind}` rules, and this rule is `{}`; remove the key or change the kind",
                        rule.kind
                    ),
                ));
            }
        }
        for id in &rule.cameras {
            if !cameras.iter().any(|cam| &cam.id == id) {
                return Err(c.invalid(
                    &key("cameras"),
                    format!(
                        "names camera `{id}`, which does not exist; use one of {}",
                        camera_ids()
                    ),
                ));
            }
        }
        let applies: Vec<&Camera> = cameras
            .iter()
            .filter(|cam| rule.applies_to_camera(&cam.id))
            .collect();
        // The cameras where the rule can fire: those applied to that have its zone.
        let mut scope = applies.clone();
        if let Some(zone) = &rule.zone {
            let missing: Vec<&str> = applies
                .iter()
                .filter(|cam| cam.zone(zone).is_none())
                .map(|cam| cam.id.as_str())
                .collect();
            if rule.cameras.is_empty() {
                scope.retain(|cam| cam.zone(zone).is_some());
                if scope.is_empty() {
                    return Err(c.invalid(
                        &key("zone"),
                        format!("names zone `{zone}`, which no camera has; add a [[camera.zone]] named `{zone}` or fix the name"),
                    ));
                }
            } else if let Some(cam) = missing.first() {
                return Err(c.invalid(
                    &key("zone"),
                    format!("names zone `{zone}`, which camera `{cam}` does not have; add a [[camera.zone]] named `{zone}` to it, or fix the name or the rule's cameras"),
                ));
            }
        }
        if (!rule.windows.is_empty() || !rule.days.is_empty()) && !c.given("device.time_zone") {
            let k = if rule.windows.is_empty() {
                "days"
            } else {
                "windows"
            };
            return Err(c.invalid(
                &key(k),
                "times and days are in the site's local time: set `time_zone` in [device] (an IANA name such as \"Asia/Almaty\", or \"UTC\")",
            ));
        }
        if rule.kind == RuleKind::PlateList {
            if c.given(&key("priority")) {
                return Err(c.invalid(
                    &key("priority"),
                    "a plate-list rule takes its priority from the list entry; set `priority` in the list file or in its [[list]] section",
                ));
            }
        } else if !(1..=9).contains(&rule.priority) {
            return Err(c.invalid(&key("priority"), "must be between 1 (highest) and 9"));
        }
        match rule.kind {
            RuleKind::PlateList => {
                if rule.lists.is_empty() {
                    return Err(c.invalid(
                        &key("lists"),
                        "a plate-list rule needs `lists = [\"name\", ...]` naming at least one [[list]]",
                    ));
                }
                for name in &rule.lists {
                    if !lists.iter().any(|l| &l.name == name) {
                        return Err(c.invalid(
                            &key("lists"),
                            format!("names list `{name}`, which is not declared; add a [[list]] named `{name}` or fix the name"),
                        ));
                    }
                }
            }
            RuleKind::VehicleTypeBan => {
                if rule.classes.is_empty() {
                    return Err(c.invalid(
                        &key("classes"),
                        "a vehicle-type-ban rule needs `classes = [...]` naming at least one vehicle class, e.g. [\"truck\", \"tractor-trailer\"]",
                    ));
                }
                if rule.classes.contains(&VehicleClass::Unknown) {
                    return Err(c.invalid(
                        &key("classes"),
                        "`unknown` is not a vehicle class that can be banned; use motorcycle, car, van, bus, truck, tractor-trailer or special",
                    ));
                }
            }
            RuleKind::PlateMissing => {
                if rule.statuses.is_empty() || rule.statuses.contains(&PlateStatus::Read) {
                    return Err(c.invalid(
                        &key("statuses"),
                        "a plate-missing rule takes `statuses` from \"absent\" and \"unreadable\" (default both)",
                    ));
                }
            }
            RuleKind::WrongDirection => {
                let Some(allowed) = &rule.allowed_direction else {
                    return Err(c.invalid(
                        &key("allowed_direction"),
                        "a wrong-direction rule needs `allowed_direction`, one of the camera's `directions` (e.g. \"towards\")",
                    ));
                };
                for cam in &scope {
                    if cam.line.is_none() {
                        return Err(c.invalid(
                            &key("allowed_direction"),
                            format!("camera `{}` has no counting line, so its passages have no direction; give it `line = [[x1, y1], [x2, y2]]`, or limit the rule with `cameras`", cam.id),
                        ));
                    }
                    if !cam.directions.contains(allowed) {
                        return Err(c.invalid(
                            &key("allowed_direction"),
                            format!(
                                "`{allowed}` is not a direction of camera `{}`; use \"{}\" or \"{}\"",
                                cam.id, cam.directions[0], cam.directions[1]
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Where lists received from the central side are kept by default: `lists` beside the queue.
pub(crate) fn default_lists_dir(queue: &std::path::Path) -> PathBuf {
    queue
        .parent()
        .map_or_else(|| PathBuf::from("lists"), |p| p.join("lists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn a_morning_window_holds_its_start_and_not_its_end() {
        let w: TimeWindow = "07:00-10:00".parse().unwrap();
        assert!(w.contains(at(7, 0)));
        assert!(w.contains(at(9, 59)));
        assert!(!w.contains(at(10, 0)));
        assert!(!w.contains(at(6, 59)));
        assert_eq!(w.to_string(), "07:00-10:00");
    }

    #[test]
    fn a_night_window_runs_over_midnight_and_24_00_ends_a_day() {
        let w: TimeWindow = "22:00-06:00".parse().unwrap();
        assert!(w.contains(at(23, 0)) && w.contains(at(0, 0)) && w.contains(at(5, 59)));
        assert!(!w.contains(at(6, 0)) && !w.contains(at(12, 0)));
        let w: TimeWindow = "18:00-24:00".parse().unwrap();
        assert!(w.contains(at(23, 59)) && !w.contains(at(0, 0)) && !w.contains(at(17, 0)));
        assert_eq!(w.to_string(), "18:00-24:00");
    }

    #[test]
    fn malformed_or_empty_windows_are_refused_with_the_form_to_use() {
        for bad in ["7-10", "07:00", "25:00-26:00", "07:00-07:00", "24:00-02:00"] {
            let err = bad.parse::<TimeWindow>().unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        assert!("07:00-10:00".parse::<TimeWindow>().is_ok());
    }

    #[test]
    fn day_ranges_expand_and_run_over_the_weekend() {
        let days = parse_days(&["mon-fri".into()]).unwrap();
        assert_eq!(days.len(), 5);
        let days = parse_days(&["fri-mon".into(), "Sunday".into()]).unwrap();
        assert_eq!(
            days,
            [Weekday::Mon, Weekday::Fri, Weekday::Sat, Weekday::Sun]
        );
        assert!(
            parse_days(&["funday".into()])
                .unwrap_err()
                .contains("funday")
        );
    }
}
