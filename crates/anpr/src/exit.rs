//! How the process ends: the one place that decides the exit code.
//!
//! - 0: the command did what was asked.
//! - 1: the command ran but failed: a camera fault, an image that could not be processed, the
//!   demo's plates not all delivered, an error while running (the queue or the uplink failing
//!   mid-run).
//! - 2: the command could not start: the configuration is invalid, the models or ONNX Runtime
//!   are missing, GStreamer cannot start, a command-line value or the broker URL is wrong.
//!
//! An error is a setup error (2) when something in its chain of causes is one of the errors
//! listed in `is_setup`; any other error is a failure (1). Command-line errors found by clap
//! itself exit with 2 too.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

use anpr_config::ConfigError;
use anpr_ingest::IngestError;
use anpr_netsim::NetsimError;
use anpr_pipeline::StartError;
use anpr_vision::VisionError;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// The command did what was asked: 0.
    Success,
    /// The command ran but failed: 1.
    Failure,
    /// The command could not start because of its configuration or setup: 2.
    Error,
}

impl ExitStatus {
    /// [`Success`](Self::Success) when `ok`, [`Failure`](Self::Failure) otherwise.
    pub(crate) fn success_if(ok: bool) -> Self {
        if ok { Self::Success } else { Self::Failure }
    }

    /// How a command that returned `err` ended.
    pub(crate) fn of_error(err: &anyhow::Error) -> Self {
        if err.chain().any(is_setup) {
            Self::Error
        } else {
            Self::Failure
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
        }
    }
}

/// A command-line value that clap accepted but the command cannot use (a number out of range,
/// a broker that is not an `mqtt://` URL).
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Usage {}

/// Whether `e` says that the command could not start because of its configuration or setup:
/// - an invalid configuration file ([`ConfigError`]);
/// - ONNX Runtime or a model missing, corrupt or of the wrong shape, or the GPU asked for
///   without GPU support ([`VisionError`], except the errors of one inference or one frame);
/// - GStreamer that cannot be initialised ([`IngestError::Init`]);
/// - the device or the demo that could not start ([`StartError`]: models, GStreamer, queue,
///   broker URL, the demo's clip, broker or simulator);
/// - a bad signal-loss script or simulator address ([`NetsimError`]);
/// - a certificate, key or PKI directory that is missing, wrong or exposed, or an identity
///   that exists already ([`anpr_pki::PkiError`]);
/// - a signing or public key that is missing, malformed or readable by others
///   ([`anpr_trust::TrustError`]);
/// - a bad command-line value ([`Usage`]).
fn is_setup(e: &(dyn Error + 'static)) -> bool {
    if let Some(v) = e.downcast_ref::<VisionError>() {
        return !matches!(
            v,
            VisionError::Inference { .. } | VisionError::BadFrame { .. }
        );
    }
    if let Some(i) = e.downcast_ref::<IngestError>() {
        return matches!(i, IngestError::Init(_));
    }
    e.is::<ConfigError>()
        || e.is::<StartError>()
        || e.is::<NetsimError>()
        || e.is::<Usage>()
        || e.is::<anpr_pki::PkiError>()
        || e.is::<anpr_trust::TrustError>()
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    fn status_of(e: impl Error + Send + Sync + 'static) -> ExitStatus {
        ExitStatus::of_error(&anyhow::Error::new(e))
    }

    #[test]
    fn a_missing_model_is_a_setup_error_and_a_failed_inference_is_a_failure() {
        let missing = VisionError::ModelMissing {
            path: "models/plates.onnx".into(),
        };
        assert_eq!(status_of(missing), ExitStatus::Error);
        let inference = VisionError::Inference {
            path: "models/plates.onnx".into(),
            message: "shape".into(),
        };
        assert_eq!(status_of(inference), ExitStatus::Failure);
    }

    #[test]
    fn a_setup_error_is_found_under_the_context_added_to_it() {
        let err = Err::<(), _>(IngestError::Init("no plugins".into()))
            .context("cannot open clip.mp4 as a video")
            .context("bench")
            .unwrap_err();
        assert_eq!(ExitStatus::of_error(&err), ExitStatus::Error);
    }

    #[test]
    fn a_camera_that_does_not_open_is_a_failure_not_a_setup_error() {
        let err = IngestError::Open {
            camera: "cam1".into(),
            uri: "missing.mp4".into(),
            message: "file not found".into(),
        };
        assert_eq!(status_of(err), ExitStatus::Failure);
    }

    #[test]
    fn a_device_that_could_not_start_and_a_bad_value_are_setup_errors() {
        let start = StartError::from(anyhow::anyhow!("cannot create the queue directory /var"));
        assert_eq!(status_of(start), ExitStatus::Error);
        assert_eq!(
            status_of(Usage("--width must be 64 to 7680 pixels".into())),
            ExitStatus::Error
        );
    }

    #[test]
    fn an_error_of_any_other_kind_is_a_failure() {
        let err = anyhow::anyhow!("the uplink task failed");
        assert_eq!(ExitStatus::of_error(&err), ExitStatus::Failure);
        assert_eq!(
            status_of(std::io::Error::other("disk full")),
            ExitStatus::Failure
        );
    }

    #[test]
    fn each_status_has_its_code() {
        assert_eq!(ExitCode::from(ExitStatus::Success), ExitCode::SUCCESS);
        assert_eq!(ExitCode::from(ExitStatus::Failure), ExitCode::from(1));
        assert_eq!(ExitCode::from(ExitStatus::Error), ExitCode::from(2));
        assert_eq!(ExitStatus::success_if(true), ExitStatus::Success);
        assert_eq!(ExitStatus::success_if(false), ExitStatus::Failure);
    }
}
