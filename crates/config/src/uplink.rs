//! `[uplink]`: the link to the central side.

use serde::Deserialize;

use crate::error::{Checker, ConfigError};

/// Link to the central side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uplink {
    /// `mqtt://host:port`.
    pub broker: String,
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
    /// Host and port of the broker URL.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let rest = self.broker.trim_start_matches("mqtt://");
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("bad port in broker URL {}", self.broker))?;
        Ok((host.to_string(), port))
    }

    pub(crate) fn validate(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        if !self.broker.starts_with("mqtt://") {
            return Err(c.invalid(
                "uplink.broker",
                "must be an mqtt:// URL such as mqtt://127.0.0.1:1883",
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
