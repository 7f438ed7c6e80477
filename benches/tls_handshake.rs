//! TLS handshake bench: the time from opening a connection to the broker's CONNACK, over the
//! shipped mutual-TLS configuration (`deploy/mosquitto/anpr.conf`, a device certificate, the
//! ring provider) beside plain MQTT on another mosquitto, both on loopback, in the same run.
//! Two TLS figures: a full handshake (session resumption off: the first connection, or one
//! after the broker restarted) and a resumed one (the same client configuration reconnecting,
//! as the uplink does after a link drop). The three are interleaved, one of each per round.
//!
//! `cargo bench -p anpr --bench tls_handshake` (400 rounds; set ANPR_BENCH_CONNECTS to change).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anpr_testkit::{BrokerOptions, Mosquitto};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, TlsConfiguration, Transport};

/// Connects once and returns the time to the CONNACK; `nodelay` sets TCP_NODELAY on the
/// client's socket (rumqttc leaves Nagle's algorithm on by default).
async fn connect(port: u16, tls: Option<Arc<rustls::ClientConfig>>, nodelay: bool) -> Duration {
    let mut opts = MqttOptions::new("bench-connect", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    if let Some(config) = tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    let start = Instant::now();
    let (client, mut eventloop) = AsyncClient::new(opts, 8);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(nodelay);
    eventloop.set_network_options(network);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("connection failed: {e}"),
        }
    }
    let took = start.elapsed();
    client.try_disconnect().unwrap();
    // Send the DISCONNECT, then let the broker close the connection.
    while eventloop.poll().await.is_ok() {}
    took
}

fn summary(name: &str, mut times: Vec<Duration>, plain_mean: f64) -> f64 {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    let pct = |p: f64| ms(times[((times.len() - 1) as f64 * p).round() as usize]);
    println!(
        "{name:<34} mean {mean:>6.3} ms  p50 {:>6.3} ms  p99 {:>6.3} ms  ({:.1}x plain)",
        pct(0.5),
        pct(0.99),
        mean / plain_mean
    );
    mean
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("ANPR_BENCH_CONNECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let tls_broker = Mosquitto::start().unwrap();
    let plain_broker = Mosquitto::start_with_options(BrokerOptions {
        plaintext: true,
        ..BrokerOptions::default()
    })
    .unwrap();
    let files = tls_broker.device_tls("KZ-BENCH-TLS").unwrap().unwrap();
    let resumed = anpr_pki::ClientTls::load(&files).unwrap().config();
    let mut full = (*resumed).clone();
    full.resumption = rustls::client::Resumption::disabled();
    let full = Arc::new(full);

    // Warm up both brokers and the resumption cache.
    for _ in 0..10 {
        connect(plain_broker.port(), None, false).await;
        connect(tls_broker.port(), Some(full.clone()), false).await;
        connect(tls_broker.port(), Some(resumed.clone()), false).await;
    }
    let mut times: [Vec<Duration>; 6] = Default::default();
    for _ in 0..rounds {
        for nodelay in [false, true] {
            let at = usize::from(nodelay) * 3;
            times[at].push(connect(plain_broker.port(), None, nodelay).await);
            times[at + 1].push(connect(tls_broker.port(), Some(full.clone()), nodelay).await);
            times[at + 2].push(connect(tls_broker.port(), Some(resumed.clone()), nodelay).await);
        }
    }
    let [
        plain,
        tls_full,
        tls_resumed,
        plain_nd,
        tls_full_nd,
        tls_resumed_nd,
    ] = times;
    println!(
        "{rounds} connections each, loopback, connect to CONNACK (mosquitto {}):",
        std::process::Command::new(anpr_testkit::mosquitto_binary().unwrap())
            .arg("-h")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("mosquitto version ")
                .to_string())
            .unwrap_or_default()
    );
    let plain_mean = plain.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / rounds as f64;
    summary("plain MQTT (baseline)", plain, plain_mean);
    summary("mutual TLS, full handshake", tls_full, plain_mean);
    summary("mutual TLS, resumed session", tls_resumed, plain_mean);
    println!("with TCP_NODELAY on the client:");
    summary("plain MQTT", plain_nd, plain_mean);
    summary("mutual TLS, full handshake", tls_full_nd, plain_mean);
    summary("mutual TLS, resumed session", tls_resumed_nd, plain_mean);
}
