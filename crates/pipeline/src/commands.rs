//! Commands from the central side (`<prefix>/<inventory>/cmd/...`), passed on by the uplink.
//!
//! Today one kind: a plate-list update, on its list's own retained topic
//! `<prefix>/<inventory>/cmd/plate-list/<name>` (so the broker keeps the latest version of
//! every list, and a device that was offline gets them all when it connects). The broker's ACL
//! lets only the central side's command sender publish there, but the device does not rely on
//! the broker: an update is checked whole (its topic names the list the payload names, JSON,
//! the central key's signature for this device's inventory, version above the one in force,
//! SHA-256, every line) before it is put in force and kept in `lists_dir`; the recognition
//! threads see the new version from their next passage on, without a restart. A refused
//! update (on another list's topic or no list's, a forged or mis-signed one, a replayed older
//! version, a damaged list) is raised as a `plate-list-update` fault on the health channel and
//! the list in force stays. The version already in force, validly signed and sent again (a
//! QoS 1 duplicate, the retained command after a reconnect), is ignored: the signature is
//! checked before the version, so a forged command at that version is a fault, not a
//! duplicate. An empty message (a retained command cleared on the broker) changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anpr_rules::{ListCommand, ListUpdateError, ListUpdated, Lists};
use anpr_uplink::{Command, Counters};
use tokio::sync::mpsc;

use crate::DeviceCounters;

/// What became of one command.
enum Outcome {
    Applied(ListUpdated),
    Refused(ListUpdateError),
    /// Not on the topic of the list it names; the message says why and what to do.
    WrongTopic(String),
}

/// Serves commands until the uplink hangs up.
pub(crate) async fn serve(
    mut rx: mpsc::UnboundedReceiver<Command>,
    lists: Arc<Lists>,
    lists_dir: PathBuf,
    counters: Arc<DeviceCounters>,
    uplink: Arc<Counters>,
) {
    while let Some(cmd) = rx.recv().await {
        if cmd.payload.is_empty() {
            // Publishing an empty retained message is how a retained command is removed from
            // the broker; subscribers connected at that moment get it. Nothing to apply.
            tracing::info!(topic = %cmd.topic, "Retained command cleared on the broker; nothing changes.");
            continue;
        }
        // Parsing and writing the accepted list (a file and its directory synced): off the
        // async runtime.
        let (lists, dir) = (lists.clone(), lists_dir.clone());
        let outcome = tokio::task::spawn_blocking(move || handle(&cmd, &lists, &dir)).await;
        match outcome {
            Ok(Outcome::Applied(done)) => {
                counters.list_updates.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    list = %done.name,
                    version = done.version,
                    previous = done.previous,
                    entries = done.entries,
                    "Plate list updated from the central side."
                );
            }
            // QoS 1 may bring a command twice, and a retained one comes back on every
            // reconnect: the version in force again is no news and no fault. (NotNewer comes
            // only after the signature verified: a forged one is a Signature error.)
            Ok(Outcome::Refused(ListUpdateError::NotNewer {
                name,
                version,
                current,
            })) if version == current => {
                tracing::info!(list = %name, version, "Plate list update already in force.");
            }
            Ok(Outcome::Refused(e)) => {
                counters
                    .list_updates_refused
                    .fetch_add(1, Ordering::Relaxed);
                let fault = e.fault();
                tracing::warn!(error = %e, "Plate list update refused; the list in force stays.");
                uplink.raise_fault(&fault.code, &fault.message);
            }
            Ok(Outcome::WrongTopic(message)) => {
                counters
                    .list_updates_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %message, "Plate list update refused; the list in force stays.");
                uplink.raise_fault(ListUpdateError::FAULT_CODE, &message);
            }
            Err(e) => {
                counters
                    .list_updates_refused
                    .fetch_add(1, Ordering::Relaxed);
                uplink.raise_fault(ListUpdateError::FAULT_CODE, &format!("update failed: {e}"));
            }
        }
    }
}

/// Checks that the command came on the topic of the list it names, then applies it.
fn handle(cmd: &Command, lists: &Lists, dir: &Path) -> Outcome {
    if let Err(message) = check_topic(cmd) {
        return Outcome::WrongTopic(message);
    }
    match lists.apply_and_keep(&cmd.payload, dir) {
        Ok(done) => Outcome::Applied(done),
        Err(e) => Outcome::Refused(e),
    }
}

/// A plate-list update must come on `<prefix>/<inventory>/cmd/plate-list/<name>` with the
/// `name` its payload gives: the broker keeps one retained message per topic, so an update
/// on another list's topic would put that list's latest version out of the broker's reach.
/// A payload that does not parse is left to [`Lists::apply_and_keep`], which says what is
/// wrong with it.
fn check_topic(cmd: &Command) -> Result<(), String> {
    let Some(topic_list) = cmd.plate_list.as_deref() else {
        return Err(format!(
            "command on {} refused: a plate-list update comes on its list's own topic <prefix>/<inventory>/cmd/plate-list/<name> (where `anpr send-list` publishes it); if a sender left it retained there, clear it with `mosquitto_pub -r -n -t '{}'` and send the list again",
            cmd.topic, cmd.topic
        ));
    };
    match ListCommand::parse(&cmd.payload) {
        Ok(list) if list.name != topic_list => Err(format!(
            "plate list `{}` version {} refused: it came on {}, the topic of list `{topic_list}`; each list is sent on its own topic <prefix>/<inventory>/cmd/plate-list/<name> (`anpr send-list` does so), so that the broker keeps the latest version of every list",
            list.name, list.version, cmd.topic
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use anpr_rules::ListCommand;
    use anpr_types::Topics;
    use anpr_uplink::Command;

    use super::check_topic;

    fn on(topic: &str, payload: Vec<u8>) -> Command {
        let topics = Topics::new("anpr/v1", "KZ-1");
        Command {
            plate_list: topics.plate_list_name(topic).map(str::to_string),
            topic: topic.to_string(),
            payload,
            received_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn an_update_is_taken_only_on_the_topic_of_the_list_it_names() {
        let key = anpr_trust::SigningKey::from_bytes(&[7; 32]);
        let csv = "plate,reason,priority,valid_from,valid_to\n";
        let wanted = ListCommand::signed("wanted", 2, csv, "KZ-1", &key).to_json();
        let topics = Topics::new("anpr/v1", "KZ-1");
        check_topic(&on(&topics.plate_list("wanted"), wanted.clone())).unwrap();
        let err = check_topic(&on(&topics.plate_list("stolen"), wanted.clone())).unwrap_err();
        assert!(
            err.starts_with("plate list `wanted` version 2 refused: it came on anpr/v1/KZ-1/cmd/plate-list/stolen, the topic of list `stolen`"),
            "{err}"
        );
        let err = check_topic(&on(&topics.cmd(), wanted)).unwrap_err();
        assert!(
            err.starts_with("command on anpr/v1/KZ-1/cmd refused")
                && err.contains("mosquitto_pub -r -n -t 'anpr/v1/KZ-1/cmd'"),
            "{err}"
        );
        // What does not parse is for the list's own checks to name.
        check_topic(&on(&topics.plate_list("wanted"), b"{".to_vec())).unwrap();
    }
}
