//! What the receiver takes from one device at most: a size per kind of message (refused
//! unread above it) and a rate of messages (dropped unread above it). Both hold whatever the
//! broker lets through; the shipped broker (`deploy/mosquitto/anpr.conf`) also disconnects a
//! client that sends a packet over 8 MiB.
//!
//! Nothing refused here is acknowledged. For a device that means "not stored yet": it keeps
//! the event (or image) in its queue and sends it again after its ack timeout, so a message
//! dropped by the rate limit is delayed, never lost.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use uuid::Uuid;

use crate::topic::{Topic, TopicKind};

/// Largest events payload taken, bytes. An event is about 1 KiB of JSON (629 bytes in the
/// replay bench, up to 2 KiB with a violation, evidence references and the signature); 256 KiB
/// leaves more than a hundredfold headroom for longer texts and future fields, while a
/// payload that large costs the parser a millisecond at most.
pub const MAX_EVENT_BYTES: usize = 256 << 10;

/// Largest evidence image taken, bytes: the device's own limit, `anpr_uplink::MAX_PACKET`
/// (8 MiB for the whole packet, its topic included), so every image a device can send is
/// taken. A JPEG the device writes is far smaller (an overview of a 1080p frame at quality 85
/// is some 200–600 KiB, a plate crop a few KiB).
pub const MAX_EVIDENCE_BYTES: usize = 8 << 20;

/// Largest health payload taken, bytes. A health message is under 2 KiB (counters, the
/// queue's figures, a few faults, the models' hashes); 64 KiB leaves room for every fault
/// the device knows at once with long messages.
pub const MAX_HEALTH_BYTES: usize = 64 << 10;

/// Messages per second taken from one device (events, images and health together), on
/// average. A device sends its backlog at `uplink.backlog_rate` (2,000 events per second by
/// default) within a window of 256 events in flight, its live events at once (a few per
/// second per camera), images four at a time behind their acknowledged events, and health
/// every 10 s; after a reconnect it sends its whole window again. The fastest replay measured
/// through the real receiver is 3,375 events per second (`BENCHMARKS.md`, "Delivery"), so
/// 10,000 is three times that and five times the default backlog rate. A device whose
/// `backlog_rate` is set above about 8,000 needs this raised (`anpr central --device-rate`).
pub const DEVICE_RATE: u32 = 10_000;

/// Messages one device may send at once above [`DEVICE_RATE`]: a whole in-flight window
/// (256 events) sent again after a reconnect with its images, eight times over.
pub const DEVICE_BURST: u32 = 2_000;

/// The receiver's limits; [`Limits::default`] gives the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_evidence_bytes: usize,
    pub max_health_bytes: usize,
    /// Messages per second per device, on average (at least 1).
    pub device_rate: NonZeroU32,
    /// Messages per device at once above the rate (at least 1).
    pub device_burst: NonZeroU32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: MAX_EVENT_BYTES,
            max_evidence_bytes: MAX_EVIDENCE_BYTES,
            max_health_bytes: MAX_HEALTH_BYTES,
            device_rate: NonZeroU32::new(DEVICE_RATE).expect("not zero"),
            device_burst: NonZeroU32::new(DEVICE_BURST).expect("not zero"),
        }
    }
}

impl Limits {
    /// The size cap of a kind of message.
    #[must_use]
    pub fn cap(&self, kind: &TopicKind<'_>) -> usize {
        match kind {
            TopicKind::Events => self.max_event_bytes,
            TopicKind::Health => self.max_health_bytes,
            TopicKind::Evidence { .. } => self.max_evidence_bytes,
        }
    }

    /// Why a payload of `size` bytes on a topic of `kind` is refused unread, if it is.
    #[must_use]
    pub fn oversized(&self, kind: &TopicKind<'_>, size: usize) -> Option<String> {
        let cap = self.cap(kind);
        (size > cap).then(|| {
            let what = match kind {
                TopicKind::Events => "events payload",
                TopicKind::Health => "health payload",
                TopicKind::Evidence { .. } => "evidence image",
            };
            format!("{what} over the receiver's cap of {cap} bytes: refused unread")
        })
    }
}

/// The inventory under which messages on topics that do not parse are rate-limited together
/// (none of them is any device's).
pub const UNPARSED: &str = "";

