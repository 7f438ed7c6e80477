//! What the central side stored, asked of whichever store it uses: the [`StoredOracle`]
//! trait, and its implementations for the single receiver's SQLite database ([`CentralDb`])
//! and for the scaled receiver's archive, PostgreSQL and the object store ([`ArchiveDb`]).

use std::future::Future;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Why an oracle could not answer (its own error, boxed: the oracle belongs to the store).
pub type OracleError = Box<dyn std::error::Error + Send + Sync>;

/// One stored row of an event: one per copy the store holds (a store that deduplicates holds
/// one per event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub inventory: String,
    pub seq: u64,
    pub event_id: Uuid,
    pub captured_at: DateTime<Utc>,
    /// When the central side stored it.
    pub received_at: DateTime<Utc>,
    /// The images stored for it.
    pub images: Vec<StoredImage>,
}

/// A stored evidence image: its kind and the sha256 of the bytes the store holds (computed
/// from them, or checked against them when stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub kind: String,
    pub sha256: String,
}

/// What the central side stored of some devices' events.
pub trait StoredOracle {
    /// Every stored row of the devices `inventories`, duplicates included.
    fn stored(
        &self,
        inventories: &[String],
    ) -> impl Future<Output = Result<Vec<StoredEvent>, OracleError>> + Send;
}

/// The single receiver's SQLite database (`anpr central`), read through
/// [`anpr_central::Receiver`]: events with their arrival times, images hashed from their
/// stored bytes.
#[derive(Debug, Clone)]
pub struct CentralDb {
    pub path: PathBuf,
}

impl StoredOracle for CentralDb {
    fn stored(
        &self,
        inventories: &[String],
    ) -> impl Future<Output = Result<Vec<StoredEvent>, OracleError>> + Send {
        let path = self.path.clone();
        let inventories = inventories.to_vec();
        async move { tokio::task::spawn_blocking(move || central_rows(&path, &inventories)).await? }
    }
}

fn central_rows(
    path: &std::path::Path,
    inventories: &[String],
) -> Result<Vec<StoredEvent>, OracleError> {
    let receiver = anpr_central::Receiver::open(path)?;
    let mut out = Vec::new();
    for inv in inventories {
        let delays: std::collections::HashMap<u64, f64> =
            receiver.arrival_delays(inv)?.into_iter().collect();
        for d in receiver.events_of(inv)? {
            let e = d.event;
            let delay = delays.get(&e.seq).copied().unwrap_or(0.0);
            let mut images = Vec::new();
            for r in &e.evidence {
                if let Some(bytes) = receiver.image(e.event_id, &r.kind)? {
                    images.push(StoredImage {
                        kind: r.kind.clone(),
                        sha256: anpr_store::sha256_hex(&bytes),
                    });
                }
            }
            out.push(StoredEvent {
                inventory: inv.clone(),
                seq: e.seq,
                event_id: e.event_id,
                captured_at: e.captured_at,
                received_at: e.captured_at + chrono::Duration::microseconds((delay * 1e6) as i64),
                images,
            });
        }
    }
    Ok(out)
}

/// The scaled receiver's archive (`anpr-fleet`): events from PostgreSQL (`stored_at`, the
/// row's write inside its commit, as the time stored), each violation's images from its
/// `evidence` rows, and, with [`ArchiveDb::objects`], each image's bytes fetched from the
/// object store and hashed (so an image counts as stored only when its object is there with
/// the recorded bytes).
#[derive(Debug, Clone)]
pub struct ArchiveDb {
    /// PostgreSQL URL, `postgres://anpr@127.0.0.1:5432/anpr`.
    pub postgres: String,
    pub objects: Option<anpr_fleet::ObjectStoreConfig>,
}

impl StoredOracle for ArchiveDb {
    fn stored(
        &self,
        inventories: &[String],
    ) -> impl Future<Output = Result<Vec<StoredEvent>, OracleError>> + Send {
        let this = self.clone();
        let wanted: std::collections::HashSet<String> = inventories.iter().cloned().collect();
        async move {
            let archive = anpr_fleet::Archive::connect(&this.postgres).await?;
            let objects = this
                .objects
                .as_ref()
                .map(anpr_fleet::ObjectStore::new)
                .transpose()?;
            let mut out = Vec::new();
            for e in archive.events(None).await? {
                if !wanted.contains(&e.inventory) {
                    continue;
                }
                let mut images = Vec::new();
                if e.kind == "violation" {
                    for (kind, key, _size) in archive.images_of(e.event_id).await? {
                        let sha256 = match &objects {
                            Some(store) => match store.get(&key).await? {
                                Some(bytes) => anpr_store::sha256_hex(&bytes),
                                None => format!("(no object {key})"),
                            },
                            None => key,
                        };
                        images.push(StoredImage { kind, sha256 });
                    }
                }
                out.push(StoredEvent {
                    inventory: e.inventory,
                    seq: e.seq,
                    event_id: e.event_id,
                    captured_at: e.captured_at,
                    received_at: e.stored_at,
                    images,
                });
            }
            Ok(out)
        }
    }
}
