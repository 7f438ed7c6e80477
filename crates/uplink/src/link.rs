//! The MQTT link: the client's options (TLS with the device's certificate when it has one,
//! keepalive, clean session, last will, packet size), a task that owns rumqttc's event loop
//! and polls it on its own, so keepalive pings and reconnects go on whatever the session
//! loop is waiting for, and the device's subscriptions
//! (the ack topic, and the command topic when commands are taken) with what a SubAck says
//! about them.
//!
//! The poll task forwards what arrives ([`LinkEvent`]) on an unbounded channel; it ends when
//! the session loop drops its end, or when [`Link::close`] has sent the disconnect.
//!
//! Failover ([`Brokers`]): after [`MOVE_AFTER`] failures in a row without a ConnAck between
//! them (a connection that drops counts as one, so does each attempt that fails or gets no
//! ConnAck within rumqttc's connect timeout of 5 s), the poll task gives the event loop the
//! options of the next broker of the list (`host`, then each of `failover`, then `host`
//! again): the same client, so nothing the session loop holds changes; the new connection is
//! a clean session like any reconnect, and the rows in flight go again on it.
//!
//! Reconnects back off ([`Brokers::pause`]): half a second after the first failure since a
//! ConnAck, doubling with each further round of the broker list (each failure with one
//! broker) up to 15 s, each wait jittered between half and all of it. A fleet cut off
//! together (a broker restarted, the central link back) then comes back spread out instead
//! of in one storm of TLS handshakes that the broker cannot finish within the connect
//! timeout, which makes every device fail and try again at once.

use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{MAX_PACKET, UplinkConfig};
use crate::faults::FaultBoard;

/// Pause before the event loop tries to connect again after the first error since a
/// ConnAck; it doubles with each further round of the broker list, up to [`RECONNECT_MAX`]
/// ([`Brokers::pause`]).
pub(crate) const RECONNECT_FIRST: Duration = Duration::from_millis(500);
pub(crate) const RECONNECT_MAX: Duration = Duration::from_secs(15);
/// How long closing waits for the goodbye (last health, disconnect) to go out.
const CLOSE_WAIT: Duration = Duration::from_millis(300);
/// Failures in a row (no ConnAck between) after which the link moves to the next broker.
pub(crate) const MOVE_AFTER: u32 = 2;

/// What the poll task saw.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A packet from the broker (ConnAck, SubAck, Publish, ...).
    Incoming(Packet),
    /// The connection failed or dropped; the task tries again by itself.
    Down(String),
    /// After that failure the task moved to the next broker of the list.
    Moved {
        /// `host:port` of the broker given up.
        from: String,
        /// `host:port` of the broker tried next.
        to: String,
        /// The last failure, in words.
        error: String,
    },
}

/// The brokers a link connects to, in order (`host`, then each of `failover`), and when to
/// move from one to the next: after [`MOVE_AFTER`] failures in a row, going back to the
/// first after the last. A ConnAck resets the count, so the link stays on a broker that
/// answers. Sans-IO: the poll task tells it what happened.
#[derive(Debug)]
pub(crate) struct Brokers {
    list: Vec<(String, u16)>,
    current: usize,
    /// Failures in a row on the current broker.
    failures: u32,
    /// Failures in a row on any broker (the reconnect backoff's count).
    streak: u32,
}

impl Brokers {
    /// `cfg.host:cfg.port` first, then `cfg.failover`.
    pub fn new(cfg: &UplinkConfig) -> Self {
        let mut list = vec![(cfg.host.clone(), cfg.port)];
        list.extend(cfg.failover.iter().cloned());
        Self {
            list,
            current: 0,
            failures: 0,
            streak: 0,
        }
    }

    /// Where the list stands now (0: `host`).
    pub fn index(&self) -> usize {
        self.current
    }

    /// `host:port` of the broker at `index` of the list.
    pub fn name(&self, index: usize) -> String {
        let (host, port) = &self.list[index];
        format!("{host}:{port}")
    }

    /// A connection came up (a ConnAck).
    pub fn connected(&mut self) {
        self.failures = 0;
        self.streak = 0;
    }

