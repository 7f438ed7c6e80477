//! Helpers shared by the tests of every module, and the tests that span modules.

mod model;

use anpr_types::{Event, EventKind};

use crate::NewEvidence;

/// A passage of a car, read, captured now, of device `INV-1`.
pub(crate) fn event(seq: u64) -> Event {
    anpr_types::sample::passage("INV-1", seq)
}

/// A violation, otherwise as [`event`].
pub(crate) fn violation(seq: u64) -> Event {
    Event {
        kind: EventKind::Violation,
        ..event(seq)
    }
}

/// A JPEG-typed image of `len` bytes, all `byte`.
pub(crate) fn image(kind: &str, byte: u8, len: usize) -> NewEvidence {
    NewEvidence {
        kind: kind.into(),
        content_type: "image/jpeg".into(),
        data: vec![byte; len],
    }
}

/// A full disk fails the append as disk-full, rolls it back whole, loses nothing stored, and
/// the queue takes events again (with the next sequence number) once space returns.
#[test]
fn a_full_disk_refuses_new_events_and_keeps_the_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = crate::Store::open(&dir.path().join("q.sqlite")).unwrap();
    for _ in 0..3 {
        store.append(event).unwrap();
    }
    store.cap_at_present_size(true).unwrap();
    let mut refused = None;
    // The pages already there have some room; big images fill it within a few events.
    for _ in 0..64 {
        match store.append_with(event, vec![image("overview", 7, 256 * 1024)]) {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("a capped queue must refuse an event at some point");
    assert!(err.is_disk_full(), "{err}");
    let before = store.stats().unwrap();
    assert!(before.last_seq >= 3);
    for seq in 1..=before.last_seq {
        assert!(store.get(seq).unwrap().is_some(), "event {seq} lost");
    }
    store.cap_at_present_size(false).unwrap();
    let next = store.append(event).unwrap();
    assert_eq!(
        next.seq,
        before.last_seq + 1,
        "no sequence number was used by the refusal"
    );
}

#[test]
fn only_a_full_disk_reads_as_disk_full() {
    let full = crate::StoreError::Sql {
        path: "q".into(),
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ),
    };
    let busy = crate::StoreError::Sql {
        path: "q".into(),
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ),
    };
    assert!(full.is_disk_full());
    assert!(!busy.is_disk_full());
    assert!(
        !crate::StoreError::Corrupt {
            seq: 1,
            message: "x".into()
        }
        .is_disk_full()
    );
}
