//! Recognition: plate detection, plate reading and vehicle detection with ONNX Runtime.
//!
//! Contract: a [`Recognizer`] owns its ONNX Runtime sessions and is used from one thread at a
//! time (`Session::run` takes `&mut self`); run one recognizer per worker thread. With
//! `concurrent` set, the vehicle detector of a frame runs on a second thread while the plates
//! are found and read (each session still used by one thread at a time), so a frame takes
//! about as long as the slower of the two instead of their sum. Pre- and
//! post-processing (letterbox, normalisation, box decoding, NMS, CTC decoding) are plain Rust
//! functions with no I/O, tested on their own. Model problems (missing file, corrupt file, an
//! input shape the code does not expect) are reported as [`VisionError`] naming the file and
//! the fix, never as a panic. ONNX Runtime is loaded once per process from the shared library
//! given to [`init_runtime`]. Before anything is loaded, [`integrity::verify`] checks each model
//! file and the library against its pinned sha256.
//!
//! One module per model, each with its pre- and post-processing: [`plate_detector`] (which
//! boxes are plates), [`plate_reader`] (crops, views, two-row and slanted plates, CTC decoding)
//! and [`vehicle_detector`] (COCO classes to vehicle types), with [`vehicle_types`] (an
//! ImageNet classifier naming the types COCO has no class for: van, tractor-trailer, special);
//! the two detectors share the YOLO letterbox, box decoding and NMS of [`yolo`]. With
//! `second_look`, once both detectors have run, vehicles with no plate found on them (or only a
//! small one) are looked at again by the plate detector at a higher resolution
//! ([`plate_detector::second_look`]). [`grammar`] reads country, type and region from a plate
//! text.
//!
//! A recognizer keeps nothing from one frame to the next. On video, the caller may pass the
//! plates its tracker has already read alike in earlier frames ([`KnownPlate`],
//! [`Recognizer::process_known`]): a plate found where one is expected is taken from the
//! reader's first view when that view reads the known text surely enough, and read from every
//! view when it reads anything else, so what a frame reports is always what was read in it.

pub mod grammar;
pub mod integrity;
pub mod plate_detector;
pub mod plate_reader;
pub mod resize;
mod runtime;
pub mod vehicle_detector;
pub mod vehicle_types;
pub mod yolo;

pub use grammar::{FormatAutomaton, GrammarMode, PlateInfo, RoundGlyph, interpret};
pub use plate_detector::{KNOWN_OVERLAP, SecondLook};
pub use plate_reader::{
    CtcDecoded, FormatFit, PlateReader, SymbolMap, ctc_format_decode, ctc_greedy_decode,
    looks_like_a_plate, row_gap, skew,
};
pub use runtime::{RunOn, init_runtime, runtime_environment};
pub use vehicle_detector::{coco_vehicle_class, reported_classes, vehicle_class};
pub use vehicle_types::{TypeClassifier, imagenet_vehicle_class, type_from_probs};
pub use yolo::{Detection, Letterbox, YoloDetector, letterbox, letterbox_rect, nms};

use std::path::{Path, PathBuf};
use std::time::Instant;

use anpr_types::{KnownPlate, PlateRead, RgbFrame, VehicleClass, VehicleDetection};

