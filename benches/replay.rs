//! Replay bench: a backlog of N queued events delivered to a local mosquitto and acknowledged by
//! the reference receiver, next to a baseline measured in the same run: the same payloads
//! published at QoS 1 straight to the broker and counted by a bare subscriber (no queue, no
//! storage, no acknowledgement). Also durable appends per second, one commit per event (the
//! baseline) and grouped 64 to a commit, the queue's size on disk, and the resident memory of
//! the process (uplink, receiver and their SQLite connections) while the backlog drains.
//!
//! Live latency: while the backlog drains, live events are recorded ten times a second; their
//! capture-to-receiver delays (p50, p99) are set beside those of live events sent with an empty
//! queue, in the same run.
//!
//! `cargo bench -p anpr --bench replay` (N = 20000; set ANPR_BENCH_EVENTS to change it).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/it/util.rs"]
mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anpr_store::Store;
use anpr_testkit::{BrokerOptions, Mosquitto};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

async fn baseline(port: u16, payloads: &[Vec<u8>]) -> Duration {
    let count = Arc::new(AtomicUsize::new(0));
    let mut opts = MqttOptions::new("bench-sub", "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut sub_loop) = AsyncClient::new(opts, 1024);
    sub.subscribe("bench/events", QoS::AtLeastOnce)
        .await
        .unwrap();
    let c = count.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        while let Ok(ev) = sub_loop.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Packet::Publish(_)) => {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    ready_rx.await.unwrap();
    let mut opts = MqttOptions::new("bench-pub", "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_inflight(256);
    let (publ, mut pub_loop) = AsyncClient::new(opts, 1024);
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    let start = Instant::now();
    for p in payloads {
        publ.publish("bench/events", QoS::AtLeastOnce, false, p.clone())
            .await
            .unwrap();
    }
    while count.load(Ordering::Relaxed) < payloads.len() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// Resident memory of this process now, in MB (from /proc).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Appends `n` events in transactions of `group`; returns the time taken.
fn append_grouped(path: &std::path::Path, n: usize, group: usize) -> Duration {
    let mut store = Store::open(path).unwrap();
    let t = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(group);
        let batch = (0..k)
            .map(|_| anpr_store::NewRecord {
                build: Box::new(|seq| util::synthetic_event("KZ-BENCH", seq)),
                evidence: Vec::new(),
            })
            .collect();
        store.append_batch(batch).unwrap();
        left -= k;
    }
    t.elapsed()
}

/// Records one live event every `every` until `stop` is set; returns how many.
fn record_live(
    queue: std::path::PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    every: Duration,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            util::append_events(&queue, "KZ-BENCH", 1);
            n += 1;
            std::thread::sleep(every);
        }
        n
    })
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Live events alone, with nothing queued: their capture-to-receiver delays.
async fn idle_latency(broker: &Mosquitto, dir: &std::path::Path) -> Vec<f64> {
    let queue = dir.join("idle-queue.sqlite");
    let db = dir.join("idle-central.sqlite");
    let central = util::Central::start(broker, db.clone());
    let uplink = util::Uplink::start(&queue, "KZ-BENCH", broker, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let live = record_live(queue.clone(), stop.clone(), Duration::from_millis(100));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    live.join().unwrap();
    uplink.drain(Duration::from_secs(30)).await;
    central.stop().await;
    anpr_central::Receiver::open(&db)
        .unwrap()
        .arrival_delays("KZ-BENCH")
        .unwrap()
        .into_iter()
        .map(|(_, d)| d)
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("ANPR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    if anpr_testkit::mosquitto_binary().is_err() {
        println!("skipping the replay bench: mosquitto is not installed (deploy/setup.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let db = dir.path().join("central.sqlite");

    let t = Instant::now();
    util::append_events(&queue, "KZ-BENCH", n);
    let append = t.elapsed();
    let grouped = append_grouped(&dir.path().join("grouped.sqlite"), n, 64);
    let store = Store::open(&queue).unwrap();
    let payloads: Vec<Vec<u8>> = store
        .pending(0, n)
        .unwrap()
        .into_iter()
        .map(|p| {
            serde_json::to_vec(&anpr_types::Delivery {
                event: p.event,
                sent_at: chrono::Utc::now(),
                delayed: true,
            })
            .unwrap()
        })
        .collect();
    let bytes_per_event = payloads.iter().map(Vec::len).sum::<usize>() / n.max(1);
    let disk: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", queue.display())).ok())
        .map(|m| m.len())
        .sum();

    // Plain MQTT: the baseline's bare clients publish outside the ACL's topics, and the cost
    // of TLS is measured on its own (`--bench tls_handshake`).
    let broker = Mosquitto::start_with_options(BrokerOptions {
        plaintext: true,
        ..BrokerOptions::default()
    })
    .unwrap();
    let base = baseline(broker.port(), &payloads).await;
    drop(payloads);

    let idle = idle_latency(&broker, dir.path()).await;

    let central = util::Central::start(&broker, db.clone());
    let t = Instant::now();
    let uplink = util::Uplink::start_with_rate(
        &queue,
        "KZ-BENCH",
        &broker,
        Duration::from_secs(30),
        100_000.0,
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let live = record_live(queue.clone(), stop.clone(), Duration::from_millis(100));
    let rss_before = rss_mb();
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_mb());
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    // The backlog is done when every one of its N rows is delivered.
    while (1..=n as u64)
        .step_by(997)
        .chain([n as u64])
        .any(|s| store.is_delivered(s).unwrap() != Some(true))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let replay = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let live_count = live.join().unwrap();
    let rss_peak = sampler.join().unwrap();
    uplink.drain(Duration::from_mins(10)).await;
    central.stop().await;
    let left = store.stats().unwrap().pending;
    let during: Vec<f64> = anpr_central::Receiver::open(&db)
        .unwrap()
        .arrival_delays("KZ-BENCH")
        .unwrap()
        .into_iter()
        .filter(|(seq, _)| *seq > n as u64)
        .map(|(_, d)| d)
        .collect();

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("events: {n}, {bytes_per_event} bytes of JSON each");
    println!(
        "durable appends, one commit each (baseline): {:>7.0} /s",
        rate(append)
    );
    println!(
        "durable appends, 64 to a commit:             {:>7.0} /s  ({:.1}x the baseline)",
        rate(grouped),
        append.as_secs_f64() / grouped.as_secs_f64()
    );
    println!(
        "baseline: QoS 1 publish to a bare subscriber: {:>7.0} /s",
        rate(base)
    );
    println!(
        "replay: queue -> broker -> receiver -> ack:  {:>7.0} /s  ({:.2}x the baseline, {left} left)",
        rate(replay),
        base.as_secs_f64() / replay.as_secs_f64()
    );
    println!(
        "queue on disk: {:.1} MB per 100,000 events",
        disk as f64 / n as f64 * 100_000.0 / 1e6
    );
    println!(
        "resident memory during the replay: {rss_before:.0} MB at its start, {rss_peak:.0} MB at most (uplink, receiver, their SQLite connections)"
    );
    println!(
        "live capture-to-receiver delay, empty queue:   p50 {:.3} s  p99 {:.3} s  ({} events)",
        percentile(idle.clone(), 0.5),
        percentile(idle.clone(), 0.99),
        idle.len()
    );
    println!(
        "live capture-to-receiver delay, during replay: p50 {:.3} s  p99 {:.3} s  ({} of {live_count} events)",
        percentile(during.clone(), 0.5),
        percentile(during.clone(), 0.99),
        during.len()
    );
}
