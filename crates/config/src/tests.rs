use super::*;
use anpr_types::{PlateStatus, VehicleClass};
use chrono::Weekday;

/// The smallest config that loads: one camera, plain MQTT allowed as for a lab. The tests of
/// each section add their own lines to it.
pub(crate) const LAB_BASE: &str = r#"
[device]
inventory = "KZ-ICD-0001"
profile = "stationary"
site = "A2-km-12"
coordinates = [43.238, 76.945]

[[camera]]
id = "cam1"
uri = "demo.mp4"

[models]

[storage]
queue = "queue.sqlite"

[uplink]
broker = "mqtt://127.0.0.1:1883"
allow_plaintext = true
"#;

const GOOD: &str = r#"
[device]
inventory = "KZ-ICD-0001"
profile = "stationary"
site = "A2-km-12"
coordinates = [43.238, 76.945]

[[camera]]
id = "cam1"
uri = "demo.mp4"

[models]

[storage]
queue = "queue.sqlite"

[uplink]
broker = "mqtts://127.0.0.1"
tls_ca = "pki/ca.crt"
tls_cert = "pki/KZ-ICD-0001.tls.crt"
tls_key = "/secret/KZ-ICD-0001.tls.key"
"#;

/// A scene: the GOOD config with a time zone, a line, zones, lists and one rule of each kind.
const SCENE: &str = r#"
lists_dir = "lists"

[device]
inventory = "KZ-ICD-0001"
profile = "stationary"
site = "A2-km-12"
coordinates = [43.238, 76.945]
time_zone = "Asia/Almaty"

[[camera]]
id = "cam1"
uri = "demo.mp4"
line = [[0.0, 0.6], [1.0, 0.6]]
directions = ["inbound", "outbound"]
max_dwell_s = 90

[[camera.zone]]
name = "lane-1"
polygon = [[0.0, 0.3], [0.5, 0.3], [0.5, 1.0], [0.0, 1.0]]
lane = true

[[camera.zone]]
name = "centre"
polygon = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]

[[camera]]
id = "cam2"
uri = "rtsp://10.0.0.2/stream"

[models]

[storage]
queue = "var/queue.sqlite"

[uplink]
broker = "mqtt://127.0.0.1:1883"
allow_plaintext = true

[[list]]
name = "wanted"
file = "lists/wanted.csv"
priority = 1

[[list]]
name = "watch"

[[rule]]
name = "wanted-vehicles"
kind = "plate-list"
lists = ["wanted", "watch"]

[[rule]]
name = "no-trucks-in-centre"
kind = "vehicle-type-ban"
cameras = ["cam1"]
zone = "centre"
classes = ["truck", "tractor-trailer"]
windows = ["07:00-10:00", "17:00-20:00"]
days = ["mon-fri"]
priority = 3

[[rule]]
name = "no-plate"
kind = "plate-missing"
statuses = ["absent"]

[[rule]]
name = "one-way"
kind = "wrong-direction"
cameras = ["cam1"]
zone = "lane-1"
allowed_direction = "inbound"
"#;

fn path() -> &'static Path {
    Path::new("/etc/anpr/device.toml")
}

/// Line (from 1) of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    text[..at].matches('\n').count() + 1
}

/// Parses `text`, expecting an error; returns it with its message.
fn refused(text: &str) -> (ConfigError, String) {
    let err = parse(text, path()).expect_err("the config should be refused");
    let msg = err.to_string();
    (err, msg)
}

#[test]
fn a_valid_config_loads_with_defaults_and_resolved_paths() {
    let cfg = parse(GOOD, path()).unwrap();
    assert_eq!(cfg.device.inventory, "KZ-ICD-0001");
    assert_eq!(cfg.models.intra_threads, 1);
    assert_eq!(cfg.storage.queue, PathBuf::from("/etc/anpr/queue.sqlite"));
    assert_eq!(cfg.uplink.topic_prefix, "anpr/v1");
    assert_eq!(
        cfg.uplink.host_port().unwrap(),
        ("127.0.0.1".to_string(), 8883)
    );
    assert_eq!(
        cfg.uplink.tls_files(),
        Some((
            PathBuf::from("/etc/anpr/pki/ca.crt"),
            PathBuf::from("/etc/anpr/pki/KZ-ICD-0001.tls.crt"),
            PathBuf::from("/secret/KZ-ICD-0001.tls.key")
        )),
        "relative TLS paths are resolved against the config file's directory"
    );
}

