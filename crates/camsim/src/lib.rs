//! A camera without hardware: a clip file served over RTSP as a live camera would serve it.
//!
//! # Contract
//!
//! - [`CameraSim::start`] serves `rtsp://<address>:<port><mount>` (loopback by default) from
//!   gst-rtsp-server: one shared live stream, H.264 in RTP, RTCP on. It returns once the server
//!   listens, or fails naming the clip or the port.
//! - The clip is decoded and played in real time, again and again, whether or not a client
//!   watches (as a camera keeps capturing); a frame is stamped when it is handed to the encoder,
//!   with the running time of the server's pipeline as its timestamp. Frames while no client
//!   plays the stream are dropped.
//! - Time: the server's RTP sessions take the NTP time of their sender reports from the host's
//!   wall clock and map it to the frame's *capture* time (`rtcp-sync-send-time=false`), so the
//!   NTP time a client derives for a frame is the wall time at which it was stamped. Sender
//!   reports go out about once a second.
//! - Truth ([`SimOptions::truth`]): each stamped frame is appended as one JSON line (serial,
//!   pass, frame within the clip, timestamp, wall time; [`TruthRecord`]) and written through at
//!   once, so a simulator killed with SIGKILL leaves every frame it served listed. With
//!   [`SimOptions::mark_frames`] each frame also carries its serial drawn in its top-left corner
//!   ([`mark`]), to tell which frame a decoded image is.
//!
//! # Modules
//!
//! `clip` (the clip decoded, looping), [`mark`] (serial numbers drawn into frames), `truth`
//! (the truth log).

mod clip;
pub mod mark;
mod truth;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

pub use clip::ClipFormat;
pub use truth::{TruthRecord, read_truth};

/// Errors of the camera simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CamsimError {
    #[error(
        "GStreamer could not be initialised: {0}; install the GStreamer runtime (deploy/setup.sh)"
    )]
    Init(String),
    #[error(
        "clip {path}: {message}; give a video file GStreamer can decode (`anpr make-demo` writes one)"
    )]
    Clip { path: PathBuf, message: String },
    #[error(
        "the RTSP server cannot listen on {address}:{port}: {message}; choose another --port (0 picks a free one)"
    )]
    Listen {
        address: String,
        port: u16,
        message: String,
    },
    #[error("truth log {path}: {source}")]
    Truth {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the RTSP server is missing a part: {0}; install gir1.2-gst-rtsp-server-1.0 (deploy/setup.sh)"
    )]
    Server(String),
}

/// What to serve and where.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The clip file.
    pub clip: PathBuf,
    /// Address to listen on; `127.0.0.1` keeps the camera on this machine.
    pub address: String,
    /// TCP port of the RTSP server; 0 picks a free one.
    pub port: u16,
    /// Path of the stream, starting with `/`.
    pub mount: String,
    /// Where to append the truth log, if anywhere.
    pub truth: Option<PathBuf>,
    /// Draw each frame's serial number into its top-left corner ([`mark`]).
    pub mark_frames: bool,
}

impl SimOptions {
    /// Loopback, port `port`, mount `/camera`, no truth log, frames unmarked.
    #[must_use]
    pub fn new(clip: &Path, port: u16) -> Self {
        Self {
            clip: clip.to_path_buf(),
            address: "127.0.0.1".into(),
            port,
            mount: "/camera".into(),
            truth: None,
            mark_frames: false,
        }
    }
}

/// The appsrc of the stream being served now, if a client plays it.
type Feed = Arc<Mutex<Option<gst_app::AppSrc>>>;

/// A running simulated camera; stops when dropped.
pub struct CameraSim {
    url: String,
    format: ClipFormat,
    main_loop: glib::MainLoop,
    server_thread: Option<JoinHandle<()>>,
    feeder: Option<JoinHandle<Result<(), CamsimError>>>,
    stop: Arc<AtomicBool>,
}

