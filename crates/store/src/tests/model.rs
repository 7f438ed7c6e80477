//! Random sequences of queue operations against a model of the queue.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::tests::event;
use crate::{AckOutcome, NewEvidence, QueueStats, Store, sha256_hex};

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The counts a queue holding the model's rows has (nothing pruned, so the last sequence
/// number is the number of rows).
fn model_stats(delivered: impl Iterator<Item = bool>, rows: usize) -> QueueStats {
    let delivered = delivered.filter(|d| *d).count() as u64;
    QueueStats {
        total: rows as u64,
        pending: rows as u64 - delivered,
        delivered,
        last_seq: rows as u64,
    }
}

/// One row of the model: event id, capture time, delivered, sending attempts, and its
/// image (sha256, delivered) if it has one.
struct Row {
    id: Uuid,
    captured_at: DateTime<Utc>,
    delivered: bool,
    attempts: u32,
    image: Option<(String, bool)>,
}

/// Random sequences of append (with or without an image) / publish (an attempt noted) /
/// event ack / image ack / disconnect (nothing in flight survives; the queue must not
/// change) / restart, checked against the model after every step.
#[test]
fn publishing_images_and_disconnects_agree_with_a_model_of_the_queue() {
    for seed in 0..25u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let mut store = Store::open(&path).unwrap();
        let mut rng = Lcg(seed ^ 0x5eed);
        let mut model: BTreeMap<u64, Row> = BTreeMap::new();
        for step in 0..120 {
            match rng.next(12) {
                0..=2 => {
                    let image = (rng.next(2) == 0).then(|| NewEvidence {
                        kind: "overview".into(),
                        content_type: "image/jpeg".into(),
                        data: vec![(step % 251) as u8; 64 + step],
                    });
                    let sha = image.as_ref().map(|i| sha256_hex(&i.data));
                    let e = store
                        .append_with(event, image.into_iter().collect())
                        .unwrap();
                    model.insert(
                        e.seq,
                        Row {
                            id: e.event_id,
                            captured_at: e.captured_at,
                            delivered: false,
                            attempts: 0,
                            image: sha.map(|s| (s, false)),
                        },
                    );
                }
                3 | 4 => {
                    // Publish up to three pending rows.
                    let seqs: Vec<u64> = model
                        .iter()
                        .filter(|(_, r)| !r.delivered)
                        .map(|(s, _)| *s)
                        .take(3)
                        .collect();
                    store.note_attempts(&seqs).unwrap();
                    for s in &seqs {
                        model.get_mut(s).unwrap().attempts += 1;
                    }
                }
                5 | 6 if !model.is_empty() => {
                    let seq = rng.next(model.len() as u64) + 1;
                    let row = model.get_mut(&seq).unwrap();
                    let want = if row.delivered {
                        AckOutcome::AlreadyDelivered
                    } else {
                        AckOutcome::Marked
                    };
                    assert_eq!(
                        store.mark_delivered(row.id, seq).unwrap(),
                        want,
                        "seed {seed}"
                    );
                    row.delivered = true;
                }
                7 => {
                    // Ack an image of a delivered event (images go out after their event).
                    let candidate = model
                        .iter_mut()
                        .filter(|(_, r)| r.delivered && r.image.is_some())
                        .nth(rng.next(4) as usize);
                    if let Some((seq, row)) = candidate {
                        let (sha, done) = row.image.as_mut().unwrap();
                        let want = if *done {
                            AckOutcome::AlreadyDelivered
                        } else {
                            AckOutcome::Marked
                        };
                        let got = store
                            .mark_delivered_batch(&[(row.id, *seq, Some(sha.as_str()))])
                            .unwrap();
                        assert_eq!(got, vec![want], "seed {seed}");
                        *done = true;
                    }
                }
                8 => store = Store::open(&path).unwrap(), // restart
                // Disconnect (the uplink forgets what was in flight): nothing in the queue
                // may change, which the checks below confirm.
                _ => {}
            }
            let pending: Vec<(u64, u32)> = store
                .pending(0, 10_000)
                .unwrap()
                .iter()
                .map(|p| (p.seq, p.attempts))
                .collect();
            let want: Vec<(u64, u32)> = model
                .iter()
                .filter(|(_, r)| !r.delivered)
                .map(|(s, r)| (*s, r.attempts))
                .collect();
            assert_eq!(pending, want, "seed {seed} step {step}: pending rows");
            let images: Vec<u64> = store
                .pending_evidence(0, 10_000)
                .unwrap()
                .iter()
                .map(|p| p.seq)
                .collect();
            let want: Vec<u64> = model
                .iter()
                .filter(|(_, r)| r.delivered && r.image.as_ref().is_some_and(|i| !i.1))
                .map(|(s, _)| *s)
                .collect();
            assert_eq!(images, want, "seed {seed} step {step}: images to send");
            assert_eq!(
                store.stats().unwrap(),
                model_stats(model.values().map(|r| r.delivered), model.len()),
                "seed {seed} step {step}: counts"
            );
        }
        for (seq, row) in &model {
            let e = store.get(*seq).unwrap().unwrap();
            assert_eq!((e.event_id, e.captured_at), (row.id, row.captured_at));
        }
    }
}

#[test]
fn random_operation_sequences_agree_with_a_model_of_the_queue() {
    for seed in 0..40u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let mut store = Store::open(&path).unwrap();
        let mut rng = Lcg(seed);
        // seq -> (event id, captured_at, delivered)
        let mut model: BTreeMap<u64, (Uuid, DateTime<Utc>, bool)> = BTreeMap::new();
        for _ in 0..150 {
            match rng.next(10) {
                0..=3 => {
                    let e = store.append(event).unwrap();
                    assert_eq!(e.seq, model.len() as u64 + 1, "seed {seed}: sequence gap");
                    model.insert(e.seq, (e.event_id, e.captured_at, false));
                }
                4..=6 if !model.is_empty() => {
                    let seq = rng.next(model.len() as u64) + 1;
                    let (id, _, done) = model[&seq];
                    let want = if done {
                        AckOutcome::AlreadyDelivered
                    } else {
                        AckOutcome::Marked
                    };
                    assert_eq!(store.mark_delivered(id, seq).unwrap(), want, "seed {seed}");
                    model.get_mut(&seq).unwrap().2 = true;
                }
                7 => {
                    let seq = rng.next(model.len() as u64 + 3) + 1;
                    assert_eq!(
                        store.mark_delivered(Uuid::now_v7(), seq).unwrap(),
                        AckOutcome::Unknown
                    );
                }
                8 => store = Store::open(&path).unwrap(), // restart
                _ => {
                    let pending: Vec<u64> = store
                        .pending(0, 10_000)
                        .unwrap()
                        .iter()
                        .map(|p| p.seq)
                        .collect();
                    let want: Vec<u64> = model
                        .iter()
                        .filter(|(_, v)| !v.2)
                        .map(|(s, _)| *s)
                        .collect();
                    assert_eq!(
                        pending, want,
                        "seed {seed}: pending rows differ from the model"
                    );
                    assert_eq!(
                        store.stats().unwrap(),
                        model_stats(model.values().map(|v| v.2), model.len()),
                        "seed {seed}: counts differ from the model"
                    );
                }
            }
        }
        for (seq, (id, captured_at, done)) in &model {
            let e = store.get(*seq).unwrap().unwrap();
            assert_eq!(
                (e.event_id, e.captured_at),
                (*id, *captured_at),
                "seed {seed}"
            );
            assert_eq!(
                store.is_delivered(*seq).unwrap(),
                Some(*done),
                "seed {seed}"
            );
        }
    }
}
