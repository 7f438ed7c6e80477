//! The machine-readable interface of the appliance for the authorized body's systems
//! (point 23): an AsyncAPI 3.0 document of every MQTT topic and a JSON Schema of every message,
//! generated here from the Rust types that write and read them.
//!
//! # Contract
//!
//! - [`files`] renders the whole of `docs/interface/` except its README: `asyncapi.json` and
//!   `schemas/*.json`. The schemas are derived (`schemars`, draft 2020-12) from the types the
//!   device and the receiver serialise and parse ([`anpr_types::Delivery`], [`anpr_types::Ack`],
//!   [`anpr_types::Health`], [`anpr_rules::ListCommand`], ...), so serde's `rename`, `default`,
//!   `skip_serializing_if`, `flatten` and `deny_unknown_fields` are what the schemas say.
//! - The committed files are these files: `tests/interface.rs` fails when they differ and says
//!   how to regenerate them (`UPDATE_INTERFACE=1 cargo test -p anpr-interface`).
//! - The output is deterministic: every JSON object is written with its keys sorted, two-space
//!   indented, with a final newline, whatever `serde_json` features the build has.
//! - Evidence images are raw JPEG bytes, not JSON: the document describes their payload
//!   (`image/jpeg`); their sha256 and size travel in the event ([`anpr_types::EvidenceRef`]).
//!
//! Nothing here runs on the device: the schema derives sit behind the `schema` feature of
//! `anpr-types` and `anpr-rules`, which only this crate (and the tests) turn on.

use anpr_rules::ListCommand;
use anpr_types::{Ack, CustodyRecord, Delivery, Event, Health};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Where the files live, relative to the repository root.
pub const DIR: &str = "docs/interface";

/// The JSON Schema dialect of every schema file, as AsyncAPI names it in `schemaFormat`.
pub const SCHEMA_FORMAT: &str = "application/schema+json;version=draft-2020-12";

/// What the device's health topic carries: its full health, or only a status (the broker's
/// last will, `{"status":"offline"}`, retained in place of the last full message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HealthMessage {
    Full(Box<Health>),
    Status(StatusOnly),
}

/// A health message with nothing but the device's status: the last will the device leaves
/// with the broker when it connects. A receiver updates the device's status from it and keeps
/// the last full health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusOnly {
    pub status: DeviceStatus,
}

/// Whether the device is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    Online,
    Offline,
}

/// The schema files: name under `schemas/` and the schema.
#[must_use]
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("delivery.json", schema_of::<Delivery>()),
        ("event.json", schema_of::<Event>()),
        ("ack.json", schema_of::<Ack>()),
        ("health.json", schema_of::<HealthMessage>()),
        ("plate-list-command.json", schema_of::<ListCommand>()),
        // A custody journal line (annex 3) travels as an event of kind `custody` (inside
        // `delivery.json`); its own schema serves readers of the journal and of exports.
        ("custody-record.json", schema_of::<CustodyRecord>()),
        // The export bundle's manifest (`anpr_trust::bundle::Manifest`) goes here once it
        // derives `JsonSchema` behind a `schema` feature of `anpr-trust`, like the types above.
    ]
}

/// Every generated file: its path under [`DIR`] and its text.
#[must_use]
pub fn files() -> Vec<(String, String)> {
    let mut out = vec![("asyncapi.json".to_string(), render(&asyncapi()))];
    for (name, schema) in schemas() {
        out.push((format!("schemas/{name}"), render(&schema)));
    }
    out
}

/// `value` as two-space indented JSON with sorted keys and a final newline.
#[must_use]
pub fn render(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(value.clone())).expect("JSON renders");
    text.push('\n');
    text
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn schema_of<T: JsonSchema>() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    serde_json::to_value(schema).expect("schemas serialise")
}

/// A message of the document: JSON with a schema file, or raw bytes.
fn message(name: &str, title: &str, summary: &str, payload: Value, content_type: &str) -> Value {
    let mut m = json!({
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": content_type,
    });
    m["payload"] = payload;
    m
}

fn json_message(name: &str, title: &str, summary: &str, file: &str) -> Value {
    message(
        name,
        title,
        summary,
        json!({ "schemaFormat": SCHEMA_FORMAT, "schema": { "$ref": format!("schemas/{file}") } }),
        "application/json",
    )
}

/// An operation: who does what on which channel, with its MQTT QoS and retain flag.
fn operation(
    action: &str,
    actor: &str,
    channel: &str,
    message: &str,
    qos: u8,
    retain: bool,
    description: &str,
) -> Value {
    json!({
        "action": action,
        "channel": { "$ref": format!("#/channels/{channel}") },
        "messages": [{ "$ref": format!("#/channels/{channel}/messages/{message}") }],
        "tags": [{ "name": actor }],
        "description": description,
        "bindings": { "mqtt": { "qos": qos, "retain": retain, "bindingVersion": "0.2.0" } },
    })
}

