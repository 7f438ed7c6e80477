//! Camera ingest: GStreamer pipelines that decode any source into RGB frames.
//!
//! # Contract
//!
//! [`FrameSource::open`] builds `source ! decode ! videoconvert ! appsink` from typed elements
//! (the URI is a property, never pasted into a pipeline description) and waits until the
//! pipeline has started or failed, so a camera that does not open is an [`IngestError`] naming
//! the camera and its URI, never a hang or a panic. Only a plain file path or a URI of one of
//! [`anpr_types::CAMERA_SCHEMES`] is opened; any other is refused before GStreamer sees it.
//! No error carries a camera's password: the URI in it is shown as
//! [`anpr_types::redact_uri`] shows it, and every message that comes from GStreamer is
//! scrubbed of the URI's password (see [`IngestError`]). Frames are pulled on the caller's thread
//! ([`FrameSource::pull`] waits at most the time it is given, so the caller can watch for
//! stalls and stop requests); GStreamer runs its own streaming threads. A source is opened
//! once: after an error or the end of a live stream, drop it and open a new one (reconnecting
//! is the caller's policy).
//!
//! # Capture time
//!
//! Each frame carries its capture time in UTC, fixed here and never rewritten later, and says
//! where it came from ([`ClockSource`]):
//! - `camera-ntp` (RTSP): the camera's own clock. `rtspsrc` runs with
//!   `add-reference-timestamp-meta`, so once the camera's RTCP sender reports have mapped its
//!   RTP timestamps to its NTP clock, each frame carries that NTP time (`timestamp/x-ntp`
//!   reference timestamp meta) through depayloader and decoder;
//! - `pipeline` (RTSP before the first sender report, V4L2, any live source): the moment the
//!   frame entered the pipeline, on the pipeline clock: its timestamp (for RTSP the jitter
//!   buffer's estimate of its arrival; for V4L2 the driver's capture time) taken back from the
//!   pipeline's running time now to the wall clock now. The time the frame then spent in the
//!   jitter buffer (up to `latency_ms`), the decoder and the hand-off is thereby taken out:
//!   it is never the time the frame left the decoder;
//! - `system` (files): the time the file was opened plus the frame's presentation timestamp,
//!   so a recorded clip keeps its own timing.
//!
//! The error of each is measured in `docs/cameras.md`.

use std::path::Path;
use std::time::Duration;

use anpr_types::RgbFrame;
use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Errors of the ingest stage. None holds a camera's password: `uri` is the configured URI
/// with its password masked (`rtsp://admin:***@10.0.0.5/stream`), and every `message` is
/// scrubbed of the password (see [`FrameSource::open_with`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error(
        "GStreamer could not be initialised: {0}; install the GStreamer runtime (deploy/setup.sh)"
    )]
    Init(String),
    #[error(
        "camera {camera}: the source {uri} does not open: {message}; check the URI, that the file or device exists and that the camera is reachable"
    )]
    Open {
        camera: String,
        uri: String,
        message: String,
    },
    #[error("camera {camera}: stream error: {message}")]
    Stream { camera: String, message: String },
}

/// Where a frame's capture time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockSource {
    /// The camera's own clock, from the NTP time its RTCP sender reports give the frame.
    CameraNtp,
    /// The pipeline clock when the frame entered the pipeline, mapped to the host's wall clock.
    Pipeline,
    /// The host's wall clock when the file was opened, plus the frame's timestamp in the file.
    System,
}

impl ClockSource {
    /// The name carried in an event's `clock.source`: `camera-ntp`, `pipeline`, `system`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CameraNtp => "camera-ntp",
            Self::Pipeline => "pipeline",
            Self::System => "system",
        }
    }
}

impl std::fmt::Display for ClockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded frame with its capture time.
#[derive(Debug, Clone)]
pub struct Frame {
    pub camera: String,
    /// Index of the frame among those decoded from this source, from 0.
    pub index: u64,
    /// Presentation timestamp within the stream.
    pub pts: Duration,
    pub captured_at: DateTime<Utc>,
    /// Where `captured_at` comes from.
    pub clock: ClockSource,
    pub image: RgbFrame,
}

