//! The MQTT link: the client's options (TLS with the device's certificate when it has one,
//! keepalive, clean session, last will, packet size), a task that owns rumqttc's event loop
//! and polls it on its own, so keepalive pings and reconnects go on whatever the session
//! loop is waiting for, and the device's subscriptions
//! (the ack topic, and the command topic when commands are taken) with what a SubAck says
//! about them.
//!
//! The poll task forwards what arrives ([`LinkEvent`]) on an unbounded channel; it ends when
//! the session loop drops its end, or when [`Link::close`] has sent the disconnect.

use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{MAX_PACKET, UplinkConfig};
use crate::faults::FaultBoard;

/// Pause before the event loop tries to connect again after an error.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// How long closing waits for the goodbye (last health, disconnect) to go out.
const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// What the poll task saw.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A packet from the broker (ConnAck, SubAck, Publish, ...).
    Incoming(Packet),
    /// The connection failed or dropped; the task tries again by itself.
    Down(String),
}

/// The client and the poll task of one MQTT connection (reconnected by rumqttc as needed).
pub(crate) struct Link {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    closing: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Link {
    /// Starts the client and its poll task (connecting in the background).
    pub fn start(cfg: &UplinkConfig) -> Self {
        let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
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
        let (client, eventloop) = AsyncClient::new(opts, cfg.max_inflight * 2 + 16);
        let (tx, events) = mpsc::unbounded_channel();
        let (closing, closing_rx) = watch::channel(false);
        let task = tokio::spawn(poll(eventloop, tx, closing_rx));
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

async fn poll(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<LinkEvent>,
    closing: watch::Receiver<bool>,
) {
    loop {
        let forwarded = match eventloop.poll().await {
            Ok(Event::Incoming(p)) => tx.send(LinkEvent::Incoming(p)),
            Ok(Event::Outgoing(_)) => Ok(()),
            Err(e) => {
                if *closing.borrow() {
                    return;
                }
                let sent = tx.send(LinkEvent::Down(e.to_string()));
                tokio::time::sleep(RECONNECT_PAUSE).await;
                sent
            }
        };
        if forwarded.is_err() && !*closing.borrow() {
            // The session loop is gone.
            return;
        }
    }
}

/// The device's subscriptions: made on every connection (a clean session keeps none), in
/// one SUBSCRIBE whose SubAck answers for each topic in order.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    /// The ack topic first, then the command filter (`<prefix>/<inventory>/cmd/#`) when
    /// commands are taken, then the control posts' ack filter
    /// (`<prefix>/<inventory>/ack/post/+`, counted for information only).
    topics: Vec<String>,
    /// A SUBSCRIBE is owed on this connection.
    due: bool,
}

impl Subscriptions {
    pub fn new(ack_topic: String, cmd_filter: Option<String>, post_acks: String) -> Self {
        Self {
            topics: std::iter::once(ack_topic)
                .chain(cmd_filter)
                .chain(std::iter::once(post_acks))
                .collect(),
            due: false,
        }
    }

    /// A connection came up: subscribe again.
    pub fn connected(&mut self) {
        self.due = true;
    }

    /// Sends the SUBSCRIBE if one is owed; if the client's queue is full, it is tried again
    /// at the next call.
    pub fn subscribe_if_due(&mut self, client: &AsyncClient) {
        if self.due {
            let filters = self
                .topics
                .iter()
                .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
            self.due = client.try_subscribe_many(filters).is_err();
        }
    }

    /// Applies a SubAck: a refused topic is a lasting `subscription` fault (with the topic
    /// as its subject), cleared by a later SubAck that grants it.
    pub fn answered(&self, codes: &[SubscribeReasonCode], faults: &FaultBoard) {
        if codes.len() != self.topics.len() {
            tracing::warn!(
                expected = self.topics.len(),
                got = codes.len(),
                "SubAck with an unexpected number of return codes; matched in order."
            );
        }
        for (topic, code) in self.topics.iter().zip(codes) {
            match code {
                SubscribeReasonCode::Success(_) => {
                    faults.clear(
                        "subscription",
                        topic,
                        &format!("the broker accepted the subscription to {topic}"),
                    );
                }
                SubscribeReasonCode::Failure => {
                    let lost = if *topic == self.topics[0] {
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
                            "the broker refused the subscription to {topic}; {lost}: check the broker's ACL for this device's user"
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::{QoS, SubscribeReasonCode};

    use super::Subscriptions;
    use crate::faults::FaultBoard;

    #[test]
    fn a_refused_subscription_is_a_lasting_fault_per_topic_cleared_when_granted_later() {
        let faults = FaultBoard::default();
        let subs = Subscriptions::new(
            "p/d/ack".into(),
            Some("p/d/cmd/#".into()),
            "p/d/ack/post/+".into(),
        );
        let ok = SubscribeReasonCode::Success(QoS::AtLeastOnce);
        subs.answered(&[SubscribeReasonCode::Failure, ok], &faults);
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
                .ends_with("check the broker's ACL for this device's user")
        );
        // Refused again after a reconnect: still one fault, since the first refusal.
        subs.answered(
            &[SubscribeReasonCode::Failure, SubscribeReasonCode::Failure],
            &faults,
        );
        let subjects: Vec<_> = faults
            .active()
            .into_iter()
            .filter_map(|f| f.subject)
            .collect();
        assert_eq!(subjects, ["p/d/ack", "p/d/cmd/#"]);
        subs.answered(&[ok, ok], &faults);
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
}
