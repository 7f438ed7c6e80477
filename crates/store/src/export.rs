//! Export: the rows that could not go out live, copied into a signed bundle
//! (`anpr_trust::bundle`) for the central side to import, and the copy journaled (annex 3).
//!
//! # Contract
//!
//! - The rows are read in one read transaction (a consistent snapshot while the device goes on
//!   recording): every undelivered row, or every row present whose capture time is in a range.
//!   Each goes into `events.jsonl` exactly as stored (its payload: the signed event), its
//!   evidence images still held into `evidence/`; images already released (delivered) or
//!   dropped are listed as absent with the reason.
//! - Every file is written and fsynced, then the manifest (every file's sha256, every event's
//!   hash, the chain head) and its signature by the device key, then the folder is fsynced.
//! - Only then, in one write transaction: the exported rows still undelivered are marked
//!   handed over (`exported_at`, `export_id`), and the copy is recorded as a `custody` event
//!   with its `custody-export` journal entry (copy time, the recordings' span in h.min, counts,
//!   the bundle's id, folder and manifest hash). A crash before that commit leaves a complete
//!   bundle that is not journaled: export again.
//! - A row handed over stays undelivered: it is still sent live when the link returns, and
//!   marked delivered only by the receiver's signed acknowledgement (the receiver, which then
//!   has it from the import, acknowledges the copy as a duplicate). The disk quota never drops
//!   it (nor its images) before that.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anpr_trust::bundle::{
    AbsentImage, EVENTS_FILE, EVIDENCE_DIR, FileEntry, MANIFEST_FILE, Manifest, ManifestEvent,
    ManifestImage, Recordings, SIGNATURE_FILE, Selection, image_path, sign_manifest,
};
use anpr_types::{CustodyAction, CustodyRecord, DeviceInfo, Event, ExportRecord};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use crate::custody::{EXPORT, record_in};
use crate::sqlite::{sql_error, ts};
use crate::{Store, StoreError, sha256_hex};

/// What to export and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The bundle's folder: created, or empty.
    pub dir: PathBuf,
    /// Capture-time range (both ends included); with neither, every undelivered row.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The device, as its events name it.
    pub device: DeviceInfo,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub dir: PathBuf,
    /// The record journaled (and sent as a `custody` event).
    pub record: ExportRecord,
    /// Images named by the events but not in the bundle (delivered or dropped before).
    pub absent_images: u64,
    /// Rows marked handed over (those still undelivered).
    pub handed_over: u64,
    /// The `custody` event that records the export.
    pub custody_event: Event,
}