/// How to open a source beyond its URI.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Treat the source as live; `None`: live for `rtsp://` and `v4l2://`.
    pub live: Option<bool>,
    /// Keep at most this many frames per second of stream time (0: every frame).
    pub max_fps: f32,
    /// How long to wait for the pipeline to start.
    pub open_timeout: Duration,
    /// Jitter buffer of an RTSP source, milliseconds (`rtspsrc latency`).
    pub latency_ms: u32,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            live: None,
            max_fps: 0.0,
            open_timeout: Duration::from_secs(15),
            latency_ms: 200,
        }
    }
}

/// What [`FrameSource::pull`] found.
#[derive(Debug)]
pub enum Pulled {
    Frame(Box<Frame>),
    /// No frame within the time given; the source is still open.
    Nothing,
    /// The end of the stream (a file's end; a live stream that ended).
    End,
}

/// Offset between the NTP epoch (1900) and the Unix epoch (1970), seconds.
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// The source element of the pipeline, with what its property is set to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceKind {
    /// `v4l2src` with its `device` property set to this path, then `decodebin`.
    V4l2(String),
    /// `uridecodebin` with its `uri` property set to this URI.
    Uri(String),
}

/// The source to build for an allow-listed URI or a plain file path (made absolute and turned
/// into a `file://` URI).
fn source_kind(uri: &str) -> SourceKind {
    match anpr_types::uri::uri_scheme(uri).as_deref() {
        Some("v4l2") => SourceKind::V4l2(uri["v4l2://".len()..].to_string()),
        Some(_) => SourceKind::Uri(uri.to_string()),
        None => {
            let p = Path::new(uri);
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            SourceKind::Uri(
                gst::glib::filename_to_uri(&abs, None)
                    .map_or_else(|_| format!("file://{}", abs.display()), |u| u.to_string()),
            )
        }
    }
}

/// Whether a source is live unless configured otherwise: `rtsp://`, `rtsps://`, `rtspt://`
/// and `v4l2://` are.
#[must_use]
pub fn live_by_default(uri: &str) -> bool {
    matches!(
        anpr_types::uri::uri_scheme(uri).as_deref(),
        Some("rtsp" | "rtsps" | "rtspt" | "v4l2")
    )
}

/// `message` (from GStreamer, say) with nothing of `uri`'s password left: the URI itself
/// shown redacted, the password in any other place (raw or percent-decoded, when of 4
/// characters or more) masked, and any other URI quoted in it redacted.
fn scrub(uri: &str, message: &str) -> String {
    let mut m = if uri.is_empty() {
        message.to_string()
    } else {
        message.replace(uri, &anpr_types::redact_uri(uri))
    };
    if let Some(pw) = anpr_types::uri::uri_password(uri) {
        for form in [pw.to_string(), percent_decoded(pw)] {
            if form.chars().count() >= 4 {
                m = m.replace(&form, anpr_types::uri::MASK);
            }
        }
    }
    anpr_types::redact_text(&m)
}

/// `%XX` sequences decoded (others kept as they are); invalid UTF-8 is replaced.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running camera pipeline.
pub struct FrameSource {
    camera: String,
    uri: String,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    live: bool,
    opened_at: DateTime<Utc>,
    next_index: u64,
    min_interval: Option<Duration>,
    last_kept: Option<Duration>,
    frame_rate: Option<f64>,
}

impl FrameSource {
    /// Opens the source and waits (up to `timeout`) until it plays.
    /// `max_fps` > 0 keeps at most that many frames per second of stream time.
    pub fn open(
        camera: &str,
        uri: &str,
        live: Option<bool>,
        max_fps: f32,
        timeout: Duration,
    ) -> Result<Self, IngestError> {
        Self::open_with(
            camera,
            uri,
            &SourceOptions {
                live,
                max_fps,
                open_timeout: timeout,
                ..SourceOptions::default()
            },
        )
    }

