//! The delivery window: which queued rows to send now, which to send again, and which are
//! done. A state machine without I/O, as rumqttc's `MqttState` is for MQTT: no tokio, no
//! SQLite, no MQTT client inside; time comes in as `Instant` arguments. The session loop
//! drives it:
//!
//! 1. [`Window::expire`] takes rows whose acknowledgement did not come within `ack_timeout`
//!    out of flight, so they are offered again;
//! 2. [`Window::wanted`] says which queued rows to read (and refills the backlog's tokens);
//! 3. for each row read, in sequence order, [`Window::verdict`] says send, skip (it is in
//!    flight) or stop; after a publish the loop reports it with [`Window::sent`];
//! 4. acknowledgements the queue has committed go to [`Window::acked`].
//!
//! Rules it keeps:
//! - a row is in flight at most once: it is offered again only after its ack timeout, or
//!   after a reconnect ([`Window::connected`] forgets everything in flight: the broker may
//!   have lost it);
//! - an acknowledgement takes a row out of flight only if it names the row's sequence number
//!   *and* its event id: a stray ack (right sequence, other id) changes nothing, so the row is
//!   sent again at its timeout rather than waiting for the next reconnect;
//! - rows queued before the connection came up (sequence below `live_from`) are the backlog:
//!   it drains in order at `backlog_rate` (a token bucket holding a tenth of a second's worth,
//!   at least one) within three quarters of the window; rows recorded since (live) take any
//!   free room at once;
//! - evidence images go out only after their event is acknowledged (the queue offers only
//!   those), at most four at a time, and wait while the event window is half full.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Evidence images in flight at most: images are large, events go first.
pub(crate) const IMAGES_IN_FLIGHT: usize = 4;

/// The window's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowConfig {
    pub ack_timeout: Duration,
    /// Events in flight at most (at least one).
    pub max_inflight: usize,
    /// Backlog events per second at most.
    pub backlog_rate: f64,
}

/// Backlog (queued before this connection) or live (recorded since).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Live,
    Backlog,
}

/// Undelivered rows to read: sequence above `after`, below `below` when set, at most
/// `limit`, in sequence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub after: u64,
    pub limit: usize,
    pub below: Option<u64>,
}

/// What the window wants read from the queue now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub live: Option<Range>,
    pub backlog: Option<Range>,
    /// Ready evidence images to read at most (with their bytes), leaving out `images_in_flight`.
    pub images: usize,
    /// `(sequence, sha256)` of the images in flight.
    pub images_in_flight: Vec<(u64, String)>,
}

/// What to do with one row read as [`Window::wanted`] said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Send,
    /// It is in flight already; look at the next row.
    Skip,
    /// No room (or the class ends here); send nothing more of this class now.
    Stop,
}

#[derive(Debug)]
struct Flight<N> {
    event_id: Uuid,
    sent: Instant,
    class: Class,
    note: N,
}

/// The state of one connection.
#[derive(Debug)]
struct Link<N> {
    inflight: BTreeMap<u64, Flight<N>>,
    /// First sequence number recorded after the connection came up; unknown until the
    /// queue's last sequence number has been read.
    live_from: Option<u64>,
    /// Rows of each class up to the cursor were sent on this connection (and are in flight
    /// or done) unless a timeout moved the cursor back below them.
    live_cursor: u64,
    backlog_cursor: u64,
    tokens: f64,
    refilled: Instant,
    images: HashMap<(u64, String), Instant>,
}

/// The delivery window; `N` is what the caller keeps with a row in flight (the report to
/// give when it is acknowledged).
#[derive(Debug)]
pub(crate) struct Window<N> {
    cfg: WindowConfig,
    link: Option<Link<N>>,
}

impl<N> Window<N> {
    pub fn new(cfg: WindowConfig) -> Self {
        Self {
            cfg: WindowConfig {
                max_inflight: cfg.max_inflight.max(1),
                ..cfg
            },
            link: None,
        }
    }