    /// The wait before the next attempt, after a failure: [`RECONNECT_FIRST`] after the first
    /// failure since a ConnAck, doubling with each further round of the list (as many
    /// failures as there are brokers, so a move to the next broker is not held back by the
    /// failures on the last) up to [`RECONNECT_MAX`], jittered between half and all of it by
    /// `jitter` in `[0, 1)`.
    pub fn pause(&self, jitter: f64) -> Duration {
        let rounds = self.streak.saturating_sub(1) / self.list.len().max(1) as u32;
        let doublings = rounds.min(16);
        let wait = RECONNECT_FIRST
            .saturating_mul(1 << doublings)
            .min(RECONNECT_MAX);
        wait.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// A connection attempt failed or the connection dropped: whether the link moves to the
    /// next broker now (never with one broker).
    pub fn failed(&mut self) -> bool {
        self.failures += 1;
        self.streak = self.streak.saturating_add(1);
        if self.failures < MOVE_AFTER || self.list.len() < 2 {
            return false;
        }
        self.failures = 0;
        self.current = (self.current + 1) % self.list.len();
        true
    }
}

/// The client and the poll task of one MQTT connection (reconnected by rumqttc as needed).
pub(crate) struct Link {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    closing: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Link {
    /// Starts the client and its poll task (connecting in the background to `cfg.host`, then
    /// moving along `cfg.failover` as [`Brokers`] says).
    pub fn start(cfg: &UplinkConfig) -> Self {
        let brokers = Brokers::new(cfg);
        let options: Vec<MqttOptions> = brokers
            .list
            .iter()
            .map(|(host, port)| options(cfg, host, *port))
            .collect();
        let (client, eventloop) = AsyncClient::new(options[0].clone(), cfg.max_inflight * 2 + 16);
        let (tx, events) = mpsc::unbounded_channel();
        let (closing, closing_rx) = watch::channel(false);
        let task = tokio::spawn(poll(eventloop, brokers, options, tx, closing_rx));
        Self {
            client,
            events,
            closing,
            task,
        }
    }

    /// Publishes `goodbye` (retained, on `topic`), disconnects, and waits a little for both
    /// to go out; a dead link cannot hold the caller.
    pub async fn close(mut self, goodbye: Option<(String, Vec<u8>)>) {
        let _ = self.closing.send(true);
        if let Some((topic, body)) = goodbye {
            let _ = self.client.try_publish(topic, QoS::AtLeastOnce, true, body);
        }
        let _ = self.client.try_disconnect();
        if tokio::time::timeout(CLOSE_WAIT, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// The client's options for the broker at `host:port`: TLS with the device's certificate
/// when it has one (the server name checked is `host`), keepalive, clean session, last will,
/// packet size; the same for every broker of the list but the address.
fn options(cfg: &UplinkConfig, host: &str, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new(&cfg.client_id, host, port);
    if let Some(tls) = &cfg.tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config(),
        )));
    }
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
    opts
}

/// Polls the event loop; `options` holds the client's options for each broker of `brokers`.
async fn poll(
    mut eventloop: EventLoop,
    mut brokers: Brokers,
    options: Vec<MqttOptions>,
    tx: mpsc::UnboundedSender<LinkEvent>,
    closing: watch::Receiver<bool>,
) {
    loop {
        let forwarded = match eventloop.poll().await {
            Ok(Event::Incoming(p)) => {
                if matches!(p, Packet::ConnAck(_)) {
                    brokers.connected();
                }
                tx.send(LinkEvent::Incoming(p))
            }
            Ok(Event::Outgoing(_)) => Ok(()),
            Err(e) => {
                if *closing.borrow() {
                    return;
                }
                let error = e.to_string();
                let mut sent = tx.send(LinkEvent::Down(error.clone()));
                let from = brokers.index();
                if brokers.failed() {
                    eventloop.mqtt_options = options[brokers.index()].clone();
                    sent = sent.and(tx.send(LinkEvent::Moved {
                        from: brokers.name(from),
                        to: brokers.name(brokers.index()),
                        error,
                    }));
                }
                tokio::time::sleep(brokers.pause(jitter())).await;
                sent
            }
        };
        if forwarded.is_err() && !*closing.borrow() {
            // The session loop is gone.
            return;
        }
    }
}

/// A number in `[0, 1)` that differs from call to call and device to device (for jitter).
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// First wait before a refused subscription is asked for again on the same connection; it
/// doubles while the broker goes on refusing, up to [`RESUBSCRIBE_MAX`], each wait jittered.
pub(crate) const RESUBSCRIBE_FIRST: Duration = Duration::from_secs(1);
pub(crate) const RESUBSCRIBE_MAX: Duration = Duration::from_secs(30);

/// The device's subscriptions: made on every connection (a clean session keeps none), in
/// one SUBSCRIBE whose SubAck answers for each topic in order. A topic the broker refuses is
/// asked for again on the same connection, alone with the other refused ones, after 1 s,
/// doubling up to 30 s (each wait jittered between half and all of it, so that devices
/// refused together do not come back together), until a SubAck grants it; a new connection
/// starts over with every topic. Sans-IO apart from [`Subscriptions::subscribe_if_due`]:
/// time and the jitter come in as arguments.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    /// The ack topic first, then the command filter (`<prefix>/<inventory>/cmd/#`) when
    /// commands are taken, then the control posts' ack filter
    /// (`<prefix>/<inventory>/ack/post/+`, counted for information only).
    topics: Vec<String>,
    /// The QoS each topic is asked for with: 0 for the ack filters, 1 for commands (see
    /// [`Subscriptions::new`]).
    qos: Vec<QoS>,
    /// A SUBSCRIBE of every topic is owed on this connection.
    due: bool,
    /// The topics the broker's last answer refused.
    refused: Vec<bool>,
    /// When the refused topics are asked for again (none while nothing is refused, or while
    /// a retry is unanswered).
    retry_at: Option<Instant>,
    /// The nominal wait before the next retry.
    retry_wait: Duration,
    /// The topics (indices) of the retry sent on this connection and not yet answered.
    retrying: Option<Vec<usize>>,
}