    /// Opens the source with `opts` and waits until it plays. A URI whose scheme is not
    /// allow-listed ([`anpr_types::check_camera_uri`]) is refused before GStreamer sees it.
    pub fn open_with(camera: &str, uri: &str, opts: &SourceOptions) -> Result<Self, IngestError> {
        gst::init().map_err(|e| IngestError::Init(e.to_string()))?;
        let open_err = |message: String| IngestError::Open {
            camera: camera.to_string(),
            uri: anpr_types::redact_uri(uri),
            message: scrub(uri, &message),
        };
        anpr_types::check_camera_uri(uri).map_err(open_err)?;
        if anpr_types::uri::uri_scheme(uri).is_none() && !Path::new(uri).is_file() {
            return Err(open_err("file not found".into()));
        }
        let live = opts.live.unwrap_or_else(|| live_by_default(uri));
        let (pipeline, sink) =
            build_pipeline(&source_kind(uri), live, opts.latency_ms).map_err(open_err)?;
        pipeline.set_state(gst::State::Playing).map_err(|e| {
            let msg = first_bus_error(&pipeline).unwrap_or_else(|| e.to_string());
            let _ = pipeline.set_state(gst::State::Null);
            open_err(msg)
        })?;
        // Wait for PLAYING (or PAUSED for sinks that preroll) or an error.
        let (res, state, _) = pipeline.state(gst::ClockTime::from_nseconds(
            opts.open_timeout.as_nanos() as u64,
        ));
        if res.is_err() || (state != gst::State::Playing && state != gst::State::Paused) {
            let msg = first_bus_error(&pipeline)
                .unwrap_or_else(|| format!("did not start within {:?}", opts.open_timeout));
            let _ = pipeline.set_state(gst::State::Null);
            return Err(open_err(msg));
        }
        let min_interval =
            (opts.max_fps > 0.0).then(|| Duration::from_secs_f64(1.0 / f64::from(opts.max_fps)));
        Ok(Self {
            camera: camera.to_string(),
            uri: uri.to_string(),
            pipeline,
            sink,
            live,
            opened_at: Utc::now(),
            next_index: 0,
            min_interval,
            last_kept: None,
            frame_rate: None,
        })
    }

    /// Whether the source is live (capture time from the camera's or the pipeline's clock).
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The configured URI, its password masked (fit for messages).
    #[must_use]
    pub fn uri(&self) -> String {
        anpr_types::redact_uri(&self.uri)
    }

    /// Frames per second the stream declares, once a frame has arrived (`None` when it
    /// declares none).
    #[must_use]
    pub fn frame_rate(&self) -> Option<f64> {
        self.frame_rate
    }