impl CameraSim {
    /// Starts serving; returns once the server listens.
    pub fn start(opts: &SimOptions) -> Result<Self, CamsimError> {
        gst::init().map_err(|e| CamsimError::Init(e.to_string()))?;
        let mut frames = clip::Looping::open(&opts.clip)?;
        let first = frames.next()?;
        let format = first.3;
        if opts.mark_frames && !mark::fits(format.width, format.height) {
            return Err(CamsimError::Clip {
                path: opts.clip.clone(),
                message: format!(
                    "frames of {}x{} are too small to carry a mark (at least {}x{})",
                    format.width,
                    format.height,
                    mark::BLOCK * mark::BITS,
                    mark::BLOCK
                ),
            });
        }
        let mut truth = match &opts.truth {
            Some(path) => {
                Some(
                    truth::TruthLog::create(path).map_err(|source| CamsimError::Truth {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let feed: Feed = Arc::default();
        let factory = media_factory(format, &feed);
        let server = rtsp::RTSPServer::new();
        server.set_address(&opts.address);
        server.set_service(&opts.port.to_string());
        server
            .mount_points()
            .ok_or_else(|| CamsimError::Server("mount points".into()))?
            .add_factory(&opts.mount, factory);
        let context = glib::MainContext::new();
        let listen_err = |message: String| CamsimError::Listen {
            address: opts.address.clone(),
            port: opts.port,
            message,
        };
        let source = server
            .attach(Some(&context))
            .map_err(|e| listen_err(e.to_string()))?;
        let port =
            u16::try_from(server.bound_port()).map_err(|_| listen_err("not bound".into()))?;
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let server_thread = {
            let main_loop = main_loop.clone();
            std::thread::Builder::new()
                .name("camsim-rtsp".into())
                .spawn(move || {
                    main_loop.run();
                    source.remove();
                    drop(server);
                })
                .map_err(|e| listen_err(e.to_string()))?
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mark_frames = opts.mark_frames;
        let truth_path = opts.truth.clone().unwrap_or_default();
        let feeder = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("camsim-feed".into())
                .spawn(move || {
                    let interval = format.frame_interval();
                    let started = Instant::now();
                    let first_serial = Utc::now().timestamp_nanos_opt().map_or(0, |ns| {
                        ns.unsigned_abs() / interval.as_nanos().max(1) as u64
                    });
                    let mut next = Some(first);
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let due = started + interval * u32::try_from(n).unwrap_or(u32::MAX);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let (pass, frame, mut data, _) = match next.take() {
                            Some(f) => f,
                            None => frames.next()?,
                        };
                        let serial = first_serial + n;
                        n += 1;
                        if mark_frames {
                            mark::draw(&mut data, format.width, format.height, serial as u32);
                        }
                        let Some((pts, wall)) = push(&feed, data, interval) else {
                            continue;
                        };
                        if let Some(log) = &mut truth {
                            let record = TruthRecord {
                                serial,
                                pass,
                                frame,
                                pts_ns: pts.nseconds(),
                                wall,
                            };
                            log.write(&record).map_err(|source| CamsimError::Truth {
                                path: truth_path.clone(),
                                source,
                            })?;
                        }
                    }
                    Ok(())
                })
                .map_err(|e| listen_err(e.to_string()))?
        };
        let host = if opts.address.contains(':') {
            format!("[{}]", opts.address)
        } else {
            opts.address.clone()
        };
        Ok(Self {
            url: format!("rtsp://{host}:{port}{}", opts.mount),
            format,
            main_loop,
            server_thread: Some(server_thread),
            feeder: Some(feeder),
            stop,
        })
    }

    /// The stream's URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Size and rate of the frames served.
    #[must_use]
    pub fn format(&self) -> ClipFormat {
        self.format
    }

    /// Serves until the clip can no longer be read or the truth log written.
    pub fn wait(mut self) -> Result<(), CamsimError> {
        let outcome = self
            .feeder
            .take()
            .map_or(Ok(()), |f| f.join().unwrap_or(Ok(())));
        self.shutdown();
        outcome
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.main_loop.quit();
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        if let Some(t) = self.server_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CameraSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Hands a frame to the stream being served, stamped with the pipeline's running time now;
/// returns that timestamp and the wall time it stands for, or `None` when no client plays the
/// stream (the frame is dropped).
fn push(
    feed: &Feed,
    data: Vec<u8>,
    duration: Duration,
) -> Option<(gst::ClockTime, chrono::DateTime<Utc>)> {
    let src = feed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()?;
    let pts = src.current_running_time()?;
    let wall = Utc::now();
    let mut buffer = gst::Buffer::from_mut_slice(data);
    {
        let b = buffer.get_mut()?;
        b.set_pts(pts);
        b.set_duration(gst::ClockTime::from_nseconds(duration.as_nanos() as u64));
    }
    src.push_buffer(buffer).ok()?;
    Some((pts, wall))
}

/// One shared live stream fed by the feeder thread: `appsrc ! x264enc ! rtph264pay`. Only
/// numbers taken from the clip go into the description.
fn media_factory(format: ClipFormat, feed: &Feed) -> rtsp::RTSPMediaFactory {
    let (n, d) = format.fps;
    let key_int = (n / d.max(1)).max(1);
    let launch = format!(
        "( appsrc name=src is-live=true format=time do-timestamp=false max-buffers=4 leaky-type=downstream \
           caps=video/x-raw,format=RGB,width={w},height={h},framerate={n}/{d} \
         ! videoconvert ! video/x-raw,format=I420 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key_int} bitrate=4000 \
         ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
        w = format.width,
        h = format.height,
    );
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&launch);
    factory.set_shared(true);
    let feed = feed.clone();
    factory.connect_media_configure(move |_, media| {
        let element = media.element();
        if let Some(pipeline) = element.parent().and_then(|p| p.downcast::<gst::Bin>().ok()) {
            pipeline.connect_element_added(|_, el| configure_rtpbin(el));
        }
        let src = element
            .downcast_ref::<gst::Bin>()
            .and_then(|b| b.by_name("src"))
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok());
        *feed.lock().unwrap_or_else(PoisonError::into_inner) = src;
        let feed = feed.clone();
        media.connect_unprepared(move |_| {
            *feed.lock().unwrap_or_else(PoisonError::into_inner) = None;
        });
    });
    factory
}

/// Sender reports map the NTP (wall) time to the frames' capture time, about once a second.
fn configure_rtpbin(el: &gst::Element) {
    let Some(factory) = el.factory() else {
        return;
    };
    if factory.name() != "rtpbin" {
        return;
    }
    el.set_property("rtcp-sync-send-time", false);
    if let Some(bin) = el.downcast_ref::<gst::Bin>() {
        bin.connect_element_added(|_, child| {
            if child.factory().is_some_and(|f| f.name() == "rtpsession")
                && child.find_property("rtcp-min-interval").is_some()
            {
                child.set_property("rtcp-min-interval", 1_000_000_000u64);
            }
        });
    }
}
