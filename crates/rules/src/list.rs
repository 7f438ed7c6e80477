//! One plate list: parsed from CSV, looked up by plate at a capture time.

use std::collections::HashMap;
use std::path::Path;

use anpr_types::ListMatch;
use chrono::{DateTime, LocalResult, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::{LineProblem, ListError};
use crate::plate::{for_each_variant, normalise};

/// The header line every plate list starts with.
pub const CSV_HEADER: &str = "plate,reason,priority,valid_from,valid_to";
const COLUMNS: [&str; 5] = ["plate", "reason", "priority", "valid_from", "valid_to"];
/// Longest plate, in characters after normalising.
const MAX_PLATE_LEN: usize = 16;

/// One line of a plate list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The plate, normalised (upper case, letters and digits only).
    pub plate: String,
    /// Why the plate is listed, shown in the violation; may be empty.
    pub reason: String,
    /// 1 (highest) to 9.
    pub priority: u8,
    /// First instant the entry applies; `None`: since ever.
    pub valid_from: Option<DateTime<Utc>>,
    /// First instant the entry no longer applies; `None`: for ever. A date in the list means
    /// the end of that local day.
    pub valid_until: Option<DateTime<Utc>>,
    /// Line of the entry in its CSV text, from 1.
    pub line: u64,
}

impl ListEntry {
    /// Whether the entry applies at `at`.
    #[must_use]
    pub fn valid_at(&self, at: DateTime<Utc>) -> bool {
        self.valid_from.is_none_or(|from| at >= from)
            && self.valid_until.is_none_or(|until| at < until)
    }
}

/// A list entry a read matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListHit<'a> {
    pub entry: &'a ListEntry,
    /// The read differs from the listed plate by one look-alike character: a weaker match.
    pub fuzzy: bool,
}

/// What a list is called and how its lines are read.
#[derive(Debug, Clone, Copy)]
pub struct ListSource<'a> {
    /// Name of the list, e.g. `wanted`.
    pub name: &'a str,
    /// Version: 0 for a list from the config's file, the central side's number for updates.
    pub version: u64,
    /// Priority of lines that leave `priority` empty.
    pub default_priority: u8,
    /// Time zone in which dates (`YYYY-MM-DD`) are read.
    pub time_zone: Tz,
    /// Where the text came from, for messages: a file path or a description.
    pub origin: &'a str,
}

/// A parsed list and the lines that could not be taken.
#[derive(Debug)]
pub struct Parsed {
    pub list: PlateList,
    pub problems: Vec<LineProblem>,
}

/// A named, versioned plate list, indexed for lookup by plate.
///
/// Lookup costs one hash probe for the exact plate and one per look-alike variant of the read
/// (about 3 per look-alike character in it), whatever the size of the list.
#[derive(Debug, Clone)]
pub struct PlateList {
    name: String,
    version: u64,
    entries: HashMap<String, Vec<ListEntry>>,
    len: usize,
}

impl PlateList {
    /// An empty list at version 0.
    #[must_use]
    pub fn empty(name: &str) -> Self {
        Self {
            name: name.to_string(),
            version: 0,
            entries: HashMap::new(),
            len: 0,
        }
    }

    /// Builds a list from entries (already normalised), e.g. in tests.
    #[must_use]
    pub fn from_entries(name: &str, version: u64, entries: Vec<ListEntry>) -> Self {
        let mut list = Self {
            version,
            ..Self::empty(name)
        };
        for e in entries {
            list.push(e);
        }
        list
    }

