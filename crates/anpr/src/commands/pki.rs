//! `anpr pki`: the certificates and keys of the MQTT link (crates/pki does the work); prints
//! what was written and where each party's files go.

use anyhow::Result;

use crate::PkiCommand;
use crate::exit::ExitStatus;

#[allow(clippy::print_stdout)]
pub(crate) fn pki(command: &PkiCommand) -> Result<ExitStatus> {
    match command {
        PkiCommand::Init { dir, broker_names } => {
            let pki = anpr_pki::Pki::init(dir, broker_names)?;
            let broker = pki.broker();
            let central = pki.central();
            let commands = pki.commands();
            println!("wrote a new PKI into {}:", dir.display());
            println!(
                "  {}  the CA certificate; its key {} stays here, off the network",
                pki.ca_cert().display(),
                dir.join("ca.key").display()
            );
            println!(
                "  {}/  the broker: copy ca.crt, broker.crt, broker.key and crl.pem to /etc/mosquitto/anpr/ (the key owned by the mosquitto user, mode 0600), with deploy/mosquitto/acl, and deploy/mosquitto/anpr.conf to /etc/mosquitto/conf.d/",
                broker.dir.display()
            );
            println!(
                "  {}/  the central receiver: `anpr central --tls-ca {} --tls-cert {} --tls-key {} --signing-key {} --devices {}` (central.key signs its acks and commands; devices/ gets each device's public key)",
                central.dir.display(),
                central.tls.ca.display(),
                central.tls.cert.display(),
                central.tls.key.display(),
                central.signing_key.display(),
                central.device_keys.display()
            );
            print_commands(&commands, &central.signing_key);
            let names = if broker_names.is_empty() {
                "localhost and 127.0.0.1 only (add --broker-name for the address devices use)"
                    .to_string()
            } else {
                format!("localhost, 127.0.0.1, {}", broker_names.join(", "))
            };
            println!("the broker's certificate is valid for {names}");
            println!(
                "next: `anpr pki device --dir {} --inventory <inventory>` for each device",
                dir.display()
            );
        }
        PkiCommand::Device { dir, inventory } => {
            let pki = anpr_pki::Pki::open(dir)?;
            let d = pki.issue_device(inventory)?;
            println!("issued device {inventory} into {}/:", d.dir.display());
            println!(
                "  {}  its certificate (CN {inventory}: the broker's ACL gives it anpr/v1/{inventory}/... only)",
                d.tls.cert.display()
            );
            println!("  {}  its TLS key (mode 0600)", d.tls.key.display());
            println!(
                "  {}  its signing key (mode 0600); {} its public half",
                d.signing_key.display(),
                d.signing_pub.display()
            );
            println!(
                "  {} and {}  the CA certificate and the central side's public key",
                d.tls.ca.display(),
                d.central_pub.display()
            );
            println!(
                "copy the folder to the device (owned by the user the device runs as) and set in its config:"
            );
            println!(
                "  [uplink]\n  broker = \"mqtts://<broker>:8883\"\n  tls_ca = \"{}\"\n  tls_cert = \"{}\"\n  tls_key = \"{}\"",
                d.tls.ca.display(),
                d.tls.cert.display(),
                d.tls.key.display()
            );
            println!(
                "the central receiver reads its public key from {}",
                pki.central()
                    .device_keys
                    .join(format!("{inventory}.pub"))
                    .display()
            );
        }
        PkiCommand::Commands { dir } => {
            let pki = anpr_pki::Pki::open(dir)?;
            let commands = pki.issue_commands()?;
            println!(
                "issued the command sender's identity (CN {}) into {}/:",
                anpr_pki::COMMANDS_CN,
                pki.central().dir.display()
            );
            print_commands(&commands, &pki.central().signing_key);
            println!(
                "the broker lets it write commands once its ACL has the `user {}` block of deploy/mosquitto/acl",
                anpr_pki::COMMANDS_CN
            );
        }
        PkiCommand::Post {
            dir,
            id,
            devices,
            prefix,
        } => {
            let pki = anpr_pki::Pki::open(dir)?;
            let p = pki.issue_post(id, devices, prefix)?;
            let cn = anpr_pki::post_cn(id);
            println!(
                "issued control post {id} (CN {cn}) into {}/:",
                p.dir.display()
            );
            println!(
                "  {} and {}  its certificate and TLS key (mode 0600), with {}",
                p.tls.cert.display(),
                p.tls.key.display(),
                p.tls.ca.display()
            );
            println!(
                "  {}  its signing key (mode 0600: it signs the post's acknowledgements); {} its public half",
                p.signing_key.display(),
                p.signing_pub.display()
            );
            println!(
                "  {}/  the public keys of the devices it watches",
                p.device_keys.display()
            );
            println!(
                "  {}  its block for the broker's ACL: append it to /etc/mosquitto/anpr/acl and restart mosquitto (without it the post receives nothing)",
                p.acl.display()
            );
            let watch: String = devices.iter().fold(String::new(), |mut s, d| {
                s.push_str(" --device ");
                s.push_str(d);
                s
            });
            println!(
                "run it: `anpr central post --id {id}{watch} --broker mqtts://<broker>:8883 --tls-ca {} --tls-cert {} --tls-key {} --signing-key {} --device-keys {} --db post.sqlite`",
                p.tls.ca.display(),
                p.tls.cert.display(),
                p.tls.key.display(),
                p.signing_key.display(),
                p.device_keys.display()
            );
        }
        PkiCommand::Revoke {
            dir,
            inventory,
            cert,
        } => {
            let pki = anpr_pki::Pki::open(dir)?;
            let (crl, what) = match (inventory, cert) {
                (Some(inventory), _) => (
                    pki.revoke_device(inventory)?,
                    format!("the certificate of {inventory}"),
                ),
                (None, Some(cert)) => (
                    pki.revoke_certificate(cert)?,
                    format!("the certificate {}", cert.display()),
                ),
                (None, None) => unreachable!("clap requires --inventory or --cert"),
            };
            println!("revoked {what}: wrote {}", crl.display());
            println!(
                "copy it to the broker's crlfile (/etc/mosquitto/anpr/crl.pem) and restart mosquitto; the device's connections are refused from then on"
            );
        }
    }
    Ok(ExitStatus::Success)
}

/// Where the command sender's files are and how `anpr send-list` takes them.
#[allow(clippy::print_stdout)]
fn print_commands(files: &anpr_pki::TlsFiles, signing_key: &std::path::Path) {
    println!(
        "  {} and {}  the command sender (CN {}, key mode 0600): `anpr send-list --tls-ca {} --tls-cert {} --tls-key {} --signing-key {} ...` (the broker lets it write commands only; the receiver's certificate cannot)",
        files.cert.display(),
        files.key.display(),
        anpr_pki::COMMANDS_CN,
        files.ca.display(),
        files.cert.display(),
        files.key.display(),
        signing_key.display()
    );
}
