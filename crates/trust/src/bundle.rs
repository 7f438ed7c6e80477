//! Export bundles: what a device copies out when its data could not go out live (rule 27,
//! annex 3), and how anyone holding the device's public key checks that nothing in the copy
//! was changed, removed or added.
//!
//! # Layout
//!
//! ```text
//! <bundle>/
//!   events.jsonl     one event per line, exactly as the device's queue stores it (signed and
//!                    chained: `anpr_trust::event`), in sequence order
//!   evidence/<seq>-<event_id>-<kind>.<jpg|png|bin>   the evidence images, raw bytes
//!   manifest.json    [`Manifest`]: every file with its sha256 and size, every event with its
//!                    hash, every image and the event it belongs to, the device's chain head
//!   manifest.sig     the device key's ed25519 signature, lower-case hex, over
//!                    "anpr-bundle/1\n" + inventory + "\n" + the bytes of manifest.json
//! ```
//!
//! # What [`Bundle::check`] guarantees
//!
//! With the device's public key, a bundle that passes holds exactly what the device signed: the
//! manifest's signature covers every file's hash, each event's own signature and hash are
//! checked against the line and the manifest, consecutive events link by `prev_hash`, and each
//! image is the one its (signed) event names. Every problem found is listed with the file (and
//! line) it is in: a changed file, a line removed or inserted, a file added, a bad signature.
//! Without a key, hashes and links are still checked but the manifest could have been rewritten
//! together with the files: [`Report::signature_checked`] says so.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use anpr_types::{ChainHead, Event};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{event_hash, verify_event};
use crate::{SigningKey, VerifyingKey, sha256_hex, sign_hex, verify_hex};

/// Schema of the manifest.
pub const BUNDLE_SCHEMA: &str = "anpr.bundle/1";
/// First line of the message a manifest's signature covers.
pub const BUNDLE_DOMAIN: &str = "anpr-bundle/1";
/// The events file of a bundle.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The manifest file of a bundle.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest's signature file.
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// The folder of evidence images in a bundle.
pub const EVIDENCE_DIR: &str = "evidence";

/// What a bundle holds, and the hash of every file in it. Signed by the device
/// ([`sign_manifest`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`BUNDLE_SCHEMA`].
    pub schema: String,
    pub bundle_id: Uuid,
    /// The device's inventory number: its public key checks the signatures.
    pub inventory: String,
    /// When the copy was made, by the device's clock.
    pub created_at: DateTime<Utc>,
    /// Which rows were copied.
    pub selection: Selection,
    /// The device's chain head when the copy was made (the last event appended, which may be
    /// after the last one copied); none for an empty queue.
    pub chain_head: Option<ChainHead>,
    /// The recordings it covers (custody records are no recordings).
    pub recordings: Recordings,
    /// The events, in the order of `events.jsonl`.
    pub events: Vec<ManifestEvent>,
    /// The evidence images in `evidence/`, with the event each belongs to.
    pub images: Vec<ManifestImage>,
    /// Images an event names that are not in the bundle, and why (already delivered, dropped
    /// under the disk quota).
    #[serde(default)]
    pub absent_images: Vec<AbsentImage>,
    /// Every file of the bundle but the manifest and its signature.
    pub files: Vec<FileEntry>,
}

/// Which rows of the queue a bundle copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Selection {
    /// Every row not yet acknowledged by the central receiver.
    Undelivered,
    /// Every row present whose capture time is within `from..=to`, delivered or not.
    Range {
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    },
}

/// The span of the recordings in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recordings {
    pub count: u64,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `to - from`, whole seconds.
    pub duration_s: u64,
    /// The same as annex 3 writes it ([`hours_minutes`]).
    pub duration_hmin: String,
}

impl Recordings {
    /// The span of the capture times of `events` that are recordings (not custody records).
    #[must_use]
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut count = 0;
        let (mut from, mut to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
        for e in events {
            if e.kind == anpr_types::EventKind::Custody {
                continue;
            }
            count += 1;
            from = Some(from.map_or(e.captured_at, |f| f.min(e.captured_at)));
            to = Some(to.map_or(e.captured_at, |t| t.max(e.captured_at)));
        }
        let duration_s = match (from, to) {
            (Some(f), Some(t)) => (t - f).num_seconds().max(0) as u64,
            _ => 0,
        };
        Self {
            count,
            from,
            to,
            duration_s,
            duration_hmin: hours_minutes(duration_s),
        }
    }
}

