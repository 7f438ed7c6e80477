//! `/metrics`: a [`Snapshot`] in the OpenMetrics text format, encoded by `prometheus-client`.
//!
//! The figures live in the pipeline, the uplink and the queue; a [`Collector`] reads them from
//! the snapshot at each scrape instead of copying them into metric objects as they change, so
//! nothing on the recording path knows about Prometheus. Counters get the `_total` suffix in
//! the output. Names and meanings are listed in `docs/status.md`.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::snapshot::Snapshot;

/// The content type of what [`encode`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The camera states, each a sample of `anpr_camera_state` (1 for the current one).
const CAMERA_STATES: [&str; 5] = ["starting", "live", "reconnecting", "frozen", "ended"];

/// Every figure of `snapshot` in the OpenMetrics text format.
pub fn encode(snapshot: Snapshot) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(View(snapshot)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct View(Snapshot);

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

fn gauge<V: EncodeGaugeValue + Copy>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: V,
) -> fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn counters<'a>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
    }
    Ok(())
}

fn gauges<'a, V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

/// A label set of one camera.
fn cam(id: &str) -> Labels<'_> {
    vec![("camera", id)]
}

impl Collector for View {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let snap = &self.0;
        let e = &mut e;
        let cams = &snap.cameras;

        counters(
            e,
            "anpr_camera_frames_in",
            "Frames decoded from the camera's source.",
            cams.iter().map(|c| (cam(&c.id), c.frames_in)),
        )?;
        counters(
            e,
            "anpr_camera_frames_recognised",
            "Frames of the camera run through the recognizer.",
            cams.iter().map(|c| (cam(&c.id), c.frames_recognised)),
        )?;
        counters(
            e,
            "anpr_camera_frames_dropped",
            "Frames of a live camera dropped because recognition was behind.",
            cams.iter().map(|c| (cam(&c.id), c.frames_dropped)),
        )?;
        counters(
            e,
            "anpr_camera_reconnects",
            "Times the camera's source was opened again after a failure.",
            cams.iter().map(|c| (cam(&c.id), c.reconnects)),
        )?;
        gauges(
            e,
            "anpr_camera_fps",
            "Frames decoded per second over about the last second.",
            cams.iter().map(|c| (cam(&c.id), c.fps)),
        )?;
        gauges(
            e,
            "anpr_camera_last_frame_age_seconds",
            "Seconds since the capture time of the camera's latest frame (absent before the first).",
            cams.iter()
                .filter_map(|c| c.last_frame.map(|at| (cam(&c.id), snap.age_s(at)))),
        )?;
        gauges(
            e,
            "anpr_camera_state",
            "The camera's state: 1 for the state it is in, 0 for the others.",
            cams.iter().flat_map(|c| {
                CAMERA_STATES.iter().map(move |st| {
                    (
                        vec![("camera", c.id.as_str()), ("state", *st)],
                        i64::from(c.state.state.as_str() == *st),
                    )
                })
            }),
        )?;
        {
            let mut m = e.encode_descriptor(
                "anpr_stage_latency_seconds",
                "Time a frame spent in each stage: wait (decoder to recognition), recognise (detection and reading), track (tracker step), record (rules, evidence, synced queue append; per passage).",
                None,
                MetricType::Histogram,
            )?;
            for c in cams {
                for (stage, h) in &c.latency {
                    let labels = vec![("camera", c.id.as_str()), ("stage", stage.as_str())];
                    m.encode_family(&labels)?
                        .encode_histogram::<NoLabelSet>(h.sum_s, h.count, &h.buckets, None)?;
                }
            }
        }

        let dev = &snap.device;
        counter(
            e,
            "anpr_frames_recognised",
            "Frames recognised, all cameras, this run.",
            dev.frames_recognised,
        )?;
        counter(
            e,
            "anpr_frames_skipped",
            "Frames decoded but not recognised (idle_every, track_every), this run.",
            dev.frames_skipped,
        )?;
        counter(
            e,
            "anpr_plate_reads",
            "Plates read in frames (one per frame and plate), this run.",
            dev.plate_reads,
        )?;
        counter(
            e,
            "anpr_plates_confirmed",
            "Of the plates read, those confirmed from the reader's first view as the text their vehicle's track had read before (models.known_plate_reads), this run.",
            dev.plates_confirmed,
        )?;
        counter(
            e,
            "anpr_events_recorded",
            "Events (passages and violations) recorded into the queue, this run.",
            dev.events,
        )?;
        counter(
            e,
            "anpr_violations_recorded",
            "Violation events recorded, this run.",
            dev.violations,
        )?;
        counter(
            e,
            "anpr_recognition_restarts",
            "Recognition workers that failed and were started again, this run.",
            dev.recognition_restarts,
        )?;
        counter(
            e,
            "anpr_list_updates",
            "Plate-list updates from the central side put in force, this run.",
            dev.list_updates,
        )?;
        counter(
            e,
            "anpr_list_updates_refused",
            "Plate-list updates from the central side refused, this run.",
            dev.list_updates_refused,
        )?;

