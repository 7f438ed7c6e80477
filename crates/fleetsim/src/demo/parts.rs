//! A fleet split over processes. One process holds about five open files a device (its
//! queue's database, WAL and shared memory, and its connection), so a fleet beyond the
//! open-file limit runs as parts: each part is a child process, `<exe> fleet devices …`
//! ([`PartConfig::args`]), running [`run_part`] on its own range of devices, and the demo adds
//! up their progress and reports their recordings as one.
//!
//! A part speaks on its standard output, one JSON object a line ([`PartLine`]): `recording`
//! once its devices record, then `progress` every 5 s. At the end it writes its
//! [`Recording`] to [`PartConfig::out`] and exits 0. Its log goes to `<dir>.log`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::DemoError;
use crate::{Fleet, FleetConfig, FleetError, Progress, Recording};

/// One part of a fleet split over processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartConfig {
    /// The fleet's PKI (every identity issued before the parts start).
    pub pki: PathBuf,
    /// The part's folder: its queues go in `<dir>/queues`.
    pub dir: PathBuf,
    /// The part's devices: `first` .. `first + devices` of the whole fleet.
    pub first: usize,
    pub devices: usize,
    /// The brokers, `host:port`, assigned round-robin over the whole fleet's devices.
    pub brokers: Vec<String>,
    /// Each device fails over to the other brokers.
    pub failover: bool,
    pub seconds: u64,
    pub drain_s: u64,
    pub seed: u64,
    /// Where the part writes its [`Recording`] (JSON).
    pub out: PathBuf,
}

impl PartConfig {
    /// The arguments of `<exe>` that run this part: `fleet devices --pki … --out …`.
    #[must_use]
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["fleet".into(), "devices".into()];
        let mut flag = |name: &str, value: OsString| {
            a.push(format!("--{name}").into());
            a.push(value);
        };
        flag("pki", self.pki.clone().into());
        flag("dir", self.dir.clone().into());
        flag("first", self.first.to_string().into());
        flag("devices", self.devices.to_string().into());
        flag("brokers", self.brokers.join(",").into());
        flag("seconds", self.seconds.to_string().into());
        flag("drain", self.drain_s.to_string().into());
        flag("seed", self.seed.to_string().into());
        flag("out", self.out.clone().into());
        if self.failover {
            a.push("--failover".into());
        }
        a
    }

    /// The fleet this part runs.
    fn fleet(&self) -> Result<FleetConfig, FleetError> {
        let brokers = self
            .brokers
            .iter()
            .map(|b| {
                b.rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
                    .ok_or_else(|| FleetError::Broker { broker: b.clone() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut cfg = FleetConfig::new(
            &self.dir,
            &self.pki,
            self.devices,
            brokers,
            Duration::from_secs(self.seconds),
        );
        cfg.first = self.first;
        cfg.failover = self.failover;
        cfg.seed = self.seed;
        Ok(cfg)
    }
}

/// What a part prints, one a line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartLine {
    /// Every device's queue and uplink started: the part records.
    Recording,
    /// The part's figures, every 5 s.
    Progress(Progress),
}

/// Runs one part (the body of `anpr fleet devices`): starts its fleet, reports each
/// [`PartLine`] to `on_line`, drains, and writes its recording to [`PartConfig::out`].
pub async fn run_part(
    cfg: PartConfig,
    mut on_line: impl FnMut(PartLine),
) -> Result<(), FleetError> {
    let drain = Duration::from_secs(cfg.drain_s);
    let fleet = Fleet::start(cfg.fleet()?).await?;
    on_line(PartLine::Recording);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    while fleet.elapsed() < fleet.cfg.duration {
        tick.tick().await;
        on_line(PartLine::Progress(fleet.progress()));
    }
    let finished = fleet.finish(drain).await?;
    let json = serde_json::to_vec(&finished.recording()).map_err(std::io::Error::other);
    json.and_then(|j| std::fs::write(&cfg.out, j))
        .map_err(|source| FleetError::Dir {
            path: cfg.out.clone(),
            source,
        })
}

/// The running parts of a fleet.
pub(super) struct Parts {
    parts: Vec<Part>,
}

struct Part {
    cfg: PartConfig,
    child: Child,
    log: PathBuf,
    progress: Arc<Mutex<Progress>>,
    recording: watch::Receiver<bool>,
}

impl Parts {
    /// Starts one child process a part (killed when dropped) and waits until every part
    /// records, for at most `ready`.
    pub async fn start(
        exe: &std::path::Path,
        cfgs: Vec<PartConfig>,
        ready: Duration,
    ) -> Result<Self, DemoError> {
        let mut parts = Vec::with_capacity(cfgs.len());
        for cfg in cfgs {
            let log = cfg.dir.with_extension("log");
            let err = std::fs::File::create(&log).map_err(|source| DemoError::Create {
                path: log.clone(),
                source,
            })?;
            let mut child = Command::new(exe)
                .args(cfg.args())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(err)
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| DemoError::Part {
                    first: cfg.first,
                    log: log.clone(),
                    why: format!("cannot start: {source}"),
                })?;
            let progress = Arc::new(Mutex::new(Progress::default()));
            let (tx, recording) = watch::channel(false);
            if let Some(out) = child.stdout.take() {
                let progress = progress.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(out).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        match serde_json::from_str::<PartLine>(&line) {
                            Ok(PartLine::Recording) => {
                                let _ = tx.send(true);
                            }
                            Ok(PartLine::Progress(p)) => {
                                *progress
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner) = p;
                            }
                            Err(_) => {}
                        }
                    }
                });
            }
            parts.push(Part {
                cfg,
                child,
                log,
                progress,
                recording,
            });
        }
        let deadline = tokio::time::Instant::now() + ready;
        for p in &mut parts {
            let started = tokio::time::timeout_at(deadline, p.recording.wait_for(|r| *r))
                .await
                .is_ok_and(|r| r.is_ok());
            if !started {
                let why = match p.child.try_wait() {
                    Ok(Some(status)) => format!("it exited ({status}) before recording"),
                    _ => format!("it did not start recording within {} s", ready.as_secs()),
                };
                return Err(p.failed(why));
            }
        }
        Ok(Self { parts })
    }

    /// The process ids of the parts.
    pub fn pids(&self) -> Vec<u32> {
        self.parts.iter().filter_map(|p| p.child.id()).collect()
    }

    /// The sum of the parts' latest figures.
    pub fn progress(&self) -> Progress {
        let mut sum = Progress::default();
        for p in &self.parts {
            sum.add(
                &p.progress
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        }
        sum
    }

    /// Waits for every part to drain and exit (for at most `within`), and merges their
    /// recordings in device order.
    pub async fn finish(self, within: Duration) -> Result<Recording, DemoError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut recordings = Vec::with_capacity(self.parts.len());
        for mut p in self.parts {
            let status = match tokio::time::timeout_at(deadline, p.child.wait()).await {
                Ok(Ok(status)) => status,
                Ok(Err(e)) => return Err(p.failed(format!("cannot wait for it: {e}"))),
                Err(_) => {
                    return Err(
                        p.failed(format!("it did not finish within {} s", within.as_secs()))
                    );
                }
            };
            if !status.success() {
                return Err(p.failed(format!("it exited with {status}")));
            }
            let read = std::fs::read(&p.cfg.out)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Recording>(&b).map_err(|e| e.to_string()));
            match read {
                Ok(r) => recordings.push(r),
                Err(e) => {
                    let why = format!("its recording {} cannot be read: {e}", p.cfg.out.display());
                    return Err(p.failed(why));
                }
            }
        }
        Ok(Recording::merge(recordings))
    }
}

