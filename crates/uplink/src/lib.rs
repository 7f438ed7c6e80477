//! Delivery of queued events to the central side over MQTT.
//!
//! Contract: the SQLite queue ([`anpr_store`]) is the only record of what is delivered. The
//! uplink reads undelivered rows in sequence order, publishes each (QoS 1) as a
//! [`Delivery`] carrying the original `captured_at`, `sent_at` and whether it was delayed,
//! and marks a row delivered only when the central receiver's application-level [`Ack`]
//! for that exact event id and sequence arrives. A broker PUBACK is not taken as delivery
//! (rumqttc does not tie PUBACKs to publishes, and a broker holding a message is not the
//! central side having stored it). Rows not acknowledged within the ack timeout, and every
//! row in flight when the link drops, are sent again: delivery is at least once, and the
//! receiver deduplicates by event id. The uplink never exits on a link failure; it keeps
//! reconnecting while the recorder goes on queueing.
//!
//! The uplink runs on tokio; its SQLite calls are short single-row statements on its own
//! connection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anpr_store::{AckOutcome, Store};
use anpr_types::{Ack, Delivery, Topics};
use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::watch;

/// Errors that stop the uplink (link failures never do).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UplinkError {
    #[error(transparent)]
    Store(#[from] anpr_store::StoreError),
}

/// Settings of the uplink.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub topics: Topics,
    pub queue: PathBuf,
    pub ack_timeout: Duration,
    pub max_inflight: usize,
}

/// What the uplink should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver as events arrive.
    Run,
    /// Deliver what is queued, then stop (or stop at the deadline with rows still queued).
    Drain { deadline: Instant },
    /// Stop now; undelivered rows stay queued for the next start.
    Stop,
}

/// Live counters, readable while the uplink runs.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicBool,
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub duplicate_acks: AtomicU64,
    pub unknown_acks: AtomicU64,
    pub resent: AtomicU64,
    pub connection_errors: AtomicU64,
}

/// Acknowledged deliveries, reported to whoever watches (the demo prints them).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub seq: u64,
    pub event_id: uuid::Uuid,
    pub plate: String,
    pub vehicle: String,
    pub captured_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    pub acked_at: DateTime<Utc>,
    pub delayed: bool,
}

struct InFlight {
    sent: Instant,
    delivered: Delivered,
}

/// Runs the uplink until `mode` says stop (or a drain completes).
pub async fn run(
    cfg: UplinkConfig,
    mut mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
    delivered_tx: Option<tokio::sync::mpsc::UnboundedSender<Delivered>>,
) -> Result<(), UplinkError> {
    let store = Store::open(&cfg.queue)?;
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_session(true);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_last_will(LastWill::new(
        cfg.topics.health(),
        r#"{"status":"offline"}"#,
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(opts, cfg.max_inflight * 2 + 16);
    let ack_topic = cfg.topics.ack();
    let events_topic = cfg.topics.events();
    let mut inflight: HashMap<u64, InFlight> = HashMap::new();
    let mut connected_since: Option<DateTime<Utc>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let current = *mode.borrow();
        match current {
            Mode::Stop => break,
            Mode::Drain { deadline } => {
                if store.stats()?.pending == 0 || Instant::now() >= deadline {
                    break;
                }
            }
            Mode::Run => {}
        }
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected_since = Some(Utc::now());
                    counters.connected.store(true, Ordering::SeqCst);
                    tracing::info!(broker = %format!("{}:{}", cfg.host, cfg.port), "Uplink connected.");
                    let _ = client.try_subscribe(ack_topic.clone(), QoS::AtLeastOnce);
                    let _ = client.try_publish(cfg.topics.health(), QoS::AtLeastOnce, true, r#"{"status":"online"}"#);
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                    match serde_json::from_slice::<Ack>(&p.payload) {
                        Ok(ack) => match store.mark_delivered(ack.event_id, ack.seq)? {
                            AckOutcome::Marked => {
                                counters.acked.fetch_add(1, Ordering::SeqCst);
                                if let Some(f) = inflight.remove(&ack.seq)
                                    && let Some(tx) = &delivered_tx
                                {
                                    let mut d = f.delivered;
                                    d.acked_at = Utc::now();
                                    let _ = tx.send(d);
                                }
                            }
                            AckOutcome::AlreadyDelivered => {
                                inflight.remove(&ack.seq);
                                counters.duplicate_acks.fetch_add(1, Ordering::SeqCst);
                            }
                            AckOutcome::Unknown => {
                                counters.unknown_acks.fetch_add(1, Ordering::SeqCst);
                                tracing::warn!(event_id = %ack.event_id, seq = ack.seq, "Acknowledgement for an unknown event ignored.");
                            }
                        },
                        Err(e) => tracing::warn!(error = %e, "Malformed acknowledgement ignored."),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if counters.connected.swap(false, Ordering::SeqCst) {
                        tracing::warn!(error = %e, "Uplink lost; events stay queued and are sent again after reconnecting.");
                    } else {
                        tracing::debug!(error = %e, "Uplink still down.");
                    }
                    counters.connection_errors.fetch_add(1, Ordering::SeqCst);
                    connected_since = None;
                    inflight.clear();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = tick.tick() => {
                if let Some(since) = connected_since {
                    pump(&cfg, &store, &client, &events_topic, &mut inflight, since, &counters)?;
                }
            }
            _ = mode.changed() => {}
        }
    }
    let _ = client.try_publish(
        cfg.topics.health(),
        QoS::AtLeastOnce,
        true,
        r#"{"status":"offline"}"#,
    );
    let _ = client.try_disconnect();
    // Let the disconnect go out; bounded so a dead link cannot hold the shutdown.
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}

fn pump(
    cfg: &UplinkConfig,
    store: &Store,
    client: &AsyncClient,
    topic: &str,
    inflight: &mut HashMap<u64, InFlight>,
    connected_since: DateTime<Utc>,
    counters: &Counters,
) -> Result<(), UplinkError> {
    let expired: Vec<u64> = inflight
        .iter()
        .filter(|(_, f)| f.sent.elapsed() >= cfg.ack_timeout)
        .map(|(s, _)| *s)
        .collect();
    for s in expired {
        inflight.remove(&s);
        counters.resent.fetch_add(1, Ordering::SeqCst);
    }
    let room = cfg.max_inflight.saturating_sub(inflight.len());
    if room == 0 {
        return Ok(());
    }
    let candidates: Vec<_> = store
        .pending(0, cfg.max_inflight + inflight.len())?
        .into_iter()
        .filter(|r| !inflight.contains_key(&r.seq))
        .take(room)
        .collect();
    for row in candidates {
        let sent_at = Utc::now();
        let delayed = row.attempts > 0 || row.captured_at < connected_since;
        let delivery = Delivery {
            event: row.event,
            sent_at,
            delayed,
        };
        let payload = serde_json::to_vec(&delivery).expect("events always serialise");
        if client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .is_err()
        {
            break;
        }
        store.note_attempt(row.seq)?;
        counters.published.fetch_add(1, Ordering::SeqCst);
        inflight.insert(
            row.seq,
            InFlight {
                sent: Instant::now(),
                delivered: Delivered {
                    seq: row.seq,
                    event_id: row.event_id,
                    plate: delivery.event.plate.text.clone(),
                    vehicle: delivery.event.vehicle.class.to_string(),
                    captured_at: row.captured_at,
                    sent_at,
                    acked_at: sent_at,
                    delayed,
                },
            },
        );
    }
    Ok(())
}
