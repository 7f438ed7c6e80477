//! Shared helpers of the fuzz targets: a receiver database in memory, reopened now and then so
//! that it stays small and every run costs about the same.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use anpr_central::Receiver;

/// A receiver on an in-memory database, and how many records went into it.
pub struct Scratch {
    pub receiver: Receiver,
    stored: usize,
}

/// Records kept before the database is opened afresh.
const KEEP: usize = 64;

/// The process's scratch receiver (libFuzzer runs one input at a time).
pub fn scratch() -> MutexGuard<'static, Scratch> {
    static SCRATCH: OnceLock<Mutex<Scratch>> = OnceLock::new();
    let mut s = SCRATCH
        .get_or_init(|| Mutex::new(Scratch::fresh()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    s.stored += 1;
    if s.stored > KEEP {
        *s = Scratch::fresh();
    }
    s
}

impl Scratch {
    fn fresh() -> Self {
        Self {
            receiver: Receiver::open(Path::new(":memory:"))
                .expect("an in-memory receiver database opens"),
            stored: 0,
        }
    }
}