impl Part {
    fn failed(&self, why: String) -> DemoError {
        DemoError::Part {
            first: self.cfg.first,
            log: self.log.clone(),
            why,
        }
    }
}

/// The parts of `devices` devices split over `processes` as evenly as they go, the first
/// parts taking one more: `(first, count)` each.
pub(super) fn split(devices: usize, processes: usize) -> Vec<(usize, usize)> {
    let (base, extra) = (devices / processes, devices % processes);
    let mut first = 0;
    (0..processes)
        .map(|k| {
            let n = base + usize::from(k < extra);
            let part = (first, n);
            first += n;
            part
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_device_once_and_differ_by_at_most_one() {
        assert_eq!(split(5000, 2), vec![(0, 2500), (2500, 2500)]);
        assert_eq!(split(7, 3), vec![(0, 3), (3, 2), (5, 2)]);
        assert_eq!(split(5, 1), vec![(0, 5)]);
    }

    #[test]
    fn a_part_line_reads_back_as_written() {
        let p = Progress {
            recorded: 3,
            connected: 2,
            ..Progress::default()
        };
        for line in [PartLine::Recording, PartLine::Progress(p)] {
            let text = serde_json::to_string(&line).unwrap();
            assert!(!text.contains('\n'));
            assert_eq!(serde_json::from_str::<PartLine>(&text).unwrap(), line);
        }
    }

    #[test]
    fn a_part_given_a_broker_without_a_port_is_refused_naming_it() {
        let cfg = PartConfig {
            pki: "pki".into(),
            dir: "d".into(),
            first: 0,
            devices: 1,
            brokers: vec!["127.0.0.1".into()],
            failover: false,
            seconds: 1,
            drain_s: 1,
            seed: 1,
            out: "o".into(),
        };
        let err = cfg.fleet().unwrap_err();
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
    }
}
