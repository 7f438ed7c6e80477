//! The recognizer a configuration asks for, loaded only from files that match their pinned
//! sha256 (see `anpr_vision::integrity`).

use std::path::PathBuf;
use std::time::Instant;

use anpr_config::Config;
use anpr_types::{ModelHash, VehicleClass};
use anpr_vision::integrity::{PinnedFile, verify};
use anpr_vision::{GrammarMode, Recognizer, RecognizerConfig, init_runtime};
use anyhow::Result;

/// Model settings of a config as the recognizer wants them.
#[must_use]
pub fn recognizer_config(cfg: &Config) -> RecognizerConfig {
    let m = &cfg.models;
    RecognizerConfig {
        plate_detector: m.path(m.plate_detector_file()),
        plate_reader: m.path(&m.plate_reader),
        vehicle_detector: Some(m.path(m.vehicle_detector_file())),
        vehicle_types: Some(m.path(&m.vehicle_types)),
        vehicle_type_confidence: m.vehicle_type_confidence,
        intra_threads: m.intra_threads,
        plate_confidence: m.plate_confidence,
        plate_candidate_confidence: m.plate_candidate_confidence,
        vehicle_confidence: m.vehicle_confidence,
        vehicle_class_confidence: m.vehicle_class_confidence,
        heavy_vehicle_class_confidence: m.heavy_vehicle_class_confidence,
        grammar: match m.grammar {
            anpr_config::Grammar::Generic => GrammarMode::Generic,
            anpr_config::Grammar::Kz => GrammarMode::Kz,
        },
        round_glyph: match m.round_glyph {
            anpr_config::RoundGlyph::ByPlate => anpr_vision::RoundGlyph::ByPlate,
            anpr_config::RoundGlyph::AsRead => anpr_vision::RoundGlyph::AsRead,
        },
        concurrent: m.concurrent,
        second_look: match m.second_look {
            anpr_config::SecondLook::Off => anpr_vision::SecondLook::Off,
            anpr_config::SecondLook::Missing => anpr_vision::SecondLook::Missing,
            anpr_config::SecondLook::Small => anpr_vision::SecondLook::Small,
        },
        execution_provider: match m.execution_provider {
            anpr_config::ExecutionProvider::Cpu => anpr_vision::ExecutionProvider::Cpu,
            anpr_config::ExecutionProvider::Cuda => anpr_vision::ExecutionProvider::Cuda,
        },
    }
}

/// The ONNX Runtime library that will be loaded: `ORT_DYLIB_PATH` when set, else the one of
/// the config.
fn runtime_library(cfg: &Config) -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map_or_else(|| cfg.models.path(&cfg.models.onnxruntime), PathBuf::from)
}

/// Hashes every file recognition loads (the plate models, the vehicle detector and its type
/// classifier only when their files exist, the INT8 vehicle detector always when chosen, and
/// the ONNX Runtime library) and checks each against its pin:
/// `[models.sha256]` of the config, else `SHA256SUMS` of the models directory. Their hashes
/// when all match; else an error naming the file, both hashes and the fix.
pub fn verify_models(cfg: &Config) -> Result<Vec<ModelHash>> {
    let m = &cfg.models;
    let pin = |name: &str| {
        m.sha256
            .entries()
            .into_iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, p)| p.map(str::to_string))
    };
    let mut files = vec![
        ("plate_detector", m.path(m.plate_detector_file())),
        ("plate_reader", m.path(&m.plate_reader)),
    ];
    let vehicles = m.path(m.vehicle_detector_file());
    // The float detector is optional (without it vehicles are `unknown`); the INT8 one is asked
    // for by name, so a missing file is an error that names `models/fetch.sh`.
    if vehicles.exists() || m.vehicle_detector_variant == anpr_config::ModelVariant::Int8 {
        files.push(("vehicle_detector", vehicles));
        let types = m.path(&m.vehicle_types);
        if types.exists() {
            files.push(("vehicle_types", types));
        }
    }
    files.push(("onnxruntime", runtime_library(cfg)));
    let files: Vec<PinnedFile> = files
        .into_iter()
        .map(|(name, path)| PinnedFile {
            name: name.to_string(),
            path,
            pin: pin(name),
        })
        .collect();
    let started = Instant::now();
    let hashes = verify(&m.dir, &files)?;
    tracing::debug!(
        files = hashes.len(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "Model files match their pinned sha256."
    );
    Ok(hashes)
}

