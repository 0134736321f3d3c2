#!/usr/bin/env bash
# Ingest at fleet scale (issue 16): 10,000 probers reporting every 15 s to one aggregator, then
# the same fleet to an HA pair (every report to both). The one command behind the "fleet ingest"
# section of benches/RESULTS.md.
#
#   benches/fleet-ingest.sh [--only single,ha] [--quick] [any other fleet_ingest flag]
#
# 1. Builds once (release): the aggregator binary and the `fleet_ingest` bench binary.
# 2. Raises this shell's open-file limit (a connection per prober and per aggregator: 20,000
#    sockets in the load generator for the pair; as root, `ulimit -n` can raise the hard limit).
# 3. single: `fleet_ingest --replicas 1`; ha: `fleet_ingest --replicas 2`. Each prints the date,
#    the load average before and after, and its markdown tables on stdout (progress on stderr).
# Everything listens on and talks to 127.0.0.1 only; the bench stops the aggregators it started
# and removes its working directory (target/fleet-bench) unless given --keep.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

only="single,ha"
args=()
while (($#)); do
    case "$1" in
        --only) only=${2:?}; shift 2 ;;
        -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
log() { printf '[fleet-ingest.sh] %s\n' "$*" >&2; }

log "building (release): aggregator, fleet_ingest"
cargo build --release -p aggregator --bin aggregator >&2
bench=$(cargo bench --no-run --bench fleet_ingest 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)
[[ -x "$bench" ]] || { log "could not find the fleet_ingest binary"; exit 1; }

want_files=65536
if (($(ulimit -n) < want_files)); then
    ulimit -n "$want_files" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
log "open files: $(ulimit -n)"

status=0
for mode in single ha; do
    want "$mode" || continue
    replicas=1
    [[ $mode == ha ]] && replicas=2
    echo "### $mode ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD))"
    echo
    echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    FLEET_INGEST=1 "$bench" --replicas "$replicas" "${args[@]}" || status=1
    echo
    echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
done
exit "$status"