/// Errors of the recognition stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VisionError {
    #[error(
        "ONNX Runtime library {path} could not be loaded: {message}; run `deploy/setup.sh` (or `models/fetch.sh`) to install it, or point ORT_DYLIB_PATH at libonnxruntime.so 1.31"
    )]
    Runtime { path: PathBuf, message: String },
    #[error("model file {path} is missing; run `models/fetch.sh` to fetch and convert the models")]
    ModelMissing { path: PathBuf },
    #[error("{path} cannot be read: {message}")]
    ModelRead { path: PathBuf, message: String },
    #[error(
        "{path} has sha256 {actual}, but {pinned_in} pins {expected}: it is not the file that was fetched (corrupt, replaced, or of another version); run `models/fetch.sh` (or `deploy/setup.sh`) to install the pinned files, or, if this file is the one intended, pin its sha256 there"
    )]
    ModelHashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
        /// Where the pin came from: `SHA256SUMS` of the models directory, or `[models.sha256]`.
        pinned_in: String,
    },
    #[error(
        "{path} (sha256 {actual}) has no pinned sha256: {sums} does not list it and the config gives no `[models.sha256] {name}`; run `models/fetch.sh` (or `deploy/setup.sh`), which writes {sums}, or pin the file in the config after checking it"
    )]
    ModelUnpinned {
        path: PathBuf,
        name: String,
        actual: String,
        sums: PathBuf,
    },
    #[error(
        "model file {path} could not be loaded ({message}); the file is corrupt or not an ONNX model: delete it and run `models/fetch.sh` again"
    )]
    ModelLoad { path: PathBuf, message: String },
    #[error("model {path} does not match what the {role} expects: {message}")]
    ModelShape {
        path: PathBuf,
        role: &'static str,
        message: String,
    },
    #[error("inference with {path} failed: {message}")]
    Inference { path: PathBuf, message: String },
    #[error(
        "the GPU execution provider was asked for, but this build has no GPU support; build with `cargo build --release --features gpu` and point ORT_DYLIB_PATH at the libonnxruntime.so of onnxruntime-gpu 1.31, or set models.execution_provider = \"cpu\""
    )]
    NoGpuSupport,
    #[error("frame of {width}x{height} cannot be processed: {message}")]
    BadFrame {
        width: u32,
        height: u32,
        message: String,
    },
}

/// Where the models live and how to run them.
#[derive(Debug, Clone)]
pub struct RecognizerConfig {
    pub plate_detector: PathBuf,
    pub plate_reader: PathBuf,
    /// A COCO-class YOLO detector; `None` or a missing file means vehicles are not detected
    /// and every event reports the class `unknown`.
    pub vehicle_detector: Option<PathBuf>,
    /// An ImageNet-1k classifier run on each vehicle found ([`vehicle_types`]); `None` or a
    /// missing file means the detector's types alone are reported.
    pub vehicle_types: Option<PathBuf>,
    /// Least share of the classifier's probability for its type to replace the detector's (a
    /// heavy type needs `heavy_vehicle_class_confidence` too).
    pub vehicle_type_confidence: f32,
    pub intra_threads: usize,
    pub plate_confidence: f32,
    /// Detector confidence from which a box is read and kept when its reading
    /// [`looks_like_a_plate`]; at most `plate_confidence`.
    pub plate_candidate_confidence: f32,
    /// Least confidence for a vehicle to be reported at all.
    pub vehicle_confidence: f32,
    /// Least confidence for a vehicle's type to be reported; below it the type is `unknown`.
    pub vehicle_class_confidence: f32,
    /// The same for the heavy types (bus, truck, tractor-trailer).
    pub heavy_vehicle_class_confidence: f32,
    /// How plate texts are checked against known formats.
    pub grammar: GrammarMode,
    /// How generic mode reports the round glyph `O`/`0`.
    pub round_glyph: RoundGlyph,
    /// Run the vehicle detector on its own thread, beside plate detection and reading.
    pub concurrent: bool,
    /// Look again, at a higher resolution, for the plates of vehicles the plate detector found
    /// no plate on (or only a small one not read surely) ([`plate_detector::second_look`]);
    /// only on frames where the vehicle detector runs.
    pub second_look: SecondLook,
    /// Where ONNX Runtime runs the models.
    pub execution_provider: ExecutionProvider,
}

/// Where ONNX Runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// An NVIDIA GPU through CUDA; needs a build with the `gpu` feature and the GPU build of
    /// ONNX Runtime. Without a usable GPU, ONNX Runtime runs on the CPU and logs a warning.
    Cuda,
}

/// Per-stage timings of one frame, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Vehicle detection, the type classifier's included.
    pub vehicle_ms: f64,
    /// The part of `vehicle_ms` spent on the type classifier.
    pub vehicle_type_ms: f64,
    /// Plate detection, the second look's included.
    pub plate_detect_ms: f64,
    /// Plate reading, the second look's included.
    pub plate_read_ms: f64,
    /// The part of the two above spent on the second look (detection and reading).
    pub second_look_ms: f64,
    /// Vehicle crops the plate detector looked at again.
    pub second_looks: usize,
}

