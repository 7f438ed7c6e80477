//! The MQTT loop: subscribes to every device's events, images and health, hands them to the
//! database in small batches, and acknowledges what was committed.

use std::time::Duration;

use anpr_types::{Delivery, Topics};
use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::{mpsc, watch};

use crate::{CentralConfig, CentralError, Gate, ImageOutcome, Received, Receiver, Stored};

/// Deliveries stored (and acknowledged) together at most.
const BATCH: usize = 256;

/// Runs the receiver until `stop` turns true. Each stored event is also sent on `events`.
/// Deliveries are stored in small batches (every 20 ms, or 256 at a time), each batch in one
/// transaction, and acknowledged after its commit.
pub async fn run(
    cfg: CentralConfig,
    mut stop: watch::Receiver<bool>,
    events: Option<mpsc::UnboundedSender<Received>>,
) -> Result<(), CentralError> {
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
    opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let (client, mut eventloop) = AsyncClient::new(opts, 4 * BATCH);
    let filter = Topics::all_events(&cfg.prefix);
    let images = Topics::all_evidence(&cfg.prefix);
    let health = Topics::all_health(&cfg.prefix);
    let mut batch: Vec<(Delivery, String, DateTime<Utc>)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.ends_with("/health") => {
                    let inventory = p.topic.rsplit('/').nth(1).unwrap_or_default();
                    let raw = String::from_utf8_lossy(&p.payload);
                    receiver.store_health(inventory, &raw, Utc::now())?;
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.contains("/evidence/") => {
                    // Events first, so an image's event is stored before the image is checked.
                    flush(&mut receiver, &gate, &client, &cfg.prefix, &mut batch, events.as_ref())?;
                    receive_image(&mut receiver, &gate, &client, &cfg.prefix, &p.topic, &p.payload)?;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let raw = String::from_utf8_lossy(&p.payload).to_string();
                    // The broker's ACL lets a device publish only under its own inventory (its
                    // certificate's CN); an event naming another device in its payload is not
                    // stored or acknowledged as that device's.
                    let topic_inventory = p.topic.rsplit('/').nth(1).unwrap_or_default();
                    // Nor is one its device's key did not sign (`Gate::refusal`): both are
                    // quarantined, with the reason, and reported.
                    match serde_json::from_str::<Delivery>(&raw) {
                        Ok(d) => match gate.refusal(topic_inventory, &d) {
                            None => batch.push((d, raw, Utc::now())),
                            Some(reason) => {
                                tracing::warn!(topic = ?p.topic, seq = d.event.seq, reason = %reason, "Event refused: quarantined, not stored, not acknowledged.");
                                receiver.quarantine(topic_inventory, &p.topic, &d, &reason, Utc::now())?;
                            }
                        },
                        Err(e) => tracing::warn!(topic = %p.topic, error = %e, "Event that does not follow the schema rejected."),
                    }
                    if batch.len() >= BATCH {
                        flush(&mut receiver, &gate, &client, &cfg.prefix, &mut batch, events.as_ref())?;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "Central receiver link down; retrying.");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            },
            _ = tick.tick() => flush(&mut receiver, &gate, &client, &cfg.prefix, &mut batch, events.as_ref())?,
            _ = stop.changed() => {}
        }
    }
    flush(
        &mut receiver,
        &gate,
        &client,
        &cfg.prefix,
        &mut batch,
        events.as_ref(),
    )?;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}

/// Largest message accepted (an evidence image).
pub const MAX_PACKET: usize = 8 << 20;

/// Stores one evidence image that arrived on `topic` and acknowledges it when stored.
fn receive_image(
    receiver: &mut Receiver,
    gate: &Gate,
    client: &AsyncClient,
    prefix: &str,
    topic: &str,
    data: &[u8],
) -> Result<(), CentralError> {
    // <prefix>/<inventory>/evidence/<event_id>/<kind>
    let mut parts = topic.rsplit('/');
    let (Some(kind), Some(id), Some(_), Some(inventory)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(());
    };
    let Ok(event_id) = uuid::Uuid::parse_str(id) else {
        tracing::warn!(topic, "Evidence image with a malformed event id rejected.");
        return Ok(());
    };
    match receiver.store_image(event_id, kind, data, Utc::now())? {
        ImageOutcome::Stored { seq, .. } => {
            let ack = gate.image_ack(inventory, seq, event_id, &anpr_store::sha256_hex(data));
            let body = serde_json::to_vec(&ack).expect("acks always serialise");
            let _ = client.try_publish(
                Topics::ack_for(prefix, inventory),
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

/// Commits the batch, then acknowledges every delivery in it that was stored (now or before),
/// with a signed ack over its hash; one refused (a chain break) is not acknowledged.
fn flush(
    receiver: &mut Receiver,
    gate: &Gate,
    client: &AsyncClient,
    prefix: &str,
    batch: &mut Vec<(Delivery, String, DateTime<Utc>)>,
    events: Option<&mpsc::UnboundedSender<Received>>,
) -> Result<(), CentralError> {
    if batch.is_empty() {
        return Ok(());
    }
    let items: Vec<(&Delivery, &str, DateTime<Utc>)> =
        batch.iter().map(|(d, r, t)| (d, r.as_str(), *t)).collect();
    let fresh = receiver.store_batch(&items)?;
    for ((d, _, received_at), stored) in batch.drain(..).zip(fresh) {
        let Some(hash) = stored.hash() else {
            continue;
        };
        let new = matches!(stored, Stored::New { .. });
        let ack = gate.event_ack(&d, hash);
        let topic = Topics::ack_for(prefix, &d.event.device.inventory);
        let body = serde_json::to_vec(&ack).expect("acks always serialise");
        if client
            .try_publish(topic, QoS::AtLeastOnce, false, body)
            .is_err()
        {
            tracing::warn!(
                "Acknowledgement could not be queued; the device will send the event again."
            );
        }
        if let Some(tx) = events {
            let _ = tx.send(Received {
                delivery: d,
                received_at,
                new,
            });
        }
    }
    Ok(())
}
