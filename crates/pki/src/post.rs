//! The identity of a transport control post (the second kind of receiver, docs/receivers.md):
//! a client certificate with CN `anpr-post-<id>`, an ed25519 signing key for its own
//! acknowledgements, and the broker ACL block that gives it exactly its devices.

use std::fmt::Write as _;
use std::path::PathBuf;

use rcgen::ExtendedKeyUsagePurpose;

use crate::files::{make_dir, read, write_public};
use crate::issue::{FIX_INIT, issue, leaf_params};
use crate::{Pki, PkiError, TlsFiles, check_inventory};

/// The CN of control post `id`'s certificate: `anpr-post-<id>`.
#[must_use]
pub fn post_cn(id: &str) -> String {
    format!("{POST_CN_PREFIX}{id}")
}

/// What every control post's CN starts with.
pub const POST_CN_PREFIX: &str = "anpr-post-";

const FIX_POST: &str = "this control post already has an identity: to rotate it, move its folder under posts/ away, issue it again, replace its block in the broker's ACL, then revoke the old certificate with `anpr pki revoke --cert <old folder>/post.tls.crt`";

/// What one control post needs, in `<pki>/posts/<id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostFiles {
    pub id: String,
    pub dir: PathBuf,
    /// Its TLS identity, CN `anpr-post-<id>`.
    pub tls: TlsFiles,
    /// Its ed25519 key: the post signs its acknowledgements with it.
    pub signing_key: PathBuf,
    pub signing_pub: PathBuf,
    /// The devices' public keys it checks events with (copies of `central/devices/`).
    pub device_keys: PathBuf,
    /// The broker ACL block of this post, to append to the broker's `acl` file.
    pub acl: PathBuf,
}

impl Pki {
    /// Where the files of control post `id` are (whether issued or not). The id follows the
    /// rules of an inventory number ([`check_inventory`]).
    pub fn post(&self, id: &str) -> Result<PostFiles, PkiError> {
        check_inventory(id)?;
        let dir = self.dir().join("posts").join(id);
        Ok(PostFiles {
            id: id.to_string(),
            tls: TlsFiles {
                ca: dir.join("ca.crt"),
                cert: dir.join("post.tls.crt"),
                key: dir.join("post.tls.key"),
            },
            signing_key: dir.join("post.key"),
            signing_pub: dir.join("post.pub"),
            device_keys: dir.join("devices"),
            acl: dir.join("acl"),
            dir,
        })
    }

    /// Issues control post `id`: its client certificate (CN `anpr-post-<id>`) and key, its
    /// signing key pair, a copy of the CA certificate, copies of the public keys of `devices`
    /// (of every device issued so far when `devices` is empty), and its broker ACL block
    /// ([`post_acl`]) under topic prefix `prefix`. Refuses a post that already has a key, and
    /// a device that has no public key in `central/devices/` yet.
    pub fn issue_post(
        &self,
        id: &str,
        devices: &[String],
        prefix: &str,
    ) -> Result<PostFiles, PkiError> {
        let files = self.post(id)?;
        for (what, path) in [
            ("control post's TLS key", &files.tls.key),
            ("control post's signing key", &files.signing_key),
        ] {
            if path.exists() {
                return Err(PkiError::Exists {
                    what,
                    path: path.clone(),
                    fix: FIX_POST,
                });
            }
        }
        for d in devices {
            check_inventory(d)?;
        }
        let central_keys = self.central().device_keys;
        let names: Vec<String> = if devices.is_empty() {
            let mut all: Vec<String> = std::fs::read_dir(&central_keys)
                .map(|it| {
                    it.filter_map(Result::ok)
                        .filter_map(|e| {
                            e.file_name()
                                .to_str()
                                .and_then(|n| n.strip_suffix(".pub"))
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            all.sort();
            all
        } else {
            devices.to_vec()
        };
        let keys = names
            .iter()
            .map(|d| {
                read(
                    "device public signing key",
                    &central_keys.join(format!("{d}.pub")),
                    "issue the device first (`anpr pki device --inventory <inventory>`), then the post",
                )
                .map(|k| (d, k))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let issuer = self.issuer()?;
        make_dir(&self.dir().join("posts"))?;
        make_dir(&files.dir)?;
        make_dir(&files.device_keys)?;
        write_public(
            "CA certificate",
            &files.tls.ca,
            &read("CA certificate", &self.ca_cert(), FIX_INIT)?,
        )?;
        let params = leaf_params(&post_cn(id), ExtendedKeyUsagePurpose::ClientAuth)?;
        issue(
            &issuer,
            &params,
            ("control post's TLS key", "control post's certificate"),
            &files.tls.cert,
            &files.tls.key,
            FIX_POST,
        )?;
        anpr_trust::generate_signing_key(&files.signing_key, &files.signing_pub)?;
        for (d, key) in keys {
            write_public(
                "device public signing key",
                &files.device_keys.join(format!("{d}.pub")),
                &key,
            )?;
        }
        write_public(
            "control post's ACL block",
            &files.acl,
            post_acl(id, devices, prefix).as_bytes(),
        )?;
        Ok(files)
    }
}

/// The broker ACL block of control post `id` (user `anpr-post-<id>`): it reads the events,
/// evidence images and health of `devices` (of every device when empty) under `prefix`, and
/// writes nothing but its own acknowledgement topic `<prefix>/<inventory>/ack/post/<id>` of
/// those devices. mosquitto's `acl_file` gives a `user` block to that one user, so each post
/// has its own block, appended to the shipped file.
#[must_use]
pub fn post_acl(id: &str, devices: &[String], prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n# Control post {id} (`anpr pki post`): reads its devices' events, evidence and health;\n# writes only its own acknowledgements."
    );
    let _ = writeln!(s, "user {}", post_cn(id));
    let levels: Vec<&str> = if devices.is_empty() {
        vec!["+"]
    } else {
        devices.iter().map(String::as_str).collect()
    };
    for d in &levels {
        let _ = writeln!(s, "topic read {prefix}/{d}/events");
        let _ = writeln!(s, "topic read {prefix}/{d}/evidence/#");
        let _ = writeln!(s, "topic read {prefix}/{d}/health");
    }
    for d in &levels {
        let _ = writeln!(s, "topic write {prefix}/{d}/ack/post/{id}");
    }
    s
}
