#!/usr/bin/env bash
# Installs the appliance as a systemd service on this machine (run as root, after
# deploy/setup.sh). Idempotent: a second run updates the binary, the models and the unit and
# keeps the configuration, the queue and the plate lists.
#
#   /usr/local/bin/anpr              the binary (release build)
#   /usr/local/share/anpr/models/    the models and ONNX Runtime
#   /etc/anpr/anpr.toml              the configuration (written once from config/example.toml)
#   /var/lib/anpr/                   the queue and the plate lists (the only place it writes)
#   /etc/systemd/system/anpr.service the unit (deploy/systemd/anpr.service)
#
# Then: edit /etc/anpr/anpr.toml (inventory number, cameras, broker), and
#   systemctl restart anpr; journalctl -u anpr -f
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[install] %s\n' "$*"; }
if [ "$(id -u)" -ne 0 ]; then
  say "run as root (sudo $0)"
  exit 2
fi
command -v systemctl >/dev/null || { say "systemd is not present on this machine"; exit 2; }

say "building the release binary"
cargo build --quiet --release -p anpr
install -m 0755 target/release/anpr /usr/local/bin/anpr

say "installing the models"
install -d -m 0755 /usr/local/share/anpr/models
for f in models/*.onnx models/*.md models/libonnxruntime.so; do
  install -m 0644 "$f" /usr/local/share/anpr/models/
done

getent group anpr >/dev/null || groupadd --system anpr
id anpr >/dev/null 2>&1 || useradd --system --gid anpr --home-dir /var/lib/anpr --no-create-home --shell /usr/sbin/nologin anpr
install -d -m 0750 -o anpr -g anpr /var/lib/anpr /var/lib/anpr/lists
install -d -m 0755 /etc/anpr
if [ ! -e /etc/anpr/anpr.toml ]; then
  say "writing /etc/anpr/anpr.toml from config/example.toml: set the inventory number, cameras and broker"
  sed -e 's#^dir = "../models"#dir = "/usr/local/share/anpr/models"#' \
      -e 's#^queue = "../var/queue.sqlite"#queue = "/var/lib/anpr/queue.sqlite"#' \
      -e 's#^\#lists_dir = "../var/lists"#lists_dir = "/var/lib/anpr/lists"#' \
      config/example.toml > /etc/anpr/anpr.toml
  chmod 0640 /etc/anpr/anpr.toml
  chgrp anpr /etc/anpr/anpr.toml
else
  say "keeping /etc/anpr/anpr.toml"
fi
if grep -q '^\[\[list\]\]' /etc/anpr/anpr.toml; then
  say "plate lists named in /etc/anpr/anpr.toml must be copied to /var/lib/anpr/lists"
fi

install -m 0644 deploy/systemd/anpr.service /etc/systemd/system/anpr.service
systemctl daemon-reload
systemctl enable anpr.service >/dev/null
say "installed as anpr.service (enabled); the configuration is checked at every start"
say "start with: systemctl restart anpr; follow with: journalctl -u anpr -f"