/// Checks the model files and the library against their pins ([`verify_models`]), then loads
/// ONNX Runtime and one recognizer; errors name the file and the fix.
pub fn load_recognizer(cfg: &Config) -> Result<Recognizer> {
    verify_models(cfg)?;
    open_recognizer(cfg)
}

/// Loads ONNX Runtime and one recognizer from files already checked with [`verify_models`].
pub fn open_recognizer(cfg: &Config) -> Result<Recognizer> {
    init_runtime(&cfg.models.path(&cfg.models.onnxruntime))?;
    Ok(Recognizer::new(recognizer_config(cfg))?)
}

/// Checks every `vehicle-type-ban` rule against the types the vehicle models in use report
/// (`reported`: the detector's and, when installed, the type classifier's; empty without a
/// vehicle detector). A rule naming none of them could never
/// raise a violation, so it is an error that names the rule, the types reported and the fix;
/// the types a rule names that are never reported (`van`, `tractor-trailer`, `special` with the
/// COCO detector alone, without the type classifier) are returned per rule, for the log.
pub fn check_type_bans(
    rules: &[anpr_config::Rule],
    reported: &[VehicleClass],
) -> Result<Vec<(String, Vec<VehicleClass>)>> {
    let mut unreported = Vec::new();
    for rule in rules
        .iter()
        .filter(|r| r.kind == anpr_config::RuleKind::VehicleTypeBan)
    {
        let never: Vec<VehicleClass> = rule
            .classes
            .iter()
            .copied()
            .filter(|c| !reported.contains(c))
            .collect();
        if never.len() == rule.classes.len() {
            let names =
                |cs: &[VehicleClass]| cs.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
            anyhow::bail!(
                "rule `{}` bans {} only, which the vehicle models in use never report ({}): it could never raise a violation. Install the type classifier (`models/fetch.sh` makes `models.vehicle_types`), which names vans, tractor-trailers and special vehicles, or add a type the detector reports to `classes` (without the classifier a tractor-trailer is reported as `truck`, a van as `car`, `truck` or `bus`), or remove the rule",
                rule.name,
                names(&rule.classes),
                if reported.is_empty() {
                    "no vehicle detector is installed, so every vehicle is `unknown`; run models/fetch.sh".to_string()
                } else {
                    format!("it reports {}", names(reported))
                }
            );
        }
        if !never.is_empty() {
            unreported.push((rule.name.clone(), never));
        }
    }
    Ok(unreported)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<anpr_config::Rule> {
        #[derive(serde::Deserialize)]
        struct Rules {
            rule: Vec<anpr_config::Rule>,
        }
        toml::from_str::<Rules>(text).unwrap().rule
    }

    const COCO: &[VehicleClass] = &[
        VehicleClass::Car,
        VehicleClass::Motorcycle,
        VehicleClass::Bus,
        VehicleClass::Truck,
    ];

    #[test]
    fn a_type_ban_naming_no_reported_type_is_an_error_naming_the_rule_and_the_fix() {
        let r = rules(
            "[[rule]]\nname = \"vans\"\nkind = \"vehicle-type-ban\"\nclasses = [\"van\", \"special\"]\n",
        );
        let e = check_type_bans(&r, COCO).unwrap_err().to_string();
        assert!(
            e.contains("rule `vans`") && e.contains("van, special"),
            "{e}"
        );
        assert!(e.contains("car, motorcycle, bus, truck"), "{e}");
        let e = check_type_bans(&r, &[]).unwrap_err().to_string();
        assert!(e.contains("models/fetch.sh"), "{e}");
    }

    #[test]
    fn a_type_ban_naming_a_reported_type_passes_and_lists_the_rest() {
        let r = rules(
            "[[rule]]\nname = \"heavy\"\nkind = \"vehicle-type-ban\"\nclasses = [\"truck\", \"tractor-trailer\"]\n\n[[rule]]\nname = \"buses\"\nkind = \"vehicle-type-ban\"\nclasses = [\"bus\"]\n\n[[rule]]\nname = \"no-plate\"\nkind = \"plate-missing\"\n",
        );
        assert_eq!(
            check_type_bans(&r, COCO).unwrap(),
            vec![("heavy".to_string(), vec![VehicleClass::TractorTrailer])]
        );
        // Without a vehicle detector only the type bans fail; other rules do not care.
        assert!(check_type_bans(&r[2..], &[]).unwrap().is_empty());
    }
}
