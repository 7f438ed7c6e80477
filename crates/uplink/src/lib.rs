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
//! Evidence images go out after their event is acknowledged, on
//! `<prefix>/<inventory>/evidence/<event_id>/<kind>`, a few at a time behind the events, and
//! are marked delivered on an ack naming their sha256.
//!
//! Health: every second the uplink looks at the queue (depth, bytes, drops) and the wall clock
//! (a step against the monotonic clock is journaled as a clock jump); it publishes a retained
//! [`Health`] message at once when a drop or a jump appears, and every 10 s otherwise. Health
//! is not held back by the event backlog.
//!
//! A queued row that cannot be read is quarantined (journaled with what it held, raised as a
//! `queue-corrupt` fault) and delivery goes on with the rows after it.
//!
//! The uplink runs on tokio; its SQLite calls are short statements on its own connection.

mod faults;

pub use faults::{FAULT_HOLD, FaultBoard, FaultRecord};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anpr_store::{AckOutcome, Store};
use anpr_types::{Ack, Delivery, Drops, HEALTH_SCHEMA, Health, QueueHealth, Topics};
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
    /// Backlog events per second at most (live events are not limited).
    pub backlog_rate: f64,
    /// The queue's disk quota, reported in health messages.
    pub quota_bytes: Option<u64>,
}

/// Evidence images in flight at most: images are large, events go first.
const IMAGES_IN_FLIGHT: usize = 4;
/// Largest message sent (an evidence image).
pub const MAX_PACKET: usize = 8 << 20;
/// How often health is looked at, and published at the latest.
const HEALTH_CHECK: Duration = Duration::from_secs(1);
const HEALTH_PERIOD: Duration = Duration::from_secs(10);
/// A wall-clock step larger than this (against the monotonic clock) is a clock jump.
const CLOCK_JUMP_S: f64 = 2.0;

/// Detects steps of the wall clock by comparing it with the monotonic clock (sans-IO: the
/// caller passes both readings).
#[derive(Debug, Clone)]
pub struct ClockWatch {
    last: Option<(Instant, DateTime<Utc>)>,
}

impl Default for ClockWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockWatch {
    #[must_use]
    pub fn new() -> Self {
        Self { last: None }
    }

    /// Takes a pair of readings; returns the step in seconds (positive: the wall clock jumped
    /// forward) when the wall clock moved more than 2 s away from the monotonic clock since
    /// the previous pair.
    pub fn observe(&mut self, mono: Instant, wall: DateTime<Utc>) -> Option<f64> {
        let prev = self.last.replace((mono, wall));
        let (m0, w0) = prev?;
        let mono_s = mono.duration_since(m0).as_secs_f64();
        let wall_s = (wall - w0).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        let step = wall_s - mono_s;
        (step.abs() > CLOCK_JUMP_S).then_some(step)
    }
}

/// What the uplink should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver as events arrive.
    Run,
    /// Deliver what is queued (events and their images), then stop (or stop at the deadline
    /// with rows still queued).
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
    pub images_published: AtomicU64,
    pub images_acked: AtomicU64,
    pub health_published: AtomicU64,
    pub clock_jumps: AtomicU64,
    /// The device's faults (a camera down, a worker that failed, drops, ...): every change is
    /// reported on the health channel within a second.
    pub faults: FaultBoard,
}

impl Counters {
    /// Reports a fault that happened (see [`FaultBoard::raise`]) on the health channel.
    pub fn raise_fault(&self, code: &str, message: &str) {
        self.faults.raise(code, message);
    }
}

/// Acknowledged deliveries, reported to whoever watches (the demo prints them).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub seq: u64,
    pub event_id: uuid::Uuid,
    /// `passage` or `violation`.
    pub kind: anpr_types::EventKind,
    /// The plate text, or `(unreadable)` / `(absent)` when it could not be read.
    pub plate: String,
    pub vehicle: String,
    /// Direction of travel, when the vehicle crossed the counting line.
    pub direction: Option<String>,
    /// For a violation: the rule and its reason.
    pub rule: Option<(String, String)>,
    pub captured_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    pub acked_at: DateTime<Utc>,
    pub delayed: bool,
}

