#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time from its seed corpus (fuzz/corpus/);
# fails on any crash, leaving the input under fuzz/artifacts/<target>/. See docs/fuzzing.md.
#
#   fuzz/run.sh              15 s per target (or FUZZ_SECONDS), FUZZ_JOBS at a time (CPUs)
#   fuzz/run.sh 300          5 minutes per target
#   fuzz/run.sh 60 ack       one target
#
# Runs on the stable toolchain: it ships the AddressSanitizer runtime, and RUSTC_BOOTSTRAP=1
# lets it take the `-Zsanitizer` flag cargo-fuzz passes, so no nightly is downloaded. Inputs
# the fuzzer finds go to a scratch folder, so the committed seeds stay small.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
say() { printf '[fuzz] %s\n' "$*"; }

seconds="${1:-${FUZZ_SECONDS:-15}}"
jobs="${FUZZ_JOBS:-$(nproc)}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "cargo-fuzz is missing: run deploy/setup.sh (or cargo install cargo-fuzz --version 0.13.2 --locked)"
  exit 1
fi
export RUSTC_BOOTSTRAP=1
if [ "$#" -gt 1 ]; then
  targets=("${@:2}")
else
  mapfile -t targets < <(cargo fuzz list)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

start=$(date +%s)
# Optimised code (fuzz/Cargo.toml: opt-level 1) with debug assertions, overflow checks and
# AddressSanitizer: cargo-fuzz's defaults.
if ! cargo fuzz build >"$scratch/build.log" 2>&1; then
  cat "$scratch/build.log"
  exit 1
fi
built=$(date +%s)
say "built ${#targets[@]} targets in $((built - start)) s"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin="target/$triple/release"

# Runs one target; writes its summary line and keeps its log in the scratch folder.
run_one() {
  local t="$1" log="$scratch/$1.log" t0 status=0 runs corpus crashes
  mkdir -p "$scratch/corpus/$t" "$scratch/artifacts/$t"
  t0=$(date +%s)
  ASAN_OPTIONS="detect_odr_violation=0" "$bin/$t" "$scratch/corpus/$t" "corpus/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$scratch/artifacts/$t/" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$scratch/corpus/$t" "corpus/$t" -type f | wc -l)
  crashes=$(find "$scratch/artifacts/$t" -type f | wc -l)
  printf '%-16s %10s %6s %8s %8s %s\n' "$t" "${runs:-?}" "$(($(date +%s) - t0))" \
    "$corpus" "$crashes" "$status" >"$scratch/$t.summary"
}

for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
done
wait

failed=()
printf '[fuzz] %-16s %10s %6s %8s %8s\n' target runs secs corpus crashes
for t in "${targets[@]}"; do
  if [ ! -f "$scratch/$t.summary" ]; then
    say "$t did not run"
    failed+=("$t")
    continue
  fi
  read -r _ runs secs corpus crashes status <"$scratch/$t.summary"
  printf '[fuzz] %-16s %10s %6s %8s %8s\n' "$t" "$runs" "$secs" "$corpus" "$crashes"
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed+=("$t")
  fi
done
say "fuzzing took $(($(date +%s) - built)) s after the build, $jobs targets at a time"
if [ "${#failed[@]}" -gt 0 ]; then
  for t in "${failed[@]}"; do
    say "--- $t"
    grep -E -A8 "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$scratch/$t.log" | head -40 ||
      tail -40 "$scratch/$t.log"
    mkdir -p "artifacts/$t"
    cp "$scratch/artifacts/$t"/* "artifacts/$t/" 2>/dev/null || true
  done
  say "crashes in: ${failed[*]}; inputs under fuzz/artifacts/ (replay: cargo fuzz run <target> <file>)"
  exit 1
fi
say "no crashes"
