#!/usr/bin/env bash
# Sets up whatever is missing, then runs the appliance on the synthesised demo clip with a
# local mosquitto broker and the reference central receiver.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash deploy/setup.sh
exec cargo run --quiet -p anpr -- demo "$@"
