//! `[models]`: the ONNX models and how to run them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Checker, ConfigError};

/// Where ONNX Runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    Cuda,
}

/// How plate texts are checked against known plate formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Grammar {
    /// No country assumed: exact matches are labelled, nothing is corrected.
    #[default]
    Generic,
    /// Kazakhstan and its neighbours: look-alike characters corrected where unambiguous.
    Kz,
}

/// How generic mode reports the round glyph `O`/`0` (`round_glyph`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RoundGlyph {
    /// As the plate tells: `0` on a plate shaped like a North American one, and a final one of
    /// the kind of the character before it on other one-row plates.
    #[default]
    ByPlate,
    /// As the reader read it.
    AsRead,
}

/// Which vehicles the plate detector looks at again (`second_look`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecondLook {
    /// Never.
    Off,
    /// Vehicles on which no plate was found.
    Missing,
    /// Those, and vehicles with only small plates not read surely (re-read from the box found
    /// there).
    #[default]
    Small,
}

/// Which build of a detector runs (`plate_detector_variant`, `vehicle_detector_variant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelVariant {
    /// The float model converted from the published weights (`plate_detector`,
    /// `vehicle_detector`).
    #[default]
    Float,
    /// The INT8 model `models/fetch.sh` makes from it by static quantization
    /// (`plate_detector_int8`, `vehicle_detector_int8`; `models/plate_detector.md`,
    /// `models/vehicle_detector.md`).
    Int8,
}

