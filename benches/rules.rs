//! Plate-list lookup, next to a baseline measured in the same run: a read checked against a
//! list of 100,000 plates by hashing the read and its one-look-alike variants (ours), against
//! scanning every entry and comparing character by character (the baseline).
//!
//! `cargo bench -p anpr-rules --bench rules`.

use std::hint::black_box;

use anpr_rules::{ListEntry, PlateList, look_alikes};
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// 100,000 distinct plates of the form `123ABC01`, from a fixed seed.
fn plates() -> Vec<String> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let letters = b"ABCDEFGHJKLMNPRSTUVWXYZ";
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while out.len() < 100_000 {
        let mut p = format!("{:03}", next(1000));
        for _ in 0..3 {
            p.push(letters[next(letters.len() as u64) as usize] as char);
        }
        p = format!("{p}{:02}", 1 + next(20));
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    out
}

/// The baseline: every entry compared with the read, exact or one look-alike apart.
fn scan<'a>(plates: &'a [String], read: &str) -> Option<(&'a str, bool)> {
    let mut fuzzy = None;
    for p in plates {
        if p.len() != read.len() {
            continue;
        }
        let mut diffs = p.chars().zip(read.chars()).filter(|(a, b)| a != b);
        match (diffs.next(), diffs.next()) {
            (None, _) => return Some((p, false)),
            (Some((a, b)), None) if fuzzy.is_none() && look_alikes(b).any(|c| c == a) => {
                fuzzy = Some((p.as_str(), true));
            }
            _ => {}
        }
    }
    fuzzy
}

fn lookup(c: &mut Criterion) {
    let plates = plates();
    let entries = plates
        .iter()
        .enumerate()
        .map(|(i, p)| ListEntry {
            plate: p.clone(),
            reason: "wanted".into(),
            priority: 3,
            valid_from: None,
            valid_until: None,
            line: i as u64 + 2,
        })
        .collect();
    let list = PlateList::from_entries("wanted", 1, entries);
    let at = Utc::now();
    assert!(list.lookup("808SOS05", at).is_none());
    let listed = plates[50_000].clone();
    // One look-alike away from a listed plate (a 0 in its digits read as O), and a miss full
    // of look-alike characters.
    let fuzzy = plates
        .iter()
        .find(|p| p[..3].matches('0').count() == 1)
        .expect("a plate with one 0 in its digits")
        .replacen('0', "O", 1);
    assert!(list.lookup(&fuzzy, at).is_some_and(|h| h.fuzzy));
    let miss = "808SOS05".to_string();
    let mut g = c.benchmark_group("plate_list_100k");
    g.throughput(Throughput::Elements(1));
    for (name, read) in [("exact", &listed), ("look-alike", &fuzzy), ("miss", &miss)] {
        g.bench_function(format!("hash/{name}"), |b| {
            b.iter(|| list.lookup(black_box(read), at).is_some());
        });
        g.bench_function(format!("scan baseline/{name}"), |b| {
            b.iter(|| scan(&plates, black_box(read)).is_some());
        });
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
