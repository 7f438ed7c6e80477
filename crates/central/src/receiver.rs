//! The MQTT loop: subscribes to every device's events, images and health; takes each message
//! through the topic parser, the device's rate limit and its size cap; hands what passes to
//! the database in small batches, and acknowledges what was committed.

use std::time::{Duration, Instant};

use anpr_types::{Delivery, Topics};
use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::{mpsc, watch};

use crate::escape::Escaped;
use crate::limits::{Admission, Hygiene, Limits};
use crate::topic::TopicKind;
use crate::{CentralConfig, CentralError, Gate, ImageOutcome, Received, Receiver, Stored};

/// Deliveries stored (and acknowledged) together at most.
const BATCH: usize = 256;

/// Largest packet the receiver's MQTT client reads: the most MQTT can encode (256 MiB). A
/// smaller limit would make the client drop the connection on a larger message, and the
/// broker would deliver the same message again on every reconnect, stalling the receiver
/// for every device; read, such a message is refused by its size cap
/// ([`crate::limits`]). The shipped broker refuses packets over 8 MiB before they get here.
pub const MAX_PACKET: usize = 268_435_455;

/// Largest packet the receiver sends (its acknowledgements are a few hundred bytes).
const MAX_OUTGOING: usize = 64 << 10;

/// How often the rate limit's counts are written to the database (and its memory trimmed).
const LIMITS_EVERY: Duration = Duration::from_secs(10);

/// Longest topic kept in a quarantine row, bytes (MQTT allows 64 KiB).
const MAX_TOPIC_KEPT: usize = 256;

/// Runs the receiver with the default [`Limits`] until `stop` turns true; see
/// [`run_with_limits`].
pub async fn run(
    cfg: CentralConfig,
    stop: watch::Receiver<bool>,
    events: Option<mpsc::UnboundedSender<Received>>,
) -> Result<(), CentralError> {
    run_with_limits(cfg, Limits::default(), stop, events).await
}

