//! The recognizer a configuration asks for, loaded only from files that match their pinned
//! sha256 (see `anpr_vision::integrity`).

use std::path::PathBuf;
use std::time::Instant;

use anpr_config::Config;
use anpr_types::ModelHash;
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
        vehicle_detector: Some(m.path(&m.vehicle_detector)),
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

/// Hashes every file recognition loads (the three models, the vehicle detector only when its
/// file exists, and the ONNX Runtime library) and checks each against its pin:
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
    let vehicles = m.path(&m.vehicle_detector);
    if vehicles.exists() {
        files.push(("vehicle_detector", vehicles));
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
