//! `anpr demo`: the whole appliance on the synthesised demo clip, with a local broker and the
//! reference central receiver, printing each event as the central side acknowledges it.
//!
//! # Contract
//!
//! - Needs nothing from outside the machine: the clip is drawn here ([`anpr_scene::clip`]), the
//!   broker is a mosquitto started on a free loopback port and stopped at the end, the receiver
//!   runs in this process.
//! - The link is the deployed one: the broker runs the shipped configuration (mutual TLS, the
//!   ACL of `deploy/mosquitto/`); its PKI is made once in `pki/` beside the clip (`var/demo/pki`,
//!   `var/scene/pki`) and kept, with the device's identity issued there the first time; the
//!   device and the receiver log in with their certificates. The same PKI holds the signing
//!   keys: the device's (made with its identity, the first time), with which it signs every
//!   event, and the receiver's, with which it signs every acknowledgement; the device's
//!   `[security]` is pointed at them.
//! - The device is the real one ([`anpr_pipeline::run`]) with the demo configuration, its queue
//!   on disk: with [`Start::Fresh`], the queue and the receiver's database are removed first,
//!   but only when the queue holds nothing undelivered (otherwise the demo refuses to start,
//!   [`Undelivered`], and removes nothing); [`Start::DiscardUndelivered`] removes them even
//!   then; with [`Start::Keep`], what they hold from earlier runs is kept and delivered.
//! - A failure to prepare (configuration, clip, broker, signal-loss simulator) or to start the
//!   device is an [`anpr_pipeline::StartError`]; nothing was recorded.
//! - The input is the demo clip ([`Input::Clip`]: vehicles one after the other) or the road
//!   scene ([`Input::Scene`]: two lanes, a plate list and one rule of each kind, with the
//!   violations each vehicle must raise).
//! - The device's status page and metrics (`[status]`, see `anpr_status`) are served while
//!   the device runs, and stop with it; a port already taken leaves the demo without them.
//! - The outcome says which of the input's plates the receiver stored with the right text, and
//!   the violations it stored by rule beside those the input's truth expects; the demo itself
//!   does not judge them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anpr_central::CentralConfig;
use anpr_pipeline::{DeviceCounters, RunOptions, StartError, Summary};
use std::collections::BTreeMap;

use anpr_scene::clip::ensure_clip;
use anpr_scene::road::ensure_scene;
use anpr_testkit::{BrokerOptions, BrokerPki, Mosquitto};
use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

/// What the demo runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The demo clip: vehicles with Kazakhstan plates, one after the other.
    Clip,
    /// The road scene: two lanes, side by side and tailgating, no plate, a stop, the wrong way.
    Scene,
}

/// What the input shows, as far as the demo checks it.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub frames: u64,
    /// Plates of the vehicles that carry one.
    pub plates: Vec<String>,
    /// Vehicles in all, with and without plates.
    pub vehicles: usize,
    /// Violations the input must raise, by rule.
    pub violations: BTreeMap<String, u64>,
}

/// Outcome of a demo run.
#[derive(Debug)]
pub struct DemoOutcome {
    pub summary: Summary,
    pub truth: Truth,
    /// Violations the central receiver stored, by rule.
    pub violations: BTreeMap<String, u64>,
    /// Plate texts of the passages the central receiver stored, in sequence order (empty for a
    /// plate that could not be read).
    pub received: Vec<String>,
    /// How many of the clip's plates arrived with the right text.
    pub matched: usize,
    /// Deliveries marked delayed (captured while the link was down, or sent again).
    pub delayed: usize,
    /// What the central receiver holds per device.
    pub report: Vec<anpr_central::DeviceReport>,
}

/// What the demo does with the queue and the receiver's database of an earlier run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Keep them: what the queue still holds is delivered in this run.
    Keep,
    /// Remove them, unless the queue holds events or images not delivered yet (refused then,
    /// with [`Undelivered`]).
    Fresh,
    /// Remove them even if the queue holds undelivered rows: those are lost.
    DiscardUndelivered,
}

/// The demo was asked to start afresh while its queue still holds rows the central side has
/// not acknowledged; nothing was removed.
#[derive(Debug)]
pub struct Undelivered {
    pub queue: PathBuf,
    pub events: u64,
    pub images: u64,
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the demo's queue {} still holds {} event(s) and {} evidence image(s) not delivered to the central receiver, so it was not removed; run `anpr demo --keep` to deliver them, or `anpr demo --discard-undelivered` to throw them away and start afresh",
            self.queue.display(),
            self.events,
            self.images
        )
    }
}

