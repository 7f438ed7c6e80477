//! `[device]`: identity of the unit, where it stands, and its local time zone.

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::error::{Checker, ConfigError};

/// Deployment profile of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Stationary,
    Mobile,
}

impl Profile {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Stationary => "stationary",
            Profile::Mobile => "mobile",
        }
    }
}

/// Identity of the device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Inventory number (rule 26), carried in every record and topic. Letters, digits, '-'
    /// and '_'.
    pub inventory: String,
    /// `stationary` (fixed site, needs `coordinates`) or `mobile` (position from `[gnss]`, no
    /// `coordinates`).
    pub profile: Profile,
    /// Site identifier (stationary units).
    #[serde(default)]
    pub site: String,
    /// Fixed coordinates of a stationary site, `[lat, lon]` in degrees; refused on a mobile
    /// unit.
    #[serde(default)]
    pub coordinates: Option<[f64; 2]>,
    /// IANA time zone of the site, e.g. `Asia/Almaty`. Capture times stay in UTC; this zone
    /// only decides the local hours and weekdays of rule time windows, and the local day that a
    /// date in a plate list means. Default `UTC`; a rule with `windows` or `days` needs it
    /// written out, so that a forgotten key cannot shift a ban by hours.
    #[serde(
        default = "default_time_zone",
        deserialize_with = "deserialize_time_zone"
    )]
    pub time_zone: Tz,
    /// Write the plate text of each passage and violation into the log at `info` level.
    /// Default false: the log line names the camera, sequence number, vehicle type and read
    /// status, not the plate, so that logs (often kept longer and shared wider than the queue)
    /// hold no plate numbers. The events themselves always carry the plate.
    #[serde(default)]
    pub log_plates: bool,
}

fn default_time_zone() -> Tz {
    Tz::UTC
}

fn deserialize_time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse::<Tz>().map_err(|_| {
        D::Error::custom(format!(
            "unknown time zone `{name}`; give an IANA time zone name such as \"Asia/Almaty\" \
             (all of Kazakhstan) or \"UTC\""
        ))
    })
}

impl Device {
    pub(crate) fn validate(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        let inv = &self.inventory;
        if inv.is_empty()
            || !inv
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(c.invalid(
                "device.inventory",
                "must be a non-empty inventory number of letters, digits, '-' or '_' (it becomes part of MQTT topics)",
            ));
        }
        if self.profile == Profile::Stationary && self.coordinates.is_none() {
            return Err(c.invalid(
                "device.coordinates",
                "a stationary unit needs its site coordinates as [lat, lon]",
            ));
        }
        if self.profile == Profile::Mobile && self.coordinates.is_some() {
            return Err(c.invalid(
                "device.coordinates",
                "a mobile unit takes each event's position from GNSS (the [gnss] section); remove `coordinates` (or set profile = \"stationary\")",
            ));
        }
        if let Some([lat, lon]) = self.coordinates
            && (!(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon))
        {
            return Err(c.invalid("device.coordinates", "must be [lat, lon] in degrees"));
        }
        Ok(())
    }
}
