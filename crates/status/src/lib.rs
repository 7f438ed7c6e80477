//! The device's status page and Prometheus metrics, served over HTTP beside the running device.
//!
//! # Contract
//!
//! - **What is served.** `GET /` is the status page: server-rendered HTML, readable without
//!   JavaScript, refreshing itself every [`REFRESH_S`] seconds; every value on it is escaped.
//!   `GET /metrics` is every figure in the OpenMetrics text format (which Prometheus scrapes).
//!   `GET /camera/<id>/snapshot.jpg` is a camera's latest snapshot and
//!   `GET /event/<seq>/plate.jpg` the plate crop of a recent event; both 404 when absent.
//!   Nothing else; no request changes anything on the device.
//! - **Where the figures come from.** Read at each request, never cached: the pipeline's
//!   [`DeviceCounters`] (per camera state, counters, frame rate, stage latencies, snapshot,
//!   recent events), the uplink's [`anpr_uplink::Counters`] (link, publishes, faults and their
//!   history) and the SQLite queue (depth, oldest undelivered event, drops). The queue is read
//!   on a blocking thread through a connection of its own (counters kept in its `meta` table
//!   and one indexed row, no scan of payloads), at most [`QUEUE_READERS`] at a time, so a
//!   scrape never stalls the async runtime or the pipeline. A page and a scrape taken at the
//!   same moment show the same figures; figures that move (frames, events) can differ between
//!   two requests.
//! - **Where it listens.** `[status] listen`, loopback by default: the page has no login and
//!   must not be exposed beyond the machine without a proxy that adds one.
//! - **Failure.** The server is secondary to recording: when its address cannot be bound,
//!   [`start`] raises a `status-page` fault (on the health channel) and the device runs
//!   without it. A request that cannot read the queue shows the error in place of the queue's
//!   figures (`anpr_queue_up 0` in the metrics) and still shows the rest.
//!
//! # Modules
//!
//! `snapshot` (reading every figure at one moment), `metrics` (the OpenMetrics encoding, with
//! `prometheus-client`), `page` (the HTML, with its escaping), `server` (the axum routes).

mod metrics;
mod page;
mod server;
mod snapshot;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anpr_config::{Config, Tz};
use anpr_pipeline::DeviceCounters;

pub use metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, encode as encode_metrics};
pub use page::{escape, render as render_page};
pub use server::StatusServer;
pub use snapshot::{CameraFigures, QueueFigures, Snapshot};

/// Seconds between two refreshes of the status page in the browser.
pub const REFRESH_S: u32 = 5;
/// Queue reads running at once, at most (more requests wait their turn).
pub const QUEUE_READERS: usize = 2;

/// Everything the page and the metrics read.
#[derive(Debug, Clone)]
pub struct Sources {
    pub inventory: String,
    pub site: String,
    /// The site's time zone, for times shown on the page (metrics use Unix time and seconds).
    pub time_zone: Tz,
    /// The SQLite queue.
    pub queue: PathBuf,
    /// The queue's disk quota in bytes, when one is set.
    pub quota_bytes: Option<u64>,
    pub device: Arc<DeviceCounters>,
    pub uplink: Arc<anpr_uplink::Counters>,
}

impl Sources {
    /// The sources of a device run with configuration `cfg`.
    #[must_use]
    pub fn new(
        cfg: &Config,
        device: Arc<DeviceCounters>,
        uplink: Arc<anpr_uplink::Counters>,
    ) -> Self {
        Self {
            inventory: cfg.device.inventory.clone(),
            site: cfg.device.site.clone(),
            time_zone: cfg.device.time_zone,
            queue: cfg.storage.queue.clone(),
            quota_bytes: cfg.storage.quota_bytes(),
            device,
            uplink,
        }
    }
}

/// Errors of the status server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    #[error(
        "the status page cannot listen on {addr} ([status] listen): {source}; choose a free port in `listen`, or set `enabled = false`"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("[status] listen: {0}")]
    Address(String),
}

/// The status server while it runs; dropping it stops it.
#[derive(Debug)]
pub struct Running {
    /// `http://<address>/`.
    pub url: String,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the status server of a device run as `cfg` says: `Ok(None)` when `[status] enabled`
/// is false. When its address cannot be bound the error is logged, raised as a `status-page`
/// fault (on the health channel) and returned for the caller to show; the device is meant to
/// record without the page. Must be called on a tokio runtime.
pub async fn start(
    cfg: &Config,
    device: Arc<DeviceCounters>,
    uplink: Arc<anpr_uplink::Counters>,
) -> Result<Option<Running>, StatusError> {
    if !cfg.status.enabled {
        return Ok(None);
    }
    let bound = match cfg.status.listen_addr() {
        Ok(addr) => StatusServer::bind(addr).await,
        Err(e) => Err(StatusError::Address(e)),
    };
    match bound {
        Ok(server) => Ok(Some(server.spawn(Sources::new(cfg, device, uplink)))),
        Err(e) => {
            tracing::error!(error = %e, "Status page not served; the device runs without it.");
            uplink.raise_fault("status-page", &e.to_string());
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