#[test]
fn a_plain_broker_is_refused_unless_allowed_for_a_lab_and_mqtts_needs_its_three_files() {
    let plain = GOOD
        .replace("mqtts://127.0.0.1", "mqtt://127.0.0.1:1883")
        .replace("tls_ca = \"pki/ca.crt\"\n", "")
        .replace("tls_cert = \"pki/KZ-ICD-0001.tls.crt\"\n", "")
        .replace("tls_key = \"/secret/KZ-ICD-0001.tls.key\"\n", "");
    let (_, msg) = refused(&plain);
    assert!(
        msg.contains("uplink.broker")
            && msg.contains("allow_plaintext = true")
            && msg.contains("mqtts://"),
        "{msg}"
    );
    let lab = plain.replace("[uplink]\n", "[uplink]\nallow_plaintext = true\n");
    let cfg = parse(&lab, path()).unwrap();
    assert_eq!(cfg.uplink.tls_files(), None);
    assert_eq!(
        cfg.uplink.host_port().unwrap(),
        ("127.0.0.1".to_string(), 1883)
    );
    // TLS files with a plain broker are a mistake, not silently ignored.
    let (_, msg) = refused(
        &GOOD
            .replace("mqtts://", "mqtt://")
            .replace("[uplink]\n", "[uplink]\nallow_plaintext = true\n"),
    );
    assert!(
        msg.contains("uplink.tls_ca") && msg.contains("only used with an mqtts://"),
        "{msg}"
    );
    let (err, msg) = refused(&GOOD.replace("tls_key = \"/secret/KZ-ICD-0001.tls.key\"\n", ""));
    assert!(
        msg.contains("uplink.tls_key") && msg.contains("anpr pki device"),
        "{msg}"
    );
    assert!(err.line().is_some(), "placed at the [uplink] section");
    let (_, msg) = refused(&GOOD.replace("mqtts://127.0.0.1", "tcp://127.0.0.1"));
    assert!(msg.contains("must be an mqtts:// URL"), "{msg}");
    let (_, msg) = refused(&GOOD.replace("mqtts://127.0.0.1", "mqtts://127.0.0.1:99999"));
    assert!(msg.contains("port"), "{msg}");
}

#[test]
fn new_keys_default_to_utc_no_line_towards_and_away_and_lists_beside_the_queue() {
    let cfg = parse(GOOD, path()).unwrap();
    assert_eq!(cfg.device.time_zone, Tz::UTC);
    let cam = &cfg.cameras[0];
    assert_eq!(cam.line, None);
    assert_eq!(cam.directions, ["towards", "away"]);
    assert!((cam.max_dwell_s - 120.0).abs() < f64::EPSILON);
    assert!(cam.zones.is_empty());
    assert_eq!(cfg.lists_dir, PathBuf::from("/etc/anpr/lists"));
    assert!(cfg.lists.is_empty() && cfg.rules.is_empty());
}

#[test]
fn a_scene_with_zones_lists_and_rules_loads_typed() {
    let cfg = parse(SCENE, path()).unwrap();
    assert_eq!(cfg.device.time_zone, Tz::Asia__Almaty);
    assert_eq!(cfg.lists_dir, PathBuf::from("/etc/anpr/lists"));
    let cam = cfg.camera("cam1").unwrap();
    assert_eq!(cam.line, Some([[0.0, 0.6], [1.0, 0.6]]));
    assert_eq!(cam.zones.len(), 2);
    assert!(cam.zone("lane-1").unwrap().lane);
    assert!(!cam.zone("centre").unwrap().lane);
    let wanted = cfg.list("wanted").unwrap();
    assert_eq!(
        wanted.file.as_deref(),
        Some(Path::new("/etc/anpr/lists/wanted.csv"))
    );
    assert_eq!(wanted.priority, 1);
    assert_eq!(cfg.list("watch").unwrap().priority, DEFAULT_PRIORITY);
    assert_eq!(cfg.list("watch").unwrap().file, None);
    let ban = &cfg.rules[1];
    assert_eq!(ban.kind, RuleKind::VehicleTypeBan);
    assert_eq!(
        ban.classes,
        [VehicleClass::Truck, VehicleClass::TractorTrailer]
    );
    assert_eq!(ban.windows.len(), 2);
    assert_eq!(ban.days.first(), Some(&Weekday::Mon));
    assert_eq!(ban.days.len(), 5);
    assert_eq!(ban.priority, 3);
    assert!(ban.applies_to_camera("cam1") && !ban.applies_to_camera("cam2"));
    assert_eq!(cfg.rules[2].statuses, [PlateStatus::Absent]);
    assert_eq!(cfg.rules[3].allowed_direction.as_deref(), Some("inbound"));
}

