#!/usr/bin/env bash
# Runs every fuzz target of the journey player for a short while (default 20 s each).
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain build it.
#   cargo install cargo-fuzz --locked   # once
#   scenarios/fuzz/run-briefly.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
for target in journey_loader ussd_replies daraja_bodies momo_bodies airtel_bodies mpesa_tz_bodies at_line; do
  echo "== $target (${secs}s)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" --fuzz-dir fuzz -- -max_total_time="$secs" 2>&1 | grep -E "^Done|ERROR|panicked" || true
done
