//! The demo's central side: the engines, the receiver replicas (child processes) and the
//! faults injected into them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{DemoConfig, DemoError, Fault};

/// The engines and replicas of the demo, with their processes for the resource figures.
pub(super) struct Central {
    pub nats: anpr_cluster::NatsCluster,
    pub pg: anpr_cluster::Postgres,
    s3: anpr_cluster::ObjectStore,
    replicas: Vec<Child>,
    /// The `anpr` executable and the arguments of `anpr fleet receiver` (less `--name`).
    exe: PathBuf,
    replica_args: Vec<String>,
    env: Vec<(String, String)>,
    run: PathBuf,
}

impl Central {
    /// Starts the NATS cluster, PostgreSQL and the object store in `run`; no replica yet (they
    /// will use the receiver's identity in `central_files`). Returns them and the object
    /// store's settings for the receiver.
    pub fn start(
        cfg: &DemoConfig,
        run: &Path,
        nats: anpr_cluster::NatsOptions,
        central_files: &anpr_pki::CentralFiles,
    ) -> Result<(Self, anpr_fleet::ObjectStoreConfig), DemoError> {
        let nats = anpr_cluster::NatsCluster::start(nats)?;
        let pg = anpr_cluster::Postgres::start(run)?;
        let s3 = anpr_cluster::ObjectStore::start(run)?;
        let replica_args: Vec<String> = vec![
            "fleet".into(),
            "receiver".into(),
            "--nats".into(),
            nats.nats_urls().join(","),
            "--postgres".into(),
            pg.url(),
            "--s3".into(),
            s3.endpoint(),
            "--tls".into(),
            central_files.dir.display().to_string(),
            "--devices".into(),
            central_files.device_keys.display().to_string(),
            "--key".into(),
            central_files.signing_key.display().to_string(),
            "--stream-replicas".into(),
            cfg.nodes.min(3).to_string(),
        ];
        let env = vec![
            (
                "ANPR_S3_ACCESS_KEY".to_string(),
                s3.access_key().to_string(),
            ),
            (
                "ANPR_S3_SECRET_KEY".to_string(),
                s3.secret_key().to_string(),
            ),
        ];
        let objects =
            anpr_fleet::ObjectStoreConfig::new(&s3.endpoint(), s3.access_key(), s3.secret_key());
        let central = Self {
            nats,
            pg,
            s3,
            replicas: Vec::new(),
            exe: cfg.exe.clone(),
            replica_args,
            env,
            run: run.to_path_buf(),
        };
        Ok((central, objects))
    }

    /// Starts replicas `0..n`.
    pub fn start_replicas(&mut self, n: usize) -> Result<(), DemoError> {
        for i in 0..n {
            let child = self.start_replica(i)?;
            self.replicas.push(child);
        }
        Ok(())
    }

    fn start_replica(&self, i: usize) -> Result<Child, DemoError> {
        let log = self.run.join(format!("replica-{i}.log"));
        let create = |source| DemoError::Create {
            path: log.clone(),
            source,
        };
        let out = std::fs::File::create(&log).map_err(create)?;
        let err = out.try_clone().map_err(create)?;
        Command::new(&self.exe)
            .args(&self.replica_args)
            .args(["--name", &format!("replica-{i}")])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| DemoError::Replica { source })
    }

    /// The processes of each part: (name, root pids).
    pub fn parts(&self) -> Vec<(String, Vec<u32>)> {
        let mut out = vec![(
            "fleet simulator (this process)".to_string(),
            vec![std::process::id()],
        )];
        out.push((
            format!("NATS ({} nodes)", self.nats.nodes()),
            (0..self.nats.nodes())
                .filter_map(|i| self.nats.pid(i))
                .collect(),
        ));
        out.push((
            format!("receiver replicas ({})", self.replicas.len()),
            self.replicas.iter().map(Child::id).collect(),
        ));
        out.push(("PostgreSQL".into(), self.pg.pid().into_iter().collect()));
        out.push((
            "object store (SeaweedFS)".into(),
            self.s3.pid().into_iter().collect(),
        ));
        out
    }

    /// Injects `f` (see [`Fault`]).
    pub fn inject(&mut self, f: Fault) {
        match f {
            Fault::NatsNode => self.nats.kill(1.min(self.nats.nodes() - 1)),
            Fault::Replica => {
                let _ = self.replicas[0].kill();
                let _ = self.replicas[0].wait();
            }
            Fault::Postgres => self.pg.kill(),
            Fault::Objects => self.s3.kill(),
        }
    }

    /// Starts the part that `f` stopped, and returns once it serves again.
    pub fn repair(&mut self, f: Fault) -> Result<(), DemoError> {
        match f {
            Fault::NatsNode => self.nats.restart(1.min(self.nats.nodes() - 1))?,
            Fault::Replica => self.replicas[0] = self.start_replica(0)?,
            Fault::Postgres => self.pg.restart()?,
            Fault::Objects => self.s3.restart()?,
        }
        Ok(())
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            terminate(r);
        }
    }
}

/// Stops a replica with SIGTERM (through `kill`, no unsafe code), then SIGKILL after 10 s.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
