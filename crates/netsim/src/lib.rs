//! Signal-loss simulator: a TCP proxy between the device and its broker that follows a script
//! of link conditions, for replay tests by people and by the test suite.
//!
//! Contract: the proxy listens and connects on loopback addresses only (anything else is
//! refused), runs its script (optionally repeated) and stops by itself after `max_duration`.
//! Link conditions:
//! - `up S`: bytes flow;
//! - `reset S`: every open connection is closed at once with a TCP reset, and new ones are
//!   reset on arrival;
//! - `blackhole S`: bytes vanish in both directions without an error (the peers only notice by
//!   their own timeouts); connections open during the phase are closed when it ends;
//! - `slow S latency=MS rate=BYTES_PER_S`: bytes flow late and through a bandwidth cap.
//!
//! Durations are seconds, multiplied by the proxy's time scale (0.1 runs a 10-minute script in
//! one). Every change of condition is logged and kept in [`Proxy::transitions`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetsimError {
    #[error(
        "script line {line}: {message}; phases are `up S`, `reset S`, `blackhole S`, `slow S latency=MS rate=BYTES_PER_S`, separated by `;` or new lines"
    )]
    Script { line: usize, message: String },
    #[error("{addr} is not a loopback address; the simulator only runs on 127.0.0.0/8 or [::1]")]
    NotLoopback { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A link condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Up,
    Reset,
    Blackhole,
    Slow { latency: Duration, bytes_per_s: u64 },
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Up => f.write_str("up"),
            Condition::Reset => f.write_str("down (connections reset)"),
            Condition::Blackhole => f.write_str("down (black hole: bytes vanish)"),
            Condition::Slow {
                latency,
                bytes_per_s,
            } => {
                write!(
                    f,
                    "slow ({} ms latency, {bytes_per_s} bytes/s)",
                    latency.as_millis()
                )
            }
        }
    }
}

impl Condition {
    fn is_down(self) -> bool {
        matches!(self, Condition::Reset | Condition::Blackhole)
    }
}

/// One phase of a script.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    pub condition: Condition,
    pub duration: Duration,
}

/// A script of phases.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub phases: Vec<Phase>,
    /// Start again from the first phase after the last.
    pub repeat: bool,
}

impl Script {
    /// Parses `up 5; reset 2; blackhole 10; slow 5 latency=300 rate=16000` (`;` or new lines;
    /// `repeat` as a phase of its own repeats the script).
    pub fn parse(text: &str) -> Result<Self, NetsimError> {
        let mut phases = Vec::new();
        let mut repeat = false;
        for (i, part) in text.split([';', '\n']).map(str::trim).enumerate() {
            if part.is_empty() || part.starts_with('#') {
                continue;
            }
            let err = |message: String| NetsimError::Script {
                line: i + 1,
                message,
            };
            let mut words = part.split_whitespace();
            let kind = words.next().unwrap_or_default();
            if kind == "repeat" {
                repeat = true;
                continue;
            }
            let secs: f64 = words
                .next()
                .ok_or_else(|| err(format!("`{part}` needs a duration in seconds")))?
                .parse()
                .map_err(|_| {
                    err(format!(
                        "`{part}`: the duration must be a number of seconds"
                    ))
                })?;
            if !(0.0..=86_400.0).contains(&secs) {
                return Err(err(format!(
                    "`{part}`: the duration must be between 0 and 86400 s"
                )));
            }
            let condition = match kind {
                "up" => Condition::Up,
                "reset" => Condition::Reset,
                "blackhole" => Condition::Blackhole,
                "slow" => {
                    let mut latency = Duration::ZERO;
                    let mut bytes_per_s = u64::MAX;
                    for kv in words.by_ref() {
                        let (k, v) = kv
                            .split_once('=')
                            .ok_or_else(|| err(format!("`{kv}` is not key=value")))?;
                        let n: u64 = v
                            .parse()
                            .map_err(|_| err(format!("`{kv}`: not a whole number")))?;
                        match k {
                            "latency" => latency = Duration::from_millis(n),
                            "rate" if n > 0 => bytes_per_s = n,
                            _ => {
                                return Err(err(format!(
                                    "`{kv}`: known keys are latency=MS and rate=BYTES_PER_S (> 0)"
                                )));
                            }
                        }
                    }
                    Condition::Slow {
                        latency,
                        bytes_per_s,
                    }
                }
                other => return Err(err(format!("unknown phase `{other}`"))),
            };
            if let Some(extra) = words.next() {
                return Err(err(format!("unexpected `{extra}`")));
            }
            phases.push(Phase {
                condition,
                duration: Duration::from_secs_f64(secs),
            });
        }
        if phases.is_empty() {
            return Err(NetsimError::Script {
                line: 1,
                message: "the script has no phases".into(),
            });
        }
        Ok(Self { phases, repeat })
    }

