//! The session loop: [`run_with_commands`] drives the delivery window, the queue thread,
//! health and the MQTT link, and supervises its own work.
//!
//! Every 20 ms (a pass): acknowledgements received since the last pass are committed, rows
//! past their ack timeout are taken out of flight, the rows the window wants are read (one
//! request to the queue thread), published as the window allows, and their attempts counted;
//! ready evidence images follow; once a second health is looked at. Packets from the broker
//! are handled as they arrive, without touching the queue: an ack is kept for the next pass,
//! a command is passed on, a SubAck is checked (a refused subscription is asked for again
//! after its wait, see `link`), a ConnAck starts a new window.
//!
//! An idle pass does not touch the queue. The read is skipped when nothing can have changed
//! what it would return: no acknowledgement to commit, the window wants exactly what it
//! wanted at the last read (so nothing expired, was sent or acknowledged since, and no
//! backlog token came due), the queue's append signal ([`anpr_store::append_signal`], bumped
//! by every append of this process) unchanged since just before the last read, that read
//! less than a second ago, everything it offered published (the client's queue was not
//! full), no health look due, and no drain. Every second the queue is read in full whatever
//! the signal says, so rows appended by other processes (`anpr custody`, `anpr export`) go
//! out within a second. Order, in-flight once, ack timeouts, the backlog rate and health are
//! as without the skip: a skipped read would have returned nothing the window could send.
//!
//! Supervision: a pass that fails (the queue cannot be opened, read or written; its thread
//! died) raises an `uplink` fault, is logged, and the next pass waits 1 s, doubling up to
//! 30 s while failures go on; the first pass that succeeds resets the wait. The link stays up
//! meanwhile (its own task polls it) and health goes on being published from the last figures
//! read. The loop returns only when the mode says stop, or a drain ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anpr_store::AckOutcome;
use anpr_types::{Ack, Delivery};
use chrono::Utc;
use rumqttc::{Packet, QoS};
use tokio::sync::{mpsc, watch};

use crate::config::{Command, Counters, Delivered, Mode, UplinkConfig, UplinkError};
use crate::health::HealthState;
use crate::link::{Link, LinkEvent, MOVE_AFTER, Subscriptions, jitter};
use crate::queue::{Fetch, Fetched, QueueThread};
use crate::window::{Class, Verdict, Wanted, Window, WindowConfig};

/// How often a pass runs.
const TICK: Duration = Duration::from_millis(20);
/// First wait after a failed pass; it doubles while failures go on, up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The queue is read at least this often, whatever the append signal says (other processes
/// append without it).
const FULL_READ_EVERY: Duration = Duration::from_secs(1);

/// The last read of the queue, to tell whether the next one can be skipped.
#[derive(Debug)]
struct LastRead {
    /// What the window wanted.
    wanted: Wanted,
    /// The append signal, loaded just before the read.
    appends: u64,
    at: Instant,
}

impl LastRead {
    /// Whether a read now would find nothing new: see the module's docs.
    fn still_holds(&self, wanted: &Wanted, appends: u64, now: Instant) -> bool {
        self.appends == appends
            && now.saturating_duration_since(self.at) < FULL_READ_EVERY
            && self.wanted == *wanted
    }
}

/// Runs the uplink until `mode` says stop (or a drain completes).
pub async fn run(
    cfg: UplinkConfig,
    mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
    delivered_tx: Option<mpsc::UnboundedSender<Delivered>>,
) -> Result<(), UplinkError> {
    run_with_commands(cfg, mode, counters, delivered_tx, None).await
}