    fn push(&mut self, entry: ListEntry) {
        self.entries
            .entry(entry.plate.clone())
            .or_default()
            .push(entry);
        self.len += 1;
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &ListEntry> {
        self.entries.values().flatten()
    }

    /// Parses CSV text with the header [`CSV_HEADER`]. Lines that cannot be taken are returned
    /// as problems, naming origin and line and the fix; the others load. Blank lines and lines
    /// starting with `#` are skipped. A missing or wrong header is an error: without it the
    /// columns cannot be trusted.
    pub fn parse(text: &[u8], src: &ListSource<'_>) -> Result<Parsed, ListError> {
        let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        // Comment lines are blanked rather than left to the CSV reader, which would not count
        // them in line numbers.
        let text: Vec<u8> = text
            .split_inclusive(|&b| b == b'\n')
            .flat_map(|line| {
                let comment = line.trim_ascii_start().starts_with(b"#");
                let keep = if comment {
                    &line[line.len() - usize::from(line.ends_with(b"\n"))..]
                } else {
                    line
                };
                keep.iter().copied()
            })
            .collect();
        // The reader's own line numbers do not count blank lines: lines are counted here from
        // the record's byte offset, which points at the blank lines before it.
        let newlines: Vec<usize> = text
            .iter()
            .enumerate()
            .filter_map(|(i, &b)| (b == b'\n').then_some(i))
            .collect();
        let line_at = |pos: Option<&csv::Position>| -> u64 {
            let mut at = pos.map_or(0, |p| p.byte() as usize);
            while text.get(at).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                at += 1;
            }
            newlines.partition_point(|&n| n < at) as u64 + 1
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_slice());
        let mut list = PlateList {
            version: src.version,
            ..PlateList::empty(src.name)
        };
        let mut problems = Vec::new();
        let mut header_seen = false;
        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = line_at(e.position());
                    if !header_seen {
                        return Err(header_error(src, "(not UTF-8 text)"));
                    }
                    problems.push(LineProblem {
                        origin: src.origin.to_string(),
                        line,
                        message: format!("{e}; save the list as UTF-8 text"),
                    });
                    continue;
                }
            };
            let line = line_at(record.position());
            if record.iter().all(str::is_empty) {
                continue;
            }
            if !header_seen {
                let names: Vec<String> = record.iter().map(str::to_ascii_lowercase).collect();
                if names != COLUMNS {
                    let found = record.iter().collect::<Vec<_>>().join(",");
                    return Err(header_error(src, &found));
                }
                header_seen = true;
                continue;
            }
            match parse_line(&record, line, src) {
                Ok(entry) => list.push(entry),
                Err(message) => problems.push(LineProblem {
                    origin: src.origin.to_string(),
                    line,
                    message,
                }),
            }
        }
        if !header_seen {
            return Err(header_error(src, "(an empty file)"));
        }
        Ok(Parsed { list, problems })
    }

    /// Reads and parses a list file (version 0); see [`PlateList::parse`].
    pub fn load_file(
        path: &Path,
        name: &str,
        default_priority: u8,
        time_zone: Tz,
    ) -> Result<Parsed, ListError> {
        let text = std::fs::read(path).map_err(|source| ListError::Read {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        Self::parse(
            &text,
            &ListSource {
                name,
                version: 0,
                default_priority,
                time_zone,
                origin: &origin,
            },
        )
    }

    /// The best entry for `read` that applies at `at`: an exact match if there is one, else
    /// a look-alike match (one character differing by a pair of [`crate::LOOK_ALIKES`]). Among
    /// several, the highest priority (lowest number) wins, then the first plate in order.
    #[must_use]
    pub fn lookup(&self, read: &str, at: DateTime<Utc>) -> Option<ListHit<'_>> {
        let plate = normalise(read);
        if plate.is_empty() || self.entries.is_empty() {
            return None;
        }
        if let Some(entry) = self.best(&plate, at) {
            return Some(ListHit {
                entry,
                fuzzy: false,
            });
        }
        let mut best: Option<&ListEntry> = None;
        for_each_variant(&plate, |variant| {
            if let Some(e) = self.best(variant, at)
                && best.is_none_or(|b| (e.priority, &e.plate) < (b.priority, &b.plate))
            {
                best = Some(e);
            }
        });
        best.map(|entry| ListHit { entry, fuzzy: true })
    }

    fn best(&self, plate: &str, at: DateTime<Utc>) -> Option<&ListEntry> {
        self.entries
            .get(plate)?
            .iter()
            .filter(|e| e.valid_at(at))
            .min_by_key(|e| (e.priority, e.line))
    }

    /// The [`ListMatch`] carried in a violation for a hit in this list.
    #[must_use]
    pub fn to_match(&self, hit: &ListHit<'_>) -> ListMatch {
        ListMatch {
            name: self.name.clone(),
            version: self.version,
            entry: hit.entry.plate.clone(),
            fuzzy: hit.fuzzy,
        }
    }
}

