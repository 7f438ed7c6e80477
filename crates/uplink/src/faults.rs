//! The device's faults: raised by any part of it, listed in every health message while they
//! hold, and kept in a short history for the status page.
//!
//! Two kinds:
//! - a fault that **happened** (a drop, a clock jump, a refused list update) is listed for
//!   [`FAULT_HOLD`] after it was last raised, then falls off by itself;
//! - a fault that **lasts** (a camera down, the disk full) is listed from [`FaultBoard::set`]
//!   until [`FaultBoard::clear`], however long that is, with the time it began.
//!
//! Every change moves [`FaultBoard::generation`], so the uplink publishes health at once when a
//! fault appears or clears, not at its next period.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anpr_types::Fault;
use chrono::{DateTime, Utc};

/// How long a fault that happened stays listed after it was last raised.
pub const FAULT_HOLD: Duration = Duration::from_mins(10);
/// Raises and clears kept for the status page, newest last.
pub const HISTORY: usize = 256;

/// One change in the device's faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    pub at: DateTime<Utc>,
    pub code: String,
    pub subject: Option<String>,
    pub message: String,
    /// False when the fault cleared.
    pub raised: bool,
}

#[derive(Debug)]
struct Listed {
    fault: Fault,
    /// When it was last raised (a fault that happened), for [`FAULT_HOLD`].
    at: Instant,
    lasting: bool,
}

#[derive(Debug, Default)]
struct Board {
    listed: Vec<Listed>,
    history: VecDeque<FaultRecord>,
    generation: u64,
}

impl Board {
    fn note(&mut self, fault: &Fault, raised: bool) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(FaultRecord {
            at: Utc::now(),
            code: fault.code.clone(),
            subject: fault.subject.clone(),
            message: fault.message.clone(),
            raised,
        });
        self.generation += 1;
    }
}

/// The faults of one device; shared by everything that raises or reads them.
#[derive(Debug, Default)]
pub struct FaultBoard {
    board: Mutex<Board>,
}