    /// A connection came up: everything in flight before is forgotten and offered again.
    pub fn connected(&mut self, now: Instant) {
        self.link = Some(Link {
            inflight: BTreeMap::new(),
            live_from: None,
            live_cursor: 0,
            backlog_cursor: 0,
            tokens: 0.0,
            refilled: now,
            images: HashMap::new(),
        });
    }

    /// The connection dropped: nothing is sent until [`connected`](Self::connected).
    pub fn disconnected(&mut self) {
        self.link = None;
    }

    pub fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// Whether the boundary between backlog and live rows is known yet (false while
    /// disconnected).
    pub fn knows_live_from(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.live_from.is_some())
    }

    /// The queue's highest sequence number as read after the connection came up: rows up to
    /// it are the backlog. Only the first call on a connection counts.
    pub fn set_last_seq(&mut self, last_seq: u64) {
        if let Some(l) = self.link.as_mut()
            && l.live_from.is_none()
        {
            l.live_from = Some(last_seq + 1);
            l.live_cursor = last_seq;
        }
    }

    /// Whether a row counts as delayed: recorded before this connection came up. Decided by
    /// sequence number, so a step of the wall clock cannot change it.
    pub fn is_backlog(&self, seq: u64) -> bool {
        self.link
            .as_ref()
            .and_then(|l| l.live_from)
            .is_some_and(|from| seq < from)
    }

    /// Events in flight now.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.link.as_ref().map_or(0, |l| l.inflight.len())
    }

    #[cfg(test)]
    pub fn is_in_flight(&self, seq: u64) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| l.inflight.contains_key(&seq))
    }

    /// Takes events and images whose acknowledgement did not come within the ack timeout
    /// out of flight, so they are offered again in sequence order; returns how many events.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.cfg.ack_timeout;
        let Some(l) = self.link.as_mut() else {
            return 0;
        };
        let expired: Vec<(u64, Class)> = l
            .inflight
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.sent) >= timeout)
            .map(|(seq, f)| (*seq, f.class))
            .collect();
        for (seq, class) in &expired {
            l.inflight.remove(seq);
            let cursor = match class {
                Class::Live => &mut l.live_cursor,
                Class::Backlog => &mut l.backlog_cursor,
            };
            *cursor = (*cursor).min(seq - 1);
        }
        l.images
            .retain(|_, sent| now.saturating_duration_since(*sent) < timeout);
        expired.len()
    }

    /// Which rows to read now. Each range's limit covers the room in the window plus the rows
    /// of that class in flight above its cursor (skipped), so one read finds every row that
    /// can go.
    pub fn wanted(&mut self, now: Instant) -> Wanted {
        let cfg = self.cfg;
        let Some(l) = self.link.as_mut() else {
            return Wanted::default();
        };
        let max_tokens = (cfg.backlog_rate * 0.1).max(1.0);
        l.tokens = (l.tokens
            + now.saturating_duration_since(l.refilled).as_secs_f64() * cfg.backlog_rate)
            .min(max_tokens);
        l.refilled = now;
        let Some(live_from) = l.live_from else {
            return Wanted::default();
        };
        let free = cfg.max_inflight.saturating_sub(l.inflight.len());
        let above = |class: Class, cursor: u64| {
            l.inflight
                .range(cursor + 1..)
                .filter(|(_, f)| f.class == class)
                .count()
        };
        let live = (free > 0).then(|| Range {
            after: l.live_cursor,
            limit: free + above(Class::Live, l.live_cursor),
            below: None,
        });
        let backlog_room = free
            .min(backlog_share(cfg.max_inflight).saturating_sub(backlog_in_flight(l)))
            .min(l.tokens as usize);
        let backlog = (backlog_room > 0 && l.backlog_cursor + 1 < live_from).then(|| Range {
            after: l.backlog_cursor,
            limit: backlog_room + above(Class::Backlog, l.backlog_cursor),
            below: Some(live_from),
        });
        let images = if l.inflight.len() >= (cfg.max_inflight / 2).max(1) {
            0
        } else {
            IMAGES_IN_FLIGHT.saturating_sub(l.images.len())
        };
        Wanted {
            live,
            backlog,
            images,
            images_in_flight: {
                // Sorted, so that two calls on the same state want the same.
                let mut v: Vec<(u64, String)> = l.images.keys().cloned().collect();
                v.sort_unstable();
                v
            },
        }
    }

    /// Whether the row `seq` of `class`, read as [`wanted`](Self::wanted) said, goes now.
    pub fn verdict(&self, class: Class, seq: u64) -> Verdict {
        let Some(l) = self.link.as_ref() else {
            return Verdict::Stop;
        };
        let Some(live_from) = l.live_from else {
            return Verdict::Stop;
        };
        if l.inflight.contains_key(&seq) {
            return Verdict::Skip;
        }
        if l.inflight.len() >= self.cfg.max_inflight {
            return Verdict::Stop;
        }
        let fits = match class {
            Class::Live => seq >= live_from,
            Class::Backlog => {
                seq < live_from
                    && l.tokens >= 1.0
                    && backlog_in_flight(l) < backlog_share(self.cfg.max_inflight)
            }
        };
        if fits { Verdict::Send } else { Verdict::Stop }
    }

    /// Reports that the row was published (after [`Verdict::Send`]).
    pub fn sent(&mut self, class: Class, seq: u64, event_id: Uuid, note: N, now: Instant) {
        let Some(l) = self.link.as_mut() else {
            return;
        };
        debug_assert!(
            !l.inflight.contains_key(&seq),
            "row {seq} sent while in flight"
        );
        match class {
            Class::Live => l.live_cursor = l.live_cursor.max(seq),
            Class::Backlog => {
                l.backlog_cursor = l.backlog_cursor.max(seq);
                l.tokens -= 1.0;
            }
        }
        l.inflight.insert(
            seq,
            Flight {
                event_id,
                sent: now,
                class,
                note,
            },
        );
    }

    /// An acknowledgement of the event `event_id` with sequence `seq` (committed to the
    /// queue): if that row is in flight it is done, and its note comes back. An ack whose
    /// event id is not the one in flight under `seq` changes nothing.
    pub fn acked(&mut self, seq: u64, event_id: Uuid) -> Option<N> {
        let l = self.link.as_mut()?;
        if l.inflight.get(&seq)?.event_id != event_id {
            return None;
        }
        l.inflight.remove(&seq).map(|f| f.note)
    }

    /// Evidence images that may still go now.
    pub fn image_room(&self) -> usize {
        self.link
            .as_ref()
            .map_or(0, |l| IMAGES_IN_FLIGHT.saturating_sub(l.images.len()))
    }

    /// Reports that an evidence image was published.
    pub fn image_sent(&mut self, seq: u64, sha256: &str, now: Instant) {
        if let Some(l) = self.link.as_mut() {
            l.images.insert((seq, sha256.to_string()), now);
        }
    }

    /// An acknowledgement of an evidence image.
    pub fn image_acked(&mut self, seq: u64, sha256: &str) {
        if let Some(l) = self.link.as_mut() {
            l.images.remove(&(seq, sha256.to_string()));
        }
    }
}

