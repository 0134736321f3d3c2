#!/usr/bin/env bash
# SLO evaluation at 10,000 series: the aggregator's SLO engine, and a real Prometheus evaluating the
# same SLOs' Sloth-compatible rules (what `aggregator rules` prints) over the same traffic.
#
#   benches/slo-eval.sh [--journeys N] [--regions N] [--hours H] [--rounds N] [--no-prometheus]
#
# Scopes = 2 SLOs × journeys × (regions + 1): 10,000 with the defaults (1000 journeys, 4 regions).
# 1. Builds once: `cargo bench --no-run --bench slo_eval`.
# 2. The engine: 30 simulated days through Engine::record, then Engine::evaluate × 7 (time per
#    evaluation of every scope over 5m…3d and the 30d period), ledger bytes and RSS, and the OTLP
#    encode of that evaluation. One markdown row (benches/slo_eval.rs says how).
# 3. Prometheus (Debian's `prometheus` and `promtool`; skipped with a note when missing): the same
#    journeys' raw counters (`synthetic_journey_runs_total`, 2 outcomes, and the duration buckets
#    at the 2 s threshold) as OpenMetrics, one sample a minute for the last H hours (default 2),
#    backfilled with `promtool tsdb create-blocks-from openmetrics`; then `prometheus` on
#    127.0.0.1 with the generated rules, evaluation_interval 30s, for N rounds (default 4), read
#    from its own /metrics: prometheus_rule_group_last_duration_seconds per group (one group per
#    SLO), the mean over all rounds, the samples written, failures, RSS.
#    Caveat, printed with the numbers: Prometheus holds only H hours, so its [1d], [3d] and period
#    ranges read H hours of samples; its cost grows with the samples in range, the engine's does
#    not (it scans fixed per-minute and per-hour slots). Prometheus' figure is a lower bound for
#    30 days of data, which cannot be backfilled on this machine (20,000 series × 43,200 minutes).
# The machine's load average is printed with each part. Markdown on stdout, progress on stderr.
# Traffic: loopback only. Everything it starts, it stops; its files live in a temporary folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

journeys=1000
regions=4
hours=2
rounds=4
want_prom=1
while (($#)); do
    case "$1" in
        --journeys) journeys=${2:?}; shift 2 ;;
        --regions) regions=${2:?}; shift 2 ;;
        --hours) hours=${2:?}; shift 2 ;;
        --rounds) rounds=${2:?}; shift 2 ;;
        --no-prometheus) want_prom=0; shift ;;
        -h | --help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf '[slo-eval.sh] %s\n' "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
work=$(mktemp -d)
prom_pid=
cleanup() {
    if [[ -n $prom_pid ]]; then
        kill "$prom_pid" 2>/dev/null || true
        wait "$prom_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

log "building the bench (release)"
bin=$(cargo bench --no-run --bench slo_eval 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[[ -x $bin ]] || { log "could not find the slo_eval executable"; exit 1; }
scopes=$((2 * journeys * (regions + 1)))

echo "### SLO engine: $scopes scopes × every window"
echo
echo "\`$bin --journeys $journeys --regions $regions --reps 7\` (load average before: $(loadavg))"
echo
log "engine: $scopes scopes"
"$bin" --journeys "$journeys" --regions "$regions" --reps 7
echo

if ((want_prom == 0)); then
    exit 0
fi
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "Prometheus peer skipped: \`prometheus\`/\`promtool\` not installed (apt-get install prometheus)."
    exit 0
fi

echo "### Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'): the same SLOs' rules over the same journeys"
echo
"$bin" --journeys "$journeys" --regions "$regions" --emit-slos "$work/slos.yaml" --emit-rules "$work/rules.yaml"
promtool check rules "$work/rules.yaml" >&2
log "backfilling $hours h of counters ($((journeys * regions * 5)) series)"
"$bin" --journeys "$journeys" --regions "$regions" --hours "$hours" --emit-openmetrics "$work/data.om"
promtool tsdb create-blocks-from openmetrics "$work/data.om" "$work/tsdb" >&2
rm -f "$work/data.om"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/prometheus.yml" <<EOF
global:
  evaluation_interval: 30s
rule_files: [rules.yaml]
EOF
log "prometheus on 127.0.0.1:$port, $rounds rounds of 30 s"
load_before=$(loadavg)
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
metrics() { curl -sf "http://127.0.0.1:$port/metrics" || true; }
# Wait (bounded) until every group has run `rounds` times after its first evaluation.
for _ in $(seq 1 $(((rounds + 2) * 30 / 5 + 24))); do
    sleep 5
    done_groups=$(metrics | awk -v n="$rounds" '/^prometheus_rule_group_iterations_total/ && $2 > n {c++} END {print c+0}')
    if ((done_groups >= 2)); then break; fi
done
m=$(metrics)
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$prom_pid/status")
kill "$prom_pid"
wait "$prom_pid" 2>/dev/null || true
prom_pid=
discarded=$(grep -c 'Rule evaluation result discarded' "$work/prometheus.log" || true)
echo "\`prometheus\` with the rules of \`aggregator rules\` for these SLOs, evaluation_interval 30s, $hours h of 1-minute samples backfilled (load average before: $load_before; after: $(loadavg))"
echo
echo "| rule group | last evaluation s | samples written | iterations | failures |"
echo "|---|---:|---:|---:|---:|"
echo "$m" | awk '
    /^prometheus_rule_group_last_duration_seconds\{/ { g = $1; sub(/.*rules\.yaml;/, "", g); sub(/".*/, "", g); d[g] = $2 }
    /^prometheus_rule_group_last_evaluation_samples\{/ { g = $1; sub(/.*rules\.yaml;/, "", g); sub(/".*/, "", g); s[g] = $2 }
    /^prometheus_rule_group_iterations_total\{/ { g = $1; sub(/.*rules\.yaml;/, "", g); sub(/".*/, "", g); it[g] = $2 }
    /^prometheus_rule_evaluation_failures_total\{/ { g = $1; sub(/.*rules\.yaml;/, "", g); sub(/".*/, "", g); f[g] += $2 }
    END { for (g in d) { printf "| %s | %.3f | %d | %d | %d |\n", g, d[g], s[g], it[g], f[g]; total += d[g] }
          printf "| **all groups (sum)** | **%.3f** | | | |\n", total }'
mean=$(echo "$m" | awk '/^prometheus_rule_group_duration_seconds_sum/ {s = $2} /^prometheus_rule_group_duration_seconds_count/ {c = $2} END { if (c > 0) printf "%.3f", s / c; else print "n/a" }')
echo
echo "Mean group evaluation over every round: $mean s. Prometheus RSS at the end: $((rss_kib / 1024)) MiB. Rule results discarded (logged): $discarded."
echo
echo "Prometheus holds only $hours h of samples: its [1d], [3d] and period ranges read $hours h, so these figures are a lower bound for 30 days of data; the engine's cost does not depend on how much data it holds."
