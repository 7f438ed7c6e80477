//! Property tests of the two parsers of plate lists that take outside input: the CSV of a list
//! (`PlateList::parse`, for list files and the `csv` of updates) and the plate-list command
//! from the central side (`ListCommand::parse`, `Lists::apply`). The same parsers have
//! cargo-fuzz targets (`fuzz/fuzz_targets/plate_list_csv.rs`, `list_command.rs`); these run a
//! bounded number of cases in every `cargo test`.

use std::fmt::Write;

use anpr_rules::{CSV_HEADER, ListCommand, ListSource, ListUpdateError, Lists, PlateList};
use anpr_trust::SigningKey;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// `cases` cases from a fixed seed unless `PROPTEST_RNG_SEED` gives one, so that a run in CI
/// is repeatable.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x11_57ED);
    }
    config
}

fn source(version: u64) -> ListSource<'static> {
    ListSource {
        name: "wanted",
        version,
        default_priority: 4,
        time_zone: Tz::Asia__Almaty,
        origin: "generated list",
    }
}

/// The device of these tests.
const INVENTORY: &str = "KZ-PROP";

/// The central side's signing key; the lists trust its public half.
fn central() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn lists() -> Lists {
    let mut lists = Lists::new(Tz::Asia__Almaty, INVENTORY, central().verifying_key());
    lists.declare("wanted", 4);
    lists.declare("tolls", 6);
    lists
}

/// One generated line of a list, and what it must load as.
#[derive(Debug, Clone)]
struct Line {
    /// The plate as typed: mixed case, with separators.
    typed: String,
    reason: String,
    priority: Option<u8>,
    /// `valid_from` and `valid_to` as dates, the second after the first.
    valid: Option<(NaiveDate, NaiveDate)>,
}

fn line() -> impl Strategy<Value = Line> {
    (
        "[0-9A-Za-z]{1,3}([ .-]?[0-9A-Za-z]{1,3}){0,3}",
        "[a-zA-Z0-9 ,\"#]{0,24}",
        proptest::option::of(1u8..=9),
        proptest::option::of((0i64..20_000, 1i64..2_000)),
    )
        .prop_map(|(typed, reason, priority, valid)| Line {
            typed,
            reason: reason.trim().to_string(),
            priority,
            valid: valid.map(|(start, days)| {
                let from = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a date")
                    + chrono::Days::new(start as u64);
                (from, from + chrono::Days::new(days as u64))
            }),
        })
}

/// A CSV field, quoted (with quotes doubled) when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"']) || s.starts_with('#') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The list as text, with blank and comment lines between the entries where `filler` says;
/// returns the text and the line each entry is on.
fn text_of(lines: &[Line], filler: &[u8]) -> (String, Vec<u64>) {
    let mut text = format!("{CSV_HEADER}\n");
    let mut at = Vec::new();
    let mut n = 1;
    for (i, l) in lines.iter().enumerate() {
        match filler.get(i).copied().unwrap_or(0) % 4 {
            1 => {
                text.push('\n');
                n += 1;
            }
            2 => {
                text.push_str("# checked by hand, 123ABC01\n");
                n += 1;
            }
            _ => {}
        }
        let (from, to) = l
            .valid
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .unwrap_or_default();
        let priority = l.priority.map(|p| p.to_string()).unwrap_or_default();
        writeln!(
            text,
            "{},{},{priority},{from},{to}",
            field(&l.typed),
            field(&l.reason)
        )
        .expect("a String takes text");
        n += 1;
        at.push(n);
    }
    (text, at)
}

