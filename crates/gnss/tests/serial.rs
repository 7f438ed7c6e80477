//! The NMEA reader on a device path that is missing at first and appears later.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anpr_gnss::nmea::checksum;
use anpr_gnss::{Gnss, NmeaSettings, TrackSettings, spawn_nmea_reader};
use tokio::sync::mpsc;

#[test]
fn a_missing_device_raises_the_fault_and_its_first_line_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttyACM0");
    let gnss = Gnss::new(TrackSettings::default(), Duration::from_secs(30));
    let (tx, mut faults) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut settings = NmeaSettings::new(&path);
    settings.backoff_min = Duration::from_millis(20);
    settings.backoff_max = Duration::from_millis(100);
    let reader = spawn_nmea_reader(settings, gnss.clone(), tx, stop.clone()).unwrap();

    let raised = faults.blocking_recv().unwrap();
    assert!(raised.raised && raised.code == "gnss", "{raised:?}");
    assert!(raised.subject.ends_with("ttyACM0") && raised.message.contains("cannot open"));

    let body = "GPRMC,120001.00,A,5107.68000,N,07125.82400,E,29.160,45.00,150625,,,A";
    std::fs::write(&path, format!("${body}*{:02X}\r\n", checksum(body))).unwrap();
    let cleared = faults.blocking_recv().unwrap();
    assert!(!cleared.raised, "{cleared:?}");
    assert!(gnss.counters().disconnects >= 1);

    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(gnss.counters().lines, 1);
}