/// Runs the receiver until `stop` turns true. Each stored event is also sent on `events`.
/// Deliveries are stored in small batches (every 20 ms, or 256 at a time), each batch in one
/// transaction, and acknowledged after its commit.
///
/// Before anything is parsed, each message's topic must be one the receiver takes
/// ([`crate::topic`]), its device must be within its rate and the payload within the cap
/// of its kind (`limits`); a message that is not is not acknowledged: a refused topic or an
/// oversized payload is quarantined with its size (not its bytes), a message over the rate is
/// dropped and counted per device (written every 10 s and at the end).
pub async fn run_with_limits(
    cfg: CentralConfig,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    events: Option<mpsc::UnboundedSender<Received>>,
) -> Result<(), CentralError> {
    if let Some(problem) = Topics::prefix_problem(&cfg.prefix) {
        return Err(CentralError::Prefix {
            prefix: Escaped(&cfg.prefix).to_string(),
            problem,
        });
    }
    let mut receiver = Receiver::open(&cfg.db)?;
    let gate = Gate::new(&cfg)?;
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    if let Some(tls) = &cfg.tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config(),
        )));
    }
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_session(false);
    opts.set_max_packet_size(MAX_PACKET, MAX_OUTGOING);
    let (client, mut eventloop) = AsyncClient::new(opts, 4 * BATCH);
    let filter = Topics::all_events(&cfg.prefix);
    let images = Topics::all_evidence(&cfg.prefix);
    let health = Topics::all_health(&cfg.prefix);
    let mut batch: Vec<(Delivery, DateTime<Utc>)> = Vec::new();
    let mut hygiene = Hygiene::new(&cfg.prefix, limits);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut limits_tick = tokio::time::interval(LIMITS_EVERY);
    limits_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let link = Link {
        client: &client,
        gate: &gate,
        prefix: &cfg.prefix,
        events: events.as_ref(),
    };
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(filter = %filter, "Central receiver subscribed.");
                    for f in [&filter, &images, &health] {
                        let _ = client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = Utc::now();
                    let size = p.payload.len();
                    let t = match hygiene.admit(&p.topic, size, Instant::now(), now) {
                        Admission::Take(t) => t,
                        Admission::Drop { inventory, log, since_log } => {
                            if log {
                                tracing::warn!(
                                    inventory = %Escaped(inventory), dropped = since_log,
                                    rate = limits.device_rate, burst = limits.device_burst,
                                    "Device over its message rate: messages dropped unread and not acknowledged (the device sends them again); logged once a minute."
                                );
                            }
                            continue;
                        }
                        Admission::Refuse { inventory, event_id, reason } => {
                            tracing::warn!(topic = %Escaped(&p.topic), size, reason = %reason, "Message refused unread (its topic, or its size): quarantined, not acknowledged.");
                            receiver.quarantine_unread(inventory, kept_topic(&p.topic), event_id, &reason, size, now)?;
                            continue;
                        }
                    };
                    match t.kind {
                        TopicKind::Health => {
                            let raw = String::from_utf8_lossy(&p.payload);
                            receiver.store_health(t.inventory, &raw, now)?;
                        }
                        TopicKind::Evidence { event_id, kind } => {
                            // Events first, so an image's event is stored before the image is checked.
                            link.flush(&mut receiver, &mut batch)?;
                            link.receive_image(&mut receiver, t.inventory, event_id, kind, &p.payload)?;
                        }
                        TopicKind::Events => {
                            receive_event(&mut receiver, &gate, &p.topic, t.inventory, &p.payload, &mut batch, now)?;
                            if batch.len() >= BATCH {
                                link.flush(&mut receiver, &mut batch)?;
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "Central receiver link down; retrying.");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            },
            _ = tick.tick() => link.flush(&mut receiver, &mut batch)?,
            _ = limits_tick.tick() => receiver.add_rate_limited(&hygiene.take_dropped(Instant::now()))?,
            _ = stop.changed() => {}
        }
    }
    link.flush(&mut receiver, &mut batch)?;
    receiver.add_rate_limited(&hygiene.take_dropped(Instant::now()))?;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}

/// At most [`MAX_TOPIC_KEPT`] bytes of a topic, cut at a character boundary.
fn kept_topic(topic: &str) -> &str {
    let mut end = topic.len().min(MAX_TOPIC_KEPT);
    while !topic.is_char_boundary(end) {
        end -= 1;
    }
    &topic[..end]
}

