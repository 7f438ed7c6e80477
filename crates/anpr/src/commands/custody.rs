//! `anpr custody issue|return|list`: the duty officer's custody journal of a mobile unit
//! (rule 27, annex 3), kept in the device's queue (`anpr_store`: a signed `custody` event and
//! a journal entry per line), and printed as the annex-3 table.
//!
//! The annex's column titles are given in Kazakh by the order (`order-419-kk.txt`, annex 3);
//! the Russian titles are our translation of them.

use std::fmt::Write as _;
use std::path::Path;

use anpr_store::{AnnexRow, Store, annex3_rows};
use anpr_types::{CustodyRecord, DeviceInfo};
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

/// `dd.mm.yyyy HH:MM` in `tz`, as the journal's pages are filled in.
fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%d.%m.%Y %H:%M").to_string()
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
                local(c.at, tz),
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
                local(c.at, tz),
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
            for e in &journal {
                println!("{}", line(&e.record, e.seq, tz));
            }
            if journal.is_empty() {
                println!("the custody journal is empty");
            }
            match d.store.custody_holder()? {
                Some(h) => println!(
                    "now: issued to {} ({}) since {}",
                    h.employee.as_deref().unwrap_or(""),
                    h.employee_id.as_deref().unwrap_or(""),
                    local(h.at, tz)
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

/// One line of `anpr custody list`.
fn line(r: &CustodyRecord, seq: u64, tz: Tz) -> String {
    let who = match (&r.employee, &r.employee_id) {
        (Some(n), Some(i)) => format!("{n} ({i})"),
        _ => "-".into(),
    };
    let mut s = format!(
        "seq {seq:>6}  {:<6}  {}  {who}",
        r.action.as_str(),
        local(r.at, tz)
    );
    if let Some(x) = &r.export {
        let _ = write!(
            s,
            "  copy of {} event(s), {} image(s), recordings {} h.min, bundle {} at {}",
            x.events, x.images, x.duration_hmin, x.bundle_id, x.path
        );
    }
    s
}

/// Text made safe inside HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The annex-3 columns: number, Kazakh title (the order's), Russian title (our translation).
pub(crate) const COLUMNS: [(&str, &str, &str); 6] = [
    ("1", "№", "№"),
    ("2", "Аспаптың түгендеу нөмірі", "Инвентарный номер прибора"),
    (
        "3",
        "Аспапты қабылдаған қызметкердің Т.А.Ә. (бар болған жағдайда)",
        "Ф.И.О. (при наличии) сотрудника, принявшего прибор",
    ),
    (
        "4",
        "Қызметкердің аспапты қабылдау туралы қолы, күні және уақыты",
        "Подпись сотрудника о приёме прибора, дата и время",
    ),
    (
        "5",
        "Қызметкердің аспапты тапсыру туралы қолы, күні және уақыты",
        "Подпись сотрудника о сдаче прибора, дата и время",
    ),
    (
        "6",
        "Ақпараттарды көшіру күні мен уақыты және бейнежазбалардың ұзақтығы (сағат.минут) (нақты уақыт режимінде деректерді беру мүмкіндігі болмаған жағдайда)",
        "Дата и время копирования информации и продолжительность видеозаписей (час.мин) (при отсутствии возможности передачи данных в режиме реального времени)",
    ),
];

/// The annex-3 table as one self-contained, print-friendly HTML page. Dates and times are in
/// the device's time zone; the signature columns leave a line to sign on.
pub(crate) fn annex3_html(inventory: &str, rows: &[AnnexRow], tz: Tz) -> String {
    let sign = r#"<div class="sign">қолы / подпись: ____________</div>"#;
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="kk">
<head>
<meta charset="utf-8">
<title>Журнал / Журнал учёта — {inv}</title>
<style>
  @page {{ size: A4 landscape; margin: 12mm; }}
  body {{ font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #000; background: #fff; }}
  h1 {{ font-size: 12pt; text-align: center; margin: 0 0 2mm; }}
  h2 {{ font-size: 11pt; text-align: center; font-weight: normal; margin: 0 0 4mm; }}
  .inspection {{ text-align: center; margin-bottom: 4mm; }}
  table {{ width: 100%; border-collapse: collapse; }}
  th, td {{ border: 1px solid #000; padding: 1.5mm; vertical-align: top; }}
  th {{ font-size: 8.5pt; font-weight: normal; }}
  th .ru {{ display: block; font-style: italic; margin-top: 1mm; }}
  thead {{ display: table-header-group; }}
  tr {{ page-break-inside: avoid; }}
  .num th {{ text-align: center; font-weight: bold; }}
  .sign {{ margin-top: 3mm; font-size: 8pt; color: #333; }}
  .copy {{ margin-bottom: 2mm; }}
  .note {{ font-size: 8pt; margin-top: 4mm; }}
</style>
</head>
<body>
<h1>Мобильді интеллектуалды бақылау аспабын беру мен тапсыруды есепке алу журналы</h1>
<h2>Журнал учёта выдачи и сдачи мобильного интеллектуального контрольного прибора</h2>
<div class="inspection">_______________________________________________<br>(Инспекцияның атауы / наименование Инспекции)</div>
<table>
<thead>
<tr>"#,
        inv = esc(inventory)
    );
    for (_, kk, ru) in COLUMNS {
        let _ = write!(h, r#"<th>{kk}<span class="ru">{ru}</span></th>"#);
    }
    h.push_str("</tr>\n<tr class=\"num\">");
    for (n, _, _) in COLUMNS {
        let _ = write!(h, "<th>{n}</th>");
    }
    h.push_str("</tr>\n</thead>\n<tbody>\n");
    for r in rows {
        let who = match (&r.employee, &r.employee_id) {
            (Some(n), Some(i)) => format!("{}<br>({})", esc(n), esc(i)),
            (Some(n), None) => esc(n),
            _ => String::new(),
        };
        let issued = r
            .issued_at
            .map(|t| format!("{}{sign}", local(t, tz)))
            .unwrap_or_default();
        let returned = r
            .returned_at
            .map(|t| format!("{}{sign}", local(t, tz)))
            .unwrap_or_default();
        let mut copies = String::new();
        for x in &r.exports {
            let Some(e) = &x.export else { continue };
            let _ = write!(
                copies,
                r#"<div class="copy">{} — {}<br><small>{} / {}; bundle {}</small></div>"#,
                local(x.at, tz),
                esc(&e.duration_hmin),
                e.events,
                e.images,
                e.bundle_id
            );
        }
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{who}</td><td>{issued}</td><td>{returned}</td><td>{copies}</td></tr>",
            r.number,
            esc(inventory)
        );
    }
    let _ = write!(
        h,
        r#"</tbody>
</table>
<p class="note">Ескертпе: аспапты қабылдап алған қызметкер аспапты тапсыруды жүзеге асырады. / Примечание: сдачу прибора осуществляет сотрудник, принявший прибор.<br>
6-баған / графа 6: көшіру күні мен уақыты — бейнежазбалардың ұзақтығы (сағат.минут); оқиғалар / события, суреттер / изображения. Уақыт белдеуі / часовой пояс: {tz}.</p>
</body>
</html>
"#
    );
    h
}

#[cfg(test)]
mod tests {
    use anpr_store::AnnexRow;
    use anpr_types::{CustodyAction, CustodyRecord, ExportRecord};
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn the_annex_3_table_has_its_six_columns_in_kazakh_and_russian_and_escapes_names() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 3, 30, 0).unwrap();
        let rows = vec![AnnexRow {
            number: 1,
            employee: Some("Ivanov <b>".into()),
            employee_id: Some("42".into()),
            issued_at: Some(at),
            returned_at: None,
            exports: vec![CustodyRecord {
                action: CustodyAction::Export,
                at,
                employee: None,
                employee_id: None,
                export: Some(ExportRecord {
                    bundle_id: uuid::Uuid::nil(),
                    path: "/media/usb/b".into(),
                    manifest_sha256: String::new(),
                    events: 3,
                    images: 6,
                    first_seq: 1,
                    last_seq: 3,
                    recordings_from: None,
                    recordings_to: None,
                    duration_s: 7_500,
                    duration_hmin: "2.05".into(),
                }),
            }],
        }];
        let html = annex3_html("KZ-MOB-1", &rows, chrono_tz::Asia::Almaty);
        for (n, kk, ru) in COLUMNS {
            assert!(html.contains(kk) && html.contains(ru), "column {n}");
        }
        assert!(html.contains("Ivanov &lt;b&gt;") && !html.contains("Ivanov <b>"));
        assert!(html.contains("2.05"));
        assert!(html.contains("01.03.2026"), "local date");
        assert!(
            !html.contains("<script") && !html.contains("http"),
            "self-contained"
        );
    }

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
