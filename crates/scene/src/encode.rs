//! Frames into an H.264 MP4 file, through a real GStreamer pipeline:
//! `appsrc ! videoconvert ! x264enc ! mp4mux ! filesink`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::RgbImage;

/// Encodes `frames` frames of `width` x `height` at `fps`, frame `i` drawn by `frame(i)`, into
/// `out`: written to `out` with the extension `mp4.part` and renamed to `out` once the encoder
/// has finished.
pub(crate) fn write_mp4(
    out: &Path,
    (width, height, fps): (u32, u32, u32),
    frames: u64,
    mut frame: impl FnMut(u64) -> RgbImage,
) -> Result<()> {
    gst::init().context("GStreamer could not be initialised; run deploy/setup.sh")?;
    let tmp = out.with_extension("mp4.part");
    let desc = format!(
        "appsrc name=src format=time is-live=false caps=video/x-raw,format=RGB,width={width},height={height},framerate={fps}/1 \
         ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=veryfast tune=zerolatency key-int-max=25 bitrate=6000 \
         ! mp4mux ! filesink location=\"{}\"",
        tmp.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .context("the encoder pipeline could not be built; x264enc comes with gstreamer1.0-plugins-ugly (deploy/setup.sh)")?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .context("appsrc missing")?;
    pipeline.set_state(gst::State::Playing)?;
    let frame_ns = 1_000_000_000 / u64::from(fps);
    for i in 0..frames {
        let img = frame(i);
        let mut buf = gst::Buffer::from_mut_slice(img.into_raw());
        {
            let b = buf.get_mut().context("fresh buffer")?;
            b.set_pts(gst::ClockTime::from_nseconds(i * frame_ns));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
        }
        src.push_buffer(buf)
            .map_err(|e| anyhow::anyhow!("encoder refused a frame: {e:?}"))?;
    }
    src.end_of_stream().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let bus = pipeline.bus().context("pipeline without bus")?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(300),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => bail!("encoding the demo clip failed: {}", e.error()),
        _ => bail!("encoding the demo clip did not finish within 300 s"),
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}