/// As [`run`], also subscribing to the device's command topic and passing every command to
/// `commands` (QoS 1: a command may arrive twice; receivers refuse versions already applied).
///
/// Returns when `mode` says [`Mode::Stop`], or a [`Mode::Drain`] ends (everything delivered
/// and the last health said, or its deadline). Failures on the way are faults, retried with
/// backoff; the only error returned is acknowledgements received at the end that could not
/// be written (those rows stay queued and go again after the next start).
pub async fn run_with_commands(
    cfg: UplinkConfig,
    mut mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
    delivered_tx: Option<mpsc::UnboundedSender<Delivered>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
) -> Result<(), UplinkError> {
    tracing::debug!(client_id = %cfg.client_id, broker = %format!("{}:{}", cfg.host, cfg.port), "Uplink starting.");
    let mut s = Session::new(cfg, counters, delivered_tx, commands);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Once whoever sets the mode is gone, the mode cannot change any more.
    let mut mode_gone = false;
    loop {
        let now_mode = *mode.borrow();
        if now_mode == Mode::Stop {
            break;
        }
        tokio::select! {
            ev = s.link.events.recv() => match ev {
                Some(ev) => s.on_link(ev),
                None => s.relink(),
            },
            _ = tick.tick() => {
                if s.pass(now_mode).await {
                    break;
                }
            }
            changed = mode.changed(), if !mode_gone => mode_gone = changed.is_err(),
        }
    }
    s.finish().await
}

/// Waits between failed passes: 1 s, doubling up to 30 s; reset by a pass that succeeds.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    until: Option<Instant>,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: BACKOFF_FIRST,
            until: None,
        }
    }

    fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|u| now >= u)
    }

    /// A pass failed at `now`: returns how long to wait before the next.
    fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.next;
        self.until = Some(now + wait);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }

    fn succeeded(&mut self) {
        self.next = BACKOFF_FIRST;
        self.until = None;
    }
}

struct Session {
    cfg: UplinkConfig,
    counters: Arc<Counters>,
    delivered_tx: Option<mpsc::UnboundedSender<Delivered>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    link: Link,
    queue: QueueThread,
    window: Window<Delivered>,
    health: HealthState,
    subscriptions: Subscriptions,
    backoff: Backoff,
    /// Acknowledgements received and not yet committed to the queue.
    acks: Vec<Ack>,
    /// The queue's append signal in this process.
    appended: Arc<AtomicU64>,
    /// The last read, while it still tells what the next would find (`None`: read at the
    /// next pass).
    last_read: Option<LastRead>,
    events_topic: String,
    ack_topic: String,
    /// The device's command root, `<prefix>/<inventory>/cmd`; commands come on it or below it.
    cmd_root: String,
}

impl Session {
    fn new(
        cfg: UplinkConfig,
        counters: Arc<Counters>,
        delivered_tx: Option<mpsc::UnboundedSender<Delivered>>,
        commands: Option<mpsc::UnboundedSender<Command>>,
    ) -> Self {
        let ack_topic = cfg.topics.ack();
        let cmd_root = cfg.topics.cmd();
        counters.set_broker(format!("{}:{}", cfg.host, cfg.port));
        Self {
            link: Link::start(&cfg),
            queue: QueueThread::new(cfg.queue.clone()),
            window: Window::new(WindowConfig {
                ack_timeout: cfg.ack_timeout,
                max_inflight: cfg.max_inflight,
                backlog_rate: cfg.backlog_rate,
            }),
            health: HealthState::new(),
            subscriptions: Subscriptions::new(
                ack_topic.clone(),
                commands.is_some().then(|| cfg.topics.cmd_filter()),
                format!("{ack_topic}/post/+"),
            ),
            backoff: Backoff::new(),
            acks: Vec::new(),
            appended: anpr_store::append_signal(&cfg.queue),
            last_read: None,
            events_topic: cfg.topics.events(),
            ack_topic,
            cmd_root,
            cfg,
            counters,
            delivered_tx,
            commands,
        }
    }

