//! The MQTT loop: subscribes to every device's events, images and health; takes each message
//! through the topic parser, the device's rate limit and its size cap; hands what passes to
//! the database in small batches, and acknowledges what was committed.
//!
//! The control post ([`crate::post`]) runs the same loop ([`serve`]); what each receiver does
//! its own way (what it logs, keeps and acknowledges, and where) is its [`Side`].

use std::time::{Duration, Instant};

use anpr_types::{Ack, Delivery, Topics};
use chrono::{DateTime, Utc};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport,
};
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
    stop: watch::Receiver<bool>,
    events: Option<mpsc::UnboundedSender<Received>>,
) -> Result<(), CentralError> {
    check_prefix(&cfg.prefix)?;
    let receiver = Receiver::open(&cfg.db)?;
    let filters = vec![
        Topics::all_events(&cfg.prefix),
        Topics::all_evidence(&cfg.prefix),
        Topics::all_health(&cfg.prefix),
    ];
    let hygiene = Hygiene::new(&cfg.prefix, limits);
    let (inbox, eventloop) = Inbox::open(&cfg, receiver, hygiene, filters, events)?;
    let center = Center {
        prefix: &cfg.prefix,
        limits,
    };
    serve(&center, inbox, eventloop, stop).await
}

/// Refuses a prefix that is no topic level, before anything is opened.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), CentralError> {
    match Topics::prefix_problem(prefix) {
        None => Ok(()),
        Some(problem) => Err(CentralError::Prefix {
            prefix: Escaped(prefix).to_string(),
            problem,
        }),
    }
}

/// What both kinds of receiver hold on the broker link: the client that answers, the gate
/// that checks and signs, the database and the batch waiting for it, the message hygiene,
/// the subscriptions, and where stored events are reported.
pub(crate) struct Inbox {
    pub(crate) client: AsyncClient,
    pub(crate) gate: Gate,
    pub(crate) events: Option<mpsc::UnboundedSender<Received>>,
    pub(crate) receiver: Receiver,
    /// Deliveries waiting for the next commit, with when each arrived.
    pub(crate) batch: Vec<(Delivery, DateTime<Utc>)>,
    pub(crate) hygiene: Hygiene,
    /// The topic filters subscribed to at every connection.
    pub(crate) filters: Vec<String>,
}

impl Inbox {
    /// The link of `cfg` for a receiver with the database `receiver`: the gate of `cfg`'s
    /// keys, and an MQTT client (not connected yet: its TLS, a persistent session, the
    /// packet limits [`MAX_PACKET`] and [`MAX_OUTGOING`]) with its event loop.
    pub(crate) fn open(
        cfg: &CentralConfig,
        receiver: Receiver,
        hygiene: Hygiene,
        filters: Vec<String>,
        events: Option<mpsc::UnboundedSender<Received>>,
    ) -> Result<(Self, EventLoop), CentralError> {
        let gate = Gate::new(cfg)?;
        let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
        if let Some(tls) = &cfg.tls {
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.config(),
            )));
        }
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_clean_session(false);
        opts.set_max_packet_size(MAX_PACKET, MAX_OUTGOING);
        let (client, eventloop) = AsyncClient::new(opts, 4 * BATCH);
        let inbox = Self {
            client,
            gate,
            events,
            receiver,
            batch: Vec::new(),
            hygiene,
            filters,
        };
        Ok((inbox, eventloop))
    }
}

/// Queues `ack` on `topic`; `false` when `client` could not take it.
#[must_use]
pub(crate) fn send_ack(client: &AsyncClient, topic: String, ack: &Ack) -> bool {
    let body = serde_json::to_vec(ack).expect("acks always serialise");
    client
        .try_publish(topic, QoS::AtLeastOnce, false, body)
        .is_ok()
}

/// What one kind of receiver does its own way on the link that [`serve`] runs: the
/// Situational Center's ([`run_with_limits`]) or a control post's ([`crate::run_post`]).
pub(crate) trait Side {
    /// Which receiver it is, in the log.
    const NAME: &'static str;
    /// Whether health messages are stored (or left out).
    const STORES_HEALTH: bool;
    /// Whether a message refused unread (its topic, or its size) is quarantined with its
    /// size (or only logged).
    const QUARANTINES_UNREAD: bool;

    /// Logs the subscription to `filters` (made at every connection).
    fn subscribed(&self, filters: &[String]);

    /// Says that device `inventory` is over its message rate, with the messages dropped since
    /// the last time (once a minute); nothing by default.
    fn over_rate(&self, _inventory: &str, _since_log: u64) {}

    /// Whether messages of device `inventory` are taken; all by default.
    fn watches(&self, _inventory: &str) -> bool {
        true
    }