/// How often a device's rate limiting is logged at most.
const LOG_EVERY: Duration = Duration::from_mins(1);

/// Messages of one device dropped by the rate limit, not yet written to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub count: u64,
    /// When the first and the last of them arrived.
    pub first: chrono::DateTime<chrono::Utc>,
    pub last: chrono::DateTime<chrono::Utc>,
}

/// What the rate limit says of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Take,
    /// Dropped unread, not acknowledged; `log` is true when this should be logged (the first
    /// of a device in a minute), with `since_log` dropped since the last log line.
    Drop {
        log: bool,
        since_log: u64,
    },
}

/// Per-device rate limiting (sans-IO apart from its clock): a keyed GCRA limiter
/// ([`governor`]) with the device's inventory as key, and the counts of what it dropped.
pub struct DeviceLimiter<C: Clock = MonotonicClock> {
    limiter: RateLimiter<String, HashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    dropped: HashMap<String, Dropped>,
    /// When each device's drops were last logged, and how many came since.
    logged: HashMap<String, (Option<Instant>, u64)>,
}

impl DeviceLimiter<MonotonicClock> {
    /// A limiter on the real clock.
    #[must_use]
    pub fn new(limits: &Limits) -> Self {
        Self::with_clock(limits, MonotonicClock)
    }
}

impl<C: Clock> DeviceLimiter<C> {
    /// A limiter on `clock` (a fake one in tests).
    #[must_use]
    pub fn with_clock(limits: &Limits, clock: C) -> Self {
        let quota = Quota::per_second(limits.device_rate).allow_burst(limits.device_burst);
        Self {
            limiter: RateLimiter::hashmap_with_clock(quota, clock),
            dropped: HashMap::new(),
            logged: HashMap::new(),
        }
    }

    /// Whether a message of device `inventory` arriving now (`now` for the log's pace, `at`
    /// for the record) is taken or dropped; a drop is counted.
    pub fn check(
        &mut self,
        inventory: &str,
        now: Instant,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Verdict {
        if self.limiter.check_key(&inventory.to_string()).is_ok() {
            return Verdict::Take;
        }
        self.dropped
            .entry(inventory.to_string())
            .and_modify(|d| {
                d.count += 1;
                d.last = at;
            })
            .or_insert(Dropped {
                count: 1,
                first: at,
                last: at,
            });
        let (last_log, since) = self
            .logged
            .entry(inventory.to_string())
            .or_insert((None, 0));
        *since += 1;
        if last_log.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            // The count restarts from this line: the next one says how many came after it.
            let n = std::mem::take(since);
            *last_log = Some(now);
            return Verdict::Drop {
                log: true,
                since_log: n,
            };
        }
        Verdict::Drop {
            log: false,
            since_log: *since,
        }
    }

    /// Takes the drops counted since the last call (to be written to the database), and
    /// forgets devices not heard of for a while, so the limiter's memory stays bounded by
    /// the devices that are sending.
    pub fn take_dropped(&mut self, now: Instant) -> HashMap<String, Dropped> {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.logged
            .retain(|_, (at, n)| *n > 0 || at.is_some_and(|t| now.duration_since(t) < LOG_EVERY));
        std::mem::take(&mut self.dropped)
    }
}

/// What becomes of a message, decided from its topic and size before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission<'a> {
    /// Within every limit: read it.
    Take(Topic<'a>),
    /// Over its device's rate (`inventory`, or [`UNPARSED`]): dropped unread, not
    /// acknowledged; log it when `log` says so, with `since_log` dropped since the last line.
    Drop {
        inventory: &'a str,
        log: bool,
        since_log: u64,
    },
    /// A topic the receiver does not take, or a payload over its cap: quarantined unread
    /// under `inventory` (the topic's inventory level) with `reason`, not acknowledged.
    Refuse {
        inventory: &'a str,
        event_id: Option<Uuid>,
        reason: String,
    },
}

/// The receiver's checks before it reads a message (sans-IO apart from its clock): the
/// topic parsed under its prefix, the device's rate, the payload's size.
pub struct Hygiene<C: Clock = MonotonicClock> {
    prefix: String,
    limits: Limits,
    limiter: DeviceLimiter<C>,
}

impl Hygiene<MonotonicClock> {
    #[must_use]
    pub fn new(prefix: &str, limits: Limits) -> Self {
        Self::with_clock(prefix, limits, MonotonicClock)
    }
}