/// Parses an event that arrived on `topic` (of device `topic_inventory`) and checks it: one
/// that may be stored joins `batch`, one refused by the gate is quarantined, one that follows
/// no schema is logged and left out.
fn receive_event(
    receiver: &mut Receiver,
    gate: &Gate,
    topic: &str,
    topic_inventory: &str,
    payload: &[u8],
    batch: &mut Vec<(Delivery, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<(), CentralError> {
    let raw = String::from_utf8_lossy(payload);
    // The broker's ACL lets a device publish only under its own inventory (its certificate's
    // CN); an event naming another device in its payload is not stored or acknowledged as
    // that device's. Nor is one its device's key did not sign (`Gate::refusal`): both are
    // quarantined, with the reason, and reported.
    match serde_json::from_str::<Delivery>(&raw) {
        Ok(d) => match gate.refusal(topic_inventory, &d) {
            None => batch.push((d, now)),
            Some(reason) => {
                tracing::warn!(topic = %Escaped(topic), seq = d.event.seq, reason = %Escaped(&reason), "Event refused: quarantined, not stored, not acknowledged.");
                receiver.quarantine(topic_inventory, kept_topic(topic), &d, &reason, now)?;
            }
        },
        Err(e) => {
            tracing::warn!(topic = %Escaped(topic), error = %Escaped(&e.to_string()), "Event that does not follow the schema rejected.");
        }
    }
    Ok(())
}

/// What the loop answers through: the MQTT client, the gate that signs, the prefix, and
/// where stored events are reported.
struct Link<'a> {
    client: &'a AsyncClient,
    gate: &'a Gate,
    prefix: &'a str,
    events: Option<&'a mpsc::UnboundedSender<Received>>,
}

impl Link<'_> {
    /// Stores one evidence image of the event `event_id` of device `inventory` (its kind
    /// `kind`, already checked by the topic parser) and acknowledges it when stored.
    fn receive_image(
        &self,
        receiver: &mut Receiver,
        inventory: &str,
        event_id: uuid::Uuid,
        kind: &str,
        data: &[u8],
    ) -> Result<(), CentralError> {
        match receiver.store_image(event_id, kind, data, Utc::now())? {
            ImageOutcome::Stored { seq, .. } => {
                let ack =
                    self.gate
                        .image_ack(inventory, seq, event_id, &anpr_store::sha256_hex(data));
                let body = serde_json::to_vec(&ack).expect("acks always serialise");
                let _ = self.client.try_publish(
                    Topics::ack_for(self.prefix, inventory),
                    QoS::AtLeastOnce,
                    false,
                    body,
                );
            }
            ImageOutcome::UnknownEvent => {
                tracing::warn!(%event_id, kind, "Evidence image for an event not stored here; not acknowledged.");
            }
            ImageOutcome::Mismatch => {
                tracing::warn!(%event_id, kind, "Evidence image does not match its event's sha256 or size; not acknowledged.");
            }
        }
        Ok(())
    }

    /// Commits the batch, then acknowledges every delivery in it that was stored (now or
    /// before), with a signed ack over its hash; one refused (a chain break) is not
    /// acknowledged.
    fn flush(
        &self,
        receiver: &mut Receiver,
        batch: &mut Vec<(Delivery, DateTime<Utc>)>,
    ) -> Result<(), CentralError> {
        if batch.is_empty() {
            return Ok(());
        }
        let items: Vec<(&Delivery, DateTime<Utc>)> = batch.iter().map(|(d, t)| (d, *t)).collect();
        let fresh = receiver.store_batch(&items)?;
        for ((d, received_at), stored) in batch.drain(..).zip(fresh) {
            let Some(hash) = stored.hash() else {
                continue;
            };
            let new = matches!(stored, Stored::New { .. });
            let ack = self.gate.event_ack(&d, hash);
            let topic = Topics::ack_for(self.prefix, &d.event.device.inventory);
            let body = serde_json::to_vec(&ack).expect("acks always serialise");
            if self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, body)
                .is_err()
            {
                tracing::warn!(
                    "Acknowledgement could not be queued; the device will send the event again."
                );
            }
            if let Some(tx) = self.events {
                let _ = tx.send(Received {
                    delivery: d,
                    received_at,
                    new,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::watch;

    use crate::{CentralConfig, CentralError};

    #[tokio::test]
    async fn a_prefix_that_is_no_topic_level_stops_the_receiver_at_start_escaped() {
        let dir = tempfile::tempdir().unwrap();
        for (prefix, why) in [
            ("anpr/+", "wildcards"),
            ("", "is empty"),
            ("$SYS", "starts with `$`"),
            ("anpr//v1", "empty level"),
            ("anpr\x1b[31m", "control character"),
        ] {
            let cfg = CentralConfig {
                host: "127.0.0.1".into(),
                port: 1,
                tls: None,
                prefix: prefix.into(),
                db: dir.path().join("c.sqlite"),
                client_id: "t".into(),
                signing_key: anpr_trust::SigningKey::from_bytes(&[7; 32]),
                devices: dir.path().to_path_buf(),
            };
            let (_stop, rx) = watch::channel(false);
            let err = super::run(cfg, rx, None).await.unwrap_err();
            assert!(matches!(err, CentralError::Prefix { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(why) && !msg.contains('\x1b'), "{msg}");
            assert!(!dir.path().join("c.sqlite").exists(), "nothing opened");
        }
    }
}
