//! `[gnss]`: where a mobile unit takes the position of each event, and its clock, from.
//!
//! Only a mobile unit has this section; one that leaves it out reads gpsd on
//! `127.0.0.1:2947` with the defaults below. A stationary unit refuses it: its position is its
//! fixed `coordinates`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Checker, ConfigError};

/// What the receiver is read through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GnssSource {
    /// The gpsd daemon (Debian package `gpsd`), over TCP: the recommended way.
    #[default]
    Gpsd,
    /// The receiver's NMEA 0183 output, read straight from its serial device.
    Nmea,
}

impl GnssSource {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            GnssSource::Gpsd => "gpsd",
            GnssSource::Nmea => "nmea",
        }
    }
}

/// The GNSS receiver of a mobile unit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gnss {
    /// `gpsd` (default) or `nmea`.
    #[serde(default)]
    pub source: GnssSource,
    /// gpsd's address as `host:port` (with `source = "gpsd"`). Default `127.0.0.1:2947`.
    #[serde(default = "default_gpsd")]
    pub gpsd: String,
    /// The receiver's serial device, or any file of NMEA lines (with `source = "nmea"`, where
    /// it is required); relative to the config file. Set the line up beforehand
    /// (`stty -F /dev/ttyUSB0 9600 raw -echo`).
    #[serde(default)]
    pub device: Option<PathBuf>,
    /// Seconds between two fixes beyond which no position is interpolated between them: an
    /// event captured in between carries the last fix before it, marked `gap`. 0.5-60,
    /// default 2 (receivers give a fix a second).
    #[serde(default = "default_max_gap_s")]
    pub max_gap_s: f64,
    /// Seconds after the last fix, or the last comparison of GNSS time with the host clock,
    /// beyond which the unit counts as without a fix (status page, metrics) and the GNSS clock
    /// as unsynchronised. 1-3600, default 10.
    #[serde(default = "default_stale_after_s")]
    pub stale_after_s: f64,
    /// Name GNSS as the clock of capture times taken by the host clock while GNSS time has
    /// been compared with it within `stale_after_s`: events then say `clock.source = "gnss"`,
    /// with the age of that comparison and the offset found. The device does not re-time
    /// frames: the host clock is expected to be disciplined by GNSS (chrony reading gpsd, see
    /// docs/gnss.md). Default true.
    #[serde(default = "default_use_for_clock")]
    pub use_for_clock: bool,
}

impl Default for Gnss {
    fn default() -> Self {
        Self {
            source: GnssSource::default(),
            gpsd: default_gpsd(),
            device: None,
            max_gap_s: default_max_gap_s(),
            stale_after_s: default_stale_after_s(),
            use_for_clock: default_use_for_clock(),
        }
    }
}

fn default_gpsd() -> String {
    "127.0.0.1:2947".to_string()
}
fn default_max_gap_s() -> f64 {
    2.0
}
fn default_stale_after_s() -> f64 {
    10.0
}
fn default_use_for_clock() -> bool {
    true
}

impl Gnss {
    /// [`Self::max_gap_s`] as a duration.
    #[must_use]
    pub fn max_gap(&self) -> Duration {
        Duration::from_secs_f64(self.max_gap_s)
    }

    /// [`Self::stale_after_s`] as a duration.
    #[must_use]
    pub fn stale_after(&self) -> Duration {
        Duration::from_secs_f64(self.stale_after_s)
    }