impl Subscriptions {
    /// Acknowledgements are taken at QoS 0, commands at QoS 1. An ack is worth nothing
    /// across connections (the uplink connects with a clean session and, on a new connection,
    /// sends again every row still in flight), and one lost on the way is made good by the
    /// resend at the ack timeout, which the receiver answers with the same ack: so the broker
    /// need not hold acks for the device. At QoS 1 each ack subscription costs the broker
    /// delivery state per device (on NATS's MQTT listener, a replicated JetStream consumer made
    /// at every connect: the first thing that bends when many devices connect at once). A
    /// command (a retained plate list) must arrive: QoS 1.
    pub fn new(ack_topic: String, cmd_filter: Option<String>, post_acks: String) -> Self {
        let has_cmd = cmd_filter.is_some();
        let topics: Vec<String> = std::iter::once(ack_topic)
            .chain(cmd_filter)
            .chain(std::iter::once(post_acks))
            .collect();
        let mut qos = vec![QoS::AtMostOnce; topics.len()];
        if has_cmd {
            qos[1] = QoS::AtLeastOnce;
        }
        Self {
            qos,
            refused: vec![false; topics.len()],
            topics,
            due: false,
            retry_at: None,
            retry_wait: RESUBSCRIBE_FIRST,
            retrying: None,
        }
    }

    /// A connection came up: subscribe to every topic again; the retries start over.
    pub fn connected(&mut self) {
        self.due = true;
        self.retry_at = None;
        self.retry_wait = RESUBSCRIBE_FIRST;
        self.retrying = None;
    }

    /// The topics (indices) to subscribe to now, if any: every topic when a connection owes
    /// its SUBSCRIBE, else the refused ones once their retry is due.
    pub fn owed(&self, now: Instant) -> Option<Vec<usize>> {
        if self.due {
            return Some((0..self.topics.len()).collect());
        }
        if self.retrying.is_some() || self.retry_at.is_none_or(|at| now < at) {
            return None;
        }
        let refused: Vec<usize> = (0..self.topics.len())
            .filter(|&i| self.refused[i])
            .collect();
        (!refused.is_empty()).then_some(refused)
    }

    /// The SUBSCRIBE of `which` (as [`owed`](Self::owed) said) went to the client.
    pub fn sent(&mut self, which: Vec<usize>) {
        if which.len() == self.topics.len() {
            self.due = false;
        }
        if !self.due {
            self.retry_at = None;
            self.retrying = Some(which);
        }
    }

