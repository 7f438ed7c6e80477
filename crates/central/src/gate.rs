//! What the receiver checks before it stores an event (who sent it), and the acknowledgements
//! it signs.

use anpr_trust::{DeviceKeys, SigningKey};
use anpr_types::{Ack, Delivery};

use crate::{CentralConfig, CentralError};

/// The receiver's key and the devices it knows.
#[derive(Debug)]
pub struct Gate {
    key: SigningKey,
    devices: DeviceKeys,
}

impl Gate {
    /// The gate of `cfg`: its signing key, and its devices directory (which must exist).
    pub fn new(cfg: &CentralConfig) -> Result<Self, CentralError> {
        Ok(Self {
            key: cfg.signing_key.clone(),
            devices: DeviceKeys::open(&cfg.devices)?,
        })
    }

    /// The gate of a receiver configured otherwise (the scaled receiver, `anpr-fleet`): its
    /// signing key `key`, and the directory `devices` of the devices' public keys
    /// (`<inventory>.pub`; it must exist).
    pub fn with_keys(key: SigningKey, devices: &std::path::Path) -> Result<Self, CentralError> {
        Ok(Self {
            key,
            devices: DeviceKeys::open(devices)?,
        })
    }

    /// Why the event `d`, which arrived on the topic of device `topic_inventory`, may not be
    /// stored as that device's; `None` when it may. Reasons quote what the payload says
    /// escaped (`{:?}`), since it comes from outside.
    #[must_use]
    pub fn refusal(&self, topic_inventory: &str, d: &Delivery) -> Option<String> {
        refusal(&self.devices, topic_inventory, d)
    }

    /// The signed acknowledgement of the stored event `d` whose hash is `hash`.
    #[must_use]
    pub fn event_ack(&self, d: &Delivery, hash: &str) -> Ack {
        anpr_trust::ack::event_ack(
            &self.key,
            &d.event.device.inventory,
            d.event.seq,
            d.event.event_id,
            hash,
        )
    }

    /// The signed acknowledgement of an evidence image (its sha256) of the event `event_id` /
    /// `seq` of device `inventory`.
    #[must_use]
    pub fn image_ack(&self, inventory: &str, seq: u64, event_id: uuid::Uuid, sha256: &str) -> Ack {
        anpr_trust::ack::image_ack(&self.key, inventory, seq, event_id, sha256)
    }
}

/// Why the event `d`, which arrived as device `topic_inventory`'s (on its topic, or in its
/// export bundle), may not be stored as that device's, checked against the keys in
/// `devices`; `None` when it may. The receiver's loop and the import of bundles share it.
#[must_use]
pub(crate) fn refusal(devices: &DeviceKeys, topic_inventory: &str, d: &Delivery) -> Option<String> {
    // Sequence numbers start at 1 and are stored as SQLite integers (i64).
    if d.event.seq == 0 || d.event.seq >= i64::MAX as u64 {
        return Some(format!(
            "sequence number {} is out of range (1 to {})",
            d.event.seq,
            i64::MAX - 1
        ));
    }
    let named = &d.event.device.inventory;
    if named != topic_inventory {
        return Some(format!(
            "the payload names device {named:?}, not the device of its topic"
        ));
    }
    let key = match devices.get(topic_inventory) {
        Ok(k) => k,
        Err(e) => return Some(format!("unknown device: {e}")),
    };
    anpr_trust::event::verify_event(&d.event, &key)
        .err()
        .map(|e| {
            format!("{e}: not signed by this device's key (forged, or edited after it was signed)")
        })
}