/// What one frame showed.
#[derive(Debug, Clone, Default)]
pub struct FrameResult {
    pub plates: Vec<PlateRead>,
    /// The view each plate was read from, one per plate in order
    /// ([`plate_reader::view_name`], followed by [`plate_detector::CONFIRMED`] for a plate
    /// confirmed as a known plate), for reports on misreads.
    pub plate_views: Vec<String>,
    pub vehicles: Vec<VehicleDetection>,
    pub timings: Timings,
}

impl FrameResult {
    /// Plates taken from one view, that view reading the text their track had read before
    /// ([`Recognizer::process_known`]): those whose view is marked [`plate_detector::CONFIRMED`].
    #[must_use]
    pub fn confirmed_reads(&self) -> usize {
        self.plate_views
            .iter()
            .filter(|v| v.ends_with(plate_detector::CONFIRMED))
            .count()
    }
}

/// Plate detector, plate reader and (optionally) vehicle detector, owned by one thread.
pub struct Recognizer {
    plates: YoloDetector,
    reader: PlateReader,
    vehicles: Option<Vehicles>,
    cfg: RecognizerConfig,
}

/// The vehicle detector and, when installed, the type classifier that looks at what it finds.
struct Vehicles {
    detector: YoloDetector,
    types: Option<TypeClassifier>,
}

impl Vehicles {
    /// Vehicles in the frame with their types, the milliseconds it took and the part of them
    /// the classifier took.
    fn find(
        &mut self,
        frame: &RgbFrame,
        cfg: &RecognizerConfig,
    ) -> Result<(Vec<VehicleDetection>, f64, f64), VisionError> {
        let (mut found, detect_ms) =
            vehicle_detector::find_vehicles(&mut self.detector, frame, cfg)?;
        let type_ms = match &mut self.types {
            Some(t) => t.classify(
                frame,
                &mut found,
                cfg.vehicle_type_confidence,
                cfg.heavy_vehicle_class_confidence,
            )?,
            None => 0.0,
        };
        Ok((found, detect_ms + type_ms, type_ms))
    }
}

impl Recognizer {
    /// Loads every model; ONNX Runtime must have been initialised with [`init_runtime`].
    pub fn new(cfg: RecognizerConfig) -> Result<Self, VisionError> {
        if cfg.execution_provider == ExecutionProvider::Cuda && !cfg!(feature = "gpu") {
            return Err(VisionError::NoGpuSupport);
        }
        let run = runtime::RunOn {
            threads: cfg.intra_threads,
            provider: cfg.execution_provider,
        };
        let plates = YoloDetector::load(&cfg.plate_detector, "plate detector", run)?;
        let mut reader = PlateReader::load(&cfg.plate_reader, run)?;
        reader.set_grammar(cfg.grammar);
        let detector = match &cfg.vehicle_detector {
            Some(p) if p.exists() => Some(YoloDetector::load(p, "vehicle detector", run)?),
            Some(p) => {
                tracing::warn!(path = %p.display(), "No vehicle detector model; vehicles are reported as `unknown`.");
                None
            }
            None => None,
        };
        let vehicles = match detector {
            Some(detector) => {
                let types = match &cfg.vehicle_types {
                    Some(p) if p.exists() => Some(TypeClassifier::load(p, run)?),
                    Some(p) => {
                        tracing::warn!(path = %p.display(), "No vehicle type classifier; vans, tractor-trailers and special vehicles are not told apart (run `models/fetch.sh`).");
                        None
                    }
                    None => None,
                };
                Some(Vehicles { detector, types })
            }
            None => None,
        };
        Ok(Self {
            plates,
            reader,
            vehicles,
            cfg,
        })
    }

    /// Whether a vehicle detector is loaded.
    #[must_use]
    pub fn has_vehicle_detector(&self) -> bool {
        self.vehicles.is_some()
    }

    /// Whether the vehicle type classifier is loaded (it runs only with the detector).
    #[must_use]
    pub fn has_type_classifier(&self) -> bool {
        self.vehicles.as_ref().is_some_and(|v| v.types.is_some())
    }