    /// Sends the SUBSCRIBE owed now, if any; if the client's queue is full, it is tried again
    /// at the next call.
    pub fn subscribe_if_due(&mut self, client: &AsyncClient, now: Instant) {
        let Some(which) = self.owed(now) else {
            return;
        };
        let filters = which
            .iter()
            .map(|&i| SubscribeFilter::new(self.topics[i].clone(), self.qos[i]));
        if client.try_subscribe_many(filters).is_ok() {
            if which.len() < self.topics.len() {
                tracing::info!(
                    topics = ?which.iter().map(|&i| &self.topics[i]).collect::<Vec<_>>(),
                    "Asking the broker again for the subscriptions it refused."
                );
            }
            self.sent(which);
        }
    }

    /// Applies a SubAck received at `now`: a refused topic is a lasting `subscription` fault
    /// (with the topic as its subject), asked for again after the next wait (scaled by
    /// `jitter`, in `[0, 1)`: between half and all of the wait); a granted one clears its
    /// fault. A SubAck with one code per topic answers for every topic; one with fewer
    /// answers the retry in flight (a stale one, sent on a connection before, is ignored:
    /// the new connection's SUBSCRIBE answers for every topic).
    pub fn answered(
        &mut self,
        codes: &[SubscribeReasonCode],
        faults: &FaultBoard,
        now: Instant,
        jitter: f64,
    ) {
        let which: Vec<usize> = if codes.len() == self.topics.len() {
            if self
                .retrying
                .as_ref()
                .is_some_and(|r| r.len() == codes.len())
            {
                self.retrying = None;
            }
            (0..self.topics.len()).collect()
        } else if let Some(r) = self.retrying.take_if(|r| r.len() == codes.len()) {
            r
        } else {
            tracing::warn!(
                expected = self.topics.len(),
                got = codes.len(),
                "SubAck with an unexpected number of return codes; ignored (the subscriptions are asked for again on the next connection)."
            );
            return;
        };
        for (&i, code) in which.iter().zip(codes) {
            let topic = &self.topics[i];
            match code {
                SubscribeReasonCode::Success(_) => {
                    self.refused[i] = false;
                    faults.clear(
                        "subscription",
                        topic,
                        &format!("the broker accepted the subscription to {topic}"),
                    );
                }
                SubscribeReasonCode::Failure => {
                    self.refused[i] = true;
                    let lost = if i == 0 {
                        "acknowledgements cannot arrive, so nothing is marked delivered and events are sent again and again"
                    } else if topic.ends_with("/post/+") {
                        "the control posts' acknowledgements (counted for information only; delivery does not depend on them) cannot arrive"
                    } else {
                        "commands from the central side (plate-list updates) cannot arrive"
                    };
                    faults.set(
                        "subscription",
                        topic,
                        &format!(
                            "the broker refused the subscription to {topic}; {lost}; asked for again on this connection after 1 s, doubling up to 30 s: check the broker's ACL for this device's user (or its load: a NATS MQTT listener refuses QoS 1 subscriptions when JetStream is slow to make their consumers)"
                        ),
                    );
                }
            }
        }
        if self.refused.iter().any(|&r| r) {
            if self.retrying.is_none() && self.retry_at.is_none() {
                let wait = self.retry_wait.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
                self.retry_at = Some(now + wait);
                self.retry_wait = (self.retry_wait * 2).min(RESUBSCRIBE_MAX);
            }
        } else {
            self.retry_at = None;
            self.retry_wait = RESUBSCRIBE_FIRST;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rumqttc::{QoS, SubscribeReasonCode};

    use super::{Brokers, RECONNECT_MAX, RESUBSCRIBE_MAX, Subscriptions};
    use crate::faults::FaultBoard;

    const OK: SubscribeReasonCode = SubscribeReasonCode::Success(QoS::AtLeastOnce);
    const NO: SubscribeReasonCode = SubscribeReasonCode::Failure;

    fn subs() -> Subscriptions {
        Subscriptions::new(
            "p/d/ack".into(),
            Some("p/d/cmd/#".into()),
            "p/d/ack/post/+".into(),
        )
    }

    #[test]
    fn a_refused_subscription_is_a_lasting_fault_per_topic_cleared_when_granted_later() {
        let faults = FaultBoard::default();
        let mut subs = subs();
        let t = Instant::now();
        subs.connected();
        subs.sent(subs.owed(t).unwrap());
        subs.answered(&[NO, OK, OK], &faults, t, 0.0);
        let active = faults.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].code, "subscription");
        assert_eq!(active[0].subject.as_deref(), Some("p/d/ack"));
        assert!(
            active[0].message.starts_with(
                "the broker refused the subscription to p/d/ack; acknowledgements cannot arrive"
            ),
            "{}",
            active[0].message
        );
        assert!(
            active[0]
                .message
                .contains("check the broker's ACL for this device's user"),
            "{}",
            active[0].message
        );
        // Refused again after a reconnect: still one fault, since the first refusal.
        subs.connected();
        subs.sent(subs.owed(t).unwrap());
        subs.answered(&[NO, NO, OK], &faults, t, 0.0);
        let subjects: Vec<_> = faults
            .active()
            .into_iter()
            .filter_map(|f| f.subject)
            .collect();
        assert_eq!(subjects, ["p/d/ack", "p/d/cmd/#"]);
        subs.connected();
        subs.sent(subs.owed(t).unwrap());
        subs.answered(&[OK, OK, OK], &faults, t, 0.0);
        assert!(faults.active().is_empty(), "both granted: both cleared");
        let history: Vec<(Option<String>, bool)> = faults
            .history()
            .into_iter()
            .map(|r| (r.subject, r.raised))
            .collect();
        assert_eq!(
            history,
            [
                (Some("p/d/ack".into()), true),
                (Some("p/d/cmd/#".into()), true),
                (Some("p/d/ack".into()), false),
                (Some("p/d/cmd/#".into()), false)
            ]
        );
    }