impl std::error::Error for Undelivered {}

/// Removes the queue at `queue` (with its `-wal` and `-shm`) and the receiver's database at
/// `central_db` as `start` says; refuses ([`Undelivered`]) to remove a queue that holds rows
/// not delivered yet unless `start` is [`Start::DiscardUndelivered`].
fn reset(queue: &Path, central_db: &Path, start: Start) -> Result<()> {
    if start == Start::Keep {
        return Ok(());
    }
    if queue.exists() {
        let store = anpr_store::Store::open(queue)
            .with_context(|| format!("cannot read the demo's queue {}", queue.display()))?;
        let (events, images) = (store.pending_count()?, store.pending_evidence_count()?);
        drop(store);
        if events + images > 0 {
            if start == Start::Fresh {
                return Err(Undelivered {
                    queue: queue.to_path_buf(),
                    events,
                    images,
                }
                .into());
            }
            println!(
                "demo: discarding {events} event(s) and {images} image(s) never delivered from {}",
                queue.display()
            );
        }
    }
    for p in [queue, central_db] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    }
    Ok(())
}

/// A simulated link between the device and the broker.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub script: anpr_netsim::Script,
    pub time_scale: f64,
}

/// Runs the demo with the config at `config_path` (whose camera is the demo clip), optionally
/// through the signal-loss simulator.
#[allow(clippy::print_stdout)]
pub async fn run(
    config_path: &Path,
    input: Input,
    start: Start,
    link: Option<LinkOptions>,
) -> Result<DemoOutcome> {
    let Prepared {
        cfg,
        truth,
        central_db,
        broker,
        proxy,
    } = prepare(config_path, input, start, link.as_ref())
        .await
        .map_err(StartError::from)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let central_cfg = CentralConfig {
        host: "127.0.0.1".into(),
        port: broker.port(),
        prefix: cfg.uplink.topic_prefix.clone(),
        db: central_db.clone(),
        client_id: "anpr-central".into(),
        tls: Some(anpr_pki::ClientTls::load(
            &broker
                .central_tls()
                .context("the demo's broker runs with TLS")?,
        )?),
        // The central side's keys of the demo's PKI: its signing key, and the devices
        // directory the device's public key was copied into when it was issued.
        signing_key: anpr_trust::load_signing_key_as(
            "central private key",
            &broker.pki().central().signing_key,
        )?,
        devices: broker.pki().central().device_keys,
    };
    let central = tokio::spawn(anpr_central::run(central_cfg, stop_rx, None));
    println!(
        "demo: central receiver storing into {}",
        central_db.display()
    );

    let counters = Arc::new(DeviceCounters::default());
    let uplink = Arc::new(anpr_uplink::Counters::default());
    let (dtx, mut drx) = mpsc::unbounded_channel::<anpr_uplink::Delivered>();
    let printer = tokio::spawn(async move {
        let mut delayed = 0usize;
        while let Some(d) = drx.recv().await {
            delayed += usize::from(d.delayed);
            let link = (d.acked_at - d.sent_at).num_milliseconds() as f64 / 1000.0;
            let what = match &d.rule {
                Some((rule, reason)) => format!("VIOLATION #{:<3} {rule} ({reason})\n  ", d.seq),
                None => format!("DELIVERED #{:<3} ", d.seq),
            };
            println!(
                "{what}plate {:<12} vehicle {:<8} {:<8} captured {}  delivered {}  (sent to acknowledged {link:.3} s{})",
                d.plate,
                d.vehicle,
                d.direction.as_deref().unwrap_or(""),
                d.captured_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                d.acked_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                if d.delayed {
                    ", replayed after an outage"
                } else {
                    ""
                }
            );
        }
        delayed
    });
    let link_printer = proxy.as_ref().map(|p| {
        let transitions = p.transitions_handle();
        tokio::spawn(async move {
            let mut shown = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let all = transitions.lock().map(|t| t.clone()).unwrap_or_default();
                for t in all.iter().skip(shown) {
                    println!("link: {:>6.1} s  {}", t.at.as_secs_f64(), t.condition);
                }
                shown = all.len();
            }
        })
    });
    let progress = {
        let (c, u, total) = (counters.clone(), uplink.clone(), truth.frames);
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let f = c.frames.load(Ordering::Relaxed);
                println!(
                    "progress: frame {f}/{total} ({:.0}%), {:.1} fps, plates read {}, events {}, delivered {}",
                    f as f64 * 100.0 / total.max(1) as f64,
                    f as f64 / start.elapsed().as_secs_f64(),
                    c.plate_reads.load(Ordering::Relaxed),
                    c.events.load(Ordering::Relaxed),
                    u.acked.load(Ordering::Relaxed)
                );
            }
        })
    };
    // The status page, while the device runs (it ends with the clip).
    let status = match anpr_status::start(&cfg, counters.clone(), uplink.clone()).await {
        Ok(Some(server)) => {
            println!(
                "demo: status page on {} (metrics: {}metrics) while the clip plays",
                server.url, server.url
            );
            Some(server)
        }
        Ok(None) => None,
        Err(e) => {
            println!("demo: status page not served: {e}");
            None
        }
    };
    let opts = RunOptions {
        drain_timeout: Duration::from_secs(30),
        delivered: Some(dtx),
        counters,
        uplink,
    };
    let summary = anpr_pipeline::run(cfg.clone(), opts).await;
    drop(status);
    progress.abort();
    if let Some(t) = link_printer {
        t.abort();
    }
    drop(proxy);
    let delayed = printer.await.unwrap_or(0);
    let _ = stop_tx.send(true);
    central.await.context("central receiver task failed")??;
    drop(broker);
    let summary = summary?;
    let receiver = anpr_central::Receiver::open(&central_db)?;
    let received: Vec<String> = receiver
        .events_of(&cfg.device.inventory)?
        .into_iter()
        .filter(|d| d.event.kind == anpr_types::EventKind::Passage)
        .map(|d| d.event.plate.text)
        .collect();
    let matched = truth.plates.iter().filter(|p| received.contains(p)).count();
    let mut violations = BTreeMap::new();
    for v in receiver.violations_of(&cfg.device.inventory)? {
        let rule = v.detail.map_or_else(|| "unspecified".into(), |d| d.rule);
        *violations.entry(rule).or_default() += 1;
    }
    let report = receiver.report()?;
    Ok(DemoOutcome {
        summary,
        truth,
        violations,
        received,
        matched,
        delayed,
        report,
    })
}