impl<C: Clock> Hygiene<C> {
    #[must_use]
    pub fn with_clock(prefix: &str, limits: Limits, clock: C) -> Self {
        Self {
            prefix: prefix.to_string(),
            limiter: DeviceLimiter::with_clock(&limits, clock),
            limits,
        }
    }

    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What becomes of a message of `size` bytes on `topic`, arriving now (`now` for the
    /// log's pace, `at` for the record). The rate is checked first, so a flood of refused
    /// messages costs no more than a flood of good ones; messages on topics that do not
    /// parse share one rate ([`UNPARSED`]).
    pub fn admit<'a>(
        &mut self,
        topic: &'a str,
        size: usize,
        now: Instant,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Admission<'a> {
        let parsed = crate::topic::parse(&self.prefix, topic);
        let key = parsed.as_ref().map_or(UNPARSED, |t| t.inventory);
        if let Verdict::Drop { log, since_log } = self.limiter.check(key, now, at) {
            return Admission::Drop {
                inventory: key,
                log,
                since_log,
            };
        }
        match parsed {
            Err(e) => Admission::Refuse {
                inventory: crate::topic::inventory_level(&self.prefix, topic),
                event_id: None,
                reason: e.to_string(),
            },
            Ok(t) => match self.limits.oversized(&t.kind, size) {
                Some(reason) => Admission::Refuse {
                    inventory: t.inventory,
                    event_id: match t.kind {
                        TopicKind::Evidence { event_id, .. } => Some(event_id),
                        _ => None,
                    },
                    reason,
                },
                None => Admission::Take(t),
            },
        }
    }

