//! Import of an export bundle (`anpr export` on a device whose data could not go out live):
//! the same checks and the same storage as live delivery, so that when the device's link
//! returns and it sends the same events, they are duplicates, acknowledged and stored once.
//!
//! # Contract
//!
//! - The bundle is checked whole first ([`anpr_trust::bundle::Bundle::check`]) with the
//!   device's public key from the devices directory (`<devices>/<inventory>.pub`, the
//!   inventory named by the manifest): the manifest's signature, every file's sha256, every
//!   line against the manifest, every event's signature and link, every image against its
//!   event. Any problem refuses the whole bundle, naming each file, and nothing is stored.
//! - Every event then passes the receiver's own gate (`gate::refusal`, as on its topic) and is
//!   stored by [`Receiver::store_batch`], in one transaction, as a delivery sent at the
//!   bundle's copy time and `delayed`: deduplicated on event id and `(inventory, seq)`, the
//!   chain links checked against what is stored. A copy of a stored event is counted as a
//!   duplicate (its copy count goes up); one that conflicts with what is stored is recorded in
//!   `chain_breaks` and reported, as it would be live.
//! - Then each image, through [`Receiver::store_image`] (stored only for a stored event whose
//!   sha256 and size it matches; a copy of a stored image is a duplicate).
//! - No acknowledgement is sent: the device is not on the line. When its link returns it sends
//!   the events again; the receiver finds them stored with the same hash and acknowledges each
//!   (signed, over that hash), and the device marks them delivered.

use std::path::{Path, PathBuf};

use anpr_trust::DeviceKeys;
use anpr_trust::bundle::{Bundle, BundleError, EVENTS_FILE, Problem};
use anpr_types::Delivery;
use chrono::Utc;

use crate::{CentralError, ImageOutcome, Receiver, Stored};

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub inventory: String,
    pub bundle_id: uuid::Uuid,
    /// Sequence numbers of the events stored now, and of those already stored (duplicates).
    pub stored: Vec<u64>,
    pub duplicates: Vec<u64>,
    /// Events not stored because they conflict with what is stored (recorded in
    /// `chain_breaks`): sequence number and reason.
    pub refused: Vec<(u64, String)>,
    /// Images stored now, and already stored.
    pub images_stored: u64,
    pub images_duplicate: u64,
    /// Images not stored (their event was refused): the bundle's paths.
    pub images_refused: Vec<String>,
}

/// Why a bundle was not imported. Nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(
        "bundle {dir} refused, nothing imported: {} problem(s): {}; get a new copy of the bundle from the device (`anpr export`), or `anpr verify --bundle` it",
        problems.len(),
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Refused {
        dir: PathBuf,
        problems: Vec<Problem>,
    },
    #[error(transparent)]
    Trust(#[from] anpr_trust::TrustError),
    #[error(transparent)]
    Central(#[from] CentralError),
}

/// Imports the bundle in `dir` into the receiver's database at `db`, checking it with the
/// device keys in `devices`.
pub fn import(db: &Path, devices: &Path, dir: &Path) -> Result<ImportReport, ImportError> {
    let bundle = Bundle::open(dir)?;
    let inventory = bundle.manifest.inventory.clone();
    let keys = DeviceKeys::open(devices)?;
    let key = keys.get(&inventory)?;
    let report = bundle.check(Some(&key));
    let mut problems = report.problems;
    let deliveries: Vec<Delivery> = report
        .events
        .into_iter()
        .map(|event| Delivery {
            event,
            sent_at: bundle.manifest.created_at,
            delayed: true,
        })
        .collect();
    for d in &deliveries {
        if let Some(reason) = crate::gate::refusal(&keys, &inventory, d) {
            problems.push(Problem {
                file: EVENTS_FILE.into(),
                what: format!("seq {}: {}", d.event.seq, crate::escape::escape(&reason)),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Refused {
            dir: dir.to_path_buf(),
            problems,
        });
    }
    let mut receiver = Receiver::open(db)?;
    let now = Utc::now();
    let items: Vec<(&Delivery, _)> = deliveries.iter().map(|d| (d, now)).collect();
    let mut out = ImportReport {
        inventory: inventory.clone(),
        bundle_id: bundle.manifest.bundle_id,
        ..ImportReport::default()
    };
    for (d, stored) in deliveries.iter().zip(receiver.store_batch(&items)?) {
        match stored {
            Stored::New { .. } => out.stored.push(d.event.seq),
            Stored::Duplicate { .. } => out.duplicates.push(d.event.seq),
            Stored::Refused { reason } => out.refused.push((d.event.seq, reason)),
        }
    }
    for img in &bundle.manifest.images {
        let path = bundle.file(&img.path);
        let data = std::fs::read(&path).map_err(|source| BundleError::Read { path, source })?;
        match receiver.store_image(img.event_id, &img.kind, &data, Utc::now())? {
            ImageOutcome::Stored { new: true, .. } => out.images_stored += 1,
            ImageOutcome::Stored { new: false, .. } => out.images_duplicate += 1,
            ImageOutcome::UnknownEvent | ImageOutcome::Mismatch => {
                out.images_refused.push(img.path.clone());
            }
        }
    }
    tracing::info!(
        inventory = %crate::escape::Escaped(&inventory),
        bundle = %out.bundle_id,
        stored = out.stored.len(),
        duplicates = out.duplicates.len(),
        refused = out.refused.len(),
        images = out.images_stored,
        "Export bundle imported."
    );
    Ok(out)
}