    /// Next frame; `Ok(None)` at the end of the stream. Waits at most `timeout` for a frame
    /// and reports a stall as an error.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, IngestError> {
        match self.pull(timeout)? {
            Pulled::Frame(f) => Ok(Some(*f)),
            Pulled::End => Ok(None),
            Pulled::Nothing => Err(IngestError::Stream {
                camera: self.camera.clone(),
                message: format!("no frame for {timeout:?}; the stream has stalled"),
            }),
        }
    }

    /// The next frame, waiting at most `timeout`: [`Pulled::Nothing`] when none came in that
    /// time and the pipeline reports no error; an error posted by the pipeline is returned as
    /// [`IngestError::Stream`].
    pub fn pull(&mut self, timeout: Duration) -> Result<Pulled, IngestError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
            else {
                if self.sink.is_eos() {
                    return Ok(Pulled::End);
                }
                if let Some(msg) = first_bus_error(&self.pipeline) {
                    return Err(stream_error(&self.camera, &self.uri, &msg));
                }
                return Ok(Pulled::Nothing);
            };
            // Taken before anything else is done with the frame.
            let running_now = self.pipeline.current_running_time();
            let wall_now = Utc::now();
            let index = self.next_index;
            self.next_index += 1;
            let (camera, uri) = (&self.camera, &self.uri);
            let stream_err = |message: String| stream_error(camera, uri, &message);
            let buffer = sample
                .buffer()
                .ok_or_else(|| stream_err("sample without buffer".into()))?;
            let pts = buffer
                .pts()
                .map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()));
            if let (Some(min), Some(last)) = (self.min_interval, self.last_kept)
                && pts.saturating_sub(last) < min
            {
                continue;
            }
            self.last_kept = Some(pts);
            let caps = sample
                .caps()
                .ok_or_else(|| stream_err("sample without caps".into()))?;
            let info = gstreamer_video::VideoInfo::from_caps(caps)
                .map_err(|e| stream_err(e.to_string()))?;
            let fps = info.fps();
            self.frame_rate = (fps.numer() > 0 && fps.denom() > 0)
                .then(|| f64::from(fps.numer()) / f64::from(fps.denom()));
            let (captured_at, clock) = if self.live {
                live_capture_time(buffer, running_now, wall_now)
            } else {
                (
                    self.opened_at + chrono::Duration::from_std(pts).unwrap_or_default(),
                    ClockSource::System,
                )
            };
            let map = buffer
                .map_readable()
                .map_err(|e| stream_err(e.to_string()))?;
            let (w, h) = (info.width(), info.height());
            let row = w as usize * 3;
            let stride = info.stride()[0] as usize;
            let mut data = Vec::with_capacity(row * h as usize);
            for y in 0..h as usize {
                let start = y * stride;
                data.extend_from_slice(
                    map.get(start..start + row)
                        .ok_or_else(|| stream_err("short frame buffer".into()))?,
                );
            }
            return Ok(Pulled::Frame(Box::new(Frame {
                camera: self.camera.clone(),
                index,
                pts,
                captured_at,
                clock,
                image: RgbFrame {
                    width: w,
                    height: h,
                    data,
                },
            })));
        }
    }
}

/// A stream error of a camera, its message scrubbed of the URI's password.
fn stream_error(camera: &str, uri: &str, message: &str) -> IngestError {
    IngestError::Stream {
        camera: camera.to_string(),
        message: scrub(uri, message),
    }
}

/// Capture time of a live frame: the camera's NTP time when the frame carries it, else the
/// moment it entered the pipeline (its timestamp, `running_now - pts` ago), else now.
fn live_capture_time(
    buffer: &gst::BufferRef,
    running_now: Option<gst::ClockTime>,
    wall_now: DateTime<Utc>,
) -> (DateTime<Utc>, ClockSource) {
    let ntp = buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|m| {
            m.reference()
                .structure(0)
                .is_some_and(|s| s.name() == "timestamp/x-ntp")
        })
        .map(|m| m.timestamp().nseconds());
    if let Some(at) = ntp.and_then(ntp_to_utc) {
        return (at, ClockSource::CameraNtp);
    }
    let age = match (running_now, buffer.pts()) {
        (Some(now), Some(pts)) => now.nseconds().saturating_sub(pts.nseconds()),
        _ => 0,
    };
    (
        pipeline_time(wall_now, Duration::from_nanos(age)),
        ClockSource::Pipeline,
    )
}

/// An NTP time (nanoseconds since 1900) as UTC; `None` before 1970.
#[must_use]
pub fn ntp_to_utc(ntp_ns: u64) -> Option<DateTime<Utc>> {
    let unix_ns = ntp_ns.checked_sub(NTP_UNIX_OFFSET_S * 1_000_000_000)?;
    Some(DateTime::from_timestamp_nanos(i64::try_from(unix_ns).ok()?))
}

/// The wall time `age` before `wall_now`: when a frame that has been in the pipeline for
/// `age` entered it.
#[must_use]
pub fn pipeline_time(wall_now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    wall_now - chrono::Duration::from_std(age).unwrap_or_default()
}

