//! `anpr custody issue|return|list`: the duty officer's custody journal of a mobile unit
//! (rule 27, annex 3), kept in the device's queue (`anpr_store`: a signed `custody` event and
//! a journal entry per line), and printed as the annex-3 table. The journal's text and the
//! annex-3 HTML page are rendered by `anpr_store` (`custody::table`); this file holds the
//! arguments, opening the device and printing.

use std::path::Path;

use anpr_store::{Store, annex3_html, annex3_rows, journal_text, local_time};
use anpr_types::DeviceInfo;
use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::CustodyCommand;
use crate::exit::{ExitStatus, Usage};

/// The device's config, its queue opened as the device opens it (quota, signing key).
pub(super) struct Device {
    pub cfg: anpr_config::Config,
    pub store: Store,
}

impl Device {
    pub(super) fn open(config: &Path) -> Result<Self> {
        let cfg = anpr_config::load(config)?;
        let key = anpr_trust::load_signing_key_as("device private key", &cfg.security.device_key)?;
        let store = Store::open(&cfg.storage.queue)
            .with_context(|| format!("cannot open the queue of {}", config.display()))?
            .with_quota(cfg.storage.quota_bytes())
            .with_signer(key);
        Ok(Self { cfg, store })
    }

    pub(super) fn info(&self) -> DeviceInfo {
        DeviceInfo {
            inventory: self.cfg.device.inventory.clone(),
            profile: self.cfg.device.profile.as_str().to_string(),
            site: self.cfg.device.site.clone(),
        }
    }
}

/// A date-time the duty officer typed: RFC 3339, or `YYYY-MM-DD HH:MM[:SS]` in `tz`.
pub(super) fn parse_time(flag: &str, text: &str, tz: Tz) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text.trim(), format) {
            return tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| {
                    Usage(format!("{flag} {text:?} does not exist in time zone {tz}")).into()
                });
        }
    }
    Err(Usage(format!(
        "{flag} {text:?} is not a date-time: give RFC 3339 (2026-03-01T08:30:00+05:00) or \"YYYY-MM-DD HH:MM\" in the device's time zone ({tz})"
    ))
    .into())
}

#[allow(clippy::print_stdout)]
pub(crate) fn custody(command: &CustodyCommand) -> Result<ExitStatus> {
    match command {
        CustodyCommand::Issue {
            config,
            employee,
            employee_id,
            at,
        } => {
            let mut d = Device::open(config)?;
            let tz = d.cfg.device.time_zone;
            let at = at
                .as_deref()
                .map(|t| parse_time("--at", t, tz))
                .transpose()?
                .unwrap_or_else(Utc::now);
            let info = d.info();
            let e = d.store.custody_issue(
                info,
                employee.as_deref().unwrap_or(""),
                employee_id.as_deref().unwrap_or(""),
                at,
            )?;
            let c = e
                .custody
                .as_ref()
                .expect("a custody event carries its record");
            println!(
                "issued: device {} to {} ({}) at {} (custody record seq {})",
                d.cfg.device.inventory,
                c.employee.as_deref().unwrap_or(""),
                c.employee_id.as_deref().unwrap_or(""),
                local_time(c.at, tz),
                e.seq
            );
        }
        CustodyCommand::Return { config, at } => {
            let mut d = Device::open(config)?;
            let tz = d.cfg.device.time_zone;
            let at = at
                .as_deref()
                .map(|t| parse_time("--at", t, tz))
                .transpose()?
                .unwrap_or_else(Utc::now);
            let info = d.info();
            let e = d.store.custody_return(info, at)?;
            let c = e
                .custody
                .as_ref()
                .expect("a custody event carries its record");
            println!(
                "returned: device {} by {} ({}) at {} (custody record seq {})",
                d.cfg.device.inventory,
                c.employee.as_deref().unwrap_or(""),
                c.employee_id.as_deref().unwrap_or(""),
                local_time(c.at, tz),
                e.seq
            );
            let handed = d.store.handed_over()?;
            let pending = d.store.stats()?.pending;
            if pending > 0 {
                println!(
                    "note: {pending} event(s) not yet acknowledged by the central receiver ({handed} of them handed over in an export bundle); they go out when the link is up"
                );
            }
        }
        CustodyCommand::List { config, html } => {
            let d = Device::open(config)?;
            let tz = d.cfg.device.time_zone;
            let journal = d.store.custody_journal()?;
            print!("{}", journal_text(&journal, tz));
            match d.store.custody_holder()? {
                Some(h) => println!(
                    "now: issued to {} ({}) since {}",
                    h.employee.as_deref().unwrap_or(""),
                    h.employee_id.as_deref().unwrap_or(""),
                    local_time(h.at, tz)
                ),
                None => println!("now: not issued"),
            }
            if let Some(path) = html {
                let rows = annex3_rows(&journal);
                std::fs::write(path, annex3_html(&d.cfg.device.inventory, &rows, tz))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("annex-3 table: {} ({} row(s))", path.display(), rows.len());
            }
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn typed_times_are_rfc_3339_or_local_to_the_device() {
        let tz = chrono_tz::Asia::Almaty;
        let a = parse_time("--at", "2026-03-01T08:30:00+05:00", tz).unwrap();
        let b = parse_time("--at", "2026-03-01 08:30", tz).unwrap();
        assert_eq!(a, Utc.with_ymd_and_hms(2026, 3, 1, 3, 30, 0).unwrap());
        assert_eq!(a, b);
        let err = parse_time("--at", "yesterday", tz).unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }
}
