//! The custody journal and the export of what could not go out live (rule 27, annex 3), end to
//! end: a mobile unit issued to an employee records a clip with its link down; the duty
//! officer exports its queue; the bundle verifies, a tampered copy is named by `anpr verify`
//! and refused by `anpr central import`, the good one is imported; when the link returns the
//! receiver holds every event exactly once and the device's queue is fully delivered; the
//! device is returned, and the journal lists the issue, the export (with the recordings'
//! duration) and the return. Every step through the `anpr` binary, as the duty officer runs it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anpr_scene::clip::{manifest_with, write_clip_with};
use anpr_store::Store;
use anpr_testkit::Mosquitto;
use anpr_trust::bundle::{Bundle, Recordings, hours_minutes};
use anpr_types::CustodyAction;

use crate::util;

/// `anpr` with `args`: its exit code and what it printed.
fn anpr(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anpr"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Copies a bundle folder (one level of subfolders).
fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("evidence")).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            for e in std::fs::read_dir(entry.path()).unwrap().flatten() {
                std::fs::copy(e.path(), to.join("evidence").join(e.file_name())).unwrap();
            }
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_made_during_an_outage_verifies_imports_and_the_link_back_delivers_each_event_once()
 {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let manifest = write_clip_with(&manifest_with(3), &clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let inv = "KZ-TEST-CUSTODY";
    // The link is down for the whole run: nothing listens at the device's broker address.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = util::write_config(
        dir.path(),
        inv,
        clip.to_str().unwrap(),
        &util::Via::new(down, broker.pki()),
    );
    let cfg = s(&config);
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");
    let devices = util::keys(dir.path()).devices();

    // The duty officer issues the device; a second issue and one with no employee are refused.
    let (code, out) = anpr(&[
        "custody",
        "issue",
        "--config",
        cfg,
        "--employee",
        "Серіков Серік Серікұлы",
        "--employee-id",
        "KZ-0042",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("issued: device KZ-TEST-CUSTODY to Серіков"),
        "{out}"
    );
    let (code, out) = anpr(&["custody", "issue", "--config", cfg, "--employee-id", "7"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("full name is required"), "{out}");
    let (code, out) = anpr(&[
        "custody",
        "issue",
        "--config",
        cfg,
        "--employee",
        "Other",
        "--employee-id",
        "8",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("already issued to Серіков Серік Серікұлы (KZ-0042)")
            && out.contains("anpr custody return"),
        "{out}"
    );

    // The patrol: the clip is recorded with the link down; nothing is delivered.
    let summary = util::run_device(&config, Duration::from_secs(2)).await;
    assert_eq!(summary.events, manifest.vehicles.len() as u64);
    let stats = Store::open(&queue).unwrap().stats().unwrap();
    assert_eq!(stats.pending, stats.total, "nothing went out live");

    // The export, and its verification with the receiver's copy of the device's key.
    let bundle = dir.path().join("usb/bundle-1");
    let (code, out) = anpr(&["export", "--config", cfg, "--to", s(&bundle)]);
    assert_eq!(code, 0, "{out}");
    let b = Bundle::open(&bundle).unwrap();
    assert_eq!(
        b.manifest.events.len() as u64,
        stats.total,
        "every undelivered event"
    );
    assert!(!b.manifest.images.is_empty(), "with its evidence images");
    let (code, out) = anpr(&["verify", "--bundle", s(&bundle), "--devices", s(&devices)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("signatures checked") && out.contains("intact"),
        "{out}"
    );

    // A tampered copy: one image changed, one line removed. Named by verify, refused by import.
    let bad = dir.path().join("usb/tampered");
    copy_bundle(&bundle, &bad);
    let image = b.manifest.images[0].path.clone();
    let mut bytes = std::fs::read(b.file(&image)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(bad.join(&image), bytes).unwrap();
    let lines = std::fs::read_to_string(bad.join("events.jsonl")).unwrap();
    let removed = &b.manifest.events[1];
    let kept: Vec<&str> = lines
        .lines()
        .filter(|l| !l.contains(&removed.event_id.to_string()))
        .collect();
    assert_eq!(kept.len(), b.manifest.events.len() - 1);
    std::fs::write(bad.join("events.jsonl"), kept.join("\n") + "\n").unwrap();
    let (code, out) = anpr(&["verify", "--bundle", s(&bad), "--devices", s(&devices)]);
    assert_eq!(code, 1, "{out}");
    let named_image = format!("MISMATCH {image}: does not match the manifest");
    let named_line = format!(
        "MISMATCH events.jsonl: the line of seq {} (event {}) is missing: removed",
        removed.seq, removed.event_id
    );
    assert!(out.contains(&named_image), "{out}");
    assert!(out.contains(&named_line), "{out}");
    let (code, out) = anpr(&[
        "central",
        "import",
        "--db",
        s(&db),
        "--devices",
        s(&devices),
        s(&bad),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("nothing stored") && out.contains(&named_image) && out.contains(&named_line),
        "{out}"
    );
    assert!(
        anpr_central::Receiver::open(&db)
            .unwrap()
            .events_of(inv)
            .unwrap()
            .is_empty(),
        "a refused bundle stores nothing"
    );

    // The good bundle is imported (twice: the second finds every event already stored).
    let import = || {
        anpr(&[
            "central",
            "import",
            "--db",
            s(&db),
            "--devices",
            s(&devices),
            s(&bundle),
        ])
    };
    let (code, out) = import();
    assert_eq!(code, 0, "{out}");
    let n = b.manifest.events.len();
    assert!(
        out.contains(&format!(
            "{n} event(s) stored (seq 1 to {n}), 0 already stored"
        )),
        "{out}"
    );
    let (code, out) = import();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("0 event(s) stored, {n} already stored")),
        "{out}"
    );
    assert_eq!(
        anpr_central::Receiver::open(&db)
            .unwrap()
            .events_of(inv)
            .unwrap()
            .len(),
        n
    );

    // The link returns: the device sends what it still owes (the imported events and the
    // export's own custody record); the receiver acknowledges the copies it holds.
    let central = util::Central::start(&broker, db.clone());
    let uplink = util::Uplink::start(&queue, inv, &broker, Duration::from_secs(3));
    let store = Store::open(&queue).unwrap();
    assert!(
        util::wait_for(Duration::from_mins(1), || store
            .stats()
            .is_ok_and(|s| s.pending == 0)
            && store.pending_evidence_count().is_ok_and(|n| n == 0))
        .await,
        "the queue is fully delivered: {:?}",
        store.stats().unwrap()
    );
    uplink.drain(Duration::from_secs(30)).await;
    central.stop().await;
    util::assert_delivered_exactly(&queue, &db, inv);
    assert_eq!(
        store.handed_over().unwrap(),
        0,
        "handed over, then acknowledged"
    );

    // The return, and the journal: issue, export, return.
    let (code, out) = anpr(&["custody", "return", "--config", cfg]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = anpr(&["custody", "return", "--config", cfg]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not issued to anyone"), "{out}");
    let html = dir.path().join("annex3.html");
    let (code, out) = anpr(&["custody", "list", "--config", cfg, "--html", s(&html)]);
    assert_eq!(code, 0, "{out}");
    let journal = store.custody_journal().unwrap();
    let actions: Vec<CustodyAction> = journal.iter().map(|e| e.record.action).collect();
    assert_eq!(
        actions,
        [
            CustodyAction::Issue,
            CustodyAction::Export,
            CustodyAction::Return
        ]
    );
    let export = journal[1].record.export.as_ref().unwrap();
    let lines = std::fs::read_to_string(bundle.join("events.jsonl")).unwrap();
    let events: Vec<anpr_types::Event> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let span = Recordings::of(&events);
    assert_eq!(
        span.count, summary.events,
        "the recordings are the clip's events"
    );
    assert_eq!(export.recordings_from, span.from);
    assert_eq!(export.recordings_to, span.to);
    assert_eq!(
        export.duration_s,
        (span.to.unwrap() - span.from.unwrap()).num_seconds() as u64
    );
    assert_eq!(export.duration_hmin, hours_minutes(export.duration_s));
    assert_eq!(export.bundle_id, b.manifest.bundle_id);
    assert_eq!(journal[1].record.employee_id.as_deref(), Some("KZ-0042"));
    assert!(
        out.contains("issue") && out.contains("export") && out.contains("return"),
        "{out}"
    );
    assert!(
        out.contains(&format!("recordings {} h.min", export.duration_hmin)),
        "{out}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Серіков Серік Серікұлы") && page.contains("Инвентарный номер"));
    assert!(page.contains(&export.duration_hmin));
    // The custody records reached the receiver with the rest (the return is still queued).
    let receiver = anpr_central::Receiver::open(&db).unwrap();
    let kinds: Vec<_> = receiver
        .events_of(inv)
        .unwrap()
        .into_iter()
        .filter_map(|d| d.event.custody.map(|c| c.action))
        .collect();
    assert_eq!(kinds, [CustodyAction::Issue, CustodyAction::Export]);
}