#[test]
fn a_plate_missing_rule_catches_absent_and_unreadable_plates_by_default() {
    let text = format!("{GOOD}\n[[rule]]\nname = \"no-plate\"\nkind = \"plate-missing\"\n");
    let cfg = parse(&text, path()).unwrap();
    assert_eq!(
        cfg.rules[0].statuses,
        [PlateStatus::Absent, PlateStatus::Unreadable]
    );
    assert_eq!(cfg.rules[0].priority, DEFAULT_PRIORITY);
}

#[test]
fn storage_defaults_to_a_2_gib_quota_and_both_evidence_images() {
    let cfg = parse(GOOD, path()).unwrap();
    assert_eq!(cfg.storage.quota_bytes(), Some(2048 * 1024 * 1024));
    assert_eq!(
        cfg.storage.evidence,
        [EvidenceKind::Overview, EvidenceKind::Plate]
    );
    let text = GOOD.replace("[storage]", "[storage]\nquota_mb = 0\nevidence = []");
    let cfg = parse(&text, Path::new("dev.toml")).unwrap();
    assert_eq!(cfg.storage.quota_bytes(), None);
    assert!(cfg.storage.evidence.is_empty());
    let text = GOOD.replace("[storage]", "[storage]\nquota_mb = -5");
    let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
    assert!(err.contains("storage.quota_mb"), "{err}");
    let text = GOOD.replace("[storage]", "[storage]\nevidence = [\"thumbnail\"]");
    let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
    assert!(err.contains("thumbnail"), "{err}");
}

#[test]
fn retention_defaults_to_until_delivered_and_is_bounded() {
    let cfg = parse(GOOD, path()).unwrap();
    assert_eq!(
        (
            cfg.storage.keep_violations_days,
            cfg.storage.keep_passages_days
        ),
        (0, 0)
    );
    let text = GOOD.replace(
        "[storage]",
        "[storage]\nkeep_violations_days = 30\nkeep_passages_days = 1",
    );
    let cfg = parse(&text, Path::new("dev.toml")).unwrap();
    assert_eq!(
        (
            cfg.storage.keep_violations_days,
            cfg.storage.keep_passages_days
        ),
        (30, 1)
    );
    for key in ["keep_violations_days", "keep_passages_days"] {
        let text = GOOD.replace("[storage]", &format!("[storage]\n{key} = 3651"));
        let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(err.contains(&format!("storage.{key}")), "{err}");
        assert!(err.contains("0 to 3650"), "{err}");
    }
}