fn parameters(names: &[&str]) -> Value {
    let mut out = Map::new();
    for name in names {
        let description = match *name {
            "prefix" => {
                "Topic prefix of the deployment, `anpr/v1` unless configured (`uplink.topic_prefix` on the device, `--prefix` on the receiver); may span several levels."
            }
            "inventory" => {
                "Inventory number of the device (point 26): 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.`; the CN of its certificate."
            }
            "event_id" => "The event's `event_id`, a UUID in lower-case hyphenated form.",
            "kind" => {
                "Kind of image, as the event's `evidence[].kind` names it: `overview` (the whole frame), `plate` (the plate with a margin) or `overlay` (a violation's frame with what the rule saw drawn on it); a receiver takes any 1 to 32 lower-case letters, digits, `-` or `_`."
            }
            "name" => "Name of the plate list, as in the command's `name`.",
            "post" => {
                "Id of the transport control post (`anpr pki post --id`); its certificate's CN is `anpr-post-<post>`."
            }
            _ => unreachable!("a parameter without a description"),
        };
        let mut p = json!({ "description": description });
        if *name == "prefix" {
            p["default"] = json!("anpr/v1");
        }
        out.insert((*name).to_string(), p);
    }
    Value::Object(out)
}

fn channel(address: &str, params: &[&str], description: &str, messages: Value) -> Value {
    let mut c = json!({
        "address": address,
        "parameters": parameters(params),
        "description": description,
    });
    c["messages"] = messages;
    c
}