/// Why an export was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error(
        "the queue has no device key to sign the bundle with; point `[security] device_key` at the device's private key"
    )]
    NoSigner,
    #[error(
        "{path} exists and is not empty; give a new folder (each export is a bundle of its own)"
    )]
    NotEmpty { path: PathBuf },
    #[error(
        "cannot write the bundle at {path}: {source}; check that the medium is mounted, writable and not full"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("nothing to export: {what}. The bundle was not written and nothing was journaled")]
    Nothing { what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Number of rows handed over in a bundle and not yet acknowledged.
    pub fn handed_over(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE exported_at IS NOT NULL AND delivered_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.sql())
    }

    /// Whether the row `seq` was handed over in a bundle (and in which); `None` if no such row.
    pub fn export_of(&self, seq: u64) -> Result<Option<Option<Uuid>>, StoreError> {
        self.conn
            .query_row(
                "SELECT export_id FROM events WHERE seq = ?1",
                params![seq as i64],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(|o| o.map(|id| id.and_then(|s| Uuid::parse_str(&s).ok())))
            .map_err(self.sql())
    }

    /// Writes the bundle of `opts` and journals it; see the module's contract.
    pub fn export(&mut self, opts: &ExportOptions) -> Result<ExportSummary, ExportError> {
        let signer = self.signer.clone().ok_or(ExportError::NoSigner)?;
        prepare_dir(&opts.dir)?;
        let created_at = Utc::now();
        let bundle_id = Uuid::now_v7();
        let selection = if opts.from.is_none() && opts.to.is_none() {
            Selection::Undelivered
        } else {
            Selection::Range {
                from: opts.from,
                to: opts.to,
            }
        };
        let written = self.write_files(opts, &selection)?;
        if written.events.is_empty() {
            let _ = std::fs::remove_dir_all(opts.dir.join(EVIDENCE_DIR));
            let _ = std::fs::remove_file(opts.dir.join(EVENTS_FILE));
            return Err(ExportError::Nothing {
                what: match selection {
                    Selection::Undelivered => {
                        "every event is delivered (acknowledged by the central receiver)".into()
                    }
                    Selection::Range { .. } => "no event was captured in that range".into(),
                },
            });
        }
        let recordings = Recordings::of(&written.parsed);
        let manifest = Manifest {
            schema: anpr_trust::bundle::BUNDLE_SCHEMA.into(),
            bundle_id,
            inventory: opts.device.inventory.clone(),
            created_at,
            selection,
            chain_head: written.head.clone(),
            recordings: recordings.clone(),
            events: written.events.clone(),
            images: written.images.clone(),
            absent_images: written.absent.clone(),
            files: written.files.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&manifest).expect("manifests always serialise");
        let signature = sign_manifest(&signer, &manifest.inventory, &bytes);
        write_file(&opts.dir.join(MANIFEST_FILE), &bytes)?;
        write_file(
            &opts.dir.join(SIGNATURE_FILE),
            format!("{signature}\n").as_bytes(),
        )?;
        sync_dir(&opts.dir)?;

        let record = ExportRecord {
            bundle_id,
            path: opts.dir.display().to_string(),
            manifest_sha256: sha256_hex(&bytes),
            events: manifest.events.len() as u64,
            images: manifest.images.len() as u64,
            first_seq: manifest.events.first().map_or(0, |e| e.seq),
            last_seq: manifest.events.last().map_or(0, |e| e.seq),
            recordings_from: recordings.from,
            recordings_to: recordings.to,
            duration_s: recordings.duration_s,
            duration_hmin: recordings.duration_hmin.clone(),
        };
        let quota = self.quota;
        let (tx, path) = self.begin_write()?;
        let sql = sql_error(path);
        let mut handed_over = 0;
        {
            let mut mark = tx
                .prepare_cached(
                    "UPDATE events SET exported_at = ?1, export_id = ?2 WHERE seq = ?3 AND delivered_at IS NULL",
                )
                .map_err(&sql)?;
            for e in &manifest.events {
                handed_over += mark
                    .execute(params![ts(created_at), bundle_id.to_string(), e.seq as i64])
                    .map_err(&sql)? as u64;
            }
        }
        let holder = crate::custody::open_issue(&tx).map_err(&sql)?;
        let custody = CustodyRecord {
            action: CustodyAction::Export,
            at: created_at,
            employee: holder.as_ref().and_then(|h| h.employee.clone()),
            employee_id: holder.and_then(|h| h.employee_id),
            export: Some(record.clone()),
        };
        let event = record_in(
            &tx,
            (path, quota, Some(&signer)),
            opts.device.clone(),
            EXPORT,
            custody,
        )?;
        tx.commit().map_err(&sql)?;
        drop(sql);
        self.bump_appended();
        Ok(ExportSummary {
            dir: opts.dir.clone(),
            record,
            absent_images: manifest.absent_images.len() as u64,
            handed_over,
            custody_event: event,
        })
    }

    /// Writes `events.jsonl` and the images of the selected rows, read in one transaction.
    fn write_files(
        &mut self,
        opts: &ExportOptions,
        selection: &Selection,
    ) -> Result<Written, ExportError> {
        let path = self.path.clone();
        let sql = sql_error(&path);
        let tx = self.conn.transaction().map_err(&sql)?;
        let head = tx
            .query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |r| {
                Ok(anpr_types::ChainHead {
                    seq: r.get::<_, i64>(0)? as u64,
                    hash: r.get(1)?,
                })
            })
            .optional()
            .map_err(&sql)?;
        let rows: Vec<(i64, String)> = {
            let (query, args): (&str, Vec<String>) = match selection {
                Selection::Undelivered => (
                    "SELECT seq, payload FROM events WHERE delivered_at IS NULL ORDER BY seq",
                    Vec::new(),
                ),
                Selection::Range { from, to } => (
                    "SELECT seq, payload FROM events WHERE captured_at >= ?1 AND captured_at <= ?2 ORDER BY seq",
                    vec![
                        from.map_or_else(String::new, ts),
                        to.map_or_else(|| "9999".to_string(), ts),
                    ],
                ),
            };
            let mut stmt = tx.prepare(query).map_err(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(&sql)?
            .collect::<Result<_, _>>()
            .map_err(&sql)?
        };
        let mut w = Written {
            head,
            ..Written::default()
        };
        if rows.is_empty() {
            return Ok(w);
        }
        let events_path = opts.dir.join(EVENTS_FILE);
        let mut lines = Vec::new();
        for (seq, payload) in &rows {
            let event: Event = serde_json::from_str(payload).map_err(|e| StoreError::Corrupt {
                seq: *seq as u64,
                message: e.to_string(),
            })?;
            lines.extend_from_slice(payload.as_bytes());
            lines.push(b'\n');
            w.events.push(ManifestEvent {
                seq: *seq as u64,
                event_id: event.event_id,
                hash: anpr_trust::event::event_hash(&event),
            });
            w.parsed.push(event);
        }
        write_file(&events_path, &lines)?;
        w.files.push(FileEntry {
            path: EVENTS_FILE.into(),
            sha256: sha256_hex(&lines),
            size: lines.len() as u64,
        });
        drop(lines);
        let evidence_dir = opts.dir.join(EVIDENCE_DIR);
        let mut stmt = tx
            .prepare(
                "SELECT kind, content_type, data, delivered_at IS NOT NULL FROM evidence WHERE seq = ?1 ORDER BY kind",
            )
            .map_err(&sql)?;
        for event in &w.parsed {
            if event.evidence.is_empty() {
                continue;
            }
            let held: Vec<(String, String, Option<Vec<u8>>, bool)> = stmt
                .query_map(params![event.seq as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(&sql)?
                .collect::<Result<_, _>>()
                .map_err(&sql)?;
            for v in &event.evidence {
                let found = held.iter().find(|h| h.0 == v.kind);
                match found {
                    Some((kind, content_type, Some(data), _)) => {
                        if w.images.is_empty() {
                            std::fs::DirBuilder::new()
                                .mode(0o700)
                                .create(&evidence_dir)
                                .map_err(write_error(&evidence_dir))?;
                        }
                        let rel = image_path(event.seq, event.event_id, kind, content_type);
                        write_file(&opts.dir.join(&rel), data)?;
                        w.files.push(FileEntry {
                            path: rel.clone(),
                            sha256: sha256_hex(data),
                            size: data.len() as u64,
                        });
                        w.images.push(ManifestImage {
                            path: rel,
                            seq: event.seq,
                            event_id: event.event_id,
                            kind: kind.clone(),
                        });
                    }
                    other => w.absent.push(AbsentImage {
                        seq: event.seq,
                        event_id: event.event_id,
                        kind: v.kind.clone(),
                        sha256: v.sha256.clone(),
                        why: if other.is_some_and(|h| h.3) {
                            "delivered".into()
                        } else {
                            "dropped".into()
                        },
                    }),
                }
            }
        }
        if !w.images.is_empty() {
            sync_dir(&evidence_dir)?;
        }
        Ok(w)
    }
}

/// What [`Store::write_files`] wrote.
#[derive(Default)]
struct Written {
    head: Option<anpr_types::ChainHead>,
    parsed: Vec<Event>,
    events: Vec<ManifestEvent>,
    images: Vec<ManifestImage>,
    absent: Vec<AbsentImage>,
    files: Vec<FileEntry>,
}

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the bundle's folder (mode 0700), or takes an empty one.
fn prepare_dir(dir: &Path) -> Result<(), ExportError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExportError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_error(dir)),
        Err(e) => Err(write_error(dir)(e)),
    }
}