        let link = &snap.link;
        gauge(
            e,
            "anpr_uplink_connected",
            "1 while the link to the broker is up.",
            i64::from(link.connected),
        )?;
        counter(
            e,
            "anpr_uplink_events_published",
            "Events published to the broker, this run (resends included).",
            link.published,
        )?;
        counter(
            e,
            "anpr_uplink_events_acked",
            "Events acknowledged by the central receiver, this run.",
            link.acked,
        )?;
        counter(
            e,
            "anpr_uplink_bad_acks",
            "Acknowledgements refused for a missing or bad signature (or naming another device), this run.",
            link.bad_acks,
        )?;
        counter(
            e,
            "anpr_uplink_events_resent",
            "Events sent again after no acknowledgement or a reconnect, this run.",
            link.resent,
        )?;
        counter(
            e,
            "anpr_uplink_connection_errors",
            "Connection errors of the link, this run.",
            link.connection_errors,
        )?;
        counter(
            e,
            "anpr_uplink_images_published",
            "Evidence images published, this run.",
            link.images_published,
        )?;
        counter(
            e,
            "anpr_uplink_images_acked",
            "Evidence images acknowledged, this run.",
            link.images_acked,
        )?;
        counter(
            e,
            "anpr_uplink_health_published",
            "Health messages published, this run.",
            link.health_published,
        )?;

        if let Some(g) = &snap.gnss {
            gauge(
                e,
                "anpr_gnss_fix",
                "GNSS fix of a mobile unit: 3 (3D), 2 (2D) or 0 (none within stale_after_s).",
                match g.fix {
                    "3d" => 3i64,
                    "2d" => 2,
                    _ => 0,
                },
            )?;
            gauge(
                e,
                "anpr_gnss_satellites",
                "Satellites used in the newest GNSS fix (0 before the first).",
                i64::from(g.satellites.unwrap_or(0)),
            )?;
            counter(
                e,
                "anpr_gnss_malformed_lines",
                "Lines from the GNSS source that could not be used, this run.",
                g.malformed,
            )?;
        }
        gauge(
            e,
            "anpr_queue_up",
            "1 when the queue could be read for this scrape.",
            i64::from(snap.queue.is_ok()),
        )?;
        if let Ok(q) = &snap.queue {
            gauge(
                e,
                "anpr_queue_pending_events",
                "Events recorded and not yet acknowledged by the central receiver.",
                q.stats.pending,
            )?;
            gauge(
                e,
                "anpr_queue_pending_evidence",
                "Evidence images not yet acknowledged (nor dropped).",
                q.pending_evidence,
            )?;
            gauge(
                e,
                "anpr_queue_oldest_pending_age_seconds",
                "Seconds since the capture time of the oldest undelivered event; 0 when nothing is waiting.",
                q.oldest_pending.map_or(0.0, |o| snap.age_s(o.captured_at)),
            )?;
            counter(
                e,
                "anpr_queue_events_accepted",
                "Events ever accepted into the queue (the last sequence number).",
                q.stats.last_seq,
            )?;
            counter(
                e,
                "anpr_queue_events_delivered",
                "Events ever acknowledged by the central receiver (present and pruned).",
                q.delivered_total(),
            )?;
            counters(
                e,
                "anpr_queue_events_dropped",
                "Undelivered events dropped by the disk quota, ever.",
                [
                    (vec![("kind", "passage")], q.drops.passages),
                    (vec![("kind", "violation")], q.drops.violations),
                ],
            )?;
            counters(
                e,
                "anpr_queue_evidence_dropped",
                "Evidence images of undelivered events dropped by the disk quota, ever.",
                [
                    (vec![("kind", "passage")], q.drops.passage_evidence),
                    (vec![("kind", "violation")], q.drops.violation_evidence),
                ],
            )?;
            gauge(
                e,
                "anpr_queue_bytes",
                "Bytes of the queue database in use (what the quota measures).",
                q.bytes_used,
            )?;
        }
        if let Some(quota) = snap.quota_bytes {
            gauge(
                e,
                "anpr_queue_quota_bytes",
                "The queue's disk quota.",
                quota,
            )?;
        }

        let mut by_code: Vec<(&str, i64)> = Vec::new();
        for f in &snap.faults {
            match by_code.iter_mut().find(|(c, _)| *c == f.code) {
                Some((_, n)) => *n += 1,
                None => by_code.push((f.code.as_str(), 1)),
            }
        }
        gauges(
            e,
            "anpr_faults_active",
            "Faults present now, by code (a lasting fault until cleared, one that happened for 10 minutes).",
            by_code
                .into_iter()
                .map(|(code, n)| (vec![("code", code)], n)),
        )?;
        Ok(())
    }
}