struct InFlight {
    sent: Instant,
    backlog: bool,
    delivered: Delivered,
}

/// How often queued acknowledgements are committed and the queue is looked at.
const TICK: Duration = Duration::from_millis(20);
/// Acknowledgements committed together at most.
const ACK_BATCH: usize = 256;

/// The delivery state of one connection.
///
/// Rows queued before the connection came up (sequence below `live_from`) are the backlog:
/// it drains in sequence order at `backlog_rate`, using at most three quarters of the
/// in-flight window, while rows recorded on this connection (live) go out as soon as they are
/// queued. The receiver recovers the order from the sequence numbers.
struct Session {
    inflight: HashMap<u64, InFlight>,
    /// First sequence number recorded after the connection came up.
    live_from: u64,
    /// Highest live sequence sent; new live rows are looked up above it.
    live_cursor: u64,
    /// Highest backlog sequence sent; the backlog continues above it.
    backlog_cursor: u64,
    /// Backlog events that may be sent now (token bucket refilled at `backlog_rate`).
    tokens: f64,
    refilled: Instant,
    /// Evidence images sent and not yet acknowledged, by (sequence, sha256).
    images: HashMap<(u64, String), Instant>,
}

/// What the uplink last knew of the device's health.
struct HealthState {
    clock: ClockWatch,
    checked: Instant,
    /// When health was last published on this connection.
    published: Option<Instant>,
    /// Drop counters and clock jumps as last seen (new ones are raised as faults).
    drops: Drops,
    jumps: u64,
    /// The fault board's generation last published.
    faults_said: u64,
    /// Something happened that no published health message has said yet.
    unsaid: bool,
}

/// Runs the uplink until `mode` says stop (or a drain completes).
pub async fn run(
    cfg: UplinkConfig,
    mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
    delivered_tx: Option<tokio::sync::mpsc::UnboundedSender<Delivered>>,
) -> Result<(), UplinkError> {
    run_with_commands(cfg, mode, counters, delivered_tx, None).await
}

