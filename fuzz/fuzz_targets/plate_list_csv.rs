//! Plate-list CSV (`PlateList::parse`): list files named in the config, and the `csv` of every
//! update from the central side.
//!
//! Invariants: no panic; every entry loaded has a plate of 1 to 16 letters and digits that
//! normalising leaves as it is, a priority from 1 to 9, a validity that ends after it starts
//! and a line number within the text; it is found by its own plate while it is valid; every
//! problem names a line within the text. Bytes that are not UTF-8 are problems or an error, never a panic.
#![no_main]

use anpr_rules::{ListSource, PlateList};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = ListSource {
        name: "wanted",
        version: 3,
        default_priority: 4,
        time_zone: Tz::Asia__Almaty,
        origin: "fuzz input",
    };
    let Ok(parsed) = PlateList::parse(data, &src) else {
        return;
    };
    let lines = data.split(|&b| b == b'\n').count() as u64;
    assert_eq!(parsed.list.name(), "wanted");
    assert_eq!(parsed.list.version(), 3);
    assert_eq!(parsed.list.entries().count(), parsed.list.len());
    for e in parsed.list.entries() {
        let len = e.plate.chars().count();
        assert!((1..=16).contains(&len), "plate length {len}: {e:?}");
        assert!(
            e.plate.chars().all(char::is_alphanumeric),
            "plate not normalised: {e:?}"
        );
        assert_eq!(
            anpr_rules::normalise(&e.plate),
            e.plate,
            "normalised twice: {e:?}"
        );
        assert!((1..=9).contains(&e.priority), "priority: {e:?}");
        assert!((1..=lines).contains(&e.line), "line {} of {lines}", e.line);
        if let (Some(from), Some(until)) = (e.valid_from, e.valid_until) {
            assert!(until > from, "validity ends before it starts: {e:?}");
        }
        let at: DateTime<Utc> = e.valid_from.unwrap_or(DateTime::UNIX_EPOCH);
        if e.valid_at(at) {
            let hit = parsed
                .list
                .lookup(&e.plate, at)
                .expect("a valid entry is found by its own plate");
            assert!(!hit.fuzzy, "an exact plate is an exact match");
            let _ = parsed.list.to_match(&hit);
        }
    }
    for p in &parsed.problems {
        assert!(
            (1..=lines).contains(&p.line),
            "problem line {} of {lines}",
            p.line
        );
        assert!(!p.message.is_empty());
    }
});
