//! `/`: the status page, HTML rendered on the device from a [`Snapshot`].
//!
//! Plain HTML and a little CSS, no JavaScript; the browser reloads it every
//! [`REFRESH_S`](crate::REFRESH_S) seconds. Every value that comes from the device (camera
//! ids, plates, fault messages, ...) goes through [`escape`] in text and attributes, and
//! through `path_segment` in URLs. Elements that carry a figure have a stable `id` or `data-`
//! attribute, so tests (and scripts) can find them.

use std::fmt::Write as _;

use anpr_pipeline::status::HistogramSnapshot;
use chrono::{DateTime, Utc};

use crate::snapshot::{CameraFigures, QueueFigures, Snapshot};

pub use anpr_types::html::escape;

/// `s` percent-encoded for one segment of a URL path (only unreserved characters kept).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A duration in seconds as a person reads it: `4 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
fn span(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `at` in the site's time zone.
fn local(snap: &Snapshot, at: DateTime<Utc>) -> String {
    at.with_timezone(&snap.time_zone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The upper bound (seconds) of the bucket holding the 95th percentile; `None` when empty or
/// beyond the last finite bound.
fn p95(h: &HistogramSnapshot) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let want = (h.count as f64 * 0.95).ceil() as u64;
    let mut seen = 0;
    for (bound, n) in &h.buckets {
        seen += n;
        if seen >= want {
            return bound.is_finite().then_some(*bound);
        }
    }
    None
}

fn ms(s: f64) -> String {
    if s < 0.01 {
        format!("{:.2} ms", s * 1000.0)
    } else {
        format!("{:.0} ms", s * 1000.0)
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;vertical-align:top}\
tr:nth-child(even){background:#f4f4f4}.ok{color:#176117;font-weight:bold}\
.bad{color:#a01010;font-weight:bold}.camera{display:inline-block;vertical-align:top;\
margin:0 1.5em 1em 0}.camera img{max-width:480px;border:1px solid #999;display:block}\
img.crop{max-height:48px}.muted{color:#777}";

/// The whole page.
#[must_use]
pub fn render(snap: &Snapshot) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let inv = escape(&snap.inventory);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\
         <title>ANPR {inv}: status</title><style>{STYLE}</style></head><body>\
         <h1>ANPR device <span id=\"inventory\">{inv}</span></h1>\
         <p>Site <span id=\"site\">{site}</span> &middot; as of <span id=\"taken-at\">{at}</span> \
         &middot; this page reloads every {refresh} s &middot; <a href=\"/metrics\">metrics</a></p>",
        refresh = crate::REFRESH_S,
        site = escape(&snap.site),
        at = escape(&local(snap, snap.taken_at)),
    );
    link(&mut o, snap);
    gnss(&mut o, snap);
    o.push_str("<h2 id=\"cameras\">Cameras</h2>");
    if snap.cameras.is_empty() {
        o.push_str("<p class=\"muted\">No camera has started yet.</p>");
    }
    for c in &snap.cameras {
        camera(&mut o, snap, c);
    }
    recent(&mut o, snap);
    faults(&mut o, snap);
    o.push_str("</body></html>\n");
    o
}

/// A mobile unit's receiver: fix, satellites, HDOP, the last fix and its age.
fn gnss(o: &mut String, snap: &Snapshot) {
    let Some(g) = &snap.gnss else { return };
    let class = if g.fix == "none" { "bad" } else { "ok" };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "&ndash;".to_string());
    let _ = write!(
        o,
        "<h2 id=\"gnss\">GNSS</h2><table>\
         <tr><th>Source</th><td>{}</td></tr>\
         <tr><th>Fix</th><td id=\"gnss-fix\" class=\"{class}\">{}</td></tr>\
         <tr><th>Satellites used / HDOP</th><td id=\"gnss-satellites\">{} / {}</td></tr>\
         <tr><th>Last fix (lat, lon), age</th><td>{}</td></tr>\
         <tr><th>Unusable lines / connections lost</th><td>{} / {}</td></tr></table>",
        escape(&g.source),
        g.fix,
        opt(g.satellites.map(|s| s.to_string())),
        opt(g.hdop.map(|h| format!("{h:.1}"))),
        opt(g.lat.zip(g.lon).map(|(lat, lon)| format!(
            "{lat:.6}, {lon:.6}, {}",
            span(g.fix_age_s.unwrap_or(0.0).max(0.0))
        ))),
        g.malformed,
        g.disconnects,
    );
}

fn link(o: &mut String, snap: &Snapshot) {
    let l = &snap.link;
    let (class, state) = if l.connected {
        ("ok", "connected")
    } else {
        ("bad", "disconnected")
    };
    let _ = write!(
        o,
        "<h2 id=\"link\">Link and backlog</h2><table>\
         <tr><th>Link to the central side</th><td id=\"link-state\" class=\"{class}\">{state}</td></tr>\
         <tr><th>Broker</th><td id=\"link-broker\">{}</td></tr>\
         <tr><th>This run: sent / acknowledged / sent again</th><td id=\"link-counts\">{} / {} / {}</td></tr>\
         <tr><th>This run: images sent / acknowledged</th><td>{} / {}</td></tr>\
         <tr><th>This run: connection errors</th><td>{}</td></tr>\
         <tr><th>This run: acknowledgements refused (bad signature)</th><td id=\"bad-acks\"{}>{}</td></tr>",
        escape(&l.broker),
        l.published,
        l.acked,
        l.resent,
        l.images_published,
        l.images_acked,
        l.connection_errors,
        if l.bad_acks > 0 { " class=\"bad\"" } else { "" },
        l.bad_acks
    );
    match &snap.queue {
        Ok(q) => queue(o, snap, q),
        Err(e) => {
            let _ = write!(
                o,
                "<tr><th>Queue</th><td id=\"queue-error\" class=\"bad\">cannot be read: {}</td></tr>",
                escape(e)
            );
        }
    }
    o.push_str("</table>");
}

fn queue(o: &mut String, snap: &Snapshot, q: &QueueFigures) {
    let oldest = q.oldest_pending.map_or_else(
        || "none".to_string(),
        |p| {
            format!(
                "#{} captured {} ({} ago)",
                p.seq,
                escape(&local(snap, p.captured_at)),
                span(snap.age_s(p.captured_at))
            )
        },
    );
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    let disk = match snap.quota_bytes {
        Some(quota) => format!("{} of a {} quota", mib(q.bytes_used), mib(quota)),
        None => format!("{} (no quota)", mib(q.bytes_used)),
    };
    let d = &q.drops;
    let dropped_class = if d.any() { "bad" } else { "ok" };
    let _ = write!(
        o,
        "<tr><th>Backlog: events waiting for delivery</th><td id=\"backlog-events\">{}</td></tr>\
         <tr><th>Backlog: images waiting</th><td id=\"backlog-evidence\">{}</td></tr>\
         <tr><th>Oldest event waiting</th><td id=\"backlog-oldest\">{oldest}</td></tr>\
         <tr><th>Events recorded (ever)</th><td id=\"recorded\">{}</td></tr>\
         <tr><th>Events delivered (ever)</th><td id=\"delivered\">{}</td></tr>\
         <tr><th>Dropped by the disk quota (ever)</th><td id=\"dropped\" class=\"{dropped_class}\">\
         {} passages, {} violations, {} passage images, {} violation images</td></tr>\
         <tr><th>Queue on disk</th><td>{disk}</td></tr>",
        q.stats.pending,
        q.pending_evidence,
        q.stats.last_seq,
        q.delivered_total(),
        d.passages,
        d.violations,
        d.passage_evidence,
        d.violation_evidence,
    );
}

fn camera(o: &mut String, snap: &Snapshot, c: &CameraFigures) {
    let id = escape(&c.id);
    let seg = escape(&path_segment(&c.id));
    let state = c.state.state.as_str();
    let class = match state {
        "live" => "ok",
        "starting" | "ended" => "muted",
        _ => "bad",
    };
    let _ = write!(o, "<div class=\"camera\" id=\"camera-{id}\"><h3>{id}</h3>");
    if c.has_snapshot {
        let _ = write!(
            o,
            "<img src=\"/camera/{seg}/snapshot.jpg\" alt=\"latest frame of camera {id}\">"
        );
    } else {
        o.push_str("<p class=\"muted\">No snapshot yet.</p>");
    }
    let detail = if c.state.detail.is_empty() {
        String::new()
    } else {
        format!(": {}", escape(&c.state.detail))
    };
    let last = c.last_frame.map_or_else(
        || "none yet".to_string(),
        |at| format!("{} ago", span(snap.age_s(at))),
    );
    let _ = write!(
        o,
        "<table><tr><th>State</th><td><span class=\"state {class}\" data-camera=\"{id}\">{state}</span> \
         since {since}{detail}</td></tr>\
         <tr><th>Frames in / recognised / dropped</th><td data-camera-frames=\"{id}\">{} / {} / {}</td></tr>\
         <tr><th>Frame rate</th><td>{:.1} fps</td></tr>\
         <tr><th>Latest frame</th><td>{last}</td></tr>\
         <tr><th>Reconnects</th><td>{}</td></tr>",
        c.frames_in,
        c.frames_recognised,
        c.frames_dropped,
        c.fps,
        c.reconnects,
        since = escape(&local(snap, c.state.since)),
    );
    for (stage, h) in &c.latency {
        if h.count == 0 {
            continue;
        }
        let p95 = p95(h).map_or_else(|| "over 10 s".to_string(), ms);
        let _ = write!(
            o,
            "<tr><th>Latency: {}</th><td>mean {}, 95% within {p95} ({} timed)</td></tr>",
            stage.as_str(),
            ms(h.sum_s / h.count as f64),
            h.count
        );
    }
    o.push_str("</table></div>");
}

fn recent(o: &mut String, snap: &Snapshot) {
    o.push_str("<h2 id=\"recent\">Recent passages and violations</h2>");
    if snap.recent.is_empty() {
        o.push_str("<p class=\"muted\">Nothing recorded since the device started.</p>");
        return;
    }
    o.push_str(
        "<table><tr><th>#</th><th>Captured</th><th>Camera</th><th>Kind</th><th>Plate</th>\
         <th>Crop</th><th>Vehicle</th><th>Direction</th><th>Rule</th></tr>",
    );
    for e in &snap.recent {
        let kind = e.kind.as_str();
        let plate = if e.plate.is_empty() {
            format!("<span class=\"muted\">({})</span>", escape(e.plate_status))
        } else {
            escape(&e.plate)
        };
        let crop = if e.plate_jpeg.is_some() {
            format!(
                "<img class=\"crop\" src=\"/event/{}/plate.jpg\" alt=\"plate crop of {}\">",
                e.seq,
                escape(&e.plate)
            )
        } else {
            String::new()
        };
        let rule = e.rule.as_ref().map_or_else(String::new, |(rule, reason)| {
            format!("{}: {}", escape(rule), escape(reason))
        });
        let _ = write!(
            o,
            "<tr class=\"event {kind}\" data-seq=\"{seq}\"><td>{seq}</td><td>{at}</td><td>{cam}</td>\
             <td>{kind}</td><td class=\"plate\">{plate}</td><td>{crop}</td><td>{veh}</td><td>{dir}</td>\
             <td>{rule}</td></tr>",
            seq = e.seq,
            at = escape(&local(snap, e.captured_at)),
            cam = escape(&e.camera),
            veh = escape(&e.vehicle),
            dir = escape(e.direction.as_deref().unwrap_or("")),
        );
    }
    o.push_str("</table>");
}

fn faults(o: &mut String, snap: &Snapshot) {
    o.push_str("<h2 id=\"faults\">Faults now</h2>");
    if snap.faults.is_empty() {
        o.push_str("<p id=\"no-faults\" class=\"ok\">None.</p>");
    } else {
        o.push_str(
            "<table id=\"faults-now\"><tr><th>Code</th><th>About</th><th>Message</th><th>Since</th></tr>",
        );
        for f in &snap.faults {
            let since = f
                .since
                .map_or_else(|| "(happened)".to_string(), |at| escape(&local(snap, at)));
            let _ = write!(
                o,
                "<tr class=\"fault\" data-code=\"{code}\"><td class=\"bad\">{code}</td><td>{about}</td>\
                 <td>{msg}</td><td>{since}</td></tr>",
                code = escape(&f.code),
                about = escape(f.subject.as_deref().unwrap_or("")),
                msg = escape(&f.message),
            );
        }
        o.push_str("</table>");
    }
    o.push_str("<h2 id=\"history\">Fault history</h2>");
    if snap.history.is_empty() {
        o.push_str("<p class=\"muted\">No fault since the device started.</p>");
        return;
    }
    o.push_str(
        "<table id=\"fault-history\"><tr><th>When</th><th>What</th><th>Code</th><th>About</th>\
         <th>Message</th></tr>",
    );
    for r in snap.history.iter().rev() {
        let (class, what) = if r.raised {
            ("bad", "raised")
        } else {
            ("ok", "cleared")
        };
        let _ = write!(
            o,
            "<tr class=\"change\" data-code=\"{code}\"><td>{at}</td><td class=\"{class}\">{what}</td>\
             <td>{code}</td><td>{about}</td><td>{msg}</td></tr>",
            at = escape(&local(snap, r.at)),
            code = escape(&r.code),
            about = escape(r.subject.as_deref().unwrap_or("")),
            msg = escape(&r.message),
        );
    }
    o.push_str("</table>");
}
