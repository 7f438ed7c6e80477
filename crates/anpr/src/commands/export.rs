//! `anpr export`: what could not go out live, copied into a bundle signed with the device key
//! (`anpr_store::Store::export`), journaled in the custody journal with the copy time and the
//! recordings' duration (annex 3); the rows stay owed until the central receiver acknowledges
//! them.

use anyhow::{Context, Result};

use super::custody::{Device, parse_time};
use crate::ExportArgs;
use crate::exit::ExitStatus;

#[allow(clippy::print_stdout)]
pub(crate) fn export(args: &ExportArgs) -> Result<ExitStatus> {
    let mut d = Device::open(&args.config)?;
    let tz = d.cfg.device.time_zone;
    let from = args
        .from
        .as_deref()
        .map(|t| parse_time("--from", t, tz))
        .transpose()?;
    let to = args
        .to_time
        .as_deref()
        .map(|t| parse_time("--to-time", t, tz))
        .transpose()?;
    let opts = anpr_store::ExportOptions {
        dir: args.to.clone(),
        from,
        to,
        device: d.info(),
    };
    let s = d
        .store
        .export(&opts)
        .with_context(|| format!("export of {} failed", d.cfg.device.inventory))?;
    let r = &s.record;
    println!(
        "exported: {} event(s) (seq {} to {}), {} image(s) to {}",
        r.events,
        r.first_seq,
        r.last_seq,
        r.images,
        s.dir.display()
    );
    if s.absent_images > 0 {
        println!(
            "  {} image(s) named by these events are not in it (already delivered, or dropped under the disk quota): listed in the manifest",
            s.absent_images
        );
    }
    println!(
        "  recordings: {} to {}, duration {} h.min ({} s)",
        r.recordings_from
            .map_or_else(|| "-".into(), |t| t.with_timezone(&tz).to_rfc3339()),
        r.recordings_to
            .map_or_else(|| "-".into(), |t| t.with_timezone(&tz).to_rfc3339()),
        r.duration_hmin,
        r.duration_s
    );
    println!(
        "  bundle {} manifest sha256 {}",
        r.bundle_id, r.manifest_sha256
    );
    println!(
        "  journaled as custody record seq {}; {} event(s) handed over, kept until the central receiver acknowledges them",
        s.custody_event.seq, s.handed_over
    );
    Ok(ExitStatus::Success)
}
