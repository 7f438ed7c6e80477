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
    /// Further brokers of the same central side (the other nodes of a NATS cluster), tried in
    /// order after `broker` when the link to the current one cannot be made: URLs of the same
    /// scheme as `broker`, none twice. The TLS files are the same for all (one CA issues
    /// every node's certificate). Empty by default: one broker.
    #[serde(default)]
    pub failover: Vec<String>,
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
    /// Topics are `<topic_prefix>/<inventory>/...`: 1 to 128 bytes, levels separated by `/`
    /// with none empty, no `+`, `#`, space or control character, not starting with `$`. The
    /// broker's ACL names it (`deploy/mosquitto/acl`) and the receiver is given the same
    /// (`anpr central --prefix`).
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Seconds to wait for the central acknowledgement before sending an event again (> 0).
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_s: f64,
    /// Most events in flight (sent, not yet acknowledged), at least 1.
    #[serde(default = "default_inflight")]
    pub max_inflight: usize,
    /// Events per second at most for the backlog (events queued before the link came up);
    /// live events are not limited and go first. At least 1. The reference receiver takes
    /// 10,000 messages per second per device by default (`anpr central --device-rate`), so a
    /// rate above about 8,000 needs that raised too.
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

/// Longest inventory number: the receiver's key file and the MQTT user name are made of it
/// (`anpr_trust::valid_inventory` takes 64 at most).
const MAX_INVENTORY_LEN: usize = 64;

impl Uplink {
    /// Checks the topic levels the device publishes under: the prefix
    /// ([`anpr_types::Topics::prefix_problem`], the rule the receiver applies too) and the
    /// inventory number's length and reserved names; `device.inventory`'s characters are
    /// checked with the `[device]` section.
    pub(crate) fn validate_topics(
        &self,
        inventory: &str,
        c: &Checker<'_>,
    ) -> Result<(), ConfigError> {
        if let Some(problem) = anpr_types::Topics::prefix_problem(&self.topic_prefix) {
            return Err(c.invalid(
                "uplink.topic_prefix",
                format!(
                    "{problem}; write MQTT topic levels such as \"anpr/v1\" (the broker's ACL and `anpr central --prefix` name the same)"
                ),
            ));
        }
        if inventory.len() > MAX_INVENTORY_LEN {
            return Err(c.invalid(
                "device.inventory",
                format!(
                    "is {} characters long; an inventory number has at most {MAX_INVENTORY_LEN} (it becomes the MQTT user name, a topic level and a key file name)",
                    inventory.len()
                ),
            ));
        }
        if inventory.to_ascii_lowercase().starts_with("anpr-") {
            return Err(c.invalid(
                "device.inventory",
                "must not start with `anpr-`: those names are kept for the central side's users in the broker's ACL (anpr-central)",
            ));
        }
        Ok(())
    }

    /// Whether the broker URL asks for TLS (`mqtts://`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.broker.starts_with("mqtts://")
    }

    /// Host and port of the broker URL (port 8883 for `mqtts://`, 1883 for `mqtt://` when
    /// the URL names none).
    pub fn host_port(&self) -> Result<(String, u16), String> {
        host_port(&self.broker)
    }

    /// Host and port of each `failover` URL, in order (see [`Uplink::host_port`]).
    pub fn failover_host_ports(&self) -> Result<Vec<(String, u16)>, String> {
        self.failover.iter().map(|url| host_port(url)).collect()
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
        let broker = self
            .host_port()
            .map_err(|problem| c.invalid("uplink.broker", problem))?;
        self.validate_failover(broker, c)?;
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

    /// Checks `failover` against the broker (`broker`, its host and port): the same scheme,
    /// a host and port in each URL, no broker twice.
    fn validate_failover(&self, broker: (String, u16), c: &Checker<'_>) -> Result<(), ConfigError> {
        let scheme = if self.is_tls() { "mqtts://" } else { "mqtt://" };
        let mut seen = vec![broker];
        for (i, url) in self.failover.iter().enumerate() {
            let key = format!("uplink.failover[{i}]");
            if !url.starts_with(scheme) {
                return Err(c.invalid(
                    &key,
                    format!(
                        "is {url:?}, but `broker` is {scheme}: every broker of the list uses the same scheme (and the same TLS files); write {scheme}host:port"
                    ),
                ));
            }
            let at = host_port(url).map_err(|problem| c.invalid(&key, problem))?;
            if seen.contains(&at) {
                return Err(c.invalid(
                    &key,
                    format!(
                        "names {}:{} again (it is `broker` or an earlier entry of `failover`); give each node of the central side once",
                        at.0, at.1
                    ),
                ));
            }
            seen.push(at);
        }
        Ok(())
    }
}

