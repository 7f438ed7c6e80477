//! The custody journal and its annex-3 table rendered for people: one text line per journal
//! entry (`anpr custody list`) and the annex-3 table as one self-contained, print-friendly
//! HTML page. Dates and times are written in the device's time zone, `dd.mm.yyyy HH:MM`, as
//! the journal's pages are filled in; every name and figure that came from the journal is
//! escaped ([`anpr_types::html::escape`]) before it goes into the page.
//!
//! The annex's column titles are given in Kazakh by the order (`order-419-kk.txt`, annex 3);
//! the Russian titles are our translation of them.

use std::fmt::Write as _;

use anpr_types::html::escape;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{AnnexRow, CustodyEntry};

/// `dd.mm.yyyy HH:MM` in `tz`, as the journal's pages are filled in.
#[must_use]
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%d.%m.%Y %H:%M").to_string()
}

/// One line of the journal (`anpr custody list`): its `seq`, action, date-time in `tz`, who,
/// and for an export what the copy holds.
#[must_use]
pub fn journal_line(entry: &CustodyEntry, tz: Tz) -> String {
    let r = &entry.record;
    let who = match (&r.employee, &r.employee_id) {
        (Some(n), Some(i)) => format!("{n} ({i})"),
        _ => "-".into(),
    };
    let mut s = format!(
        "seq {:>6}  {:<6}  {}  {who}",
        entry.seq,
        r.action.as_str(),
        local_time(r.at, tz)
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

/// The whole journal as text: one [`journal_line`] per entry, each ending in a newline, or
/// `the custody journal is empty` on a line of its own.
#[must_use]
pub fn journal_text(entries: &[CustodyEntry], tz: Tz) -> String {
    if entries.is_empty() {
        return "the custody journal is empty\n".into();
    }
    let mut s = String::new();
    for e in entries {
        s.push_str(&journal_line(e, tz));
        s.push('\n');
    }
    s
}

/// The annex-3 columns: number, Kazakh title (the order's), Russian title (our translation).
pub const ANNEX3_COLUMNS: [(&str, &str, &str); 6] = [
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
#[must_use]
pub fn annex3_html(inventory: &str, rows: &[AnnexRow], tz: Tz) -> String {
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
        inv = escape(inventory)
    );
    for (_, kk, ru) in ANNEX3_COLUMNS {
        let _ = write!(h, r#"<th>{kk}<span class="ru">{ru}</span></th>"#);
    }
    h.push_str("</tr>\n<tr class=\"num\">");
    for (n, _, _) in ANNEX3_COLUMNS {
        let _ = write!(h, "<th>{n}</th>");
    }
    h.push_str("</tr>\n</thead>\n<tbody>\n");
    for r in rows {
        let who = match (&r.employee, &r.employee_id) {
            (Some(n), Some(i)) => format!("{}<br>({})", escape(n), escape(i)),
            (Some(n), None) => escape(n),
            _ => String::new(),
        };
        let issued = r
            .issued_at
            .map(|t| format!("{}{sign}", local_time(t, tz)))
            .unwrap_or_default();
        let returned = r
            .returned_at
            .map(|t| format!("{}{sign}", local_time(t, tz)))
            .unwrap_or_default();
        let mut copies = String::new();
        for x in &r.exports {
            let Some(e) = &x.export else { continue };
            let _ = write!(
                copies,
                r#"<div class="copy">{} — {}<br><small>{} / {}; bundle {}</small></div>"#,
                local_time(x.at, tz),
                escape(&e.duration_hmin),
                e.events,
                e.images,
                e.bundle_id
            );
        }
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{who}</td><td>{issued}</td><td>{returned}</td><td>{copies}</td></tr>",
            r.number,
            escape(inventory)
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
    use anpr_types::{CustodyAction, CustodyRecord, ExportRecord};
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::annex3_rows;

    const TZ: Tz = chrono_tz::Asia::Almaty;

    fn record(action: CustodyAction, minutes: i64, who: Option<(&str, &str)>) -> CustodyRecord {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 3, 30, 0).unwrap() + TimeDelta::minutes(minutes);
        let export = (action == CustodyAction::Export).then(|| ExportRecord {
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
        });
        CustodyRecord {
            action,
            at,
            employee: who.map(|(n, _)| n.to_string()),
            employee_id: who.map(|(_, i)| i.to_string()),
            export,
        }
    }

    fn entry(seq: u64, record: CustodyRecord) -> CustodyEntry {
        CustodyEntry {
            journal_id: seq,
            recorded_at: record.at,
            seq,
            event_id: None,
            record,
        }
    }

    #[test]
    fn the_annex_3_table_has_its_six_columns_in_kazakh_and_russian_and_is_self_contained() {
        let who = Some(("Ivanov Ivan", "42"));
        let rows = vec![AnnexRow {
            number: 1,
            employee: Some("Ivanov Ivan".into()),
            employee_id: Some("42".into()),
            issued_at: Some(record(CustodyAction::Issue, 0, who).at),
            returned_at: None,
            exports: vec![record(CustodyAction::Export, 0, who)],
        }];
        let html = annex3_html("KZ-MOB-1", &rows, TZ);
        for (n, kk, ru) in ANNEX3_COLUMNS {
            assert!(html.contains(kk) && html.contains(ru), "column {n}");
        }
        assert!(html.contains("2.05"));
        assert!(html.contains("01.03.2026 08:30"), "local date-time");
        assert!(
            !html.contains("<script") && !html.contains("http"),
            "self-contained"
        );
    }

    #[test]
    fn a_name_with_html_characters_is_escaped_in_the_page_and_kept_as_typed_in_the_text() {
        let name = r#"Ivanov <b>&"O'Neil""#;
        let journal = vec![entry(
            1,
            record(CustodyAction::Issue, 0, Some((name, "<42>"))),
        )];
        let html = annex3_html("KZ<1>", &annex3_rows(&journal), TZ);
        assert!(
            html.contains("Ivanov &lt;b&gt;&amp;&quot;O&#39;Neil&quot;<br>(&lt;42&gt;)"),
            "{html}"
        );
        assert!(html.contains("<td>KZ&lt;1&gt;</td>") && html.contains("KZ&lt;1&gt;</title>"));
        assert!(!html.contains(name) && !html.contains("<42>") && !html.contains("KZ<1>"));
        let text = journal_text(&journal, TZ);
        assert!(text.contains(&format!("{name} (<42>)")), "{text}");
    }

    #[test]
    fn the_text_and_the_page_list_the_same_journal() {
        let (a, b) = (("Serikov Serik", "77"), ("Ivanov Ivan", "42"));
        let journal = vec![
            entry(1, record(CustodyAction::Issue, 0, Some(a))),
            entry(3, record(CustodyAction::Export, 60, Some(a))),
            entry(5, record(CustodyAction::Return, 120, Some(a))),
            entry(7, record(CustodyAction::Export, 180, None)),
            entry(9, record(CustodyAction::Issue, 240, Some(b))),
        ];
        let rows = annex3_rows(&journal);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let text = journal_text(&journal, TZ);
        let html = annex3_html("KZ-MOB-1", &rows, TZ);
        assert_eq!(text.lines().count(), journal.len(), "{text}");
        for (line, e) in text.lines().zip(&journal) {
            assert_eq!(line, journal_line(e, TZ));
            assert!(line.starts_with(&format!("seq {:>6}", e.seq)), "{line}");
            let when = local_time(e.record.at, TZ);
            assert!(line.contains(&when), "{line}");
            assert!(html.contains(&when), "{when} is not in the page");
        }
        assert_eq!(html.matches("<tr><td>").count(), rows.len());
        for (name, id) in [a, b] {
            assert!(text.contains(&format!("{name} ({id})")), "{text}");
            assert!(html.contains(&format!("{name}<br>({id})")), "{name}");
        }
        assert_eq!(html.matches("2.05").count(), 2, "both copies in column 6");
    }

    #[test]
    fn an_empty_journal_says_so() {
        assert_eq!(journal_text(&[], TZ), "the custody journal is empty\n");
        let html = annex3_html("KZ-MOB-1", &[], TZ);
        assert!(!html.contains("<tr><td>") && html.contains("</tbody>"));
    }
}