impl Drop for FrameSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// `source ! videoconvert ! video/x-raw,format=RGB ! appsink`, the source linked to the
/// converter when its video pad appears.
fn build_pipeline(
    kind: &SourceKind,
    live: bool,
    latency_ms: u32,
) -> Result<(gst::Pipeline, gst_app::AppSink), String> {
    let make = |name: &str| {
        gst::ElementFactory::make(name)
            .build()
            .map_err(|e| format!("GStreamer element {name} is missing ({e}); run deploy/setup.sh"))
    };
    let pipeline = gst::Pipeline::new();
    let convert = make("videoconvert")?;
    let sink = gst_app::AppSink::builder()
        .name("sink")
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .build(),
        )
        .sync(false)
        .max_buffers(if live { 2 } else { 8 })
        .drop(live)
        .build();
    pipeline
        .add_many([&convert, sink.upcast_ref()])
        .map_err(|e| e.to_string())?;
    convert.link(&sink).map_err(|e| e.to_string())?;
    let decoder = match kind {
        SourceKind::V4l2(device) => {
            let src = make("v4l2src")?;
            src.set_property("device", device.as_str());
            let decode = make("decodebin")?;
            pipeline
                .add_many([&src, &decode])
                .map_err(|e| e.to_string())?;
            src.link(&decode).map_err(|e| e.to_string())?;
            decode
        }
        SourceKind::Uri(uri) => {
            let decode = make("uridecodebin")?;
            decode.set_property("uri", uri.as_str());
            decode.connect("source-setup", false, move |args| {
                if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
                    configure_source(&src, latency_ms);
                }
                None
            });
            pipeline.add(&decode).map_err(|e| e.to_string())?;
            decode
        }
    };
    let convert_weak = convert.downgrade();
    decoder.connect_pad_added(move |_, pad| {
        let Some(convert) = convert_weak.upgrade() else {
            return;
        };
        let is_video = pad
            .current_caps()
            .unwrap_or_else(|| pad.query_caps(None))
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if let Some(sinkpad) = convert.static_pad("sink")
            && is_video
            && !sinkpad.is_linked()
            && let Err(e) = pad.link(&sinkpad)
        {
            tracing::warn!(error = ?e, "Decoded video pad does not link.");
        }
    });
    Ok((pipeline, sink))
}

/// An RTSP source gets its jitter buffer and keeps the camera's NTP time on each frame.
fn configure_source(src: &gst::Element, latency_ms: u32) {
    if src.factory().is_some_and(|f| f.name() == "rtspsrc") {
        src.set_property("latency", latency_ms);
        if src.find_property("add-reference-timestamp-meta").is_some() {
            src.set_property("add-reference-timestamp-meta", true);
        }
    }
}

