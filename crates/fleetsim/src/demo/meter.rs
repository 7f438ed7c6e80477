//! CPU and memory of each part of the demo, read from /proc.

use std::time::Instant;

/// CPU and memory of each part, from /proc: CPU time of the part's processes and their
/// children (PostgreSQL's backends), resident memory summed over them, peak over the samples.
pub(super) struct Meter {
    started: Instant,
    cpu_start: Vec<f64>,
    peak_rss: Vec<f64>,
    threads: Vec<u64>,
    /// CPU seconds of processes that were replaced (a killed replica).
    cpu_gone: Vec<f64>,
    last_cpu: Vec<f64>,
}

/// What one part of the demo used over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct PartUsage {
    /// The part: `NATS (3 nodes)`, `PostgreSQL`, ...
    pub part: String,
    /// CPU time over the run's wall time: average cores busy.
    pub cores: f64,
    /// Peak resident memory over the samples, MiB.
    pub peak_rss_mib: f64,
    /// Peak threads over the samples.
    pub threads: u64,
}

impl Meter {
    /// Starts measuring `parts`: (name, root pids).
    pub fn new(parts: &[(String, Vec<u32>)]) -> Self {
        let cpu: Vec<f64> = parts.iter().map(|(_, pids)| group(pids).0).collect();
        Self {
            started: Instant::now(),
            peak_rss: vec![0.0; parts.len()],
            threads: vec![0; parts.len()],
            cpu_gone: vec![0.0; parts.len()],
            last_cpu: cpu.clone(),
            cpu_start: cpu,
        }
    }

    /// Reads the figures of `parts` now (the same parts, in the same order, as at the start;
    /// their pids may have changed).
    pub fn sample(&mut self, parts: &[(String, Vec<u32>)]) {
        for (i, (_, pids)) in parts.iter().enumerate() {
            let (cpu, rss, threads) = group(pids);
            if cpu + 0.5 < self.last_cpu[i] {
                // A process of the part was replaced: keep what the old one used.
                self.cpu_gone[i] += self.last_cpu[i];
            }
            self.last_cpu[i] = cpu;
            self.peak_rss[i] = self.peak_rss[i].max(rss);
            self.threads[i] = self.threads[i].max(threads);
        }
    }

    /// A last sample, and the usage of each part.
    pub fn finish(mut self, parts: &[(String, Vec<u32>)]) -> Vec<PartUsage> {
        self.sample(parts);
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        parts
            .iter()
            .enumerate()
            .map(|(i, (name, _))| PartUsage {
                part: name.clone(),
                cores: (self.last_cpu[i] + self.cpu_gone[i] - self.cpu_start[i]).max(0.0) / wall,
                peak_rss_mib: self.peak_rss[i],
                threads: self.threads[i],
            })
            .collect()
    }
}

/// CPU seconds, resident MiB and threads of `pids` and their direct children.
fn group(pids: &[u32]) -> (f64, f64, u64) {
    let mut all: Vec<u32> = pids.to_vec();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, _)) = stat(pid)
                && pids.contains(&ppid)
                && !all.contains(&pid)
            {
                all.push(pid);
            }
        }
    }
    let (mut cpu, mut rss, mut threads) = (0.0, 0.0, 0);
    for pid in all {
        if let Some((_, ticks)) = stat(pid) {
            cpu += ticks;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        for line in status.lines() {
            let value = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                rss += value(line) as f64 / 1024.0;
            } else if line.starts_with("Threads:") {
                threads += value(line);
            }
        }
    }
    (cpu, rss, threads)
}

/// Parent pid and CPU seconds (user + system, 100 ticks a second) of `pid`.
fn stat(pid: u32) -> Option<(u32, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((ppid, ticks / 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measured_from_proc_with_its_memory_and_threads() {
        let me = std::process::id();
        let (ppid, _) = stat(me).expect("/proc/self/stat reads");
        assert_ne!(ppid, 0);
        let parts = vec![("this test".to_string(), vec![me])];
        let meter = Meter::new(&parts);
        let _busy: u64 = (0..2_000_000_u64).map(std::hint::black_box).sum();
        let usage = meter.finish(&parts);
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].part, "this test");
        assert!(usage[0].peak_rss_mib > 0.0, "{usage:?}");
        assert!(usage[0].threads >= 1, "{usage:?}");
        assert!(usage[0].cores >= 0.0, "{usage:?}");
    }

    #[test]
    fn a_part_with_no_process_uses_nothing() {
        let parts = vec![("gone".to_string(), Vec::new())];
        let usage = Meter::new(&parts).finish(&parts);
        assert!(usage[0].cores.abs() < f64::EPSILON, "{usage:?}");
        assert!(usage[0].peak_rss_mib.abs() < f64::EPSILON, "{usage:?}");
        assert_eq!(usage[0].threads, 0);
    }
}
