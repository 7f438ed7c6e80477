//! Commands from the central side (`<prefix>/<inventory>/cmd`), passed on by the uplink.
//!
//! Today one kind: a plate-list update. The broker's ACL lets only the central side publish
//! here, but the device does not rely on the broker: an update is checked whole (JSON, the
//! central key's signature for this device's inventory, version above the one in force,
//! SHA-256, every line) before it is put in force and kept in `lists_dir`; the recognition
//! threads see the new version from their next passage on, without a restart. A refused
//! update (a forged or mis-signed one, a replayed older version, a damaged list) is raised as
//! a `plate-list-update` fault on the health channel and the list in force stays. The version
//! already in force, validly signed and sent again (a QoS 1 duplicate, the retained command
//! after a reconnect), is ignored: the signature is checked before the version, so a forged
//! command at that version is a fault, not a duplicate.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anpr_rules::{ListUpdateError, Lists};
use anpr_uplink::{Command, Counters};
use tokio::sync::mpsc;

use crate::DeviceCounters;

/// Serves commands until the uplink hangs up.
pub(crate) async fn serve(
    mut rx: mpsc::UnboundedReceiver<Command>,
    lists: Arc<Lists>,
    lists_dir: PathBuf,
    counters: Arc<DeviceCounters>,
    uplink: Arc<Counters>,
) {
    while let Some(cmd) = rx.recv().await {
        // Writing the accepted list syncs a file and its directory: off the async runtime.
        let (lists, dir) = (lists.clone(), lists_dir.clone());
        let outcome =
            tokio::task::spawn_blocking(move || lists.apply_and_keep(&cmd.payload, &dir)).await;
        match outcome {
            Ok(Ok(done)) => {
                counters.list_updates.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    list = %done.name,
                    version = done.version,
                    previous = done.previous,
                    entries = done.entries,
                    "Plate list updated from the central side."
                );
            }
            // QoS 1 may bring a command twice, and a retained one comes back on every
            // reconnect: the version in force again is no news and no fault. (NotNewer comes
            // only after the signature verified: a forged one is a Signature error.)
            Ok(Err(ListUpdateError::NotNewer {
                name,
                version,
                current,
            })) if version == current => {
                tracing::info!(list = %name, version, "Plate list update already in force.");
            }
            Ok(Err(e)) => {
                counters
                    .list_updates_refused
                    .fetch_add(1, Ordering::Relaxed);
                let fault = e.fault();
                tracing::warn!(error = %e, "Plate list update refused; the list in force stays.");
                uplink.raise_fault(&fault.code, &fault.message);
            }
            Err(e) => {
                counters
                    .list_updates_refused
                    .fetch_add(1, Ordering::Relaxed);
                uplink.raise_fault("plate-list-update", &format!("update failed: {e}"));
            }
        }
    }
}