/// Host and port of a broker URL (`mqtts://host[:port]`, port 8883 when left out, or
/// `mqtt://host[:port]`, port 1883); the problem in words when it has no host or a bad port.
fn host_port(url: &str) -> Result<(String, u16), String> {
    let (rest, default) = match url.strip_prefix("mqtts://") {
        Some(rest) => (rest, "8883"),
        None => (url.trim_start_matches("mqtt://"), "1883"),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, default));
    if host.is_empty() {
        return Err(format!(
            "{url:?} names no host; write mqtts://host:port, such as mqtts://central.example.org:8883"
        ));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("{url:?} has a port that is not a number from 1 to 65535"))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::tests::LAB_BASE;

    fn refusal(text: &str) -> String {
        crate::parse(text, Path::new("/etc/anpr/device.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_topic_prefix_that_is_no_topic_level_is_refused_with_the_file_key_and_fix() {
        let ok = LAB_BASE.replace("[uplink]", "[uplink]\ntopic_prefix = \"site7/anpr/v1\"");
        assert_eq!(
            crate::parse(&ok, Path::new("d.toml"))
                .unwrap()
                .uplink
                .topic_prefix,
            "site7/anpr/v1"
        );
        for (prefix, why) in [
            ("", "is empty"),
            ("anpr/+", "wildcards"),
            ("anpr/#", "wildcards"),
            ("$SYS/anpr", "starts with `$`"),
            ("/anpr", "empty level"),
            ("anpr//v1", "empty level"),
            ("anpr/v1/", "empty level"),
            ("anpr v1", "space or a control character"),
            ("anpr\\u001b[31m", "control character"),
        ] {
            let text = LAB_BASE.replace(
                "[uplink]",
                &format!("[uplink]\ntopic_prefix = \"{prefix}\""),
            );
            let msg = refusal(&text);
            assert!(
                msg.contains("/etc/anpr/device.toml")
                    && msg.contains("uplink.topic_prefix")
                    && msg.contains(why)
                    && msg.contains("such as \"anpr/v1\""),
                "{prefix:?}: {msg}"
            );
        }
        let long = format!("a/{}", "b".repeat(130));
        let text = LAB_BASE.replace("[uplink]", &format!("[uplink]\ntopic_prefix = \"{long}\""));
        assert!(refusal(&text).contains("longer than 128 bytes"));
    }

    #[test]
    fn failover_brokers_are_read_in_order_and_default_to_none() {
        let cfg = crate::parse(LAB_BASE, Path::new("d.toml")).unwrap();
        assert!(cfg.uplink.failover.is_empty());
        assert_eq!(cfg.uplink.failover_host_ports().unwrap(), []);
        let text = LAB_BASE.replace(
            "[uplink]",
            "[uplink]\nfailover = [\"mqtt://10.0.0.2:1884\", \"mqtt://node3\"]",
        );
        let cfg = crate::parse(&text, Path::new("d.toml")).unwrap();
        assert_eq!(
            cfg.uplink.failover_host_ports().unwrap(),
            [("10.0.0.2".to_string(), 1884), ("node3".to_string(), 1883)]
        );
    }

    #[test]
    fn a_failover_broker_of_another_scheme_without_host_or_port_or_named_twice_is_refused() {
        for (list, why) in [
            (r#"["mqtts://10.0.0.2:8883"]"#, "`broker` is mqtt://"),
            (r#"["10.0.0.2:1883"]"#, "`broker` is mqtt://"),
            (r#"["mqtt://:1883"]"#, "names no host"),
            (
                r#"["mqtt://10.0.0.2:port"]"#,
                "not a number from 1 to 65535",
            ),
            (r#"["mqtt://10.0.0.2:0"]"#, "not a number from 1 to 65535"),
            (r#"["mqtt://127.0.0.1:1883"]"#, "names 127.0.0.1:1883 again"),
            (
                r#"["mqtt://10.0.0.2", "mqtt://10.0.0.2:1883"]"#,
                "names 10.0.0.2:1883 again",
            ),
        ] {
            let text = LAB_BASE.replace("[uplink]", &format!("[uplink]\nfailover = {list}"));
            let msg = refusal(&text);
            let key = if list.contains(", ") {
                "uplink.failover[1]"
            } else {
                "uplink.failover[0]"
            };
            assert!(
                msg.contains("/etc/anpr/device.toml") && msg.contains(key) && msg.contains(why),
                "{list}: {msg}"
            );
        }
        let tls = LAB_BASE
            .replace("mqtt://127.0.0.1:1883", "mqtts://10.0.0.1")
            .replace(
                "allow_plaintext = true",
                "tls_ca = \"ca.crt\"\ntls_cert = \"d.crt\"\ntls_key = \"d.key\"\nfailover = [\"mqtt://10.0.0.2:1883\"]",
            );
        let msg = refusal(&tls);
        assert!(
            msg.contains("uplink.failover[0]") && msg.contains("`broker` is mqtts://"),
            "{msg}"
        );
        let msg = refusal(&tls.replace("mqtt://10.0.0.2:1883", "mqtts://10.0.0.1:8883"));
        assert!(msg.contains("names 10.0.0.1:8883 again"), "{msg}");
    }

    #[test]
    fn an_inventory_number_too_long_or_reserved_is_refused() {
        let text = LAB_BASE.replace("KZ-ICD-0001", &"K".repeat(65));
        let msg = refusal(&text);
        assert!(
            msg.contains("device.inventory") && msg.contains("at most 64"),
            "{msg}"
        );
        let text = LAB_BASE.replace("KZ-ICD-0001", &"K".repeat(64));
        assert!(crate::parse(&text, Path::new("d.toml")).is_ok());
        let text = LAB_BASE.replace("KZ-ICD-0001", "anpr-central");
        let msg = refusal(&text);
        assert!(
            msg.contains("device.inventory") && msg.contains("anpr-"),
            "{msg}"
        );
        // The characters MQTT gives meaning to are refused with the [device] section.
        for bad in ["a+b", "a#b", "a/b", "$a", "a b"] {
            let msg = refusal(&LAB_BASE.replace("KZ-ICD-0001", bad));
            assert!(msg.contains("device.inventory"), "{bad}: {msg}");
        }
    }
}