#[test]
fn an_unknown_key_is_an_error_naming_the_file_key_line_and_column() {
    let text = GOOD.replace("site = ", "sitee = ");
    let err = parse(&text, Path::new("dev.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("dev.toml"), "{msg}");
    assert!(msg.contains("sitee"), "{msg}");
    assert!(msg.contains("remove the key"), "{msg}");
    let line = line_of(&text, "sitee");
    assert!(msg.contains(&format!("line {line}, column 1")), "{msg}");
    assert_eq!(err.line(), Some(line));
    assert!(!msg.contains("byte"), "{msg}");
}

#[test]
fn a_wrong_type_is_an_error_with_a_fix_and_its_line() {
    let text = GOOD.replace("[models]", "[models]\nintra_threads = \"two\"");
    let err = parse(&text, Path::new("dev.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("invalid type"), "{msg}");
    assert!(msg.contains("type shown in config/example.toml"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "intra_threads")));
}

#[test]
fn broken_toml_syntax_is_placed_by_line_and_column() {
    let text = GOOD.replace("site = \"A2-km-12\"", "site = \"A2-km-12");
    let err = parse(&text, Path::new("dev.toml")).unwrap_err();
    assert_eq!(err.line(), Some(line_of(&text, "site =")), "{err}");
    assert!(err.to_string().contains("column"), "{err}");
}

#[test]
fn a_stationary_unit_without_coordinates_is_rejected() {
    let text = GOOD.replace("coordinates = [43.238, 76.945]", "");
    let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
    assert!(err.contains("device.coordinates"), "{err}");
}

#[test]
fn a_bad_inventory_number_is_rejected_at_its_line() {
    let text = GOOD.replace("KZ-ICD-0001", "a/b");
    let (err, msg) = refused(&text);
    assert!(msg.contains("device.inventory"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "inventory")));
}

#[test]
fn weak_plate_boxes_are_verified_by_default_and_the_threshold_is_checked() {
    let cfg = parse(GOOD, Path::new("dev.toml")).unwrap();
    assert!(cfg.models.plate_candidate_confidence < cfg.models.plate_confidence);
    let text = GOOD.replace("[models]", "[models]\nplate_candidate_confidence = 0.5");
    let err = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
    assert!(err.contains("plate_candidate_confidence"), "{err}");
    let text = GOOD.replace(
        "[models]",
        "[models]\nplate_confidence = 0.5\nplate_candidate_confidence = 0.5",
    );
    assert!(parse(&text, Path::new("dev.toml")).is_ok());
}

#[test]
fn an_unknown_time_zone_is_refused_at_its_line_with_an_example() {
    let text = SCENE.replace("Asia/Almaty", "Asia/Almati");
    let (err, msg) = refused(&text);
    assert!(msg.contains("unknown time zone `Asia/Almati`"), "{msg}");
    assert!(msg.contains("\"Asia/Almaty\""), "{msg}");
    assert!(msg.contains("/etc/anpr/device.toml"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "time_zone")));
}

#[test]
fn a_zone_with_fewer_than_three_distinct_points_is_refused_at_its_line() {
    let text = SCENE.replace(
        "[[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]",
        "[[0.2, 0.2], [0.8, 0.2], [0.2, 0.2]]",
    );
    let (err, msg) = refused(&text);
    assert!(msg.contains("camera[0].zone[1].polygon"), "{msg}");
    assert!(msg.contains("zone `centre`"), "{msg}");
    assert!(msg.contains("at least 3"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "[[0.2, 0.2], [0.8, 0.2]")));
}

#[test]
fn a_self_intersecting_zone_is_refused_with_the_fix() {
    let text = SCENE.replace(
        "[[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]",
        "[[0.2, 0.2], [0.8, 0.9], [0.8, 0.2], [0.2, 0.9]]",
    );
    let (err, msg) = refused(&text);
    assert!(msg.contains("crosses itself"), "{msg}");
    assert!(msg.contains("in order around the zone"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "[[0.2, 0.2], [0.8, 0.9]")));
}

#[test]
fn a_zone_point_outside_the_frame_is_refused_as_leaving_it() {
    let text = SCENE.replace("[0.5, 1.0], [0.0, 1.0]]", "[0.5, 1.2], [0.0, 1.0]]");
    let (err, msg) = refused(&text);
    assert!(msg.contains("camera[0].zone[0].polygon"), "{msg}");
    assert!(msg.contains("point 3 [0.5, 1.2] leaves the frame"), "{msg}");
    assert!(msg.contains("from 0 to 1"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "[0.5, 1.2]")));
}

#[test]
fn two_zones_of_one_camera_with_the_same_name_are_refused() {
    let text = SCENE.replace("name = \"centre\"", "name = \"lane-1\"");
    let (_, msg) = refused(&text);
    assert!(msg.contains("already has a zone named `lane-1`"), "{msg}");
}

#[test]
fn a_counting_line_leaving_the_frame_or_of_one_point_is_refused() {
    let text = SCENE.replace("[[0.0, 0.6], [1.0, 0.6]]", "[[0.0, 0.6], [1.5, 0.6]]");
    let (err, msg) = refused(&text);
    assert!(
        msg.contains("camera[0].line") && msg.contains("leaves the frame"),
        "{msg}"
    );
    assert_eq!(err.line(), Some(line_of(&text, "line =")));
    let text = SCENE.replace("[[0.0, 0.6], [1.0, 0.6]]", "[[0.3, 0.6], [0.3, 0.6]]");
    assert!(refused(&text).1.contains("two points are the same"));
}

#[test]
fn directions_need_two_different_names_and_dwell_has_bounds() {
    let text = SCENE.replace("[\"inbound\", \"outbound\"]", "[\"in\", \"in\"]");
    assert!(refused(&text).1.contains("different names"));
    let text = SCENE.replace("max_dwell_s = 90", "max_dwell_s = 0");
    assert!(refused(&text).1.contains("camera[0].max_dwell_s"));
}