impl FaultBoard {
    fn with<T>(&self, f: impl FnOnce(&mut Board) -> T) -> T {
        // A panic elsewhere while holding the lock leaves the board usable: it holds no
        // invariant a half-done change could break.
        let mut board = self
            .board
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut board)
    }

    /// A fault that happened: listed for [`FAULT_HOLD`]. Raising the same code and message
    /// again renews it rather than listing it twice.
    pub fn raise(&self, code: &str, message: &str) {
        self.raise_one(code, message, false);
    }

    /// Like [`raise`](Self::raise), but the new message replaces any earlier one with this
    /// code (for counted faults whose message says the running total).
    pub fn raise_latest(&self, code: &str, message: &str) {
        self.raise_one(code, message, true);
    }

    fn raise_one(&self, code: &str, message: &str, replace_code: bool) {
        tracing::error!(code, message, "Fault raised.");
        let fault = Fault::new(code, message);
        self.with(|b| {
            b.listed.retain(|l| {
                l.lasting || l.fault.code != code || (!replace_code && l.fault.message != message)
            });
            b.listed.push(Listed {
                fault: fault.clone(),
                at: Instant::now(),
                lasting: false,
            });
            b.note(&fault, true);
        });
    }

    /// A fault that lasts until [`clear`](Self::clear) with the same code and subject. Setting
    /// it again while it holds changes its message but keeps the time it began, and is not a
    /// new entry in the history.
    pub fn set(&self, code: &str, subject: &str, message: &str) {
        self.with(|b| {
            if let Some(l) = b.listed.iter_mut().find(|l| {
                l.lasting && l.fault.code == code && l.fault.subject.as_deref() == Some(subject)
            }) {
                if l.fault.message != message {
                    l.fault.message = message.to_string();
                    b.generation += 1;
                }
                return;
            }
            tracing::error!(code, subject, message, "Fault raised.");
            let fault = Fault {
                code: code.to_string(),
                message: message.to_string(),
                subject: Some(subject.to_string()),
                since: Some(Utc::now()),
            };
            b.listed.push(Listed {
                fault: fault.clone(),
                at: Instant::now(),
                lasting: true,
            });
            b.note(&fault, true);
        });
    }

    /// Ends a lasting fault; whether it was present. `message` says how it ended (kept in the
    /// history).
    pub fn clear(&self, code: &str, subject: &str, message: &str) -> bool {
        self.with(|b| {
            let before = b.listed.len();
            b.listed.retain(|l| {
                !(l.lasting && l.fault.code == code && l.fault.subject.as_deref() == Some(subject))
            });
            let cleared = b.listed.len() != before;
            if cleared {
                tracing::info!(code, subject, message, "Fault cleared.");
                let mut fault = Fault::new(code, message);
                fault.subject = Some(subject.to_string());
                b.note(&fault, false);
            }
            cleared
        })
    }

    /// Whether a lasting fault with this code and subject is present.
    #[must_use]
    pub fn is_set(&self, code: &str, subject: &str) -> bool {
        self.with(|b| {
            b.listed.iter().any(|l| {
                l.lasting && l.fault.code == code && l.fault.subject.as_deref() == Some(subject)
            })
        })
    }

    /// The faults present now: every lasting one, and those that happened within
    /// [`FAULT_HOLD`], oldest first.
    #[must_use]
    pub fn active(&self) -> Vec<Fault> {
        self.with(|b| {
            b.listed
                .retain(|l| l.lasting || l.at.elapsed() < FAULT_HOLD);
            b.listed.iter().map(|l| l.fault.clone()).collect()
        })
    }

    /// The last `HISTORY` (256) raises and clears, oldest first.
    #[must_use]
    pub fn history(&self) -> Vec<FaultRecord> {
        self.with(|b| b.history.iter().cloned().collect())
    }

    /// Moves on every raise, clear and change of message.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.with(|b| b.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_fault_holds_until_cleared_and_both_are_in_the_history() {
        let board = FaultBoard::default();
        board.set("camera", "cam1", "cam1 does not answer");
        board.set("camera", "cam1", "cam1 does not answer (attempt 2)");
        board.set("camera", "cam2", "cam2 does not answer");
        let active = board.active();
        assert_eq!(active.len(), 2);
        assert_eq!(active[0].message, "cam1 does not answer (attempt 2)");
        assert!(active[0].since.is_some());
        assert!(board.is_set("camera", "cam1"));
        assert!(board.clear("camera", "cam1", "cam1 is back"));
        assert!(!board.clear("camera", "cam1", "again"));
        assert!(!board.is_set("camera", "cam1"));
        assert_eq!(board.active().len(), 1);
        let history = board.history();
        assert_eq!(
            history
                .iter()
                .map(|r| (r.subject.as_deref(), r.raised))
                .collect::<Vec<_>>(),
            [
                (Some("cam1"), true),
                (Some("cam2"), true),
                (Some("cam1"), false)
            ]
        );
    }

    #[test]
    fn a_fault_that_happened_is_renewed_not_repeated_and_latest_replaces_its_code() {
        let board = FaultBoard::default();
        board.raise("recognition", "cam1 failed");
        board.raise("recognition", "cam1 failed");
        board.raise("recognition", "cam2 failed");
        assert_eq!(board.active().len(), 2);
        board.raise_latest("queue-quota", "dropped 1");
        board.raise_latest("queue-quota", "dropped 2");
        let quota: Vec<_> = board
            .active()
            .into_iter()
            .filter(|f| f.code == "queue-quota")
            .collect();
        assert_eq!(quota.len(), 1);
        assert_eq!(quota[0].message, "dropped 2");
    }

    #[test]
    fn every_change_moves_the_generation_and_the_history_is_bounded() {
        let board = FaultBoard::default();
        let g0 = board.generation();
        board.set("disk-full", "queue", "no space");
        let g1 = board.generation();
        board.set("disk-full", "queue", "no space");
        assert_eq!(
            board.generation(),
            g1,
            "the same message again is no change"
        );
        board.clear("disk-full", "queue", "space again");
        assert!(g1 > g0 && board.generation() > g1);
        for i in 0..HISTORY + 10 {
            board.raise("x", &i.to_string());
        }
        assert_eq!(board.history().len(), HISTORY);
    }
}