    #[test]
    fn a_refused_subscription_is_asked_for_again_on_the_same_connection_with_a_doubling_wait() {
        let faults = FaultBoard::default();
        let mut subs = subs();
        let t0 = Instant::now();
        assert_eq!(subs.owed(t0), None, "nothing before a connection");
        subs.connected();
        assert_eq!(subs.owed(t0), Some(vec![0, 1, 2]));
        subs.sent(vec![0, 1, 2]);
        assert_eq!(subs.owed(t0), None, "sent once");
        subs.answered(&[NO, OK, NO], &faults, t0, 0.999);
        // Waits of 1, 2, 4, ... s (jitter 0.999: all of each), up to 30 s; only the refused
        // topics are asked for, one retry at a time.
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let mut at = t;
            while subs.owed(at).is_none() {
                at += Duration::from_millis(100);
                assert!(at < t + RESUBSCRIBE_MAX * 2, "no retry");
            }
            waits.push((at - t).as_secs_f64().round() as u64);
            let which = subs.owed(at).unwrap();
            assert_eq!(which, [0, 2]);
            subs.sent(which);
            assert_eq!(
                subs.owed(at + RESUBSCRIBE_MAX * 2),
                None,
                "one retry at a time"
            );
            t = at;
            subs.answered(&[NO, NO], &faults, t, 0.999);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(faults.active().len(), 2, "raised until granted");
        // The ack topic is granted, the control posts' filter still refused: the next retry
        // asks for that one alone, and its wait goes on doubling from where it was.
        let at = t + RESUBSCRIBE_MAX;
        subs.sent(subs.owed(at).unwrap());
        subs.answered(&[OK, NO], &faults, at, 0.999);
        let subjects: Vec<_> = faults
            .active()
            .into_iter()
            .filter_map(|f| f.subject)
            .collect();
        assert_eq!(subjects, ["p/d/ack/post/+"]);
        let later = at + RESUBSCRIBE_MAX;
        assert_eq!(subs.owed(later), Some(vec![2]));
        subs.sent(vec![2]);
        subs.answered(&[OK], &faults, later, 0.0);
        assert!(faults.active().is_empty());
        assert_eq!(subs.owed(later + RESUBSCRIBE_MAX * 2), None, "all granted");
    }

    #[test]
    fn the_wait_is_jittered_and_a_new_connection_starts_over() {
        let faults = FaultBoard::default();
        let mut subs = subs();
        let t = Instant::now();
        subs.connected();
        subs.sent(subs.owed(t).unwrap());
        subs.answered(&[NO, OK, OK], &faults, t, 0.0);
        // Jitter 0: half the first wait.
        assert_eq!(subs.owed(t + Duration::from_millis(499)), None);
        assert_eq!(subs.owed(t + Duration::from_millis(500)), Some(vec![0]));
        subs.sent(vec![0]);
        // The connection drops before the answer: the new one subscribes to everything,
        // and a stale answer to the retry (one code) changes nothing.
        subs.connected();
        assert_eq!(subs.owed(t), Some(vec![0, 1, 2]));
        subs.sent(vec![0, 1, 2]);
        subs.answered(&[OK], &faults, t, 0.0);
        assert_eq!(faults.active().len(), 1, "the stale answer is ignored");
        subs.answered(&[NO, OK, OK], &faults, t, 0.5);
        // Back to the first wait: 1 s scaled by 0.75.
        assert_eq!(subs.owed(t + Duration::from_millis(749)), None);
        assert_eq!(subs.owed(t + Duration::from_millis(750)), Some(vec![0]));
    }

