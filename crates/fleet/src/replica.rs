//! One replica: takes batches from the shared JetStream pull consumer, checks them as the
//! single receiver does, commits them to the archive, acknowledges what was committed to the
//! devices, then acks the batch in JetStream.

use std::time::Duration;

use anpr_central::limits::Limits;
use anpr_central::topic::{self, TopicKind};
use anpr_central::{Gate, Stored, escape};
use anpr_types::{Delivery, Topics};
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use chrono::Utc;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::archive::{Batch, ImageTarget, Quarantined};
use crate::{
    AckRoute, Archive, FleetError, ObjectStore, ReplicaConfig, StreamSettings, subject_of,
};

/// How long a replica gathers a batch after its first message.
const GATHER: Duration = Duration::from_millis(20);

/// Delay before a message put back (NAK) is delivered again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Deliveries of an image whose event is not stored yet before it is dropped unacknowledged
/// (the device sends it again).
const IMAGE_TRIES: i64 = 5;

/// Images of a batch stored at once (each: two queries, a PUT, an insert).
const IMAGES_AT_ONCE: usize = 16;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What one replica did, counted from its start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaReport {
    /// Messages taken from the queue (each delivery counts).
    pub messages: u64,
    /// Batches committed.
    pub batches: u64,
    /// Events stored now, and copies of stored ones (acknowledged again).
    pub events_new: u64,
    pub events_duplicate: u64,
    /// Events that broke their device's chain (not acknowledged).
    pub chain_breaks: u64,
    /// Messages refused before storage (not acknowledged).
    pub quarantined: u64,
    /// Events that follow no schema (logged, dropped, not acknowledged).
    pub unparsed: u64,
    pub health: u64,
    /// Images put into the object store now, and ones found stored before.
    pub images_stored: u64,
    pub images_again: u64,
    /// Images whose event is not stored (put back, or dropped after a few tries).
    pub images_unknown_event: u64,
    /// Images that do not match their event's sha256 or size.
    pub images_mismatch: u64,
    /// Signed acknowledgements published to devices.
    pub acks: u64,
    /// Of those, ones whose store for the device's session was not confirmed.
    pub acks_lost: u64,
    /// Batches whose transaction failed (put back, retried).
    pub failed_batches: u64,
    /// Image stores that failed (put back, retried).
    pub failed_images: u64,
}

/// Creates the stream and the shared durable pull consumer unless they exist, and returns the
/// consumer. Subjects: `<p>.*.events`, `<p>.*.evidence.>`, `<p>.*.health` where `<p>` is the
/// prefix as a subject.
pub async fn ensure_stream(
    js: &jetstream::Context,
    prefix: &str,
    s: &StreamSettings,
) -> Result<PullConsumer, FleetError> {
    let p = subject_of(prefix.trim_end_matches('/'));
    let nats = |what| {
        move |e: &dyn std::fmt::Display| FleetError::Nats {
            what,
            message: e.to_string(),
        }
    };
    let limits = Limits::default();
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: s.name.clone(),
            subjects: vec![
                format!("{p}.*.events"),
                format!("{p}.*.evidence.>"),
                format!("{p}.*.health"),
            ],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            storage: jetstream::stream::StorageType::File,
            num_replicas: s.replicas,
            // The largest payload taken (an image) plus room for headers.
            max_message_size: i32::try_from(limits.max_evidence_bytes + (64 << 10))
                .unwrap_or(i32::MAX),
            ..Default::default()
        })
        .await
        .map_err(|e| nats("stream")(&e))?;
    stream
        .get_or_create_consumer(
            &s.consumer,
            jetstream::consumer::pull::Config {
                durable_name: Some(s.consumer.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: s.ack_wait,
                max_ack_pending: s.max_ack_pending,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| nats("consumer")(&e))
}

/// Connects to NATS with the replica's settings (every URL; reconnects for ever).
async fn connect_nats(cfg: &ReplicaConfig) -> Result<async_nats::Client, FleetError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(&cfg.name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|e| async move {
            tracing::info!(event = %e, "NATS connection event.");
        });
    if let Some(tls) = &cfg.tls {
        opts = opts
            .require_tls(true)
            .tls_client_config((*tls.config()).clone());
    }
    opts.connect(cfg.nats_urls.as_slice())
        .await
        .map_err(|e| FleetError::Nats {
            what: "connect",
            message: e.to_string(),
        })
}

