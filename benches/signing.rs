//! The cost of signing and chaining events at append, next to a baseline measured in the same
//! run: the same batches appended by a queue without a signer (events still hashed and chained,
//! not signed). Also the parts alone: hashing an event's canonical form, signing it, and a
//! receiver's check of its signature.
//!
//! Appends are durable (each batch one fsynced commit), in batches of 1 (one event per commit,
//! the slowest case) and 64 (the recognizer's group commit).
//!
//! `cargo bench -p anpr-store --bench signing`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use anpr_store::{NewRecord, Store};
use anpr_trust::SigningKey;
use anpr_trust::event::{event_hash, sign_event, verify_event};
use anpr_types::{
    ClockInfo, DeviceInfo, EVENT_SCHEMA, Event, EventKind, EventPlate, EventVehicle, EvidenceRef,
    FrameRef, PlateStatus, VehicleClass,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// A passage as the recognizer records it, with two evidence references.
fn passage(seq: u64) -> Event {
    Event {
        schema: EVENT_SCHEMA.into(),
        event_id: uuid::Uuid::now_v7(),
        seq,
        device: DeviceInfo {
            inventory: "KZ-BENCH".into(),
            profile: "stationary".into(),
            site: "A2-km-12".into(),
        },
        camera: "cam1".into(),
        kind: EventKind::Passage,
        captured_at: chrono::Utc::now(),
        clock: ClockInfo {
            source: "ntp".into(),
            synced: true,
            ..ClockInfo::default()
        },
        position: Some(anpr_types::Position::fixed(51.1694, 71.4491)),
        vehicle: EventVehicle {
            class: VehicleClass::Car,
            confidence: 0.91,
            bbox: Some([10, 20, 300, 200]),
            direction: Some("towards".into()),
            lane: Some("lane-1".into()),
        },
        plate: EventPlate {
            text: "123ABC01".into(),
            confidence: 0.95,
            detection_confidence: 0.8,
            bbox: [100, 150, 120, 26],
            country: Some("KZ".into()),
            plate_type: Some("private-2012".into()),
            region: Some("01 Astana".into()),
            status: PlateStatus::Read,
            low_confidence: false,
        },
        frame: FrameRef {
            index: seq,
            width: 1280,
            height: 720,
        },
        evidence: ["overview", "plate"]
            .iter()
            .map(|k| EvidenceRef {
                kind: (*k).into(),
                sha256: anpr_trust::sha256_hex(k.as_bytes()),
                size: 40_000,
                content_type: "image/jpeg".into(),
            })
            .collect(),
        track: None,
        violation: None,
        gap: None,
        custody: None,
        prev_hash: Some(anpr_trust::ZERO_HASH.into()),
        signature: None,
    }
}

fn batch(n: usize) -> Vec<NewRecord<'static>> {
    (0..n)
        .map(|_| NewRecord {
            build: Box::new(passage),
            evidence: Vec::new(),
        })
        .collect()
}

fn appends(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let dir = tempfile::tempdir().unwrap();
    for per_commit in [1usize, 64] {
        let mut g = c.benchmark_group(format!("append/{per_commit}-per-commit"));
        g.throughput(Throughput::Elements(per_commit as u64));
        g.sample_size(if per_commit == 1 { 50 } else { 20 });
        let mut unsigned =
            Store::open(&dir.path().join(format!("plain-{per_commit}.sqlite"))).unwrap();
        g.bench_function("unsigned (baseline)", |b| {
            b.iter_batched(
                || batch(per_commit),
                |records| unsigned.append_batch(records).unwrap(),
                BatchSize::SmallInput,
            );
        });
        let mut signed = Store::open(&dir.path().join(format!("signed-{per_commit}.sqlite")))
            .unwrap()
            .with_signer(key.clone());
        g.bench_function("signed", |b| {
            b.iter_batched(
                || batch(per_commit),
                |records| signed.append_batch(records).unwrap(),
                BatchSize::SmallInput,
            );
        });
        g.finish();
    }
}

fn parts(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    let e = passage(1);
    g.bench_function("hash (canonical JSON + sha256)", |b| {
        b.iter(|| event_hash(black_box(&e)));
    });
    g.bench_function("sign (canonical JSON + sha256 + ed25519)", |b| {
        b.iter_batched(
            || e.clone(),
            |mut e| sign_event(&mut e, &key),
            BatchSize::SmallInput,
        );
    });
    let mut signed = e.clone();
    sign_event(&mut signed, &key);
    let public = key.verifying_key();
    g.bench_function("verify (receiver)", |b| {
        b.iter(|| verify_event(black_box(&signed), &public).unwrap());
    });
    g.finish();
}

criterion_group!(benches, appends, parts);
criterion_main!(benches);
