//! One ONNX Runtime environment per process, loaded from a shared library.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::VisionError;

static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `dylib` (or from `ORT_DYLIB_PATH` when set) and builds the
/// process-wide environment. Later calls return the first outcome.
pub fn init_runtime(dylib: &Path) -> Result<Environment, VisionError> {
    let path: PathBuf =
        std::env::var_os("ORT_DYLIB_PATH").map_or_else(|| dylib.to_path_buf(), PathBuf::from);
    let outcome = ENV.get_or_init(|| {
        if !path.is_file() {
            return Err("file not found".to_string());
        }
        ort::init_from(&path)
            .map_err(|e| e.to_string())?
            .with_name("anpr")
            .build()
            .map_err(|e| e.to_string())
    });
    outcome
        .clone()
        .map_err(|message| VisionError::Runtime { path, message })
}

/// The environment built by [`init_runtime`], if it succeeded.
pub fn runtime_environment() -> Option<Environment> {
    ENV.get().and_then(|r| r.as_ref().ok().cloned())
}

/// How a session runs: intra-op threads and execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOn {
    pub threads: usize,
    pub provider: crate::ExecutionProvider,
}

impl From<usize> for RunOn {
    /// `threads` intra-op threads on the CPU.
    fn from(threads: usize) -> Self {
        Self {
            threads,
            provider: crate::ExecutionProvider::Cpu,
        }
    }
}

pub(crate) fn session(path: &Path, run: RunOn) -> Result<ort::session::Session, VisionError> {
    crate::check_model_file(path)?;
    let env = runtime_environment().ok_or_else(|| VisionError::Runtime {
        path: PathBuf::from("libonnxruntime.so"),
        message: "ONNX Runtime is not initialised; call init_runtime first".into(),
    })?;
    let load = |message: String| VisionError::ModelLoad {
        path: path.to_path_buf(),
        message,
    };
    let builder = ort::session::Session::builder(&env)
        .map_err(|e| load(e.to_string()))?
        .with_intra_threads(run.threads)
        .map_err(|e| load(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| load(e.to_string()))?;
    #[cfg(feature = "gpu")]
    let builder = if run.provider == crate::ExecutionProvider::Cuda {
        builder
            .with_execution_providers([ort::ep::CUDA::default().build()])
            .map_err(|e| load(e.to_string()))?
    } else {
        builder
    };
    let mut builder = builder;
    builder
        .commit_from_file(path)
        .map_err(|e| load(e.to_string()))
}

/// The first input of `session`: its name and its dimensions (-1 where free); `None` for a
/// model without inputs.
pub(crate) fn first_input(session: &ort::session::Session) -> Option<(String, Vec<i64>)> {
    let input = session.inputs().first()?;
    let dims = input
        .dtype()
        .tensor_shape()
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    Some((input.name().to_string(), dims))
}

/// The dimensions of the first output of `session` (-1 where free); empty for a model without
/// outputs or whose first output is not a tensor.
pub(crate) fn first_output_dims(session: &ort::session::Session) -> Vec<i64> {
    session
        .outputs()
        .first()
        .and_then(|o| {
            o.dtype()
                .tensor_shape()
                .map(|s| s.iter().copied().collect())
        })
        .unwrap_or_default()
}

/// Runs `session` on one f32 input and hands the first output to `read`, mapping every ONNX
/// Runtime error to [`VisionError::Inference`] naming the model.
pub(crate) fn run_first_output<T>(
    session: &mut ort::session::Session,
    input_name: &str,
    input: &ndarray::Array4<f32>,
    path: &Path,
    read: impl FnOnce(ndarray::ArrayViewD<'_, f32>) -> Result<T, String>,
) -> Result<T, VisionError> {
    let infer = |message: String| VisionError::Inference {
        path: path.to_path_buf(),
        message,
    };
    let tensor = ort::value::TensorRef::from_array_view(input).map_err(|e| infer(e.to_string()))?;
    let outputs = session
        .run(ort::inputs![input_name => tensor])
        .map_err(|e| infer(e.to_string()))?;
    let out = outputs[0]
        .try_extract_array::<f32>()
        .map_err(|e| infer(e.to_string()))?;
    read(out).map_err(infer)
}
