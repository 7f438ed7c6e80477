//! The I/O: a gpsd client task (tokio) and an NMEA reader thread (blocking reads of a serial
//! device). Both only move lines into the sans-IO parsers and the [`Gnss`] state.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::gpsd::{self, GpsdSession};
use crate::nmea::{self, NmeaParser};
use crate::{FAULT_CODE, FaultChange, Gnss, Observation};

/// Retry delays: doubling from `min` up to `max`, each drawn at random between half and all of
/// its step, so that units restarted together do not retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    draws: u64,
    hasher: RandomState,
}

impl Backoff {
    #[must_use]
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            step: min,
            draws: 0,
            hasher: RandomState::new(),
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        self.draws += 1;
        let unit = (self.hasher.hash_one(self.draws) >> 11) as f64 / (1u64 << 53) as f64;
        let delay = self.step.mul_f64(0.5 + 0.5 * unit);
        self.step = (self.step * 2).min(self.max);
        delay
    }

    /// A success: the next failure waits the shortest delay again.
    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

/// Raises and clears one source's fault, sending only changes.
struct FaultState {
    subject: String,
    raised: bool,
    tx: mpsc::UnboundedSender<FaultChange>,
}

impl FaultState {
    fn raise(&mut self, message: String) {
        if !self.raised {
            self.raised = true;
            warn!(subject = %self.subject, error = %message, "GNSS source failed.");
            let _ = self.tx.send(FaultChange {
                code: FAULT_CODE,
                subject: self.subject.clone(),
                message,
                raised: true,
            });
        }
    }

    fn clear(&mut self) {
        if self.raised {
            self.raised = false;
            info!(subject = %self.subject, "GNSS source back.");
            let _ = self.tx.send(FaultChange {
                code: FAULT_CODE,
                subject: self.subject.clone(),
                message: String::new(),
                raised: false,
            });
        }
    }
}

/// One line read, or the fact that it was longer than the limit (its bytes are dropped).
enum Line {
    Text(Vec<u8>),
    TooLong,
}

/// Reads up to the next `\n`, keeping at most `max` bytes; None at the end of the stream.
async fn read_line_async<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(None);
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max + 1 {
            long = true;
        } else {
            line.extend_from_slice(&buf[..take]);
        }
        r.consume(take);
        if done {
            return Ok(Some(if long {
                Line::TooLong
            } else {
                Line::Text(line)
            }));
        }
    }
}

/// [`read_line_async`] for blocking readers; `Ok(None)` at the current end of the file.
fn read_line_blocking<R: BufRead>(
    r: &mut R,
    partial: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<Line>> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if partial.len() + take > max + 1 {
            // Mark the line as too long, keeping the buffer small.
            partial.clear();
            partial.resize(max + 2, b'?');
        } else {
            partial.extend_from_slice(&buf[..take]);
        }
        r.consume(take);
        if done {
            let line = std::mem::take(partial);
            return Ok(Some(if line.len() > max + 1 {
                Line::TooLong
            } else {
                Line::Text(line)
            }));
        }
    }
}

/// Where gpsd listens and how to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct GpsdSettings {
    /// `host:port`; gpsd's default is `127.0.0.1:2947`.
    pub addr: String,
    /// First retry delay after a failure.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Longest wait for a connection to open.
    pub connect_timeout: Duration,
}

impl Default for GpsdSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:2947".to_owned(),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Reads fixes, sky views and time marks from gpsd into `gnss` until `stop` turns true (or its
/// sender is dropped). A refused, failed or dropped connection raises a `gnss` fault on
/// `faults` and is retried with [`Backoff`]; gpsd's `VERSION` greeting on a new connection
/// clears it.
pub async fn run_gpsd(
    settings: GpsdSettings,
    gnss: Gnss,
    faults: mpsc::UnboundedSender<FaultChange>,
    mut stop: watch::Receiver<bool>,
) {
    let mut fault = FaultState {
        subject: format!("gpsd {}", settings.addr),
        raised: false,
        tx: faults,
    };
    let mut backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
    loop {
        if *stop.borrow() {
            return;
        }
        let session = gpsd_session(&settings, &gnss, &mut fault, &mut backoff);
        let result = tokio::select! {
            r = session => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        gnss.count_disconnect();
        fault.raise(format!(
            "{result}; check that gpsd runs (systemctl status gpsd) and listens on {}",
            settings.addr
        ));
        let delay = backoff.next_delay();
        debug!(delay_ms = delay.as_millis() as u64, "Retrying gpsd.");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One connection; returns why it ended.
async fn gpsd_session(
    settings: &GpsdSettings,
    gnss: &Gnss,
    fault: &mut FaultState,
    backoff: &mut Backoff,
) -> String {
    let stream =
        match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(&settings.addr))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return format!("cannot connect to gpsd at {}: {e}", settings.addr),
            Err(_) => {
                return format!(
                    "no answer from gpsd at {} within {} s",
                    settings.addr,
                    settings.connect_timeout.as_secs()
                );
            }
        };
    let (read, mut write) = stream.into_split();
    if let Err(e) = write.write_all(gpsd::WATCH.as_bytes()).await {
        return format!("cannot send WATCH to gpsd: {e}");
    }
    let mut reader = tokio::io::BufReader::new(read);
    let mut session = GpsdSession::new();
    loop {
        let line = match read_line_async(&mut reader, gpsd::MAX_LINE).await {
            Ok(Some(Line::Text(line))) => line,
            Ok(Some(Line::TooLong)) => {
                gnss.count_malformed(false);
                continue;
            }
            Ok(None) => return "gpsd closed the connection".to_owned(),
            Err(e) => return format!("reading from gpsd failed: {e}"),
        };
        let received = Utc::now();
        match session.push_line(&String::from_utf8_lossy(&line)) {
            Ok(Some(obs)) => {
                if let Observation::Connected { release } = &obs {
                    info!(addr = %settings.addr, release = %release, "Connected to gpsd.");
                    fault.clear();
                    backoff.reset();
                }
                if let Observation::ReceiverError { message } = &obs {
                    warn!(error = %message, "gpsd reported an error.");
                }
                gnss.observe(&obs, received);
            }
            Ok(None) => gnss.count_line(),
            Err(e) => {
                debug!(error = %e, "Unusable line from gpsd.");
                gnss.count_malformed(false);
            }
        }
    }
}

/// Where a receiver's NMEA output is read from.
#[derive(Debug, Clone, PartialEq)]
pub struct NmeaSettings {
    /// A serial device (`/dev/ttyACM0`, set up beforehand: `stty -F /dev/ttyACM0 9600 raw`) or
    /// any file of NMEA lines.
    pub path: PathBuf,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How often to look for more at the end of a file.
    pub poll: Duration,
}

impl NmeaSettings {
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            poll: Duration::from_millis(50),
        }
    }
}

