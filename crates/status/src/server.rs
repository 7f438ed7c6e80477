//! The HTTP side: an axum router over the [`Sources`], served on a bound listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;

use crate::snapshot::{QueueFigures, Snapshot};
use crate::{QUEUE_READERS, Running, Sources, StatusError};

/// A bound, not yet serving, status server.
#[derive(Debug)]
pub struct StatusServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl StatusServer {
    /// Binds `addr` (port 0: any free port).
    pub async fn bind(addr: SocketAddr) -> Result<Self, StatusError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StatusError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StatusError::Bind { addr, source })?;
        Ok(Self { listener, addr })
    }

    /// The address bound (with the port chosen, for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `sources` on a task of the current tokio runtime until the returned handle is
    /// dropped.
    #[must_use]
    pub fn spawn(self, sources: Sources) -> Running {
        let Self { listener, addr } = self;
        let app = router(sources);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "The status server stopped.");
            }
        });
        tracing::info!(%addr, "Status page served.");
        Running {
            url: format!("http://{addr}/"),
            addr,
            task,
        }
    }
}

#[derive(Clone)]
struct App {
    sources: Arc<Sources>,
    readers: Arc<Semaphore>,
}

/// The routes: `/`, `/metrics`, `/camera/{id}/snapshot.jpg`, `/event/{seq}/plate.jpg`.
pub(crate) fn router(sources: Sources) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/camera/{id}/snapshot.jpg", get(camera_snapshot))
        .route("/event/{seq}/plate.jpg", get(plate_crop))
        .with_state(App {
            sources: Arc::new(sources),
            readers: Arc::new(Semaphore::new(QUEUE_READERS)),
        })
}

/// Every figure now; the queue is read on a blocking thread.
async fn take(app: &App) -> Snapshot {
    let queue = {
        let _turn = app.readers.acquire().await.ok();
        let path = app.sources.queue.clone();
        match tokio::task::spawn_blocking(move || QueueFigures::read(&path)).await {
            Ok(Ok(q)) => Ok(q),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the queue reader failed: {e}")),
        }
    };
    if let Err(e) = &queue {
        tracing::warn!(error = %e, "Status: the queue could not be read.");
    }
    Snapshot::take(&app.sources, queue)
}

const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

async fn page(State(app): State<App>) -> Response {
    let html = crate::page::render(&take(&app).await);
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), NO_STORE],
        html,
    )
        .into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    match crate::metrics::encode(take(&app).await) {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE),
                NO_STORE,
            ],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn jpeg(bytes: Option<Arc<Vec<u8>>>, what: &str) -> Response {
    match bytes {
        Some(b) => (
            [(header::CONTENT_TYPE, "image/jpeg"), NO_STORE],
            b.as_ref().clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no {what}\n")).into_response(),
    }
}

async fn camera_snapshot(State(app): State<App>, Path(id): Path<String>) -> Response {
    let snap = app
        .sources
        .device
        .cameras
        .all()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.snapshot());
    jpeg(snap, "snapshot of this camera")
}

async fn plate_crop(State(app): State<App>, Path(seq): Path<u64>) -> Response {
    jpeg(
        app.sources.device.recent.plate_jpeg(seq),
        "plate crop of this event (only recent events keep one)",
    )
}