/// Makes what the replicas need before any device sends: the archive's schema, the bucket,
/// the stream and its consumer. A message published on a subject before its stream exists is
/// taken by no one (the device sends it again only when it is not acknowledged), so a
/// launcher calls this before letting devices in. Fails on the first server that refuses.
pub async fn prepare(cfg: &ReplicaConfig) -> Result<(), FleetError> {
    Archive::connect(&cfg.postgres).await?;
    ObjectStore::new(&cfg.objects)?.ensure_bucket().await?;
    let client = connect_nats(cfg).await?;
    let js = jetstream::new(client.clone());
    ensure_stream(&js, &cfg.prefix, &cfg.stream).await?;
    let _ = client.flush().await;
    Ok(())
}

/// What a replica holds while it runs.
struct Replica {
    cfg: ReplicaConfig,
    gate: Gate,
    limits: Limits,
    client: async_nats::Client,
    js: jetstream::Context,
    /// Acknowledgements published to sessions whose store is not confirmed yet.
    pending: Vec<jetstream::context::PublishAckFuture>,
    objects: ObjectStore,
    archive: Option<Archive>,
    backoff: Duration,
    report: ReplicaReport,
}

/// Runs one replica until `stop` turns true, then returns what it did. Fails at start on
/// settings that cannot work (prefix, keys, devices directory, endpoint); a server that is
/// down (NATS, PostgreSQL, the object store) is waited for, with a backoff, not an error.
pub async fn run_replica(
    cfg: ReplicaConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<ReplicaReport, FleetError> {
    if let Some(problem) = Topics::prefix_problem(&cfg.prefix) {
        return Err(FleetError::Config(format!(
            "topic prefix \"{}\" {problem}: give the devices' `uplink.topic_prefix`, such as anpr/v1",
            escape(&cfg.prefix)
        )));
    }
    if cfg.nats_urls.is_empty() {
        return Err(FleetError::Config("no NATS URL given".into()));
    }
    let gate = Gate::with_keys(cfg.signing_key.clone(), &cfg.devices)?;
    let objects = ObjectStore::new(&cfg.objects)?;
    let client = connect_nats(&cfg).await?;
    let js = jetstream::new(client.clone());
    let mut r = Replica {
        gate,
        limits: Limits::default(),
        client,
        js: js.clone(),
        pending: Vec::new(),
        objects,
        archive: None,
        backoff: Duration::from_secs(1),
        report: ReplicaReport::default(),
        cfg,
    };
    // The bucket and the stream, waited for until they can be made.
    loop {
        match r.objects.ensure_bucket().await {
            Ok(()) => break,
            Err(e) => r.wait(&mut stop, "object store", e.to_string()).await,
        }
        if *stop.borrow() {
            return Ok(r.report);
        }
    }
    let consumer = loop {
        match ensure_stream(&js, &r.cfg.prefix, &r.cfg.stream).await {
            Ok(c) => break c,
            Err(e) => r.wait(&mut stop, "JetStream", e.to_string()).await,
        }
        if *stop.borrow() {
            return Ok(r.report);
        }
    };
    tracing::info!(replica = %r.cfg.name, stream = %r.cfg.stream.name, consumer = %r.cfg.stream.consumer, "Receiver replica taking messages.");
    'outer: while !*stop.borrow() {
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(r.cfg.batch.max(1))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                r.wait(&mut stop, "pull", e.to_string()).await;
                continue;
            }
        };
        loop {
            let first = tokio::select! {
                m = messages.next() => m,
                _ = stop.changed() => break 'outer,
            };
            let mut batch = match first {
                Some(Ok(m)) => vec![m],
                Some(Err(e)) => {
                    tracing::warn!(replica = %r.cfg.name, error = %e, "Pull from JetStream failed; pulling again.");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    break;
                }
                None => break,
            };
            let deadline = Instant::now() + GATHER;
            let mut broken = false;
            while batch.len() < r.cfg.batch.max(1) {
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(Some(Ok(m))) => batch.push(m),
                    Ok(Some(Err(e))) => {
                        tracing::warn!(replica = %r.cfg.name, error = %e, "Pull from JetStream failed; pulling again.");
                        broken = true;
                        break;
                    }
                    Ok(None) => {
                        broken = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            r.process(batch, &mut stop).await;
            if broken {
                break;
            }
        }
    }
    if let Err(e) = r.client.flush().await {
        tracing::debug!(error = %e, "NATS flush at stop failed.");
    }
    tracing::info!(replica = %r.cfg.name, report = ?r.report, "Receiver replica stopped.");
    Ok(r.report)
}

