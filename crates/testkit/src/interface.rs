//! Every message on a test broker checked against the committed interface
//! (`docs/interface/asyncapi.json` and its JSON Schemas).
//!
//! [`Interface`] reads the committed document (the files `anpr-interface` keeps equal to what
//! the types generate), finds the channel a topic belongs to, and validates the payload against
//! that channel's message: its JSON Schema (draft 2020-12, with the `jsonschema` crate, no
//! remote references: nothing is fetched), or for an evidence image its JPEG markers.
//!
//! [`SchemaWatch`] is a client of the broker that subscribes to `<prefix>/#` and checks each
//! message it sees (events, evidence, acks, health and last wills, commands), keeping the
//! first that does not validate. On a TLS broker it connects as [`WATCH_USER`], a user the test
//! broker's ACL lets read every topic under `anpr/v1` (the shipped ACL has no such user).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::Mosquitto;

/// The test broker's user that reads every message, for [`SchemaWatch`].
pub const WATCH_USER: &str = "anpr-watch";

/// The committed interface directory.
#[must_use]
pub fn interface_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/interface")
}

enum Payload {
    Json {
        file: String,
        validator: Box<jsonschema::Validator>,
    },
    Jpeg,
}

struct Channel {
    name: String,
    /// The address's levels: a literal, or `None` for a parameter (one level).
    levels: Vec<Option<String>>,
    payload: Payload,
}

/// The committed interface, ready to check messages by topic.
pub struct Interface {
    channels: Vec<Channel>,
}