/// The ONNX models and how to run them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// Directory holding the models; relative to the config file.
    #[serde(default = "default_models_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_plate_detector")]
    pub plate_detector: PathBuf,
    /// The INT8 plate detector `models/fetch.sh` quantizes from `plate_detector`.
    #[serde(default = "default_plate_detector_int8")]
    pub plate_detector_int8: PathBuf,
    /// Which plate detector runs: `float` (default, `plate_detector`) or `int8`
    /// (`plate_detector_int8`).
    #[serde(default)]
    pub plate_detector_variant: ModelVariant,
    #[serde(default = "default_plate_reader")]
    pub plate_reader: PathBuf,
    #[serde(default = "default_vehicle_detector")]
    pub vehicle_detector: PathBuf,
    /// The INT8 vehicle detector `models/fetch.sh` quantizes from `vehicle_detector`.
    #[serde(default = "default_vehicle_detector_int8")]
    pub vehicle_detector_int8: PathBuf,
    /// Which vehicle detector runs: `float` (default, `vehicle_detector`) or `int8`
    /// (`vehicle_detector_int8`, about half the time; a missing file is then an error, not
    /// a device without vehicles).
    #[serde(default)]
    pub vehicle_detector_variant: ModelVariant,
    /// The ImageNet classifier that names the vehicle types the detector has no class for
    /// (`van`, `tractor-trailer`, `special`) and tells pickups from lorries; run on each
    /// vehicle found. A missing file leaves the detector's types (with a warning).
    #[serde(default = "default_vehicle_types")]
    pub vehicle_types: PathBuf,
    /// ONNX Runtime shared library; `ORT_DYLIB_PATH` overrides it.
    #[serde(default = "default_onnxruntime")]
    pub onnxruntime: PathBuf,
    /// Intra-op threads per session, 1 to 64.
    #[serde(default = "default_threads")]
    pub intra_threads: usize,
    /// Plate detector confidence from which a box is taken as a plate.
    #[serde(default = "default_plate_conf")]
    pub plate_confidence: f32,
    /// Plate detector confidence from which a box is read and kept only when its reading
    /// looks like a plate (every character sure, letters and digits, 4 to 10 of them); set it
    /// to `plate_confidence` to keep only sure boxes. Not above `plate_confidence`.
    #[serde(default = "default_plate_candidate_conf")]
    pub plate_candidate_confidence: f32,
    /// Minimum vehicle detector confidence; below it a vehicle is not reported.
    #[serde(default = "default_vehicle_conf")]
    pub vehicle_confidence: f32,
    /// Least confidence for a vehicle's type; a vehicle found with less is reported with the
    /// type `unknown` rather than a guess.
    #[serde(default = "default_vehicle_class_conf")]
    pub vehicle_class_confidence: f32,
    /// The same for the heavy types (`bus`, `truck`, `tractor-trailer`), which decide offences
    /// of their own (class bans, weighing stations): default 0.65.
    #[serde(default = "default_heavy_vehicle_class_conf")]
    pub heavy_vehicle_class_confidence: f32,
    /// Least share of the type classifier's probability for its type to replace the
    /// detector's (default 0.5: at least half of all the probability); a heavy type (`bus`,
    /// `truck`, `tractor-trailer`) needs `heavy_vehicle_class_confidence` too.
    #[serde(default = "default_vehicle_type_conf")]
    pub vehicle_type_confidence: f32,
    /// Plate grammar: `generic` (default) or `kz`.
    #[serde(default)]
    pub grammar: Grammar,
    /// Generic mode only: `by-plate` (default) reports the round glyph `O`/`0` as `0` on a
    /// one-row plate shaped like a North American one (a box narrower than 2.35:1), and a final
    /// one on another one-row plate as the kind of the character before it; `as-read` reports
    /// every reading as the reader read it (for plates whose formats end in a single digit
    /// after letters, such as two Dutch series).
    #[serde(default)]
    pub round_glyph: RoundGlyph,
    /// Run the vehicle detector on a second thread beside plate detection and reading
    /// (default true); false runs the stages one after the other on one thread.
    #[serde(default = "default_true")]
    pub concurrent: bool,
    /// Frames of one camera recognised at the same time (1 to 4, default 1): each beyond the
    /// first is recognised on a thread of its own with its own model sessions (about 60 MB
    /// each), so a camera recognising every frame can use more than one core for its plate
    /// stages. The tracker still takes the frames in their order.
    #[serde(default = "default_parallel_frames")]
    pub parallel_frames: u32,
    /// Look again for the plates of vehicles the plate detector found no plate on: the
    /// detector runs once more on each such vehicle's crop, at twice the first pass's scale, at
    /// most two vehicles per frame, only on frames where the vehicle detector runs. `missing`:
    /// vehicles with no plate found; `small` (default): also those with only plates under
    /// 32×32 px as the detector saw the frame and with a character the reader was not sure of,
    /// read again from the box found there (the surer reading kept); `off`. A frame where every
    /// vehicle has a plate that is not small or was read surely costs nothing more.
    #[serde(default)]
    pub second_look: SecondLook,
    /// A plate its vehicle's track has read as one text in this many frames (that text holding
    /// more than half of the track's vote) is taken in later frames from the reader's first
    /// view (its two rows when squarish) when that view reads the same text, neither doubtful
    /// nor outside the formats; when it reads anything else, it is read from every view as
    /// before. Default 3 (1 acts as 2: where the plate is expected comes from its motion,
    /// which takes two sightings); 0 reads every plate from every view in every frame. It
    /// saves the reader's further views of plates read again and again as they cross the
    /// picture; a known text read from the first view is then no longer weighed against them.
    /// The first readings of a plate, and still photos, are read as before.
    #[serde(default = "default_known_plate_reads")]
    pub known_plate_reads: u32,
    /// Run the vehicle detector on one recognised frame in this many (1 = every one, at most
    /// 10), and on every frame while a passage has no vehicle of a known type yet; a passage
    /// takes the most confident vehicle seen over its frames.
    #[serde(default = "default_vehicle_every")]
    pub vehicle_every: u32,
    /// Where the models run: `cpu` (default) or `cuda` (needs a build with the `gpu` feature
    /// and the GPU build of ONNX Runtime).
    #[serde(default)]
    pub execution_provider: ExecutionProvider,
    /// The sha256 each model file and the ONNX Runtime library must have, as `[models.sha256]`
    /// (64 hex digits, as `sha256sum` prints them). A file pinned here is checked against this
    /// pin; one not pinned here against the `SHA256SUMS` that `models/fetch.sh` writes into
    /// `dir`. For deployments whose config is managed apart from the model folder. Default:
    /// none (every pin from `SHA256SUMS`).
    #[serde(default)]
    pub sha256: ModelPins,
}

