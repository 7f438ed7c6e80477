//! `[status]`: the status page and the Prometheus metrics the device serves over HTTP.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::error::{Checker, ConfigError};

/// The device's own HTTP server: a status page at `/` and metrics at `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// Serve the status page and the metrics. Default: true.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Address and port to listen on, `host:port` with a numeric address. Default:
    /// `127.0.0.1:8088`, this machine only (the page has no login); `0.0.0.0:8088` serves every
    /// interface, port 0 takes any free port.
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            listen: default_listen(),
        }
    }
}

fn default_enabled() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:8088".to_string()
}

impl Status {
    /// The address to listen on; always `Ok` for a loaded config (checked at load).
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.trim().parse::<SocketAddr>().map_err(|_| {
            format!(
                "{:?} is not an address and port; write it as 127.0.0.1:8088 (this machine only), \
                 0.0.0.0:8088 (every interface) or [::1]:8088",
                self.listen
            )
        })
    }

    pub(crate) fn validate(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        self.listen_addr()
            .map(|_| ())
            .map_err(|message| c.invalid("status.listen", message))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{ConfigError, parse};

    use crate::tests::LAB_BASE as BASE;

    fn path() -> &'static Path {
        Path::new("/etc/anpr/device.toml")
    }

    #[test]
    fn the_status_page_is_on_by_default_on_loopback_only() {
        let cfg = parse(BASE, path()).unwrap();
        assert!(cfg.status.enabled);
        let addr = cfg.status.listen_addr().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_eq!(addr.port(), 8088);
    }

    #[test]
    fn a_given_address_and_the_switch_are_taken() {
        let text = format!("{BASE}\n[status]\nenabled = false\nlisten = \"0.0.0.0:9100\"\n");
        let cfg = parse(&text, path()).unwrap();
        assert!(!cfg.status.enabled);
        assert_eq!(cfg.status.listen_addr().unwrap().port(), 9100);
    }

    #[test]
    fn a_bad_address_is_refused_naming_the_key_its_line_and_the_fix() {
        for bad in ["localhost:8088", "127.0.0.1", "127.0.0.1:99999", ""] {
            let text = format!("{BASE}\n[status]\nlisten = \"{bad}\"\n");
            let err = parse(&text, path()).expect_err(bad);
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{bad}: {msg}");
            assert!(msg.contains("status.listen"), "{msg}");
            assert!(msg.contains("127.0.0.1:8088"), "the fix is shown: {msg}");
            let line = text.lines().position(|l| l.starts_with("listen")).unwrap() + 1;
            assert_eq!(err.line(), Some(line), "{msg}");
        }
    }

    #[test]
    fn an_unknown_key_in_the_section_is_refused() {
        let text = format!("{BASE}\n[status]\nport = 8088\n");
        let msg = parse(&text, path()).unwrap_err().to_string();
        assert!(msg.contains("port"), "{msg}");
    }
}