/// The AsyncAPI 3.0 document of the appliance's MQTT interface.
#[must_use]
pub fn asyncapi() -> Value {
    let device = &["prefix", "inventory"];
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "ANPR appliance: MQTT interface",
            "version": "1",
            "description": concat!(
                "Every topic between ANPR devices, the central receivers and the command sender, over one MQTT broker with mutual TLS. ",
                "Generated from the Rust types by `anpr-interface` (`UPDATE_INTERFACE=1 cargo test -p anpr-interface`); do not edit by hand. ",
                "Operations are named and tagged by who performs them: `device`, `receiver` (the central receiver; every receiver of events acknowledges them), `command-sender` (`anpr send-list`), `control-post` (a transport control post, `anpr central post`, acknowledging on its own channel). ",
                "Delivery is at least once: a receiver stores by `event_id` and acknowledges each event and image after storing it; the device sends again whatever is not acknowledged. ",
                "Versioning: see README.md beside this file."
            ),
            "license": { "name": "Apache-2.0" },
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "broker:8883",
                "protocol": "secure-mqtt",
                "protocolVersion": "3.1.1",
                "description": concat!(
                    "Mosquitto 2 as shipped (`deploy/mosquitto/anpr.conf`): TLS only, a client certificate from the deployment's CA required, ",
                    "its CN taken as user name and client id, topics allowed by `deploy/mosquitto/acl`."
                ),
                "security": [{ "$ref": "#/components/securitySchemes/clientCertificate" }],
            }
        },
        "channels": {
            "events": channel(
                "{prefix}/{inventory}/events",
                device,
                "Events of one device (passages, violations, camera gaps), each a signed, hash-chained record inside a delivery.",
                json!({ "delivery": { "$ref": "#/components/messages/delivery" } }),
            ),
            "evidence": channel(
                "{prefix}/{inventory}/evidence/{event_id}/{kind}",
                &["prefix", "inventory", "event_id", "kind"],
                "Evidence images of an event, after the event; each matches the sha256 and size the event's `evidence` names.",
                json!({ "evidenceImage": { "$ref": "#/components/messages/evidenceImage" } }),
            ),
            "ack": channel(
                "{prefix}/{inventory}/ack",
                device,
                "Signed acknowledgements to one device: an event, or one of its images, is stored.",
                json!({ "ack": { "$ref": "#/components/messages/ack" } }),
            ),
            "postAck": channel(
                "{prefix}/{inventory}/ack/post/{post}",
                &["prefix", "inventory", "post"],
                "Signed acknowledgements of one transport control post to one device (docs/receivers.md): a violation it watches, or one of its images, is stored at the post. The device counts them for information; its delivery stays keyed to the `ack` channel.",
                json!({ "ack": { "$ref": "#/components/messages/ack" } }),
            ),
            "health": channel(
                "{prefix}/{inventory}/health",
                device,
                "Health of one device, retained; the broker publishes the device's last will here when its connection is lost.",
                json!({ "health": { "$ref": "#/components/messages/health" } }),
            ),
            "plateList": channel(
                "{prefix}/{inventory}/cmd/plate-list/{name}",
                &["prefix", "inventory", "name"],
                "Signed plate-list updates to one device, one retained topic per list (the broker keeps the latest version of each). The device subscribes to `{prefix}/{inventory}/cmd/#`.",
                json!({ "plateListCommand": { "$ref": "#/components/messages/plateListCommand" } }),
            ),
        },
        "operations": {
            "deviceSendsEvents": operation("send", "device", "events", "delivery", 1, false,
                "The device publishes each queued event until a receiver acknowledges it (again after a reconnect or an ack timeout: `delayed` is then true)."),
            "receiverReceivesEvents": operation("receive", "receiver", "events", "delivery", 1, false,
                "The receiver subscribes to `{prefix}/+/events` with a persistent session, checks each event's topic, signature and chain, stores it once by `event_id` and acknowledges it."),
            "deviceSendsEvidence": operation("send", "device", "evidence", "evidenceImage", 1, false,
                "The device publishes an event's images after the event is acknowledged, until each is acknowledged."),
            "receiverReceivesEvidence": operation("receive", "receiver", "evidence", "evidenceImage", 1, false,
                "The receiver subscribes to `{prefix}/+/evidence/+/+` and stores an image only when its event is stored and the bytes match the event's sha256 and size."),
            "receiverSendsAcks": operation("send", "receiver", "ack", "ack", 1, false,
                "After each commit, the receiver acknowledges every event and image stored, signed with its key."),
            "deviceReceivesAcks": operation("receive", "device", "ack", "ack", 0, false,
                "The device subscribes to its own ack topic at QoS 0 (its resend at the ack timeout is the retry; its session is clean) and marks a row delivered only on an ack signed by the receiver's key over exactly that row's hash."),
            "postSendsAcks": operation("send", "control-post", "postAck", "ack", 1, false,
                "A transport control post (`anpr central post`) acknowledges each event of the kinds it keeps (violations by default) and each of their images after storing it, signed with the post's own key."),
            "deviceReceivesPostAcks": operation("receive", "device", "postAck", "ack", 0, false,
                "The device subscribes to `{prefix}/{inventory}/ack/post/+` and counts each post's acknowledgements (and the last sequence acknowledged); they mark nothing delivered and make it send nothing again."),
            "deviceSendsHealth": operation("send", "device", "health", "health", 1, true,
                "The device publishes its health retained on each connection, when its faults change and every 10 s; its last will (QoS 1, retained) is `{\"status\":\"offline\"}`."),
            "receiverReceivesHealth": operation("receive", "receiver", "health", "health", 1, true,
                "The receiver subscribes to `{prefix}/+/health` and keeps each device's last full health, its status and every message that reports a fault."),
            "commandSenderSendsPlateLists": operation("send", "command-sender", "plateList", "plateListCommand", 1, true,
                "`anpr send-list` publishes a plate list signed with the central key for one device, retained."),
            "deviceReceivesPlateLists": operation("receive", "device", "plateList", "plateListCommand", 1, true,
                "The device checks the signature (for its own inventory), the checksum and that the version is newer than the one in force, then replaces the list."),
        },
        "components": {
            "messages": {
                "delivery": json_message("delivery", "Event delivery",
                    "An event as published: the signed event (`anpr.event/1`) with `sent_at` and `delayed` beside its fields.",
                    "delivery.json"),
                "evidenceImage": message("evidenceImage", "Evidence image",
                    "The image's bytes, JPEG; its sha256 and size are in the event's `evidence` entry of the same `kind`.",
                    json!({ "type": "string", "contentEncoding": "binary", "contentMediaType": "image/jpeg" }),
                    "image/jpeg"),
                "ack": json_message("ack", "Acknowledgement",
                    "The receiver stored an event (or, with `evidence`, one of its images); signed over `anpr-ack/1\\n<inventory>\\n<seq>\\n<event_id>\\n<sha256>`.",
                    "ack.json"),
                "health": json_message("health", "Device health",
                    "The device's health (`anpr.health/1`), or only its status (the last will).",
                    "health.json"),
                "plateListCommand": json_message("plateListCommand", "Plate-list update",
                    "A whole plate list replacing the one in force, signed with the central key for the device named by the topic.",
                    "plate-list-command.json"),
            },
            "securitySchemes": {
                "clientCertificate": {
                    "type": "X509",
                    "description": concat!(
                        "Mutual TLS: every client presents a certificate issued by the deployment's CA (`anpr pki`). ",
                        "Its CN is the client's identity: a device's inventory number (it may publish only under its own inventory and read only its own ack and cmd topics), ",
                        "`anpr-central` (reads every device's events, evidence and health; writes acks), `anpr-commands` (writes cmd topics only). ",
                        "Messages are signed besides (ed25519): events by the device key, acks and commands by the central key."
                    ),
                }
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_will_is_a_status_only_health_message_and_a_full_one_stays_full() {
        let will: HealthMessage = serde_json::from_str(r#"{"status":"offline"}"#).unwrap();
        assert_eq!(
            will,
            HealthMessage::Status(StatusOnly {
                status: DeviceStatus::Offline
            })
        );
        assert!(serde_json::from_str::<HealthMessage>(r#"{"status":"asleep"}"#).is_err());
    }

    #[test]
    fn rendering_sorts_keys_and_ends_with_a_newline() {
        let text = render(&json!({"b": 1, "a": {"d": 2, "c": 3}}));
        assert_eq!(
            text,
            "{\n  \"a\": {\n    \"c\": 3,\n    \"d\": 2\n  },\n  \"b\": 1\n}\n"
        );
    }
}
