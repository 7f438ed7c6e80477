//! The clip decoded into RGB frames, played through again and again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::CamsimError;

/// Size and rate of the clip's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipFormat {
    pub width: u32,
    pub height: u32,
    /// Frames per second as a fraction (25/1).
    pub fps: (i32, i32),
}

impl ClipFormat {
    /// Time between two frames.
    #[must_use]
    pub fn frame_interval(&self) -> Duration {
        let (n, d) = self.fps;
        Duration::from_nanos(
            1_000_000_000 * u64::try_from(d.max(1)).unwrap_or(1)
                / u64::try_from(n.max(1)).unwrap_or(1),
        )
    }
}

/// One pass through the clip: `uridecodebin ! videoconvert ! RGB ! appsink`.
pub(crate) struct ClipReader {
    path: PathBuf,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
}

fn open_err(path: &Path, message: impl Into<String>) -> CamsimError {
    CamsimError::Clip {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl ClipReader {
    pub(crate) fn open(path: &Path) -> Result<Self, CamsimError> {
        let abs = std::path::absolute(path).map_err(|e| open_err(path, e.to_string()))?;
        if !abs.is_file() {
            return Err(open_err(path, "file not found"));
        }
        let uri =
            gst::glib::filename_to_uri(&abs, None).map_err(|e| open_err(path, e.to_string()))?;
        let make = |name: &str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|e| open_err(path, format!("{name}: {e}; run deploy/setup.sh")))
        };
        let pipeline = gst::Pipeline::new();
        let src = make("uridecodebin")?;
        src.set_property("uri", uri.as_str());
        let convert = make("videoconvert")?;
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("video/x-raw")
                    .field("format", "RGB")
                    .build(),
            )
            .sync(false)
            .max_buffers(4)
            .build();
        pipeline
            .add_many([&src, &convert, sink.upcast_ref()])
            .map_err(|e| open_err(path, e.to_string()))?;
        convert
            .link(&sink)
            .map_err(|e| open_err(path, e.to_string()))?;
        let convert_weak = convert.downgrade();
        src.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let is_video = pad
                .current_caps()
                .or_else(|| Some(pad.query_caps(None)))
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            if let Some(sinkpad) = convert.static_pad("sink")
                && is_video
                && !sinkpad.is_linked()
                && let Err(e) = pad.link(&sinkpad)
            {
                tracing::warn!(error = ?e, "Clip decoder pad does not link.");
            }
        });
        pipeline.set_state(gst::State::Playing).map_err(|e| {
            open_err(
                path,
                first_error(&pipeline).unwrap_or_else(|| e.to_string()),
            )
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            pipeline,
            sink,
        })
    }

    /// The next frame and its format; `None` at the end of the clip.
    pub(crate) fn next(&mut self) -> Result<Option<(Vec<u8>, ClipFormat)>, CamsimError> {
        let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::from_seconds(10)) else {
            if self.sink.is_eos() {
                return Ok(None);
            }
            return Err(open_err(
                &self.path,
                first_error(&self.pipeline)
                    .unwrap_or_else(|| "no frame decoded within 10 s".into()),
            ));
        };
        let caps = sample
            .caps()
            .ok_or_else(|| open_err(&self.path, "frame without caps"))?;
        let info = gstreamer_video::VideoInfo::from_caps(caps)
            .map_err(|e| open_err(&self.path, e.to_string()))?;
        let fps = info.fps();
        let format = ClipFormat {
            width: info.width(),
            height: info.height(),
            fps: if fps.numer() > 0 {
                (fps.numer(), fps.denom())
            } else {
                (25, 1)
            },
        };
        let buffer = sample
            .buffer()
            .ok_or_else(|| open_err(&self.path, "sample without buffer"))?;
        let map = buffer
            .map_readable()
            .map_err(|e| open_err(&self.path, e.to_string()))?;
        let row = format.width as usize * 3;
        let stride = usize::try_from(info.stride()[0]).unwrap_or(row);
        let mut data = Vec::with_capacity(row * format.height as usize);
        for y in 0..format.height as usize {
            let line = map
                .get(y * stride..y * stride + row)
                .ok_or_else(|| open_err(&self.path, "short frame"))?;
            data.extend_from_slice(line);
        }
        Ok(Some((data, format)))
    }
}

impl Drop for ClipReader {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(err) = msg.view() {
            return Some(err.error().to_string());
        }
    }
    None
}

/// The clip's frames without end: at its end it is opened again from the start.
pub(crate) struct Looping {
    path: PathBuf,
    reader: ClipReader,
    /// Passes completed, and the index of the next frame within the pass.
    pub(crate) pass: u64,
    pub(crate) frame: u64,
}

impl Looping {
    pub(crate) fn open(path: &Path) -> Result<Self, CamsimError> {
        Ok(Self {
            path: path.to_path_buf(),
            reader: ClipReader::open(path)?,
            pass: 0,
            frame: 0,
        })
    }

    /// The next frame: `(pass, index in the clip, pixels, format)`.
    pub(crate) fn next(&mut self) -> Result<(u64, u64, Vec<u8>, ClipFormat), CamsimError> {
        for _ in 0..2 {
            if let Some((data, format)) = self.reader.next()? {
                let at = (self.pass, self.frame);
                self.frame += 1;
                return Ok((at.0, at.1, data, format));
            }
            if self.frame == 0 {
                break;
            }
            self.reader = ClipReader::open(&self.path)?;
            self.pass += 1;
            self.frame = 0;
        }
        Err(open_err(&self.path, "the clip has no video frames"))
    }
}