    /// The vehicle types this recognizer can report besides `unknown`: none without a vehicle
    /// detector ([`reported_classes`]), and with the type classifier those it names too
    /// ([`vehicle_types::classified_types`]).
    #[must_use]
    pub fn vehicle_classes(&self) -> Vec<VehicleClass> {
        let Some(v) = &self.vehicles else {
            return Vec::new();
        };
        let mut classes = reported_classes();
        if v.types.is_some() {
            for c in vehicle_types::classified_types() {
                if !classes.contains(&c) {
                    classes.push(c);
                }
            }
        }
        classes
    }

    /// Finds and reads every plate in a frame, and the vehicles when a detector is loaded.
    pub fn process(&mut self, frame: &RgbFrame) -> Result<FrameResult, VisionError> {
        self.process_with(frame, true)
    }

    /// As [`Recognizer::process`]; with `vehicles` false the vehicle detector is not run for
    /// this frame (no vehicles are reported).
    pub fn process_with(
        &mut self,
        frame: &RgbFrame,
        vehicles: bool,
    ) -> Result<FrameResult, VisionError> {
        self.process_known(frame, vehicles, &[])
    }

    /// As [`Recognizer::process_with`], with the plates a tracker has already read alike in
    /// earlier frames (`known`, where it expects them in this frame). A sure box of the plate
    /// detector's first pass over a known plate's box (IoU at least [`KNOWN_OVERLAP`]) is read
    /// from the reader's first view (or its two rows when squarish,
    /// [`PlateReader::read_quick`]) and taken from that view alone when it reads the known
    /// text, neither doubtful nor one no format fits; otherwise the box is read from every view
    /// as any other. The text a frame reports is always one the reader read in that frame; a
    /// known text read from the first view is no longer weighed against the further views,
    /// which saves their cost on a plate read again and again as it crosses the picture.
    pub fn process_known(
        &mut self,
        frame: &RgbFrame,
        vehicles: bool,
        known: &[KnownPlate],
    ) -> Result<FrameResult, VisionError> {
        if frame.width < 8
            || frame.height < 8
            || frame.data.len() != (frame.width * frame.height * 3) as usize
        {
            return Err(VisionError::BadFrame {
                width: frame.width,
                height: frame.height,
                message: "empty, too small or with a buffer that does not match its size".into(),
            });
        }
        let Self {
            plates: plate_det,
            reader,
            vehicles: vehicle_det,
            cfg,
        } = self;
        let mut timings = Timings::default();
        let mut plate_views = Vec::new();
        let (found_vehicles, found_plates) = match vehicle_det.as_mut().filter(|_| vehicles) {
            Some(det) if cfg.concurrent => std::thread::scope(|s| {
                let v = s.spawn(|| det.find(frame, cfg));
                let p = plate_detector::find_plates(
                    plate_det,
                    reader,
                    frame,
                    cfg,
                    known,
                    &mut timings,
                    &mut plate_views,
                );
                let v = v.join().unwrap_or_else(|_| {
                    Err(VisionError::Inference {
                        path: cfg.vehicle_detector.clone().unwrap_or_default(),
                        message: "the vehicle detector thread panicked".into(),
                    })
                });
                (v, p)
            }),
            det => (
                det.map_or(Ok((Vec::new(), 0.0, 0.0)), |d| d.find(frame, cfg)),
                plate_detector::find_plates(
                    plate_det,
                    reader,
                    frame,
                    cfg,
                    known,
                    &mut timings,
                    &mut plate_views,
                ),
            ),
        };
        let (vehicles, vehicle_ms, vehicle_type_ms) = found_vehicles?;
        let mut plates = found_plates?;
        timings.vehicle_ms = vehicle_ms;
        timings.vehicle_type_ms = vehicle_type_ms;
        if cfg.second_look != SecondLook::Off && !vehicles.is_empty() {
            plate_detector::look_again(
                plate_det,
                reader,
                frame,
                cfg,
                &vehicles,
                &mut plates,
                &mut plate_views,
                &mut timings,
            )?;
        }
        Ok(FrameResult {
            plates,
            plate_views,
            vehicles,
            timings,
        })
    }
}

pub(crate) fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

pub(crate) fn check_model_file(path: &Path) -> Result<(), VisionError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(VisionError::ModelMissing {
            path: path.to_path_buf(),
        })
    }
}
