//! Delivery of queued events to the central side over MQTT.
//!
//! # Contract
//!
//! - The SQLite queue ([`anpr_store`]) is the only record of what is delivered. The uplink
//!   reads undelivered rows in sequence order, publishes each (QoS 1) as a [`Delivery`]
//!   carrying the original `captured_at`, `sent_at` and whether it was delayed, and marks a
//!   row delivered only when the central receiver's application-level [`Ack`] naming that
//!   exact event id and sequence arrives. A broker PUBACK is not taken as delivery (rumqttc
//!   does not tie PUBACKs to publishes, and a broker holding a message is not the central
//!   side having stored it).
//! - An acknowledgement counts only when the central receiver's key
//!   ([`UplinkConfig::central_key`]) signed it for this device, over the hash of exactly the
//!   row it names (`anpr_trust::ack`; the queue compares the hash with the row's own). Any
//!   other (unsigned, forged, for another device or another content) marks nothing, is counted
//!   ([`Counters::bad_acks`], or `unknown_acks` for a valid signature over another content)
//!   and raised as an `ack-signature` fault: this holds whoever can publish on the ack topic.
//!   Acks are subscribed to at QoS 0 (the resend at the ack timeout is the retry, and the
//!   session is clean, so the broker need not hold them); commands at QoS 1.
//! - A row is in flight at most once at a time. Rows not acknowledged within the ack timeout,
//!   and every row in flight when the link drops, are sent again: delivery is at least once,
//!   and the receiver deduplicates by event id. An ack that names a row's sequence with
//!   another event id changes nothing: the row goes again at its ack timeout.
//! - Rows queued before a connection came up (the backlog) drain in order at `backlog_rate`
//!   within three quarters of the in-flight window; rows recorded since go at once. The
//!   receiver recovers the order from the sequence numbers.
//! - Evidence images go out after their event is acknowledged, on
//!   `<prefix>/<inventory>/evidence/<event_id>/<kind>`, a few at a time behind the events,
//!   and are marked delivered on an ack naming their sha256.
//! - Health: every second the uplink looks at the queue (depth, bytes, drops) and the wall
//!   clock (a step against the monotonic clock is journaled as a clock jump); it publishes a
//!   retained [`Health`] message at once on each connection and when the faults change, and
//!   every 10 s otherwise. Health is not held back by the event backlog. The broker's last
//!   will says `{"status":"offline"}`; a clean stop says it with the full figures.
//! - A queued row that cannot be read is quarantined (journaled with what it held, raised as
//!   a `queue-corrupt` fault) and delivery goes on with the rows after it.
//! - Commands: the device subscribes to `<prefix>/<inventory>/cmd/#` (one retained topic per
//!   subject, e.g. `cmd/plate-list/<name>`, so the broker keeps the latest of each) and passes
//!   every message on its command topics on as a [`Command`] with its topic, unchecked: the
//!   receiver of the commands validates them.
//! - A subscription the broker refuses (a SubAck failure for the ack or command filter) is a
//!   lasting `subscription` fault with the topic as its subject, until a later SubAck grants
//!   it. The refused topics are asked for again on the same connection after 1 s, doubling
//!   up to 30 s while refused (each wait jittered between half and all of it), and every
//!   subscription is made again on every connection. (A NATS MQTT listener refuses a QoS 1
//!   subscription when making its JetStream consumer times out, e.g. under mass connects.)
//! - Failover: with further brokers ([`UplinkConfig::failover`], the other nodes of a NATS
//!   cluster), the link moves to the next of `host`, `failover[0]`, `failover[1]`, ...,
//!   `host` again after two failures in a row without a ConnAck between them (a dropped
//!   connection, a refused or failed connect, no ConnAck within 5 s), with the same client
//!   id, TLS settings and clean session; each move is logged as a warning and the broker in
//!   use is [`Counters::broker`]. The new connection is a reconnect like any other: the rows
//!   in flight go again on it.
//! - Supervised: the uplink never ends on a failure. A link failure is retried after half a
//!   second, doubling with each further round of its brokers up to 15 s (each wait jittered
//!   between half and all of it, so that devices cut off together do not all come back at
//!   once); a queue failure (cannot open, read or write) raises an `uplink` fault and is
//!   retried after 1 s, doubling up to 30 s, with a fresh connection to the queue.
//!   [`run_with_commands`] returns only when [`Mode`] says stop or a drain ends.
//!
//! # Threads
//!
//! No SQLite call runs on the async runtime: one thread per uplink owns its queue connection
//! and answers requests over a channel (fsynced commits and lock waits happen there). The
//! MQTT event loop is polled by a task of its own, so keepalive pings go out whatever the
//! session loop waits for. A reconnect reads no rows: only the queue's counters.
//!
//! # Idle cost
//!
//! The session loop runs a pass every 20 ms, but an idle pass asks nothing of the queue
//! thread: the queue is read only when something can have changed what a read returns (an
//! acknowledgement arrived, a row's ack timeout passed, a row was sent or the backlog's rate
//! lets another go, the connection came up, a row was appended) and in any case once a
//! second (with the health look). New rows are known without asking SQLite from the queue's
//! append signal ([`anpr_store::append_signal`]), which every `Store::append*` in this
//! process bumps after its commit (the recognizer's, in the device process); rows appended
//! by other processes (`anpr custody`, `anpr export`) do not bump it and go out within a
//! second, at the next full read. Delivery is otherwise the same as with a read at every
//! pass: what a skipped read would have returned, the window could not have sent.
//!
//! # Modules
//!
//! `config` (settings, mode, counters, reports, errors), `window` (the delivery window: what
//! to send, resend and mark, without I/O), `queue` (the queue thread), `health` (clock watch,
//! drops, when to publish health), `link` (the MQTT connection, its poll task and the
//! subscriptions), `session` (the loop that drives them all, and its supervision), `faults`
//! (the device's fault board).
//!
//! [`Delivery`]: anpr_types::Delivery
//! [`Ack`]: anpr_types::Ack
//! [`Health`]: anpr_types::Health

mod config;
mod faults;
mod health;
mod link;
mod queue;
mod session;
mod window;

pub use config::{
    Command, Counters, Delivered, MAX_PACKET, Mode, PostAcks, UplinkConfig, UplinkError,
};
pub use faults::{FAULT_HOLD, FaultBoard, FaultRecord};
pub use health::ClockWatch;
pub use session::{run, run_with_commands};
