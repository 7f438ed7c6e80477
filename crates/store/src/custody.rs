//! The custody journal of a mobile unit (rule 27, annex 3): the device issued to an employee,
//! returned, and each copy of data that could not go out live (`export`).
//!
//! Each line is two records written in one transaction: a `custody` event (signed, chained and
//! delivered to the central side like every event, so the Situational Center holds the
//! journal too) and a journal entry (`custody-issue`, `custody-return`, `custody-export`) in
//! the device's own hash-chained journal, whose detail is the event's [`CustodyRecord`] with
//! the event's `seq` and `event_id`. The rules are checked under the write lock of that
//! transaction: an issue while one is open, a return with none open, an issue without the
//! employee's name or service number, a date-time in the future or a return dated before its
//! issue are refused and nothing is written.
//!
//! The journal is rendered for people in `table`: its text lines and the annex-3 HTML page.

mod table;

pub use table::{ANNEX3_COLUMNS, annex3_html, journal_line, journal_text, local_time};

use anpr_types::{
    ClockInfo, CustodyAction, CustodyRecord, DeviceInfo, EVENT_SCHEMA, Event, EventKind,
    EventPlate, EventVehicle, FrameRef,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction};
use uuid::Uuid;

use crate::append::{NewRecord, append_in};
use crate::journal::journal_add;
use crate::sqlite::sql_error;
use crate::{Store, StoreError};

/// Journal kinds of the custody journal.
pub(crate) const ISSUE: &str = "custody-issue";
pub(crate) const RETURN: &str = "custody-return";
pub(crate) const EXPORT: &str = "custody-export";

/// How far ahead of the device's clock a stated date-time may be (clocks of the duty officer's
/// watch and the device's differ by a little).
const FUTURE_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Why a custody record was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CustodyError {
    #[error(
        "the employee's {what} is required to issue the device: give it with {flag} (annex 3 records who holds the device)"
    )]
    MissingEmployee {
        what: &'static str,
        flag: &'static str,
    },
    #[error(
        "the device is already issued to {employee} ({employee_id}) since {since}; record its return first (`anpr custody return --config <config>`), then issue it again"
    )]
    AlreadyIssued {
        employee: String,
        employee_id: String,
        since: DateTime<Utc>,
    },
    #[error(
        "the device is not issued to anyone (the custody journal has no open issue), so there is nothing to return; `anpr custody list --config <config>` shows the journal"
    )]
    NotIssued,
    #[error(
        "the return's date-time {at} is before the issue's ({issued_at}); give the right time with --at"
    )]
    ReturnBeforeIssue {
        at: DateTime<Utc>,
        issued_at: DateTime<Utc>,
    },
    #[error(
        "the date-time {at} is in the future by the device's clock ({now}); give the time it happened with --at, or check the device's clock"
    )]
    InFuture {
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A line of the custody journal as the device journaled it.
#[derive(Debug, Clone, PartialEq)]
pub struct CustodyEntry {
    /// Id of the journal row.
    pub journal_id: u64,
    /// When the journal row was written.
    pub recorded_at: DateTime<Utc>,
    /// Sequence number and id of the `custody` event that carries it to the central side.
    pub seq: u64,
    pub event_id: Option<Uuid>,
    pub record: CustodyRecord,
}

/// One row of the annex-3 table: an issue with its return and the exports made while it was
/// open; or an export made while the device was not issued (no employee, no issue).
#[derive(Debug, Clone, PartialEq)]
pub struct AnnexRow {
    /// Column 1: the row's number, from 1.
    pub number: usize,
    /// Column 3: the employee's name and service number.
    pub employee: Option<String>,
    pub employee_id: Option<String>,
    /// Column 4: date-time of the issue (the acceptance by the employee).
    pub issued_at: Option<DateTime<Utc>>,
    /// Column 5: date-time of the return; `None` while the device is out.
    pub returned_at: Option<DateTime<Utc>>,
    /// Column 6: each copy of data made meanwhile.
    pub exports: Vec<CustodyRecord>,
}

/// The rows of the annex-3 table from the custody journal's lines, in order.
#[must_use]
pub fn annex3_rows(entries: &[CustodyEntry]) -> Vec<AnnexRow> {
    let mut rows: Vec<AnnexRow> = Vec::new();
    let mut open: Option<usize> = None;
    for e in entries {
        let r = &e.record;
        match r.action {
            CustodyAction::Issue => {
                rows.push(AnnexRow {
                    number: rows.len() + 1,
                    employee: r.employee.clone(),
                    employee_id: r.employee_id.clone(),
                    issued_at: Some(r.at),
                    returned_at: None,
                    exports: Vec::new(),
                });
                open = Some(rows.len() - 1);
            }
            CustodyAction::Return => {
                if let Some(i) = open.take() {
                    rows[i].returned_at = Some(r.at);
                }
            }
            CustodyAction::Export => match open {
                Some(i) => rows[i].exports.push(r.clone()),
                None => rows.push(AnnexRow {
                    number: rows.len() + 1,
                    employee: None,
                    employee_id: None,
                    issued_at: None,
                    returned_at: None,
                    exports: vec![r.clone()],
                }),
            },
        }
    }
    rows
}

/// The event carrying a custody record: no camera, vehicle or plate.
pub(crate) fn custody_event(device: DeviceInfo, record: CustodyRecord, seq: u64) -> Event {
    Event {
        schema: EVENT_SCHEMA.to_string(),
        event_id: Uuid::now_v7(),
        seq,
        device,
        camera: String::new(),
        kind: EventKind::Custody,
        captured_at: Utc::now(),
        clock: ClockInfo {
            source: "system".into(),
            synced: false,
            ..ClockInfo::default()
        },
        position: None,
        vehicle: EventVehicle::none(),
        plate: EventPlate::absent(),
        frame: FrameRef {
            index: 0,
            width: 0,
            height: 0,
        },
        evidence: Vec::new(),
        track: None,
        violation: None,
        gap: None,
        custody: Some(record),
        prev_hash: None,
        signature: None,
    }
}

/// The open issue (the last issue not followed by a return), read in `conn`.
pub(crate) fn open_issue(conn: &Connection) -> rusqlite::Result<Option<CustodyRecord>> {
    let last: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT kind, detail FROM journal WHERE kind IN (?1, ?2) ORDER BY id DESC LIMIT 1",
        )?
        .query_row([ISSUE, RETURN], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match last {
        Some((kind, detail)) if kind == ISSUE => serde_json::from_str(&detail).ok(),
        _ => None,
    })
}

