//! Rules and lists as the device uses them: a config file with list files on disk, passages
//! checked against it, and list updates kept across a restart.

use std::path::{Path, PathBuf};

use anpr_rules::{
    ListCommand, ListError, ListProblem, Lists, PassageFacts, RuleSet, Violation, kept_path,
};
use anpr_trust::SigningKey;
use anpr_types::{PlateStatus, VehicleClass};
use chrono::{DateTime, Utc};

const CONFIG: &str = r#"
[device]
inventory = "KZ-ICD-0001"
profile = "stationary"
coordinates = [43.238, 76.945]
time_zone = "Asia/Almaty"

[[camera]]
id = "cam1"
uri = "cam1.mp4"
line = [[0.0, 0.6], [1.0, 0.6]]

[[camera.zone]]
name = "lane-1"
polygon = [[0.0, 0.3], [0.5, 0.3], [0.5, 1.0], [0.0, 1.0]]
lane = true

[[camera.zone]]
name = "centre"
polygon = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]

[[camera]]
id = "cam2"
uri = "cam2.mp4"

[models]

[storage]
queue = "var/queue.sqlite"

[uplink]
broker = "mqtt://127.0.0.1:1883"
allow_plaintext = true

[[list]]
name = "wanted"
file = "wanted.csv"
priority = 2

[[list]]
name = "tolls"

[[rule]]
name = "listed"
kind = "plate-list"
lists = ["wanted", "tolls"]

[[rule]]
name = "rush-hour-trucks"
kind = "vehicle-type-ban"
cameras = ["cam1"]
zone = "centre"
classes = ["truck", "tractor-trailer"]
windows = ["07:00-10:00"]
days = ["mon-fri"]
priority = 3

[[rule]]
name = "no-plate"
kind = "plate-missing"
cameras = ["cam2"]

[[rule]]
name = "one-way"
kind = "wrong-direction"
cameras = ["cam1"]
zone = "lane-1"
allowed_direction = "towards"
priority = 2
"#;

const WANTED: &str = "plate,reason,priority,valid_from,valid_to
123ABC01,stolen vehicle,1,,
777KZA02,unpaid fines,,,
B0X123,,4,,
999XYZ09,bad priority,zero,,
";