/// Reads NMEA sentences from `settings.path` into `gnss` on a thread of its own until `stop`
/// is set (checked between lines and while waiting). At the end of the file it waits for more
/// (as `tail -f`); a device that cannot be opened or read raises a `gnss` fault and is opened
/// again with [`Backoff`]; the first line read clears it.
pub fn spawn_nmea_reader(
    settings: NmeaSettings,
    gnss: Gnss,
    faults: mpsc::UnboundedSender<FaultChange>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gnss-nmea".to_owned())
        .spawn(move || {
            let mut fault = FaultState {
                subject: settings.path.display().to_string(),
                raised: false,
                tx: faults,
            };
            let mut backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
            let sleep = |d: Duration| {
                let until = std::time::Instant::now() + d;
                while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                    std::thread::sleep(d.min(Duration::from_millis(20)));
                }
            };
            while !stop.load(Ordering::Relaxed) {
                let why = match std::fs::File::open(&settings.path) {
                    Ok(file) => read_nmea(
                        &settings,
                        &gnss,
                        &mut fault,
                        &mut backoff,
                        file,
                        &stop,
                        &sleep,
                    ),
                    Err(e) => Some(format!("cannot open {}: {e}", settings.path.display())),
                };
                let Some(why) = why else { return };
                gnss.count_disconnect();
                fault.raise(format!(
                    "{why}; check the receiver's cable and the device path"
                ));
                sleep(backoff.next_delay());
            }
        })
}

/// Reads one opened device; None when stopped, else why reading ended.
fn read_nmea(
    settings: &NmeaSettings,
    gnss: &Gnss,
    fault: &mut FaultState,
    backoff: &mut Backoff,
    file: std::fs::File,
    stop: &AtomicBool,
    sleep: &impl Fn(Duration),
) -> Option<String> {
    let mut reader = BufReader::new(file);
    let mut parser = NmeaParser::new();
    let mut partial = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let line = match read_line_blocking(&mut reader, &mut partial, nmea::MAX_SENTENCE) {
            Ok(Some(line)) => line,
            Ok(None) => {
                sleep(settings.poll);
                continue;
            }
            Err(e) => return Some(format!("reading {} failed: {e}", settings.path.display())),
        };
        fault.clear();
        backoff.reset();
        let received = Utc::now();
        let line = match line {
            Line::Text(line) => line,
            Line::TooLong => {
                gnss.count_malformed(false);
                continue;
            }
        };
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        match parser.push_line(&text) {
            Ok(Some(obs)) => gnss.observe(&obs, received),
            Ok(None) => gnss.count_line(),
            Err(e) => {
                debug!(error = %e, "Unusable NMEA sentence.");
                gnss.count_malformed(e.is_checksum());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let steps = [100, 200, 400, 800, 800];
        for step in steps {
            let d = b.next_delay();
            let step = Duration::from_millis(step);
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn blocking_lines_are_bounded() {
        let data = format!("short\n{}\nafter\n", "x".repeat(500));
        let mut r = BufReader::with_capacity(16, data.as_bytes());
        let mut partial = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = read_line_blocking(&mut r, &mut partial, 100).unwrap() {
            out.push(match line {
                Line::Text(t) => String::from_utf8(t).unwrap(),
                Line::TooLong => "<long>".to_owned(),
            });
        }
        assert_eq!(out, vec!["short\n", "<long>", "after\n"]);
    }
}
