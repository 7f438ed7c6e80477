//! Evidence images in S3-compatible object storage, one object per distinct image, keyed by
//! its sha256. Requests are signed by `rusty-s3` (presigned URLs, AWS signature v4) and sent by
//! `reqwest` over plain HTTP: an object store on loopback or a private network. Not yet over
//! TLS.

use std::time::Duration;

use base64::Engine;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::FleetError;

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_mins(1);

/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the images go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreConfig {
    /// The S3 endpoint, `http://127.0.0.1:8333`.
    pub endpoint: String,
    /// The bucket (created at start if missing): `anpr-evidence`.
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// The region the signature names (SeaweedFS takes any): `us-east-1`.
    pub region: String,
}

impl ObjectStoreConfig {
    /// The store at `endpoint` with its keys, bucket `anpr-evidence`, region `us-east-1`.
    #[must_use]
    pub fn new(endpoint: &str, access_key: &str, secret_key: &str) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            bucket: "anpr-evidence".into(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: "us-east-1".into(),
        }
    }
}

/// A bucket of the object store.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

fn failed(what: impl Into<String>) -> impl Fn(reqwest::Error) -> FleetError {
    let what = what.into();
    move |e| FleetError::Objects {
        what: what.clone(),
        message: e.to_string(),
    }
}

impl ObjectStore {
    /// The bucket of `cfg` (nothing is sent yet; see [`ObjectStore::ensure_bucket`]).
    pub fn new(cfg: &ObjectStoreConfig) -> Result<Self, FleetError> {
        let bad = |message: String| FleetError::Objects {
            what: format!("endpoint {}", cfg.endpoint),
            message,
        };
        let endpoint: url::Url = cfg.endpoint.parse().map_err(|e| bad(format!("{e}")))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            cfg.bucket.clone(),
            cfg.region.clone(),
        )
        .map_err(|e| bad(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(failed("client"))?;
        Ok(Self {
            bucket,
            credentials: Credentials::new(cfg.access_key.clone(), cfg.secret_key.clone()),
            http,
        })
    }

    /// Creates the bucket unless it exists.
    pub async fn ensure_bucket(&self) -> Result<(), FleetError> {
        let url = self
            .bucket
            .create_bucket(&self.credentials)
            .sign(SIGNED_FOR);
        let what = format!("create bucket {}", self.bucket.name());
        let resp = self
            .http
            .put(url)
            .send()
            .await
            .map_err(failed(what.clone()))?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        if body.contains("BucketAlreadyOwnedByYou") || body.contains("BucketAlreadyExists") {
            return Ok(());
        }
        Err(FleetError::Objects {
            what,
            message: format!("{status}: {}", anpr_central::escape(&body)),
        })
    }

    /// Stores `data` under its sha256 `sha256` (which the caller checked). The request carries
    /// the body's MD5 (`Content-MD5`), so the store refuses a body damaged on the way, and the
    /// ETag it answers must be that MD5 too. Returns the object's key once the store answered
    /// 200.
    pub async fn put(&self, sha256: &str, data: &[u8]) -> Result<String, FleetError> {
        use md5::Digest;
        let md5 = md5::Md5::digest(data);
        let md5_b64 = base64::engine::general_purpose::STANDARD.encode(md5);
        let url = self
            .bucket
            .put_object(Some(&self.credentials), sha256)
            .sign(SIGNED_FOR);
        let what = format!("PUT {sha256}");
        let resp = self
            .http
            .put(url)
            .header("Content-MD5", &md5_b64)
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .map_err(failed(what.clone()))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(FleetError::Objects {
                what,
                message: format!("{status}: {}", anpr_central::escape(&body)),
            });
        }
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_ascii_lowercase());
        let want = hex::encode(md5);
        if let Some(etag) = etag
            && etag != want
        {
            return Err(FleetError::Objects {
                what,
                message: format!(
                    "the store answered ETag {} for a body whose MD5 is {want}",
                    anpr_central::escape(&etag)
                ),
            });
        }
        Ok(sha256.to_string())
    }

    /// The bytes stored under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, FleetError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let what = format!("GET {key}");
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(failed(what.clone()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(FleetError::Objects {
                what,
                message: status.to_string(),
            });
        }
        Ok(Some(resp.bytes().await.map_err(failed(what))?.to_vec()))
    }
}