/// Appends the custody event of `record` and journals it (`kind`), inside `tx`.
pub(crate) fn record_in(
    tx: &Transaction<'_>,
    store: (&std::path::Path, Option<u64>, Option<&crate::SigningKey>),
    device: DeviceInfo,
    kind: &str,
    record: CustodyRecord,
) -> Result<Event, StoreError> {
    let (path, quota, signer) = store;
    let mut detail = serde_json::to_value(&record).unwrap_or_default();
    let mut events = append_in(
        tx,
        path,
        quota,
        signer,
        vec![NewRecord {
            build: Box::new(move |seq| custody_event(device, record, seq)),
            evidence: Vec::new(),
        }],
        None,
    )?;
    let event = events.remove(0);
    if let Some(map) = detail.as_object_mut() {
        map.insert("seq".into(), event.seq.into());
        map.insert("event_id".into(), event.event_id.to_string().into());
    }
    journal_add(tx, kind, &detail).map_err(sql_error(path))?;
    Ok(event)
}

impl Store {
    /// Issues the device to an employee (`employee`: full name, `employee_id`: service number)
    /// at `at`: refused while an issue is open, without a name or number, or at a time in the
    /// future. Returns the `custody` event written.
    pub fn custody_issue(
        &mut self,
        device: DeviceInfo,
        employee: &str,
        employee_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Event, CustodyError> {
        let (employee, employee_id) = (employee.trim(), employee_id.trim());
        if employee.is_empty() {
            return Err(CustodyError::MissingEmployee {
                what: "full name",
                flag: "--employee \"Surname Name Patronymic\"",
            });
        }
        if employee_id.is_empty() {
            return Err(CustodyError::MissingEmployee {
                what: "service number",
                flag: "--employee-id",
            });
        }
        not_in_future(at)?;
        let (quota, signer) = (self.quota, self.signer.clone());
        let (tx, path) = self.begin_write()?;
        if let Some(open) = open_issue(&tx).map_err(sql_error(path))? {
            return Err(CustodyError::AlreadyIssued {
                employee: open.employee.unwrap_or_default(),
                employee_id: open.employee_id.unwrap_or_default(),
                since: open.at,
            });
        }
        let record = CustodyRecord {
            action: CustodyAction::Issue,
            at,
            employee: Some(employee.to_string()),
            employee_id: Some(employee_id.to_string()),
            export: None,
        };
        let event = record_in(&tx, (path, quota, signer.as_ref()), device, ISSUE, record)?;
        tx.commit().map_err(sql_error(path))?;
        self.bump_appended();
        Ok(event)
    }

    /// Records the return of the device at `at` by the employee it is issued to: refused when
    /// no issue is open, or at a time before the issue or in the future.
    pub fn custody_return(
        &mut self,
        device: DeviceInfo,
        at: DateTime<Utc>,
    ) -> Result<Event, CustodyError> {
        not_in_future(at)?;
        let (quota, signer) = (self.quota, self.signer.clone());
        let (tx, path) = self.begin_write()?;
        let Some(open) = open_issue(&tx).map_err(sql_error(path))? else {
            return Err(CustodyError::NotIssued);
        };
        if at < open.at {
            return Err(CustodyError::ReturnBeforeIssue {
                at,
                issued_at: open.at,
            });
        }
        let record = CustodyRecord {
            action: CustodyAction::Return,
            at,
            employee: open.employee,
            employee_id: open.employee_id,
            export: None,
        };
        let event = record_in(&tx, (path, quota, signer.as_ref()), device, RETURN, record)?;
        tx.commit().map_err(sql_error(path))?;
        self.bump_appended();
        Ok(event)
    }

    /// The open issue (who holds the device, since when); `None` when it is not issued.
    pub fn custody_holder(&self) -> Result<Option<CustodyRecord>, StoreError> {
        open_issue(&self.conn).map_err(self.sql())
    }

    /// The custody journal's lines (issues, returns, exports), oldest first.
    pub fn custody_journal(&self) -> Result<Vec<CustodyEntry>, StoreError> {
        let rows = crate::sqlite::rows4(
            &self.conn,
            "SELECT id, at, kind, detail FROM journal WHERE kind IN (?1, ?2, ?3) ORDER BY id",
            [ISSUE, RETURN, EXPORT],
        )
        .map_err(self.sql())?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, at, _kind, detail) in rows {
            let value: serde_json::Value =
                serde_json::from_str(&detail).map_err(|e| StoreError::Corrupt {
                    seq: id,
                    message: format!("custody journal row {id}: {e}"),
                })?;
            let record: CustodyRecord =
                serde_json::from_value(value.clone()).map_err(|e| StoreError::Corrupt {
                    seq: id,
                    message: format!("custody journal row {id}: {e}"),
                })?;
            out.push(CustodyEntry {
                journal_id: id,
                recorded_at: DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
                seq: value["seq"].as_u64().unwrap_or(0),
                event_id: value["event_id"]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok()),
                record,
            });
        }
        Ok(out)
    }
}