    #[test]
    fn the_link_moves_to_the_next_broker_after_two_failures_in_a_row_and_wraps_around() {
        let mut cfg = crate::config::UplinkConfig::for_test(std::path::Path::new("q"), 1883);
        cfg.failover = vec![("10.0.0.2".into(), 8883), ("10.0.0.3".into(), 8884)];
        let mut b = Brokers::new(&cfg);
        let names: Vec<String> = (0..3).map(|i| b.name(i)).collect();
        assert_eq!(names, ["127.0.0.1:1883", "10.0.0.2:8883", "10.0.0.3:8884"]);
        assert_eq!(b.index(), 0);
        // One failure (a connection that drops) stays; the second in a row moves on.
        assert!(!b.failed());
        assert!(b.failed());
        assert_eq!(b.index(), 1);
        // A ConnAck between failures starts the count over: the link stays where it works.
        assert!(!b.failed());
        b.connected();
        assert!(!b.failed());
        b.connected();
        assert_eq!(b.index(), 1);
        // Past the last broker: back to the first.
        let moves: Vec<(bool, usize)> = (0..4).map(|_| (b.failed(), b.index())).collect();
        assert_eq!(moves, [(false, 1), (true, 2), (false, 2), (true, 0)]);
    }

    #[test]
    fn a_link_with_one_broker_never_moves() {
        let cfg = crate::config::UplinkConfig::for_test(std::path::Path::new("q"), 1883);
        let mut b = Brokers::new(&cfg);
        assert!((0..5).all(|_| !b.failed()));
        assert_eq!(b.index(), 0);
    }

    #[test]
    fn reconnects_back_off_doubling_each_round_of_the_brokers_up_to_the_cap_and_start_over_at_a_connack()
     {
        // All of each wait (jitter near 1), in ms, after each of `n` failures in a row.
        let waits = |b: &mut Brokers, n: usize| -> Vec<u64> {
            (0..n)
                .map(|_| {
                    b.failed();
                    b.pause(0.999_999).as_millis().div_ceil(10) as u64 * 10
                })
                .collect()
        };
        let mut cfg = crate::config::UplinkConfig::for_test(std::path::Path::new("q"), 1883);
        // One broker: 0.5, 1, 2, 4, 8 s, then 15 s however long it fails.
        let mut one = Brokers::new(&cfg);
        assert_eq!(
            waits(&mut one, 8),
            [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]
        );
        // Two brokers: each wait twice (a move to the other broker comes as fast as the
        // failure that led to it).
        cfg.failover = vec![("10.0.0.2".into(), 8883)];
        let mut b = Brokers::new(&cfg);
        assert_eq!(
            waits(&mut b, 10),
            [500, 500, 1000, 1000, 2000, 2000, 4000, 4000, 8000, 8000]
        );
        waits(&mut b, 2);
        // Jitter takes between half and all of the wait.
        assert_eq!(b.pause(0.0), Duration::from_millis(7500));
        assert_eq!(b.pause(0.5), Duration::from_millis(11250));
        // A ConnAck starts the count over.
        b.connected();
        b.failed();
        assert_eq!(b.pause(0.0), Duration::from_millis(250));
        // A thousand failures stay at the cap.
        (0..1000).for_each(|_| {
            b.failed();
        });
        assert_eq!(b.pause(0.0), RECONNECT_MAX / 2);
    }

    #[test]
    fn acks_are_asked_for_at_qos_0_and_commands_at_qos_1() {
        assert_eq!(
            subs().qos,
            [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::AtMostOnce]
        );
        let no_commands = Subscriptions::new("p/d/ack".into(), None, "p/d/ack/post/+".into());
        assert_eq!(no_commands.qos, [QoS::AtMostOnce, QoS::AtMostOnce]);
    }
}