    /// A patrol vehicle driving through dead zones: coverage, a cell handover that resets,
    /// weak signal, and stretches with no signal at all; repeated.
    #[must_use]
    pub fn patrol() -> Self {
        Self::parse(
            "up 8; blackhole 6; up 5; reset 2; up 4; slow 6 latency=400 rate=8000; blackhole 12; up 6; reset 1; up 3; repeat",
        )
        .expect("the preset parses")
    }

    /// Total length of one pass.
    #[must_use]
    pub fn length(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }
}

/// One change of link condition, at an offset from the proxy's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub at: Duration,
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct LinkState {
    condition: Condition,
    /// Increases at the start of every down phase: connections from an earlier epoch die.
    epoch: u64,
}

/// A running proxy.
pub struct Proxy {
    local: SocketAddr,
    transitions: Arc<Mutex<Vec<Transition>>>,
    state: watch::Receiver<LinkState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn check_loopback(addr: SocketAddr) -> Result<(), NetsimError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(NetsimError::NotLoopback { addr })
    }
}

impl Proxy {
    /// Starts a proxy on `listen` (port 0 for a free one) towards `upstream`, following
    /// `script` with durations multiplied by `time_scale`, for at most `max_duration`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        script: Script,
        time_scale: f64,
        max_duration: Duration,
    ) -> Result<Self, NetsimError> {
        check_loopback(listen)?;
        check_loopback(upstream)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| NetsimError::Listen {
                addr: listen,
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| NetsimError::Listen {
                addr: listen,
                source,
            })?;
        let (tx, rx) = watch::channel(LinkState {
            condition: Condition::Up,
            epoch: 0,
        });
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let control = {
            let transitions = transitions.clone();
            tokio::spawn(async move {
                let mut epoch = 0;
                loop {
                    for phase in &script.phases {
                        if phase.condition.is_down() {
                            epoch += 1;
                        }
                        let _ = tx.send(LinkState {
                            condition: phase.condition,
                            epoch,
                        });
                        let t = Transition {
                            at: started.elapsed(),
                            condition: phase.condition,
                        };
                        tracing::info!(at_s = t.at.as_secs_f64(), condition = ?t.condition, "Simulated link changed.");
                        transitions.lock().expect("not poisoned").push(t);
                        tokio::time::sleep(phase.duration.mul_f64(time_scale)).await;
                    }
                    if !script.repeat {
                        break;
                    }
                }
                let _ = tx.send(LinkState {
                    condition: Condition::Up,
                    epoch,
                });
                transitions.lock().expect("not poisoned").push(Transition {
                    at: started.elapsed(),
                    condition: Condition::Up,
                });
                // Hold the last state until the proxy stops.
                std::future::pending::<()>().await;
            })
        };
        let accept = {
            let rx = rx.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = *rx.borrow();
                    if state.condition == Condition::Reset {
                        let _ = client.set_zero_linger();
                        drop(client);
                        continue;
                    }
                    tokio::spawn(connection(client, upstream, rx.clone(), state.epoch));
                }
            })
        };
        let deadline = tokio::spawn({
            let control = control.abort_handle();
            let accept = accept.abort_handle();
            async move {
                tokio::time::sleep(max_duration).await;
                tracing::info!("Simulated link reached its time limit and stops.");
                control.abort();
                accept.abort();
            }
        });
        Ok(Self {
            local,
            transitions,
            state: rx,
            tasks: vec![control, accept, deadline],
        })
    }

    /// Where the device should connect.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A shared handle on the transitions, for watching them while the proxy runs.
    #[must_use]
    pub fn transitions_handle(&self) -> Arc<Mutex<Vec<Transition>>> {
        self.transitions.clone()
    }

    /// Conditions so far, with their start offsets.
    #[must_use]
    pub fn transitions(&self) -> Vec<Transition> {
        self.transitions.lock().expect("not poisoned").clone()
    }

    /// The condition now.
    #[must_use]
    pub fn condition(&self) -> Condition {
        self.state.borrow().condition
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    state: watch::Receiver<LinkState>,
    epoch: u64,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(pump(cr, sw, state.clone(), epoch));
    let down = tokio::spawn(pump(sr, cw, state, epoch));
    // When either direction ends, end the other; dropping both halves closes the sockets.
    tokio::select! {
        _ = up => {},
        _ = down => {},
    }
}

