//! The device configuration as `anpr_config::load` reads it after the file: TOML text parsed
//! and validated by `anpr_config::parse`.
//!
//! Invariants: no panic; text either yields a validated config (at least one camera, unique
//! ids, every rule naming cameras and lists that exist) or an error whose message names the
//! file. Bytes that are not UTF-8 are refused by the file read before this, so they are not
//! parsed here.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/anpr/device.toml");
    match anpr_config::parse(text, path) {
        Ok(cfg) => {
            assert!(!cfg.cameras.is_empty(), "a config without cameras loaded");
            for (i, cam) in cfg.cameras.iter().enumerate() {
                assert!(!cam.id.is_empty());
                assert!(
                    cfg.cameras[..i].iter().all(|o| o.id != cam.id),
                    "duplicate camera id {}",
                    cam.id
                );
                assert!(cfg.camera(&cam.id).is_some());
            }
            for rule in &cfg.rules {
                let _ = format!("{rule:?}");
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("device.toml"),
                "the error does not name the file: {message}"
            );
        }
    }
});