/// Backlog events in flight at most: three quarters of the window, at least one.
fn backlog_share(max_inflight: usize) -> usize {
    (max_inflight * 3 / 4).max(1)
}

fn backlog_in_flight<N>(l: &Link<N>) -> usize {
    l.inflight
        .values()
        .filter(|f| f.class == Class::Backlog)
        .count()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::time::{Duration, Instant};

    use proptest::prelude::*;
    use uuid::Uuid;

    use super::{Class, IMAGES_IN_FLIGHT, Range, Verdict, Window, WindowConfig};

    const TIMEOUT: Duration = Duration::from_secs(3);

    fn window(max_inflight: usize, backlog_rate: f64) -> Window<u64> {
        Window::new(WindowConfig {
            ack_timeout: TIMEOUT,
            max_inflight,
            backlog_rate,
        })
    }

    /// The queue as the store would answer [`Window::wanted`]: undelivered rows by sequence.
    #[derive(Default)]
    struct Queue {
        rows: BTreeMap<u64, Uuid>,
        last_seq: u64,
    }

    impl Queue {
        fn append(&mut self, n: usize) {
            for _ in 0..n {
                self.last_seq += 1;
                self.rows.insert(self.last_seq, Uuid::now_v7());
            }
        }

        fn read(&self, r: Range) -> Vec<(u64, Uuid)> {
            self.rows
                .range(r.after + 1..)
                .take(r.limit)
                .take_while(|(s, _)| r.below.is_none_or(|b| **s < b))
                .map(|(s, id)| (*s, *id))
                .collect()
        }
    }

    /// One pass of the session loop: expire, read, send what the window allows. Returns the
    /// rows sent, live first.
    fn pass(w: &mut Window<u64>, q: &Queue, now: Instant) -> Vec<u64> {
        w.expire(now);
        let wanted = w.wanted(now);
        if !w.knows_live_from() {
            w.set_last_seq(q.last_seq);
        }
        let mut sent = Vec::new();
        for (class, range) in [(Class::Live, wanted.live), (Class::Backlog, wanted.backlog)] {
            let Some(range) = range else { continue };
            for (seq, id) in q.read(range) {
                match w.verdict(class, seq) {
                    Verdict::Send => {
                        w.sent(class, seq, id, seq, now);
                        sent.push(seq);
                    }
                    Verdict::Skip => {}
                    Verdict::Stop => break,
                }
            }
        }
        sent
    }

    #[test]
    fn nothing_goes_before_the_connection_is_up_and_the_backlog_boundary_is_known() {
        let mut q = Queue::default();
        q.append(3);
        let mut w = window(10, 1000.0);
        let t0 = Instant::now();
        assert_eq!(w.wanted(t0), super::Wanted::default());
        assert_eq!(w.verdict(Class::Live, 1), Verdict::Stop);
        w.connected(t0);
        assert_eq!(w.wanted(t0), super::Wanted::default(), "boundary unknown");
        w.set_last_seq(q.last_seq);
        w.set_last_seq(99);
        assert!(
            w.is_backlog(3) && !w.is_backlog(4),
            "only the first call counts"
        );
    }

    #[test]
    fn live_rows_go_at_once_while_the_backlog_keeps_to_its_rate_and_share() {
        let mut q = Queue::default();
        q.append(100);
        let mut w = window(8, 20.0);
        let t0 = Instant::now();
        w.connected(t0);
        assert!(pass(&mut w, &q, t0).is_empty(), "no tokens yet");
        q.append(2);
        // 0.1 s: two tokens, the bucket's size (a tenth of a second at 20/s).
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(pass(&mut w, &q, t1), [101, 102, 1, 2]);
        assert!(w.is_backlog(2) && !w.is_backlog(101));
        // Tokens come back, but the backlog holds three quarters of the window at most.
        let mut t = t1;
        for _ in 0..10 {
            t += Duration::from_millis(200);
            pass(&mut w, &q, t);
        }
        assert_eq!(w.in_flight(), 2 + 6, "6 of 8 for the backlog");
        q.append(1);
        t += Duration::from_millis(10);
        assert!(pass(&mut w, &q, t).is_empty(), "window full");
        assert_eq!(w.acked(1, q.rows[&1]), Some(1));
        q.rows.remove(&1);
        t += Duration::from_millis(200);
        assert_eq!(pass(&mut w, &q, t), [103], "live takes the free room first");
        assert!(pass(&mut w, &q, t).is_empty(), "window full");
    }

    #[test]
    fn a_row_not_acknowledged_within_the_timeout_is_offered_again_and_not_before() {
        let mut q = Queue::default();
        q.append(3);
        let mut w = window(10, 1e6);
        let t0 = Instant::now();
        w.connected(t0);
        w.set_last_seq(0); // all three rows recorded on this connection: live
        assert_eq!(pass(&mut w, &q, t0), [1, 2, 3]);
        assert_eq!(w.acked(2, q.rows[&2]), Some(2));
        q.rows.remove(&2);
        assert!(pass(&mut w, &q, t0 + TIMEOUT / 2).is_empty());
        assert_eq!(w.expire(t0 + TIMEOUT), 2);
        assert_eq!(pass(&mut w, &q, t0 + TIMEOUT), [1, 3], "in sequence order");
    }

    #[test]
    fn a_stray_ack_naming_another_event_leaves_the_row_in_flight_until_its_timeout() {
        let mut q = Queue::default();
        q.append(1);
        let mut w = window(10, 1e6);
        let t0 = Instant::now();
        w.connected(t0);
        assert!(pass(&mut w, &q, t0).is_empty());
        assert_eq!(pass(&mut w, &q, t0 + Duration::from_millis(20)), [1]);
        assert_eq!(w.acked(1, Uuid::now_v7()), None, "stray ack");
        assert!(
            w.is_in_flight(1),
            "the stray ack took nothing out of flight"
        );
        assert!(pass(&mut w, &q, t0 + TIMEOUT).is_empty(), "not sent twice");
        let again = t0 + Duration::from_millis(20) + TIMEOUT;
        assert_eq!(pass(&mut w, &q, again), [1], "sent again at its timeout");
        assert_eq!(w.acked(1, q.rows[&1]), Some(1));
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn a_reconnect_offers_every_unacknowledged_row_again_as_backlog() {
        let mut q = Queue::default();
        let mut w = window(10, 1e6);
        let t0 = Instant::now();
        w.connected(t0);
        w.set_last_seq(0);
        q.append(4);
        assert_eq!(pass(&mut w, &q, t0), [1, 2, 3, 4]);
        w.acked(1, q.rows[&1]);
        q.rows.remove(&1);
        w.disconnected();
        assert_eq!(w.verdict(Class::Live, 5), Verdict::Stop);
        assert_eq!(
            w.acked(2, q.rows[&2]),
            None,
            "nothing in flight after a drop"
        );
        let t1 = t0 + Duration::from_secs(1);
        w.connected(t1);
        assert!(pass(&mut w, &q, t1).is_empty(), "boundary read first");
        assert_eq!(pass(&mut w, &q, t1 + Duration::from_millis(20)), [2, 3, 4]);
        assert!(w.is_backlog(4));
    }

    #[test]
    fn images_wait_while_the_event_window_is_half_full_and_go_a_few_at_a_time() {
        let mut q = Queue::default();
        let mut w = window(4, 1e6);
        let t0 = Instant::now();
        w.connected(t0);
        w.set_last_seq(0);
        assert_eq!(w.wanted(t0).images, IMAGES_IN_FLIGHT);
        q.append(2);
        pass(&mut w, &q, t0);
        assert_eq!(w.wanted(t0).images, 0, "two of four events in flight");
        w.acked(1, q.rows[&1]);
        let wanted = w.wanted(t0);
        assert_eq!(wanted.images, IMAGES_IN_FLIGHT);
        w.image_sent(1, "aa", t0);
        w.image_sent(1, "bb", t0);
        let wanted = w.wanted(t0);
        assert_eq!(wanted.images, IMAGES_IN_FLIGHT - 2);
        assert_eq!(wanted.images_in_flight.len(), 2);
        w.image_acked(1, "aa");
        assert_eq!(w.image_room(), IMAGES_IN_FLIGHT - 1);
        w.expire(t0 + TIMEOUT);
        assert_eq!(
            w.image_room(),
            IMAGES_IN_FLIGHT,
            "unacknowledged image offered again"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(usize),
        Wait(u64),
        Ack(usize),
        Stray(usize),
        Drop,
        Reconnect,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1usize..6).prop_map(Op::Append),
            4 => (0u64..2_000).prop_map(Op::Wait),
            3 => any::<usize>().prop_map(Op::Ack),
            1 => any::<usize>().prop_map(Op::Stray),
            1 => Just(Op::Drop),
            1 => Just(Op::Reconnect),
        ]
    }

    /// A pass of the session loop that also checks no row goes out while an earlier copy on
    /// this connection is within its ack timeout; `out` keeps when each copy went.
    fn step(
        w: &mut Window<u64>,
        q: &Queue,
        out: &mut HashMap<u64, Instant>,
        now: Instant,
    ) -> Result<Vec<u64>, TestCaseError> {
        let sent = pass(w, q, now);
        for &seq in &sent {
            if let Some(at) = out.get(&seq) {
                prop_assert!(
                    now.duration_since(*at) >= TIMEOUT,
                    "row {} sent again {:?} after its last copy",
                    seq,
                    now.duration_since(*at)
                );
            }
            out.insert(seq, now);
        }
        Ok(sent)
    }

    proptest! {
        /// Every row handed to the window is either acknowledged or offered again after its
        /// timeout or a reconnect, never two copies at once, and a healthy link delivers all.
        #[test]
        fn every_row_is_acknowledged_or_offered_again_and_never_twice_in_flight(
            max_inflight in 1usize..12,
            rate in prop_oneof![Just(5.0), Just(40.0), Just(1e6)],
            ops in proptest::collection::vec(op(), 1..80),
        ) {
            let mut q = Queue::default();
            let mut w = window(max_inflight, rate);
            let mut now = Instant::now();
            // Copies out on the current connection, not yet acknowledged: when each went.
            let mut out: HashMap<u64, Instant> = HashMap::new();
            let mut up = false;
            for op in ops {
                match op {
                    Op::Append(n) => q.append(n),
                    Op::Wait(ms) => now += Duration::from_millis(ms),
                    Op::Ack(i) | Op::Stray(i) if !out.is_empty() => {
                        let mut seqs: Vec<u64> = out.keys().copied().collect();
                        seqs.sort_unstable();
                        let seq = seqs[i % seqs.len()];
                        if matches!(op, Op::Stray(_)) {
                            let before = w.is_in_flight(seq);
                            prop_assert_eq!(w.acked(seq, Uuid::now_v7()), None);
                            prop_assert_eq!(w.is_in_flight(seq), before);
                        } else if let Some(id) = q.rows.remove(&seq) {
                            // Late acks (after the timeout) count too: the row is delivered.
                            if let Some(note) = w.acked(seq, id) {
                                prop_assert_eq!(note, seq);
                            }
                            prop_assert!(!w.is_in_flight(seq));
                            out.remove(&seq);
                        }
                    }
                    Op::Ack(_) | Op::Stray(_) => {}
                    Op::Drop => {
                        w.disconnected();
                        up = false;
                        out.clear();
                    }
                    Op::Reconnect => {
                        w.connected(now);
                        up = true;
                        out.clear();
                    }
                }
                if up {
                    step(&mut w, &q, &mut out, now)?;
                }
                prop_assert!(w.in_flight() <= max_inflight);
            }
            // A healthy link from now on: every row sent is acknowledged, and every row goes.
            if !up {
                w.connected(now);
                out.clear();
            }
            for _ in 0..2_000 {
                if q.rows.is_empty() {
                    break;
                }
                now += Duration::from_millis(250);
                for seq in step(&mut w, &q, &mut out, now)? {
                    let id = q.rows.remove(&seq).expect("only pending rows are read");
                    prop_assert_eq!(w.acked(seq, id), Some(seq));
                    out.remove(&seq);
                }
            }
            prop_assert!(q.rows.is_empty(), "left undelivered: {:?}", q.rows.keys().collect::<Vec<_>>());
            prop_assert_eq!(w.in_flight(), 0);
        }
    }
}