/// Writes a new file (mode 0600: evidence is personal data) and syncs it.
fn write_file(path: &Path, data: &[u8]) -> Result<(), ExportError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_error(path))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(write_error(path))
}

fn sync_dir(dir: &Path) -> Result<(), ExportError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error(dir))
}

#[cfg(test)]
mod tests {
    use anpr_trust::bundle::Bundle;
    use anpr_types::{CustodyAction, DeviceInfo};
    use chrono::Utc;

    use super::{ExportError, ExportOptions};
    use crate::tests::{event, image, violation};
    use crate::{AckOutcome, Store};

    fn device() -> DeviceInfo {
        DeviceInfo {
            inventory: "INV-1".into(),
            profile: "mobile".into(),
            site: String::new(),
        }
    }

    fn opts(dir: &std::path::Path) -> ExportOptions {
        ExportOptions {
            dir: dir.to_path_buf(),
            from: None,
            to: None,
            device: device(),
        }
    }

    #[test]
    fn undelivered_rows_are_exported_signed_marked_handed_over_and_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let key = anpr_trust::SigningKey::from_bytes(&[9; 32]);
        let mut s = Store::open(&dir.path().join("q.sqlite"))
            .unwrap()
            .with_signer(key.clone());
        s.custody_issue(device(), "A B", "7", Utc::now()).unwrap();
        let delivered = s
            .append_with(event, vec![image("overview", 1, 50)])
            .unwrap();
        s.mark_delivered(delivered.event_id, delivered.seq).unwrap();
        let mut kept = Vec::new();
        for i in 0..3u8 {
            kept.push(
                s.append_with(
                    violation,
                    vec![image("overview", i, 100), image("plate", i, 10)],
                )
                .unwrap(),
            );
        }
        let out = dir.path().join("bundle");
        let summary = s.export(&opts(&out)).unwrap();
        // The issue (seq 1) and the three violations; the delivered passage is not in it.
        assert_eq!(summary.record.events, 4);
        assert_eq!(summary.record.images, 6);
        assert_eq!((summary.record.first_seq, summary.record.last_seq), (1, 5));
        assert_eq!(summary.handed_over, 4);
        let span = kept[2].captured_at - kept[0].captured_at;
        assert_eq!(summary.record.duration_s, span.num_seconds() as u64);
        assert_eq!(
            summary.record.recordings_from,
            Some(kept[0].captured_at),
            "the custody record is no recording"
        );
        let b = Bundle::open(&out).unwrap();
        let r = b.check(Some(&key.verifying_key()));
        assert!(r.is_intact(), "{:?}", r.problems);
        assert_eq!(b.manifest.chain_head.as_ref().unwrap().seq, 5);
        // Still owed to the receiver, handed over, and out of the quota's reach.
        assert_eq!(s.handed_over().unwrap(), 4);
        assert_eq!(s.export_of(3).unwrap(), Some(Some(b.manifest.bundle_id)));
        assert_eq!(s.export_of(2).unwrap(), Some(None));
        let mut s = s.with_quota(Some(1));
        assert!(s.append(event).unwrap_err().is_quota_full());
        for e in &kept {
            assert!(s.get(e.seq).unwrap().is_some());
            assert!(s.evidence(e.seq, "overview").unwrap().is_some());
        }
        // The export is journaled after the rows it copied, with the holder's name.
        let journal = s.custody_journal().unwrap();
        let last = &journal.last().unwrap().record;
        assert_eq!(last.action, CustodyAction::Export);
        assert_eq!(last.employee_id.as_deref(), Some("7"));
        assert_eq!(
            last.export.as_ref().unwrap().manifest_sha256,
            b.manifest_sha256
        );
        assert_eq!(journal.last().unwrap().seq, 6);
        // The receiver's ack (after an import) still marks them delivered.
        assert_eq!(
            s.mark_delivered(kept[0].event_id, kept[0].seq).unwrap(),
            AckOutcome::Marked
        );
        assert_eq!(s.handed_over().unwrap(), 3);
    }

    #[test]
    fn an_export_refuses_a_folder_in_use_and_an_empty_selection() {
        let dir = tempfile::tempdir().unwrap();
        let key = anpr_trust::SigningKey::from_bytes(&[9; 32]);
        let mut s = Store::open(&dir.path().join("q.sqlite"))
            .unwrap()
            .with_signer(key);
        let err = s.export(&opts(&dir.path().join("b"))).unwrap_err();
        assert!(matches!(err, ExportError::Nothing { .. }), "{err}");
        assert!(s.journal(0).unwrap().is_empty(), "nothing journaled");
        s.append(event).unwrap();
        std::fs::write(dir.path().join("b/x"), "x").unwrap();
        let err = s.export(&opts(&dir.path().join("b"))).unwrap_err();
        assert!(matches!(err, ExportError::NotEmpty { .. }), "{err}");
        let mut range = opts(&dir.path().join("c"));
        range.from = Some(Utc::now() + chrono::TimeDelta::hours(1));
        let err = s.export(&range).unwrap_err();
        assert!(err.to_string().contains("no event was captured"), "{err}");
        let mut unsigned = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let err = unsigned.export(&opts(&dir.path().join("d"))).unwrap_err();
        assert!(matches!(err, ExportError::NoSigner), "{err}");
    }

    #[test]
    fn a_time_range_takes_delivered_rows_too_and_lists_released_images_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let key = anpr_trust::SigningKey::from_bytes(&[9; 32]);
        let mut s = Store::open(&dir.path().join("q.sqlite"))
            .unwrap()
            .with_signer(key.clone());
        let a = s
            .append_with(event, vec![image("overview", 1, 50)])
            .unwrap();
        let sha = a.evidence[0].sha256.clone();
        s.mark_delivered_batch(&[(a.event_id, a.seq, None), (a.event_id, a.seq, Some(&sha))])
            .unwrap();
        let b = s
            .append_with(event, vec![image("overview", 2, 50)])
            .unwrap();
        let mut o = opts(&dir.path().join("r"));
        o.from = Some(a.captured_at);
        o.to = Some(b.captured_at);
        let summary = s.export(&o).unwrap();
        assert_eq!((summary.record.events, summary.record.images), (2, 1));
        assert_eq!(summary.absent_images, 1);
        assert_eq!(summary.handed_over, 1, "only the undelivered row is marked");
        let bundle = Bundle::open(&dir.path().join("r")).unwrap();
        assert_eq!(bundle.manifest.absent_images[0].why, "delivered");
        assert!(bundle.check(Some(&key.verifying_key())).is_intact());
    }
}