/// A duration as annex 3 asks for it, hours.minutes rounded to the nearest minute: 7,500 s
/// (2 h 5 min) is `2.05`, 29 s is `0.00`, 30 s is `0.01`.
#[must_use]
pub fn hours_minutes(seconds: u64) -> String {
    let minutes = (seconds + 30) / 60;
    format!("{}.{:02}", minutes / 60, minutes % 60)
}

/// An event of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEvent {
    pub seq: u64,
    pub event_id: Uuid,
    /// Its hash ([`crate::event::event_hash`]).
    pub hash: String,
}

/// An evidence image of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestImage {
    /// Path inside the bundle, `evidence/...` (also in [`Manifest::files`]).
    pub path: String,
    pub seq: u64,
    pub event_id: Uuid,
    /// `overview` or `plate`.
    pub kind: String,
}

/// An image an event names that the bundle does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsentImage {
    pub seq: u64,
    pub event_id: Uuid,
    pub kind: String,
    pub sha256: String,
    /// `delivered` (the receiver has it) or `dropped` (the disk quota removed it, journaled).
    pub why: String,
}

/// A file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the bundle, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The bytes a manifest's signature covers.
#[must_use]
pub fn manifest_message(inventory: &str, manifest: &[u8]) -> Vec<u8> {
    let mut m = format!("{BUNDLE_DOMAIN}\n{inventory}\n").into_bytes();
    m.extend_from_slice(manifest);
    m
}

/// The device's signature over the manifest's bytes, lower-case hex.
#[must_use]
pub fn sign_manifest(key: &SigningKey, inventory: &str, manifest: &[u8]) -> String {
    sign_hex(key, &manifest_message(inventory, manifest))
}

/// Whether `path` may name a file of a bundle: `events.jsonl`, or `evidence/<name>` with a
/// name of letters, digits, `-`, `_` and `.`, not starting with `.` (nothing that could point
/// outside the bundle).
#[must_use]
pub fn valid_path(path: &str) -> bool {
    if path == EVENTS_FILE {
        return true;
    }
    path.strip_prefix("evidence/").is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    })
}

/// The file name of an evidence image in a bundle.
#[must_use]
pub fn image_path(seq: u64, event_id: Uuid, kind: &str, content_type: &str) -> String {
    let ext = match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        _ => "bin",
    };
    let kind: String = kind
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{EVIDENCE_DIR}/{seq:010}-{event_id}-{kind}.{ext}")
}

/// Why a bundle cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error(
        "{path} is not an export bundle: it has no manifest.json (give the folder `anpr export --to` wrote)"
    )]
    NoManifest { path: PathBuf },
    #[error("{path} cannot be read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a bundle manifest ({message}): changed or damaged; make a new export from the device"
    )]
    Malformed { path: PathBuf, message: String },
    #[error(
        "{path} has schema {found:?}; this software reads {BUNDLE_SCHEMA}: upgrade the software"
    )]
    Schema { path: PathBuf, found: String },
}

/// One thing in a bundle that does not match its manifest or its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in, as a path inside the bundle (`events.jsonl`, `evidence/...`,
    /// `manifest.sig`).
    pub file: String,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.what)
    }
}

/// What [`Bundle::check`] found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Events read from `events.jsonl`, in line order (those that parsed).
    pub events: Vec<Event>,
    /// Images checked.
    pub images: u64,
    /// Whether the manifest's and the events' signatures were checked (a key was given).
    pub signature_checked: bool,
    /// Everything that does not match; empty when the bundle is intact.
    pub problems: Vec<Problem>,
}

impl Report {
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A bundle on disk, its manifest read.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The manifest's bytes as read (what the signature covers), and their sha256.
    pub manifest_bytes: Vec<u8>,
    pub manifest_sha256: String,
}