    /// Handles what the broker sent; never touches the queue.
    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Incoming(Packet::ConnAck(_)) => {
                let now = Instant::now();
                self.window.connected(now);
                self.last_read = None;
                self.health.connected();
                self.subscriptions.connected();
                self.subscriptions.subscribe_if_due(&self.link.client, now);
                self.counters.connected.store(true, Ordering::SeqCst);
                tracing::info!(broker = %self.counters.broker(), "Uplink connected.");
            }
            LinkEvent::Incoming(Packet::SubAck(ack)) => {
                self.subscriptions.answered(
                    &ack.return_codes,
                    &self.counters.faults,
                    Instant::now(),
                    jitter(),
                );
            }
            LinkEvent::Incoming(Packet::Publish(p)) if is_command(&p.topic, &self.cmd_root) => {
                if let Some(tx) = &self.commands {
                    tracing::info!(
                        topic = %p.topic,
                        bytes = p.payload.len(),
                        "Command received from the central side."
                    );
                    let _ = tx.send(Command {
                        plate_list: self
                            .cfg
                            .topics
                            .plate_list_name(&p.topic)
                            .map(str::to_string),
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                        received_at: Utc::now(),
                    });
                }
            }
            LinkEvent::Incoming(Packet::Publish(p)) if p.topic == self.ack_topic => {
                match serde_json::from_slice::<Ack>(&p.payload) {
                    Ok(ack) => self.take_ack(ack),
                    Err(e) => tracing::warn!(error = %e, "Malformed acknowledgement ignored."),
                }
            }
            LinkEvent::Incoming(Packet::Publish(p)) => {
                if let Some(post) = p
                    .topic
                    .strip_prefix(self.ack_topic.as_str())
                    .and_then(|t| t.strip_prefix("/post/"))
                {
                    self.post_ack(post, &p.payload);
                }
            }
            LinkEvent::Incoming(_) => {}
            LinkEvent::Down(e) => {
                if self.counters.connected.swap(false, Ordering::SeqCst) {
                    tracing::warn!(error = %e, "Uplink lost; events stay queued and are sent again after reconnecting.");
                } else {
                    tracing::debug!(error = %e, "Uplink still down.");
                }
                self.counters
                    .connection_errors
                    .fetch_add(1, Ordering::SeqCst);
                self.window.disconnected();
                self.last_read = None;
            }
            LinkEvent::Moved { from, to, error } => {
                tracing::warn!(
                    from = %from,
                    to = %to,
                    error = %error,
                    "Uplink moves to the next broker (`from` failed {MOVE_AFTER} times in a row without a ConnAck, the last with `error`); events stay queued and go again through `to`."
                );
                self.counters.set_broker(to);
            }
        }
    }

    /// Counts an acknowledgement from transport control post `post` (information only: the
    /// queue is not touched, so a post never makes the device send, or stop sending, anything).
    fn post_ack(&self, post: &str, payload: &[u8]) {
        let Ok(ack) = serde_json::from_slice::<Ack>(payload) else {
            tracing::debug!(post, "Malformed control post acknowledgement ignored.");
            return;
        };
        if ack.evidence.is_some() {
            return;
        }
        self.counters.post_acks.fetch_add(1, Ordering::SeqCst);
        let mut posts = self
            .counters
            .posts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = posts.entry(post.to_string()).or_default();
        entry.acks += 1;
        entry.last_seq = entry.last_seq.max(ack.seq);
    }

    /// Keeps an acknowledgement for the next pass only if the central receiver's key signed it
    /// for this device; any other is counted and raised as an `ack-signature` fault, and
    /// changes nothing (the row goes again at its ack timeout). Whether the hash it carries is
    /// the row's own is checked when it is committed.
    fn take_ack(&mut self, ack: Ack) {
        match anpr_trust::ack::verify_ack(&ack, self.cfg.topics.inventory(), &self.cfg.central_key)
        {
            Ok(()) => self.acks.push(ack),
            Err(e) => {
                let n = self.counters.bad_acks.fetch_add(1, Ordering::SeqCst) + 1;
                tracing::warn!(event_id = %ack.event_id, seq = ack.seq, error = %e, "Acknowledgement refused: not signed by the central receiver for this device.");
                self.counters.faults.raise_latest(
                    "ack-signature",
                    &format!(
                        "{n} acknowledgement(s) refused: {e} (the last named event {} seq {}); nothing was marked delivered by them. Someone who can publish on this device's ack topic is forging acknowledgements, or the central receiver's key is not the one in `[security] central_public_key`",
                        ack.event_id, ack.seq
                    ),
                );
            }
        }
    }

    /// The link's poll task ended although nobody closed it (it panicked): start a new link.
    fn relink(&mut self) {
        tracing::error!("The uplink's MQTT task ended unexpectedly; starting a new connection.");
        self.counters.raise_fault(
            "uplink",
            "the MQTT connection task ended unexpectedly; a new connection was started",
        );
        self.counters.connected.store(false, Ordering::SeqCst);
        self.window.disconnected();
        self.link = Link::start(&self.cfg);
        self.counters
            .set_broker(format!("{}:{}", self.cfg.host, self.cfg.port));
    }

    /// One pass, unless a failure's backoff is still running; returns true when a drain ends.
    async fn pass(&mut self, mode: Mode) -> bool {
        let now = Instant::now();
        if let Mode::Drain { deadline } = mode
            && now >= deadline
        {
            return true;
        }
        self.subscriptions.subscribe_if_due(&self.link.client, now);
        if !self.backoff.ready(now) {
            // Waiting after a failure: health still goes out, from the last figures read.
            self.publish_health(now);
            return false;
        }
        match self.work(matches!(mode, Mode::Drain { .. }), now).await {
            Ok(drained) => {
                self.backoff.succeeded();
                drained
            }
            Err(e) => {
                self.last_read = None;
                let wait = self.backoff.failed(Instant::now());
                tracing::error!(error = %e, retry_in_s = wait.as_secs(), "Uplink cannot work on the queue; delivery pauses and is retried.");
                self.counters.raise_fault(
                    "uplink",
                    &format!(
                        "the uplink cannot work on the queue ({e}); delivery pauses and is retried after 1 s, doubling up to 30 s"
                    ),
                );
                // Health still goes out, from the last figures read.
                self.publish_health(Instant::now());
                false
            }
        }
    }

    /// The work of one pass; returns true when a drain is complete.
    async fn work(&mut self, draining: bool, now: Instant) -> Result<bool, UplinkError> {
        let acked = !self.acks.is_empty();
        self.commit_acks().await?;
        let expired = self.window.expire(now);
        if expired > 0 {
            self.counters
                .resent
                .fetch_add(expired as u64, Ordering::SeqCst);
        }
        let wanted = self.window.wanted(now);
        // Loaded before the read: an append committed after it bumps it past this value.
        let appends = self.appended.load(Ordering::Acquire);
        let health_due = self.health.check_due(now);
        if !draining
            && !acked
            && !health_due
            && self
                .last_read
                .as_ref()
                .is_some_and(|r| r.still_holds(&wanted, appends, now))
        {
            // Idle: a read would find nothing the window could send.
            self.publish_health(now);
            return Ok(false);
        }
        self.last_read = None;
        let mut fetched = self
            .queue
            .fetch(Fetch {
                wanted: wanted.clone(),
                count_evidence: draining,
            })
            .await?;
        let quarantined = !fetched.quarantined.is_empty();
        self.report_unreadable(&mut fetched);
        self.window.set_last_seq(fetched.stats.last_seq);
        let (sent, all_events) = self.publish_events(&mut fetched, now);
        let all_images = self.publish_images(std::mem::take(&mut fetched.images), now);
        if !sent.is_empty() {
            self.queue.attempts(sent).await?;
        }
        // (Connected, the read told where the backlog ends: else the next pass reads again.)
        if all_events
            && all_images
            && !quarantined
            && (!self.window.is_connected() || self.window.knows_live_from())
        {
            self.last_read = Some(LastRead {
                wanted,
                appends,
                at: now,
            });
        }
        if health_due {
            let step = self.health.look_at_clock(now, Utc::now());
            let snapshot = self.queue.health(step).await?;
            if step.is_some() {
                self.health.recorded();
                self.counters.clock_jumps.fetch_add(1, Ordering::SeqCst);
            }
            self.health.observe(snapshot, &self.counters.faults);
        }
        self.publish_health(now);
        Ok(draining
            && fetched.stats.pending == 0
            && fetched.pending_evidence == Some(0)
            && self.health.is_said(self.counters.faults.generation()))
    }

    /// Raises what the queue thread found unreadable.
    fn report_unreadable(&mut self, fetched: &mut Fetched) {
        for (seq, message) in fetched.quarantined.drain(..) {
            tracing::error!(
                seq,
                error = message,
                "Queued event cannot be read; quarantined, delivery goes on."
            );
            self.counters.raise_fault(
                "queue-corrupt",
                &format!("queued event {seq} cannot be read ({message}); it was taken out of delivery and journaled"),
            );
        }
        if let Some(e) = fetched.images_error.take() {
            self.counters.faults.set(
                "queue-corrupt",
                "evidence",
                &format!(
                    "evidence images cannot be listed ({e}); events are delivered without them"
                ),
            );
        } else if fetched.images_listed {
            self.counters.faults.clear(
                "queue-corrupt",
                "evidence",
                "evidence images can be listed again",
            );
        }
    }

    /// Commits the acknowledgements received since the last pass, in one transaction, and
    /// takes their rows out of flight. On failure they are kept for the next pass.
    async fn commit_acks(&mut self) -> Result<(), UplinkError> {
        if self.acks.is_empty() {
            return Ok(());
        }
        let outcomes = self.queue.acks(self.acks.clone()).await?;
        let acked_at = Utc::now();
        for (ack, outcome) in std::mem::take(&mut self.acks).into_iter().zip(outcomes) {
            if let Some(sha) = &ack.evidence {
                if outcome == AckOutcome::Marked {
                    self.counters.images_acked.fetch_add(1, Ordering::SeqCst);
                }
                self.window.image_acked(ack.seq, sha);
                continue;
            }
            // The window takes the row out of flight only if the ack names its event id too.
            let flight = self.window.acked(ack.seq, ack.event_id);
            match outcome {
                AckOutcome::Marked => {
                    self.counters.acked.fetch_add(1, Ordering::SeqCst);
                    if let (Some(mut d), Some(tx)) = (flight, &self.delivered_tx) {
                        d.acked_at = acked_at;
                        let _ = tx.send(d);
                    }
                }
                AckOutcome::AlreadyDelivered => {
                    self.counters.duplicate_acks.fetch_add(1, Ordering::SeqCst);
                }
                AckOutcome::Unknown => {
                    self.counters.unknown_acks.fetch_add(1, Ordering::SeqCst);
                    tracing::warn!(event_id = %ack.event_id, seq = ack.seq, "Acknowledgement for an unknown event ignored.");
                }
            }
        }
        Ok(())
    }

    /// Publishes the rows read, live first, as the window allows; returns their sequences,
    /// and false when the client's queue was full before the window said stop.
    fn publish_events(&mut self, fetched: &mut Fetched, now: Instant) -> (Vec<u64>, bool) {
        let mut sent = Vec::new();
        let classes = [
            (Class::Live, std::mem::take(&mut fetched.live)),
            (Class::Backlog, std::mem::take(&mut fetched.backlog)),
        ];
        for (class, rows) in classes {
            for row in rows {
                match self.window.verdict(class, row.seq) {
                    Verdict::Send => {}
                    Verdict::Skip => continue,
                    Verdict::Stop => break,
                }
                let sent_at = Utc::now();
                // Delayed: recorded before this connection came up, or sent before.
                let delayed = row.attempts > 0 || self.window.is_backlog(row.seq);
                let note = Delivered::of(&row, sent_at, delayed);
                let (seq, event_id) = (row.seq, row.event_id);
                let delivery = Delivery {
                    event: row.event,
                    sent_at,
                    delayed,
                };
                let payload = serde_json::to_vec(&delivery).expect("events always serialise");
                if self
                    .link
                    .client
                    .try_publish(&self.events_topic, QoS::AtLeastOnce, false, payload)
                    .is_err()
                {
                    // The client's queue is full: the rest waits for the next pass.
                    return (sent, false);
                }
                self.counters.published.fetch_add(1, Ordering::SeqCst);
                self.window.sent(class, seq, event_id, note, now);
                sent.push(seq);
            }
        }
        (sent, true)
    }

    /// Publishes ready evidence images, a few at a time, after their events; false when the
    /// client's queue was full before they all went.
    fn publish_images(
        &mut self,
        images: Vec<(anpr_store::PendingEvidence, Vec<u8>)>,
        now: Instant,
    ) -> bool {
        for (image, data) in images {
            if self.window.image_room() == 0 {
                break;
            }
            let topic = self.cfg.topics.evidence(image.event_id, &image.kind);
            if self
                .link
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, data)
                .is_err()
            {
                return false;
            }
            self.counters
                .images_published
                .fetch_add(1, Ordering::SeqCst);
            self.window.image_sent(image.seq, &image.sha256, now);
        }
        true
    }

    /// Publishes health if it is due (see [`HealthState::should_publish`]).
    fn publish_health(&mut self, now: Instant) {
        let generation = self.counters.faults.generation();
        if !self
            .health
            .should_publish(now, self.window.is_connected(), generation)
        {
            return;
        }
        let Some(h) = self
            .health
            .message(&self.cfg, &self.counters.faults, "online")
        else {
            return;
        };
        let body = serde_json::to_vec(&h).expect("health always serialises");
        if self
            .link
            .client
            .try_publish(self.cfg.topics.health(), QoS::AtLeastOnce, true, body)
            .is_ok()
        {
            self.counters
                .health_published
                .fetch_add(1, Ordering::SeqCst);
            self.health.published(now, generation);
        }
    }

    /// Commits the last acknowledgements, says goodbye (an `offline` health message), and
    /// closes the link and the queue thread.
    async fn finish(mut self) -> Result<(), UplinkError> {
        let saved = self.commit_acks().await;
        if let Err(e) = &saved {
            tracing::error!(error = %e, unsaved = self.acks.len(), "Acknowledgements received at the end could not be written; those events go again after the next start.");
        }
        match self.queue.health(None).await {
            Ok(snapshot) => self.health.observe(snapshot, &self.counters.faults),
            Err(e) => {
                tracing::warn!(error = %e, "Last health message made from the figures read before.");
            }
        }
        let goodbye = self
            .health
            .message(&self.cfg, &self.counters.faults, "offline")
            .map(|h| {
                (
                    self.cfg.topics.health(),
                    serde_json::to_vec(&h).expect("health always serialises"),
                )
            });
        self.counters.connected.store(false, Ordering::SeqCst);
        self.link.close(goodbye).await;
        self.queue.close().await;
        saved
    }
}

