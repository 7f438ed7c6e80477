//! `anpr verify`: walks a device's hash chain in its queue (`anpr_store::verify_queue`: the
//! events, then the journal's own chain) or in a receiver's database
//! (`anpr_central::Receiver::verify`), prints progress and what it found, and names the first
//! row (and the first journal row) that does not match (exit 1); 0 when all is intact. With
//! `--bundle`, checks an export bundle (`anpr_trust::bundle`) and names every file that does
//! not match its manifest or its signatures.

use anyhow::{Context, Result};

use crate::VerifyArgs;
use crate::exit::{ExitStatus, Usage};

#[allow(clippy::print_stdout, clippy::print_stderr)]
pub(crate) fn verify(args: &VerifyArgs) -> Result<ExitStatus> {
    if let Some(dir) = &args.bundle {
        return bundle(args, dir);
    }
    let progress = |done: u64, total: u64| {
        eprintln!("verify: {done} of {total} rows checked");
    };
    let (what, report) = if let Some(queue) = &args.queue {
        let key = args
            .key
            .as_deref()
            .map(|k| anpr_trust::load_verifying_key_as("device public key", k))
            .transpose()?;
        let report = anpr_store::verify_queue(queue, key.as_ref(), progress)
            .with_context(|| format!("cannot walk the queue {}", queue.display()))?;
        (format!("queue {}", queue.display()), report)
    } else if let (Some(db), Some(inventory)) = (&args.central, &args.inventory) {
        if !db.is_file() {
            return Err(Usage(format!("--central {}: no such file", db.display())).into());
        }
        let key = match &args.devices {
            Some(dir) => Some(anpr_trust::DeviceKeys::open(dir)?.get(inventory)?),
            None => None,
        };
        let receiver = anpr_central::Receiver::open(db)?;
        let report = receiver.verify(inventory, key.as_ref(), progress)?;
        let flagged =
            receiver.quarantined_of(inventory)?.len() + receiver.chain_breaks_of(inventory)?.len();
        if flagged > 0 {
            println!(
                "note: {flagged} event(s) of {inventory} were refused on arrival and are not stored (`anpr central --report` lists them)"
            );
        }
        (format!("device {inventory} in {}", db.display()), report)
    } else {
        return Err(Usage("give --queue, or --central with --inventory".into()).into());
    };
    println!(
        "{what}: {} rows checked ({} from before signing), {} removed by the queue, {} images hashed, last sequence number {}, signatures {}",
        report.rows,
        report.legacy,
        report.removed,
        report.images,
        report.last_seq,
        if report.signatures_checked {
            "checked"
        } else {
            "not checked (no public key given)"
        }
    );
    if !report.gaps.is_empty() {
        println!(
            "never received (not checked across): {}",
            report
                .gaps
                .iter()
                .map(|(a, b)| if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if args.queue.is_some() {
        println!(
            "journal: {} rows checked, head {}",
            report.journal_rows,
            report.journal_head.as_ref().map_or_else(
                || "none (empty)".to_string(),
                |h| format!("row {} hash {}", h.seq, h.hash)
            )
        );
    }
    let intact = report.is_intact();
    if let Some(m) = &report.mismatch {
        println!("MISMATCH at {m}");
    }
    if let Some(m) = &report.journal_mismatch {
        println!("MISMATCH at journal row {}: {}", m.seq, m.what);
    }
    if intact {
        println!("intact");
        Ok(ExitStatus::Success)
    } else {
        Ok(ExitStatus::Failure)
    }
}

/// `--bundle`: every file of an export bundle against its manifest and signatures, with the
/// device's key from `--key` or from the devices directory `--devices` (by the manifest's
/// inventory); each problem is printed with its file.
#[allow(clippy::print_stdout)]
fn bundle(args: &VerifyArgs, dir: &std::path::Path) -> Result<ExitStatus> {
    let b = anpr_trust::bundle::Bundle::open(dir)?;
    let m = &b.manifest;
    let key = match (&args.key, &args.devices) {
        (Some(k), _) => Some(anpr_trust::load_verifying_key_as("device public key", k)?),
        (None, Some(devices)) => Some(anpr_trust::DeviceKeys::open(devices)?.get(&m.inventory)?),
        (None, None) => None,
    };
    let r = b.check(key.as_ref());
    println!(
        "bundle {} of device {} made {}: {} event(s), {} image(s), recordings {} h.min, signatures {}",
        m.bundle_id,
        anpr_central::escape(&m.inventory),
        m.created_at,
        r.events.len(),
        r.images,
        anpr_central::escape(&m.recordings.duration_hmin),
        if r.signature_checked {
            "checked"
        } else {
            "not checked (no public key given: --key or --devices)"
        }
    );
    for p in &r.problems {
        println!(
            "MISMATCH {}: {}",
            anpr_central::escape(&p.file),
            anpr_central::escape(&p.what)
        );
    }
    if r.is_intact() {
        println!("intact");
        Ok(ExitStatus::Success)
    } else {
        println!(
            "{} problem(s): the bundle is not what the device wrote",
            r.problems.len()
        );
        Ok(ExitStatus::Failure)
    }
}