/// Copies bytes from `r` to `w` under the link conditions; returns when either side closes or
/// the connection dies in a down phase.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<LinkState>,
    epoch: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let now = *state.borrow();
        if now.epoch != epoch && !now.condition.is_down() {
            return; // a down phase came and went: this connection is dead
        }
        if now.condition == Condition::Reset {
            let _ = w.as_ref().set_zero_linger();
            return;
        }
        let n = tokio::select! {
            read = r.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let condition = state.borrow().condition;
        match condition {
            Condition::Blackhole | Condition::Reset => continue, // the bytes vanish
            Condition::Up => {}
            Condition::Slow {
                latency,
                bytes_per_s,
            } => {
                let transfer = Duration::from_secs_f64(n as f64 / bytes_per_s as f64);
                tokio::time::sleep(latency + transfer).await;
            }
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_with_all_phase_kinds_and_errors_name_the_line() {
        let s = Script::parse("up 5; reset 2\nblackhole 1.5; slow 3 latency=200 rate=1000; repeat")
            .unwrap();
        assert!(s.repeat);
        assert_eq!(s.phases.len(), 4);
        assert_eq!(
            s.phases[3].condition,
            Condition::Slow {
                latency: Duration::from_millis(200),
                bytes_per_s: 1000
            }
        );
        assert_eq!(s.length(), Duration::from_secs_f64(11.5));
        let err = Script::parse("up 5; sideways 3").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("sideways"), "{err}");
        assert!(Script::parse("").is_err());
        assert!(Script::parse("slow 3 rate=0").is_err());
    }

    #[test]
    fn the_patrol_preset_has_dead_zones_and_repeats() {
        let p = Script::patrol();
        assert!(p.repeat);
        assert!(
            p.phases
                .iter()
                .any(|ph| ph.condition == Condition::Blackhole)
        );
        assert!(p.phases.iter().any(|ph| ph.condition == Condition::Reset));
    }

    #[tokio::test]
    async fn only_loopback_addresses_are_accepted() {
        let far: SocketAddr = "10.1.2.3:1883".parse().unwrap();
        let near: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let err = Proxy::start(near, far, Script::patrol(), 1.0, Duration::from_secs(1))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, NetsimError::NotLoopback { .. }));
    }

    #[tokio::test]
    async fn bytes_flow_when_up_and_connections_are_reset_when_down() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let script = Script::parse("up 0.3; reset 5").unwrap();
        let proxy = Proxy::start(
            "127.0.0.1:0".parse().unwrap(),
            echo_addr,
            script,
            1.0,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(proxy.condition(), Condition::Reset);
        // The open connection is gone.
        let mut rest = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(r.is_err() || rest.is_empty());
        assert_eq!(proxy.transitions().len(), 2);
    }
}