impl Bundle {
    /// Reads the manifest of the bundle in `dir`.
    pub fn open(dir: &Path) -> Result<Self, BundleError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                BundleError::NoManifest {
                    path: dir.to_path_buf(),
                }
            } else {
                BundleError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| BundleError::Malformed {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if manifest.schema != BUNDLE_SCHEMA {
            return Err(BundleError::Schema {
                path,
                found: manifest.schema,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest_sha256: sha256_hex(&bytes),
            manifest,
            manifest_bytes: bytes,
        })
    }

    /// The path on disk of the bundle file `rel` (a path the manifest lists).
    #[must_use]
    pub fn file(&self, rel: &str) -> PathBuf {
        rel.split('/')
            .fold(self.dir.clone(), |p, part| p.join(part))
    }

    /// Checks every file against the manifest, and (with the device's public `key`) the
    /// manifest's and every event's signature; lists every problem found.
    #[must_use]
    pub fn check(&self, key: Option<&VerifyingKey>) -> Report {
        let m = &self.manifest;
        let mut r = Report {
            signature_checked: key.is_some(),
            ..Report::default()
        };
        let mut problem = |file: &str, what: String| {
            r.problems.push(Problem {
                file: file.to_string(),
                what,
            });
        };
        // The manifest's signature.
        match std::fs::read_to_string(self.dir.join(SIGNATURE_FILE)) {
            Err(_) => problem(
                SIGNATURE_FILE,
                "missing: the manifest cannot be shown to be the device's".into(),
            ),
            Ok(sig) => {
                if let Some(key) = key
                    && let Err(e) = verify_hex(
                        key,
                        &manifest_message(&m.inventory, &self.manifest_bytes),
                        Some(sig.trim()),
                    )
                {
                    problem(
                        SIGNATURE_FILE,
                        format!(
                            "signature refused ({e}): manifest.json was changed after the device signed it, or it was signed by another device's key"
                        ),
                    );
                }
            }
        }
        // Every file listed: there, and the bytes the manifest names.
        let mut listed: HashMap<&str, &FileEntry> = HashMap::new();
        let mut contents: HashMap<String, Vec<u8>> = HashMap::new();
        for f in &m.files {
            if !valid_path(&f.path) {
                problem(
                    MANIFEST_FILE,
                    format!(
                        "lists the file {:?}, which no bundle holds (a path outside its folder)",
                        f.path
                    ),
                );
                continue;
            }
            listed.insert(f.path.as_str(), f);
            match std::fs::read(self.file(&f.path)) {
                Err(e) => problem(&f.path, format!("missing ({e}): removed from the bundle")),
                Ok(bytes) => {
                    let sha = sha256_hex(&bytes);
                    if sha != f.sha256 || bytes.len() as u64 != f.size {
                        problem(
                            &f.path,
                            format!(
                                "does not match the manifest (sha256 {}…, {} bytes; the manifest says {}…, {} bytes): changed",
                                short(&sha),
                                bytes.len(),
                                short(&f.sha256),
                                f.size
                            ),
                        );
                    }
                    contents.insert(f.path.clone(), bytes);
                }
            }
        }
        // Files present that the manifest does not list.
        for rel in files_in(&self.dir) {
            if rel != MANIFEST_FILE && rel != SIGNATURE_FILE && !listed.contains_key(rel.as_str()) {
                problem(&rel, "not in the manifest: added to the bundle".into());
            }
        }
        // The events, line by line, against the manifest's list.
        let expected: BTreeMap<u64, &ManifestEvent> = m.events.iter().map(|e| (e.seq, e)).collect();
        let hashes: HashMap<u64, &str> =
            m.events.iter().map(|e| (e.seq, e.hash.as_str())).collect();
        let mut seen = BTreeSet::new();
        if !listed.contains_key(EVENTS_FILE) {
            problem(MANIFEST_FILE, format!("does not list {EVENTS_FILE}"));
        }
        let text = contents
            .get(EVENTS_FILE)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let event: Event = match serde_json::from_str(line) {
                Ok(e) => e,
                Err(e) => {
                    problem(
                        EVENTS_FILE,
                        format!("line {n} is not an event ({e}): changed"),
                    );
                    continue;
                }
            };
            let seq = event.seq;
            let Some(want) = expected.get(&seq) else {
                problem(
                    EVENTS_FILE,
                    format!(
                        "line {n} (seq {seq}, event {}) is not in the manifest: inserted",
                        event.event_id
                    ),
                );
                continue;
            };
            if !seen.insert(seq) {
                problem(
                    EVENTS_FILE,
                    format!("line {n}: seq {seq} appears twice: inserted"),
                );
                continue;
            }
            let hash = event_hash(&event);
            if hash != want.hash || event.event_id != want.event_id {
                problem(
                    EVENTS_FILE,
                    format!(
                        "line {n} (seq {seq}) hashes to {}…, the manifest says {}…: changed",
                        short(&hash),
                        short(&want.hash)
                    ),
                );
            }
            if event.device.inventory != m.inventory {
                problem(
                    EVENTS_FILE,
                    format!(
                        "line {n} (seq {seq}) names device {:?}, the bundle is {:?}'s",
                        event.device.inventory, m.inventory
                    ),
                );
            }
            if let Some(key) = key
                && let Err(e) = verify_event(&event, key)
            {
                problem(
                    EVENTS_FILE,
                    format!(
                        "line {n} (seq {seq}): signature refused ({e}): changed after the device signed it"
                    ),
                );
            }
            if let (Some(prev), Some(p)) = (
                seq.checked_sub(1).and_then(|s| hashes.get(&s)),
                &event.prev_hash,
            ) && prev != p
            {
                problem(
                    EVENTS_FILE,
                    format!(
                        "line {n} (seq {seq}): prev_hash {}… does not link to seq {} ({}…)",
                        short(p),
                        seq - 1,
                        short(prev)
                    ),
                );
            }
            r.events.push(event);
        }
        for (seq, e) in &expected {
            if !seen.contains(seq) {
                problem(
                    EVENTS_FILE,
                    format!(
                        "the line of seq {seq} (event {}) is missing: removed",
                        e.event_id
                    ),
                );
            }
        }
        if let (Some(head), Some(last)) = (&m.chain_head, m.events.last())
            && head.seq == last.seq
            && head.hash != last.hash
        {
            problem(
                MANIFEST_FILE,
                format!(
                    "its chain head (seq {}) is not the hash of its last event",
                    head.seq
                ),
            );
        }
        // Each image is the one its event names.
        let by_id: HashMap<Uuid, &Event> = r.events.iter().map(|e| (e.event_id, e)).collect();
        let mut covered: BTreeSet<(Uuid, String)> = BTreeSet::new();
        for img in &m.images {
            covered.insert((img.event_id, img.kind.clone()));
            let Some(file) = listed.get(img.path.as_str()) else {
                problem(
                    MANIFEST_FILE,
                    format!("image {} is not among its files", img.path),
                );
                continue;
            };
            r.images += 1;
            let named = by_id
                .get(&img.event_id)
                .and_then(|e| e.evidence.iter().find(|v| v.kind == img.kind));
            match named {
                Some(v) if v.sha256 == file.sha256 && v.size == file.size => {}
                Some(_) => problem(
                    &img.path,
                    format!(
                        "is not the {} image event {} (seq {}) names: replaced",
                        img.kind, img.event_id, img.seq
                    ),
                ),
                None => problem(
                    &img.path,
                    format!(
                        "belongs to no {} image of an event in the bundle (event {})",
                        img.kind, img.event_id
                    ),
                ),
            }
        }
        for a in &m.absent_images {
            covered.insert((a.event_id, a.kind.clone()));
        }
        for e in &r.events {
            for v in &e.evidence {
                if !covered.contains(&(e.event_id, v.kind.clone())) {
                    problem(
                        MANIFEST_FILE,
                        format!(
                            "the {} image of seq {} is neither in the bundle nor listed as absent: removed",
                            v.kind, e.seq
                        ),
                    );
                }
            }
        }
        r
    }
}

