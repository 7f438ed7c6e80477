#!/usr/bin/env bash
# The fleet demo in one command: installs what is missing (system packages, nats-server,
# SeaweedFS), builds the release binary, then starts a 3-node NATS cluster, PostgreSQL, the
# object store, two receiver replicas and 1,000 simulated devices on loopback, and prints the
# report. Extra arguments go to `anpr fleet demo` (e.g. --devices 100 --seconds 30
# --fault nats-node --json report.json).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash deploy/setup.sh --no-build
cargo build --quiet --release -p anpr
# Each simulated device holds its queue's files and a connection open.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# A thousand devices logging their link faults would bury the progress lines: the devices'
# log is off unless ANPR_LOG says otherwise (the engines' and replicas' logs are in
# target/fleet/run/).
export ANPR_LOG="${ANPR_LOG:-off}"
case " $* " in
  *" --devices"*) exec target/release/anpr fleet demo "$@" ;;
  *) exec target/release/anpr fleet demo --devices 1000 "$@" ;;
esac
