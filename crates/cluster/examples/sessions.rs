//! What devices' MQTT sessions cost the NATS cluster: N devices connect (persistent sessions),
//! each subscribes QoS 1 to its three topics as the uplink does (ack, ack/post/+, cmd/#); prints
//! the time until every SUBACK and each node's CPU time and memory.
//!
//! `cargo run --release -p anpr-cluster --example sessions -- 300 [consumer-replicas]`
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::needless_range_loop)]

use std::time::{Duration, Instant};

use anpr_cluster::{NatsCluster, NatsOptions};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(300, |a| a.parse().unwrap());
    let replicas: Option<u8> = args.get(2).and_then(|a| a.parse().ok());
    let run = tempfile::tempdir().unwrap();
    let pki = anpr_pki::Pki::init(&run.path().join("pki"), &[]).unwrap();
    let t = Instant::now();
    let inventories: Vec<String> = (0..n).map(|i| format!("KZ-{i:05}")).collect();
    std::thread::scope(|s| {
        for part in inventories.chunks(n.div_ceil(4).max(1)) {
            let pki = &pki;
            s.spawn(move || {
                for inv in part {
                    pki.issue_device(inv).unwrap();
                }
            });
        }
    });
    println!("{n} identities in {:.1} s", t.elapsed().as_secs_f64());
    let mut opts = NatsOptions::new(run.path(), &pki, inventories.clone());
    opts.mqtt_consumer_replicas = replicas;
    opts.mqtt_consumer_memory_storage = args.iter().any(|a| a == "mem");
    if let Some(t) = args.iter().find_map(|a| a.strip_prefix("timeout=")) {
        opts.mqtt_api_timeout = Duration::from_secs(t.parse().unwrap());
    }
    println!(
        "consumer memory storage {}, api timeout {:?}",
        opts.mqtt_consumer_memory_storage, opts.mqtt_api_timeout
    );
    let t = Instant::now();
    let nats = tokio::task::block_in_place(|| NatsCluster::start(opts)).unwrap();
    println!("cluster up in {:.1} s", t.elapsed().as_secs_f64());
    let cpu0: Vec<f64> = (0..nats.nodes())
        .map(|i| cpu_seconds(nats.pid(i).unwrap()))
        .collect();

    let t = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for (i, inv) in inventories.iter().enumerate() {
        let files = pki.device(inv).unwrap();
        let mut mo = MqttOptions::new(inv.clone(), "127.0.0.1", nats.mqtt_port(i % nats.nodes()));
        mo.set_keep_alive(Duration::from_secs(30));
        mo.set_clean_session(false);
        mo.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(
                anpr_pki::ClientTls::load(&files.tls).unwrap().config(),
            ),
        ));
        let (client, mut eventloop) = AsyncClient::new(mo, 16);
        for topic in ["ack", "ack/post/+", "cmd/#"] {
            client
                .subscribe(format!("anpr/v1/{inv}/{topic}"), QoS::AtLeastOnce)
                .await
                .unwrap();
        }
        let done = done_tx.clone();
        let node = i % nats.nodes();
        tokio::spawn(async move {
            let mut subacks = 0;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(a))) => {
                        subacks += 1;
                        if a.return_codes
                            .iter()
                            .any(|c| !matches!(c, rumqttc::SubscribeReasonCode::Success(_)))
                        {
                            println!("refused: pkid {} on node {node}", a.pkid);
                        }
                        if subacks == 3 {
                            let _ = done.send(());
                        }
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        });
        clients.push(client);
    }
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_mins(2), done_rx.recv()).await {
            Ok(Some(())) => got += 1,
            _ => break,
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{got}/{n} devices subscribed (3 QoS 1 subscriptions each) in {secs:.1} s, consumer replicas {}",
        replicas.map_or("default".to_string(), |r| r.to_string())
    );
    for i in 0..nats.nodes() {
        let pid = nats.pid(i).unwrap();
        println!(
            "node {i}: CPU {:.1} s, RSS {} MiB",
            cpu_seconds(pid) - cpu0[i],
            rss_kib(pid) / 1024
        );
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle: Vec<f64> = (0..nats.nodes())
        .map(|i| cpu_seconds(nats.pid(i).unwrap()))
        .collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    for i in 0..nats.nodes() {
        let busy = cpu_seconds(nats.pid(i).unwrap()) - idle[i];
        println!(
            "node {i}: {:.0} % of a core while idle",
            100.0 * busy / 10.0
        );
    }
    for i in 0..nats.nodes() {
        let log = nats.log_text(i);
        let mut kinds = std::collections::BTreeMap::<String, usize>::new();
        for l in log
            .lines()
            .filter(|l| (l.contains("[ERR]") || l.contains("[WRN]")) && !l.contains("Readloop"))
        {
            let text = l.split("] ").nth(2).unwrap_or(l);
            let text = text.rsplit(" - ").next().unwrap_or(text);
            let key: String = text
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .take(110)
                .collect();
            *kinds.entry(key).or_default() += 1;
        }
        for (k, c) in kinds.iter().take(12) {
            println!("node {i} log: {c} x {k}");
        }
    }
    for c in clients {
        let _ = c.disconnect().await;
    }
}

/// utime + stime of a process, seconds (clock ticks of 100 Hz).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
