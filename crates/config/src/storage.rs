//! `[storage]`: the local queue and the evidence kept with each event.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Checker, ConfigError};

/// Local storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// SQLite queue file; relative to the config file.
    pub queue: PathBuf,
    /// Disk quota of the queue in MiB (0: none). When it is reached, delivered rows go first,
    /// then images and events of undelivered passages, violations last; every drop is counted
    /// and raised as a fault.
    #[serde(default = "default_quota_mb")]
    pub quota_mb: f64,
    /// Evidence images kept with each event: `overview` (the whole frame) and/or `plate`.
    #[serde(default = "default_evidence")]
    pub evidence: Vec<EvidenceKind>,
    /// JPEG quality of evidence images, 1-100.
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
}

/// Kinds of evidence image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceKind {
    Overview,
    Plate,
}

impl EvidenceKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Overview => "overview",
            EvidenceKind::Plate => "plate",
        }
    }
}

fn default_quota_mb() -> f64 {
    2048.0
}
fn default_evidence() -> Vec<EvidenceKind> {
    vec![EvidenceKind::Overview, EvidenceKind::Plate]
}
fn default_jpeg_quality() -> u8 {
    85
}

impl Storage {
    /// The quota in bytes, `None` when unlimited.
    #[must_use]
    pub fn quota_bytes(&self) -> Option<u64> {
        (self.quota_mb > 0.0).then_some((self.quota_mb * 1024.0 * 1024.0) as u64)
    }

    pub(crate) fn validate(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        if self.quota_mb.is_nan() || self.quota_mb < 0.0 {
            return Err(c.invalid(
                "storage.quota_mb",
                "must be a size in MiB, or 0 for no quota",
            ));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(c.invalid("storage.jpeg_quality", "must be between 1 and 100"));
        }
        Ok(())
    }
}