fn first_bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(err) = msg.view() {
            let from = err
                .src()
                .map_or_else(String::new, |s| format!("{}: ", s.name()));
            return Some(format!("{from}{}", err.error()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_times_become_utc_and_pipeline_times_go_back_by_the_frame_s_age() {
        let unix = DateTime::parse_from_rfc3339("2026-11-30T01:52:55.616417376Z")
            .unwrap()
            .with_timezone(&Utc);
        let ntp = (unix.timestamp_nanos_opt().unwrap() as u64) + NTP_UNIX_OFFSET_S * 1_000_000_000;
        assert_eq!(ntp_to_utc(ntp), Some(unix));
        assert_eq!(ntp_to_utc(5), None, "before 1970");
        assert_eq!(
            pipeline_time(unix, Duration::from_millis(250)),
            unix - chrono::Duration::milliseconds(250)
        );
        assert_eq!(ClockSource::CameraNtp.as_str(), "camera-ntp");
    }

    #[test]
    fn plain_paths_become_file_uris_and_v4l2_uses_its_device() {
        gst::init().unwrap();
        let uri = |s: &str| SourceKind::Uri(s.to_string());
        assert_eq!(source_kind("/tmp/a.mp4"), uri("file:///tmp/a.mp4"));
        assert_eq!(source_kind("/tmp/a b.mp4"), uri("file:///tmp/a%20b.mp4"));
        assert_eq!(
            source_kind("v4l2:///dev/video0"),
            SourceKind::V4l2("/dev/video0".into())
        );
        assert_eq!(source_kind("rtsp://10.0.0.1/s"), uri("rtsp://10.0.0.1/s"));
        assert!(live_by_default("RTSPS://h/s") && live_by_default("rtspt://h/s"));
        assert!(!live_by_default("file:///a.mp4") && !live_by_default("/a.mp4"));
    }

    #[test]
    fn a_scheme_off_the_allow_list_is_refused_before_gstreamer_sees_it() {
        for bad in [
            "http://u:hunter22@10.0.0.5/x",
            "udp://0.0.0.0:5000",
            "fd://0",
        ] {
            let err = FrameSource::open("cam3", bad, None, 0.0, Duration::from_secs(2))
                .err()
                .expect("refused");
            let msg = err.to_string();
            assert!(matches!(err, IngestError::Open { .. }), "{msg}");
            assert!(msg.contains("cam3") && msg.contains("rtsp://"), "{msg}");
            assert!(!msg.contains("hunter22"), "{msg}");
        }
    }

    #[test]
    fn messages_are_scrubbed_of_the_password_in_every_form() {
        let uri = "rtsp://admin:s3cr%40t@10.0.0.5/stream";
        let msg = scrub(
            uri,
            &format!("Could not open {uri}; auth s3cr@t failed; also rtsp://x:y1@h; pw s3cr%40t"),
        );
        assert!(!msg.contains("s3cr"), "{msg}");
        assert!(msg.contains("rtsp://admin:***@10.0.0.5/stream"), "{msg}");
        assert!(msg.contains("rtsp://x:***@h"), "{msg}");
        assert_eq!(percent_decoded("a%2Fb%zz%"), "a/b%zz%");
    }

    #[test]
    fn an_rtsp_camera_that_does_not_open_names_its_uri_without_the_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = format!("rtsp://user:s3cret@127.0.0.1:{port}/x");
        let err = FrameSource::open("cam4", &uri, None, 0.0, Duration::from_secs(10))
            .err()
            .expect("nothing listens");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("rtsp://user:***@127.0.0.1:{port}/x")),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
    }

    #[test]
    fn a_missing_file_is_an_open_error_naming_the_camera() {
        let err = FrameSource::open(
            "cam9",
            "/nonexistent/clip.mp4",
            None,
            0.0,
            Duration::from_secs(2),
        )
        .err()
        .expect("must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("cam9") && msg.contains("/nonexistent/clip.mp4"),
            "{msg}"
        );
    }

    #[test]
    fn videotestsrc_frames_arrive_as_rgb_with_increasing_capture_times() {
        gst::init().unwrap();
        let dir = std::env::temp_dir().join(format!("anpr-ingest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.mkv");
        let p = gst::parse::launch(&format!(
            "videotestsrc num-buffers=10 ! video/x-raw,width=64,height=48,framerate=10/1 ! x264enc ! matroskamux ! filesink location={}",
            path.display()
        ))
        .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let bus = p.bus().unwrap();
        bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        p.set_state(gst::State::Null).unwrap();
        let mut src = FrameSource::open(
            "t",
            path.to_str().unwrap(),
            None,
            0.0,
            Duration::from_secs(10),
        )
        .unwrap();
        let mut n = 0;
        let mut last = None;
        while let Some(f) = src.next_frame(Duration::from_secs(10)).unwrap() {
            assert_eq!((f.image.width, f.image.height), (64, 48));
            assert_eq!(f.image.data.len(), 64 * 48 * 3);
            if let Some(prev) = last {
                assert!(f.captured_at > prev);
            }
            assert_eq!(f.clock, ClockSource::System);
            last = Some(f.captured_at);
            n += 1;
        }
        assert_eq!(n, 10);
        std::fs::remove_dir_all(&dir).ok();
    }
}