fn header_error(src: &ListSource<'_>, found: &str) -> ListError {
    ListError::Header {
        origin: src.origin.to_string(),
        expected: CSV_HEADER,
        found: found.to_string(),
    }
}

fn parse_line(
    record: &csv::StringRecord,
    line: u64,
    src: &ListSource<'_>,
) -> Result<ListEntry, String> {
    if record.len() > COLUMNS.len() {
        return Err(format!(
            "{} fields, at most 5 expected ({CSV_HEADER}); quote a reason that contains a comma",
            record.len()
        ));
    }
    let field = |i: usize| record.get(i).unwrap_or("");
    let plate = normalise(field(0));
    if plate.is_empty() {
        return Err(format!(
            "no plate in `{}`; the first field is the plate, e.g. 123ABC01",
            field(0)
        ));
    }
    if plate.chars().count() > MAX_PLATE_LEN {
        return Err(format!(
            "plate `{plate}` is longer than {MAX_PLATE_LEN} characters; check the columns ({CSV_HEADER})"
        ));
    }
    let priority = match field(2) {
        "" => src.default_priority,
        p => p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=9).contains(p))
            .ok_or_else(|| {
                format!(
                    "priority `{p}` is not a number from 1 (highest) to 9; write one, or leave it empty for the list's priority"
                )
            })?,
    };
    let valid_from = bound(field(3), "valid_from", false, src.time_zone)?;
    let valid_until = bound(field(4), "valid_to", true, src.time_zone)?;
    if let (Some(from), Some(until)) = (valid_from, valid_until)
        && until <= from
    {
        return Err(format!(
            "valid_to `{}` is not after valid_from `{}`; swap or fix them",
            field(4),
            field(3)
        ));
    }
    Ok(ListEntry {
        plate,
        reason: field(1).to_string(),
        priority,
        valid_from,
        valid_until,
        line,
    })
}

/// Parses a validity bound: RFC 3339, or a date in the site's time zone (a `valid_to` date
/// lasts to the end of that day).
fn bound(s: &str, column: &str, end: bool, tz: Tz) -> Result<Option<DateTime<Utc>>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let bad = || {
        format!(
            "{column} `{s}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time (2025-06-30T18:00:00+05:00); fix it or leave it empty"
        )
    };
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    let day = if end {
        date.succ_opt().ok_or_else(bad)?
    } else {
        date
    };
    Ok(Some(local_midnight(day, tz)))
}

