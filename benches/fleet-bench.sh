#!/usr/bin/env bash
# Fleet benchmarks: the one command that reproduces the ingest, store-size and prober-footprint
# sections of benches/RESULTS.md.
#
#   benches/fleet-bench.sh [--only ingest,size,footprint] [--baseline REV | --baseline-bin FILE]
#                          [--reports N] [--day-probers N] [--day-hours H] [--footprint-secs S]
#
# 1. Builds once (release): aggregator, prober, sandbox and the `ingest` bench binary; and the
#    aggregator of --baseline REV (default f6d3ca1: one fsync'd transaction per report) from
#    `git archive`, to compare before and after group commit in the same run.
# 2. ingest: a real `aggregator serve` on 127.0.0.1 with 1,000 configured probers (20 regions),
#    loaded by `ingest load`: real encoded reports (50 series each, 2 runs per series), 64
#    requests in flight, at most --reports reports (default 20,000) or 60 s per run. Runs: the
#    baseline over HTTP/1.1, group commit over HTTP/1.1, group commit over HTTP/2 + TLS.
# 3. size: --day-hours simulated hours (default 6, 10 s intervals, ending 2 h ago) of --day-probers
#    probers (default 10 in 5 regions, 50 series per region) into a fresh store; sizes with minute
#    rollups, scaled to a series-day; then the aggregator restarted with `compact_after: 1h` until
#    maintenance has compacted every minute row, and sizes again.
# 4. footprint: the sandbox, an aggregator, `prober run` with the four bundled journeys every 15 s,
#    and prometheus-blackbox-exporter (installed with apt-get when missing) probed by curl every
#    15 s for four targets on the same sandbox; RSS and CPU of both sampled from /proc every 5 s
#    for --footprint-secs (default 180).
# Everything listens on and talks to 127.0.0.1 only; every process started is stopped on exit.
# Markdown on stdout, progress on stderr.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

only="ingest,size,footprint"
baseline=f6d3ca1
reports=20000
day_probers=10
day_hours=6
footprint_secs=180
baseline_bin=""
while (($#)); do
    case "$1" in
        --only) only=${2:?}; shift 2 ;;
        --baseline) baseline=${2:?}; shift 2 ;;
        --reports) reports=${2:?}; shift 2 ;;
        --day-probers) day_probers=${2:?}; shift 2 ;;
        --day-hours) day_hours=${2:?}; shift 2 ;;
        --baseline-bin) baseline_bin=${2:?}; shift 2 ;;
        --footprint-secs) footprint_secs=${2:?}; shift 2 ;;
        -h | --help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