/// The files under `dir`, as `/`-separated paths inside it (one level of folders: a bundle
/// has no deeper ones; anything deeper is listed by its folder).
fn files_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(top) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in top.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if let Ok(inner) = std::fs::read_dir(entry.path()) {
                for e in inner.flatten() {
                    out.push(format!("{name}/{}", e.file_name().to_string_lossy()));
                }
            }
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sign_event;
    use crate::event::tests::passage;

    /// A bundle of `n` chained passages with one image each, written to `dir`, signed by `key`.
    fn write(dir: &Path, key: &SigningKey, n: u64) {
        let mut prev = crate::ZERO_HASH.to_string();
        let (mut lines, mut events, mut images, mut files) =
            (String::new(), Vec::new(), Vec::new(), Vec::new());
        std::fs::create_dir_all(dir.join(EVIDENCE_DIR)).unwrap();
        let mut all = Vec::new();
        for seq in 1..=n {
            let mut e = passage(seq);
            let data = vec![seq as u8; 10];
            e.evidence[0].sha256 = sha256_hex(&data);
            e.prev_hash = Some(prev.clone());
            prev = sign_event(&mut e, key);
            lines.push_str(&serde_json::to_string(&e).unwrap());
            lines.push('\n');
            let path = image_path(seq, e.event_id, "overview", "image/jpeg");
            std::fs::write(dir.join(&path), &data).unwrap();
            files.push(FileEntry {
                path: path.clone(),
                sha256: sha256_hex(&data),
                size: 10,
            });
            images.push(ManifestImage {
                path,
                seq,
                event_id: e.event_id,
                kind: "overview".into(),
            });
            events.push(ManifestEvent {
                seq,
                event_id: e.event_id,
                hash: prev.clone(),
            });
            all.push(e);
        }
        std::fs::write(dir.join(EVENTS_FILE), &lines).unwrap();
        files.insert(
            0,
            FileEntry {
                path: EVENTS_FILE.into(),
                sha256: sha256_hex(lines.as_bytes()),
                size: lines.len() as u64,
            },
        );
        let m = Manifest {
            schema: BUNDLE_SCHEMA.into(),
            bundle_id: Uuid::now_v7(),
            inventory: "KZ-T".into(),
            created_at: Utc::now(),
            selection: Selection::Undelivered,
            chain_head: Some(ChainHead { seq: n, hash: prev }),
            recordings: Recordings::of(&all),
            events,
            images,
            absent_images: Vec::new(),
            files,
        };
        let bytes = serde_json::to_vec_pretty(&m).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), &bytes).unwrap();
        std::fs::write(
            dir.join(SIGNATURE_FILE),
            sign_manifest(key, "KZ-T", &bytes) + "\n",
        )
        .unwrap();
    }

    #[test]
    fn an_intact_bundle_passes_with_its_device_key_and_fails_with_another() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&mut rand_core::OsRng);
        write(dir.path(), &key, 3);
        let b = Bundle::open(dir.path()).unwrap();
        let r = b.check(Some(&key.verifying_key()));
        assert!(r.is_intact(), "{:?}", r.problems);
        assert_eq!((r.events.len(), r.images), (3, 3));
        let other = SigningKey::generate(&mut rand_core::OsRng).verifying_key();
        let r = b.check(Some(&other));
        let files: Vec<&str> = r.problems.iter().map(|p| p.file.as_str()).collect();
        assert!(files.contains(&SIGNATURE_FILE), "{:?}", r.problems);
        assert!(files.contains(&EVENTS_FILE), "event signatures too");
    }

    #[test]
    fn a_changed_image_a_removed_line_and_an_added_file_are_each_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&mut rand_core::OsRng);
        write(dir.path(), &key, 3);
        let b = Bundle::open(dir.path()).unwrap();
        let image = b.manifest.images[1].path.clone();
        std::fs::write(b.file(&image), [0u8; 10]).unwrap();
        let text = std::fs::read_to_string(dir.path().join(EVENTS_FILE)).unwrap();
        let kept: Vec<&str> = text.lines().filter(|l| !l.contains("\"seq\":2,")).collect();
        assert_eq!(kept.len(), 2);
        std::fs::write(dir.path().join(EVENTS_FILE), kept.join("\n") + "\n").unwrap();
        std::fs::write(dir.path().join("evidence/extra.jpg"), b"x").unwrap();
        let r = b.check(Some(&key.verifying_key()));
        let text: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|p| p.starts_with(&image) && p.contains("changed")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.starts_with("events.jsonl: the line of seq 2") && p.contains("removed")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.starts_with("evidence/extra.jpg") && p.contains("added")),
            "{text:?}"
        );
        // Without a key the files still do not match.
        assert!(!b.check(None).is_intact());
    }

    #[test]
    fn a_manifest_rewritten_to_match_edited_files_fails_its_signature() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&mut rand_core::OsRng);
        write(dir.path(), &key, 2);
        let mut b = Bundle::open(dir.path()).unwrap();
        let image = b.manifest.images[0].path.clone();
        std::fs::write(b.file(&image), [7u8; 10]).unwrap();
        let f = b
            .manifest
            .files
            .iter_mut()
            .find(|f| f.path == image)
            .unwrap();
        f.sha256 = sha256_hex(&[7u8; 10]);
        let bytes = serde_json::to_vec(&b.manifest).unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), bytes).unwrap();
        b = Bundle::open(dir.path()).unwrap();
        let r = b.check(Some(&key.verifying_key()));
        let text: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|p| p.starts_with("manifest.sig: signature refused")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.starts_with(&image) && p.contains("replaced")),
            "the signed event still names the old image: {text:?}"
        );
    }

    #[test]
    fn paths_that_leave_the_bundle_are_not_bundle_paths() {
        for ok in ["events.jsonl", "evidence/0000000001-x-overview.jpg"] {
            assert!(valid_path(ok), "{ok}");
        }
        for bad in [
            "../x",
            "/etc/passwd",
            "evidence/../x",
            "evidence/.hidden",
            "evidence/",
            "evidence/a/b",
            "other.jsonl",
        ] {
            assert!(!valid_path(bad), "{bad}");
        }
    }

    #[test]
    fn durations_are_hours_dot_minutes_rounded_to_the_minute() {
        assert_eq!(hours_minutes(0), "0.00");
        assert_eq!(hours_minutes(29), "0.00");
        assert_eq!(hours_minutes(30), "0.01");
        assert_eq!(hours_minutes(7_500), "2.05");
        assert_eq!(hours_minutes(3 * 3600 + 59 * 60 + 40), "4.00");
    }
}
