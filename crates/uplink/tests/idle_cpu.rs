//! What an idle uplink costs: 200 uplinks with empty queues, connected to a real mosquitto on
//! loopback, for 10 s; prints the process's CPU time per uplink and second (from
//! `/proc/self/stat`). A measurement, not a check: no timing is asserted. Run with
//! `cargo test --release -p anpr-uplink --test idle_cpu -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anpr_types::Topics;
use anpr_uplink::{Counters, Mode, UplinkConfig};
use tokio::sync::watch;

const UPLINKS: usize = 200;
const IDLE: Duration = Duration::from_secs(10);

/// User plus system CPU time of this process, in seconds (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (in parentheses, which may hold spaces).
    let rest = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // Clock ticks per second: 100 on every Linux this runs on.
    ticks / 100.0
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: needs mosquitto on PATH; prints figures"]
async fn idle_uplinks_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n"),
    )
    .unwrap();
    let mut broker = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto on PATH");
    let up = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < up, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mode, rx) = watch::channel(Mode::Run);
    let mut all = Vec::new();
    for i in 0..UPLINKS {
        let inventory = format!("KZ-IDLE-{i}");
        let cfg = UplinkConfig {
            host: "127.0.0.1".into(),
            port,
            failover: Vec::new(),
            tls: None,
            client_id: format!("anpr-{inventory}"),
            topics: Topics::new("anpr/v1", &inventory),
            queue: dir.path().join(format!("q{i}.sqlite")),
            ack_timeout: Duration::from_secs(5),
            max_inflight: 16,
            backlog_rate: 100.0,
            quota_bytes: None,
            central_key: anpr_trust::SigningKey::generate(&mut rand_core::OsRng).verifying_key(),
            models: Vec::new(),
        };
        let counters = Arc::new(Counters::default());
        all.push((
            counters.clone(),
            tokio::spawn(anpr_uplink::run(cfg, rx.clone(), counters, None)),
        ));
    }
    let end = Instant::now() + Duration::from_secs(30);
    while !all
        .iter()
        .all(|(c, _)| c.connected.load(std::sync::atomic::Ordering::SeqCst))
    {
        assert!(Instant::now() < end, "the uplinks did not all connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the first reads and health messages settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(IDLE).await;
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    println!(
        "{UPLINKS} idle uplinks for {wall:.1} s: {cpu:.2} s of CPU, {:.3} ms of CPU per uplink per second",
        cpu * 1000.0 / wall / UPLINKS as f64
    );
    mode.send(Mode::Stop).unwrap();
    for (_, task) in all {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let _ = broker.kill();
    let _ = broker.wait();
}