/// The instant a local day starts in `tz` (the first valid local time when midnight is skipped).
fn local_midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = day.and_time(NaiveTime::MIN);
    for shift in 0..=3 {
        match tz.from_local_datetime(&(naive + TimeDelta::hours(shift))) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return t.with_timezone(&Utc),
            LocalResult::None => {}
        }
    }
    Utc.from_utc_datetime(&naive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(origin: &str) -> ListSource<'_> {
        ListSource {
            name: "wanted",
            version: 3,
            default_priority: 5,
            time_zone: Tz::Asia__Almaty,
            origin,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const LIST: &str = "plate,reason,priority,valid_from,valid_to
123 abc-01,stolen vehicle,1,,
# a comment line
777KZA02,unpaid fines,,2025-01-01,2025-06-30

B0X123,\"wanted, armed\",2,2025-03-01T00:00:00Z,2025-03-02T00:00:00Z
";

    fn parsed() -> PlateList {
        let p = PlateList::parse(LIST.as_bytes(), &src("wanted.csv")).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        p.list
    }

    #[test]
    fn a_list_parses_with_normalised_plates_and_default_priority() {
        let list = parsed();
        assert_eq!(list.len(), 3);
        assert_eq!(list.version(), 3);
        let hit = list
            .lookup("123ABC01", utc("2025-05-01T00:00:00Z"))
            .unwrap();
        assert!(!hit.fuzzy);
        assert_eq!(hit.entry.reason, "stolen vehicle");
        assert_eq!(hit.entry.line, 2);
        let hit = list
            .lookup("777 kza 02", utc("2025-05-01T00:00:00Z"))
            .unwrap();
        assert_eq!(hit.entry.priority, 5);
        assert_eq!(hit.entry.line, 4);
    }

    #[test]
    fn dates_are_whole_local_days_and_times_are_instants() {
        let list = parsed();
        // Almaty is UTC+5: 2025-01-01 starts at 2024-12-31T19:00Z, 2025-06-30 ends at 19:00Z.
        assert!(
            list.lookup("777KZA02", utc("2024-12-31T18:59:59Z"))
                .is_none()
        );
        assert!(
            list.lookup("777KZA02", utc("2024-12-31T19:00:00Z"))
                .is_some()
        );
        assert!(
            list.lookup("777KZA02", utc("2025-06-30T18:59:59Z"))
                .is_some()
        );
        assert!(
            list.lookup("777KZA02", utc("2025-06-30T19:00:00Z"))
                .is_none()
        );
        assert!(list.lookup("B0X123", utc("2025-03-01T12:00:00Z")).is_some());
        assert!(list.lookup("B0X123", utc("2025-03-02T00:00:00Z")).is_none());
    }

    #[test]
    fn one_look_alike_character_is_a_fuzzy_match_and_two_are_none() {
        let list = parsed();
        let at = utc("2025-03-01T12:00:00Z");
        let hit = list.lookup("BOX123", at).unwrap();
        assert!(hit.fuzzy);
        assert_eq!(hit.entry.plate, "B0X123");
        assert_eq!(
            list.to_match(&hit),
            ListMatch {
                name: "wanted".into(),
                version: 3,
                entry: "B0X123".into(),
                fuzzy: true
            }
        );
        assert!(list.lookup("80X123", at).unwrap().fuzzy);
        assert!(list.lookup("8OX123", at).is_none(), "two substitutions");
        assert!(list.lookup("B0X124", at).is_none(), "not a look-alike");
        assert!(list.lookup("B0X12", at).is_none());
        assert!(list.lookup("", at).is_none());
    }

    #[test]
    fn an_exact_match_wins_over_a_look_alike() {
        let entry = |plate: &str, priority| ListEntry {
            plate: plate.into(),
            reason: String::new(),
            priority,
            valid_from: None,
            valid_until: None,
            line: 2,
        };
        let list = PlateList::from_entries("l", 1, vec![entry("AB01", 9), entry("A801", 1)]);
        let hit = list.lookup("AB01", Utc::now()).unwrap();
        assert!(!hit.fuzzy);
        assert_eq!(hit.entry.plate, "AB01");
    }

    #[test]
    fn malformed_lines_are_reported_by_file_and_line_and_the_good_lines_load() {
        let text = "plate,reason,priority,valid_from,valid_to
123ABC01,ok,1,,
,no plate,1,,
456DEF02,bad priority,high,,
789GHI03,bad date,3,2025-13-01,
111AAA01,backwards,3,2025-02-01,2025-01-01
222BBB02,too,many,,,,
333CCC03,fine
";
        let p = PlateList::parse(text.as_bytes(), &src("/etc/anpr/lists/wanted.csv")).unwrap();
        assert_eq!(p.list.len(), 2);
        let lines: Vec<u64> = p.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        let shown: Vec<String> = p.problems.iter().map(ToString::to_string).collect();
        assert!(
            shown[0].starts_with("/etc/anpr/lists/wanted.csv, line 3: no plate"),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].contains("priority `high` is not a number from 1 (highest) to 9"),
            "{}",
            shown[1]
        );
        assert!(
            shown[2].contains("valid_from `2025-13-01` is neither a date"),
            "{}",
            shown[2]
        );
        assert!(shown[3].contains("is not after valid_from"), "{}", shown[3]);
        assert!(shown[4].contains("7 fields"), "{}", shown[4]);
    }

    #[test]
    fn a_list_without_its_header_is_refused_whole() {
        let err = PlateList::parse(b"123ABC01,stolen,1,,\n", &src("w.csv")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("w.csv, line 1: the first line must be the header"),
            "{msg}"
        );
        assert!(msg.contains(CSV_HEADER), "{msg}");
        assert!(PlateList::parse(b"", &src("w.csv")).is_err());
    }

    #[test]
    fn a_byte_order_mark_and_an_upper_case_header_are_accepted() {
        let text = "\u{feff}Plate,Reason,Priority,Valid_From,Valid_To\n123ABC01,x,1,,\n";
        let p = PlateList::parse(text.as_bytes(), &src("w.csv")).unwrap();
        assert_eq!(p.list.len(), 1);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_reported_and_skipped() {
        let mut text = b"plate,reason,priority,valid_from,valid_to\n123ABC01,x,1,,\n".to_vec();
        text.extend_from_slice(b"456DEF02,\xff\xfe,1,,\n789GHI03,y,,,\n");
        let p = PlateList::parse(&text, &src("w.csv")).unwrap();
        assert_eq!(p.list.len(), 2);
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].line, 3);
    }

    #[test]
    fn a_missing_list_file_is_an_error_naming_it() {
        let err = PlateList::load_file(Path::new("/nonexistent/wanted.csv"), "wanted", 5, Tz::UTC)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plate list `wanted`") && err.contains("/nonexistent/wanted.csv"),
            "{err}"
        );
    }

    /// A list of 100,000 distinct plates of the form `123ABC01`.
    fn big_list() -> PlateList {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let letters = b"ABCDEFGHJKLMNPRSTUVWXYZ";
        let mut plates = std::collections::HashSet::new();
        while plates.len() < 100_000 {
            let mut p = format!("{:03}", next(1000));
            for _ in 0..3 {
                p.push(letters[next(letters.len() as u64) as usize] as char);
            }
            p = format!("{p}{:02}", 1 + next(20));
            plates.insert(p);
        }
        let entries = plates
            .into_iter()
            .enumerate()
            .map(|(i, plate)| ListEntry {
                plate,
                reason: "wanted".into(),
                priority: 3,
                valid_from: None,
                valid_until: None,
                line: i as u64 + 2,
            })
            .collect();
        PlateList::from_entries("big", 1, entries)
    }

    #[test]
    fn a_read_is_checked_against_100000_plates_in_microseconds() {
        let list = big_list();
        assert_eq!(list.len(), 100_000);
        let listed: Vec<String> = list.entries().take(500).map(|e| e.plate.clone()).collect();
        let at = Utc::now();
        // Reads full of look-alike characters are the slowest: every variant is probed.
        let reads: Vec<String> = listed
            .iter()
            .map(|p| p.replace('0', "O"))
            .chain((0..500).map(|i| format!("{:03}SOS{:02}", i % 1000, i % 100)))
            .collect();
        let start = std::time::Instant::now();
        let mut hits = 0;
        for read in &reads {
            hits += usize::from(list.lookup(read, at).is_some());
        }
        let per_read = start.elapsed() / reads.len() as u32;
        assert!(hits >= 1, "some listed plates were found");
        assert!(
            per_read < std::time::Duration::from_micros(100),
            "{per_read:?} per read"
        );
        println!("{per_read:?} per read against {} plates", list.len());
    }
}
