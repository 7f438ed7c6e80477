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
    /// Disk quota of the queue in MiB (0: none). When it is reached, delivered rows go first
    /// (violations only once [`Storage::keep_violations_days`] is over), then the images of
    /// undelivered passages (the passage record stays); undelivered records themselves are
    /// never deleted: when nothing deletable is left, new passages and violations are held in
    /// memory and the `queue-full` fault is raised (`docs/retention.md`).
    #[serde(default = "default_quota_mb")]
    pub quota_mb: f64,
    /// Days a violation and its evidence images stay on the device after capture, at least,
    /// once the central receiver has acknowledged them (never before: an undelivered violation
    /// is never deleted). 0 (the default): until delivered, then removed by the hourly cleanup
    /// or when the quota needs room. At most [`KEEP_DAYS_MAX`]. The one-year archive is the
    /// central receiver's (`anpr central --retention-days`), not the device's.
    #[serde(default)]
    pub keep_violations_days: u32,
    /// Days after capture a delivered passage (or any other delivered record but a violation)
    /// stays on the device before the hourly cleanup removes it; the quota may remove it
    /// sooner (passages may go before violations). 0 (the default): removed by the next
    /// cleanup once delivered. At most [`KEEP_DAYS_MAX`].
    #[serde(default)]
    pub keep_passages_days: u32,
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

/// The longest `keep_violations_days` / `keep_passages_days` accepted (10 years).
pub const KEEP_DAYS_MAX: u32 = 3650;

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
        for (key, days) in [
            ("storage.keep_violations_days", self.keep_violations_days),
            ("storage.keep_passages_days", self.keep_passages_days),
        ] {
            if days > KEEP_DAYS_MAX {
                return Err(c.invalid(
                    key,
                    format!("must be a number of days from 0 to {KEEP_DAYS_MAX}"),
                ));
            }
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(c.invalid("storage.jpeg_quality", "must be between 1 and 100"));
        }
        Ok(())
    }
}