/// Pinned sha256 of the files recognition loads (`[models.sha256]`); each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPins {
    pub plate_detector: Option<String>,
    pub plate_reader: Option<String>,
    pub vehicle_detector: Option<String>,
    pub vehicle_types: Option<String>,
    /// The ONNX Runtime library (also when `ORT_DYLIB_PATH` points elsewhere).
    pub onnxruntime: Option<String>,
}

impl ModelPins {
    /// The pins by name: `plate_detector`, `plate_reader`, `vehicle_detector`,
    /// `vehicle_types`, `onnxruntime`.
    #[must_use]
    pub fn entries(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("plate_detector", self.plate_detector.as_deref()),
            ("plate_reader", self.plate_reader.as_deref()),
            ("vehicle_detector", self.vehicle_detector.as_deref()),
            ("vehicle_types", self.vehicle_types.as_deref()),
            ("onnxruntime", self.onnxruntime.as_deref()),
        ]
    }
}

fn default_vehicle_every() -> u32 {
    3
}
fn default_known_plate_reads() -> u32 {
    3
}
fn default_parallel_frames() -> u32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_models_dir() -> PathBuf {
    PathBuf::from("../models")
}
fn default_plate_detector() -> PathBuf {
    PathBuf::from("plate_detector.onnx")
}
fn default_plate_detector_int8() -> PathBuf {
    PathBuf::from("plate_detector.int8.onnx")
}
fn default_vehicle_detector_int8() -> PathBuf {
    PathBuf::from("vehicle_detector.int8.onnx")
}
fn default_plate_reader() -> PathBuf {
    PathBuf::from("plate_reader.onnx")
}
fn default_vehicle_detector() -> PathBuf {
    PathBuf::from("vehicle_detector.onnx")
}
fn default_vehicle_types() -> PathBuf {
    PathBuf::from("vehicle_types.onnx")
}
fn default_vehicle_type_conf() -> f32 {
    0.5
}
fn default_onnxruntime() -> PathBuf {
    PathBuf::from("libonnxruntime.so")
}
fn default_threads() -> usize {
    1
}
fn default_plate_conf() -> f32 {
    0.35
}
fn default_plate_candidate_conf() -> f32 {
    0.05
}
fn default_heavy_vehicle_class_conf() -> f32 {
    0.65
}
fn default_vehicle_conf() -> f32 {
    0.35
}
fn default_vehicle_class_conf() -> f32 {
    0.5
}

impl Models {
    /// Absolute path of a model file named in this section.
    #[must_use]
    pub fn path(&self, file: &Path) -> PathBuf {
        self.dir.join(file)
    }

    /// The plate detector file `plate_detector_variant` selects, relative to `dir`.
    #[must_use]
    pub fn plate_detector_file(&self) -> &Path {
        match self.plate_detector_variant {
            ModelVariant::Float => &self.plate_detector,
            ModelVariant::Int8 => &self.plate_detector_int8,
        }
    }

    /// The vehicle detector file `vehicle_detector_variant` selects, relative to `dir`.
    #[must_use]
    pub fn vehicle_detector_file(&self) -> &Path {
        match self.vehicle_detector_variant {
            ModelVariant::Float => &self.vehicle_detector,
            ModelVariant::Int8 => &self.vehicle_detector_int8,
        }
    }