/// A moment at which the entry of `l` applies.
fn inside(l: &Line) -> DateTime<Utc> {
    match l.valid {
        Some((from, _)) => from.and_hms_opt(12, 0, 0).expect("noon").and_utc(),
        None => DateTime::UNIX_EPOCH,
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_are_a_list_or_an_error_never_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        header in any::<bool>(),
    ) {
        let mut text = if header { format!("{CSV_HEADER}\n").into_bytes() } else { Vec::new() };
        text.extend_from_slice(&bytes);
        if let Ok(parsed) = PlateList::parse(&text, &source(1)) {
            let lines = text.split(|&b| b == b'\n').count() as u64;
            for e in parsed.list.entries() {
                prop_assert!((1..=9).contains(&e.priority));
                prop_assert!(!e.plate.is_empty() && e.plate.chars().count() <= 16);
                prop_assert!((1..=lines).contains(&e.line));
            }
            for p in &parsed.problems {
                prop_assert!((1..=lines).contains(&p.line), "{p:?}");
            }
        }
    }

    #[test]
    fn a_written_list_loads_every_entry_on_its_line_and_finds_it_by_its_plate(
        lines in proptest::collection::vec(line(), 0..24),
        filler in proptest::collection::vec(any::<u8>(), 24),
    ) {
        let (text, at) = text_of(&lines, &filler);
        let parsed = PlateList::parse(text.as_bytes(), &source(2)).expect("the header is there");
        prop_assert!(parsed.problems.is_empty(), "{:?}\n{text}", parsed.problems);
        prop_assert_eq!(parsed.list.len(), lines.len());
        for (l, line) in lines.iter().zip(&at) {
            let plate = anpr_rules::normalise(&l.typed);
            let e = parsed
                .list
                .entries()
                .find(|e| e.line == *line)
                .ok_or_else(|| TestCaseError::fail(format!("no entry on line {line}\n{text}")))?;
            prop_assert_eq!(&e.plate, &plate);
            prop_assert_eq!(&e.reason, &l.reason);
            prop_assert_eq!(e.priority, l.priority.unwrap_or(4));
            prop_assert_eq!(e.valid_from.is_some(), l.valid.is_some());
            let hit = parsed.list.lookup(&l.typed, inside(l));
            prop_assert!(hit.is_some_and(|h| h.entry.plate == plate && !h.fuzzy), "{l:?}");
        }
    }

    #[test]
    fn any_bytes_on_the_command_topic_are_refused_or_taken_whole(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let lists = lists();
        let before = lists.versions();
        if let Err(e) = lists.apply(&bytes) {
            prop_assert_eq!(lists.versions(), before);
            prop_assert!(!e.fault().message.is_empty());
        }
    }

    #[test]
    fn a_command_round_trips_and_is_taken_once_and_a_tampered_one_is_refused(
        name in prop_oneof![Just("wanted"), Just("tolls")],
        version in 1u64..1_000_000,
        lines in proptest::collection::vec(line(), 0..8),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (csv, _) = text_of(&lines, &[]);
        let cmd = ListCommand::signed(name, version, &csv, INVENTORY, &central());
        let json = cmd.to_json();
        prop_assert_eq!(&ListCommand::parse(&json).expect("a command parses"), &cmd);
        let lists = lists();

        // Any bit flipped in what is signed, re-sent as valid JSON: refused for its
        // signature (or, where the flip breaks the type or name, before), changing nothing.
        let mut canonical = cmd.canonical();
        let i = flip.index(canonical.len());
        canonical[i] ^= 1 << bit;
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&canonical) {
            if let Some(fields) = value.as_object_mut() {
                fields.insert("signature".into(), cmd.signature.clone().into());
            }
            let refused = lists.apply(value.to_string().as_bytes());
            let is_signature = matches!(
                refused,
                Err(ListUpdateError::Signature { .. }
                    | ListUpdateError::Payload { .. }
                    | ListUpdateError::WrongType { .. }
                    | ListUpdateError::UnknownList { .. })
            );
            prop_assert!(is_signature, "{:?}", refused);
        }
        // Signed for another device: refused.
        let elsewhere = ListCommand::signed(name, version, &csv, "KZ-OTHER", &central());
        let refused = lists.apply(&elsewhere.to_json());
        let is_signature = matches!(refused, Err(ListUpdateError::Signature { .. }));
        prop_assert!(is_signature, "{:?}", refused);

        // A checksum off by one character, signed so by the central side, is refused and
        // changes nothing.
        let mut tampered = cmd.clone();
        let i = flip.index(tampered.sha256.len());
        let c = if tampered.sha256.as_bytes()[i] == b'0' { "1" } else { "0" };
        tampered.sha256.replace_range(i..=i, c);
        tampered.sign(INVENTORY, &central());
        let refused = lists.apply(&tampered.to_json());
        let is_checksum = matches!(refused, Err(ListUpdateError::Checksum { .. }));
        prop_assert!(is_checksum, "{:?}", refused);
        prop_assert_eq!(lists.get(name).expect("declared").version(), 0);

        let done = lists.apply(&json).expect("a sound command is taken");
        prop_assert_eq!((done.version, done.entries), (version, lines.len()));
        prop_assert_eq!(lists.get(name).expect("in force").version(), version);
        let again = lists.apply(&json);
        let is_not_newer = matches!(again, Err(ListUpdateError::NotNewer { .. }));
        prop_assert!(is_not_newer, "{:?}", again);
    }
}