/// A command from the central side, as it arrived on `<prefix>/<inventory>/cmd`. The uplink
/// only passes it on; whoever receives it validates it (a plate-list update, ...).
#[derive(Debug, Clone)]
pub struct Command {
    pub payload: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

/// As [`run`], also subscribing to the device's command topic and passing every command to
/// `commands` (QoS 1: a command may arrive twice; receivers refuse versions already applied).
pub async fn run_with_commands(
    cfg: UplinkConfig,
    mut mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
    delivered_tx: Option<tokio::sync::mpsc::UnboundedSender<Delivered>>,
    commands: Option<tokio::sync::mpsc::UnboundedSender<Command>>,
) -> Result<(), UplinkError> {
    let mut store = Store::open(&cfg.queue)
        .inspect_err(|e| tracing::error!(error = %e, "Uplink cannot open the queue."))?;
    tracing::debug!(client_id = %cfg.client_id, broker = %format!("{}:{}", cfg.host, cfg.port), "Uplink starting.");
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_session(true);
    opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    opts.set_inflight(u16::try_from(cfg.max_inflight.clamp(1, 1000)).unwrap_or(100));
    opts.set_last_will(LastWill::new(
        cfg.topics.health(),
        r#"{"status":"offline"}"#,
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(opts, cfg.max_inflight * 2 + 16);
    let ack_topic = cfg.topics.ack();
    let cmd_topic = cfg.topics.cmd();
    let events_topic = cfg.topics.events();
    let mut session: Option<Session> = None;
    let mut acks: Vec<Ack> = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut health = HealthState {
        clock: ClockWatch::new(),
        checked: Instant::now()
            .checked_sub(HEALTH_CHECK)
            .unwrap_or_else(Instant::now),
        published: None,
        // Counted before this start: in every health message, but not raised as new faults.
        drops: store.drops()?,
        jumps: store.clock_jumps()?,
        faults_said: u64::MAX,
        unsaid: false,
    };

    loop {
        if *mode.borrow() == Mode::Stop {
            break;
        }
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let live_from = store.stats()?.last_seq + 1;
                    session = Some(Session {
                        inflight: HashMap::new(),
                        live_from,
                        live_cursor: live_from - 1,
                        backlog_cursor: 0,
                        tokens: 0.0,
                        refilled: Instant::now(),
                        images: HashMap::new(),
                    });
                    // Health goes out on the first tick of every connection.
                    health.published = None;
                    health.checked = Instant::now()
                        .checked_sub(HEALTH_CHECK)
                        .unwrap_or_else(Instant::now);
                    counters.connected.store(true, Ordering::SeqCst);
                    tracing::info!(broker = %format!("{}:{}", cfg.host, cfg.port), "Uplink connected.");
                    let _ = client.try_subscribe(ack_topic.clone(), QoS::AtLeastOnce);
                    if commands.is_some() {
                        let _ = client.try_subscribe(cmd_topic.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                    if let Some(tx) = &commands {
                        tracing::info!(bytes = p.payload.len(), "Command received from the central side.");
                        let _ = tx.send(Command { payload: p.payload.to_vec(), received_at: Utc::now() });
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                    match serde_json::from_slice::<Ack>(&p.payload) {
                        Ok(ack) => acks.push(ack),
                        Err(e) => tracing::warn!(error = %e, "Malformed acknowledgement ignored."),
                    }
                    if acks.len() >= ACK_BATCH {
                        commit_acks(&mut store, &mut acks, session.as_mut(), &counters, delivered_tx.as_ref())?;
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
                    session = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = tick.tick() => {
                commit_acks(&mut store, &mut acks, session.as_mut(), &counters, delivered_tx.as_ref())?;
                // A drain ends when everything is delivered and the central side has been told
                // the device's health (faults included), or at its deadline.
                if let Mode::Drain { deadline } = *mode.borrow()
                    && ((store.pending_count()? == 0
                        && store.pending_evidence_count()? == 0
                        && health.published.is_some()
                        && !health.unsaid
                        && health.faults_said == counters.faults.generation())
                        || Instant::now() >= deadline)
                {
                    break;
                }
                if let Some(s) = session.as_mut() {
                    match pump(&cfg, &mut store, &client, &events_topic, s, &counters) {
                        // A row that cannot be read must not stop delivery of the rows after it.
                        Err(UplinkError::Store(anpr_store::StoreError::Corrupt { seq, message })) => {
                            quarantine(&mut store, seq, &message, &counters)?;
                        }
                        other => other?,
                    }
                    pump_images(&cfg, &store, &client, s, &counters)?;
                }
                check_health(&cfg, &mut store, &client, &mut health, session.is_some(), &counters)?;
            }
            _ = mode.changed() => {}
        }
    }
    commit_acks(
        &mut store,
        &mut acks,
        session.as_mut(),
        &counters,
        delivered_tx.as_ref(),
    )?;
    let mut last = make_health(&cfg, &store, &counters)?;
    last.status = "offline".into();
    let _ = client.try_publish(
        cfg.topics.health(),
        QoS::AtLeastOnce,
        true,
        serde_json::to_vec(&last).expect("health always serialises"),
    );
    let _ = client.try_disconnect();
    // Let the disconnect go out; bounded so a dead link cannot hold the shutdown.
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    Ok(())
}

/// Takes a queued row that cannot be read out of delivery (journaled with what it held, see
/// [`Store::quarantine`]) and raises a `queue-corrupt` fault on the health channel.
fn quarantine(
    store: &mut Store,
    seq: u64,
    message: &str,
    counters: &Counters,
) -> Result<(), UplinkError> {
    if store.quarantine(seq, message)? {
        tracing::error!(
            seq,
            error = message,
            "Queued event cannot be read; quarantined, delivery goes on."
        );
        counters.raise_fault(
            "queue-corrupt",
            &format!("queued event {seq} cannot be read ({message}); it was taken out of delivery and journaled"),
        );
    }
    Ok(())
}

/// Commits the acknowledgements received since the last call, in one transaction.
fn commit_acks(
    store: &mut Store,
    acks: &mut Vec<Ack>,
    mut session: Option<&mut Session>,
    counters: &Counters,
    delivered_tx: Option<&tokio::sync::mpsc::UnboundedSender<Delivered>>,
) -> Result<(), UplinkError> {
    if acks.is_empty() {
        return Ok(());
    }
    let pairs: Vec<(uuid::Uuid, u64, Option<&str>)> = acks
        .iter()
        .map(|a| (a.event_id, a.seq, a.evidence.as_deref()))
        .collect();
    let outcomes = store.mark_delivered_batch(&pairs)?;
    let acked_at = Utc::now();
    for (ack, outcome) in acks.drain(..).zip(outcomes) {
        if ack.evidence.is_some() {
            if outcome == AckOutcome::Marked {
                counters.images_acked.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(s) = session.as_mut() {
                s.images
                    .retain(|(seq, sha), _| *seq != ack.seq || Some(sha) != ack.evidence.as_ref());
            }
            continue;
        }
        // An ack that names another event under this sequence number delivers nothing: the
        // event stays in flight and is resent when its ack timeout passes.
        let flight = if outcome == AckOutcome::Unknown {
            None
        } else {
            session.as_mut().and_then(|s| s.inflight.remove(&ack.seq))
        };
        match outcome {
            AckOutcome::Marked => {
                counters.acked.fetch_add(1, Ordering::SeqCst);
                if let (Some(f), Some(tx)) = (flight, delivered_tx) {
                    let mut d = f.delivered;
                    d.acked_at = acked_at;
                    let _ = tx.send(d);
                }
            }
            AckOutcome::AlreadyDelivered => {
                counters.duplicate_acks.fetch_add(1, Ordering::SeqCst);
            }
            AckOutcome::Unknown => {
                counters.unknown_acks.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(event_id = %ack.event_id, seq = ack.seq, "Acknowledgement for an unknown event ignored.");
            }
        }
    }
    Ok(())
}

/// Sends evidence images of acknowledged events, a few at a time, after the events.
fn pump_images(
    cfg: &UplinkConfig,
    store: &Store,
    client: &AsyncClient,
    session: &mut Session,
    counters: &Counters,
) -> Result<(), UplinkError> {
    session
        .images
        .retain(|_, sent| sent.elapsed() < cfg.ack_timeout);
    let room = IMAGES_IN_FLIGHT.saturating_sub(session.images.len());
    // Images wait while events are still waiting for the window.
    if room == 0 || session.inflight.len() >= cfg.max_inflight / 2 {
        return Ok(());
    }
    for image in store.pending_evidence(0, IMAGES_IN_FLIGHT * 2)? {
        if session.images.len() >= IMAGES_IN_FLIGHT {
            break;
        }
        let key = (image.seq, image.sha256.clone());
        if session.images.contains_key(&key) {
            continue;
        }
        let Some(data) = store.evidence(image.seq, &image.kind)? else {
            continue;
        };
        let topic = cfg.topics.evidence(image.event_id, &image.kind);
        if client
            .try_publish(topic, QoS::AtLeastOnce, false, data)
            .is_err()
        {
            break;
        }
        counters.images_published.fetch_add(1, Ordering::SeqCst);
        session.images.insert(key, Instant::now());
    }
    Ok(())
}

/// The health message as of now.
fn make_health(
    cfg: &UplinkConfig,
    store: &Store,
    counters: &Counters,
) -> Result<Health, UplinkError> {
    Ok(Health {
        schema: HEALTH_SCHEMA.into(),
        status: "online".into(),
        inventory: cfg.topics.inventory().to_string(),
        at: Utc::now(),
        queue: QueueHealth {
            pending_events: store.pending_count()?,
            pending_evidence: store.pending_evidence_count()?,
            bytes_used: store.bytes_used()?,
            quota_bytes: cfg.quota_bytes,
        },
        dropped: store.drops()?,
        clock_jumps: store.clock_jumps()?,
        faults: counters.faults.active(),
    })
}

/// Once a second: watches the clock and the drop counters, and publishes health when
/// something new happened (at once) or every 10 s.
fn check_health(
    cfg: &UplinkConfig,
    store: &mut Store,
    client: &AsyncClient,
    state: &mut HealthState,
    connected: bool,
    counters: &Counters,
) -> Result<(), UplinkError> {
    if state.checked.elapsed() < HEALTH_CHECK {
        return Ok(());
    }
    state.checked = Instant::now();
    let (mono, wall) = (Instant::now(), Utc::now());
    if let Some(step) = state.clock.observe(mono, wall) {
        let before = wall - chrono::Duration::microseconds((step * 1e6) as i64);
        store.record_clock_jump(before, wall, step)?;
        counters.clock_jumps.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(
            step_s = step,
            "The wall clock jumped; recorded in the journal."
        );
    }
    let drops = store.drops()?;
    if state.drops != drops {
        counters.faults.raise_latest(
            "queue-quota",
            &format!(
                "disk quota reached: dropped so far {} passages, {} violations, {} passage images, {} violation images",
                drops.passages, drops.violations, drops.passage_evidence, drops.violation_evidence
            ),
        );
    }
    state.drops = drops;
    let jumps = store.clock_jumps()?;
    if state.jumps != jumps {
        counters.faults.raise_latest(
            "clock-jump",
            &format!("the wall clock jumped ({jumps} jumps recorded in the journal)"),
        );
    }
    state.jumps = jumps;
    let due = state
        .published
        .as_ref()
        .is_none_or(|at| at.elapsed() >= HEALTH_PERIOD);
    let generation = counters.faults.generation();
    state.unsaid |= generation != state.faults_said;
    if connected && (state.unsaid || due) {
        let h = make_health(cfg, store, counters)?;
        let body = serde_json::to_vec(&h).expect("health always serialises");
        if client
            .try_publish(cfg.topics.health(), QoS::AtLeastOnce, true, body)
            .is_ok()
        {
            counters.health_published.fetch_add(1, Ordering::SeqCst);
            state.published = Some(Instant::now());
            state.unsaid = false;
            state.faults_said = generation;
        }
    }
    Ok(())
}

fn pump(
    cfg: &UplinkConfig,
    store: &mut Store,
    client: &AsyncClient,
    topic: &str,
    session: &mut Session,
    counters: &Counters,
) -> Result<(), UplinkError> {
    let expired: Vec<(u64, bool)> = session
        .inflight
        .iter()
        .filter(|(_, f)| f.sent.elapsed() >= cfg.ack_timeout)
        .map(|(s, f)| (*s, f.backlog))
        .collect();
    if !expired.is_empty() {
        for (s, backlog) in &expired {
            session.inflight.remove(s);
            // Look again from the start: expired rows go out again in order.
            if *backlog {
                session.backlog_cursor = 0;
            } else {
                session.live_cursor = session.live_from - 1;
            }
        }
        counters
            .resent
            .fetch_add(expired.len() as u64, Ordering::SeqCst);
    }
    let now = Instant::now();
    let max_tokens = (cfg.backlog_rate * 0.1).max(1.0);
    session.tokens = (session.tokens
        + now.duration_since(session.refilled).as_secs_f64() * cfg.backlog_rate)
        .min(max_tokens);
    session.refilled = now;

    let mut sent = Vec::new();
    // Live rows first, as many as the window allows.
    let room = cfg.max_inflight.saturating_sub(session.inflight.len());
    send_range(
        store, client, topic, session, counters, false, room, &mut sent,
    )?;
    // Then the backlog, within its share of the window and its rate.
    let backlog_inflight = session.inflight.values().filter(|f| f.backlog).count();
    let share = (cfg.max_inflight * 3 / 4)
        .max(1)
        .saturating_sub(backlog_inflight);
    let room = cfg
        .max_inflight
        .saturating_sub(session.inflight.len())
        .min(share)
        .min(session.tokens as usize);
    let before = sent.len();
    send_range(
        store, client, topic, session, counters, true, room, &mut sent,
    )?;
    session.tokens -= (sent.len() - before) as f64;
    if !sent.is_empty() {
        store.note_attempts(&sent)?;
    }
    Ok(())
}

/// Sends up to `room` pending rows of the backlog or of the live range, in sequence order.
#[allow(clippy::too_many_arguments)]
fn send_range(
    store: &Store,
    client: &AsyncClient,
    topic: &str,
    session: &mut Session,
    counters: &Counters,
    backlog: bool,
    room: usize,
    sent: &mut Vec<u64>,
) -> Result<(), UplinkError> {
    let mut count = 0;
    let mut after = if backlog {
        session.backlog_cursor
    } else {
        session.live_cursor
    };
    while count < room {
        let rows = store.pending(after, room - count + session.inflight.len())?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            if backlog && row.seq >= session.live_from {
                return Ok(());
            }
            after = row.seq;
            if session.inflight.contains_key(&row.seq) {
                continue;
            }
            let sent_at = Utc::now();
            // Delayed: recorded before this connection came up, or sent before. Decided by
            // sequence, not by comparing wall-clock times, so a clock step cannot change it.
            let delayed = row.attempts > 0 || row.seq < session.live_from;
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
                return Ok(());
            }
            if backlog {
                session.backlog_cursor = row.seq;
            } else {
                session.live_cursor = row.seq;
            }
            counters.published.fetch_add(1, Ordering::SeqCst);
            sent.push(row.seq);
            session.inflight.insert(
                row.seq,
                InFlight {
                    sent: Instant::now(),
                    backlog,
                    delivered: Delivered {
                        seq: row.seq,
                        event_id: row.event_id,
                        kind: delivery.event.kind,
                        plate: if delivery.event.plate.status == anpr_types::PlateStatus::Read {
                            delivery.event.plate.text.clone()
                        } else {
                            format!("({})", delivery.event.plate.status.as_str())
                        },
                        vehicle: delivery.event.vehicle.class.to_string(),
                        direction: delivery.event.vehicle.direction.clone(),
                        rule: delivery
                            .event
                            .violation
                            .as_ref()
                            .map(|v| (v.rule.clone(), v.reason.clone())),
                        captured_at: row.captured_at,
                        sent_at,
                        acked_at: sent_at,
                        delayed,
                    },
                },
            );
            count += 1;
            if count >= room {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_that_follows_the_monotonic_clock_is_no_jump() {
        let mut w = ClockWatch::new();
        let (m, t) = (Instant::now(), Utc::now());
        assert_eq!(w.observe(m, t), None);
        let m1 = m + Duration::from_secs(5);
        assert_eq!(
            w.observe(m1, t + chrono::Duration::milliseconds(5_500)),
            None
        );
    }

    #[test]
    fn steps_back_and_forward_are_measured() {
        let mut w = ClockWatch::new();
        let (m, t) = (Instant::now(), Utc::now());
        w.observe(m, t);
        let step = w
            .observe(m + Duration::from_secs(1), t - chrono::Duration::hours(1))
            .unwrap();
        assert!((step + 3601.0).abs() < 0.01, "{step}");
        let t2 = t - chrono::Duration::hours(1);
        let step = w
            .observe(
                m + Duration::from_secs(2),
                t2 + chrono::Duration::seconds(61),
            )
            .unwrap();
        assert!((step - 60.0).abs() < 0.01, "{step}");
    }
}