struct Site {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn site() -> Site {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("device.toml"), CONFIG).expect("config written");
    std::fs::write(dir.path().join("wanted.csv"), WANTED).expect("list written");
    let config = dir.path().join("device.toml");
    Site { _dir: dir, config }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// A Monday, 08:30 in Almaty (UTC+5).
const MONDAY_RUSH: &str = "2025-06-02T03:30:00Z";

fn facts(camera: &str) -> PassageFacts {
    PassageFacts {
        camera: camera.into(),
        plate: "999ZZZ09".into(),
        plate_status: PlateStatus::Read,
        plate_low_confidence: false,
        vehicle_class: VehicleClass::Car,
        direction: None,
        lane: None,
        zones: Vec::new(),
        captured_at: utc(MONDAY_RUSH),
    }
}

/// The device's inventory in `CONFIG`.
const INVENTORY: &str = "KZ-ICD-0001";

/// The central side's signing key; the device trusts its public half.
fn central() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// An update signed by the central key for the device of `CONFIG`.
fn update(name: &str, version: u64, csv: &str) -> Vec<u8> {
    ListCommand::signed(name, version, csv, INVENTORY, &central()).to_json()
}

fn load(site: &Site) -> (anpr_config::Config, Lists, Vec<ListProblem>, RuleSet) {
    load_trusting(site, &central())
}

/// Loads the site on a device that trusts `central`'s public half.
fn load_trusting(
    site: &Site,
    central: &SigningKey,
) -> (anpr_config::Config, Lists, Vec<ListProblem>, RuleSet) {
    let cfg = anpr_config::load(&site.config).expect("the config loads");
    let loaded = Lists::load(&cfg, &central.verifying_key()).expect("the lists load");
    let rules = RuleSet::from_config(&cfg);
    (cfg, loaded.lists, loaded.problems, rules)
}

fn kinds(v: &[Violation]) -> Vec<(&str, &str)> {
    v.iter().map(|v| (v.rule.as_str(), v.kind)).collect()
}

#[test]
fn lists_load_from_their_files_and_malformed_lines_are_reported_by_file_and_line() {
    let site = site();
    let (_, lists, problems, _) = load(&site);
    assert_eq!(
        lists.versions(),
        [("tolls".into(), 0), ("wanted".into(), 0)]
    );
    assert_eq!(lists.get("wanted").unwrap().len(), 3);
    assert_eq!(problems.len(), 1);
    let msg = problems[0].to_string();
    assert!(msg.contains("wanted.csv, line 5: priority `zero`"), "{msg}");
    assert!(msg.contains("the others loaded"), "{msg}");
}

#[test]
fn a_missing_list_file_stops_the_start_naming_the_file() {
    let site = site();
    std::fs::remove_file(site.config.with_file_name("wanted.csv")).unwrap();
    let cfg = anpr_config::load(&site.config).unwrap();
    let err = Lists::load(&cfg, &central().verifying_key()).unwrap_err();
    assert!(matches!(err, ListError::Read { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("plate list `wanted`") && msg.contains("wanted.csv"),
        "{msg}"
    );
    assert!(msg.contains("check `file`"), "{msg}");
}

#[test]
fn a_listed_plate_is_a_violation_with_the_entry_and_list_version() {
    let site = site();
    let (_, lists, _, rules) = load(&site);
    let mut f = facts("cam2");
    f.plate = "123 abc 01".into();
    let v = rules.check(&f, &lists);
    assert_eq!(kinds(&v), [("listed", "plate-list")]);
    assert_eq!(v[0].reason, "wanted: stolen vehicle");
    assert_eq!(v[0].priority, 1);
    let m = v[0].list.as_ref().unwrap();
    assert_eq!(
        (m.name.as_str(), m.version, m.entry.as_str(), m.fuzzy),
        ("wanted", 0, "123ABC01", false)
    );
    f.plate = "777KZA02".into();
    assert_eq!(
        rules.check(&f, &lists)[0].priority,
        2,
        "the list's priority"
    );
}

#[test]
fn a_read_one_look_alike_away_is_a_weaker_match_that_says_so() {
    let site = site();
    let (_, lists, _, rules) = load(&site);
    let mut f = facts("cam2");
    f.plate = "BOX123".into();
    let v = rules.check(&f, &lists);
    assert_eq!(v.len(), 1);
    assert!(v[0].list.as_ref().unwrap().fuzzy);
    assert_eq!(
        v[0].reason,
        "wanted: listed; look-alike match: read BOX123, listed B0X123 (to be confirmed)"
    );
}

#[test]
fn a_low_confidence_read_on_a_list_fires_only_as_a_match_to_be_confirmed() {
    let site = site();
    let (_, lists, _, rules) = load(&site);
    let mut f = facts("cam2");
    f.plate = "123ABC01".into();
    f.plate_low_confidence = true;
    let v = rules.check(&f, &lists);
    assert_eq!(
        kinds(&v),
        [("listed", "plate-list")],
        "a wanted car is not missed"
    );
    let m = v[0].list.as_ref().unwrap();
    assert_eq!(
        (m.entry.as_str(), m.fuzzy),
        ("123ABC01", true),
        "not a certain match"
    );
    assert_eq!(
        v[0].reason,
        "wanted: stolen vehicle; low-confidence read: 123ABC01 (to be confirmed)"
    );
    f.plate = "BOX123".into();
    let v = rules.check(&f, &lists);
    assert_eq!(
        v[0].reason,
        "wanted: listed; look-alike match: read BOX123, listed B0X123; low-confidence read: BOX123 (to be confirmed)"
    );
    assert!(v[0].list.as_ref().unwrap().fuzzy);
}

#[test]
fn an_unread_plate_is_not_looked_up_but_is_missing_where_that_rule_applies() {
    let site = site();
    let (_, lists, _, rules) = load(&site);
    let mut f = facts("cam2");
    f.plate = "123ABC01".into();
    f.plate_status = PlateStatus::Unreadable;
    let v = rules.check(&f, &lists);
    assert_eq!(kinds(&v), [("no-plate", "plate-missing")]);
    assert_eq!(v[0].reason, "plate could not be read");
    assert_eq!(v[0].priority, 5);
    f.plate_status = PlateStatus::Absent;
    assert_eq!(rules.check(&f, &lists)[0].reason, "no plate on the vehicle");
    f.camera = "cam1".into();
    assert!(
        rules.check(&f, &lists).is_empty(),
        "the rule is for cam2 only"
    );
}

#[test]
fn a_truck_in_the_centre_at_rush_hour_on_a_weekday_is_banned() {
    let site = site();
    let (_, lists, _, rules) = load(&site);
    let mut f = facts("cam1");
    f.vehicle_class = VehicleClass::Truck;
    f.zones = vec!["centre".into()];
    let v = rules.check(&f, &lists);
    assert_eq!(kinds(&v), [("rush-hour-trucks", "vehicle-type-ban")]);
    assert_eq!(
        v[0].reason,
        "truck banned in zone `centre` at 07:00-10:00 on mon, tue, wed, thu, fri"
    );
    assert_eq!(v[0].priority, 3);
    // 10:00 local is outside the window; so is the same hour on a Saturday.
    f.captured_at = utc("2025-06-02T05:00:00Z");
    assert!(rules.check(&f, &lists).is_empty());
    f.captured_at = utc("2025-06-07T03:30:00Z");
    assert!(rules.check(&f, &lists).is_empty());
    // Outside the zone, or a car, or on the other camera: no ban.
    let mut g = facts("cam1");
    g.vehicle_class = VehicleClass::Truck;
    assert!(rules.check(&g, &lists).is_empty());
    g.zones = vec!["centre".into()];
    g.vehicle_class = VehicleClass::Car;
    assert!(rules.check(&g, &lists).is_empty());
    g.vehicle_class = VehicleClass::Truck;
    g.camera = "cam2".into();
    assert!(rules.check(&g, &lists).is_empty());
}

#[test]
fn crossing_against_the_allowed_direction_in_the_lane_is_wrong_direction() {
    let site = site();
    let (_, lists, _, rules) = load(&site);
    let mut f = facts("cam1");
    f.lane = Some("lane-1".into());
    f.direction = Some("away".into());
    let v = rules.check(&f, &lists);
    assert_eq!(kinds(&v), [("one-way", "wrong-direction")]);
    assert_eq!(
        v[0].reason,
        "travelling `away` where only `towards` is allowed in zone `lane-1`"
    );
    f.direction = Some("towards".into());
    assert!(rules.check(&f, &lists).is_empty());
    f.direction = None;
    assert!(
        rules.check(&f, &lists).is_empty(),
        "no crossing, no direction"
    );
    f.direction = Some("away".into());
    f.lane = None;
    assert!(rules.check(&f, &lists).is_empty(), "outside the lane");
}

#[test]
fn one_passage_can_break_several_rules_reported_in_rule_order() {
    let site = site();
    let (_, lists, _, rules) = load(&site);
    let mut f = facts("cam1");
    f.plate = "123ABC01".into();
    f.vehicle_class = VehicleClass::TractorTrailer;
    f.zones = vec!["centre".into(), "lane-1".into()];
    f.direction = Some("away".into());
    let v = rules.check(&f, &lists);
    assert_eq!(
        kinds(&v),
        [
            ("listed", "plate-list"),
            ("rush-hour-trucks", "vehicle-type-ban"),
            ("one-way", "wrong-direction")
        ]
    );
    let passage = uuid::Uuid::nil();
    let info = v[0].clone().into_info(passage, 42);
    assert_eq!(
        (info.kind.as_str(), info.passage_seq, info.priority),
        ("plate-list", 42, 1)
    );
    assert_eq!(info.list.unwrap().entry, "123ABC01");
}

#[test]
fn a_list_from_the_central_side_survives_a_restart_with_its_version() {
    let site = site();
    let (cfg, lists, _, rules) = load(&site);
    let csv = "plate,reason,priority,valid_from,valid_to\n456DEF02,debt,6,,\n";
    let up = lists
        .apply_and_keep(&update("tolls", 9, csv), &cfg.lists_dir)
        .unwrap();
    assert_eq!((up.previous, up.version), (0, 9));
    let mut f = facts("cam2");
    f.plate = "456DEF02".into();
    assert_eq!(rules.check(&f, &lists)[0].reason, "tolls: debt");

    let (_, restarted, problems, rules) = load(&site);
    assert!(
        problems.iter().all(|p| matches!(p, ListProblem::Line(_))),
        "{problems:?}"
    );
    assert_eq!(restarted.get("tolls").unwrap().version(), 9);
    let v = rules.check(&f, &restarted);
    assert_eq!(v[0].list.as_ref().unwrap().version, 9);
    assert_eq!(v[0].priority, 6);
}

#[test]
fn a_damaged_kept_list_is_reported_and_the_list_from_the_config_is_used() {
    let site = site();
    let (cfg, lists, _, _) = load(&site);
    let csv = "plate,reason,priority,valid_from,valid_to\n456DEF02,debt,6,,\n";
    lists
        .apply_and_keep(&update("wanted", 3, csv), &cfg.lists_dir)
        .unwrap();
    let kept = kept_path(&cfg.lists_dir, "wanted");
    let mut bytes = std::fs::read(&kept).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&kept, bytes).unwrap();
    let (_, restarted, problems, _) = load(&site);
    assert_eq!(restarted.get("wanted").unwrap().version(), 0);
    assert_eq!(restarted.get("wanted").unwrap().len(), 3);
    let kept_problems: Vec<String> = problems
        .iter()
        .filter(|p| matches!(p, ListProblem::Kept { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(kept_problems.len(), 1);
    assert!(
        kept_problems[0].contains("wanted.json"),
        "{}",
        kept_problems[0]
    );
    assert!(Path::new(&kept).exists());
}

#[test]
fn a_kept_list_that_is_not_signed_for_this_device_by_the_trusted_key_is_not_taken_back() {
    let site = site();
    let (cfg, lists, _, _) = load(&site);
    let csv = "plate,reason,priority,valid_from,valid_to\n456DEF02,debt,6,,\n";
    lists
        .apply_and_keep(&update("wanted", 3, csv), &cfg.lists_dir)
        .unwrap();
    let kept = kept_path(&cfg.lists_dir, "wanted");
    let signed = std::fs::read(&kept).unwrap();

    // Edited on disk, checksum and all: the signature no longer matches.
    let mut edited = ListCommand::parse(&signed).unwrap();
    edited.csv.push_str("777KZA02,added on disk,1,,\n");
    edited.sha256 = anpr_trust::sha256_hex(edited.csv.as_bytes());
    // Signed for another device, and signed by a key this device does not trust.
    let other_device = ListCommand::signed("wanted", 3, csv, "KZ-ICD-0002", &central()).to_json();
    let other_key = ListCommand::signed(
        "wanted",
        3,
        csv,
        INVENTORY,
        &SigningKey::from_bytes(&[8; 32]),
    )
    .to_json();
    for (what, bytes) in [
        ("edited", edited.to_json()),
        ("for another device", other_device),
        ("by another key", other_key),
    ] {
        std::fs::write(&kept, bytes).unwrap();
        let (_, restarted, problems, _) = load(&site);
        assert_eq!(restarted.get("wanted").unwrap().version(), 0, "{what}");
        let kept_problems: Vec<String> = problems
            .iter()
            .filter(|p| matches!(p, ListProblem::Kept { .. }))
            .map(ToString::to_string)
            .collect();
        assert_eq!(kept_problems.len(), 1, "{what}: {problems:?}");
        assert!(
            kept_problems[0].contains("bad signature"),
            "{what}: {}",
            kept_problems[0]
        );
    }

    // The central key rotated on the device: a list kept under the old one is not taken back.
    std::fs::write(&kept, &signed).unwrap();
    assert_eq!(load(&site).1.get("wanted").unwrap().version(), 3);
    let (_, rotated, problems, _) = load_trusting(&site, &SigningKey::from_bytes(&[9; 32]));
    assert_eq!(rotated.get("wanted").unwrap().version(), 0);
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, ListProblem::Kept { .. })),
        "{problems:?}"
    );
}