/// An evidence image of a batch, waiting for its event's commit.
struct Image {
    msg: usize,
    inventory: String,
    event_id: Uuid,
    kind: String,
}

impl Replica {
    /// Logs a failure to reach a server and waits (backing off) or until `stop`.
    async fn wait(&mut self, stop: &mut watch::Receiver<bool>, what: &str, error: String) {
        tracing::warn!(replica = %self.cfg.name, server = what, error = %error, retry_in_ms = self.backoff.as_millis() as u64, "Server not reachable; retrying.");
        tokio::select! {
            () = tokio::time::sleep(self.backoff) => {}
            _ = stop.changed() => {}
        }
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// The archive, connected again if it was lost.
    async fn archive(&mut self) -> Result<&mut Archive, FleetError> {
        if self.archive.as_ref().is_none_or(Archive::is_closed) {
            self.archive = None;
            let a = Archive::connect(&self.cfg.postgres).await?;
            tracing::info!(replica = %self.cfg.name, "Connected to the archive.");
            self.archive = Some(a);
        }
        Ok(self.archive.as_mut().expect("connected above"))
    }

    /// Checks, stores and answers one batch of messages; see the crate's contract.
    async fn process(&mut self, msgs: Vec<jetstream::Message>, stop: &mut watch::Receiver<bool>) {
        self.report.messages += msgs.len() as u64;
        let now = Utc::now();
        let mut batch = Batch::default();
        let mut images = Vec::new();
        let prefix = self.cfg.prefix.clone();
        for (i, m) in msgs.iter().enumerate() {
            let topic = crate::topic_of(m.subject.as_str());
            let size = m.payload.len();
            let t = match topic::parse(&prefix, &topic) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(subject = %escape(m.subject.as_str()), size, reason = %e, "Message refused unread (its subject): quarantined, not acknowledged.");
                    batch.quarantine.push(Quarantined {
                        inventory: topic::inventory_level(&prefix, &topic).to_string(),
                        subject: m.subject.to_string(),
                        delivery: None,
                        event_id: None,
                        reason: e.to_string(),
                        size: Some(size),
                        received_at: now,
                    });
                    continue;
                }
            };
            if let Some(reason) = self.limits.oversized(&t.kind, size) {
                tracing::warn!(subject = %escape(m.subject.as_str()), size, reason = %reason, "Message refused unread (its size): quarantined, not acknowledged.");
                batch.quarantine.push(Quarantined {
                    inventory: t.inventory.to_string(),
                    subject: m.subject.to_string(),
                    delivery: None,
                    event_id: match t.kind {
                        TopicKind::Evidence { event_id, .. } => Some(event_id),
                        _ => None,
                    },
                    reason,
                    size: Some(size),
                    received_at: now,
                });
                continue;
            }
            match t.kind {
                TopicKind::Health => batch.health.push((
                    t.inventory.to_string(),
                    String::from_utf8_lossy(&m.payload).into_owned(),
                    now,
                )),
                TopicKind::Evidence { event_id, kind } => images.push(Image {
                    msg: i,
                    inventory: t.inventory.to_string(),
                    event_id,
                    kind: kind.to_string(),
                }),
                TopicKind::Events => match serde_json::from_slice::<Delivery>(&m.payload) {
                    Ok(d) => match self.gate.refusal(t.inventory, &d) {
                        None => batch.events.push((d, now)),
                        Some(reason) => {
                            tracing::warn!(subject = %escape(m.subject.as_str()), seq = d.event.seq, reason = %escape(&reason), "Event refused: quarantined, not stored, not acknowledged.");
                            batch.quarantine.push(Quarantined {
                                inventory: t.inventory.to_string(),
                                subject: m.subject.to_string(),
                                delivery: Some(d),
                                event_id: None,
                                reason,
                                size: None,
                                received_at: now,
                            });
                        }
                    },
                    Err(e) => {
                        self.report.unparsed += 1;
                        tracing::warn!(subject = %escape(m.subject.as_str()), error = %escape(&e.to_string()), "Event that does not follow the schema dropped, not acknowledged.");
                    }
                },
            }
        }
        // One transaction for the batch; nothing is answered before its commit.
        let stored = if batch.is_empty() {
            Ok(Vec::new())
        } else {
            match self.archive().await {
                Ok(a) => a.store_batch(&batch).await,
                Err(e) => Err(e),
            }
        };
        let stored = match stored {
            Ok(s) => s,
            Err(e) => {
                self.report.failed_batches += 1;
                self.archive = None;
                for m in &msgs {
                    let _ = m.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                }
                self.wait(stop, "PostgreSQL", e.to_string()).await;
                return;
            }
        };
        self.backoff = Duration::from_secs(1);
        if !batch.is_empty() {
            self.report.batches += 1;
        }
        self.report.quarantined += batch.quarantine.len() as u64;
        self.report.health += batch.health.len() as u64;
        for ((d, _), s) in batch.events.iter().zip(&stored) {
            match s {
                Stored::New { .. } => self.report.events_new += 1,
                Stored::Duplicate { .. } => self.report.events_duplicate += 1,
                Stored::Refused { .. } => self.report.chain_breaks += 1,
            }
            if let Some(hash) = s.hash() {
                let ack = self.gate.event_ack(d, hash);
                self.send_ack(&d.event.device.inventory, &ack).await;
            }
        }
        let mut put_back = vec![false; msgs.len()];
        for (img, delay) in self.images(&images, &msgs).await {
            if let Some(delay) = delay {
                let _ = msgs[img.msg].ack_with(AckKind::Nak(Some(delay))).await;
                put_back[img.msg] = true;
            }
        }
        self.confirm_acks().await;
        for (m, back) in msgs.iter().zip(put_back) {
            if !back && let Err(e) = m.ack().await {
                tracing::warn!(error = %e, "JetStream ack failed; the message will be delivered again (stored once).");
            }
        }
    }

    /// Publishes a signed acknowledgement to a device (see [`crate::AckRoute`]).
    async fn send_ack(&mut self, inventory: &str, ack: &anpr_types::Ack) {
        let subject = subject_of(&Topics::ack_for(&self.cfg.prefix, inventory));
        let body = serde_json::to_vec(ack).expect("acks always serialise");
        let sent = match self.cfg.acks {
            AckRoute::Core => self
                .client
                .publish(subject, body.into())
                .await
                .map_err(|e| e.to_string()),
            AckRoute::Session => {
                let mut headers = async_nats::HeaderMap::new();
                // The MQTT layer's mark of a QoS 1 message.
                headers.insert("Nmqtt-Pub", "1");
                match self
                    .js
                    .publish_with_headers(format!("$MQTT.msgs.{subject}"), headers, body.into())
                    .await
                {
                    Ok(f) => {
                        self.pending.push(f);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        match sent {
            Ok(()) => self.report.acks += 1,
            Err(e) => {
                tracing::warn!(inventory, error = %e, "Acknowledgement not sent; the device will send again (stored once).");
            }
        }
    }

    /// Waits for the store of the acknowledgements published to sessions (at most 10 s);
    /// one not stored is logged: the device sends its event again.
    async fn confirm_acks(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let n = pending.len();
        let all = futures_util::future::join_all(pending.into_iter().map(IntoFuture::into_future));
        let failed = match tokio::time::timeout(Duration::from_secs(10), all).await {
            Ok(results) => results.iter().filter(|r| r.is_err()).count(),
            Err(_) => n,
        };
        if failed > 0 {
            self.report.acks_lost += failed as u64;
            tracing::warn!(
                failed,
                of = n,
                "Acknowledgements not stored for their sessions (or not confirmed within 10 s); the devices will send again (stored once)."
            );
        }
    }

    /// Stores the images of a batch after its commit, [`IMAGES_AT_ONCE`] at a time, and
    /// acknowledges each one stored; returns, per image, a delay when its message is to be put
    /// back (its event not stored yet, or a server failed), `None` when it is done with
    /// (stored and acknowledged, or dropped).
    async fn images<'i>(
        &mut self,
        images: &'i [Image],
        msgs: &[jetstream::Message],
    ) -> Vec<(&'i Image, Option<Duration>)> {
        if images.is_empty() {
            return Vec::new();
        }
        if let Err(e) = self.archive().await {
            tracing::warn!(error = %e, "Images not checked (archive unreachable); put back.");
            self.archive = None;
            self.report.failed_images += images.len() as u64;
            return images.iter().map(|i| (i, Some(RETRY_DELAY))).collect();
        }
        let archive = self.archive.as_ref().expect("connected above");
        let objects = &self.objects;
        // Made first, then driven: a stream over a closure trips the `Send` check of the
        // spawned replica (a higher-ranked lifetime rustc cannot prove).
        let mut work = Vec::with_capacity(images.len());
        for img in images {
            let m = &msgs[img.msg];
            let delivered = m.info().map_or(IMAGE_TRIES, |i| i.delivered);
            work.push(store_image(archive, objects, img, &m.payload, delivered));
        }
        let done: Vec<ImageDone> = futures_util::stream::iter(work)
            .buffered(IMAGES_AT_ONCE)
            .collect()
            .await;
        let mut out = Vec::with_capacity(images.len());
        for (img, d) in images.iter().zip(done) {
            let delay = match d {
                ImageDone::Stored { seq, sha, new } => {
                    if new {
                        self.report.images_stored += 1;
                    } else {
                        self.report.images_again += 1;
                    }
                    let ack = self.gate.image_ack(&img.inventory, seq, img.event_id, &sha);
                    self.send_ack(&img.inventory, &ack).await;
                    None
                }
                ImageDone::UnknownEvent { retry } => {
                    self.report.images_unknown_event += 1;
                    if !retry {
                        tracing::warn!(event_id = %img.event_id, kind = %img.kind, "Evidence image for an event not stored here; dropped, not acknowledged (the device sends it again).");
                    }
                    retry.then_some(RETRY_DELAY)
                }
                ImageDone::Mismatch => {
                    self.report.images_mismatch += 1;
                    tracing::warn!(event_id = %img.event_id, kind = %img.kind, "Evidence image does not match its event's sha256 or size, or is another device's; not acknowledged.");
                    None
                }
                ImageDone::Failed { archive, delay } => {
                    self.report.failed_images += 1;
                    if archive {
                        self.archive = None;
                    }
                    Some(delay)
                }
            };
            out.push((img, delay));
        }
        out
    }
}

/// What became of one image.
enum ImageDone {
    /// In the object store and its row committed (now, or before): acknowledge it.
    Stored {
        seq: u64,
        sha: String,
        new: bool,
    },
    /// Its event is not stored; put back unless it came too often already.
    UnknownEvent {
        retry: bool,
    },
    Mismatch,
    /// A server failed (the archive, or else the object store): put back after `delay`.
    Failed {
        archive: bool,
        delay: Duration,
    },
}

/// Checks one image against its committed event, PUTs it into the object store and commits
/// its row (see the crate's contract). `delivered`: how many times its message came.
async fn store_image(
    archive: &Archive,
    objects: &ObjectStore,
    img: &Image,
    data: &[u8],
    delivered: i64,
) -> ImageDone {
    let failed = |e: &FleetError, archive: bool| {
        tracing::warn!(event_id = %img.event_id, kind = %img.kind, error = %e, "Image not stored; put back, not acknowledged.");
        ImageDone::Failed {
            archive,
            delay: if archive {
                RETRY_DELAY
            } else {
                RETRY_DELAY * 2
            },
        }
    };
    let target = match archive
        .image_target(&img.inventory, img.event_id, &img.kind, data)
        .await
    {
        Ok(t) => t,
        Err(e) => return failed(&e, true),
    };
    let sha = anpr_trust::sha256_hex(data);
    match target {
        ImageTarget::UnknownEvent => ImageDone::UnknownEvent {
            retry: delivered < IMAGE_TRIES,
        },
        ImageTarget::Mismatch => ImageDone::Mismatch,
        ImageTarget::Stored { seq } => ImageDone::Stored {
            seq,
            sha,
            new: false,
        },
        ImageTarget::Store { seq } => {
            let key = match objects.put(&sha, data).await {
                Ok(k) => k,
                Err(e) => return failed(&e, false),
            };
            if let Err(e) = archive
                .record_image(
                    img.event_id,
                    &img.kind,
                    &img.inventory,
                    &sha,
                    data.len(),
                    &key,
                )
                .await
            {
                return failed(&e, true);
            }
            ImageDone::Stored {
                seq,
                sha,
                new: true,
            }
        }
    }
}