#[test]
fn a_rule_naming_a_zone_that_does_not_exist_is_refused_at_its_line() {
    let text = SCENE.replace("zone = \"centre\"", "zone = \"centr\"");
    let (err, msg) = refused(&text);
    assert!(msg.contains("rule[1].zone"), "{msg}");
    assert!(msg.contains("zone `centr`"), "{msg}");
    assert!(msg.contains("add a [[camera.zone]] named `centr`"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "zone = \"centr\"")));
}

#[test]
fn a_rule_for_all_cameras_needs_its_zone_on_at_least_one() {
    let text =
        format!("{SCENE}\n[[rule]]\nname = \"x\"\nkind = \"plate-missing\"\nzone = \"nowhere\"\n");
    assert!(refused(&text).1.contains("which no camera has"));
    let text =
        format!("{SCENE}\n[[rule]]\nname = \"x\"\nkind = \"plate-missing\"\nzone = \"centre\"\n");
    assert!(parse(&text, path()).is_ok());
}

#[test]
fn a_rule_naming_a_list_that_is_not_declared_is_refused_at_its_line() {
    let text = SCENE.replace(
        "lists = [\"wanted\", \"watch\"]",
        "lists = [\"wanted\", \"stolen\"]",
    );
    let (err, msg) = refused(&text);
    assert!(msg.contains("rule[0].lists"), "{msg}");
    assert!(msg.contains("list `stolen`"), "{msg}");
    assert!(msg.contains("add a [[list]] named `stolen`"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "lists = [")));
}

#[test]
fn a_rule_naming_a_camera_that_does_not_exist_is_refused() {
    let text = SCENE.replace(
        "cameras = [\"cam1\"]\nzone = \"centre\"",
        "cameras = [\"cam9\"]\nzone = \"centre\"",
    );
    let (_, msg) = refused(&text);
    assert!(
        msg.contains("camera `cam9`") && msg.contains("`cam1`, `cam2`"),
        "{msg}"
    );
}

#[test]
fn a_time_window_that_does_not_parse_is_refused_at_its_line() {
    let text = SCENE.replace("\"17:00-20:00\"", "\"17:00-2000\"");
    let (err, msg) = refused(&text);
    assert!(
        msg.contains("time window `17:00-2000` does not parse"),
        "{msg}"
    );
    assert!(msg.contains("\"HH:MM-HH:MM\""), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "windows")));
}

#[test]
fn a_day_that_is_not_a_weekday_is_refused() {
    let text = SCENE.replace("[\"mon-fri\"]", "[\"mon-fry\"]");
    let (err, msg) = refused(&text);
    assert!(msg.contains("`mon-fry` is not a day"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "days")));
}

#[test]
fn a_class_that_is_not_a_vehicle_class_is_refused_at_its_line() {
    let text = SCENE.replace("[\"truck\", \"tractor-trailer\"]", "[\"truck\", \"lorry\"]");
    let (err, msg) = refused(&text);
    assert!(msg.contains("unknown variant `lorry`"), "{msg}");
    assert!(msg.contains("tractor-trailer"), "{msg}");
    assert!(msg.contains("use one of the values listed"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "lorry")));
    let text = SCENE.replace("[\"truck\", \"tractor-trailer\"]", "[\"unknown\"]");
    assert!(
        refused(&text)
            .1
            .contains("`unknown` is not a vehicle class that can be banned")
    );
}

#[test]
fn time_windows_need_the_time_zone_written_out() {
    let text = SCENE.replace("time_zone = \"Asia/Almaty\"\n", "");
    let (err, msg) = refused(&text);
    assert!(msg.contains("rule[1].windows"), "{msg}");
    assert!(msg.contains("set `time_zone` in [device]"), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "windows")));
}

#[test]
fn a_key_of_another_kind_of_rule_is_refused() {
    let text = SCENE.replace(
        "statuses = [\"absent\"]",
        "statuses = [\"absent\"]\nclasses = [\"car\"]",
    );
    let (_, msg) = refused(&text);
    assert!(msg.contains("rule[2].classes"), "{msg}");
    assert!(msg.contains("belongs to `vehicle-type-ban` rules"), "{msg}");
}