    pub(crate) fn validate(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        if !(1..=10).contains(&self.vehicle_every) {
            return Err(c.invalid("models.vehicle_every", "must be between 1 and 10"));
        }
        if !(1..=4).contains(&self.parallel_frames) {
            return Err(c.invalid(
                "models.parallel_frames",
                "must be between 1 and 4 (frames of one camera recognised at the same time; more than the cores only adds memory)",
            ));
        }
        if self.known_plate_reads > 100 {
            return Err(c.invalid(
                "models.known_plate_reads",
                "must be between 0 (every plate read from every view) and 100",
            ));
        }
        if self.intra_threads == 0 || self.intra_threads > 64 {
            return Err(c.invalid("models.intra_threads", "must be between 1 and 64"));
        }
        for (key, v) in [
            ("models.plate_confidence", self.plate_confidence),
            (
                "models.plate_candidate_confidence",
                self.plate_candidate_confidence,
            ),
            ("models.vehicle_confidence", self.vehicle_confidence),
            (
                "models.vehicle_class_confidence",
                self.vehicle_class_confidence,
            ),
            (
                "models.heavy_vehicle_class_confidence",
                self.heavy_vehicle_class_confidence,
            ),
            (
                "models.vehicle_type_confidence",
                self.vehicle_type_confidence,
            ),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(c.invalid(key, "must be a confidence between 0 and 1"));
            }
        }
        for (name, pin) in self.sha256.entries() {
            if let Some(pin) = pin
                && (pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(c.invalid(
                    &format!("models.sha256.{name}"),
                    "must be a sha256 of 64 hex digits, as `sha256sum FILE` prints it",
                ));
            }
        }
        if self.plate_candidate_confidence > self.plate_confidence {
            return Err(c.invalid(
                "models.plate_candidate_confidence",
                "must not be above models.plate_confidence",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(text: &str) -> Result<Models, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn the_round_glyph_is_read_by_the_plate_unless_asked_otherwise() {
        assert_eq!(models("").unwrap().round_glyph, RoundGlyph::ByPlate);
        let m = models("round_glyph = \"as-read\"").unwrap();
        assert_eq!(m.round_glyph, RoundGlyph::AsRead);
        let err = models("round_glyph = \"zero\"").unwrap_err().to_string();
        assert!(err.contains("round_glyph"), "{err}");
    }

    #[test]
    fn the_second_look_defaults_to_small_plates_read_unsurely() {
        assert_eq!(models("").unwrap().second_look, SecondLook::Small);
        let m = models("second_look = \"missing\"").unwrap();
        assert_eq!(m.second_look, SecondLook::Missing);
        let err = models("second_look = true").unwrap_err().to_string();
        assert!(err.contains("second_look"), "{err}");
    }

    #[test]
    fn the_plate_detector_variant_selects_the_file_and_defaults_to_float() {
        let m = models("").unwrap();
        assert_eq!(m.plate_detector_variant, ModelVariant::Float);
        assert_eq!(m.plate_detector_file(), Path::new("plate_detector.onnx"));
        let m = models("plate_detector_variant = \"int8\"").unwrap();
        assert_eq!(
            m.plate_detector_file(),
            Path::new("plate_detector.int8.onnx")
        );
        let m =
            models("plate_detector_variant = \"int8\"\nplate_detector_int8 = \"q.onnx\"").unwrap();
        assert_eq!(m.plate_detector_file(), Path::new("q.onnx"));
        let err = models("plate_detector_variant = \"int4\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("float") && err.contains("int8"), "{err}");
    }

    #[test]
    fn the_vehicle_detector_variant_selects_the_file_and_defaults_to_float() {
        let m = models("").unwrap();
        assert_eq!(m.vehicle_detector_variant, ModelVariant::Float);
        assert_eq!(
            m.vehicle_detector_file(),
            Path::new("vehicle_detector.onnx")
        );
        let m = models("vehicle_detector_variant = \"int8\"").unwrap();
        assert_eq!(
            m.vehicle_detector_file(),
            Path::new("vehicle_detector.int8.onnx")
        );
        // Each detector's variant is its own choice.
        assert_eq!(m.plate_detector_file(), Path::new("plate_detector.onnx"));
        let m = models("vehicle_detector_variant = \"int8\"\nvehicle_detector_int8 = \"v.onnx\"")
            .unwrap();
        assert_eq!(m.vehicle_detector_file(), Path::new("v.onnx"));
        let err = models("vehicle_detector_variant = \"fp16\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("float") && err.contains("int8"), "{err}");
    }
}