fn not_in_future(at: DateTime<Utc>) -> Result<(), CustodyError> {
    let now = Utc::now();
    if at > now + FUTURE_SLACK {
        return Err(CustodyError::InFuture { at, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use anpr_types::{CustodyAction, DeviceInfo, EventKind};
    use chrono::{TimeDelta, Utc};

    use super::{CustodyError, annex3_rows};
    use crate::Store;

    fn device() -> DeviceInfo {
        DeviceInfo {
            inventory: "KZ-MOB-1".into(),
            profile: "mobile".into(),
            site: String::new(),
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        (dir, s)
    }

    #[test]
    fn an_issue_and_its_return_are_events_and_journal_rows_in_one_chain() {
        let (_dir, s) = store();
        let key = anpr_trust::SigningKey::from_bytes(&[5; 32]);
        let mut s = s.with_signer(key.clone());
        let at = Utc::now() - TimeDelta::hours(8);
        let e = s
            .custody_issue(device(), " Ivanov Ivan Ivanovich ", "0042", at)
            .unwrap();
        assert_eq!((e.seq, e.kind), (1, EventKind::Custody));
        let c = e.custody.as_ref().unwrap();
        assert_eq!(c.action, CustodyAction::Issue);
        assert_eq!(c.employee.as_deref(), Some("Ivanov Ivan Ivanovich"));
        assert_eq!(c.at, at);
        anpr_trust::event::verify_event(&e, &key.verifying_key()).unwrap();
        assert_eq!(
            s.custody_holder().unwrap().unwrap().employee_id.as_deref(),
            Some("0042")
        );
        s.append(crate::tests::event).unwrap();
        let r = s.custody_return(device(), Utc::now()).unwrap();
        assert_eq!(r.seq, 3);
        assert_eq!(
            r.custody.as_ref().unwrap().employee.as_deref(),
            Some("Ivanov Ivan Ivanovich"),
            "the return names who returned it"
        );
        assert!(s.custody_holder().unwrap().is_none());
        let journal = s.custody_journal().unwrap();
        assert_eq!(journal.len(), 2);
        assert_eq!((journal[0].seq, journal[1].seq), (1, 3));
        assert_eq!(journal[1].event_id, Some(r.event_id));
        assert_eq!(s.stats().unwrap().pending, 3, "delivered like any event");
        assert!(
            s.verify(Some(&key.verifying_key()), |_, _| {})
                .unwrap()
                .is_intact()
        );
        let rows = annex3_rows(&journal);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].issued_at, Some(at));
        assert!(rows[0].returned_at.is_some());
    }

    #[test]
    fn a_return_without_an_issue_is_refused_and_writes_nothing() {
        let (_dir, mut s) = store();
        let err = s.custody_return(device(), Utc::now()).unwrap_err();
        assert!(matches!(err, CustodyError::NotIssued), "{err}");
        assert!(err.to_string().contains("nothing to return"), "{err}");
        s.custody_issue(device(), "A B", "1", Utc::now()).unwrap();
        s.custody_return(device(), Utc::now()).unwrap();
        let err = s.custody_return(device(), Utc::now()).unwrap_err();
        assert!(matches!(err, CustodyError::NotIssued), "twice: {err}");
        assert_eq!(s.stats().unwrap().last_seq, 2);
        assert_eq!(s.journal(0).unwrap().len(), 2);
    }

    #[test]
    fn an_issue_while_one_is_open_is_refused_naming_the_holder() {
        let (_dir, mut s) = store();
        s.custody_issue(device(), "Serikov Serik", "77", Utc::now())
            .unwrap();
        let err = s
            .custody_issue(device(), "Other Person", "78", Utc::now())
            .unwrap_err();
        assert!(matches!(err, CustodyError::AlreadyIssued { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("Serikov Serik (77)") && text.contains("anpr custody return"),
            "{text}"
        );
        assert_eq!(s.stats().unwrap().last_seq, 1);
    }

    #[test]
    fn an_issue_without_the_employees_name_or_number_is_refused() {
        let (_dir, mut s) = store();
        for (name, id, flag) in [
            ("", "1", "--employee"),
            ("  ", "1", "--employee"),
            ("A B", "", "--employee-id"),
        ] {
            let err = s.custody_issue(device(), name, id, Utc::now()).unwrap_err();
            assert!(matches!(err, CustodyError::MissingEmployee { .. }), "{err}");
            assert!(err.to_string().contains(flag), "{err}");
        }
        assert_eq!(s.stats().unwrap().last_seq, 0, "nothing written");
        assert!(s.journal(0).unwrap().is_empty());
    }

    #[test]
    fn times_in_the_future_or_a_return_before_its_issue_are_refused() {
        let (_dir, mut s) = store();
        let err = s
            .custody_issue(device(), "A B", "1", Utc::now() + TimeDelta::hours(1))
            .unwrap_err();
        assert!(matches!(err, CustodyError::InFuture { .. }), "{err}");
        let at = Utc::now() - TimeDelta::hours(1);
        s.custody_issue(device(), "A B", "1", at).unwrap();
        let err = s
            .custody_return(device(), at - TimeDelta::minutes(1))
            .unwrap_err();
        assert!(
            matches!(err, CustodyError::ReturnBeforeIssue { .. }),
            "{err}"
        );
    }

    #[test]
    fn custody_events_are_never_dropped_by_the_quota() {
        let (_dir, s) = store();
        let mut s = s.with_quota(Some(1));
        s.custody_issue(device(), "A B", "1", Utc::now()).unwrap();
        // Nothing is deletable: passages are refused, the custody record is kept.
        let err = s.append(crate::tests::event).unwrap_err();
        assert!(err.is_quota_full(), "{err}");
        s.custody_return(device(), Utc::now()).unwrap();
        assert!(s.get(1).unwrap().is_some(), "the custody record stays");
    }
}