    /// Sends `ack` for an evidence image of device `inventory` that was stored.
    fn image_stored(&self, inbox: &Inbox, inventory: &str, ack: &Ack);

    /// Says what became of an evidence image of `event_id` that was not stored.
    fn image_left(&self, event_id: uuid::Uuid, kind: &str, outcome: &ImageOutcome);

    /// Commits the waiting batch (never empty) and answers for it.
    fn commit(&self, inbox: &mut Inbox) -> Result<(), CentralError>;

    /// Housekeeping every [`LIMITS_EVERY`], and at the end after the last commit; nothing
    /// by default.
    fn every(&self, _inbox: &mut Inbox) -> Result<(), CentralError> {
        Ok(())
    }
}

/// Runs the link of `inbox` for `side` until `stop` turns true, then commits what waits,
/// hangs up and reads what is left of the link for at most 300 ms. The batch is committed
/// every 20 ms, when it holds [`BATCH`] deliveries, and before an image (so that an image's
/// event is stored before the image is checked). A link that goes down is retried every
/// 300 ms; an error of the database stops it.
pub(crate) async fn serve<S: Side>(
    side: &S,
    mut inbox: Inbox,
    mut eventloop: EventLoop,
    mut stop: watch::Receiver<bool>,
) -> Result<(), CentralError> {
    let mut tick = interval(Duration::from_millis(20));
    let mut every = interval(LIMITS_EVERY);
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    side.subscribed(&inbox.filters);
                    for f in &inbox.filters {
                        let _ = inbox.client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => take(side, &mut inbox, &p, Utc::now())?,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "{} link down; retrying.", S::NAME);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            },
            _ = tick.tick() => flush(side, &mut inbox)?,
            _ = every.tick() => side.every(&mut inbox)?,
            _ = stop.changed() => {}
        }
    }
    flush(side, &mut inbox)?;
    side.every(&mut inbox)?;
    let _ = inbox.client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}

/// Takes one message that arrived at `now`: through the hygiene check (the device's rate,
/// the topic, the size cap), then by what its topic carries.
fn take<S: Side>(
    side: &S,
    inbox: &mut Inbox,
    p: &Publish,
    now: DateTime<Utc>,
) -> Result<(), CentralError> {
    let size = p.payload.len();
    let t = match inbox.hygiene.admit(&p.topic, size, Instant::now(), now) {
        Admission::Take(t) => t,
        Admission::Drop {
            inventory,
            log,
            since_log,
        } => {
            if log {
                side.over_rate(inventory, since_log);
            }
            return Ok(());
        }
        Admission::Refuse {
            inventory,
            event_id,
            reason,
        } => {
            if S::QUARANTINES_UNREAD {
                tracing::warn!(topic = %Escaped(&p.topic), size, reason = %reason, "Message refused unread (its topic, or its size): quarantined, not acknowledged.");
                let topic = kept_topic(&p.topic);
                inbox
                    .receiver
                    .quarantine_unread(inventory, topic, event_id, &reason, size, now)?;
            } else {
                tracing::warn!(topic = %Escaped(&p.topic), size, reason = %reason, "Message refused unread (its topic, or its size); not acknowledged.");
            }
            return Ok(());
        }
    };
    if !side.watches(t.inventory) {
        return Ok(());
    }
    match t.kind {
        TopicKind::Health if S::STORES_HEALTH => {
            let raw = String::from_utf8_lossy(&p.payload);
            inbox.receiver.store_health(t.inventory, &raw, now)?;
        }
        TopicKind::Health => {}
        TopicKind::Evidence { event_id, kind } => {
            // Events first, so an image's event is stored before the image is checked.
            flush(side, inbox)?;
            let data = &p.payload;
            match inbox
                .receiver
                .store_image(event_id, kind, data, Utc::now())?
            {
                ImageOutcome::Stored { seq, .. } => {
                    let sha256 = anpr_store::sha256_hex(data);
                    let ack = inbox.gate.image_ack(t.inventory, seq, event_id, &sha256);
                    side.image_stored(inbox, t.inventory, &ack);
                }
                outcome => side.image_left(event_id, kind, &outcome),
            }
        }
        TopicKind::Events => {
            receive_event(inbox, p, t.inventory, now)?;
            if inbox.batch.len() >= BATCH {
                flush(side, inbox)?;
            }
        }
    }
    Ok(())
}

/// Commits the waiting batch through `side`, if anything waits.
fn flush<S: Side>(side: &S, inbox: &mut Inbox) -> Result<(), CentralError> {
    if inbox.batch.is_empty() {
        return Ok(());
    }
    side.commit(inbox)
}

