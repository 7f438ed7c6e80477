//! `[uplink]`: the link to the central side.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Checker, ConfigError};

/// Link to the central side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uplink {
    /// `mqtts://host:port` (TLS with a client certificate; port 8883 when left out), or
    /// `mqtt://host:port` (plain MQTT, refused unless `allow_plaintext = true`).
    pub broker: String,
    /// With `mqtts://`: the CA certificate that issued the broker's certificate (the device
    /// trusts no other), relative to the config file.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// With `mqtts://`: the device's certificate (its CN is the inventory number).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// With `mqtts://`: the device's private key (mode 0600).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Allows a plain `mqtt://` broker: anyone on the path reads the events and can forge
    /// acknowledgements. For a lab only.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Topics are `<topic_prefix>/<inventory>/...`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Seconds to wait for the central acknowledgement before sending an event again (> 0).
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_s: f64,
    /// Most events in flight (sent, not yet acknowledged), at least 1.
    #[serde(default = "default_inflight")]
    pub max_inflight: usize,
    /// Events per second at most for the backlog (events queued before the link came up);
    /// live events are not limited and go first. At least 1.
    #[serde(default = "default_backlog_rate")]
    pub backlog_rate: f64,
}

fn default_prefix() -> String {
    "anpr/v1".to_string()
}
fn default_ack_timeout() -> f64 {
    10.0
}
fn default_backlog_rate() -> f64 {
    2000.0
}
fn default_inflight() -> usize {
    256
}

impl Uplink {
    /// Whether the broker URL asks for TLS (`mqtts://`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.broker.starts_with("mqtts://")
    }

    /// Host and port of the broker URL (port 8883 for `mqtts://`, 1883 for `mqtt://` when
    /// the URL names none).
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let (rest, default) = match self.broker.strip_prefix("mqtts://") {
            Some(rest) => (rest, "8883"),
            None => (self.broker.trim_start_matches("mqtt://"), "1883"),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, default));
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("bad port in broker URL {}", self.broker))?;
        Ok((host.to_string(), port))
    }

    /// The TLS files (CA, certificate, key), resolved against the config file's directory;
    /// `None` for a plain broker. Validation has checked that all three are given with
    /// `mqtts://`.
    #[must_use]
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf, PathBuf)> {
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) if self.is_tls() => {
                Some((ca.clone(), cert.clone(), key.clone()))
            }
            _ => None,
        }
    }

    pub(crate) fn validate(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        if self.is_tls() {
            for (key, value) in [
                ("uplink.tls_ca", &self.tls_ca),
                ("uplink.tls_cert", &self.tls_cert),
                ("uplink.tls_key", &self.tls_key),
            ] {
                if value.is_none() {
                    return Err(c.invalid(
                        key,
                        "is required with an mqtts:// broker: give the files `anpr pki device` wrote for this device (tls_ca = \"ca.crt\", tls_cert = \"<inventory>.tls.crt\", tls_key = \"<inventory>.tls.key\")",
                    ));
                }
            }
        } else if self.broker.starts_with("mqtt://") {
            if !self.allow_plaintext {
                return Err(c.invalid(
                    "uplink.broker",
                    "a plain mqtt:// broker lets anyone on the path read the events and forge acknowledgements; use mqtts://host:8883 with tls_ca, tls_cert and tls_key, or set `allow_plaintext = true` for a lab",
                ));
            }
            if let Some(key) = [
                ("uplink.tls_ca", &self.tls_ca),
                ("uplink.tls_cert", &self.tls_cert),
                ("uplink.tls_key", &self.tls_key),
            ]
            .into_iter()
            .find_map(|(k, v)| v.is_some().then_some(k))
            {
                return Err(c.invalid(
                    key,
                    "is only used with an mqtts:// broker; the broker is mqtt:// (plain): write mqtts:// or remove the key",
                ));
            }
        } else {
            return Err(c.invalid(
                "uplink.broker",
                "must be an mqtts:// URL such as mqtts://central.example.org:8883 (or mqtt:// with allow_plaintext = true, for a lab)",
            ));
        }
        if self.host_port().is_err() {
            return Err(c.invalid(
                "uplink.broker",
                "has a port that is not a number from 1 to 65535",
            ));
        }
        if self.ack_timeout_s.is_nan() || self.ack_timeout_s <= 0.0 {
            return Err(c.invalid("uplink.ack_timeout_s", "must be positive"));
        }
        if self.backlog_rate.is_nan() || self.backlog_rate < 1.0 {
            return Err(c.invalid("uplink.backlog_rate", "must be at least 1 event per second"));
        }
        if self.max_inflight == 0 {
            return Err(c.invalid("uplink.max_inflight", "must be at least 1"));
        }
        Ok(())
    }
}