    pub(crate) fn validate(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        match self.source {
            GnssSource::Gpsd => {
                let ok = self
                    .gpsd
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    return Err(c.invalid(
                        "gnss.gpsd",
                        format!(
                            "{:?} is not a host and port; write gpsd's address as \"127.0.0.1:2947\"",
                            self.gpsd
                        ),
                    ));
                }
            }
            GnssSource::Nmea => {
                if self
                    .device
                    .as_ref()
                    .is_none_or(|d| d.as_os_str().is_empty())
                {
                    return Err(c.invalid(
                        "gnss.device",
                        "source = \"nmea\" reads a serial device: give its path, e.g. device = \"/dev/ttyUSB0\" (or use source = \"gpsd\")",
                    ));
                }
            }
        }
        if !(0.5..=60.0).contains(&self.max_gap_s) {
            return Err(c.invalid(
                "gnss.max_gap_s",
                "must be between 0.5 and 60 seconds (receivers give a fix a second; 2 is usual)",
            ));
        }
        if !(1.0..=3600.0).contains(&self.stale_after_s) {
            return Err(c.invalid(
                "gnss.stale_after_s",
                "must be between 1 and 3600 seconds (10 is usual)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::GnssSource;
    use crate::tests::LAB_BASE;
    use crate::{ConfigError, parse};

    fn path() -> &'static Path {
        Path::new("/etc/anpr/device.toml")
    }

    /// The lab config as a mobile unit (no site coordinates), with `extra` appended.
    fn mobile(extra: &str) -> String {
        let base = LAB_BASE
            .replace("profile = \"stationary\"", "profile = \"mobile\"")
            .replace("coordinates = [43.238, 76.945]\n", "");
        format!("{base}\n{extra}")
    }

    #[test]
    fn a_mobile_unit_reads_gpsd_on_its_default_address_without_a_section() {
        let cfg = parse(&mobile(""), path()).unwrap();
        let g = cfg.gnss.expect("a mobile unit has GNSS");
        assert_eq!(g.source, GnssSource::Gpsd);
        assert_eq!(g.gpsd, "127.0.0.1:2947");
        assert_eq!(
            (g.max_gap_s, g.stale_after_s, g.use_for_clock),
            (2.0, 10.0, true)
        );
        assert!(parse(LAB_BASE, path()).unwrap().gnss.is_none());
    }

    #[test]
    fn an_nmea_source_takes_its_device_relative_to_the_file() {
        let text = mobile(
            "[gnss]\nsource = \"nmea\"\ndevice = \"route.nmea\"\nmax_gap_s = 3\nuse_for_clock = false\n",
        );
        let g = parse(&text, path()).unwrap().gnss.unwrap();
        assert_eq!(g.source, GnssSource::Nmea);
        assert_eq!(g.device.unwrap(), Path::new("/etc/anpr/route.nmea"));
        assert_eq!((g.max_gap_s, g.use_for_clock), (3.0, false));
    }

    #[test]
    fn bad_values_are_refused_naming_the_key_its_line_and_the_fix() {
        for (extra, key, fix) in [
            ("source = \"nmea\"\n", "gnss.device", "/dev/ttyUSB0"),
            ("gpsd = \"localhost\"\n", "gnss.gpsd", "127.0.0.1:2947"),
            ("max_gap_s = 0.1\n", "gnss.max_gap_s", "between 0.5 and 60"),
            (
                "stale_after_s = 0\n",
                "gnss.stale_after_s",
                "between 1 and 3600",
            ),
        ] {
            let text = mobile(&format!("[gnss]\n{extra}"));
            let err = parse(&text, path()).expect_err(extra);
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{msg}");
            assert!(msg.contains("/etc/anpr/device.toml"), "{msg}");
            assert!(msg.contains(key) && msg.contains(fix), "{msg}");
        }
        let msg = parse(&mobile("[gnss]\nbaud = 9600\n"), path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("baud"), "{msg}");
    }

    #[test]
    fn a_stationary_unit_refuses_gnss_and_a_mobile_one_refuses_coordinates() {
        let text = format!("{LAB_BASE}\n[gnss]\n");
        let msg = parse(&text, path()).unwrap_err().to_string();
        assert!(msg.contains("gnss") && msg.contains("coordinates"), "{msg}");
        let text = mobile("").replace(
            "profile = \"mobile\"\n",
            "profile = \"mobile\"\ncoordinates = [43.2, 76.9]\n",
        );
        let err = parse(&text, path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("device.coordinates") && msg.contains("GNSS"),
            "{msg}"
        );
        assert_eq!(err.line(), Some(5), "{msg}");
    }
}
