//! A SeaweedFS server with its S3 gateway.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ClusterError;
use crate::process::{Proc, free_port_pair, http, http_status, make_dir, write_file};

/// How long the object store has to answer on its S3 port at start and restart.
const READY_SECONDS: u64 = 60;

/// The object written through the filer at the first start and read back at every start: it
/// is there only once the volume server has reported its volumes to the master.
const PROBE: &str = "/anpr-cluster/ready";

/// SeaweedFS puts each server's gRPC port this much above its HTTP port.
const GRPC_OFFSET: u16 = 10000;

/// One `weed server` (master, volume server, filer and S3 gateway in one process) on
/// loopback, with one S3 identity that may do everything; killed when dropped.
#[derive(Debug)]
pub struct ObjectStore {
    dir: PathBuf,
    master: u16,
    filer: u16,
    s3: u16,
    access_key: String,
    secret_key: String,
    proc: Proc,
}

impl ObjectStore {
    /// Starts SeaweedFS in `<dir>/s3/` (data in `data/`, log `weed.log`, identities
    /// `s3.json`) and waits until its S3 gateway answers and an object written through its
    /// filer (`/anpr-cluster/ready`, outside every bucket) reads back. The access key is `anpr`, the secret
    /// a new random one per start. A server that exits because one of its ports was taken
    /// meanwhile is started again on other ports, with fresh data, three tries in all.
    pub fn start(dir: &Path) -> Result<Self, ClusterError> {
        // Each try on fresh data.
        crate::on_free_ports(dir, Self::start_once, || {
            let _ = std::fs::remove_dir_all(dir.join("s3"));
        })
    }

    fn start_once(dir: &Path) -> Result<Self, ClusterError> {
        let program = crate::weed_binary()?;
        let dir = dir.join("s3");
        make_dir(&dir.join("data"))?;
        let access_key = "anpr".to_string();
        let secret_key = random_hex(20)?;
        let identities = serde_json::json!({
            "identities": [{
                "name": "anpr",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]
            }]
        });
        let config = dir.join("s3.json");
        write_file(&config, &identities.to_string())?;
        let (master, volume, filer, s3) = (
            free_port_pair(GRPC_OFFSET)?,
            free_port_pair(GRPC_OFFSET)?,
            free_port_pair(GRPC_OFFSET)?,
            free_port_pair(GRPC_OFFSET)?,
        );
        let mut proc = Proc::new("SeaweedFS (weed server)", program, dir.join("weed.log"));
        let data = dir.join("data");
        proc.args = [
            "server".to_string(),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-dir={}", data.display()),
            format!("-master.port={master}"),
            // Small volumes: a lab's disk holds several; no statistics sent anywhere.
            "-master.volumeSizeLimitMB=256".into(),
            "-master.telemetry=false".into(),
            format!("-volume.port={volume}"),
            "-volume.max=0".into(),
            "-volume.preStopSeconds=0".into(),
            "-filer".into(),
            format!("-filer.port={filer}"),
            "-s3".into(),
            format!("-s3.port={s3}"),
            format!("-s3.config={}", config.display()),
            // The Iceberg catalog and Lance endpoints are not used: off (their default ports
            // are fixed ones, which parallel stores would fight over).
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ]
        .into_iter()
        .map(Into::into)
        .collect();
        let mut store = Self {
            dir,
            master,
            filer,
            s3,
            access_key,
            secret_key,
            proc,
        };
        store.spawn()?;
        // The probe read at every start (see `spawn`).
        let filer = store.filer;
        store.proc.wait_ready(
            READY_SECONDS,
            "its filer did not store a first object",
            || http(filer, "PUT", PROBE, Some(b"ready")).is_some_and(|(s, _)| s < 300),
        )?;
        store.wait_readable()?;
        Ok(store)
    }

    /// Waits until the probe object reads back through the filer: the filer, the master and
    /// the volume server holding the data all serve (after a restart the master learns where
    /// the volumes are only at the volume server's first heartbeat, seconds after the S3 port
    /// opens).
    fn wait_readable(&mut self) -> Result<(), ClusterError> {
        let filer = self.filer;
        self.proc.wait_ready(
            READY_SECONDS,
            "an object stored before did not read back through its filer",
            || http(filer, "GET", PROBE, None).is_some_and(|(s, b)| s == 200 && b == b"ready"),
        )
    }

    fn spawn(&mut self) -> Result<(), ClusterError> {
        self.proc.spawn()?;
        let s3 = self.s3;
        // The gateway answers an unsigned request with 403 once it serves; before its filer
        // is up it does not answer, or with 5xx.
        self.proc.wait_ready(
            READY_SECONDS,
            "its S3 port did not answer an unsigned request with 403",
            || http_status(s3, "/") == Some(403),
        )
    }

    /// `http://127.0.0.1:<port>`, the S3 endpoint (path-style requests, region `us-east-1`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3)
    }

    /// The S3 port.
    pub fn s3_port(&self) -> u16 {
        self.s3
    }

    /// The S3 access key id.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The S3 secret key.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The region requests are signed for (SeaweedFS accepts any; this is the usual one).
    pub fn region(&self) -> &'static str {
        "us-east-1"
    }

    /// Creates bucket `name` (with `weed shell`'s `s3.bucket.create`), if it is not there.
    pub fn create_bucket(&self, name: &str) -> Result<(), ClusterError> {
        let out = Command::new(&self.proc.program)
            .arg("shell")
            .arg(format!("-master=127.0.0.1:{}", self.master))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    use std::io::Write;
                    writeln!(stdin, "s3.bucket.create -name {name}")?;
                }
                child.wait_with_output()
            })
            .map_err(|source| ClusterError::Spawn {
                what: "weed shell".into(),
                program: self.proc.program.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let created = out.status.success() && !text.to_lowercase().contains("error");
        if created || text.contains("already exist") {
            Ok(())
        } else {
            Err(ClusterError::Setup {
                what: format!("creating bucket {name}"),
                message: text.trim().to_string(),
                log: self.proc.log.clone(),
            })
        }
    }

    /// The directory of the store (data, identities, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file.
    pub fn log(&self) -> PathBuf {
        self.proc.log.clone()
    }

    /// The PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Kills the store (SIGKILL, a crash).
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts it again on the same ports with the same data and identity, and waits until the
    /// S3 gateway answers and stored objects read back.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.spawn()?;
        self.wait_readable()
    }
}

/// `bytes` random bytes from the system's generator, in hex.
fn random_hex(bytes: usize) -> Result<String, ClusterError> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| ClusterError::Options("the system's random generator failed".into()))?;
    Ok(hex::encode(buf))
}
