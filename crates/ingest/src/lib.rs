//! Camera ingest: GStreamer pipelines that decode any source into RGB frames.
//!
//! Contract: [`FrameSource::open`] builds `source ! decode ! videoconvert ! appsink` and
//! waits until the pipeline has started or failed, so a camera that does not open is an
//! [`IngestError`] naming the camera and its URI, never a hang or a panic. Frames are pulled
//! on the caller's thread; GStreamer runs its own streaming threads. Each frame carries its
//! capture time in UTC, fixed here and never rewritten later:
//! - live sources (RTSP, V4L2): the wall clock when the frame left the decoder;
//! - files: the time the file was opened plus the frame's presentation timestamp, so a
//!   recorded clip keeps its own timing.

use std::path::Path;
use std::time::Duration;

use anpr_types::RgbFrame;
use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Errors of the ingest stage.
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

/// One decoded frame with its capture time.
#[derive(Debug, Clone)]
pub struct Frame {
    pub camera: String,
    /// Index of the frame among those decoded from this source, from 0.
    pub index: u64,
    /// Presentation timestamp within the stream.
    pub pts: Duration,
    pub captured_at: DateTime<Utc>,
    pub image: RgbFrame,
}

/// Turns a configured camera URI into a GStreamer source description.
#[must_use]
pub fn source_description(uri: &str) -> String {
    if let Some(dev) = uri.strip_prefix("v4l2://") {
        return format!("v4l2src device={dev} ! decodebin");
    }
    let uri = if uri.contains("://") {
        uri.to_string()
    } else {
        let p = Path::new(uri);
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
        };
        format!("file://{}", abs.display())
    };
    format!("uridecodebin uri=\"{uri}\"")
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
        gst::init().map_err(|e| IngestError::Init(e.to_string()))?;
        let open_err = |message: String| IngestError::Open {
            camera: camera.to_string(),
            uri: uri.to_string(),
            message,
        };
        if !uri.contains("://") && !Path::new(uri).is_file() {
            return Err(open_err("file not found".into()));
        }
        let live = live.unwrap_or_else(|| uri.starts_with("rtsp://") || uri.starts_with("v4l2://"));
        let desc = format!(
            "{} ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers={} drop={}",
            source_description(uri),
            if live { 2 } else { 8 },
            live
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| open_err(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| open_err("not a pipeline".into()))?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| open_err("appsink missing".into()))?;
        pipeline.set_state(gst::State::Playing).map_err(|e| {
            let msg = first_bus_error(&pipeline).unwrap_or_else(|| e.to_string());
            let _ = pipeline.set_state(gst::State::Null);
            open_err(msg)
        })?;
        // Wait for PLAYING (or PAUSED for sinks that preroll) or an error.
        let (res, state, _) =
            pipeline.state(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64));
        if res.is_err() || (state != gst::State::Playing && state != gst::State::Paused) {
            let msg = first_bus_error(&pipeline)
                .unwrap_or_else(|| format!("did not start within {timeout:?}"));
            let _ = pipeline.set_state(gst::State::Null);
            return Err(open_err(msg));
        }
        let min_interval =
            (max_fps > 0.0).then(|| Duration::from_secs_f64(1.0 / f64::from(max_fps)));
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
        })
    }

    /// Whether the source is live (capture time from the wall clock).
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The configured URI.
    #[must_use]
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Next frame; `Ok(None)` at the end of the stream. Waits at most `timeout` for a frame
    /// and reports a stall as an error.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, IngestError> {
        loop {
            let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
            else {
                if self.sink.is_eos() {
                    return Ok(None);
                }
                if let Some(msg) = first_bus_error(&self.pipeline) {
                    return Err(IngestError::Stream {
                        camera: self.camera.clone(),
                        message: msg,
                    });
                }
                return Err(IngestError::Stream {
                    camera: self.camera.clone(),
                    message: format!("no frame for {timeout:?}; the stream has stalled"),
                });
            };
            let index = self.next_index;
            self.next_index += 1;
            let stream_err = |message: String| IngestError::Stream {
                camera: self.camera.clone(),
                message,
            };
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
            let captured_at = if self.live {
                Utc::now()
            } else {
                self.opened_at + chrono::Duration::from_std(pts).unwrap_or_default()
            };
            return Ok(Some(Frame {
                camera: self.camera.clone(),
                index,
                pts,
                captured_at,
                image: RgbFrame {
                    width: w,
                    height: h,
                    data,
                },
            }));
        }
    }
}

impl Drop for FrameSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn first_bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(err) = msg.view() {
            return Some(err.error().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_become_file_uris_and_v4l2_uses_its_device() {
        assert!(source_description("/tmp/a.mp4").contains("uri=\"file:///tmp/a.mp4\""));
        assert!(source_description("v4l2:///dev/video0").starts_with("v4l2src device=/dev/video0"));
        assert!(source_description("rtsp://10.0.0.1/s").contains("rtsp://10.0.0.1/s"));
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
            last = Some(f.captured_at);
            n += 1;
        }
        assert_eq!(n, 10);
        std::fs::remove_dir_all(&dir).ok();
    }
}