/// What the demo has ready before the device starts.
struct Prepared {
    /// The demo configuration, its uplink pointed at the broker (or the simulator before it).
    cfg: anpr_config::Config,
    truth: Truth,
    /// The central receiver's database.
    central_db: PathBuf,
    broker: Mosquitto,
    proxy: Option<anpr_netsim::Proxy>,
}

/// The demo's preparation: its configuration, the clip, a fresh start when asked, the broker and
/// the signal-loss simulator in front of it.
#[allow(clippy::print_stdout)]
async fn prepare(
    config_path: &Path,
    input: Input,
    start: Start,
    link: Option<&LinkOptions>,
) -> Result<Prepared> {
    let mut cfg = anpr_config::load(config_path)?;
    let clip = PathBuf::from(&cfg.cameras[0].uri);
    let var = clip
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&var).with_context(|| format!("cannot create {}", var.display()))?;
    let truth = match input {
        Input::Clip => {
            println!("demo: preparing the demo clip {}", clip.display());
            let m = ensure_clip(&clip)?;
            println!(
                "demo: {} frames of {}x{} at {} fps, {} vehicles with Kazakhstan plates",
                m.frames,
                m.width,
                m.height,
                m.fps,
                m.vehicles.len()
            );
            Truth {
                frames: m.frames,
                plates: m.vehicles.iter().map(|v| v.plate.clone()).collect(),
                vehicles: m.vehicles.len(),
                violations: BTreeMap::new(),
            }
        }
        Input::Scene => {
            println!("demo: preparing the road scene {}", clip.display());
            let m = ensure_scene(&clip)?;
            let mut violations = BTreeMap::new();
            for rule in m.vehicles.iter().flat_map(|v| &v.violations) {
                *violations.entry(rule.clone()).or_default() += 1;
            }
            println!(
                "demo: {} frames of {}x{} at {} fps, {} vehicles in two lanes; violations to find: {}",
                m.frames,
                m.width,
                m.height,
                m.fps,
                m.vehicles.len(),
                violations
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Truth {
                frames: m.frames,
                plates: m.vehicles.iter().filter_map(|v| v.plate.clone()).collect(),
                vehicles: m.vehicles.len(),
                violations,
            }
        }
    };
    let central_db = var.join("central.sqlite");
    reset(&cfg.storage.queue, &central_db, start)?;
    let pki_dir = var.join("pki");
    let pki = BrokerPki::at(&pki_dir)?;
    let device = pki.device(&cfg.device.inventory)?;
    cfg.uplink.tls_ca = Some(device.tls.ca.clone());
    cfg.uplink.tls_cert = Some(device.tls.cert.clone());
    cfg.uplink.tls_key = Some(device.tls.key.clone());
    // The device's signing key and the central side's public key, issued with its identity.
    cfg.security.device_key = device.signing_key.clone();
    cfg.security.central_public_key = device.central_pub.clone();
    let broker = Mosquitto::start_with_pki(BrokerOptions::default(), pki)?;
    println!(
        "demo: mosquitto broker on {} (mutual TLS and the ACL of deploy/mosquitto/; certificates in {})",
        broker.url(),
        pki_dir.display()
    );
    cfg.uplink.broker = broker.url();
    let proxy = match link {
        Some(l) => {
            let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], broker.port()));
            let p = anpr_netsim::Proxy::start(
                "127.0.0.1:0".parse()?,
                upstream,
                l.script.clone(),
                l.time_scale,
                Duration::from_hours(1),
            )
            .await?;
            println!(
                "demo: the device reaches the broker through the signal-loss simulator on {} ({} s per pass, time scale {})",
                p.local_addr(),
                l.script.length().as_secs_f64(),
                l.time_scale
            );
            cfg.uplink.broker = format!("mqtts://{}", p.local_addr());
            Some(p)
        }
        None => None,
    };
    Ok(Prepared {
        cfg,
        truth,
        central_db,
        broker,
        proxy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue at `dir/queue.sqlite` with three events, `delivered` of them acknowledged, and
    /// a receiver's database beside it.
    fn queue(dir: &Path, delivered: u64) -> (PathBuf, PathBuf) {
        let queue = dir.join("queue.sqlite");
        let mut store = anpr_store::Store::open(&queue).unwrap();
        for seq in 1..=3 {
            let e = store
                .append(|seq| {
                    serde_json::from_value(serde_json::json!({
                        "schema": anpr_types::EVENT_SCHEMA,
                        "event_id": uuid::Uuid::now_v7(),
                        "seq": seq,
                        "device": {"inventory": "KZ-DEMO", "profile": "stationary", "site": ""},
                        "camera": "cam1",
                        "kind": "passage",
                        "captured_at": chrono::Utc::now(),
                        "clock": {"source": "system", "synced": false},
                        "position": null,
                        "vehicle": {"class": "car", "confidence": 0.9, "box": null, "direction": null, "lane": null},
                        "plate": {"text": "123ABC01", "confidence": 0.95,
                                  "detection_confidence": 0.8, "box": [1, 2, 3, 4], "status": "read"},
                        "frame": {"index": seq, "width": 640, "height": 480},
                    }))
                    .unwrap()
                })
                .unwrap();
            if seq <= delivered {
                store.mark_delivered(e.event_id, e.seq).unwrap();
            }
        }
        let central = dir.join("central.sqlite");
        std::fs::write(&central, b"").unwrap();
        (queue, central)
    }

    #[test]
    fn a_fresh_start_refuses_to_delete_a_queue_with_undelivered_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, central) = queue(dir.path(), 1);
        let err = reset(&queue, &central, Start::Fresh).unwrap_err();
        let undelivered = err.downcast_ref::<Undelivered>().expect("typed refusal");
        assert_eq!((undelivered.events, undelivered.images), (2, 0));
        let text = err.to_string();
        assert!(
            text.contains("2 event(s)")
                && text.contains("--keep")
                && text.contains("--discard-undelivered"),
            "{text}"
        );
        assert!(queue.is_file() && central.is_file(), "nothing removed");
        assert_eq!(
            anpr_store::Store::open(&queue)
                .unwrap()
                .pending_count()
                .unwrap(),
            2
        );
        // Kept: nothing is removed and nothing refused.
        reset(&queue, &central, Start::Keep).unwrap();
        assert!(queue.is_file());
        // Asked to discard them: removed.
        reset(&queue, &central, Start::DiscardUndelivered).unwrap();
        assert!(!queue.exists() && !central.exists());
    }

    #[test]
    fn a_fresh_start_deletes_a_queue_whose_rows_are_all_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, central) = queue(dir.path(), 3);
        reset(&queue, &central, Start::Fresh).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            assert!(!PathBuf::from(format!("{}{suffix}", queue.display())).exists());
        }
        assert!(!central.exists());
        // No queue at all: nothing to refuse.
        reset(&queue, &central, Start::Fresh).unwrap();
    }
}