log() { printf '[fleet-bench.sh] %s\n' "$*" >&2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d /tmp/fleet-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# --- build ---
log "building (release) in $CARGO_TARGET_DIR"
if want ingest && [[ -z $baseline_bin ]]; then
    mkdir -p "$work/baseline-src"
    git archive "$baseline" | tar -x -C "$work/baseline-src"
    (cd "$work/baseline-src" && cargo build --release -q -p aggregator --bin aggregator)
    baseline_bin=$work/aggregator-baseline
    cp "$CARGO_TARGET_DIR/release/aggregator" "$baseline_bin"
    # Cargo re-links target/release/aggregator only when the binary crate is rebuilt.
    touch aggregator/src/main.rs
fi
cargo build --release -q -p aggregator -p prober -p sandbox
bench=$(cargo bench --no-run --bench ingest 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
[[ $bench = /* ]] || bench="$repo/$bench"
# Copies: other builds sharing the target dir must not swap a binary under a running benchmark.
cp "$CARGO_TARGET_DIR/release/aggregator" "$work/aggregator"
cp "$bench" "$work/ingest-bench"
bench=$work/ingest-bench
agg=$work/aggregator
commit=$(git rev-parse --short HEAD)
dirty=$(git status --porcelain -- aggregator benches Cargo.toml | wc -l)

echo "# fleet-bench: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit (+$dirty changed files), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)"
echo
echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# Starts `aggregator serve` (binary $1) on config $2; sets agg_pid; waits for /healthz.
start_aggregator() {
    local bin=$1 cfg=$2 url=$3
    RUST_LOG=warn "$bin" serve --config "$cfg" >"$cfg.log" 2>&1 &
    agg_pid=$!
    pids+=("$agg_pid")
    for _ in $(seq 600); do
        if curl -sfk --max-time 1 "$url/healthz" >/dev/null; then return 0; fi
        sleep 0.1
    done
    log "aggregator did not start:"; cat "$cfg.log" >&2; return 1
}
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}

# --- ingest ---
if want ingest; then
    echo "## ingest rate"
    echo
    echo "1,000 probers (20 regions), 50 series per report, 2 runs per series, 10 s simulated intervals; 64 requests in flight; at most $reports reports or 60 s per run."
    echo
    header=--header
    for run in baseline-h1 group-h1 group-h2; do
        d=$work/$run
        port=18088
        tls=()
        url=http://127.0.0.1:$port
        [[ $run == *h2 ]] && tls=(--tls) && url=https://localhost:$port
        "$bench" config --dir "$d" --probers 1000 --regions 20 --port $port "${tls[@]}"
        bin=$agg
        [[ $run == baseline-* ]] && bin=$baseline_bin
        start_aggregator "$bin" "$d/aggregator.yaml" "$url"
        ca=()
        [[ $run == *h2 ]] && ca=(--ca "$d/agg.crt")
        log "ingest: $run"
        "$bench" load --url "$url" "${ca[@]}" --probers 1000 --regions 20 --concurrency 64 \
            --reports "$reports" --max-secs 60 --pid "$agg_pid" --label "$run" $header | tee "$d/load.out" | grep -v '^# json'
        header=
        batches=$(curl -sfk "$url/metrics" | grep -E '^aggregator_store_batch_reports_(sum|count)' | awk '{print $2}' | paste -sd/ - || true)
        stop_pid "$agg_pid"
        [[ -n $batches ]] && echo "  ${run}: reports/batches (sum/count of aggregator_store_batch_reports): $batches" >>"$work/notes"
    done
    echo
    [[ -f $work/notes ]] && cat "$work/notes" && echo
fi

# --- store size per series-day ---
if want size; then
    echo "## store size per series-day"
    echo
    d=$work/size
    regions=5
    series=$((regions * 50))
    n=$((day_probers * 360 * day_hours))
    hour=$(( $(date +%s) / 3600 * 3600 * 1000 ))
    start_ms=$((hour - (day_hours + 2) * 3600 * 1000))
    series_days=$(awk -v s=$series -v h="$day_hours" 'BEGIN {print s * h / 24}')
    echo "$day_probers probers in $regions regions ($((day_probers / regions)) per series), 10 s intervals, 2 runs per series per report: $n reports covering $day_hours simulated hours (start $start_ms); $series series × $day_hours h = $series_days series-days. Bytes per series-day = bytes / $series_days (a scaled run: per-minute rows and blobs are what a full day has; one day is 24/$day_hours times as many of them)."
    echo
    "$bench" config --dir "$d" --probers "$day_probers" --regions $regions --port 18089
    start_aggregator "$agg" "$d/aggregator.yaml" http://127.0.0.1:18089
    log "size: ingesting $n reports"
    "$bench" load --url http://127.0.0.1:18089 --probers "$day_probers" --regions $regions --concurrency 64 \
        --reports "$n" --max-secs 900 --start-ms "$start_ms" --pid "$agg_pid" --label "simulated day" --header \
        | grep -v '^# json'
    echo
    stop_pid "$agg_pid"
    "$bench" sizes --db "$d/data/aggregator.sqlite" --series-days "$series_days" --label "minute rollups" --header
    minute_rows=$(sqlite3 "$d/data/aggregator.sqlite" 'SELECT count(*) FROM rollup_minute')
    sed -i 's/^compact_after: .*/compact_after: 1h/' "$d/aggregator.yaml"
    start_aggregator "$agg" "$d/aggregator.yaml" http://127.0.0.1:18089
    log "size: waiting for maintenance to compact $minute_rows minute rows (it runs 60 s after start)"
    for _ in $(seq 300); do
        c=$(curl -sf http://127.0.0.1:18089/metrics | awk '/^aggregator_store_compacted_rows_total/ {print $2}' || true)
        [[ ${c:-0} -ge $minute_rows ]] && break
        sleep 1
    done
    sleep 2
    stop_pid "$agg_pid"
    "$bench" sizes --db "$d/data/aggregator.sqlite" --series-days "$series_days" --label "after compaction (hourly)"
    echo
fi

# --- prober footprint ---
if want footprint; then
    echo "## prober footprint: \`prober run\` vs prometheus-blackbox-exporter"
    echo
    if ! command -v prometheus-blackbox-exporter >/dev/null; then
        log "installing prometheus-blackbox-exporter"
        if [[ $(id -u) -eq 0 ]]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-blackbox-exporter >&2 ||
                { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-blackbox-exporter >&2; }
        else
            sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-blackbox-exporter >&2
        fi
        # The package starts a system service on :9115; this run uses its own instance.
        systemctl stop prometheus-blackbox-exporter 2>/dev/null || true
    fi
    d=$work/footprint
    mkdir -p "$d"
    "$CARGO_TARGET_DIR/release/sandbox" --listen 127.0.0.1:7700 >"$d/sandbox.log" 2>&1 &
    sb=$!
    pids+=("$sb")
    cat >"$d/aggregator.yaml" <<EOF
listen: 127.0.0.1:7800
data_dir: data
probers:
  - id: nbo-1
    region: nairobi
    token: env:BENCH_NBO_TOKEN
EOF
    export BENCH_NBO_TOKEN=bench-footprint-token-0123456789 PROBER_TOKEN=bench-footprint-token-0123456789
    start_aggregator "$agg" "$d/aggregator.yaml" http://127.0.0.1:7800
    for _ in $(seq 50); do curl -sf http://127.0.0.1:7700/healthz >/dev/null && break; sleep 0.1; done
    cat >"$d/edge.yaml" <<EOF
prober:
  id: nbo-1
  region: nairobi
aggregator:
  url: http://127.0.0.1:7800
  token: env:PROBER_TOKEN
reporting_interval: 15s
concurrency: 4
profile: loopback
seed: 2024
listen: 127.0.0.1:9464
journeys:
  - {file: $repo/scenarios/ussd-balance.yaml, interval: 15s, timeout: 14s, profile: loopback}
  - {file: $repo/scenarios/ussd-send-money.yaml, interval: 15s, timeout: 14s, profile: loopback}
  - {file: $repo/scenarios/mpesa-stk-push.yaml, interval: 15s, timeout: 14s, profile: loopback}
  - {file: $repo/scenarios/checkout-mpesa.yaml, interval: 15s, timeout: 14s, profile: loopback}
outbox:
  dir: $d/outbox
  max_bytes: 64MiB
  max_age: 24h
EOF
    cat >"$d/blackbox.yml" <<'EOF'
modules:
  http_get:
    prober: http
    timeout: 14s
    http:
      method: GET
      valid_status_codes: [200]
  ussd_balance:
    prober: http
    timeout: 14s
    http:
      method: POST
      headers:
        Content-Type: application/x-www-form-urlencoded
      body: "sessionId=bb-1&serviceCode=*384*7%23&phoneNumber=%2B254700000100&networkCode=63902&text=1"
      valid_status_codes: [200]
      fail_if_body_not_matches_regexp: ["^END Your M-Pesa balance"]
  ussd_menu:
    prober: http
    timeout: 14s
    http:
      method: POST
      headers:
        Content-Type: application/x-www-form-urlencoded
      body: "sessionId=bb-2&serviceCode=*384*7%23&phoneNumber=%2B254700000100&networkCode=63902&text="
      valid_status_codes: [200]
      fail_if_body_not_matches_regexp: ["^CON "]
EOF
    "$CARGO_TARGET_DIR/release/prober" run --config "$d/edge.yaml" >"$d/prober.log" 2>&1 &
    pr=$!
    pids+=("$pr")
    prometheus-blackbox-exporter --config.file="$d/blackbox.yml" --web.listen-address=127.0.0.1:19115 >"$d/bb.log" 2>&1 &
    bb=$!
    pids+=("$bb")
    sleep 2
    kill -0 "$pr" && kill -0 "$bb" || { log "prober or blackbox exporter did not start"; tail "$d"/*.log >&2; exit 1; }
    targets=(
        "http_get http://127.0.0.1:7700/shop/api/products"
        "ussd_menu http://127.0.0.1:7700/ussd/at"
        "ussd_balance http://127.0.0.1:7700/ussd/at"
        "http_get http://127.0.0.1:7700/healthz"
    )
    cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
    rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
    hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
    pr_cpu0=$(cpu "$pr"); bb_cpu0=$(cpu "$bb")
    pr_runs0=$(curl -sf http://127.0.0.1:9464/metrics | awk '/^prober_runs_total/ {s += $2} END {print s + 0}' || true)
    bb_probes=0 bb_ok=0
    log "footprint: sampling for $footprint_secs s"
    : >"$d/samples"
    t0=$(date +%s)
    next_probe=$t0
    while (($(date +%s) - t0 < footprint_secs)); do
        now=$(date +%s)
        if ((now >= next_probe)); then
            for t in "${targets[@]}"; do
                set -- $t
                r=$(curl -sf --max-time 15 "http://127.0.0.1:19115/probe?module=$1&target=$2" | awk '/^probe_success/ {print $2}' || true)
                bb_probes=$((bb_probes + 1))
                [[ $r == 1 ]] && bb_ok=$((bb_ok + 1))
            done
            next_probe=$((next_probe + 15))
        fi
        echo "$(rss "$pr") $(rss "$bb")" >>"$d/samples"
        sleep 5
    done
    secs=$(($(date +%s) - t0))
    pr_cpu=$(( $(cpu "$pr") - pr_cpu0 )); bb_cpu=$(( $(cpu "$bb") - bb_cpu0 ))
    pr_runs1=$(curl -sf http://127.0.0.1:9464/metrics | awk '/^prober_runs_total/ {s += $2} END {print s + 0}' || true)
    pr_ok=$(curl -sf http://127.0.0.1:9464/metrics | awk '/^prober_runs_total.*outcome="ok"/ {s += $2} END {print s + 0}' || true)
    pr_runs=$((pr_runs1 - pr_runs0))
    read -r pr_avg pr_max bb_avg bb_max < <(awk '{a += $1; if ($1 > am) am = $1; b += $2; if ($2 > bm) bm = $2; n++} END {printf "%.1f %.1f %.1f %.1f\n", a/n/1024, am/1024, b/n/1024, bm/1024}' "$d/samples")
    echo "Window $secs s, RSS sampled every 5 s ($(wc -l <"$d/samples") samples); CPU = utime + stime from /proc/PID/stat (10 ms ticks). Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| agent | probes in window (ok) | RSS avg MiB | RSS max MiB | VmHWM MiB | CPU s | **CPU ms per probe** |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    awk -v n="prober run (4 journeys every 15 s)" -v p="$pr_runs" -v ok="$pr_ok" -v a="$pr_avg" -v m="$pr_max" -v h="$(hwm "$pr")" -v c="$pr_cpu" \
        'BEGIN {printf "| %s | %d journey runs (%d ok total) | %s | %s | %.1f | %.2f | **%.1f** |\n", n, p, ok, a, m, h/1024, c/100, (p ? c*10/p : 0)}'
    awk -v n="blackbox_exporter $(prometheus-blackbox-exporter --version 2>&1 | head -1 | awk '{print $3}') (4 targets every 15 s, curl /probe)" -v p="$bb_probes" -v ok="$bb_ok" -v a="$bb_avg" -v m="$bb_max" -v h="$(hwm "$bb")" -v c="$bb_cpu" \
        'BEGIN {printf "| %s | %d probes (%d ok) | %s | %s | %.1f | %.2f | **%.1f** |\n", n, p, ok, a, m, h/1024, c/100, (p ? c*10/p : 0)}'
    echo
    stop_pid "$pr"; stop_pid "$bb"; stop_pid "$agg_pid"; stop_pid "$sb"
fi