#[test]
fn a_plate_missing_rule_cannot_fire_on_read_plates() {
    let text = SCENE.replace("statuses = [\"absent\"]", "statuses = [\"read\"]");
    assert!(refused(&text).1.contains("\"absent\" and \"unreadable\""));
}

#[test]
fn a_plate_list_rule_takes_its_priority_from_the_list() {
    let text = SCENE.replace(
        "lists = [\"wanted\", \"watch\"]",
        "lists = [\"wanted\"]\npriority = 2",
    );
    assert!(
        refused(&text)
            .1
            .contains("takes its priority from the list entry")
    );
}

#[test]
fn a_wrong_direction_rule_needs_a_known_direction_on_a_camera_with_a_line() {
    let text = SCENE.replace(
        "allowed_direction = \"inbound\"",
        "allowed_direction = \"north\"",
    );
    let (err, msg) = refused(&text);
    assert!(
        msg.contains("`north` is not a direction of camera `cam1`"),
        "{msg}"
    );
    assert!(msg.contains("\"inbound\" or \"outbound\""), "{msg}");
    assert_eq!(err.line(), Some(line_of(&text, "allowed_direction")));
    let text = SCENE.replace("line = [[0.0, 0.6], [1.0, 0.6]]\n", "");
    assert!(refused(&text).1.contains("has no counting line"));
    let text = format!(
        "{SCENE}\n[[rule]]\nname = \"x\"\nkind = \"wrong-direction\"\nallowed_direction = \"inbound\"\n"
    );
    assert!(
        refused(&text)
            .1
            .contains("camera `cam2` has no counting line")
    );
}

#[test]
fn rule_and_list_names_are_unique() {
    let text = SCENE.replace("name = \"one-way\"", "name = \"no-plate\"");
    assert!(
        refused(&text)
            .1
            .contains("a rule named `no-plate` is already defined")
    );
    let text = SCENE.replace("name = \"watch\"", "name = \"wanted\"");
    assert!(
        refused(&text)
            .1
            .contains("a list named `wanted` is already declared")
    );
    let text = SCENE.replace("name = \"watch\"", "name = \"../watch\"");
    assert!(refused(&text).1.contains("list[1].name"));
}

#[test]
fn an_unknown_key_in_a_zone_or_rule_is_refused() {
    let text = SCENE.replace("lane = true", "lanes = true");
    assert!(refused(&text).1.contains("unknown field `lanes`"));
    let text = SCENE.replace(
        "kind = \"plate-missing\"",
        "kind = \"plate-missing\"\nreason = \"x\"",
    );
    assert!(refused(&text).1.contains("unknown field `reason`"));
    let text = SCENE.replace("kind = \"plate-missing\"", "kind = \"plate-absent\"");
    assert!(refused(&text).1.contains("unknown variant `plate-absent`"));
}

#[test]
fn parallel_frames_default_to_one_and_stay_between_one_and_four() {
    let cfg = parse(GOOD, Path::new("dev.toml")).unwrap();
    assert_eq!(cfg.models.parallel_frames, 1);
    let two = GOOD.replace("[models]", "[models]\nparallel_frames = 2");
    assert_eq!(
        parse(&two, Path::new("dev.toml"))
            .unwrap()
            .models
            .parallel_frames,
        2
    );
    for bad in ["parallel_frames = 0", "parallel_frames = 5"] {
        let text = GOOD.replace("[models]", &format!("[models]\n{bad}"));
        let msg = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
        assert!(msg.contains("models.parallel_frames"), "{msg}");
        assert!(msg.contains("between 1 and 4"), "{msg}");
    }
}

#[test]
fn known_plate_reads_default_to_three_and_stay_between_zero_and_a_hundred() {
    let cfg = parse(GOOD, Path::new("dev.toml")).unwrap();
    assert_eq!(cfg.models.known_plate_reads, 3);
    let off = GOOD.replace("[models]", "[models]\nknown_plate_reads = 0");
    assert_eq!(
        parse(&off, Path::new("dev.toml"))
            .unwrap()
            .models
            .known_plate_reads,
        0
    );
    let text = GOOD.replace("[models]", "[models]\nknown_plate_reads = 1000");
    let msg = parse(&text, Path::new("dev.toml")).unwrap_err().to_string();
    assert!(msg.contains("models.known_plate_reads"), "{msg}");
    assert!(msg.contains("between 0"), "{msg}");
}
