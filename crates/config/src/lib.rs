//! Configuration of one device, read from a TOML file.
//!
//! Contract: [`load`] either returns a fully validated [`Config`] or an error that names the
//! file, the key, the line it is on and how to fix it. Unknown keys are errors (a misspelt key
//! must never be silently ignored on a roadside unit). Every key has a default where one makes
//! sense, and bounds; cross-checks run at load time: a rule names cameras, zones and lists that
//! exist, zones are simple polygons inside the frame, time windows parse, the time zone is
//! known. Relative paths in the file are resolved against the file's own directory, so a config
//! can be moved together with its models and data. Loading reads only the config file itself:
//! list files are read by the rules crate when the device starts.
//!
//! One module per section, each with its struct, defaults, bounds, docs and validation:
//! [`device`] (`[device]`), [`camera`] (`[[camera]]`, its line and `[[camera.zone]]`),
//! [`models`], [`storage`], [`uplink`], [`rules`] (`[[list]]`, `lists_dir`, `[[rule]]`),
//! [`status`] (`[status]`: the status page and metrics), [`security`] (`[security]`: the
//! device's signing key and the central receiver's public key), [`gnss`] (`[gnss]`: a mobile
//! unit's GNSS receiver).
//! `config/example.toml` shows every key with its default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod camera;
pub mod device;
mod error;
mod geometry;
pub mod gnss;
pub mod models;
pub mod rules;
pub mod security;
pub mod status;
pub mod storage;
pub mod uplink;

pub use camera::{Camera, Zone};
pub use device::{Device, Profile};
pub use error::ConfigError;
pub use geometry::Point;
pub use gnss::{Gnss, GnssSource};
pub use models::{
    ExecutionProvider, Grammar, ModelPins, ModelVariant, Models, RoundGlyph, SecondLook,
};
pub use rules::{DEFAULT_PRIORITY, ListConfig, Rule, RuleKind, TimeWindow};
pub use security::Security;
pub use status::Status;
pub use storage::{EvidenceKind, Storage};
pub use uplink::Uplink;

/// Re-exported so that users of [`Device::time_zone`] need no direct dependency.
pub use chrono_tz::Tz;

/// The whole device configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub device: Device,
    #[serde(rename = "camera")]
    pub cameras: Vec<Camera>,
    pub models: Models,
    pub storage: Storage,
    pub uplink: Uplink,
    /// Plate lists, as `[[list]]` sections.
    #[serde(default, rename = "list")]
    pub lists: Vec<ListConfig>,
    /// Directory where lists received from the central side are kept, so that a restart keeps
    /// the newest version; relative to the config file. Default: `lists` beside the queue.
    #[serde(default)]
    pub lists_dir: PathBuf,
    /// Rules, as `[[rule]]` sections.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// The status page and metrics served by the device.
    #[serde(default)]
    pub status: Status,
    /// The device's signing key and the central receiver's public key.
    #[serde(default)]
    pub security: Security,
    /// A mobile unit's GNSS receiver: always present once loaded for a mobile unit (gpsd on
    /// its default address when the section is left out), never for a stationary one.
    #[serde(default)]
    pub gnss: Option<Gnss>,
}

impl Config {
    /// The camera with the given id.
    #[must_use]
    pub fn camera(&self, id: &str) -> Option<&Camera> {
        self.cameras.iter().find(|c| c.id == id)
    }

    /// The declared list with the given name.
    #[must_use]
    pub fn list(&self, name: &str) -> Option<&ListConfig> {
        self.lists.iter().find(|l| l.name == name)
    }
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text; `path` is used for messages and to resolve
/// relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut cfg: Config = toml::from_str(text).map_err(|e| error::parse_error(&e, text, path))?;
    let checker = error::Checker::new(path, text);
    if checker.given("lists_dir") && cfg.lists_dir.as_os_str().is_empty() {
        return Err(checker.invalid(
            "lists_dir",
            "must name a directory; leave the key out to keep lists beside the queue",
        ));
    }
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    cfg.models.dir = base.join(&cfg.models.dir);
    cfg.storage.queue = base.join(&cfg.storage.queue);
    cfg.lists_dir = if cfg.lists_dir.as_os_str().is_empty() {
        rules::default_lists_dir(&cfg.storage.queue)
    } else {
        base.join(&cfg.lists_dir)
    };
    for file in [
        &mut cfg.uplink.tls_ca,
        &mut cfg.uplink.tls_cert,
        &mut cfg.uplink.tls_key,
    ]
    .into_iter()
    .flatten()
    {
        *file = base.join(&*file);
    }
    for key in [
        &mut cfg.security.device_key,
        &mut cfg.security.central_public_key,
    ] {
        // An empty path stays empty, for the check to name it.
        if !key.as_os_str().is_empty() {
            *key = base.join(&*key);
        }
    }
    if let Some(device) = cfg.gnss.as_mut().and_then(|g| g.device.as_mut())
        && !device.as_os_str().is_empty()
    {
        *device = base.join(&*device);
    }
    for list in &mut cfg.lists {
        if let Some(file) = &mut list.file {
            *file = base.join(&*file);
        }
    }
    for cam in &mut cfg.cameras {
        if !cam.uri.contains("://") {
            cam.uri = base.join(&cam.uri).display().to_string();
        }
    }
    validate(&cfg, &checker)?;
    if cfg.device.profile == Profile::Mobile && cfg.gnss.is_none() {
        cfg.gnss = Some(Gnss::default());
    }
    Ok(cfg)
}

fn validate(cfg: &Config, c: &error::Checker<'_>) -> Result<(), ConfigError> {
    cfg.device.validate(c)?;
    match (&cfg.gnss, cfg.device.profile) {
        (Some(_), Profile::Stationary) => {
            return Err(c.invalid(
                "gnss",
                "a stationary unit's position is its fixed `coordinates` in [device]; remove the [gnss] section (or set profile = \"mobile\")",
            ));
        }
        (Some(g), Profile::Mobile) => g.validate(c)?,
        (None, _) => {}
    }
    if cfg.cameras.is_empty() {
        return Err(c.invalid(
            "camera",
            "at least one [[camera]] section with `id` and `uri` is required",
        ));
    }
    for (i, cam) in cfg.cameras.iter().enumerate() {
        if cam.id.is_empty() || cfg.cameras[..i].iter().any(|o| o.id == cam.id) {
            return Err(c.invalid(
                &format!("camera[{i}].id"),
                "every camera needs a unique, non-empty id",
            ));
        }
        cam.validate(i, c)?;
    }
    cfg.models.validate(c)?;
    cfg.storage.validate(c)?;
    cfg.uplink.validate(c)?;
    cfg.uplink.validate_topics(&cfg.device.inventory, c)?;
    cfg.status.validate(c)?;
    cfg.security.validate(c)?;
    rules::validate_lists(&cfg.lists, c)?;
    rules::validate_rules(&cfg.rules, &cfg.cameras, &cfg.lists, c)?;
    Ok(())
}

#[cfg(test)]
mod tests;