/// Whether `topic` is one of the device's command topics: the root `cmd_root` itself (a
/// sender before per-list topics published there) or any topic below it.
fn is_command(topic: &str, cmd_root: &str) -> bool {
    topic
        .strip_prefix(cmd_root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use tokio::sync::watch;

    use super::{BACKOFF_MAX, Backoff, is_command};

    #[test]
    fn every_topic_under_the_command_root_is_a_command_and_nothing_beside_it() {
        let root = "anpr/v1/KZ-1/cmd";
        for topic in [
            "anpr/v1/KZ-1/cmd",
            "anpr/v1/KZ-1/cmd/plate-list/wanted",
            "anpr/v1/KZ-1/cmd/other",
        ] {
            assert!(is_command(topic, root), "{topic}");
        }
        for topic in [
            "anpr/v1/KZ-1/cmdx",
            "anpr/v1/KZ-1/ack",
            "anpr/v1/KZ-1/cmd-plate-list",
            "anpr/v1/KZ-12/cmd/plate-list/wanted",
        ] {
            assert!(!is_command(topic, root), "{topic}");
        }
    }
    use crate::config::{Counters, Mode, UplinkConfig};

    #[test]
    fn the_wait_after_failures_doubles_from_one_second_to_thirty_and_resets_on_success() {
        let mut b = Backoff::new();
        let t = Instant::now();
        assert!(b.ready(t));
        let waits: Vec<u64> = (0..7).map(|_| b.failed(t).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert!(!b.ready(t + Duration::from_secs(29)));
        assert!(b.ready(t + BACKOFF_MAX));
        b.succeeded();
        assert!(b.ready(t));
        assert_eq!(b.failed(t), Duration::from_secs(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_pass_reads_the_queue_only_after_an_append_here_or_once_a_second() {
        let (_dir, queue) = crate::queue::tests::queue_with(1);
        let cfg = UplinkConfig::for_test(&queue, closed_port());
        let mut s = super::Session::new(cfg, Arc::new(Counters::default()), None, None);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        s.work(false, at(0)).await.unwrap();
        assert_eq!(s.queue.reads(), 1, "the first pass reads");
        for ms in [20, 40, 60, 980] {
            s.work(false, at(ms)).await.unwrap();
        }
        assert_eq!(s.queue.reads(), 1, "idle passes do not");
        // An append in this process (another connection on the same file, named otherwise).
        let other_name = queue.parent().unwrap().join(".").join("q.sqlite");
        anpr_store::Store::open(&other_name)
            .unwrap()
            .append(crate::queue::tests::event)
            .unwrap();
        s.work(false, at(990)).await.unwrap();
        assert_eq!(
            s.queue.reads(),
            2,
            "the append signal makes the next pass read"
        );
        s.work(false, at(995)).await.unwrap();
        assert_eq!(s.queue.reads(), 2);
        // A second after the first read: health is looked at, and the queue read in full.
        s.work(false, at(1000)).await.unwrap();
        assert_eq!(s.queue.reads(), 3);
        s.work(false, at(1020)).await.unwrap();
        assert_eq!(s.queue.reads(), 3);
        s.work(false, at(1990)).await.unwrap();
        assert_eq!(s.queue.reads(), 3);
        s.work(false, at(2000)).await.unwrap();
        assert_eq!(s.queue.reads(), 4, "and every second");
        // A drain reads at every pass.
        s.work(true, at(2010)).await.unwrap();
        s.work(true, at(2020)).await.unwrap();
        assert_eq!(s.queue.reads(), 6);
        s.finish().await.unwrap();
    }

    #[test]
    fn a_read_holds_for_a_second_while_the_window_and_the_append_signal_are_unchanged() {
        let t = Instant::now();
        let last = super::LastRead {
            wanted: crate::window::Wanted::default(),
            appends: 7,
            at: t,
        };
        let same = crate::window::Wanted::default();
        assert!(last.still_holds(&same, 7, t + Duration::from_millis(999)));
        assert!(!last.still_holds(&same, 7, t + Duration::from_secs(1)));
        assert!(!last.still_holds(&same, 8, t));
        let other = crate::window::Wanted {
            images: 1,
            ..crate::window::Wanted::default()
        };
        assert!(!last.still_holds(&other, 7, t));
    }

    /// A port on 127.0.0.1 where nothing listens.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_that_cannot_be_opened_is_a_fault_retried_until_it_can_be_and_only_stop_ends_the_uplink()
     {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("not-yet").join("queue.sqlite");
        let cfg = UplinkConfig::for_test(&queue, closed_port());
        let counters = Arc::new(Counters::default());
        let (mode, rx) = watch::channel(Mode::Run);
        let task = tokio::spawn(crate::run(cfg, rx, counters.clone(), None));
        let end = Instant::now() + Duration::from_secs(5);
        while !counters.faults.active().iter().any(|f| f.code == "uplink") {
            assert!(Instant::now() < end, "no uplink fault raised");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let fault = counters
            .faults
            .active()
            .into_iter()
            .find(|f| f.code == "uplink")
            .unwrap();
        assert!(
            fault.message.contains("cannot be opened"),
            "{}",
            fault.message
        );
        assert!(!task.is_finished(), "a store error does not end the uplink");
        std::fs::create_dir(dir.path().join("not-yet")).unwrap();
        // Retried after 1 s, 2 s, 4 s ...: the queue is opened (and created) by a retry.
        let end = Instant::now() + Duration::from_secs(8);
        while !queue.is_file() {
            assert!(Instant::now() < end, "the queue was not opened again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!task.is_finished());
        mode.send(Mode::Stop).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the uplink stops when told")
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drain_ends_at_its_deadline_when_the_link_never_comes_up() {
        let (_dir, queue) = crate::queue::tests::queue_with(3);
        let cfg = UplinkConfig::for_test(&queue, closed_port());
        let counters = Arc::new(Counters::default());
        let deadline = Instant::now() + Duration::from_millis(600);
        let (_mode, rx) = watch::channel(Mode::Drain { deadline });
        tokio::time::timeout(
            Duration::from_secs(5),
            crate::run(cfg, rx, counters.clone(), None),
        )
        .await
        .expect("the drain ends")
        .unwrap();
        assert!(Instant::now() >= deadline);
        assert_eq!(
            counters.published.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        let stats = anpr_store::Store::open(&queue).unwrap().stats().unwrap();
        assert_eq!(stats.pending, 3, "undelivered rows stay queued");
    }
}
