//! Evidence images: stored only for an event stored here, and only when the bytes match the
//! sha256 and size the event names.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::ts;
use crate::{CentralError, Receiver};

/// What became of an evidence image that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOutcome {
    /// Stored now (`true`) or already stored before (`false`); acknowledge it.
    Stored { new: bool, seq: u64 },
    /// Its event is not stored here: not acknowledged, the device sends it again later.
    UnknownEvent,
    /// The event names no image of this kind, or the bytes do not match its sha256 or size.
    Mismatch,
}

impl Receiver {
    /// Stores an evidence image of the event `event_id` if that event is here and the bytes
    /// match the reference; see [`ImageOutcome`].
    pub fn store_image(
        &mut self,
        event_id: Uuid,
        kind: &str,
        data: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<ImageOutcome, CentralError> {
        let found: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT seq, payload FROM events WHERE event_id = ?1",
                params![event_id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.db())?;
        let Some((seq, payload)) = found else {
            return Ok(ImageOutcome::UnknownEvent);
        };
        let event: Option<anpr_types::Event> = serde_json::from_str(&payload).ok();
        let sha = anpr_store::sha256_hex(data);
        let Some(r) = event.and_then(|e| e.evidence.into_iter().find(|r| r.kind == kind)) else {
            return Ok(ImageOutcome::Mismatch);
        };
        if r.sha256 != sha || r.size != data.len() as u64 {
            return Ok(ImageOutcome::Mismatch);
        }
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO evidence (event_id, kind, sha256, size, received_at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    event_id.to_string(),
                    kind,
                    sha,
                    data.len() as i64,
                    ts(received_at),
                    data
                ],
            )
            .map_err(self.db())?;
        Ok(ImageOutcome::Stored {
            new: n == 1,
            seq: seq as u64,
        })
    }

    /// The stored bytes of an evidence image.
    pub fn image(&self, event_id: Uuid, kind: &str) -> Result<Option<Vec<u8>>, CentralError> {
        self.conn
            .query_row(
                "SELECT data FROM evidence WHERE event_id = ?1 AND kind = ?2",
                params![event_id.to_string(), kind],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())
    }
}

#[cfg(test)]
mod tests {
    use anpr_types::{EventKind, EvidenceRef};
    use chrono::Utc;
    use uuid::Uuid;

    use crate::db::tests::delivery;
    use crate::{ImageOutcome, Receiver};

    #[test]
    fn an_image_is_stored_only_for_a_stored_event_and_matching_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Receiver::open(&dir.path().join("c.sqlite")).unwrap();
        let bytes = vec![7u8; 40];
        let mut d = delivery("INV-A", 5, EventKind::Passage);
        d.event.evidence.push(EvidenceRef {
            kind: "overview".into(),
            sha256: anpr_store::sha256_hex(&bytes),
            size: 40,
            content_type: "image/jpeg".into(),
        });
        let id = d.event.event_id;
        assert_eq!(
            r.store_image(id, "overview", &bytes, Utc::now()).unwrap(),
            ImageOutcome::UnknownEvent
        );
        r.store(&d, Utc::now()).unwrap();
        assert_eq!(
            r.store_image(id, "overview", &bytes[1..], Utc::now())
                .unwrap(),
            ImageOutcome::Mismatch
        );
        assert_eq!(
            r.store_image(id, "plate", &bytes, Utc::now()).unwrap(),
            ImageOutcome::Mismatch
        );
        assert_eq!(
            r.store_image(id, "overview", &bytes, Utc::now()).unwrap(),
            ImageOutcome::Stored { new: true, seq: 5 }
        );
        assert_eq!(
            r.store_image(id, "overview", &bytes, Utc::now()).unwrap(),
            ImageOutcome::Stored { new: false, seq: 5 }
        );
        assert_eq!(r.image(id, "overview").unwrap(), Some(bytes));
        assert_eq!(r.image(Uuid::now_v7(), "overview").unwrap(), None);
    }
}
