//! The truth log: one JSON line per frame handed to the encoder, saying when it was stamped.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One served frame: which one it is and the wall time it was stamped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRecord {
    /// Number of the frame: the frame slot of the wall clock when the simulator started
    /// (Unix time divided by the frame interval), plus the frames served since, so that a
    /// restarted simulator does not repeat numbers. `--mark-frames` draws it modulo 2^24.
    pub serial: u64,
    /// How many times the clip had been played through before this frame.
    pub pass: u64,
    /// Index of the frame within the clip, from 0.
    pub frame: u64,
    /// Presentation timestamp given to the frame: the running time of the server's pipeline.
    pub pts_ns: u64,
    /// Wall time (UTC) of that running time: what the RTCP sender reports say of the frame.
    pub wall: DateTime<Utc>,
}

/// Appends records to a file, one line each, written through at once (a simulator killed
/// with SIGKILL leaves every frame it served in the log).
pub(crate) struct TruthLog {
    file: std::fs::File,
}

impl TruthLog {
    pub(crate) fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        })
    }

    pub(crate) fn write(&mut self, r: &TruthRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }
}

/// Reads a truth log; lines that do not parse (a line cut by a kill) are skipped.
pub fn read_truth(path: &Path) -> std::io::Result<Vec<TruthRecord>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_and_read_back_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truth.jsonl");
        let r = TruthRecord {
            serial: 3,
            pass: 1,
            frame: 2,
            pts_ns: 120_000_000,
            wall: Utc::now(),
        };
        let mut log = TruthLog::create(&path).unwrap();
        log.write(&r).unwrap();
        drop(log);
        // A second run appends (a restarted simulator keeps one log).
        let mut log = TruthLog::create(&path).unwrap();
        log.write(&TruthRecord { serial: 4, ..r }).unwrap();
        log.file.write_all(b"{\"serial\": 5, \"pa").unwrap();
        let got = read_truth(&path).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], r);
        assert_eq!(got[1].serial, 4);
    }
}
