//! Evidence images: stored with their event (see `append`), offered for sending only once
//! their event is acknowledged, and released when they are acknowledged (a violation's: when
//! its row is removed, `retention.rs`) or dropped.

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::sqlite::rows4;
use crate::{Store, StoreError};

/// Lower-case hex sha256 of `data`.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// An evidence image to store with its event.
#[derive(Debug, Clone)]
pub struct NewEvidence {
    /// `overview` or `plate`.
    pub kind: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// An evidence image waiting for delivery (its event is already delivered); its bytes are
/// read with [`Store::evidence`] when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvidence {
    pub seq: u64,
    pub event_id: Uuid,
    pub kind: String,
    pub sha256: String,
}

impl Store {
    /// Up to `limit` undelivered evidence images whose event is delivered, with sequence above
    /// `after`, in sequence order: images go out after their event.
    pub fn pending_evidence(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<PendingEvidence>, StoreError> {
        let rows = rows4(
            &self.conn,
            "SELECT v.seq, e.event_id, v.kind, v.sha256 FROM evidence v JOIN events e ON e.seq = v.seq
             WHERE v.ready = 1 AND v.delivered_at IS NULL AND v.dropped_at IS NULL AND v.seq > ?1
             ORDER BY v.seq, v.kind LIMIT ?2",
            params![after as i64, limit as i64],
        )
        .map_err(self.sql())?;
        let mut out = Vec::new();
        for (seq, id, kind, sha256) in rows {
            let event_id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt {
                seq,
                message: e.to_string(),
            })?;
            out.push(PendingEvidence {
                seq,
                event_id,
                kind,
                sha256,
            });
        }
        Ok(out)
    }

    /// The stored bytes of one evidence image (`None` if absent or dropped).
    pub fn evidence(&self, seq: u64, kind: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT data FROM evidence WHERE seq = ?1 AND kind = ?2",
                params![seq as i64, kind],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(self.sql())
    }

    /// Number of evidence images not yet delivered (nor dropped); counted on the index of
    /// such images, so it costs what is pending, not the whole queue.
    pub fn pending_evidence_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM evidence WHERE delivered_at IS NULL AND dropped_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.sql())
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{event, image};
    use crate::{AckOutcome, Store, sha256_hex};

    #[test]
    fn evidence_is_referenced_by_sha256_and_offered_only_after_its_event_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let e = s
            .append_with(
                event,
                vec![image("overview", 1, 1000), image("plate", 2, 100)],
            )
            .unwrap();
        assert_eq!(e.evidence.len(), 2);
        assert_eq!(e.evidence[0].sha256, sha256_hex(&[1u8; 1000]));
        assert_eq!(e.evidence[1].size, 100);
        assert_eq!(s.get(e.seq).unwrap().unwrap().evidence, e.evidence);
        assert!(
            s.pending_evidence(0, 10).unwrap().is_empty(),
            "event not delivered yet"
        );
        s.mark_delivered(e.event_id, e.seq).unwrap();
        let images = s.pending_evidence(0, 10).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(
            s.evidence(e.seq, &images[0].kind).unwrap().unwrap(),
            vec![1u8; 1000]
        );
        let wrong = s
            .mark_delivered_batch(&[(
                e.event_id,
                e.seq,
                Some(e.evidence[1].sha256.as_str().get(1..).unwrap()),
            )])
            .unwrap();
        assert_eq!(wrong, vec![AckOutcome::Unknown]);
        let sha = e.evidence[0].sha256.clone();
        let acks = s
            .mark_delivered_batch(&[
                (e.event_id, e.seq, Some(&sha)),
                (e.event_id, e.seq, Some(&sha)),
            ])
            .unwrap();
        assert_eq!(acks, vec![AckOutcome::Marked, AckOutcome::AlreadyDelivered]);
        assert_eq!(s.pending_evidence_count().unwrap(), 1);
        assert_eq!(s.pending_evidence(0, 10).unwrap()[0].kind, "plate");
    }
}