    /// The drops counted since the last call; see [`DeviceLimiter::take_dropped`].
    pub fn take_dropped(&mut self, now: Instant) -> HashMap<String, Dropped> {
        self.limiter.take_dropped(now)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::{Duration, Instant};

    use chrono::Utc;
    use governor::clock::FakeRelativeClock;

    use super::{Admission, DeviceLimiter, Hygiene, Limits, Verdict};
    use crate::topic::{Topic, TopicKind};

    fn limits(rate: u32, burst: u32) -> Limits {
        Limits {
            device_rate: NonZeroU32::new(rate).unwrap(),
            device_burst: NonZeroU32::new(burst).unwrap(),
            ..Limits::default()
        }
    }

    #[test]
    fn each_kind_of_payload_has_its_own_cap() {
        let l = Limits::default();
        let image = TopicKind::Evidence {
            event_id: uuid::Uuid::nil(),
            kind: "overview",
        };
        assert_eq!(l.oversized(&TopicKind::Events, 256 << 10), None);
        let why = l.oversized(&TopicKind::Events, (256 << 10) + 1).unwrap();
        assert!(
            why.contains("events payload over the receiver's cap of 262144 bytes"),
            "{why}"
        );
        assert_eq!(l.oversized(&TopicKind::Health, 64 << 10), None);
        assert!(l.oversized(&TopicKind::Health, (64 << 10) + 1).is_some());
        assert_eq!(l.oversized(&image, 8 << 20), None);
        assert!(
            l.oversized(&image, (8 << 20) + 1)
                .unwrap()
                .contains("evidence image")
        );
        // The device never sends an image the receiver refuses for its size.
        assert!(l.max_evidence_bytes >= device_max_packet());
    }

    /// The device's limit on a whole packet (`anpr_uplink::MAX_PACKET`, not a dependency of
    /// this crate): 8 MiB.
    fn device_max_packet() -> usize {
        8 << 20
    }

    #[test]
    fn a_message_is_taken_only_on_a_good_topic_within_its_rate_and_cap() {
        let clock = FakeRelativeClock::default();
        let mut h = Hygiene::with_clock("anpr/v1", limits(1000, 3), clock);
        let (t0, at) = (Instant::now(), Utc::now());
        let id = uuid::Uuid::now_v7();
        let image = format!("anpr/v1/KZ-1/evidence/{id}/overview");
        assert!(matches!(
            h.admit("anpr/v1/KZ-1/events", 1000, t0, at),
            Admission::Take(Topic {
                inventory: "KZ-1",
                kind: TopicKind::Events
            })
        ));
        assert_eq!(
            h.admit(&image, (8 << 20) + 1, t0, at),
            Admission::Refuse {
                inventory: "KZ-1",
                event_id: Some(id),
                reason: "evidence image over the receiver's cap of 8388608 bytes: refused unread"
                    .into()
            }
        );
        let Admission::Refuse {
            inventory,
            event_id: None,
            reason,
        } = h.admit("anpr/v1/KZ\x1b[31m/health", 10, t0, at)
        else {
            panic!("a bad inventory is refused");
        };
        assert_eq!(
            inventory, "KZ\x1b[31m",
            "recorded as it came, escaped when shown"
        );
        assert!(reason.contains("KZ\\u{1b}[31m"), "{reason}");
        // KZ-1 has used two of its burst of 3 (the refused image counted too; the bad topic
        // went to the rate of unparsed topics): one more is taken, then it is over its rate.
        assert!(matches!(
            h.admit("anpr/v1/KZ-1/health", 10, t0, at),
            Admission::Take(_)
        ));
        assert_eq!(
            h.admit("anpr/v1/KZ-1/health", 10, t0, at),
            Admission::Drop {
                inventory: "KZ-1",
                log: true,
                since_log: 1
            }
        );
        assert!(matches!(
            h.admit("anpr/v1/KZ-2/health", 10, t0, at),
            Admission::Take(_)
        ));
        assert_eq!(h.take_dropped(t0)["KZ-1"].count, 1);
    }

    #[test]
    fn a_device_over_its_rate_is_dropped_and_counted_while_another_is_not() {
        let clock = FakeRelativeClock::default();
        let mut l = DeviceLimiter::with_clock(&limits(10, 5), clock.clone());
        let t0 = Instant::now();
        let at = Utc::now();
        let taken = (0..20)
            .filter(|_| l.check("FLOOD", t0, at) == Verdict::Take)
            .count();
        assert_eq!(taken, 5, "the burst, then nothing until time passes");
        assert_eq!(
            l.check("QUIET", t0, at),
            Verdict::Take,
            "another device is not held back"
        );
        clock.advance(Duration::from_millis(100));
        assert_eq!(
            l.check("FLOOD", t0, at),
            Verdict::Take,
            "one more after 1/rate"
        );
        assert!(matches!(l.check("FLOOD", t0, at), Verdict::Drop { .. }));
        let dropped = l.take_dropped(t0);
        assert_eq!(dropped["FLOOD"].count, 16);
        assert!(!dropped.contains_key("QUIET"));
        assert!(l.take_dropped(t0).is_empty(), "taken once");
    }

    #[test]
    fn a_device_at_a_steady_rate_under_the_limit_is_never_dropped() {
        let clock = FakeRelativeClock::default();
        let mut l = DeviceLimiter::with_clock(&limits(1000, 100), clock.clone());
        let t0 = Instant::now();
        // 900 messages per second for 10 s, in bursts of 90 every 100 ms.
        for _ in 0..100 {
            for _ in 0..90 {
                assert_eq!(l.check("KZ-1", t0, Utc::now()), Verdict::Take);
            }
            clock.advance(Duration::from_millis(100));
        }
    }

    #[test]
    fn drops_are_logged_at_most_once_a_minute_per_device() {
        let clock = FakeRelativeClock::default();
        let mut l = DeviceLimiter::with_clock(&limits(1, 1), clock);
        let t0 = Instant::now();
        let at = Utc::now();
        assert_eq!(l.check("A", t0, at), Verdict::Take);
        let logs = |l: &mut DeviceLimiter<FakeRelativeClock>, dev: &str, now: Instant| {
            (0..100)
                .filter(|_| matches!(l.check(dev, now, at), Verdict::Drop { log: true, .. }))
                .count()
        };
        assert_eq!(logs(&mut l, "A", t0), 1, "the first drop is logged");
        assert_eq!(logs(&mut l, "A", t0 + Duration::from_secs(59)), 0);
        assert_eq!(
            l.check("A", t0 + Duration::from_mins(1), at),
            Verdict::Drop {
                log: true,
                since_log: 200
            },
            "a minute later, with the count since the last line"
        );
        assert_eq!(l.check("B", t0, at), Verdict::Take);
        assert_eq!(logs(&mut l, "B", t0), 1, "each device has its own minute");
    }
}
