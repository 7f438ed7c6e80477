//! Every config file shipped in `config/` loads and validates. Files they point at (clips,
//! models, list files) need not exist: loading reads only the config itself.

use std::path::PathBuf;

#[test]
fn every_shipped_config_file_loads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("example.toml")),
        "config/example.toml not found in {}",
        dir.display()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| anpr_config::load(f).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_example_config_shows_the_commented_scene_keys() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let text = std::fs::read_to_string(path).expect("config/example.toml");
    for key in [
        "time_zone",
        "lists_dir",
        "line =",
        "directions",
        "max_dwell_s",
        "[[camera.zone]]",
        "[[list]]",
        "[[rule]]",
        "allowed_direction",
        "statuses",
        "windows",
        "days",
    ] {
        assert!(
            text.contains(key),
            "config/example.toml does not document `{key}`"
        );
    }
}

/// config/example.toml with its `#key = value` examples switched on (a '#' directly followed
/// by anything but a space is an example line; `# ` starts prose).
fn example_with_examples_on() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let text = std::fs::read_to_string(path).expect("config/example.toml");
    text.lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.starts_with(' ') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_config_loads_with_its_commented_examples_switched_on() {
    let text = example_with_examples_on();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let cfg = anpr_config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    let cam = &cfg.cameras[0];
    assert!(cam.line.is_some());
    assert_eq!(cam.zones.len(), 3);
    assert_eq!(cfg.lists.len(), 2);
    assert_eq!(cfg.rules.len(), 4);
    assert!(cfg.lists_dir.ends_with("var/lists"));
    assert_eq!(cfg.uplink.failover.len(), 2);
}