impl std::fmt::Debug for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interface")
            .field(
                "channels",
                &self.channels.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

impl Interface {
    /// The committed interface, with `{prefix}` taken as `prefix`.
    pub fn load(prefix: &str) -> Result<Self> {
        let dir = interface_dir();
        let doc = read_json(&dir.join("asyncapi.json"))?;
        let mut channels = Vec::new();
        let Some(map) = doc["channels"].as_object() else {
            bail!("asyncapi.json has no channels");
        };
        for (name, channel) in map {
            let address = channel["address"]
                .as_str()
                .with_context(|| format!("channel {name} has no address"))?
                .replace("{prefix}", prefix.trim_end_matches('/'));
            let levels = address
                .split('/')
                .map(|l| (!l.starts_with('{')).then(|| l.to_string()))
                .collect();
            let messages = channel["messages"]
                .as_object()
                .with_context(|| format!("channel {name} has no messages"))?;
            if messages.len() != 1 {
                bail!(
                    "channel {name} has {} messages; one is checked",
                    messages.len()
                );
            }
            let reference = messages.values().next().and_then(|m| m["$ref"].as_str());
            let message = reference
                .and_then(|r| doc.pointer(r.trim_start_matches('#')))
                .with_context(|| format!("channel {name}'s message is not found"))?;
            let payload = match message["contentType"].as_str() {
                Some("image/jpeg") => Payload::Jpeg,
                Some("application/json") => {
                    let file = message["payload"]["schema"]["$ref"]
                        .as_str()
                        .with_context(|| format!("channel {name}'s message names no schema"))?;
                    let schema = read_json(&dir.join(file))?;
                    let validator = jsonschema::options()
                        .should_validate_formats(true)
                        .build(&schema)
                        .map_err(|e| anyhow::anyhow!("{file} is no valid schema: {e}"))?;
                    Payload::Json {
                        file: file.to_string(),
                        validator: Box::new(validator),
                    }
                }
                other => bail!("channel {name}: content type {other:?} is not checked"),
            };
            channels.push(Channel {
                name: name.clone(),
                levels,
                payload,
            });
        }
        Ok(Self { channels })
    }

    /// Checks one message: `Ok` with the channel's name, or why it does not follow the
    /// interface (the channel, the schema file, the JSON path of the first failure).
    pub fn check(&self, topic: &str, payload: &[u8]) -> Result<&str, String> {
        let levels: Vec<&str> = topic.split('/').collect();
        let channel = self
            .channels
            .iter()
            .find(|c| {
                c.levels.len() == levels.len()
                    && c.levels
                        .iter()
                        .zip(&levels)
                        .all(|(want, got)| want.as_deref().is_none_or(|w| w == *got))
            })
            .ok_or_else(|| format!("{topic}: the topic is on no channel of the interface"))?;
        match &channel.payload {
            Payload::Jpeg => {
                if payload.starts_with(&[0xFF, 0xD8, 0xFF]) && payload.ends_with(&[0xFF, 0xD9]) {
                    Ok(&channel.name)
                } else {
                    Err(format!(
                        "{topic} (channel {}): the payload ({} bytes) is no JPEG image",
                        channel.name,
                        payload.len()
                    ))
                }
            }
            Payload::Json { file, validator } => {
                let value: Value = serde_json::from_slice(payload).map_err(|e| {
                    format!(
                        "{topic} (channel {}): the payload is not JSON: {e}",
                        channel.name
                    )
                })?;
                match validator.iter_errors(&value).next() {
                    None => Ok(&channel.name),
                    Some(e) => Err(format!(
                        "{topic} (channel {}): does not validate against {file} at `{}` (schema `{}`): {e}; payload: {}",
                        channel.name,
                        e.instance_path(),
                        e.schema_path(),
                        String::from_utf8_lossy(&payload[..payload.len().min(2048)])
                    )),
                }
            }
        }
    }
}

/// A client checking every message under a prefix against the committed interface.
pub struct SchemaWatch {
    stop: Arc<AtomicBool>,
    subscribed: Arc<AtomicBool>,
    checked: Arc<AtomicUsize>,
    failure: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SchemaWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaWatch")
            .field("checked", &self.checked.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl SchemaWatch {
    /// Starts watching `prefix` on `broker` (connecting in the background).
    pub fn start(broker: &Mosquitto, prefix: &str) -> Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let interface = Interface::load(prefix)?;
        let identity = if broker.is_tls() {
            Some(broker.pki().client(WATCH_USER)?)
        } else {
            None
        };
        let id = format!(
            "{WATCH_USER}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut opts = broker.client_options(&id, identity.as_ref())?;
        // Evidence images up to the device's limit.
        opts.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut connection) = rumqttc::Client::new(opts, 64);
        let filter = format!("{}/#", prefix.trim_end_matches('/'));
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        let checked = Arc::new(AtomicUsize::new(0));
        let failure = Arc::new(Mutex::new(None));
        let (stop2, subscribed2, checked2, failure2) = (
            stop.clone(),
            subscribed.clone(),
            checked.clone(),
            failure.clone(),
        );
        let thread = std::thread::spawn(move || {
            use rumqttc::{Event, Packet, QoS};
            while !stop2.load(Ordering::SeqCst) {
                match connection.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                        subscribed2.store(true, Ordering::SeqCst);
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        checked2.fetch_add(1, Ordering::SeqCst);
                        if let Err(why) = interface.check(&p.topic, &p.payload) {
                            let mut first = failure2.lock().unwrap_or_else(PoisonError::into_inner);
                            first.get_or_insert(why);
                        }
                    }
                    Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {}
                    // The broker is down or restarting: the next poll connects again.
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(200)),
                    Err(rumqttc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let _ = client.try_disconnect();
        });
        Ok(Self {
            stop,
            subscribed,
            checked,
            failure,
            thread: Some(thread),
        })
    }

    /// Waits up to `limit` for the subscription to be granted; whether it was.
    #[must_use]
    pub fn wait_subscribed(&self, limit: Duration) -> bool {
        let end = std::time::Instant::now() + limit;
        while std::time::Instant::now() < end {
            if self.subscribed.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.subscribed.load(Ordering::SeqCst)
    }

    /// How many messages were checked so far.
    #[must_use]
    pub fn checked(&self) -> usize {
        self.checked.load(Ordering::SeqCst)
    }

    /// The first message that did not follow the interface, if any.
    #[must_use]
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops watching; the number of messages checked, or the first that did not validate.
    pub fn finish(mut self) -> Result<usize, String> {
        self.halt();
        match self.failure() {
            Some(why) => Err(why),
            None => Ok(self.checked()),
        }
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SchemaWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_broker_lets_the_watch_user_read_every_topic() {
        assert!(
            crate::WATCH_ACL.contains(&format!("user {WATCH_USER}\ntopic read anpr/v1/#")),
            "{}",
            crate::WATCH_ACL
        );
    }

    #[test]
    fn the_committed_interface_loads_and_names_a_topic_s_channel() {
        let i = Interface::load("anpr/v1").unwrap();
        let id = "0191a0e0-0000-7000-8000-000000000000";
        assert_eq!(
            i.check("anpr/v1/KZ-1/health", br#"{"status":"offline"}"#),
            Ok("health")
        );
        assert_eq!(
            i.check(
                &format!("anpr/v1/KZ-1/evidence/{id}/plate"),
                &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0xFF, 0xD9]
            ),
            Ok("evidence")
        );
        let not_jpeg = i
            .check(&format!("anpr/v1/KZ-1/evidence/{id}/plate"), b"PNG")
            .unwrap_err();
        assert!(not_jpeg.contains("no JPEG"), "{not_jpeg}");
        let bad = i
            .check("anpr/v1/KZ-1/ack", br#"{"event_id":"x","seq":1}"#)
            .unwrap_err();
        assert!(
            bad.contains("ack.json") && bad.contains("/event_id"),
            "{bad}"
        );
        let missing = i.check("anpr/v1/KZ-1/health", b"{}").unwrap_err();
        assert!(missing.contains("health.json"), "{missing}");
        let nowhere = i.check("anpr/v1/KZ-1/other", b"{}").unwrap_err();
        assert!(nowhere.contains("no channel"), "{nowhere}");
        assert!(
            i.check("anpr/v1/KZ-1/cmd/plate-list/wanted", b"{}")
                .unwrap_err()
                .contains("plate-list-command.json")
        );
    }
}