/// A timer every `period` (the first tick at once) that does not catch up on ticks missed.
fn interval(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// At most [`MAX_TOPIC_KEPT`] bytes of a topic, cut at a character boundary.
fn kept_topic(topic: &str) -> &str {
    let mut end = topic.len().min(MAX_TOPIC_KEPT);
    while !topic.is_char_boundary(end) {
        end -= 1;
    }
    &topic[..end]
}

/// Parses an event that arrived in `p` (on a topic of device `topic_inventory`) and checks
/// it: one that may be stored joins the batch, one refused by the gate is quarantined, one
/// that follows no schema is logged and left out.
fn receive_event(
    inbox: &mut Inbox,
    p: &Publish,
    topic_inventory: &str,
    now: DateTime<Utc>,
) -> Result<(), CentralError> {
    let topic = &p.topic;
    let raw = String::from_utf8_lossy(&p.payload);
    // The broker's ACL lets a device publish only under its own inventory (its certificate's
    // CN); an event naming another device in its payload is not stored or acknowledged as
    // that device's. Nor is one its device's key did not sign (`Gate::refusal`): both are
    // quarantined, with the reason, and reported.
    match serde_json::from_str::<Delivery>(&raw) {
        Ok(d) => match inbox.gate.refusal(topic_inventory, &d) {
            None => inbox.batch.push((d, now)),
            Some(reason) => {
                tracing::warn!(topic = %Escaped(topic), seq = d.event.seq, reason = %Escaped(&reason), "Event refused: quarantined, not stored, not acknowledged.");
                inbox
                    .receiver
                    .quarantine(topic_inventory, kept_topic(topic), &d, &reason, now)?;
            }
        },
        Err(e) => {
            tracing::warn!(topic = %Escaped(topic), error = %Escaped(&e.to_string()), "Event that does not follow the schema rejected.");
        }
    }
    Ok(())
}

/// The Situational Center's side of the link: takes every device's events, images and
/// health, and acknowledges on each device's ack topic.
struct Center<'a> {
    prefix: &'a str,
    limits: Limits,
}

impl Side for Center<'_> {
    const NAME: &'static str = "Central receiver";
    const STORES_HEALTH: bool = true;
    const QUARANTINES_UNREAD: bool = true;

    fn subscribed(&self, filters: &[String]) {
        tracing::info!(filter = %filters[0], "Central receiver subscribed.");
    }

    fn over_rate(&self, inventory: &str, since_log: u64) {
        tracing::warn!(
            inventory = %Escaped(inventory), dropped = since_log,
            rate = self.limits.device_rate, burst = self.limits.device_burst,
            "Device over its message rate: messages dropped unread and not acknowledged (the device sends them again); logged once a minute."
        );
    }

    fn image_stored(&self, inbox: &Inbox, inventory: &str, ack: &Ack) {
        let _ = send_ack(&inbox.client, Topics::ack_for(self.prefix, inventory), ack);
    }

    fn image_left(&self, event_id: uuid::Uuid, kind: &str, outcome: &ImageOutcome) {
        if matches!(outcome, ImageOutcome::UnknownEvent) {
            tracing::warn!(%event_id, kind, "Evidence image for an event not stored here; not acknowledged.");
        } else {
            tracing::warn!(%event_id, kind, "Evidence image does not match its event's sha256 or size; not acknowledged.");
        }
    }

    /// Commits the batch, then acknowledges every delivery in it that was stored (now or
    /// before), with a signed ack over its hash; one refused (a chain break) is not
    /// acknowledged.
    fn commit(&self, inbox: &mut Inbox) -> Result<(), CentralError> {
        let items: Vec<(&Delivery, DateTime<Utc>)> =
            inbox.batch.iter().map(|(d, t)| (d, *t)).collect();
        let fresh = inbox.receiver.store_batch(&items)?;
        for ((d, received_at), stored) in inbox.batch.drain(..).zip(fresh) {
            let Some(hash) = stored.hash() else {
                continue;
            };
            let new = matches!(stored, Stored::New { .. });
            let ack = inbox.gate.event_ack(&d, hash);
            let topic = Topics::ack_for(self.prefix, &d.event.device.inventory);
            if !send_ack(&inbox.client, topic, &ack) {
                tracing::warn!(
                    "Acknowledgement could not be queued; the device will send the event again."
                );
            }
            if let Some(tx) = &inbox.events {
                let _ = tx.send(Received {
                    delivery: d,
                    received_at,
                    new,
                });
            }
        }
        Ok(())
    }

    fn every(&self, inbox: &mut Inbox) -> Result<(), CentralError> {
        inbox
            .receiver
            .add_rate_limited(&inbox.hygiene.take_dropped(Instant::now()))
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
