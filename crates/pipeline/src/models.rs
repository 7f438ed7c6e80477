//! The recognizer a configuration asks for.

use anpr_config::Config;
use anpr_vision::{GrammarMode, Recognizer, RecognizerConfig, init_runtime};
use anyhow::Result;

/// Model settings of a config as the recognizer wants them.
#[must_use]
pub fn recognizer_config(cfg: &Config) -> RecognizerConfig {
    let m = &cfg.models;
    RecognizerConfig {
        plate_detector: m.path(&m.plate_detector),
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
        execution_provider: match m.execution_provider {
            anpr_config::ExecutionProvider::Cpu => anpr_vision::ExecutionProvider::Cpu,
            anpr_config::ExecutionProvider::Cuda => anpr_vision::ExecutionProvider::Cuda,
        },
    }
}

/// Loads ONNX Runtime and one recognizer; errors name the file and the fix.
pub fn load_recognizer(cfg: &Config) -> Result<Recognizer> {
    init_runtime(&cfg.models.path(&cfg.models.onnxruntime))?;
    Ok(Recognizer::new(recognizer_config(cfg))?)
}
